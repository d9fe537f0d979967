/*
 * slotgate.h — the public API of libslotgate, and its only public header.
 *
 * Conventions, for every call below:
 *   - Names are sg_ (functions, types) and SG_ (macros, constants).
 *   - Handles are opaque. Every sg_x_new() has an sg_x_free(); freeing NULL
 *     does nothing.
 *   - Calls that can fail return an int: SG_OK (0) on success, a negative
 *     SG_E* code on failure. The handle then holds the code and a message that
 *     names what failed and where: read them with sg_errcode() / sg_errmsg().
 *     sg_strerror() gives the fixed text of a code.
 *   - Strings returned by the library are owned by the handle they came from
 *     and stay valid until the handle is freed or the next call that says it
 *     invalidates them; nothing returned needs freeing unless its comment says so.
 *   - The library never prints. It logs through the callback set with
 *     sg_set_log().
 */
#ifndef SLOTGATE_H
#define SLOTGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SG_BUILDING_LIBRARY) && defined(__GNUC__)
#define SG_API __attribute__((visibility("default")))
#else
#define SG_API
#endif

/* ---- Version -------------------------------------------------------------
 * CMake reads these three lines; the shared library's SOVERSION is the major. */
#define SG_VERSION_MAJOR 0
#define SG_VERSION_MINOR 1
#define SG_VERSION_PATCH 0

#define SG_VERSION_HEX                                                         \
    ((SG_VERSION_MAJOR << 16) | (SG_VERSION_MINOR << 8) | SG_VERSION_PATCH)

/* The version of the library actually loaded, as "MAJOR.MINOR.PATCH". Static. */
SG_API const char *sg_version(void);
/* The same as SG_VERSION_HEX, but of the loaded library. */
SG_API unsigned sg_version_hex(void);

/* ---- Errors --------------------------------------------------------------
 * One list yields the enum and the strings (libuv's UV_ERRNO_MAP habit). */
#define SG_ERR_MAP(XX)                                                         \
    XX(OK, 0, "success")                                                       \
    XX(ENOMEM, -1, "out of memory")                                            \
    XX(EINVAL, -2, "invalid argument")                                         \
    XX(EIO, -3, "input/output error")                                          \
    XX(ECONFIG, -4, "invalid configuration")                                   \
    XX(EJSON, -5, "malformed JSON")                                            \
    XX(EENV, -6, "invalid environment variable")                               \
    XX(ECONNECT, -7, "cannot connect")                                         \
    XX(ETIMEOUT, -8, "timed out")                                              \
    XX(EPROTO, -9, "protocol error")                                           \
    XX(EAUTH, -10, "authentication failed")                                    \
    XX(ETLS, -11, "TLS error")                                                 \
    XX(ECLOSED, -12, "connection closed")                                      \
    XX(EREDIRECT, -13, "too many redirects")                                   \
    XX(ECROSSSLOT, -14, "keys in request don't hash to the same slot")         \
    XX(ECLUSTERDOWN, -15, "cluster is down")                                   \
    XX(EPOOL, -16, "connection pool exhausted")                                \
    XX(EUNKNOWN, -17, "outcome unknown")                                       \
    XX(EPOLICY, -18, "refused by policy")                                      \
    XX(ESCRIPT, -19, "policy script error")                                    \
    XX(ECOMMAND, -20, "unknown or unsupported command")                        \
    XX(EREPLY, -21, "error reply from server")

typedef enum sg_errcode_t {
#define SG_ERR_ENUM_(name, code, text) SG_##name = (code),
    SG_ERR_MAP(SG_ERR_ENUM_)
#undef SG_ERR_ENUM_
} sg_errcode_t;

/* The fixed text of an error code ("unknown error" for codes not in the map).
 * Static storage. */
SG_API const char *sg_strerror(int code);
/* The symbolic name of an error code without the SG_ prefix ("ENOMEM"), or
 * "UNKNOWN". Static storage. */
SG_API const char *sg_errname(int code);

/* The last error of any slotgate handle (sg_config, ...): its code (SG_OK
 * after success) and its message ("" when none). The message names what failed
 * and where; it is valid until the next call on that handle. A NULL handle
 * gives SG_ENOMEM and "out of memory" (what a failed sg_x_new() means). */
SG_API int sg_errcode(const void *handle);
SG_API const char *sg_errmsg(const void *handle);

/* ---- Logging -------------------------------------------------------------
 * The library logs through one process-wide callback. Messages below the set
 * level are not even formatted. Without a callback nothing is logged. */
typedef enum sg_log_level {
    SG_LOG_DEBUG = 0,
    SG_LOG_INFO = 1,
    SG_LOG_WARN = 2,
    SG_LOG_ERROR = 3,
    SG_LOG_NONE = 4
} sg_log_level;

typedef void (*sg_log_fn)(int level, const char *msg, void *ud);

/* Sets the callback (NULL: none) and the lowest level passed to it. Not
 * thread-safe against concurrent logging: call it at start-up. */
SG_API void sg_set_log(sg_log_fn fn, int level, void *ud);
/* "debug", "info", "warn", "error", "none". Static storage. */
SG_API const char *sg_log_level_name(int level);

/* What a message concerns, where the code that logs it knows: the node
 * ("host:port"), and for a host that serves clients the client's address and
 * the user it authenticated as. NULL: not known or not concerned. Valid
 * during the callback only. */
typedef struct sg_log_fields {
    const char *node;
    const char *client;
    const char *user;
} sg_log_fields;

typedef void (*sg_log_fields_fn)(int level, const char *msg, const sg_log_fields *fields,
                                 void *ud);

/* As sg_set_log, for a callback that takes the fields too (never NULL: every
 * member NULL when none is known), so a host can write structured lines. It
 * replaces the callback either function set. */
