#!/usr/bin/python3
"""gen_null_sweep.py ATTN_H OUT_C — writes the NULL-sweep test of the public API from attn.h.

Every function prototype of the header is parsed (return type, parameters). For each function
the generated test makes one call with every argument valid, then one call per pointer
parameter with NULL there and valid values everywhere else, and checks that it does not crash
and that the result says "refused": attn_status != ATTN_OK with err filled and "NULL" in the
message, false, a negative int, a negative or NaN float, 0 for a size, NULL for a new object, a
string for `const char *`. Where the header documents NULL as meaningful (always for
attn_error *, and the ACCEPTS_NULL list below), the NULL call must instead give the all-valid
call's result. Values out of a parameter's range (OUT_OF_RANGE) must be refused the same way
(any message), and a size of 0 (ZERO_SIZE) must write nothing.

The valid values come from tables keyed by (type, parameter name). A prototype this script
cannot parse, or a parameter or return type it has no value or rule for, stops the build with
a message naming it: a new function in attn.h is swept or the build fails, never skipped.
"""
import re
import sys

# (type, parameter name) -> a valid C expression; name "*" matches any name. `f` is the
# fixture of the generated test (see PRELUDE).
VALID = {
    ("attn_error *", "*"): "&f.err",
    ("const attn_problem *", "p"): "&f.problem",
    ("attn_problem *", "p"): "&f.scratch_problem",
    ("attn_params *", "*"): "&f.params_out",
    ("const attn_params *", "params"): "&f.params",
    ("attn_variant_info *", "info"): "&f.variant_info",
    ("attn_plan_info *", "info"): "&f.plan_info",
    ("const attn_plan *", "plan"): "f.plan",
    ("attn_plan *", "plan"): "fixture_take_plan(&f)",
    ("const attn_plan_options *", "options"): "&f.options",
    ("const attn_execute_args *", "args"): "&f.args",
    ("const char **", "*"): "&f.out_text",
    ("int64_t *", "elements"): "&f.out_int64",
    ("attn_dtype *", "t"): "&f.out_dtype",
    ("const void *", "q"): "f.q",
    ("const void *", "k"): "f.k",
    ("const void *", "v"): "f.v",
    ("void *", "o"): "f.o",
    ("const void *", "src"): "f.src",
    ("void *", "dst"): "f.dst",
    ("char *", "buf"): "f.buf",
    ("size_t", "len"): "sizeof f.buf",
    ("size_t", "n"): "CONVERT_N",
    ("const char *", "name"): "VARIANT",
    ("const char *", "text"): '""',
    ("const char *", "path"): "f.path",
    ("int64_t", "batch"): "1",
    ("int64_t", "heads_q"): "2",
    ("int64_t", "heads_kv"): "1",
    ("int64_t", "len_q"): "4",
    ("int64_t", "len_kv"): "5",
    ("int64_t", "head_dim"): "8",
    ("int64_t", "heads"): "2",
    ("int64_t", "page_size"): "4",
    ("int64_t", "num_pages"): "3",
    ("const int32_t *", "block_table"): "NULL",
    ("int64_t", "block_table_stride"): "0",
    ("float *", "slopes"): "f.dst",
    ("unsigned", "features"): "ATTN_FEATURE_ALL",
    ("char", "tensor"): "'q'",
    ("unsigned", "flags"): "ATTN_ESTIMATE",
    ("int", "i"): "0",
    ("int", "threads"): "1",
    ("attn_dtype", "*"): "ATTN_F32",
    ("attn_status", "status"): "ATTN_ERR_INVALID",
    ("attn_plan_source", "source"): "ATTN_PLAN_FROM_WISDOM",
}
# (function, parameter) -> a valid expression where the type's usual meaning does not apply.
VALID_OVERRIDE = {
    ("attn_dtype_parse", "name"): '"f32"',
    # the fixture's problem has float32 K/V: quantize = copy f.k into f.v, no scales
    ("attn_quantize_kv", "tensor"): "'k'",
    ("attn_quantize_kv", "src"): "f.k",
    ("attn_quantize_kv", "dst"): "f.v",
    ("attn_quantize_kv", "scale"): "f.o",
    ("attn_dequantize_kv", "tensor"): "'k'",
    ("attn_dequantize_kv", "src"): "f.k",
    ("attn_dequantize_kv", "dst"): "f.v",
    ("attn_dequantize_kv", "scale"): "f.o",
}
# Where attn.h gives NULL a meaning (besides every attn_error *, which is always optional).
ACCEPTS_NULL = {
    ("attn_run_variant", "params"),      # the variant's defaults
    ("attn_plan_create", "options"),     # all defaults
    ("attn_wisdom_set_file", "path"),    # back to the default file
    ("attn_plan_destroy", "plan"),       # like free(NULL)
    ("attn_quantize_kv", "scale"),       # float K/V have no scales
    ("attn_dequantize_kv", "scale"),
    ("attn_problem_set_pages", "block_table"),  # stored only; validation refuses it later
}
# Values out of a parameter's range, each called with valid values elsewhere: the call must be
# refused (by the return type's rule; any message), and must not overflow on the way (UBSan).
OUT_OF_RANGE = {
    ("int", "i"): ["-1", "1 << 20"],
    ("int", "threads"): ["-1", "ATTN_MAX_THREADS + 1"],
    ("unsigned", "flags"): ["1u << 31"],
    ("attn_dtype", "*"): ["(attn_dtype)99"],
    ("attn_status", "status"): ["(attn_status)99"],
    ("attn_plan_source", "source"): ["(attn_plan_source)99"],
    ("char", "tensor"): ["'x'"],
    ("size_t", "n"): ["SIZE_MAX"],
    ("int64_t", "*"): ["INT64_MAX", "INT64_MIN"],
}
# Sizes called with 0: nothing may be written to the fixture's output buffers.
ZERO_SIZE = {("size_t", "len"), ("size_t", "n")}
# Return types of new objects and how to release one.
RELEASE = {"attn_plan *": "attn_plan_destroy"}

