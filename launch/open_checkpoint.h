// Opens the checkpoint `gridlm generate` runs: a .gguf read directly (dequantised on load) or a
// native gridlm .h5; gives its config, tokenizer and a weight source to load the model from.
#pragma once

#include <memory>
#include <string>

#include "engine/core/model_config.h"
#include "engine/core/tensor_source.h"
#include "engine/core/tokenizer_data.h"
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

}  // namespace gridlm
