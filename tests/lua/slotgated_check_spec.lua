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
