#!/usr/bin/env node
'use strict';
// Fault-injecting HTTP reverse proxy in front of a DynamoDB endpoint
// (dynalite) for tests. Only Node's built-in modules.
//
//   node tests/tools/fault_proxy.js --target http://127.0.0.1:8000 [--port 0]
//        [--host 127.0.0.1] [--config FILE] [flags...] [--verbose]
//
// Prints `READY port=<port>` on stdout once listening; exits 0 on
// SIGTERM/SIGINT. Full description of the config keys, the order faults are
// applied in and the stats shape: see USAGE below and tests/tools/README.md.
//
// Signatures: the proxy rewrites BatchWriteItem bodies, so the client's SigV4
// signature no longer matches the body. dynalite never verifies signatures (it
// only checks the Authorization header's format), so the original headers are
// forwarded as they are, with Content-Length recomputed. Never put this in
// front of real AWS.

const http = require('http');
const fs = require('fs');
const crypto = require('crypto');

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const DDB = 'com.amazonaws.dynamodb.v20120810#';

// Injectable errors: name -> [HTTP status, __type, message].
const ERRORS = {
  ProvisionedThroughputExceededException: [400, DDB + 'ProvisionedThroughputExceededException',
    'The level of configured provisioned throughput for the table was exceeded. ' +
    'Consider increasing your provisioning level with the UpdateTable API.'],
  ThrottlingException: [400, 'com.amazon.coral.availability#ThrottlingException',
    'Rate of requests exceeds the allowed throughput.'],
  RequestLimitExceeded: [400, DDB + 'RequestLimitExceeded',
    'Throughput exceeds the current throughput limit for your account. ' +
    'Please contact AWS Support at https://aws.amazon.com/support request a limit increase'],
  InternalServerError: [500, DDB + 'InternalServerError', 'Internal server error'],
  ServiceUnavailable: [503, DDB + 'ServiceUnavailable', 'Service Unavailable'],
  ValidationException: [400, 'com.amazon.coral.validate#ValidationException',
    'One or more parameter values were invalid: poison item'],
  ResourceNotFoundException: [400, DDB + 'ResourceNotFoundException',
    'Requested resource not found'],
  AccessDeniedException: [400, 'com.amazon.coral.service#AccessDeniedException',
    'User is not authorized to perform: dynamodb:BatchWriteItem'],
  UnrecognizedClientException: [400, 'com.amazon.coral.service#UnrecognizedClientException',
    'The security token included in the request is invalid.'],
  ItemCollectionSizeLimitExceededException: [400, DDB + 'ItemCollectionSizeLimitExceededException',
    'Item collection size limit exceeded'],
};
const THROTTLE_NAMES = ['ProvisionedThroughputExceededException', 'ThrottlingException',
  'RequestLimitExceeded'];

function defaultConfig() {
  return {
    seed: null,
    latency_ms: 0,
    latency_jitter_ms: 0,
    unprocessed_fraction: 0,
    throttle_fraction: {},
    error_fraction: {},
    error_500_fraction: 0,
    error_503_fraction: 0,
    reset_fraction: 0,
    reset_after_forward_share: 0.5,
    forward_after_client_abort: false,
    reset_late_forward_ms: 0,
    capacity: {},
    unprocessed_item_fraction: 0,
    key_capacity: {},
    throttle_reasons: [],
    validation_error_keys: [],
    validation_key_attribute: 'pk',
  };
}

// ---------------------------------------------------------------------------
// Config validation. Returns a new full config or throws Error(message).

function checkFraction(v, key) {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new Error(`${key} must be a number in [0, 1], got ${JSON.stringify(v)}`);
  }
  return v;
}
function checkNonNegative(v, key) {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new Error(`${key} must be a non-negative number, got ${JSON.stringify(v)}`);
  }
  return v;
}
function checkObject(v, key) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new Error(`${key} must be a JSON object`);
  }
  return v;
}

