-- scripts_failures_spec.lua — what a broken policy script does to a gateway in
-- front of the real cluster: a syntax error, a hook that raises on every call,
-- a hook that never ends. Each fails the load or the command with the file and
-- line, within a bounded time, and the next command on the same gateway works.
local slotgate = require "slotgate"
local sh = require "scripts_helper"

describe("a broken policy script", function()
  local gw, policy, files = nil, nil, {}
  local K = sh.unique("bad") .. "k"

  local function script(text)
    local path = sh.write_temp(text)
    files[#files + 1] = path
    return path
  end

  -- fn's results and how long it took, in seconds
  local function timed(fn, ...)
    local t0 = sh.now()
    local r = { fn(...) }
    return sh.now() - t0, unpack(r)
  end

  setup(function()
    gw, policy = sh.gateway("tenant_prefix")
    assert.equal("OK", gw:call({ user = "u" }, "SET", K, "v"))
  end)
  teardown(function()
    gw:call({ user = "u" }, "DEL", K)
    gw:close()
    for _, f in ipairs(files) do os.remove(f) end
  end)

  it("with a syntax error does not load, names file and line, and the old set stays", function()
    local path = script("-- a typo on line 4\nreturn {\n  name = 'typo',\n  prefix = = 'x:',\n}\n")
    local dt, ok, err, code = timed(policy.load, policy, path)
    assert.is_nil(ok)
    assert.equal("ESCRIPT", code)
    assert.equal(path .. ":4: unexpected symbol near '='", err)
    assert.is_true(dt < 1, dt .. " s")
    assert.same({ "tenant_prefix" }, policy:names())
    assert.equal("v", gw:call({ user = "u" }, "GET", K)) -- the old prefix still applies
  end)

  it("that raises at load does not load either", function()
    local path = script("local limit = 10\n\nerror('needs a limit above ' .. limit)\nreturn {}\n")
    local ok, err = policy:load(path)
    assert.is_nil(ok)
    assert.equal(path .. ":3: needs a limit above 10", err)
    assert.equal("v", gw:call({ user = "u" }, "GET", K))
  end)

  it("that raises on every call fails each command with file and line, not the next keyless one", function()
    local path = script("return {\n  name = 'raiser',\n  rewrite_key = function(key)\n"
                        .. "    error('cannot rewrite ' .. key)\n  end,\n}\n")
    local p = assert(slotgate.policy(path))
    gw:set_policy(p)
    for _ = 1, 3 do
      local dt, ok, msg = timed(gw.call, gw, nil, "GET", "somekey")
      assert.is_false(ok)
      assert.equal("ERR policy raiser: rewrite_key failed: " .. path .. ":4: cannot rewrite somekey", msg)
      assert.is_true(dt < 1, dt .. " s")
    end
    assert.equal("PONG", gw:call(nil, "PING")) -- no key: no hook call
    assert.equal(3, p:stats().hook_errors)
    -- fixed by a reload: the next command works
    assert.is_true(p:load(sh.scripts_dir .. "tenant_prefix.lua"))
    assert.equal("v", gw:call({ user = "u" }, "GET", K))
    gw:set_policy(policy)
  end)

  it("that never ends is stopped within the limits, and the next command works", function()
    local path = script("return {\n  name = 'spinner',\n  on_command = function(ctx)\n"
                        .. "    if ctx.command == 'GET' then\n      while true do end\n    end\n"
                        .. "  end,\n}\n")
    local p = assert(slotgate.policy(path))
    gw:set_policy(p)
    local dt, ok, msg = timed(gw.call, gw, nil, "GET", K)
    assert.is_false(ok)
    assert.matches("^ERR policy spinner: on_command failed: " .. path:gsub("%p", "%%%0")
                   .. ":5: policy spinner: on_command ran too long %(limits: 1000000 instructions, 50 ms%)", msg)
    assert.is_true(dt < 1, dt .. " s")
    -- the next command on the same gateway, through the same script
    assert.equal("OK", gw:call(nil, "SET", K .. "next", "n"))
    assert.equal(1, gw:call(nil, "DEL", K .. "next"))
    assert.equal(1, p:stats().hook_timeouts)
    -- pcall inside the script cannot swallow the limit
    assert(p:load_string("catcher.lua", "return {on_command = function(ctx)\n"
                         .. "  if ctx.command == 'GET' then\n"
                         .. "    while true do pcall(function() while true do end end) end\n"
                         .. "  end\nend}"))
    dt, ok, msg = timed(gw.call, gw, nil, "GET", K)
    assert.is_false(ok)
    assert.matches("ran too long", msg, 1, true)
    assert.is_true(dt < 1, dt .. " s")
    assert.equal("OK", gw:call(nil, "SET", K .. "next", "n"))
    assert.equal(1, gw:call(nil, "DEL", K .. "next"))
    gw:set_policy(policy)
  end)

  it("that loops at load time is stopped too, and not loaded", function()
    local path = script("local n = 0\nwhile true do n = n + 1 end\nreturn {}\n")
    local dt, ok, err, code = timed(policy.load, policy, path)
    assert.is_nil(ok)
    assert.equal("ESCRIPT", code)
    assert.matches(path .. ":2:", err, 1, true)
    assert.matches("ran too long", err, 1, true)
    assert.is_true(dt < 1, dt .. " s")
    assert.same({ "tenant_prefix" }, policy:names())
    assert.equal("v", gw:call({ user = "u" }, "GET", K))
  end)

  it("cannot reach the file system or the process", function()
    for _, body in ipairs({ "os.execute('touch /tmp/sg-pwned')", "io.open('/etc/passwd')",
                            "require('ffi')", "loadstring('return 1')()", "debug.getinfo(1)" }) do
      local p = assert(slotgate.policy())
      assert(p:load_string("escape.lua", "return {on_command = function() " .. body .. " end}"))
      gw:set_policy(p)
      local ok, msg = gw:call(nil, "GET", K)
      assert.is_false(ok, body)
      assert.matches("^ERR policy escape: on_command failed: escape.lua:1: attempt to", msg)
    end
    gw:set_policy(policy)
    assert.equal("v", gw:call({ user = "u" }, "GET", K))
  end)
end)
