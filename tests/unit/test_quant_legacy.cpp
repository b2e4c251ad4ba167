// The legacy-quant integer kernels (q4_0, q4_1, q5_0, q5_1, q8_0 weights x ActQ8x32 activations,
// engine/backend/cpu/quant/quant_legacy*.cpp): the activation quantiser against known blocks and
// across ISAs bit for bit; every matmul variant the CPU runs against a double-precision reference
// built from dequantize_row and against the scalar kernel; and the end-to-end error against an f32
// matmul. Variants the CPU lacks are skipped with a message naming them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/quant_blocks.h"
#include "test_support.h"

using namespace gridlm;
using namespace gridlm::cpu;

namespace {

constexpr DType legacy_types[] = {DType::dtype_q4_0, DType::dtype_q4_1, DType::dtype_q5_0, DType::dtype_q5_1,
                                  DType::dtype_q8_0};
constexpr Isa all_isas[] = {Isa::scalar, Isa::avx2, Isa::avx512vnni};

// Relative tolerances, in units of the output's sum |w| |x|. The scalar kernel against the
// double reference: float rounding of ~cols/32 block terms (seen: up to 2e-7). A SIMD variant
// against the scalar one: the same terms summed in another order, with FMAs, and q4_0 / q5_0's
// offset folded into a float term -o d_w s_x (seen: up to 8e-7, on AVX2 and AVX-512 VNNI).
constexpr double tol_reference = 1e-5;
constexpr double tol_simd = 2e-6;

const QuantKernels& kernels(DType type, Isa isa) {
    const QuantKernels* k = quant_kernels_legacy(type, isa);
    if (!k) throw Error(str("no ", isa_name(isa), " kernels for ", dtype_name(type)));
    return *k;
}

// A weight of random valid blocks: random quant bytes, f16 scales of the size real files have.
// Rows are `extra` bytes longer than packed (a slice of a wider tensor) when extra > 0.
struct QuantWeight {
    DType type;
    int64_t rows, cols, stride;
    std::vector<uint8_t> bytes;

    Weight view() const { return {type, rows, cols, bytes.data(), stride}; }
    std::vector<float> dequant() const {
        std::vector<float> w((size_t)(rows * cols));
        for (int64_t r = 0; r < rows; ++r) dequantize_row(type, bytes.data() + r * stride, w.data() + r * cols, cols);
        return w;
    }
};

void put_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

QuantWeight random_weight(DType type, int64_t rows, int64_t cols, int64_t extra, uint32_t seed) {
    const int64_t bb = dtype_block_bytes(type), nb = cols / 32;
    QuantWeight w{type, rows, cols, nb * bb + extra, {}};
    w.bytes.resize((size_t)(rows * w.stride));
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> mag(0.002f, 0.03f);
    for (uint8_t& b : w.bytes) b = (uint8_t)byte(rng);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* blk = w.bytes.data() + r * w.stride + b * bb;
            const float sign = byte(rng) & 1 ? -1.f : 1.f;
            switch (type) {
                case DType::dtype_q4_1:
                case DType::dtype_q5_1: {  // d > 0, m the block's minimum: blocks centred near 0, give or take
                    const float d = mag(rng), q_mid = type == DType::dtype_q4_1 ? 7.5f : 15.5f;
                    put_f16(blk, d);
                    put_f16(blk + 2, -d * q_mid * (1.f + sign * 0.25f * (float)byte(rng) / 255.f));
                    break;
                }
                case DType::dtype_q8_0:
                    put_f16(blk, mag(rng) * 0.1f);
                    break;
                default:  // q4_0 / q5_0: d takes the sign of the block's extreme value
                    put_f16(blk, sign * mag(rng));
                    break;
            }
        }
    }
    return w;
}

// n tokens of activation blocks, each `extra` bytes longer than packed.
struct Acts {
    int64_t n, cols, stride;
    std::vector<uint8_t> bytes;
    const ActQ8x32* token(int64_t t) const { return reinterpret_cast<const ActQ8x32*>(bytes.data() + t * stride); }
};

