// Appends new keys and values to each sequence's cache blocks, rounding f32 to the cache's element
// type (bf16 or f16, round to nearest even) or copying f32 rows as they are.
#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/parallel.h"
#include "engine/backend/cpu/simd.h"

namespace gridlm::cpu {

namespace {

#if GRIDLM_CPU_AVX2
// 8 u32 lanes holding values < 2^16 -> 8 packed u16 (in lane order).
inline __m128i pack_u32x8(__m256i x) {
    const __m256i p = _mm256_packus_epi32(x, x);  // per 128-bit half: [a0..a3, a0..a3]
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}

// 8 f32 -> 8 bf16, round to nearest even; a NaN stays a (quiet) NaN, as f32_to_bf16 does.
inline __m128i f32x8_to_bf16(__m256 v) {
    const __m256i x = _mm256_castps_si256(v);
    const __m256i hi = _mm256_srli_epi32(x, 16);
    const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i nan = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    return pack_u32x8(r);
}
#endif

void f32_to_bf16_row(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
#if GRIDLM_CPU_AVX2
    if (simd_enabled())
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), f32x8_to_bf16(_mm256_loadu_ps(src + i)));
#endif
    for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
#if GRIDLM_CPU_AVX2 && defined(__F16C__)
    if (simd_enabled())
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                             _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

// One row of n values into the cache's element type.
void store_row(const float* src, void* dst, int64_t n, DType dtype) {
    switch (dtype) {
        case DType::dtype_f32:
            std::memcpy(dst, src, (size_t)n * sizeof(float));
            return;
        case DType::dtype_bf16:
            return f32_to_bf16_row(src, static_cast<uint16_t*>(dst), n);
        default:  // f16 (kv_store checked the type)
            return f32_to_f16_row(src, static_cast<uint16_t*>(dst), n);
    }
}

// Below this many tokens in a call the rows are written on the calling thread: a decode step's
// few KB are not worth waking the others.
constexpr int64_t parallel_min_tokens = 64;

}  // namespace

// k: [n_tokens, k_row], v: [n_tokens, v_row] (unused for a latent cache, v_row == 0); seq s owns rows
// token_offset .. token_offset + n_new - 1, stored at positions pos0 .. pos0 + n_new - 1.
void kv_store(const CpuContext& ctx, const float* k, const float* v, const AttentionSeq* seqs, int64_t n_seqs) {
    // first[s]: how many of the call's tokens come before seq s.
    std::vector<int64_t> first((size_t)n_seqs + 1, 0);
    for (int64_t s = 0; s < n_seqs; ++s) {
        if (!kv_dtype_supported(seqs[s].kv.dtype))
            throw Error(str("kv_store: a KV cache of ", dtype_name(seqs[s].kv.dtype), " is not supported"));
        first[s + 1] = first[s] + seqs[s].n_new;
    }
    auto store_token = [&](int64_t i) {
        const int64_t s = std::upper_bound(first.begin(), first.end(), i) - first.begin() - 1;
        const AttentionSeq& q = seqs[s];
        const int64_t t = i - first[s], row = q.token_offset + t;
        const int64_t kr = q.kv.k_row, vr = q.kv.v_row;
        store_row(k + row * kr, q.kv.k(q.pos0 + t), kr, q.kv.dtype);
        if (vr > 0) store_row(v + row * vr, q.kv.v(q.pos0 + t), vr, q.kv.dtype);
    };
    parallel_for(ctx, first[n_seqs], store_token, parallel_min_tokens);
}

}  // namespace gridlm::cpu
