#!/usr/bin/python3
"""Every file the suite writes goes through one writer (runtime/atomic_file.c): a regular file
is replaced atomically, keeping its mode, a symlink is followed, a read-only file is refused; a
character device or a FIFO is written through; a directory is refused; a write error is exit 2
with the path and the reason. `wisdom forget` removes only wisdom.

    test_files.py ATTNBENCH

The suite runs as root in CI: every node written to is one this test creates in its own
temporary directory (a FIFO, symlinks, a 0444 file, character devices made with mknod: 1,3 like
/dev/null and 1,7 like /dev/full); the system's /dev/null and /dev/full are never touched.
"""
import json
import os
import stat
import subprocess
import threading
import unittest

import attn_testlib as lib

ATTNBENCH = None  # set by main: lib.tool_from_argv()
NPY_MAGIC = b"\x93NUMPY"
SHAPE = ["--heads", "1", "--threads", "1"]
RUN = ["run", "--variant", "naive", "--len-q", "8", "--len-kv", "8", "--dim", "4", "--reps", "1",
       "--warmup", "0"] + SHAPE
SWEEP = ["sweep", "--len", "8", "--dim", "4", "--variant", "naive", "--reps", "1", "--warmup",
         "0"] + SHAPE
TUNE = ["tune", "--budget", "2", "--batch", "1", "--heads", "2", "--threads", "1", "--len", "48",
        "--dim", "16"]


def attnbench(*args, wisdom=None, stdout=subprocess.PIPE):
    return lib.run_tool(ATTNBENCH, *args, env={"ATTN_WISDOM": wisdom} if wisdom else None,
                        text=False, timeout=300, stdout=stdout, stderr=subprocess.PIPE)


def make_device(path, minor):
    """A character device like /dev/null (1,3) or /dev/full (1,7), or None when mknod is not
    permitted here (not root, or a container without CAP_MKNOD)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        os.close(os.open(path, os.O_WRONLY))  # a device cgroup may still forbid opening it
    except PermissionError:
        return None
    return path


class FifoReader(threading.Thread):
    """Reads a FIFO to its end, as a consumer of `--out FIFO` would."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.data = path, b""

    def run(self):
        with open(self.path, "rb") as f:
            self.data = f.read()


class Writes:
    """The cases every writer must pass; `write(path)` runs one writer to path."""

    def setUp(self):
        self.tmp = lib.temp_dir("test-files-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def check_written(self, path):
        raise NotImplementedError

    def assert_refused(self, proc, path, reason):
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 2, err)
        last = err.strip().splitlines()[-1]  # after sweep's progress lines, one message
        self.assertTrue(last.startswith("attnbench "), err)
        self.assertIn(path, last)
        self.assertIn(reason, last)

    def test_new_file(self):
        p = self.path("new")
        proc = self.write(p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.check_written(p)
        self.assertEqual(os.listdir(self.dir), ["new"])  # no temporary left behind

    def test_keeps_mode(self):
        p = self.path("kept")
        with open(p, "w") as f:
            f.write("old")
        os.chmod(p, 0o640)
        proc = self.write(p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.check_written(p)
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o640)

    def test_symlink_followed(self):
        target, link = self.path("target"), self.path("link")
        with open(target, "w") as f:
            f.write("old")
        os.symlink("target", link)
        proc = self.write(link)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.islink(link))
        self.check_written(target)

    def test_dangling_symlink_creates_target(self):
        link = self.path("link")
        os.symlink("made", link)
        proc = self.write(link)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.islink(link))
        self.check_written(self.path("made"))

    def test_read_only_refused(self):
        p = self.path("ro")
        with open(p, "w") as f:
            f.write("keep me")
        os.chmod(p, 0o444)
        self.assert_refused(self.write(p), p, "read-only")
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o444)
        with open(p) as f:
            self.assertEqual(f.read(), "keep me")

    def test_directory_refused(self):
        p = self.path("dir")
        os.mkdir(p)
        self.assert_refused(self.write(p), p, "directory")
        self.assertTrue(os.path.isdir(p))
        self.assertEqual(os.listdir(p), [])

    def test_missing_directory(self):
        p = self.path("no/such/dir/file")
        self.assert_refused(self.write(p), p, "No such file or directory")

    def test_fifo_written_through(self):
        p = self.path("fifo")
        os.mkfifo(p)
        reader = FifoReader(p)
        reader.start()
        proc = self.write(p)
        if reader.is_alive():  # the tool never opened it: release the reader
            os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(stat.S_ISFIFO(os.lstat(p).st_mode))
        self.check_content(reader.data)

    def test_null_device_written_through(self):
        p = make_device(self.path("null"), 3)
        if not p:
            self.skipTest("mknod not permitted here (needs root with CAP_MKNOD)")
        proc = self.write(p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(stat.S_ISCHR(os.lstat(p).st_mode))

    def test_full_device_is_an_error(self):
        p = make_device(self.path("full"), 7)
        if not p:
            self.skipTest("mknod not permitted here (needs root with CAP_MKNOD)")
        self.assert_refused(self.write(p), p, "No space left on device")
        self.assertTrue(stat.S_ISCHR(os.lstat(p).st_mode))

    def test_symlink_to_device_stays(self):
        dev = make_device(self.path("null"), 3)
        if not dev:
            self.skipTest("mknod not permitted here (needs root with CAP_MKNOD)")
        link = self.path("link")
        os.symlink(dev, link)
        proc = self.write(link)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.islink(link))
        self.assertTrue(stat.S_ISCHR(os.lstat(dev).st_mode))

    def test_unwritable_directory(self):
        if os.geteuid() == 0:
            self.skipTest("root writes into a 0555 directory")
        d = self.path("locked")
        os.mkdir(d, 0o555)
        p = os.path.join(d, "file")
        self.assert_refused(self.write(p), p, "Permission denied")


