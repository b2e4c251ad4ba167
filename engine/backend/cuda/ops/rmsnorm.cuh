// RMSNorm launcher (device pointers). x, y: [n_rows, n_cols]; w: [n_cols].
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace gridlm::cuda {

void rmsnorm_launch(const float* x, const float* w, float* y, int64_t n_rows, int64_t n_cols, float eps,
                    cudaStream_t stream);

}  // namespace gridlm::cuda
