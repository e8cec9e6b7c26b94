/* cli.c — the attnbench tool: a dispatcher over a table of subcommands, the helpers they share
 * (options, number parsing, tables, JSON), and the `list` and `run` subcommands. */
#include "cli.h"
#include "cli_tune.h"

#include "atomic_file.h"
#include "cpu.h"
#include "npy.h"
#include "oracle.h"
#include "rng.h"
#include "shapes.h"
#include "stats.h"
#include "timing.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The subcommands: adding one is a function (see cli.h) and one line here. */
static const struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"list", cli_list, "list the variants: ISA, support on this CPU, parameters, tolerance"},
    {"run", cli_run, "time variants on one shape and check them against the float64 oracle"},
    {"info", cli_info, "this machine: CPU, ISA, topology, caches, machine id, runnable variants"},
    {"peak", cli_peak, "measure (or show the cached) FMA peak and triad memory bandwidth"},
    {"tune", cli_tune, "search the fastest correct variant and parameters for a shape; store wisdom"},
    {"plan", cli_plan, "what the planner would choose for a shape, and why"},
    {"wisdom", cli_wisdom, "show, export, import or forget the tuning wisdom of this machine"},
    {"sweep", cli_sweep, "run a grid of shapes, threads and variants; write one result file"},
    {"study", cli_study, "numerical studies: `study scaling`, why attention scales by 1/sqrt(d)"},
    {"compare", cli_compare, "compare two benchmark results: ratios, intervals, regression verdict"},
    {"overhead", cli_overhead, "per-call overhead of attn_execute on a tiny problem"},
};
static const int command_count = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *out)
{
    fprintf(out, "usage: attnbench COMMAND [options]   (attnbench COMMAND --help: its options)\n"
                 "\nScaled dot-product attention on CPUs: O = softmax(scale*Q*K^T + mask)*V.\n"
                 "\ncommands:\n");
    for (int i = 0; i < command_count; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nexit status: 0 ok, 1 a result failed its check, 2 bad input or an error.\n"
                 "environment: ATTN_DISABLE_ISA=avx512,avx2 turns ISAs off as if the CPU lacked "
                 "them;\nATTN_FORCE_VARIANT=NAME makes NAME the only default choice.\n"
                 "Every command takes --wide: its tables at full width (by default they wrap to\n"
                 "fit 100 columns).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("attnbench %s\n", ATTN_VERSION_STRING);
        return CLI_EXIT_OK;
    }
    /* --wide, taken by every command, is taken out here: tables at their full width. */
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            while (i < argc)
                argv[kept++] = argv[i++];
        else if (!strcmp(argv[i], "--wide"))
            cli_table_wide = true;
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = NULL;
    int status = -1;
    for (int i = 0; i < command_count && status < 0; i++)
        if (!strcmp(name, commands[i].name))
            status = commands[i].run(argc - 1, argv + 1);
    if (status < 0)
        return cli_error(NULL, "unknown command '%s' (see attnbench --help)", name);
    /* A full disk or a closed pipe must not pass for success. */
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_error(NULL, "cannot write the output: %s", strerror(errno));
    return status;
}

/* ---- shared helpers ----------------------------------------------------------------------- */

int cli_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "attnbench%s%s: ", command ? " " : "", command ? command : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

#define CLI_MAX_OPTIONS 64

int cli_next_option(const char *command, int argc, char **argv, const cli_option *options,
                    int count, const char **value)
{
    struct option longopts[CLI_MAX_OPTIONS + 1];
    if (count > CLI_MAX_OPTIONS) {
        cli_error(command, "internal error: more than %d options", CLI_MAX_OPTIONS);
        return CLI_OPTION_ERROR;
    }
    int help = -1;
    for (int i = 0; i < count; i++) {
        longopts[i] = (struct option){options[i].name,
                                      options[i].metavar ? required_argument : no_argument, NULL,
                                      256 + i};
        if (!strcmp(options[i].name, "help"))
            help = i;
    }
    longopts[count] = (struct option){0};
    opterr = 0; /* our messages, not getopt's */
    *value = NULL;
    const int c = getopt_long(argc, argv, ":h", longopts, NULL);
    if (c >= 256) {
        *value = optarg;
        return c - 256;
    }
    if (c == 'h' && help >= 0)
        return help;
    if (c == -1) {
        if (optind < argc) {
            cli_error(command, "unexpected argument '%s'", argv[optind]);
            return CLI_OPTION_ERROR;
        }
        return CLI_OPTION_END;
    }
    if (c == ':')
        cli_error(command, "option '%s' needs a value", argv[optind - 1]);
    else if (optopt && optopt != 'h')
        cli_error(command, "unknown option '-%c'", optopt);
    else {
        /* "--lenn=5": the name without its value, and the option nearest to it. */
        const char *arg = argv[optind - 1];
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
        const char *near = arg[0] == '-' && arg[1] == '-'
                               ? cli_nearest_option(name, options, count) : NULL;
        if (near)
            cli_error(command, "unknown or ambiguous option '%s'; did you mean --%s?", arg,
                      near);
        else
            cli_error(command, "unknown or ambiguous option '%s' (see --help)", arg);
    }
    return CLI_OPTION_ERROR;
}

void cli_print_wrapped(FILE *out, size_t indent, size_t used, const char *text)
{
    while (*text) {
        size_t room = CLI_TABLE_WIDTH > used ? CLI_TABLE_WIDTH - used : 1;
        size_t n = strlen(text);
        if (n > room && !cli_table_wide) { /* break at the last blank that fits */
            size_t cut = room;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            n = cut ? cut : room;
        }
        fprintf(out, "%.*s\n", (int)n, text);
        text += n;
        while (*text == ' ')
            text++;
        if (*text)
            fprintf(out, "%*s", (int)indent, "");
        used = indent;
    }
}

void cli_print_options(FILE *out, const cli_option *options, int count)
{
    enum { LEFT = 24, INDENT = 2 + LEFT + 1 };
    for (int i = 0; i < count; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].metavar ? " " : "",
                 options[i].metavar ? options[i].metavar : "");
        if (strlen(left) > LEFT) /* the help on a line of its own */
            fprintf(out, "  %s\n%*s", left, INDENT, "");
        else
            fprintf(out, "  %-*s ", LEFT, left);
        cli_print_wrapped(out, INDENT, INDENT, options[i].help);
    }
}

/* Text that starts like a number strto* would take but must not: blank, leading spaces. */
static bool number_text_ok(const char *command, const char *flag, const char *text)
{
    if (!text[0] || text[0] == ' ' || text[0] == '\t' || text[0] == '\n') {
        cli_error(command, "--%s: '%s' is not a number", flag, text);
        return false;
    }
    return true;
}

bool cli_parse_int64(const char *command, const char *flag, const char *text, int64_t min,
                     int64_t max, int64_t *out)
{
    if (!number_text_ok(command, flag, text))
        return false;
    char *end;
    errno = 0;
    const long long v = strtoll(text, &end, 10);
    if (*end) {
        cli_error(command, "--%s: '%s' is not an integer", flag, text);
        return false;
    }
    if ((errno == ERANGE && v < 0) || v < min) {
        cli_error(command, "--%s: %s is too small (must be >= %lld)", flag, text, (long long)min);
        return false;
    }
    if (errno == ERANGE || v > max) {
        cli_error(command, "--%s: %s is too large (must be <= %lld)", flag, text, (long long)max);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_kv_lens(const char *command, const char *text, int64_t batch, int32_t **out)
{
    *out = NULL;
    /* Count first: B values must be given, and B itself may be absurdly large. */
    int64_t n = 1;
    for (const char *t = text; *t; t++)
        n += *t == ',';
    if (n != batch) {
        cli_error(command, "--kv-lens: %lld values given for a batch of %lld", (long long)n,
                  (long long)batch);
        return false;
    }
    int32_t *lens = malloc((size_t)n * sizeof *lens);
    if (!lens) {
        cli_error(command, "out of memory");
        return false;
    }
    const char *t = text;
    for (int64_t b = 0; b < n; b++) {
        const size_t len = strcspn(t, ",");
        char item[24];
        snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item ? len : sizeof item - 1), t);
        int64_t x;
        if (len >= sizeof item) {
            cli_error(command, "--kv-lens: '%.*s...' is not an integer", 20, t);
            free(lens);
            return false;
        }
        if (!cli_parse_int64(command, "kv-lens", item, 0, INT32_MAX, &x)) {
            free(lens);
            return false;
        }
        lens[b] = (int32_t)x;
        t += len + (t[len] == ',');
    }
    *out = lens;
    return true;
}

