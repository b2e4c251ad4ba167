// Hyper-parameters of the real models the tests use (from their GGUF metadata), for tests that need
// only the shapes: SmolLM2-135M and Qwen2.5-0.5B.
#pragma once

#include "engine/core/model_config.h"

namespace gridlm::test {

inline ModelConfig smollm2_config() {
    ModelConfig c;
    c.arch = "llama";
    c.n_vocab = 49152;
    c.n_embd = 576;
    c.n_layer = 30;
    c.n_head = 9;
    c.n_head_kv = 3;
    c.head_dim = 64;
    c.n_ff = 1536;
    return c;
}

inline ModelConfig qwen05_config() {
    ModelConfig c;
    c.arch = "qwen2";
    c.n_vocab = 151936;
    c.n_embd = 896;
    c.n_layer = 24;
    c.n_head = 14;
    c.n_head_kv = 2;
    c.head_dim = 64;
    c.n_ff = 4864;
    return c;
}

}  // namespace gridlm::test
