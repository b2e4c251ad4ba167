// Architecture hyper-parameters of a Llama / Qwen2 decoder, as read from any checkpoint format.
#pragma once

#include <cstdint>
#include <string>

namespace gridlm {

struct ModelConfig {
    std::string arch;     // a name of engine/core/arch.h: "llama" | "qwen2"
    std::string name;     // human-readable model name, may be empty
    int64_t n_vocab = 0;  // rows of the embedding / LM head
    int64_t n_embd = 0;   // hidden size
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;     // usually n_embd / n_head
    int64_t n_ff = 0;         // MLP intermediate size
    int64_t n_ctx_train = 0;  // context length the model was trained for
    double rope_theta = 10000.0;
    double rms_eps = 1e-6;
    bool tied_embeddings = false;  // LM head shares model.embed_tokens.weight
    bool attn_bias = false;        // q/k/v projections carry biases (Qwen2)
};

}  // namespace gridlm
