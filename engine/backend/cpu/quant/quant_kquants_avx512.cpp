// AVX-512 VNNI variants of the K-quant kernels (quant_kquants.h): the ActQ8x256 quantiser and
// the q4_k / q5_k / q6_k matmuls. Compiled for the baseline target; only the functions carry
// the AVX-512 target attribute, so the file is safe to link into a build that runs on AVX2-only
// CPUs (the dispatcher calls them only when isa_supported(Isa::avx512vnni)). The attribute also
// names fma and f16c, which every AVX-512 CPU has.
//
// Integer core, per 64 weight values (two sub-blocks of 32, or four q6_k sub-blocks of 16):
//   dp  = vpdpbusd(0, w, x)        16 int32 lanes, each the dot product of 4 values; at most
//                                  4 * 63 * 127 = 32004 in magnitude, so each lane is also a
//                                  valid int16 in its low half
//   acc = vpdpwssd(acc, dp, s)     s holds (scale, 0) int16 pairs: acc += scale * dp, exactly
// The 64 values of q4_k / q5_k chunk c are its 32 low nibbles then its 32 high nibbles, which is
// the activation order, so both loads are plain.
#include "engine/backend/cpu/quant/quant_kquants.h"

#if defined(__x86_64__) && defined(__GNUC__)

// GCC 12's AVX-512 intrinsics fill their unused pass-through operand from a self-initialised
// variable (_mm512_undefined_*), which its uninitialised-use warnings flag at every inlined call.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#define GRIDLM_KQ_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

namespace gridlm::cpu::kq {

namespace {

GRIDLM_KQ_512 inline float load_f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

GRIDLM_KQ_512 inline float load_f32(const uint8_t* p) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
}

GRIDLM_KQ_512 inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
GRIDLM_KQ_512 inline __m256i load32(const uint8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// The 32 bytes at p in the lower half of a vector and, in the upper half, the same bytes shifted
// right by `shift` bits within each 16-bit word (a second bit field of the same bytes brought into
// place). The shift runs on the 256-bit half, off the port that the 512-bit multiplies use.
template <int shift>
GRIDLM_KQ_512 inline __m512i with_shifted(const uint8_t* p) {
    const __m256i v = load32(p);
    return _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, shift), 1);
}

// Bit `bit` of each byte moved to bit 4 (other bits are garbage; callers mask).
template <int bit>
GRIDLM_KQ_512 inline __m512i bit_at_4(__m512i h) {
    if constexpr (bit < 4) return _mm512_slli_epi16(h, 4 - bit);
    if constexpr (bit == 4) return h;
    return _mm512_srli_epi16(h, bit - 4);
}

// a | (b & c), bitwise.
GRIDLM_KQ_512 inline __m512i or_and(__m512i a, __m512i b, __m512i c) {
    return _mm512_ternarylogic_epi32(a, b, c, 0xF8);
}

// Lane i of the result: index lo for i < 8, hi for i >= 8 (a vpermd control).
GRIDLM_KQ_512 inline __m512i halves_idx(int lo, int hi) {
    return _mm512_mask_blend_epi32((__mmask16)0xFF00, _mm512_set1_epi32(lo), _mm512_set1_epi32(hi));
}

// ---- activation quantiser ------------------------------------------------------------------

GRIDLM_KQ_512 void quantize_block(const float* x, ActQ8x256* o) {
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < 256; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    const float amax = _mm512_reduce_max_ps(m);
    const float d = amax / 127.f;
    o->d = d;
    if (amax == 0.f) {
        std::memset(o->bsums, 0, sizeof(o->bsums));
        std::memset(o->qs, 0, sizeof(o->qs));
        return;
    }
    const __m512 vd = _mm512_set1_ps(d);
    for (int g = 0; g < 16; ++g) {
        __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(x + 16 * g), vd),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm512_min_ps(_mm512_max_ps(q, _mm512_set1_ps(-127.f)), _mm512_set1_ps(127.f));
        const __m512i qi = _mm512_cvtps_epi32(q);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o->qs + 16 * g), _mm512_cvtsepi32_epi8(qi));
        o->bsums[g] = (int16_t)_mm512_reduce_add_epi32(qi);
    }
}

// ---- q4_k / q5_k ---------------------------------------------------------------------------

