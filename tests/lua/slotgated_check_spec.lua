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
    local dir = os.tmpname()
    local f = assert(io.open(dir, "w"))
    f:write('{"redis_addrs": ["d1:1", "d2:2"], "enable_cluster": true, "redis_password": "x"}')
    f:close()
    local code, out, err = helper.run({ helper.slotgated, "--check", "-c", dir })
    assert.equal(0, code, err)
    assert.matches("dashboard shape", out, 1, true)
    assert.matches("\nredis_password = ********", out, 1, true)
    code, out, err = helper.run({ helper.slotgated, "--check", "--shape", "pump", "-c", dir })
    assert.equal(0, code, err)
    assert.matches("pump shape", out, 1, true)
    os.remove(dir)
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
end)
