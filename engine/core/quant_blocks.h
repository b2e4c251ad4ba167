// GGUF block-quantised weight formats: the byte layout of each block type of engine/core/dtype.h,
// small readers for its fields, and scalar dequantisation of whole rows to f32.
//
// Layouts as in the GGUF specification (ggml's ggml-common.h; summarised in shared/NOTES.md). All
// fields are little-endian; scales are IEEE half (f16). Blocks sit back to back in a row with no
// padding, so a block's address is only 2-byte aligned at best: read fields with the helpers
// below (memcpy), never by dereferencing a cast pointer to a wider type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/core/dtype.h"

namespace gridlm {

// ---- block layouts (sizeof matches dtype_table's block_bytes) --------------------------------

// q4_0, 32 values: value j (0..15) is the low nibble of qs[j], value j + 16 its high nibble;
// x = (q - 8) * d.
struct BlockQ4_0 {
    uint16_t d;  // f16 scale
    uint8_t qs[16];
};
// q4_1, 32 values: nibbles as q4_0; x = q * d + m.
struct BlockQ4_1 {
    uint16_t d;  // f16 scale
    uint16_t m;  // f16 minimum
    uint8_t qs[16];
};
// q5_0, 32 values: q4_0's nibbles plus bit j of the little-endian u32 qh as bit 4 of value j;
// x = (q - 16) * d.
struct BlockQ5_0 {
    uint16_t d;     // f16 scale
    uint8_t qh[4];  // fifth bits, one u32
    uint8_t qs[16];
};
// q5_1, 32 values: q5_0's bits; x = q * d + m.
struct BlockQ5_1 {
    uint16_t d;     // f16 scale
    uint16_t m;     // f16 minimum
    uint8_t qh[4];  // fifth bits, one u32
    uint8_t qs[16];
};
// q8_0, 32 values: x = qs[j] * d.
struct BlockQ8_0 {
    uint16_t d;  // f16 scale
    int8_t qs[32];
};
// q4_k, 256 values in 8 sub-blocks of 32 with 6-bit scales and mins (k_scale_min); 64-value chunk
// c takes 32 bytes of qs: low nibbles are sub-block 2c, high nibbles sub-block 2c + 1;
// x = d * sc * q - dmin * m.
struct BlockQ4_K {
    uint16_t d;     // f16 super-scale of the scales
    uint16_t dmin;  // f16 super-scale of the mins
    uint8_t scales[12];
    uint8_t qs[128];
};
// q5_k, 256 values: q4_k plus a fifth bit: chunk c takes bit 2c of qh[l] for value 64c + l and
// bit 2c + 1 for value 64c + 32 + l.
struct BlockQ5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
// q6_k, 256 values in two halves of 128: value l + 32k (l < 32, k < 4) of a half takes a nibble of
// ql and two bits of qh[l]; 16 sub-blocks of 16 with int8 scales; x = d * scales[s] * (q - 32).
struct BlockQ6_K {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;  // f16, last
};

static_assert(sizeof(BlockQ4_0) == dtype_block_bytes(DType::dtype_q4_0));
static_assert(sizeof(BlockQ4_1) == dtype_block_bytes(DType::dtype_q4_1));
static_assert(sizeof(BlockQ5_0) == dtype_block_bytes(DType::dtype_q5_0));
static_assert(sizeof(BlockQ5_1) == dtype_block_bytes(DType::dtype_q5_1));
static_assert(sizeof(BlockQ8_0) == dtype_block_bytes(DType::dtype_q8_0));
static_assert(sizeof(BlockQ4_K) == dtype_block_bytes(DType::dtype_q4_k));
static_assert(sizeof(BlockQ5_K) == dtype_block_bytes(DType::dtype_q5_k));
static_assert(sizeof(BlockQ6_K) == dtype_block_bytes(DType::dtype_q6_k));

// Values per K-quant super-block.
inline constexpr int64_t quant_k_block = 256;
// Values per block of the legacy types (q4_0 .. q8_0).
inline constexpr int64_t quant_legacy_block = 32;

// ---- field readers ----------------------------------------------------------------------------

// The f16 at byte p (any alignment), as f32.
inline float read_f16(const void* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}
inline uint32_t read_u32(const void* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The scale d of a block of any legacy type (the first field) and the minimum m of q4_1 / q5_1.
inline float block_d(const void* block) { return read_f16(block); }
inline float block_m(const void* block) { return read_f16(static_cast<const uint8_t*>(block) + 2); }

// 6-bit scale and min of sub-block j (0..7) from the 12 packed scale bytes of q4_k / q5_k.
inline void k_scale_min(int j, const uint8_t* s, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// ---- dequantisation ---------------------------------------------------------------------------

// Writes the n values stored at src (n / block_size whole blocks of type, back to back) to
// dst[n] as f32, on the calling thread. Bit-identical to ggml's reference dequantize_row_*: the
// same float operations in the same order, never fused into FMAs. Works for every DType (plain
// types are converted). Throws gridlm::Error when n is negative or not a whole number of blocks.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);

}  // namespace gridlm
