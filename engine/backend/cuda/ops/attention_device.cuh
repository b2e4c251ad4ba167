// Device helpers shared by the attention kernels (attention_decode.cu, attention_prefill.cu):
// reading cached K / V values through the block table, widened to f32. Internal to those files.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/ops/paged_kv.cuh"

namespace gridlm::cuda::attention_detail {

constexpr int warp_size = 32;

// Element i of a cached row starting at row, widened to f32.
template <KvType T>
__device__ __forceinline__ float kv_load(const uint8_t* row, int64_t i) {
    if constexpr (T == KvType::f32) {
        return reinterpret_cast<const float*>(row)[i];
    } else if constexpr (T == KvType::bf16) {
        return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(row)[i]);
    } else {
        static_assert(T == KvType::f16);
        return __half2float(reinterpret_cast<const __half*>(row)[i]);
    }
}

template <KvType T>
__host__ __device__ constexpr int64_t kv_elem_bytes() {
    return T == KvType::f32 ? 4 : 2;
}

// The first byte of position pos's K row and V row (the K row for a latent cache, v_row == 0) in
// sequence seq's blocks. 64-bit offsets throughout: a block may hold many layers.
template <KvType T>
__device__ __forceinline__ void kv_rows(const PagedKv& p, const PagedSeq& seq, int64_t pos, const uint8_t** k_row,
                                        const uint8_t** v_row) {
    constexpr int64_t es = kv_elem_bytes<T>();
    const uint8_t* block = p.blocks[seq.block_base + pos / p.block_size];
    const int64_t r = pos % p.block_size;
    *k_row = block + (p.k_offset + r * p.k_row) * es;
    *v_row = p.v_row == 0 ? *k_row : block + (p.v_offset + r * p.v_row) * es;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = warp_size / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = warp_size / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// exp(x - m) that is 0 for a masked score (x == -inf), also when m is -inf.
__device__ __forceinline__ float exp_shifted(float x, float m) { return x == -INFINITY ? 0.f : expf(x - m); }

}  // namespace gridlm::cuda::attention_detail
