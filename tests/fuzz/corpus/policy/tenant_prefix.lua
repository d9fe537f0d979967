-- tenant_prefix.lua — a namespace per client user.
--
-- Every key a client names is stored under "tenant:<user>:<key>", where
-- <user> is the user the client authenticated as (ctx.user; "default" when
-- none). Two users writing "k" write two different keys, and neither can
-- name the other's: "tenant:alice:k" sent by bob would become
-- "tenant:bob:tenant:alice:k", and deny_keys refuses it before that.
--
-- The prefix has no '{' '}' once expanded, so a key's own hash tag still
-- decides its slot (MGET {a}x {a}y stays one slot). A prefix such as
-- "{tenant:{user}}:" would instead put all of a tenant's keys in one slot.
--
-- A prefix applies to keys only. Commands that reach keys a client does not
-- name as keys (a Lua script's redis.call, a function) or that list the
-- whole keyspace (KEYS, SCAN, RANDOMKEY) would cross namespaces: they are
-- refused. Pub/Sub channel names are not keys and are not prefixed.

return {
  name = "tenant_prefix",
  version = "1.0",

  -- {user}, {client}, {addr} and {command} are filled in per command;
  -- applied without a Lua call.
  prefix = "tenant:{user}:",

  -- Checked before this script's prefix, on the keys as the client sent
  -- them: a client may not spell out a namespace itself.
  deny_keys = { "tenant:*" },

  deny_commands = {
    "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "SCRIPT",
    "FCALL", "FCALL_RO", "FUNCTION",
    "KEYS", "SCAN", "RANDOMKEY",
  },
}
