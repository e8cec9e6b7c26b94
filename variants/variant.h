/* variant.h — the plug-in contract of an attention implementation.
 *
 * A variant is one file under variants/ that defines one `const attn_variant` descriptor, one
 * line in the list of variants (variant_list.h) and one sources line in variants/meson.build
 * (docs/ADDING_A_VARIANT.md). Nothing else in the tree learns its name: the harness, the CLI,
 * the tests and the tuner all read the descriptor.
 *
 * The harness has validated the problem before any call here, checked that the CPU has `isa`,
 * and resolved the scale (task->scale is never 0). */
#ifndef ATTN_VARIANT_H
#define ATTN_VARIANT_H

#include "attn.h"
#include "half.h"

#include <math.h>
#include <string.h>

/* ISA feature bits. x86 bits mean "the CPU has it and the OS saves its register state". */
enum attn_isa_bit {
    ATTN_ISA_SSE42 = 1u << 0,
    ATTN_ISA_AVX = 1u << 1,
    ATTN_ISA_AVX2 = 1u << 2,
    ATTN_ISA_FMA = 1u << 3,
    ATTN_ISA_F16C = 1u << 4,
    ATTN_ISA_AVX512F = 1u << 5,
    ATTN_ISA_AVX512BW = 1u << 6,
    ATTN_ISA_AVX512VL = 1u << 7,
    ATTN_ISA_AVX512DQ = 1u << 8,
    ATTN_ISA_AVX512BF16 = 1u << 9,
    ATTN_ISA_AVX512FP16 = 1u << 10,
    ATTN_ISA_AVX512VNNI = 1u << 11,
    ATTN_ISA_AMX = 1u << 12,
    ATTN_ISA_NEON = 1u << 16, /* AArch64 Advanced SIMD */
    ATTN_ISA_ARM_FP16 = 1u << 17,
    ATTN_ISA_ARM_BF16 = 1u << 18,
    ATTN_ISA_SVE = 1u << 19,
    ATTN_ISA_SVE2 = 1u << 20,
    ATTN_ISA_SVE_BF16 = 1u << 21, /* SVE's BF16 instructions (BFDOT, BFMMLA, BFCVT on Z) */
};

/* The roofline of the instructions a variant is built on: its records' peak_fraction is against
 * the peak that `attnbench peak` measures for them (harness/peak.h). */
typedef enum attn_roofline {
    ATTN_ROOFLINE_FMA,      /* float32 FMA at the widest vector the CPU has: portable C, BLAS */
    ATTN_ROOFLINE_FMA256,   /* float32 FMA on 256-bit vectors (AVX2) */
    ATTN_ROOFLINE_FMA512,   /* float32 FMA on 512-bit vectors (AVX-512) */
    ATTN_ROOFLINE_BF16_DOT, /* bf16 pair dot products into float32: VDPBF16PS zmm (AVX512_BF16),
                             * SVE BFDOT (no loop measures it on AArch64 yet) */
    ATTN_ROOFLINE_AMX_BF16, /* bf16 tile products, TDPBF16PS (AMX-BF16) */
    ATTN_ROOFLINE_COUNT
} attn_roofline;

/* The roofline's name, as records and `attnbench peak` spell it. */
static inline const char *attn_roofline_name(attn_roofline r)
{
    static const char *const names[ATTN_ROOFLINE_COUNT] = {"fma", "fma256", "fma512", "bf16_dot",
                                                           "amx_bf16"};
    return (unsigned)r < ATTN_ROOFLINE_COUNT ? names[r] : "?";
}

/* What a variant may know of the machine when it picks default parameters: detected facts,
 * 0 where a fact is unknown (no hwloc, no sysconf answer, an emulator). The default rules
 * (attn_default_rule) replace an unknown fact by its documented fallback (attn_machine_fact). */
