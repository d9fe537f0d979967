/*
 * config.h — the storage settings inside the core: one sg_storage per named
 * upstream, each field with its value and where it came from. The table
 * SG_FIELDS is the one list of fields; the per-shape names (JSON keys and
 * environment variable names) are columns of it.
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include "sg_internal.h"

/* XX(id, kind, secret, gateway key, Go field name (env suffix), pump key,
 *    dashboard key, dashboard env suffix). NULL: the shape has no such key. */
#define SG_FIELDS(XX)                                                          \
    XX(TYPE, STR, 0, "type", "TYPE", "type", NULL, NULL)                       \
    XX(HOST, STR, 0, "host", "HOST", "host", "redis_host", "REDISHOST")        \
    XX(PORT, INT, 0, "port", "PORT", "port", "redis_port", "REDISPORT")        \
    XX(HOSTS, MAP, 0, "hosts", "HOSTS", "hosts", "redis_hosts", "HOSTS")       \
    XX(ADDRS, LIST, 0, "addrs", "ADDRS", "addrs", "redis_addrs", "REDISADDRS") \
    XX(MASTER_NAME, STR, 0, "master_name", "MASTERNAME", "master_name",        \
       "redis_master_name", "REDISMASTERNAME")                                 \
    XX(SENTINEL_PASSWORD, STR, 1, "sentinel_password", "SENTINELPASSWORD",     \
       "sentinel_password", "redis_sentinel_password",                         \
       "REDISSENTINELPASSWORD")                                                \
    XX(USERNAME, STR, 0, "username", "USERNAME", "username", "redis_username", \
       "REDISUSERNAME")                                                        \
    XX(PASSWORD, STR, 1, "password", "PASSWORD", "password", "redis_password", \
       "REDISPASSWORD")                                                        \
    XX(DATABASE, INT, 0, "database", "DATABASE", "database", "redis_database", \
       "REDISDATABASE")                                                        \
    XX(MAX_IDLE, INT, 0, "optimisation_max_idle", "MAXIDLE",                   \
       "optimisation_max_idle", NULL, NULL)                                    \
    XX(MAX_ACTIVE, INT, 0, "optimisation_max_active", "MAXACTIVE",             \
       "optimisation_max_active", "redis_max_active", "REDISMAXACTIVE")        \
    XX(TIMEOUT, INT, 0, "timeout", "TIMEOUT", "timeout", "redis_timeout",      \
       "REDISTIMEOUT")                                                         \
    XX(ENABLE_CLUSTER, BOOL, 0, "enable_cluster", "ENABLECLUSTER",             \
       "enable_cluster", "enable_cluster", "ENABLECLUSTER")                    \
    XX(USE_SSL, BOOL, 0, "use_ssl", "USESSL", "use_ssl", "redis_use_ssl",      \
       "REDISUSESSL")                                                          \
    XX(SSL_INSECURE_SKIP_VERIFY, BOOL, 0, "ssl_insecure_skip_verify",          \
       "SSLINSECURESKIPVERIFY", "ssl_insecure_skip_verify",                    \
       "redis_ssl_insecure_skip_verify", "REDISSSLINSECURESKIPVERIFY")         \
    XX(CA_FILE, STR, 0, "ca_file", "CAFILE", "ssl_ca_file", "redis_ca_file",   \
       "REDISCAFILE")                                                          \
    XX(CERT_FILE, STR, 0, "cert_file", "CERTFILE", "ssl_cert_file",            \
       "redis_cert_file", "REDISCERTFILE")                                     \
    XX(KEY_FILE, STR, 0, "key_file", "KEYFILE", "ssl_key_file",                \
       "redis_key_file", "REDISKEYFILE")                                       \
    XX(TLS_MIN_VERSION, STR, 0, "tls_min_version", "TLSMINVERSION",            \
       "ssl_min_version", "redis_tls_min_version", "REDISTLSMINVERSION")       \
    XX(TLS_MAX_VERSION, STR, 0, "tls_max_version", "TLSMAXVERSION",            \
       "ssl_max_version", "redis_tls_max_version", "REDISTLSMAXVERSION")       \
    XX(KEY_PREFIX, STR, 0, NULL, "KEYPREFIX", "key_prefix", NULL, NULL)        \
    XX(REDIS_KEY_PREFIX, STR, 0, NULL, "REDISKEYPREFIX", "redis_key_prefix",   \
       NULL, NULL)                                                             \
    XX(REDIS_USE_SSL, BOOL, 0, NULL, "REDISUSESSL", "redis_use_ssl", NULL,     \
       NULL)                                                                   \
    XX(REDIS_SSL_INSECURE_SKIP_VERIFY, BOOL, 0, NULL,                          \
       "REDISSSLINSECURESKIPVERIFY", "redis_ssl_insecure_skip_verify", NULL,   \
       NULL)