bool cli_parse_uint64(const char *command, const char *flag, const char *text, uint64_t *out)
{
    if (!number_text_ok(command, flag, text))
        return false;
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(text, &end, 10);
    if (*end || text[0] == '-' || errno == ERANGE) {
        cli_error(command, "--%s: '%s' is not an integer in [0, 2^64)", flag, text);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_positive_float(const char *command, const char *flag, const char *text, float *out)
{
    if (!number_text_ok(command, flag, text))
        return false;
    char *end;
    const double v = strtod(text, &end);
    if (*end) {
        cli_error(command, "--%s: '%s' is not a number", flag, text);
        return false;
    }
    const float f = (float)v;
    if (!(isfinite(v) && v > 0 && isfinite(f) && f > 0)) {
        cli_error(command, "--%s: %s must be a positive finite float32 value", flag, text);
        return false;
    }
    *out = f;
    return true;
}

bool cli_parse_int_list(const char *command, const char *flag, const char *text, int64_t min,
                        int64_t max, cli_int_list *out)
{
    out->count = 0;
    for (const char *t = text;;) {
        const size_t len = strcspn(t, ",");
        char item[32];
        if (len >= sizeof item) {
            cli_error(command, "--%s: '%.20s...' is not an integer", flag, t);
            return false;
        }
        if (out->count == CLI_MAX_LIST) {
            cli_error(command, "--%s: more than %d values", flag, CLI_MAX_LIST);
            return false;
        }
        snprintf(item, sizeof item, "%.*s", (int)len, t);
        if (!cli_parse_int64(command, flag, item, min, max, &out->value[out->count]))
            return false;
        for (int i = 0; i < out->count; i++)
            if (out->value[i] == out->value[out->count]) {
                cli_error(command, "--%s: %s is given twice", flag, item);
                return false;
            }
        out->count++;
        t += len;
        if (!*t)
            return true;
        t++;
    }
}

void cli_int_list_format(const cli_int_list *list, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < list->count && used < len; i++) {
        const int n = snprintf(buf + used, len - used, "%s%lld", i ? "," : "",
                               (long long)list->value[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

bool cli_resolve_threads(const char *command, cli_int_list *threads)
{
    if (threads->count == 0)
        threads->value[threads->count++] = 0;
    for (int i = 0; i < threads->count; i++) {
        if (threads->value[i] == 0)
            threads->value[i] = attn_default_threads();
        for (int j = 0; j < i; j++)
            if (threads->value[j] == threads->value[i]) {
                cli_error(command, "--threads: %lld is given twice (0 is the default, %d)",
                          (long long)threads->value[i], attn_default_threads());
                return false;
            }
    }
    return true;
}

bool cli_parse_format(const char *command, const char *text, unsigned allowed, cli_format *out)
{
    static const char *const names[] = {"text", "json", "csv"};
    for (int f = 0; f < 3; f++)
        if ((allowed & 1u << f) && !strcmp(text, names[f])) {
            *out = (cli_format)f;
            return true;
        }
    char known[32] = "";
    for (int f = 0; f < 3; f++)
        if (allowed & 1u << f)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                     known[0] ? ", " : "", names[f]);
    cli_error(command, "--format: '%s' is not one of %s", text, known);
    return false;
}

static json_t *isa_list_json(uint32_t mask)
{
    json_t *list = json_array();
    for (int i = 0; list && i < attn_isa_name_count; i++)
        if ((mask & attn_isa_names[i].bit) &&
            json_array_append_new(list, json_string(attn_isa_names[i].name))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

json_t *cli_machine_json(void)
{
    const attn_cpu *cpu = attn_cpu_get();
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:o, s:o, s:I, s:I, s:I, s:I}",
                     "id", attn_machine_id(), "vendor", cpu->vendor,
                     "model_name", cpu->model_name, "family", cpu->family,
                     "model", cpu->model, "stepping", cpu->stepping,
                     "isa", isa_list_json(cpu->isa),
                     "isa_detected", isa_list_json(cpu->isa_detected),
                     "l1d_bytes", (json_int_t)cpu->machine.l1d_bytes,
                     "l2_bytes", (json_int_t)cpu->machine.l2_bytes,
                     "l3_bytes", (json_int_t)cpu->machine.l3_bytes,
                     "cpus_online", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN));
}

json_t *cli_json_real(double x) { return isfinite(x) ? json_real(x) : json_null(); }

bool cli_json_print(const json_t *root)
{
    if (!root || json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) != 0)
        return false;
    return fputc('\n', stdout) != EOF;
}

void cli_table_init(cli_table *t, int columns, const char *align)
{
    *t = (cli_table){.columns = columns, .align = align};
}

void cli_table_add(cli_table *t, const char *fmt, ...)
{
    if (t->out_of_memory)
        return;
    if (t->count == t->capacity) {
        const size_t capacity = t->capacity ? 2 * t->capacity : 64;
        char **cells = realloc(t->cells, capacity * sizeof *cells);
        if (!cells) {
            t->out_of_memory = true;
            return;
        }
        t->cells = cells;
        t->capacity = capacity;
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&t->cells[t->count], fmt, ap) < 0)
        t->out_of_memory = true;
    else
        t->count++;
    va_end(ap);
}

bool cli_table_wide = false;

/* How much of `text` (at most `width` characters) goes on one line of a wrapped cell: up to
 * the last blank, comma or slash that fits, else `width` characters (a long word is cut). */
static size_t wrap_length(const char *text, size_t width)
{
    const size_t n = strlen(text);
    if (n <= width)
        return n;
    for (size_t i = width; i > width / 2; i--)
        if (strchr(" ,/", text[i - 1]))
            return i;
    return width;
}

/* The longest piece of text that wrap_length never breaks. */
static size_t longest_token(const char *text)
{
    size_t longest = 0;
    while (*text) {
        const size_t n = strcspn(text, " ,/") + (text[strcspn(text, " ,/")] != '\0');
        longest = n > longest ? n : longest;
        text += n ? n : 1;
    }
    return longest;
}

/* The columns' widths: each its longest cell; when the table is wider than CLI_TABLE_WIDTH and
 * not cli_table_wide, left-aligned columns give up width (their cells wrap onto more lines),
 * never below their longest unbreakable piece: the last column (a description, a note) first,
 * down to 30; then the widest of the others but the first; the first (the row's name) last. */
static void table_widths(const cli_table *t, size_t *width, size_t *floor)
{
    for (size_t i = 0; i < t->count; i++) {
        const size_t c = i % (size_t)t->columns, n = strlen(t->cells[i]);
        const size_t token = longest_token(t->cells[i]);
        if (n > width[c])
            width[c] = n;
        if (token > floor[c])
            floor[c] = token;
    }
    size_t total = 2 * (size_t)(t->columns - 1);
    for (int c = 0; c < t->columns; c++)
        total += width[c];
    const int last = t->columns - 1;
    while (!cli_table_wide && total > CLI_TABLE_WIDTH) {
        const bool last_first =
            last > 0 && t->align[last] == 'l' && width[last] > 30 && width[last] > floor[last];
        int pick = last_first ? last : -1;
        for (int c = 1; !last_first && c < t->columns; c++)
            if (t->align[c] == 'l' && width[c] > floor[c] && (pick < 0 || width[c] > width[pick]))
                pick = c;
        if (pick < 0 && t->align[0] == 'l' && width[0] > floor[0])
            pick = 0;
        if (pick < 0)
            return; /* nothing left to wrap: print it as wide as it is */
        width[pick]--;
        total--;
    }
}

bool cli_table_print(const cli_table *t, FILE *out)
{
    if (t->out_of_memory)
        return false;
    size_t *width = calloc(2 * (size_t)t->columns, sizeof *width), *floor = width + t->columns;
    const char **rest = calloc((size_t)t->columns, sizeof *rest); /* what a row has left */
    if (!width || !rest) {
        free(width);
        free(rest);
        return false;
    }
    table_widths(t, width, floor);
    for (size_t row = 0; row * (size_t)t->columns < t->count; row++) {
        const size_t first = row * (size_t)t->columns;
        int last = t->columns - 1;
        while (first + (size_t)last >= t->count)
            last--;
        for (int c = 0; c <= last; c++)
            rest[c] = t->cells[first + (size_t)c];
        /* One line of each cell at a time, until every cell of the row is printed. */
        for (bool more = true; more;) {
            more = false;
            int end = last; /* no trailing blanks: stop after the last cell with text */
            while (end > 0 && !rest[end][0])
                end--;
            for (int c = 0; c <= end; c++) {
                const size_t n = wrap_length(rest[c], width[c]);
                size_t shown = n; /* without the blank the line broke at */
                while (shown > 0 && rest[c][shown - 1] == ' ')
                    shown--;
                const bool right = t->align[c] == 'r';
                const int pad = (int)(width[c] - shown);
                if (right)
                    fprintf(out, "%*s", pad, "");
                fprintf(out, "%.*s", (int)shown, rest[c]);
                if (!right && c < end)
                    fprintf(out, "%*s", pad, "");
                fputs(c < end ? "  " : "\n", out);
                rest[c] += n;
                while (*rest[c] == ' ')
                    rest[c]++;
                more |= *rest[c] != '\0';
            }
        }
    }
    free(width);
    free(rest);
    return true;
}

void cli_table_free(cli_table *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->cells[i]);
    free(t->cells);
    *t = (cli_table){0};
}

/* ---- element types ------------------------------------------------------------------------ */

void cli_dtypes_format(unsigned dtypes, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int t = 0; t < ATTN_DTYPE_COUNT && used < len; t++)
        if (dtypes & 1u << t)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "",
                                     attn_dtype_name((attn_dtype)t));
}

