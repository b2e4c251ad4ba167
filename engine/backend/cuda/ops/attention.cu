// Attention launcher: checks the shapes against the cache layout, sizes the decode split and picks
// the decode (p.max_new == 1) or the tiled prefill kernel (attention_decode.cu,
// attention_prefill.cu).
#include <algorithm>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/attention.cuh"

namespace gridlm::cuda {

namespace {

constexpr int64_t decode_chunk_min = 256;     // positions: a chunk below this is mostly overhead
constexpr int64_t decode_chunk_quantum = 64;  // chunk lengths are whole decode key tiles
constexpr int64_t decode_target_rows = 2048;  // (token, head, chunk) units worth filling a GPU with
constexpr int64_t grid_yz_limit = 65535;      // CUDA's gridDim.y / gridDim.z bound

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

AttentionSplit attention_decode_split(int64_t n_tokens, int64_t n_head, int64_t max_positions) {
    AttentionSplit split;
    if (n_tokens <= 0 || n_head <= 0 || max_positions <= 0) {
        split.chunk_len = decode_chunk_quantum;
        return split;
    }
    // Few (token, head) rows: cut each context into chunks so the grid still fills the device.
    const int64_t max_chunks = ceil_div(max_positions, decode_chunk_min);
    const int64_t want = ceil_div(decode_target_rows, n_tokens * n_head);
    const int64_t n = std::clamp<int64_t>(std::min(want, attention_decode_max_chunks), 1, max_chunks);
    split.chunk_len = ceil_div(ceil_div(max_positions, n), decode_chunk_quantum) * decode_chunk_quantum;
    split.n_chunks = ceil_div(max_positions, split.chunk_len);
    return split;
}

size_t attention_workspace_floats(int64_t n_tokens, int64_t n_head, int64_t v_head_dim, int64_t max_positions) {
    GRIDLM_ASSERT(n_tokens >= 0 && n_head >= 0 && v_head_dim >= 0 && max_positions >= 0);
    const AttentionSplit split = attention_decode_split(n_tokens, n_head, max_positions);
    if (split.n_chunks <= 1) return 0;
    return (size_t)n_tokens * (size_t)n_head * (size_t)split.n_chunks * (size_t)(v_head_dim + 2);
}

void attention_launch(const float* q, const PagedKv& p, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                      int64_t v_head_dim, float scale, float* out, float* workspace, cudaStream_t s) {
    if (head_dim < 1 || head_dim > attention_max_head_dim)
        throw Error(
            str("CUDA attention: head_dim ", head_dim, " is not supported (1 .. ", attention_max_head_dim, ")"));
    if (v_head_dim < 1 || v_head_dim > attention_max_v_head_dim)
        throw Error(
            str("CUDA attention: v_head_dim ", v_head_dim, " is not supported (1 .. ", attention_max_v_head_dim, ")"));
    if (n_head < 1 || n_head_kv < 1 || n_head % n_head_kv != 0 || n_head > grid_yz_limit)
        throw Error(str("CUDA attention: ", n_head, " query heads over ", n_head_kv,
                        " KV heads; n_head must be a positive multiple of n_head_kv, at most ", grid_yz_limit));
    if (p.k_row < n_head_kv * head_dim)
        throw Error(
            str("CUDA attention: K rows of ", p.k_row, " values cannot hold ", n_head_kv, " heads of ", head_dim));
    if (p.v_row == 0) {
        if (n_head_kv != 1 || v_head_dim > p.k_row)
            throw Error(str("CUDA attention: a latent cache (V read from K rows of ", p.k_row,
                            " values) needs one KV head and v_head_dim <= the K row; got ", n_head_kv,
                            " KV heads, v_head_dim ", v_head_dim));
    } else if (p.v_row < n_head_kv * v_head_dim) {
        throw Error(
            str("CUDA attention: V rows of ", p.v_row, " values cannot hold ", n_head_kv, " heads of ", v_head_dim));
    }
    if (p.n_tokens == 0) return;
    GRIDLM_ASSERT(p.n_tokens > 0 && p.max_positions > 0 && p.block_size > 0 && q != nullptr && out != nullptr);
    AttentionParams a;
    a.q = q;
    a.out = out;
    a.workspace = workspace;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
    a.head_dim = head_dim;
    a.v_head_dim = v_head_dim;
    a.scale = scale;
    if (p.max_new == 1) {
        attention_decode_launch(a, p, s);
    } else {
        attention_prefill_launch(a, p, s);
    }
}

}  // namespace gridlm::cuda
