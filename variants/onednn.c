/* onednn.c — a peer: the BLAS baseline's algorithm (gemm_softmax.h) through oneDNN's C API.
 *
 * Both products are oneDNN matmul primitives (the scale is the first one's output scale), the row
 * softmax is oneDNN's softmax primitive (softmax_v2, accurate) over the dense [rows][keys]
 * scores. The driver writes the logits into S first (soft cap and ALiBi applied, -inf for
 * excluded keys, the additive mask added) and handles causal and windowed problems in blocks of
 * query rows, each over the keys its rows see; a head's sink is one more score of the softmax,
 * whose weight is left out of P·V (onednn_softmax). oneDNN picks its JIT kernels for the CPU
 * (brgemm or its jit sgemm, at AVX2, AVX-512, ...; DNNL_MAX_CPU_ISA caps it).
 *
 * Primitives are created once per shape and kept in a small process-wide cache (a mutex around
 * lookups; an entry in use is never evicted; when every entry is in use, a primitive is made for
 * the one call). Parameter `runtime_rows` chooses what a matmul's shape is:
 *   m >= runtime_rows  sizes and strides fixed at creation: oneDNN's best kernel for each shape
 *                      (brgemm where the operands allow), one primitive per key count;
 *   m <  runtime_rows  sizes and strides given at execution (DNNL_RUNTIME_DIM_VAL, oneDNN's jit
 *                      sgemm): one matmul for every key count, so decode steps whose key
 *                      counts grow create none (and jit sgemm is the faster one on a few rows).
 * The softmax has no such form: it is made for the key count rounded up to a bucket (a quarter
 * of its power of two), the scores copied to that width with -inf past the keys (weight exactly
 * 0), so decode steps whose key counts grow reuse a few softmax primitives instead of making one
 * per step. Each thread keeps its stream and buffers between calls. What still allocates on
 * every call is oneDNN's own: dnnl_memory_create for each argument and dnnl_primitive_execute's
 * bookkeeping (test_plan's decode step: about 60 allocations, 170 when each step made a softmax).
 *
 * onednn_bf16: the same with bf16 matmuls where oneDNN has them (AVX512_BF16, AMX): each GEMM's
 * operands (Q and K, then P and V) are rounded to dense bf16 copies, scores, softmax and
 * accumulation stay float32; each row of P·V is normalised by the sum of its rounded weights
 * (onednn_gemm). Tolerance: 1e-5 for onednn (float32 throughout, as cblas), 1e-2
 * for onednn_bf16 (as avx512_bf16), against the oracle on the inputs it computes from.
 *
 * Threads: oneDNN's own threading is disabled, the harness's pool gives the parallelism (as for
 * cblas and blis). Debian's libdnnl is built with OpenMP (libgomp): each task runs oneDNN with
 * one OpenMP thread in the calling thread (omp_set_num_threads(1) of the runtime oneDNN loaded,
 * found with dlsym; the thread's previous value restored after), so `--threads N` is N harness
 * workers each running oneDNN on one thread. A sequential oneDNN needs nothing; a TBB or
 * threadpool build is not pinned, which blas_core says. */
#include "gemm_softmax.h"

#include "attn_config.h"

#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_RUNTIME_ROWS };

static const attn_param_info onednn_params[] = {
    [P_RUNTIME_ROWS] = {"runtime_rows", "matmuls of fewer rows take their sizes at execution",
                        0, 4096, 1},
};

static const attn_default_rule onednn_defaults[] = {
    /*                  fact            div per_d lk dm min max max_half fixed */
    [P_RUNTIME_ROWS] = {ATTN_FACT_NONE, 0,  0,    0, 0, 0,  0,  0,       16,
                        "decode rows: one jit sgemm for every key count; blocks: a kernel each"},
};

/* ---- the engine and the OpenMP pin ------------------------------------------------------- */

static struct {
    pthread_once_t once;
    dnnl_engine_t engine; /* NULL when oneDNN has no CPU engine */
    int (*omp_get_max_threads)(void);
    void (*omp_set_num_threads)(int);
} lib = {.once = PTHREAD_ONCE_INIT};