json_t *cli_dtypes_json(unsigned dtypes)
{
    json_t *list = json_array();
    for (int t = 0; list && t < ATTN_DTYPE_COUNT; t++)
        if ((dtypes & 1u << t) &&
            json_array_append_new(list, json_string(attn_dtype_name((attn_dtype)t)))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

const char *cli_variant_skip_reason(const attn_variant_info *info, attn_dtype dtype, char *buf,
                                    size_t len)
{
    if (!info->supported)
        return info->why_not;
    if (info->dtypes & 1u << dtype)
        return NULL;
    char types[32];
    cli_dtypes_format(info->dtypes, types, sizeof types);
    snprintf(buf, len, "reads %s inputs, not %s", types, attn_dtype_name(dtype));
    return buf;
}

bool cli_parse_dtype(const char *command, const char *text, attn_dtype *out)
{
    if (attn_dtype_parse(text, out))
        return true;
    cli_error(command, "--dtype: '%s' is not f32, bf16 or f16", text);
    return false;
}

bool cli_parse_out_dtype(const char *command, const char *text, bool *same)
{
    *same = !strcmp(text, "same");
    if (*same || !strcmp(text, "f32"))
        return true;
    cli_error(command, "--out-dtype: '%s' is not f32 or same", text);
    return false;
}

const attn_named_shape *cli_parse_shape(const char *command, const char *name)
{
    const attn_named_shape *s = attn_named_shape_find(name);
    if (s)
        return s;
    char known[512] = "";
    for (int i = 0; i < attn_named_shape_count; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 attn_named_shapes[i].name);
    cli_error(command, "--shape: unknown shape '%s' (known: %s; attnbench list --shapes)", name,
              known);
    return NULL;
}

void cli_shape_fill(const attn_named_shape *s, int64_t *batch, int64_t *heads_q,
                    int64_t *heads_kv, int64_t *len_q, int64_t *len_kv, int64_t *head_dim,
                    bool *causal)
{
    if (!s)
        return;
    const int64_t from_shape[6] = {s->batch, s->heads_q, s->heads_kv, s->len_q, s->len_kv,
                                   s->head_dim};
    int64_t *const sizes[6] = {batch, heads_q, heads_kv, len_q, len_kv, head_dim};
    for (int i = 0; i < 6; i++)
        if (!*sizes[i])
            *sizes[i] = from_shape[i];
    *causal = *causal || s->causal;
}

/* ---- attnbench list ----------------------------------------------------------------------- */

enum { LIST_SHAPES, LIST_FORMAT, LIST_HELP, LIST_OPTION_COUNT };
static const cli_option list_options[LIST_OPTION_COUNT] = {
    [LIST_SHAPES] = {"shapes", NULL, "the named shapes (run|tune|plan --shape NAME) instead"},
    [LIST_FORMAT] = {"format", "text|json", "output format (default text)"},
    [LIST_HELP] = {"help", NULL, "this help"},
};

/* "bq=16..512/16": the range and, when not 1, the multiple. */
static void format_param_ranges(const attn_variant_info *v, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < v->param_count && used < len; i++) {
        const attn_param_info *p = &v->params[i];
        int w = snprintf(buf + used, len - used, "%s%s=%d..%d", i ? " " : "", p->name, p->min,
                         p->max);
        if (w > 0 && p->multiple_of > 1 && (size_t)w < len - used)
            w += snprintf(buf + used + w, len - used - (size_t)w, "/%d", p->multiple_of);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static json_t *variant_json(const attn_variant_info *v)
{
    json_t *params = json_array();
    for (int i = 0; params && i < v->param_count; i++) {
        const attn_param_info *p = &v->params[i];
        if (json_array_append_new(params, json_pack("{s:s, s:s, s:i, s:i, s:i}", "name", p->name,
                                                    "description", p->description, "min", p->min,
                                                    "max", p->max, "multiple_of",
                                                    p->multiple_of))) {
            json_decref(params);
            params = NULL;
        }
    }
    return json_pack("{s:s, s:s, s:s, s:b, s:o, s:f, s:o, s:s, s:o, s:b}", "name", v->name,
                     "description", v->description, "isa", v->isa, "supported", v->supported,
                     "why_not", v->supported ? json_null() : json_string(v->why_not),
                     "tolerance", v->tolerance, "dtypes", cli_dtypes_json(v->dtypes),
                     "compute_dtype", attn_dtype_name(v->compute_dtype), "params", params,
                     "reference_only", v->reference_only);
}

/* list --shapes: the table of shapes.c. */
static int list_shapes(cli_format format)
{
    if (format == CLI_FORMAT_JSON) {
        json_t *shapes = json_array();
        for (int i = 0; shapes && i < attn_named_shape_count; i++) {
            const attn_named_shape *s = &attn_named_shapes[i];
            if (json_array_append_new(
                    shapes, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s}",
                                      "name", s->name, "set", s->set, "kind", s->kind, "batch",
                                      (json_int_t)s->batch, "heads_q", (json_int_t)s->heads_q,
                                      "heads_kv", (json_int_t)s->heads_kv, "len_q",
                                      (json_int_t)s->len_q, "len_kv", (json_int_t)s->len_kv,
                                      "head_dim", (json_int_t)s->head_dim, "causal", s->causal,
                                      "what", s->what))) {
                json_decref(shapes);
                shapes = NULL;
            }
        }
        json_t *root = json_pack("{s:s, s:o}", "tool", "attnbench " ATTN_VERSION_STRING, "shapes",
                                 shapes);
        const bool ok = cli_json_print(root);
        json_decref(root);
        return ok ? CLI_EXIT_OK : cli_error("list", "out of memory or output error");
    }
    cli_table table;
    cli_table_init(&table, 5, "lllll");
    cli_table_add(&table, "shape");
    cli_table_add(&table, "set");
    cli_table_add(&table, "kind");
    cli_table_add(&table, "sizes");
    cli_table_add(&table, "what");
    for (int i = 0; i < attn_named_shape_count; i++) {
        const attn_named_shape *s = &attn_named_shapes[i];
        char sizes[160];
        attn_named_shape_format(s, sizes, sizeof sizes);
        cli_table_add(&table, "%s", s->name);
        cli_table_add(&table, "%s", s->set);
        cli_table_add(&table, "%s", s->kind);
        cli_table_add(&table, "%s", sizes);
        cli_table_add(&table, "%s", s->what);
    }
    const bool ok = cli_table_print(&table, stdout);
    cli_table_free(&table);
    return ok ? CLI_EXIT_OK : cli_error("list", "out of memory");
}

int cli_list(int argc, char **argv)
{
    cli_format format = CLI_FORMAT_TEXT;
    bool shapes = false;
    const char *value;
    for (int o; (o = cli_next_option("list", argc, argv, list_options, LIST_OPTION_COUNT,
                                     &value)) != CLI_OPTION_END;) {
        switch (o) {
        case LIST_SHAPES: shapes = true; break;
        case LIST_FORMAT:
            if (!cli_parse_format("list", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &format))
                return CLI_EXIT_USAGE;
            break;
        case LIST_HELP:
            printf("usage: attnbench list [options]\n\nEvery variant of this build, best first: "
                   "the ISA it needs, whether this CPU\ncan run it (and why not), the input "
                   "types it reads and the type it computes in\n(bf16: it rounds Q, K, V and the "
                   "softmax weights to bfloat16 inside, f32: it\nworks on them as read), its "
                   "tunable parameters and its declared tolerance (max\nnormwise relative error "
                   "against the float64 oracle run on what it computes from).\nWith --shapes: "
                   "the named shapes instead (harness/shapes.c): the reference\nshapes P1, P2, "
                   "P3, D1 of scripts/bench-kernels and tuner-check, and\nattnbench-gbench's "
                   "sets; run, tune and plan take one as --shape NAME.\n\noptions:\n");
            cli_print_options(stdout, list_options, LIST_OPTION_COUNT);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (shapes)
        return list_shapes(format);

    const int count = attn_variant_count();
    if (format == CLI_FORMAT_JSON) {
        json_t *variants = json_array();
        for (int i = 0; variants && i < count; i++) {
            attn_variant_info v;
            if (attn_variant_get(i, &v) && json_array_append_new(variants, variant_json(&v))) {
                json_decref(variants);
                variants = NULL;
            }
        }
        json_t *absent_list = json_array();
        const char *absent, *why;
        for (int i = 0; absent_list && attn_variant_absent(i, &absent, &why); i++)
            if (json_array_append_new(absent_list,
                                      json_pack("{s:s, s:s}", "name", absent, "why", why))) {
                json_decref(absent_list);
                absent_list = NULL;
            }
        json_t *root = json_pack("{s:s, s:o, s:o, s:o}", "tool", "attnbench " ATTN_VERSION_STRING,
                                 "machine", cli_machine_json(), "variants", variants,
                                 "not_built", absent_list);
        const bool ok = cli_json_print(root);
        json_decref(root);
        return ok ? CLI_EXIT_OK : cli_error("list", "out of memory or output error");
    }

    /* Narrow by default: the ISA list and the parameter ranges with --wide (or --format json);
     * the description wraps. */
    const bool wide = cli_table_wide;
    cli_table table;
    cli_table_init(&table, wide ? 7 : 5, wide ? "llllrll" : "lllrl");
    cli_table_add(&table, "variant");
    if (wide)
        cli_table_add(&table, "isa");
    cli_table_add(&table, "supported here");
    cli_table_add(&table, "reads (computes)");
    cli_table_add(&table, "tolerance");
    if (wide)
        cli_table_add(&table, "parameters (name=min..max/multiple)");
    cli_table_add(&table, "description");
    for (int i = 0; i < count; i++) {
        attn_variant_info v;
        if (!attn_variant_get(i, &v))
            continue;
        char ranges[256], types[32];
        format_param_ranges(&v, ranges, sizeof ranges);
        cli_dtypes_format(v.dtypes, types, sizeof types);
        cli_table_add(&table, "%s", v.name);
        if (wide && attn_registry[i]->vector_bits == 0 && v.vector_bits > 0) /* scalable */
            cli_table_add(&table, "%s (%d-bit)", v.isa, v.vector_bits);
        else if (wide)
            cli_table_add(&table, "%s", v.isa[0] ? v.isa : "portable C");
        if (v.supported)
            cli_table_add(&table, "yes");
        else
            cli_table_add(&table, "no: %s", v.why_not);
        cli_table_add(&table, "%s (%s)", types, attn_dtype_name(v.compute_dtype));
        cli_table_add(&table, "%g", v.tolerance);
        if (wide)
            cli_table_add(&table, "%s", ranges[0] ? ranges : "-");
        cli_table_add(&table, "%s", v.description);
    }
    const char *absent, *why;
    for (int i = 0; attn_variant_absent(i, &absent, &why); i++) {
        cli_table_add(&table, "%s", absent);
        if (wide)
            cli_table_add(&table, "-");
        cli_table_add(&table, "no: %s", why);
        for (int k = 0; k < (wide ? 4 : 3); k++)
            cli_table_add(&table, "-");
    }
    const bool ok = cli_table_print(&table, stdout);
    cli_table_free(&table);
    return ok ? CLI_EXIT_OK : cli_error("list", "out of memory");
}

/* ---- attnbench run ------------------------------------------------------------------------ */

enum {
    /* the shape flags first (cli_shape_flags.c), then run's own */
    RUN_VARIANT = CLI_SHAPE_OPTION_COUNT, RUN_KV_LENS, RUN_MASK, RUN_LAYOUT, RUN_DTYPE,
    RUN_OUT_DTYPE, RUN_PARAMS, RUN_SEED, RUN_REPS, RUN_WARMUP, RUN_THREADS, RUN_NO_CHECK, RUN_Q,
    RUN_K, RUN_V, RUN_OUT_NPY, RUN_OUTPUT, RUN_FORMAT, RUN_DISABLE_ISA, RUN_SAVE, RUN_RESULTS_DIR,
    RUN_QUIET, RUN_MIN_TIME, RUN_HELP, RUN_OPTION_COUNT
};

/* Defaults of the shape and the measurement. */
enum { DEFAULT_BATCH = 1, DEFAULT_HEADS = 8, DEFAULT_LEN = 1024, DEFAULT_DIM = 64 };
enum { DEFAULT_REPS = 10, DEFAULT_WARMUP = 2, MAX_REPS = 1000000 };

static const cli_option run_options[RUN_OPTION_COUNT] = {
    CLI_SHAPE_OPTION_ROWS("N", "1024", "64"),
    [RUN_VARIANT] = {"variant", "LIST", "comma list of variants, or all (default: all)"},
    [RUN_KV_LENS] = {"kv-lens", "N,N,...", "key length of each batch entry (B values, each <= Lk)"},
    [RUN_MASK] = {"mask", "FILE.npy", "additive float32 mask [Lq,Lk] (-inf masks a key)"},
    [RUN_LAYOUT] = {"layout", "bhld|blhd", "memory layout of Q, K, V, O (default bhld)"},
    [RUN_DTYPE] = {"dtype", "f32|bf16|f16", "element type of Q, K, V (default f32)"},
    [RUN_OUT_DTYPE] = {"out-dtype", "f32|same", "element type of O: f32, or --dtype (default f32)"},
    [RUN_PARAMS] = {"params", "NAME:K=V,...", "parameters of variant NAME (repeatable)"},
    [RUN_SEED] = {"seed", "N", "seed of the random inputs (default 1)"},
    [RUN_REPS] = {"reps", "N", "timed runs per variant, 1..1000000 (default 10)"},
    [RUN_WARMUP] = {"warmup", "N", "untimed runs per variant before them (default 2)"},
    [RUN_THREADS] = {"threads", "N,N,...",
                     "thread counts (default 0: every core of the first NUMA node)"},
    [RUN_NO_CHECK] = {"no-check", NULL, "skip the float64 oracle (error fields become null)"},
    [RUN_Q] = {"q", "FILE.npy", "read Q [B,Hq,Lq,d] (float32 or float16) instead of random"},
    [RUN_K] = {"k", "FILE.npy", "read K [B,Hkv,Lk,d]"},
    [RUN_V] = {"v", "FILE.npy", "read V [B,Hkv,Lk,d]"},
    [RUN_OUT_NPY] = {"out-npy", "FILE.npy", "write O [B,Hq,Lq,d] of the first variant run"},
    [RUN_OUTPUT] = {"output", "FILE", "also write the JSON result document to FILE, also -o"},
    [RUN_FORMAT] = {"format", "text|json|csv", "output format (default text)"},
    [RUN_DISABLE_ISA] = {"disable-isa", "LIST", "turn ISAs off, as ATTN_DISABLE_ISA=LIST does"},
    [RUN_SAVE] = {"save", NULL, "also store the JSON result under DIR/<machine id>/"},
    [RUN_RESULTS_DIR] = {"results-dir", "DIR", "where --save stores it (default results)"},
    [RUN_QUIET] = {"quiet", NULL, "no progress and no warnings on stderr"},
    [RUN_MIN_TIME] = {"min-time", "S", "timed rounds go on past --reps until S seconds"},
    [RUN_HELP] = {"help", NULL, "this help"},
};

static void print_run_help(void)
{
    printf("usage: attnbench run [options]\n\n"
           "Runs each chosen variant on one attention problem: one untimed run checked against\n"
           "the float64 oracle, then --warmup untimed and --reps timed runs (CLOCK_MONOTONIC,\n"
           "the runs of the variants interleaved); reports median, min and max time,\n"
           "GFLOP/s (4*B*Hq*d per attended query-key pair) and the error against the oracle.\n"
           "--threads 1,2,...: every variant runs at every count, all in the same interleaved\n"
           "rounds, and each later count gets its speed-up over the first: the geometric mean\n"
           "of the rounds' time ratios with a 95%% interval (a drift of a shared machine slows\n"
           "both runs of a round alike, so it cancels in their ratio).\n"
           "\noptions:\n");
    cli_print_options(stdout, run_options, RUN_OPTION_COUNT);
    printf("\nInputs are uniform in [-1, 1) from a SplitMix64 generator seeded by --seed, drawn\n"
           "in [B,H,L,d] order whatever the layout, so runs are reproducible and layouts agree.\n"
           ".npy files: little-endian float32 ('<f4') or float16 ('<f2'), C order, versions\n"
           "1.0, 2.0, 3.0; Q, K, V and O are 4-d [B,H,L,d] whatever --layout says. A size not\n"
           "given as a flag is taken from the files (B, Hq, Lq, d from --q; Hkv, Lk from --k or\n"
           "--v); sizes given both ways must agree. --out writes the output of the first\n"
           "variant run (the first of --variant's list, or the best-ranked supported one),\n"
           "atomically: float32, or float16 with --dtype f16 --out-dtype same (a bf16 output is\n"
           "written widened to float32: numpy has no bfloat16).\n"
           "--dtype bf16|f16: the inputs (random, or from the files, a float16 file widened\n"
           "exactly) are rounded to that type, to nearest even, and the variants read them so:\n"
           "a float16 file keeps its values with --dtype f16, a float32 file given with --dtype\n"
           "f16 or bf16 is rounded (numpy has no bfloat16: bf16 inputs come from float32 files).\n"
           "max_rel_err is against the float64 oracle run on the rounded inputs (rounded further\n"
           "to bf16 for a variant that computes in bf16: what the variant computes from);\n"
           "max_rel_err_f32 against the oracle on the float32 data before any rounding (what\n"
           "the rounding costs; the same figure when nothing is rounded).\n"
           "--variant all (the default) runs every variant this CPU supports that reads --dtype;\n"
           "the others are skipped with the reason (stderr; `skipped` in JSON). Without --variant,\n"
           "ATTN_FORCE_VARIANT=NAME runs that one only. Naming a variant this CPU cannot run, or\n"
           "one that does not read --dtype, is an error (ATTN_DISABLE_ISA=avx512,... turns ISAs\n"
           "off as if the CPU lacked them; `attnbench list` shows the types each variant reads).\n"
           "--params NAME:K=V,... must name a variant being run; its values apply over the\n"
           "variant's defaults for the shape.\n"
           "--save stores the JSON document, with commit, date and build, as\n"
           "DIR/<machine id>/run-<UTC date>.json (results/README.md), whatever --format says.\n"
           "\nexit status: 0 every variant ok, 1 some variant beyond its tolerance, 2 bad input\n"
           "or an error (message on stderr).\n");
}

typedef struct run_config {
    const char *variants; /* NULL: every supported one */
    int64_t batch, heads_q, heads_kv, len_q, len_kv, head_dim; /* 0: not given (shape flags) */
    float scale;                                                 /* 0: default */
    bool causal, blhd, check;
    attn_dtype dtype; /* of Q, K, V */
    bool out_same;    /* O has dtype too (else float32) */
    uint64_t seed;
    int64_t reps, warmup;
    cli_int_list threads; /* resolved: no 0 */
    const char *kv_lens, *mask, *q, *k, *v, *out;
    const char *output; /* -o: the JSON document, also written there */
    bool save, quiet;
    double min_time; /* --min-time: 0, or seconds of timed rounds at least */
    const char *results_dir;
    const char **params; /* the --params texts, in order */
    int params_count;
    cli_format format;
} run_config;

static int parse_run_options(int argc, char **argv, run_config *c)
{
    *c = (run_config){.check = true, .seed = 1, .reps = DEFAULT_REPS, .warmup = DEFAULT_WARMUP,
                      .threads = {{0}, 1}, .results_dir = "results"};
    c->params = malloc((size_t)argc * sizeof *c->params);
    if (!c->params)
        return cli_error("run", "out of memory");
    /* -o is --output: the option parser knows long options (and -h) only. */
    static char output_flag[] = "--output";
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-o"))
            argv[i] = output_flag;
    cli_shape_flags shape;
    cli_shape_flags_init(&shape);
    const char *value;
    for (int o; (o = cli_next_option("run", argc, argv, run_options, RUN_OPTION_COUNT, &value)) !=
                CLI_OPTION_END;) {
        const char *flag = o >= 0 ? run_options[o].name : "";
        bool ok = true;
        const int shape_flag = o >= 0 ? cli_shape_option("run", o, value, false, &shape) : 0;
        if (shape_flag)
            ok = shape_flag > 0;
        else switch (o) {
        case RUN_VARIANT: c->variants = value; break;
        case RUN_KV_LENS: c->kv_lens = value; break;
        case RUN_MASK: c->mask = value; break;
        case RUN_LAYOUT:
            ok = !strcmp(value, "bhld") || !strcmp(value, "blhd");
            if (!ok)
                cli_error("run", "--layout: '%s' is not bhld or blhd", value);
            c->blhd = ok && !strcmp(value, "blhd");
            break;
        case RUN_DTYPE: ok = cli_parse_dtype("run", value, &c->dtype); break;
        case RUN_OUT_DTYPE: ok = cli_parse_out_dtype("run", value, &c->out_same); break;
        case RUN_PARAMS: c->params[c->params_count++] = value; break;
        case RUN_SEED: ok = cli_parse_uint64("run", flag, value, &c->seed); break;
        case RUN_REPS: ok = cli_parse_int64("run", flag, value, 1, MAX_REPS, &c->reps); break;
        case RUN_WARMUP: ok = cli_parse_int64("run", flag, value, 0, MAX_REPS, &c->warmup); break;
        case RUN_THREADS:
            ok = cli_parse_int_list("run", flag, value, 0, ATTN_MAX_THREADS, &c->threads);
            break;
        case RUN_NO_CHECK: c->check = false; break;
        case RUN_Q: c->q = value; break;
        case RUN_K: c->k = value; break;
        case RUN_V: c->v = value; break;
        case RUN_OUT_NPY:
        case RUN_OUTPUT: { /* checked now, not after the measurements */
            attn_error err;
            *(o == RUN_OUT_NPY ? &c->out : &c->output) = value;
            ok = attn_file_check(value, &err) == ATTN_OK;
            if (!ok)
                cli_error("run", "--%s %s", flag, err.message);
            break;
        }
        case RUN_QUIET: c->quiet = true; break;
        case RUN_MIN_TIME: {
            float seconds;
            ok = cli_parse_positive_float("run", flag, value, &seconds);
            c->min_time = seconds;
            break;
        }
        case RUN_FORMAT:
            ok = cli_parse_format("run", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON |
                                  1u << CLI_FORMAT_CSV, &c->format);
            break;
        case RUN_DISABLE_ISA: ok = cli_set_disable_isa("run", value); break;
        case RUN_SAVE: c->save = true; break;
        case RUN_RESULTS_DIR: c->results_dir = value; break;
        case RUN_HELP: print_run_help(); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
        if (!ok)
            return CLI_EXIT_USAGE;
    }
    if (!cli_resolve_threads("run", &c->threads))
        return CLI_EXIT_USAGE;
    cli_shape_sizes z;
    cli_shape_flags_sizes(&shape, &z);
    c->batch = z.batch, c->heads_q = z.heads_q, c->heads_kv = z.heads_kv;
    c->len_q = z.len_q, c->len_kv = z.len_kv, c->head_dim = z.head_dim;
    c->causal = z.causal, c->scale = z.scale;
    return -1; /* go on */
}

/* ---- inputs -------------------------------------------------------------------------------- */

/* The logical shape [B, H, L, d] and strides of tensor 'q', 'k', 'v' or 'o'. */
typedef struct tensor_view {
    int64_t dims[4];
    const attn_strides *strides;
} tensor_view;

static tensor_view view_of(const attn_problem *p, char tensor)
{
    const bool is_q = tensor == 'q' || tensor == 'o';
    const attn_strides *s = tensor == 'q' ? &p->q : tensor == 'k' ? &p->k
                          : tensor == 'v' ? &p->v : &p->o;
    return (tensor_view){{p->batch, is_q ? p->heads_q : p->heads_kv, is_q ? p->len_q : p->len_kv,
                          p->head_dim}, s};
}

/* Fills a strided tensor row by row in logical order: from `src` (contiguous [B,H,L,d]) when
 * given, else from the generator. */
static void fill_tensor(float *dst, tensor_view t, const float *src, uint64_t *rng)
{
    const int64_t d = t.dims[3];
    for (int64_t b = 0; b < t.dims[0]; b++)
        for (int64_t h = 0; h < t.dims[1]; h++)
            for (int64_t l = 0; l < t.dims[2]; l++) {
                float *row = dst + b * t.strides->batch + h * t.strides->head + l * t.strides->seq;
                if (src) {
                    memcpy(row, src, (size_t)d * sizeof *row);
                    src += d;
                } else {
                    for (int64_t c = 0; c < d; c++)
                        row[c] = attn_rng_uniform_pm1(rng);
                }
            }
}

/* Copies a strided tensor of `from` elements into contiguous [B,H,L,d] of `to` elements. */
static void gather_tensor(void *dst, attn_dtype to, tensor_view t, const void *src,
                          attn_dtype from)
{
    const int64_t d = t.dims[3];
    const size_t in = attn_dtype_size(from), out = attn_dtype_size(to);
    char *row = dst;
    for (int64_t b = 0; b < t.dims[0]; b++)
        for (int64_t h = 0; h < t.dims[1]; h++)
            for (int64_t l = 0; l < t.dims[2]; l++, row += (size_t)d * out)
                attn_convert((const char *)src + (size_t)(b * t.strides->batch +
                                                          h * t.strides->head +
                                                          l * t.strides->seq) * in,
                             from, row, to, (size_t)d);
}

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, ")");
}

/* Everything run owns; released by run_free.
 *
 * The inputs: data[t] holds the float32 values (random or from a file) in the problem's layout;
 * input[t] what the variants read, those values in problem.dtype (data[t] itself for f32). The
 * oracle runs on float32 copies of what a variant computes from, so data[t] is rounded in place
 * step by step once each reference is computed: ref_f32 from the data as drawn, ref from the
 * dtype's values, ref_bf16 from those rounded to bf16 (for variants computing in bf16; from a
 * rounded copy when data[t] is the variants' float32 input). A reference that would repeat
 * another is that one. */
typedef struct run_state {
    run_config config;
    attn_npy_array file_q, file_k, file_v, file_mask;
    attn_problem problem;
    int32_t *kv_lens;
    float *data[3];
    void *input[3], *o, *out; /* o: the variant's output, in out_dtype */
    float *o_f32;              /* o widened, for the comparison (out_dtype != f32) */
    int64_t extent[4];         /* elements of q, k, v, o */
    double *ref, *ref_f32, *ref_bf16;
    struct variant_run *runs;
    int run_count;
    json_t *skipped; /* [{"variant", "reason"}]: left out of the default set */
    json_t *conditions; /* cli_conditions_start, around the timed rounds */
} run_state;

typedef struct variant_run {
    int index; /* in the registry */
    attn_variant_info info;
    attn_params params;
    double tolerance; /* attn_variant_tolerance: a half output adds its rounding */
    bool chosen;     /* named by --variant or --params, not only part of the default set */
    double *samples; /* reps seconds, in round order */
    attn_time_stats time;
    stats_spread spread;
    /* The run of the same variant at the first thread count (-1: this is it), and this run's
     * speed-up over it: the geometric mean of the rounds' time ratios, with its 95% interval
     * (stats_paired_log; NaN bounds with a single rep). */
    int base;
    double speedup, speedup_lo, speedup_hi;
    attn_error_metrics error;     /* against ref (or ref_bf16): what it computes from */
    attn_error_metrics error_f32; /* against ref_f32: the float32 data before rounding */
} variant_run;

static void run_free(run_state *s)
{
    json_decref(s->conditions);
    attn_npy_free(&s->file_q);
    attn_npy_free(&s->file_k);
    attn_npy_free(&s->file_v);
    attn_npy_free(&s->file_mask);
    free(s->kv_lens);
    for (int t = 0; t < 3; t++) {
        if (s->input[t] != s->data[t])
            free(s->input[t]);
        free(s->data[t]);
    }
    free(s->o);
    free(s->o_f32);
    free(s->out);
    if (s->ref_bf16 != s->ref && s->ref_bf16 != s->ref_f32)
        free(s->ref_bf16);
    if (s->ref != s->ref_f32)
        free(s->ref);
    free(s->ref_f32);
    for (int i = 0; i < s->run_count; i++)
        free(s->runs[i].samples);
    free(s->runs);
    free(s->config.params);
    json_decref(s->skipped);
}

/* Notes a variant left out of the default set: on stderr and in the `skipped` list. */
static int skip_variant(run_state *s, const char *name, const char *reason)
{
    fprintf(stderr, "attnbench run: skipping %s: %s\n", name, reason);
    if (json_array_append_new(s->skipped,
                              json_pack("{s:s, s:s}", "variant", name, "reason", reason)))
        return cli_error("run", "out of memory");
    return -1;
}

static bool read_npy(const char *flag, const char *path, int ndim, attn_npy_array *a)
{
    if (!path)
        return true;
    attn_error err;
    if (attn_npy_read(path, a, &err) != ATTN_OK) {
        cli_error("run", "--%s %s", flag, err.message);
        return false;
    }
    if (a->ndim != ndim) {
        char shape[160];
        format_shape(shape, sizeof shape, a->ndim, a->shape);
        cli_error("run", "--%s %s: expected a %d-d array, got shape %s", flag, path, ndim, shape);
        return false;
    }
    return true;
}

/* A file must have exactly the shape the problem says. */
static bool check_file_shape(const char *flag, const char *path, const attn_npy_array *a,
                             int ndim, const int64_t *want, const char *names)
{
    if (!path || !memcmp(a->shape, want, (size_t)ndim * sizeof *want))
        return true;
    char have[160], need[160];
    format_shape(have, sizeof have, a->ndim, a->shape);
    format_shape(need, sizeof need, ndim, want);
    cli_error("run", "--%s %s: shape %s does not match the problem's %s = %s", flag, path, have,
              names, need);
    return false;
}

/* The first value of a size: the flag, else the first file that has it, else the default. */
static int64_t pick_size(int64_t flag, const attn_npy_array *a, const attn_npy_array *b, int dim,
                         int64_t fallback)
{
    if (flag)
        return flag;
    if (a && a->ndim == 4)
        return a->shape[dim];
    if (b && b->ndim == 4)
        return b->shape[dim];
    return fallback;
}

/* Builds and validates the problem from the flags and files. */
static int build_problem(run_state *s)
{
    const run_config *c = &s->config;
    if (!read_npy("q", c->q, 4, &s->file_q) || !read_npy("k", c->k, 4, &s->file_k) ||
        !read_npy("v", c->v, 4, &s->file_v) || !read_npy("mask", c->mask, 2, &s->file_mask))
        return CLI_EXIT_USAGE;
    const attn_npy_array *fq = c->q ? &s->file_q : NULL, *fk = c->k ? &s->file_k : NULL,
                         *fv = c->v ? &s->file_v : NULL;
    const attn_npy_array *fkv = fk ? fk : fv;
    const int64_t batch = pick_size(c->batch, fq, fkv, 0, DEFAULT_BATCH);
    const int64_t heads_q = pick_size(c->heads_q, fq, NULL, 1, DEFAULT_HEADS);
    const int64_t heads_kv = pick_size(c->heads_kv, fkv, NULL, 1, heads_q);
    const int64_t len_q = pick_size(c->len_q, fq, NULL, 2, c->len_kv ? c->len_kv : DEFAULT_LEN);
    const int64_t len_kv = pick_size(c->len_kv, fkv, NULL, 2, len_q);
    const int64_t head_dim = pick_size(c->head_dim, fq, fkv, 3, DEFAULT_DIM);
    attn_problem *p = &s->problem;
    attn_problem_init(p, batch, heads_q, heads_kv, len_q, len_kv, head_dim);
    p->scale = c->scale;
    p->causal = c->causal;
    p->dtype = c->dtype;
    p->out_dtype = c->out_same ? c->dtype : ATTN_F32;
    if (c->blhd)
        attn_problem_set_layout_blhd(p);

    const int64_t shape_q[4] = {batch, heads_q, len_q, head_dim},
                  shape_kv[4] = {batch, heads_kv, len_kv, head_dim},
                  shape_mask[2] = {len_q, len_kv};
    if (!check_file_shape("q", c->q, &s->file_q, 4, shape_q, "[B,Hq,Lq,d]") ||
        !check_file_shape("k", c->k, &s->file_k, 4, shape_kv, "[B,Hkv,Lk,d]") ||
        !check_file_shape("v", c->v, &s->file_v, 4, shape_kv, "[B,Hkv,Lk,d]") ||
        !check_file_shape("mask", c->mask, &s->file_mask, 2, shape_mask, "[Lq,Lk]"))
        return CLI_EXIT_USAGE;
    p->mask = s->file_mask.data;

    if (c->kv_lens) {
        if (!cli_parse_kv_lens("run", c->kv_lens, batch, &s->kv_lens))
            return CLI_EXIT_USAGE;
        p->kv_lens = s->kv_lens;
    }

    attn_error err;
    if (attn_problem_validate(p, &err) != ATTN_OK)
        return cli_error("run", "invalid problem: %s", err.message);
    return -1;
}

/* The registry index of the variant named by text[0..len), or -1. */
static int variant_index(const char *text, size_t len)
{
    char name[64];
    if (len >= sizeof name)
        return -1;
    memcpy(name, text, len);
    name[len] = '\0';
    return attn_variant_find(name);
}

static int unknown_variant(const char *flag, const char *text, size_t len)
{
    const char *absent, *why;
    for (int i = 0; attn_variant_absent(i, &absent, &why); i++)
        if (strlen(absent) == len && !strncmp(absent, text, len))
            return cli_error("run", "--%s: variant %s is %s", flag, absent, why);
    char known[512] = "";
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        if (attn_variant_get(i, &info))
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s, ", info.name);
    }
    return cli_error("run", "--%s: unknown variant '%.*s' (known: %sall)", flag, (int)len, text,
                     known);
}

/* Chooses the variants and their parameters. */
static int choose_variants(run_state *s)
{
    const run_config *c = &s->config;
    const int count = attn_variant_count();
    s->runs = calloc((size_t)count, sizeof *s->runs);
    s->skipped = json_array();
    if (!s->runs || !s->skipped)
        return cli_error("run", "out of memory");
    attn_variant_info info;
    const char *forced = NULL, *why;
    char reason[96];
    attn_error err;
    int status = -1;
    if (!c->variants && attn_forced_variant(&forced, &err) != ATTN_OK)
        return cli_error("run", "%s", err.message);
    if (forced) {
        const int i = attn_variant_find(forced);
        attn_variant_get(i, &info);
        if ((why = cli_variant_skip_reason(&info, c->dtype, reason, sizeof reason)))
            return cli_error("run", "ATTN_FORCE_VARIANT=%s: %s", forced, why);
        s->runs[s->run_count++] = (variant_run){.index = i, .chosen = true};
    } else if (!c->variants || !strcmp(c->variants, "all")) {
        for (int i = 0; i < count && status < 0; i++) {
            if (!attn_variant_get(i, &info))
                continue;
            if ((why = cli_variant_skip_reason(&info, c->dtype, reason, sizeof reason)))
                status = skip_variant(s, info.name, why);
            else
                s->runs[s->run_count++].index = i;
        }
        if (status >= 0)
            return status;
    } else {
        for (const char *t = c->variants;; t++) {
            const size_t len = strcspn(t, ",");
            const int i = variant_index(t, len);
            if (i < 0)
                return unknown_variant("variant", t, len);
            attn_variant_get(i, &info);
            if (!info.supported)
                return cli_error("run", "--variant: %s cannot run on this CPU: %s", info.name,
                                 info.why_not);
            if ((why = cli_variant_skip_reason(&info, c->dtype, reason, sizeof reason)))
                return cli_error("run", "--variant: %s %s", info.name, why);
            for (int r = 0; r < s->run_count; r++)
                if (s->runs[r].index == i)
                    return cli_error("run", "--variant: %s is named twice", info.name);
            s->runs[s->run_count++] = (variant_run){.index = i, .chosen = true};
            t += len;
            if (!*t)
                break;
        }
    }
    if (s->run_count == 0)
        return cli_error("run", "no variant can run on this CPU with %s inputs",
                         attn_dtype_name(c->dtype));

    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        attn_variant_get(run->index, &run->info);
        run->info.isa = NULL; /* attn_variant_get's text buffers are reused by the next call */
        run->info.why_not = NULL;
        run->tolerance = attn_variant_tolerance(run->info.name, &s->problem);
        if (attn_variant_default_params(run->info.name, &s->problem, &run->params, &err) !=
            ATTN_OK)
            return cli_error("run", "%s", err.message);
        run->params.threads = (int32_t)c->threads.value[0];
    }
    for (int i = 0; i < c->params_count; i++) {
        const char *text = c->params[i], *colon = strchr(text, ':');
        if (!colon)
            return cli_error("run", "--params: '%s' is not NAME:K=V,...", text);
        const size_t len = (size_t)(colon - text);
        const int index = variant_index(text, len);
        if (index < 0)
            return unknown_variant("params", text, len);
        variant_run *run = NULL;
        for (int r = 0; r < s->run_count; r++)
            if (s->runs[r].index == index)
                run = &s->runs[r];
        if (!run)
            return cli_error("run", "--params: variant %.*s is not being run (see --variant)",
                             (int)len, text);
        if (attn_params_parse(run->info.name, colon + 1, &run->params, &err) != ATTN_OK)
            return cli_error("run", "--params %s: %s", text, err.message);
        run->chosen = true;
    }
    /* Every choice checked now, before the long part. A variant that only came with the
     * default set and cannot take this problem (a BLAS int limit, a register budget) is left
     * out with a note; one the user chose is an error. */
    int kept = 0;
    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        if (attn_params_check(run->info.name, &s->problem, &run->params, &err) == ATTN_OK)
            s->runs[kept++] = *run;
        else if (run->chosen)
            return cli_error("run", "%s", err.message);
        else if ((status = skip_variant(s, run->info.name, err.message)) >= 0)
            return status;
    }
    if (kept == 0)
        return cli_error("run", "no variant can run this problem");
    /* One run per variant and thread count, a variant's counts side by side. */
    const int counts = c->threads.count;
    variant_run *runs = calloc((size_t)kept * (size_t)counts, sizeof *runs);
    if (!runs)
        return cli_error("run", "out of memory");
    for (int r = 0; r < kept; r++)
        for (int t = 0; t < counts; t++) {
            variant_run *run = &runs[r * counts + t];
            *run = s->runs[r];
            run->params.threads = (int32_t)c->threads.value[t];
            run->base = t > 0 ? r * counts : -1;
        }
    free(s->runs);
    s->runs = runs;
    s->run_count = kept * counts;
    return -1;
}

