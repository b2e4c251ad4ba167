// What an architecture's layer function (arch_registry.h) gets for one forward step: the
// backend, the shard's config and weights, the step's positions, residual stream and scratch,
// and its sequences' KV views. Internal to model/.
#pragma once

#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/core/model_config.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/weights.h"

namespace gridlm {

class Communicator;

// Per-step activations a layer function carves out of the model's workspace. It holds exactly
// the architecture's scratch_per_token(config) floats per token of the step; taking more is a
// bug in that formula.
class Scratch {
public:
    Scratch() = default;
    Scratch(float* base, int64_t size) : base_(base), size_(size) {}
    float* take(int64_t count) {
        GRIDLM_ASSERT(count >= 0 && used_ + count <= size_);
        float* p = base_ + used_;
        used_ += count;
        return p;
    }
    int64_t size() const { return size_; }
    int64_t used() const { return used_; }

private:
    float* base_ = nullptr;
    int64_t size_ = 0, used_ = 0;
};

struct StepContext {
    StepContext(Backend& be, const ModelConfig& cfg, const ModelWeights& w, KvCache& kv)
        : be(be), cfg(cfg), w(w), kv(kv) {}

    Backend& be;
    const ModelConfig& cfg;  // the shard's dimensions (Model::local_config)
    const ModelWeights& w;
    KvCache& kv;
    std::vector<int> slots;          // [n_seqs] KV slot of each sequence
    std::vector<AttentionSeq> seqs;  // [n_seqs] rows, positions and (per layer) KV views
    std::vector<int32_t> pos;        // [n] position of each token (host memory)
    int64_t n = 0;                   // tokens in the step
    float* x = nullptr;              // [n, n_embd] residual stream, updated in place by the layers
    Scratch scratch;                 // [n * scratch_per_token] the layer function's activations

    Communicator* tp = nullptr;   // tensor-parallel group, nullptr / size 1 without TP
    int64_t* tp_bytes = nullptr;  // counts bytes put into TP collectives

    // Sums a row-parallel partial result over the TP group in place (no-op without TP).
    void reduce(float* data, int64_t count);

    // Points every sequence's KV view at layer il (of the shard).
    void use_layer(int64_t il) {
        for (size_t s = 0; s < seqs.size(); ++s) seqs[s].kv = kv.view(slots[s], (int)il);
    }
};

}  // namespace gridlm
