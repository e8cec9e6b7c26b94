/* wisdom.c — the wisdom file: what tuning found, per machine, build and problem class.
 *
 * A JSON document (through jansson):
 *
 *   {"format": "attnbench-wisdom", "version": 1, "sections": [
 *     {"machine": {"id": "…", "vendor": …, "model": …, "isa": …, "l1d_bytes": …, …},
 *      "build": {"library": "0.1.0", "compiler": "gcc 12.2.0", "flags": "…",
 *                "variants": "avx512(bq,bk) … naive()"},
 *      "entries": [{"problem": {"batch": 1, …, "causal": false, "mask": false,
 *                               "kv_lens": false, "threads": 2, "dtype": "f32",
 *                               "max_rel_err": 0},
 *                   "variant": "avx512", "params": {"bq": 64, "bk": 128},
 *                   "median_s": 0.0123, "gflops": 98.7, "rel_err": 4.1e-7,
 *                   "date": "2025-…Z"}, …]}, …]}
 *
 * max_rel_err is the accuracy bound the class was tuned under (0: float32 compute only). When
 * the choice computes in reduced precision, "full_precision": {"variant", "median_s"} records
 * the fastest float32-compute candidate it beat. rel_err and full_precision are optional.
 *
 * Only the section whose machine id and build match this process is used; the others are kept
 * on every write, reported, and otherwise ignored, as FFTW ignores wisdom of other builds. A
 * file that cannot be read as such a document is never written over. Writers serialise on an
 * flock of PATH.lock and re-read the file under it, so concurrent tuners lose no entries; the
 * new text goes to a temporary file in the same directory, fsynced, then renamed over PATH. */
#include "tuner.h"
#include "error.h"
#include "cpu.h"
#include "atomic_file.h"
#include "attn_build_info.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* ---- where the file is -------------------------------------------------------------------- */

void wisdom_path(const char *override_path, char *buf, size_t len)
{
    const char *env = getenv("ATTN_WISDOM"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    if (override_path && *override_path)
        snprintf(buf, len, "%s", override_path);
    else if (env && *env)
        snprintf(buf, len, "%s", env);
    else if (xdg && *xdg == '/') /* the XDG spec ignores relative paths */
        snprintf(buf, len, "%s/attnbench/wisdom.json", xdg);
    else
        snprintf(buf, len, "%s/.cache/attnbench/wisdom.json", home && *home ? home : ".");
}

/* ---- this machine and this build ---------------------------------------------------------- */

json_t *wisdom_machine_json(void)
{
    const attn_cpu *c = attn_cpu_get();
    char isa[256];
    attn_isa_format(c->isa_detected, isa, sizeof isa);
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:I}", "id", attn_machine_id(),
                     "vendor", c->vendor, "model", c->model_name, "family", c->family, "cpu_model",
                     c->model, "isa", isa, "l1d_bytes", (json_int_t)c->machine.l1d_bytes,
                     "l2_bytes", (json_int_t)c->machine.l2_bytes, "l3_bytes",
                     (json_int_t)c->machine.l3_bytes);
}

json_t *wisdom_build_json(void)
{
    /* "avx512(bq,bk) avx2(bq,bk) … naive()": a new variant or parameter is a new build. Grows
     * with the registry (a fixed buffer would silently drop the variants past its end). */
    char *variants = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&variants, &size);
    if (!f)
        return NULL;
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        fprintf(f, "%s%s(", i ? " " : "", info.name);
        for (int j = 0; j < info.param_count; j++)
            fprintf(f, "%s%s", j ? "," : "", info.params[j].name);
        fputc(')', f);
    }
    if (fclose(f) != 0) {
        free(variants);
        return NULL;
    }
    json_t *build = json_pack("{s:s, s:s, s:s, s:s}", "library", ATTN_VERSION_STRING, "compiler",
                              ATTN_BUILD_COMPILER, "flags", ATTN_BUILD_FLAGS, "variants", variants);
    free(variants);
    return build;
}

