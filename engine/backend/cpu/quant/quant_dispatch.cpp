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

const QuantKernels* quant_kernels(DType type, Isa isa) {
    if (const QuantKernels* k = quant_kernels_legacy(type, isa)) return k;
    return quant_kernels_kquants(type, isa);
}

}  // namespace gridlm::cpu
