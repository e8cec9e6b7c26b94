/* attn.h — the public API of libattn: scaled dot-product attention on CPUs.
 *
 *   O = softmax(scale · Q·Kᵀ + mask) · V        scale defaults to 1/sqrt(head_dim)
 *
 * A problem is described by an attn_problem (shapes, scale, masks, strides); a variant (one
 * implementation: naive, blocked, streaming, avx2, avx512, ...) is run on it by name. Every entry
 * point validates its input and returns a status with a message; nothing aborts on bad input.
 *
 * NULL: every pointer argument is checked. Where NULL is not documented as meaningful (an
 * attn_error* is always optional; params of attn_run_variant, options of attn_plan_create,
 * the path of attn_wisdom_set_file, the plan of attn_plan_destroy), a function given NULL
 * returns ATTN_ERR_INVALID with "<argument> is NULL" in the message, false, -1 (an index or a
 * count of FLOPs), NaN (a scale), NULL (a new object), or does nothing when it returns void.
 * Out-of-range values (indices, enums, sizes near 2^63) are refused the same way, and a size of
 * 0 writes nothing. tests/test_null_sweep.c, generated from this header at build time, calls
 * every function with NULL in each pointer position, out-of-range values and sizes of 0.
 *
 * Strings: every const char * a function returns is owned by the library. Names and fixed texts
 * (attn_status_string, attn_dtype_name, attn_variant_info's name, description and blas_core,
 * attn_plan_info's variant, attn_machine_id, attn_plan_source_name) live as long as the
 * process. attn_variant_info's isa and why_not live in a buffer of the calling thread that the
 * next attn_variant_get on that thread overwrites. attn_plan_describe's text lives as long as
 * the plan. Strings the caller passes in (names, paths, options) are copied or read during the
 * call only, and need not outlive it.
 *
 * First-call cost: the first call that needs them detects the CPU and its caches (hwloc), reads
 * the wisdom file (plans), and starts the worker threads (a plan on more than one thread starts
 * them when it is created; attn_run_variant on its first multi-threaded call). Later calls pay
 * none of this. */
#ifndef ATTN_H
#define ATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_VERSION_STRING "0.3.0"

/* Marks the public functions: libattn.so exports these and nothing else (the library's sources
 * are compiled with -fvisibility=hidden; tests/test_exports.py checks it). */
#if defined(__GNUC__)
#define ATTN_API __attribute__((visibility("default")))
#else
#define ATTN_API
#endif

typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_INVALID,         /* the problem, a parameter or an argument is invalid */
    ATTN_ERR_OVERFLOW,        /* a size computed from the problem does not fit in 64 bits */
    ATTN_ERR_UNKNOWN_VARIANT, /* no variant of that name is registered */
    ATTN_ERR_UNSUPPORTED,     /* this CPU (or ATTN_DISABLE_ISA) cannot run that variant */
    ATTN_ERR_NOMEM,           /* an allocation failed */
    ATTN_ERR_IO,              /* a file could not be read or written */
} attn_status;

/* A short fixed text for a status ("invalid argument", ...). */
ATTN_API const char *attn_status_string(attn_status status);

/* Detailed message of a failed call; every entry point takes an optional attn_error*. */
typedef struct attn_error {
    attn_status status;
    char message[256];
} attn_error;

/* Element type of Q, K, V (and of O when asked). Half-precision inputs are read as stored and
 * accumulated in float32; conversions to a half type round to nearest even. */
