/* cli_history.c — `attnbench history`: every series (machine x benchmark) of the results store
 * over commits, its change points (E-Divisive means, changepoint.h), and a CI gate: exit 1 when
 * one of the latest commits starts a regression. --html writes a dashboard page.
 *
 * A series' points are its commits, in the order they were first measured (the date of their
 * first file: a CI fleet measures commits in the order it builds them); a commit measured in
 * several files is one point with all their samples, and a file without a commit is a point of
 * its own. A point's value is the median of its samples. */
#include "cli.h"
#include "cli_commands.h"

#include "atomic_file.h"
#include "changepoint.h"
#include "db.h"
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const cmd = "history";

typedef struct point {
    const char *commit, *date; /* into the query's rows */
    const char *file_id;       /* the first file's, the key of a point without a commit */
    double *samples;
    size_t count, capacity;
    double median;
} point;

typedef struct change {
    size_t index; /* first point after the change */
    double p, before, after, ratio, lo, hi;
    bool regression, latest;
} change;

typedef struct series {
    const char *machine, *benchmark;
    point *points;
    size_t count, capacity;
    change *changes;
    size_t change_count;
} series;

typedef struct history {
    series *items;
    size_t count, capacity;
    db_rows rows;
    size_t regressions_latest;
} history;

enum { H_DB, H_MACHINE, H_BENCHMARK, H_KIND, H_LAST, H_FORMAT, H_HTML, H_COMMIT_URL, H_GATE_LAST,
       H_SIGNIFICANCE, H_ALPHA, H_PERMUTATIONS, H_MIN_SIZE, H_HELP, H_COUNT };
static const cli_option history_options[H_COUNT] = {
    [H_DB] = {"db", "TARGET", "the store (default $ATTN_DB, else results/attnbench.sqlite)"},
    [H_MACHINE] = {"machine", "ID", "only this machine's series"},
    [H_BENCHMARK] = {"benchmark", "TEXT", "only benchmarks whose name contains TEXT"},
    [H_KIND] = {"kind", "KIND", "only files of this kind: run, sweep, tune, gbench, perf-ab"},
    [H_LAST] = {"last", "N", "only the latest N commits of each series (default: all)"},
    [H_FORMAT] = {"format", "text|json|csv", "output format (default text)"},
    [H_HTML] = {"html", "DIR", "also write DIR/history.html, the dashboard page"},
    [H_COMMIT_URL] = {"commit-url", "URL", "the page links commits: {commit} is replaced "
                                           "(https://github.com/o/r/commit/{commit})"},
    [H_GATE_LAST] = {"gate-last", "N", "exit 1 when a regression starts in the latest N "
                                       "commits of a series (default 5; 0: never)"},
    [H_SIGNIFICANCE] = {"significance", "P", "permutation p-value a change needs (default 0.01)"},
    [H_ALPHA] = {"alpha", "A", "exponent of E-Divisive's distances, in (0, 2] (default 1)"},
    [H_PERMUTATIONS] = {"permutations", "R", "permutations per test (default 499)"},
    [H_MIN_SIZE] = {"min-size", "N", "fewest commits on either side of a change (default 3)"},
    [H_HELP] = {"help", NULL, "this help"},
};

typedef struct history_config {
    const char *target, *machine, *benchmark, *kind, *html, *commit_url;
    cli_format format;
    int64_t gate_last, last;
    changepoint_options cp;
} history_config;

static void print_history_help(void)
{
    printf("usage: attnbench history [options]\n\n"
           "Each series of the results store (`attnbench db`) — one machine, one benchmark —\n"
           "over commits, in the order they were first measured; a commit's value is the\n"
           "median of all its samples. Change points: E-Divisive means (Matteson & James 2014,\n"
           "as MongoDB's CI uses it, Daly et al. ICPE 2020) on the log of those medians, each\n"
           "split kept when a permutation test finds it significant; then both sides again.\n"
           "Each change has the first commit after it, its size (median after / median\n"
           "before, of the commits between neighbouring changes) and a 95%% interval (Welch's\n"
           "t-test on the log medians of those two stretches).\n"
           "Exit status 1 when a regression (slower after) starts in one of the latest\n"
           "--gate-last commits of a series: the CI gate on history, beside `compare`'s A/B gate.\n"
           "\noptions:\n");
    cli_print_options(stdout, history_options, H_COUNT);
}

