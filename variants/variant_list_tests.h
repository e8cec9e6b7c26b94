/* variant_list_tests.h — variants built into the test programs only (the conformance runner,
 * test_api_pages), after variant_list.h's: registry.c compiled with -DATTN_TEST_REGISTRY=1
 * expands this list too, and those programs link that registry ahead of the libraries, whose
 * registry.o is then never linked (variants/meson.build). Never in libattn or `attnbench list`.
 * Same X-macro as variant_list.h; no include guard. */
/* amx_bf16.c on emulated tiles (amx_emulate.h): amx_bf16 tested where AVX-512 BF16 runs */
ATTN_VARIANT(amx_bf16_emu, ATTN_ARCH_X86, "x86-64 only")
