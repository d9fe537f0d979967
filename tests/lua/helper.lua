-- helper.lua — what the specs share: paths from ctest's environment, running
-- a command with variables set, the harness's server addresses, files, a
-- shell, a monotonic clock and waiting on a condition with a deadline.
-- (The slotgated daemon and raw RESP clients are in daemon.lua.)
local ffi = require "ffi"

local helper = {}

local function need(name)
  local v = os.getenv(name)
  assert(v and v ~= "", name .. " is not set: run the specs through ctest")
  return v
end

helper.source_dir = need("SG_SOURCE_DIR")
helper.slotgated = need("SLOTGATED")

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
helper.shell_quote = shell_quote

-- Runs argv (a table) with env (a table NAME=value) added and every TYK_* and
-- SLOTGATE_* variable of the caller's environment removed; returns exit code,
-- stdout, stderr.
function helper.run(argv, env)
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "env" }
  for name in io.popen("env"):read("*a"):gmatch("([%w_]+)=[^\n]*") do
    if name:match("^TYK_") or name:match("^SLOTGATE_") then parts[#parts + 1] = "-u " .. name end
  end
  for k, v in pairs(env or {}) do parts[#parts + 1] = shell_quote(k .. "=" .. v) end
  for _, a in ipairs(argv) do parts[#parts + 1] = shell_quote(a) end
  local cmd = table.concat(parts, " ") .. " >" .. out .. " 2>" .. err
  local ok, _, code = os.execute(cmd)
  -- LuaJIT's os.execute returns the raw status (code * 256)
  if type(ok) == "number" then code = ok / 256 end
  local stdout, stderr = helper.slurp(out), helper.slurp(err)
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr
end

-- The harness's variables (SG_TEST_CLUSTER, ...): env first, then servers.env.
function helper.server_var(name)
  local v = os.getenv(name)
  if v and v ~= "" then return v end
  local state = need("SG_TEST_STATE")
  local f = assert(io.open(state .. "/servers.env"), "no " .. state .. "/servers.env: are the servers running?")
  for line in f:lines() do
    local k, val = line:match("^([%w_]+)=(.*)$")
    if k == name then f:close() return val end
  end
  f:close()
  error(name .. " not in " .. state .. "/servers.env")
end

-- A port for a spec's own daemon: the harness's base plus offset (offsets
-- 500..999 are free for specs; the harness uses base+1..base+100 and their
-- bus ports base+10001..), so runs on different bases never collide.
function helper.port(offset)
  return tonumber(helper.server_var("SG_TEST_PORT_BASE")) + offset
end

-- ---- files, the shell, time ------------------------------------------------

-- The whole content of a file; "" when there is none (yet).
function helper.slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  -- nil when the read fails: /proc/PID/stat of a process that exits
  -- between the open and the read (seen once in CI)
  local s = f:read("*a")
  f:close()
  return s or ""
end

-- Writes text to path (replacing it); returns path.
function helper.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- What a checks script (a client library's, driving slotgated) printed: one
-- line a check, `ok NAME` or `FAIL NAME: reason`; {NAME = "ok" or reason}.
function helper.check_results(out)
  local results = {}
  for line in out:gmatch("[^\n]+") do
    local name = line:match("^ok (.+)$")
    if name then results[name] = "ok" end
    local fname, reason = line:match("^FAIL ([^:]+): (.*)$")
    if fname then results[fname] = reason end
  end
  return results
end

-- Runs a shell command line; its stdout and stderr together.
function helper.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

-- A fresh temporary directory (mode 755: a daemon that dropped its
-- privileges must still reach the files in it).
function helper.tmpdir()
  local dir = os.tmpname() -- made empty: the name is ours
  os.remove(dir)
  assert(os.execute("mkdir -p " .. shell_quote(dir) .. " && chmod 755 " .. shell_quote(dir)) == 0,
         "cannot make " .. dir)
  return dir
end

-- busted loads every spec file into one Lua state: declare the C bits once.
if not pcall(ffi.typeof, "struct sg_helper_timespec") then
  ffi.cdef [[
    struct sg_helper_timespec { long tv_sec; long tv_nsec; };
    int clock_gettime(int clk, struct sg_helper_timespec *ts);
    int nanosleep(const struct sg_helper_timespec *req, struct sg_helper_timespec *rem);
  ]]
end
local CLOCK_MONOTONIC = 1
local ts = ffi.new("struct sg_helper_timespec[1]")

-- Seconds on a monotonic clock.
function helper.now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts[0].tv_sec) + tonumber(ts[0].tv_nsec) / 1e9
end

-- Sleeps for secs (a fraction is fine), in this process.
function helper.sleep(secs)
  local req = ffi.new("struct sg_helper_timespec", math.floor(secs), (secs % 1) * 1e9)
  while ffi.C.nanosleep(req, req) ~= 0 do end -- interrupted: sleep the rest
end

-- Calls f every 50 ms until its first result is true, for at most seconds
-- (default 10); returns f's results, those of a last call when time ran out.
function helper.wait_for(f, seconds)
  local deadline = helper.now() + (seconds or 10)
  while true do
    local r = { f() }
    if r[1] or helper.now() > deadline then return unpack(r) end
    helper.sleep(0.05)
  end
end

return helper
