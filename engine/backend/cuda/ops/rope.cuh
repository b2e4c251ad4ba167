// Rotary position embedding launchers (device pointers), rotate-half layout (HF Llama / Qwen2):
// element i of a head pairs with element i + head_dim / 2.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace gridlm::cuda {

// cs[t, i] = cos(pos[t] * theta^(-2i / head_dim)) for i < head_dim / 2, then the head_dim / 2
// sines; angles in double as in the CPU op.  pos: [n] device int32; cs: [n, head_dim] f32
void rope_table_launch(const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs, cudaStream_t stream);

// Rotates every head of every token in place.  x: [n, n_heads, head_dim]; cs: [n, head_dim]
void rope_launch(float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim, cudaStream_t stream);

}  // namespace gridlm::cuda
