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
    if (attn_dtype_parse(text, out) && (unsigned)*out < ATTN_DTYPE_COUNT)
        return true;
    cli_error(command, "--dtype: '%s' is not f32, bf16 or f16%s", text,
              attn_dtype_parse(text, out) ? " (quantized types are for --kv-dtype)" : "");
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
