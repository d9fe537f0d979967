-- The man pages and `slotgated --help` against the tables the code reads:
-- every setting (each SLOTGATE_* variable and slotgate.* key of
-- SG_DAEMON_SETTINGS, each TYK_* variable of the gateway, dashboard and pump
-- shapes from SG_FIELDS and config.c's prefixes, the named upstreams'
-- variables) appears in --help and in docs/man/slotgated.8; every option of
-- main.c is in --help and every option of --help in the man page; every policy
-- field is in slotgate-policy(5), every SG_API function in libslotgate(3); and
-- groff renders each page without a warning. The lists are parsed from the C
-- sources here, independently of the accessor --help is generated through.
local helper = require "helper"
local src = helper.source_dir

local function read(rel)
  return assert(helper.slurp(src .. "/" .. rel), rel)
end

-- The text of an X-macro table: `#define NAME(XX)` up to the first line not
-- continued with a backslash, joined.
local function xmacro(text, name)
  local start = assert(text:find("#define " .. name .. "%(XX%)"), name)
  local lines = {}
  for line in text:sub(start):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
    if not line:match("\\%s*$") then break end
  end
  return (table.concat(lines, " "):gsub("\\%s*", " "))
end

-- The arguments of each XX(...) row, as strings (NULL as false).
local function rows(body)
  local out = {}
  for args in body:gmatch("XX(%b())") do
    local row = {}
    for a in args:sub(2, -2):gmatch("[^,]+") do
      a = a:match("^%s*(.-)%s*$")
      if a == "NULL" then row[#row + 1] = false
      else row[#row + 1] = a:match('^"(.*)"$') or a end
    end
    out[#out + 1] = row
  end
  return out
end

local settings_h = read("daemon/settings.h")
local config_h = read("core/src/config.h")
local config_c = read("core/src/config.c")

-- slotgated's own settings: { key = ..., env = ..., def = default (false: computed) }
local daemon = {}
for _, r in ipairs(rows(xmacro(settings_h, "SG_DAEMON_SETTINGS"))) do
  daemon[#daemon + 1] = { key = r[2], env = r[4], def = r[5] }
end

-- Storage fields: gateway key, env suffix, pump key, dashboard key, its suffix.
local fields = {}
for _, r in ipairs(rows(xmacro(config_h, "SG_FIELDS"))) do
  fields[#fields + 1] = { gw = r[4], env = r[5], pump = r[6], dash = r[7], dashenv = r[8] }
end

local function define(text, name)
  return (assert(text:match("#define " .. name .. ' "([^"]+)"'), name))
end

-- Every variable name the storage settings read, by shape.
local vars = { gateway = {}, dashboard = {}, pump = {}, named = {} }
local prefixes = { gateway = {}, dashboard = {}, pump = {} }
for p in config_c:gmatch('"(TYK_[A-Z_]*_)"') do
  local shape = p:match("^TYK_GW_") and "gateway" or p:match("^TYK_DB_") and "dashboard"
    or p:match("^TYK_PMP_") and "pump"
  prefixes[assert(shape, p)][#prefixes[shape] + 1] = p
end
for _, f in ipairs(fields) do
  for _, p in ipairs(prefixes.gateway) do
    if f.gw then table.insert(vars.gateway, p .. f.env) end
  end
  for _, p in ipairs(prefixes.pump) do
    if f.pump then table.insert(vars.pump, p .. f.env) end
  end
  for _, p in ipairs(prefixes.dashboard) do
    if f.dashenv then table.insert(vars.dashboard, p .. f.dashenv) end
  end
  if f.gw then
    table.insert(vars.named, define(config_c, "ENV_NAMED_PREFIX") .. "<NAME>_" .. f.env)
  end
end
-- The same variables by prefix (each prefix is a heading of --help).
local by_prefix = {}
for _, shape in ipairs({ "gateway", "dashboard", "pump" }) do
  for _, p in ipairs(prefixes[shape]) do
    by_prefix[p] = {}
    for _, f in ipairs(fields) do
      local suffix = shape == "dashboard" and f.dashenv or shape ~= "dashboard" and
        (shape == "gateway" and f.gw or shape == "pump" and f.pump) and f.env
      if suffix then table.insert(by_prefix[p], p .. suffix) end
    end
  end
end
local switches = {}
for name in config_c:gmatch('#define ENV_SEPARATE_[A-Z_]+ "([A-Z_]+)"') do
  table.insert(vars.gateway, name)
  table.insert(switches, name)
end
table.insert(vars.named, define(config_c, "ENV_NAMED_LIST"))
local named_key = define(config_h, "SG_CONFIG_NAMED_KEY")

-- main.c's options: long names and the short letters of the optstring.
local main_c = read("daemon/main.c")
local options = {}
for long, short in main_c:match("struct option opts%[%] = (%b{})"):gmatch('{"([%w-]+)",[^}]-\'(%a)\'}') do
  options[#options + 1] = { long = "--" .. long, short = short }
end
local optstring = assert(main_c:match('getopt_long%(argc, argv, "([^"]+)"'))

-- The words of a text: names with '_', '<', '>', '-' and '.' kept whole.
local function words(text)
  local set = {}
  for w in text:gmatch("[%w_<>%-%.]+") do
    set[w] = true
    set[(w:gsub("[%.%-]+$", ""))] = true -- a word at the end of a sentence
  end
  return set
end

-- A man page's text without troff's escapes: fonts, \% and \-.
local function man_text(rel)
  return (read(rel):gsub("\\f[BIRP]", ""):gsub("\\%%", ""):gsub("\\%-", "-"):gsub("\\e", "\\"))
end

local function missing(list, set)
  local out = {}
  for _, w in ipairs(list) do
    if not set[w] then out[#out + 1] = w end
  end
  return table.concat(out, " ")
end

local _, help = helper.run({ helper.slotgated, "--help" })
local help_words = words(help)
local man8 = man_text("docs/man/slotgated.8")
local man8_words = words(man8)

describe("slotgated --help and slotgated(8)", function()
  it("the tables were read (the parser found every kind of setting)", function()
    assert.is_true(#daemon >= 24, "daemon settings: " .. #daemon)
    assert.is_true(#fields >= 25, "storage fields: " .. #fields)
    assert.equal(3, #prefixes.gateway)
    assert.equal(1, #prefixes.dashboard)
    assert.equal(3, #prefixes.pump)
    assert.is_true(#options >= 5, "options: " .. #options)
    -- the parsed daemon settings are the ones --check shows, one for one
    local code, out, err = helper.run({ helper.slotgated, "--check" },
      { TYK_GW_STORAGE_ADDRS = "127.0.0.1:6379" })
    assert.equal(0, code, err)
    local section = assert(out:match("\n%[slotgated%]\n(.*)$"))
    local parsed, shown = {}, 0
    for _, d in ipairs(daemon) do parsed[d.key] = true end
    for key in section:gmatch("([%w_]+) = [^\n]*\n") do
      shown = shown + 1
      assert.is_true(parsed[key], "--check shows " .. key .. ", which the parsed table lacks")
    end
    assert.equal(#daemon, shown)
    -- and the storage fields of the gateway shape are the keys --check lists
    local default = assert(out:match("\n%[default%][^\n]*\n(.-)\n\n"))
    for _, f in ipairs(fields) do
      if f.gw then assert.matches("\n" .. f.gw .. " = ", "\n" .. default, 1, true) end
    end
  end)

  it("--help names every SLOTGATE_* variable and slotgate.* key", function()
    local envs, keys = {}, { named_key }
    for _, d in ipairs(daemon) do
      envs[#envs + 1] = d.env
      keys[#keys + 1] = d.key
    end
    assert.equal("", missing(envs, help_words))
    assert.equal("", missing(keys, help_words))
  end)

  it("--help gives each slotgated setting a row: its key, its variable, its default", function()
    -- a row per setting, as settings.h pairs them: a variable shown beside another
    -- setting's key, or a wrong default, fails here (not only a missing word)
    local function lit(text) return (text:gsub("%p", "%%%0")) end
    for _, d in ipairs(daemon) do
      local def = d.def == false and "computed" or d.def == "" and "unset" or d.def
      assert.matches("\n  " .. lit(d.key) .. " +" .. lit(d.env) .. " +%[" .. lit(def) .. "%]\n",
        help)
    end
    assert.matches("\n  " .. named_key .. " +%(named upstreams: below%) +%[unset%]\n", help)
    local n = select(2, help:gsub("\n  [%l_]+ +SLOTGATE_[A-Z]+ +%[[^\n]*%]", ""))
    assert.equal(#daemon, n)
  end)

  it("--help lists each storage variable under its own heading, and no other", function()
    -- heading → its variables, as --help prints them
    local groups, cur = {}, nil
    for line in help:gmatch("([^\n]*)\n") do
      local head = line:match("^  (%S.*):$")
      if head then
        cur = {}
        groups[head] = cur
      elseif cur and line:match("^    %S") then
        for v in line:gmatch("%S+") do cur[#cur + 1] = v end
      else
        cur = nil
      end
    end
    local function group(pattern)
      local found
      for head, list in pairs(groups) do
        if head:find(pattern) then
          assert.is_nil(found, "two headings match " .. pattern)
          found = list
        end
      end
      return assert(found, "no heading matches " .. pattern)
    end
    local shape_name = { gateway = "gateway %(tyk%.conf%)", pump = "pump %(pump%.conf%)",
                         dashboard = "dashboard %(tyk_analytics%.conf%)" }
    local checked = 0
    for _, shape in ipairs({ "gateway", "dashboard", "pump" }) do
      for _, p in ipairs(prefixes[shape]) do
        local list = group("^" .. shape_name[shape] .. ", upstream [%w]+, " .. p .. "%*$")
        assert.same(by_prefix[p], list)
        checked = checked + 1
      end
    end
    assert.same(switches, group("^gateway %(tyk%.conf%), the separate%-store switches$"))
    -- the list of names first, then each field's variable
    local named = { vars.named[#vars.named] }
    for i = 1, #vars.named - 1 do named[#named + 1] = vars.named[i] end
    assert.same(named, group("^any file, upstreams named in slotgate%." .. named_key))
    assert.equal(checked + 2, (function()
      local n = 0
      for _ in pairs(groups) do n = n + 1 end
      return n
    end)())
  end)

  for _, shape in ipairs({ "gateway", "dashboard", "pump", "named" }) do
    it("--help names every variable of the " .. shape .. " storage settings", function()
      assert.is_true(#vars[shape] > 10)
      assert.equal("", missing(vars[shape], help_words))
    end)

    it("slotgated(8) names every variable of the " .. shape .. " storage settings", function()
      assert.equal("", missing(vars[shape], man8_words))
    end)
  end

  it("slotgated(8) names every SLOTGATE_* variable and slotgate.* key", function()
    local list = { named_key }
    for _, d in ipairs(daemon) do
      list[#list + 1] = d.env
      list[#list + 1] = d.key
    end
    assert.equal("", missing(list, man8_words))
  end)

  it("--help lists every option of main.c, and slotgated(8) every option of --help", function()
    for _, o in ipairs(options) do
      assert.matches("%s" .. o.long:gsub("%-", "%%-") .. "[%s,]", help)
      if optstring:find(o.short, 1, true) then
        assert.matches("%s%-" .. o.short .. ", " .. o.long:gsub("%-", "%%-"), help)
      end
    end
    local n = 0
    for line in help:gmatch("[^\n]+") do
      local opts = line:match("^  (%-[%-%w, ]+)")
      if opts then
        for o in opts:gmatch("%-%-?[%w-]+") do
          n = n + 1
          assert.is_truthy(man8_words[o] or man8:find(o, 1, true), o .. " is not in slotgated(8)")
        end
      end
    end
    assert.equal(#options + optstring:gsub("[^%a]", ""):len(), n)
  end)

  it("--help names the man page and keeps within 100 columns", function()
    assert.matches("slotgated(8)", help, 1, true)
    for line in help:gmatch("[^\n]*") do
      assert.is_true(#line <= 100, "too long: " .. line)
    end
  end)
end)

describe("slotgate-policy(5) and libslotgate(3)", function()
  it("slotgate-policy(5) describes every field policy.c accepts", function()
    local policy_c = read("core/src/policy.c")
    local list = {}
    for f in policy_c:match("known_fields%[%] = (%b{})"):gmatch('"([%w_]+)"') do
      list[#list + 1] = f
    end
    assert.is_true(#list >= 12)
    assert.equal("", missing(list, words(man_text("docs/man/slotgate-policy.5"))))
  end)

  it("libslotgate(3) names every function of slotgate.h", function()
    local header = read("core/include/slotgate.h"):gsub("\n%s*", " ")
    local list = {}
    for name in header:gmatch("SG_API [^;(]-([%w_]+)%(") do
      if not name:match("^__") then list[#list + 1] = name end -- SG_API's own definition
    end
    assert.is_true(#list >= 70, "functions: " .. #list)
    assert.equal("", missing(list, words(man_text("docs/man/libslotgate.3"))))
  end)
end)

describe("the man pages render", function()
  local _, version = helper.run({ helper.slotgated, "--version" })
  version = assert(version:match("^slotgated (%S+)\n$"), version)
  for _, page in ipairs({ "slotgated.8", "slotgate-policy.5", "libslotgate.3" }) do
    it(page .. " says the version slotgated is", function()
      local th = assert(read("docs/man/" .. page):match("\n%.TH ([^\n]+)"), page)
      assert.matches('"slotgate ' .. version:gsub("%.", "%%.") .. '"', th)
    end)

    it(page .. " without a groff warning", function()
      local code, out, err = helper.run({ "groff", "-man", "-ww", "-Tutf8",
        src .. "/docs/man/" .. page })
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.is_true(#out > 1000)
    end)
  end
end)
