/* wisdom_read.c — reading the wisdom file (its format: wisdom.c).
 *
 * A streaming parse (yajl's callbacks) straight into entries, each indexed by its class as it
 * comes (wisdom_set_put), so reading N entries takes O(N) time and no document tree: 250k
 * entries (140 MB) read in about a second, where building jansson's tree alone took 2-3 s and
 * 1 GB. The writer (wisdom.c) keeps jansson's tree, which it needs to keep every other section
 * as it is; the files it writes are capped (wisdom_max_entries).
 *
 * As strict as the tree reader was: a file that is not JSON, has a duplicate key where a key
 * is read, or lacks the outer shape ("format", "version", "sections") is WISDOM_READ_BAD, with
 * path:line:column for a syntax error; a section is ours when its machine id and every field
 * of this build's signature match (the first such section is used, the others are counted as
 * foreign and described); an entry of ours that does not read is skipped and counted.
 *
 * The parse keeps a stack of frames, one per open object or array that is read; a value whose
 * key is not read is skipped whole (skip counts its nesting). */
#include "tuner.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_parse.h>

typedef enum frame_kind {
    F_ROOT, F_SECTIONS, F_SECTION, F_MACHINE, F_BUILD, F_ENTRIES, F_ENTRY, F_PROBLEM,
    F_PARAMS, F_FULL,
} frame_kind;

/* The keys read in each kind of object, for duplicate detection (a bit per key). */
static const char *const KEYS[][14] = {
    [F_ROOT] = {"format", "version", "sections"},
    [F_SECTION] = {"machine", "build", "entries"},
    [F_MACHINE] = {"id", "model"},
    [F_ENTRY] = {"problem", "variant", "params", "median_s", "gflops", "rel_err",
                 "full_precision", "date", "last_used"},
    [F_PROBLEM] = {"batch", "heads_q", "heads_kv", "len_q", "len_kv", "head_dim", "causal",
                   "mask", "kv_lens", "threads", "dtype", "max_rel_err", "options"},
    [F_FULL] = {"variant", "median_s"},
};
enum { MAX_DEPTH = 8, MAX_BUILD_KEYS = 32, MAX_PARAMS = 32, NAME_LEN = 64 };

typedef struct frame {
    frame_kind kind;
    uint32_t seen; /* KEYS of this object already met */
} frame;

/* A scalar as the parser gave it. */
typedef enum value_type { V_NULL, V_BOOL, V_NUMBER, V_STRING, V_CONTAINER } value_type;
typedef struct value {
    value_type type;
    bool boolean;
    const char *text; /* number or string bytes (not NUL-terminated) */
    size_t len;
} value;

typedef struct reader {
    frame stack[MAX_DEPTH];
    int depth, skip;
    char key[NAME_LEN];
    int key_index;   /* in KEYS of the current object; -1 when not read (or too long) */
    locale_t c_locale;
    const char *failure; /* why the parse was stopped (a duplicate key, out of memory) */

    /* the document */
    bool root_object, format_ok, version_integer, sections_array;
    long long version; /* when version_integer */

    /* the section being read */
    char machine_id[NAME_LEN], machine_model[NAME_LEN];
    bool have_id, have_model;
    char *build_key[MAX_BUILD_KEYS], *build_value[MAX_BUILD_KEYS]; /* value NULL: not a string */
    int build_count;
    wisdom_set entries;
    size_t entries_skipped;

    /* the entry being read */
    wisdom_entry entry;
    uint32_t problem_ok;     /* bits of KEYS[F_PROBLEM] read with a valid value */
    bool params_seen, variant_ok, date_ok, last_used_ok;
    char variant[NAME_LEN], full_variant[NAME_LEN];
    char param_name[MAX_PARAMS][NAME_LEN];
    int64_t param_value[MAX_PARAMS];
    bool param_ok[MAX_PARAMS];
    int param_count;

    /* the last variant an entry named (entries mostly repeat a few): its index and info */
    char last_variant[NAME_LEN];
    int last_index;
    attn_variant_info last_info;

    /* this process, and the result */
    const char *our_id, *our_model;
    json_t *our_build;
    wisdom_set *ours;
    bool have_ours;
    size_t foreign, skipped;
    char reason[320];
} reader;

