-- The near cache of a slotgated in Sentinel mode (docs/CACHE.md): reads are
-- answered from memory, a write made straight on the master is seen, and a
-- Sentinel failover (SENTINEL FAILOVER) under readers leaves nothing stale:
-- once slotgated serves the new master, a write made straight on it is read
-- within the time its invalidation takes, and what the old master served is
-- dropped. The old master goes on as a master for some seconds after the
-- promotion (until the Sentinels turn it into a replica) and does not have
-- the new master's writes then: an entry it served, kept past the switch,
-- would be read stale for those seconds. The group's roles are put back as
-- they were at the end (other specs ask the Sentinels, but ct_sentinel and
-- the next run of this spec expect a settled group).
local helper = require "helper"
local daemon = require "daemon"
local cache = require "cache_helper"
local Py = require "redispy_cache"

local wait_for, now = helper.wait_for, helper.now

daemon.ports_from(631) -- 631..635 (636..640: the million-key cache spec)

local dir = helper.tmpdir()
local policy = helper.write(dir .. "/cache.lua", [[
return { name = "cache", cache = { ["sk:*"] = 30 } }
]])

local master_name = helper.server_var("SG_TEST_SENTINEL_MASTER_NAME")
local data_pass = helper.server_var("SG_TEST_SENTINEL_DATA_PASS")
local sentinel_pass = helper.server_var("SG_TEST_SENTINEL_PASS")

local call, cache_info = cache.call, cache.cache_info

-- Authenticated connections, kept by port. A Sentinel that promotes or
-- demotes a node kills its clients (CLIENT KILL TYPE normal, pubsub): a
-- command that finds its connection closed goes again on a new one.
local conns = {}
local Authed = {}
Authed.__index = Authed
function Authed:call(...)
  for _ = 1, 2 do
    if not self.conn then
      self.conn = assert(daemon.connect(self.port))
      local r = call(self.conn, "AUTH", self.pass)
      assert(r.v == "OK", "AUTH on port " .. self.port .. ": " .. tostring(r.v))
    end
    local args = { ... }
    local ok, r = pcall(function()
      self.conn:send(args)
      return self.conn:read()
    end)
    if ok and r then return r end
    self.conn:close()
    self.conn = nil
  end
  error("port " .. self.port .. " closed the connection twice")
end
local function authed(port, pass)
  if not conns[port] then conns[port] = setmetatable({ port = port, pass = pass }, Authed) end
  return conns[port]
end
local function data(port) return authed(port, data_pass) end

local sentinels = {}
for port in helper.server_var("SG_TEST_SENTINELS"):gmatch(":(%d+)") do
  sentinels[#sentinels + 1] = tonumber(port)
end
local function sentinel(i) return authed(sentinels[i], sentinel_pass) end

-- The port of the master the Sentinel i names.
local function named_by(i)
  local r = sentinel(i):call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master_name)
  assert(r.t == "array", "Sentinel " .. sentinels[i] .. ": " .. tostring(r.v))
  return tonumber(r.v[2].v)
end

-- A flat field/value array as a table.
local function fields(r)
  local out = {}
  for i = 1, #r.v - 1, 2 do out[r.v[i].v] = r.v[i + 1].v end
  return out
end

-- What keeps the group from being settled with master m and replica r (nil:
-- nothing): the replica linked to m, every Sentinel naming m, seeing it as a
-- plain master and r as its one replica, up and linked.
local function unsettled(m, r)
  local info = data(r):call("INFO", "replication").v
  if not info:match("master_port:" .. m .. "\r\n") or not info:match("master_link_status:up") then
    return "port " .. r .. " is not a linked replica of " .. m
  end
  for i = 1, #sentinels do
    if named_by(i) ~= m then return "Sentinel " .. sentinels[i] .. " names " .. named_by(i) end
    local mf = fields(sentinel(i):call("SENTINEL", "MASTER", master_name))
    if mf.flags ~= "master" then
      return "Sentinel " .. sentinels[i] .. " sees flags " .. mf.flags
    end
    local reps = sentinel(i):call("SENTINEL", "REPLICAS", master_name).v
    if #reps ~= 1 then return "Sentinel " .. sentinels[i] .. " knows " .. #reps .. " replicas" end
    local rf = fields(reps[1])
    if tonumber(rf.port) ~= r or rf.flags ~= "slave" or rf["master-link-status"] ~= "ok" then
      return "Sentinel " .. sentinels[i] .. " sees replica " .. rf.port .. " " .. rf.flags
    end
  end
  return nil
