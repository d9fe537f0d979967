-- The near cache through slotgated (docs/CACHE.md): reads of keys a policy's
-- `cache` patterns name are answered from slotgated's memory, and stay exact:
-- a write made straight on a node is seen within milliseconds (the node's
-- invalidation message), a write through slotgated at once, a flush empties
-- it, the loss of the invalidation connection drops what it guarded, the
-- memory bound holds, and INFO and /metrics count it all. A property test
-- mixes writes through slotgated and on the node with readers on several
-- connections.
local helper = require "helper"
local daemon = require "daemon"
local cache = require "cache_helper"

local start, wait_for, sh, slurp, q = daemon.start, helper.wait_for, helper.sh, helper.slurp,
  helper.shell_quote
local now = helper.now

daemon.ports_from(921)

local dir = helper.tmpdir()
local policy = helper.write(dir .. "/cache.lua", [[
return { name = "cache", cache = { ["ck:*"] = 30, ["ch:*"] = 30 } }
]])

local call, cache_info, node_conn = cache.call, cache.cache_info, cache.node_conn
local master_of, set_direct = cache.master_of, cache.set_direct

describe("slotgated's near cache", function()
  local d, c

  setup(function()
    d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    c = assert(daemon.connect_served(d.port))
  end)
  teardown(function()
    if c then c:close() end
    cache.close_nodes()
    daemon.stop_all()
  end)

  it("answers a second read from memory, and counts hits and misses", function()
    assert.equal("OK", call(c, "SET", "ck:hits", "v1").v)
    local before = cache_info(c)
    -- the first read opens the key's node's invalidation connection: reads
    -- fill only once it is subscribed
    assert.is_truthy(wait_for(function()
      call(c, "GET", "ck:hits")
      return cache_info(c).cache_fills > before.cache_fills
    end))
    local mid = cache_info(c)
    for _ = 1, 10 do assert.equal("v1", call(c, "GET", "ck:hits").v) end
    local after = cache_info(c)
    assert.equal(mid.cache_hits + 10, after.cache_hits)
    assert.equal(mid.cache_misses, after.cache_misses)
    assert.is_true(after.cache_trackers >= 1)
    assert.is_true(after.cache_entries >= 1 and after.cache_bytes > 0)
    -- a key no pattern names is never cached
    assert.equal("OK", call(c, "SET", "other:k", "x").v)
    for _ = 1, 3 do call(c, "GET", "other:k") end
    assert.equal(after.cache_hits + after.cache_misses,
                 cache_info(c).cache_hits + cache_info(c).cache_misses)
  end)

  it("sees a value written straight on the node within milliseconds", function()
    local key = "ck:direct"
    assert.equal("OK", call(c, "SET", key, "0").v)
    assert.is_truthy(wait_for(function()
      call(c, "GET", key)
      return call(c, "GET", key).v == "0" and cache_info(c).cache_entries > 0
    end))
    local delays = {}
    for i = 1, 20 do
      local hits = cache_info(c).cache_hits
      call(c, "GET", key) -- cached
      assert.equal(hits + 1, cache_info(c).cache_hits)
      local t0 = now()
      set_direct(key, tostring(i))
      local seen = wait_for(function() return call(c, "GET", key).v == tostring(i) end, 5)
      assert.is_truthy(seen, "the direct write " .. i .. " was not seen within 5 s")
      delays[#delays + 1] = (now() - t0) * 1000
    end
    table.sort(delays)
    print(string.format("\n  direct write seen through the cache after: median %.2f ms, max %.2f ms",
                        delays[math.floor(#delays / 2) + 1], delays[#delays]))
    assert.is_true(cache_info(c).cache_invalidations >= 20)
  end)

  it("reads its own writes through slotgated at once, on any connection", function()
    local other = assert(daemon.connect_served(d.port))
    finally(function() other:close() end)
    local key = "ch:own"
    call(c, "DEL", key)
    assert.equal(1, call(c, "HSET", key, "f", "0").v)
    for i = 1, 50 do
      assert.equal(0, call(c, "HSET", key, "f", tostring(i)).v)
      assert.equal(tostring(i), call(c, "HGET", key, "f").v)
      assert.equal(tostring(i), call(other, "HGET", key, "f").v)
      call(c, "HGET", key, "f") -- a hit now, or a fill
    end
    assert.is_true(cache_info(c).cache_dropped_written > 0)
  end)

  it("reads its own writes after EXEC, whatever another session read while they were queued", function()
    -- a write queued in MULTI runs at EXEC, on a connection of the
    -- transaction's own: a read by another session of the same worker in
    -- between reads the old value; kept, the writer's read after EXEC would
    -- get it until the node's invalidation came
    local other = assert(daemon.connect_served(d.port))
    finally(function() other:close() end)
    local key = "ck:multi"
    assert.equal("OK", call(c, "SET", key, "0").v)
    assert.is_truthy(wait_for(function()
      local h = cache_info(c).cache_hits
      call(other, "GET", key)
      return cache_info(c).cache_hits > h
    end))
    -- the transaction also writes many keys of the slot, under a cached
    -- prefix (the trackers hear of those): the node's message naming them
    -- all (BCAST: one message) is long, and Redis writes it in 64 KiB steps,
    -- after the EXEC's reply has gone; so the writer's read comes before the
    -- message that would drop a kept old value
    local mset, fillers = { "MSET" }, { "DEL" }
    for n = 1, 20000 do
      fillers[#fillers + 1] = "ck:{ck:multi}:filler:" .. string.rep("x", 40) .. n
      mset[#mset + 1] = fillers[#fillers]
      mset[#mset + 1] = "1"
    end
    finally(function()
      c:send(fillers)
      assert(c:read())
    end)
    for i = 1, 5 do
      assert.equal("OK", call(c, "MULTI").v)
      assert.equal("QUEUED", call(c, "SET", key, tostring(i)).v)
      c:send(mset)
      assert.equal("QUEUED", assert(c:read()).v)
      for _ = 1, 2 do assert.equal(tostring(i - 1), call(other, "GET", key).v) end
      assert.same({ "+OK", "+OK" }, daemon.plain(call(c, "EXEC")))
      assert.equal(tostring(i), call(c, "GET", key).v, "the read right after EXEC " .. i)
      assert.equal(tostring(i), call(other, "GET", key).v)
    end
    -- a DISCARD, an EXECABORT and an EXEC whose WATCH failed leave nothing
    -- held: the key is cached again after each
    local function cached_again(value, after)
      assert.is_truthy(wait_for(function()
        local h = cache_info(c).cache_hits
        assert.equal(value, call(other, "GET", key).v)
        return cache_info(c).cache_hits > h
      end, 5), "the key is not cached again after " .. after .. ": a hold was not released")
    end
    assert.equal("OK", call(c, "MULTI").v)
    assert.equal("QUEUED", call(c, "SET", key, "discarded").v)
    assert.equal("OK", call(c, "DISCARD").v)
    cached_again("5", "DISCARD")
    assert.equal("OK", call(c, "MULTI").v)
    assert.equal("QUEUED", call(c, "SET", key, "aborted").v)
    assert.equal("error", call(c, "NOSUCHCOMMAND").t)
    assert.equal("error", call(c, "EXEC").t)
    cached_again("5", "EXECABORT")
    assert.equal("OK", call(c, "WATCH", key).v)
    assert.equal("OK", call(master_of(key), "SET", key, "50").v)
    assert.equal("OK", call(c, "MULTI").v)
    assert.equal("QUEUED", call(c, "SET", key, "unwatched").v)
    assert.equal("nil", call(c, "EXEC").t)
    cached_again("50", "an EXEC whose WATCH failed")
  end)

  it("answers GET, MGET, HGET, HMGET, HGETALL and EXISTS from the cache, as the node would", function()
    assert.equal("OK", call(c, "MSET", "{ck:m}1", "a", "{ck:m}2", "b", "{ck:m}one", "1").v)
    call(c, "DEL", "ch:all", "ck:nokey", "ck:nokey1")
    assert.equal(2, call(c, "HSET", "ch:all", "x", "1", "y", "2").v)
    local cmds = {
      { "GET", "{ck:m}1" }, { "MGET", "{ck:m}1", "ck:nokey", "{ck:m}2", "{ck:m}1" },
      { "HGET", "ch:all", "x" }, { "HMGET", "ch:all", "y", "zz", "x" }, { "HGETALL", "ch:all" },
      { "EXISTS", "ch:all" }, { "EXISTS", "ck:nokey" }, { "GET", "ck:nokey" },
      -- MGET of one key fills GET's entry with its element, not its array
      { "MGET", "{ck:m}one" }, { "GET", "{ck:m}one" }, { "MGET", "ck:nokey1" },
      { "GET", "ck:nokey1" },
    }
    local first = {}
    for i, cmd in ipairs(cmds) do
      c:send(cmd)
      first[i] = assert(c:read_bytes())
    end
    local hits = cache_info(c).cache_hits
    -- again, after the fills: the same bytes, from memory
    assert.is_truthy(wait_for(function()
      local same = true
      for i, cmd in ipairs(cmds) do
        c:send(cmd)
        same = same and assert(c:read_bytes()) == first[i]
        assert.equal(first[i], c.last_bytes)
      end
      return same and cache_info(c).cache_hits >= hits + #cmds + 3
    end))
    -- and the node agrees
    local direct = master_of("ch:all")
    direct:send({ "HMGET", "ch:all", "y", "zz", "x" })
    assert.equal(first[4], assert(direct:read_bytes()))
    for i = 9, 12 do
      local node = master_of(cmds[i][2])
      node:send(cmds[i])
      assert.equal(assert(node:read_bytes()), first[i], table.concat(cmds[i], " "))
    end
  end)

  it("leaves a blocking write to CLIENT UNBLOCK (the cache does not stand in its way)", function()
    call(c, "GET", "ck:hits") -- the cache exists: writes go through it
    local b = assert(daemon.connect_served(d.port))
    finally(function() b:close() end)
    local id = call(b, "CLIENT", "ID").v
    call(c, "DEL", "ck:blpop")
    b:send({ "BLPOP", "ck:blpop", "0" })
    assert.is_truthy(wait_for(function() return call(c, "CLIENT", "UNBLOCK", id).v == 1 end, 10))
    local r = assert(b:read())
    assert.equal("nil", r.t)
    -- ended on the node too (not only answered here): nothing stays blocked
    -- there to pop, and drop, what comes next
    local m = master_of("ck:blpop")
    assert.is_truthy(wait_for(function()
      return call(m, "INFO", "clients").v:match("blocked_clients:0\r\n") ~= nil
    end, 5), "the BLPOP still blocks on its node")
    assert.equal(1, call(c, "RPUSH", "ck:blpop", "x").v)
    assert.equal(1, call(c, "LLEN", "ck:blpop").v)
  end)

  it("empties on FLUSHALL on the nodes", function()
    assert.equal("OK", call(c, "SET", "ck:flush", "v").v)
    assert.is_truthy(wait_for(function()
      call(c, "GET", "ck:flush")
      local i = cache_info(c)
      return call(c, "GET", "ck:flush").v == "v" and i.cache_entries > 0
    end))
    local m = master_of("ck:flush")
    assert.equal("OK", call(m, "FLUSHALL").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", "ck:flush").t == "nil" end, 5))
    assert.is_true(cache_info(c).cache_flushes >= 1)
    assert.is_true(cache_info(c).cache_dropped_flushed >= 1)
  end)

  it("drops what a lost invalidation connection guarded (CLIENT KILL TYPE pubsub)", function()
    local key = "ck:killed"
    assert.equal("OK", call(c, "SET", key, "before").v)
    assert.is_truthy(wait_for(function()
      call(c, "GET", key)
      return cache_info(c).cache_entries > 0 and call(c, "GET", key).v == "before" and
             cache_info(c).cache_trackers >= 1
    end))
    local lost = cache_info(c).cache_dropped_lost
    local m = master_of(key)
    assert.is_true(call(m, "CLIENT", "KILL", "TYPE", "pubsub").v >= 1)
    -- written while the node tells nobody: the read must not come from memory
    set_direct(key, "after")
    assert.equal("after", call(c, "GET", key).v)
    assert.is_true(cache_info(c).cache_dropped_lost > lost)
    -- the tracker comes back, and with it the cache
    assert.is_truthy(wait_for(function()
      call(c, "GET", key)
      local h = cache_info(c).cache_hits
      call(c, "GET", key)
      return cache_info(c).cache_hits > h
    end))
    set_direct(key, "again")
    assert.is_truthy(wait_for(function() return call(c, "GET", key).v == "again" end, 5))
  end)

  it("stops answering from memory when its invalidation connection goes silent", function()
    -- CLIENT PAUSE ALL stops the node answering anyone, the tracker's PING
    -- included, while the connection stays up: as a hung node or a silent
    -- network would. Within a few seconds the cached key is read from the
    -- node again (the read then waits for the pause to end)
    local key = "ck:silent"
    assert.equal("OK", call(c, "SET", key, "v").v)
    assert.is_truthy(wait_for(function()
      local h = cache_info(c).cache_hits
      call(c, "GET", key)
      return cache_info(c).cache_hits > h
    end))
    local m = master_of(key)
    local t0, sent = now(), nil
    assert.equal("OK", call(m, "CLIENT", "PAUSE", "4500", "ALL").v)
    finally(function() call(m, "CLIENT", "UNPAUSE") end)
    local missed = wait_for(function()
      local h = cache_info(c).cache_hits
      sent = now()
      assert.equal("v", call(c, "GET", key).v)
      return cache_info(c).cache_hits == h
    end, 15)
    assert.is_truthy(missed, "still answered from memory 15 s into the node's silence")
    assert.is_true(sent - t0 < 4.5, "answered from memory until the pause ended")
    call(m, "CLIENT", "UNPAUSE")
    -- and once the node speaks again, from memory again
    assert.is_truthy(wait_for(function()
      local h = cache_info(c).cache_hits
      call(c, "GET", key)
      return cache_info(c).cache_hits > h
    end, 10))
  end)

  it("shows its figures in /metrics", function()
    local mport = daemon.port()
    local e = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "2",
                             SLOTGATE_METRICS = "127.0.0.1:" .. mport } }
    local ec = assert(daemon.connect_served(e.port))
    finally(function() ec:close() end)
    assert.equal("OK", call(ec, "SET", "ck:metrics", "m").v)
    local body
    assert.is_truthy(wait_for(function()
      for _ = 1, 3 do call(ec, "GET", "ck:metrics") end
      body = sh("curl -s -m 10 http://127.0.0.1:" .. mport .. "/metrics")
      local hits = tonumber(body:match("\nslotgate_cache_hits_total (%d+)\n"))
      return hits and hits > 0
    end))
    assert.matches("\nslotgate_cache_max_bytes 67108864\n", body, 1, true)
    assert.matches("\n# TYPE slotgate_cache_entries gauge\n", body, 1, true)
    assert.matches("\nslotgate_cache_misses_total %d+\n", body)
    assert.matches("\nslotgate_cache_dropped_written_total %d+\n", body)
    assert.matches("\nslotgate_cache_evictions_total %d+\n", body)
    daemon.stop(e)
  end)

  it("keeps within cache_max_bytes, evicting the least recently used", function()
    local max = 100000
    local e = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1",
                             SLOTGATE_CACHEMAXBYTES = tostring(max) } }
    local ec = assert(daemon.connect_served(e.port))
    finally(function() ec:close() end)
    local value = string.rep("v", 200)
    local n = 3000
    local lines = {}
    for i = 1, n do lines[#lines + 1] = daemon.resp({ "SET", "ck:bound:" .. i, value }) end
    ec:send_raw(table.concat(lines))
    for _ = 1, n do assert(ec:read()) end
    -- read every key twice (the first read opens the trackers)
    for _ = 1, 2 do
      lines = {}
      for i = 1, n do lines[#lines + 1] = daemon.resp({ "GET", "ck:bound:" .. i }) end
      ec:send_raw(table.concat(lines))
      for i = 1, n do assert.equal(value, assert(ec:read()).v, "ck:bound:" .. i) end
    end
    local i = cache_info(ec)
    assert.equal(max, i.cache_max_bytes)
    assert.is_true(i.cache_bytes <= max, i.cache_bytes .. " bytes")
    assert.is_true(i.cache_evictions > 0)
    assert.is_true(i.cache_fills > i.cache_entries)
    assert.is_true(i.cache_entries > 100, i.cache_entries .. " entries")
    daemon.stop(e)
  end)

  it("stays exact through a failover of the key's master, and back", function()
    local key = "ck:failover"
    local old = master_of(key)
    -- its replica, from the master's ROLE: {"master", offset, {{host, port, offset}, ...}}
    local role = call(old, "ROLE").v
    assert.is_true(#role[3].v >= 1, "the master has no replica")
    local rep = node_conn(tonumber(role[3].v[1].v[2].v))
    local function is_master(conn) return call(conn, "ROLE").v[1].v == "master" end
    local function fail_over_to(conn, was)
      -- CLUSTER FAILOVER waits for the replica to catch up, then both roles
      -- swap; sent again while the replica refuses it (its link to the
      -- master still coming up) or the node's manual failover timed out (5 s)
      local deadline = now() + 30
      while now() < deadline do
        local r = call(conn, "CLUSTER", "FAILOVER")
        if r.t ~= "error" and wait_for(function() return is_master(conn) and not is_master(was) end, 6) then
          return
        end
        if r.t == "error" then helper.sleep(0.2) end -- between tries
      end
      error("no failover to port " .. conn.port .. " within 30 s")
    end
    finally(function() -- the harness's masters are the same after the test, and settled
      if not is_master(old) then fail_over_to(old, rep) end
      assert.is_truthy(wait_for(function()
        return call(old, "CLUSTER", "INFO").v:match("cluster_state:ok") ~= nil and
               call(rep, "INFO", "replication").v:match("master_link_status:up") ~= nil
      end, 20), "the cluster did not settle after the failover back")
    end)
    assert.equal("OK", call(c, "SET", key, "0").v)
    assert.is_truthy(wait_for(function()
      call(c, "GET", key)
      return call(c, "GET", key).v == "0" and cache_info(c).cache_entries > 0
    end))
    local before = cache_info(c)
    fail_over_to(rep, old)
    -- writes on the new master, past slotgated, and through it; reads never
    -- go back, the first see each write once its invalidation (or the new
    -- map) came, the second at once
    local seen = 0
    for i = 1, 20 do
      if i % 2 == 0 then
        assert.equal("OK", call(rep, "SET", key, tostring(i)).v)
      else
        assert.equal("OK", call(c, "SET", key, tostring(i)).v)
        assert.equal(tostring(i), call(c, "GET", key).v)
      end
      assert.is_truthy(wait_for(function()
        local v = tonumber(call(c, "GET", key).v)
        assert.is_true(v >= seen and v <= i, "read " .. v .. " after " .. seen .. ", write " .. i)
        seen = v
        return v == i
      end, 10), "write " .. i .. " not seen within 10 s")
    end
    local after = cache_info(c)
    assert.is_true(after.cache_dropped_moved + after.cache_dropped_invalidated +
                   after.cache_dropped_written >
                   before.cache_dropped_moved + before.cache_dropped_invalidated +
                   before.cache_dropped_written)
    -- and back: the old master serves the key again, cached and exact
    fail_over_to(old, rep)
    assert.equal("OK", call(old, "SET", key, "back").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", key).v == "back" end, 10))
  end)

  it("keeps no answer that came after an ASK (a slot migrating to a node it may not track)", function()
    local key = "ck:migrating"
    assert.equal("OK", call(c, "SET", key, "0").v)
    local a = master_of(key)
    local slot = call(a, "CLUSTER", "KEYSLOT", key).v
    local b
    for _, range in ipairs(call(a, "CLUSTER", "SLOTS").v) do
      local conn = node_conn(range.v[3].v[2].v)
      if conn ~= a then b = conn end
    end
    local ida, idb = call(a, "CLUSTER", "MYID").v, call(b, "CLUSTER", "MYID").v
    finally(function() -- the slot back as it was, the key gone from b
      call(b, "ASKING")
      call(b, "DEL", key)
      call(a, "CLUSTER", "SETSLOT", slot, "STABLE")
      call(b, "CLUSTER", "SETSLOT", slot, "STABLE")
      call(a, "DEL", key)
    end)
    assert.equal("OK", call(b, "CLUSTER", "SETSLOT", slot, "IMPORTING", ida).v)
    assert.equal("OK", call(a, "CLUSTER", "SETSLOT", slot, "MIGRATING", idb).v)
    local host, port = "127.0.0.1", b.port
    assert.equal("OK", call(a, "MIGRATE", host, port, key, 0, 5000).v)
    -- reads go to a, which says ASK: b answers; none of it is kept
    local before = cache_info(c)
    for _ = 1, 5 do assert.equal("0", call(c, "GET", key).v) end
    local after = cache_info(c)
    assert.equal(before.cache_hits, after.cache_hits)
    assert.equal(before.cache_fills, after.cache_fills)
    -- so a write on b, which slotgated may not hear of, is read at once
    call(b, "ASKING")
    assert.equal("OK", call(b, "SET", key, "1").v)
    assert.equal("1", call(c, "GET", key).v)
  end)

  it("never reads older than the last write acknowledged (writers through slotgated and on the node)", function()
    local readers = {}
    for r = 1, 4 do readers[r] = assert(daemon.connect_served(d.port)) end
    finally(function() for _, r in ipairs(readers) do r:close() end end)
    local key = "ck:prop"
    assert.equal("OK", call(c, "SET", key, "0").v)
    local seen = { 0, 0, 0, 0 }
    local slowest = 0
    for i = 1, 200 do
      local direct = i % 2 == 0
      if direct then set_direct(key, tostring(i))
      else assert.equal("OK", call(c, "SET", key, tostring(i)).v) end
      local t0 = now()
      -- reads never go back; after a write through slotgated they are at it
      -- at once; after one on the node, once its invalidation came
      local all = wait_for(function()
        local done = true
        for r, conn in ipairs(readers) do
          local v = tonumber(call(conn, "GET", key).v)
          assert.is_true(v >= seen[r], "reader " .. r .. " went back from " .. seen[r] .. " to " .. v)
          assert.is_true(v <= i)
          if not direct then assert.equal(i, v, "a write through slotgated, read at once") end
          seen[r] = v
          done = done and v == i
        end
        return done
      end, 5)
      assert.is_truthy(all, "write " .. i .. " not seen by every reader within 5 s")
      if direct and now() - t0 > slowest then slowest = now() - t0 end
    end
    print(string.format("\n  property: 200 writes, slowest direct write seen by 4 readers after %.2f ms",
                        slowest * 1000))
    local i = cache_info(c)
    assert.is_true(i.cache_hits > 0 and i.cache_dropped_invalidated + i.cache_fills_lost > 0)
  end)
end)
