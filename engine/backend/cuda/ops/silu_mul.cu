// SwiGLU gate on the GPU: a grid-stride loop, four floats per 16-byte load when all three arrays
// are 16-byte aligned (the last n % 4 elements then go one per thread), one float otherwise.
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/ops/elementwise.cuh"
#include "engine/backend/cuda/ops/silu_mul.cuh"

namespace gridlm::cuda {

namespace {

__device__ __forceinline__ float silu_mul1(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// Elements [0, n); out may alias gate or up (each element is read before it is written, by the
// same thread).
__global__ void silu_mul_kernel(const float* gate, const float* up, float* out, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = silu_mul1(gate[i], up[i]);
}

// Elements [0, 4 * n4) as float4, then [4 * n4, n) one per thread. Every pointer 16-byte aligned.
__global__ void silu_mul_vec4_kernel(const float* gate, const float* up, float* out, int64_t n4, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (int64_t i = first; i < n4; i += stride) {
        const float4 g = reinterpret_cast<const float4*>(gate)[i];
        const float4 u = reinterpret_cast<const float4*>(up)[i];
        float4 r;
        r.x = silu_mul1(g.x, u.x);
        r.y = silu_mul1(g.y, u.y);
        r.z = silu_mul1(g.z, u.z);
        r.w = silu_mul1(g.w, u.w);
        reinterpret_cast<float4*>(out)[i] = r;
    }
    const int64_t tail = 4 * n4 + first;
    if (tail < n) out[tail] = silu_mul1(gate[tail], up[tail]);
}

}  // namespace

void silu_mul_launch(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
    GRIDLM_ASSERT(n >= 0);
    if (n == 0) return;
    if (is_aligned(gate, 16) && is_aligned(up, 16) && is_aligned(out, 16)) {
        const int64_t n4 = n / 4;  // the tail, n - 4 * n4 < 4, needs at least that many threads: ew_threads
        silu_mul_vec4_kernel<<<ew_blocks(n4), ew_threads, 0, stream>>>(gate, up, out, n4, n);
    } else {
        silu_mul_kernel<<<ew_blocks(n), ew_threads, 0, stream>>>(gate, up, out, n);
    }
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace gridlm::cuda
