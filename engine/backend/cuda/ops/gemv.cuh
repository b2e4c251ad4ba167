// Small-batch matmul launcher for decode (device pointers): y = x W^T (+ bias) for a few tokens,
// reading each weight byte once (memory-bound; larger batches go to a GEMM).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/core/dtype.h"

namespace gridlm::cuda {

// The most tokens one gemv_launch takes (their partial sums live in registers).
constexpr int64_t gemv_max_tokens = 8;

// y[t, r] = sum_i w[r, i] * x[t, i] (+ bias[r]), f32 products and sums.
// x: [n, cols] f32; w: [rows, cols] of `type` (f32, bf16 or f16), row r at byte
// row_stride_bytes * r; bias: [rows] f32 or nullptr; y: [n, rows] f32 (must not overlap x).
// 1 <= n <= gemv_max_tokens, cols >= 1. Throws gridlm::Error for another n or weight type, and
// for a stride or pointer that is not a whole number of elements.
void gemv_launch(const float* x, const void* w, DType type, int64_t rows, int64_t cols, int64_t row_stride_bytes,
                 const float* bias, int64_t n, float* y, cudaStream_t stream);

}  // namespace gridlm::cuda
