-- slotgated driven by a client library that is not ours: redis-py (Debian's
-- python3-redis) runs tests/lua/redis_py_checks.py against slotgated in front
-- of the real cluster, over TCP, over the Unix socket, with users (AUTH name
-- password) and under scripts/tenant_prefix.lua. Each line the script prints
-- (`ok NAME` / `FAIL NAME: reason`) is one test here, so a failure names the
-- check. Without /usr/bin/python3 or its redis module the spec fails (it does
-- not skip): tools/install-deps.sh installs them.
local helper = require "helper"

local q = helper.shell_quote
local PYTHON = "/usr/bin/python3" -- Debian's, as CI has: a pyenv python3 lacks the module
local CHECKS = helper.source_dir .. "/tests/lua/redis_py_checks.py"
local INSTALL = "run tools/install-deps.sh (it installs python3-redis)"

local daemon = require "daemon"
local sh = helper.sh

-- Runs the checks script with args; returns its output and exit status.
local function checks(args)
  local out = sh("timeout 300 " .. q(PYTHON) .. " " .. q(CHECKS) .. " " .. args .. "; echo \"exit=$?\"")
  local body, code = out:match("^(.-)exit=(%d+)\n$")
  return body or out, tonumber(code)
end

-- The names of the checks args select, or nil and why the script cannot run.
local function check_names(args)
  if not io.open(PYTHON) then
    return nil, PYTHON .. " is missing: " .. INSTALL
  end
  local out, code = checks("--list " .. args)
  if code ~= 0 then
    return nil, PYTHON .. " cannot run the redis-py checks (" .. out:gsub("\n$", "") .. "): " .. INSTALL
  end
  local names = {}
  for name in out:gmatch("[^\n]+") do names[#names + 1] = name end
  return names
end

daemon.ports_from(741) -- 741..749 are this spec's

-- redis-cli -c on the first master: what the cluster really holds.
local function on_cluster(args)
  local port = helper.server_var("SG_TEST_CLUSTER_MASTERS"):match(":(%d+)")
  return sh("redis-cli -c -p " .. port .. " " .. args)
end

-- Known slotgated bugs, by run and check: the check must still fail exactly
-- so (a fix makes this test fail: then remove the entry), and the test is
-- reported pending with the bug. Not weakened: the checks run and assert.
local known_bugs = {
  -- ["under tenant_prefix"] = { blocking = { "^BLPOP reply: ...", "what is wrong" } },
}

-- One run of the checks: a describe whose setup starts slotgated (env) and
-- runs the script (address(d) and args), one test per check, and after(d,
-- prefix) for what the run must have left on the cluster.
local function run(title, env, address, args, after)
  local prefix = "pyc:" .. title:gsub("%W", "") .. ":" .. os.time() .. ":"
  args = args .. " --prefix " .. q(prefix)
  local names, why = check_names(args)
  describe("redis-py " .. title, function()
    if not names then
      it("finds /usr/bin/python3 with the redis module", function() error(why) end)
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

-- each run has a slotgated of its own
local plain_env = {}
run("over TCP", plain_env, function(d) return "127.0.0.1:" .. d.port end, "")
run("over the Unix socket", plain_env, function(d) return d.sock end, "")

local users = { SLOTGATE_USERS = "alice:alice-pw-3,bob:bob-pw-5" }
run("with a user over TCP", users, function(d) return "127.0.0.1:" .. d.port end,
    "--user alice --password alice-pw-3")
run("with a user over the Unix socket", users, function(d) return d.sock end,
    "--user bob --password bob-pw-5")

run("under tenant_prefix",
    { SLOTGATE_USERS = "alice:alice-pw-3", SLOTGATE_POLICY = helper.source_dir .. "/scripts/tenant_prefix.lua" },
    function(d) return "127.0.0.1:" .. d.port end,
    "--user alice --password alice-pw-3 --tenant alice",
    function(_, prefix)
      -- the keys redis-py wrote are stored rewritten, in and out of MULTI
      local mark, tx = prefix .. "tenant-mark", prefix .. "tenant-mark-tx"
      assert.equal("marked by alice\n", on_cluster("GET " .. q("tenant:alice:" .. mark)))
      assert.equal("tx by alice\n", on_cluster("GET " .. q("tenant:alice:" .. tx)))
      assert.equal("0\n", on_cluster("EXISTS " .. q(mark)))
      assert.equal("0\n", on_cluster("EXISTS " .. q(tx)))
      assert.equal("0\n", on_cluster("EXISTS " .. q("tenant:default:" .. tx)))
      on_cluster("DEL " .. q("tenant:alice:" .. mark))
      on_cluster("DEL " .. q("tenant:alice:" .. tx))
    end)