typedef struct attn_machine {
    uint32_t isa;           /* attn_isa_bit mask, after ATTN_DISABLE_ISA */
    int64_t l1d_bytes;      /* per core */
    int64_t l2_bytes;       /* per core */
    int64_t l3_bytes;       /* one instance (shared by several cores) */
    /* Vector FMA instructions one core completes per cycle at 128, 256 and 512 bits (known
     * microarchitectures, cpu.c's table; never measured at start-up). 0 = unknown, or a
     * width the CPU lacks (no variant needing it runs then). */
    int fma_per_cycle[3];
} attn_machine;

/* The facts a default rule may read, and their fallbacks when unknown (attn_machine_fact). */
typedef enum attn_fact {
    ATTN_FACT_NONE, /* a fixed value: the register tile or the algorithm decides, not the cache */
    ATTN_FACT_L1D,  /* fallback 32 KiB: every x86-64 core since 2006 has 32-48 KiB */
    ATTN_FACT_L2,   /* fallback 1 MiB: per core on Skylake-SP, Zen 4, Zen 5 (2 MiB on SPR/EMR) */
    ATTN_FACT_L3,   /* fallback 8 MiB */
    ATTN_FACT_COUNT
} attn_fact;

/* One parameter's default, as data (the BLIS way: a table of block sizes per family, each cache
 * block paired with its register multiple):
 *
 *   fact NONE:  value = fixed
 *   otherwise:  value = clamp(round_down(fact / cache_div / unit_bytes, multiple_of), min, max)
 *               unit_bytes = per_d · round_up(d, d_multiple) + per_lk · Lk
 *
 * i.e. "so many units (keys of a K/V block, rows of a query block) that their bytes fill
 * 1/cache_div of that cache". multiple_of is the parameter's own (attn_param_info); min and max
 * are multiples of it; max_half replaces max for bf16/f16 inputs when nonzero. */
typedef struct attn_default_rule {
    attn_fact fact;
    int32_t cache_div;
    int32_t per_d, per_lk, d_multiple;
    int32_t min, max, max_half;
    int32_t fixed;
    const char *what; /* what the unit's bytes are, or why the value is fixed */
} attn_default_rule;

/* A fact of m, or its fallback when m does not know it; *detected says which. */
int64_t attn_machine_fact(const attn_machine *m, attn_fact fact, bool *detected);
/* Applies one rule per parameter (rules[i] for v->params[i]). */
void attn_default_apply(const attn_default_rule *rules, const attn_param_info *params, int count,
                        const attn_problem *p, const attn_machine *m, int32_t *values);
/* One line on how rule i chose its value: "1/4 of L2 (1 MiB, detected) / 1024 B per unit". */
void attn_default_explain(const attn_default_rule *rule, const attn_problem *p,
                          const attn_machine *m, char *buf, size_t len);
const char *attn_fact_name(attn_fact fact);
/* Float32 FLOPs per cycle of one core with FMAs of `vector_bits` (128, 256, 512): 2 · lanes ·
 * m->fma_per_cycle, or 2 · lanes · 2 when that is unknown (the fallback: two FMA pipes, as on
 * Intel since Haswell and on Zen 2-5 at 256 bits); *known says which. */
int64_t attn_machine_flops_per_cycle(const attn_machine *m, int vector_bits, bool *known);

/* One call of a variant: the whole problem, or a slice of it. A slice is a range of
 * (batch, kv head) groups — flat index g = b·Hkv + hkv, every query head of the group included —
 * and a range of query rows. The harness may run disjoint slices on different threads, each
 * with its own workspace. */
typedef struct attn_task {
    const attn_problem *problem;
    float scale;                /* resolved: never 0 */
    const int32_t *params;      /* the variant's parameter values, in declared order */
    const void *q, *k, *v;      /* elements of problem->dtype */
    float *o;                   /* always float32: the harness converts a half output */
    void *workspace;            /* workspace_size() bytes, 64-byte aligned, uninitialised */
    int64_t group_begin, group_end; /* [begin, end) over B·Hkv */
    int64_t row_begin, row_end;     /* [begin, end) over Lq */
} attn_task;

