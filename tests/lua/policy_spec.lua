-- policy_spec.lua — the Lua API of policy sets and gateways (slotgate.policy,
-- slotgate.gateway in lua/slotgate.lua): every method and each error path,
-- the gateways in front of the harness's real cluster. What the example
-- scripts do is in scripts_*_spec.lua.
local helper = require "helper"
local slotgate = require "slotgate"
local sh = require "scripts_helper"

local null = slotgate.null
local P = sh.unique("pol")

local function cluster_env()
  return { env = sh.env() }
end

describe("slotgate.policy", function()
  local files = {}
  local function file(text)
    local path = sh.write_temp(text)
    files[#files + 1] = path
    return path
  end
  teardown(function() for _, f in ipairs(files) do os.remove(f) end end)

  it("makes an empty set that changes nothing", function()
    local p = assert(slotgate.policy())
    assert.matches("^slotgate.policy$", tostring(p))
    assert.same({}, p:names())
    assert.equal("command: SET k v", p:explain(nil, "SET", "k", "v"))
  end)

  it("loads a file or a list of files, in order", function()
    local a = file("return {name = 'a', prefix = 'one:'}")
    local b = file("return {prefix = 'two:'}")
    local p = assert(slotgate.policy(a))
    assert.same({ "a" }, p:names())
    assert.equal("command: GET one:k", p:explain(nil, "GET", "k"))
    p = assert(slotgate.policy({ a, b }))
    -- the second script has no name: its file's base name
    assert.same({ "a", (b:match("([^/]+)%.lua$")) }, p:names())
    assert.equal("command: GET two:one:k", p:explain(nil, "GET", "k"))
  end)

  it("answers nil, err naming file and line for a script that does not load", function()
    local bad = file("return {\n  prefix = 'x:',\n  deny_commands = {'A'\n}\n")
    local p, err, code = slotgate.policy(bad)
    assert.is_nil(p)
    assert.equal("ESCRIPT", code)
    assert.matches(bad .. ":5:", err, 1, true)
    p, err, code = slotgate.policy("/nonexistent/policy.lua")
    assert.is_nil(p)
    assert.equal("ESCRIPT", code)
    assert.matches("/nonexistent/policy.lua", err, 1, true)
  end)

  it("reloads all or nothing: a bad set leaves the old one in force", function()
    local good = file("return {name = 'good', prefix = 'g:'}")
    local other = file("return {name = 'other'}")
    local typo = file("return {prefx = 'a'}")
    local p = assert(slotgate.policy(good))
    local ok, err, code = p:load({ other, typo })
    assert.is_nil(ok)
    assert.equal("ESCRIPT", code)
    assert.matches(typo .. ": unknown field \"prefx\"", err, 1, true)
    assert.same({ "good" }, p:names())
    assert.equal("command: GET g:k", p:explain(nil, "GET", "k"))
    assert.is_true(p:load(other))
    assert.same({ "other" }, p:names())
    assert.is_true(p:load({}))  -- an empty list empties the set
    assert.same({}, p:names())
  end)

  it("loads a script from text, the name standing for its file", function()
    local p = assert(slotgate.policy())
    assert.is_true(p:load_string("inline.lua", "return {deny_commands = {'DEL'}}"))
    assert.same({ "inline" }, p:names())
    assert.equal("deny: NOPERM policy inline refuses DEL", p:explain(nil, "DEL", "k"))
    local ok, err, code = p:load_string("broken.lua", "return {\n\n  x = = 1 }")
    assert.is_nil(ok)
    assert.equal("ESCRIPT", code)
    assert.matches("^broken.lua:3:", err)
    assert.same({ "inline" }, p:names())
  end)

  it("explains a decision with the request's ctx", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("all.lua", [[
      return {
        prefix = "{user}/{client}/",
        default_ttl = {["*cache-*"] = 60},
        route = {["*analytics-*"] = "analytics"},
        read = {["*apikey-*"] = "replica"},
        on_command = function(ctx)
          if ctx.addr == "10.0.0.66:1234" then return {deny = "not from there"} end
        end,
      }]]))
    assert.equal("command: SET alice/cli/cache-a 1\nttl: alice/cli/cache-a 60",
                 p:explain({ user = "alice", client = "cli" }, "SET", "cache-a", 1))
    assert.equal("command: RPUSH default//analytics-x v\nupstream: analytics",
                 p:explain(nil, "RPUSH", "analytics-x", "v"))
    assert.equal("command: GET bob//apikey-1\nread: replica", p:explain({ user = "bob" }, "GET", "apikey-1"))
    assert.equal("deny: NOPERM not from there", p:explain({ addr = "10.0.0.66:1234" }, "GET", "k"))
  end)

  it("gives rewrite_key the command as the script got it, for every key", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("k.lua", "return {prefix = 'p:', rewrite_key = function(k, ctx)\n"
                                   .. "  return k .. '|' .. table.concat(ctx.keys, ',') .. '|' .. ctx.args[3]\n"
                                   .. "end}"))
    assert.equal("command: MSET p:a|a,b|b 1 p:b|a,b|b 2", p:explain(nil, "MSET", "a", 1, "b", 2))
  end)

  it("fails a command whose on_command names an unknown read policy", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("r.lua", "return {on_command = function(ctx) return {read = ctx.keys[1]} end}"))
    assert.equal("command: GET any\nread: any", p:explain(nil, "GET", "any"))
    assert.equal("command: GET prefer-replica\nread: prefer-replica", p:explain(nil, "GET", "prefer-replica"))
    assert.equal("command: GET prefer_replica\nread: prefer-replica", p:explain(nil, "GET", "prefer_replica"))
    assert.equal('deny: ERR policy r: on_command failed: on_command returned read = slave; '
                 .. 'expected "master", "prefer-replica", "replica" or "any"', p:explain(nil, "GET", "slave"))
    assert.equal(1, p:stats().hook_errors)
  end)

  it("makes writes to matching keys durable: the most replicas any key asks for", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("d.lua", [[
      return { durable = { ["apikey-*"] = 1, ["session-*"] = 2 }, durable_timeout_ms = 250 }]]))
    assert.equal("command: SET apikey-1 v\ndurable: 1 replica, 250 ms",
                 p:explain(nil, "SET", "apikey-1", "v"))
    assert.equal("command: MSET apikey-1 v session-2 w\ndurable: 2 replicas, 250 ms",
                 p:explain(nil, "MSET", "apikey-1", "v", "session-2", "w"))
    -- reads and other keys are not durable
    assert.equal("command: GET apikey-1", p:explain(nil, "GET", "apikey-1"))
    assert.equal("command: SET other v", p:explain(nil, "SET", "other", "v"))
    assert.equal(2, p:stats().durable)
    -- without a timeout of its own: 0 (the upstream's)
    assert(p:load_string("d.lua", "return { durable = { ['*'] = 3 } }"))
    assert.equal("command: DEL k\ndurable: 3 replicas, 0 ms", p:explain(nil, "DEL", "k"))
  end)

  it("refuses a durable field that is not replicas, or a bad timeout", function()
    local p = assert(slotgate.policy())
    local ok, err = p:load_string("bad.lua", "return { durable = { ['k*'] = 'one' } }")
    assert.is_nil(ok)
    assert.matches('bad%.lua: durable%["k%*"%] must be a number of replicas %(0 to 255%)', err)
    ok, err = p:load_string("bad.lua", "return { durable = { ['k*'] = 256 } }")
    assert.is_nil(ok)
    assert.matches("must be a number of replicas", err)
    ok, err = p:load_string("bad.lua", "return { durable = { ['k*'] = 1 }, durable_timeout_ms = 0 }")
    assert.is_nil(ok)
    assert.matches("bad%.lua: durable_timeout_ms must be a whole number of milliseconds", err)
  end)

  it("counts what it decided", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("c.lua", "return {prefix = 'c:', deny_keys = {'no'}, "
                                   .. "rewrite_key = function(k) return k end}"))
    p:explain(nil, "GET", "a")
    p:explain(nil, "MGET", "a", "b")
    p:explain(nil, "GET", "no")
    p:explain(nil, "PING")
    local st = p:stats()
    assert.equal(4, st.commands)
    assert.equal(1, st.denied)
    assert.equal(2, st.rewritten)
    assert.equal(3, st.hook_calls) -- one per key
    for _, k in ipairs({ "ttls", "routed", "hook_errors", "hook_timeouts", "dry_run_events",
                         "durable" }) do
      assert.equal(0, st[k], k)
    end
  end)

  it("sets the limits on hooks", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("spin.lua", "return {on_command = function()\n"
                                     .. "  for i = 1, 200000 do end\nend}"))
    assert.equal("command: GET k", p:explain(nil, "GET", "k"))
    assert.is_true(p:set_limits(10000, 1000))
    local text = p:explain(nil, "GET", "k")
    assert.matches("^deny: ERR policy spin: on_command failed: spin.lua:2: .*ran too long", text)
    assert.equal(1, p:stats().hook_timeouts)
    local ok, err, code = p:set_limits(10, 1)
    assert.is_nil(ok)
    assert.equal("EINVAL", code)
    assert.matches("at least", err, 1, true)
    assert.has_error(function() p:set_limits("many", 1) end,
      "bad argument #1 to 'set_limits' (integer expected, got string)")
    assert.has_error(function() p:set_limits(5000, 1.5) end)
  end)

  it("treats wrong arguments as misuse", function()
    local p = assert(slotgate.policy())
    assert.has_error(function() slotgate.policy(42) end,
      "bad argument #1 to 'policy' (path or list of paths expected, got number)")
    assert.has_error(function() slotgate.policy({ "a.lua", 1 }) end,
      "bad argument #1 to 'policy' (paths[2] must be a string, got number)")
    assert.has_error(function() p:load() end)
    assert.has_error(function() p:load_string("x.lua") end,
      "bad argument #2 to 'load_string' (string expected, got nil)")
    assert.has_error(function() p:explain(nil) end, "bad argument #2 to 'explain' (a command name expected)")
    assert.has_error(function() p:explain({ usr = "x" }, "GET", "k") end,
      "bad argument #1 to 'explain' (unknown ctx field usr; known: user, client, addr)")
    assert.has_error(function() p:explain({ user = 1 }, "GET", "k") end,
      "bad argument #1 to 'explain' (ctx.user must be a string, got number)")
    assert.has_error(function() p:explain("alice", "GET", "k") end,
      "bad argument #1 to 'explain' (ctx table or nil expected, got string)")
    assert.has_error(function() p:explain(nil, "GET", {}) end,
      "bad argument #3 to 'explain' (string or number expected, got table)")
  end)

  it("fails cleanly once closed", function()
    local p = assert(slotgate.policy())
    assert.is_false(p:closed())
    assert.is_true(p:close())
    assert.is_true(p:close())
    assert.is_true(p:closed())
    local v, err, code = p:explain(nil, "GET", "k")
    assert.is_nil(v)
    assert.equal("policy closed", err)
    assert.equal("ECLOSED", code)
    assert.is_nil(p:load({}))
    assert.is_nil(p:load_string("x", "return {}"))
    assert.is_nil(p:names())
    assert.is_nil(p:stats())
    assert.matches("closed", tostring(p))
  end)