/* Whether a variant being run computes in bf16 from inputs that are not bf16 already: then it
 * is checked against its own reference. */
static bool needs_bf16_reference(const run_state *s)
{
    for (int r = 0; s->problem.dtype != ATTN_BF16 && r < s->run_count; r++)
        if (s->runs[r].info.compute_dtype == ATTN_BF16)
            return true;
    return false;
}

/* 64-byte aligned, the size rounded up as aligned_alloc wants. */
static void *alloc_tensor(int64_t elements, size_t element_size)
{
    return aligned_alloc(64, ((size_t)elements * element_size + 63) & ~(size_t)63);
}

/* Allocates and fills the tensors, after checking the total fits in the machine's memory (so a
 * huge-but-valid shape fails cleanly here rather than in the OOM killer later). */
static int make_tensors(run_state *s)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    attn_error err;
    int64_t *extent = s->extent, logical = p->batch; /* elements: q, k, v, o; B·Hq·Lq·d */
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int t = 0; t < 4; t++)
        if (attn_tensor_extent(p, names[t], &extent[t], &err) != ATTN_OK)
            return cli_error("run", "invalid problem: %s", err.message);
    /* B·Hq·Lq·d <= B·Hq·Lq·Lk·d, which validation bounds by INT64_MAX / 8. */
    logical *= p->heads_q * p->len_q * p->head_dim;
    const bool half_in = p->dtype != ATTN_F32, half_out = p->out_dtype != ATTN_F32;
    const size_t in_size = attn_dtype_size(p->dtype), out_size = attn_dtype_size(p->out_dtype);
    const bool bf16_ref = c->check && needs_bf16_reference(s);
    const int refs = c->check ? 1 + half_in + bf16_ref : 0;
    const double inputs = (double)(extent[0] + extent[1] + extent[2]);
    /* float32 inputs: a copy rounded to bf16 for the bf16 reference (prepare_inputs) */
    const double total = (4.0 + (half_in ? (double)in_size : bf16_ref ? 4.0 : 0)) * inputs +
                         ((double)out_size + (half_out ? 4.0 : 0)) * (double)extent[3] +
                         8.0 * refs * (double)logical + (c->out ? 4.0 * logical : 0);
    const double physical = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (physical > 0 && total > physical)
        return cli_error("run", "cannot allocate: this shape needs %.3g GiB of memory for its "
                         "tensors%s, the machine has %.3g GiB", total / 0x1p30,
                         c->check ? " and the oracle" : "", physical / 0x1p30);

    for (int t = 0; t < 3; t++) {
        s->data[t] = alloc_tensor(extent[t], sizeof(float));
        s->input[t] = half_in ? alloc_tensor(extent[t], in_size) : s->data[t];
        if (!s->data[t] || !s->input[t])
            return cli_error("run", "cannot allocate %lld bytes for %c",
                             (long long)extent[t] * 4, names[t]);
    }
    if (!(s->o = alloc_tensor(extent[3], out_size)) ||
        (half_out && !(s->o_f32 = alloc_tensor(extent[3], sizeof(float)))))
        return cli_error("run", "cannot allocate %lld bytes for o", (long long)extent[3] * 4);
    /* The references, each B·Hq·Lq·d doubles; one that would repeat another is that one. */
    double **refs_to_make[3] = {&s->ref_f32, half_in ? &s->ref : NULL,
                                bf16_ref ? &s->ref_bf16 : NULL};
    for (int r = 0; c->check && r < 3; r++)
        if (refs_to_make[r] && !(*refs_to_make[r] = malloc((size_t)logical * sizeof(double))))
            return cli_error("run", "cannot allocate %lld bytes for the oracle's output",
                             (long long)logical * 8);
    if (!half_in)
        s->ref = s->ref_f32;
    if (!s->ref_bf16)
        s->ref_bf16 = s->ref;
    if (c->out && !(s->out = malloc((size_t)logical * sizeof(float))))
        return cli_error("run", "cannot allocate %lld bytes for --out", (long long)logical * 4);

    /* One stream per tensor, so changing one tensor's shape leaves the others' values alone. */
    const attn_npy_array *files[3] = {&s->file_q, &s->file_k, &s->file_v};
    for (int t = 0; t < 3; t++) {
        uint64_t rng = c->seed ^ (uint64_t)(t + 1) << 56;
        fill_tensor(s->data[t], view_of(p, names[t]), files[t]->data, &rng);
    }
    attn_npy_free(&s->file_q);
    attn_npy_free(&s->file_k);
    attn_npy_free(&s->file_v);
    return -1;
}

