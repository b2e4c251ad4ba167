// AVX2 variants of the legacy-quant kernels (quant_legacy.h): the ActQ8x32 quantiser and the
// q4_0 / q4_1 / q5_0 / q5_1 / q8_0 matmuls. Compiled for the baseline target; only the functions
// carry target("avx2,fma,f16c"), so the file links into builds that run on older CPUs (the
// dispatcher calls them only when isa_supported(Isa::avx2)).
//
// Integer core: the 32 stored weight values of a block as unsigned bytes (0..15 or 0..31) times
// the activation bytes with vpmaddubsw (pairs to int16, at most 2 * 31 * 127: no saturation),
// then vpmaddwd by ones to 8 int32 partial sums; q8_0's signed bytes go through the sign trick
// (|w| times x with w's sign, at most 2 * 128 * 127). Each int32 vector becomes float and is
// scaled by d_w * d_x of its block with one FMA into 8 partial sums of the output. The scales of
// 8 blocks are converted at once (8 f16 -> f32) and the offset and min terms of those 8 blocks
// added with one FMA: -o * d_w * s_x (q4_0, q5_0) or m_w * s_x (q4_1, q5_1).
//
// A call walks tiles of R rows x T tokens (R * T <= 8 accumulators): each weight block is
// decoded once per tile and used for T tokens; each activation block is loaded once per tile and
// used for R rows. Prefill calls are cut into token chunks whose activations stay in L2.
#include "engine/backend/cpu/quant/quant_legacy.h"

#include <algorithm>

#include "engine/core/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define GRIDLM_LQ_TARGET __attribute__((target("avx2,fma,f16c")))
#include "engine/backend/cpu/quant/quant_legacy_x86.h"

namespace gridlm::cpu::lq {

namespace {

// ---- activation quantiser (bit-identical to the scalar one) ----------------------------------

// round-half-even(clamp(x / d, -127, 127)) as int32.
GRIDLM_LQ_INLINE __m256i quantize8(__m256 x, __m256 d) {
    const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(x, d), _mm256_set1_ps(-127.f)), _mm256_set1_ps(127.f));
    return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

GRIDLM_LQ_TARGET void quantize_blocks(const float* x, ActQ8x32* out, int64_t nb) {
    const __m256 sign = _mm256_set1_ps(-0.f);
    for (int64_t b = 0; b < nb; ++b, x += 32) {
        const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        const __m256 m01 = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        const __m256 m23 = _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3));
        const float d = hmax(_mm256_max_ps(m01, m23)) / 127.f;
        ActQ8x32& o = out[b];
        o.d = d;
        if (d == 0.f) {
            o.s = 0.f;
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs), _mm256_setzero_si256());
            continue;
        }
        const __m256 vd = _mm256_set1_ps(d);
        const __m256i i0 = quantize8(v0, vd), i1 = quantize8(v1, vd);
        const __m256i i2 = quantize8(v2, vd), i3 = quantize8(v3, vd);
        const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        // packs work per 128-bit lane: dwords come out as i0 i1 i2 i3 (low halves), then the high halves.
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        const __m256i q = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs), q);
        o.s = d * (float)sum;
    }
}

void quantize_act_avx2(const float* x, void* out, int64_t n) {
    if (n % quant_legacy_block != 0)
        throw Error(str("activation quantiser: ", n, " values are not whole blocks of ", quant_legacy_block));
    quantize_blocks(x, static_cast<ActQ8x32*>(out), n / quant_legacy_block);
}

// ---- matmul -----------------------------------------------------------------------------------

