-- Operating slotgated: users and their own policies, the metrics and health
-- endpoint, logging, the start-up checks (a port another slotgated holds),
-- the command line, the signals, and the packaged example settings.
local helper = require "helper"
local daemon = require "daemon"

local q, slurp, write, sh = helper.shell_quote, helper.slurp, helper.write, helper.sh
local wait_for = helper.wait_for
local start, stop, cli, new_port = daemon.start, daemon.stop, daemon.cli, daemon.port
local dir = daemon.dir

daemon.ports_from(901)

-- A settings file with the test cluster and a slotgate object (JSON text).
local function conf(name, slotgate)
  local path = dir .. "/" .. name
  write(path, '{"storage": {"enable_cluster": true, "addrs": ["' ..
        helper.server_var("SG_TEST_CLUSTER_MASTERS"):gsub(",", '", "') .. '"]},\n' ..
        ' "slotgate": ' .. slotgate .. '}\n')
  return path
end

describe("slotgated users", function()
  local d, common, alice_pol

  setup(function()
    common = dir .. "/common.lua"
    alice_pol = dir .. "/alice.lua"
    write(common, "return {name = 'common', prefix = 'u:{user}:', deny_commands = {'FLUSHALL'}}")
    write(alice_pol, "return {name = 'alice_only', deny_commands = {'KEYS', 'GETDEL'}}")
    local path = conf("users.json", string.format(
      '{"policy": [%q], "users": {"alice": {"password": "a-pass", "policy": %q},' ..
      ' "bob": {"password": "b-pass"}}}', common, alice_pol))
    d = start{ args = { "-c", path } }
  end)
  teardown(daemon.stop_all)

  it("lets nothing but AUTH, HELLO and QUIT through before authentication", function()
    assert.matches("NOAUTH", cli(d, "GET x"))
    assert.matches("NOAUTH", cli(d, "PING"))
    assert.matches("NOAUTH", cli(d, "INFO"))
    assert.equal("OK\n", cli(d, "QUIT"))
  end)

  it("refuses a wrong password, an unknown user and a bare password", function()
    assert.matches("WRONGPASS", cli(d, "--user alice --pass b-pass PING"))
    assert.matches("WRONGPASS", cli(d, "--user nobody --pass a-pass PING"))
    assert.matches("WRONGPASS", cli(d, "--user alice --pass a-pas PING"))
    assert.matches("WRONGPASS", cli(d, "--user alice --pass a-passx PING"))
    -- no requirepass: the default user has no password to match
    assert.matches("WRONGPASS", cli(d, "-a a-pass PING"))
    -- a failed AUTH leaves the connection unauthenticated
    assert.matches("WRONGPASS.*NOAUTH", cli(d, "", { input = "AUTH alice nope\nGET x\n" }))
  end)

  it("authenticates each user with AUTH and with HELLO 2/3 AUTH", function()
    assert.equal("PONG\n", cli(d, "--user alice --pass a-pass PING"))
    assert.equal("PONG\n", cli(d, "--user bob --pass b-pass PING"))
    local out = cli(d, "", { input = "HELLO 2 AUTH bob b-pass\nPING\n" })
    assert.matches("server\nredis\nversion", out)
    assert.matches("PONG", out)
    -- RESP3 too, and a version Redis does not have is NOPROTO
    assert.matches("proto 3", cli(d, "", { input = "HELLO 3 AUTH bob b-pass\n" }))
    assert.matches("NOPROTO", cli(d, "", { input = "HELLO 4 AUTH bob b-pass\n" }))
    assert.matches("WRONGPASS", cli(d, "", { input = "HELLO 2 AUTH bob a-pass\n" }))
  end)

  it("gives the policies the session's user", function()
    assert.equal("OK\n", cli(d, "--user bob --pass b-pass SET ukey from-bob"))
    assert.equal("OK\n", cli(d, "--user alice --pass a-pass SET ukey from-alice"))
    -- each user's keys live under its own prefix ({user} in the common policy)
    assert.equal("from-bob\n", cli(d, "--user bob --pass b-pass GET ukey"))
    assert.equal("from-alice\n", cli(d, "--user alice --pass a-pass GET ukey"))
    assert.equal("from-alice\n", daemon.cluster_cli("GET u:alice:ukey"))
    assert.equal("from-bob\n", daemon.cluster_cli("GET u:bob:ukey"))
  end)

  it("gives the policies the session's user and set in MULTI and under WATCH", function()
    local direct = "redis-cli -c -p " .. helper.server_var("SG_TEST_CLUSTER_MASTERS"):match(":(%d+)")
    -- alice's last plain command puts her set in force on her worker; bob's
    -- transaction after it must still be bob's
    local out = cli(d, "", { input = "AUTH alice a-pass\nGET ukey\nMULTI\nSET {t}tx alice-tx\nGETDEL {t}x\n" })
    assert.matches("policy alice_only refuses GETDEL", out)
    out = cli(d, "", { input = "AUTH bob b-pass\nMULTI\nSET {t}tx bob-tx\nGETDEL {t}x\nEXEC\n" ..
                     "WATCH {t}tx\nGET {t}tx\nUNWATCH\n" })
    assert.not_matches("refuses", out)
    assert.matches("\nbob%-tx\nOK\n$", out) -- GET under WATCH, then UNWATCH
    assert.equal("bob-tx\n", sh(direct .. " GET u:bob:{t}tx"))
    assert.equal("\n", sh(direct .. " GET u:default:{t}tx"))
    assert.equal("\n", sh(direct .. " GET {t}tx"))
    out = cli(d, "", { input = "AUTH alice a-pass\nMULTI\nSET {t}tx alice-tx\nEXEC\nWATCH {t}tx\nGET {t}tx\n" })
    assert.matches("alice%-tx\n$", out)
    assert.equal("alice-tx\n", sh(direct .. " GET u:alice:{t}tx"))
    sh(direct .. " DEL u:alice:{t}tx")
    sh(direct .. " DEL u:bob:{t}tx")
  end)

  it("names the keys a reply names as the client sent them, not as the policy stores them", function()
    local c = assert(daemon.connect(d.port))
    finally(function() c:close() end)
    local function call(...)
      c:send({ ... })
      return daemon.plain(assert(c:read()))
    end
    -- every key in the slot of {kn}: alice's are stored as u:alice:{kn}...
    assert.equal("+OK", call("AUTH", "alice", "a-pass"))
    call("DEL", "{kn}l", "{kn}z", "{kn}s")
    assert.equal(4, call("RPUSH", "{kn}l", "a", "b", "c", "u:alice:{kn}l"))
    assert.same({ "{kn}l", "a" }, call("BLPOP", "{kn}none", "{kn}l", "1"))
    assert.same({ "{kn}l", { "u:alice:{kn}l" } }, call("LMPOP", "1", "{kn}l", "RIGHT"))
    assert.equal(1, call("ZADD", "{kn}z", "1", "m"))
    assert.same({ "{kn}z", "m", "1" }, call("BZPOPMIN", "{kn}z", "1"))
    assert.equal("1-1", call("XADD", "{kn}s", "1-1", "f", "v"))
    assert.same({ { "{kn}s", { { "1-1", { "f", "v" } } } } }, call("XREAD", "STREAMS", "{kn}s", "0"))
    assert.equal("(nil)", call("BLPOP", "{kn}none", "0.1"))
    -- the same in a transaction: each queued command's reply in EXEC's
    assert.equal("+OK", call("MULTI"))
    for _, cmd in ipairs{ { "BLPOP", "{kn}l", "0" }, { "LMPOP", "1", "{kn}l", "LEFT" },
                          { "XREAD", "STREAMS", "{kn}s", "0" }, { "LPOP", "{kn}l" } } do
      assert.equal("+QUEUED", call(unpack(cmd)))
    end
    assert.same({ { "{kn}l", "b" }, { "{kn}l", { "c" } }, { { "{kn}s", { { "1-1", { "f", "v" } } } } },
                  "(nil)" },
                call("EXEC"))
    -- the cluster holds alice's names, prefixed
    assert.equal("1\n", daemon.cluster_cli("XLEN u:alice:{kn}s"))
    assert.equal("0\n", daemon.cluster_cli("EXISTS {kn}s"))
    daemon.cluster_cli("DEL u:alice:{kn}s")
  end)

  it("runs a user's own policy after the common ones, for that user only", function()
    assert.matches("policy common refuses FLUSHALL", cli(d, "--user alice --pass a-pass FLUSHALL"))
    assert.matches("policy common refuses FLUSHALL", cli(d, "--user bob --pass b-pass FLUSHALL"))
    assert.matches("policy alice_only refuses KEYS", cli(d, "--user alice --pass a-pass KEYS nothing*"))
    assert.equal("\n", cli(d, "--user bob --pass b-pass KEYS nothing*")) -- an empty array
  end)

  it("reloads every set on SIGHUP, or none when one fails", function()
    write(alice_pol, "return {name = 'alice_v2', deny_commands = {'DBSIZE'}}")
    daemon.signal(d, "HUP")
    assert.is_truthy(wait_for(function()
      return cli(d, "--user alice --pass a-pass DBSIZE"):match("alice_v2 refuses DBSIZE")
    end))
    assert.matches("^%d+\n$", cli(d, "--user bob --pass b-pass DBSIZE"))
    -- a broken user script: the common set is not replaced either
    write(common, "return {name = 'common_v2', deny_commands = {'FLUSHDB'}}")
    write(alice_pol, "return {")
    daemon.signal(d, "HUP")
    local failed = 'reload failed, the previous policies stay: user "alice"'
    assert.matches(failed, daemon.wait_log(d, failed), 1, true)
    assert.matches("alice_v2 refuses DBSIZE", cli(d, "--user alice --pass a-pass DBSIZE"))
    assert.matches("policy common refuses FLUSHALL", cli(d, "--user bob --pass b-pass FLUSHALL"))
    write(alice_pol, "return {name = 'alice_only', deny_commands = {'KEYS', 'GETDEL'}}")
    write(common, "return {name = 'common', prefix = 'u:{user}:', deny_commands = {'FLUSHALL'}}")
  end)

  it("takes users from SLOTGATE_USERS, beside requirepass for the default user", function()
    local e = start{ env = { SLOTGATE_USERS = "carol:c-pass,dave:d:pass",
                             SLOTGATE_REQUIREPASS = "dflt" } }
    finally(function() stop(e) end)
    assert.matches("NOAUTH", cli(e, "PING"))
    assert.equal("PONG\n", cli(e, "--user carol --pass c-pass PING"))
    assert.equal("PONG\n", cli(e, "--user dave --pass d:pass PING"))
    assert.equal("PONG\n", cli(e, "-a dflt PING"))
    assert.equal("PONG\n", cli(e, "--user default --pass dflt PING"))
    assert.matches("WRONGPASS", cli(e, "--user carol --pass dflt PING"))
    assert.is_true(stop(e))
  end)
end)

