// f32 -> bf16 / f16 on the GPU: a grid-stride loop, four values per step (one 16-byte load, one
// 8-byte store) when x is 16-byte and out 8-byte aligned (the last n % 4 one per thread), one
// value otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/convert.cuh"
#include "engine/backend/cuda/ops/elementwise.cuh"
#include "engine/backend/cuda/ops/float_types.cuh"

namespace gridlm::cuda {

namespace {

// Four consecutive 16-bit values, stored with one 8-byte write.
template <typename T>
struct alignas(8) Packed4 {
    T v[4];
};

// x: [n]; out: [n] of T (__nv_bfloat16 or __half)
template <typename T>
__global__ void convert_kernel(const float* x, T* out, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride) out[i] = from_f32<T>(x[i]);
}

// Elements [0, 4 * n4) four at a time, then [4 * n4, n) one per thread. x 16-byte, out 8-byte aligned.
template <typename T>
__global__ void convert_vec4_kernel(const float* x, T* out, int64_t n4, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (int64_t i = first; i < n4; i += stride) {
        const float4 a = reinterpret_cast<const float4*>(x)[i];
        Packed4<T> r;
        r.v[0] = from_f32<T>(a.x);
        r.v[1] = from_f32<T>(a.y);
        r.v[2] = from_f32<T>(a.z);
        r.v[3] = from_f32<T>(a.w);
        reinterpret_cast<Packed4<T>*>(out)[i] = r;
    }
    const int64_t tail = 4 * n4 + first;
    if (tail < n) out[tail] = from_f32<T>(x[tail]);
}

template <typename T>
void convert_as(const float* x, void* out, int64_t n, cudaStream_t stream) {
    static_assert(sizeof(Packed4<T>) == 8, "four 16-bit values in 8 bytes");
    T* o = static_cast<T*>(out);
    if (is_aligned(x, 16) && is_aligned(out, 8)) {
        const int64_t n4 = n / 4;  // the tail, n - 4 * n4 < 4, needs at least that many threads: ew_threads
        convert_vec4_kernel<T><<<ew_blocks(n4), ew_threads, 0, stream>>>(x, o, n4, n);
    } else {
        convert_kernel<T><<<ew_blocks(n), ew_threads, 0, stream>>>(x, o, n);
    }
}

}  // namespace

void convert_f32_launch(const float* x, void* out, DType out_type, int64_t n, cudaStream_t stream) {
    GRIDLM_ASSERT(n >= 0);
    if (out_type != DType::dtype_bf16 && out_type != DType::dtype_f16)
        throw Error(str("convert: f32 to ", dtype_name(out_type), " is not supported (bf16 or f16)"));
    if (!is_aligned(out, 2))
        throw Error(str("convert: the ", dtype_name(out_type), " output is not aligned to 2 bytes"));
    if (n == 0) return;
    if (out_type == DType::dtype_bf16)
        convert_as<__nv_bfloat16>(x, out, n, stream);
    else
        convert_as<__half>(x, out, n, stream);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
