-- slotgated_node_clients_spec.lua — slotgated driven by client libraries that
-- are not ours, from npm: node-redis 5 and ioredis 5 run
-- tests/node/client_checks.js (the kind of checks redis_py_checks.py makes)
-- against slotgated in front of the real cluster, over TCP, over the Unix
-- socket, with users (AUTH name password) and under scripts/tenant_prefix.lua;
-- and ioredis in Cluster mode, for which slotgated is a cluster of one node
-- owning every slot. Each line the script prints (`ok NAME` / `FAIL NAME:
-- reason`) is one test here. Without node or the packages (tests/node: `npm
-- ci`, which tools/install-deps.sh and .ci/run do) the spec fails, it does
-- not skip.
local helper = require "helper"
local daemon = require "daemon"
local checks = require "client_checks"

local q = helper.shell_quote
local DIR = helper.source_dir .. "/tests/node"
local SCRIPT = checks.script("cd " .. q(DIR) .. " && timeout 300 node client_checks.js",
                             "install node and run `npm ci --prefix tests/node` " ..
                             "(tools/install-deps.sh does)")
local LIBS = { redis = "node-redis 5", ioredis = "ioredis" }

daemon.ports_from(751) -- 751..769 are this spec's

-- Known slotgated bugs, by run title ("<lib> <run>") and check
-- (client_checks.run's known_bugs).
local known_bugs = {
  -- ["ioredis under tenant_prefix"] = { blocking = { "^BLPOP reply: ...", "what is wrong" } },
}

-- One run: slotgated started with env, the script for lib at address(d) with
-- args, after(d, prefix) for what the run must have left on the cluster.
local function run(lib, title, env, address, args, after)
  title = LIBS[lib] .. " " .. title
  local prefix = "ncc:" .. title:gsub("%W", "") .. ":" .. os.time() .. ":"
  checks.run{ script = SCRIPT, title = title, what = "node with " .. LIBS[lib], env = env,
              address = address, args = "--lib " .. lib .. " " .. args .. " --prefix " .. q(prefix),
              known_bugs = known_bugs[title],
              after = after and function(d) after(d, prefix) end }
end

-- node-redis's own cache (client_cache) writes straight on the cluster (under
-- tenant_prefix, to the key as stored: slotgated names it back)
local DIRECT = " --direct " .. helper.server_var("SG_TEST_CLUSTER_MASTERS"):match("^[^,]+")

local function tcp(d) return "127.0.0.1:" .. d.port end
local function unix(d) return d.sock end

-- each run has a slotgated of its own
for _, lib in ipairs({ "redis", "ioredis" }) do
  local direct = lib == "redis" and DIRECT or ""
  run(lib, "over TCP", {}, tcp, direct)
  run(lib, "over the Unix socket", {}, unix, direct)
  run(lib, "with a user over TCP", { SLOTGATE_USERS = "alice:alice-pw-3,bob:bob-pw-5" }, tcp,
      "--user bob --password bob-pw-5" .. direct)
  run(lib, "under tenant_prefix",
      { SLOTGATE_USERS = "alice:alice-pw-3,bob:bob-pw-5",
        SLOTGATE_POLICY = helper.source_dir .. "/scripts/tenant_prefix.lua" },
      unix, "--user alice --password alice-pw-3 --tenant alice" .. direct,
      checks.tenant_keys_rewritten)
end

-- ioredis's Cluster client: CLUSTER SLOTS says slotgated owns every slot
run("ioredis", "in Cluster mode over TCP", {}, tcp, "--cluster")
run("ioredis", "in Cluster mode with a user over TCP",
    { SLOTGATE_USERS = "alice:alice-pw-3" }, tcp, "--cluster --user alice --password alice-pw-3")
