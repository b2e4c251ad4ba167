// x86 SIMD code shared by the legacy-quant variants (quant_legacy_avx2.cpp,
// quant_legacy_avx512.cpp), on 256-bit vectors: decoding of weight blocks and their scales, and
// the row x token tiles of the matmul, parametrised by the variant's integer block dot product.
// The including file defines GRIDLM_LQ_TARGET, the target attribute its functions are compiled
// with; everything here sits in an unnamed namespace, so each including file gets its own copies
// built for its own target (a shared inline copy could carry AVX-512 code into the AVX2 path).
// Internal to engine/backend/cpu/quant.
#pragma once

#ifndef GRIDLM_LQ_TARGET
#error "define GRIDLM_LQ_TARGET (a target attribute) before including quant_legacy_x86.h"
#endif

#include <immintrin.h>

#include <cstring>

#include "engine/backend/cpu/quant/quant_legacy.h"

#define GRIDLM_LQ_INLINE GRIDLM_LQ_TARGET __attribute__((always_inline)) inline

namespace gridlm::cpu::lq {

namespace {

GRIDLM_LQ_INLINE int ld32(const uint8_t* p) {
    int v;
    std::memcpy(&v, p, 4);
    return v;
}
GRIDLM_LQ_INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

GRIDLM_LQ_INLINE float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

GRIDLM_LQ_INLINE int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

// ---- weight blocks ----------------------------------------------------------------------------

// Whether decode leaves the high nibbles of q4_0 / q4_1 in place (16 q, bytes 16..31) instead of
// shifting them down: with Ops::nibbles_in_place (a dot product without an int16 step, where
// 16 q x cannot saturate), the tile scales the upper half of its accumulators by 1/16 at the
// end, which is exact (a power of two).
template <DType Q, class Ops>
constexpr bool nibbles_in_place() {
    return Ops::nibbles_in_place && !legacy_format(Q).signed8 && legacy_format(Q).off_qh < 0;
}

// The 32 values of a weight block in order as bytes: unsigned 0..15 / 0..31, or q8_0's signed ones.
// Ops::fifth_bits(q, qh) sets 0x10 in byte j of q where bit j of the u32 at qh is set.
template <DType Q, class Ops>
GRIDLM_LQ_INLINE __m256i decode(const uint8_t* blk) {
    constexpr LegacyFormat f = legacy_format(Q);
    if constexpr (f.signed8) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + f.off_qs));
    } else {
        // Both halves hold the 16 bytes; the upper one shifted by 4 gives the high nibbles.
        const __m256i v =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + f.off_qs)));
        if constexpr (nibbles_in_place<Q, Ops>())
            return _mm256_and_si256(
                v, _mm256_setr_epi64x(0x0F0F0F0F0F0F0F0F, 0x0F0F0F0F0F0F0F0F, (long long)0xF0F0F0F0F0F0F0F0ull,
                                      (long long)0xF0F0F0F0F0F0F0F0ull));
        const __m256i q =
            _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
        if constexpr (f.off_qh >= 0) return Ops::fifth_bits(q, blk + f.off_qh);
        return q;
    }
}

// The first u32 of 8 consecutive blocks B bytes apart, of which the first g (1..8) exist: lanes
// past g read block g - 1 again (never beyond the row) and are then cleared. Put together in
// registers; a gather through memory would stall on store forwarding. With g == 8 known at
// compile time the clamping and the mask fold away.
GRIDLM_LQ_INLINE __m256i gather8_u32(const uint8_t* blk, int64_t B, int64_t g) {
    const int64_t last = g - 1;
    int64_t off[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) off[k] = (k < last ? k : last) * B;
    const __m128i a0 = _mm_unpacklo_epi32(_mm_cvtsi32_si128(ld32(blk + off[0])), _mm_cvtsi32_si128(ld32(blk + off[1])));
    const __m128i a1 = _mm_unpacklo_epi32(_mm_cvtsi32_si128(ld32(blk + off[2])), _mm_cvtsi32_si128(ld32(blk + off[3])));
    const __m128i a2 = _mm_unpacklo_epi32(_mm_cvtsi32_si128(ld32(blk + off[4])), _mm_cvtsi32_si128(ld32(blk + off[5])));
    const __m128i a3 = _mm_unpacklo_epi32(_mm_cvtsi32_si128(ld32(blk + off[6])), _mm_cvtsi32_si128(ld32(blk + off[7])));
    const __m256i v =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi64(a0, a1)), _mm_unpacklo_epi64(a2, a3), 1);
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)g), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_and_si256(v, valid);
}

