local s = string.rep("x", 2^30)
local u = s .. s
return {}