/* Rounds the inputs to the problem's dtype for the variants, and computes the oracle's
 * references on the way, rounding data[] in place after each (see run_state). */
static int prepare_inputs(run_state *s)
{
    const attn_problem *p = &s->problem;
    const bool check = s->config.check;
    attn_error err;
    if (check && attn_oracle(p, s->data[0], s->data[1], s->data[2], s->ref_f32, &err))
        return cli_error("run", "oracle: %s", err.message);
    for (int t = 0; t < 3; t++)
        if (s->input[t] != s->data[t]) {
            int64_t overflowed = 0; /* finite values float16 cannot hold: they become ±inf */
            for (int64_t i = 0; p->dtype == ATTN_F16 && i < s->extent[t]; i++)
                overflowed += isfinite(s->data[t][i]) && fabsf(s->data[t][i]) >= 65520.0f;
            if (overflowed)
                fprintf(stderr, "attnbench run: warning: %lld values of %c are beyond float16's "
                        "range (|x| >= 65520) and become infinite\n", (long long)overflowed,
                        "QKV"[t]);
            attn_convert(s->data[t], ATTN_F32, s->input[t], p->dtype, (size_t)s->extent[t]);
            attn_convert(s->input[t], p->dtype, s->data[t], ATTN_F32, (size_t)s->extent[t]);
        }
    if (check && s->ref != s->ref_f32 &&
        attn_oracle(p, s->data[0], s->data[1], s->data[2], s->ref, &err))
        return cli_error("run", "oracle: %s", err.message);
    if (check && s->ref_bf16 != s->ref &&
        attn_oracle_rounded(p, s->data[0], s->data[1], s->data[2], ATTN_BF16, s->ref_bf16, &err))
        return cli_error("run", "oracle: %s", err.message);
    return -1;
}

