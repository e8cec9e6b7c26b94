/* tuner.h — the tuner's internals, shared by the planner (planner.c) and the CLI (cli_tune.c and
 * its neighbours).
 *
 *   space.c    the candidates of a variant for a problem, from its descriptor alone: powers of
 *              two and multiples of each parameter within a bounded grid around the default,
 *              filtered by attn_params_check (ranges and the variant's own constraints)
 *   measure.c  correctness against the float64 oracle on a small problem of the same kind, and
 *              timing with adaptive repetitions (a hopeless candidate stops early)
 *   search.c   the strategies: exhaustive (ground truth) and fast (coordinate descent from the
 *              cache-size default, with variants pruned on their default's time)
 *   wisdom.c   the JSON wisdom file: machine and build signature, locking, atomic writes,
 *              merging (wisdom_read.c: its streaming reader)
 *   wisdom_set.c  problem classes and the sets of entries indexed by them
 *   planner.c  attn_plan_* and attn_wisdom_* of attn.h
 *
 * Nothing here knows a variant by name. */
#ifndef ATTN_TUNER_H
#define ATTN_TUNER_H

#include "attn.h"

#include <jansson.h>
#include <stdio.h>
#include <time.h>

/* ---- configurations and search spaces ---------------------------------------------------- */

/* One thing to run: a registry index and its parameters (threads included). */
typedef struct tuner_config {
    int variant;
    attn_params params;
} tuner_config;

enum { TUNER_MAX_VALUES = 16 };

/* The candidates of one variant: per parameter a sorted list of values (for coordinate
 * descent), and the valid points of their product. */
typedef struct tuner_variant_space {
    int variant;
    attn_params defaults;
    int value_count[ATTN_MAX_PARAMS];
    int32_t values[ATTN_MAX_PARAMS][TUNER_MAX_VALUES];
    size_t first, count; /* this variant's configs: space->configs[first, first + count) */
} tuner_variant_space;

typedef struct tuner_space {
    tuner_config *configs;
    size_t count;
    tuner_variant_space *variants; /* one per registry variant at most (allocated) */
    int variant_count;
} tuner_space;

/* Whether variant i may be considered for p at all: supported here, reads p->dtype, and computes
 * in float32 unless reduced precision is allowed (an accuracy bound was given). When not, why. */
bool tuner_variant_eligible(int i, const attn_problem *p, bool allow_reduced, char *why,
                            size_t why_len);

/* Builds the space of every eligible variant (or only `only`, when not NULL) for p on
 * `threads` threads. Fails when no variant is left. */
attn_status tuner_space_build(const attn_problem *p, int threads, const char *only,
                              bool allow_reduced, tuner_space *space, attn_error *err);
void tuner_space_free(tuner_space *space);
/* Index of a config in the space, or -1. */
long tuner_space_find(const tuner_space *space, const tuner_config *c);

/* "avx512 bq=64 bk=128" */
void tuner_config_format(const tuner_config *c, char *buf, size_t len);

/* The estimate: ATTN_FORCE_VARIANT's variant when set, else, of the eligible variants (never
 * one computing in reduced precision: its error is unmeasured) whose default parameters fit p,
 * the one with the highest float32 FMA rate of this CPU at its vector width
 * (attn_variant_info.flops_per_cycle), the first in registry order among equals (on Zen 4
 * avx512 and avx2 tie; on Intel and Zen 5 avx512 has twice the rate); its defaults, on
 * `threads` threads. No benchmark runs. */
attn_status tuner_estimate(const attn_problem *p, int threads, tuner_config *out,
                           attn_error *err);
/* The same, leaving out the variants that need an ISA bit of isa_off (attn_isa_bit mask). */
attn_status tuner_estimate_without(const attn_problem *p, int threads, uint32_t isa_off,
                                   tuner_config *out, attn_error *err);

/* ---- measurement -------------------------------------------------------------------------- */

/* What the tuner is doing, for a progress display. */
typedef struct tuner_progress {
    const char *stage;  /* "preparing inputs", "checking", "timing", "timed" */
    const char *what;   /* the configuration ("avx512 bq=64 bk=128 threads=2"), "" when none */
    int rep, reps;      /* timing: repetition rep (0: the warm-up) of at most reps planned */
    double run_seconds; /* timing: the last run's time, or before one ran (and when preparing
                         * the inputs) the lower bound tuner_run_lower_bound ... */
    bool run_bound;     /* ... which this says */
    size_t done, total; /* configurations visited, of the space */
    double elapsed, budget; /* seconds since the search began, and its budget */
} tuner_progress;
typedef void (*tuner_progress_fn)(void *ctx, const tuner_progress *p);

