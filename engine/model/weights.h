// A decoder's weights in backend memory, loaded from any TensorSource (HF names, [out, in]).
// Matrices take the requested dtype (f32 or bf16); norms and biases stay f32.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/model_config.h"
#include "engine/model/shard.h"
#include "io/tensor_source.h"

namespace gridlm {

struct LayerWeights {
    const float* attn_norm = nullptr;  // [n_embd]           input_layernorm
    Weight q, k, v;                    // [n_head*hd | n_head_kv*hd, n_embd]  self_attn.{q,k,v}_proj
    const float* q_bias = nullptr;     // [n_head*hd] (Qwen2) or nullptr
    const float* k_bias = nullptr;     // [n_head_kv*hd]
    const float* v_bias = nullptr;     // [n_head_kv*hd]
    Weight o;                          // [n_embd, n_head*hd]  self_attn.o_proj
    const float* mlp_norm = nullptr;   // [n_embd]           post_attention_layernorm
    Weight gate, up;                   // [n_ff, n_embd]     mlp.{gate,up}_proj
    Weight down;                       // [n_embd, n_ff]     mlp.down_proj
};

// Shapes are those of the rank's shard (shard.h): q/k/v/gate/up keep their heads' / columns'
// rows, o/down the matching columns, embed/lm_head their vocabulary rows.
struct ModelWeights {
    Weight embed;                       // [n_vocab, n_embd]  model.embed_tokens (first stage only)
    std::vector<LayerWeights> layers;   // [the shard's layers]
    const float* final_norm = nullptr;  // [n_embd]           model.norm (last stage only)
    Weight lm_head;                     // [n_vocab, n_embd]  lm_head (== embed when tied; last stage)
    std::vector<BackendBuffer> storage;
    int64_t bytes = 0;  // weight bytes held in backend memory
};

// Loads the shard's weights, reading only its slices. Throws gridlm::Error naming the tensor when
// one is missing or has an unexpected shape.
ModelWeights load_weights(Backend& backend, const ModelConfig& config, const TensorSource& source, DType dtype,
                          const ModelShard& shard);

}  // namespace gridlm
