/*
 * settings.h — slotgated's own settings (not the storage ones, which the core
 * reads): where it listens, its threads, policy scripts, client passwords,
 * limits, metrics address, logging. Read from the "slotgate" object at the
 * top of the same file as the storage settings (any of the three Tyk shapes;
 * its "upstreams" member belongs to the core), then from SLOTGATE_* variables
 * on top, setting by setting, as Tyk reads its own: each value keeps where it
 * came from ("file F:L:C", "env NAME", "default"), and a bad value is an error
 * that names the file, line and column or the variable and its value.
 *
 * The table SG_DAEMON_SETTINGS is the one list of settings; the struct's
 * members, the JSON keys, the variables, the defaults and the dump all come
 * from it.
 *
 * Errors follow the core: sg_daemon_settings is a handle whose first member
 * is an sg_error, so sg_errcode(s) / sg_errmsg(s) give the last error.
 * Not thread-safe: load once (or into a new handle on reload, then swap).
 */
#ifndef SG_DAEMON_SETTINGS_H
#define SG_DAEMON_SETTINGS_H

#include <stddef.h>
#include <sys/types.h>

#include "core_private.h"

/* The upper bound of every size setting (1 TiB): a guard against typos. */
#define SG_DS_SIZE_CAP 1099511627776LL

/* XX(id, key, kind, env, default, min, max)
 *   key      the name in the "slotgate" object (matched without regard to
 *            case, as Go does) and the struct member below
 *   kind     how the value is read, checked and shown (see the members)
 *   env      the variable: SLOTGATE_ + the key without '_', upper case
 *   default  written as the variable would be; NULL: computed (threads: the
 *            number of cores online, within min..max)
 *   min,max  INT, SIZE and SECONDS: the range allowed */
#define SG_DAEMON_SETTINGS(XX)                                                               \
    XX(LISTEN, listen, LISTEN, "SLOTGATE_LISTEN", "127.0.0.1:6380", 0, 0)                    \
    XX(UNIX_MODE, unix_mode, MODE, "SLOTGATE_UNIXMODE", "0660", 0, 0777)                     \
    XX(TLS_CERT_FILE, tls_cert_file, PATH, "SLOTGATE_TLSCERTFILE", "", 0, 0)                 \
    XX(TLS_KEY_FILE, tls_key_file, PATH, "SLOTGATE_TLSKEYFILE", "", 0, 0)                    \
    XX(TLS_KEY_FILE_PASS, tls_key_file_pass, SECRET, "SLOTGATE_TLSKEYFILEPASS", "", 0, 0)    \
    XX(TLS_CA_FILE, tls_ca_file, PATH, "SLOTGATE_TLSCAFILE", "", 0, 0)                       \
    XX(TLS_VERIFY_CLIENTS, tls_verify_clients, VERIFY, "SLOTGATE_TLSVERIFYCLIENTS", "", 0, 0) \
    XX(TLS_PROTOCOLS, tls_protocols, PROTOCOLS, "SLOTGATE_TLSPROTOCOLS", "TLSv1.2 TLSv1.3",  \
       0, 0)                                                                                 \
    XX(TLS_CIPHERS, tls_ciphers, STRING, "SLOTGATE_TLSCIPHERS", "", 0, 0)                    \
    XX(TLS_CIPHERSUITES, tls_ciphersuites, STRING, "SLOTGATE_TLSCIPHERSUITES", "", 0, 0)     \
    XX(THREADS, threads, INT, "SLOTGATE_THREADS", NULL, 1, 256)                              \
    XX(POLICY, policy, FILES, "SLOTGATE_POLICY", "", 0, 0)                                   \
    XX(REQUIREPASS, requirepass, SECRET, "SLOTGATE_REQUIREPASS", "", 0, 0)                   \
    XX(USERS, users, USERS, "SLOTGATE_USERS", "", 0, 0)                                      \
    XX(MAX_CLIENTS, max_clients, INT, "SLOTGATE_MAXCLIENTS", "10000", 1, 1000000)            \
    XX(MAX_REQUEST_BYTES, max_request_bytes, SIZE, "SLOTGATE_MAXREQUESTBYTES", "536870912",  \
       1024, SG_DS_SIZE_CAP)                                                                 \
    XX(CLIENT_IDLE_TIMEOUT, client_idle_timeout, SECONDS, "SLOTGATE_CLIENTIDLETIMEOUT", "0", \
       0, 31536000)                                                                          \
    XX(CLIENT_OUTPUT_LIMIT, client_output_limit, SIZE, "SLOTGATE_CLIENTOUTPUTLIMIT",         \
       "67108864", 0, SG_DS_SIZE_CAP)                                                        \
    XX(PUBSUB_OUTPUT_LIMIT, pubsub_output_limit, SIZE, "SLOTGATE_PUBSUBOUTPUTLIMIT",         \
       "33554432", 0, SG_DS_SIZE_CAP)                                                        \
    XX(CACHE_MAX_BYTES, cache_max_bytes, SIZE, "SLOTGATE_CACHEMAXBYTES", "67108864", 0,       \
       SG_DS_SIZE_CAP)                                                                       \
    XX(REDIS_VERSION, redis_version, VERSION, "SLOTGATE_REDISVERSION", "", 0, 0)             \
    XX(METRICS, metrics, ADDR, "SLOTGATE_METRICS", "", 0, 0)                                 \
    XX(LOG_LEVEL, log_level, LEVEL, "SLOTGATE_LOGLEVEL", "info", 0, 0)                       \
    XX(LOG_FORMAT, log_format, LOGFORMAT, "SLOTGATE_LOGFORMAT", "text", 0, 0)                \
    XX(SYSLOG, syslog, BOOL, "SLOTGATE_SYSLOG", "false", 0, 0)                               \
    XX(USER, user, USER, "SLOTGATE_USER", "", 0, 0)                                          \
    XX(SHUTDOWN_TIMEOUT, shutdown_timeout, SECONDS, "SLOTGATE_SHUTDOWNTIMEOUT", "10", 0, 3600)

