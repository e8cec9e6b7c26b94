"""The conformance runner once per ISA mask worth a run on this CPU (checkasm's CPU-mask loop).

The masks are not a hand list: `conformance --list-isa-masks` derives them from the library's
ISA table (every subset of the ISA names this CPU has, one per set of variants it leaves
supported), so the same test covers AMX, AVX-512 or AVX2 machines, the qemu models and AArch64.
The first mask (nothing disabled) is the plain `conformance` test's; each other one runs here with
ATTN_DISABLE_ISA set, and must pass with exactly its variants supported and the others refused.

Usage: /usr/bin/python3 tests/conformance_masks.py PATH/TO/conformance [CONFORMANCE ARGS...]
(under a cross build's or an emulated model's ATTN_EXE_WRAPPER, as meson gives it).
"""
import re
import sys

import attn_testlib as lib

VARIANT_LINE = re.compile(r"^variant (\S+): (\d+) cases passed, (\d+) failed( \(unsupported)?")


def masks(conformance, args):
    """[(ATTN_DISABLE_ISA value, variants it leaves supported)], "-" (nothing) first; args
    (--variant) select the variants as in the runs."""
    r = lib.run_tool(conformance, *args, "--list-isa-masks", timeout=300)
    if r.returncode != 0:
        sys.exit(f"conformance --list-isa-masks failed ({r.returncode}): {r.stderr}")
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    if not rows or rows[0][0] != "-" or any(len(row) != 2 for row in rows):
        sys.exit(f"conformance --list-isa-masks: unexpected output {r.stdout!r}")
    return [(mask, set(filter(None, names.split(",")))) for mask, names in rows]


def run_mask(conformance, args, mask, expected):
    """Runs conformance under the mask; returns a list of problems (empty: passed)."""
    r = lib.run_tool(conformance, *args, env={"ATTN_DISABLE_ISA": mask}, timeout=1800)
    seen, problems = {}, []
    for line in r.stdout.splitlines():
        m = VARIANT_LINE.match(line)
        if m:
            seen[m.group(1)] = not m.group(4)
    if r.returncode != 0:
        problems.append(f"exit status {r.returncode}")
        problems += [line for line in r.stdout.splitlines() if line.startswith("FAILED")][:20]
    supported = {name for name, ok in seen.items() if ok}
    if supported != expected:
        problems.append(f"supported {sorted(supported)}, the mask list said {sorted(expected)}")
    return problems, [line for line in r.stdout.splitlines() if line.startswith("variant ")]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-2])
    conformance, args = sys.argv[1], sys.argv[2:]
    rows = masks(conformance, args)
    print(f"conformance_masks: {len(rows)} ISA masks on this CPU, one per set of supported "
          "variants:")
    for mask, names in rows:
        print(f"  {mask}: {','.join(sorted(names)) or '(none)'}")
    failed = 0
    for mask, expected in rows[1:]:
        problems, summary = run_mask(conformance, args, mask, expected)
        failed += bool(problems)
        print(f"{'FAILED' if problems else 'ok'} ATTN_DISABLE_ISA={mask}")
        for line in problems + summary:
            print(f"  {line}")
    print(f"conformance_masks: {len(rows) - 1 - failed} masks passed, {failed} failed "
          "(nothing disabled: the conformance test)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