class RunOut(Writes, unittest.TestCase):
    """`run --out-npy FILE.npy`."""

    def write(self, path):
        return attnbench(*RUN, "--out-npy", path)

    def check_content(self, data):
        self.assertTrue(data.startswith(NPY_MAGIC), data[:16])
        self.assertEqual(len(data), 128 + 8 * 4 * 4)  # header + [1,1,8,4] float32

    def check_written(self, path):
        with open(path, "rb") as f:
            self.check_content(f.read())

    def test_stdout_link(self):
        """A link like /dev/stdout (made here: a tool that replaced the system's own would
        break the machine) names the descriptor: written through the pipe."""
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("no /proc/self/fd here")
        link = self.path("stdout")
        os.symlink("/proc/self/fd/1", link)
        proc = attnbench(*RUN, "--format", "json", "--out-npy", link)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(NPY_MAGIC, proc.stdout)
        self.assertEqual(os.readlink(link), "/proc/self/fd/1")

    def test_stdout_link_appending(self):
        """Standard output opened with >> on a log: the .npy goes after what is there, through
        the descriptor itself (reopening the link would start at offset 0 and overwrite it)."""
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("no /proc/self/fd here")
        link, log = self.path("stdout"), self.path("log")
        os.symlink("/proc/self/fd/1", link)
        with open(log, "w") as f:
            f.write("previous line\n")
        with open(log, "ab") as f:
            proc = attnbench(*RUN, "--format", "json", "--out-npy", link, stdout=f)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(log, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"previous line\n" + NPY_MAGIC), data[:40])
        self.assertIn(b'"results"', data)
        self.assertTrue(os.path.islink(link))


class SweepOutput(Writes, unittest.TestCase):
    """`sweep -o FILE`."""

    def write(self, path):
        return attnbench(*SWEEP, "-o", path)

    def check_content(self, data):
        self.assertEqual(json.loads(data)["kind"], "sweep")

    def check_written(self, path):
        with open(path, "rb") as f:
            self.check_content(f.read())