Acts quantize_tokens(const QuantKernels& k, const std::vector<float>& x, int64_t n, int64_t cols, int64_t extra) {
    Acts a{n, cols, cols / 32 * (int64_t)sizeof(ActQ8x32) + extra, {}};
    a.bytes.assign((size_t)(n * a.stride), 0xEE);
    for (int64_t t = 0; t < n; ++t) k.quantize_act(x.data() + t * cols, a.bytes.data() + t * a.stride, cols);
    return a;
}

// Token values of moderate spread with an outlier channel and one all-zero block per token.
std::vector<float> random_x(int64_t n, int64_t cols, uint32_t seed) {
    std::vector<float> x = test::randn((size_t)(n * cols), seed);
    for (int64_t t = 0; t < n; ++t) {
        x[(size_t)(t * cols + 5)] *= 20.f;
        if (cols >= 64)
            for (int i = 32; i < 64; ++i) x[(size_t)(t * cols + i)] = 0.f;
    }
    return x;
}

// y[t, r] = sum_i w[r, i] * d_x * qx_i in double, and the scale sum_i |w[r, i]| |d_x qx_i|.
void reference(const std::vector<float>& w, const Acts& a, int64_t rows, std::vector<double>& y,
               std::vector<double>& scale) {
    y.assign((size_t)(a.n * rows), 0.0);
    scale.assign(y.size(), 0.0);
    for (int64_t t = 0; t < a.n; ++t) {
        const ActQ8x32* xb = a.token(t);
        for (int64_t r = 0; r < rows; ++r) {
            double s = 0, m = 0;
            for (int64_t i = 0; i < a.cols; ++i) {
                const double xv = (double)xb[i / 32].d * xb[i / 32].qs[i % 32];
                const double p = (double)w[(size_t)(r * a.cols + i)] * xv;
                s += p;
                m += std::fabs(p);
            }
            y[(size_t)(t * rows + r)] = s;
            scale[(size_t)(t * rows + r)] = m;
        }
    }
}

// Runs rows [r0, r1) of a kernel into y [n, ld_y] prefilled with NaN; checks the rest stays NaN.
std::vector<float> run(const QuantKernels& k, const QuantWeight& w, const Acts& a, int64_t ld_y, int64_t r0,
                       int64_t r1) {
    std::vector<float> y((size_t)(a.n * ld_y), std::nanf(""));
    k.matmul(w.view(), a.bytes.data(), a.stride, a.n, y.data(), ld_y, r0, r1);
    for (int64_t t = 0; t < a.n; ++t)
        for (int64_t r = 0; r < ld_y; ++r)
            if (r < r0 || r >= r1) {
                EXPECT_TRUE(std::isnan(y[(size_t)(t * ld_y + r)])) << "wrote row " << r << " of token " << t;
            }
    return y;
}

class LegacyIsa : public ::testing::TestWithParam<Isa> {
protected:
    void SetUp() override {
        if (!isa_supported(GetParam()))
            GTEST_SKIP() << isa_name(GetParam()) << " variant not run: this CPU (or build) lacks it";
    }
};

std::string isa_param_name(const ::testing::TestParamInfo<Isa>& info) { return isa_name(info.param); }

}  // namespace

TEST(QuantLegacy, TableListsTheFamily) {
    for (Isa isa : all_isas) {
        for (DType t : legacy_types) {
            const QuantKernels* k = quant_kernels_legacy(t, isa);
            if (!isa_supported(isa)) continue;  // may or may not be built in
            ASSERT_NE(k, nullptr) << dtype_name(t) << " " << isa_name(isa);
            EXPECT_EQ(k->type, t);
            EXPECT_EQ(k->act_block, 32);
            EXPECT_EQ(k->act_block_bytes, (int64_t)sizeof(ActQ8x32));
            EXPECT_EQ(quant_kernels(t, isa), k);
        }
        for (DType t : {DType::dtype_f32, DType::dtype_bf16, DType::dtype_q4_k, DType::dtype_q6_k})
            EXPECT_EQ(quant_kernels_legacy(t, isa), nullptr) << dtype_name(t);
    }
}

