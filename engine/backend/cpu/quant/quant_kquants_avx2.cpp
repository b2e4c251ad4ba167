// AVX2 variants of the K-quant kernels (quant_kquants.h): the ActQ8x256 quantiser and the q4_k /
// q5_k / q6_k matmuls. Compiled for the baseline target; only the functions carry
// target("avx2,fma,f16c"), so the file is safe to link into a build that runs on older CPUs
// (the dispatcher calls them only when isa_supported(Isa::avx2)).
//
// Integer core: weight values (unsigned, 0..31 or 0..63) times activation bytes with vpmaddubsw
// (pairs to int16; at most 2 * 63 * 127, no saturation), vpmaddwd with the sub-block scales (to
// int32), summed per super-block exactly. Each call walks tiles of R rows x T tokens: a weight
// super-block is unpacked once per tile and used for T tokens.
#include "engine/backend/cpu/quant/quant_kquants.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include <cstring>

#define GRIDLM_KQ_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace gridlm::cpu::kq {

namespace {

GRIDLM_KQ_AVX2 inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

GRIDLM_KQ_AVX2 inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

GRIDLM_KQ_AVX2 inline float load_f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

GRIDLM_KQ_AVX2 inline float load_f32(const uint8_t* p) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
}

GRIDLM_KQ_AVX2 inline __m256i loadu(const uint8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// A byte vector with bit `bit` of each byte of h moved to bit 4, every other bit cleared.
template <int bit>
GRIDLM_KQ_AVX2 inline __m256i bit_to_4(__m256i h) {
    const __m256i m = _mm256_set1_epi8(0x10);
    if constexpr (bit < 4) return _mm256_and_si256(_mm256_slli_epi16(h, 4 - bit), m);
    if constexpr (bit == 4) return _mm256_and_si256(h, m);
    return _mm256_and_si256(_mm256_srli_epi16(h, bit - 4), m);
}

// The two vpshufb control bytes that select int16 word j of a 128-bit lane.
constexpr short word_ctl(int j) { return (short)(((2 * j + 1) << 8) | (2 * j)); }

// vpshufb control that copies int16 word j of each 128-bit lane to all eight words of the lane.
GRIDLM_KQ_AVX2 inline __m256i word_bcast(int j) { return _mm256_set1_epi16(word_ctl(j)); }

// vpshufb control that copies word 2k of each 128-bit lane to the low lane's eight words and word
// 2k + 1 to the high lane's (the two scales of a 32-value q6_k group).
GRIDLM_KQ_AVX2 inline __m256i group_bcast(int k) {
    return _mm256_setr_m128i(_mm_set1_epi16(word_ctl(2 * k)), _mm_set1_epi16(word_ctl(2 * k + 1)));
}

// ---- activation quantiser ------------------------------------------------------------------

// 8 values / d rounded half-even, clamped to [-127, 127], as int32.
GRIDLM_KQ_AVX2 inline __m256i quant8(const float* x, __m256 d) {
    __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x), d), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(-127.f)), _mm256_set1_ps(127.f));
    return _mm256_cvtps_epi32(q);
}

GRIDLM_KQ_AVX2 void quantize_block(const float* x, ActQ8x256* o) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m0 = _mm256_setzero_ps(), m1 = m0;
    for (int i = 0; i < 256; i += 16) {
        m0 = _mm256_max_ps(m0, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
        m1 = _mm256_max_ps(m1, _mm256_and_ps(_mm256_loadu_ps(x + i + 8), abs_mask));
    }
    const float amax = hmax(_mm256_max_ps(m0, m1));
    const float d = amax / 127.f;
    o->d = d;
    if (amax == 0.f) {
        std::memset(o->bsums, 0, sizeof(o->bsums));
        std::memset(o->qs, 0, sizeof(o->qs));
        return;
    }
    const __m256 vd = _mm256_set1_ps(d);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int g = 0; g < 8; ++g) {
        const float* v = x + 32 * g;
        const __m256i a = quant8(v, vd), b = quant8(v + 8, vd), c = quant8(v + 16, vd), e = quant8(v + 24, vd);
        // packs works within 128-bit lanes: the result holds a0-3 b0-3 c0-3 e0-3 | a4-7 b4-7 ...
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, e));
        const __m256i q = _mm256_permutevar8x32_epi32(p, order);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o->qs + 32 * g), q);
        // Sums of 16: pairs (vpmaddubsw with ones), quads (vpmaddwd), then two horizontal adds
        // leave the sum of each 128-bit lane in its first element.
        __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
        s = _mm256_hadd_epi32(s, s);
        s = _mm256_hadd_epi32(s, s);
        o->bsums[2 * g] = (int16_t)_mm256_extract_epi32(s, 0);
        o->bsums[2 * g + 1] = (int16_t)_mm256_extract_epi32(s, 4);
    }
}

