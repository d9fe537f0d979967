return {
  prefix = "{user}:{client}:{addr}:{command}:",
  deny_keys = {"secret:*", "[a-c]?x*"},
  default_ttl = {["*"] = 60},
  route = {["analytics-*"] = "analytics"},
  read = {["cache-*"] = "prefer-replica"},
  dry_run = false,
  rewrite_key = function(key, ctx) return key .. "|" .. (ctx.user or "") end,
  on_command = function(ctx) return {deny = nil, upstream = "cache", read = "any"} end,
}