SG_API void sg_set_log_fields(sg_log_fields_fn fn, int level, void *ud);

/* ---- Slots ---------------------------------------------------------------
 * Redis Cluster's key → slot rule: CRC16 (XMODEM) of the key, or of the part
 * between the first '{' and the next '}' when that part is non-empty, mod 16384. */
#define SG_SLOTS 16384

/* CRC16-XMODEM of len bytes. */
SG_API uint16_t sg_crc16(const char *buf, size_t len);
/* The cluster slot of a key (binary-safe), 0..16383. */
SG_API unsigned sg_keyslot(const char *key, size_t len);

/* ---- Hashing (Tyk's hash_keys) --------------------------------------------
 * The digests Tyk Gateway stores keys under when hash_keys is on ("apikey-" +
 * the hash of the whole token), in Tyk's form: lowercase hex of the digest
 * bytes. murmur32 is MurmurHash3 x86_32, murmur64 the first word (h1) of
 * MurmurHash3 x64_128, murmur128 both words (h1 then h2), all with seed 0 and
 * each word written big-endian; sha256 is SHA-256. For "hello": 248bfa47,
 * cbd8a7b341bd9b02, cbd8a7b341bd9b025b1e906a48ae1d19. */
typedef enum sg_hash_algo {
    SG_HASH_MURMUR32 = 0, /*  8 hex digits */
    SG_HASH_MURMUR64,     /* 16 */
    SG_HASH_MURMUR128,    /* 32 */
    SG_HASH_SHA256        /* 64 */
} sg_hash_algo;

/* Room for the longest digest (sha256) and its NUL. */
#define SG_HASH_HEX_MAX 65

/* Writes the hex digest of len bytes of data (binary-safe; data may be NULL
 * when len is 0) and a NUL to out. outlen must be at least 2 * digest bytes
 * + 1: 9, 17, 33 or 65 by algo (SG_HASH_HEX_MAX fits all). Returns the
 * number of hex digits written (8, 16, 32, 64), or SG_EINVAL for an unknown
 * algo, a NULL out or too small an outlen (out untouched), or SG_ENOMEM when
 * OpenSSL cannot allocate (sha256 only). Thread-safe; no handle. */
SG_API int sg_hash_hex(int algo, const char *data, size_t len, char *out,
                       size_t outlen);

/* The algorithm named "murmur32", "murmur64", "murmur128" or "sha256"
 * (exactly, lower case, as in Tyk's hash_key_function), or -1. */
SG_API int sg_hash_algo_from_name(const char *name);

/* The algorithm Tyk hashes this token with (its TokenHashAlgo and
 * hashFunction): murmur32 for a legacy token (org id + key id); for a token
 * that starts with "ey" and is padded standard base64 (RFC 4648 section 4, as
 * Go's base64.StdEncoding decodes it: line breaks skipped; URL-safe or
 * unpadded base64 is not decoded, so such a token is legacy) of a JSON object,
 * the algorithm its first top-level "h" string names: "" or "murmur32" give
 * murmur32, "murmur64", "murmur128", "sha256" theirs, and any other name
 * murmur64 (Tyk's fallback for an unknown name). No "h", or an "h" that is
 * not a string, gives murmur32, as does JSON that does not parse (strict JSON
 * here; Tyk's parser is laxer with malformed JSON, which Tyk-made tokens never
 * are). Returns an sg_hash_algo, or SG_ENOMEM. Thread-safe; no handle. */
SG_API int sg_tyk_token_hash_algo(const char *token, size_t len);

/* ---- Storage settings ----------------------------------------------------
 * Reads Redis settings exactly as Tyk Gateway (tyk.conf), Dashboard
 * (tyk_analytics.conf) and Pump (pump.conf) do: a JSON file, then the
 * environment on top, field by field. See README "Configuration". */

typedef struct sg_config sg_config;

typedef enum sg_config_shape {
    SG_SHAPE_AUTO = 0,  /* tell the shape from the file's keys (or the env) */
    SG_SHAPE_GATEWAY,   /* tyk.conf: "storage", "cache_storage", ...      */
    SG_SHAPE_DASHBOARD, /* tyk_analytics.conf: top-level "redis_*" keys     */
    SG_SHAPE_PUMP       /* pump.conf: "analytics_storage_config"           */
} sg_config_shape;

typedef enum sg_mode {
    SG_MODE_SINGLE = 0, /* one Redis node: the first address                */
    SG_MODE_CLUSTER,    /* Redis Cluster: addresses are seeds              */
    SG_MODE_SENTINEL    /* master_name set: addresses are sentinels        */
} sg_mode;

/* A new, empty settings handle, or NULL when out of memory. */
SG_API sg_config *sg_config_new(void);
SG_API void sg_config_free(sg_config *cfg);

/* Loads settings into cfg, replacing what it held. path is a JSON file, or
 * NULL for the environment alone. shape SG_SHAPE_AUTO tells the shape from
 * the file's keys, or, with no file, from which TYK_* variables are set
 * (gateway when none are). env is a NULL-terminated "NAME=value" array, or
 * NULL for the process environment. Returns SG_OK, or SG_EJSON (message
 * "FILE:LINE:COL: expected ..."), SG_EENV (names the variable, its value
 * and what it should be), SG_ECONFIG (names the key and why), SG_EIO,
 * SG_ENOMEM. On failure cfg holds no upstreams. */
SG_API int sg_config_load(sg_config *cfg, const char *path, int shape,
                          const char *const *env);

/* The shape that was read (after SG_SHAPE_AUTO was resolved). */
SG_API int sg_config_shape_of(const sg_config *cfg);
/* "auto", "gateway", "dashboard", "pump". Static storage. */
SG_API const char *sg_config_shape_name(int shape);
/* "single", "cluster", "sentinel". Static storage. */
SG_API const char *sg_mode_name(int mode);

