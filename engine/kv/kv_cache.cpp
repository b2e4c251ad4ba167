// BlockKvCache: a pool of fixed-size KV blocks handed to sequence slots on demand.
#include "engine/kv/kv_cache.h"

#include "engine/core/error.h"

namespace gridlm {

BlockKvCache::BlockKvCache(Backend& backend, const ModelConfig& config, int n_slots, int64_t max_length,
                           int64_t block_size)
    : backend_(backend),
      n_layer_(config.n_layer),
      row_(config.n_head_kv * config.head_dim),
      block_size_(block_size),
      max_length_(max_length),
      block_floats_(config.n_layer * 2 * block_size * config.n_head_kv * config.head_dim),
      slots_(n_slots) {
    if (n_slots <= 0 || max_length <= 0 || block_size <= 0)
        throw Error(str("KV cache needs positive slots, length and block size (got ", n_slots, ", ", max_length, ", ",
                        block_size, ")"));
}

BlockKvCache::~BlockKvCache() {
    for (float* b : all_blocks_) backend_.free(b);
}

const BlockKvCache::Slot& BlockKvCache::slot_at(int slot) const {
    GRIDLM_ASSERT(slot >= 0 && slot < (int)slots_.size());
    return slots_[slot];
}

int64_t BlockKvCache::length(int slot) const { return slot_at(slot).length; }

void BlockKvCache::reserve(int slot, int64_t n_new) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    const int64_t need = s.length + n_new;
    if (need > max_length_)
        throw Error(str("sequence in KV slot ", slot, " would hold ", need, " tokens; the cache allows ", max_length_));
    while ((int64_t)s.blocks.size() * block_size_ < need) {
        float* b;
        if (!free_blocks_.empty()) {
            b = free_blocks_.back();
            free_blocks_.pop_back();
        } else {
            b = static_cast<float*>(backend_.alloc(block_floats_ * sizeof(float)));
            all_blocks_.push_back(b);
        }
        s.blocks.push_back(b);
    }
    s.reserved = need;
}

KvSeqView BlockKvCache::view(int slot, int layer) const {
    const Slot& s = slot_at(slot);
    GRIDLM_ASSERT(layer >= 0 && layer < n_layer_);
    KvSeqView v;
    v.blocks = s.blocks.data();
    v.block_size = block_size_;
    v.row = row_;
    // Block layout: [n_layer][K, V][block_size][row]
    v.k_offset = (2 * layer) * block_size_ * row_;
    v.v_offset = (2 * layer + 1) * block_size_ * row_;
    return v;
}

void BlockKvCache::commit(int slot, int64_t n_new) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    GRIDLM_ASSERT(s.length + n_new <= s.reserved);
    s.length += n_new;
}

void BlockKvCache::clear(int slot) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    free_blocks_.insert(free_blocks_.end(), s.blocks.begin(), s.blocks.end());
    s = Slot{};
}

void BlockKvCache::truncate(int slot, int64_t new_length) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    GRIDLM_ASSERT(new_length >= 0 && new_length <= s.length);
    s.length = new_length;
    s.reserved = new_length;
}

}  // namespace gridlm