// Merges `patch` (top-level keys replace whole values) into `base`.
function mergeConfig(base, patch) {
  checkObject(patch, 'config');
  const cfg = JSON.parse(JSON.stringify(base));
  for (const [key, v] of Object.entries(patch)) {
    switch (key) {
      case 'seed':
        if (v !== null && !(Number.isInteger(v) || typeof v === 'string')) {
          throw new Error('seed must be an integer, a string or null');
        }
        cfg.seed = v;
        break;
      case 'latency_ms':
      case 'latency_jitter_ms':
      case 'reset_late_forward_ms':
        cfg[key] = checkNonNegative(v, key);
        break;
      case 'unprocessed_fraction':
      case 'unprocessed_item_fraction':
      case 'error_500_fraction':
      case 'error_503_fraction':
      case 'reset_fraction':
      case 'reset_after_forward_share':
        cfg[key] = checkFraction(v, key);
        break;
      case 'throttle_fraction':
      case 'error_fraction': {
        checkObject(v, key);
        const out = {};
        for (const [name, f] of Object.entries(v)) {
          const allowed = key === 'throttle_fraction' ? THROTTLE_NAMES : Object.keys(ERRORS);
          if (!allowed.includes(name)) {
            throw new Error(`${key}: unknown error ${JSON.stringify(name)} (known: ${allowed.join(', ')})`);
          }
          out[name] = checkFraction(f, `${key}.${name}`);
        }
        cfg[key] = out;
        break;
      }
      case 'capacity': {
        checkObject(v, key);
        const out = {};
        for (const [table, spec] of Object.entries(v)) {
          checkObject(spec, `capacity.${table}`);
          for (const k of Object.keys(spec)) {
            if (k !== 'wcu_per_second' && k !== 'burst_seconds') {
              throw new Error(`capacity.${table}: unknown key ${JSON.stringify(k)}`);
            }
          }
          const wcu = checkNonNegative(spec.wcu_per_second, `capacity.${table}.wcu_per_second`);
          const burst = spec.burst_seconds === undefined ? 1 :
            checkNonNegative(spec.burst_seconds, `capacity.${table}.burst_seconds`);
          out[table] = {wcu_per_second: wcu, burst_seconds: burst};
        }
        cfg.capacity = out;
        break;
      }
      case 'key_capacity': {
        checkObject(v, key);
        const out = {};
        for (const [table, spec] of Object.entries(v)) {
          checkObject(spec, `key_capacity.${table}`);
          for (const k of Object.keys(spec)) {
            if (!['wcu_per_second', 'burst_seconds', 'attribute'].includes(k)) {
              throw new Error(`key_capacity.${table}: unknown key ${JSON.stringify(k)}`);
            }
          }
          const wcu = checkNonNegative(spec.wcu_per_second, `key_capacity.${table}.wcu_per_second`);
          const burst = spec.burst_seconds === undefined ? 1 :
            checkNonNegative(spec.burst_seconds, `key_capacity.${table}.burst_seconds`);
          const attribute = spec.attribute === undefined ? 'pk' : spec.attribute;
          if (typeof attribute !== 'string' || attribute === '') {
            throw new Error(`key_capacity.${table}.attribute must be a non-empty string`);
          }
          out[table] = {wcu_per_second: wcu, burst_seconds: burst, attribute};
        }
        cfg.key_capacity = out;
        break;
      }
      case 'throttle_reasons':
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
          throw new Error('throttle_reasons must be a list of non-empty strings');
        }
        cfg.throttle_reasons = v.slice();
        break;
      case 'validation_error_keys':
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
          throw new Error('validation_error_keys must be a list of strings');
        }
        cfg.validation_error_keys = v.slice();
        break;
      case 'forward_after_client_abort':
        if (typeof v !== 'boolean') throw new Error('forward_after_client_abort must be true or false');
        cfg.forward_after_client_abort = v;
        break;
      case 'validation_key_attribute':
        if (typeof v !== 'string' || v === '') {
          throw new Error('validation_key_attribute must be a non-empty string');
        }
        cfg.validation_key_attribute = v;
        break;
      default:
        throw new Error(`unknown config key ${JSON.stringify(key)}`);
    }
  }
  return cfg;
}

// ---------------------------------------------------------------------------
// Helpers.

// mulberry32: small, fast, seedable PRNG (returns [0, 1)).
function makeRng(seed) {
  let s;
  if (seed === null || seed === undefined) {
    s = crypto.randomBytes(4).readUInt32LE(0);
  } else {
    const h = crypto.createHash('sha256').update(String(seed)).digest();
    s = h.readUInt32LE(0);
  }
  return function rng() {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) ? (0xEDB88320 ^ (c >>> 1)) : (c >>> 1);
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xFFFFFFFF;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}

function requestId() {
  return crypto.randomBytes(39).toString('base64').toUpperCase().replace(/[+/]/g, '0');
}

// DynamoDB item size rules (approximation of the documented ones): attribute
// name bytes + value bytes; S = UTF-8 bytes, N = 1 + ceil(significant
// digits / 2), B = raw bytes, BOOL/NULL = 1, sets = sum of members,
// M/L = 3 + 1 per element + elements.
function numberSize(n) {
  const digits = String(n).replace(/^[-+]/, '').replace(/[eE].*$/, '').replace('.', '')
      .replace(/^0+/, '').replace(/0+$/, '');
  return 1 + Math.ceil(Math.max(digits.length, 1) / 2);
}
function valueSize(v) {
  if (v === null || typeof v !== 'object') return 0;
  if ('S' in v) return Buffer.byteLength(String(v.S), 'utf8');
  if ('N' in v) return numberSize(v.N);
  if ('B' in v) return Buffer.from(String(v.B), 'base64').length;
  if ('BOOL' in v || 'NULL' in v) return 1;
  if (Array.isArray(v.SS)) return v.SS.reduce((a, s) => a + Buffer.byteLength(String(s), 'utf8'), 0);
  if (Array.isArray(v.NS)) return v.NS.reduce((a, s) => a + numberSize(s), 0);
  if (Array.isArray(v.BS)) return v.BS.reduce((a, s) => a + Buffer.from(String(s), 'base64').length, 0);
  if (Array.isArray(v.L)) return 3 + v.L.reduce((a, e) => a + 1 + valueSize(e), 0);
  if (v.M && typeof v.M === 'object') {
    return 3 + Object.entries(v.M).reduce(
        (a, [k, e]) => a + 1 + Buffer.byteLength(k, 'utf8') + valueSize(e), 0);
  }
  return 0;
}
function itemSize(item) {
  if (item === null || typeof item !== 'object') return 0;
  let size = 0;
  for (const [name, v] of Object.entries(item)) size += Buffer.byteLength(name, 'utf8') + valueSize(v);
  return size;
}
// WCU of one write request: puts cost ceil(size / 1 KB) (at least 1); deletes
// cost 1 (the proxy does not know the size of the item being deleted).
function requestWcu(wr) {
  if (wr && wr.PutRequest) return Math.max(1, Math.ceil(itemSize(wr.PutRequest.Item) / 1024));
  return 1;
}

