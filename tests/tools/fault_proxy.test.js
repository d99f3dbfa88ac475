'use strict';
// Tests for the test tools: dynalite launcher, fault proxy, ddb CLI.
// Run: node --test tests/tools/
// Starts dynalite and the fault proxy as real processes on free loopback ports.

const test = require('node:test');
const assert = require('node:assert/strict');
const {spawnSync} = require('node:child_process');
const path = require('node:path');

const ddb = require('./ddb');
const {startTool, stopTool, httpJson} = require('./harness');
const {crc32, itemSize, requestWcu, mergeConfig, defaultConfig} = require('./fault_proxy');

let dyn;
let proxy;
let direct;   // dynalite endpoint URL
let viaProxy; // proxy endpoint URL

test.before(async () => {
  dyn = await startTool('dynalite.js', ['--port', '0']);
  direct = `http://127.0.0.1:${dyn.port}`;
  proxy = await startTool('fault_proxy.js', ['--port', '0', '--target', direct, '--seed', '7']);
  viaProxy = `http://127.0.0.1:${proxy.port}`;
});

test.after(async () => {
  assert.equal(await stopTool(proxy), 0, 'fault proxy exits 0 on SIGTERM');
  assert.equal(await stopTool(dyn), 0, 'dynalite exits 0 on SIGTERM');
});

// Resets stats and sets the whole config (from defaults) for one phase.
async function phase(config) {
  const r = await httpJson(proxy.port, 'POST', '/__proxy/config?replace=1', config);
  assert.equal(r.status, 200, r.text);
  assert.equal((await httpJson(proxy.port, 'POST', '/__proxy/reset')).status, 200);
}
async function stats() {
  const r = await httpJson(proxy.port, 'GET', '/__proxy/stats');
  assert.equal(r.status, 200);
  return r.json;
}

let tableSeq = 0;
async function freshTable(prefix) {
  const name = `${prefix}_${process.pid}_${++tableSeq}`;
  await ddb.createTable(direct, name, {name: 'pk', type: 'S'}, null);
  return name;
}
function put(pk, extra = {}) {
  return {PutRequest: {Item: {pk: {S: pk}, v: {N: '1'}, ...extra}}};
}
function puts(prefix, n, extra) {
  return Array.from({length: n}, (_, i) => put(`${prefix}${i}`, extra));
}
async function keysIn(table) {
  return new Set((await ddb.scanAll(direct, table)).map((it) => it.pk.S));
}

test('non-BatchWriteItem calls pass through and are counted', async () => {
  await phase({});
  const t = await freshTable('pass');
  await ddb.call(viaProxy, 'PutItem', {TableName: t, Item: {pk: {S: 'x'}}});
  const got = await ddb.call(viaProxy, 'GetItem', {TableName: t, Key: {pk: {S: 'x'}}});
  assert.deepEqual(got.Item, {pk: {S: 'x'}});
  const d = await ddb.call(viaProxy, 'DescribeTable', {TableName: t});
  assert.equal(d.Table.TableStatus, 'ACTIVE');
  const s = await stats();
  assert.equal(s.calls, 3);
  assert.equal(s.forwarded_calls, 3);
  assert.deepEqual(s.calls_by_action, {PutItem: 1, GetItem: 1, DescribeTable: 1});
});

test('clean BatchWriteItem is forwarded byte for byte and counted as written', async () => {
  await phase({});
  const t = await freshTable('clean');
  const res = await ddb.call(viaProxy, 'BatchWriteItem',
      {RequestItems: {[t]: puts('c', 25)}, ReturnConsumedCapacity: 'TOTAL'});
  assert.deepEqual(res.UnprocessedItems, {});
  assert.equal((await keysIn(t)).size, 25);
  const s = await stats();
  assert.equal(s.items_received, 25);
  assert.equal(s.items_forwarded, 25);
  assert.equal(s.items_written, 25);
  assert.equal(s.tables[t].items_written, 25);
  assert.equal(s.tables[t].puts_written, 25);
  assert.equal(s.tables[t].wcu_consumed, 25);
  assert.equal(s.tables[t].consumed_capacity_reported, 25);
});

