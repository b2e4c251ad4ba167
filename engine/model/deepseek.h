// The DeepSeek-V2 / V3 (and R1) decoder: multi-head latent attention with a latent KV cache and a
// mixture of experts after the leading dense layers (shared/DEEPSEEK-V3.md; HF transformers'
// modeling_deepseek_v2 / v3 are the references the tests compare with).
//
// Per layer: x += o(MLA(norm(x))); x += (layer < n_dense_lead ? dense SwiGLU : MoE)(norm(x)).
// The cache holds one row of kv_lora_rank + qk_rope_dim values per token and layer: the latent c
// after its norm, then k_pe after RoPE. Attention runs in the absorbed form for prefill and decode
// alike: q_lat[h] = [W_UK[h]^T q_nope[h] | rope(q_pe[h])], one shared 576-wide KV head whose first
// kv_lora_rank values are also V, then o[h] = W_UV[h] o_lat[h]. RoPE rotates adjacent pairs
// (2i, 2i+1) with YaRN frequencies; the softmax scale is (nope + rope)^-0.5 * mscale^2.
//
// On a grid: pipeline stages and data-parallel replicas as for every architecture. Inside a stage
// the tp ranks split the query heads (q rows, kv_b heads, o_proj columns; each keeps the whole
// latent cache, which is one 576-wide row per token), the routed experts (expert parallelism:
// each rank holds a run of expert ids and runs the rows routed to them), the shared experts' and
// the dense layers' MLP columns; every rank sees every token, so one all-reduce of n_embd floats
// per token after attention and one after the MoE / MLP combine the shares (shard.h).
// This version runs on host-memory backends (the CPU backend).
#pragma once

#include "engine/core/model_config.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/decoder.h"
#include "engine/model/weights.h"

namespace gridlm {

// Throws gridlm::Error naming the field for a config this decoder cannot run.
void check_deepseek_config(const ModelConfig& c);
LayerWeights load_deepseek_layer(WeightLoader& ld, const ModelConfig& c, const ModelShard& shard, int64_t il);
void deepseek_layers(StepContext& c);
int64_t deepseek_scratch_per_token(const ModelConfig& c);
// One latent row (kv_lora_rank + qk_rope_dim values) per token and layer; v_row 0.
KvLayout deepseek_kv_layout(const ModelConfig& c);

// YaRN / plain RoPE inverse frequencies for rotary dimension dim, and the factor cos and sin are
// multiplied by (HF transformers _compute_yarn_parameters; 1 for plain RoPE).  inv_freq: [dim / 2]
struct RopeFrequencies {
    std::vector<double> inv_freq;
    double attention_factor = 1.0;
};
RopeFrequencies rope_frequencies(const ModelConfig& c, int64_t dim);
// The MLA softmax scale: (qk_nope_dim + qk_rope_dim)^-0.5, times mscale^2 with
// mscale = 0.1 * mscale_all_dim * ln(factor) + 1 when YaRN gives mscale_all_dim.
double mla_softmax_scale(const ModelConfig& c);

}  // namespace gridlm
