// Element types of stored and in-memory tensors, and scalar conversions between them.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/core/error.h"

namespace gridlm {

enum class DType : uint8_t { dtype_f32, dtype_f16, dtype_bf16 };

inline size_t dtype_size(DType t) {
    switch (t) {
        case DType::dtype_f32:
            return 4;
        case DType::dtype_f16:
            return 2;
        case DType::dtype_bf16:
            return 2;
    }
    return 0;
}

inline std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::dtype_f32:
            return "f32";
        case DType::dtype_f16:
            return "f16";
        case DType::dtype_bf16:
            return "bf16";
    }
    return "?";
}

inline DType dtype_from_name(std::string_view name) {
    if (name == "f32") return DType::dtype_f32;
    if (name == "f16") return DType::dtype_f16;
    if (name == "bf16") return DType::dtype_bf16;
    throw Error(str("unknown dtype '", name, "' (expected f32, bf16 or f16)"));
}

// IEEE half -> float, exact for every input (subnormals, inf, nan).
inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: value = mant * 2^-24, exactly representable in f32
            float v = (float)mant * 0x1p-24f;
            bits = sign | std::bit_cast<uint32_t>(v);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    return std::bit_cast<float>(bits);
}

// float -> IEEE half, round to nearest even.
inline uint16_t f32_to_f16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) {  // inf or nan
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    }
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to inf
    if (absx < 0x38800000u) {                                   // result is subnormal or zero
        const float a = std::bit_cast<float>(absx);
        // a * 2^24 rounded to nearest even gives the subnormal mantissa.
        const float scaled = a * 0x1p24f;
        uint32_t m = (uint32_t)scaled;
        const float rem = scaled - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t r = absx + 0xc8000fffu + ((absx >> 13) & 1);  // rebias exponent and round
    return (uint16_t)(sign | (r >> 13));
}

inline float bf16_to_f32(uint16_t b) { return std::bit_cast<float>((uint32_t)b << 16); }

// float -> bfloat16, round to nearest even (nan stays nan).
inline uint16_t f32_to_bf16(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffff) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

}  // namespace gridlm
