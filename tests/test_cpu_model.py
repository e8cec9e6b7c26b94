"""Proof that a run under an emulated CPU model (qemu-x86_64 -cpu MODEL, given as
ATTN_EXE_WRAPPER) took that model's path: detection shows the model's ISA and nothing more, the
variants it can run are exactly those that ran (and passed), and every other one is refused
with the reason "CPU lacks ..." naming what is missing, also when ATTN_FORCE_VARIANT names it.

Usage: ATTN_EXE_WRAPPER='qemu-x86_64 -cpu Haswell' \\
       /usr/bin/python3 tests/test_cpu_model.py PATH/TO/attnbench MODEL [unittest options]
(tests/meson.build runs it once per model of its table, with the same wrapper as the model's
conformance and CLI tests)."""
import os
import sys
import unittest

import attn_testlib as lib
from test_machine import expected_why_not

ATTNBENCH = ""
MODEL = ""

# What each emulated model is (qemu 7.2's definitions, in attnbench's ISA names), what must
# therefore run there besides the portable variants, the baseline ISA every build assumes (never
# disabled by the last test), and for AArch64 the SVE vector length info must report (0: none).
MODELS = {
    "haswell": {"isa": ["sse4.2", "avx", "avx2", "fma", "f16c"], "must_run": {"avx2"},
                "base": ["sse4.2"]},
    "nehalem": {"isa": ["sse4.2"], "must_run": set(), "base": ["sse4.2"]},
}
ARM_MAX = ["neon", "fp16", "bf16", "sve", "sve2", "sve_bf16"]  # qemu-aarch64 -cpu max
for bits in (128, 256, 384, 512, 2048):
    MODELS[f"sve{bits}"] = {"isa": ARM_MAX, "must_run": {"sve", "neon", "sve_bf16"}, "base": [],
                            "sve_bits": bits}
MODELS["nosve"] = {"isa": ["neon", "fp16", "bf16"], "must_run": {"neon"}, "base": [],
                   "sve_bits": 0}
# qemu's Fujitsu A64FX: 512-bit SVE without BF16 (and without SVE2), so sve runs, sve_bf16 not.
# Its MIDR (implementer 0x46, part 0x001) is a row of the FMA-rate table.
MODELS["a64fx"] = {"isa": ["neon", "fp16", "sve"], "must_run": {"sve", "neon"}, "base": [],
                   "sve_bits": 512, "fma_row": "Fujitsu A64FX",
                   "fma_flops": {"128": 16, "256": 32, "512": 64}}

# A small odd shape: no dimension a multiple of a vector width, so every edge path runs.
ODD_SHAPE = ["--len-q", "37", "--len-kv", "53", "--dim", "19", "--heads", "3", "--reps", "1",
             "--warmup", "0"]


def attnbench(*args, env=None):
    return lib.run_tool(ATTNBENCH, *args, env=env, timeout=300)


def run_json(*args, env=None):
    return lib.run_json(ATTNBENCH, *args, env=env, timeout=300)


def needs(variant):
    return lib.isa_names(variant)


class CpuModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = MODELS[MODEL]
        cls.info = run_json("info")
        cls.runnable = {v["name"] for v in cls.info["variants"]
                        if set(needs(v)) <= set(cls.model["isa"])}

    def test_detection_is_the_model(self):
        self.assertEqual(self.info["isa"]["detected"], self.model["isa"])
        self.assertEqual(self.info["isa"]["enabled"], self.model["isa"])

    def test_supported_is_what_the_model_has(self):
        self.assertTrue(self.model["must_run"] <= self.runnable, self.runnable)
        for v in self.info["variants"]:
            with self.subTest(variant=v["name"]):
                self.assertEqual(v["supported"], v["name"] in self.runnable)
                lacking = [n for n in needs(v) if n not in self.model["isa"]]
                self.assertEqual(v["why_not"], f"CPU lacks {','.join(lacking)}" if lacking
                                 else None)

    def test_run_all_on_an_odd_shape(self):
        doc = run_json("run", "--variant", "all", *ODD_SHAPE)
        ran = [r["variant"] for r in doc["results"]]
        self.assertEqual(set(ran), self.runnable)
        self.assertTrue(self.model["must_run"] <= set(ran), ran)
        for r in doc["results"]:
            self.assertIs(r["ok"], True, r)
        # The rest are skipped, each with the model's reason.
        why_not = {v["name"]: v["why_not"] for v in self.info["variants"]}
        skipped = {x["variant"]: x["reason"] for x in doc["skipped"]}
        self.assertEqual(set(skipped), set(why_not) - self.runnable)
        for name, reason in skipped.items():
            self.assertEqual(reason, why_not[name])
            self.assertTrue(reason.startswith("CPU lacks "), reason)

    def test_forcing_a_refused_variant_says_why(self):
        refused = [v for v in self.info["variants"] if v["name"] not in self.runnable]
        if not refused:
            self.skipTest(f"{MODEL} runs every variant of this build")
        for v in refused:
            with self.subTest(variant=v["name"]):
                r = attnbench("run", *ODD_SHAPE, env={"ATTN_FORCE_VARIANT": v["name"]})
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(f"ATTN_FORCE_VARIANT={v['name']}", r.stderr)
                self.assertIn(v["why_not"], r.stderr)

    def test_vector_length(self):
        # The SVE vector length the model starts with, in info and in list's isa column.
        if "sve_bits" not in self.model:
            self.skipTest(f"{MODEL} has no SVE")
        bits = self.model["sve_bits"]
        self.assertEqual(self.info["isa"]["sve_vector_bits"], bits)
        sve = [v for v in self.info["variants"] if v["name"] == "sve"]
        self.assertEqual(len(sve), 1, "the sve variant is not in this AArch64 build")
        listing = attnbench("list", "--wide").stdout  # the ISA column
        text = attnbench("info").stdout
        if bits:
            self.assertRegex(listing, rf"(?m)^sve +sve \({bits}-bit\) +yes ")
            self.assertIn(f"(sve {bits}-bit)", text)
        else:
            self.assertRegex(listing, r"(?m)^sve +sve +no: CPU lacks sve ")
            self.assertNotIn("(sve ", text)

    def test_disabling_sve_hands_over_to_neon(self):
        if not self.model.get("sve_bits"):
            self.skipTest(f"{MODEL} has no SVE to disable")
        # Results come in registry order, the first being the default choice: sve, then neon.
        doc = run_json("run", *ODD_SHAPE)
        self.assertEqual([r["variant"] for r in doc["results"]][:2], ["sve", "neon"])
        doc = run_json("run", *ODD_SHAPE, env={"ATTN_DISABLE_ISA": "sve"})
        self.assertEqual(doc["results"][0]["variant"], "neon")
        self.assertTrue(all(r["ok"] for r in doc["results"]), doc["results"])
        skipped = {x["variant"]: x["reason"] for x in doc["skipped"]}
        self.assertEqual(skipped.get("sve"), "disabled by ATTN_DISABLE_ISA: sve")

    def test_fma_rate_row(self):
        # The FMA-rate table row the model's MIDR selects, and the FLOP/cycle it gives.
        if "fma_row" not in self.model:
            self.skipTest(f"{MODEL} is not a row of the FMA-rate table")
        fma = self.info["defaults"]["fma_flops_per_cycle"]
        self.assertTrue(fma["source"].startswith(self.model["fma_row"]), fma["source"])
        self.assertEqual(fma["by_vector_bits"], self.model["fma_flops"])

    def test_disabling_sve_bf16_keeps_sve(self):
        # The bf16 compute type's own token: sve_bf16 refused, the float32 sve untouched.
        if "sve_bf16" not in self.model["isa"]:
            self.skipTest(f"{MODEL} has no SVE BF16")
        doc = run_json("run", *ODD_SHAPE, env={"ATTN_DISABLE_ISA": "sve_bf16"})
        skipped = {x["variant"]: x["reason"] for x in doc["skipped"]}
        self.assertEqual(skipped.get("sve_bf16"), "disabled by ATTN_DISABLE_ISA: sve_bf16")
        self.assertEqual(doc["results"][0]["variant"], "sve")
        self.assertTrue(all(r["ok"] for r in doc["results"]), doc["results"])

    def test_disabled_and_lacking_are_both_named(self):
        # Turning off what the model has on top of what it lacks: both reasons, exactly.
        simd = [n for n in self.model["isa"] if n not in self.model["base"]]
        if not simd:
            self.skipTest(f"{MODEL} has no SIMD extension to disable")
        info = run_json("info", "--disable-isa", ",".join(simd))
        self.assertEqual(info["isa"]["enabled"], self.model["base"])
        both = 0
        for v in info["variants"]:
            with self.subTest(variant=v["name"]):
                want = expected_why_not(v, info["isa"])
                self.assertEqual(v["why_not"], want)
                both += bool(want and "disabled by" in want and "CPU lacks" in want)
        # A variant needing an extension the model has and one it lacks (x86's avx512 on
        # Haswell) must give both reasons; AArch64's variants each need one extension.
        mixed = any(set(needs(v)) & set(simd) and set(needs(v)) - set(self.model["isa"])
                    for v in info["variants"])
        if mixed:
            self.assertGreater(both, 0, "no variant both disabled and lacking")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in MODELS:
        sys.exit(f"usage: test_cpu_model.py PATH/TO/attnbench MODEL ({', '.join(MODELS)}) "
                 "[unittest options]")
    ATTNBENCH = os.path.abspath(sys.argv.pop(1))
    MODEL = sys.argv.pop(1)
    unittest.main()