typedef enum attn_dtype {
    ATTN_F32 = 0,  /* float32 (the default: a zeroed problem is float32) */
    ATTN_BF16 = 1, /* bfloat16: float32's exponent, 8 significant bits; stored as uint16_t */
    ATTN_F16 = 2,  /* IEEE binary16: 11 significant bits, |x| < 65520; stored as uint16_t */
    /* Quantized K/V caches (attn_problem.kv_dtype only; never Q or O):
     * ATTN_INT8: int8_t values q in [-127, 127], one float32 scale per row (token, kv head):
     *   x = scale·q, scale = max|x| / 127 over the row's head_dim values, q = x / scale
     *   rounded to nearest even (0 for an all-zero row, whose scale is 0).
     * ATTN_Q4: blocks of 32 consecutive values along head_dim (head_dim % 32 == 0), each with one
     *   float16 scale: x = scale·q, q in [-7, 7] stored as q + 8 in 4 bits, two per byte, the
     *   even element in the low nibble (element 2i: low nibble of byte i). scale = max|x| / 7
     *   over the block, rounded to float16 first, and q = x / (that float16) rounded to
     *   nearest even and clamped to [-7, 7]: symmetric like int8, so every value's error is
     *   about scale / 2 at most (-8 is never stored: llama.cpp's q4_0 maps the value of largest
     *   magnitude to -8 for one more level, but then values of the other sign clamp with
     *   errors up to a whole step).
     * Dequantized values are scale·q rounded to float32 (the kernels may apply the scale after
     * summing, a difference within their float32 tolerance).
     * A row (block) holding NaN or ±inf gets a NaN scale: every value of it dequantizes to NaN,
     * which propagates to the outputs attending to that key. A q4 block whose max|x| / 7
     * exceeds float16's range (max|x| > 458528) gets an infinite scale: NaN values too. */
} attn_dtype;
/* Values of attn_dtype, not enumerators: the float types are the ones Q and O (and the
 * kernels' switches over a problem's dtype) may take. */
#define ATTN_INT8 ((attn_dtype)3)
#define ATTN_Q4 ((attn_dtype)4)
#define ATTN_DTYPE_COUNT 3    /* the float types: Q, K, V and O may be any of them */
#define ATTN_KV_DTYPE_COUNT 5 /* the float types and the quantized K/V types */

/* "f32", "bf16", "f16", "int8", "q4"; "?" for a value out of range. */
ATTN_API const char *attn_dtype_name(attn_dtype t);
/* Parses "f32" / "float32", "bf16" / "bfloat16", "f16" / "float16", "int8", "q4"; false for
 * anything else. */
ATTN_API bool attn_dtype_parse(const char *name, attn_dtype *t);
/* Bytes per element of a float type: 4 or 2; 0 for the quantized types (attn_dtype_bytes) and
 * a value out of range. */
ATTN_API size_t attn_dtype_size(attn_dtype t);
/* Bytes that n elements of any type take (n/2 rounded up for q4, scales not included); 0 for a
 * type out of range or a size that does not fit. */
ATTN_API size_t attn_dtype_bytes(attn_dtype t, size_t n);
/* The unit roundoff of a float type: 2^-24, 2^-8, 2^-11 (NaN for the quantized types and a
 * value out of range). */
ATTN_API double attn_dtype_unit_roundoff(attn_dtype t);
/* Converts n contiguous elements; to a half type rounds to nearest even (NaN stays NaN, f16
 * overflows to ±inf). Converting to a wider type is exact. In place (src == dst) only when `to`
 * is no wider than `from`. False, and nothing written, for a type out of range, NULL with
 * n > 0, or src and dst overlapping otherwise. */
ATTN_API bool attn_convert(const void *src, attn_dtype from, void *dst, attn_dtype to, size_t n);

/* Element strides of one 4-d tensor [batch, head, seq, dim]; the dim stride is always 1
 * (each row of head_dim floats is contiguous). Input strides may be 0 (broadcast). */
typedef struct attn_strides {
    int64_t batch, head, seq;
} attn_strides;

