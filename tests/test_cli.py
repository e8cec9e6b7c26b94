"""Tests of the attnbench tool: list, run, output formats, .npy input/output against an
independent NumPy float64 reference, and bad input (exit status 2, one message, no crash).

Usage: /usr/bin/python3 tests/test_cli.py PATH/TO/attnbench [unittest options]
(meson test passes the path; ATTNBENCH=... works too)."""
import csv
import io
import json
import os
import re
import subprocess
import unittest

import numpy as np

import attn_testlib as lib

ATTNBENCH = ""  # set by main: lib.tool_from_argv()

# A quick shape for tests that only need the tool to run.
SMALL = ["--batch", "1", "--heads", "2", "--len-q", "5", "--len-kv", "7", "--dim", "3",
         "--reps", "1", "--warmup", "0"]


def attnbench(*args, env=None):
    return lib.run_tool(ATTNBENCH, *args, env=env, timeout=60)


def reference_attention(q, k, v, scale=None, causal=False, kv_lens=None, mask=None,
                        window=None, alibi=None, softcap=None, sinks=None):
    """softmax(scale*Q*K^T + mask)*V in float64, written from the problem's definition:
    causal bottom-right (query i sees keys j <= i + Lk - Lq), GQA (query head h reads kv head
    h // (Hq/Hkv)), per-batch key lengths, -inf in the mask drops a key, and a row with no keys
    left gives zeros. The options of current models: window (left, right; -1 unbounded) keeps
    i' - left <= j <= i' + right, softcap c makes the scaled scores c*tanh(s/c), alibi adds
    slope_h*(j - i'), sinks add exp(sink_h) to each row's denominator."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    batch, heads_q, len_q, dim = q.shape
    heads_kv, len_kv = k.shape[1], k.shape[2]
    scale = 1.0 / np.sqrt(dim) if scale is None else float(np.float32(scale))
    k = np.repeat(k, heads_q // heads_kv, axis=1)
    v = np.repeat(v, heads_q // heads_kv, axis=1)
    scores = scale * np.einsum("bhid,bhjd->bhij", q, k)
    i = np.arange(len_q)[:, None]
    j = np.arange(len_kv)[None, :]
    pos = i + len_kv - len_q
    if softcap is not None:
        scores = softcap * np.tanh(scores / softcap)
    if alibi is not None:
        scores = scores + np.asarray(alibi, dtype=np.float64)[None, :, None, None] * (j - pos)
    allowed = np.ones((batch, 1, len_q, len_kv), dtype=bool)
    if causal:
        allowed &= j <= i + len_kv - len_q
    if window is not None:
        if window[0] >= 0:
            allowed &= j >= pos - window[0]
        if window[1] >= 0:
            allowed &= j <= pos + window[1]
    if kv_lens is not None:
        allowed &= j[None, None] < np.asarray(kv_lens)[:, None, None, None]
    if mask is not None:
        scores = scores + np.asarray(mask, dtype=np.float64)
        allowed &= np.asarray(mask) != -np.inf
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    any_key = np.isfinite(row_max)
    if sinks is not None:
        sink = np.broadcast_to(np.asarray(sinks, dtype=np.float64)[None, :, None, None],
                               row_max.shape)
        row_max = np.where(any_key, np.maximum(row_max, sink), row_max)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.where(allowed, np.exp(scores - row_max), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    if sinks is not None:  # a row that sees no key stays zero whatever its sink
        total = total + np.where(any_key, np.exp(sink - row_max), 0.0)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return weights @ v


def random_inputs(rng, batch, heads_q, heads_kv, len_q, len_kv, dim):
    shape = lambda h, n: (batch, h, n, dim)
    return (rng.standard_normal(shape(heads_q, len_q)).astype(np.float32),
            rng.standard_normal(shape(heads_kv, len_kv)).astype(np.float32),
            rng.standard_normal(shape(heads_kv, len_kv)).astype(np.float32))


def npy_bytes(header, data=b"", version=1):
    """A .npy file with the given header text, e.g. to make malformed ones."""
    text = header.encode("latin1") + b"\n"
    length = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + length + text + data


def save_npy(path, array, version=None):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)
    return path


class CliTestCase(unittest.TestCase):
    def setUp(self):
        self._tmp = lib.temp_dir("attnbench-test-")
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def run_ok(self, *args, env=None):
        r = attnbench(*args, env=env)
        self.assertEqual(r.returncode, 0, f"attnbench {' '.join(map(str, args))}: {r.stderr}")
        return r

    def run_json(self, *args, env=None):
        return json.loads(self.run_ok(*args, "--format", "json", env=env).stdout)

    def assert_usage_error(self, *args, env=None):
        r = attnbench(*args, env=env)
        what = f"attnbench {' '.join(map(str, args))}"
        self.assertEqual(r.returncode, 2, f"{what}: status {r.returncode}, stderr {r.stderr!r}")
        lines = r.stderr.strip().splitlines()
        self.assertTrue(lines, f"{what}: nothing on stderr")
        self.assertTrue(lines[-1].startswith("attnbench"), f"{what}: {r.stderr!r}")
        # One message for the error (a "skipping ..." note for an unsupported variant may
        # precede it).
        self.assertEqual(sum(not l.startswith("attnbench run: skipping") for l in lines), 1,
                         f"{what}: {r.stderr!r}")
        self.assertEqual(r.stdout, "", f"{what}: wrote to stdout")
        return r.stderr

    def supported_variants(self):
        return lib.supported_variants(ATTNBENCH)


class TestHelpAndList(CliTestCase):
    def test_help(self):
        r = self.run_ok("--help")
        for command in ("list", "run"):
            self.assertIn(command, r.stdout)
        r = self.run_ok("run", "--help")
        for flag in ("variant", "batch", "heads", "kv-heads", "len-q", "len-kv", "dim", "scale",
                     "causal", "seed", "reps", "warmup", "layout", "kv-lens", "mask", "params",
                     "no-check", "q", "k", "v", "out", "format"):
            self.assertIn(f"--{flag} ", r.stdout)
        self.assertIn("--format", self.run_ok("list", "--help").stdout)

    def test_no_command(self):
        r = attnbench()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)

    def test_list_text(self):
        out = self.run_ok("list").stdout.splitlines()
        self.assertTrue(out[0].startswith("variant"))
        self.assertIn("tolerance", out[0])
        # A row per variant; a wrapped description continues on indented lines.
        names = [line.split()[0] for line in out[1:] if not line.startswith(" ")]
        self.assertIn("naive", names)
        doc = self.run_json("list")
        # one row per registered variant, then one per variant this build leaves out
        self.assertEqual(names, [v["name"] for v in doc["variants"]] +
                         [v["name"] for v in doc["not_built"]])
        for v in doc["not_built"]:
            self.assertTrue(v["why"].startswith("not built"))
            r = attnbench("run", "--variant", v["name"], *SMALL)
            self.assertEqual(r.returncode, 2)
            self.assertIn("not built", r.stderr)

    def test_reference_variants_are_never_candidates(self):
        """A reference-only variant (cblas_reference) runs by name, but tune refuses it as a
        candidate."""
        refs = [v["name"] for v in self.run_json("list")["variants"]
                if v["reference_only"] and v["supported"]]
        for name in refs:
            r = attnbench("run", "--variant", name, *SMALL)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = attnbench("tune", "--variant", name, "--no-store", "--budget", "5", *SMALL[:10])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("a reference, not a candidate", r.stderr)

    def test_cblas_is_openblas(self):
        """cblas's records name the OpenBLAS core, and say so when cblas_sgemm is another
        library's (BLIS exports the same names): preloading BLIS must be caught."""
        names = [v["name"] for v in self.run_json("list")["variants"] if v["supported"]]
        if "cblas" not in names:
            self.skipTest("cblas is not built")
        core = self.run_json("run", "--variant", "cblas", *SMALL)["results"][0]["blas_core"]
        if core is None:
            self.skipTest("the CBLAS is not OpenBLAS")
        self.assertNotIn("not OpenBLAS", core)
        blis = "/usr/lib/x86_64-linux-gnu/libblis.so.4"
        if os.path.exists(blis) and not lib.WRAPPER:
            # AddressSanitizer's runtime must stay first in the library list: preload it too
            ldd = subprocess.run(["ldd", ATTNBENCH], capture_output=True, text=True).stdout
            asan = [w for line in ldd.splitlines() if "libasan" in line
                    for w in line.split() if w.startswith("/")]
            env = {"LD_PRELOAD": " ".join(asan[:1] + [blis])}
            doc = self.run_json("run", "--variant", "cblas", *SMALL, env=env)
            self.assertIn("not OpenBLAS", doc["results"][0]["blas_core"])

    def test_list_json(self):
        doc = self.run_json("list")
        machine = doc["machine"]
        for key, kind in (("vendor", str), ("model_name", str), ("family", int),
                          ("model", int), ("isa", list), ("l1d_bytes", int), ("l2_bytes", int),
                          ("l3_bytes", int)):
            self.assertIsInstance(machine[key], kind, key)
        names = [v["name"] for v in doc["variants"]]
        self.assertIn("naive", names)
        self.assertEqual(len(names), len(set(names)))
        for v in doc["variants"]:
            self.assertIsInstance(v["isa"], str)
            self.assertIsInstance(v["supported"], bool)
            self.assertIsInstance(v["tolerance"], float)
            if v["supported"]:
                self.assertIsNone(v["why_not"])
            else:
                self.assertTrue(v["why_not"])
            for p in v["params"]:
                self.assertLessEqual(p["min"], p["max"])
                self.assertGreaterEqual(p["multiple_of"], 1)
                self.assertIsInstance(p["name"], str)

    def test_disabled_isa_is_reported(self):
        isa_variants = [v for v in self.run_json("list")["variants"] if v["isa"] and v["supported"]]
        if not isa_variants:
            self.skipTest("no ISA-specific variant runs on this CPU")
        v = isa_variants[0]
        env = {"ATTN_DISABLE_ISA": v["isa"]}
        listed = {x["name"]: x for x in self.run_json("list", env=env)["variants"]}
        self.assertFalse(listed[v["name"]]["supported"])
        self.assertIn("ATTN_DISABLE_ISA", listed[v["name"]]["why_not"])
        message = self.assert_usage_error("run", "--variant", v["name"], *SMALL, env=env)
        self.assertIn("cannot run", message)
        # The default set skips it and says so.
        r = self.run_ok("run", *SMALL, "--format", "json", env=env)
        self.assertNotIn(v["name"], [x["variant"] for x in json.loads(r.stdout)["results"]])
        self.assertIn(f"skipping {v['name']}", r.stderr)


