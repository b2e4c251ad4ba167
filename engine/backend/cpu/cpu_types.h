// The CPU backend's kernels per weight type, in one table indexed by DType (as ggml's
// type_traits_cpu): ops look a weight's kernels up here and never branch on its type.
#pragma once

#include <cstdint>

#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

// Widens the n values of one row (n a whole number of blocks) to f32.  row: [n] of the type; dst: [n]
using ToFloatRowFn = void (*)(const void* row, float* dst, int64_t n);
// Rows [r0, r1) of y = x w^T (+ bias) for any n >= 1 tokens, on the calling thread; each output is
// computed the same way whatever n is (bitwise batch-invariant, ops/matmul.cpp).
// x: [n, w.cols]; bias: [w.rows] or nullptr; y: [n, w.rows]
using GemvFn = void (*)(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0,
                        int64_t r1);

// A null kernel is one the CPU backend does not provide for the type (yet). Block-quantised types
// multiply through their integer kernels (quant/quant_kernels.h) instead of gemv / gemm.
struct CpuTypeTraits {
    DType type;
    ToFloatRowFn to_float_row;
    GemvFn gemv;  // float types: tiles of up to 4 rows x 4 tokens

    bool has_matmul() const;
};

const CpuTypeTraits& cpu_type_traits(DType type);

// The kernels behind the table (ops/matmul.cpp): weights of their type, rows w.stride() bytes apart.
void gemv_f32(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1);
void gemv_bf16(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1);
void gemv_f16(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1);

// Each outs[o].y = x outs[o].w^T (+ bias) for block-quantised weights (ops/matmul_quant.cpp): x is
// quantised once per activation format, then all outputs' row blocks share one parallel run.
// x: [n, cols]; every outs[o].w has a quant_kernels() entry.
void matmul_quant(const CpuContext& ctx, const float* x, int64_t n, const MatmulOut* outs, int64_t n_outs);

}  // namespace gridlm::cpu
