// Reference quantisers for the GGUF block types (engine/core/quantize.h), written from the block
// layouts in engine/core/quant_blocks.h and the algorithms described in words below (ggml's
// reference quantisers in ggml-quants.c; gguf.quants in the `gguf` Python package for the legacy
// types).
//
// The blocks must match the reference byte for byte, so every step keeps the reference's order
// of float operations and the compiler must not fuse a*b+c into one FMA (that rounds once instead
// of twice). GCC contracts across statements by default in C++ even without -ffast-math.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#include "engine/core/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/error.h"
#include "engine/core/quant_blocks.h"

namespace gridlm {

namespace {

// Round to nearest, ties to even (the default rounding mode), as an int. The K-quant references
// round this way; the legacy ones truncate after adding 0.5 or use roundf.
inline int round_even(float v) { return (int)std::nearbyint(v); }

// The f16 nearest to v, and its value back as f32: what a dequantiser will see.
inline uint16_t to_f16(float v) { return f32_to_f16(v); }
inline float f16_value(float v) { return f16_to_f32(f32_to_f16(v)); }

inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// The value of largest magnitude in x[0..n) with its sign; the first one wins a tie.
inline float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

// ---- legacy 32-value blocks ---------------------------------------------------------------------

// q8_0: d = max|x| / 127, q = x / d rounded half away from zero (roundf), so q spans -127..127.
void block_q8_0(const float* x, uint8_t* b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(b + offsetof(BlockQ8_0, d), to_f16(d));
    int8_t* qs = reinterpret_cast<int8_t*>(b + offsetof(BlockQ8_0, qs));
    for (int j = 0; j < 32; ++j) qs[j] = (int8_t)std::round(x[j] * id);
}

// q4_0 / q5_0 (symmetric, `levels` = 16 or 32): with m the largest-magnitude value (signed),
// d = m / -(levels/2), so m itself maps to q = 0; q = trunc(x / d + levels/2 + 0.5) capped at
// levels - 1. The cap only bites at -m (which would be q = levels).
template <int levels>
void quantize_symmetric(const float* x, float& d, uint8_t* q) {
    const float max = signed_absmax(x, 32);
    d = max / -(levels / 2);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) q[j] = (uint8_t)std::min(levels - 1, (int)(int8_t)(x[j] * id + (levels / 2 + 0.5f)));
}

// q4_1 / q5_1 (with a minimum, `levels` = 16 or 32): d = (max - min) / (levels - 1), m = min,
// q = trunc((x - min) / d + 0.5) capped at levels - 1.
template <int levels>
void quantize_affine(const float* x, float& d, float& min, uint8_t* q) {
    min = x[0];
    float max = x[0];
    for (int j = 1; j < 32; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    d = (max - min) / (levels - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) q[j] = (uint8_t)std::min(levels - 1, (int)(uint8_t)((x[j] - min) * id + 0.5f));
}

// Packs 32 quants of up to 4 bits: value j in the low nibble of qs[j], value j + 16 in the high one.
inline void pack_nibbles(const uint8_t* q, uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}
// Bit 4 of quant j as bit j of a little-endian u32.
inline uint32_t fifth_bits(const uint8_t* q) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= (uint32_t)((q[j] >> 4) & 1u) << j;
    return qh;
}

void block_q4_0(const float* x, uint8_t* b) {
    float d;
    uint8_t q[32];
    quantize_symmetric<16>(x, d, q);
    store_u16(b + offsetof(BlockQ4_0, d), to_f16(d));
    pack_nibbles(q, b + offsetof(BlockQ4_0, qs));
}

void block_q5_0(const float* x, uint8_t* b) {
    float d;
    uint8_t q[32];
    quantize_symmetric<32>(x, d, q);
    store_u16(b + offsetof(BlockQ5_0, d), to_f16(d));
    store_u32(b + offsetof(BlockQ5_0, qh), fifth_bits(q));
    pack_nibbles(q, b + offsetof(BlockQ5_0, qs));
}

void block_q4_1(const float* x, uint8_t* b) {
    float d, m;
    uint8_t q[32];
    quantize_affine<16>(x, d, m, q);
    store_u16(b + offsetof(BlockQ4_1, d), to_f16(d));
    store_u16(b + offsetof(BlockQ4_1, m), to_f16(m));
    pack_nibbles(q, b + offsetof(BlockQ4_1, qs));
}

void block_q5_1(const float* x, uint8_t* b) {
    float d, m;
    uint8_t q[32];
    quantize_affine<32>(x, d, m, q);
    store_u16(b + offsetof(BlockQ5_1, d), to_f16(d));
    store_u16(b + offsetof(BlockQ5_1, m), to_f16(m));
    store_u32(b + offsetof(BlockQ5_1, qh), fifth_bits(q));
    pack_nibbles(q, b + offsetof(BlockQ5_1, qs));
}

// ---- K-quant helpers ----------------------------------------------------------------------------

// Fits a sub-block of n values as x ~ scale * q - the_min with q in 0..nmax (q4_k, q5_k).
//
// The minimum is min(x) capped at 0 (so that the_min >= 0). A first guess maps [min, max] onto
// 0..nmax. Then nstep + 1 trial inverse scales (nmax + rmin + rdelta * i) / (max - min) each give
// quants q_i = clamp(round((x - min) * iscale)); for each, weighted least squares (weights w) of
// x on q gives the best scale and offset for those quants (the offset capped at 0, refitting the
// scale through the origin when it would be positive), and the trial with the smallest weighted
// squared error replaces the current best. Returns the scale; the_min is minus the offset.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min, float rmin,
                    float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        std::fill(L, L + n, 0);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = (uint8_t)std::clamp(round_even(iscale * (x[i] - min)), 0, nmax);
        const float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    uint8_t trial[32];
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(round_even(iscale * (x[i] - min)), 0, nmax);
            trial[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = this_scale * trial[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                std::copy(trial, trial + n, L);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Fits a sub-block of n values as x ~ scale * l with l in -nmax..nmax-1, weighting each value by
// x^2 (q6_k). With m the largest-magnitude value (signed), the inverse scale -nmax / m maps m to
// -nmax; least squares of x on those l gives a scale. Then 18 more inverse scales
// -(nmax + 0.1 * is) / m (is = -9..9, not 0) are tried, keeping the one that maximises
// (sum w x l)^2 / (sum w l^2), i.e. minimises the weighted squared error at its least-squares scale.
// Stores l + nmax in L (0 everywhere for an all-zero sub-block) and returns the scale.
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) {  // all (practically) zero
        std::fill(L, L + n, 0);
        return 0.0f;
    }
    auto sums = [&](float iscale, float& sumlx, float& suml2, int8_t* out) {
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
            if (out) out[i] = (int8_t)(l + nmax);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
    };
    float sumlx, suml2;
    sums(-nmax / max, sumlx, suml2, L);
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        const float iscale = -(nmax + 0.1f * is) / max;
        sums(iscale, sumlx, suml2, nullptr);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            sums(iscale, sumlx, suml2, L);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// q4_k / q5_k share everything but nmax (15 / 31), the search range and the bit packing.
//
// Per sub-block j of 32: weights w_i = sqrt(mean(x^2)) + |x_i|, then fit_scale_min. The eight
// scales and eight mins are quantised to 6 bits against d = max scale / 63 and dmin = max min /
// 63 (both stored as f16): sc_j = min(63, round(scale_j * 63 / max scale)), likewise m_j. Finally
// every value is requantised with the stored scales: q = clamp(round((x + dmin * m_j) / (d *
// sc_j)), 0, nmax); a sub-block whose stored scale is 0 keeps the quants of its fit.
template <int nmax>
void quantize_k_scales(const float* x, uint8_t* scales12, uint16_t& d16, uint16_t& dmin16, uint8_t* L) {
    constexpr float rmin = nmax == 15 ? -1.0f : -0.5f;
    constexpr int nstep = nmax == 15 ? 20 : 15;
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        const float* xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
        // The reference narrows the rounded value to a byte before capping it at 63.
        sc[j] = std::min<uint8_t>(63, (uint8_t)round_even(inv_scale * scales[j]));
        mn[j] = std::min<uint8_t>(63, (uint8_t)round_even(inv_min * mins[j]));
    }
    // The 12-byte packing that k_scale_min (quant_blocks.h) unpacks: sub-blocks 0..3 take the low
    // 6 bits of bytes j (scale) and j + 4 (min); 4..7 put their low 4 bits in byte j + 4 and their
    // top 2 bits in the top bits of bytes j - 4 (scale) and j (min).
    for (int j = 0; j < 4; ++j) {
        scales12[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        scales12[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        scales12[j + 8] = (uint8_t)((sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4));
    }
    d16 = to_f16(max_scale / 63.f);
    dmin16 = to_f16(max_min / 63.f);
    const float d = f16_to_f32(d16), dmin = f16_to_f32(dmin16);
    for (int j = 0; j < 8; ++j) {
        int s, m;
        k_scale_min(j, scales12, s, m);
        const float dj = d * s;
        if (dj == 0.0f) continue;
        const float dm = dmin * m;
        for (int i = 0; i < 32; ++i)
            L[32 * j + i] = (uint8_t)std::clamp(round_even((x[32 * j + i] + dm) / dj), 0, nmax);
    }
}

void block_q4_k(const float* x, uint8_t* b) {
    uint8_t L[256];
    uint16_t d, dmin;
    quantize_k_scales<15>(x, b + offsetof(BlockQ4_K, scales), d, dmin, L);
    store_u16(b + offsetof(BlockQ4_K, d), d);
    store_u16(b + offsetof(BlockQ4_K, dmin), dmin);
    // 64-value chunk c: its first 32 values in the low nibbles of qs[32c..32c+32), the next 32 high.
    uint8_t* qs = b + offsetof(BlockQ4_K, qs);
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void block_q5_k(const float* x, uint8_t* b) {
    uint8_t L[256];
    uint16_t d, dmin;
    quantize_k_scales<31>(x, b + offsetof(BlockQ5_K, scales), d, dmin, L);
    store_u16(b + offsetof(BlockQ5_K, d), d);
    store_u16(b + offsetof(BlockQ5_K, dmin), dmin);
    // As q4_k for the low 4 bits; bit 4 of value 64c + l goes to bit 2c of qh[l], of value
    // 64c + 32 + l to bit 2c + 1.
    uint8_t* qh = b + offsetof(BlockQ5_K, qh);
    uint8_t* qs = b + offsetof(BlockQ5_K, qs);
    std::memset(qh, 0, 32);
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
            qs[32 * c + l] = (uint8_t)((lo & 0x0F) | ((hi & 0x0F) << 4));
            qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
    }
}

// q6_k: per sub-block of 16, fit_scale_symmetric with nmax 32. With s the sub-block scale of
// largest magnitude (signed), the int8 scales are min(127, round(scale * -128 / s)) and d =
// s / -128 (f16), so s itself maps to -128. Then q = clamp(round(x / (d * scale_j)), -32, 31) + 32;
// a sub-block whose stored scale is 0 keeps the quants of its fit. A block whose scales are all
// (practically) zero is stored as zeros.
void block_q6_k(const float* x, uint8_t* b) {
    int8_t L[256];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
        scales[ib] = fit_scale_symmetric(16, 32, x + 16 * ib, L + 16 * ib);
        if (std::fabs(scales[ib]) > max_abs_scale) {
            max_abs_scale = std::fabs(scales[ib]);
            max_scale = scales[ib];
        }
    }
    if (max_abs_scale < 1e-15f) {
        std::memset(b, 0, sizeof(BlockQ6_K));
        return;
    }
    const float iscale = -128.f / max_scale;
    const uint16_t d16 = to_f16(1 / iscale);
    store_u16(b + offsetof(BlockQ6_K, d), d16);
    int8_t* sc = reinterpret_cast<int8_t*>(b + offsetof(BlockQ6_K, scales));
    for (int ib = 0; ib < 16; ++ib) sc[ib] = (int8_t)std::min(127, round_even(iscale * scales[ib]));
    const float d = f16_to_f32(d16);
    for (int j = 0; j < 16; ++j) {
        const float dj = d * sc[j];
        if (dj == 0.0f) continue;
        for (int i = 0; i < 16; ++i) L[16 * j + i] = (int8_t)(std::clamp(round_even(x[16 * j + i] / dj), -32, 31) + 32);
    }
    // Each half of 128 values: value l + 32k (l < 32, k < 4) keeps its low 4 bits in ql (k = 0, 1:
    // low nibbles of ql[l], ql[l + 32]; k = 2, 3: their high nibbles) and its top 2 bits in bits
    // 2k, 2k + 1 of qh[l].
    uint8_t* ql = b + offsetof(BlockQ6_K, ql);
    uint8_t* qh = b + offsetof(BlockQ6_K, qh);
    for (int half = 0; half < 2; ++half) {
        const int8_t* q = L + 128 * half;
        for (int l = 0; l < 32; ++l) {
            ql[l] = (uint8_t)((q[l] & 0x0F) | ((q[l + 64] & 0x0F) << 4));
            ql[l + 32] = (uint8_t)((q[l + 32] & 0x0F) | ((q[l + 96] & 0x0F) << 4));
            qh[l] =
                (uint8_t)((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) | ((q[l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

template <void (*kernel)(const float*, uint8_t*)>
void run_blocks(const float* src, uint8_t* dst, int64_t n, DType type) {
    const int64_t bs = dtype_block_size(type), bb = dtype_block_bytes(type);
    for (int64_t i = 0; i < n / bs; ++i) kernel(src + i * bs, dst + i * bb);
}

}  // namespace

void quantize_row(DType type, const float* src, void* dst_v, int64_t n) {
    const DTypeTraits& t = dtype_traits(type);
    if (n < 0 || n % t.block_size != 0) {
        throw Error(str("cannot quantise ", n, " values to ", t.name, ": not a whole number of ", t.name, " blocks (",
                        t.block_size, " values per block)"));
    }
    uint8_t* dst = static_cast<uint8_t*>(dst_v);
    if (t.quantized) {
        for (int64_t i = 0; i < n; ++i) {
            if (!std::isfinite(src[i])) {
                throw Error(str("cannot quantise to ", t.name, ": value ", i, " is ", src[i], " (only finite values)"));
            }
        }
    }
    switch (type) {
        case DType::dtype_f32:
            if (n) std::memcpy(dst, src, (size_t)n * sizeof(float));
            return;
        case DType::dtype_f16:
            for (int64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, f32_to_f16(src[i]));
            return;
        case DType::dtype_bf16:
            for (int64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, f32_to_bf16(src[i]));
            return;
        case DType::dtype_q8_0:
            return run_blocks<block_q8_0>(src, dst, n, type);
        case DType::dtype_q4_0:
            return run_blocks<block_q4_0>(src, dst, n, type);
        case DType::dtype_q4_1:
            return run_blocks<block_q4_1>(src, dst, n, type);
        case DType::dtype_q5_0:
            return run_blocks<block_q5_0>(src, dst, n, type);
        case DType::dtype_q5_1:
            return run_blocks<block_q5_1>(src, dst, n, type);
        case DType::dtype_q4_k:
            return run_blocks<block_q4_k>(src, dst, n, type);
        case DType::dtype_q5_k:
            return run_blocks<block_q5_k>(src, dst, n, type);
        case DType::dtype_q6_k:
            return run_blocks<block_q6_k>(src, dst, n, type);
    }
    GRIDLM_ASSERT(!"quantize_row: a DType without a quantiser");
}

}  // namespace gridlm