/* Upstreams: named storages. tyk.conf gives "default" (storage), and "cache"
 * and "analytics" when their enable_separate_* switch is on; the other
 * shapes give "default". Index 0 is always "default". */
SG_API int sg_config_upstream_count(const sg_config *cfg);
/* Name of upstream i, or NULL when i is out of range. */
SG_API const char *sg_config_upstream_name(const sg_config *cfg, int i);

/* The effective value of one setting of an upstream, as text, and where it
 * came from. field is the gateway's JSON key ("optimisation_max_active",
 * "addrs", ...) or one of the resolved fields "mode" and "addresses"
 * (comma-separated "host:port" list actually used). Secrets are returned
 * masked unless unmasked is non-zero. *value and *source (when not NULL)
 * receive strings owned by cfg, valid until it is reloaded or freed; source
 * is "default", "file PATH:LINE:COL", "env NAME" or "resolved". Returns
 * SG_OK, or SG_EINVAL for an unknown upstream or field. */
SG_API int sg_config_get(sg_config *cfg, const char *upstream,
                         const char *field, int unmasked, const char **value,
                         const char **source);

/* Makes the OpenSSL context of every upstream that has use_ssl now, reading
 * its CA, certificate and key files: the clients made from cfg then share it
 * (one context, not one per client) and sg_client_reload compares what it was
 * made from (the settings and the files' contents) with theirs, so files
 * that do not load refuse a reload before any client is touched. SG_OK, or
 * SG_ETLS naming the upstream, the file and OpenSSL's reason. cfg keeps the
 * contexts until it is loaded again or freed. */
SG_API int sg_config_load_tls(sg_config *cfg);
/* 1 when upstream's contexts in before and now were both loaded
 * (sg_config_load_tls) from different TLS settings or file contents, else 0. */
SG_API int sg_config_tls_changed(const sg_config *before, const sg_config *now,
                                 const char *upstream);

/* Warnings from the last load (e.g. addresses ignored in single-node mode).
 * Strings owned by cfg. */
SG_API int sg_config_warning_count(const sg_config *cfg);
SG_API const char *sg_config_warning(const sg_config *cfg, int i);

/* The effective settings as text: every field of every upstream, with its
 * source, secrets masked, then the warnings. Owned by cfg, valid until the
 * next load or free. NULL when out of memory (see sg_errmsg). */
SG_API const char *sg_config_dump(sg_config *cfg);


/* ---- Replies -------------------------------------------------------------
 * A reply tree. The types have hiredis's numbers (RESP3's as hiredis 1.x
 * gives them). One sg_reply_free() frees a whole tree; never free an element
 * on its own. */
typedef enum sg_reply_type {
    SG_REPLY_STRING = 1,
    SG_REPLY_ARRAY = 2,
    SG_REPLY_INTEGER = 3,
    SG_REPLY_NIL = 4,     /* RESP2's null bulk and null array, RESP3's null */
    SG_REPLY_STATUS = 5,
    SG_REPLY_ERROR = 6,   /* simple and (RESP3) blob errors */
    /* RESP3 only: what a node sends on a connection opened with HELLO 3 */
    SG_REPLY_DOUBLE = 7,  /* str: the number as sent ("1.5", "inf", "nan"); dval */
    SG_REPLY_BOOL = 8,    /* integer: 1 or 0 */
    SG_REPLY_MAP = 9,     /* elements: key, value, key, value ... */
    SG_REPLY_SET = 10,
    SG_REPLY_ATTR = 11,   /* the attribute map of a reply (see attribute) */
    SG_REPLY_PUSH = 12,   /* out-of-band data: pub/sub messages, invalidations */
    SG_REPLY_BIGNUM = 13, /* str: the decimal digits, a '-' first if negative */
    SG_REPLY_VERB = 14    /* verbatim string: vtype ("txt", "mkd"), str the text */
} sg_reply_type;

typedef struct sg_reply {
    int type;                  /* sg_reply_type */
    long long integer;         /* INTEGER; BOOL (1 or 0) */
    size_t len;                /* STRING, STATUS, ERROR, DOUBLE, BIGNUM, VERB: bytes in str */
    char *str;                 /* ... NUL-terminated, binary-safe by len */
    size_t elements;           /* ARRAY, SET, PUSH; MAP and ATTR: twice the pairs */
    struct sg_reply **element; /* their elements */
    double dval;               /* DOUBLE */
    char vtype[4];             /* VERB: the format, NUL-terminated */
    struct sg_reply *attribute; /* RESP3: the ATTR map sent ahead of this reply, or NULL */
} sg_reply;

SG_API void sg_reply_free(sg_reply *reply);

/* ---- Clients -------------------------------------------------------------
 * A client serves one upstream of a settings handle: a Redis Cluster (slot
 * routed), one Redis node, or the master a set of Sentinels names. It owns
 * pooled connections to every node it uses. A client is used from one
 * thread: the thread that runs its event_base.
 *
 * Two kinds, one engine:
 *  - an async client runs on the caller's event_base: sg_client_send*()
 *    returns at once and the callback runs from that base's loop;
 *  - a blocking client (base NULL) owns a private event_base and offers
 *    sg_client_call*() and pipelines, which run it until their replies are in.
 */
typedef struct sg_client sg_client;
struct event_base;

typedef enum sg_read_policy {
    SG_READ_MASTER = 0,        /* every command to the slot's master (default) */
    SG_READ_PREFER_REPLICA,    /* read-only commands to a replica when one is up */
    SG_READ_REPLICA,           /* read-only commands to replicas only (the master
                                  when the slot has none) */
    SG_READ_ANY                /* read-only commands to any node of the slot */
} sg_read_policy;

