/* ggml.c — a peer: llama.cpp's CPU flash attention, ggml_flash_attn_ext on ggml's CPU backend.
 *
 * Built only where the build finds an installed ggml (pkg-config ggml, or -Dggml_prefix=DIR);
 * nothing of ggml is in this tree. Two variants:
 *   ggml      float32 inputs: Q, K and V are read in place (ggml tensors are views of the
 *             caller's rows, with its strides), as a llama.cpp build with an f32 KV cache;
 *   ggml_f16  ggml with f16 K/V (llama.cpp's default KV cache). f16 inputs: K and V read in
 *             place as ggml's f16 tensors, Q widened to a float32 copy per call (exact; ggml
 *             takes an f32 Q). float32 inputs: Q read in place, K and V rounded to f16 copies
 *             per call (inside the timed call: use --dtype f16 to time it as llama.cpp runs).
 *             Where ggml's kernel takes one query row at a time (decode) it rounds Q to f16
 *             and keeps the V accumulator in f16: compute_dtype f16, and its tolerance.
 * What ggml's API needs that the problem does not hold is made per call, inside the timed call:
 * the f16 mask of the causal bound, the window and kv_lens (0 or -inf, exact in f16), and the
 * copy of O out of ggml's [rows][heads][d] result. Declared: GQA, causal, window, kv_lens,
 * sinks. Refused: an additive float32 mask (ggml's mask is f16: it would be rounded); ALiBi
 * (ggml derives the slopes from max_bias by its own formula, the problem's are arbitrary); soft
 * capping (ggml's tiled path, 64+ query rows, pads a partial key tile with -inf scores *before*
 * the cap, and tanh turns them into -softcap: padded keys get weight — ggml d99724f2, 2026-08).
 *
 * One ggml graph per task group: Q [d, rows, group heads], K and V [d, Lk, 1] (ggml broadcasts
 * K/V over the GQA group), mask [Lk, rows]. The graph, its plan, work buffer, mask and output
 * buffers and a one-thread ggml threadpool are made once per shape and kept in a process-wide
 * cache (an instance is used by one call at a time: its tensors point into that call's
 * arrays): nothing is allocated here per call, but ggml_graph_compute itself allocates twice on
 * every call (its ggml_cpu_init makes and frees a ggml context). Threads: ggml computes each task
 * on one thread
 * (its cplan's n_threads = 1, its threadpool starts no thread), the harness's pool gives the
 * parallelism, as for the BLAS peers. */
#include "variant.h"

#include <ggml-cpu.h>
#include <ggml.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ggml_key {
    attn_dtype dtype;                   /* of the inputs */
    bool kv_f16;                        /* ggml's K and V are f16 (ggml_f16) */
    int64_t d, rows, heads, keys;       /* heads: query heads of a group */
    int64_t q_seq, q_head, k_seq, v_seq; /* element strides (q: 0 for the f16 path's copy) */
    bool mask, sinks;
    float scale, softcap;
} ggml_key;

typedef struct ggml_instance {
    ggml_key key;
    struct ggml_context *ctx; /* tensor and graph headers only: no tensor data */
    struct ggml_tensor *q, *k, *v, *mask, *sinks, *out;
    struct ggml_cgraph *graph;
    struct ggml_cplan plan;
    struct ggml_threadpool *pool;
    float *q32;    /* f16 inputs: Q widened, [heads][rows][d] */
    uint16_t *k16, *v16; /* ggml_f16 on float32 inputs: K and V rounded, [keys][d] */
    float *result; /* ggml's output, [rows][heads][d] */
    uint16_t *mask16;
    bool in_use;
    uint64_t last_use;
} ggml_instance;

static bool key_equal(const ggml_key *a, const ggml_key *b)
{
    return a->dtype == b->dtype && a->kv_f16 == b->kv_f16 && a->d == b->d && a->rows == b->rows && a->heads == b->heads &&
           a->keys == b->keys && a->q_seq == b->q_seq && a->q_head == b->q_head &&
           a->k_seq == b->k_seq && a->v_seq == b->v_seq && a->mask == b->mask &&
           a->sinks == b->sinks && memcmp(&a->scale, &b->scale, sizeof a->scale) == 0 &&
           memcmp(&a->softcap, &b->softcap, sizeof a->softcap) == 0;
}

static void instance_free(ggml_instance *x)
{
    if (!x)
        return;
    if (x->pool)
        ggml_threadpool_free(x->pool);
    if (x->ctx)
        ggml_free(x->ctx);
    free(x->plan.work_data);
    free(x->q32);
    free(x->k16);
    free(x->v16);
    free(x->result);
    free(x->mask16);
    free(x);
}

