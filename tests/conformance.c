/* conformance.c — every variant against the float64 oracle, in the spirit of dav1d's checkasm.
 *
 * For each registered variant this CPU supports (read from the registry, never by name) it runs
 * seeded random problems drawn from the shape tables below, named edge cases and invalid
 * problems — with default or random parameters and 1 to 4 threads — in every input type the
 * variant declares (attn_variant_info.dtypes: f32, bf16, f16). A case is generated in float32;
 * for a half type Q, K and V (not the mask) are rounded to it with attn_convert, and the oracle
 * runs on the widened rounded values — further rounded to bf16 for a variant whose
 * compute_dtype is bf16 — so the declared tolerance measures the algorithm, not the input
 * rounding (see half_every for which cases run in which type, and LOGIT_ROUNDINGS for the
 * bf16-compute floor). Some half runs ask for a half output (out_dtype = dtype), widened before
 * the comparison, with the output's unit roundoff added to the tolerance
 * (attn_variant_tolerance). It checks:
 *   - the error against attn_oracle() is within the variant's declared tolerance (or the floor
 *     that the logits' size and cancellation in P·V put under it, see LOGIT_ROUNDINGS), NaN
 *     appears exactly where the oracle has NaN, and a row that attends to no key is exactly 0;
 *   - nothing is written outside the output's elements: the output buffer has guard bands
 *     before and after it and, in padded layouts, gaps between rows, all holding a sentinel;
 *     and every output element is written;
 *   - nothing outside the inputs is read: inputs are allocated with their exact extent (reads
 *     past the end fault under ASan), gaps in padded inputs hold NaN (which would reach the
 *     output), and the inputs are unchanged after the call;
 *   - one run in eight is repeated and must give the same bits;
 *   - a signal (SIGILL, SIGSEGV, SIGBUS, SIGFPE) during a call is a FAILED line, not a crash;
 *   - on x86, the call returns with the upper halves of ymm/zmm0-15 unused (XGETBV(1)): legacy
 *     SSE code after it would otherwise run several times slower.
 * Invalid problems must be refused with the right status and a message, the output untouched;
 * a variant this CPU cannot run (or that ATTN_DISABLE_ISA turns off) must be refused with
 * ATTN_ERR_UNSUPPORTED, and so must an input type it does not declare, with a message naming the
 * types.
 *
 * The seed is printed first; --seed N replays a run exactly (every random case draws from its
 * own generator seeded by the run seed and its index, so --variant, --dtype, --case and --edge
 * do not change it); every FAILED line ends with the command that replays it. At the end, one
 * line per variant ("variant NAME: N cases passed, M failed", which scripts grep) and under it
 * one line per input type. --selftest-broken corrupts results on purpose (float32 and half
 * outputs) and passes only if every corruption is caught. --list-isa-masks prints the ISA masks
 * worth a run on this CPU (see below; tests/conformance_masks.py runs them).
 *
 * This file is the runner; conformance.h maps the others (cases, drawn cases, edge cases,
 * invalid problems, guarded runs). */
#include "conformance.h"
#include "cpu.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the runner -------------------------------------------------------------------------- */

bool variant_reads(const attn_variant_info *info, attn_dtype t)
{
    if (t == ATTN_INT8 || t == ATTN_Q4) /* quantized K/V, float32 Q */
        return (info->kv_dtypes & (1u << t)) && (info->dtypes & 1u);
    return (info->dtypes & (1u << t)) != 0;
}

/* "replay: conformance --seed N [--reduced] [--variant NAME] [--dtype T] [--case I | --edge E]"
 * (case_index: a random case, or -1; edge_index: a named case, or -1). */
