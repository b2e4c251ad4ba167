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
// Versions this build reads: 1 (float tensors only) and 2 (adds block-quantised tensors). The
// writer stamps 2 only on files that hold a block-quantised tensor, so float-only files stay
// readable by version-1 readers.
inline constexpr int h5_format_version = 2;
inline constexpr int h5_format_version_min = 1;

// Target chunk shape of a 2-D tensor dataset, [256, 1024] elements, shrunk per dimension to split it
// into equal parts (a [576, 1536] tensor gets [192, 768] chunks). Measurements in the doc.
inline constexpr int64_t h5_chunk_rows = 256;
inline constexpr int64_t h5_chunk_cols = 1024;

// Reported after each tensor is written. The error fields compare the stored values (dequantised
// or widened back to f32) with the source's f32 values; they are 0 for an exact tensor.
struct ConvertProgress {
    size_t tensors_done = 0;
    size_t tensors_total = 0;
    uint64_t bytes_done = 0;  // tensor bytes written so far (in the stored types)
    uint64_t bytes_total = 0;
    std::string_view tensor;         // the tensor just written
    DType dtype = DType::dtype_f32;  // how it was stored
    bool copied = false;             // its stored bytes were copied from the source as they were
    bool exact = true;               // the stored values equal the source's (copies, widening to f32)
    double sq_err = 0;               // sum over its values of (stored - source)^2
    double sq_ref = 0;               // sum over its values of source^2
    double max_abs_err = 0;          // max |stored - source|
};
using ProgressFn = std::function<void(const ConvertProgress&)>;
// Picks the stored type of each tensor for write_h5_checkpoint. A block type is allowed for a
// 2-D tensor whose rows are whole blocks; a tensor already stored in the chosen type (the source's
// TensorSource::stored_type) is copied row by row without converting.
using TypeChooser = std::function<DType(const TensorInfo&)>;

// Throws gridlm::Error("<where>: ...") when the config cannot describe a working model
// (non-positive sizes, n_head not a multiple of n_head_kv, unknown arch).
void validate_model_config(const ModelConfig& cfg, const std::string& where);

// The tensors a Llama / Qwen2 model with this config needs, in model order, with HF names and shapes:
// model.embed_tokens.weight [n_vocab, n_embd], per layer q/k/v/o, gate/up/down, two norms
// (+ q/k/v biases when attn_bias), model.norm.weight [n_embd], lm_head.weight unless tied.
std::vector<TensorInfo> expected_tensors(const ModelConfig& cfg);

// Writes a checkpoint tensor by tensor (one tensor in memory at a time) to path + ".tmp", then
// renames it over `path`, so a failed convert leaves no partial file. weights == nullptr writes a
// vocabulary-only checkpoint (config + tokenizer). The expected tensors must all be present with
// the config's shapes. Each tensor is stored as choose(tensor) (plans are checked before anything
// is written: a block type for a 1-D tensor or for rows that are not whole blocks is an Error
// naming the tensor). Block types are written as format version 2 (docs/checkpoint-format.md).
void write_h5_checkpoint(const std::string& path, const ModelConfig& cfg, const TokenizerData& tok,
                         const TensorSource* weights, const TypeChooser& choose, ProgressFn progress = {});
// Every tensor stored as `dtype`; for a block type, 1-D tensors (norms, biases) stay f32.
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

    // TensorInfo::source_type is the stored dtype as GGUF spells it ("F32", "BF16", "Q4_K") so that
    // a checkpoint can itself be the source of a convert; origin_type() is the type in the file the
    // checkpoint was converted from ("Q4_K", "BF16", ...; empty if not recorded). shape is the
    // logical shape, also for a block-quantised tensor (whose dataset is [rows, row bytes]).
    const std::vector<TensorInfo>& tensors() const override;
    bool has_tensor(const std::string& name) const;
    const TensorInfo& tensor_info(const std::string& name) const;
    DType tensor_dtype(const std::string& name) const;
    std::string origin_type(const std::string& name) const;

    // Whole tensor widened (or dequantised, bit-identical to ggml's dequantisers) to f32, row-major,
    // HF orientation.
    std::vector<float> read_f32(const std::string& name) const override;
    // Rows [row0, row0 + n_rows) of a 1-D or 2-D tensor: [n_rows] or [n_rows, cols].
    std::vector<float> read_rows_f32(const std::string& name, int64_t row0, int64_t n_rows) const override;
    // Columns [col0, col0 + n_cols) of a 2-D tensor: [rows, n_cols], row-major. A block-quantised
    // tensor reads the blocks that cover the columns and dequantises them.
    std::vector<float> read_cols_f32(const std::string& name, int64_t col0, int64_t n_cols) const override;
    // The stored 16-bit patterns of an f16 / bf16 tensor, rows [row0, row0 + n_rows) (n_rows < 0:
    // to the end), without widening: [n_rows, cols]. Throws for an f32 or block-quantised tensor.
    std::vector<uint16_t> read_raw16(const std::string& name, int64_t row0 = 0, int64_t n_rows = -1) const;
    // The dataset's dtype (f32, bf16, f16 or a block type).
    DType stored_type(const std::string& name) const override { return tensor_dtype(name); }
    // Rows [row0, row0 + n_rows) as stored, without widening or dequantising: n_rows rows of
    // row_bytes(dtype, cols) bytes (one hyperslab read).
    std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace gridlm
