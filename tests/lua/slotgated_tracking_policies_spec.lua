-- CLIENT TRACKING where slotgated is not one node (docs/CACHE.md, "Tracking
-- for clients"): under policies that rename keys (tenant_prefix: a prefix;
-- tyk_hash_keys: a hash) a session is told of a key by the name it read it
-- as, and BCAST maps the nodes' names back where the rename can be undone
-- and is refused where it cannot; reads a policy routes to another upstream
-- are told of too; a REDIRECT target may be served by another worker thread,
-- and when it goes the reader gets tracking-redir-broken as from a Redis 7.0
-- node (compared with the harness's standalone node).
local helper = require "helper"
local daemon = require "daemon"
local trk = require "tracking_helper"

local call, set_direct, next_invalidation = trk.call, trk.set_direct, trk.next_invalidation
local wait_for = helper.wait_for

daemon.ports_from(621)

local scripts = helper.source_dir .. "/scripts/"
local standalone = helper.server_var("SG_TEST_STANDALONE")
local alice = { "alice", "alice-pw-1" }

-- A write straight on the standalone node (db 0).
local function set_standalone(key, value)
  local out = daemon.node_cli(standalone, "SET " .. key .. " " .. value)
  assert(out:match("OK"), out)
end

describe("slotgated's CLIENT TRACKING under a key prefix policy (tenant_prefix)", function()
  local d, warm

  setup(function()
    d = daemon.start{ env = { SLOTGATE_THREADS = "1", SLOTGATE_POLICY = scripts .. "tenant_prefix.lua",
                              SLOTGATE_USERS = alice[1] .. ":" .. alice[2] } }
    warm = trk.session(d.port, alice)
    call(warm, "GET", "trp:warm")
    trk.wait_trackers(warm, 3)
  end)
  teardown(function()
    if warm then warm:close() end
    daemon.stop_all()
  end)

  it("tells a session of a key it read by the name it read it as", function()
    local c = trk.session(d.port, alice)
    finally(function() c:close() end)
    call(c, "GET", "trp:k1")
    set_direct("tenant:alice:trp:k1", "x") -- the node's name for it
    assert.same({ "trp:k1" }, next_invalidation(c, 5, true))
  end)

  it("maps BCAST's keys back to the session's names, and its prefixes match those", function()
    local c = trk.session(d.port, alice, "BCAST", "PREFIX", "trpb:")
    finally(function() c:close() end)
    set_direct("tenant:bob:trpb:1", "x") -- another tenant's: not alice's key
    set_direct("trpb:2", "x")             -- outside every tenant
    set_direct("tenant:alice:trpc:3", "x") -- alice's, not under the prefix
    set_direct("tenant:alice:trpb:4", "x")
    assert.same({ "trpb:4" }, next_invalidation(c, 5, true))
    assert.is_nil(next_invalidation(c, 0.2))
  end)
end)

describe("slotgated's CLIENT TRACKING under a hashing policy (tyk_hash_keys)", function()
  local d, warm

  setup(function()
    d = daemon.start{ env = { SLOTGATE_THREADS = "1", SLOTGATE_POLICY = scripts .. "tyk_hash_keys.lua" } }
    warm = trk.session(d.port)
    call(warm, "GET", "trh:warm")
    trk.wait_trackers(warm, 3)
  end)
  teardown(function()
    if warm then warm:close() end
    daemon.stop_all()
  end)

  it("tells a session of a hashed key by the token it read", function()
    local c = trk.session(d.port)
    local w = assert(daemon.connect_served(d.port))
    finally(function() c:close(); w:close() end)
    call(c, "GET", "apikey-trh-token-1")
    -- another client's write: the node names the hash, not the token
    assert.equal("OK", call(w, "SET", "apikey-trh-token-1", "v").v)
    assert.same({ "apikey-trh-token-1" }, next_invalidation(c, 5, true))
    local node_keys = daemon.cluster_cli("KEYS apikey-*")
    assert.is_nil(node_keys:find("trh-token-1", 1, true)) -- stored under its hash indeed
  end)

  it("refuses BCAST, whose node names cannot be turned back into the client's", function()
    local c = assert(daemon.connect_served(d.port))
    finally(function() c:close() end)
    local r = call(c, "CLIENT", "TRACKING", "ON", "BCAST")
    assert.equal("error", r.t)
    assert.equal("ERR slotgate: CLIENT TRACKING BCAST cannot tell this client of its keys: policy "
                   .. "tyk_hash_keys rewrites keys with a rewrite_key hook, which cannot be undone "
                   .. "(a key on the node does not say the client's name). Track without BCAST: "
                   .. "each key is told by the name it was read as", r.v)
    assert.same({ "flags", { "off" }, "redirect", -1, "prefixes", {} },
                daemon.plain(call(c, "CLIENT", "TRACKINGINFO")))
  end)
end)

describe("slotgated's CLIENT TRACKING with several upstreams (route_by_prefix)", function()
  local d, warm

  setup(function()
    d = daemon.start{ env = {
      SLOTGATE_THREADS = "1", SLOTGATE_POLICY = scripts .. "route_by_prefix.lua",
      TYK_GW_ENABLESEPERATECACHESTORE = "true", TYK_GW_CACHESTORAGE_ADDRS = standalone,
      TYK_GW_ENABLESEPERATEANALYTICSSTORE = "true", TYK_GW_ANALYTICSSTORAGE_ADDRS = standalone,
      TYK_GW_ANALYTICSSTORAGE_DATABASE = "1" } }
    warm = trk.session(d.port)
    call(warm, "GET", "cache-tru:warm")
    -- 3 masters of the cluster, the standalone node for "cache" and for "analytics"
    trk.wait_trackers(warm, 5)
  end)
  teardown(function()
    if warm then warm:close() end
    daemon.stop_all()
  end)

  it("tells of a key read from another upstream than the default", function()
    local c = trk.session(d.port)
    finally(function() c:close() end)
    call(c, "GET", "cache-tru:1")
    set_standalone("cache-tru:1", "x")
    assert.same({ "cache-tru:1" }, next_invalidation(c, 5, true))
    -- and of the default upstream's, as before
    call(c, "GET", "tru:2")
    set_direct("tru:2", "x")
    assert.same({ "tru:2" }, next_invalidation(c, 5, true))
  end)

  it("keeps telling of the other upstreams' keys while one upstream cannot be used", function()
    -- the ACL server without its password: every connection to it fails
    -- after it was opened (a refused port fails at once, which says less)
    local e = daemon.start{ env = {
      SLOTGATE_THREADS = "1", SLOTGATE_POLICY = scripts .. "route_by_prefix.lua",
      TYK_GW_ENABLESEPERATEANALYTICSSTORE = "true",
      TYK_GW_ANALYTICSSTORAGE_ADDRS = helper.server_var("SG_TEST_ACL") } }
    -- the first TRACKING ON of the worker opens the trackers: none is ready
    -- yet, so the BCAST session is owed a flush, which comes once the
    -- default upstream's are, the analytics one down or not
    local b = trk.session(e.port, nil, "BCAST", "PREFIX", "trud:")
    local c = trk.session(e.port)
    finally(function() c:close(); b:close(); daemon.stop(e) end)
    assert.equal("flush", next_invalidation(b, 5))
    call(c, "GET", "trud:1")
    assert.is_truthy(wait_for(function() -- c's read may have been before the trackers
      set_direct("trud:1", "x")
      local got = next_invalidation(c, 0.5, true)
      call(c, "GET", "trud:1")
      return got
    end, 10), "no invalidation of the default upstream's key")
    assert.same({ "trud:1" }, next_invalidation(b, 5, true))
    -- from now on each change is told, and nothing else: reads of the
    -- analytics upstream's keys fail, and its trackers' attempts (one a second
    -- at most) flush no one
    local until_t = helper.now() + 2.5
    while helper.now() < until_t do
      assert.equal("error", call(c, "GET", "analytics-trud:1").t)
      call(b, "GET", "trud:1")
      set_direct("trud:1", "x")
      assert.same({ "trud:1" }, next_invalidation(c, 5))
      assert.same({ "trud:1" }, next_invalidation(b, 5))
      call(c, "GET", "trud:1")
    end
  end)

  it("BCAST hears every upstream", function()
    local c = trk.session(d.port, nil, "BCAST", "PREFIX", "cache-trub:")
    finally(function() c:close() end)
    set_standalone("cache-trub:1", "x")
    assert.same({ "cache-trub:1" }, next_invalidation(c, 5, true))
  end)
end)

describe("slotgated's CLIENT TRACKING REDIRECT across worker threads", function()
  local d

  setup(function()
    -- a policy, for INFO policy's per-worker count (which worker serves whom)
    d = daemon.start{ env = { SLOTGATE_THREADS = "2", SLOTGATE_POLICY = scripts .. "default_ttl.lua" } }
  end)
  teardown(function() daemon.stop_all() end)

  local function pair() return trk.pair_on_two_workers(d.port) end

  it("delivers in order to a RESP2 subscriber on another worker", function()
    local target, reader = pair()
    finally(function() target:close(); reader:close() end)
    local id = call(target, "CLIENT", "ID").v
    assert.equal("subscribe", call(target, "SUBSCRIBE", "__redis__:invalidate").v[1].v)
    assert.equal("OK", call(reader, "CLIENT", "TRACKING", "ON", "REDIRECT", tostring(id)).v)
    assert.same({ "flags", { "on" }, "redirect", id, "prefixes", {} },
                daemon.plain(call(reader, "CLIENT", "TRACKINGINFO")))
    local keys, args = {}, { "MSET" }
    for i = 1, 20 do
      keys[i] = string.format("{trw}k%02d", i) -- a node names one write's keys sorted
      call(reader, "GET", keys[i])
      args[#args + 1] = keys[i]
      args[#args + 1] = "v"
    end
    -- the first reads may precede the worker's trackers: a flush, skipped
    local out = daemon.cluster_cli(table.concat(args, " "))
    assert(out:match("OK"), out)
    local got = {}
    while #got < 20 do
      local inv = next_invalidation(target, 5, true)
      assert.is_table(inv, "invalidation " .. (#got + 1) .. " did not come")
      for _, k in ipairs(inv) do got[#got + 1] = k end
    end
    assert.same(keys, got)
  end)

  it("pushes to a RESP3 target on another worker", function()
    local target, reader = pair()
    finally(function() target:close(); reader:close() end)
    assert.equal("map", call(target, "HELLO", "3").t)
    local id = call(target, "CLIENT", "ID").v
    assert.equal("OK", call(reader, "CLIENT", "TRACKING", "ON", "REDIRECT", tostring(id)).v)
    call(reader, "GET", "trw:r3")
    assert.is_truthy(wait_for(function()
      set_direct("trw:r3", "x")
      local inv = next_invalidation(target, 0.5, true)
      if inv then return assert.same({ "trw:r3" }, inv) or true end
      call(reader, "GET", "trw:r3") -- told only after the trackers were up: read again
    end, 10))
  end)

  -- CLIENT INFO's flags and redir of conn.
  local function info_fields(conn)
    local line = call(conn, "CLIENT", "INFO").v
    return line:match(" flags=(%S*) "), tonumber(line:match(" redir=(%-?%d+) "))
  end

  -- What a reader of port (a node or slotgated) sees when its REDIRECT
  -- target goes: its CLIENT INFO flags and TRACKINGINFO before and after a
  -- key it read changed (the ids in place of the target's id), and the push.
  local function broken_redirect(port, target, reader, key, change)
    local id = call(target, "CLIENT", "ID").v
    local seen = {}
    local function look(when)
      local flags, redir = info_fields(reader)
      local ti = daemon.plain(call(reader, "CLIENT", "TRACKINGINFO"))
      ti[4] = ti[4] == id and "ID" or ti[4]
      seen[when] = { flags = flags, redir = redir == id and "ID" or redir, trackinginfo = ti }
    end
    assert.equal("map", call(reader, "HELLO", "3").t)
    look("off")
    assert.equal("OK", call(reader, "CLIENT", "TRACKING", "ON", "REDIRECT", tostring(id)).v)
    look("on")
    target:close()
    assert.is_truthy(wait_for(function()
      call(reader, "GET", key)
      change(key, "x")
      local r = trk.next_message(reader, 0.5)
      if r and r.t == "push" and r.v[1].v == "tracking-redir-broken" then
        seen.push = daemon.plain(r)
        seen.push[2] = seen.push[2] == id and "ID" or seen.push[2]
        return true
      end
    end, 10), "no tracking-redir-broken from port " .. port)
    look("broken")
    assert.equal("OK", call(reader, "CLIENT", "TRACKING", "ON", "NOLOOP").v) -- afresh
    look("on again")
    return seen
  end

  it("tells the reader tracking-redir-broken when the target goes, as Redis 7.0", function()
    local node_port = tonumber(standalone:match(":(%d+)$"))
    local nt, nr = assert(daemon.connect(node_port)), assert(daemon.connect(node_port))
    finally(function() nr:close() end)
    local node = broken_redirect(node_port, nt, nr, "trw:broken", set_standalone)
    assert.same({ "tracking-redir-broken", "ID" }, node.push)
    assert.equal("tR", node.broken.flags) -- the node itself, to be sure of what is compared
    local target, reader = pair()
    finally(function() reader:close() end)
    assert.same(node, broken_redirect(d.port, target, reader, "trw:broken", set_direct))
  end)

end)

describe("slotgated's CLIENT TRACKING figures", function()
  local d, mport, warm

  setup(function()
    mport = daemon.port()
    -- one worker: each worker keeps its own table, so a key two workers'
    -- sessions read counts twice in the sums (docs/INFO.md)
    d = daemon.start{ env = { SLOTGATE_THREADS = "1", SLOTGATE_METRICS = "127.0.0.1:" .. mport } }
    warm = assert(daemon.connect_served(d.port))
  end)
  teardown(function()
    if warm then warm:close() end
    daemon.stop_all()
  end)

  -- INFO's tracking_* figures of port (slotgated or a node), by name.
  local function info_figures(conn)
    local f = {}
    local text = call(conn, "INFO", "clients").v .. call(conn, "INFO", "stats").v
    for k, v in text:gmatch("\n(tracking_[%w_]+):(%d+)") do f[k] = tonumber(v) end
    return f
  end

  -- The same operations on slotgated and on a Redis 7.0 node: two readers
  -- (one reads 3 keys, the other 1 of them), two BCAST sessions (2 prefixes,
  -- none), then one of the keys changed; the figures after each step.
  local function scenario(port, connect, change)
    -- keys of their own: a node keeps a key read by a client that went (as
    -- slotgated does) until it changes
    local k = string.format("trf:%d:%d:", os.time(), math.random(1e6))
    local conns = {}
    local function session(...)
      local c = assert(connect(port))
      assert.equal("map", call(c, "HELLO", "3").t)
      assert.equal("OK", call(c, "CLIENT", "TRACKING", "ON", ...).v)
      conns[#conns + 1] = c
      return c
    end
    local a, b = session(), session()
    for i = 1, 3 do call(a, "GET", k .. i) end
    call(b, "GET", k .. 1)
    local bc = session("BCAST", "PREFIX", "trfa:", "PREFIX", "trfb:")
    session("BCAST")
    local probe = assert(connect(port))
    local steps = { info_figures(probe) }
    change(k .. 1, "x")
    assert.same({ k .. 1 }, next_invalidation(a, 5, true))
    assert.same({ k .. 1 }, next_invalidation(b, 5, true))
    steps[2] = info_figures(probe)
    bc:close()
    assert.is_truthy(wait_for(function()
      steps[3] = info_figures(probe)
      return steps[3].tracking_clients == steps[2].tracking_clients - 1
    end))
    for _, c in ipairs(conns) do c:close() end
    probe:close()
    return steps
  end

  it("counts clients, keys, items and prefixes as Redis 7.0 does, in INFO and /metrics", function()
    -- wait for this daemon's trackers first: reads before them owe a flush
    local w = trk.session(d.port)
    call(w, "GET", "trf:warm")
    trk.wait_trackers(w, 3)
    w:close()
    -- as in Redis, a closed session's keys stay in the table until they
    -- change: changed, they go
    assert.is_truthy(wait_for(function()
      set_direct("trf:warm", "x")
      return info_figures(warm).tracking_total_keys == 0
    end))
    local node_port = tonumber(standalone:match(":(%d+)$"))
    local before = info_figures(assert(daemon.connect(node_port)))
    local node = scenario(node_port, daemon.connect, set_standalone)
    local ours = scenario(d.port, daemon.connect_served, set_direct)
    -- the node's figures count other clients too (none tracking here): its steps
    -- less what it had before are what this scenario made
    for i, step in ipairs(node) do
      for k, v in pairs(step) do node[i][k] = v - (before[k] or 0) end
    end
    assert.same({ tracking_clients = 4, tracking_total_keys = 3, tracking_total_items = 4,
                  tracking_total_prefixes = 3 }, ours[1])
    assert.same(node, ours)
    -- all closed: the keys read and not changed stay, as in Redis
    local now_info = info_figures(warm)
    assert.same({ tracking_clients = 0, tracking_total_keys = 2, tracking_total_items = 2,
                  tracking_total_prefixes = 0 }, now_info)
    local body = helper.sh("curl -s -m 10 http://127.0.0.1:" .. mport .. "/metrics")
    for m, field in pairs({ clients = "tracking_clients", keys = "tracking_total_keys",
                            items = "tracking_total_items", prefixes = "tracking_total_prefixes" }) do
      assert.matches("\n# TYPE slotgate_tracking_" .. m .. " gauge\n", body, 1, true)
      assert.matches("\nslotgate_tracking_" .. m .. " " .. now_info[field] .. "\n", body, 1, true)
    end
  end)
end)