// ---- q4_k / q5_k ---------------------------------------------------------------------------

// R rows x T tokens of q4_k (five_bit false) or q5_k (true) over nb super-blocks.
// w: the tile's first row (rows ws bytes apart); x: its first token's blocks (tokens xs bytes
// apart); y: the tile's first output (tokens ldy floats apart).
template <bool five_bit, int R, int T>
GRIDLM_KQ_AVX2 void k4_tile(const uint8_t* w, int64_t ws, int64_t nb, const uint8_t* x, int64_t xs, float* y,
                            int64_t ldy) {
    constexpr int64_t bb = five_bit ? q5k_bytes : q4k_bytes;
    constexpr int64_t qs_off = five_bit ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* p[R];
        __m256i sc[R], mn[R];
        for (int r = 0; r < R; ++r) {
            p[r] = w + r * ws + b * bb;
            prefetch_ahead(p[r], bb);
            uint64_t s, m;
            unpack_scales_k4(p[r] + 4, s, m);
            sc[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s)));
            const __m128i m8 = _mm_cvtsi64_si128((long long)m);
            mn[r] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 .. m7 m7
        }
        __m256i isum[R][T];
        for (int r = 0; r < R; ++r)
            for (int t = 0; t < T; ++t) isum[r][t] = _mm256_setzero_si256();
        const uint8_t* xb = x + b * act_bytes;
        for (int c = 0; c < 4; ++c) {
            __m256i lo[R], hi[R], sl[R], sh[R];
            for (int r = 0; r < R; ++r) {
                const __m256i q = loadu(p[r] + qs_off + 32 * c);
                lo[r] = _mm256_and_si256(q, m4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if constexpr (five_bit) {
                    const __m256i h = loadu(p[r] + 16);
                    switch (c) {
                        case 0:
                            lo[r] = _mm256_or_si256(lo[r], bit_to_4<0>(h));
                            hi[r] = _mm256_or_si256(hi[r], bit_to_4<1>(h));
                            break;
                        case 1:
                            lo[r] = _mm256_or_si256(lo[r], bit_to_4<2>(h));
                            hi[r] = _mm256_or_si256(hi[r], bit_to_4<3>(h));
                            break;
                        case 2:
                            lo[r] = _mm256_or_si256(lo[r], bit_to_4<4>(h));
                            hi[r] = _mm256_or_si256(hi[r], bit_to_4<5>(h));
                            break;
                        default:
                            lo[r] = _mm256_or_si256(lo[r], bit_to_4<6>(h));
                            hi[r] = _mm256_or_si256(hi[r], bit_to_4<7>(h));
                            break;
                    }
                }
                sl[r] = _mm256_shuffle_epi8(sc[r], word_bcast(2 * c));
                sh[r] = _mm256_shuffle_epi8(sc[r], word_bcast(2 * c + 1));
            }
            for (int t = 0; t < T; ++t) {
                const __m256i xl = loadu(xb + t * xs + act_off_qs + 64 * c);
                const __m256i xh = loadu(xb + t * xs + act_off_qs + 64 * c + 32);
                for (int r = 0; r < R; ++r) {
                    const __m256i a = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], xl), sl[r]);
                    const __m256i e = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], xh), sh[r]);
                    isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_add_epi32(a, e));
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
            const __m256i bs = loadu(xb + t * xs + act_off_bsums);
            for (int r = 0; r < R; ++r) {
                const __m256i ms = _mm256_madd_epi16(bs, mn[r]);
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * dx), _mm256_cvtepi32_ps(isum[r][t]), acc[r][t]);
                acc[r][t] = _mm256_fnmadd_ps(_mm256_set1_ps(dm[r] * dx), _mm256_cvtepi32_ps(ms), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

// ---- q6_k ----------------------------------------------------------------------------------

// R rows x T tokens of q6_k; arguments as k4_tile. Values are taken unsigned (q in 0..63) and
// the offset enters as -32 * sum_j sc_j * bsums[j].
template <int R, int T>
GRIDLM_KQ_AVX2 void q6k_tile(const uint8_t* w, int64_t ws, int64_t nb, const uint8_t* x, int64_t xs, float* y,
                             int64_t ldy) {
    constexpr int64_t bb = q6k_bytes;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* p[R];
        __m256i s16[R];
        for (int r = 0; r < R; ++r) {
            p[r] = w + r * ws + b * bb;
            prefetch_ahead(p[r], bb);
            s16[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[r] + 192)));
        }
        const uint8_t* xb = x + b * act_bytes;
        __m256i isum[R][T];
        // The offset term first: isum = -32 * sum_j sc_j * bsums[j].
        for (int t = 0; t < T; ++t) {
            const __m256i bs = loadu(xb + t * xs + act_off_bsums);
            for (int r = 0; r < R; ++r)
                isum[r][t] =
                    _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bs, s16[r]), 5));
        }
        for (int h = 0; h < 2; ++h) {
            __m256i sh[R];
            for (int r = 0; r < R; ++r)
                sh[r] = h == 0 ? _mm256_permute2x128_si256(s16[r], s16[r], 0x00)
                               : _mm256_permute2x128_si256(s16[r], s16[r], 0x11);
            for (int k = 0; k < 4; ++k) {
                // Group k of the half: 32 values, scale words 2k (first 16) and 2k + 1 (last 16).
                __m256i q[R], s[R];
                for (int r = 0; r < R; ++r) {
                    const uint8_t* ql = p[r] + 64 * h + 32 * (k & 1);
                    const __m256i l = loadu(ql);
                    const __m256i qh = loadu(p[r] + 128 + 32 * h);
                    const __m256i nib = k < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
                    __m256i hb;
                    switch (k) {
                        case 0:
                            hb = _mm256_slli_epi16(qh, 4);
                            break;
                        case 1:
                            hb = _mm256_slli_epi16(qh, 2);
                            break;
                        case 2:
                            hb = qh;
                            break;
                        default:
                            hb = _mm256_srli_epi16(qh, 2);
                            break;
                    }
                    q[r] = _mm256_or_si256(nib, _mm256_and_si256(hb, m30));
                    s[r] = _mm256_shuffle_epi8(sh[r], group_bcast(k));
                }
                for (int t = 0; t < T; ++t) {
                    const __m256i xv = loadu(xb + t * xs + act_off_qs + 128 * h + 32 * k);
                    for (int r = 0; r < R; ++r)
                        isum[r][t] =
                            _mm256_add_epi32(isum[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], xv), s[r]));
                }
            }
        }
        for (int t = 0; t < T; ++t) {
            const float dx = load_f32(xb + t * xs);
            for (int r = 0; r < R; ++r) {
                const float dw = load_f16(p[r] + 208);
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(isum[r][t]), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

// ---- drivers --------------------------------------------------------------------------------

enum class Kind { q4k, q5k, q6k };

// The tile of R rows from r and T tokens from t.
template <Kind K, int R, int T>
GRIDLM_KQ_AVX2 inline void tile(const MatmulArgs& a, int64_t r, int64_t t) {
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
GRIDLM_KQ_AVX2 void token_tiles(const MatmulArgs& a, int64_t r, int64_t t0, int64_t t1) {
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
GRIDLM_KQ_AVX2 void run(const MatmulArgs& a) {
    const int64_t tb = a.n <= 4 ? a.n : token_block(a.nb);
    for (int64_t t0 = 0; t0 < a.n; t0 += tb) {
        const int64_t t1 = a.n - t0 < tb ? a.n : t0 + tb;
        for (int64_t r = a.r0; r < a.r1; ++r) token_tiles<K>(a, r, t0, t1);
    }
}

}  // namespace

void quantize_act_avx2(const float* x, void* out, int64_t n) {
    auto* blocks = static_cast<ActQ8x256*>(out);
    for (int64_t b = 0; b < n / 256; ++b) quantize_block(x + 256 * b, blocks + b);
}

void matmul_q4k_avx2(const MatmulArgs& a) { run<Kind::q4k>(a); }
void matmul_q5k_avx2(const MatmulArgs& a) { run<Kind::q5k>(a); }
void matmul_q6k_avx2(const MatmulArgs& a) { run<Kind::q6k>(a); }

}  // namespace gridlm::cpu::kq

#endif
