// Embedding lookup: copies (widening to f32) one table row per token id.
#include <cstring>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/simd.h"

namespace gridlm::cpu {

// table: [n_vocab, n_embd]; ids: [n]; out: [n, n_embd]
void embedding(const CpuContext& ctx, const Weight& table, const int32_t* ids, int64_t n, float* out) {
    const int64_t d = table.cols;
    for (int64_t t = 0; t < n; ++t) {
        if (ids[t] < 0 || ids[t] >= table.rows)
            throw Error(str("token id ", ids[t], " is outside the vocabulary (", table.rows, " tokens)"));
    }
#pragma omp parallel for num_threads(ctx.n_threads) schedule(static) if (n > 1)
    for (int64_t t = 0; t < n; ++t) {
        float* dst = out + t * d;
        switch (table.dtype) {
            case DType::dtype_f32:
                std::memcpy(dst, static_cast<const float*>(table.data) + ids[t] * d, d * sizeof(float));
                break;
            case DType::dtype_bf16:
                bf16_to_f32_row(static_cast<const uint16_t*>(table.data) + ids[t] * d, dst, d);
                break;
            case DType::dtype_f16: {
                const uint16_t* src = static_cast<const uint16_t*>(table.data) + ids[t] * d;
                for (int64_t i = 0; i < d; ++i) dst[i] = f16_to_f32(src[i]);
                break;
            }
        }
    }
}

}  // namespace gridlm::cpu
