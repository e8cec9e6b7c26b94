#!/usr/bin/python3
"""The results store and the history (harness/cli_db.c, cli_history.c, changepoint.c):

- change points: on synthetic 60-commit histories with this VM's kind of noise (each commit's
  run 1% off, repetitions 4.8% apart, occasional bursts of other load: cv about 5% in all), a planted 5% step is found at its commit (+-1) in >= 9 of 10 seeds, and histories
  without a step show no change point in >= 9 of 10; a regression in the latest commits makes
  `history` exit 1, an old one does not;
- ingestion: idempotent (the same files twice add nothing), all-or-nothing (a corrupt file is
  exit 2 with a message naming it, and nothing of the command is stored), four concurrent
  ingesters of overlapping files into SQLite lose and duplicate nothing (counted);
- export: every kind of file (run, sweep, tune, gbench, perf-ab) comes back byte for byte;
- PostgreSQL (a throwaway server: initdb in a temporary folder, an unprivileged user, a Unix
  socket only): the same four concurrent ingesters, counted; skipped, saying so, when the
  server's programs are not installed;
- the dashboard page, loaded in headless Chromium: the plotted points and the change-point
  marker read back from the rendered page; skipped, saying so, without Chromium.

    test_history.py ATTNBENCH
"""
import glob
import hashlib
import json
import math
import os
import pwd
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
from html.parser import HTMLParser

ATTNBENCH = None
WRAPPER = shlex.split(os.environ.get("ATTN_EXE_WRAPPER", ""))
COMMITS = 60
STEP_AT = 30
REPS = 10
MACHINE = "00d0d0d0d0d0d0d0"


def attnbench(*args, env=None, check=None):
    full = dict(os.environ)
    full.pop("ATTN_DB", None)
    full.update(env or {})
    p = subprocess.run(WRAPPER + [ATTNBENCH] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=full)
    if check is not None and p.returncode != check:
        raise AssertionError(f"attnbench {' '.join(map(str, args))}: exit {p.returncode}, "
                             f"expected {check}\n{p.stdout}\n{p.stderr}")
    return p


def commit_of(seed, i):
    return hashlib.sha1(f"{seed}/{i}".encode()).hexdigest()


