// The device-side description of a batched call over paged KV caches (kv_store, attention): the
// host KvSeqView / AttentionSeq arrays (engine/backend/backend.h) flattened into device arrays.
// Every sequence of one call shares one layout (one layer of one cache); only the block tables,
// positions and token runs differ.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/cuda/ops/staging.cuh"

namespace gridlm::cuda {

// Element type of the cached values.
enum class KvType : int32_t { f32 = 0, bf16 = 1, f16 = 2 };

// One sequence of the call. Its queries / new rows are token rows [token_offset, token_offset +
// n_new), at positions pos0 .. pos0 + n_new - 1; its block pointers are blocks[block_base ..].
struct PagedSeq {
    int64_t token_offset;
    int64_t n_new;
    int64_t pos0;
    int64_t block_base;
};

struct PagedKv {
    uint8_t* const* blocks = nullptr;    // device [n_seqs * row] block base pointers, a fixed-length
                                         // row per sequence (unused entries null), row from max_positions
    const PagedSeq* seqs = nullptr;      // device [n_seqs]
    const int32_t* token_seq = nullptr;  // device [n_tokens]: the sequence index of each token row
    int64_t n_seqs = 0;
    int64_t n_tokens = 0;  // sum of the seqs' n_new
    int64_t max_new = 0;   // the largest n_new (1: every sequence decodes one token)
    KvType type = KvType::f32;
    int64_t block_size = 0;  // positions per block
    int64_t k_offset = 0;    // element offset of this layer's K in a block
    int64_t v_offset = 0;    // element offset of this layer's V in a block (unused when v_row == 0)
    int64_t k_row = 0;       // elements per position of K
    int64_t v_row = 0;       // elements per position of V; 0: V is the start of the K row (latent cache)
    // An upper bound on pos0 + n_new of any sequence, constant for a job (the cache's max length):
    // launch geometry may depend on it, never on the actual positions, so that a captured CUDA
    // graph stays valid when the positions change.
    int64_t max_positions = 0;
};

// Flattens the host descriptors and stages them on the device. Throws gridlm::Error when the
// sequences do not share one layout or their token runs are not [0, n_tokens) in order.
PagedKv stage_paged_kv(const AttentionSeq* seqs, int64_t n_seqs, DeviceStaging& staging);

}  // namespace gridlm::cuda
