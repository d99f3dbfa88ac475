#!/usr/bin/env python3
"""Helpers for bench/run: reads the per-scenario records and prints the
table, the ratios and the targets; optionally writes docs/benchmarks.md.

  report.py report RESULTS_DIR --meta META.kv [--docs FILE --notes NOTES.md]
  report.py footprint FOOTPRINT.kv --meta META.kv [--docs FILE]
                                                the footprint scenario alone;
                                                with --docs, replaces only the
                                                footprint section of FILE
  report.py metric-sum METRICS_FILE NAME        sum of all series of NAME
  report.py metric-delta BEFORE AFTER NAME      the same, after minus before
  report.py json-get FILE KEY                   KEY of the first JSON line

A record (NN-name.kv) is key=value lines written by bench/run: name, group,
load, rate, tool, command, client_json (batchctl's or boto3_bench's JSON
line), client_time ("user sys maxrss_kib wall" from /usr/bin/time), cpu_<role>
(seconds used by a server process during the run), backend_calls (nginx log
lines), batches / batch_items (sidecar metrics deltas), sidecar_hwm_kib, ...
"""

import glob
import json
import os
import re
import sys

MIB = 1024.0


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def metric_sum(path, name):
    total = 0.0
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("#"):
                    continue
                m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
                if m and m.group(1) == name:
                    try:
                        total += float(m.group(3))
                    except ValueError:
                        pass
    except OSError:
        return 0.0
    return total


