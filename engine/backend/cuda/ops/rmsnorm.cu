// RMSNorm on the GPU: one block per row, fp32 accumulation (matches the CPU reference op).
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_module.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/rmsnorm.cuh"

namespace gridlm::cuda {

namespace {

constexpr int rmsnorm_threads = 256;

// x, y: [n_rows, n_cols]; w: [n_cols]
__global__ void rmsnorm_kernel(const float* x, const float* w, float* y, int64_t n_cols, float eps) {
    const float* xr = x + blockIdx.x * n_cols;
    float* yr = y + blockIdx.x * n_cols;
    float sum = 0.f;
    for (int64_t i = threadIdx.x; i < n_cols; i += blockDim.x) sum += xr[i] * xr[i];
    __shared__ float partial[rmsnorm_threads];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    const float scale = rsqrtf(partial[0] / (float)n_cols + eps);
    for (int64_t i = threadIdx.x; i < n_cols; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

}  // namespace

void rmsnorm_launch(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps,
                    cudaStream_t stream) {
    GRIDLM_ASSERT(n_rows >= 0 && n_cols > 0);
    if (n_rows == 0) return;
    rmsnorm_kernel<<<(unsigned)n_rows, rmsnorm_threads, 0, stream>>>(x, w, y, n_cols, eps);
    CUDA_CHECK(cudaGetLastError());
}

namespace module {

void rmsnorm_host(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps) {
    const size_t xb = sizeof(float) * n_rows * n_cols, wb = sizeof(float) * n_cols;
    float *dx = nullptr, *dw = nullptr, *dy = nullptr;
    CUDA_CHECK(cudaMalloc(&dx, xb));
    CUDA_CHECK(cudaMalloc(&dw, wb));
    CUDA_CHECK(cudaMalloc(&dy, xb));
    CUDA_CHECK(cudaMemcpy(dx, x, xb, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dw, w, wb, cudaMemcpyHostToDevice));
    rmsnorm_launch(dx, dw, dy, n_rows, n_cols, eps, nullptr);
    CUDA_CHECK(cudaMemcpy(y, dy, xb, cudaMemcpyDeviceToHost));
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(dy);
}

}  // namespace module

}  // namespace gridlm::cuda
