-- What the near cache's invalidation connections listen to (docs/CACHE.md):
-- BCAST with a PREFIX per literal start of the policies' cache patterns, so
-- that writes of keys never cached cost neither the nodes nor slotgated; a
-- pattern that starts with a wildcard, or a computed key rewrite, listens to
-- every key; a static prefix policy listens in the nodes' key names; and a
-- session's CLIENT TRACKING widens it to every key, since it may read any.
local helper = require "helper"
local daemon = require "daemon"
local cache = require "cache_helper"

local start, wait_for = daemon.start, helper.wait_for

daemon.ports_from(651)

local dir = helper.tmpdir()

local call, cache_info, node_conn = cache.call, cache.cache_info, cache.node_conn
local masters, master_of = cache.master_ports(), cache.master_of

-- The prefixes the masters' BCAST clients registered, summed over the
-- masters (INFO stats' tracking_total_prefixes; "" counts as one).
local function node_prefixes()
  local n = 0
  for _, port in ipairs(masters) do
    n = n + tonumber(call(node_conn(port), "INFO", "stats").v:match("tracking_total_prefixes:(%d+)"))
  end
  return n
end

-- Reads key through c until its answer was kept (its node's tracker ready).
local function fill(c, key)
  local before = cache_info(c).cache_fills
  assert.is_truthy(wait_for(function()
    call(c, "GET", key)
    return cache_info(c).cache_fills > before
  end), "no fill for " .. key)
end

-- Reads key through c until a read of it is a hit.
local function cached(c, key)
  assert.is_truthy(wait_for(function()
    call(c, "GET", key)
    local before = cache_info(c).cache_hits
    call(c, "GET", key)
    return cache_info(c).cache_hits > before
  end), key .. " is not cached")
end

-- Writes count keys named name(i) straight on their masters.
local function write_direct(count, name)
  for i = 1, count do
    local key = name(i)
    assert.equal("OK", call(master_of(key), "SET", key, "x").v)
  end
end

describe("the near cache's invalidation connections", function()
  teardown(function()
    cache.close_nodes()
    daemon.stop_all()
  end)

  it("hear only of keys the cache patterns can name", function()
    local base = node_prefixes()
    local policy = helper.write(dir .. "/scoped.lua", [[
return { name = "scoped", cache = { ["apikey-*"] = 30, ["apikey-x*"] = 30, ["sess:?"] = 30 } }
]])
    local d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    local c = assert(daemon.connect_served(d.port))
    -- one tracker per master, with PREFIX apikey- and sess: (apikey-x is
    -- inside apikey-, and Redis refuses overlapping prefixes)
    for i = 1, 30 do fill(c, "apikey-" .. i) end
    assert.is_truthy(wait_for(function() return cache_info(c).cache_trackers == #masters end))
    assert.equal(base + 2 * #masters, node_prefixes())
    local before = cache_info(c)
    -- writes of other keys: not a word to slotgated
    write_direct(200, function(i) return "rate:" .. i end)
    -- a write of a cached key is told, and seen
    assert.equal("OK", call(master_of("apikey-1"), "SET", "apikey-1", "new").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", "apikey-1").v == "new" end))
    local after = cache_info(c)
    assert.equal(1, after.cache_invalidations - before.cache_invalidations)
    assert.equal(1, after.cache_dropped_invalidated - before.cache_dropped_invalidated)
    -- a key the patterns name under the other prefix is cached and told too
    fill(c, "sess:1")
    assert.equal("OK", call(master_of("sess:1"), "SET", "sess:1", "s2").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", "sess:1").v == "s2" end))
    c:close()
    daemon.stop(d)
    assert.is_truthy(wait_for(function() return node_prefixes() == base end))
  end)

  it("hear of every key for a pattern that starts with a wildcard", function()
    local policy = helper.write(dir .. "/wild.lua", [[
return { name = "wild", cache = { ["*:session"] = 30 } }
]])
    local d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    local c = assert(daemon.connect_served(d.port))
    for i = 1, 30 do fill(c, "u" .. i .. ":session") end
    assert.is_truthy(wait_for(function() return cache_info(c).cache_trackers == #masters end))
    local before = cache_info(c).cache_invalidations
    write_direct(50, function(i) return "rate:" .. i end)
    assert.is_truthy(wait_for(function() return cache_info(c).cache_invalidations >= before + 50 end))
    assert.equal("OK", call(master_of("u1:session"), "SET", "u1:session", "v").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", "u1:session").v == "v" end))
    c:close()
    daemon.stop(d)
  end)

  it("listen in the nodes' key names under a prefix policy", function()
    local policy = helper.write(dir .. "/tenant.lua", [[
return { name = "tenant", prefix = "t1:", cache = { ["k*"] = 30 } }
]])
    local d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    local c = assert(daemon.connect_served(d.port))
    for i = 1, 30 do fill(c, "k" .. i) end
    assert.is_truthy(wait_for(function() return cache_info(c).cache_trackers == #masters end))
    local before = cache_info(c).cache_invalidations
    -- "k1" of another tenant, and this tenant's uncached keys: untold
    write_direct(50, function(i) return "k" .. i end)
    write_direct(50, function(i) return "t1:x" .. i end)
    -- this tenant's k1, as the node names it: told, and read
    assert.equal("OK", call(master_of("t1:k1"), "SET", "t1:k1", "t1new").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", "k1").v == "t1new" end))
    assert.equal(1, cache_info(c).cache_invalidations - before)
    c:close()
    daemon.stop(d)
  end)

  it("hear of every key once a session turns CLIENT TRACKING on", function()
    local policy = helper.write(dir .. "/scoped2.lua", [[
return { name = "scoped2", cache = { ["apikey-*"] = 30 } }
]])
    local d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    local c = assert(daemon.connect_served(d.port))
    for i = 1, 30 do fill(c, "apikey-" .. i) end
    assert.is_truthy(wait_for(function() return cache_info(c).cache_trackers == #masters end))
    local t = assert(daemon.connect_served(d.port))
    assert.equal("map", call(t, "HELLO", "3").t)
    assert.equal("OK", call(t, "CLIENT", "TRACKING", "ON").v)
    -- the trackers opened again for every key: the session's read of any key
    -- is told of its change
    assert.is_truthy(wait_for(function() return cache_info(c).cache_trackers == #masters end))
    assert.equal("OK", call(t, "SET", "other:tracked", "x").v)
    assert.equal("x", call(t, "GET", "other:tracked").v)
    assert.equal("OK", call(master_of("other:tracked"), "SET", "other:tracked", "y").v)
    local push = assert(t:read())
    assert.equal("push", push.t)
    assert.equal("invalidate", push.v[1].v)
    assert.equal("other:tracked", push.v[2].v[1].v)
    -- and the cache still serves, and is told, its own keys
    cached(c, "apikey-1")
    assert.equal("OK", call(master_of("apikey-1"), "SET", "apikey-1", "z").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", "apikey-1").v == "z" end))
    t:close()
    c:close()
    daemon.stop(d)
  end)
end)

-- A write acknowledged on one connection is read on any other, whichever
-- worker serves it: the node's BCAST message comes after the write's reply,
-- so the workers' own write stamps (cache.c) must tell first.
describe("the near cache across slotgated's workers", function()
  teardown(function()
    cache.close_nodes()
    daemon.stop_all()
  end)

  it("never answers a read with a value older than a write acknowledged before it", function()
    local policy = helper.write(dir .. "/ryw.lua", [[
return { name = "ryw", cache = { ["ryw:*"] = 30 } }
]])
    local d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "2" } }
    -- eight connections: the kernel spreads them over the two workers, so
    -- about half the ordered pairs below cross from one worker to the other
    local conns = {}
    for i = 1, 8 do conns[i] = assert(daemon.connect_served(d.port)) end
    local stale, rounds = {}, 0
    for a = 1, 8 do
      for b = 1, 8 do
        if a ~= b then
          local key = "ryw:" .. a .. ":" .. b
          assert.equal("OK", call(conns[a], "SET", key, "0").v)
          for i = 1, 300 do
            assert.equal("OK", call(conns[a], "SET", key, tostring(i)).v)
            local v = call(conns[b], "GET", key).v
            if v ~= tostring(i) then stale[#stale + 1] = key .. " read " .. tostring(v) .. " after " .. i end
            -- read again: this one may come from the cache, and the next
            -- write must stop the entry it filled from answering
            v = call(conns[b], "GET", key).v
            if v ~= tostring(i) then stale[#stale + 1] = key .. " read " .. tostring(v) .. " after " .. i end
            rounds = rounds + 1
          end
        end
      end
    end
    local info = cache_info(conns[1])
    for _, c in ipairs(conns) do c:close() end
    daemon.stop(d)
    assert.same({}, stale)
    -- entries were made, and answered, between the writes
    assert.is_true(info.cache_fills > 0 and info.cache_hits > 0)
    print(string.format("\n  %d writes, each read back on another connection: none stale", rounds))
  end)
end)