typedef struct attn_problem {
    int64_t batch;    /* B  */
    int64_t heads_q;  /* Hq: query (and output) heads */
    int64_t heads_kv; /* Hkv: key/value heads; Hq % Hkv == 0 (MHA, GQA, MQA) */
    int64_t len_q;    /* Lq */
    int64_t len_kv;   /* Lk */
    int64_t head_dim; /* d  */
    /* Softmax scale; 0 means the default 1/sqrt(head_dim). Otherwise finite and > 0. */
    float scale;
    /* Causal, bottom-right aligned: query i sees keys j <= i + Lk - Lq (as for a KV cache). */
    bool causal;
    /* Optional per-batch key lengths [batch], each in [0, Lk]: keys j >= kv_lens[b] are masked.
     * In a problem given to attn_plan_create only whether it is NULL counts (see there). */
    const int32_t *kv_lens;
    /* Optional additive mask [Lq x Lk], row stride mask_row_stride (0 = Lk), broadcast over
     * batch and heads. -INFINITY masks a key. In a problem given to attn_plan_create only
     * whether it is NULL counts (see there). */
    const float *mask;
    int64_t mask_row_stride;
    attn_strides q, k, v, o;
    /* Element types: Q, K and V share `dtype`; O is float32 or `dtype` (out_dtype). Strides
     * count elements of these types. */
    attn_dtype dtype;
    attn_dtype out_dtype;
    /* Options of current models. The score of query i and key j (i' = i + Lk - Lq, the query's
     * position on the key axis, bottom-right aligned as for causal) is
     *     s = softcap(scale · q_i·k_j) + slope_h · (j - i') + mask[i][j]
     * and the softmax denominator gains exp(sink_h) (a key with no value row). */
    /* Sliding window: key j is visible iff i' - window_left <= j <= i' + window_right; -1 =
     * unbounded on that side (attn_problem_init sets both to -1). With causal, Mistral's local
     * attention is window_left = W - 1. A row that sees no key gives zeros. */
    int64_t window_left, window_right;
    /* ALiBi: per-query-head slopes [Hq] (attn_alibi_slopes fills the standard ones); NULL =
     * none. In a problem given to attn_plan_create only whether it is NULL counts. */
    const float *alibi_slopes;
    /* Logit soft-capping (Gemma 2): 0 = none; else c finite > 0, s = c·tanh(s / c). */
    float softcap;
    /* Attention sinks (gpt-oss): per-query-head logits [Hq] that join the softmax denominator
     * without a value row; NULL = none; each finite. Whether-only in attn_plan_create. */
    const float *sinks;
    /* ---- quantized K/V caches (issue 15) ---------------------------------------------------
     * kv_dtype: ATTN_INT8 or ATTN_Q4 store K and V quantized (layout, rounding and scales: see
     * attn_dtype); ATTN_F32 (0, so a zeroed problem is unchanged) or `dtype` itself means K
     * and V are of `dtype` like Q; another float type is refused (no mixed float types). K/V strides then count int8 or 4-bit elements (q4: even, so that
     * every row starts on a byte). The scales live in tensors of their own, [B, Hkv, Lk, n]
     * with n = 1 (int8: float32) or head_dim / 32 (q4: float16 as uint16_t), strides in scale
     * elements, the innermost n contiguous. k_scale and v_scale point at element 0 of each; in
     * a problem given to attn_plan_create only whether they are given counts (they come with
     * each attn_execute). attn_quantize_kv fills both. */
    attn_dtype kv_dtype;
    const void *k_scale, *v_scale;
    attn_strides k_scale_strides, v_scale_strides;
    /* ---- Paged K/V (as vLLM and llama.cpp keep caches) ----
     * page_size 0: K and V hold each sequence's keys at their strides (the default, and the
     * fast path). page_size > 0 (any; 16 to 256 in practice): K and V are pools of pages of
     * page_size keys. Key j of sequence b is row j % page_size of the physical page
     *     block_table[b · block_table_stride + j / page_size]
     * of the pool: the tensors' batch stride steps from one page to the next, their head and
     * seq strides stay those within a page (attn_problem_set_pages sets the contiguous pool
     * layout [num_pages, Hkv, page_size, d]). The pool holds num_pages pages (its extent is
     * checked as a batch of num_pages tensors of page_size keys). The first
     * ceil(len_kv / page_size) entries of each table row must lie in [0, num_pages), also
     * past a sequence's kv_lens; pages may repeat (a shared prefix). The table is read like
     * kv_lens: in a problem given to attn_plan_create only whether it is NULL counts, and
     * each attn_execute gives it. */
    int64_t page_size;
    int64_t num_pages;
    const int32_t *block_table;  /* [batch][block_table_stride] */
    int64_t block_table_stride;  /* entries per row: 0 = ceil(len_kv / page_size), or more */
} attn_problem;

/* The options a variant implements (attn_variant_info.features) and a problem uses
 * (attn_problem_features): a variant is refused for a problem that uses one it lacks. */
