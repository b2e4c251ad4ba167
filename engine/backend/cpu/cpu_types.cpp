// The CPU kernel table (cpu_types.h): row widening for every type (the block types through the
// core's reference dequantisers), the tiled matmul for the float types. Block types multiply through
// quant/quant_kernels.h.
#include "engine/backend/cpu/cpu_types.h"

#include <cstring>

#include "engine/backend/cpu/quant/quant_kernels.h"
#include "engine/backend/cpu/simd.h"
#include "engine/core/quant_blocks.h"

namespace gridlm::cpu {

namespace {

void f32_to_float_row(const void* row, float* dst, int64_t n) { std::memcpy(dst, row, n * sizeof(float)); }

void f16_to_float_row(const void* row, float* dst, int64_t n) {
    const uint16_t* src = static_cast<const uint16_t*>(row);
    int64_t i = 0;
#if GRIDLM_CPU_AVX2
    if (simd_enabled())
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
    for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void bf16_to_float_row(const void* row, float* dst, int64_t n) {
    bf16_to_f32_row(static_cast<const uint16_t*>(row), dst, n);
}

template <DType T>
void block_to_float_row(const void* row, float* dst, int64_t n) {
    dequantize_row(T, row, dst, n);
}

constexpr CpuTypeTraits cpu_type_table[] = {
    {DType::dtype_f32, f32_to_float_row, gemv_f32},
    {DType::dtype_f16, f16_to_float_row, gemv_f16},
    {DType::dtype_bf16, bf16_to_float_row, gemv_bf16},
    {DType::dtype_q4_0, block_to_float_row<DType::dtype_q4_0>, nullptr},
    {DType::dtype_q4_1, block_to_float_row<DType::dtype_q4_1>, nullptr},
    {DType::dtype_q5_0, block_to_float_row<DType::dtype_q5_0>, nullptr},
    {DType::dtype_q5_1, block_to_float_row<DType::dtype_q5_1>, nullptr},
    {DType::dtype_q8_0, block_to_float_row<DType::dtype_q8_0>, nullptr},
    {DType::dtype_q4_k, block_to_float_row<DType::dtype_q4_k>, nullptr},
    {DType::dtype_q5_k, block_to_float_row<DType::dtype_q5_k>, nullptr},
    {DType::dtype_q6_k, block_to_float_row<DType::dtype_q6_k>, nullptr},
};

constexpr bool table_in_order() {
    if (sizeof(cpu_type_table) / sizeof(cpu_type_table[0]) != dtype_count) return false;
    for (size_t i = 0; i < dtype_count; ++i)
        if ((size_t)cpu_type_table[i].type != i) return false;
    return true;
}
static_assert(table_in_order(), "cpu_type_table needs one row per DType, in DType order");

}  // namespace

bool CpuTypeTraits::has_matmul() const {
    if (dtype_is_quantized(type)) return quant_kernels(type, Isa::scalar) != nullptr;
    return gemv != nullptr;
}

const CpuTypeTraits& cpu_type_traits(DType type) {
    GRIDLM_ASSERT((size_t)type < dtype_count);
    return cpu_type_table[(size_t)type];
}

}  // namespace gridlm::cpu