/* n elements of type t, all NaN. */
static void fill_nan(void *o, attn_dtype t, int64_t n)
{
    if (t == ATTN_F32) {
        for (int64_t i = 0; i < n; i++)
            ((float *)o)[i] = NAN;
        return;
    }
    const float nan = NAN;
    uint16_t bits;
    attn_convert(&nan, ATTN_F32, &bits, t, 1);
    for (int64_t i = 0; i < n; i++)
        ((uint16_t *)o)[i] = bits;
}

/* One untimed run of each variant, compared with the oracle; --out keeps the first. */
static int check_variants(run_state *s)
{
    int status = prepare_inputs(s);
    if (status >= 0)
        return status;
    const attn_problem *p = &s->problem;
    /* .npy has float16 but no bfloat16: a bf16 output is written widened. */
    const attn_dtype file_dtype = p->out_dtype == ATTN_F16 ? ATTN_F16 : ATTN_F32;
    attn_error err;
    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        /* NaN everywhere first: an element the variant forgets to write fails the check. */
        fill_nan(s->o, p->out_dtype, s->extent[3]);
        if (attn_run_variant(run->info.name, p, &run->params, s->input[0], s->input[1],
                             s->input[2], s->o, &err))
            return cli_error("run", "%s", err.message);
        const float *o = s->o;
        if (s->o_f32) {
            attn_convert(s->o, p->out_dtype, s->o_f32, ATTN_F32, (size_t)s->extent[3]);
            o = s->o_f32;
        }
        if (s->config.check) {
            attn_compare(p, o, run->info.compute_dtype == ATTN_BF16 ? s->ref_bf16 : s->ref,
                         run->tolerance, &run->error);
            attn_compare(p, o, s->ref_f32, run->tolerance, &run->error_f32);
        }
        if (r == 0 && s->out)
            gather_tensor(s->out, file_dtype, view_of(p, 'o'), s->o, p->out_dtype);
    }
    if (s->out) {
        const int64_t shape[4] = {p->batch, p->heads_q, p->len_q, p->head_dim};
        if (attn_npy_write(s->config.out, 4, shape, s->out, file_dtype, &err) != ATTN_OK)
            return cli_error("run", "--out %s", err.message);
    }
    return -1;
}

/* A run's speed-up over its base run, from the rounds' time ratios: a drift of the machine that
 * slows both runs of a round cancels in their ratio. */
static void compute_speedup(variant_run *run, const variant_run *base, int64_t reps)
{
    stats_welch paired;
    size_t dropped;
    run->speedup = base->samples[0] / run->samples[0];
    run->speedup_lo = run->speedup_hi = NAN;
    if (reps >= 2 &&
        stats_paired_log(run->samples, base->samples, (size_t)reps, 0.95, &paired, &dropped)) {
        run->speedup = exp(paired.diff);
        run->speedup_lo = paired.lo;
        run->speedup_hi = paired.hi;
    }
}

/* Warm-up rounds, then timed rounds; each round runs every variant (and thread count) once, so
 * slow drifts of a shared machine (frequency, other load) spread over all runs alike. */
/* With --min-time S, timed rounds go on past --reps until they have taken S seconds (as Google
 * Benchmark's min_time), and config.reps becomes the number taken. Samples stay in round order
 * (the speed-ups pair them by round; result files keep that order for compare --paired). */