def first_json(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("{"):
                    return json.loads(line)
    except (OSError, ValueError):
        pass
    return {}


def fnum(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


class Row:
    """One scenario run, normalised across batchctl and boto3."""

    def __init__(self, kv):
        self.kv = kv
        self.name = kv.get("name", "?")
        self.group = kv.get("group", self.name)
        self.load = kv.get("load", "")
        self.tool = kv.get("tool", "")
        self.error = kv.get("error", "")
        try:
            self.client = json.loads(kv.get("client_json") or "{}")
        except ValueError:
            self.client = {}
        t = (kv.get("client_time") or "").split()
        self.client_wall_cpu = (fnum(t[0], 0) + fnum(t[1], 0)) if len(t) >= 2 else None
        c = self.client
        if self.tool == "boto3":
            self.ops = fnum(c.get("ops"), 0)
            self.ops_per_s = fnum(c.get("ops_per_s"), 0)
            # The boto3 process's own CPU while writing (ops built beforehand).
            self.client_cpu = fnum(c.get("cpu_s"), self.client_wall_cpu)
            lat = c.get("latency_ms", {})
            self.p50, self.p99, self.p999 = (fnum(lat.get(k)) for k in ("p50", "p99", "p999"))
            self.calls = fnum(c.get("calls"))
            self.mean_batch = fnum(c.get("mean_batch"))
        else:
            self.ops = fnum(c.get("results"), 0)
            self.ops_per_s = fnum(c.get("ops_per_s"), 0)
            # batchctl's own CPU from the first send to the last result
            # (cpu_s, messages built beforehand, like boto3's); the whole
            # process from /usr/bin/time when an older batchctl has no cpu_s.
            self.client_cpu = fnum(c.get("cpu_s"), self.client_wall_cpu)
            self.p50, self.p99, self.p999 = (fnum(c.get(k)) for k in ("p50_ms", "p99_ms", "p999_ms"))
            self.calls = fnum(kv.get("batches"))
            items = fnum(kv.get("batch_items"))
            self.mean_batch = (items / self.calls) if self.calls and items is not None else None
        self.backend_calls = fnum(kv.get("backend_calls"))
        if self.calls is None and self.backend_calls:
            self.calls = self.backend_calls
        self.server_cpu = None
        self.server_role = None
        for role in ("sidecar", "ack"):
            if "cpu_" + role in kv:
                self.server_cpu = fnum(kv["cpu_" + role])
                self.server_role = role
        self.backend_cpu = None
        self.backend_role = None
        for role in ("nginx", "dynalite", "proxy"):
            if "cpu_" + role in kv:
                self.backend_cpu = fnum(kv["cpu_" + role])
                self.backend_role = role
        self.hwm_mib = fnum(kv.get("sidecar_hwm_kib"))
        if self.hwm_mib is not None:
            self.hwm_mib /= MIB

    def per_k(self, cpu):
        if cpu is None or not self.ops:
            return None
        return 1000.0 * cpu / self.ops

    @property
    def our_cpu_per_k(self):
        """Client + sidecar (or ack server) CPU per 1,000 ops."""
        parts = [x for x in (self.client_cpu, self.server_cpu) if x is not None]
        return self.per_k(sum(parts)) if parts else None


def fmt(v, spec="{:.3f}", none="–"):
    return none if v is None else spec.format(v)


LABELS = {
    "floor": "floor: batchctl → ack-only gRPC server",
    "floor-1": "floor, 1 op/message",
    "sidecar-nginx": "sidecar → nginx (instant backend)",
    "sidecar-nginx-1": "sidecar → nginx, 1 op/message",
    "boto3-bw-nginx": "boto3 batch_writer → nginx",
    "boto3-naive-nginx": "boto3 PutItem per op → nginx",
    "sidecar-dynalite": "sidecar → dynalite",
    "boto3-bw-dynalite": "boto3 batch_writer → dynalite",
    "boto3-naive-dynalite": "boto3 PutItem per op → dynalite",
    "overload": "overload: sidecar → fault proxy (+latency) → nginx",
}


def table(rows):
    head = ["scenario", "load", "ops", "ops/s", "CPU s/1k ops client", "sidecar/server",
            "backend", "client+sidecar", "BatchWriteItem calls", "mean batch",
            "p50 ms", "p99 ms", "p999 ms", "sidecar peak RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        backend = fmt(r.per_k(r.backend_cpu), "{:.3f}")
        if r.backend_role:
            backend += " (" + r.backend_role + ")"
        server = fmt(r.per_k(r.server_cpu), "{:.3f}")
        if r.server_role == "ack":
            server += " (ack)"
        cells = [LABELS.get(r.group, r.group), r.load, fmt(r.ops, "{:,.0f}"),
                 fmt(r.ops_per_s, "{:,.0f}"), fmt(r.per_k(r.client_cpu)), server, backend,
                 fmt(r.our_cpu_per_k) if r.tool != "boto3" else fmt(r.per_k(r.client_cpu)),
                 fmt(r.calls, "{:,.0f}"), fmt(r.mean_batch, "{:.2f}"),
                 fmt(r.p50, "{:.2f}"), fmt(r.p99, "{:.2f}"), fmt(r.p999, "{:.2f}"),
                 fmt(r.hwm_mib, "{:.1f}")]
        if r.error:
            cells[0] += " **(" + r.error + ")**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def find(rows, group, load="max"):
    for r in rows:
        if r.group == group and r.load == load:
            return r
    return None


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def parse_duration_ms(text):
    m = re.match(r"^([0-9.]+)(ms|s|us)$", text or "")
    if not m:
        return None
    v = float(m.group(1))
    return {"ms": v, "s": v * 1000, "us": v / 1000}[m.group(2)]


def parse_bytes(text):
    m = re.match(r"^([0-9]+)(MiB|GiB|KiB)?$", text or "")
    if not m:
        return None
    return int(m.group(1)) * {"MiB": 1 << 20, "GiB": 1 << 30, "KiB": 1 << 10, None: 1}[m.group(2)]


def analyse(rows, extra, meta):
    """Returns (ratio lines, target rows [(target, measured, ok)])."""
    ratios = []
    targets = []
    floor = find(rows, "floor")
    sc = find(rows, "sidecar-nginx")
    sc50 = find(rows, "sidecar-nginx", "50%")
    bw = find(rows, "boto3-bw-nginx")
    naive = find(rows, "boto3-naive-nginx")
    scd = find(rows, "sidecar-dynalite")
    bwd = find(rows, "boto3-bw-dynalite")
    naived = find(rows, "boto3-naive-dynalite")
    floor1 = find(rows, "floor-1")
    sc1 = find(rows, "sidecar-nginx-1")

    def add_ratio(label, value, suffix="×"):
        ratios.append("- %s: **%s**" % (label, fmt(value, "{:.2f}" + suffix)))

    if sc and floor:
        add_ratio("sidecar→nginx ÷ floor, ops/s", ratio(sc.ops_per_s, floor.ops_per_s))
    if sc1 and floor1:
        add_ratio("sidecar→nginx ÷ floor at 1 op/message, ops/s",
                  ratio(sc1.ops_per_s, floor1.ops_per_s))
    for r, label in ((sc, "%s ops/message" % meta.get("ops_per_message", "?")),
                     (sc1, "1 op/message")):
        if r and r.server_cpu is not None and r.ops:
            ratios.append("- sidecar CPU per op at %s: **%.2f µs**"
                          % (label, 1e6 * r.server_cpu / r.ops))
    for peer, label in ((bw, "boto3 batch_writer"), (naive, "boto3 PutItem per op")):
        if sc and peer:
            add_ratio("sidecar→nginx ÷ %s→nginx, ops/s" % label, ratio(sc.ops_per_s, peer.ops_per_s))
            add_ratio("%s CPU per op ÷ (sidecar + batchctl) CPU per op, nginx" % label,
                      ratio(peer.per_k(peer.client_cpu), sc.our_cpu_per_k))
    for peer, label in ((bwd, "boto3 batch_writer"), (naived, "boto3 PutItem per op")):
        if scd and peer:
            add_ratio("sidecar→dynalite ÷ %s→dynalite, ops/s" % label,
                      ratio(scd.ops_per_s, peer.ops_per_s))
            add_ratio("%s CPU per op ÷ (sidecar + batchctl) CPU per op, dynalite" % label,
                      ratio(peer.per_k(peer.client_cpu), scd.our_cpu_per_k))
    if scd and scd.backend_cpu is not None and scd.kv.get("client_time"):
        wall = fnum(scd.kv["client_time"].split()[-1])
        if wall:
            ratios.append("- dynalite's CPU during sidecar→dynalite: %.2f s of %.2f s wall "
                          "(%.0f%% of one core; node is single-threaded, so dynalite is the "
                          "bottleneck there)" % (scd.backend_cpu, wall, 100 * scd.backend_cpu / wall))

    opm = int(fnum(meta.get("ops_per_message"), 0))
    # The goals of issue 15 (sidecar cost per op), each a ratio from this run.
    if sc:
        targets.append(("sidecar→nginx ≥ 200,000 ops/s (packing %d ops/message)" % opm,
                        fmt(sc.ops_per_s, "{:,.0f} ops/s"), sc.ops_per_s >= 200000 and opm >= 64))
        if floor:
            rr = ratio(sc.ops_per_s, floor.ops_per_s)
            targets.append(("≥ 40% of the floor at the same packing", fmt(rr, "{:.0%}"),
                            rr is not None and rr >= 0.4))
        if sc.server_cpu is not None and sc.ops:
            us = 1e6 * sc.server_cpu / sc.ops
            targets.append(("sidecar CPU per op ≤ 2 µs", "%.2f µs" % us, us <= 2.0))
        if bw:
            rr = ratio(sc.ops_per_s, bw.ops_per_s)
            targets.append(("≥ 40× boto3 batch_writer's ops/s (nginx)", fmt(rr, "{:.1f}×"),
                            rr is not None and rr >= 40))
            rc = ratio(bw.per_k(bw.client_cpu), sc.our_cpu_per_k)
            targets.append(("≥ 25× less CPU per op than boto3 batch_writer (sidecar + client vs boto3)",
                            fmt(rc, "{:.1f}×"), rc is not None and rc >= 25))
        targets.append(("mean batch size ≥ 24 at saturation", fmt(sc.mean_batch, "{:.2f}"),
                        sc.mean_batch is not None and sc.mean_batch >= 24))
        if sc.hwm_mib is not None:
            targets.append(("peak RSS at saturation, default buffer budgets, ≤ 96 MiB",
                            "%.1f MiB" % sc.hwm_mib, sc.hwm_mib <= 96))
    if sc1 and floor1:
        rr = ratio(sc1.ops_per_s, floor1.ops_per_s)
        targets.append(("1 op/message: ≥ 50% of the floor at 1 op/message", fmt(rr, "{:.0%}"),
                        rr is not None and rr >= 0.5))
    if sc50:
        linger = parse_duration_ms(meta.get("linger", "5ms")) or 5.0
        targets.append(("at 50%% load p99 ≤ linger + 5 ms = %.0f ms" % (linger + 5),
                        fmt(sc50.p99, "{:.2f} ms"), sc50.p99 is not None and sc50.p99 <= linger + 5))
    idle = extra.get("sidecar_idle_rss_kib")
    if idle is not None:
        targets.append(("sidecar RSS idle ≤ 64 MiB", "%.1f MiB" % (idle / MIB), idle / MIB <= 64))
    ov = find(rows, "overload")
    if ov:
        budget = parse_bytes(ov.kv.get("budget"))
        peak = max(x for x in (fnum(ov.kv.get("sidecar_hwm_kib"), 0),
                               fnum(ov.kv.get("sampled_peak_rss_kib"), 0)))
        if budget:
            limit = budget / (1 << 20) + 64
            targets.append(("under overload RSS ≤ buffer budget (%s) + 64 MiB = %.0f MiB"
                            % (ov.kv.get("budget"), limit),
                            "%.1f MiB" % (peak / MIB), peak / MIB <= limit))
    return ratios, targets


def targets_table(targets):
    lines = ["| target | measured | met |", "|---|---|---|"]
    for t, m, ok in targets:
        lines.append("| %s | %s | %s |" % (t, m, "yes" if ok else "**no**"))
    return "\n".join(lines)


def overload_text(rows, meta):
    ov = find(rows, "overload")
    if not ov:
        return ""
    c = ov.client
    peak = max(fnum(ov.kv.get("sidecar_hwm_kib"), 0), fnum(ov.kv.get("sampled_peak_rss_kib"), 0))
    floor = fnum(ov.kv.get("floor_ops_per_s"))
    drained = ov.ops_per_s
    over = ("%.0f×" % (floor / drained)) if floor and drained else "?"
    return (
        "Overload: buffer budget %s, fault proxy adding %s ms to every call, batchctl sending "
        "as fast as it can for %s s (it could offer up to the floor's %s ops/s, %s what the "
        "slow backend drains: %s ops/s). Sidecar peak RSS %.1f MiB; %s ops answered, "
        "%s missing, %s failed." % (
            ov.kv.get("budget"), ov.kv.get("latency_ms"), ov.kv.get("offered_seconds"),
            fmt(floor, "{:,.0f}"), over, fmt(drained, "{:,.0f}"), peak / MIB,
            fmt(fnum(c.get("results")), "{:,.0f}"), c.get("missing", "?"), c.get("failed", "?")))


FOOTPRINT_BEGIN = ("<!-- footprint section: written by bench/run; "
                   "`bench/run --footprint-only` refreshes only this part -->")
FOOTPRINT_END = "<!-- end of footprint section -->"


def footprint_section(kv, meta):
    """Markdown for the footprint scenario (a 90-footprint.kv record), with
    its three targets."""
    if not kv:
        return ""
    g = lambda k: fnum(kv.get(k))
    rate = int(g("footprint_rate") or 0)
    steady_peak = max(g("footprint_steady_peak_rss_kib") or 0, g("footprint_steady_hwm_kib") or 0)
    steady = {}
    burst = {}
    try:
        steady = json.loads(kv.get("footprint_steady_json") or "{}")
        burst = json.loads(kv.get("footprint_burst_json") or "{}")
    except ValueError:
        pass
    decay = []
    for item in (kv.get("footprint_decay_series") or "").split(","):
        parts = item.split()
        if len(parts) == 2:
            decay.append((int(parts[0]), int(parts[1])))
    decay_secs = int(g("footprint_decay_seconds") or 30)
    decay_end = g("footprint_decay_end_rss_kib")
    under = next((t for t, v in decay if v / MIB <= 48), None)
    idle_secs = g("footprint_idle_cpu_seconds") or 60
    idle_pct = (g("footprint_idle_cpu_ns") or 0) / (idle_secs * 1e9) * 100
    shown = [(t, v) for t, v in decay if t in (1, 2, 5, 10, 15, 20, 25, 30) or t == decay_secs]
    lines = [
        FOOTPRINT_BEGIN,
        "## Footprint",
        "",
        "Measured %s on commit %s%s (%s build), %s cores; sidecar → nginx as above, "
        "%s streams, %s ops/message.%s" % (
            meta.get("date"), meta.get("commit"),
            " (uncommitted changes)" if meta.get("dirty") == "yes" else "",
            meta.get("build_type"), meta.get("nproc"), meta.get("streams", "4"),
            meta.get("ops_per_message", "64"),
            (" `MALLOC_CONF=%s` was set." % kv["footprint_malloc_conf"])
            if kv.get("footprint_malloc_conf") else ""),
        "",
        "- RSS after start-up: %.1f MiB" % ((g("footprint_start_rss_kib") or 0) / MIB),
        "- steady %s ops/s for %s s (reached %s ops/s, p99 %s ms): peak RSS %.1f MiB "
        "(VmHWM and 0.5 s samples)" % (
            "{:,}".format(rate), kv.get("footprint_steady_seconds"),
            fmt(fnum(steady.get("ops_per_s")), "{:,.0f}"),
            fmt(fnum(steady.get("p99_ms")), "{:.2f}"), steady_peak / MIB),
        "- burst of %s ops at full rate (%s ops/s): peak RSS %.1f MiB, %.1f MiB when it ended" % (
            "{:,}".format(int(g("footprint_burst_ops") or 0)),
            fmt(fnum(burst.get("ops_per_s")), "{:,.0f}"),
            (g("footprint_burst_hwm_kib") or 0) / MIB, (g("footprint_burst_end_rss_kib") or 0) / MIB),
        "- idle after the burst, RSS by second: " + ", ".join(
            "%d s %.1f MiB" % (t, v / MIB) for t, v in shown),
        "- idle CPU over %d s (all threads, `/proc/PID/task/*/schedstat`): %.3f%% of a core "
        "(%.1f ms); %s threads" % (idle_secs, idle_pct, (g("footprint_idle_cpu_ns") or 0) / 1e6,
                                   kv.get("footprint_threads", "?")),
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    ok1 = decay_end is not None and decay_end / MIB <= 48
    lines.append("| after a burst, RSS ≤ 48 MiB within %d s idle | %s | %s |" % (
        decay_secs,
        ("%.1f MiB at %d s (≤ 48 MiB from %s s)" % (decay_end / MIB, decay_secs, under))
        if decay_end is not None else "–", "yes" if ok1 else "**no**"))
    ok2 = steady_peak > 0 and steady_peak / MIB <= 64
    lines.append("| at a steady %s ops/s, RSS ≤ 64 MiB | %.1f MiB | %s |" % (
        "{:,}".format(rate), steady_peak / MIB, "yes" if ok2 else "**no**"))
    ok3 = idle_pct <= 0.1
    lines.append("| idle CPU ≤ 0.1%% of a core over %d s | %.3f%% | %s |" % (
        idle_secs, idle_pct, "yes" if ok3 else "**no**"))
    lines += ["", "Commands (batchctl's part):", "", "```",
              kv.get("footprint_steady_command", ""), kv.get("footprint_burst_command", ""),
              "```", "", FOOTPRINT_END]
    return "\n".join(lines)


def footprint(args):
    opts = {}
    i = 1
    while i < len(args):
        opts[args[i].lstrip("-")] = args[i + 1]
        i += 2
    meta = read_kv(opts["meta"]) if "meta" in opts else {}
    section = footprint_section(read_kv(args[0]), meta)
    print(section)
    if "docs" in opts:
        try:
            with open(opts["docs"]) as f:
                doc = f.read()
        except OSError:
            doc = ""
        b, e = doc.find(FOOTPRINT_BEGIN), doc.find(FOOTPRINT_END)
        if b >= 0 and e > b:
            doc = doc[:b] + section + doc[e + len(FOOTPRINT_END):]
        else:
            doc = doc.rstrip("\n") + "\n\n" + section + "\n"
        with open(opts["docs"], "w") as f:
            f.write(doc)
        print("\nwrote " + opts["docs"])
    return 0


def commands_text(rows, meta):
    seen = []
    for r in rows:
        cmd = r.kv.get("command")
        if cmd and cmd not in seen:
            seen.append(cmd)
    return "\n".join(seen)


def report(args):
    res_dir = args[0]
    opts = {}
    i = 1
    while i < len(args):
        opts[args[i].lstrip("-")] = args[i + 1]
        i += 2
    meta = read_kv(opts["meta"]) if "meta" in opts else {}
    rows, extra = [], {}
    fp_kv = {}
    for path in sorted(glob.glob(os.path.join(res_dir, "*.kv"))):
        kv = read_kv(path)
        if kv.get("name") == "footprint":
            fp_kv = kv
        elif "client_json" in kv:
            rows.append(Row(kv))
        else:
            for k, v in kv.items():
                if k.endswith("_kib"):
                    extra[k] = fnum(v)
    ratios, targets = analyse(rows, extra, meta)
    tbl = table(rows)
    machine = "%s cores, %s, %s RAM, Linux %s, %s" % (
        meta.get("nproc"), meta.get("cpu_model"), meta.get("mem"), meta.get("kernel"),
        meta.get("os"))
    idle_lines = []
    if extra.get("sidecar_idle_rss_kib") is not None:
        idle_lines.append("- sidecar RSS idle (after start-up): %.1f MiB"
                          % (extra["sidecar_idle_rss_kib"] / MIB))
    if extra.get("sidecar_idle_after_rss_kib") is not None:
        idle_lines.append("- sidecar RSS idle after the nginx runs: %.1f MiB"
                          % (extra["sidecar_idle_after_rss_kib"] / MIB))

    print()
    print("machine: " + machine)
    print("commit %s%s, %s build, %s ops, %s streams, %s ops/message, linger %s" % (
        meta.get("commit"), " (dirty tree)" if meta.get("dirty") == "yes" else "",
        meta.get("build_type"), meta.get("ops"), meta.get("streams"),
        meta.get("ops_per_message"), meta.get("linger")))
    print()
    print(tbl)
    print()
    for line in ratios + idle_lines:
        print(line)
    ov = overload_text(rows, meta)
    if ov:
        print("- " + ov)
    print()
    print(targets_table(targets))
    fp = footprint_section(fp_kv, meta)
    if fp:
        print()
        print(fp)

    if "docs" in opts:
        notes = ""
        if opts.get("notes") and os.path.exists(opts["notes"]):
            with open(opts["notes"]) as f:
                notes = f.read().strip() + "\n"
        doc = DOC_TEMPLATE.format(
            date=meta.get("date"), machine=machine, commit=meta.get("commit"),
            dirty=" (uncommitted changes in the tree)" if meta.get("dirty") == "yes" else "",
            build_type=meta.get("build_type"), nginx=meta.get("nginx"), node=meta.get("node"),
            python=meta.get("python"), boto3=meta.get("boto3"), command=meta.get("command"),
            ops=meta.get("ops"), naive_ops=meta.get("naive_ops"),
            dynalite_ops=meta.get("dynalite_ops"), streams=meta.get("streams"),
            single_ops=meta.get("single_ops", "?"),
            opm=meta.get("ops_per_message"), linger=meta.get("linger"),
            table=tbl, ratios="\n".join(ratios + idle_lines),
            overload=("- " + ov) if ov else "", targets=targets_table(targets),
            commands=commands_text(rows, meta), notes=notes,
            footprint=(fp + "\n") if fp else "")
        with open(opts["docs"], "w") as f:
            f.write(doc)
        print("\nwrote " + opts["docs"])
    failed_runs = [r.name + "/" + r.load for r in rows if r.error]
    if failed_runs:
        print("runs with errors: " + ", ".join(failed_runs), file=sys.stderr)
        return 1
    return 0


DOC_TEMPLATE = """# Benchmarks

Generated by `bench/run` on {date}; rerun it to refresh this file (the notes at
the end come from `bench/notes.md`).

- Machine: {machine}
- Commit: {commit}{dirty}, CMake build type {build_type}
- nginx {nginx}, node {node} (dynalite, fault proxy), Python {python} with boto3 {boto3}
- Command: `{command}`

## The work

Every scenario does the same work: {ops} ops (boto3's one-call-per-op baseline:
the first {naive_ops} ops of the same sequence; dynalite runs: {dynalite_ops}
ops), puts of `{{pk: "k<n>", v: <100 bytes>}}` to one of 2 tables picked at
random, 10% of the ops reusing one of the last 64 keys (so coalescing and
boto3's `overwrite_by_pkeys` have something to do), the other keys fresh.
gRPC clients: `batchctl bench` with {streams} streams (one connection each),
{opm} ops per WriteRequest. Sidecar: linger {linger}, max 25 items per call,
default `max_inflight_calls`. Everything on 127.0.0.1.

- **floor**: `batchctl bench` against `bench_ack_server`, a WriteBatcher
  server (callback API, like the sidecar) that answers every op WRITTEN at
  once: the most gRPC gives on this machine for this message packing.
- **sidecar → nginx**: nginx (`bench/nginx.conf.template`, one worker)
  answers every POST with `{{"UnprocessedItems":{{}}}}`: no backend cost, so
  this is the sidecar's own cost.
- **sidecar → dynalite**: a real emulator (node, single-threaded); dynalite is
  the bottleneck there, reported as it is, not tuned for.
- **boto3**: `bench/boto3_bench.py`, `Table.batch_writer(overwrite_by_pkeys=["pk"])`
  per table, and one `put_item` per op as the naive baseline, against the same
  backends.
- **50% load**: the same run paced at half the ops/s that scenario reached at
  full load (`--rate`).
- **1 op/message**: floor and sidecar → nginx again with one op per
  WriteRequest ({single_ops} ops), what simple stubs in other languages send.
- Sidecar buffer budgets: the defaults (`buffer.max_bytes` 64MiB,
  `max_table_bytes` 32MiB), except in the overload scenario.

How it is measured: ops/s = results received ÷ (first send → last result).
CPU: `/proc/PID/stat` utime+stime of each server process (sidecar, ack server,
nginx, dynalite) before and after the run; each client's from `getrusage` of
itself around the writing only, all messages or ops built beforehand (batchctl
`bench`'s `cpu_s`: first send to last result; boto3: around the writing). BatchWriteItem calls:
the sidecar's `dynamo_batcher_batches_sent_total` (nginx's access log agrees),
boto3's counted with botocore's `before-call` event; mean batch = items sent ÷
calls (`dynamo_batcher_batch_size` sum ÷ calls). Latency: per op, from
handing its message to gRPC to its result (batchctl); for boto3, from the
op's turn to the return of the call that carried it. Sidecar peak RSS:
`VmHWM`, reset before each run (`/proc/PID/clear_refs`).

## Results

{table}

"client+sidecar" is the CPU of the gRPC client plus the sidecar (or ack
server) per 1,000 ops; for boto3 rows it is the boto3 process alone.

{ratios}
{overload}

## Targets

{targets}

{footprint}
## Exact commands

`bench/run` builds (Release, `build-bench` or `$BUILD_DIR`), starts
`bench_ack_server`, nginx, dynalite (`node tests/tools/dynalite.js --port 0`),
the fault proxy (`node tests/tools/fault_proxy.js --target http://127.0.0.1:<nginx> --latency-ms 50`)
and the sidecar (`dynamo-batcher --config <generated>`, ports chosen by the
kernel, read from its "listening" log line) on free loopback ports, then runs:

```
{commands}
```

Options: `bench/run --quick` (5,000 ops, floor and sidecar → nginx only, no
docs; what the `bench_smoke` ctest runs), `--ops N`, `--naive-ops N`,
`--dynalite-ops N`, `--single-ops N`, `--streams N`, `--ops-per-message N`, `--linger D`,
`--no-dynalite`, `--no-boto3`, `--no-overload`, `--no-footprint`, `--footprint-only` (the footprint scenario alone, rewriting only its section), `--no-docs`, `--no-build`,
`--build-dir DIR`. `KEEP_WORK=1` keeps the temporary directory (configs, logs,
raw results).

{notes}"""


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "metric-sum" and len(argv) == 4:
        print("%g" % metric_sum(argv[2], argv[3]))
        return 0
    if cmd == "metric-delta" and len(argv) == 5:
        print("%g" % (metric_sum(argv[3], argv[4]) - metric_sum(argv[2], argv[4])))
        return 0
    if cmd == "json-get" and len(argv) == 4:
        v = first_json(argv[2]).get(argv[3], 0)
        print(v)
        return 0
    if cmd == "footprint" and len(argv) >= 3:
        return footprint(argv[2:])
    if cmd == "report" and len(argv) >= 3:
        return report(argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
