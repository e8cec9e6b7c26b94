#!/usr/bin/python3
"""test_exports.py LIB HEADER NM — libattn.so exports the public API and nothing else.

Runs `NM -D --defined-only LIB` and fails when a defined dynamic symbol is not attn_* (an
internal function leaking: a source compiled without -fvisibility=hidden) or when a function
that HEADER marks ATTN_API is missing (its definition not reaching the library). Exit 77 (a
skip for meson) when NM is not given or cannot read the library.
"""
import re
import subprocess
import sys


def exported(nm, lib):
    out = subprocess.run([nm, "-D", "--defined-only", lib], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"skipped: {nm} cannot read {lib}: {out.stderr.strip()}")
        sys.exit(77)
    names = set()
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            names.add(fields[-1].split("@")[0])  # "attn_x@@VERSION" when versioned
    return names


def declared(header):
    text = re.sub(r"/\*.*?\*/", " ", open(header, encoding="utf-8").read(), flags=re.S)
    return set(re.findall(r"\bATTN_API\b[^;{}]*?\b(attn_\w+)\s*\(", text))


def main():
    if len(sys.argv) != 4 or not sys.argv[3]:
        print("skipped: no nm for the library's machine")
        sys.exit(77)
    lib, header, nm = sys.argv[1:]
    names, api = exported(nm, lib), declared(header)
    if not api:
        sys.exit(f"FAILED: no ATTN_API function found in {header}")
    leaked = sorted(n for n in names if not n.startswith("attn_"))
    missing = sorted(api - names)
    extra = sorted(n for n in names if n.startswith("attn_") and n not in api)
    for n in leaked:
        print(f"FAILED: {lib} exports {n}, which is not attn_*")
    for n in missing:
        print(f"FAILED: {n} is ATTN_API in {header} but {lib} does not export it")
    for n in extra:
        print(f"FAILED: {lib} exports {n}, which attn.h does not declare ATTN_API")
    print(f"exports: {len(names)} symbols, {len(api)} ATTN_API functions in attn.h; "
          f"{len(leaked)} not attn_*, {len(missing)} missing, {len(extra)} undeclared")
    sys.exit(1 if leaked or missing or extra else 0)


main()
