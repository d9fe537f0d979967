-- slotgated's request-size limit and a dry-run policy, each checked by what an
-- operator sees: the client's reply and connection, the log line, the counter.
local helper = require "helper"
local daemon = require "daemon"

local sh, wait_for = helper.sh, helper.wait_for
local start, stop, cli = daemon.start, daemon.stop, daemon.cli
local dir = daemon.dir

daemon.ports_from(841)

-- HTTP GET of the metrics endpoint: its body.
local function scrape(port)
  return sh("curl -s -m 10 http://127.0.0.1:" .. port .. "/metrics")
end

-- The value of one sample of a scrape, a number or nil.
local function sample(text, name)
  local v = text:match("\n" .. name .. " (%d+)\n")
  return v and tonumber(v)
end

describe("slotgated max_request_bytes", function()
  teardown(daemon.stop_all)

  it("answers a request over the limit with an error naming it, closes only that client",
     function()
    local d = start{ env = { SLOTGATE_MAXREQUESTBYTES = "2048" } }
    finally(function() stop(d) end)
    daemon.cluster_cli("DEL lim:k")
    local other = assert(daemon.connect(d.port))
    other:send({ "PING" })
    assert.same({ t = "status", v = "PONG" }, other:read())
    local c = assert(daemon.connect(d.port))
    -- under the limit (about 1900 bytes): served
    c:send({ "SET", "lim:k", string.rep("a", 1900) })
    assert.same({ t = "status", v = "OK" }, c:read())
    -- over it in four arguments of 600 bytes each: the error naming the limit, then
    -- the connection goes
    local v = string.rep("b", 600)
    c:send({ "MSET", "lim:k", v, "lim:k", v, "lim:k", v, "lim:k", v })
    assert.same({ t = "error", v = "ERR Protocol error: request bigger than 2048 bytes" }, c:read())
    local r, why = c:read(5)
    assert.is_nil(r)
    assert.equal("closed", why)
    c:close()
    -- one argument over it: refused as Redis refuses a bulk over proto-max-bulk-len
    c = assert(daemon.connect(d.port))
    c:send({ "SET", "lim:k", string.rep("c", 2100) })
    assert.same({ t = "error", v = "ERR Protocol error: invalid bulk length" }, c:read())
    r, why = c:read(5)
    assert.is_nil(r)
    assert.equal("closed", why)
    c:close()
    -- nothing of it was sent on, and the other client is served still
    assert.equal(string.rep("a", 1900) .. "\n", daemon.cluster_cli("GET lim:k"))
    other:send({ "STRLEN", "lim:k" })
    assert.same({ t = "int", v = 1900 }, other:read())
    other:close()
    daemon.cluster_cli("DEL lim:k")
  end)
end)

describe("slotgated dry-run policy", function()
  teardown(daemon.stop_all)

  it("changes nothing, logs each change it would make and counts it", function()
    local mport = daemon.port()
    local pol = helper.write(dir .. "/dry.lua", [[
return {
  name = "rehearsal",
  dry_run = true,
  prefix = "dry:",
  deny_commands = { "GET" },
}
]])
    local d = start{ env = { SLOTGATE_POLICY = pol, SLOTGATE_METRICS = "127.0.0.1:" .. mport } }
    finally(function() stop(d) end)
    daemon.cluster_cli("DEL dryk dry:dryk")
    local events = "slotgate_policy_dry_run_events_total"
    local before = wait_for(function() return sample(scrape(mport), events) end)
    assert.equal(0, before)
    -- the key is not rewritten and GET is not refused
    assert.equal("OK\n", cli(d, "SET dryk v1"))
    assert.equal("v1\n", cli(d, "GET dryk"))
    assert.equal("v1\n", daemon.cluster_cli("GET dryk"))
    assert.equal("0\n", daemon.cluster_cli("EXISTS dry:dryk"))
    -- what it would have done, at the info level, with the script's name
    local log = daemon.wait_log(d, "would deny GET")
    assert.matches("info: policy rehearsal (dry run): would rewrite key dryk to dry:dryk\n", log,
      1, true)
    assert.matches("info: policy rehearsal (dry run): would deny GET\n", log, 1, true)
    local _, n = log:gsub("%(dry run%): would ", "")
    assert.equal(3, n) -- SET: the rewrite; GET: the refusal and the rewrite
    -- and counted: one per change
    assert.equal(3, sample(scrape(mport), events))
    daemon.cluster_cli("DEL dryk")
  end)
end)
