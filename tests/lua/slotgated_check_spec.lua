-- slotgated --check: the operator's view of the settings reader.
local helper = require "helper"
local data = helper.source_dir .. "/tests/data/"

describe("slotgated --check", function()
  it("rejects Tyk's seed example naming the line and column", function()
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", data .. "seed-tyk.conf" })
    assert.are_not.equal(0, code)
    assert.equal("", out)
    assert.matches("seed%-tyk%.conf:8:20: expected ':' after the key \"server3: \"", err)
    assert.matches("closing quote missing", err, 1, true)
  end)

  it("accepts the corrected example: three seeds, cluster mode", function()
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", data .. "seed-tyk-fixed.conf" })
    assert.equal(0, code, err)
    assert.matches("\nmode = cluster    # resolved\n", out, 1, true)
    assert.matches("\naddresses = server1:6379,server2:6380,server3:6381    # file ", out, 1, true)
  end)

  it("reads TYK_GW_STORAGE_MAXACTIVE=010 as 8 and says where it came from", function()
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", data .. "seed-tyk-fixed.conf" },
      { TYK_GW_STORAGE_MAXACTIVE = "010" })
    assert.equal(0, code, err)
    assert.matches("\noptimisation_max_active = 8    # env TYK_GW_STORAGE_MAXACTIVE\n", out, 1, true)
  end)

  it("refuses TYK_GW_STORAGE_ENABLECLUSTER=yes naming the variable", function()
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", data .. "seed-tyk-fixed.conf" },
      { TYK_GW_STORAGE_ENABLECLUSTER = "yes" })
    assert.are_not.equal(0, code)
    assert.equal("", out)
    assert.matches('TYK_GW_STORAGE_ENABLECLUSTER="yes": expected a boolean', err, 1, true)
  end)

  it("works from the environment alone", function()
    local code, out, err = helper.run({ helper.slotgated, "--check" },
      { TYK_GW_STORAGE_ADDRS = "10.0.0.1:7000,10.0.0.2:7000", TYK_GW_STORAGE_ENABLECLUSTER = "true",
        TYK_GW_STORAGE_PASSWORD = "hunter2" })
    assert.equal(0, code, err)
    assert.matches("from the environment only", out, 1, true)
    assert.matches("\naddresses = 10.0.0.1:7000,10.0.0.2:7000    # env TYK_GW_STORAGE_ADDRS\n", out, 1, true)
    assert.matches("\npassword = ********    # env TYK_GW_STORAGE_PASSWORD\n", out, 1, true)
    assert.is_nil(out:find("hunter2", 1, true))
  end)

  it("falls back to Tyk's defaults with no file and no variables", function()
    local code, out = helper.run({ helper.slotgated, "--check" })
    assert.equal(0, code)
    assert.matches("\naddresses = localhost:6379    # default\n", out, 1, true)
    assert.matches("\nmode = single    # resolved\n", out, 1, true)
  end)

  it("reads the other shapes", function()
    local dir = helper.write(os.tmpname(),
      '{"redis_addrs": ["d1:1", "d2:2"], "enable_cluster": true, "redis_password": "x"}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", dir })
    assert.equal(0, code, err)
    assert.matches("dashboard shape", out, 1, true)
    assert.matches("\nredis_password = ********", out, 1, true)
    code, out, err = helper.run({ helper.slotgated, "--check", "--shape", "pump", "-c", dir })
    assert.equal(0, code, err)
    assert.matches("pump shape", out, 1, true)
    os.remove(dir)
  end)

  it("turns TLS on for a pump.conf with only the deprecated redis_use_ssl, and says so", function()
    -- Tyk Pump ORs redis_use_ssl (and redis_ssl_insecure_skip_verify) into use_ssl: the
    -- connections use TLS, so --check must not print use_ssl = false.
    local path = helper.write(os.tmpname(),
      '{"analytics_storage_config": {"addrs": ["p1:6379"],\n' ..
      '  "redis_use_ssl": true, "redis_ssl_insecure_skip_verify": true}}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", path })
    os.remove(path)
    assert.equal(0, code, err)
    assert.matches("pump shape", out, 1, true)
    assert.matches("\nuse_ssl = true    # file " .. path .. ":2:20, deprecated " ..
      "analytics_storage_config.redis_use_ssl, OR-ed in\n", out, 1, true)
    assert.matches("\nssl_insecure_skip_verify = true    # file " .. path .. ":2:60, deprecated " ..
      "analytics_storage_config.redis_ssl_insecure_skip_verify, OR-ed in\n", out, 1, true)
    assert.matches("\nredis_use_ssl = true    # file " .. path .. ":2:20\n", out, 1, true)
    assert.is_nil(out:find("use_ssl = false", 1, true))
  end)

  it("names a missing file and a bad option", function()
    local code, _, err = helper.run({ helper.slotgated, "--check", "-c", "/nonexistent/tyk.conf" })
    assert.are_not.equal(0, code)
    assert.matches("/nonexistent/tyk.conf: cannot open", err, 1, true)
    code, _, err = helper.run({ helper.slotgated, "--check", "--shape", "nginx" })
    assert.equal(2, code)
    assert.matches('--shape "nginx"', err, 1, true)
  end)

  it("prints its version", function()
    local code, out = helper.run({ helper.slotgated, "--version" })
    assert.equal(0, code)
    assert.matches("^slotgated %d+%.%d+%.%d+\n$", out)
  end)

  -- slotgated's own settings: the "slotgate" object and SLOTGATE_* variables

  local function write_conf(text) return helper.write(os.tmpname(), text) end

  it("shows slotgated's own settings with their sources after the storage settings", function()
    local code, out, err = helper.run({ helper.slotgated, "--check" })
    assert.equal(0, code, err)
    local storage, own = out:find("\n[default]", 1, true), out:find("\n[slotgated]\n", 1, true)
    assert.truthy(storage)
    assert.truthy(own)
    assert.is_true(own > storage)
    assert.matches("\nlisten = 127.0.0.1:6380    # default\n", out, 1, true)
    assert.matches("\nunix_mode = 0660    # default\n", out, 1, true)
    assert.matches("\nthreads = %d+    # default %(%d+ cores online%)\n", out)
    assert.matches("\nmax_request_bytes = 536870912    # default\n", out, 1, true)
    assert.matches("\nlog_level = info    # default\n", out, 1, true)
  end)

  it("reads the slotgate object of the file, and SLOTGATE_* over it", function()
    local path = write_conf('{"storage": {"port": 6379},\n'
      .. ' "slotgate": {"listen": ["127.0.0.1:7000", "unix:/run/sg.sock"], "threads": 2,\n'
      .. '  "requirepass": "hunter2", "users": {"alice": {"password": "wonderland"}},\n'
      .. '  "upstreams": {"sessions": {"port": 7001}}}}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", path },
      { SLOTGATE_THREADS = "3", SLOTGATE_METRICS = "127.0.0.1:9121" })
    assert.equal(0, code, err)
    assert.matches("\nlisten = 127.0.0.1:7000,unix:/run/sg.sock    # file " .. path .. ":2:25\n", out, 1, true)
    assert.matches("\nthreads = 3    # env SLOTGATE_THREADS\n", out, 1, true)
    assert.matches("\nmetrics = 127.0.0.1:9121    # env SLOTGATE_METRICS\n", out, 1, true)
    assert.matches("\nrequirepass = ********    # file " .. path .. ":3:18\n", out, 1, true)
    assert.matches("\nusers = alice:********    # file ", out, 1, true)
    assert.is_nil(out:find("hunter2", 1, true))
    assert.is_nil(out:find("wonderland", 1, true))
    -- the named upstream beside them is still the core's
    assert.matches("\n[sessions]    # slotgate.upstreams.sessions\n", out, 1, true)
    assert.is_nil(out:find('unknown key "upstreams"', 1, true))
    os.remove(path)
  end)

  it("refuses a bad SLOTGATE_LISTEN naming the variable", function()
    local code, out, err = helper.run({ helper.slotgated, "--check" },
      { SLOTGATE_LISTEN = "127.0.0.1:6380,::1:6380" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches('SLOTGATE_LISTEN="127.0.0.1:6380,::1:6380": slotgate.listen: item 2: "::1:6380" '
      .. "is not HOST:PORT (an IPv6 host goes in brackets", err, 1, true)
    code, out, err = helper.run({ helper.slotgated, "--check" }, { SLOTGATE_LISTEN = "unix:run/sg.sock" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("the socket path must be absolute", err, 1, true)
  end)

  it("refuses a bad value in the slotgate object naming the line and column", function()
    local path = write_conf('{"storage": {},\n "slotgate": {\n  "threads": 1000\n }\n}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", path })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches(path .. ":3:14: slotgate.threads: 1000 is out of range (expected 1 to 256)", err, 1, true)
    os.remove(path)
  end)

  it("names the storage's error and its own in one run", function()
    local code, out, err = helper.run({ helper.slotgated, "--check" },
      { TYK_GW_STORAGE_ENABLECLUSTER = "yes", SLOTGATE_SYSLOG = "yes" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches('TYK_GW_STORAGE_ENABLECLUSTER="yes"', err, 1, true)
    assert.matches('SLOTGATE_SYSLOG="yes": expected a boolean', err, 1, true)
  end)

  it("keeps secrets out of messages", function()
    local code, _, err = helper.run({ helper.slotgated, "--check" }, { SLOTGATE_USERS = "alice:s3cr3t,bob" })
    assert.equal(1, code)
    assert.matches("SLOTGATE_USERS (value not shown): expected NAME:PASSWORD", err, 1, true)
    assert.is_nil(err:find("s3cr3t", 1, true))
  end)

  it("warns of unknown keys in the slotgate object", function()
    local path = write_conf('{"storage": {}, "slotgate": {"thread": 4}}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", path })
    assert.equal(0, code, err)
    assert.matches('# - ' .. path .. ':1:30: slotgate: unknown key "thread" ignored\n', out, 1, true)
    os.remove(path)
  end)

  it("says a file that cannot be parsed once", function()
    local path = write_conf('{"storage": {}, "slotgate": {"threads": 2,}}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", path })
    assert.equal(1, code)
    assert.equal("", out)
    local _, n = err:gsub("expected a key in double quotes", "")
    assert.equal(1, n)
    os.remove(path)
  end)

  it("--help documents the signals and the endpoints", function()
    -- each option, setting and variable by name: slotgated_man_spec.lua, from the tables
    local code, out = helper.run({ helper.slotgated, "--help" })
    assert.equal(0, code)
    assert.matches('"slotgate"', out, 1, true)
    for _, word in ipairs({ "SIGTERM", "SIGINT", "SIGHUP", "/metrics", "/health" }) do
      assert.matches(word, out, 1, true)
    end
  end)
end)

-- Several files: the storage they must share compared (issue #16 item 1)
describe("slotgated --check with several files", function()
  local function conf(text) return helper.write(os.tmpname(), text) end

  it("names a difference in enable_cluster and in one seed with both files' fields", function()
    local gw = conf('{"storage": {"enable_cluster": true,\n'
      .. '  "addrs": ["r1:7000", "r2:7001"], "password": "hunter2"}}')
    local db = conf('{"redis_addrs": ["r1:7000", "r3:7002"],\n "redis_password": "wonderland"}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", gw, "-c", db })
    assert.equal(3, code, err)
    -- each file's own settings first, under a heading
    assert.matches("# ==== " .. gw .. " (file 1 of 2) ====\n", out, 1, true)
    assert.matches("# ==== " .. db .. " (file 2 of 2) ====\n", out, 1, true)
    assert.matches("gateway shape, from " .. gw, out, 1, true)
    assert.matches("dashboard shape, from " .. db, out, 1, true)
    -- the mode, with each file's key and where its value came from
    assert.matches("warning: mode differs: " .. gw .. " [default] is cluster: storage.enable_cluster = true (file "
      .. gw .. ":1:32); " .. db .. " [default] is single: enable_cluster = false (default)\n", out, 1, true)
    -- the seeds, as sets (single mode uses only the first of the dashboard's)
    assert.matches("warning: seeds differ: " .. gw .. " [default] r1:7000,r2:7001 (storage.addrs, file "
      .. gw .. ":2:12); " .. db .. " [default] r1:7000 (redis_addrs, file " .. db .. ":1:17); only in "
      .. gw .. ": r2:7001\n", out, 1, true)
    -- passwords: only that they differ
    assert.matches("warning: password differs (not shown): " .. gw .. " [default] storage.password (file "
      .. gw .. ":2:48) is set; " .. db .. " [default] redis_password (file " .. db .. ":2:20) is set\n", out, 1, true)
    assert.is_nil(out:find("hunter2", 1, true))
    assert.is_nil(out:find("wonderland", 1, true))
    assert.matches("# " .. gw .. " [default] and " .. db .. " [default]: 3 differences\n", out, 1, true)
    assert.matches("3 differences between the files", err, 1, true)
    -- --strict: the same lines as errors, exit 1
    code, out, err = helper.run({ helper.slotgated, "--check", "--strict", "-c", gw, "-c", db })
    assert.equal(1, code, err)
    assert.matches("\nerror: mode differs: ", out, 1, true)
    assert.matches("\nerror: seeds differ: ", out, 1, true)
    assert.is_nil(out:find("\nwarning: mode", 1, true))
    assert.matches("(--strict: an error)", err, 1, true)
    os.remove(gw)
    os.remove(db)
  end)

  it("finds no difference between the same storage in two shapes, with their environments", function()
    local gw = conf('{"storage": {"enable_cluster": true, "addrs": ["r2:7001", "r1:7000"], "timeout": 7}}')
    local db = conf('{"redis_addrs": ["r1:7000", "r2:7001"], "enable_cluster": true}')
    -- each file takes its own product's variables: TYK_DB_ for the dashboard
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", gw, "-c", db },
      { TYK_DB_REDISTIMEOUT = "7" })
    assert.equal(0, code, err)
    assert.matches("# " .. gw .. " [default] and " .. db .. " [default]: 0 differences\n", out, 1, true)
    -- and a difference from a variable names it
    code, out, err = helper.run({ helper.slotgated, "--check", "-c", gw, "-c", db },
      { TYK_DB_REDISTIMEOUT = "9" })
    assert.equal(3, code, err)
    assert.matches("warning: timeout differs: " .. gw .. " [default] storage.timeout = 7 (file " .. gw
      .. ":1:82); " .. db .. " [default] redis_timeout = 9 (env TYK_DB_REDISTIMEOUT)\n", out, 1, true)
    os.remove(gw)
    os.remove(db)
  end)

  it("compares the pump with the gateway's analytics store when it is separate", function()
    local gw = conf('{"storage": {"addrs": ["main:6379"]}, "enable_separate_analytics_store": true,\n'
      .. ' "analytics_storage": {"addrs": ["stats:6379"], "use_ssl": true}}')
    local pump = conf('{"analytics_storage_config": {"addrs": ["stats:6379"]}}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", gw, "-c", pump })
    assert.equal(3, code, err)
    assert.matches("# " .. gw .. " [analytics] and " .. pump .. " [default]: 1 difference\n", out, 1, true)
    assert.matches("warning: use_ssl differs: " .. gw .. " [analytics] analytics_storage.use_ssl = true (file "
      .. gw .. ":2:60); " .. pump .. " [default] analytics_storage_config.use_ssl = false (default)\n", out, 1, true)
    -- never with the gateway's main storage
    assert.is_nil(out:find(gw .. " [default] and " .. pump, 1, true))
    os.remove(gw)
    os.remove(pump)
  end)

  it("says which file is invalid and exits 1, comparing nothing", function()
    local gw = conf('{"storage": {"port": 6379}}')
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", gw, "-c", "/nonexistent/pump.conf" })
    assert.equal(1, code)
    assert.matches("/nonexistent/pump.conf: cannot open", err, 1, true)
    assert.matches("# ==== " .. gw .. " (file 1 of 2) ====\n", out, 1, true)
    assert.matches("# no two of them name the same storage", out, 1, true)
    os.remove(gw)
  end)

  it("serves one file only: -c twice, --strict or --connect without --check is a usage error", function()
    local code, _, err = helper.run({ helper.slotgated, "-c", "/a", "-c", "/b" })
    assert.equal(2, code)
    assert.matches("-c given twice goes with --check", err, 1, true)
    code, _, err = helper.run({ helper.slotgated, "--connect" })
    assert.equal(2, code)
    assert.matches("--connect goes with --check", err, 1, true)
    code, _, err = helper.run({ helper.slotgated, "--strict" })
    assert.equal(2, code)
    assert.matches("--strict goes with --check", err, 1, true)
  end)
end)

-- --connect against the harness's servers (issue #16 item 2)
describe("slotgated --check --connect", function()
  local function check(env, ...)
    return helper.run({ helper.slotgated, "--check", "--connect", ... }, env)
  end
  local function first(list) return (list:match("^[^,]+")) end

  it("reports each seed and node of the cluster", function()
    local masters = helper.server_var("SG_TEST_CLUSTER_MASTERS")
    local code, out, err = check({ TYK_GW_STORAGE_ADDRS = masters, TYK_GW_STORAGE_ENABLECLUSTER = "true" })
    assert.equal(0, code, out .. err)
    local version = helper.server_var("SG_TEST_REDIS_VERSION")
    for seed in masters:gmatch("[^,]+") do
      assert.matches("\nseed " .. seed .. ": reachable in [%d.]+ ms; no AUTH; rtt [%d.]+ ms; redis "
        .. version:gsub("%.", "%%.") .. ", master; id %x+, cluster_state ok, 16384 slots ok, 6 nodes known\n", out)
    end
    for node in helper.server_var("SG_TEST_CLUSTER"):gmatch("[^,]+") do
      assert.matches("\nnode " .. node .. " %[%a+, id %x+[^%]]*%]: reachable", out)
    end
    assert.matches("\ncluster (environment) [default]: 16384 of 16384 slots covered, 6 nodes: 3 masters, "
      .. "3 replicas\n", out, 1, true)
    assert.is_nil(out:find("error:", 1, true))
  end)

  it("names a closed port, and fails", function()
    local closed = "127.0.0.1:" .. helper.port(961)
    local code, out, err = check({ TYK_GW_STORAGE_ADDRS = closed .. "," .. first(helper.server_var("SG_TEST_CLUSTER")),
      TYK_GW_STORAGE_ENABLECLUSTER = "true" })
    assert.equal(4, code, out .. err)
    assert.matches("\nerror: (environment) [default]: seed " .. closed .. ": cannot connect: Connection refused\n",
      out, 1, true)
    -- the other seed still answers, and the nodes are reached
    assert.matches("16384 of 16384 slots covered", out, 1, true)
    assert.matches("--connect: 1 failure", err, 1, true)
  end)

  it("shows the TLS cluster's certificate, and names a refused one", function()
    local seed = first(helper.server_var("SG_TEST_TLS_CLUSTER"))
    local env = { TYK_GW_STORAGE_ADDRS = seed, TYK_GW_STORAGE_ENABLECLUSTER = "true", TYK_GW_STORAGE_USESSL = "true",
      TYK_GW_STORAGE_CAFILE = helper.server_var("SG_TEST_TLS_CA") }
    local code, out, err = check(env)
    assert.equal(0, code, out .. err)
    assert.matches("\nseed " .. seed .. ": reachable in [%d.]+ ms; TLSv1%.%d, subject CN=localhost[^;]*, expires "
      .. "%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d UTC %(in %d+ days%); no AUTH; ", out)
    assert.matches("6 nodes: 3 masters, 3 replicas", out, 1, true)
    -- without the CA the certificate is refused, and says why
    env.TYK_GW_STORAGE_CAFILE = nil
    code, out, err = check(env)
    assert.equal(4, code, out .. err)
    assert.matches("\nerror: %(environment%) %[default%]: seed " .. seed .. ": reachable in [%d.]+ ms: TLS handshake "
      .. "failed: the certificate is refused: self%-signed certificate in certificate chain", out)
    -- and plain TCP to a TLS port
    env.TYK_GW_STORAGE_USESSL = nil
    code, out = check(env)
    assert.equal(4, code)
    assert.matches("seed " .. seed .. ": reachable in [%d.]+ ms; no AUTH: no reply to PING: .*%(a TLS port%? "
      .. "use_ssl is off%)", out)
  end)

  it("says whether AUTH on the ACL server passes, never showing the password", function()
    local acl = helper.server_var("SG_TEST_ACL")
    local user, pass = helper.server_var("SG_TEST_ACL_USER"), helper.server_var("SG_TEST_ACL_PASS")
    local code, out, err = check({ TYK_GW_STORAGE_ADDRS = acl, TYK_GW_STORAGE_USERNAME = user,
      TYK_GW_STORAGE_PASSWORD = pass })
    assert.equal(0, code, out .. err)
    assert.matches("\nnode " .. acl .. ": reachable in [%d.]+ ms; AUTH ok as " .. user .. "; rtt", out)
    code, out, err = check({ TYK_GW_STORAGE_ADDRS = acl, TYK_GW_STORAGE_USERNAME = user,
      TYK_GW_STORAGE_PASSWORD = "not-" .. pass })
    assert.equal(4, code)
    assert.matches("\nerror: %(environment%) %[default%]: node " .. acl .. ": reachable in [%d.]+ ms: AUTH as user "
      .. user .. " refused: WRONGPASS", out)
    assert.is_nil((out .. err):find("not-" .. pass, 1, true))
    -- no password at all: the node says so
    code, out = check({ TYK_GW_STORAGE_ADDRS = acl })
    assert.equal(4, code)
    assert.matches("PING refused: NOAUTH Authentication required. (set password)", out, 1, true)
  end)

  it("fails a seed that is not a cluster node", function()
    local standalone = helper.server_var("SG_TEST_STANDALONE")
    local code, out = check({ TYK_GW_STORAGE_ADDRS = standalone, TYK_GW_STORAGE_ENABLECLUSTER = "true" })
    assert.equal(4, code)
    assert.matches("seed " .. standalone .. ": .*CLUSTER INFO refused: ERR This instance has cluster support "
      .. "disabled %(a single node: enable_cluster is on%)", out)
  end)

  it("follows the sentinels to the master they name", function()
    local sentinels = helper.server_var("SG_TEST_SENTINELS")
    local code, out, err = check({ TYK_GW_STORAGE_ADDRS = sentinels,
      TYK_GW_STORAGE_MASTERNAME = helper.server_var("SG_TEST_SENTINEL_MASTER_NAME"),
      TYK_GW_STORAGE_SENTINELPASSWORD = helper.server_var("SG_TEST_SENTINEL_PASS"),
      TYK_GW_STORAGE_PASSWORD = helper.server_var("SG_TEST_SENTINEL_DATA_PASS") })
    assert.equal(0, code, out .. err)
    assert.matches("\nsentinel " .. first(sentinels) .. ": reachable in [%d.]+ ms; AUTH ok as default;", out)
    assert.matches("\nmaster [%d.:]+: reachable in [%d.]+ ms; AUTH ok as default; rtt [%d.]+ ms; redis [%d.]+, "
      .. "master\n", out)
  end)

  it("lists every address of a seed's name, and needs only one to answer", function()
    local port = first(helper.server_var("SG_TEST_CLUSTER")):match(":(%d+)$")
    local code, out, err = check({ TYK_GW_STORAGE_ADDRS = "localhost:" .. port,
      TYK_GW_STORAGE_ENABLECLUSTER = "true" })
    assert.equal(0, code, out .. err)
    assert.matches("\nseed localhost:" .. port .. " %(127%.0%.0%.1%): reachable", out)
    -- where localhost is also ::1 (the harness listens on 127.0.0.1 only),
    -- both are listed and the refusal is a warning
    if out:find("resolves to", 1, true) then
      assert.matches('seed localhost:' .. port .. ': "localhost" resolves to %d addresses:[^\n]* 127%.0%.0%.1', out)
    end
  end)

  it("says whether two files' seeds reach the same cluster", function()
    local masters = helper.server_var("SG_TEST_CLUSTER_MASTERS")
    local replicas = helper.server_var("SG_TEST_CLUSTER_REPLICAS")
    local a = helper.write(os.tmpname(), '{"storage": {"enable_cluster": true, "addrs": ["' .. first(masters) .. '"]}}')
    local b = helper.write(os.tmpname(), '{"redis_addrs": ["' .. first(replicas) .. '"], "enable_cluster": true}')
    local c = helper.write(os.tmpname(), '{"redis_addrs": ["' .. helper.server_var("SG_TEST_ONE_NODE")
      .. '"], "enable_cluster": true}')
    -- different seeds (a warning), the same cluster
    local code, out, err = helper.run({ helper.slotgated, "--check", "--connect", "-c", a, "-c", b })
    assert.equal(3, code, out .. err)
    assert.matches("\n" .. a .. " [default] and " .. b .. " [default] reach the same cluster (node ids, 6)\n",
      out, 1, true)
    -- another cluster: a difference
    code, out, err = helper.run({ helper.slotgated, "--check", "--connect", "--strict", "-c", a, "-c", c })
    assert.equal(1, code, out .. err)
    assert.matches("\nerror: " .. a .. " [default] reaches a cluster and " .. c .. " [default] another one: the "
      .. "node ids differ\n", out, 1, true)
    os.remove(a)
    os.remove(b)
    os.remove(c)
  end)
end)
