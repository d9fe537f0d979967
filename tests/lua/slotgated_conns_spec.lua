-- slotgated's connection-bound commands in front of the real cluster:
-- MULTI/EXEC/WATCH on one slot, blocking pops beside other clients, and
-- SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE with the bound on a slow subscriber. Raw
-- RESP conversations on several connections go through daemon.lua's client;
-- where Redis itself defines the answer, the same conversation is held with
-- the harness's standalone Redis and the replies compared.
local helper = require "helper"
local daemon = require "daemon"
local cjson = require "cjson"

local slurp, write, wait_for = helper.slurp, helper.write, helper.wait_for
local start, cli, node_cli, cluster_cli = daemon.start, daemon.cli, daemon.node_cli, daemon.cluster_cli
local dir = daemon.dir

daemon.ports_from(801)

-- A conversation with port on named connections ("a" is opened at once),
-- held step by step; the connections stay open until :close(). Steps:
--   {"open", NAME}             connect
--   {"open", NAME, RCVBUF}     ... with a small receive buffer (a slow reader)
--   {"send", NAME, ARG, ...}   send one command
--   {"read", NAME, N}          read N replies: each an event {c = NAME, r =
--                              REPLY}; on a timeout (10 s) or a close
--                              {c = NAME, timeout = true} and the rest skipped
--   {"eof", NAME, SECS}        read until the server closes: {c = NAME, eof =
--                              true} (replies read meanwhile are events too);
--                              SECS (default 10) bounds each wait
--   {"close", NAME}
--   {"wait_file", PATH, TEXT}  wait (at most 30 s) until the file holds TEXT:
--                              {c = "file", found = true|false}
-- Replies as daemon.plain gives them: "+OK", "-ERR ...", a number, a string,
-- "(nil)", a list.
local Talk = {}
Talk.__index = Talk

local function talker(port)
  return setmetatable({ port = port, conns = { a = assert(daemon.connect(port)) } }, Talk)
end