-- HTTP GET of d's metrics endpoint: status code and body.
local function http(port, path, method)
  local out = sh("curl -s -m 10 -o " .. q(dir .. "/body") .. " -w '%{http_code}' " ..
                 (method and ("-X " .. method .. " ") or "") .. "http://127.0.0.1:" .. port .. path)
  return tonumber(out) or 0, slurp(dir .. "/body")
end

-- The value of one sample (name and labels as written) in a scrape.
local function sample(text, series)
  local v = text:match("\n" .. series:gsub("[%[%]%.%-%+%*%?%(%)%%]", "%%%0") .. " (%d+)\n")
  return v and tonumber(v)
end

describe("slotgated settings read again on SIGHUP", function()
  teardown(daemon.stop_all)

  -- Reads c's next reply: its value, or nil and why.
  local function reply(c)
    local r, why = c:read()
    if not r then return nil, why end
    return r.v
  end

  it("takes new users and passwords, closes a removed user's sessions, keeps the others", function()
    local path = conf("reload.json", '{"unix_mode": "0660", "users": {"erin": {"password": "e-pass"},' ..
                      ' "frank": {"password": "f-pass"}}}')
    local d = start{ args = { "-c", path }, env = { SLOTGATE_THREADS = "1" } }
    local erin, frank, waiting
    finally(function() -- (busted keeps one finally per test)
      for _, conn in ipairs({ erin, frank, waiting }) do conn:close() end
      stop(d)
    end)
    erin, frank = assert(daemon.connect(d.port)), assert(daemon.connect(d.port))
    erin:send({ "AUTH", "erin", "e-pass" })
    frank:send({ "AUTH", "frank", "f-pass" })
    assert.equal("OK", reply(erin))
    assert.equal("OK", reply(frank))
    waiting = assert(daemon.connect(d.port)) -- connected, not authenticated

    conf("reload.json", '{"unix_mode": "0600", "users": {"erin": {"password": "e-pass-2"},' ..
         ' "gina": {"password": "g-pass"}}}')
    daemon.signal(d, "HUP")
    assert.is_truthy(wait_for(function() return cli(d, "--user gina --pass g-pass PING") == "PONG\n" end))
    -- erin stays signed in; frank's user is gone, and so is his session
    erin:send({ "PING" })
    assert.equal("PONG", reply(erin))
    frank:send({ "PING" })
    local v, why = reply(frank)
    assert.is_nil(v)
    assert.equal("closed", why)
    assert.matches("its user frank is no longer in the settings", daemon.wait_log(d, "no longer in"))
    -- the new passwords, and nothing else, from now on
    assert.matches("WRONGPASS", cli(d, "--user erin --pass e-pass PING"))
    assert.equal("PONG\n", cli(d, "--user erin --pass e-pass-2 PING"))
    assert.matches("WRONGPASS", cli(d, "--user frank --pass f-pass PING"))
    waiting:send({ "PING" })
    assert.matches("^NOAUTH", reply(waiting))
    -- what only a restart changes is said, and kept
    assert.matches("unix_mode changed %(0660 %-> 0600%): it takes a restart",
                   daemon.wait_log(d, "it takes a restart"))
    assert.equal("660", sh("stat -c %a " .. q(d.sock)):match("%d+"))

    -- a file that no longer parses: nothing changes, and why is logged
    write(path, '{"slotgate": {"users": ')
    daemon.signal(d, "HUP")
    assert.matches("the settings are not taken, nothing changes: .*reload.json",
                   daemon.wait_log(d, "nothing changes"))
    assert.equal("PONG\n", cli(d, "--user gina --pass g-pass PING"))
    erin:send({ "PING" })
    assert.equal("PONG", reply(erin))

    -- no users any more: a client waiting to authenticate is let in
    conf("reload.json", '{"unix_mode": "0660"}')
    daemon.signal(d, "HUP")
    assert.is_truthy(wait_for(function() return cli(d, "PING") == "PONG\n" end))
    waiting:send({ "PING" })
    assert.equal("PONG", reply(waiting))
    assert.is_true(stop(d))
  end)
end)