/* A foreign section described, in the words both readers print: another machine, or another
 * build with the first build key that differs (long values, the ISA flags, shown from a little
 * before where they part). */
void wisdom_other_machine(char *buf, size_t len, const char *model, const char *id,
                          const char *our_model, const char *our_id)
{
    snprintf(buf, len, "another machine (%s, id %s; this one is %s, id %s)",
             model ? model : "unknown model", id ? id : "missing", our_model, our_id);
}

void wisdom_other_build(char *buf, size_t len, const char *key, const char *theirs,
                        const char *ours)
{
    size_t at = 0;
    while (theirs && theirs[at] && theirs[at] == ours[at])
        at++;
    at = at > 24 ? at - 24 : 0;
    snprintf(buf, len, "another build (%s \"%s%.100s\"; this build has \"%s%.100s\")", key,
             at ? "..." : "", theirs ? theirs + at : "missing", at ? "..." : "", ours + at);
}

/* Why a section is not ours, in words; NULL when it is. */
static const char *foreign_reason(json_t *section, json_t *machine, json_t *build, char *buf,
                                  size_t len)
{
    json_t *m = json_object_get(section, "machine"), *b = json_object_get(section, "build");
    const char *id = json_string_value(json_object_get(m, "id"));
    if (!id || strcmp(id, json_string_value(json_object_get(machine, "id")))) {
        wisdom_other_machine(buf, len, json_string_value(json_object_get(m, "model")), id,
                             json_string_value(json_object_get(machine, "model")),
                             json_string_value(json_object_get(machine, "id")));
        return buf;
    }
    const char *key;
    json_t *ours;
    json_object_foreach(build, key, ours) {
        const char *theirs = json_string_value(json_object_get(b, key));
        if (!theirs || strcmp(theirs, json_string_value(ours))) {
            wisdom_other_build(buf, len, key, theirs, json_string_value(ours));
            return buf;
        }
    }
    return NULL;
}

/* ---- reading ------------------------------------------------------------------------------ */

static bool get_int(json_t *obj, const char *key, int64_t min, int64_t *out)
{
    json_t *x = json_object_get(obj, key);
    if (!json_is_integer(x) || json_integer_value(x) < min)
        return false;
    *out = json_integer_value(x);
    return true;
}

static bool get_bool(json_t *obj, const char *key, bool *out)
{
    json_t *x = json_object_get(obj, key);
    if (!json_is_boolean(x))
        return false;
    *out = json_is_true(x);
    return true;
}

static bool parse_class(json_t *problem, tuner_class *c)
{
    int64_t threads = 0;
    const char *dtype = json_string_value(json_object_get(problem, "dtype"));
    bool ok = get_int(problem, "batch", 1, &c->batch) && get_int(problem, "heads_q", 1, &c->heads_q) &&
              get_int(problem, "heads_kv", 1, &c->heads_kv) &&
              get_int(problem, "len_q", 1, &c->len_q) && get_int(problem, "len_kv", 1, &c->len_kv) &&
              get_int(problem, "head_dim", 1, &c->head_dim) &&
              get_bool(problem, "causal", &c->causal) && get_bool(problem, "mask", &c->mask) &&
              get_bool(problem, "kv_lens", &c->kv_lens) &&
              get_int(problem, "threads", 1, &threads) && threads <= ATTN_MAX_THREADS &&
              dtype && attn_dtype_parse(dtype, &c->dtype);
    c->threads = (int)threads;
    json_t *bound = json_object_get(problem, "max_rel_err"); /* absent: 0 (version 1 files) */
    c->max_rel_err = bound ? json_number_value(bound) : 0.0;
    /* absent: a problem without options; one too long for the class is no class of ours */
    json_t *options = json_object_get(problem, "options");
    const char *text = options ? json_string_value(options) : "";
    const bool options_ok = text && strlen(text) < sizeof c->options;
    snprintf(c->options, sizeof c->options, "%s", options_ok ? text : "");
    return ok && options_ok && (!bound || json_is_number(bound)) && c->max_rel_err >= 0 &&
           isfinite(c->max_rel_err);
}

