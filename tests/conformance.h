/* conformance.h — what the files of the conformance runner share (tests/conformance*.c): the
 * test case and its typed forms, the reference, the output buffer with its guard bands, the
 * result of one run, the runner's state, and the functions each file offers the others.
 *
 *   conformance.c          the runner: options, the per-variant loop, reporting, ISA masks
 *   conformance_case.c     building a case, its input types and its float64 reference
 *   conformance_random.c   the shape tables and the drawn (seeded random) cases
 *   conformance_edge.c     the named edge cases
 *   conformance_invalid.c  invalid problems, refusals and the dispatch check
 *   conformance_guard.c    one guarded run: guard bands, caught signals, the output checks,
 *                          and the self-test that corrupts them on purpose
 *
 * Internal to the runner; not a library header. */
#ifndef ATTN_CONFORMANCE_H
#define ATTN_CONFORMANCE_H

#include "attn.h"
#include "oracle.h"
#include "rng.h"
#include "variant.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- random numbers: SplitMix64 of rng.h ------------------------------------------------- */

/* A generator with its own state: one per case, seeded from (run seed, case). */
typedef struct rng {
    uint64_t state;
} rng;

static inline uint64_t rng_next(rng *r) { return attn_rng_next(&r->state); }

static inline rng rng_seeded(uint64_t seed, uint64_t stream)
{
    return (rng){attn_rng_mix(seed ^ attn_rng_mix(stream + 0x632be59bd9b4e019u))};
}

/* Uniform in [0, 1). */
static inline double rng_unit(rng *r) { return attn_rng_unit(&r->state); }

/* Uniform integer in [lo, hi]. */
static inline int64_t rng_range(rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline bool rng_chance(rng *r, double p) { return rng_unit(r) < p; }

static inline float rng_float(rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)rng_unit(r);
}

static inline uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3u; /* FNV-1a */
    return h;
}

/* Hashes 8 bytes at a time (then the tail): each step is a bijection of the state, so any one
 * changed word changes the result. For checking that inputs stay unchanged, fast. */
static inline uint64_t hash_words(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3u;
    }
    return hash_bytes(h, b + i, n - i);
}

/* A test program may stop on out-of-memory: it is the environment failing, not a variant. */
void *checked_alloc(size_t count, size_t size);

/* ---- test cases (conformance_case.c) ------------------------------------------------------ */

/* A shape set: how many random cases, and the largest B·Hq·Lq·Lk·d a case may have
 * (conformance_random.c). shape_sets[0] is the full set, shape_sets[1] the reduced one. */
typedef struct shape_set {
    const char *name;
    int cases;
    double max_cost;
} shape_set;
extern const shape_set shape_sets[2];

typedef enum layout_kind { LAYOUT_BHLD, LAYOUT_BLHD, LAYOUT_PADDED } layout_kind;

typedef struct test_case {
    char name[96];
    int index;              /* random case number, or -1 for a named case */
    int edge;               /* named case number, or -1 for a random case */
    uint64_t seed;          /* this case's own seed (random parameters derive from it) */
    attn_problem p;         /* float32 in and out; a typed_case sets the element types */
    layout_kind layout;
    bool broadcast_kv;      /* K and V batch strides 0 */
    int32_t *kv_lens;
    float *mask;
    int64_t mask_elements;
    float *alibi, *sinks;   /* [Hq] each, or NULL */
    int32_t *block_table;   /* paged K/V: [B][row stride], or NULL */
    float *q, *k, *v;       /* the case as generated, in float32 */
    int64_t extent[4];      /* elements of q, k, v, o */
    unsigned char *owned;   /* [extent o]: 1 where an output element lives */
    int64_t empty_rows;     /* rows that attend to no key */
} test_case;

/* What the oracle says on the inputs a variant computes from, and the floor under the declared
 * tolerance (see LOGIT_ROUNDINGS) with what sets it. */
typedef struct reference {
    double *out;            /* the oracle's output, [B, Hq, Lq, d] */
    int64_t nan_rows, finite_rows; /* rows of it with / without NaN */
    double logit_max;       /* S: max over attended pairs of scale·Σ|q·k| + |mask| */
    double abs_max;         /* M: max over outputs of Σ_j p_j·|v_j| */
    double spread_max;      /* R: max over outputs of sqrt(Σ_j (p_j·v_j)²) (bf16 compute) */
    double underflow_max;   /* max over rows of n·2^-126·max_j |v_j| (see LOGIT_ROUNDINGS) */
    double ref_max;         /* ||O*||∞ */
    double floor;
} reference;

