// ggml tensor element types as stored in GGUF files: block geometry, names, and
// dequantisation of the supported ones to f32.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gridlm {

// Numbering as in ggml / GGUF tensor infos. Gaps are types ggml has retired.
enum class GgmlType : uint32_t {
    ggml_type_f32 = 0,
    ggml_type_f16 = 1,
    ggml_type_q4_0 = 2,
    ggml_type_q4_1 = 3,
    ggml_type_q5_0 = 6,
    ggml_type_q5_1 = 7,
    ggml_type_q8_0 = 8,
    ggml_type_q8_1 = 9,
    ggml_type_q2_k = 10,
    ggml_type_q3_k = 11,
    ggml_type_q4_k = 12,
    ggml_type_q5_k = 13,
    ggml_type_q6_k = 14,
    ggml_type_q8_k = 15,
    ggml_type_iq2_xxs = 16,
    ggml_type_iq2_xs = 17,
    ggml_type_iq3_xxs = 18,
    ggml_type_iq1_s = 19,
    ggml_type_iq4_nl = 20,
    ggml_type_iq3_s = 21,
    ggml_type_iq2_s = 22,
    ggml_type_iq4_xs = 23,
    ggml_type_i8 = 24,
    ggml_type_i16 = 25,
    ggml_type_i32 = 26,
    ggml_type_i64 = 27,
    ggml_type_f64 = 28,
    ggml_type_iq1_m = 29,
    ggml_type_bf16 = 30,
    ggml_type_tq1_0 = 34,
    ggml_type_tq2_0 = 35,
    ggml_type_mxfp4 = 39,
};

struct GgmlTypeTraits {
    const char* name;     // ggml's spelling: "Q4_K", "F16", ...
    int64_t block_size;   // elements per block (1 for plain types)
    int64_t type_size;    // bytes per block
    bool can_dequantize;  // dequantize() handles it
};

// Traits of a raw type number from a file, or nullptr when the number is not a ggml type
// whose layout is known here.
const GgmlTypeTraits* ggml_type_traits(uint32_t type);
// Same for a valid enum value; throws gridlm::Error for a value outside the table.
const GgmlTypeTraits& ggml_traits(GgmlType type);

inline std::string_view ggml_type_name(GgmlType type) { return ggml_traits(type).name; }
inline int64_t ggml_block_size(GgmlType type) { return ggml_traits(type).block_size; }
inline int64_t ggml_type_size(GgmlType type) { return ggml_traits(type).type_size; }
inline bool ggml_can_dequantize(GgmlType type) { return ggml_traits(type).can_dequantize; }
// Bytes taken by n elements; n must be a multiple of the block size.
uint64_t ggml_n_bytes(GgmlType type, int64_t n);

// Dequantises n elements (a multiple of the block size) from src into dst[n].
// Supported: the types of engine/core/dtype.h's table (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q4_K, Q5_K, Q6_K), through engine/core/quant_blocks.h's dequantize_row: bit-identical to
// ggml's reference dequantize_row_* (same float operation order, no fused multiply-add).
// Large inputs are split across OpenMP threads. Throws gridlm::Error for other types or a bad n.
void dequantize(GgmlType type, const void* src, int64_t n, float* dst);

}  // namespace gridlm
