// The K-quant integer kernels (engine/backend/cpu/quant: q4_k, q5_k, q6_k weights x ActQ8x256
// activations) in every instruction-set variant this CPU runs; variants it lacks are skipped with
// a message. Checks:
//  - the activation quantiser: hand-worked values (ties round half to even), an all-zero block,
//    bsums, and bit-identical blocks from every variant;
//  - the scalar matmul of each type against a double-precision reference (weights dequantised by
//    io/gguf_quant.h, activations as d * qs), and each SIMD variant against the scalar kernel,
//    over random valid blocks, sliced rows, padded token strides, partial row ranges and 1..64
//    tokens; no element outside the row range is written;
//  - end-to-end accuracy against unquantised activations (quantisation error under 1%).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/core/dtype.h"
#include "io/gguf_quant.h"

using namespace gridlm;
using namespace gridlm::cpu;

namespace {

constexpr Isa all_isas[] = {Isa::scalar, Isa::avx2, Isa::avx512vnni};
constexpr DType k_types[] = {DType::dtype_q4_k, DType::dtype_q5_k, DType::dtype_q6_k};

// Tolerances, relative to sum_i |w_i| |x_i| of the output:
//  - the scalar kernel vs the double reference: float rounding of the per-block products and of
//    the running sum over at most 19 super-blocks (seen: up to 3e-7);
//  - a SIMD variant vs the scalar kernel: the same exact integer sums, accumulated in float in
//    another order (8 or 16 partial sums; seen: up to 6e-8).
constexpr double tol_reference = 2e-6;
constexpr double tol_simd = 5e-7;

GgmlType ggml_of(DType t) { return (GgmlType)dtype_traits(t).gguf_id; }

void store_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

// rows x cols weights of type t, row stride `stride` bytes (>= the packed row): random bytes for
// quants and scales (and for the padding after each row), finite f16 super-scales of realistic
// magnitude with random signs.
std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t cols, int64_t stride, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> w((size_t)(rows * stride));
    for (uint8_t& b : w) b = (uint8_t)rng();
    std::uniform_real_distribution<float> mag(1e-4f, 4e-3f);
    const auto scale = [&] { return (rng() & 1 ? 1.f : -1.f) * mag(rng); };
    const int64_t bb = dtype_block_bytes(t);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < cols / 256; ++b) {
            uint8_t* p = w.data() + r * stride + b * bb;
            if (t == DType::dtype_q6_k) {
                store_f16(p + 208, scale());
            } else {
                store_f16(p, scale());
                store_f16(p + 2, scale());
            }
        }
    }
    return w;
}

// n tokens of cols values each, quantised with kernels k into rows of xq_stride bytes.
std::vector<uint8_t> quantize_tokens(const QuantKernels& k, const std::vector<float>& x, int64_t n, int64_t cols,
                                     int64_t xq_stride) {
    std::vector<uint8_t> xq((size_t)(n * xq_stride), 0xA5);
    for (int64_t t = 0; t < n; ++t) k.quantize_act(x.data() + t * cols, xq.data() + t * xq_stride, cols);
    return xq;
}

const ActQ8x256* act_block(const std::vector<uint8_t>& xq, int64_t xq_stride, int64_t t, int64_t b) {
    return reinterpret_cast<const ActQ8x256*>(xq.data() + t * xq_stride) + b;
}

// One matmul case: weight shape and slicing, token count and stride padding, row range.
struct Shape {
    int64_t rows, cols;
    int64_t extra_row_bytes;  // row stride beyond the packed row (a slice of a wider matrix)
    int64_t extra_x_blocks;   // activation row stride beyond the packed row, in blocks
    int64_t r0, r1;           // rows to compute; r1 <= 0 means rows + r1
};

// A prepared matmul: weights, f32 activations and their blocks from the scalar quantiser, the row
// range, and the output row stride (ld_y > rows, so writes past the range would show).
struct Case {
    std::vector<uint8_t> w;
    Weight weight;
    std::vector<float> x;
    std::vector<uint8_t> xq;
    int64_t xq_stride;
    int64_t n, r0, r1, ld_y;
};

