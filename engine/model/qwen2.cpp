// Qwen2 decoder layers: as Llama, plus biases on the q/k/v projections (none on o or the MLP).
#include "engine/model/decoder.h"

namespace gridlm {

void qwen2_layers(StepContext& c) {
    Backend& be = c.be;
    const int64_t n = c.n, d = c.cfg.n_embd, hd = c.cfg.head_dim, ff = c.cfg.n_ff;
    const float eps = (float)c.cfg.rms_eps;
    for (int64_t il = 0; il < c.cfg.n_layer; ++il) {
        const LayerWeights& L = c.w.layers[il];
        c.use_layer(il);

        // attention: x += o(attn(rope(q(norm(x)) + bq), rope(k(norm(x)) + bk), v(norm(x)) + bv))
        be.rmsnorm(c.x, L.attn_norm, n, d, eps, c.xn);  // [n, n_embd]
        be.matmul_multi(c.xn, n,
                        {{L.q, L.q_bias, c.q},    // [n, n_head * hd]
                         {L.k, L.k_bias, c.k},    // [n, n_head_kv * hd]
                         {L.v, L.v_bias, c.v}});  // [n, n_head_kv * hd]
        be.rope(c.q, c.cs, n, c.cfg.n_head, hd);
        be.rope(c.k, c.cs, n, c.cfg.n_head_kv, hd);
        be.kv_store(c.k, c.v, c.seqs.data(), (int64_t)c.seqs.size());
        be.attention(c.q, c.seqs.data(), (int64_t)c.seqs.size(), c.shape, c.attn);  // [n, n_head * hd]
        be.matmul(c.attn, L.o, nullptr, n, c.tmp);                                  // [n, n_embd]
        c.reduce(c.tmp, n * d);  // row-parallel o_proj: sum the heads' shares over TP
        be.add(c.x, c.tmp, n * d);

        // mlp: x += down(silu(gate(norm(x))) * up(norm(x)))
        be.rmsnorm(c.x, L.mlp_norm, n, d, eps, c.xn);
        be.matmul_multi(c.xn, n,
                        {{L.gate, nullptr, c.gate},  // [n, n_ff]
                         {L.up, nullptr, c.up}});    // [n, n_ff]
        be.silu_mul(c.gate, c.up, n * ff, c.gate);
        be.matmul(c.gate, L.down, nullptr, n, c.tmp);  // [n, n_embd]
        c.reduce(c.tmp, n * d);                        // row-parallel down_proj
        be.add(c.x, c.tmp, n * d);
    }
}

}  // namespace gridlm