/* Which reference a variant is held to: its inputs as read (REF_READ) or, for a variant whose
 * compute_dtype is bf16 or f16, additionally rounded to that type (REF_BF16, REF_F16). */
enum { REF_READ, REF_BF16, REF_F16, REF_COUNT };

/* A case in one input type: Q, K and V rounded to it in buffers of its elements with the exact
 * extents (gaps of padded layouts hold NaN, as in float32), their widened values (what the
 * oracle reads), and the references, built when a variant needs them. For float32 the
 * buffers are the case's own. */
typedef struct typed_case {
    attn_dtype t;
    attn_problem p;         /* the case's problem with dtype = t and its out_dtype */
    void *q, *k, *v;
    float *wq, *wk, *wv;
    uint64_t input_hash;    /* of the typed inputs, the mask and kv_lens */
    void *k_scale, *v_scale; /* quantized K/V (tc->p.kv_dtype int8 or q4): owned here */
    bool have_ref[REF_COUNT];
    reference ref[REF_COUNT];
} typed_case;

void case_begin(test_case *c, uint64_t seed, int64_t batch, int64_t hq, int64_t hkv, int64_t lq,
                int64_t lk, int64_t d);
void case_set_layout(test_case *c, layout_kind layout, bool broadcast_kv, rng *r);
void case_set_kv_lens(test_case *c, const int32_t *lens);
void case_set_mask(test_case *c, int64_t row_stride, float lo, float hi, double p_inf,
                   double p_row_inf, rng *r);
float *tensor_row(float *base, const attn_strides *s, int64_t b, int64_t h, int64_t i);
void case_alloc_inputs(test_case *c, float amplitude, rng *r);
void case_finish(test_case *c);
void case_free(test_case *c);
bool row_attends(const attn_problem *p, int64_t b, int64_t i);
uint64_t typed_input_hash(const test_case *c, const typed_case *tc);
void typed_prepare(const test_case *c, attn_dtype t, attn_dtype out, typed_case *tc);
/* The case with float32 Q and O and K/V quantized to kv (ATTN_INT8, ATTN_Q4) by
 * attn_quantize_kv; the oracle reads their dequantized values. False (nothing to free) when
 * the case's shape or strides cannot be quantized so (q4: head_dim % 32, odd strides). */
bool typed_prepare_kv(const test_case *c, attn_dtype kv, typed_case *tc);
/* The type a typed case is counted and replayed under: its quantized kv_dtype, else tc->t. */
static inline attn_dtype typed_label(const typed_case *tc)
{
    return tc->p.kv_dtype == ATTN_INT8 || tc->p.kv_dtype == ATTN_Q4 ? tc->p.kv_dtype : tc->t;
}
const reference *typed_reference(const test_case *c, typed_case *tc, int which);
void typed_free(typed_case *tc);
void describe_case(const test_case *c, const attn_problem *p, char *buf, size_t len);
/* The output type of a case in input type t: a half output a third of the time. */
/* The model options: ALiBi slopes (the standard ones or drawn), sinks drawn in [lo, hi], and
 * the options of a random case drawn from its own generator (conformance_case.c). */
void case_set_alibi(test_case *c, bool standard, rng *r);
void case_set_sinks(test_case *c, float lo, float hi, rng *r);
void draw_options(test_case *c);
/* Paged K/V (attn.h): page_size keys a page, the pool's layout following the case's, each
 * sequence's pages shuffled (repeat: drawn with replacement, so pages repeat), spare pages no
 * table names; before case_alloc_inputs, which leaves the rows no table names NaN. draw_pages
 * pages a random case a third of the time, from its own generator. */
void case_set_pages(test_case *c, int64_t page_size, bool repeat, rng *r);
void draw_pages(test_case *c);
attn_dtype draw_out_dtype(const test_case *c, attn_dtype t);
/* The reference a variant is held to (see REF_BF16). */
int reference_of(const attn_variant_info *info);

/* ---- running one variant on one case (conformance_guard.c) -------------------------------- */

/* Elements of guard band before and after the output. */
#define GUARD 64

/* The output: GUARD + extent + GUARD elements of the output type. Offsets are in elements from
 * element 0 of the output (negative: the guard before it). */