/* Unnormalised results of a task's rows over a range of keys: the harness splits a decode
 * problem's keys over threads and merges the partials itself, in a fixed order. Row index
 * (g - group_begin)·count + r, with count and r as in attn_group_rows. Per row, over its keys
 * in the range (after the key limit and the mask): max = the largest score (-INFINITY when none),
 * sum = Σ exp(s_j - max), acc[row·d + c] = Σ exp(s_j - max)·v_j[c]. A NaN score makes sum NaN. */
typedef struct attn_partial {
    float *max; /* [rows] */
    float *sum; /* [rows] */
    float *acc; /* [rows][d] */
} attn_partial;

typedef struct attn_variant {
    const char *name;
    const char *description;
    uint32_t isa;              /* attn_isa_bit mask it needs; 0 = portable C */
    /* Declared max_rel_err (normwise) against the float64 oracle run on the inputs the variant
     * computes from: the inputs themselves, or rounded to bf16 when compute_dtype is ATTN_BF16. */
    double tolerance;
    unsigned dtypes;           /* input types it reads, bits 1u << attn_dtype; 0 = float32 only */
    unsigned kv_dtypes;        /* quantized K/V it reads: bits 1u << ATTN_INT8, ATTN_Q4; 0 = none */
    attn_dtype compute_dtype;  /* ATTN_BF16 when Q, K, V and P are rounded to bf16 inside */
    attn_roofline roofline;    /* the peak its instructions can reach */
    /* For a variant that calls a library: the library's kernel that runs it (OpenBLAS's core
     * name); NULL for the others. */
    const char *(*blas_core)(void);
    /* A yardstick, not a candidate: runnable by name (bench-kernels prints it beside the
     * variant it measures), never chosen by the planner, the estimate or the tuner. */
    bool reference_only;
    int param_count;
    const attn_param_info *params;
    /* Default of each parameter (one rule per params[i], in order: attn_default_rule); NULL
     * when the variant has no parameters. */
    const attn_default_rule *defaults;
    /* Widest vector its float32 FMAs use (128 NEON or the baseline build of portable C, 256
     * AVX2, 512 AVX-512): the planner's estimate ranks variants by the machine's FMA rate at
     * this width (attn_machine.fma_per_cycle). 0: scalable (SVE), the CPU's vector length,
     * which attn_variant_get reports (attn_cpu.sve_vector_bits; 0 when the CPU lacks SVE). */
    int vector_bits;
    /* Constraints beyond each parameter's range and multiple (register budget, ...): returns
     * false and writes why when the values cannot run. NULL when ranges say everything. */
    bool (*params_valid)(const attn_problem *p, const int32_t *values, char *why, size_t why_len);
    /* Workspace bytes one task needs (per thread); 0 when none. The harness checks p's sizes
     * fit in 64 bits first, but a variant multiplying large sizes must still guard overflow:
     * return SIZE_MAX when the size cannot be represented. */
    size_t (*workspace_size)(const attn_problem *p, const int32_t *values);
    /* Computes the task's slice of O. Returns ATTN_OK; may not fail on a validated problem.
     * NULL when run_partial does it (below). */
    attn_status (*run)(const attn_task *task);
    /* Optional (NULL: the harness never splits keys for this variant): like run, over keys
     * [key_begin, key_end) only, writing partials to *out instead of O. Same workspace. With
     * out NULL and every key, it writes O as run would: a variant whose one function takes a
     * key range leaves run NULL and the harness calls this for whole tasks too. */
    attn_status (*run_partial)(const attn_task *task, int64_t key_begin, int64_t key_end,
                               const attn_partial *out);
    /* The options of current models it implements (attn_feature bits: window, ALiBi, softcap,
     * sinks); the harness refuses a problem using another, naming it. Partials (run_partial)
     * never include the sink: the harness adds it when it merges them. */
    unsigned features;
    /* Optional: why the variant cannot compute p exactly as the API defines it, for what
     * `features` and `dtypes` cannot say (ggml's mask is f16: a float32 additive mask would be
     * rounded); NULL when it can. The harness refuses such a problem as unsupported with it. */
    const char *(*refuses)(const attn_problem *p);
    /* Optional, for a variant whose library picks its own instructions (oneDNN's JIT), or
     * that has an optional path beyond its `isa` (avx512's VNNI for quantized K/V): the ISA
     * bits the harness allows here (ATTN_DISABLE_ISA applied), told once at CPU detection,
     * before any other call of the variant, so that it keeps within them. */
    void (*limit_isa)(uint32_t isa);
    /* Optional, for a variant whose library was compiled for fixed instructions it cannot be
     * told to leave (ggml built with GGML_NATIVE): those ISA bits, needed beside `isa`
     * (attn_variant_isa), so that a CPU without them, or ATTN_DISABLE_ISA, rules it out. */
    uint32_t (*library_isa)(void);
} attn_variant;

