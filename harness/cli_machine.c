/* cli_machine.c — knowing the machine from the command line: `attnbench info` (CPU, ISA,
 * topology, caches, which variants run here) and `attnbench peak` (the measured roofline,
 * cached per machine id), plus the helpers `run` uses for --disable-isa and for its
 * peak_fraction / bw_fraction fields. */
#include "cli.h"
#include "cli_commands.h"
#include "cli_defaults.h"
#include "cli_machine.h"

#include "atomic_file.h"
#include "cpu.h"
#include "peak.h"
#include "topology.h"
#include "variant.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- --disable-isa ------------------------------------------------------------------------ */

bool cli_set_disable_isa(const char *command, const char *list)
{
    uint32_t mask;
    char why[200];
    if (!attn_isa_parse_disable(list, &mask, why, sizeof why)) {
        cli_error(command, "--disable-isa: %s", why);
        return false;
    }
    /* Detection reads ATTN_DISABLE_ISA once, on first use; no library call has run yet. */
    if (setenv("ATTN_DISABLE_ISA", list, 1) != 0) {
        cli_error(command, "--disable-isa: %s", strerror(errno));
        return false;
    }
    return true;
}

/* ---- the peak cache ----------------------------------------------------------------------- */

/* $XDG_CACHE_HOME/attnbench, else ~/.cache/attnbench; false when neither is known. */
static bool cache_dir(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, len, "%s/attnbench", xdg);
    else if (home && home[0])
        n = snprintf(buf, len, "%s/.cache/attnbench", home);
    else
        return false;
    return n > 0 && (size_t)n < len;
}

static bool peak_cache_path(char *buf, size_t len)
{
    char dir[4000];
    if (!cache_dir(dir, sizeof dir))
        return false;
    const int n = snprintf(buf, len, "%s/peak-%s.json", dir, attn_machine_id());
    return n > 0 && (size_t)n < len;
}

/* mkdir -p of the cache directory. */
static bool make_cache_dir(char *why, size_t why_len)
{
    char dir[4000];
    if (!cache_dir(dir, sizeof dir)) {
        snprintf(why, why_len, "neither XDG_CACHE_HOME nor HOME is set");
        return false;
    }
    for (char *s = dir + 1;; s++) {
        const char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(why, why_len, "cannot create the cache directory: %s", strerror(errno));
            return false;
        }
        *s = c;
        if (!c)
            return true;
    }
}

/* The JSON keys of each roofline's figures: GFLOP/s of one core and of all cores. */
static const char *const roofline_keys[ATTN_ROOFLINE_COUNT][2] = {
    [ATTN_ROOFLINE_FMA] = {"fma_gflops_per_core", "fma_gflops_all_cores"},
    [ATTN_ROOFLINE_FMA256] = {"fma_gflops_per_core_256", "fma_gflops_all_cores_256"},
    [ATTN_ROOFLINE_FMA512] = {"fma_gflops_per_core_512", "fma_gflops_all_cores_512"},
    [ATTN_ROOFLINE_BF16_DOT] = {"bf16_dot_gflops_per_core", "bf16_dot_gflops_all_cores"},
    [ATTN_ROOFLINE_AMX_BF16] = {"amx_bf16_gflops_per_core", "amx_bf16_gflops_all_cores"},
};
enum { MEMORY_NUMBERS = 4 };
static const char *const memory_keys[MEMORY_NUMBERS] = {"read_gbs_1t", "read_gbs_all",
                                                        "triad_gbs_1t", "triad_gbs_all"};

static double *memory_number(attn_peak *p, int i)
{
    double *fields[MEMORY_NUMBERS] = {&p->read_gbs_1t, &p->read_gbs_all, &p->triad_gbs_1t,
                                      &p->triad_gbs_all};
    return fields[i];
}

/* When a peak was measured, and how busy the machine was then: a read bandwidth measured beside
 * other work comes out low (a Zen 3 cached 16.4 GB/s beside the test suite, 18.6 quiet), and
 * every bw_fraction after it reads high, so the cache says so and `peak` repeats it. */