static bool text_is(const char *text, size_t len, const char *s)
{
    return strlen(s) == len && !memcmp(text, s, len);
}

/* Copies a string value into buf when it fits and holds no NUL. */
static bool copy_string(const value *v, char *buf, size_t size)
{
    if (v->type != V_STRING || v->len >= size || memchr(v->text, '\0', v->len))
        return false;
    memcpy(buf, v->text, v->len);
    buf[v->len] = '\0';
    return true;
}

static bool as_int(const value *v, int64_t *out)
{
    char buf[32];
    if (v->type != V_NUMBER || v->len >= sizeof buf || memchr(v->text, '.', v->len) ||
        memchr(v->text, 'e', v->len) || memchr(v->text, 'E', v->len))
        return false; /* a real is not an integer, as in jansson */
    memcpy(buf, v->text, v->len);
    buf[v->len] = '\0';
    errno = 0;
    char *end;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    *out = x;
    return true;
}

static bool as_number(const reader *r, const value *v, double *out)
{
    char buf[64];
    if (v->type != V_NUMBER || v->len >= sizeof buf)
        return false;
    memcpy(buf, v->text, v->len);
    buf[v->len] = '\0';
    *out = strtod_l(buf, NULL, r->c_locale); /* '.' whatever the caller's locale */
    return true;
}

/* ---- one entry ------------------------------------------------------------------------------ */

static void begin_entry(reader *r)
{
    memset(&r->entry, 0, sizeof r->entry);
    r->entry.rel_err = NAN;
    r->entry.full_variant = -1;
    r->problem_ok = 0;
    r->params_seen = r->variant_ok = r->date_ok = r->last_used_ok = false;
    r->full_variant[0] = '\0';
    r->param_count = 0;
}

static void problem_value(reader *r, int key, const value *v)
{
    tuner_class *c = &r->entry.cls;
    int64_t *ints[] = {&c->batch, &c->heads_q, &c->heads_kv, &c->len_q, &c->len_kv,
                       &c->head_dim};
    bool *bools[] = {&c->causal, &c->mask, &c->kv_lens};
    int64_t x;
    char name[16];
    bool ok = false;
    if (key < 6) {
        ok = as_int(v, ints[key]) && *ints[key] >= 1;
    } else if (key < 9) {
        ok = v->type == V_BOOL;
        *bools[key - 6] = v->boolean;
    } else if (key == 9) {
        ok = as_int(v, &x) && x >= 1 && x <= ATTN_MAX_THREADS;
        c->threads = ok ? (int)x : 0;
    } else if (key == 10) {
        ok = copy_string(v, name, sizeof name) && attn_dtype_parse(name, &c->dtype);
    } else if (key == 11) {
        ok = as_number(r, v, &c->max_rel_err) && c->max_rel_err >= 0 && isfinite(c->max_rel_err);
    } else if (key == 12) { /* optional: absent for a problem without options */
        ok = copy_string(v, c->options, sizeof c->options);
    }
    if (ok)
        r->problem_ok |= 1u << key;
}

static void entry_value(reader *r, int key, const value *v)
{
    wisdom_entry *e = &r->entry;
    switch (key) {
    case 1: r->variant_ok = copy_string(v, r->variant, sizeof r->variant); break;
    case 3: as_number(r, v, &e->median_seconds); break; /* not a number: 0, as before */
    case 4: as_number(r, v, &e->gflops); break;
    case 5: as_number(r, v, &e->rel_err); break;
    case 7: r->date_ok = copy_string(v, e->date, sizeof e->date); break;
    case 8: r->last_used_ok = copy_string(v, e->last_used, sizeof e->last_used); break;
    default: break; /* problem, params, full_precision: not objects, so not read */
    }
}

static void param_value(reader *r, const value *v)
{
    if (r->param_count == MAX_PARAMS)
        return; /* more than any variant has: the rest cannot be its parameters */
    const int i = r->param_count++;
    memcpy(r->param_name[i], r->key, sizeof r->key); /* same size */
    r->param_ok[i] = as_int(v, &r->param_value[i]) && r->param_value[i] >= INT32_MIN &&
                     r->param_value[i] <= INT32_MAX;
}

