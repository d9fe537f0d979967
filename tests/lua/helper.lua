-- helper.lua — what the specs share: paths from ctest's environment, running
-- a command with variables set, and the harness's server addresses.
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
  local function slurp(p)
    local f = assert(io.open(p, "rb"))
    local s = f:read("*a")
    f:close()
    os.remove(p)
    return s
  end
  -- LuaJIT's os.execute returns the raw status (code * 256)
  if type(ok) == "number" then code = ok / 256 end
  return code, slurp(out), slurp(err)
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

return helper