// R rows x T tokens of q4_k (five_bit false) or q5_k (true) over nb super-blocks.
// w: the tile's first row (rows ws bytes apart); x: its first token's blocks (tokens xs bytes
// apart); y: the tile's first output (tokens ldy floats apart).
template <bool five_bit, int R, int T>
GRIDLM_KQ_512 void k4_tile(const uint8_t* w, int64_t ws, int64_t nb, const uint8_t* x, int64_t xs, float* y,
                           int64_t ldy) {
    constexpr int64_t bb = five_bit ? q5k_bytes : q4k_bytes;
    constexpr int64_t qs_off = five_bit ? 48 : 16;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m10 = _mm512_set1_epi8(0x10);
    __m512 acc[R][T];   // the d * isum terms
    __m256 accm[R][T];  // the dmin * msum terms, subtracted at the end
    for (int r = 0; r < R; ++r) {
        for (int t = 0; t < T; ++t) {
            acc[r][t] = _mm512_setzero_ps();
            accm[r][t] = _mm256_setzero_ps();
        }
    }
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* p[R];
        __m512i sc[R], qh[R];
        __m256i mn[R];
        for (int r = 0; r < R; ++r) {
            p[r] = w + r * ws + b * bb;
            prefetch_ahead(p[r], bb);
            uint64_t s, m;
            unpack_scales_k4(p[r] + 4, s, m);
            sc[r] = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)s));  // sc_j zero-extended
            const __m128i m8 = _mm_cvtsi64_si128((long long)m);
            mn[r] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 .. m7 m7
            if constexpr (five_bit) qh[r] = with_shifted<1>(p[r] + 16);
        }
        __m512i isum[R][T];
        for (int r = 0; r < R; ++r)
            for (int t = 0; t < T; ++t) isum[r][t] = _mm512_setzero_si512();
        const uint8_t* xb = x + b * act_bytes;
        for (int c = 0; c < 4; ++c) {
            const __m512i idx = halves_idx(2 * c, 2 * c + 1);
            __m512i q[R], s[R];
            for (int r = 0; r < R; ++r) {
                // Low nibbles (sub-block 2c) in the lower half, high nibbles (2c + 1) in the upper.
                q[r] = _mm512_and_si512(with_shifted<4>(p[r] + qs_off + 32 * c), m4);
                if constexpr (five_bit) {
                    // qh's upper half is pre-shifted by one, so both halves take bit 2c.
                    switch (c) {
                        case 0:
                            q[r] = or_and(q[r], bit_at_4<0>(qh[r]), m10);
                            break;
                        case 1:
                            q[r] = or_and(q[r], bit_at_4<2>(qh[r]), m10);
                            break;
                        case 2:
                            q[r] = or_and(q[r], bit_at_4<4>(qh[r]), m10);
                            break;
                        default:
                            q[r] = or_and(q[r], bit_at_4<6>(qh[r]), m10);
                            break;
                    }
                }
                s[r] = _mm512_permutexvar_epi32(idx, sc[r]);
            }
            for (int t = 0; t < T; ++t) {
                const __m512i xv = load64(xb + t * xs + act_off_qs + 64 * c);
                for (int r = 0; r < R; ++r) {
                    const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[r], xv);
                    isum[r][t] = _mm512_dpwssd_epi32(isum[r][t], dp, s[r]);
                }
            }
        }
        float dw[R], dm[R];
        for (int r = 0; r < R; ++r) {
            dw[r] = load_f16(p[r]);
            dm[r] = load_f16(p[r] + 2);
        }
        for (int t = 0; t < T; ++t) {
            const float dx = load_f32(xb + t * xs);
            const __m256i bs = load32(xb + t * xs + act_off_bsums);
            for (int r = 0; r < R; ++r) {
                const __m256i ms = _mm256_madd_epi16(bs, mn[r]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_set1_ps(dw[r] * dx), _mm512_cvtepi32_ps(isum[r][t]), acc[r][t]);
                accm[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dm[r] * dx), _mm256_cvtepi32_ps(ms), accm[r][t]);
            }
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int t = 0; t < T; ++t) {
            const __m256 m = accm[r][t];
            const __m128 m4s = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]) - _mm_cvtss_f32(_mm_hadd_ps(_mm_hadd_ps(m4s, m4s), m4s));
        }
    }
}

// ---- q6_k ----------------------------------------------------------------------------------