enum attn_feature {
    ATTN_FEATURE_WINDOW = 1u << 0,
    ATTN_FEATURE_ALIBI = 1u << 1,
    ATTN_FEATURE_SOFTCAP = 1u << 2,
    ATTN_FEATURE_SINKS = 1u << 3,
    ATTN_FEATURE_PAGED = 1u << 4, /* page_size > 0: K/V read through a block table */
};
#define ATTN_FEATURE_ALL 0x1fu
/* The attn_feature bits p uses; -1 for NULL. */
ATTN_API int attn_problem_features(const attn_problem *p);
/* "window,alibi,softcap,sinks,paged": the names of the bits set, comma separated ("" for none). */
ATTN_API void attn_features_format(unsigned features, char *buf, size_t len);

/* The standard ALiBi slopes of `heads` heads (Press et al.): for n = the largest power of two
 * <= heads, head h < n gets 2^(-8(h+1)/n); the remaining heads take the odd-indexed slopes of
 * 2n heads, 2^(-4(2k+1)/n) for k = 0, 1, ... Writes heads floats; false for heads outside
 * [1, 2^24] or a NULL slopes. */
ATTN_API bool attn_alibi_slopes(int64_t heads, float *slopes);

/* Fills a problem with the given shape, default scale, no masks and contiguous [B,H,L,d]
 * strides for all four tensors. The sizes are not checked here (attn_problem_validate does):
 * strides whose product overflows are set to -1, and validation refuses the problem. */
ATTN_API void attn_problem_init(attn_problem *p, int64_t batch, int64_t heads_q, int64_t heads_kv,
                                int64_t len_q, int64_t len_kv, int64_t head_dim);
/* The type K and V are stored in: p->kv_dtype when it is ATTN_INT8 or ATTN_Q4, else p->dtype
 * (-1 for NULL). */
ATTN_API int attn_problem_kv_dtype(const attn_problem *p);
/* Makes p's K and V quantized: kv_dtype = t (ATTN_INT8 or ATTN_Q4; a float type restores
 * "same as dtype"), contiguous scale strides [B, Hkv, Lk, n] for both. The K/V strides are
 * kept (they count elements of the new type). */
ATTN_API void attn_problem_set_kv_dtype(attn_problem *p, attn_dtype t);
/* Quantizes float32 K or V (tensor 'k' or 'v'), laid out with p's strides of that tensor
 * counted in floats, into dst (laid out with the same strides in elements of p's kv_dtype) and
 * its scale tensor `scale` (p's k_scale_strides or v_scale_strides), by the rules of attn_dtype.
 * For a float kv_dtype it converts (attn_convert's rounding) and writes no scales (scale may be
 * NULL). Every row of the tensor is written; rows the strides make coincide are written
 * with the same bytes. ATTN_ERR_INVALID for a problem that does not validate, NULL, or a
 * tensor other than 'k' and 'v'. */
ATTN_API attn_status attn_quantize_kv(const attn_problem *p, char tensor, const float *src,
                                      void *dst, void *scale, attn_error *err);
/* The inverse: the float32 values a variant computes from (scale·q), into dst laid out like src
 * with the strides counted in floats. */
ATTN_API attn_status attn_dequantize_kv(const attn_problem *p, char tensor, const void *src,
                                        const void *scale, float *dst, attn_error *err);
/* Sets the strides of all four tensors to the contiguous [B,L,H,d] layout. */
ATTN_API void attn_problem_set_layout_blhd(attn_problem *p);
/* Pages K and V (attn_problem's paged block): sets page_size, num_pages, block_table and
 * block_table_stride, and the strides of K and V to the contiguous pool
 * [num_pages, Hkv, page_size, d]. The values are checked by attn_problem_validate. */
ATTN_API void attn_problem_set_pages(attn_problem *p, int64_t page_size, int64_t num_pages,
                                     const int32_t *block_table, int64_t block_table_stride);
/* The scale a run will use: p->scale, or 1/sqrt(head_dim) when that is 0; NaN for NULL. */
ATTN_API float attn_problem_scale(const attn_problem *p);
/* Checks shapes, scale, key lengths, window, softcap, sinks, pages, strides and that every size
 * (tensor and mask extents included) fits in 64 bits, without overflowing in the check
 * itself. */
ATTN_API attn_status attn_problem_validate(const attn_problem *p, attn_error *err);
/* The number of elements a tensor spans (largest offset + 1) for the given strides; 'K' and
 * 'V' are the scale tensors of quantized K and V (scale elements: 4 bytes for int8, 2 for q4;
 * ATTN_ERR_INVALID when K/V are not quantized). */