PRELUDE = r'''/* GENERATED by tests/gen_null_sweep.py from include/attn.h at build time; do not edit.
 * Calls every public function with every argument valid, then with NULL in each pointer
 * position in turn; a crash (or an ASan report) fails the test, as does a NULL that is not
 * refused. */
#include "attn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VARIANT "naive" /* portable: runs on every CPU */
#define CONVERT_N 4

static int calls, failures;

typedef struct fixture {
    attn_error err;
    attn_problem problem, scratch_problem;
    attn_params params, params_out;
    attn_variant_info variant_info;
    attn_plan_info plan_info;
    attn_plan *plan;
    attn_plan_options options;
    attn_execute_args args;
    const char *out_text;
    int64_t out_int64;
    attn_dtype out_dtype;
    float *q, *k, *v, *o;
    float src[CONVERT_N], dst[CONVERT_N];
    char buf[256];
    char path[256];
} fixture;

static char workdir[] = "/tmp/attn-null-sweep-XXXXXX";

/* A fresh fixture for every call, so no call sees what another one changed. */
static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    attn_problem_init(&f->problem, 1, 2, 1, 4, 5, 8);
    f->scratch_problem = f->problem;
    if (attn_variant_default_params(VARIANT, &f->problem, &f->params, NULL) != ATTN_OK ||
        !(f->plan = attn_plan_create(&f->problem, NULL, NULL))) {
        printf("FAILED: the fixture itself (default params or plan of a valid problem)\n");
        exit(1);
    }
    const size_t q_n = 2 * 4 * 8, kv_n = 5 * 8;
    f->q = calloc(q_n, sizeof(float));
    f->k = calloc(kv_n, sizeof(float));
    f->v = calloc(kv_n, sizeof(float));
    f->o = calloc(q_n, sizeof(float));
    if (!f->q || !f->k || !f->v || !f->o) {
        printf("FAILED: out of memory\n");
        exit(1);
    }
    f->args = (attn_execute_args){.q = f->q, .k = f->k, .v = f->v, .o = f->o};
    for (int i = 0; i < CONVERT_N; i++) {
        f->src[i] = (float)i;
        f->dst[i] = -1.0f;
    }
    memset(f->buf, 'x', sizeof f->buf - 1);
    snprintf(f->path, sizeof f->path, "%s/wisdom.json", workdir);
}

static attn_plan *fixture_take_plan(fixture *f)
{
    attn_plan *plan = f->plan;
    f->plan = NULL;
    return plan;
}

static void fixture_free(fixture *f)
{
    attn_plan_destroy(f->plan);
    free(f->q);
    free(f->k);
    free(f->v);
    free(f->o);
}

static void fail(const char *call, const char *why)
{
    failures++;
    printf("FAILED: %s: %s\n", call, why);
}

/* Each call runs in a child process, so one crash is reported and the sweep goes on:
 * in_child returns true in the child (which runs the call and ends in child_done) and false in
 * the parent, which waits and counts a failure for a child that crashed or found one. With
 * --no-fork (qemu-user hangs in fork) calls run in this process: a crash ends the sweep, the
 * call printed last named. */
static bool no_fork;

static bool in_child(const char *call)
{
    calls++;
    printf("%s\n", call);
    fflush(stdout);
    if (no_fork)
        return true;
    const pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        failures = 0; /* the child's own */
        return true;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail(call, "waitpid failed");
    else if (WIFSIGNALED(status))
        fail(call, strsignal(WTERMSIG(status)));
    else if (WEXITSTATUS(status) != 0)
        failures++; /* the child printed why (a check, or a sanitizer's report) */
    return false;
}

static void child_done(void)
{
    if (no_fork)
        return;
    fflush(stdout);
    exit(failures ? 1 : 0);
}

/* A refusal: not ATTN_OK, err filled with the same status and a message (holding `says`
 * when given: "NULL" for a NULL argument). */
static void expect_refused_status(const char *call, attn_status r, const attn_error *err,
                                  const char *says)
{
    if (r == ATTN_OK)
        fail(call, "returned ATTN_OK");
    else if (err && err->status != r)
        fail(call, "err->status differs from the status returned");
    else if (err && !err->message[0])
        fail(call, "no message");
    else if (err && says && !strstr(err->message, says))
        fail(call, "the message does not say what is NULL");
}

/* The fixture's output buffers as fixture_init left them. */
static bool outputs_untouched(const fixture *f)
{
    for (size_t i = 0; i + 1 < sizeof f->buf; i++)
        if (f->buf[i] != 'x')
            return false;
    for (int i = 0; i < CONVERT_N; i++)
        if (f->dst[i] != -1.0f)
            return false;
    return true;
}
'''


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def statements(text):
    """Top-level declarations of the header: split at ';' outside braces."""
    lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
    text = "\n".join(lines)
    text = re.sub(r'extern\s+"C"\s*\{', " ", text)
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == ";" and depth == 0:
            out.append(" ".join("".join(cur).split()))
            cur = []
        else:
            cur.append(ch)
    rest = " ".join("".join(cur).split()).strip("} ")
    if rest:
        sys.exit(f"gen_null_sweep: trailing text in the header: {rest!r}")
    return out


