// The Llama-family dense decoder layer loop, built from blocks.h:
//   x += o(attention(rope(q(norm(x))), rope(k(norm(x))), v(norm(x))))
//   x += down(silu(gate(norm(x))) * up(norm(x)))
#include "engine/model/dense_decoder.h"

#include "engine/core/error.h"
#include "engine/model/blocks.h"

namespace gridlm {

void check_dense_config(const ModelConfig& c) {
    if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.head_dim <= 0 || c.n_ff <= 0 ||
        c.n_vocab <= 0)
        throw Error(str("model config has a non-positive dimension (n_embd ", c.n_embd, ", n_layer ", c.n_layer,
                        ", n_head ", c.n_head, ", n_head_kv ", c.n_head_kv, ", head_dim ", c.head_dim, ", n_ff ",
                        c.n_ff, ", n_vocab ", c.n_vocab, ")"));
    if (c.n_head % c.n_head_kv != 0 || c.head_dim % 2 != 0)
        throw Error(str("model config: n_head ", c.n_head, " must be a multiple of n_head_kv ", c.n_head_kv,
                        " and head_dim ", c.head_dim, " even"));
}

LayerWeights load_dense_layer(WeightLoader& ld, const ModelConfig& c, const ModelShard& shard, int64_t il) {
    const std::string p = str("model.layers.", il, ".");
    LayerWeights L;
    L.attn_norm = ld.vec(p + "input_layernorm.weight", c.n_embd);
    L.attn = load_attention(ld, c, shard, p);
    L.mlp_norm = ld.vec(p + "post_attention_layernorm.weight", c.n_embd);
    L.mlp = load_swiglu_mlp(ld, c, p + "mlp.", c.n_ff, shard.tp.ff);
    return L;
}

int64_t dense_scratch_per_token(const ModelConfig& c) {
    return 2 * c.n_embd + AttentionScratch::floats_per_token(c) + MlpScratch::floats_per_token(c.n_ff) + c.head_dim;
}

void dense_decoder_layers(StepContext& c) {
    const ModelConfig& cfg = c.cfg;
    const int64_t n = c.n;
    float* xn = c.scratch.take(n * cfg.n_embd);  // [n, n_embd]  normed input of a block
    float* y = c.scratch.take(n * cfg.n_embd);   // [n, n_embd]  block output before the residual add
    const AttentionScratch attn = AttentionScratch::take(c.scratch, cfg, n);
    const MlpScratch mlp = MlpScratch::take(c.scratch, cfg.n_ff, n);
    float* cs = c.scratch.take(n * cfg.head_dim);  // [n, head_dim]  RoPE cos | sin per token
    rope_table(c, cfg.head_dim, cfg.rope_theta, cs);

    for (int64_t il = 0; il < cfg.n_layer; ++il) {
        const LayerWeights& L = c.w.layers[il];
        c.use_layer(il);

        rms_norm(c, c.x, L.attn_norm, xn);
        attention_block(c, L.attn, attn, cs, xn, y);
        residual_add(c, c.x, y);

        rms_norm(c, c.x, L.mlp_norm, xn);
        swiglu_mlp(c, L.mlp, mlp, xn, y);
        residual_add(c, c.x, y);
    }
}

}  // namespace gridlm
