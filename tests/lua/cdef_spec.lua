-- cdef_spec.lua — the Lua module's ffi.cdef (slotgate._cdef) against the
-- public header, core/include/slotgate.h: every SG_API function and every
-- type the cdef declares must read the same in both (whitespace, comments and
-- SG_API aside), so a change to the C API fails here until the binding
-- follows it.
local ffi = require "ffi"
local helper = require "helper"
local slotgate = require "slotgate"

-- Types the header has and the cdef deliberately lacks, and why.
local NOT_IN_CDEF = {
  -- made by the SG_ERR_MAP macro; the module reads the codes via sg_errname()
  sg_errcode_t = true,
}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- One declaration in a canonical form: no SG_API, single spaces, none next
-- to punctuation.
local function normalise(d)
  d = d:gsub("%f[%w_]SG_API%f[^%w_]", " ")
  d = d:gsub("%s+", " ")
  d = d:gsub(" ?([%*%(%),;{}%[%]=]) ?", "%1")
  return trim(d)
end

-- The declarations of C text: name → { kind = "function"|"type", text },
-- plus a list of problems (duplicates, text that is not a declaration).
local function declarations(text)
  text = text:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")
  text = text:gsub("#ifdef __cplusplus.-#endif", " ") -- extern "C" { and }
  text = text:gsub("\\\n", " ")                        -- macro continuations
  text = ("\n" .. text):gsub("\n[ \t]*#[^\n]*", "\n")   -- preprocessor lines
  local decls, problems = {}, {}
  local depth, start = 0, 1
  for i = 1, #text do
    local ch = text:sub(i, i)
    if ch == "{" then
      depth = depth + 1
    elseif ch == "}" then
      depth = depth - 1
    elseif ch == ";" and depth == 0 then
      local d = normalise(text:sub(start, i))
      start = i + 1
      local name, kind
      if d:match("^typedef ") then
        kind = "type"
        name = d:match("%(%*([%w_]+)%)%(") or d:match("([%w_]+);$")
      elseif d:match("^struct [%w_]+[;{]") or d:match("^enum [%w_]+[;{]") then
        kind = "type"
        name = d:match("^(%a+ [%w_]+)")
      else
        kind = "function"
        name = d:match("([%w_]+)%(")
      end
      if not name then
        problems[#problems + 1] = "cannot read the declaration: " .. d
      elseif decls[name] then
        problems[#problems + 1] = name .. " is declared twice"
      else
        decls[name] = { kind = kind, text = d }
      end
    end
  end
  if trim(text:sub(start)) ~= "" then
    problems[#problems + 1] = "text after the last declaration: " .. trim(text:sub(start))
  end
  return decls, problems
end

-- Everything that differs between the header and the cdef, as messages.
local function drift(header_text, cdef_text)
  local h, problems = declarations(header_text)
  local c, cproblems = declarations(cdef_text)
  for _, p in ipairs(cproblems) do problems[#problems + 1] = "cdef: " .. p end
  local names = {}
  for name in pairs(h) do names[#names + 1] = name end
  for name in pairs(c) do if not h[name] then names[#names + 1] = name end end
  table.sort(names)
  for _, name in ipairs(names) do
    local hd, cd = h[name], c[name]
    if hd and not cd then
      if not NOT_IN_CDEF[name] then
        problems[#problems + 1] = string.format("%s %s is in slotgate.h but not in the cdef: %s",
                                                hd.kind, name, hd.text)
      end
    elseif cd and not hd then
      problems[#problems + 1] = string.format("%s %s is in the cdef but not in slotgate.h: %s",
                                              cd.kind, name, cd.text)
    elseif hd.text ~= cd.text then
      problems[#problems + 1] = string.format("%s %s differs:\n  slotgate.h: %s\n  cdef:       %s",
                                              hd.kind, name, hd.text, cd.text)
    end
  end
  return problems, h, c
end

local header_path = helper.source_dir .. "/core/include/slotgate.h"

describe("the Lua module's cdef", function()
  local header = read(header_path)

  it("is exposed as slotgate._cdef", function()
    assert.is_string(slotgate._cdef)
    assert.matches("sg_client_call_argv", slotgate._cdef, 1, true)
  end)

  it("declares every function and type of slotgate.h exactly as the header does", function()
    local problems = drift(header, slotgate._cdef)
    assert.equal("", table.concat(problems, "\n"))
  end)

  it("reads the whole header (the comparison is not vacuous)", function()
    local _, h, c = drift(header, slotgate._cdef)
    local nfun, nprotos = 0, 0
    for _, d in pairs(h) do if d.kind == "function" then nfun = nfun + 1 end end
    for line in header:gmatch("[^\n]+") do
      if line:match("^SG_API ") then nprotos = nprotos + 1 end
    end
    assert.equal(nprotos, nfun) -- every SG_API prototype was read as one
    assert.is_true(nfun >= 60, "only " .. nfun .. " functions found")
    for _, name in ipairs({ "sg_version", "sg_hash_hex", "sg_tyk_token_hash_algo", "sg_config_get",
                            "sg_client_call_argv", "sg_pipeline_reply", "sg_client_node_stats" }) do
      assert.equal("function", h[name] and h[name].kind, name)
      assert.equal("function", c[name] and c[name].kind, name)
    end
    for _, name in ipairs({ "sg_reply", "sg_node_stats", "sg_hash_algo", "sg_config", "sg_log_fn",
                            "sg_reply_fn", "struct event_base", "sg_errcode_t" }) do
      assert.equal("type", h[name] and h[name].kind, name)
    end
  end)

  describe("fails when the two drift apart:", function()
    local cdef = slotgate._cdef

    local function expect(problem_pattern, header_text, cdef_text)
      local problems = drift(header_text, cdef_text)
      assert.equal(1, #problems, table.concat(problems, "\n"))
      assert.matches(problem_pattern, problems[1])
    end

    it("a function added to the header", function()
      expect("function sg_new_thing is in slotgate.h but not in the cdef",
             header .. "\nSG_API int sg_new_thing(sg_client *c,\n    int n);\n", cdef)
    end)

    it("a function's parameters changed in the header", function()
      local changed = header:gsub("SG_API int sg_hash_algo_from_name%(const char %*name%);",
                                  "SG_API int sg_hash_algo_from_name(const char *name, size_t len);")
      assert.are_not.equal(header, changed)
      expect("function sg_hash_algo_from_name differs", changed, cdef)
    end)

    it("a function's return type changed in the header", function()
      local changed = header:gsub("SG_API unsigned sg_keyslot", "SG_API int sg_keyslot")
      assert.are_not.equal(header, changed)
      expect("function sg_keyslot differs", changed, cdef)
    end)

    it("a function removed from the header that the cdef still declares", function()
      local changed = header:gsub("SG_API uint64_t sg_client_refresh_count%(sg_client %*c%);", "")
      assert.are_not.equal(header, changed)
      expect("function sg_client_refresh_count is in the cdef but not in slotgate.h", changed, cdef)
    end)

    it("a function the cdef declares and the header lacks", function()
      expect("function sg_imaginary is in the cdef but not in slotgate.h",
             header, cdef .. "\nint sg_imaginary(void);\n")
    end)

    it("a struct field changed", function()
      local changed = header:gsub("int is_master;", "unsigned is_master;")
      assert.are_not.equal(header, changed)
      expect("type sg_node_stats differs", changed, cdef)
    end)

    it("an enum value changed", function()
      local changed = header:gsub("SG_REPLY_ERROR = 6", "SG_REPLY_ERROR = 7")
      assert.are_not.equal(header, changed)
      expect("type sg_reply_type differs", changed, cdef)
    end)

    it("a type added to the header", function()
      expect("type sg_new_type is in slotgate.h but not in the cdef",
             header .. "\ntypedef struct sg_new_type { int x; } sg_new_type;\n", cdef)
    end)

    it("but not on whitespace or comments", function()
      local reflowed = cdef:gsub("%(", "( /* note */\n   "):gsub(",", " ,\n\t")
      assert.equal("", table.concat(drift(header, reflowed), "\n"))
    end)
  end)

  it("declares only functions the loaded library exports", function()
    local C = ffi.load(os.getenv("SLOTGATE_LIB") or "slotgate")
    local _, _, c = drift(header, slotgate._cdef)
    local missing = {}
    for name, d in pairs(c) do
      if d.kind == "function" and not pcall(function() return C[name] end) then
        missing[#missing + 1] = name
      end
    end
    table.sort(missing)
    assert.equal("", table.concat(missing, ", "))
  end)
end)
