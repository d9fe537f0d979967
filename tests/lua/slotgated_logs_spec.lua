-- slotgated's log_format = json: every line it writes to stderr is one JSON
-- object a JSON reader takes (time, level, worker, message, and node,
-- client, user where the line concerns one), whatever bytes clients send;
-- and a log_format it does not know is refused, naming the variable.
local helper = require "helper"
local daemon = require "daemon"
local cjson = require "cjson"

local slurp = helper.slurp
local wait_for = helper.wait_for
local start, stop, cli, new_port = daemon.start, daemon.stop, daemon.cli, daemon.port

daemon.ports_from(971)

local LEVELS = { debug = true, info = true, warn = true, error = true }
local KEYS = { time = true, level = true, worker = true, message = true, node = true,
               client = true, user = true }

-- Whether s is valid UTF-8 (a JSON text must be; cjson does not check).
local function utf8_valid(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xc2 and c <= 0xdf) and 2 or (c >= 0xe0 and c <= 0xef) and 3
      or (c >= 0xf0 and c <= 0xf4) and 4 or nil
    if not len or i + len - 1 > n then return false end
    for j = i + 1, i + len - 1 do
      local b = s:byte(j)
      if b < 0x80 or b > 0xbf then return false end
    end
    i = i + len
  end
  return true
end

-- Every line of d's log decoded, each checked: a list of objects.
local function lines(d)
  local out = {}
  for line in slurp(d.log):gmatch("([^\n]*)\n") do
    assert.is_true(utf8_valid(line), "not UTF-8: " .. line)
    local ok, obj = pcall(cjson.decode, line)
    assert.is_true(ok, "not JSON: " .. line)
    assert.equal("table", type(obj), line)
    for k in pairs(obj) do assert.is_true(KEYS[k], "unexpected key " .. k .. ": " .. line) end
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", obj.time, 1, false, line)
    assert.is_true(LEVELS[obj.level], line)
    assert.equal("string", type(obj.message), line)
    if obj.worker ~= nil then
      assert.equal("number", type(obj.worker), line)
      assert.is_true(obj.worker >= 0 and obj.worker < 2, line) -- SLOTGATE_THREADS 2
    end
    for _, k in ipairs({ "node", "client", "user" }) do
      assert.is_true(obj[k] == nil or type(obj[k]) == "string", line)
    end
    out[#out + 1] = obj
  end
  return out
end

-- The first of objs whose message matches pattern (a Lua pattern), or nil.
local function find(objs, pattern)
  for _, o in ipairs(objs) do
    if o.message:match(pattern) then return o end
  end
end

describe("slotgated log_format json", function()
  teardown(daemon.stop_all)

  it("writes every line as a JSON object: start, a refused AUTH, SIGHUP, stop", function()
    local d = start{ env = { SLOTGATE_LOGFORMAT = "json", SLOTGATE_LOGLEVEL = "debug",
                             SLOTGATE_REQUIREPASS = "s3cret" } }
    assert.equal("PONG\n", cli(d, "-a s3cret PING"))
    assert.matches("WRONGPASS", cli(d, "--user alice --pass nope PING"))
    -- a name with a control byte, a byte that is not UTF-8, a quote, a
    -- backslash and a newline: the line stays one valid JSON line
    local r = daemon.call(d.port, { "AUTH", 'b\1\255"q\\\nz', "nope" })
    assert.matches("^WRONGPASS", r.v)
    daemon.signal(d, "HUP")
    daemon.wait_log(d, "policy script%(s%) loaded.*policy script%(s%) loaded")
    assert.is_true(stop(d))
    local objs = lines(d)
    assert.is_true(#objs >= 6, slurp(d.log))

    local serving = find(objs, "^serving with 2 worker")
    assert.equal("info", serving.level)
    assert.is_nil(serving.worker) -- the main thread

    local alice = find(objs, "AUTH refused for user alice$")
    assert.equal("info", alice.level)
    assert.equal("alice", alice.user)
    assert.matches("^127%.0%.0%.1:%d+$", alice.client)
    assert.is_number(alice.worker)

    local odd = find(objs, "AUTH refused for user b")
    assert.equal('b\1\\xff"q\\\nz', odd.user)
    assert.equal("client " .. odd.client .. " (id ", odd.message:match("^client [^ ]+ %(id "))

    assert.equal("info", find(objs, "^SIGHUP: settings read again").level)
    local workers = {}
    for _, o in ipairs(objs) do
      if o.message:match("policy script%(s%) loaded") then workers[o.worker] = true end
    end
    assert.same({ [0] = true, [1] = true }, workers)
    assert.is_truthy(find(objs, "^SIGTERM: finishing"))
  end)

  it("names the node a connection failure concerns", function()
    local dead = new_port()
    local d = start{ env = { SLOTGATE_LOGFORMAT = "json",
                             TYK_GW_STORAGE_ADDRS = "127.0.0.1:" .. dead } }
    finally(function() stop(d) end)
    assert.matches("cannot connect", cli(d, "GET k"))
    daemon.wait_log(d, "cannot connect to node")
    local o = find(lines(d), "^cannot connect to node")
    assert.equal("warn", o.level)
    assert.equal("127.0.0.1:" .. dead, o.node)
    assert.is_number(o.worker)
    assert.is_true(stop(d))
    lines(d) -- the stop's lines too
  end)

  it("is text by default and refuses a format it does not know, naming the variable", function()
    local d = start()
    assert.is_true(stop(d))
    assert.matches("^slotgated: info: ", slurp(d.log))
    local code, _, err = helper.run({ helper.slotgated, "--check" }, {
      TYK_GW_STORAGE_ADDRS = "127.0.0.1:6379", SLOTGATE_LOGFORMAT = "yaml" })
    assert.equal(1, code)
    assert.matches('SLOTGATE_LOGFORMAT="yaml": expected text or json', err, 1, true)
  end)
end)
