#!/usr/bin/python3
"""The tool behaves the same everywhere (issue 21): one grammar of shape flags for run, tune,
plan and sweep, nearest-name suggestions, tables that fit 100 columns, progress off a terminal.

    test_grammar.py ATTNBENCH [ATTNBENCH_GBENCH]

Every shape-taking subcommand (and attnbench-gbench) runs every shape flag on the same small
problems, and all must describe the same problem (batch, heads, lengths, head dim, causal, scale) in their JSON. Each
command's options table lists the shape flags with one meaning. No timing assertions."""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

ATTNBENCH = os.environ.get("ATTNBENCH", "")
WRAPPER = shlex.split(os.environ.get("ATTN_EXE_WRAPPER", ""))
TMP = tempfile.mkdtemp(prefix="test-grammar-")
# No wisdom of the user's is read or written.
ENV = dict(os.environ, ATTN_WISDOM=os.path.join(TMP, "wisdom"), XDG_CACHE_HOME=TMP)
SHAPE_FLAGS = ["shape", "batch", "heads", "kv-heads", "len", "len-q", "len-kv", "dim", "scale",
               "causal"]
SHAPE_COMMANDS = ["run", "tune", "plan", "sweep", "gbench"]
GBENCH = os.environ.get("ATTNBENCH_GBENCH", "")
FIELDS = ["batch", "heads_q", "heads_kv", "len_q", "len_kv", "head_dim", "causal"]

# Small problems named through every shape flag, with the problem each must describe
# (B, Hq, Hkv, Lq, Lk, d, causal, scale or None for 1/sqrt(d)).
CASES = [
    (["--batch", "2", "--heads", "4", "--kv-heads", "2", "--len", "24", "--dim", "8",
      "--scale", "0.25", "--causal"], (2, 4, 2, 24, 24, 8, True, 0.25)),
    (["--len-q", "4", "--len-kv", "24", "--heads", "2", "--dim", "8"],
     (1, 2, 2, 4, 24, 8, False, None)),
    (["--len-kv", "12", "--heads", "2", "--dim", "8"], (1, 2, 2, 12, 12, 8, False, None)),
    (["--len-q", "10", "--heads", "2", "--dim", "4"], (1, 2, 2, 10, 10, 4, False, None)),
    # --shape: the flags override its sizes; --heads without --kv-heads: Hkv = Hq.
    (["--shape", "P1", "--len", "16", "--dim", "8"], (1, 4, 4, 16, 16, 8, False, None)),
    (["--shape", "D1", "--len-kv", "32", "--heads", "4", "--dim", "8"],
     (1, 4, 4, 1, 32, 8, False, None)),
    (["--causal", "--shape", "P1", "--heads", "2", "--len-q", "8", "--len-kv", "16", "--dim",
      "4"], (1, 2, 2, 8, 16, 4, True, None)),
]


def attnbench(*args, stderr_file=None):
    return subprocess.run([*WRAPPER, ATTNBENCH, *map(str, args)], capture_output=stderr_file is None,
                          stdout=subprocess.PIPE if stderr_file else None, stderr=stderr_file,
                          text=True, timeout=300, env=ENV)


