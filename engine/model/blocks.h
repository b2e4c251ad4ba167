// Building blocks of decoder layers, each one step of the math made of backend calls on the
// step's activations (decoder.h), with the weights it reads, their loader and the scratch it
// needs. Layer functions (dense_decoder.cpp, ...) are sequences of these. n: tokens in the step.
#pragma once

#include <string>

#include "engine/model/decoder.h"
#include "engine/model/weights.h"

namespace gridlm {

// out = x * rsqrt(mean(x^2) + eps) * w per token.  x, out: [n, n_embd]; w: [n_embd]
void rms_norm(StepContext& c, const float* x, const float* w, float* out);

// x += y.  x, y: [n, n_embd]
void residual_add(StepContext& c, float* x, const float* y);

// RoPE cos | sin of every token's position (c.pos).  cs: [n, head_dim]
void rope_table(StepContext& c, int64_t head_dim, double theta, float* cs);

// Grouped-query self-attention with RoPE (the shard's heads, hd = head_dim).
struct AttentionScratch {
    float* q = nullptr;    // [n, n_head * hd]
    float* k = nullptr;    // [n, n_head_kv * hd]
    float* v = nullptr;    // [n, n_head_kv * hd]
    float* out = nullptr;  // [n, n_head * hd]  attention output before o_proj

    static int64_t floats_per_token(const ModelConfig& c) { return (2 * c.n_head + 2 * c.n_head_kv) * c.head_dim; }
    static AttentionScratch take(Scratch& s, const ModelConfig& c, int64_t n);
};
// self_attn.{q,k,v,o}_proj of the shard's heads under prefix ("model.layers.3."), q/k/v biases
// when c.attn_bias.
AttentionWeights load_attention(WeightLoader& ld, const ModelConfig& c, const ModelShard& shard,
                                const std::string& prefix);
// out = o_proj(attention(rope(q(xn) + bq), rope(k(xn) + bk), v(xn) + bv)), summed over TP (o_proj
// is row-parallel). Stores the step's keys and values in the KV views of c.seqs (c.use_layer).
// xn: [n, n_embd] normed input; cs: [n, head_dim] rope_table; out: [n, n_embd]
void attention_block(StepContext& c, const AttentionWeights& w, const AttentionScratch& s, const float* cs,
                     const float* xn, float* out);

// SwiGLU MLP of width n_ff (the shard's columns).
struct MlpScratch {
    float* gate = nullptr;  // [n, n_ff]  also holds silu(gate) * up
    float* up = nullptr;    // [n, n_ff]

    static int64_t floats_per_token(int64_t n_ff) { return 2 * n_ff; }
    static MlpScratch take(Scratch& s, int64_t n_ff, int64_t n);
};
// {gate,up,down}_proj under prefix ("model.layers.3.mlp."): n_ff columns in the checkpoint, the
// shard's run `ff` of them loaded.
MlpWeights load_swiglu_mlp(WeightLoader& ld, const ModelConfig& c, const std::string& prefix, int64_t n_ff, Range ff);
// out = down(silu(gate(xn)) * up(xn)), summed over TP (down is row-parallel).
// xn: [n, n_embd]; out: [n, n_embd]; n_ff: the shard's columns (w.gate.rows)
void swiglu_mlp(StepContext& c, const MlpWeights& w, const MlpScratch& s, const float* xn, float* out);

}  // namespace gridlm
