-- slotgated driven by a client library that is not ours: redis-py (Debian's
-- python3-redis) runs tests/lua/redis_py_checks.py against slotgated in front
-- of the real cluster, over TCP, over the Unix socket, with users (AUTH name
-- password) and under scripts/tenant_prefix.lua. Each line the script prints
-- (`ok NAME` / `FAIL NAME: reason`) is one test here, so a failure names the
-- check. Without /usr/bin/python3 or its redis module the spec fails (it does
-- not skip): tools/install-deps.sh installs them.
local helper = require "helper"
local daemon = require "daemon"
local checks = require "client_checks"

local q = helper.shell_quote
local PYTHON = "/usr/bin/python3" -- Debian's, as CI has: a pyenv python3 lacks the module
local SCRIPT = checks.script("timeout 300 " .. q(PYTHON) .. " " ..
                             q(helper.source_dir .. "/tests/lua/redis_py_checks.py"),
                             "run tools/install-deps.sh (it installs python3-redis), which " ..
                             "uses " .. PYTHON)

daemon.ports_from(741) -- 741..749 are this spec's

-- Known slotgated bugs, by run and check (client_checks.run's known_bugs).
local known_bugs = {
  -- ["under tenant_prefix"] = { blocking = { "^BLPOP reply: ...", "what is wrong" } },
}

-- One run: slotgated started with env, the script at address(d) with args,
-- after(d, prefix) for what the run must have left on the cluster.
local function run(title, env, address, args, after)
  local prefix = "pyc:" .. title:gsub("%W", "") .. ":" .. os.time() .. ":"
  checks.run{ script = SCRIPT, title = "redis-py " .. title, what = PYTHON .. " with redis-py",
              env = env, address = address, args = args .. " --prefix " .. q(prefix),
              known_bugs = known_bugs[title],
              after = after and function(d) after(d, prefix) end }
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
    checks.tenant_keys_rewritten)