/* The entry is complete: checked as the tree reader checked it, then kept or counted. */
static bool end_entry(reader *r)
{
    wisdom_entry *e = &r->entry;
    const uint32_t required = (1u << 11) - 1; /* every problem key but max_rel_err */
    if (r->variant_ok && strcmp(r->variant, r->last_variant)) {
        memcpy(r->last_variant, r->variant, sizeof r->variant);
        r->last_index = attn_variant_find(r->variant);
        if (r->last_index >= 0 && !attn_variant_get(r->last_index, &r->last_info))
            r->last_index = -1;
    }
    const int index = r->variant_ok ? r->last_index : -1;
    const attn_variant_info info = r->last_info;
    bool ok = (r->problem_ok & required) == required && index >= 0 && r->params_seen;
    if (ok && !(r->problem_ok & (1u << 11)))
        e->cls.max_rel_err = 0; /* absent: version 1 files before accuracy bounds */
    for (int i = 0; ok && i < info.param_count; i++) {
        int j = 0;
        while (j < r->param_count && strcmp(r->param_name[j], info.params[i].name))
            j++;
        ok = j < r->param_count && r->param_ok[j];
        if (ok)
            e->config.params.value[i] = (int32_t)r->param_value[j];
    }
    if (!ok) {
        r->entries_skipped++;
        return true;
    }
    e->config.variant = index;
    e->config.params.count = info.param_count;
    e->config.params.threads = e->cls.threads;
    if (r->full_variant[0])
        e->full_variant = attn_variant_find(r->full_variant);
    if (!r->date_ok)
        e->date[0] = '\0';
    if (!r->last_used_ok) /* files from before last_used: the date */
        memcpy(e->last_used, e->date, sizeof e->last_used);
    if (wisdom_set_put(&r->entries, e) != ATTN_OK) {
        r->failure = "out of memory";
        return false;
    }
    return true;
}

/* ---- one section ---------------------------------------------------------------------------- */

static void clear_build(reader *r)
{
    for (int i = 0; i < r->build_count; i++) {
        free(r->build_key[i]);
        free(r->build_value[i]);
    }
    r->build_count = 0;
}

static void begin_section(reader *r)
{
    r->have_id = r->have_model = false;
    clear_build(r);
    wisdom_set_free(&r->entries);
    r->entries_skipped = 0;
}

static const char *section_build(const reader *r, const char *key)
{
    for (int i = 0; i < r->build_count; i++)
        if (!strcmp(r->build_key[i], key))
            return r->build_value[i];
    return NULL;
}

/* The section is complete: ours (the first), or foreign and described, or a second of ours. */
static void end_section(reader *r)
{
    char why[320] = "";
    if (!r->have_id || strcmp(r->machine_id, r->our_id)) {
        wisdom_other_machine(why, sizeof why, r->have_model ? r->machine_model : NULL,
                             r->have_id ? r->machine_id : NULL, r->our_model, r->our_id);
    } else {
        const char *key;
        json_t *value;
        json_object_foreach(r->our_build, key, value) {
            const char *theirs = section_build(r, key);
            if (!theirs || strcmp(theirs, json_string_value(value))) {
                wisdom_other_build(why, sizeof why, key, theirs, json_string_value(value));
                break;
            }
        }
    }
    if (why[0]) {
        if (r->foreign++ == 0)
            snprintf(r->reason, sizeof r->reason, "%s", why);
    } else if (!r->have_ours) {
        r->have_ours = true;
        wisdom_set_free(r->ours);
        *r->ours = r->entries; /* moved: the section's set becomes the result */
        memset(&r->entries, 0, sizeof r->entries);
        r->skipped = r->entries_skipped;
    }
    wisdom_set_free(&r->entries);
}

/* ---- the parser's callbacks ----------------------------------------------------------------- */

static frame *top(reader *r) { return r->depth > 0 ? &r->stack[r->depth - 1] : NULL; }

