// Flattening of host KV views into the device description a paged kernel reads (paged_kv.cuh).
#include "engine/backend/cuda/ops/paged_kv.cuh"

#include <algorithm>

#include "engine/core/error.h"

namespace gridlm::cuda {

namespace {

KvType kv_type_of(DType t) {
    switch (t) {
        case DType::dtype_f32:
            return KvType::f32;
        case DType::dtype_bf16:
            return KvType::bf16;
        case DType::dtype_f16:
            return KvType::f16;
        default:
            throw Error(str("KV cache element type ", dtype_name(t), " is not supported (f32, bf16 or f16)"));
    }
}

bool same_layout(const KvSeqView& a, const KvSeqView& b) {
    return a.dtype == b.dtype && a.block_size == b.block_size && a.k_offset == b.k_offset && a.v_offset == b.v_offset &&
           a.k_row == b.k_row && a.v_row == b.v_row;
}

}  // namespace

PagedKv stage_paged_kv(const AttentionSeq* seqs, int64_t n_seqs, DeviceStaging& staging) {
    GRIDLM_ASSERT(n_seqs > 0 && seqs != nullptr);
    const KvSeqView& first = seqs[0].kv;
    if (first.block_size <= 0 || first.k_row <= 0 || first.v_row < 0)
        throw Error(str("KV view with block size ", first.block_size, ", K row ", first.k_row, ", V row ", first.v_row,
                        ": each must be positive (V row may be 0)"));
    // Every sequence's block table takes one fixed-length row of the flattened array, long enough
    // for the cache's max length: the array's size then depends on the number of sequences only,
    // so a decode step recorded into a CUDA graph stays valid while sequences grow into new blocks.
    int64_t row = 0;
    for (int64_t s = 0; s < n_seqs; ++s) {
        const AttentionSeq& a = seqs[s];
        const int64_t cap = std::max(a.kv.max_length, a.pos0 + a.n_new);
        row = std::max(row, (cap + first.block_size - 1) / first.block_size);
    }
    std::vector<PagedSeq> host(n_seqs);
    std::vector<uint8_t*> blocks((size_t)(row * n_seqs), nullptr);
    std::vector<int32_t> token_seq;
    int64_t max_positions = 0, max_new = 0;
    for (int64_t s = 0; s < n_seqs; ++s) {
        const AttentionSeq& a = seqs[s];
        if (!same_layout(a.kv, first))
            throw Error(str("attention / kv_store call mixes KV layouts (sequence ", s,
                            " differs from sequence 0); one call serves one layer of one cache"));
        if (a.token_offset != (int64_t)token_seq.size() || a.n_new < 0 || a.pos0 < 0)
            throw Error(str("sequence ", s, " has token offset ", a.token_offset, ", ", a.n_new,
                            " new tokens at position ", a.pos0, "; token runs must follow one another from row 0"));
        const int64_t end = a.pos0 + a.n_new;
        const int64_t n_blocks = (end + first.block_size - 1) / first.block_size;
        host[s] = PagedSeq{a.token_offset, a.n_new, a.pos0, s * row};
        std::copy(a.kv.blocks, a.kv.blocks + n_blocks, blocks.begin() + s * row);
        token_seq.insert(token_seq.end(), (size_t)a.n_new, (int32_t)s);
        max_positions = std::max(max_positions, std::max(end, a.kv.max_length));
        max_new = std::max(max_new, a.n_new);
    }
    PagedKv p;
    p.blocks = static_cast<uint8_t* const*>(
        staging.upload(blocks.data(), blocks.size() * sizeof(uint8_t*), DeviceStaging::kind_block_table));
    p.seqs = static_cast<const PagedSeq*>(
        staging.upload(host.data(), host.size() * sizeof(PagedSeq), DeviceStaging::kind_seqs));
    p.token_seq = static_cast<const int32_t*>(
        staging.upload(token_seq.data(), token_seq.size() * sizeof(int32_t), DeviceStaging::kind_token_seq));
    p.n_seqs = n_seqs;
    p.n_tokens = (int64_t)token_seq.size();
    p.max_new = max_new;
    p.type = kv_type_of(first.dtype);
    p.block_size = first.block_size;
    p.k_offset = first.k_offset;
    p.v_offset = first.v_offset;
    p.k_row = first.k_row;
    p.v_row = first.v_row;
    p.max_positions = max_positions;
    return p;
}

}  // namespace gridlm::cuda
