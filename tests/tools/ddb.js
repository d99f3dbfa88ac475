#!/usr/bin/env node
'use strict';
// A tiny DynamoDB CLI for tests and scripts. Raw HTTP with the DynamoDB JSON
// protocol; no AWS SDK and no real signing: dynalite only checks that an
// `Authorization: AWS4-...` header carries Credential, SignedHeaders and
// Signature and that an X-Amz-Date (or Date) header is present, so a fixed
// fake header is sent. Do not point this at real AWS.
//
// Usage:
//   node tests/tools/ddb.js [--endpoint URL] [--region R] COMMAND ...
//     create-table NAME --pk ATTR:TYPE [--sk ATTR:TYPE]
//                               idempotent; waits until ACTIVE. TYPE is S|N|B.
//                               Fails (exit 1) if the table exists with
//                               another key schema.
//     delete-table NAME         idempotent (a missing table is fine)
//     describe-table NAME       prints DescribeTable's JSON
//     list-tables               one table name per line
//     scan NAME                 every item as one DynamoDB-JSON line
//                               (follows LastEvaluatedKey)
//     count NAME                prints the number of items
//     put NAME ITEM_JSON        PutItem, ITEM_JSON in DynamoDB JSON
//     get NAME KEY_JSON         GetItem, prints the item line or nothing
//     raw ACTION BODY_JSON      any action, prints the answer JSON
//   --endpoint defaults to $DYNAMO_BATCHER_ENDPOINT, else http://127.0.0.1:8000
//   --timeout-ms per HTTP request (default 10000)
//
// Exit codes: 0 ok, 1 DynamoDB/HTTP error (message on stderr), 2 usage error.
//
// Also usable as a library: const ddb = require('./ddb');
//   await ddb.call(endpoint, 'Scan', {...}) -> parsed JSON (throws DdbError).

const http = require('http');
const https = require('https');

const FAKE_AUTH =
    'AWS4-HMAC-SHA256 Credential=fake/20200101/us-east-1/dynamodb/aws4_request, ' +
    'SignedHeaders=host;x-amz-date;x-amz-target, Signature=0';

class DdbError extends Error {
  constructor(status, type, message, body) {
    super(`${type || 'HTTP ' + status}: ${message || ''}`.trim());
    this.status = status;
    this.type = type;          // e.g. "ResourceNotFoundException" (prefix stripped)
    this.fullType = undefined;  // e.g. "com.amazonaws.dynamodb.v20120810#..."
    this.body = body;
  }
}

const agents = {
  'http:': new http.Agent({keepAlive: true, maxSockets: 8}),
  'https:': new https.Agent({keepAlive: true, maxSockets: 8}),
};

