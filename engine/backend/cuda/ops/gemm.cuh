// Dense matmul through cuBLAS: y = x w^T for weights in HF orientation (engine/backend/backend.h).
#pragma once

#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/core/dtype.h"

namespace gridlm::cuda {

// y[t, r] = sum_i w[r, i] * x[t, i], f32 accumulation, f32 output.
//   x: [n, cols] of `type` (f32, or bf16 / f16 already rounded, matching the weight);
//   w: [rows, cols] of `type`, row r at element r * ld (ld >= cols);  y: [n, rows] f32.
// f32 runs true f32 products (no TF32); bf16 / f16 run on tensor cores. The handle's stream
// orders it. Throws gridlm::Error for another type or a cuBLAS failure.
void gemm_launch(cublasHandle_t handle, const void* x, const void* w, DType type, int64_t rows, int64_t cols,
                 int64_t ld, int64_t n, float* y);

}  // namespace gridlm::cuda
