-- tracking_helper.lua — what the specs of slotgated's CLIENT TRACKING
-- (slotgated_tracking*_spec.lua) share: one command's reply with the RESP3
-- pushes that come before it kept aside, the next invalidation a connection
-- receives (push or __redis__:invalidate message), a write made straight on
-- the cluster, and a RESP3 session with tracking on.
local assert = require "luassert"
local daemon = require "daemon"
local helper = require "helper"

local now = helper.now

local M = { _VERSION = "1" }

-- One command's reply; RESP3 pushes that come before it are kept for
-- next_invalidation (conn.pushes).
function M.call(conn, ...)
  conn:send({ ... })
  while true do
    local r, why = conn:read()
    assert(r, why)
    if r.t ~= "push" then return r end
    conn.pushes = conn.pushes or {}
    table.insert(conn.pushes, r)
  end
end

-- A write straight on the cluster (redis-cli -c through a master).
function M.set_direct(key, value)
  local out = daemon.cluster_cli("SET " .. key .. " " .. value)
  assert(out:match("OK"), out)
end

-- The next message conn receives within secs (default 5), kept pushes
-- first: the reply, or nil.
function M.next_message(conn, secs)
  if conn.pushes and #conn.pushes > 0 then return table.remove(conn.pushes, 1) end
  return conn:read(secs or 5)
end

-- The next invalidation conn receives within secs: its keys (a list), or
-- "flush" for a null one; nil when nothing came. Flushes are skipped when
-- skip_flush (a connection to a node may not have been ready at the read).
function M.next_invalidation(conn, secs, skip_flush)
  local deadline = now() + (secs or 5)
  while now() < deadline do
    local r = M.next_message(conn, math.max(0.01, deadline - now()))
    if r == nil then return nil end
    local payload
    if r.t == "push" and r.v[1].v == "invalidate" then
      payload = r.v[2]
    elseif r.t == "array" and r.v[1].v == "message" and r.v[2].v == "__redis__:invalidate" then
      payload = r.v[3]
    else
      error("not an invalidation: " .. require("pl.pretty").write(r))
    end
    if payload.t == "nil" then
      if not skip_flush then return "flush" end
    else
      local keys = {}
      for i, e in ipairs(payload.v) do keys[i] = e.v end
      return keys
    end
  end
  return nil
end

-- A RESP3 session with tracking on (options after ON); auth: {user, pass}.
function M.session(port, auth, ...)
  local c
  if auth then -- PING would be refused until AUTH
    c = assert(daemon.connect(port))
    assert.equal("map", M.call(c, "HELLO", "3", "AUTH", auth[1], auth[2]).t)
  else
    c = assert(daemon.connect_served(port))
    assert.equal("map", M.call(c, "HELLO", "3").t)
  end
  assert.equal("OK", M.call(c, "CLIENT", "TRACKING", "ON", ...).v)
  return c
end

-- Waits until INFO cache says n invalidation connections are subscribed (the
-- reads after that are told of from the first), then drops the flush a read
-- made before may be owed.
function M.wait_trackers(conn, n)
  assert.is_truthy(helper.wait_for(function()
    local info = M.call(conn, "INFO", "cache")
    return tonumber(info.v:match("cache_trackers:(%d+)")) >= n
  end), "the invalidation connections did not come up")
  M.next_invalidation(conn, 0.2)
end

-- Two connections to port served by different workers (slotgated started
-- with a policy and SLOTGATE_THREADS >= 2): a connection's commands show in
-- INFO policy's count of the worker that serves it, so b is on a's worker
-- when 20 GETs on a add 20 to the count b sees.
function M.pair_on_two_workers(port)
  local function worker_commands(c)
    return tonumber(M.call(c, "INFO", "policy").v:match("policy_commands:(%d+)"))
  end
  local conns = { assert(daemon.connect_served(port)) }
  for _ = 1, 16 do
    local c = assert(daemon.connect_served(port))
    local before = worker_commands(c)
    for _ = 1, 20 do M.call(conns[1], "GET", "trk:worker-probe") end
    if worker_commands(c) - before < 20 then
      for i = 2, #conns do conns[i]:close() end
      return conns[1], c
    end
    conns[#conns + 1] = c
  end
  error("17 connections, all on one worker")
end

return M
