/* cli.c — the helpers every subcommand of attnbench shares: options, number parsing, tables,
 * JSON, element types, shapes. The bottom of the tool: it calls nothing of the tool above it. */
#include "cli.h"

#include "cpu.h"
#include "shapes.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    else
        cli_error(command, "unknown or ambiguous option '%s' (see --help)", argv[optind - 1]);
    return CLI_OPTION_ERROR;
}

void cli_print_options(FILE *out, const cli_option *options, int count)
{
    for (int i = 0; i < count; i++) {
        char left[48];
        snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].metavar ? " " : "",
                 options[i].metavar ? options[i].metavar : "");
        fprintf(out, "  %-24s %s\n", left, options[i].help);
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

bool cli_table_print(const cli_table *t, FILE *out)
{
    if (t->out_of_memory)
        return false;
    size_t *width = calloc((size_t)t->columns, sizeof *width);
    if (!width)
        return false;
    for (size_t i = 0; i < t->count; i++) {
        const size_t c = i % (size_t)t->columns, n = strlen(t->cells[i]);
        if (n > width[c])
            width[c] = n;
    }
    for (size_t i = 0; i < t->count; i++) {
        const size_t c = i % (size_t)t->columns;
        const bool last = c == (size_t)t->columns - 1 || i == t->count - 1;
        /* The last column is not padded: no trailing blanks. */
        fprintf(out, t->align[c] == 'r' ? "%*s" : "%-*s", last && t->align[c] != 'r' ? 0 :
                (int)width[c], t->cells[i]);
        fputs(last ? "\n" : "  ", out);
    }
    free(width);
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

const char *cli_variant_skip_reason(const attn_variant_info *info, attn_dtype dtype,
                                    unsigned features, char *buf, size_t len)
{
    if (!info->supported)
        return info->why_not;
    if (features & ~info->features) {
        char names[64];
        attn_features_format(features & ~info->features, names, sizeof names);
        snprintf(buf, len, "does not implement %s", names);
        return buf;
    }
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