describe("slotgated upstream credentials read again on SIGHUP", function()
  teardown(daemon.stop_all)

  -- The harness's ACL server, as its admin user.
  local acl_addr = helper.server_var("SG_TEST_ACL")
  local function acl(args)
    return daemon.node_cli(acl_addr, "--no-auth-warning --user " .. helper.server_var("SG_TEST_ACL_USER") ..
                           " --pass " .. helper.server_var("SG_TEST_ACL_PASS") .. " " .. args)
  end
  local function storage(path, password, timeout)
    write(path, string.format('{"storage": {"username": "sgrot", "password": %q, "timeout": %d}, ' ..
          '"slotgate": {}}\n', password, timeout))
    return path
  end

  it("authenticates new connections with a rotated password", function()
    assert.equal("OK\n", acl("ACL SETUSER sgrot reset on '>rot-1' '~*' '&*' '+@all'"))
    local path = storage(dir .. "/rotate.json", "rot-1", 5)
    local d = start{ args = { "-c", path }, env = { SLOTGATE_THREADS = "1", TYK_GW_STORAGE_ADDRS = acl_addr,
                                                    TYK_GW_STORAGE_ENABLECLUSTER = "false" } }
    finally(function()
      acl("ACL DELUSER sgrot")
      stop(d)
    end)
    assert.equal("OK\n", cli(d, "SET rot:k v1"))
    -- the password rotated on the server, the gateway's connection dropped:
    -- the old password no longer gets in
    assert.equal("OK\n", acl("ACL SETUSER sgrot resetpass '>rot-2'"))
    acl("CLIENT KILL USER sgrot")
    assert.is_truthy(wait_for(function() return cli(d, "GET rot:k"):find("WRONGPASS", 1, true) end))
    -- the new one read on SIGHUP, with the timeout's change
    storage(path, "rot-2", 7)
    daemon.signal(d, "HUP")
    assert.matches("storage timeout changed %(5 %-> 7%): taken for new connections",
                   daemon.wait_log(d, "storage timeout"))
    assert.matches("storage password changed: new connections authenticate with it",
                   daemon.wait_log(d, "storage password"))
    assert.is_truthy(wait_for(function() return cli(d, "GET rot:k") == "v1\n" end))
    assert.equal("OK\n", cli(d, "SET rot:k v2"))
    -- a storage file that no longer reads: nothing changes, and why is logged
    write(path, '{"storage": {"addrs": 7}}')
    daemon.signal(d, "HUP")
    assert.matches("nothing changes: .*rotate.json", daemon.wait_log(d, "rotate.json"))
    acl("CLIENT KILL USER sgrot")
    assert.is_truthy(wait_for(function() return cli(d, "GET rot:k") == "v2\n" end))
    assert.is_true(stop(d))
  end)
end)

