-- The near cache through a completed slot migration (docs/CACHE.md): readers
-- read the keys of a slot through slotgated while the slot moves to another
-- master (CLUSTER SETSLOT IMPORTING and MIGRATING, MIGRATE of its keys,
-- SETSLOT NODE on every master), and while writes are made straight on the
-- new owner, during the move (ASKING) and after it. No read may be stale for
-- longer than an invalidation takes, and once the slot has moved its keys are
-- answered from memory again, tracked by the new owner. Keys that do not
-- exist are read too: their null answer is cached, and nothing on the old
-- owner tells when they come to exist on the new one. The slot is moved back
-- at the end.
local helper = require "helper"
local daemon = require "daemon"
local cache = require "cache_helper"

local wait_for, now = helper.wait_for, helper.now

daemon.ports_from(641)

local dir = helper.tmpdir()
local policy = helper.write(dir .. "/cache.lua", [[
return { name = "cache", cache = { ["cm:*"] = 30 } }
]])

local call, cache_info, owner_seen_by = cache.call, cache.cache_info, cache.owner_seen_by
local masters = {}
for _, port in ipairs(cache.master_ports()) do masters[#masters + 1] = cache.node_conn(port) end

-- Whether every master names `to` for slot and knows every master's config
-- epoch as that master does. The epochs matter: SETSLOT NODE on an importing
-- node bumps its epoch only when it is not already the greatest it knows of;
-- a move back made before the first move's bump reached it keeps an epoch
-- that loses to the other node's older claim, and the slot ends up owned by
-- no one in that node's view (the cluster stays split).
local function settled(slot, to)
  local own = {}
  for _, m in ipairs(masters) do
    own[m.port] = call(m, "CLUSTER", "NODES").v:match("[^\n]*myself[^\n]*")
                    :match("^%S+ %S+ %S+ %S+ %S+ %S+ (%d+)")
  end
  for _, m in ipairs(masters) do
    if owner_seen_by(m, slot) ~= to then return false end
    for line in call(m, "CLUSTER", "NODES").v:gmatch("[^\n]+") do
      local port, epoch = line:match("^%S+ [%d.]+:(%d+)@%d+ %S+ %S+ %S+ %S+ (%d+)")
      if port and own[tonumber(port)] and own[tonumber(port)] ~= epoch then return false end
    end
  end
  return true
end

-- Moves slot from one master to another as redis-cli --cluster does: the
-- target imports, the source migrates, every key goes (MIGRATE), then SETSLOT
-- NODE on the target, the source and every other master; between() runs
-- after each step (the readers). Waits until the masters agree (settled).
local function move_slot(slot, from, to, between)
  between = between or function() end
  local idf, idt = call(from, "CLUSTER", "MYID").v, call(to, "CLUSTER", "MYID").v
  assert.equal("OK", call(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", idf).v)
  between()
  assert.equal("OK", call(from, "CLUSTER", "SETSLOT", slot, "MIGRATING", idt).v)
  between()
  while true do
    local keys = call(from, "CLUSTER", "GETKEYSINSLOT", slot, 100).v
    if #keys == 0 then break end
    local args = { "MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS" }
    for _, k in ipairs(keys) do args[#args + 1] = k.v end
    local r = call(from, unpack(args))
    assert(r.v == "OK", "MIGRATE: " .. tostring(r.v))
  end
  between()
  assert.equal("OK", call(to, "CLUSTER", "SETSLOT", slot, "NODE", idt).v)
  assert.equal("OK", call(from, "CLUSTER", "SETSLOT", slot, "NODE", idt).v)
  for _, m in ipairs(masters) do
    if m ~= to and m ~= from then call(m, "CLUSTER", "SETSLOT", slot, "NODE", idt) end
  end
  assert.is_truthy(wait_for(function()
    between()
    return settled(slot, to)
  end, 20), "the masters do not all name port " .. to.port .. " for slot " .. slot ..
            " with the same config epochs")
end

-- The slot back on its first owner, whatever a failed test left: no
-- migration flags, every key on it, every master naming it.
local function put_back(slot, a, b)
  call(a, "CLUSTER", "SETSLOT", slot, "STABLE")
  call(b, "CLUSTER", "SETSLOT", slot, "STABLE")
  if owner_seen_by(a, slot) ~= a or #call(b, "CLUSTER", "GETKEYSINSLOT", slot, 1).v > 0 then
    if owner_seen_by(b, slot) == b then
      move_slot(slot, b, a)
    else -- keys left on b while a still owns the slot: bring them home
      call(b, "CLUSTER", "SETSLOT", slot, "IMPORTING", call(a, "CLUSTER", "MYID").v)
      call(a, "CLUSTER", "SETSLOT", slot, "MIGRATING", call(b, "CLUSTER", "MYID").v)
      move_slot(slot, b, a)
    end
  end
  assert.is_truthy(wait_for(function()
    for _, m in ipairs(masters) do
      if not call(m, "CLUSTER", "INFO").v:match("cluster_state:ok") then return false end
    end
    return settled(slot, a)
  end, 20), "slot " .. slot .. " not back on port " .. a.port)
end

describe("slotgated's near cache through a completed slot migration", function()
  local d, c
  setup(function()
    d = daemon.start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
    c = assert(daemon.connect_served(d.port))
  end)
  teardown(function()
    if c then c:close() end
    cache.close_nodes()
    daemon.stop_all()
  end)

  -- Readers of keys: a value read never goes back nor ahead of the last
  -- write (a null is 0); read_all() says whether all read the last write.
  local function readers_of(keys, n)
    local rs, seen, written = {}, {}, {}
    for i = 1, n do
      rs[i] = assert(daemon.connect_served(d.port))
      seen[i] = {}
    end
    for _, k in ipairs(keys) do written[k] = 0 end
    local self = { conns = rs, written = written }
    function self.read_all()
      local all = true
      for i, r in ipairs(rs) do
        for _, k in ipairs(keys) do
          local reply = call(r, "GET", k)
          assert.is_true(reply.t ~= "error",
                         "reader " .. i .. ", " .. k .. ": " .. tostring(reply.v))
          local v = reply.t == "nil" and 0 or tonumber(reply.v)
          local was = seen[i][k] or 0
          assert.is_true(v >= was, "reader " .. i .. " went back on " .. k .. " from " .. was ..
                         " to " .. v)
          assert.is_true(v <= written[k], "reader " .. i .. " read " .. v .. " of " .. k ..
                         " before it was written")
          seen[i][k] = v
          all = all and v == written[k]
        end
      end
      return all
    end
    function self.close() for _, r in ipairs(rs) do r:close() end end
    return self
  end

  -- Whether a GET of key on c was answered from memory.
  local function hit(key)
    local h = cache_info(c).cache_hits
    call(c, "GET", key)
    return cache_info(c).cache_hits == h + 1
  end

  it("reads no stale value while a slot moves, nor after, and caches it again from the new owner",
     function()
    local keys = { "cm:{mig}1", "cm:{mig}2", "cm:{mig}3", "cm:{mig}none1", "cm:{mig}none2" }
    local a = owner_seen_by(masters[1], call(masters[1], "CLUSTER", "KEYSLOT", keys[1]).v)
    local slot = call(a, "CLUSTER", "KEYSLOT", keys[1]).v
    local b = a == masters[1] and masters[2] or masters[1]
    local rd
    finally(function()
      if rd then rd.close() end
      for _, k in ipairs(keys) do
        call(c, "DEL", k)
      end
      put_back(slot, a, b)
    end)
    call(c, "DEL", unpack(keys))
    rd = readers_of(keys, 3)
    for i = 1, 3 do
      assert.equal("OK", call(c, "SET", keys[i], "1").v)
      rd.written[keys[i]] = 1
    end
    -- every key cached, the two that do not exist too
    assert.is_truthy(wait_for(function()
      rd.read_all()
      for _, k in ipairs(keys) do if not hit(k) then return false end end
      return true
    end), "not every key answered from memory")

    -- a write straight on b during the move, and one after
    local n = 1
    local function write_on_b(k, asking)
      n = n + 1
      if asking then call(b, "ASKING") end
      assert.equal("OK", call(b, "SET", k, tostring(n)).v)
      rd.written[k] = n
      local t0 = now()
      assert.is_truthy(wait_for(rd.read_all, 2),
                       "the write of " .. k .. " straight on port " .. b.port ..
                       " not read within 2 s")
      return now() - t0
    end
    local step = 0
    move_slot(slot, a, b, function()
      step = step + 1
      rd.read_all()
      if step == 3 then -- the keys are on b, the slot still a's: ASKING
        write_on_b(keys[1], true)
        write_on_b(keys[4], true)
      end
    end)
    for _, k in ipairs(keys) do write_on_b(k) end
    -- the new owner's keys from memory again, and its writes seen
    assert.is_truthy(wait_for(function()
      rd.read_all()
      for _, k in ipairs(keys) do if not hit(k) then return false end end
      return true
    end), "not every key answered from memory after the move")
    local slowest = 0
    for _, k in ipairs(keys) do slowest = math.max(slowest, write_on_b(k)) end
    print(string.format("\n  after the move, writes on the new owner read within %.1f ms",
                        slowest * 1000))
  end)

  it("drops the cached nulls of a slot whose keys do not exist when it has moved", function()
    -- nothing of the slot is on the old owner: no MIGRATE tells, no read goes
    -- there to meet a MOVED; only the new owner can tell of a write
    local keys = { "cm:{gone}1", "cm:{gone}2" }
    local a = owner_seen_by(masters[1], call(masters[1], "CLUSTER", "KEYSLOT", keys[1]).v)
    local slot = call(a, "CLUSTER", "KEYSLOT", keys[1]).v
    local b = a == masters[1] and masters[2] or masters[1]
    local rd
    finally(function()
      if rd then rd.close() end
      call(c, "DEL", unpack(keys))
      put_back(slot, a, b)
    end)
    call(c, "DEL", unpack(keys))
    rd = readers_of(keys, 2)
    assert.is_truthy(wait_for(function()
      rd.read_all()
      for _, k in ipairs(keys) do if not hit(k) then return false end end
      return true
    end), "the nulls never answered from memory")
    move_slot(slot, a, b, rd.read_all)
    for i, k in ipairs(keys) do
      assert.equal("OK", call(b, "SET", k, tostring(i)).v)
      rd.written[k] = i
      assert.is_truthy(wait_for(rd.read_all, 2),
                       "the write of " .. k .. " straight on the new owner not read within 2 s")
    end
  end)
end)
