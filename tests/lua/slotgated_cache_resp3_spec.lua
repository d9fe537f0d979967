-- The near cache for RESP3 sessions (docs/CACHE.md): a session that said
-- HELLO 3 gets hits and fills the same entries as a RESP2 one, and every
-- cacheable read answers byte for byte as a Redis 7.0 node spoken to with
-- HELLO 3 does, whether it came from memory or from the node (nulls, maps,
-- sets, doubles, ZRANGE's WITHSCORES pairs). The cache stays exact for such a
-- session: a write straight on the node is seen, its own writes at once.
local helper = require "helper"
local daemon = require "daemon"
local cache = require "cache_helper"

local start, wait_for = daemon.start, helper.wait_for

daemon.ports_from(611)

local dir = helper.tmpdir()
local policy = helper.write(dir .. "/cache.lua", [[
return { name = "cache", cache = { ["{r3}*"] = 30, ["r3:*"] = 30 } }
]])

local call, cache_info = cache.call, cache.cache_info

-- The master of a key, spoken to directly in proto (2 or 3): a connection of
-- its own.
local opened = {}
local function master_of(key, proto)
  local m = assert(daemon.connect(cache.master_of(key).port))
  opened[#opened + 1] = m
  if proto == 3 then assert.equal("map", call(m, "HELLO", "3").t) end
  return m
end

-- Every read sg_cache_cacheable takes, on values that make nulls, empty
-- collections, doubles of every form and each ZRANGE option (each key's form
-- once: the first pass must miss every time); then two that
-- the node refuses (the error passes as it is, nothing is kept). hits: what
-- a second pass counts (MGET one per key; errors none).
local reads = {
  { "GET", "{r3}s" }, { "GET", "{r3}none" },
  { "MGET", "{r3}m", "{r3}none2", "{r3}s2" }, { "MGET", "{r3}none3" },
  { "HGET", "{r3}h", "f1" }, { "HGET", "{r3}h", "nofield" }, { "HGET", "{r3}none", "f" },
  { "HMGET", "{r3}h", "f2", "nofield", "f1" }, { "HMGET", "{r3}none", "a", "b" },
  { "HGETALL", "{r3}h" }, { "HGETALL", "{r3}none" },
  { "HEXISTS", "{r3}h", "f1" }, { "HEXISTS", "{r3}h", "nofield" }, { "HLEN", "{r3}h" },
  { "HSTRLEN", "{r3}h", "f1" }, { "HLEN", "{r3}none" },
  { "EXISTS", "{r3}s" }, { "EXISTS", "{r3}none" },
  { "TYPE", "{r3}s" }, { "TYPE", "{r3}h" }, { "TYPE", "{r3}z" }, { "TYPE", "{r3}none" },
  { "STRLEN", "{r3}s" }, { "STRLEN", "{r3}none" },
  { "GETRANGE", "{r3}s", "1", "3" }, { "GETRANGE", "{r3}none", "0", "-1" },
  { "SMEMBERS", "{r3}set" }, { "SMEMBERS", "{r3}none" },
  { "SISMEMBER", "{r3}set", "a" }, { "SISMEMBER", "{r3}set", "zz" },
  { "SMISMEMBER", "{r3}set", "a", "zz", "c" }, { "SMISMEMBER", "{r3}none", "a" },
  { "SCARD", "{r3}set" }, { "SCARD", "{r3}none" },
  { "LLEN", "{r3}l" }, { "LRANGE", "{r3}l", "0", "-1" }, { "LRANGE", "{r3}none", "0", "-1" },
  { "LINDEX", "{r3}l", "1" }, { "LINDEX", "{r3}l", "99" },
  { "ZSCORE", "{r3}z", "a" }, { "ZSCORE", "{r3}z", "b" }, { "ZSCORE", "{r3}z", "c" },
  { "ZSCORE", "{r3}z", "d" }, { "ZSCORE", "{r3}z", "e" }, { "ZSCORE", "{r3}z", "f" },
  { "ZSCORE", "{r3}z", "g" }, { "ZSCORE", "{r3}z", "nomember" }, { "ZSCORE", "{r3}none", "a" },
  { "ZMSCORE", "{r3}z", "a", "nomember", "c", "d" }, { "ZMSCORE", "{r3}none", "a", "b" },
  { "ZCARD", "{r3}z" }, { "ZCARD", "{r3}none" },
  { "ZRANGE", "{r3}z", "0", "-1" }, { "ZRANGE", "{r3}z", "0", "-1", "WITHSCORES" },
  { "ZRANGE", "{r3}z", "-inf", "+inf", "BYSCORE", "WITHSCORES" },
  { "ZRANGE", "{r3}z", "(0", "+inf", "BYSCORE", "LIMIT", "1", "3", "withscores" },
  { "ZRANGE", "{r3}z", "+inf", "-inf", "BYSCORE", "REV", "WITHSCORES" },
  { "ZRANGE", "{r3}z", "0", "2", "REV", "WITHSCORES" },
  { "ZRANGE", "{r3}none", "0", "-1", "WITHSCORES" }, { "ZRANGE", "{r3}z", "5", "9" },
  { "ZRANGE", "{r3}z", "[a", "[z", "BYLEX" },
}
local errors = {
  { "GET", "{r3}h" },                                     -- WRONGTYPE
  { "ZRANGE", "{r3}z", "[a", "[z", "BYLEX", "WITHSCORES" }, -- a syntax error
}

local function hits_of(list)
  local n = 0
  for _, cmd in ipairs(list) do n = n + (cmd[1] == "MGET" and #cmd - 1 or 1) end
  return n
end

describe("slotgated's near cache for RESP3 sessions", function()
  local d, c3, c2, direct3, direct2

  setup(function()
    d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    c2 = assert(daemon.connect_served(d.port))
    c3 = assert(daemon.connect_served(d.port))
    assert.equal("map", call(c3, "HELLO", "3").t)
    direct3 = master_of("{r3}s", 3)
    direct2 = master_of("{r3}s", 2)
    -- the values, written straight on the node (no entry made)
    call(direct2, "DEL", "{r3}s", "{r3}s2", "{r3}m", "{r3}h", "{r3}set", "{r3}l", "{r3}z")
    assert.equal("OK", call(direct2, "SET", "{r3}s", "hello").v)
    assert.equal("OK", call(direct2, "SET", "{r3}m", "m").v)
    assert.equal("OK", call(direct2, "SET", "{r3}s2", "").v)
    assert.equal(2, call(direct2, "HSET", "{r3}h", "f1", "v1", "f2", "").v)
    assert.equal(3, call(direct2, "SADD", "{r3}set", "a", "b", "c").v)
    assert.equal(3, call(direct2, "RPUSH", "{r3}l", "x", "y", "z").v)
    assert.equal(8, call(direct2, "ZADD", "{r3}z", "1.5", "a", "-0", "b", "inf", "c", "3e-5", "d",
                         "1e+20", "e", "7", "f", "-inf", "g", "-2.5", "h").v)
  end)
  teardown(function()
    for _, conn in ipairs({ c2, c3 }) do conn:close() end
    for _, conn in ipairs(opened) do conn:close() end
    cache.close_nodes()
    daemon.stop_all()
  end)

  -- Sends each command of list on conn and on the node; the replies' bytes
  -- must be the same.
  local function same_as_node(conn, node, list)
    for _, cmd in ipairs(list) do
      node:send(cmd)
      local want = assert(node:read_bytes())
      conn:send(cmd)
      local got = assert(conn:read_bytes())
      assert.equal(want, got, table.concat(cmd, " "))
    end
  end

  it("answers every cacheable read as a node does after HELLO 3, as a miss that fills and as a hit", function()
    -- the node's invalidation connection first: reads fill once it is up
    assert.is_truthy(wait_for(function()
      local f = cache_info(c3).cache_fills
      call(c3, "GET", "{r3}warm")
      return cache_info(c3).cache_fills > f
    end))
    local before = cache_info(c3)
    same_as_node(c3, direct3, reads)
    same_as_node(c3, direct3, errors)
    local mid = cache_info(c3)
    -- the first pass missed and filled: nothing came from memory
    assert.equal(before.cache_hits, mid.cache_hits)
    assert.equal(hits_of(reads), mid.cache_fills - before.cache_fills)
    same_as_node(c3, direct3, reads)
    same_as_node(c3, direct3, errors)
    local after = cache_info(c3)
    assert.equal(hits_of(reads), after.cache_hits - mid.cache_hits)
    assert.equal(mid.cache_fills, after.cache_fills)
  end)

  it("shares its entries with RESP2 sessions, each answered in its own protocol", function()
    local before = cache_info(c2)
    same_as_node(c2, direct2, reads)
    local mid = cache_info(c2)
    assert.equal(hits_of(reads), mid.cache_hits - before.cache_hits)
    -- and the other way: what a RESP2 read filled, a RESP3 one gets from memory
    call(c2, "DEL", "{r3}fresh")
    assert.equal(2, call(c2, "HSET", "{r3}fresh", "k", "1.5", "j", "").v)
    local list = { { "HGETALL", "{r3}fresh" }, { "HMGET", "{r3}fresh", "k", "zz" } }
    same_as_node(c2, direct2, list)
    local hits = cache_info(c2).cache_hits
    same_as_node(c3, direct3, list)
    assert.equal(hits + 2, cache_info(c2).cache_hits)
  end)

  it("sees a value written straight on the node, and its own writes at once", function()
    local key = "r3:direct"
    local node = master_of(key, 2)
    assert.equal("OK", call(c3, "SET", key, "0").v)
    assert.is_truthy(wait_for(function()
      local h = cache_info(c3).cache_hits
      call(c3, "GET", key)
      return cache_info(c3).cache_hits > h
    end))
    for i = 1, 10 do
      local h = cache_info(c3).cache_hits
      assert.equal(tostring(i - 1), call(c3, "GET", key).v) -- from memory
      assert.equal(h + 1, cache_info(c3).cache_hits)
      assert.equal("OK", call(node, "SET", key, tostring(i)).v)
      assert.is_truthy(wait_for(function() return call(c3, "GET", key).v == tostring(i) end, 5),
                       "the direct write " .. i .. " was not seen within 5 s")
    end
    -- own writes, on a hash read as a map
    local hkey = "r3:own"
    call(c3, "DEL", hkey)
    for i = 1, 30 do
      call(c3, "HSET", hkey, "f", tostring(i))
      local r = call(c3, "HGETALL", hkey)
      assert.equal("map", r.t)
      assert.same({ "f", tostring(i) }, daemon.plain(r))
      call(c3, "HGETALL", hkey) -- a fill or a hit
    end
    assert.is_true(cache_info(c3).cache_dropped_written > 0)
  end)
end)
