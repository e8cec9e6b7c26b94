/* wisdom_set.c — problem classes and the sets of wisdom entries indexed by them (tuner.h): what
 * the wisdom file (wisdom.c) and its reader (wisdom_read.c) hold in memory. */
#include "tuner.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- problem classes ---------------------------------------------------------------------- */

/* The canonical text of p's options (tuner_class.options), and of its K/V type when quantized. */
static void options_text(const attn_problem *p, char *buf, size_t len)
{
    int n = 0;
    buf[0] = '\0';
    if (p->window_left >= 0 || p->window_right >= 0)
        n += snprintf(buf + n, len - (size_t)n, "window=%lld,%lld", (long long)p->window_left,
                      (long long)p->window_right);
    if (n >= 0 && (size_t)n < len && p->softcap != 0.0f)
        n += snprintf(buf + n, len - (size_t)n, "%ssoftcap=%.9g", n ? " " : "",
                      (double)p->softcap);
    if (n >= 0 && (size_t)n < len && p->alibi_slopes)
        n += snprintf(buf + n, len - (size_t)n, "%salibi", n ? " " : "");
    if (n >= 0 && (size_t)n < len && p->sinks)
        n += snprintf(buf + n, len - (size_t)n, "%ssinks", n ? " " : "");
    /* quantized K/V: their own class ("kv_dtype=int8"), never matched by float K/V wisdom */
    if (n >= 0 && (size_t)n < len && (p->kv_dtype == ATTN_INT8 || p->kv_dtype == ATTN_Q4))
        snprintf(buf + n, len - (size_t)n, "%skv_dtype=%s", n ? " " : "",
                 attn_dtype_name(p->kv_dtype));
    if (n >= 0 && (size_t)n < len && p->page_size) /* paged K/V: a class of its own */
        snprintf(buf + n, len - (size_t)n, "%spaged=%lld", n ? " " : "", (long long)p->page_size);
}

void tuner_class_of(const attn_problem *p, int threads, double max_rel_err, tuner_class *c)
{
    *c = (tuner_class){
        .batch = p->batch, .heads_q = p->heads_q, .heads_kv = p->heads_kv, .len_q = p->len_q,
        .len_kv = p->len_kv, .head_dim = p->head_dim, .causal = p->causal,
        .mask = p->mask != NULL, .kv_lens = p->kv_lens != NULL, .threads = threads,
        .dtype = p->dtype, .max_rel_err = max_rel_err,
    };
    options_text(p, c->options, sizeof c->options);
}

bool tuner_class_equal(const tuner_class *a, const tuner_class *b)
{
    return a->batch == b->batch && a->heads_q == b->heads_q && a->heads_kv == b->heads_kv &&
           a->len_q == b->len_q && a->len_kv == b->len_kv && a->head_dim == b->head_dim &&
           a->causal == b->causal && a->mask == b->mask && a->kv_lens == b->kv_lens &&
           a->threads == b->threads && a->dtype == b->dtype && a->max_rel_err == b->max_rel_err &&
           !strcmp(a->options, b->options);
}

void tuner_class_format(const tuner_class *c, char *buf, size_t len)
{
    int n = snprintf(buf, len, "B=%lld Hq=%lld Hkv=%lld Lq=%lld Lk=%lld d=%lld%s%s%s threads=%d",
                     (long long)c->batch, (long long)c->heads_q, (long long)c->heads_kv,
                     (long long)c->len_q, (long long)c->len_kv, (long long)c->head_dim,
                     c->causal ? " causal" : "", c->mask ? " mask" : "",
                     c->kv_lens ? " kv_lens" : "", c->threads);
    if (n > 0 && (size_t)n < len && c->dtype != ATTN_F32)
        n += snprintf(buf + n, len - (size_t)n, " %s", attn_dtype_name(c->dtype));
    if (n > 0 && (size_t)n < len && c->options[0])
        n += snprintf(buf + n, len - (size_t)n, " %s", c->options);
    if (n > 0 && (size_t)n < len && c->max_rel_err > 0)
        snprintf(buf + n, len - (size_t)n, " max_rel_err=%g", c->max_rel_err);
}

void tuner_wisdom_entry(const attn_problem *p, const tuner_class *cls, const tuner_result *r,
                        wisdom_entry *e)
{
    const tuner_candidate *best = &r->candidates[r->best];
    attn_variant_info info;
    attn_variant_get(best->config.variant, &info);
    *e = (wisdom_entry){.cls = *cls, .config = best->config,
                        .median_seconds = best->timing.median, .rel_err = best->rel_err,
                        .full_variant = -1};
    e->gflops = attn_problem_flops(p) / e->median_seconds * 1e-9;
    if (info.compute_dtype != ATTN_F32 && r->best_full >= 0) {
        e->full_variant = r->candidates[r->best_full].config.variant;
        e->full_median_seconds = r->candidates[r->best_full].timing.median;
    }
    wisdom_now(e->date, sizeof e->date);
    memcpy(e->last_used, e->date, sizeof e->last_used);
}

