-- CLIENT TRACKING and writes made through slotgated (docs/CACHE.md, "Tracking
-- for clients"): the sessions that read a key, and the BCAST sessions whose
-- prefixes match, are told before the write leaves for the node, as a Redis
-- 7.0 node tells them during the write — so a client's cache cannot serve
-- its old copy once the writer has its reply. The writer's own push follows
-- its reply in the same output, as from the harness's standalone node;
-- another worker's sessions are told by the time the writer has its reply.
local helper = require "helper"
local daemon = require "daemon"
local trk = require "tracking_helper"

local call = trk.call

daemon.ports_from(661)

local scripts = helper.source_dir .. "/scripts/"
local standalone = helper.server_var("SG_TEST_STANDALONE")
local node_port = tonumber(standalone:match(":(%d+)$"))

-- What conn has received or can read at once, without waiting: a list of
-- replies, plain (daemon.plain), pushes marked { push = ... }.
local function now_readable(conn)
  local got = {}
  while true do
    local r = conn:read_now()
    if not r then return got end
    got[#got + 1] = r.t == "push" and { push = daemon.plain(r) } or daemon.plain(r)
  end
end

-- A session reads key, then sends SET key and PING at once: what comes
-- back, in order, up to PONG (pushes as { push = ... }).
local function read_then_write(conn, key)
  call(conn, "GET", key)
  conn:send_raw(daemon.resp({ "SET", key, "v" }) .. daemon.resp({ "PING" }))
  local seen = {}
  repeat
    local r = assert(conn:read(5))
    seen[#seen + 1] = r.t == "push" and { push = daemon.plain(r) } or daemon.plain(r)
  until r.v == "PONG"
  return seen
end

describe("slotgated's CLIENT TRACKING and writes through it", function()
  local d, warm

  setup(function()
    d = daemon.start{ env = { SLOTGATE_THREADS = "1" } }
    warm = trk.session(d.port)
    call(warm, "GET", "trwr:warm")
    trk.wait_trackers(warm, 3)
  end)
  teardown(function()
    if warm then warm:close() end
    daemon.stop_all()
  end)

  it("pushes the writer's own invalidation right after its reply, as a node does", function()
    local node = assert(daemon.connect(node_port))
    local c = trk.session(d.port)
    finally(function() node:close(); c:close() end)
    assert.equal("map", call(node, "HELLO", "3").t)
    assert.equal("OK", call(node, "CLIENT", "TRACKING", "ON").v)
    -- the node tells the writer during the write, in its output right
    -- after the reply, before the next command's
    local want = { "+OK", { push = { "invalidate", { "trwr:own" } } }, "+PONG" }
    assert.same(want, read_then_write(node, "trwr:own")) -- the node itself
    for i = 1, 20 do
      assert.same(want, read_then_write(c, "trwr:own"), "write " .. i)
    end
  end)

  it("tells another session of the worker before the writer has its reply", function()
    local reader = trk.session(d.port)
    local bcast = trk.session(d.port, nil, "BCAST", "PREFIX", "trwr:b")
    local writer = assert(daemon.connect_served(d.port)) -- RESP2, not tracking
    finally(function() reader:close(); bcast:close(); writer:close() end)
    for i = 1, 40 do
      local key = "trwr:b" .. i
      call(reader, "GET", key)
      assert.equal("OK", call(writer, "SET", key, "v").v)
      assert.same({ { push = { "invalidate", { key } } } }, now_readable(reader), "reader " .. i)
      -- (the node's own message may follow: a BCAST session hears of a
      -- write through slotgated twice, docs/CACHE.md)
      assert.same({ push = { "invalidate", { key } } }, now_readable(bcast)[1], "bcast " .. i)
      -- told once, and forgotten: the node's message then tells the reader
      -- nothing more
      assert.is_nil(trk.next_invalidation(reader, 0.05))
      while trk.next_invalidation(bcast, 0.05) do end
    end
  end)
end)

describe("slotgated's CLIENT TRACKING and reads inside MULTI/EXEC", function()
  local d

  setup(function()
    d = daemon.start{ env = { SLOTGATE_THREADS = "1" } }
  end)
  teardown(function() daemon.stop_all() end)

  -- A transaction that reads key (run, or discarded), then key and other
  -- changed elsewhere (change): the first invalidation the session gets.
  local function read_in_multi(conn, change)
    assert.equal("OK", call(conn, "MULTI").v)
    assert.equal("QUEUED", call(conn, "GET", "{trwr:m}d").v)
    assert.equal("OK", call(conn, "DISCARD").v)
    assert.equal("OK", call(conn, "MULTI").v)
    assert.equal("QUEUED", call(conn, "GET", "{trwr:m}k").v)
    assert.equal("QUEUED", call(conn, "STRLEN", "{trwr:m}s").v)
    assert.equal("QUEUED", call(conn, "SET", "{trwr:m}w", "v").v)
    assert.equal("array", call(conn, "EXEC").t)
    change("{trwr:m}d", "x") -- discarded: not tracked
    change("{trwr:m}w", "x") -- written only: not tracked
    local got = {}
    change("{trwr:m}k", "x")
    got[1] = trk.next_invalidation(conn, 5, true)
    change("{trwr:m}s", "x")
    got[2] = trk.next_invalidation(conn, 5, true)
    return got
  end

  it("tracks the keys of the reads EXEC runs, as a node does", function()
    local node = assert(daemon.connect(node_port))
    finally(function() node:close() end)
    assert.equal("map", call(node, "HELLO", "3").t)
    assert.equal("OK", call(node, "CLIENT", "TRACKING", "ON").v)
    local want = { { "{trwr:m}k" }, { "{trwr:m}s" } }
    assert.same(want, read_in_multi(node, function(k, v)
      assert(daemon.node_cli(standalone, "SET " .. k .. " " .. v):match("OK"))
    end)) -- the node itself
    local c = trk.session(d.port)
    finally(function() c:close() end)
    call(c, "GET", "trwr:m:warm")
    trk.wait_trackers(c, 3)
    assert.same(want, read_in_multi(c, trk.set_direct))
  end)
end)

describe("slotgated's CLIENT TRACKING BCAST NOLOOP and the writer's own writes", function()
  local d

  setup(function()
    d = daemon.start{ env = { SLOTGATE_THREADS = "1" } }
  end)
  teardown(function() daemon.stop_all() end)

  -- The writer writes keys under its prefix, then a change comes from
  -- elsewhere (change): the first invalidation it gets.
  local function own_then_other(conn, change)
    for i = 1, 5 do assert.equal("OK", call(conn, "SET", "trwr:nl" .. i, "v").v) end
    assert.equal(0, call(conn, "DEL", "trwr:nl:none").v)
    change("trwr:nl:other", "x")
    return trk.next_invalidation(conn, 5, true)
  end

  it("tells the writer of others' writes only, as a node does", function()
    local node = assert(daemon.connect(node_port))
    finally(function() node:close() end)
    assert.equal("map", call(node, "HELLO", "3").t)
    assert.equal("OK",
                 call(node, "CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP", "PREFIX", "trwr:nl").v)
    local want = { "trwr:nl:other" }
    assert.same(want, own_then_other(node, function(k, v)
      assert(daemon.node_cli(standalone, "SET " .. k .. " " .. v):match("OK"))
    end)) -- the node itself
    local c = trk.session(d.port, nil, "BCAST", "NOLOOP", "PREFIX", "trwr:nl")
    finally(function() c:close() end)
    call(c, "GET", "trwr:nl:warm")
    trk.wait_trackers(c, 3)
    for round = 1, 20 do
      assert.same(want, own_then_other(c, trk.set_direct), "round " .. round)
    end
  end)
end)

describe("slotgated's CLIENT TRACKING and writes through another worker", function()
  local d

  setup(function()
    -- a policy, for INFO policy's per-worker count (which worker serves whom)
    d = daemon.start{ env = { SLOTGATE_THREADS = "2", SLOTGATE_POLICY = scripts .. "default_ttl.lua" } }
  end)
  teardown(function() daemon.stop_all() end)

  -- reader and writer on different workers
  local function pair() return trk.pair_on_two_workers(d.port) end

  it("has the reader's push readable when the writer has its reply", function()
    local reader, writer = pair()
    finally(function() reader:close(); writer:close() end)
    assert.equal("map", call(reader, "HELLO", "3").t)
    assert.equal("OK", call(reader, "CLIENT", "TRACKING", "ON").v)
    call(reader, "GET", "trwr:x:warm")
    trk.wait_trackers(reader, 3)
    for i = 1, 100 do
      local key = "trwr:x" .. i
      call(reader, "GET", key)
      assert.equal("OK", call(writer, "SET", key, "v").v)
      assert.same({ { push = { "invalidate", { key } } } }, now_readable(reader), "write " .. i)
    end
  end)
end)

-- node-redis 5's clientSideCache (a client library not ours): set then get,
-- 200 times in a row, on one connection, from a pool, and from another
-- client, with two worker threads (tests/node/csc_checks.js).
local checks = require "client_checks"
local q = helper.shell_quote
checks.run{
  script = checks.script("cd " .. q(helper.source_dir .. "/tests/node") ..
                         " && timeout 120 node csc_checks.js",
                         "install node and run `npm ci --prefix tests/node` (.ci/run does)"),
  title = "node-redis 5 clientSideCache through slotgated", what = "node and node-redis",
  env = { SLOTGATE_THREADS = "2" },
  address = function(d) return tostring(d.port) end,
  args = q(string.format("trwr:csc:%d:%d:", os.time(), math.random(1e6))),
}
