// DeepSeek-V2/V3 GGUF files (general.architecture "deepseek2", as llama.cpp's converter writes
// them): the config keys, and the tensors that do not map one to one onto the HF checkpoint
// (docs/architecture.md, "DeepSeek-V2/V3 in GGUF").
#include <cstring>
#include <string>
#include <string_view>

#include "engine/core/arch.h"
#include "engine/core/error.h"
#include "io/gguf_detail.h"
#include "io/gguf_model.h"

namespace gridlm {

using gguf_detail::fail;
using gguf_detail::nice_double;
using gguf_detail::positive;

namespace {

std::string dims_str(const std::vector<int64_t>& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
}

// Fails unless t has exactly the dims `want` (GGUF order, innermost first); `keys` names where the
// expected sizes come from.
void expect_dims(const GgufFile& f, const GgufTensor& t, const std::vector<int64_t>& want, const std::string& keys) {
    if (t.dims != want) {
        fail(f,
             str("tensor '", t.name, "' has dims ", dims_str(t.dims), "; expected ", dims_str(want), " (", keys, ")"));
    }
}

}  // namespace

void gguf_detail::read_deepseek2_config(const GgufFile& f, ModelConfig& c) {
    const std::string p = "deepseek2.";
    // MLA. llama.cpp's converter writes key_length / value_length for the MQA view of the latent
    // cache (kv_lora_rank + rope, kv_lora_rank) and the real head sizes as *_mla; files written
    // before the attn_k_b / attn_v_b split have only key_length / value_length, the real sizes.
    c.q_lora_rank = f.has(p + "attention.q_lora_rank") ? positive(f, p + "attention.q_lora_rank") : 0;
    c.kv_lora_rank = positive(f, p + "attention.kv_lora_rank");
    c.qk_rope_dim = positive(f, p + "rope.dimension_count");
    const bool mla_keys = f.has(p + "attention.key_length_mla");
    const std::string k_key = p + (mla_keys ? "attention.key_length_mla" : "attention.key_length");
    const std::string v_key = p + (mla_keys ? "attention.value_length_mla" : "attention.value_length");
    c.head_dim = positive(f, k_key);
    c.v_head_dim = positive(f, v_key);
    if (c.head_dim <= c.qk_rope_dim) {
        fail(f, str("metadata key '", k_key, "' = ", c.head_dim, " must exceed '", p,
                    "rope.dimension_count' = ", c.qk_rope_dim, " (the head is nope + rope values)"));
    }
    c.qk_nope_dim = c.head_dim - c.qk_rope_dim;
    c.n_head_kv = c.n_head;  // head_count_kv (1) counts the shared latent head; every head has its own K and V

    // MoE. expert_gating_func is absent from older DeepSeek-V2 files; llama.cpp reads them as softmax.
    c.n_expert = f.has(p + "expert_count") ? f.get_i64(p + "expert_count") : 0;
    if (c.n_expert < 0) fail(f, str("metadata key '", p, "expert_count' = ", c.n_expert, " is negative"));
    int64_t gating = 1;
    if (c.n_expert > 0) {
        c.n_expert_used = positive(f, p + "expert_used_count");
        c.n_ff_expert = positive(f, p + "expert_feed_forward_length");
        c.n_expert_shared = f.has(p + "expert_shared_count") ? f.get_i64(p + "expert_shared_count") : 0;
        c.n_dense_lead = f.has(p + "leading_dense_block_count") ? f.get_i64(p + "leading_dense_block_count") : 0;
        if (c.n_expert_shared < 0 || c.n_dense_lead < 0 || c.n_dense_lead > c.n_layer) {
            fail(f, str("metadata keys '", p, "expert_shared_count' = ", c.n_expert_shared, " and '", p,
                        "leading_dense_block_count' = ", c.n_dense_lead, " must be in 0..", c.n_layer));
        }
        c.n_expert_group = f.has(p + "expert_group_count") ? positive(f, p + "expert_group_count") : 1;
        c.n_group_used = f.has(p + "expert_group_used_count") ? positive(f, p + "expert_group_used_count") : 1;
        c.expert_group_limited = c.n_expert_group > 1;
        if (f.has(p + "expert_weights_scale"))
            c.expert_weights_scale = nice_double(f.get_f32(p + "expert_weights_scale"));
        c.expert_weights_norm = f.has(p + "expert_weights_norm") && f.get_bool(p + "expert_weights_norm");
        if (f.has(p + "expert_gating_func")) gating = f.get_i64(p + "expert_gating_func");
        if (gating != 1 && gating != 2) {
            fail(f, str("metadata key '", p, "expert_gating_func' = ", gating,
                        " is not supported (1: softmax, 2: sigmoid)"));
        }
        c.expert_sigmoid = gating == 2;
        // The score correction bias (V3's noaux_tc) is a tensor, exp_probs_b, in every MoE layer.
        c.expert_score_bias = f.find_tensor(str("blk.", c.n_dense_lead, ".exp_probs_b.bias")) != nullptr;
    }
    c.arch = std::string(arch_name(gating == 2 ? Arch::arch_deepseek_v3 : Arch::arch_deepseek_v2));

    // YaRN. The converter stores mscale_all_dim as yarn_log_multiplier = 0.1 * mscale_all_dim and
    // not mscale; llama.cpp takes mscale = mscale_all_dim, so the cos / sin factor is 1 and the
    // softmax scale carries mscale_all_dim's correction (HF's formulas with both equal).
    const std::string type_key = p + "rope.scaling.type";
    const std::string type = f.has(type_key) ? f.get_string(type_key) : "none";
    if (type == "yarn") {
        const std::string factor_key = p + "rope.scaling.factor";
        c.yarn_factor = nice_double(f.get_f32(factor_key));
        if (!(c.yarn_factor >= 1.0)) fail(f, str("metadata key '", factor_key, "' = ", c.yarn_factor, " must be >= 1"));
        c.yarn_orig_ctx = positive(f, p + "rope.scaling.original_context_length");
        if (f.has(p + "rope.scaling.yarn_beta_fast"))
            c.yarn_beta_fast = nice_double(f.get_f32(p + "rope.scaling.yarn_beta_fast"));
        if (f.has(p + "rope.scaling.yarn_beta_slow"))
            c.yarn_beta_slow = nice_double(f.get_f32(p + "rope.scaling.yarn_beta_slow"));
        if (f.has(p + "rope.scaling.yarn_log_multiplier")) {
            const double m = nice_double(f.get_f32(p + "rope.scaling.yarn_log_multiplier")) / 0.1;
            c.yarn_mscale = c.yarn_mscale_all_dim = m;
        }
        for (const char* k : {"rope.scaling.yarn_attn_factor", "rope.scaling.yarn_ext_factor"}) {
            if (f.has(p + k) && f.get_f64(p + k) != 1.0) {
                fail(f, str("metadata key '", p, k, "' = ", f.get_f64(p + k), " is not supported (only 1)"));
            }
        }
    } else if (type != "none") {
        fail(f, str("metadata key '", type_key, "' = '", type, "' is not supported for deepseek2 (none or yarn)"));
    }
}

bool GgufTensorSource::add_deepseek2_tensor(const GgufTensor& t, const ModelConfig& c) {
    std::string_view layer, part, suffix;
    if (!gguf_detail::split_block_name(t.name, layer, part, suffix) || suffix != ".weight") return false;
    const GgufFile& f = *file_;
    const std::string hf = str("model.layers.", layer, ".");

    if (part == "attn_k_b" || part == "attn_v_b") {
        // kv_b_proj [H * (nope + v), kv_lora], per head nope rows of W_UK then v rows of W_UV. The
        // converter stores W_UK transposed per head (attn_k_b dims {nope, kv_lora, H}) and W_UV as
        // it is (attn_v_b dims {kv_lora, v, H}).
        const std::string name = hf + "self_attn.kv_b_proj.weight";
        if (index_.count(name)) return true;  // added with its partner
        const std::string k_name = str("blk.", layer, ".attn_k_b.weight"),
                          v_name = str("blk.", layer, ".attn_v_b.weight");
        const GgufTensor* k = f.find_tensor(k_name);
        const GgufTensor* v = f.find_tensor(v_name);
        if (!k || !v) {
            fail(f, str("tensor '", t.name, "' has no partner '", k ? v_name : k_name,
                        "' (the split kv_b_proj needs both)"));
        }
        const int64_t H = c.n_head, nope = c.qk_nope_dim, kvl = c.kv_lora_rank, vd = c.v_head_dim;
        expect_dims(f, *k, {nope, kvl, H}, "qk_nope = key_length_mla - rope.dimension_count, kv_lora_rank, head_count");
        expect_dims(f, *v, {kvl, vd, H}, "kv_lora_rank, value_length_mla, head_count");
        TensorInfo info;
        info.name = name;
        info.shape = {H * (nope + vd), kvl};
        info.source_type = k->type == v->type ? std::string(ggml_type_name(k->type))
                                              : str(ggml_type_name(k->type), "+", ggml_type_name(v->type));
        info.source_bytes = k->n_bytes + v->n_bytes;
        View view;
        view.t = k;
        view.v_b = v;
        view.rows = info.shape[0];
        view.cols = kvl;
        add(std::move(info), view, t.name);
        return true;
    }

    // ffn_{gate,up,down}_exps [E, out, in] (dims {in, out, E}) or the fused ffn_gate_up_exps
    // (per expert gate's rows, then up's): expert e's matrix is a slab of whole rows.
    struct Slab {
        const char* hf;
        int64_t first_row;  // within the expert's rows
    };
    std::vector<Slab> slabs;
    int64_t rows = 0, cols = 0;
    const int64_t d = c.n_embd, ff = c.n_ff_expert, E = c.n_expert;
    const std::string keys = "embedding_length, expert_feed_forward_length, expert_count";
    if (part == "ffn_gate_exps" || part == "ffn_up_exps" || part == "ffn_down_exps" || part == "ffn_gate_up_exps") {
        if (E <= 0) fail(f, str("tensor '", t.name, "' holds experts but 'deepseek2.expert_count' is missing or 0"));
    }
    if (part == "ffn_gate_exps" || part == "ffn_up_exps") {
        expect_dims(f, t, {d, ff, E}, keys);
        slabs = {{part == "ffn_gate_exps" ? "gate_proj" : "up_proj", 0}};
        rows = ff, cols = d;
    } else if (part == "ffn_down_exps") {
        expect_dims(f, t, {ff, d, E}, "expert_feed_forward_length, embedding_length, expert_count");
        slabs = {{"down_proj", 0}};
        rows = d, cols = ff;
    } else if (part == "ffn_gate_up_exps") {
        expect_dims(f, t, {d, 2 * ff, E}, "embedding_length, 2 * expert_feed_forward_length, expert_count");
        slabs = {{"gate_proj", 0}, {"up_proj", ff}};
        rows = ff, cols = d;
    } else {
        return false;
    }
    const int64_t expert_rows = t.dims[1];
    for (int64_t e = 0; e < E; ++e) {
        for (const Slab& s : slabs) {
            TensorInfo info;
            info.name = str(hf, "mlp.experts.", e, ".", s.hf, ".weight");
            info.shape = {rows, cols};
            info.source_type = std::string(ggml_type_name(t.type));
            info.source_bytes = ggml_n_bytes(t.type, rows * cols);
            View view;
            view.t = &t;
            view.row0 = e * expert_rows + s.first_row;
            view.rows = rows;
            view.cols = cols;
            add(std::move(info), view, str(t.name, " (expert ", e, ")"));
        }
    }
    return true;
}

std::vector<float> GgufTensorSource::rebuild_kv_b(const View& v) const {
    const GgufTensor &k = *v.t, &vb = *v.v_b;
    const int64_t nope = k.dims[0], kvl = k.dims[1], H = k.dims[2], vd = vb.dims[1];
    View kv = v, vv = v;  // whole tensors
    kv.v_b = vv.v_b = nullptr;
    kv.rows = vv.rows = 0;
    vv.t = &vb;
    const std::vector<float> kf = read_view_f32(kv), vf = read_view_f32(vv);  // [H, kvl, nope], [H, vd, kvl]
    std::vector<float> out((size_t)(H * (nope + vd) * kvl));
    for (int64_t h = 0; h < H; ++h) {
        float* head = out.data() + h * (nope + vd) * kvl;
        const float* kh = kf.data() + h * kvl * nope;
        for (int64_t r = 0; r < nope; ++r)
            for (int64_t j = 0; j < kvl; ++j) head[r * kvl + j] = kh[j * nope + r];
        std::memcpy(head + nope * kvl, vf.data() + h * vd * kvl, (size_t)(vd * kvl) * sizeof(float));
    }
    return out;
}

}  // namespace gridlm