def normalize_type(t):
    """'const char**' -> 'const char **'."""
    return " ".join(t.replace("*", " * ").split()).replace("* *", "**").replace("* *", "**")


def parse_param(fn, text):
    text = text.strip()
    m = re.fullmatch(r"(.*?[\s*])(\w+)", text)
    if not m or "(" in text or "[" in text:
        sys.exit(f"gen_null_sweep: {fn}: cannot parse parameter {text!r}")
    return normalize_type(m.group(1)), m.group(2)


def parse_prototypes(header):
    funcs = []
    for st in statements(strip_comments(header)):
        if not st or st.startswith("typedef") or "(" not in st:
            continue
        if re.match(r"(enum|struct|union)\b[^(]*\{", st):
            continue
        m = re.fullmatch(r"(.+?)\b(attn_\w+)\s*\((.*)\)", st)
        if not m or "(" in m.group(3):
            sys.exit(f"gen_null_sweep: cannot parse the declaration {st!r}")
        if not st.startswith("ATTN_API "):
            sys.exit(f"gen_null_sweep: {m.group(2)} is not marked ATTN_API: libattn.so would "
                     f"not export it")
        m = re.fullmatch(r"ATTN_API (.+?)\b(attn_\w+)\s*\((.*)\)", st)
        ret = normalize_type(m.group(1))
        name, args = m.group(2), m.group(3).strip()
        params = [] if args in ("", "void") else [parse_param(name, a) for a in args.split(",")]
        funcs.append((ret, name, params))
    return funcs


