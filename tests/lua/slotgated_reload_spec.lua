-- slotgated's upstreams changed without a restart (SIGHUP): seeds (a daemon
-- started in front of a dead address serves once the file names a live
-- one), pool sizes and the timeout, TLS files replaced in place (compared by
-- content); a change that takes a restart (the mode) refused whole, the old
-- settings serving on; and ROLE, CLUSTER INFO and /health agreeing while an
-- upstream cannot be served.
local helper = require "helper"
local daemon = require "daemon"

local q, slurp, write, sh = helper.shell_quote, helper.slurp, helper.write, helper.sh
local wait_for = helper.wait_for
local start, stop, cli, new_port = daemon.start, daemon.stop, daemon.cli, daemon.port
local dir = daemon.dir

daemon.ports_from(881)

local masters = helper.server_var("SG_TEST_CLUSTER_MASTERS")
local first_master = masters:match("^[^,]+")

-- The storage settings come from the file alone: the variables start()
-- sets by default are left unset.
local function file_env(more)
  local env = { TYK_GW_STORAGE_ADDRS = false, TYK_GW_STORAGE_ENABLECLUSTER = false,
                SLOTGATE_THREADS = "1" }
  for k, v in pairs(more or {}) do env[k] = v end
  return env
end

-- Writes path with a "storage" object made of fields (JSON text each).
local function storage(path, fields)
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%q: %s", k, fields[k]) end
  write(path, '{"storage": {' .. table.concat(parts, ", ") .. '}, "slotgate": {}}\n')
  return path
end

local function addrs(list) return '["' .. list:gsub(",", '", "') .. '"]' end

-- HTTP GET of d's metrics endpoint: status code and body.
local function http(port, path)
  local out = sh("curl -s -m 10 -o " .. q(dir .. "/body") .. " -w '%{http_code}' " ..
                 "http://127.0.0.1:" .. port .. path)
  return tonumber(out) or 0, slurp(dir .. "/body")
end

-- A field of INFO upstream's default section.
local function upstream_field(d, name)
  return tonumber(cli(d, "INFO upstream"):match(name .. ":(%-?%d+)"))
end

-- The most idle connections any node of the default upstream has.
local function most_idle(d)
  local most = 0
  for n in cli(d, "INFO upstream"):gmatch(",idle=(%d+)") do most = math.max(most, tonumber(n)) end
  return most
end

-- ROLE, CLUSTER INFO's state and /health, together.
local function status(d, mport)
  local role = cli(d, "ROLE")
  local state = cli(d, "CLUSTER INFO"):match("cluster_state:(%a+)")
  return role, state, (http(mport, "/health"))
end

