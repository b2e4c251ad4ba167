// Read-only, memory-mapped GGUF (v2/v3) file: header, metadata, tensor table and tensor data,
// with every count, length and offset checked against the file before it is used.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/gguf_quant.h"

namespace gridlm {

// Metadata value types, numbered as in the file.
enum class GgufValueType : uint32_t {
    gguf_value_type_u8 = 0,
    gguf_value_type_i8 = 1,
    gguf_value_type_u16 = 2,
    gguf_value_type_i16 = 3,
    gguf_value_type_u32 = 4,
    gguf_value_type_i32 = 5,
    gguf_value_type_f32 = 6,
    gguf_value_type_bool = 7,
    gguf_value_type_string = 8,
    gguf_value_type_array = 9,
    gguf_value_type_u64 = 10,
    gguf_value_type_i64 = 11,
    gguf_value_type_f64 = 12,
};

// "u32", "string", "array", ...; "?" for numbers outside the enum.
std::string_view gguf_value_type_name(GgufValueType type);

// One metadata entry. The value stays in the mapping; accessors decode it on demand.
struct GgufKv {
    std::string key;
    GgufValueType type = GgufValueType::gguf_value_type_u8;
    GgufValueType elem_type = GgufValueType::gguf_value_type_u8;  // arrays only
    uint64_t count = 0;                                           // arrays: number of elements
    uint64_t value_offset = 0;  // file offset of the value (arrays: of their first element)
    uint64_t value_bytes = 0;   // bytes from value_offset to the end of the value
};

struct GgufTensor {
    std::string name;           // GGUF name, e.g. "blk.0.attn_q.weight"
    std::vector<int64_t> dims;  // innermost first, as in the file: dims[0] is contiguous
    GgmlType type = GgmlType::ggml_type_f32;
    uint64_t offset = 0;  // relative to the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;  // into the mapping; null when the data lies past the end of
                                    // the file (only possible with need_tensor_data = false)

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        return n;
    }
};

class GgufFile {
public:
    // Maps and parses `path`. With need_tensor_data = false, tensors whose data is cut off are
    // kept (for metadata / vocabulary-only reads of a partial file) and only fail when their
    // data is asked for. Throws gridlm::Error naming the file and the problem.
    explicit GgufFile(const std::string& path, bool need_tensor_data = true);
    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t file_size() const { return size_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

    // ---- metadata ------------------------------------------------------------------------
    const std::vector<GgufKv>& kvs() const { return kvs_; }
    bool has(std::string_view key) const;
    const GgufKv& kv(std::string_view key) const;  // throws when missing

    // Integer accessors accept any integer value type whose value fits the result.
    uint64_t get_u64(std::string_view key) const;
    int64_t get_i64(std::string_view key) const;
    uint32_t get_u32(std::string_view key) const;
    int32_t get_i32(std::string_view key) const;
    // f32 or f64 values.
    double get_f64(std::string_view key) const;
    float get_f32(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    std::string_view get_string_view(std::string_view key) const;  // points into the mapping
    std::string get_string(std::string_view key) const { return std::string(get_string_view(key)); }

    uint64_t get_array_size(std::string_view key) const;
    std::vector<std::string> get_string_array(std::string_view key) const;
    // Arrays of any integer element type whose values all fit.
    std::vector<int32_t> get_i32_array(std::string_view key) const;
    std::vector<int64_t> get_i64_array(std::string_view key) const;
    std::vector<float> get_f32_array(std::string_view key) const;

    // Human-readable value for listings: scalars in full (strings quoted, cut after
    // max_chars), arrays as "[a, b, ... (N)]" showing at most max_elems elements per level.
    std::string describe(std::string_view key, size_t max_elems = 8, size_t max_chars = 80) const;

    // ---- tensors -------------------------------------------------------------------------
    const std::vector<GgufTensor>& tensors() const { return tensors_; }
    const GgufTensor* find_tensor(std::string_view name) const;  // nullptr when absent
    const GgufTensor& tensor(std::string_view name) const;       // throws when absent
    // The tensor's bytes; throws when they lie past the end of a cut-off file.
    const uint8_t* tensor_data(const GgufTensor& t) const;

private:
    void parse(bool need_tensor_data);
    [[noreturn]] void fail_key(const GgufKv& kv, const std::string& what) const;
    void describe_value(std::string& out, GgufValueType type, uint64_t& pos, size_t max_elems, size_t max_chars) const;

    std::string path_;
    const uint8_t* base_ = nullptr;  // the read-only mapping
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<GgufKv> kvs_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<GgufTensor> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace gridlm
