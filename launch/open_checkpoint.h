// Opens the checkpoint `gridlm generate` runs: a .gguf or a Hugging Face model directory read directly, or a
// native gridlm .h5; gives its config, tokenizer and a weight source to load the model from.
#pragma once

#include <memory>
#include <string>

#include "engine/core/model_config.h"
#include "engine/core/tensor_source.h"
#include "engine/core/tokenizer_data.h"
#include "engine/model/shard.h"
#include "engine/model/weights.h"
#include "io/gguf.h"

namespace gridlm {

struct OpenedCheckpoint {
    ModelConfig config;
    TokenizerData tokenizer;
    std::shared_ptr<const GgufFile> gguf;  // GGUF input: the mapped file
    std::unique_ptr<TensorSource> weights;
    std::string name;  // the config's name, else the file's stem
};

// Throws Error when the file does not exist, is no checkpoint, or holds a vocabulary only.
OpenedCheckpoint open_checkpoint(const std::string& path);

// The --dtype option of generate and score: auto (keep stored types) | f32 | bf16 | f16. Throws
// UsageError naming the value and the accepted ones.
WeightPolicy weight_policy_option(const std::string& name);
// The block types a tensor-parallel cut must respect when the policy keeps stored types (every
// cut is free when all matrices are converted to a float type).
TpSplitTypes weight_split_types(const OpenedCheckpoint& ck, const WeightPolicy& policy);
// "q4_k 210.3 MiB, q6_k 40.1 MiB, f32 0.1 MiB" from Model::weight_bytes_by_type(), largest first.
std::string weight_types_text(const std::vector<int64_t>& bytes_by_type);

}  // namespace gridlm
