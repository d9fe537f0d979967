// resp3_checks.js — node-redis 5 (a client library that is not ours) with
// RESP: 3 against slotgated: each check prints `ok NAME` or `FAIL NAME:
// reason`, one line each; tests/lua/slotgated_node_spec.lua makes each line a
// test. A check that throws fails with what it threw.
//
//   node tests/node/resp3_checks.js [--list] PORT PREFIX
//
// Exits 1 when a check failed.
'use strict';
const { createClient } = require('redis');

const list = process.argv.includes('--list');
const [port, prefix] = process.argv.slice(2).filter((a) => a !== '--list');
const url = `redis://127.0.0.1:${port}`;
const k = (name) => `${prefix}${name}`;
const t = (name) => `{${prefix}}${name}`; // one slot

function same(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, expected ${w}`);
}

function waitFor(cond, ms, what) {
  return new Promise((resolve, reject) => {
    const until = Date.now() + ms;
    const poll = () => {
      if (cond()) return resolve();
      if (Date.now() > until) return reject(new Error(`${what}: not within ${ms} ms`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

const checks = [
  ['hello', async (c) => {
    // the connection itself said HELLO 3: a RESP3 reply type proves it
    same(await c.sendCommand(['PING']), 'PONG', 'PING');
    const info = await c.sendCommand(['HELLO', '3']);
    same(info.proto, 3, 'HELLO proto');
  }],
  ['strings', async (c) => {
    same(await c.set(k('s'), 'v'), 'OK', 'SET');
    same(await c.get(k('s')), 'v', 'GET');
    same(await c.get(k('missing')), null, 'GET missing');
    same(await c.incrByFloat(k('f'), 1.5), '1.5', 'INCRBYFLOAT');
  }],
  ['maps', async (c) => {
    same(await c.hSet(k('h'), { f: 'v', g: 'w' }), 2, 'HSET');
    same(await c.hGetAll(k('h')), { f: 'v', g: 'w' }, 'HGETALL');
    const cfg = await c.configGet('maxmemory');
    same(Object.keys(cfg), ['maxmemory'], 'CONFIG GET');
  }],
  ['doubles and sets', async (c) => {
    same(await c.zAdd(k('z'), [{ score: 2.5, value: 'm' }]), 1, 'ZADD');
    same(await c.zScore(k('z'), 'm'), 2.5, 'ZSCORE');
    same(await c.sAdd(k('set'), ['a', 'b']), 2, 'SADD');
    const members = await c.sMembers(k('set'));
    same([...members].sort(), ['a', 'b'], 'SMEMBERS');
    same(await c.sIsMember(k('set'), 'a'), 1, 'SISMEMBER');
  }],
  ['across slots', async (c) => {
    same(await c.mSet([[k('a'), '1'], [k('b'), '2'], [k('c'), '3']]), 'OK', 'MSET');
    same(await c.mGet([k('a'), k('none'), k('c')]), ['1', null, '3'], 'MGET');
    same(await c.del([k('a'), k('b'), k('c')]), 3, 'DEL');
  }],
  ['transaction', async (c) => {
    const r = await c.multi().set(t('tx'), '1').incr(t('tx')).get(t('tx')).exec();
    same(r, ['OK', 2, '2'], 'MULTI/EXEC');
  }],
  ['blocking', async (c) => {
    same(await c.blPop(k('nolist'), 0.05), null, 'BLPOP timeout');
    await c.rPush(k('bl'), 'x');
    same(await c.blPop(k('bl'), 1), { key: k('bl'), element: 'x' }, 'BLPOP');
  }],
  ['pub/sub', async (c) => {
    const sub = c.duplicate();
    await sub.connect();
    const got = [];
    await sub.subscribe(k('ch'), (message, channel) => got.push([channel, message]));
    same(await c.publish(k('ch'), 'hello') >= 0, true, 'PUBLISH');
    await waitFor(() => got.length > 0, 5000, 'the message');
    same(got[0], [k('ch'), 'hello'], 'message');
    // RESP3: the subscribed connection still takes commands
    same(await sub.get(k('s')), 'v', 'GET while subscribed');
    await sub.unsubscribe(k('ch'));
    await sub.quit();
  }],
  ['errors', async (c) => {
    let err;
    try { await c.sendCommand(['LPUSH', k('s'), 'x']); } catch (e) { err = e; }
    if (!err || !/^WRONGTYPE/.test(err.message)) throw new Error(`WRONGTYPE: got ${err}`);
  }],
];

async function main() {
  if (list) {
    for (const [name] of checks) console.log(name);
    return;
  }
  const c = createClient({ url, RESP: 3, socket: { connectTimeout: 5000, reconnectStrategy: false } });
  c.on('error', () => {}); // each check reports its own failure
  await c.connect();
  for (const [name, fn] of checks) {
    try {
      await fn(c);
      console.log(`ok ${name}`);
    } catch (e) {
      console.log(`FAIL ${name}: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
      process.exitCode = 1;
    }
  }
  await c.del([k('s'), k('f'), k('h'), k('z'), k('set'), t('tx'), k('bl')]);
  await c.quit();
}

main().catch((e) => {
  console.log(`FAIL connect: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
  process.exitCode = 1;
});
