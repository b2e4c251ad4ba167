// f32 -> bf16 / f16 conversion launcher (device pointers), e.g. the activations fed to a
// half-precision GEMM.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "engine/core/dtype.h"

namespace gridlm::cuda {

// out[i] = x[i] rounded to nearest even in out_type.  x: [n] f32; out: [n] of out_type (bf16 or
// f16), aligned to 2 bytes. Throws gridlm::Error for another out_type.
void convert_f32_launch(const float* x, void* out, DType out_type, int64_t n, cudaStream_t stream);

}  // namespace gridlm::cuda
