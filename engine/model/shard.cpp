// Tensor-parallel slices and pipeline stages of a model (see shard.h).
#include "engine/model/shard.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_set>

#include "engine/core/error.h"

namespace gridlm {

Range split_range(int64_t total, int n, int r) {
    GRIDLM_ASSERT(n >= 1 && r >= 0 && r < n);
    const int64_t base = total / n, extra = total % n;
    return {r * base + std::min<int64_t>(r, extra), base + (r < extra ? 1 : 0)};
}

Range split_range_aligned(int64_t total, int n, int r, int64_t align) {
    GRIDLM_ASSERT(align >= 1 && total % align == 0);
    const Range units = split_range(total / align, n, r);
    return {units.begin * align, units.size * align};
}

TpSplitTypes tp_split_types(const ModelConfig& c, const TensorSource& source) {
    TpSplitTypes t;
    // Keeps the type with the larger block; block sizes (1, 32, 256) each divide the larger ones.
    auto widen = [](DType& have, DType next) {
        const int64_t a = dtype_block_size(have), b = dtype_block_size(next);
        GRIDLM_ASSERT(a % b == 0 || b % a == 0);
        if (b > a) have = next;
    };
    std::unordered_set<std::string> names;
    for (const TensorInfo& info : source.tensors()) names.insert(info.name);
    for (int64_t il = 0; il < c.n_layer; ++il) {  // a missing tensor is the loader's error to report
        const std::string o = str("model.layers.", il, ".self_attn.o_proj.weight");
        const std::string down = str("model.layers.", il, ".mlp.down_proj.weight");
        if (names.count(o)) widen(t.o_proj, source.stored_type(o));
        if (names.count(down)) widen(t.down_proj, source.stored_type(down));
    }
    return t;
}

namespace {

// KV heads read by query heads `heads` (GQA: head h reads KV head h / group).
Range kv_heads_of(const ModelConfig& c, Range heads) {
    const int64_t group = c.n_head / c.n_head_kv;
    const int64_t first = heads.begin / group, last = (heads.end() - 1) / group;
    return {first, last - first + 1};
}

// Rank r's run of the n_ff MLP columns: whole blocks of down_proj's type when n_ff is whole
// blocks (any column without tp), else plain near-equal runs (which check_column_blocks refuses
// for a block type).
Range ff_share(const ModelConfig& c, int tp, int r, DType down_proj) {
    const int64_t block = tp == 1 ? 1 : dtype_block_size(down_proj);
    return c.n_ff % block == 0 ? split_range_aligned(c.n_ff, tp, r, block) : split_range(c.n_ff, tp, r);
}

// Refuses a split whose cuts along a matrix's input columns fall inside a block of its type, or
// that leaves a rank no columns.  parts: [tp] each rank's columns
void check_column_blocks(int tp, const char* tensor, DType type, int64_t total, const std::vector<Range>& parts) {
    const int64_t block = dtype_block_size(type);
    for (size_t r = 0; r < parts.size(); ++r) {
        const Range& part = parts[r];
        if (part.begin % block == 0 && part.size % block == 0 && part.size > 0) continue;
        const std::string share = part.size > 0 ? str("columns ", part.begin, "..", part.end() - 1) : "no columns";
        throw Error(str("tp=", tp, " cannot split ", tensor, " (", dtype_traits(type).file_name, ", blocks of ", block,
                        ") along its ", total, " input columns: each rank's share must be a whole number of blocks",
                        " (rank ", r, " would get ", share, "); another tp, or --dtype f32 / bf16 / f16, avoids it"));
    }
}

}  // namespace

void check_tensor_parallel(const ModelConfig& c, int tp, const TpSplitTypes& types) {
    if (tp < 1) throw Error(str("tp must be >= 1, got ", tp));
    if (c.kv_lora_rank > 0) {  // MLA (+ MoE): near-equal runs of heads and experts, any tp up to their counts
        if (c.n_head < tp) throw Error(str("tp=", tp, " is larger than the model's ", c.n_head, " attention heads"));
        if (c.n_expert > 0 && c.n_expert < tp)
            throw Error(str("tp=", tp, " is larger than the model's ", c.n_expert, " routed experts"));
        if (c.n_ff < tp) throw Error(str("tp=", tp, " is larger than the MLP size ", c.n_ff));
        if (c.n_expert_shared > 0 && c.n_expert_shared * c.n_ff_expert < tp)
            throw Error(str("tp=", tp, " is larger than the shared experts' size ", c.n_expert_shared * c.n_ff_expert));
        if (c.n_vocab < tp) throw Error(str("tp=", tp, " is larger than the vocabulary ", c.n_vocab));
        if (tp == 1) return;
        std::vector<Range> o_cols, ff_cols;
        for (int r = 0; r < tp; ++r) {
            const Range heads = split_range(c.n_head, tp, r);
            o_cols.push_back({heads.begin * c.v_head_dim, heads.size * c.v_head_dim});
            ff_cols.push_back(ff_share(c, tp, r, types.down_proj));
        }
        check_column_blocks(tp, "self_attn.o_proj", types.o_proj, c.n_head * c.v_head_dim, o_cols);
        check_column_blocks(tp, "mlp.down_proj", types.down_proj, c.n_ff, ff_cols);
        return;
    }
    if (c.n_head % tp != 0) throw Error(str("tp=", tp, " does not divide the model's ", c.n_head, " attention heads"));
    if (c.n_head_kv % tp != 0 && tp % c.n_head_kv != 0) {
        // Replicated KV heads work when each rank's query heads map evenly onto its KV heads.
        for (int r = 0; r < tp; ++r) {
            const Range heads = split_range(c.n_head, tp, r), kv = kv_heads_of(c, heads);
            bool even = heads.size % kv.size == 0;
            for (int64_t j = 0; even && j < heads.size; ++j) {
                const int64_t want = (heads.begin + j) / (c.n_head / c.n_head_kv) - kv.begin;
                even = want == j / (heads.size / kv.size);
            }
            if (!even)
                throw Error(str("tp=", tp, " neither divides the model's ", c.n_head_kv,
                                " KV heads nor replicates them evenly (rank ", r, " would hold query heads ",
                                heads.begin, "..", heads.end() - 1, " over KV heads ", kv.begin, "..", kv.end() - 1,
                                ")"));
        }
    }
    if (c.n_ff < tp) throw Error(str("tp=", tp, " is larger than the MLP size ", c.n_ff));
    if (c.n_vocab < tp) throw Error(str("tp=", tp, " is larger than the vocabulary ", c.n_vocab));
    if (tp == 1) return;  // nothing is cut
    std::vector<Range> o_cols, ff_cols;
    for (int r = 0; r < tp; ++r) {
        const Range heads = split_range(c.n_head, tp, r);
        o_cols.push_back({heads.begin * c.head_dim, heads.size * c.head_dim});
        ff_cols.push_back(ff_share(c, tp, r, types.down_proj));
    }
    check_column_blocks(tp, "self_attn.o_proj", types.o_proj, c.n_head * c.head_dim, o_cols);
    check_column_blocks(tp, "mlp.down_proj", types.down_proj, c.n_ff, ff_cols);
}

TpShard tp_shard(const ModelConfig& c, int tp, int rank, const TpSplitTypes& types) {
    check_tensor_parallel(c, tp, types);
    GRIDLM_ASSERT(rank >= 0 && rank < tp);
    TpShard s;
    s.rank = rank;
    s.size = tp;
    s.heads = split_range(c.n_head, tp, rank);
    s.kv_heads = kv_heads_of(c, s.heads);
    // One range for gate/up rows and down columns, so it follows down_proj's blocks.
    s.ff = ff_share(c, tp, rank, types.down_proj);
    s.vocab = split_range(c.n_vocab, tp, rank);
    s.vocab_max = split_range(c.n_vocab, tp, 0).size;
    s.experts = split_range(c.n_expert, tp, rank);
    // Shared experts' columns in runs of whole 256-column blocks when they allow it (any block type
    // then cuts cleanly), else near-equal runs.
    const int64_t shared = c.n_expert_shared * c.n_ff_expert;
    s.shared_ff = shared % 256 == 0 && shared / 256 >= tp ? split_range_aligned(shared, tp, rank, 256)
                                                          : split_range(shared, tp, rank);
    return s;
}

std::vector<int64_t> pipeline_layers(const ModelConfig& c, int pp, const std::vector<int64_t>& counts) {
    if (pp < 1) throw Error(str("pp must be >= 1, got ", pp));
    if (pp > c.n_layer) throw Error(str("pp=", pp, " is larger than the model's ", c.n_layer, " layers"));
    if (!counts.empty()) {
        if ((int)counts.size() != pp) throw Error(str("--pp-layers lists ", counts.size(), " stages but pp=", pp));
        for (int64_t n : counts)
            if (n < 1) throw Error(str("--pp-layers: every stage needs at least one layer, got ", n));
        const int64_t sum = std::accumulate(counts.begin(), counts.end(), int64_t{0});
        if (sum != c.n_layer) throw Error(str("--pp-layers adds up to ", sum, " layers; the model has ", c.n_layer));
        return counts;
    }
    // Balance weight bytes: each layer costs its matrices (a DeepSeek MoE layer all its experts, its
    // leading dense layers much less), the last stage also the LM head.
    auto layer_cost = [&](int64_t il) {
        const double d = (double)c.n_embd;
        if (c.kv_lora_rank <= 0) return d * c.head_dim * (2 * c.n_head + 2 * c.n_head_kv) + 3.0 * d * c.n_ff;
        const double qd = (double)(c.qk_nope_dim + c.qk_rope_dim);
        const double q = c.q_lora_rank > 0 ? c.q_lora_rank * (d + c.n_head * qd) : d * c.n_head * qd;
        const double attn = q + d * (c.kv_lora_rank + c.qk_rope_dim) +
                            (double)c.n_head * (c.qk_nope_dim + c.v_head_dim) * c.kv_lora_rank +
                            d * c.n_head * c.v_head_dim;
        if (c.n_expert == 0 || il < c.n_dense_lead) return attn + 3.0 * d * c.n_ff;
        return attn + d * c.n_expert + 3.0 * d * c.n_ff_expert * (double)(c.n_expert + c.n_expert_shared);
    };
    std::vector<double> cum((size_t)c.n_layer + 1, 0.0);  // cost of layers [0, i)
    for (int64_t il = 0; il < c.n_layer; ++il) cum[il + 1] = cum[il] + layer_cost(il);
    const double head = (double)c.n_vocab * c.n_embd;
    const double per_stage = (cum[c.n_layer] + head) / pp;
    std::vector<int64_t> out;
    int64_t given = 0;
    for (int s = 0; s < pp - 1; ++s) {
        const int64_t left_stages = pp - 1 - s;  // stages after this one, each needs a layer
        // The end of this stage: the layer boundary nearest to (s + 1) stages' share.
        const double target = per_stage * (s + 1);
        int64_t end = given + 1;
        while (end < c.n_layer - left_stages && std::fabs(cum[end + 1] - target) <= std::fabs(cum[end] - target)) ++end;
        out.push_back(end - given);
        given = end;
    }
    out.push_back(c.n_layer - given);
    return out;
}

ModelShard ModelShard::whole(const ModelConfig& c) {
    ModelShard s;
    s.layers = {0, c.n_layer};
    s.tp = tp_shard(c, 1, 0);
    return s;
}

ModelShard ModelShard::of(const ModelConfig& c, const std::vector<int64_t>& stage_layers, int stage, int tp,
                          int tp_rank, const TpSplitTypes& types) {
    GRIDLM_ASSERT(stage >= 0 && stage < (int)stage_layers.size());
    ModelShard s;
    s.layers.begin = std::accumulate(stage_layers.begin(), stage_layers.begin() + stage, int64_t{0});
    s.layers.size = stage_layers[stage];
    s.embedding = stage == 0;
    s.head = stage == (int)stage_layers.size() - 1;
    s.tp = tp_shard(c, tp, tp_rank, types);
    return s;
}

}  // namespace gridlm
