/* dtype.c — element types: names, sizes and bulk conversion (attn.h). */
#include "attn.h"
#include "half.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

const char *attn_dtype_name(attn_dtype t)
{
    switch ((int)t) {
    case ATTN_F32: return "f32";
    case ATTN_BF16: return "bf16";
    case ATTN_F16: return "f16";
    case ATTN_INT8: return "int8";
    case ATTN_Q4: return "q4";
    }
    return "?";
}

bool attn_dtype_parse(const char *name, attn_dtype *t)
{
    static const struct { const char *name; attn_dtype t; } names[] = {
        {"f32", ATTN_F32},   {"float32", ATTN_F32}, {"bf16", ATTN_BF16},
        {"bfloat16", ATTN_BF16}, {"f16", ATTN_F16}, {"float16", ATTN_F16},
        {"int8", ATTN_INT8}, {"q4", ATTN_Q4},
    };
    for (size_t i = 0; name && t && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) {
            *t = names[i].t;
            return true;
        }
    return false;
}

size_t attn_dtype_size(attn_dtype t)
{
    switch ((int)t) {
    case ATTN_F32: return 4;
    case ATTN_BF16:
    case ATTN_F16: return 2;
    }
    return 0; /* the quantized types (q4 is not a whole number of bytes): attn_dtype_bytes */
    return 0;
}

size_t attn_dtype_bytes(attn_dtype t, size_t n)
{
    switch ((int)t) {
    case ATTN_F32:
    case ATTN_BF16:
    case ATTN_F16: return n <= SIZE_MAX / 4 ? n * attn_dtype_size(t) : 0;
    case ATTN_INT8: return n;
    case ATTN_Q4: return n / 2 + n % 2;
    }
    return 0;
}

double attn_dtype_unit_roundoff(attn_dtype t)
{
    switch ((int)t) {
    case ATTN_F32: return 0x1p-24;
    case ATTN_BF16: return 0x1p-8;
    case ATTN_F16: return 0x1p-11;
    }
    return NAN;
}

static float load(const void *src, attn_dtype t, size_t i)
{
    if (t == ATTN_F32)
        return ((const float *)src)[i];
    const uint16_t x = ((const uint16_t *)src)[i];
    return t == ATTN_BF16 ? attn_bf16_to_f32(x) : attn_f16_to_f32(x);
}

bool attn_convert(const void *src, attn_dtype from, void *dst, attn_dtype to, size_t n)
{
    const size_t from_size = attn_dtype_size(from), to_size = attn_dtype_size(to);
    if (!from_size || !to_size)
        return false;
    if (n == 0)
        return true;
    if (!src || !dst || n > PTRDIFF_MAX / 4)
        return false;
    /* Element i is read before element i is written, so converting in place works when the
     * output is no wider; any other overlap would read what was already written. */
    const uintptr_t s0 = (uintptr_t)src, s1 = s0 + n * from_size;
    const uintptr_t d0 = (uintptr_t)dst, d1 = d0 + n * to_size;
    if (s0 < d1 && d0 < s1 && !(s0 == d0 && to_size <= from_size))
        return false;
    for (size_t i = 0; i < n; i++) {
        const float f = load(src, from, i);
        switch (to) {
        case ATTN_F32: ((float *)dst)[i] = f; break;
        case ATTN_BF16: ((uint16_t *)dst)[i] = attn_f32_to_bf16(f); break;
        case ATTN_F16: ((uint16_t *)dst)[i] = attn_f32_to_f16(f); break;
        }
    }
    return true;
}