/* A client for the upstream named upstream (NULL: "default") of cfg, which
 * may be freed afterwards (the client copies what it needs). Returns NULL only
 * when out of memory; otherwise check sg_errcode(client): SG_EINVAL for an
 * unknown upstream, or a TLS setup error (SG_ETLS naming the file). A client
 * in error can only be freed. Nothing is connected yet. The first client sets
 * SIGPIPE to ignored when it still has its default action (a reset
 * connection must not kill the process); a handler of the host's own stays. */
SG_API sg_client *sg_client_new(const sg_config *cfg, const char *upstream,
                                struct event_base *base);

/* Frees the client and closes its connections. Async commands still pending
 * get their callback with SG_ECLOSED first. Not from inside a callback. */
SG_API void sg_client_free(sg_client *c);

/* Connects: discovers the slot map (Cluster), asks the Sentinels for the
 * master (Sentinel), or opens the node (single). A blocking client returns
 * when done: SG_OK, or the error (every seed tried, each named). An async
 * client starts the discovery and returns SG_OK; commands sent meanwhile wait
 * for it. Commands also connect on first use. */
SG_API int sg_client_connect(sg_client *c);

/* Options; each returns the previous value. */
SG_API int sg_client_set_read_policy(sg_client *c, int policy);
/* MOVED/ASK redirections followed per command; default 3 (as Tyk's driver). */
SG_API int sg_client_set_max_redirects(sg_client *c, int n);
/* Batching (asynchronous clients): the commands sent during one turn of the
 * event loop wait until every callback of that turn has run, then leave in
 * one write per connection — many clients' commands share a system call.
 * A proxy turns it on; a program that sends one command and then blocks in
 * its own loop gains nothing. SG_EINVAL on a blocking client. */
SG_API int sg_client_set_batching(sg_client *c, int on);
/* The protocol spoken to the nodes: 2 (RESP2, the default) or 3 (RESP3:
 * HELLO 3 in each connection's handshake, so replies come as maps, sets,
 * doubles, booleans ... see sg_reply_type). Set it before the client's first
 * connection: SG_EINVAL once one is open, or for another number. A node
 * older than Redis 6 refuses HELLO: its connections fail with SG_EPROTO. */
SG_API int sg_client_set_protocol(sg_client *c, int proto);

/* Async commands. The callback gets the server's reply (a Redis error reply
 * is a reply of type SG_REPLY_ERROR with status SG_OK) and owns it: free it
 * with sg_reply_free. On failure reply is NULL, status is the code and errmsg
 * says what failed and where (valid during the callback only). Returns SG_OK
 * when the command was accepted (the callback will run exactly once, never
 * before this call returns), or an error code (callback not called;
 * sg_errmsg(c) says why). argv is copied; argvlen NULL means strlen. */
typedef void (*sg_reply_fn)(sg_client *c, sg_reply *reply, int status,
                            const char *errmsg, void *ud);
SG_API int sg_client_send_argv(sg_client *c, int argc, const char *const *argv,
                               const size_t *argvlen, sg_reply_fn fn, void *ud);
/* The same, sent to node i (as numbered by sg_client_node_stats, 0 ..
 * sg_client_node_count(c) - 1) whatever the slot map says: no MOVED or ASK
 * is followed, the node's reply is the reply. For what concerns one node
 * (INFO, a node's own SCAN cursor, CONFIG on a replica). Before the first
 * map is known the client may know no node but its seeds: send a command
 * through sg_client_send_argv first when every master matters. SG_EINVAL
 * for an i out of range. */
/* Ends early the blocking command (BLPOP, XREAD BLOCK ...) sent with ud, as
 * CLIENT UNBLOCK ends a client's on a node: SG_OK, and the command's callback
 * then gets what the node answers - the timeout's null for error 0, the
 * UNBLOCKED error for 1, or a value it had just popped, so nothing is lost.
 * A command not sent yet (waiting for the map or a connection) ends so
 * without going; one on a connection the node cannot name (a user without
 * CLIENT ID) ends with its connection closed. SG_EINVAL when no such command
 * is in flight. */
SG_API int sg_client_unblock(sg_client *c, void *ud, int error);

/* Options of one call. */
typedef struct sg_call_opts {
    /* Durable writes: the command is acknowledged only once this many replicas
     * have confirmed it (Redis's WAIT, sent after it on the same connection:
     * one WAIT per connection and loop turn covers every durable write sent
     * on it before). When fewer confirm within durable_timeout_ms, the reply
     * is the error "NOTCONFIRMED the write was applied on the master ... but
     * confirmed by M of N replicas ...": applied, and lost if that master
     * fails before it replicates. An error reply from the node (the write was
     * not applied) comes as it is. 0: acknowledged as the node does. */
    int durable;
    int durable_timeout_ms; /* how long the WAIT may take; 0: the client's timeout */
} sg_call_opts;

/* sg_client_send_argv and sg_client_call_argv with options (o NULL: none).
 * SG_EINVAL for a durable count outside 0..255 or a negative timeout. */
SG_API int sg_client_send_opts(sg_client *c, const sg_call_opts *o, int argc,
                               const char *const *argv, const size_t *argvlen, sg_reply_fn fn,
                               void *ud);
SG_API sg_reply *sg_client_call_opts(sg_client *c, const sg_call_opts *o, int argc,
                                     const char *const *argv, const size_t *argvlen);

SG_API int sg_client_send_node(sg_client *c, int i, int argc, const char *const *argv,
                               const size_t *argvlen, sg_reply_fn fn, void *ud);
/* The same, the command given as a hiredis-style format ("SET %s %b"). */
SG_API int sg_client_send(sg_client *c, sg_reply_fn fn, void *ud,
                          const char *fmt, ...);

