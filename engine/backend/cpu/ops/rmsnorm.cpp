// RMSNorm over rows in fp32 (the sum of squares accumulates in double: rows are short and
// this keeps the op bit-stable across SIMD and scalar paths to within one rounding).
#include <cmath>

#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

// x, out: [n_rows, n_cols]; w: [n_cols]. out may alias x.
void rmsnorm(const CpuContext& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps,
             float* out) {
#pragma omp parallel for num_threads(ctx.n_threads) schedule(static) if (n_rows > 1)
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * n_cols;
        float* yr = out + r * n_cols;
        double ss = 0.0;
        for (int64_t i = 0; i < n_cols; ++i) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / std::sqrt(ss / (double)n_cols + (double)eps));
        for (int64_t i = 0; i < n_cols; ++i) yr[i] = (xr[i] * scale) * w[i];
    }
}

}  // namespace gridlm::cpu
