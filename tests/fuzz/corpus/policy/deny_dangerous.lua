-- deny_dangerous.lua — commands no application should send through the
-- gateway: wiping data (FLUSHALL, FLUSHDB), scanning the whole keyspace in
-- one call (KEYS: use SCAN), and changing or probing the servers (CONFIG,
-- DEBUG).
--
-- The client gets "NOPERM policy deny_dangerous refuses <COMMAND>", and the
-- command never reaches Redis. Applied without a Lua call.

return {
  name = "deny_dangerous",
  version = "1.0",

  -- Command names, any case. A container such as CONFIG refuses all its
  -- subcommands; "CONFIG SET" would refuse only that one.
  deny_commands = { "FLUSHALL", "FLUSHDB", "KEYS", "CONFIG", "DEBUG" },

  -- Uncomment to give clients your own text instead of the default one:
  -- deny_message = "not through the gateway: ask the operators",
}
