// Residual add: x += y.
#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/parallel.h"

namespace gridlm::cpu {

namespace {
// Below this many floats (~17 us on one thread here) the op runs on the calling thread: the
// handoff to the team costs a few us, tens when its threads sleep (docs/engine.md, "Threads").
constexpr int64_t add_min_parallel = 131072;
}  // namespace

// x, y: [n]
void add(const CpuContext& ctx, float* x, const float* y, int64_t n) {
    parallel_ranges(ctx, n, add_min_parallel, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x[i] += y[i];
    });
}

}  // namespace gridlm::cpu
