// The DeepSeek-V2 / V3 decoder (deepseek.h): MLA in the absorbed form over a latent cache, and
// mixture-of-experts layers whose tokens are grouped by expert. The per-head gathers, the RoPE of
// the 64-wide parts and the expert routing run on the host (the CPU backend's memory); every
// matrix product goes through Backend::matmul, so a token's result does not depend on its batch.
#include "engine/model/deepseek.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "engine/core/error.h"
#include "engine/model/blocks.h"

namespace gridlm {

namespace {

bool is_moe_layer(const ModelConfig& c, int64_t il) { return c.n_expert > 0 && il >= c.n_dense_lead; }

// HF's yarn_get_mscale / get_mscale: 0.1 * m * ln(scale) + 1 for scale > 1.
double yarn_mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

// Rotates adjacent pairs (2i, 2i+1) of v by the angle whose cos / sin are cs[i] / cs[half + i].
// v: [dim]; cs: [dim] (cos for i < dim/2, then sin)
void rope_pairs(float* v, const float* cs, int64_t dim) {
    const int64_t half = dim / 2;
    for (int64_t i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1], co = cs[i], si = cs[half + i];
        v[2 * i] = a * co - b * si;
        v[2 * i + 1] = b * co + a * si;
    }
}

// Scratch of one step, per token (deepseek_scratch_per_token is their sum).
struct DsScratch {
    float *xn, *y, *cs;                                  // [n, d], [n, d], [n, rope]
    float *qa, *q, *ckv, *c, *kvrow, *qlat, *olat, *oh;  // MLA activations
    float *head_in, *head_out;                           // one head's gathered rows
    float *gate, *up;                                    // dense MLP [n, n_ff]
    float *logits, *xg, *eg, *eu, *yg, *sg, *su, *ys;    // MoE

    static int64_t floats_per_token(const ModelConfig& c) {
        const int64_t H = c.n_head, qd = c.qk_nope_dim + c.qk_rope_dim, lat = c.kv_lora_rank + c.qk_rope_dim;
        const int64_t K = std::max<int64_t>(c.n_expert_used, 1), shared = c.n_expert_shared * c.n_ff_expert;
        return 2 * c.n_embd + c.qk_rope_dim                             // xn, y, cs
               + c.q_lora_rank + H * qd + lat + c.kv_lora_rank + lat    // qa, q, ckv, c, kvrow
               + H * lat + H * c.kv_lora_rank + H * c.v_head_dim        // qlat, olat, oh
               + std::max(c.qk_nope_dim, c.kv_lora_rank)                // head_in
               + std::max(c.kv_lora_rank, c.v_head_dim)                 // head_out
               + 2 * c.n_ff                                             // gate, up
               + c.n_expert + 2 * K * c.n_embd + 2 * K * c.n_ff_expert  // logits, xg, yg, eg, eu
               + 2 * shared + c.n_embd;                                 // sg, su, ys
    }

