/* cpu_arm.c — AArch64 feature detection through the kernel's hardware capability words. */
#include "cpu.h"

#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1UL << 22)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif

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
    if (hw & HWCAP_SVE)
        isa |= ATTN_ISA_SVE;
    if (hw2 & HWCAP2_BF16)
        isa |= ATTN_ISA_ARM_BF16;
    cpu->isa_detected = isa;
}
