// RMSNorm over rows in fp32 (the sum of squares accumulates in double: rows are short and
// this keeps the op bit-stable across SIMD and scalar paths to within one rounding).
#include <algorithm>
#include <cmath>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/parallel.h"

namespace gridlm::cpu {

namespace {
// Below this many elements (~16 us on one thread here; a decode step of a few tokens) the rows
// run on the calling thread: the handoff to the team costs a few us, tens when its threads sleep
// (docs/engine.md, "Threads").
constexpr int64_t rmsnorm_min_parallel = 16384;
}  // namespace

// x, out: [n_rows, n_cols]; w: [n_cols]. out may alias x.
void rmsnorm(const CpuContext& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps,
             float* out) {
    const auto row = [&](int64_t r) {
        const float* xr = x + r * n_cols;
        float* yr = out + r * n_cols;
        double ss = 0.0;
        for (int64_t i = 0; i < n_cols; ++i) ss += (double)xr[i] * xr[i];
        const float scale = (float)(1.0 / std::sqrt(ss / (double)n_cols + (double)eps));
        for (int64_t i = 0; i < n_cols; ++i) yr[i] = (xr[i] * scale) * w[i];
    };
    const int64_t min_rows = std::max<int64_t>(2, rmsnorm_min_parallel / std::max<int64_t>(n_cols, 1));
    parallel_for(ctx, n_rows, row, min_rows);
}

}  // namespace gridlm::cpu
