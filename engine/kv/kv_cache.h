// Per-sequence KV cache behind an interface: the model asks for room, a per-layer view of a
// sequence's blocks, and then commits the new length. BlockKvCache hands out fixed-size blocks
// from a pool on demand; a paged cache with shared prefixes can implement the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/model_config.h"

namespace gridlm {

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
};

// f32 keys/values in blocks of block_size positions, each block holding every layer's K and V.
class BlockKvCache final : public KvCache {
public:
    BlockKvCache(Backend& backend, const ModelConfig& config, int n_slots, int64_t max_length, int64_t block_size = 64);
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

    int64_t block_bytes() const { return block_floats_ * (int64_t)sizeof(float); }
    int64_t blocks_allocated() const { return (int64_t)all_blocks_.size(); }

private:
    struct Slot {
        int64_t length = 0;
        int64_t reserved = 0;
        std::vector<float*> blocks;  // [ceil(reserved / block_size)]
    };
    const Slot& slot_at(int slot) const;

    Backend& backend_;
    int64_t n_layer_, row_, block_size_, max_length_, block_floats_;
    std::vector<Slot> slots_;
    std::vector<float*> free_blocks_;
    std::vector<float*> all_blocks_;
};

}  // namespace gridlm