ATTN_API attn_status attn_tensor_extent(const attn_problem *p,
                                        char tensor /* 'q','k','v','o','K','V' */,
                                        int64_t *elements, attn_error *err);
/* 4·B·Hq·d·(query-key pairs actually attended); the FLOPs of one run. -1 when p is NULL or
 * does not validate. */
ATTN_API double attn_problem_flops(const attn_problem *p);

/* ---- variants ----------------------------------------------------------------------------- */

#define ATTN_MAX_PARAMS 8

/* Values of a variant's tunable parameters, in the order the variant declares them, and the
 * number of threads to run on. Zero-initialised means "no parameters, default threads". */
typedef struct attn_params {
    int count;
    int32_t value[ATTN_MAX_PARAMS];
    /* Threads: 0 = the default (attn_default_threads()), otherwise 1..ATTN_MAX_THREADS. The work
     * is split statically, so a given (problem, parameters, threads) gives the same bits on every
     * run; different thread counts may differ in the last bits when a decode problem's keys are
     * split (see attn_run_variant). */
    int32_t threads;
} attn_params;

#define ATTN_MAX_THREADS 1024

typedef struct attn_param_info {
    const char *name;        /* e.g. "bq" */
    const char *description; /* e.g. "query rows per tile" */
    int32_t min, max;        /* inclusive range */
    int32_t multiple_of;     /* values must be multiples of this (1 = any) */
} attn_param_info;

typedef struct attn_variant_info {
    const char *name;        /* the CLI's name: "naive", "avx512", ... */
    const char *description;
    const char *isa;         /* ISA it needs, "" for portable C; e.g. "avx512f,avx512bw" */
    bool supported;          /* this CPU (after ATTN_DISABLE_ISA) can run it */
    const char *why_not;     /* when !supported: every reason, e.g. "disabled by
                              * ATTN_DISABLE_ISA: avx2; CPU lacks avx512f" */
    double tolerance;        /* declared max relative (normwise) error against the oracle run
                              * on what the variant computes from (inputs rounded to
                              * compute_dtype); a half-precision output adds its unit roundoff */
    unsigned dtypes;         /* input types it reads: bit (1u << attn_dtype) */
    unsigned kv_dtypes;      /* quantized K/V types it reads (bits 1u << ATTN_INT8, ATTN_Q4);
                              * a problem with another kv_dtype is refused */
    attn_dtype compute_dtype; /* ATTN_BF16: rounds Q, K, V and the softmax weights to bf16
                               * internally (float32 accumulation); ATTN_F16: K and V in f16,
                               * at decode Q and the accumulator too (ggml_f16); else ATTN_F32 */
    int param_count;
    const attn_param_info *params;
    int vector_bits;         /* widest vector its float32 FMAs use (128 for portable C; for
                              * SVE this CPU's vector length, 0 when it lacks SVE) */
    int flops_per_cycle;     /* float32 FLOPs one core of this CPU does per cycle at
                              * vector_bits (a per-microarchitecture fact, or the fallback of
                              * 2 FMAs per cycle): the planner's estimate ranks by it */
    const char *roofline;    /* the peak its peak_fraction is against (attnbench peak): "fma"
                              * (float32 FMA, widest vector), "fma256", "fma512", "bf16_dot"
                              * (VDPBF16PS) or "amx_bf16" (TDPBF16PS) */
    const char *blas_core;   /* the BLAS kernel that runs it (OpenBLAS's core name, e.g.
                              * "Haswell"); NULL for a variant that is its own code */
    bool reference_only;     /* a yardstick (e.g. the plain BLAS program beside cblas): runs
                              * by name, never chosen by the planner or the tuner */
    unsigned features;       /* the attn_feature options it implements; a problem using
                              * another is refused (ATTN_ERR_UNSUPPORTED, naming it) */
} attn_variant_info;

/* Number of registered variants, in priority order (best first). */
ATTN_API int attn_variant_count(void);
/* Information on variant i (0 <= i < count); false when i is out of range. */
ATTN_API bool attn_variant_get(int i, attn_variant_info *info);
/* Index of the variant with that name, or -1. */
ATTN_API int attn_variant_find(const char *name);
/* Variants of the project that this build leaves out (another architecture's, or cblas without
 * a CBLAS): their name and why, for i = 0, 1, ... until it returns false. Running one fails with
 * ATTN_ERR_UNSUPPORTED and that reason. */
