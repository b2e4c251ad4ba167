// Causal grouped-query attention over the KV cache: softmax(q k^T / sqrt(d)) v per head, with
// query head h reading KV head h / (n_head / n_head_kv). fp32 with a max-subtracted softmax.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/simd.h"

namespace gridlm::cpu {

namespace {

// One query row of one head. q: [head_dim]; out: [v_dim]; scores: scratch of n_ctx floats. The head
// reads K at column k_col of the K row and V at column v_col of the V row.
void attend_one(const float* q, const KvSeqView& kv, int64_t k_col, int64_t v_col, int64_t n_ctx, int64_t head_dim,
                int64_t v_dim, float scale, float* scores, float* out) {
    float max_s = -INFINITY;
    for (int64_t j = 0; j < n_ctx; ++j) {
        const float s = dot_f32(q, kv.k(j) + k_col, head_dim) * scale;
        scores[j] = s;
        max_s = std::max(max_s, s);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < n_ctx; ++j) {
        scores[j] = std::exp(scores[j] - max_s);
        sum += scores[j];
    }
    const float inv = 1.0f / sum;
    std::fill(out, out + v_dim, 0.f);
    for (int64_t j = 0; j < n_ctx; ++j) axpy(scores[j] * inv, kv.v(j) + v_col, out, v_dim);
}

}  // namespace

// q: [n_tokens, n_head, head_dim]; out: [n_tokens, n_head, v_dim]; the cache already holds the new
// tokens' keys/values.
void attention(const CpuContext& ctx, const float* q, const AttentionSeq* seqs, int64_t n_seqs,
               const AttentionShape& shape, float* out) {
    const int64_t hd = shape.head_dim, vd = shape.v_dim(), n_head = shape.n_head;
    const int64_t group = n_head / shape.n_head_kv;
    GRIDLM_ASSERT(group * shape.n_head_kv == n_head);
    // Flatten (seq, new token, head) into one index space so short and long sequences share
    // the threads evenly; a prefix sum maps an index back to its sequence.
    std::vector<int64_t> first(n_seqs + 1, 0);
    int64_t max_ctx = 0;
    for (int64_t s = 0; s < n_seqs; ++s) {
        first[s + 1] = first[s] + seqs[s].n_new * n_head;
        max_ctx = std::max(max_ctx, seqs[s].pos0 + seqs[s].n_new);
    }
    const int64_t total = first[n_seqs];
#pragma omp parallel num_threads(ctx.n_threads) if (total > 1)
    {
        std::vector<float> scores(max_ctx);
#pragma omp for schedule(dynamic, 4)
        for (int64_t idx = 0; idx < total; ++idx) {
            const int64_t s = std::upper_bound(first.begin(), first.end(), idx) - first.begin() - 1;
            const AttentionSeq& sq = seqs[s];
            const int64_t t = (idx - first[s]) / n_head, h = (idx - first[s]) % n_head;
            const int64_t row = sq.token_offset + t;
            attend_one(q + (row * n_head + h) * hd, sq.kv, (h / group) * hd, (h / group) * vd, sq.pos0 + t + 1, hd, vd,
                       shape.scale, scores.data(), out + (row * n_head + h) * vd);
        }
    }
}

}  // namespace gridlm::cpu
