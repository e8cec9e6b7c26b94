"""What the Python tests share: the tool's path from the command line, running it (through the
cross build's exe wrapper, with the variables that steer it cleared unless a test sets them),
its JSON output, `list` and `info`, and temporary directories.

A test imports it from its own folder (tests/ is on sys.path when a test runs as a script).
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

# A cross build runs the tool through its exe wrapper (qemu), as meson does for test binaries.
WRAPPER = shlex.split(os.environ.get("ATTN_EXE_WRAPPER", ""))

# Variables that change what the tool does: a run starts without them unless its env sets them,
# so a developer's shell cannot change a test's outcome.
STEERING_ENV = ("ATTN_FORCE_VARIANT", "ATTN_DISABLE_ISA", "ATTN_WISDOM")


def tool_from_argv(name="attnbench", env_var="ATTNBENCH"):
    """The tool's absolute path: sys.argv[1] (removed from argv, so unittest does not see it) or
    $ATTNBENCH; exits with a usage line when neither names it."""
    path = os.environ.get(env_var, "")
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        path = sys.argv.pop(1)
    if not path:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} PATH/TO/{name} (or set {env_var})")
    return os.path.abspath(path)


def tool_env(env=None, **extra):
    """os.environ without STEERING_ENV, then env and extra on top."""
    environ = {k: v for k, v in os.environ.items() if k not in STEERING_ENV}
    environ.update(env or {})
    environ.update(extra)
    return environ


def run_tool(tool, *args, env=None, timeout=120, text=True, **kw):
    """Runs `tool ARGS` (through WRAPPER) with tool_env(env); output captured unless kw says."""
    if "stdout" not in kw and "stderr" not in kw:
        kw["capture_output"] = True
    return subprocess.run([*WRAPPER, tool, *map(str, args)], text=text, timeout=timeout,
                          env=tool_env(env), **kw)


def run_json(tool, *args, env=None, timeout=120):
    """The JSON document of `tool ARGS --format json`; AssertionError if it fails."""
    r = run_tool(tool, *args, "--format", "json", env=env, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{os.path.basename(tool)} {' '.join(map(str, args))} failed "
                             f"({r.returncode}): {r.stderr}")
    return json.loads(r.stdout)


def info_json(tool, *args, env=None, timeout=120):
    return run_json(tool, "info", *args, env=env, timeout=timeout)


def list_variants(tool, env=None):
    """`list`'s variants: dicts with name, isa, supported, why_not, ..."""
    return run_json(tool, "list", env=env)["variants"]


def supported_variants(tool, env=None):
    return [v["name"] for v in list_variants(tool, env) if v["supported"]]


def isa_names(variant):
    """The ISA names a variant of `list` needs ("avx2,fma" -> ["avx2", "fma"])."""
    return [n for n in variant["isa"].split(",") if n]


def temp_dir(prefix="attn-test-"):
    """A TemporaryDirectory (use it in `with`, or keep it and call cleanup())."""
    return tempfile.TemporaryDirectory(prefix=prefix)
