// RoPE on the GPU: the per-step cos/sin table (one thread per token and frequency, double
// angles) and the in-place rotation (one thread per token, head and pair of elements).
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/elementwise.cuh"
#include "engine/backend/cuda/ops/rope.cuh"

namespace gridlm::cuda {

namespace {

// pos: [n]; cs: [n, head_dim]; half = head_dim / 2
__global__ void rope_table_kernel(const int32_t* pos, int64_t n, int64_t head_dim, int64_t half, double theta,
                                  float* cs) {
    const int64_t total = n * half;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = k / half, i = k % half;
        // The same expression as the CPU op, so the frequencies agree to the last bit.
        const double inv_freq = pow(theta, -2.0 * (double)i / (double)head_dim);
        const double a = (double)pos[t] * inv_freq;
        cs[t * head_dim + i] = (float)cos(a);
        cs[t * head_dim + half + i] = (float)sin(a);
    }
}

// x: [n, n_heads, head_dim]; cs: [n, head_dim]; half = head_dim / 2
__global__ void rope_kernel(float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim, int64_t half) {
    const int64_t total = n * n_heads * half;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = k % half, th = k / half;  // th = t * n_heads + h
        const int64_t t = th / n_heads;
        const float c = cs[t * head_dim + i], s = cs[t * head_dim + half + i];
        float* v = x + th * head_dim;
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

}  // namespace

void rope_table_launch(const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs, cudaStream_t stream) {
    GRIDLM_ASSERT(n >= 0 && head_dim >= 0);
    const int64_t half = head_dim / 2;
    if (n == 0 || half == 0) return;
    rope_table_kernel<<<ew_blocks(n * half), ew_threads, 0, stream>>>(pos, n, head_dim, half, theta, cs);
    CUDA_CHECK(cudaGetLastError());
}

void rope_launch(float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim, cudaStream_t stream) {
    GRIDLM_ASSERT(n >= 0 && n_heads >= 0 && head_dim >= 0);
    const int64_t half = head_dim / 2;
    if (n == 0 || n_heads == 0 || half == 0) return;
    rope_kernel<<<ew_blocks(n * n_heads * half), ew_threads, 0, stream>>>(x, cs, n, n_heads, head_dim, half);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
