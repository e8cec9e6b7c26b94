#!/usr/bin/python3
"""perf-ab's stopping rule, simulated: its sequential rounds and `attnbench compare --paired`
on synthetic paired samples.

    test_perf_ab.py ATTNBENCH [PERF_AB]

Each trial is one perf-ab comparison of 10 benchmarks: scripts/perf-ab's own sequential_rounds
and open_benchmarks drive the rounds (6, then one at a time up to 16 for what is not shown unchanged)
and the real compare judges every look and the end, as perf-ab runs it; only the measuring is
replaced by draws of known noise (seeded, so every run sees the same trials). The gate's
targets, per noise model: A/A trials flagging a regression at most 5%; a planted 5% or 10%
slowdown flagged, or left inconclusive, and never passed as unchanged (and, per benchmark,
unchanged at most 5% of the time: the bound perf-ab states). The A/A trials of the loaded model
are run under the rule perf-ab had before (an interim regressed stopped the benchmark) too, and
must raise more false alarms than under the rule now: the simulation can tell the two apart.
No timing assertions: nothing here is measured.
"""
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

import attn_testlib as lib

TOOL = lib.tool_from_argv()
PERF_AB = (sys.argv[1] if len(sys.argv) > 1 else
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "perf-ab"))
TMP_DIR = lib.temp_dir("test-perf-ab-")
ROUNDS, MAX_ROUNDS, BENCHMARKS = 6, 16, 10


def load_perf_ab():
    loader = importlib.machinery.SourceFileLoader("perf_ab", PERF_AB)
    spec = importlib.util.spec_from_loader("perf_ab", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


perf_ab = load_perf_ab()


# Noise models: one round's sample of a side, as a factor on the true time. Noise on a shared
# machine only adds time, and a round's drift (frequency, other load) hits both sides of it.
def quiet(rng, n):
    """A quiet machine: 1.5% log-normal."""
    return np.exp(rng.normal(0, 0.015, n))


def loaded(rng, n):
    """A 2-core VM shared with builds: 2% log-normal, a burst of load (exponential, mean +10%)
    in a quarter of the samples of either side."""
    burst = np.where(rng.random(n) < 0.25, rng.exponential(0.10, n), 0.0)
    return np.exp(rng.normal(0, 0.02, n)) * (1 + burst)


def heavy_tailed(rng, n):
    """Symmetric heavy tails: Student's t with 2 degrees of freedom (no finite variance),
    scale 1.5%, on the log of the time."""
    return np.exp(0.015 * rng.standard_t(2, n))


MODELS = {"quiet": quiet, "loaded": loaded, "heavy-tailed": heavy_tailed}


def gbench_file(path, samples):
    """Google Benchmark JSON as perf-ab writes it: one entry per round, in round order."""
    entries = [{"name": name, "run_name": name, "run_type": "iteration",
                "repetitions": len(times), "repetition_index": i, "threads": 1,
                "iterations": 100, "real_time": t * 1e6, "cpu_time": t * 1e6, "time_unit": "us"}
               for name, times in samples.items() for i, t in enumerate(times)]
    with open(path, "w") as f:
        json.dump({"context": {}, "benchmarks": entries}, f)


def compare(paths, *extra):
    out = subprocess.run([TOOL, "compare", "--paired", "--format", "json", *extra,
                          paths["base"], paths["new"]], capture_output=True, text=True,
                         env=lib.tool_env())
    if out.returncode not in (0, 1):
        sys.exit(f"compare failed: {out.stderr}")
    return json.loads(out.stdout)


def trial(rng, noise, slowdown, interim_regressed_stops):
    """One simulated perf-ab comparison; returns compare's final JSON."""
    names = [f"v{i}/prefill/B1/t1/real_time" for i in range(BENCHMARKS)]
    truth = dict(zip(names, 1e-4 * (1 + rng.random(BENCHMARKS))))
    samples = {"base": {n: [] for n in names}, "new": {n: [] for n in names}}
    paths = {side: os.path.join(TMP_DIR.name, f"{side}.json") for side in samples}

    def measure(r, only):
        wanted = names if only is None else [n for n in names if n in only]
        drift = np.exp(rng.normal(0, 0.05))
        for n in wanted:
            base, new = noise(rng, 2)
            samples["base"][n].append(truth[n] * drift * base)
            samples["new"][n].append(truth[n] * (1 + slowdown) * drift * new)
        for side in samples:
            gbench_file(paths[side], samples[side])
        return set(wanted)

    def open_after():
        if interim_regressed_stops:  # the rule before: only inconclusive went on
            return {b["name"] for b in compare(paths)["benchmarks"]
                    if b["verdict"] == "inconclusive"}
        return perf_ab.open_benchmarks(TOOL, paths, 5, 0.05, ROUNDS, MAX_ROUNDS)

    perf_ab.sequential_rounds(measure, open_after, ROUNDS, MAX_ROUNDS)
    return compare(paths)


def outcome(doc):
    """The gate's outcome of a trial: regressed when anything regressed, else inconclusive when
    anything stayed inconclusive, else unchanged (what --fail-on inconclusive lets pass)."""
    verdicts = {b["verdict"] for b in doc["benchmarks"]}
    for v in ("regressed", "inconclusive"):
        if v in verdicts:
            return v
    return "unchanged"


def series(seed, noise, slowdown, trials, interim_regressed_stops=False):
    rng = np.random.default_rng(seed)
    outcomes = {"regressed": 0, "inconclusive": 0, "unchanged": 0}
    unchanged_benchmarks = 0
    for _ in range(trials):
        doc = trial(rng, noise, slowdown, interim_regressed_stops)
        outcomes[outcome(doc)] += 1
        unchanged_benchmarks += doc["summary"]["unchanged"]
    return outcomes, unchanged_benchmarks


def main():
    failures = []
    aa_trials, planted_trials = 60, 20
    for seed, (model, noise) in enumerate(MODELS.items()):
        aa, _ = series(100 + seed, noise, 0.0, aa_trials)
        print(f"{model}: A/A, {aa_trials} trials: {aa}")
        if aa["regressed"] > 0.05 * aa_trials:
            failures.append(f"{model}: {aa['regressed']} false alarms in {aa_trials} A/A trials")
        if model == "loaded":
            # The same trials under the rule before must raise more false alarms: the
            # simulation can tell stopping at the first regressed look from confirming it.
            old, _ = series(100 + seed, noise, 0.0, aa_trials, interim_regressed_stops=True)
            print(f"{model}: A/A under the rule before (an interim regressed stops): {old}")
            if old["regressed"] <= aa["regressed"]:
                failures.append("the simulation does not tell confirming from stopping")
        for slowdown in (0.05, 0.10):
            got, unchanged = series(200 + seed, noise, slowdown, planted_trials)
            total = planted_trials * BENCHMARKS
            print(f"{model}: planted {slowdown:.0%}, {planted_trials} trials: {got}; "
                  f"benchmarks unchanged {unchanged} of {total}")
            if got["unchanged"]:
                failures.append(f"{model}: planted {slowdown:.0%} passed as unchanged in "
                                f"{got['unchanged']} trials")
            # A benchmark slowed by the threshold is called unchanged with probability at most
            # 2.5% over the interim looks plus 2.5% at the last (perf-ab's docstring).
            if unchanged > 0.05 * total:
                failures.append(f"{model}: planted {slowdown:.0%}: {unchanged} of {total} "
                                "benchmarks unchanged, over the 5% bound")
            if slowdown == 0.10 and model == "quiet" and got["regressed"] < planted_trials:
                failures.append(f"quiet: planted 10% found in only {got['regressed']} trials")
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
