// Which part of a model one rank holds: a contiguous range of layers (its pipeline stage) and,
// inside every layer, its tensor-parallel slice (Megatron split). Pure functions of the config
// and the grid, so every rank computes every other rank's share without talking to it.
//
// Tensor parallel, tp ranks, for rank r:
//   attention  query heads [r*H/tp, (r+1)*H/tp)            q/k/v column-parallel, o row-parallel
//              KV heads: split when tp divides n_head_kv, else each rank keeps the KV heads its
//              query heads read (replicated across ranks; allowed when the grouping stays even)
//   MLP        an ~equal run of n_ff                       gate/up column-parallel, down row-parallel
//   vocabulary an ~equal run of n_vocab                    embedding rows and LM-head rows
// Example, Qwen2.5-0.5B (14 heads, 2 KV heads, n_ff 4864, vocab 151936) with tp = 7: rank 3 holds
// query heads 6..7, KV heads 0..1 (head 6 reads KV head 0, head 7 reads KV head 1), MLP columns
// 2085..2779 and vocabulary ids 65116..86820.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/model_config.h"

namespace gridlm {

struct Range {
    int64_t begin = 0;
    int64_t size = 0;
    int64_t end() const { return begin + size; }
    bool operator==(const Range&) const = default;
};

// Element r of n near-equal parts of [0, total): the first total % n parts are one longer.
Range split_range(int64_t total, int n, int r);

struct TpShard {
    int rank = 0;
    int size = 1;
    Range heads;            // query heads
    Range kv_heads;         // KV heads (a replicated head appears on several ranks)
    Range ff;               // MLP intermediate columns
    Range vocab;            // embedding / LM-head rows
    int64_t vocab_max = 0;  // largest vocabulary share of any rank (the logits gather pads to it)
};

// Throws gridlm::Error saying what does not divide when tp cannot split this model.
void check_tensor_parallel(const ModelConfig& cfg, int tp);
TpShard tp_shard(const ModelConfig& cfg, int tp, int rank);

// Layers per pipeline stage. `counts` empty: a split that balances weight bytes, counting the LM
// head (n_vocab x n_embd, read every decode step) on the last stage; the embedding lookup is free.
// Otherwise counts are the user's (--pp-layers) and must be pp positive numbers summing to n_layer.
// Throws gridlm::Error for pp > n_layer or bad counts.
std::vector<int64_t> pipeline_layers(const ModelConfig& cfg, int pp, const std::vector<int64_t>& counts = {});

// The part of the model one rank runs.
struct ModelShard {
    Range layers;           // [begin, end) of the model's layers
    bool embedding = true;  // first stage: token ids in
    bool head = true;       // last stage: final norm and LM head, logits out
    TpShard tp;

    static ModelShard whole(const ModelConfig& cfg);
    static ModelShard of(const ModelConfig& cfg, const std::vector<int64_t>& stage_layers, int stage, int tp,
                         int tp_rank);
};

}  // namespace gridlm
