// csc_checks.js — node-redis 5's client-side cache (clientSideCache, RESP3,
// CLIENT TRACKING on the command connection) through slotgated: a write's
// reply comes after the cache was told, so a read after it never gets the
// old copy, on the same connection, from a pool, or from another client.
// Each check prints `ok NAME` or `FAIL NAME: reason`, one line each;
// tests/lua/slotgated_tracking_writes_spec.lua makes each line a test.
//
//   node tests/node/csc_checks.js [--list] PORT PREFIX
//
// Exits 1 when a check failed.
'use strict';
const { createClient, createClientPool } = require('redis');

const list = process.argv.includes('--list');
const [port, prefix] = process.argv.slice(2).filter((a) => a !== '--list');
const url = `redis://127.0.0.1:${port}`;
const k = (name) => `${prefix}${name}`;
const ROUNDS = 200;
const socket = { connectTimeout: 5000, reconnectStrategy: false };
const cacheConfig = () => ({ ttl: 0, maxEntries: 0, evictPolicy: 'LRU' });

function same(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, expected ${w}`);
}

// The reads must have been cache hits between the writes, else the check
// proves nothing.
function usedCache(cache, what) {
  if (cache.stats().hitCount < ROUNDS) {
    throw new Error(`${what}: ${cache.stats().hitCount} cache hits, the cache was not used`);
  }
}

const checks = [
  ['set then get', async () => {
    const c = createClient({ url, RESP: 3, socket, clientSideCache: cacheConfig() });
    c.on('error', () => {});
    await c.connect();
    try {
      for (let i = 0; i < ROUNDS; i++) {
        await c.set(k('one'), `v${i}`);
        same(await c.get(k('one')), `v${i}`, `round ${i}`);
        same(await c.get(k('one')), `v${i}`, `round ${i}, again`); // a hit
      }
      usedCache(c.clientSideCache, 'the client');
    } finally {
      await c.del(k('one'));
      await c.quit();
    }
  }],
  ['pool set then get', async () => {
    const pool = createClientPool({ url, RESP: 3, socket },
                                  { clientSideCache: cacheConfig(), minimum: 4, maximum: 4 });
    pool.on('error', () => {});
    await pool.connect();
    try {
      for (let i = 0; i < ROUNDS; i++) {
        await pool.set(k('pool'), `v${i}`);
        // several at once: they take different connections of the pool
        for (const again of ['', ', again']) { // the second from the cache
          const got = await Promise.all([0, 1, 2, 3].map(() => pool.get(k('pool'))));
          same(got, [0, 1, 2, 3].map(() => `v${i}`), `round ${i}${again}`);
        }
      }
      usedCache(pool.clientSideCache, 'the pool');
    } finally {
      await pool.del(k('pool'));
      await pool.close();
    }
  }],
  ['another client', async () => {
    // two clients, each its own cache and connection (with two worker
    // threads, often served by different ones)
    const cs = [0, 1].map(() => createClient({ url, RESP: 3, socket,
                                               clientSideCache: cacheConfig() }));
    for (const c of cs) { c.on('error', () => {}); await c.connect(); }
    const [writer, reader] = cs;
    try {
      for (let i = 0; i < ROUNDS; i++) {
        await writer.set(k('two'), `v${i}`);
        same(await reader.get(k('two')), `v${i}`, `round ${i}`);
        same(await reader.get(k('two')), `v${i}`, `round ${i}, again`);
      }
      usedCache(reader.clientSideCache, 'the reader');
    } finally {
      await writer.del(k('two'));
      for (const c of cs) await c.quit();
    }
  }],
];

async function main() {
  if (list) {
    for (const [name] of checks) console.log(name);
    return;
  }
  for (const [name, fn] of checks) {
    try {
      await fn();
      console.log(`ok ${name}`);
    } catch (e) {
      console.log(`FAIL ${name}: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
      process.exitCode = 1;
    }
  }
}

main().catch((e) => {
  console.log(`FAIL setup: ${String(e && e.message || e).replace(/\n/g, ' ')}`);
  process.exitCode = 1;
});