test('unprocessed injection returns DynamoDB-shaped UnprocessedItems that were really not written',
    async () => {
      await phase({unprocessed_fraction: 1, seed: 11});
      const t1 = await freshTable('unproc_a');
      const t2 = await freshTable('unproc_b');
      const sent = {[t1]: puts('a', 15), [t2]: puts('b', 10)};
      sent[t2].push({DeleteRequest: {Key: {pk: {S: 'gone'}}}});
      const res = await ddb.call(viaProxy, 'BatchWriteItem', {RequestItems: sent});

      const un = res.UnprocessedItems;
      assert.equal(typeof un, 'object');
      let unCount = 0;
      for (const [table, reqs] of Object.entries(un)) {
        assert.ok(table === t1 || table === t2, `unexpected table ${table}`);
        assert.ok(Array.isArray(reqs) && reqs.length > 0);
        for (const r of reqs) {
          // Exactly one of PutRequest/DeleteRequest, identical to what was sent.
          assert.equal(Object.keys(r).length, 1);
          assert.ok(sent[table].some((s) => JSON.stringify(s) === JSON.stringify(r)),
              `unprocessed entry not from the request: ${JSON.stringify(r)}`);
          unCount++;
        }
      }
      assert.ok(unCount >= 1 && unCount < 26, `a proper non-empty subset, got ${unCount}`);

      // The held back puts are absent, all the others are present.
      for (const table of [t1, t2]) {
        const present = await keysIn(table);
        const held = new Set((un[table] || []).filter((r) => r.PutRequest)
            .map((r) => r.PutRequest.Item.pk.S));
        for (const r of sent[table].filter((x) => x.PutRequest)) {
          const k = r.PutRequest.Item.pk.S;
          assert.equal(present.has(k), !held.has(k), `key ${k} in ${table}`);
        }
      }
      const s = await stats();
      assert.equal(s.unprocessed_injected_calls, 1);
      assert.equal(s.unprocessed_injected_items, unCount);
      assert.equal(s.items_received, 26);
      assert.equal(s.items_forwarded, 26 - unCount);
      assert.equal(s.items_written, 26 - unCount);
      assert.equal((s.tables[t1].unprocessed_injected_items || 0) +
          (s.tables[t2].unprocessed_injected_items || 0), unCount);
    });

test('a one-item batch held back entirely is answered 200 without forwarding', async () => {
  await phase({unprocessed_fraction: 1});
  const t = await freshTable('single');
  const res = await ddb.call(viaProxy, 'BatchWriteItem',
      {RequestItems: {[t]: [put('only')]}, ReturnConsumedCapacity: 'TOTAL'});
  assert.deepEqual(res.UnprocessedItems, {[t]: [put('only')]});
  assert.deepEqual(res.ConsumedCapacity, [{TableName: t, CapacityUnits: 0}]);
  assert.equal((await keysIn(t)).size, 0);
  const s = await stats();
  assert.equal(s.forwarded_calls, 0);
  assert.equal(s.unprocessed_injected_items, 1);
});

test('seeded randomness is reproducible after a reset', async () => {
  const t = await freshTable('seeded');
  const run = async () => {
    await phase({unprocessed_fraction: 1, seed: 'abc'});
    const res = await ddb.call(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('s', 25)}});
    return JSON.stringify(res.UnprocessedItems);
  };
  assert.equal(await run(), await run());
});

test('throttle injection answers each error type with the real shape and writes nothing', async () => {
  const t = await freshTable('throttle');
  const expected = {
    ProvisionedThroughputExceededException:
      'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
    ThrottlingException: 'com.amazon.coral.availability#ThrottlingException',
    RequestLimitExceeded: 'com.amazonaws.dynamodb.v20120810#RequestLimitExceeded',
  };
  for (const [name, type] of Object.entries(expected)) {
    await phase({throttle_fraction: {[name]: 1}});
    const res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts(name, 3)}});
    assert.equal(res.status, 400);
    const body = JSON.parse(res.body);
    assert.equal(body.__type, type);
    assert.ok(body.message.length > 0);
    assert.equal(res.headers['x-amz-crc32'], String(crc32(Buffer.from(res.body))));
    const s = await stats();
    assert.equal(s.throttles_injected[name], 1);
    assert.equal(s.forwarded_calls, 0);
  }
  assert.equal((await keysIn(t)).size, 0);
});

