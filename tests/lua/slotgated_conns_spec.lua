-- slotgated's connection-bound commands in front of the real cluster:
-- MULTI/EXEC/WATCH on one slot, blocking pops beside other clients, and
-- SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE with the bound on a slow subscriber. Raw
-- RESP conversations go through resp_talk.py; where Redis itself defines the
-- answer, the same conversation is held with the harness's standalone Redis
-- and the replies compared.
local helper = require "helper"
local cjson = require "cjson"

local q = helper.shell_quote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. q(dir))
local talker = helper.source_dir .. "/tests/lua/resp_talk.py"

local next_port = helper.port(800)

local function start(env)
  next_port = next_port + 1
  local d = { port = next_port, log = dir .. "/sg" .. next_port .. ".log",
              pidfile = dir .. "/sg" .. next_port .. ".pid" }
  local vars = {
    TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
    TYK_GW_STORAGE_ENABLECLUSTER = "true",
    SLOTGATE_LISTEN = "127.0.0.1:" .. d.port,
    SLOTGATE_THREADS = "2",
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  local parts = { "env" }
  for k, v in pairs(vars) do parts[#parts + 1] = q(k .. "=" .. v) end
  parts[#parts + 1] = q(helper.slotgated)
  os.execute(table.concat(parts, " ") .. " >" .. q(d.log) .. " 2>&1 & echo $! >" .. q(d.pidfile))
  d.pid = tonumber(slurp(d.pidfile))
  for _ = 1, 200 do
    if sh("redis-cli -p " .. d.port .. " PING"):match("PONG") then return d end
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then break end
    os.execute("sleep 0.05")
  end
  error("slotgated did not start: " .. slurp(d.log))
end

local function stop(d)
  os.execute("kill -TERM " .. d.pid)
  for _ = 1, 300 do
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then return true end
    os.execute("sleep 0.05")
  end
  os.execute("kill -KILL " .. d.pid)
  return false
end

-- Holds a conversation (steps as resp_talk.py reads them) with port; returns
-- the events, each {c = conn, r = reply} or {timeout = true} or {eof = true}.
local talks = 0
local function talk(port, steps)
  talks = talks + 1
  local path = dir .. "/talk" .. talks .. ".json"
  local lines = {}
  for i, s in ipairs(steps) do lines[i] = cjson.encode(s) end
  write(path, table.concat(lines, "\n") .. "\n")
  local out = sh("python3 " .. q(talker) .. " " .. port .. " < " .. q(path))
  local events = {}
  for line in out:gmatch("[^\n]+") do
    local ok, e = pcall(cjson.decode, line)
    assert(ok, "resp_talk.py: " .. out)
    events[#events + 1] = e
  end
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
for p in helper.server_var("SG_TEST_CLUSTER_MASTERS"):gmatch(":(%d+)") do masters[#masters + 1] = p end

-- Server-side connections of the cluster's masters whose CLIENT LIST line
-- matches pattern.
local function node_clients(pattern)
  local n = 0
  for _, p in ipairs(masters) do
    for line in sh("redis-cli -p " .. p .. " CLIENT LIST"):gmatch("[^\n]+") do
      if line:match(pattern) then n = n + 1 end
    end
  end
  return n
end

local function wait_for(what, cond)
  for _ = 1, 200 do
    if cond() then return true end
    os.execute("sleep 0.05")
  end
  error("timed out waiting for " .. what)
end

local function cluster_cli(args)
  return sh("redis-cli -c -p " .. masters[1] .. " " .. args)
end

describe("slotgated transactions", function()
  local d
  setup(function()
    local policy = dir .. "/tx_policy.lua"
    write(policy, "return {name = 'tx', prefix = 'tx:', default_ttl = {['*ttl*'] = 100}}")
    d = start({ SLOTGATE_POLICY = policy })
  end)
  teardown(function() if d then stop(d) end end)

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
    -- its pid and the file its replies go to
    local holds = 0
    local function hold(tail)
      local steps = { { "send", "a", "WATCH", "{w4}k" }, { "read", "a", 1 } }
      for _, s in ipairs(tail) do steps[#steps + 1] = s end
      steps[#steps + 1] = { "eof", "a", 120 } -- held until killed
      holds = holds + 1
      local path = dir .. "/hold" .. holds .. ".json"
      local lines = {}
      for i, st in ipairs(steps) do lines[i] = cjson.encode(st) end
      write(path, table.concat(lines, "\n") .. "\n")
      local pid = tonumber(sh("python3 " .. q(talker) .. " " .. d.port .. " < " .. q(path) ..
                              " >" .. q(path .. ".out") .. " 2>&1 & echo $!"))
      return pid, path .. ".out"
    end
    local function replies_in(path)
      local n = 0
      for _ in slurp(path):gmatch('"r":') do n = n + 1 end
      return n
    end
    local pid, out = hold({})
    wait_for("a WATCH connection", function() return node_clients("cmd=watch") == before + 1 end)
    assert.equal(1, replies_in(out))
    os.execute("kill " .. pid)
    wait_for("its release on close", function() return node_clients("cmd=watch") == before end)
    for _, case in ipairs({ { 1, { "send", "a", "UNWATCH" }, { "read", "a", 1 } },
                            { 2, { "send", "a", "MULTI" }, { "send", "a", "DISCARD" }, { "read", "a", 2 } },
                            { 2, { "send", "a", "MULTI" }, { "send", "a", "EXEC" }, { "read", "a", 2 } } }) do
      pid, out = hold({ case[2], case[3], case[4] })
      wait_for("the replies to WATCH and " .. case[#case - 1][3],
               function() return replies_in(out) == 1 + case[1] end)
      -- the client is still connected: its WATCH connection goes all the same
      wait_for("the release after " .. case[#case - 1][3], function()
        return node_clients("cmd=watch") == before and node_clients("cmd=exec") == 0
      end)
      os.execute("kill " .. pid)
    end
  end)
end)

describe("slotgated blocking commands", function()
  local d
  setup(function() d = start({ SLOTGATE_THREADS = "1" }) end) -- every client on one worker
  teardown(function() if d then stop(d) end end)

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

  it("times a blocking pop out as Redis does", function()
    assert.same({ "(nil)" }, replies(talk(d.port, script { { "BLPOP", "{bl}none", "0.2" } })))
  end)
end)

describe("slotgated pub/sub", function()
  local d
  setup(function() d = start({ SLOTGATE_PUBSUBOUTPUTLIMIT = "262144" }) end)
  teardown(function() if d then stop(d) end end)

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
    wait_for("the shard connections to go", function() return node_clients("cmd=sunsubscribe") == 0
      and node_clients("sub=0 psub=0 ssub=1") == 0 end)
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
    assert.equal("PONG\n", sh("redis-cli -p " .. d.port .. " PING"))
  end)
end)