/* Blocking commands (blocking clients only). Return the reply, owned by the
 * caller, or NULL on failure with sg_errcode(c)/sg_errmsg(c) set; a Redis
 * error reply is a reply, not a failure. */
SG_API sg_reply *sg_client_call_argv(sg_client *c, int argc,
                                     const char *const *argv,
                                     const size_t *argvlen);
SG_API sg_reply *sg_client_call(sg_client *c, const char *fmt, ...);

/* ---- Pipelines (blocking clients) ---------------------------------------
 * Append many commands, then exec: each node's share is written at once and
 * the replies come back in append order. */
typedef struct sg_pipeline sg_pipeline;

SG_API sg_pipeline *sg_pipeline_new(sg_client *c);
SG_API void sg_pipeline_free(sg_pipeline *p);
SG_API int sg_pipeline_append_argv(sg_pipeline *p, int argc,
                                   const char *const *argv,
                                   const size_t *argvlen);
SG_API int sg_pipeline_append(sg_pipeline *p, const char *fmt, ...);
/* Sends every appended command and waits for all the replies. Returns SG_OK
 * when each command has its outcome (a reply, or its own error); an error
 * code when the pipeline could not run at all. */
SG_API int sg_pipeline_exec(sg_pipeline *p);
SG_API size_t sg_pipeline_count(const sg_pipeline *p);
/* Outcome of command i after exec: its reply (owned by the pipeline, valid
 * until the next append, exec, reset or free), or NULL with *status and
 * *errmsg (either may be NULL) telling why. */
SG_API const sg_reply *sg_pipeline_reply(sg_pipeline *p, size_t i, int *status,
                                         const char **errmsg);
/* Empties the pipeline for reuse. */
SG_API void sg_pipeline_reset(sg_pipeline *p);

/* ---- Statistics ----------------------------------------------------------
 * Per node the client knows. Strings are owned by the client and valid until
 * the next call into it. */
typedef struct sg_node_stats {
    const char *addr;   /* "host:port" */
    const char *id;     /* cluster node id, "" when unknown */
    int is_master;
    uint64_t commands;  /* commands sent */
    uint64_t errors;    /* error replies, timeouts and connection failures */
    uint64_t moved, ask; /* redirections received from this node */
    uint64_t timeouts;
    uint64_t connects;  /* connections opened */
    int conns;          /* open connections */
    int in_use;         /* connections with commands in flight */
    int idle;           /* open connections with nothing in flight */
    uint64_t pool_waits; /* callers that had to wait for a connection */
    uint64_t pool_timeouts;
    uint64_t waits;       /* WAITs sent to confirm durable writes (sg_call_opts) */
    uint64_t unconfirmed; /* durable writes answered with NOTCONFIRMED */
} sg_node_stats;

SG_API int sg_client_node_count(sg_client *c);
SG_API int sg_client_node_stats(sg_client *c, int i, sg_node_stats *out);
/* Slot map refreshes done (Cluster), or master look-ups (Sentinel). */
SG_API uint64_t sg_client_refresh_count(sg_client *c);
/* How much of its upstream the client can serve now, for health checks. A
 * Cluster client: the slots its map gives a master (SG_SLOTS when the map is
 * full; 0 before the first map). One node or Sentinel: SG_SLOTS once the node
 * (Sentinel: the master it names) is known and the last connection attempt
 * to it succeeded, else 0. Starts nothing: a command starts discovery and
 * connections. When the answer is not SG_SLOTS and why is not NULL, *why says
 * what is missing (the last discovery or connect error, or that none was
 * tried yet); the string is owned by the client and valid until the next
 * call into it. */
SG_API int sg_client_coverage(sg_client *c, const char **why);
/* The pool sizes and the timeout (milliseconds) in force. */
SG_API void sg_client_limits(sg_client *c, int *max_active, int *max_idle, int *timeout_ms);
/* A reload while serving: the client takes the settings of its upstream in
 * cfg (the same name) that can change under open connections, for what
 * starts from now on — the seeds (Cluster: the map is asked of them at once,
 * the map in force serving meanwhile; Sentinel: the sentinels and the master
 * name; one node: the node new commands go to), optimisation_max_active and
 * optimisation_max_idle (idle connections beyond them close now, busy ones
 * when they come back), the timeout (new connections and the waits that
 * start from now on), the credentials, and the TLS files and settings: a
 * new context when the files' contents or the settings changed (compared
 * by content: a certificate renewed in place is taken), which connections
 * opened from now on use. Connections open keep going as they are. The
 * mode, use_ssl and, outside a cluster, database cannot change: SG_EINVAL
 * names which, and nothing changed. SG_ETLS names a TLS file that does not
 * load (nothing changed); SG_ENOMEM. cfg may be freed after. */
SG_API int sg_client_reload(sg_client *c, const sg_config *cfg);


/* ---- Policies --------------------------------------------------------------
 * Operators' policy scripts (Lua, run by LuaJIT in a sandbox): deny commands
 * or keys, rewrite keys (a prefix, or a function), give writes a default TTL,
 * route to an upstream or to replicas. See scripts/README.md for the script
 * format. A policy set is used from one thread (it owns a lua_State). */
typedef struct sg_policy sg_policy;

/* Who sent a command: what hooks and prefix templates see. Any field may be
 * NULL (user then reads "default"). */
