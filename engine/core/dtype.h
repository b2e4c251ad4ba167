// Element types of stored and in-memory tensors: the one table of weight types (block geometry,
// names, GGUF ids) and scalar conversions between the float types.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/core/error.h"

namespace gridlm {

// Every weight type gridlm knows, described by one table (dtype_table below): the plain float types a
// weight can be converted to, and the GGUF block-quantised types a file can store. A block type
// packs block_size consecutive values of a row into block_bytes bytes, so a row of such a type
// must hold whole blocks.
enum class DType : uint8_t {
    dtype_f32,
    dtype_f16,
    dtype_bf16,
    dtype_q4_0,
    dtype_q4_1,
    dtype_q5_0,
    dtype_q5_1,
    dtype_q8_0,
    dtype_q4_k,
    dtype_q5_k,
    dtype_q6_k,
};

struct DTypeTraits {
    DType type;
    const char* name;       // as gridlm prints it: "f32", "bf16", "q4_k"
    const char* file_name;  // as GGUF and safetensors files spell it: "F32", "BF16", "Q4_K"
    uint32_t gguf_id;       // ggml type number in a GGUF tensor info
    int64_t block_size;     // values per block (1 for plain types)
    int64_t block_bytes;    // bytes per block
    bool quantized;         // a block-quantised type (values are only reachable by dequantising a block)
};

// Sizes as in the GGUF specification (ggml's type_traits); indexed by DType.
inline constexpr DTypeTraits dtype_table[] = {
    {DType::dtype_f32, "f32", "F32", 0, 1, 4, false},        {DType::dtype_f16, "f16", "F16", 1, 1, 2, false},
    {DType::dtype_bf16, "bf16", "BF16", 30, 1, 2, false},    {DType::dtype_q4_0, "q4_0", "Q4_0", 2, 32, 18, true},
    {DType::dtype_q4_1, "q4_1", "Q4_1", 3, 32, 20, true},    {DType::dtype_q5_0, "q5_0", "Q5_0", 6, 32, 22, true},
    {DType::dtype_q5_1, "q5_1", "Q5_1", 7, 32, 24, true},    {DType::dtype_q8_0, "q8_0", "Q8_0", 8, 32, 34, true},
    {DType::dtype_q4_k, "q4_k", "Q4_K", 12, 256, 144, true}, {DType::dtype_q5_k, "q5_k", "Q5_K", 13, 256, 176, true},
    {DType::dtype_q6_k, "q6_k", "Q6_K", 14, 256, 210, true},
};
inline constexpr size_t dtype_count = sizeof(dtype_table) / sizeof(dtype_table[0]);

constexpr bool dtype_table_in_order() {
    for (size_t i = 0; i < dtype_count; ++i)
        if ((size_t)dtype_table[i].type != i) return false;
    return (size_t)DType::dtype_q6_k + 1 == dtype_count;
}
static_assert(dtype_table_in_order(), "dtype_table rows must follow the order of DType");

constexpr const DTypeTraits& dtype_traits(DType t) {
    GRIDLM_ASSERT((size_t)t < dtype_count);
    return dtype_table[(size_t)t];
}
constexpr int64_t dtype_block_size(DType t) { return dtype_traits(t).block_size; }
constexpr int64_t dtype_block_bytes(DType t) { return dtype_traits(t).block_bytes; }
constexpr bool dtype_is_quantized(DType t) { return dtype_traits(t).quantized; }

// The type with this GGUF (ggml) type number, or nullptr when the table has none.
constexpr const DTypeTraits* dtype_of_gguf_id(uint32_t id) {
    for (const DTypeTraits& t : dtype_table)
        if (t.gguf_id == id) return &t;
    return nullptr;
}

// Bytes per value of a plain (block size 1) type; a block type has no per-value size (row_bytes).
inline size_t dtype_size(DType t) {
    GRIDLM_ASSERT(dtype_block_size(t) == 1);
    return (size_t)dtype_block_bytes(t);
}

// Bytes of one row of `cols` values. Throws gridlm::Error when cols is negative or, for a block
// type, not a whole number of blocks.
inline int64_t row_bytes(DType t, int64_t cols) {
    const DTypeTraits& tr = dtype_traits(t);
    if (cols < 0 || cols % tr.block_size != 0) {
        throw Error(str("a row of ", cols, " ", tr.name, " values is not a whole number of ", tr.name, " blocks (",
                        tr.block_size, " values per block)"));
    }
    return cols / tr.block_size * tr.block_bytes;
}

inline std::string_view dtype_name(DType t) {
    return (size_t)t < dtype_count ? std::string_view(dtype_table[(size_t)t].name) : "?";
}

// The types a model's weights may be converted to on load or on convert (the plain ones).
inline DType dtype_from_name(std::string_view name) {
    if (name == "f32") return DType::dtype_f32;
    if (name == "f16") return DType::dtype_f16;
    if (name == "bf16") return DType::dtype_bf16;
    throw Error(str("unknown dtype '", name, "' (expected f32, bf16 or f16)"));
}

// IEEE half -> float, exact for every input (subnormals, inf, nan).
inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: value = mant * 2^-24, exactly representable in f32
            float v = (float)mant * 0x1p-24f;
            bits = sign | std::bit_cast<uint32_t>(v);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    return std::bit_cast<float>(bits);
}

// float -> IEEE half, round to nearest even.
inline uint16_t f32_to_f16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) {  // inf or nan
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    }
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to inf
    if (absx < 0x38800000u) {                                   // result is subnormal or zero
        const float a = std::bit_cast<float>(absx);
        // a * 2^24 rounded to nearest even gives the subnormal mantissa.
        const float scaled = a * 0x1p24f;
        uint32_t m = (uint32_t)scaled;
        const float rem = scaled - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t r = absx + 0xc8000fffu + ((absx >> 13) & 1);  // rebias exponent and round
    return (uint16_t)(sign | (r >> 13));
}

inline float bf16_to_f32(uint16_t b) { return std::bit_cast<float>((uint32_t)b << 16); }

// float -> bfloat16, round to nearest even (nan stays nan).
inline uint16_t f32_to_bf16(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffff) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

}  // namespace gridlm
