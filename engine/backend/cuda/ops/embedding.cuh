// Embedding lookup launcher (device pointers): out[t, :] = table[ids[t] - id0, :] widened to f32,
// zero rows for ids outside [id0, id0 + rows) (another rank's vocabulary shard).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/core/dtype.h"

namespace gridlm::cuda {

// table: [rows, cols] of `type` (f32, bf16 or f16), row r at byte row_stride_bytes * r; ids: [n]
// device int32, already checked non-negative by the caller; out: [n, cols] f32.
// Throws gridlm::Error for another table type, and for a stride or pointer that is not a whole
// number of elements.
void embedding_launch(const void* table, DType type, int64_t rows, int64_t cols, int64_t row_stride_bytes, int64_t id0,
                      const int32_t* ids, int64_t n, float* out, cudaStream_t stream);

}  // namespace gridlm::cuda