Case make_case(DType t, const Shape& s, int64_t n, uint32_t seed, bool outliers = true) {
    Case c;
    const int64_t packed = row_bytes(t, s.cols);
    const int64_t stride = packed + s.extra_row_bytes;
    c.w = random_weights(t, s.rows, s.cols, stride, seed);
    c.weight = Weight{t, s.rows, s.cols, c.w.data(), s.extra_row_bytes > 0 ? stride : 0};
    c.x.resize((size_t)(n * s.cols));
    std::mt19937 rng(seed + 1);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (float& v : c.x) v = nd(rng);
    // A few outliers, as real activations have.
    if (outliers)
        for (int64_t t = 0; t < n; ++t) c.x[(size_t)(t * s.cols + (t * 37) % s.cols)] *= 20.f;
    c.xq_stride = (s.cols / 256 + s.extra_x_blocks) * (int64_t)sizeof(ActQ8x256);
    c.xq = quantize_tokens(*quant_kernels(t, Isa::scalar), c.x, n, s.cols, c.xq_stride);
    c.n = n;
    c.r0 = s.r0;
    c.r1 = s.r1 > 0 ? s.r1 : s.rows + s.r1;
    c.ld_y = s.rows + 3;
    return c;
}

// y[t * ld_y + r] for the case's row range; every other element holds NaN.
std::vector<float> run(const QuantKernels& k, const Case& c) {
    std::vector<float> y((size_t)(c.n * c.ld_y), std::numeric_limits<float>::quiet_NaN());
    k.matmul(c.weight, c.xq.data(), c.xq_stride, c.n, y.data(), c.ld_y, c.r0, c.r1);
    return y;
}

std::vector<float> dequant_row(const Weight& w, int64_t r) {
    std::vector<float> out((size_t)w.cols);
    dequantize(ggml_of(w.dtype), w.row(r), w.cols, out.data());
    return out;
}

// Checks got against the double-precision product of the dequantised weights with the
// activations (quantised ones: d * qs, or the f32 ones when use_f32), within tol * |w|.|x|.
// With use_f32 the check is on the relative error of all outputs together (norm ratio).
void expect_near_reference(const Case& c, const std::vector<float>& got, double tol, bool use_f32,
                           const std::string& what) {
    const int64_t nb = c.weight.cols / 256;
    double err2 = 0, ref2 = 0;
    int bad = 0;
    for (int64_t r = 0; r < c.weight.rows; ++r) {
        const std::vector<float> wr = dequant_row(c.weight, r);
        for (int64_t t = 0; t < c.n; ++t) {
            const float v = got[(size_t)(t * c.ld_y + r)];
            if (r < c.r0 || r >= c.r1) {
                if (!std::isnan(v) && bad++ < 5) ADD_FAILURE() << what << ": wrote row " << r << " outside the range";
                continue;
            }
            double ref = 0, mag = 0;
            for (int64_t b = 0; b < nb; ++b) {
                const ActQ8x256* xb = act_block(c.xq, c.xq_stride, t, b);
                for (int i = 0; i < 256; ++i) {
                    const int64_t col = b * 256 + i;
                    const double xv =
                        use_f32 ? (double)c.x[(size_t)(t * c.weight.cols + col)] : (double)xb->d * xb->qs[i];
                    ref += (double)wr[(size_t)col] * xv;
                    mag += std::fabs((double)wr[(size_t)col] * xv);
                }
            }
            err2 += (v - ref) * (v - ref);
            ref2 += ref * ref;
            if (!use_f32 && !(std::fabs(v - ref) <= tol * mag + 1e-30) && bad++ < 5)
                ADD_FAILURE() << what << ": row " << r << " token " << t << " got " << v << " want " << ref
                              << " (|w|.|x| = " << mag << ")";
        }
    }
    if (use_f32) {
        EXPECT_LT(std::sqrt(err2 / ref2), tol) << what;
    }
}

// |a - b| <= tol * |w|.|x| at every written element, NaN elsewhere in a.
void expect_near(const Case& c, const std::vector<float>& a, const std::vector<float>& b, double tol,
                 const std::string& what) {
    int bad = 0;
    for (int64_t r = 0; r < c.weight.rows; ++r) {
        const std::vector<float> wr = dequant_row(c.weight, r);
        for (int64_t t = 0; t < c.n; ++t) {
            const float va = a[(size_t)(t * c.ld_y + r)], vb = b[(size_t)(t * c.ld_y + r)];
            if (r < c.r0 || r >= c.r1) {
                if (!std::isnan(va) && bad++ < 5) ADD_FAILURE() << what << ": wrote row " << r << " outside the range";
                continue;
            }
            double mag = 0;
            for (int64_t blk = 0; blk < c.weight.cols / 256; ++blk) {
                const ActQ8x256* xb = act_block(c.xq, c.xq_stride, t, blk);
                for (int i = 0; i < 256; ++i) mag += std::fabs((double)wr[(size_t)(blk * 256 + i)] * xb->d * xb->qs[i]);
            }
            if (!(std::fabs((double)va - vb) <= tol * mag) && bad++ < 5)
                ADD_FAILURE() << what << ": row " << r << " token " << t << ": " << va << " vs scalar " << vb
                              << " (|w|.|x| = " << mag << ")";
        }
    }
}

