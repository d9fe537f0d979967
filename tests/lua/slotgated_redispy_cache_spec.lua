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
-- The check of the handshake is what keeps redis-py from using slotgated (or
-- a Redis node before 7.4): the spec shows which way it decides and then
-- plays the rest as if it had passed, to show the cache stays exact.
local ffi = require "ffi"
local helper = require "helper"
local daemon = require "daemon"

local wait_for = helper.wait_for

daemon.ports_from(646) -- 641..645: the migration cache spec; 646..650 this one

-- redis/utils.py compare_versions: -1 when v1 > v2, 0 when equal, 1 when
-- v1 < v2 (each dotted part read as an integer: "7.4.0-rc1" would raise).
local function compare_versions(v1, v2)
  local a, b = {}, {}
  for p in v1:gmatch("[^.]+") do a[#a + 1] = assert(tonumber(p), "not an integer: " .. p) end
  for p in v2:gmatch("[^.]+") do b[#b + 1] = assert(tonumber(p), "not an integer: " .. p) end
  for i = 1, math.max(#a, #b) do
    local x, y = a[i] or 0, b[i] or 0
    if x > y then return -1 elseif x < y then return 1 end
  end
  return 0
end

-- CacheConfig.DEFAULT_ALLOW_LIST, the commands this spec sends.
local ALLOW = { GET = true, HGET = true, MGET = true, EXISTS = true }

local pfd = ffi.new("struct sg_daemon_pollfd[1]")

local Py = {}
Py.__index = Py

-- Connection.connect, then CacheProxyConnection.connect's check.
function Py.connect(port)
  local self = setmetatable({ conn = assert(daemon.connect(port)), cache = {}, hits = 0,
                              misses = 0, pushes = 0, flushes = 0 }, Py)
  local c = self.conn
  c:send({ "HELLO", "3" })
  local hello = assert(c:read())
  assert(hello.t == "map", "HELLO 3 answered " .. tostring(hello.t))
  self.meta = {}
  for i = 1, #hello.v, 2 do self.meta[hello.v[i].v] = hello.v[i + 1].v end
  assert(self.meta.proto == 3, "Invalid RESP version") -- redis-py's check
  for _, info in ipairs({ { "LIB-NAME", "redis-py" }, { "LIB-VER", "5.1.1" } }) do
    c:send({ "CLIENT", "SETINFO", info[1], info[2] })
    assert(c:read()) -- an error is ignored
  end
  -- _enable_tracking_callback: sent, its reply read whatever it is
  c:send({ "CLIENT", "TRACKING", "ON" })
  self.tracking_reply = assert(c:read())
  local server, version = self.meta.server, self.meta.version
  if server == nil or version == nil then
    self.refused = "Cannot retrieve information about server version"
  elseif server ~= "redis" or compare_versions(version, "7.4.0") == 1 then
    self.refused = "To maximize compatibility with all Redis products, client-side caching " ..
                   "is supported by Redis 7.4 or later"
  end
  return self
end

-- _on_invalidation_callback.
function Py:invalidate(push)
  self.pushes = self.pushes + 1
  local keys = push.v[2]
  if keys.t == "nil" then
    self.flushes = self.flushes + 1
    self.cache = {}
    return
  end
  for _, k in ipairs(keys.v) do
    for ck, e in pairs(self.cache) do
      for _, rk in ipairs(e.keys) do if rk == k.v then self.cache[ck] = nil end end
    end
  end
end

-- read_response: pushes before a reply are handled (the invalidation
-- handler); with push_request, a push is what is returned.
function Py:read_response(push_request)
  while true do
    local r = assert(self.conn:read())
    if r.t ~= "push" then return r end
    if r.v[1].v == "invalidate" then self:invalidate(r) end
    if push_request then return r end
  end
end

-- can_read(timeout=0): bytes buffered, or readable now.
function Py:can_read()
  if #self.conn.buf > 0 then return true end
  pfd[0].fd, pfd[0].events, pfd[0].revents = self.conn.fd, 1, 0
  return ffi.C.poll(pfd, 1, 0) > 0
end

-- send_command + read_response of the proxy: keys are the command's keys
-- (redis-py passes them), args the whole command.
function Py:call(keys, ...)
  local args = { ... }
  while self:can_read() do self:read_response(true) end -- _process_pending_invalidations
  if not ALLOW[args[1]] then
    self.conn:send(args)
    return self:read_response(false)
  end
  local ck = table.concat(args, "\0")
  local e = self.cache[ck]
  if e and e.valid then
    self.hits = self.hits + 1
    return e.value
  end
  self.misses = self.misses + 1
  self.cache[ck] = { keys = keys, valid = false }
  self.conn:send(args)
  local r = self:read_response(false)
  if r.t == "nil" then
    self.cache[ck] = nil
  elseif self.cache[ck] then
    self.cache[ck].valid, self.cache[ck].value = true, r
  end
  return r
end

function Py:close() self.conn:close() end

local dir = helper.tmpdir()

describe("redis-py 5.1's client-side cache through slotgated", function()
  local d, plain
  local nodes = {}
  local function node_conn(port)
    if not nodes[port] then nodes[port] = assert(daemon.connect(port)) end
    return nodes[port]
  end
  local function call(conn, ...)
    conn:send({ ... })
    return assert(conn:read())
  end
  local first = tonumber(helper.server_var("SG_TEST_CLUSTER_MASTERS"):match(":(%d+)"))
  local function master_of(key)
    local c = node_conn(first)
    local slot = call(c, "CLUSTER", "KEYSLOT", key).v
    for _, range in ipairs(call(c, "CLUSTER", "SLOTS").v) do
      if slot >= range.v[1].v and slot <= range.v[2].v then return node_conn(range.v[3].v[2].v) end
    end
  end

  setup(function()
    -- a near cache too (its trackers tell both); threads 1: every session
    -- on the one worker
    local policy = helper.write(dir .. "/cache.lua",
                                'return { name = "c", cache = { ["py:*"] = 30 } }')
    d = daemon.start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    plain = assert(daemon.connect_served(d.port))
  end)
  teardown(function()
    if plain then plain:close() end
    for _, n in pairs(nodes) do n:close() end
    daemon.stop_all()
  end)

  it("is refused by redis-py's handshake check, on slotgated and on a node before 7.4", function()
    local py = Py.connect(d.port)
    local node = Py.connect(first)
    finally(function()
      py:close()
      node:close()
    end)
    print(string.format("\n  slotgated's HELLO: server %s, version %s: redis-py 5.1 %s",
                        py.meta.server, py.meta.version, py.refused or "caches"))
    print(string.format("  the node's HELLO: server %s, version %s: redis-py 5.1 %s",
                        node.meta.server, node.meta.version, node.refused or "caches"))
    -- what redis-py reads is there; CLIENT TRACKING ON is taken as by a node
    assert.is_string(py.meta.server)
    assert.is_string(py.meta.version)
    assert.equal("OK", py.tracking_reply.v)
    assert.equal("OK", node.tracking_reply.v)
    -- and the check decides on the name first: slotgated is refused by name
    assert.equal("slotgate", py.meta.server)
    assert.truthy(py.refused)
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
