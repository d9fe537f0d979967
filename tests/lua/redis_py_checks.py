#!/usr/bin/python3
"""redis_py_checks.py ADDRESS [options] — slotgated driven by redis-py.

A client library that is not ours (redis-py 4.x, Debian's python3-redis) runs
its ordinary API against a slotgated in front of a Redis Cluster, and every
check asserts what a plain Redis would have answered. ADDRESS is HOST:PORT
or the path of a Unix socket (or unix:PATH).

Options:
  --user NAME --password PASS   authenticate (AUTH NAME PASS; without --user,
                                AUTH PASS); adds the `auth` check
  --prefix P                    the prefix of every key written (default: a
                                fresh one); keys are deleted at the end
  --tenant USER                 the daemon runs scripts/tenant_prefix.lua:
                                adds the `tenant` check and leaves out the
                                checks of what it refuses (eval, scan)
  --only NAMES / --skip NAMES   comma-separated check names
  --list                        print the names of the checks the other
                                options select, one a line, and exit

Prints one line per check, `ok NAME` or `FAIL NAME: reason`, and exits 1
when any failed (2 on bad usage). Every call is bounded (socket timeouts),
so a gateway that stops answering fails a check instead of hanging.
Run it with /usr/bin/python3 (Debian's), which has the module.
"""
import argparse
import os
import sys
import threading
import time
import traceback

try:
    import redis
except ImportError as e:  # the spec turns this into its own failure
    print("FAIL import: no redis module (%s): run tools/install-deps.sh "
          "(python3-redis) and use /usr/bin/python3" % e)
    sys.exit(3)

TIMEOUT = 10.0


class CheckFailed(Exception):
    pass


def expect(what, want, got):
    if want != got:
        raise CheckFailed("%s: expected %r, got %r" % (what, want, got))


def expect_true(what, cond, detail=""):
    if not cond:
        raise CheckFailed("%s%s" % (what, (": " + detail) if detail else ""))


def expect_error(what, fn, cls, needles):
    """fn() must raise cls with every string of needles in its message."""
    try:
        got = fn()
    except cls as e:
        msg = str(e)
        for n in needles:
            if n not in msg:
                raise CheckFailed("%s: error %r does not name %r" % (what, msg, n))
        return msg
    except Exception as e:
        raise CheckFailed("%s: expected %s, got %s: %s" % (what, cls.__name__,
                                                          type(e).__name__, e))
    raise CheckFailed("%s: expected %s, got the reply %r" % (what, cls.__name__, got))


# ---- the slot rule (as Redis's keyHashSlot), to pick keys on different slots ----

def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key):
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s != -1:
        e = k.find(b"}", s + 1)
        if e != -1 and e != s + 1:  # a non-empty tag decides the slot
            k = k[s + 1:e]
    return crc16(k) % 16384


