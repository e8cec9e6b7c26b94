/* cpu_arm.c — AArch64 feature detection through the kernel's hardware capability words
 * (getauxval: the kernel sets a bit only when it also saves the registers the feature needs),
 * and the SVE vector length through prctl. */
#include "cpu.h"

#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>

#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1UL << 22)
#endif
#ifndef HWCAP2_SVE2
#define HWCAP2_SVE2 (1UL << 1)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#ifndef PR_SVE_GET_VL
#define PR_SVE_GET_VL 51
#endif
#ifndef PR_SVE_VL_LEN_MASK
#define PR_SVE_VL_LEN_MASK 0xffff
#endif

/* The calling thread's SVE vector length in bits (the kernel reports bytes), 0 when unknown. */
static int sve_vector_bits(void)
{
    const int vl = prctl(PR_SVE_GET_VL);
    return vl < 0 ? 0 : (vl & PR_SVE_VL_LEN_MASK) * 8;
}

void attn_cpu_detect_arch(attn_cpu *cpu)
{
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    snprintf(cpu->vendor, sizeof cpu->vendor, "ARM");
    snprintf(cpu->model_name, sizeof cpu->model_name, "AArch64 CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        unsigned implementer = 0, part = 0;
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "CPU implementer : %x", &implementer);
            sscanf(line, "CPU part : %x", &part);
        }
        fclose(f);
        if (implementer || part) {
            cpu->family = (int)implementer;
            cpu->model = (int)part;
            snprintf(cpu->model_name, sizeof cpu->model_name,
                     "AArch64 implementer 0x%02x part 0x%03x", implementer, part);
        }
    }
    uint32_t isa = 0;
    if (hw & HWCAP_ASIMD)
        isa |= ATTN_ISA_NEON;
    if (hw & HWCAP_ASIMDHP)
        isa |= ATTN_ISA_ARM_FP16;
    if (hw & HWCAP_SVE) {
        isa |= ATTN_ISA_SVE;
        cpu->sve_vector_bits = sve_vector_bits();
        if (hw2 & HWCAP2_SVE2)
            isa |= ATTN_ISA_SVE2;
    }
    if (hw2 & HWCAP2_BF16)
        isa |= ATTN_ISA_ARM_BF16;
    cpu->isa_detected = isa;
}

/* NEON and SVE have no partially written register state that slows other code. */
void attn_cpu_clean_upper_state(void) {}
