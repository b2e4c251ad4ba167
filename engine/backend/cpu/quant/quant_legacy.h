// The legacy-quant kernel family (q4_0, q4_1, q5_0, q5_1, q8_0 weights x ActQ8x32 activations)
// split by instruction set: quant_legacy.cpp holds the scalar reference and the family table,
// quant_legacy_avx2.cpp and quant_legacy_avx512.cpp the SIMD variants. Internal to
// engine/backend/cpu/quant.
//
// Every variant computes, for weight row r and token t, over the blocks b of the row in order:
//   q4_0, q5_0, q8_0: acc += (d_w * d_x) * isum,              isum = sum_i (q_i - o) * qx_i
//   q4_1, q5_1:       acc += (d_w * d_x) * isum + m_w * s_x,  isum = sum_i q_i * qx_i
// (o = 8 for q4_0, 16 for q5_0, 0 for q8_0; q_i the stored unsigned value, signed for q8_0; d_x,
// s_x, qx the activation block's fields), with isum an exact integer and each product rounded
// (no FMA) in the scalar reference. The SIMD variants keep 8 partial sums per output, use FMAs,
// and fold the offset o into a float term -o * d_w * s_x per block, so they match the reference
// to a few float roundings of the row's sum |w| |x|.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/core/quant_blocks.h"

namespace gridlm::cpu::lq {

// One activation block and the byte offsets of its fields (packed: d, s, qs[32]).
inline constexpr int64_t act_bytes = sizeof(ActQ8x32);
inline constexpr int64_t act_off_qs = offsetof(ActQ8x32, qs);
static_assert(act_bytes == 40 && offsetof(ActQ8x32, s) == 4 && act_off_qs == 8,
              "ActQ8x32 must be packed: d, s, qs[32]");

// Geometry of a legacy weight block (engine/core/quant_blocks.h): byte size, where its fields
// are, and how a stored value maps to an integer: q - offset (q4_0: 8, q5_0: 16), q + m / d
// (has_min), or a signed byte (q8_0).
struct LegacyFormat {
    int64_t bytes;
    int64_t off_qs;  // the 16 nibble bytes, or q8_0's 32 signed bytes
    int64_t off_qh;  // the u32 of fifth bits (q5_0, q5_1); -1 otherwise
    int64_t off_m;   // the f16 minimum (q4_1, q5_1); -1 otherwise
    int offset;      // subtracted from every stored value (q4_0, q5_0)
    bool signed8;    // q8_0: stored values are signed bytes
};

constexpr LegacyFormat legacy_format(DType t) {
    switch (t) {
        case DType::dtype_q4_0:
            return {sizeof(BlockQ4_0), offsetof(BlockQ4_0, qs), -1, -1, 8, false};
        case DType::dtype_q4_1:
            return {sizeof(BlockQ4_1), offsetof(BlockQ4_1, qs), -1, offsetof(BlockQ4_1, m), 0, false};
        case DType::dtype_q5_0:
            return {sizeof(BlockQ5_0), offsetof(BlockQ5_0, qs), offsetof(BlockQ5_0, qh), -1, 16, false};
        case DType::dtype_q5_1:
            return {
                sizeof(BlockQ5_1), offsetof(BlockQ5_1, qs), offsetof(BlockQ5_1, qh), offsetof(BlockQ5_1, m), 0, false};
        case DType::dtype_q8_0:
            return {sizeof(BlockQ8_0), offsetof(BlockQ8_0, qs), -1, -1, 0, true};
        default:
            return {0, 0, -1, -1, 0, false};
    }
}

// A matmul call's plain arguments (quant_kernels.h).
using MatmulArgs = QuantMatmulArgs;

// Checks a call's arguments (throws gridlm::Error for a weight of another type or with a
// partial block) and flattens them.
MatmulArgs matmul_args(DType type, const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y,
                       int64_t ld_y, int64_t r0, int64_t r1);

// Tokens per token chunk of a call: the chunk's activation blocks (nb * act_bytes per token) stay
// within about 192 KiB, so every row tile re-reads them from L2; a multiple of 4, at least 4.
inline int64_t token_chunk(int64_t nb) {
    const int64_t per_token = nb > 0 ? nb * act_bytes : 1;
    const int64_t t = (192 * 1024) / per_token / 4 * 4;
    return t < 4 ? 4 : t;
}

// The d and s fields of the activation blocks of tokens [t0, t0 + nt) as two float planes:
// d[t * nb_pad + b] and s[t * nb_pad + b] for t in [0, nt), b in [0, nb); each token's row padded
// with zeros to nb_pad, a multiple of 8, so SIMD code loads 8 blocks' scales at once. The planes
// live in a buffer of the calling thread, valid until its next call, that grows to the largest
// call (no allocation per call).
struct ActScales {
    const float* d;
    const float* s;
    int64_t nb_pad;
};
ActScales act_scale_planes(const uint8_t* xq, int64_t xq_stride, int64_t t0, int64_t nt, int64_t nb);

// The SIMD variants' tables (nullptr for a type outside the family); defined where the build
// targets x86-64 with GCC or Clang, otherwise they return nullptr.
const QuantKernels* kernels_avx2(DType type);
const QuantKernels* kernels_avx512(DType type);

}  // namespace gridlm::cpu::lq
