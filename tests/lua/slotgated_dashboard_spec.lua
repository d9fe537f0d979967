-- The Grafana dashboard (docs/grafana/slotgated.json) against slotgated's
-- /metrics: every metric any panel's PromQL (and the upstream variable's
-- query) names must be one a running slotgated exports, so a renamed metric
-- or a typo in the dashboard fails here, not on an operator's empty graph.
-- And the per-command figures the dashboard's request and latency panels
-- read count what was sent.
local helper = require "helper"
local daemon = require "daemon"
local cjson = require "cjson"

local q, slurp, write, sh = helper.shell_quote, helper.slurp, helper.write, helper.sh
local wait_for = helper.wait_for
local start, stop, cli, new_port = daemon.start, daemon.stop, daemon.cli, daemon.port

daemon.ports_from(961)

local DASHBOARD = helper.source_dir .. "/docs/grafana/slotgated.json"

-- PromQL words that are not metric names.
local KEYWORDS = {
  by = true, without = true, on = true, ignoring = true, group_left = true, group_right = true,
  ["and"] = true, ["or"] = true, unless = true, offset = true, bool = true, inf = true, nan = true,
}

-- The metric names one PromQL expression uses: strings, label matchers,
-- ranges and grouping clauses removed, then every identifier that is not a
-- function or aggregation (followed by "("), a keyword or a variable.
local function metric_names(expr)
  local names = {}
  local e = expr:gsub('"[^"]*"', '""')          -- label values, whatever they hold
  e = e:gsub("%b{}", " ")                        -- label matchers
  e = e:gsub("%b[]", " ")                        -- ranges, subqueries
  e = e:gsub("%$[%w_]+", " "):gsub("%${[^}]*}", " ") -- Grafana variables
  for _, kw in ipairs({ "by", "without", "on", "ignoring", "group_left", "group_right" }) do
    e = e:gsub("%f[%w_]" .. kw .. "%s*%b()", " ")  -- their label lists
  end
  for pos, name in e:gmatch("()([%a_:][%w_:]*)") do
    local after = e:sub(pos + #name):match("^%s*(.?)")
    local before = pos > 1 and e:sub(pos - 1, pos - 1) or ""
    if after ~= "(" and not KEYWORDS[name:lower()] and not before:match("[%w_.]") then
      names[#names + 1] = name
    end
  end
  return names
end

-- Every {panel = title, expr = ..., names = {...}} of the dashboard: each
-- target of each panel (rows' panels too), and the variables' queries.
local function queries(dash)
  local out = {}
  local function panel(p)
    for _, t in ipairs(p.targets or {}) do
      if t.expr then out[#out + 1] = { panel = p.title, expr = t.expr, names = metric_names(t.expr) } end
    end
    for _, sub in ipairs(p.panels or {}) do panel(sub) end
  end
  for _, p in ipairs(dash.panels) do panel(p) end
  for _, v in ipairs(dash.templating.list) do
    local query = type(v.query) == "table" and v.query.query or v.query
    local metric = v.type == "query" and query:match("^label_values%(%s*([%a_:][%w_:]*)")
    if metric then out[#out + 1] = { panel = "variable " .. v.name, expr = query, names = { metric } } end
  end
  return out
end

-- Whether a scrape exports name: a "# TYPE name" line or a sample of it.
local function exported(text, name)
  local n = name:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  return text:find("\n# TYPE " .. n .. " ") ~= nil or text:find("\n" .. n .. "[{ ]") ~= nil
      or text:find("^# HELP " .. n .. " ") ~= nil
end

-- The names of dash's queries that text does not export: "panel: name" each.
local function missing(dash, text)
  local out = {}
  for _, query in ipairs(queries(dash)) do
    for _, name in ipairs(query.names) do
      if not exported(text, name) then out[#out + 1] = query.panel .. ": " .. name end
    end
  end
  return out
end

local function http(port, path)
  local body = daemon.dir .. "/body" .. port
  local out = sh("curl -s -m 10 -o " .. q(body) .. " -w '%{http_code}' http://127.0.0.1:" .. port .. path)
  return tonumber(out) or 0, slurp(body)
end

-- The value of one sample (name and labels as written) in a scrape.
local function sample(text, series)
  local v = text:match("\n" .. series:gsub("[%[%]%.%-%+%*%?%(%)%%]", "%%%0") .. " ([%d%.e%+%-]+)\n")
  return v and tonumber(v)
end

describe("the Grafana dashboard", function()
  local dash = cjson.decode(slurp(DASHBOARD))

  it("reads the PromQL the way the check below relies on", function()
    assert.same({ "slotgate_a_total", "slotgate_b_total" }, metric_names(
      'sum by (command) (rate(slotgate_a_total{upstream=~"$upstream",x="by (y)"}[$__rate_interval]))'
      .. ' / on (command) group_left sum without (node) (rate(slotgate_b_total[5m] offset 1h))'))
    assert.same({ "slotgate_c" }, metric_names("max(slotgate_c) > bool 0.5"))
  end)

  it("is a dashboard with a Prometheus data source variable and an upstream variable", function()
    assert.is_true(dash.schemaVersion >= 36)
    local vars = {}
    for _, v in ipairs(dash.templating.list) do vars[v.name] = v end
    assert.equal("datasource", vars.datasource.type)
    assert.equal("prometheus", vars.datasource.query)
    assert.equal("label_values(slotgate_upstream_slots_covered, upstream)", vars.upstream.query.query)
    local titles, n = {}, 0
    for _, query in ipairs(queries(dash)) do
      titles[query.panel] = true
      -- each query names at least one metric, and each is slotgated's: a
      -- query the extraction misread would show here
      assert.is_true(#query.names > 0, query.expr)
      for _, name in ipairs(query.names) do
        assert.matches("^slotgate_", name, 1, false, query.panel .. ": " .. query.expr)
        n = n + 1
      end
    end
    assert.is_true(n >= 30, "only " .. n .. " metric names found")
    for _, t in ipairs({ "Requests/s by command", "Mean latency by command", "Error replies by kind",
                         "Redirects by node", "Connections in use and idle", "Pool waits and timeouts",
                         "Slots covered", "Slot map refreshes", "Policy decisions", "Policy hooks",
                         "Durable WAITs and unconfirmed writes", "Clients connected" }) do
      assert.is_true(titles[t], "no panel " .. t)
    end
  end)

  it("queries only metrics slotgated exports, and the command figures count", function()
    local mport = new_port()
    local pol = daemon.dir .. "/deny.lua"
    write(pol, "return {name = 'deny', deny_commands = {'FLUSHALL'}}")
    local d = start{ env = { SLOTGATE_METRICS = "127.0.0.1:" .. mport, SLOTGATE_POLICY = pol } }
    finally(function() stop(d) end)
    assert.is_truthy(wait_for(function() return http(mport, "/health") == 200 end))
    assert.equal("OK\n", cli(d, "SET dash:k v"))
    for _ = 1, 5 do assert.equal("v\n", cli(d, "GET dash:k")) end
    assert.matches("WRONGTYPE", cli(d, "LPUSH dash:k x"))
    assert.matches("refuses FLUSHALL", cli(d, "FLUSHALL"))
    assert.equal("error", daemon.call(d.port, { "MONITOR" }).t) -- refused before it runs
    local code, text = http(mport, "/metrics")
    assert.equal(200, code)
    assert.same({}, missing(dash, text))
    -- the figures behind the request, latency and error panels
    assert.equal(5, sample(text, 'slotgate_command_calls_total{command="get"}'))
    assert.equal(1, sample(text, 'slotgate_command_calls_total{command="set"}'))
    assert.equal(1, sample(text, 'slotgate_command_failed_calls_total{command="lpush"}'))
    assert.is_true(sample(text, 'slotgate_command_duration_seconds_total{command="get"}') > 0)
    assert.equal(1, sample(text, 'slotgate_error_replies_by_code_total{code="WRONGTYPE"}'))
    assert.equal(1, sample(text, 'slotgate_command_failed_calls_total{command="flushall"}'))
    assert.equal(1, sample(text, 'slotgate_command_rejected_calls_total{command="monitor"}'))

    -- a panel naming a metric that does not exist is caught, and named
    local bad = cjson.decode(slurp(DASHBOARD))
    local target = bad.panels[3].targets[1]
    target.expr = target.expr:gsub("slotgate_", "slotgate_typo_", 1)
    local miss = missing(bad, text)
    assert.equal(1, #miss)
    assert.matches("^" .. bad.panels[3].title:gsub("%p", "%%%0") .. ": slotgate_typo_", miss[1])
  end)
end)