/* Tensors for timing runs of p (random values, in p's dtypes), a small problem of the same kind
 * with its float64 oracle output for correctness checks, and the oracle of a sample of p's own
 * output rows (batch 0, the first kv groups, the last query rows) for measuring accuracy. */
typedef struct tuner_bench {
    const attn_problem *problem;
    void *q, *k, *v, *o;
    float *widened[3];       /* q, k, v as floats (the tensors themselves when float32) */
    attn_problem small;
    void *sq, *sk, *sv;
    float *small_widened[3];
    float *so, *small_mask;
    int32_t *small_kv_lens;
    int32_t *small_table;   /* paged p: the small problem's block table (its pages shuffled) */
    double *small_ref;      /* on the small problem's inputs */
    double *small_ref_bf16; /* on them rounded to bf16: what a bf16-compute variant sees */
    attn_problem sample;    /* a view of p's sample rows (same strides) */
    int64_t sample_row0;    /* its first query row in p */
    double *sample_ref;     /* oracle of the sample rows on p's inputs */
    /* Set by the search (all optional): no repetition starts that would end after `deadline`
     * (clock seconds; 0: none), and `progress` hears of every run. */
    double deadline;
    tuner_progress_fn progress;
    void *progress_ctx;
    tuner_progress status; /* the search's part (done, total, budget); measure.c fills the rest */
    double start;          /* clock seconds the search began */
} tuner_bench;

attn_status tuner_bench_init(tuner_bench *b, const attn_problem *p, attn_error *err);
void tuner_bench_free(tuner_bench *b);

/* Runs c on the small problem and compares with the oracle under the variant's tolerance. */
bool tuner_check(const tuner_bench *b, const tuner_config *c, double *max_rel, char *why,
                 size_t why_len);

/* The normwise relative error of the output a run left in b->o over the sample rows, against
 * the oracle on p's inputs as given: for float32 inputs and a bf16-compute variant, what its
 * internal rounding costs in all. */
double tuner_sample_error(const tuner_bench *b);

/* Timing of one candidate. */
typedef struct tuner_timing {
    double median, min, max; /* seconds over the timed repetitions (the warm-up excluded) */
    int reps;                /* timed repetitions */
    bool rejected;           /* stopped early: clearly slower than the best so far */
} tuner_timing;

/* A lower bound of one run of p on `threads` threads, in seconds: its FLOPs at an assumed peak
 * above what this CPU's widest vector unit can reach (see measure.c). */
double tuner_run_lower_bound(const attn_problem *p, int threads);

/* Times c: one warm-up run (skipped when a run is long: see measure.c), then repetitions until
 * it is clearly slower than `best` (when best->reps > 0), or its estimate separates from the
 * best's, or it is stable, or max_reps, or the next one would end after b->deadline. A
 * candidate always gets one run; when only the warm-up ran, it is the one sample. */
attn_status tuner_time(const tuner_bench *b, const tuner_config *c, const tuner_timing *best,
                       tuner_timing *out, attn_error *err);

/* Times several configurations interleaved (round r runs each once, in order), `rounds` rounds
 * after a warm-up of each; out[i] gets each one's statistics. */
attn_status tuner_time_interleaved(const tuner_bench *b, const tuner_config *configs, int n,
                                   int rounds, tuner_timing *out, attn_error *err);

/* ---- search ------------------------------------------------------------------------------- */

typedef enum tuner_strategy { TUNER_EXHAUSTIVE, TUNER_FAST } tuner_strategy;

typedef struct tuner_options {
    tuner_strategy strategy;
    double budget_seconds; /* stop searching after this long (the best so far is kept) */
    int threads;
    const char *only_variant; /* NULL: every supported variant */
    /* 0: only variants computing in float32. > 0: variants computing in reduced precision too,
     * and every candidate's error measured on the problem must be within it. */
    double max_rel_err;
    /* Called before the inputs are prepared, before each candidate's check, and around each of
     * its runs; may be NULL. */
    tuner_progress_fn progress;
    void *progress_ctx;
} tuner_options;

