// Appends new keys and values to each sequence's cache blocks.
#include <cstring>

#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

// k, v: [n_tokens, n_head_kv * head_dim]; seq s owns rows token_offset .. token_offset + n_new - 1,
// stored at positions pos0 .. pos0 + n_new - 1.
void kv_store(const CpuContext& ctx, const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs) {
    (void)ctx;  // a few KB per token: not worth waking threads
    for (int64_t s = 0; s < n_seqs; ++s) {
        const AttentionSeq& q = seqs[s];
        const int64_t row = q.kv.row;
        for (int64_t t = 0; t < q.n_new; ++t) {
            const int64_t src = (q.token_offset + t) * row;
            std::memcpy(q.kv.k(q.pos0 + t), k + src, row * sizeof(float));
            std::memcpy(q.kv.v(q.pos0 + t), v + src, row * sizeof(float));
        }
    }
}

}  // namespace gridlm::cpu
