"""Tests of attnbench on quantized K/V caches (--kv-dtype int8|q4): run checks every variant
that reads them against the oracle on the dequantized K/V, reports what the quantization costs
(max_rel_err_f32), carries kv_dtype in its records, refuses what cannot be quantized; plan
--execute runs them, tune refuses them clearly.

Usage: /usr/bin/python3 tests/test_cli_kv.py PATH/TO/attnbench [unittest options]"""
import json
import unittest

import attn_testlib as lib

ATTNBENCH = ""  # set by main

# Decode-like (Lq = 1) and prefill-like, GQA, d a multiple of 32 (q4 needs it).
SHAPES = [["--batch", "2", "--heads", "4", "--kv-heads", "2", "--len-q", "1", "--len-kv", "77",
           "--dim", "64"],
          ["--batch", "1", "--heads", "2", "--len-q", "9", "--len-kv", "40", "--dim", "32",
           "--causal"]]
QUICK = ["--reps", "1", "--warmup", "0"]


def attnbench(*args):
    return lib.run_tool(ATTNBENCH, *args, timeout=120)


class TestKvDtype(unittest.TestCase):
    def run_json(self, *args):
        r = attnbench(*args, "--format", "json")
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        return json.loads(r.stdout)

    def usage_error(self, *args):
        r = attnbench(*args)
        self.assertEqual(r.returncode, 2, f"{args}: status {r.returncode}, {r.stderr!r}")
        self.assertEqual(r.stdout, "")
        return r.stderr

    def readers(self, kv):
        return [v["name"] for v in lib.list_variants(ATTNBENCH)
                if v["supported"] and kv in v.get("kv_dtypes", [])]

    def test_run_checks_quantized_kv(self):
        for kv in ("int8", "q4"):
            names = self.readers(kv)
            self.assertIn("naive", names)
            for shape in SHAPES:
                with self.subTest(kv=kv, shape=shape):
                    doc = self.run_json("run", *shape, *QUICK, "--kv-dtype", kv, "--variant",
                                        ",".join(names))
                    runs = doc["results"]
                    self.assertEqual(sorted(r["variant"] for r in runs), sorted(names))
                    for r in runs:
                        self.assertEqual((r["dtype"], r["kv_dtype"]), ("f32", kv), r)
                        self.assertTrue(r["ok"], r)
                        self.assertLessEqual(r["max_rel_err"], r["tolerance"], r)
                        # what quantization costs dwarfs float32 arithmetic's error
                        self.assertGreater(r["max_rel_err_f32"], 10 * r["max_rel_err"], r)

    def test_kv_bytes_count_scales(self):
        # the K/V bytes the bandwidth fractions count: the stored rows and their scales
        # (int8: a float32 per row; q4: half a byte per element and a float16 per 32)
        shape = ["--batch", "2", "--heads", "4", "--kv-heads", "2", "--len-q", "1",
                 "--len-kv", "50", "--dim", "64"]
        for kv, row in (("f32", 256), ("bf16", 128), ("int8", 64 + 4), ("q4", 32 + 4)):
            with self.subTest(kv=kv):
                extra = ["--dtype", "bf16"] if kv == "bf16" else ["--kv-dtype", kv]
                doc = self.run_json("run", *shape, *QUICK, *extra, "--variant", "naive")
                self.assertEqual(doc["results"][0]["kv_bytes"], 2 * 2 * 2 * 50 * row)

    def test_long_decode_rows(self):
        # One query row against 4096 keys: where the random shapes stay short, an error that
        # grows with the row's length shows (avx2's q4 V once took the nibbles' offset off at
        # the row's end: 2.8e-5 at Lk = 1024, 2.5e-4 at 8192, against a tolerance of 1e-5).
        # x86 only: under qemu-aarch64 (CI's cross stages) such a run takes minutes.
        if "avx2" not in lib.info_json(ATTNBENCH)["isa"]["detected"]:
            self.skipTest("not an x86-64 CPU with AVX2")
        for kv in ("int8", "q4"):
            with self.subTest(kv=kv):
                doc = self.run_json("run", "--heads", "2", "--len-q", "1", "--len-kv", "4096",
                                    "--dim", "128", "--reps", "1", "--warmup", "0",
                                    "--kv-dtype", kv, "--variant", ",".join(self.readers(kv)))
                for r in doc["results"]:
                    self.assertTrue(r["ok"], r)

    def test_q4_costs_more_than_int8(self):
        err = {kv: self.run_json("run", *SHAPES[0], *QUICK, "--kv-dtype", kv, "--variant",
                                 "naive")["results"][0]["max_rel_err_f32"]
               for kv in ("int8", "q4")}
        self.assertGreater(err["q4"], err["int8"])

    def test_default_is_dtype(self):
        r = self.run_json("run", *SHAPES[0], *QUICK, "--variant", "naive")["results"][0]
        self.assertEqual(r["kv_dtype"], "f32")
        r = self.run_json("run", *SHAPES[0], *QUICK, "--variant", "naive", "--dtype", "bf16",
                          "--kv-dtype", "bf16")["results"][0]
        self.assertEqual(r["kv_dtype"], "bf16")

    def test_refusals(self):
        self.assertIn("multiple of 32", self.usage_error(
            "run", "--len", "8", "--dim", "40", "--kv-dtype", "q4", *QUICK))
        self.assertIn("--kv-dtype", self.usage_error(
            "run", "--len", "8", "--dtype", "bf16", "--kv-dtype", "f32", *QUICK))
        self.assertIn("--kv-dtype", self.usage_error("run", "--len", "8", "--kv-dtype", "int4"))
        self.assertIn("--kv-dtype", self.usage_error("run", "--len", "8", "--dtype", "int8"))
        non_readers = [v["name"] for v in lib.list_variants(ATTNBENCH)
                       if v["supported"] and "int8" not in v.get("kv_dtypes", [])]
        for name in non_readers[:2]:
            self.assertIn("int8 K/V", self.usage_error(
                "run", *SHAPES[0], *QUICK, "--kv-dtype", "int8", "--variant", name))

    def test_plan_and_tune(self):
        r = attnbench("plan", *SHAPES[0], "--kv-dtype", "q4", "--execute", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = attnbench("tune", *SHAPES[0], "--kv-dtype", "int8", "--budget", "1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("quantized", r.stderr)


if __name__ == "__main__":
    ATTNBENCH = lib.tool_from_argv()
    unittest.main()
