/* cli_study.c — `attnbench study scaling`: why attention divides its logits by sqrt(d).
 *
 * For query and key vectors with independent unit-variance entries, q·k has variance d, so
 * the logits of a row spread as sqrt(d). Without the 1/sqrt(d) scale, a growing head dimension
 * pushes the softmax towards a one-hot vector: the largest probability goes to 1, the entropy
 * to 0, and the softmax Jacobian diag(p) - p·pᵀ (what the gradient flows through) to 0. With
 * the scale the logits keep unit variance and all three stay where they are. The study
 * measures this on random data, in double precision, and prints the numbers. */
#include "cli.h"
#include "cli_commands.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_ROWS = 512, DEFAULT_KEYS = 128, MIN_DIM_LOG2 = 3, MAX_DIM_LOG2 = 10 };
enum { MAX_ROWS = 1 << 16, MAX_KEYS = 1 << 16 }; /* at most 512 MiB for Q at d = 1024 */

enum { S_SEED, S_ROWS, S_KEYS, S_LEN, S_FORMAT, S_HELP, S_OPTION_COUNT };

static const cli_option study_options[S_OPTION_COUNT] = {
    [S_SEED] = {"seed", "N", "seed of the random Q and K (default 1)"},
    [S_ROWS] = {"rows", "N", "query rows per head dimension (default 512)"},
    [S_KEYS] = {"keys", "N", "keys L per row (default 128)"},
    /* the shape flags' name for the same length (cli_shape_flags.c) */
    [S_LEN] = {"len", "N", "the same as --keys, as run, tune, plan and sweep name it"},
    [S_FORMAT] = {"format", "text|json", "output format (default text)"},
    [S_HELP] = {"help", NULL, "this help"},
};

static void print_study_help(void)
{
    printf("usage: attnbench study scaling [options]\n\n"
           "Why scaled dot-product attention divides the logits by sqrt(d). For random Q [rows, d]\n"
           "and K [L, d] with independent standard normal entries (seeded), and d = 8, 16, ...,\n"
           "1024, each row's softmax p = softmax(s * q.K^T) is computed in double precision with\n"
           "s = 1 (unscaled) and s = 1/sqrt(d) (scaled). Reported, as means over the rows:\n"
           "  logit_std   standard deviation of the row's logits s*q.k (about sqrt(d) unscaled)\n"
           "  max_prob    the largest probability (1/L is uniform, 1 is one-hot)\n"
           "  entropy     -sum p log p in nats (log L is uniform, 0 is one-hot)\n"
           "  jacobian    Frobenius norm of the softmax Jacobian diag(p) - p.p^T, through which\n"
           "              the gradient of the logits flows (0 when p is one-hot)\n"
           "Without the scale, max_prob -> 1, entropy -> 0 and jacobian -> 0 as d grows: the\n"
           "softmax saturates and stops passing gradient. With it, all three stay flat.\n"
           "\noptions:\n");
    cli_print_options(stdout, study_options, S_OPTION_COUNT);
}

/* Uniform in (0, 1): 53 random bits, never 0 (the logarithm below). */
static double uniform_open(uint64_t *state)
{
    return ((double)(attn_rng_next(state) >> 11) + 0.5) * 0x1p-53;
}

/* Standard normal values by the Box–Muller transform, two at a time. */
static void fill_normal(double *x, int64_t n, uint64_t *state)
{
    for (int64_t i = 0; i < n; i += 2) {
        const double r = sqrt(-2.0 * log(uniform_open(state)));
        const double angle = 2.0 * M_PI * uniform_open(state);
        x[i] = r * cos(angle);
        if (i + 1 < n)
            x[i + 1] = r * sin(angle);
    }
}

/* Means over the rows, for one head dimension and one scale. */
typedef struct study_point {
    int64_t head_dim;
    bool scaled;
    double scale, logit_std, max_prob, entropy, jacobian_fro;
} study_point;

