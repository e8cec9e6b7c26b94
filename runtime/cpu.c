/* cpu.c — the architecture-independent half of CPU detection: the cache, ISA names, the
 * ATTN_DISABLE_ISA mask, cache sizes (from hwloc, see topology.c) and the machine id. */
#include "cpu.h"
#include "topology.h"

#include "attn_config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const attn_isa_name attn_isa_names[] = {
    {ATTN_ISA_SSE42, "sse4.2"},         {ATTN_ISA_AVX, "avx"},
    {ATTN_ISA_AVX2, "avx2"},            {ATTN_ISA_FMA, "fma"},
    {ATTN_ISA_F16C, "f16c"},            {ATTN_ISA_AVX512F, "avx512f"},
    {ATTN_ISA_AVX512BW, "avx512bw"},    {ATTN_ISA_AVX512VL, "avx512vl"},
    {ATTN_ISA_AVX512DQ, "avx512dq"},    {ATTN_ISA_AVX512BF16, "avx512_bf16"},
    {ATTN_ISA_AVX512FP16, "avx512_fp16"}, {ATTN_ISA_AVX512VNNI, "avx512_vnni"},
    {ATTN_ISA_AMX, "amx"},              {ATTN_ISA_NEON, "neon"},
    {ATTN_ISA_ARM_FP16, "fp16"},        {ATTN_ISA_ARM_BF16, "bf16"},
    {ATTN_ISA_SVE, "sve"},             {ATTN_ISA_SVE2, "sve2"},
    {ATTN_ISA_SVE_BF16, "sve_bf16"},
};
const int attn_isa_name_count = (int)(sizeof attn_isa_names / sizeof attn_isa_names[0]);

#define ATTN_ISA_ALL_AVX512                                                                       \
    (ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ |              \
     ATTN_ISA_AVX512BF16 | ATTN_ISA_AVX512FP16 | ATTN_ISA_AVX512VNNI)

/* Family names accepted by ATTN_DISABLE_ISA besides the single bits above. */
static const attn_isa_name isa_groups[] = {
    {ATTN_ISA_ALL_AVX512, "avx512"},
    {ATTN_ISA_NEON | ATTN_ISA_ARM_FP16 | ATTN_ISA_ARM_BF16 | ATTN_ISA_SVE | ATTN_ISA_SVE2 |
         ATTN_ISA_SVE_BF16,
     "asimd"},
};

bool attn_isa_parse_disable(const char *list, uint32_t *mask, char *why, size_t why_len)
{
    *mask = 0;
    const char *s = list;
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        uint32_t bits = 0;
        for (int i = 0; i < attn_isa_name_count && !bits; i++)
            if (strlen(attn_isa_names[i].name) == n && !strncmp(s, attn_isa_names[i].name, n))
                bits = attn_isa_names[i].bit;
        for (size_t i = 0; i < sizeof isa_groups / sizeof isa_groups[0] && !bits; i++)
            if (strlen(isa_groups[i].name) == n && !strncmp(s, isa_groups[i].name, n))
                bits = isa_groups[i].bit;
        if (!bits && n > 0) {
            snprintf(why, why_len, "unknown ISA name '%.*s' (known: avx512, avx2, fma, avx, "
                     "sse4.2, f16c, avx512f, avx512bw, ..., neon, asimd, sve, sve_bf16)",
                     (int)n, s);
            return false;
        }
        *mask |= bits;
        s = end ? end + 1 : NULL;
    }
    return true;
}

void attn_isa_format(uint32_t mask, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < attn_isa_name_count; i++) {
        if (!(mask & attn_isa_names[i].bit))
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? "," : "", attn_isa_names[i].name);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

/* Cache level `level` from hwloc, else sysconf, else 0 (unknown: the default rules then use
 * their fallback, attn_machine_fact); *source names where it came from. */