typedef struct peak_stamp {
    char at[64];  /* measured_at, ISO 8601 */
    double load;  /* 1-minute load average at the start; NAN: unknown (older caches) */
    int cpus;     /* CPUs online then; 0: unknown */
} peak_stamp;

static bool stamp_busy(const peak_stamp *st)
{
    return cli_load_busy(st->load, st->cpus);
}

static json_t *peak_json(const attn_peak *p, const peak_stamp *st)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:i, s:i, s:I, s:i, s:s, s:i, s:s}",
                          "machine_id", attn_machine_id(), "measured_at", st->at,
                          "cores", p->cores, "fma_kernel", p->fma_kernel, "vector_bits",
                          p->vector_bits, "accumulators", p->accumulators, "triad_array_bytes",
                          (json_int_t)p->triad_array_bytes, "triad_bytes_per_element",
                          p->triad_bytes_per_element, "triad_bytes_counted",
                          "b, c read + a written + a's write-allocate read: 4 x 4 bytes per "
                          "element (STREAM counts 3 x 4: multiply by 3/4 to compare)",
                          "read_row_bytes", ATTN_READ_ROW_BYTES, "read_bytes_counted",
                          "every byte read: the triad's b and c arrays, a row of b then the same "
                          "row of c (K and V of a decode step)");
    if (o && (json_object_set_new(o, "loadavg_at_measure",
                                  isfinite(st->load) ? json_real(st->load) : json_null()) ||
              json_object_set_new(o, "cpus_online_at_measure",
                                  st->cpus > 0 ? json_integer(st->cpus) : json_null()) ||
              json_object_set_new(o, "busy_when_measured", json_boolean(stamp_busy(st))))) {
        json_decref(o);
        o = NULL;
    }
    attn_peak copy = *p;
    for (int r = 0; o && r < ATTN_ROOFLINE_COUNT; r++)
        if (json_object_set_new(o, roofline_keys[r][0], json_real(p->gflops_per_core[r])) ||
            json_object_set_new(o, roofline_keys[r][1], json_real(p->gflops_all_cores[r]))) {
            json_decref(o);
            o = NULL;
        }
    for (int i = 0; o && i < MEMORY_NUMBERS; i++)
        if (json_object_set_new(o, memory_keys[i], json_real(*memory_number(&copy, i)))) {
            json_decref(o);
            o = NULL;
        }
    return o;
}

/* A cached figure: a finite number >= 0 (> 0 when `positive`), or false with why. A cache
 * written before the figure existed lacks its key: it is measured again, never half-trusted. */
static bool peak_figure(json_t *root, const char *key, bool positive, double *out, char *why,
                        size_t why_len)
{
    json_t *v = json_object_get(root, key);
    if (!v) {
        snprintf(why, why_len, "no %s (written by an older attnbench)", key);
        return false;
    }
    const double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(isfinite(x) && (positive ? x > 0 : x >= 0))) {
        snprintf(why, why_len, "%s is not a %s number", key, positive ? "positive" : "finite >= 0");
        return false;
    }
    *out = x;
    return true;
}

/* Reads a cached peak. Returns 1 on success, 0 when there is no file, -1 when the file is
 * corrupt or not this machine's (why says which). */
