-- cache_helper.lua — what the specs of slotgated's near cache
-- (slotgated_cache*_spec.lua, slotgated_redispy_cache_spec.lua) share: one
-- command's reply, INFO cache as numbers, connections straight to the
-- cluster's nodes (kept by port, closed together), its masters, and the
-- master that serves a key.
local assert = require "luassert"
local daemon = require "daemon"
local helper = require "helper"

local M = { _VERSION = "1" }

-- One command on conn: its reply (a table, see daemon.lua); a failure to
-- read raises.
function M.call(conn, ...)
  conn:send({ ... })
  local r, why = conn:read()
  assert(r, why)
  return r
end

-- INFO cache through conn as { cache_field = number }.
function M.cache_info(conn)
  local out = {}
  for k, v in M.call(conn, "INFO", "cache").v:gmatch("(cache_[%w_]+):(%d+)") do
    out[k] = tonumber(v)
  end
  return out
end

-- The ports of the cluster's masters (SG_TEST_CLUSTER_MASTERS), in order.
function M.master_ports()
  local ports = {}
  for port in helper.server_var("SG_TEST_CLUSTER_MASTERS"):gmatch(":(%d+)") do
    ports[#ports + 1] = tonumber(port)
  end
  return ports
end

local nodes = {}

-- A connection straight to the node on port, opened once and kept.
function M.node_conn(port)
  if not nodes[port] then nodes[port] = assert(daemon.connect(port)) end
  return nodes[port]
end

-- Closes the kept node connections (a spec's teardown); the next node_conn opens anew.
function M.close_nodes()
  for port, n in pairs(nodes) do
    n:close()
    nodes[port] = nil
  end
end

-- The master that owns slot as node connection n sees it (CLUSTER SLOTS): its
-- kept connection, or nil when none does.
function M.owner_seen_by(n, slot)
  for _, range in ipairs(M.call(n, "CLUSTER", "SLOTS").v) do
    if slot >= range.v[1].v and slot <= range.v[2].v then
      return M.node_conn(range.v[3].v[2].v)
    end
  end
end

-- The kept connection to the master serving key's slot, as the first master sees it.
function M.master_of(key)
  local c = M.node_conn(M.master_ports()[1])
  local slot = M.call(c, "CLUSTER", "KEYSLOT", key).v
  return M.owner_seen_by(c, slot) or error("no master for slot " .. slot)
end

-- A value written straight on the key's master (past slotgated).
function M.set_direct(key, value)
  local r = M.call(M.master_of(key), "SET", key, value)
  assert(r.v == "OK", r.v)
end

return M
