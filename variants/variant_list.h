/* variant_list.h — every variant of the project, one line each, in priority order: the first
 * supported one that fits a problem is the default choice. The only list of variants by name:
 * registry.c expands it into the externs, the registry table and the "absent in this build"
 * entries (an X-macro: define ATTN_VARIANT, include this file).
 *
 *   ATTN_VARIANT(name, built_when, why_absent)
 *     name        the descriptor is attn_variant_<name>, and the variant's .name is "name"
 *     built_when  an attn_config.h macro (0 or 1) that is 1 when variants/meson.build compiles
 *                 the variant's file, or 1 for portable C built everywhere
 *     why_absent  what listings say where built_when is 0 (after "not built: ")
 *
 * Adding a variant = its file, one line here, its sources line in variants/meson.build
 * (docs/ADDING_A_VARIANT.md). No include guard: included once per expansion. */
ATTN_VARIANT(sve, ATTN_ARCH_AARCH64, "AArch64 only") /* any SVE VL is at least NEON's 128 bits */
ATTN_VARIANT(neon, ATTN_ARCH_AARCH64, "AArch64 only")
ATTN_VARIANT(avx512, ATTN_ARCH_X86, "x86-64 only")
ATTN_VARIANT(avx2, ATTN_ARCH_X86, "x86-64 only")
/* compute in bf16: after the float32 SIMD variants, so never the default for f32 */
ATTN_VARIANT(amx_bf16, ATTN_ARCH_X86, "x86-64 only")
ATTN_VARIANT(avx512_bf16, ATTN_ARCH_X86, "x86-64 only")
ATTN_VARIANT(sve_bf16, ATTN_ARCH_AARCH64, "AArch64 only")
ATTN_VARIANT(streaming, 1, "")
ATTN_VARIANT(blocked, 1, "")
ATTN_VARIANT(cblas, ATTN_HAVE_CBLAS, "no CBLAS found (meson option cblas)")
ATTN_VARIANT(cblas_reference, ATTN_HAVE_CBLAS, "no CBLAS found (meson option cblas)") /* reference_only */
ATTN_VARIANT(blis, ATTN_HAVE_BLIS, "no BLIS found (meson option blis; Debian: libblis-dev)")
ATTN_VARIANT(onednn, ATTN_HAVE_ONEDNN,
             "no oneDNN found (meson option onednn; Debian: libdnnl-dev)")
ATTN_VARIANT(onednn_bf16, ATTN_HAVE_ONEDNN,
             "no oneDNN found (meson option onednn; Debian: libdnnl-dev)") /* bf16 compute */
ATTN_VARIANT(ggml, ATTN_HAVE_GGML, "ggml not found (meson option ggml: pkg-config ggml; -Dggml_prefix=DIR)")
ATTN_VARIANT(ggml_f16, ATTN_HAVE_GGML, "ggml not found (meson option ggml: pkg-config ggml; -Dggml_prefix=DIR)")
ATTN_VARIANT(naive, 1, "")
