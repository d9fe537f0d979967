-- tyk_hash_keys.lua — keep API keys the way Tyk does with "hash_keys": true.
--
-- With hash_keys on, Tyk Gateway never stores a token in clear: the session
-- of token T lives under "apikey-" .. hash(T), where hash is MurmurHash3
-- (32-bit) unless T is a base64 JSON token whose "h" field names another
-- algorithm (murmur64, murmur128, sha256). This policy lets a client that
-- knows only the token (GET apikey-T, SET apikey-T ...) read and write the
-- same key Tyk does, so tools can share Tyk's storage without hashing
-- themselves.
--
-- Clients must send raw tokens: a key that is already a hash would be hashed
-- again. Other keys pass unchanged.

return {
  name = "tyk_hash_keys",
  version = "1.0",

  -- Called for every key of every command (after any prefix); returns the
  -- key to use. slotgate.tyk_hash picks the algorithm from the token exactly
  -- as Tyk does and returns lowercase hex.
  rewrite_key = function(key)
    local token = key:match("^apikey%-(.+)$")
    if token == nil then return key end
    return "apikey-" .. slotgate.tyk_hash(token)
  end,
}
