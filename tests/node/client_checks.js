// client_checks.js — slotgated driven by node-redis 5 or ioredis 5, client
// libraries that are not ours, as tests/lua/redis_py_checks.py does with
// redis-py. Each check asserts what a plain Redis would have answered and
// prints `ok NAME` or `FAIL NAME: reason`, one line each;
// tests/lua/slotgated_node_clients_spec.lua makes each line a test.
//
//   node client_checks.js --lib redis|ioredis ADDRESS [--user U --password P]
//        [--prefix P] [--tenant USER] [--cluster] [--direct HOST:PORT] [--list]
//
// ADDRESS is HOST:PORT or a Unix socket's path. --tenant USER: the daemon
// runs scripts/tenant_prefix.lua (adds the `tenant` check, leaves out what it
// refuses). --cluster: ioredis in Cluster mode (TCP only; adds `cluster`).
// --direct HOST:PORT: a node of the cluster behind slotgated, written to
// straight (node-redis only; adds `client_cache`).
// --list prints the names of the checks the options select. Every check is
// bounded (CHECK_MS): a gateway that stops answering fails it, never hangs.
// Exits 1 when a check failed, 2 on bad usage.
'use strict';

const CHECK_MS = 20000;
const CONNECT_MS = 5000;

// ---- options ---------------------------------------------------------------------

function usage(msg) {
  console.error(`client_checks.js: ${msg}`);
  process.exit(2);
}

const o = { lib: null, address: null, user: null, password: null, prefix: null,
  tenant: null, cluster: false, direct: null, list: false };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--lib') o.lib = val();
    else if (a === '--user') o.user = val();
    else if (a === '--password') o.password = val();
    else if (a === '--prefix') o.prefix = val();
    else if (a === '--tenant') o.tenant = val();
    else if (a === '--cluster') o.cluster = true;
    else if (a === '--direct') o.direct = val();
    else if (a === '--list') o.list = true;
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (o.address) usage(`a second address ${a}`);
    else o.address = a;
  }
  if (o.lib !== 'redis' && o.lib !== 'ioredis') usage('--lib redis|ioredis');
  if (o.cluster && o.lib !== 'ioredis') usage('--cluster is ioredis only');
  if (o.direct && o.lib !== 'redis') usage('--direct is node-redis only');
}

// the library, loaded now so that --list fails without it (the spec's own failure)
try {
  require(o.lib);
} catch (e) {
  const why = String(e.message).split('\n')[0];
  console.log(`FAIL import: ${o.lib}: ${why}: run npm ci in tests/node`);
  process.exit(3);
}

// ---- assertions ------------------------------------------------------------------

function same(what, want, got) {
  const w = JSON.stringify(want), g = JSON.stringify(got);
  if (w !== g) throw new Error(`${what}: expected ${w}, got ${g}`);
}

function truthy(what, cond, detail) {
  if (!cond) throw new Error(detail === undefined ? what : `${what}: ${detail}`);
}

// fn() must fail with an error whose message holds every needle
async function fails(what, fn, needles) {
  let got;
  try {
    got = await fn();
  } catch (e) {
    const msg = String(e && e.message || e);
    for (const n of needles) {
      if (!msg.includes(n)) throw new Error(`${what}: error ${JSON.stringify(msg)} lacks ${n}`);
    }
    return msg;
  }
  throw new Error(`${what}: expected an error, got the reply ${JSON.stringify(got)}`);
}