typedef enum sg_ds_id {
#define SG_DS_ENUM_(id, key, kind, env, def, min, max) SG_DS_##id,
    SG_DAEMON_SETTINGS(SG_DS_ENUM_)
#undef SG_DS_ENUM_
    SG_DS_COUNT
} sg_ds_id;

/* One address to listen on (listen) or serve metrics on (metrics). A listen
 * address written "tls:HOST:PORT" is served with TLS (tls_cert_file and
 * tls_key_file); the others are plain. */
typedef struct sg_listen_addr {
    char *text; /* as given: "127.0.0.1:6380", "[::1]:6380", "unix:/run/x.sock",
                   "tls:0.0.0.0:6443" */
    int tls;    /* written with "tls:" (TCP only) */
    char *host; /* TCP: the host, IPv6 without its brackets; NULL: Unix */
    int port;   /* TCP: 1..65535 */
    char *path; /* Unix socket: an absolute path that fits sun_path; NULL: TCP */
} sg_listen_addr;

/* One client user (AUTH name password). */
typedef struct sg_daemon_user {
    char *name;     /* letters, digits, '_', '-', '.', '@' */
    char *password; /* never empty */
    char *policy;   /* a readable script for this user's commands; NULL: none */
} sg_daemon_user;

/* Where one setting's value came from. */
typedef struct sg_ds_origin {
    int set;           /* given by the file or the environment */
    char *source;      /* "file F:L:C", "env NAME", "default", "default (...)" */
    const char *env;   /* the variable's name when from the environment */
    char *envval;      /* and its value, for messages */
    int line, col;     /* the value's position when from the file */
    int *lines, *cols; /* per item of LISTEN, FILES and USERS, from the file */
    char *text;        /* the effective value as text, unmasked */
    char *shown;       /* ... as the dump shows it (secrets masked) */
} sg_ds_origin;