function amzDate(d = new Date()) {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

// One DynamoDB JSON-protocol call. Resolves with {status, headers, body(text)}.
function rawCall(endpoint, action, payload, {timeoutMs = 10000, headers = {}} = {}) {
  return new Promise((resolve, reject) => {
    let url;
    try {
      url = new URL(endpoint);
    } catch (err) {
      reject(new Error(`bad endpoint ${JSON.stringify(endpoint)}: ${err.message}`));
      return;
    }
    const body = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request({
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port || (url.protocol === 'https:' ? 443 : 80),
      path: url.pathname || '/',
      method: 'POST',
      agent: agents[url.protocol],
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'Content-Length': body.length,
        'X-Amz-Target': `DynamoDB_20120810.${action}`,
        'X-Amz-Date': amzDate(),
        'Authorization': FAKE_AUTH,
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

// Like rawCall but parses JSON and throws DdbError on a non-200 answer.
async function call(endpoint, action, payload, opts) {
  const res = await rawCall(endpoint, action, payload, opts);
  let parsed;
  try {
    parsed = res.body ? JSON.parse(res.body) : {};
  } catch {
    parsed = undefined;
  }
  if (res.status !== 200 || parsed === undefined) {
    const fullType = parsed && parsed.__type;
    const type = fullType ? String(fullType).split('#').pop() : undefined;
    const message = parsed && (parsed.message || parsed.Message);
    const err = new DdbError(res.status, type, message || res.body.slice(0, 200), parsed);
    err.fullType = fullType;
    throw err;
  }
  return parsed;
}

function parseKeyArg(spec, flag) {
  const m = /^([^:]+):(S|N|B)$/.exec(spec || '');
  if (!m) throw new UsageError(`${flag} must look like NAME:S|N|B, got ${JSON.stringify(spec)}`);
  return {name: m[1], type: m[2]};
}

async function waitForStatus(endpoint, table, wanted, opts, deadlineMs = 30000) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    let status;
    try {
      const d = await call(endpoint, 'DescribeTable', {TableName: table}, opts);
      status = d.Table.TableStatus;
    } catch (err) {
      if (err.type === 'ResourceNotFoundException') status = 'GONE';
      else throw err;
    }
    if (status === wanted) return;
    if (Date.now() > until) {
      throw new Error(`table ${table} is ${status}, not ${wanted}, after ${deadlineMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function createTable(endpoint, name, pk, sk, opts) {
  const keys = [pk].concat(sk ? [sk] : []);
  const req = {
    TableName: name,
    AttributeDefinitions: keys.map((k) => ({AttributeName: k.name, AttributeType: k.type})),
    KeySchema: keys.map((k, i) => ({AttributeName: k.name, KeyType: i === 0 ? 'HASH' : 'RANGE'})),
    BillingMode: 'PAY_PER_REQUEST',
  };
  let created = true;
  try {
    await call(endpoint, 'CreateTable', req, opts);
  } catch (err) {
    if (err.type !== 'ResourceInUseException') throw err;
    created = false;
  }
  if (!created) {
    const d = await call(endpoint, 'DescribeTable', {TableName: name}, opts);
    const have = (d.Table.KeySchema || []).map((k) => {
      const def = (d.Table.AttributeDefinitions || []).find((a) => a.AttributeName === k.AttributeName);
      return `${k.AttributeName}:${def ? def.AttributeType : '?'}`;
    }).join(',');
    const want = keys.map((k) => `${k.name}:${k.type}`).join(',');
    if (have !== want) {
      throw new Error(`table ${name} exists with key schema ${have}, wanted ${want}`);
    }
  }
  await waitForStatus(endpoint, name, 'ACTIVE', opts);
  return created;
}

async function deleteTable(endpoint, name, opts) {
  try {
    await call(endpoint, 'DeleteTable', {TableName: name}, opts);
  } catch (err) {
    if (err.type === 'ResourceNotFoundException') return false;
    throw err;
  }
  await waitForStatus(endpoint, name, 'GONE', opts);
  return true;
}

// Calls onItem(item) for every item; returns the count. Bounded: stops with an
// error after 100000 pages.
async function scan(endpoint, name, onItem, opts) {
  let count = 0;
  let startKey;
  for (let page = 0; page < 100000; page++) {
    const req = {TableName: name};
    if (startKey) req.ExclusiveStartKey = startKey;
    const res = await call(endpoint, 'Scan', req, opts);
    for (const item of res.Items || []) {
      count++;
      if (onItem) onItem(item);
    }
    startKey = res.LastEvaluatedKey;
    if (!startKey) return count;
  }
  throw new Error('scan: too many pages');
}

async function scanAll(endpoint, name, opts) {
  const items = [];
  await scan(endpoint, name, (it) => items.push(it), opts);
  return items;
}

async function count(endpoint, name, opts) {
  let total = 0;
  let startKey;
  for (let page = 0; page < 100000; page++) {
    const req = {TableName: name, Select: 'COUNT'};
    if (startKey) req.ExclusiveStartKey = startKey;
    const res = await call(endpoint, 'Scan', req, opts);
    total += res.Count || 0;
    startKey = res.LastEvaluatedKey;
    if (!startKey) return total;
  }
  throw new Error('count: too many pages');
}

class UsageError extends Error {}

function parseJsonArg(text, what) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${err.message}`);
  }
}

const USAGE = `Usage: node tests/tools/ddb.js [--endpoint URL] [--region R] [--timeout-ms MS] COMMAND ...
  create-table NAME --pk ATTR:S|N|B [--sk ATTR:S|N|B]
  delete-table NAME
  describe-table NAME
  list-tables
  scan NAME
  count NAME
  put NAME ITEM_JSON
  get NAME KEY_JSON
  raw ACTION BODY_JSON`;

async function main(argv) {
  let endpoint = process.env.DYNAMO_BATCHER_ENDPOINT || 'http://127.0.0.1:8000';
  let timeoutMs = 10000;
  const flags = {};
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => {
      if (v !== undefined) return v;
      if (i + 1 >= argv.length) throw new UsageError(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    } else if (a === '--endpoint') {
      endpoint = next();
    } else if (a === '--region') {
      next();  // accepted for symmetry with other tools; the fake auth ignores it
    } else if (a === '--timeout-ms') {
      timeoutMs = Number(next());
      if (!(timeoutMs > 0)) throw new UsageError('--timeout-ms must be > 0');
    } else if (a === '--pk' || a === '--sk') {
      flags[a] = next();
    } else if (a.startsWith('--')) {
      throw new UsageError(`unknown option ${a}`);
    } else {
      pos.push(a);
    }
  }
  const opts = {timeoutMs};
  const [cmd, ...args] = pos;
  const need = (n) => {
    if (args.length !== n) throw new UsageError(`${cmd} takes ${n} argument(s)`);
  };
  const out = (line) => process.stdout.write(line + '\n');
  switch (cmd) {
    case 'create-table': {
      need(1);
      if (!flags['--pk']) throw new UsageError('create-table needs --pk ATTR:TYPE');
      const pk = parseKeyArg(flags['--pk'], '--pk');
      const sk = flags['--sk'] ? parseKeyArg(flags['--sk'], '--sk') : null;
      const created = await createTable(endpoint, args[0], pk, sk, opts);
      out(created ? `created ${args[0]}` : `exists ${args[0]}`);
      return 0;
    }
    case 'delete-table': {
      need(1);
      const deleted = await deleteTable(endpoint, args[0], opts);
      out(deleted ? `deleted ${args[0]}` : `absent ${args[0]}`);
      return 0;
    }
    case 'describe-table':
      need(1);
      out(JSON.stringify(await call(endpoint, 'DescribeTable', {TableName: args[0]}, opts)));
      return 0;
    case 'list-tables': {
      need(0);
      let start;
      for (let page = 0; page < 10000; page++) {
        const req = start ? {ExclusiveStartTableName: start} : {};
        const res = await call(endpoint, 'ListTables', req, opts);
        for (const n of res.TableNames || []) out(n);
        start = res.LastEvaluatedTableName;
        if (!start) break;
      }
      return 0;
    }
    case 'scan':
      need(1);
      await scan(endpoint, args[0], (item) => out(JSON.stringify(item)), opts);
      return 0;
    case 'count':
      need(1);
      out(String(await count(endpoint, args[0], opts)));
      return 0;
    case 'put':
      need(2);
      await call(endpoint, 'PutItem', {TableName: args[0], Item: parseJsonArg(args[1], 'ITEM_JSON')}, opts);
      return 0;
    case 'get': {
      need(2);
      const res = await call(endpoint, 'GetItem',
          {TableName: args[0], Key: parseJsonArg(args[1], 'KEY_JSON'), ConsistentRead: true}, opts);
      if (res.Item) out(JSON.stringify(res.Item));
      return 0;
    }
    case 'raw':
      need(2);
      out(JSON.stringify(await call(endpoint, args[0], parseJsonArg(args[1], 'BODY_JSON'), opts)));
      return 0;
    case undefined:
      throw new UsageError('missing command');
    default:
      throw new UsageError(`unknown command ${cmd}`);
  }
}

module.exports = {
  call, rawCall, createTable, deleteTable, scan, scanAll, count, waitForStatus,
  DdbError, FAKE_AUTH, amzDate,
};

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
    for (const a of Object.values(agents)) a.destroy();
  }, (err) => {
    if (err instanceof UsageError) {
      process.stderr.write(`ddb.js: ${err.message}\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`ddb.js: ${err.message}\n`);
      process.exitCode = 1;
    }
    for (const a of Object.values(agents)) a.destroy();
  });
}