std::string label(DType t, Isa isa) { return std::string(dtype_name(t)) + "/" + isa_name(isa); }

#define SKIP_UNLESS_SUPPORTED(isa)                                                       \
    do {                                                                                 \
        if (!isa_supported(isa)) {                                                       \
            GTEST_SKIP() << "this CPU does not run the " << isa_name(isa) << " variant"; \
        }                                                                                \
    } while (0)

// ---- activation quantiser ---------------------------------------------------------------------

class QuantizeAct : public ::testing::TestWithParam<Isa> {};

TEST_P(QuantizeAct, KnownValuesRoundHalfToEven) {
    SKIP_UNLESS_SUPPORTED(GetParam());
    const QuantKernels& k = *quant_kernels(DType::dtype_q4_k, GetParam());
    // Block 0: max |x| = 127, so d = 1 and qs = round-half-even(x). Block 1: the same scaled by
    // 1/4 (d = 0.25, exact), so the same qs.
    std::vector<float> x(512, 0.f);
    const float v[] = {127.f, -127.f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, 126.6f, -0.4f, -126.5f, 99.f};
    const int8_t q[] = {127, -127, 2, 4, -2, -4, 0, 2, 127, 0, -126, 99};
    for (int i = 0; i < 12; ++i) x[i] = v[i];
    for (int i = 12; i < 256; ++i) x[i] = (float)((i * 7) % 201 - 100);
    for (int i = 0; i < 256; ++i) x[256 + i] = x[i] / 4.f;
    ActQ8x256 out[2];
    k.quantize_act(x.data(), out, 512);
    for (int b = 0; b < 2; ++b) {
        EXPECT_EQ(out[b].d, b == 0 ? 1.f : 0.25f);
        for (int i = 0; i < 256; ++i) {
            const int want = i < 12 ? q[i] : (i * 7) % 201 - 100;
            ASSERT_EQ(out[b].qs[i], want) << "block " << b << " value " << i;
        }
        for (int j = 0; j < 16; ++j) {
            int s = 0;
            for (int i = 0; i < 16; ++i) s += out[b].qs[16 * j + i];
            EXPECT_EQ(out[b].bsums[j], s) << "block " << b << " bsums " << j;
        }
    }
}

TEST_P(QuantizeAct, AllZeroBlock) {
    SKIP_UNLESS_SUPPORTED(GetParam());
    const QuantKernels& k = *quant_kernels(DType::dtype_q6_k, GetParam());
    std::vector<float> x(768, 0.f);
    for (int i = 256; i < 512; ++i) x[i] = -1.f;  // the middle block is not zero
    ActQ8x256 out[3];
    std::memset(out, 0x5A, sizeof out);
    k.quantize_act(x.data(), out, 768);
    for (int b : {0, 2}) {
        EXPECT_EQ(out[b].d, 0.f);
        for (int i = 0; i < 256; ++i) ASSERT_EQ(out[b].qs[i], 0) << "block " << b;
        for (int j = 0; j < 16; ++j) ASSERT_EQ(out[b].bsums[j], 0) << "block " << b;
    }
    EXPECT_EQ(out[1].d, 1.f / 127.f);
    for (int i = 0; i < 256; ++i) ASSERT_EQ(out[1].qs[i], -127);
    for (int j = 0; j < 16; ++j) ASSERT_EQ(out[1].bsums[j], -127 * 16);
}

