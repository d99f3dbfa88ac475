#!/usr/bin/env node
// Streams puts and deletes to the dynamo-batcher sidecar and checks every result.
//
// Uses @grpc/grpc-js and @grpc/proto-loader (from the repository's
// package.json) and loads proto/dynamobatcher/v1/batcher.proto at run time.
// Opens one Write stream, sends ops packed several per WriteRequest and
// matches each WriteResult to its op by id.
//
// Usage:
//   node client/node/example.js --target 127.0.0.1:50051 --table events
//
// Writes items pk=node#0..node#N-1 (N = --items; "node" is --prefix) with
// value "v1", then overwrites the first 5 with "v2" and deletes the last 5. Exit 0 when every op is WRITTEN or COALESCED,
// 1 on any other outcome or a missing result, 3 when the sidecar is
// unreachable, 2 on bad arguments.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const opts = {
    target: process.env.DYNAMO_BATCHER_TARGET || '127.0.0.1:50051',
    table: 'events',
    key: 'pk',
    prefix: 'node',
    items: 100,
    opsPerMessage: 25,
    timeoutMs: 60000,
  };
  const names = {
    '--target': 'target', '--table': 'table', '--key': 'key', '--prefix': 'prefix',
    '--items': 'items',
    '--ops-per-message': 'opsPerMessage', '--timeout-ms': 'timeoutMs',
  };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s);
    if (flag === '--help' || flag === '-h') {
      console.log('usage: example.js [--target HOST:PORT] [--table T] [--key pk] ' +
                  '[--prefix P] [--items N] [--ops-per-message N] [--timeout-ms MS]');
      process.exit(0);
    }
    const name = names[flag];
    if (!name) {
      console.error(`unknown option ${flag}`);
      process.exit(2);
    }
    if (value === undefined) value = argv[++i];
    if (value === undefined) {
      console.error(`${flag} needs a value`);
      process.exit(2);
    }
    opts[name] = typeof opts[name] === 'number' ? Number(value) : value;
    if (Number.isNaN(opts[name])) {
      console.error(`${flag}: not a number`);
      process.exit(2);
    }
  }
  return opts;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const protoRoot = path.join(__dirname, '..', '..', 'proto');
  const definition = protoLoader.loadSync('dynamobatcher/v1/batcher.proto', {
    includeDirs: [protoRoot],
    keepCase: true,
    longs: String,  // uint64 ids as strings: exact
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const v1 = grpc.loadPackageDefinition(definition).dynamobatcher.v1;
  const client = new v1.WriteBatcher(opts.target, grpc.credentials.createInsecure());

  const putOp = (id, n, value) => ({
    id: String(id),
    table: opts.table,
    put: {attributes: {
      [opts.key]: {s: `${opts.prefix}#${n}`},
      n: {n: String(n)},
      value: {s: value},
      source: {s: 'node'},
    }},
  });
  const deleteOp = (id, n) => ({
    id: String(id),
    table: opts.table,
    delete_key: {attributes: {[opts.key]: {s: `${opts.prefix}#${n}`}}},
  });

  const ops = [];
  for (let n = 0; n < opts.items; n++) ops.push(putOp(ops.length + 1, n, 'v1'));
  const overwrite = Math.min(5, opts.items);
  for (let n = 0; n < overwrite; n++) ops.push(putOp(ops.length + 1, n, 'v2'));
  for (let n = Math.max(overwrite, opts.items - 5); n < opts.items; n++) {
    ops.push(deleteOp(ops.length + 1, n));
  }

  client.waitForReady(Date.now() + 10000, (err) => {
    if (err) {
      console.error(`could not reach the sidecar at ${opts.target}: ${err.message}`);
      process.exit(3);
    }
    const results = new Map();
    let finished = false;
    const call = client.Write({deadline: Date.now() + opts.timeoutMs});

    const finish = () => {
      if (finished) return;
      finished = true;
      let bad = 0;
      const counts = {};
      for (const op of ops) {
        const r = results.get(op.id);
        if (!r) {
          console.error(`op ${op.id}: no result`);
          bad++;
          continue;
        }
        counts[r.outcome] = (counts[r.outcome] || 0) + 1;
        if (r.outcome !== 'WRITTEN' && r.outcome !== 'COALESCED') {
          console.error(`op ${op.id}: ${r.outcome} ${r.error_code}: ${r.message}`);
          bad++;
        }
      }
      console.log(`node example: ${ops.length} ops, ${JSON.stringify(counts)}, ` +
                  `${bad} unexpected`);
      call.end();
      call.cancel();
      client.close();
      process.exit(bad ? 1 : 0);
    };

    call.on('data', (response) => {
      for (const r of response.results) results.set(String(r.id), r);
      if (results.size >= ops.length) finish();
    });
    call.on('error', (err) => {
      if (!finished) console.error(`stream failed: ${err.code} ${err.details}`);
      finish();
    });
    call.on('end', finish);

    // Several ops per WriteRequest: that is what makes the sidecar fast.
    for (let i = 0; i < ops.length; i += opts.opsPerMessage) {
      call.write({ops: ops.slice(i, i + opts.opsPerMessage)});
    }
    // The stream stays open until every result is in (finish() ends it).
  });
}

main();