test('fractional throttling hits about the configured share of calls', async () => {
  await phase({throttle_fraction: {ThrottlingException: 0.3}, seed: 5});
  const t = await freshTable('frac');
  let throttled = 0;
  let written = 0;
  const n = 200;
  for (let i = 0; i < n; i++) {
    const res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: [put(`f${i}`)]}});
    if (res.status === 400) throttled++;
    else if (res.status === 200) written++;
  }
  assert.equal(throttled + written, n);
  assert.ok(throttled > 0.15 * n && throttled < 0.45 * n, `throttled ${throttled} of ${n}`);
  const s = await stats();
  assert.equal(s.throttles_injected.ThrottlingException, throttled);
  assert.equal(s.items_written, written);
  assert.equal((await keysIn(t)).size, written);
});

test('500 and 503 injection', async () => {
  const t = await freshTable('err5xx');
  await phase({error_500_fraction: 1});
  let res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('e', 2)}});
  assert.equal(res.status, 500);
  assert.equal(JSON.parse(res.body).__type, 'com.amazonaws.dynamodb.v20120810#InternalServerError');
  assert.equal((await stats()).errors_500, 1);
  await phase({error_503_fraction: 1});
  res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('e', 2)}});
  assert.equal(res.status, 503);
  assert.equal(JSON.parse(res.body).__type, 'com.amazonaws.dynamodb.v20120810#ServiceUnavailable');
  assert.equal((await stats()).errors_503, 1);
  assert.equal((await keysIn(t)).size, 0);
});

test('validation_error_keys rejects the whole call only when a poison key is in it', async () => {
  await phase({validation_error_keys: ['poison']});
  const t = await freshTable('poison');
  const bad = puts('ok', 5).concat([put('poison')]);
  const res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: bad}});
  assert.equal(res.status, 400);
  const body = JSON.parse(res.body);
  assert.equal(body.__type, 'com.amazon.coral.validate#ValidationException');
  assert.match(body.message, /poison item/);
  assert.equal((await keysIn(t)).size, 0);
  // The same batch without the poison item goes through.
  const good = await ddb.call(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('ok', 5)}});
  assert.deepEqual(good.UnprocessedItems, {});
  assert.equal((await keysIn(t)).size, 5);
  // Delete requests are checked too; another attribute name can be configured.
  await phase({validation_error_keys: ['zz'], validation_key_attribute: 'pk'});
  const del = await ddb.rawCall(viaProxy, 'BatchWriteItem',
      {RequestItems: {[t]: [{DeleteRequest: {Key: {pk: {S: 'zz'}}}}]}});
  assert.equal(del.status, 400);
  const s = await stats();
  assert.equal(s.validation_errors_injected, 1);
});

test('capacity model limits written WCU per second and throttles when nothing fits', async () => {
  const t = await freshTable('cap');
  const other = await freshTable('cap_other');
  // 1500-byte items cost 2 WCU each; 100 WCU/s with a 1 s burst.
  await phase({capacity: {[t]: {wcu_per_second: 100, burst_seconds: 1}}});
  const pad = {p: {S: 'x'.repeat(1500)}};
  assert.equal(requestWcu(put('k', pad)), 2);
  const start = Date.now();
  let accepted = 0;
  let fullThrottles = 0;
  let partial = 0;
  let i = 0;
  while (Date.now() - start < 1500) {
    i++;
    // 20 items for the limited table; the other table has no capacity limit
    // and is never held back.
    const res = await ddb.rawCall(viaProxy, 'BatchWriteItem',
        {RequestItems: {[t]: puts(`w${i}_`, 20, pad), [other]: puts(`o${i}_`, 5)}});
    if (res.status === 400) {
      fullThrottles++;
      continue;
    }
    assert.equal(res.status, 200, res.body);
    const body = JSON.parse(res.body);
    const held = (body.UnprocessedItems[t] || []).length;
    assert.equal(body.UnprocessedItems[other], undefined, 'unlimited table never held back');
    if (held > 0) partial++;
    accepted += 20 - held;
    await new Promise((r) => setTimeout(r, 20));
  }
  const elapsed = (Date.now() - start) / 1000;
  // Budget: burst (100) + 100/s * elapsed, at 2 WCU per item.
  const maxItems = (100 + 100 * elapsed) / 2;
  assert.ok(accepted <= maxItems + 1, `accepted ${accepted} > ${maxItems}`);
  assert.ok(accepted >= 0.6 * maxItems, `accepted ${accepted} << ${maxItems}`);
  assert.ok(partial > 0, 'some calls were partially processed');
  assert.equal((await keysIn(t)).size, accepted);
  const s = await stats();
  assert.equal(s.tables[t].items_written, accepted);
  assert.equal(s.tables[t].wcu_consumed, 2 * accepted);
  assert.ok(s.tables[t].capacity_unprocessed_items > 0);
  assert.equal(s.tables[other].capacity_unprocessed_items, 0);

  // When nothing fits at all: 400 ProvisionedThroughputExceededException.
  await phase({capacity: {[t]: {wcu_per_second: 1, burst_seconds: 1}}});
  const big = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: [put('big', pad)]}});
  assert.equal(big.status, 400);
  assert.equal(JSON.parse(big.body).__type,
      'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException');
  assert.equal((await stats()).capacity_throttles, 1);
});