/* Every ISA bit the variant needs: its own and its library's build's. */
static inline uint32_t attn_variant_isa(const attn_variant *v)
{
    return v->isa | (v->library_isa ? v->library_isa() : 0u);
}

/* The parameters of a descriptor, from its two arrays: sets .params, .defaults and .param_count,
 * the count computed, and checked at compile time to match the rules and fit ATTN_MAX_PARAMS:
 *     static const attn_variant attn_variant_x = {..., ATTN_PARAMS(x_params, x_defaults), ...};
 * A variant without parameters leaves the three fields out (0 and NULL). */
#define ATTN_COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))
#define ATTN_PARAMS(params_array, defaults_array)                                                 \
    .params = (params_array), .defaults = (defaults_array),                                       \
    .param_count = (int)ATTN_COUNT_OF(params_array) + 0 * (int)sizeof(struct {                    \
        _Static_assert(ATTN_COUNT_OF(params_array) == ATTN_COUNT_OF(defaults_array),              \
                       "one default rule per parameter");                                         \
        _Static_assert(ATTN_COUNT_OF(params_array) <= ATTN_MAX_PARAMS,                            \
                       "more parameters than ATTN_MAX_PARAMS");                                   \
        int unused;                                                                               \
    })

/* For expanding variant_list.h by each line's built_when (registry.c, tests/test_defaults.c):
 * ATTN_WHEN(cond)(x) is x (commas included) when cond expands to 1 and nothing when it expands
 * to 0; ATTN_UNLESS the reverse. A condition that is not a macro of 0 or 1 fails to compile. */
#define ATTN_CAT_(a, b) a##b
#define ATTN_CAT(a, b) ATTN_CAT_(a, b)
#define ATTN_WHEN_1(...) __VA_ARGS__
#define ATTN_WHEN_0(...)
#define ATTN_UNLESS_1(...)
#define ATTN_UNLESS_0(...) __VA_ARGS__
#define ATTN_WHEN(cond) ATTN_CAT(ATTN_WHEN_, cond)
#define ATTN_UNLESS(cond) ATTN_CAT(ATTN_UNLESS_, cond)

/* The registry: every variant compiled into this build, best first (registry.c expands
 * variant_list.h). */
extern const attn_variant *const attn_registry[];
extern const int attn_registry_count;

/* Variants of the project left out of this build (other architecture, missing library), ended
 * by a {NULL, NULL} entry (registry.c). */
typedef struct attn_absent_variant {
    const char *name, *why;
} attn_absent_variant;
extern const attn_absent_variant attn_registry_absent[];

/* ---- helpers shared by the variants (all static inline) ---------------------------------- */

/* ---- quantized K/V (attn.h: attn_dtype, attn_problem.kv_dtype) ---- */
#define ATTN_Q4_BLOCK 32 /* q4: values per float16 scale along head_dim */

