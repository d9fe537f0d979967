-- scripts_tyk_hash_keys_spec.lua — scripts/tyk_hash_keys.lua in a gateway in
-- front of the real cluster: apikey-<token> is stored under apikey-<hash>,
-- the hash computed here independently of the script.
local slotgate = require "slotgate"
local sh = require "scripts_helper"

-- Standard base64 with padding, as Tyk (Go's base64.StdEncoding) writes it.
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chunk = {}
    for k = 3, 0, -1 do
      local d = math.floor(n / 64 ^ k) % 64
      chunk[#chunk + 1] = B64:sub(d + 1, d + 1)
    end
    if not b then chunk[3], chunk[4] = "=", "=" elseif not c then chunk[4] = "=" end
    out[#out + 1] = table.concat(chunk)
  end
  return table.concat(out)
end

describe("scripts/tyk_hash_keys.lua", function()
  local gw, cluster
  local run = sh.unique("th"):gsub("[^%w]", "")

  setup(function()
    gw = sh.gateway("tyk_hash_keys")
    cluster = sh.cluster()
  end)
  teardown(function()
    gw:close()
    cluster:close()
  end)

  it("stores a legacy token's session under apikey-<murmur32>", function()
    local token = "5e9d9544a1dcd60001d0ed20" .. run -- org id + key id
    local stored = "apikey-" .. slotgate.hash("murmur32", token)
    assert.equal("OK", gw:call(nil, "SET", "apikey-" .. token, '{"org_id":"x"}'))
    assert.equal('{"org_id":"x"}', cluster:call("GET", stored))
    assert.equal(slotgate.null, cluster:call("GET", "apikey-" .. token))
    -- and the client reads it back by its token
    assert.equal('{"org_id":"x"}', gw:call(nil, "GET", "apikey-" .. token))
    assert.equal(1, gw:call(nil, "DEL", "apikey-" .. token))
    assert.equal(0, cluster:call("EXISTS", stored))
  end)

  it("uses the algorithm a JSON token names (sha256 here)", function()
    local token = base64('{"org":"5e9d9544a1dcd60001d0ed20","id":"' .. run .. '","h":"sha256"}')
    assert.equal("ey", token:sub(1, 2))
    local stored = "apikey-" .. slotgate.hash("sha256", token)
    assert.equal(7 + 64, #stored)
    assert.equal(1, gw:call(nil, "HSET", "apikey-" .. token, "quota", "100"))
    assert.same({ "quota", "100" }, cluster:call("HGETALL", stored))
    assert.equal(1, cluster:call("DEL", stored))
  end)

  it("hashes every key of a multi-key command, and leaves other keys alone", function()
    local t1, t2, other = "tok1" .. run, "tok2" .. run, sh.unique("th") .. "plain"
    assert.equal("OK", gw:call(nil, "MSET", "apikey-" .. t1, "1", other, "2", "apikey-" .. t2, "3"))
    assert.same({ "1", "2", "3" }, cluster:call("MGET", "apikey-" .. slotgate.hash("murmur32", t1), other,
                                                "apikey-" .. slotgate.hash("murmur32", t2)))
    assert.equal(3, gw:call(nil, "DEL", "apikey-" .. t1, other, "apikey-" .. t2))
  end)

  it("explains the rewrite", function()
    local _, policy = sh.gateway("tyk_hash_keys")
    assert.equal("command: GET apikey-248bfa47", policy:explain(nil, "GET", "apikey-hello"))
    assert.same({ "tyk_hash_keys" }, policy:names())
  end)
end)
