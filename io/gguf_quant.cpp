// Block geometry of ggml types, and dequantisation of the GGUF types gridlm's weight-type table
// knows, through the engine core's block kernels (engine/core/quant_blocks.h).

#include "io/gguf_quant.h"

#include <algorithm>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/quant_blocks.h"

namespace gridlm {

namespace {

// Elements per K-quant super-block, as engine/core/dtype.h's table has it.
constexpr int64_t qk_k = dtype_block_size(DType::dtype_q4_k);

struct TypeEntry {
    uint32_t id;
    GgmlTypeTraits traits;
};

// The types gridlm's weight-type table knows (all of which dequantize() handles), with its sizes.
constexpr TypeEntry from_dtype(DType type) {
    const DTypeTraits& t = dtype_traits(type);
    return {t.gguf_id, {t.file_name, t.block_size, t.block_bytes, true}};
}

constexpr bool same_id(DType d, GgmlType g) { return dtype_traits(d).gguf_id == (uint32_t)g; }
static_assert(
    same_id(DType::dtype_f32, GgmlType::ggml_type_f32) && same_id(DType::dtype_f16, GgmlType::ggml_type_f16) &&
        same_id(DType::dtype_bf16, GgmlType::ggml_type_bf16) && same_id(DType::dtype_q4_0, GgmlType::ggml_type_q4_0) &&
        same_id(DType::dtype_q4_1, GgmlType::ggml_type_q4_1) && same_id(DType::dtype_q5_0, GgmlType::ggml_type_q5_0) &&
        same_id(DType::dtype_q5_1, GgmlType::ggml_type_q5_1) && same_id(DType::dtype_q8_0, GgmlType::ggml_type_q8_0) &&
        same_id(DType::dtype_q4_k, GgmlType::ggml_type_q4_k) && same_id(DType::dtype_q5_k, GgmlType::ggml_type_q5_k) &&
        same_id(DType::dtype_q6_k, GgmlType::ggml_type_q6_k),
    "GGUF ids in engine/core/dtype.h must match GgmlType");

// Sizes of the others as in ggml's type_traits table. Q8_1 is left out: its block size changed
// between ggml versions, and it is an activation format that never appears in model files.
constexpr TypeEntry type_table[] = {
    from_dtype(DType::dtype_f32),       from_dtype(DType::dtype_f16),       from_dtype(DType::dtype_q4_0),
    from_dtype(DType::dtype_q4_1),      from_dtype(DType::dtype_q5_0),      from_dtype(DType::dtype_q5_1),
    from_dtype(DType::dtype_q8_0),      {10, {"Q2_K", qk_k, 84, false}},    {11, {"Q3_K", qk_k, 110, false}},
    from_dtype(DType::dtype_q4_k),      from_dtype(DType::dtype_q5_k),      from_dtype(DType::dtype_q6_k),
    {15, {"Q8_K", qk_k, 292, false}},   {16, {"IQ2_XXS", qk_k, 66, false}}, {17, {"IQ2_XS", qk_k, 74, false}},
    {18, {"IQ3_XXS", qk_k, 98, false}}, {19, {"IQ1_S", qk_k, 50, false}},   {20, {"IQ4_NL", 32, 18, false}},
    {21, {"IQ3_S", qk_k, 110, false}},  {22, {"IQ2_S", qk_k, 82, false}},   {23, {"IQ4_XS", qk_k, 136, false}},
    {24, {"I8", 1, 1, false}},          {25, {"I16", 1, 2, false}},         {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},         {28, {"F64", 1, 8, false}},         {29, {"IQ1_M", qk_k, 56, false}},
    from_dtype(DType::dtype_bf16),      {34, {"TQ1_0", qk_k, 54, false}},   {35, {"TQ2_0", qk_k, 66, false}},
    {39, {"MXFP4", 32, 17, false}},
};

// Below this many blocks a tensor is converted on the calling thread: thread start-up would
// cost more than the work.
constexpr int64_t parallel_min_blocks = 1 << 14;

// Blocks per unit of work when a tensor is split across threads.
constexpr int64_t parallel_chunk_blocks = 1 << 10;

}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t type) {
    for (const TypeEntry& e : type_table) {
        if (e.id == type) return &e.traits;
    }
    return nullptr;
}

const GgmlTypeTraits& ggml_traits(GgmlType type) {
    const GgmlTypeTraits* t = ggml_type_traits((uint32_t)type);
    if (!t) throw Error(str("unknown ggml type ", (uint32_t)type));
    return *t;
}

uint64_t ggml_n_bytes(GgmlType type, int64_t n) {
    const GgmlTypeTraits& t = ggml_traits(type);
    if (n < 0 || n % t.block_size != 0) {
        throw Error(str(n, " elements of ", t.name, " do not fill whole blocks of ", t.block_size));
    }
    return (uint64_t)(n / t.block_size) * (uint64_t)t.type_size;
}

void dequantize(GgmlType type, const void* src_v, int64_t n, float* dst) {
    const GgmlTypeTraits& t = ggml_traits(type);
    if (!t.can_dequantize) throw Error(str("dequantising ggml type ", t.name, " is not supported"));
    if (n < 0 || n % t.block_size != 0) {
        throw Error(
            str("cannot dequantise ", n, " elements of ", t.name, ": not a multiple of its block size ", t.block_size));
    }
    const DTypeTraits* dt = dtype_of_gguf_id((uint32_t)type);
    // can_dequantize marks exactly the types of the weight-type table: a mismatch is a bug.
    GRIDLM_ASSERT(dt != nullptr);
    const uint8_t* src = static_cast<const uint8_t*>(src_v);
    const int64_t nb = n / t.block_size;
    const int64_t n_chunks = (nb + parallel_chunk_blocks - 1) / parallel_chunk_blocks;
#pragma omp parallel for schedule(static) if (nb >= parallel_min_blocks)
    for (int64_t c = 0; c < n_chunks; ++c) {
        const int64_t b0 = c * parallel_chunk_blocks, b1 = std::min(nb, b0 + parallel_chunk_blocks);
        dequantize_row(dt->type, src + b0 * t.type_size, dst + b0 * t.block_size, (b1 - b0) * t.block_size);
    }
}

}  // namespace gridlm