// The core block readers and dequantize_row's checks (its values are pinned bit for bit by
// test_gguf_dequant through io's dequantize).
TEST(QuantBlocks, ReadersAndPartialBlocks) {
    uint8_t blk[sizeof(BlockQ5_1)] = {};
    put_f16(blk, 0.5f);
    put_f16(blk + 2, -3.f);
    blk[4] = 0x01;  // value 0 has its fifth bit
    blk[8] = 0x2F;  // value 0: low nibble 15, value 16: high nibble 2
    EXPECT_EQ(block_d(blk), 0.5f);
    EXPECT_EQ(block_m(blk), -3.f);
    float y[64];
    dequantize_row(DType::dtype_q5_1, blk, y, 32);
    EXPECT_EQ(y[0], 31 * 0.5f - 3.f);
    EXPECT_EQ(y[16], 2 * 0.5f - 3.f);
    EXPECT_EQ(y[1], -3.f);
    EXPECT_THROW(dequantize_row(DType::dtype_q5_1, blk, y, 31), Error);
    EXPECT_THROW(dequantize_row(DType::dtype_q6_k, blk, y, 128), Error);
    EXPECT_THROW(dequantize_row(DType::dtype_q4_0, blk, y, -32), Error);
    const float f[3] = {1.f, -2.f, 3.5f};
    dequantize_row(DType::dtype_f32, f, y, 3);
    EXPECT_EQ(std::memcmp(f, y, sizeof f), 0);
}

TEST(QuantLegacy, ActivationQuantiserKnownBlocks) {
    // Block 0: max |x| = 127, so d = 1 and qs = round-half-even(x). Block 1: d = 2. Block 2: zeros.
    std::vector<float> x(96, 0.f);
    const float b0[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 127.f, -3.49f, 3.51f, 0.f};
    std::memcpy(x.data(), b0, sizeof b0);
    x[40] = -254.f;
    x[41] = 3.f;  // 1.5 -> 2
    x[42] = 5.f;  // 2.5 -> 2
    x[43] = 1.f;  // 0.5 -> 0
    ActQ8x32 q[3];
    kernels(DType::dtype_q4_0, Isa::scalar).quantize_act(x.data(), q, 96);
    EXPECT_EQ(q[0].d, 1.f);
    const int want0[] = {0, 2, 2, 0, -2, -2, 127, -3, 4, 0};
    int sum0 = 0;
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(q[0].qs[i], want0[i]) << "value " << i;
        sum0 += want0[i];
    }
    for (int i = 10; i < 32; ++i) EXPECT_EQ(q[0].qs[i], 0);
    EXPECT_EQ(q[0].s, (float)sum0);
    EXPECT_EQ(q[1].d, 2.f);
    EXPECT_EQ(q[1].qs[8], -127);
    EXPECT_EQ(q[1].qs[9], 2);
    EXPECT_EQ(q[1].qs[10], 2);
    EXPECT_EQ(q[1].qs[11], 0);
    EXPECT_EQ(q[1].s, 2.f * (-127 + 2 + 2));
    EXPECT_EQ(q[2].d, 0.f);
    EXPECT_EQ(q[2].s, 0.f);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(q[2].qs[i], 0);
    EXPECT_THROW(kernels(DType::dtype_q4_0, Isa::scalar).quantize_act(x.data(), q, 48), Error);
}

TEST_P(LegacyIsa, ActivationQuantiserMatchesScalarBitForBit) {
    const int64_t n = 32 * 200;
    std::vector<float> x = test::randn((size_t)n, 7);
    std::mt19937 rng(8);
    for (int64_t b = 0; b < n / 32; ++b) {
        // Scales from subnormal to huge; some all-zero blocks, some with ties x / d = k + 0.5.
        const float s = std::ldexp(1.f, (int)(b % 60) * 4 - 140);
        for (int i = 0; i < 32; ++i) x[(size_t)(b * 32 + i)] *= s;
        if (b % 17 == 3)
            for (int i = 0; i < 32; ++i) x[(size_t)(b * 32 + i)] = 0.f;
        if (b % 13 == 5)
            for (int i = 0; i < 32; ++i) x[(size_t)(b * 32 + i)] = (float)((int)(rng() % 255) - 127) * 0.5f;
    }
    std::vector<ActQ8x32> want((size_t)(n / 32)), got((size_t)(n / 32));
    kernels(DType::dtype_q4_0, Isa::scalar).quantize_act(x.data(), want.data(), n);
    for (DType t : legacy_types) {
        std::memset(got.data(), 0x5A, got.size() * sizeof(ActQ8x32));
        kernels(t, GetParam()).quantize_act(x.data(), got.data(), n);
        for (size_t b = 0; b < want.size(); ++b)
            ASSERT_EQ(std::memcmp(&want[b], &got[b], sizeof(ActQ8x32)), 0)
                << dtype_name(t) << " block " << b << ": d " << got[b].d << " vs " << want[b].d;
    }
}