/* An entry's last use as the file has it: "last_used", else its "date" (files written before
 * entries carried a last use), else "" (older than any date). */
static void last_used_of(json_t *e, char *buf, size_t len)
{
    const char *used = json_string_value(json_object_get(e, "last_used"));
    if (!used)
        used = json_string_value(json_object_get(e, "date"));
    snprintf(buf, len, "%s", used ? used : "");
}

static json_t *entry_json(const wisdom_entry *e)
{
    attn_variant_info info;
    if (!attn_variant_get(e->config.variant, &info))
        return NULL;
    json_t *params = json_object();
    for (int i = 0; params && i < info.param_count; i++)
        json_object_set_new(params, info.params[i].name, json_integer(e->config.params.value[i]));
    const tuner_class *c = &e->cls;
    json_t *j = json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:i, s:s, s:f}, s:s, "
                          "s:o, s:f, s:f, s:s}",
                          "problem", "batch", (json_int_t)c->batch, "heads_q",
                          (json_int_t)c->heads_q, "heads_kv", (json_int_t)c->heads_kv, "len_q",
                          (json_int_t)c->len_q, "len_kv", (json_int_t)c->len_kv, "head_dim",
                          (json_int_t)c->head_dim, "causal", c->causal, "mask", c->mask,
                          "kv_lens", c->kv_lens, "threads", c->threads, "dtype",
                          attn_dtype_name(c->dtype), "max_rel_err", c->max_rel_err, "variant",
                          info.name, "params", params, "median_s", e->median_seconds, "gflops",
                          e->gflops, "date", e->date);
    if (j && c->options[0])
        json_object_set_new(json_object_get(j, "problem"), "options", json_string(c->options));
    if (j && isfinite(e->rel_err))
        json_object_set_new(j, "rel_err", json_real(e->rel_err));
    if (j && e->last_used[0])
        json_object_set_new(j, "last_used", json_string(e->last_used));
    attn_variant_info full;
    if (j && e->full_variant >= 0 && attn_variant_get(e->full_variant, &full))
        json_object_set_new(j, "full_precision", json_pack("{s:s, s:f}", "variant", full.name,
                                                           "median_s", e->full_median_seconds));
    return j;
}

/* Parses a document and checks its outer shape; `path` names it in messages. */
static wisdom_read_status parse_root(const char *text, size_t len, const char *path,
                                     json_t **root, attn_error *err)
{
    *root = NULL;
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        if (je.line > 0)
            attn_fail(err, ATTN_ERR_IO, "wisdom file %s:%d:%d: %s", path, je.line, je.column, je.text);
        else
            attn_fail(err, ATTN_ERR_IO, "wisdom file %s: %s", path, je.text);
        return WISDOM_READ_BAD;
    }
    const char *format = json_string_value(json_object_get(doc, "format"));
    json_t *version = json_object_get(doc, "version");
    if (!format || strcmp(format, WISDOM_FORMAT)) {
        attn_fail(err, ATTN_ERR_IO, "wisdom file %s: not an attnbench wisdom file (no \"format\": \"%s\")",
             path, WISDOM_FORMAT);
    } else if (!json_is_integer(version) || json_integer_value(version) != WISDOM_VERSION) {
        attn_fail(err, ATTN_ERR_IO, "wisdom file %s: format version %lld; this build reads version %d",
             path, json_is_integer(version) ? (long long)json_integer_value(version) : -1LL,
             WISDOM_VERSION);
    } else if (!json_is_array(json_object_get(doc, "sections"))) {
        attn_fail(err, ATTN_ERR_IO, "wisdom file %s: \"sections\" is missing or not an array", path);
    } else {
        *root = doc;
        return WISDOM_READ_OK;
    }
    json_decref(doc);
    return WISDOM_READ_BAD;
}

