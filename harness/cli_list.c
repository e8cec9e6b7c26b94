/* cli_list.c — attnbench list: the variants (or with --shapes, the named shapes). */
#include "cli.h"
#include "cli_commands.h"

#include "shapes.h"
#include "variant.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    char features[64];
    attn_features_format(v->features, features, sizeof features);
    json_t *kv = json_array(); /* the quantized K/V types it reads */
    for (int t = ATTN_DTYPE_COUNT; kv && t < ATTN_KV_DTYPE_COUNT; t++)
        if ((v->kv_dtypes & 1u << t) &&
            json_array_append_new(kv, json_string(attn_dtype_name((attn_dtype)t)))) {
            json_decref(kv);
            kv = NULL;
        }
    return json_pack("{s:s, s:s, s:s, s:b, s:o, s:f, s:o, s:o, s:s, s:o, s:b, s:s}", "name", v->name,
                     "description", v->description, "isa", v->isa, "supported", v->supported,
                     "why_not", v->supported ? json_null() : json_string(v->why_not),
                     "tolerance", v->tolerance, "dtypes", cli_dtypes_json(v->dtypes),
                     "kv_dtypes", kv, "compute_dtype", attn_dtype_name(v->compute_dtype), "params", params,
                     "reference_only", v->reference_only, "features", features);
}

/* A shape's key lengths as a JSON array, or null when it has none. */
static json_t *shape_kv_lens_json(const attn_named_shape *s)
{
    if (!s->kv_lens)
        return json_null();
    json_t *list = json_array();
    for (int64_t b = 0; list && b < s->batch; b++)
        if (json_array_append_new(list, json_integer(s->kv_lens[b]))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

/* list --shapes: the table of shapes.c. */
static int list_shapes(cli_format format)
{
    if (format == CLI_FORMAT_JSON) {
        json_t *shapes = json_array();
        for (int i = 0; shapes && i < attn_named_shape_count; i++) {
            const attn_named_shape *s = &attn_named_shapes[i];
            if (json_array_append_new(
                    shapes, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s, "
                                      "s:o}",
                                      "name", s->name, "set", s->set, "kind", s->kind, "batch",
                                      (json_int_t)s->batch, "heads_q", (json_int_t)s->heads_q,
                                      "heads_kv", (json_int_t)s->heads_kv, "len_q",
                                      (json_int_t)s->len_q, "len_kv", (json_int_t)s->len_kv,
                                      "head_dim", (json_int_t)s->head_dim, "causal", s->causal,
                                      "what", s->what, "kv_lens", shape_kv_lens_json(s)))) {
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
