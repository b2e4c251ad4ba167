// The architecture registry: one row per Arch value (engine/core/arch.h) saying how the engine
// checks, loads and runs that architecture and what its KV cache holds. Model looks its row up
// once by the config's architecture name and calls nothing architecture-specific elsewhere.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/core/arch.h"
#include "engine/core/model_config.h"
#include "engine/kv/kv_cache.h"
#include "engine/model/decoder.h"
#include "engine/model/weights.h"

namespace gridlm {

struct ArchSpec {
    Arch arch;
    // Throws gridlm::Error for a (whole-model) config this architecture cannot run.
    void (*check_config)(const ModelConfig& config);
    // Loads one layer of a shard; Model's loader adds the embedding, final norm and LM head.
    LayerLoader load_layer;
    // Runs the shard's layers over one step: reads ctx.x and ctx.pos, stores the step's keys and
    // values in the cache, updates ctx.x in place. Takes its activations from ctx.scratch.
    void (*layers)(StepContext& ctx);
    // Floats of scratch `layers` takes per token of a step, for the shard's dimensions.
    int64_t (*scratch_per_token)(const ModelConfig& local);
    // What one token occupies in the KV cache, for the shard's layers and heads.
    KvLayout (*kv_layout)(const ModelConfig& local);
    // True when `layers` reads activations on the host (runs on host-memory backends only).
    bool host_memory_only = false;
};

// Every row, in enum order (rows()[i].arch == Arch(i)).
std::span<const ArchSpec> arch_rows();
const ArchSpec& arch_spec(Arch arch);
// The row of the architecture called `name`; throws gridlm::Error
// "unsupported model architecture 'X' (supported: llama, qwen2)" for any other name.
const ArchSpec& arch_spec(std::string_view name);
// "llama, qwen2": the names of the registry's rows.
std::string supported_archs();

}  // namespace gridlm