void replay_hint(const runner *rn, const char *variant, const char *dtype, int case_index,
                 int edge_index, char *buf, size_t len)
{
    int used = snprintf(buf, len, "replay: conformance --seed %" PRIu64 "%s", rn->seed,
                        rn->shapes == &shape_sets[1] ? " --reduced" : "");
    if (variant && used >= 0 && (size_t)used < len)
        used += snprintf(buf + used, len - (size_t)used, " --variant %s", variant);
    if (dtype && used >= 0 && (size_t)used < len)
        used += snprintf(buf + used, len - (size_t)used, " --dtype %s", dtype);
    if (case_index >= 0 && used >= 0 && (size_t)used < len)
        snprintf(buf + used, len - (size_t)used, " --case %d", case_index);
    if (edge_index >= 0 && used >= 0 && (size_t)used < len)
        snprintf(buf + used, len - (size_t)used, " --edge %d", edge_index);
}

void record(runner *rn, variant_state *vs, bool ok)
{
    if (vs) {
        vs->passed += ok;
        vs->failed += !ok;
    } else {
        rn->api_passed += ok;
        rn->api_failed += !ok;
    }
}

static void report_case(runner *rn, variant_state *vs, const test_case *c, const typed_case *tc,
                        const run_result *res, const char *replay)
{
    record(rn, vs, res->ok);
    vs->dtype_passed[typed_label(tc)] += res->ok;
    vs->dtype_failed[typed_label(tc)] += !res->ok;
    vs->dtype_half_out[typed_label(tc)] += tc->p.out_dtype != ATTN_F32;
    if (res->ok && !rn->verbose)
        return;
    const reference *ref = &tc->ref[reference_of(&vs->info)];
    char problem[768], why[512];
    describe_case(c, &tc->p, problem, sizeof problem);
    if (res->message[0]) {
        snprintf(why, sizeof why, "%s", res->message);
    } else {
        int n = snprintf(why, sizeof why,
                         "max_abs=%.3g max_rel=%.3g tol=%.3g (S=%.3g M=%.3g |O*|=%.3g)"
                         " nan_mismatch=%" PRId64 " guard_writes=%" PRId64
                         " unwritten=%" PRId64 " empty_row_nonzero=%" PRId64, res->m.max_abs,
                         res->m.max_rel, res->tolerance, ref->logit_max, ref->abs_max,
                         ref->ref_max, res->m.nan_mismatch, res->guard_bad, res->unwritten,
                         res->empty_nonzero);
        if (reference_of(&vs->info) == REF_BF16 && n >= 0 && (size_t)n < sizeof why)
            n += snprintf(why + n, sizeof why - (size_t)n, " bf16_compute(W=%.3g)",
                          ref->spread_max);
        if (res->guard_bad && n >= 0 && (size_t)n < sizeof why)
            n += snprintf(why + n, sizeof why - (size_t)n, " first_guard_write=o[%" PRId64 "]",
                          res->guard_first);
        if (res->repeated && n >= 0 && (size_t)n < sizeof why)
            n += snprintf(why + n, sizeof why - (size_t)n, " repeat_differs=%" PRId64,
                          res->repeat_differs);
        if (res->inputs_changed && n >= 0 && (size_t)n < sizeof why)
            snprintf(why + n, sizeof why - (size_t)n, " INPUTS CHANGED");
    }
    if (!res->ok) {
        printf("FAILED %s [%s] %s params=%s: %s; %s\n", vs->info.name, c->name, problem,
               res->params, why, replay);
    } else {
        printf("ok %s [%s] %s params=%s: max_abs=%.3g max_rel=%.3g tol=%.3g (S=%.3g M=%.3g "
               "|O*|=%.3g)%s\n", vs->info.name, c->name, problem, res->params, res->m.max_abs,
               res->m.max_rel, res->tolerance, ref->logit_max, ref->abs_max, ref->ref_max,
               res->repeated ? " repeated: same bits" : "");
    }
}

/* Runs every selected supported variant that reads the case's type on it; threads < 0: drawn
 * per run. */
