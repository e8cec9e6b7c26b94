/* registry.c — every variant of this build, in priority order: the first supported one that
 * fits a problem is the default choice. Adding a variant = its file and one line here. */
#include "attn_config.h"
#include "variant.h"

#if ATTN_ARCH_AARCH64
extern const attn_variant attn_variant_neon;
#endif
#if ATTN_ARCH_X86
extern const attn_variant attn_variant_avx512;
extern const attn_variant attn_variant_avx2;
#endif
extern const attn_variant attn_variant_streaming;
extern const attn_variant attn_variant_blocked;
#if ATTN_HAVE_CBLAS
extern const attn_variant attn_variant_cblas;
#endif
extern const attn_variant attn_variant_naive;

const attn_variant *const attn_registry[] = {
#if ATTN_ARCH_AARCH64
    &attn_variant_neon,
#endif
#if ATTN_ARCH_X86
    &attn_variant_avx512,
    &attn_variant_avx2,
#endif
    &attn_variant_streaming,
    &attn_variant_blocked,
#if ATTN_HAVE_CBLAS
    &attn_variant_cblas,
#endif
    &attn_variant_naive,
};
const int attn_registry_count = (int)(sizeof attn_registry / sizeof attn_registry[0]);
