// The K-quant kernel family (q4_k, q5_k, q6_k weights x ActQ8x256 activations) split by
// instruction set: quant_kquants.cpp holds the scalar reference and the family table,
// quant_kquants_avx2.cpp and quant_kquants_avx512.cpp the SIMD variants. Internal to
// engine/backend/cpu/quant.
//
// Every variant of a matmul computes, for weight row r and token t, over the super-blocks b of
// the row (in order):
//   q4_k / q5_k: acc += (d_w * d_x) * isum - (dmin_w * d_x) * msum,
//                isum = sum_j sc_j * sum_{i in sub-block j} q_i * qx_i   (8 sub-blocks of 32)
//                msum = sum_j m_j * (bsums[2j] + bsums[2j + 1])
//   q6_k:        acc += (d_w * d_x) * isum,
//                isum = sum_j sc_j * sum_{i in sub-block j} (q_i - 32) * qx_i   (16 of 16)
// with isum and msum exact 32-bit integers; only the float accumulation order differs between
// the variants (SIMD ones keep 8 or 16 partial sums per output and add them at the end).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/backend/cpu/quant/quant_kernels.h"

namespace gridlm::cpu::kq {

// Byte size of one activation block; its fields sit at these offsets (no padding).
inline constexpr int64_t act_bytes = sizeof(ActQ8x256);
inline constexpr int64_t act_off_bsums = offsetof(ActQ8x256, bsums);
inline constexpr int64_t act_off_qs = offsetof(ActQ8x256, qs);
static_assert(act_bytes == 292 && act_off_bsums == 4 && act_off_qs == 36,
              "ActQ8x256 must be packed: d, bsums[16], qs[256]");

// Weight super-block byte sizes and field offsets (engine/core/quant_blocks.h's BlockQ*_K).
inline constexpr int64_t q4k_bytes = 144;  // d, dmin, scales[12], qs[128]
inline constexpr int64_t q5k_bytes = 176;  // d, dmin, scales[12], qh[32], qs[128]
inline constexpr int64_t q6k_bytes = 210;  // ql[128], qh[64], scales[16], d

// A matmul call's plain arguments (quant_kernels.h).
using MatmulArgs = QuantMatmulArgs;

// Tokens per token block of a call: the activation blocks of that many tokens (nb * act_bytes
// each) stay within about 192 KiB, so they are re-read from L2 by every row tile; at least 8.
inline int64_t token_block(int64_t nb) {
    const int64_t per_token = nb * act_bytes;
    const int64_t t = (192 * 1024) / (per_token > 0 ? per_token : 1);
    return t < 8 ? 8 : t / 4 * 4;
}

// Unpacks the 12 scale bytes of a q4_k / q5_k super-block into the eight 6-bit scales
// (sc[0..7]) and mins (m[0..7]), one byte each, as two little-endian u64.
inline void unpack_scales_k4(const uint8_t* s, uint64_t& sc, uint64_t& m) {
    uint32_t a, b, c;
    __builtin_memcpy(&a, s, 4);
    __builtin_memcpy(&b, s + 4, 4);
    __builtin_memcpy(&c, s + 8, 4);
    const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    const uint32_t sc_lo = a & lo6, m_lo = b & lo6;
    const uint32_t sc_hi = (c & lo4) | (((a >> 6) & lo2) << 4);
    const uint32_t m_hi = ((c >> 4) & lo4) | (((b >> 6) & lo2) << 4);
    sc = (uint64_t)sc_lo | ((uint64_t)sc_hi << 32);
    m = (uint64_t)m_lo | ((uint64_t)m_hi << 32);
}

// Software prefetch of the weight stream: each row's bytes this far ahead of the super-block in
// use, into L2 (prefetcht1). With one row per tile the rows of a task form a single ascending
// stream, so this runs ahead of the hardware prefetcher across row and page boundaries. Measured
// on a Sapphire Rapids Xeon (batch-1 decode, 2 and 16 threads): with it 70-95% of read
// bandwidth, against 55-70% with 2- or 4-row tiles and L1 prefetches 4 blocks ahead; 2 KiB beat
// 576 B and 1 KiB.
inline constexpr int64_t prefetch_distance = 2048;

// Prefetches every cache line of [p + prefetch_distance, p + prefetch_distance + bytes).
inline void prefetch_ahead(const uint8_t* p, int64_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p) + prefetch_distance;
    for (uintptr_t l = a & ~(uintptr_t)63; l < a + (uintptr_t)bytes; l += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(l), 0, 2);
}

// The SIMD variants, built on x86-64 with GCC or Clang (the family table lists them only there).
void quantize_act_avx2(const float* x, void* out, int64_t n);
void matmul_q4k_avx2(const MatmulArgs& a);
void matmul_q5k_avx2(const MatmulArgs& a);
void matmul_q6k_avx2(const MatmulArgs& a);

void quantize_act_avx512(const float* x, void* out, int64_t n);
void matmul_q4k_avx512(const MatmulArgs& a);
void matmul_q5k_avx512(const MatmulArgs& a);
void matmul_q6k_avx512(const MatmulArgs& a);

}  // namespace gridlm::cpu::kq