def valid_value(fn, ctype, pname):
    if (fn, pname) in VALID_OVERRIDE:
        return VALID_OVERRIDE[(fn, pname)]
    for key in ((ctype, pname), (ctype, "*")):
        if key in VALID:
            return VALID[key]
    sys.exit(f"gen_null_sweep: {fn}: no valid value for parameter '{ctype} {pname}': add one "
             f"to VALID in tests/gen_null_sweep.py")


def is_pointer(ctype):
    return ctype.endswith("*")


def declare(ret, var):
    """`ret var = ` for a call's result; nothing for void."""
    if ret == "void":
        return ""
    return f"{ret}{'' if ret.endswith('*') else ' '}{var} = "


def check_refused(fn, ret, call_text, has_err, why):
    """C statements checking that r (of type ret) says the call was refused; why: the text
    the message must hold ("NULL"), or None."""
    c = f'"{call_text}"'
    say = f'"{why}"' if why else "NULL"
    if ret == "attn_status":
        return f"expect_refused_status({c}, r, {'&f.err' if has_err else 'NULL'}, {say});"
    if ret == "bool":
        return f'if (r) fail({c}, "returned true");'
    if ret in ("int", "int64_t"):
        return f'if (r >= 0) fail({c}, "returned a non-negative value");'
    if ret == "size_t":
        return f'if (r != 0) fail({c}, "returned a size other than 0");'
    if ret in ("double", "float"):
        return f'if (r >= 0) fail({c}, "returned a value >= 0 (expected negative or NaN)");'
    if ret == "const char *":
        return f'if (!r) fail({c}, "returned a NULL string");'
    if ret in RELEASE:
        text = f'if (r) {{\n            fail({c}, "returned an object");\n            {RELEASE[ret]}(r);\n        }}'
        if has_err:
            text += (f' else {{\n            expect_refused_status({c}, f.err.status, &f.err, '
                     f'{say});\n        }}')
        return text
    if ret == "void":
        return ""
    sys.exit(f"gen_null_sweep: {fn}: no refusal rule for return type '{ret}': add one to "
             f"check_refused in tests/gen_null_sweep.py")


def same_result(fn, ret, call_text):
    """C statements checking that r equals r0 (the all-valid call's result)."""
    c = f'"{call_text}"'
    if ret == "void":
        return ""
    if ret in RELEASE:
        return (f'if (!r != !r0)\n            fail({c}, "differs from the call with every '
                f'argument valid");\n        {RELEASE[ret]}(r);\n        {RELEASE[ret]}(r0);')
    if ret == "const char *":
        return f'if (!r || !r0 || strcmp(r, r0)) fail({c}, "differs from the call with every argument valid");'
    if ret in ("double", "float"):
        return f'if (!(r == r0 || (isnan(r) && isnan(r0)))) fail({c}, "differs from the call with every argument valid");'
    return f'if (r != r0) fail({c}, "differs from the call with every argument valid");'


def on_fixture(expr, name):
    """The expression with the fixture `f` renamed."""
    return re.sub(r"\bf\b", name, expr)


def variations(ret, fn, params, args):
    """(arguments, expectation) of every call but the all-valid one: NULL in each pointer
    position ("refused" or, where attn.h gives NULL a meaning, "same" as all-valid), each
    OUT_OF_RANGE value ("refused", any message), each ZERO_SIZE ("untouched" outputs)."""
    out = []
    for i, (ctype, pname) in enumerate(params):
        def with_value(value):
            a = list(args)
            a[i] = value
            return a
        if is_pointer(ctype):
            accepted = ctype == "attn_error *" or (fn, pname) in ACCEPTS_NULL
            out.append((with_value("NULL"), "same" if accepted else "refused_null", i))
        for key in ((ctype, pname), (ctype, "*")):
            if key in OUT_OF_RANGE:
                out += [(with_value(v), "refused", i) for v in OUT_OF_RANGE[key]]
                break
        if (ctype, pname) in ZERO_SIZE:
            out.append((with_value("0"), "untouched", i))
    return out