/* A tensor header over elements of `type` with the given sizes and element strides (ggml's
 * nb[] are bytes); its data pointer is set per call. */
static struct ggml_tensor *view(struct ggml_context *ctx, enum ggml_type type, int64_t n0,
                                int64_t n1, int64_t n2, int64_t s1, int64_t s2)
{
    struct ggml_tensor *t = ggml_new_tensor_3d(ctx, type, n0, n1, n2);
    const size_t e = ggml_type_size(type);
    t->nb[1] = (size_t)s1 * e;
    t->nb[2] = (size_t)s2 * e;
    t->nb[3] = t->nb[2] * (size_t)n2;
    return t;
}

static ggml_instance *instance_create(const ggml_key *key)
{
    ggml_instance *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->key = *key;
    const size_t meta = 8 * ggml_tensor_overhead() + ggml_graph_overhead_custom(8, false);
    x->ctx = ggml_init((struct ggml_init_params){.mem_size = meta, .no_alloc = true});
    const size_t rows_heads = (size_t)(key->rows * key->heads);
    x->result = malloc(rows_heads * (size_t)key->d * sizeof(float));
    if (key->dtype == ATTN_F16)
        x->q32 = malloc(rows_heads * (size_t)key->d * sizeof(float));
    if (key->mask)
        x->mask16 = malloc((size_t)(key->rows * key->keys) * sizeof(uint16_t));
    const bool round_kv = key->kv_f16 && key->dtype == ATTN_F32;
    if (round_kv) {
        x->k16 = malloc((size_t)(key->keys * key->d) * sizeof(uint16_t));
        x->v16 = malloc((size_t)(key->keys * key->d) * sizeof(uint16_t));
    }
    if (!x->ctx || !x->result || (key->dtype == ATTN_F16 && !x->q32) ||
        (key->mask && !x->mask16) || (round_kv && (!x->k16 || !x->v16))) {
        instance_free(x);
        return NULL;
    }
    const enum ggml_type kv = key->kv_f16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
    const int64_t k_seq = round_kv ? key->d : key->k_seq, v_seq = round_kv ? key->d : key->v_seq;
    if (key->dtype == ATTN_F16) /* the dense widened copy */
        x->q = view(x->ctx, GGML_TYPE_F32, key->d, key->rows, key->heads, key->d,
                    key->rows * key->d);
    else
        x->q = view(x->ctx, GGML_TYPE_F32, key->d, key->rows, key->heads, key->q_seq,
                    key->q_head);
    x->k = view(x->ctx, kv, key->d, key->keys, 1, k_seq, k_seq * key->keys);
    x->v = view(x->ctx, kv, key->d, key->keys, 1, v_seq, v_seq * key->keys);
    if (key->mask)
        x->mask = ggml_new_tensor_2d(x->ctx, GGML_TYPE_F16, key->keys, key->rows);
    x->out = ggml_flash_attn_ext(x->ctx, x->q, x->k, x->v, x->mask, key->scale, 0.0f,
                                 key->softcap);
    ggml_flash_attn_ext_set_prec(x->out, GGML_PREC_F32);
    if (key->sinks) {
        x->sinks = ggml_new_tensor_1d(x->ctx, GGML_TYPE_F32, key->heads);
        ggml_flash_attn_ext_add_sinks(x->out, x->sinks);
    }
    x->out->data = x->result;
    x->graph = ggml_new_graph_custom(x->ctx, 8, false);
    ggml_build_forward_expand(x->graph, x->out);
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(1);
    x->pool = ggml_threadpool_new(&tpp);
    x->plan = ggml_graph_plan(x->graph, 1, x->pool);
    x->plan.work_data = x->plan.work_size ? malloc(x->plan.work_size) : NULL;
    if (!x->pool || (x->plan.work_size && !x->plan.work_data)) {
        instance_free(x);
        return NULL;
    }
    return x;
}

/* ---- the instance cache ------------------------------------------------------------------ */

enum { CACHE_SLOTS = 32 };

