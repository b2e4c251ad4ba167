// 64-bit hashes shared by the sampler (seed derivation) and io/ (record ids, output salts).
// splitmix64 is the finaliser of Steele, Lea and Flood's SplittableRandom (2014); FNV-1a is
// Fowler, Noll and Vo's hash with the 64-bit offset basis and prime.
#pragma once

#include <cstdint>
#include <string_view>

namespace gridlm {

// splitmix64 finaliser: a good 64-bit mixing function, used to derive seeds.
inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

inline uint64_t fnv1a64(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

}  // namespace gridlm
