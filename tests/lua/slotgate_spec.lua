-- slotgate_spec.lua — the slotgate Lua module (lua/slotgate.lua): every call
-- of its API and each error path, against the harness's real cluster and
-- standalone servers.
local ffi = require "ffi"
local helper = require "helper"
local slotgate = require "slotgate"

local null = slotgate.null
local data = helper.source_dir .. "/tests/data/"

local function cluster_opts(extra)
  local env = { TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER"),
                TYK_GW_STORAGE_ENABLECLUSTER = "true" }
  for k, v in pairs(extra or {}) do env[k] = v end
  return { env = env }
end

local function standalone_opts(extra)
  local env = { TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_STANDALONE") }
  for k, v in pairs(extra or {}) do env[k] = v end
  return { env = env }
end

-- A key prefix per run, so reruns and other suites do not collide.
local P = string.format("lua:%d:%d:", os.time(), math.random(1e6))

local function write_temp(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

describe("slotgate module", function()
  it("reports its version and the library's", function()
    local header = assert(io.open(helper.source_dir .. "/core/include/slotgate.h")):read("*a")
    local v = table.concat({ header:match("#define SG_VERSION_MAJOR (%d+)"),
                             header:match("#define SG_VERSION_MINOR (%d+)"),
                             header:match("#define SG_VERSION_PATCH (%d+)") }, ".")
    assert.equal(v, slotgate.version())
    assert.equal(v, slotgate._VERSION)
  end)

  it("is one table however often it is required", function()
    package.loaded.slotgate = nil
    assert.equal(slotgate, require "slotgate")
  end)

  it("leaves no globals behind", function()
    for _, name in ipairs({ "C", "cdef", "ffi", "null", "fail", "_M" }) do
      assert.is_nil(rawget(_G, name), name)
    end
  end)

  it("names and describes error codes", function()
    assert.equal("timed out", slotgate.strerror(-8))
    assert.equal("success", slotgate.strerror(0))
    assert.equal("unknown error", slotgate.strerror(12345))
    assert.equal("ETIMEOUT", slotgate.errname(-8))
    assert.equal(-1, slotgate.errors.ENOMEM)
    assert.equal(-8, slotgate.errors.ETIMEOUT)
    assert.equal(-21, slotgate.errors.EREPLY)
    assert.equal(0, slotgate.errors.OK)
    assert.has_error(function() slotgate.strerror("ETIMEOUT") end,
      "bad argument #1 to 'strerror' (number expected)")
  end)

  it("computes cluster slots as Redis does, binary-safe", function()
    local known = { [""] = 0, a = 15495, foo = 12182, hello = 866, ["123456789"] = 12739,
                    ["{user1000}.following"] = 3443, user1000 = 3443, ["foo{}{bar}"] = 8363 }
    for key, slot in pairs(known) do assert.equal(slot, slotgate.keyslot(key), key) end
    assert.equal(slotgate.keyslot("a\0b"), slotgate.keyslot("{a\0b}.x"))
    assert.are_not.equal(slotgate.keyslot("a"), slotgate.keyslot("a\0b"))
    assert.has_error(function() slotgate.keyslot(42) end,
      "bad argument #1 to 'keyslot' (string expected, got number)")
  end)

  it("has a null sentinel that is neither nil nor false, and is cjson.null", function()
    assert.is_not_nil(null)
    assert.is_not_false(null)
    local ok, cjson = pcall(require, "cjson")
    if ok then
      assert.equal(cjson.null, null)
      assert.equal("[null]", cjson.encode({ null }))
    end
  end)
end)

describe("slotgate.config", function()
  it("reads the environment alone, and says where each value came from", function()
    local cfg = assert(slotgate.config{ env = { TYK_GW_STORAGE_ADDRS = "10.0.0.1:7000,10.0.0.2:7000",
                                                TYK_GW_STORAGE_ENABLECLUSTER = "true",
                                                TYK_GW_STORAGE_MAXACTIVE = 42 } })
    assert.equal("gateway", cfg:shape())
    local v, src = cfg:get(nil, "addresses")
    assert.equal("10.0.0.1:7000,10.0.0.2:7000", v)
    assert.equal("env TYK_GW_STORAGE_ADDRS", src)
    v, src = cfg:get("default", "mode")
    assert.equal("cluster", v)
    assert.equal("resolved", src)
    assert.equal("42", (cfg:get(nil, "optimisation_max_active")))
    assert.equal("default", select(2, cfg:get(nil, "timeout")))
    assert.same({ "default" }, cfg:upstreams())
    assert.same({}, cfg:warnings())
    assert.matches("^slotgate.config %(gateway%)$", tostring(cfg))
  end)

  it("reads a file: Tyk's corrected seed example", function()
    local cfg = assert(slotgate.config{ path = data .. "seed-tyk-fixed.conf", env = {} })
    assert.equal("gateway", cfg:shape())
    assert.equal("cluster", (cfg:get(nil, "mode")))
    local v, src = cfg:get(nil, "addresses")
    assert.equal("server1:6379,server2:6380,server3:6381", v)
    assert.matches("^file .*seed%-tyk%-fixed%.conf:%d+:%d+$", src)
  end)

  it("reports bad JSON with file, line and column", function()
    local cfg, err, code = slotgate.config{ path = data .. "seed-tyk.conf", env = {} }
    assert.is_nil(cfg)
    assert.equal("EJSON", code)
    assert.matches("seed%-tyk%.conf:8:20: expected ':' after the key \"server3: \"", err)
  end)

  it("reports a missing file", function()
    local cfg, err, code = slotgate.config{ path = "/nonexistent/tyk.conf" }
    assert.is_nil(cfg)
    assert.equal("EIO", code)
    assert.matches("/nonexistent/tyk.conf: cannot open", err, 1, true)
  end)

  it("reports a bad variable naming it", function()
    local cfg, err, code = slotgate.config{ env = { TYK_GW_STORAGE_ENABLECLUSTER = "yes" } }
    assert.is_nil(cfg)
    assert.equal("EENV", code)
    assert.matches('TYK_GW_STORAGE_ENABLECLUSTER="yes": expected a boolean', err, 1, true)
  end)

  it("tells the shapes apart, or reads the one it is told", function()
    local path = write_temp('{"redis_addrs": ["d1:1", "d2:2"], "enable_cluster": true, "redis_password": "x"}')
    local cfg = assert(slotgate.config{ path = path, env = {} })
    assert.equal("dashboard", cfg:shape())
    assert.equal("d1:1,d2:2", (cfg:get(nil, "addresses")))
    cfg = assert(slotgate.config{ path = path, shape = "pump", env = {} })
    assert.equal("pump", cfg:shape())
    -- the wrong shape: a dashboard file read as tyk.conf has no "storage"
    cfg = assert(slotgate.config{ path = path, shape = "gateway", env = {} })
    assert.equal("gateway", cfg:shape())
    assert.equal("localhost:6379", (cfg:get(nil, "addresses")))
    assert.matches("no address set", cfg:warnings()[1], 1, true)
    os.remove(path)
  end)

  it("masks secrets unless asked, in get and in dump", function()
    local cfg = assert(slotgate.config{ env = { TYK_GW_STORAGE_PASSWORD = "hunter2" } })
    assert.equal("********", (cfg:get(nil, "password")))
    assert.equal("hunter2", (cfg:get(nil, "password", true)))
    local dump = cfg:dump()
    assert.matches("\npassword = ********    # env TYK_GW_STORAGE_PASSWORD\n", dump, 1, true)
    assert.is_nil(dump:find("hunter2", 1, true))
  end)

  it("lists the upstreams and the warnings", function()
    local cfg = assert(slotgate.config{ env = { TYK_GW_ENABLESEPERATECACHESTORE = "true",
                                                TYK_GW_STORAGE_ADDRS = "a:1,b:2" } })
    assert.same({ "default", "cache" }, cfg:upstreams())
    local w = table.concat(cfg:warnings(), "\n")
    assert.matches("[default] single-node mode uses only the first address a:1", w, 1, true)
    assert.matches("[cache] no address set", w, 1, true)
  end)

  it("answers nil, err for an unknown upstream or field", function()
    local cfg = assert(slotgate.config{ env = {} })
    local v, err, code = cfg:get("cache", "addrs")
    assert.is_nil(v)
    assert.equal('no upstream "cache"', err)
    assert.equal("EINVAL", code)
    v, err, code = cfg:get(nil, "nope")
    assert.is_nil(v)
    assert.equal('no setting "nope"', err)
    assert.equal("EINVAL", code)
  end)

  it("treats wrong argument types and unknown shapes as misuse", function()
    assert.has_error(function() slotgate.config("tyk.conf") end,
      "bad argument #1 to 'config' (table expected, got string)")
    assert.has_error(function() slotgate.config{ shape = "nginx" } end,
      "bad option 'shape' to 'config' (\"auto\", \"gateway\", \"dashboard\" or \"pump\" expected, got \"nginx\")")
    assert.has_error(function() slotgate.config{ path = 1 } end)
    assert.has_error(function() slotgate.config{ env = "X=1" } end)
    assert.has_error(function() slotgate.config{ env = { X = {} } } end)
    local cfg = assert(slotgate.config{ env = {} })
    assert.has_error(function() cfg:get(nil, nil) end)
    assert.has_error(function() cfg:get(1, "addrs") end)
  end)
end)

describe("slotgate.connect", function()
  it("connects from a config or from options, to a named upstream", function()
    local cfg = assert(slotgate.config(cluster_opts()))
    local c1 = assert(slotgate.connect(cfg))
    local c2 = assert(slotgate.connect(cluster_opts(), "default"))
    assert.equal("PONG", c1:call("PING"))
    assert.equal("PONG", c2:call("PING"))
    c1:close()
    c2:close()
  end)

  it("passes configuration errors on", function()
    local c, err, code = slotgate.connect{ path = data .. "seed-tyk.conf", env = {} }
    assert.is_nil(c)
    assert.equal("EJSON", code)
    assert.matches("seed-tyk.conf:8:20", err, 1, true)
  end)

  it("refuses an unknown upstream", function()
    local c, err, code = slotgate.connect(cluster_opts(), "cache")
    assert.is_nil(c)
    assert.equal("EINVAL", code)
    assert.equal('no upstream "cache" in the settings', err)
  end)

  it("says which node refused the connection", function()
    local c, err, code = slotgate.connect{ env = { TYK_GW_STORAGE_ADDRS = "127.0.0.1:1" } }
    assert.is_nil(c)
    assert.equal("ECONNECT", code)
    assert.matches("127.0.0.1:1", err, 1, true)
  end)

  it("reports refused credentials as EAUTH", function()
    local c, err, code = slotgate.connect{ env = { TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_ACL"),
                                                   TYK_GW_STORAGE_PASSWORD = "wrong" } }
    assert.is_nil(c)
    assert.equal("EAUTH", code)
    assert.matches("WRONGPASS", err, 1, true)
  end)

  it("treats wrong argument types as misuse", function()
    assert.has_error(function() slotgate.connect("tyk.conf") end,
      "bad argument #1 to 'connect' (slotgate.config or table expected, got string)")
    assert.has_error(function() slotgate.connect(cluster_opts(), 1) end)
  end)
end)

describe("a client of the cluster", function()
  local red

  setup(function() red = assert(slotgate.connect(cluster_opts())) end)
  teardown(function() red:close() end)

  it("turns each reply type into its Lua value", function()
    assert.equal("OK", red:call("SET", P .. "s", "v"))             -- status
    assert.equal("v", red:call("GET", P .. "s"))                  -- bulk
    assert.equal(1, red:call("DEL", P .. "s"))                    -- integer
    assert.equal(null, red:call("GET", P .. "s"))                 -- nil
    assert.same({}, red:call("LRANGE", P .. "nolist", 0, -1))     -- empty array
    assert.equal(3, red:call("RPUSH", P .. "l", "a", "b", "c"))
    assert.same({ "a", "b", "c" }, red:call("LRANGE", P .. "l", 0, -1))
  end)

  it("makes a call durable: acknowledged once replicas confirm it", function()
    local w0 = 0
    for _, n in ipairs(red:stats()) do w0 = w0 + n.waits end
    assert.equal("OK", red:call_opts({ durable = 1 }, "SET", P .. "dur", "v"))
    -- one replica per master: two cannot confirm; applied all the same
    local ok, msg = red:call_opts({ durable = 2, durable_timeout_ms = 50 }, "SET", P .. "dur", "w")
    assert.is_false(ok)
    assert.matches("^NOTCONFIRMED the write was applied on the master 127%.0%.0%.1:%d+ but not "
                   .. "confirmed by 2 replicas: WAIT counted 1 within 50 ms", msg)
    assert.equal("w", red:call("GET", P .. "dur"))
    -- an error reply comes as it is
    ok, msg = red:call_opts({ durable = 1 }, "INCR", P .. "dur")
    assert.is_false(ok)
    assert.equal("ERR value is not an integer or out of range", msg)
    local waits, unconfirmed = 0, 0
    for _, n in ipairs(red:stats()) do
      waits, unconfirmed = waits + n.waits, unconfirmed + n.unconfirmed
    end
    assert.is_true(waits >= w0 + 2)
    assert.is_true(unconfirmed >= 1)
    assert.has_error(function() red:call_opts({ durable = -1 }, "SET", "k", "v") end,
                     "bad argument #1 to 'call_opts' (durable must be a non-negative integer)")
    assert.has_error(function() red:call_opts({ durabel = 1 }, "SET", "k", "v") end,
                     "bad argument #1 to 'call_opts' (unknown option durabel; known: durable, "
                     .. "durable_timeout_ms)")
  end)

  it("returns false, msg for an error reply", function()
    red:call("SET", P .. "str", "x")
    local ok, msg = red:call("INCR", P .. "str")
    assert.is_false(ok)
    assert.equal("ERR value is not an integer or out of range", msg)
    ok, msg = red:call("LPUSH", P .. "str", "x")
    assert.is_false(ok)
    assert.matches("^WRONGTYPE", msg)
    ok, msg = red:call("NOSUCHCOMMAND")
    assert.is_false(ok)
    assert.matches("^ERR unknown command", msg)
    ok, msg = red:call("RENAME", P .. "a", P .. "b") -- different slots
    assert.is_false(ok)
    assert.matches("^CROSSSLOT", msg)
  end)

  it("nests arrays, with nil as null and errors as {false, msg}", function()
    local r = red:call("EVAL", "return {1, {2, 'x'}, redis.error_reply('boom'), false, 'end'}", 0)
    assert.equal(5, #r)
    assert.equal(1, r[1])
    assert.same({ 2, "x" }, r[2])
    assert.same({ false, "boom" }, { r[3][1], r[3][2]:match("boom") })
    assert.is_false(r[3][1])
    assert.equal(null, r[4])
    assert.equal("end", r[5])
  end)

  it("merges a multi-slot MGET in order, nil replies as null", function()
    assert.equal("OK", red:call("MSET", P .. "m1", "1", P .. "m2", "2", P .. "m3", "3"))
    assert.same({ "1", null, "2", "3" }, red:call("MGET", P .. "m1", P .. "none", P .. "m2", P .. "m3"))
  end)

  it("is binary-safe both ways", function()
    local bytes = {}
    for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
    local all = table.concat(bytes)
    local key = P .. "bin\0key\r\n"
    assert.equal("OK", red:call("SET", key, all))
    assert.equal(all, red:call("GET", key))
    assert.equal(256, red:call("STRLEN", key))
    assert.equal(null, red:call("GET", P .. "bin\0"))            -- a different key
    local big = ("\0\1\2\255"):rep(256 * 1024)                  -- 1 MiB
    assert.equal("OK", red:call("SET", P .. "big", big))
    assert.equal(big, red:call("GET", P .. "big"))
  end)

  it("sends numbers as Redis reads them back", function()
    assert.equal("OK", red:call("SET", P .. "n", 42))
    assert.equal("42", red:call("GET", P .. "n"))
    assert.equal(52, red:call("INCRBY", P .. "n", 10))
    assert.equal("53.5", red:call("INCRBYFLOAT", P .. "n", 1.5))
    assert.equal("OK", red:call("SET", P .. "e", 1e15))
    assert.equal("1000000000000000", red:call("GET", P .. "e"))
    assert.equal(1, red:call("EXPIRE", P .. "e", 100))
  end)

  it("keeps integers beyond 2^53 exact as int64 cdata", function()
    assert.equal("OK", red:call("SET", P .. "i64", "9007199254740993"))
    local v = red:call("INCR", P .. "i64")
    assert.equal("cdata", type(v))
    assert.is_true(ffi.istype("int64_t", v))
    assert.equal("9007199254740994LL", tostring(v))
    assert.equal(-9007199254740994LL + 1, red:call("DECRBY", P .. "i64", v * 2 - 1))
    -- and an int64 goes back as its digits
    assert.equal("OK", red:call("SET", P .. "i64", v))
    assert.equal("9007199254740994", red:call("GET", P .. "i64"))
  end)

  it("fails with nil, err, code where the library refuses", function()
    local v, err, code = red:call("MULTI")
    assert.is_nil(v)
    assert.equal("ECOMMAND", code)
    assert.matches("MULTI is tied to its connection", err, 1, true)
    v, err, code = red:call("SELECT", 1)
    assert.is_nil(v)
    assert.equal("ECOMMAND", code)
    assert.matches("is tied to its connection", err, 1, true)
  end)

  it("treats wrong argument types as misuse", function()
    assert.has_error(function() red:call() end, "bad argument #1 to 'call' (a command name expected)")
    assert.has_error(function() red:call("GET", {}) end,
      "bad argument #2 to 'call' (string or number expected, got table)")
    assert.has_error(function() red:call("SET", "k", true) end,
      "bad argument #3 to 'call' (string or number expected, got boolean)")
    assert.has_error(function() red:call("SET", "k", 0 / 0) end)
    assert.has_error(function() red:call("SET", "k", math.huge) end)
    assert.has_error(function() red:call("SET", "k", nil, "v") end)
  end)

  it("has per-node statistics", function()
    red:call("GET", P .. "x")
    local stats = assert(red:stats())
    local known = {}
    for addr in helper.server_var("SG_TEST_CLUSTER"):gmatch("[^,]+") do known[addr] = true end
    assert.is_true(#stats >= 3, "nodes: " .. #stats)
    assert.is_true(stats.refreshes >= 1)
    local masters, commands = 0, 0
    for _, node in ipairs(stats) do
      assert.is_true(known[node.addr], node.addr)
      assert.matches("^%x*$", node.id)
      assert.is_boolean(node.is_master)
      for _, k in ipairs({ "commands", "errors", "moved", "ask", "timeouts", "connects", "conns",
                           "in_use", "idle", "pool_waits", "pool_timeouts" }) do
        assert.is_number(node[k], k)
      end
      if node.is_master then masters = masters + 1 end
      commands = commands + node.commands
    end
    assert.equal(3, masters)
    assert.is_true(commands > 0)
  end)

  it("switches the read policy and the redirect limit, answering the previous value", function()
    local c = assert(slotgate.connect(cluster_opts()))
    assert.equal("master", c:set_read_policy("replica"))
    assert.equal("OK", c:call("SET", P .. "rp", "1"))
    local v = c:call("GET", P .. "rp") -- a replica may lag: "1" or null
    assert.is_true(v == "1" or v == null)
    assert.equal("replica", c:set_read_policy("prefer_replica"))
    assert.equal("prefer_replica", c:set_read_policy("any"))
    assert.equal("any", c:set_read_policy("master"))
    assert.has_error(function() c:set_read_policy("slave") end)
    assert.equal(3, c:set_max_redirects(5))
    assert.equal(5, c:set_max_redirects(3))
    assert.has_error(function() c:set_max_redirects(-1) end)
    c:close()
  end)

  it("fails cleanly once closed", function()
    local c = assert(slotgate.connect(cluster_opts()))
    assert.is_false(c:closed())
    assert.is_true(c:close())
    assert.is_true(c:close()) -- twice is fine
    assert.is_true(c:closed())
    local v, err, code = c:call("PING")
    assert.is_nil(v)
    assert.equal("client closed", err)
    assert.equal("ECLOSED", code)
    assert.is_nil(c:stats())
    assert.is_nil(c:pipeline())
    assert.is_nil(c:set_read_policy("any"))
    assert.matches("closed", tostring(c))
  end)

  it("is freed by the garbage collector", function()
    for _ = 1, 20 do
      local c = assert(slotgate.connect(cluster_opts()))
      c:call("PING")
      c:pipeline():add("PING")
    end
    collectgarbage()
    collectgarbage()
    assert.equal("PONG", red:call("PING"))
  end)
end)

describe("a pipeline", function()
  local red

  setup(function() red = assert(slotgate.connect(cluster_opts())) end)
  teardown(function() red:close() end)

  it("returns one result per command, in order, across nodes", function()
    local p = assert(red:pipeline())
    assert.matches("^slotgate.pipeline", tostring(p))
    for i = 1, 20 do assert.is_true(p:add("SET", P .. "p" .. i, i)) end
    for i = 1, 20 do p:add("GET", P .. "p" .. i) end
    p:add("GET", P .. "p-none")
    assert.equal(41, p:count())
    local res = assert(p:exec())
    assert.equal(41, #res)
    for i = 1, 20 do
      assert.equal("OK", res[i])
      assert.equal(tostring(i), res[20 + i])
    end
    assert.equal(null, res[41])
    assert.equal(0, p:count()) -- empty again, ready for more
  end)

  it("keeps error replies and failures apart from values", function()
    local p = red:pipeline()
    p:add("SET", P .. "pe", "x")
    p:add("INCR", P .. "pe")                 -- error reply
    p:add("MULTI")                           -- refused by the library
    p:add("MGET", P .. "pe", P .. "pe-none") -- split across slots
    p:add("EVAL", "return {1, redis.error_reply('inner')}", 0)
    local res = assert(p:exec())
    assert.equal("OK", res[1])
    assert.is_false(res[2][1])
    assert.equal("ERR value is not an integer or out of range", res[2][2])
    assert.is_nil(res[2].code)
    assert.is_false(res[3][1])
    assert.matches("MULTI is tied to its connection", res[3][2], 1, true)
    assert.equal("ECOMMAND", res[3].code)
    assert.same({ "x", null }, res[4])
    assert.equal(1, res[5][1])
    assert.is_false(res[5][2][1])
  end)

  it("is binary-safe", function()
    local p = red:pipeline()
    p:add("SET", P .. "pb\0", "a\0b")
    p:add("GET", P .. "pb\0")
    local res = p:exec()
    assert.same({ "OK", "a\0b" }, res)
  end)

  it("runs empty, resets, and can be reused", function()
    local p = red:pipeline()
    assert.same({}, p:exec())
    p:add("PING")
    p:reset()
    assert.equal(0, p:count())
    p:add("PING")
    assert.same({ "PONG" }, p:exec())
    p:add("ECHO", "again")
    assert.same({ "again" }, p:exec())
    assert.is_true(p:close())
    assert.equal(0, p:count())
    local v, err, code = p:exec()
    assert.is_nil(v)
    assert.equal("ECLOSED", code)
    assert.equal("client closed", err)
  end)

  it("keeps its client alive, and fails once the client is closed", function()
    local p = assert(assert(slotgate.connect(cluster_opts())):pipeline())
    collectgarbage()
    collectgarbage()
    p:add("PING")
    assert.same({ "PONG" }, p:exec())
    local c = assert(slotgate.connect(cluster_opts()))
    local q = c:pipeline()
    c:close()
    local ok, err, code = q:add("PING")
    assert.is_nil(ok)
    assert.equal("ECLOSED", code)
    assert.equal("client closed", err)
    assert.is_nil(q:exec())
  end)

  it("treats wrong argument types as misuse", function()
    local p = red:pipeline()
    assert.has_error(function() p:add() end, "bad argument #1 to 'add' (a command name expected)")
    assert.has_error(function() p:add("SET", "k", {}) end,
      "bad argument #3 to 'add' (string or number expected, got table)")
  end)
end)

describe("a client of the standalone server", function()
  it("works in single-node mode with one node in its statistics", function()
    local red = assert(slotgate.connect(standalone_opts()))
    assert.equal("PONG", red:call("PING"))
    assert.equal("OK", red:call("SET", P .. "single", "1"))
    assert.equal("1", red:call("GET", P .. "single"))
    local stats = red:stats()
    assert.equal(1, #stats)
    assert.equal(helper.server_var("SG_TEST_STANDALONE"), stats[1].addr)
    assert.is_true(stats[1].is_master)
    assert.is_true(stats[1].commands >= 3)
    red:close()
  end)

  it("uses the configured database", function()
    local db1 = assert(slotgate.connect(standalone_opts{ TYK_GW_STORAGE_DATABASE = "1" }))
    local db0 = assert(slotgate.connect(standalone_opts()))
    assert.equal("OK", db1:call("SET", P .. "db", "one"))
    assert.equal("one", db1:call("GET", P .. "db"))
    assert.equal(null, db0:call("GET", P .. "db"))
    db1:call("DEL", P .. "db")
    db0:close()
    db1:close()
  end)

  it("reports a command that outlived the timeout as of unknown outcome", function()
    local red = assert(slotgate.connect(standalone_opts{ TYK_GW_STORAGE_TIMEOUT = "1" }))
    local v, err, code = red:call("DEBUG", "SLEEP", "1.5")
    assert.is_nil(v)
    assert.equal("EUNKNOWN", code)
    assert.matches("did not answer within 1000 ms", err, 1, true)
    assert.equal(1, red:stats()[1].timeouts)
    assert.equal("PONG", red:call("PING")) -- and the client goes on
    red:close()
  end)
end)
