#!/usr/bin/env python3
"""Plots for docs/throttling.md from a run of tests/integration/throttling_test.

The test writes its time series into its own directory under
build/test-tmp/ and prints their paths ("[figures] time series: ...").

  cd build && ./tests/integration/throttling_test --gtest_filter='*HotPartition*:*Fleet*'
  python3 docs/plot_throttling.py \
      --hot build/test-tmp/HotPartitionKeyIsPacedAndOtherKeysKeepTheirRate-*/hot_partition.csv \
      --fleet build/test-tmp/FleetOf8SharesOneTable-*/fleet8.csv --out docs/img

Needs Debian's python3-matplotlib. Writes hot_partition.png,
fleet_rates.png and fleet_limits.png.
"""
import argparse
import csv
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_hot(path, out):
    rows = read(path)
    sec = [int(r["second"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(sec, [int(r["others_written"]) for r in rows], label="other keys, written/s")
    ax.plot(sec, [int(r["hot_written"]) for r in rows], label="hot key, written/s")
    ax.axhline(float(rows[0]["others_offered"]), ls="--", c="C0", lw=0.8, label="others offered")
    ax.axhline(float(rows[0]["hot_cap"]), ls="--", c="C1", lw=0.8, label="hot key's cap")
    ax.set_xlabel("seconds")
    ax.set_ylabel("items/s")
    ax.set_title("Hot partition key: paced on its own, the rest of the table unaffected")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "hot_partition.png"), dpi=110)


def plot_fleet(path, out):
    rows = read(path)
    by = defaultdict(list)
    for r in rows:
        by[int(r["sidecar"])].append((float(r["t"]), float(r["send_rate_limit"]), float(r["written"])))
    capacity = float(rows[0]["capacity"])
    # Per-sidecar written items/s (difference of the counter between samples).
    fig, ax = plt.subplots(figsize=(7, 3.5))
    total = defaultdict(float)
    for s, pts in sorted(by.items()):
        ts, rates = [], []
        for (t0, _, w0), (t1, _, w1) in zip(pts, pts[1:]):
            if t1 > t0:
                ts.append(t1)
                rates.append((w1 - w0) / (t1 - t0))
                total[round(t1 * 2) / 2] += (w1 - w0) / (t1 - t0)
        ax.plot(ts, rates, lw=0.8, label=f"sidecar {s}" if len(by) <= 8 else None)
    tt = sorted(total)
    ax.plot(tt, [total[t] for t in tt], c="k", lw=1.5, label="fleet total")
    ax.axhline(capacity, ls="--", c="r", lw=0.8, label="table capacity")
    ax.set_xlabel("seconds")
    ax.set_ylabel("items written/s")
    ax.set_title(f"{len(by)} sidecars sharing one table at 2.4x overload")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fleet_rates.png"), dpi=110)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    limits = defaultdict(float)
    for s, pts in sorted(by.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=0.8)
        for t, lim, _ in pts:
            limits[round(t * 2) / 2] += lim
    tt = sorted(limits)
    ax.plot(tt, [limits[t] for t in tt], c="k", lw=1.5, label="sum of send-rate limits")
    ax.axhline(capacity, ls="--", c="r", lw=0.8, label="table capacity")
    ax.set_yscale("symlog", linthresh=100)
    ax.set_xlabel("seconds")
    ax.set_ylabel("send_rate_limit, items/s (0 = unlimited)")
    ax.set_title("Send-rate limit per sidecar against the table's capacity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fleet_limits.png"), dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hot")
    ap.add_argument("--fleet")
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.hot:
        plot_hot(args.hot, args.out)
    if args.fleet:
        plot_fleet(args.fleet, args.out)


if __name__ == "__main__":
    main()
