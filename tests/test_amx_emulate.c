/* test_amx_emulate.c — the software model of the AMX tile instructions (variants/amx_emulate.h)
 * against the ISA reference's definitions (tests/amx_emulate_checks.c, compiled with the
 * avx512_bf16 flags). This file is built for the baseline ISA: it runs the checks only where
 * the CPU (and ATTN_DISABLE_ISA) allows AVX-512 BF16, and says SKIP with the reason otherwise. */
#include "cpu.h"
#include "variant.h"

#include <stdio.h>

int amx_emulate_checks(void);

int main(void)
{
    const uint32_t needs = ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL |
                           ATTN_ISA_AVX512DQ | ATTN_ISA_AVX512BF16;
    const attn_cpu *cpu = attn_cpu_get();
    const uint32_t missing = needs & ~cpu->isa;
    if (missing) {
        char names[128];
        attn_isa_format(missing, names, sizeof names);
        printf("test_amx_emulate: SKIP: %s %s\n",
               missing & ~cpu->isa_detected ? "CPU lacks" : "disabled by ATTN_DISABLE_ISA:", names);
        return 77; /* meson: skipped */
    }
    return amx_emulate_checks();
}
