local t = {}
for _, n in ipairs({"load", "loadstring", "setfenv", "getfenv", "debug", "require", "io", "os", "package", "ffi", "jit", "dofile", "collectgarbage", "newproxy"}) do t[#t+1] = tostring(rawget(_G, n)) end
pcall(function() return ("x").dump end)
local mt = getmetatable("")
return {name = table.concat(t, ","), on_command = function(ctx) return {deny = ctx.command == "FLUSHALL" and "no" or nil, upstream = ctx.user, read = "replica"} end}