static void history_free(history *h)
{
    for (size_t i = 0; i < h->count; i++) {
        for (size_t k = 0; k < h->items[i].count; k++)
            free(h->items[i].points[k].samples);
        free(h->items[i].points);
        free(h->items[i].changes);
    }
    free(h->items);
    db_rows_free(&h->rows);
}

/* Room for one more element; false on OOM. */
static bool grow(void **items, size_t count, size_t *capacity, size_t size)
{
    if (count < *capacity)
        return true;
    const size_t grown = *capacity ? 2 * *capacity : 16;
    void *p = realloc(*items, grown * size);
    if (!p)
        return false;
    *items = p;
    *capacity = grown;
    return true;
}

/* The point of this row's commit (a file without one: its own point), added on first use. */
static point *point_of(series *s, const char *commit, const char *date, const char *file_id)
{
    const bool keyed = commit && *commit;
    for (size_t i = s->count; i-- > 0;) {
        point *p = &s->points[i];
        if (keyed ? !strcmp(p->commit, commit) : (!*p->commit && !strcmp(p->file_id, file_id)))
            return p;
    }
    void *points = s->points;
    const bool room = grow(&points, s->count, &s->capacity, sizeof *s->points);
    s->points = points;
    if (!room)
        return NULL;
    point *p = &s->points[s->count++];
    *p = (point){.commit = commit ? commit : "", .date = date, .file_id = file_id};
    return p;
}

static int load(db *d, const history_config *c, history *h)
{
    char sql[1024], err[DB_MESSAGE];
    const char *params[2];
    int n = 0;
    int used = snprintf(sql, sizeof sql,
                        "SELECT m.machine_key, b.name, bu.commit_sha, f.date, f.id, s.seconds "
                        "FROM samples s JOIN measurements me ON me.id = s.measurement_id "
                        "JOIN files f ON f.id = me.file_id "
                        "JOIN benchmarks b ON b.id = me.benchmark_id "
                        "JOIN machines m ON m.id = f.machine_id "
                        "JOIN builds bu ON bu.id = f.build_id WHERE 1 = 1");
    if (c->machine) {
        params[n++] = c->machine;
        used += snprintf(sql + used, sizeof sql - (size_t)used, " AND m.machine_key = $%d", n);
    }
    if (c->kind) {
        params[n++] = c->kind;
        used += snprintf(sql + used, sizeof sql - (size_t)used, " AND f.kind = $%d", n);
    }
    snprintf(sql + used, sizeof sql - (size_t)used,
             " ORDER BY m.machine_key, b.name, f.date, f.id, s.idx");
    if (db_query(d, sql, n, params, &h->rows, err, sizeof err) != DB_OK)
        return cli_error(cmd, "%s: %s", d->target, err);
    const db_rows *r = &h->rows;
    series *s = NULL;
    for (size_t i = 0; i < r->count; i++) {
        const char *machine = db_cell(r, i, 0), *benchmark = db_cell(r, i, 1);
        if (c->benchmark && !strstr(benchmark, c->benchmark))
            continue;
        if (!s || strcmp(s->machine, machine) || strcmp(s->benchmark, benchmark)) {
            void *items = h->items;
            const bool room = grow(&items, h->count, &h->capacity, sizeof *h->items);
            h->items = items;
            if (!room)
                return cli_error(cmd, "out of memory");
            s = &h->items[h->count++];
            *s = (series){.machine = machine, .benchmark = benchmark};
        }
        point *p = point_of(s, db_cell(r, i, 2), db_cell(r, i, 3), db_cell(r, i, 4));
        if (!p)
            return cli_error(cmd, "out of memory");
        void *samples = p->samples;
        const bool room = grow(&samples, p->count, &p->capacity, sizeof *p->samples);
        p->samples = samples;
        if (!room)
            return cli_error(cmd, "out of memory");
        p->samples[p->count++] = strtod(db_cell(r, i, 5), NULL);
    }
    return -1;
}

/* Keeps the latest `last` points of a series. */
static void keep_latest(series *s, int64_t last)
{
    if (last <= 0 || s->count <= (size_t)last)
        return;
    const size_t drop = s->count - (size_t)last;
    for (size_t i = 0; i < drop; i++)
        free(s->points[i].samples);
    memmove(s->points, s->points + drop, (size_t)last * sizeof *s->points);
    s->count = (size_t)last;
}

