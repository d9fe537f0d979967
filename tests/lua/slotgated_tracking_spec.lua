-- CLIENT TRACKING answered by slotgated for its own sessions (docs/CACHE.md,
-- "Tracking for clients"): a session is told when a key it read changes,
-- whoever changed it — here, always a write made straight on the node, past
-- slotgated — as a node would tell it: RESP3 invalidate pushes, RESP2
-- messages on __redis__:invalidate to the REDIRECT target; BCAST with
-- prefixes, OPTIN, NOLOOP, OFF; and the replies of CLIENT TRACKINGINFO,
-- GETREDIR and CACHING as a Redis 7.0 node gives them.
local helper = require "helper"
local daemon = require "daemon"
local trk = require "tracking_helper"

local now = helper.now

daemon.ports_from(931)

local call, set_direct, next_invalidation = trk.call, trk.set_direct, trk.next_invalidation

-- A RESP3 session with tracking on (options after ON).
local function tracking_session(port, ...) return trk.session(port, nil, ...) end

describe("slotgated's CLIENT TRACKING", function()
  local d, warm

  setup(function()
    d = daemon.start{ env = { SLOTGATE_THREADS = "1" } }
    -- the invalidation connections open with the first tracking session:
    -- wait until every node's is ready, so the reads below are tracked from
    -- the first (a read before that gets a flush once they are)
    warm = tracking_session(d.port)
    call(warm, "GET", "trk:warm")
    trk.wait_trackers(warm, 3)
  end)
  teardown(function()
    if warm then warm:close() end
    daemon.stop_all()
  end)

  it("pushes an invalidation to a RESP3 session when a key it read is changed on the node", function()
    local c = tracking_session(d.port)
    finally(function() c:close() end)
    local delays = {}
    for i = 1, 10 do
      local key = "trk:k" .. i
      call(c, "GET", key)
      local t0 = now()
      set_direct(key, "v" .. i)
      local got = next_invalidation(c, 5, true)
      assert.same({ key }, got)
      delays[#delays + 1] = (now() - t0) * 1000
      -- told once: a second change without a new read says nothing
      set_direct(key, "w" .. i)
      assert.is_nil(next_invalidation(c, 0.1))
    end
    table.sort(delays)
    print(string.format("\n  invalidation after a direct SET (redis-cli included): median %.1f ms,"
                        .. " max %.1f ms", delays[math.floor(#delays / 2) + 1], delays[#delays]))
  end)

  it("BCAST tells of every key under its prefixes, read or not", function()
    local c = tracking_session(d.port, "BCAST", "PREFIX", "trkb:", "PREFIX", "trkc:")
    finally(function() c:close() end)
    set_direct("trkx:1", "x") -- no prefix of the session's: nothing
    set_direct("trkb:1", "x")
    assert.same({ "trkb:1" }, next_invalidation(c, 5, true))
    set_direct("trkc:2", "x")
    assert.same({ "trkc:2" }, next_invalidation(c, 5, true))
    local info = call(c, "CLIENT", "TRACKINGINFO")
    assert.equal("map", info.t)
    assert.equal("on", info.v[2].v[1].v)
    assert.equal("bcast", info.v[2].v[2].v)
    assert.equal(2, #info.v[6].v)
  end)

  it("OPTIN tracks only the read after CLIENT CACHING yes", function()
    local c = tracking_session(d.port, "OPTIN")
    finally(function() c:close() end)
    call(c, "GET", "trk:optin1") -- not tracked
    assert.equal("OK", call(c, "CLIENT", "CACHING", "yes").v)
    call(c, "GET", "trk:optin2") -- tracked
    call(c, "GET", "trk:optin3") -- not: CACHING held for one command
    set_direct("trk:optin1", "1")
    set_direct("trk:optin3", "1")
    set_direct("trk:optin2", "1")
    assert.same({ "trk:optin2" }, next_invalidation(c, 5, true))
    assert.is_nil(next_invalidation(c, 0.2))
  end)

  it("NOLOOP does not tell a session of its own write", function()
    local c = tracking_session(d.port, "NOLOOP")
    local other = tracking_session(d.port)
    finally(function() c:close(); other:close() end)
    call(c, "GET", "trk:noloop")
    call(other, "GET", "trk:noloop")
    assert.equal("OK", call(c, "SET", "trk:noloop", "mine").v)
    assert.same({ "trk:noloop" }, next_invalidation(other, 5, true))
    assert.is_nil(next_invalidation(c, 0.2))
    -- a read again, a change by someone else: told
    call(c, "GET", "trk:noloop")
    set_direct("trk:noloop", "theirs")
    assert.same({ "trk:noloop" }, next_invalidation(c, 5, true))
  end)

  it("OFF stops the pushes", function()
    local c = tracking_session(d.port)
    finally(function() c:close() end)
    call(c, "GET", "trk:off")
    assert.equal("OK", call(c, "CLIENT", "TRACKING", "OFF").v)
    set_direct("trk:off", "1")
    assert.is_nil(next_invalidation(c, 0.3))
    assert.equal(-1, call(c, "CLIENT", "GETREDIR").v)
  end)

  it("RESP2 with REDIRECT sends messages to a session subscribed to __redis__:invalidate", function()
    local sub = assert(daemon.connect_served(d.port))
    local c = assert(daemon.connect_served(d.port))
    finally(function() sub:close(); c:close() end)
    local id = call(sub, "CLIENT", "ID").v
    assert.equal("subscribe", call(sub, "SUBSCRIBE", "__redis__:invalidate").v[1].v)
    assert.equal("OK", call(c, "CLIENT", "TRACKING", "ON", "REDIRECT", tostring(id)).v)
    assert.equal(id, call(c, "CLIENT", "GETREDIR").v)
    call(c, "GET", "trk:redir")
    set_direct("trk:redir", "1")
    assert.same({ "trk:redir" }, next_invalidation(sub, 5, true))
    assert.is_nil(next_invalidation(c, 0.1)) -- the reader itself gets nothing
  end)

  it("answers the options' errors as Redis 7.0", function()
    local c = assert(daemon.connect_served(d.port))
    finally(function() c:close() end)
    local cases = {
      { { "CLIENT", "TRACKING", "ON", "PREFIX", "a" },
        "ERR PREFIX option requires BCAST mode to be enabled" },
      { { "CLIENT", "TRACKING", "ON", "BCAST", "OPTIN" },
        "ERR OPTIN and OPTOUT are not compatible with BCAST" },
      { { "CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT" }, "ERR You can't use both OPTIN and OPTOUT" },
      { { "CLIENT", "TRACKING", "ON", "FOO" }, "ERR syntax error" },
      { { "CLIENT", "TRACKING", "MAYBE" }, "ERR syntax error" },
      { { "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a" },
        "ERR Prefix 'ab' overlaps with another provided prefix 'a'. Prefixes for a single client "
          .. "must not overlap." },
      { { "CLIENT", "CACHING", "yes" }, "ERR CLIENT CACHING can be called only when the client is "
          .. "in tracking mode with OPTIN or OPTOUT mode enabled" },
    }
    for _, case in ipairs(cases) do
      local r = call(c, table.unpack(case[1]))
      assert.equal("error", r.t, table.concat(case[1], " "))
      assert.equal(case[2], r.v)
    end
    local r = call(c, "CLIENT", "TRACKING", "ON", "REDIRECT", "987654321")
    assert.equal("error", r.t)
    assert.matches("^ERR The client ID you want redirect to does not exist", r.v)
    assert.equal("OK", call(c, "CLIENT", "TRACKING", "ON", "OPTIN").v)
    r = call(c, "CLIENT", "CACHING", "no")
    assert.equal("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.", r.v)
    assert.equal(0, call(c, "CLIENT", "GETREDIR").v)
    -- TRACKINGINFO as a node gives it (RESP2 here)
    assert.equal("OK", call(c, "CLIENT", "TRACKING", "ON", "OPTIN", "NOLOOP").v)
    assert.equal("OK", call(c, "CLIENT", "CACHING", "yes").v)
    assert.same({ "flags", { "on", "optin", "caching-yes", "noloop" }, "redirect", 0, "prefixes", {} },
                daemon.plain(call(c, "CLIENT", "TRACKINGINFO")))
    assert.equal("OK", call(c, "CLIENT", "TRACKING", "OFF").v)
    assert.same({ "flags", { "off" }, "redirect", -1, "prefixes", {} },
                daemon.plain(call(c, "CLIENT", "TRACKINGINFO")))
  end)
end)