void run_on_selected(runner *rn, const test_case *c, typed_case *tc, int threads)
{
    for (int i = 0; i < rn->nv; i++) {
        variant_state *vs = &rn->vs[i];
        if (!vs->selected || !vs->info.supported || !variant_reads(&vs->info, typed_label(tc)))
            continue;
        char replay[200];
        replay_hint(rn, vs->info.name, attn_dtype_name(typed_label(tc)), c->index, c->edge, replay,
                    sizeof replay);
        run_result res;
        run_case(&vs->info, c, tc, threads, CORRUPT_NONE, replay, &res);
        report_case(rn, vs, c, tc, &res, replay);
    }
}

/* ---- ISA masks ------------------------------------------------------------------------- */

/* checkasm runs its suite once per CPU mask; here the masks come from the library's ISA table,
 * not a hand list: every subset of the ISA names this CPU has (attn_isa_names, less what
 * ATTN_DISABLE_ISA already turned off), of which only one per set of variants it leaves
 * supported is worth a run (the variants' code does not depend on the mask; what changes is
 * which of them are refused). The representative of a set is its first subset with the fewest
 * names. Prints one line per set: the ATTN_DISABLE_ISA value ("-" for nothing, always first),
 * a tab, and the selected variants left supported, comma-separated. */
static int list_isa_masks(const runner *rn)
{
    const uint32_t isa = attn_cpu_get()->isa;
    int names[32], n = 0;
    for (int i = 0; i < attn_isa_name_count && n < COUNT(names); i++)
        if (attn_isa_names[i].bit & isa)
            names[n++] = i;
    uint32_t *needs = checked_alloc((size_t)rn->nv, sizeof *needs);
    size_t set_len = 1;
    for (int v = 0; v < rn->nv; v++) {
        char why[200];
        if (!attn_isa_parse_disable(rn->vs[v].isa, &needs[v], why, sizeof why)) {
            fprintf(stderr, "conformance: variant %s: %s\n", rn->vs[v].info.name, why);
            return 2;
        }
        set_len += strlen(rn->vs[v].info.name) + 1;
    }
    /* The sets seen so far, as their lines' variant lists. */
    char **seen = NULL;
    int seen_count = 0;
    for (int size = 0; size <= n; size++)
        for (uint64_t subset = 0; subset < (UINT64_C(1) << n); subset++) {
            if (__builtin_popcountll(subset) != size)
                continue;
            uint32_t off = 0;
            char mask[256] = "";
            for (int b = 0; b < n; b++)
                if (subset >> b & 1) {
                    off |= attn_isa_names[names[b]].bit;
                    snprintf(mask + strlen(mask), sizeof mask - strlen(mask), "%s%s",
                             mask[0] ? "," : "", attn_isa_names[names[b]].name);
                }
            char *set = checked_alloc(set_len, 1);
            for (int v = 0; v < rn->nv; v++)
                if (rn->vs[v].selected && rn->vs[v].info.supported && !(needs[v] & off))
                    snprintf(set + strlen(set), set_len - strlen(set), "%s%s", set[0] ? "," : "",
                             rn->vs[v].info.name);
            bool known = false;
            for (int k = 0; k < seen_count && !known; k++)
                known = !strcmp(seen[k], set);
            if (known) {
                free(set);
                continue;
            }
            char **grown = realloc(seen, (size_t)(seen_count + 1) * sizeof *seen);
            if (!grown) {
                fprintf(stderr, "conformance: out of memory\n");
                exit(2);
            }
            seen = grown;
            seen[seen_count++] = set;
            printf("%s\t%s\n", mask[0] ? mask : "-", set);
        }
    for (int k = 0; k < seen_count; k++)
        free(seen[k]);
    free(seen);
    free(needs);
    return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: conformance [options]\n"
            "  --seed N            replay a run (default: a new seed, printed first)\n"
            "  --variant NAME      test only that variant (repeatable: no; one name)\n"
            "  --cases N           number of random cases (default: %d full, %d reduced)\n"
            "  --case N            run only random case N (with --seed, to replay a failure)\n"
            "  --edge N            run only named case N (likewise)\n"
            "  --dtype T           input types: f32, bf16, f16, int8, q4 (K/V) or all (default\n"
            "                      all: bf16 on every %dth random case, f16 on every %dth, int8\n"
            "                      on every 3rd, q4 where head_dim %% 32 == 0; all when named)\n"
            "  --reduced           the reduced shape set (sanitizer builds)\n"
            "  --selftest-broken   corrupt results on purpose; pass only if all are caught\n"
            "  --list-isa-masks    print the ATTN_DISABLE_ISA values worth a run here\n"
            "  -v                  print every case\n",
            shape_sets[0].cases, shape_sets[1].cases, half_every[ATTN_BF16],
            half_every[ATTN_F16]);
}