/* The members each kind gives the struct: */
#define SG_DS_MEMBER_LISTEN(k) sg_listen_addr *k; size_t n##k; /* at least one */
#define SG_DS_MEMBER_MODE(k) int k;            /* permission bits, 0..0777 */
#define SG_DS_MEMBER_INT(k) long long k;       /* within min..max */
#define SG_DS_MEMBER_SIZE(k) long long k;      /* bytes */
#define SG_DS_MEMBER_SECONDS(k) long long k;   /* idle: 0 is none; shutdown: 0 is at once */
#define SG_DS_MEMBER_FILES(k) char **k; size_t n##k; /* readable files */
#define SG_DS_MEMBER_SECRET(k) char *k;        /* "" when not set */
#define SG_DS_MEMBER_USERS(k) sg_daemon_user *k; size_t n##k;
#define SG_DS_MEMBER_ADDR(k) sg_listen_addr *k; /* NULL: off */
#define SG_DS_MEMBER_LEVEL(k) int k;           /* SG_LOG_DEBUG..SG_LOG_ERROR */
#define SG_DS_MEMBER_LOGFORMAT(k) int k;       /* SG_DS_LOG_TEXT or SG_DS_LOG_JSON */
#define SG_DS_MEMBER_BOOL(k) int k;            /* 0 or 1 */
#define SG_DS_MEMBER_USER(k) char *k;          /* "" when not set */
#define SG_DS_MEMBER_PATH(k) char *k;          /* a readable file; "" when not set */
#define SG_DS_MEMBER_STRING(k) char *k;        /* "" when not set */
#define SG_DS_MEMBER_VERSION(k) char *k;       /* "MAJOR.MINOR.PATCH", or "" */
#define SG_DS_MEMBER_VERIFY(k) int k;          /* SG_DS_VERIFY_* */
#define SG_DS_MEMBER_PROTOCOLS(k) int k;       /* SG_DS_TLS* bits, at least one */

/* tls_verify_clients: whether TLS clients must show a certificate signed by
 * tls_ca_file. Its default follows tls_ca_file: yes when set, no otherwise. */
enum { SG_DS_VERIFY_NO = 0, SG_DS_VERIFY_YES = 1, SG_DS_VERIFY_OPTIONAL = 2 };

/* log_format: "slotgated: LEVEL: message" lines, or one JSON object a line. */
enum { SG_DS_LOG_TEXT = 0, SG_DS_LOG_JSON = 1 };

/* tls_protocols: the TLS versions offered to clients. */
enum { SG_DS_TLS1 = 1, SG_DS_TLS1_1 = 2, SG_DS_TLS1_2 = 4, SG_DS_TLS1_3 = 8 };

/* After a successful load every member holds the effective value; they stay
 * valid until the next load or free. */
typedef struct sg_daemon_settings {
    sg_error err; /* first: sg_errcode() and sg_errmsg() read it */
#define SG_DS_MEMBER_(id, key, kind, env, def, min, max) SG_DS_MEMBER_##kind(key)
    SG_DAEMON_SETTINGS(SG_DS_MEMBER_)
#undef SG_DS_MEMBER_
    uid_t uid; /* of user, when user is set */
    gid_t gid; /* its primary group */

    char *path; /* the file read, NULL: the environment alone */
    sg_ds_origin origin[SG_DS_COUNT];
    char **warnings;
    int nwarnings;
    char *dump;
} sg_daemon_settings;

/* A new handle holding nothing; NULL when out of memory. */
sg_daemon_settings *sg_daemon_settings_new(void);

/* Frees the handle and everything it holds. NULL does nothing. */
void sg_daemon_settings_free(sg_daemon_settings *s);

/* Reads the "slotgate" object of the JSON file at path (NULL: no file), then
 * the variables of env ("NAME=value" strings, NULL-terminated; NULL: the
 * process's environment), validates, and fills s, replacing what an earlier
 * load left. SG_OK; or SG_EIO (the file), SG_EJSON (malformed), SG_ECONFIG
 * (a bad value: the message names FILE:LINE:COL or NAME="value"), SG_EENV (a
 * variable that does not parse), SG_ENOMEM. On failure s holds no settings,
 * only the error. Secrets are never put in a message. */
int sg_daemon_settings_load(sg_daemon_settings *s, const char *path, const char *const *env);

/* The effective value of the setting called key, as text, and its source.
 * Secrets are masked unless unmasked. SG_OK, or SG_EINVAL for an unknown key.
 * The strings live until the next load or free. */
int sg_daemon_settings_get(sg_daemon_settings *s, const char *key, int unmasked,
                           const char **value, const char **source);

/* Warnings of the last load: unknown keys, settings that have no effect. */
int sg_daemon_settings_warning_count(const sg_daemon_settings *s);
const char *sg_daemon_settings_warning(const sg_daemon_settings *s, int i);

/* Every setting with its source, secrets masked, then the warnings: the text
 * `slotgated --check` prints after the storage settings. Owned by s, valid
 * until the next load or free; NULL when out of memory (sg_errcode says). */
const char *sg_daemon_settings_dump(sg_daemon_settings *s);

#endif
