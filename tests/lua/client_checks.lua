-- client_checks.lua — what the specs share that drive slotgated with a client
-- library not ours (redis-py, node-redis, ioredis): a checks script prints one
-- line a check, `ok NAME` or `FAIL NAME: reason`, and each line becomes a test.
-- Without the script's runtime or library the spec fails, naming what to
-- install; it does not skip.
--
--   local checks = require "client_checks"
--   local script = checks.script("timeout 300 node tests/node/x.js", "npm ci ...")
--   checks.run{ script = script, title = "node-redis over TCP", what = "node-redis",
--               env = {...}, address = function(d) ... end, args = "--prefix p",
--               after = function(d) ... end, known_bugs = { name = {pattern, why} } }
local helper = require "helper"
local daemon = require "daemon"

local checks = {}

-- A checks script run by the shell command cmd (its arguments appended):
-- s.run(args) gives its output and exit status; s.names(args) the names of
-- the checks args select (its --list), or nil and why it cannot run.
function checks.script(cmd, install)
  local s = {}
  function s.run(args)
    local out = helper.sh(cmd .. " " .. args .. "; echo \"exit=$?\"")
    local body, code = out:match("^(.-)exit=(%d+)\n$")
    return body or out, tonumber(code)
  end
  function s.names(args)
    local out, code = s.run("--list " .. args)
    if code ~= 0 then
      return nil, "cannot run the checks (" .. out:gsub("\n$", "") .. "): " .. install
    end
    local names = {}
    for name in out:gmatch("[^\n]+") do names[#names + 1] = name end
    return names
  end
  return s
end

-- One run: a describe whose setup starts slotgated (o.env) and runs the
-- script at o.address(d) with o.args; one test per check; a test that the
-- script printed nothing else and exited as its checks say; and o.after(d)
-- for what the run must have left behind. o.known_bugs: by check name,
-- {pattern, why}: the check must still fail so (a fix makes the test fail:
-- then remove the entry) and is reported pending with the bug.
function checks.run(o)
  -- busted gives each spec file its describe, it ... in the file's environment
  local env = getfenv(2)
  local describe, it, setup, teardown, pending = env.describe, env.it, env.setup,
                                                  env.teardown, env.pending
  local assert = env.assert
  local names, why = o.script.names(o.args)
  local known = o.known_bugs or {}
  describe(o.title, function()
    if not names then
      it("finds " .. o.what, function() error(why) end)
      return
    end
    local d, out, code, secs
    local results = {}

    setup(function()
      d = daemon.start({ env = o.env })
      local t0 = os.time()
      out, code = o.script.run(helper.shell_quote(o.address(d)) .. " " .. o.args)
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
        local bug = known[name]
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
        local name = line:match("^ok (.+)$") or line:match("^FAIL ([^:]+): ")
        assert(name and results[name], "unexpected output: " .. line)
        assert(name ~= "setup" and name ~= "cleanup", line)
      end
      local failing = false
      for _, r in pairs(results) do failing = failing or r ~= "ok" end
      assert.equal(failing and 1 or 0, code)
      assert(secs < 120, "the checks took " .. secs .. " s")
    end)

    if o.after then
      it("leaves on the cluster what the policy says", function() o.after(d) end)
    end
  end)
end

-- redis-cli -c on the cluster's first master: what the cluster really holds.
function checks.on_cluster(args)
  local port = helper.server_var("SG_TEST_CLUSTER_MASTERS"):match(":(%d+)")
  return helper.sh("redis-cli -c -p " .. port .. " " .. args)
end

-- The after of a run under scripts/tenant_prefix.lua as user alice: the
-- keys the checks' `tenant` check wrote (PREFIX tenant-mark, and
-- tenant-mark-tx in MULTI) are stored rewritten, under tenant:alice: only.
function checks.tenant_keys_rewritten(_, prefix)
  local assert, q, on_cluster = getfenv(2).assert, helper.shell_quote, checks.on_cluster
  local mark, tx = prefix .. "tenant-mark", prefix .. "tenant-mark-tx"
  assert.equal("marked by alice\n", on_cluster("GET " .. q("tenant:alice:" .. mark)))
  assert.equal("tx by alice\n", on_cluster("GET " .. q("tenant:alice:" .. tx)))
  assert.equal("0\n", on_cluster("EXISTS " .. q(mark)))
  assert.equal("0\n", on_cluster("EXISTS " .. q(tx)))
  assert.equal("0\n", on_cluster("EXISTS " .. q("tenant:default:" .. tx)))
  on_cluster("DEL " .. q("tenant:alice:" .. mark))
  on_cluster("DEL " .. q("tenant:alice:" .. tx))
end

return checks