// d_w of g <= 8 consecutive blocks (lanes past g: 0) and the per-block float term's weight
// factor: m_w (q4_1, q5_1), -o * d_w (q4_0, q5_0), or 0 (q8_0). Every block starts with the f16
// d, then (q4_1, q5_1) the f16 m or other bytes of the block: the first 4 bytes of the blocks
// are loaded as one vector and split into halves.
template <DType Q>
GRIDLM_LQ_INLINE void weight_scales(const uint8_t* blk, int64_t g, __m256& d, __m256& m) {
    constexpr LegacyFormat f = legacy_format(Q);
    constexpr int64_t B = f.bytes;
    static_assert(f.off_m < 0 || f.off_m == 2, "d and m are the block's first u32");
    __m256i dm = gather8_u32(blk, B, g);
    // Per lane: d0 m0 d1 m1 d2 m2 d3 m3 -> d0 d1 d2 d3 m0 m1 m2 m3; then d's low, m's high.
    const __m256i split = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12,
                                           13, 2, 3, 6, 7, 10, 11, 14, 15);
    dm = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(dm, split), _MM_SHUFFLE(3, 1, 2, 0));
    d = _mm256_cvtph_ps(_mm256_castsi256_si128(dm));
    if constexpr (f.off_m >= 0) {
        m = _mm256_cvtph_ps(_mm256_extracti128_si256(dm, 1));
    } else if constexpr (f.offset != 0) {
        m = _mm256_mul_ps(d, _mm256_set1_ps(-(float)f.offset));
    } else {
        m = _mm256_setzero_ps();
    }
}

// ---- matmul tiles -----------------------------------------------------------------------------

// Bytes ahead of the current group of 8 blocks that each row's weights are prefetched; past the
// row's end, the row R rows further on (the same lane of the next tile) is prefetched instead.
constexpr int64_t prefetch_bytes = 1024;

// The activations of a tile's first token: its blocks (tokens xs bytes apart) and its rows of
// the scale planes (tokens nb_pad floats apart).
struct TileX {
    const uint8_t* q;
    int64_t xs;
    const float* d;
    const float* s;
    int64_t nb_pad;
};

// Adds g <= 8 blocks, starting at block b0, of R rows (w: the first row, rows ws bytes apart) x
// T tokens to the accumulators. Ops::block<Q>(q, x) gives the 8 int32 partial sums of one weight
// block (decode) times one activation block.
template <DType Q, int R, int T, class Ops>
GRIDLM_LQ_INLINE void add_group(const uint8_t* w, int64_t ws, const TileX& x, int64_t nb, int64_t b0, int64_t g,
                                __m256 (&acc)[R][T]) {
    constexpr LegacyFormat f = legacy_format(Q);
    constexpr bool block_term = f.off_m >= 0 || f.offset != 0;
    const int64_t ahead = b0 * f.bytes + prefetch_bytes, row_bytes = nb * f.bytes;
    const uint8_t* pf = ahead < row_bytes ? w + ahead : w + R * ws + (ahead - row_bytes);
    w += b0 * f.bytes;
    const uint8_t* xq = x.q + b0 * act_bytes + act_off_qs;
    alignas(32) float sc[R][T][8];  // d_w * d_x of the group's blocks
    __m256 dx[T], sx[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
        dx[t] = _mm256_loadu_ps(x.d + t * x.nb_pad + b0);
        sx[t] = _mm256_loadu_ps(x.s + t * x.nb_pad + b0);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
        for (int64_t off = 0; off < 8 * f.bytes; off += 64)
            _mm_prefetch(reinterpret_cast<const char*>(pf + r * ws + off), _MM_HINT_T0);
        __m256 dw, mw;
        weight_scales<Q>(w + r * ws, g, dw, mw);
        if constexpr (nibbles_in_place<Q, Ops>()) mw = _mm256_mul_ps(mw, _mm256_setr_ps(1, 1, 1, 1, 16, 16, 16, 16));
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
            _mm256_store_ps(sc[r][t], _mm256_mul_ps(dw, dx[t]));
            if constexpr (block_term) acc[r][t] = _mm256_fmadd_ps(mw, sx[t], acc[r][t]);
        }
    }
    for (int64_t j = 0; j < g; ++j) {
        __m256i xv[T];
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t)
            xv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + t * x.xs + j * act_bytes));
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            const __m256i q = decode<Q, Ops>(w + r * ws + j * f.bytes);
#pragma GCC unroll 4
            for (int t = 0; t < T; ++t) {
                const __m256 s = _mm256_cvtepi32_ps(Ops::template block<Q>(q, xv[t]));
                acc[r][t] = _mm256_fmadd_ps(s, _mm256_broadcast_ss(&sc[r][t][j]), acc[r][t]);
            }
        }
    }
}

// Outputs y[t * ld_y + r] of R rows (w: the first one's blocks, ws bytes apart) and T tokens
// (x: the first one's activations) over nb blocks. Not inlined: one tile shape is one loop nest
// whose R x T accumulators stay in registers.
template <DType Q, int R, int T, class Ops>
GRIDLM_LQ_TARGET __attribute__((noinline)) void tile(const uint8_t* w, int64_t ws, const TileX& x, int64_t nb, float* y,
                                                     int64_t ld_y) {
    __m256 acc[R][T];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    int64_t b0 = 0;
    for (; b0 + 8 <= nb; b0 += 8) add_group<Q, R, T, Ops>(w, ws, x, nb, b0, 8, acc);
    if (b0 < nb) add_group<Q, R, T, Ops>(w, ws, x, nb, b0, nb - b0, acc);
    const __m256 lane_scale = nibbles_in_place<Q, Ops>()
                                  ? _mm256_setr_ps(1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f)
                                  : _mm256_set1_ps(1.f);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) y[t * ld_y + r] = hsum(_mm256_mul_ps(acc[r][t], lane_scale));
}

}  // namespace

}  // namespace gridlm::cpu::lq
