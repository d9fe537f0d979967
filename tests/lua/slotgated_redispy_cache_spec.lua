-- redis-py 5.1+'s client-side cache (Redis(protocol=3, cache_config=...))
-- through slotgated (docs/CACHE.md, "Tracking for clients"). redis-py 5.1 is
-- not installable here, so its exchange is played as its source has it
-- (redis/connection.py CacheProxyConnection, redis/cache.py, the RESP3
-- parser's push handling):
--   connect: HELLO 3 (its map kept as handshake_metadata; proto must be 3),
--            CLIENT SETINFO LIB-NAME and LIB-VER (errors ignored), then the
--            connect callback: CLIENT TRACKING ON (default mode, no option);
--            then the check of the handshake: server must be "redis" and
--            version at least 7.4.0, else ConnectionError;
--   a read:  first every push already readable is processed (can_read with
--            no wait; an invalidate push drops each cache entry whose keys
--            hold a key named, a null one empties the cache); a command on
--            the allow list answers from an entry that is VALID; else an
--            IN_PROGRESS entry is put, the command sent, pushes that come
--            before its reply processed, and the reply kept only if the
--            entry is still there (not invalidated meanwhile) and not a
--            null (a null drops it).
-- The check of the handshake refuses a Redis node before 7.4, and slotgated
-- unless its redis_version setting says 7.4.0 or later (HELLO reports it);
-- the spec shows which way it decides, then plays the rest through a
-- slotgated set so, to show the cache stays exact.
local helper = require "helper"
local daemon = require "daemon"
local cache = require "cache_helper"

local wait_for = helper.wait_for

daemon.ports_from(646) -- 641..645: the migration cache spec; 646..650 this one

local Py = require "redispy_cache"
local compare_versions = Py.compare_versions

local dir = helper.tmpdir()

local call, master_of = cache.call, cache.master_of
local first = cache.master_ports()[1]

describe("redis-py 5.1's client-side cache through slotgated", function()
  local d, plain
  setup(function()
    -- a near cache too (its trackers tell both); threads 1: every session
    -- on the one worker
    local policy = helper.write(dir .. "/cache.lua",
                                'return { name = "c", cache = { ["py:*"] = 30 } }')
    d = daemon.start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1",
                              SLOTGATE_REDISVERSION = "7.4.0" } }
    plain = assert(daemon.connect_served(d.port))
  end)
  teardown(function()
    if plain then plain:close() end
    cache.close_nodes()
    daemon.stop_all()
  end)

  it("passes redis-py's handshake check with redis_version 7.4.0, not with the default",
     function()
    local dflt = daemon.start{ env = { SLOTGATE_THREADS = "1" } }
    local py, old = Py.connect(d.port), Py.connect(dflt.port)
    local node = Py.connect(first)
    finally(function()
      py:close()
      old:close()
      node:close()
      daemon.stop(dflt)
    end)
    for _, x in ipairs({ { "slotgated, redis_version 7.4.0", py }, { "slotgated", old },
                         { "the node", node } }) do
      print(string.format("\n  %s: HELLO says server %s, version %s: redis-py 5.1 %s", x[1],
                          x[2].meta.server, x[2].meta.version, x[2].refused or "caches"))
      -- what redis-py reads is there; CLIENT TRACKING ON is taken as by a node
      assert.equal("redis", x[2].meta.server)
      assert.equal("OK", x[2].tracking_reply.v)
    end
    assert.is_nil(py.refused)
    assert.truthy(old.refused) -- slotgated's default: the Redis 7.0 it speaks
    local v74 = compare_versions(node.meta.version, "7.4.0") ~= 1
    assert.equal(not v74, node.refused ~= nil)
  end)

  it("keeps its cache exact through writes made straight on the node and through slotgated",
     function()
    local py = Py.connect(d.port)
    finally(function() py:close() end)
    local key, hkey = "py:{k}s", "py:{k}h"
    assert.equal("OK", call(plain, "SET", key, "0").v)
    call(plain, "DEL", hkey)
    assert.equal(1, call(plain, "HSET", hkey, "f", "0").v)
    local m = master_of(key)
    local seen = { s = 0, h = 0, m = 0 }
    local slowest = 0
    -- reads of three forms; a value never goes back
    local function reads()
      local s = tonumber(py:call({ key }, "GET", key).v)
      local h = tonumber(py:call({ hkey }, "HGET", hkey, "f").v)
      local mg = py:call({ key, "py:{k}none" }, "MGET", key, "py:{k}none")
      assert.equal("nil", mg.v[2].t)
      local mv = tonumber(mg.v[1].v)
      assert.is_true(s >= seen.s and h >= seen.h and mv >= seen.m,
                     string.format("went back: %d %d %d after %d %d %d", s, h, mv, seen.s, seen.h,
                                   seen.m))
      seen.s, seen.h, seen.m = s, h, mv
      return s, h, mv
    end
    for i = 1, 20 do
      -- served from its cache between writes
      local hits = py.hits
      reads()
      reads()
      assert.is_true(py.hits >= hits + 3, "not read from redis-py's cache")
      local t0 = helper.now()
      if i % 4 == 0 then -- through slotgated, on another session
        assert.equal("OK", call(plain, "SET", key, tostring(i)).v)
        assert.equal(0, call(plain, "HSET", hkey, "f", tostring(i)).v)
      else
        assert.equal("OK", call(m, "SET", key, tostring(i)).v)
        assert.equal(0, call(m, "HSET", hkey, "f", tostring(i)).v)
      end
      assert.is_truthy(wait_for(function()
        local s, h, mv = reads()
        return s == i and h == i and mv == i
      end, 2), "write " .. i .. " not read through redis-py's cache within 2 s")
      slowest = math.max(slowest, helper.now() - t0)
    end
    print(string.format("\n  redis-py's cache: %d hits, %d misses, %d invalidate pushes " ..
                        "(%d null); slowest write seen after %.1f ms", py.hits, py.misses,
                        py.pushes, py.flushes, slowest * 1000))
    assert.is_true(py.pushes >= 20)
  end)

  it("plays the same exchange against the key's node itself (the reference)", function()
    local key = "py:{k}s"
    local m = master_of(key)
    local py = Py.connect(m.port)
    finally(function() py:close() end)
    assert.equal("OK", call(m, "SET", key, "0").v)
    for i = 1, 5 do
      py:call({ key }, "GET", key)
      local hits = py.hits
      assert.equal(tostring(i - 1), py:call({ key }, "GET", key).v)
      assert.equal(hits + 1, py.hits)
      assert.equal("OK", call(m, "SET", key, tostring(i)).v)
      assert.is_truthy(wait_for(function() return py:call({ key }, "GET", key).v == tostring(i) end,
                                2), "write " .. i .. " not read within 2 s")
    end
    assert.is_true(py.pushes >= 5)
  end)
end)
