-- slotgated_differential_spec.lua — slotgated in front of the 3+3 cluster
-- against the reference a client would otherwise talk to: a Redis 7.0
-- cluster of one node owning every slot (the harness's one-node). The same
-- command scripts go to both, each on a connection of its own, and every
-- reply must be the same bytes.
--
-- Where they cannot be, the difference is listed in DIFFERENCES below with
-- why, and what the gateway's reply must be instead: that is checked too, so
-- a documented difference is still a test. Any other difference fails, all
-- of them listed at once. docs/DIFFERENCES.md lists them for users.
--
-- Keys: a prefix of this run's own; the multi-key commands use one hash tag
-- (on one node of the cluster too, as a cluster-aware client must). Nothing
-- here flushes a database: other specs share the cluster.
local helper = require "helper"
local daemon = require "daemon"

daemon.ports_from(461)

local RUN = string.format("diff:%d:%d:", os.time(), math.random(1e6))
local function K(name) return RUN .. name end                 -- a key, any slot
local function T(name) return "{" .. RUN .. "}" .. name end   -- a key in the run's slot

-- What the gateway does differently, on purpose: step name -> {why, gateway
-- reply (a Lua pattern over its bytes), may_agree: the two may also agree}.
-- Each entry says why it cannot be otherwise.
local DIFFERENCES = {
  ["multi-key across slots: MGET"] = {
    why = "a cluster node refuses keys of several slots (CROSSSLOT); slotgated splits the "
      .. "command by slot and merges the replies, which is what it is for",
    gateway = "^%*3\r\n",
  },
  ["multi-key across slots: DEL"] = {
    why = "as MGET: split by slot, the counts summed",
    gateway = "^:0\r\n$",
  },
  ["PUBLISH"] = {
    why = "in a Redis Cluster PUBLISH counts the subscribers of the node it reached, and "
      .. "slotgated's subscriber and the PUBLISH may reach different masters (the message "
      .. "is broadcast to every node all the same)",
    gateway = "^:[01]\r\n$",
    may_agree = true, -- when both reached the same master
  },
}

-- Each step: a name (for messages), the command (a list, or a string sent as
-- it is: inline commands, protocol edge cases), and optional `sorted`: the
-- reply is an array whose order Redis does not define (elements compared
-- sorted).
local function step(name, cmd, opts)
  local s = { name = name, cmd = cmd }
  for k, v in pairs(opts or {}) do s[k] = v end
  return s
end

local BIG = string.rep("0123456789abcdef", 8192) -- 128 KiB
local BIN = "a\0b\r\nc\255"

local FAMILIES = {
  { "strings", {
    step("SET", { "SET", K"s", "v" }),
    step("GET", { "GET", K"s" }),
    step("GET missing", { "GET", K"missing" }),
    step("APPEND", { "APPEND", K"s", "w" }),
    step("STRLEN", { "STRLEN", K"s" }),
    step("GETRANGE", { "GETRANGE", K"s", "0", "0" }),
    step("SETRANGE", { "SETRANGE", K"s", "3", "xyz" }),
    step("GET after SETRANGE", { "GET", K"s" }),
    step("INCR", { "INCR", K"n" }),
    step("INCRBY", { "INCRBY", K"n", "41" }),
    step("INCRBYFLOAT", { "INCRBYFLOAT", K"n", "0.5" }),
    step("DECR on a float", { "DECR", K"n" }),
    step("SET NX exists", { "SET", K"s", "x", "NX" }),
    step("SET XX GET", { "SET", K"s", "y", "XX", "GET" }),
    step("GETDEL", { "GETDEL", K"s" }),
    step("SET binary", { "SET", K"bin", BIN }),
    step("GET binary", { "GET", K"bin" }),
    step("SET 128 KiB", { "SET", K"big", BIG }),
    step("GET 128 KiB", { "GET", K"big" }),
    step("SET empty", { "SET", K"empty", "" }),
    step("GET empty", { "GET", K"empty" }),
    step("MSET one slot", { "MSET", T"a", "1", T"b", "2" }),
    step("MGET one slot", { "MGET", T"a", T"b", T"none" }),
    step("MSETNX one slot", { "MSETNX", T"a", "1", T"c", "3" }),
    step("LCS", { "LCS", T"a", T"b" }),
    step("SETEX bad time", { "SETEX", K"t", "-1", "v" }),
    step("SET syntax error", { "SET", K"t", "v", "EX" }),
  } },
  { "keyspace", {
    step("EXISTS", { "EXISTS", T"a", T"b", T"none" }),
    step("TYPE", { "TYPE", T"a" }),
    step("TYPE none", { "TYPE", T"none" }),
    step("EXPIRE", { "EXPIRE", T"a", "1000" }),
    step("TTL", { "TTL", T"a" }),
    step("PERSIST", { "PERSIST", T"a" }),
    step("TTL none", { "TTL", T"none" }),
    step("RENAME", { "RENAME", T"a", T"a2" }),
    step("RENAME missing", { "RENAME", T"none", T"x" }),
    step("COPY", { "COPY", T"a2", T"a3" }),
    step("OBJECT ENCODING", { "OBJECT", "ENCODING", T"a2" }),
    step("DUMP then RESTORE", { "RESTORE", T"r", "0", "\0\1x\n\0\0\0\0\0\0\0" }),
    step("DEL one slot", { "DEL", T"a2", T"a3", T"b", T"c" }),
    step("UNLINK", { "UNLINK", T"none" }),
    step("TOUCH", { "TOUCH", T"none" }),
  } },
  { "lists", {
    step("RPUSH", { "RPUSH", K"l", "a", "b", "c", "d" }),
    step("LRANGE", { "LRANGE", K"l", "0", "-1" }),
    step("LPOP count", { "LPOP", K"l", "2" }),
    step("LPOS", { "LPOS", K"l", "d" }),
    step("LINSERT", { "LINSERT", K"l", "BEFORE", "d", "x" }),
    step("LINDEX", { "LINDEX", K"l", "1" }),
    step("LSET out of range", { "LSET", K"l", "99", "v" }),
    step("LMOVE", { "LMOVE", T"l1", T"l2", "LEFT", "RIGHT" }),
    step("BLPOP times out", { "BLPOP", T"nolist", "0.01" }),
    step("RPUSH for BLPOP", { "RPUSH", T"bl", "v" }),
    step("BLPOP", { "BLPOP", T"bl", "1" }),
    step("LPOP missing count", { "LPOP", K"nolist", "2" }),
  } },
  { "hashes", {
    step("HSET", { "HSET", K"h", "f", "v", "g", "w" }),
    step("HGET", { "HGET", K"h", "f" }),
    step("HGETALL", { "HGETALL", K"h" }),
    step("HMGET", { "HMGET", K"h", "f", "none" }),
    step("HINCRBYFLOAT", { "HINCRBYFLOAT", K"h", "n", "1.25" }),
    step("HRANDFIELD count 0", { "HRANDFIELD", K"h", "0" }),
    step("HKEYS", { "HKEYS", K"h" }),
    step("HSTRLEN", { "HSTRLEN", K"h", "f" }),
    step("HDEL", { "HDEL", K"h", "f", "none" }),
  } },
  { "sets and sorted sets", {
    step("SADD", { "SADD", T"s1", "a", "b", "c" }),
    step("SADD other", { "SADD", T"s2", "b", "c", "d" }),
    step("SINTER", { "SINTER", T"s1", T"s2" }, { sorted = true }),
    step("SUNIONSTORE", { "SUNIONSTORE", T"s3", T"s1", T"s2" }),
    step("SISMEMBER", { "SISMEMBER", T"s1", "a" }),
    step("SMISMEMBER", { "SMISMEMBER", T"s1", "a", "z" }),
    step("SINTERCARD", { "SINTERCARD", "2", T"s1", T"s2" }),
    step("ZADD", { "ZADD", K"z", "1", "a", "2.5", "b", "-inf", "c" }),
    step("ZRANGE WITHSCORES", { "ZRANGE", K"z", "0", "-1", "WITHSCORES" }),
    step("ZSCORE", { "ZSCORE", K"z", "b" }),
    step("ZMSCORE", { "ZMSCORE", K"z", "a", "none" }),
    step("ZINCRBY", { "ZINCRBY", K"z", "0.5", "a" }),
    step("ZRANK", { "ZRANK", K"z", "b" }),
    step("ZPOPMIN", { "ZPOPMIN", K"z" }),
    step("ZADD bad score", { "ZADD", K"z", "nan", "x" }),
  } },
  { "streams, bitmaps, HyperLogLog, geo", {
    step("XADD", { "XADD", K"x", "1-1", "f", "v" }),
    step("XADD older id", { "XADD", K"x", "1-0", "f", "v" }),
    step("XRANGE", { "XRANGE", K"x", "-", "+" }),
    step("XLEN", { "XLEN", K"x" }),
    step("XGROUP CREATE", { "XGROUP", "CREATE", K"x", "g", "0" }),
    step("XREADGROUP", { "XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", K"x", ">" }),
    step("XPENDING", { "XPENDING", K"x", "g" }),
    step("SETBIT", { "SETBIT", K"bits", "7", "1" }),
    step("BITCOUNT", { "BITCOUNT", K"bits" }),
    step("BITPOS", { "BITPOS", K"bits", "1" }),
    step("BITFIELD", { "BITFIELD", K"bits", "GET", "u8", "0" }),
    step("PFADD", { "PFADD", K"hll", "a", "b", "c" }),
    step("PFCOUNT", { "PFCOUNT", K"hll" }),
    step("GEOADD", { "GEOADD", K"geo", "13.361389", "38.115556", "Palermo" }),
    step("GEOPOS", { "GEOPOS", K"geo", "Palermo", "none" }),
    step("GEODIST missing", { "GEODIST", K"geo", "Palermo", "none" }),
  } },
  { "scripting and functions", {
    step("EVAL", { "EVAL", "return {1, 'two', {3}, redis.status_reply('OK')}", "0" }),
    step("EVAL with a key", { "EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", "1", K"e", "v" }),
    step("EVAL error", { "EVAL", "return redis.error_reply('MY fail')", "0" }),
    step("EVAL runtime error", { "EVAL", "return nil + 1", "0" }),
    step("SCRIPT LOAD", { "SCRIPT", "LOAD", "return 42" }),
    step("EVALSHA", { "EVALSHA", "1fa00e76656cc152ad327c13fe365858fd7be306", "0" }),
    step("EVALSHA unknown", { "EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0" }),
    step("SCRIPT EXISTS", { "SCRIPT", "EXISTS", "1fa00e76656cc152ad327c13fe365858fd7be306",
                            "ffffffffffffffffffffffffffffffffffffffff" }),
    step("FUNCTION LOAD", { "FUNCTION", "LOAD", "REPLACE",
                            "#!lua name=sgdiff\nredis.register_function('sgdiff_f', "
                              .. "function(keys, args) return #keys end)" }),
    step("FCALL", { "FCALL", "sgdiff_f", "1", K"f" }),
    step("FCALL unknown", { "FCALL", "sgdiff_none", "0" }),
    step("FUNCTION DELETE", { "FUNCTION", "DELETE", "sgdiff" }),
  } },
  { "transactions", {
    step("MULTI", { "MULTI" }),
    step("queued SET", { "SET", T"tx", "1" }),
    step("queued INCR", { "INCR", T"tx" }),
    step("queued LPUSH on a string", { "LPUSH", T"tx", "x" }),
    step("EXEC", { "EXEC" }),
    step("EXEC without MULTI", { "EXEC" }),
    step("DISCARD without MULTI", { "DISCARD" }),
    step("MULTI again", { "MULTI" }),
    step("queued wrong arity", { "GET" }),
    step("EXEC after an error", { "EXEC" }),
    step("WATCH", { "WATCH", T"tx" }),
    step("MULTI watched", { "MULTI" }),
    step("queued GET", { "GET", T"tx" }),
    step("EXEC watched", { "EXEC" }),
    step("MULTI for commands it refuses", { "MULTI" }),
    step("SAVE in MULTI", { "SAVE" }),
    step("SHUTDOWN in MULTI", { "SHUTDOWN", "NOSAVE" }),
    step("queued SET after them", { "SET", T"tx", "2" }),
    step("EXEC after a refused command", { "EXEC" }),
    step("GET: nothing ran", { "GET", T"tx" }),
    step("MULTI nested", { "MULTI" }),
    step("MULTI inside", { "MULTI" }),
    step("DISCARD", { "DISCARD" }),
  } },
  { "errors and the protocol", {
    step("unknown command", { "NOSUCHCOMMAND", "a", "b" }),
    step("wrong arity", { "GET" }),
    step("wrong arity, subcommand", { "OBJECT", "ENCODING" }),
    step("unknown subcommand", { "OBJECT", "NOSUCH", "x" }),
    step("WRONGTYPE", { "LPUSH", K"n", "x" }),
    step("not an integer", { "INCRBY", K"n2", "x" }),
    step("inline PING", "PING\r\n"),
    step("inline ECHO with quotes", "ECHO \"a b\\x41\"\r\n"),
    step("inline SET and GET", "SET " .. K"inl" .. " 'x y'\r\n"),
    step("inline GET", "GET " .. K"inl" .. "\r\n"),
    step("empty argument", { "ECHO", "" }),
    step("PING with a message", { "PING", "hi" }),
  } },
}

-- The elements of an array reply, sorted, as bytes (for `sorted` steps).
local function sorted_bytes(r)
  if r.t ~= "array" and r.t ~= "set" then return nil end
  local items = {}
  for i, e in ipairs(r.v) do items[i] = tostring(e.t) .. ":" .. tostring(e.v) end
  table.sort(items)
  return table.concat(items, "\n")
end

local function show(bytes)
  bytes = bytes or "(none)"
  if #bytes > 120 then bytes = bytes:sub(1, 120) .. "..." end
  return (bytes:gsub("[%z\1-\31\127-\255]", function(c) return string.format("\\x%02x", c:byte()) end))
end

-- Sends each step to both connections and collects what differs.
local function run_family(ref, gw, steps, problems)
  for _, s in ipairs(steps) do
    local out = type(s.cmd) == "table" and daemon.resp(s.cmd) or s.cmd
    ref:send_raw(out)
    gw:send_raw(out)
    local rb, rr = ref:read_bytes()
    local gb, gr = gw:read_bytes()
    local same = rb ~= nil and rb == gb
    if not same and s.sorted and rr and gr then same = sorted_bytes(rr) == sorted_bytes(gr) end
    local doc = DIFFERENCES[s.name]
    if doc then
      if same and not doc.may_agree then
        problems[#problems + 1] = s.name .. ": listed as a difference, but the replies agree"
      elseif not same and not (gb and gb:match(doc.gateway)) then
        problems[#problems + 1] = string.format("%s: the gateway's reply %s is not the documented %s",
          s.name, show(gb), doc.gateway)
      end
    elseif not same then
      problems[#problems + 1] = string.format("%s: node %s, slotgated %s", s.name, show(rb), show(gb))
    end
  end
end

-- A connection to port in protocol proto: HELLO 3 first for RESP3 (its
-- reply, a map naming the server, is the one thing that must differ).
local function open(port, proto, served)
  local c = served and assert(daemon.connect_served(port)) or assert(daemon.connect(port))
  if proto == 3 then
    c:send({ "HELLO", "3" })
    local r = assert(c:read())
    assert(r.t == "map", "HELLO 3 on port " .. port .. " gave " .. tostring(r.t))
  end
  return c
end

for _, proto in ipairs({ 2, 3 }) do
describe("slotgated against a one-node Redis cluster, RESP" .. proto, function()
  local d, ref_port

  setup(function()
    d = daemon.start()
    local addr = helper.server_var("SG_TEST_ONE_NODE")
    ref_port = tonumber(addr:match(":(%d+)$"))
  end)
  teardown(daemon.stop_all)

  for _, fam in ipairs(FAMILIES) do
    it("gives the same replies, byte for byte: " .. fam[1], function()
      local ref, gw = open(ref_port, proto), open(d.port, proto, true)
      local problems = {}
      run_family(ref, gw, fam[2], problems)
      ref:close()
      gw:close()
      assert(#problems == 0, #problems .. " difference(s):\n  " .. table.concat(problems, "\n  "))
    end)
  end

  it("differs only where documented: commands across slots", function()
    local ref, gw = open(ref_port, proto), open(d.port, proto, true)
    local problems = {}
    run_family(ref, gw, {
      step("multi-key across slots: MGET", { "MGET", K"x1", K"x2", K"x3" }),
      step("multi-key across slots: DEL", { "DEL", K"x1", K"x2", K"x3" }),
    }, problems)
    ref:close()
    gw:close()
    assert(#problems == 0, table.concat(problems, "\n  "))
  end)

  it("answers pub/sub as a node does", function()
    local problems = {}
    local rs, gs = open(ref_port, proto), open(d.port, proto, true)
    run_family(rs, gs, {
      step("SUBSCRIBE", { "SUBSCRIBE", K"ch", K"ch2" }),
      step("second confirmation", "" ),
    }, problems)
    local rp, gp = open(ref_port, proto), open(d.port, proto, true)
    -- PUBLISH's count: documented below (DIFFERENCES); the message must come
    run_family(rp, gp, { step("PUBLISH", { "PUBLISH", K"ch", "hello" }) }, problems)
    local rb = rs:read_bytes()
    local gb = gs:read_bytes()
    if rb ~= gb then problems[#problems + 1] = "message: node " .. show(rb) .. ", slotgated " .. show(gb) end
    local more = {
      step("PING while subscribed", { "PING" }),
      step("UNSUBSCRIBE", { "UNSUBSCRIBE", K"ch" }),
    }
    if proto == 3 then
      -- RESP3 lets a subscribed client send any command
      table.insert(more, 2, step("GET while subscribed (RESP3)", { "GET", K"s" }))
      table.insert(more, 3, step("SET while subscribed (RESP3)", { "SET", K"sub", "v" }))
    else
      table.insert(more, 2, step("GET while subscribed", { "GET", K"s" }))
    end
    run_family(rs, gs, more, problems)
    for _, c in ipairs({ rs, gs, rp, gp }) do c:close() end
    assert(#problems == 0, #problems .. " difference(s):\n  " .. table.concat(problems, "\n  "))
  end)
end)
end