/* What happened to each configuration of the space. */
typedef struct tuner_candidate {
    tuner_config config;
    bool checked, correct;
    double max_rel;
    char why[160];     /* why it failed the check */
    bool timed;
    tuner_timing timing;
    double rel_err;    /* measured on the problem's sample rows when timed (NaN otherwise) */
    bool too_inexact;  /* rel_err exceeds the options' max_rel_err: never chosen */
} tuner_candidate;

typedef struct tuner_result {
    tuner_space space;
    tuner_candidate *candidates; /* space.count of them, in space order */
    size_t timed;                /* configurations timed */
    long best;                   /* index of the fastest correct one, -1 if none */
    long best_full;              /* the fastest computing in float32, -1 if none */
    tuner_config estimate;       /* what ATTN_ESTIMATE picks */
    long estimate_index;         /* its index in the space, -1 when outside it */
    double seconds;              /* wall time of the search */
    bool budget_exhausted;
    struct {                     /* the small problem the candidates were checked on */
        int64_t batch, len_q, len_kv, page_size; /* page_size 0: contiguous */
    } check;
} tuner_result;

attn_status tuner_run(const attn_problem *p, const tuner_options *opt, tuner_result *out,
                      attn_error *err);

/* The progress hook of ATTN_MEASURE's tunes in this process (planner.c); NULL: none. For a
 * tool that shows what a plan is measuring; the library itself prints nothing. */
void tuner_measure_progress(tuner_progress_fn fn, void *ctx);
void tuner_result_free(tuner_result *r);

/* ---- wisdom --------------------------------------------------------------------------------- */

/* The key of a wisdom entry: the problem's shape, its kind, threads, input type and the accuracy
 * bound it was tuned under (0: float32 compute only). */
typedef struct tuner_class {
    int64_t batch, heads_q, heads_kv, len_q, len_kv, head_dim;
    bool causal, mask, kv_lens;
    int threads;
    attn_dtype dtype;
    double max_rel_err;
    /* The options of current models, canonical text ("window=1023,-1 softcap=30 alibi sinks";
     * "" for none): a windowed or soft-capped problem is its own class (wisdom "options"). */
    char options[64];
} tuner_class;

void tuner_class_of(const attn_problem *p, int threads, double max_rel_err, tuner_class *c);
bool tuner_class_equal(const tuner_class *a, const tuner_class *b);
/* "B=1 Hq=4 Hkv=4 Lq=2048 Lk=2048 d=128 causal threads=2" */
void tuner_class_format(const tuner_class *c, char *buf, size_t len);

typedef struct wisdom_entry {
    tuner_class cls;
    tuner_config config;
    double median_seconds, gflops;
    double rel_err;                /* the choice's error measured on the problem; NaN unknown */
    /* When the choice computes in reduced precision: the fastest float32-compute candidate's
     * variant index and median (why the choice was made); variant -1 otherwise. */
    int full_variant;
    double full_median_seconds;
    char date[32]; /* ISO 8601, UTC */
    /* When the entry was last written or chosen by a plan (ISO 8601, UTC; the date when the
     * file has none): what least-recently-used pruning orders by. */
    char last_used[32];
} wisdom_entry;

/* Entries in insertion order, indexed by class (a hash table: slots hold an entry's index + 1,
 * 0 when empty; at most half full). A set built by hand ({.entries, .count}) has no index and
 * is searched linearly; wisdom_set_put builds one. */
typedef struct wisdom_set {
    wisdom_entry *entries;
    size_t count, capacity;
    size_t *slots;
    size_t slot_count; /* 0 or a power of two */
} wisdom_set;

/* The wisdom entry of a tuning result (r->best >= 0) for class cls: the choice, its time, GFLOP/s
 * on p, measured error, the float32-compute candidate it beat, and now as its date. */
void tuner_wisdom_entry(const attn_problem *p, const tuner_class *cls, const tuner_result *r,
                        wisdom_entry *e);

/* Adds e, replacing an entry of the same class (expected O(1)). */
attn_status wisdom_set_put(wisdom_set *s, const wisdom_entry *e);
const wisdom_entry *wisdom_set_find(const wisdom_set *s, const tuner_class *c);
void wisdom_set_free(wisdom_set *s);
/* The index behind a set, for any array of items that each begin with their tuner_class, `stride`
 * bytes apart (wisdom_set.c): the slot of class c in an open-addressing table of `count` slots
 * (a power of two) holding item index + 1 (0: empty), the one holding c or the empty one where
 * it would go; and the slot count for n items at most half full (0 on overflow). */
