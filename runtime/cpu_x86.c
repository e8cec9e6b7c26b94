/* cpu_x86.c — x86 feature detection: CPUID for what the CPU has, then OSXSAVE and XGETBV for
 * what the OS saves on a context switch (YMM state for AVX/AVX2; opmask and ZMM state as well
 * before any AVX-512 bit; tile state before AMX). Linux also wants each process to ask for the
 * AMX tile data state (arch_prctl ARCH_REQ_XCOMP_PERM) before it touches a tile register: that
 * request is made here, once, and AMX counts as present only when it is granted. */
#include "cpu.h"

#include <cpuid.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static void cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* Asks the kernel for permission to use the AMX tile data state (XFEATURE_XTILEDATA = 18);
 * without it the first tile instruction faults (SIGILL). The permission covers every thread of
 * the process, present and future. False when refused or not Linux. */
static bool amx_permitted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

void attn_cpu_detect_arch(attn_cpu *cpu)
{
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    memcpy(cpu->vendor + 0, &r[1], 4);
    memcpy(cpu->vendor + 4, &r[3], 4);
    memcpy(cpu->vendor + 8, &r[2], 4);
    cpu->vendor[12] = '\0';

    cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++) {
            cpuid(0x80000002u + i, 0, r);
            memcpy(cpu->model_name + 16 * i, r, 16);
        }
        cpu->model_name[48] = '\0';
        /* trim leading and trailing blanks */
        char *s = cpu->model_name;
        while (*s == ' ')
            s++;
        memmove(cpu->model_name, s, strlen(s) + 1);
        size_t n = strlen(cpu->model_name);
        while (n && cpu->model_name[n - 1] == ' ')
            cpu->model_name[--n] = '\0';
    }

    cpuid(1, 0, r);
    unsigned base_family = (r[0] >> 8) & 0xf, base_model = (r[0] >> 4) & 0xf;
    cpu->family = (int)(base_family == 0xf ? base_family + ((r[0] >> 20) & 0xff) : base_family);
    cpu->model = (int)((base_family == 0x6 || base_family == 0xf)
                           ? base_model | (((r[0] >> 16) & 0xf) << 4)
                           : base_model);
    cpu->stepping = (int)(r[0] & 0xf);
    unsigned ecx1 = r[2];

    uint32_t isa = 0;
    if (ecx1 & bit_SSE4_2)
        isa |= ATTN_ISA_SSE42;
    bool osxsave = ecx1 & bit_OSXSAVE;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm_ok = (xcr0 & 0x6) == 0x6;     /* XMM and YMM state */
    bool zmm_ok = (xcr0 & 0xe6) == 0xe6;   /* + opmask, ZMM_Hi256, Hi16_ZMM */
    bool amx_ok = (xcr0 & 0x60000) == 0x60000; /* XTILECFG and XTILEDATA */
    if (!ymm_ok) {
        cpu->isa_detected = isa;
        return;
    }
    if (ecx1 & bit_AVX)
        isa |= ATTN_ISA_AVX;
    if (ecx1 & bit_FMA)
        isa |= ATTN_ISA_FMA;
    if (ecx1 & bit_F16C)
        isa |= ATTN_ISA_F16C;
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        unsigned ebx7 = r[1], ecx7 = r[2], edx7 = r[3];
        if (ebx7 & bit_AVX2)
            isa |= ATTN_ISA_AVX2;
        if (zmm_ok) {
            if (ebx7 & bit_AVX512F)
                isa |= ATTN_ISA_AVX512F;
            if (ebx7 & bit_AVX512BW)
                isa |= ATTN_ISA_AVX512BW;
            if (ebx7 & bit_AVX512VL)
                isa |= ATTN_ISA_AVX512VL;
            if (ebx7 & bit_AVX512DQ)
                isa |= ATTN_ISA_AVX512DQ;
            if (ecx7 & bit_AVX512VNNI)
                isa |= ATTN_ISA_AVX512VNNI;
            if (edx7 & (1u << 23)) /* AVX512_FP16 */
                isa |= ATTN_ISA_AVX512FP16;
            cpuid(7, 1, r);
            if (r[0] & (1u << 5)) /* AVX512_BF16 */
                isa |= ATTN_ISA_AVX512BF16;
        }
        if (amx_ok && (edx7 & (1u << 24)) && (edx7 & (1u << 22)) /* AMX-TILE, AMX-BF16 */
            && amx_permitted())
            isa |= ATTN_ISA_AMX;
    }
    cpu->isa_detected = isa;
}

void attn_cpu_clean_upper_state(void)
{
    if (attn_cpu_get()->isa_detected & ATTN_ISA_AVX)
        __asm__ volatile("vzeroupper" ::: "memory");
}