describe("slotgated metrics and health", function()
  teardown(daemon.stop_all)

  it("says healthy once every worker has the full slot map, and counts what it serves", function()
    local mport = new_port()
    local d = start{ env = { SLOTGATE_METRICS = "127.0.0.1:" .. mport, SLOTGATE_THREADS = "3" } }
    finally(function() stop(d) end)
    -- no command yet: asking is what starts the slot map discovery
    local code, body = wait_for(function()
      local c, b = http(mport, "/health")
      if c == 200 then return c, b end
    end)
    assert.equal(200, code)
    assert.equal("ok\n", body)
    -- and CLUSTER INFO with it, from whichever worker answers
    local info = cli(d, "CLUSTER INFO")
    assert.matches("cluster_state:ok", info, 1, true)
    assert.matches("cluster_slots_ok:16384", info, 1, true)
    local _, before = http(mport, "/metrics")
    assert.equal(3, sample(before, "slotgate_workers_answered"))
    assert.equal(16384, sample(before, 'slotgate_upstream_slots_covered{upstream="default"}'))
    local c0 = sample(before, "slotgate_commands_total")
    local e0 = sample(before, "slotgate_error_replies_total")
    assert.equal("OK\n", cli(d, "MSET m:{a} 1 m:{b} 2 m:{c} 3"))
    for _ = 1, 20 do cli(d, "GET m:{a}") end
    assert.matches("ERR", cli(d, "INCR m:{a} extra"))
    local _, after = http(mport, "/metrics")
    assert.equal(c0 + 22, sample(after, "slotgate_commands_total"))
    assert.is_true(sample(after, "slotgate_error_replies_total") >= e0 + 1)
    -- every master is listed, with commands summed over the workers
    local sent = 0
    for addr in helper.server_var("SG_TEST_CLUSTER_MASTERS"):gmatch("[^,]+") do
      assert.equal(1, sample(after, 'slotgate_node_master{upstream="default",node="' .. addr .. '"}'))
      sent = sent + sample(after, 'slotgate_node_commands_total{upstream="default",node="' .. addr .. '"}')
    end
    assert.is_true(sent >= 23)
    assert.matches("# TYPE slotgate_node_connections gauge", after, 1, true)
    assert.is_truthy(sample(after, 'slotgate_upstream_map_refreshes_total{upstream="default"}') >= 3)
    -- only GET on the two paths
    assert.equal(404, (http(mport, "/nothing")))
    assert.equal(405, (http(mport, "/metrics", "POST")))
    assert.is_true(stop(d))
  end)

  it("counts the clients connected and the policies' decisions", function()
    local mport = new_port()
    local pol = dir .. "/deny.lua"
    write(pol, "return {name = 'deny', deny_commands = {'FLUSHALL'}}")
    local d = start{ env = { SLOTGATE_METRICS = "127.0.0.1:" .. mport, SLOTGATE_POLICY = pol } }
    finally(function() stop(d) end)
    os.execute("redis-cli -p " .. d.port .. " BLPOP ops:none 3 >/dev/null 2>&1 &")
    local _, text = wait_for(function()
      local c, b = http(mport, "/metrics")
      if sample(b, "slotgate_clients_connected") == 1 then return c, b end
    end)
    assert.equal(1, sample(text, "slotgate_clients_connected"))
    assert.matches("refuses FLUSHALL", cli(d, "FLUSHALL"))
    local _, after = http(mport, "/metrics")
    assert.equal(1, sample(after, "slotgate_policy_denied_total"))
    assert.equal(1, sample(after, "slotgate_policy_scripts"))
  end)

  it("says unhealthy, and why, when an upstream cannot be reached", function()
    local mport, dead = new_port(), new_port()
    local d = start{ env = { SLOTGATE_METRICS = "127.0.0.1:" .. mport,
                             TYK_GW_STORAGE_ADDRS = "127.0.0.1:" .. dead } }
    finally(function() stop(d) end)
    local code, body = wait_for(function()
      local c, b = http(mport, "/health")
      if c == 503 and b:match("127%.0%.0%.1:" .. dead) then return c, b end
    end)
    assert.equal(503, code)
    assert.matches("upstream default: worker 0: 0 of 16384 slots served: .*127%.0%.0%.1:" .. dead, body)
    local _, text = http(mport, "/metrics")
    assert.equal(0, sample(text, 'slotgate_upstream_slots_covered{upstream="default"}'))
    -- CLUSTER INFO agrees: cluster-aware clients are not told all is well
    local info = cli(d, "CLUSTER INFO")
    assert.matches("cluster_state:fail", info, 1, true)
    assert.matches("cluster_slots_ok:0", info, 1, true)
    assert.matches("cluster_slots_fail:16384", info, 1, true)
  end)

  it("serves a standalone upstream: healthy once connected", function()
    local mport = new_port()
    local d = start{ env = { SLOTGATE_METRICS = "127.0.0.1:" .. mport, SLOTGATE_THREADS = "1",
                             TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_STANDALONE"),
                             TYK_GW_STORAGE_ENABLECLUSTER = "false" } }
    finally(function() stop(d) end)
    assert.is_truthy(wait_for(function() return http(mport, "/health") == 200 end))
  end)

  it("refuses to start when the metrics address is taken, naming it", function()
    local mport = new_port()
    local d = start{ env = { SLOTGATE_METRICS = "127.0.0.1:" .. mport } }
    finally(function() stop(d) end)
    local code, _, err = helper.run({ helper.slotgated }, {
      TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
      TYK_GW_STORAGE_ENABLECLUSTER = "true",
      SLOTGATE_LISTEN = "127.0.0.1:" .. new_port(),
      SLOTGATE_METRICS = "127.0.0.1:" .. mport })
    assert.equal(1, code)
    assert.matches("metrics 127%.0%.0%.1:" .. mport .. ": Address already in use", err)
  end)
end)