test('connection resets before and after forwarding', async () => {
  const t = await freshTable('reset');
  await phase({reset_fraction: 1, reset_after_forward_share: 0});
  await assert.rejects(ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('b', 3)}}));
  assert.equal((await keysIn(t)).size, 0, 'reset before forwarding writes nothing');
  assert.equal((await stats()).resets_before_forward, 1);

  await phase({reset_fraction: 1, reset_after_forward_share: 1});
  await assert.rejects(ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('a', 3)}}));
  assert.equal((await keysIn(t)).size, 3, 'reset after forwarding: the write landed');
  const s = await stats();
  assert.equal(s.resets_after_forward, 1);
  assert.equal(s.items_written, 3);
});

test('late forward: the client is reset first and the write lands later', async () => {
  const t = await freshTable('late');
  await phase({reset_fraction: 1, reset_after_forward_share: 1, reset_late_forward_ms: 400});
  const t0 = Date.now();
  await assert.rejects(ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('z', 2)}}));
  assert.ok(Date.now() - t0 < 300, 'the client saw the reset before the forward');
  assert.equal((await keysIn(t)).size, 0, 'not landed yet');
  await new Promise((r) => setTimeout(r, 700));
  assert.equal((await keysIn(t)).size, 2, 'landed after the reset');
  const s = await stats();
  assert.equal(s.resets_after_forward, 1);
  assert.equal(s.late_forwards, 1);
});

test('per-item unprocessed: each item held back independently, really not written', async () => {
  const t = await freshTable('item');
  await phase({seed: 5, unprocessed_item_fraction: 0.3});
  let held = 0;
  let sent = 0;
  const back = new Set();
  for (let i = 0; i < 40; i++) {
    const res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts(`c${i}_`, 25)}});
    assert.equal(res.status, 200, res.body);
    const list = JSON.parse(res.body).UnprocessedItems[t] || [];
    for (const r of list) back.add(r.PutRequest.Item.pk.S);
    held += list.length;
    sent += 25;
  }
  assert.ok(held > 0.25 * sent && held < 0.35 * sent, `held ${held} of ${sent}`);
  const written = await keysIn(t);
  assert.equal(written.size, sent - held);
  for (const k of back) assert.ok(!written.has(k), `${k} was returned unprocessed but written`);
  const s = await stats();
  assert.equal(s.unprocessed_item_injected, held);
  assert.equal(s.unprocessed_injected_items, held);
});

test('key capacity caps each partition-key value and throttles with a key-range reason', async () => {
  const t = `keycap_${process.pid}`;
  await ddb.createTable(direct, t, {name: 'pk', type: 'S'}, {name: 'sk', type: 'N'});
  await phase({key_capacity: {[t]: {wcu_per_second: 10, burst_seconds: 1}}});
  const item = (pk, sk) => ({PutRequest: {Item: {pk: {S: pk}, sk: {N: String(sk)}}}});
  const reqs = [];
  for (let i = 0; i < 20; i++) reqs.push(item('hot', i));
  for (let i = 0; i < 5; i++) reqs.push(item(`cold${i}`, 0));
  const res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: reqs}});
  assert.equal(res.status, 200, res.body);
  const back = JSON.parse(res.body).UnprocessedItems[t] || [];
  assert.ok(back.length >= 9 && back.length <= 10, `held ${back.length}`);
  assert.ok(back.every((r) => r.PutRequest.Item.pk.S === 'hot'), 'only the hot key is held back');
  // The hot key's bucket is empty now: a call of only hot items is refused whole.
  const all = await ddb.rawCall(viaProxy, 'BatchWriteItem',
      {RequestItems: {[t]: [item('hot', 100), item('hot', 101), item('hot', 102)]}});
  assert.equal(all.status, 400);
  const body = JSON.parse(all.body);
  assert.match(body.__type, /ProvisionedThroughputExceededException/);
  assert.deepEqual(body.ThrottlingReasons,
      [{reason: 'TableWriteKeyRangeThroughputExceeded', resource: `arn:aws:dynamodb:us-east-1:000000000000:table/${t}`}]);
  const s = await stats();
  assert.equal(s.key_capacity_throttles, 1);
  assert.equal(s.key_capacity_unprocessed_items, back.length);
});

