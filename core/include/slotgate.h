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

/* ---- Slots ---------------------------------------------------------------
 * Redis Cluster's key → slot rule: CRC16 (XMODEM) of the key, or of the part
 * between the first '{' and the next '}' when that part is non-empty, mod 16384. */
#define SG_SLOTS 16384

/* CRC16-XMODEM of len bytes. */
SG_API uint16_t sg_crc16(const char *buf, size_t len);
/* The cluster slot of a key (binary-safe), 0..16383. */
SG_API unsigned sg_keyslot(const char *key, size_t len);

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

/* Warnings from the last load (e.g. addresses ignored in single-node mode).
 * Strings owned by cfg. */
SG_API int sg_config_warning_count(const sg_config *cfg);
SG_API const char *sg_config_warning(const sg_config *cfg, int i);

/* The effective settings as text: every field of every upstream, with its
 * source, secrets masked, then the warnings. Owned by cfg, valid until the
 * next load or free. NULL when out of memory (see sg_errmsg). */
SG_API const char *sg_config_dump(sg_config *cfg);

#ifdef __cplusplus
}
#endif

#endif /* SLOTGATE_H */
