"""Tests of the defaults part of `attnbench info`: the facts with their sources, each runnable
variant's defaults for the reference shapes with one rule per parameter, and agreement with what
the library itself chooses (`plan`'s estimate, forced to each variant). Every expectation comes
from this machine's own `info` output, never from a CPU model.

Usage: /usr/bin/python3 tests/test_info_defaults.py PATH/TO/attnbench [unittest options]"""
import json
import os
import unittest

import attn_testlib as lib

ATTNBENCH = ""  # set by main: lib.tool_from_argv()


def attnbench(*args, env=None):
    return lib.run_tool(ATTNBENCH, *args, env=env)


def info_json(*args):
    return lib.info_json(ATTNBENCH, *args)


class InfoDefaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.info = info_json()
        cls.defaults = cls.info["defaults"]
        cls.tmp = lib.temp_dir()
        cls.no_wisdom = os.path.join(cls.tmp.name, "wisdom.json")  # never written: estimates

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def plan(self, shape, env=None):
        r = attnbench("plan", "--batch", shape["batch"], "--heads", shape["heads"], "--len-q",
                      shape["len_q"], "--len-kv", shape["len_kv"], "--dim", shape["dim"],
                      "--wisdom", self.no_wisdom, "--format", "json", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_facts_and_sources(self):
        caches = {c["name"]: c for c in self.info["topology"]["caches"]}
        for name, fact in self.defaults["caches"].items():
            with self.subTest(cache=name):
                self.assertIn(fact["source"], ("hwloc", "sysconf", "fallback"))
                self.assertGreater(fact["bytes"], 0)
                if fact["source"] == "hwloc":
                    self.assertEqual(fact["bytes"], caches[name]["bytes"])
                self.assertEqual(fact["bytes"], caches[name]["bytes_used_for_tiles"])
        rates = self.defaults["fma_flops_per_cycle"]
        self.assertEqual(set(rates["by_vector_bits"]), {"128", "256", "512"})
        self.assertTrue(rates["source"])
        self.assertEqual(self.defaults["threads"]["value"], self.info["topology"]["default_threads"])

    def test_every_runnable_variant_with_a_rule_per_parameter(self):
        runnable = {v["name"] for v in self.info["variants"] if v["supported"]}
        self.assertEqual({s["name"] for s in self.defaults["shapes"]}, {"P1", "D1"})
        for shape in self.defaults["shapes"]:
            with self.subTest(shape=shape["name"]):
                self.assertEqual({v["name"] for v in shape["variants"]}, runnable)
                for v in shape["variants"]:
                    self.assertEqual(set(v["params"]), set(v["rules"]), v["name"])
                    for param, rule in v["rules"].items():
                        self.assertTrue(rule.startswith("fixed: ") or " of L" in rule,
                                        f"{v['name']} {param}: {rule}")

    def test_defaults_are_what_the_library_chooses(self):
        # The estimate's parameters for a forced variant are its defaults; bf16-compute
        # variants are never estimates, so they are left out here.
        f32 = {v["name"] for v in self.info["variants"]
               if v["supported"] and v["compute_dtype"] == "f32"}
        for shape in self.defaults["shapes"]:
            for v in shape["variants"]:
                if v["name"] not in f32:
                    continue
                with self.subTest(shape=shape["name"], variant=v["name"]):
                    plan = self.plan(shape, env={"ATTN_FORCE_VARIANT": v["name"]})
                    self.assertEqual(plan["variant"], v["name"])
                    self.assertEqual(plan["params"], v["params"])

    def test_estimate_has_the_highest_fma_rate(self):
        f32 = {v["name"] for v in self.info["variants"]
               if v["supported"] and v["compute_dtype"] == "f32"}
        for shape in self.defaults["shapes"]:
            with self.subTest(shape=shape["name"]):
                plan = self.plan(shape)
                self.assertEqual(plan["source"], "estimate")
                self.assertEqual(plan["variant"], shape["estimate"])
                rate = {v["name"]: v["flops_per_cycle"] for v in shape["variants"]}
                self.assertEqual(rate[shape["estimate"]], max(rate[n] for n in f32))

    def test_disabled_isa_leaves_its_variants_out(self):
        avx512 = [v["name"] for v in self.info["variants"]
                  if v["supported"] and "avx512f" in v["isa"]]
        if not avx512:
            self.skipTest("no runnable AVX-512 variant on this CPU")
        info = info_json("--disable-isa", "avx512")
        for shape in info["defaults"]["shapes"]:
            names = {v["name"] for v in shape["variants"]}
            self.assertFalse(names & set(avx512), shape["name"])
            self.assertNotIn(shape["estimate"], avx512)

    def test_text_lines(self):
        r = attnbench("info")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        for start in ("defaults from ", "FLOP/cycle/core ", "threads ", "defaults P1 ",
                      "defaults D1 ", "  estimate "):
            self.assertTrue(any(l.startswith(start) for l in lines), start)


if __name__ == "__main__":
    ATTNBENCH = lib.tool_from_argv()
    unittest.main()
