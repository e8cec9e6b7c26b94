/* cpu.h — what this machine is: ISA features (with OS support checked) and cache sizes.
 * Detection lives in one file per architecture (cpu_x86.c, cpu_arm.c); it runs once and is
 * cached. ATTN_DISABLE_ISA=avx512,avx2 turns features off as if the CPU lacked them. */
#ifndef ATTN_CPU_H
#define ATTN_CPU_H

#include "variant.h"

typedef struct attn_cpu {
    char vendor[16];
    char model_name[64];
    int family, model, stepping;
    uint32_t isa_detected; /* what the CPU and OS support */
    uint32_t isa;          /* isa_detected minus what ATTN_DISABLE_ISA turns off */
    attn_machine machine;  /* isa + cache sizes (hwloc's; sysconf when hwloc fails; 0 when
                            * neither knows) + FMA rates (known microarchitectures; 0 if not) */
    const char *cache_source[3]; /* L1d, L2, L3: "hwloc", "sysconf" or NULL (unknown) */
    const char *fma_source;      /* the table row fma_per_cycle came from; NULL when unknown */
    char machine_id[17];   /* attn_cpu_machine_id(): 16 hex digits */
    int sve_vector_bits;   /* AArch64 with SVE: this thread's SVE vector length; else 0 */
} attn_cpu;

/* The detected CPU; detection runs on the first call (thread-safe). Never NULL. */
const attn_cpu *attn_cpu_get(void);

/* A stable identifier of this machine for result and tuning files: FNV-1a 64 of the vendor,
 * model name, family/model, the *detected* ISA bits (not the ATTN_DISABLE_ISA mask), the
 * L1d/L2/L3 sizes and the number of cores, as 16 lowercase hex digits. */
const char *attn_cpu_machine_id(void);

/* Detects the features of this CPU (architecture-specific file). */
void attn_cpu_detect_arch(attn_cpu *cpu);

/* Called after every variant task and peak kernel: leaves the vector registers as the calling
 * convention promises them to the caller's code (architecture-specific file). On x86 with AVX
 * that is VZEROUPPER. Compilers emit it themselves at function exits, but GCC 12 omits it on
 * some paths of avx512.c (XGETBV(1) showed the upper halves of zmm0-15 in use after a prefill
 * run), and while they are, every legacy-SSE instruction after it (the portable variants, the
 * caller's own code) waits on a merge: `streaming` ran 7x slower right after `avx512`. */
void attn_cpu_clean_upper_state(void);

/* Names of ISA bits, in one table: "avx2", "avx512f", ... */
typedef struct attn_isa_name {
    uint32_t bit;
    const char *name;
    /* Bits that go with it when it is disabled by name ("avx512" turns off every AVX-512 bit). */
} attn_isa_name;
extern const attn_isa_name attn_isa_names[];
extern const int attn_isa_name_count;

/* Parses a comma list of ISA names ("avx512,avx2") into a mask of bits to turn off. A group
 * name turns off its family (avx512 → every avx512*; avx2 → avx2 and what needs it). Returns
 * false and names the bad entry in `why` on an unknown name. */
bool attn_isa_parse_disable(const char *list, uint32_t *mask, char *why, size_t why_len);
/* Writes "avx2,fma,avx512f" for a mask. */
void attn_isa_format(uint32_t mask, char *buf, size_t len);

#endif