ATTN_API bool attn_variant_absent(int i, const char **name, const char **why);

/* Default parameters of a variant for a problem (a heuristic from cache sizes). */
ATTN_API attn_status attn_variant_default_params(const char *name, const attn_problem *p,
                                                 attn_params *out, attn_error *err);
/* Parses "bq=64,bk=128" (names from the variant's list) over the defaults already in *params. */
ATTN_API attn_status attn_params_parse(const char *name, const char *text, attn_params *params,
                                       attn_error *err);
/* Checks parameters for a variant and a problem: the count, each value's range and multiple,
 * and the variant's own constraints (register budget, ...). ATTN_OK when the variant can run
 * them; ATTN_ERR_INVALID with the reason otherwise. */
ATTN_API attn_status attn_params_check(const char *name, const attn_problem *p,
                                       const attn_params *params, attn_error *err);
/* Writes "bq=64,bk=128" into buf: "" for an unknown variant or NULL params, nothing when buf
 * is NULL or len is 0. */
ATTN_API void attn_params_format(const char *name, const attn_params *params, char *buf,
                                 size_t len);

/* The tolerance a run of variant `name` on p is held to: its declared tolerance plus the unit
 * roundoff of a half-precision output. -1 for an unknown variant or a NULL problem. */
ATTN_API double attn_variant_tolerance(const char *name, const attn_problem *p);

/* Runs the named variant. params may be NULL (defaults). q, k, v, o point at element 0 of each
 * tensor, laid out as the problem's strides say, with elements of the problem's dtype (q, k, v;
 * kv_dtype for k and v when quantized, with p->k_scale and p->v_scale given) and out_dtype (o).
 * A variant that does not read p->dtype or a quantized kv_dtype is refused with
 * ATTN_ERR_UNSUPPORTED. Allocates and frees its own workspace.
 *
 * Aliasing: o must not share a byte with q, k, v, the mask, kv_lens or the block table
 * (refused with ATTN_ERR_INVALID, "o overlaps k ..."): variants write O while they still read
 * the inputs.
 * Each tensor is taken as the byte range from its element 0 to its last element (strides are
 * >= 0), so an output interleaved with an input in one buffer is refused too. Inputs may
 * overlap each other (q == k == v is fine).
 *
 * Threads: the problem is cut into static slices — (batch, kv-head) groups × blocks of query
 * rows, and for decode-like problems with fewer slices than threads, blocks of keys when the
 * variant can compute partial results (their (max, sum, accumulator) partials are merged in a
 * fixed order). The caller's thread runs slice set 0; the others run on a process-wide pool of
 * worker threads, each bound to its own core (hwloc logical order, NUMA node 0 first), skipping
 * the core the caller is on. A call made
 * while the pool is busy (another thread's run, or a nested call) runs every slice set itself,
 * with identical results. */
ATTN_API attn_status attn_run_variant(const char *name, const attn_problem *p,
                                      const attn_params *params, const void *q, const void *k,
                                      const void *v, void *o, attn_error *err);

/* Whether variant `name` runs problem p here, short of its parameters: ATTN_OK, or the status
 * and message attn_run_variant would refuse p with (invalid problem, an ISA the CPU lacks or
 * ATTN_DISABLE_ISA turns off, an input type it does not read, an option it does not implement,
 * or what else the variant cannot compute as defined, e.g. ggml's f16 mask). */
ATTN_API attn_status attn_variant_accepts(const char *name, const attn_problem *p,
                                          attn_error *err);

/* The default thread count (params.threads == 0): the cores of the first NUMA node. */
ATTN_API int attn_default_threads(void);

/* ATTN_FORCE_VARIANT=name forces one variant wherever a default choice is made (the CLI's
 * default variant list, the planner). Sets *name to that variant's registered name, or to NULL
 * when the variable is unset or empty. Fails with ATTN_ERR_UNKNOWN_VARIANT for a name no variant
 * has, and with ATTN_ERR_UNSUPPORTED when this CPU (or ATTN_DISABLE_ISA) cannot run it — never a
 * silent fallback. Read on every call. */
ATTN_API attn_status attn_forced_variant(const char **name, attn_error *err);

