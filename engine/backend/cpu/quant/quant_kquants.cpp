// The K-quant kernel family: the scalar reference activation quantiser and matmuls for q4_k, q5_k
// and q6_k weights against ActQ8x256 activations, and the table of every ISA variant
// (quant_kernels_kquants). The scalar kernels define the result the SIMD variants reproduce
// (quant_kquants.h states the formula); weight layouts as in engine/core/quant_blocks.h.
#include <cmath>
#include <cstddef>
#include <cstring>

#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/backend/cpu/quant/quant_kquants.h"
#include "engine/core/quant_blocks.h"

namespace gridlm::cpu {

namespace kq {
namespace {

static_assert(sizeof(BlockQ4_K) == q4k_bytes && sizeof(BlockQ5_K) == q5k_bytes && sizeof(BlockQ6_K) == q6k_bytes);
static_assert(quant_k_block == 256);

// d = max|x| / 127, qs[i] = round-half-even(x[i] / d) (std::nearbyint in the default rounding
// mode; the SIMD variants round to nearest even explicitly), bsums over 16 values; an all-zero
// block gives d = 0 and qs = 0. The inputs must be finite.
void quantize_act_scalar(const float* x, void* out, int64_t n) {
    auto* blocks = static_cast<ActQ8x256*>(out);
    for (int64_t b = 0; b < n / 256; ++b) {
        const float* v = x + b * 256;
        ActQ8x256& o = blocks[b];
        float amax = 0.f;
        for (int i = 0; i < 256; ++i) amax = std::fmax(amax, std::fabs(v[i]));
        const float d = amax / 127.f;
        o.d = d;
        for (int i = 0; i < 256; ++i) {
            // x / d is within [-127, 127] up to rounding; the clamp only guards that rounding.
            const float q = amax == 0.f ? 0.f : std::nearbyint(v[i] / d);
            o.qs[i] = (int8_t)std::fmin(127.f, std::fmax(-127.f, q));
        }
        for (int j = 0; j < 16; ++j) {
            int s = 0;
            for (int i = 0; i < 16; ++i) s += o.qs[16 * j + i];
            o.bsums[j] = (int16_t)s;
        }
    }
}

// One weight super-block unpacked for the integer dot products: q[256] as stored values
// (q4_k / q5_k: 0..31; q6_k: q - 32 in -32..31), sub-block scales and (q4_k / q5_k) mins.
struct Unpacked {
    int8_t q[256];
    int32_t sc[16];  // 8 used by q4_k / q5_k, 16 by q6_k
    int32_t m[8];
    float d, dmin;
};

// Field offsets inside a super-block (rows may sit at any byte offset, so fields are read
// through byte pointers, never through a cast to the block struct).
constexpr size_t q4k_scales = offsetof(BlockQ4_K, scales), q4k_qs = offsetof(BlockQ4_K, qs);
constexpr size_t q5k_scales = offsetof(BlockQ5_K, scales), q5k_qh = offsetof(BlockQ5_K, qh),
                 q5k_qs = offsetof(BlockQ5_K, qs);
constexpr size_t q6k_ql = offsetof(BlockQ6_K, ql), q6k_qh = offsetof(BlockQ6_K, qh),
                 q6k_scales = offsetof(BlockQ6_K, scales), q6k_d = offsetof(BlockQ6_K, d);

void unpack_q4k(const uint8_t* p, Unpacked& u) {
    u.d = read_f16(p + offsetof(BlockQ4_K, d));
    u.dmin = read_f16(p + offsetof(BlockQ4_K, dmin));
    for (int j = 0; j < 8; ++j) k_scale_min(j, p + q4k_scales, u.sc[j], u.m[j]);
    const uint8_t* qs = p + q4k_qs;
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            u.q[64 * c + l] = (int8_t)(qs[32 * c + l] & 0x0F);
            u.q[64 * c + 32 + l] = (int8_t)(qs[32 * c + l] >> 4);
        }
    }
}

void unpack_q5k(const uint8_t* p, Unpacked& u) {
    u.d = read_f16(p + offsetof(BlockQ5_K, d));
    u.dmin = read_f16(p + offsetof(BlockQ5_K, dmin));
    for (int j = 0; j < 8; ++j) k_scale_min(j, p + q5k_scales, u.sc[j], u.m[j]);
    const uint8_t* qh = p + q5k_qh;
    const uint8_t* qs = p + q5k_qs;
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            const int h = qh[l];
            u.q[64 * c + l] = (int8_t)((qs[32 * c + l] & 0x0F) | (((h >> (2 * c)) & 1) << 4));
            u.q[64 * c + 32 + l] = (int8_t)((qs[32 * c + l] >> 4) | (((h >> (2 * c + 1)) & 1) << 4));
        }
    }
}