def write_history(folder, seed, step=0.0, step_at=STEP_AT, commits=COMMITS, machine=MACHINE,
                  benchmarks=("streaming",), run_sigma=0.01, rep_sigma=0.048):
    """A run file per commit, as `run --save` writes them: per commit a run level (log-normal,
    sigma 1%), per repetition log-normal noise (sigma 4.8%) and a 5% chance of a burst of other
    load (10-40% slower): cv about 5% in all. From commit step_at on, times are (1 + step) times
    longer. What limits finding the commit is the noise of a commit's median: with these
    sigmas the step is found within +-1 commit in 28 of 30 seeds; with a 2% run level (the
    same total cv, more of it shared by a run's repetitions) in 14 of 20."""
    rng = random.Random(seed)
    paths = []
    for i in range(commits):
        results = []
        for variant in benchmarks:
            level = 1e-3 * math.exp(rng.gauss(0, run_sigma)) * (1 + step if i >= step_at else 1)
            samples = []
            for _ in range(REPS):
                t = level * math.exp(rng.gauss(0, rep_sigma))
                if rng.random() < 0.05:
                    t *= 1 + rng.uniform(0.1, 0.4)
                samples.append(t)
            samples.sort()
            results.append({
                "variant": variant, "params": {"bk": 64},
                "shape": {"batch": 1, "heads_q": 8, "heads_kv": 8, "len_q": 512, "len_kv": 512,
                          "head_dim": 64, "causal": False, "layout": "bhld"},
                "threads": 1, "reps": REPS, "samples_s": samples,
                "median_s": samples[REPS // 2], "dtype": "f32"})
        doc = {"tool": "attnbench 0.1.0", "kind": "run", "commit": commit_of(seed, i),
               "commit_dirty": False,
               "date": f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z",
               "build": {"version": "0.1.0", "compiler": "gcc 12.2.0", "buildtype": "release",
                         "optimization": "3", "c_args": "", "sanitize": "none"},
               "machine": {"id": machine, "vendor": "AuthenticAMD", "model_name": "synthetic",
                           "isa": ["avx2", "avx512"], "l1d_bytes": 32768, "l2_bytes": 1048576,
                           "l3_bytes": 33554432, "cpus_online": 2},
               "results": results}
        path = os.path.join(folder, f"run-{seed}-{i:03d}.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        paths.append(path)
    return paths


def counts(db):
    return json.loads(attnbench("db", "info", "--db", db, "--format", "json", check=0).stdout)


def history_json(db, *extra, check=None):
    p = attnbench("history", "--db", db, "--format", "json", *extra)
    if check is not None and p.returncode != check:
        raise AssertionError(f"history: exit {p.returncode}, expected {check}\n{p.stderr}")
    return json.loads(p.stdout), p.returncode


class Tmp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="attn-history-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class ChangePoints(Tmp):
    def detect(self, seed, step):
        folder = os.path.join(self.dir, f"{seed}-{step}")
        os.mkdir(folder)
        db = os.path.join(folder, "store.sqlite")
        attnbench("db", "ingest", "--db", db, *write_history(folder, seed, step), check=0)
        doc, _ = history_json(db, "--gate-last", "0", check=0)
        self.assertEqual(len(doc["series"]), 1)
        series = doc["series"][0]
        self.assertEqual(len(series["points"]), COMMITS)
        return series

    def test_planted_step_found_at_its_commit(self):
        hits = []
        for seed in range(10):
            series = self.detect(seed, 0.05)
            found = [c for c in series["change_points"]
                     if abs(c["index"] - STEP_AT) <= 1 and c["direction"] == "regression"]
            if found:
                c = found[0]
                self.assertEqual(c["commit"], series["points"][c["index"]]["commit"])
                self.assertLess(c["ci95"][0], c["ratio"])
                self.assertLess(c["ratio"], c["ci95"][1])
                self.assertTrue(1.0 < c["ratio"] < 1.12, c)
            hits.append(bool(found))
            print(f"step seed {seed}: change points at "
                  f"{[(c['index'], round(c['ratio'], 3), c['p']) for c in series['change_points']]}")
        print(f"planted 5% step found at commit {STEP_AT} +-1 in {sum(hits)} of 10 seeds")
        self.assertGreaterEqual(sum(hits), 9)

    def test_noise_alone_has_no_change_point(self):
        clean = []
        for seed in range(100, 110):
            series = self.detect(seed, 0.0)
            clean.append(not series["change_points"])
            print(f"noise seed {seed}: change points at "
                  f"{[(c['index'], round(c['ratio'], 3), c['p']) for c in series['change_points']]}")
        print(f"no change point in {sum(clean)} of 10 noise-only seeds")
        self.assertGreaterEqual(sum(clean), 9)

    def test_gate_on_the_latest_commits(self):
        db = os.path.join(self.dir, "gate.sqlite")
        recent = os.path.join(self.dir, "recent")
        os.mkdir(recent)
        attnbench("db", "ingest", "--db", db,
                  *write_history(recent, 7, step=0.15, step_at=COMMITS - 3), check=0)
        doc, status = history_json(db, "--gate-last", "5")
        self.assertEqual(status, 1, doc)
        self.assertEqual(doc["regressions_in_latest"], 1)
        text = attnbench("history", "--db", db, check=1).stdout
        self.assertIn("IN THE LATEST COMMITS", text)
        csv = attnbench("history", "--db", db, "--format", "csv", check=1).stdout.splitlines()
        self.assertEqual(len(csv), 1 + COMMITS)
        self.assertIn(",regression,", csv[1 + COMMITS - 3])
        # --last: only the latest commits; those before the step are not among them.
        doc, _ = history_json(db, "--last", "20", "--gate-last", "5")
        self.assertEqual(len(doc["series"][0]["points"]), 20)
        self.assertEqual(doc["series"][0]["points"][0]["commit"], commit_of(7, COMMITS - 20))
        # The same step, long ago: reported, but the gate stays open.
        old = os.path.join(self.dir, "old.sqlite")
        attnbench("db", "ingest", "--db", old, *write_history(recent, 8, step=0.15), check=0)
        doc, status = history_json(old, "--gate-last", "5")
        self.assertEqual(status, 0)
        self.assertTrue(any(c["index"] == STEP_AT for c in doc["series"][0]["change_points"]))


class Ingest(Tmp):
    def test_double_ingest_adds_nothing(self):
        db = os.path.join(self.dir, "s.sqlite")
        paths = write_history(self.dir, 1, commits=8)
        attnbench("db", "ingest", "--db", db, *paths, check=0)
        before = counts(db)
        self.assertEqual((before["files"], before["measurements"], before["samples"]),
                         (8, 8, 8 * REPS))
        again = attnbench("db", "ingest", "--db", db, *paths, check=0)
        self.assertEqual(again.stdout.count("already in the store"), 8)
        self.assertEqual(counts(db), before)
        self.assertEqual(before["schema_version"], 2)

    def test_reading_a_missing_store_is_exit_2(self):
        missing = os.path.join(self.dir, "none.sqlite")
        for args in (["history"], ["db", "info"], ["db", "export", "--out", self.dir]):
            p = attnbench(*args, "--db", missing, check=2)
            self.assertIn("no store at", p.stderr)
        self.assertFalse(os.path.exists(missing))

    def test_schema_migrations(self):
        """A version-1 store (made here from a current one: the v2 indexes dropped, its version
        row gone) is brought to version 2 on open, its data kept; a store newer than the tool
        is refused."""
        import sqlite3
        db = os.path.join(self.dir, "s.sqlite")
        attnbench("db", "ingest", "--db", db, *write_history(self.dir, 4, commits=2), check=0)
        con = sqlite3.connect(db)
        con.execute("DROP INDEX measurements_by_benchmark")
        con.execute("DROP INDEX files_by_machine_date")
        con.execute("DELETE FROM schema_version WHERE version = 2")
        con.commit()
        con.close()
        c = counts(db)
        self.assertEqual((c["schema_version"], c["files"], c["samples"]), (2, 2, 2 * REPS))
        con = sqlite3.connect(db)
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        self.assertTrue({"measurements_by_benchmark", "files_by_machine_date"} <= indexes)
        con.execute("INSERT INTO schema_version (version) VALUES (99)")
        con.commit()
        con.close()
        p = attnbench("db", "info", "--db", db, check=2)
        self.assertIn("newer than this attnbench", p.stderr)

    def test_corrupt_file_is_exit_2_and_nothing_is_stored(self):
        db = os.path.join(self.dir, "s.sqlite")
        good = write_history(self.dir, 2, commits=3)
        truncated = os.path.join(self.dir, "truncated.json")
        with open(good[0]) as f:
            text = f.read()
        with open(truncated, "w") as f:
            f.write(text[: len(text) // 2])
        bad_sample = os.path.join(self.dir, "bad-sample.json")
        doc = json.loads(text)
        doc["results"][0]["samples_s"][3] = "fast"
        with open(bad_sample, "w") as f:
            json.dump(doc, f)
        for bad, what in ((truncated, "malformed JSON"), (bad_sample, "samples_s")):
            p = attnbench("db", "ingest", "--db", db, good[1], bad, good[2], check=2)
            self.assertIn(bad, p.stderr)
            self.assertIn(what, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertEqual(counts(db)["files"], 0)
        p = attnbench("db", "ingest", "--db", db, os.path.join(self.dir, "missing.json"), check=2)
        self.assertIn("missing.json", p.stderr)

    def test_four_concurrent_sqlite_ingesters(self):
        db = os.path.join(self.dir, "s.sqlite")
        self.concurrent_ingest(self, self.dir, db)

    @staticmethod
    def concurrent_ingest(test, folder, db, env=None):
        """Four ingesters at once, over overlapping thirds of 60 files (each file by two of
        them, some by three), in different orders: every file, measurement and sample exactly
        once."""
        paths = write_history(folder, 3, benchmarks=("streaming", "blocked"))
        sets = [paths[0:30], paths[15:45][::-1], paths[30:60], paths[::2] + paths[45:60]]
        full = dict(os.environ)
        full.pop("ATTN_DB", None)
        full.update(env or {})
        procs = [subprocess.Popen(WRAPPER + [ATTNBENCH, "db", "ingest", "--db", db] + s,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=full) for s in sets]
        outs = [p.communicate() for p in procs]
        for p, (out, err) in zip(procs, outs):
            test.assertEqual(p.returncode, 0, err)
        stored = sum(out.count(": stored (") for out, _ in outs)
        skipped = sum(out.count("already in the store") for out, _ in outs)
        test.assertEqual(stored, COMMITS)
        test.assertEqual(stored + skipped, sum(len(s) for s in sets))
        c = counts(db) if env is None else json.loads(attnbench(
            "db", "info", "--db", db, "--format", "json", env=env, check=0).stdout)
        test.assertEqual((c["files"], c["machines"], c["builds"], c["benchmarks"]),
                         (COMMITS, 1, COMMITS, 2))
        test.assertEqual(c["measurements"], 2 * COMMITS)
        test.assertEqual(c["samples"], 2 * COMMITS * REPS)
        print(f"4 concurrent ingesters: {stored} stored, {skipped} skipped, "
              f"{c['samples']} samples (expected {2 * COMMITS * REPS})")


class Export(Tmp):
    def kinds(self):
        """One file of every kind: run and sweep from the tool, tune's JSON, a Google Benchmark
        file and a perf-ab one (their formats, written here)."""
        folder = os.path.join(self.dir, "in")
        os.mkdir(folder)
        small = ["--variant", "naive", "--heads", "1", "--threads", "1", "--dim", "4", "--reps",
                 "3", "--warmup", "0", "--results-dir", folder]
        attnbench("run", "--len-q", "8", "--save", *small, check=0)
        attnbench("sweep", "--len", "8", *small, check=0)
        wisdom = os.path.join(self.dir, "wisdom.json")
        tune = attnbench("tune", "--budget", "1", "--batch", "1", "--heads", "2", "--threads",
                         "1", "--len", "32", "--dim", "16", "--format", "json",
                         env={"ATTN_WISDOM": wisdom}, check=0)
        paths = sorted(glob.glob(os.path.join(folder, "*", "*.json")))
        with open(os.path.join(folder, "tune.json"), "w") as f:
            f.write(tune.stdout)
        entries = [{"name": "avx2/prefill/B1.Hq8.Hkv8.Lq1024.Lk1024.d64/t1/real_time",
                    "run_name": "avx2/prefill/B1.Hq8.Hkv8.Lq1024.Lk1024.d64/t1/real_time",
                    "run_type": "iteration", "repetition_index": r, "real_time": 800.5 + r,
                    "cpu_time": 800.0 + r, "time_unit": "us", "iterations": 10}
                   for r in range(3)]
        entries.append({"name": "amx_bf16/prefill/B1.Hq8.Hkv8.Lq1024.Lk1024.d64/t1/real_time",
                        "run_type": "iteration", "error_occurred": True,
                        "error_message": "not supported on this CPU"})
        entries.append({"name": "avx2/prefill/B1.Hq8.Hkv8.Lq1024.Lk1024.d64/t1/real_time_mean",
                        "run_type": "aggregate", "aggregate_name": "mean", "real_time": 801.5,
                        "time_unit": "us"})
        context = {"date": "2026-11-27T02:10:00+00:00", "attnbench_machine_id": MACHINE,
                   "attnbench_cpu": "synthetic", "attnbench_version": "0.1.0",
                   "attnbench_compiler": "gcc 12.2.0", "attnbench_buildtype": "release",
                   "attnbench_c_args": ""}
        for name, extra in (("gbench.json", {}),
                            ("new.json", {"perf_ab": {"side": "new", "rev": "HEAD",
                                                      "commit": "ab" * 20, "rounds": 3}})):
            with open(os.path.join(folder, name), "w") as f:
                json.dump({"context": dict(context, **extra), "benchmarks": entries}, f,
                          indent=2)
        return paths + [os.path.join(folder, n) for n in ("tune.json", "gbench.json",
                                                          "new.json")]

    def test_round_trip_is_byte_for_byte(self):
        db = os.path.join(self.dir, "s.sqlite")
        paths = self.kinds()
        out = attnbench("db", "ingest", "--db", db, "--commit", "cd" * 20, "--machine", MACHINE,
                        *paths, check=0).stdout
        for kind in ("(run,", "(sweep,", "(tune,", "(gbench,", "(perf-ab,"):
            self.assertIn(kind, out)
        self.assertEqual(counts(db)["errors"], 2)  # the failed gbench entry, in two files
        exported = os.path.join(self.dir, "out")
        attnbench("db", "export", "--db", db, "--out", exported, check=0)
        back = sorted(glob.glob(os.path.join(exported, "*", "*")))
        self.assertEqual(len(back), len(paths))
        by_name = {os.path.basename(p): p for p in back}
        for p in paths:
            with open(p, "rb") as a, open(by_name[os.path.basename(p)], "rb") as b:
                self.assertEqual(a.read(), b.read(), p)
        # Exporting again writes nothing new; the exported files make the same store.
        self.assertIn("exported 0 files", attnbench("db", "export", "--db", db, "--out",
                                                    exported, check=0).stdout)
        db2 = os.path.join(self.dir, "again.sqlite")
        attnbench("db", "ingest", "--db", db2, "--commit", "cd" * 20, "--machine", MACHINE,
                  *back, check=0)
        self.assertEqual(counts(db2) | {"target": None}, counts(db) | {"target": None})


    def test_two_files_of_one_name(self):
        """Both come back: the first under its name, the other with its hash added."""
        db = os.path.join(self.dir, "s.sqlite")
        twins = []
        for k in range(2):
            folder = os.path.join(self.dir, f"twin{k}")
            os.mkdir(folder)
            twin = os.path.join(folder, "same.json")
            os.rename(write_history(folder, 20 + k, commits=1)[0], twin)
            twins.append(twin)
        attnbench("db", "ingest", "--db", db, *twins, check=0)
        out = os.path.join(self.dir, "out")
        attnbench("db", "export", "--db", db, "--out", out, check=0)
        with open(twins[1], "rb") as f:
            second = f.read()
        with open(twins[0], "rb") as f:
            first = f.read()
        with open(os.path.join(out, MACHINE, "same.json"), "rb") as f:
            self.assertEqual(f.read(), first)
        name = f"same-{hashlib.sha256(second).hexdigest()[:12]}.json"
        with open(os.path.join(out, MACHINE, name), "rb") as f:
            self.assertEqual(f.read(), second)


class Postgres(Tmp):
    """A throwaway PostgreSQL server: initdb in a temporary folder, owned by an unprivileged
    user when the test runs as root (CI does), listening on a Unix socket in that folder only."""

    def setUp(self):
        super().setUp()
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise unittest.SkipTest("SKIP: PostgreSQL server programs not installed "
                                    "(Debian: postgresql); the fleet tests did not run")
        self.bin = os.path.dirname(bins[-1])
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
            os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "pg")
        os.mkdir(self.data, 0o700)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        self.as_user([os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust", "-U",
                      "attn", "--no-sync"])
        self.as_user([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w", "-l",
                      os.path.join(self.data, "log"), "-o",
                      f"-c listen_addresses='' -c unix_socket_directories={self.data} "
                      "-c fsync=off", "start"])
        self.db = f"host={self.data} dbname=postgres user=attn"

    def as_user(self, argv):
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stdout)

    def tearDown(self):
        if hasattr(self, "data") and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.as_user([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate",
                          "stop"])
        super().tearDown()

    def test_fleet(self):
        Ingest.concurrent_ingest(self, self.dir, self.db)
        # Ingesting again adds nothing; history reads the store like SQLite's.
        paths = write_history(self.dir, 3, benchmarks=("streaming", "blocked"))
        again = attnbench("db", "ingest", "--db", self.db, *paths[:10], check=0).stdout
        self.assertEqual(again.count("already in the store"), 10)
        doc, _ = history_json(self.db, "--gate-last", "0", check=0)
        self.assertEqual([len(s["points"]) for s in doc["series"]], [COMMITS, COMMITS])
        self.assertNotIn("host=", json.dumps(doc))  # the connection string stays private
        exported = os.path.join(self.dir, "out")
        attnbench("db", "export", "--db", self.db, "--out", exported, check=0)
        for p in paths:
            with open(p, "rb") as a, open(os.path.join(exported, MACHINE,
                                                       os.path.basename(p)), "rb") as b:
                self.assertEqual(a.read(), b.read())


class PageReader(HTMLParser):
    """The rendered page's plotted points and change-point markers."""

    def __init__(self):
        super().__init__()
        self.points, self.markers, self.rendered, self.series = [], [], False, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and a.get("data-rendered") == "true":
            self.rendered = True
        classes = (a.get("class") or "").split()
        if tag == "section" and "series" in classes:
            self.series.append(a.get("data-benchmark"))
        if tag == "circle" and "point" in classes:
            self.points.append((int(a["data-index"]), a["data-commit"],
                                float(a["data-median-s"]), float(a["cy"])))
        if tag == "line" and "change-point" in classes:
            self.markers.append((int(a["data-index"]), a["data-commit"], classes))


class Dashboard(Tmp):
    def test_page_renders_in_headless_chromium(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            raise unittest.SkipTest("SKIP: chromium not installed (Debian: chromium); the "
                                    "dashboard was not rendered")
        db = os.path.join(self.dir, "s.sqlite")
        attnbench("db", "ingest", "--db", db, *write_history(self.dir, 0, 0.05), check=0)
        # A name that would end the page's data early if it were pasted in unescaped.
        evil = os.path.join(self.dir, "evil")
        os.mkdir(evil)
        attnbench("db", "ingest", "--db", db, *write_history(
            evil, 5, commits=2, machine="zz", benchmarks=("x</script><!--",)), check=0)
        site = os.path.join(self.dir, "site")
        attnbench("history", "--db", db, "--html", site, "--gate-last", "0", "--commit-url",
                  "https://example.org/commit/{commit}", check=0)
        page = os.path.join(site, "history.html")
        with open(page) as f:
            html = f.read()
        self.assertNotRegex(html, r"(src|href)=\"https?://")  # nothing fetched from outside
        profile = os.path.join(self.dir, "profile")
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--disable-dev-shm-usage",
                            f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                            "--dump-dom", "file://" + page],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=180, env=dict(os.environ, HOME=self.dir))
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        reader = PageReader()
        reader.feed(p.stdout)
        self.assertTrue(reader.rendered, "the page's script did not finish")
        self.assertEqual(len(reader.series), 2)
        self.assertTrue(reader.series[1].startswith("x</script><!--/"), reader.series)
        reader.points = reader.points[:COMMITS]  # the first series'
        self.assertEqual(len(reader.points), COMMITS)
        expected = history_json(db, "--gate-last", "0", check=0)[0]["series"][0]
        for (index, commit, median, cy), want in zip(reader.points, expected["points"]):
            self.assertEqual(commit, want["commit"])
            self.assertAlmostEqual(median, want["median_s"], delta=1e-12)
        # Drawn where the values say: higher times higher up (smaller y).
        by_value = sorted(reader.points, key=lambda x: x[2])
        self.assertGreater(by_value[0][3], by_value[-1][3])
        self.assertIn("https://example.org/commit/" + commit_of(0, 0), p.stdout)
        self.assertTrue(any(abs(i - STEP_AT) <= 1 and c == commit_of(0, i) and
                            "regression" in cls for i, c, cls in reader.markers),
                        reader.markers)
        print(f"page rendered: {len(reader.points)} points, markers {reader.markers}")


if __name__ == "__main__":
    ATTNBENCH = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
