-- hash_spec.lua — slotgate.hash, slotgate.tyk_hash and slotgate.tyk_hash_algo:
-- Tyk's key hashes (hash_keys) through the Lua module.
local helper = require "helper"
local slotgate = require "slotgate"

local function unhex(h)
  if h == "-" then return "" end
  return (h:gsub("..", function(b) return string.char(tonumber(b, 16)) end))
end

-- Standard base64 with padding, as Go's base64.StdEncoding writes it.
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

-- A token as Tyk's GenerateToken makes one when a hash algorithm is set.
local function tyk_token(org, id, h)
  return base64(string.format('{"org":"%s","id":"%s","h":"%s"}', org, id, h))
end

local function sha256sum(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local p = assert(io.popen("sha256sum " .. helper.shell_quote(path)))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return (out:match("^(%x+)"))
end

describe("slotgate.hash", function()
  it("gives Tyk's digests of \"hello\"", function()
    assert.equal("248bfa47", slotgate.hash("murmur32", "hello"))
    assert.equal("cbd8a7b341bd9b02", slotgate.hash("murmur64", "hello"))
    assert.equal("cbd8a7b341bd9b025b1e906a48ae1d19", slotgate.hash("murmur128", "hello"))
    assert.equal("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                 slotgate.hash("sha256", "hello"))
  end)

  it("matches every vector of tests/data/hash-vectors.txt", function()
    local n = 0
    for line in io.lines(helper.source_dir .. "/tests/data/hash-vectors.txt") do
      local algo, input, want = line:match("^(%w+) (%S+) (%x+)$")
      if algo then
        assert.equal(want, slotgate.hash(algo, unhex(input)), algo .. " of " .. input)
        n = n + 1
      end
    end
    assert.is_true(n >= 4 * 40, "too few vectors read: " .. n)
  end)

  it("agrees with sha256sum, NUL and high bytes included", function()
    local all = {}
    for b = 0, 255 do all[#all + 1] = string.char(b) end
    for _, data in ipairs({ "", "hello", "a\0b", table.concat(all), ("x"):rep(100000) }) do
      assert.equal(sha256sum(data), slotgate.hash("sha256", data))
    end
  end)

  it("is binary-safe: the bytes after a NUL count", function()
    for _, algo in ipairs({ "murmur32", "murmur64", "murmur128", "sha256" }) do
      assert.are_not.equal(slotgate.hash(algo, "a"), slotgate.hash(algo, "a\0"))
      assert.are_not.equal(slotgate.hash(algo, "a\0b"), slotgate.hash(algo, "a\0c"))
    end
  end)

  it("gives lowercase hex of the digest's size", function()
    local sizes = { murmur32 = 8, murmur64 = 16, murmur128 = 32, sha256 = 64 }
    for algo, size in pairs(sizes) do
      local h = slotgate.hash(algo, "The quick brown fox")
      assert.equal(size, #h)
      assert.matches("^[0-9a-f]+$", h)
    end
    -- murmur64 is the first half of murmur128
    assert.equal(slotgate.hash("murmur64", "fox"), slotgate.hash("murmur128", "fox"):sub(1, 16))
  end)

  it("refuses an unknown algorithm or a non-string as misuse", function()
    assert.has_error(function() slotgate.hash("md5", "x") end,
      "bad argument #1 to 'hash' (\"murmur32\", \"murmur64\", \"murmur128\" or \"sha256\" expected, got \"md5\")")
    assert.has_error(function() slotgate.hash("MURMUR32", "x") end)
    assert.has_error(function() slotgate.hash(nil, "x") end)
    assert.has_error(function() slotgate.hash("sha256", 42) end,
      "bad argument #2 to 'hash' (string expected, got number)")
    assert.has_error(function() slotgate.hash("sha256") end)
  end)
end)

describe("slotgate.tyk_hash", function()
  local cases = {
    -- token, algorithm Tyk picks
    { "5e9d9544a1dcd60001d0ed20a5c26f42e99444f28a7a87881b3cfb9b", "murmur32" }, -- legacy org+key
    { "hello", "murmur32" },
    { "", "murmur32" },
    { tyk_token("5e9d", "k1", "murmur64"), "murmur64" },
    { tyk_token("5e9d", "k1", "murmur128"), "murmur128" },
    { tyk_token("5e9d", "k1", "sha256"), "sha256" },
    { tyk_token("5e9d", "k1", "murmur32"), "murmur32" },
    { tyk_token("5e9d", "k1", ""), "murmur32" },
    -- Tyk's hashFunction falls back to murmur64 for a name it does not know
    { tyk_token("5e9d", "k1", "md5"), "murmur64" },
    { tyk_token("5e9d", "k1", "SHA256"), "murmur64" },
    -- no "h", or not a string, or only nested: murmur32
    { base64('{"org":"5e9d","id":"k1"}'), "murmur32" },
    { base64('{"h":1}'), "murmur32" },
    { base64('{"x":{"h":"sha256"}}'), "murmur32" },
  }

  for _, case in ipairs(cases) do
    local token, algo = case[1], case[2]
    it(string.format("hashes %q with %s", token:sub(1, 40), algo), function()
      local hex, used = slotgate.tyk_hash(token)
      assert.equal(algo, used)
      assert.equal(slotgate.hash(algo, token), hex)
      assert.equal(algo, slotgate.tyk_hash_algo(token))
    end)
  end

  it("decodes base64 only as Go's StdEncoding does: '+' and '/' yes, URL-safe and unpadded no", function()
    -- "~~~" and "??>" put '+' and '/' into the base64
    local plus = tyk_token("o", "~~~", "sha256")
    local slash = tyk_token("o", "??>>", "sha256")
    assert.matches("+", plus, 1, true)
    assert.matches("/", slash, 1, true)
    assert.equal("sha256", slotgate.tyk_hash_algo(plus))
    assert.equal("sha256", slotgate.tyk_hash_algo(slash))
    assert.equal("murmur32", slotgate.tyk_hash_algo((plus:gsub("%+", "-"))))
    assert.equal("murmur32", slotgate.tyk_hash_algo((slash:gsub("/", "_"))))
    local padded = tyk_token("5e9d", "k1", "sha256")
    assert.matches("=$", padded)
    assert.equal("murmur32", slotgate.tyk_hash_algo((padded:gsub("=+$", ""))))
  end)

  it("gives the key Tyk stores a hashed session under", function()
    -- Tyk: "apikey-" .. HashKey(token); a murmur64 token from GenerateToken
    local token = tyk_token("5e9d9544a1dcd60001d0ed20", "a5c26f42e99444f28a7a87881b3cfb9b", "murmur64")
    assert.equal("eyJvcmciOiI1ZTlkOTU0NGExZGNkNjAwMDFkMGVkMjAiLCJpZCI6ImE1YzI2ZjQyZTk5NDQ0ZjI4YTdhODc4ODFiM2NmYjliIiwiaCI6Im11cm11cjY0In0=",
                 token)
    local want
    for line in io.lines(helper.source_dir .. "/tests/data/hash-vectors.txt") do
      local algo, input, hex = line:match("^(%w+) (%S+) (%x+)$")
      if algo == "murmur64" and unhex(input) == token then want = hex end
    end
    assert.is_string(want)
    assert.equal(want, (slotgate.tyk_hash(token)))
  end)

  it("refuses a non-string token as misuse", function()
    assert.has_error(function() slotgate.tyk_hash(nil) end,
      "bad argument #1 to 'tyk_hash' (string expected, got nil)")
    assert.has_error(function() slotgate.tyk_hash_algo(12) end,
      "bad argument #1 to 'tyk_hash_algo' (string expected, got number)")
  end)
end)