test('injected throttles carry the configured ThrottlingReasons', async () => {
  const t = await freshTable('reason');
  await phase({throttle_fraction: {ThrottlingException: 1},
    throttle_reasons: ['TableWriteMaxOnDemandThroughputExceeded']});
  const res = await ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('r', 2)}});
  assert.equal(res.status, 400);
  assert.deepEqual(JSON.parse(res.body).ThrottlingReasons.map((r) => r.reason),
      ['TableWriteMaxOnDemandThroughputExceeded']);
});

test('latency applies to all actions', async () => {
  await phase({latency_ms: 150});
  const t = await freshTable('lat');
  const t0 = Date.now();
  await ddb.call(viaProxy, 'DescribeTable', {TableName: t});
  assert.ok(Date.now() - t0 >= 140, 'DescribeTable delayed');
  const t1 = Date.now();
  await ddb.call(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('l', 2)}});
  assert.ok(Date.now() - t1 >= 140, 'BatchWriteItem delayed');
});

test('malformed client JSON is forwarded untouched', async () => {
  await phase({unprocessed_fraction: 1});
  const res = await ddb.rawCall(viaProxy, 'BatchWriteItem', '{"RequestItems": {nope');
  assert.equal(res.status, 400);
  assert.match(JSON.parse(res.body).__type, /SerializationException/);
  const s = await stats();
  assert.equal(s.malformed_requests, 1);
  assert.equal(s.forwarded_calls, 1);
  assert.equal(s.unprocessed_injected_calls, 0);
});

test('errors from dynalite are relayed and counted', async () => {
  await phase({});
  const t = await freshTable('dup');
  const res = await ddb.rawCall(viaProxy, 'BatchWriteItem',
      {RequestItems: {[t]: [put('same'), put('same')]}});
  assert.equal(res.status, 400);
  assert.match(JSON.parse(res.body).message, /duplicates/);
  assert.equal((await stats()).target_errors.ValidationException, 1);
});

test('control endpoint validates config and merges partial updates', async () => {
  await phase({latency_ms: 5});
  let r = await httpJson(proxy.port, 'POST', '/__proxy/config', {no_such_key: 1});
  assert.equal(r.status, 400);
  assert.match(r.json.error, /no_such_key/);
  r = await httpJson(proxy.port, 'POST', '/__proxy/config', {unprocessed_fraction: 2});
  assert.equal(r.status, 400);
  r = await httpJson(proxy.port, 'POST', '/__proxy/config', {throttle_fraction: {Bogus: 0.1}});
  assert.equal(r.status, 400);
  r = await httpJson(proxy.port, 'POST', '/__proxy/config', {error_500_fraction: 0.25});
  assert.equal(r.status, 200);
  assert.equal(r.json.latency_ms, 5, 'partial update keeps other keys');
  assert.equal(r.json.error_500_fraction, 0.25);
  r = await httpJson(proxy.port, 'GET', '/__proxy/config');
  assert.equal(r.json.error_500_fraction, 0.25);
  r = await httpJson(proxy.port, 'GET', '/__proxy/nope');
  assert.equal(r.status, 404);
  await phase({});
});

test('item size and WCU follow DynamoDB size rules', () => {
  assert.equal(itemSize({pk: {S: 'abc'}}), 5);
  assert.equal(itemSize({n: {N: '12345'}}), 1 + 4);
  assert.equal(itemSize({b: {BOOL: true}, z: {NULL: true}}), 4);
  assert.equal(requestWcu({PutRequest: {Item: {pk: {S: 'x'.repeat(1022)}}}}), 1);
  assert.equal(requestWcu({PutRequest: {Item: {pk: {S: 'x'.repeat(1023)}}}}), 2);
  assert.equal(requestWcu({DeleteRequest: {Key: {pk: {S: 'x'}}}}), 1);
  assert.throws(() => mergeConfig(defaultConfig(), {capacity: {t: {wcu_per_second: -1}}}));
  assert.equal(crc32(Buffer.from('123456789')), 0xCBF43926);
});

