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
extern const attn_variant attn_variant_amx_bf16;
extern const attn_variant attn_variant_avx512_bf16;
#endif
extern const attn_variant attn_variant_streaming;
extern const attn_variant attn_variant_blocked;
#if ATTN_HAVE_CBLAS
extern const attn_variant attn_variant_cblas;
extern const attn_variant attn_variant_cblas_reference;
#endif
#if ATTN_HAVE_BLIS
extern const attn_variant attn_variant_blis;
#endif
extern const attn_variant attn_variant_naive;

const attn_variant *const attn_registry[] = {
#if ATTN_ARCH_AARCH64
    &attn_variant_neon,
#endif
#if ATTN_ARCH_X86
    &attn_variant_avx512,
    &attn_variant_avx2,
    /* computes in bf16: after the float32 SIMD variants, so never the default for f32 */
    &attn_variant_amx_bf16,
    &attn_variant_avx512_bf16,
#endif
    &attn_variant_streaming,
    &attn_variant_blocked,
#if ATTN_HAVE_CBLAS
    &attn_variant_cblas,
    &attn_variant_cblas_reference, /* reference_only: never planned */
#endif
#if ATTN_HAVE_BLIS
    &attn_variant_blis,
#endif
    &attn_variant_naive,
};
const int attn_registry_count = (int)(sizeof attn_registry / sizeof attn_registry[0]);

/* Variants of the project that this build leaves out, and why: listings show them, and asking
 * for one gives that reason instead of "unknown variant". */
const attn_absent_variant attn_registry_absent[] = {
#if !ATTN_ARCH_X86
    {"avx512", "not built: x86-64 only"},
    {"avx2", "not built: x86-64 only"},
    {"amx_bf16", "not built: x86-64 only"},
    {"avx512_bf16", "not built: x86-64 only"},
#endif
#if !ATTN_ARCH_AARCH64
    {"neon", "not built: AArch64 only"},
#endif
#if !ATTN_HAVE_CBLAS
    {"cblas", "not built: no CBLAS found (meson option cblas)"},
    {"cblas_reference", "not built: no CBLAS found (meson option cblas)"},
#endif
#if !ATTN_HAVE_BLIS
    {"blis", "not built: no BLIS found (meson option blis; Debian: libblis-dev)"},
#endif
    {NULL, NULL}, /* keeps the array non-empty */
};
