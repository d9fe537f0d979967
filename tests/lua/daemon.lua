-- daemon.lua — what the specs of slotgated (tests/lua/slotgated_*_spec.lua)
-- share: starting the daemon in front of the harness's cluster and stopping
-- it by its pid, redis-cli against it and against the nodes, and one raw RESP
-- client (LuaJIT's FFI sockets) for what redis-cli cannot do: hold
-- connections open, read nothing or close with a reset, stay subscribed,
-- talk on several connections at once, send what is not RESP.
--
--   local daemon = require "daemon"
--   daemon.ports_from(600)                     -- this spec's ports: base+600..
--   local d = daemon.start{ env = { SLOTGATE_POLICY = path } }
--   daemon.cli(d, "GET k")                     -- "value\n"
--   daemon.call(d.port, { "GET", "k" })        -- {t = "bulk", v = "value"}
--   daemon.stop(d)                             -- true: it went on SIGTERM
--
-- Each spec file gets its own copy of this module (busted insulates files),
-- so daemon.dir, the port counter and the list of started daemons are the
-- spec's own.
local ffi = require "ffi"
local bit = require "bit"
local helper = require "helper"

local q, slurp, sh = helper.shell_quote, helper.slurp, helper.sh
local wait_for, now = helper.wait_for, helper.now
local concat, tonumber, tostring, type = table.concat, tonumber, tostring, type

local daemon = { _VERSION = "1" }

-- Where this spec's daemons keep their logs, pid files and Unix sockets.
daemon.dir = helper.tmpdir()

-- How long start() waits for the daemon to answer, and stop() for it to go:
-- generous, the machines that run the suite are often loaded.
local START_SECS, STOP_SECS = 20, 15

-- ---- ports -------------------------------------------------------------------

local last_port = helper.port(500) - 1

-- Makes the next port daemon.port() gives base+offset (see helper.port:
-- offsets 500..999 are the specs'; each spec has a range of its own).
function daemon.ports_from(offset)
  last_port = helper.port(offset) - 1
end

-- A port nobody else in the suite uses: the next of this spec's range.
function daemon.port()
  last_port = last_port + 1
  return last_port
end

-- ---- the raw RESP client -----------------------------------------------------

-- busted loads every spec file into one Lua state: declare the C bits once.
if not pcall(ffi.typeof, "struct sg_daemon_pollfd") then
  ffi.cdef [[
    struct sg_daemon_sockaddr_in { uint16_t family; uint8_t port[2]; uint8_t addr[4]; uint8_t zero[8]; };
    struct sg_daemon_pollfd { int fd; short events; short revents; };
    struct sg_daemon_timeval { long sec; long usec; };
    struct sg_daemon_linger { int onoff; int linger; };
    int socket(int domain, int type, int protocol);
    int connect(int fd, const void *addr, unsigned len);
    int setsockopt(int fd, int level, int name, const void *val, unsigned len);
    long send(int fd, const void *buf, size_t n, int flags);
    long recv(int fd, void *buf, size_t n, int flags);
    int poll(struct sg_daemon_pollfd *fds, unsigned long n, int timeout);
    int close(int fd);
  ]]
end
local C = ffi.C

-- Linux's values
local AF_INET, SOCK_STREAM, SOL_SOCKET = 2, 1, 1
local SO_RCVBUF, SO_SNDTIMEO, SO_LINGER = 8, 21, 13
local POLLIN, MSG_NOSIGNAL, EINTR = 1, 0x4000, 4

local chunk = ffi.new("char[65536]")
local pfd = ffi.new("struct sg_daemon_pollfd[1]")

-- args (a list; numbers are sent as their text) as one RESP command.
function daemon.resp(args)
  local out = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return concat(out)
end

-- Parses one reply from buf at pos: the reply and the position after it, or
-- nil when buf holds only part of it. Replies are tables {t = "status" |
-- "error" | "int" | "bulk" | "nil" | "array", v = the value; an array's v is
-- a list of replies}; RESP3's: "double" (v the text), "bool", "bignum" (the
-- digits), "verbatim" (the text after "txt:"), "map" (v a list: key, value
-- ...), "set", "push" (lists), and "attr" ahead of a reply is skipped.
local AGGREGATES = { ["*"] = "array", ["~"] = "set", [">"] = "push", ["%"] = "map" }
local function parse(buf, pos)
  local eol = buf:find("\r\n", pos, true)
  if not eol then return nil end
  local kind, line = buf:sub(pos, pos), buf:sub(pos + 1, eol - 1)
  local after = eol + 2
  if kind == "+" then return { t = "status", v = line }, after end
  if kind == "-" then return { t = "error", v = line }, after end
  if kind == ":" then return { t = "int", v = tonumber(line) }, after end
  if kind == "_" then return { t = "nil" }, after end
  if kind == "#" then return { t = "bool", v = line == "t" }, after end
  if kind == "," then return { t = "double", v = line }, after end
  if kind == "(" then return { t = "bignum", v = line }, after end
  if kind == "$" or kind == "!" or kind == "=" then
    local n = tonumber(line)
    if n < 0 then return { t = "nil" }, after end
    if #buf < after + n + 1 then return nil end
    local v = buf:sub(after, after + n - 1)
    if kind == "!" then return { t = "error", v = v }, after + n + 2 end
    if kind == "=" then return { t = "verbatim", v = v:sub(5) }, after + n + 2 end
    return { t = "bulk", v = v }, after + n + 2
  end
  if AGGREGATES[kind] or kind == "|" then
    local n = tonumber(line)
    if n < 0 then return { t = "nil" }, after end
    if kind == "%" or kind == "|" then n = 2 * n end
    local arr = {}
    for i = 1, n do
      local v
      v, after = parse(buf, after)
      if not v then return nil end
      arr[i] = v
    end
    if kind == "|" then return parse(buf, after) end -- the reply it decorates
    return { t = AGGREGATES[kind], v = arr }, after
  end
  error("not RESP: " .. buf:sub(pos, pos + 40), 0)
end

-- A reply as plain Lua values: status "+OK", error "-ERR ...", integer a
-- number, bulk a string, nil "(nil)", array a list of those; nil stays nil.
function daemon.plain(r)
  if r == nil then return nil end
  if r.t == "status" then return "+" .. r.v end
  if r.t == "error" then return "-" .. r.v end
  if r.t == "nil" then return "(nil)" end
  if r.t == "array" or r.t == "set" or r.t == "push" or r.t == "map" then
    local out = {}
    for i, e in ipairs(r.v) do out[i] = daemon.plain(e) end
    return out
  end
  return r.v
end

local Conn = {}
Conn.__index = Conn

-- A connection to 127.0.0.1:port, or nil and why. opts.rcvbuf: a small
-- receive buffer (bytes), for a client that reads slowly. A send that
-- cannot go on for 10 s fails.
function daemon.connect(port, opts)
  local fd = C.socket(AF_INET, SOCK_STREAM, 0)
  if fd < 0 then return nil, "socket: errno " .. ffi.errno() end
  if opts and opts.rcvbuf then
    local size = ffi.new("int[1]", opts.rcvbuf)
    C.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, ffi.sizeof("int"))
  end
  local tv = ffi.new("struct sg_daemon_timeval", 10, 0)
  C.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, ffi.sizeof(tv))
  local sa = ffi.new("struct sg_daemon_sockaddr_in")
  sa.family = AF_INET
  sa.port[0], sa.port[1] = bit.rshift(port, 8), bit.band(port, 255)
  sa.addr[0], sa.addr[1], sa.addr[2], sa.addr[3] = 127, 0, 0, 1
  if C.connect(fd, sa, ffi.sizeof(sa)) ~= 0 then
    local e = ffi.errno()
    C.close(fd)
    return nil, "connect to 127.0.0.1:" .. port .. ": errno " .. e
  end
  return setmetatable({ fd = fd, port = port, buf = "" }, Conn)
