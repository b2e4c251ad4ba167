// Linear layer y = x W^T (+ bias), dispatched through the CPU kernel table (cpu_types.h), and the
// f32 / bf16 / f16 kernels behind it (block-quantised weights: matmul_quant.cpp). One kernel for
// every batch size: tiles of up to 4 rows x 4 tokens read each weight vector once per tile and
// keep one accumulator chain per output, so a token's result is bitwise the same whether it is
// decoded alone, with other sequences, or in a prefill (the engine's outputs must not depend on how
// the scheduler or the data-parallel split grouped the tokens; a blocked BLAS GEMM does not promise
// that, docs/engine.md "Float matmul").
#include <algorithm>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/cpu_types.h"
#include "engine/backend/cpu/parallel.h"
#include "engine/backend/cpu/simd.h"

namespace gridlm::cpu {

namespace {

// An IEEE half weight (uint16_t alone means bf16 here).
struct Half {
    uint16_t bits;
};

inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return bf16_to_f32(*p); }
inline float load1(const Half* p) { return f16_to_f32(p->bits); }

#if GRIDLM_CPU_AVX2
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) { return load_bf16x8(p); }
inline __m256 load8(const Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// y[t, r] = dot(w[r, :], x[t, :]) for R rows and T tokens; each weight vector is loaded once
// and used T times. w: [R, cols] (row stride ld_w); x: [T, cols]; y: [T, *] (row stride ld_y)
template <int R, int T, typename WT>
void gemv_tile_avx2(const WT* w, int64_t ld_w, const float* x, int64_t cols, float* y, int64_t ld_y) {
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) {
        __m256 xv[T];
        for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * cols + i);
        for (int r = 0; r < R; ++r) {
            const __m256 wv = load8(w + r * ld_w + i);
            for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int t = 0; t < T; ++t) {
            float s = hsum(acc[r][t]);
            for (int64_t j = i; j < cols; ++j) s += load1(w + r * ld_w + j) * x[t * cols + j];
            y[t * ld_y + r] = s;
        }
    }
}
#endif

template <int R, int T, typename WT>
void gemv_tile_scalar(const WT* w, int64_t ld_w, const float* x, int64_t cols, float* y, int64_t ld_y) {
    for (int r = 0; r < R; ++r) {
        for (int t = 0; t < T; ++t) {
            float s = 0.f;
            for (int64_t j = 0; j < cols; ++j) s += load1(w + r * ld_w + j) * x[t * cols + j];
            y[t * ld_y + r] = s;
        }
    }
}

template <int R, int T, typename WT>
void gemv_tile(const WT* w, int64_t ld_w, const float* x, int64_t cols, float* y, int64_t ld_y) {
#if GRIDLM_CPU_AVX2
    if (simd_enabled()) return gemv_tile_avx2<R, T, WT>(w, ld_w, x, cols, y, ld_y);
#endif
    gemv_tile_scalar<R, T, WT>(w, ld_w, x, cols, y, ld_y);
}

// Rows [r0, r1) for T tokens, R rows at a time (R = 4 for one token keeps 4 independent FMA
// chains; with more tokens R = 2 keeps R * T accumulators within the 16 vector registers).
// w: [rows, cols] with row stride ld_w elements
template <int T, typename WT>
void gemv_rows(const WT* w, int64_t ld_w, int64_t cols, const float* x, int64_t r0, int64_t r1, float* y,
               int64_t ld_y) {
    constexpr int R = T == 1 ? 4 : 2;
    int64_t r = r0;
    for (; r + R <= r1; r += R) gemv_tile<R, T, WT>(w + r * ld_w, ld_w, x, cols, y + r, ld_y);
    for (; r < r1; ++r) gemv_tile<1, T, WT>(w + r * ld_w, ld_w, x, cols, y + r, ld_y);
}

// Rows [r0, r1) of y = x W^T (+ bias) for any n tokens, four at a time: the same tile kernels for
// every batch, so a token's outputs do not depend on the other tokens of its step.
// x: [n, cols]; w: [rows, cols] with row stride ld_w elements; y: [n, rows]
template <typename WT>
void gemv_block(const float* x, const WT* w, int64_t ld_w, const float* bias, int64_t rows, int64_t cols, int64_t n,
                float* y, int64_t r0, int64_t r1) {
    for (int64_t t0 = 0; t0 < n; t0 += 4) {
        const float* xt = x + t0 * cols;
        float* yt = y + t0 * rows;
        switch (std::min<int64_t>(4, n - t0)) {
            case 1:
                gemv_rows<1>(w, ld_w, cols, xt, r0, r1, yt, rows);
                break;
            case 2:
                gemv_rows<2>(w, ld_w, cols, xt, r0, r1, yt, rows);
                break;
            case 3:
                gemv_rows<3>(w, ld_w, cols, xt, r0, r1, yt, rows);
                break;
            default:
                gemv_rows<4>(w, ld_w, cols, xt, r0, r1, yt, rows);
                break;
        }
    }
    if (bias)
        for (int64_t t = 0; t < n; ++t)
            for (int64_t r = r0; r < r1; ++r) y[t * rows + r] += bias[r];
}

