/* cli_model.c — the options of current models on the command line (cli_model.h). */
#include "cli_model.h"
#include "npy.h"
#include "rng.h"

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
    case 5: return cli_parse_int64(command, "page-size", value, 1, INT32_MAX, &m->page_size);
    case 6: m->block_table_file = value; return true;
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

static bool apply_pages(const char *command, cli_model *m, attn_problem *p);

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
    return apply_pages(command, m, p);
}

/* --page-size (and --block-table): the table read or shuffled, p paged (cli_model.h). */
static bool apply_pages(const char *command, cli_model *m, attn_problem *p)
{
    if (m->block_table_file && !m->page_size) {
        cli_error(command, "--block-table needs --page-size");
        return false;
    }
    if (!m->page_size)
        return true;
    const int64_t used = (p->len_kv - 1) / m->page_size + 1;
    int64_t stride = used, pages = 0;
    if (m->block_table_file) {
        attn_npy_array a;
        attn_error err;
        if (attn_npy_read_int32(m->block_table_file, &a, &err) != ATTN_OK) {
            cli_error(command, "--block-table %s", err.message);
            return false;
        }
        if (a.ndim != 2 || a.shape[0] != p->batch || a.shape[1] < used) {
            cli_error(command, "--block-table %s: expected shape (%lld, >= %lld) [B, max_pages]",
                      m->block_table_file, (long long)p->batch, (long long)used);
            attn_npy_free(&a);
            return false;
        }
        stride = a.shape[1];
        m->block_table = malloc((size_t)a.count * sizeof *m->block_table);
        for (int64_t i = 0; m->block_table && i < a.count; i++) {
            m->block_table[i] = (int32_t)a.data[i];
            if (i % stride < used && m->block_table[i] >= pages)
                pages = (int64_t)m->block_table[i] + 1; /* the pool: every page named */
        }
        attn_npy_free(&a);
    } else { /* each sequence's pages, shuffled over the pool */
        pages = p->batch * used;
        if (pages <= INT32_MAX &&
            (m->block_table = malloc((size_t)pages * sizeof *m->block_table))) {
            uint64_t state = 0x9a6ed5eedu; /* fixed: the same table on every run */
            for (int64_t i = 0; i < pages; i++)
                m->block_table[i] = (int32_t)i;
            for (int64_t i = pages - 1; i > 0; i--) {
                const int64_t j = (int64_t)(attn_rng_next(&state) % (uint64_t)(i + 1));
                const int32_t t = m->block_table[i];
                m->block_table[i] = m->block_table[j];
                m->block_table[j] = t;
            }
        }
    }
    if (!m->block_table) {
        cli_error(command, "--page-size: cannot make a block table of %lld pages",
                  (long long)pages);
        return false;
    }
    const bool blhd = p->k.head < p->k.seq; /* keep the layout asked for inside each page */
    attn_problem_set_pages(p, m->page_size, pages < 1 ? 1 : pages, m->block_table, stride);
    if (blhd)
        p->k = p->v = (attn_strides){.batch = m->page_size * p->heads_kv * p->head_dim,
                                     .head = p->head_dim, .seq = p->heads_kv * p->head_dim};
    return true;
}

void cli_model_free(cli_model *m)
{
    free(m->slopes);
    free(m->sink_values);
    free(m->block_table);
    m->slopes = m->sink_values = NULL;
    m->block_table = NULL;
}

unsigned cli_model_features(const cli_model *m)
{
    return (m->window_left >= 0 || m->window_right >= 0 ? ATTN_FEATURE_WINDOW : 0) |
           (m->alibi ? ATTN_FEATURE_ALIBI : 0) | (m->softcap != 0.0f ? ATTN_FEATURE_SOFTCAP : 0) |
           (m->sinks ? ATTN_FEATURE_SINKS : 0) | (m->page_size ? ATTN_FEATURE_PAGED : 0);
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
        n += snprintf(buf + n, len - (size_t)n, " sinks");
    if (n >= 0 && (size_t)n < len && p->page_size)
        snprintf(buf + n, len - (size_t)n, " paged=%lld", (long long)p->page_size);
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
           !json_object_set_new(object, "sinks", json_boolean(p->sinks != NULL)) &&
           !json_object_set_new(object, "page_size", json_integer((json_int_t)p->page_size));
}