function within(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms, what) {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

// ---- the slot rule (Redis's keyHashSlot), to pick keys on different slots --------

function crc16(buf) {
  let crc = 0;
  for (const b of buf) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = ((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1) & 0xffff;
  }
  return crc;
}

function keySlot(key) {
  let k = Buffer.from(key);
  const s = k.indexOf('{');
  if (s !== -1) {
    const e = k.indexOf('}', s + 1);
    if (e !== -1 && e !== s + 1) k = k.subarray(s + 1, e);
  }
  return crc16(k) % 16384;
}

// n keys whose slots fall in each third of the slot range (every master of a
// 3-master cluster made by redis-cli), round robin
function spreadKeys(prefix, n) {
  const thirds = [[], [], []];
  for (let i = 0; Math.min(...thirds.map((t) => t.length)) < Math.ceil(n / 3); i++) {
    const k = `${prefix}${i}`;
    thirds[Math.min(Math.floor(keySlot(k) * 3 / 16384), 2)].push(k);
  }
  return Array.from({ length: n }, (_, j) => thirds[j % 3][Math.floor(j / 3)]);
}

// ---- the two libraries behind one small interface ---------------------------------
// cmd(argv): a command as the library sends any command (node-redis
// sendCommand, ioredis call); the checks use the libraries' own API where it
// differs (pipelines, transactions, WATCH, pub/sub, connection options).

let host = null, port = null, sock = null;
if (o.address) {
  if (o.address.startsWith('/')) {
    sock = o.address;
  } else {
    const m = /^(.+):(\d+)$/.exec(o.address);
    if (!m) usage(`${o.address} is neither HOST:PORT nor a socket path`);
    host = m[1];
    port = Number(m[2]);
  }
  if (o.cluster && sock) usage('--cluster is TCP only');
}

async function connect(extra = {}) {
  const auth = { username: o.user || undefined, password: o.password || undefined };
  const a = Object.assign({}, auth, extra);
  if (a.username === undefined) delete a.username;
  if (a.password === undefined) delete a.password;
  if (o.lib === 'redis') {
    const { createClient } = require('redis');
    const socket = Object.assign({ connectTimeout: CONNECT_MS, reconnectStrategy: false },
      sock ? { path: sock } : { host, port });
    const c = createClient(Object.assign({ socket }, a));
    c.on('error', () => {}); // the failing call reports it
    await within(c.connect(), CONNECT_MS + 1000, 'connect');
    return {
      lib: c,
      cmd: (argv) => c.sendCommand(argv.map(String)),
      close: () => c.destroy(),
    };
  }
  const Redis = require('ioredis');
  const common = { connectTimeout: CONNECT_MS, commandTimeout: 15000, maxRetriesPerRequest: 0,
    retryStrategy: () => null, lazyConnect: true };
  let c;
  if (o.cluster) {
    c = new Redis.Cluster([{ host, port }], {
      redisOptions: Object.assign({}, common, a), clusterRetryStrategy: () => null,
      enableOfflineQueue: true, lazyConnect: true,
    });
  } else {
    c = new Redis(Object.assign({}, common, a, sock ? { path: sock } : { host, port }));
  }
  // ioredis closes a connection whose AUTH failed and rejects connect() with
  // "Connection is closed.": the server's error comes as an event
  const seen = [];
  c.on('error', (e) => seen.push(e));
  c.on('node error', (e) => seen.push(e));
  try {
    await within(c.connect(), CONNECT_MS + 1000, 'connect');
  } catch (e) {
    const last = e.lastNodeError ? [e.lastNodeError] : [];
    throw new Error([e, ...last, ...seen].map((x) => String(x && x.message || x)).join(' / '));
  }
  return {
    lib: c,
    cmd: (argv) => c.call(...argv.map(String)),
    close: () => c.disconnect(),
  };
}

// ---- the checks ------------------------------------------------------------------

const P = o.prefix || `nc:${process.pid}:${Date.now() % 1000000}:`;
const written = new Set();
const k = (name) => { written.add(P + name); return P + name; };
let r; // the main client

const checks = {};

checks.strings = async () => {
  const a = k('s:a'), n = k('s:n'), t = k('s:t');
  same('PING', 'PONG', await r.cmd(['PING']));
  same('ECHO', 'hi there', await r.cmd(['ECHO', 'hi there']));
  same('SET', 'OK', await r.cmd(['SET', a, 'hello']));
  same('GET', 'hello', await r.cmd(['GET', a]));
  same('SET NX on an existing key', null, await r.cmd(['SET', a, 'x', 'NX']));
  same('APPEND', 11, await r.cmd(['APPEND', a, ' world']));
  same('GETRANGE', 'world', await r.cmd(['GETRANGE', a, 6, -1]));
  same('INCR of a new key', 1, await r.cmd(['INCR', n]));
  same('INCRBY', 43, await r.cmd(['INCRBY', n, 42]));
  same('INCRBYFLOAT', '43.5', await r.cmd(['INCRBYFLOAT', n, 0.5]));
  await fails('INCR of a non-integer', () => r.cmd(['INCR', a]), ['not an integer']);
  same('SETEX', 'OK', await r.cmd(['SETEX', t, 100, 'v']));
  const ttl = await r.cmd(['TTL', t]);
  truthy('TTL after SETEX 100', ttl >= 90 && ttl <= 100, ttl);
  same('GET of a missing key', null, await r.cmd(['GET', k('s:none')]));
  same('GETDEL', 'v', await r.cmd(['GETDEL', t]));
  same('EXISTS after GETDEL', 0, await r.cmd(['EXISTS', t]));
  // the libraries' own methods too
  const c = r.lib;
  same('set()', 'OK', await c.set(a, 'again'));
  same('get()', 'again', await c.get(a));
};

checks.hashes = async () => {
  const h = k('h'), c = r.lib;
  same('HSET', 3, await r.cmd(['HSET', h, 'f1', 'a', 'f2', 'b', 'n', '5']));
  const all = o.lib === 'redis' ? await c.hGetAll(h) : await c.hgetall(h);
  same('HGETALL', { f1: 'a', f2: 'b', n: '5' }, Object.assign({}, all));
  same('HMGET', ['b', null, 'a'], await r.cmd(['HMGET', h, 'f2', 'zz', 'f1']));
  same('HINCRBY', 12, await r.cmd(['HINCRBY', h, 'n', 7]));
  same('HDEL', 1, await r.cmd(['HDEL', h, 'f2', 'zz']));
  same('HLEN', 2, await r.cmd(['HLEN', h]));
};

checks.lists = async () => {
  const l = k('l');
  same('RPUSH', 3, await r.cmd(['RPUSH', l, 'b', 'c', 'd']));
  same('LPUSH', 4, await r.cmd(['LPUSH', l, 'a']));
  same('LRANGE', ['a', 'b', 'c', 'd'], await r.cmd(['LRANGE', l, 0, -1]));
  same('LPOP', 'a', await r.cmd(['LPOP', l]));
  same('RPOP count', ['d', 'c'], await r.cmd(['RPOP', l, 2]));
  same('LLEN', 1, await r.cmd(['LLEN', l]));
};

checks.sets = async () => {
  const tag = `{${P}set}`;
  const a = k(tag + 'a'), b = k(tag + 'b');
  same('SADD', 3, await r.cmd(['SADD', a, 'x', 'y', 'z']));
  same('SMEMBERS', ['x', 'y', 'z'], (await r.cmd(['SMEMBERS', a])).sort());
  same('SISMEMBER', 1, await r.cmd(['SISMEMBER', a, 'y']));
  await r.cmd(['SADD', b, 'y', 'q']);
  same('SINTER (one slot)', ['y'], await r.cmd(['SINTER', a, b]));
  same('SDIFF (one slot)', ['x', 'z'], (await r.cmd(['SDIFF', a, b])).sort());
};

checks.sorted_sets = async () => {
  const z = k('z');
  same('ZADD', 3, await r.cmd(['ZADD', z, 1, 'a', 2, 'b', 3, 'c']));
  same('ZRANGE WITHSCORES', ['a', '1', 'b', '2', 'c', '3'],
    await r.cmd(['ZRANGE', z, 0, -1, 'WITHSCORES']));
  same('ZINCRBY', '5.5', await r.cmd(['ZINCRBY', z, 4.5, 'a']));
  same('ZSCORE', '5.5', await r.cmd(['ZSCORE', z, 'a']));
  same('ZREVRANGE', ['a', 'c', 'b'], await r.cmd(['ZREVRANGE', z, 0, -1]));
  same('ZPOPMIN', ['b', '2'], await r.cmd(['ZPOPMIN', z]));
};

// multi-key commands over keys on every master: replies in the client's order
checks.multikey = async () => {
  const keys = spreadKeys(P + 'mk:', 12);
  keys.forEach((x) => written.add(x));
  const thirds = new Set(keys.map((x) => Math.floor(keySlot(x) * 3 / 16384)));
  same('keys on 3 thirds of the slots', 3, thirds.size);
  same('MSET', 'OK', await r.cmd(['MSET', ...keys.flatMap((x) => [x, 'v' + x])]));
  const order = keys.slice().reverse();
  const missing = k('mk:missing');
  const c = r.lib;
  const asked = [...order.slice(0, 5), missing, ...order.slice(5)];
  const got = o.lib === 'redis' ? await c.mGet(asked) : await c.mget(asked);
  same('MGET in order', asked.map((x) => (x === missing ? null : 'v' + x)), got);
  same('EXISTS counts each name', 13, await r.cmd(['EXISTS', ...keys, keys[0], missing]));
  await fails('MSETNX over two slots', () => r.cmd(['MSETNX', keys[0], 'x', keys[1], 'x']),
    ['CROSSSLOT']);
  same('DEL', 4, await r.cmd(['DEL', ...keys.slice(0, 4)]));
  same('MGET after', [...Array(4).fill(null), ...keys.slice(4).map((x) => 'v' + x)],
    await r.cmd(['MGET', ...keys]));
  same('DEL the rest', 8, await r.cmd(['DEL', ...keys]));
};

// a pipeline of 300 commands over every master, replies in order, an error in
// its place
checks.pipeline = async () => {
  const keys = spreadKeys(P + 'pl:', 60);
  keys.forEach((x) => written.add(x));
  const c = r.lib;
  const want = [];
  const p = o.lib === 'redis' ? c.multi() : c.pipeline();
  keys.forEach((x, i) => {
    p.set(x, String(i)); want.push('OK');
    if (o.lib === 'redis') p.incr(x); else p.incr(x);
    want.push(i + 1);
    p.get(x); want.push(String(i + 1));
    if (o.lib === 'redis') p.incrBy(x, i); else p.incrby(x, i);
    want.push(2 * i + 1);
    p.append(x, 'x'); want.push(String(2 * i + 1).length + 1);
  });
  // [[error, reply], ...] as ioredis gives; node-redis's execAsPipeline
  // rejects on the first error, so there the commands go in one tick
  // (node-redis writes them together) and are settled one by one
  const replies = async (pl) => (o.lib === 'redis' ? (await pl.execAsPipeline()).map((v) =>
    [null, v]) : pl.exec());
  const got = await replies(p);
  same('pipeline length', want.length, got.length);
  got.forEach(([err, v], i) => {
    if (err) throw new Error(`pipeline reply ${i}: error ${err.message}`);
    same(`pipeline reply ${i}`, want[i], v);
  });
  // an error in the middle stays in its place
  let r0, r1, r2;
  if (o.lib === 'redis') {
    const settled = await Promise.allSettled([c.set(keys[0], '1'), c.incr(keys[1]),
      c.get(keys[0])]); // keys[1] is "3x": not an integer
    [r0, r1, r2] = settled.map((x) => (x.status === 'fulfilled' ? [null, x.value]
      : [x.reason, null]));
  } else {
    const q = c.pipeline();
    q.set(keys[0], '1');
    q.incr(keys[1]); // "3x": not an integer
    q.get(keys[0]);
    [r0, r1, r2] = await replies(q);
  }
  same('pipeline with an error: first', [null, 'OK'], r0);
  truthy('pipeline with an error: second is the error',
    r1[0] && /not an integer/.test(r1[0].message), String(r1[0] || r1[1]));
  same('pipeline with an error: third', [null, '1'], r2);
  same('MGET after the pipeline', ['1', '3x', '5x'], await r.cmd(['MGET', ...keys.slice(0, 3)]));
  // node-redis and ioredis also pipeline concurrent calls on one connection
  const many = await Promise.all(keys.map((x) => r.cmd(['GET', x])));
  same('concurrent GETs', keys.slice(0, 3).map((_, i) => ['1', '3x', '5x'][i]),
    many.slice(0, 3));
  same('DEL', 60, await r.cmd(['DEL', ...keys]));
};

// MULTI/EXEC on one slot; WATCH and another client's change abort EXEC
checks.transactions = async () => {
  const tag = `{${P}tx}`;
  const a = k(tag + 'a'), b = k(tag + 'b');
  const c = r.lib;
  if (o.lib === 'redis') {
    same('MULTI/EXEC replies', ['OK', 15, '15', 2, ['x', 'y']],
      await c.multi().set(a, '10').incrBy(a, 5).get(a).rPush(b, ['x', 'y'])
        .lRange(b, 0, -1).exec());
    let e1;
    try { await c.multi().set(a, '1').incr(b).get(a).exec(); } catch (e) { e1 = e; }
    truthy('EXEC with a WRONGTYPE inside fails as a whole in node-redis', e1 && e1.replies,
      String(e1));
    same('EXEC with a WRONGTYPE inside: first and third', ['OK', '1'],
      [e1.replies[0], e1.replies[2]]);
    truthy('EXEC with a WRONGTYPE inside: second', /^WRONGTYPE/.test(e1.replies[1].message),
      String(e1.replies[1]));
  } else {
    same('MULTI/EXEC replies', [[null, 'OK'], [null, 15], [null, '15'], [null, 2],
      [null, ['x', 'y']]],
    await c.multi().set(a, '10').incrby(a, 5).get(a).rpush(b, 'x', 'y').lrange(b, 0, -1).exec());
    const got = await c.multi().set(a, '1').incr(b).get(a).exec();
    same('EXEC with a WRONGTYPE inside: first and third', [[null, 'OK'], [null, '1']],
      [got[0], got[2]]);
    truthy('EXEC with a WRONGTYPE inside: second', got[1][0] && /^WRONGTYPE/.test(
      got[1][0].message), JSON.stringify(got[1]));
  }
  // WATCH with no change: EXEC runs; WATCH and another client's SET: EXEC aborts
  const w = await connect(); // a connection of its own for WATCH
  const other = await connect();
  try {
    const wc = w.lib;
    same('WATCH', 'OK', await wc.watch(a));
    const exec1 = o.lib === 'redis' ? await wc.multi().set(a, '2').exec()
      : await wc.multi().set(a, '2').exec();
    same('EXEC after WATCH, nothing changed', o.lib === 'redis' ? ['OK'] : [[null, 'OK']], exec1);
    same('WATCH again', 'OK', await wc.watch(a));
    same("the other client's SET", 'OK', await other.cmd(['SET', a, '100']));
    if (o.lib === 'redis') {
      await fails('EXEC after a concurrent change', () => wc.multi().set(a, '3').exec(),
        ['watched keys']); // node-redis's WatchError for EXEC's null reply
    } else {
      same('EXEC after a concurrent change', null, await wc.multi().set(a, '3').exec());
    }
    same("the key keeps the other client's value", '100', await r.cmd(['GET', a]));
  } finally {
    w.close();
    other.close();
  }
  // keys of two slots in one transaction: CROSSSLOT, nothing applied
  const x = k('tx:other');
  if (!o.cluster) { // ioredis Cluster refuses it itself, before sending
    // as a cluster's node: the queued command is refused, EXEC says EXECABORT
    let err;
    try {
      await c.multi().set(a, 'cross').set(x, 'cross').exec();
    } catch (e) {
      err = e;
    }
    truthy('MULTI with keys in two slots fails', err, 'EXEC ran');
    const why = [err.message, ...(err.replies || err.previousErrors || []).map((e) =>
      String(e && e.message))].join(' / ');
    truthy('MULTI with keys in two slots: CROSSSLOT', /CROSSSLOT/.test(why), why);
  }
  same('nothing applied', ['100', null], [await r.cmd(['GET', a]), await r.cmd(['GET', x])]);
  same('the connection still works', 'PONG', await r.cmd(['PING']));
};

checks.crossslot = async () => {
  const [a, b] = spreadKeys(P + 'cs:', 2);
  written.add(a); written.add(b);
  await r.cmd(['SET', a, '1']);
  await fails('SUNION over two slots', () => r.cmd(['SUNION', a, b]), ['CROSSSLOT']);
  await fails('RENAME over two slots', () => r.cmd(['RENAME', a, b]), ['CROSSSLOT']);
  same('the key is untouched', '1', await r.cmd(['GET', a]));
};

// BLPOP blocks until another client pushes; a third is served meanwhile
checks.blocking = async () => {
  const key = k('bl');
  const blocker = await connect(), pusher = await connect();
  try {
    let done = false;
    const t0 = Date.now();
    const popped = blocker.cmd(['BLPOP', key, 8]).finally(() => { done = true; });
    popped.catch(() => {});
    await sleep(300);
    truthy('BLPOP returned before the push', !done);
    for (let i = 0; i < 20; i++) same('GET while BLPOP blocks', null, await r.cmd(['GET', key]));
    same('RPUSH from another client', 1, await pusher.cmd(['RPUSH', key, 'item']));
    same('BLPOP reply', [key, 'item'], await within(popped, 10000, 'BLPOP'));
    const secs = (Date.now() - t0) / 1000;
    truthy(`BLPOP waited for the push (${secs} s)`, secs > 0.25 && secs < 7);
    same('BLPOP timing out', null, await blocker.cmd(['BLPOP', k('bl:none'), '0.2']));
    same('the blocking client is served after', 'PONG', await blocker.cmd(['PING']));
  } finally {
    blocker.close();
    pusher.close();
  }
};

checks.pubsub = async () => {
  const chan = P + 'chan', pat = P + 'pat.*';
  const got = [];
  const sub = await connect();
  try {
    const s = sub.lib;
    if (o.lib === 'redis') {
      await s.subscribe(chan, (m, ch) => got.push(['message', ch, m]));
      await s.pSubscribe(pat, (m, ch) => got.push(['pmessage', ch, m]));
    } else {
      s.on('message', (ch, m) => got.push(['message', ch, m]));
      s.on('pmessage', (pt, ch, m) => got.push(['pmessage', ch, m, pt]));
      same('SUBSCRIBE count', 1, await s.subscribe(chan));
      same('PSUBSCRIBE count', 2, await s.psubscribe(pat));
    }
    const n = await r.cmd(['PUBLISH', chan, 'hello']);
    truthy('PUBLISH returns a count', typeof n === 'number', n);
    await waitFor(() => got.length >= 1, 5000, 'the message');
    same('message', ['message', chan, 'hello'], got[0]);
    await r.cmd(['PUBLISH', P + 'pat.x', 'by pattern']);
    await waitFor(() => got.length >= 2, 5000, 'the message by pattern');
    same('pmessage', ['pmessage', P + 'pat.x', 'by pattern'], got[1].slice(0, 3));
    for (let i = 0; i < 20; i++) await r.cmd(['PUBLISH', chan, `m${i}`]);
    await waitFor(() => got.length >= 22, 5000, '20 messages');
    same('20 messages in order', Array.from({ length: 20 }, (_, i) => `m${i}`),
      got.slice(2).map((m) => m[2]));
    if (o.lib === 'redis') await s.unsubscribe(chan); else await s.unsubscribe(chan);
    await r.cmd(['PUBLISH', chan, 'after']);
    await sleep(200);
    same('nothing after UNSUBSCRIBE', 22, got.length);
  } finally {
    sub.close();
  }
};

checks.client_name = async () => {
  const name = 'nc-' + o.lib + '-' + P.replace(/[^A-Za-z0-9]/g, '');
  same('CLIENT SETNAME', 'OK', await r.cmd(['CLIENT', 'SETNAME', name]));
  same('CLIENT GETNAME', name, await r.cmd(['CLIENT', 'GETNAME']));
  const info = await r.cmd(['CLIENT', 'INFO']);
  truthy('CLIENT INFO names the client', info.includes(` name=${name} `), info);
  truthy('CLIENT INFO names the user', info.includes(` user=${o.user || 'default'} `), info);
  const named = await connect(o.lib === 'redis' ? { name: 'nc-opt' }
    : { connectionName: 'nc-opt' });
  try {
    same('the name given in the options', 'nc-opt', await named.cmd(['CLIENT', 'GETNAME']));
  } finally {
    named.close();
  }
};

checks.refused = async () => {
  for (const [argv, name] of [[['WAIT', 0, 0], 'WAIT'], [['DEBUG', 'SLEEP', '0'], 'DEBUG'],
    [['CLUSTER', 'FAILOVER'], 'CLUSTER'], [['NOSUCHCMD', 'x'], 'nosuchcmd']]) {
    const msg = await fails(argv.join(' '), () => r.cmd(argv), []);
    truthy(`the error for ${name} names it`, msg.toLowerCase().includes(name.toLowerCase()), msg);
  }
  same('served after the refusals', 'PONG', await r.cmd(['PING']));
};

checks.large = async () => {
  const keys = spreadKeys(P + 'big:', 3);
  keys.forEach((x) => written.add(x));
  const crypto = require('crypto');
  const vals = keys.map(() => crypto.randomBytes(1 << 20));
  const c = r.lib;
  await Promise.all(keys.map((x, i) => c.set(x, vals[i])));
  let got;
  if (o.lib === 'redis') {
    const { RESP_TYPES } = require('redis');
    got = await c.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).mGet(keys);
  } else {
    got = await c.mgetBuffer(keys);
  }
  truthy('MGET of three 1 MB values on three masters',
    got.every((v, i) => Buffer.isBuffer(v) && v.equals(vals[i])),
    `lengths ${got.map((v) => (v ? v.length : null))}`);
  same('STRLEN', 1 << 20, await r.cmd(['STRLEN', keys[0]]));
  same('DEL', 3, await r.cmd(['DEL', ...keys]));
};

