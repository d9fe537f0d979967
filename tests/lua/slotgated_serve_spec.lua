-- slotgated serving plain Redis clients (redis-cli) in front of the real
-- cluster: commands, pipelining, the Unix socket, policies, SIGHUP reloads,
-- client passwords, malformed input and the graceful stop.
local helper = require "helper"

local q = helper.shell_quote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. q(dir)) == 0 or true)

local next_port = helper.port(600)

-- Starts slotgated with env added; returns a handle {port, sock, pid, log}.
local function start(env)
  next_port = next_port + 1
  local d = { port = next_port, sock = dir .. "/sg" .. next_port .. ".sock",
              log = dir .. "/sg" .. next_port .. ".log", pidfile = dir .. "/sg" .. next_port .. ".pid" }
  local vars = {
    TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
    TYK_GW_STORAGE_ENABLECLUSTER = "true",
    SLOTGATE_LISTEN = "127.0.0.1:" .. d.port .. ",unix:" .. d.sock,
    SLOTGATE_THREADS = "2",
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  local parts = { "env" }
  for k, v in pairs(vars) do parts[#parts + 1] = q(k .. "=" .. v) end
  parts[#parts + 1] = q(helper.slotgated)
  os.execute(table.concat(parts, " ") .. " >" .. q(d.log) .. " 2>&1 & echo $! >" .. q(d.pidfile))
  d.pid = tonumber(slurp(d.pidfile))
  -- ready when it answers PING (a bounded wait on a condition)
  for _ = 1, 200 do
    if sh("redis-cli -p " .. d.port .. " PING"):match("PONG") or
       sh("redis-cli -p " .. d.port .. " PING"):match("NOAUTH") then
      return d
    end
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then break end
    os.execute("sleep 0.05")
  end
  error("slotgated did not start: " .. slurp(d.log))
end

-- Stops it with SIGTERM; returns its exit status.
local function stop(d)
  os.execute("kill -TERM " .. d.pid)
  for _ = 1, 300 do
    if os.execute("kill -0 " .. d.pid .. " 2>/dev/null") ~= 0 then
      return true
    end
    os.execute("sleep 0.05")
  end
  os.execute("kill -KILL " .. d.pid)
  return false
end

local function cli(d, args)
  return sh("redis-cli -p " .. d.port .. " " .. args)
end

describe("slotgated", function()
  local d

  setup(function() d = start() end)
  teardown(function() if d then stop(d) end end)

  it("serves a whole cluster to a plain client", function()
    assert.equal("PONG\n", cli(d, "PING"))
    assert.equal("hello\n", cli(d, "ECHO hello"))
    assert.equal("OK\n", cli(d, "MSET sg:{a} 1 sg:{b} 2 sg:{c} 3"))
    assert.equal("3\n2\n1\n\n", cli(d, "MGET sg:{c} sg:{b} sg:{a} sg:{none}"))
    assert.equal("3\n", cli(d, "DEL sg:{a} sg:{b} sg:{c}"))
    assert.matches("CROSSSLOT", cli(d, "SUNION sg:{a} sg:{b}"))
  end)

  it("answers over the Unix socket", function()
    assert.equal("PONG\n", sh("redis-cli -s " .. q(d.sock) .. " PING"))
  end)

  it("keeps the order of 10 000 pipelined commands", function()
    local buf = {}
    for i = 1, 5000 do
      local k, v = "pipe:" .. i, tostring(i)
      buf[#buf + 1] = string.format("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", #k, k, #v, v)
      buf[#buf + 1] = string.format("*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n", #k, k)
    end
    write(dir .. "/pipe.resp", table.concat(buf))
    local out = sh("redis-cli -p " .. d.port .. " --pipe < " .. q(dir .. "/pipe.resp"))
    assert.matches("errors: 0, replies: 10000", out, 1, true)
    assert.equal("4243\n", cli(d, "GET pipe:4242"))
  end)

  it("answers CLIENT, SELECT 0, INFO and refuses what it cannot carry", function()
    assert.equal("OK\n", cli(d, "SELECT 0"))
    assert.matches("ERR", cli(d, "SELECT 1"))
    assert.matches("slotgate_version:", cli(d, "INFO"))
    assert.matches("connected_clients:", cli(d, "INFO"))
    assert.matches("does not support MONITOR", cli(d, "MONITOR"))
    -- every field of Redis 7.0's CLIENT INFO (clients parse them all), and a
    -- name longer than any fixed line
    local name = string.rep("n", 1000)
    local info = sh("printf 'CLIENT SETNAME " .. name .. "\\nCLIENT INFO\\n' | redis-cli -p " .. d.port)
    for _, f in ipairs({ "id", "age", "idle", "db", "sub", "psub", "multi", "qbuf", "qbuf-free",
                         "obl", "argv-mem", "oll", "omem", "tot-mem" }) do
      assert.matches("%s" .. f:gsub("%-", "%%-") .. "=%-?%d+%s", info)
    end
    assert.matches(" name=" .. name .. " ", info, 1, true)
  end)

  it("closes a client that sends garbage, and serves the others", function()
    write(dir .. "/bad.resp", "*1\r\n$99999999999999\r\nxx\r\n")
    local out = sh("redis-cli -p " .. d.port .. " --pipe < " .. q(dir .. "/bad.resp"))
    assert.matches("invalid bulk length", out, 1, true)
    assert.equal("PONG\n", cli(d, "PING"))
  end)
end)

describe("slotgated with a policy", function()
  it("applies it, and reloads it on SIGHUP without dropping clients", function()
    local policy = dir .. "/policy.lua"
    write(policy, "return {name = 'p1', deny_commands = {'FLUSHALL'}}")
    local d = start({ SLOTGATE_POLICY = policy })
    finally(function() stop(d) end)
    assert.matches("NOPERM policy p1 refuses FLUSHALL", cli(d, "FLUSHALL"))
    write(policy, "return {name = 'p2', deny_commands = {'FLUSHDB'}}")
    os.execute("kill -HUP " .. d.pid)
    local reloaded = false
    for _ = 1, 100 do
      if cli(d, "FLUSHDB"):match("p2 refuses FLUSHDB") then reloaded = true break end
      os.execute("sleep 0.05")
    end
    assert.is_true(reloaded)
    -- a broken script keeps the set in force
    write(policy, "return {")
    os.execute("kill -HUP " .. d.pid)
    for _ = 1, 100 do
      if slurp(d.log):match("reload failed") then break end
      os.execute("sleep 0.05")
    end
    assert.matches("reload failed", slurp(d.log))
    assert.matches("p2 refuses FLUSHDB", cli(d, "FLUSHDB"))
    assert.is_true(stop(d))
  end)
end)

describe("slotgated with a password", function()
  it("lets nothing but AUTH, HELLO and QUIT through before it", function()
    local d = start({ SLOTGATE_REQUIREPASS = "s3cret" })
    finally(function() stop(d) end)
    assert.matches("NOAUTH", cli(d, "GET x"))
    assert.matches("WRONGPASS", cli(d, "--no-auth-warning -a wrong PING"))
    assert.equal("PONG\n", cli(d, "--no-auth-warning -a s3cret PING"))
    assert.is_true(stop(d))
  end)
end)

describe("slotgated limits", function()
  it("closes an idle client and one that leaves its replies unread, serving the others", function()
    local d = start({ SLOTGATE_CLIENTIDLETIMEOUT = "1", SLOTGATE_CLIENTOUTPUTLIMIT = "65536" })
    finally(function() stop(d) end)
    -- idle: a client silent for more than a second is closed (redis-cli
    -- waits 1.6 s between its two PINGs)
    sh("redis-cli -p " .. d.port .. " -r 2 -i 1.6 PING")
    for _ = 1, 100 do
      if slurp(d.log):match("idle for 1 s") then break end
      os.execute("sleep 0.05")
    end
    assert.matches("idle for 1 s", slurp(d.log))
    -- unread replies: a big value asked for many times, nothing read
    assert.equal("OK\n", cli(d, "SET big " .. string.rep("x", 60000)))
    local buf = {}
    for _ = 1, 1000 do buf[#buf + 1] = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" end
    write(dir .. "/flood.resp", table.concat(buf))
    -- asks for 60 MB of replies and reads nothing for 2 s
    os.execute("bash -c " .. q("exec 3<>/dev/tcp/127.0.0.1/" .. d.port .. "; cat " .. dir ..
               "/flood.resp >&3; sleep 2; exec 3>&-"))
    for _ = 1, 100 do
      if slurp(d.log):match("client_output_limit") then break end
      os.execute("sleep 0.05")
    end
    assert.matches("over the client_output_limit of 65536", slurp(d.log))
    assert.equal("PONG\n", cli(d, "PING"))
    assert.equal("1\n", cli(d, "DEL big"))
  end)
end)

describe("slotgated stopping", function()
  it("exits on SIGTERM after finishing what is in flight", function()
    local d = start()
    -- a blocking pop in flight when the signal comes: it finishes first
    local out = dir .. "/blpop.out"
    os.execute("redis-cli -p " .. d.port .. " BLPOP stop:none 1 >" .. q(out) .. " 2>&1 &")
    for _ = 1, 100 do
      if cli(d, "INFO"):match("connected_clients:2") then break end
      os.execute("sleep 0.02")
    end
    assert.is_true(stop(d))
    assert.matches("finishing in%-flight commands", slurp(d.log))
  end)

  it("refuses to start on a bad setting, naming it", function()
    local code, _, err = helper.run({ helper.slotgated },
      { TYK_GW_STORAGE_ADDRS = "127.0.0.1:1", SLOTGATE_LISTEN = "not-an-address" })
    assert.are_not.equal(0, code)
    assert.matches("not%-an%-address", err)
  end)
end)