TEST_P(LegacyIsa, MatmulMatchesReferenceAndScalar) {
    struct Shape {
        int64_t rows, cols, extra_row, extra_token;
    };
    const Shape shapes[] = {{37, 96, 0, 0}, {64, 4096, 7, 24}, {19, 416, 3, 40}, {5, 32, 1, 4}};
    const int64_t token_counts[] = {1, 2, 3, 4, 5, 8, 17, 64};
    uint32_t seed = 100;
    for (DType type : legacy_types) {
        const QuantKernels& k = kernels(type, GetParam());
        const QuantKernels& ks = kernels(type, Isa::scalar);
        for (const Shape& s : shapes) {
            const QuantWeight w = random_weight(type, s.rows, s.cols, s.extra_row, ++seed);
            const std::vector<float> wf = w.dequant();
            for (int64_t n : token_counts) {
                const Acts a = quantize_tokens(ks, random_x(n, s.cols, ++seed), n, s.cols, s.extra_token);
                std::vector<double> ref, scale;
                reference(wf, a, s.rows, ref, scale);
                const int64_t ld_y = s.rows + 3;
                const int64_t r0 = s.rows > 5 ? 3 : 1, r1 = s.rows > 5 ? s.rows - 2 : 4;
                for (auto [lo, hi] : {std::pair<int64_t, int64_t>{0, s.rows}, {r0, r1}}) {
                    const std::vector<float> y = run(k, w, a, ld_y, lo, hi);
                    const std::vector<float> ys = GetParam() == Isa::scalar ? y : run(ks, w, a, ld_y, lo, hi);
                    double worst_ref = 0, worst_simd = 0;
                    for (int64_t t = 0; t < n; ++t)
                        for (int64_t r = lo; r < hi; ++r) {
                            const size_t i = (size_t)(t * s.rows + r), j = (size_t)(t * ld_y + r);
                            const double m = scale[i] > 0 ? scale[i] : 1e-30;
                            worst_ref = std::max(worst_ref, std::fabs(ys[j] - ref[i]) / m);
                            worst_simd = std::max(worst_simd, std::fabs((double)y[j] - ys[j]) / m);
                        }
                    const std::string what = str(dtype_name(type), " ", isa_name(GetParam()), " rows ", s.rows,
                                                 " cols ", s.cols, " n ", n, " rows [", lo, ", ", hi, ")");
                    EXPECT_LE(worst_ref, tol_reference) << what << ": scalar kernel vs double reference";
                    EXPECT_LE(worst_simd, tol_simd) << what << ": variant vs scalar kernel";
                }
            }
        }
    }
}