end

-- SENTINEL FAILOVER until the Sentinels name to (it refuses while a previous
-- one runs, or while it has not yet seen the replica good: INPROG,
-- NOGOODSLAVE); each(...) is called between the polls (the readers).
local function fail_over_to(to, each)
  local deadline, last = now() + 60, nil
  while now() < deadline do
    local r = sentinel(1):call("SENTINEL", "FAILOVER", master_name)
    last = r.v
    if r.t ~= "error" then
      if wait_for(function()
        if each then each() end
        for i = 1, #sentinels do if named_by(i) ~= to then return false end end
        return true
      end, 20) then return end
    else
      wait_for(function() if each then each() end end, 0.5)
    end
  end
  error("the Sentinels did not name port " .. to .. " within 60 s; last: " .. tostring(last))
end

describe("slotgated's near cache in Sentinel mode", function()
  teardown(function()
    for _, a in pairs(conns) do if a.conn then a.conn:close() end end
    daemon.stop_all()
  end)

  it("stays exact through a Sentinel failover under readers, drops the old master's entries",
     function()
    -- the group as it is now (ct_sentinel leaves it swapped): put back at the end
    local m0 = named_by(1)
    local r0
    for port in helper.server_var("SG_TEST_SENTINEL_DATA"):gmatch(":(%d+)") do
      if tonumber(port) ~= m0 then r0 = tonumber(port) end
    end
    assert.is_truthy(wait_for(function() return unsettled(m0, r0) == nil end, 30),
                     "the group is not settled before the test: " .. tostring(unsettled(m0, r0)))
    local d, c, readers, t, tc, py = nil, nil, {}, nil, nil, nil
    -- busted keeps one finally per test: the connections, then the roles
    finally(function()
      if c then c:close() end
      for _, r in ipairs(readers) do r:close() end
      if tc then tc:close() end
      if py then py:close() end
      if d then print("\n  slotgated's log: " .. d.log) end
      if named_by(1) ~= m0 then fail_over_to(m0) end
      local why
      assert.is_truthy(wait_for(function()
        why = unsettled(m0, r0)
        return why == nil
      end, 60), "the group did not settle back: " .. tostring(why))
    end)

    local env = {
      TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_SENTINELS"),
      TYK_GW_STORAGE_ENABLECLUSTER = "false",
      TYK_GW_STORAGE_MASTERNAME = master_name,
      TYK_GW_STORAGE_SENTINELPASSWORD = sentinel_pass,
      TYK_GW_STORAGE_PASSWORD = data_pass,
      SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1",
    }
    d = daemon.start{ env = env }
    c = assert(daemon.connect_served(d.port))
    for i = 1, 4 do readers[i] = assert(daemon.connect_served(d.port)) end
    -- and one with no near cache, for a client-side cache (CLIENT TRACKING):
    -- only its sessions' tracking opens trackers there
    env.SLOTGATE_POLICY = false
    t = daemon.start{ env = env }
    tc = assert(daemon.connect_served(t.port))
    py = Py.connect(t.port)

    local key, old = "sk:failover", data(m0)
    local function hit(k)
      local h = cache_info(c).cache_hits
      local v = call(c, "GET", k).v
      return cache_info(c).cache_hits == h + 1, v
    end

    -- hits, and a write straight on the master seen
    assert.equal("OK", call(c, "SET", key, "1").v)
    assert.is_truthy(wait_for(function() return hit(key) end), "never answered from memory")
    assert.equal("OK", old:call("SET", key, "2").v)
    assert.is_truthy(wait_for(function() return call(c, "GET", key).v == "2" end, 5),
                     "a write straight on the master not seen within 5 s")
    assert.is_truthy(wait_for(function() return hit(key) end))
    -- more entries of the old master, read from memory
    for i = 1, 20 do assert.equal("OK", call(c, "SET", "sk:old:" .. i, "o" .. i).v) end
    assert.is_truthy(wait_for(function()
      for i = 1, 20 do call(c, "GET", "sk:old:" .. i) end
      local h = cache_info(c).cache_hits
      for i = 1, 20 do assert.equal("o" .. i, call(c, "GET", "sk:old:" .. i).v) end
      return cache_info(c).cache_hits == h + 20
    end), "the old master's keys never all cached")
    -- the client-side cache told of a write on the master
    local tkey = "tk:failover"
    assert.equal("OK", old:call("SET", tkey, "before").v)
    assert.equal("before", py:call({ tkey }, "GET", tkey).v)
    assert.equal("OK", old:call("SET", tkey, "before2").v)
    assert.is_truthy(wait_for(function() return py:call({ tkey }, "GET", tkey).v == "before2" end,
                              5), "the client-side cache not told of a write on the master")
    assert.equal(1, old:call("WAIT", "1", "5000").v) -- the replica has it all
    local before = cache_info(c)

    -- readers never go back, nor ahead of the last write
    local seen, written, errors = { 2, 2, 2, 2 }, 2, {}
    local function read_all()
      local all = true
      for i, r in ipairs(readers) do
        local reply = call(r, "GET", key)
        -- a read in flight when the Sentinels kill slotgated's connections
        -- may fail (counted, shown); none may be stale
        if reply.t == "error" then
          errors[#errors + 1] = reply.v
          return false
        end
        local v = tonumber(reply.v)
        assert.is_true(v >= seen[i], "reader " .. i .. " went back from " .. seen[i] .. " to " .. v)
        assert.is_true(v <= written, "reader " .. i .. " read " .. v .. " before it was written")
        seen[i] = v
        all = all and v == written
      end
      return all
    end

    fail_over_to(r0, read_all)
    local promoted = now()
    local new = data(r0)
    -- slotgated serves the new master once a key written only there is read
    -- through it (the old master does not replicate from it yet)
    local mark = "mark-" .. tostring(now())
    assert.equal("OK", new:call("SET", "failover:mark", mark).v)
    assert.is_truthy(wait_for(function()
      read_all()
      return call(c, "GET", "failover:mark").v == mark
    end, 20), "slotgated never served the new master")
    -- the client-side cache through the other slotgated: once that one
    -- serves the new master, a write there reaches it (a flush when the
    -- master changed, then the new master's invalidations)
    assert.is_truthy(wait_for(function() return call(tc, "GET", "failover:mark").v == mark end, 20),
                     "the second slotgated never served the new master")
    -- (what this shows holds while the old master has not yet been made a
    -- replica: the Sentinels then kill its clients, the trackers too, and
    -- that loss alone would flush)
    local still = old:call("ROLE").v[1].v == "master"
    print(string.format("\n  write on the new master %.2f s after the promotion; the old one %s",
                        now() - promoted, still and "still a master" or "already a replica"))
    assert.equal("OK", new:call("SET", tkey, "after").v)
    assert.is_truthy(wait_for(function() return py:call({ tkey }, "GET", tkey).v == "after" end, 2),
                     "the client-side cache not told of a write on the new master within 2 s")
    -- writes straight on the new master, and through slotgated: each read
    -- within the time the invalidation takes (2 s is plenty; a stale entry of
    -- the old master would stay until that one became a replica, seconds on)
    for i = 3, 12 do
      written = i
      if i % 2 == 1 then
        assert.equal("OK", new:call("SET", key, tostring(i)).v)
      else
        assert.equal("OK", call(c, "SET", key, tostring(i)).v)
        assert.equal(tostring(i), call(c, "GET", key).v)
      end
      local t0 = now()
      assert.is_truthy(wait_for(read_all, 2), "write " .. i .. " not read within 2 s")
      if i == 3 then print(string.format("\n  first write on the new master read after %.1f ms",
                                         (now() - t0) * 1000)) end
    end
    print(string.format("  %d reads failed during the failover%s", #errors,
                        #errors > 0 and (": " .. errors[1]) or ""))
    -- the old master's entries: none answers any more
    local mid = cache_info(c)
    for i = 1, 20 do assert.equal("o" .. i, call(c, "GET", "sk:old:" .. i).v) end
    local after = cache_info(c)
    assert.equal(mid.cache_hits, after.cache_hits, "an entry of the old master answered")
    local function gone(i)
      return i.cache_dropped_moved + i.cache_dropped_lost + i.cache_dropped_flushed
    end
    assert.is_true(gone(after) >= gone(before) + 20, "the old master's entries not dropped")
    -- and the new master's keys are cached again, and exact
    assert.is_truthy(wait_for(function() return hit(key) end), "never answered from memory again")
    assert.equal("OK", new:call("SET", key, "13").v)
    written = 13
    assert.is_truthy(wait_for(read_all, 2), "a write on the new master, once cached, not read")
  end)
end)
