
      return {
        prefix = "{user}/{client}/",
        default_ttl = {["*cache-*"] = 60},
        route = {["*analytics-*"] = "analytics"},
        read = {["*apikey-*"] = "replica"},
        on_command = function(ctx)
          if ctx.addr == "10.0.0.66:1234" then return {deny = "not from there"} end
        end,
      }