// The extreme stored values (every quant byte 0x00 or 0xFF; q8_0: -128 or 127) against the
// extreme activations (all 127 or all -127): no int16 step may saturate, and the sums are exact.
TEST_P(LegacyIsa, MatmulExtremeValuesAreExact) {
    for (DType type : legacy_types) {
        const int64_t rows = 6, cols = 320, bb = dtype_block_bytes(type);
        const bool q8 = type == DType::dtype_q8_0;
        // Integer value of every weight of an even row (low end) and an odd row (high end).
        const double lo = type == DType::dtype_q4_0 ? -8 : type == DType::dtype_q5_0 ? -16 : q8 ? -128 : 0;
        const double hi = type == DType::dtype_q4_0   ? 7
                          : type == DType::dtype_q5_0 ? 15
                          : type == DType::dtype_q4_1 ? 15
                          : type == DType::dtype_q5_1 ? 31
                                                      : 127;
        QuantWeight w{type, rows, cols, cols / 32 * bb, {}};
        w.bytes.resize((size_t)(rows * w.stride));
        for (int64_t r = 0; r < rows; ++r)
            std::memset(w.bytes.data() + r * w.stride, r % 2 ? (q8 ? 0x7F : 0xFF) : (q8 ? 0x80 : 0x00),
                        (size_t)w.stride);
        for (int64_t b = 0; b < rows * cols / 32; ++b) {
            put_f16(w.bytes.data() + b * bb, 1.f);
            if (type == DType::dtype_q4_1 || type == DType::dtype_q5_1) put_f16(w.bytes.data() + b * bb + 2, 0.f);
        }
        Acts a{2, cols, cols / 32 * (int64_t)sizeof(ActQ8x32), {}};
        a.bytes.resize((size_t)(2 * a.stride));
        for (int64_t t = 0; t < 2; ++t)
            for (int64_t b = 0; b < cols / 32; ++b) {
                ActQ8x32 blk;
                blk.d = 1.f;
                blk.s = t == 0 ? 32.f * 127 : -32.f * 127;
                std::memset(blk.qs, t == 0 ? 127 : -127, 32);
                std::memcpy(a.bytes.data() + t * a.stride + b * sizeof(ActQ8x32), &blk, sizeof blk);
            }
        const std::vector<float> y = run(kernels(type, GetParam()), w, a, rows, 0, rows);
        for (int64_t r = 0; r < rows; ++r) {
            const double q = r % 2 ? hi : lo;
            EXPECT_EQ(y[(size_t)r], q * 127 * cols) << dtype_name(type) << " row " << r;
            EXPECT_EQ(y[(size_t)(rows + r)], -q * 127 * cols) << dtype_name(type) << " row " << r;
        }
    }
}

// The whole path against an f32 matmul with the dequantised weights: only the activations'
// 8-bit rounding separates them (seen: 0.5-0.6% of |y| for N(0, 1) inputs; the bound is 1%).
TEST_P(LegacyIsa, EndToEndErrorIsActivationRoundingOnly) {
    const int64_t rows = 64, cols = 4096, n = 3;
    for (DType type : legacy_types) {
        const QuantKernels& k = kernels(type, GetParam());
        const QuantWeight w = random_weight(type, rows, cols, 0, 900 + (uint32_t)type);
        const std::vector<float> wf = w.dequant();
        const std::vector<float> x = test::randn((size_t)(n * cols), 901);
        const Acts a = quantize_tokens(k, x, n, cols, 0);
        const std::vector<float> y = run(k, w, a, rows, 0, rows);
        double err = 0, norm = 0;
        for (int64_t t = 0; t < n; ++t)
            for (int64_t r = 0; r < rows; ++r) {
                double s = 0;
                for (int64_t i = 0; i < cols; ++i) s += (double)wf[(size_t)(r * cols + i)] * x[(size_t)(t * cols + i)];
                err += (y[(size_t)(t * rows + r)] - s) * (y[(size_t)(t * rows + r)] - s);
                norm += s * s;
            }
        const double rel = std::sqrt(err / norm);
        EXPECT_LT(rel, 0.01) << dtype_name(type) << " " << isa_name(GetParam());
        EXPECT_GT(rel, 0.0) << "activations were not quantised";
    }
}

TEST_P(LegacyIsa, MatmulRejectsOtherWeights) {
    const QuantWeight w = random_weight(DType::dtype_q4_1, 4, 64, 0, 3);
    const QuantKernels& k = kernels(DType::dtype_q4_0, GetParam());
    std::vector<uint8_t> xq(2 * sizeof(ActQ8x32), 0);
    std::vector<float> y(4);
    EXPECT_THROW(k.matmul(w.view(), xq.data(), (int64_t)xq.size(), 1, y.data(), 4, 0, 4), Error);
    Weight odd{DType::dtype_q4_0, 4, 48, w.bytes.data(), 40};
    EXPECT_THROW(k.matmul(odd, xq.data(), (int64_t)xq.size(), 1, y.data(), 4, 0, 4), Error);
}

INSTANTIATE_TEST_SUITE_P(Isas, LegacyIsa, ::testing::ValuesIn(all_isas), isa_param_name);
