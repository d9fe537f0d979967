-- slotgated's CLIENT family against a Redis 7.0 node's (the harness's
-- standalone server, SG_TEST_STANDALONE): CLIENT LIST's fields and the
-- sessions of every worker thread, KILL by ID, ADDR, USER and SKIPME across
-- the workers, REPLY OFF/SKIP/ON and UNBLOCK byte for byte as the node
-- answers them, the stream in order after an UNBLOCK, and the node's error
-- texts for unknown subcommands, wrong arity and bad arguments.
local helper = require "helper"
local daemon = require "daemon"

local start, call, connect = daemon.start, daemon.call, daemon.connect
local wait_for, sleep = helper.wait_for, helper.sleep

daemon.ports_from(511) -- 511..519 are this spec's

local node_port = tonumber(helper.server_var("SG_TEST_STANDALONE"):match(":(%d+)$"))

-- n connections to port, each answered a PING already. More than a few: the
-- kernel spreads them over slotgated's two workers (SO_REUSEPORT), and with
-- 12 the chance that one worker holds them all is 1 in 2048.
local function open(port, n)
  local out = {}
  for i = 1, n do
    out[i] = assert(daemon.connect_served(port))
  end
  return out
end

local function close_all(conns)
  for _, c in ipairs(conns) do c:close() end
end

-- One command on c: its reply (raises on a timeout or close).
local function ask(c, ...)
  c:send({ ... })
  local r, why = c:read()
  assert(r, "no reply to " .. table.concat({ ... }, " ") .. ": " .. tostring(why))
  return r
end

local function id_of(c) return ask(c, "CLIENT", "ID").v end

