#!/usr/bin/env node
'use strict';
// Starts dynalite (a local DynamoDB emulator, npm package pinned in the root
// package-lock.json) on 127.0.0.1 for tests and scripts.
//
// Usage:
//   node tests/tools/dynalite.js [--port N] [--host 127.0.0.1] [--path DIR]
//                                [--create-table-ms 0] [--delete-table-ms 0]
//                                [--update-table-ms 0] [--max-item-size-kb 400]
//                                [--verbose]
//
//   --port 0 (the default) picks a free port.
//   --path DIR keeps the data on disk (LevelDB) in DIR; in memory otherwise.
//   Tables become ACTIVE right away (CREATING/DELETING/UPDATING last 0 ms
//   unless told otherwise).
//
// Prints exactly one line `READY port=<port>` to stdout once listening, then
// runs until SIGTERM or SIGINT, on which it closes the server (and the store)
// and exits 0. Exits 1 with a message on stderr if it cannot start.

const path = require('path');
const fs = require('fs');

function usage() {
  return [
    'Usage: node tests/tools/dynalite.js [--port N] [--host H] [--path DIR]',
    '         [--create-table-ms MS] [--delete-table-ms MS] [--update-table-ms MS]',
    '         [--max-item-size-kb KB] [--verbose]',
  ].join('\n');
}

function parseArgs(argv) {
  const opts = {
    port: 0,
    host: '127.0.0.1',
    path: null,
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    maxItemSizeKb: 400,
    verbose: false,
  };
  const numeric = {
    '--port': 'port',
    '--create-table-ms': 'createTableMs',
    '--delete-table-ms': 'deleteTableMs',
    '--update-table-ms': 'updateTableMs',
    '--max-item-size-kb': 'maxItemSizeKb',
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new Error(`missing value for ${arg}`);
      return argv[++i];
    };
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage() + '\n');
      process.exit(0);
    } else if (arg in numeric) {
      const n = Number(next());
      if (!Number.isInteger(n) || n < 0) throw new Error(`${arg} needs a non-negative integer`);
      opts[numeric[arg]] = n;
    } else if (arg === '--host') {
      opts.host = next();
    } else if (arg === '--path') {
      opts.path = next();
    } else if (arg === '--verbose' || arg === '-v') {
      opts.verbose = true;
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  if (opts.port > 65535) throw new Error('--port must be <= 65535');
  return opts;
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`dynalite.js: ${err.message}\n${usage()}\n`);
    process.exit(2);
  }

  let dynalite;
  try {
    dynalite = require('dynalite');
  } catch (err) {
    process.stderr.write(
        `dynalite.js: cannot load the dynalite package (${err.message}); ` +
        'run `npm ci` in the repository root\n');
    process.exit(1);
  }

  const serverOpts = {
    createTableMs: opts.createTableMs,
    deleteTableMs: opts.deleteTableMs,
    updateTableMs: opts.updateTableMs,
    maxItemSizeKb: opts.maxItemSizeKb,
    verbose: opts.verbose,
  };
  if (opts.path) {
    const dir = path.resolve(opts.path);
    fs.mkdirSync(dir, {recursive: true});
    serverOpts.path = dir;
  }

  const server = dynalite(serverOpts);
  server.on('error', (err) => {
    process.stderr.write(`dynalite.js: ${err.message}\n`);
    process.exit(1);
  });
  // Idle keep-alive sockets stay open 60 s, like the fault proxy's: with
  // Node's 5 s default a client that reused a socket the server was closing
  // at that moment got ECONNRESET ("socket hang up": seen in tools_test under
  // load, after a test that left the pool idle for 6 s).
  server.keepAliveTimeout = 60000;
  // Keep-alive clients (the sidecar's pool, the fault proxy's agent) would
  // otherwise hold server.close() open until they go idle.
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  server.listen(opts.port, opts.host, () => {
    const port = server.address().port;
    process.stdout.write(`READY port=${port}\n`);
  });

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    if (opts.verbose) process.stderr.write(`dynalite.js: ${signal}, shutting down\n`);
    // Hard stop if closing hangs for any reason.
    setTimeout(() => process.exit(0), 5000).unref();
    server.close(() => process.exit(0));
    if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
    setTimeout(() => {
      for (const s of sockets) s.destroy();
    }, 200).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