end)

describe("slotgate.gateway", function()
  local gw

  setup(function() gw = assert(slotgate.gateway(cluster_env())) end)
  teardown(function() gw:close() end)

  it("passes commands unchanged without a policy, with client:call's values", function()
    assert.matches("^slotgate.gateway$", tostring(gw))
    assert.is_nil(gw:policy())
    assert.equal("OK", gw:call(nil, "SET", P .. "plain", 42))
    assert.equal("42", gw:call(nil, "GET", P .. "plain"))
    assert.equal(43, gw:call({ user = "u" }, "INCR", P .. "plain"))
    assert.equal(null, gw:call(nil, "GET", P .. "none"))
    assert.same({ "43", null }, gw:call(nil, "MGET", P .. "plain", P .. "none"))
    local ok, msg = gw:call(nil, "LPUSH", P .. "plain", "x")
    assert.is_false(ok)
    assert.matches("^WRONGTYPE", msg)
    local v, err, code = gw:call(nil, "MULTI")
    assert.is_nil(v)
    assert.equal("ECOMMAND", code)
    assert.matches("MULTI", err, 1, true)
    -- SCAN walks the masters; its cursor names the node
    local page = gw:call(nil, "SCAN", 0, "COUNT", 5)
    assert.equal("table", type(page))
    assert.matches("^%d+$", page[1])
  end)

  it("puts commands through its policy, with the ctx", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("ns.lua", "return {prefix = '" .. P .. "{user}:', deny_commands = {'FLUSHALL'}}"))
    assert.is_true(gw:set_policy(p))
    assert.equal(p, gw:policy())
    assert.equal("OK", gw:call({ user = "ann" }, "SET", "k", "a"))
    assert.equal("OK", gw:call(nil, "SET", "k", "d"))
    local ok, msg = gw:call(nil, "FLUSHALL")
    assert.is_false(ok)
    assert.equal("NOPERM policy ns refuses FLUSHALL", msg)
    assert.is_true(gw:set_policy(nil))
    assert.equal("a", gw:call(nil, "GET", P .. "ann:k"))
    assert.equal("d", gw:call(nil, "GET", P .. "default:k"))
    assert.equal(2, gw:call(nil, "DEL", P .. "ann:k", P .. "default:k"))
  end)

  it("keeps its policy alive, and goes on without it once the policy is closed", function()
    local g = assert(slotgate.gateway(cluster_env()))
    do
      local p = assert(slotgate.policy())
      assert(p:load_string("kept.lua", "return {deny_commands = {'GET'}}"))
      g:set_policy(p)
    end
    collectgarbage()
    collectgarbage()
    assert.is_false((g:call(nil, "GET", P .. "x")))
    local p = g:policy()
    p:close()
    assert.is_nil(g:policy())
    assert.equal(null, g:call(nil, "GET", P .. "x"))
    local ok, err, code = g:set_policy(p)
    assert.is_nil(ok)
    assert.equal("policy closed", err)
    assert.equal("ECLOSED", code)
    g:close()
  end)

  it("reloads its policy between commands", function()
    local p = assert(slotgate.policy())
    gw:set_policy(p)
    assert(p:load_string("v1.lua", "return {prefix = '" .. P .. "v1:'}"))
    assert.equal("OK", gw:call(nil, "SET", "k", "1"))
    assert(p:load_string("v2.lua", "return {prefix = '" .. P .. "v2:'}"))
    assert.equal(null, gw:call(nil, "GET", "k"))
    assert.is_nil(p:load_string("v3.lua", "return {prefix = 3}"))
    assert.equal(null, gw:call(nil, "GET", "k")) -- still v2
    gw:set_policy(nil)
    assert.equal("1", gw:call(nil, "GET", P .. "v1:k"))
  end)

  it("fails a command routed to an upstream the settings lack", function()
    local p = assert(slotgate.policy())
    assert(p:load_string("r.lua", "return {route = {['cache-*'] = 'cache'}}"))
    gw:set_policy(p)
    local ok, msg = gw:call(nil, "GET", "cache-x")
    assert.is_false(ok)
    assert.equal('ERR policy routes to upstream "cache", which the settings do not define', msg)
    assert.equal(null, gw:call(nil, "GET", P .. "other"))
    gw:set_policy(nil)
  end)

  it("hands out its upstreams' clients", function()
    local c = assert(gw:client())
    assert.matches("of a gateway", tostring(c))
    assert.equal("OK", c:call("SET", P .. "viaclient", "v")) -- no policies on it
    assert.equal("v", gw:call(nil, "GET", P .. "viaclient"))
    -- the masters at least: Redis 7.0 lists a replica in CLUSTER SLOTS only
    -- once it has reported a replication offset
    assert.is_true(#assert(c:stats()) >= 3)
    local pl = assert(c:pipeline())
    pl:add("GET", P .. "viaclient")
    assert.same({ "v" }, pl:exec())
    assert(gw:client("default"))
    local none, err, code = gw:client("cache")
    assert.is_nil(none)
    assert.equal("EINVAL", code)
    assert.equal('no upstream "cache" in the settings', err)
    assert.is_true(c:close()) -- lets go of it; the gateway goes on
    assert.equal("v", gw:call(nil, "GET", P .. "viaclient"))
    assert.equal("ECLOSED", select(3, c:call("PING")))
  end)

  it("makes a client per upstream of the settings", function()
    local g = assert(slotgate.gateway{ env = sh.env{ routes = true } })
    local standalone = helper.server_var("SG_TEST_STANDALONE")
    for _, name in ipairs({ "cache", "analytics" }) do
      local c = assert(g:client(name))
      assert.equal("PONG", c:call("PING"))
      local st = c:stats()
      assert.equal(1, #st)
      assert.equal(standalone, st[1].addr)
    end
    assert.is_true(#g:client("default"):stats() >= 3)
    g:close()
  end)

  it("passes configuration errors on", function()
    local g, err, code = slotgate.gateway{ env = { TYK_GW_STORAGE_ENABLECLUSTER = "yes" } }
    assert.is_nil(g)
    assert.equal("EENV", code)
    assert.matches("TYK_GW_STORAGE_ENABLECLUSTER", err, 1, true)
    -- a file that is there but holds no certificate: the upstream's client fails
    local not_pem = helper.source_dir .. "/scripts/README.md"
    g, err, code = slotgate.gateway{ env = { TYK_GW_STORAGE_USESSL = "true",
                                             TYK_GW_STORAGE_CAFILE = not_pem } }
    assert.is_nil(g)
    assert.equal("ETLS", code)
    assert.matches("upstream default: TLS: cannot load the CA file \"" .. not_pem, err, 1, true)
  end)

  it("treats wrong arguments as misuse", function()
    assert.has_error(function() slotgate.gateway("tyk.conf") end,
      "bad argument #1 to 'gateway' (slotgate.config or table expected, got string)")
    assert.has_error(function() gw:set_policy({}) end,
      "bad argument #1 to 'set_policy' (slotgate.policy or nil expected, got table)")
    assert.has_error(function() gw:call() end)
    assert.has_error(function() gw:call(nil) end, "bad argument #2 to 'call' (a command name expected)")
    assert.has_error(function() gw:call({ usr = "x" }, "GET", "k") end,
      "bad argument #1 to 'call' (unknown ctx field usr; known: user, client, addr)")
    assert.has_error(function() gw:call(nil, "SET", "k", true) end,
      "bad argument #4 to 'call' (string or number expected, got boolean)")
    assert.has_error(function() gw:client(1) end)
  end)

  it("fails cleanly once closed, and so do its clients", function()
    local g = assert(slotgate.gateway(cluster_env()))
    local c = assert(g:client())
    assert.equal("PONG", c:call("PING"))
    assert.is_false(g:closed())
    assert.is_true(g:close())
    assert.is_true(g:close())
    assert.is_true(g:closed())
    local v, err, code = g:call(nil, "PING")
    assert.is_nil(v)
    assert.equal("gateway closed", err)
    assert.equal("ECLOSED", code)
    assert.is_nil(g:client())
    v, err, code = c:call("PING")
    assert.is_nil(v)
    assert.equal("client closed", err)
    assert.equal("ECLOSED", code)
    assert.matches("closed", tostring(g))
  end)

  it("is freed by the garbage collector, clients keeping it alive", function()
    local c
    for i = 1, 10 do
      local g = assert(slotgate.gateway(cluster_env()))
      local p = assert(slotgate.policy())
      g:set_policy(p)
      assert.equal("PONG", g:call(nil, "PING"))
      if i == 1 then c = g:client() end
    end
    collectgarbage()
    collectgarbage()
    assert.equal("PONG", c:call("PING")) -- its gateway lives on
    assert.equal("PONG", gw:call(nil, "PING"))
  end)
end)

-- the helper's own clock, used by the timing checks of the other specs
describe("scripts_helper", function()
  it("has a monotonic clock in seconds", function()
    local t0 = sh.now()
    os.execute("sleep 0.1")
    local dt = sh.now() - t0
    assert.is_true(dt >= 0.09 and dt < 5, tostring(dt))
    assert.is_string(helper.source_dir)
  end)
end)
