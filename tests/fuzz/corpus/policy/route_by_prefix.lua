-- route_by_prefix.lua — Tyk's separate stores: analytics records to the
-- analytics storage, response cache to the cache storage, everything else
-- to the main one.
--
-- The upstreams are the settings' names: "default" (storage), "cache"
-- (cache_storage, when enable_separate_cache_store is on) and "analytics"
-- (analytics_storage, when enable_separate_analytics_store is on). A route
-- to an upstream the settings lack fails the command with an error saying so.
--
-- A command goes where its first key matches; keyless commands stay on
-- "default". Applied without a Lua call.

return {
  name = "route_by_prefix",
  version = "1.0",

  route = {
    ["analytics-*"] = "analytics", -- analytics-tyk-system-analytics, ...
    ["cache-*"] = "cache",         -- cache-<apiID>...
  },
}
