-- slotgated under connection churn and idle clients (a light bench/churn.sh):
-- 5 000 connect/command/close cycles of five kinds, then 300 idle clients,
-- must leave no session open, the open files other than the upstream
-- connections as they were, and the RSS within a bound. Sockets through
-- LuaJIT's FFI (the specs have no socket library).
local ffi = require "ffi"
local bit = require "bit"
local helper = require "helper"

local q = helper.shell_quote

ffi.cdef [[
struct sg_spec_sockaddr_in { uint16_t family; uint8_t port[2]; uint8_t addr[4]; uint8_t zero[8]; };
struct sg_spec_timeval { long sec; long usec; };
struct sg_spec_linger { int onoff; int linger; };
int socket(int domain, int type, int protocol);
int connect(int fd, const void *addr, unsigned len);
long write(int fd, const void *buf, size_t n);
long read(int fd, void *buf, size_t n);
int close(int fd);
int setsockopt(int fd, int level, int name, const void *val, unsigned len);
]]

-- Linux's values
local AF_INET, SOCK_STREAM, SOL_SOCKET, SO_LINGER, SO_RCVTIMEO = 2, 1, 1, 13, 20

local CYCLES, IDLE = 5000, 300
-- RSS may grow this much over the baseline (kB): a leak of 1 kB a cycle
-- would be 5 MB. Not checked under AddressSanitizer (its quarantine holds
-- freed memory on purpose).
local RSS_SLACK_KB = 3072
local asan = (os.getenv("LD_PRELOAD") or ""):match("asan") ~= nil

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local function sleep(s) os.execute("sleep " .. s) end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. q(dir))

-- slotgated on helper.port(500), as slotgated_serve_spec starts it
local function start()
  local d = { port = helper.port(500), log = dir .. "/sg.log", pidfile = dir .. "/sg.pid" }
  local vars = {
    TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
    TYK_GW_STORAGE_ENABLECLUSTER = "true",
    SLOTGATE_LISTEN = "127.0.0.1:" .. d.port,
    SLOTGATE_THREADS = "2",
  }
  local parts = { "env" }
  for k, v in pairs(vars) do parts[#parts + 1] = q(k .. "=" .. v) end
  parts[#parts + 1] = q(helper.slotgated)
  os.execute(table.concat(parts, " ") .. " >" .. q(d.log) .. " 2>&1 & echo $! >" .. q(d.pidfile))
  d.pid = tonumber(slurp(d.pidfile))
  for _ = 1, 200 do
    if sh("redis-cli -p " .. d.port .. " PING"):match("PONG") then return d end
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then break end
    sleep(0.05)
  end
  error("slotgated did not start: " .. slurp(d.log))
end

local function stop(d)
  os.execute("kill -TERM " .. d.pid)
  for _ = 1, 300 do
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then return true end
    sleep(0.05)
  end
  os.execute("kill -KILL " .. d.pid)
  return false
end

-- ---- a tiny blocking client ------------------------------------------------------

local addr = ffi.new("struct sg_spec_sockaddr_in")
local buf = ffi.new("char[4096]")

local function connect(port)
  local fd = ffi.C.socket(AF_INET, SOCK_STREAM, 0)
  assert(fd >= 0, "socket() failed")
  addr.family = AF_INET
  addr.port[0], addr.port[1] = bit.rshift(port, 8), bit.band(port, 255)
  addr.addr[0], addr.addr[1], addr.addr[2], addr.addr[3] = 127, 0, 0, 1
  assert(ffi.C.connect(fd, addr, ffi.sizeof(addr)) == 0, "cannot connect to slotgated on " .. port)
  local tv = ffi.new("struct sg_spec_timeval", 10, 0)
  ffi.C.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, ffi.sizeof(tv))
  return fd
end

local function send(fd, s)
  assert(ffi.C.write(fd, s, #s) == #s, "short write")
end

-- One reply (a line, or a bulk's header and body): its text, or nil.
local function reply(fd)
  local got = ""
  while true do
    local n = tonumber(ffi.C.read(fd, buf, 4096))
    if n <= 0 then return nil end
    got = got .. ffi.string(buf, n)
    local len = got:match("^%$(%-?%d+)\r\n")
    if len then
      len = tonumber(len)
      if len < 0 or #got >= #("$" .. len .. "\r\n") + len + 2 then return got end
    elseif got:sub(-2) == "\r\n" then
      return got
    end
  end
end

local function close_rst(fd)
  local l = ffi.new("struct sg_spec_linger", 1, 0)
  ffi.C.setsockopt(fd, SOL_SOCKET, SO_LINGER, l, ffi.sizeof(l))
  ffi.C.close(fd)
end

local function resp(...)
  local t = { "*" .. select("#", ...) .. "\r\n" }
  for i = 1, select("#", ...) do
    local a = tostring(select(i, ...))
    t[#t + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(t)
end

local PING = resp("PING")

-- One connect/command/close cycle, kind i % 5 (as bench/churn.c): PING and a
-- close; SET; GET and a close with RST; SET and a close before the reply;
-- half a request and a close. Returns an unexpected reply, or nil.
local function cycle(port, i)
  local fd, key, kind, r = connect(port), "churn:" .. i % 100, i % 5, nil
  if kind == 0 then
    send(fd, PING)
    r = reply(fd)
    ffi.C.close(fd)
    return r ~= "+PONG\r\n" and ("PING: " .. tostring(r)) or nil
  elseif kind == 1 then
    send(fd, resp("SET", key, "v"))
    r = reply(fd)
    ffi.C.close(fd)
    return r ~= "+OK\r\n" and ("SET: " .. tostring(r)) or nil
  elseif kind == 2 then
    send(fd, resp("GET", key))
    r = reply(fd)
    close_rst(fd)
    return (r == nil or r:sub(1, 1) == "-") and ("GET: " .. tostring(r)) or nil
  elseif kind == 3 then
    send(fd, resp("SET", key, "w"))
    if i % 10 == 3 then close_rst(fd) else ffi.C.close(fd) end
  else
    send(fd, "*3\r\n$3\r\nSET\r\n$5\r\nchu")
    ffi.C.close(fd)
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
  for _ = 1, 200 do
    f = files(d)
    if f.client == 0 and f.other == base.other then return f end
    sleep(0.05)
  end
  return f
end

describe("slotgated under connection churn", function()
  local d, base, rss0

  setup(function()
    d = start()
    -- the warm-up: what is made once (upstream connections, arenas)
    for i = 0, 499 do cycle(d.port, i) end
    base = settled(d, files(d))
    rss0 = rss_kb(d.pid)
  end)
  teardown(function()
    if d then stop(d) end
    os.execute("rm -rf " .. q(dir))
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
      send(fds[i], PING)
    end
    for i = 1, IDLE do assert.equal("+PONG\r\n", reply(fds[i])) end
    assert.equal(IDLE, files(d).client)
    sleep(1)
    for i = 1, IDLE do
      if i % 2 == 0 then close_rst(fds[i]) else ffi.C.close(fds[i]) end
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
    assert.equal("PONG\n", sh("redis-cli -p " .. d.port .. " PING"))
  end)
end)
