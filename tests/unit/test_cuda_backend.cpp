// CUDA backend: the probe links cuBLAS/NCCL; ops match a CPU reference where a GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include <algorithm>
#include <cstring>
#include <memory>

#ifdef GRIDLM_HAVE_CUDA
#include "checkpoint_fixtures.h"
#include "engine/backend/cuda/cuda_backend.h"
#include "engine/model/model.h"
#include "parallel/nccl_info.h"
#endif

#ifdef GRIDLM_HAVE_CUDA
TEST(CudaBackend, ProbeReportsLinkedLibraries) {
    auto info = gridlm::cuda::cuda_probe();
    EXPECT_GE(info.runtime_version, 12000);
    EXPECT_GE(gridlm::nccl_version(), 20000);  // NCCL answers without a GPU
    if (info.device_count == 0) {
        EXPECT_FALSE(info.error.empty());
    } else {
        EXPECT_GT(info.cublas_version, 0);
    }
}

// The backend lives in libgridlm_cuda.so: its errors cross into the executable as gridlm::Error
// (the type's identity survives the module boundary) and name the host.
TEST(CudaBackend, ModuleErrorsReachTheCallerAsError) {
    gridlm::cuda::CudaBackendOptions o;
    o.device = 999;  // no node has it: without a GPU "no CUDA device on HOST", with one "does not exist"
    try {
        gridlm::cuda::make_cuda_backend(o);
        ADD_FAILURE() << "device 999 was accepted";
    } catch (const gridlm::Error& e) {
        const std::string msg = e.what();
        EXPECT_TRUE(msg.find("no CUDA device on ") != std::string::npos ||
                    msg.find("CUDA device 999 does not exist on ") != std::string::npos)
            << msg;
    }
}

TEST(CudaBackend, RmsNormMatchesCpuReference) {
    auto info = gridlm::cuda::cuda_probe();
    if (info.device_count == 0) GTEST_SKIP() << "no CUDA device: " << info.error;
    const int64_t rows = 7, cols = 896;
    const float eps = 1e-6f;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(rows * cols), w(cols), y(rows * cols);
    for (auto& v : x) v = nd(rng);
    for (auto& v : w) v = 1.f + 0.1f * nd(rng);
    gridlm::cuda::rmsnorm_host(x.data(), w.data(), y.data(), rows, cols, eps);
    for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t c = 0; c < cols; ++c) ss += (double)x[r * cols + c] * x[r * cols + c];
        const double scale = 1.0 / std::sqrt(ss / cols + eps);
        for (int64_t c = 0; c < cols; ++c) {
            const double want = x[r * cols + c] * scale * w[c];
            ASSERT_NEAR(y[r * cols + c], want, 1e-5 * (1 + std::fabs(want))) << "row " << r << " col " << c;
        }
    }
}

namespace {

using namespace gridlm;

// A small qwen2 shape (GQA 4:1, q/k/v biases) wide enough for the GEMV's vector loads and more
// than one attention key tile, with random weights.
ModelConfig small_qwen2() {
    ModelConfig c = test::tiny_config();
    c.n_vocab = 500;
    c.n_embd = 256;
    c.n_layer = 2;
    c.n_head = 8;
    c.n_head_kv = 2;
    c.head_dim = 32;
    c.n_ff = 512;
    c.n_ctx_train = 512;
    return c;
}

std::vector<int32_t> ids(int n, uint32_t seed, int64_t n_vocab) {
    std::mt19937 rng(seed);
    std::vector<int32_t> v((size_t)n);
    for (int32_t& t : v) t = (int32_t)(rng() % (uint32_t)n_vocab);
    return v;
}

// Three prompts of different lengths, then decode steps (greedy on the first model's logits);
// the third sequence stops after 10 decode steps, so decode batches of 3 and 2 recur. Calls
// check(step, a, b) with both models' logits of every step.
template <typename Check>
void lockstep(Model& a, Model& b, DType kv_dtype, int decode_steps, Check check) {
    const int64_t V = a.config().n_vocab;
    auto kva = a.make_kv_cache(3, 256, kv_dtype), kvb = b.make_kv_cache(3, 256, kv_dtype);
    std::vector<std::vector<int32_t>> prompts = {ids(37, 1, V), ids(5, 2, V), ids(70, 3, V)};
    std::vector<int32_t> last(3);
    for (int step = 0; step <= decode_steps; ++step) {
        ForwardBatch batch;
        for (int s = 0; s < 3; ++s) {
            if (step > 10 && s == 2) continue;
            if (step == 0) {
                batch.add(s, prompts[(size_t)s]);
            } else {
                batch.add(s, {&last[(size_t)s], 1});
            }
        }
        std::vector<float> la((size_t)(batch.n_logit_rows() * V)), lb(la.size(), NAN);
        a.forward(batch, *kva, la.data());
        b.forward(batch, *kvb, lb.data());
        check(step, la, lb);
        for (size_t r = 0; r < batch.seqs.size(); ++r)
            last[(size_t)batch.seqs[r].slot] =
                (int32_t)(std::max_element(la.begin() + (int64_t)r * V, la.begin() + (int64_t)(r + 1) * V) -
                          la.begin() - (int64_t)r * V);
    }
}

}  // namespace