/* Loads and checks the document's outer shape. */
static wisdom_read_status load_root(const char *path, json_t **root, attn_error *err)
{
    char *text;
    size_t len;
    *root = NULL;
    wisdom_read_status status = wisdom_load_file(path, &text, &len, err);
    if (status == WISDOM_READ_OK)
        status = parse_root(text, len, path, root, err);
    free(text);
    return status;
}

/* Index of this machine and build's section in the document, or -1; counts and describes the
 * others. */
static long our_section(json_t *root, json_t *machine, json_t *build, size_t *foreign,
                        char *reason, size_t reason_len)
{
    long ours = -1;
    size_t i;
    json_t *section;
    char why[320];
    *foreign = 0;
    if (reason_len)
        reason[0] = '\0';
    json_array_foreach(json_object_get(root, "sections"), i, section) {
        const char *r = foreign_reason(section, machine, build, why, sizeof why);
        if (!r && ours < 0) {
            ours = (long)i;
        } else if (r) {
            if (*foreign == 0 && reason_len)
                snprintf(reason, reason_len, "%s", r);
            ++*foreign;
        }
    }
    return ours;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* mkdir -p of the file's directory. */
static attn_status make_dirs(const char *path, attn_error *err)
{
    char dir[4096];
    attn_path_dir(path, dir, sizeof dir);
    for (char *s = dir + 1;; s++) {
        const char c = *s;
        if (c == '/' || c == '\0') {
            *s = '\0';
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return attn_fail(err, ATTN_ERR_IO, "cannot create directory %s: %s", dir,
                            strerror(errno));
            *s = c;
        }
        if (c == '\0')
            break;
    }
    return ATTN_OK;
}

/* Whether the file at path is attnbench wisdom: a JSON document whose "format" is ours, or a
 * damaged one that still opens with that signature (the form this writer gives it). */
static bool is_wisdom_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    json_t *doc = json_load_file(path, 0, NULL);
    const char *format = json_string_value(json_object_get(doc, "format"));
    const bool parsed = format && !strcmp(format, WISDOM_FORMAT);
    json_decref(doc);
    if (parsed)
        return true;
    static const char signature[] = "{\"format\":\"" WISDOM_FORMAT "\"";
    char head[256], text[sizeof signature];
    FILE *f = fopen(path, "rb");
    const size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof text - 1; i++)
        if (head[i] != ' ' && head[i] != '\n' && head[i] != '\t' && head[i] != '\r')
            text[used++] = head[i];
    return used == sizeof signature - 1 && !memcmp(text, signature, used);
}

/* Through the one file writer: atomic for a regular file (kept mode, symlink followed), a
 * read-only file refused. */
static attn_status write_atomic(const char *path, json_t *root, attn_error *err)
{
    attn_status st = make_dirs(path, err);
    if (st != ATTN_OK)
        return st;
    char *text = json_dumps(root, JSON_INDENT(1));
    if (!text)
        return attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory writing %s", path);
    attn_error why;
    st = attn_file_write_text(path, text, &why);
    free(text);
    return st == ATTN_OK ? st : attn_fail(err, st, "wisdom: %s", why.message);
}

static json_t *new_section(json_t *machine, json_t *build)
{
    return json_pack("{s:O, s:O, s:[]}", "machine", machine, "build", build, "entries");
}

/* Replaces or appends each entry of `add` in a section's entries array; with touch_only, only
 * sets the last_used of the entries of add's classes that the array has. The array's classes
 * are indexed once (wisdom_class_slot), so a merge is linear in the entries, not their
 * product. */