/* Softmax statistics of every row of s·Q·Kᵀ; `logits` holds `keys` doubles of scratch. */
static study_point measure_point(const double *q, const double *k, int64_t rows, int64_t keys,
                                 int64_t d, bool scaled, double *logits)
{
    study_point pt = {.head_dim = d, .scaled = scaled, .scale = scaled ? 1.0 / sqrt((double)d)
                                                                        : 1.0};
    for (int64_t i = 0; i < rows; i++) {
        double top = -INFINITY, mean = 0;
        for (int64_t j = 0; j < keys; j++) {
            double dot = 0;
            for (int64_t c = 0; c < d; c++)
                dot += q[i * d + c] * k[j * d + c];
            logits[j] = pt.scale * dot;
            top = fmax(top, logits[j]);
            mean += logits[j];
        }
        mean /= (double)keys;
        double total = 0, spread = 0;
        for (int64_t j = 0; j < keys; j++) {
            spread += (logits[j] - mean) * (logits[j] - mean);
            logits[j] -= top; /* max subtraction: exp never overflows */
            total += exp(logits[j]);
        }
        /* With z_j = logits[j] - top: p_j = exp(z_j)/total, log p_j = z_j - log(total). */
        const double log_total = log(total);
        double p_max = 0, entropy = 0, sum_p2 = 0, sum_p3 = 0;
        for (int64_t j = 0; j < keys; j++) {
            const double p = exp(logits[j]) / total;
            p_max = fmax(p_max, p);
            if (p > 0)
                entropy -= p * (logits[j] - log_total);
            sum_p2 += p * p;
            sum_p3 += p * p * p;
        }
        /* ||diag(p) - p.p^T||_F^2 = sum_i (p_i - p_i^2)^2 + sum_{i!=j} p_i^2 p_j^2
         *                         = sum p^2 - 2 sum p^3 + (sum p^2)^2. */
        const double fro2 = sum_p2 - 2.0 * sum_p3 + sum_p2 * sum_p2;
        pt.logit_std += sqrt(spread / (double)keys);
        pt.max_prob += p_max;
        pt.entropy += entropy;
        pt.jacobian_fro += sqrt(fmax(fro2, 0.0));
    }
    pt.logit_std /= (double)rows;
    pt.max_prob /= (double)rows;
    pt.entropy /= (double)rows;
    pt.jacobian_fro /= (double)rows;
    return pt;
}

static json_t *point_json(const study_point *pt)
{
    return json_pack("{s:I, s:b, s:f, s:f, s:f, s:f, s:f}", "head_dim", (json_int_t)pt->head_dim,
                     "scaled", pt->scaled, "scale", pt->scale, "logit_std", pt->logit_std,
                     "max_prob", pt->max_prob, "entropy", pt->entropy, "jacobian_fro",
                     pt->jacobian_fro);
}

static bool print_json(const study_point *points, int count, uint64_t seed, int64_t rows,
                       int64_t keys)
{
    json_t *list = json_array();
    for (int i = 0; list && i < count; i++)
        if (json_array_append_new(list, point_json(&points[i]))) {
            json_decref(list);
            list = NULL;
        }
    json_t *root = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:f, s:f, s:o}", "tool",
        "attnbench " ATTN_VERSION_STRING, "study", "scaling", "seed", (json_int_t)seed, "rows",
        (json_int_t)rows, "keys", (json_int_t)keys, "distribution",
        "Q and K entries independent standard normal (Box-Muller over SplitMix64)", "precision",
        "float64", "jacobian_norm", "frobenius", "uniform_max_prob", 1.0 / (double)keys,
        "uniform_entropy", log((double)keys), "points", list);
    const bool ok = cli_json_print(root);
    json_decref(root);
    return ok;
}