// users: a wrong password and no password are refused (only with --user)
checks.auth = async () => {
  const msg = await fails('a wrong password', () => connect({ password: 'wrong-' + o.password }),
    []);
  truthy('a wrong password is WRONGPASS or invalid', /WRONGPASS|invalid/i.test(msg), msg);
  let anon;
  try {
    anon = await connect({ username: undefined, password: undefined });
  } catch (e) { // ioredis's ready check (INFO) is refused at connect
    truthy('no password, refused at connect: NOAUTH', /NOAUTH/.test(e.message), e.message);
    anon = null;
  }
  if (anon) {
    try {
      await fails('no password', () => anon.cmd(['GET', k('auth')]), ['NOAUTH']);
    } finally {
      anon.close();
    }
  }
  same('the right one', 'PONG', await r.cmd(['PING']));
};

// scripts/tenant_prefix.lua: keys live under tenant:USER:, EVAL and SCAN refused
checks.tenant = async () => {
  const mark = P + 'tenant-mark'; // the spec looks for it on the cluster; not deleted
  same('SET through the policy', 'OK', await r.cmd(['SET', mark, 'marked by ' + o.tenant]));
  same('GET through the policy', 'marked by ' + o.tenant, await r.cmd(['GET', mark]));
  const tx = P + 'tenant-mark-tx';
  const w = await connect();
  try {
    const c = w.lib;
    same('WATCH', 'OK', await c.watch(tx));
    same('GET under WATCH', null, await c.get(tx));
    const got = await c.multi().set(tx, 'tx by ' + o.tenant).get(tx).exec();
    same('EXEC through the policy', o.lib === 'redis' ? ['OK', 'tx by ' + o.tenant]
      : [[null, 'OK'], [null, 'tx by ' + o.tenant]], got);
  } finally {
    w.close();
  }
  same("GET of the transaction's key", 'tx by ' + o.tenant, await r.cmd(['GET', tx]));
  for (const [argv, name] of [[['EVAL', 'return 1', 0], 'EVAL'], [['SCAN', 0], 'SCAN'],
    [['KEYS', '*'], 'KEYS']]) {
    await fails(`${name} under tenant_prefix`, () => r.cmd(argv), ['tenant_prefix', name]);
  }
  await fails('a key naming a namespace', () => r.cmd(['GET', 'tenant:someone:' + mark]),
    ['tenant_prefix']);
};

