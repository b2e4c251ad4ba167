// Linear layers y = x W^T (+ bias) with block-quantised W (quant/quant_kernels.h). The input is
// quantised once per call and activation format (blocks of 32 for the q4_0..q8_0 family, 256 for
// the K-quants), then the row blocks of every output form one index space that the threads split
// in contiguous runs, each streaming its stretch of the weights once for all n tokens.
#include <algorithm>
#include <vector>

#include "engine/backend/cpu/cpu_types.h"
#include "engine/backend/cpu/parallel.h"
#include "engine/backend/cpu/quant/quant_kernels.h"

namespace gridlm::cpu {

namespace {

// Weight rows per task. The kernels tile rows x tokens inside a task.
constexpr int64_t rows_per_task = 16;
// Below this many tokens the input is quantised on the calling thread (a dispatch costs more).
constexpr int64_t parallel_quantize_tokens = 8;

// The quantised input of one activation format: n rows of `stride` bytes.
struct QuantInput {
    int64_t act_block = 0;
    int64_t stride = 0;
    std::vector<uint8_t> bytes;
};

}  // namespace

void matmul_quant(const CpuContext& ctx, const float* x, int64_t n, const MatmulOut* outs, int64_t n_outs) {
    if (n <= 0 || n_outs <= 0) return;
    const Isa isa = best_isa();
    const int64_t cols = outs[0].w.cols;
    // Two formats at most; the buffers live with the calling thread and grow to the largest call.
    thread_local QuantInput inputs[2];
    std::vector<const QuantKernels*> kernels((size_t)n_outs);
    std::vector<const QuantInput*> input_of((size_t)n_outs);
    std::vector<int64_t> first((size_t)n_outs + 1, 0);
    bool made[2] = {false, false};
    for (int64_t o = 0; o < n_outs; ++o) {
        const Weight& w = outs[o].w;
        const QuantKernels* k = quant_kernels(w.dtype, isa);
        if (!k) throw Error(str("matmul: no ", isa_name(isa), " kernel for ", dtype_name(w.dtype), " weights"));
        if (w.cols != cols || cols % k->act_block != 0)
            throw Error(str("matmul: a ", dtype_name(w.dtype), " weight of ", w.cols,
                            " columns does not fit an input of ", cols, " values in blocks of ", k->act_block));
        const int f = k->act_block == 32 ? 0 : 1;
        QuantInput& in = inputs[f];
        if (!made[f]) {
            made[f] = true;
            in.act_block = k->act_block;
            in.stride = cols / k->act_block * k->act_block_bytes;
            if (in.bytes.size() < (size_t)(n * in.stride)) in.bytes.resize((size_t)(n * in.stride));
            uint8_t* dst = in.bytes.data();
            const int64_t stride = in.stride;
            const QuantizeActFn quantize = k->quantize_act;
            if (n < parallel_quantize_tokens) {
                for (int64_t t = 0; t < n; ++t) quantize(x + t * cols, dst + t * stride, cols);
            } else {
                parallel_for(ctx, n, [&](int64_t t) { quantize(x + t * cols, dst + t * stride, cols); });
            }
        }
        GRIDLM_ASSERT(in.act_block == k->act_block);
        kernels[o] = k;
        input_of[o] = &in;
        first[o + 1] = first[o] + (w.rows + rows_per_task - 1) / rows_per_task;
    }
    parallel_for(ctx, first[n_outs], [&](int64_t b) {
        int64_t o = 0;
        while (b >= first[o + 1]) ++o;
        const MatmulOut& m = outs[o];
        const int64_t r0 = (b - first[o]) * rows_per_task, r1 = std::min(m.w.rows, r0 + rows_per_task);
        const QuantInput& in = *input_of[o];
        kernels[o]->matmul(m.w, in.bytes.data(), in.stride, n, m.y, m.w.rows, r0, r1);
        if (m.bias)
            for (int64_t t = 0; t < n; ++t)
                for (int64_t r = r0; r < r1; ++r) m.y[t * m.w.rows + r] += m.bias[r];
    });
}

}  // namespace gridlm::cpu