function isBatchWriteShape(body) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  const ri = body.RequestItems;
  if (!ri || typeof ri !== 'object' || Array.isArray(ri)) return false;
  const lists = Object.values(ri);
  return lists.length > 0 && lists.every((reqs) => Array.isArray(reqs) && reqs.length > 0 &&
      reqs.every((r) => r && typeof r === 'object' && !Array.isArray(r)));
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'te', 'trailer', 'upgrade', 'content-length']);

function copyHeaders(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
  return out;
}

function freshStats() {
  return {
    started_at: new Date().toISOString(),
    calls: 0,
    calls_by_action: {},
    batch_write_calls: 0,
    forwarded_calls: 0,
    malformed_requests: 0,
    client_aborts: 0,
    late_forwards: 0,
    items_received: 0,
    items_forwarded: 0,
    items_written: 0,
    unprocessed_injected_items: 0,
    unprocessed_injected_calls: 0,
    throttles_injected: Object.fromEntries(THROTTLE_NAMES.map((n) => [n, 0])),
    errors_injected: {},
    errors_500: 0,
    errors_503: 0,
    resets_before_forward: 0,
    resets_after_forward: 0,
    late_forwards: 0,
    validation_errors_injected: 0,
    capacity_unprocessed_items: 0,
    capacity_throttles: 0,
    key_capacity_unprocessed_items: 0,
    key_capacity_throttles: 0,
    unprocessed_item_injected: 0,
    dynalite_unprocessed_items: 0,
    target_errors: {},
    upstream_failures: 0,
    tables: {},
  };
}
function tableStats(stats, table) {
  if (!stats.tables[table]) {
    stats.tables[table] = {
      items_received: 0,
      items_forwarded: 0,
      items_written: 0,
      puts_written: 0,
      deletes_written: 0,
      wcu_consumed: 0,
      consumed_capacity_reported: 0,
      unprocessed_injected_items: 0,
      capacity_unprocessed_items: 0,
      dynalite_unprocessed_items: 0,
    };
  }
  return stats.tables[table];
}

// ---------------------------------------------------------------------------
// The proxy.