/* 16 hex digits identifying this machine (CPU model, detected ISA, cache sizes, core count) for
 * result and tuning files; the same on every run on the same machine. */
ATTN_API const char *attn_machine_id(void);

/* ---- planner and wisdom (FFTW-style) ------------------------------------------------------ */

/* A plan: a variant, its parameters and a thread count chosen for one problem. Opaque. */
typedef struct attn_plan attn_plan;

/* How hard attn_plan_create may search. */
enum attn_plan_flags {
    ATTN_ESTIMATE = 0u,         /* no timing: wisdom if any, else the nearest tuned problem of the
                                 * same kind, else the first supported variant in registry order
                                 * with its cache-size default parameters */
    ATTN_MEASURE = 1u << 0,     /* without wisdom for this problem, tune it now within a small
                                 * budget (10 s, plus at most one run of the candidate being
                                 * timed) and store the result as wisdom */
    ATTN_WISDOM_ONLY = 1u << 1, /* fail (ATTN_ERR_UNSUPPORTED) unless wisdom has this problem */
};

/* Everything a plan may be asked for. Zero-initialised: default threads, ATTN_ESTIMATE, only
 * variants that compute in float32, every ISA this CPU has, messages on stderr. */
typedef struct attn_plan_options {
    int threads;     /* 0: attn_default_threads(); else 1..ATTN_MAX_THREADS */
    unsigned flags;  /* attn_plan_flags */
    /* Accuracy bound (normwise relative error against the float64 result on the inputs as
     * given). 0: no variant computing in reduced precision is chosen. > 0: one that computes in
     * bf16 (converting float32 inputs on the fly) may be, when its error measured on this
     * problem class (wisdom, or ATTN_MEASURE now) is within the bound; a variant whose measured
     * error — or, unmeasured, whose declared tolerance — exceeds the bound is never chosen.
     * Tuned choices are kept per bound. */
    double max_rel_err;
    /* ISAs this plan may not use, as ATTN_DISABLE_ISA spells them ("avx512,amx"), on top of
     * that variable; NULL or "" for none. Read during the call only. */
    const char *disable_isa;
    /* Where the planner's warnings go (an unreadable wisdom file, a failed wisdom write): NULL
     * prints "attn: MESSAGE" on stderr. The message lives for the callback's call only. */
    void (*log)(void *log_ctx, const char *message);
    void *log_ctx;
} attn_plan_options;

/* Plans a problem: chooses the variant, its parameters and the thread count, cuts the work over
 * the threads and allocates everything a run needs (per-thread workspaces, key-split partials,
 * a float32 output for a half-precision O), so that attn_execute only runs. options NULL: all
 * defaults, as a zeroed attn_plan_options.
 *
 * The plan keeps the problem's shape, scale, causal flag, window, softcap, page size and page
 * count, strides and types. Its mask, kv_lens, alibi_slopes, sinks and block_table pointers
 * only say WHETHER every execute gives that array (non-NULL: yes); the plan keeps none of
 * them, and the arrays come with each attn_execute. Their contents are not read here, except
 * that validation checks kv_lens and the block table, and ATTN_MEASURE samples the mask,
 * slopes, sinks and block table given as representative values.
 *
 * Never selects a variant this CPU cannot run (ATTN_DISABLE_ISA and options->disable_isa
 * included); honours ATTN_FORCE_VARIANT. Wisdom is read from attn_wisdom_file(). NULL on
 * error. */
ATTN_API attn_plan *attn_plan_create(const attn_problem *p, const attn_plan_options *options,
                            attn_error *err);

/* The arrays of one execute. mask, kv_lens, alibi_slopes, sinks and block_table are given
 * exactly when the planned problem had them (anything else is refused); each kv_lens[b] in
 * [0, len_kv], each block table entry used in [0, num_pages). */
typedef struct attn_execute_args {
    const void *q, *k, *v; /* element 0 of each, laid out as the planned strides say */
    void *o;
    const float *mask;      /* [Lq x Lk], the planned mask_row_stride */
    const int32_t *kv_lens; /* [batch] */
    float scale;            /* 0: the planned scale; else finite and > 0, for this call */
    const float *alibi_slopes; /* [Hq], when the planned problem had ALiBi slopes */
    const float *sinks;        /* [Hq] finite, when the planned problem had sinks */
    const void *k_scale, *v_scale; /* the scale tensors, when K/V are quantized (required) */
    const int32_t *block_table; /* [batch][stride] pages in range, when the problem is paged */
} attn_execute_args;

