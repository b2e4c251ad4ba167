// KV cache store on the GPU: one block per token row (grid-stride over the call's tokens), its
// threads write the row's K then V elements, rounded to the cache's element type.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/elementwise.cuh"
#include "engine/backend/cuda/ops/float_types.cuh"
#include "engine/backend/cuda/ops/kv_store.cuh"

namespace gridlm::cuda {

namespace {

// At most this many blocks; each handles token rows t, t + grid, ... (a function of n_tokens only).
constexpr int64_t kv_store_max_blocks = 65535;

// T: the cache element type (float, __nv_bfloat16 or __half).  k: [n_tokens, k_row];
// v: [n_tokens, v_row]
template <typename T>
__global__ void kv_store_kernel(const float* k, const float* v, PagedKv p) {
    for (int64_t t = blockIdx.x; t < p.n_tokens; t += gridDim.x) {
        const int32_t s = p.token_seq[t];
        if (s < 0 || s >= p.n_seqs) continue;  // not a row of this call (staging guarantees it is)
        const PagedSeq seq = p.seqs[s];
        const int64_t pos = seq.pos0 + (t - seq.token_offset);
        uint8_t* block = p.blocks[seq.block_base + pos / p.block_size];
        const int64_t slot = pos % p.block_size;
        T* kd = reinterpret_cast<T*>(block) + p.k_offset + slot * p.k_row;
        const float* ks = k + t * p.k_row;
        for (int64_t i = threadIdx.x; i < p.k_row; i += blockDim.x) kd[i] = from_f32<T>(ks[i]);
        if (p.v_row > 0) {
            T* vd = reinterpret_cast<T*>(block) + p.v_offset + slot * p.v_row;
            const float* vs = v + t * p.v_row;
            for (int64_t i = threadIdx.x; i < p.v_row; i += blockDim.x) vd[i] = from_f32<T>(vs[i]);
        }
    }
}

}  // namespace

void kv_store_launch(const float* k, const float* v, const PagedKv& p, cudaStream_t stream) {
    GRIDLM_ASSERT(p.n_tokens >= 0 && p.block_size > 0 && p.k_row > 0 && p.v_row >= 0);
    GRIDLM_ASSERT(p.v_row == 0 || v != nullptr);
    if (p.n_tokens == 0) return;
    const unsigned blocks = (unsigned)std::min<int64_t>(p.n_tokens, kv_store_max_blocks);
    switch (p.type) {
        case KvType::f32:
            kv_store_kernel<float><<<blocks, ew_threads, 0, stream>>>(k, v, p);
            break;
        case KvType::bf16:
            kv_store_kernel<__nv_bfloat16><<<blocks, ew_threads, 0, stream>>>(k, v, p);
            break;
        case KvType::f16:
            kv_store_kernel<__half><<<blocks, ew_threads, 0, stream>>>(k, v, p);
            break;
        default:
            throw Error(str("kv_store: KV element type ", (int)p.type, " is not supported (f32, bf16 or f16)"));
    }
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
