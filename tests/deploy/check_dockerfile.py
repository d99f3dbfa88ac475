#!/usr/bin/env python3
"""Static checks of deploy/Dockerfile (no Docker engine needed).

Asserts the image contract the operator docs rely on: a bookworm builder that
installs the -dev packages and runs the Release build of dynamo-batcher and
batchctl with tests off; a runtime-libs stage that assembles the root
filesystem (deploy/image/assemble-rootfs.sh); a FROM scratch final stage (no
shell: no RUN, exec-form ENTRYPOINT) running as uid 65532 with the binary at
/usr/local/bin/dynamo-batcher, the config at /etc/dynamo-batcher/config.yaml,
/var/lib/dynamo-batcher as a VOLUME owned by 65532, ports 50051 and 9464;
COPY sources that exist and are not excluded by
deploy/Dockerfile.dockerignore; and a baked-in config whose dead-letter file
lives on the volume. (The package list itself is checked by
check_runtime_packages.sh.)

Usage: check_dockerfile.py [--repo DIR]
"""

import argparse
import fnmatch
import os
import re
import shlex
import sys

BUILDER_PACKAGES = {
    "cmake", "ninja-build", "g++", "libgrpc++-dev", "protobuf-compiler-grpc",
    "libprotobuf-dev", "protobuf-compiler", "libabsl-dev", "prometheus-cpp-dev",
    "libyaml-cpp-dev", "libjemalloc-dev", "libcurl4-openssl-dev", "libhttp-parser-dev", "libssl-dev",
    "rapidjson-dev",
}
BUILD_CMD = ("cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "
             "-DDYNAMO_BATCHER_BUILD_TESTS=OFF")
BUILD_TARGETS = "cmake --build build --target dynamo-batcher batchctl"
NEEDED_IN_CONTEXT = ["CMakeLists.txt", "proto/dynamobatcher/v1/batcher.proto",
                     "proto/dynamobatcher/internal/write_request.proto",
                     "service/CMakeLists.txt", "client/CMakeLists.txt",
                     "deploy/container-config.yaml"]


def instructions(text):
    """Dockerfile -> [(INSTRUCTION, args)], comments dropped, continuations joined."""
    lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
    joined, cur = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            parts = cur.strip().split(None, 1)
            joined.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        cur = ""
    return joined


def stages(instrs, args):
    out = []
    for ins, arg in instrs:
        if ins == "FROM":
            words = arg.split()
            image = words[0]
            for k, v in args.items():
                image = image.replace("${" + k + "}", v).replace("$" + k, v)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            out.append({"from": image, "name": name, "instrs": []})
        elif out:
            out[-1]["instrs"].append((ins, arg))
    return out


def apt_packages(run_args):
    pkgs = set()
    for seg in re.split(r"&&|;|\|\|", run_args):
        words = seg.split()
        for i in range(len(words) - 1):
            if words[i] in ("apt-get", "apt") and words[i + 1] == "install":
                pkgs |= {w.split("=")[0] for w in words[i + 2:] if not w.startswith("-")}
    return pkgs