/* A value at the current position (a scalar, or the start of a container). */
static bool on_value(reader *r, const value *v)
{
    frame *f = top(r);
    if (!f)
        return true; /* the document itself is not an object: reported at the end */
    const int k = r->key_index;
    switch (f->kind) {
    case F_ROOT:
        if (k == 0)
            r->format_ok = v->type == V_STRING && text_is(v->text, v->len, WISDOM_FORMAT);
        else if (k == 1) {
            int64_t version;
            r->version_integer = as_int(v, &version);
            r->version = r->version_integer ? (long long)version : -1;
        }
        break;
    case F_SECTIONS: /* a section that is not an object: of an unknown machine */
        if (v->type != V_CONTAINER) {
            begin_section(r);
            end_section(r);
        }
        break;
    case F_MACHINE:
        if (k == 0)
            r->have_id = copy_string(v, r->machine_id, sizeof r->machine_id);
        else if (k == 1)
            r->have_model = copy_string(v, r->machine_model, sizeof r->machine_model);
        break;
    case F_BUILD:
        if (r->build_count < MAX_BUILD_KEYS) {
            char *value = NULL;
            if (v->type == V_STRING && !memchr(v->text, '\0', v->len) &&
                (value = malloc(v->len + 1))) {
                memcpy(value, v->text, v->len);
                value[v->len] = '\0';
            }
            char *key = strdup(r->key);
            if (!key || (v->type == V_STRING && !value)) {
                free(key);
                free(value);
                r->failure = "out of memory";
                return false;
            }
            r->build_key[r->build_count] = key;
            r->build_value[r->build_count++] = value;
        }
        break;
    case F_ENTRIES: /* an entry that is not an object: unreadable */
        if (v->type != V_CONTAINER)
            r->entries_skipped++;
        break;
    case F_ENTRY: entry_value(r, k, v); break;
    case F_PROBLEM:
        if (k >= 0)
            problem_value(r, k, v);
        break;
    case F_PARAMS: param_value(r, v); break;
    case F_FULL:
        if (k == 0)
            copy_string(v, r->full_variant, sizeof r->full_variant);
        else if (k == 1)
            as_number(r, v, &r->entry.full_median_seconds);
        break;
    case F_SECTION: break;
    }
    return true;
}

static int scalar(void *ctx, value v)
{
    reader *r = ctx;
    return r->skip > 0 || on_value(r, &v);
}
static int on_null(void *ctx) { return scalar(ctx, (value){.type = V_NULL}); }
static int on_bool(void *ctx, int b) { return scalar(ctx, (value){.type = V_BOOL, .boolean = b}); }
static int on_number(void *ctx, const char *s, size_t len)
{
    return scalar(ctx, (value){.type = V_NUMBER, .text = s, .len = len});
}
static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    return scalar(ctx, (value){.type = V_STRING, .text = (const char *)s, .len = len});
}

/* The kind of frame a container opened here is read as; -1: skipped. */
static int child_kind(const reader *r, bool object)
{
    const frame *f = r->depth > 0 ? &r->stack[r->depth - 1] : NULL;
    const int k = r->key_index;
    if (!f)
        return object ? F_ROOT : -1;
    switch (f->kind) {
    case F_ROOT: return !object && k == 2 ? F_SECTIONS : -1;
    case F_SECTIONS: return object ? F_SECTION : -1;
    case F_SECTION:
        return object && k == 0 ? F_MACHINE : object && k == 1 ? F_BUILD
             : !object && k == 2 ? F_ENTRIES : -1;
    case F_ENTRIES: return object ? F_ENTRY : -1;
    case F_ENTRY:
        return object && k == 0 ? F_PROBLEM : object && k == 2 ? F_PARAMS
             : object && k == 6 ? F_FULL : -1;
    default: return -1;
    }
}

static int open_container(reader *r, bool object)
{
    if (r->skip > 0) {
        r->skip++;
        return 1;
    }
    if (!on_value(r, &(value){.type = V_CONTAINER}))
        return 0;
    const int kind = child_kind(r, object);
    if (kind < 0 || r->depth == MAX_DEPTH) {
        r->skip = 1;
        return 1;
    }
    if (kind == F_ROOT)
        r->root_object = true;
    else if (kind == F_SECTIONS)
        r->sections_array = true;
    else if (kind == F_SECTION)
        begin_section(r);
    else if (kind == F_ENTRY)
        begin_entry(r);
    else if (kind == F_PARAMS)
        r->params_seen = true;
    r->stack[r->depth++] = (frame){.kind = (frame_kind)kind};
    r->key_index = -1;
    return 1;
}

