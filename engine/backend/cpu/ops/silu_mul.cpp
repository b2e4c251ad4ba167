// SwiGLU gate: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#include <cmath>

#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

// gate, up, out: [n] (out may alias gate or up)
void silu_mul(const CpuContext& ctx, const float* gate, const float* up, int64_t n, float* out) {
#pragma omp parallel for num_threads(ctx.n_threads) schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

}  // namespace gridlm::cpu
