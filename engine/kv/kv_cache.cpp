// BlockKvCache: a pool of fixed-size KV blocks handed to sequence slots on demand.
#include "engine/kv/kv_cache.h"

#include <algorithm>
#include <climits>

#include "engine/core/error.h"

namespace gridlm {

BlockKvCache::BlockKvCache(Backend& backend, const KvLayout& layout, int n_slots, int64_t max_length,
                           int64_t block_size)
    : backend_(backend),
      layout_(layout),
      block_size_(block_size),
      max_length_(max_length),
      block_bytes_(0),
      slots_(n_slots) {
    if (n_slots <= 0 || max_length <= 0 || block_size <= 0)
        throw Error(str("KV cache needs positive slots, length and block size (got ", n_slots, ", ", max_length, ", ",
                        block_size, ")"));
    if (layout.n_layer <= 0 || layout.k_row <= 0 || layout.v_row < 0)
        throw Error(str("KV cache layout needs layers and a K row (got ", layout.n_layer, " layers, K row ",
                        layout.k_row, ", V row ", layout.v_row, ")"));
    if (!kv_dtype_supported(layout.dtype))
        throw Error(str("KV cache element type ", dtype_name(layout.dtype), " is not supported (f32, bf16 or f16)"));
    block_bytes_ = block_size * layout.bytes_per_token();
}

BlockKvCache::~BlockKvCache() {
    for (uint8_t* b : all_blocks_) backend_.free(b);
}

const BlockKvCache::Slot& BlockKvCache::slot_at(int slot) const {
    GRIDLM_ASSERT(slot >= 0 && slot < (int)slots_.size());
    return slots_[slot];
}

int64_t BlockKvCache::length(int slot) const { return slot_at(slot).length; }

namespace {

// Hash of a prefix: chained over blocks, so a block's hash covers every token before it.
uint64_t chain(uint64_t h, std::span<const int32_t> block) {
    for (int32_t t : block) {
        h ^= (uint64_t)(uint32_t)t + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        h *= 0x100000001b3ull;
    }
    return h;
}

}  // namespace

int64_t BlockKvCache::free_blocks() const {
    const int64_t unallocated = max_blocks_ > 0 ? max_blocks_ - (int64_t)all_blocks_.size() : INT64_MAX / 4;
    return unallocated + (int64_t)free_blocks_.size() + (int64_t)evictable_.size();
}

int64_t BlockKvCache::blocks_in_use() const {
    return (int64_t)all_blocks_.size() - (int64_t)free_blocks_.size() - (int64_t)evictable_.size();
}

int64_t BlockKvCache::blocks_needed(int slot, int64_t n_new) const {
    const Slot& s = slot_at(slot);
    const int64_t need = s.length + n_new;
    const int64_t blocks = (need + block_size_ - 1) / block_size_;
    return std::max<int64_t>(0, blocks - (int64_t)s.blocks.size());
}

uint8_t* BlockKvCache::take_block() {
    uint8_t* b;
    // Without a budget, cached prefixes nobody uses are kept up to two blocks per slot.
    const bool evict_first = max_blocks_ == 0 && (int64_t)evictable_.size() > 2 * (int64_t)slots_.size();
    if (!free_blocks_.empty()) {
        b = free_blocks_.back();
        free_blocks_.pop_back();
    } else if (!evict_first && (max_blocks_ == 0 || (int64_t)all_blocks_.size() < max_blocks_)) {
        b = static_cast<uint8_t*>(backend_.alloc((size_t)block_bytes_));
        all_blocks_.push_back(b);
    } else if (!evictable_.empty()) {  // the least recently used cached prefix block
        b = evictable_.front();
        evictable_.pop_front();
        cached_.erase(info_[b].hash);
    } else {
        throw Error(str("KV cache full: all ", max_blocks_, " blocks are in use (the scheduler should have ",
                        "preempted a sequence)"));
    }
    info_[b] = BlockInfo{1, false, 0, {}};
    return b;
}

void BlockKvCache::release(uint8_t* b) {
    BlockInfo& i = info_[b];
    GRIDLM_ASSERT(i.refs > 0);
    if (--i.refs > 0) return;
    if (i.cached) {
        evictable_.push_back(b);
        i.lru = std::prev(evictable_.end());
    } else {
        free_blocks_.push_back(b);
    }
}

void BlockKvCache::reserve(int slot, int64_t n_new) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    const int64_t need = s.length + n_new;
    if (need > max_length_)
        throw Error(str("sequence in KV slot ", slot, " would hold ", need, " tokens; the cache allows ", max_length_));
    while ((int64_t)s.blocks.size() * block_size_ < need) s.blocks.push_back(take_block());
    s.reserved = need;
}

int64_t BlockKvCache::attach_prefix(int slot, std::span<const int32_t> tokens) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    GRIDLM_ASSERT(s.length == 0 && s.blocks.empty());
    uint64_t h = 0;
    int64_t n = 0;
    while (n + block_size_ < (int64_t)tokens.size()) {
        h = chain(h, tokens.subspan(n, block_size_));
        auto it = cached_.find(h);
        if (it == cached_.end()) break;
        uint8_t* b = it->second;
        BlockInfo& i = info_[b];
        if (i.refs++ == 0) evictable_.erase(i.lru);
        s.blocks.push_back(b);
        n += block_size_;
    }
    s.length = s.reserved = n;
    prefix_reused_ += n;
    if (n > 0) ++prefix_hits_;
    return n;
}

void BlockKvCache::publish_prefix(int slot, std::span<const int32_t> tokens) {
    const Slot& s = slot_at(slot);
    const int64_t full = std::min<int64_t>(s.length, (int64_t)tokens.size()) / block_size_;
    uint64_t h = 0;
    for (int64_t i = 0; i < full; ++i) {
        h = chain(h, tokens.subspan(i * block_size_, block_size_));
        BlockInfo& bi = info_[s.blocks[i]];
        if (bi.cached || cached_.count(h)) continue;  // already published (or the same prefix elsewhere)
        bi.cached = true;
        bi.hash = h;
        cached_[h] = s.blocks[i];
    }
}

KvSeqView BlockKvCache::view(int slot, int layer) const {
    const Slot& s = slot_at(slot);
    GRIDLM_ASSERT(layer >= 0 && layer < layout_.n_layer);
    KvSeqView v;
    v.blocks = s.blocks.data();
    v.dtype = layout_.dtype;
    v.block_size = block_size_;
    v.k_row = layout_.k_row;
    v.v_row = layout_.v_row;
    v.max_length = max_length_;
    // Block layout: [n_layer][K [block_size][k_row], V [block_size][v_row]], elements of dtype
    v.k_offset = layer * block_size_ * (layout_.k_row + layout_.v_row);
    v.v_offset = v.k_offset + block_size_ * layout_.k_row;
    return v;
}

void BlockKvCache::commit(int slot, int64_t n_new) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    GRIDLM_ASSERT(s.length + n_new <= s.reserved);
    s.length += n_new;
}

void BlockKvCache::clear(int slot) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    for (uint8_t* b : s.blocks) release(b);
    s = Slot{};
}

void BlockKvCache::truncate(int slot, int64_t new_length) {
    Slot& s = const_cast<Slot&>(slot_at(slot));
    GRIDLM_ASSERT(new_length >= 0 && new_length <= s.length);
    s.length = new_length;
    s.reserved = new_length;
}

}  // namespace gridlm
