-- slotgated_durable_spec.lua — durable writes by policy through slotgated, on
-- the harness's cluster (one replica per master): a write to a matching key
-- is acknowledged only once WAIT confirmed it; one WAIT per connection and
-- loop turn covers a whole pipeline; a replica that cannot confirm (stopped
-- with SIGSTOP for the test) turns the acknowledgement into NOTCONFIRMED,
-- and the write is applied all the same; error replies and other keys pass
-- as they are.
local helper = require "helper"
local daemon = require "daemon"

local now, wait_for, sh = helper.now, helper.wait_for, helper.sh
local node_cli = daemon.node_cli

daemon.ports_from(811)

-- INFO upstream's durable_waits and durable_unconfirmed, of the worker that
-- answers (the spec runs slotgated with one worker so there is only one).
local function figures(port)
  local r = assert(daemon.call(port, { "INFO", "upstream" }))
  local text = r.v
  return tonumber(text:match("\ndurable_waits:(%d+)")),
         tonumber(text:match("\ndurable_unconfirmed:(%d+)"))
end

-- The replica of the master that serves key, and its process id.
local function replica_of_key(key)
  local slot = tonumber(daemon.cluster_cli("CLUSTER KEYSLOT " .. key))
  local nodes = daemon.cluster_cli("CLUSTER NODES")
  local master_id
  for line in nodes:gmatch("[^\n]+") do
    local id, flags, ranges = line:match("^(%S+) %S+ (%S+) %S+ %S+ %S+ %S+ %S+ (.*)$")
    if flags and flags:match("master") then
      for lo, hi in (ranges or ""):gmatch("(%d+)%-?(%d*)") do
        if slot >= tonumber(lo) and slot <= tonumber(hi ~= "" and hi or lo) then master_id = id end
      end
    end
  end
  assert(master_id, "no master serves slot " .. slot)
  for line in nodes:gmatch("[^\n]+") do
    local addr, flags, of = line:match("^%S+ (%S+) (%S+) (%S+)")
    if flags:match("slave") and of == master_id then
      addr = addr:match("^([^@]+)")
      local pid = tonumber(node_cli(addr, "INFO server"):match("process_id:(%d+)"))
      return addr, pid
    end
  end
  error("the master of slot " .. slot .. " has no replica")
end

describe("slotgated with a durable policy", function()
  local d, dir
  local run = os.time() .. ":" .. math.random(1e6)

  setup(function()
    dir = helper.tmpdir()
    local policy = dir .. "/durable.lua"
    helper.write(policy, [[
return { name = "dur", durable = { ["d:*"] = 1, ["d2:*"] = 2 }, durable_timeout_ms = 400 }
]])
    d = daemon.start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "1" } }
  end)
  teardown(function() daemon.stop_all() end)

  it("acknowledges a matching write once a replica confirmed it, and only then", function()
    local w0 = figures(d.port)
    local key = "d:" .. run .. ":a"
    assert.same({ t = "status", v = "OK" }, daemon.call(d.port, { "SET", key, "1" }))
    local w1, u1 = figures(d.port)
    assert.is_true(w1 > w0, "no WAIT was sent for a durable write")
    assert.equal(0, u1)
    -- the replica has it already: WAIT counted it
    local replica = replica_of_key(key)
    assert.equal("1", node_cli(replica, "-c GET " .. key):match("[^\n]*"))
    -- a key no pattern matches costs no WAIT
    assert.same({ t = "status", v = "OK" }, daemon.call(d.port, { "SET", "p:" .. run, "1" }))
    assert.equal(w1, (figures(d.port)))
    -- an error reply is the answer: nothing was applied, nothing to confirm
    local r = daemon.call(d.port, { "INCR", key .. "x" }) -- a fresh key: 1
    assert.same({ t = "int", v = 1 }, r)
    daemon.call(d.port, { "SET", key .. "s", "str" })
    r = daemon.call(d.port, { "INCR", key .. "s" })
    assert.same({ t = "error", v = "ERR value is not an integer or out of range" }, r)
  end)

  it("covers a pipeline with a WAIT per connection and loop turn, not one per write", function()
    local c = assert(daemon.connect_served(d.port))
    local w0 = figures(d.port)
    local bytes = {}
    for i = 1, 200 do bytes[i] = daemon.resp({ "SET", "d:" .. run .. ":p" .. i, tostring(i) }) end
    c:send_raw(table.concat(bytes))
    for i = 1, 200 do
      local r, why = c:read(10)
      assert(r, "reply " .. i .. ": " .. tostring(why))
      assert.same({ t = "status", v = "OK" }, r)
    end
    c:close()
    local sent = figures(d.port) - w0
    assert.is_true(sent >= 1 and sent <= 30, sent .. " WAITs for 200 pipelined writes")
  end)

  it("answers NOTCONFIRMED when fewer replicas confirm than the policy asks", function()
    -- each master has one replica: 2 cannot be had
    local key = "d2:" .. run
    local t0 = now()
    local r = daemon.call(d.port, { "SET", key, "v" })
    assert.equal("error", r.t)
    assert.matches("^NOTCONFIRMED the write was applied on the master 127%.0%.0%.1:%d+ but not "
                   .. "confirmed by 2 replicas: WAIT counted 1 within 400 ms; it is lost if that "
                   .. "master fails before it replicates$", r.v)
    assert.is_true(now() - t0 >= 0.35, "WAIT did not wait its timeout")
    -- applied all the same, as the error says
    assert.same({ t = "bulk", v = "v" }, daemon.call(d.port, { "GET", key }))
    local _, unconfirmed = figures(d.port)
    assert.is_true(unconfirmed >= 1)
  end)

  it("answers NOTCONFIRMED while the replica is stopped, and OK once it is back", function()
    local key = "d:" .. run .. ":stall"
    local _, pid = replica_of_key(key)
    assert(pid, "no process id for the replica")
    sh("kill -STOP " .. pid)
    local ok, err = pcall(function()
      local r = daemon.call(d.port, { "SET", key, "1" })
      assert.equal("error", r.t)
      assert.matches("^NOTCONFIRMED .* not confirmed by 1 replica: WAIT counted 0 within 400 ms", r.v)
    end)
    sh("kill -CONT " .. pid)
    assert(ok, err)
    assert(wait_for(function()
      local r = daemon.call(d.port, { "SET", key, "2" })
      return r and r.t == "status" and r.v == "OK"
    end, 10), "durable writes are not confirmed again after the replica resumed")
  end)
end)