// Several GEMVs on the same input in one parallel region: the 16-row blocks of all outputs form
// one index space (one dispatch of the thread team per call instead of one per weight).
void gemv_multi(const CpuContext& ctx, const float* x, int64_t n, const MatmulOut* outs, int64_t n_outs) {
    constexpr int64_t block = 16;
    std::vector<int64_t> first(n_outs + 1, 0);
    for (int64_t o = 0; o < n_outs; ++o) first[o + 1] = first[o] + (outs[o].w.rows + block - 1) / block;
    const int64_t total = first[n_outs];
    // Static contiguous chunks: each thread streams one long stretch of the weights.
    parallel_for(ctx, total, [&](int64_t b) {
        int64_t o = 0;
        while (b >= first[o + 1]) ++o;
        const MatmulOut& m = outs[o];
        const int64_t r0 = (b - first[o]) * block, r1 = std::min(m.w.rows, r0 + block);
        cpu_type_traits(m.w.dtype).gemv(x, m.w, m.bias, n, m.y, r0, r1);
    });
}

// Row stride of w in elements of WT.
template <typename WT>
int64_t ld_of(const Weight& w) {
    const int64_t stride = w.stride();
    GRIDLM_ASSERT(stride % (int64_t)sizeof(WT) == 0 && stride / (int64_t)sizeof(WT) >= w.cols);
    return stride / (int64_t)sizeof(WT);
}

}  // namespace

void gemv_f32(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1) {
    gemv_block(x, static_cast<const float*>(w.data), ld_of<float>(w), bias, w.rows, w.cols, n, y, r0, r1);
}

void gemv_bf16(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1) {
    gemv_block(x, static_cast<const uint16_t*>(w.data), ld_of<uint16_t>(w), bias, w.rows, w.cols, n, y, r0, r1);
}

void gemv_f16(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1) {
    gemv_block(x, static_cast<const Half*>(w.data), ld_of<Half>(w), bias, w.rows, w.cols, n, y, r0, r1);
}

// x: [n, w.cols]; bias: [w.rows] or nullptr; y: [n, w.rows]
void matmul(const CpuContext& ctx, const float* x, const Weight& w, const float* bias, int64_t n, float* y) {
    const MatmulOut out{w, bias, y};
    matmul_multi(ctx, x, n, &out, 1);
}

// Each outs[o].y = x outs[o].w^T (+ bias); all weights have x's width.
void matmul_multi(const CpuContext& ctx, const float* x, int64_t n, const MatmulOut* outs, int64_t n_outs) {
    if (n <= 0 || n_outs <= 0) return;
    for (int64_t o = 0; o < n_outs; ++o) {
        GRIDLM_ASSERT(outs[o].w.cols == outs[0].w.cols);
        if (!cpu_type_traits(outs[o].w.dtype).has_matmul())
            throw Error(str("matmul: ", dtype_name(outs[o].w.dtype), " weights are not supported by the CPU backend"));
    }
    // Block-quantised outputs go through the integer kernels, the float ones through the tiles.
    int64_t n_quant = 0;
    for (int64_t o = 0; o < n_outs; ++o) n_quant += dtype_is_quantized(outs[o].w.dtype) ? 1 : 0;
    if (n_quant == n_outs) return matmul_quant(ctx, x, n, outs, n_outs);
    if (n_quant > 0) {
        std::vector<MatmulOut> quant, plain;
        for (int64_t o = 0; o < n_outs; ++o) (dtype_is_quantized(outs[o].w.dtype) ? quant : plain).push_back(outs[o]);
        matmul_quant(ctx, x, n, quant.data(), (int64_t)quant.size());
        return matmul_multi(ctx, x, n, plain.data(), (int64_t)plain.size());
    }
    gemv_multi(ctx, x, n, outs, n_outs);
}

}  // namespace gridlm::cpu
