// Embedding lookup: copies (widening to f32) one table row per token id.
#include <cstring>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/simd.h"

namespace gridlm::cpu {

// table: [rows, n_embd] holding ids [id0, id0 + rows); ids: [n]; out: [n, n_embd]
void embedding(const CpuContext& ctx, const Weight& table, int64_t id0, const int32_t* ids, int64_t n, float* out) {
    const int64_t d = table.cols;
    for (int64_t t = 0; t < n; ++t) {
        if (ids[t] < 0) throw Error(str("token id ", ids[t], " is negative"));
    }
#pragma omp parallel for num_threads(ctx.n_threads) schedule(static) if (n > 1)
    for (int64_t t = 0; t < n; ++t) {
        float* dst = out + t * d;
        const int64_t row = ids[t] - id0;
        if (row < 0 || row >= table.rows) {  // another rank's shard of the vocabulary
            std::memset(dst, 0, d * sizeof(float));
            continue;
        }
        switch (table.dtype) {
            case DType::dtype_f32:
                std::memcpy(dst, static_cast<const float*>(table.data) + row * d, d * sizeof(float));
                break;
            case DType::dtype_bf16:
                bf16_to_f32_row(static_cast<const uint16_t*>(table.data) + row * d, dst, d);
                break;
            case DType::dtype_f16: {
                const uint16_t* src = static_cast<const uint16_t*>(table.data) + row * d;
                for (int64_t i = 0; i < d; ++i) dst[i] = f16_to_f32(src[i]);
                break;
            }
        }
    }
}

}  // namespace gridlm::cpu