/* The change points of one series, with their sizes and intervals. */
static int analyse(series *s, const history_config *c, history *h)
{
    const size_t n = s->count;
    double *x = malloc((n + 1) * sizeof *x), *medians = malloc((n + 1) * sizeof *medians);
    changepoint *found = malloc((n + 1) * sizeof *found);
    s->changes = calloc(n + 1, sizeof *s->changes);
    if (!x || !medians || !found || !s->changes) {
        free(x);
        free(medians);
        free(found);
        return cli_error(cmd, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        s->points[i].median = stats_median(s->points[i].samples, s->points[i].count);
        medians[i] = s->points[i].median;
        x[i] = log(medians[i]);
    }
    size_t count = 0;
    int status = -1;
    if (!changepoint_edivisive(x, n, &c->cp, found, &count))
        status = cli_error(cmd, "out of memory");
    for (size_t k = 0; status < 0 && k < count; k++) {
        const size_t start = k ? found[k - 1].index : 0, at = found[k].index;
        const size_t end = k + 1 < count ? found[k + 1].index : n;
        change *ch = &s->changes[s->change_count++];
        ch->index = at;
        ch->p = found[k].p;
        ch->before = stats_median(medians + start, at - start);
        ch->after = stats_median(medians + at, end - at);
        ch->ratio = ch->after / ch->before;
        stats_welch w;
        const bool tested = stats_welch_log(medians + start, at - start, medians + at, end - at,
                                            0.95, &w);
        ch->lo = tested ? w.lo : NAN;
        ch->hi = tested ? w.hi : NAN;
        ch->regression = ch->ratio > 1;
        ch->latest = c->gate_last > 0 && at + (size_t)c->gate_last >= n;
        h->regressions_latest += ch->regression && ch->latest;
    }
    free(x);
    free(medians);
    free(found);
    return status;
}

static const char *short_commit(const point *p, char *buf, size_t len)
{
    if (*p->commit)
        snprintf(buf, len, "%.12s", p->commit);
    else
        snprintf(buf, len, "file %s", p->file_id);
    return buf;
}

static void print_text(const history *h, const history_config *c, const char *target)
{
    printf("history of %s: %zu series; change points by E-Divisive means (p <= %g, %d "
           "permutations, >= %zu commits a side)\n", target, h->count, c->cp.significance,
           c->cp.permutations, c->cp.min_size);
    for (size_t i = 0; i < h->count; i++) {
        const series *s = &h->items[i];
        const point *last = &s->points[s->count - 1];
        printf("\n%s  %s: %zu commits, latest %.4g ms", s->machine, s->benchmark, s->count,
               last->median * 1e3);
        if (s->count < 2 * c->cp.min_size)
            printf(" (too few commits to test)\n");
        else if (!s->change_count)
            printf(", no change point\n");
        else
            printf("\n");
        for (size_t k = 0; k < s->change_count; k++) {
            const change *ch = &s->changes[k];
            char commit[32];
            printf("  change at %s (commit %zu of %zu, %s): %.4g -> %.4g ms, %+.1f%% "
                   "[%+.1f%%, %+.1f%%], p = %.3g, %s%s\n",
                   short_commit(&s->points[ch->index], commit, sizeof commit), ch->index + 1,
                   s->count, s->points[ch->index].date, ch->before * 1e3, ch->after * 1e3,
                   100 * (ch->ratio - 1), 100 * (ch->lo - 1), 100 * (ch->hi - 1), ch->p,
                   ch->regression ? "regression" : "improvement",
                   ch->latest && ch->regression ? " IN THE LATEST COMMITS" : "");
        }
    }
    printf("\nregressions starting in the latest %lld commits: %zu\n", (long long)c->gate_last,
           h->regressions_latest);
}

static void csv_field(const char *s)
{
    /* RFC 4180: quoted when it holds a comma, a quote or a line break. */
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_csv(const history *h)
{
    printf("machine,benchmark,index,commit,date,median_s,samples,change,ratio,ci95_lo,ci95_hi,p\n");
    for (size_t i = 0; i < h->count; i++) {
        const series *s = &h->items[i];
        for (size_t k = 0; k < s->count; k++) {
            const point *p = &s->points[k];
            const change *ch = NULL;
            for (size_t j = 0; j < s->change_count; j++)
                if (s->changes[j].index == k)
                    ch = &s->changes[j];
            csv_field(s->machine);
            putchar(',');
            csv_field(s->benchmark);
            printf(",%zu,", k);
            csv_field(p->commit);
            putchar(',');
            csv_field(p->date);
            printf(",%.9g,%zu,", p->median, p->count);
            if (ch)
                printf("%s,%.6g,%.6g,%.6g,%.4g\n", ch->regression ? "regression" : "improvement",
                       ch->ratio, ch->lo, ch->hi, ch->p);
            else
                printf(",,,,\n");
        }
    }
}

static json_t *history_json(const history *h, const history_config *c, const char *target)
{
    json_t *all = json_array();
    for (size_t i = 0; all && i < h->count; i++) {
        const series *s = &h->items[i];
        json_t *points = json_array(), *changes = json_array();
        for (size_t k = 0; points && k < s->count; k++) {
            const point *p = &s->points[k];
            json_array_append_new(points, json_pack("{s:s, s:s, s:o, s:o, s:I}", "commit",
                                                    p->commit, "date", p->date, "file",
                                                    *p->commit ? json_null()
                                                               : json_string(p->file_id),
                                                    "median_s", cli_json_real(p->median),
                                                    "samples", (json_int_t)p->count));
        }
        for (size_t k = 0; changes && k < s->change_count; k++) {
            const change *ch = &s->changes[k];
            json_array_append_new(
                changes,
                json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:[o, o], s:f, s:s, s:b}", "index",
                          (json_int_t)ch->index, "commit", s->points[ch->index].commit, "date",
                          s->points[ch->index].date, "before_median_s", cli_json_real(ch->before),
                          "after_median_s", cli_json_real(ch->after), "ratio",
                          cli_json_real(ch->ratio), "ci95",
                          cli_json_real(ch->lo), cli_json_real(ch->hi), "p", ch->p, "direction",
                          ch->regression ? "regression" : "improvement", "in_latest",
                          ch->latest));
        }
        json_array_append_new(all, json_pack("{s:s, s:s, s:o, s:o}", "machine", s->machine,
                                             "benchmark", s->benchmark, "points", points,
                                             "change_points", changes));
    }
    return json_pack("{s:s, s:{s:s, s:f, s:i, s:I, s:s}, s:I, s:I, s:o}", "store", target,
                     "method", "name", "E-Divisive means (Matteson & James 2014), alpha = 1",
                     "significance", c->cp.significance, "permutations", c->cp.permutations,
                     "min_size", (json_int_t)c->cp.min_size, "values",
                     "per commit: median of its samples; the test on their logs", "gate_last",
                     (json_int_t)c->gate_last, "regressions_in_latest",
                     (json_int_t)h->regressions_latest, "series", all);
}

