-- slotgate.lua — the slotgate Lua module: libslotgate's public C API
-- (core/include/slotgate.h) through the LuaJIT FFI, made Lua-shaped.
--
--   local slotgate = require "slotgate"
--   local red = assert(slotgate.connect({ path = "/etc/tyk/tyk.conf" }))
--   red:call("SET", "k", "v")                    --> "OK"
--   red:call("GET", "nope")                      --> slotgate.null
--   red:call("INCR", "k")                        --> false, "ERR value is not an integer ..."
--
--   -- operators' policy scripts (scripts/README.md) in front of every upstream
--   local policy = assert(slotgate.policy({ "scripts/tenant_prefix.lua" }))
--   local gw = assert(slotgate.gateway({ path = "/etc/tyk/tyk.conf" }))
--   gw:set_policy(policy)
--   gw:call({ user = "alice" }, "SET", "k", "v")  --> "OK" (stored as tenant:alice:k)
--   policy:explain({ user = "bob" }, "GET", "k")  --> "command: GET tenant:bob:k"
--
-- The library: $SLOTGATE_LIB when set (a path), else the installed
-- libslotgate ("slotgate", then "libslotgate.so.0"). Its major version must be
-- the one this binding was written for.
--
-- Results, the Lua way (lua-resty-redis's conventions):
--   status reply   the status text, a string ("OK", "PONG", "QUEUED")
--   bulk string    a string (binary-safe: NUL bytes and all)
--   integer        a number; beyond +-2^53 an int64_t cdata, so no digit is lost
--   nil reply      slotgate.null (also a null array)
--   array          a table, 1-based, no holes (nil elements are slotgate.null);
--                  an error reply inside an array is the table {false, msg}
--   error reply    call() returns false, msg
-- and the RESP3 types (a connection that speaks RESP3 to the nodes):
--   map            a table keyed by the keys' values
--   set, push      a table, 1-based, as an array
--   double         a number (inf and nan included)
--   boolean        true or false
--   big number     its decimal digits, a string
--   verbatim       its text, a string (without the "txt:" format)
--   attribute      left out: the value is the reply it came with
--   failure        nil, err, code: err names what failed and where, code is
--                  the error's name ("ECONNECT", "ETIMEOUT", "EUNKNOWN" when a
--                  sent command got no answer, "ECOMMAND", "ECLOSED", ...)
-- Arguments are strings or numbers (integers go as digits, other numbers
-- with 17 significant digits; int64_t/uint64_t cdata as digits).
-- Wrong argument types and unknown option names are misuse: error(msg, 2).
--
-- The cdef below mirrors slotgate.h; tests/lua/cdef_spec.lua fails when the
-- two drift apart. The module is built once per Lua state and kept in the
-- registry, so reloading it (busted does, per spec file) gives the same table:
-- FFI types and metatypes can only be declared once.

local registry = debug.getregistry()
local REGISTRY_KEY = "slotgate.lua module"
if registry[REGISTRY_KEY] then return registry[REGISTRY_KEY] end

local ffi = require "ffi"

local ffi_new, ffi_string, ffi_gc, ffi_istype, ffi_typeof, ffi_metatype =
  ffi.new, ffi.string, ffi.gc, ffi.istype, ffi.typeof, ffi.metatype
local rshift = require("bit").rshift
local type, tostring, tonumber, select, error, pairs, ipairs, setmetatable, pcall, require =
  type, tostring, tonumber, select, error, pairs, ipairs, setmetatable, pcall, require
local math_floor, math_huge = math.floor, math.huge
local string_format, table_concat = string.format, table.concat
local os_getenv = os.getenv

local _M = { _VERSION = "0.1.0" }