/* Runs the plan: checks only what a call changes (non-NULL arrays, the mask and kv_lens given
 * as planned, kv_lens values in range, O apart from the inputs), allocates nothing and looks
 * nothing up. The results are bit-for-bit those of attn_run_variant with the plan's variant,
 * parameters and threads on the same arrays.
 *
 * Aliasing: o must not share a byte with q, k, v, the mask, kv_lens or the block table
 * (ATTN_ERR_INVALID, "o overlaps k ..."), exactly as for attn_run_variant.
 *
 * Threads: the plan is not modified, so one plan may run concurrently from several threads on
 * distinct outputs; a call made while another thread runs the same plan allocates buffers of
 * its own for that call (same results). */
ATTN_API attn_status attn_execute(const attn_plan *plan, const attn_execute_args *args,
                                  attn_error *err);
/* "avx512 bq=64 bk=128 threads=4, from wisdom" (or "from nearest (...)", "from estimate"); a
 * reduced-precision choice also says why: its measured error against the bound, and how much
 * faster it measured than the fastest float32-compute candidate. "(no plan)" for NULL. */
ATTN_API const char *attn_plan_describe(const attn_plan *plan);

typedef enum attn_plan_source {
    ATTN_PLAN_FROM_WISDOM,   /* this problem class was tuned on this machine and build */
    ATTN_PLAN_FROM_NEAREST,  /* the nearest tuned problem class of the same kind */
    ATTN_PLAN_FROM_ESTIMATE, /* the heuristic: registry priority + default parameters */
    ATTN_PLAN_FROM_MEASURE,  /* tuned by this call (ATTN_MEASURE) */
    ATTN_PLAN_FROM_FORCED,   /* ATTN_FORCE_VARIANT named the variant */
} attn_plan_source;

/* What a plan chose. `variant` points into the registry; tuned_seconds is the median time wisdom
 * recorded for the chosen problem class (0 when the plan is an estimate). attn_plan_get_info
 * leaves *info untouched when plan is NULL. */
typedef struct attn_plan_info {
    const char *variant;
    attn_params params;
    int threads;
    attn_plan_source source;
    double tuned_seconds;
    attn_dtype compute_dtype; /* the variant's: ATTN_BF16 for a reduced-precision choice */
    double measured_rel_err;  /* the error tuning measured for the choice; NaN when unknown */
} attn_plan_info;
ATTN_API void attn_plan_get_info(const attn_plan *plan, attn_plan_info *info);
/* "wisdom", "nearest", "estimate", "measure", "forced". */
ATTN_API const char *attn_plan_source_name(attn_plan_source source);
ATTN_API void attn_plan_destroy(attn_plan *plan);

/* Wisdom: what tuning found, per problem class, for this machine (attn_machine_id()) and this
 * build (library version, compiler and flags, variants and their parameters). It lives in a JSON
 * file: attn_wisdom_set_file()'s path, else $ATTN_WISDOM, else
 * $XDG_CACHE_HOME/attnbench/wisdom.json (~/.cache/attnbench/wisdom.json). Wisdom of another
 * machine or build is recognised and ignored with a warning; a file that cannot be parsed is
 * reported (path:line:column), never overwritten, and plans fall back to estimates. */

/* The wisdom file planners read and ATTN_MEASURE writes. NULL restores the default. Wisdom
 * already loaded in memory is dropped, so the next plan reads the new file. */
ATTN_API attn_status attn_wisdom_set_file(const char *path, attn_error *err);
/* Writes the path in use into buf (nothing when buf is NULL or len is 0). */
ATTN_API void attn_wisdom_file(char *buf, size_t len);
/* Adds the entries of a wisdom file (those of this machine and build) to the wisdom in memory;
 * fails with a message when the file is unreadable, corrupt, or holds no wisdom for this
 * machine and build. */
ATTN_API attn_status attn_wisdom_import_file(const char *path, attn_error *err);
/* Writes the wisdom in memory for this machine and build (the wisdom file's entries plus any
 * imported) to a new wisdom file, atomically. */
ATTN_API attn_status attn_wisdom_export_file(const char *path, attn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ATTN_H */
