// Unit tests of the per-record sets (engine/core/compact_sets.h) against std::unordered_set.
#include <gtest/gtest.h>

#include <random>
#include <unordered_set>

#include "engine/core/compact_sets.h"

using namespace gridlm;

TEST(CompactSets, IndexSetMatchesAStdSet) {
    IndexSet s;
    std::unordered_set<uint64_t> ref;
    std::mt19937_64 rng(3);
    for (int i = 0; i < 20000; ++i) {
        const uint64_t x = rng() % 50000;
        EXPECT_EQ(s.insert(x), ref.insert(x).second);
    }
    EXPECT_EQ(s.size(), ref.size());
    for (uint64_t x = 0; x < 60000; ++x) ASSERT_EQ(s.count(x), ref.count(x)) << x;
    const std::vector<uint64_t> more = {70000, 0, 63, 64};
    s.insert(more.begin(), more.end());
    EXPECT_EQ(s.count(70000), 1u);
    EXPECT_EQ(s.count(69999), 0u);
}

TEST(CompactSets, Hash64SetMatchesAStdSet) {
    Hash64Set s;
    std::unordered_set<uint64_t> ref;
    std::mt19937_64 rng(5);
    for (int i = 0; i < 200000; ++i) {
        // Small values repeat often; 0 (the empty-slot mark) and sequential values are in the mix.
        const uint64_t x = i % 3 == 0 ? rng() : i % 3 == 1 ? rng() % 1000 : (uint64_t)i;
        EXPECT_EQ(s.insert(x), ref.insert(x).second);
    }
    EXPECT_EQ(s.insert(0), ref.insert(0).second);
    EXPECT_FALSE(s.insert(0));
    EXPECT_EQ(s.size(), ref.size());
    for (uint64_t x : ref) ASSERT_EQ(s.count(x), 1u);
    std::mt19937_64 other(99);
    for (int i = 0; i < 1000; ++i) {
        const uint64_t x = other();
        EXPECT_EQ(s.count(x), ref.count(x));
    }
}