// ioredis in Cluster mode: slotgated is a cluster of one node owning every slot
checks.cluster = async () => {
  const c = r.lib;
  const slots = await c.cluster('SLOTS');
  same('CLUSTER SLOTS: one range', 1, slots.length);
  same('CLUSTER SLOTS: all the slots', [0, 16383], slots[0].slice(0, 2));
  same('CLUSTER SLOTS: the node is the address given', [host, port], slots[0][2].slice(0, 2));
  const nodes = c.nodes('master');
  same('ioredis sees one master', 1, nodes.length);
  same("that master's address", `${host}:${port}`,
    `${nodes[0].options.host}:${nodes[0].options.port}`);
  same('ioredis Cluster is ready', 'ready', c.status);
  // keys of every slot third go to the one node: no MOVED, no error
  const keys = spreadKeys(P + 'cl:', 9);
  keys.forEach((x) => written.add(x));
  for (const x of keys) same(`SET ${x}`, 'OK', await c.set(x, x));
  same('MGET over three thirds of the slots', keys, await c.mget(keys));
  const p = c.pipeline();
  keys.forEach((x) => p.get(x));
  same('a pipeline over every slot third', keys.map((x) => [null, x]), await p.exec());
  same('DEL', 9, await c.del(...keys));
};

// node-redis 5's own client-side cache (RESP3, CLIENT TRACKING answered by
// slotgated): a second GET comes from the library's memory, a write made
// straight on the cluster (past slotgated) invalidates it, and the next GET
// reads the new value. Under --tenant the write names the key as the node
// stores it (tenant:USER:key); slotgated tells the library the name it read.
checks.client_cache = async () => {
  const key = k('csc');
  const { createCluster } = require('redis');
  const c = await connect({ RESP: 3, clientSideCache: { ttl: 0, maxEntries: 0 } });
  const direct = createCluster({ rootNodes: [{ url: `redis://${o.direct}` }] });
  direct.on('error', () => {});
  try {
    await within(direct.connect(), CONNECT_MS + 1000, 'connect to the cluster');
    const cache = c.lib.clientSideCache;
    truthy('node-redis made its cache', cache);
    same('SET', 'OK', await c.lib.set(key, 'v1'));
    // slotgated opens its invalidation connections with the first tracking
    // client: a read before they are ready is followed by a flush (which
    // empties the library's cache), so read until a second GET is a hit
    let hit = false;
    for (const until = Date.now() + 5000; !hit && Date.now() < until;) {
      const h0 = cache.stats().hitCount;
      same('GET', 'v1', await c.lib.get(key));
      same('GET again', 'v1', await c.lib.get(key));
      hit = cache.stats().hitCount > h0;
      if (!hit) await sleep(20);
    }
    truthy('a second GET answered from the library\'s cache', hit);
    let told = false;
    cache.on('invalidate', (x) => { if (x === null || String(x) === key) told = true; });
    const stored = o.tenant ? `tenant:${o.tenant}:${key}` : key;
    same('SET straight on the cluster', 'OK', await direct.set(stored, 'v2'));
    await waitFor(() => told, 5000, 'the invalidation of the direct write');
    same('GET after the direct write', 'v2', await c.lib.get(key));
  } finally {
    c.close();
    direct.destroy();
  }
};

