// Sets that grow with the number of records of a job, kept small: a job of 10 million records
// must not spend gigabytes on bookkeeping.
//   IndexSet   record indices (0-based positions in the input, dense): one bit each.
//   Hash64Set  64-bit hashes (of record ids): open addressing, 8 bytes a slot, at most 3/4 full.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gridlm {

class IndexSet {
public:
    size_t count(uint64_t i) const {
        const size_t w = (size_t)(i >> 6);
        return w < words_.size() && (words_[w] >> (i & 63) & 1) ? 1 : 0;
    }
    // True when `i` was not in the set.
    bool insert(uint64_t i) {
        const size_t w = (size_t)(i >> 6);
        if (w >= words_.size()) words_.resize(w + 1 + w / 2, 0);  // grows geometrically
        const uint64_t bit = uint64_t{1} << (i & 63);
        if (words_[w] & bit) return false;
        words_[w] |= bit;
        ++size_;
        return true;
    }
    template <class It>
    void insert(It first, It last) {
        for (; first != last; ++first) insert((uint64_t)*first);
    }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    void clear() {
        words_.clear();
        size_ = 0;
    }

private:
    std::vector<uint64_t> words_;
    size_t size_ = 0;
};

class Hash64Set {
public:
    // True when `h` was not in the set.
    bool insert(uint64_t h) {
        if ((size_ + 1) * 4 > slots_.size() * 3) grow();
        if (h == 0) {  // 0 marks an empty slot: kept apart
            if (has_zero_) return false;
            has_zero_ = true;
            ++size_;
            return true;
        }
        const size_t mask = slots_.size() - 1;
        for (size_t i = (size_t)mix(h) & mask;; i = (i + 1) & mask) {
            if (slots_[i] == h) return false;
            if (slots_[i] == 0) {
                slots_[i] = h;
                ++size_;
                return true;
            }
        }
    }
    size_t count(uint64_t h) const {
        if (h == 0) return has_zero_ ? 1 : 0;
        if (slots_.empty()) return 0;
        const size_t mask = slots_.size() - 1;
        for (size_t i = (size_t)mix(h) & mask;; i = (i + 1) & mask) {
            if (slots_[i] == h) return 1;
            if (slots_[i] == 0) return 0;
        }
    }
    size_t size() const { return size_; }

private:
    static uint64_t mix(uint64_t x) {  // the hashes may be weak in their low bits
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        return x ^ (x >> 33);
    }
    void grow() {
        std::vector<uint64_t> old;
        old.swap(slots_);
        slots_.assign(old.empty() ? 64 : old.size() * 2, 0);
        for (uint64_t h : old) {
            if (h == 0) continue;
            const size_t mask = slots_.size() - 1;
            size_t i = (size_t)mix(h) & mask;
            while (slots_[i] != 0) i = (i + 1) & mask;
            slots_[i] = h;
        }
    }
    std::vector<uint64_t> slots_;
    size_t size_ = 0;
    bool has_zero_ = false;
};

}  // namespace gridlm
