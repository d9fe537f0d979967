-- scripts_route_by_prefix_spec.lua — scripts/route_by_prefix.lua in a gateway
-- whose settings have Tyk's three stores: "default" the cluster, "cache" the
-- standalone server's db 0, "analytics" its db 1. Each server is then read
-- directly to see where the data landed.
local helper = require "helper"
local slotgate = require "slotgate"
local sh = require "scripts_helper"

local null = slotgate.null

describe("scripts/route_by_prefix.lua", function()
  local gw, policy, cluster, db0, db1
  local K = sh.unique("rp")
  local list, cached, plain = "analytics-" .. K .. "tyk-system-analytics", "cache-" .. K .. "api1", K .. "session"

  setup(function()
    gw, policy = sh.gateway("route_by_prefix", { routes = true })
    cluster = sh.cluster()
    db0 = sh.node(helper.server_var("SG_TEST_STANDALONE"), 0)
    db1 = sh.node(helper.server_var("SG_TEST_STANDALONE"), 1)
  end)
  teardown(function()
    db1:call("DEL", list)
    db0:call("DEL", cached)
    cluster:call("DEL", plain)
    for _, c in ipairs({ gw, cluster, db0, db1 }) do c:close() end
  end)

  it("sends analytics-* to the analytics store", function()
    assert.equal(1, gw:call(nil, "RPUSH", list, "record1"))
    assert.equal(2, gw:call(nil, "RPUSH", list, "record2"))
    assert.same({ "record1", "record2" }, db1:call("LRANGE", list, 0, -1))
    assert.equal(0, db0:call("EXISTS", list))
    assert.equal(0, cluster:call("EXISTS", list))
    -- reads follow the same route
    assert.same({ "record1", "record2" }, gw:call(nil, "LRANGE", list, 0, -1))
  end)

  it("sends cache-* to the cache store", function()
    assert.equal("OK", gw:call(nil, "SET", cached, "response"))
    assert.equal("response", db0:call("GET", cached))
    assert.equal(null, db1:call("GET", cached))
    assert.equal(null, cluster:call("GET", cached))
    assert.equal("response", gw:call(nil, "GET", cached))
  end)

  it("leaves everything else on the cluster", function()
    assert.equal("OK", gw:call(nil, "SET", plain, "s"))
    assert.equal("s", cluster:call("GET", plain))
    assert.equal(null, db0:call("GET", plain))
    assert.equal(null, db1:call("GET", plain))
    assert.equal("PONG", gw:call(nil, "PING"))
    assert.is_true(policy:stats().routed >= 5)
  end)

  it("fails a routed command when the settings lack the store", function()
    local g = assert(slotgate.gateway{ env = sh.env() }) -- the cluster alone
    g:set_policy(policy)
    local ok, msg = g:call(nil, "GET", cached)
    assert.is_false(ok)
    assert.equal('ERR policy routes to upstream "cache", which the settings do not define', msg)
    g:close()
  end)
end)
