// CPU ops against naive double-precision references on small random inputs, on both the SIMD
// and the scalar kernels, with 1 and 2 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/kv/kv_cache.h"
#include "test_support.h"

using namespace gridlm;

namespace {

using gridlm::test::randn;

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = f32_to_bf16(v[i]);
    return r;
}

// Runs each test body with SIMD on and off (when compiled) and with 1 and 2 threads.
class OpsTest : public ::testing::TestWithParam<std::tuple<bool, int>> {
protected:
    void SetUp() override {
        if (std::get<0>(GetParam()) && !cpu::simd_compiled()) GTEST_SKIP() << "built without AVX2+FMA";
        cpu::set_simd_enabled(std::get<0>(GetParam()));
        ctx.n_threads = std::get<1>(GetParam());
    }
    void TearDown() override { cpu::set_simd_enabled(true); }
    cpu::CpuContext ctx;
};

TEST_P(OpsTest, Embedding) {
    const int64_t vocab = 11, d = 19;
    const auto table = randn(vocab * d, 1);
    const auto table_bf = to_bf16(table);
    const std::vector<int32_t> ids = {3, 0, 10, 3};
    std::vector<float> out(ids.size() * d), out_bf(ids.size() * d);
    cpu::embedding(ctx, Weight{DType::dtype_f32, vocab, d, table.data()}, 0, ids.data(), 4, out.data());
    cpu::embedding(ctx, Weight{DType::dtype_bf16, vocab, d, table_bf.data()}, 0, ids.data(), 4, out_bf.data());
    for (size_t t = 0; t < ids.size(); ++t)
        for (int64_t i = 0; i < d; ++i) {
            EXPECT_EQ(out[t * d + i], table[ids[t] * d + i]);
            EXPECT_EQ(out_bf[t * d + i], bf16_to_f32(table_bf[ids[t] * d + i]));
        }
    const int32_t bad = -1;
    EXPECT_THROW(cpu::embedding(ctx, Weight{DType::dtype_f32, vocab, d, table.data()}, 0, &bad, 1, out.data()), Error);

    // A vocabulary shard: rows 4..7 of the table hold ids 4..7; other ids give zero rows.
    const Weight shard{DType::dtype_f32, 4, d, table.data() + 4 * d};
    const std::vector<int32_t> mixed = {5, 3, 7, 8};
    cpu::embedding(ctx, shard, 4, mixed.data(), 4, out.data());
    for (size_t t = 0; t < mixed.size(); ++t) {
        const bool mine = mixed[t] >= 4 && mixed[t] < 8;
        for (int64_t i = 0; i < d; ++i) EXPECT_EQ(out[t * d + i], mine ? table[mixed[t] * d + i] : 0.0f);
    }
}

TEST_P(OpsTest, RmsNorm) {
    const int64_t rows = 5, cols = 67;
    const auto x = randn(rows * cols, 2, 3.0f), w = randn(cols, 3);
    std::vector<float> y(rows * cols);
    cpu::rmsnorm(ctx, x.data(), w.data(), rows, cols, 1e-5f, y.data());
    for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < cols; ++i) ss += (double)x[r * cols + i] * x[r * cols + i];
        const double s = 1.0 / std::sqrt(ss / cols + 1e-5);
        for (int64_t i = 0; i < cols; ++i) {
            const double ref = x[r * cols + i] * s * w[i];
            EXPECT_NEAR(y[r * cols + i], ref, 1e-6 * (1 + std::fabs(ref)));
        }
    }
}