// Decode steps replayed from CUDA graphs give the very logits of the same steps launched kernel
// by kernel, while sequences grow across KV blocks and the batch size changes.
TEST(CudaBackend, GraphReplayMatchesEagerLaunches) {
    if (gridlm::cuda::visible_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    const ModelConfig c = small_qwen2();
    const test::MemorySource src = test::tiny_weights(c, 0.3f);
    cuda::CudaBackendOptions on, off;
    off.graphs = false;
    std::shared_ptr<Backend> be_on(cuda::make_cuda_backend(on)), be_off(cuda::make_cuda_backend(off));
    Model graphs(c, src, WeightPolicy(DType::dtype_bf16), be_on),
        eager(c, src, WeightPolicy(DType::dtype_bf16), be_off);
    lockstep(eager, graphs, DType::dtype_bf16, 40, [](int step, const auto& want, const auto& got) {
        ASSERT_EQ(want.size(), got.size());
        EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << "step " << step;
    });
    const cuda::CudaStepCounts n = cuda::cuda_step_counts(*be_on);
    EXPECT_EQ(n.recorded, 2) << "one graph per decode batch size (3 and 2)";
    EXPECT_GT(n.replayed, 30);
    EXPECT_EQ(cuda::cuda_step_counts(*be_off).replayed, 0);
}

// The whole model on the GPU against the CPU backend, f32 weights and KV cache: prefill (cuBLAS
// f32 GEMMs, the prefill attention kernel) and decode (GEMV, split-key attention) logits agree
// to f32 summation-order differences.
TEST(CudaBackend, ModelLogitsMatchCpuBackend) {
    if (gridlm::cuda::visible_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    const ModelConfig c = small_qwen2();
    const test::MemorySource src = test::tiny_weights(c, 0.3f);
    std::shared_ptr<Backend> gpu(cuda::make_cuda_backend({})), cpu(make_cpu_backend(2));
    Model on_cpu(c, src, WeightPolicy(DType::dtype_f32), cpu), on_gpu(c, src, WeightPolicy(DType::dtype_f32), gpu);
    lockstep(on_cpu, on_gpu, DType::dtype_f32, 20, [](int step, const auto& want, const auto& got) {
        ASSERT_EQ(want.size(), got.size());
        float lo = INFINITY, hi = -INFINITY, worst = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            lo = std::min(lo, want[i]);
            hi = std::max(hi, want[i]);
            worst = std::max(worst, std::fabs(want[i] - got[i]));  // NaN fails below
        }
        EXPECT_LE(worst, 1e-4f * (hi - lo)) << "step " << step << ": logits range " << lo << ".." << hi;
        for (size_t i = 0; i < got.size(); ++i) ASSERT_FALSE(std::isnan(got[i])) << "step " << step << " [" << i << "]";
    });
}
#else
TEST(CudaBackend, NotBuilt) { GTEST_SKIP() << "built without the CUDA backend (nvcc not found or GRIDLM_CUDA=OFF)"; }
#endif
