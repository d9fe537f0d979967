-- slotgated_node_spec.lua — slotgated driven in RESP3 by a client library
-- that is not ours: node-redis 5 with RESP: 3 runs tests/node/resp3_checks.js
-- against slotgated in front of the real cluster. Each line the script
-- prints (`ok NAME` / `FAIL NAME: reason`) is one test here. Without node or
-- the package (tests/node: `npm ci`, which .ci/run does) the spec fails, it
-- does not skip. And redis-cli -3, Redis's own client, in RESP3 too.
local helper = require "helper"
local daemon = require "daemon"
local checks = require "client_checks"

local q, sh = helper.shell_quote, helper.sh
local DIR = helper.source_dir .. "/tests/node"

daemon.ports_from(771)

checks.run{
  script = checks.script("cd " .. q(DIR) .. " && timeout 120 node resp3_checks.js",
                         "install node and run `npm ci --prefix tests/node` (.ci/run does)"),
  title = "node-redis 5 in RESP3 through slotgated", what = "node and node-redis",
  address = function(d) return tostring(d.port) end,
  args = q(string.format("node:%d:%d:", os.time(), math.random(1e6))),
}

describe("redis-cli -3 through slotgated", function()
  local d
  setup(function() d = daemon.start() end)
  teardown(daemon.stop_all)

  local function cli3(args)
    return sh("redis-cli -3 -p " .. d.port .. " " .. args)
  end

  it("reads maps, doubles, nulls and booleans as a node sends them", function()
    local k = "cli3:" .. os.time() .. ":" .. math.random(1e6)
    assert.equal("2\n", cli3("HSET " .. k .. ":h f v g w"))
    -- redis-cli prints a map's pair as `1# "f" => "v"`, an array's
    -- elements as `1) "f"` then `2) "v"`: the two protocols tell apart
    local raw = sh("printf 'HELLO 3\\r\\nHGETALL " .. k .. ":h\\r\\nZADD " .. k ..
                   ":z 1.5 m\\r\\nZSCORE " .. k .. ":z m\\r\\nGET " .. k .. ":none\\r\\n'" ..
                   " | redis-cli -p " .. d.port .. " --no-raw")
    assert.matches('1# "f" => "v"', raw, 1, true) -- a map
    assert.matches('"proto" => (integer) 3', raw, 1, true)
    assert.matches("%(double%) 1.5", raw)
    assert.matches("%(nil%)", raw)
    assert.equal("1.5\n", cli3("ZSCORE " .. k .. ":z m"))
    cli3("DEL " .. k .. ":h " .. k .. ":z")
  end)

  it("writes its own replies in RESP3 as a node would: text verbatim, maps as maps", function()
    local c = assert(daemon.connect_served(d.port))
    local function ask(args)
      c:send(args)
      return assert(c:read())
    end
    assert.equal("map", ask({ "HELLO", "3" }).t)
    local info = ask({ "INFO", "server" })
    assert.equal("verbatim", info.t)
    assert.matches("# Server", info.v)
    local ci = ask({ "CLIENT", "INFO" })
    assert.equal("verbatim", ci.t)
    assert.matches(" resp=3\n", ci.v)
    assert.equal("verbatim", ask({ "CLUSTER", "INFO" }).t)
    assert.equal("verbatim", ask({ "CLUSTER", "NODES" }).t)
    local shards = ask({ "CLUSTER", "SHARDS" })
    assert.equal("map", shards.v[1].t)
    local slots = ask({ "CLUSTER", "SLOTS" })
    assert.equal("map", slots.v[1].v[3].v[4].t) -- the node's networking metadata
    assert.equal("nil", ask({ "GET", "cli3:none:" .. os.time() }).t)
    c:send({ "HELLO", "2" })
    assert.equal("array", c:read().t)
    ci = ask({ "CLIENT", "INFO" })
    assert.equal("bulk", ci.t)
    assert.matches(" resp=2\n", ci.v)
    c:close()
  end)

  -- HELLO's map as a field -> value table.
  local function hello_of(port, proto)
    local c = assert(daemon.connect(port))
    c:send({ "HELLO", proto })
    local r = assert(c:read())
    c:close()
    local out = {}
    for i = 1, #r.v, 2 do out[r.v[i].v] = r.v[i + 1].v end
    return out
  end

  it("says in HELLO what INFO says it is: redis, of the version whose commands it speaks", function()
    local node = hello_of(tonumber(helper.server_var("SG_TEST_STANDALONE"):match(":(%d+)$")), "3")
    local gw = hello_of(d.port, "3")
    local info = daemon.call(d.port, { "INFO", "server" }).v
    -- a client deciding by HELLO (redis-py's client-side cache wants
    -- server "redis") sees what a node of that version would tell it
    assert.equal(node.server, gw.server)
    assert.equal("redis", gw.server)
    assert.equal(info:match("redis_version:([%d.]+)"), gw.version)
    assert.equal(node.version:match("^%d+%.%d+"), gw.version:match("^%d+%.%d+"))
    assert.equal(3, gw.proto)
    assert.equal("redis", hello_of(d.port, "2").server)
  end)

  it("says the version an operator sets (redis_version), and refuses one Redis would not write", function()
    local d2 = daemon.start{ env = { SLOTGATE_REDISVERSION = "7.4.0" } }
    assert.equal("7.4.0", hello_of(d2.port, "3").version)
    assert.matches("\r\nredis_version:7.4.0\r\n", daemon.call(d2.port, { "INFO", "server" }).v)
    daemon.stop(d2)
    local out = sh("SLOTGATE_REDISVERSION=7.4 " .. q(helper.slotgated) .. " --check 2>&1; echo rc=$?")
    assert.matches("redis_version", out, 1, true)
    assert.matches('"7.4" is not a version as Redis writes it', out, 1, true)
    assert.matches("rc=1", out, 1, true)
  end)
end)
