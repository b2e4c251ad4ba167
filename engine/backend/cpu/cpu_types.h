// The CPU backend's kernels per weight type, in one table indexed by DType (as ggml's
// type_traits_cpu): ops look a weight's kernels up here and never branch on its type.
#pragma once

#include <cstdint>

#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

// Widens the n values of one row (n a whole number of blocks) to f32.  row: [n] of the type; dst: [n]
using ToFloatRowFn = void (*)(const void* row, float* dst, int64_t n);
// Rows [r0, r1) of y = x w^T (+ bias) for 1 <= n <= gemv_max_tokens tokens, on the calling thread.
// x: [n, w.cols]; bias: [w.rows] or nullptr; y: [n, w.rows]
using GemvFn = void (*)(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0,
                        int64_t r1);
// y = x w^T for any n on ctx.n_threads threads (the caller adds the bias).  x: [n, w.cols]; y: [n, w.rows]
using GemmFn = void (*)(const CpuContext& ctx, const float* x, const Weight& w, int64_t n, float* y);

// A null kernel is one the CPU backend does not provide for the type (yet). Block-quantised types
// multiply through their integer kernels (quant/quant_kernels.h) instead of gemv / gemm.
struct CpuTypeTraits {
    DType type;
    ToFloatRowFn to_float_row;
    GemvFn gemv;  // float types, few tokens: streams each weight row once
    GemmFn gemm;  // float types, many tokens: blocked GEMM

    bool has_matmul() const;
};

const CpuTypeTraits& cpu_type_traits(DType type);

// The kernels behind the table (ops/matmul.cpp): weights of their type, rows w.stride() bytes apart.
void gemv_f32(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1);
void gemv_bf16(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1);
void gemm_f32(const CpuContext& ctx, const float* x, const Weight& w, int64_t n, float* y);
void gemm_bf16(const CpuContext& ctx, const float* x, const Weight& w, int64_t n, float* y);
void gemv_f16(const float* x, const Weight& w, const float* bias, int64_t n, float* y, int64_t r0, int64_t r1);
void gemm_f16(const CpuContext& ctx, const float* x, const Weight& w, int64_t n, float* y);

// Each outs[o].y = x outs[o].w^T (+ bias) for block-quantised weights (ops/matmul_quant.cpp): x is
// quantised once per activation format, then all outputs' row blocks share one parallel run.
// x: [n, cols]; every outs[o].w has a quant_kernels() entry.
void matmul_quant(const CpuContext& ctx, const float* x, int64_t n, const MatmulOut* outs, int64_t n_outs);

}  // namespace gridlm::cpu
