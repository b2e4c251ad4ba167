// Scalar dequantisation of the GGUF block types (engine/core/quant_blocks.h), written from the
// block layouts there (ggml's ggml-common.h / dequantize_row_* in ggml-quants.c).
//
// Results must match ggml bit for bit, so every kernel keeps ggml's order of float operations
// and the compiler must not fuse a*b+c into one FMA (that rounds once instead of twice).
// GCC contracts across statements by default in C++ even without -ffast-math.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#include "engine/core/quant_blocks.h"

#include <cstring>

#include "engine/core/error.h"

namespace gridlm {

namespace {

// ---- block kernels: one block at b -> block_size floats at y ---------------------------------

inline void block_q4_0(const uint8_t* b, float* y) {
    const float d = read_f16(b + offsetof(BlockQ4_0, d));
    const uint8_t* qs = b + offsetof(BlockQ4_0, qs);
    for (int j = 0; j < 16; ++j) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

inline void block_q4_1(const uint8_t* b, float* y) {
    const float d = read_f16(b + offsetof(BlockQ4_1, d));
    const float m = read_f16(b + offsetof(BlockQ4_1, m));
    const uint8_t* qs = b + offsetof(BlockQ4_1, qs);
    for (int j = 0; j < 16; ++j) {
        const float p0 = (float)(qs[j] & 0x0F) * d;
        const float p1 = (float)(qs[j] >> 4) * d;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

inline void block_q5_0(const uint8_t* b, float* y) {
    const float d = read_f16(b + offsetof(BlockQ5_0, d));
    const uint32_t qh = read_u32(b + offsetof(BlockQ5_0, qh));
    const uint8_t* qs = b + offsetof(BlockQ5_0, qs);
    for (int j = 0; j < 16; ++j) {
        const int h0 = (int)((qh >> j) & 1u) << 4;
        const int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = (float)(((qs[j] & 0x0F) | h0) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | h1) - 16) * d;
    }
}

inline void block_q5_1(const uint8_t* b, float* y) {
    const float d = read_f16(b + offsetof(BlockQ5_1, d));
    const float m = read_f16(b + offsetof(BlockQ5_1, m));
    const uint32_t qh = read_u32(b + offsetof(BlockQ5_1, qh));
    const uint8_t* qs = b + offsetof(BlockQ5_1, qs);
    for (int j = 0; j < 16; ++j) {
        const int h0 = (int)((qh >> j) & 1u) << 4;
        const int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        const float p0 = (float)((qs[j] & 0x0F) | h0) * d;
        const float p1 = (float)((qs[j] >> 4) | h1) * d;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

inline void block_q8_0(const uint8_t* b, float* y) {
    const float d = read_f16(b + offsetof(BlockQ8_0, d));
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + offsetof(BlockQ8_0, qs));
    for (int j = 0; j < 32; ++j) y[j] = (float)qs[j] * d;
}

// y = (d*sc)*q - (dmin*m) per 32-value sub-block.
inline void block_q4_k(const uint8_t* b, float* y) {
    const float d = read_f16(b + offsetof(BlockQ4_K, d));
    const float dmin = read_f16(b + offsetof(BlockQ4_K, dmin));
    const uint8_t* scales = b + offsetof(BlockQ4_K, scales);
    const uint8_t* q = b + offsetof(BlockQ4_K, qs);
    for (int c = 0; c < 4; ++c) {
        int sc, m;
        k_scale_min(2 * c, scales, sc, m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        k_scale_min(2 * c + 1, scales, sc, m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; ++l) {
            const float p1 = d1 * (float)(q[l] & 0x0F);
            const float p2 = d2 * (float)(q[l] >> 4);
            y[l] = p1 - m1;
            y[l + 32] = p2 - m2;
        }
        q += 32;
        y += 64;
    }
}

inline void block_q5_k(const uint8_t* b, float* y) {
    const float d = read_f16(b + offsetof(BlockQ5_K, d));
    const float dmin = read_f16(b + offsetof(BlockQ5_K, dmin));
    const uint8_t* scales = b + offsetof(BlockQ5_K, scales);
    const uint8_t* qh = b + offsetof(BlockQ5_K, qh);
    const uint8_t* ql = b + offsetof(BlockQ5_K, qs);
    for (int c = 0; c < 4; ++c) {
        int sc, m;
        k_scale_min(2 * c, scales, sc, m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        k_scale_min(2 * c + 1, scales, sc, m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const uint8_t u1 = (uint8_t)(1u << (2 * c));
        const uint8_t u2 = (uint8_t)(2u << (2 * c));
        for (int l = 0; l < 32; ++l) {
            const int q1 = (ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0);
            const int q2 = (ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0);
            const float p1 = d1 * (float)q1;
            const float p2 = d2 * (float)q2;
            y[l] = p1 - m1;
            y[l + 32] = p2 - m2;
        }
        ql += 32;
        y += 64;
    }
}

// y = (d*s)*(q-32), evaluated left to right as ggml does.
inline void block_q6_k(const uint8_t* b, float* y) {
    const uint8_t* ql = b + offsetof(BlockQ6_K, ql);
    const uint8_t* qh = b + offsetof(BlockQ6_K, qh);
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + offsetof(BlockQ6_K, scales));
    const float d = read_f16(b + offsetof(BlockQ6_K, d));
    for (int half = 0; half < 2; ++half) {
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = (int)((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = (int)((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

inline void block_f16(const uint8_t* b, float* y) { *y = read_f16(b); }

inline void block_bf16(const uint8_t* b, float* y) {
    uint16_t h;
    std::memcpy(&h, b, 2);
    *y = bf16_to_f32(h);
}

template <void (*kernel)(const uint8_t*, float*)>
void run_blocks(const uint8_t* src, int64_t n_blocks, int64_t block_size, int64_t block_bytes, float* dst) {
    for (int64_t i = 0; i < n_blocks; ++i) kernel(src + i * block_bytes, dst + i * block_size);
}

}  // namespace

void dequantize_row(DType type, const void* src_v, float* dst, int64_t n) {
    const DTypeTraits& t = dtype_traits(type);
    if (n < 0 || n % t.block_size != 0) {
        throw Error(str("cannot dequantise ", n, " values of ", t.name, ": not a whole number of its blocks of ",
                        t.block_size));
    }
    const uint8_t* src = static_cast<const uint8_t*>(src_v);
    const int64_t nb = n / t.block_size;
    const int64_t bs = t.block_size, bb = t.block_bytes;
    switch (type) {
        case DType::dtype_f32:
            if (n > 0) std::memcpy(dst, src, (size_t)n * sizeof(float));
            return;
        case DType::dtype_f16:
            return run_blocks<block_f16>(src, nb, bs, bb, dst);
        case DType::dtype_bf16:
            return run_blocks<block_bf16>(src, nb, bs, bb, dst);
        case DType::dtype_q4_0:
            return run_blocks<block_q4_0>(src, nb, bs, bb, dst);
        case DType::dtype_q4_1:
            return run_blocks<block_q4_1>(src, nb, bs, bb, dst);
        case DType::dtype_q5_0:
            return run_blocks<block_q5_0>(src, nb, bs, bb, dst);
        case DType::dtype_q5_1:
            return run_blocks<block_q5_1>(src, nb, bs, bb, dst);
        case DType::dtype_q8_0:
            return run_blocks<block_q8_0>(src, nb, bs, bb, dst);
        case DType::dtype_q4_k:
            return run_blocks<block_q4_k>(src, nb, bs, bb, dst);
        case DType::dtype_q5_k:
            return run_blocks<block_q5_k>(src, nb, bs, bb, dst);
        case DType::dtype_q6_k:
            return run_blocks<block_q6_k>(src, nb, bs, bb, dst);
    }
    GRIDLM_ASSERT(!"dequantize_row: a DType without a kernel");
}

}  // namespace gridlm