function createFaultProxy({target, config = {}, verbose = false, log = (m) => process.stderr.write(m + '\n'),
  writeLog = null}) {
  const targetUrl = new URL(target);
  if (targetUrl.protocol !== 'http:') throw new Error('--target must be an http:// URL');
  const agent = new http.Agent({keepAlive: true, maxSockets: 256, maxFreeSockets: 64});

  let cfg = mergeConfig(defaultConfig(), config);
  let rng = makeRng(cfg.seed);
  let stats = freshStats();
  let buckets = {};  // table -> {tokens, last}
  let keyBuckets = {};  // table -> Map(partition key value -> {tokens, last})
  const vlog = verbose ? (m) => log(`fault_proxy: ${m}`) : () => {};

  function setConfig(patch, replace) {
    const next = mergeConfig(replace ? defaultConfig() : cfg, patch);
    const reseed = replace || Object.prototype.hasOwnProperty.call(patch, 'seed');
    // Capacity changes restart the affected buckets full.
    for (const table of new Set([...Object.keys(cfg.capacity), ...Object.keys(next.capacity)])) {
      if (JSON.stringify(cfg.capacity[table]) !== JSON.stringify(next.capacity[table])) delete buckets[table];
    }
    if (JSON.stringify(cfg.key_capacity) !== JSON.stringify(next.key_capacity)) keyBuckets = {};
    cfg = next;
    if (reseed) rng = makeRng(cfg.seed);
    return cfg;
  }

  function reset() {
    stats = freshStats();
    buckets = {};
    keyBuckets = {};
    rng = makeRng(cfg.seed);
  }

  function takeTokens(table, cost, nowMs) {
    const spec = cfg.capacity[table];
    if (!spec) return true;
    const cap = spec.wcu_per_second * spec.burst_seconds;
    let b = buckets[table];
    if (!b) b = buckets[table] = {tokens: cap, last: nowMs};
    b.tokens = Math.min(cap, b.tokens + (nowMs - b.last) / 1000 * spec.wcu_per_second);
    b.last = nowMs;
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return true;
    }
    return false;
  }

  // Partition key value of a write request for the key capacity model, as
  // a string ('' when absent).
  function partitionKeyOf(table, r) {
    const spec = cfg.key_capacity[table];
    const rec = (r.PutRequest && r.PutRequest.Item) || (r.DeleteRequest && r.DeleteRequest.Key);
    const v = rec && spec && rec[spec.attribute];
    return v && typeof v === 'object' ? JSON.stringify(v) : '';
  }

  // Per partition-key value bucket: DynamoDB caps each partition-key value
  // (its partition) whatever the table's capacity.
  function takeKeyTokens(table, pk, cost, nowMs) {
    const spec = cfg.key_capacity[table];
    if (!spec) return true;
    const cap = spec.wcu_per_second * spec.burst_seconds;
    const m = keyBuckets[table] || (keyBuckets[table] = new Map());
    let b = m.get(pk);
    if (!b) {
      b = {tokens: cap, last: nowMs};
      m.set(pk, b);
    }
    b.tokens = Math.min(cap, b.tokens + (nowMs - b.last) / 1000 * spec.wcu_per_second);
    b.last = nowMs;
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return true;
    }
    return false;
  }

  function arn(table) {
    return `arn:aws:dynamodb:us-east-1:000000000000:table/${table}`;
  }

  function sendJson(res, status, obj, extraHeaders = {}) {
    const body = Buffer.from(JSON.stringify(obj));
    res.writeHead(status, {
      'Content-Type': 'application/x-amz-json-1.0',
      'Content-Length': body.length,
      'x-amzn-RequestId': requestId(),
      'x-amz-crc32': String(crc32(body)),
      ...extraHeaders,
    });
    res.end(body);
  }

  // `reasons`: ThrottlingReasons as [{reason, resource}] (throttling only).
  function sendError(res, name, message, reasons) {
    const [status, type, defaultMessage] = ERRORS[name];
    const body = {__type: type, message: message || defaultMessage};
    if (reasons && reasons.length) body.ThrottlingReasons = reasons;
    sendJson(res, status, body);
  }

  function resetSocket(req) {
    const s = req.socket;
    if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
    else s.destroy();
  }

  function control(req, res, body) {
    const url = new URL(req.url, 'http://x');
    const reply = (status, obj) => {
      const b = Buffer.from(JSON.stringify(obj, null, 1) + '\n');
      res.writeHead(status, {'Content-Type': 'application/json', 'Content-Length': b.length});
      res.end(b);
    };
    if (url.pathname === '/__proxy/stats' && req.method === 'GET') return reply(200, stats);
    if (url.pathname === '/__proxy/config' && req.method === 'GET') return reply(200, cfg);
    if (url.pathname === '/__proxy/health' && req.method === 'GET') return reply(200, {ok: true});
    if (url.pathname === '/__proxy/config' && req.method === 'POST') {
      let patch;
      try {
        patch = body.length ? JSON.parse(body.toString('utf8')) : {};
        const replace = ['1', 'true'].includes(url.searchParams.get('replace'));
        setConfig(patch, replace);
      } catch (err) {
        return reply(400, {error: err.message});
      }
      vlog(`config now ${JSON.stringify(cfg)}`);
      return reply(200, cfg);
    }
    if (url.pathname === '/__proxy/reset' && req.method === 'POST') {
      reset();
      return reply(200, {ok: true});
    }
    return reply(404, {error: `no control endpoint ${req.method} ${url.pathname}`});
  }

  // --write-log: one JSON line per BatchWriteItem the target answered, with
  // the monotonic times (ns, CLOCK_MONOTONIC like a C++ steady_clock) the call
  // was sent and answered and the writes it applied (its UnprocessedItems
  // left out; attributes over 200 characters of JSON left out): the order in
  // which writes really landed, for history checkers.
  const writeLogFd = writeLog ? fs.openSync(writeLog, 'a') : null;
  function logWrites(body, t0, up) {
    const t1 = process.hrtime.bigint();
    let req;
    let ans;
    try {
      req = JSON.parse(body.toString('utf8'));
      ans = up.status === 200 ? JSON.parse(up.body.toString('utf8')) : null;
    } catch {
      return;
    }
    if (!ans || !req || typeof req.RequestItems !== 'object') return;
    const left = new Set();
    for (const [t, l] of Object.entries(ans.UnprocessedItems || {})) {
      for (const r of l) left.add(t + JSON.stringify(r));
    }
    const items = [];
    for (const [t, l] of Object.entries(req.RequestItems)) {
      for (const r of l) {
        if (left.has(t + JSON.stringify(r))) continue;
        const put = !!r.PutRequest;
        const attrs = {};
        for (const [k, v] of Object.entries((put ? r.PutRequest.Item : r.DeleteRequest.Key) || {})) {
          if (JSON.stringify(v).length <= 200) attrs[k] = v;
        }
        items.push([t, put ? 'put' : 'delete', attrs]);
      }
    }
    fs.writeSync(writeLogFd, JSON.stringify({t0: String(t0), t1: String(t1), items}) + '\n');
  }

  // Forwards `body` to the target; resolves {status, headers, body} or rejects.
  function forward(req, body) {
    const t0 = process.hrtime.bigint();
    const logged = writeLogFd !== null &&
      String(req.headers['x-amz-target'] || '').endsWith('.BatchWriteItem');
    return new Promise((resolve, reject) => {
      const headers = copyHeaders(req.headers);
      headers['content-length'] = String(body.length);
      const up = http.request({
        protocol: targetUrl.protocol,
        hostname: targetUrl.hostname,
        port: targetUrl.port || 80,
        method: req.method,
        path: req.url,
        headers,
        agent,
      }, (ures) => {
        const chunks = [];
        ures.on('data', (c) => chunks.push(c));
        ures.on('end', () => {
          const out = {status: ures.statusCode, headers: ures.headers, body: Buffer.concat(chunks)};
          if (logged) logWrites(body, t0, out);
          resolve(out);
        });
        ures.on('error', reject);
      });
      up.setTimeout(60000, () => up.destroy(new Error('upstream timeout')));
      up.on('error', reject);
      up.end(body);
    });
  }

  function relay(res, up, newBody) {
    const headers = copyHeaders(up.headers);
    const body = newBody || up.body;
    headers['content-length'] = String(body.length);
    if (newBody) headers['x-amz-crc32'] = String(crc32(newBody));
    res.writeHead(up.status, headers);
    res.end(body);
  }

  function delay() {
    const ms = cfg.latency_ms + (cfg.latency_jitter_ms > 0 ? rng() * cfg.latency_jitter_ms : 0);
    if (ms <= 0) return Promise.resolve();
    return new Promise((r) => setTimeout(r, ms));
  }

  async function passThrough(req, res, body) {
    await delay();
    if (req.socket.destroyed) {
      stats.client_aborts++;
      return;
    }
    let up;
    try {
      stats.forwarded_calls++;
      up = await forward(req, body);
    } catch (err) {
      stats.upstream_failures++;
      vlog(`upstream failure: ${err.message}`);
      return sendJson(res, 502, {__type: 'ProxyUpstreamError', message: err.message});
    }
    relay(res, up);
  }

  function countTargetError(up) {
    let type = `HTTP${up.status}`;
    try {
      const p = JSON.parse(up.body.toString('utf8'));
      if (p && p.__type) type = String(p.__type).split('#').pop();
    } catch { /* keep HTTP status */ }
    stats.target_errors[type] = (stats.target_errors[type] || 0) + 1;
  }

  // Account for a forwarded batch that the target answered.
  function accountForwarded(forwarded, up) {
    if (up.status !== 200) {
      countTargetError(up);
      return null;
    }
    let parsed;
    try {
      parsed = JSON.parse(up.body.toString('utf8'));
    } catch {
      parsed = null;
    }
    const dynUnprocessed = (parsed && parsed.UnprocessedItems) || {};
    for (const [table, reqs] of Object.entries(forwarded)) {
      const ts = tableStats(stats, table);
      const leftover = Array.isArray(dynUnprocessed[table]) ? dynUnprocessed[table] : [];
      const leftKeys = new Set(leftover.map((r) => JSON.stringify(r)));
      stats.dynalite_unprocessed_items += leftover.length;
      ts.dynalite_unprocessed_items += leftover.length;
      for (const r of reqs) {
        if (leftKeys.has(JSON.stringify(r))) continue;
        stats.items_written++;
        ts.items_written++;
        if (r.PutRequest) ts.puts_written++;
        else ts.deletes_written++;
        ts.wcu_consumed += requestWcu(r);
      }
    }
    if (parsed && Array.isArray(parsed.ConsumedCapacity)) {
      for (const cc of parsed.ConsumedCapacity) {
        if (cc && typeof cc.TableName === 'string' && typeof cc.CapacityUnits === 'number') {
          tableStats(stats, cc.TableName).consumed_capacity_reported += cc.CapacityUnits;
        }
      }
    }
    return parsed;
  }

  async function batchWrite(req, res, body, data) {
    stats.batch_write_calls++;
    const tables = Object.keys(data.RequestItems);
    let total = 0;
    for (const t of tables) {
      const n = data.RequestItems[t].length;
      total += n;
      tableStats(stats, t).items_received += n;
    }
    stats.items_received += total;

    await delay();
    if (req.socket.destroyed) {
      stats.client_aborts++;
      if (!cfg.forward_after_client_abort) return;
      // A request DynamoDB already received is applied even if its caller
      // gave up (timed out, crashed): the write lands late, fate unknown to
      // the caller.
      stats.late_forwards++;
      try {
        await forward(req, body);
      } catch (err) {
        stats.upstream_failures++;
      }
      return;
    }

    // 1. Connection reset (exclusive: no other fault on this call).
    if (cfg.reset_fraction > 0 && rng() < cfg.reset_fraction) {
      if (rng() >= cfg.reset_after_forward_share) {
        stats.resets_before_forward++;
        vlog('reset before forwarding');
        return resetSocket(req);
      }
      stats.resets_after_forward++;
      vlog('reset after forwarding');
      stats.forwarded_calls++;
      stats.items_forwarded += total;
      for (const t of tables) tableStats(stats, t).items_forwarded += data.RequestItems[t].length;
      if (cfg.reset_late_forward_ms > 0) {
        // The client loses the connection first and the write lands later:
        // a call whose fate the client cannot know, applied after it gave up.
        resetSocket(req);
        await new Promise((r) => setTimeout(r, cfg.reset_late_forward_ms));
        try {
          const up = await forward(req, body);
          accountForwarded(data.RequestItems, up);
        } catch (err) {
          stats.upstream_failures++;
        }
        stats.late_forwards++;  // counted once the target answered
        return;
      }
      try {
        const up = await forward(req, body);
        accountForwarded(data.RequestItems, up);
      } catch (err) {
        stats.upstream_failures++;
      }
      return resetSocket(req);
    }

    // 2. Poison items.
    if (cfg.validation_error_keys.length > 0) {
      const attr = cfg.validation_key_attribute;
      const poison = new Set(cfg.validation_error_keys);
      const hit = tables.some((t) => data.RequestItems[t].some((r) => {
        const rec = (r.PutRequest && r.PutRequest.Item) || (r.DeleteRequest && r.DeleteRequest.Key);
        const v = rec && rec[attr];
        return v && typeof v === 'object' && (poison.has(v.S) || poison.has(v.N));
      }));
      if (hit) {
        stats.validation_errors_injected++;
        vlog('validation error (poison item)');
        return sendError(res, 'ValidationException');
      }
    }

    // 3. Whole-call errors, each drawn independently in this order.
    if (cfg.error_500_fraction > 0 && rng() < cfg.error_500_fraction) {
      stats.errors_500++;
      return sendError(res, 'InternalServerError');
    }
    if (cfg.error_503_fraction > 0 && rng() < cfg.error_503_fraction) {
      stats.errors_503++;
      return sendError(res, 'ServiceUnavailable');
    }
    for (const name of THROTTLE_NAMES) {
      const f = cfg.throttle_fraction[name] || 0;
      if (f > 0 && rng() < f) {
        stats.throttles_injected[name]++;
        vlog(`throttle ${name}`);
        return sendError(res, name, undefined,
            cfg.throttle_reasons.map((reason) => ({reason, resource: arn(tables[0])})));
      }
    }
    for (const [name, f] of Object.entries(cfg.error_fraction)) {
      if (f > 0 && rng() < f) {
        stats.errors_injected[name] = (stats.errors_injected[name] || 0) + 1;
        vlog(`error ${name}`);
        return sendError(res, name);
      }
    }

    // 4. Capacity model, then 5. random UnprocessedItems. Counters for held
    // back items are committed only once the client is answered with them.
    const keep = {};       // table -> requests to forward
    const injected = {};   // table -> requests answered as unprocessed
    const capHeld = {};    // table -> count held back by the capacity model
    const randHeld = {};   // table -> count held back by unprocessed_fraction
    const addTo = (obj, t, r) => (obj[t] = obj[t] || []).push(r);
    const inc = (obj, t) => (obj[t] = (obj[t] || 0) + 1);
    const keyHeld = {};    // table -> count held back by the key capacity model
    const itemHeld = {};   // table -> count held back by unprocessed_item_fraction
    const now = Date.now();
    for (const t of tables) {
      for (const r of data.RequestItems[t]) {
        const wcu = requestWcu(r);
        if (cfg.key_capacity[t] && !takeKeyTokens(t, partitionKeyOf(t, r), wcu, now)) {
          addTo(injected, t, r);
          inc(keyHeld, t);
        } else if (cfg.capacity[t] && !takeTokens(t, wcu, now)) {
          addTo(injected, t, r);
          inc(capHeld, t);
        } else if (cfg.unprocessed_item_fraction > 0 && rng() < cfg.unprocessed_item_fraction) {
          addTo(injected, t, r);
          inc(itemHeld, t);
        } else {
          addTo(keep, t, r);
        }
      }
    }
    let keptCount = Object.values(keep).reduce((a, l) => a + l.length, 0);
    const sum = (o) => Object.values(o).reduce((a, n) => a + n, 0);
    if (keptCount === 0 && total > 0 && sum(keyHeld) + sum(capHeld) > 0) {
      // Nothing fitted through a capacity model: DynamoDB answers the whole
      // call with ProvisionedThroughputExceededException and says why.
      const reasons = [];
      if (sum(keyHeld) > 0) {
        stats.key_capacity_throttles++;
        reasons.push({reason: 'TableWriteKeyRangeThroughputExceeded', resource: arn(tables[0])});
      }
      if (sum(capHeld) > 0) {
        stats.capacity_throttles++;
        reasons.push({reason: 'TableWriteProvisionedThroughputExceeded', resource: arn(tables[0])});
      }
      vlog('capacity exhausted: ProvisionedThroughputExceededException');
      return sendError(res, 'ProvisionedThroughputExceededException', undefined, reasons);
    }

    let randCalls = 0;
    if (cfg.unprocessed_fraction > 0 && keptCount > 0 && rng() < cfg.unprocessed_fraction) {
      // A random non-empty subset; a proper subset unless there is one item.
      const flat = [];
      for (const t of Object.keys(keep)) for (const r of keep[t]) flat.push([t, r]);
      const k = flat.length === 1 ? 1 : 1 + Math.floor(rng() * (flat.length - 1));
      for (let i = flat.length - 1; i > 0; i--) {  // Fisher-Yates
        const j = Math.floor(rng() * (i + 1));
        [flat[i], flat[j]] = [flat[j], flat[i]];
      }
      const drop = new Set(flat.slice(0, k).map(([, r]) => r));
      for (const t of Object.keys(keep)) {
        const stay = [];
        for (const r of keep[t]) {
          if (drop.has(r)) {
            addTo(injected, t, r);
            inc(randHeld, t);
          } else {
            stay.push(r);
          }
        }
        if (stay.length) keep[t] = stay;
        else delete keep[t];
      }
      randCalls = 1;
      keptCount -= k;
      vlog(`unprocessed: ${k} of ${flat.length} items held back`);
    }

    const commitHeld = () => {
      for (const [t, n] of Object.entries(capHeld)) {
        stats.capacity_unprocessed_items += n;
        tableStats(stats, t).capacity_unprocessed_items += n;
      }
      for (const [t, n] of Object.entries(randHeld)) {
        stats.unprocessed_injected_items += n;
        tableStats(stats, t).unprocessed_injected_items += n;
      }
      for (const [t, n] of Object.entries(itemHeld)) {
        stats.unprocessed_item_injected += n;
        stats.unprocessed_injected_items += n;
        tableStats(stats, t).unprocessed_injected_items += n;
      }
      for (const n of Object.values(keyHeld)) stats.key_capacity_unprocessed_items += n;
      stats.unprocessed_injected_calls += randCalls || sum(itemHeld) > 0 ? 1 : 0;
    };

    const injectedCount = Object.values(injected).reduce((a, l) => a + l.length, 0);
    if (keptCount === 0) {
      // Everything held back: answer without forwarding.
      commitHeld();
      const out = {UnprocessedItems: injected};
      if (data.ReturnConsumedCapacity === 'TOTAL' || data.ReturnConsumedCapacity === 'INDEXES') {
        out.ConsumedCapacity = tables.map((t) => ({TableName: t, CapacityUnits: 0}));
      }
      return sendJson(res, 200, out);
    }

    stats.forwarded_calls++;
    stats.items_forwarded += keptCount;
    for (const t of Object.keys(keep)) tableStats(stats, t).items_forwarded += keep[t].length;
    const outBody = injectedCount === 0 ? body :
      Buffer.from(JSON.stringify({...data, RequestItems: keep}));
    let up;
    try {
      up = await forward(req, outBody);
    } catch (err) {
      stats.upstream_failures++;
      vlog(`upstream failure: ${err.message}`);
      return sendJson(res, 502, {__type: 'ProxyUpstreamError', message: err.message});
    }
    const parsed = accountForwarded(keep, up);
    // An error from the target is relayed as it is (the client retries or
    // splits the whole call); held back items then were not "unprocessed".
    if (injectedCount === 0 || !parsed) return relay(res, up);
    commitHeld();
    const merged = parsed.UnprocessedItems && typeof parsed.UnprocessedItems === 'object' ?
      parsed.UnprocessedItems : {};
    for (const [t, reqs] of Object.entries(injected)) {
      merged[t] = (Array.isArray(merged[t]) ? merged[t] : []).concat(reqs);
    }
    parsed.UnprocessedItems = merged;
    relay(res, up, Buffer.from(JSON.stringify(parsed)));
  }

  async function handle(req, res, body) {
    if (req.url.startsWith('/__proxy/')) return control(req, res, body);
    stats.calls++;
    const target = String(req.headers['x-amz-target'] || '');
    const action = target.includes('.') ? target.split('.').pop() : (target || `${req.method} ${req.url}`);
    stats.calls_by_action[action] = (stats.calls_by_action[action] || 0) + 1;
    if (req.method === 'POST' && action === 'BatchWriteItem') {
      let data;
      try {
        data = JSON.parse(body.toString('utf8'));
      } catch {
        data = undefined;
      }
      if (isBatchWriteShape(data)) return batchWrite(req, res, body, data);
      stats.malformed_requests++;
    }
    return passThrough(req, res, body);
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        res.writeHead(413, {'Content-Length': 0, 'Connection': 'close'});
        res.end();
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return;
      handle(req, res, Buffer.concat(chunks)).catch((err) => {
        log(`fault_proxy: internal error: ${err && err.stack}`);
        if (!res.headersSent && !res.destroyed) {
          sendJson(res, 500, {__type: 'ProxyInternalError', message: String(err && err.message)});
        }
      });
    });
    req.on('error', () => {});
  });
  server.keepAliveTimeout = 60000;
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  return {
    server,
    agent,
    getStats: () => stats,
    getConfig: () => cfg,
    setConfig,
    reset,
  };
}