/* ---- an index of problem classes ---------------------------------------------------------- */

/* FNV-1a 64 over the class's fields, one at a time (no padding bytes hashed), mixed. */
static uint64_t class_hash(const tuner_class *c)
{
    const double bound = c->max_rel_err == 0 ? 0.0 : c->max_rel_err; /* -0 equals 0 */
    uint64_t bound_bits;
    memcpy(&bound_bits, &bound, sizeof bound_bits);
    const uint64_t fields[] = {(uint64_t)c->batch, (uint64_t)c->heads_q, (uint64_t)c->heads_kv,
                               (uint64_t)c->len_q, (uint64_t)c->len_kv, (uint64_t)c->head_dim,
                               (uint64_t)c->causal | (uint64_t)c->mask << 1 |
                                   (uint64_t)c->kv_lens << 2,
                               (uint64_t)c->threads, (uint64_t)c->dtype, bound_bits};
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        for (int b = 0; b < 64; b += 8)
            h = (h ^ ((fields[i] >> b) & 0xff)) * 0x100000001b3ull;
    for (const char *t = c->options; *t; t++)
        h = (h ^ (unsigned char)*t) * 0x100000001b3ull;
    /* FNV's low bits (what the table masks) never see its high bits: mix them down
     * (MurmurHash3's finaliser). */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* The slot of class c in an open-addressing table of `count` slots (a power of two) whose
 * slots hold item index + 1 (0: empty): the one holding c, or the empty one where it would go.
 * The items are `stride` bytes apart and each begins with its tuner_class. */
size_t *wisdom_class_slot(size_t *slots, size_t count, const tuner_class *c, const void *items,
                          size_t stride)
{
    size_t i = (size_t)class_hash(c) & (count - 1);
    while (slots[i] &&
           !tuner_class_equal((const tuner_class *)((const char *)items +
                                                    (slots[i] - 1) * stride), c))
        i = (i + 1) & (count - 1); /* linear probing; the table is never more than half full */
    return &slots[i];
}

/* A table for n items, at most half full: its slot count (a power of two), or 0 on overflow. */
size_t wisdom_slots_for(size_t n)
{
    size_t count = 16;
    while (count / 2 < n + 1) {
        if (count > SIZE_MAX / 4)
            return 0;
        count *= 2;
    }
    return count;
}

/* ---- sets of entries ---------------------------------------------------------------------- */

/* Rebuilds s's index for at least `n` entries. */
static attn_status reindex(wisdom_set *s, size_t n)
{
    const size_t count = wisdom_slots_for(n);
    size_t *slots = count ? calloc(count, sizeof *slots) : NULL;
    if (!slots)
        return ATTN_ERR_NOMEM;
    for (size_t i = 0; i < s->count; i++) {
        size_t *slot = wisdom_class_slot(slots, count, &s->entries[i].cls, s->entries,
                                         sizeof *s->entries);
        *slot = i + 1; /* a duplicate (a hand-built set) keeps its last entry */
    }
    free(s->slots);
    s->slots = slots;
    s->slot_count = count;
    return ATTN_OK;
}

attn_status wisdom_set_put(wisdom_set *s, const wisdom_entry *e)
{
    if (s->slot_count / 2 < s->count + 1 && reindex(s, 2 * s->count + 16) != ATTN_OK)
        return ATTN_ERR_NOMEM;
    size_t *slot = wisdom_class_slot(s->slots, s->slot_count, &e->cls, s->entries,
                                     sizeof *s->entries);
    if (*slot) {
        s->entries[*slot - 1] = *e;
        return ATTN_OK;
    }
    if (s->count == s->capacity) {
        size_t cap = s->capacity ? 2 * s->capacity : 16;
        wisdom_entry *grown = realloc(s->entries, cap * sizeof *grown);
        if (!grown)
            return ATTN_ERR_NOMEM;
        s->entries = grown;
        s->capacity = cap;
    }
    s->entries[s->count++] = *e;
    *slot = s->count;
    return ATTN_OK;
}

const wisdom_entry *wisdom_set_find(const wisdom_set *s, const tuner_class *c)
{
    if (!s->slot_count) { /* a set built by hand */
        for (size_t i = 0; i < s->count; i++)
            if (tuner_class_equal(&s->entries[i].cls, c))
                return &s->entries[i];
        return NULL;
    }
    const size_t slot = *wisdom_class_slot(s->slots, s->slot_count, c, s->entries,
                                           sizeof *s->entries);
    return slot ? &s->entries[slot - 1] : NULL;
}

void wisdom_set_free(wisdom_set *s)
{
    free(s->entries);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