typedef enum sg_field_id {
#define SG_FIELD_ENUM_(id, kind, secret, gw, env, pump, dash, dashenv) SG_F_##id,
    SG_FIELDS(SG_FIELD_ENUM_)
#undef SG_FIELD_ENUM_
    SG_F_COUNT
} sg_field_id;

typedef enum sg_field_kind {
    SG_KIND_STR,
    SG_KIND_INT,
    SG_KIND_BOOL,
    SG_KIND_LIST, /* array of strings ("addrs") */
    SG_KIND_MAP   /* object of string → string ("hosts": host → port) */
} sg_field_kind;

/* One field's value and origin. */
typedef struct sg_field {
    int set;         /* given by the file or the environment */
    char *s;         /* STR */
    long long i;     /* INT */
    int b;           /* BOOL */
    char **items;    /* LIST items; MAP keys */
    char **values;   /* MAP values */
    int *lines, *cols; /* per item, when from the file */
    size_t n;        /* LIST/MAP entries */
    char *source;    /* "file F:L:C", "env NAME", "default", "resolved" */
    char *env;       /* the variable's name when from the environment */
    char *envval;    /* and its value, for messages */
    int line, col;   /* position in the file when from the file */
    char *text;      /* the effective value as text (after resolution) */
} sg_field;

#define SG_TLS_DIGEST_LEN 32 /* SHA-256 */

/* One storage upstream, read and resolved. */
typedef struct sg_storage {
    char *name;    /* "default", "cache", "analytics" */
    char *section; /* where it was read: "storage", "analytics_storage_config",
                      "slotgate.upstreams.NAME", NULL for the top level */
    int key_shape; /* whose key names its fields use (named upstreams: gateway) */
    sg_field f[SG_F_COUNT];
    /* resolved */
    int mode;         /* sg_mode */
    char **addrs;     /* "host:port" actually used */
    size_t naddrs;
    char *addrs_text; /* comma-joined */
    char *addrs_source;
    int use_ssl, skip_verify;
    int tls_min, tls_max; /* 10, 11, 12, 13 */
    long long timeout, max_active, max_idle, database;
    const char *key_prefix; /* pump: the analytics key prefix */
    /* sg_config_load_tls (use_ssl only): the context the upstream's clients
     * share, and the digest of what it was made from (tls.c) */
    struct ssl_ctx_st *tls_ctx;
    unsigned char tls_digest[SG_TLS_DIGEST_LEN];
} sg_storage;

struct sg_config {
    sg_error err; /* first: sg_errcode()/sg_errmsg() read it */
    int shape;
    char *path;
    sg_field separate_cache, separate_analytics; /* gateway switches */
    sg_storage *up;
    int nup;
    char **warnings;
    int nwarnings;
    char *dump;
};

/* TLS (tls.c): a context from the upstream's settings, or NULL with err set;
 * digest gets sg_tls_digest's (read before the files are loaded). */
struct ssl_ctx_st *sg_tls_context(const sg_storage *st, unsigned char digest[SG_TLS_DIGEST_LEN],
                                  sg_error *err);
/* The SHA-256 of the upstream's TLS settings and of the contents of its CA,
 * certificate and key files: equal digests, the same context. SG_OK, or
 * SG_ETLS naming a file that cannot be read. */
int sg_tls_digest(const sg_storage *st, unsigned char out[SG_TLS_DIGEST_LEN], sg_error *err);

/* The upstream called name, or NULL. */
const sg_storage *sg_config_upstream(const sg_config *cfg, const char *name);

/* The JSON key a shape gives the field sg_config_get() knows as field
 * ("redis_addrs" for the dashboard's "addrs"), for messages that name a
 * file's own key; NULL when the shape has no such key. Static storage. */
const char *sg_config_field_key(int shape, const char *field);

/* The variables the storage settings are read from, for help texts: for a
 * shape, fn(ud, upstream, prefix, suffix) for each variable prefix+suffix, in
 * the order they are applied (the gateway's two switches last, upstream
 * "switch", prefix ""); for the upstreams named in slotgate's settings (any
 * shape), the list variable (upstream "names", prefix "") then each field's
 * variable with the prefix "SLOTGATE_UPSTREAM_<NAME>_". */
#define SG_CONFIG_NAMED_KEY "upstreams" /* their object in the "slotgate" one */
typedef void (*sg_config_env_fn)(void *ud, const char *upstream, const char *prefix,
                                 const char *suffix);
void sg_config_env_each(int shape, sg_config_env_fn fn, void *ud);
void sg_config_named_env_each(sg_config_env_fn fn, void *ud);

/* Go's strconv.ParseInt(s, 0, 64) and ParseBool: 0 on success, -1 on bad
 * syntax, -2 when out of range. Exposed for tests. */
int sg_go_parse_int(const char *s, long long *out);
int sg_go_parse_bool(const char *s, int *out);

#endif
