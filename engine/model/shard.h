// Which part of a model one rank holds: a contiguous range of layers (its pipeline stage) and,
// inside every layer, its tensor-parallel slice (Megatron split). Pure functions of the config
// and the grid, so every rank computes every other rank's share without talking to it.
//
// Tensor parallel, tp ranks, for rank r (DeepSeek MLA + MoE: see below):
//   attention  query heads [r*H/tp, (r+1)*H/tp)            q/k/v column-parallel, o row-parallel
//              KV heads: split when tp divides n_head_kv, else each rank keeps the KV heads its
//              query heads read (replicated across ranks; allowed when the grouping stays even)
//   MLP        an ~equal run of n_ff                       gate/up column-parallel, down row-parallel
//   vocabulary an ~equal run of n_vocab                    embedding rows and LM-head rows
// o_proj and down_proj are cut along their input columns, so with block-quantised weights every
// cut must fall on a block boundary (TpSplitTypes): the MLP run is then a near-equal run of whole
// blocks, and the heads' columns must be whole blocks or the split is refused.
// DeepSeek-V2/V3 (kv_lora_rank > 0): query heads as above but any tp <= n_head (near-equal runs: a
// latent layer has no KV-head grouping to keep; each rank keeps the whole latent cache), routed
// experts as near-equal runs of expert ids (any tp <= n_expert), the shared experts' columns and
// the leading dense layers' MLP as near-equal runs. Ranks see every token, so the experts' partial
// sums meet in the same all-reduce as a row-parallel layer's.
// Example, Qwen2.5-0.5B (14 heads, 2 KV heads, n_ff 4864, vocab 151936) with tp = 7: rank 3 holds
// query heads 6..7, KV heads 0..1 (head 6 reads KV head 0, head 7 reads KV head 1), MLP columns
// 2085..2779 and vocabulary ids 65116..86820.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/model_config.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

struct Range {
    int64_t begin = 0;
    int64_t size = 0;
    int64_t end() const { return begin + size; }
    bool operator==(const Range&) const = default;
};

// Element r of n near-equal parts of [0, total): the first total % n parts are one longer.
Range split_range(int64_t total, int n, int r);
// Element r of n near-equal runs of whole `align`-sized units of [0, total) (total a multiple of
// align): split_range of the units, scaled by align. align = 1 gives split_range exactly.
Range split_range_aligned(int64_t total, int n, int r, int64_t align);

// The weight types of the matrices a tensor-parallel split cuts along their input columns; a cut
// must fall on a block boundary of the type. The default (f32: any column) is what a loader that
// converts weights to f32 / bf16 / f16 needs.
struct TpSplitTypes {
    DType o_proj = DType::dtype_f32;     // self_attn.o_proj: columns of the rank's query heads
    DType down_proj = DType::dtype_f32;  // mlp.down_proj: columns TpShard::ff (also gate/up's rows)
};

// The stored types of a checkpoint's o_proj and down_proj weights, for a loader that keeps them
// as stored; where layers differ, the type with the largest block (a multiple of the others').
TpSplitTypes tp_split_types(const ModelConfig& cfg, const TensorSource& source);

struct TpShard {
    int rank = 0;
    int size = 1;
    Range heads;            // query heads
    Range kv_heads;         // KV heads (a replicated head appears on several ranks)
    Range ff;               // MLP intermediate columns
    Range vocab;            // embedding / LM-head rows
    int64_t vocab_max = 0;  // largest vocabulary share of any rank (the logits gather pads to it)
    Range experts;          // MoE: the routed experts this rank holds (expert parallelism)
    Range shared_ff;        // MoE: columns of the shared experts' n_expert_shared * n_ff_expert
};

// Throws gridlm::Error saying what does not divide when tp cannot split this model, or (naming the
// tensor, its type and block size) when a cut along o_proj / down_proj columns would split a block.
void check_tensor_parallel(const ModelConfig& cfg, int tp, const TpSplitTypes& types = {});
TpShard tp_shard(const ModelConfig& cfg, int tp, int rank, const TpSplitTypes& types = {});

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
                         int tp_rank, const TpSplitTypes& types = {});
};

}  // namespace gridlm