class TestShapes(CliTestCase):
    """The named shapes (harness/shapes.c): list --shapes and --shape on run, tune and plan."""
    SIZES = ("batch", "heads_q", "heads_kv", "len_q", "len_kv", "head_dim")

    def shapes(self):
        return {s["name"]: s for s in self.run_json("list", "--shapes")["shapes"]}

    def test_list(self):
        doc = self.run_json("list", "--shapes")
        names = [s["name"] for s in doc["shapes"]]
        self.assertEqual(len(names), len(set(names)))
        shapes = self.shapes()
        for name in ("P1", "P2", "P3", "D1"):
            self.assertEqual(shapes[name]["set"], "reference", name)
        self.assertTrue(shapes["P3"]["causal"])
        self.assertEqual(shapes["D1"]["len_q"], 1)
        for s in shapes.values():
            for key in self.SIZES:
                self.assertGreater(s[key], 0, (s["name"], key))
            self.assertEqual(s["heads_q"] % s["heads_kv"], 0, s["name"])
            self.assertIsInstance(s["causal"], bool)
            if s["kv_lens"] is not None:  # one key length per sequence, each <= Lk
                self.assertEqual(len(s["kv_lens"]), s["batch"], s["name"])
                self.assertTrue(all(0 <= n <= s["len_kv"] for n in s["kv_lens"]), s["name"])
        # D3, the ragged serving batch: 16 sequences of 100 to 16384 keys.
        self.assertEqual((min(shapes["D3"]["kv_lens"]), max(shapes["D3"]["kv_lens"])),
                         (100, shapes["D3"]["len_kv"]))
        text = self.run_ok("list", "--shapes").stdout
        self.assertIn("kv_lens=100..16384", text)
        for name in names:
            self.assertRegex(text, rf"(?m)^{re.escape(name)}\s")

    def test_run_takes_the_shape_and_flags_override_it(self):
        shapes = self.shapes()
        gqa = shapes["quick-gqa"]
        run = ["run", "--variant", "naive", "--reps", "1", "--warmup", "0"]
        got = self.run_json(*run, "--shape", "quick-gqa")["results"][0]["shape"]
        self.assertEqual({k: got[k] for k in self.SIZES}, {k: gqa[k] for k in self.SIZES})
        self.assertEqual(got["causal"], gqa["causal"])
        for order in (["--shape", "quick-gqa", "--len-q", "5"],
                      ["--len-q", "5", "--shape", "quick-gqa"]):
            got = self.run_json(*run, *order)["results"][0]["shape"]
            want = dict({k: gqa[k] for k in self.SIZES}, len_q=5)
            self.assertEqual({k: got[k] for k in self.SIZES}, want, order)
        causal = self.run_json(*run, "--shape", "quick-causal")["results"][0]["shape"]
        self.assertTrue(causal["causal"])
        plan = self.run_ok("plan", "--shape", "quick-decode", "--wisdom", self.path("w.json"))
        self.assertIn("plan: ", plan.stdout)

    def test_plan_names_a_peer(self):
        """plan says whether its choice is a peer (another library's kernels, the records'
        blas_core) or this project's own kernel."""
        records = self.run_json("run", "--variant", "all", *SMALL)["results"]
        own = [r["variant"] for r in records if not r["blas_core"]]
        peers = [r for r in records if r["blas_core"] and r["variant"] != "cblas_reference"
                 and r["compute_dtype"] == "f32"]  # bf16 compute: planned with a bound only
        for r in peers + [{"variant": own[0], "blas_core": None}]:
            with self.subTest(variant=r["variant"]):
                env = {"ATTN_FORCE_VARIANT": r["variant"]}
                text = self.run_ok("plan", "--shape", "quick-decode", env=env).stdout
                want = ("chosen: %s (a peer: %s)" % (r["variant"], r["blas_core"])
                        if r["blas_core"] else "chosen: %s (this project's kernel)" % r["variant"])
                self.assertIn(want + "\n", text)
                doc = self.run_json("plan", "--shape", "quick-decode", env=env)
                self.assertEqual(doc["peer"], r["blas_core"])

    def test_unknown_shape(self):
        for command in ("run", "tune", "plan"):
            with self.subTest(command=command):
                message = self.assert_usage_error(command, "--shape", "P9")
                self.assertIn("unknown shape 'P9'", message)
                self.assertIn("P1", message)