// R rows x T tokens of q6_k; arguments as k4_tile. Values are taken unsigned (q in 0..63) and
// the offset enters as -32 * sum_j sc_j * bsums[j]. In half h, the 64 values of pair pp are
// groups 2pp and 2pp + 1 (32 values each), which is the activation order.
template <int R, int T>
GRIDLM_KQ_512 void q6k_tile(const uint8_t* w, int64_t ws, int64_t nb, const uint8_t* x, int64_t xs, float* y,
                            int64_t ldy) {
    constexpr int64_t bb = q6k_bytes;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    // Int32 lane i of pair pp in half h uses scale 8h + 4pp + i / 4.
    const __m512i quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* p[R];
        __m512i sc[R], nsc[R];
        for (int r = 0; r < R; ++r) {
            p[r] = w + r * ws + b * bb;
            prefetch_ahead(p[r], bb);
            const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[r] + 192)));
            sc[r] = _mm512_cvtepu16_epi32(s16);  // (uint16) sc_j: the (scale, 0) pairs
            nsc[r] = _mm512_zextsi256_si512(_mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s16, 5)));
        }
        const uint8_t* xb = x + b * act_bytes;
        __m512i isum[R][T];
        for (int t = 0; t < T; ++t) {
            const __m512i bs = _mm512_zextsi256_si512(load32(xb + t * xs + act_off_bsums));
            for (int r = 0; r < R; ++r) isum[r][t] = _mm512_dpwssd_epi32(_mm512_setzero_si512(), bs, nsc[r]);
        }
        for (int h = 0; h < 2; ++h) {
            // qh's upper half shifted by 2: bits 0-1 (pair 0) or 4-5 (pair 1) of each half hold the
            // two high bits of that half's group.
            __m512i qh[R];
            for (int r = 0; r < R; ++r) qh[r] = with_shifted<2>(p[r] + 128 + 32 * h);
            for (int pp = 0; pp < 2; ++pp) {
                const __m512i idx = _mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h + 4 * pp));
                __m512i q[R], s[R];
                for (int r = 0; r < R; ++r) {
                    const __m512i ql = load64(p[r] + 64 * h);
                    if (pp == 0) {
                        q[r] = or_and(_mm512_and_si512(ql, m4), _mm512_slli_epi16(qh[r], 4), m30);
                    } else {
                        q[r] = or_and(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), qh[r], m30);
                    }
                    s[r] = _mm512_permutexvar_epi32(idx, sc[r]);
                }
                for (int t = 0; t < T; ++t) {
                    const __m512i xv = load64(xb + t * xs + act_off_qs + 128 * h + 64 * pp);
                    for (int r = 0; r < R; ++r) {
                        const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[r], xv);
                        isum[r][t] = _mm512_dpwssd_epi32(isum[r][t], dp, s[r]);
                    }
                }
            }
        }
        for (int t = 0; t < T; ++t) {
            const float dx = load_f32(xb + t * xs);
            for (int r = 0; r < R; ++r) {
                const float dw = load_f16(p[r] + 208);
                acc[r][t] = _mm512_fmadd_ps(_mm512_set1_ps(dw * dx), _mm512_cvtepi32_ps(isum[r][t]), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// ---- drivers --------------------------------------------------------------------------------

enum class Kind { q4k, q5k, q6k };

// The tile of R rows from r and T tokens from t.
template <Kind K, int R, int T>
GRIDLM_KQ_512 inline void tile(const MatmulArgs& a, int64_t r, int64_t t) {
    const uint8_t* w = a.w + r * a.w_stride;
    const uint8_t* x = a.xq + t * a.xq_stride;
    float* y = a.y + t * a.ld_y + r;
    if constexpr (K == Kind::q6k) {
        q6k_tile<R, T>(w, a.w_stride, a.nb, x, a.xq_stride, y, a.ld_y);
    } else {
        k4_tile<K == Kind::q5k, R, T>(w, a.w_stride, a.nb, x, a.xq_stride, y, a.ld_y);
    }
}

// Row r for tokens [t0, t1), four tokens at a time.
template <Kind K>
GRIDLM_KQ_512 void token_tiles(const MatmulArgs& a, int64_t r, int64_t t0, int64_t t1) {
    int64_t t = t0;
    for (; t + 4 <= t1; t += 4) tile<K, 1, 4>(a, r, t);
    switch (t1 - t) {
        case 1:
            tile<K, 1, 1>(a, r, t);
            break;
        case 2:
            tile<K, 1, 2>(a, r, t);
            break;
        case 3:
            tile<K, 1, 3>(a, r, t);
            break;
        default:
            break;
    }
}

// Tiles of one row x up to four tokens. A row is unpacked once per tile and stays in L1 across
// the tiles of a token block (tokens whose activations fit in L2). One row per tile keeps a
// task's rows one ascending stream for the prefetcher (prefetch_distance); measured on a Sapphire
// Rapids Xeon, it beat 2- and 4-row tiles for batch-1 decode, and 1 x 4 tiles beat 2 x 4 for
// prefill (the 2 x 4 tile's accumulators spill).
template <Kind K>
GRIDLM_KQ_512 void run(const MatmulArgs& a) {
    const int64_t tb = a.n <= 4 ? a.n : token_block(a.nb);
    for (int64_t t0 = 0; t0 < a.n; t0 += tb) {
        const int64_t t1 = a.n - t0 < tb ? a.n : t0 + tb;
        for (int64_t r = a.r0; r < a.r1; ++r) token_tiles<K>(a, r, t0, t1);
    }
}

}  // namespace

void quantize_act_avx512(const float* x, void* out, int64_t n) {
    auto* blocks = static_cast<ActQ8x256*>(out);
    for (int64_t b = 0; b < n / 256; ++b) quantize_block(x + 256 * b, blocks + b);
}

void matmul_q4k_avx512(const MatmulArgs& a) { run<Kind::q4k>(a); }
void matmul_q5k_avx512(const MatmulArgs& a) { run<Kind::q5k>(a); }
void matmul_q6k_avx512(const MatmulArgs& a) { run<Kind::q6k>(a); }

}  // namespace gridlm::cpu::kq

#endif