/* The dashboard: one self-contained page, the history as JSON inside it, and a script that
 * draws each series as an SVG plot (points linked to their commits, change points marked).
 * No network, no server: it opens from disk. */
static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>attnbench history</title>\n<style>\n"
    "body{font-family:sans-serif;margin:1em 2em;color:#222}\n"
    "section{margin:1.5em 0}h2{font-size:1em;margin:0.2em 0}\n"
    ".note{color:#555;font-size:0.9em}\n"
    "svg{border:1px solid #ccc;background:#fff}\n"
    ".series-line{fill:none;stroke:#1f77b4;stroke-width:1.5}\n"
    ".point{fill:#1f77b4}.change-point{stroke:#d62728;stroke-width:2;stroke-dasharray:4 3}\n"
    ".change-point.improvement{stroke:#2ca02c}\n"
    ".axis{stroke:#888}.label{font-size:11px;fill:#444}\n"
    "</style></head><body>\n<h1>attnbench history</h1>\n"
    "<p class=\"note\" id=\"summary\"></p>\n<div id=\"plots\"></div>\n"
    "<script type=\"application/json\" id=\"history-data\">";
static const char page_tail[] =
    "</script>\n<script>\n"
    "(function () {\n"
    "  const data = JSON.parse(document.getElementById('history-data').textContent);\n"
    "  const NS = 'http://www.w3.org/2000/svg';\n"
    "  const W = 760, H = 240, L = 70, R = 20, T = 15, B = 30;\n"
    "  function el(name, attrs, parent) {\n"
    "    const e = document.createElementNS(NS, name);\n"
    "    for (const k in attrs) e.setAttribute(k, attrs[k]);\n"
    "    parent.appendChild(e); return e;\n"
    "  }\n"
    "  document.getElementById('summary').textContent = data.series.length + ' series; ' +\n"
    "    'change points: ' + data.method.name + ', p <= ' + data.method.significance +\n"
    "    '; regressions in the latest ' + data.gate_last + ' commits: ' +\n"
    "    data.regressions_in_latest;\n"
    "  const plots = document.getElementById('plots');\n"
    "  data.series.forEach(function (s) {\n"
    "    const sec = document.createElement('section');\n"
    "    sec.className = 'series'; sec.dataset.machine = s.machine;\n"
    "    sec.dataset.benchmark = s.benchmark; plots.appendChild(sec);\n"
    "    const h = document.createElement('h2');\n"
    "    h.textContent = s.machine + '  ' + s.benchmark; sec.appendChild(h);\n"
    "    const svg = el('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H}, sec);\n"
    "    const ms = s.points.map(function (p) { return p.median_s * 1e3; });\n"
    "    let lo = Math.min.apply(null, ms), hi = Math.max.apply(null, ms);\n"
    "    if (hi === lo) { hi = lo * 1.01 + 1e-9; lo = lo * 0.99; }\n"
    "    const n = ms.length;\n"
    "    const x = function (i) { return L + (n > 1 ? i * (W - L - R) / (n - 1) : 0); };\n"
    "    const y = function (v) { return T + (hi - v) * (H - T - B) / (hi - lo); };\n"
    "    el('line', {class: 'axis', x1: L, y1: T, x2: L, y2: H - B}, svg);\n"
    "    el('line', {class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B}, svg);\n"
    "    [lo, hi].forEach(function (v) {\n"
    "      el('text', {class: 'label', x: 4, y: y(v) + 4}, svg).textContent =\n"
    "        v.toPrecision(4) + ' ms';\n"
    "    });\n"
    "    el('text', {class: 'label', x: L, y: H - 8}, svg).textContent =\n"
    "      'commits, in the order measured (' + n + ')';\n"
    "    el('polyline', {class: 'series-line', points: ms.map(function (v, i) {\n"
    "      return x(i) + ',' + y(v); }).join(' ')}, svg);\n"
    "    s.points.forEach(function (p, i) {\n"
    "      let parent = svg;\n"
    "      if (data.commit_url && p.commit) {\n"
    "        parent = el('a', {href: data.commit_url.split('{commit}').join(p.commit)}, svg);\n"
    "      }\n"
    "      const c = el('circle', {class: 'point', cx: x(i), cy: y(ms[i]), r: 3,\n"
    "                              'data-index': i, 'data-commit': p.commit,\n"
    "                              'data-median-s': p.median_s}, parent);\n"
    "      el('title', {}, c).textContent = (p.commit || 'file ' + p.file).slice(0, 12) +\n"
    "        '  ' + p.date + '  ' + ms[i].toPrecision(4) + ' ms (' + p.samples + ' samples)';\n"
    "    });\n"
    "    s.change_points.forEach(function (c) {\n"
    "      const cx = (x(c.index - 1) + x(c.index)) / 2;\n"
    "      const m = el('line', {class: 'change-point ' + c.direction, x1: cx, y1: T, x2: cx,\n"
    "                            y2: H - B, 'data-index': c.index, 'data-commit': c.commit,\n"
    "                            'data-ratio': c.ratio}, svg);\n"
    "      el('title', {}, m).textContent = c.direction + ' at ' + c.commit.slice(0, 12) +\n"
    "        ': ' + ((c.ratio - 1) * 100).toFixed(1) + '%, p = ' + c.p;\n"
    "    });\n"
    "  });\n"
    "  document.body.dataset.rendered = 'true';\n"
    "})();\n</script>\n</body></html>\n";