static int64_t cache_size(int level, int sysconf_name, const char **source)
{
    int64_t v = attn_topology_get()->cache[level - 1].bytes;
    *source = "hwloc";
    if (v > 0)
        return v;
    long s = sysconf(sysconf_name);
    *source = s > 0 ? "sysconf" : NULL;
    return s > 0 ? (int64_t)s : 0;
}

/* Vector FMA instructions per cycle and core at 128, 256 and 512 bits, by microarchitecture
 * (vendor, family, a range of models): published facts, so the library never runs a benchmark
 * at start-up. The first matching row wins; a width the CPU lacks gets 0. A CPU not listed
 * keeps 0 (unknown), and the planner's estimate assumes 2 per cycle at every width it has.
 * x86 rows: CPUID family and model. AArch64 rows: family = MIDR implementer, model = MIDR part
 * (cpu_arm.c); the 256- and 512-bit columns are SVE at that vector length, so they count only
 * where the SVE vector length reaches them (A64FX can run at 128, 256 or 512 bits). Sources:
 * Arm's Software Optimization Guides (FP/ASIMD/SVE pipelines and FMLA throughput) for
 * Neoverse N1, N2, V1 and V2, and Fujitsu's A64FX Microarchitecture Manual. */
static const struct fma_row {
    const char *vendor;
    int family, model_min, model_max;
    uint32_t needs;      /* ISA bits the row applies to (detected, before ATTN_DISABLE_ISA) */
    int per_cycle[3];    /* 128, 256, 512 bits */
    const char *what;
} fma_rows[] = {
    {"AuthenticAMD", 0x1a, 0, 0xff, 0, {2, 2, 2}, "AMD Zen 5: two 512-bit FMA pipes"},
    {"AuthenticAMD", 0x19, 0, 0xff, 0, {2, 2, 1},
     "AMD Zen 3/4: two 256-bit FMA pipes; 512-bit FMA as two halves (Zen 4)"},
    {"AuthenticAMD", 0x17, 0x30, 0xff, 0, {2, 2, 0}, "AMD Zen 2: two 256-bit FMA pipes"},
    {"AuthenticAMD", 0x17, 0, 0x2f, 0, {2, 1, 0}, "AMD Zen 1: 256-bit FMA as two 128-bit halves"},
    {"GenuineIntel", 6, 0, 0xff, ATTN_ISA_AVX512F, {2, 2, 2},
     "Intel with AVX-512: two 512-bit FMA units (one on some Xeon Bronze/Silver and clients)"},
    {"GenuineIntel", 6, 0, 0xff, ATTN_ISA_FMA, {2, 2, 0},
     "Intel Haswell and later: two 256-bit FMA units"},
    {"ARM", 0x41, 0xd0c, 0xd0c, 0, {2, 0, 0}, "Arm Neoverse N1: two 128-bit FMA pipes, no SVE"},
    {"ARM", 0x41, 0xd49, 0xd49, 0, {2, 0, 0},
     "Arm Neoverse N2: two 128-bit FMA pipes, 128-bit SVE2"},
    {"ARM", 0x41, 0xd40, 0xd40, 0, {4, 2, 0},
     "Arm Neoverse V1 (AWS Graviton 3): four 128-bit FMA pipes, as two for 256-bit SVE"},
    {"ARM", 0x41, 0xd4f, 0xd4f, 0, {4, 0, 0},
     "Arm Neoverse V2 (AWS Graviton 4, NVIDIA Grace): four 128-bit FMA pipes, 128-bit SVE2"},
    {"ARM", 0x46, 0x001, 0x001, 0, {2, 2, 2},
     "Fujitsu A64FX: two 512-bit SVE FMA pipes (FLA, FLB) at any vector length"},
};