/* The type K and V are stored in: kv_dtype when quantized, else dtype. */
static inline attn_dtype attn_kv_dtype_of(const attn_problem *p)
{
    return p->kv_dtype == ATTN_INT8 || p->kv_dtype == ATTN_Q4 ? p->kv_dtype : p->dtype;
}
static inline bool attn_kv_quantized(const attn_problem *p)
{
    return p->kv_dtype == ATTN_INT8 || p->kv_dtype == ATTN_Q4;
}
/* Scales per K/V row: 1 (int8) or head_dim / 32 (q4). */
static inline int64_t attn_kv_scales_per_row(const attn_problem *p)
{
    return p->kv_dtype == ATTN_Q4 ? p->head_dim / ATTN_Q4_BLOCK : 1;
}
/* Scale row (b, h, j) of K ('k') or V ('v') in a quantized problem: float32 (int8) or float16
 * bits (q4). `scales` is p->k_scale or p->v_scale. */
static inline const void *attn_kv_scale_row(const attn_problem *p, char tensor, const void *scales,
                                            int64_t b, int64_t h, int64_t j)
{
    const attn_strides *s = tensor == 'k' ? &p->k_scale_strides : &p->v_scale_strides;
    const int64_t e = b * s->batch + h * s->head + j * s->seq;
    return (const char *)scales + e * (int64_t)(p->kv_dtype == ATTN_Q4 ? 2 : 4);
}
/* Dequantizes one row of d values (attn.h's rules): x = scale·q. */
static inline void attn_dequant_row(attn_dtype t, const void *row, const void *scale, int64_t d,
                                    float *out)
{
    if (t == ATTN_INT8) {
        const int8_t *x = row;
        const float sc = *(const float *)scale;
        for (int64_t c = 0; c < d; c++)
            out[c] = sc * (float)x[c];
        return;
    }
    const uint8_t *x = row;
    const uint16_t *sc = scale;
    for (int64_t c = 0; c < d; c++) {
        const int nib = c % 2 ? x[c / 2] >> 4 : x[c / 2] & 0xf;
        out[c] = attn_f16_to_f32(sc[c / ATTN_Q4_BLOCK]) * (float)(nib - 8);
    }
}

/* ---- paged K/V (attn.h): every K/V row address goes through attn_kv_offset ------------------
 * A kernel that reads a block of keys from one row pointer at the seq stride asks attn_kv_run
 * how many keys follow that row in memory, and splits the block there (at a page edge). */

/* Entries per block-table row: block_table_stride, or ceil(Lk / page_size) when 0. */
static inline int64_t attn_block_table_stride(const attn_problem *p)
{
    return p->block_table_stride ? p->block_table_stride : (p->len_kv - 1) / p->page_size + 1;
}

/* Element offset of key j of sequence b, head h in K or V (strides s): b's row j when
 * contiguous; row j % page_size of page block_table[b][j / page_size] when paged. */
static inline int64_t attn_kv_offset(const attn_problem *p, const attn_strides *s, int64_t b,
                                     int64_t h, int64_t j)
{
    if (p->page_size == 0)
        return b * s->batch + h * s->head + j * s->seq;
    const int64_t page = p->block_table[b * attn_block_table_stride(p) + j / p->page_size];
    return page * s->batch + h * s->head + (j % p->page_size) * s->seq;
}

/* How many of the n keys from key j on lie at the seq stride from key j's row: all n when
 * contiguous, else those up to the end of j's page. */
static inline int64_t attn_kv_run(const attn_problem *p, int64_t j, int64_t n)
{
    if (p->page_size == 0)
        return n;
    const int64_t left = p->page_size - j % p->page_size;
    return left < n ? left : n;
}

/* Row (b, h, i) of Q, K or V as stored: float32 variants cast it, half-aware ones read
 * problem->dtype elements from it. K and V rows go through the page table when paged. */
static inline const void *attn_row(const attn_task *t, char tensor, int64_t b, int64_t h,
                                   int64_t i)
{
    const attn_problem *p = t->problem;
    const attn_strides *s = tensor == 'q' ? &p->q : tensor == 'k' ? &p->k : &p->v;
    const void *base = tensor == 'q' ? t->q : tensor == 'k' ? t->k : t->v;
    const int64_t e = tensor == 'q' ? b * s->batch + h * s->head + i * s->seq
                                    : attn_kv_offset(p, s, b, h, i);
    if (tensor != 'q' && attn_kv_quantized(p)) /* int8: a byte each; q4: two per byte */
        return (const char *)base + (p->kv_dtype == ATTN_Q4 ? e / 2 : e);
    return (const char *)base + e * (int64_t)(p->dtype == ATTN_F32 ? 4 : 2);
}

