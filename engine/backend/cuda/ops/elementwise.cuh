// Launch geometry of the grid-stride CUDA kernels: a function of the element count only, so a
// launch captured in a CUDA graph stays valid when the buffers' contents change.
#pragma once

#include <algorithm>
#include <cstdint>

namespace gridlm::cuda {

constexpr int ew_threads = 256;  // threads per block
// Enough resident blocks to fill an H100 / A100 several times over; larger calls loop.
constexpr int64_t ew_max_blocks = 8192;

// Blocks for `work` items handled one per thread in a grid-stride loop (at least 1).
inline unsigned ew_blocks(int64_t work) {
    return (unsigned)std::clamp<int64_t>((work + ew_threads - 1) / ew_threads, 1, ew_max_blocks);
}

// True when p is aligned to `bytes` (a power of two).
inline bool is_aligned(const void* p, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

}  // namespace gridlm::cuda
