-- scripts_tenant_prefix_spec.lua — scripts/tenant_prefix.lua in a gateway in
-- front of the real cluster: one namespace per client user.
local slotgate = require "slotgate"
local sh = require "scripts_helper"

local null = slotgate.null

describe("scripts/tenant_prefix.lua", function()
  local gw, cluster
  local K = sh.unique("tp") .. "k"
  local alice, bob = { user = "alice", addr = "10.0.0.1:5000" }, { user = "bob" }

  setup(function()
    gw = sh.gateway("tenant_prefix")
    cluster = sh.cluster()
  end)
  teardown(function()
    cluster:call("DEL", "tenant:alice:" .. K, "tenant:bob:" .. K, "tenant:default:" .. K)
    gw:close()
    cluster:close()
  end)

  it("gives two users writing the same key two different keys", function()
    assert.equal("OK", gw:call(alice, "SET", K, "from alice"))
    assert.equal("OK", gw:call(bob, "SET", K, "from bob"))
    assert.equal("from alice", cluster:call("GET", "tenant:alice:" .. K))
    assert.equal("from bob", cluster:call("GET", "tenant:bob:" .. K))
    assert.equal(null, cluster:call("GET", K))
    assert.equal("from alice", gw:call(alice, "GET", K))
    assert.equal("from bob", gw:call(bob, "GET", K))
  end)

  it("puts a client without a user under default", function()
    assert.equal("OK", gw:call(nil, "SET", K, "anon"))
    assert.equal("anon", cluster:call("GET", "tenant:default:" .. K))
  end)

  it("does not let a user read or delete another's keys", function()
    local ok, msg = gw:call(bob, "GET", "tenant:alice:" .. K)
    assert.is_false(ok)
    assert.equal("NOPERM policy tenant_prefix refuses key 'tenant:alice:" .. K .. "' (tenant:*)", msg)
    ok = gw:call(bob, "DEL", K, "tenant:alice:" .. K)
    assert.is_false(ok)
    assert.equal("from alice", cluster:call("GET", "tenant:alice:" .. K))
    assert.equal(1, gw:call(bob, "DEL", K))             -- only bob's own
    assert.equal(null, gw:call(bob, "GET", K))
    assert.equal("from alice", gw:call(alice, "GET", K))
  end)

  it("refuses commands that reach keys outside the namespace", function()
    for _, argv in ipairs({ { "EVAL", "return redis.call('GET', 'tenant:alice:" .. K .. "')", 0 },
                            { "EVALSHA", ("0"):rep(40), 0 }, { "FCALL", "f", 0 }, { "SCRIPT", "FLUSH" },
                            { "KEYS", "*" }, { "SCAN", 0 }, { "RANDOMKEY" } }) do
      local ok, msg = gw:call(bob, unpack(argv))
      assert.is_false(ok, argv[1])
      assert.matches("^NOPERM policy tenant_prefix refuses " .. argv[1], msg)
    end
  end)

  it("keeps a key's hash tag, so multi-key commands on one slot work", function()
    local a, b = "{" .. K .. "}a", "{" .. K .. "}b"
    assert.equal("OK", gw:call(alice, "MSET", a, "1", b, "2"))
    assert.equal("OK", gw:call(alice, "RENAME", a, "{" .. K .. "}c"))
    assert.same({ "1", "2" }, cluster:call("MGET", "tenant:alice:{" .. K .. "}c", "tenant:alice:" .. b))
    assert.equal(2, gw:call(alice, "DEL", "{" .. K .. "}c", b))
  end)
end)
