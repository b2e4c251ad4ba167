// CUDA backend: the probe links cuBLAS/NCCL; ops match a CPU reference where a GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#ifdef GRIDLM_HAVE_CUDA
#include "engine/backend/cuda/cuda_backend.h"
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
#else
TEST(CudaBackend, NotBuilt) { GTEST_SKIP() << "built without the CUDA backend (nvcc not found or GRIDLM_CUDA=OFF)"; }
#endif
