// Small vector helpers shared by the CPU ops: AVX2+FMA when compiled for it, scalar otherwise.
// Internal to engine/backend/cpu.
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define GRIDLM_CPU_AVX2 1
#else
#define GRIDLM_CPU_AVX2 0
#endif

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/core/dtype.h"

namespace gridlm::cpu {

inline float dot_f32_scalar(const float* a, const float* b, int64_t n) {
    float s = 0.f;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

#if GRIDLM_CPU_AVX2
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 8 bf16 -> 8 f32: a bf16 is the top half of an f32.
inline __m256 load_bf16x8(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float dot_f32_avx2(const float* a, const float* b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

// y += a * x
inline void axpy_avx2(float a, const float* x, float* y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}
#endif

inline float dot_f32(const float* a, const float* b, int64_t n) {
#if GRIDLM_CPU_AVX2
    if (simd_enabled()) return dot_f32_avx2(a, b, n);
#endif
    return dot_f32_scalar(a, b, n);
}

inline void axpy(float a, const float* x, float* y, int64_t n) {
#if GRIDLM_CPU_AVX2
    if (simd_enabled()) return axpy_avx2(a, x, y, n);
#endif
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// dst[i] = widen(src[i]) for a row of bf16.
inline void bf16_to_f32_row(const uint16_t* src, float* dst, int64_t n) {
    int64_t i = 0;
#if GRIDLM_CPU_AVX2
    if (simd_enabled())
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16x8(src + i));
#endif
    for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

}  // namespace gridlm::cpu