typedef struct sg_request_ctx {
    const char *user;   /* the authenticated user */
    const char *client; /* the client's name (CLIENT SETNAME) */
    const char *addr;   /* the client's address */
    int proto;          /* 3: the replies in RESP3 (from connections that speak it to
                           the nodes: a RESP3 client's); 0 or 2: RESP2 */
    /* When not NULL, sg_gateway_forward (and the calls built on it) and
     * sg_gateway_prepare tell it where a command goes once the policies
     * decided, before it is sent or answered from the near cache: the
     * upstream's index (the settings' order, as sg_track_fn names it) and
     * the command as the node gets it (the policies' rewrites made; a key
     * keeps its argument's index). argv is valid during the call only. Not
     * called for a denied command. */
    void (*routed)(void *ud, int upstream, int argc, const char *const *argv,
                   const size_t *argvlen);
    void *routed_ud;
} sg_request_ctx;

typedef struct sg_policy_stats {
    uint64_t commands;       /* commands decided on */
    uint64_t denied;
    uint64_t rewritten;      /* commands whose keys were rewritten */
    uint64_t ttls;           /* commands that got a default TTL */
    uint64_t routed;         /* commands sent to another upstream */
    uint64_t hook_calls;
    uint64_t hook_errors;    /* hooks that raised or returned nonsense */
    uint64_t hook_timeouts;  /* hooks stopped by the limits */
    uint64_t dry_run_events; /* changes a dry-run policy reported */
    uint64_t durable;        /* writes made durable (a policy's durable) */
} sg_policy_stats;

/* An empty set (commands pass unchanged), or NULL when out of memory. */
SG_API sg_policy *sg_policy_new(void);
SG_API void sg_policy_free(sg_policy *p);
/* Loads n script files, in order (each sees the command as the previous one
 * left it). The set replaces the current one only when every script loads;
 * otherwise SG_ESCRIPT, the old set stays, and sg_errmsg(p) names the file
 * and line and what is wrong. */
SG_API int sg_policy_load(sg_policy *p, const char *const *paths, int n);
/* The same for one script given as text; name stands for its file. */
SG_API int sg_policy_load_string(sg_policy *p, const char *name, const char *code);
/* Bounds on each hook call (and on a script's loading): instructions and
 * milliseconds; defaults 1 000 000 and 50. A hook that runs past them fails
 * its command with an error, and the next command runs normally. Each step
 * of a Lua pattern match (string.find, match, gmatch, gsub: slotgate's own
 * matcher, as LuaJIT's but bounded) counts as an instruction. While
 * scripts run, the set's Lua memory is also capped (32 MiB; on LuaJIT built
 * with GC64, the x86-64 default): a script that needs more fails the same
 * way, with "not enough memory". */
SG_API int sg_policy_set_limits(sg_policy *p, long instructions, int ms);
SG_API int sg_policy_count(const sg_policy *p);
/* The name of script i (its "name" field, else its file's base name). */
SG_API const char *sg_policy_name(const sg_policy *p, int i);
SG_API void sg_policy_stats_get(const sg_policy *p, sg_policy_stats *out);
/* What the set decides for a command, as text ("command: SET t:a 1",
 * "deny: NOPERM ...", "upstream: cache", "read: replica", "ttl: KEY SECONDS"),
 * without sending it. The caller frees the string with sg_free_string().
 * NULL when out of memory. argvlen NULL means strlen. */
SG_API char *sg_policy_explain(sg_policy *p, const sg_request_ctx *ctx, int argc,
                               const char *const *argv, const size_t *argvlen);
/* How the set renames every key of a request from ctx, when that can be
 * undone: the keys are stored as *prefix followed by the client's name (the
 * prefixes of the scripts that have one, expanded for ctx, the last script's
 * first). SG_OK with *prefix a string the caller frees with sg_free_string()
 * (NULL: keys keep their names), *len its length. SG_EINVAL when a key's
 * name on the node cannot be turned back into the client's (a rewrite_key
 * hook, or a prefix that names {command}): sg_errmsg(p) names the script and
 * why. SG_ENOMEM. */
SG_API int sg_policy_key_prefix(sg_policy *p, const sg_request_ctx *ctx, char **prefix,
                                size_t *len);
SG_API void sg_free_string(char *s);

/* ---- Gateways --------------------------------------------------------------
 * Every upstream of a settings handle behind one policy set: commands go
 * through the policies, then to the upstream they name ("default" unless a
 * policy routes them). Clients are made on first use and owned by the
 * gateway. Async or blocking as sg_client (base NULL: blocking). */
typedef struct sg_gateway sg_gateway;

/* NULL only when out of memory; check sg_errcode(g). cfg may be freed after. */
SG_API sg_gateway *sg_gateway_new(const sg_config *cfg, struct event_base *base);
SG_API void sg_gateway_free(sg_gateway *g);
/* The policies (not owned: p must outlive its use; NULL for none). Replacing
 * them between commands is safe. */
SG_API void sg_gateway_set_policy(sg_gateway *g, sg_policy *p);
/* sg_client_unblock over every upstream's clients: the one where ud's
 * blocking command waits. */
SG_API int sg_gateway_unblock(sg_gateway *g, void *ud, int error);
/* sg_client_set_batching for every upstream's client. */
SG_API int sg_gateway_set_batching(sg_gateway *g, int on);
/* The upstreams' credentials (username, password, sentinel_password) taken
 * from cfg, which names the same upstreams: connections opened from now on
 * authenticate with them (a rotated password), those open stay as they are.
 * SG_OK, or SG_EINVAL naming an upstream cfg lacks (nothing changed), or
 * SG_ENOMEM. Call it from the thread that runs g's loop. */
SG_API int sg_gateway_set_credentials(sg_gateway *g, const sg_config *cfg);
/* A reload: every upstream's clients take cfg's settings (sg_client_reload),
 * cfg naming the same upstreams. Everything is checked first: SG_EINVAL
 * naming an upstream cfg lacks or a setting that cannot change while serving
 * leaves every client as it was. SG_ETLS (a TLS file that cannot be read
 * when cfg's contexts were not loaded) or SG_ENOMEM may leave the upstreams
 * before it changed. cfg may be freed after. Call it from the thread that
 * runs g's loop. */