static int write_html(const history *h, const history_config *c, const char *target)
{
    json_t *doc = history_json(h, c, target);
    if (doc && c->commit_url)
        json_object_set_new(doc, "commit_url", json_string(c->commit_url));
    char *json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    /* Every "<" (they are all inside strings) as \u003c: nothing in a benchmark's or a
     * commit's name can end the script element early, or open a comment in it. */
    size_t angles = 0;
    for (const char *c = json; c && (c = strchr(c, '<')); c++)
        angles++;
    char *text = json ? malloc(strlen(json) + 5 * angles + 1) : NULL;
    if (!text) {
        free(json);
        return cli_error(cmd, "out of memory");
    }
    char *o = text;
    for (const char *c = json; *c; c++) {
        if (*c == '<') {
            memcpy(o, "\\u003c", 6);
            o += 6;
        } else {
            *o++ = *c;
        }
    }
    *o = '\0';
    free(json);
    char path[4096];
    int status = -1;
    if (snprintf(path, sizeof path, "%s/history.html", c->html) >= (int)sizeof path)
        status = cli_error(cmd, "--html: path too long");
    else if (mkdir(c->html, 0777) != 0 && errno != EEXIST)
        status = cli_error(cmd, "cannot create %s: %s", c->html, strerror(errno));
    if (status < 0) {
        const attn_file_part parts[3] = {
            {page_head, sizeof page_head - 1}, {text, strlen(text)}, {page_tail, sizeof page_tail - 1}};
        attn_error err;
        if (attn_file_write(path, parts, 3, ATTN_FILE_REPLACE, &err) != ATTN_OK)
            status = cli_error(cmd, "%s", err.message);
        else
            fprintf(stderr, "history: wrote %s\n", path);
    }
    free(text);
    return status;
}

