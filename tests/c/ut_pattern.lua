-- ut_pattern.lua — the differential check of core/src/pattern.c, run by
-- ut_pattern.c: every case is run through LuaJIT's own string functions and
-- through slotgate's (the table `mine`), and every result and error text must
-- be equal. Cases: a table by feature, then a generator of small random
-- patterns and subjects with a fixed seed.
-- Returns: cases run, cases that differed, and the first differences.
local mine = ...
local ref = string
local fmt, byte, char, concat = string.format, string.byte, string.char, table.concat

local cases = {} -- {fn = "find", args = {...}, n = #args}

local function add(fn, ...)
    cases[#cases + 1] = {fn = fn, args = {...}, n = select("#", ...)}
end
-- the same arguments through all four functions
local function all4(s, p, ...)
    add("find", s, p, ...)
    add("match", s, p, ...)
    add("gmatch", s, p)
    add("gsub", s, p, "<%0>", ...)
end

-- ---- by feature ---------------------------------------------------------------

local bytes = {}
for i = 0, 255 do bytes[#bytes + 1] = char(i) end
local every = concat(bytes) -- all 256 bytes
local text = "The (quick) [brown] fox_42 jumps\tover 0x1F \"lazy\" dogs!\n"

-- classes, their complements, in sets, and letters that are no class
for c in ("acdglpsuwxzbefhijkmnoqrtvy"):gmatch(".") do
    for _, cl in ipairs {c, c:upper()} do
        add("gsub", every, "%" .. cl, "")
        add("gsub", every, "[%" .. cl .. "]", "")
        add("gsub", every, "[^%" .. cl .. "]", "")
        add("find", text, "%" .. cl .. "+")
        add("match", every, "%" .. cl .. "+", 2)
    end
end
for c in ("%.()[]^$*+-?:;,!\"'#&=~_ "):gmatch(".") do
    add("gsub", every, "%" .. c, "#")
    add("gsub", every, "[%" .. c .. "]", "#")
end

-- sets
for _, p in ipairs {"[a-z]", "[^a-z]", "[a-]", "[-a]", "[]]", "[^]]", "[]a]", "[a-%d]",
    "[%a-z]", "[z-a]", "[%]]", "[%-]", "[a%-z]", "[.]", "[%%]", "[a-c-e]", "[^^]", "[%a_][%w_]*",
    "[0-9a-fA-F]+", "[^%s]+", "[%s%p]", "[\1-\31]", "[\128-\255]+", "[a-a]", "[-]", "[^-]",
    "[]-a]", "[!-/]", "[%z]", "[^%z]"} do
    all4(text, p)
    add("gsub", every, p, ".")
end

-- anchors and $
for _, p in ipairs {"^T", "^he", "s!\n$", "!$", "^$", "$a", "a$b", "^", "$", "^^", "$$", "^%a+",
    "^(.-)$", "x$", "%a+$", "^.", ".$", "(%$)", "^%$", "%w+%$"} do
    all4(text, p)
    all4("", p)
    all4("a$b$", p)
end

-- quantifiers on a character, a class, a set and '.'
for _, item in ipairs {"a", "%a", "[ab]", ".", "%d", "[^a]", "%%"} do
    for _, q in ipairs {"", "*", "+", "-", "?"} do
        for _, s in ipairs {"", "a", "aab", "baaa", "123abc", "%%a", "ab12ba"} do
            all4(s, item .. q)
            all4(s, item .. q .. "b")
            all4(s, "^" .. item .. q .. "$")
            all4(s, "(" .. item .. q .. ")(.*)")
        end
    end
end
all4("aaa", "a-a")
all4("aaa", "a-$")
all4("<a><b>", "<(.-)>")
all4("<a><b>", "<(.*)>")
all4("xay", "x?a?y?")
all4("-a-", "-")
all4("a-b", "a-b")
all4("a--b", "a%-+b")

-- captures and position captures
for _, p in ipairs {"(a)(b)", "((a)b)", "()", "(a)()", "(()a)", "((((a))))", "(a(b(c)))", "()a()",
    "(h)(e)(l)(l)(o)", "(%w+)=(%w+)", "(%w+) *= *(%w+)", "(.)%1", "()ll()", "^()", "()$", "(()())",
    "(a*(.)%w(%s*))"} do
    all4("hello abc key=val a=b aab aa", p)
    all4("", p)
end
all4(("a"):rep(40), ("(a)"):rep(32))
all4(("a"):rep(40), ("(a)"):rep(33))
all4(("a"):rep(40), ("()"):rep(32))
all4(("a"):rep(40), ("()"):rep(33))
all4(("a"):rep(40), ("("):rep(32) .. "a" .. (")"):rep(32))

-- %b
for _, p in ipairs {"%b()", "%b[]", "%b{}", '%b""', "%b<>", "%bxy", "%b()%b()", "(%b())", "%b))",
    "%b((", "%b", "%b(", "x%b()", "%b()$"} do
    all4("f(a(b)c) [x[y]] \"q\" <<>> ((( ))) x(y)", p)
    all4("(", p)
    all4("", p)
end

-- %f
for _, p in ipairs {"%f[%w]%w+", "%f[%W]", "%f[%z]", "%f[^%z]", "%f[%a]%a+%f[%A]", "%f[%l]", "%f[a]",
    "%f[^a]", "%f", "%fa", "%f[a", "%f[]]", "%f[%d]%d+", "()%f[%s]", "%f[%w_][%w_]+"} do
    all4("THE (quick) fox 42 jumps_over", p)
    all4("a", p)
    all4("", p)
end

-- back-references
for _, p in ipairs {"(a)%1", "([\"'])(.-)%1", "(a)%2", "%1", "()%1", "(a%1)", "%0", "(.)%1+",
    "(%w+) %1", "(a)(b)%2%1", "((a)%2)", "(a*)%1$", "()(a)%2", "%9", "(a)%10"} do
    all4("say \"hi\" and 'yo' aa abba word word", p)
    all4("", p)
end

-- malformed patterns, everywhere
for _, p in ipairs {"%", "a%", "[a", "[", "[^", "[a%", "[%", "[]", "[^]", "(a", "a)", "(()", ")",
    "(a))", "%b", "%ba", "%f", "%fa", "[a-", "[%a", "((a)", "(()a", "a(", "%g", "%z", "%Z"} do
    all4("abc a\0 ()", p)
    all4("", p)
    all4("xyz", p)
end

-- init
for _, init in ipairs {-10, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 100, 1.5, -1.5, 2.9, "2", "-1"} do
    for _, p in ipairs {"", "b", "^b", "b$", "(b)", ".", "%a*", "bc", "x"} do
        add("find", "abc", p, init)
        add("match", "abc", p, init)
        add("find", "", p, init)
        add("match", "", p, init)
    end
    add("find", "abc", "b", init, true)
    add("find", "a.c", ".", init, true)
end

-- plain find and the plain fast path
for _, plain in ipairs {true, false, 0, "", {}} do
    add("find", "a.b*c(d", ".", 1, plain)
    add("find", "a.b*c(d", "*c(", 1, plain)
    add("find", "a.b*c(d", "(", 3, plain)
    add("find", "a.b*c(d", "", 8, plain)
end
for _, p in ipairs {"a)", "b)c", ")", "]", "a]", "abc", "z", "", "b]c)"} do
    all4("xa)b)c]abc", p)
end

-- NUL bytes in subjects and patterns
for _, p in ipairs {"a\0b", "\0", "%z", "[\0]", "\0.", "a\0.", "(a\0b)", "[a\0]", "%b\0a", "%z+",
    "a%z", "[%z]+", "%Z+", "\0%a", ".\0"} do
    all4("xa\0b\0\0c", p)
    add("find", "xa\0b\0\0c", p, 1, true)
end

-- numbers for strings
add("find", 12345, 34)
add("match", 12345, "(%d)(%d)")
add("gsub", 12345, 3, 9)
add("gsub", 12.5, "%.", ",")
add("gmatch", 1e15, "0")
add("find", "1.5e3", 1.5)

-- gsub replacements: strings
for _, r in ipairs {"x", "%0", "%1", "%2", "%%", "%x", "%", "a%", "[%0|%1]", "%1%1", "", "%9",
    "%0%0%0", "%%1", "%\0", 42} do
    add("gsub", "hello world", "o", r)
    add("gsub", "hello world", "(o)", r)
    add("gsub", "hello world", "(o)(r?)", r)
    add("gsub", "hello world", "()o", r)
end
-- tables
local t = {hello = "HI", world = 42, o = false, l = true, x = {}, [1] = "one", [5] = "five"}
add("gsub", "hello world", "%w+", t)
add("gsub", "hello world", "(%w+)", t)
add("gsub", "hello world", "o", t)
add("gsub", "hello world", "l", t)
add("gsub", "x marks", "x", t)
add("gsub", "a b c d e", "()%a", t)
add("gsub", "hello", "%w+", setmetatable({}, {__index = function(_, k) return k:upper() end}))
-- functions
local fns = {
    function(a) return a:upper() end,
    function() end,
    function() return false end,
    function() return 7 end,
    function() return {} end,
    function() return true end,
    function(...) return select("#", ...) end,
    function(a, b) return tostring(b) .. tostring(a) end,
    function(a) error("from the replacement: " .. tostring(a)) end,
    function(a) return a, "second" end,
}
for _, f in ipairs(fns) do
    for _, p in ipairs {"%w+", "(%w)(%w*)", "()l()", "", "x*"} do
        add("gsub", "hello world", p, f)
    end
end
-- bad replacements and counts
add("gsub", "abc", "b")
add("gsub", "abc", "b", nil)
add("gsub", "abc", "b", true)
for _, n in ipairs {0, 1, 2, -1, 2.5, 0.5, 100, "1", "x", {}} do
    add("gsub", "hello world", "o", "0", n)
    add("gsub", "hello", "", "-", n)
    add("gsub", "abc", "^a", "x", n)
end
-- anchored and empty
for _, p in ipairs {"", "^", "^a", "^b", "x*", "^x*", "$", "^$", "a*", ".-", "%f[%w]"} do
    all4("aab ab", p)
    all4("", p)
end
add("gsub", "abc", "%w", "%0%0")
add("gsub", "abc", "%w", "%1")
add("gsub", "abc", "", "x", 2)

-- bad arguments
add("find")
add("find", "abc")
add("find", "abc", nil)
add("find", nil, "a")
add("find", {}, "a")
add("find", "abc", {})
add("find", "abc", "b", {})
add("find", "abc", "b", "x")
add("find", "abc", "b", nil)
add("match", "abc")
add("match", "abc", "b", {})
add("gmatch", "abc")
add("gmatch", nil, "a")
add("gsub", "abc")
add("gsub", nil, "a", "b")

local hand_made = #cases

-- ---- generated: small random patterns and subjects -------------------------------

math.randomseed(20240614)
local rnd = math.random
local alphabet = {"a", "b", "c", "a", "b", "(", ")", "[", "]", "%", "-", ".", " ", "1", "2", "\0",
    "x", "$", "^"}
local function subject()
    local n, out = rnd(0, 10), {}
    for i = 1, n do out[i] = alphabet[rnd(#alphabet)] end
    return concat(out)
end
local atoms = {"a", "b", "c", "x", " ", ".", "%a", "%d", "%s", "%w", "%A", "%S", "%%", "%(", "%.",
    "[ab]", "[^a]", "[a-c]", "[%d%s]", "[]a]", "[%]]", "-", "1", "%z"}
local quants = {"", "", "", "*", "+", "-", "?"}
local function pattern(depth)
    local n, out, open = rnd(1, 5), {}, 0
    if rnd(5) == 1 then out[#out + 1] = "^" end
    for _ = 1, n do
        local k = rnd(20)
        if k == 1 then
            out[#out + 1] = "("
            open = open + 1
        elseif k == 2 and open > 0 then
            out[#out + 1] = ")"
            open = open - 1
        elseif k == 3 then
            out[#out + 1] = "()"
        elseif k == 4 then
            out[#out + 1] = "%b()"
        elseif k == 5 then
            out[#out + 1] = ({"%f[%w]", "%f[%W]", "%f[a]", "%f[%z]"})[rnd(4)]
        elseif k == 6 then
            out[#out + 1] = "%" .. rnd(1, 3)
        elseif k == 7 and depth < 1 then
            out[#out + 1] = "(" .. pattern(depth + 1) .. ")"
        else
            out[#out + 1] = atoms[rnd(#atoms)] .. quants[rnd(#quants)]
        end
    end
    -- mostly closed captures; sometimes left open or stray, as people write them
    if rnd(4) > 1 then out[#out + 1] = (")"):rep(open) end
    if rnd(30) == 1 then out[#out + 1] = ")" end
    if rnd(8) == 1 then out[#out + 1] = "$" end
    if rnd(40) == 1 then out[#out + 1] = ({"%", "[", "[a", "%b", "%f"})[rnd(5)] end
    return concat(out)
end
local repls = {"<%0>", "%1", "%2-%1", "x", "%%", "", "%"}
for _ = 1, 4000 do
    local s, p, k = subject(), pattern(0), rnd(8)
    if k <= 2 then
        add("find", s, p, rnd(-3, 4))
    elseif k <= 4 then
        add("match", s, p, rnd(-3, 4))
    elseif k == 5 then
        add("gmatch", s, p)
    elseif k <= 7 then
        add("gsub", s, p, repls[rnd(#repls)], rnd(-1, 4))
    else
        add("gsub", s, p, function(a, b) return b and (tostring(a) .. "|" .. tostring(b)) end)
    end
end

-- ---- run and compare --------------------------------------------------------------

local function pack(...) return {n = select("#", ...), ...} end

-- Calls lib's function on the case (gmatch: every result of the iteration).
-- One call site for both libraries, so that the positions errors carry match.
local function run(lib, c)
    return pack(pcall(function()
        local f = lib[c.fn]
        if c.fn ~= "gmatch" then
            local r = pack(f(unpack(c.args, 1, c.n)))
            return r
        end
        local out, it = {n = 0}, f(unpack(c.args, 1, c.n))
        for _ = 1, 1000 do
            local r = pack(it())
            if r[1] == nil then break end
            out.n = out.n + 1
            out[out.n] = r
        end
        return out
    end))
end

local function show(v)
    if type(v) == "string" then return (fmt("%q", v):gsub("\n", "n")) end
    if type(v) == "table" then
        local out = {}
        for i = 1, v.n or #v do out[i] = show(v[i]) end
        out = "{" .. concat(out, ", ") .. "}"
        return #out > 400 and out:sub(1, 400) .. "..." or out
    end
    return tostring(v)
end

local function same(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) ~= "table" then return a == b end
    if a.n ~= b.n then return false end
    for i = 1, a.n do
        if not same(a[i], b[i]) then return false end
    end
    return true
end

local failed, report = 0, {}
for i, c in ipairs(cases) do
    local want, got = run(ref, c), run(mine, c)
    -- a table argument or result (gsub's) is not compared by identity
    if not same(want, got) then
        failed = failed + 1
        if #report < 30 then
            report[#report + 1] = fmt("case %d (%s): string.%s%s\n  LuaJIT: %s\n  mine:   %s", i,
                i <= hand_made and "by feature" or "generated", c.fn,
                show({n = c.n, unpack(c.args, 1, c.n)}), show(want), show(got))
        end
    end
end
return #cases, failed, concat(report, "\n")