/* The addresses of keys j0 .. j0 + n - 1 of (b, h) of K or V ('k', 'v') in rows[0, n), as
 * attn_row gives them (one lookup per page run); rows[n, count) repeat rows[0], so a kernel's
 * padding lanes read a valid row. */
static inline void attn_kv_rows(const attn_task *t, char tensor, int64_t b, int64_t h,
                                int64_t j0, int n, int count, const void **rows)
{
    const attn_problem *p = t->problem;
    const int64_t seq = (tensor == 'k' ? p->k.seq : p->v.seq) * (p->dtype == ATTN_F32 ? 4 : 2);
    for (int j = 0; j < n;) {
        const int run = (int)attn_kv_run(p, j0 + j, n - j);
        const char *row = attn_row(t, tensor, b, h, j0 + j);
        for (int r = 0; r < run; r++)
            rows[j + r] = row + r * seq;
        j += run;
    }
    for (int j = n; j < count; j++)
        rows[j] = rows[0];
}

/* The rows of keys j .. j + count - 1 of (b, h) of K or V, for kernels that prefetch some keys
 * ahead of their loads: a row's address plus k rows is key j + k's row only when contiguous
 * (paged, it lies in another page's memory), so the rows come through the page table here, one
 * lookup per page run. Keys from end on (none to read there, and no table entries) take
 * near[0], a row the kernel reads anyway. */
static inline void attn_kv_rows_ahead(const attn_task *t, char tensor, int64_t b, int64_t h,
                                      int64_t j, int64_t end, int count,
                                      const void *const near[], const void **rows)
{
    if (j >= end) {
        for (int r = 0; r < count; r++)
            rows[r] = near[0];
        return;
    }
    attn_kv_rows(t, tensor, b, h, j, end - j < count ? (int)(end - j) : count, count, rows);
}

/* Copies keys [j0, j1) of (b, h) of K or V ('k', 'v'), as stored (problem->dtype), into dst
 * as contiguous rows of head_dim elements, a page run at a time: for kernels and BLAS calls
 * that need the keys at one stride. */
static inline void attn_kv_gather(const attn_task *t, char tensor, int64_t b, int64_t h,
                                  int64_t j0, int64_t j1, void *dst)
{
    const attn_problem *p = t->problem;
    const size_t esize = p->dtype == ATTN_F32 ? 4 : 2, row = (size_t)p->head_dim * esize;
    const int64_t seq = (tensor == 'k' ? p->k.seq : p->v.seq) * (int64_t)esize;
    char *out = dst;
    for (int64_t j = j0; j < j1;) {
        const int64_t n = attn_kv_run(p, j, j1 - j);
        const char *src = attn_row(t, tensor, b, h, j);
        for (int64_t r = 0; r < n; r++, out += row)
            memcpy(out, src + r * seq, row);
        j += n;
    }
}
/* Float32 rows, for the variants that read float32 only. */
static inline const float *attn_q_row(const attn_task *t, int64_t b, int64_t h, int64_t i)
{
    return attn_row(t, 'q', b, h, i);
}
static inline const float *attn_k_row(const attn_task *t, int64_t b, int64_t h, int64_t j)
{
    return attn_row(t, 'k', b, h, j);
}
static inline const float *attn_v_row(const attn_task *t, int64_t b, int64_t h, int64_t j)
{
    return attn_row(t, 'v', b, h, j);
}

/* Row (b, h, i) of Q, K or V as d floats: the row itself when the problem is float32, else
 * converted (exactly; quantized K/V dequantized) into buf, which holds head_dim floats. For the
 * portable variants. */