static int time_variants(run_state *s)
{
    run_config *c = &s->config;
    attn_error err;
    int64_t capacity = c->reps;
    for (int r = 0; r < s->run_count; r++)
        if (!(s->runs[r].samples = malloc((size_t)capacity * sizeof(double))))
            return cli_error("run", "out of memory");
    cli_progress progress;
    cli_progress_start(&progress, "run", (size_t)(c->warmup + c->reps), c->quiet || c->min_time > 0);
    double timed_start = 0;
    int64_t timed = 0;
    for (int64_t round = 0;; round++) {
        timed = round - c->warmup;
        if (timed == 0)
            timed_start = attn_clock_seconds();
        if (timed >= c->reps && (timed >= MAX_REPS || !(c->min_time > 0) ||
                                 attn_clock_seconds() - timed_start >= c->min_time))
            break;
        if (timed >= capacity) {
            capacity *= 2;
            for (int r = 0; r < s->run_count; r++) {
                double *more = realloc(s->runs[r].samples, (size_t)capacity * sizeof(double));
                if (!more)
                    return cli_error("run", "out of memory");
                s->runs[r].samples = more;
            }
        }
        for (int r = 0; r < s->run_count; r++) {
            variant_run *run = &s->runs[r];
            const double start = attn_clock_seconds();
            if (attn_run_variant(run->info.name, &s->problem, &run->params, s->input[0],
                                 s->input[1], s->input[2], s->o, &err))
                return cli_error("run", "%s", err.message);
            const double seconds = attn_clock_seconds() - start;
            if (timed >= 0)
                run->samples[timed] = seconds;
        }
        cli_progress_update(&progress, (size_t)round + 1, timed < 0 ? "warm-up" : "timed rounds");
    }
    cli_progress_end(&progress);
    c->reps = timed;
    for (int r = 0; r < s->run_count; r++)
        if (s->runs[r].base >= 0)
            compute_speedup(&s->runs[r], &s->runs[s->runs[r].base], c->reps);
    double *sorted = malloc((size_t)c->reps * sizeof *sorted);
    if (!sorted)
        return cli_error("run", "out of memory");
    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        memcpy(sorted, run->samples, (size_t)c->reps * sizeof *sorted);
        attn_time_stats_compute(sorted, (size_t)c->reps, &run->time); /* sorts its copy */
        if (!stats_spread_of(run->samples, (size_t)c->reps, &run->spread)) {
            free(sorted);
            return cli_error("run", "out of memory");
        }
    }
    free(sorted);
    return -1;
}

/* ---- run's output -------------------------------------------------------------------------- */

static double gflops(const variant_run *run, double flops)
{
    return run->time.median > 0 ? flops / run->time.median * 1e-9 : 0.0;
}

static bool run_ok(const run_state *s, const variant_run *run)
{
    return !s->config.check || run->error.ok;
}

static json_t *kv_lens_json(const attn_problem *p)
{
    if (!p->kv_lens)
        return json_null();
    json_t *list = json_array();
    for (int64_t b = 0; list && b < p->batch; b++)
        if (json_array_append_new(list, json_integer(p->kv_lens[b]))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

/* The timed samples, in seconds, in round order. */
static json_t *samples_json(const variant_run *run, int64_t reps)
{
    json_t *list = json_array();
    for (int64_t i = 0; list && i < reps; i++)
        if (json_array_append_new(list, json_real(run->samples[i]))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

/* The spread of the samples: quartiles, interquartile range, coefficient of variation, the
 * count of outliers (Tukey's fences), and whether it is large (stats_spread_is_large). */
static json_t *spread_json(const variant_run *run)
{
    const stats_spread *d = &run->spread;
    return json_pack("{s:f, s:f, s:f, s:f, s:I, s:b}", "q1_s", d->q1, "q3_s", d->q3, "iqr_s",
                     d->iqr, "cv", d->cv, "outliers", (json_int_t)d->outliers, "large",
                     stats_spread_is_large(d, run->time.median));
}

/* {"over_threads", "ratio", "ci95": [lo, hi] or null}, or null for a variant's first count. */
static json_t *speedup_json(const run_state *s, const variant_run *run)
{
    if (run->base < 0)
        return json_null();
    return json_pack("{s:I, s:o, s:o}", "over_threads",
                     (json_int_t)s->runs[run->base].params.threads, "ratio",
                     cli_json_real(run->speedup), "ci95",
                     isnan(run->speedup_lo)
                         ? json_null()
                         : json_pack("[o, o]", cli_json_real(run->speedup_lo),
                                     cli_json_real(run->speedup_hi)));
}

static json_t *result_json(const run_state *s, const variant_run *run, double flops)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    json_t *params = json_object();
    for (int i = 0; params && i < run->info.param_count; i++)
        if (json_object_set_new(params, run->info.params[i].name,
                                json_integer(run->params.value[i]))) {
            json_decref(params);
            params = NULL;
        }
    json_t *shape = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f, s:s, s:o, s:o}", "batch", (json_int_t)p->batch,
        "heads_q", (json_int_t)p->heads_q, "heads_kv", (json_int_t)p->heads_kv, "len_q",
        (json_int_t)p->len_q, "len_kv", (json_int_t)p->len_kv, "head_dim", (json_int_t)p->head_dim,
        "causal", p->causal, "scale", (double)attn_problem_scale(p), "layout",
        c->blhd ? "blhd" : "bhld", "kv_lens", kv_lens_json(p), "mask",
        c->mask ? json_string(c->mask) : json_null());
    return json_pack(
        "{s:s, s:o, s:o, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:f, s:f, s:o, "
        "s:o, s:o, s:o, s:o, s:o, s:o, s:f, s:b, s:b, s:s, s:o, s:O?}",
        "variant", run->info.name, "params", params, "shape", shape,
        "dtype", attn_dtype_name(p->dtype), "out_dtype", attn_dtype_name(p->out_dtype),
        "compute_dtype", attn_dtype_name(run->info.compute_dtype), "threads",
        (json_int_t)run->params.threads, "reps",
        (json_int_t)c->reps, "warmup", (json_int_t)c->warmup, "seed", (json_int_t)c->seed,
        "median_s", run->time.median, "min_s", run->time.min, "max_s", run->time.max,
        "samples_s", samples_json(run, c->reps), "spread", spread_json(run), "flops",
        flops, "gflops", gflops(run, flops),
        /* fractions of the cached roofline (attnbench peak), null when none is cached */
        "peak_fraction", cli_json_real(cli_peak_fraction(run->info.roofline, gflops(run, flops),
                                                         run->params.threads)),
        "bw_fraction", p->len_q == 1
            ? cli_json_real(cli_bw_fraction(p, run->time.median, run->params.threads))
            : json_null(),
        "speedup", speedup_json(s, run),
        "max_abs_err", c->check ? cli_json_real(run->error.max_abs) : json_null(),
        "max_rel_err", c->check ? cli_json_real(run->error.max_rel) : json_null(),
        /* against the oracle on the float32 data before rounding to dtype */
        "max_rel_err_f32", c->check ? cli_json_real(run->error_f32.max_rel) : json_null(),
        "nan_mismatch", c->check ? json_integer(run->error.nan_mismatch) : json_null(),
        "tolerance", run->tolerance, "checked", c->check, "ok", run_ok(s, run),
        "roofline", run->info.roofline, /* what peak_fraction is against */
        "blas_core", run->info.blas_core ? json_string(run->info.blas_core) : json_null(),
        "conditions", s->conditions);
}

/* run's JSON document: tool, machine, results. NULL on OOM. */
static json_t *run_document(const run_state *s, double flops)
{
    json_t *results = json_array();
    for (int r = 0; results && r < s->run_count; r++)
        if (json_array_append_new(results, result_json(s, &s->runs[r], flops))) {
            json_decref(results);
            results = NULL;
        }
    return json_pack("{s:s, s:o, s:O?, s:o, s:O}", "tool", "attnbench " ATTN_VERSION_STRING,
                     "machine", cli_machine_json(), "conditions", s->conditions, "results",
                     results, "skipped", s->skipped);
}

static bool print_json(const run_state *s, double flops)
{
    json_t *root = run_document(s, flops);
    const bool ok = cli_json_print(root);
    json_decref(root);
    return ok;
}

/* A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *text, bool last)
{
    if (strpbrk(text, ",\"\n\r")) {
        putchar('"');
        for (const char *t = text; *t; t++) {
            if (*t == '"')
                putchar('"');
            putchar(*t);
        }
        putchar('"');
    } else {
        fputs(text, stdout);
    }
    putchar(last ? '\n' : ',');
}

static void print_csv(const run_state *s, double flops)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    static const char *const header[] = {
        "variant", "params", "batch", "heads_q", "heads_kv", "len_q", "len_kv", "head_dim",
        "causal", "scale", "layout", "dtype", "out_dtype", "compute_dtype", "threads", "reps",
        "warmup", "seed", "median_s", "min_s", "max_s", "gflops", "max_abs_err", "max_rel_err",
        "max_rel_err_f32", "tolerance", "ok", "speedup", "speedup_over_threads"};
    enum { COLUMNS = sizeof header / sizeof header[0] };
    for (int i = 0; i < COLUMNS; i++)
        csv_field(header[i], i == COLUMNS - 1);
    for (int r = 0; r < s->run_count; r++) {
        const variant_run *run = &s->runs[r];
        char params[256], cells[COLUMNS - 2][32];
        attn_params_format(run->info.name, &run->params, params, sizeof params);
        const int64_t sizes[6] = {p->batch, p->heads_q, p->heads_kv, p->len_q, p->len_kv,
                                  p->head_dim};
        int n = 0;
        for (int i = 0; i < 6; i++)
            snprintf(cells[n++], 32, "%lld", (long long)sizes[i]);
        snprintf(cells[n++], 32, "%s", p->causal ? "true" : "false");
        snprintf(cells[n++], 32, "%.9g", (double)attn_problem_scale(p));
        snprintf(cells[n++], 32, "%s", c->blhd ? "blhd" : "bhld");
        snprintf(cells[n++], 32, "%s", attn_dtype_name(p->dtype));
        snprintf(cells[n++], 32, "%s", attn_dtype_name(p->out_dtype));
        snprintf(cells[n++], 32, "%s", attn_dtype_name(run->info.compute_dtype));
        snprintf(cells[n++], 32, "%d", run->params.threads);
        snprintf(cells[n++], 32, "%lld", (long long)c->reps);
        snprintf(cells[n++], 32, "%lld", (long long)c->warmup);
        snprintf(cells[n++], 32, "%llu", (unsigned long long)c->seed);
        snprintf(cells[n++], 32, "%.9g", run->time.median);
        snprintf(cells[n++], 32, "%.9g", run->time.min);
        snprintf(cells[n++], 32, "%.9g", run->time.max);
        snprintf(cells[n++], 32, "%.6g", gflops(run, flops));
        const double errors[3] = {run->error.max_abs, run->error.max_rel,
                                  run->error_f32.max_rel};
        for (int i = 0; i < 3; i++, n++) { /* empty: not checked */
            cells[n][0] = '\0';
            if (c->check)
                snprintf(cells[n], 32, "%.6g", errors[i]);
        }
        snprintf(cells[n++], 32, "%g", run->tolerance);
        snprintf(cells[n++], 32, "%s", run_ok(s, run) ? "true" : "false");
        cells[n][0] = cells[n + 1][0] = '\0'; /* empty: the variant's first count */
        if (run->base >= 0) {
            snprintf(cells[n], 32, "%.4g", run->speedup);
            snprintf(cells[n + 1], 32, "%d", s->runs[run->base].params.threads);
        }
        n += 2;
        csv_field(run->info.name, false);
        csv_field(params, false);
        for (int i = 0; i < n; i++)
            csv_field(cells[i], i == n - 1);
    }
}

/* Milliseconds with about four significant digits, in plain notation. */
static void format_ms(char *buf, size_t len, double seconds)
{
    const double ms = seconds * 1e3;
    const int decimals = ms >= 100 ? 1 : ms >= 10 ? 2 : ms >= 1 ? 3 : ms >= 0.1 ? 4 : 5;
    snprintf(buf, len, "%.*f", decimals, ms);
}