SG_API int sg_gateway_reload(sg_gateway *g, const sg_config *cfg);
/* The client of an upstream, made on first use (NULL: unknown upstream or
 * out of memory; see sg_errmsg(g)). Owned by the gateway. */
SG_API sg_client *sg_gateway_client(sg_gateway *g, const char *upstream);
/* As sg_client_send_argv / sg_client_call_argv, through the policies. A
 * denied command completes with the policy's error reply (status SG_OK). */
SG_API int sg_gateway_send_argv(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                                const char *const *argv, const size_t *argvlen,
                                sg_reply_fn fn, void *ud);
/* The near cache (docs/CACHE.md): reads whose keys match a policy's `cache`
 * patterns (GET, MGET per key, HGET, HMGET, HGETALL, EXISTS of one key, and
 * the other plain reads the document lists) are answered from the gateway's
 * memory, kept exact by the nodes' invalidation messages (CLIENT TRACKING,
 * one connection per node that serves a cached key) and by the gateway's own
 * writes, which drop their keys at once. RESP2 requests only. max_bytes bounds
 * the memory the entries take (least recently used go first); 0 turns the
 * cache off and empties it. The default is SG_CACHE_DEFAULT_BYTES; the cache
 * does nothing until a policy names patterns. Call it from the thread that
 * runs g's loop. SG_OK. */
#define SG_CACHE_DEFAULT_BYTES ((size_t)64 << 20)
SG_API int sg_gateway_set_cache(sg_gateway *g, size_t max_bytes);
typedef struct sg_cache_stats {
    uint64_t hits, misses;   /* reads of cacheable keys (MGET: per key) */
    uint64_t fills;          /* answers kept */
    uint64_t fills_lost;     /* answers not kept: a change came while the read was out */
    uint64_t invalidations;  /* keys the nodes' invalidation messages named */
    uint64_t flushes;        /* flush messages (FLUSHALL, FLUSHDB on a node) */
    /* entries dropped, by cause */
    uint64_t dropped_invalidated; /* a node said the key changed */
    uint64_t dropped_written;     /* a write through this gateway */
    uint64_t dropped_flushed;     /* a flush (a node's message, or through this gateway) */
    uint64_t dropped_lost;        /* the node's invalidation connection was lost */
    uint64_t dropped_moved;       /* the key's slot is served by another node now */
    uint64_t dropped_expired;     /* older than its pattern's seconds */
    uint64_t evictions;           /* the least recently used, for room */
    uint64_t bytes, entries, max_bytes; /* now */
    uint64_t trackers;       /* invalidation connections subscribed now */
} sg_cache_stats;
/* The cache's figures. Unlike the rest of the gateway, this one may be called
 * from any thread (each figure is read atomically; together they are not a
 * snapshot). */
SG_API void sg_gateway_cache_stats(const sg_gateway *g, sg_cache_stats *out);
/* Key-change notices for a host that serves CLIENT TRACKING to its own
 * clients (slotgated): the gateway opens the near cache's invalidation
 * connections (one per master of every upstream, CLIENT TRACKING ... BCAST)
 * and tells fn of every key a node names as changed (as the node stores it),
 * whether a cache policy exists or not; upstream is the index of the
 * upstream whose node spoke (the settings' order, as sg_request_ctx.routed
 * names it). SG_TRACK_FLUSH: a node flushed, or an invalidation connection
 * was lost, or the map changed: whatever the host's clients read there may
 * have changed untold. SG_TRACK_READY: a connection became ready;
 * sg_gateway_tracking_ready tells whether all are. Loop thread only. */
#define SG_TRACK_KEY 0
#define SG_TRACK_FLUSH 1
#define SG_TRACK_READY 2
typedef void (*sg_track_fn)(void *ud, int upstream, int event, const char *key, size_t len);
/* Starts (fn non-NULL) the notices; SG_OK, or SG_ENOMEM. */
SG_API int sg_gateway_track(sg_gateway *g, sg_track_fn fn, void *ud);
/* 1 when every master known now of upstream (its index; -1: of every
 * upstream) has its invalidation connection ready (a key read there now will
 * be told of); else 0, and the missing ones are being opened. */
SG_API int sg_gateway_tracking_ready(sg_gateway *g, int upstream);
/* A reply as the node sent it: len bytes of RESP2, valid only during the
 * call. */
typedef void (*sg_raw_reply_fn)(sg_client *c, const char *resp, size_t len, void *ud);
/* As sg_gateway_send_argv, for proxies: a reply that needs no merging or
 * rewriting and is not an error comes to raw_fn as the node's bytes (no
 * reply tree is built); any other outcome comes to fn, as there. Exactly
 * one of the two runs, once. resp, when not NULL, is the same command as
 * resplen bytes of RESP (the client's request as it came): sent as it is
 * unless a policy rewrites the command, instead of being made again from
 * argv. */
SG_API int sg_gateway_forward(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                              const char *const *argv, const size_t *argvlen, const char *resp,
                              size_t resplen, sg_reply_fn fn, sg_raw_reply_fn raw_fn, void *ud);
SG_API sg_reply *sg_gateway_call_argv(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                                      const char *const *argv, const size_t *argvlen);

/* Key names back as the client sent them. When the policies rewrite a
 * command's keys (a prefix, a rewrite_key hook) and its reply names keys
 * (BLPOP's [key, element], BZPOPMIN, LMPOP and the other *MPOPs, XREAD's and
 * XREADGROUP's [stream, entries]), the node names them as stored. A gateway
 * maps those replies back before its callback sees them (and such a reply
 * then never comes to sg_gateway_forward's raw_fn); a host that sends a
 * prepared command itself gets a keymap for its reply (sg_prepared.keymap).
 * Only the names the request's own keys were rewritten to are replaced, each
 * by the name the client gave; any other string stays. Replies that name
 * keys no request named (KEYS, SCAN, RANDOMKEY) cannot be mapped: they keep
 * the stored names. */
