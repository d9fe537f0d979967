-- default_ttl.lua — Tyk's response cache ("cache-<apiID>...") expires after an
-- hour unless the write says otherwise.
--
-- After a successful write to a matching key (SET, HSET, RPUSH, ...: any
-- command the command table calls a write), slotgate sends
-- EXPIRE key 3600 NX: the key gets a TTL only when it has none, so
-- "SET cache-x v EX 10" keeps its 10 seconds, and a plain SET (which clears
-- a TTL) gets the hour again.

return {
  name = "default_ttl",
  version = "1.0",

  -- glob pattern = seconds (a whole number, 1 or more). Keep patterns from
  -- overlapping: a Lua table has no order, so which of two matching
  -- patterns applies is not defined.
  default_ttl = {
    ["cache-*"] = 3600,
  },
}