static int peak_load(const char *path, attn_peak *out, peak_stamp *st, char *why, size_t why_len)
{
    if (access(path, F_OK) != 0)
        return 0;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(why, why_len, "line %d: %s", jerr.line, jerr.text);
        return -1;
    }
    int status = -1;
    const char *id = json_string_value(json_object_get(root, "machine_id"));
    const char *kernel = json_string_value(json_object_get(root, "fma_kernel"));
    const char *when = json_string_value(json_object_get(root, "measured_at"));
    json_t *cores = json_object_get(root, "cores"), *bytes = json_object_get(root, "triad_array_bytes");
    memset(out, 0, sizeof *out);
    if (!json_is_object(root) || !id || !kernel || !when || !json_is_integer(cores) ||
        !json_is_integer(bytes)) {
        snprintf(why, why_len, "missing or mistyped fields");
        goto done;
    }
    if (strcmp(id, attn_machine_id()) != 0) {
        snprintf(why, why_len, "it is machine %s's, this is %s", id, attn_machine_id());
        goto done;
    }
    /* a roofline this CPU has must be measured (> 0); one it lacks is 0 */
    for (int r = 0; r < ATTN_ROOFLINE_COUNT; r++) {
        const bool have = attn_peak_kernel((attn_roofline)r) != NULL;
        if (!peak_figure(root, roofline_keys[r][0], have, &out->gflops_per_core[r], why, why_len) ||
            !peak_figure(root, roofline_keys[r][1], have, &out->gflops_all_cores[r], why, why_len))
            goto done;
    }
    for (int i = 0; i < MEMORY_NUMBERS; i++)
        if (!peak_figure(root, memory_keys[i], true, memory_number(out, i), why, why_len))
            goto done;
    out->cores = (int)json_integer_value(cores);
    out->triad_array_bytes = json_integer_value(bytes);
    if (out->cores < 1 || out->triad_array_bytes < 1) {
        snprintf(why, why_len, "cores or triad_array_bytes is not positive");
        goto done;
    }
    /* fma_kernel must name the loop this build measures fma with here (static storage) */
    out->fma_kernel = attn_peak_kernel(ATTN_ROOFLINE_FMA)->name;
    if (strcmp(kernel, out->fma_kernel) != 0) {
        snprintf(why, why_len, "fma_kernel is '%s', this build's is '%s'", kernel, out->fma_kernel);
        goto done;
    }
    json_t *bits = json_object_get(root, "vector_bits"), *acc = json_object_get(root, "accumulators");
    out->vector_bits = (int)json_integer_value(bits);
    out->accumulators = (int)json_integer_value(acc);
    out->triad_bytes_per_element = (int)json_integer_value(
        json_object_get(root, "triad_bytes_per_element"));
    if (out->triad_bytes_per_element != ATTN_TRIAD_BYTES_PER_ELEMENT) {
        snprintf(why, why_len, "triad_bytes_per_element is %d, this build counts %d",
                 out->triad_bytes_per_element, ATTN_TRIAD_BYTES_PER_ELEMENT);
        goto done;
    }
    snprintf(st->at, sizeof st->at, "%s", when);
    /* the load then: optional (caches written before it was recorded are still the figures) */
    const json_t *load = json_object_get(root, "loadavg_at_measure");
    const json_int_t cpus = json_integer_value(json_object_get(root, "cpus_online_at_measure"));
    st->load = json_is_number(load) && json_number_value(load) >= 0 ? json_number_value(load)
                                                                     : NAN;
    st->cpus = cpus > 0 && cpus <= INT32_MAX ? (int)cpus : 0;
    status = 1;
done:
    json_decref(root);
    return status;
}

/* Writes the peak through the one file writer (atomic for the regular cache file). */
static bool peak_store(const char *path, const attn_peak *p, const peak_stamp *st, char *why,
                       size_t why_len)
{
    if (!make_cache_dir(why, why_len))
        return false;
    json_t *doc = peak_json(p, st);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(doc);
    attn_error err = {.message = "out of memory"};
    const bool ok = text && attn_file_write_text(path, text, &err) == ATTN_OK;
    free(text);
    if (!ok)
        snprintf(why, why_len, "%s", err.message);
    return ok;
}

static void now_iso8601(char *buf, size_t len)
{
    const time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "unknown");
}

/* Stamps a measurement about to start: now, and the load average now. */
static void stamp_now(peak_stamp *st)
{
    now_iso8601(st->at, sizeof st->at);
    json_t *conditions = cli_conditions_start();
    double load;
    int cpus;
    cli_conditions_busy(conditions, &load, &cpus);
    const bool known = json_is_object(json_object_get(conditions, "loadavg_start"));
    st->load = known ? load : NAN;
    st->cpus = known ? cpus : 0;
    json_decref(conditions);
}

/* ---- the roofline for `run` ---------------------------------------------------------------- */

/* The cached peak, read once per process; `run` never measures (it must stay fast). */
static peak_stamp cached_stamp;

