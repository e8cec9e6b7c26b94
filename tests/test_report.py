"""Tests of the research-report tools: `attnbench study scaling` (the softmax saturation trends),
`attnbench sweep` (a tiny grid written as one file in run's schema) and scripts/report (report.md
and its PNGs), and their bad input (exit status 2, a message, no crash, no stray files).

Usage: /usr/bin/python3 tests/test_report.py PATH/TO/attnbench PATH/TO/scripts/report
(meson test passes both; ATTNBENCH=... and REPORT=... work too)."""
import copy
import json
import os
import re
import subprocess
import sys
import unittest

import attn_testlib as lib

ATTNBENCH = ""  # set by main: lib.tool_from_argv()
REPORT = os.environ.get("REPORT", "")

# A sweep small enough to take well under a second: 2 lengths x 2 causal x 2 thread counts.
TINY_SWEEP = ["--len", "8,16", "--dim", "4", "--heads", "2", "--causal-both",
              "--threads", "1,2", "--variant", "naive,streaming", "--reps", "1", "--warmup", "0"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def attnbench(*args, cwd=None):
    return lib.run_tool(ATTNBENCH, *args, timeout=120, cwd=cwd)


def report(*args):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(["/usr/bin/python3", REPORT, *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


def study(*args):
    proc = attnbench("study", "scaling", "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def by_dim(doc, scaled):
    return {p["head_dim"]: p for p in doc["points"] if p["scaled"] == scaled}


class Study(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = study("--rows", "256")

    def test_dims_and_metadata(self):
        self.assertEqual(sorted(by_dim(self.doc, False)), [2 ** e for e in range(3, 11)])
        self.assertEqual(sorted(by_dim(self.doc, True)), [2 ** e for e in range(3, 11)])
        self.assertEqual(self.doc["jacobian_norm"], "frobenius")
        self.assertEqual((self.doc["rows"], self.doc["keys"]), (256, 128))

    def test_unscaled_softmax_saturates(self):
        raw = by_dim(self.doc, False)
        self.assertGreater(raw[1024]["max_prob"], raw[16]["max_prob"])
        self.assertGreater(raw[1024]["max_prob"], 0.85)
        self.assertLess(raw[1024]["entropy"], raw[16]["entropy"] / 4)
        self.assertLess(raw[1024]["jacobian_fro"], raw[16]["jacobian_fro"] / 2)
        # From d = 16 on, every doubling saturates further.
        dims = [d for d in sorted(raw) if d >= 16]
        for a, b in zip(dims, dims[1:]):
            self.assertGreater(raw[b]["max_prob"], raw[a]["max_prob"], (a, b))
            self.assertLess(raw[b]["entropy"], raw[a]["entropy"], (a, b))
        # The logits spread as sqrt(d).
        for d, p in raw.items():
            self.assertAlmostEqual(p["logit_std"] / d ** 0.5, 1.0, delta=0.15)

    def test_scaled_softmax_stays_flat(self):
        scaled = by_dim(self.doc, True)
        for field in ("max_prob", "entropy", "jacobian_fro", "logit_std"):
            values = [p[field] for p in scaled.values()]
            self.assertLess(max(values) / min(values), 1.15, field)
        # Far from saturated: well below the unscaled figures at d = 1024.
        self.assertLess(scaled[1024]["max_prob"], 0.2)
        self.assertAlmostEqual(scaled[1024]["scale"], 1 / 32)

    def test_seeded(self):
        self.assertEqual(study("--rows", "256"), self.doc)
        other = study("--rows", "256", "--seed", "2")
        self.assertNotEqual(other["points"], self.doc["points"])

    def test_text_table(self):
        proc = attnbench("study", "scaling", "--rows", "16")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(proc.stdout, r"(?m)^\s*1024\s")
        self.assertIn("Frobenius", proc.stdout)

    def test_bad_input(self):
        for args in ([], ["nope"], ["scaling", "--rows", "0"], ["scaling", "--keys", "x"],
                     ["scaling", "--format", "csv"], ["scaling", "--bogus"],
                     ["scaling", "extra"]):
            proc = attnbench("study", *args)
            self.assertEqual(proc.returncode, 2, args)
            self.assertIn("attnbench study", proc.stderr, args)
            self.assertEqual(proc.stdout, "", args)


class Sweep(unittest.TestCase):
    def setUp(self):
        self.tmp = lib.temp_dir()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def sweep(self, *args, cwd=None):
        return attnbench("sweep", *args, cwd=cwd)

    def test_tiny_grid_in_run_schema(self):
        path = os.path.join(self.dir, "out.json")
        proc = self.sweep(*TINY_SWEEP, "-o", path)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(), path)
        # Off a terminal, progress is a plain line every few seconds (none for a sweep under a
        # second); 4 points: a shape's two thread counts are measured together, interleaved.
        for line in proc.stderr.splitlines():
            if "done" in line:
                self.assertRegex(line, r"^attnbench sweep: [0-4]/4 done, ", proc.stderr)
        quiet = self.sweep(*TINY_SWEEP, "--quiet", "-o", path)
        self.assertEqual(quiet.returncode, 0, quiet.stderr)
        self.assertNotIn("/4 done", quiet.stderr)
        self.assertEqual(os.listdir(self.dir), ["out.json"])  # no temporary file left
        with open(path) as f:
            doc = json.load(f)
        # run's document, record for record.
        run = attnbench("run", "--format", "json", "--variant", "naive", "--len-q", "8",
                        "--dim", "4", "--heads", "2", "--reps", "1", "--warmup", "0")
        self.assertEqual(run.returncode, 0, run.stderr)
        run_doc = json.loads(run.stdout)
        self.assertEqual(doc["machine"], run_doc["machine"])
        self.assertEqual(len(doc["results"]), 2 * 2 * 2 * 2)
        for r in doc["results"]:
            self.assertEqual(set(r), set(run_doc["results"][0]))
            self.assertEqual(set(r["shape"]), set(run_doc["results"][0]["shape"]))
            self.assertTrue(r["checked"] and r["ok"])
        seen = {(r["variant"], r["shape"]["len_q"], r["shape"]["causal"], r["threads"])
                for r in doc["results"]}
        self.assertEqual(len(seen), 16)
        for r in doc["results"]:  # 2 threads: paired with the same shape's 1-thread rounds
            if r["threads"] == 1:
                self.assertIsNone(r["speedup"])
            else:
                self.assertEqual(r["speedup"]["over_threads"], 1)
                self.assertGreater(r["speedup"]["ratio"], 0)
        self.assertEqual({r["shape"]["head_dim"] for r in doc["results"]}, {4})
        self.assertEqual(doc["kind"], "sweep")
        self.assertRegex(doc["date"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertTrue(doc["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", doc["commit"]))
        self.assertIn("compiler", doc["build"])
        self.assertIn("peak", doc)  # the cached peak, or null
        grid = doc["sweep"]
        self.assertEqual((grid["len"], grid["dim"], grid["causal"], grid["threads"]),
                         ([8, 16], [4], [False, True], [1, 2]))
        self.assertEqual(grid["points"], 8)

    def test_default_path_and_unchecked_points(self):
        proc = self.sweep("--len", "8,32", "--len-q", "0,1", "--dim", "4", "--heads", "1",
                          "--variant", "naive", "--reps", "1", "--check-max-len", "16",
                          "--results-dir", "res", cwd=self.dir)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        path = proc.stdout.strip()
        self.assertRegex(path, r"^res/[^/]+/sweep-\d{8}T\d{6}Z\.json$")
        with open(os.path.join(self.dir, path)) as f:
            doc = json.load(f)
        checked = {(r["shape"]["len_q"], r["shape"]["len_kv"]): r["checked"]
                   for r in doc["results"]}
        # Lq·Lk <= 16²: checked; 32 x 32 is not; decode rows (Lq = 1) are.
        self.assertEqual(checked, {(8, 8): True, (1, 8): True, (32, 32): False, (1, 32): True})
        unchecked = [r for r in doc["results"] if not r["checked"]]
        self.assertIsNone(unchecked[0]["max_rel_err"])

    def test_bad_input(self):
        out = os.path.join(self.dir, "x.json")
        for args in (["--len", "0"], ["--len", "abc"], ["--len", "8,,16"], ["--len", "8,8"],
                     ["--dim", ""], ["--causal", "maybe"], ["--variant", "nosuch"],
                     ["--heads", "2", "--kv-heads", "3"], ["--threads", "-1"],
                     ["--reps", "0"], ["--bogus"], ["stray"],
                     ["-o", os.path.join(self.dir, "missing", "x.json")]):
            proc = self.sweep("--len", "8", "--dim", "4", "--heads", "2", "--reps", "1",
                              "--variant", "naive", *args, *(["-o", out] if "-o" not in args
                                                             else []))
            self.assertEqual(proc.returncode, 2, (args, proc.stderr))
            self.assertIn("attnbench sweep", proc.stderr, args)
            self.assertEqual(proc.stdout, "", args)
            self.assertEqual(os.listdir(self.dir), [], args)  # nothing written


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def synthetic_tune():
    """A tune document over a 3 x 4 (bq, bk) grid with a third parameter held fixed."""
    cands = []
    for bq in (8, 16, 32):
        for bk in (16, 32, 64, 128):
            for extra in (0, 1):
                cands.append({"variant": "streaming", "params": {"bq": bq, "bk": bk, "x": extra},
                              "median_s": 1e-3 * (1 + abs(bq - 16) / 16 + abs(bk - 64) / 64
                                                  + extra)})
    return {"problem": {"batch": 1, "heads_q": 2, "len_q": 64, "head_dim": 8, "causal": False,
                        "threads": 1}, "candidates": cands}


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = lib.temp_dir()
        cls.dir = cls.tmp.name
        cls.sweep_path = os.path.join(cls.dir, "sweep.json")
        proc = attnbench("sweep", *TINY_SWEEP, "--len-q", "0,1", "-o", cls.sweep_path)
        assert proc.returncode == 0, proc.stderr
        cls.study_path = os.path.join(cls.dir, "study.json")
        write_json(cls.study_path, study("--rows", "32"))
        with open(cls.sweep_path) as f:
            cls.sweep_doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_pngs(self, out, text):
        pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
        for name in pngs:
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(f.read(8), PNG_MAGIC, name)
            self.assertIn("](%s)" % name, text, name)  # every figure is in the report
        for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            self.assertIn(name, pngs)  # and every image the report shows exists
        return pngs

    def test_full_report(self):
        out = os.path.join(self.dir, "full")
        tune = write_json(os.path.join(self.dir, "tune.json"), synthetic_tune())
        proc = report(self.sweep_path, "--study", self.study_path, "--tune", tune, "-o", out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "report.md")) as f:
            text = f.read()
        pngs = self.check_pngs(out, text)
        self.assertEqual(pngs, ["error.png", "roofline.png", "study.png", "threads.png",
                                "throughput.png", "tile_heatmap.png"])
        self.assertIn(self.sweep_doc["machine"]["id"], text)
        self.assertIn(self.sweep_doc["date"], text)
        self.assertIn("## Why scaled dot-product attention divides by √d", text)
        self.assertIn("best bq=16 bk=64", text)  # the synthetic grid's minimum
        # A table per shape: 2 lengths x (Lq = Lk, Lq = 1) x 2 causal x 2 threads.
        self.assertEqual(len(re.findall(r"(?m)^#### ", text)), 16)
        self.assertRegex(text, r"(?m)^\| naive \| `-` \| [\d.]+ \| .* \| 1\.00 \| ")
        if self.sweep_doc["peak"]:
            self.assertNotIn("no peak data", text)

    def test_without_peak_data_the_ceilings_are_omitted(self):
        doc = copy.deepcopy(self.sweep_doc)
        doc.pop("peak", None)
        for r in doc["results"]:
            r["peak_fraction"] = None
        path = write_json(os.path.join(self.dir, "nopeak.json"), doc)
        out = os.path.join(self.dir, "nopeak")
        proc = report(path, "-o", out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "report.md")) as f:
            text = f.read()
        self.assertIn("no peak data", text)
        self.assertIn("ceilings are omitted", text)
        self.assertNotIn("FMA float32", text)  # the peak line of the header
        self.assertNotIn("Ceilings:", text)
        self.check_pngs(out, text)

    def test_a_peak_measured_while_busy_is_flagged(self):
        doc = copy.deepcopy(self.sweep_doc)
        doc["peak"] = {"measured_at": "2026-01-01T00:00:00Z", "cores": 2, "fma_kernel": "avx2",
                       "loadavg_at_measure": 1.6, "cpus_online_at_measure": 2,
                       "busy_when_measured": True}
        for key in ("fma_gflops_per_core", "fma_gflops_per_core_256", "fma_gflops_per_core_512",
                    "bf16_dot_gflops_per_core", "amx_bf16_gflops_per_core"):
            doc["peak"][key] = 100.0
            doc["peak"][key.replace("per_core", "all_cores")] = 200.0
        for key in ("read_gbs_1t", "read_gbs_all", "triad_gbs_1t", "triad_gbs_all"):
            doc["peak"][key] = 20.0
        texts = []
        for busy in (True, False):
            doc["peak"]["busy_when_measured"] = busy
            path = write_json(os.path.join(self.dir, f"busy{busy}.json"), doc)
            out = os.path.join(self.dir, f"busy{busy}")
            proc = report(path, "-o", out)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with open(os.path.join(out, "report.md")) as f:
                texts.append(f.read())
        self.assertIn("measured while the machine was busy (load average 1.60 on 2 CPUs)",
                      texts[0])
        self.assertNotIn("while the machine was busy", texts[1])

    def test_two_sources_side_by_side(self):
        other = copy.deepcopy(self.sweep_doc)
        other["commit"] = "f" * 40
        if self.sweep_doc.get("commit") == other["commit"]:
            other["commit"] = "e" * 40
        for r in other["results"]:
            r["gflops"] *= 2
            r["median_s"] /= 2
        path = write_json(os.path.join(self.dir, "other.json"), other)
        out = os.path.join(self.dir, "two")
        proc = report(self.sweep_path, path, "-o", out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "report.md")) as f:
            text = f.read()
        if self.sweep_doc.get("commit"):
            self.assertIn("GFLOP/s [ffffffffff]", text)
            self.assertRegex(text, r"\| GFLOP/s ffffffffff / [0-9a-f]{10} \|")
        else:  # the same file name twice: told apart by number
            self.assertIn("GFLOP/s [#2]", text)
        self.assertIn("| 2.00 |", text)

    @unittest.skipIf(lib.WRAPPER, "the report runs the tool without the cross wrapper")
    def test_study_through_attnbench(self):
        out = os.path.join(self.dir, "through")
        proc = report(self.sweep_path, "--attnbench", ATTNBENCH, "-o", out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "study.png")))

    def test_bad_input(self):
        bad = os.path.join(self.dir, "bad")
        os.makedirs(bad, exist_ok=True)
        malformed = os.path.join(bad, "malformed.json")
        with open(malformed, "w") as f:
            f.write('{"results": [')
        no_results = write_json(os.path.join(bad, "no_results.json"), {"machine": {}})
        empty = write_json(os.path.join(bad, "empty.json"), {"machine": {}, "results": []})
        broken_record = write_json(os.path.join(bad, "broken.json"),
                                   {"results": [{"variant": "naive"}]})
        out = os.path.join(self.dir, "never")
        cases = [
            ([os.path.join(bad, "missing.json")], "no such file"),
            ([malformed], "malformed JSON"),
            ([no_results], "no `results` list"),
            ([empty], "no records"),
            ([broken_record], "results[0].shape is missing"),
            ([self.sweep_path, "--tune", malformed], "malformed JSON"),
            ([self.sweep_path, "--tune", self.sweep_path], "not an `attnbench tune"),
            ([self.sweep_path, "--study", no_results], "not an `attnbench study"),
            ([self.sweep_path, "--attnbench", os.path.join(bad, "nothing")], "cannot run"),
        ]
        for args, message in cases:
            proc = report(*args, "-o", out)
            self.assertEqual(proc.returncode, 2, (args, proc.stderr))
            self.assertIn(message, proc.stderr, args)
            self.assertTrue(proc.stderr.startswith("report: "), proc.stderr)
            self.assertFalse(os.path.exists(out), args)
        proc = report(self.sweep_path)  # no -o
        self.assertEqual(proc.returncode, 2)
        self.assertIn("-o", proc.stderr)

    def test_unwritable_figure(self):
        """A figure that cannot be written is one message, exit 2, never a traceback."""
        out = os.path.join(self.dir, "blocked")
        os.makedirs(os.path.join(out, "throughput.png"))
        proc = report(self.sweep_path, "-o", out)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertTrue(proc.stderr.startswith("report: cannot write"), proc.stderr)
        self.assertIn("throughput.png", proc.stderr)

    def test_bad_fields(self):
        """A field of the wrong type or range is one message naming the file, the record and
        the field (exit 2), never a traceback; a repeated record is refused."""
        with open(self.sweep_path) as f:
            good = json.load(f)
        bad = os.path.join(self.dir, "fields")
        os.makedirs(bad, exist_ok=True)
        out = os.path.join(self.dir, "never")

        def first(doc):
            return doc["results"][0]

        edits = [
            (lambda d: first(d).update(variant=123), "results[0].variant is 123"),
            (lambda d: first(d).update(threads="two"), 'results[0].threads is "two"'),
            (lambda d: first(d).update(median_s=-1), "results[0].median_s is -1"),
            (lambda d: first(d).update(gflops=None), "results[0].gflops is null"),
            (lambda d: first(d).update(samples_s="fast"), 'results[0].samples_s is "fast"'),
            (lambda d: first(d).update(params={"bq": "x"}), "results[0].params is"),
            (lambda d: first(d)["shape"].update(len_q="x"), 'results[0].shape.len_q is "x"'),
            (lambda d: first(d)["shape"].update(causal="yes"), "results[0].shape.causal is"),
            (lambda d: d.update(peak={"fma_gflops_per_core": "fast"}), "peak.fma_gflops_per_core"),
            (lambda d: d.update(machine=[]), "machine is []"),
            (lambda d: d["results"].append(dict(first(d))), "repeats results[0]"),
        ]
        for i, (edit, message) in enumerate(edits):
            doc = json.loads(json.dumps(good))
            edit(doc)
            path = write_json(os.path.join(bad, "edit%d.json" % i), doc)
            proc = report(path, "-o", out)
            self.assertEqual(proc.returncode, 2, (message, proc.stderr))
            self.assertNotIn("Traceback", proc.stderr)
            self.assertTrue(proc.stderr.startswith("report: result file " + path), proc.stderr)
            self.assertIn(message, proc.stderr)
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
            self.assertFalse(os.path.exists(out))
        tune = write_json(os.path.join(bad, "tune.json"),
                          {"candidates": [{"variant": "naive", "params": {}, "median_s": "fast"}]})
        proc = report(self.sweep_path, "--tune", tune, "-o", out)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("candidates[0].median_s is \"fast\"", proc.stderr)


def load_report_module():
    """scripts/report as a module (it has no .py suffix), for its figure helpers."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("attn_report", REPORT)
    spec = importlib.util.spec_from_loader("attn_report", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Figures(unittest.TestCase):
    """What the figures draw: each compute type against its own peak, spread and intervals,
    and one colour per input file."""

    @classmethod
    def setUpClass(cls):
        cls.m = load_report_module()

    def test_each_compute_type_has_its_own_peak(self):
        src = self.m.Source.__new__(self.m.Source)
        src.peak = {"fma_gflops_per_core": 100.0, "fma_gflops_per_core_512": 100.0,
                    "bf16_dot_gflops_per_core": 400.0, "amx_bf16_gflops_per_core": 0.0,
                    "cores": 2}
        self.assertEqual(src.peak_gflops(1), 100.0)
        self.assertEqual(src.peak_gflops(4, "bf16_dot"), 800.0)  # at most the cores
        self.assertIsNone(src.peak_gflops(1, "amx_bf16"))  # 0: this CPU lacks it
        self.assertEqual(self.m.roofline_of({"roofline": "bf16_dot"}), "bf16_dot")
        self.assertEqual(self.m.roofline_of({}), "fma")

    def test_traffic_counts_element_sizes(self):
        r = {"shape": {"batch": 1, "heads_q": 1, "heads_kv": 1, "len_q": 4, "len_kv": 4,
                       "head_dim": 2}}
        self.assertEqual(self.m.traffic_bytes(r), 4 * 4 * 8)
        self.assertEqual(self.m.traffic_bytes(dict(r, dtype="bf16", out_dtype="f32")),
                         2 * 3 * 8 + 4 * 8)

    def test_spread_bars_and_speedup_intervals(self):
        r = {"flops": 1e9, "gflops": 1.0, "median_s": 1.0, "samples_s": [0.5, 1.0, 1.0, 2.0]}
        below, above = self.m.gflops_bar(r)
        self.assertGreater(below, 0)
        self.assertGreater(above, 0)
        one = {"median_s": 2.0, "samples_s": [1.9, 2.0, 2.1]}
        two = {"median_s": 1.0, "samples_s": [0.5, 1.0, 5.0]}
        ratio, lo, hi = self.m.speedup_over_one(one, two)
        self.assertEqual(ratio, 2.0)
        self.assertLess(lo, 1.0)  # wide spread: the interval says so
        self.assertGreater(hi, 2.0)
        paired = dict(two, speedup={"over_threads": 1, "ratio": 1.9, "ci95": [1.8, 2.0]})
        self.assertEqual(self.m.speedup_over_one(one, paired), (1.9, 1.8, 2.0))
        self.assertEqual(self.m.speedup_over_one({"median_s": 2.0}, {"median_s": 1.0}),
                         (2.0, None, None))  # no interval: not drawn

    def test_one_colour_per_file(self):
        for variant in ("avx512", "naive", "someone-elses"):
            shades = {self.m.colour(variant, i, 3) for i in range(3)}
            self.assertEqual(len(shades), 3, variant)
        self.assertEqual(self.m.colour("avx2"), self.m.colour("avx2", 0, 2))


if __name__ == "__main__":
    ATTNBENCH = lib.tool_from_argv()
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        REPORT = sys.argv.pop(1)
    if not REPORT:
        sys.exit("usage: test_report.py PATH/TO/attnbench PATH/TO/scripts/report")
    REPORT = os.path.abspath(REPORT)
    unittest.main(verbosity=2)