typedef struct sg_keymap sg_keymap;

/* Names reply's keys back, in place, as the keymap's command's reply names
 * them (reply is that command's reply: for an EXEC, pass each queued
 * command's own element). Any other reply (an error, a nil, another shape)
 * is left as it is. SG_OK, or SG_ENOMEM when a name longer than the stored
 * one could not be allocated (reply is then valid, partly mapped). */
SG_API int sg_keymap_apply(const sg_keymap *m, sg_reply *reply);
/* Frees a keymap the host took from an sg_prepared; NULL does nothing. */
SG_API void sg_keymap_free(sg_keymap *m);

/* What the policies and the command table make of a command, without
 * sending it: for a host that sends it itself (a transaction queued for one
 * connection). */
typedef struct sg_prepared {
    sg_client *client; /* the upstream that would carry it (owned by the gateway) */
    int slot;          /* its keys' slot; -1: no key; -2: keys in several slots */
    int flags;         /* SG_PREP_* */
    int extra;         /* commands the policies put after it in resp (a default
                          TTL's EXPIRE key seconds NX): their replies follow the
                          command's and are not the caller's */
    char *resp;        /* the command as it would be sent (keys rewritten), then
                          the extra ones, in RESP; owned by the struct */
    size_t resplen;
    sg_keymap *keymap; /* NULL, or the policies rewrote keys its reply names:
                          sg_keymap_apply it to the reply. Owned by the
                          struct; a host that keeps it past sg_prepared_clear
                          takes it (sets the field NULL) and frees it with
                          sg_keymap_free */
    char error[512];   /* not "": it must not be sent, and this is the error
                          reply the client gets ("ERR unknown command ...",
                          "ERR wrong number of arguments ...", a policy's
                          "NOPERM ..."); resp is then NULL */
} sg_prepared;

#define SG_PREP_FANOUT 1   /* the gateway sends it to every master (or node) */
#define SG_PREP_NO_MULTI 2 /* Redis refuses it inside MULTI */
#define SG_PREP_READONLY 4 /* it only reads */
#define SG_PREP_LOCAL 8    /* a gateway answers it itself (AUTH, CLIENT, INFO ...) */

/* Fills *out (which need not be initialised) for a command from ctx: the
 * policies applied, the command checked against the table (known, arity),
 * its keys' slot found. Returns SG_OK (out->error may still hold a refusal)
 * or SG_ENOMEM / SG_EINVAL with sg_errmsg(g) saying why (out then holds
 * nothing to clear). Free out's contents with sg_prepared_clear. */
SG_API int sg_gateway_prepare(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                              const char *const *argv, const size_t *argvlen,
                              sg_prepared *out);
/* Frees what sg_gateway_prepare put in p and zeroes it; NULL does nothing. */
SG_API void sg_prepared_clear(sg_prepared *p);

/* ---- Links -----------------------------------------------------------------
 * A connection of its own to the master serving one slot, for commands tied
 * to their connection (MULTI/EXEC, WATCH, SUBSCRIBE), on an async client's
 * event_base. It makes the handshake pooled connections make (AUTH, TLS),
 * then carries only the bytes its owner writes, and hands every reply it
 * reads to the owner's callback in order: replies to the owner's commands
 * and messages nobody asked for (pub/sub) alike. It is not one of the pool's
 * connections: never lent to another command, not counted in max_active.
 *
 * The callback gets each reply (owned by the callback: sg_reply_free it) with
 * status SG_OK; Redis error replies are replies. When the link fails (the
 * node cannot be reached, closes the connection, or leaves the replies the
 * owner said were due unanswered for the client's timeout; no map; no master
 * for the slot) the callback gets reply NULL, the code and a message naming
 * the node, once, and never again; the link can then only be freed. The
 * callback never runs inside an sg_link_* call, and may free the link. A
 * MOVED or ASK reply on a link makes the client refresh its map; the reply
 * still goes to the owner. */
typedef struct sg_link sg_link;
typedef void (*sg_link_fn)(sg_link *l, sg_reply *reply, int status,
                           const char *errmsg, void *ud);

/* A link to the master that serves slot now (slot -1: any master; a
 * single-node or Sentinel upstream: its master), connecting at once, or once
 * the client knows its map. NULL only when out of memory (or c or fn is
 * NULL); every other failure comes through fn. Free every link of a client
 * before the client. */
SG_API sg_link *sg_link_open(sg_client *c, int slot, sg_link_fn fn, void *ud);
/* Queues len bytes of RESP (whole commands) for the node; they leave as one
 * write once the connection is up. nreplies: how many replies they will
 * bring (0 when unknown, as for SUBSCRIBE's messages); while some are due
 * and none comes for the client's timeout, the link fails (SG_ETIMEOUT).
 * SG_OK, or the failure's code (sg_errmsg(l) says why). */
SG_API int sg_link_send(sg_link *l, const char *resp, size_t len, int nreplies);
/* "host:port" of the node it connects to, "" while the map is awaited.
 * Owned by the client; valid while the client lives. */
SG_API const char *sg_link_node(const sg_link *l);
/* 1 when the link's node is the master of slot in the client's current
 * map (and the link has not failed), else 0. */
SG_API int sg_link_serves(const sg_link *l, int slot);
/* Closes the connection (a transaction not yet executed is discarded with
 * it; WATCHes and subscriptions end). NULL does nothing. */
SG_API void sg_link_free(sg_link *l);

#ifdef __cplusplus
}
#endif

#endif /* SLOTGATE_H */
