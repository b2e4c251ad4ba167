// Reader for Hugging Face safetensors files (8-byte little-endian header length, JSON header, raw
// data), memory-mapped and bounds-checked, single-file or sharded through model.safetensors.index.json.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/tensor_source.h"

namespace gridlm {

// Largest JSON header accepted: real headers are well under 1 MiB per thousand tensors; anything
// beyond this is a corrupt or hostile length field, refused before allocating.
inline constexpr uint64_t safetensors_max_header_bytes = 100ull << 20;

// One OCP FP8 E4M3 ("e4m3fn") value: bias 7, 3 mantissa bits, subnormals, no infinities;
// 0x7f / 0xff are NaN. Largest finite value 448.
float fp8_e4m3_to_f32(uint8_t bits);

struct SafetensorsTensor {
    TensorInfo info;  // HF name, shape, source_type "F32" / "F16" / "BF16" / "F8_E4M3", source_bytes
    DType dtype;      // F8_E4M3: f32 (what the source hands out after dequantising)
    bool fp8_e4m3 = false;
    uint64_t data_begin = 0;  // offset into the data section (after the header)
    uint64_t data_end = 0;
};

// One .safetensors file. Validates the whole header on open: every tensor's dtype is F32, F16 or
// BF16, dims are non-negative and their product does not overflow, [begin, end) lies inside the
// data section, end - begin == numel * dtype size, and no two tensors overlap.
class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    // In data-offset order (the file's own layout).
    const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
    const SafetensorsTensor* find(const std::string& name) const;  // nullptr when absent
    // The tensor's bytes inside the mapping (not necessarily aligned).
    const uint8_t* data(const SafetensorsTensor& t) const { return data_ + t.data_begin; }
    // The whole tensor widened to f32, row-major.
    std::vector<float> read_f32(const SafetensorsTensor& t) const;

private:
    std::string path_;
    const uint8_t* map_ = nullptr;
    uint64_t size_ = 0;
    const uint8_t* data_ = nullptr;  // start of the data section
    std::vector<SafetensorsTensor> tensors_;
    std::unordered_map<std::string, size_t> index_;
};

// The weights of a Hugging Face model directory (or one .safetensors file) as a TensorSource:
// `model.safetensors.index.json` (weight_map: tensor -> shard file) when present, else
// `model.safetensors`. Tensors come in shard order, then data-offset order, with HF names as-is.
class SafetensorsSource : public TensorSource {
public:
    explicit SafetensorsSource(const std::string& dir_or_file);

    const std::vector<TensorInfo>& tensors() const override { return infos_; }
    std::vector<float> read_f32(const std::string& name) const override;
    // F32, F16 or BF16 as in the header.
    DType stored_type(const std::string& name) const override;
    // Rows as stored: [n_rows, cols] of the dtype's bytes.
    std::vector<uint8_t> read_rows_raw(const std::string& name, int64_t row0, int64_t n_rows) const override;
    // Files the tensors were read from (one, or the shards in name order).
    std::vector<std::string> files() const;

private:
    void add_whole_file(const std::string& path);
    void hide_fp8_scales();
    const SafetensorsTensor& entry(const std::string& name) const;

    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::vector<TensorInfo> infos_;
    // HF name -> (file, tensor) for read_f32.
    std::unordered_map<std::string, std::pair<const SafetensorsFile*, const SafetensorsTensor*>> index_;
    std::string where_;  // the directory or file, for messages
};

}  // namespace gridlm
