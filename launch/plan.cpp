// Deployment sizing for `gridlm plan` (see plan.h).
#include "launch/plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "engine/core/error.h"
#include "engine/model/arch_registry.h"
#include "launch/commands.h"

namespace gridlm {

// ---- Weight formats ----------------------------------------------------------------------------

std::string WeightFormat::name() const {
    switch (kind) {
        case Kind::fp8:
            return "fp8";
        case Kind::stored:
            return "stored";
        case Kind::table:
            break;
    }
    return std::string(dtype_name(type));
}

std::string weight_format_names() {
    std::string s = "f32, f16, bf16, fp8";
    for (const DTypeTraits& t : dtype_table)
        if (t.quantized) s += str(", ", t.name);
    return s + ", stored";
}

WeightFormat weight_format_from_name(std::string_view name) {
    std::string lower(name);
    for (char& ch : lower) ch = (char)std::tolower((unsigned char)ch);
    WeightFormat f;
    if (lower == "fp8") {
        f.kind = WeightFormat::Kind::fp8;
        return f;
    }
    if (lower == "stored") {
        f.kind = WeightFormat::Kind::stored;
        return f;
    }
    for (const DTypeTraits& t : dtype_table) {
        if (lower == t.name) {
            f.type = t.type;
            return f;
        }
    }
    throw UsageError(str("--weights '", name, "' is not a weight format; accepted: ", weight_format_names()));
}

std::vector<WeightFormat> weight_formats_from_list(std::string_view list) {
    std::vector<WeightFormat> out;
    size_t start = 0;
    while (true) {
        const size_t comma = list.find(',', start);
        out.push_back(weight_format_from_name(list.substr(start, comma - start)));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return out;
}

DType storage_type(DType type, int64_t cols) {
    if (cols % dtype_block_size(type) == 0) return type;
    DType fallback = DType::dtype_f32;
    if (type == DType::dtype_q4_k) fallback = DType::dtype_q5_0;
    if (type == DType::dtype_q5_k) fallback = DType::dtype_q5_1;
    if (type == DType::dtype_q6_k) fallback = DType::dtype_q8_0;
    return cols % dtype_block_size(fallback) == 0 ? fallback : DType::dtype_f32;
}

DType head_storage_type(DType type, int64_t cols) {
    if (!dtype_is_quantized(type)) return type;
    if (cols % 32 != 0) return DType::dtype_f32;
    return type == DType::dtype_q8_0 || cols % 256 != 0 ? DType::dtype_q8_0 : DType::dtype_q6_k;
}

int64_t matrix_bytes(const WeightFormat& f, int64_t full_cols, int64_t rows, int64_t cols) {
    GRIDLM_ASSERT(f.kind != WeightFormat::Kind::stored);
    if (f.kind == WeightFormat::Kind::fp8) return rows * cols + 4 * ((rows + 127) / 128) * ((cols + 127) / 128);
    const DType t = storage_type(f.type, full_cols);
    const int64_t block = dtype_block_size(t);
    return rows * ((cols + block - 1) / block) * dtype_block_bytes(t);
}

// ---- Memory sizes ------------------------------------------------------------------------------

std::string format_size(int64_t bytes) {
    const double b = (double)bytes, a = std::fabs(b);
    char buf[32];
    if (a >= 1e9)
        std::snprintf(buf, sizeof buf, "%.1f GB", b / 1e9);
    else if (a >= 1e6)
        std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
    else if (a >= 1e3)
        std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
    else
        std::snprintf(buf, sizeof buf, "%lld B", (long long)bytes);
    return buf;
}

// ---- What a rank holds -------------------------------------------------------------------------

std::string_view attention_split_name(AttentionSplit a) { return a == AttentionSplit::heads ? "heads" : "dp"; }

namespace {

bool is_mla(const ModelConfig& c) { return c.kv_lora_rank > 0; }
bool is_moe_layer(const ModelConfig& c, int64_t il) { return c.n_expert > 0 && il >= c.n_dense_lead; }

// Near-equal runs of whole `block`-column blocks when total allows it, else near-equal runs.
Range column_run(int64_t total, int tp, int rank, int64_t block) {
    return tp > 1 && total % block == 0 && total / block >= tp ? split_range_aligned(total, tp, rank, block)
                                                               : split_range(total, tp, rank);
}

void add(std::vector<TensorShare>& out, std::string name, int64_t rows, int64_t cols, int64_t local_rows,
         int64_t local_cols, TensorKind kind) {
    out.push_back({std::move(name), rows, cols, local_rows, local_cols, kind});
}
void add_vec(std::vector<TensorShare>& out, std::string name, int64_t n, int64_t local_n) {
    add(out, std::move(name), n, 1, local_n, 1, TensorKind::f32);
}

// A SwiGLU MLP of n_ff columns, of which the rank holds `ff`.
void add_mlp(std::vector<TensorShare>& out, const std::string& prefix, int64_t d, int64_t n_ff, int64_t ff) {
    add(out, prefix + "gate_proj.weight", n_ff, d, ff, d, TensorKind::matrix);
    add(out, prefix + "up_proj.weight", n_ff, d, ff, d, TensorKind::matrix);
    add(out, prefix + "down_proj.weight", d, n_ff, d, ff, TensorKind::matrix);
}

// The embedding, the layers and the head of one pipeline stage.
std::vector<TensorShare> stage_tensors(const ModelConfig& c, Range layers, bool first, bool last, const TpShare& s) {
    std::vector<TensorShare> out;
    const int64_t v = s.vocab.size;
    // A tied embedding table is the LM head too, and is stored as one.
    const TensorKind table = c.tied_embeddings ? TensorKind::lm_head : TensorKind::embedding;
    if (first) add(out, "model.embed_tokens.weight", c.n_vocab, c.n_embd, v, c.n_embd, table);
    for (int64_t il = layers.begin; il < layers.end(); ++il) {
        std::vector<TensorShare> l = layer_tensors(c, il, s);
        out.insert(out.end(), std::make_move_iterator(l.begin()), std::make_move_iterator(l.end()));
    }
    if (last) {
        add_vec(out, "model.norm.weight", c.n_embd, c.n_embd);
        // A tied head is the embedding table: nothing more on a stage that has it, a copy elsewhere.
        if (!c.tied_embeddings || !first)
            add(out, c.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", c.n_vocab, c.n_embd, v,
                c.n_embd, TensorKind::lm_head);
    }
    return out;
}

}  // namespace

TpShare tp_share(const ModelConfig& c, int tp, int rank, AttentionSplit attention, const TpSplitTypes& types) {
    TpShare s;
    s.tp = tp;
    s.rank = rank;
    s.attention = attention;
    s.vocab = split_range(c.n_vocab, tp, rank);
    if (!is_mla(c)) {
        const TpShard t = tp_shard(c, tp, rank, types);
        s.heads = t.heads;
        s.kv_heads = t.kv_heads;
        s.ff = t.ff;
        return s;
    }
    s.heads = attention == AttentionSplit::heads ? split_range(c.n_head, tp, rank) : Range{0, c.n_head};
    s.kv_heads = s.heads;
    s.ff = column_run(c.n_ff, tp, rank, dtype_block_size(types.down_proj));
    s.shared_ff = column_run(c.n_expert_shared * c.n_ff_expert, tp, rank, 256);
    s.experts = split_range(c.n_expert, tp, rank);
    return s;
}

std::vector<TensorShare> layer_tensors(const ModelConfig& c, int64_t il, const TpShare& s) {
    std::vector<TensorShare> out;
    const std::string p = str("model.layers.", il, "."), a = p + "self_attn.";
    const int64_t d = c.n_embd, H = c.n_head, h = s.heads.size;
    add_vec(out, p + "input_layernorm.weight", d, d);
    if (!is_mla(c)) {
        const int64_t hd = c.head_dim, kv = s.kv_heads.size, Hkv = c.n_head_kv;
        add(out, a + "q_proj.weight", H * hd, d, h * hd, d, TensorKind::matrix);
        add(out, a + "k_proj.weight", Hkv * hd, d, kv * hd, d, TensorKind::matrix);
        add(out, a + "v_proj.weight", Hkv * hd, d, kv * hd, d, TensorKind::matrix);
        if (c.attn_bias) {
            add_vec(out, a + "q_proj.bias", H * hd, h * hd);
            add_vec(out, a + "k_proj.bias", Hkv * hd, kv * hd);
            add_vec(out, a + "v_proj.bias", Hkv * hd, kv * hd);
        }
        add(out, a + "o_proj.weight", d, H * hd, d, h * hd, TensorKind::matrix);
        add_vec(out, p + "post_attention_layernorm.weight", d, d);
        add_mlp(out, p + "mlp.", d, c.n_ff, s.ff.size);
        return out;
    }
    // MLA: q_a and kv_a make the latent rows every head reads, so every rank keeps them whole.
    const int64_t qd = c.qk_nope_dim + c.qk_rope_dim, lat = c.kv_lora_rank + c.qk_rope_dim, vd = c.v_head_dim;
    if (c.q_lora_rank > 0) {
        add(out, a + "q_a_proj.weight", c.q_lora_rank, d, c.q_lora_rank, d, TensorKind::matrix);
        add_vec(out, a + "q_a_layernorm.weight", c.q_lora_rank, c.q_lora_rank);
        add(out, a + "q_b_proj.weight", H * qd, c.q_lora_rank, h * qd, c.q_lora_rank, TensorKind::matrix);
    } else {
        add(out, a + "q_proj.weight", H * qd, d, h * qd, d, TensorKind::matrix);
    }
    add(out, a + "kv_a_proj_with_mqa.weight", lat, d, lat, d, TensorKind::matrix);
    add_vec(out, a + "kv_a_layernorm.weight", c.kv_lora_rank, c.kv_lora_rank);
    const int64_t kvb = c.qk_nope_dim + vd;
    add(out, a + "kv_b_proj.weight", H * kvb, c.kv_lora_rank, h * kvb, c.kv_lora_rank, TensorKind::matrix);
    add(out, a + "o_proj.weight", d, H * vd, d, h * vd, TensorKind::matrix);
    add_vec(out, p + "post_attention_layernorm.weight", d, d);
    if (!is_moe_layer(c, il)) {
        add_mlp(out, p + "mlp.", d, c.n_ff, s.ff.size);
        return out;
    }
    // The router scores every expert for every token: whole on every rank.
    add(out, p + "mlp.gate.weight", c.n_expert, d, c.n_expert, d, TensorKind::f32);
    if (c.expert_score_bias) add_vec(out, p + "mlp.gate.e_score_correction_bias", c.n_expert, c.n_expert);
    for (int64_t x = s.experts.begin; x < s.experts.end(); ++x)
        add_mlp(out, str(p, "mlp.experts.", x, "."), d, c.n_ff_expert, c.n_ff_expert);
    if (c.n_expert_shared > 0)
        add_mlp(out, p + "mlp.shared_experts.", d, c.n_expert_shared * c.n_ff_expert, s.shared_ff.size);
    return out;
}

std::vector<TensorShare> model_tensors(const ModelConfig& c) {
    return stage_tensors(c, {0, c.n_layer}, true, true, tp_share(c, 1, 0, AttentionSplit::heads));
}

ParamCount count_params(const ModelConfig& c) {
    ParamCount n;
    for (const TensorShare& t : model_tensors(c)) {
        const std::string& s = t.name;
        auto has = [&](const char* part) { return s.find(part) != std::string::npos; };
        int64_t* slot = &n.dense_mlp;
        if (has("embed_tokens")) {
            slot = &n.embedding;
        } else if (has("lm_head")) {
            slot = &n.lm_head;
        } else if (has("norm.weight")) {
            slot = &n.norms;
        } else if (has("self_attn.")) {
            slot = &n.attention;
        } else if (has("mlp.experts.")) {
            slot = &n.routed_experts;
        } else if (has("mlp.shared_experts.")) {
            slot = &n.shared_experts;
        } else if (has("mlp.gate.")) {
            slot = &n.router;
        }
        *slot += t.numel();
        n.total += t.numel();
    }
    return n;
}

PlanOptions PlanOptions::cluster(int nodes, int ranks_per_node, int64_t mem_per_rank) {
    PlanOptions o;
    o.nodes = nodes, o.ranks_per_node = ranks_per_node, o.mem_per_rank = mem_per_rank;
    o.overhead_bytes = (int64_t)((double)mem_per_rank * plan_default_overhead_pct / 100.0);
    return o;
}

int64_t PlanOptions::target_kv_tokens(const ModelConfig& cfg) const {
    return min_kv_tokens > 0 ? min_kv_tokens : std::max<int64_t>(cfg.n_ctx_train, 1);
}

// ---- Grids -------------------------------------------------------------------------------------

namespace {

// Bytes of tensor shares in one weight format.
class Sizer {
public:
    Sizer(const WeightFormat& f, const TensorSource* stored) : f_(f) {
        if (f.kind != WeightFormat::Kind::stored) return;
        if (!stored || stored->tensors().empty())
            throw UsageError(
                "--weights stored needs a checkpoint with weights (a .gguf, a gridlm .h5 or a Hugging "
                "Face directory with safetensors), not a config alone");
        std::unordered_map<std::string, const TensorInfo*> by_name;
        for (const TensorInfo& t : stored->tensors()) by_name[t.name] = &t;
        for (const TensorInfo& t : stored->tensors()) {
            if (t.numel() <= 0) continue;
            int64_t bytes = (int64_t)t.source_bytes;
            // FP8 checkpoints keep each matrix's block scales beside it.
            if (auto it = by_name.find(t.name + "_scale_inv"); it != by_name.end())
                bytes += (int64_t)it->second->source_bytes;
            stored_[t.name] = {bytes, t.numel()};
        }
    }

    int64_t bytes(const TensorShare& t) const {
        if (f_.kind == WeightFormat::Kind::stored) {
            auto it = stored_.find(t.name);
            if (it == stored_.end()) throw Error(str("--weights stored: the checkpoint has no tensor ", t.name));
            // The share's part of the tensor's bytes (exact for cuts on block boundaries), rounded up.
            const auto [bytes, numel] = it->second;
            return (int64_t)(((__int128)bytes * t.local_numel() + numel - 1) / numel);
        }
        if (t.kind == TensorKind::f32) return 4 * t.local_numel();
        if (t.kind != TensorKind::matrix && f_.kind == WeightFormat::Kind::fp8) return 2 * t.local_numel();
        if (t.kind == TensorKind::lm_head) {
            WeightFormat head = f_;
            head.type = head_storage_type(f_.type, t.cols);
            return matrix_bytes(head, t.cols, t.local_rows, t.local_cols);
        }
        return matrix_bytes(f_, t.cols, t.local_rows, t.local_cols);
    }

private:
    WeightFormat f_;
    std::unordered_map<std::string, std::pair<int64_t, int64_t>> stored_;  // name -> bytes, values
};

// The block types the tp cuts along o_proj / down_proj input columns must respect in this format.
TpSplitTypes split_types(const ModelConfig& c, const WeightFormat& f, const TensorSource* stored) {
    TpSplitTypes t;
    if (f.kind == WeightFormat::Kind::stored) return stored ? tp_split_types(c, *stored) : t;
    if (f.kind != WeightFormat::Kind::table) return t;  // fp8 blocks may be cut: their scales are per block
    t.o_proj = storage_type(f.type, c.n_head * (is_mla(c) ? c.v_head_dim : c.head_dim));
    t.down_proj = storage_type(f.type, c.n_ff);
    return t;
}

// Why rank r's share `part` of a matrix's `total` input columns is not whole blocks of `type`; empty if it is.
std::string cut_problem(int tp, const char* tensor, DType type, int64_t total, int r, Range part) {
    const int64_t block = dtype_block_size(type);
    if (part.size > 0 && part.begin % block == 0 && part.size % block == 0) return "";
    return str("tp=", tp, " cannot split ", tensor, " (", dtype_name(type), ", blocks of ", block, ") along its ",
               total, " input columns into whole blocks (rank ", r, " would get ", part.size, " columns)");
}

// Why the model refuses this tp; empty when it allows it.
std::string tp_problem(const ModelConfig& c, int tp, AttentionSplit attention, const TpSplitTypes& types) {
    if (!is_mla(c)) {
        try {
            check_tensor_parallel(c, tp, types);
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    }
    if (c.n_expert > 0 && c.n_expert % tp != 0)
        return str("tp=", tp, " does not divide the model's ", c.n_expert,
                   " routed experts (expert parallelism gives every rank n_expert/tp of them)");
    if (c.n_expert == 0 && c.n_head % tp != 0)
        return str("tp=", tp, " does not divide the model's ", c.n_head, " attention heads");
    if (attention == AttentionSplit::heads && tp > c.n_head)
        return str("tp=", tp, " is larger than the model's ", c.n_head, " attention heads");
    const bool dense_layers = c.n_expert == 0 || c.n_dense_lead > 0;
    if (dense_layers && tp > c.n_ff) return str("tp=", tp, " is larger than the MLP size ", c.n_ff);
    for (int r = 0; r < tp && tp > 1; ++r) {
        const TpShare s = tp_share(c, tp, r, attention, types);
        std::string why;
        if (attention == AttentionSplit::heads)
            why = cut_problem(tp, "self_attn.o_proj", types.o_proj, c.n_head * c.v_head_dim, r,
                              {s.heads.begin * c.v_head_dim, s.heads.size * c.v_head_dim});
        if (why.empty() && dense_layers) why = cut_problem(tp, "mlp.down_proj", types.down_proj, c.n_ff, r, s.ff);
        if (!why.empty()) return why;
    }
    return "";
}

StageSize stage_size(const ModelConfig& c, const Sizer& sizer, const PlanOptions& opt, const TpShare& share,
                     Range layers, bool first, bool last) {
    StageSize st;
    st.layers = layers;
    for (const TensorShare& t : stage_tensors(c, layers, first, last, share)) st.weight_bytes += sizer.bytes(t);
    // The stage's own config, as engine/model/model.cpp sizes its KV cache and step workspace.
    ModelConfig local = c;
    local.n_layer = layers.size;
    local.n_head = share.heads.size;
    local.n_head_kv = is_mla(c) ? share.heads.size : share.kv_heads.size;
    local.n_ff = share.ff.size;
    local.n_vocab = share.vocab.size;
    const ArchSpec& spec = arch_spec(c.arch);
    KvLayout kv = spec.kv_layout(local);
    kv.dtype = opt.kv_dtype;
    st.kv_bytes_per_token = kv.bytes_per_token();
    const int64_t floats_per_token = c.n_embd + spec.scratch_per_token(local) + (last ? share.vocab.size : 0);
    st.reserve_bytes = opt.overhead_bytes + 4 * opt.step_tokens * floats_per_token;
    st.free_bytes = opt.mem_per_rank - st.weight_bytes - st.reserve_bytes;
    const int64_t block = plan_kv_block_tokens * st.kv_bytes_per_token;
    st.kv_tokens = st.free_bytes > 0 && block > 0 ? st.free_bytes / block * plan_kv_block_tokens : 0;
    return st;
}

std::string grid_name(int dp, int pp, int tp) { return str("dp=", dp, " pp=", pp, " tp=", tp); }

}  // namespace

FormatPlan plan_grids(const ModelConfig& c, const WeightFormat& weights, const PlanOptions& opt,
                      const TensorSource* stored) {
    arch_spec(c.arch).check_config(c);
    if (opt.nodes < 1 || opt.ranks_per_node < 1) throw UsageError("--nodes and --ranks-per-node must be >= 1");
    if (opt.mem_per_rank < 1) throw UsageError("--mem-per-rank must be at least one byte");
    FormatPlan plan;
    plan.weights = weights;
    const Sizer sizer(weights, stored);
    for (const TensorShare& t : model_tensors(c)) plan.model_bytes += sizer.bytes(t);
    const TpSplitTypes types = split_types(c, weights, stored);
    const int world = opt.nodes * opt.ranks_per_node;
    const int64_t target = opt.target_kv_tokens(c);
    for (int tp = 1; tp <= world; ++tp) {
        if (world % tp != 0) continue;
        for (int pp = 1; pp <= world / tp; ++pp) {
            if (world / tp % pp != 0) continue;
            const int dp = world / tp / pp;
            std::string why;
            if (opt.ranks_per_node % tp != 0)
                why = str("tp=", tp, " does not divide the ", opt.ranks_per_node,
                          " ranks per node (a tp group stays inside one node)");
            else if (pp > c.n_layer)
                why = str("pp=", pp, " is larger than the model's ", c.n_layer, " layers");
            else
                why = tp_problem(c, tp, opt.attention, types);
            if (!why.empty()) {
                plan.rejected.push_back({dp, pp, tp, why});
                continue;
            }
            GridSize g;
            g.dp = dp, g.pp = pp, g.tp = tp;
            const TpShare share = tp_share(c, tp, 0, opt.attention, types);
            const std::vector<int64_t> counts = pipeline_layers(c, pp);
            int64_t begin = 0;
            for (int s = 0; s < pp; ++s) {
                g.stages.push_back(stage_size(c, sizer, opt, share, {begin, counts[s]}, s == 0, s == pp - 1));
                begin += counts[s];
            }
            // One --kv-cache-bytes serves every rank: the least free memory of any stage. generate
            // then gives every rank the smallest block count of any stage, B / (the largest bytes a
            // token takes on a stage), so the grid's figures are those of the stage with the least
            // free memory, with the largest KV bytes per token of any stage.
            const StageSize* heaviest = &g.stages[0];
            for (const StageSize& st : g.stages) {
                if (st.free_bytes < heaviest->free_bytes) heaviest = &st;
                g.kv_bytes_per_token = std::max(g.kv_bytes_per_token, st.kv_bytes_per_token);
            }
            g.weight_bytes = heaviest->weight_bytes;
            g.reserve_bytes = heaviest->reserve_bytes;
            g.free_bytes = heaviest->free_bytes;
            const int64_t block = plan_kv_block_tokens * g.kv_bytes_per_token;
            g.kv_tokens_per_rank = g.free_bytes > 0 && block > 0 ? g.free_bytes / block * plan_kv_block_tokens : 0;
            const bool attention_dp = is_mla(c) && opt.attention == AttentionSplit::data_parallel;
            g.kv_tokens_per_replica = g.kv_tokens_per_rank * (attention_dp ? tp : 1);
            g.kv_tokens_total = g.kv_tokens_per_replica * dp;
            if (g.free_bytes < 0) {
                g.why_not =
                    str("weights ", format_size(heaviest->weight_bytes), " + reserve ",
                        format_size(heaviest->reserve_bytes), " exceed the rank's ", format_size(opt.mem_per_rank),
                        pp > 1 ? str(" (stage ", heaviest - g.stages.data(), ")") : "");
            } else if (g.kv_tokens_per_rank < target) {
                g.why_not = str(g.kv_tokens_per_rank, " free KV tokens per rank, below the target ", target);
            }
            g.fits = g.why_not.empty();
            plan.grids.push_back(std::move(g));
        }
    }
    // Fewest model-parallel ranks first (most replicas), then the largest tp, then the most KV tokens.
    std::stable_sort(plan.grids.begin(), plan.grids.end(), [](const GridSize& a, const GridSize& b) {
        if (a.model_parallel() != b.model_parallel()) return a.model_parallel() < b.model_parallel();
        if (a.tp != b.tp) return a.tp > b.tp;
        return a.kv_tokens_total > b.kv_tokens_total;
    });
    for (size_t i = 0; i < plan.grids.size(); ++i) {
        if (!plan.grids[i].fits) continue;
        const GridSize& g = plan.grids[i];
        plan.recommended = (int)i;
        int same_size = 0;
        for (const GridSize& o : plan.grids) same_size += o.fits && o.model_parallel() == g.model_parallel();
        plan.reason =
            str("the fewest model-parallel ranks (pp*tp = ", g.model_parallel(),
                ") that hold the weights with at least ", target,
                " free KV tokens per rank, which leaves the most data-parallel replicas (dp=", g.dp, ") for throughput",
                same_size > 1 ? "; of such grids the largest tp (a tp group shares a node's links, and "
                                "fewer pipeline stages idle less)"
                              : "");
        return plan;
    }
    if (plan.grids.empty()) {
        plan.reason = "the rules refuse every grid (--verbose lists why)";
        return plan;
    }
    auto need = [](const GridSize& g) { return g.weight_bytes + g.reserve_bytes; };
    const GridSize* lightest = &plan.grids[0];
    const GridSize* roomiest = &plan.grids[0];
    for (const GridSize& g : plan.grids) {
        if (need(g) < need(*lightest)) lightest = &g;
        if (g.kv_tokens_per_rank > roomiest->kv_tokens_per_rank) roomiest = &g;
    }
    if (lightest->free_bytes < 0) {
        plan.reason = str("the weights do not fit; the lightest grid, ",
                          grid_name(lightest->dp, lightest->pp, lightest->tp), ", needs ",
                          format_size(lightest->weight_bytes), " of weights and ", format_size(lightest->reserve_bytes),
                          " of reserve per rank; a rank has ", format_size(opt.mem_per_rank));
    } else {
        plan.reason =
            str("none leaves ", target, " free KV tokens per rank; the most is ", roomiest->kv_tokens_per_rank, " (",
                grid_name(roomiest->dp, roomiest->pp, roomiest->tp), "): lower --min-kv-tokens to accept it");
    }
    return plan;
}

}  // namespace gridlm
