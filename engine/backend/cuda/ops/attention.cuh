// Causal GQA attention over the paged KV cache on the GPU (Backend::attention, device pointers).
// Two kernels: split-key decode (every sequence adds one token) with a combine pass, and a tiled
// online-softmax kernel for everything else (prefill chunks, mixed prefill + decode steps).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "engine/backend/cuda/ops/paged_kv.cuh"

namespace gridlm::cuda {

// The widest heads the kernels take (DeepSeek's latent cache: 576-wide keys, 512-wide values).
constexpr int64_t attention_max_head_dim = 576;
constexpr int64_t attention_max_v_head_dim = 512;

// Floats of scratch attention_launch needs for the split-key decode partials: 0 when the decode
// does not split, else n_tokens * n_head * n_chunks * (v_head_dim + 2). Depends only on the sizes
// (the chunk count follows n_tokens, n_head and max_positions), so it is constant for a job and
// a buffer allocated once serves every step. v_head_dim: the value width (AttentionShape::v_dim()).
size_t attention_workspace_floats(int64_t n_tokens, int64_t n_head, int64_t v_head_dim, int64_t max_positions);

// out[t, h, :] = softmax_j(scale * q[t, h, :] . k_j) v_j over the cached positions j = 0 .. pos of
// token row t (pos = pos0 + t - token_offset of its sequence), k_j / v_j the KV head
// g = h / (n_head / n_head_kv) of position j: columns [g * head_dim, (g + 1) * head_dim) of the K
// row and [g * v_head_dim, (g + 1) * v_head_dim) of the V row (of the K row for a latent cache,
// p.v_row == 0, which requires n_head_kv == 1). Cached f32 / bf16 / f16 values are widened to f32;
// all math is f32.
//   q: device [p.n_tokens, n_head, head_dim]; out: device [p.n_tokens, n_head, v_head_dim]
//   p: the staged call (stage_paged_kv), its new keys / values already stored
//   v_head_dim: width of a value / output head (AttentionShape::v_dim(), >= 1)
//   workspace: device, attention_workspace_floats(p.n_tokens, n_head, v_head_dim, p.max_positions)
//   floats (may be nullptr when that is 0); used only by the decode path (p.max_new == 1)
// Launch geometry depends only on the sizes and p.max_positions; nothing is synchronised,
// allocated or copied, so the call may be captured into a CUDA graph.
// Throws gridlm::Error for head_dim outside [1, 576], v_head_dim outside [1, 512], n_head not a multiple of n_head_kv,
// K / V rows narrower than the heads, a latent cache with n_head_kv != 1, or a failed launch.
void attention_launch(const float* q, const PagedKv& p, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                      int64_t v_head_dim, float scale, float* out, float* workspace, cudaStream_t s);

// Internal to the attention_*.cu files: the decode split for these sizes, and the two paths.
constexpr int64_t attention_decode_max_chunks = 2048;
struct AttentionSplit {
    int64_t n_chunks = 1;   // key chunks per (token, head); 1: no partials, no combine
    int64_t chunk_len = 0;  // positions per chunk, a multiple of the decode key tile
};
AttentionSplit attention_decode_split(int64_t n_tokens, int64_t n_head, int64_t max_positions);

struct AttentionParams {
    const float* q = nullptr;  // [n_tokens, n_head, head_dim]
    float* out = nullptr;      // [n_tokens, n_head, v_head_dim]
    float* workspace = nullptr;
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0, v_head_dim = 0;
    float scale = 0.f;
};

void attention_decode_launch(const AttentionParams& a, const PagedKv& p, cudaStream_t s);
void attention_prefill_launch(const AttentionParams& a, const PagedKv& p, cudaStream_t s);

}  // namespace gridlm::cuda
