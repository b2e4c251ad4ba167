// Llama / Qwen2 models from GGUF: hyper-parameters, tokenizer data, and the weights as a
// TensorSource in HF naming, orientation and (for llama) HF rotate-half Q/K row order.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/core/model_config.h"
#include "engine/core/tokenizer_data.h"
#include "io/gguf.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

// From the {arch}.* metadata (arch = general.architecture: llama or qwen2) and the tensor
// table. Works on files opened with need_tensor_data = false.
ModelConfig gguf_model_config(const GgufFile& file);

// From tokenizer.* metadata; tokenizer.ggml.model must be "gpt2" (byte-level BPE).
TokenizerData gguf_tokenizer_data(const GgufFile& file);

// HF name of a GGUF tensor name ("blk.3.ffn_up.weight" -> "model.layers.3.mlp.up_proj.weight");
// names outside the llama/qwen2 scheme come back unchanged.
std::string gguf_to_hf_name(std::string_view gguf_name);

class GgufTensorSource : public TensorSource {
public:
    explicit GgufTensorSource(std::shared_ptr<const GgufFile> file);

    const std::vector<TensorInfo>& tensors() const override { return infos_; }
    // Dequantised, HF orientation; llama Q/K rows (weights and biases) un-permuted.
    std::vector<float> read_f32(const std::string& name) const override;
    // Dequantised in the file's own row order, without un-permutation (for tests and
    // inspection). `name` is the HF name, as in tensors().
    std::vector<float> read_f32_raw(const std::string& name) const;
    // The tensor's GGUF type; throws for a type outside engine/core/dtype.h's table (Q2_K, IQ*, ...).
    DType stored_type(const std::string& name) const override;
    // Rows as stored (blocks unchanged), in HF row order: llama Q/K rows are picked through the
    // same row permutation read_f32 undoes, so dequantising them gives read_rows_f32's values.
    std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const override;

    const GgufFile& file() const { return *file_; }
    // The GGUF tensor behind an HF name; throws when unknown.
    const GgufTensor& gguf_tensor(const std::string& name) const;

private:
    // Heads of a tensor whose rows llama.cpp permuted (llama Q/K weights and biases), else 0.
    int64_t permuted_heads(const GgufTensor& t) const;

    std::shared_ptr<const GgufFile> file_;
    std::vector<TensorInfo> infos_;
    std::vector<const GgufTensor*> gguf_of_;         // parallel to infos_
    std::unordered_map<std::string, size_t> index_;  // HF name -> position in infos_
    int64_t n_head_ = 0;                             // > 0 only for llama files, whose Q/K rows need un-permuting
    int64_t n_head_kv_ = 0;
};

// llama.cpp's converter stores row h*hd + 2i + r of a llama Q/K weight where HF has row
// h*hd + r*hd/2 + i. Undoes that for `rows` rows of `row_len` floats in n_heads heads.
// Throws gridlm::Error when rows do not split into heads of even size.
void gguf_unpermute_rows(std::vector<float>& data, int64_t rows, int64_t row_len, int64_t n_heads,
                         const std::string& what);
// The GGUF row holding HF row hf_row of such a tensor of `rows` rows in n_heads heads (the
// permutation gguf_unpermute_rows undoes). Throws as gguf_unpermute_rows does.
int64_t gguf_row_of_hf_row(int64_t hf_row, int64_t rows, int64_t n_heads, const std::string& what);

}  // namespace gridlm