static struct {
    pthread_mutex_t lock;
    ggml_instance *slot[CACHE_SLOTS];
    uint64_t clock;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* An instance for key, marked in use: a cached one, else made now and cached in a free slot or
 * in place of the least recently used idle one; with every slot busy, made for this call only
 * (*cached false). NULL without memory. */
static ggml_instance *acquire(const ggml_key *key, bool *cached)
{
    pthread_mutex_lock(&cache.lock);
    int victim = -1;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        ggml_instance *x = cache.slot[i];
        if (x && !x->in_use && key_equal(&x->key, key)) {
            x->in_use = true;
            x->last_use = ++cache.clock;
            pthread_mutex_unlock(&cache.lock);
            *cached = true;
            return x;
        }
        if (!x) {
            if (victim < 0 || cache.slot[victim])
                victim = i;
        } else if (!x->in_use && (victim < 0 || (cache.slot[victim] &&
                                                 x->last_use < cache.slot[victim]->last_use)))
            victim = i;
    }
    ggml_instance *made = instance_create(key);
    *cached = made && victim >= 0;
    if (*cached) {
        instance_free(cache.slot[victim]);
        cache.slot[victim] = made;
        made->in_use = true;
        made->last_use = ++cache.clock;
    }
    pthread_mutex_unlock(&cache.lock);
    return made;
}

static void release(ggml_instance *x, bool cached)
{
    if (!cached) {
        instance_free(x);
        return;
    }
    pthread_mutex_lock(&cache.lock);
    x->in_use = false;
    pthread_mutex_unlock(&cache.lock);
}

/* ---- the run ----------------------------------------------------------------------------- */

/* The instructions ggml's CPU backend was compiled for (GGML_NATIVE: the build machine's): it
 * cannot be told to leave them, so the variant needs them (a CPU without them, or an
 * ATTN_DISABLE_ISA mask removing one, rules it out instead of a fault or a false record). */
static uint32_t ggml_library_isa(void)
{
    return (ggml_cpu_has_avx() ? ATTN_ISA_AVX : 0u) | (ggml_cpu_has_avx2() ? ATTN_ISA_AVX2 : 0u) |
           (ggml_cpu_has_fma() ? ATTN_ISA_FMA : 0u) | (ggml_cpu_has_f16c() ? ATTN_ISA_F16C : 0u) |
           (ggml_cpu_has_avx512() ? ATTN_ISA_AVX512F : 0u) |
           (ggml_cpu_has_avx512_vnni() ? ATTN_ISA_AVX512VNNI : 0u) |
           (ggml_cpu_has_avx512_bf16() ? ATTN_ISA_AVX512BF16 : 0u);
}

static const char *ggml_refuses(const attn_problem *p)
{
    return p->mask ? "an additive float32 mask (ggml's mask is f16: it would be rounded)" : NULL;
}

static void fill_mask(const attn_task *t, int64_t b, uint16_t *mask)
{
    const attn_problem *p = t->problem;
    const uint16_t zero = 0x0000, minus_inf = 0xfc00; /* f16 */
    for (int64_t i = 0; i < t->row_end - t->row_begin; i++) {
        const int64_t start = attn_key_start(p, t->row_begin + i);
        const int64_t limit = attn_key_limit(p, b, t->row_begin + i);
        uint16_t *row = mask + i * p->len_kv;
        for (int64_t j = 0; j < p->len_kv; j++)
            row[j] = j >= start && j < limit ? zero : minus_inf;
    }
}

/* Keys [0, Lk) of K or V of (b, h), float32, rounded to a dense f16 [Lk][d] copy. */
static void round_rows(const attn_task *t, char tensor, int64_t b, int64_t h, uint16_t *out)
{
    const int64_t d = t->problem->head_dim;
    for (int64_t j = 0; j < t->problem->len_kv; j++) {
        const float *row = attn_row(t, tensor, b, h, j);
        for (int64_t c = 0; c < d; c++)
            out[j * d + c] = attn_f32_to_f16(row[c]);
    }
}