size_t *wisdom_class_slot(size_t *slots, size_t count, const tuner_class *c, const void *items,
                          size_t stride);
size_t wisdom_slots_for(size_t n);

/* A foreign wisdom section in words (wisdom.c; both readers print it): another machine (model or
 * id NULL when the section lacks them), or another build, by its first differing build key
 * (theirs NULL when missing). */
void wisdom_other_machine(char *buf, size_t len, const char *model, const char *id,
                          const char *our_model, const char *our_id);
void wisdom_other_build(char *buf, size_t len, const char *key, const char *theirs,
                        const char *ours);

/* The wisdom file in use: the override, $ATTN_WISDOM, or the XDG cache default. */
void wisdom_path(const char *override_path, char *buf, size_t len);

typedef enum wisdom_read_status {
    WISDOM_READ_OK,      /* read; `ours` holds this machine and build's entries */
    WISDOM_READ_MISSING, /* no such file: nothing to read */
    WISDOM_READ_BAD,     /* unreadable, corrupt, or an unknown format: must not be written over */
} wisdom_read_status;

#define WISDOM_FORMAT "attnbench-wisdom"
enum { WISDOM_VERSION = 1 };

/* Reads a wisdom file (wisdom_read.c: a streaming parse, linear in the entries). Sections of
 * other machines or builds are counted in *foreign and described in `warning` (empty when
 * none). On WISDOM_READ_BAD, err says why, with the path and, for a parse error, line and
 * column. */
wisdom_read_status wisdom_read(const char *path, wisdom_set *ours, size_t *foreign,
                               char *warning, size_t warning_len, attn_error *err);
/* The same from a document in memory (text[len]; need not end in NUL), `path` naming it in
 * messages. Never MISSING. */
wisdom_read_status wisdom_read_buffer(const char *text, size_t len, const char *path,
                                      wisdom_set *ours, size_t *foreign, char *warning,
                                      size_t warning_len, attn_error *err);
/* A file's bytes, whole, into a new buffer (*text, NUL-terminated, *len bytes before the NUL):
 * OK, MISSING (no such file) or BAD (unreadable, not a regular file; err says why). */
wisdom_read_status wisdom_load_file(const char *path, char **text, size_t *len, attn_error *err);
/* Merges `add` into the file under an exclusive lock (flock on PATH.lock): re-reads it, keeps
 * every other section and entry, replaces entries of the same class, writes a temporary file
 * in the same directory, fsyncs it and renames it over the file. Refuses (ATTN_ERR_IO, file
 * untouched) when the file exists but cannot be read as wisdom. */
attn_status wisdom_merge_into_file(const char *path, const wisdom_set *add, attn_error *err);
/* Marks the entry of class c in the file as used now (its last_used), under the same lock;
 * nothing else changes, and a class the file lacks is not added. */
attn_status wisdom_touch_in_file(const char *path, const tuner_class *c, attn_error *err);
/* The most entries a written file keeps, over all its sections: $ATTN_WISDOM_MAX_ENTRIES, else
 * WISDOM_DEFAULT_MAX_ENTRIES. Every write drops the least recently used beyond it. */
enum { WISDOM_DEFAULT_MAX_ENTRIES = 20000 };
size_t wisdom_max_entries(void);
/* Writes a file holding only `set` (this machine and build), atomically. */
attn_status wisdom_write_file(const char *path, const wisdom_set *set, attn_error *err);
/* Checks every entry of this machine and build's section strictly (types, ranges, the
 * variant's parameter ranges, positive times): ATTN_OK, or the first problem with the file, the
 * entry and the field in err (a missing file is ATTN_OK). For `wisdom show` and `import`. */
attn_status wisdom_check_file(const char *path, attn_error *err);
/* Removes the wisdom file (and its empty lock file) when it is attnbench wisdom: a document
 * with its "format", or a damaged one still opening with it; anything else is refused
 * (ATTN_ERR_INVALID) and left. Missing is fine. */
attn_status wisdom_forget(const char *path, attn_error *err);

/* The current date and time as an entry records it (ISO 8601, UTC), and any other time so. */
void wisdom_now(char *buf, size_t len);
void wisdom_time(time_t t, char *buf, size_t len);

/* This machine and build as stored in a wisdom file (new references). */
json_t *wisdom_machine_json(void);
json_t *wisdom_build_json(void);

#endif
