// Rotary position embedding, "rotate-half" layout (HF Llama / Qwen2): element i of a head pairs
// with element i + head_dim/2. Angles come from a per-batch table shared by every layer.
#include <algorithm>
#include <cmath>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/parallel.h"

namespace gridlm::cpu {

namespace {
// Below this many elements (~12 us on one thread here) the tokens run on the calling thread: the
// handoff to the team costs a few us, tens when its threads sleep (docs/engine.md, "Threads").
constexpr int64_t rope_min_parallel = 65536;
constexpr int64_t rope_table_min_tokens = 8;  // a token is head_dim/2 pow, cos and sin (~1.3 us)
}  // namespace

// pos: [n]; cs: [n, head_dim] = cos for the first head_dim/2 entries, then sin.
void rope_table(const CpuContext& ctx, const int32_t* pos, int64_t n, int64_t head_dim, double theta, float* cs) {
    const int64_t half = head_dim / 2;
    const auto token = [&](int64_t t) {
        for (int64_t i = 0; i < half; ++i) {
            // Angles in double: at position 30k a float angle would already be off by ~1e-3 rad.
            const double inv_freq = std::pow(theta, -2.0 * (double)i / (double)head_dim);
            const double a = (double)pos[t] * inv_freq;
            cs[t * head_dim + i] = (float)std::cos(a);
            cs[t * head_dim + half + i] = (float)std::sin(a);
        }
    };
    parallel_for(ctx, n, token, rope_table_min_tokens);
}

// x: [n, n_heads, head_dim], rotated in place; cs: [n, head_dim]
void rope(const CpuContext& ctx, float* x, const float* cs, int64_t n, int64_t n_heads, int64_t head_dim) {
    const int64_t half = head_dim / 2;
    const auto token = [&](int64_t t) {
        const float* c = cs + t * head_dim;
        const float* s = c + half;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x + (t * n_heads + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    };
    const int64_t min_tokens = std::max<int64_t>(2, rope_min_parallel / std::max<int64_t>(n_heads * head_dim, 1));
    parallel_for(ctx, n, token, min_tokens);
}

}  // namespace gridlm::cpu
