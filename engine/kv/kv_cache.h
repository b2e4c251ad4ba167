// Per-sequence KV cache behind an interface: the model asks for room, a per-layer view of a
// sequence's blocks, and then commits the new length. BlockKvCache hands out fixed-size blocks
// from a pool on demand; a paged cache with shared prefixes can implement the same interface.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/dtype.h"
#include "engine/core/model_config.h"

namespace gridlm {

// What one token occupies in the cache, per layer: a K row and a V row (elements of dtype).
// Llama-style GQA layers store n_head_kv * head_dim each; a latent (MLA) layer stores one
// k_row-wide row and no V row (v_row == 0), its V being read from the K row (KvSeqView::v).
// dtype is f32, bf16 or f16 (kv_dtype_supported, backend.h): bf16 and f16 halve the cache's bytes.
struct KvLayout {
    int64_t n_layer = 0;
    int64_t k_row = 0;
    int64_t v_row = 0;
    DType dtype = DType::dtype_f32;

    // K and V rows of n_head_kv * head_dim (Llama, Qwen2), for config's layers; f32.
    static KvLayout gqa(const ModelConfig& config) {
        return {config.n_layer, config.n_head_kv * config.head_dim, config.n_head_kv * config.head_dim};
    }
    // Elements one token takes over all layers, and their bytes.
    int64_t values_per_token() const { return n_layer * (k_row + v_row); }
    int64_t bytes_per_token() const { return values_per_token() * (int64_t)dtype_size(dtype); }
};

class KvCache {
public:
    virtual ~KvCache() = default;
    // Sequence slots are numbered 0 .. n_slots() - 1; a ForwardBatch names them.
    virtual int n_slots() const = 0;
    // Tokens already stored for the slot (the position of its next token).
    virtual int64_t length(int slot) const = 0;
    // Most tokens one slot may hold.
    virtual int64_t max_length() const = 0;
    // Makes room for n_new more tokens; throws gridlm::Error when the slot would exceed max_length.
    // Views taken before a reserve may be invalidated by it.
    virtual void reserve(int slot, int64_t n_new) = 0;
    // The slot's blocks for one layer (valid until the next reserve / clear).
    virtual KvSeqView view(int slot, int layer) const = 0;
    // Marks n_new reserved tokens as stored (after the model wrote them).
    virtual void commit(int slot, int64_t n_new) = 0;
    // Forgets the slot's tokens and returns its blocks to the pool (the slot can be reused).
    virtual void clear(int slot) = 0;
    // Drops tokens beyond new_length (e.g. to re-run a prompt's last token); keeps the blocks.
    virtual void truncate(int slot, int64_t new_length) = 0;

    // Block accounting for a scheduler. Every rank of a replica makes the same calls in the same
    // order, so all of them see the same numbers whatever their layers and heads.
    virtual int64_t block_size() const = 0;
    // Blocks a reserve may still take: unused, never allocated within the budget, or holding a
    // cached prefix nobody uses (those are evicted, least recently used first).
    virtual int64_t free_blocks() const = 0;
    // New blocks reserve(slot, n_new) would take.
    virtual int64_t blocks_needed(int slot, int64_t n_new) const = 0;
    // Prefix reuse. attach_prefix points an empty slot at cached full blocks that hold the first
    // tokens of `tokens` (never all of them: the last token is left to compute) and returns how
    // many tokens the slot now has. publish_prefix makes the slot's full blocks that hold
    // tokens[0 .. n) attachable by later sequences; call it once the model has written them.
    virtual int64_t attach_prefix(int slot, std::span<const int32_t> tokens) = 0;
    virtual void publish_prefix(int slot, std::span<const int32_t> tokens) = 0;
};

// Keys/values of layout.dtype in blocks of block_size positions, each block holding every layer's
// K and V (block_bytes() = block_size * layout.bytes_per_token()). The constructor throws
// gridlm::Error for non-positive sizes, an empty layout or an unsupported dtype.
class BlockKvCache final : public KvCache {
public:
    BlockKvCache(Backend& backend, const KvLayout& layout, int n_slots, int64_t max_length, int64_t block_size = 64);
    // The GQA layout of config (KvLayout::gqa).
    BlockKvCache(Backend& backend, const ModelConfig& config, int n_slots, int64_t max_length, int64_t block_size = 64)
        : BlockKvCache(backend, KvLayout::gqa(config), n_slots, max_length, block_size) {}
    ~BlockKvCache() override;
    BlockKvCache(const BlockKvCache&) = delete;
    BlockKvCache& operator=(const BlockKvCache&) = delete;

    int n_slots() const override { return (int)slots_.size(); }
    int64_t length(int slot) const override;
    int64_t max_length() const override { return max_length_; }
    void reserve(int slot, int64_t n_new) override;
    KvSeqView view(int slot, int layer) const override;
    void commit(int slot, int64_t n_new) override;
    void clear(int slot) override;
    void truncate(int slot, int64_t new_length) override;

    int64_t block_size() const override { return block_size_; }
    int64_t free_blocks() const override;
    int64_t blocks_needed(int slot, int64_t n_new) const override;
    int64_t attach_prefix(int slot, std::span<const int32_t> tokens) override;
    void publish_prefix(int slot, std::span<const int32_t> tokens) override;

    // At most this many blocks in all (0: no limit, blocks are allocated as needed).
    void set_max_blocks(int64_t n) { max_blocks_ = n; }
    int64_t max_blocks() const { return max_blocks_; }
    int64_t block_bytes() const { return block_bytes_; }
    DType dtype() const { return layout_.dtype; }
    int64_t blocks_allocated() const { return (int64_t)all_blocks_.size(); }
    int64_t blocks_in_use() const;  // held by at least one slot
    int64_t prefix_tokens_reused() const { return prefix_reused_; }
    int64_t prefix_hits() const { return prefix_hits_; }  // sequences that reused a cached prefix

private:
    struct Slot {
        int64_t length = 0;
        int64_t reserved = 0;
        std::vector<uint8_t*> blocks;  // [ceil(reserved / block_size)]
    };
    struct BlockInfo {
        int refs = 0;
        bool cached = false;                // holds a published prefix (in cached_)
        uint64_t hash = 0;                  // of the tokens up to the end of this block
        std::list<uint8_t*>::iterator lru;  // in evictable_ when cached and unreferenced
    };
    const Slot& slot_at(int slot) const;
    uint8_t* take_block();
    void release(uint8_t* b);

    Backend& backend_;
    KvLayout layout_;
    int64_t block_size_, max_length_, block_bytes_;
    int64_t max_blocks_ = 0;
    int64_t prefix_reused_ = 0;
    int64_t prefix_hits_ = 0;
    std::vector<Slot> slots_;
    std::vector<uint8_t*> free_blocks_;  // allocated, holding nothing
    std::vector<uint8_t*> all_blocks_;
    std::unordered_map<uint8_t*, BlockInfo> info_;
    std::unordered_map<uint64_t, uint8_t*> cached_;  // prefix hash -> block
    std::list<uint8_t*> evictable_;                  // cached, unreferenced; least recently used first
};

}  // namespace gridlm