void unpack_q6k(const uint8_t* p, Unpacked& u) {
    u.d = read_f16(p + q6k_d);
    u.dmin = 0.f;
    for (int j = 0; j < 16; ++j) u.sc[j] = (int8_t)p[q6k_scales + j];
    for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = p + q6k_ql + 64 * half;
        const uint8_t* qh = p + q6k_qh + 32 * half;
        int8_t* q = u.q + 128 * half;
        for (int l = 0; l < 32; ++l) {
            q[l] = (int8_t)(((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

// The contribution of one unpacked q4_k / q5_k super-block to one token's sum.
inline float dot_k4(const Unpacked& u, const ActQ8x256& x) {
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
        int32_t s = 0;
        for (int i = 0; i < 32; ++i) s += (int32_t)u.q[32 * j + i] * x.qs[32 * j + i];
        isum += u.sc[j] * s;
        msum += u.m[j] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
    }
    return (u.d * x.d) * (float)isum - (u.dmin * x.d) * (float)msum;
}

// The contribution of one unpacked q6_k super-block to one token's sum.
inline float dot_q6k(const Unpacked& u, const ActQ8x256& x) {
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) {
        int32_t s = 0;
        for (int i = 0; i < 16; ++i) s += (int32_t)u.q[16 * j + i] * x.qs[16 * j + i];
        isum += u.sc[j] * s;
    }
    return (u.d * x.d) * (float)isum;
}

// Each super-block of a row is unpacked once per chunk of up to 32 tokens.
template <void (*unpack)(const uint8_t*, Unpacked&), float (*dot)(const Unpacked&, const ActQ8x256&),
          int64_t block_bytes>
void matmul_scalar(const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y, int64_t r0,
                   int64_t r1) {
    constexpr int64_t chunk = 32;
    const int64_t nb = w.cols / 256;
    const auto* xb = static_cast<const uint8_t*>(xq);
    Unpacked u;
    float acc[chunk];
    for (int64_t r = r0; r < r1; ++r) {
        const auto* row = static_cast<const uint8_t*>(w.row(r));
        for (int64_t t0 = 0; t0 < n; t0 += chunk) {
            const int64_t nt = n - t0 < chunk ? n - t0 : chunk;
            for (int64_t t = 0; t < nt; ++t) acc[t] = 0.f;
            for (int64_t b = 0; b < nb; ++b) {
                unpack(row + b * block_bytes, u);
                for (int64_t t = 0; t < nt; ++t) {
                    const auto* x = reinterpret_cast<const ActQ8x256*>(xb + (t0 + t) * xq_stride) + b;
                    acc[t] += dot(u, *x);
                }
            }
            for (int64_t t = 0; t < nt; ++t) y[(t0 + t) * ld_y + r] = acc[t];
        }
    }
}

// Adapts a SIMD entry point (plain arguments) to QuantMatmulFn for weights of type T.
template <DType T, void (*kernel)(const MatmulArgs&)>
void matmul_simd(const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y, int64_t r0,
                 int64_t r1) {
    if (n <= 0 || r1 <= r0) return;
    kernel(quant_matmul_args(T, 256, act_bytes, w, xq, xq_stride, n, y, ld_y, r0, r1));
}

constexpr int64_t kAct = 256, kActBytes = sizeof(ActQ8x256);

// Indexed [isa][type - q4_k].
const QuantKernels table[3][3] = {
    {
        {DType::dtype_q4_k, kAct, kActBytes, quantize_act_scalar, matmul_scalar<unpack_q4k, dot_k4, q4k_bytes>},
        {DType::dtype_q5_k, kAct, kActBytes, quantize_act_scalar, matmul_scalar<unpack_q5k, dot_k4, q5k_bytes>},
        {DType::dtype_q6_k, kAct, kActBytes, quantize_act_scalar, matmul_scalar<unpack_q6k, dot_q6k, q6k_bytes>},
    },
#if defined(__x86_64__) && defined(__GNUC__)
    {
        {DType::dtype_q4_k, kAct, kActBytes, quantize_act_avx2, matmul_simd<DType::dtype_q4_k, matmul_q4k_avx2>},
        {DType::dtype_q5_k, kAct, kActBytes, quantize_act_avx2, matmul_simd<DType::dtype_q5_k, matmul_q5k_avx2>},
        {DType::dtype_q6_k, kAct, kActBytes, quantize_act_avx2, matmul_simd<DType::dtype_q6_k, matmul_q6k_avx2>},
    },
    {
        {DType::dtype_q4_k, kAct, kActBytes, quantize_act_avx512, matmul_simd<DType::dtype_q4_k, matmul_q4k_avx512>},
        {DType::dtype_q5_k, kAct, kActBytes, quantize_act_avx512, matmul_simd<DType::dtype_q5_k, matmul_q5k_avx512>},
        {DType::dtype_q6_k, kAct, kActBytes, quantize_act_avx512, matmul_simd<DType::dtype_q6_k, matmul_q6k_avx512>},
    },
#endif
};
constexpr int table_isas = sizeof(table) / sizeof(table[0]);

}  // namespace

}  // namespace kq

const QuantKernels* quant_kernels_kquants(DType type, Isa isa) {
    int t;
    switch (type) {
        case DType::dtype_q4_k:
            t = 0;
            break;
        case DType::dtype_q5_k:
            t = 1;
            break;
        case DType::dtype_q6_k:
            t = 2;
            break;
        default:
            return nullptr;
    }
    const int i = (int)isa;
    return i < kq::table_isas ? &kq::table[i][t] : nullptr;
}

}  // namespace gridlm::cpu
