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

local q, sh = helper.shell_quote, helper.sh
local DIR = helper.source_dir .. "/tests/node"
local CHECKS = DIR .. "/client_checks.js"
local INSTALL = "install node and run `npm ci --prefix tests/node` (tools/install-deps.sh does)"
local LIBS = { redis = "node-redis 5", ioredis = "ioredis" }

daemon.ports_from(751) -- 751..769 are this spec's

-- Runs the checks script with args; returns its output and exit status.
local function checks(args)
  local out = sh("cd " .. q(DIR) .. " && timeout 300 node " .. q(CHECKS) .. " " .. args ..
                 "; echo \"exit=$?\"")
  local body, code = out:match("^(.-)exit=(%d+)\n$")
  return body or out, tonumber(code)
end

-- The names of the checks args select, or nil and why the script cannot run.
local function check_names(args)
  local out, code = checks("--list " .. args)
  if code ~= 0 then
    return nil, "node cannot run the client checks (" .. out:gsub("\n$", "") .. "): " .. INSTALL
  end
  local names = {}
  for name in out:gmatch("[^\n]+") do names[#names + 1] = name end
  return names
end

-- redis-cli -c on the first master: what the cluster really holds.
local function on_cluster(args)
  local port = helper.server_var("SG_TEST_CLUSTER_MASTERS"):match(":(%d+)")
  return sh("redis-cli -c -p " .. port .. " " .. args)
end

-- Known slotgated bugs, by run title ("<lib> <run>") and check: the check
-- must still fail exactly so (a fix makes this test fail: then remove the
-- entry), and the test is reported pending with the bug. Not weakened: the
-- checks run and assert.
local known_bugs = {
  -- ["ioredis under tenant_prefix"] = { blocking = { "^BLPOP reply: ...", "what is wrong" } },
}

-- One run of the checks: a describe whose setup starts slotgated (env) and
-- runs the script (lib, address(d) and args), one test per check, and
-- after(d, prefix) for what the run must have left on the cluster.
local function run(lib, title, env, address, args, after)
  title = LIBS[lib] .. " " .. title
  local prefix = "ncc:" .. title:gsub("%W", "") .. ":" .. os.time() .. ":"
  args = "--lib " .. lib .. " " .. args .. " --prefix " .. q(prefix)
  local names, why = check_names(args)
  describe(title, function()
    if not names then
      it("finds node with " .. LIBS[lib], function() error(why) end)
      return
    end
    local d, out, code, secs
    local results = {}

    setup(function()
      d = daemon.start({ env = env })
      local t0 = os.time()
      out, code = checks(q(address(d)) .. " " .. args)
      secs = os.time() - t0
      results = helper.check_results(out)
    end)
    teardown(function()
      if d then assert.is_true(daemon.stop(d), "slotgated did not stop on SIGTERM") end
    end)

    for _, name in ipairs(names) do
      it("check " .. name, function()
        local r = results[name]
        assert(r, "check " .. name .. " printed no line; the script said:\n" .. (out or ""))
        local bug = (known_bugs[title] or {})[name]
        if bug then
          assert(r ~= "ok", "check " .. name .. " passes now: remove it from known_bugs")
          assert(r:match(bug[1]), "check " .. name .. " fails otherwise than the known bug: " .. r)
          pending("known slotgated bug: " .. bug[2])
        end
        assert(r == "ok", "check " .. name .. ": " .. r)
      end)
    end

    it("prints nothing else and exits as its checks say", function()
      for line in out:gmatch("[^\n]+") do
        local name = line:match("^ok (%S+)$") or line:match("^FAIL ([^:]+): ")
        assert(name and results[name], "unexpected output: " .. line)
        assert(name ~= "setup" and name ~= "cleanup", line)
      end
      local failing = false
      for _, r in pairs(results) do failing = failing or r ~= "ok" end
      assert.equal(failing and 1 or 0, code)
      assert(secs < 120, "the checks took " .. secs .. " s")
    end)

    if after then
      it("leaves on the cluster what the policy says", function() after(d, prefix) end)
    end
  end)
end

local function tcp(d) return "127.0.0.1:" .. d.port end
local function unix(d) return d.sock end

-- each run has a slotgated of its own
for _, lib in ipairs({ "redis", "ioredis" }) do
  run(lib, "over TCP", {}, tcp, "")
  run(lib, "over the Unix socket", {}, unix, "")
  run(lib, "with a user over TCP", { SLOTGATE_USERS = "alice:alice-pw-3,bob:bob-pw-5" }, tcp,
      "--user bob --password bob-pw-5")
  run(lib, "under tenant_prefix",
      { SLOTGATE_USERS = "alice:alice-pw-3,bob:bob-pw-5",
        SLOTGATE_POLICY = helper.source_dir .. "/scripts/tenant_prefix.lua" },
      unix, "--user alice --password alice-pw-3 --tenant alice",
      function(_, prefix)
        -- the keys the library wrote are stored rewritten, in and out of MULTI
        local mark, tx = prefix .. "tenant-mark", prefix .. "tenant-mark-tx"
        assert.equal("marked by alice\n", on_cluster("GET " .. q("tenant:alice:" .. mark)))
        assert.equal("tx by alice\n", on_cluster("GET " .. q("tenant:alice:" .. tx)))
        assert.equal("0\n", on_cluster("EXISTS " .. q(mark)))
        assert.equal("0\n", on_cluster("EXISTS " .. q(tx)))
        assert.equal("0\n", on_cluster("EXISTS " .. q("tenant:default:" .. tx)))
        on_cluster("DEL " .. q("tenant:alice:" .. mark))
        on_cluster("DEL " .. q("tenant:alice:" .. tx))
      end)
end

-- ioredis's Cluster client: CLUSTER SLOTS says slotgated owns every slot
run("ioredis", "in Cluster mode over TCP", {}, tcp, "--cluster")
run("ioredis", "in Cluster mode with a user over TCP",
    { SLOTGATE_USERS = "alice:alice-pw-3" }, tcp, "--cluster --user alice --password alice-pw-3")