static void fma_rates(attn_cpu *c)
{
    /* The widths the CPU has: x86 by its extensions; AArch64 NEON's 128 bits, and SVE's vector
     * length for the wider columns. */
    const bool x86 = ATTN_ARCH_X86;
    const bool has[3] = {
        x86 || (c->isa_detected & ATTN_ISA_NEON),
        x86 ? (c->isa_detected & (ATTN_ISA_AVX2 | ATTN_ISA_FMA)) == (ATTN_ISA_AVX2 | ATTN_ISA_FMA)
            : c->sve_vector_bits >= 256,
        x86 ? (c->isa_detected & ATTN_ISA_AVX512F) != 0 : c->sve_vector_bits >= 512};
    for (size_t i = 0; i < sizeof fma_rows / sizeof fma_rows[0]; i++) {
        const struct fma_row *r = &fma_rows[i];
        if (strcmp(c->vendor, r->vendor) || c->family != r->family || c->model < r->model_min ||
            c->model > r->model_max || (c->isa_detected & r->needs) != r->needs)
            continue;
        for (int w = 0; w < 3; w++)
            c->machine.fma_per_cycle[w] = has[w] ? r->per_cycle[w] : 0;
        c->fma_source = r->what;
        return;
    }
}

/* FNV-1a, 64 bits (Fowler, Noll, Vo): offset basis 14695981039346656037, prime 1099511628211. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

static void make_machine_id(attn_cpu *c)
{
    /* The core count too: two virtual machines on one CPU model with different core counts
     * have different all-core peaks and best thread counts. The SVE vector length too (only
     * where there is one, so x86 ids stay as they were): A64FX runs at 128, 256 or 512 bits,
     * and sve's best tiles at one length are not the best at another. */
    char text[256];
    int n = snprintf(text, sizeof text, "%s|%s|%d|%d|%08x|%lld|%lld|%lld|%d", c->vendor,
                     c->model_name, c->family, c->model, (unsigned)c->isa_detected,
                     (long long)attn_machine_fact(&c->machine, ATTN_FACT_L1D, NULL),
                     (long long)attn_machine_fact(&c->machine, ATTN_FACT_L2, NULL),
                     (long long)attn_machine_fact(&c->machine, ATTN_FACT_L3, NULL),
                     attn_topology_get()->cores);
    if (c->sve_vector_bits && n > 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - (size_t)n, "|sve%d", c->sve_vector_bits);
    uint64_t h = fnv1a(14695981039346656037u, text, strlen(text));
    snprintf(c->machine_id, sizeof c->machine_id, "%016llx", (unsigned long long)h);
}

static attn_cpu detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect(void)
{
    attn_cpu *c = &detected;
    memset(c, 0, sizeof *c);
    attn_cpu_detect_arch(c);
    c->isa = c->isa_detected;
    const char *env = getenv("ATTN_DISABLE_ISA");
    uint32_t off = 0;
    char why[200];
    if (env && !attn_isa_parse_disable(env, &off, why, sizeof why)) {
        /* An unknown name must not silently leave an ISA on: turn every SIMD ISA off. */
        fprintf(stderr, "attn: ATTN_DISABLE_ISA: %s; disabling all SIMD variants\n", why);
        off = ~0u;
    }
    c->isa &= ~off;
    c->machine.isa = c->isa;
    c->machine.l1d_bytes = cache_size(1, _SC_LEVEL1_DCACHE_SIZE, &c->cache_source[0]);
    c->machine.l2_bytes = cache_size(2, _SC_LEVEL2_CACHE_SIZE, &c->cache_source[1]);
    c->machine.l3_bytes = cache_size(3, _SC_LEVEL3_CACHE_SIZE, &c->cache_source[2]);
    fma_rates(c);
    make_machine_id(c);
    /* before any variant runs: a library that dispatches by itself must obey the mask too */
    for (int i = 0; i < attn_registry_count; i++)
        if (attn_registry[i]->limit_isa)
            attn_registry[i]->limit_isa(c->isa);
}

const attn_cpu *attn_cpu_get(void)
{
    pthread_once(&detect_once, detect);
    return &detected;
}

const char *attn_cpu_machine_id(void) { return attn_cpu_get()->machine_id; }