static const attn_peak *cached_peak(void)
{
    static int state; /* 0: not read yet, 1: have it, -1: none */
    static attn_peak peak;
    if (state == 0) {
        char path[4200], why[256];
        state = -1;
        if (peak_cache_path(path, sizeof path)) {
            const int r = peak_load(path, &peak, &cached_stamp, why, sizeof why);
            if (r > 0)
                state = 1;
            else if (r < 0)
                fprintf(stderr, "attnbench: ignoring the peak cache %s, corrupt or outdated "
                        "(%s); run `attnbench peak --refresh`\n", path, why);
        }
    }
    return state > 0 ? &peak : NULL;
}

json_t *cli_cached_peak_json(void)
{
    const attn_peak *p = cached_peak();
    return p ? peak_json(p, &cached_stamp) : json_null();
}

double cli_peak_fraction(const char *roofline, double gflops, int threads)
{
    const attn_peak *p = cached_peak();
    int r = 0;
    while (r < ATTN_ROOFLINE_COUNT && strcmp(roofline, attn_roofline_name((attn_roofline)r)) != 0)
        r++;
    if (!p || threads < 1 || r == ATTN_ROOFLINE_COUNT || !(p->gflops_per_core[r] > 0))
        return NAN;
    const int used = threads < p->cores ? threads : p->cores; /* more threads than cores add nothing */
    return gflops / (p->gflops_per_core[r] * used);
}

double cli_kv_bytes(const attn_problem *prob)
{
    /* K and V rows every batch entry reads: keys up to its largest key limit. */
    double rows = 0;
    for (int64_t b = 0; b < prob->batch; b++) {
        int64_t keys = 0;
        for (int64_t i = 0; i < prob->len_q; i++) {
            const int64_t n = attn_key_limit(prob, b, i);
            keys = n > keys ? n : keys;
        }
        rows += (double)keys;
    }
    /* bytes per K/V row: d elements of the stored type, and its scales when quantized */
    const attn_dtype kvt = (attn_dtype)attn_problem_kv_dtype(prob);
    const double row_bytes = (double)attn_dtype_bytes(kvt, (size_t)prob->head_dim) +
                             (kvt == ATTN_INT8 ? 4.0 : kvt == ATTN_Q4 ? prob->head_dim / 16.0 : 0.0);
    return 2.0 * rows * (double)prob->heads_kv * row_bytes;
}

double cli_bw_fraction(const attn_problem *prob, double seconds, int threads)
{
    const attn_peak *p = cached_peak();
    if (!p || threads < 1 || !(seconds > 0))
        return NAN;
    /* Read bandwidth of `threads` threads: one thread's times threads, up to all cores'. */
    double bw = threads >= p->cores ? p->read_gbs_all : p->read_gbs_1t * threads;
    bw = bw < p->read_gbs_all ? bw : p->read_gbs_all;
    return cli_kv_bytes(prob) / seconds * 1e-9 / bw;
}

/* ---- attnbench peak ----------------------------------------------------------------------- */

enum { PEAK_FORMAT, PEAK_REFRESH, PEAK_TRIAD_MIB, PEAK_HELP, PEAK_OPTION_COUNT };
static const cli_option peak_options[PEAK_OPTION_COUNT] = {
    [PEAK_FORMAT] = {"format", "text|json", "output format (default text)"},
    [PEAK_REFRESH] = {"refresh", NULL, "measure again and replace the cached figures"},
    [PEAK_TRIAD_MIB] = {"triad-mib", "N",
                        "triad and read array size in MiB (measures, never cached)"},
    [PEAK_HELP] = {"help", NULL, "this help"},
};

