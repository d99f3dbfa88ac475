#!/usr/bin/env python3
"""The peer of the benchmark: the same work done with boto3, no sidecar.

Modes:
  batch_writer  Table.batch_writer(overwrite_by_pkeys=[pk]) per table: what a
                Python service would write by hand (25 items per call, in-buffer
                dedup of repeated keys).
  naive         one PutItem / DeleteItem call per op: the baseline.

Workload (the same parameters and distribution as `batchctl bench`): N ops,
each to a table picked at random, each a put of {pk: "k<n>", v: <value-bytes>
of 'x'} (or a delete of the key, for --delete-ratio); a share --dup-ratio of
the ops reuses one of the last 64 fresh keys, the others draw a fresh key from
a key space of --keys. The ops are built before the clock starts, so only the
writing is measured.

Prints one JSON line: mode, ops, seconds, ops_per_s, cpu_s (user+sys of this
process while writing), cpu_s_per_1000_ops, calls (BatchWriteItem / PutItem /
DeleteItem calls, counted with botocore's before-call event), items_sent,
mean_batch, latency_ms {p50, p99, p999} (op scheduled -> the call carrying it
returned; for batch_writer an op is done when the call that flushed its
buffer returned) and errors.

  python3 bench/boto3_bench.py --endpoint http://127.0.0.1:8000 \
      --mode batch_writer --ops 200000 --tables bench_a,bench_b
"""

import argparse
import json
import os
import random
import resource
import sys
import time


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


def build_ops(n, tables, dup_ratio, delete_ratio, value_bytes, keys, seed):
    """Returns [(table_index, is_delete, key, value)], drawn like batchctl
    bench: table at random per op; with probability dup_ratio one of the last
    64 fresh keys again, otherwise a fresh key drawn from a key space of
    `keys`; value "v" is value_bytes of 'x'."""
    rng = random.Random(seed)
    recent_size = 64
    recent = []
    next_recent = 0
    value = "x" * value_bytes
    ops = []
    for _ in range(n):
        if recent and rng.random() < dup_ratio:
            key = recent[rng.randrange(len(recent))]
        else:
            key = rng.randrange(keys)
            if len(recent) < recent_size:
                recent.append(key)
            else:
                recent[next_recent % recent_size] = key
                next_recent += 1
        t = rng.randrange(len(tables))
        is_delete = delete_ratio > 0 and rng.random() < delete_ratio
        ops.append((t, is_delete, "k%d" % key, None if is_delete else value))
    return ops


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--mode", choices=["batch_writer", "naive"], default="batch_writer")
    p.add_argument("--ops", type=int, default=200000)
    p.add_argument("--tables", default="bench_a,bench_b")
    p.add_argument("--pk", default="pk", help="partition key attribute (type S)")
    p.add_argument("--keys", type=int, default=1000000000, help="key space")
    p.add_argument("--dup-ratio", type=float, default=0.1)
    p.add_argument("--delete-ratio", type=float, default=0.0)
    p.add_argument("--value-bytes", type=int, default=100)
    p.add_argument("--rate", type=float, default=0.0,
                   help="ops/s to pace the ops at (0 = as fast as possible)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--create-tables", action="store_true",
                   help="create the tables (PAY_PER_REQUEST) if missing, then exit")
    args = p.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    import boto3  # noqa: E402  (after the environment is set)
    from botocore.config import Config

    tables = [t for t in args.tables.split(",") if t]
    resource_ = boto3.resource(
        "dynamodb", endpoint_url=args.endpoint, region_name=args.region,
        config=Config(retries={"mode": "standard", "max_attempts": 10}))
    client = resource_.meta.client

    if args.create_tables:
        existing = set(client.list_tables().get("TableNames", []))
        for name in tables:
            if name in existing:
                continue
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": args.pk, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": args.pk, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST")
        for name in tables:
            client.get_waiter("table_exists").wait(
                TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
        print(json.dumps({"created": tables}))
        return 0

    ops = build_ops(args.ops, tables, args.dup_ratio, args.delete_ratio,
                    args.value_bytes, args.keys, args.seed)

    calls = {"BatchWriteItem": 0, "PutItem": 0, "DeleteItem": 0}
    items_sent = [0]
    # batch_writer mode: per table, the scheduled times of the ops waiting in
    # its buffer; the call that flushes the buffer completes all of them.
    pending = [[] for _ in tables]
    table_index = {name: i for i, name in enumerate(tables)}
    current_call_table = [None]
    latencies = []

    def before_call(model, params, **_):
        calls[model.name] = calls.get(model.name, 0) + 1

    def before_build(params, model, **_):
        if model.name == "BatchWriteItem":
            for name, reqs in params.get("RequestItems", {}).items():
                items_sent[0] += len(reqs)
                current_call_table[0] = table_index.get(name)

    def after_call(model, **_):
        if model.name != "BatchWriteItem" or current_call_table[0] is None:
            return
        now = time.perf_counter()
        waiting = pending[current_call_table[0]]
        latencies.extend(now - t for t in waiting)
        waiting.clear()

    events = client.meta.events
    events.register("before-call.dynamodb", before_call)
    events.register("before-parameter-build.dynamodb", before_build)
    events.register("after-call.dynamodb", after_call)

    handles = [resource_.Table(name) for name in tables]
    pk = args.pk
    errors = 0
    interval = 1.0 / args.rate if args.rate > 0 else 0.0

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if args.mode == "batch_writer":
        writers = [h.batch_writer(overwrite_by_pkeys=[pk]) for h in handles]
        for w in writers:
            w.__enter__()
        for i, (t, is_delete, key, value) in enumerate(ops):
            scheduled = t0 + i * interval if interval else time.perf_counter()
            if interval:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            pending[t].append(scheduled)
            if is_delete:
                writers[t].delete_item(Key={pk: key})
            else:
                writers[t].put_item(Item={pk: key, "v": value})
        for w in writers:
            w.__exit__(None, None, None)
    else:
        for i, (t, is_delete, key, value) in enumerate(ops):
            scheduled = t0 + i * interval if interval else time.perf_counter()
            if interval:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            try:
                if is_delete:
                    handles[t].delete_item(Key={pk: key})
                else:
                    handles[t].put_item(Item={pk: key, "v": value})
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors += 1
                if errors == 1:
                    print("first error: %r" % (e,), file=sys.stderr)
            latencies.append(time.perf_counter() - scheduled)
    elapsed = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)

    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    latencies.sort()
    bwi = calls.get("BatchWriteItem", 0)
    total_calls = sum(calls.values())
    out = {
        "tool": "boto3", "mode": args.mode, "boto3": boto3.__version__,
        "ops": len(ops), "seconds": round(elapsed, 4),
        "ops_per_s": round(len(ops) / elapsed, 1) if elapsed > 0 else 0,
        "rate": args.rate,
        "cpu_s": round(cpu, 4),
        "cpu_s_per_1000_ops": round(1000.0 * cpu / len(ops), 5) if ops else 0,
        "calls": total_calls, "batch_write_item_calls": bwi,
        "items_sent": items_sent[0] if bwi else total_calls,
        "mean_batch": round(items_sent[0] / bwi, 2) if bwi else 1.0,
        "latency_ms": {
            "p50": round(1000 * percentile(latencies, 0.50), 3),
            "p99": round(1000 * percentile(latencies, 0.99), 3),
            "p999": round(1000 * percentile(latencies, 0.999), 3),
        },
        "errors": errors,
    }
    print(json.dumps(out))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
