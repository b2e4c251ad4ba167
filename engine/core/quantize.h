// Reference quantisers: f32 rows -> the GGUF block types of engine/core/dtype.h (the inverse of
// engine/core/quant_blocks.h's dequantize_row), and f32 -> f16 / bf16 / f32 for the plain types.
//
// Sources of the formulas (each is restated in words next to its code in quantize.cpp):
//  - q8_0, q4_0, q4_1, q5_0, q5_1: round-to-nearest with one scale per 32-value block taken from
//    the block's largest-magnitude value (q8_0, q4_0, q5_0) or from its range (q4_1, q5_1), as
//    ggml's reference quantize_row_*_ref define them and the `gguf` Python package (gguf.quants)
//    restates them.
//  - q4_k, q5_k: 8 sub-blocks of 32 values, each fitted as x ~ scale * q - min by a weighted
//    least-squares search over 21 (q4_k) / 16 (q5_k) trial scales, then the sub-block scales and
//    mins quantised to 6 bits against two f16 super-block scales (ggml's quantize_row_q4_K_ref /
//    q5_K_ref with make_qkx2_quants, no importance matrix).
//  - q6_k: 16 sub-blocks of 16 values, each fitted as x ~ scale * q (q in -32..31) by a search
//    over 19 trial scales weighted by x^2, then the scales quantised to int8 against one f16
//    super-block scale (ggml's quantize_row_q6_K_ref with make_qx_quants).
// The float arithmetic follows those definitions operation by operation (no fused multiply-add),
// so every block is byte-identical to what llama.cpp's ggml_quantize_chunk (without an importance
// matrix) and, for the legacy types, gguf.quants.quantize make of the same values:
// tests/unit/test_quantize.cpp checks golden/quant_blocks.json, made with both by
// tests/reference/make_quant_golden.py.
#pragma once

#include <cstdint>

#include "engine/core/dtype.h"

namespace gridlm {

// Quantises the n values src[0..n) into dst: n / block_size whole blocks of `type` back to back
// (row_bytes(type, n) bytes; dst needs no alignment). Plain types: f32 is copied, f16 and bf16 are
// rounded to nearest even (f16 overflow gives +-inf; callers that care check first).
// Throws gridlm::Error when n is negative or not a multiple of the type's block size, or, for a
// block type, when a value is not finite (names the index and value).
void quantize_row(DType type, const float* src, void* dst, int64_t n);

}  // namespace gridlm
