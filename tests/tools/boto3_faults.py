#!/usr/bin/env python3
"""boto3's Table.batch_writer through the fault proxy, for comparison.

Runs the same kind of work as tests/integration/faults_test.cc (puts and
deletes with repeated keys) through boto3's batch_writer against an endpoint
(the fault proxy in front of dynalite), then scans the table and reports:
calls made, throttled calls, exceptions raised, and items lost (the table
differs from the last write per key).

  python3 tests/tools/boto3_faults.py --endpoint http://127.0.0.1:PORT \
      --table events --ops 20000 --keys 15000

Prints one JSON line. Uses fake credentials (dynalite does not check them).
"""
import argparse
import json
import os
import random
import sys
import time

import boto3
import botocore.config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--table", default="events")
    ap.add_argument("--pk", default="pk")
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--keys", type=int, default=15000)
    ap.add_argument("--delete-ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--retry-mode", default="standard", choices=["legacy", "standard", "adaptive"])
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    cfg = botocore.config.Config(retries={"mode": args.retry_mode}, max_pool_connections=10)
    ddb = boto3.resource("dynamodb", endpoint_url=args.endpoint, region_name="us-east-1", config=cfg)
    client = ddb.meta.client
    stats = {"http_calls": 0, "batch_write_calls": 0, "throttled_calls": 0,
             "calls_with_unprocessed": 0, "unprocessed_items": 0}

    def before_send(request, **kw):
        stats["http_calls"] += 1
        target = request.headers.get("X-Amz-Target", b"")
        if isinstance(target, bytes):
            target = target.decode()
        if "BatchWriteItem" in target:
            stats["batch_write_calls"] += 1

    def after_call(http_response, parsed, model, **kw):
        if model.name != "BatchWriteItem":
            return
        code = parsed.get("Error", {}).get("Code", "")
        if code in ("ProvisionedThroughputExceededException", "ThrottlingException",
                    "RequestLimitExceeded"):
            stats["throttled_calls"] += 1
        un = sum(len(v) for v in parsed.get("UnprocessedItems", {}).values())
        if un:
            stats["calls_with_unprocessed"] += 1
            stats["unprocessed_items"] += un

    client.meta.events.register("before-send.dynamodb", before_send)
    client.meta.events.register("after-call.dynamodb", after_call)

    rng = random.Random(args.seed)
    expected = {}
    table = ddb.Table(args.table)
    exceptions = []
    start = time.time()
    cpu0 = time.process_time()
    i = 0
    while i < args.ops:
        # batch_writer loses its buffer when a call raises: start a new one
        # and carry on, as a service would.
        try:
            with table.batch_writer(overwrite_by_pkeys=[args.pk]) as bw:
                while i < args.ops:
                    key = "k%d" % rng.randrange(args.keys)
                    if rng.random() < args.delete_ratio:
                        bw.delete_item(Key={args.pk: key})
                        expected[key] = None
                    else:
                        v = "v%d" % i
                        bw.put_item(Item={args.pk: key, "v": v})
                        expected[key] = v
                    i += 1
        except Exception as e:  # noqa: BLE001 - we report what boto3 raised
            exceptions.append(type(e).__name__ + ": " + str(e)[:200])
    elapsed = time.time() - start
    cpu = time.process_time() - cpu0

    # Scan straight from dynalite if given, else through the endpoint.
    scan_endpoint = os.environ.get("SCAN_ENDPOINT", args.endpoint)
    scan = boto3.resource("dynamodb", endpoint_url=scan_endpoint, region_name="us-east-1")
    actual = {}
    kw = {}
    while True:
        page = scan.Table(args.table).scan(**kw)
        for it in page["Items"]:
            actual[it[args.pk]] = it.get("v")
        if "LastEvaluatedKey" not in page:
            break
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    lost = 0
    for k, v in expected.items():
        if actual.get(k) != v:
            lost += 1
    out = dict(stats, ops=args.ops, seconds=round(elapsed, 2), cpu_seconds=round(cpu, 2),
               ops_per_second=round(args.ops / elapsed), exceptions=len(exceptions),
               first_exception=exceptions[0] if exceptions else "",
               keys_wrong_in_table=lost, keys=len(expected), retry_mode=args.retry_mode)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