/* Like hyperfine: a warning on stderr for each run whose spread makes its median doubtful,
 * with the load average when the machine was busy. */
static void warn_spread(const run_state *s)
{
    if (s->config.quiet)
        return;
    double load;
    int cpus;
    const bool busy = cli_conditions_busy(s->conditions, &load, &cpus);
    int large = 0;
    for (int r = 0; r < s->run_count; r++)
        large += stats_spread_is_large(&s->runs[r].spread, s->runs[r].time.median);
    if (!large)
        return;
    fprintf(stderr, "attnbench run: warning: large spread (CV or IQR over 10%% of the median) in "
            "%d of %d runs, their medians may mislead (%s):", large, s->run_count,
            busy ? "the machine is busy" : "more --reps or --min-time may help");
    for (int r = 0, shown = 0; r < s->run_count; r++) {
        const variant_run *run = &s->runs[r];
        if (stats_spread_is_large(&run->spread, run->time.median))
            fprintf(stderr, "%s %s/%dt CV %.0f%%%s", shown++ ? "," : "", run->info.name,
                    run->params.threads, 100 * run->spread.cv,
                    run->spread.outliers ? " with outliers" : "");
    }
    fputc('\n', stderr);
}

static bool print_text(const run_state *s, double flops)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    const attn_cpu *cpu = attn_cpu_get();
    char threads[CLI_INT_LIST_TEXT];
    cli_int_list_format(&c->threads, threads, sizeof threads);
    printf("B=%lld Hq=%lld Hkv=%lld Lq=%lld Lk=%lld d=%lld scale=%.6g%s%s%s layout=%s\n"
           "dtype=%s out-dtype=%s threads=%s reps=%lld warmup=%lld seed=%llu\n",
           (long long)p->batch, (long long)p->heads_q, (long long)p->heads_kv,
           (long long)p->len_q, (long long)p->len_kv, (long long)p->head_dim,
           (double)attn_problem_scale(p), p->causal ? " causal" : "",
           p->kv_lens ? " kv-lens" : "", p->mask ? " mask" : "", c->blhd ? "blhd" : "bhld",
           attn_dtype_name(p->dtype), attn_dtype_name(p->out_dtype), threads,
           (long long)c->reps, (long long)c->warmup, (unsigned long long)c->seed);
    printf("%s (%s), %.4g GFLOP per run\n\n", cpu->model_name, cpu->vendor, flops * 1e-9);

    /* The error against the float32 data differs from max_rel_err only when something was
     * rounded: a half dtype, or a variant computing in bf16. */
    bool bf16_compute = false;
    for (int r = 0; r < s->run_count; r++)
        bf16_compute |= s->runs[r].info.compute_dtype == ATTN_BF16;
    const bool f32_column = c->check && (p->dtype != ATTN_F32 || bf16_compute);
    const bool thread_columns = c->threads.count > 1;
    /* Narrow by default (100 columns): dtype, IQR, min, max, max_abs_err, max_rel_err_f32 and
     * the tolerance with --wide (and in JSON and CSV). */
    enum { COLUMNS = 16 };
    static const char *const header[COLUMNS] = {
        "variant", "params", "threads", "dtype", "median ms", "IQR ms", "CV", "min ms", "max ms",
        "GFLOP/s", "speed-up [95% CI]", "max_abs_err", "max_rel_err", "max_rel_err_f32",
        "tolerance", "ok"};
    static const char align[COLUMNS + 1] = "llrlrrrrrrlrrrrl";
    const bool wide = cli_table_wide;
    const bool shown[COLUMNS] = {true, true, thread_columns, wide, true, wide, true, wide, wide,
                                 true, thread_columns, wide, true, f32_column && wide, wide, true};
    char shown_align[COLUMNS + 1] = "";
    int columns = 0;
    for (int i = 0; i < COLUMNS; i++)
        if (shown[i])
            shown_align[columns++] = align[i];
    cli_table table;
    cli_table_init(&table, columns, shown_align);
    for (int i = 0; i < COLUMNS; i++)
        if (shown[i])
            cli_table_add(&table, "%s", header[i]);
    for (int r = 0; r < s->run_count; r++) {
        const variant_run *run = &s->runs[r];
        char params[256], median[32], min[32], max[32], iqr[32];
        attn_params_format(run->info.name, &run->params, params, sizeof params);
        format_ms(median, sizeof median, run->time.median);
        format_ms(iqr, sizeof iqr, run->spread.iqr);
        format_ms(min, sizeof min, run->time.min);
        format_ms(max, sizeof max, run->time.max);
        cli_table_add(&table, "%s", run->info.name);
        cli_table_add(&table, "%s", params[0] ? params : "-");
        if (thread_columns)
            cli_table_add(&table, "%d", run->params.threads);
        if (wide)
            cli_table_add(&table, "%s%s", attn_dtype_name(p->dtype),
                          run->info.compute_dtype == ATTN_BF16 ? " (bf16)" : "");
        cli_table_add(&table, "%s", median);
        if (wide)
            cli_table_add(&table, "%s", iqr);
        cli_table_add(&table, "%.1f%%", 100 * run->spread.cv);
        if (wide) {
            cli_table_add(&table, "%s", min);
            cli_table_add(&table, "%s", max);
        }
        cli_table_add(&table, "%.2f", gflops(run, flops));
        if (thread_columns && run->base < 0)
            cli_table_add(&table, "-");
        else if (thread_columns && isnan(run->speedup_lo))
            cli_table_add(&table, "%.2fx", run->speedup);
        else if (thread_columns)
            cli_table_add(&table, "%.2fx [%.3g, %.3g]", run->speedup, run->speedup_lo,
                          run->speedup_hi);
        if (wide && c->check)
            cli_table_add(&table, "%.2e", run->error.max_abs);
        else if (wide)
            cli_table_add(&table, "-");
        if (c->check)
            cli_table_add(&table, "%.2e", run->error.max_rel);
        else
            cli_table_add(&table, "-");
        if (f32_column && wide)
            cli_table_add(&table, "%.2e", run->error_f32.max_rel);
        if (wide)
            cli_table_add(&table, "%.2g", run->tolerance);
        if (!c->check)
            cli_table_add(&table, "unchecked");
        else if (run->error.nan_mismatch)
            cli_table_add(&table, "FAIL (%lld NaN/inf mismatches)",
                          (long long)run->error.nan_mismatch);
        else
            cli_table_add(&table, "%s", run->error.ok ? "yes" : "FAIL");
    }
    const bool ok = cli_table_print(&table, stdout);
    cli_table_free(&table);
    warn_spread(s);
    const char *gap = "\n";
    if (thread_columns) {
        printf("%sspeed-up: over the same variant at %lld thread%s, the geometric mean of the "
               "time ratios\nof the interleaved rounds (95%% CI).\n",
               gap, (long long)c->threads.value[0], c->threads.value[0] == 1 ? "" : "s");
        gap = "";
    }
    if (bf16_compute) {
        printf("%sbf16 compute: max_rel_err is against the oracle on its inputs rounded to bf16"
               "\n(--wide: the error against the float32 data too).\n", gap);
        gap = "";
    }
    if (f32_column && cli_table_wide)
        printf("%smax_rel_err_f32: against the oracle on the float32 data before any rounding."
               "\n", gap);
    return ok;
}

/* The measurement itself, shared by run and cli_run_measure: -1 when done. */
static int measure(run_state *s)
{
    int status = build_problem(s);
    if (status < 0)
        status = choose_variants(s);
    if (status < 0)
        status = make_tensors(s);
    if (status < 0)
        status = check_variants(s);
    if (status < 0) {
        s->conditions = cli_conditions_start();
        if (!s->conditions)
            return cli_error("run", "out of memory");
        if (!s->config.quiet)
            cli_conditions_warn("run", s->conditions);
        status = time_variants(s);
        if (!cli_conditions_end(s->conditions))
            status = cli_error("run", "out of memory");
    }
    return status;
}

int cli_run(int argc, char **argv)
{
    run_state s = {0};
    int status = parse_run_options(argc, argv, &s.config);
    if (status < 0)
        status = measure(&s);
    if (status < 0 && (s.config.save || s.config.output)) {
        json_t *doc = run_document(&s, attn_problem_flops(&s.problem));
        char path[4200];
        if (!doc)
            status = cli_error("run", "out of memory");
        if (doc && s.config.output && !(cli_store_stamp("run", doc, "run") &&
                                        cli_store_write("run", doc, s.config.output)))
            status = CLI_EXIT_USAGE;
        if (status < 0 && s.config.save) {
            if (cli_store_save("run", doc, "run", s.config.results_dir, path, sizeof path))
                fprintf(stderr, "attnbench run: saved %s\n", path);
            else
                status = CLI_EXIT_USAGE;
        }
        json_decref(doc);
    }
    if (status < 0) {
        const double flops = attn_problem_flops(&s.problem);
        bool printed = true;
        switch (s.config.format) {
        case CLI_FORMAT_JSON: printed = print_json(&s, flops); break;
        case CLI_FORMAT_CSV: print_csv(&s, flops); break;
        case CLI_FORMAT_TEXT: printed = print_text(&s, flops); break;
        }
        status = CLI_EXIT_OK;
        for (int r = 0; r < s.run_count; r++)
            if (!run_ok(&s, &s.runs[r]))
                status = CLI_EXIT_FAILED;
        if (!printed)
            status = cli_error("run", "out of memory or output error");
    }
    run_free(&s);
    return status;
}

int cli_run_measure(const cli_measure_spec *spec, json_t *records)
{
    run_state s = {.config = {.variants = spec->variants, .batch = spec->batch,
                              .heads_q = spec->heads_q, .heads_kv = spec->heads_kv,
                              .len_q = spec->len_q, .len_kv = spec->len_kv,
                              .head_dim = spec->head_dim, .causal = spec->causal,
                              .scale = spec->scale,
                              .check = spec->check, .seed = spec->seed, .reps = spec->reps,
                              .quiet = true, /* the caller shows its own progress */
                              .warmup = spec->warmup,
                              .threads = spec->threads,
                              .dtype = spec->dtype, .out_same = spec->out_dtype != ATTN_F32,
                              .format = CLI_FORMAT_JSON}};
    if (spec->out_dtype != ATTN_F32 && spec->out_dtype != spec->dtype)
        return cli_error("run", "out_dtype must be f32 or the input dtype");
    if (!cli_resolve_threads("run", &s.config.threads))
        return CLI_EXIT_USAGE;
    int status = measure(&s);
    if (status < 0) {
        const double flops = attn_problem_flops(&s.problem);
        for (int r = 0; r < s.run_count && status < 0; r++)
            if (json_array_append_new(records, result_json(&s, &s.runs[r], flops)))
                status = cli_error("run", "out of memory");
    }
    if (status < 0 && spec->skipped) { /* the skipped variants, once per name */
        size_t i, j;
        json_t *entry, *known;
        json_array_foreach(s.skipped, i, entry) {
            bool seen = false;
            json_array_foreach(spec->skipped, j, known)
                seen |= json_equal(json_object_get(known, "variant"),
                                   json_object_get(entry, "variant"));
            if (!seen && json_array_append(spec->skipped, entry))
                status = cli_error("run", "out of memory");
        }
    }
    run_free(&s);
    return status;
}
