#!/usr/bin/python3
"""Tests of `attnbench compare`, `run --save` and attnbench-gbench.

    test_compare.py ATTNBENCH [--gbench ATTNBENCH_GBENCH]

The statistics are checked on synthetic Google Benchmark JSON (seeded draws of known shifts and
noise); the file handling on broken and partial files; `run --save` on a tiny shape; and, given
--gbench, a smoke run of attnbench-gbench whose JSON goes through compare (and through Google
Benchmark's own compare.py when libbenchmark-tools is installed). No timing assertions.
"""
import glob
import json
import os
import subprocess
import sys

import numpy as np

import attn_testlib as lib

TOOL = sys.argv[1]
GBENCH = sys.argv[sys.argv.index("--gbench") + 1] if "--gbench" in sys.argv else None
TMP_DIR = lib.temp_dir("test-compare-")
TMP = TMP_DIR.name
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}")


def run(args, cwd=None):
    return lib.run_tool(TOOL, *args, cwd=cwd, timeout=300)


def compare(base, new, *extra):
    return run(["compare", "--format", "json", *extra, base, new])


def write(name, doc):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def gbench_doc(times, with_aggregates=True):
    """Google Benchmark JSON: per-repetition entries (microseconds) and, as the library writes
    them with --benchmark_repetitions, mean/median/stddev aggregates that compare must skip."""
    entries = []
    for name, samples in times.items():
        for i, t in enumerate(samples):
            entries.append({"name": name, "run_name": name, "run_type": "iteration",
                            "repetitions": len(samples), "repetition_index": i, "threads": 1,
                            "iterations": 100, "real_time": t * 1e6, "cpu_time": t * 1e6,
                            "time_unit": "us"})
        if with_aggregates:
            for agg, value in (("mean", 1.0), ("median", 1e-9), ("stddev", 1e3)):
                entries.append({"name": f"{name}_{agg}", "run_name": name,
                                "run_type": "aggregate", "aggregate_name": agg,
                                "repetitions": len(samples), "threads": 1, "iterations": 5,
                                "real_time": value, "cpu_time": value, "time_unit": "us"})
    return {"context": {"date": "2026-01-01", "library_build_type": "release"},
            "benchmarks": entries}


def draw(rng, benchmarks, reps, noise, shift=None):
    """{name: samples}: a base time per benchmark times lognormal noise, times 1 + shift."""
    shift = shift or {}
    return {name: list(base * (1 + shift.get(name, 0.0)) * np.exp(rng.normal(0, noise, reps)))
            for name, base in benchmarks.items()}


def matrix(n):
    kinds = ["prefill", "causal", "decode", "gqa"]
    variants = ["avx512", "avx2", "streaming", "blocked", "cblas", "naive"]
    names = [f"{v}/{k}" for v in variants for k in kinds]
    names += [f"extra{i}/prefill" for i in range(max(0, n - len(names)))]
    return {name: 1e-3 * (1 + i % 7) for i, name in enumerate(names[:n])}


def verdicts(result):
    doc = json.loads(result.stdout)
    return {b["name"]: b["verdict"] for b in doc["benchmarks"]}, doc


# ---- statistics on synthetic data ---------------------------------------------------------------

def test_shift_detected():
    """One benchmark 10% slower with 2% noise, 5 reps, among 24: regressed, exit 1, in at least
    19 of 20 seeded draws; the 23 others stay unchanged."""
    bench = matrix(24)
    caught = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        base = write("shift-base.json", gbench_doc(draw(rng, bench, 5, 0.02)))
        new = write("shift-new.json", gbench_doc(draw(rng, bench, 5, 0.02, {"avx2/causal": 0.10})))
        r = compare(base, new)
        v, _ = verdicts(r)
        caught += r.returncode == 1 and v["avx2/causal"] == "regressed"
        others = [n for n, x in v.items() if n != "avx2/causal" and x == "regressed"]
        check(not others, f"shift seed {seed}: false alarms {others}")
    check(caught >= 19, f"10% shift with 2% noise caught in {caught}/20 draws (want >= 19)")


