// The native gridlm checkpoint: one HDF5 file holding config, tokenizer and weights (HF names and
// orientation), laid out for hyperslab reads by tensor-parallel ranks. Schema: docs/checkpoint-format.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/model_config.h"
#include "engine/core/tokenizer_data.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

inline constexpr const char* h5_format_name = "gridlm-checkpoint";  // root attribute gridlm_format
inline constexpr int h5_format_version = 1;                         // the only version this build reads

// Target chunk shape of a 2-D tensor dataset, [256, 1024] elements, shrunk per dimension to split it
// into equal parts (a [576, 1536] tensor gets [192, 768] chunks). Measurements in the doc.
inline constexpr int64_t h5_chunk_rows = 256;
inline constexpr int64_t h5_chunk_cols = 1024;

struct ConvertProgress {
    size_t tensors_done = 0;
    size_t tensors_total = 0;
    uint64_t bytes_done = 0;  // tensor bytes written so far (in the output dtype)
    uint64_t bytes_total = 0;
    std::string_view tensor;  // the tensor just written
};
using ProgressFn = std::function<void(const ConvertProgress&)>;

// Throws gridlm::Error("<where>: ...") when the config cannot describe a working model
// (non-positive sizes, n_head not a multiple of n_head_kv, unknown arch).
void validate_model_config(const ModelConfig& cfg, const std::string& where);

// The tensors a Llama / Qwen2 model with this config needs, in model order, with HF names and shapes:
// model.embed_tokens.weight [n_vocab, n_embd], per layer q/k/v/o, gate/up/down, two norms
// (+ q/k/v biases when attn_bias), model.norm.weight [n_embd], lm_head.weight unless tied.
std::vector<TensorInfo> expected_tensors(const ModelConfig& cfg);

// Writes a checkpoint tensor by tensor (one tensor in memory at a time) to path + ".tmp", then
// renames it over `path`, so a failed convert leaves no partial file. weights == nullptr writes a
// vocabulary-only checkpoint (config + tokenizer). Every tensor of `weights` is stored as `dtype`;
// the expected tensors must all be present with the config's shapes.
void write_h5_checkpoint(const std::string& path, const ModelConfig& cfg, const TokenizerData& tok,
                         const TensorSource* weights, DType dtype, ProgressFn progress = {});

// Reader. Opening validates the whole schema (format name and version, config, tokenizer, tensor
// shapes against the config) so later reads only fail on I/O. Keeps the file open; not thread-safe.
// Serial HDF5 access today; under MPI every rank opens the file and reads its own hyperslabs.
class H5Checkpoint : public TensorSource {
public:
    explicit H5Checkpoint(const std::string& path);
    ~H5Checkpoint() override;
    H5Checkpoint(const H5Checkpoint&) = delete;
    H5Checkpoint& operator=(const H5Checkpoint&) = delete;

    const std::string& path() const;
    int format_version() const;
    bool vocab_only() const;
    const ModelConfig& config() const;
    const TokenizerData& tokenizer() const;

    // TensorInfo::source_type is the stored dtype in upper case ("F32", "BF16", "F16") so that a
    // checkpoint can itself be the source of a convert; origin_type() is the type in the file the
    // checkpoint was converted from ("Q4_K", "BF16", ...; empty if not recorded).
    const std::vector<TensorInfo>& tensors() const override;
    bool has_tensor(const std::string& name) const;
    const TensorInfo& tensor_info(const std::string& name) const;
    DType tensor_dtype(const std::string& name) const;
    std::string origin_type(const std::string& name) const;

    // Whole tensor widened to f32, row-major, HF orientation.
    std::vector<float> read_f32(const std::string& name) const override;
    // Rows [row0, row0 + n_rows) of a 1-D or 2-D tensor: [n_rows] or [n_rows, cols].
    std::vector<float> read_rows_f32(const std::string& name, int64_t row0, int64_t n_rows) const override;
    // Columns [col0, col0 + n_cols) of a 2-D tensor: [rows, n_cols], row-major.
    std::vector<float> read_cols_f32(const std::string& name, int64_t col0, int64_t n_cols) const override;
    // The stored 16-bit patterns of an f16 / bf16 tensor, rows [row0, row0 + n_rows) (n_rows < 0:
    // to the end), without widening: [n_rows, cols]. Throws for an f32 tensor.
    std::vector<uint16_t> read_raw16(const std::string& name, int64_t row0 = 0, int64_t n_rows = -1) const;
    // The dataset's dtype (f32, bf16 or f16).
    DType stored_type(const std::string& name) const override { return tensor_dtype(name); }
    // Rows [row0, row0 + n_rows) as stored, without widening: [n_rows, cols] of the dtype's bytes.
    std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace gridlm