def generate(funcs):
    body = []
    for ret, fn, params in funcs:
        args = [valid_value(fn, t, n) for t, n in params]
        valid_text = f"{fn}({', '.join(args)})"
        body.append(f"    /* {ret} {fn}({', '.join(t + ' ' + n for t, n in params) or 'void'}) */")
        body.append(f'    if (in_child("{fn}: every argument valid")) {{')
        body.append("        fixture f;")
        body.append("        fixture_init(&f);")
        body.append(f"        {declare(ret, 'r0')}{valid_text};")
        if ret in RELEASE:
            body.append(f"        {RELEASE[ret]}(r0);")
        elif ret != "void":
            body.append("        (void)r0;")
        body.append("        fixture_free(&f);")
        body.append("        child_done();")
        body.append("    }")
        for call_args, expect, i in variations(ret, fn, params, args):
            call_text = f"{fn}({', '.join(call_args)})".replace('"', "'")
            has_err = any(t == "attn_error *" for j, (t, _) in enumerate(params) if j != i)
            body.append(f'    if (in_child("{call_text}")) {{')
            body.append("        fixture f;")
            body.append("        fixture_init(&f);")
            if expect == "same" and ret != "void":
                # The all-valid call again, on a fixture of its own, to compare with.
                body.append("        fixture f0;")
                body.append("        fixture_init(&f0);")
                body.append(f"        {declare(ret, 'r0')}{on_fixture(valid_text, 'f0')};")
            result = declare(ret, "r") if expect != "untouched" or ret in RELEASE else (
                "" if ret == "void" else "(void)")
            body.append(f"        {result}{fn}({', '.join(call_args)});")
            if expect == "same":
                check = same_result(fn, ret, call_text)
            elif expect == "untouched":
                check = (f'if (!outputs_untouched(&f)) fail("{call_text}", '
                         f'"wrote with a size of 0");')
                if ret in RELEASE:
                    check += f"\n        {RELEASE[ret]}(r);"
            else:
                check = check_refused(fn, ret, call_text, has_err,
                                      "NULL" if expect == "refused_null" else None)
            if check:
                body.append(f"        {check}")
            if expect == "same" and ret != "void":
                body.append("        fixture_free(&f0);")
            body.append("        fixture_free(&f);")
            body.append("        child_done();")
            body.append("    }")
    names = ", ".join(f'"{fn}"' for _, fn, _ in funcs)
    main = f'''
int main(int argc, char **argv)
{{
    no_fork = argc > 1 && !strcmp(argv[1], "--no-fork");
    if (!mkdtemp(workdir)) {{
        perror("mkdtemp");
        return 1;
    }}
    char wisdom[300];
    snprintf(wisdom, sizeof wisdom, "%s/wisdom.json", workdir);
    setenv("ATTN_WISDOM", wisdom, 1); /* never the user's wisdom, even after set_file(NULL) */
    unsetenv("ATTN_FORCE_VARIANT");
    attn_wisdom_set_file(wisdom, NULL);
{chr(10).join(body)}
    static const char *const functions[] = {{{names}}};
    unlink(wisdom);
    rmdir(workdir);
    printf("%d functions of attn.h, %d calls, %d failed\\n",
           (int)(sizeof functions / sizeof functions[0]), calls, failures);
    return failures ? 1 : 0;
}}
'''
    return PRELUDE + main


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_null_sweep.py ATTN_H OUT_C")
    with open(sys.argv[1], encoding="utf-8") as f:
        funcs = parse_prototypes(f.read())
    if not funcs:
        sys.exit(f"gen_null_sweep: no prototypes found in {sys.argv[1]}")
    code = generate(funcs)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(code)


if __name__ == "__main__":
    main()
