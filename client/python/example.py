#!/usr/bin/env python3
"""Streams puts and deletes to the dynamo-batcher sidecar and checks every result.

Generates the gRPC stubs at run time into client/python/gen/ (git-ignored;
--gen-dir to choose another directory) with grpc_tools.protoc (Debian: python3-grpcio, python3-grpc-tools), then opens one
Write stream, sends ops packed several per WriteRequest, and matches each
WriteResult to its op by id.

Usage:
  /usr/bin/python3 client/python/example.py --target 127.0.0.1:50051 --table events

Writes items pk=py#0..py#N-1 (N = --items; "py" is --prefix) with value "v1",
then overwrites the first 5 with value "v2" and deletes the last 5. Exits 0 when every op is WRITTEN or COALESCED, 1 on any
other outcome or a missing result, 3 when the sidecar is unreachable.
"""

import argparse
import os
import queue
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROTO_ROOT = os.path.join(REPO, "proto")
GEN = os.path.join(HERE, "gen")


def generate_stubs(gen):
    from grpc_tools import protoc

    os.makedirs(gen, exist_ok=True)
    proto = os.path.join(PROTO_ROOT, "dynamobatcher", "v1", "batcher.proto")
    rc = protoc.main([
        "grpc_tools.protoc",
        "-I" + PROTO_ROOT,
        "--python_out=" + gen,
        "--grpc_python_out=" + gen,
        proto,
    ])
    if rc != 0:
        sys.exit("protoc failed for %s" % proto)
    # Generated modules import "dynamobatcher.v1...": make those packages.
    for d in (os.path.join(gen, "dynamobatcher"), os.path.join(gen, "dynamobatcher", "v1")):
        open(os.path.join(d, "__init__.py"), "a").close()
    sys.path.insert(0, gen)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=os.environ.get("DYNAMO_BATCHER_TARGET",
                                                           "127.0.0.1:50051"))
    parser.add_argument("--table", default="events")
    parser.add_argument("--key", default="pk", help="partition key attribute (type S)")
    parser.add_argument("--prefix", default="py", help="keys are PREFIX#0, PREFIX#1, ...")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--ops-per-message", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--gen-dir", default=GEN,
                        help="where to generate the stubs (default client/python/gen)")
    args = parser.parse_args()

    generate_stubs(os.path.abspath(args.gen_dir))
    import grpc
    from dynamobatcher.v1 import batcher_pb2 as pb
    from dynamobatcher.v1 import batcher_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(args.target)
    try:
        grpc.channel_ready_future(channel).result(timeout=10)
    except grpc.FutureTimeoutError:
        print("could not reach the sidecar at %s" % args.target, file=sys.stderr)
        return 3
    stub = pb_grpc.WriteBatcherStub(channel)

    def put_op(op_id, n, value):
        op = pb.WriteOp(id=op_id, table=args.table)
        op.put.attributes[args.key].s = "%s#%d" % (args.prefix, n)
        op.put.attributes["n"].n = str(n)
        op.put.attributes["value"].s = value
        op.put.attributes["source"].s = "python"
        return op

    def delete_op(op_id, n):
        op = pb.WriteOp(id=op_id, table=args.table)
        op.delete_key.attributes[args.key].s = "%s#%d" % (args.prefix, n)
        return op

    ops = []
    for n in range(args.items):
        ops.append(put_op(len(ops) + 1, n, "v1"))
    overwrite = min(5, args.items)
    for n in range(overwrite):  # same keys again: last write wins
        ops.append(put_op(len(ops) + 1, n, "v2"))
    delete_from = max(overwrite, args.items - 5)
    for n in range(delete_from, args.items):
        ops.append(delete_op(len(ops) + 1, n))

    outbox = queue.Queue()

    def requests():
        # Several ops per WriteRequest: that is what makes the sidecar fast.
        for i in range(0, len(ops), args.ops_per_message):
            yield pb.WriteRequest(ops=ops[i:i + args.ops_per_message])
        # Keep the stream open (half-closing early is fine too) until all
        # results are in; the main loop puts None when done.
        outbox.get()

    results = {}
    call = stub.Write(requests(), timeout=args.timeout)
    try:
        for response in call:
            for r in response.results:
                results[r.id] = r
            if len(results) >= len(ops):
                break
    except grpc.RpcError as e:
        print("stream failed: %s %s" % (e.code(), e.details()), file=sys.stderr)
    finally:
        outbox.put(None)
        call.cancel()

    bad = 0
    ok_outcomes = (pb.WRITTEN, pb.COALESCED)
    for op in ops:
        r = results.get(op.id)
        if r is None:
            print("op %d: no result" % op.id, file=sys.stderr)
            bad += 1
        elif r.outcome not in ok_outcomes:
            print("op %d: %s %s: %s" % (op.id, pb.Outcome.Name(r.outcome), r.error_code,
                                        r.message), file=sys.stderr)
            bad += 1
    counts = {}
    for r in results.values():
        name = pb.Outcome.Name(r.outcome)
        counts[name] = counts.get(name, 0) + 1
    print("python example: %d ops, %s, %d unexpected" % (len(ops), counts, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
