"""Tests of "knowing the machine": `attnbench info` against the kernel's own view (/proc/cpuinfo
flags, /sys cache sizes and sharing), --disable-isa, ATTN_FORCE_VARIANT, the peak cache, and
multi-threaded runs (bit-for-bit repeatable for a thread count; 1 vs 2 threads within tolerance).

Usage: /usr/bin/python3 tests/test_machine.py PATH/TO/attnbench [unittest options]
(meson test passes the path; ATTNBENCH=... works too)."""
import json
import os
import re
import unittest

import numpy as np

import attn_testlib as lib

ATTNBENCH = ""  # set by main: lib.tool_from_argv()

# attnbench's ISA names -> the /proc/cpuinfo flags that mean the same (all must be present).
CPUINFO_FLAGS = {
    "sse4.2": ["sse4_2"], "avx": ["avx"], "avx2": ["avx2"], "fma": ["fma"], "f16c": ["f16c"],
    "avx512f": ["avx512f"], "avx512bw": ["avx512bw"], "avx512vl": ["avx512vl"],
    "avx512dq": ["avx512dq"], "avx512_bf16": ["avx512_bf16"], "avx512_fp16": ["avx512_fp16"],
    "avx512_vnni": ["avx512_vnni"], "amx": ["amx_tile", "amx_bf16"],
}

SYS_CACHE = "/sys/devices/system/cpu/cpu0/cache"


def attnbench(*args, env=None, timeout=120):
    return lib.run_tool(ATTNBENCH, *args, env=env, timeout=timeout)


def info_json(*args, env=None):
    return lib.info_json(ATTNBENCH, *args, env=env)


def cpuinfo_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return None


def sysfs_size(text):
    """'48K' -> 49152 (sysfs cache sizes)."""
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip())
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def sysfs_caches():
    """{level: (bytes, shared_cpu_list)} of cpu0's data/unified caches."""
    caches = {}
    if not os.path.isdir(SYS_CACHE):
        return caches
    for index in sorted(os.listdir(SYS_CACHE)):
        path = os.path.join(SYS_CACHE, index)
        if not index.startswith("index"):
            continue

        def read(name):
            with open(os.path.join(path, name)) as f:
                return f.read().strip()
        if read("type") == "Instruction":
            continue
        caches[int(read("level"))] = (sysfs_size(read("size")), read("shared_cpu_list"))
    return caches


class Info(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.info = info_json()

    @unittest.skipUnless(os.uname().machine == "x86_64", "x86 flags")
    def test_isa_flags_match_cpuinfo(self):
        flags = cpuinfo_flags()
        if flags is None:
            self.skipTest("no flags line in /proc/cpuinfo")
        detected = set(self.info["isa"]["detected"])
        for name, needed in CPUINFO_FLAGS.items():
            with self.subTest(isa=name):
                self.assertEqual(name in detected, all(f in flags for f in needed),
                                 f"{name}: attnbench {'has' if name in detected else 'lacks'} it, "
                                 f"/proc/cpuinfo flags {needed}")
        self.assertEqual(set(self.info["isa"]["enabled"]), detected)

    def test_cache_sizes_and_sharing_match_sysfs(self):
        caches = sysfs_caches()
        if not caches:
            self.skipTest("no " + SYS_CACHE)
        ours = {c["level"]: c for c in self.info["topology"]["caches"]}
        machine = self.info["machine"]
        used = {1: machine["l1d_bytes"], 2: machine["l2_bytes"], 3: machine["l3_bytes"]}
        for level, (size, shared) in caches.items():
            if level not in ours:
                continue
            with self.subTest(level=level):
                self.assertEqual(ours[level]["bytes"], size)
                self.assertEqual(used[level], size, "tile heuristics must see hwloc's size")
                # cpu0 is in the first instance of every level
                self.assertEqual(ours[level]["shared_by_cpus"][0], shared)

    def test_topology_counts(self):
        t = self.info["topology"]
        self.assertEqual(t["source"], "hwloc")
        self.assertGreaterEqual(t["packages"], 1)
        self.assertGreaterEqual(t["numa_nodes"], 1)
        self.assertGreaterEqual(t["cores"], 1)
        self.assertLessEqual(t["cores"], t["hardware_threads"])
        self.assertLessEqual(t["hardware_threads"], os.cpu_count())
        self.assertEqual(len(t["core_cpus"]), t["cores"])
        self.assertTrue(1 <= t["default_threads"] <= t["cores"])

    def test_machine_id_is_stable_and_ignores_disable_mask(self):
        mid = self.info["machine"]["id"]
        self.assertRegex(mid, r"^[0-9a-f]{16}$")
        self.assertEqual(info_json()["machine"]["id"], mid)
        self.assertEqual(info_json("--disable-isa", "avx512,avx2")["machine"]["id"], mid)

    def test_variants_listed(self):
        names = [v["name"] for v in self.info["variants"]]
        self.assertIn("streaming", names)
        self.assertTrue(all(v["supported"] or v["why_not"] for v in self.info["variants"]))

    def test_text_output(self):
        r = attnbench("info")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.info["machine"]["id"], r.stdout)
        self.assertIn("L1d", r.stdout)