def problem_of(command, flags):
    """The problem a subcommand describes in its JSON for these shape flags."""
    if command == "run":
        r = attnbench("run", *flags, "--variant", "naive", "--reps", "1", "--warmup", "0",
                      "--format", "json", "--quiet")
        assert r.returncode == 0, (command, flags, r.stderr)
        return json.loads(r.stdout)["results"][0]["shape"]
    if command == "tune":
        r = attnbench("tune", *flags, "--variant", "naive", "--budget", "0.2", "--no-store",
                      "--threads", "1", "--format", "json", "--quiet")
        assert r.returncode == 0, (command, flags, r.stderr)
        return json.loads(r.stdout)["shape"]
    if command == "plan":
        r = attnbench("plan", *flags, "--threads", "1", "--format", "json")
        assert r.returncode == 0, (command, flags, r.stderr)
        return json.loads(r.stdout)["shape"]
    if command == "gbench":  # the problem is in the benchmark's name
        r = subprocess.run([*WRAPPER, GBENCH, *flags, "--variant", "naive",
                            "--benchmark_list_tests=true"], capture_output=True, text=True,
                           timeout=300, env=ENV)
        assert r.returncode == 0, (command, flags, r.stderr)
        m = re.match(r"naive/custom(\.causal)?(?:\.s([\d.e+-]+))?/B(\d+)\.Hq(\d+)\.Hkv(\d+)\."
                     r"Lq(\d+)\.Lk(\d+)\.d(\d+)/", r.stdout)
        assert m, r.stdout
        sizes = dict(zip(FIELDS[:6], map(int, m.groups()[2:])))
        d = sizes["head_dim"]
        return dict(sizes, causal=bool(m.group(1)),
                    scale=float(m.group(2)) if m.group(2) else d ** -0.5)
    path = os.path.join(TMP, "sweep.json")
    r = attnbench("sweep", *flags, "--variant", "naive", "--reps", "1", "--warmup", "0",
                  "--threads", "1", "-o", path, "--quiet", "--format", "json")
    assert r.returncode == 0, (command, flags, r.stderr)
    with open(path) as f:
        records = json.load(f)["results"]
    assert json.loads(r.stdout)["results"] == records  # --format json: the document on stdout
    assert len(records) == 1, (flags, len(records))
    return records[0]["shape"]


