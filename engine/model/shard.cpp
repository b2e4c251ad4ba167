// Tensor-parallel slices and pipeline stages of a model (see shard.h).
#include "engine/model/shard.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/core/error.h"

namespace gridlm {

Range split_range(int64_t total, int n, int r) {
    GRIDLM_ASSERT(n >= 1 && r >= 0 && r < n);
    const int64_t base = total / n, extra = total % n;
    return {r * base + std::min<int64_t>(r, extra), base + (r < extra ? 1 : 0)};
}

namespace {

// KV heads read by query heads `heads` (GQA: head h reads KV head h / group).
Range kv_heads_of(const ModelConfig& c, Range heads) {
    const int64_t group = c.n_head / c.n_head_kv;
    const int64_t first = heads.begin / group, last = (heads.end() - 1) / group;
    return {first, last - first + 1};
}

}  // namespace

void check_tensor_parallel(const ModelConfig& c, int tp) {
    if (tp < 1) throw Error(str("tp must be >= 1, got ", tp));
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
}

TpShard tp_shard(const ModelConfig& c, int tp, int rank) {
    check_tensor_parallel(c, tp);
    GRIDLM_ASSERT(rank >= 0 && rank < tp);
    TpShard s;
    s.rank = rank;
    s.size = tp;
    s.heads = split_range(c.n_head, tp, rank);
    s.kv_heads = kv_heads_of(c, s.heads);
    s.ff = split_range(c.n_ff, tp, rank);
    s.vocab = split_range(c.n_vocab, tp, rank);
    s.vocab_max = split_range(c.n_vocab, tp, 0).size;
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
    // Balance weight bytes: each layer costs its matrices, the last stage also the LM head.
    const double layer = (double)c.n_embd * c.head_dim * (2 * c.n_head + 2 * c.n_head_kv) + 3.0 * c.n_embd * c.n_ff;
    const double head = (double)c.n_vocab * c.n_embd;
    const double per_stage = (layer * c.n_layer + head) / pp;
    std::vector<int64_t> out;
    int64_t given = 0;
    for (int s = 0; s < pp - 1; ++s) {
        const int64_t left_stages = pp - 1 - s;  // stages after this one, each needs a layer
        int64_t n = (int64_t)std::llround((per_stage * (s + 1)) / layer) - given;
        n = std::clamp<int64_t>(n, 1, c.n_layer - given - left_stages);
        out.push_back(n);
        given += n;
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
                          int tp_rank) {
    GRIDLM_ASSERT(stage >= 0 && stage < (int)stage_layers.size());
    ModelShard s;
    s.layers.begin = std::accumulate(stage_layers.begin(), stage_layers.begin() + stage, int64_t{0});
    s.layers.size = stage_layers[stage];
    s.embedding = stage == 0;
    s.head = stage == (int)stage_layers.size() - 1;
    s.tp = tp_shard(c, tp, tp_rank);
    return s;
}

}  // namespace gridlm
