// Residual add: x += y.
#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

// x, y: [n]
void add(const CpuContext& ctx, float* x, const float* y, int64_t n) {
#pragma omp parallel for simd num_threads(ctx.n_threads) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace gridlm::cpu