typedef struct out_buffer {
    attn_dtype t;
    size_t esize;
    unsigned char *base;
    unsigned char *o; /* base + GUARD elements */
    int64_t total;
} out_buffer;
/* Deliberate damage for --selftest-broken, applied after a correct run. */
typedef enum corruption {
    CORRUPT_NONE,
    CORRUPT_OUTPUT,       /* one output element off by 0.5·||O||∞ */
    CORRUPT_OUTPUT_NAN,   /* one output element of a finite row set to NaN */
    CORRUPT_EMPTY_ROW,    /* one element of a row without keys set to the smallest subnormal */
    CORRUPT_UNWRITTEN,    /* one output element left at the sentinel */
    CORRUPT_GUARD_BEFORE, /* the element just before the output */
    CORRUPT_GUARD_AFTER,  /* the element just after the output's extent */
    CORRUPT_ROW_GAP,      /* an element between two rows of a padded output */
    CORRUPT_INPUT,        /* one input element changed */
} corruption;

typedef struct run_result {
    attn_status status;
    char message[320];
    int signal;
    char params[200];               /* how it ran: parameters and threads */
    attn_error_metrics m;
    double tolerance;
    int64_t guard_bad, guard_first; /* elements outside the output that changed; the first */
    int64_t unwritten;              /* output elements still holding the sentinel */
    int64_t empty_nonzero;          /* elements of rows without keys that are not 0 */
    int64_t repeat_differs;         /* elements whose bits differ on a second, identical run */
    bool repeated;
    bool inputs_changed;
    bool ok;
} run_result;

void out_init(out_buffer *ob, int64_t extent, attn_dtype t);
void out_fill_sentinel(out_buffer *ob);
bool out_untouched(const out_buffer *ob);

typedef void (*crash_test_fn)(void);
void install_crash_handlers(void);
int guarded_run(const char *context, const char *name, const attn_problem *p,
                const attn_params *params, const void *q, const void *k, const void *v, void *o,
                attn_error *err, attn_status *status, crash_test_fn crash_test);
void run_case(const attn_variant_info *info, const test_case *c, typed_case *tc, int threads,
              corruption corrupt, const char *replay, run_result *res);

/* ---- the runner (conformance.c) ----------------------------------------------------------- */

/* Random cases run in every input type a variant reads: float32 on every case and, when more
 * than one type is tested, bf16 on every 5th case (index % 5 == 1) and f16 on every 7th
 * (index % 7 == 3). That keeps the whole run near 1.5 times float32's (f16 costs the most: the
 * portable variants convert it in software). The periods are prime to the 8 head dims, so each
 * subset still cycles through all of them. With --dtype naming one type, or with --case, every
 * case runs in it. A third of the half runs write a half output (out_dtype = dtype). */
extern const int half_every[ATTN_DTYPE_COUNT];
extern const int half_slot[ATTN_DTYPE_COUNT];
#define HALF_OUTPUT_CHANCE (1.0 / 3.0)

typedef struct variant_state {
    attn_variant_info info;
    char isa[128], why_not[192]; /* copies: attn_variant_get's strings are reused */
    bool selected;
    int passed, failed;
    /* Case runs per input type, and how many of them wrote a half output. */
    int dtype_passed[ATTN_KV_DTYPE_COUNT], dtype_failed[ATTN_KV_DTYPE_COUNT];
    int dtype_half_out[ATTN_KV_DTYPE_COUNT];
} variant_state;

typedef struct runner {
    uint64_t seed;
    const char *filter;       /* --variant, or NULL */
    unsigned dtypes;          /* --dtype: bit (1u << attn_dtype), the quantized K/V types too */
    int cases;                /* random cases */
    int64_t only_case;        /* --case N, or -1 */
    int64_t only_edge;        /* --edge N, or -1 */
    const shape_set *shapes;
    bool verbose;
    variant_state *vs;
    int nv;
    int api_passed, api_failed; /* checks that belong to no variant */
} runner;

bool variant_reads(const attn_variant_info *info, attn_dtype t);
void replay_hint(const runner *rn, const char *variant, const char *dtype, int case_index,
                 int edge_index, char *buf, size_t len);
void record(runner *rn, variant_state *vs, bool ok);
void run_on_selected(runner *rn, const test_case *c, typed_case *tc, int threads);

/* Each part of a run (conformance_random.c, conformance_edge.c, conformance_invalid.c,
 * conformance_guard.c). */
void run_random_cases(runner *rn);
extern const int edge_case_count;
void run_edge_cases(runner *rn);
void run_invalid_checks(runner *rn);
void check_dispatch(runner *rn);
int selftest(runner *rn);

#endif