def test_whole_matrix_shift():
    """Every benchmark 10% slower: all regressed (text and markdown formats, exit 1)."""
    bench = matrix(24)
    rng = np.random.default_rng(100)
    base = write("all-base.json", gbench_doc(draw(rng, bench, 5, 0.02)))
    new = write("all-new.json", gbench_doc(draw(rng, bench, 5, 0.02, {n: 0.10 for n in bench})))
    v, doc = verdicts(compare(base, new))
    check(list(v.values()).count("regressed") >= 23, f"whole-matrix shift: {doc['summary']}")
    md = run(["compare", "--format", "markdown", base, new])
    check(md.returncode == 1 and "| benchmark |" in md.stdout and "**regressed**" in md.stdout,
          f"markdown output: exit {md.returncode}")
    text = run(["compare", base, new])
    check(text.returncode == 1 and "regressed" in text.stdout, "text output")


def test_no_shift():
    """No shift, 2% noise: exit 0 in at least 38 of 40 draws of 24 benchmarks (the rule's false
    alarm rate on such draws is 1-3%, within the 5% target: BH at 5%, then the effect-size
    conditions)."""
    bench = matrix(24)
    alarms = 0
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        base = write("null-base.json", gbench_doc(draw(rng, bench, 5, 0.02)))
        new = write("null-new.json", gbench_doc(draw(rng, bench, 5, 0.02)))
        alarms += compare(base, new).returncode != 0
    check(alarms <= 2, f"no shift: {alarms}/40 draws flagged something")


def test_many_unchanged():
    """500 unchanged benchmarks at once, 5% noise: no false alarm (FDR control)."""
    bench = matrix(500)
    rng = np.random.default_rng(7)
    base = write("many-base.json", gbench_doc(draw(rng, bench, 5, 0.05)))
    new = write("many-new.json", gbench_doc(draw(rng, bench, 5, 0.05)))
    r = compare(base, new)
    _, doc = verdicts(r)
    check(r.returncode == 0 and doc["summary"]["regressed"] == 0,
          f"500 unchanged benchmarks: {doc['summary']}")


def test_improvement():
    """10% faster: improved, exit 0."""
    bench = matrix(8)
    rng = np.random.default_rng(11)
    base = write("imp-base.json", gbench_doc(draw(rng, bench, 5, 0.02)))
    new = write("imp-new.json", gbench_doc(draw(rng, bench, 5, 0.02, {"avx512/prefill": -0.10})))
    r = compare(base, new)
    v, _ = verdicts(r)
    check(r.returncode == 0 and v["avx512/prefill"] == "improved",
          f"improvement: exit {r.returncode}, {v['avx512/prefill']}")


def test_outlier_and_small_shift():
    """One sample 3x slower (a preempted run) does not make a regression; a significant 2%
    slowdown (0.2% noise, 10 reps) is below the 5% threshold: unchanged, with a note."""
    rng = np.random.default_rng(5)
    b = {"k": list(1e-3 * np.exp(rng.normal(0, 0.01, 5)))}
    n = {"k": list(1e-3 * np.exp(rng.normal(0, 0.01, 5)))}
    n["k"][2] *= 3
    r = compare(write("out-base.json", gbench_doc(b)), write("out-new.json", gbench_doc(n)))
    check(r.returncode == 0, f"one outlier: exit {r.returncode} {r.stdout[-300:]}")
    b = {"k": list(1e-3 * np.exp(rng.normal(0, 0.002, 10)))}
    n = {"k": list(1.02e-3 * np.exp(rng.normal(0, 0.002, 10)))}
    r = compare(write("small-base.json", gbench_doc(b)), write("small-new.json", gbench_doc(n)))
    v, doc = verdicts(r)
    row = doc["benchmarks"][0]
    check(r.returncode == 0 and v["k"] == "unchanged" and row["note"] and row["q"] < 0.05,
          f"2% significant shift: {row}")