static inline const float *attn_row_f32(const attn_task *t, char tensor, int64_t b, int64_t h,
                                        int64_t i, float *buf)
{
    const void *row = attn_row(t, tensor, b, h, i);
    const attn_problem *p = t->problem;
    if (tensor != 'q' && attn_kv_quantized(p)) {
        const void *scales = tensor == 'k' ? p->k_scale : p->v_scale;
        attn_dequant_row(p->kv_dtype, row, attn_kv_scale_row(p, tensor, scales, b, h, i),
                         p->head_dim, buf);
        return buf;
    }
    const attn_dtype dt = t->problem->dtype;
    if (dt == ATTN_F32)
        return row;
    const uint16_t *x = row;
    for (int64_t c = 0; c < t->problem->head_dim; c++)
        buf[c] = dt == ATTN_BF16 ? attn_bf16_to_f32(x[c]) : attn_f16_to_f32(x[c]);
    return buf;
}
static inline float *attn_o_row(const attn_task *t, int64_t b, int64_t h, int64_t i)
{
    const attn_strides *s = &t->problem->o;
    return t->o + b * s->batch + h * s->head + i * s->seq;
}

/* Number of keys query row i may see before the additive mask: keys [0, attn_key_limit). It
 * folds the causal bound (j <= i + Lk - Lq) and the batch's key length. May be <= 0. */
static inline int64_t attn_key_limit(const attn_problem *p, int64_t b, int64_t i)
{
    int64_t n = p->len_kv;
    if (p->kv_lens && p->kv_lens[b] < n)
        n = p->kv_lens[b];
    const int64_t pos = i + p->len_kv - p->len_q; /* i', the query's position on the key axis */
    if (p->causal && pos + 1 < n)
        n = pos + 1;
    if (p->window_right >= 0 && p->window_right < n - pos) /* no overflow for a huge window */
        n = pos + p->window_right + 1;
    return n;
}

/* The model options (attn_feature bits) a problem uses; attn_problem_features of the API. Here
 * so that variants, below the runtime, can ask too. */
static inline unsigned attn_features_of(const attn_problem *p)
{
    return (p->window_left >= 0 || p->window_right >= 0 ? ATTN_FEATURE_WINDOW : 0u) |
           (p->alibi_slopes ? ATTN_FEATURE_ALIBI : 0u) |
           (p->softcap != 0.0f ? ATTN_FEATURE_SOFTCAP : 0u) | (p->sinks ? ATTN_FEATURE_SINKS : 0u) |
           (p->page_size != 0 ? ATTN_FEATURE_PAGED : 0u);
}

/* First key query row i may see: the sliding window's left edge, 0 without one. Keys
 * [attn_key_start, attn_key_limit) are the row's band; empty when start >= limit. */
static inline int64_t attn_key_start(const attn_problem *p, int64_t i)
{
    const int64_t pos = i + p->len_kv - p->len_q;
    return p->window_left >= 0 && p->window_left < pos ? pos - p->window_left : 0;
}

/* ---- the score epilogue of the model options (attn.h) -------------------------------------
 * logit = softcap(scale·q·k) + slope·(j - i') + mask, and a sink in the denominator. The
 * scalar forms here are the portable variants' and the reference of the vector ones. */

/* One row's options: softcap c (0 = none), ALiBi slope of its head (0 = none), its position
 * i' on the key axis, its head's sink logit (-INFINITY = none). */
typedef struct attn_row_opts {
    float softcap, slope, sink;
    int64_t pos;
} attn_row_opts;

static inline attn_row_opts attn_row_opts_of(const attn_problem *p, int64_t h, int64_t i)
{
    return (attn_row_opts){.softcap = p->softcap,
                           .slope = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f,
                           .sink = p->sinks ? p->sinks[h] : -INFINITY,
                           .pos = i + p->len_kv - p->len_q};
}

/* The logit of key j from the scaled score s = scale·q·k, before the additive mask. j - i' is
 * formed exactly in integers first, so the bias has one rounding, not one per term. */
static inline float attn_logit(const attn_row_opts *o, float s, int64_t j)
{
    if (o->softcap != 0.0f)
        s = o->softcap * tanhf(s / o->softcap);
    if (o->slope != 0.0f)
        s += o->slope * (float)(j - o->pos);
    return s;
}