static attn_status merge_entries(json_t *entries, const wisdom_set *add, bool touch_only,
                                 size_t *touched, attn_error *err)
{
    *touched = 0;
    const size_t n = json_array_size(entries), total = n + add->count;
    const size_t count = wisdom_slots_for(total);
    size_t *slots = count ? calloc(count, sizeof *slots) : NULL;
    size_t *where = malloc((total ? total : 1) * sizeof *where); /* item → array position */
    tuner_class *classes = malloc((total ? total : 1) * sizeof *classes);
    attn_status st = ATTN_OK;
    if (!slots || !where || !classes) {
        st = attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
        goto done;
    }
    size_t items = 0;
    for (size_t i = 0; i < n; i++)
        if (parse_class(json_object_get(json_array_get(entries, i), "problem"), &classes[items])) {
            size_t *slot = wisdom_class_slot(slots, count, &classes[items], classes,
                                             sizeof *classes);
            where[items++] = i;
            *slot = items; /* a duplicate class in the file: the last one is replaced */
        }
    for (size_t k = 0; k < add->count && st == ATTN_OK; k++) {
        const wisdom_entry *e = &add->entries[k];
        size_t *slot = wisdom_class_slot(slots, count, &e->cls, classes, sizeof *classes);
        if (touch_only) {
            json_t *old = *slot ? json_array_get(entries, where[*slot - 1]) : NULL;
            if (old && json_object_set_new(old, "last_used", json_string(e->last_used)) != 0)
                st = attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
            *touched += old != NULL;
            continue;
        }
        json_t *j = entry_json(e);
        int rc = !j ? -1 : *slot ? json_array_set_new(entries, where[*slot - 1], j)
                                 : json_array_append_new(entries, j);
        if (rc != 0) {
            st = attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
        } else if (!*slot) {
            classes[items] = e->cls;
            where[items++] = json_array_size(entries) - 1;
            *slot = items;
        }
    }
done:
    free(slots);
    free(where);
    free(classes);
    return st;
}

size_t wisdom_max_entries(void)
{
    const char *env = getenv("ATTN_WISDOM_MAX_ENTRIES");
    char *end;
    errno = 0;
    const unsigned long long n = env && *env ? strtoull(env, &end, 10) : 0;
    if (env && *env && !errno && !*end && n > 0 && n <= SIZE_MAX)
        return (size_t)n;
    return WISDOM_DEFAULT_MAX_ENTRIES;
}

typedef struct entry_age {
    char last_used[32];
    size_t section, index;
} entry_age;

static int compare_age(const void *a, const void *b)
{
    const entry_age *x = a, *y = b;
    int c = strcmp(x->last_used, y->last_used);
    if (c == 0) /* equally old: the earlier in the file goes first */
        c = x->section != y->section ? (x->section > y->section) - (x->section < y->section)
                                     : (x->index > y->index) - (x->index < y->index);
    return c;
}

/* Drops the least recently used entries, over every section, beyond `max`; removes a section of
 * another machine or build left without entries (ours, `keep`, stays). */
static attn_status prune(json_t *root, size_t max, long keep, attn_error *err)
{
    json_t *sections = json_object_get(root, "sections");
    size_t total = 0, i, j;
    json_t *section, *e;
    json_array_foreach(sections, i, section)
        total += json_array_size(json_object_get(section, "entries"));
    if (total <= max)
        return ATTN_OK;
    entry_age *ages = malloc(total * sizeof *ages);
    if (!ages)
        return attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
    size_t n = 0;
    json_array_foreach(sections, i, section)
        json_array_foreach(json_object_get(section, "entries"), j, e) {
            last_used_of(e, ages[n].last_used, sizeof ages[n].last_used);
            ages[n].section = i;
            ages[n++].index = j;
        }
    qsort(ages, n, sizeof *ages, compare_age);
    /* Mark the oldest (JSON null), then keep the rest of each array in order. */
    for (size_t k = 0; k < total - max; k++)
        json_array_set_new(json_object_get(json_array_get(sections, ages[k].section), "entries"),
                           ages[k].index, json_null());
    free(ages);
    for (i = json_array_size(sections); i-- > 0;) {
        section = json_array_get(sections, i);
        json_t *entries = json_object_get(section, "entries"), *kept = json_array();
        if (!kept)
            return attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
        json_array_foreach(entries, j, e)
            if (!json_is_null(e) && json_array_append(kept, e) != 0) {
                json_decref(kept);
                return attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
            }
        if (json_array_size(kept) == 0 && (long)i != keep)
            json_array_remove(sections, i);
        else if (json_object_set(section, "entries", kept) != 0) {
            json_decref(kept);
            return attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
        }
        json_decref(kept);
    }
    return ATTN_OK;
}

