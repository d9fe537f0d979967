-- scripts_read_replicas_spec.lua — scripts/read_replicas.lua in a gateway in
-- front of the real cluster: reads of apikey-* go to replicas, as the
-- gateway's own client statistics show; writes and other keys stay on the
-- masters.
local slotgate = require "slotgate"
local sh = require "scripts_helper"

-- Commands per node address, from a client's stats.
local function per_node(client)
  local out = { masters = 0, replicas = 0 }
  for _, node in ipairs(assert(client:stats())) do
    out[node.addr] = node.commands
    if node.is_master then out.masters = out.masters + node.commands
    else out.replicas = out.replicas + node.commands end
  end
  return out
end

describe("scripts/read_replicas.lua", function()
  local gw, policy, client
  local key, other = "apikey-" .. sh.unique("rr"):gsub(":", ""), sh.unique("rr") .. "other"

  setup(function()
    -- Redis 7.0 lists a replica in CLUSTER SLOTS only once it has reported a
    -- replication offset: on a fresh cluster, wait for that first.
    assert.is_true(sh.eventually(20, sh.replicas_listed), "replicas never showed in CLUSTER SLOTS")
    gw, policy = sh.gateway("read_replicas")
    client = assert(gw:client("default"))
  end)
  teardown(function()
    gw:call(nil, "DEL", key, other)
    gw:close()
  end)

  it("reads apikey-* from replicas", function()
    assert.equal("OK", gw:call(nil, "SET", key, "session"))
    -- a replica may lag its master a moment
    assert.equal("session", sh.eventually(5, function()
      local v = gw:call(nil, "GET", key)
      return v == "session" and v
    end))
    local before = per_node(client)
    for _ = 1, 20 do assert.equal("session", gw:call(nil, "GET", key)) end
    assert.equal(7, gw:call(nil, "STRLEN", key))
    local after = per_node(client)
    assert.equal(21, after.replicas - before.replicas)
    assert.equal(0, after.masters - before.masters)
  end)

  it("keeps writes, and reads of other keys, on the masters", function()
    local before = per_node(client)
    assert.equal("OK", gw:call(nil, "SET", key, "v2"))
    assert.equal("OK", gw:call(nil, "SET", other, "o"))
    assert.equal("o", gw:call(nil, "GET", other))
    local after = per_node(client)
    assert.equal(0, after.replicas - before.replicas)
    assert.equal(3, after.masters - before.masters)
  end)

  it("explains itself", function()
    assert.equal("command: GET apikey-x\nread: prefer-replica", policy:explain(nil, "GET", "apikey-x"))
    assert.equal("command: SET apikey-x v", policy:explain(nil, "SET", "apikey-x", "v"))
    assert.equal(slotgate.null, gw:call(nil, "GET", "apikey-" .. sh.unique("none")))
  end)
end)