static int close_container(reader *r)
{
    if (r->skip > 0) {
        r->skip--;
        return 1;
    }
    const frame_kind kind = r->stack[--r->depth].kind;
    r->key_index = -1;
    if (kind == F_SECTION)
        end_section(r);
    else if (kind == F_ENTRY)
        return end_entry(r);
    return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, true); }
static int on_start_array(void *ctx) { return open_container(ctx, false); }
static int on_end(void *ctx) { return close_container(ctx); }

static int on_key(void *ctx, const unsigned char *s, size_t len)
{
    reader *r = ctx;
    if (r->skip > 0)
        return 1;
    frame *f = top(r);
    r->key_index = -1;
    if (len >= sizeof r->key || memchr(s, '\0', len)) {
        r->key[0] = '\0';
        return 1; /* longer than any key read: never matches */
    }
    memcpy(r->key, s, len);
    r->key[len] = '\0';
    bool duplicate = false; /* objects of free keys: by name */
    for (int i = 0; f->kind == F_BUILD && i < r->build_count; i++)
        duplicate |= !strcmp(r->build_key[i], r->key);
    for (int i = 0; f->kind == F_PARAMS && i < r->param_count; i++)
        duplicate |= !strcmp(r->param_name[i], r->key);
    if (duplicate) {
        r->failure = "duplicate object key";
        return 0;
    }
    const char *const *keys = KEYS[f->kind];
    for (int i = 0; i < 14 && keys[i]; i++)
        if (keys[i][0] == r->key[0] && !strcmp(keys[i], r->key)) {
            if (f->seen & (1u << i)) {
                r->failure = "duplicate object key";
                return 0;
            }
            f->seen |= 1u << i;
            r->key_index = i;
        }
    return 1;
}

static const yajl_callbacks CALLBACKS = {
    .yajl_null = on_null, .yajl_boolean = on_bool, .yajl_number = on_number,
    .yajl_string = on_string, .yajl_start_map = on_start_map, .yajl_map_key = on_key,
    .yajl_end_map = on_end, .yajl_start_array = on_start_array, .yajl_end_array = on_end,
};

/* ---- reading -------------------------------------------------------------------------------- */

/* Line and column (from 1) of byte `at` of text. */
static void position(const char *text, size_t at, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') {
            ++*line;
            *column = 1;
        } else {
            ++*column;
        }
    }
}