-- The declarations of slotgate.h, in its order, without SG_API, macros and
-- comments. sg_errcode_t is left out: the header makes it from the
-- SG_ERR_MAP macro, and the codes are read through sg_errname() below.
local cdef = [[
const char *sg_version(void);
unsigned sg_version_hex(void);
const char *sg_strerror(int code);
const char *sg_errname(int code);
int sg_errcode(const void *handle);
const char *sg_errmsg(const void *handle);

typedef enum sg_log_level {
    SG_LOG_DEBUG = 0,
    SG_LOG_INFO = 1,
    SG_LOG_WARN = 2,
    SG_LOG_ERROR = 3,
    SG_LOG_NONE = 4
} sg_log_level;
typedef void (*sg_log_fn)(int level, const char *msg, void *ud);
void sg_set_log(sg_log_fn fn, int level, void *ud);
const char *sg_log_level_name(int level);
typedef struct sg_log_fields {
    const char *node;
    const char *client;
    const char *user;
} sg_log_fields;
typedef void (*sg_log_fields_fn)(int level, const char *msg, const sg_log_fields *fields,
                                 void *ud);
void sg_set_log_fields(sg_log_fields_fn fn, int level, void *ud);

uint16_t sg_crc16(const char *buf, size_t len);
unsigned sg_keyslot(const char *key, size_t len);

typedef enum sg_hash_algo {
    SG_HASH_MURMUR32 = 0,
    SG_HASH_MURMUR64,
    SG_HASH_MURMUR128,
    SG_HASH_SHA256
} sg_hash_algo;
int sg_hash_hex(int algo, const char *data, size_t len, char *out, size_t outlen);
int sg_hash_algo_from_name(const char *name);
int sg_tyk_token_hash_algo(const char *token, size_t len);

typedef struct sg_config sg_config;
typedef enum sg_config_shape {
    SG_SHAPE_AUTO = 0,
    SG_SHAPE_GATEWAY,
    SG_SHAPE_DASHBOARD,
    SG_SHAPE_PUMP
} sg_config_shape;
typedef enum sg_mode {
    SG_MODE_SINGLE = 0,
    SG_MODE_CLUSTER,
    SG_MODE_SENTINEL
} sg_mode;
sg_config *sg_config_new(void);
void sg_config_free(sg_config *cfg);
int sg_config_load(sg_config *cfg, const char *path, int shape, const char *const *env);
int sg_config_shape_of(const sg_config *cfg);
const char *sg_config_shape_name(int shape);
const char *sg_mode_name(int mode);
int sg_config_upstream_count(const sg_config *cfg);
const char *sg_config_upstream_name(const sg_config *cfg, int i);
int sg_config_get(sg_config *cfg, const char *upstream, const char *field, int unmasked,
                  const char **value, const char **source);
int sg_config_warning_count(const sg_config *cfg);
const char *sg_config_warning(const sg_config *cfg, int i);
const char *sg_config_dump(sg_config *cfg);
int sg_config_load_tls(sg_config *cfg);
int sg_config_tls_changed(const sg_config *before, const sg_config *now, const char *upstream);

typedef enum sg_reply_type {
    SG_REPLY_STRING = 1,
    SG_REPLY_ARRAY = 2,
    SG_REPLY_INTEGER = 3,
    SG_REPLY_NIL = 4,
    SG_REPLY_STATUS = 5,
    SG_REPLY_ERROR = 6,
    SG_REPLY_DOUBLE = 7,
    SG_REPLY_BOOL = 8,
    SG_REPLY_MAP = 9,
    SG_REPLY_SET = 10,
    SG_REPLY_ATTR = 11,
    SG_REPLY_PUSH = 12,
    SG_REPLY_BIGNUM = 13,
    SG_REPLY_VERB = 14
} sg_reply_type;
typedef struct sg_reply {
    int type;
    long long integer;
    size_t len;
    char *str;
    size_t elements;
    struct sg_reply **element;
    double dval;
    char vtype[4];
    struct sg_reply *attribute;
} sg_reply;
void sg_reply_free(sg_reply *reply);

typedef struct sg_client sg_client;
struct event_base;
typedef enum sg_read_policy {
    SG_READ_MASTER = 0,
    SG_READ_PREFER_REPLICA,
    SG_READ_REPLICA,
    SG_READ_ANY
} sg_read_policy;
sg_client *sg_client_new(const sg_config *cfg, const char *upstream, struct event_base *base);
void sg_client_free(sg_client *c);
int sg_client_connect(sg_client *c);
int sg_client_set_read_policy(sg_client *c, int policy);
int sg_client_set_max_redirects(sg_client *c, int n);
int sg_client_set_batching(sg_client *c, int on);
int sg_client_set_protocol(sg_client *c, int proto);
typedef void (*sg_reply_fn)(sg_client *c, sg_reply *reply, int status, const char *errmsg,
                            void *ud);
int sg_client_send_argv(sg_client *c, int argc, const char *const *argv,
                        const size_t *argvlen, sg_reply_fn fn, void *ud);
int sg_client_unblock(sg_client *c, void *ud, int error);
int sg_client_send_node(sg_client *c, int i, int argc, const char *const *argv,
                        const size_t *argvlen, sg_reply_fn fn, void *ud);
int sg_client_send(sg_client *c, sg_reply_fn fn, void *ud, const char *fmt, ...);
sg_reply *sg_client_call_argv(sg_client *c, int argc, const char *const *argv,
                              const size_t *argvlen);
sg_reply *sg_client_call(sg_client *c, const char *fmt, ...);
typedef struct sg_call_opts {
    int durable;
    int durable_timeout_ms;
} sg_call_opts;
int sg_client_send_opts(sg_client *c, const sg_call_opts *o, int argc,
                        const char *const *argv, const size_t *argvlen, sg_reply_fn fn,
                        void *ud);
sg_reply *sg_client_call_opts(sg_client *c, const sg_call_opts *o, int argc,
                              const char *const *argv, const size_t *argvlen);

typedef struct sg_pipeline sg_pipeline;
sg_pipeline *sg_pipeline_new(sg_client *c);
void sg_pipeline_free(sg_pipeline *p);
int sg_pipeline_append_argv(sg_pipeline *p, int argc, const char *const *argv,
                            const size_t *argvlen);
int sg_pipeline_append(sg_pipeline *p, const char *fmt, ...);
int sg_pipeline_exec(sg_pipeline *p);
size_t sg_pipeline_count(const sg_pipeline *p);
const sg_reply *sg_pipeline_reply(sg_pipeline *p, size_t i, int *status, const char **errmsg);
void sg_pipeline_reset(sg_pipeline *p);

typedef struct sg_node_stats {
    const char *addr;
    const char *id;
    int is_master;
    uint64_t commands;
    uint64_t errors;
    uint64_t moved, ask;
    uint64_t timeouts;
    uint64_t connects;
    int conns;
    int in_use;
    int idle;
    uint64_t pool_waits;
    uint64_t pool_timeouts;
    uint64_t waits;
    uint64_t unconfirmed;
} sg_node_stats;
int sg_client_node_count(sg_client *c);
int sg_client_node_stats(sg_client *c, int i, sg_node_stats *out);
uint64_t sg_client_refresh_count(sg_client *c);
int sg_client_coverage(sg_client *c, const char **why);
void sg_client_limits(sg_client *c, int *max_active, int *max_idle, int *timeout_ms);
int sg_client_reload(sg_client *c, const sg_config *cfg);

typedef struct sg_policy sg_policy;
typedef struct sg_request_ctx {
    const char *user;
    const char *client;
    const char *addr;
    int proto;
    void (*routed)(void *ud, int upstream, int argc, const char *const *argv,
                   const size_t *argvlen);
    void *routed_ud;
} sg_request_ctx;
typedef struct sg_policy_stats {
    uint64_t commands;
    uint64_t denied;
    uint64_t rewritten;
    uint64_t ttls;
    uint64_t routed;
    uint64_t hook_calls;
    uint64_t hook_errors;
    uint64_t hook_timeouts;
    uint64_t dry_run_events;
    uint64_t durable;
} sg_policy_stats;
sg_policy *sg_policy_new(void);
void sg_policy_free(sg_policy *p);
int sg_policy_load(sg_policy *p, const char *const *paths, int n);
int sg_policy_load_string(sg_policy *p, const char *name, const char *code);
int sg_policy_set_limits(sg_policy *p, long instructions, int ms);
int sg_policy_count(const sg_policy *p);
const char *sg_policy_name(const sg_policy *p, int i);
void sg_policy_stats_get(const sg_policy *p, sg_policy_stats *out);
char *sg_policy_explain(sg_policy *p, const sg_request_ctx *ctx, int argc,
                        const char *const *argv, const size_t *argvlen);
int sg_policy_key_prefix(sg_policy *p, const sg_request_ctx *ctx, char **prefix, size_t *len);
void sg_free_string(char *s);

typedef struct sg_gateway sg_gateway;
sg_gateway *sg_gateway_new(const sg_config *cfg, struct event_base *base);
void sg_gateway_free(sg_gateway *g);
void sg_gateway_set_policy(sg_gateway *g, sg_policy *p);
int sg_gateway_unblock(sg_gateway *g, void *ud, int error);
int sg_gateway_set_batching(sg_gateway *g, int on);
int sg_gateway_set_credentials(sg_gateway *g, const sg_config *cfg);
int sg_gateway_reload(sg_gateway *g, const sg_config *cfg);
sg_client *sg_gateway_client(sg_gateway *g, const char *upstream);
int sg_gateway_send_argv(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                         const char *const *argv, const size_t *argvlen, sg_reply_fn fn,
                         void *ud);
int sg_gateway_set_cache(sg_gateway *g, size_t max_bytes);
typedef struct sg_cache_stats {
    uint64_t hits, misses;
    uint64_t fills;
    uint64_t fills_lost;
    uint64_t invalidations;
    uint64_t flushes;
    uint64_t dropped_invalidated;
    uint64_t dropped_written;
    uint64_t dropped_flushed;
    uint64_t dropped_lost;
    uint64_t dropped_moved;
    uint64_t dropped_expired;
    uint64_t evictions;
    uint64_t bytes, entries, max_bytes;
    uint64_t trackers;
} sg_cache_stats;
void sg_gateway_cache_stats(const sg_gateway *g, sg_cache_stats *out);
typedef void (*sg_track_fn)(void *ud, int upstream, int event, const char *key, size_t len);
int sg_gateway_track(sg_gateway *g, sg_track_fn fn, void *ud);
int sg_gateway_tracking_ready(sg_gateway *g, int upstream);
typedef void (*sg_raw_reply_fn)(sg_client *c, const char *resp, size_t len, void *ud);
int sg_gateway_forward(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                       const char *const *argv, const size_t *argvlen, const char *resp,
                       size_t resplen, sg_reply_fn fn, sg_raw_reply_fn raw_fn, void *ud);
sg_reply *sg_gateway_call_argv(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                               const char *const *argv, const size_t *argvlen);
typedef struct sg_keymap sg_keymap;
int sg_keymap_apply(const sg_keymap *m, sg_reply *reply);
void sg_keymap_free(sg_keymap *m);
typedef struct sg_prepared {
    sg_client *client;
    int slot;
    int flags;
    int extra;
    char *resp;
    size_t resplen;
    sg_keymap *keymap;
    char error[512];
} sg_prepared;
int sg_gateway_prepare(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                       const char *const *argv, const size_t *argvlen, sg_prepared *out);
void sg_prepared_clear(sg_prepared *p);

typedef struct sg_link sg_link;
typedef void (*sg_link_fn)(sg_link *l, sg_reply *reply, int status,
                           const char *errmsg, void *ud);
sg_link *sg_link_open(sg_client *c, int slot, sg_link_fn fn, void *ud);
int sg_link_send(sg_link *l, const char *resp, size_t len, int nreplies);
const char *sg_link_node(const sg_link *l);
int sg_link_serves(const sg_link *l, int slot);
void sg_link_free(sg_link *l);
]]
_M._cdef = cdef
ffi.cdef(cdef)

