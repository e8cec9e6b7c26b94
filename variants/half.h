/* half.h — scalar conversions between float32 and the half types (bfloat16, IEEE binary16).
 * Widening is exact; narrowing rounds to nearest even. Shared by the portable variants and the
 * harness; the ISA variants use their own vector instructions for the same roundings. */
#ifndef ATTN_HALF_H
#define ATTN_HALF_H

#include <stdint.h>
#include <string.h>

static inline float attn_bf16_to_f32(uint16_t x)
{
    const uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t attn_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet and a NaN */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even; overflows to inf */
    return (uint16_t)(u >> 16);
}

/* binary16 widening by its bits (exact; the hot path of the portable variants, which a
 * baseline x86-64 build would otherwise send through a libgcc call per element). */
static inline float attn_f16_to_f32(uint16_t x)
{
    const uint32_t sign = (uint32_t)(x & 0x8000u) << 16, exp = (x >> 10) & 0x1fu, man = x & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) /* inf, NaN (payload kept) */
        u = sign | 0x7f800000u | man << 13;
    else if (exp != 0) /* normal: rebias 15 -> 127 */
        u = sign | (exp + 112) << 23 | man << 13;
    else { /* zero or subnormal: man · 2^-24, exact in float32 */
        const float f = (float)man * 0x1p-24f;
        memcpy(&u, &f, sizeof u);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* binary16 narrowing by its bits, the same on every compiler (clang 14 has no _Float16 on
 * baseline x86-64): round to nearest even, subnormals, overflow to inf, NaN kept quiet with the
 * top of its payload (as F16C's VCVTPS2PH does). */
static inline uint16_t attn_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint16_t sign = (uint16_t)(u >> 16 & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | (a >> 13 & 0x3ffu));
    if (a >= 0x477ff000u) /* inf, or at least 65520 (half-way above 65504): rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    uint32_t h, rest, half;
    if (a >= 0x38800000u) { /* normal in binary16 (>= 2^-14): rebias 127 -> 15, drop 13 bits */
        h = (a - 0x38000000u) >> 13;
        rest = a & 0x1fffu;
        half = 0x1000u;
    } else { /* subnormal or zero: the significand in units of 2^-24 */
        const uint32_t e = a >> 23;
        if (e < 102) /* below 2^-25 (or exactly half of 2^-24 and ties to 0): zero */
            return sign;
        const uint32_t shift = 126 - e, m = (a & 0x7fffffu) | 0x800000u;
        h = m >> shift;
        rest = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
    }
    h += rest > half || (rest == half && (h & 1u)); /* a carry moves into the exponent */
    return (uint16_t)(sign | h);
}

#endif /* ATTN_HALF_H */