static bool print_text(const study_point *points, int count, uint64_t seed, int64_t rows,
                       int64_t keys)
{
    printf("softmax of s*q.K^T over L = %lld keys, means over %lld rows; Q, K standard normal "
           "(seed %llu), float64\nuniform row: max_prob %.4g, entropy %.4g nats; jacobian = "
           "Frobenius norm of diag(p) - p.p^T\ncolumns: unscaled (s = 1), then scaled "
           "(s = 1/sqrt(d), marked ')\n\n",
           (long long)keys, (long long)rows, (unsigned long long)seed, 1.0 / (double)keys,
           log((double)keys));
    cli_table t;
    cli_table_init(&t, 9, "rrrrrrrrr");
    static const char *const header[] = {"d", "logit_std", "max_prob", "entropy", "jacobian",
                                         "logit_std'", "max_prob'", "entropy'", "jacobian'"};
    for (int i = 0; i < 9; i++)
        cli_table_add(&t, "%s", header[i]);
    for (int i = 0; i + 1 < count; i += 2) {
        const study_point *raw = &points[i], *scaled = &points[i + 1];
        cli_table_add(&t, "%lld", (long long)raw->head_dim);
        for (const study_point *pt = raw; pt <= scaled; pt++) {
            cli_table_add(&t, "%.3f", pt->logit_std);
            cli_table_add(&t, "%.4f", pt->max_prob);
            cli_table_add(&t, "%.4f", pt->entropy);
            cli_table_add(&t, "%.4f", pt->jacobian_fro);
        }
    }
    const bool ok = cli_table_print(&t, stdout);
    cli_table_free(&t);
    return ok;
}

static int study_scaling(int argc, char **argv)
{
    uint64_t seed = 1;
    int64_t rows = DEFAULT_ROWS, keys = DEFAULT_KEYS;
    cli_format format = CLI_FORMAT_TEXT;
    const char *value;
    for (int o; (o = cli_next_option("study", argc, argv, study_options, S_OPTION_COUNT,
                                     &value)) != CLI_OPTION_END;) {
        bool ok = true;
        switch (o) {
        case S_SEED: ok = cli_parse_uint64("study", "seed", value, &seed); break;
        case S_ROWS: ok = cli_parse_int64("study", "rows", value, 1, MAX_ROWS, &rows); break;
        case S_KEYS:
        case S_LEN:
            ok = cli_parse_int64("study", study_options[o].name, value, 1, MAX_KEYS, &keys);
            break;
        case S_FORMAT:
            ok = cli_parse_format("study", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &format);
            break;
        case S_HELP: print_study_help(); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
        if (!ok)
            return CLI_EXIT_USAGE;
    }

    const int64_t max_dim = (int64_t)1 << MAX_DIM_LOG2;
    enum { COUNT = 2 * (MAX_DIM_LOG2 - MIN_DIM_LOG2 + 1) };
    study_point points[COUNT];
    double *q = malloc((size_t)(rows * max_dim) * sizeof *q);
    double *k = malloc((size_t)(keys * max_dim) * sizeof *k);
    double *logits = malloc((size_t)keys * sizeof *logits);
    int status = CLI_EXIT_OK;
    if (!q || !k || !logits) {
        status = cli_error("study", "out of memory");
    } else {
        int n = 0;
        for (int e = MIN_DIM_LOG2; e <= MAX_DIM_LOG2; e++) {
            const int64_t d = (int64_t)1 << e;
            /* Fresh draws per d from streams tied to (seed, d): a d's numbers do not depend
             * on which other dimensions were studied. */
            uint64_t rng_q = seed ^ (uint64_t)d << 40, rng_k = seed ^ (uint64_t)(d | 1) << 48;
            fill_normal(q, rows * d, &rng_q);
            fill_normal(k, keys * d, &rng_k);
            points[n++] = measure_point(q, k, rows, keys, d, false, logits);
            points[n++] = measure_point(q, k, rows, keys, d, true, logits);
        }
        if (format != CLI_FORMAT_JSON)
            cli_text_begin(); /* lines wrap to 100 columns */
        bool printed = format == CLI_FORMAT_JSON ? print_json(points, n, seed, rows, keys)
                                                 : print_text(points, n, seed, rows, keys);
        if (format != CLI_FORMAT_JSON)
            printed = cli_text_end() && printed;
        if (!printed)
            status = cli_error("study", "out of memory or output error");
    }
    free(q);
    free(k);
    free(logits);
    return status;
}

int cli_study(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: attnbench study STUDY [options]   (attnbench study STUDY --help)\n\n"
               "studies:\n  scaling    softmax saturation with and without the 1/sqrt(d) "
               "scale\n");
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_error("study", "which study? (known: scaling)");
    if (!strcmp(argv[1], "scaling"))
        return study_scaling(argc - 1, argv + 1);
    return cli_error("study", "unknown study '%s' (known: scaling)", argv[1]);
}
