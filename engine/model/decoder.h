// What a per-architecture layer loop (llama.cpp, qwen2.cpp) gets for one forward step: the
// backend, the weights, the step's activations and its sequences' KV views. Internal to model/.
#pragma once

#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/model_config.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/weights.h"

namespace gridlm {

class Communicator;

struct StepContext {
    Backend& be;
    const ModelConfig& cfg;
    const ModelWeights& w;
    KvCache& kv;
    std::vector<int> slots;          // [n_seqs] KV slot of each sequence
    std::vector<AttentionSeq> seqs;  // [n_seqs] rows, positions and (per layer) KV views
    AttentionShape shape;
    int64_t n = 0;          // tokens in the step
    float* x = nullptr;     // [n, n_embd]            residual stream
    float* xn = nullptr;    // [n, n_embd]            normed input of a block
    float* q = nullptr;     // [n, n_head, head_dim]
    float* k = nullptr;     // [n, n_head_kv, head_dim]
    float* v = nullptr;     // [n, n_head_kv, head_dim]
    float* attn = nullptr;  // [n, n_head, head_dim]  attention output
    float* gate = nullptr;  // [n, n_ff]
    float* up = nullptr;    // [n, n_ff]
    float* tmp = nullptr;   // [n, n_embd]            block output before the residual add
    float* cs = nullptr;    // [n, head_dim]          RoPE cos | sin per token

    Communicator* tp = nullptr;   // tensor-parallel group, nullptr / size 1 without TP
    int64_t* tp_bytes = nullptr;  // counts bytes put into TP collectives

    // Sums a row-parallel partial result over the TP group in place (no-op without TP).
    void reduce(float* data, int64_t count);

    // Points every sequence's KV view at layer il.
    void use_layer(int64_t il) {
        for (size_t s = 0; s < seqs.size(); ++s) seqs[s].kv = kv.view(slots[s], (int)il);
    }
};

// The decoder layer loops, one per architecture file; they update ctx.x in place.
void llama_layers(StepContext& ctx);
void qwen2_layers(StepContext& ctx);

}  // namespace gridlm
