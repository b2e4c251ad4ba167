// Run-time choice of the quantised kernels' instruction set (cpuid through GCC's builtins) and the
// lookup that joins the two kernel families.
#include "engine/backend/cpu/quant/quant_kernels.h"

#include "engine/backend/cpu/cpu_ops.h"

namespace gridlm::cpu {

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::scalar:
            return "scalar";
        case Isa::avx2:
            return "avx2";
        case Isa::avx512vnni:
            return "avx512vnni";
    }
    return "?";
}

bool isa_supported(Isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
    switch (isa) {
        case Isa::scalar:
            return true;
        case Isa::avx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        case Isa::avx512vnni:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512vnni");
    }
    return false;
#else
    return isa == Isa::scalar;
#endif
}

Isa best_isa() {
    static const Isa best = isa_supported(Isa::avx512vnni) ? Isa::avx512vnni
                            : isa_supported(Isa::avx2)     ? Isa::avx2
                                                           : Isa::scalar;
    return detail::simd_on ? best : Isa::scalar;
}

QuantMatmulArgs quant_matmul_args(DType type, int64_t act_block, int64_t act_block_bytes, const Weight& w,
                                  const void* xq, int64_t xq_stride, int64_t n, float* y, int64_t ld_y, int64_t r0,
                                  int64_t r1) {
    if (w.dtype != type)
        throw Error(
            str("quantised matmul: a ", dtype_name(w.dtype), " weight given to the ", dtype_name(type), " kernel"));
    if (w.cols % act_block != 0)
        throw Error(str("quantised matmul: ", w.cols, " columns of ", dtype_name(type), " are not whole blocks of ",
                        act_block));
    GRIDLM_ASSERT(0 <= r0 && r0 <= r1 && r1 <= w.rows && n >= 0);
    const int64_t nb = w.cols / act_block;
    GRIDLM_ASSERT(n <= 1 || xq_stride >= nb * act_block_bytes);
    return {static_cast<const uint8_t*>(w.data),
            w.stride(),
            nb,
            static_cast<const uint8_t*>(xq),
            xq_stride,
            n,
            y,
            ld_y,
            r0,
            r1};
}

const QuantKernels* quant_kernels(DType type, Isa isa) {
    if (const QuantKernels* k = quant_kernels_legacy(type, isa)) return k;
    return quant_kernels_kquants(type, isa);
}

}  // namespace gridlm::cpu
