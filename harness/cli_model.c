/* cli_model.c — the options of current models on the command line (cli_model.h). */
#include "cli_model.h"
#include "npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cli_model cli_model_none(void) { return (cli_model){.window_left = -1, .window_right = -1}; }

/* One side of --window: an integer >= -1 (-1: unbounded). */
static bool parse_side(const char *command, const char *text, int64_t *out)
{
    return cli_parse_int64(command, "window", text, -1, INT64_MAX, out);
}

bool cli_model_parse(const char *command, int k, const char *value, cli_model *m)
{
    switch (k) {
    case 0: { /* --window L[,R] */
        char left[32];
        const char *comma = strchr(value, ',');
        const size_t n = comma ? (size_t)(comma - value) : strlen(value);
        if (n == 0 || n >= sizeof left) {
            cli_error(command, "--window: '%s' is not L or L,R", value);
            return false;
        }
        memcpy(left, value, n);
        left[n] = '\0';
        m->window_right = -1;
        return parse_side(command, left, &m->window_left) &&
               (!comma || parse_side(command, comma + 1, &m->window_right));
    }
    case 1: m->alibi = true; return true;
    case 2: m->alibi = true; m->alibi_file = value; return true;
    case 3: return cli_parse_positive_float(command, "softcap", value, &m->softcap);
    case 4: m->sinks = value; return true;
    default: return false;
    }
}

/* A float32 [heads] file into a new array; false after a message. */
static bool read_per_head(const char *command, const char *flag, const char *path, int64_t heads,
                          float **out)
{
    attn_npy_array a;
    attn_error err;
    if (attn_npy_read(path, &a, &err) != ATTN_OK) {
        cli_error(command, "--%s %s", flag, err.message);
        return false;
    }
    if (a.ndim != 1 || a.shape[0] != heads) {
        cli_error(command, "--%s %s: expected shape (%lld,) [Hq], got %d dimensions", flag, path,
                  (long long)heads, a.ndim);
        attn_npy_free(&a);
        return false;
    }
    *out = a.data; /* attn_npy_free frees data alone */
    return true;
}

bool cli_model_apply(const char *command, cli_model *m, attn_problem *p)
{
    p->window_left = m->window_left;
    p->window_right = m->window_right;
    p->softcap = m->softcap;
    const size_t heads = (size_t)p->heads_q;
    if (m->alibi) {
        if (m->alibi_file) {
            if (!read_per_head(command, "alibi-slopes", m->alibi_file, p->heads_q, &m->slopes))
                return false;
        } else if (!(m->slopes = malloc(heads * sizeof *m->slopes)) ||
                   !attn_alibi_slopes(p->heads_q, m->slopes)) {
            cli_error(command, "--alibi: cannot make the slopes of %lld heads",
                      (long long)p->heads_q);
            return false;
        }
        p->alibi_slopes = m->slopes;
    }
    if (m->sinks) {
        char *end;
        const float x = strtof(m->sinks, &end);
        if (end != m->sinks && !*end) {
            if (!isfinite(x)) {
                cli_error(command, "--sinks: '%s' is not finite", m->sinks);
                return false;
            }
            if (!(m->sink_values = malloc(heads * sizeof *m->sink_values))) {
                cli_error(command, "out of memory");
                return false;
            }
            for (size_t h = 0; h < heads; h++)
                m->sink_values[h] = x;
        } else if (!read_per_head(command, "sinks", m->sinks, p->heads_q, &m->sink_values)) {
            return false;
        }
        p->sinks = m->sink_values;
    }
    return true;
}

void cli_model_free(cli_model *m)
{
    free(m->slopes);
    free(m->sink_values);
    m->slopes = m->sink_values = NULL;
}

unsigned cli_model_features(const cli_model *m)
{
    return (m->window_left >= 0 || m->window_right >= 0 ? ATTN_FEATURE_WINDOW : 0) |
           (m->alibi ? ATTN_FEATURE_ALIBI : 0) | (m->softcap != 0.0f ? ATTN_FEATURE_SOFTCAP : 0) |
           (m->sinks ? ATTN_FEATURE_SINKS : 0);
}

void cli_model_describe(const attn_problem *p, char *buf, size_t len)
{
    int n = 0;
    buf[0] = '\0';
    if (p->window_left >= 0 || p->window_right >= 0)
        n += snprintf(buf + n, len - (size_t)n, " window=%lld,%lld", (long long)p->window_left,
                      (long long)p->window_right);
    if (n >= 0 && (size_t)n < len && p->alibi_slopes)
        n += snprintf(buf + n, len - (size_t)n, " alibi");
    if (n >= 0 && (size_t)n < len && p->softcap != 0.0f)
        n += snprintf(buf + n, len - (size_t)n, " softcap=%g", (double)p->softcap);
    if (n >= 0 && (size_t)n < len && p->sinks)
        snprintf(buf + n, len - (size_t)n, " sinks");
}

bool cli_model_json(const attn_problem *p, json_t *object)
{
    const bool window = p->window_left >= 0 || p->window_right >= 0;
    return !json_object_set_new(object, "window",
                                window ? json_pack("[I, I]", (json_int_t)p->window_left,
                                                   (json_int_t)p->window_right)
                                       : json_null()) &&
           !json_object_set_new(object, "alibi", json_boolean(p->alibi_slopes != NULL)) &&
           !json_object_set_new(object, "softcap",
                                p->softcap != 0.0f ? json_real(p->softcap) : json_null()) &&
           !json_object_set_new(object, "sinks", json_boolean(p->sinks != NULL));
}
