#!/usr/bin/env python3
"""Clang's thread-safety analysis over the sidecar's sources.

The build compiles with g++, which ignores ABSL_GUARDED_BY and friends; this
check re-runs every translation unit under service/ and client/ (as listed in
the build's compile_commands.json, same flags) through
`clang++ -fsyntax-only -Wthread-safety`, and fails on any thread-safety
diagnostic. Other clang warnings are not this check's subject and are
silenced.

    check.py BUILD_DIR SOURCE_DIR [--clang CLANG++] [--jobs N] [--count]

--count: report the number of thread-safety warnings and exit 0 (for
before/after figures) instead of failing on the first one.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

# -Wno-everything first: clang applies -W flags in order, and -w would
# silence the thread-safety diagnostics too.
FLAGS = ["-fsyntax-only", "-Wno-everything", "-Wthread-safety", "-Werror=thread-safety",
         "-ferror-limit=0"]
WARNING = re.compile(r"^\S+:\d+:\d+: (?:warning|error): .*\[(?:-Werror,)?-Wthread-safety[^\]]*\]$",
                     re.M)


def clang_command(entry, clang):
    if "arguments" in entry:
        args = list(entry["arguments"])
    else:
        args = shlex.split(entry["command"])
    # Drop a compiler launcher (ccache) and the compiler itself.
    while args and os.path.basename(args[0]) in ("ccache", "sccache"):
        args.pop(0)
    args.pop(0)
    out = [clang]
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD") or a.startswith("-fsanitize"):
            continue
        out.append(a)
    return out + FLAGS


def main():
    p = argparse.ArgumentParser()
    p.add_argument("build_dir")
    p.add_argument("source_dir")
    p.add_argument("--clang", default="clang++")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--count", action="store_true")
    a = p.parse_args()

    clang = shutil.which(a.clang) or a.clang
    if not os.path.exists(clang):
        print(f"thread-safety: {a.clang} not found (./dev installs Debian's clang)", file=sys.stderr)
        return 1
    db = os.path.join(a.build_dir, "compile_commands.json")
    with open(db) as f:
        entries = json.load(f)
    src = os.path.realpath(a.source_dir)
    roots = [os.path.join(src, d) + os.sep for d in ("service", "client")]
    chosen = {}
    for e in entries:
        path = os.path.realpath(os.path.join(e["directory"], e["file"]))
        if path.endswith(".cc") and any(path.startswith(r) for r in roots):
            chosen.setdefault(path, e)  # one configuration per file is enough
    if not chosen:
        print(f"thread-safety: no service/ or client/ sources in {db}", file=sys.stderr)
        return 1

    def run(item):
        path, entry = item
        proc = subprocess.run(clang_command(entry, clang), cwd=entry["directory"],
                              capture_output=True, text=True)
        return path, proc.returncode, proc.stderr

    warnings = []
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        for path, rc, err in pool.map(run, sorted(chosen.items())):
            found = [m.group(0) for m in WARNING.finditer(err)]
            warnings.extend(found)
            other_errors = [l for l in err.splitlines()
                            if ": error: " in l and not WARNING.match(l)]
            if rc != 0 and (other_errors or not found):
                failed.append((path, err))
    for w in warnings:
        print(w)
    for path, err in failed:
        print(f"thread-safety: clang could not compile {os.path.relpath(path, src)}:\n{err}")
    print(f"thread-safety: {len(chosen)} translation units, {len(warnings)} thread-safety "
          f"warnings, {len(failed)} compile failures")
    if a.count:
        return 0
    return 1 if warnings or failed else 0


if __name__ == "__main__":
    sys.exit(main())
