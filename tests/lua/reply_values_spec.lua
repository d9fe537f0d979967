-- reply_values_spec.lua — how the Lua module gives each reply type (RESP2
-- and RESP3) as a Lua value: trees built with the FFI exactly as the
-- library lays them out (sg_reply in slotgate.h), read by the module's own
-- conversion. Which bytes make which tree is ut_reply's and ct_resp3's.
local ffi = require "ffi"
local slotgate = require "slotgate"

local C = ffi.C
local value = slotgate._reply_value
local keep = {} -- the cdata behind the trees, alive while a test runs

local function node(t, fields)
  local r = ffi.new("sg_reply")
  keep[#keep + 1] = r
  r.type = t
  for k, v in pairs(fields or {}) do
    if k == "str" then
      local buf = ffi.new("char[?]", #v + 1, v)
      keep[#keep + 1] = buf
      r.str, r.len = buf, #v
    elseif k == "vtype" then
      ffi.copy(r.vtype, v)
    else
      r[k] = v
    end
  end
  return r
end

local function aggregate(t, elems)
  local arr = ffi.new("sg_reply *[?]", #elems)
  keep[#keep + 1] = arr
  for i, e in ipairs(elems) do arr[i - 1] = e end
  return node(t, { elements = #elems, element = arr })
end

describe("reply values", function()
  after_each(function() keep = {} end)

  it("gives a map as a table keyed by its keys", function()
    local m = aggregate(C.SG_REPLY_MAP, {
      node(C.SG_REPLY_STRING, { str = "name" }), node(C.SG_REPLY_STRING, { str = "redis" }),
      node(C.SG_REPLY_STRING, { str = "proto" }), node(C.SG_REPLY_INTEGER, { integer = 3 }),
      node(C.SG_REPLY_STRING, { str = "modules" }), aggregate(C.SG_REPLY_ARRAY, {}),
    })
    local v = value(m)
    assert.same({ name = "redis", proto = 3, modules = {} }, v)
  end)

  it("gives sets and pushes as arrays, in the order sent", function()
    local s = aggregate(C.SG_REPLY_SET, { node(C.SG_REPLY_STRING, { str = "b" }),
                                          node(C.SG_REPLY_STRING, { str = "a" }) })
    assert.same({ "b", "a" }, value(s))
    local p = aggregate(C.SG_REPLY_PUSH, { node(C.SG_REPLY_STRING, { str = "message" }),
                                           node(C.SG_REPLY_STRING, { str = "ch" }),
                                           node(C.SG_REPLY_STRING, { str = "hi" }) })
    assert.same({ "message", "ch", "hi" }, value(p))
  end)

  it("gives doubles as numbers, infinities and NaN included", function()
    assert.equal(1.5, value(node(C.SG_REPLY_DOUBLE, { str = "1.5", dval = 1.5 })))
    assert.equal(-math.huge, value(node(C.SG_REPLY_DOUBLE, { str = "-inf", dval = -math.huge })))
    local nan = value(node(C.SG_REPLY_DOUBLE, { str = "nan", dval = 0 / 0 }))
    assert.is_true(nan ~= nan)
  end)

  it("gives booleans as booleans, big numbers and verbatim text as strings", function()
    assert.is_true(value(node(C.SG_REPLY_BOOL, { integer = 1 })))
    assert.is_false(value(node(C.SG_REPLY_BOOL, { integer = 0 })))
    local big = "1234567999999999999999999999999999999"
    assert.equal(big, value(node(C.SG_REPLY_BIGNUM, { str = big })))
    assert.equal("some\ntext", value(node(C.SG_REPLY_VERB, { str = "some\ntext", vtype = "txt" })))
  end)

  it("gives a null as slotgate.null and a nested error as {false, msg}", function()
    local a = aggregate(C.SG_REPLY_MAP, { node(C.SG_REPLY_STRING, { str = "k" }),
                                          node(C.SG_REPLY_NIL),
                                          node(C.SG_REPLY_STRING, { str = "e" }),
                                          node(C.SG_REPLY_ERROR, { str = "ERR x" }) })
    local v = value(a)
    assert.equal(slotgate.null, v.k)
    assert.same({ false, "ERR x" }, v.e)
    local ok, msg = value(node(C.SG_REPLY_ERROR, { str = "ERR top" }))
    assert.is_false(ok)
    assert.equal("ERR top", msg)
  end)

  it("leaves an attribute out: the value is the reply it came with", function()
    local r = node(C.SG_REPLY_STRING, { str = "reply" })
    r.attribute = aggregate(C.SG_REPLY_ATTR, { node(C.SG_REPLY_STRING, { str = "a" }),
                                               node(C.SG_REPLY_INTEGER, { integer = 1 }) })
    assert.equal("reply", value(r))
  end)
end)