def test_paired_drift():
    """Rounds drifting by +-15% together on both sides (interleaved A/B) hide a 10% shift from
    the unpaired test; the paired test on the ratios finds it."""
    rng = np.random.default_rng(3)
    drift = np.exp(rng.normal(0, 0.15, 6))
    b = {"k": list(1e-3 * drift * np.exp(rng.normal(0, 0.01, 6)))}
    n = {"k": list(1.1e-3 * drift * np.exp(rng.normal(0, 0.01, 6)))}
    base, new = write("pair-base.json", gbench_doc(b)), write("pair-new.json", gbench_doc(n))
    check(compare(base, new).returncode == 0, "unpaired test under drift should not decide")
    r = compare(base, new, "--paired")
    check(r.returncode == 1, f"paired test under drift: exit {r.returncode}")
    # A burst of load in one round on one side: that round is left out, the shift still found;
    # and the same burst in an A/A pair makes no alarm.
    n["k"][2] *= 1.6
    r = compare(base, write("pair-burst.json", gbench_doc(n)), "--paired")
    row = json.loads(r.stdout)["benchmarks"][0]
    check(r.returncode == 1 and row["rounds_left_out"] == 1, f"paired with a burst: {row}")
    b2 = {"k": list(1e-3 * drift * np.exp(rng.normal(0, 0.01, 6)))}
    b2["k"][4] *= 1.6
    r = compare(base, write("pair-aa.json", gbench_doc(b2)), "--paired")
    check(r.returncode == 0, f"A/A with a burst: exit {r.returncode} {r.stdout[-400:]}")


# ---- file handling ------------------------------------------------------------------------------

def expect_usage_error(args, what, needle=None):
    r = run(["compare"] + args)
    check(r.returncode == 2 and r.stderr.startswith("attnbench compare:") and
          (needle is None or needle in r.stderr), f"{what}: exit {r.returncode}, {r.stderr!r}")


def test_bad_files():
    good = write("good.json", gbench_doc({"a": [1e-3, 1.1e-3, 1.2e-3]}))
    expect_usage_error([write("trunc.json", '{"benchmarks": [{"name": "a", '), good],
                       "malformed JSON", "trunc.json:")
    expect_usage_error([os.path.join(TMP, "missing.json"), good], "unreadable file", "missing.json")
    expect_usage_error([write("empty.json", gbench_doc({})), good], "no benchmarks", "no benchmark")
    expect_usage_error([write("array.json", "[1, 2]"), good], "top-level array", "neither")
    expect_usage_error([write("strtime.json", {"benchmarks": [{"name": "a", "real_time": "fast"}]}),
                        good], "real_time not a number", "real_time")
    expect_usage_error([write("neg.json", {"benchmarks": [{"name": "a", "real_time": -1}]}), good],
                       "negative time", "positive")
    expect_usage_error([write("other.json", gbench_doc({"b": [1e-3, 1e-3]})), good],
                       "nothing in common", "no benchmark in common")
    expect_usage_error([good], "one file", "two files")
    expect_usage_error([good, good, good], "three files", "unexpected argument")
    expect_usage_error(["--threshold", "-3", good, good], "negative threshold", "--threshold")
    expect_usage_error(["--fdr", "2", good, good], "fdr out of range", "--fdr")
    expect_usage_error(["--rename", "x", good, good], "rename without =", "--rename")
    expect_usage_error(["--format", "xml", good, good], "bad format", "--format")
    check(run(["compare", "--help"]).returncode == 0, "compare --help")


def test_partial_files():
    """Benchmarks on one side only, renamed ones, errored ones and single samples are reported,
    not fatal."""
    base = write("part-base.json", gbench_doc({
        "kept": [1e-3, 1.01e-3, 0.99e-3], "removed": [2e-3, 2e-3, 2e-3],
        "old_name": [3e-3, 3.01e-3, 2.99e-3], "single": [1e-3]}))
    new_doc = gbench_doc({"kept": [1e-3, 1.01e-3, 0.99e-3], "added": [5e-3, 5e-3],
                          "new_name": [3e-3, 3.02e-3, 2.98e-3], "single": [1e-3]})
    new_doc["benchmarks"].append({"name": "broken", "run_name": "broken", "run_type": "iteration",
                                  "error_occurred": True, "error_message": "beyond tolerance"})
    new = write("part-new.json", new_doc)
    r = compare(base, new)
    v, doc = verdicts(r)
    check(r.returncode == 0, f"partial files: exit {r.returncode} {r.stderr}")
    check(doc["only_in_base"] == ["removed", "old_name"] and
          doc["only_in_new"] == ["added", "new_name"], f"one-sided lists: {doc}")
    check(v.get("single") == "untested", f"single sample: {v.get('single')}")
    check(any("beyond tolerance" in e for e in doc["errors_in_new"]), "errored entry listed")
    r = compare(base, new, "--rename", "old_name=new_name")
    v, doc = verdicts(r)
    check("new_name" in v and "old_name" not in doc["only_in_base"], f"--rename: {doc}")
    text = run(["compare", base, new])
    check("only in BASE" in text.stdout and "only in NEW" in text.stdout and
          "errors reported in NEW" in text.stdout, "text notes for one-sided benchmarks")
    # An aggregate-only file (--benchmark_report_aggregates_only) has no samples.
    agg = gbench_doc({"kept": [1e-3, 1e-3]})
    agg["benchmarks"] = [e for e in agg["benchmarks"] if e["run_type"] == "aggregate"]
    expect_usage_error([write("agg.json", agg), new], "aggregates only", "no benchmark")


