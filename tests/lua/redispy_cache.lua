-- redis-py 5.1's client-side cache connection (CacheProxyConnection), played
-- as its source has it, for the specs that run a client-side cache through
-- slotgated (slotgated_redispy_cache_spec.lua has the details). Py.connect
-- returns it; call({keys}, cmd, args...) reads through its cache.
local ffi = require "ffi"
local daemon = require "daemon"

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

local Py = { compare_versions = nil }
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

Py.compare_versions = compare_versions

return Py