def expected_why_not(variant, isa):
    """The reason `info` must give for `variant` from the detected and enabled ISA lists: every
    cause that applies, in the variant's ISA order; None when it runs."""
    needs = lib.isa_names(variant)
    disabled = [n for n in needs if n in isa["detected"] and n not in isa["enabled"]]
    lacking = [n for n in needs if n not in isa["detected"]]
    parts = ([f"disabled by ATTN_DISABLE_ISA: {','.join(disabled)}"] if disabled else []) + \
            ([f"CPU lacks {','.join(lacking)}"] if lacking else [])
    return "; ".join(parts) or None


class DisableIsa(unittest.TestCase):
    def test_disable_avx512_in_info(self):
        info = info_json("--disable-isa", "avx512")
        self.assertFalse([i for i in info["isa"]["enabled"] if i.startswith("avx512")])
        self.assertEqual(info["isa"]["disable_isa"], "avx512")
        self.assertEqual(set(info["isa"]["enabled"]),
                         {i for i in info["isa"]["detected"] if not i.startswith("avx512")})

    def test_why_not_names_every_reason(self):
        # Whatever this CPU has: each variant's reason follows from the detected and enabled
        # lists, the disabled part and the lacking part both when both apply.
        for disable in ([], ["--disable-isa", "avx512"], ["--disable-isa", "avx512,avx2"]):
            info = info_json(*disable)
            for v in info["variants"]:
                with self.subTest(disable=disable, variant=v["name"]):
                    want = expected_why_not(v, info["isa"])
                    self.assertEqual(v["supported"], want is None)
                    self.assertEqual(v["why_not"], want)

    def test_garbage_is_refused(self):
        for command in (["info"], ["run", "--len-q", "4", "--dim", "4", "--reps", "1"]):
            with self.subTest(command=command[0]):
                r = attnbench(*command, "--disable-isa", "avx512,nonsense")
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("nonsense", r.stderr)
                self.assertEqual(r.stdout, "")

    def test_run_honours_it(self):
        r = attnbench("run", "--disable-isa", "avx512,avx2", "--len-q", "8", "--dim", "4",
                      "--reps", "1", "--format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        ran = [x["variant"] for x in json.loads(r.stdout)["results"]]
        isa_of = {v["name"]: v["isa"] for v in info_json()["variants"]}
        self.assertFalse([v for v in ran if "avx" in isa_of[v]], ran)

    def test_onednn_jit_obeys_it(self):
        # oneDNN picks its own JIT kernels: the mask caps them too (dnnl_set_max_cpu_isa), so
        # the ISA its record names stays within what is left (min(cap, the CPU's)).
        names = {v["name"]: v for v in info_json()["variants"]}
        if not names.get("onednn", {}).get("supported") or os.uname().machine != "x86_64":
            self.skipTest("no onednn variant on an x86-64 build")
        for mask, allowed in (("avx512", {"avx2", "avx", "sse41"}),
                              ("avx512,avx2", {"avx", "sse41"})):
            with self.subTest(mask=mask):
                r = attnbench("run", "--disable-isa", mask, "--variant", "onednn", "--len", "16",
                              "--heads", "1", "--dim", "8", "--reps", "1", "--format", "json")
                self.assertEqual(r.returncode, 0, r.stderr)
                core = json.loads(r.stdout)["results"][0]["blas_core"]
                isa = re.match(r"^oneDNN \S+ (\S+) \(", core)
                self.assertTrue(isa, core)
                self.assertIn(isa.group(1), allowed, core)
                self.assertNotIn("avx512", core)


class ForceVariant(unittest.TestCase):
    SHAPE = ["--len-q", "8", "--dim", "4", "--reps", "1", "--warmup", "0"]

    def test_unknown_name(self):
        for command in (["run", *self.SHAPE], ["info"]):
            with self.subTest(command=command[0]):
                r = attnbench(*command, env={"ATTN_FORCE_VARIANT": "no_such_variant"})
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("no_such_variant", r.stderr)
                self.assertIn("ATTN_FORCE_VARIANT", r.stderr)

    def test_unsupported_name(self):
        info = info_json()
        simd = [v for v in info["variants"] if v["isa"]]
        if not simd:
            self.skipTest("no ISA-specific variant in this build")
        variant = simd[0]
        env = {"ATTN_FORCE_VARIANT": variant["name"], "ATTN_DISABLE_ISA": variant["isa"]}
        r = attnbench("run", *self.SHAPE, env=env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(variant["name"], r.stderr)
        self.assertIn("cannot run", r.stderr)

    def test_forced_variant_runs_alone(self):
        r = attnbench("run", *self.SHAPE, "--format", "json",
                      env={"ATTN_FORCE_VARIANT": "streaming"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([x["variant"] for x in json.loads(r.stdout)["results"]], ["streaming"])
        info = info_json(env={"ATTN_FORCE_VARIANT": "streaming"})
        self.assertEqual(info["forced_variant"]["name"], "streaming")


class Threads(unittest.TestCase):
    # (name, shape): a prefill shape split over groups and query rows (causal: uneven rows),
    # GQA, and decode shapes whose keys are split over threads (one group, one row).
    SHAPES = [
        ("prefill-causal", ["--batch", "2", "--heads", "3", "--len-q", "67", "--len-kv", "67",
                            "--dim", "20", "--causal"]),
        ("gqa", ["--batch", "1", "--heads", "8", "--kv-heads", "2", "--len-q", "40",
                 "--len-kv", "90", "--dim", "16"]),
        ("decode-one-group", ["--batch", "1", "--heads", "1", "--len-q", "1", "--len-kv", "5000",
                              "--dim", "24"]),
        ("decode-mqa-kvlens", ["--batch", "2", "--heads", "4", "--kv-heads", "1", "--len-q", "1",
                               "--len-kv", "3000", "--kv-lens", "3000,1100", "--dim", "8"]),
    ]

    @classmethod
    def setUpClass(cls):
        cls.tmp = lib.temp_dir()
        cls.variants = [v["name"] for v in info_json()["variants"] if v["supported"]]
        # each in a type it reads: float32, unless it reads only halves (ggml_f16)
        cls.dtype = {v["name"]: "f32" if "f32" in v["dtypes"] else v["dtypes"][0]
                     for v in info_json()["variants"]}
        # Splitting a decode problem's keys over threads changes where a bf16-compute variant
        # rounds its weights, so 1 and 2 threads agree to its tolerance, others to 1e-5.
        cls.agree = {v["name"]: v["tolerance"] if v.get("compute_dtype", "f32") != "f32" else 1e-5
                     for v in info_json()["variants"]}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_once(self, variant, shape, threads, tag):
        out = os.path.join(self.tmp.name, f"{variant}-{tag}.npy")
        r = attnbench("run", "--variant", variant, *shape, "--threads", threads, "--reps", "1",
                      "--warmup", "0", "--dtype", self.dtype[variant], "--out-npy", out,
                      "--format", "json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        result = json.loads(r.stdout)["results"][0]
        self.assertEqual(result["threads"], threads)
        self.assertTrue(result["ok"], result)  # within tolerance of the float64 oracle
        with open(out, "rb") as f:
            return f.read()

    def test_repeatable_and_close_to_one_thread(self):
        for variant in self.variants:
            for name, shape in self.SHAPES:
                with self.subTest(variant=variant, shape=name):
                    first = self.run_once(variant, shape, 2, f"{name}-2a")
                    again = self.run_once(variant, shape, 2, f"{name}-2b")
                    self.assertEqual(first, again, "2-thread output changed between runs")
                    one = self.run_once(variant, shape, 1, f"{name}-1")
                    o1 = np.load(os.path.join(self.tmp.name, f"{variant}-{name}-1.npy"))
                    o2 = np.load(os.path.join(self.tmp.name, f"{variant}-{name}-2a.npy"))
                    self.assertEqual(o1.shape, o2.shape)
                    err = np.abs(o1.astype(np.float64) - o2).max() / max(np.abs(o1).max(), 1e-30)
                    self.assertLess(err, self.agree[variant])
                    del one

    def test_bad_thread_count(self):
        r = attnbench("run", "--len-q", "4", "--dim", "4", "--threads", "-1")
        self.assertEqual(r.returncode, 2)


# Per-core and all-cores keys of each roofline in `attnbench peak --format json`.
ROOFLINE_KEYS = {"fma": ("fma_gflops_per_core", "fma_gflops_all_cores"),
                 "fma256": ("fma_gflops_per_core_256", "fma_gflops_all_cores_256"),
                 "fma512": ("fma_gflops_per_core_512", "fma_gflops_all_cores_512"),
                 "bf16_dot": ("bf16_dot_gflops_per_core", "bf16_dot_gflops_all_cores"),
                 "amx_bf16": ("amx_bf16_gflops_per_core", "amx_bf16_gflops_all_cores")}


class Peak(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One small measurement (never cached) that every test reuses.
        with lib.temp_dir() as tmp:
            r = attnbench("peak", "--format", "json", "--triad-mib", "8",
                          env={"XDG_CACHE_HOME": tmp})
        if r.returncode != 0:
            raise AssertionError(f"peak failed ({r.returncode}): {r.stderr}")
        cls.measured = json.loads(r.stdout)

    def setUp(self):
        self.tmp = lib.temp_dir()
        self.env = {"XDG_CACHE_HOME": self.tmp.name}
        self.mid = info_json()["machine"]["id"]
        self.path = os.path.join(self.tmp.name, "attnbench", f"peak-{self.mid}.json")

    def tearDown(self):
        self.tmp.cleanup()

    # Made-up per-core figures of the cache write_cache writes, one per roofline.
    FAKE_PER_CORE = {"fma": 100.0, "fma256": 50.0, "fma512": 80.0, "bf16_dot": 300.0,
                     "amx_bf16": 700.0}

    def write_cache(self, drop=(), **fields):
        """A cache in this build's format: the measured document, made-up figures (0 where the
        measurement found none), fields overridden, keys in `drop` left out."""
        doc = {k: v for k, v in self.measured.items() if k not in ("cached", "cache_file")}
        doc.update({"machine_id": self.mid, "measured_at": "2000-01-01T00:00:00Z", "cores": 2,
                    "read_gbs_1t": 10.0, "read_gbs_all": 16.0, "triad_gbs_1t": 30.0,
                    "triad_gbs_all": 40.0})
        for name, (per_core, all_cores) in ROOFLINE_KEYS.items():
            present = self.measured[per_core] > 0
            doc[per_core] = self.FAKE_PER_CORE[name] if present else 0.0
            doc[all_cores] = 2 * doc[per_core]
        doc.update(fields)
        for key in drop:
            doc.pop(key)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "w") as f:
            json.dump(doc, f)

    def test_small_measurement(self):
        peak = self.measured
        for key in ("fma_gflops_per_core", "fma_gflops_all_cores", "triad_gbs_1t",
                    "triad_gbs_all", "read_gbs_1t", "read_gbs_all"):
            self.assertGreater(peak[key], 0, key)
        # No ratio between the all-core and the one-core figure is asserted: on a loaded 2-core
        # machine (meson runs two tests at once) the all-core run may get one core or less.
        self.assertFalse(peak["cached"])
        self.assertIsNone(peak["cache_file"], "a non-default size must not be cached")

    def test_a_roofline_for_every_variant_that_runs(self):
        """Every roofline has its keys (0 where absent); the roofline of each variant that runs
        here was measured; fma is the widest FMA width's figure when there is one."""
        peak = self.measured
        for name, keys in ROOFLINE_KEYS.items():
            for key in keys:
                self.assertGreaterEqual(peak[key], 0, key)
        for v in info_json()["variants"]:
            self.assertIn(v["roofline"], ROOFLINE_KEYS, v["name"])
            if v["supported"]:
                self.assertGreater(peak[ROOFLINE_KEYS[v["roofline"]][0]], 0, v["name"])
        widest = next((k for k in ("fma512", "fma256") if peak[ROOFLINE_KEYS[k][0]] > 0), None)
        if widest:
            self.assertEqual(peak["fma_gflops_per_core"], peak[ROOFLINE_KEYS[widest][0]])
        r = attnbench("peak", "--triad-mib", "8", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ROOFLINE_KEYS:
            self.assertRegex(r.stdout, rf"(?m)^  {name} ", name)
        self.assertRegex(r.stdout, r"(?m)^  read ")

    def test_cached_figures_are_used(self):
        self.write_cache()
        r = attnbench("peak", "--format", "json", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        peak = json.loads(r.stdout)
        self.assertTrue(peak["cached"])
        self.assertEqual(peak["fma_gflops_per_core"], 100.0)
        # run: peak_fraction = GFLOP/s / (per-core peak x threads); decode: bw_fraction against
        # the read bandwidth
        for threads in (1, 2):
            r = attnbench("run", "--variant", "streaming", "--heads", "2", "--len-q", "1",
                          "--len-kv", "512", "--dim", "16", "--threads", threads, "--reps", "2",
                          "--format", "json", env=self.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            res = json.loads(r.stdout)["results"][0]
            self.assertAlmostEqual(res["peak_fraction"], res["gflops"] / (100.0 * threads),
                                   delta=1e-9 + 1e-6 * res["peak_fraction"])
            kv_bytes = 2 * 2 * 512 * 16 * 4
            bw = 10.0 if threads == 1 else 16.0
            self.assertAlmostEqual(res["bw_fraction"], kv_bytes / res["median_s"] / 1e9 / bw,
                                   delta=1e-6 * res["bw_fraction"])
        r = attnbench("run", "--variant", "streaming", "--len-q", "4", "--dim", "4",
                      "--reps", "1", "--format", "json", env=self.env)
        self.assertIsNone(json.loads(r.stdout)["results"][0]["bw_fraction"])  # not decode

    def test_a_peak_measured_while_busy_says_so(self):
        """The load average at the measurement is cached with the figures; one taken while the
        machine was busy (load >= half the CPUs) is marked so, and `peak` repeats it with the
        way out; a quiet one, or a cache from before the load was recorded, says nothing."""
        for fields, busy in (({"loadavg_at_measure": 1.6, "cpus_online_at_measure": 2}, True),
                             ({"loadavg_at_measure": 0.2, "cpus_online_at_measure": 2}, False),
                             ({}, False)):
            with self.subTest(fields=fields):
                self.write_cache(drop=[k for k in ("loadavg_at_measure", "cpus_online_at_measure",
                                                   "busy_when_measured") if k not in fields],
                                 **fields)
                r = attnbench("peak", env=self.env)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("cached", r.stdout)
                self.assertEqual("while the machine was busy (load average 1.60 on 2 CPUs)"
                                 in r.stdout, busy, r.stdout)
                self.assertEqual("--refresh" in r.stdout, busy, r.stdout)
                r = attnbench("peak", "--format", "json", env=self.env)
                peak = json.loads(r.stdout)
                self.assertTrue(peak["cached"])
                self.assertIs(peak["busy_when_measured"], busy)
                self.assertEqual(peak["loadavg_at_measure"], fields.get("loadavg_at_measure"))
        # a measurement records the load it started under, a number >= 0 where Linux has it
        peak = self.measured
        self.assertIsInstance(peak["busy_when_measured"], bool)
        if os.path.exists("/proc/loadavg"):
            self.assertGreaterEqual(peak["loadavg_at_measure"], 0)
            self.assertEqual(peak["cpus_online_at_measure"], os.cpu_count())
            self.assertEqual(peak["busy_when_measured"],
                             peak["loadavg_at_measure"] >= 0.5 * os.cpu_count())

    def test_read_ref(self):
        # --read-ref: a plain read of the problem's K and V after each run; bw_fraction_ref is
        # the K/V bytes per second at the median time over the reads' median (no cache needed)
        decode = ["--variant", "streaming", "--heads", "2", "--len-q", "1", "--len-kv", "512",
                  "--dim", "16", "--reps", "3"]
        for threads in (1, 2):
            r = attnbench("run", *decode, "--threads", threads, "--read-ref", "--format", "json",
                          env=self.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            res = json.loads(r.stdout)["results"][0]
            self.assertGreater(res["read_ref_gbs"], 0)
            kv_bytes = 2 * 2 * 512 * 16 * 4
            self.assertEqual(res["kv_bytes"], kv_bytes)
            self.assertAlmostEqual(res["bw_fraction_ref"],
                                   kv_bytes / res["median_s"] / 1e9 / res["read_ref_gbs"],
                                   delta=1e-6 * res["bw_fraction_ref"])
        r = attnbench("run", *decode, "--threads", "1", "--read-ref", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^streaming on 1 thread: K/V [0-9.]+ GB/s, a plain read "
                                   r"of them [0-9.]+ GB/s \(--read-ref\), [0-9.]+ of it$")
        # without it, or with K and V under one 512-byte row each: null, not an error
        for extra in ([], ["--read-ref", "--len-kv", "3", "--dim", "4"]):
            r = attnbench("run", *decode, *extra, "--format", "json", env=self.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            res = json.loads(r.stdout)["results"][0]
            self.assertIsNone(res["read_ref_gbs"], extra)
            self.assertIsNone(res["bw_fraction_ref"], extra)

    def test_warmup_time(self):
        # warm-up rounds go on past --warmup until --warmup-time seconds; the record says how many
        r = attnbench("run", "--variant", "naive", "--len-q", "2", "--dim", "4", "--len-kv", "8",
                      "--warmup", "1", "--warmup-time", "0.2", "--reps", "2", "--format", "json",
                      env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(json.loads(r.stdout)["results"][0]["warmup"], 10)
        for bad in ("0", "-1", "x"):
            r = attnbench("run", "--len-q", "2", "--dim", "4", "--warmup-time", bad, env=self.env)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("--warmup-time", r.stderr)

    def test_fraction_against_each_variants_roofline(self):
        self.write_cache()
        rooflines = {v["name"]: v["roofline"] for v in info_json()["variants"]}
        r = attnbench("run", "--variant", "all", "--len-q", "3", "--len-kv", "40", "--dim", "8",
                      "--threads", "1", "--reps", "1", "--format", "json", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        for res in json.loads(r.stdout)["results"]:
            with self.subTest(variant=res["variant"]):
                self.assertEqual(res["roofline"], rooflines[res["variant"]])
                against = self.FAKE_PER_CORE[res["roofline"]]
                self.assertAlmostEqual(res["peak_fraction"], res["gflops"] / against,
                                       delta=1e-9 + 1e-6 * res["peak_fraction"])
                # the library kernel that ran: named for the variants calling a library only
                # (cblas and its reference when OpenBLAS; blis and onednn always, with their
                # versions)
                if res["variant"] == "blis":
                    self.assertRegex(res["blas_core"], r"^BLIS \d+\.\d+\S* \S+ ")
                elif res["variant"] in ("onednn", "onednn_bf16"):
                    self.assertRegex(res["blas_core"], r"^oneDNN \d+\.\d+\.\d+ \S+ \(")
                elif res["variant"] in ("ggml", "ggml_f16"):
                    self.assertRegex(res["blas_core"], r"^ggml \S+ \(\S+\) CPU backend")
                elif res["variant"] in ("cblas", "cblas_reference"):
                    if res["blas_core"] is not None:
                        self.assertRegex(res["blas_core"], r"^\S")
                else:
                    self.assertIsNone(res["blas_core"])

    def test_no_cache_gives_null_fractions(self):
        r = attnbench("run", "--variant", "streaming", "--len-q", "1", "--len-kv", "64",
                      "--dim", "4", "--reps", "1", "--format", "json", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)["results"][0]
        self.assertIsNone(res["peak_fraction"])
        self.assertIsNone(res["bw_fraction"])

    def test_corrupt_cache_is_reported_and_measured_again(self):
        for bad in ({"fma_gflops_per_core": "fast"}, {"triad_bytes_per_element": 12},
                    {"machine_id": "0123456789abcdef"}, {"triad_gbs_all": -1.0},
                    {"drop": ["read_gbs_1t"]}, {"drop": ["fma_gflops_per_core_512"]}):
            with self.subTest(bad=bad):  # the drops: a cache from before those figures
                self.write_cache(**bad)
                r = attnbench("run", "--variant", "streaming", "--len-q", "4", "--dim", "4",
                              "--reps", "1", "--format", "json", env=self.env)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("corrupt", r.stderr)
                self.assertIsNone(json.loads(r.stdout)["results"][0]["peak_fraction"])
        with open(self.path, "w") as f:
            f.write('{"machine_id": "')  # truncated
        r = attnbench("peak", "--format", "json", env=self.env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("corrupt", r.stderr)
        self.assertFalse(json.loads(r.stdout)["cached"])
        with open(self.path) as f:
            stored = json.load(f)  # rewritten whole
        self.assertGreater(stored["fma_gflops_per_core"], 0)
        self.assertEqual(os.listdir(os.path.dirname(self.path)), [os.path.basename(self.path)],
                         "no temporary file may be left behind")
        r = attnbench("peak", "--format", "json", env=self.env)
        self.assertTrue(json.loads(r.stdout)["cached"])


if __name__ == "__main__":
    ATTNBENCH = lib.tool_from_argv()
    unittest.main()