def attn_doc(records, machine_id="0123456789abcdef"):
    """An attnbench result file (run's schema, the fields compare reads)."""
    return {"machine": {"id": machine_id, "model_name": "Test CPU"}, "results": records}


def attn_record(variant="naive", samples=(1e-3, 1.1e-3, 0.9e-3), threads=1):
    return {"variant": variant, "threads": threads, "dtype": "f32", "median_s": 1e-3,
            "samples_s": list(samples),
            "shape": {"batch": 1, "heads_q": 2, "heads_kv": 2, "len_q": 64, "len_kv": 64,
                      "head_dim": 16, "causal": False, "layout": "bhld"}}


def test_strict_records():
    """A bad field of an attnbench record is named with the file and the record (exit 2), never
    read as something else (samples_s "fast" was one sample of median_s); a repeated record is
    refused, not merged."""
    good = write("rec-good.json", attn_doc([attn_record()]))

    def edited(field, value):
        rec = attn_record()
        target = rec["shape"] if field.startswith("shape.") else rec
        target[field.split(".")[-1]] = value
        return rec

    cases = [("variant", 123, "results[0].variant"), ("threads", "two", "results[0].threads"),
             ("samples_s", "fast", "results[0].samples_s"),
             ("samples_s", [1e-3, "x"], "results[0].samples_s[1]"),
             ("samples_s", [], "results[0].samples_s"), ("median_s", -1, "results[0].median_s"),
             ("shape.batch", 0, "results[0].shape.batch"),
             ("shape.causal", "yes", "results[0].shape.causal")]
    for field, value, needle in cases:
        path = write("rec-bad.json", attn_doc([edited(field, value)]))
        expect_usage_error([good, path], f"{field}={value!r}", needle)
        r = run(["compare", good, path])
        check("rec-bad.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
              f"{field}: one message naming the file: {r.stderr!r}")
    dup = write("rec-dup.json", attn_doc([attn_record(), attn_record(samples=(2e-3, 2e-3))]))
    expect_usage_error([good, dup], "duplicate records", "results[1] repeats the benchmark of "
                       "results[0]")
    gdoc = gbench_doc({"a": [1e-3, 1.1e-3]}, with_aggregates=False)
    gdoc["benchmarks"].append(dict(gdoc["benchmarks"][0]))
    expect_usage_error([write("gb-dup.json", gdoc), write("gb-ok.json", gbench_doc({"a": [1e-3]}))],
                       "a repeated Google Benchmark repetition", "benchmarks[2] repeats "
                       "repetition_index 0 of a")


def test_machine_ids():
    """Different machine ids: a warning (stderr, the output); --strict refuses them, and files
    without an id."""
    a = write("mach-a.json", attn_doc([attn_record()], "aaaaaaaaaaaaaaaa"))
    b = write("mach-b.json", attn_doc([attn_record()], "bbbbbbbbbbbbbbbb"))
    a2 = write("mach-a2.json", attn_doc([attn_record(samples=(1e-3, 1e-3, 1.05e-3))],
                                        "aaaaaaaaaaaaaaaa"))
    r = compare(a, b)
    doc = json.loads(r.stdout) if r.returncode in (0, 1) else {}
    check(r.returncode in (0, 1) and "different machines" in r.stderr and
          "aaaaaaaaaaaaaaaa" in r.stderr and "bbbbbbbbbbbbbbbb" in r.stderr,
          f"different machines: a warning on stderr: {r.returncode} {r.stderr!r}")
    check(doc.get("warning") and doc.get("machine_ids") == {"base": "aaaaaaaaaaaaaaaa",
                                                             "new": "bbbbbbbbbbbbbbbb"},
          f"different machines: warning and ids in the JSON: {doc.get('warning')}")
    check("warning: " in run(["compare", a, b]).stdout, "different machines: text warning")
    expect_usage_error(["--strict", a, b], "--strict, different machines", "--strict")
    r = compare(a, a2, "--strict")
    check(r.returncode == 0 and r.stderr == "" and json.loads(r.stdout)["warning"] is None,
          f"--strict, one machine: {r.returncode} {r.stderr!r}")
    g = write("mach-g.json", gbench_doc({"naive/B1.Hq2.Hkv2.Lq64.Lk64.d16/t1": [1e-3, 1e-3]}))
    expect_usage_error(["--strict", g, a], "--strict, no machine id", "records no machine id")
    gdoc = gbench_doc({"x": [1e-3, 1e-3]})
    gdoc["context"]["attnbench_machine_id"] = "cccccccccccccccc"
    gb = write("mach-gb.json", gdoc)
    gdoc["context"]["attnbench_machine_id"] = "dddddddddddddddd"
    gd = write("mach-gd.json", gdoc)
    r = compare(gb, gd)
    check("different machines" in r.stderr, f"gbench context ids differ: {r.stderr!r}")


