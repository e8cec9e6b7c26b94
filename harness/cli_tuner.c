/* cli_tuner.c — what attnbench tune, plan and wisdom share (cli_tuner.h). */
#include "cli_tuner.h"

#include "atomic_file.h"
#include "cli_store.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Handles option o when it is a shape option: returns 1 when handled, 0 when it is not one,
 * -1 on a bad value (reported). */
int shape_option(const char *cmd, int o, const char *value, const cli_option *options,
                 shape_config *s)
{
    if (o < CLI_SHAPE_OPTION_COUNT)
        return cli_shape_option(cmd, o, value, false, &s->flags);
    switch (o) {
    case O_THREADS: /* a list, as run's and sweep's: each count in turn */
        return cli_parse_int_list(cmd, options[o].name, value, 0, ATTN_MAX_THREADS,
                                  &s->threads) ? 1 : -1;
    case O_DTYPE:
        return cli_parse_dtype(cmd, value, &s->dtype) ? 1 : -1;
    case O_MAX_REL_ERR: {
        char *end;
        s->max_rel_err = strtod(value, &end);
        if (end != value && !*end && isfinite(s->max_rel_err) && s->max_rel_err > 0)
            return 1;
        cli_error(cmd, "--max-rel-err: '%s' is not a finite number > 0", value);
        return -1;
    }
    case O_WISDOM: s->wisdom = value; return 1;
    case O_OUTPUT: {
        attn_error err;
        if (attn_file_check(value, &err) != ATTN_OK) { /* now, not after the measurement */
            cli_error(cmd, "--output %s", err.message);
            return -1;
        }
        s->output = value;
        return 1;
    }
    case O_FORMAT:
        return cli_parse_format(cmd, value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                &s->format) ? 1 : -1;
    default:
        if (o >= O_MODEL && o < SHAPE_OPTION_COUNT)
            return cli_model_parse(cmd, o - O_MODEL, value, &s->model) ? 1 : -1;
        return 0;
    }
}

void shape_output_flag(int argc, char **argv)
{
    static char output_flag[] = "--output";
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-o"))
            argv[i] = output_flag;
}

bool shape_write_output(const char *cmd, const shape_config *s, json_t *root)
{
    return !s->output || (cli_store_stamp(cmd, root, cmd) && cli_store_write(cmd, root, s->output));
}

/* The problem of the shape options, contiguous [B,H,L,d]; prints why on failure. */
bool shape_problem(const char *cmd, shape_config *s, attn_problem *p)
{
    if (!cli_shape_flags_problem(cmd, &s->flags, p))
        return false;
    p->dtype = s->dtype;
    attn_dtype kv; /* a quantized --kv-dtype is set already; a float one must be --dtype */
    if (!cli_kv_dtype_resolve(cmd, s->flags.kv_dtype, p->dtype, &kv))
        return false;
    if (!cli_model_apply(cmd, &s->model, p))
        return false;
    if (!cli_resolve_threads(cmd, &s->threads))
        return false;
    attn_error err;
    if (s->wisdom && attn_wisdom_set_file(s->wisdom, &err) != ATTN_OK) {
        cli_error(cmd, "%s", err.message);
        return false;
    }
    return true;
}

json_t *class_json(const tuner_class *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:i, s:s, s:o, s:o}", "batch",
                     (json_int_t)c->batch, "heads_q", (json_int_t)c->heads_q, "heads_kv",
                     (json_int_t)c->heads_kv, "len_q", (json_int_t)c->len_q, "len_kv",
                     (json_int_t)c->len_kv, "head_dim", (json_int_t)c->head_dim, "causal",
                     c->causal, "mask", c->mask, "kv_lens", c->kv_lens, "threads", c->threads,
                     "dtype", attn_dtype_name(c->dtype), "max_rel_err",
                     c->max_rel_err > 0 ? json_real(c->max_rel_err) : json_null(), "options",
                     json_string(c->options));
}

attn_dtype compute_dtype_of(int variant)
{
    attn_variant_info info;
    return attn_variant_get(variant, &info) ? info.compute_dtype : ATTN_F32;
}

json_t *params_json(const tuner_config *c)
{
    attn_variant_info info;
    json_t *o = json_object();
    if (o && attn_variant_get(c->variant, &info))
        for (int i = 0; i < info.param_count; i++)
            json_object_set_new(o, info.params[i].name, json_integer(c->params.value[i]));
    return o;
}

const char *variant_name(int index)
{
    attn_variant_info info;
    return attn_variant_get(index, &info) ? info.name : "?";
}

/* "12.34" milliseconds with about four significant digits. */
void format_ms(char *buf, size_t len, double seconds)
{
    const double ms = seconds * 1e3;
    snprintf(buf, len, "%.*f", ms >= 100 ? 1 : ms >= 10 ? 2 : ms >= 1 ? 3 : 4, ms);
}

static const double PROGRESS_FIRST = 1.0, PROGRESS_EVERY = 2.0;

void progress_init(progress_state *ps, const char *command)
{
    *ps = (progress_state){.command = command, .tty = isatty(STDERR_FILENO), .last_line = -1};
}

void show_progress(void *ctx, const tuner_progress *p)
{
    progress_state *ps = ctx;
    /* A step expected to take long (a long run, the inputs of a large problem) is announced
     * at once: it may leave nothing else to print for a while. */
    const bool long_step = strcmp(p->stage, "timed") && p->run_seconds >= PROGRESS_FIRST;
    if (!ps->tty && !long_step &&
        (p->elapsed < PROGRESS_FIRST ||
         (ps->last_line >= 0 && p->elapsed - ps->last_line < PROGRESS_EVERY)))
        return;
    char text[320];
    int n = snprintf(text, sizeof text, "%.1f/%.3g s, %zu/%zu configurations: %s%s%s", p->elapsed,
                     p->budget, p->done, p->total, p->stage, p->what[0] ? " " : "", p->what);
    if (n > 0 && (size_t)n < sizeof text && !strcmp(p->stage, "timing")) {
        if (p->rep == 0)
            snprintf(text + n, sizeof text - (size_t)n, ": warm-up (at least %.3g s)",
                     p->run_seconds);
        else
            snprintf(text + n, sizeof text - (size_t)n, ": rep %d/%d (%s%.3g s per run)", p->rep,
                     p->reps, p->run_bound ? "at least " : "", p->run_seconds);
    }
    if (ps->tty) {
        const double f = p->budget > 0 && p->elapsed < p->budget ? p->elapsed / p->budget : 1;
        const int width = 20, filled = (int)(f * width);
        fprintf(stderr, "\r[%.*s%*s] %-100.100s", filled, "####################",
                width - filled, "", text);
        ps->active = true;
    } else {
        fprintf(stderr, "attnbench %s: %s\n", ps->command, text);
        ps->last_line = p->elapsed;
    }
    fflush(stderr);
}

void progress_end(progress_state *ps)
{
    if (ps->active)
        fprintf(stderr, "\r%*s\r", 124, "");
    ps->active = false;
}

