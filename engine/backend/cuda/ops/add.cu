// Residual add on the GPU: a grid-stride loop, four floats per 16-byte load when both arrays are
// 16-byte aligned (the last n % 4 elements then go one per thread), one float otherwise.
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/add.cuh"
#include "engine/backend/cuda/ops/elementwise.cuh"

namespace gridlm::cuda {

namespace {

// x, y: [n]
__global__ void add_kernel(float* x, const float* y, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride) x[i] += y[i];
}

// Elements [0, 4 * n4) as float4, then [4 * n4, n) one per thread. Both pointers 16-byte aligned.
__global__ void add_vec4_kernel(float* x, const float* y, int64_t n4, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (int64_t i = first; i < n4; i += stride) {
        float4 a = reinterpret_cast<const float4*>(x)[i];
        const float4 b = reinterpret_cast<const float4*>(y)[i];
        a.x += b.x;
        a.y += b.y;
        a.z += b.z;
        a.w += b.w;
        reinterpret_cast<float4*>(x)[i] = a;
    }
    const int64_t tail = 4 * n4 + first;
    if (tail < n) x[tail] += y[tail];
}

}  // namespace

void add_launch(float* x, const float* y, int64_t n, cudaStream_t stream) {
    GRIDLM_ASSERT(n >= 0);
    if (n == 0) return;
    if (is_aligned(x, 16) && is_aligned(y, 16)) {
        const int64_t n4 = n / 4;  // the tail, n - 4 * n4 < 4, needs at least that many threads: ew_threads
        add_vec4_kernel<<<ew_blocks(n4), ew_threads, 0, stream>>>(x, y, n4, n);
    } else {
        add_kernel<<<ew_blocks(n), ew_threads, 0, stream>>>(x, y, n);
    }
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