static void lib_init(void)
{
    if (dnnl_engine_create(&lib.engine, dnnl_cpu, 0) != dnnl_success)
        lib.engine = NULL;
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
    /* The OpenMP runtime libdnnl was linked with is in the process: its functions, whatever
     * compiler built this file. */
    lib.omp_get_max_threads = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    lib.omp_set_num_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!lib.omp_get_max_threads || !lib.omp_set_num_threads)
        lib.omp_get_max_threads = NULL, lib.omp_set_num_threads = NULL;
#endif
}

/* ATTN_DISABLE_ISA caps oneDNN's JIT too: the widest oneDNN ISA the allowed bits cover, set
 * before oneDNN generates any code (at CPU detection, before any call here). oneDNN takes the
 * cap once, and then only if nothing was JIT-compiled yet; DNNL_MAX_CPU_ISA in the environment
 * does the same for oneDNN alone. */
static void onednn_limit_isa(uint32_t isa)
{
#if ATTN_ARCH_X86
    const uint32_t avx512 = ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL |
                            ATTN_ISA_AVX512DQ;
    const uint32_t avx2 = ATTN_ISA_AVX2 | ATTN_ISA_FMA;
    const bool has2 = (isa & avx2) == avx2, has512 = has2 && (isa & avx512) == avx512,
               vnni = isa & ATTN_ISA_AVX512VNNI, bf16 = isa & ATTN_ISA_AVX512BF16;
    dnnl_cpu_isa_t cap = dnnl_cpu_isa_sse41; /* oneDNN's lowest x86 JIT */
    if (has512 && vnni && bf16 && (isa & ATTN_ISA_AMX))
        cap = dnnl_cpu_isa_all;
    else if (has512 && vnni && bf16)
        cap = dnnl_cpu_isa_avx512_core_bf16;
    else if (has512 && vnni)
        cap = dnnl_cpu_isa_avx512_core_vnni;
    else if (has512)
        cap = dnnl_cpu_isa_avx512_core;
    else if (has2)
        cap = dnnl_cpu_isa_avx2;
    else if (isa & ATTN_ISA_AVX)
        cap = dnnl_cpu_isa_avx;
    if (cap != dnnl_cpu_isa_all)
        dnnl_set_max_cpu_isa(cap); /* refused (and harmless) once oneDNN has JIT code */
#else
    (void)isa;
#endif
}

/* ---- the primitive cache ----------------------------------------------------------------- */

enum prim_kind { MATMUL, MATMUL_RUNTIME, SOFTMAX };

typedef struct prim_key {
    enum prim_kind kind;
    dnnl_data_type_t inputs; /* MATMUL*: of A and B (f32, or bf16 for onednn_bf16) */
    bool trans_b;
    int64_t m, n, k, lda, ldb, ldc; /* MATMUL_RUNTIME: 0; SOFTMAX: m, n only */
    float alpha;
} prim_key;

enum { CACHE_SLOTS = 64 }; /* causal prefill uses one matmul pair per block of 256 rows */

/* A primitive and the scratchpad bytes its execution needs (the caller's: oneDNN's own
 * scratchpad is one buffer for the process in a build without concurrent execution, which two
 * threads executing at once would share). */
typedef struct prim_ref {
    dnnl_primitive_t prim; /* NULL: a free slot, or oneDNN failed */
    size_t scratch_bytes;
} prim_ref;

typedef struct prim_slot {
    prim_key key;
    prim_ref ref;
    int users;             /* calls executing it now: never evicted while > 0 */
    uint64_t last_use;
} prim_slot;