    static DsScratch take(Scratch& s, const ModelConfig& c, int64_t n) {
        const int64_t H = c.n_head, qd = c.qk_nope_dim + c.qk_rope_dim, lat = c.kv_lora_rank + c.qk_rope_dim;
        const int64_t K = std::max<int64_t>(c.n_expert_used, 1), shared = c.n_expert_shared * c.n_ff_expert;
        DsScratch r;
        r.xn = s.take(n * c.n_embd);
        r.y = s.take(n * c.n_embd);
        r.cs = s.take(n * c.qk_rope_dim);
        r.qa = s.take(n * c.q_lora_rank);
        r.q = s.take(n * H * qd);
        r.ckv = s.take(n * lat);
        r.c = s.take(n * c.kv_lora_rank);
        r.kvrow = s.take(n * lat);
        r.qlat = s.take(n * H * lat);
        r.olat = s.take(n * H * c.kv_lora_rank);
        r.oh = s.take(n * H * c.v_head_dim);
        r.head_in = s.take(n * std::max(c.qk_nope_dim, c.kv_lora_rank));
        r.head_out = s.take(n * std::max(c.kv_lora_rank, c.v_head_dim));
        r.gate = s.take(n * c.n_ff);
        r.up = s.take(n * c.n_ff);
        r.logits = s.take(n * c.n_expert);
        r.xg = s.take(n * K * c.n_embd);
        r.yg = s.take(n * K * c.n_embd);
        r.eg = s.take(n * K * c.n_ff_expert);
        r.eu = s.take(n * K * c.n_ff_expert);
        r.sg = s.take(n * shared);
        r.su = s.take(n * shared);
        r.ys = s.take(n * c.n_embd);
        return r;
    }
};

// cs[t] = attention_factor * (cos | sin)(pos[t] * inv_freq) for the step's tokens.  cs: [n, dim]
void rope_table_freqs(const StepContext& c, const RopeFrequencies& f, int64_t dim, float* cs) {
    const int64_t half = dim / 2;
    for (int64_t t = 0; t < c.n; ++t) {
        for (int64_t i = 0; i < half; ++i) {
            const double a = (double)c.pos[t] * f.inv_freq[i];
            cs[t * dim + i] = (float)(std::cos(a) * f.attention_factor);
            cs[t * dim + half + i] = (float)(std::sin(a) * f.attention_factor);
        }
    }
}

// out = o_proj(MLA(xn)); stores the step's latent rows in the cache (c.use_layer first).
void mla_block(StepContext& c, const MlaWeights& w, const DsScratch& s, const float* xn, float* out) {
    Backend& be = c.be;
    const ModelConfig& cfg = c.cfg;
    const int64_t n = c.n, H = cfg.n_head, nope = cfg.qk_nope_dim, rope = cfg.qk_rope_dim, kvl = cfg.kv_lora_rank;
    const int64_t vd = cfg.v_head_dim, qd = nope + rope, lat = kvl + rope;
    if (cfg.q_lora_rank > 0) {
        be.matmul_multi(xn, n, {{w.q_a, nullptr, s.qa}, {w.kv_a, nullptr, s.ckv}});  // [n, q_lora], [n, lat]
        be.rmsnorm(s.qa, w.q_a_norm, n, cfg.q_lora_rank, (float)cfg.rms_eps, s.qa);
        be.matmul(s.qa, w.q, nullptr, n, s.q);  // [n, H * qd]
    } else {
        be.matmul_multi(xn, n, {{w.q, nullptr, s.q}, {w.kv_a, nullptr, s.ckv}});
    }
    // The latent row: norm(c) | rope(k_pe).
    for (int64_t t = 0; t < n; ++t) std::memcpy(s.c + t * kvl, s.ckv + t * lat, kvl * sizeof(float));
    be.rmsnorm(s.c, w.kv_a_norm, n, kvl, (float)cfg.rms_eps, s.c);
    for (int64_t t = 0; t < n; ++t) {
        float* row = s.kvrow + t * lat;
        std::memcpy(row, s.c + t * kvl, kvl * sizeof(float));
        std::memcpy(row + kvl, s.ckv + t * lat + kvl, rope * sizeof(float));
        rope_pairs(row + kvl, s.cs + t * rope, rope);
    }
    // Absorbed queries: q_lat[t, h] = [W_UK[h]^T q_nope[t, h] | rope(q_pe[t, h])].
    for (int64_t h = 0; h < H; ++h) {
        for (int64_t t = 0; t < n; ++t) std::memcpy(s.head_in + t * nope, s.q + (t * H + h) * qd, nope * sizeof(float));
        be.matmul(s.head_in, w.uk_t[h], nullptr, n, s.head_out);  // [n, kvl]
        for (int64_t t = 0; t < n; ++t) {
            float* ql = s.qlat + (t * H + h) * lat;
            std::memcpy(ql, s.head_out + t * kvl, kvl * sizeof(float));
            std::memcpy(ql + kvl, s.q + (t * H + h) * qd + nope, rope * sizeof(float));
            rope_pairs(ql + kvl, s.cs + t * rope, rope);
        }
    }
    be.kv_store(s.kvrow, nullptr, c.seqs.data(), (int64_t)c.seqs.size());
    const AttentionShape shape{H, 1, lat, (float)mla_softmax_scale(cfg), kvl};
    be.attention(s.qlat, c.seqs.data(), (int64_t)c.seqs.size(), shape, s.olat);  // [n, H, kvl]
    // o[t, h] = W_UV[h] o_lat[t, h]
    for (int64_t h = 0; h < H; ++h) {
        for (int64_t t = 0; t < n; ++t)
            std::memcpy(s.head_in + t * kvl, s.olat + (t * H + h) * kvl, kvl * sizeof(float));
        be.matmul(s.head_in, w.uv[h], nullptr, n, s.head_out);  // [n, vd]
        for (int64_t t = 0; t < n; ++t) std::memcpy(s.oh + (t * H + h) * vd, s.head_out + t * vd, vd * sizeof(float));
    }
    be.matmul(s.oh, w.o, nullptr, n, out);  // [n, d]
    c.reduce(out, n * cfg.n_embd);          // row-parallel o_proj: sum the heads' shares
}

// Buffers of route_token, sized once per MoE block and reused for every token of the step.
struct RouteScratch {
    std::vector<float> score, choice, group_score;
    std::vector<int32_t> order;
    std::vector<int64_t> group_order;
    explicit RouteScratch(const ModelConfig& c)
        : score(c.n_expert),
          choice(c.n_expert),
          group_score(c.n_expert_group),
          order(c.n_expert),
          group_order(c.n_expert_group) {}
};

// Expert choice of one token from its router logits: ids [K] and weights [K] (HF transformers'
// DeepseekV3TopkRouter / DeepseekV2Moe gate). logits: [n_expert]
void route_token(const ModelConfig& cfg, const float* logits, const float* score_bias, int32_t* ids, float* wts,
                 RouteScratch& r) {
    const int64_t E = cfg.n_expert, K = cfg.n_expert_used;
    std::vector<float>&score = r.score, &choice = r.choice;
    if (cfg.expert_sigmoid) {
        for (int64_t e = 0; e < E; ++e) score[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    } else {
        const float mx = *std::max_element(logits, logits + E);
        float sum = 0.f;
        for (int64_t e = 0; e < E; ++e) sum += (score[e] = std::exp(logits[e] - mx));
        for (float& v : score) v /= sum;
    }
    for (int64_t e = 0; e < E; ++e) choice[e] = score[e] + (score_bias ? score_bias[e] : 0.f);
    if (cfg.expert_group_limited && cfg.n_expert_group > 1) {
        // Group score: the sum of its two best (noaux_tc) or its best (group_limited_greedy) choice
        // values; experts outside the n_group_used best groups cannot be chosen.
        const int64_t G = cfg.n_expert_group, per = E / G;
        for (int64_t g = 0; g < G; ++g) {
            float best = -INFINITY, second = -INFINITY;
            for (int64_t e = g * per; e < (g + 1) * per; ++e) {
                if (choice[e] > best) {
                    second = best;
                    best = choice[e];
                } else if (choice[e] > second) {
                    second = choice[e];
                }
            }
            r.group_score[g] = cfg.expert_score_bias ? best + (per > 1 ? second : 0.f) : best;
        }
        std::iota(r.group_order.begin(), r.group_order.end(), 0);
        std::stable_sort(r.group_order.begin(), r.group_order.end(),
                         [&](int64_t a, int64_t b) { return r.group_score[a] > r.group_score[b]; });
        for (int64_t i = cfg.n_group_used; i < G; ++i) {  // the groups not kept
            const int64_t g = r.group_order[i];
            std::fill(choice.begin() + g * per, choice.begin() + (g + 1) * per, -INFINITY);
        }
    }
    std::iota(r.order.begin(), r.order.end(), 0);
    std::partial_sort(r.order.begin(), r.order.begin() + K, r.order.end(),
                      [&](int32_t a, int32_t b) { return choice[a] > choice[b] || (choice[a] == choice[b] && a < b); });
    float sum = 0.f;
    for (int64_t k = 0; k < K; ++k) {
        ids[k] = r.order[k];
        wts[k] = score[r.order[k]];
        sum += wts[k];
    }
    for (int64_t k = 0; k < K; ++k) {
        if (cfg.expert_weights_norm) wts[k] /= sum + 1e-20f;
        wts[k] *= (float)cfg.expert_weights_scale;
    }
}

// out = sum over the token's experts (in expert order) of weight * expert(xn) + shared(xn).
void moe_block(StepContext& c, const MoeWeights& w, const DsScratch& s, const float* xn, float* out) {
    Backend& be = c.be;
    const ModelConfig& cfg = c.cfg;
    const int64_t n = c.n, d = cfg.n_embd, E = cfg.n_expert, K = cfg.n_expert_used, ff = cfg.n_ff_expert;
    be.matmul(xn, w.router, nullptr, n, s.logits);  // [n, E] f32
    std::vector<int32_t> ids((size_t)(n * K));
    std::vector<float> wts((size_t)(n * K));
    RouteScratch route(cfg);
    for (int64_t t = 0; t < n; ++t) route_token(cfg, s.logits + t * E, w.score_bias, &ids[t * K], &wts[t * K], route);
    // Rows of xg grouped by expert: expert e's tokens at [first[e], first[e + 1]).
    // Only this rank's experts [e0, e0 + El) run here (expert parallelism); the others' rows stay out.
    const int64_t e0 = w.first_expert, El = (int64_t)w.experts.size();
    std::vector<int64_t> first((size_t)El + 1, 0);
    for (int32_t e : ids)
        if (e >= e0 && e < e0 + El) ++first[(size_t)(e - e0) + 1];
    for (int64_t e = 0; e < El; ++e) first[e + 1] += first[e];
    const int64_t rows = first[El];
    std::vector<int64_t> fill(first.begin(), first.end() - 1), row_token((size_t)rows);
    std::vector<float> row_weight((size_t)rows);
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t k = 0; k < K; ++k) {
            const int32_t e = ids[t * K + k];
            if (e < e0 || e >= e0 + El) continue;
            const int64_t r = fill[e - e0]++;
            row_token[r] = t;
            row_weight[r] = wts[t * K + k];
            std::memcpy(s.xg + r * d, xn + t * d, d * sizeof(float));
        }
    }
    for (int64_t e = 0; e < El; ++e) {
        const int64_t r0 = first[e], m = first[e + 1] - r0;
        if (m == 0) continue;
        const MlpWeights& x = w.experts[e];
        be.matmul_multi(s.xg + r0 * d, m, {{x.gate, nullptr, s.eg + r0 * ff}, {x.up, nullptr, s.eu + r0 * ff}});
        be.silu_mul(s.eg + r0 * ff, s.eu + r0 * ff, m * ff, s.eg + r0 * ff);
        be.matmul(s.eg + r0 * ff, x.down, nullptr, m, s.yg + r0 * d);
    }
    std::fill(out, out + n * d, 0.f);
    for (int64_t r = 0; r < rows; ++r) {  // rows in expert order: each token's sum runs in expert order
        float* o = out + row_token[r] * d;
        const float* y = s.yg + r * d;
        const float wt = row_weight[r];
        for (int64_t i = 0; i < d; ++i) o[i] += wt * y[i];
    }
    if (w.shared.gate.rows > 0) {
        const int64_t sf = w.shared.gate.rows;
        be.matmul_multi(xn, n, {{w.shared.gate, nullptr, s.sg}, {w.shared.up, nullptr, s.su}});
        be.silu_mul(s.sg, s.su, n * sf, s.sg);
        be.matmul(s.sg, w.shared.down, nullptr, n, s.ys);
        be.add(out, s.ys, n * d);
    }
    c.reduce(out, n * d);  // the other ranks' experts and shared-expert columns
}

