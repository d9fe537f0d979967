-- slotgated's request-size limit, checked by what an operator sees: the client's
-- reply and connection.
local helper = require "helper"
local daemon = require "daemon"

local start, stop, cli = daemon.start, daemon.stop, daemon.cli
local dir = daemon.dir

daemon.ports_from(841)

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
