-- slotgated's hardening, each part a way in that must stay shut: nothing
-- reaches a node before AUTH; secrets stay out of the log (at debug), INFO
-- and --check; the Unix socket is never wider than unix_mode, not even while
-- it is made; the user setting drops every privilege before clients are
-- served; client names and what clients send cannot forge log lines.
local helper = require "helper"
local daemon = require "daemon"

local q, slurp, write, sh = helper.shell_quote, helper.slurp, helper.write, helper.sh
local wait_for = helper.wait_for
local start, stop, cli = daemon.start, daemon.stop, daemon.cli
local dir = daemon.dir -- mode 755: the dropped user reads its policy here

daemon.ports_from(421)

describe("slotgated with requirepass", function()
  after_each(daemon.stop_all)
  it("forwards nothing to a node before AUTH", function()
    local d = start{ env = { SLOTGATE_REQUIREPASS = "gate-pw" } }
    -- every master's MONITOR, attached before anything is sent
    local monitors = {}
    for addr in helper.server_var("SG_TEST_CLUSTER_MASTERS"):gmatch("[^,]+") do
      local port = addr:match(":(%d+)$")
      local m = { out = dir .. "/monitor" .. port .. ".out" }
      os.execute("redis-cli -p " .. port .. " MONITOR >" .. q(m.out) .. " 2>&1 & echo $! >" ..
                 q(m.out .. ".pid"))
      m.pid = tonumber(slurp(m.out .. ".pid"))
      monitors[#monitors + 1] = m
    end
    -- (busted keeps one finally per test: the daemons go in after_each)
    finally(function()
      for _, m in ipairs(monitors) do os.execute("kill " .. m.pid .. " 2>/dev/null") end
    end)
    for _, m in ipairs(monitors) do
      assert.truthy(wait_for(function() return slurp(m.out):match("OK") end))
    end
    -- all of it on one unauthenticated connection: keyed, keyless, scripts,
    -- fan-outs, HELLO without AUTH, a wrong AUTH, and commands after it
    local function cmd(...) return daemon.resp({ ... }) end
    local probe = table.concat({
      cmd("GET", "noauth:probe:1"),
      cmd("SET", "noauth:probe:2", "x"),
      cmd("EVAL", "return redis.call('get', KEYS[1])", "1", "noauth:probe:3"),
      cmd("KEYS", "noauth:probe:*"),
      cmd("SCRIPT", "LOAD", "return 'noauth:probe:4'"),
      cmd("DEL", "noauth:probe:5"),
      cmd("HELLO", "2", "SETNAME", "noauth-probe-6"),
      cmd("HELLO", "3"),
      cmd("MGET", "noauth:probe:7", "noauth:probe:8"),
      cmd("AUTH", "wrong"),
      cmd("AUTH", "default", "wrong"),
      cmd("HELLO", "2", "AUTH", "default", "wrong"),
      cmd("GET", "noauth:probe:9"),
      "GET noauth:probe:10\r\n", -- inline
    })
    -- (not redis-cli --pipe: it ends with an ECHO of its own, refused too)
    local c = assert(daemon.connect(d.port))
    c:send_raw(probe)
    local got, n, errors = {}, 0, 0
    for _ = 1, 14 do
      local r, why = c:read(10)
      got[#got + 1] = r and (r.t .. " " .. tostring(r.v)) or why
      if not r then break end
      n = n + 1
      local refused = r.t == "error" and (r.v:match("^NOAUTH") or r.v:match("^WRONGPASS") or
                                          r.v:match("^NOPROTO"))
      if refused then errors = errors + 1 end
    end
    c:close()
    local out = table.concat(got, "\n")
    assert.equal(14, n, out)
    assert.equal(14, errors, out)
    -- the authenticated command goes through: MONITOR does see what is sent
    assert.equal("", cli(d, "--no-auth-warning -a gate-pw GET noauth:probe:authed"):gsub("\n", ""))
    local seen = wait_for(function()
      for _, m in ipairs(monitors) do
        if slurp(m.out):match("noauth:probe:authed") then return true end
      end
    end)
    assert.is_true(seen)
    for _, m in ipairs(monitors) do
      local text = slurp(m.out)
      assert.is_nil(text:match("noauth:probe:%d"), text)
      assert.is_nil(text:match("noauth%-probe"), text)
    end
  end)
end)

describe("slotgated's secrets", function()
  after_each(daemon.stop_all)
  it("never reach the log at debug, INFO or --check", function()
    local secrets = { "gate-pw-7431", "sgsentinelpass", "sgdatapass" }
    local env = {
      TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_SENTINELS"),
      TYK_GW_STORAGE_ENABLECLUSTER = "false",
      TYK_GW_STORAGE_MASTERNAME = helper.server_var("SG_TEST_SENTINEL_MASTER_NAME"),
      TYK_GW_STORAGE_SENTINELPASSWORD = helper.server_var("SG_TEST_SENTINEL_PASS"),
      TYK_GW_STORAGE_PASSWORD = helper.server_var("SG_TEST_SENTINEL_DATA_PASS"),
      SLOTGATE_REQUIREPASS = "gate-pw-7431",
      SLOTGATE_LOGLEVEL = "debug",
    }
    assert.equal("sgsentinelpass", env.TYK_GW_STORAGE_SENTINELPASSWORD)
    assert.equal("sgdatapass", env.TYK_GW_STORAGE_PASSWORD)
    local d = start{ env = env }
    local a = "--no-auth-warning -a gate-pw-7431 "
    assert.matches("WRONGPASS", cli(d, "--no-auth-warning -a gate-pw-wrong PING"))
    assert.matches("WRONGPASS", cli(d, "HELLO 2 AUTH default gate-pw-7431x"))
    assert.equal("OK\n", cli(d, a .. "SET secrets:k v"))
    assert.equal("v\n", cli(d, a .. "GET secrets:k"))
    local info = cli(d, a .. "INFO everything")
    assert.matches("slotgate_version", info)
    assert.matches("id=%d+", cli(d, a .. "CLIENT INFO"))
    daemon.signal(d, "HUP")
    stop(d)
    -- and one whose upstream password is wrong: its failures are logged
    env.TYK_GW_STORAGE_PASSWORD = "wrong-upstream-pw-913"
    secrets[#secrets + 1] = "wrong-upstream-pw-913"
    local d2 = start{ env = env }
    local got = cli(d2, a .. "GET secrets:k")
    assert.matches("WRONGPASS", got)
    assert.truthy(wait_for(function() return slurp(d2.log):match("warn") end))
    stop(d2)
    local log = slurp(d.log) .. slurp(d2.log)
    local code, out, err = helper.run({ helper.slotgated, "--check" }, {
      TYK_GW_STORAGE_ADDRS = env.TYK_GW_STORAGE_ADDRS,
      TYK_GW_STORAGE_MASTERNAME = env.TYK_GW_STORAGE_MASTERNAME,
      TYK_GW_STORAGE_SENTINELPASSWORD = env.TYK_GW_STORAGE_SENTINELPASSWORD,
      TYK_GW_STORAGE_PASSWORD = env.TYK_GW_STORAGE_PASSWORD,
      SLOTGATE_USERS = "alice:gate-pw-7431",
      SLOTGATE_TLSKEYFILEPASS = "gate-pw-7431",
    })
    assert.equal(0, code, err)
    assert.matches("sentinel_password", out)
    for _, secret in ipairs(secrets) do
      assert.is_nil(log:find(secret, 1, true), "in the log: " .. secret)
      assert.is_nil(info:find(secret, 1, true), "in INFO: " .. secret)
      assert.is_nil((out .. err):find(secret, 1, true), "in --check: " .. secret)
    end
  end)
end)

describe("slotgated's Unix socket", function()
  after_each(daemon.stop_all)
  it("is made with unix_mode, never wider, and a file in its way is kept", function()
    local sock = dir .. "/mode.sock"
    local trace = dir .. "/strace.out"
    assert(os.execute("command -v strace >/dev/null") == 0, "strace is missing: run tools/install-deps.sh")
    local prefix = "umask 0; exec strace -f -qq -e trace=umask,bind,chmod -o " .. q(trace) .. " --"
    local d = start{ unix = sock, env = { SLOTGATE_UNIXMODE = "0600" }, prefix = prefix }
    assert.equal("600\n", sh("stat -c %a " .. q(sock)))
    assert.equal("PONG\n", cli(d, "PING", { unix = true }))
    -- the socket is bound under a umask that leaves only 0600
    local t = slurp(trace)
    local umask_at = t:find("umask%(0177%)")
    local bind_at = t:find("bind%([^\n]*" .. sock:gsub("%p", "%%%0"))
    assert.truthy(umask_at, t)
    assert.truthy(bind_at, t)
    assert.is_true(umask_at < bind_at)
    -- a regular file where the socket would go is not deleted
    local file = dir .. "/not-a-socket"
    write(file, "precious")
    local code, _, err = helper.run({ "timeout", "20", helper.slotgated }, {
      TYK_GW_STORAGE_ADDRS = helper.server_var("SG_TEST_CLUSTER_MASTERS"),
      TYK_GW_STORAGE_ENABLECLUSTER = "true",
      SLOTGATE_LISTEN = "unix:" .. file,
    })
    assert.equal(1, code, err)
    assert.matches("Address already in use", err)
    assert.equal("precious", slurp(file))
  end)
end)

describe("slotgated's user setting", function()
  after_each(daemon.stop_all)
  local root = sh("id -u") == "0\n"
  local run = root and it or pending
  run("drops every privilege once bound, before serving, and still serves", function()
    local nobody = sh("getent passwd nobody")
    local uid, gid = nobody:match("^nobody:[^:]*:(%d+):(%d+):")
    assert.truthy(uid, nobody)
    local policy = dir .. "/drop.lua"
    write(policy, "return {name = 'p1'}")
    os.execute("chmod 644 " .. q(policy))
    local d = start{ env = { SLOTGATE_USER = "nobody", SLOTGATE_POLICY = policy } }
    local status = slurp("/proc/" .. d.pid .. "/status")
    assert.matches("\nUid:%s+" .. uid .. "%s+" .. uid .. "%s+" .. uid .. "%s+" .. uid .. "\n", status)
    assert.matches("\nGid:%s+" .. gid .. "%s+" .. gid .. "%s+" .. gid .. "%s+" .. gid .. "\n", status)
    -- no supplementary group of root's left
    local groups = status:match("\nGroups:([^\n]*)")
    for g in groups:gmatch("%d+") do assert.equal(gid, g) end
    assert.matches("\nCapEff:%s+0+\n", status)
    assert.matches("\nCapPrm:%s+0+\n", status)
    -- every thread, not just the main one
    for task in sh("ls /proc/" .. d.pid .. "/task"):gmatch("%d+") do
      local ts = slurp("/proc/" .. d.pid .. "/task/" .. task .. "/status")
      if ts ~= "" then assert.matches("\nUid:%s+" .. uid .. "%s", ts) end
    end
    assert.matches("running as user nobody", slurp(d.log))
    assert.equal("OK\n", cli(d, "SET drop:k v"))
    assert.equal("v\n", cli(d, "GET drop:k"))
    -- a file only root may read is out of its reach now
    os.execute("chmod 600 " .. q(policy))
    daemon.signal(d, "HUP")
    -- (the settings are read again first, and they check the file)
    local log = daemon.wait_log(d, "nothing changes")
    assert.matches("nothing changes: .*drop%.lua.*Permission denied", log)
    assert.equal("1\n", cli(d, "DEL drop:k"))
  end)
end)

describe("slotgated and what clients send", function()
  after_each(daemon.stop_all)
  it("refuses client names with blanks or control bytes, and names only after AUTH", function()
    local d = start{ env = { SLOTGATE_REQUIREPASS = "pw" } }
    local a = "--no-auth-warning -a pw "
    assert.matches("Client names cannot contain spaces", cli(d, a .. "CLIENT SETNAME 'a b'"))
    assert.matches("Client names cannot contain spaces",
                   cli(d, a .. "CLIENT SETNAME \"$(printf 'a\\nb')\""))
    assert.matches("Client names cannot contain spaces", cli(d, a .. "HELLO 2 SETNAME 'x y'"))
    local named = cli(d, "", { input = "AUTH pw\r\nCLIENT SETNAME ok-name\r\nCLIENT GETNAME\r\n" })
    assert.equal("OK\nok-name\n", named:gsub("^OK\n", ""))
    -- HELLO's SETNAME without AUTH names nothing
    local out = cli(d, "--pipe", {
      input = "*4\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$7\r\nSETNAME\r\n$6\r\nsneaky\r\n" ..
              "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nCLIENT\r\n$7\r\nGETNAME\r\n" })
    assert.matches("errors: 1, replies: 3", out, 1, true)
    assert.is_nil(out:match("sneaky"))
  end)

  it("keeps what clients send to one log line", function()
    local policy = dir .. "/raise.lua"
    write(policy, "return {name = 'raise', on_command = function(ctx)\n" ..
                  "  if ctx.command == 'GET' then error('refused key ' .. ctx.keys[1], 0) end\n" ..
                  "end}")
    local d = start{ env = { SLOTGATE_POLICY = policy } }
    local out = cli(d, "GET \"$(printf 'k1\\nslotgated: error: FORGED LINE')\"")
    assert.matches("ERR policy raise", out)
    assert.matches("refused key k1 slotgated: error: FORGED LINE", out, 1, true) -- one line
    local log = daemon.wait_log(d, "refused key")
    assert.matches("refused key k1\\x0aslotgated: error: FORGED LINE", log, 1, true)
    for line in log:gmatch("[^\n]+") do
      assert.is_nil(line:match("^slotgated: error: FORGED"), line)
    end
  end)
end)