end

-- Sends bytes as they are (half a command, an inline command, garbage);
-- raises an error when they cannot all go.
function Conn:send_raw(bytes)
  local p, off = ffi.cast("const char *", bytes), 0
  while off < #bytes do
    local n = tonumber(C.send(self.fd, p + off, #bytes - off, MSG_NOSIGNAL))
    if n < 0 then
      local e = ffi.errno()
      if e ~= EINTR then error("send to 127.0.0.1:" .. self.port .. ": errno " .. e, 2) end
    else
      off = off + n
    end
  end
end

-- Sends one command: args, a list.
function Conn:send(args)
  self:send_raw(daemon.resp(args))
end

-- Reads the next reply within timeout seconds (default 10; 0: only what is
-- received or readable without waiting): the reply, or nil and "timeout" or
-- "closed" (the peer closed or reset the connection).
function Conn:read(timeout)
  local deadline = now() + (timeout or 10)
  while true do
    local r, after = parse(self.buf, 1)
    if r then
      self.last_bytes = self.buf:sub(1, after - 1)
      self.buf = self.buf:sub(after)
      return r
    end
    local left = deadline - now()
    if left <= 0 and timeout ~= 0 then return nil, "timeout" end
    pfd[0].fd, pfd[0].events, pfd[0].revents = self.fd, POLLIN, 0
    local ready = C.poll(pfd, 1, math.max(0, math.ceil(left * 1000)))
    if ready == 0 then return nil, "timeout" end
    if ready > 0 then
      local n = tonumber(C.recv(self.fd, chunk, 65536, 0))
      if n == 0 then return nil, "closed" end
      if n > 0 then
        self.buf = self.buf .. ffi.string(chunk, n)
      elseif ffi.errno() ~= EINTR then
        return nil, "closed" -- ECONNRESET: closed with data unread
      end
    elseif ffi.errno() ~= EINTR then
      error("poll: errno " .. ffi.errno())
    end
  end
end

-- The next reply if it is already here: received, or readable without
-- waiting (poll with a zero timeout); else nil and "nothing".
function Conn:read_now()
  local r, why = self:read(0)
  if why == "timeout" then return nil, "nothing" end
  return r, why
end

-- As read, but the reply's bytes as they came (a differential spec compares
-- them byte for byte), and the parsed reply.
function Conn:read_bytes(timeout)
  local r, why = self:read(timeout)
  if not r then return nil, why end
  local bytes = self.last_bytes
  return bytes, r
end

function Conn:close()
  if self.fd >= 0 then C.close(self.fd) end
  self.fd = -1
end

-- Closes with a reset (SO_LINGER 0) instead of a FIN.
function Conn:close_rst()
  if self.fd < 0 then return end
  local l = ffi.new("struct sg_daemon_linger", 1, 0)
  C.setsockopt(self.fd, SOL_SOCKET, SO_LINGER, l, ffi.sizeof(l))
  self:close()
end

-- A connection to port that PING has been answered on: tried again while
-- the answer is an error (a daemon with a low max_clients that has not yet
-- seen an earlier client, its own start-up probe say, go). Nil and why
-- when none is answered within 10 s.
function daemon.connect_served(port)
  local why
  local c = wait_for(function()
    local conn, err = daemon.connect(port)
    if not conn then why = err return nil end
    conn:send({ "PING" })
    local r, e = conn:read()
    if r and r.v == "PONG" then return conn end
    why = r and r.v or e
    conn:close()
  end)
  if c then return c end
  return nil, why
end

-- Sends args on a new connection to port and reads one reply within timeout
-- seconds (default 10): the reply, or nil and why ("timeout", "closed",
-- "connect ...").
function daemon.call(port, args, timeout)
  local c, err = daemon.connect(port)
  if not c then return nil, err end
  c:send(args)
  local r, why = c:read(timeout)
  c:close()
  return r, why
end

-- ---- the daemon --------------------------------------------------------------

local started = {} -- every daemon this spec started, for stop_all
local comm = helper.slotgated:match("([^/]*)$"):sub(1, 15) -- its name in /proc

-- Whether pid is running (not a zombie) as a program called name (any name
-- when nil).
local function pid_alive(pid, name)
  local state = slurp("/proc/" .. pid .. "/stat"):match("^%d+ %(.*%) (%a)")
  if not state or state == "Z" or state == "X" then return false end
  return name == nil or slurp("/proc/" .. pid .. "/comm") == name .. "\n"
end

-- Its exit status, once it exited: a number, or nil while it runs.
local function exit_code(d)
  return tonumber(slurp(d.rcfile))
end

-- Waits until d, just launched, answers PING (PONG, or NOAUTH when it asks
-- for a password); on the way, takes slotgated's own pid once the shell and
-- env have exec'd it, or once a tracer (strace) has it as its child. Returns
-- nil when it is up, else why not.
local function came_up(d)
  local launched = d.pid
  local found = wait_for(function()
    if exit_code(d) then return "exited" end
    if pid_alive(launched, comm) then return "self" end
    -- its children from /proc, not pgrep: under the sanitizer build every
    -- program the specs run gets LD_PRELOAD=libasan, and pgrep then hung
    -- for good now and then (a futex at start)
    local kids = slurp("/proc/" .. launched .. "/task/" .. launched .. "/children")
    for child in kids:gmatch("%d+") do
      if pid_alive(child, comm) then
        d.tracer, d.pid = launched, tonumber(child)
        return "child"
      end
    end
  end, START_SECS)
  if not found then
    -- what was launched never became slotgated: it is still ours (no exit
    -- status yet), end it
    if pid_alive(launched) and not exit_code(d) then os.execute("kill -KILL " .. launched) end
    return "no " .. comm .. " process as pid " .. launched .. " or its child"
  end
  local answered = wait_for(function()
    if not daemon.alive(d) then return "exited" end
    local r = daemon.call(d.port, { "PING" }, 2)
    if r and (r.v == "PONG" or (r.t == "error" and r.v:match("^NOAUTH"))) then return "up" end
  end, START_SECS)
  if answered == "up" then return nil end
  if answered == "exited" or found == "exited" then
    return "it exited, status " .. tostring(daemon.exit_status(d))
  end
  return "no answer to PING within " .. START_SECS .. " s"
end

-- Starts slotgated in front of the harness's cluster (its masters as seeds)
-- and returns a handle once it answers PING (PONG, or NOAUTH when it asks for
-- a password). When it does not come up, it is stopped and an error names
-- its log. opts, all optional:
--   env     variables over the defaults: TYK_GW_STORAGE_ADDRS the masters,
--           TYK_GW_STORAGE_ENABLECLUSTER true, SLOTGATE_THREADS 2, and
--           SLOTGATE_LISTEN the addresses below; false leaves one unset
--           (the settings file's value is then read)
--   args    command-line words after the program (say {"-c", path})
--   port    its TCP port (default: daemon.port())
--   unix    its Unix socket: a path, true (default) for one in daemon.dir,
--           false for none
--   tls     {cert = PATH, key = PATH}: a tls: address too, on the next port
--   prefix  shell words it runs under: "umask 0; exec" or "exec strace ...
--           --"; a program that runs slotgated as its child (strace) is the
--           handle's tracer, slotgated's own pid its pid
-- The handle: port, tls_port, sock, pid, tracer, log (its stderr and
-- stdout), pidfile, rcfile (its exit status once it exited).
function daemon.start(opts)
  opts = opts or {}
  local d = { port = opts.port or daemon.port() }
  local name = daemon.dir .. "/sg" .. d.port
  d.log, d.pidfile, d.rcfile = name .. ".log", name .. ".pid", name .. ".rc"
  local listen = { "127.0.0.1:" .. d.port }
  if opts.unix ~= false then
    d.sock = type(opts.unix) == "string" and opts.unix or name .. ".sock"
    listen[#listen + 1] = "unix:" .. d.sock
  end
  local vars = {
    TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
    TYK_GW_STORAGE_ENABLECLUSTER = "true",
    SLOTGATE_THREADS = "2",
  }
  if opts.tls then
    d.tls_port = daemon.port()
    listen[#listen + 1] = "tls:127.0.0.1:" .. d.tls_port
    vars.SLOTGATE_TLSCERTFILE, vars.SLOTGATE_TLSKEYFILE = opts.tls.cert, opts.tls.key
  end
  vars.SLOTGATE_LISTEN = concat(listen, ",")
  for k, v in pairs(opts.env or {}) do vars[k] = v or nil end -- false: left unset
  local words = { opts.prefix or "exec", "env" }
  for k, v in pairs(vars) do words[#words + 1] = q(k .. "=" .. v) end
  words[#words + 1] = q(helper.slotgated)
  for _, a in ipairs(opts.args or {}) do words[#words + 1] = q(a) end
  os.remove(d.pidfile)
  os.remove(d.rcfile)
  -- its exit status lands in rcfile; the waiting shell holds none of
  -- busted's descriptors
  os.execute("( (" .. concat(words, " ") .. ") >" .. q(d.log) .. " 2>&1 & echo $! >" .. q(d.pidfile) ..
             "; wait $!; echo $? >" .. q(d.rcfile) .. " ) >/dev/null 2>&1 &")
  local pid = wait_for(function() return tonumber(slurp(d.pidfile)) end)
  if not pid then
    error("slotgated did not start (no pid in " .. d.pidfile .. "): " .. slurp(d.log), 2)
  end
  d.pid = pid
  started[#started + 1] = d
  local why = came_up(d)
  if why then
    daemon.stop(d)
    error("slotgated did not start on port " .. d.port .. " (" .. why .. "): " .. slurp(d.log), 2)
  end
  return d
end

-- Whether d is running: its recorded pid is alive and slotgated (a pid that
-- exited and was reused by another program is not d).
function daemon.alive(d)
  return exit_code(d) == nil and pid_alive(d.pid, comm)
end

-- Sends signal sig ("HUP", "KILL", ...) to d by its pid, when it runs.
function daemon.signal(d, sig)
  if daemon.alive(d) then os.execute("kill -" .. sig .. " " .. d.pid .. " 2>/dev/null") end
end

-- Stops d with sig (default TERM) and makes sure it is gone: true when it
-- went within 15 s, false when it took a SIGKILL. A daemon already gone is
-- left alone (true). Its tracer, when it has one, is waited for too.
function daemon.stop(d, sig)
  local gone = function() return not daemon.alive(d) end
  local ok = true
  if daemon.alive(d) then
    daemon.signal(d, sig or "TERM")
    ok = wait_for(gone, STOP_SECS)
    if not ok then
      daemon.signal(d, "KILL")
      assert(wait_for(gone, STOP_SECS), "slotgated pid " .. d.pid .. " outlived SIGKILL")
    end
  end
  if d.tracer then
    assert(wait_for(function() return exit_code(d) end, STOP_SECS),
           "tracer pid " .. d.tracer .. " still runs")
  end
  return ok
end

-- Stops every daemon this spec started that still runs (for teardown).
function daemon.stop_all()
  for _, d in ipairs(started) do daemon.stop(d) end
  started = {}
end

-- d's exit status once it exited (waits up to 10 s): a number, or nil while
-- it runs. Killed by a signal: 128 + the signal's number, as a shell says.
function daemon.exit_status(d)
  return wait_for(function() return exit_code(d) end)
end

-- Waits (up to 10 s) until d's log matches pattern (a Lua pattern); returns
-- the log, matching or not.
function daemon.wait_log(d, pattern)
  local log = wait_for(function()
    local text = slurp(d.log)
    return text:match(pattern) and text
  end)
  return log or slurp(d.log)
end

-- ---- redis-cli ---------------------------------------------------------------

-- redis-cli against d: args, shell words after the address (the caller
-- quotes them). opts: input, text on its stdin (commands one a line, or RESP
-- for --pipe); unix, through d's Unix socket; tls = {ca = PATH, cert = PATH,
-- key = PATH}, through d's tls: address (cert and key optional). Returns its
-- stdout and stderr together.
function daemon.cli(d, args, opts)
  opts = opts or {}
  local words = { "redis-cli --no-auth-warning" }
  if opts.tls then
    words[#words + 1] = "--tls --cacert " .. q(opts.tls.ca)
    if opts.tls.cert then
      words[#words + 1] = "--cert " .. q(opts.tls.cert) .. " --key " .. q(opts.tls.key)
    end
    words[#words + 1] = "-p " .. d.tls_port
  elseif opts.unix then
    words[#words + 1] = "-s " .. q(d.sock)
  else
    words[#words + 1] = "-p " .. d.port
  end
  words[#words + 1] = args
  if opts.input then
    words[#words + 1] = "< " .. q(helper.write(daemon.dir .. "/cli.in", opts.input))
  end
  return sh(concat(words, " "))
end

-- redis-cli straight to a node (addr "host:port").
function daemon.node_cli(addr, args)
  local host, port = addr:match("^(.*):(%d+)$")
  return sh("redis-cli -h " .. host .. " -p " .. port .. " " .. args)
end

-- redis-cli in cluster mode (-c: it follows redirections) through the
-- harness's first master.
function daemon.cluster_cli(args)
  return daemon.node_cli(helper.server_var("SG_TEST_CLUSTER_MASTERS"):match("^[^,]+"), "-c " .. args)
end

return daemon
