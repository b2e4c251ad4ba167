// Bias add on the GPU: one thread per element of y in a grid-stride loop (consecutive threads
// take consecutive columns, so y and bias reads coalesce).
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/bias_add.cuh"
#include "engine/backend/cuda/ops/elementwise.cuh"

namespace gridlm::cuda {

namespace {

// y: [n_rows, n_cols]; bias: [n_cols]; total = n_rows * n_cols
__global__ void bias_add_kernel(float* y, const float* bias, int64_t n_cols, int64_t total) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += stride) y[i] += bias[i % n_cols];
}

}  // namespace

void bias_add_launch(float* y, const float* bias, int64_t n_rows, int64_t n_cols, cudaStream_t stream) {
    GRIDLM_ASSERT(n_rows >= 0 && n_cols >= 0);
    if (n_rows == 0 || n_cols == 0) return;
    const int64_t total = n_rows * n_cols;
    bias_add_kernel<<<ew_blocks(total), ew_threads, 0, stream>>>(y, bias, n_cols, total);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