static attn_status run_with(const attn_task *t, bool kv_f16)
{
    const attn_problem *p = t->problem;
    const int64_t rows = t->row_end - t->row_begin, group = p->heads_q / p->heads_kv;
    const ggml_key key = {
        .dtype = p->dtype, .kv_f16 = kv_f16, .d = p->head_dim, .rows = rows, .heads = group, .keys = p->len_kv,
        .q_seq = p->dtype == ATTN_F16 ? 0 : p->q.seq, .q_head = p->dtype == ATTN_F16 ? 0 : p->q.head,
        .k_seq = p->k.seq, .v_seq = p->v.seq,
        .mask = p->causal || p->kv_lens || p->window_left >= 0 || p->window_right >= 0,
        .sinks = p->sinks != NULL, .scale = t->scale, .softcap = p->softcap};
    bool cached;
    ggml_instance *x = acquire(&key, &cached);
    if (!x)
        return ATTN_ERR_NOMEM;
    const int64_t d = p->head_dim;
    attn_status status = ATTN_OK;
    for (int64_t g = t->group_begin; g < t->group_end && status == ATTN_OK; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        if (p->dtype == ATTN_F16) {
            for (int64_t h = 0; h < group; h++)
                for (int64_t i = 0; i < rows; i++) {
                    const uint16_t *src =
                        attn_row(t, 'q', gr.b, gr.first_head + h, t->row_begin + i);
                    float *dst = x->q32 + (h * rows + i) * d;
                    for (int64_t c = 0; c < d; c++)
                        dst[c] = attn_f16_to_f32(src[c]);
                }
            x->q->data = x->q32;
        } else {
            x->q->data = (void *)attn_row(t, 'q', gr.b, gr.first_head, t->row_begin);
        }
        if (x->k16) {
            round_rows(t, 'k', gr.b, gr.hkv, x->k16);
            round_rows(t, 'v', gr.b, gr.hkv, x->v16);
            x->k->data = x->k16;
            x->v->data = x->v16;
        } else {
            x->k->data = (void *)attn_row(t, 'k', gr.b, gr.hkv, 0);
            x->v->data = (void *)attn_row(t, 'v', gr.b, gr.hkv, 0);
        }
        if (x->mask) {
            fill_mask(t, gr.b, x->mask16);
            x->mask->data = x->mask16;
        }
        if (x->sinks)
            x->sinks->data = (void *)(p->sinks + gr.first_head);
        if (ggml_graph_compute(x->graph, &x->plan) != GGML_STATUS_SUCCESS) {
            status = ATTN_ERR_NOMEM;
            break;
        }
        for (int64_t i = 0; i < rows; i++)
            for (int64_t h = 0; h < group; h++)
                memcpy(attn_o_row(t, gr.b, gr.first_head + h, t->row_begin + i),
                       x->result + (i * group + h) * d, (size_t)d * sizeof(float));
    }
    release(x, cached);
    return status;
}

static attn_status ggml_run(const attn_task *t)
{
    return run_with(t, false);
}

static attn_status ggml_f16_run(const attn_task *t)
{
    return run_with(t, true);
}

/* ---- what ran ---------------------------------------------------------------------------- */

/* "ggml 0.21.0 (d99724f2) CPU backend avx2 avx512 bf16, 1 thread per task; ...": ggml's
 * version and commit, the ISA its CPU backend was built for, and what each call converts. */
static void describe(char *text, size_t len, const char *conversions)
{
    ggml_cpu_init();
    snprintf(text, len, "ggml %s (%s) CPU backend%s%s%s, 1 thread per task; %s", ggml_version(),
             ggml_commit(), ggml_cpu_has_avx2() ? " avx2" : "",
             ggml_cpu_has_avx512() ? " avx512" : "", ggml_cpu_has_avx512_bf16() ? " bf16" : "",
             conversions);
}

static char core_f32[320], core_f16[320];

static void describe_f32(void)
{
    describe(core_f32, sizeof core_f32,
             "f32 Q/K/V read in place; per call: the f16 mask (causal, window, kv_lens), O copied");
}

static void describe_f16(void)
{
    describe(core_f16, sizeof core_f16,
             "f16 inputs: K/V read in place, Q f16->f32 per call; f32 inputs: K/V rounded to f16 "
             "per call; per call: the f16 mask (causal, window, kv_lens), O copied");
}

static const char *ggml_core(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_f32);
    return core_f32;
}

static const char *ggml_f16_core(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_f16);
    return core_f16;
}

const attn_variant attn_variant_ggml = {
    .name = "ggml",
    .description = "llama.cpp's CPU flash attention (ggml_flash_attn_ext), float32 K/V read in "
                   "place, one thread",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .vector_bits = 128,
    .run = ggml_run,
    .blas_core = ggml_core,
    .refuses = ggml_refuses,
    .library_isa = ggml_library_isa,
    .features = ATTN_FEATURE_WINDOW | ATTN_FEATURE_SINKS,
};

const attn_variant attn_variant_ggml_f16 = {
    .name = "ggml_f16",
    .description = "ggml with an f16 KV cache: f16 K/V read in place (f32 inputs: rounded per "
                   "call), one thread",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 5e-2, /* the f16 accumulator's error grows with the keys: 0.024 at 8192, 0.044
                        * at 32768 (decode, D1 and D2 shapes, Zen 4) */
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_F16,
    .compute_dtype = ATTN_F16,
    .vector_bits = 128,
    .run = ggml_f16_run,
    .blas_core = ggml_f16_core,
    .refuses = ggml_refuses,
    .library_isa = ggml_library_isa,
    .features = ATTN_FEATURE_WINDOW | ATTN_FEATURE_SINKS,
};