describe("slotgated upstream settings read again on SIGHUP", function()
  teardown(daemon.stop_all)

  it("rediscovers from new seeds: started before a dead one, serves once the file names a live one",
     function()
    local mport, dead = new_port(), new_port()
    local path = storage(dir .. "/seeds.json", { enable_cluster = "true", timeout = "2",
                                                addrs = addrs("127.0.0.1:" .. dead) })
    local d = start{ args = { "-c", path },
                     env = file_env{ SLOTGATE_METRICS = "127.0.0.1:" .. mport } }
    finally(function() stop(d) end)
    assert.matches("127%.0%.0%.1:" .. dead, cli(d, "SET reload:seed v"))
    -- ROLE agrees with CLUSTER INFO and /health: nothing can be served
    local role, state, code = wait_for(function()
      local r, s, c = status(d, mport)
      if c == 503 then return r, s, c end
    end)
    assert.equal("slave\n?\n0\nconnect\n-1\n", role)
    assert.equal("fail", state)
    assert.equal(503, code)
    assert.matches("role:slave", cli(d, "INFO replication"), 1, true)
    -- the file now names a live master: no restart
    storage(path, { enable_cluster = "true", timeout = "2", addrs = addrs(first_master) })
    daemon.signal(d, "HUP")
    assert.matches("storage addresses changed %(127%.0%.0%.1:" .. dead .. " %-> " ..
                   first_master:gsub("%.", "%%.") .. "%)", daemon.wait_log(d, "storage addresses"))
    assert.is_truthy(wait_for(function() return cli(d, "SET reload:seed v") == "OK\n" end))
    assert.equal("v\n", cli(d, "GET reload:seed"))
    -- all three agree again
    role, state, code = wait_for(function()
      local r, s, c = status(d, mport)
      if c == 200 then return r, s, c end
    end)
    assert.equal("master\n0\n\n", role) -- redis-cli: the empty list of replicas
    assert.equal("ok", state)
    assert.equal(200, code)
    assert.matches("role:master", cli(d, "INFO replication"), 1, true)
    -- the whole map was found from the one seed
    assert.equal(16384, tonumber(cli(d, "CLUSTER INFO"):match("cluster_slots_ok:(%d+)")))
    assert.is_true(stop(d))
  end)

  it("takes new pool sizes and a new timeout; surplus idle connections close", function()
    local path = storage(dir .. "/pool.json", { enable_cluster = "true", addrs = addrs(masters),
                                               optimisation_max_active = "10",
                                               optimisation_max_idle = "10", timeout = "5" })
    local d = start{ args = { "-c", path }, env = file_env() }
    finally(function() stop(d) end)
    assert.equal(10, upstream_field(d, "pool_max_active"))
    assert.equal(10, upstream_field(d, "pool_max_idle"))
    assert.equal(5000, upstream_field(d, "timeout_ms"))
    -- four blocking commands at once: four connections to one node, idle after
    for i = 1, 4 do
      os.execute("redis-cli -p " .. d.port .. " BLPOP reload:{pool}" .. i .. " 1 >/dev/null 2>&1 &")
    end
    assert.is_truthy(wait_for(function() return most_idle(d) >= 4 end))
    storage(path, { enable_cluster = "true", addrs = addrs(masters), optimisation_max_active = "2",
                    optimisation_max_idle = "1", timeout = "3" })
    daemon.signal(d, "HUP")
    assert.matches("storage optimisation_max_idle changed %(10 %-> 1%)",
                   daemon.wait_log(d, "optimisation_max_idle changed"))
    assert.is_truthy(wait_for(function() return upstream_field(d, "timeout_ms") == 3000 end))
    assert.equal(2, upstream_field(d, "pool_max_active"))
    assert.equal(1, upstream_field(d, "pool_max_idle"))
    assert.is_truthy(wait_for(function() return most_idle(d) <= 1 end))
    assert.equal("OK\n", cli(d, "SET reload:{pool} v"))
    assert.is_true(stop(d))
  end)

  it("refuses a mode change whole, saying why, and serves on with the old settings", function()
    local path = storage(dir .. "/mode.json", { enable_cluster = "true", addrs = addrs(masters),
                                               timeout = "5" })
    local d = start{ args = { "-c", path }, env = file_env() }
    finally(function() stop(d) end)
    assert.equal("OK\n", cli(d, "SET reload:mode v"))
    -- one node now, and a timeout: neither is taken
    storage(path, { enable_cluster = "false", timeout = "3",
                    addrs = addrs(helper.server_var("SG_TEST_STANDALONE")) })
    daemon.signal(d, "HUP")
    assert.matches("the settings are not taken, nothing changes: storage mode changed " ..
                   "%(cluster %-> single%): it cannot change under open connections, it takes " ..
                   "a restart",
                   daemon.wait_log(d, "nothing changes"))
    assert.equal(5000, upstream_field(d, "timeout_ms"))
    assert.equal("v\n", cli(d, "GET reload:mode"))
    assert.matches("cluster_state:ok", cli(d, "CLUSTER INFO"), 1, true)
    assert.is_true(stop(d))
  end)
end)

describe("slotgated upstream TLS files replaced in place", function()
  teardown(daemon.stop_all)

  it("loads a CA file rewritten at the same path on SIGHUP; a broken one is refused", function()
    -- a CA that did not sign the nodes' certificates, at the path the settings name
    local ca = dir .. "/upstream-ca.pem"
    sh("openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 " ..
       "-keyout " .. q(dir .. "/wrong.key") .. " -out " .. q(ca) .. " -subj '/CN=wrong CA' 2>&1")
    assert.matches("BEGIN CERTIFICATE", slurp(ca))
    local d = start{ env = {
      TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_TLS_CLUSTER_MASTERS"),
      TYK_GW_STORAGE_USESSL = "true", TYK_GW_STORAGE_CAFILE = ca, TYK_GW_STORAGE_TIMEOUT = "2",
      SLOTGATE_THREADS = "1" } }
    finally(function() stop(d) end)
    assert.matches("certificate verify failed", cli(d, "SET reload:tls v"))
    -- the right CA over the same file: the path did not change, the contents did
    write(ca, slurp(helper.server_var("SG_TEST_TLS_CA")))
    daemon.signal(d, "HUP")
    assert.matches("storage TLS files changed %(their contents%): new connections use them",
                   daemon.wait_log(d, "TLS files changed"))
    assert.is_truthy(wait_for(function() return cli(d, "SET reload:tls v") == "OK\n" end))
    -- a file that does not load: the reload is refused, the context in use stays
    write(ca, "not a certificate\n")
    daemon.signal(d, "HUP")
    assert.matches("nothing changes: upstream default: TLS: cannot load the CA file \"" ..
                   ca:gsub("[%.%-]", "%%%0") .. "\"", daemon.wait_log(d, "cannot load the CA file"))
    assert.equal("v\n", cli(d, "GET reload:tls"))
    assert.is_true(stop(d))
  end)
end)
