-- slotgated_busy_spec.lua — a node busy with a long script, through slotgated:
-- SCRIPT KILL and FUNCTION KILL reach it at once (on connections of their
-- own, never behind the script), the script's client gets Redis's "killed"
-- error, other clients' commands get Redis's BUSY error as they would
-- directly (not a gateway timeout), and the node serves again after.
-- busy-reply-threshold is lowered on the masters for the spec (100 ms).
local helper = require "helper"
local daemon = require "daemon"

local now, wait_for = helper.now, helper.wait_for
local node_cli = daemon.node_cli

daemon.ports_from(791)

local MASTERS = {}
for addr in helper.server_var("SG_TEST_CLUSTER_MASTERS"):gmatch("[^,]+") do
  MASTERS[#MASTERS + 1] = addr
end

local function on_masters(args)
  for _, addr in ipairs(MASTERS) do node_cli(addr, args) end
end

describe("slotgated in front of a node busy with a script", function()
  local d
  local key = "busy:" .. os.time() .. ":" .. math.random(1e6)

  setup(function()
    on_masters("CONFIG SET busy-reply-threshold 100")
    -- one worker: the script's client and the others share its gateway, so
    -- a script must hold back only its own session's commands of its slot
    d = daemon.start{ env = { SLOTGATE_THREADS = "1" } }
  end)
  teardown(function()
    daemon.stop_all()
    on_masters("SCRIPT KILL") -- whatever a failure left running
    on_masters("FUNCTION KILL")
    on_masters("CONFIG SET busy-reply-threshold 5000")
    on_masters("FUNCTION DELETE sgbusy")
  end)

  local function busy_then_kill(start_cmd, kill_cmd, killed_pattern)
    local runner = assert(daemon.connect_served(d.port))
    runner:send(start_cmd)
    -- the script holds its node: another client's command to it is told
    -- BUSY by the node, through slotgated, once past the threshold
    local busy
    assert(wait_for(function()
      local r = daemon.call(d.port, { "GET", key }, 3)
      if r and r.t == "error" and r.v:match("^BUSY") then busy = r.v return true end
    end, 10), "no BUSY reply from the busy node")
    assert.matches("^BUSY Redis is busy running a script", busy)
    -- the kill reaches the node at once, and says OK
    local t0 = now()
    local k = daemon.call(d.port, kill_cmd, 5)
    local took = now() - t0
    assert.same({ t = "status", v = "OK" }, k)
    assert(took < 1, string.format("%s took %.2f s", kill_cmd[1], took))
    -- the script's own client is told it was killed, as Redis tells it
    local r, why = runner:read(5)
    assert(r, "the script's client got nothing: " .. tostring(why))
    assert.equal("error", r.t)
    assert.matches(killed_pattern, r.v)
    runner:close()
    -- and the node serves again, through the same gateway
    assert.same({ t = "status", v = "OK" }, daemon.call(d.port, { "SET", key, "after" }))
    assert.same({ t = "bulk", v = "after" }, daemon.call(d.port, { "GET", key }))
  end

  it("sends SCRIPT KILL past a looping EVAL", function()
    busy_then_kill({ "EVAL", "while true do end", "1", key }, { "SCRIPT", "KILL" },
                   "Script killed by user")
  end)

  it("sends FUNCTION KILL past a looping FCALL", function()
    assert.same({ t = "bulk", v = "sgbusy" }, daemon.call(d.port, {
      "FUNCTION", "LOAD", "REPLACE",
      "#!lua name=sgbusy\nredis.register_function{function_name='sgbusy_loop', " ..
      "callback=function(keys, args) while true do end end, flags={'no-writes'}}" }))
    busy_then_kill({ "FCALL_RO", "sgbusy_loop", "1", key }, { "FUNCTION", "KILL" },
                   "Script killed by user")
  end)

  it("answers NOTBUSY when no node runs a script", function()
    local r = daemon.call(d.port, { "SCRIPT", "KILL" })
    assert.equal("error", r.t)
    assert.matches("^NOTBUSY", r.v)
  end)

  it("refuses SHUTDOWN, saying why", function()
    local r = daemon.call(d.port, { "SHUTDOWN", "NOSAVE" })
    assert.equal("error", r.t)
    assert.matches("SHUTDOWN", r.v)
    assert.same({ t = "status", v = "PONG" }, daemon.call(d.port, { "PING" }))
  end)
end)
