// Residual add launcher (device pointers): x += y.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace gridlm::cuda {

// x, y: [n] f32, any alignment (x and y must not overlap unless equal).
void add_launch(float* x, const float* y, int64_t n, cudaStream_t stream);

}  // namespace gridlm::cuda
