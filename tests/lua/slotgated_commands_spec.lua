-- slotgated's command coverage in front of the real cluster: every command
-- and subcommand of the command table (core/src/commands_table.h) is answered
-- or refused with an error that names it, never a hang, a crash or a generic
-- error; SCAN's cursor walks every master; the fan-outs (KEYS, DBSIZE,
-- RANDOMKEY, FLUSHALL, SCRIPT, FUNCTION, CONFIG) answer for the whole
-- cluster; per-key introspection and scripts go to their keys' node; INFO
-- reports the upstreams and the cluster's keyspace; CLUSTER shows slotgated as
-- the only node.
local helper = require "helper"
local daemon = require "daemon"

local slurp = helper.slurp
local start, stop, cli, call, node_cli = daemon.start, daemon.stop, daemon.cli, daemon.call, daemon.node_cli

-- Commands go raw through daemon.call, not redis-cli: it has modes of its
-- own for SUBSCRIBE and MONITOR that wait forever, whatever the reply.

daemon.ports_from(701)

-- A command through slotgated: the reply's value; errors as false, message.
local function cmd(d, ...)
  local r, why = call(d.port, { ... })
  assert(r, "no reply to " .. table.concat({ ... }, " ") .. ": " .. tostring(why))
  if r.t == "error" then return false, r.v end
  return r
end

local function values(r)
  local out = {}
  for i, e in ipairs(r.v) do out[i] = e.v end
  return out
end

