/* registry.c — the registry of this build, expanded from variants/variant_list.h: the variants
 * whose built_when is 1, in the list's order, and the others with the reason they are absent.
 * Compiled again with -DATTN_TEST_REGISTRY=1 for the test programs: variant_list_tests.h too.
 * Those programs link that object ahead of the libraries and so replace this file's three
 * symbols: keep nothing else here (another symbol would pull both in: duplicate definitions). */
#include "attn_config.h"
#include "variant.h"

#define ATTN_VARIANT(name, built_when, why_absent) \
    ATTN_WHEN(built_when)(extern const attn_variant attn_variant_##name;)
#include "variant_list.h"
#if ATTN_TEST_REGISTRY
#include "variant_list_tests.h"
#endif
#undef ATTN_VARIANT

const attn_variant *const attn_registry[] = {
#define ATTN_VARIANT(name, built_when, why_absent) ATTN_WHEN(built_when)(&attn_variant_##name, )
#include "variant_list.h"
#if ATTN_TEST_REGISTRY
#include "variant_list_tests.h"
#endif
#undef ATTN_VARIANT
};
const int attn_registry_count = (int)(sizeof attn_registry / sizeof attn_registry[0]);

/* Variants of the project that this build leaves out, and why: listings show them, and asking
 * for one gives that reason instead of "unknown variant". */
const attn_absent_variant attn_registry_absent[] = {
#define ATTN_VARIANT(name, built_when, why_absent) \
    ATTN_UNLESS(built_when)({#name, "not built: " why_absent}, )
#include "variant_list.h"
#if ATTN_TEST_REGISTRY
#include "variant_list_tests.h"
#endif
#undef ATTN_VARIANT
    {NULL, NULL}, /* ends the list, and keeps the array non-empty */
};
