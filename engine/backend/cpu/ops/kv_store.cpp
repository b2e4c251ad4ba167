// Appends new keys and values to each sequence's cache blocks.
#include <cstring>

#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

// k: [n_tokens, k_row], v: [n_tokens, v_row] (unused for a latent cache, v_row == 0); seq s owns rows
// token_offset .. token_offset + n_new - 1, stored at positions pos0 .. pos0 + n_new - 1.
void kv_store(const CpuContext& ctx, const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs) {
    (void)ctx;  // a few KB per token: not worth waking threads
    for (int64_t s = 0; s < n_seqs; ++s) {
        const AttentionSeq& q = seqs[s];
        const int64_t kr = q.kv.k_row, vr = q.kv.v_row;
        for (int64_t t = 0; t < q.n_new; ++t) {
            const int64_t row = q.token_offset + t;
            std::memcpy(q.kv.k(q.pos0 + t), k + row * kr, kr * sizeof(float));
            if (vr > 0) std::memcpy(q.kv.v(q.pos0 + t), v + row * vr, vr * sizeof(float));
        }
    }
}

}  // namespace gridlm::cpu