local function split(s, sep)
  local out = {}
  for part in s:gmatch("[^" .. sep .. "]+") do out[#out + 1] = part end
  return out
end

-- The masters now (a failover test may have swapped roles since the start),
-- as CLUSTER NODES on a node names them.
local function masters()
  local out = {}
  local nodes = node_cli(split(helper.server_var("SG_TEST_CLUSTER"), ",")[1], "CLUSTER NODES")
  for addr, flags in nodes:gmatch("%x+ ([%d%.]+:%d+)@%d+ (%S+)") do
    if flags:find("master", 1, true) and not flags:find("fail", 1, true) then out[#out + 1] = addr end
  end
  assert(#out == 3, "three masters: " .. nodes)
  return out
end

-- ---- the command table ---------------------------------------------------------

local function table_entries()
  local text = slurp(helper.source_dir .. "/core/src/commands_table.h")
  local out = {}
  for name in text:gmatch('%.name = "([^"]+)"') do out[#out + 1] = name end
  return out
end

-- Commands whose bare call gets an error from the nodes that does not name
-- them, and is the right answer: no script or function is running.
local NODE_ANSWERS = {
  ["script|kill"] = "^NOTBUSY",
  ["function|kill"] = "^NOTBUSY",
}

describe("slotgated command coverage", function()
  local d
  setup(function() d = start{ env = { SLOTGATE_THREADS = "1" } } end)
  teardown(daemon.stop_all)

  it("answers or refuses by name every command of the table, subcommands too", function()
    local entries = table_entries()
    assert.is_true(#entries >= 366, "the table lists " .. #entries .. " entries")
    local problems, answered, refused = {}, 0, 0
    for _, full in ipairs(entries) do
      local parent, sub = full:match("^([^|]+)|(.+)$")
      local args = parent and { parent:upper(), sub:upper() } or { full:upper() }
      local r, why = call(d.port, args, 10)
      local name = (sub or full):lower()
      if not r then
        problems[#problems + 1] = full .. ": " .. why
      elseif r.t == "error" then
        local msg = r.v:lower()
        if NODE_ANSWERS[full] and r.v:match(NODE_ANSWERS[full]) then
          answered = answered + 1
        elseif not msg:find(name, 1, true) then
          problems[#problems + 1] = full .. ": an error that does not name it: " .. r.v
        elseif msg:match("^err unknown command") or msg:match("^err unknown subcommand") then
          problems[#problems + 1] = full .. ": unknown to whoever answered: " .. r.v
        else
          if msg:match("^err slotgate does not support") then refused = refused + 1
          else answered = answered + 1 end
        end
      else
        answered = answered + 1
      end
      if not daemon.alive(d) then
        problems[#problems + 1] = full .. ": slotgated died"
        break
      end
    end
    assert.same({}, problems)
    assert.equal(#entries, answered + refused)
    assert.is_true(refused >= 30, "refused " .. refused)
    assert.equal("PONG", cmd(d, "PING").v)
  end)

  it("refuses what it cannot carry with the command's name and a reason", function()
    for _, c in ipairs({ { "SHUTDOWN", "NOSAVE" }, { "DEBUG", "SLEEP", "0" }, { "MONITOR" },
                         { "CLIENT", "PAUSE", "10" }, { "CLUSTER", "FAILOVER" },
                         { "ACL", "WHOAMI" }, { "WAIT", "0", "0" }, { "REPLICAOF", "NO", "ONE" },
                         { "SAVE" }, { "BGSAVE" }, { "MIGRATE", "h", "1", "k", "0", "1" },
                         { "SCRIPT", "DEBUG", "YES" }, { "MODULE", "LOAD", "/x.so" } }) do
      local ok, err = cmd(d, unpack(c))
      assert.is_false(ok)
      local shown = c[1]
      if c[1] == "CLIENT" or c[1] == "CLUSTER" or c[1] == "ACL" or c[1] == "SCRIPT" or c[1] == "MODULE" then
        shown = c[1] .. " " .. c[2]
      end
      assert.matches(shown, err, 1, true)
      assert.matches("^ERR slotgate does not support", err)
    end
    -- every node is still up (SHUTDOWN never left the gateway)
    for _, addr in ipairs(split(helper.server_var("SG_TEST_CLUSTER"), ",")) do
      assert.equal("PONG\n", node_cli(addr, "PING"))
    end
  end)

  it("serves COMMAND DOCS, whose replies nest deeper than most", function()
    local r = cmd(d, "COMMAND", "DOCS", "SET")
    assert.truthy(r, "COMMAND DOCS refused")
    assert.equal("set", r.v[1].v)
    -- SET's doc map holds its arguments, whose own maps hold more arguments
    local doc, args = r.v[2].v, nil
    for i = 1, #doc, 2 do
      if doc[i].v == "arguments" then args = doc[i + 1].v end
    end
    assert.truthy(args, "no arguments in SET's docs")
    assert.is_true(#args >= 3)
    local whole = node_cli(split(helper.server_var("SG_TEST_CLUSTER_MASTERS"), ",")[1], "COMMAND DOCS")
    assert.matches("summary", whole)
    assert.is_true(#cmd(d, "COMMAND", "DOCS").v > 300) -- every command's, as a node gives them
  end)
end)

describe("slotgated fan-outs", function()
  local d
  setup(function() d = start{ env = { SLOTGATE_THREADS = "1" } } end)
  teardown(daemon.stop_all)

  it("walks every master with SCAN, passing MATCH, COUNT and TYPE", function()
    assert.equal("OK", cmd(d, "FLUSHALL").v)
    for i = 1, 300 do assert.equal("OK", cmd(d, "SET", "sc:" .. i, "v").v) end
    for i = 1, 20 do assert.equal(1, cmd(d, "HSET", "sch:" .. i, "f", "v").v) end
    local seen, n, calls, cursor = {}, 0, 0, "0"
    local masters_seen = {}
    repeat
      local r = cmd(d, "SCAN", cursor, "MATCH", "sc:*", "COUNT", "20")
      cursor = r.v[1].v
      masters_seen[tonumber(cursor) % 1024] = true
      for _, k in ipairs(r.v[2].v) do
        assert.matches("^sc:%d+$", k.v)
        if not seen[k.v] then n = n + 1 end
        seen[k.v] = true
      end
      calls = calls + 1
    until cursor == "0" or calls > 500
    assert.equal("0", cursor)
    assert.equal(300, n)
    assert.is_true(calls > 3) -- COUNT reached the nodes
    assert.is_true(masters_seen[1] and masters_seen[2] and true or false)
    -- TYPE
    local hashes, c2 = 0, "0"
    repeat
      local r = cmd(d, "SCAN", c2, "TYPE", "hash", "COUNT", "1000")
      c2 = r.v[1].v
      for _, k in ipairs(r.v[2].v) do
        assert.matches("^sch:", k.v)
        hashes = hashes + 1
      end
    until c2 == "0"
    assert.equal(20, hashes)
    -- redis-cli's own --scan agrees
    local out = cli(d, "--scan --pattern 'sc:*'")
    local listed = 0
    for _ in out:gmatch("sc:%d+\n") do listed = listed + 1 end
    assert.equal(300, listed)
    -- cursors slotgated never gave
    for _, bad in ipairs({ "abc", "-1", "1023", "99999999999999999999999" }) do
      local ok, err = cmd(d, "SCAN", bad)
      assert.is_false(ok)
      assert.equal("ERR invalid cursor", err)
    end
  end)

  it("sums DBSIZE, merges KEYS, finds a RANDOMKEY on the master that has keys, FLUSHALL everywhere", function()
    assert.equal("OK", cmd(d, "FLUSHALL").v)
    assert.equal(0, cmd(d, "DBSIZE").v)
    assert.equal("nil", cmd(d, "RANDOMKEY").t)
    assert.equal("OK", cmd(d, "SET", "rk:one", "1").v)
    for _ = 1, 10 do assert.equal("rk:one", cmd(d, "RANDOMKEY").v) end
    for i = 1, 30 do cmd(d, "SET", "fk:" .. i, "1") end
    assert.equal(31, cmd(d, "DBSIZE").v)
    assert.equal(30, #cmd(d, "KEYS", "fk:*").v)
    -- the masters' own counts add up to it
    local sum = 0
    for _, addr in ipairs(masters()) do
      sum = sum + tonumber(node_cli(addr, "DBSIZE"):match("%d+"))
    end
    assert.equal(31, sum)
    assert.equal("OK", cmd(d, "FLUSHDB").v)
    assert.equal(0, cmd(d, "DBSIZE").v)
  end)

  it("labels each node's reply to the introspection fan-outs Redis leaves to the client", function()
    -- MEMORY STATS, FUNCTION STATS: every master; LATENCY: every node.
    -- address, reply, address, reply ...: nothing concatenated or dropped
    local function by_node(r)
      assert.equal("array", r.t)
      assert.equal(0, #r.v % 2, "address/reply pairs")
      local out = {}
      for i = 1, #r.v, 2 do
        assert.equal("bulk", r.v[i].t)
        assert.is_nil(out[r.v[i].v], "one reply per node")
        out[r.v[i].v] = r.v[i + 1]
      end
      return out
    end
    local ms = masters()
    for _, args in ipairs({ { "MEMORY", "STATS" }, { "FUNCTION", "STATS" }, { "MEMORY", "DOCTOR" } }) do
      local got = by_node(cmd(d, table.unpack(args)))
      local n = 0
      for _ in pairs(got) do n = n + 1 end
      assert.equal(3, n, table.concat(args, " ") .. ": one reply per master")
      for _, addr in ipairs(ms) do
        local r = got[addr]
        assert(r, table.concat(args, " ") .. ": " .. addr .. " answered")
        if args[2] == "DOCTOR" then
          assert.equal("bulk", r.t)
        else
          -- the node's own map, intact: its first field
          assert.equal("array", r.t)
          assert.equal(args[1] == "MEMORY" and "peak.allocated" or "running_script", r.v[1].v)
        end
      end
    end
    -- LATENCY HISTOGRAM of a command some node ran: six nodes, each its own
    cmd(d, "SET", "lh:{a}", "1")
    local got = by_node(cmd(d, "LATENCY", "HISTOGRAM", "set"))
    local n = 0
    for _ in pairs(got) do n = n + 1 end
    assert.equal(6, n, "every node, replicas too")
    local ok, err = cmd(d, "MEMORY", "STATS", "extra")
    assert.is_false(ok)
    assert.matches("memory|stats", err:lower(), 1, true)
  end)

  it("loads scripts and functions on every master; EVALSHA and FCALL go to their keys", function()
    local sha = cmd(d, "SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])").v
    assert.equal(40, #sha)
    local ex = values(cmd(d, "SCRIPT", "EXISTS", sha, string.rep("0", 40)))
    assert.same({ 1, 0 }, ex)
    for _, addr in ipairs(masters()) do
      assert.equal("1\n", node_cli(addr, "SCRIPT EXISTS " .. sha))
    end
    -- keys on the three masters: the script finds each where it lives
    for _, k in ipairs({ "ev:{a}", "ev:{b}", "ev:{c}" }) do
      cmd(d, "SET", k, k)
      assert.equal(k, cmd(d, "EVALSHA", sha, "1", k).v)
      assert.equal(k, cmd(d, "EVAL", "return redis.call('GET', KEYS[1])", "1", k).v)
    end
    local ok, err = cmd(d, "EVAL", "return 1", "2", "ev:{a}", "ev:{b}")
    assert.is_false(ok)
    assert.matches("CROSSSLOT", err)
    -- one master without the script: EXISTS says 0 (logical AND)
    local first = masters()[1]
    node_cli(first, "SCRIPT FLUSH")
    assert.same({ 0 }, values(cmd(d, "SCRIPT", "EXISTS", sha)))
    assert.equal("OK", cmd(d, "SCRIPT", "FLUSH").v)

    -- functions
    cmd(d, "FUNCTION", "FLUSH")
    local lib = "#!lua name=sglib\nredis.register_function{function_name = 'sgget', flags = {'no-writes'}, " ..
                "callback = function(keys) return redis.call('GET', keys[1]) end}"
    local loaded, lerr = cmd(d, "FUNCTION", "LOAD", lib)
    assert.equal("sglib", loaded and loaded.v or lerr)
    for _, k in ipairs({ "ev:{a}", "ev:{b}", "ev:{c}" }) do
      assert.equal(k, cmd(d, "FCALL", "sgget", "1", k).v)
      assert.equal(k, cmd(d, "FCALL_RO", "sgget", "1", k).v)
    end
    assert.equal(1, #cmd(d, "FUNCTION", "LIST").v)
    local dump = cmd(d, "FUNCTION", "DUMP")
    assert.equal("bulk", dump.t)
    assert.equal("OK", cmd(d, "FUNCTION", "DELETE", "sglib").v)
    for _, addr in ipairs(masters()) do
      assert.equal("\n", node_cli(addr, "FUNCTION LIST"))
    end
    assert.equal("OK", cmd(d, "FUNCTION", "RESTORE", dump.v).v)
    for _, addr in ipairs(masters()) do
      assert.matches("sglib", node_cli(addr, "FUNCTION LIST"))
    end
    assert.equal("OK", cmd(d, "FUNCTION", "FLUSH").v)
    cmd(d, "DEL", "ev:{a}", "ev:{b}", "ev:{c}")
  end)

  it("reads CONFIG from one node and sets it on every node, replicas too", function()
    local r = values(cmd(d, "CONFIG", "GET", "slowlog-max-len"))
    assert.equal("slowlog-max-len", r[1])
    local was = r[2]
    assert.equal("OK", cmd(d, "CONFIG", "SET", "slowlog-max-len", "131").v)
    for _, addr in ipairs(split(helper.server_var("SG_TEST_CLUSTER"), ",")) do
      assert.equal("slowlog-max-len\n131\n", node_cli(addr, "CONFIG GET slowlog-max-len"))
    end
    assert.equal("OK", cmd(d, "CONFIG", "SET", "slowlog-max-len", was).v)
    assert.equal("OK", cmd(d, "CONFIG", "RESETSTAT").v)
    -- SLOWLOG from every node, merged
    assert.equal("int", cmd(d, "SLOWLOG", "LEN").t)
    assert.equal("array", cmd(d, "SLOWLOG", "GET").t)
    local ok, err = cmd(d, "CONFIG", "SET", "no-such-setting", "1")
    assert.is_false(ok)
    assert.matches("no%-such%-setting", err)
  end)

  it("routes per-key introspection by key", function()
    for _, k in ipairs({ "in:{a}", "in:{b}", "in:{c}" }) do
      cmd(d, "DEL", k)
      assert.equal(3, cmd(d, "RPUSH", k, "1", "2", "3").v)
      assert.equal("list", cmd(d, "TYPE", k).v)
      assert.equal(-1, cmd(d, "TTL", k).v)
      assert.equal(1, cmd(d, "EXPIRE", k, "100").v)
      assert.is_true(cmd(d, "PTTL", k).v > 90000)
      assert.equal("quicklist", cmd(d, "OBJECT", "ENCODING", k).v) -- Redis 7.0's lists
      assert.equal("int", cmd(d, "OBJECT", "IDLETIME", k).t)
      assert.equal("int", cmd(d, "MEMORY", "USAGE", k).t)
      local dump = cmd(d, "DUMP", k)
      assert.equal("bulk", dump.t)
      assert.equal(1, cmd(d, "DEL", k).v)
      assert.equal("OK", cmd(d, "RESTORE", k, "0", dump.v).v)
      assert.same({ "1", "2", "3" }, values(cmd(d, "LRANGE", k, "0", "-1")))
      assert.equal(1, cmd(d, "DEL", k).v)
    end
  end)

  it("reports the upstream's nodes and the cluster's keyspace in INFO, by section", function()
    cmd(d, "FLUSHALL")
    for i = 1, 40 do cmd(d, "SET", "ks:" .. i, "v") end
    for i = 1, 10 do cmd(d, "SET", "kx:" .. i, "v", "EX", "1000") end
    -- slotgated's own sections are in everything (as a module's in Redis)
    local info = cmd(d, "INFO", "everything").v
    for _, want in ipairs({ "# Server", "# Clients", "# Stats", "# Upstream default", "# Keyspace",
                            "redirects:", "pool_waits:", "pool_timeouts:", "errors:",
                            "node0:addr=" }) do
      assert.matches(want, info, 1, true)
    end
    assert.is_nil(cmd(d, "INFO").v:find("# Upstream", 1, true))
    assert.matches("db0:keys=50,expires=10,avg_ttl=%d+", info)
    local ks = cmd(d, "INFO", "keyspace").v
    assert.matches("^# Keyspace\r\ndb0:keys=50,expires=10,avg_ttl=%d+\r\n$", ks)
    local server = cmd(d, "INFO", "server").v
    assert.matches("slotgate_version:", server, 1, true)
    assert.is_nil(server:find("# Clients", 1, true))
    assert.is_nil(server:find("# Keyspace", 1, true))
    local two = cmd(d, "INFO", "clients", "upstream").v
    assert.matches("# Clients", two, 1, true)
    assert.matches("# Upstream default", two, 1, true)
    assert.is_nil(two:find("# Server", 1, true))
    -- three masters counted, with their pools
    assert.matches("\r\nmasters:3\r\n", two)
    cmd(d, "FLUSHALL")
  end)

  it("shows itself as the only node of the cluster, so cluster clients work through it", function()
    local slots = cmd(d, "CLUSTER", "SLOTS").v
    assert.equal(1, #slots)
    assert.equal(0, slots[1].v[1].v)
    assert.equal(16383, slots[1].v[2].v)
    assert.equal("127.0.0.1", slots[1].v[3].v[1].v)
    assert.equal(d.port, slots[1].v[3].v[2].v)
    assert.equal(cmd(d, "CLUSTER", "MYID").v, slots[1].v[3].v[3].v)
    assert.equal(12182, cmd(d, "CLUSTER", "KEYSLOT", "foo").v)
    assert.matches("cluster_state:ok", cmd(d, "CLUSTER", "INFO").v, 1, true)
    assert.matches("myself,master", cmd(d, "CLUSTER", "NODES").v, 1, true)
    assert.equal("master", cmd(d, "ROLE").v[1].v)
    -- redis-cli in cluster mode follows no redirection: slotgated has every slot
    assert.equal("OK\n", cli(d, "-c SET cl:x 1"))
    assert.equal("1\n", cli(d, "-c GET cl:x"))
    -- over the Unix socket there is no address to name
    local out = cli(d, "CLUSTER SLOTS", { unix = true })
    assert.matches("does not support 'CLUSTER SLOTS'", out, 1, true)
    cmd(d, "DEL", "cl:x")
  end)

  it("asks the master of the slot named for CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT", function()
    local slot = tostring(cmd(d, "CLUSTER", "KEYSLOT", "{cks}").v)
    cmd(d, "DEL", "{cks}:1", "{cks}:2", "{cks}:3")
    -- other specs' keys may share the slot
    local before = cmd(d, "CLUSTER", "COUNTKEYSINSLOT", slot).v
    for i = 1, 3 do cmd(d, "SET", "{cks}:" .. i, "v") end
    assert.equal(before + 3, cmd(d, "CLUSTER", "COUNTKEYSINSLOT", slot).v)
    local names = {}
    for _, k in ipairs(cmd(d, "CLUSTER", "GETKEYSINSLOT", slot, tostring(before + 3)).v) do
      names[k.v] = true
    end
    assert.same({ true, true, true }, { names["{cks}:1"], names["{cks}:2"], names["{cks}:3"] })
    -- the one master that has them was asked: every other one has none there
    local zero = 0
    for _, addr in ipairs(split(helper.server_var("SG_TEST_CLUSTER_MASTERS"), ",")) do
      if node_cli(addr, "CLUSTER COUNTKEYSINSLOT " .. slot) == "0\n" then zero = zero + 1 end
    end
    assert.equal(2, zero)
    -- a slot out of range: the node's own error
    local ok, err = cmd(d, "CLUSTER", "COUNTKEYSINSLOT", "16384")
    assert.is_false(ok)
    assert.matches("[Ss]lot", err)
    cmd(d, "DEL", "{cks}:1", "{cks}:2", "{cks}:3")
  end)
end)

describe("slotgated admin commands under a policy", function()
  it("lets a policy deny CONFIG and FLUSHALL", function()
    local d = start{ env = { SLOTGATE_POLICY = helper.source_dir .. "/scripts/deny_dangerous.lua",
                             SLOTGATE_THREADS = "1" } }
    finally(function() stop(d) end)
    local ok, err = cmd(d, "CONFIG", "SET", "slowlog-max-len", "7")
    assert.is_false(ok)
    assert.matches("NOPERM policy deny_dangerous refuses CONFIG", err, 1, true)
    ok, err = cmd(d, "FLUSHALL")
    assert.is_false(ok)
    assert.matches("refuses FLUSHALL", err, 1, true)
    for _, addr in ipairs(split(helper.server_var("SG_TEST_CLUSTER"), ",")) do
      assert.is_nil(node_cli(addr, "CONFIG GET slowlog-max-len"):find("\n7\n", 1, true))
    end
    -- what it does not deny still fans out
    assert.equal("int", cmd(d, "DBSIZE").t)
    assert.is_true(stop(d))
  end)
end)