// The AVX2 pieces of the tiles (quant_legacy_x86.h).
struct OpsAvx2 {
    static constexpr bool nibbles_in_place = false;  // 16 q x would saturate vpmaddubsw
    // q x: vpmaddubsw (unsigned q, or |q| and x with q's sign for q8_0), then vpmaddwd by ones.
    template <DType Q>
    GRIDLM_LQ_INLINE static __m256i block(__m256i q, __m256i x) {
        __m256i p;
        if constexpr (legacy_format(Q).signed8) {
            p = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(x, q));
        } else {
            p = _mm256_maddubs_epi16(q, x);
        }
        return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
    }
    // Byte j takes byte j / 8 of qh, keeps bit j % 8 and turns it into 0x10.
    GRIDLM_LQ_INLINE static __m256i fifth_bits(__m256i q, const uint8_t* qh) {
        const __m256i h =
            _mm256_shuffle_epi8(_mm256_set1_epi32(ld32(qh)),
                                _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
        return _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
};

// Rows [r, r + R) for tokens [t0, t1) of the chunk whose scale planes start at token t_chunk, in
// tiles of at most t_max tokens.
template <DType Q, int R>
void run_rows(const MatmulArgs& a, const ActScales& sc, int64_t t_chunk, int64_t r, int64_t t0, int64_t t1,
              int64_t t_max) {
    for (int64_t t = t0; t < t1;) {
        const int64_t nt = std::min(t_max, t1 - t);
        const int64_t p = (t - t_chunk) * sc.nb_pad;
        const TileX x{a.xq + t * a.xq_stride, a.xq_stride, sc.d + p, sc.s + p, sc.nb_pad};
        const uint8_t* w = a.w + r * a.w_stride;
        float* y = a.y + t * a.ld_y + r;
        if (nt == 1) {
            tile<Q, R, 1, OpsAvx2>(w, a.w_stride, x, a.nb, y, a.ld_y);
        } else if (nt == 2) {
            tile<Q, R, 2, OpsAvx2>(w, a.w_stride, x, a.nb, y, a.ld_y);
        } else if constexpr (R <= 2) {
            if (nt == 3)
                tile<Q, R, 3, OpsAvx2>(w, a.w_stride, x, a.nb, y, a.ld_y);
            else
                tile<Q, R, 4, OpsAvx2>(w, a.w_stride, x, a.nb, y, a.ld_y);
        }
        t += nt;
    }
}

template <DType Q>
void matmul_avx2(const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y, int64_t r0,
                 int64_t r1) {
    const MatmulArgs a = matmul_args(Q, w, xq, xq_stride, n, y, ld_y, r0, r1);
    const int64_t tc = token_chunk(a.nb);
    for (int64_t t0 = 0; t0 < a.n; t0 += tc) {
        const int64_t t1 = std::min(a.n, t0 + tc);
        const ActScales sc = act_scale_planes(a.xq, a.xq_stride, t0, t1 - t0, a.nb);
        // One or two tokens: 4 rows share each activation load. More: 2 rows x 4 tokens.
        const bool narrow = t1 - t0 <= 2;
        int64_t r = a.r0;
        if (narrow) {
            for (; r + 4 <= a.r1; r += 4) run_rows<Q, 4>(a, sc, t0, r, t0, t1, 2);
        } else {
            for (; r + 2 <= a.r1; r += 2) run_rows<Q, 2>(a, sc, t0, r, t0, t1, 4);
        }
        for (; r < a.r1; ++r) run_rows<Q, 1>(a, sc, t0, r, t0, t1, 4);
    }
}

template <DType Q>
constexpr QuantKernels entry() {
    return {Q, quant_legacy_block, act_bytes, quantize_act_avx2, matmul_avx2<Q>};
}

constexpr QuantKernels table[] = {
    entry<DType::dtype_q4_0>(), entry<DType::dtype_q4_1>(), entry<DType::dtype_q5_0>(),
    entry<DType::dtype_q5_1>(), entry<DType::dtype_q8_0>(),
};

}  // namespace

const QuantKernels* kernels_avx2(DType type) {
    for (const QuantKernels& k : table)
        if (k.type == type) return &k;
    return nullptr;
}

}  // namespace gridlm::cpu::lq

#else

namespace gridlm::cpu::lq {
const QuantKernels* kernels_avx2(DType) { return nullptr; }
}  // namespace gridlm::cpu::lq

#endif