static struct {
    pthread_mutex_t lock;
    prim_slot slot[CACHE_SLOTS];
    uint64_t clock;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool key_equal(const prim_key *a, const prim_key *b)
{
    return a->kind == b->kind && a->inputs == b->inputs && a->trans_b == b->trans_b && a->m == b->m && a->n == b->n &&
           a->k == b->k && a->lda == b->lda && a->ldb == b->ldb && a->ldc == b->ldc &&
           memcmp(&a->alpha, &b->alpha, sizeof a->alpha) == 0;
}

/* A row-major rows × cols matrix with row stride ld, or a column-major one (the transpose of a
 * [cols][rows] matrix with row stride ld) when transposed. */
static dnnl_status_t matrix_desc(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld,
                                 bool transposed, dnnl_data_type_t type)
{
    const dnnl_dims_t dims = {rows, cols};
    const dnnl_dims_t strides = {transposed ? 1 : ld, transposed ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

static dnnl_status_t matmul_descs(const prim_key *key, dnnl_memory_desc_t *a,
                                  dnnl_memory_desc_t *b, dnnl_memory_desc_t *c)
{
    dnnl_status_t s = matrix_desc(a, key->m, key->k, key->lda, false, key->inputs);
    if (s == dnnl_success)
        s = matrix_desc(b, key->k, key->n, key->ldb, key->trans_b, key->inputs);
    if (s == dnnl_success)
        s = matrix_desc(c, key->m, key->n, key->ldc, false, dnnl_f32);
    return s;
}

static dnnl_status_t create_matmul(const prim_key *key, dnnl_primitive_desc_t *pd)
{
    prim_key shape = *key;
    if (key->kind == MATMUL_RUNTIME)
        shape.m = shape.n = shape.k = shape.lda = shape.ldb = shape.ldc = DNNL_RUNTIME_DIM_VAL;
    dnnl_memory_desc_t a, b, c;
    dnnl_matmul_desc_t op;
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = matmul_descs(&shape, &a, &b, &c);
    if (s == dnnl_success)
        s = dnnl_matmul_desc_init(&op, &a, &b, NULL, &c);
    if (s != dnnl_success || (s = dnnl_primitive_attr_create(&attr)) != dnnl_success)
        return s;
    s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success && key->alpha != 1.0f)
        s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha);
    if (s == dnnl_success)
        s = dnnl_primitive_desc_create(pd, &op, attr, lib.engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

static dnnl_status_t create_softmax(const prim_key *key, dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t s_md;
    dnnl_softmax_v2_desc_t op;
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = matrix_desc(&s_md, key->m, key->n, key->n, false, dnnl_f32);
    if (s == dnnl_success)
        s = dnnl_softmax_v2_forward_desc_init(&op, dnnl_forward_inference, dnnl_softmax_accurate,
                                              &s_md, &s_md, 1);
    if (s != dnnl_success || (s = dnnl_primitive_attr_create(&attr)) != dnnl_success)
        return s;
    s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success)
        s = dnnl_primitive_desc_create(pd, &op, attr, lib.engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

static prim_ref create_primitive(const prim_key *key)
{
    dnnl_primitive_desc_t pd;
    prim_ref ref = {NULL, 0};
    if ((key->kind == SOFTMAX ? create_softmax(key, &pd) : create_matmul(key, &pd)) !=
        dnnl_success)
        return ref;
    const dnnl_memory_desc_t *scratch =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    ref.scratch_bytes = scratch ? dnnl_memory_desc_get_size(scratch) : 0;
    if (dnnl_primitive_create(&ref.prim, pd) != dnnl_success)
        ref.prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    return ref;
}

/* A primitive for key, marked in use: from the cache, or made now (and cached when a slot is
 * free or unused). *slot is NULL for a primitive of this call only. NULL when oneDNN fails. */
static prim_ref acquire(const prim_key *key, prim_slot **slot)
{
    pthread_mutex_lock(&cache.lock);
    prim_slot *victim = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        prim_slot *e = &cache.slot[i];
        if (e->ref.prim && key_equal(&e->key, key)) {
            e->users++;
            e->last_use = ++cache.clock;
            pthread_mutex_unlock(&cache.lock);
            *slot = e;
            return e->ref;
        }
        /* the victim: a free slot first, else the least recently used one not in use */
        if (!e->ref.prim) {
            if (!victim || victim->ref.prim)
                victim = e;
        } else if (e->users == 0 &&
                   (!victim || (victim->ref.prim && e->last_use < victim->last_use)))
            victim = e;
    }
    /* Made under the lock: once per shape, and no second thread makes the same one. */
    const prim_ref ref = create_primitive(key);
    if (ref.prim && victim) {
        if (victim->ref.prim)
            dnnl_primitive_destroy(victim->ref.prim);
        *victim = (prim_slot){.key = *key, .ref = ref, .users = 1, .last_use = ++cache.clock};
    }
    pthread_mutex_unlock(&cache.lock);
    *slot = ref.prim ? victim : NULL;
    return ref;
}

static void release(prim_ref ref, prim_slot *slot)
{
    if (!slot) {
        dnnl_primitive_destroy(ref.prim);
        return;
    }
    pthread_mutex_lock(&cache.lock);
    slot->users--;
    pthread_mutex_unlock(&cache.lock);
}

/* ---- the driver's operations ------------------------------------------------------------- */

/* A buffer of this call, grown on demand (64-byte aligned). */
typedef struct call_buffer {
    void *data;
    size_t bytes;
} call_buffer;

static void *call_buffer_get(call_buffer *b, size_t bytes)
{
    if (bytes > b->bytes) {
        free(b->data);
        b->bytes = (bytes + 63) / 64 * 64;
        if (!(b->data = aligned_alloc(64, b->bytes)))
            b->bytes = 0;
    }
    return b->data;
}

/* What a thread keeps between calls, so that a call in steady state makes none of it: its
 * stream and its buffers (grown on demand, freed when the thread exits). */
typedef struct thread_state {
    dnnl_stream_t stream;
    call_buffer scratch;        /* the scratchpad of this thread's executions */
    call_buffer a_bf16, b_bf16; /* bf16 copies of a GEMM's operands */
    call_buffer ratio;          /* per row of P: its sum over the sum of its rounded weights */
    call_buffer padded;         /* scores widened to a softmax bucket (onednn_softmax) */
} thread_state;

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_state_free(void *arg)
{
    thread_state *ts = arg;
    if (ts->stream)
        dnnl_stream_destroy(ts->stream);
    free(ts->scratch.data);
    free(ts->a_bf16.data);
    free(ts->b_bf16.data);
    free(ts->ratio.data);
    free(ts->padded.data);
    free(ts);
}

static void thread_key_init(void)
{
    if (pthread_key_create(&thread_key, thread_state_free) != 0)
        abort(); /* only when the process has used up its thread-specific keys */
}

/* The calling thread's state, made on its first call; NULL without memory. */
static thread_state *thread_state_get(void)
{
    pthread_once(&thread_key_once, thread_key_init);
    thread_state *ts = pthread_getspecific(thread_key);
    if (ts)
        return ts;
    if (!(ts = calloc(1, sizeof *ts)))
        return NULL;
    if (dnnl_stream_create(&ts->stream, lib.engine, dnnl_stream_default_flags) != dnnl_success ||
        pthread_setspecific(thread_key, ts) != 0) {
        ts->stream = ts->stream ? (dnnl_stream_destroy(ts->stream), NULL) : NULL;
        free(ts);
        return NULL;
    }
    return ts;
}

typedef struct onednn_call {
    dnnl_stream_t stream;
    int64_t runtime_rows;      /* matmuls of fewer rows: sizes given at execution */
    bool bf16;                 /* onednn_bf16: the GEMMs' operands rounded to bf16 */
    call_buffer *scratch, *a_bf16, *b_bf16, *ratio, *padded; /* the thread's (thread_state) */
    dnnl_status_t status;      /* the first failure; later operations do nothing */
} onednn_call;

/* Executes ref on up to three matrices (arg ids and descriptors, handles as given) and this
 * call's scratchpad. */
static dnnl_status_t execute(onednn_call *call, prim_ref ref, int count, const int *ids,
                             const dnnl_memory_desc_t *mds, void *const *handles)
{
    void *scratch = ref.scratch_bytes ? call_buffer_get(call->scratch, ref.scratch_bytes) : NULL;
    if (ref.scratch_bytes && !scratch)
        return dnnl_out_of_memory;
    enum { MAX_ARGS = 4 };
    dnnl_memory_t mem[MAX_ARGS] = {NULL};
    dnnl_exec_arg_t args[MAX_ARGS];
    dnnl_status_t s = dnnl_success;
    for (int i = 0; i < count && s == dnnl_success; i++) {
        s = dnnl_memory_create(&mem[i], &mds[i], lib.engine, handles[i]);
        args[i] = (dnnl_exec_arg_t){ids[i], mem[i]};
    }
    if (s == dnnl_success && ref.scratch_bytes > 0) {
        const dnnl_dims_t bytes = {(int64_t)ref.scratch_bytes};
        dnnl_memory_desc_t md;
        s = dnnl_memory_desc_init_by_tag(&md, 1, bytes, dnnl_u8, dnnl_a);
        if (s == dnnl_success)
            s = dnnl_memory_create(&mem[count], &md, lib.engine, scratch);
        args[count] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[count]};
    }
    if (s == dnnl_success)
        s = dnnl_primitive_execute(ref.prim, call->stream, count + (ref.scratch_bytes > 0), args);
    if (s == dnnl_success)
        s = dnnl_stream_wait(call->stream);
    for (int i = 0; i < MAX_ARGS; i++)
        if (mem[i])
            dnnl_memory_destroy(mem[i]);
    return s;
}

/* rows × cols floats (row stride ld) rounded to a dense bf16 matrix in buf; NULL without
 * memory. ratio (NULL: not wanted): per row, the sum of its floats over the sum of their
 * rounded values (1 when that is 0). */
static const uint16_t *round_to_bf16(call_buffer *buf, const float *x, int64_t rows,
                                     int64_t cols, int64_t ld, float *ratio)
{
    uint16_t *y = call_buffer_get(buf, (size_t)(rows * cols) * sizeof *y);
    for (int64_t r = 0; y && r < rows; r++) {
        float sum = 0.0f, sum_rounded = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            y[r * cols + c] = attn_f32_to_bf16(x[r * ld + c]);
            sum += x[r * ld + c];
            sum_rounded += attn_bf16_to_f32(y[r * cols + c]);
        }
        if (ratio)
            ratio[r] = sum_rounded != 0.0f ? sum / sum_rounded : 1.0f;
    }
    return y;
}

static void onednn_gemm(void *ctx, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                        int64_t ldc)
{
    onednn_call *call = ctx;
    if (call->status != dnnl_success)
        return;
    const void *a_in = a, *b_in = b;
    /* P·V (the driver's one product without trans_b) in bf16: each output row is the
     * combination of V rows with the rounded weights, normalised by their sum (times the sum
     * of P's row: 1, or less by the sink's share), so its error follows |V - O| rather than
     * |V|, as avx512_bf16's rows do */
    float *ratio =
        call->bf16 && !trans_b ? call_buffer_get(call->ratio, (size_t)m * sizeof(float)) : NULL;
    if (call->bf16) { /* dense bf16 copies: Q or P, and K (as [n][k]) or V ([k][n]) */
        a_in = round_to_bf16(call->a_bf16, a, m, k, lda, ratio);
        b_in = trans_b ? round_to_bf16(call->b_bf16, b, n, k, ldb, NULL)
                       : round_to_bf16(call->b_bf16, b, k, n, ldb, NULL);
        if (!a_in || !b_in || (!trans_b && !ratio)) {
            call->status = dnnl_out_of_memory;
            return;
        }
        lda = k;
        ldb = trans_b ? k : n;
    }
    const dnnl_data_type_t inputs = call->bf16 ? dnnl_bf16 : dnnl_f32;
    const prim_key shape = {.kind = MATMUL, .inputs = inputs, .trans_b = trans_b, .m = m,
                            .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha};
    prim_key key = shape;
    if (m < call->runtime_rows)
        key = (prim_key){.kind = MATMUL_RUNTIME, .inputs = inputs, .trans_b = trans_b,
                         .alpha = alpha};
    prim_slot *slot;
    const prim_ref ref = acquire(&key, &slot);
    if (!ref.prim) {
        call->status = dnnl_out_of_memory;
        return;
    }
    dnnl_memory_desc_t mds[3];
    dnnl_status_t s = matmul_descs(&shape, &mds[0], &mds[1], &mds[2]);
    static const int ids[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
    void *const handles[3] = {(void *)a_in, (void *)b_in, c}; /* oneDNN reads a and b only */
    if (s == dnnl_success)
        s = execute(call, ref, 3, ids, mds, handles);
    release(ref, slot);
    call->status = s;
    for (int64_t r = 0; ratio && s == dnnl_success && r < m; r++)
        for (int64_t col = 0; col < n; col++)
            c[r * ldc + col] *= ratio[r];
}

/* oneDNN's softmax over the rows of the dense [m][n] scores, in place. */
static void onednn_softmax_dense(onednn_call *call, int64_t m, int64_t n, float *scores)
{
    const prim_key key = {.kind = SOFTMAX, .m = m, .n = n};
    prim_slot *slot;
    const prim_ref ref = acquire(&key, &slot);
    if (!ref.prim) {
        call->status = dnnl_out_of_memory;
        return;
    }
    dnnl_memory_desc_t mds[2];
    dnnl_status_t s = matrix_desc(&mds[0], m, n, n, false, dnnl_f32);
    mds[1] = mds[0];
    static const int ids[2] = {DNNL_ARG_SRC, DNNL_ARG_DST};
    void *const handles[2] = {scores, scores}; /* in place */
    if (s == dnnl_success)
        s = execute(call, ref, 2, ids, mds, handles);
    release(ref, slot);
    call->status = s;
}

/* The width a softmax primitive is made for: n rounded up to a quarter of its power of two
 * (64 at least), so that decode steps whose key counts grow reuse a few primitives instead of
 * making one per step (oneDNN's softmax takes no size at execution). Keys past n are -inf: their
 * weight is exactly 0 and the max and sum are those of the n keys. */
static int64_t softmax_width(int64_t n)
{
    if (n <= 64)
        return 64;
    int64_t quarter = 16;
    while (quarter * 8 <= n) /* quarter = 2^floor(log2 n) / 4 */
        quarter *= 2;
    return (n + quarter - 1) / quarter * quarter;
}

/* With sinks, each row's sink logit is one more score, column n of the copy: it joins the max
 * and the sum as a key would (exact), and its weight is left behind with the copy. */
static void onednn_softmax(void *ctx, int64_t m, int64_t n, float *scores, const float *sinks)
{
    onednn_call *call = ctx;
    if (call->status != dnnl_success)
        return;
    const int64_t width = softmax_width(sinks ? n + 1 : n);
    float *rows = scores;
    if (width != n) { /* a copy at the bucket's width, the sink then -inf past n */
        if (!(rows = call_buffer_get(call->padded, (size_t)(m * width) * sizeof *rows))) {
            call->status = dnnl_out_of_memory;
            return;
        }
        for (int64_t r = 0; r < m; r++) {
            memcpy(rows + r * width, scores + r * n, (size_t)n * sizeof *rows);
            for (int64_t j = n; j < width; j++)
                rows[r * width + j] = sinks && j == n ? sinks[r] : -INFINITY;
        }
    }
    onednn_softmax_dense(call, m, width, rows);
    if (width != n && call->status == dnnl_success)
        for (int64_t r = 0; r < m; r++)
            memcpy(scores + r * n, rows + r * width, (size_t)n * sizeof *rows);
}

static attn_status run_with(const attn_task *t, bool bf16)
{
    pthread_once(&lib.once, lib_init);
    thread_state *ts = lib.engine ? thread_state_get() : NULL;
    if (!ts)
        return ATTN_ERR_NOMEM;
    onednn_call call = {.stream = ts->stream, .runtime_rows = t->params[P_RUNTIME_ROWS],
                        .bf16 = bf16, .scratch = &ts->scratch, .a_bf16 = &ts->a_bf16,
                        .b_bf16 = &ts->b_bf16, .ratio = &ts->ratio, .padded = &ts->padded};
    const int threads_before = lib.omp_get_max_threads ? lib.omp_get_max_threads() : 0;
    if (lib.omp_set_num_threads)
        lib.omp_set_num_threads(1);
    const gemm_softmax_ops ops = {.gemm = onednn_gemm, .softmax = onednn_softmax, .ctx = &call};
    attn_status status = gemm_softmax_run(t, &ops);
    if (lib.omp_set_num_threads)
        lib.omp_set_num_threads(threads_before);
    /* oneDNN fails on a valid problem only for want of memory (JIT code, scratchpads) */
    return status == ATTN_OK && call.status != dnnl_success ? ATTN_ERR_NOMEM : status;
}

static attn_status onednn_run(const attn_task *t)
{
    return run_with(t, false);
}

static attn_status onednn_bf16_run(const attn_task *t)
{
    return run_with(t, true);
}

/* ---- what ran ---------------------------------------------------------------------------- */

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } names[] = {
        {dnnl_cpu_isa_sse41, "sse41"},
        {dnnl_cpu_isa_avx, "avx"},
        {dnnl_cpu_isa_avx2, "avx2"},
        {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
        {dnnl_cpu_isa_avx512_core, "avx512_core"},
        {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
        {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
        {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].isa == isa)
            return names[i].name;
    return "other ISA";
}

/* "oneDNN 2.6.3 avx512_core_bf16 (brg:avx512_core; openmp build, 1 thread per call)": the
 * version, the ISA oneDNN dispatches to, and the kernel its matmul picks for a square product of
 * the inputs' type (another shape may get another). */
static void describe_core(dnnl_data_type_t inputs, char *text, size_t len)
{
    pthread_once(&lib.once, lib_init);
    const dnnl_version_t *v = dnnl_version();
    const char *impl = "no kernel for this CPU";
    const prim_key square = {.kind = MATMUL, .inputs = inputs, .trans_b = true, .m = 256,
                             .n = 256, .k = 128, .lda = 128, .ldb = 128, .ldc = 256,
                             .alpha = 1.0f};
    dnnl_primitive_desc_t pd = NULL;
    if (lib.engine && create_matmul(&square, &pd) == dnnl_success)
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
    const char *threading = lib.omp_set_num_threads ? "openmp build, 1 thread per call"
                                                    : "openmp build, threads not pinned";
#elif DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_SEQ
    const char *threading = "sequential build";
#else
    const char *threading = "threads not pinned";
#endif
    snprintf(text, len, "oneDNN %d.%d.%d %s (%s; %s)", v->major, v->minor, v->patch,
             isa_name(dnnl_get_effective_cpu_isa()), impl, threading);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
}

static char core_f32[160], core_bf16[160];

static void describe_f32(void)
{
    describe_core(dnnl_f32, core_f32, sizeof core_f32);
}

static void describe_bf16(void)
{
    describe_core(dnnl_bf16, core_bf16, sizeof core_bf16);
}

static const char *onednn_core(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_f32);
    return core_f32;
}

static const char *onednn_bf16_core(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_bf16);
    return core_bf16;
}

const attn_variant attn_variant_onednn = {
    .name = "onednn",
    .description = "GEMM + row softmax + GEMM through oneDNN (matmul, softmax primitives), one "
                   "thread",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .vector_bits = 128,
    ATTN_PARAMS(onednn_params, onednn_defaults),
    .workspace_size = gemm_softmax_workspace,
    .run = onednn_run,
    .blas_core = onednn_core,
    .limit_isa = onednn_limit_isa,
    /* gemm_softmax: blocks outside the window skipped, its edges, soft cap and ALiBi written
     * into S, the pages gathered; the sink is a score of the softmax (onednn_softmax) */
    .features = ATTN_FEATURE_ALL,
};

const attn_variant attn_variant_onednn_bf16 = {
    .name = "onednn_bf16",
    .description = "onednn with bf16 matmuls: Q, K, P, V rounded to bf16, float32 scores, "
                   "softmax and accumulation, one thread",
    /* oneDNN's bf16 matmuls need its avx512_core_bf16 level, which includes avx512_core_vnni,
     * avx512_core (F, BW, VL, DQ) and AVX2/FMA: masking any of them caps oneDNN below its bf16
     * matmuls (onednn_limit_isa), so the variant needs them all */
    .isa = ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ |
           ATTN_ISA_AVX512VNNI | ATTN_ISA_AVX512BF16 | ATTN_ISA_AVX2 | ATTN_ISA_FMA,
    .roofline = ATTN_ROOFLINE_BF16_DOT,
    .tolerance = 1e-2,
    .compute_dtype = ATTN_BF16,
    .vector_bits = 512,
    ATTN_PARAMS(onednn_params, onednn_defaults),
    .workspace_size = gemm_softmax_workspace,
    .run = onednn_bf16_run,
    .blas_core = onednn_bf16_core,
    .limit_isa = onednn_limit_isa,
    .features = ATTN_FEATURE_ALL,
};
