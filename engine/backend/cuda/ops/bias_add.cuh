// Bias add launcher (device pointers): y[r, c] += bias[c], e.g. the q/k/v biases of Qwen2 after
// a GEMM that has none.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace gridlm::cuda {

// y: [n_rows, n_cols] f32; bias: [n_cols] f32.
void bias_add_launch(float* y, const float* bias, int64_t n_rows, int64_t n_cols, cudaStream_t stream);

}  // namespace gridlm::cuda