describe("slotgated start-up and signals", function()
  teardown(daemon.stop_all)

  local storage = function()
    return { TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
             TYK_GW_STORAGE_ENABLECLUSTER = "true" }
  end

  it("refuses a TCP port another slotgated listens on, naming the address", function()
    local d = start()
    finally(function() stop(d) end)
    local env = storage()
    env.SLOTGATE_LISTEN = "127.0.0.1:" .. new_port() .. ",127.0.0.1:" .. d.port
    local code, _, err = helper.run({ helper.slotgated }, env)
    assert.equal(1, code)
    assert.matches("listen 127.0.0.1:" .. d.port .. ": the address is in use", err, 1, true)
    -- the wildcard address covers it too
    env.SLOTGATE_LISTEN = "0.0.0.0:" .. d.port
    code, _, err = helper.run({ helper.slotgated }, env)
    assert.equal(1, code)
    assert.matches("listen 0.0.0.0:" .. d.port .. ": the address is in use", err, 1, true)
    -- the first one still serves every client
    for _ = 1, 10 do assert.equal("PONG\n", cli(d, "PING")) end
  end)

  it("refuses a Unix socket another slotgated serves, but takes over a stale one", function()
    local d = start()
    finally(function() stop(d) end)
    local env = storage()
    env.SLOTGATE_LISTEN = "unix:" .. d.sock
    local code, _, err = helper.run({ helper.slotgated }, env)
    assert.equal(1, code)
    assert.matches("listen unix:" .. d.sock .. ": a process serves this socket already", err, 1, true)
    assert.equal("PONG\n", cli(d, "PING", { unix = true }))
    -- killed without a chance to clean up: its socket file stays, serving no one
    daemon.signal(d, "KILL")
    assert.equal(137, daemon.exit_status(d))
    local e = start{ port = d.port }
    finally(function() stop(e) end)
    assert.equal("PONG\n", cli(e, "PING", { unix = true }))
  end)

  it("stops on SIGINT as on SIGTERM: finishes what is in flight, exits 0", function()
    local d = start()
    os.execute("redis-cli -p " .. d.port .. " BLPOP ops:sigint 1 >" .. q(dir .. "/blpop") .. " 2>&1 &")
    assert.is_truthy(wait_for(function()
      return cli(d, "INFO"):match("connected_clients:2")
    end))
    assert.is_true(stop(d, "INT"))
    assert.equal(0, daemon.exit_status(d))
    assert.matches("SIGINT: finishing in%-flight commands", slurp(d.log))
    assert.equal("\n", slurp(dir .. "/blpop")) -- the pop timed out normally: a nil
    d = start()
    assert.is_true(stop(d, "TERM"))
    assert.equal(0, daemon.exit_status(d))
  end)

  it("answers -v, -h and a wrong option", function()
    local code, out = helper.run({ helper.slotgated, "-v" })
    assert.equal(0, code)
    assert.matches("^slotgated %d+%.%d+%.%d+\n$", out)
    code, out = helper.run({ helper.slotgated, "-h" })
    assert.equal(0, code)
    assert.matches("^usage: slotgated", out)
    local _, err
    code, _, err = helper.run({ helper.slotgated, "--bogus" })
    assert.equal(2, code)
    assert.matches("usage: slotgated", err, 1, true)
  end)

  it("logs at the level asked, and to syslog instead of stderr when asked", function()
    local d = start{ env = { SLOTGATE_LOGLEVEL = "debug" } }
    assert.is_true(stop(d))
    assert.matches("info: serving with 2 worker", slurp(d.log))
    d = start{ env = { SLOTGATE_LOGLEVEL = "warn" } }
    assert.is_true(stop(d))
    assert.equal(0, daemon.exit_status(d))
    assert.is_nil(slurp(d.log):match("info:"))
    d = start{ env = { SLOTGATE_SYSLOG = "true" } }
    assert.is_true(stop(d))
    assert.equal(0, daemon.exit_status(d))
    assert.equal("", slurp(d.log))
  end)
end)