function selected() {
  let names = ['strings', 'hashes', 'lists', 'sets', 'sorted_sets', 'multikey', 'pipeline',
    'transactions', 'crossslot', 'blocking', 'pubsub', 'client_name', 'refused', 'large',
    'auth', 'tenant', 'cluster', 'client_cache'];
  if (!o.user && !o.password) names = names.filter((n) => n !== 'auth');
  if (!o.tenant) names = names.filter((n) => n !== 'tenant');
  if (!o.cluster) names = names.filter((n) => n !== 'cluster');
  if (!o.direct) names = names.filter((n) => n !== 'client_cache');
  return names;
}

async function main() {
  if (o.list) {
    console.log(selected().join('\n'));
    return 0;
  }
  if (!o.address) usage('no ADDRESS');
  try {
    r = await connect();
  } catch (e) {
    console.log(`FAIL setup: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
    return 1;
  }
  let failed = 0;
  for (const name of selected()) {
    try {
      await within(checks[name](), CHECK_MS, name);
      console.log(`ok ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
    }
  }
  try {
    const keys = [...written];
    for (let i = 0; i < keys.length; i += 100) {
      if (o.cluster) {
        for (const x of keys.slice(i, i + 100)) await within(r.cmd(['DEL', x]), 5000, 'DEL');
      } else {
        await within(r.cmd(['DEL', ...keys.slice(i, i + 100)]), 5000, 'cleanup DEL');
      }
    }
  } catch (e) {
    failed++;
    console.log(`FAIL cleanup: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
  }
  r.close();
  return failed ? 1 : 0;
}

main().then((code) => {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 500).unref(); // a leftover socket does not keep us
}, (e) => {
  console.log(`FAIL setup: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
  process.exit(1);
});
