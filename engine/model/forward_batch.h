// ForwardBatch: the tokens one model step appends, grouped by sequence (KV-cache slot).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/core/error.h"

namespace gridlm {

struct ForwardSeq {
    int slot = 0;          // KV-cache slot of the sequence
    int64_t n_tokens = 0;  // its new tokens: the next n_tokens entries of ForwardBatch::tokens
};

// Any mix of prefill chunks (many tokens) and decode steps (one token) over distinct slots.
// Each sequence's tokens go at its current length in the cache (KvCache::length(slot)).
struct ForwardBatch {
    std::vector<int32_t> tokens;  // [n_tokens] sequence after sequence
    std::vector<ForwardSeq> seqs;
    // false: logits of each sequence's last new token, [n_seqs, n_vocab] in seqs order.
    // true: logits of every new token, [n_tokens, n_vocab] in tokens order (tests, scoring).
    bool all_logits = false;

    void add(int slot, std::span<const int32_t> new_tokens) {
        if (new_tokens.empty()) throw Error(str("ForwardBatch: sequence in slot ", slot, " has no new tokens"));
        seqs.push_back({slot, (int64_t)new_tokens.size()});
        tokens.insert(tokens.end(), new_tokens.begin(), new_tokens.end());
    }
    void clear() {
        tokens.clear();
        seqs.clear();
    }
    int64_t n_tokens() const { return (int64_t)tokens.size(); }
    int64_t n_logit_rows() const { return all_logits ? n_tokens() : (int64_t)seqs.size(); }
};

}  // namespace gridlm