describe("slotgated's packaging", function()
  local src = helper.source_dir

  it("ships an example settings file that --check accepts, every setting explained", function()
    local path = src .. "/packaging/slotgate.example.json"
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", path })
    assert.equal(0, code, err)
    assert.is_nil(out:match("# warnings"), out)
    local cjson = require "cjson"
    local example = cjson.decode(slurp(path))
    local comments = example._slotgate_comments
    -- the settings --check lists: each one is in the example, with its comment
    local listed = 0
    for key in out:match("%[slotgated%]\n(.*)$"):gmatch("([%w_]+) = ") do
      listed = listed + 1
      -- the TLS settings are explained, not set: set without a tls: address
      -- they only earn a warning
      if not key:match("^tls_") then
        assert.is_not_nil(example.slotgate[key], "the example lacks " .. key)
      end
      assert.is_string(comments[key], "no comment on " .. key)
    end
    assert.is_true(listed >= 16)
    for key in pairs(comments) do
      if not key:match("^tls_") then assert.is_not_nil(example.slotgate[key], key) end
    end
  end)

  it("ships a systemd unit that reloads on SIGHUP, restarts on failure and is hardened", function()
    local unit = slurp(src .. "/packaging/slotgated.service.in")
    for _, line in ipairs({ "Type=simple", "ExecReload=/bin/kill -HUP $MAINPID",
                            "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                            "ReadWritePaths=/run/slotgate", "User=slotgate",
                            "ExecStart=@CMAKE_INSTALL_FULL_BINDIR@/slotgated -c " }) do
      assert.matches("\n" .. line, unit, 1, true)
    end
    -- the build fills in the binary's path
    local built = slurp(helper.server_var("SG_BUILD_DIR") .. "/slotgated.service")
    assert.matches("\nExecStart=/[^@\n]*/slotgated %-c /etc/slotgate/slotgate.json\n", built)
  end)
end)
