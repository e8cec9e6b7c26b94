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

/* Narrowing through the compiler's _Float16 (GCC on x86-64 and AArch64): round to nearest even,
 * with subnormals and overflow to inf. Compilers without _Float16 on the target (clang before
 * 15 on x86-64, which builds the fuzz harnesses) get the same rounding in integer arithmetic. */
#if defined(__FLT16_MAX__)
__extension__ typedef _Float16 attn_float16;

static inline uint16_t attn_f32_to_f16(float f)
{
    const attn_float16 h = (attn_float16)f;
    uint16_t x;
    memcpy(&x, &h, sizeof x);
    return x;
}
#else
static inline uint16_t attn_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = (u >> 16) & 0x8000u, abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) /* NaN: quiet, the payload's top bits kept */
        return (uint16_t)(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
    if (abs >= 0x477ff000u) /* inf, or rounds to 65520 or more: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (abs < 0x38800000u) { /* below 2^-14: a subnormal half, in units of 2^-24 */
        const uint32_t exp = abs >> 23;
        if (exp < 102) /* below 2^-25: rounds to zero */
            return (uint16_t)sign;
        const uint32_t man = (abs & 0x7fffffu) | 0x800000u, shift = 126 - exp; /* 14..24 */
        const uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        uint32_t q = man >> shift;
        q += rem > half || (rem == half && (q & 1));
        return (uint16_t)(sign | q);
    }
    /* normal: rebias 127 -> 15 and round 23 fraction bits to 10 (a carry into the exponent is
     * the right result) */
    uint32_t h = (abs >> 13) - (112u << 10);
    const uint32_t rem = abs & 0x1fffu;
    h += rem > 0x1000u || (rem == 0x1000u && (h & 1));
    return (uint16_t)(sign | h);
}
#endif

#endif /* ATTN_HALF_H */