static int parse_options(int argc, char **argv, history_config *c)
{
    *c = (history_config){.format = CLI_FORMAT_TEXT, .gate_last = 5,
                          .cp = {.alpha = 1, .significance = 0.01, .permutations = 499, .min_size = 3,
                                 .seed = 0x68697374u}};
    int o;
    const char *value;
    int64_t number;
    while ((o = cli_next_option(cmd, argc, argv, history_options, H_COUNT, &value)) !=
           CLI_OPTION_END) {
        switch (o) {
        case H_DB: c->target = value; break;
        case H_MACHINE: c->machine = value; break;
        case H_BENCHMARK: c->benchmark = value; break;
        case H_KIND: c->kind = value; break;
        case H_HTML: c->html = value; break;
        case H_COMMIT_URL: c->commit_url = value; break;
        case H_FORMAT:
            if (!cli_parse_format(cmd, value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON |
                                                  1u << CLI_FORMAT_CSV, &c->format))
                return CLI_EXIT_USAGE;
            break;
        case H_LAST:
            if (!cli_parse_int64(cmd, "last", value, 1, INT64_MAX, &c->last))
                return CLI_EXIT_USAGE;
            break;
        case H_GATE_LAST:
            if (!cli_parse_int64(cmd, "gate-last", value, 0, 1000000, &c->gate_last))
                return CLI_EXIT_USAGE;
            break;
        case H_SIGNIFICANCE: {
            char *end;
            errno = 0;
            c->cp.significance = strtod(value, &end);
            if (errno || end == value || *end || !(c->cp.significance > 0) ||
                c->cp.significance >= 1)
                return cli_error(cmd, "--significance: '%s' is not a probability in (0, 1)",
                                 value);
            break;
        }
        case H_ALPHA: {
            char *end;
            errno = 0;
            c->cp.alpha = strtod(value, &end);
            if (errno || end == value || *end || !(c->cp.alpha > 0) || c->cp.alpha > 2)
                return cli_error(cmd, "--alpha: '%s' is not in (0, 2]", value);
            break;
        }
        case H_PERMUTATIONS:
            if (!cli_parse_int64(cmd, "permutations", value, 19, 100000, &number))
                return CLI_EXIT_USAGE;
            c->cp.permutations = (int)number;
            break;
        case H_MIN_SIZE:
            if (!cli_parse_int64(cmd, "min-size", value, 2, 100000, &number))
                return CLI_EXIT_USAGE;
            c->cp.min_size = (size_t)number;
            break;
        case H_HELP: print_history_help(); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    return -1;
}

int cli_history(int argc, char **argv)
{
    history_config c;
    int status = parse_options(argc, argv, &c);
    if (status >= 0)
        return status;
    db d;
    char err[DB_MESSAGE];
    if (!db_open(&d, db_default_target(c.target), false, err, sizeof err))
        return cli_error(cmd, "%s", err);
    history h = {0};
    status = load(&d, &c, &h);
    for (size_t i = 0; status < 0 && i < h.count; i++) {
        keep_latest(&h.items[i], c.last);
        status = analyse(&h.items[i], &c, &h);
    }
    if (status < 0 && c.html)
        status = write_html(&h, &c, d.target);
    if (status < 0) {
        if (c.format == CLI_FORMAT_JSON) {
            json_t *doc = history_json(&h, &c, d.target);
            if (!doc || !cli_json_print(doc))
                status = cli_error(cmd, "out of memory");
            json_decref(doc);
        } else if (c.format == CLI_FORMAT_CSV) {
            print_csv(&h);
        } else {
            print_text(&h, &c, d.target);
        }
    }
    if (status < 0)
        status = h.regressions_latest ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    history_free(&h);
    db_close(&d);
    return status;
}