// ---------------------------------------------------------------------------
// CLI.

const USAGE = `Usage: node tests/tools/fault_proxy.js --target http://127.0.0.1:PORT [options]
  --port N                        listen port (0 = free port, default 0)
  --host H                        listen address (default 127.0.0.1)
  --config FILE                   JSON config (keys below); flags override it
  --seed S
  --latency-ms MS  --latency-jitter-ms MS
  --unprocessed-fraction F
  --throttle NAME=F               repeatable; NAME: ${THROTTLE_NAMES.join(' | ')}
  --error NAME=F                  repeatable; NAME: ${Object.keys(ERRORS).join(' | ')}
  --error-500-fraction F  --error-503-fraction F
  --reset-fraction F  --reset-after-forward-share F
  --reset-late-forward-ms MS      resets after forwarding reset the client
                                  first and forward MS later (late landing)
  --capacity TABLE=WCU[:BURST_SECONDS]   repeatable
  --unprocessed-item-fraction F   each item unprocessed with probability F
  --key-capacity TABLE=WCU[:BURST_SECONDS]  per partition-key value (attribute pk;
                                  other attribute: --set key_capacity=...)
  --throttle-reason REASON        repeatable; ThrottlingReasons of injected throttles
  --validation-error-key KEY      repeatable
  --validation-key-attribute NAME (default pk)
  --set KEY=JSON                  any config key, e.g. --set 'capacity={"t":{"wcu_per_second":5}}'
  --write-log FILE                append one JSON line per BatchWriteItem answered by the target:
                                  {"t0","t1" (monotonic ns),"items":[[table,"put"|"delete",attrs]]}
  --verbose                       log every injected fault to stderr
Control (same port): GET /__proxy/stats, GET /__proxy/config,
  POST /__proxy/config (JSON patch; ?replace=1 starts from defaults), POST /__proxy/reset.`;

