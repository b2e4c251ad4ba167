// SwiGLU gate launcher (device pointers): out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace gridlm::cuda {

// gate, up, out: [n] f32; out may be gate or up (element-wise in place), any alignment.
void silu_mul_launch(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);

}  // namespace gridlm::cuda
