// KV cache store launcher (device pointers): writes a call's new key / value rows into the
// sequences' paged cache blocks, rounding to the cache's element type.
#pragma once

#include <cuda_runtime.h>

#include "engine/backend/cuda/ops/paged_kv.cuh"

namespace gridlm::cuda {

// Token row t (of p.n_tokens) belongs to sequence s = p.token_seq[t], at position
// pos = seqs[s].pos0 + t - seqs[s].token_offset; k[t, :] goes to block
// p.blocks[seqs[s].block_base + pos / block_size] at element k_offset + (pos % block_size) * k_row,
// v[t, :] likewise at v_offset (skipped when p.v_row == 0, a latent cache; v may then be nullptr).
// f32 rows are copied, bf16 / f16 rows rounded to nearest even: the bits the CPU kv_store writes
// (a NaN stays a NaN, its payload may differ for f16).
// k: [p.n_tokens, p.k_row] f32; v: [p.n_tokens, p.v_row] f32
void kv_store_launch(const float* k, const float* v, const PagedKv& p, cudaStream_t stream);

}  // namespace gridlm::cuda
