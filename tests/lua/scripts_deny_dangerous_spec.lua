-- scripts_deny_dangerous_spec.lua — scripts/deny_dangerous.lua in a gateway in
-- front of the real cluster: the commands it lists never reach Redis.
local sh = require "scripts_helper"

describe("scripts/deny_dangerous.lua", function()
  local gw, cluster, policy
  local K = sh.unique("dd") .. "k"

  setup(function()
    gw, policy = sh.gateway("deny_dangerous")
    cluster = sh.cluster()
  end)
  teardown(function()
    cluster:call("DEL", K)
    gw:close()
    cluster:close()
  end)

  local refused = {
    { { "FLUSHALL" }, "FLUSHALL" },
    { { "flushall", "ASYNC" }, "FLUSHALL" },
    { { "FLUSHDB" }, "FLUSHDB" },
    { { "KEYS", "*" }, "KEYS" },
    { { "CONFIG", "SET", "maxmemory", "1" }, "CONFIG|SET" },
    { { "CONFIG", "GET", "maxmemory" }, "CONFIG|GET" },
    { { "DEBUG", "SLEEP", "0" }, "DEBUG" },
  }

  for _, case in ipairs(refused) do
    local argv, name = case[1], case[2]
    it("refuses " .. table.concat(argv, " "), function()
      local ok, msg = gw:call(nil, unpack(argv))
      assert.is_false(ok)
      assert.equal("NOPERM policy deny_dangerous refuses " .. name, msg)
    end)
  end

  it("lets ordinary commands through, and the data survived", function()
    assert.equal("OK", gw:call(nil, "SET", K, "still here"))
    local ok = gw:call(nil, "FLUSHALL")
    assert.is_false(ok)
    assert.equal("still here", gw:call(nil, "GET", K))
    assert.equal("still here", cluster:call("GET", K))
    assert.equal("PONG", gw:call(nil, "PING"))
    assert.is_true(policy:stats().denied >= #refused + 1)
  end)
end)