-- CLIENT LIST's lines as tables of fields by name, and the names in order.
local function parse_list(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    local f, names = {}, {}
    for k, v in line:gmatch("(%S-)=(%S*)") do
      f[k] = v
      names[#names + 1] = k
    end
    f._names = names
    lines[#lines + 1] = f
  end
  return lines
end

local function by_id(lines)
  local out = {}
  for _, f in ipairs(lines) do out[tonumber(f.id)] = f end
  return out
end

-- Whether c's connection is closed by the other end within a few seconds.
local function sees_close(c)
  local r, why = c:read(5)
  return r == nil and why == "closed"
end

-- The bytes of every reply to a pipeline sent on a new connection to port,
-- up to the reply to a final ECHO of a marker.
local function pipeline_bytes(port, cmds)
  local c = assert(connect(port))
  local out = {}
  for _, args in ipairs(cmds) do c:send(args) end
  c:send({ "ECHO", "end-of-pipeline" })
  while true do
    local bytes, r = c:read_bytes()
    assert(bytes, "the pipeline's replies stopped: " .. tostring(r))
    out[#out + 1] = bytes
    if r.t == "bulk" and r.v == "end-of-pipeline" then break end
  end
  c:close()
  return table.concat(out)
end

describe("slotgated CLIENT", function()
  local d

  setup(function()
    d = start()
  end)

  teardown(function()
    daemon.stop_all()
  end)

  it("lists the sessions of every worker with Redis 7.0's fields, in its order", function()
    local conns = open(d.port, 12)
    local ids = {}
    for i, c in ipairs(conns) do ids[i] = id_of(c) end
    -- each connection, whichever worker holds it, sees all of them
    for _, c in ipairs(conns) do
      local r = ask(c, "CLIENT", "LIST")
      assert.equal("bulk", r.t)
      local listed = by_id(parse_list(r.v))
      for _, id in ipairs(ids) do assert.truthy(listed[id], "id " .. id .. " in\n" .. r.v) end
      assert.equal("client|list", listed[id_of(c)].cmd)
    end
    -- the names, in order, are a Redis 7.0 node's
    local node = assert(connect(node_port))
    local want = parse_list(ask(node, "CLIENT", "LIST").v)[1]._names
    node:close()
    local lines = parse_list(ask(conns[1], "CLIENT", "LIST").v)
    for _, f in ipairs(lines) do assert.same(want, f._names) end
    -- oldest first, as Redis lists them
    for i = 2, #lines do assert.is_true(tonumber(lines[i - 1].id) < tonumber(lines[i].id)) end
    -- CLIENT INFO is the same line for the session itself
    local info = parse_list(ask(conns[2], "CLIENT", "INFO").v)[1]
    assert.same(want, info._names)
    assert.equal(tostring(ids[2]), info.id)
    assert.equal("127.0.0.1:" .. d.port, info.laddr)
    assert.equal("N", info.flags)
    assert.equal("client|info", info.cmd)
    assert.equal("2", info.resp)
    -- ID and TYPE filters
    local r = ask(conns[1], "CLIENT", "LIST", "ID", ids[3], ids[7], "999999999")
    local got = parse_list(r.v)
    assert.equal(2, #got)
    assert.equal(tostring(ids[3]), got[1].id)
    assert.equal(tostring(ids[7]), got[2].id)
    assert.equal("", ask(conns[1], "CLIENT", "LIST", "TYPE", "pubsub").v)
    assert.equal("", ask(conns[1], "CLIENT", "LIST", "TYPE", "master").v)
    assert.equal(#parse_list(ask(conns[1], "CLIENT", "LIST").v),
                 #parse_list(ask(conns[1], "CLIENT", "LIST", "TYPE", "normal").v))
    close_all(conns)
  end)

  it("shows honest values: flags, subscriptions, MULTI's queue, idle, the last command", function()
    local conns = open(d.port, 4)
    local watcher, sub, multi, idle = conns[1], conns[2], conns[3], conns[4]
    ask(sub, "SUBSCRIBE", "sg-cc-a", "sg-cc-b")
    sub:read() -- the second confirmation
    ask(sub, "PSUBSCRIBE", "sg-cc-p*")
    ask(multi, "MULTI")
    ask(multi, "SET", "sg-cc-k", "1")
    ask(multi, "GET", "sg-cc-k")
    ask(idle, "CLIENT", "SETNAME", "sleepy")
    ask(idle, "CLIENT", "NO-EVICT", "on")
    sleep(2.1)
    local lines = by_id(parse_list(ask(watcher, "CLIENT", "LIST").v))
    local s = lines[id_of(watcher) + 0] -- the watcher itself
    assert.equal("0", s.idle)
    s = lines[tonumber(ask(watcher, "CLIENT", "LIST", "TYPE", "pubsub").v:match("id=(%d+)"))]
    assert.equal("P", s.flags)
    assert.equal("2", s.sub)
    assert.equal("1", s.psub)
    assert.equal("psubscribe", s.cmd)
    local m
    for _, f in pairs(lines) do if f.cmd == "get" and f.multi ~= "-1" then m = f end end
    assert.truthy(m, "the session in MULTI")
    assert.equal("x", m.flags)
    assert.equal("2", m.multi)
    local i
    for _, f in pairs(lines) do if f.name == "sleepy" then i = f end end
    assert.truthy(i, "the named session")
    assert.equal("e", i.flags)
    assert.equal("client|no-evict", i.cmd)
    assert.is_true(tonumber(i.idle) >= 2, "idle " .. i.idle)
    assert.is_true(tonumber(i.age) >= 2, "age " .. i.age)
    ask(multi, "DISCARD")
    close_all(conns)
  end)

  it("kills by ID, ADDR and SKIPME across the workers; the killed see the close", function()
    local conns = open(d.port, 12)
    local killer = table.remove(conns, 1)
    -- by ID, one at a time: some of them live on the other worker
    for i = 1, 6 do
      assert.same({ t = "int", v = 1 }, ask(killer, "CLIENT", "KILL", "ID", id_of(conns[i])))
      assert.is_true(sees_close(conns[i]), "connection " .. i .. " closed")
    end
    -- by ADDR, the new form and the old one
    local addr = parse_list(ask(conns[7], "CLIENT", "INFO").v)[1].addr
    assert.same({ t = "int", v = 1 }, ask(killer, "CLIENT", "KILL", "ADDR", addr))
    assert.is_true(sees_close(conns[7]))
    addr = parse_list(ask(conns[8], "CLIENT", "INFO").v)[1].addr
    assert.same({ t = "status", v = "OK" }, ask(killer, "CLIENT", "KILL", addr))
    assert.is_true(sees_close(conns[8]))
    assert.same({ t = "error", v = "ERR No such client" }, ask(killer, "CLIENT", "KILL", addr))
    -- LADDR and USER default: every other session of this daemon (SKIPME
    -- yes by default), the killer stays
    assert.is_true(ask(killer, "CLIENT", "KILL", "LADDR", "127.0.0.1:" .. d.port).v >= 3)
    for i = 9, 11 do assert.is_true(sees_close(conns[i])) end
    assert.equal("PONG", ask(killer, "PING").v)
    local others = open(d.port, 4)
    assert.is_true(ask(killer, "CLIENT", "KILL", "USER", "default").v >= 4)
    for _, c in ipairs(others) do assert.is_true(sees_close(c)) end
    -- SKIPME no: the killer too, after its reply
    local before = ask(killer, "CLIENT", "KILL", "ID", id_of(killer), "SKIPME", "yes")
    assert.same({ t = "int", v = 0 }, before)
    assert.same({ t = "int", v = 1 }, ask(killer, "CLIENT", "KILL", "ID", id_of(killer),
                                         "SKIPME", "no"))
    assert.is_true(sees_close(killer))
    assert.equal("PONG", call(d.port, { "PING" }).v)
  end)

  it("answers REPLY OFF, SKIP and ON byte for byte as the node", function()
    local cmds = {
      { "CLIENT", "REPLY", "OFF" }, { "PING" }, { "ECHO", "hidden" }, { "GET", "sg-cc-none" },
      { "CLIENT", "REPLY", "SKIP" }, { "CLIENT", "REPLY", "ON" }, { "PING" },
      { "CLIENT", "REPLY", "SKIP" }, { "PING" }, { "ECHO", "shown" },
      { "CLIENT", "REPLY", "SKIP" }, { "NOSUCHCOMMAND", "x" }, { "ECHO", "after-skip" },
      { "CLIENT", "REPLY", "SKIP" }, { "CLIENT", "REPLY", "SKIP" }, { "PING" }, { "ECHO", "a" },
      { "CLIENT", "REPLY", "OFF" }, { "CLIENT", "REPLY", "SKIP" }, { "CLIENT", "REPLY", "ON" },
      { "CLIENT", "REPLY", "maybe" }, { "GET", "sg-cc-none" },
    }
    local want = pipeline_bytes(node_port, cmds)
    assert.equal(want, pipeline_bytes(d.port, cmds))
    assert.matches("^%+OK\r\n%+PONG\r\n%$5\r\nshown\r\n", want)
  end)

  it("unblocks a BLPOP as the node does (TIMEOUT and ERROR), and the stream stays in order",
     function()
    local function unblock_bytes(port, key, how)
      local b = assert(daemon.connect_served(port))
      local u = assert(daemon.connect_served(port))
      local id = id_of(b)
      b:send({ "BLPOP", key, "0" })
      assert.truthy(wait_for(function()
        local l = parse_list(ask(u, "CLIENT", "LIST", "ID", id).v)[1]
        return l and l.flags == "b"
      end, 10), "the BLPOP blocks")
      local args = { "CLIENT", "UNBLOCK", id }
      if how then args[#args + 1] = how end
      local n = ask(u, unpack(args))
      local bytes = assert(b:read_bytes())
      return b, u, n, bytes
    end
    for round, how in ipairs({ false, "TIMEOUT", "ERROR", "ERROR", "TIMEOUT" }) do
      local key = "sg-cc-list-" .. round
      local nb, nu, nn, nbytes = unblock_bytes(node_port, key, how or nil)
      local b, u, n, bytes = unblock_bytes(d.port, key, how or nil)
      assert.same(nn, n)
      assert.same({ t = "int", v = 1 }, n)
      assert.equal(nbytes, bytes)
      -- no longer blocked: a second UNBLOCK finds nothing
      assert.same({ t = "int", v = 0 }, ask(u, "CLIENT", "UNBLOCK", id_of(b)))
      -- the next command gets its own reply; a value pushed later is not the
      -- old BLPOP's to deliver
      assert.equal("PONG", ask(b, "PING").v)
      assert.same({ t = "int", v = 1 }, ask(u, "RPUSH", key, "late"))
      -- and it stays in the list: the BLPOP ended on the node too, nothing took
      -- it to drop it (the node serves a blocked client before RPUSH answers)
      assert.same({ t = "int", v = 1 }, ask(u, "LLEN", key))
      assert.equal("mine", ask(b, "ECHO", "mine").v)
      assert.same({ nil, "timeout" }, { b:read(0.5) })
      ask(u, "DEL", key)
      nb:close()
      nu:close()
      b:close()
      u:close()
    end
  end)

  it("gives the node's error texts for unknown subcommands, wrong arity and bad arguments",
     function()
    local cases = {
      { "CLIENT" }, { "CLIENT", "FOO" }, { "CLIENT", "no-touch", "on" },
      { "CLIENT", "SETINFO", "LIB-NAME", "redis-py" }, { "CLIENT", "KILL" },
      { "CLIENT", "LIST", "ID", "x" }, { "CLIENT", "LIST", "ID", "1", "x" },
      { "CLIENT", "LIST", "TYPE", "foo" }, { "CLIENT", "LIST", "foo" }, { "CLIENT", "LIST", "ID" },
      { "CLIENT", "KILL", "1.2.3.4:5" }, { "CLIENT", "KILL", "ID", "x" },
      { "CLIENT", "KILL", "ID" }, { "CLIENT", "KILL", "foo", "bar" },
      { "CLIENT", "KILL", "TYPE", "foo" }, { "CLIENT", "KILL", "SKIPME", "maybe" },
      { "CLIENT", "KILL", "ID", "1", "SKIPME" }, { "CLIENT", "KILL", "USER", "nobody" },
      { "CLIENT", "KILL", "MAXAGE", "5" }, { "CLIENT", "REPLY" }, { "CLIENT", "REPLY", "ON", "x" },
      { "CLIENT", "UNBLOCK" }, { "CLIENT", "UNBLOCK", "x" },
      { "CLIENT", "UNBLOCK", "99999", "foo" },
      { "CLIENT", "UNBLOCK", "1", "2", "3" }, { "CLIENT", "NO-EVICT" },
      { "CLIENT", "NO-EVICT", "maybe" }, { "CLIENT", "CACHING", "yes" },
      { "CLIENT", "TRACKING" }, { "CLIENT", "TRACKING", "maybe" },
      { "CLIENT", "TRACKING", "off", "foo" }, { "CLIENT", "GETREDIR", "x" },
      { "CLIENT", "INFO", "x" }, { "CLIENT", "ID", "x" }, { "CLIENT", "SETNAME" },
      { "CLIENT", "SETNAME", "a b" }, { "CLIENT", "PAUSE" }, { "CLIENT", "HELP", "x" },
      -- and answers that are not errors
      { "CLIENT", "GETREDIR" }, { "CLIENT", "TRACKINGINFO" }, { "CLIENT", "TRACKING", "off" },
      { "CLIENT", "KILL", "ID", "99999" }, { "CLIENT", "KILL", "ADDR", "1.2.3.4:5" },
      { "CLIENT", "UNBLOCK", "99999" }, { "CLIENT", "UNBLOCK", "99999", "error" },
      { "CLIENT", "NO-EVICT", "on" }, { "CLIENT", "NO-EVICT", "off" }, { "CLIENT", "UNPAUSE" },
      { "CLIENT", "GETNAME" },
    }
    for _, args in ipairs(cases) do
      local want = assert(call(node_port, args))
      local got = assert(call(d.port, args))
      assert.same(want, got, table.concat(args, " "))
    end
  end)

  it("never queues CLIENT in MULTI: the transaction's node would run it on its own clients",
     function()
    local c = assert(daemon.connect_served(d.port))
    for _, args in ipairs({ { "CLIENT", "LIST" }, { "CLIENT", "KILL", "ID", "5" },
                            { "CLIENT", "UNBLOCK", "5" }, { "CLIENT", "ID" } }) do
      assert.same({ t = "status", v = "OK" }, ask(c, "MULTI"))
      local r = ask(c, unpack(args))
      assert.equal("error", r.t)
      assert.matches("cannot be queued in a transaction (slotgate answers it itself)", r.v, 1,
                     true)
      assert.matches("^EXECABORT", ask(c, "EXEC").v)
    end
    c:close()
  end)

  it("refuses PAUSE by name, takes TRACKING ON, and answers HELP", function()
    local r = call(d.port, { "CLIENT", "PAUSE", "100" })
    assert.equal("error", r.t)
    assert.matches("^ERR slotgate does not support 'CLIENT PAUSE'", r.v)
    r = call(d.port, { "CLIENT", "TRACKING", "on" }) -- slotgated_tracking_spec.lua has the rest
    assert.equal("OK", r.v)
    r = call(d.port, { "CLIENT", "HELP" })
    assert.equal("array", r.t)
    assert.equal("CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", r.v[1].v)
    local text = {}
    for i, e in ipairs(r.v) do
      assert.equal("status", e.t)
      text[i] = e.v
    end
    text = table.concat(text, "\n")
    for _, sub in ipairs({ "KILL", "LIST", "REPLY", "UNBLOCK", "NO-EVICT", "TRACKINGINFO",
                                 "TRACKING (ON|OFF)" }) do
      assert.matches("\n" .. sub, text, 1, true)
    end
  end)
end)

describe("slotgated CLIENT KILL USER", function()
  local d

  setup(function()
    d = start{ env = { SLOTGATE_USERS = "alice:alice-pw-1,bob:bob-pw-2" } }
  end)

  teardown(function()
    daemon.stop_all()
  end)

  it("kills the sessions of one user on every worker, and knows its users", function()
    local function login(user, pass, n)
      local out = {}
      for i = 1, n do
        out[i] = assert(connect(d.port))
        assert.same({ t = "status", v = "OK" }, ask(out[i], "AUTH", user, pass))
      end
      return out
    end
    local alices, bobs = login("alice", "alice-pw-1", 8), login("bob", "bob-pw-2", 4)
    assert.equal("alice", parse_list(ask(alices[1], "CLIENT", "INFO").v)[1].user)
    assert.same({ t = "error", v = "ERR No such user 'carol'" },
                ask(bobs[1], "CLIENT", "KILL", "USER", "carol"))
    assert.same({ t = "int", v = 8 }, ask(bobs[1], "CLIENT", "KILL", "USER", "alice"))
    for _, c in ipairs(alices) do assert.is_true(sees_close(c)) end
    for _, c in ipairs(bobs) do assert.equal("PONG", ask(c, "PING").v) end
    close_all(bobs)
  end)
end)