# ---- run --save and attnbench result files -------------------------------------------------------

def test_run_save():
    results = os.path.join(TMP, "results")
    shape = ["--variant", "naive,streaming", "--len-q", "16", "--len-kv", "32", "--dim", "8",
             "--heads", "2", "--reps", "3", "--warmup", "0"]
    r = run(["run", *shape, "--save", "--results-dir", results, "--format", "json"])
    check(r.returncode == 0, f"run --save: exit {r.returncode} {r.stderr}")
    files = glob.glob(os.path.join(results, "*", "run-*.json"))
    check(len(files) == 1, f"run --save wrote {files}")
    if not files:
        return
    doc = json.load(open(files[0]))
    check(doc.get("kind") == "run" and "date" in doc and "commit" in doc and
          {"compiler", "buildtype", "c_args"} <= set(doc.get("build", {})),
          f"saved provenance: { {k: doc.get(k) for k in ('kind', 'date', 'commit', 'build')} }")
    check(os.path.basename(os.path.dirname(files[0])) == doc["machine"]["id"],
          "saved under the machine id")
    rec = doc["results"][0]
    check(len(rec.get("samples_s", [])) == 3 and json.loads(r.stdout)["results"][0]["samples_s"],
          "samples_s in the records")
    r2 = run(["run", *shape, "--save", "--results-dir", results, "--format", "json"])
    check(r2.returncode == 0 and len(glob.glob(os.path.join(results, "*", "run-*.json"))) == 2,
          "a second save in the same second gets its own file")
    # Paired, a file against itself has ratio 1 in every round: unchanged (unpaired, 3 noisy
    # samples may well leave it inconclusive).
    c = compare(files[0], files[0], "--paired")
    v, _ = verdicts(c)
    check(c.returncode == 0 and set(v.values()) == {"unchanged"} and
          any(n.startswith("naive/B1.Hq2.Hkv2.Lq16.Lk32.d8") for n in v), f"run file vs itself: {v}")
    bad = run(["run", *shape, "--save", "--results-dir", "/proc/no/such/dir"])
    check(bad.returncode == 2, f"--save into an unwritable folder: exit {bad.returncode}")
    # Records of another input type are other benchmarks: never paired with float32 ones.
    half = os.path.join(TMP, "bf16.json")
    r3 = run(["run", *shape, "--dtype", "bf16", "--format", "json"])
    check(r3.returncode == 0, f"run --dtype bf16: {r3.stderr}")
    with open(half, "w") as f:
        f.write(r3.stdout)
    c = compare(files[0], half)
    check(c.returncode == 2 and "no benchmark in common" in c.stderr,
          f"f32 against bf16 records are not paired: exit {c.returncode} {c.stderr.strip()}")