-- The binding's own boxes (not part of slotgate.h): a handle that close()
-- can empty, so a closed object fails cleanly instead of touching freed
-- memory.
ffi.cdef [[
struct sg_lua_client { sg_client *c; };
struct sg_lua_pipeline { sg_pipeline *p; };
struct sg_lua_policy { sg_policy *p; };
struct sg_lua_gateway { sg_gateway *g; };
struct sg_lua_gateway_client { sg_client *c; };
]]

local function load_library()
  local path = os_getenv("SLOTGATE_LIB")
  if path and path ~= "" then
    local ok, lib = pcall(ffi.load, path)
    if ok then return lib end
    error("slotgate: cannot load SLOTGATE_LIB=" .. path .. ": " .. tostring(lib), 3)
  end
  local errs = {}
  for _, name in ipairs({ "slotgate", "libslotgate.so.0" }) do
    local ok, lib = pcall(ffi.load, name)
    if ok then return lib end
    errs[#errs + 1] = tostring(lib)
  end
  error("slotgate: cannot load libslotgate (set SLOTGATE_LIB to its path): "
        .. table_concat(errs, "; "), 3)
end

local C = load_library()

local SG_OK = 0
local lib_hex = C.sg_version_hex()
if rshift(lib_hex, 16) ~= 0 then
  error(string_format("slotgate: the library is %s; this binding (%s) needs 0.x",
                      ffi_string(C.sg_version()), _M._VERSION), 2)
end

-- ---- errors ------------------------------------------------------------------

-- Error codes by name (slotgate.errors.ETIMEOUT == -8), from the library.
local errors = {}
for code = 0, -64, -1 do
  local name = ffi_string(C.sg_errname(code))
  if name ~= "UNKNOWN" then errors[name] = code end
end
_M.errors = errors

local function errname(code) return ffi_string(C.sg_errname(code)) end

-- nil, the fixed text of a code, its name (for calls without a handle).
local function fail_code(code)
  return nil, ffi_string(C.sg_strerror(code)), errname(code)
end

-- nil, the handle's message, the code's name.
local function fail(handle, code)
  code = code or C.sg_errcode(handle)
  local msg = ffi_string(C.sg_errmsg(handle))
  if msg == "" then msg = ffi_string(C.sg_strerror(code)) end
  return nil, msg, errname(code)
end

function _M.version() return ffi_string(C.sg_version()) end

function _M.strerror(code)
  if type(code) ~= "number" then error("bad argument #1 to 'strerror' (number expected)", 2) end
  return ffi_string(C.sg_strerror(code))
end

function _M.errname(code)
  if type(code) ~= "number" then error("bad argument #1 to 'errname' (number expected)", 2) end
  return errname(code)
end

-- ---- the null sentinel -------------------------------------------------------

-- The lightuserdata NULL that cjson.null and ngx.null also are, so the three
-- compare equal and cjson encodes it as null; a unique, frozen table when
-- lua-cjson is not installed.
do
  local ok, cjson = pcall(require, "cjson")
  if ok and type(cjson) == "table" and cjson.null ~= nil then
    _M.null = cjson.null
  else
    _M.null = setmetatable({}, {
      __tostring = function() return "slotgate.null" end,
      __newindex = function() error("slotgate.null is read-only", 2) end,
      __metatable = false,
    })
  end
end
local null = _M.null

-- ---- arguments -----------------------------------------------------------------

local TWO53 = 2 ^ 53
local int64_t, uint64_t = ffi_typeof("int64_t"), ffi_typeof("uint64_t")

-- A command argument as bytes: strings as they are; numbers in a form Redis
-- reads back exactly (integers as digits, others with 17 significant
-- digits); 64-bit cdata integers as their digits, without the LL suffix.
-- Anything else is misuse, raised at the level of whoever called call() or
-- add() (they call fill_argv, which calls this: level 4).
local function arg_string(v, i, fname)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v == math_floor(v) and v > -TWO53 and v < TWO53 then return string_format("%d", v) end
    if v ~= v or v == math_huge or v == -math_huge then
      error(string_format("bad argument #%d to '%s' (%s cannot be sent)", i, fname, tostring(v)), 4)
    end
    return string_format("%.17g", v)
  end
  if t == "cdata" and (ffi_istype(int64_t, v) or ffi_istype(uint64_t, v)) then
    return (tostring(v):gsub("U?LL$", ""))
  end
  error(string_format("bad argument #%d to '%s' (string or number expected, got %s)",
                      i, fname, t), 4)
end

-- argv scratch, grown on demand and shared: calls are synchronous, and the
-- strings stay anchored in `anchor` while C reads them.
local argv_cap = 0
local argv, argvlen
local anchor = {}

-- skip: how many arguments of the Lua call come before the command (the
-- ctx of gateway:call and policy:explain), for the numbers in messages.
local function fill_argv(fname, skip, first, ...)
  local n = select("#", ...) + 1
  if n > argv_cap then
    argv_cap = n < 16 and 16 or n * 2
    argv = ffi_new("const char *[?]", argv_cap)
    argvlen = ffi_new("size_t[?]", argv_cap)
  end
  if first == nil then
    error("bad argument #" .. (skip + 1) .. " to '" .. fname .. "' (a command name expected)", 3)
  end
  local s = arg_string(first, skip + 1, fname)
  anchor[1] = s
  argv[0], argvlen[0] = s, #s
  -- select() is cheap for a few arguments; a long MSET is packed once
  local rest = n > 8 and { ... } or nil
  for i = 2, n do
    if rest then s = rest[i - 1] else s = (select(i - 1, ...)) end
    s = arg_string(s, skip + i, fname)
    anchor[i] = s
    argv[i - 1], argvlen[i - 1] = s, #s
  end
  return n
end

local function clear_anchor(n)
  for i = 1, n do anchor[i] = nil end
end

-- ---- replies ---------------------------------------------------------------------

local REPLY_STRING, REPLY_ARRAY = C.SG_REPLY_STRING, C.SG_REPLY_ARRAY
local REPLY_INTEGER = C.SG_REPLY_INTEGER
local REPLY_NIL, REPLY_STATUS, REPLY_ERROR = C.SG_REPLY_NIL, C.SG_REPLY_STATUS, C.SG_REPLY_ERROR
local REPLY_DOUBLE, REPLY_BOOL, REPLY_MAP = C.SG_REPLY_DOUBLE, C.SG_REPLY_BOOL, C.SG_REPLY_MAP
local REPLY_SET, REPLY_PUSH = C.SG_REPLY_SET, C.SG_REPLY_PUSH
local REPLY_BIGNUM, REPLY_VERB = C.SG_REPLY_BIGNUM, C.SG_REPLY_VERB

local function integer_value(v)
  if v > -TWO53 and v < TWO53 then return tonumber(v) end
  return v -- an int64_t cdata: exact
end

-- The Lua value of a reply; an error reply gives false and its text (at the
-- top) or {false, text} (inside an array).
local function reply_value(r, nested)
  local t = r.type
  if t == REPLY_STRING or t == REPLY_STATUS or t == REPLY_VERB or t == REPLY_BIGNUM then
    return ffi_string(r.str, tonumber(r.len))
  elseif t == REPLY_INTEGER then
    return integer_value(r.integer)
  elseif t == REPLY_NIL then
    return null
  elseif t == REPLY_ARRAY or t == REPLY_SET or t == REPLY_PUSH then
    local n = tonumber(r.elements)
    local out = {}
    for i = 0, n - 1 do out[i + 1] = reply_value(r.element[i], true) end
    return out
  elseif t == REPLY_MAP then
    local out = {}
    for i = 0, tonumber(r.elements) - 2, 2 do
      out[reply_value(r.element[i], true)] = reply_value(r.element[i + 1], true)
    end
    return out
  elseif t == REPLY_DOUBLE then
    return tonumber(r.dval)
  elseif t == REPLY_BOOL then
    return r.integer ~= 0
  elseif t == REPLY_ERROR then
    local msg = ffi_string(r.str, tonumber(r.len))
    if nested then return { false, msg } end
    return false, msg
  end
  return nil, "unknown reply type " .. tostring(t), "EPROTO"
end
-- For the specs: a reply tree made with the FFI, as the library would give it.
_M._reply_value = reply_value

-- ---- hashing (Tyk's hash_keys) ----------------------------------------------------

local HASH_ALGOS = { murmur32 = C.SG_HASH_MURMUR32, murmur64 = C.SG_HASH_MURMUR64,
                     murmur128 = C.SG_HASH_MURMUR128, sha256 = C.SG_HASH_SHA256 }
local HASH_NAMES = {}
for name, v in pairs(HASH_ALGOS) do HASH_NAMES[tonumber(v)] = name end
local HEX_MAX = 65 -- SG_HASH_HEX_MAX
local hexbuf = ffi_new("char[?]", HEX_MAX)

local function hash_hex(algo, data)
  local n = C.sg_hash_hex(algo, data, #data, hexbuf, HEX_MAX)
  if n < 0 then return fail_code(n) end
  return ffi_string(hexbuf, n)
end

-- slotgate.hash(algo, data) → lowercase hex digest, as Tyk writes it.
function _M.hash(algo, data)
  local a = HASH_ALGOS[algo]
  if a == nil then
    error("bad argument #1 to 'hash' (\"murmur32\", \"murmur64\", \"murmur128\" or "
          .. "\"sha256\" expected, got "
          .. (type(algo) == "string" and string_format("%q", algo) or type(algo)) .. ")", 2)
  end
  if type(data) ~= "string" then
    error("bad argument #2 to 'hash' (string expected, got " .. type(data) .. ")", 2)
  end
  return hash_hex(a, data)
end

local function token_algo(token, fname)
  if type(token) ~= "string" then
    error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(token) .. ")", 3)
  end
  local a = C.sg_tyk_token_hash_algo(token, #token)
  if a < 0 then return fail_code(a) end
  return a
end

-- slotgate.tyk_hash_algo(token) → the algorithm's name Tyk hashes the token with.
function _M.tyk_hash_algo(token)
  local a, err, code = token_algo(token, "tyk_hash_algo")
  if a == nil then return nil, err, code end
  return HASH_NAMES[a]
end

-- slotgate.tyk_hash(token) → hex digest, algorithm name: what Tyk stores a key
-- under with hash_keys on (after its "apikey-" prefix).
function _M.tyk_hash(token)
  local a, err, code = token_algo(token, "tyk_hash")
  if a == nil then return nil, err, code end
  local hex
  hex, err, code = hash_hex(a, token)
  if hex == nil then return nil, err, code end
  return hex, HASH_NAMES[a]
end

-- ---- slots ---------------------------------------------------------------------------

function _M.keyslot(key)
  if type(key) ~= "string" then
    error("bad argument #1 to 'keyslot' (string expected, got " .. type(key) .. ")", 2)
  end
  return tonumber(C.sg_keyslot(key, #key))
end

-- ---- settings ------------------------------------------------------------------------

local SHAPES = { auto = C.SG_SHAPE_AUTO, gateway = C.SG_SHAPE_GATEWAY,
                 dashboard = C.SG_SHAPE_DASHBOARD, pump = C.SG_SHAPE_PUMP }
local config_ptr_t = ffi_typeof("sg_config *")
local str_out, src_out = ffi_new("const char *[1]"), ffi_new("const char *[1]")
local env_anchor -- the env strings, alive while sg_config_load reads them

local config_methods = {}

-- config:get(upstream, field[, unmasked]) → value, source; nil, err for an
-- unknown upstream (nil means "default") or field. Secrets come masked
-- unless unmasked is true.
function config_methods.get(cfg, upstream, field, unmasked)
  if upstream ~= nil and type(upstream) ~= "string" then
    error("bad argument #1 to 'get' (string or nil expected, got " .. type(upstream) .. ")", 2)
  end
  if type(field) ~= "string" then
    error("bad argument #2 to 'get' (string expected, got " .. type(field) .. ")", 2)
  end
  local rc = C.sg_config_get(cfg, upstream, field, unmasked and 1 or 0, str_out, src_out)
  if rc ~= SG_OK then return fail(cfg, rc) end
  local v, s = str_out[0], src_out[0]
  return v ~= nil and ffi_string(v) or "", s ~= nil and ffi_string(s) or nil
end

-- config:upstreams() → { "default", ... }
function config_methods.upstreams(cfg)
  local out = {}
  for i = 0, C.sg_config_upstream_count(cfg) - 1 do
    out[i + 1] = ffi_string(C.sg_config_upstream_name(cfg, i))
  end
  return out
end

-- config:warnings() → { "...", ... } (from the last load)
function config_methods.warnings(cfg)
  local out = {}
  for i = 0, C.sg_config_warning_count(cfg) - 1 do
    out[i + 1] = ffi_string(C.sg_config_warning(cfg, i))
  end
  return out
end

-- config:dump() → the effective settings as text, secrets masked.
function config_methods.dump(cfg)
  local s = C.sg_config_dump(cfg)
  if s == nil then return fail(cfg) end
  return ffi_string(s)
end

-- config:shape() → "gateway", "dashboard" or "pump"
function config_methods.shape(cfg)
  return ffi_string(C.sg_config_shape_name(C.sg_config_shape_of(cfg)))
end

ffi_metatype("struct sg_config", {
  __index = config_methods,
  __tostring = function(cfg) return "slotgate.config (" .. config_methods.shape(cfg) .. ")" end,
})

-- slotgate.config{ path = FILE, shape = "auto"|"gateway"|"dashboard"|"pump",
-- env = { NAME = value, ... } } → config, or nil, err, code. Without env the
-- process environment is read; with it, only those variables. No path: the
-- environment alone.
function _M.config(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'config' (table expected, got " .. type(opts) .. ")", 2)
  end
  local path, shape, env = opts.path, opts.shape, opts.env
  if path ~= nil and type(path) ~= "string" then
    error("bad option 'path' to 'config' (string expected, got " .. type(path) .. ")", 2)
  end
  local shape_code = SHAPES[shape == nil and "auto" or shape]
  if shape_code == nil then
    error("bad option 'shape' to 'config' (\"auto\", \"gateway\", \"dashboard\" or "
          .. "\"pump\" expected, got "
          .. (type(shape) == "string" and string_format("%q", shape) or type(shape)) .. ")", 2)
  end
  local envp, keep
  if env ~= nil then
    if type(env) ~= "table" then
      error("bad option 'env' to 'config' (table expected, got " .. type(env) .. ")", 2)
    end
    keep = {}
    for k, v in pairs(env) do
      local tv = type(v)
      if type(k) ~= "string" or (tv ~= "string" and tv ~= "number" and tv ~= "boolean") then
        error("bad option 'env' to 'config' (NAME = string, number or boolean expected, got "
              .. tostring(k) .. " = " .. tv .. ")", 2)
      end
      keep[#keep + 1] = k .. "=" .. tostring(v)
    end
    envp = ffi_new("const char *[?]", #keep + 1)
    for i = 1, #keep do envp[i - 1] = keep[i] end
    envp[#keep] = nil
  end
  local cfg = C.sg_config_new()
  if cfg == nil then return nil, "out of memory", "ENOMEM" end
  cfg = ffi_gc(cfg, C.sg_config_free)
  env_anchor = keep
  local rc = C.sg_config_load(cfg, path, shape_code, envp)
  env_anchor = nil
  if rc ~= SG_OK then return fail(cfg, rc) end
  return cfg
end

-- ---- clients -------------------------------------------------------------------------

local READ_POLICIES = { master = C.SG_READ_MASTER, prefer_replica = C.SG_READ_PREFER_REPLICA,
                        ["prefer-replica"] = C.SG_READ_PREFER_REPLICA, -- as policies spell it
                        replica = C.SG_READ_REPLICA, any = C.SG_READ_ANY }
-- the names reported back: one per policy, whatever the alias used
local READ_NAMES = {
  [tonumber(C.SG_READ_MASTER)] = "master", [tonumber(C.SG_READ_PREFER_REPLICA)] = "prefer_replica",
  [tonumber(C.SG_READ_REPLICA)] = "replica", [tonumber(C.SG_READ_ANY)] = "any",
}

local client_box_t = ffi_typeof("struct sg_lua_client")
local pipeline_box_t = ffi_typeof("struct sg_lua_pipeline")
local stats_out = ffi_new("sg_node_stats[1]")
local status_out, errmsg_out = ffi_new("int[1]"), ffi_new("const char *[1]")

local CLOSED = "client closed"

local client_methods = {}

-- The value of a blocking call of client c with options o (NULL: none), argv
-- filled by fill_argv(fname, skip, ...). Called as a tail call, so that
-- fill_argv's errors name the caller's line.
local function call_with(c, o, fname, skip, ...)
  local n = fill_argv(fname, skip, ...)
  if c == nil then
    clear_anchor(n)
    return nil, CLOSED, "ECLOSED"
  end
  local r = C.sg_client_call_opts(c, o, n, argv, argvlen)
  clear_anchor(n)
  if r == nil then return fail(c) end
  local v, msg, code = reply_value(r, false)
  C.sg_reply_free(r)
  return v, msg, code
end

-- client:call(cmd, ...) → the reply's value; false, msg for a Redis error
-- reply; nil, err, code when the command failed.
function client_methods.call(self, ...)
  return call_with(self.c, nil, "call", 0, ...)
end

local call_opts = ffi_new("sg_call_opts[1]")
local CALL_OPTS = { durable = true, durable_timeout_ms = true }

-- client:call_opts(opts, cmd, ...) → as client:call, with options for this
-- call: durable = N (the write is acknowledged once N replicas confirm it,
-- else false, "NOTCONFIRMED ..."), durable_timeout_ms = ms (how long they may
-- take; default: the client's timeout).
function client_methods.call_opts(self, opts, ...)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'call_opts' (table expected, got " .. type(opts) .. ")", 2)
  end
  for k, v in pairs(opts) do
    if not CALL_OPTS[k] then
      error("bad argument #1 to 'call_opts' (unknown option " .. tostring(k)
            .. "; known: durable, durable_timeout_ms)", 2)
    end
    if type(v) ~= "number" or v < 0 or v ~= math_floor(v) then
      error("bad argument #1 to 'call_opts' (" .. k .. " must be a non-negative integer)", 2)
    end
  end
  call_opts[0].durable = opts.durable or 0
  call_opts[0].durable_timeout_ms = opts.durable_timeout_ms or 0
  return call_with(self.c, call_opts, "call_opts", 1, ...)
end

-- client:set_read_policy(name) → the previous one's name. Names: "master",
-- "prefer_replica", "replica", "any".
function client_methods.set_read_policy(self, name)
  local p = READ_POLICIES[name]
  if p == nil then
    error("bad argument #1 to 'set_read_policy' (\"master\", \"prefer_replica\", "
          .. "\"replica\" or \"any\" expected, got "
          .. (type(name) == "string" and string_format("%q", name) or type(name)) .. ")", 2)
  end
  if self.c == nil then return nil, CLOSED, "ECLOSED" end
  return READ_NAMES[C.sg_client_set_read_policy(self.c, p)]
end

-- client:set_max_redirects(n) → the previous value.
function client_methods.set_max_redirects(self, n)
  if type(n) ~= "number" or n < 0 or n ~= math_floor(n) then
    error("bad argument #1 to 'set_max_redirects' (non-negative integer expected)", 2)
  end
  if self.c == nil then return nil, CLOSED, "ECLOSED" end
  return C.sg_client_set_max_redirects(self.c, n)
end

local STAT_COUNTERS = { "commands", "errors", "moved", "ask", "timeouts", "connects",
                        "pool_waits", "pool_timeouts", "waits", "unconfirmed" }

-- client:stats() → { refreshes = N, coverage = N (slots the client can serve
-- now: 16384 when its map is full), { addr = "host:port", id = ..., is_master =
-- bool, commands = N, errors = N, moved = N, ask = N, timeouts = N,
-- connects = N, conns = N, in_use = N, idle = N, pool_waits = N,
-- pool_timeouts = N, waits = N (WAITs sent for durable writes), unconfirmed =
-- N (durable writes answered NOTCONFIRMED) }, ... }: one table per node the
-- client knows.
function client_methods.stats(self)
  local c = self.c
  if c == nil then return nil, CLOSED, "ECLOSED" end
  local out = { refreshes = tonumber(C.sg_client_refresh_count(c)),
                coverage = C.sg_client_coverage(c, nil) }
  local st = stats_out[0]
  for i = 0, C.sg_client_node_count(c) - 1 do
    if C.sg_client_node_stats(c, i, stats_out) == SG_OK then
      local node = {
        addr = st.addr ~= nil and ffi_string(st.addr) or "",
        id = st.id ~= nil and ffi_string(st.id) or "",
        is_master = st.is_master ~= 0,
        conns = st.conns, in_use = st.in_use, idle = st.idle,
      }
      for _, k in ipairs(STAT_COUNTERS) do node[k] = tonumber(st[k]) end
      out[#out + 1] = node
    end
  end
  return out
end

local pipeline_anchor = setmetatable({}, { __mode = "k" }) -- pipeline box → its client box

-- client:pipeline() → a pipeline for this client, or nil, err, code.
function client_methods.pipeline(self)
  if self.c == nil then return nil, CLOSED, "ECLOSED" end
  local p = C.sg_pipeline_new(self.c)
  if p == nil then return nil, "out of memory", "ENOMEM" end
  local box = pipeline_box_t(p)
  pipeline_anchor[box] = self -- the client lives as long as its pipelines
  return box
end

-- client:close(): closes the connections and frees the client now (the
-- garbage collector does it otherwise). Later calls fail with "client closed".
function client_methods.close(self)
  local c = self.c
  if c ~= nil then
    self.c = nil
    C.sg_client_free(c)
  end
  return true
end

function client_methods.closed(self) return self.c == nil end

ffi_metatype(client_box_t, {
  __index = client_methods,
  __gc = client_methods.close,
  __tostring = function(self)
    return self.c == nil and "slotgate.client (closed)" or "slotgate.client"
  end,
})

-- slotgate.connect(config_or_options, upstream, opts) → a connected blocking
-- client, or nil, err, code. A table is first given to slotgate.config;
-- upstream nil means "default". opts.protocol = 3 speaks RESP3 to the nodes
-- (replies as maps, doubles, booleans ...: see the top of this file).
function _M.connect(cfg, upstream, opts)
  if cfg == nil or (type(cfg) == "table") then
    local err, code
    cfg, err, code = _M.config(cfg)
    if cfg == nil then return nil, err, code end
  elseif not ffi_istype(config_ptr_t, cfg) then
    error("bad argument #1 to 'connect' (slotgate.config or table expected, got " .. type(cfg) ..
          ")", 2)
  end
  if upstream ~= nil and type(upstream) ~= "string" then
    error("bad argument #2 to 'connect' (string or nil expected, got " .. type(upstream) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'connect' (table or nil expected, got " .. type(opts) .. ")", 2)
  end
  local proto = opts and opts.protocol
  if proto ~= nil and proto ~= 2 and proto ~= 3 then
    error("bad option 'protocol' to 'connect' (2 or 3 expected, got " .. tostring(proto) .. ")",
          2)
  end
  local c = C.sg_client_new(cfg, upstream, nil)
  if c == nil then return nil, "out of memory", "ENOMEM" end
  local box = client_box_t(c) -- from here the box frees c
  if C.sg_errcode(c) ~= SG_OK or (proto and C.sg_client_set_protocol(c, proto) ~= SG_OK) then
    local _, err, code = fail(c)
    box:close()
    return nil, err, code
  end
  local rc = C.sg_client_connect(c)
  if rc ~= SG_OK then
    local _, err, code = fail(c, rc)
    box:close()
    return nil, err, code
  end
  return box
end

-- ---- pipelines -------------------------------------------------------------------------

local pipeline_methods = {}

local function pipeline_client(self)
  local owner = pipeline_anchor[self]
  if self.p == nil or owner == nil or owner.c == nil then return nil end
  return owner.c
end

-- pipeline:add(cmd, ...) → true, or nil, err, code.
function pipeline_methods.add(self, ...)
  local n = fill_argv("add", 0, ...)
  local c = pipeline_client(self)
  if c == nil then
    clear_anchor(n)
    return nil, CLOSED, "ECLOSED"
  end
  local rc = C.sg_pipeline_append_argv(self.p, n, argv, argvlen)
  clear_anchor(n)
  if rc ~= SG_OK then return fail(c, rc) end
  return true
end

-- pipeline:count() → commands added since the last exec or reset.
function pipeline_methods.count(self)
  if self.p == nil then return 0 end
  return tonumber(C.sg_pipeline_count(self.p))
end

function pipeline_methods.reset(self)
  if self.p ~= nil then C.sg_pipeline_reset(self.p) end
end

-- pipeline:exec() → a list with one result per command, in the order added,
-- or nil, err, code when the pipeline could not run at all. A result is the
-- value call() would return; a Redis error reply (CROSSSLOT included) is
-- {false, msg}; a command that failed on its own (its node down, no answer
-- in time, refused by the library) is {false, err, code = "EUNKNOWN"}. So
-- `res[1] == false` catches both, and `res.code` tells a failure. The pipeline
-- is empty again afterwards.
function pipeline_methods.exec(self)
  local c = pipeline_client(self)
  if c == nil then return nil, CLOSED, "ECLOSED" end
  local p = self.p
  local rc = C.sg_pipeline_exec(p)
  if rc ~= SG_OK then
    C.sg_pipeline_reset(p)
    return fail(c, rc)
  end
  local out = {}
  for i = 0, tonumber(C.sg_pipeline_count(p)) - 1 do
    local r = C.sg_pipeline_reply(p, i, status_out, errmsg_out)
    if r ~= nil then
      out[i + 1] = reply_value(r, true)
    else
      local code = status_out[0]
      local msg = errmsg_out[0] ~= nil and ffi_string(errmsg_out[0])
                  or ffi_string(C.sg_strerror(code))
      out[i + 1] = { false, msg, code = errname(code) }
    end
  end
  C.sg_pipeline_reset(p)
  return out
end

-- pipeline:close(): frees it now (the garbage collector does otherwise).
function pipeline_methods.close(self)
  local p = self.p
  if p ~= nil then
    self.p = nil
    C.sg_pipeline_free(p)
  end
  pipeline_anchor[self] = nil
  return true
end

ffi_metatype(pipeline_box_t, {
  __index = pipeline_methods,
  __gc = function(self)
    -- not close(): the anchor entry of a collected key is already gone
    local p = self.p
    if p ~= nil then
      self.p = nil
      C.sg_pipeline_free(p)
    end
  end,
  __tostring = function() return "slotgate.pipeline" end,
})

-- ---- policies --------------------------------------------------------------------------
--
-- A policy set: operators' scripts (scripts/README.md) run by the library in
-- a sandboxed lua_State of its own, not in this one. Used by gateways.

local policy_box_t = ffi_typeof("struct sg_lua_policy")
local gateway_box_t = ffi_typeof("struct sg_lua_gateway")
local gateway_client_box_t = ffi_typeof("struct sg_lua_gateway_client")
local policy_stats_out = ffi_new("sg_policy_stats[1]")
local ctx_out = ffi_new("sg_request_ctx[1]")

local POLICY_CLOSED, GATEWAY_CLOSED = "policy closed", "gateway closed"
local CTX_FIELDS = { user = true, client = true, addr = true }

-- A ctx table { user =, client =, addr = } (each a string or nil) as an
-- sg_request_ctx, or NULL for nil. The strings stay alive in the caller's
-- table while C reads them. Misuse is raised at the level of whoever called
-- the method that calls this (level 3).
local function fill_ctx(ctx, fname)
  if ctx == nil then return nil end
  if type(ctx) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (ctx table or nil expected, got " .. type(ctx) ..
          ")", 3)
  end
  for k, v in pairs(ctx) do
    if not CTX_FIELDS[k] then
      error("bad argument #1 to '" .. fname .. "' (unknown ctx field " .. tostring(k)
            .. "; known: user, client, addr)", 3)
    end
    if type(v) ~= "string" then
      error("bad argument #1 to '" .. fname .. "' (ctx." .. k .. " must be a string, got "
            .. type(v) .. ")", 3)
    end
  end
  local c = ctx_out[0]
  c.user, c.client, c.addr = ctx.user, ctx.client, ctx.addr
  return ctx_out
end

-- paths: a string or a list of strings → const char *[n], n, and the list
-- of the strings, which the caller puts in paths_anchor while C reads them.
local paths_anchor
local function paths_array(paths, fname)
  if type(paths) == "string" then paths = { paths } end
  if type(paths) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (path or list of paths expected, got " ..
          type(paths) .. ")", 3)
  end
  local n = #paths
  local arr = ffi_new("const char *[?]", n > 0 and n or 1)
  for i = 1, n do
    if type(paths[i]) ~= "string" then
      error("bad argument #1 to '" .. fname .. "' (paths[" .. i .. "] must be a string, got "
            .. type(paths[i]) .. ")", 3)
    end
    arr[i - 1] = paths[i]
  end
  return arr, n, paths
end

-- The gateways that use a policy (so closing it detaches them), and the
-- policy of each gateway (so it lives as long as the gateway uses it).
-- policy box → { gateway box = true } (weak)
local policy_users = setmetatable({}, { __mode = "k" })
local gateway_policy = setmetatable({}, { __mode = "k" }) -- gateway box → policy box

local policy_methods = {}

-- policy:load(paths) → true, or nil, err, code. paths: a file or a list of
-- files, applied in that order. All or nothing: when one fails (err names
-- the file and line), the set loaded before stays in force.
function policy_methods.load(self, paths)
  local arr, n, list = paths_array(paths, "load")
  local p = self.p
  if p == nil then return nil, POLICY_CLOSED, "ECLOSED" end
  paths_anchor = list
  local rc = C.sg_policy_load(p, arr, n)
  paths_anchor = nil
  if rc ~= SG_OK then return fail(p, rc) end
  return true
end

-- policy:load_string(name, code) → true, or nil, err, code: one script from
-- text; name stands for its file in messages (and is its default name).
function policy_methods.load_string(self, name, code)
  if type(name) ~= "string" then
    error("bad argument #1 to 'load_string' (string expected, got " .. type(name) .. ")", 2)
  end
  if type(code) ~= "string" then
    error("bad argument #2 to 'load_string' (string expected, got " .. type(code) .. ")", 2)
  end
  local p = self.p
  if p == nil then return nil, POLICY_CLOSED, "ECLOSED" end
  local rc = C.sg_policy_load_string(p, name, code)
  if rc ~= SG_OK then return fail(p, rc) end
  return true
end

-- policy:set_limits(instructions, ms) → true, or nil, err, code: the bounds
-- on each hook call and on loading a script (defaults 1000000 and 50).
function policy_methods.set_limits(self, instructions, ms)
  if type(instructions) ~= "number" or instructions ~= math_floor(instructions) then
    error("bad argument #1 to 'set_limits' (integer expected, got " .. type(instructions) .. ")", 2)
  end
  if type(ms) ~= "number" or ms ~= math_floor(ms) then
    error("bad argument #2 to 'set_limits' (integer expected, got " .. type(ms) .. ")", 2)
  end
  local p = self.p
  if p == nil then return nil, POLICY_CLOSED, "ECLOSED" end
  local rc = C.sg_policy_set_limits(p, instructions, ms)
  if rc ~= SG_OK then return fail(p, rc) end
  return true
end

-- policy:names() → { "name", ... }: the loaded scripts, in order.
function policy_methods.names(self)
  local p = self.p
  if p == nil then return nil, POLICY_CLOSED, "ECLOSED" end
  local out = {}
  for i = 0, C.sg_policy_count(p) - 1 do out[i + 1] = ffi_string(C.sg_policy_name(p, i)) end
  return out
end

local POLICY_COUNTERS = { "commands", "denied", "rewritten", "ttls", "routed", "hook_calls",
                          "hook_errors", "hook_timeouts", "dry_run_events", "durable" }

-- policy:stats() → { commands = N, denied = N, rewritten = N, ttls = N,
-- routed = N, hook_calls = N, hook_errors = N, hook_timeouts = N,
-- dry_run_events = N, durable = N }, counted since the policy was made.
function policy_methods.stats(self)
  local p = self.p
  if p == nil then return nil, POLICY_CLOSED, "ECLOSED" end
  C.sg_policy_stats_get(p, policy_stats_out)
  local st, out = policy_stats_out[0], {}
  for _, k in ipairs(POLICY_COUNTERS) do out[k] = tonumber(st[k]) end
  return out
end

-- policy:explain(ctx, cmd, ...) → what the set decides for the command,
-- without sending it: "command: SET t:a 1", "deny: NOPERM ...",
-- "upstream: cache", "read: replica", "ttl: KEY SECONDS", one a line.
-- ctx is { user =, client =, addr = } or nil. The hooks do run (and count
-- in stats()).
function policy_methods.explain(self, ctx, ...)
  local cctx = fill_ctx(ctx, "explain")
  local n = fill_argv("explain", 1, ...)
  local p = self.p
  if p == nil then
    clear_anchor(n)
    return nil, POLICY_CLOSED, "ECLOSED"
  end
  local s = C.sg_policy_explain(p, cctx, n, argv, argvlen)
  clear_anchor(n)
  if s == nil then return nil, "out of memory", "ENOMEM" end
  local text = ffi_string(s)
  C.sg_free_string(s)
  return text
end

-- policy:close(): frees the set now (the garbage collector does otherwise);
-- gateways that used it go on without policies.
function policy_methods.close(self)
  local p = self.p
  if p ~= nil then
    for gw in pairs(policy_users[self] or {}) do
      if gw.g ~= nil and gateway_policy[gw] == self then
        C.sg_gateway_set_policy(gw.g, nil)
        gateway_policy[gw] = nil
      end
    end
    policy_users[self] = nil
    self.p = nil
    C.sg_policy_free(p)
  end
  return true
end

function policy_methods.closed(self) return self.p == nil end

ffi_metatype(policy_box_t, {
  __index = policy_methods,
  __gc = function(self)
    -- a gateway that still used it would keep it alive: nothing to detach
    local p = self.p
    if p ~= nil then
      self.p = nil
      C.sg_policy_free(p)
    end
  end,
  __tostring = function(self)
    return self.p == nil and "slotgate.policy (closed)" or "slotgate.policy"
  end,
})

-- slotgate.policy([paths]) → a policy set, or nil, err, code. With paths (a
-- file or a list of files) the scripts are loaded; without, the set is empty
-- (commands pass unchanged) until load() or load_string().
function _M.policy(paths)
  local arr, n, list
  if paths ~= nil then arr, n, list = paths_array(paths, "policy") end
  local p = C.sg_policy_new()
  if p == nil then return nil, "out of memory", "ENOMEM" end
  local box = policy_box_t(p) -- from here the box frees p
  if arr ~= nil then
    paths_anchor = list
    local rc = C.sg_policy_load(p, arr, n)
    paths_anchor = nil
    if rc ~= SG_OK then
      local _, err, code = fail(p, rc)
      box:close()
      return nil, err, code
    end
  end
  return box
end

-- ---- gateways --------------------------------------------------------------------------
--
-- Every upstream of a settings handle behind one policy set; blocking, as a
-- client from slotgate.connect.

-- gateway box → { client box = true } (weak)
local gateway_clients = setmetatable({}, { __mode = "k" })
local client_gateway = setmetatable({}, { __mode = "k" })  -- client box → its gateway box

local gateway_methods = {}

-- gateway:set_policy(policy) → true: the policy set commands go through from
-- now on (nil: none). The gateway keeps the policy alive while it uses it.
function gateway_methods.set_policy(self, policy)
  if policy ~= nil and not ffi_istype(policy_box_t, policy) then
    error("bad argument #1 to 'set_policy' (slotgate.policy or nil expected, got " ..
          type(policy) .. ")", 2)
  end
  local g = self.g
  if g == nil then return nil, GATEWAY_CLOSED, "ECLOSED" end
  if policy ~= nil and policy.p == nil then return nil, POLICY_CLOSED, "ECLOSED" end
  C.sg_gateway_set_policy(g, policy and policy.p or nil)
  gateway_policy[self] = policy
  if policy ~= nil then
    local users = policy_users[policy]
    if users == nil then
      users = setmetatable({}, { __mode = "k" })
      policy_users[policy] = users
    end
    users[self] = true
  end
  return true
end

local cache_stats_out = ffi_new("sg_cache_stats[1]")
local CACHE_FIGURES = { "hits", "misses", "fills", "fills_lost", "invalidations", "flushes",
                        "dropped_invalidated", "dropped_written", "dropped_flushed",
                        "dropped_lost", "dropped_moved", "dropped_expired", "evictions", "bytes",
                        "entries", "max_bytes", "trackers" }

-- gateway:set_cache(max_bytes) → true: the near cache's bound in bytes (0:
-- off, and emptied). Reads a policy's `cache` patterns name are answered
-- from it (docs/CACHE.md).
function gateway_methods.set_cache(self, max_bytes)
  if type(max_bytes) ~= "number" or max_bytes < 0 or max_bytes ~= math_floor(max_bytes) then
    error("bad argument #1 to 'set_cache' (a whole number of bytes, 0 or more, expected, got " ..
          tostring(max_bytes) .. ")", 2)
  end
  local g = self.g
  if g == nil then return nil, GATEWAY_CLOSED, "ECLOSED" end
  C.sg_gateway_set_cache(g, max_bytes)
  return true
end

-- gateway:cache_stats() → { hits =, misses =, fills =, fills_lost =,
-- invalidations =, flushes =, dropped_invalidated =, dropped_written =,
-- dropped_flushed =, dropped_lost =, dropped_moved =, dropped_expired =,
-- evictions =, bytes =, entries =, max_bytes =, trackers = }.
function gateway_methods.cache_stats(self)
  local g = self.g
  if g == nil then return nil, GATEWAY_CLOSED, "ECLOSED" end
  C.sg_gateway_cache_stats(g, cache_stats_out)
  local st, out = cache_stats_out[0], {}
  for _, k in ipairs(CACHE_FIGURES) do out[k] = tonumber(st[k]) end
  return out
end

-- gateway:policy() → the policy set in force, or nil.
function gateway_methods.policy(self) return gateway_policy[self] end

-- gateway:call(ctx, cmd, ...) → as client:call, through the policies: the
-- reply's value; false, msg for an error reply (a command a policy refuses
-- gets its error this way: "NOPERM ...", or "ERR policy NAME: HOOK failed:
-- FILE:LINE: ..." when a hook raised); nil, err, code when the command
-- failed. ctx is { user =, client =, addr = } or nil (user "default").
function gateway_methods.call(self, ctx, ...)
  local cctx = fill_ctx(ctx, "call")
  local n = fill_argv("call", 1, ...)
  local g = self.g
  if g == nil then
    clear_anchor(n)
    return nil, GATEWAY_CLOSED, "ECLOSED"
  end
  local r = C.sg_gateway_call_argv(g, cctx, n, argv, argvlen)
  clear_anchor(n)
  if r == nil then return fail(g) end
  local v, msg, code = reply_value(r, false)
  C.sg_reply_free(r)
  return v, msg, code
end

-- gateway:client([upstream]) → the client the gateway uses for an upstream
-- (nil: "default"), with the methods of a client from slotgate.connect
-- (call, stats, pipeline, set_read_policy, ...), or nil, err, code for an
-- upstream the settings lack. Commands sent on it bypass the policies. The
-- gateway owns it: close() on it only lets go of it, and it fails with
-- "client closed" once the gateway is closed.
function gateway_methods.client(self, upstream)
  if upstream ~= nil and type(upstream) ~= "string" then
    error("bad argument #1 to 'client' (string or nil expected, got " .. type(upstream) .. ")", 2)
  end
  local g = self.g
  if g == nil then return nil, GATEWAY_CLOSED, "ECLOSED" end
  local c = C.sg_gateway_client(g, upstream)
  if c == nil then return fail(g) end
  local box = gateway_client_box_t(c)
  client_gateway[box] = self -- the gateway lives as long as its clients' boxes
  gateway_clients[self][box] = true
  return box
end

-- gateway:close(): closes every upstream's connections and frees the gateway
-- now (the garbage collector does otherwise). Later calls fail with
-- "gateway closed", and its clients' calls with "client closed".
function gateway_methods.close(self)
  local g = self.g
  if g ~= nil then
    self.g = nil
    for box in pairs(gateway_clients[self] or {}) do box.c = nil end
    local policy = gateway_policy[self]
    if policy ~= nil and policy_users[policy] then policy_users[policy][self] = nil end
    gateway_policy[self] = nil
    C.sg_gateway_free(g)
  end
  return true
end

function gateway_methods.closed(self) return self.g == nil end

ffi_metatype(gateway_box_t, {
  __index = gateway_methods,
  __gc = function(self)
    local g = self.g
    if g ~= nil then
      self.g = nil
      C.sg_gateway_free(g)
    end
  end,
  __tostring = function(self)
    return self.g == nil and "slotgate.gateway (closed)" or "slotgate.gateway"
  end,
})

-- A gateway's client: a client's methods, but the gateway frees it.
local gateway_client_methods = setmetatable({
  close = function(self)
    self.c = nil
    return true
  end,
}, { __index = client_methods })

ffi_metatype(gateway_client_box_t, {
  __index = gateway_client_methods,
  __tostring = function(self)
    return self.c == nil and "slotgate.client (closed)" or "slotgate.client (of a gateway)"
  end,
})

-- slotgate.gateway(config_or_options) → a blocking gateway over every
-- upstream of the settings (a slotgate.config, or a table given to
-- slotgate.config first), with no policies yet; or nil, err, code. Nothing
-- is connected until the first command.
function _M.gateway(cfg)
  if cfg == nil or type(cfg) == "table" then
    local err, code
    cfg, err, code = _M.config(cfg)
    if cfg == nil then return nil, err, code end
  elseif not ffi_istype(config_ptr_t, cfg) then
    error("bad argument #1 to 'gateway' (slotgate.config or table expected, got " .. type(cfg) ..
          ")", 2)
  end
  local g = C.sg_gateway_new(cfg, nil)
  if g == nil then return nil, "out of memory", "ENOMEM" end
  local box = gateway_box_t(g) -- from here the box frees g
  gateway_clients[box] = setmetatable({}, { __mode = "k" })
  if C.sg_errcode(g) ~= SG_OK then
    local _, err, code = fail(g)
    box:close()
    return nil, err, code
  end
  return box
end

registry[REGISTRY_KEY] = _M
return _M