/* wisdom_merge_into_file, or with touch_only wisdom_touch_in_file. */
static attn_status merge_into_file(const char *path, const wisdom_set *add, bool touch_only,
                                   attn_error *err)
{
    attn_status st = make_dirs(path, err);
    if (st != ATTN_OK)
        return st;
    char lock_path[4200];
    snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0)
        return attn_fail(err, ATTN_ERR_IO, "wisdom: cannot open lock file %s: %s", lock_path,
                    strerror(errno));
    while (flock(lock, LOCK_EX) != 0)
        if (errno != EINTR) {
            st = attn_fail(err, ATTN_ERR_IO, "wisdom: cannot lock %s: %s", lock_path, strerror(errno));
            close(lock);
            return st;
        }
    json_t *root = NULL, *machine = wisdom_machine_json(), *build = wisdom_build_json();
    attn_error why = {0};
    wisdom_read_status rs = load_root(path, &root, &why);
    if (rs == WISDOM_READ_BAD) {
        st = attn_fail(err, ATTN_ERR_IO,
                  "%s; refusing to write over it (%s)", why.message,
                  is_wisdom_file(path) ? "attnbench wisdom forget removes it"
                                       : "point ATTN_WISDOM or --wisdom elsewhere");
        goto done;
    }
    if (rs == WISDOM_READ_MISSING)
        root = json_pack("{s:s, s:i, s:[]}", "format", WISDOM_FORMAT, "version", WISDOM_VERSION,
                         "sections");
    if (!root || !machine || !build) {
        st = attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
        goto done;
    }
    size_t foreign;
    json_t *sections = json_object_get(root, "sections");
    long index = our_section(root, machine, build, &foreign, NULL, 0);
    if (index < 0) {
        json_t *s = new_section(machine, build);
        if (!s || json_array_append_new(sections, s) != 0) {
            st = attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
            goto done;
        }
        index = (long)json_array_size(sections) - 1;
    }
    json_t *section = json_array_get(sections, (size_t)index);
    json_t *entries = json_object_get(section, "entries");
    if (!json_is_array(entries)) {
        entries = json_array();
        if (!entries || json_object_set_new(section, "entries", entries) != 0) {
            st = attn_fail(err, ATTN_ERR_NOMEM, "wisdom: out of memory");
            goto done;
        }
    }
    size_t touched;
    if ((st = merge_entries(entries, add, touch_only, &touched, err)) == ATTN_OK &&
        (!touch_only || touched) && /* touching nothing writes nothing */
        (st = prune(root, wisdom_max_entries(), index, err)) == ATTN_OK)
        st = write_atomic(path, root, err);
done:
    json_decref(root);
    json_decref(machine);
    json_decref(build);
    flock(lock, LOCK_UN);
    close(lock);
    return st;
}

attn_status wisdom_merge_into_file(const char *path, const wisdom_set *add, attn_error *err)
{
    return merge_into_file(path, add, false, err);
}

attn_status wisdom_touch_in_file(const char *path, const tuner_class *c, attn_error *err)
{
    wisdom_entry e = {.cls = *c};
    wisdom_now(e.last_used, sizeof e.last_used);
    const wisdom_set one = {.entries = &e, .count = 1, .capacity = 1};
    return merge_into_file(path, &one, true, err);
}

