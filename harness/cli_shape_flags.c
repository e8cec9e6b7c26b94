/* cli_shape_flags.c — the one grammar of shape flags (cli.h): every subcommand that takes a
 * problem shape (run, tune, plan, sweep) takes these flags, from one table, with one meaning:
 *
 *   --shape NAME     a named shape (attnbench list --shapes); the other flags override its sizes
 *   --batch N        batch size B
 *   --heads N        query heads Hq
 *   --kv-heads N     key/value heads Hkv (default: the shape's unless --heads is given, else Hq)
 *   --len N          Lq and Lk at once
 *   --len-q N        query length Lq (the other length follows it unless given)
 *   --len-kv N       key/value length Lk (likewise)
 *   --dim N          head dimension d
 *   --scale X        softmax scale (default 1/sqrt(d))
 *   --causal         causal mask, bottom-right aligned
 *   --kv-dtype T     element type of K and V: --dtype's, or int8 / q4 (quantized on the way in)
 *
 * Flags override --shape whatever their order. A command that measures a grid (sweep) takes comma
 * lists of lengths and head dims; the others take one value and say so for a list. */
#include "cli.h"

#include "shapes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Defaults of a shape no flag and no --shape describes. */
enum { DEFAULT_BATCH = 1, DEFAULT_HEADS = 8, DEFAULT_LEN = 1024, DEFAULT_DIM = 64 };

const cli_option cli_shape_options[CLI_SHAPE_OPTION_COUNT] = {
    CLI_SHAPE_OPTION_ROWS("N", "1024", "64")};

void cli_shape_flags_init(cli_shape_flags *f)
{
    *f = (cli_shape_flags){.causal = -1, .kv_dtype = -1};
}

int cli_shape_option(const char *command, int o, const char *value, bool lists,
                     cli_shape_flags *f)
{
    cli_int_list *target = NULL;
    const int64_t min = 1, max = INT64_MAX; /* too large: attn_problem_validate says why */
    switch (o) {
    case CLI_SHAPE_SHAPE: return (f->shape = cli_parse_shape(command, value)) ? 1 : -1;
    case CLI_SHAPE_BATCH: target = &f->batch; break;
    case CLI_SHAPE_HEADS: target = &f->heads_q; break;
    case CLI_SHAPE_KV_HEADS: target = &f->heads_kv; break;
    case CLI_SHAPE_LEN: target = &f->len; break;
    case CLI_SHAPE_LEN_Q: target = &f->len_q; break;
    case CLI_SHAPE_LEN_KV: target = &f->len_kv; break;
    case CLI_SHAPE_DIM: target = &f->head_dim; break;
    case CLI_SHAPE_SCALE: {
        float scale;
        if (!cli_parse_positive_float(command, "scale", value, &scale))
            return -1;
        f->scale = scale;
        return 1;
    }
    case CLI_SHAPE_CAUSAL: f->causal = 1; return 1;
    case CLI_SHAPE_KV_DTYPE: {
        attn_dtype t;
        if (!attn_dtype_parse(value, &t)) {
            cli_error(command, "--kv-dtype: '%s' is not f32, bf16, f16, int8 or q4", value);
            return -1;
        }
        f->kv_dtype = (int)t;
        return 1;
    }
    default: return 0;
    }
    const char *flag = cli_shape_options[o].name;
    if (!cli_parse_int_list(command, flag, value, min, max, target))
        return -1;
    const bool list_flag = o == CLI_SHAPE_LEN || o == CLI_SHAPE_LEN_Q || o == CLI_SHAPE_LEN_KV ||
                           o == CLI_SHAPE_DIM;
    if (target->count != 1 && !(lists && list_flag)) {
        cli_error(command, "--%s takes one value, not '%s'%s", flag, value,
                  list_flag ? " (sweep takes lists of lengths and head dims)" : "");
        return -1;
    }
    return 1;
}

/* The first value of a list, or 0 when no flag gave it. */
static int64_t given(const cli_int_list *l) { return l->count ? l->value[0] : 0; }

void cli_shape_flags_sizes(const cli_shape_flags *f, cli_shape_sizes *out)
{
    const attn_named_shape *s = f->shape;
    *out = (cli_shape_sizes){
        .batch = given(&f->batch) ? given(&f->batch) : s ? s->batch : 0,
        .heads_q = given(&f->heads_q) ? given(&f->heads_q) : s ? s->heads_q : 0,
        /* Hkv: --kv-heads, else the shape's unless --heads changes Hq (then Hq). */
        .heads_kv = given(&f->heads_kv)        ? given(&f->heads_kv)
                    : s && !given(&f->heads_q) ? s->heads_kv
                                               : 0,
        /* A length flag sets its side; --shape the side no flag sets. */
        .len_q = given(&f->len_q) ? given(&f->len_q) : given(&f->len) ? given(&f->len)
                 : s ? s->len_q : 0,
        .len_kv = given(&f->len_kv) ? given(&f->len_kv) : given(&f->len) ? given(&f->len)
                  : s ? s->len_kv : 0,
        .head_dim = given(&f->head_dim) ? given(&f->head_dim) : s ? s->head_dim : 0,
        .causal = f->causal >= 0 ? f->causal == 1 : s && s->causal,
        .scale = (float)f->scale, .kv_dtype = f->kv_dtype};
}

bool cli_kv_dtype_resolve(const char *command, int kv_dtype, attn_dtype dtype, attn_dtype *out)
{
    *out = kv_dtype == ATTN_INT8 || kv_dtype == ATTN_Q4 ? (attn_dtype)kv_dtype : ATTN_F32;
    if (kv_dtype < 0 || *out != ATTN_F32 || kv_dtype == (int)dtype)
        return true;
    cli_error(command, "--kv-dtype %s with --dtype %s: K and V are of --dtype or quantized "
              "(int8, q4)", attn_dtype_name((attn_dtype)kv_dtype), attn_dtype_name(dtype));
    return false;
}

bool cli_shape_flags_problem(const char *command, const cli_shape_flags *f, attn_problem *p)
{
    cli_shape_sizes z;
    cli_shape_flags_sizes(f, &z);
    /* One length given: the other follows it. */
    const int64_t len_q = z.len_q ? z.len_q : z.len_kv ? z.len_kv : DEFAULT_LEN;
    const int64_t heads_q = z.heads_q ? z.heads_q : DEFAULT_HEADS;
    attn_problem_init(p, z.batch ? z.batch : DEFAULT_BATCH, heads_q,
                      z.heads_kv ? z.heads_kv : heads_q, len_q, z.len_kv ? z.len_kv : len_q,
                      z.head_dim ? z.head_dim : DEFAULT_DIM);
    p->causal = z.causal;
    p->scale = z.scale;
    attn_dtype kv; /* float32 here: a quantized --kv-dtype applies, a float one waits for --dtype */
    if (z.kv_dtype >= 0 && cli_kv_dtype_resolve(command, z.kv_dtype, (attn_dtype)z.kv_dtype, &kv))
        attn_problem_set_kv_dtype(p, kv);
    attn_error err;
    if (attn_problem_validate(p, &err) != ATTN_OK) {
        cli_error(command, "%s", err.message);
        return false;
    }
    return true;
}

json_t *cli_problem_json(const attn_problem *p)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f}", "batch", (json_int_t)p->batch,
                     "heads_q", (json_int_t)p->heads_q, "heads_kv", (json_int_t)p->heads_kv,
                     "len_q", (json_int_t)p->len_q, "len_kv", (json_int_t)p->len_kv, "head_dim",
                     (json_int_t)p->head_dim, "causal", p->causal,
                     "scale", (double)attn_problem_scale(p));
}
