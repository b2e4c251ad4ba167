// SwiGLU gate: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#include <cmath>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/parallel.h"

namespace gridlm::cpu {

namespace {
// Below this many elements (~30 us on one thread here) the op runs on the calling thread: the
// handoff to the team costs a few us, tens when its threads sleep (docs/engine.md, "Threads").
constexpr int64_t silu_mul_min_parallel = 8192;
}  // namespace

// gate, up, out: [n] (out may alias gate or up)
void silu_mul(const CpuContext& ctx, const float* gate, const float* up, int64_t n, float* out) {
    parallel_ranges(ctx, n, silu_mul_min_parallel, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            const float g = gate[i];
            out[i] = g / (1.0f + std::exp(-g)) * up[i];
        }
    });
}

}  // namespace gridlm::cpu
