-- scripts_helper.lua — what the specs of the example policies (scripts/*.lua,
-- tests/lua/scripts_*_spec.lua) share: a gateway in front of the harness's
-- real servers, plain clients to single nodes to see where data landed, a
-- clock, and waiting with a deadline.
local helper = require "helper"
local slotgate = require "slotgate"

local sh = {}

sh.scripts_dir = helper.source_dir .. "/scripts/"

-- A key prefix per run, so reruns and other suites do not collide.
function sh.unique(tag)
  return string.format("%s:%d:%d:", tag, os.time(), math.random(1e6))
end

-- The settings env of a gateway: "default" is the cluster; with routes,
-- "cache" is the standalone server's db 0 and "analytics" its db 1.
function sh.env(opts)
  local env = { TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
                TYK_GW_STORAGE_ENABLECLUSTER = "true" }
  if opts and opts.routes then
    local standalone = helper.server_var("SG_TEST_STANDALONE")
    env.TYK_GW_ENABLESEPERATECACHESTORE = "true"
    env.TYK_GW_CACHESTORAGE_ADDRS = standalone
    env.TYK_GW_ENABLESEPERATEANALYTICSSTORE = "true"
    env.TYK_GW_ANALYTICSSTORAGE_ADDRS = standalone
    env.TYK_GW_ANALYTICSSTORAGE_DATABASE = "1"
  end
  return env
end

-- A blocking gateway with the example script(s) scripts/NAME.lua loaded;
-- returns the gateway and its policy.
function sh.gateway(names, opts)
  if type(names) == "string" then names = { names } end
  local paths = {}
  for i, name in ipairs(names) do paths[i] = sh.scripts_dir .. name .. ".lua" end
  local policy = assert(slotgate.policy(paths))
  local gw = assert(slotgate.gateway{ env = sh.env(opts) })
  assert(gw:set_policy(policy))
  return gw, policy
end

-- A plain client (no policies) of one node or the whole cluster, to read
-- what the gateway wrote where it wrote it.
function sh.cluster()
  return assert(slotgate.connect{ env = sh.env() })
end

function sh.node(addr, db)
  return assert(slotgate.connect{ env = { TYK_GW_STORAGE_ADDRS = addr,
                                          TYK_GW_STORAGE_DATABASE = tostring(db or 0) } })
end

-- Seconds on a monotonic clock (helper.lua declares clock_gettime for
-- every spec: one declaration in the shared Lua state).
sh.now = helper.now

-- Calls fn until it returns a true value or `seconds` pass; returns its last
-- results.
function sh.eventually(seconds, fn)
  return helper.wait_for(fn, seconds)
end

-- Whether every node's CLUSTER SLOTS lists a replica for every range: Redis
-- 7.0 leaves replicas out until they have reported a replication offset.
function sh.replicas_listed()
  for addr in helper.server_var("SG_TEST_CLUSTER"):gmatch("[^,]+") do
    local c = sh.node(addr)
    local slots = c:call("CLUSTER", "SLOTS")
    c:close()
    if type(slots) ~= "table" or #slots == 0 then return false end
    for _, range in ipairs(slots) do
      if #range < 4 then return false end
    end
  end
  return true
end

-- A file holding text (a script under test); removed by the caller.
function sh.write_temp(text, suffix)
  local base = os.tmpname() -- made empty: the name is ours
  os.remove(base)
  return helper.write(base .. (suffix or ".lua"), text)
end

return sh
