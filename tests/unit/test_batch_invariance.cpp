// A token's matmul outputs are bitwise the same in any batch (engine/backend/cpu/cpu_ops.h): alone
// (a decode of one sequence), among other sequences' tokens (batched decode), or in a prefill of
// any length, on any number of threads. Data-parallel replicas and the scheduler group tokens
// differently, so this is what makes a job's output independent of its grid and its batching; a
// half-width KV cache turns any last-bit difference into a rounding step that can change a greedy
// token. Every weight type the CPU backend multiplies is covered, with the SIMD kernels and the
// scalar ones.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/thread_pool.h"
#include "engine/core/dtype.h"
#include "engine/core/quantize.h"
#include "test_support.h"

using namespace gridlm;

namespace {

struct Case {
    DType type;
    bool simd;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
    return std::string(dtype_name(info.param.type)) + (info.param.simd ? "_simd" : "_scalar");
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    for (size_t i = 0; i < dtype_count; ++i)
        for (bool simd : {true, false}) cases.push_back({(DType)i, simd});
    return cases;
}

class BatchInvariance : public testing::TestWithParam<Case> {
protected:
    void SetUp() override {
        if (GetParam().simd && !cpu::simd_compiled()) GTEST_SKIP() << "this build has no SIMD kernels";
        cpu::set_simd_enabled(GetParam().simd);
    }
    void TearDown() override { cpu::set_simd_enabled(true); }
};

}  // namespace

// rows = 37 (not a multiple of any row tile or task), cols = 512 (two K blocks), up to 13 tokens
// (three whole token tiles of 4 and a remainder); two outputs in one call share the input, as the
// q/k/v and gate/up groups do; the first has a bias.
TEST_P(BatchInvariance, EachTokenGetsTheSameBitsInAnyBatch) {
    const DType type = GetParam().type;
    const int64_t rows = 37, cols = 512, n_max = 13;
    const int64_t stride = row_bytes(type, cols);
    std::vector<std::vector<uint8_t>> w(2, std::vector<uint8_t>((size_t)(rows * stride)));
    for (int o = 0; o < 2; ++o) {
        const std::vector<float> wf = test::randn((size_t)(rows * cols), 11 + o, 0.05f);
        for (int64_t r = 0; r < rows; ++r) quantize_row(type, &wf[r * cols], &w[o][r * stride], cols);
    }
    const std::vector<float> bias = test::randn(rows, 5, 0.1f);
    const std::vector<float> x = test::randn((size_t)(n_max * cols), 3);

    // y[o] for tokens [t0, t0 + n) of x on `threads` threads.
    auto run = [&](int64_t t0, int64_t n, int threads) {
        cpu::ThreadPool pool(threads);
        const cpu::CpuContext ctx{threads, &pool};
        std::vector<std::vector<float>> y(2, std::vector<float>((size_t)(n * rows), -1.f));
        MatmulOut outs[2];
        for (int o = 0; o < 2; ++o) {
            outs[o].w = Weight{type, rows, cols, w[o].data(), 0};
            outs[o].bias = o == 0 ? bias.data() : nullptr;
            outs[o].y = y[o].data();
        }
        cpu::matmul_multi(ctx, x.data() + t0 * cols, n, outs, 2);
        return y;
    };
    // Each token alone, one thread: the decode of a lone sequence.
    std::vector<std::vector<std::vector<float>>> alone;
    for (int64_t t = 0; t < n_max; ++t) alone.push_back(run(t, 1, 1));

    for (int threads : {1, 2, 3}) {
        for (int64_t t0 : {0, 1, 6}) {
            for (int64_t n = 2; t0 + n <= n_max; ++n) {
                const auto y = run(t0, n, threads);
                for (int o = 0; o < 2; ++o)
                    for (int64_t t = 0; t < n; ++t)
                        ASSERT_EQ(0, std::memcmp(&y[o][t * rows], alone[t0 + t][o].data(), rows * sizeof(float)))
                            << dtype_name(type) << ": output " << o << ", token " << t0 + t << " in a batch of " << n
                            << " tokens from " << t0 << " on " << threads << " threads";
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, BatchInvariance, testing::ValuesIn(all_cases()), case_name);
