// Block geometry of ggml types and scalar dequantisation of the common GGUF quant formats,
// written from the block layouts in shared/NOTES.md (ggml's ggml-common.h / ggml-quants.c).
//
// Results must match ggml bit for bit, so every kernel keeps ggml's order of float operations
// and the compiler must not fuse a*b+c into one FMA (that rounds once instead of twice).
// GCC contracts across statements by default in C++ even without -ffast-math.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#include "io/gguf_quant.h"

#include <array>
#include <cstring>

#include "engine/core/dtype.h"
#include "engine/core/error.h"

namespace gridlm {

namespace {

// Elements per K-quant super-block, as engine/core/dtype.h's table has it.
constexpr int64_t qk_k = dtype_block_size(DType::dtype_q4_k);

struct TypeEntry {
    uint32_t id;
    GgmlTypeTraits traits;
};

// The types gridlm's weight-type table knows (all of which dequantize() handles), with its sizes.
constexpr TypeEntry from_dtype(DType type) {
    const DTypeTraits& t = dtype_traits(type);
    return {t.gguf_id, {t.file_name, t.block_size, t.block_bytes, true}};
}

constexpr bool same_id(DType d, GgmlType g) { return dtype_traits(d).gguf_id == (uint32_t)g; }
static_assert(
    same_id(DType::dtype_f32, GgmlType::ggml_type_f32) && same_id(DType::dtype_f16, GgmlType::ggml_type_f16) &&
        same_id(DType::dtype_bf16, GgmlType::ggml_type_bf16) && same_id(DType::dtype_q4_0, GgmlType::ggml_type_q4_0) &&
        same_id(DType::dtype_q4_1, GgmlType::ggml_type_q4_1) && same_id(DType::dtype_q5_0, GgmlType::ggml_type_q5_0) &&
        same_id(DType::dtype_q5_1, GgmlType::ggml_type_q5_1) && same_id(DType::dtype_q8_0, GgmlType::ggml_type_q8_0) &&
        same_id(DType::dtype_q4_k, GgmlType::ggml_type_q4_k) && same_id(DType::dtype_q5_k, GgmlType::ggml_type_q5_k) &&
        same_id(DType::dtype_q6_k, GgmlType::ggml_type_q6_k),
    "GGUF ids in engine/core/dtype.h must match GgmlType");

// Sizes of the others as in ggml's type_traits table. Q8_1 is left out: its block size changed
// between ggml versions, and it is an activation format that never appears in model files.
constexpr TypeEntry type_table[] = {
    from_dtype(DType::dtype_f32),       from_dtype(DType::dtype_f16),       from_dtype(DType::dtype_q4_0),
    from_dtype(DType::dtype_q4_1),      from_dtype(DType::dtype_q5_0),      from_dtype(DType::dtype_q5_1),
    from_dtype(DType::dtype_q8_0),      {10, {"Q2_K", qk_k, 84, false}},    {11, {"Q3_K", qk_k, 110, false}},
    from_dtype(DType::dtype_q4_k),      from_dtype(DType::dtype_q5_k),      from_dtype(DType::dtype_q6_k),
    {15, {"Q8_K", qk_k, 292, false}},   {16, {"IQ2_XXS", qk_k, 66, false}}, {17, {"IQ2_XS", qk_k, 74, false}},
    {18, {"IQ3_XXS", qk_k, 98, false}}, {19, {"IQ1_S", qk_k, 50, false}},   {20, {"IQ4_NL", 32, 18, false}},
    {21, {"IQ3_S", qk_k, 110, false}},  {22, {"IQ2_S", qk_k, 82, false}},   {23, {"IQ4_XS", qk_k, 136, false}},
    {24, {"I8", 1, 1, false}},          {25, {"I16", 1, 2, false}},         {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},         {28, {"F64", 1, 8, false}},         {29, {"IQ1_M", qk_k, 56, false}},
    from_dtype(DType::dtype_bf16),      {34, {"TQ1_0", qk_k, 54, false}},   {35, {"TQ2_0", qk_k, 66, false}},
    {39, {"MXFP4", 32, 17, false}},
};

inline float load_f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}

// ---- block kernels: one block of `src` -> block_size floats -------------------------------

// {d, qs[16]}: element j is the low nibble of qs[j], element j+16 its high nibble; y = (q-8)*d.
inline void block_q4_0(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

// {d, m, qs[16]}: y = q*d + m.
inline void block_q4_1(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float m = load_f16(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        const float p0 = (float)(qs[j] & 0x0F) * d;
        const float p1 = (float)(qs[j] >> 4) * d;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

// {d, qh (u32 of fifth bits), qs[16]}: y = (q5-16)*d.
inline void block_q5_0(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        const int h0 = (int)((qh >> j) & 1u) << 4;
        const int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = (float)(((qs[j] & 0x0F) | h0) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | h1) - 16) * d;
    }
}

// {d, m, qh, qs[16]}: y = q5*d + m.
inline void block_q5_1(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float m = load_f16(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        const int h0 = (int)((qh >> j) & 1u) << 4;
        const int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        const float p0 = (float)((qs[j] & 0x0F) | h0) * d;
        const float p1 = (float)((qs[j] >> 4) | h1) * d;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

// {d, int8 qs[32]}: y = q*d.
inline void block_q8_0(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < 32; ++j) y[j] = (float)qs[j] * d;
}

// 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K / Q5_K.
inline void k_scale_min(int j, const uint8_t* s, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// {d, dmin, scales[12], qs[128]}: each 64-element chunk c takes 32 bytes of qs, low nibbles
// with sub-block 2c, high nibbles with 2c+1; y = (d*sc)*q - (dmin*m).
inline void block_q4_k(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* q = b + 16;
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

// {d, dmin, scales[12], qh[32], qs[128]}: Q4_K plus a fifth bit; chunk c takes bit 2c of
// qh[l] for its first 32 elements and bit 2c+1 for the next 32.
inline void block_q5_k(const uint8_t* b, float* y) {
    const float d = load_f16(b);
    const float dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + 48;
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

// {ql[128], qh[64], int8 scales[16], d}: two halves of 128; in each, element l + 32k
// (k = 0..3) takes a nibble of ql and two bits of qh[l]; scale index l/16 + 2k; y = (d*s)*(q-32).
inline void block_q6_k(const uint8_t* b, float* y) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = load_f16(b + 208);
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

inline void block_f16(const uint8_t* b, float* y) { *y = load_f16(b); }

inline void block_bf16(const uint8_t* b, float* y) {
    uint16_t h;
    std::memcpy(&h, b, 2);
    *y = bf16_to_f32(h);
}

// Below this many blocks a tensor is converted on the calling thread: thread start-up would
// cost more than the work.
constexpr int64_t parallel_min_blocks = 1 << 14;

template <void (*kernel)(const uint8_t*, float*)>
void run_blocks(const uint8_t* src, int64_t n_blocks, int64_t block_size, int64_t type_size, float* dst) {
#pragma omp parallel for schedule(static) if (n_blocks >= parallel_min_blocks)
    for (int64_t i = 0; i < n_blocks; ++i) kernel(src + i * type_size, dst + i * block_size);
}

}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t type) {
    for (const TypeEntry& e : type_table) {
        if (e.id == type) return &e.traits;
    }
    return nullptr;
}

const GgmlTypeTraits& ggml_traits(GgmlType type) {
    const GgmlTypeTraits* t = ggml_type_traits((uint32_t)type);
    if (!t) throw Error(str("unknown ggml type ", (uint32_t)type));
    return *t;
}

uint64_t ggml_n_bytes(GgmlType type, int64_t n) {
    const GgmlTypeTraits& t = ggml_traits(type);
    if (n < 0 || n % t.block_size != 0) {
        throw Error(str(n, " elements of ", t.name, " do not fill whole blocks of ", t.block_size));
    }
    return (uint64_t)(n / t.block_size) * (uint64_t)t.type_size;
}

void dequantize(GgmlType type, const void* src_v, int64_t n, float* dst) {
    const GgmlTypeTraits& t = ggml_traits(type);
    if (!t.can_dequantize) throw Error(str("dequantising ggml type ", t.name, " is not supported"));
    if (n < 0 || n % t.block_size != 0) {
        throw Error(
            str("cannot dequantise ", n, " elements of ", t.name, ": not a multiple of its block size ", t.block_size));
    }
    const uint8_t* src = static_cast<const uint8_t*>(src_v);
    const int64_t nb = n / t.block_size;
    const int64_t bs = t.block_size, ts = t.type_size;
    switch (type) {
        case GgmlType::ggml_type_f32:
            std::memcpy(dst, src, (size_t)n * sizeof(float));
            return;
        case GgmlType::ggml_type_f16:
            run_blocks<block_f16>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_bf16:
            run_blocks<block_bf16>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q4_0:
            run_blocks<block_q4_0>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q4_1:
            run_blocks<block_q4_1>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q5_0:
            run_blocks<block_q5_0>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q5_1:
            run_blocks<block_q5_1>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q8_0:
            run_blocks<block_q8_0>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q4_k:
            run_blocks<block_q4_k>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q5_k:
            run_blocks<block_q5_k>(src, nb, bs, ts, dst);
            return;
        case GgmlType::ggml_type_q6_k:
            run_blocks<block_q6_k>(src, nb, bs, ts, dst);
            return;
        default:
            break;
    }
    // can_dequantize and the switch disagree: a bug, not a data problem.
    GRIDLM_ASSERT(!"dequantize: type marked supported has no kernel");
}

}  // namespace gridlm