wisdom_read_status wisdom_read_buffer(const char *text, size_t len, const char *path,
                                      wisdom_set *ours, size_t *foreign, char *warning,
                                      size_t warning_len, attn_error *err)
{
    memset(ours, 0, sizeof *ours);
    *foreign = 0;
    if (warning_len)
        warning[0] = '\0';
    reader *r = calloc(1, sizeof *r);
    json_t *machine = wisdom_machine_json();
    if (r) {
        r->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        r->our_build = wisdom_build_json();
    }
    if (!r || !machine || !r->our_build || r->c_locale == (locale_t)0) {
        if (r && r->c_locale != (locale_t)0)
            freelocale(r->c_locale);
        if (r)
            json_decref(r->our_build);
        free(r);
        json_decref(machine);
        attn_fail(err, ATTN_ERR_NOMEM, "wisdom file %s: out of memory", path);
        return WISDOM_READ_BAD;
    }
    r->our_id = json_string_value(json_object_get(machine, "id"));
    r->our_model = json_string_value(json_object_get(machine, "model"));
    r->ours = ours;
    r->key_index = -1;
    r->last_index = -1; /* for the name "" (last_variant), which no entry matches */

    wisdom_read_status status = WISDOM_READ_BAD;
    yajl_handle h = yajl_alloc(&CALLBACKS, NULL, r);
    yajl_status ys = yajl_status_error;
    if (h) {
        ys = yajl_parse(h, (const unsigned char *)text, len);
        if (ys == yajl_status_ok)
            ys = yajl_complete_parse(h);
    }
    if (!h) {
        attn_fail(err, ATTN_ERR_NOMEM, "wisdom file %s: out of memory", path);
    } else if (ys != yajl_status_ok) {
        int line, column;
        const size_t at = yajl_get_bytes_consumed(h);
        position(text, at < len ? at : len, &line, &column);
        if (ys == yajl_status_client_canceled) {
            attn_fail(err, ATTN_ERR_IO, "wisdom file %s:%d:%d: %s", path, line, column,
                      r->failure ? r->failure : "unreadable");
        } else {
            unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
            char *nl = msg ? strchr((char *)msg, '\n') : NULL;
            if (nl)
                *nl = '\0';
            attn_fail(err, ATTN_ERR_IO, "wisdom file %s:%d:%d: %s", path, line, column,
                      msg ? (const char *)msg : "not JSON");
            yajl_free_error(h, msg);
        }
    } else if (!r->format_ok || !r->root_object) {
        attn_fail(err, ATTN_ERR_IO,
                  "wisdom file %s: not an attnbench wisdom file (no \"format\": \"%s\")", path,
                  WISDOM_FORMAT);
    } else if (!r->version_integer || r->version != WISDOM_VERSION) {
        attn_fail(err, ATTN_ERR_IO, "wisdom file %s: format version %lld; this build reads version %d",
                  path, r->version_integer ? r->version : -1LL, WISDOM_VERSION);
    } else if (!r->sections_array) {
        attn_fail(err, ATTN_ERR_IO, "wisdom file %s: \"sections\" is missing or not an array",
                  path);
    } else {
        status = WISDOM_READ_OK;
    }
    if (h)
        yajl_free(h);
    if (status != WISDOM_READ_OK) {
        wisdom_set_free(ours);
    } else {
        *foreign = r->foreign;
        const size_t skipped = r->skipped;
        if (*foreign && skipped)
            snprintf(warning, warning_len,
                     "wisdom file %s: ignoring %zu section(s) for %s; %zu unreadable entr%s skipped",
                     path, *foreign, r->reason, skipped, skipped == 1 ? "y" : "ies");
        else if (*foreign)
            snprintf(warning, warning_len, "wisdom file %s: ignoring %zu section(s) for %s", path,
                     *foreign, r->reason);
        else if (skipped)
            snprintf(warning, warning_len, "wisdom file %s: %zu unreadable entr%s skipped", path,
                     skipped, skipped == 1 ? "y" : "ies");
    }
    clear_build(r);
    wisdom_set_free(&r->entries);
    freelocale(r->c_locale);
    json_decref(r->our_build);
    json_decref(machine);
    free(r);
    return status;
}

wisdom_read_status wisdom_load_file(const char *path, char **text, size_t *len, attn_error *err)
{
    *text = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return WISDOM_READ_MISSING;
        attn_fail(err, ATTN_ERR_IO, "wisdom file %s: %s", path, strerror(errno));
        return WISDOM_READ_BAD;
    }
    struct stat st;
    const char *why = NULL;
    char *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if ((uint64_t)st.st_size >= SIZE_MAX || !(buf = malloc((size_t)st.st_size + 1)))
        why = "too large to read into memory";
    while (!why && n < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            why = strerror(errno);
        if (got <= 0) /* at the end early, the file shrank: what was read is parsed */
            break;
        n += (size_t)got;
    }
    close(fd);
    if (why) {
        free(buf);
        attn_fail(err, ATTN_ERR_IO, "wisdom file %s: %s", path, why);
        return WISDOM_READ_BAD;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return WISDOM_READ_OK;
}

wisdom_read_status wisdom_read(const char *path, wisdom_set *ours, size_t *foreign,
                               char *warning, size_t warning_len, attn_error *err)
{
    memset(ours, 0, sizeof *ours);
    *foreign = 0;
    if (warning_len)
        warning[0] = '\0';
    char *text;
    size_t len;
    wisdom_read_status status = wisdom_load_file(path, &text, &len, err);
    if (status == WISDOM_READ_OK)
        status = wisdom_read_buffer(text, len, path, ours, foreign, warning, warning_len, err);
    free(text);
    return status;
}
