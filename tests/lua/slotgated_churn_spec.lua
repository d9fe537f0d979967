-- slotgated under connection churn and idle clients (a light bench/churn.sh):
-- 5 000 connect/command/close cycles of five kinds, then 300 idle clients,
-- must leave no session open, the open files other than the upstream
-- connections as they were, and the RSS within a bound. The clients are
-- daemon.lua's FFI connections (in this process: hundreds held open at once,
-- closed with a FIN or a reset).
local helper = require "helper"
local daemon = require "daemon"

local q, slurp, sh, wait_for = helper.shell_quote, helper.slurp, helper.sh, helper.wait_for
local plain = daemon.plain

local CYCLES, IDLE = 5000, 300
-- RSS may grow this much over the baseline (kB): a leak of 1 kB a cycle
-- would be 5 MB. Not checked under AddressSanitizer (its quarantine holds
-- freed memory on purpose).
local RSS_SLACK_KB = 3072
local asan = os.getenv("SG_SANITIZED") == "1"

daemon.ports_from(500)

local function connect(port)
  return assert(daemon.connect(port))
end

-- One connect/command/close cycle, kind i % 5 (as bench/churn.c): PING and a
-- close; SET; GET and a close with RST; SET and a close before the reply;
-- half a request and a close. Returns an unexpected reply, or nil.
local function cycle(port, i)
  local c, key, kind, r = connect(port), "churn:" .. i % 100, i % 5, nil
  if kind == 0 then
    c:send({ "PING" })
    r = plain(c:read())
    c:close()
    return r ~= "+PONG" and ("PING: " .. tostring(r)) or nil
  elseif kind == 1 then
    c:send({ "SET", key, "v" })
    r = plain(c:read())
    c:close()
    return r ~= "+OK" and ("SET: " .. tostring(r)) or nil
  elseif kind == 2 then
    c:send({ "GET", key })
    r = c:read()
    c:close_rst()
    return (r == nil or r.t == "error") and ("GET: " .. tostring(plain(r))) or nil
  elseif kind == 3 then
    c:send({ "SET", key, "w" })
    if i % 10 == 3 then c:close_rst() else c:close() end
  else
    c:send_raw("*3\r\n$3\r\nSET\r\n$5\r\nchu")
    c:close()
  end
end

-- ---- what slotgated holds ----------------------------------------------------------

local function rss_kb(pid)
  return tonumber(slurp("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)"))
end

-- Its open files: client sessions (TCP on its port), upstream connections
-- (other TCP: the pools, which may keep what they opened), and the rest.
local function files(d)
  local kind = {}
  for line in slurp("/proc/" .. d.pid .. "/net/tcp"):gmatch("[^\n]+") do
    local lport, st, inode = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:%x+%s+(%x+)%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
    if lport then
      kind[inode] = st == "0A" and "listen" or tonumber(lport, 16) == d.port and "client" or "upstream"
    end
  end
  local f = { all = 0, client = 0, upstream = 0, other = 0 }
  for line in sh("ls -l /proc/" .. d.pid .. "/fd"):gmatch("[^\n]+") do
    local link = line:match(" %d+ %-> (.*)$")
    local k = link and kind[link:match("^socket:%[(%d+)%]$") or ""]
    if link then f.all = f.all + 1 end
    if k == "client" or k == "upstream" then f[k] = f[k] + 1 else f.other = f.other + 1 end
  end
  return f
end

-- Waits (up to 10 s) until no session is left and the rest is as in base.
local function settled(d, base)
  local f
  wait_for(function()
    f = files(d)
    return f.client == 0 and f.other == base.other
  end)
  return f
end

describe("slotgated under connection churn", function()
  local d, base, rss0

  setup(function()
    d = daemon.start{ unix = false }
    -- the warm-up: what is made once (upstream connections, arenas)
    for i = 0, 499 do cycle(d.port, i) end
    base = settled(d, files(d))
    rss0 = rss_kb(d.pid)
  end)
  teardown(function()
    daemon.stop_all()
    os.execute("rm -rf " .. q(daemon.dir))
  end)

  it("closes every session of " .. CYCLES .. " connect/command/close cycles", function()
    local bad = {}
    for i = 0, CYCLES - 1 do
      local err = cycle(d.port, i)
      if err and #bad < 5 then bad[#bad + 1] = err end
    end
    assert.same({}, bad)
    local f = settled(d, base)
    assert.equal(0, f.client)
    assert.equal(base.other, f.other)
    assert.is_true(f.upstream <= 64, "upstream connections: " .. f.upstream)
    local rss = rss_kb(d.pid)
    if not asan then
      assert.is_true(rss <= rss0 + RSS_SLACK_KB,
        ("RSS %d kB after the cycles, %d kB before"):format(rss, rss0))
    end
  end)

  it("lets " .. IDLE .. " idle clients come and go", function()
    local fds = {}
    for i = 1, IDLE do
      fds[i] = connect(d.port)
      fds[i]:send({ "PING" })
    end
    for i = 1, IDLE do assert.equal("+PONG", plain(fds[i]:read())) end
    assert.equal(IDLE, files(d).client)
    helper.sleep(1) -- idle: the scenario, not a wait for anything
    for i = 1, IDLE do
      if i % 2 == 0 then fds[i]:close_rst() else fds[i]:close() end
    end
    local f = settled(d, base)
    assert.equal(0, f.client)
    assert.equal(base.other, f.other)
    local rss = rss_kb(d.pid)
    if not asan then
      assert.is_true(rss <= rss0 + RSS_SLACK_KB,
        ("RSS %d kB after the idle clients, %d kB before"):format(rss, rss0))
    end
    -- and it still serves
    assert.equal("PONG\n", daemon.cli(d, "PING"))
  end)
end)