class TestRun(CliTestCase):
    DONE_WHEN = ["--batch", "2", "--heads", "6", "--kv-heads", "2", "--len-q", "37",
                 "--len-kv", "101", "--dim", "19", "--causal"]

    def test_every_variant_correct_on_gqa_causal(self):
        doc = self.run_json("run", "--variant", "all", *self.DONE_WHEN)
        self.assertEqual([r["variant"] for r in doc["results"]], self.supported_variants())
        for r in doc["results"]:
            self.assertIs(r["ok"], True, r)
            # A variant computing in bf16 is held to its own (declared) tolerance.
            self.assertLessEqual(r["max_rel_err"],
                                 1e-5 if r["compute_dtype"] == "f32" else r["tolerance"], r)

    def test_json_fields(self):
        doc = self.run_json("run", "--variant", "naive", *self.DONE_WHEN, "--scale", "0.25",
                            "--reps", "3", "--warmup", "1")
        self.assertIsInstance(doc["machine"]["isa"], list)
        self.assertEqual(len(doc["results"]), 1)
        r = doc["results"][0]
        self.assertEqual(r["variant"], "naive")
        self.assertIsInstance(r["params"], dict)
        self.assertEqual(r["shape"], {**r["shape"], "batch": 2, "heads_q": 6, "heads_kv": 2,
                                      "len_q": 37, "len_kv": 101, "head_dim": 19, "causal": True,
                                      "scale": 0.25})
        # Threads default to the library's: every core of the first NUMA node.
        default_threads = self.run_json("info")["topology"]["default_threads"]
        self.assertEqual((r["threads"], r["reps"]), (default_threads, 3))
        for key in ("median_s", "min_s", "max_s", "gflops", "max_abs_err", "max_rel_err",
                    "tolerance"):
            self.assertIsInstance(r[key], float, key)
        self.assertTrue(0 < r["min_s"] <= r["median_s"] <= r["max_s"], r)
        self.assertIs(r["ok"], True)
        # FLOPs count attended pairs only: causal with Lk - Lq = 64 sees (64+1..64+37) keys.
        pairs = sum(i + 101 - 37 + 1 for i in range(37))
        self.assertAlmostEqual(r["flops"], 4 * 2 * 6 * 19 * pairs)
        self.assertAlmostEqual(r["gflops"], r["flops"] / r["median_s"] * 1e-9, delta=1e-6)

    def test_default_scale_is_resolved(self):
        r = self.run_json("run", "--variant", "naive", *SMALL)["results"][0]
        self.assertAlmostEqual(r["shape"]["scale"], 1 / np.sqrt(3), places=6)

    def test_no_check(self):
        r = self.run_json("run", "--variant", "naive", *SMALL, "--no-check")["results"][0]
        self.assertIsNone(r["max_abs_err"])
        self.assertIsNone(r["max_rel_err"])
        self.assertIs(r["ok"], True)

    def test_threads(self):
        for threads in (1, 2):
            r = self.run_json("run", *self.DONE_WHEN, "--threads", threads, "--reps", "2")
            for result in r["results"]:
                self.assertEqual(result["threads"], threads)
                self.assertIs(result["ok"], True, result)
        r = self.run_json("run", "--variant", "naive", *SMALL, "--threads", "0")
        self.assertGreaterEqual(r["results"][0]["threads"], 1)

    def test_thread_list(self):
        """Several thread counts in one run: interleaved rounds, a speed-up per later count."""
        args = ["--variant", "naive,streaming", *self.DONE_WHEN, "--threads", "1,2", "--reps", "3"]
        results = self.run_json("run", *args)["results"]
        self.assertEqual([(r["variant"], r["threads"]) for r in results],
                         [("naive", 1), ("naive", 2), ("streaming", 1), ("streaming", 2)])
        for r in results:
            self.assertIs(r["ok"], True, r)
            if r["threads"] == 1:
                self.assertIsNone(r["speedup"])
                continue
            s = r["speedup"]
            self.assertEqual(s["over_threads"], 1)
            lo, hi = s["ci95"]
            self.assertTrue(0 < lo <= s["ratio"] <= hi, s)
        rows = list(csv.DictReader(io.StringIO(self.run_ok("run", *args, "--format",
                                                           "csv").stdout)))
        self.assertEqual([(row["threads"], row["speedup_over_threads"]) for row in rows],
                         [("1", ""), ("2", "1")] * 2)
        self.assertEqual(rows[0]["speedup"], "")
        self.assertGreater(float(rows[1]["speedup"]), 0)
        lines = self.run_ok("run", *args).stdout.splitlines()
        self.assertIn("threads=1,2", lines[1])
        header = next(l for l in lines if l.startswith("variant"))
        self.assertIn("speed-up [95% CI]", header)
        self.assertRegex(lines[lines.index(header) + 2], r"^naive .* 2 .* \d+\.\d\dx \[")
        # One thread count: no speed-up column.
        header = next(l for l in self.run_ok("run", "--variant", "naive", *SMALL).stdout
                      .splitlines() if l.startswith("variant"))
        self.assertNotIn("speed-up", header)

    def test_forced_variant(self):
        env = {"ATTN_FORCE_VARIANT": "naive"}
        r = self.run_json("run", *SMALL, env=env)
        self.assertEqual([x["variant"] for x in r["results"]], ["naive"])
        self.assert_usage_error("run", *SMALL, env={"ATTN_FORCE_VARIANT": "nosuch"})
        # An explicit --variant is the user's choice, not a default one.
        r = self.run_json("run", "--variant", "all", *SMALL, env=env)
        self.assertEqual([x["variant"] for x in r["results"]], self.supported_variants())

    def test_csv(self):
        r = self.run_ok("run", *SMALL, "--causal", "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        self.assertEqual([row["variant"] for row in rows], self.supported_variants())
        for row in rows:
            self.assertEqual(row["ok"], "true")
            self.assertEqual((row["len_q"], row["len_kv"], row["causal"]), ("5", "7", "true"))
            float(row["median_s"]), float(row["gflops"]), float(row["max_rel_err"])

    def test_text(self):
        lines = self.run_ok("run", "--variant", "naive", *SMALL).stdout.splitlines()
        header = next(l for l in lines if l.startswith("variant"))
        for column in ("params", "median ms", "CV", "GFLOP/s", "max_rel_err", "ok"):
            self.assertIn(column, header)
        row = lines[lines.index(header) + 1].split()
        self.assertEqual((row[0], row[-1]), ("naive", "yes"))
        wide = self.run_ok("run", "--variant", "naive", *SMALL, "--wide").stdout.splitlines()
        header = next(l for l in wide if l.startswith("variant"))
        for column in ("dtype", "IQR ms", "min ms", "max ms", "max_abs_err", "tolerance"):
            self.assertIn(column, header)

    def test_params(self):
        self.run_ok("run", "--variant", "naive", "--params", "naive:", *SMALL)
        self.assert_usage_error("run", "--variant", "naive", "--params", "naive:bogus=1", *SMALL)
        self.assert_usage_error("run", "--variant", "naive", "--params", "nosuch:a=1", *SMALL)
        self.assert_usage_error("run", "--variant", "naive", "--params", "naive", *SMALL)
        tunable = [v for v in self.run_json("list")["variants"] if v["supported"] and v["params"]]
        if tunable:
            v = tunable[0]
            p = v["params"][0]
            r = self.run_json("run", "--variant", v["name"], *SMALL, "--params",
                              f"{v['name']}:{p['name']}={p['min']}")["results"][0]
            self.assertEqual(r["params"][p["name"]], p["min"])
            self.assert_usage_error("run", "--variant", v["name"], *SMALL, "--params",
                                    f"{v['name']}:{p['name']}={p['max'] + 1}")
            if v["name"] != "naive":
                self.assert_usage_error("run", "--variant", "naive", *SMALL, "--params",
                                        f"{v['name']}:{p['name']}={p['min']}")


class TestFiles(CliTestCase):
    def write_inputs(self, q, k, v, version=None):
        return [save_npy(self.path(f"{n}.npy"), x, version) for n, x in zip("qkv", (q, k, v))]

    def run_out(self, *args, variant="naive"):
        out = self.path("out.npy")
        self.run_ok("run", "--variant", variant, "--reps", "1", "--warmup", "0", "--out-npy", out,
                    *args)
        return np.load(out)

    def assert_close(self, got, want):
        self.assertEqual(got.dtype, np.float32)
        self.assertEqual(got.shape, want.shape)
        self.assertLessEqual(np.max(np.abs(got - want)), 1e-5)

    def test_out_matches_numpy_causal_gqa_scale(self):
        rng = np.random.default_rng(7)
        q, k, v = random_inputs(rng, 2, 6, 2, 37, 101, 19)
        fq, fk, fv = self.write_inputs(q, k, v)
        want = reference_attention(q, k, v, scale=0.3, causal=True)
        for layout in ("bhld", "blhd"):
            got = self.run_out("--q", fq, "--k", fk, "--v", fv, "--causal", "--scale", "0.3",
                               "--layout", layout)
            self.assert_close(got, want)

    def test_npy_versions_and_shape_from_files(self):
        rng = np.random.default_rng(8)
        q, k, v = random_inputs(rng, 1, 4, 1, 20, 7, 5)  # Lq > Lk: early causal rows see nothing
        want = reference_attention(q, k, v, causal=True)
        for version in ((1, 0), (2, 0), (3, 0)):
            fq, fk, fv = self.write_inputs(q, k, v, version)
            got = self.run_out("--q", fq, "--k", fk, "--v", fv, "--causal")
            self.assert_close(got, want)
        self.assertFalse(np.any(np.isnan(got)))
        self.assertTrue(np.all(got[:, :, :13] == 0))

    def test_kv_lens_and_mask(self):
        rng = np.random.default_rng(9)
        q, k, v = random_inputs(rng, 3, 2, 2, 6, 9, 8)
        mask = rng.uniform(-2, 2, (6, 9)).astype(np.float32)
        mask[rng.uniform(size=mask.shape) < 0.3] = -np.inf
        mask[2, :] = -np.inf  # a fully masked row
        fq, fk, fv = self.write_inputs(q, k, v)
        fm = save_npy(self.path("mask.npy"), mask)
        got = self.run_out("--q", fq, "--k", fk, "--v", fv, "--mask", fm, "--kv-lens", "9,4,0")
        self.assert_close(got, reference_attention(q, k, v, kv_lens=[9, 4, 0], mask=mask))

    def test_model_options(self):
        rng = np.random.default_rng(12)
        q, k, v = random_inputs(rng, 2, 6, 2, 9, 13, 8)
        fq, fk, fv = self.write_inputs(q, k, v)
        sinks = np.array([0.5, -1.0, 2.0, 0.0, 1e4, -1e4], dtype=np.float32)
        fs = save_npy(self.path("sinks.npy"), sinks)
        # the standard slopes of 6 heads: 2^-2, 2^-4, 2^-6, 2^-8, then 2^-1, 2^-3
        slopes = np.array([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3])
        common = ["--q", fq, "--k", fk, "--v", fv]
        for variant in ("naive", "streaming"):
            with self.subTest(variant=variant):
                got = self.run_out(*common, "--causal", "--window", "3", "--alibi", "--softcap",
                                   "2.5", "--sinks", fs, variant=variant)
                self.assert_close(got, reference_attention(q, k, v, causal=True, window=(3, -1),
                                                           alibi=slopes, softcap=2.5,
                                                           sinks=sinks))
                got = self.run_out(*common, "--window", "1,2", "--sinks", "0.25", variant=variant)
                want = reference_attention(q, k, v, window=(1, 2), sinks=[0.25] * 6)
                self.assert_close(got, want)
        # The record says what ran.
        r = json.loads(self.run_ok("run", "--variant", "naive", *SMALL, "--window", "2,0",
                                   "--softcap", "30", "--format", "json").stdout)
        shape = r["results"][0]["shape"]
        self.assertEqual(shape["window"], [2, 0])
        self.assertEqual(shape["softcap"], 30)
        self.assertFalse(shape["alibi"])
        self.assertFalse(shape["sinks"])

    def test_paged_kv(self):
        rng = np.random.default_rng(13)
        q, k, v = random_inputs(rng, 2, 4, 2, 3, 13, 8)
        fq, fk, fv = self.write_inputs(q, k, v)
        want = reference_attention(q, k, v, causal=True)
        common = ["--q", fq, "--k", fk, "--v", fv, "--causal"]
        # 13 keys in pages of 4: 4 pages per sequence; a table of distinct pages, one spare
        table = np.array([[7, 2, 5, 0, -1], [1, 6, 3, 4, -1]], dtype=np.int32)
        ft = save_npy(self.path("table.npy"), table)
        for variant in ("naive", "streaming"):
            with self.subTest(variant=variant):
                self.assert_close(self.run_out(*common, "--page-size", "4", variant=variant), want)
                self.assert_close(self.run_out(*common, "--page-size", "4", "--block-table", ft,
                                               variant=variant), want)
        r = json.loads(self.run_ok("run", "--variant", "naive", *SMALL, "--page-size", "2",
                                   "--format", "json").stdout)
        self.assertEqual(r["results"][0]["shape"]["page_size"], 2)
        self.assertTrue(r["results"][0]["ok"])

    def test_random_inputs_are_seeded(self):
        args = SMALL + ["--causal"]
        a, b = self.run_out(*args, "--seed", "5"), self.run_out(*args, "--seed", "5")
        c = self.run_out(*args, "--seed", "6")
        self.assertTrue(np.array_equal(a, b))
        self.assertFalse(np.array_equal(a, c))
        # The layout changes where values live, not what they are.
        self.assertTrue(np.array_equal(a, self.run_out(*args, "--seed", "5", "--layout", "blhd")))

    def test_out_is_written_atomically(self):
        out = self.path("out.npy")
        with open(out, "w") as f:
            f.write("old")
        self.run_ok("run", "--variant", "naive", *SMALL, "--out-npy", out)
        self.assertEqual(np.load(out).shape, (1, 2, 5, 3))
        self.assertEqual(os.listdir(self.dir), ["out.npy"])  # no temporary file left over

    def test_bad_files(self):
        rng = np.random.default_rng(10)
        q, k, v = random_inputs(rng, 1, 2, 1, 4, 6, 3)
        fq, fk, fv = self.write_inputs(q, k, v)
        with open(fq, "rb") as f:
            raw = f.read()
        header_end = raw.index(b"\n") + 1

        def bad(name, content):
            with open(self.path(name), "wb") as f:
                f.write(content)
            return self.path(name)

        cases = {
            "missing": self.path("nonexistent.npy"),
            "empty": bad("empty.npy", b""),
            "directory": self.dir,
            "truncated data": bad("trunc.npy", raw[:-5]),
            "truncated header": bad("trunch.npy", raw[:header_end - 10]),
            "trailing bytes": bad("trail.npy", raw + b"\0\0\0\0"),
            "bad magic": bad("magic.npy", b"\x93NUMPX" + raw[6:]),
            "version 4.0": bad("v4.npy", raw[:6] + b"\x04\x00" + raw[8:]),
            "garbage header": bad("garbage.npy", npy_bytes("{'descr': '<f4', 'shape': [4]}")),
            "missing key": bad("nokey.npy", npy_bytes("{'descr': '<f4', 'shape': (1, 2, 4, 3)}",
                                                     q.tobytes())),
            "unknown key": bad("extra.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                                     "'shape': (1, 2, 4, 3), 'x': 1}",
                                                     q.tobytes())),
            "float64": save_npy(self.path("f8.npy"), q.astype(np.float64)),
            "big-endian": save_npy(self.path("be.npy"), q.astype(">f4")),
            "int32": save_npy(self.path("i4.npy"), q.astype(np.int32)),
            "fortran order": save_npy(self.path("fortran.npy"), np.asfortranarray(q)),
            "3-d": save_npy(self.path("3d.npy"), q[0]),
            "huge shape": bad("huge.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                                    "'shape': (99999999999, 99999, 99999, 9)}")),
            "short shape": bad("short.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                                      "'shape': (1, 2, 4, 3)}", q.tobytes()[:-4],
                                                      version=2)),
        }
        for what, path in cases.items():
            with self.subTest(what):
                self.assert_usage_error("run", "--variant", "naive", "--q", path, "--k", fk,
                                        "--v", fv)
        # Shapes that disagree: with the flags, between K and V, and a mask of the wrong shape.
        self.assert_usage_error("run", "--q", fq, "--k", fk, "--v", fv, "--dim", "4")
        self.assert_usage_error("run", "--q", fq, "--k", fk, "--v", fq)
        mask = save_npy(self.path("mask.npy"), np.zeros((6, 4), np.float32))
        self.assert_usage_error("run", "--q", fq, "--k", fk, "--v", fv, "--mask", mask)
        self.assert_usage_error("run", *SMALL, "--out-npy", self.path("no/such/dir/out.npy"))