def test_wide_spread_inconclusive():
    """Wide spread, few samples (3 a side, 40% noise, as two 3-sample sweeps on a busy machine):
    whatever the medians say, the interval reaches past the threshold, so the verdict is
    inconclusive, never unchanged; exit 0 unless --fail-on inconclusive (exit 1). Tight samples
    of equal times stay unchanged."""
    bench = matrix(8)
    for seed in range(10):
        rng = np.random.default_rng(300 + seed)
        base = write("wide-base.json", gbench_doc(draw(rng, bench, 3, 0.4)))
        new = write("wide-new.json", gbench_doc(draw(rng, bench, 3, 0.4,
                                                     {n: -0.04 for n in bench})))
        r = compare(base, new)
        v, doc = verdicts(r)
        check(r.returncode == 0 and set(v.values()) == {"inconclusive"} and
              doc["summary"]["inconclusive"] == 8 and doc["fail_on"] == "regressed",
              f"wide spread seed {seed}: exit {r.returncode}, {doc['summary']}")
        strict = compare(base, new, "--fail-on", "inconclusive")
        check(strict.returncode == 1, f"--fail-on inconclusive: exit {strict.returncode}")
    text = run(["compare", base, new])
    flat = " ".join(text.stdout.split())  # the header wraps to 100 columns anywhere
    check("inconclusive: neither" in flat and "unchanged: the interval" in flat
          and "95% intervals" in flat,
          f"text header states the rule: {text.stdout[:400]}")
    rng = np.random.default_rng(5)
    tight = draw(rng, bench, 10, 0.002)
    base = write("tight-base.json", gbench_doc(tight))
    new = write("tight-new.json", gbench_doc(draw(rng, bench, 10, 0.002)))
    v, doc = verdicts(compare(base, new, "--fail-on", "inconclusive"))
    check(set(v.values()) == {"unchanged"}, f"tight equal samples: {doc['summary']}")
    bad = compare(base, new, "--fail-on", "never")
    check(bad.returncode == 2 and "--fail-on" in bad.stderr, f"bad --fail-on: {bad.stderr}")


def test_confidence():
    """--confidence sets the intervals' level (perf-ab's interim looks ask for a wider one): the
    same samples get a wider interval at 99.9% than at 95%, stated in the JSON and the header;
    samples unchanged at 95% but near the threshold become inconclusive at a high level; a
    level outside (0, 100) is exit 2."""
    bench = matrix(6)
    rng = np.random.default_rng(11)
    base = write("conf-base.json", gbench_doc(draw(rng, bench, 6, 0.01)))
    new = write("conf-new.json", gbench_doc(draw(rng, bench, 6, 0.01, {n: 0.02 for n in bench})))
    at95 = json.loads(compare(base, new).stdout)
    at999 = json.loads(compare(base, new, "--confidence", "99.9").stdout)
    check(at95["confidence"] == 0.95 and at999["confidence"] == 0.999,
          f"confidence fields: {at95['confidence']}, {at999['confidence']}")
    wider = {b["name"]: b for b in at999["benchmarks"]}  # rows are ordered by verdict
    for b95 in at95["benchmarks"]:
        b999 = wider[b95["name"]]
        check(b999["ci_low"] < b95["ci_low"] and b999["ci_high"] > b95["ci_high"]
              and b999["p"] == b95["p"], f"{b95['name']}: 99.9% interval not wider")
    check(at999["summary"]["unchanged"] < at95["summary"]["unchanged"],
          f"unchanged at 95% {at95['summary']}, at 99.9% {at999['summary']}")
    text = run(["compare", "--confidence", "99%", base, new])
    check(text.returncode == 0 and "99% intervals" in text.stdout and "99% CI" in text.stdout,
          f"--confidence 99%: {text.stdout[:300]}")
    for bad_level in ("100", "0", "x"):
        bad = compare(base, new, "--confidence", bad_level)
        check(bad.returncode == 2 and "--confidence" in bad.stderr,
              f"--confidence {bad_level}: exit {bad.returncode} {bad.stderr}")


# ---- attnbench-gbench ---------------------------------------------------------------------------

