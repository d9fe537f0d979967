-- slotgated's INFO as Redis 7.0 gives it (daemon/info.c, docs/INFO.md):
-- every section with Redis's field names (compared with a real Redis node's),
-- the section sets and several sections at once, and figures of the whole
-- process: blocked clients, CPU, commands of both workers, per-command and
-- per-error counts, and what the masters hold (persistence, keyspace).
local helper = require "helper"
local daemon = require "daemon"

local start, cli, wait_for, sh = daemon.start, daemon.cli, helper.wait_for, helper.sh

daemon.ports_from(481)

-- INFO's text as { order = {section titles}, [title] = {field = value},
-- fields = {title = {names in order}} }.
local function parse(text)
  local out, cur = { order = {}, fields = {} }, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local title = line:match("^# (.+)$")
    if title then
      cur = title
      out.order[#out.order + 1] = title
      out[title], out.fields[title] = {}, {}
    elseif line ~= "" and cur then
      local k, v = line:match("^([^:]+):(.*)$")
      assert(k, "not a field: " .. line)
      out[cur][k] = v
      table.insert(out.fields[cur], k)
    end
  end
  return out
end

-- One command on conn, its reply's value (an error raises).
local function call(conn, ...)
  conn:send({ ... })
  local r, why = conn:read()
  assert(r, why)
  assert(r.t ~= "error", r.v)
  return r.v
end

local function info(conn, ...)
  return parse(call(conn, "INFO", ...))
end

describe("slotgated's INFO", function()
  local d, c

  setup(function()
    d = start()
    c = assert(daemon.connect_served(d.port))
  end)
  teardown(function()
    if c then c:close() end
    daemon.stop_all()
  end)

  it("has every field of a Redis 7.0 node's sections, under Redis's names", function()
    local redis = parse(daemon.node_cli(helper.server_var("SG_TEST_STANDALONE"), "INFO everything"))
    local ours = info(c, "everything")
    local missing = {}
    -- the sections whose fields are not per command, error or database
    for _, title in ipairs({ "Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
                             "CPU", "Cluster" }) do
      assert.is_table(redis[title], "Redis has no # " .. title)
      assert.is_table(ours[title], "no # " .. title)
      for _, f in ipairs(redis.fields[title]) do
        if ours[title][f] == nil then missing[#missing + 1] = title .. ":" .. f end
      end
    end
    assert.same({}, missing)
    -- Redis's sections, in Redis's order; slotgated's own after them
    local redis_order = {}
    for _, t in ipairs(ours.order) do
      if redis[t] then redis_order[#redis_order + 1] = t end
    end
    assert.same(redis.order, redis_order)
    assert.equal("Upstream default", ours.order[#redis.order + 1])
    assert.equal("1", ours.Cluster.cluster_enabled)
    assert.equal("master", ours.Replication.role)
    assert.equal("0", ours.Replication.connected_slaves)
    assert.equal("0", ours.Memory.maxmemory)
    assert.matches("^%d+%.%d%d%d%d%d%d$", ours.CPU.used_cpu_user)
    assert.matches("^%d+%.%d%d%d%d%d%d$", ours.CPU.used_cpu_sys_main_thread)
    assert.is_true(tonumber(ours.Memory.used_memory_rss) > 0)
    assert.equal(tostring(d.port), ours.Server.tcp_port)
    assert.equal("2", ours.Server.worker_threads)
  end)

  it("gives default, all, everything and several sections in one call, as Redis", function()
    local function titles(...) return info(c, ...).order end
    local default = { "Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU",
                      "Modules", "Errorstats", "Cluster", "Keyspace" }
    assert.same(default, titles())
    assert.same(default, titles("default"))
    assert.same({ "Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU",
                  "Modules", "Commandstats", "Errorstats", "Latencystats", "Cluster", "Keyspace" },
                titles("ALL"))
    local every = titles("everything")
    assert.equal("Upstream default", every[14])
    assert.same({ "Clients", "CPU" }, titles("cpu", "Clients"))
    assert.same({ "Commandstats", "Upstream default" }, titles("upstream", "commandstats"))
    assert.same({ "Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU",
                  "Modules", "Commandstats", "Errorstats", "Cluster", "Keyspace" },
                titles("default", "commandstats"))
    -- Redis's layout: a blank line before each section but the first
    local text = call(c, "INFO", "clients", "cpu")
    assert.matches("^# Clients\r\nconnected_clients:%d+\r\n", text)
    assert.matches("\r\n\r\n# CPU\r\nused_cpu_sys:", text)
    assert.matches("[^\n]\r\n$", text)
    assert.equal("", call(c, "INFO", "nosuchsection"))
  end)

  it("counts a client waiting on BLPOP in blocked_clients until it is answered", function()
    local key = "info:blocked:" .. d.port
    local function blocked() return info(c, "clients").Clients.blocked_clients end
    assert.equal("0", blocked())
    local b = assert(daemon.connect_served(d.port))
    b:send({ "BLPOP", key, "10" })
    assert.truthy(wait_for(function() return blocked() == "1" end), blocked())
    assert.equal(1, call(c, "LPUSH", key, "v"))
    local r = assert(b:read())
    assert.equal("v", r.v[2].v)
    assert.equal("0", blocked())
    -- one that leaves while it waits is no longer blocked
    b:send({ "BLPOP", key, "10" })
    assert.truthy(wait_for(function() return blocked() == "1" end))
    b:close()
    assert.truthy(wait_for(function() return blocked() == "0" end), blocked())
  end)

  it("shows the process's CPU growing and the ops per second under load", function()
    local before = info(c, "cpu").CPU
    local out = sh(string.format(
      "redis-benchmark -p %d -c 8 -n 20000 -P 4 --threads 2 -q SET info:bench v 2>&1", d.port))
    assert.matches("requests per second", out)
    local after = info(c, "cpu", "stats")
    local used = function(t) return tonumber(t.used_cpu_user) + tonumber(t.used_cpu_sys) end
    assert.is_true(tonumber(after.CPU.used_cpu_user) > tonumber(before.used_cpu_user),
                   before.used_cpu_user .. " then " .. after.CPU.used_cpu_user)
    assert.is_true(used(after.CPU) > used(before))
    -- 20 000 commands within the last 1.6 s of samples
    assert.is_true(tonumber(after.Stats.instantaneous_ops_per_sec) > 0)
    assert.is_true(tonumber(after.Stats.total_net_input_bytes) > 20000 * 20)
  end)
end)

describe("slotgated's INFO figures", function()
  local d

  before_each(function() d = start() end)
  after_each(daemon.stop_all)

  it("counts the commands and clients of both workers, from any connection", function()
    local conns = {}
    for i = 1, 16 do conns[i] = assert(daemon.connect(d.port)) end
    -- every connection is accepted (each worker has its own listener)
    assert.truthy(wait_for(function()
      return info(conns[1], "clients").Clients.connected_clients == "16"
    end))
    local t0 = tonumber(info(conns[1], "stats").Stats.total_commands_processed)
    for _, conn in ipairs(conns) do
      for _ = 1, 5 do conn:send({ "PING" }) end
      for _ = 1, 5 do assert.equal("PONG", assert(conn:read()).v) end
    end
    -- the kernel spreads 16 connections over the 2 workers: a worker's own
    -- figures would miss the other's pings on some of them
    for k, conn in ipairs(conns) do
      local stats = info(conn, "stats").Stats
      assert.equal(t0 + 16 * 5 + k, tonumber(stats.total_commands_processed))
      conn:close()
    end
    local c = assert(daemon.connect(d.port))
    local stats = info(c, "stats").Stats
    -- the spec's 17 and the start-up probes' (one connection per PING)
    assert.is_true(tonumber(stats.total_connections_received) >= 17)
    assert.equal("0", stats.rejected_connections)
    c:close()
  end)

  it("gives per-command stats and errors by code, summed over the workers", function()
    local conns = {}
    for i = 1, 6 do conns[i] = assert(daemon.connect(d.port)) end
    call(conns[1], "SET", "info:cs", "v")
    for i = 1, 30 do assert.equal("v", call(conns[i % 6 + 1], "GET", "info:cs")) end
    for i = 1, 2 do
      conns[i]:send({ "LPUSH", "info:cs", "x" })
      assert.matches("^WRONGTYPE", assert(conns[i]:read()).v)
    end
    conns[3]:send({ "SHUTDOWN" })
    assert.matches("does not support", assert(conns[3]:read()).v)
    local all = info(conns[4], "commandstats", "errorstats")
    assert.matches("^calls=30,usec=%d+,usec_per_call=%d+%.%d%d,rejected_calls=0,failed_calls=0$",
                   all.Commandstats.cmdstat_get)
    assert.matches("^calls=2,.*,rejected_calls=0,failed_calls=2$", all.Commandstats.cmdstat_lpush)
    assert.matches("^calls=0,.*,rejected_calls=1,failed_calls=0$",
                   all.Commandstats.cmdstat_shutdown)
    assert.equal("count=2", all.Errorstats.errorstat_WRONGTYPE)
    assert.equal("count=1", all.Errorstats.errorstat_ERR)
    assert.equal("3", info(conns[5], "stats").Stats.total_error_replies)
    for _, conn in ipairs(conns) do conn:close() end
  end)

  it("sums the keyspace and merges persistence over the masters", function()
    local c = assert(daemon.connect(d.port))
    call(c, "FLUSHALL")
    for i = 1, 20 do call(c, "SET", "info:ks:" .. i, "v") end
    for i = 1, 5 do call(c, "SET", "info:kx:" .. i, "v", "EX", "1000") end
    local all = info(c)
    assert.matches("^keys=25,expires=5,avg_ttl=%d+$", all.Keyspace.db0)
    local oldest, changes = math.huge, 0
    for addr in helper.server_var("SG_TEST_CLUSTER_MASTERS"):gmatch("[^,]+") do
      local p = parse(daemon.node_cli(addr, "INFO persistence")).Persistence
      oldest = math.min(oldest, tonumber(p.rdb_last_save_time))
      changes = changes + tonumber(p.rdb_changes_since_last_save)
    end
    local p = info(c, "persistence").Persistence
    assert.equal(oldest, tonumber(p.rdb_last_save_time))
    -- the masters may save between the two looks, never gain changes
    assert.is_true(tonumber(p.rdb_changes_since_last_save) <= changes)
    assert.equal("0", p.loading)
    call(c, "FLUSHALL")
    c:close()
  end)
end)