def bf16_round(x):
    """float32 -> bfloat16 -> float32, round to nearest even, on the uint32 bits (no NaN)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


class TestDtypes(CliTestCase):
    """--dtype bf16|f16 and --out-dtype: rounding of the inputs, .npy float16 in and out, the
    two error figures, and variants that cannot read a type."""

    SHAPE = (2, 4, 2, 9, 23, 16)  # B, Hq, Hkv, Lq, Lk, d: GQA, Lq != Lk

    def variants_reading(self, dtype):
        return [v for v in self.run_json("list")["variants"]
                if v["supported"] and dtype in v["dtypes"]]

    def inputs(self, seed):
        return random_inputs(np.random.default_rng(seed), *self.SHAPE)

    def run_files(self, variant, files, *args, out="out.npy"):
        out = self.path(out)
        self.run_ok("run", "--variant", variant, "--reps", "1", "--warmup", "0", "--q", files[0],
                    "--k", files[1], "--v", files[2], "--causal", "--out-npy", out, *args)
        return np.load(out)

    def assert_close(self, got, want, tol=1e-5):
        self.assertEqual(got.shape, want.shape)
        self.assertLessEqual(np.max(np.abs(got.astype(np.float64) - want)), tol)

    def test_list_and_info_show_dtypes(self):
        doc = self.run_json("list")
        for v in doc["variants"]:
            self.assertIn("f32", v["dtypes"], v["name"])
            self.assertTrue(set(v["dtypes"]) <= {"f32", "bf16", "f16"}, v["name"])
            self.assertIn(v["compute_dtype"], ("f32", "bf16", "f16"), v["name"])
        naive = next(v for v in doc["variants"] if v["name"] == "naive")
        self.assertEqual((naive["dtypes"], naive["compute_dtype"]), (["f32", "bf16", "f16"], "f32"))
        header, row = next((lines[0], l) for lines in [self.run_ok("list").stdout.splitlines()]
                           for l in lines if l.startswith("naive "))
        self.assertIn("reads (computes)", header)
        self.assertIn("f32,bf16,f16 (f32)", row)
        info = {v["name"]: v for v in self.run_json("info")["variants"]}
        for v in doc["variants"]:
            self.assertEqual(info[v["name"]]["dtypes"], v["dtypes"])
            self.assertEqual(info[v["name"]]["compute_dtype"], v["compute_dtype"])

    def test_f16_files_match_numpy(self):
        q, k, v = (x.astype(np.float16) for x in self.inputs(21))
        files = [save_npy(self.path(f"{n}16.npy"), x) for n, x in zip("qkv", (q, k, v))]
        want = reference_attention(q, k, v, causal=True)
        readers = [x for x in self.variants_reading("f16") if x["compute_dtype"] == "f32"]
        self.assertIn("naive", [x["name"] for x in readers])
        for variant in readers:
            with self.subTest(variant=variant["name"]):
                got = self.run_files(variant["name"], files, "--dtype", "f16")
                self.assertEqual(got.dtype, np.float32)
                self.assert_close(got, want)
        # A float32 file given with --dtype f16 is rounded to float16 on the way in.
        files32 = [save_npy(self.path(f"{n}32.npy"), x.astype(np.float32) + np.float32(1e-4))
                   for n, x in zip("qkv", (q, k, v))]
        rounded = [np.load(f).astype(np.float16) for f in files32]
        got = self.run_files("naive", files32, "--dtype", "f16")
        self.assert_close(got, reference_attention(*rounded, causal=True))
        self.assertGreater(np.max(np.abs(got - reference_attention(
            *(np.load(f) for f in files32), causal=True))), 1e-5)  # the rounding shows

    def test_bf16_from_f32_files_match_numpy(self):
        q, k, v = self.inputs(22)
        files = [save_npy(self.path(f"{n}.npy"), x) for n, x in zip("qkv", (q, k, v))]
        want = reference_attention(*(bf16_round(x) for x in (q, k, v)), causal=True)
        readers = [x for x in self.variants_reading("bf16") if x["compute_dtype"] == "f32"]
        self.assertIn("naive", [x["name"] for x in readers])
        for variant in readers:
            with self.subTest(variant=variant["name"]):
                self.assert_close(self.run_files(variant["name"], files, "--dtype", "bf16"), want)
        # Without --dtype the same files are float32 and the result is not the bf16 one.
        got32 = self.run_files("naive", files)
        self.assert_close(got32, reference_attention(q, k, v, causal=True))
        self.assertGreater(np.max(np.abs(got32 - want)), 1e-4)

    def test_out_dtype(self):
        common = ["--variant", "naive", *SMALL, "--causal"]
        out32, out_same = self.path("o32.npy"), self.path("same.npy")
        self.run_ok("run", *common, "--dtype", "f16", "--out-npy", out32)
        self.run_ok("run", *common, "--dtype", "f16", "--out-dtype", "same", "--out-npy", out_same)
        o32, o16 = np.load(out32), np.load(out_same)
        self.assertEqual((o32.dtype, o16.dtype), (np.float32, np.float16))
        # The half output is the float32 one rounded to nearest even.
        self.assertTrue(np.array_equal(o16, o32.astype(np.float16)))
        self.assertGreater(np.max(np.abs(o16.astype(np.float32) - o32)), 0)
        # bf16 output: numpy has no bfloat16, so the file is float32 holding bf16 values.
        self.run_ok("run", *common, "--dtype", "bf16", "--out-npy", out32)
        self.run_ok("run", *common, "--dtype", "bf16", "--out-dtype", "same", "--out-npy", out_same)
        o32, ob = np.load(out32), np.load(out_same)
        self.assertEqual(ob.dtype, np.float32)
        self.assertTrue(np.array_equal(ob, bf16_round(o32)))
        # The half output is checked with its rounding allowed for.
        r = self.run_json("run", *common, "--dtype", "f16", "--out-dtype", "same")["results"][0]
        r32 = self.run_json("run", *common, "--dtype", "f16")["results"][0]
        self.assertEqual((r["dtype"], r["out_dtype"], r32["out_dtype"]), ("f16", "f16", "f32"))
        self.assertAlmostEqual(r["tolerance"], r32["tolerance"] + 2.0 ** -11)
        self.assertTrue(r["ok"])

    def test_error_figures(self):
        for dtype in ("f32", "bf16", "f16"):
            with self.subTest(dtype=dtype):
                doc = self.run_json("run", "--variant", "all", *SMALL, "--causal",
                                    "--dtype", dtype)
                self.assertTrue(doc["results"])
                for r in doc["results"]:
                    self.assertEqual((r["dtype"], r["out_dtype"]), (dtype, "f32"), r)
                    self.assertIn(r["compute_dtype"], ("f32", "bf16", "f16"))
                    self.assertIsInstance(r["max_rel_err_f32"], float)
                    self.assertGreaterEqual(r["max_rel_err_f32"], 0)
                    self.assertTrue(r["ok"], r)
                    self.assertLessEqual(r["max_rel_err"], r["tolerance"], r)
                    if r["compute_dtype"] != "f32":  # reduced precision: its tolerance only
                        continue
                    if dtype == "f32":
                        self.assertEqual(r["max_rel_err_f32"], r["max_rel_err"], r)
                    else:  # what rounding costs dwarfs float32 arithmetic's error
                        self.assertLessEqual(r["max_rel_err"], 1e-5, r)
                        self.assertGreater(r["max_rel_err_f32"], 10 * r["max_rel_err"], r)
        # Unchecked: both null.
        r = self.run_json("run", "--variant", "naive", *SMALL, "--dtype", "bf16",
                          "--no-check")["results"][0]
        self.assertIsNone(r["max_rel_err_f32"])
        # CSV and text carry them too.
        rows = list(csv.DictReader(io.StringIO(self.run_ok(
            "run", "--variant", "naive", *SMALL, "--dtype", "f16", "--format", "csv").stdout)))
        self.assertEqual((rows[0]["dtype"], rows[0]["compute_dtype"]), ("f16", "f32"))
        self.assertGreater(float(rows[0]["max_rel_err_f32"]), float(rows[0]["max_rel_err"]))
        lines = self.run_ok("run", "--variant", "naive", *SMALL, "--dtype", "f16",
                            "--wide").stdout
        self.assertIn("dtype=f16", lines)
        header = next(l for l in lines.splitlines() if l.startswith("variant"))
        for column in ("dtype", "max_rel_err", "max_rel_err_f32"):
            self.assertIn(column, header.split())
        f32_header = next(l for l in self.run_ok("run", "--variant", "naive", *SMALL, "--wide")
                          .stdout.splitlines() if l.startswith("variant"))
        self.assertNotIn("max_rel_err_f32", f32_header)  # the same figure: not shown twice

    def test_variant_refusing_a_dtype_is_skipped(self):
        for dtype in ("bf16", "f16"):
            refusing = [v["name"] for v in self.run_json("list")["variants"]
                        if v["supported"] and dtype not in v["dtypes"]]
            reading = [v["name"] for v in self.variants_reading(dtype)]
            with self.subTest(dtype=dtype):
                r = attnbench("run", "--variant", "all", *SMALL, "--dtype", dtype,
                              "--format", "json")
                self.assertEqual(r.returncode, 0, r.stderr)
                doc = json.loads(r.stdout)
                self.assertEqual([x["variant"] for x in doc["results"]], reading)
                skipped = {x["variant"]: x["reason"] for x in doc["skipped"]}
                for name in refusing:
                    self.assertIn(f"not {dtype}", skipped[name])
                    self.assertIn(f"skipping {name}: reads", r.stderr)
                    message = self.assert_usage_error("run", "--variant", name, *SMALL,
                                                      "--dtype", dtype)
                    self.assertIn(f"not {dtype}", message)
                if not refusing:
                    self.assertFalse(skipped)
        # Every variant of an f32 run is run: nothing skipped for its type.
        doc = self.run_json("run", "--variant", "all", *SMALL)
        self.assertFalse([x for x in doc["skipped"] if "inputs, not" in x["reason"]])

    def test_bad_dtype(self):
        for args in (["--dtype", "f8"], ["--dtype", ""], ["--dtype", "F16"],
                     ["--dtype", "bf16,f16"], ["--dtype"], ["--out-dtype", "bf16"],
                     ["--out-dtype", "f16"], ["--out-dtype", ""]):
            with self.subTest(args=args):
                message = self.assert_usage_error("run", "--variant", "naive", *SMALL, *args)
                self.assertIn("dtype", message)
        # An f16 output cannot be written from bf16 input, nor a bf16 .npy at all: the bf16
        # output is written as float32 (above); a float64 file stays refused with any dtype.
        f8 = save_npy(self.path("f8.npy"), np.zeros((1, 2, 5, 3)))
        self.assertIn("float16", self.assert_usage_error("run", "--variant", "naive", "--q", f8,
                                                         "--dtype", "f16"))

    def test_sweep_dtype(self):
        out = self.path("sweep.json")
        r = attnbench("sweep", "--len", "8", "--dim", "4", "--heads", "2", "--reps", "1",
                      "--warmup", "0", "--dtype", "bf16", "--out-dtype", "same", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            doc = json.load(f)
        self.assertEqual((doc["sweep"]["dtype"], doc["sweep"]["out_dtype"]), ("bf16", "bf16"))
        self.assertEqual({x["variant"] for x in doc["results"]},
                         {v["name"] for v in self.variants_reading("bf16")})
        for x in doc["results"]:
            self.assertEqual((x["dtype"], x["out_dtype"]), ("bf16", "bf16"))
            self.assertTrue(x["ok"], x)
        # Skipped: what this CPU cannot run (the reason from `list`) and what does not read bf16;
        # both sets come from `list` on this machine, never from what one CPU has.
        listed = self.run_json("list")["variants"]
        refusing = {v["name"] for v in listed if v["supported"] and "bf16" not in v["dtypes"]}
        unsupported = {v["name"]: v["why_not"] for v in listed if not v["supported"]}
        self.assertEqual({x["variant"] for x in doc["skipped"]}, refusing | set(unsupported))
        for x in doc["skipped"]:
            self.assertIn(unsupported.get(x["variant"], "not bf16"), x["reason"], x)
        for args in (["--dtype", "f8"], ["--out-dtype", "x"]):
            r = attnbench("sweep", "--len", "8", "--dim", "4", "--variant", "naive", *args,
                          "-o", out)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("attnbench sweep: --", r.stderr)
        if refusing:
            r = attnbench("sweep", "--len", "8", "--dim", "4", "--dtype", "bf16", "--variant",
                          sorted(refusing)[0], "-o", out)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("not bf16", r.stderr)


class TestBadInput(CliTestCase):
    CASES = [
        ["frobnicate"],
        ["run", "--frobnicate"],
        ["run", "-x"],
        ["run", "stray-argument"],
        ["list", "--format", "csv"],
        ["run", "--variant", "nosuch"],
        ["run", "--variant", "naive,nosuch"],
        ["run", "--variant", "naive,"],
        ["run", "--variant", ""],
        ["run", "--variant", "naive,naive"],
        ["run", "--batch"],
        ["run", "--batch", "12x"],
        ["run", "--batch", "0"],
        ["run", "--batch", "-3"],
        ["run", "--batch", ""],
        ["run", "--batch", " 4"],
        ["run", "--batch", "99999999999999999999999"],
        ["run", "--dim", "1.5"],
        ["run", "--heads", "6", "--kv-heads", "4"],
        ["run", "--len-q", "4000000000", "--len-kv", "4000000000", "--dim", "1000000"],
        ["run", "--scale", "0"],
        ["run", "--scale", "-1"],
        ["run", "--scale", "nan"],
        ["run", "--scale", "inf"],
        ["run", "--scale", "1e39"],
        ["run", "--scale", "1e-50"],
        ["run", "--scale", "0.5x"],
        ["run", "--reps", "0"],
        ["run", "--warmup", "-1"],
        ["run", "--threads", "-1"],
        ["run", "--threads", "100000"],
        ["run", "--threads", "1,1"],
        ["run", "--threads", "1,"],
        ["run", "--threads", "1,x"],
        ["run", "--seed", "-1"],
        ["run", "--layout", "bhdl"],
        ["run", "--format", "xml"],
        ["run", "--kv-lens", "3,3"],
        ["run", "--kv-lens", "3,"],
        ["run", "--batch", "2", "--kv-lens", "3,x"],
        ["run", "--len-kv", "7", "--kv-lens", "8"],
        ["run", "--params", "naive:bogus=1"],
        ["run", "--window", "x"],
        ["run", "--window", "-2"],
        ["run", "--window", "3,"],
        ["run", "--window", ",3"],
        ["run", "--softcap", "0"],
        ["run", "--softcap", "-1"],
        ["run", "--sinks", "nan"],
        ["run", "--alibi-slopes", "/nonexistent/slopes.npy"],
        ["run", "--page-size", "0"],
        ["run", "--block-table", "/nonexistent/table.npy"],
        ["run", "--page-size", "4", "--block-table", "/nonexistent/table.npy"],
        ["plan", "--page-size", "-3"],
        ["tune", "--window", "-5"],
        ["plan", "--softcap", "inf"],
    ]

    def test_bad_input(self):
        for args in self.CASES:
            with self.subTest(args=args):
                # Valid flags around the bad one keep an accidental acceptance quick.
                extra = [] if args[0] != "run" else ["--len-q", "4", "--dim", "2", "--reps", "1"]
                if any(a in args for a in ("--len-q", "--len-kv", "--dim", "--batch")):
                    extra = []
                self.assert_usage_error(*args, *extra)

    def test_overflow_is_reported_as_such(self):
        message = self.assert_usage_error("run", "--len-q", "4000000000", "--len-kv",
                                          "4000000000", "--dim", "1000000")
        self.assertIn("overflow", message)

    def test_huge_sizes_overflow_cleanly(self):
        # Sizes near 2^63 must be refused by validation, without overflowing on the way (the
        # sanitize suite runs this under UBSan: a signed overflow there is a crash, not exit 2).
        top = str(2**63 - 1)
        cases = [["--len-q", top, "--dim", "16"], ["--len-kv", top], ["--dim", top],
                 ["--batch", top], ["--heads", top, "--kv-heads", "1"],
                 ["--heads", str(2**62), "--kv-heads", str(2**62)],
                 ["--len-q", str(2**62), "--len-kv", str(2**62), "--layout", "blhd"]]
        for args in cases:
            for command in (["run"], ["tune", "--budget", "1", "--no-store"]):
                if command[0] == "tune" and "--layout" in args:
                    continue  # tune has no --layout
                with self.subTest(args=command + args):
                    message = self.assert_usage_error(*command, *args)
                    self.assertIn("overflow", message)

    def test_huge_but_valid_shape(self):
        # Valid (its size fits in 64 bits) but needs petabytes: refused before allocating.
        message = self.assert_usage_error("run", "--variant", "naive", "--heads", "1",
                                          "--len-q", "1000000000000",
                                          "--len-kv", "1", "--dim", "1000")
        self.assertIn("allocate", message)


if __name__ == "__main__":
    ATTNBENCH = lib.tool_from_argv()
    unittest.main()
