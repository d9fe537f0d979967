return {on_command = function(ctx) while true do end end, rewrite_key = function(k) local s = 0 for i = 1, 1e9 do s = s + i end return k end}