function parseCli(argv) {
  const out = {port: 0, host: '127.0.0.1', target: null, verbose: false, file: null, patch: {}};
  const num = (s, flag) => {
    const n = Number(s);
    if (s === '' || !Number.isFinite(n)) throw new Error(`${flag} needs a number, got ${JSON.stringify(s)}`);
    return n;
  };
  const kv = (s, flag) => {
    const i = s.indexOf('=');
    if (i <= 0) throw new Error(`${flag} needs NAME=VALUE, got ${JSON.stringify(s)}`);
    return [s.slice(0, i), s.slice(i + 1)];
  };
  const simple = {
    '--latency-ms': 'latency_ms', '--latency-jitter-ms': 'latency_jitter_ms',
    '--unprocessed-fraction': 'unprocessed_fraction', '--error-500-fraction': 'error_500_fraction',
    '--error-503-fraction': 'error_503_fraction', '--reset-fraction': 'reset_fraction',
    '--reset-after-forward-share': 'reset_after_forward_share',
    '--reset-late-forward-ms': 'reset_late_forward_ms',
    '--unprocessed-item-fraction': 'unprocessed_item_fraction',
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {  // --flag=value (value may hold more '=')
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => {
      if (v !== undefined) return v;
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    const p = out.patch;
    if (a === '-h' || a === '--help') {
      out.help = true;
    } else if (a === '--port') {
      out.port = num(next(), a);
      if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) throw new Error('bad --port');
    } else if (a === '--host') {
      out.host = next();
    } else if (a === '--target') {
      out.target = next();
    } else if (a === '--config') {
      out.file = next();
    } else if (a === '--write-log') {
      out.writeLog = next();
    } else if (a === '--verbose' || a === '-v') {
      out.verbose = true;
    } else if (a === '--seed') {
      const s = next();
      p.seed = /^-?\d+$/.test(s) ? Number(s) : s;
    } else if (a in simple) {
      p[simple[a]] = num(next(), a);
    } else if (a === '--throttle' || a === '--error') {
      const [name, f] = kv(next(), a);
      const key = a === '--throttle' ? 'throttle_fraction' : 'error_fraction';
      p[key] = {...(p[key] || {}), [name]: num(f, a)};
    } else if (a === '--capacity') {
      const [table, spec] = kv(next(), a);
      const [wcu, burst] = spec.split(':');
      p.capacity = {...(p.capacity || {}), [table]: {wcu_per_second: num(wcu, a),
        ...(burst !== undefined ? {burst_seconds: num(burst, a)} : {})}};
    } else if (a === '--key-capacity') {
      const [table, spec] = kv(next(), a);
      const [wcu, burst] = spec.split(':');
      p.key_capacity = {...(p.key_capacity || {}), [table]: {wcu_per_second: num(wcu, a),
        ...(burst !== undefined ? {burst_seconds: num(burst, a)} : {})}};
    } else if (a === '--throttle-reason') {
      p.throttle_reasons = (p.throttle_reasons || []).concat([next()]);
    } else if (a === '--validation-error-key') {
      p.validation_error_keys = (p.validation_error_keys || []).concat([next()]);
    } else if (a === '--validation-key-attribute') {
      p.validation_key_attribute = next();
    } else if (a === '--set') {
      const [key, json] = kv(next(), a);
      try {
        p[key] = JSON.parse(json);
      } catch (err) {
        throw new Error(`--set ${key}: value is not JSON: ${err.message}`);
      }
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  return out;
}

function main() {
  let cli;
  let proxy;
  try {
    cli = parseCli(process.argv.slice(2));
    if (cli.help) {
      process.stdout.write(USAGE + '\n');
      return;
    }
    if (!cli.target) throw new Error('--target is required');
    let config = {};
    if (cli.file) {
      let text;
      try {
        text = fs.readFileSync(cli.file, 'utf8');
      } catch (err) {
        throw new Error(`--config ${cli.file}: ${err.message}`);
      }
      try {
        config = JSON.parse(text);
      } catch (err) {
        throw new Error(`--config ${cli.file}: not valid JSON: ${err.message}`);
      }
      try {
        mergeConfig(defaultConfig(), config);
      } catch (err) {
        throw new Error(`--config ${cli.file}: ${err.message}`);
      }
    }
    // Flags override the file; map-valued flags (--throttle, --error,
    // --capacity) add to the file's map instead of replacing it.
    const base = mergeConfig(defaultConfig(), config);
    const patch = {...cli.patch};
    for (const k of ['throttle_fraction', 'error_fraction', 'capacity', 'key_capacity']) {
      if (patch[k]) patch[k] = {...base[k], ...patch[k]};
    }
    proxy = createFaultProxy({target: cli.target, config: mergeConfig(base, patch), verbose: cli.verbose,
      writeLog: cli.writeLog || null});
  } catch (err) {
    process.stderr.write(`fault_proxy.js: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }

  const {server} = proxy;
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('error', (err) => {
    process.stderr.write(`fault_proxy.js: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(cli.port, cli.host, () => {
    process.stdout.write(`READY port=${server.address().port}\n`);
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 3000).unref();
    server.close(() => process.exit(0));
    for (const s of sockets) s.destroy();
    proxy.agent.destroy();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

module.exports = {createFaultProxy, mergeConfig, defaultConfig, itemSize, requestWcu, crc32, ERRORS};

if (require.main === module) main();