-- Runs steps; returns their events.
function Talk:run(steps)
  local events = {}
  local function event(e) events[#events + 1] = e end
  for _, step in ipairs(steps) do
    local op, name = step[1], step[2]
    local c = self.conns[name]
    if op == "open" then
      self.conns[name] = assert(daemon.connect(self.port, { rcvbuf = step[3] }))
    elseif op == "send" then
      c:send({ unpack(step, 3) })
    elseif op == "read" then
      for _ = 1, step[3] do
        local r, why = c:read(10)
        if not r then
          event({ c = name, timeout = true, why = why })
          break
        end
        event({ c = name, r = daemon.plain(r) })
      end
    elseif op == "eof" then
      while true do
        local r, why = c:read(step[3] or 10)
        if not r then
          event(why == "closed" and { c = name, eof = true } or { c = name, timeout = true })
          break
        end
        event({ c = name, r = daemon.plain(r) })
      end
    elseif op == "close" then
      c:close()
      self.conns[name] = nil
    elseif op == "wait_file" then
      local found = wait_for(function() return slurp(name):find(step[3], 1, true) ~= nil end, 30)
      event({ c = "file", found = found })
    else
      error("no such step: " .. tostring(op))
    end
  end
  return events
end

function Talk:close()
  for _, c in pairs(self.conns) do c:close() end
end

-- Holds a whole conversation with port (steps as Talk:run takes them);
-- returns its events.
local function talk(port, steps)
  local t = talker(port)
  local ok, events = pcall(t.run, t, steps)
  t:close()
  if not ok then error(events, 0) end
  return events
end

-- Just the replies, in order ("TIMEOUT" / "EOF" for those events).
local function replies(events)
  local out = {}
  for i, e in ipairs(events) do
    out[i] = e.timeout and "TIMEOUT" or e.eof and "EOF" or e.r
  end
  return out
end

-- A script of commands on connection "a", each read at once.
local function script(cmds)
  local steps = {}
  for _, c in ipairs(cmds) do
    local s = { "send", "a" }
    for _, w in ipairs(c) do s[#s + 1] = w end
    steps[#steps + 1] = s
    steps[#steps + 1] = { "read", "a", 1 }
  end
  return steps
end

local standalone = tonumber(helper.server_var("SG_TEST_STANDALONE"):match(":(%d+)$"))
local masters = {}
for addr in helper.server_var("SG_TEST_CLUSTER_MASTERS"):gmatch("[^,]+") do
  masters[#masters + 1] = addr
end

-- Server-side connections of the cluster's masters whose CLIENT LIST line
-- matches pattern.
local function node_clients(pattern)
  local n = 0
  for _, addr in ipairs(masters) do
    for line in node_cli(addr, "CLIENT LIST"):gmatch("[^\n]+") do
      if line:match(pattern) then n = n + 1 end
    end
  end
  return n
end

describe("slotgated transactions", function()
  local d
  setup(function()
    local policy = dir .. "/tx_policy.lua"
    write(policy, "return {name = 'tx', prefix = 'tx:', default_ttl = {['*ttl*'] = 100}}")
    d = start{ env = { SLOTGATE_POLICY = policy } }
  end)
  teardown(daemon.stop_all)

  it("runs MULTI ... EXEC on the keys' slot, keys rewritten by the policies", function()
    local r = replies(talk(d.port, script {
      { "DEL", "{t1}a", "{t1}b" },
      { "MULTI" }, { "SET", "{t1}a", "1" }, { "INCR", "{t1}a" }, { "RPUSH", "{t1}b", "x", "y" },
      { "GET", "{t1}a" }, { "EXEC" },
    }))
    assert.same({ 0, "+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", { "+OK", 2, 2, "2" } },
                { r[1] >= 0 and 0 or r[1], r[2], r[3], r[4], r[5], r[6], r[7] })
    -- the prefix applies inside the transaction too
    assert.equal("2\n", cluster_cli("GET tx:{t1}a"))
  end)

  it("runs a transaction without keys on any master", function()
    assert.same({ "+OK", "+QUEUED", "+QUEUED", { "+PONG", "hi" } },
                replies(talk(d.port, script { { "MULTI" }, { "PING" }, { "ECHO", "hi" }, { "EXEC" } })))
  end)

  it("hides the EXPIRE a default TTL adds from EXEC's reply, and sets the TTL", function()
    local r = replies(talk(d.port, script {
      { "MULTI" }, { "SET", "{t2}ttl", "v" }, { "SET", "{t2}plain", "w" }, { "EXEC" },
    }))
    assert.same({ "+OK", "+QUEUED", "+QUEUED", { "+OK", "+OK" } }, r)
    local ttl = tonumber(cluster_cli("TTL tx:{t2}ttl"))
    assert.is_true(ttl > 0 and ttl <= 100)
    assert.equal("-1\n", cluster_cli("TTL tx:{t2}plain"))
  end)

  it("refuses a second slot at queue time, and then applies nothing", function()
    cluster_cli("DEL tx:{t3}a")
    local r = replies(talk(d.port, script {
      { "MULTI" }, { "SET", "{t3}a", "1" }, { "SET", "{t4}b", "2" }, { "EXEC" },
    }))
    assert.equal("+OK", r[1])
    assert.equal("+QUEUED", r[2])
    assert.matches("^%-CROSSSLOT", r[3])
    assert.equal("-EXECABORT Transaction discarded because of previous errors.", r[4])
    assert.equal("\n", cluster_cli("GET tx:{t3}a"))
    assert.matches("^%-CROSSSLOT", replies(talk(d.port, script {
      { "MULTI" }, { "MSET", "{t5}a", "1", "{t6}b", "2" } }))[2])
  end)

  it("answers MULTI's errors as Redis does", function()
    local steps = script {
      { "EXEC" }, { "DISCARD" }, { "MULTI" }, { "MULTI" }, { "WATCH", "k" }, { "NOSUCHCMD", "x" },
      { "GET" }, { "EXEC" },
      { "MULTI" }, { "SET", "k", "v" }, { "DISCARD" }, { "UNWATCH" },
    }
    assert.same(replies(talk(standalone, steps)), replies(talk(d.port, steps)))
  end)

  it("refuses in MULTI what it refuses outside, and EXEC then aborts", function()
    local r = replies(talk(d.port, script {
      { "MULTI" }, { "ACL", "WHOAMI" }, { "DEBUG", "SLEEP", "0" }, { "SET", "{t9}a", "1" },
      { "EXEC" }, { "EXISTS", "{t9}a" },
    }))
    assert.equal("+OK", r[1])
    assert.matches("^%-ERR slotgate does not support 'ACL WHOAMI'", r[2])
    assert.matches("^%-ERR slotgate does not support 'DEBUG", r[3])
    assert.equal("+QUEUED", r[4])
    assert.matches("^%-EXECABORT", r[5])
    assert.equal(0, r[6]) -- nothing ran
  end)

  it("aborts on a WATCHed key changed by another client, else applies", function()
    local events = talk(d.port, {
      { "send", "a", "SET", "{w1}k", "0" }, { "read", "a", 1 },
      { "send", "a", "WATCH", "{w1}k" }, { "read", "a", 1 },
      { "open", "b" }, { "send", "b", "SET", "{w1}k", "changed" }, { "read", "b", 1 },
      { "send", "a", "MULTI" }, { "send", "a", "SET", "{w1}k", "mine" }, { "send", "a", "EXEC" },
      { "read", "a", 3 },
      { "send", "a", "GET", "{w1}k" }, { "read", "a", 1 },
      -- untouched: applied
      { "send", "a", "WATCH", "{w1}k" }, { "send", "a", "MULTI" },
      { "send", "a", "SET", "{w1}k", "mine" }, { "send", "a", "EXEC" }, { "read", "a", 4 },
      { "send", "a", "GET", "{w1}k" }, { "read", "a", 1 },
    })
    assert.same({ "+OK", "+OK", "+OK", "+OK", "+QUEUED", "(nil)", "changed",
                  "+OK", "+OK", "+QUEUED", { "+OK" }, "mine" }, replies(events))
  end)

  it("binds a transaction to the WATCHed slot", function()
    local r = replies(talk(d.port, script {
      { "WATCH", "{w2}a" }, { "WATCH", "{w3}b" }, { "MULTI" }, { "SET", "{w3}b", "1" },
      { "EXEC" }, { "WATCH", "{w2}a", "{w3}b" },
    }))
    assert.equal("+OK", r[1])
    assert.matches("^%-CROSSSLOT", r[2])
    assert.equal("+OK", r[3])
    assert.matches("^%-CROSSSLOT.*bound to slot", r[4])
    assert.equal("-EXECABORT Transaction discarded because of previous errors.", r[5])
    assert.matches("^%-CROSSSLOT", r[6])
  end)

  it("releases the WATCH connection on UNWATCH, DISCARD, EXEC and close", function()
    local before = node_clients("cmd=watch")
    -- a client that WATCHes, then does tail, then stays connected; returns
    -- its conversation (open until closed) and the events so far
    local held = {}
    finally(function() for _, t in ipairs(held) do t:close() end end)
    local function hold(tail)
      local steps = { { "send", "a", "WATCH", "{w4}k" }, { "read", "a", 1 } }
      for _, s in ipairs(tail) do steps[#steps + 1] = s end
      local t = talker(d.port)
      held[#held + 1] = t
      return t, t:run(steps)
    end
    local function replies_in(events)
      local n = 0
      for _, e in ipairs(events) do if e.r ~= nil then n = n + 1 end end
      return n
    end
    local t, events = hold({})
    assert.is_true(wait_for(function() return node_clients("cmd=watch") == before + 1 end),
                   "timed out waiting for a WATCH connection")
    assert.equal(1, replies_in(events))
    t:close()
    assert.is_true(wait_for(function() return node_clients("cmd=watch") == before end),
                   "timed out waiting for its release on close")
    for _, case in ipairs({ { 1, { "send", "a", "UNWATCH" }, { "read", "a", 1 } },
                            { 2, { "send", "a", "MULTI" }, { "send", "a", "DISCARD" }, { "read", "a", 2 } },
                            { 2, { "send", "a", "MULTI" }, { "send", "a", "EXEC" }, { "read", "a", 2 } } }) do
      t, events = hold({ case[2], case[3], case[4] })
      assert.equal(1 + case[1], replies_in(events), "the replies to WATCH and " .. case[#case - 1][3])
      -- the client is still connected: its WATCH connection goes all the same
      assert.is_true(wait_for(function()
        return node_clients("cmd=watch") == before and node_clients("cmd=exec") == 0
      end), "timed out waiting for the release after " .. case[#case - 1][3])
      t:close()
    end
  end)
end)

describe("slotgated blocking commands", function()
  local d
  setup(function() d = start{ env = { SLOTGATE_THREADS = "1" } } end) -- every client on one worker
  teardown(daemon.stop_all)

  it("serves the worker's other clients while one blocks, and wakes it on a push", function()
    local events = talk(d.port, {
      { "send", "a", "DEL", "{bl}q" }, { "read", "a", 1 },
      { "send", "a", "BLPOP", "{bl}q", "0" },
      { "open", "b" },
      { "send", "b", "SET", "{bl}other", "1" }, { "send", "b", "GET", "{bl}other" },
      { "send", "b", "PING" }, { "read", "b", 3 },
      { "send", "b", "RPUSH", "{bl}q", "v" }, { "read", "b", 1 },
      { "read", "a", 1 },
    })
    assert.same({ 0, "+OK", "1", "+PONG", 1, { "{bl}q", "v" } },
                { events[1].r >= 0 and 0 or -1, events[2].r, events[3].r, events[4].r,
                  events[5].r, events[6].r })
    assert.equal("b", events[2].c) -- b's replies came while a was blocked
    assert.equal("a", events[6].c)
  end)

  it("answers the commands before a blocking one in a pipeline without waiting for it", function()
    -- replies are held back a loop turn while others are owed (one send
    -- for a pipeline's replies), never until a slow one behind them comes
    local c = assert(daemon.connect(d.port))
    finally(function() c:close() end)
    c:send_raw(daemon.resp({ "SET", "{bl}first", "here" }) .. daemon.resp({ "GET", "{bl}first" }) ..
               daemon.resp({ "BLPOP", "{bl}empty", "3" }))
    local t0 = os.time()
    local set, get = c:read(2), c:read(2)
    assert.equal("OK", set and set.v)
    assert.equal("here", get and get.v)
    assert.is_true(os.time() - t0 < 2)
    local blpop = c:read(5) -- and then the pop's own timeout
    assert.is_truthy(blpop)
    c:send({ "DEL", "{bl}first" })
    assert.equal(1, c:read().v)
  end)

  it("times a blocking pop out as Redis does", function()
    assert.same({ "(nil)" }, replies(talk(d.port, script { { "BLPOP", "{bl}none", "0.2" } })))
  end)
end)

describe("slotgated pub/sub", function()
  local d
  setup(function() d = start{ env = { SLOTGATE_PUBSUBOUTPUTLIMIT = "262144" } } end)
  teardown(daemon.stop_all)

  it("forwards channel and pattern messages in order", function()
    local steps = {
      { "send", "a", "SUBSCRIBE", "ch:1", "ch:2" }, { "read", "a", 2 },
      { "send", "a", "PSUBSCRIBE", "pat:*" }, { "read", "a", 1 },
      { "open", "p" },
    }
    for i = 1, 100 do steps[#steps + 1] = { "send", "p", "PUBLISH", i % 2 == 0 and "ch:2" or "ch:1", tostring(i) } end
    steps[#steps + 1] = { "send", "p", "PUBLISH", "pat:x", "last" }
    steps[#steps + 1] = { "read", "p", 101 }
    steps[#steps + 1] = { "read", "a", 101 }
    local events = talk(d.port, steps)
    local got = {}
    for _, e in ipairs(events) do if e.c == "a" then got[#got + 1] = e.r end end
    assert.same({ "subscribe", "ch:1", 1 }, got[1])
    assert.same({ "subscribe", "ch:2", 2 }, got[2])
    assert.same({ "psubscribe", "pat:*", 3 }, got[3])
    -- one publisher's messages on a channel keep their order (channels on
    -- different nodes interleave as the cluster bus brings them)
    local per = { ["ch:1"] = {}, ["ch:2"] = {} }
    local pm
    for i = 4, 104 do
      if got[i][1] == "message" then
        local l = per[got[i][2]]
        l[#l + 1] = tonumber(got[i][3])
      else
        pm = got[i]
      end
    end
    local want1, want2 = {}, {}
    for i = 1, 100 do
      if i % 2 == 0 then want2[#want2 + 1] = i else want1[#want1 + 1] = i end
    end
    assert.same(want1, per["ch:1"])
    assert.same(want2, per["ch:2"])
    assert.same({ "pmessage", "pat:*", "pat:x", "last" }, pm)
  end)

  it("refuses in subscribed mode what Redis refuses, answers PING, leaves on RESET", function()
    local steps = script {
      { "SUBSCRIBE", "m:1" }, { "GET", "k" }, { "PING" }, { "PING", "x" }, { "UNSUBSCRIBE", "none" },
      { "PUNSUBSCRIBE" }, { "RESET" }, { "GET", "{m}k" },
    }
    local want = replies(talk(standalone, steps))
    assert.same(want, replies(talk(d.port, steps)))
    assert.matches("Can't execute 'get'", want[2])
  end)

  it("subscribes to shard channels on each channel's master", function()
    -- two slots on different masters: {a} is slot 15495, {b} 3300
    local events = talk(d.port, {
      { "send", "a", "SSUBSCRIBE", "{a}x", "{a}y" }, { "read", "a", 2 },
      { "send", "a", "SSUBSCRIBE", "{b}x" }, { "read", "a", 1 },
      { "send", "a", "SSUBSCRIBE", "{a}z", "{b}z" }, { "read", "a", 1 },
      { "open", "p" },
      { "send", "p", "SPUBLISH", "{b}x", "1" }, { "read", "p", 1 }, { "read", "a", 1 },
      { "send", "p", "SPUBLISH", "{a}y", "2" }, { "read", "p", 1 }, { "read", "a", 1 },
      { "send", "a", "SUNSUBSCRIBE" }, { "read", "a", 3 },
      { "send", "a", "GET", "{a}x" }, { "read", "a", 1 },
    })
    local r = replies(events)
    assert.same({ "ssubscribe", "{a}x", 1 }, r[1])
    assert.same({ "ssubscribe", "{a}y", 2 }, r[2])
    assert.same({ "ssubscribe", "{b}x", 3 }, r[3])
    assert.matches("^%-CROSSSLOT", r[4])
    assert.same({ 1, { "smessage", "{b}x", "1" }, 1, { "smessage", "{a}y", "2" } },
                { r[5], r[6], r[7], r[8] })
    local counts = {}
    for i = 9, 11 do
      assert.equal("sunsubscribe", r[i][1])
      counts[#counts + 1] = r[i][3]
    end
    table.sort(counts)
    assert.same({ 0, 1, 2 }, counts)
    assert.equal("(nil)", r[12]) -- out of subscribed mode
    assert.is_true(wait_for(function()
      return node_clients("cmd=sunsubscribe") == 0 and node_clients("sub=0 psub=0 ssub=1") == 0
    end), "timed out waiting for the shard connections to go")
  end)

  it("closes a subscriber that does not read, and only it", function()
    local big = string.rep("x", 16384)
    local steps = {
      { "open", "slow", 4096 },
      { "send", "slow", "SUBSCRIBE", "flood" }, { "read", "slow", 1 },
      { "open", "p" }, { "open", "other" },
      { "send", "other", "SUBSCRIBE", "quiet" }, { "read", "other", 1 },
    }
    for _ = 1, 400 do steps[#steps + 1] = { "send", "p", "PUBLISH", "flood", big } end
    steps[#steps + 1] = { "read", "p", 400 }
    steps[#steps + 1] = { "send", "p", "PUBLISH", "quiet", "still here" }
    steps[#steps + 1] = { "read", "p", 1 }
    steps[#steps + 1] = { "read", "other", 1 }
    -- the flood reaches slotgated over the cluster bus, later than the
    -- publisher's replies: wait for the close to be logged before reading,
    -- or the reading itself would keep the subscriber under the bound
    steps[#steps + 1] = { "wait_file", d.log, "over the pubsub_output_limit" }
    steps[#steps + 1] = { "eof", "slow" }
    local events = talk(d.port, steps)
    local last = events[#events]
    local logged = false
    for _, e in ipairs(events) do if e.c == "file" then logged = e.found end end
    assert.is_true(logged, "no close logged: " .. slurp(d.log))
    assert.equal("slow", last.c)
    assert.is_true(last.eof, "the slow subscriber was not closed: " .. cjson.encode(last) ..
                   "\n" .. slurp(d.log))
    local other
    for _, e in ipairs(events) do if e.c == "other" and type(e.r) == "table" and e.r[1] == "message" then other = e.r end end
    assert.same({ "message", "quiet", "still here" }, other)
    assert.matches("over the pubsub_output_limit of 262144", slurp(d.log))
    assert.equal("PONG\n", cli(d, "PING"))
  end)
end)

describe("slotgated connections of their own to an upstream that needs a password", function()
  local d
  setup(function()
    -- the harness's ACL server, single mode: every connection's handshake
    -- has an AUTH (a link's used to wait behind a write batch never sent)
    d = start{ env = { TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_ACL"),
                       TYK_GW_STORAGE_ENABLECLUSTER = "false",
                       TYK_GW_STORAGE_USERNAME = helper.server_var("SG_TEST_ACL_USER"),
                       TYK_GW_STORAGE_PASSWORD = helper.server_var("SG_TEST_ACL_PASS") } }
  end)
  teardown(daemon.stop_all)

  it("runs MULTI ... EXEC and WATCH on them", function()
    assert.same({ "+OK", "+QUEUED", "+QUEUED", { "+OK", 2 } },
                replies(talk(d.port, script { { "MULTI" }, { "SET", "acl:tx", "1" },
                                              { "INCR", "acl:tx" }, { "EXEC" } })))
    assert.same({ "+OK", "+OK", "+QUEUED", { "2" } },
                replies(talk(d.port, script { { "WATCH", "acl:tx" }, { "MULTI" },
                                              { "GET", "acl:tx" }, { "EXEC" } })))
  end)

  it("subscribes on them, in RESP2 and in RESP3", function()
    for _, proto in ipairs({ "2", "3" }) do
      local events = talk(d.port, {
        { "open", "s" }, { "send", "s", "HELLO", proto }, { "read", "s", 1 },
        { "send", "s", "SUBSCRIBE", "acl:ch" }, { "read", "s", 1 },
        { "open", "p" }, { "send", "p", "PUBLISH", "acl:ch", "hi" }, { "read", "p", 1 },
        { "read", "s", 1 },
      })
      local got = {}
      for _, e in ipairs(events) do
        if e.c == "s" and type(e.r) == "table" then got[#got + 1] = e.r[1] end
      end
      assert.same({ "subscribe", "message" }, { got[#got - 1], got[#got] }, "RESP" .. proto)
    end
  end)
end)
