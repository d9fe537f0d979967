-- slotgated serving plain Redis clients (redis-cli) in front of the real
-- cluster: commands, pipelining, the Unix socket, policies, SIGHUP reloads,
-- client passwords, malformed input and the graceful stop.
local helper = require "helper"
local daemon = require "daemon"

local q, slurp, write, wait_for = helper.shell_quote, helper.slurp, helper.write, helper.wait_for
local start, stop, cli = daemon.start, daemon.stop, daemon.cli
local dir = daemon.dir

daemon.ports_from(601)

describe("slotgated", function()
  local d

  setup(function() d = start() end)
  teardown(daemon.stop_all)

  it("serves a whole cluster to a plain client", function()
    assert.equal("PONG\n", cli(d, "PING"))
    assert.equal("hello\n", cli(d, "ECHO hello"))
    assert.equal("OK\n", cli(d, "MSET sg:{a} 1 sg:{b} 2 sg:{c} 3"))
    assert.equal("3\n2\n1\n\n", cli(d, "MGET sg:{c} sg:{b} sg:{a} sg:{none}"))
    assert.equal("3\n", cli(d, "DEL sg:{a} sg:{b} sg:{c}"))
    assert.matches("CROSSSLOT", cli(d, "SUNION sg:{a} sg:{b}"))
  end)

  it("sends keyless commands from both workers at once, each answered", function()
    -- EVAL with no key goes to a master the client picks in turn: both
    -- workers do it at once here (the ThreadSanitizer build's specs see any
    -- state they share unguarded, as the picker's turn once was)
    local out = helper.sh(string.format(
      "redis-benchmark -p %d -c 8 -n 4000 -P 8 --threads 2 -q EVAL 'return 7' 0 2>&1", d.port))
    assert.matches("requests per second", out)
    assert.equal("7\n", cli(d, "EVAL 'return 7' 0"))
    assert.equal("PONG\n", cli(d, "PING"))
  end)

  it("answers over the Unix socket", function()
    assert.equal("PONG\n", cli(d, "PING", { unix = true }))
  end)

  it("keeps the order of 10 000 pipelined commands", function()
    local buf = {}
    for i = 1, 5000 do
      local k, v = "pipe:" .. i, tostring(i)
      buf[#buf + 1] = string.format("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", #k, k, #v, v)
      buf[#buf + 1] = string.format("*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n", #k, k)
    end
    local out = cli(d, "--pipe", { input = table.concat(buf) })
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
    local info = helper.sh("printf 'CLIENT SETNAME " .. name .. "\\nCLIENT INFO\\n' | redis-cli -p " .. d.port)
    for _, f in ipairs({ "id", "age", "idle", "db", "sub", "psub", "multi", "qbuf", "qbuf-free",
                         "obl", "argv-mem", "oll", "omem", "tot-mem" }) do
      assert.matches("%s" .. f:gsub("%-", "%%-") .. "=%-?%d+%s", info)
    end
    assert.matches(" name=" .. name .. " ", info, 1, true)
  end)

  it("closes a client that sends garbage, and serves the others", function()
    local out = cli(d, "--pipe", { input = "*1\r\n$99999999999999\r\nxx\r\n" })
    assert.matches("invalid bulk length", out, 1, true)
    assert.equal("PONG\n", cli(d, "PING"))
  end)
end)

describe("slotgated with a policy", function()
  it("applies it, and reloads it on SIGHUP without dropping clients", function()
    local policy = dir .. "/policy.lua"
    write(policy, "return {name = 'p1', deny_commands = {'FLUSHALL'}}")
    local d = start{ env = { SLOTGATE_POLICY = policy } }
    finally(function() stop(d) end)
    assert.matches("NOPERM policy p1 refuses FLUSHALL", cli(d, "FLUSHALL"))
    write(policy, "return {name = 'p2', deny_commands = {'FLUSHDB'}}")
    daemon.signal(d, "HUP")
    local reloaded = wait_for(function() return cli(d, "FLUSHDB"):match("p2 refuses FLUSHDB") ~= nil end)
    assert.is_true(reloaded)
    -- a broken script keeps the set in force
    write(policy, "return {")
    daemon.signal(d, "HUP")
    assert.matches("reload failed", daemon.wait_log(d, "reload failed"))
    assert.matches("p2 refuses FLUSHDB", cli(d, "FLUSHDB"))
    assert.is_true(stop(d))
  end)
end)

describe("slotgated with a policy on the commands it answers itself", function()
  it("refuses them (and MULTI) as it refuses forwarded ones, but never AUTH, HELLO or QUIT", function()
    local policy = dir .. "/local.lua"
    write(policy, "return {name = 'quiet', deny_commands = {'INFO', 'CLIENT', 'CLUSTER', 'ECHO', " ..
                  "'COMMAND', 'MULTI', 'AUTH', 'HELLO', 'QUIT'}}")
    local d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_REQUIREPASS = "pw" } }
    finally(function() stop(d) end)
    local function as_client(args) return cli(d, "--no-auth-warning -a pw " .. args) end
    -- INFO would name the upstreams' nodes; CLUSTER SLOTS shows the gateway
    for _, c in ipairs({ "INFO", "CLIENT ID", "CLUSTER SLOTS", "ECHO hi", "COMMAND COUNT", "MULTI" }) do
      assert.matches("NOPERM policy quiet refuses " .. c:match("^%S+"), as_client(c), 1, true)
    end
    assert.equal("PONG\n", as_client("PING"))
    local c = assert(daemon.connect(d.port))
    c:send({ "HELLO", "2", "AUTH", "default", "pw" })
    assert.equal("array", assert(c:read()).t)
    c:send({ "AUTH", "pw" })
    assert.equal("OK", assert(c:read()).v)
    c:send({ "QUIT" })
    assert.equal("OK", assert(c:read()).v)
    c:close()
  end)
end)

describe("slotgated reloading under traffic", function()
  it("loses, reorders and drops nothing while SIGHUP reloads its policies", function()
    -- four clients on two workers keep 200 commands each in flight while the
    -- policy file changes and SIGHUP comes, 12 times; every reply is checked
    local policy = dir .. "/traffic.lua"
    local function gen(n)
      write(policy, string.format("return {name = 'gen%d', prefix = 'rl:', deny_commands = {%s}}",
                                  n, n % 2 == 0 and "'ECHO'" or "'FLUSHALL'"))
    end
    gen(0)
    local d = start{ env = { SLOTGATE_POLICY = policy, SLOTGATE_THREADS = "2" } }
    local conns = {}
    finally(function()
      for _, c in ipairs(conns) do c:close() end
      stop(d)
    end)
    for i = 1, 4 do conns[i] = assert(daemon.connect_served(d.port)) end
    local rounds = 12
    for round = 1, rounds do
      for i, c in ipairs(conns) do
        for k = 1, 100 do
          local key = string.format("t%d:%d", i, k)
          c:send({ "SET", key, round .. ":" .. key })
          c:send({ "GET", key })
        end
      end
      gen(round)
      daemon.signal(d, "HUP")
      for i, c in ipairs(conns) do
        for k = 1, 100 do
          local key = string.format("t%d:%d", i, k)
          local set, why = c:read()
          assert(set, "client " .. i .. " round " .. round .. ": " .. tostring(why))
          assert.equal("OK", set.v)
          local got = assert(c:read())
          assert.equal(round .. ":" .. key, got.v)
        end
      end
    end
    -- the last set is in force; the prefix held throughout
    local last = rounds % 2 == 0 and "ECHO" or "FLUSHALL"
    assert.is_truthy(wait_for(function()
      return cli(d, last == "ECHO" and "ECHO x" or "FLUSHALL"):find("gen" .. rounds .. " refuses", 1, true)
    end))
    assert.equal(rounds .. ":t1:1\n", daemon.cluster_cli("GET rl:t1:1"))
    local log = slurp(d.log)
    assert.is_nil(log:find("failed", 1, true), log)
    for _, c in ipairs(conns) do
      c:send({ "PING" })
      assert.equal("PONG", assert(c:read()).v)
    end
    assert.is_true(stop(d))
  end)
end)

describe("slotgated with a password", function()
  it("lets nothing but AUTH, HELLO and QUIT through before it", function()
    local d = start{ env = { SLOTGATE_REQUIREPASS = "s3cret" } }
    finally(function() stop(d) end)
    assert.matches("NOAUTH", cli(d, "GET x"))
    assert.matches("WRONGPASS", cli(d, "--no-auth-warning -a wrong PING"))
    assert.equal("PONG\n", cli(d, "--no-auth-warning -a s3cret PING"))
    assert.is_true(stop(d))
  end)
end)

describe("slotgated limits", function()
  it("closes an idle client and one that leaves its replies unread, serving the others", function()
    local d = start{ env = { SLOTGATE_CLIENTIDLETIMEOUT = "1", SLOTGATE_CLIENTOUTPUTLIMIT = "65536" } }
    finally(function() stop(d) end)
    -- idle: a client silent for more than a second is closed (redis-cli
    -- waits 1.6 s between its two PINGs)
    cli(d, "-r 2 -i 1.6 PING")
    assert.matches("idle for 1 s", daemon.wait_log(d, "idle for 1 s"))
    -- unread replies: a big value asked for many times, nothing read
    assert.equal("OK\n", cli(d, "SET big " .. string.rep("x", 60000)))
    local buf = {}
    for _ = 1, 1000 do buf[#buf + 1] = daemon.resp{ "GET", "big" } end
    -- asks for 60 MB of replies and reads nothing until it is closed
    local flood = assert(daemon.connect(d.port))
    flood:send_raw(table.concat(buf))
    local log = daemon.wait_log(d, "client_output_limit")
    flood:close()
    assert.matches("over the client_output_limit of 65536", log)
    assert.equal("PONG\n", cli(d, "PING"))
    assert.equal("1\n", cli(d, "DEL big"))
  end)
end)

describe("slotgated max_clients", function()
  it("answers the client past the limit with an error and closes it, and takes one again after a close", function()
    local d = start{ env = { SLOTGATE_MAXCLIENTS = "2" } }
    local a, b, c
    -- (busted keeps one finally per test: the last one given)
    finally(function()
      for _, conn in ipairs({ a, b, c }) do conn:close() end
      stop(d)
    end)
    -- (answered: slotgated may not have seen its start-up probe go yet)
    a = assert(daemon.connect_served(d.port))
    b = assert(daemon.connect_served(d.port))
    c = assert(daemon.connect(d.port))
    local r = c:read()
    assert.equal("error", r.t)
    assert.equal("ERR max number of clients reached", r.v)
    local none, why = c:read()
    assert.is_nil(none)
    assert.equal("closed", why)
    -- the two within the limit are served still
    a:send({ "PING" })
    assert.equal("PONG", a:read().v)
    -- once slotgated has seen one go, a new client is taken
    b:close()
    assert.is_truthy(wait_for(function() return cli(d, "PING") == "PONG\n" end))
  end)
end)

describe("slotgated stopping", function()
  it("exits on SIGTERM after finishing what is in flight", function()
    local d = start()
    finally(function() stop(d) end)
    -- a blocking pop in flight when the signal comes: slotgated keeps serving it, so a
    -- value pushed after the signal wakes it and the client reads that value, then
    -- slotgated exits 0
    local out = dir .. "/blpop.out"
    daemon.cluster_cli("DEL stop:list")
    os.execute("redis-cli -p " .. d.port .. " BLPOP stop:list 8 >" .. q(out) .. " 2>&1 &")
    assert.is_truthy(wait_for(function()
      return cli(d, "INFO clients"):match("blocked_clients:1\r?\n")
    end))
    daemon.signal(d, "TERM")
    assert.matches("SIGTERM: finishing in%-flight commands", daemon.wait_log(d, "SIGTERM: finishing"))
    assert.is_true(daemon.alive(d))
    assert.equal("1\n", daemon.cluster_cli("RPUSH stop:list item"))
    assert.is_truthy(wait_for(function() return not daemon.alive(d) end))
    assert.equal(0, daemon.exit_status(d))
    assert.equal("stop:list\nitem\n", wait_for(function()
      local text = slurp(out)
      return text ~= "" and text
    end))
    assert.equal("0\n", daemon.cluster_cli("EXISTS stop:list")) -- popped, not lost
  end)

  it("on SIGTERM waits at most shutdown_timeout for a command that does not end", function()
    local d = start{ env = { SLOTGATE_SHUTDOWNTIMEOUT = "1" } }
    finally(function() stop(d) end)
    local out = dir .. "/blpop0.out"
    os.execute("redis-cli -p " .. d.port .. " BLPOP stop:never 0 >" .. q(out) .. " 2>&1 &")
    assert.is_truthy(wait_for(function()
      return cli(d, "INFO clients"):match("blocked_clients:1\r?\n")
    end))
    local t0 = helper.now()
    daemon.signal(d, "TERM")
    assert.is_truthy(wait_for(function() return not daemon.alive(d) end))
    local took = helper.now() - t0
    assert.is_true(took >= 0.9 and took < 5, "exited after " .. took .. " s")
    assert.equal(0, daemon.exit_status(d))
    assert.matches("commands still in flight after 1 s; exiting anyway", slurp(d.log), 1, true)
  end)

  it("refuses to start on a bad setting, naming it", function()
    local code, _, err = helper.run({ helper.slotgated },
      { TYK_GW_STORAGE_ADDRS = "127.0.0.1:1", SLOTGATE_LISTEN = "not-an-address" })
    assert.are_not.equal(0, code)
    assert.matches("not%-an%-address", err)
  end)
end)
