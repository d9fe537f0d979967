-- read_replicas.lua — Tyk reads a session (apikey-...) on every request and
-- writes it far less often: serve those reads from the replicas and keep the
-- masters for writes.
--
-- Only read-only commands (GET, HGETALL, TTL, ...) on a matching first key
-- are affected; writes always go to the master. A replica may lag its master
-- by a few milliseconds: a read just after a write may miss it.
--
-- "prefer-replica" reads from a replica of the key's slot when one can be
-- reached, else from the master. The other read policies: "replica",
-- "any" (master and replicas in turn) and "master" (the default).

return {
  name = "read_replicas",
  version = "1.0",

  read = {
    ["apikey-*"] = "prefer-replica",
  },
}
