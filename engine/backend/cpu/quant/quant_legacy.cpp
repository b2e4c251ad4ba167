// The legacy-quant family's scalar reference kernels and its table of ISA variants
// (quant_kernels_legacy). The scalar matmul defines the result: per block an exact integer dot
// product, then the float terms of quant_legacy.h added in block order, every product rounded
// on its own (no FMA), so the result does not depend on the build's target.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#include "engine/backend/cpu/quant/quant_legacy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/core/error.h"

namespace gridlm::cpu {

namespace lq {

MatmulArgs matmul_args(DType type, const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y,
                       int64_t ld_y, int64_t r0, int64_t r1) {
    return quant_matmul_args(type, quant_legacy_block, act_bytes, w, xq, xq_stride, n, y, ld_y, r0, r1);
}

ActScales act_scale_planes(const uint8_t* xq, int64_t xq_stride, int64_t t0, int64_t nt, int64_t nb) {
    thread_local std::vector<float> buffer;
    const int64_t nb_pad = (nb + 7) / 8 * 8;
    if ((int64_t)buffer.size() < 2 * nt * nb_pad) buffer.resize((size_t)(2 * nt * nb_pad));
    float* d = buffer.data();
    float* s = d + nt * nb_pad;
    for (int64_t t = 0; t < nt; ++t) {
        const uint8_t* xb = xq + (t0 + t) * xq_stride;
        for (int64_t b = 0; b < nb; ++b) {
            std::memcpy(d + t * nb_pad + b, xb + b * act_bytes + offsetof(ActQ8x32, d), 4);
            std::memcpy(s + t * nb_pad + b, xb + b * act_bytes + offsetof(ActQ8x32, s), 4);
        }
        for (int64_t b = nb; b < nb_pad; ++b) d[t * nb_pad + b] = s[t * nb_pad + b] = 0.f;
    }
    return {d, s, nb_pad};
}

}  // namespace lq

namespace {

using lq::act_bytes;
using lq::act_off_qs;
using lq::LegacyFormat;

void quantize_act_scalar(const float* x, void* out, int64_t n) {
    if (n % quant_legacy_block != 0)
        throw Error(str("activation quantiser: ", n, " values are not whole blocks of ", quant_legacy_block));
    auto* blocks = static_cast<ActQ8x32*>(out);
    for (int64_t b = 0; b < n / quant_legacy_block; ++b) {
        const float* xb = x + b * quant_legacy_block;
        ActQ8x32& o = blocks[b];
        float amax = 0.f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float d = amax / 127.f;
        o.d = d;
        if (d == 0.f) {
            o.s = 0.f;
            std::memset(o.qs, 0, sizeof o.qs);
            continue;
        }
        int sum = 0;
        for (int i = 0; i < 32; ++i) {
            // The clamp only matters for a subnormal d, where x / d can overshoot 127.
            const float v = std::min(std::max(xb[i] / d, -127.f), 127.f);
            const int q = (int)std::nearbyint(v);
            o.qs[i] = (int8_t)q;
            sum += q;
        }
        o.s = d * (float)sum;
    }
}

// Block b's 32 integer weights as the dot product takes them: q - offset, q, or the signed byte.
template <DType Q>
inline void unpack_block(const uint8_t* blk, int32_t* q) {
    constexpr LegacyFormat f = lq::legacy_format(Q);
    if constexpr (f.signed8) {
        for (int i = 0; i < 32; ++i) q[i] = (int8_t)blk[f.off_qs + i];
    } else {
        uint32_t qh = 0;
        if constexpr (f.off_qh >= 0) qh = read_u32(blk + f.off_qh);
        const uint8_t* qs = blk + f.off_qs;
        for (int j = 0; j < 16; ++j) {
            const int h0 = (int)((qh >> j) & 1u) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
            q[j] = ((qs[j] & 0x0F) | h0) - f.offset;
            q[j + 16] = ((qs[j] >> 4) | h1) - f.offset;
        }
    }
}

// Tokens that share one unpacking of a weight block.
constexpr int64_t scalar_tokens = 4;

template <DType Q>
void matmul_scalar(const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y, int64_t r0,
                   int64_t r1) {
    constexpr LegacyFormat f = lq::legacy_format(Q);
    const lq::MatmulArgs a = lq::matmul_args(Q, w, xq, xq_stride, n, y, ld_y, r0, r1);
    for (int64_t r = a.r0; r < a.r1; ++r) {
        const uint8_t* row = a.w + r * a.w_stride;
        for (int64_t t0 = 0; t0 < a.n; t0 += scalar_tokens) {
            const int64_t nt = std::min(scalar_tokens, a.n - t0);
            float acc[scalar_tokens] = {};
            for (int64_t b = 0; b < a.nb; ++b) {
                const uint8_t* blk = row + b * f.bytes;
                int32_t q[32];
                unpack_block<Q>(blk, q);
                const float dw = block_d(blk);
                for (int64_t t = 0; t < nt; ++t) {
                    const uint8_t* xb = a.xq + (t0 + t) * a.xq_stride + b * act_bytes;
                    const int8_t* qx = reinterpret_cast<const int8_t*>(xb + act_off_qs);
                    int32_t isum = 0;
                    for (int i = 0; i < 32; ++i) isum += q[i] * qx[i];
                    float dx;
                    std::memcpy(&dx, xb, 4);
                    float term = (dw * dx) * (float)isum;
                    if constexpr (f.off_m >= 0) {
                        float sx;
                        std::memcpy(&sx, xb + 4, 4);
                        term = term + read_f16(blk + f.off_m) * sx;
                    }
                    acc[t] += term;
                }
            }
            for (int64_t t = 0; t < nt; ++t) a.y[(t0 + t) * a.ld_y + r] = acc[t];
        }
    }
}

template <DType Q>
constexpr QuantKernels scalar_entry() {
    return {Q, quant_legacy_block, lq::act_bytes, quantize_act_scalar, matmul_scalar<Q>};
}

constexpr QuantKernels scalar_table[] = {
    scalar_entry<DType::dtype_q4_0>(), scalar_entry<DType::dtype_q4_1>(), scalar_entry<DType::dtype_q5_0>(),
    scalar_entry<DType::dtype_q5_1>(), scalar_entry<DType::dtype_q8_0>(),
};

}  // namespace

const QuantKernels* quant_kernels_legacy(DType type, Isa isa) {
    switch (isa) {
        case Isa::scalar:
            for (const QuantKernels& k : scalar_table)
                if (k.type == type) return &k;
            return nullptr;
        case Isa::avx2:
            return lq::kernels_avx2(type);
        case Isa::avx512vnni:
            return lq::kernels_avx512(type);
    }
    return nullptr;
}

}  // namespace gridlm::cpu