class Grammar(unittest.TestCase):
    def test_every_command_agrees_on_the_problem(self):
        for flags, want in CASES:
            for command in SHAPE_COMMANDS:
                with self.subTest(command=command, flags=" ".join(flags)):
                    got = problem_of(command, flags)
                    self.assertEqual([got[f] for f in FIELDS], list(want[:7]))
                    scale = want[7] if want[7] is not None else want[5] ** -0.5
                    self.assertAlmostEqual(got["scale"], scale, places=6)

    def test_options_tables_share_the_shape_flags(self):
        lines = {}
        # attnbench-gbench's help names them in prose, its messages are its own
        for command in [c for c in SHAPE_COMMANDS if c != "gbench"]:
            text = attnbench(command, "--help").stdout
            for flag in SHAPE_FLAGS:
                with self.subTest(command=command, flag=flag):
                    m = re.search(r"(?m)^  --%s\b( \S+)?\s+(.*)$" % re.escape(flag), text)
                    self.assertIsNotNone(m, "%s --help lacks --%s" % (command, flag))
                    # One meaning: the help text, less the defaults and list metavars that
                    # sweep's grid has of its own.
                    meaning = re.sub(r"\(default [^)]*\)", "", m.group(2)).strip()
                    lines.setdefault(flag, {})[command] = meaning
        for flag, meanings in lines.items():
            self.assertEqual(len(set(meanings.values())), 1, (flag, meanings))

    def test_bad_values_are_usage_errors(self):
        for command in [c for c in SHAPE_COMMANDS if c != "gbench"]:
            for flag, value in (("batch", "x"), ("heads", "0"), ("kv-heads", "-1"), ("len", ""),
                                ("len-q", "1e3"), ("len-kv", "x"), ("dim", "0"),
                                ("scale", "nan"), ("shape", "nosuch")):
                with self.subTest(command=command, flag=flag):
                    r = attnbench(command, "--" + flag, value)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertIn("--" + flag if flag != "shape" else "shape", r.stderr)
                    self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            with self.subTest(command=command, what="bare --causal takes no value"):
                r = attnbench(command, "--causal", "yes")
                self.assertEqual(r.returncode, 2, r.stderr)
        # Lists: sweep's lengths and dims; a clear refusal elsewhere.
        for command in ("run", "tune", "plan"):
            with self.subTest(command=command, what="list"):
                r = attnbench(command, "--len", "8,16")
                self.assertEqual(r.returncode, 2)
                self.assertIn("takes one value", r.stderr)
        # --threads takes a list everywhere (run, sweep, tune, plan): each count in turn, one
        # document per count inside the command's document.
        small = ["--len", "16", "--dim", "8", "--heads", "2", "--format", "json"]
        for command, extra, key in (("tune", ["--variant", "naive", "--budget", "0.2",
                                              "--no-store", "--quiet"], "tunes"),
                                    ("plan", [], "plans")):
            with self.subTest(command=command, what="thread list"):
                r = attnbench(command, *small, *extra, "--threads", "1,2")
                self.assertEqual(r.returncode, 0, r.stderr)
                doc = json.loads(r.stdout)
                self.assertEqual(doc["threads"], [1, 2])
                counts = [d["problem"]["threads"] if command == "tune" else d["threads"]
                          for d in doc[key]]
                self.assertEqual(counts, [1, 2])
                self.assertIn("machine", doc)
                r = attnbench(command, *small, *extra, "--threads", "1,1")
                self.assertEqual(r.returncode, 2)
                self.assertIn("given twice", r.stderr)
        r = attnbench("tune", "--compare", "naive", "--threads", "1,2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("one --threads count", r.stderr)

    def test_nearest_name_is_suggested(self):
        for command, typo, near in (("run", "--lenn", "--len"), ("tune", "--threds", "--threads"),
                                    ("sweep", "--kv-haeds", "--kv-heads"),
                                    ("compare", "--fail-onn", "--fail-on"),
                                    ("plan", "--casual", "--causal")):
            with self.subTest(command=command, typo=typo):
                r = attnbench(command, typo)
                self.assertEqual(r.returncode, 2)
                self.assertIn("did you mean %s?" % near, r.stderr)
        r = attnbench("run", "--zzzzzzzz")
        self.assertNotIn("did you mean", r.stderr)


class Output(unittest.TestCase):
    def widest(self, text):
        return max((len(line) for line in text.splitlines()), default=0)

    def test_every_table_fits_100_columns(self):
        run_json = os.path.join(TMP, "a.json")
        r = attnbench("run", "--variant", "naive,streaming", "--len", "16", "--dim", "8",
                      "--heads", "2", "--reps", "3", "--warmup", "0", "--threads", "1,2",
                      "-o", run_json, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        small = ["--len", "16", "--dim", "8", "--heads", "2"]
        commands = [["list"], ["list", "--shapes"], ["info"], ["wisdom", "show"],
                    ["study", "scaling", "--rows", "16"], ["compare", run_json, run_json],
                    ["plan", *small], ["run", *small, "--reps", "2", "--warmup", "0",
                                       "--threads", "1,2", "--quiet"],
                    ["tune", *small, "--variant", "streaming", "--budget", "0.5", "--no-store",
                     "--quiet"]]
        commands += [[c, "--help"] for c in ("run", "tune", "plan", "sweep", "compare", "list",
                                             "info", "peak", "wisdom", "study", "overhead")]
        for args in commands:
            with self.subTest(args=" ".join(args)):
                r = attnbench(*args)
                self.assertIn(r.returncode, (0, 1), r.stderr)
                self.assertLessEqual(self.widest(r.stdout), 100, r.stdout)
        # --wide: the full table.
        self.assertGreater(self.widest(attnbench("list", "--wide").stdout), 100)
        if GBENCH:
            # attnbench-gbench's table is as wide as the longest name registered: the standard
            # set's (all variants), one cheap benchmark run.
            gbench = [*WRAPPER, GBENCH, "--benchmark_filter=^streaming/decode/",
                      "--benchmark_min_time=0.001"]
            for wide in (False, True):
                with self.subTest(gbench_wide=wide):
                    r = subprocess.run(gbench + ["--wide"] * wide, capture_output=True,
                                       text=True, timeout=300, env=ENV)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn("streaming/decode/", r.stdout)
                    if wide:
                        self.assertGreater(self.widest(r.stdout), 100, r.stdout)
                    else:
                        self.assertLessEqual(self.widest(r.stdout), 100, r.stdout)

    def test_records_carry_spread_and_conditions(self):
        small = ["--len", "16", "--dim", "8", "--heads", "2", "--variant", "naive", "--quiet"]
        doc = json.loads(attnbench("run", *small, "--reps", "7", "--warmup", "0", "--format",
                                   "json").stdout)
        r = doc["results"][0]
        spread = r["spread"]
        self.assertLessEqual(spread["q1_s"], r["median_s"])
        self.assertLessEqual(r["median_s"], spread["q3_s"])
        self.assertAlmostEqual(spread["iqr_s"], spread["q3_s"] - spread["q1_s"])
        self.assertGreaterEqual(spread["cv"], 0)
        self.assertTrue(0 <= spread["outliers"] <= 7)
        for c in (doc["conditions"], r["conditions"]):
            self.assertEqual(set(c) >= {"loadavg_start", "loadavg_end", "cpu_mhz", "governor",
                                        "affinity", "affinity_cpus", "smt_shared_cores"}, True)
            self.assertGreaterEqual(c["affinity_cpus"], 1)
        for command in (["tune", "--budget", "0.2", "--no-store"], ["plan"]):
            with self.subTest(command=command[0]):
                d = json.loads(attnbench(*command, *small[:-3], "--format", "json").stdout)
                self.assertTrue({"tool", "machine", "shape", "conditions"} <= set(d), list(d))
        # -o/--output: the JSON document also written to a file, as sweep's -o.
        for command in (["run", "--reps", "1", "--warmup", "0"],
                        ["tune", "--budget", "0.2", "--no-store"], ["plan"]):
            with self.subTest(command=command[0], what="-o"):
                path = os.path.join(TMP, command[0] + ".json")
                flags = small if command[0] != "plan" else small[:-3]  # plan: no --variant
                r = attnbench(*command, *flags, "-o", path)
                self.assertEqual(r.returncode, 0, r.stderr)
                with open(path) as f:
                    d = json.load(f)
                self.assertEqual(d["kind"], command[0])
                shape = d["shape"] if "shape" in d else d["results"][0]["shape"]
                self.assertEqual([shape[k] for k in FIELDS], [1, 2, 2, 16, 16, 8, False])
                bad = attnbench(*command, *flags, "-o", os.path.join(TMP, "no", "such", "x"))
                self.assertEqual(bad.returncode, 2)
        # --min-time: timed rounds go on past --reps (a 16-token problem takes microseconds).
        r = json.loads(attnbench("run", *small, "--reps", "1", "--warmup", "0", "--min-time",
                                 "0.2", "--format", "json").stdout)["results"][0]
        self.assertGreater(r["reps"], 1)
        self.assertEqual(len(r["samples_s"]), r["reps"])
        self.assertEqual(attnbench("run", *small, "--min-time", "-1").returncode, 2)

    def test_tune_writes_progress_lines_to_a_file(self):
        path = os.path.join(TMP, "tune.err")
        with open(path, "w") as err:
            # Long enough for a line anywhere (a plain line once a second has passed).
            r = attnbench("tune", "--len", "1024", "--dim", "64", "--heads", "4", "--variant",
                          "streaming,naive", "--strategy", "exhaustive", "--budget", "3",
                          "--no-store", "--threads", "1", stderr_file=err)
        self.assertEqual(r.returncode, 0)
        with open(path) as f:
            lines = f.read().splitlines()
        progress = [l for l in lines
                    if re.match(r"^attnbench tune: [\d.]+/[\d.]+ s, \d+/\d+ config", l)]
        self.assertTrue(progress, lines)
        self.assertFalse([l for l in lines if "\r" in l or "\033" in l], "no terminal codes")
        with open(path, "w") as err:
            attnbench("tune", "--len", "1024", "--dim", "64", "--heads", "4", "--variant",
                      "streaming", "--budget", "2", "--no-store", "--quiet", stderr_file=err)
        with open(path) as f:
            self.assertNotRegex(f.read(), r"(?m)^attnbench tune: [\d.]+/")


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        ATTNBENCH = os.path.abspath(sys.argv[1])
        del sys.argv[1]
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        GBENCH = os.path.abspath(sys.argv[1])
        del sys.argv[1]
    if not ATTNBENCH:
        sys.exit("usage: test_grammar.py PATH/TO/attnbench [PATH/TO/attnbench-gbench]")
    if not GBENCH:  # built only where Google Benchmark is found
        SHAPE_COMMANDS.remove("gbench")
    unittest.main(verbosity=2)