def test_gbench_smoke():
    out = os.path.join(TMP, "gbench.json")
    r = lib.run_tool(GBENCH, "--quick", "--benchmark_filter=^naive/",
                     "--benchmark_min_time=0.01", "--benchmark_repetitions=2",
                     "--benchmark_format=json", f"--benchmark_out={out}",
                     "--benchmark_out_format=json", timeout=600)
    check(r.returncode == 0, f"attnbench-gbench: exit {r.returncode} {r.stderr[-500:]}")
    if r.returncode != 0:
        return
    doc = json.load(open(out))
    runs = [b for b in doc["benchmarks"] if b.get("run_type") == "iteration"]
    kinds = {b["run_name"].split("/")[1] for b in runs}
    check(kinds == {"prefill", "causal", "decode", "gqa"} and
          all(b["run_name"].startswith("naive/") for b in runs) and len(runs) == 8,
          f"gbench benchmarks: {[b['run_name'] for b in runs]}")
    check(all(b["gflops"] > 0 and 0 <= b["max_rel_err"] < 1e-4 and b["bytes"] > 0 for b in runs),
          "gbench counters gflops, max_rel_err, bytes")
    check(doc["context"].get("attnbench_machine_id") and
          doc["context"].get("attnbench_planted_slowdown") == "0", "gbench context")
    c = compare(out, out)
    check(c.returncode == 0 and len(json.loads(c.stdout)["benchmarks"]) == 4,
          f"gbench JSON through compare: exit {c.returncode}")
    bad = lib.run_tool(GBENCH, "--quick", "--benchmark_filter=^nothing$")
    check(bad.returncode == 2, f"nothing matched: exit {bad.returncode}")
    bad = lib.run_tool(GBENCH, "--bogus")
    check(bad.returncode == 2, f"unknown flag: exit {bad.returncode}")
    bad = lib.run_tool(GBENCH, "--quick", "--benchmark_list_tests=true",
                       env={"ATTN_GBENCH_PLANT_SLOWDOWN": "x"})
    check(bad.returncode == 2, f"bad ATTN_GBENCH_PLANT_SLOWDOWN: exit {bad.returncode}")
    # perf-ab on the same executable twice (an A/A run, nothing built): benchmarks compare calls
    # inconclusive get rounds up to --max-rounds, the others stop; the verdict has four names.
    perf_ab = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "perf-ab")
    out_dir = os.path.join(TMP, "perf-ab")
    if lib.WRAPPER:  # perf-ab runs the executables directly, not through the cross wrapper
        return
    r = subprocess.run(["/usr/bin/python3", perf_ab, "--base-exe", GBENCH, "--new-exe", GBENCH,
                        "--attnbench", TOOL, "--filter", "^naive/", "--rounds", "2",
                        "--max-rounds", "4", "--reps-per-round", "1", "--min-time", "0.001",
                        "--no-pin", "--format", "json", "--out", out_dir, "A", "B"],
                       capture_output=True, text=True, timeout=600)
    check(r.returncode in (0, 1), f"perf-ab: exit {r.returncode} {r.stderr[-500:]}")
    if r.returncode in (0, 1):
        doc = json.loads(r.stdout)
        check(set(doc["summary"]) >= {"regressed", "improved", "inconclusive", "unchanged"},
              f"perf-ab summary {doc['summary']}")
        for b in doc["benchmarks"]:
            rounds = b["base"]["n"]
            check(2 <= rounds <= 4 and (b["verdict"] != "inconclusive" or rounds == 4),
                  f"perf-ab: {b['name']} {b['verdict']} after {rounds} rounds")
    bad = subprocess.run(["/usr/bin/python3", perf_ab, "--budget", "-1", "A", "B"],
                         capture_output=True, text=True)
    check(bad.returncode == 2, f"perf-ab --budget -1: exit {bad.returncode}")
    # Google Benchmark's own compare.py (libbenchmark-tools), when installed with scipy.
    script = "/usr/share/benchmark/compare.py"
    if os.path.exists(script) and subprocess.run(["/usr/bin/python3", "-c", "import scipy"],
                                                 capture_output=True).returncode == 0:
        g = subprocess.run(["/usr/bin/python3", script, "benchmarks", out, out],
                           capture_output=True, text=True)
        check(g.returncode == 0 and "naive/prefill" in g.stdout,
              f"compare.py benchmarks: exit {g.returncode} {g.stderr[-300:]}")


tests = [test_shift_detected, test_whole_matrix_shift, test_no_shift, test_many_unchanged,
         test_improvement, test_outlier_and_small_shift, test_paired_drift, test_bad_files,
         test_partial_files, test_strict_records, test_machine_ids, test_run_save,
         test_wide_spread_inconclusive, test_confidence]
if GBENCH:
    tests.append(test_gbench_smoke)
for t in tests:
    t()
    print(f"{t.__name__}: {'ok' if not failures else 'failures so far: ' + str(len(failures))}")
print(f"{len(tests)} tests, {len(failures)} failed checks")
TMP_DIR.cleanup()
sys.exit(1 if failures else 0)
