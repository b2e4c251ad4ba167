// Device-side reads and writes of the plain float element types (f32, bf16, f16) shared by the
// CUDA ops: widening is exact; narrowing rounds to nearest even and gives the bits the CPU
// backend's f32_to_bf16 / f32_to_f16 (engine/core/dtype.h) give for every non-NaN input.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace gridlm::cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

// The bf16 / f16 value whose bits are the low (lo) or high half of a 32-bit word: two
// consecutive elements of a little-endian array packed in one load.
__device__ __forceinline__ float bf16_bits_to_f32(uint32_t bits16) { return __uint_as_float(bits16 << 16); }
__device__ __forceinline__ float f16_bits_to_f32(uint32_t bits16) {
    return __half2float(__ushort_as_half((unsigned short)bits16));
}

// f32 -> bf16 with the CPU's integer rounding (a NaN keeps its top bits and is made quiet), so a
// value stored by either backend has the same bits.
__device__ __forceinline__ __nv_bfloat16 f32_to_bf16_rne(float f) {
    uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return __ushort_as_bfloat16((unsigned short)((x >> 16) | 0x40u));
    x += 0x7fffu + ((x >> 16) & 1u);
    return __ushort_as_bfloat16((unsigned short)(x >> 16));
}

// Narrowing to the element type T (float, __nv_bfloat16 or __half), round to nearest even.
template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return f32_to_bf16_rne(v);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
    return __float2half_rn(v);
}

}  // namespace gridlm::cuda
