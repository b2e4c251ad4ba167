// A Hugging Face model directory (config.json, tokenizer.json, tokenizer_config.json, safetensors
// weights) read as a ModelConfig, TokenizerData and a TensorSource with HF names as-is.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/core/model_config.h"
#include "engine/core/tokenizer_data.h"
#include "io/safetensors.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

// config.json of a LlamaForCausalLM / Qwen2ForCausalLM model. Unsupported features (rope scaling,
// sliding window, llama attention_bias) are refused with the field named.
ModelConfig hf_model_config(const std::string& config_json_path);

// tokenizer.json (byte-level BPE) + tokenizer_config.json (+ chat_template.jinja when present) of a
// model directory. Ids missing from the vocabulary, up to n_vocab (the embedding rows), become
// unused "[PAD<id>]" tokens, as llama.cpp's converter does, so that every row has a token.
TokenizerData hf_tokenizer_data(const std::string& dir, int64_t n_vocab);

// The GGUF-style pre-tokenizer name for the known pre_tokenizer regexes; empty when unknown.
// Split(qwen2 regex) -> "qwen2", Split(llama3 regex) -> "llama3", Split(gpt2 regex) -> "gpt2".
std::string hf_pre_kind_of_regex(const std::string& pattern);

class HfCheckpoint : public TensorSource {
public:
    // need_tensor_data = false reads config and tokenizer only (no safetensors needed).
    explicit HfCheckpoint(const std::string& dir, bool need_tensor_data = true);

    const std::string& dir() const { return dir_; }
    const ModelConfig& config() const { return cfg_; }
    const TokenizerData& tokenizer() const { return tok_; }
    // Empty without tensor data.
    const std::vector<TensorInfo>& tensors() const override;
    std::vector<float> read_f32(const std::string& name) const override;
    DType stored_type(const std::string& name) const override;
    std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const override;
    // The safetensors files behind tensors().
    std::vector<std::string> weight_files() const;

private:
    std::string dir_;
    ModelConfig cfg_;
    TokenizerData tok_;
    std::unique_ptr<SafetensorsSource> weights_;
    std::vector<TensorInfo> no_tensors_;
};

}  // namespace gridlm