/* attn_logit on a score in log2 units (s2 = scale·q·k·log2(e)), for kernels that work in
 * them: the same logit, times log2(e). */
static inline float attn_logit_log2(const attn_row_opts *o, float s2, int64_t j)
{
    const float log2e = 1.44269504088896340736f;
    if (o->softcap != 0.0f)
        s2 = o->softcap * log2e * tanhf(s2 / (o->softcap * log2e));
    if (o->slope != 0.0f)
        s2 += o->slope * log2e * (float)(j - o->pos);
    return s2;
}

/* What turns a row's accumulator Σ e^(s_j - m)·v_j (weights summing to l; m the running max
 * the weights are relative to, in natural units) into O: 1/l, or with a sink logit
 * e^(m - m') / (l·e^(m - m') + e^(sink - m')) with m' = max(m, sink), so that the max the
 * weights are taken against includes the sink and neither exponential overflows. l = 0 (no
 * key seen) gives 0: a zero row, whatever the sink; a NaN l stays NaN. */
static inline float attn_row_norm(float m, float l, float sink)
{
    if (l == 0.0f)
        return 0.0f;
    if (sink == -INFINITY)
        return 1.0f / l;
    const float top = fmaxf(m, sink), a = expf(m - top);
    return a / (l * a + expf(sink - top));
}

/* Additive mask row i (NULL when the problem has none). */
static inline const float *attn_mask_row(const attn_problem *p, int64_t i)
{
    if (!p->mask)
        return NULL;
    return p->mask + i * (p->mask_row_stride ? p->mask_row_stride : p->len_kv);
}

/* Softmax of one score row in place, -INFINITY marking an excluded key: weights summing to 1,
 * all zeros when every key is excluded, NaN throughout when a score is NaN (fmaxf skips it in
 * the max; it reaches the sum). The exact two-pass softmax of naive, blocked and cblas. */
static inline void attn_softmax_row_sink(float *s, int64_t n, float sink);
static inline void attn_softmax_row(float *s, int64_t n) { attn_softmax_row_sink(s, n, -INFINITY); }

/* attn_softmax_row with a sink logit in the denominator (-INFINITY: none; attn_row_norm). */
static inline void attn_softmax_row_sink(float *s, int64_t n, float sink)
{
    float max = -INFINITY, sum = 0.0f;
    for (int64_t j = 0; j < n; j++)
        max = fmaxf(max, s[j]);
    for (int64_t j = 0; j < n; j++) {
        s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - max);
        sum += s[j];
    }
    const float inv = attn_row_norm(max, sum, sink);
    for (int64_t j = 0; j < n; j++)
        s[j] *= inv;
}

/* Dot product of two float rows in eight independent partial sums, so the portable variants
 * vectorise at the baseline ISA without -ffast-math. */
static inline float attn_dot(const float *restrict a, const float *restrict b, int64_t n)
{
    float part[8] = {0};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int l = 0; l < 8; l++)
            part[l] += a[c + l] * b[c + l];
    float sum = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
    for (; c < n; c++)
        sum += a[c] * b[c];
    return sum;
}

/* Flattened query rows of one task group: row r = hh·rows + ii is query head
 * hkv·(Hq/Hkv) + hh at query index row_begin + ii, so a key block is reused by every query head
 * of a GQA group. */
typedef struct attn_group_rows {
    int64_t b, hkv, first_head, rows, count;
} attn_group_rows;

static inline attn_group_rows attn_group_rows_of(const attn_task *t, int64_t g)
{
    const attn_problem *p = t->problem;
    const int64_t group = p->heads_q / p->heads_kv, rows = t->row_end - t->row_begin;
    return (attn_group_rows){.b = g / p->heads_kv, .hkv = g % p->heads_kv,
                             .first_head = (g % p->heads_kv) * group, .rows = rows,
                             .count = group * rows};
}

#endif /* ATTN_VARIANT_H */