void dense_mlp(StepContext& c, const MlpWeights& w, const DsScratch& s, const float* xn, float* out) {
    Backend& be = c.be;
    const int64_t n = c.n, ff = w.gate.rows;
    be.matmul_multi(xn, n, {{w.gate, nullptr, s.gate}, {w.up, nullptr, s.up}});
    be.silu_mul(s.gate, s.up, n * ff, s.gate);
    be.matmul(s.gate, w.down, nullptr, n, out);
    c.reduce(out, n * c.cfg.n_embd);  // row-parallel down_proj
}

// A SwiGLU MLP of n_ff columns, the run `ff` of them (gate/up rows, down columns).
MlpWeights load_mlp(WeightLoader& ld, const std::string& prefix, int64_t n_ff, int64_t d, Range ff) {
    MlpWeights w;
    w.gate = ld.mat_rows(prefix + "gate_proj.weight", n_ff, d, ff);
    w.up = ld.mat_rows(prefix + "up_proj.weight", n_ff, d, ff);
    w.down = ld.mat_cols(prefix + "down_proj.weight", d, n_ff, ff);
    return w;
}

}  // namespace

RopeFrequencies rope_frequencies(const ModelConfig& c, int64_t dim) {
    RopeFrequencies f;
    const int64_t half = dim / 2;
    f.inv_freq.resize((size_t)half);
    for (int64_t i = 0; i < half; ++i) f.inv_freq[i] = std::pow(c.rope_theta, -2.0 * (double)i / (double)dim);
    if (!(c.yarn_factor > 1.0)) return f;
    const double factor = c.yarn_factor, base = c.rope_theta, orig = (double)c.yarn_orig_ctx;
    // Dimension index at which a frequency completes `rotations` turns over the original context.
    auto corr_dim = [&](double rotations) {
        return (double)dim * std::log(orig / (rotations * 2.0 * M_PI)) / (2.0 * std::log(base));
    };
    double low = std::max(std::floor(corr_dim(c.yarn_beta_fast)), 0.0);
    double high = std::min(std::ceil(corr_dim(c.yarn_beta_slow)), (double)(dim - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
        const double ramp = std::clamp(((double)i - low) / (high - low), 0.0, 1.0);
        f.inv_freq[i] = f.inv_freq[i] / factor * ramp + f.inv_freq[i] * (1.0 - ramp);
    }
    f.attention_factor = c.yarn_mscale != 0.0 && c.yarn_mscale_all_dim != 0.0
                             ? yarn_mscale(factor, c.yarn_mscale) / yarn_mscale(factor, c.yarn_mscale_all_dim)
                             : yarn_mscale(factor, 1.0);
    return f;
}

double mla_softmax_scale(const ModelConfig& c) {
    double scale = 1.0 / std::sqrt((double)(c.qk_nope_dim + c.qk_rope_dim));
    if (c.yarn_factor > 1.0 && c.yarn_mscale_all_dim != 0.0) {
        const double m = yarn_mscale(c.yarn_factor, c.yarn_mscale_all_dim);
        scale *= m * m;
    }
    return scale;
}

void check_deepseek_config(const ModelConfig& c) {
    auto need = [&](bool ok, const std::string& what) {
        if (!ok) throw Error(str("model config (", c.arch, "): ", what));
    };
    need(c.n_embd > 0 && c.n_layer > 0 && c.n_head > 0 && c.n_vocab > 0 && c.n_ff > 0,
         str("a non-positive dimension (n_embd ", c.n_embd, ", n_layer ", c.n_layer, ", n_head ", c.n_head,
             ", n_vocab ", c.n_vocab, ", n_ff ", c.n_ff, ")"));
    need(c.kv_lora_rank > 0 && c.qk_nope_dim > 0 && c.v_head_dim > 0 && c.q_lora_rank >= 0,
         str("kv_lora_rank ", c.kv_lora_rank, ", qk_nope_head_dim ", c.qk_nope_dim, ", v_head_dim ", c.v_head_dim,
             " must be positive"));
    need(c.qk_rope_dim > 0 && c.qk_rope_dim % 2 == 0, str("qk_rope_head_dim ", c.qk_rope_dim, " must be even"));
    need(c.head_dim == c.qk_nope_dim + c.qk_rope_dim && c.n_head_kv == c.n_head,
         str("head_dim ", c.head_dim, " must be qk_nope + qk_rope and n_head_kv ", c.n_head_kv, " equal n_head"));
    if (c.n_expert > 0) {
        need(c.n_expert_used > 0 && c.n_expert_used <= c.n_expert,
             str("num_experts_per_tok ", c.n_expert_used, " must be in 1..", c.n_expert));
        need(c.n_ff_expert > 0 && c.n_expert_shared >= 0 && c.n_dense_lead >= 0,
             str("moe_intermediate_size ", c.n_ff_expert, " must be positive"));
        need(c.n_expert_group >= 1 && c.n_expert % c.n_expert_group == 0,
             str("n_group ", c.n_expert_group, " does not divide n_routed_experts ", c.n_expert));
        need(c.n_group_used >= 1 && c.n_group_used <= c.n_expert_group,
             str("topk_group ", c.n_group_used, " is not in 1..n_group (", c.n_expert_group, ")"));
        need(!c.expert_group_limited || c.n_group_used * (c.n_expert / c.n_expert_group) >= c.n_expert_used,
             str("topk_group ", c.n_group_used, " groups hold fewer experts than num_experts_per_tok ",
                 c.n_expert_used));
    }
}

LayerWeights load_deepseek_layer(WeightLoader& ld, const ModelConfig& c, const ModelShard& shard, int64_t il) {
    const TpShard& tp = shard.tp;
    const int64_t d = c.n_embd, nope = c.qk_nope_dim, rope = c.qk_rope_dim, kvl = c.kv_lora_rank;
    const int64_t vd = c.v_head_dim, qd = nope + rope, lat = kvl + rope, H = c.n_head;
    const Range heads = tp.heads;  // this rank's query heads; q rows and o_proj columns follow them
    const std::string p = str("model.layers.", il, "."), a = p + "self_attn.";
    LayerWeights L;
    L.attn_norm = ld.vec(p + "input_layernorm.weight", d);
    MlaWeights& m = L.mla;
    if (c.q_lora_rank > 0) {
        m.q_a = ld.mat_rows(a + "q_a_proj.weight", c.q_lora_rank, d, {0, c.q_lora_rank});
        m.q_a_norm = ld.vec(a + "q_a_layernorm.weight", c.q_lora_rank);
        m.q = ld.mat_rows(a + "q_b_proj.weight", H * qd, c.q_lora_rank, {heads.begin * qd, heads.size * qd});
    } else {
        m.q = ld.mat_rows(a + "q_proj.weight", H * qd, d, {heads.begin * qd, heads.size * qd});
    }
    m.kv_a = ld.mat_rows(a + "kv_a_proj_with_mqa.weight", lat, d, {0, lat});
    m.kv_a_norm = ld.vec(a + "kv_a_layernorm.weight", kvl);
    // kv_b_proj [H * (nope + vd), kvl]: per head, nope rows of W_UK then vd rows of W_UV.
    const std::string kv_b = a + "kv_b_proj.weight";
    const std::vector<float> kvb = ld.read_f32(kv_b, {H * (nope + vd), kvl});
    for (int64_t h = heads.begin; h < heads.end(); ++h) {
        std::vector<float> uk_t((size_t)(kvl * nope)), uv((size_t)(vd * kvl));
        const float* base = kvb.data() + h * (nope + vd) * kvl;
        for (int64_t r = 0; r < nope; ++r)
            for (int64_t j = 0; j < kvl; ++j) uk_t[j * nope + r] = base[r * kvl + j];
        std::memcpy(uv.data(), base + nope * kvl, uv.size() * sizeof(float));
        m.uk_t.push_back(ld.upload_matrix(uk_t, kvl, nope));
        m.uv.push_back(ld.upload_matrix(uv, vd, kvl));
    }
    m.o = ld.mat_cols(a + "o_proj.weight", d, H * vd, {heads.begin * vd, heads.size * vd});
    L.mlp_norm = ld.vec(p + "post_attention_layernorm.weight", d);
    L.moe_layer = is_moe_layer(c, il);
    if (!L.moe_layer) {
        L.mlp = load_mlp(ld, p + "mlp.", c.n_ff, d, tp.ff);
        return L;
    }
    MoeWeights& e = L.moe;
    e.router = ld.mat_f32(p + "mlp.gate.weight", c.n_expert, d);
    if (c.expert_score_bias) e.score_bias = ld.vec(p + "mlp.gate.e_score_correction_bias", c.n_expert);
    e.first_expert = tp.experts.begin;
    for (int64_t x = tp.experts.begin; x < tp.experts.end(); ++x)
        e.experts.push_back(load_mlp(ld, str(p, "mlp.experts.", x, "."), c.n_ff_expert, d, {0, c.n_ff_expert}));
    if (c.n_expert_shared > 0)
        e.shared = load_mlp(ld, p + "mlp.shared_experts.", c.n_expert_shared * c.n_ff_expert, d, tp.shared_ff);
    return L;
}

int64_t deepseek_scratch_per_token(const ModelConfig& c) { return DsScratch::floats_per_token(c); }

KvLayout deepseek_kv_layout(const ModelConfig& c) { return {c.n_layer, c.kv_lora_rank + c.qk_rope_dim, 0}; }

void deepseek_layers(StepContext& c) {
    const ModelConfig& cfg = c.cfg;
    if (!c.be.host_memory())
        throw Error(str(cfg.arch, " runs on host-memory backends only in this version (the ", c.be.name(),
                        " backend keeps its memory on the device)"));
    const DsScratch s = DsScratch::take(c.scratch, cfg, c.n);
    rope_table_freqs(c, rope_frequencies(cfg, cfg.qk_rope_dim), cfg.qk_rope_dim, s.cs);
    for (int64_t il = 0; il < cfg.n_layer; ++il) {
        const LayerWeights& L = c.w.layers[il];
        c.use_layer(il);
        rms_norm(c, c.x, L.attn_norm, s.xn);
        mla_block(c, L.mla, s, s.xn, s.y);
        residual_add(c, c.x, s.y);
        rms_norm(c, c.x, L.mlp_norm, s.xn);
        if (L.moe_layer) {
            moe_block(c, L.moe, s, s.xn, s.y);
        } else {
            dense_mlp(c, L.mlp, s, s.xn, s.y);
        }
        residual_add(c, c.x, s.y);
    }
}

}  // namespace gridlm