/* Accepts "--name VALUE" and "--name=VALUE"; returns the value or NULL. */
static const char *option_value(const char *name, int argc, char **argv, int *i)
{
    const size_t n = strlen(name);
    if (strncmp(argv[*i], name, n))
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    const long long x = strtoll(s, &end, 10);
    if (!*s || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

int main(int argc, char **argv)
{
    runner rn = {.only_case = -1, .only_edge = -1, .shapes = &shape_sets[0], .cases = -1,
                 .dtypes = (1u << ATTN_KV_DTYPE_COUNT) - 1};
    bool seed_given = false, self = false, list_masks = false;
    for (int i = 1; i < argc; i++) {
        const char *val;
        int64_t x;
        if ((val = option_value("--seed", argc, argv, &i))) {
            char *end;
            rn.seed = strtoull(val, &end, 10);
            if (!*val || *end) {
                fprintf(stderr, "conformance: bad seed '%s'\n", val);
                return 2;
            }
            seed_given = true;
        } else if ((val = option_value("--variant", argc, argv, &i))) {
            rn.filter = val;
        } else if ((val = option_value("--dtype", argc, argv, &i))) {
            attn_dtype t;
            if (!strcmp(val, "all")) {
                rn.dtypes = (1u << ATTN_KV_DTYPE_COUNT) - 1;
            } else if (attn_dtype_parse(val, &t)) {
                rn.dtypes = 1u << t;
            } else {
                fprintf(stderr, "conformance: bad --dtype '%s' (f32, bf16, f16, int8, q4 or all)\n", val);
                return 2;
            }
        } else if ((val = option_value("--cases", argc, argv, &i))) {
            if (!parse_int(val, 0, 1000000, &x)) {
                fprintf(stderr, "conformance: bad --cases '%s'\n", val);
                return 2;
            }
            rn.cases = (int)x;
        } else if ((val = option_value("--case", argc, argv, &i))) {
            if (!parse_int(val, 0, 1000000, &rn.only_case)) {
                fprintf(stderr, "conformance: bad --case '%s'\n", val);
                return 2;
            }
        } else if ((val = option_value("--edge", argc, argv, &i))) {
            if (!parse_int(val, 0, edge_case_count - 1, &rn.only_edge)) {
                fprintf(stderr, "conformance: bad --edge '%s' (0 to %d)\n", val,
                        edge_case_count - 1);
                return 2;
            }
        } else if (!strcmp(argv[i], "--reduced")) {
            rn.shapes = &shape_sets[1];
        } else if (!strcmp(argv[i], "--selftest-broken")) {
            self = true;
        } else if (!strcmp(argv[i], "--list-isa-masks")) {
            list_masks = true;
        } else if (!strcmp(argv[i], "-v")) {
            rn.verbose = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "conformance: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rn.seed = (uint32_t)attn_rng_mix((uint64_t)ts.tv_sec * 1000000000u +
                                         (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 32));
    }
    if (rn.cases < 0)
        rn.cases = rn.shapes->cases;
    if (rn.only_case >= rn.cases)
        rn.cases = (int)rn.only_case + 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!list_masks)
        printf("conformance: seed %" PRIu64 "\n", rn.seed);

    rn.nv = attn_variant_count();
    rn.vs = checked_alloc((size_t)(rn.nv > 0 ? rn.nv : 1), sizeof *rn.vs);
    int selected = 0;
    for (int i = 0; i < rn.nv; i++) {
        variant_state *vs = &rn.vs[i];
        attn_variant_get(i, &vs->info);
        snprintf(vs->isa, sizeof vs->isa, "%s", vs->info.isa);
        snprintf(vs->why_not, sizeof vs->why_not, "%s", vs->info.why_not);
        vs->info.isa = vs->isa;
        vs->info.why_not = vs->why_not;
        vs->selected = !rn.filter || !strcmp(rn.filter, vs->info.name);
        selected += vs->selected;
    }
    if (!selected) {
        fprintf(stderr, "conformance: no variant named '%s'\n", rn.filter);
        return 2;
    }
    char dtypes[48] = "";
    for (int t = 0; t < ATTN_KV_DTYPE_COUNT; t++)
        if (rn.dtypes & (1u << t))
            snprintf(dtypes + strlen(dtypes), sizeof dtypes - strlen(dtypes), "%s%s",
                     dtypes[0] ? "," : "", attn_dtype_name((attn_dtype)t));
    if (!list_masks)
        printf("conformance: shapes %s, %d random cases, %d edge cases, input types %s\n",
               rn.shapes->name, rn.cases, edge_case_count, dtypes);
    if (list_masks) {
        const int status = list_isa_masks(&rn);
        free(rn.vs);
        return status;
    }
    install_crash_handlers();
    if (self) {
        const int status = selftest(&rn);
        free(rn.vs);
        return status;
    }

    check_dispatch(&rn);
    run_invalid_checks(&rn);
    if (rn.only_case < 0)
        run_edge_cases(&rn);
    if (rn.only_edge < 0)
        run_random_cases(&rn);

    int passed = rn.api_passed, failed = rn.api_failed;
    for (int i = 0; i < rn.nv; i++) {
        const variant_state *vs = &rn.vs[i];
        if (!vs->selected)
            continue;
        printf("variant %s: %d cases passed, %d failed", vs->info.name, vs->passed, vs->failed);
        if (!vs->info.supported)
            printf(" (unsupported here: %s; checked that it is refused)", vs->why_not);
        printf("\n");
        /* Its case runs per input type (the line above adds the API checks). */
        for (int t = 0; vs->info.supported && t < ATTN_KV_DTYPE_COUNT; t++) {
            if (!(rn.dtypes & (1u << t)))
                continue;
            const char *name = attn_dtype_name((attn_dtype)t);
            if (!variant_reads(&vs->info, (attn_dtype)t)) {
                printf("  %s %s: not read (refusal checked)\n", vs->info.name, name);
                continue;
            }
            printf("  %s %s: %d passed, %d failed", vs->info.name, name,
                   vs->dtype_passed[t], vs->dtype_failed[t]);
            if (t != ATTN_F32 && t < ATTN_DTYPE_COUNT)
                printf(" (%d with %s output)", vs->dtype_half_out[t], name);
            else if (t >= ATTN_DTYPE_COUNT)
                printf(" (K/V %s, Q f32)", name);
            if (vs->info.compute_dtype == ATTN_BF16)
                printf(" [bf16 compute: reference on bf16-rounded inputs]");
            printf("\n");
        }
        passed += vs->passed;
        failed += vs->failed;
    }
    printf("api: %d checks passed, %d failed\n", rn.api_passed, rn.api_failed);
    printf("total: %d passed, %d failed%s", passed, failed, failed ? "; " : "\n");
    if (failed) {
        char replay[160];
        replay_hint(&rn, rn.filter, NULL, -1, -1, replay, sizeof replay);
        printf("%s\n", replay);
    }
    free(rn.vs);
    return failed ? 1 : 0;
}