// Every matmul path: GEMV (n <= 4, SIMD tiles and remainders) and GEMM (n > 4), f32 and bf16.
TEST_P(OpsTest, Matmul) {
    for (int64_t cols : {67, 128}) {
        for (int64_t n : {1, 2, 3, 4, 5, 17, 64}) {
            const int64_t rows = 37;
            const auto x = randn(n * cols, 10 + n), w = randn(rows * cols, 20 + cols), b = randn(rows, 30);
            const auto wb = to_bf16(w);
            std::vector<float> y(n * rows), yb(n * rows);
            cpu::matmul(ctx, x.data(), Weight{DType::dtype_f32, rows, cols, w.data()}, b.data(), n, y.data());
            cpu::matmul(ctx, x.data(), Weight{DType::dtype_bf16, rows, cols, wb.data()}, b.data(), n, yb.data());
            for (int64_t t = 0; t < n; ++t) {
                for (int64_t r = 0; r < rows; ++r) {
                    double ref = b[r], ref_b = b[r], mag = 0;
                    for (int64_t i = 0; i < cols; ++i) {
                        ref += (double)w[r * cols + i] * x[t * cols + i];
                        ref_b += (double)bf16_to_f32(wb[r * cols + i]) * x[t * cols + i];
                        mag += std::fabs((double)w[r * cols + i] * x[t * cols + i]);
                    }
                    // f32 accumulation: error <= ~cols * 2^-24 * sum|w x|; 1e-5 is loose for cols 128.
                    EXPECT_NEAR(y[t * rows + r], ref, 1e-5 * mag) << "n=" << n << " cols=" << cols;
                    EXPECT_NEAR(yb[t * rows + r], ref_b, 1e-5 * mag) << "bf16 n=" << n;
                    // bf16 against the f32 weights: each weight is off by at most 2^-9 relative.
                    EXPECT_NEAR(yb[t * rows + r], ref, 0x1p-9 * mag + 1e-5 * mag) << "bf16 vs f32 n=" << n;
                }
            }
        }
    }
}

// Several weights (different dtypes and heights, with and without bias) in one call give what
// separate calls give, on the GEMV and the GEMM paths.
TEST_P(OpsTest, MatmulMulti) {
    const int64_t cols = 40;
    const auto wa = randn(21 * cols, 40), wc = randn(50 * cols, 41), ba = randn(21, 42);
    const auto wb = to_bf16(randn(33 * cols, 43));
    const Weight a{DType::dtype_f32, 21, cols, wa.data()}, b{DType::dtype_bf16, 33, cols, wb.data()},
        c{DType::dtype_f32, 50, cols, wc.data()};
    for (int64_t n : {1, 3, 9}) {
        const auto x = randn(n * cols, 44 + n);
        std::vector<float> ya(n * 21), yb(n * 33), yc(n * 50), ra(n * 21), rb(n * 33), rc(n * 50);
        const MatmulOut outs[] = {{a, ba.data(), ya.data()}, {b, nullptr, yb.data()}, {c, nullptr, yc.data()}};
        cpu::matmul_multi(ctx, x.data(), n, outs, 3);
        cpu::matmul(ctx, x.data(), a, ba.data(), n, ra.data());
        cpu::matmul(ctx, x.data(), b, nullptr, n, rb.data());
        cpu::matmul(ctx, x.data(), c, nullptr, n, rc.data());
        EXPECT_EQ(ya, ra) << n;
        EXPECT_EQ(yb, rb) << n;
        EXPECT_EQ(yc, rc) << n;
    }
}

TEST_P(OpsTest, Rope) {
    const int64_t n = 3, heads = 2, hd = 8;
    const std::vector<int32_t> pos = {0, 5, 1000};
    auto x = randn(n * heads * hd, 4);
    const auto x0 = x;
    std::vector<float> cs(n * hd);
    cpu::rope_table(ctx, pos.data(), n, hd, 10000.0, cs.data());
    cpu::rope(ctx, x.data(), cs.data(), n, heads, hd);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < hd / 2; ++i) {
                const double a = pos[t] * std::pow(10000.0, -2.0 * i / hd);
                const float* v0 = &x0[(t * heads + h) * hd];
                const double r0 = v0[i] * std::cos(a) - v0[i + hd / 2] * std::sin(a);
                const double r1 = v0[i + hd / 2] * std::cos(a) + v0[i] * std::sin(a);
                EXPECT_NEAR(x[(t * heads + h) * hd + i], r0, 1e-5);
                EXPECT_NEAR(x[(t * heads + h) * hd + i + hd / 2], r1, 1e-5);
            }
}

