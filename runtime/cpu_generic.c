/* cpu_generic.c — architectures without SIMD variants: only the portable ones run. */
#include "cpu.h"

#include <stdio.h>

void attn_cpu_detect_arch(attn_cpu *cpu)
{
    snprintf(cpu->vendor, sizeof cpu->vendor, "unknown");
    snprintf(cpu->model_name, sizeof cpu->model_name, "unknown CPU");
    cpu->isa_detected = 0;
}

void attn_cpu_clean_upper_state(void) {}