class WisdomExport(Writes, unittest.TestCase):
    """`wisdom export FILE` (of an empty wisdom store: the document is still written)."""

    def write(self, path):
        return attnbench("wisdom", "export", path, wisdom=self.path("store.json"))

    def check_content(self, data):
        self.assertEqual(json.loads(data)["format"], "attnbench-wisdom")

    def check_written(self, path):
        with open(path, "rb") as f:
            self.check_content(f.read())

    def test_new_file(self):  # the wisdom store itself stays absent
        p = self.path("new")
        proc = self.write(p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.check_written(p)
        self.assertEqual(os.listdir(self.dir), ["new"])

    def test_missing_directory(self):  # the wisdom writer makes its directories
        p = self.path("no/such/dir/file")
        proc = self.write(p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.check_written(p)


class PeakCache(unittest.TestCase):
    """The peak cache (cli_machine.c) goes through the same writer; a cache that cannot be
    written is a warning, the measured figures are still printed."""

    def setUp(self):
        if "ATTN_SERIAL=1" in lib.WRAPPER:  # under qemu: peak refuses to measure one thread as all
            self.skipTest("peak cannot measure under ATTN_SERIAL=1")
        self.tmp = lib.temp_dir("test-files-")
        self.env = {"XDG_CACHE_HOME": self.tmp.name}

    def tearDown(self):
        self.tmp.cleanup()

    def peak(self, *args):
        return lib.run_tool(ATTNBENCH, "peak", "--format", "json", *args, env=self.env,
                            timeout=300)

    def test_link_followed_read_only_kept(self):
        proc = self.peak()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        cache = json.loads(proc.stdout)["cache_file"]
        target = os.path.join(os.path.dirname(cache), "kept.json")
        os.replace(cache, target)
        os.symlink("kept.json", cache)
        proc = self.peak("--refresh")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.islink(cache))
        with open(target) as f:
            self.assertIn("fma_gflops_per_core", json.load(f))
        os.chmod(target, 0o444)
        with open(target, "rb") as f:
            before = f.read()
        proc = self.peak("--refresh")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("not cached", proc.stderr)
        self.assertIn("read-only", proc.stderr)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), before)


class WisdomStore(unittest.TestCase):
    """The library's wisdom writer (tune) and `wisdom forget`."""

    def setUp(self):
        self.tmp = lib.temp_dir("test-files-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def tuned(self, name="wisdom.json"):
        p = os.path.join(self.dir, name)
        proc = attnbench(*TUNE, wisdom=p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return p

    def test_read_only_wisdom_refused(self):
        p = self.tuned()
        with open(p, "rb") as f:
            before = f.read()
        os.chmod(p, 0o444)
        proc = attnbench(*TUNE, "--len", "64", wisdom=p)
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 2, err)
        self.assertIn("read-only", err)
        self.assertIn(p, err)
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o444)
        with open(p, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_wisdom_keeps_mode_and_link(self):
        target = self.tuned("target.json")
        os.chmod(target, 0o600)
        link = os.path.join(self.dir, "link.json")
        os.symlink("target.json", link)
        proc = attnbench(*TUNE, "--len", "64", wisdom=link)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o600)
        with open(target) as f:
            self.assertEqual(len(json.load(f)["sections"][0]["entries"]), 2)

    def forget(self, path):
        return attnbench("wisdom", "forget", wisdom=path)

    def test_forget_removes_wisdom(self):
        p = self.tuned()
        proc = self.forget(p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse(os.path.exists(p))
        self.assertFalse(os.path.exists(p + ".lock"))

    def test_forget_removes_damaged_wisdom(self):
        p = os.path.join(self.dir, "damaged.json")
        with open(p, "w") as f:
            f.write('{\n "format": "attnbench-wisdom",\n "version": 1,\n "sections": [')
        proc = self.forget(p)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse(os.path.exists(p))

    def test_forget_keeps_other_files(self):
        cases = {"notes.txt": "my notes\n", "other.json": '{"format": "something-else"}\n',
                 "empty.json": ""}
        for name, text in cases.items():
            p = os.path.join(self.dir, name)
            with open(p, "w") as f:
                f.write(text)
            lock = p + ".lock"
            with open(lock, "w") as f:
                f.write("not a lock\n")
            proc = self.forget(p)
            err = proc.stderr.decode()
            self.assertEqual(proc.returncode, 2, (name, err))
            self.assertIn("not an attnbench wisdom file", err)
            self.assertIn(p, err)
            with open(p) as f:
                self.assertEqual(f.read(), text)
            self.assertTrue(os.path.exists(lock))

    def test_forget_keeps_nodes(self):
        d = os.path.join(self.dir, "dir")
        os.mkdir(d)
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)  # must not wait for a writer
        for p in (d, fifo):
            proc = self.forget(p)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertTrue(os.path.lexists(p))
        self.assertTrue(os.path.isdir(d) and stat.S_ISFIFO(os.lstat(fifo).st_mode))


if __name__ == "__main__":
    ATTNBENCH = lib.tool_from_argv()
    unittest.main(verbosity=2)