TEST_P(OpsTest, SiluMulAndAdd) {
    const int64_t n = 1001;
    const auto g = randn(n, 5, 4.0f), u = randn(n, 6);
    std::vector<float> out(n);
    cpu::silu_mul(ctx, g.data(), u.data(), n, out.data());
    for (int64_t i = 0; i < n; ++i) {
        const double ref = g[i] / (1.0 + std::exp(-(double)g[i])) * u[i];
        EXPECT_NEAR(out[i], ref, 1e-6 * (1 + std::fabs(ref)));
    }
    auto x = g;
    cpu::add(ctx, x.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(x[i], g[i] + u[i]);
}

// Two sequences of different lengths in one call, GQA 4 query heads over 2 KV heads, blocks of 4
// positions so that keys cross block boundaries; checked against a double softmax.
TEST_P(OpsTest, AttentionGqaOverBlocks) {
    ModelConfig cfg;
    cfg.n_layer = 2;
    cfg.n_head = 4;
    cfg.n_head_kv = 2;
    cfg.head_dim = 8;
    auto be = make_cpu_backend(ctx.n_threads);
    BlockKvCache kv(*be, cfg, 2, 64, 4);
    const int64_t hd = 8, nh = 4, nkv = 2, row = nkv * hd;
    const int64_t pre[2] = {6, 0}, n_new[2] = {3, 7};  // seq 0 decodes after a prefix, seq 1 prefills
    // Fill seq 0's first 6 positions in layer 1 through a first kv_store call.
    const auto k_all = randn((6 + 3 + 7) * row, 7), v_all = randn((6 + 3 + 7) * row, 8);
    kv.reserve(0, 6);
    AttentionSeq first{0, 6, 0, kv.view(0, 1)};
    cpu::kv_store(ctx, k_all.data(), v_all.data(), &first, 1);
    kv.commit(0, 6);

    std::vector<AttentionSeq> seqs(2);
    int64_t off = 0;
    for (int s = 0; s < 2; ++s) {
        kv.reserve(s, n_new[s]);
        seqs[s] = {off, n_new[s], kv.length(s), kv.view(s, 1)};
        off += n_new[s];
    }
    const int64_t n = off;
    cpu::kv_store(ctx, k_all.data() + 6 * row, v_all.data() + 6 * row, seqs.data(), 2);
    const auto q = randn(n * nh * hd, 9);
    std::vector<float> out(n * nh * hd);
    const AttentionShape shape{nh, nkv, hd, 1.0f / std::sqrt((float)hd)};
    cpu::attention(ctx, q.data(), seqs.data(), 2, shape, out.data());

    for (int s = 0; s < 2; ++s) {
        // rows of k_all/v_all holding this sequence's positions 0..
        const int64_t base_old = 0, base_new = 6 + seqs[s].token_offset;
        auto krow = [&](int64_t p) {
            return (s == 0 && p < 6) ? &k_all[(base_old + p) * row] : &k_all[(base_new + p - pre[s]) * row];
        };
        auto vrow = [&](int64_t p) {
            return (s == 0 && p < 6) ? &v_all[(base_old + p) * row] : &v_all[(base_new + p - pre[s]) * row];
        };
        for (int64_t t = 0; t < n_new[s]; ++t) {
            const int64_t qrow = seqs[s].token_offset + t, n_ctx = pre[s] + t + 1;
            for (int64_t h = 0; h < nh; ++h) {
                const int64_t g = h / (nh / nkv);
                std::vector<double> sc(n_ctx);
                double mx = -1e300, sum = 0;
                for (int64_t j = 0; j < n_ctx; ++j) {
                    double dot = 0;
                    for (int64_t i = 0; i < hd; ++i) dot += (double)q[(qrow * nh + h) * hd + i] * krow(j)[g * hd + i];
                    sc[j] = dot / std::sqrt((double)hd);
                    mx = std::max(mx, sc[j]);
                }
                for (double& x : sc) sum += (x = std::exp(x - mx));
                for (int64_t i = 0; i < hd; ++i) {
                    double ref = 0;
                    for (int64_t j = 0; j < n_ctx; ++j) ref += sc[j] / sum * vrow(j)[g * hd + i];
                    EXPECT_NEAR(out[(qrow * nh + h) * hd + i], ref, 1e-5) << "s=" << s << " t=" << t << " h=" << h;
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(SimdAndThreads, OpsTest, ::testing::Combine(::testing::Bool(), ::testing::Values(1, 2)),
                         [](const auto& info) {
                             return std::string(std::get<0>(info.param) ? "simd" : "scalar") + "_t" +
                                    std::to_string(std::get<1>(info.param));
                         });

TEST(KvCache, BlocksAreReusedAndLimitsEnforced) {
    ModelConfig cfg;
    cfg.n_layer = 1;
    cfg.n_head_kv = 1;
    cfg.head_dim = 4;
    auto be = make_cpu_backend(1);
    BlockKvCache kv(*be, cfg, 2, 10, 4);
    kv.reserve(0, 9);
    EXPECT_EQ(kv.blocks_allocated(), 3);
    kv.commit(0, 9);
    EXPECT_EQ(kv.length(0), 9);
    EXPECT_THROW(kv.reserve(0, 2), Error);
    kv.clear(0);
    kv.reserve(1, 8);
    EXPECT_EQ(kv.blocks_allocated(), 3);  // taken from the pool, none new
    EXPECT_EQ(kv.length(0), 0);
}

TEST(KvCache, BudgetAndPrefixReuse) {
    ModelConfig cfg;
    cfg.n_layer = 1;
    cfg.n_head_kv = 1;
    cfg.head_dim = 4;
    auto be = make_cpu_backend(1);
    BlockKvCache kv(*be, cfg, 3, 64, 4);
    kv.set_max_blocks(5);
    EXPECT_EQ(kv.free_blocks(), 5);
    const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // two full blocks and two tokens
    EXPECT_EQ(kv.blocks_needed(0, 10), 3);
    EXPECT_EQ(kv.attach_prefix(0, prompt), 0);  // nothing published yet
    kv.reserve(0, 10);
    kv.commit(0, 10);
    EXPECT_EQ(kv.free_blocks(), 2);
    kv.publish_prefix(0, prompt);
    // Another sequence with the same first 8 tokens shares both full blocks.
    std::vector<int32_t> other = prompt;
    other[9] = 99;
    EXPECT_EQ(kv.attach_prefix(1, other), 8);
    EXPECT_EQ(kv.length(1), 8);
    EXPECT_EQ(kv.view(1, 0).blocks[0], kv.view(0, 0).blocks[0]);
    EXPECT_EQ(kv.blocks_needed(1, 2), 1);
    // A prompt of exactly the shared blocks keeps its last token to compute.
    EXPECT_EQ(kv.attach_prefix(2, std::span<const int32_t>(prompt).first(8)), 4);
    kv.clear(2);
    // Finished sequences leave their published blocks cached; they are evicted only when needed.
    kv.clear(0);
    kv.clear(1);
    EXPECT_EQ(kv.free_blocks(), 5);
    EXPECT_EQ(kv.attach_prefix(2, prompt), 8);  // still cached
    kv.clear(2);
    kv.reserve(0, 20);  // 5 blocks: every cached block is evicted
    EXPECT_EQ(kv.free_blocks(), 0);
    EXPECT_THROW(kv.reserve(1, 1), Error);
    kv.clear(0);
    EXPECT_EQ(kv.attach_prefix(1, prompt), 0);  // the prefix is gone
}

}  // namespace
