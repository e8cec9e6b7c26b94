/* dtype.c — element types: names, sizes and bulk conversion (attn.h). */
#include "attn.h"
#include "half.h"

#include <string.h>

const char *attn_dtype_name(attn_dtype t)
{
    switch (t) {
    case ATTN_F32: return "f32";
    case ATTN_BF16: return "bf16";
    case ATTN_F16: return "f16";
    }
    return "?";
}

bool attn_dtype_parse(const char *name, attn_dtype *t)
{
    static const struct { const char *name; attn_dtype t; } names[] = {
        {"f32", ATTN_F32},   {"float32", ATTN_F32}, {"bf16", ATTN_BF16},
        {"bfloat16", ATTN_BF16}, {"f16", ATTN_F16}, {"float16", ATTN_F16},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) {
            *t = names[i].t;
            return true;
        }
    return false;
}

size_t attn_dtype_size(attn_dtype t)
{
    switch (t) {
    case ATTN_F32: return 4;
    case ATTN_BF16:
    case ATTN_F16: return 2;
    }
    return 0;
}

double attn_dtype_unit_roundoff(attn_dtype t)
{
    switch (t) {
    case ATTN_F32: return 0x1p-24;
    case ATTN_BF16: return 0x1p-8;
    case ATTN_F16: return 0x1p-11;
    }
    return 1.0;
}

static float load(const void *src, attn_dtype t, size_t i)
{
    if (t == ATTN_F32)
        return ((const float *)src)[i];
    const uint16_t x = ((const uint16_t *)src)[i];
    return t == ATTN_BF16 ? attn_bf16_to_f32(x) : attn_f16_to_f32(x);
}

void attn_convert(const void *src, attn_dtype from, void *dst, attn_dtype to, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float f = load(src, from, i);
        switch (to) {
        case ATTN_F32: ((float *)dst)[i] = f; break;
        case ATTN_BF16: ((uint16_t *)dst)[i] = attn_f32_to_bf16(f); break;
        case ATTN_F16: ((uint16_t *)dst)[i] = attn_f32_to_f16(f); break;
        }
    }
}
