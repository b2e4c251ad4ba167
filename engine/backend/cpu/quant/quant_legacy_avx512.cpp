// AVX-512 VNNI variants of the legacy-quant kernels (quant_legacy.h): the ActQ8x32 quantiser and
// the q4_0 / q4_1 / q5_0 / q5_1 / q8_0 matmuls. Compiled for the baseline target; only the
// functions carry the AVX-512 target attribute, so the file links into builds that run on
// AVX2-only CPUs (the dispatcher calls them only when isa_supported(Isa::avx512vnni)).
//
// Same scheme as the AVX2 variant (quant_legacy_avx2.cpp) on 256-bit vectors, with vpdpbusd
// (unsigned weight bytes times signed activation bytes, four products summed into each int32
// lane, no int16 step and no saturation) in place of vpmaddubsw + vpmaddwd, and AVX-512's 32
// vector registers holding tiles of 4 rows x up to 4 tokens (16 accumulators). Without the int16
// step, q4_0 / q4_1 keep their high nibbles in place (16 q; the tile rescales those lanes at the
// end), and q5's fifth bits go through a mask register (one masked add). The quantiser works on
// 512-bit vectors (16 values) and narrows with saturation in one instruction.
#include "engine/backend/cpu/quant/quant_legacy.h"

#include <algorithm>

#include "engine/core/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

// GCC 12's AVX-512 intrinsics start from a self-initialised "undefined" vector, which its
// uninitialised-use analysis reports at every inlined call.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define GRIDLM_LQ_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#include "engine/backend/cpu/quant/quant_legacy_x86.h"

namespace gridlm::cpu::lq {

namespace {

// ---- activation quantiser (bit-identical to the scalar one) ----------------------------------

// round-half-even(clamp(x / d, -127, 127)) as int32.
GRIDLM_LQ_INLINE __m512i quantize16(__m512 x, __m512 d) {
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(x, d), _mm512_set1_ps(-127.f)), _mm512_set1_ps(127.f));
    return _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

GRIDLM_LQ_TARGET void quantize_blocks(const float* x, ActQ8x32* out, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b, x += 32) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const float d = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))) / 127.f;
        ActQ8x32& o = out[b];
        o.d = d;
        if (d == 0.f) {
            o.s = 0.f;
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs), _mm256_setzero_si256());
            continue;
        }
        const __m512 vd = _mm512_set1_ps(d);
        const __m512i i0 = quantize16(v0, vd), i1 = quantize16(v1, vd);
        const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o.qs), _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o.qs + 16), _mm512_cvtsepi32_epi8(i1));
        o.s = d * (float)sum;
    }
}

void quantize_act_avx512(const float* x, void* out, int64_t n) {
    if (n % quant_legacy_block != 0)
        throw Error(str("activation quantiser: ", n, " values are not whole blocks of ", quant_legacy_block));
    quantize_blocks(x, static_cast<ActQ8x32*>(out), n / quant_legacy_block);
}

// ---- matmul -----------------------------------------------------------------------------------

// The AVX-512 pieces of the tiles (quant_legacy_x86.h).
struct OpsVnni {
    static constexpr bool nibbles_in_place = true;  // q4: one and instead of a shift and an and
    // q x: one vpdpbusd (unsigned q, or |q| and x with q's sign for q8_0).
    template <DType Q>
    GRIDLM_LQ_INLINE static __m256i block(__m256i q, __m256i x) {
        if constexpr (legacy_format(Q).signed8) {
            return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(x, q));
        } else {
            return _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, x);
        }
    }
    // qh is a byte mask: add 0x10 to the bytes it selects.
    GRIDLM_LQ_INLINE static __m256i fifth_bits(__m256i q, const uint8_t* qh) {
        return _mm256_mask_add_epi8(q, _cvtu32_mask32((unsigned)ld32(qh)), q, _mm256_set1_epi8(0x10));
    }
};

// Rows [r, r + R) for tokens [t0, t1) of the chunk whose scale planes start at token t_chunk, in
// tiles of at most 4 tokens.
template <DType Q, int R>
void run_rows(const MatmulArgs& a, const ActScales& sc, int64_t t_chunk, int64_t r, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1;) {
        const int64_t nt = std::min<int64_t>(4, t1 - t);
        const int64_t p = (t - t_chunk) * sc.nb_pad;
        const TileX x{a.xq + t * a.xq_stride, a.xq_stride, sc.d + p, sc.s + p, sc.nb_pad};
        const uint8_t* w = a.w + r * a.w_stride;
        float* y = a.y + t * a.ld_y + r;
        if (nt == 1)
            tile<Q, R, 1, OpsVnni>(w, a.w_stride, x, a.nb, y, a.ld_y);
        else if (nt == 2)
            tile<Q, R, 2, OpsVnni>(w, a.w_stride, x, a.nb, y, a.ld_y);
        else if (nt == 3)
            tile<Q, R, 3, OpsVnni>(w, a.w_stride, x, a.nb, y, a.ld_y);
        else
            tile<Q, R, 4, OpsVnni>(w, a.w_stride, x, a.nb, y, a.ld_y);
        t += nt;
    }
}

template <DType Q>
void matmul_avx512(const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y, int64_t r0,
                   int64_t r1) {
    const MatmulArgs a = matmul_args(Q, w, xq, xq_stride, n, y, ld_y, r0, r1);
    const int64_t tc = token_chunk(a.nb);
    for (int64_t t0 = 0; t0 < a.n; t0 += tc) {
        const int64_t t1 = std::min(a.n, t0 + tc);
        const ActScales sc = act_scale_planes(a.xq, a.xq_stride, t0, t1 - t0, a.nb);
        int64_t r = a.r0;
        for (; r + 4 <= a.r1; r += 4) run_rows<Q, 4>(a, sc, t0, r, t0, t1);
        for (; r < a.r1; ++r) run_rows<Q, 1>(a, sc, t0, r, t0, t1);
    }
}

template <DType Q>
constexpr QuantKernels entry() {
    return {Q, quant_legacy_block, act_bytes, quantize_act_avx512, matmul_avx512<Q>};
}

constexpr QuantKernels table[] = {
    entry<DType::dtype_q4_0>(), entry<DType::dtype_q4_1>(), entry<DType::dtype_q5_0>(),
    entry<DType::dtype_q5_1>(), entry<DType::dtype_q8_0>(),
};

}  // namespace

const QuantKernels* kernels_avx512(DType type) {
    for (const QuantKernels& k : table)
        if (k.type == type) return &k;
    return nullptr;
}

}  // namespace gridlm::cpu::lq

#else

namespace gridlm::cpu::lq {
const QuantKernels* kernels_avx512(DType) { return nullptr; }
}  // namespace gridlm::cpu::lq

#endif