def ignored(path, patterns):
    """Very small .dockerignore matcher (last match wins, ! negates)."""
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        candidates = [path] + ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
        for c in candidates:
            if fnmatch.fnmatch(c, p) or (p.startswith("**/") and (
                    fnmatch.fnmatch(c, p[3:]) or any(
                        fnmatch.fnmatch(part, p[3:]) for part in c.split("/")))):
                result = not neg
    return result


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.normpath(os.path.join(here, "..", "..")))
    a = ap.parse_args()
    errs = []

    def need(cond, msg):
        if not cond:
            errs.append(msg)
        return cond

    df = os.path.join(a.repo, "deploy", "Dockerfile")
    with open(df, encoding="utf-8") as f:
        instrs = instructions(f.read())
    args = {}
    for ins, arg in instrs:
        if ins == "ARG" and "=" in arg:
            k, v = arg.split("=", 1)
            args.setdefault(k.strip(), v.strip())
        if ins == "FROM":
            break
    st = stages(instrs, args)
    if not need(len(st) >= 2, "Dockerfile needs a builder and a runtime stage"):
        return report(errs)
    builder, final = st[0], st[-1]

    need(builder["from"].startswith("debian:bookworm") and "slim" not in builder["from"],
         f"builder stage must be FROM debian:bookworm (is {builder['from']})")
    b_runs = " && ".join(arg for ins, arg in builder["instrs"] if ins == "RUN")
    missing = BUILDER_PACKAGES - apt_packages(b_runs)
    need(not missing, f"builder stage does not install: {', '.join(sorted(missing))}")
    norm = re.sub(r"\s+", " ", b_runs)
    need(BUILD_CMD in norm, f"builder stage must run: {BUILD_CMD}")
    need(BUILD_TARGETS in norm, f"builder stage must run: {BUILD_TARGETS}")

    # runtime-libs: the runtime packages on a plain bookworm, assembling /rootfs.
    libs = [x for x in st if x.get("name") == "runtime-libs"]
    if need(libs, "no 'runtime-libs' stage (runtime packages + assemble-rootfs.sh)"):
        li = libs[0]
        need(li["from"].startswith("debian:bookworm") and "slim" not in li["from"],
             f"runtime-libs stage must be FROM debian:bookworm (is {li['from']})")
        l_runs = " ".join(arg for ins, arg in li["instrs"] if ins == "RUN")
        need("assemble-rootfs.sh /rootfs" in l_runs and "/usr/local/bin/dynamo-batcher" in l_runs,
             "runtime-libs must run assemble-rootfs.sh /rootfs on /usr/local/bin/dynamo-batcher")
        need(os.path.isfile(os.path.join(a.repo, "deploy", "image", "assemble-rootfs.sh")),
             "deploy/image/assemble-rootfs.sh missing")

    # Final stage: scratch, nothing but the assembled root (no shell, no apt).
    need(final["from"] == "scratch", f"final stage must be FROM scratch (is {final['from']})")
    fi = final["instrs"]
    need(not any(ins == "RUN" for ins, _ in fi),
         "final stage must not RUN anything (it has no shell)")
    users = [arg for ins, arg in fi if ins == "USER"]
    need(users and users[-1].split(":")[0] == "65532", "final stage must end as USER 65532")
    exposed = {p.split("/")[0] for ins, arg in fi if ins == "EXPOSE" for p in arg.split()}
    need({"50051", "9464"} <= exposed, f"EXPOSE must include 50051 and 9464 (has {sorted(exposed)})")
    vols = " ".join(arg for ins, arg in fi if ins == "VOLUME")
    need("/var/lib/dynamo-batcher" in vols, "VOLUME /var/lib/dynamo-batcher missing")
    entry = [arg for ins, arg in fi if ins == "ENTRYPOINT"]
    need(entry and entry[-1].lstrip().startswith("[") and "/usr/local/bin/dynamo-batcher" in entry[-1],
         "ENTRYPOINT must run /usr/local/bin/dynamo-batcher in exec form (no shell)")
    copies = [arg for ins, arg in fi if ins == "COPY"]
    need(any("--from=runtime-libs" in c and c.split()[-2].rstrip("/") == "/rootfs"
             and c.split()[-1] == "/" for c in copies),
         "final stage must COPY --from=runtime-libs /rootfs/ /")
    need(any("--chown=65532:65532" in c and c.split()[-1].rstrip("/") == "/var/lib/dynamo-batcher"
             for c in copies),
         "final stage must COPY /var/lib/dynamo-batcher with --chown=65532:65532")
    cfg_copies = [c for c in copies if c.split()[-1] == "/etc/dynamo-batcher/config.yaml"]
    if need(cfg_copies, "final stage must COPY a config to /etc/dynamo-batcher/config.yaml"):
        src = [w for w in shlex.split(cfg_copies[0]) if not w.startswith("--")][0]
        need(os.path.isfile(os.path.join(a.repo, src)), f"COPY source {src} does not exist")
    need(not any(ins == "ADD" for ins, _ in fi), "use COPY, not ADD")

    # Build context filter.
    ign = os.path.join(a.repo, "deploy", "Dockerfile.dockerignore")
    if need(os.path.isfile(ign), "deploy/Dockerfile.dockerignore missing"):
        with open(ign, encoding="utf-8") as f:
            pats = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        for path in NEEDED_IN_CONTEXT:
            need(not ignored(path, pats), f"Dockerfile.dockerignore excludes {path}")
        need(ignored("build-foo/CMakeCache.txt", pats), "Dockerfile.dockerignore keeps build trees")
        need(ignored("node_modules/x/package.json", pats), "Dockerfile.dockerignore keeps node_modules")

    # Baked-in config.
    try:
        import yaml
        with open(os.path.join(a.repo, "deploy", "container-config.yaml"), encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        for key in ("listen", "metrics_listen", "dynamodb", "tables", "batching", "drain_timeout"):
            need(key in cfg, f"container-config.yaml: missing '{key}'")
        dl = (cfg.get("dead_letter") or {}).get("path", "")
        need(dl.startswith("/var/lib/dynamo-batcher/"),
             "container-config.yaml: dead_letter.path must be on the /var/lib/dynamo-batcher volume")
    except ImportError:
        print("note: PyYAML missing, container-config.yaml not checked")
    except (OSError, ValueError, AttributeError) as e:
        errs.append(f"container-config.yaml: {e}")
    return report(errs)


def report(errs):
    if errs:
        for e in errs:
            print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("OK: deploy/Dockerfile follows the image contract")
    return 0


if __name__ == "__main__":
    sys.exit(main())
