// Embedding lookup: copies (widening to f32) one table row per token id.
#include <algorithm>
#include <cstring>

#include "engine/backend/cpu/cpu_ops.h"
#include "engine/backend/cpu/cpu_types.h"
#include "engine/backend/cpu/parallel.h"

namespace gridlm::cpu {

namespace {
// Below this many output floats (~10 us of row copies on one thread) the rows are copied on the
// calling thread: the handoff to the team costs a few us, tens when its threads sleep
// (docs/engine.md, "Threads").
constexpr int64_t embedding_min_parallel = 65536;
}  // namespace

// table: [rows, n_embd] holding ids [id0, id0 + rows); ids: [n]; out: [n, n_embd]
void embedding(const CpuContext& ctx, const Weight& table, int64_t id0, const int32_t* ids, int64_t n, float* out) {
    const int64_t d = table.cols;
    for (int64_t t = 0; t < n; ++t) {
        if (ids[t] < 0) throw Error(str("token id ", ids[t], " is negative"));
    }
    const ToFloatRowFn to_float_row = cpu_type_traits(table.dtype).to_float_row;
    if (!to_float_row)
        throw Error(str("embedding: ", dtype_name(table.dtype),
                        " tables are not supported by the CPU backend yet (use f32, bf16 or f16)"));
    const int64_t stride = table.stride();
    const auto token = [&](int64_t t) {
        float* dst = out + t * d;
        const int64_t row = ids[t] - id0;
        if (row < 0 || row >= table.rows) {  // another rank's shard of the vocabulary
            std::memset(dst, 0, d * sizeof(float));
            return;
        }
        to_float_row(static_cast<const uint8_t*>(table.data) + row * stride, dst, d);
    };
    parallel_for(ctx, n, token, std::max<int64_t>(2, embedding_min_parallel / std::max<int64_t>(d, 1)));
}

}  // namespace gridlm::cpu