TEST_P(QuantizeAct, BitIdenticalToScalar) {
    SKIP_UNLESS_SUPPORTED(GetParam());
    const QuantKernels& k = *quant_kernels(DType::dtype_q5_k, GetParam());
    const QuantKernels& ref = *quant_kernels(DType::dtype_q5_k, Isa::scalar);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 1.f);
    constexpr int64_t n = 256 * 64;
    std::vector<float> x(n);
    for (int64_t b = 0; b < n / 256; ++b) {
        // Magnitudes from 1e-30 to 1e30; every eighth block all ties (max 127, half-integers).
        const float s = std::pow(10.f, (float)(b % 13) * 5.f - 30.f);
        for (int64_t i = 0; i < 256; ++i) {
            x[b * 256 + i] = b % 8 == 7 ? (float)((int)(rng() % 254) - 127) + 0.5f : nd(rng) * s;
        }
        if (b % 8 == 7) x[b * 256] = 127.f;
    }
    std::vector<ActQ8x256> got(n / 256), want(n / 256);
    k.quantize_act(x.data(), got.data(), n);
    ref.quantize_act(x.data(), want.data(), n);
    for (int64_t b = 0; b < n / 256; ++b) {
        EXPECT_EQ(std::memcmp(&got[b], &want[b], sizeof(ActQ8x256)), 0) << "block " << b;
        int16_t sums[16] = {};
        for (int i = 0; i < 256; ++i) sums[i / 16] = (int16_t)(sums[i / 16] + want[b].qs[i]);
        EXPECT_EQ(std::memcmp(sums, want[b].bsums, sizeof sums), 0) << "bsums of block " << b;
    }
}

INSTANTIATE_TEST_SUITE_P(Isas, QuantizeAct, ::testing::ValuesIn(all_isas),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

// ---- matmul -------------------------------------------------------------------------------------

struct KernelParam {
    DType type;
    Isa isa;
};

class KQuantMatmul : public ::testing::TestWithParam<KernelParam> {};

TEST_P(KQuantMatmul, Table) {
    const auto [t, isa] = GetParam();
    const QuantKernels* k = quant_kernels_kquants(t, isa);
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->type, t);
    EXPECT_EQ(k->act_block, 256);
    EXPECT_EQ(k->act_block_bytes, (int64_t)sizeof(ActQ8x256));
    EXPECT_EQ(quant_kernels(t, isa), k);
    EXPECT_EQ(quant_kernels_kquants(DType::dtype_q4_0, isa), nullptr);
    EXPECT_EQ(quant_kernels_kquants(DType::dtype_f32, isa), nullptr);
}

TEST_P(KQuantMatmul, MatchesReferenceAndScalar) {
    const auto [t, isa] = GetParam();
    SKIP_UNLESS_SUPPORTED(isa);
    const QuantKernels& k = *quant_kernels(t, isa);
    const QuantKernels& scalar = *quant_kernels(t, Isa::scalar);
    const Shape shapes[] = {
        {37, 256, 0, 0, 0, 37},        // one super-block per row, odd row count
        {64, 4864, 0, 0, 16, 48},      // the FFN-down width of Qwen2.5-0.5B, a middle range
        {21, 768, 2 * 210, 3, 1, -1},  // rows of a wider matrix, padded activation rows
        {5, 1024, 7, 1, 0, 5},         // an odd stride (rows not block-aligned)
    };
    uint32_t seed = 100 * (uint32_t)t;
    for (const Shape& s : shapes) {
        for (int64_t n : {1, 2, 3, 4, 5, 8, 17, 64}) {
            const Case c = make_case(t, s, n, ++seed);
            const std::string what = label(t, isa) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols) +
                                     " n=" + std::to_string(n) + " rows [" + std::to_string(c.r0) + "," +
                                     std::to_string(c.r1) + ")";
            const std::vector<float> y = run(k, c);
            if (isa == Isa::scalar) {
                expect_near_reference(c, y, tol_reference, false, what);
            } else {
                expect_near(c, y, run(scalar, c), tol_simd, what);
            }
        }
    }
}

TEST_P(KQuantMatmul, AccurateAgainstF32Activations) {
    const auto [t, isa] = GetParam();
    SKIP_UNLESS_SUPPORTED(isa);
    const QuantKernels& k = *quant_kernels(t, isa);
    // Gaussian activations: one outlier in a block would dominate that block's scale.
    const Case c = make_case(t, {48, 2048, 0, 0, 0, 48}, 4, 9, false);
    // The case's activations were quantised by the scalar quantiser; use this variant's own.
    Case own = c;
    own.xq = quantize_tokens(k, c.x, c.n, c.weight.cols, c.xq_stride);
    expect_near_reference(own, run(k, own), 0.01, true, label(t, isa) + " vs f32 activations");
}

std::vector<KernelParam> all_params() {
    std::vector<KernelParam> v;
    for (DType t : k_types)
        for (Isa isa : all_isas) v.push_back({t, isa});
    return v;
}

INSTANTIATE_TEST_SUITE_P(TypesIsas, KQuantMatmul, ::testing::ValuesIn(all_params()), [](const auto& info) {
    return std::string(dtype_name(info.param.type)) + "_" + isa_name(info.param.isa);
});

}  // namespace