static void print_peak_help(void)
{
    printf("usage: attnbench peak [options]\n\n"
           "The measured roofline of this machine, one per kind of instruction the variants\n"
           "are built on, in GFLOP/s of one core and of all cores (independent chains of one\n"
           "instruction): fma (float32 FMA at the widest vector: portable C and BLAS), fma256\n"
           "(AVX2), fma512 (AVX-512), bf16_dot (VDPBF16PS, 64 FLOPs each) and amx_bf16\n"
           "(TDPBF16PS 16x16x32), 0 where the CPU lacks them. Memory bandwidth in GB/s on 1\n"
           "thread and one thread per core: read (two arrays read in turn, 512-byte rows: K\n"
           "and V of a decode step) and a STREAM-like triad a[i] = b[i] + s*c[i] counting 16\n"
           "bytes per element: b and c read, a written, and a's write-allocate read (STREAM\n"
           "counts 12: x 3/4 to compare). Each figure is the best of 5 repetitions. Arrays: 4x\n"
           "the L3 size each (at least 64 MiB, at most 1/12 of RAM).\n\n"
           "Figures are cached per machine id in $XDG_CACHE_HOME/attnbench/peak-<id>.json\n"
           "(~/.cache/attnbench/...) and reused; `run` reads them for peak_fraction (against\n"
           "the variant's roofline) and bw_fraction (against read). A corrupt cache file, or\n"
           "one without every figure, is reported and measured again. Figures measured while\n"
           "the load average is half the CPUs or more are cached marked busy_when_measured\n"
           "(with the load), and `peak` says so each time: --refresh at a quiet moment.\n\n"
           "options:\n");
    cli_print_options(stdout, peak_options, PEAK_OPTION_COUNT);
}

