// The Llama-family dense decoder that the llama and qwen2 rows of the registry run: pre-norm
// layers of grouped-query attention with RoPE (q/k/v biases when config.attn_bias) and a SwiGLU
// MLP. Each function fills one column of an ArchSpec (arch_registry.h).
#pragma once

#include "engine/core/model_config.h"
#include "engine/model/decoder.h"
#include "engine/model/shard.h"
#include "engine/model/weights.h"

namespace gridlm {

// Throws gridlm::Error for a non-positive dimension, n_head not a multiple of n_head_kv or an odd
// head_dim.
void check_dense_config(const ModelConfig& c);
// model.layers.<il>.{input_layernorm, self_attn.*, post_attention_layernorm, mlp.*}
LayerWeights load_dense_layer(WeightLoader& ld, const ModelConfig& c, const ModelShard& shard, int64_t il);
// The shard's layers over one step (c.cfg: the shard's dimensions).
void dense_decoder_layers(StepContext& c);
// Scratch floats per token that dense_decoder_layers takes.
int64_t dense_scratch_per_token(const ModelConfig& local);

}  // namespace gridlm
