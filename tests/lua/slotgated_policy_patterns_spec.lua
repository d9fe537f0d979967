-- slotgated_policy_patterns_spec.lua — a policy's Lua patterns are bounded
-- like the rest of its code: string.find, match, gmatch and gsub (as
-- functions, as string methods, under pcall) on a pattern that backtracks for
-- minutes are stopped within the policy's time limit with the usual "ran too
-- long" error naming the script's line, counted as hook timeouts, and the
-- next command on the same worker and policy is served at once; so is a gsub
-- whose replacement function never ends. The daemon runs one worker, so every
-- command meets the same policy state. Replies are read with a timeout: a
-- matcher that cannot be stopped fails the spec instead of hanging it.
local helper = require "helper"
local daemon = require "daemon"

local now = helper.now

daemon.ports_from(821)

-- Line numbers matter: each key's work is on the line the table below names.
local SCRIPT = [[
local s, p = ("a"):rep(40), ("a*"):rep(40) .. "b"
return {
  name = "bt",
  on_command = function(ctx)
    local k = ctx.keys[1]
    if k == "find" then string.find(s, p)
    elseif k == "method" then local _ = s:find(p)
    elseif k == "match" then local _ = s:match(p)
    elseif k == "gmatch" then for _ in s:gmatch(p) do end
    elseif k == "gsub" then string.gsub(s, p, "")
    elseif k == "lazy" then local _ = ("x"):rep(60):match((".-x"):rep(30) .. "y")
    elseif k == "pcall" then pcall(string.find, s, p) return {deny = "pcall caught it"}
    elseif k == "replacement" then string.gsub("abc", "%w", function() while true do end end)
    end
  end,
}
]]

local CASES = {
  { key = "find", line = 6, what = "string.find on a pattern that backtracks%?" },
  { key = "method", line = 7, what = "string.find on a pattern that backtracks%?" },
  { key = "match", line = 8, what = "string.match on a pattern that backtracks%?" },
  { key = "gmatch", line = 9, what = "string.gmatch on a pattern that backtracks%?" },
  { key = "gsub", line = 10, what = "string.gsub on a pattern that backtracks%?" },
  { key = "lazy", line = 11, what = "string.match on a pattern that backtracks%?" },
  -- the line that called pcall, which cannot catch the limit
  { key = "pcall", line = 12, what = "string.find on a pattern that backtracks%?" },
  -- the count hook stops the replacement function, in its own line
  { key = "replacement", line = 13, what = "an endless loop%?" },
}

describe("slotgated with a policy whose patterns backtrack", function()
  local d, dir, path

  setup(function()
    dir = helper.tmpdir()
    path = dir .. "/bt.lua"
    helper.write(path, SCRIPT)
    d = daemon.start { env = { SLOTGATE_POLICY = path, SLOTGATE_THREADS = "1" } }
  end)
  teardown(function()
    daemon.stop_all()
    os.remove(path)
    os.remove(dir)
  end)

  local function timeouts()
    local r = assert(daemon.call(d.port, { "INFO", "policy" }, 5))
    return tonumber(r.v:match("policy_hook_timeouts:(%d+)"))
  end

  for i, c in ipairs(CASES) do
    it("stops " .. c.key .. " within the time limit, and serves the next command at once", function()
      local t0 = now()
      local r, why = daemon.call(d.port, { "GET", c.key }, 10)
      local dt = now() - t0
      assert(r, "no reply to GET " .. c.key .. " within 10 s: " .. tostring(why))
      assert.equal("error", r.t)
      local where = path:gsub("%p", "%%%0") .. ":" .. c.line .. ": "
      assert.matches("^ERR policy bt: on_command failed: " .. where .. "policy bt: on_command "
                     .. "ran too long %(limits: 1000000 instructions, 50 ms%): " .. c.what .. "$", r.v)
      assert.is_true(dt < 2, dt .. " s")
      -- the same worker, the same policy state: at once
      t0 = now()
      r = daemon.call(d.port, { "GET", "bt:fine" }, 10)
      dt = now() - t0
      assert.same({ t = "nil" }, r)
      assert.is_true(dt < 0.5, dt .. " s")
      assert.equal(i, timeouts())
    end)
  end
end)
