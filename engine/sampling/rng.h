// Deterministic per-sequence random numbers and seed derivation for sampling. Implemented here
// (not <random> distributions) so outputs are identical across standard libraries.
#pragma once

#include <cstdint>
#include <string_view>

#include "engine/core/hash.h"

namespace gridlm {

// Seed of a request: its own when given, else derived from the job seed and the record id, so
// a record's output depends on neither its position in the file nor its batch neighbours.
inline uint64_t request_seed(const uint64_t* own_seed, std::string_view id, uint64_t job_seed) {
    if (own_seed) return *own_seed;
    return splitmix64(job_seed ^ splitmix64(fnv1a64(id)));
}

// Seed of choice i of a request: choice 0 uses the request seed itself (so n=1 and the first
// of n>1 agree); the others get independent derived streams.
inline uint64_t choice_seed(uint64_t seed, int32_t choice) {
    if (choice == 0) return seed;
    return splitmix64(seed ^ splitmix64(0x5eed0000ull + (uint64_t)choice));
}

// xoshiro256** seeded through splitmix64.
class Rng {
public:
    explicit Rng(uint64_t seed) {
        for (auto& w : s_) {
            seed += 0x9e3779b97f4a7c15ull;
            w = splitmix64(seed);
        }
    }
    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return (double)(next() >> 11) * 0x1.0p-53; }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t s_[4];
};

}  // namespace gridlm