def spread_keys(prefix, n):
    """n keys whose slots fall in each third of the slot range (so on every
    master of a 3-master cluster made by redis-cli), round robin."""
    thirds = [[], [], []]
    i = 0
    while min(len(t) for t in thirds) < (n + 2) // 3:
        k = "%s%d" % (prefix, i)
        thirds[min(key_slot(k) * 3 // 16384, 2)].append(k)
        i += 1
    out = []
    for j in range(n):
        out.append(thirds[j % 3][j // 3])
    return out


# ---- the checks ------------------------------------------------------------------

class Checks:
    def __init__(self, opts):
        self.o = opts
        self.p = opts.prefix
        self.written = set()  # keys to delete at the end

    def client(self, decode=True, **kw):
        a = dict(username=self.o.user, password=self.o.password,
                 socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                 decode_responses=decode)
        a.update(kw)
        if self.o.unix:
            return redis.Redis(unix_socket_path=self.o.unix, **a)
        return redis.Redis(host=self.o.host, port=self.o.port, **a)

    def k(self, name):
        key = self.p + name
        self.written.add(key)
        return key

    def setup(self):
        self.r = self.client()
        self.rb = self.client(decode=False)

    def cleanup(self):
        keys = sorted(self.written)
        for i in range(0, len(keys), 100):
            self.r.delete(*keys[i:i + 100])

    # strings: SET/GET/INCR/APPEND/SETEX+TTL
    def check_strings(self):
        r = self.r
        a, n, t = self.k("s:a"), self.k("s:n"), self.k("s:t")
        expect("PING", True, r.ping())
        expect("ECHO", "hi there", r.echo("hi there"))
        expect("SET", True, r.set(a, "hello"))
        expect("GET", "hello", r.get(a))
        expect("SET NX on an existing key", None, r.set(a, "x", nx=True))
        expect("APPEND", 11, r.append(a, " world"))
        expect("GET after APPEND", "hello world", r.get(a))
        expect("STRLEN", 11, r.strlen(a))
        expect("GETRANGE", "world", r.getrange(a, 6, -1))
        expect("INCR of a new key", 1, r.incr(n))
        expect("INCRBY", 43, r.incrby(n, 42))
        expect("DECR", 42, r.decr(n))
        expect("INCRBYFLOAT", 42.5, r.incrbyfloat(n, 0.5))
        expect_error("INCR of a non-integer", lambda: r.incr(a), redis.ResponseError,
                     ["not an integer"])
        expect("SETEX", True, r.setex(t, 100, "v"))
        ttl = r.ttl(t)
        expect_true("TTL after SETEX 100", 90 <= ttl <= 100, "got %r" % ttl)
        expect_true("PTTL", 90000 <= r.pttl(t) <= 100000)
        expect("PERSIST", True, r.persist(t))
        expect("TTL after PERSIST", -1, r.ttl(t))
        expect("GET of a missing key", None, r.get(self.k("s:none")))
        expect("GETSET", "v", r.getset(t, "w"))
        expect("GETDEL", "w", r.getdel(t))
        expect("EXISTS after GETDEL", 0, r.exists(t))

    def check_hashes(self):
        r = self.r
        h = self.k("h")
        expect("HSET mapping", 3, r.hset(h, mapping={"f1": "a", "f2": "b", "n": "5"}))
        expect("HGET", "a", r.hget(h, "f1"))
        expect("HGET missing field", None, r.hget(h, "zz"))
        expect("HGETALL", {"f1": "a", "f2": "b", "n": "5"}, r.hgetall(h))
        expect("HMGET", ["b", None, "a"], r.hmget(h, ["f2", "zz", "f1"]))
        expect("HINCRBY", 12, r.hincrby(h, "n", 7))
        expect("HEXISTS", True, r.hexists(h, "f2"))
        expect("HDEL", 1, r.hdel(h, "f2", "zz"))
        expect("HLEN", 2, r.hlen(h))
        expect("HKEYS", ["f1", "n"], sorted(r.hkeys(h)))
        expect("HSETNX existing", False, r.hsetnx(h, "f1", "x"))

    def check_lists(self):
        r = self.r
        l = self.k("l")
        expect("RPUSH", 3, r.rpush(l, "b", "c", "d"))
        expect("LPUSH", 4, r.lpush(l, "a"))
        expect("LRANGE", ["a", "b", "c", "d"], r.lrange(l, 0, -1))
        expect("LINDEX", "c", r.lindex(l, 2))
        expect("LLEN", 4, r.llen(l))
        expect("LPOP", "a", r.lpop(l))
        expect("RPOP count", ["d", "c"], r.rpop(l, 2))
        expect("LSET", True, r.lset(l, 0, "B"))
        expect("LRANGE after", ["B"], r.lrange(l, 0, -1))
        expect("LPOS", 0, r.lpos(l, "B"))
        expect("LREM", 1, r.lrem(l, 0, "B"))
        expect("EXISTS of an emptied list", 0, r.exists(l))

    def check_sets(self):
        r = self.r
        tag = "{%sset}" % self.p
        a, b = self.k(tag + "a"), self.k(tag + "b")
        expect("SADD", 3, r.sadd(a, "x", "y", "z"))
        expect("SADD again", 1, r.sadd(a, "x", "w"))
        expect("SMEMBERS", {"w", "x", "y", "z"}, r.smembers(a))
        expect("SISMEMBER", True, r.sismember(a, "y"))
        expect("SMISMEMBER", [True, False], r.smismember(a, ["x", "q"]))
        expect("SREM", 1, r.srem(a, "w"))
        expect("SCARD", 3, r.scard(a))
        r.sadd(b, "y", "q")
        expect("SINTER (one slot)", {"y"}, r.sinter(a, b))
        expect("SUNION (one slot)", {"x", "y", "z", "q"}, r.sunion(a, b))
        expect("SDIFF (one slot)", {"x", "z"}, r.sdiff(a, b))

    def check_sorted_sets(self):
        r = self.r
        z = self.k("z")
        expect("ZADD", 3, r.zadd(z, {"a": 1, "b": 2, "c": 3}))
        expect("ZRANGE withscores", [("a", 1.0), ("b", 2.0), ("c", 3.0)],
               r.zrange(z, 0, -1, withscores=True))
        expect("ZINCRBY", 5.5, r.zincrby(z, 4.5, "a"))
        expect("ZSCORE", 5.5, r.zscore(z, "a"))
        expect("ZRANK", 2, r.zrank(z, "a"))
        expect("ZREVRANGE", ["a", "c", "b"], r.zrevrange(z, 0, -1))
        expect("ZRANGEBYSCORE", ["b", "c"], r.zrangebyscore(z, 2, 3))
        expect("ZCOUNT", 2, r.zcount(z, "(1", 3))
        expect("ZREM", 1, r.zrem(z, "b"))
        expect("ZCARD", 2, r.zcard(z))
        expect("ZPOPMIN", [("c", 3.0)], r.zpopmin(z))

    def check_streams(self):
        r = self.r
        s = self.k("x")
        ids = [r.xadd(s, {"n": str(i)}) for i in range(5)]
        expect_true("XADD returns ids", all("-" in i for i in ids), repr(ids))
        expect("XLEN", 5, r.xlen(s))
        got = r.xrange(s)
        expect("XRANGE ids", ids, [e[0] for e in got])
        expect("XRANGE fields", [{"n": str(i)} for i in range(5)], [e[1] for e in got])
        expect("XREVRANGE count", [ids[4]], [e[0] for e in r.xrevrange(s, count=1)])
        expect("XGROUP CREATE", True, r.xgroup_create(s, "g", id="0"))
        got = r.xreadgroup("g", "c1", {s: ">"}, count=3)
        expect("XREADGROUP stream", s, got[0][0] if got else None)
        expect("XREADGROUP ids", ids[:3], [e[0] for e in got[0][1]])
        expect("XPENDING count", 3, r.xpending(s, "g")["pending"])
        expect("XACK", 2, r.xack(s, "g", ids[0], ids[1]))
        got = r.xreadgroup("g", "c2", {s: ">"})
        expect("XREADGROUP the rest", ids[3:], [e[0] for e in got[0][1]])
        expect("XREADGROUP nothing new", [], r.xreadgroup("g", "c2", {s: ">"}, block=100) or [])
        expect("XDEL", 1, r.xdel(s, ids[4]))

    # multi-key commands over keys on every master: results in the client's order
    def check_multikey(self):
        r = self.r
        keys = spread_keys(self.p + "mk:", 12)
        for k in keys:
            self.written.add(k)
        slots = {key_slot(k) * 3 // 16384 for k in keys}
        expect_true("keys on 3 thirds of the slots", len(slots) == 3, repr(slots))
        expect("MSET", True, r.mset({k: "v" + k for k in keys}))
        order = list(reversed(keys))
        missing = self.k("mk:missing")
        expect("MGET in order", ["v" + k for k in order[:5]] + [None] + ["v" + k for k in order[5:]],
               r.mget(order[:5] + [missing] + order[5:]))
        expect("EXISTS counts each name", 13, r.exists(*(keys + [keys[0], missing])))
        expect("TOUCH", 12, r.touch(*(keys + [missing])))
        # MSETNX is all or nothing: not split, so one slot only (as in a cluster)
        expect_error("MSETNX over two slots", lambda: r.msetnx({keys[0]: "x", keys[1]: "x"}),
                     redis.ResponseError, ["CROSSSLOT"])
        tag = "{%smk}" % self.p
        n1, n2 = self.k(tag + "1"), self.k(tag + "2")
        expect("MSETNX on one slot", True, r.msetnx({n1: "1", n2: "2"}))
        expect("MSETNX with one existing key", False, r.msetnx({n1: "x", tag + "3": "3"}))
        expect("MSETNX wrote nothing", [None, "1"], r.mget(self.k(tag + "3"), n1))
        expect("DEL", 4, r.delete(*keys[:4]))
        expect("UNLINK", 4, r.unlink(*(keys[4:8] + [missing])))
        expect("MGET after", [None] * 8 + ["v" + k for k in keys[8:]], r.mget(keys))
        expect("DEL the rest", 4, r.delete(*keys))
        expect("EXISTS after", 0, r.exists(*keys))

    # pipeline(transaction=False): 300 commands on every master, replies in order
    def check_pipeline(self):
        r = self.r
        keys = spread_keys(self.p + "pl:", 60)
        for k in keys:
            self.written.add(k)
        p = r.pipeline(transaction=False)
        want = []
        for i, k in enumerate(keys):
            p.set(k, i)
            want.append(True)
            p.incr(k)
            want.append(i + 1)
            p.get(k)
            want.append(str(i + 1))
            p.incrby(k, i)
            want.append(2 * i + 1)
            p.append(k, "x")
            want.append(len(str(2 * i + 1)) + 1)
        got = p.execute()
        expect("pipeline length", len(want), len(got))
        for i, (w, g) in enumerate(zip(want, got)):
            if w != g:
                raise CheckFailed("pipeline reply %d: expected %r, got %r" % (i, w, g))
        # an error in the middle stays in its place
        p = r.pipeline(transaction=False)
        p.set(keys[0], "1")
        p.incr(keys[1])  # "3x": not an integer
        p.get(keys[0])
        got = p.execute(raise_on_error=False)
        expect("pipeline with an error: first", True, got[0])
        expect_true("pipeline with an error: second is the error",
                    isinstance(got[1], redis.ResponseError), repr(got[1]))
        expect("pipeline with an error: third", "1", got[2])
        expect("MGET after the pipeline", ["1", "3x", "5x"], r.mget(keys[0], keys[1], keys[2]))
        r.delete(*keys)

    # pipeline(transaction=True) on one slot; WATCH and a concurrent change
    def check_transactions(self):
        r = self.r
        tag = "{%stx}" % self.p
        a, b = self.k(tag + "a"), self.k(tag + "b")
        p = r.pipeline(transaction=True)
        p.set(a, 10).incrby(a, 5).get(a).rpush(b, "x", "y").lrange(b, 0, -1)
        expect("MULTI/EXEC replies", [True, 15, "15", 2, ["x", "y"]], p.execute())
        # a failing command inside EXEC is an error in its place, the rest applied
        p = r.pipeline(transaction=True)
        p.set(a, "1").incr(b).get(a)
        got = p.execute(raise_on_error=False)
        expect("EXEC with a WRONGTYPE inside: first", True, got[0])
        expect_true("EXEC with a WRONGTYPE inside: second",
                    isinstance(got[1], redis.ResponseError) and "WRONGTYPE" in str(got[1]),
                    repr(got[1]))
        expect("EXEC with a WRONGTYPE inside: third", "1", got[2])
        # WATCH without a change: EXEC runs
        with r.pipeline() as p:
            p.watch(a)
            v = int(p.get(a))
            p.multi()
            p.set(a, v + 1)
            expect("EXEC after WATCH, nothing changed", [True], p.execute())
        expect("the watched key", "2", r.get(a))
        # WATCH, another client changes the key, EXEC aborts (WatchError)
        other = self.client()
        with r.pipeline() as p:
            p.watch(a)
            v = int(p.get(a))
            expect("the other client's SET", True, other.set(a, "100"))
            p.multi()
            p.set(a, v + 1)
            expect_error("EXEC after a concurrent change", p.execute, redis.WatchError, [])
        expect("the key keeps the other client's value", "100", r.get(a))
        # the same through the transaction() helper, which retries
        calls = []

        def incr(pipe):
            n = int(pipe.get(a))
            if not calls:
                other.set(a, "200")
            calls.append(n)
            pipe.multi()
            pipe.set(a, n + 1)

        r.transaction(incr, a)
        expect("transaction() retried after the change", [100, 200], calls)
        expect("transaction() result", "201", r.get(a))
        other.close()
        # keys of two slots in one transaction: CROSSSLOT, nothing applied
        c = self.k("tx:other")
        p = r.pipeline(transaction=True)
        p.set(a, "cross").set(c, "cross")
        expect_error("MULTI with keys in two slots", p.execute, redis.ResponseError, ["CROSSSLOT"])
        expect("nothing applied", ["201", None], [r.get(a), r.get(c)])
        expect("the connection still works", True, r.ping())

    def check_crossslot(self):
        r = self.r
        a, b = spread_keys(self.p + "cs:", 2)
        self.written.update([a, b])
        r.set(a, "1")
        expect_error("SUNION over two slots", lambda: r.sunion(a, b), redis.ResponseError,
                     ["CROSSSLOT"])
        expect_error("RENAME over two slots", lambda: r.rename(a, b), redis.ResponseError,
                     ["CROSSSLOT"])
        expect_error("LMOVE over two slots", lambda: r.lmove(a, b), redis.ResponseError,
                     ["CROSSSLOT"])
        expect("the key is untouched", "1", r.get(a))

    # BLPOP blocks until another client pushes; a third client is served meanwhile
    def check_blocking(self):
        key = self.k("bl")
        blocker = self.client(socket_timeout=15)
        pusher = self.client()
        third = self.client()
        third.set(self.k("bl:probe"), "p")
        out = {}

        def run():
            t0 = time.time()
            try:
                out["r"] = blocker.blpop(key, timeout=8)
            except Exception as e:  # reported below
                out["r"] = e
            out["t"] = time.time() - t0

        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.3)
        expect_true("BLPOP returned before the push", "r" not in out, repr(out.get("r")))
        t0 = time.time()
        for _ in range(50):
            expect("a third client's GET while BLPOP blocks", "p", third.get(self.k("bl:probe")))
        spent = time.time() - t0
        expect_true("50 GETs of a third client while BLPOP blocks took %.2f s" % spent, spent < 2.0)
        expect_true("BLPOP still blocking", "r" not in out, repr(out.get("r")))
        expect("RPUSH from another client", 1, pusher.rpush(key, "item"))
        th.join(12)
        expect_true("BLPOP returned", not th.is_alive())
        expect("BLPOP reply", (key, "item"), out["r"])
        expect_true("BLPOP waited for the push (%.2f s)" % out["t"], 0.25 < out["t"] < 7)
        # a timeout gives None
        expect("BLPOP timing out", None, blocker.blpop(self.k("bl:none"), timeout=0.2))
        expect("the blocking client is served after", "p", blocker.get(self.k("bl:probe")))
        for c in (blocker, pusher, third):
            c.close()

    def check_pubsub(self):
        chan = self.p + "chan"
        pat = self.p + "pat.*"
        sub = self.client()
        pub = self.client()
        ps = sub.pubsub()
        ps.subscribe(chan)
        ps.psubscribe(pat)

        def next_message(what, types, deadline=5.0):
            end = time.time() + deadline
            while time.time() < end:
                m = ps.get_message(timeout=0.2)
                if m and m["type"] in types:
                    return m
                if m:
                    raise CheckFailed("%s: unexpected message %r" % (what, m))
            raise CheckFailed("%s: no message in %.0f s" % (what, deadline))

        m = next_message("SUBSCRIBE confirmation", ("subscribe",))
        expect("subscribe confirmation", (chan, 1), (m["channel"], m["data"]))
        m = next_message("PSUBSCRIBE confirmation", ("psubscribe",))
        expect("psubscribe confirmation", (pat, 2), (m["channel"], m["data"]))
        n = pub.publish(chan, "hello")
        expect_true("PUBLISH returns a count", isinstance(n, int), repr(n))
        m = next_message("the message on the channel", ("message",))
        expect("message", (chan, "hello"), (m["channel"], m["data"]))
        pub.publish(self.p + "pat.x", "by pattern")
        m = next_message("the message by pattern", ("pmessage",))
        expect("pmessage", (pat, self.p + "pat.x", "by pattern"),
               (m["pattern"], m["channel"], m["data"]))
        # the messages of one publisher on one channel keep their order
        for i in range(20):
            pub.publish(chan, "m%d" % i)
        got = [next_message("message %d" % i, ("message",))["data"] for i in range(20)]
        expect("20 messages in order", ["m%d" % i for i in range(20)], got)
        ps.ping()
        m = next_message("PING while subscribed", ("pong",))
        ps.unsubscribe(chan)
        m = next_message("UNSUBSCRIBE confirmation", ("unsubscribe",))
        expect("unsubscribe confirmation", (chan, 1), (m["channel"], m["data"]))
        ps.punsubscribe(pat)
        m = next_message("PUNSUBSCRIBE confirmation", ("punsubscribe",))
        expect("punsubscribe confirmation", (pat, 0), (m["channel"], m["data"]))
        pub.publish(chan, "after")
        time.sleep(0.2)
        expect("no message after unsubscribing", None, ps.get_message(timeout=0.3))
        ps.close()
        # a connection from the pool again, after pub/sub
        expect("the subscriber's client still works", True, sub.ping())
        sub.close()
        pub.close()

    # SCAN through scan_iter: every key written seen exactly once
    def check_scan(self):
        r = self.r
        keys = spread_keys(self.p + "scan:", 300)
        for i in range(0, len(keys), 100):
            r.mset({k: "1" for k in keys[i:i + 100]})
        self.written.update(keys)
        seen = list(r.scan_iter(match=self.p + "scan:*", count=37))
        dup = {k for k in seen if seen.count(k) > 1}
        expect_true("SCAN returned no key twice", not dup, "twice: %r" % sorted(dup)[:5])
        expect("SCAN saw every key", sorted(keys), sorted(seen))
        typed = list(r.scan_iter(match=self.p + "scan:*", count=1000, _type="string"))
        expect("SCAN TYPE string", len(keys), len(typed))
        expect("SCAN TYPE hash", [], list(r.scan_iter(match=self.p + "scan:*", _type="hash")))
        expect("DBSIZE counts every master", True, r.dbsize() >= len(keys))
        r.delete(*keys)

    def check_eval(self):
        r = self.r
        a, b = spread_keys(self.p + "ev:", 2)
        self.written.update([a, b])
        src = "return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[2])}"
        expect("EVAL", [a, "x", 5], r.eval(src, 1, a, "x", 5))
        sha = r.script_load(src)
        expect("SCRIPT EXISTS", [True, False], r.script_exists(sha, "0" * 40))
        expect("EVALSHA on another master's key", [b, "y", 7], r.evalsha(sha, 1, b, "y", 7))
        expect("EVALSHA again", [a, "z", 6], r.evalsha(sha, 1, a, "z", 1))
        script = r.register_script("return redis.call('GET', KEYS[1]) .. ARGV[1]")
        expect("Script object (EVALSHA, NOSCRIPT, EVAL)", "6!", script(keys=[a], args=["!"]))
        expect("Script object on the other key", "7?", script(keys=[b], args=["?"]))
        expect_error("EVAL with keys in two slots", lambda: r.eval(src, 2, a, b, "x", 1),
                     redis.ResponseError, ["CROSSSLOT"])
        s = self.k("ev:s")
        r.set(s, "a string")
        expect_error("a script's error", lambda: r.eval("return redis.call('LPUSH', KEYS[1], 'x')",
                                                        1, s), redis.ResponseError, ["WRONGTYPE"])

    def check_client_name(self):
        r = self.r
        name = "pyc-" + self.p.strip(":").replace(":", "-")
        expect("CLIENT SETNAME", True, r.client_setname(name))
        expect("CLIENT GETNAME", name, r.client_getname())
        expect_true("CLIENT ID", isinstance(r.client_id(), int))
        info = r.client_info()  # redis-py parses every field Redis 7.0 gives
        expect("CLIENT INFO name", name, info.get("name"))
        expect("CLIENT INFO id", r.client_id(), info.get("id"))
        expect("CLIENT INFO db, multi, sub", (0, -1, 0), (info["db"], info["multi"], info["sub"]))
        expect("CLIENT INFO user", self.o.user or "default", info.get("user"))
        long_name = "n" * 1000
        expect("CLIENT SETNAME of 1000 bytes", True, r.client_setname(long_name))
        expect("CLIENT INFO with a 1000-byte name", long_name, r.client_info().get("name"))
        named = self.client(client_name="pyc-opt")
        expect("client_name= given to Redis()", "pyc-opt", named.client_getname())
        named.close()

    def check_info(self):
        r = self.r
        r.set(self.k("info"), "1")
        info = r.info("everything")  # slotgated's upstream sections are in everything
        for field in ("slotgate_version", "redis_version", "process_id", "worker_threads",
                      "connected_clients", "blocked_clients", "total_commands_processed",
                      "total_error_replies", "used_cpu_user", "used_memory", "cluster_enabled",
                      "masters", "errors", "redirects", "pool_conns", "map_refreshes"):
            expect_true("INFO has %s" % field, field in info, "fields: %s" % sorted(info)[:40])
        expect_true("connected_clients >= 1", info["connected_clients"] >= 1,
                    repr(info["connected_clients"]))
        expect("masters", 3, info["masters"])
        expect_true("worker_threads is a number", isinstance(info["worker_threads"], int))
        expect_true("total_commands_processed is a number",
                    isinstance(info["total_commands_processed"], int))
        expect_true("used_cpu_user is a number", isinstance(info["used_cpu_user"], float))
        node = info.get("node0")
        expect_true("node0 parsed as fields", isinstance(node, dict), repr(node))
        expect_true("node0 has addr and role", "addr" in node and node.get("role") in
                    ("master", "replica"), repr(node))
        db0 = info.get("db0")
        expect_true("db0 summed over the masters", isinstance(db0, dict) and db0["keys"] >= 1,
                    repr(db0))
        expect_true("INFO (default) has no upstream section", "masters" not in r.info())
        server = r.info("server")
        expect_true("INFO server has slotgate_version", "slotgate_version" in server)
        expect_true("INFO server is only that section", "connected_clients" not in server,
                    sorted(server))
        expect("INFO clients", ["blocked_clients", "client_recent_max_input_buffer",
                                "client_recent_max_output_buffer", "clients_in_timeout_table",
                                "cluster_connections", "connected_clients", "maxclients",
                                "tracking_clients"], sorted(r.info("clients")))

    def check_refused(self):
        r = self.r
        for argv, name in ((("WAIT", 0, 0), "WAIT"), (("ACL", "WHOAMI"), "ACL"),
                           (("DEBUG", "SLEEP", "0"), "DEBUG"),
                           (("CLIENT", "PAUSE", 10), "CLIENT"),
                           (("CLUSTER", "FAILOVER"), "CLUSTER"),
                           (("NOSUCHCMD", "x"), "nosuchcmd")):
            msg = expect_error(" ".join(map(str, argv)), lambda: r.execute_command(*argv),
                               redis.ResponseError, [])
            expect_true("the error for %s names it" % argv[0], name.lower() in msg.lower(), msg)
        expect("served after the refusals", True, r.ping())

    def check_large(self):
        rb = self.rb
        keys = spread_keys(self.p + "big:", 3)
        self.written.update(keys)
        vals = [os.urandom(1 << 20) for _ in keys]
        expect("SET 1 MB", True, rb.set(keys[0], vals[0]))
        expect_true("GET 1 MB round-trips", rb.get(keys[0]) == vals[0])
        expect("STRLEN", 1 << 20, rb.strlen(keys[0]))
        p = rb.pipeline(transaction=False)
        for k, v in zip(keys[1:], vals[1:]):
            p.set(k, v)
        p.execute()
        got = rb.mget(keys)
        expect_true("MGET of three 1 MB values on three masters",
                    got == vals, "lengths %r" % [len(x or b"") for x in got])
        h = self.k("big:h")
        rb.hset(h, "f", vals[1])
        expect_true("HGET 1 MB", rb.hget(h, "f") == vals[1])
        rb.delete(*(keys + [h]))

    # users: a wrong password and no password are refused (only with --user)
    def check_auth(self):
        bad = self.client(password="wrong-" + (self.o.password or ""))
        msg = expect_error("a wrong password", bad.ping, redis.RedisError, [])
        expect_true("a wrong password is WRONGPASS or invalid", "WRONGPASS" in msg or
                    "invalid" in msg.lower(), msg)
        anon = self.client(username=None, password=None)
        expect_error("no password", lambda: anon.get(self.k("auth")), redis.AuthenticationError,
                     [])
        expect("the right one", True, self.r.ping())

    # scripts/tenant_prefix.lua: keys live under tenant:USER:, EVAL and SCAN refused
    def check_tenant(self):
        r = self.r
        mark = self.p + "tenant-mark"  # the spec looks for it on the cluster; not deleted
        expect("SET through the policy", True, r.set(mark, "marked by " + self.o.tenant))
        expect("GET through the policy", "marked by " + self.o.tenant, r.get(mark))
        # in a transaction and under WATCH too (the spec looks for this one as well)
        tx = self.p + "tenant-mark-tx"
        with r.pipeline() as p:
            p.watch(tx)
            expect("GET under WATCH", None, p.get(tx))
            p.multi()
            p.set(tx, "tx by " + self.o.tenant)
            p.get(tx)
            expect("EXEC through the policy", [True, "tx by " + self.o.tenant], p.execute())
        expect("GET of the transaction's key", "tx by " + self.o.tenant, r.get(tx))
        for argv, name in ((("EVAL", "return 1", 0), "EVAL"), (("SCAN", 0), "SCAN"),
                           (("KEYS", "*"), "KEYS")):
            expect_error(name + " under tenant_prefix", lambda: r.execute_command(*argv),
                         redis.ResponseError, ["tenant_prefix", name])
        expect_error("a key naming a namespace", lambda: r.get("tenant:someone:" + mark),
                     redis.ResponseError, ["tenant_prefix"])


ALL = ["strings", "hashes", "lists", "sets", "sorted_sets", "streams", "multikey", "pipeline",
       "transactions", "crossslot", "blocking", "pubsub", "scan", "eval", "client_name", "info",
       "refused", "large", "auth", "tenant"]


def selected(o):
    names = [n for n in ALL if not (n == "auth" and not o.user and not o.password)]
    if o.tenant:
        names = [n for n in names if n not in ("eval", "scan")]
    else:
        names = [n for n in names if n != "tenant"]
    if o.only:
        names = [n for n in names if n in o.only.split(",")]
    if o.skip:
        names = [n for n in names if n not in o.skip.split(",")]
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("address", nargs="?")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--prefix")
    ap.add_argument("--tenant")
    ap.add_argument("--only")
    ap.add_argument("--skip")
    ap.add_argument("--list", action="store_true")
    o = ap.parse_args()
    if o.list:  # the checks the other options select
        print("\n".join(selected(o)))
        return 0
    if not o.address:
        ap.error("no ADDRESS")
    o.unix = o.host = o.port = None
    if o.address.startswith("unix:") or o.address.startswith("/"):
        o.unix = o.address[5:] if o.address.startswith("unix:") else o.address
    else:
        o.host, _, port = o.address.rpartition(":")
        if not o.host or not port.isdigit():
            ap.error("%r is neither HOST:PORT nor a socket path" % o.address)
        o.port = int(port)
    o.prefix = o.prefix or "pyc:%d:%d:" % (os.getpid(), int(time.time() * 1000) % 1000000)
    checks = Checks(o)
    try:
        checks.setup()
    except Exception as e:
        print("FAIL setup: %s: %s" % (type(e).__name__, e))
        return 1
    failed = 0
    for name in selected(o):
        try:
            getattr(checks, "check_" + name)()
            print("ok " + name)
        except CheckFailed as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
        except Exception as e:
            failed += 1
            tb = traceback.extract_tb(e.__traceback__)
            here = [f for f in tb if f.filename == __file__]
            where = (" (line %d)" % here[-1].lineno) if here else ""
            print("FAIL %s: %s: %s%s" % (name, type(e).__name__, e, where))
        sys.stdout.flush()
    try:
        checks.cleanup()
    except Exception as e:
        failed += 1
        print("FAIL cleanup: %s: %s" % (type(e).__name__, e))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
