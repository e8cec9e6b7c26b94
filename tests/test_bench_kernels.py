"""Tests of scripts/bench-kernels on its cheapest shape (D1, one variant, one round): the table and
JSON it prints, thread scaling (--scaling), and its usage errors. No timing assertions.

Usage: /usr/bin/python3 tests/test_bench_kernels.py PATH/TO/attnbench PATH/TO/scripts/bench-kernels
"""
import json
import subprocess
import sys
import unittest

ATTNBENCH = ""
SCRIPT = ""
QUICK = ["--shapes", "D1", "--variants", "streaming", "--rounds", "2", "--reps", "2",
         "--warmup", "0", "--peak-gflops", "100", "--quiet"]


def bench(*args):
    return subprocess.run(["/usr/bin/python3", SCRIPT, "--attnbench", ATTNBENCH, *args],
                          capture_output=True, text=True, timeout=300)


class BenchKernels(unittest.TestCase):
    def test_single_thread_json(self):
        proc = bench(*QUICK, "--format", "json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        doc = json.loads(proc.stdout)
        self.assertIsNone(doc["scaling_threads"])
        row = doc["shapes"][0]["rows"][0]
        self.assertEqual((row["variant"], row["ok"]), ("streaming", True))
        self.assertGreater(row["kv_gbs"], 0)
        # % read: against plain reads of the same K/V after each run (run --read-ref)
        self.assertGreater(row["read_gbs"], 0)
        self.assertEqual(len(row["fraction_rounds"]), 2)
        self.assertTrue(min(row["fraction_rounds"]) * 100 <= row["pct_read"]
                        <= max(row["fraction_rounds"]) * 100, row)
        self.assertNotIn("speedup", row)
        overhead = doc["execute_overhead"]["rows"]
        self.assertEqual(overhead[0]["threads"], 1)
        for r in overhead:
            self.assertGreater(r["execute_us"], 0)
            self.assertGreater(r["run_variant_us"], 0)

    def test_scaling(self):
        proc = bench(*QUICK, "--scaling", "2", "--format", "json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        doc = json.loads(proc.stdout)
        self.assertEqual(doc["scaling_threads"], 2)
        row = doc["shapes"][0]["rows"][0]
        self.assertEqual(row["threads"], 2)
        self.assertEqual(len(row["speedup_rounds"]), 2)
        lo, hi = row["speedup_range"]
        self.assertTrue(0 < lo <= row["speedup"] <= hi, row)
        self.assertGreater(row["threaded_gflops"], 0)
        self.assertGreater(row["threaded_pct_read"], 0)
        table = bench(*QUICK, "--scaling", "2")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("| K/V GB/s | read GB/s | % read | GFLOP/s 2 thr | speed-up | % read 2 thr |",
                      table.stdout)
        self.assertRegex(table.stdout,
                         r"execute overhead \(tiny problem\): \d+\.\d{3} us \(1 thread, ")
        self.assertRegex(table.stdout, r"\| streaming \|.*\| \d+\.\d\d× \[\d+\.\d\d, \d+\.\d\d\] \|")

    def test_cblas_brings_its_reference(self):
        """cblas runs with the plain BLAS program beside it, and the table gives the ratio."""
        listed = subprocess.run([ATTNBENCH, "list", "--format", "json"], capture_output=True,
                                text=True, check=True)
        names = [v["name"] for v in json.loads(listed.stdout)["variants"] if v["supported"]]
        if "cblas" not in names:
            self.skipTest("cblas is not built")
        quick = [a if a != "streaming" else "cblas" for a in QUICK]
        doc = json.loads(bench(*quick, "--format", "json").stdout)
        rows = {r["variant"]: r for r in doc["shapes"][0]["rows"]}
        self.assertEqual(set(rows), {"cblas", "cblas_reference"})
        self.assertAlmostEqual(rows["cblas"]["vs_cblas_reference"],
                               rows["cblas"]["gflops"] / rows["cblas_reference"]["gflops"])
        table = bench(*quick)
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertRegex(table.stdout, r"Reference: the plain per-head BLAS program .* "
                                       r"cblas at \d+\.\d\d× it")
        skipped = json.loads(bench(*quick, "--skip", "cblas_reference", "--format", "json").stdout)
        self.assertEqual([r["variant"] for r in skipped["shapes"][0]["rows"]], ["cblas"])

    def test_choice_table(self):
        """Per shape, the fastest own kernel against the fastest peer (another library's
        kernels, named by its records' blas_core), with their ratio."""
        listed = subprocess.run([ATTNBENCH, "list", "--format", "json"], capture_output=True,
                                text=True, check=True)
        names = [v["name"] for v in json.loads(listed.stdout)["variants"] if v["supported"]]
        peers = [v for v in ("blis", "onednn", "cblas") if v in names]
        quick = [a if a != "streaming" else ",".join(["streaming"] + peers) for a in QUICK]
        proc = bench(*quick, "--format", "json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        doc = json.loads(proc.stdout)
        (choice,) = doc["choice"]
        rows = {r["variant"]: r for r in doc["shapes"][0]["rows"]}
        self.assertEqual((choice["shape"], choice["own"]), ("D1", "streaming"))
        if not peers:
            self.assertIsNone(choice["peer"])
            return
        fastest = max(peers, key=lambda v: rows[v]["gflops"])
        self.assertEqual(choice["peer"], fastest)
        self.assertAlmostEqual(choice["own_vs_peer"],
                               rows["streaming"]["gflops"] / rows[fastest]["gflops"])
        # A second run may time the peers in another order on a busy machine: any peer.
        table = bench(*quick)
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertRegex(table.stdout, r"\| D1 \| streaming \| \d+\.\d\d \| (%s) \| \d+\.\d\d \| "
                                       r"\d+\.\d\d \|" % "|".join(peers))

    def test_decode_bytes_in_input_type(self):
        # D4 in bf16: 4 causal query rows share one pass over K and V, 2 bytes an element.
        proc = bench("--shapes", "D4", "--dtype", "bf16", "--variants", "streaming", "--rounds",
                     "1", "--reps", "1", "--warmup", "0", "--peak-gflops", "100", "--quiet",
                     "--format", "json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        doc = json.loads(proc.stdout)
        self.assertEqual(doc["dtype"], "bf16")
        row = doc["shapes"][0]["rows"][0]
        self.assertEqual((row["variant"], row["ok"], row["dtype"]),
                         ("streaming", True, "bf16"))
        self.assertAlmostEqual(row["kv_gbs"] * row["median_s"] * 1e9, 2 * 32 * 8192 * 128 * 2,
                               delta=1e3)
        table = bench("--shapes", "D4", "--dtype", "bf16", "--variants", "streaming", "--rounds",
                      "1", "--reps", "1", "--warmup", "0", "--peak-gflops", "100", "--quiet",
                      "--no-check")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("## D4: B=1 H=32 Lq=4 Lk=8192 d=128 causal, bf16", table.stdout)

    def test_decode_bytes_of_a_quantized_cache(self):
        # int8 K/V: d bytes and one float32 scale per row; the error against the float32 data.
        proc = bench("--shapes", "D4", "--kv-dtype", "int8", "--variants", "streaming",
                     "--rounds", "1", "--reps", "1", "--warmup", "0", "--peak-gflops", "100",
                     "--quiet", "--format", "json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        doc = json.loads(proc.stdout)
        self.assertEqual((doc["dtype"], doc["kv_dtype"]), ("f32", "int8"))
        row = doc["shapes"][0]["rows"][0]
        self.assertAlmostEqual(row["kv_gbs"] * row["median_s"] * 1e9,
                               2 * 32 * 8192 * (128 + 4), delta=1e3)
        self.assertGreater(row["max_rel_err_f32"], row["max_rel_err"])

    def test_bad_usage(self):
        for args in (["--scaling", "-1"], ["--scaling", "1"], ["--shapes", "P9"],
                     ["--variants", "nosuch"], ["--rounds", "0"],
                     ["--dtype", "f16", "--variants", "blocked"],
                     ["--kv-dtype", "q4", "--variants", "blocked"], ["--kv-dtype", "int4"],
                     ["--warmup-time", "-1"]):
            with self.subTest(args=args):
                proc = bench(*QUICK, *args)
                self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
                self.assertIn("bench-kernels", proc.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ATTNBENCH, SCRIPT = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1] + sys.argv[3:])