int cli_peak(int argc, char **argv)
{
    cli_format format = CLI_FORMAT_TEXT;
    bool refresh = false;
    int64_t triad_mib = 0;
    const char *value;
    for (int o; (o = cli_next_option("peak", argc, argv, peak_options, PEAK_OPTION_COUNT,
                                     &value)) != CLI_OPTION_END;) {
        switch (o) {
        case PEAK_FORMAT:
            if (!cli_parse_format("peak", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &format))
                return CLI_EXIT_USAGE;
            break;
        case PEAK_REFRESH: refresh = true; break;
        case PEAK_TRIAD_MIB:
            if (!cli_parse_int64("peak", "triad-mib", value, 1, 1 << 20, &triad_mib))
                return CLI_EXIT_USAGE;
            break;
        case PEAK_HELP: print_peak_help(); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }

    char path[4200], why[256];
    peak_stamp st = {.load = NAN};
    const bool have_path = peak_cache_path(path, sizeof path);
    attn_peak peak;
    bool cached = false;
    if (have_path && !refresh && triad_mib == 0) {
        const int r = peak_load(path, &peak, &st, why, sizeof why);
        if (r < 0)
            fprintf(stderr, "attnbench peak: cache file %s corrupt or outdated (%s): measuring "
                    "again\n", path, why);
        cached = r > 0;
    }
    if (!cached) {
        attn_error err;
        stamp_now(&st);
        if (stamp_busy(&st))
            fprintf(stderr, "attnbench peak: warning: load average %.2f on %d CPUs: the machine is "
                    "busy, so these figures may be low (cached as measured while busy; measure "
                    "again at a quiet moment with --refresh)\n", st.load, st.cpus);
        if (attn_peak_measure(&peak, triad_mib << 20, &err) != ATTN_OK)
            return cli_error("peak", "%s", err.message);
        if (triad_mib == 0) {
            if (!have_path)
                fprintf(stderr, "attnbench peak: no cache directory (HOME unset): not cached\n");
            else if (!peak_store(path, &peak, &st, why, sizeof why))
                fprintf(stderr, "attnbench peak: not cached: %s\n", why);
        }
    }

    if (format == CLI_FORMAT_JSON) {
        json_t *root = peak_json(&peak, &st);
        if (root && (json_object_set_new(root, "cached", json_boolean(cached)) ||
                     json_object_set_new(root, "cache_file", have_path && triad_mib == 0
                                                                 ? json_string(path)
                                                                 : json_null()))) {
            json_decref(root);
            root = NULL;
        }
        const bool ok = cli_json_print(root);
        json_decref(root);
        return ok ? CLI_EXIT_OK : cli_error("peak", "out of memory or output error");
    }
    printf("machine %s, %s\n", attn_machine_id(), cached ? "cached" : "measured now");
    printf("  roofline  instruction           accumulators  GFLOP/s per core  all %3d cores\n",
           peak.cores);
    for (int r = 0; r < ATTN_ROOFLINE_COUNT; r++) {
        const attn_flop_kernel *k = attn_peak_kernel((attn_roofline)r);
        if (k)
            printf("  %-9s %-21s %12d %17.1f %14.1f\n", attn_roofline_name((attn_roofline)r),
                   k->instruction, k->accumulators, peak.gflops_per_core[r],
                   peak.gflops_all_cores[r]);
        else
            printf("  %-9s not on this CPU\n", attn_roofline_name((attn_roofline)r));
    }
    printf("  memory, 2 or 3 x %lld MiB                    GB/s 1 thread  %3d threads\n",
           (long long)(peak.triad_array_bytes >> 20), peak.cores);
    printf("  read      2 streams, %d-byte rows %25.1f %12.1f\n", ATTN_READ_ROW_BYTES,
           peak.read_gbs_1t, peak.read_gbs_all);
    printf("  triad     a=b+s*c, %d bytes/element %23.1f %12.1f\n", peak.triad_bytes_per_element,
           peak.triad_gbs_1t, peak.triad_gbs_all);
    printf("  measured %s%s%s\n", st.at, have_path && triad_mib == 0 ? ", cache " : "",
           have_path && triad_mib == 0 ? path : "");
    if (stamp_busy(&st))
        printf("  measured while the machine was busy (load average %.2f on %d CPUs): the figures "
               "may be low;\n  `attnbench peak --refresh` at a quiet moment measures again\n",
               st.load, st.cpus);
    return CLI_EXIT_OK;
}

/* ---- attnbench info ----------------------------------------------------------------------- */

enum { INFO_FORMAT, INFO_DISABLE_ISA, INFO_HELP, INFO_OPTION_COUNT };
static const cli_option info_options[INFO_OPTION_COUNT] = {
    [INFO_FORMAT] = {"format", "text|json", "output format (default text)"},
    [INFO_DISABLE_ISA] = {"disable-isa", "LIST", "turn ISAs off, as ATTN_DISABLE_ISA=LIST does"},
    [INFO_HELP] = {"help", NULL, "this help"},
};

static const char *const cache_names[ATTN_CACHE_LEVELS] = {"L1d", "L2", "L3"};

static json_t *string_list(const char *const *items, int count)
{
    json_t *list = json_array();
    for (int i = 0; list && i < count; i++)
        if (json_array_append_new(list, json_string(items[i]))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

static json_t *isa_names_json(uint32_t mask)
{
    const char *names[32];
    int n = 0;
    for (int i = 0; i < attn_isa_name_count && n < 32; i++)
        if (mask & attn_isa_names[i].bit)
            names[n++] = attn_isa_names[i].name;
    return string_list(names, n);
}

/* CPUs sharing each instance of a cache level, as a JSON list of "0-3"-style strings. */
static json_t *cache_sharing_json(int level, int instances)
{
    json_t *list = json_array();
    for (int i = 0; list && i < instances; i++) {
        char cpus[512];
        if (!attn_topology_cache_cpus(level, i, cpus, sizeof cpus))
            snprintf(cpus, sizeof cpus, "?");
        if (json_array_append_new(list, json_string(cpus))) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static json_t *topology_json(void)
{
    const attn_topology *t = attn_topology_get();
    const attn_machine *m = &attn_cpu_get()->machine;
    const int64_t used[ATTN_CACHE_LEVELS] = {attn_machine_fact(m, ATTN_FACT_L1D, NULL),
                                             attn_machine_fact(m, ATTN_FACT_L2, NULL),
                                             attn_machine_fact(m, ATTN_FACT_L3, NULL)};
    json_t *caches = json_array();
    for (int l = 0; caches && l < ATTN_CACHE_LEVELS; l++) {
        const attn_cache_info *c = &t->cache[l];
        json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:i, s:I, s:o}", "name", cache_names[l],
                              "level", l + 1, "bytes", (json_int_t)c->bytes, "line_bytes",
                              (json_int_t)c->line_bytes, "instances", c->instances,
                              "bytes_used_for_tiles", (json_int_t)used[l], "shared_by_cpus",
                              cache_sharing_json(l + 1, c->instances));
        if (json_array_append_new(caches, o)) {
            json_decref(caches);
            caches = NULL;
        }
    }
    char numa0[512] = "";
    attn_topology_numa_cpus(0, numa0, sizeof numa0);
    json_t *cores = json_array();
    for (int c = 0; cores && c < t->cores; c++) {
        char cpus[256];
        if (!attn_topology_core_cpus(c, cpus, sizeof cpus))
            snprintf(cpus, sizeof cpus, "?");
        if (json_array_append_new(cores, json_string(cpus))) {
            json_decref(cores);
            cores = NULL;
        }
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:i, s:o, s:s, s:i, s:o}", "source",
                     t->from_hwloc ? "hwloc" : "sysconf", "packages", t->packages, "numa_nodes",
                     t->numa_nodes, "cores", t->cores, "hardware_threads", t->pus,
                     "core_cpus", cores, "numa0_cpus", numa0, "default_threads",
                     attn_default_threads(), "caches", caches);
}

static json_t *variants_json(void)
{
    json_t *list = json_array();
    for (int i = 0; list && i < attn_variant_count(); i++) {
        attn_variant_info v;
        if (!attn_variant_get(i, &v))
            continue;
        json_t *o = json_pack("{s:s, s:s, s:b, s:o, s:o, s:s, s:f, s:s}", "name", v.name, "isa",
                              v.isa, "supported", v.supported, "why_not",
                              v.supported ? json_null() : json_string(v.why_not), "dtypes",
                              cli_dtypes_json(v.dtypes), "compute_dtype",
                              attn_dtype_name(v.compute_dtype), "tolerance", v.tolerance,
                              "roofline", v.roofline);
        if (json_array_append_new(list, o)) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static void print_info_text(const char *forced, const char *force_error)
{
    const attn_cpu *cpu = attn_cpu_get();
    const attn_topology *t = attn_topology_get();
    char isa[512], numa0[512] = "?";
    printf("machine id        %s\n", attn_machine_id());
    printf("cpu               %s (%s, family %d model %d stepping %d)\n", cpu->model_name,
           cpu->vendor, cpu->family, cpu->model, cpu->stepping);
    attn_isa_format(cpu->isa_detected, isa, sizeof isa);
    if (cpu->sve_vector_bits) /* the vector length SVE code gets on this thread (prctl) */
        printf("isa detected      %s   (sve %d-bit)\n", isa, cpu->sve_vector_bits);
    else
        printf("isa detected      %s\n", isa);
    attn_isa_format(cpu->isa, isa, sizeof isa);
    const char *env = getenv("ATTN_DISABLE_ISA");
    printf("isa enabled       %s%s%s%s\n", isa, env && *env ? "   (ATTN_DISABLE_ISA=" : "",
           env && *env ? env : "", env && *env ? ")" : "");
    printf("topology (%s)  %d package%s, %d NUMA node%s, %d cores, %d hardware threads\n",
           t->from_hwloc ? "hwloc" : "sysconf", t->packages, t->packages == 1 ? "" : "s",
           t->numa_nodes, t->numa_nodes == 1 ? "" : "s", t->cores, t->pus);
    for (int l = 0; l < ATTN_CACHE_LEVELS; l++) {
        const attn_cache_info *c = &t->cache[l];
        char size[32];
        cli_format_bytes(size, sizeof size, c->bytes);
        /* the cpus of each instance: "0 | 1" is one cache per cpu, "0-1" one for both */
        printf("%-17s %s x %d, cpus of each:", cache_names[l], size, c->instances);
        for (int i = 0; i < c->instances && i < 16; i++) {
            char cpus[256];
            printf("%s %s", i ? " |" : "",
                   attn_topology_cache_cpus(l + 1, i, cpus, sizeof cpus) ? cpus : "?");
        }
        printf("%s\n", c->instances > 16 ? " ..." : "");
    }
    attn_topology_numa_cpus(0, numa0, sizeof numa0);
    printf("default threads   %d (the cores of NUMA node 0, cpus %s)\n", attn_default_threads(),
           numa0);
    printf("forced variant    %s\n", force_error ? force_error : forced ? forced : "none");
    printf("variants:         (runs here, input types read (compute type), ISA)\n");
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info v;
        if (!attn_variant_get(i, &v))
            continue;
        char types[32], reads[48];
        cli_dtypes_format(v.dtypes, types, sizeof types);
        snprintf(reads, sizeof reads, "%s (%s)", types, attn_dtype_name(v.compute_dtype));
        printf("  %-12s %-4s %-19s %s\n", v.name, v.supported ? "yes" : "no", reads,
               v.supported ? (v.isa[0] ? v.isa : "portable C") : v.why_not);
    }
    cli_defaults_print();
    const attn_peak *p = cached_peak();
    if (p)
        printf("peak (cached)     GFLOP/s per core fma %.1f, fma256 %.1f, fma512 %.1f, bf16_dot "
               "%.1f, amx_bf16 %.1f; GB/s 1 thread read %.1f, triad %.1f\n",
               p->gflops_per_core[ATTN_ROOFLINE_FMA], p->gflops_per_core[ATTN_ROOFLINE_FMA256],
               p->gflops_per_core[ATTN_ROOFLINE_FMA512], p->gflops_per_core[ATTN_ROOFLINE_BF16_DOT],
               p->gflops_per_core[ATTN_ROOFLINE_AMX_BF16], p->read_gbs_1t, p->triad_gbs_1t);
    else
        printf("peak              not measured yet (attnbench peak)\n");
}

int cli_info(int argc, char **argv)
{
    cli_format format = CLI_FORMAT_TEXT;
    const char *value;
    for (int o; (o = cli_next_option("info", argc, argv, info_options, INFO_OPTION_COUNT,
                                     &value)) != CLI_OPTION_END;) {
        switch (o) {
        case INFO_FORMAT:
            if (!cli_parse_format("info", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &format))
                return CLI_EXIT_USAGE;
            break;
        case INFO_DISABLE_ISA:
            if (!cli_set_disable_isa("info", value))
                return CLI_EXIT_USAGE;
            break;
        case INFO_HELP:
            printf("usage: attnbench info [options]\n\nThis machine as attnbench sees it: CPU, "
                   "ISA features (detected, and enabled\nafter ATTN_DISABLE_ISA), topology and "
                   "caches from hwloc, the machine id,\nthe default thread count, "
                   "ATTN_FORCE_VARIANT and which variants run here; then the\ndefaults the "
                   "library chooses here (tiles, FMA rates, threads, the planner's\nestimate, "
                   "for the reference shapes P1 and D1) and the fact behind each.\nExit status 2 when "
                   "ATTN_FORCE_VARIANT names a variant that cannot run.\n\noptions:\n");
            cli_print_options(stdout, info_options, INFO_OPTION_COUNT);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    const char *forced = NULL;
    attn_error err;
    const char *force_error = attn_forced_variant(&forced, &err) == ATTN_OK ? NULL : err.message;

    if (format == CLI_FORMAT_TEXT) {
        cli_text_begin();
        print_info_text(forced, force_error);
        if (!cli_text_end())
            return cli_error("info", "output error");
    } else {
        const attn_cpu *cpu = attn_cpu_get();
        const attn_peak *p = cached_peak();
        const char *env = getenv("ATTN_DISABLE_ISA");
        json_t *root = json_pack(
"{s:s, s:o, s:{s:o, s:o, s:o, s:i}, s:o, s:o, s:{s:o, s:o}, s:o, s:o}", "tool",
            "attnbench " ATTN_VERSION_STRING, "machine", cli_machine_json(), "isa", "detected",
            isa_names_json(cpu->isa_detected), "enabled", isa_names_json(cpu->isa),
            "disable_isa", env && *env ? json_string(env) : json_null(), "sve_vector_bits",
            cpu->sve_vector_bits, "topology",
            topology_json(), "variants", variants_json(), "forced_variant", "name",
            forced ? json_string(forced) : json_null(), "error",
            force_error ? json_string(force_error) : json_null(), "peak",
            p ? peak_json(p, &cached_stamp) : json_null(), "defaults", cli_defaults_json());
        const bool ok = cli_json_print(root);
        json_decref(root);
        if (!ok)
            return cli_error("info", "out of memory or output error");
    }
    if (force_error)
        return cli_error("info", "%s", force_error);
    return CLI_EXIT_OK;
}
