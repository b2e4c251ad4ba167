// Decoder building blocks as backend calls (see blocks.h for the math and shapes).
#include "engine/model/blocks.h"

#include <cmath>

namespace gridlm {

void rms_norm(StepContext& c, const float* x, const float* w, float* out) {
    c.be.rmsnorm(x, w, c.n, c.cfg.n_embd, (float)c.cfg.rms_eps, out);
}

void residual_add(StepContext& c, float* x, const float* y) { c.be.add(x, y, c.n * c.cfg.n_embd); }

void rope_table(StepContext& c, int64_t head_dim, double theta, float* cs) {
    GRIDLM_ASSERT((int64_t)c.pos.size() == c.n);
    c.be.rope_table(c.pos.data(), c.n, head_dim, theta, cs);
}

AttentionScratch AttentionScratch::take(Scratch& s, const ModelConfig& c, int64_t n) {
    const int64_t hd = c.head_dim;
    AttentionScratch a;
    a.q = s.take(n * c.n_head * hd);
    a.k = s.take(n * c.n_head_kv * hd);
    a.v = s.take(n * c.n_head_kv * hd);
    a.out = s.take(n * c.n_head * hd);
    return a;
}

AttentionWeights load_attention(WeightLoader& ld, const ModelConfig& c, const ModelShard& shard,
                                const std::string& prefix) {
    const int64_t d = c.n_embd, hd = c.head_dim, q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
    const TpShard& tp = shard.tp;
    const Range q_part{tp.heads.begin * hd, tp.heads.size * hd}, kv_part{tp.kv_heads.begin * hd, tp.kv_heads.size * hd};
    const std::string p = prefix + "self_attn.";
    AttentionWeights w;
    w.q = ld.mat_rows(p + "q_proj.weight", q_dim, d, q_part);
    w.k = ld.mat_rows(p + "k_proj.weight", kv_dim, d, kv_part);
    w.v = ld.mat_rows(p + "v_proj.weight", kv_dim, d, kv_part);
    if (c.attn_bias) {
        w.q_bias = ld.vec(p + "q_proj.bias", q_dim, q_part);
        w.k_bias = ld.vec(p + "k_proj.bias", kv_dim, kv_part);
        w.v_bias = ld.vec(p + "v_proj.bias", kv_dim, kv_part);
    }
    w.o = ld.mat_cols(p + "o_proj.weight", d, q_dim, q_part);
    return w;
}

void attention_block(StepContext& c, const AttentionWeights& w, const AttentionScratch& s, const float* cs,
                     const float* xn, float* out) {
    Backend& be = c.be;
    const ModelConfig& cfg = c.cfg;
    const int64_t n = c.n, hd = cfg.head_dim, n_seqs = (int64_t)c.seqs.size();
    const AttentionShape shape{cfg.n_head, cfg.n_head_kv, hd, (float)(1.0 / std::sqrt((double)hd))};
    be.matmul_multi(xn, n,
                    {{w.q, w.q_bias, s.q},    // [n, n_head * hd]
                     {w.k, w.k_bias, s.k},    // [n, n_head_kv * hd]
                     {w.v, w.v_bias, s.v}});  // [n, n_head_kv * hd]
    be.rope(s.q, cs, n, cfg.n_head, hd);
    be.rope(s.k, cs, n, cfg.n_head_kv, hd);
    be.kv_store(s.k, s.v, c.seqs.data(), n_seqs);
    be.attention(s.q, c.seqs.data(), n_seqs, shape, s.out);  // [n, n_head * hd]
    be.matmul(s.out, w.o, nullptr, n, out);                  // [n, n_embd]
    c.reduce(out, n * cfg.n_embd);                           // row-parallel o_proj: sum the heads' shares
}

MlpScratch MlpScratch::take(Scratch& s, int64_t n_ff, int64_t n) {
    MlpScratch m;
    m.gate = s.take(n * n_ff);
    m.up = s.take(n * n_ff);
    return m;
}

MlpWeights load_swiglu_mlp(WeightLoader& ld, const ModelConfig& c, const std::string& prefix, int64_t n_ff, Range ff) {
    MlpWeights w;
    w.gate = ld.mat_rows(prefix + "gate_proj.weight", n_ff, c.n_embd, ff);
    w.up = ld.mat_rows(prefix + "up_proj.weight", n_ff, c.n_embd, ff);
    w.down = ld.mat_cols(prefix + "down_proj.weight", c.n_embd, n_ff, ff);
    return w;
}

void swiglu_mlp(StepContext& c, const MlpWeights& w, const MlpScratch& s, const float* xn, float* out) {
    Backend& be = c.be;
    const int64_t n = c.n, ff = w.gate.rows;
    be.matmul_multi(xn, n,
                    {{w.gate, nullptr, s.gate},  // [n, n_ff]
                     {w.up, nullptr, s.up}});    // [n, n_ff]
    be.silu_mul(s.gate, s.up, n * ff, s.gate);
    be.matmul(s.gate, w.down, nullptr, n, out);  // [n, n_embd]
    c.reduce(out, n * c.cfg.n_embd);             // row-parallel down_proj
}

}  // namespace gridlm