attn_status wisdom_write_file(const char *path, const wisdom_set *set, attn_error *err)
{
    json_t *machine = wisdom_machine_json(), *build = wisdom_build_json(), *root = NULL;
    attn_status st = ATTN_ERR_NOMEM;
    json_t *section = machine && build ? new_section(machine, build) : NULL;
    size_t touched;
    if (section)
        root = json_pack("{s:s, s:i, s:[o]}", "format", WISDOM_FORMAT, "version",
                         WISDOM_VERSION, "sections", section);
    if (!root)
        attn_fail(err, st, "wisdom: out of memory");
    else if ((st = merge_entries(json_object_get(section, "entries"), set, false, &touched,
                                 err)) ==
                 ATTN_OK &&
             (st = prune(root, wisdom_max_entries(), 0, err)) == ATTN_OK)
        st = write_atomic(path, root, err);
    json_decref(root);
    json_decref(machine);
    json_decref(build);
    return st;
}

attn_status wisdom_forget(const char *path, attn_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0 && errno == ENOENT)
        return ATTN_OK;
    if (!is_wisdom_file(path))
        return attn_fail(err, ATTN_ERR_INVALID, "wisdom: %s is not an attnbench wisdom file "
                         "(no \"format\": \"%s\"); not removed", path, WISDOM_FORMAT);
    if (unlink(path) != 0 && errno != ENOENT)
        return attn_fail(err, ATTN_ERR_IO, "wisdom: cannot remove %s: %s", path, strerror(errno));
    /* The lock file is empty when it is ours; anything else under that name stays. */
    char lock_path[4200];
    snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    if (lstat(lock_path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
        unlink(lock_path);
    return ATTN_OK;
}

void wisdom_now(char *buf, size_t len)
{
    wisdom_time(time(NULL), buf, len);
}

void wisdom_time(time_t t, char *buf, size_t len)
{
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(buf, len, "unknown");
}

/* ---- checking (wisdom show, wisdom import) ------------------------------------------------ */

/* A field's value as the file has it ("missing" when absent), for messages. */
static const char *shown(json_t *x, char *buf, size_t len)
{
    char *text = x ? json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    snprintf(buf, len, "%.40s%s", x ? (text ? text : "?") : "missing",
             text && strlen(text) > 40 ? "..." : "");
    free(text);
    return buf;
}

/* The strict reading of one entry: false with "FIELD: what is wrong" in why. The loader above
 * skips what it cannot use; a person inspecting the file is told which entry and field. */
static bool check_entry(json_t *e, char *why, size_t len)
{
    static const char *const positive[] = {"batch", "heads_q", "heads_kv", "len_q", "len_kv",
                                           "head_dim", "threads"};
    static const char *const flags[] = {"causal", "mask", "kv_lens"};
    json_t *problem = json_object_get(e, "problem"), *x;
    char v[64];
    if (!json_is_object(e) || !json_is_object(problem)) {
        snprintf(why, len, "%s is not an object", json_is_object(e) ? "problem" : "the entry");
        return false;
    }
    for (size_t i = 0; i < sizeof positive / sizeof *positive; i++) {
        x = json_object_get(problem, positive[i]);
        const json_int_t max = strcmp(positive[i], "threads") ? INT64_MAX : ATTN_MAX_THREADS;
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > max) {
            snprintf(why, len, "problem.%s is %s, expected an integer in [1, %lld]",
                     positive[i], shown(x, v, sizeof v), (long long)max);
            return false;
        }
    }
    if (json_integer_value(json_object_get(problem, "heads_q")) %
        json_integer_value(json_object_get(problem, "heads_kv"))) {
        snprintf(why, len, "problem.heads_q is not a multiple of problem.heads_kv");
        return false;
    }
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (!json_is_boolean(json_object_get(problem, flags[i]))) {
            snprintf(why, len, "problem.%s is %s, expected true or false", flags[i],
                     shown(json_object_get(problem, flags[i]), v, sizeof v));
            return false;
        }
    attn_dtype dtype;
    if (!attn_dtype_parse(json_string_value(json_object_get(problem, "dtype")), &dtype)) {
        snprintf(why, len, "problem.dtype is %s, expected \"f32\", \"bf16\" or \"f16\"",
                 shown(json_object_get(problem, "dtype"), v, sizeof v));
        return false;
    }
    x = json_object_get(problem, "max_rel_err");
    if (x && (!json_is_number(x) || !(json_number_value(x) >= 0) ||
              !isfinite(json_number_value(x)))) {
        snprintf(why, len, "problem.max_rel_err is %s, expected a finite number >= 0",
                 shown(x, v, sizeof v));
        return false;
    }
    const char *variant = json_string_value(json_object_get(e, "variant"));
    attn_variant_info info;
    if (!variant || !attn_variant_get(attn_variant_find(variant), &info)) {
        snprintf(why, len, "variant is %s, expected the name of a variant of this build",
                 shown(json_object_get(e, "variant"), v, sizeof v));
        return false;
    }
    json_t *params = json_object_get(e, "params");
    if (!json_is_object(params) || json_object_size(params) != (size_t)info.param_count) {
        snprintf(why, len, "params: expected an object with %s's %d parameter(s)", info.name,
                 info.param_count);
        return false;
    }
    for (int i = 0; i < info.param_count; i++) {
        const attn_param_info *pi = &info.params[i];
        x = json_object_get(params, pi->name);
        const json_int_t n = json_integer_value(x);
        if (!json_is_integer(x) || n < pi->min || n > pi->max || n % pi->multiple_of) {
            snprintf(why, len, "params.%s is %s, expected an integer in [%d, %d], a multiple "
                     "of %d (%s)", pi->name, shown(x, v, sizeof v), pi->min, pi->max,
                     pi->multiple_of, info.name);
            return false;
        }
    }
    static const struct { const char *name; bool optional, zero_ok; } numbers[] = {
        {"median_s", false, false}, {"gflops", false, true}, {"rel_err", true, true}};
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        x = json_object_get(e, numbers[i].name);
        if (!x && numbers[i].optional)
            continue;
        const double n = json_number_value(x);
        if (!json_is_number(x) || !isfinite(n) || n < 0 || (n == 0 && !numbers[i].zero_ok)) {
            snprintf(why, len, "%s is %s, expected a finite number %s 0", numbers[i].name,
                     shown(x, v, sizeof v), numbers[i].zero_ok ? ">=" : ">");
            return false;
        }
    }
    json_t *full = json_object_get(e, "full_precision");
    if (full && (!json_is_object(full) ||
                 attn_variant_find(json_string_value(json_object_get(full, "variant"))) < 0 ||
                 !(json_number_value(json_object_get(full, "median_s")) > 0))) {
        snprintf(why, len, "full_precision is %s, expected {\"variant\": a variant, "
                 "\"median_s\": a time > 0}", shown(full, v, sizeof v));
        return false;
    }
    if (!json_is_string(json_object_get(e, "date"))) {
        snprintf(why, len, "date is %s, expected a string",
                 shown(json_object_get(e, "date"), v, sizeof v));
        return false;
    }
    return true;
}

attn_status wisdom_check_file(const char *path, attn_error *err)
{
    json_t *root, *machine = wisdom_machine_json(), *build = wisdom_build_json();
    attn_status st = ATTN_OK;
    wisdom_read_status rs = load_root(path, &root, err);
    if (rs == WISDOM_READ_BAD)
        st = ATTN_ERR_IO;
    if (rs != WISDOM_READ_OK || !machine || !build)
        goto done;
    size_t foreign;
    const long index = our_section(root, machine, build, &foreign, NULL, 0);
    json_t *entries = json_object_get(
        json_array_get(json_object_get(root, "sections"), (size_t)index), "entries");
    if (index >= 0 && !json_is_array(entries)) {
        st = attn_fail(err, ATTN_ERR_INVALID, "wisdom file %s: sections[%ld].entries: not an "
                       "array", path, index);
        goto done;
    }
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        char why[200];
        if (!check_entry(e, why, sizeof why)) {
            st = attn_fail(err, ATTN_ERR_INVALID, "wisdom file %s: sections[%ld].entries[%zu]."
                           "%s", path, index, i, why);
            break;
        }
    }
done:
    json_decref(root);
    json_decref(machine);
    json_decref(build);
    return st;
}

