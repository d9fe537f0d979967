-- scripts_default_ttl_spec.lua — scripts/default_ttl.lua in a gateway in
-- front of the real cluster: cache-* keys get an hour unless the write says
-- otherwise.
local sh = require "scripts_helper"

describe("scripts/default_ttl.lua", function()
  local gw, cluster, policy
  local K = sh.unique("dt")

  setup(function()
    gw, policy = sh.gateway("default_ttl")
    cluster = sh.cluster()
  end)
  teardown(function()
    cluster:call("DEL", "cache-" .. K .. "a")
    cluster:call("DEL", "cache-" .. K .. "b")
    cluster:call("DEL", "cache-" .. K .. "h")
    cluster:call("DEL", K .. "other")
    gw:close()
    cluster:close()
  end)

  -- The TTL a plain client sees; the gateway sets it right after the write
  -- (EXPIRE ... NX), so allow it a moment to land.
  local function ttl(key)
    return sh.eventually(2, function()
      local t = cluster:call("TTL", key)
      return t ~= -1 and t, t
    end) or cluster:call("TTL", key)
  end

  it("gives a cache-* key written without a TTL an hour", function()
    assert.equal("OK", gw:call(nil, "SET", "cache-" .. K .. "a", "v"))
    local t = ttl("cache-" .. K .. "a")
    assert.is_true(t > 3590 and t <= 3600, tostring(t))
    assert.equal(1, policy:stats().ttls)
  end)

  it("keeps the TTL the write gives", function()
    assert.equal("OK", gw:call(nil, "SET", "cache-" .. K .. "b", "v", "EX", 10))
    -- the gateway's EXPIRE NX has gone out by the time a later command returns
    assert.equal("PONG", gw:call(nil, "PING"))
    local t = ttl("cache-" .. K .. "b")
    assert.is_true(t > 0 and t <= 10, tostring(t))
    -- a plain SET drops a TTL: the default comes back
    assert.equal("OK", gw:call(nil, "SET", "cache-" .. K .. "b", "v2"))
    t = ttl("cache-" .. K .. "b")
    assert.is_true(t > 3590, tostring(t))
  end)

  it("covers other writes, and not reads or other keys", function()
    assert.equal(1, gw:call(nil, "HSET", "cache-" .. K .. "h", "f", "v"))
    local t = ttl("cache-" .. K .. "h")
    assert.is_true(t > 3590 and t <= 3600, tostring(t))
    assert.equal("OK", gw:call(nil, "SET", K .. "other", "v"))
    assert.equal("PONG", gw:call(nil, "PING"))
    assert.equal(-1, cluster:call("TTL", K .. "other"))
    assert.equal("command: GET cache-x", policy:explain(nil, "GET", "cache-x"))
  end)
end)
