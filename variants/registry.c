/* registry.c — the registry of this build, expanded from variants/variant_list.h: the variants
 * whose built_when is 1, in the list's order, and the others with the reason they are absent. */
#include "attn_config.h"
#include "variant.h"

/* ATTN_WHEN(cond)(x) is x (commas included) when cond expands to 1 and nothing when it expands
 * to 0; ATTN_UNLESS the reverse. A condition that is not a macro of 0 or 1 fails to compile. */
#define ATTN_CAT_(a, b) a##b
#define ATTN_CAT(a, b) ATTN_CAT_(a, b)
#define ATTN_WHEN_1(...) __VA_ARGS__
#define ATTN_WHEN_0(...)
#define ATTN_UNLESS_1(...)
#define ATTN_UNLESS_0(...) __VA_ARGS__
#define ATTN_WHEN(cond) ATTN_CAT(ATTN_WHEN_, cond)
#define ATTN_UNLESS(cond) ATTN_CAT(ATTN_UNLESS_, cond)

#define ATTN_VARIANT(name, built_when, why_absent) \
    ATTN_WHEN(built_when)(extern const attn_variant attn_variant_##name;)
#include "variant_list.h"
#undef ATTN_VARIANT

const attn_variant *const attn_registry[] = {
#define ATTN_VARIANT(name, built_when, why_absent) ATTN_WHEN(built_when)(&attn_variant_##name, )
#include "variant_list.h"
#undef ATTN_VARIANT
};
const int attn_registry_count = (int)(sizeof attn_registry / sizeof attn_registry[0]);

/* Variants of the project that this build leaves out, and why: listings show them, and asking
 * for one gives that reason instead of "unknown variant". */
const attn_absent_variant attn_registry_absent[] = {
#define ATTN_VARIANT(name, built_when, why_absent) \
    ATTN_UNLESS(built_when)({#name, "not built: " why_absent}, )
#include "variant_list.h"
#undef ATTN_VARIANT
    {NULL, NULL}, /* ends the list, and keeps the array non-empty */
};