test('ddb.js CLI: idempotent create-table, scan, count, delete-table', () => {
  const cli = (...args) => spawnSync(process.execPath,
      [path.join(__dirname, 'ddb.js'), '--endpoint', direct, ...args], {encoding: 'utf8', timeout: 15000});
  const name = `cli_${process.pid}`;
  let r = cli('create-table', name, '--pk', 'pk:S', '--sk', 'sk:N');
  assert.equal(r.status, 0, r.stderr);
  r = cli('create-table', name, '--pk', 'pk:S', '--sk', 'sk:N');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /exists/);
  r = cli('create-table', name, '--pk', 'pk:S');
  assert.equal(r.status, 1, 'a different key schema is an error');
  for (let i = 0; i < 3; i++) {
    r = cli('put', name, JSON.stringify({pk: {S: 'k'}, sk: {N: String(i)}}));
    assert.equal(r.status, 0, r.stderr);
  }
  r = cli('count', name);
  assert.equal(r.stdout.trim(), '3');
  r = cli('scan', name);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((it) => it.sk.N).sort(), ['0', '1', '2']);
  assert.equal(cli('delete-table', name).status, 0);
  assert.match(cli('delete-table', name).stdout, /absent/);
  assert.equal(cli('count', name).status, 1);
  assert.equal(cli('bogus').status, 2);
});

// --- Unknown fate and the applied-writes log (history checker support) ---

test('forward_after_client_abort: a call whose client gave up during the delay still lands', async () => {
  const t = await freshTable('late');
  await phase({latency_ms: 300});
  await assert.rejects(ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('x', 2)}},
      {timeoutMs: 50}));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await keysIn(t)).size, 0, 'by default an aborted call is not forwarded');
  assert.equal((await stats()).late_forwards, 0);

  await phase({latency_ms: 300, forward_after_client_abort: true});
  await assert.rejects(ddb.rawCall(viaProxy, 'BatchWriteItem', {RequestItems: {[t]: puts('y', 2)}},
      {timeoutMs: 50}));
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual([...(await keysIn(t))].sort(), ['y0', 'y1'], 'the late call landed');
  const s = await stats();
  assert.equal(s.client_aborts, 1);
  assert.equal(s.late_forwards, 1);
  const bad = await httpJson(proxy.port, 'POST', '/__proxy/config', {forward_after_client_abort: 1});
  assert.equal(bad.status, 400);
});

test('--write-log records the writes dynalite applied, with monotonic times', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'proxy-log-')), 'writes.jsonl');
  const p2 = await startTool('fault_proxy.js', ['--port', '0', '--target', direct, '--write-log', log,
    '--unprocessed-fraction', '1', '--seed', '3']);
  try {
    const t = await freshTable('wlog');
    const before = process.hrtime.bigint();
    const res = await ddb.call(`http://127.0.0.1:${p2.port}`, 'BatchWriteItem', {RequestItems: {[t]: [
      put('p0', {pad: {S: 'z'.repeat(300)}}), put('p1'), put('p2'),
      {DeleteRequest: {Key: {pk: {S: 'd0'}}}}]}});
    const after = process.hrtime.bigint();
    const held = (res.UnprocessedItems[t] || []).length;
    assert.ok(held >= 1 && held < 4, 'some items held back');
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 1);
    const [entry] = lines;
    assert.ok(before <= BigInt(entry.t0) && BigInt(entry.t0) <= BigInt(entry.t1) &&
        BigInt(entry.t1) <= after, 'times on the same monotonic clock');
    assert.equal(entry.items.length, 4 - held, 'held-back items are not logged as applied');
    const inTable = await keysIn(t);
    for (const [table, kind, attrs] of entry.items) {
      assert.equal(table, t);
      if (kind === 'put') {
        assert.ok(inTable.has(attrs.pk.S), `${attrs.pk.S} logged and written`);
        assert.equal(attrs.v.N, '1');
        assert.equal(attrs.pad, undefined, 'long attributes left out');
      } else {
        assert.deepEqual(attrs, {pk: {S: 'd0'}});
      }
    }
  } finally {
    assert.equal(await stopTool(p2), 0);
  }
});
