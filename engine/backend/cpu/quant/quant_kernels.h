// Integer matmul kernels for block-quantised weights (the GGUF block types of engine/core/dtype.h).
// A matmul quantises its input x once, per token row, to 8-bit activation blocks; every weight
// block is then multiplied with integer dot products and scaled in float:
//
//   y[t, r] = sum over blocks b of  d_w(b) * d_x(b) * sum_i q_w(b, i) * q_x(b, i)   (+ min terms)
//
// Each weight type has one scalar reference kernel and SIMD variants (AVX2, AVX-512 VNNI) chosen
// at run time from the CPU's features; tests check every variant the machine runs against the
// scalar one. Internal to engine/backend/cpu.
#pragma once

#include <cstdint>

#include "engine/backend/backend.h"
#include "engine/core/dtype.h"

namespace gridlm::cpu {

// Instruction sets a kernel variant may use, in increasing order.
enum class Isa : uint8_t {
    scalar,      // portable C++
    avx2,        // AVX2 + FMA + F16C (vpmaddubsw / vpmaddwd)
    avx512vnni,  // AVX-512 F/BW/VL/DQ + VNNI (vpdpbusd)
};
const char* isa_name(Isa isa);
// Whether this CPU runs the variant (cpuid), and the build compiled it in.
bool isa_supported(Isa isa);
// The best supported ISA, or scalar when simd_enabled() is false (cpu-scalar backend, tests).
Isa best_isa();

// Activation blocks. Value i of a block is d * qs[i]; qs[i] = round-half-even(x[i] / d) with
// d = max|x| / 127 over the block (d = 0 and qs = 0 for an all-zero block). Every ISA variant
// of a quantiser produces bit-identical blocks.
struct ActQ8x32 {  // for q4_0, q4_1, q5_0, q5_1, q8_0 weights (blocks of 32)
    float d;
    float s;  // d * sum(qs): the offset term of q4_1 / q5_1
    int8_t qs[32];
};
struct ActQ8x256 {  // for q4_k, q5_k, q6_k weights (super-blocks of 256)
    float d;
    int16_t bsums[16];  // bsums[j] = sum of qs[16 j .. 16 j + 15]
    int8_t qs[256];
};

// Quantises one row of n values (n a whole number of activation blocks) into n / block blocks.
// x: [n] f32; out: [n / block] ActQ8x32 or ActQ8x256
using QuantizeActFn = void (*)(const float* x, void* out, int64_t n);

// Rows [r0, r1) of y = x w^T for n >= 1 tokens on the calling thread, x given as its activation
// blocks: token t's blocks start at byte t * xq_stride of xq. Several tokens share each load of a
// weight block (tiles of rows x tokens), so a call with many tokens is GEMM-shaped.
// w: [rows, cols] of the kernel's type, rows w.stride() bytes apart; y: [n, ld_y], writes
// y[t * ld_y + r] for r in [r0, r1), t in [0, n).
using QuantMatmulFn = void (*)(const Weight& w, const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y,
                               int64_t r0, int64_t r1);

// The plain arguments of one QuantMatmulFn call, so SIMD entry points take no class types. Row r
// of the weight at w + r * w_stride, nb blocks (of the weight type) per row; token t's activation
// blocks at xq + t * xq_stride; writes y[t * ld_y + r] for r in [r0, r1), t in [0, n).
struct QuantMatmulArgs {
    const uint8_t* w;
    int64_t w_stride;
    int64_t nb;
    const uint8_t* xq;
    int64_t xq_stride;
    int64_t n;
    float* y;
    int64_t ld_y;
    int64_t r0;
    int64_t r1;
};

// Checks a call's arguments against the kernel's weight type and activation block size (throws
// gridlm::Error for a weight of another type or a row that is not whole blocks) and flattens them.
QuantMatmulArgs quant_matmul_args(DType type, int64_t act_block, int64_t act_block_bytes, const Weight& w,
                                  const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y, int64_t r0,
                                  int64_t r1);

struct QuantKernels {
    DType type;                  // the weight type
    int64_t act_block;           // 32 (ActQ8x32) or 256 (ActQ8x256)
    int64_t act_block_bytes;     // sizeof the activation block
    QuantizeActFn quantize_act;  // x -> activation blocks
    QuantMatmulFn matmul;        // weight rows x quantised tokens
};

// The kernels of a block-quantised weight type in one ISA's variant; nullptr when the type has no
// integer kernels or the variant is not built. The caller picks isa (isa_supported must hold).
const QuantKernels* quant_kernels(DType type, Isa isa);

// The two kernel families behind quant_kernels (quant_legacy*.cpp: q4_0 q4_1 q5_0 q5_1 q8_0;
// quant_kquants*.cpp: q4_k q5_k q6_k); nullptr for types outside their family.
const QuantKernels* quant_kernels_legacy(DType type, Isa isa);
const QuantKernels* quant_kernels_kquants(DType type, Isa isa);

}  // namespace gridlm::cpu
