/*
 * config.c — reads the storage settings exactly as Tyk Gateway, Dashboard and
 * Pump do (see README "Configuration"): a JSON file in one of three shapes,
 * then the environment on top, field by field; then resolves the addresses
 * and the mode, applies Tyk's defaults, validates, and keeps for every field
 * where its value came from. It owns sg_config and every message about bad
 * settings.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "json.h"

extern char **environ;

/* ---- the field table ------------------------------------------------------ */

typedef struct field_def {
    const char *id;
    sg_field_kind kind;
    int secret;
    const char *gw, *env, *pump, *dash, *dashenv;
} field_def;

static const field_def fields[SG_F_COUNT] = {
#define SG_FIELD_DEF_(id, kind, secret, gw, env, pump, dash, dashenv)          \
    {#id, SG_KIND_##kind, secret, gw, env, pump, dash, dashenv},
    SG_FIELDS(SG_FIELD_DEF_)
#undef SG_FIELD_DEF_
};

/* The field's name in the shape's own JSON (NULL: the shape lacks it). */
static const char *field_key(int shape, int f) {
    switch (shape) {
    case SG_SHAPE_DASHBOARD: return fields[f].dash;
    case SG_SHAPE_PUMP: return fields[f].pump;
    default: return fields[f].gw;
    }
}

/* The variable suffix for the field in this shape (NULL: none). */
static const char *field_env(int shape, int f) {
    switch (shape) {
    case SG_SHAPE_DASHBOARD: return fields[f].dashenv;
    case SG_SHAPE_PUMP: return fields[f].pump ? fields[f].env : NULL;
    default: return fields[f].gw ? fields[f].env : NULL;
    }
}

/* The name sg_config_get() knows a field by: the gateway key, else pump's. */
static const char *field_canonical(int f) {
    return fields[f].gw ? fields[f].gw : fields[f].pump;
}

/* Upstreams of each shape: name, JSON section (NULL: the top level), and
 * the environment prefixes applied in order (the last applied wins). */
typedef struct upstream_def {
    const char *name;
    const char *section;
    const char *switch_key; /* gateway: enable_separate_* (NULL: always on) */
    const char *prefixes[3];
} upstream_def;

static const upstream_def gateway_upstreams[] = {
    {"default", "storage", NULL, {"TYK_GW_STORAGE_"}},
    {"cache", "cache_storage", "enable_separate_cache_store",
     {"TYK_GW_CACHESTORAGE_"}},
    {"analytics", "analytics_storage", "enable_separate_analytics_store",
     {"TYK_GW_ANALYTICSSTORAGE_"}},
};
static const upstream_def dashboard_upstream = {"default", NULL, NULL,
                                                {"TYK_DB_"}};
static const upstream_def pump_upstream = {
    "default",
    "analytics_storage_config",
    NULL,
    {"TYK_PMP_ANALYTICSSTORAGECONFIG_", "TYK_PMP_REDIS_",
     "TYK_PMP_TEMPORAL_STORAGE_"}};

/* Tyk's spelling ("SEPERATE") of the gateway's switches. */
#define ENV_SEPARATE_CACHE "TYK_GW_ENABLESEPERATECACHESTORE"
#define ENV_SEPARATE_ANALYTICS "TYK_GW_ENABLESEPERATEANALYTICSSTORE"

/* Upstreams named in slotgate's settings: the list, and each one's prefix
 * (SLOTGATE_UPSTREAM_<NAME>_, the name upper-cased, '-' as '_'). */
#define ENV_NAMED_LIST "SLOTGATE_UPSTREAMS"
#define ENV_NAMED_PREFIX "SLOTGATE_UPSTREAM_"

#define DEFAULT_ADDR "localhost:6379"
#define DEFAULT_TIMEOUT 5
#define DEFAULT_MAX_ACTIVE 500
#define DEFAULT_MAX_IDLE 100
#define MAX_TIMEOUT 86400

/* ---- Go's number and boolean syntax ---------------------------------------- */

/* Go's underscoreOK: '_' may only separate digits (or follow a base prefix). */
static int go_underscores_ok(const char *s) {
    char saw = '^'; /* ^ start, 0 digit or prefix, _ underscore, ! other */
    int hex = 0;
    size_t i = 0;
    if (*s == '+' || *s == '-') s++;
    if (s[0] == '0' && s[1] && strchr("bBoOxX", s[1])) {
        i = 2;
        saw = '0';
        hex = s[1] == 'x' || s[1] == 'X';
    }
    for (; s[i]; i++) {
        if (isdigit((unsigned char)s[i]) || (hex && isxdigit((unsigned char)s[i]))) {
            saw = '0';
            continue;
        }
        if (s[i] == '_') {
            if (saw != '0') return 0;
            saw = '_';
            continue;
        }
        if (saw == '_') return 0;
        saw = '!';
    }
    return saw != '_';
}

int sg_go_parse_int(const char *s, long long *out) {
    const char *p = s;
    int neg = 0, base = 10, ndigits = 0, prefixed = 0;
    unsigned long long v = 0, limit;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (*p == '\0') return -1;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) base = 16, p += 2, prefixed = 1;
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) base = 8, p += 2, prefixed = 1;
    else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) base = 2, p += 2, prefixed = 1;
    else if (p[0] == '0' && p[1] != '\0') base = 8, p += 1; /* the 0 counts */
    limit = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; *p; p++) {
        int d;
        if (*p == '_') continue; /* placement checked below */
        if (isdigit((unsigned char)*p)) d = *p - '0';
        else if (isxdigit((unsigned char)*p)) d = tolower((unsigned char)*p) - 'a' + 10;
        else return -1;
        if (d >= base) return -1;
        ndigits++;
        if (v > (limit - (unsigned long long)d) / (unsigned long long)base) {
            /* keep checking syntax: Go reports a syntax error first */
            for (p++; *p; p++)
                if (*p != '_' && !isxdigit((unsigned char)*p)) return -1;
            return -2;
        }
        v = v * (unsigned long long)base + (unsigned long long)d;
    }
    if (ndigits == 0 && prefixed) return -1; /* "0x", "0b", "0o" alone */
    if (strchr(s, '_') && !go_underscores_ok(s)) return -1;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

int sg_go_parse_bool(const char *s, int *out) {
    static const char *const truths[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const lies[] = {"0", "f", "F", "FALSE", "false", "False"};
    size_t i;
    for (i = 0; i < sizeof truths / sizeof *truths; i++) {
        if (strcmp(s, truths[i]) == 0) return *out = 1, 0;
        if (strcmp(s, lies[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

/* ---- freeing ---------------------------------------------------------------- */

static void field_clear_value(sg_field *f) {
    size_t i;
    sg_free(f->s);
    for (i = 0; i < f->n; i++) {
        sg_free(f->items[i]);
        if (f->values) sg_free(f->values[i]);
    }
    sg_free(f->items);
    sg_free(f->values);
    sg_free(f->lines);
    sg_free(f->cols);
    f->s = NULL;
    f->items = f->values = NULL;
    f->lines = f->cols = NULL;
    f->n = 0;
    f->i = 0;
    f->b = 0;
}

static void field_free(sg_field *f) {
    field_clear_value(f);
    sg_free(f->source);
    sg_free(f->env);
    sg_free(f->envval);
    sg_free(f->text);
    memset(f, 0, sizeof *f);
}

static void storage_free(sg_storage *st) {
    size_t i;
    int k;
    for (k = 0; k < SG_F_COUNT; k++) field_free(&st->f[k]);
    for (i = 0; i < st->naddrs; i++) sg_free(st->addrs[i]);
    sg_free(st->addrs);
    sg_free(st->addrs_text);
    sg_free(st->addrs_source);
    sg_free(st->name);
    sg_free(st->section);
    SSL_CTX_free(st->tls_ctx); /* clients that use it hold references of their own */
    memset(st, 0, sizeof *st);
}

static void config_reset(sg_config *cfg) {
    int i;
    for (i = 0; i < cfg->nup; i++) storage_free(&cfg->up[i]);
    sg_free(cfg->up);
    for (i = 0; i < cfg->nwarnings; i++) sg_free(cfg->warnings[i]);
    sg_free(cfg->warnings);
    field_free(&cfg->separate_cache);
    field_free(&cfg->separate_analytics);
    sg_free(cfg->path);
    sg_free(cfg->dump);
    cfg->up = NULL;
    cfg->nup = 0;
    cfg->warnings = NULL;
    cfg->nwarnings = 0;
    cfg->path = NULL;
    cfg->dump = NULL;
    cfg->shape = SG_SHAPE_AUTO;
}

sg_config *sg_config_new(void) { return sg_calloc(1, sizeof(sg_config)); }

void sg_config_free(sg_config *cfg) {
    if (cfg == NULL) return;
    config_reset(cfg);
    sg_free(cfg);
}

/* ---- the load context -------------------------------------------------------- */

typedef struct loader {
    sg_config *cfg;
    const char *const *env;
    const char *path; /* for messages; NULL with no file */
} loader;

static int oom(loader *ld) {
    return sg_seterr(&ld->cfg->err, SG_ENOMEM, "out of memory while reading settings");
}


static int warn(loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int warn(loader *ld, const char *fmt, ...) {
    char msg[600];
    char **w;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w = sg_realloc(ld->cfg->warnings, (size_t)(ld->cfg->nwarnings + 1) * sizeof *w);
    if (w == NULL) return oom(ld);
    ld->cfg->warnings = w;
    if ((w[ld->cfg->nwarnings] = sg_strdup(msg)) == NULL) return oom(ld);
    ld->cfg->nwarnings++;
    sg_log(SG_LOG_WARN, "settings: %s", msg);
    return SG_OK;
}

/* Sets f->source to a formatted string. */
static int set_source(loader *ld, sg_field *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_source(loader *ld, sg_field *f, const char *fmt, ...) {
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sg_free(f->source);
    if ((f->source = sg_strdup(buf)) == NULL) return oom(ld);
    return SG_OK;
}

/* The dotted name of a field in messages: "storage.port", "redis_port". */
static void qualified(const sg_storage *st, int shape, int fid, char *out,
                      size_t outlen) {
    const char *key = field_key(shape, fid);
    if (key == NULL) key = field_canonical(fid);
    if (st->section) snprintf(out, outlen, "%s.%s", st->section, key);
    else snprintf(out, outlen, "%s", key);
}

/* An error about a field's value, prefixed by where that value came from. */
static int field_error(loader *ld, const sg_storage *st, int fid, int line,
                       int col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int field_error(loader *ld, const sg_storage *st, int fid, int line,
                       int col, const char *fmt, ...) {
    const sg_field *f = &st->f[fid];
    char what[400], name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    qualified(st, st->key_shape, fid, name, sizeof name);
    if (f->env)
        return sg_seterr(&ld->cfg->err, SG_ECONFIG, "%s=\"%s\": %s: %s", f->env,
                         f->envval ? f->envval : "", name, what);
    if (f->set && ld->path)
        return sg_seterr(&ld->cfg->err, SG_ECONFIG, "%s:%d:%d: %s: %s", ld->path,
                         line ? line : f->line, line ? col : f->col, name, what);
    return sg_seterr(&ld->cfg->err, SG_ECONFIG, "%s: %s", name, what);
}

/* ---- reading JSON values into fields ------------------------------------------- */

static const char *kind_expected(sg_field_kind k) {
    switch (k) {
    case SG_KIND_STR: return "a string";
    case SG_KIND_INT: return "an integer";
    case SG_KIND_BOOL: return "true or false";
    case SG_KIND_LIST: return "an array of \"host:port\" strings";
    case SG_KIND_MAP: return "an object of \"host\": \"port\" strings";
    }
    return "?";
}

static int type_error(loader *ld, sg_storage *st, int fid, const sg_json *v,
                      const char *expected) {
    char found[100], name[128];
    sg_json_brief(v, found, sizeof found);
    qualified(st, st->key_shape, fid, name, sizeof name);
    return sg_seterr(&ld->cfg->err, SG_ECONFIG, "%s:%d:%d: %s: expected %s, found %s",
                     ld->path, v->line, v->col, name, expected, found);
}

/* Stores a string item; keeps file positions parallel to items. */
static int push_item(loader *ld, sg_field *f, const char *key, const char *val,
                     int line, int col) {
    size_t n = f->n + 1;
    char **items = sg_realloc(f->items, n * sizeof *items);
    int *lines, *cols;
    if (items == NULL) return oom(ld);
    f->items = items;
    if ((lines = sg_realloc(f->lines, n * sizeof *lines)) == NULL) return oom(ld);
    f->lines = lines;
    if ((cols = sg_realloc(f->cols, n * sizeof *cols)) == NULL) return oom(ld);
    f->cols = cols;
    if (val) {
        char **values = sg_realloc(f->values, n * sizeof *values);
        if (values == NULL) return oom(ld);
        f->values = values;
        f->values[f->n] = NULL;
    }
    f->items[f->n] = NULL;
    f->lines[f->n] = line;
    f->cols[f->n] = col;
    f->n = n; /* counted before filling, so freeing sees every slot */
    if ((f->items[n - 1] = sg_strdup(key)) == NULL) return oom(ld);
    if (val && (f->values[n - 1] = sg_strdup(val)) == NULL) return oom(ld);
    return SG_OK;
}

/* Applies one JSON member to a field, as Go's encoding/json would. */
static int apply_json(loader *ld, sg_storage *st, int fid, const sg_json *v) {
    sg_field *f = &st->f[fid];
    size_t i;
    int rc;
    if (v->type == SG_JSON_NULL) return SG_OK; /* Go leaves the field as is */
    switch (fields[fid].kind) {
    case SG_KIND_STR:
        if (v->type != SG_JSON_STRING) return type_error(ld, st, fid, v, "a string");
        field_clear_value(f);
        if ((f->s = sg_strdup(v->str)) == NULL) return oom(ld);
        break;
    case SG_KIND_INT: {
        long long n;
        if (v->type != SG_JSON_NUMBER) return type_error(ld, st, fid, v, "an integer");
        rc = sg_json_int(v, &n);
        if (rc == -1) return type_error(ld, st, fid, v, "an integer (no fraction or exponent)");
        if (rc == -2) return type_error(ld, st, fid, v, "an integer that fits in 64 bits");
        f->i = n;
        break;
    }
    case SG_KIND_BOOL:
        if (v->type != SG_JSON_BOOL) return type_error(ld, st, fid, v, "true or false");
        f->b = v->boolean;
        break;
    case SG_KIND_LIST:
        if (v->type != SG_JSON_ARRAY)
            return type_error(ld, st, fid, v, kind_expected(SG_KIND_LIST));
        field_clear_value(f);
        for (i = 0; i < v->n; i++) {
            const sg_json *it = v->items[i];
            if (it->type != SG_JSON_STRING)
                return type_error(ld, st, fid, it, "a \"host:port\" string");
            if ((rc = push_item(ld, f, it->str, NULL, it->line, it->col))) return rc;
        }
        break;
    case SG_KIND_MAP:
        if (v->type != SG_JSON_OBJECT)
            return type_error(ld, st, fid, v, kind_expected(SG_KIND_MAP));
        /* Go decodes into the existing map: a repeated key replaces. */
        for (i = 0; i < v->n; i++) {
            const sg_json_member *m = &v->members[i];
            size_t j;
            if (m->value->type != SG_JSON_STRING)
                return type_error(ld, st, fid, m->value,
                                  "a port as a string (\"6379\")");
            for (j = 0; j < f->n; j++)
                if (strcmp(f->items[j], m->key) == 0) break;
            if (j < f->n) {
                char *nv = sg_strdup(m->value->str);
                if (nv == NULL) return oom(ld);
                sg_free(f->values[j]);
                f->values[j] = nv;
                f->lines[j] = m->line;
                f->cols[j] = m->col;
            } else if ((rc = push_item(ld, f, m->key, m->value->str, m->line, m->col))) {
                return rc;
            }
        }
        break;
    }
    f->set = 1;
    f->line = v->line;
    f->col = v->col;
    sg_free(f->env);
    f->env = NULL;
    sg_free(f->envval);
    f->envval = NULL;
    return set_source(ld, f, "file %s:%d:%d", ld->path, v->line, v->col);
}


/* Reads a section's members into st, in file order (the last one wins, as in
 * Go). Unknown keys in a storage section are warned about. */
static int read_section(loader *ld, sg_storage *st, const sg_json *obj,
                        int warn_unknown) {
    size_t i;
    int rc, fid;
    for (i = 0; i < obj->n; i++) {
        const sg_json_member *m = &obj->members[i];
        int found = 0;
        for (fid = 0; fid < SG_F_COUNT; fid++) {
            const char *key = field_key(st->key_shape, fid);
            if (key == NULL || strcasecmp(key, m->key) != 0) continue;
            found = 1;
            if ((rc = apply_json(ld, st, fid, m->value))) return rc;
        }
        if (!found && warn_unknown &&
            (rc = warn(ld, "%s:%d:%d: %s: unknown key \"%s\" ignored", ld->path,
                       m->line, m->col, st->section, m->key)))
            return rc;
    }
    return SG_OK;
}

/* ---- the environment ------------------------------------------------------------ */

static int env_error(loader *ld, const char *name, const char *value,
                     const char *expected) {
    return sg_seterr(&ld->cfg->err, SG_EENV, "%s=\"%s\": expected %s", name,
                     value, expected);
}


/* Applies one variable to a field, as Tyk's envconfig does. */
static int apply_env(loader *ld, sg_field *f, int fid, const char *name,
                     const char *value, int lenient_map) {
    int rc;
    switch (fields[fid].kind) {
    case SG_KIND_STR:
        field_clear_value(f);
        if ((f->s = sg_strdup(value)) == NULL) return oom(ld);
        break;
    case SG_KIND_INT: {
        long long n;
        rc = sg_go_parse_int(value, &n);
        if (rc == -1)
            return env_error(ld, name, value,
                             "an integer (decimal, 0x hex, 0o or leading-0 "
                             "octal, 0b binary; '_' between digits)");
        if (rc == -2) return env_error(ld, name, value, "an integer that fits in 64 bits");
        f->i = n;
        break;
    }
    case SG_KIND_BOOL:
        if (sg_go_parse_bool(value, &f->b))
            return env_error(ld, name, value,
                             "a boolean: 1, t, T, TRUE, true, True, 0, f, F, "
                             "FALSE, false or False");
        break;
    case SG_KIND_LIST:
    case SG_KIND_MAP: {
        /* Split on ',' (no trimming); blank means empty. */
        const char *p = value;
        field_clear_value(f);
        if (sg_is_blank(value)) break;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char *item = sg_strndup(p, len);
            if (item == NULL) return oom(ld);
            if (fields[fid].kind == SG_KIND_LIST) {
                rc = push_item(ld, f, item, NULL, 0, 0);
            } else {
                char *colon = strchr(item, ':');
                if (colon == NULL || strchr(colon + 1, ':') != NULL) {
                    if (lenient_map) {
                        sg_free(item);
                        goto next;
                    }
                    rc = sg_seterr(&ld->cfg->err, SG_EENV,
                                   "%s=\"%s\": item \"%s\" is not host:port "
                                   "(expected h1:p1,h2:p2 with exactly one ':' "
                                   "per item)",
                                   name, value, item);
                    sg_free(item);
                    return rc;
                }
                *colon = '\0';
                rc = push_item(ld, f, item, colon + 1, 0, 0);
            }
            sg_free(item);
            if (rc) return rc;
        next:
            if (comma == NULL) break;
            p = comma + 1;
        }
        break;
    }
    }
    f->set = 1;
    sg_free(f->env);
    sg_free(f->envval);
    f->envval = NULL;
    if ((f->env = sg_strdup(name)) == NULL) return oom(ld);
    if ((f->envval = sg_strdup(value)) == NULL) return oom(ld);
    return set_source(ld, f, "env %s", name);
}

/* Applies every variable of the upstream's prefixes, in order. */
#define ENV_NAME_MAX 96

static int overlay_env(loader *ld, sg_storage *st, const upstream_def *ud) {
    int layer, fid, rc;
    for (layer = 0; layer < 3 && ud->prefixes[layer]; layer++) {
        for (fid = 0; fid < SG_F_COUNT; fid++) {
            const char *suffix = field_env(st->key_shape, fid);
            char name[ENV_NAME_MAX];
            const char *value;
            if (suffix == NULL) continue;
            snprintf(name, sizeof name, "%s%s", ud->prefixes[layer], suffix);
            if ((value = sg_env_get(ld->env, name)) == NULL) continue;
            rc = apply_env(ld, &st->f[fid], fid, name, value, st->key_shape == SG_SHAPE_PUMP);
            if (rc) return rc;
        }
    }
    return SG_OK;
}

/* ---- resolution and validation ---------------------------------------------------- */

/* Checks "host:port" (IPv6 hosts in brackets); fills why on failure. */
static int check_addr(const char *addr, char *why, size_t whylen) {
    const char *colon = strrchr(addr, ':');
    long long port;
    if (colon == NULL) {
        snprintf(why, whylen, "\"%s\" has no port (expected HOST:PORT)", addr);
        return -1;
    }
    if (addr[0] == '[' ? colon[-1] != ']' : memchr(addr, ':', (size_t)(colon - addr)) != NULL) {
        snprintf(why, whylen,
                 "\"%s\" is not HOST:PORT (an IPv6 host goes in brackets: "
                 "[::1]:6379)",
                 addr);
        return -1;
    }
    if (colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        strlen(colon + 1) > 5 || (port = atoll(colon + 1)) < 1 || port > 65535) {
        snprintf(why, whylen, "\"%s\": the port must be a number from 1 to 65535", addr);
        return -1;
    }
    return 0;
}

static int add_addr(loader *ld, sg_storage *st, const char *addr) {
    char **a = sg_realloc(st->addrs, (st->naddrs + 1) * sizeof *a);
    if (a == NULL) return oom(ld);
    st->addrs = a;
    if ((st->addrs[st->naddrs] = sg_strdup(addr)) == NULL) return oom(ld);
    st->naddrs++;
    return SG_OK;
}

/* Addresses: addrs, else every hosts entry, else host:port; never merged. */
static int resolve_addresses(loader *ld, sg_storage *st) {
    sg_field *addrs = &st->f[SG_F_ADDRS], *hosts = &st->f[SG_F_HOSTS];
    sg_field *host = &st->f[SG_F_HOST], *port = &st->f[SG_F_PORT];
    char why[300], buf[600], name[128];
    size_t i;
    int rc;
    if (addrs->n > 0) {
        for (i = 0; i < addrs->n; i++) {
            if (check_addr(addrs->items[i], why, sizeof why))
                return field_error(ld, st, SG_F_ADDRS, addrs->lines[i],
                                   addrs->cols[i], "item %zu: %s", i + 1, why);
            if ((rc = add_addr(ld, st, addrs->items[i]))) return rc;
        }
        st->addrs_source = sg_strdup(addrs->source);
        if (hosts->n > 0) {
            qualified(st, st->key_shape, SG_F_HOSTS, name, sizeof name);
            if ((rc = warn(ld, "%s ignored: addrs is set and wins", name))) return rc;
        }
    } else if (hosts->n > 0) {
        for (i = 0; i < hosts->n; i++) {
            const char *h = hosts->items[i];
            int v6 = strchr(h, ':') != NULL && h[0] != '[';
            snprintf(buf, sizeof buf, "%s%s%s:%s", v6 ? "[" : "", h, v6 ? "]" : "",
                     hosts->values[i]);
            if (check_addr(buf, why, sizeof why))
                return field_error(ld, st, SG_F_HOSTS, hosts->lines[i],
                                   hosts->cols[i], "entry \"%s\": %s", h, why);
            if ((rc = add_addr(ld, st, buf))) return rc;
        }
        st->addrs_source = sg_strdup(hosts->source);
    } else if (port->i != 0) {
        const char *h = host->s ? host->s : "";
        int v6 = strchr(h, ':') != NULL && h[0] != '[';
        if (port->i < 1 || port->i > 65535)
            return field_error(ld, st, SG_F_PORT, 0, 0,
                               "%lld is not a port (expected 1 to 65535)", port->i);
        if (*h == '\0') h = "localhost"; /* Go dials ":port" on this host */
        snprintf(buf, sizeof buf, "%s%s%s:%lld", v6 ? "[" : "", h, v6 ? "]" : "", port->i);
        if ((rc = add_addr(ld, st, buf))) return rc;
        snprintf(buf, sizeof buf, "host %s, port %s",
                 host->source ? host->source : "default", port->source);
        st->addrs_source = sg_strdup(buf);
    } else {
        if ((rc = add_addr(ld, st, DEFAULT_ADDR))) return rc;
        st->addrs_source = sg_strdup("default");
        if ((rc = warn(ld, "[%s] no address set (addrs, hosts, or host and port): "
                           "using " DEFAULT_ADDR, st->name)))
            return rc;
    }
    if (st->addrs_source == NULL) return oom(ld);
    return SG_OK;
}

/* "1.0".."1.3" → 10..13; 0 when invalid. */
static int tls_version(const char *s) {
    if (s[0] == '1' && s[1] == '.' && s[2] >= '0' && s[2] <= '3' && s[3] == '\0')
        return 10 + (s[2] - '0');
    return 0;
}

/* Replaces a field's effective int by a default, noting why in its source. */
static int use_default_int(loader *ld, sg_field *f, long long def) {
    int rc;
    if (f->set) rc = set_source(ld, f, "default (%s gave %lld)", f->source, f->i);
    else rc = set_source(ld, f, "default");
    f->i = def;
    return rc;
}

/* A boolean with a deprecated alias OR-ed into it: true when either is, its source the
   alias's when only the alias made it true. */
static int or_deprecated(loader *ld, sg_storage *st, int fid, int alias) {
    sg_field *f = &st->f[fid], *a = &st->f[alias];
    char name[128];
    if (f->b || !a->b) return SG_OK;
    qualified(st, st->key_shape, alias, name, sizeof name);
    f->b = 1;
    return set_source(ld, f, "%s, deprecated %s, OR-ed in", a->source ? a->source : "default",
                      name);
}

static int resolve_tls(loader *ld, sg_storage *st) {
    static const int files[] = {SG_F_CA_FILE, SG_F_CERT_FILE, SG_F_KEY_FILE};
    sg_field *min = &st->f[SG_F_TLS_MIN_VERSION], *max = &st->f[SG_F_TLS_MAX_VERSION];
    char name[128];
    size_t i;
    int rc;
    /* The Pump's deprecated redis_use_ssl and redis_ssl_insecure_skip_verify are OR-ed
       in, as Tyk Pump does: fold them into the fields themselves so that what --check
       and sg_config_get show is what the connections do, and say where it came from. */
    if ((rc = or_deprecated(ld, st, SG_F_USE_SSL, SG_F_REDIS_USE_SSL))) return rc;
    if ((rc = or_deprecated(ld, st, SG_F_SSL_INSECURE_SKIP_VERIFY,
                            SG_F_REDIS_SSL_INSECURE_SKIP_VERIFY)))
        return rc;
    st->use_ssl = st->f[SG_F_USE_SSL].b;
    st->skip_verify = st->f[SG_F_SSL_INSECURE_SKIP_VERIFY].b;
    if (!st->use_ssl) {
        /* Read only with use_ssl: say so when they were given. */
        for (i = 0; i < 3; i++) {
            if (!st->f[files[i]].set || !st->f[files[i]].s[0]) continue;
            qualified(st, st->key_shape, files[i], name, sizeof name);
            if ((rc = warn(ld, "%s ignored: use_ssl is off", name))) return rc;
        }
        st->tls_min = 12;
        st->tls_max = 13;
        return SG_OK;
    }
    st->tls_min = 12;
    st->tls_max = 13;
    if (min->s && min->s[0] && (st->tls_min = tls_version(min->s)) == 0)
        return field_error(ld, st, SG_F_TLS_MIN_VERSION, 0, 0,
                           "\"%s\" is not a TLS version (expected \"1.0\", "
                           "\"1.1\", \"1.2\" or \"1.3\")", min->s);
    if (max->s && max->s[0] && (st->tls_max = tls_version(max->s)) == 0)
        return field_error(ld, st, SG_F_TLS_MAX_VERSION, 0, 0,
                           "\"%s\" is not a TLS version (expected \"1.0\", "
                           "\"1.1\", \"1.2\" or \"1.3\")", max->s);
    if (st->tls_min > st->tls_max)
        return field_error(ld, st, SG_F_TLS_MIN_VERSION, 0, 0,
                           "minimum TLS version 1.%d is above the maximum 1.%d",
                           st->tls_min - 10, st->tls_max - 10);
    for (i = 0; i < 3; i++) {
        sg_field *f = &st->f[files[i]];
        if (f->s == NULL || f->s[0] == '\0') continue;
        if (access(f->s, R_OK) != 0)
            return field_error(ld, st, files[i], 0, 0, "cannot read \"%s\": %s",
                               f->s, strerror(errno));
    }
    if ((st->f[SG_F_CERT_FILE].s && st->f[SG_F_CERT_FILE].s[0]) !=
        (st->f[SG_F_KEY_FILE].s && st->f[SG_F_KEY_FILE].s[0])) {
        if ((rc = warn(ld, "[%s] no client certificate: cert_file and key_file "
                           "must both be set", st->name)))
            return rc;
    }
    return SG_OK;
}

static int resolve(loader *ld, sg_storage *st) {
    sg_field *type = &st->f[SG_F_TYPE];
    char name[128];
    int rc;

    if (type->s && type->s[0] && strcmp(type->s, "redis") != 0)
        return field_error(ld, st, SG_F_TYPE, 0, 0,
                           "\"%s\" is not supported (expected \"redis\")", type->s);
    if ((rc = resolve_addresses(ld, st))) return rc;

    /* Mode: master_name → Sentinel; else enable_cluster → Cluster; else one node. */
    if (st->f[SG_F_MASTER_NAME].s && st->f[SG_F_MASTER_NAME].s[0]) {
        st->mode = SG_MODE_SENTINEL;
        if (st->f[SG_F_ENABLE_CLUSTER].b &&
            (rc = warn(ld, "[%s] enable_cluster ignored: master_name is set, so "
                           "this is Sentinel mode", st->name)))
            return rc;
    } else if (st->f[SG_F_ENABLE_CLUSTER].b) {
        st->mode = SG_MODE_CLUSTER;
    } else {
        st->mode = SG_MODE_SINGLE;
        if (st->naddrs > 1) {
            if ((rc = warn(ld, "[%s] single-node mode uses only the first address "
                               "%s, %zu more ignored (set enable_cluster for a "
                               "cluster, or master_name for Sentinel)",
                           st->name, st->addrs[0], st->naddrs - 1)))
                return rc;
            while (st->naddrs > 1) sg_free(st->addrs[--st->naddrs]);
        }
    }

    /* Numbers and their defaults. */
    if (st->f[SG_F_DATABASE].i < 0)
        return field_error(ld, st, SG_F_DATABASE, 0, 0,
                           "%lld is not a database number (expected 0 or more)",
                           st->f[SG_F_DATABASE].i);
    if (st->mode == SG_MODE_CLUSTER && st->f[SG_F_DATABASE].i != 0) {
        qualified(st, st->key_shape, SG_F_DATABASE, name, sizeof name);
        if ((rc = warn(ld, "%s %lld ignored: Redis Cluster has only database 0",
                       name, st->f[SG_F_DATABASE].i)))
            return rc;
    }
    if (st->f[SG_F_TIMEOUT].i <= 0 &&
        (rc = use_default_int(ld, &st->f[SG_F_TIMEOUT], DEFAULT_TIMEOUT)))
        return rc;
    if (st->f[SG_F_TIMEOUT].i > MAX_TIMEOUT)
        return field_error(ld, st, SG_F_TIMEOUT, 0, 0,
                           "%lld seconds is more than a day (expected 1 to %d)",
                           st->f[SG_F_TIMEOUT].i, MAX_TIMEOUT);
    if (st->f[SG_F_MAX_ACTIVE].i <= 0 &&
        (rc = use_default_int(ld, &st->f[SG_F_MAX_ACTIVE], DEFAULT_MAX_ACTIVE)))
        return rc;
    if (st->f[SG_F_MAX_ACTIVE].i > INT_MAX)
        return field_error(ld, st, SG_F_MAX_ACTIVE, 0, 0,
                           "%lld connections per node is too many",
                           st->f[SG_F_MAX_ACTIVE].i);
    if (st->f[SG_F_MAX_IDLE].i <= 0) {
        long long def = st->f[SG_F_MAX_ACTIVE].i < DEFAULT_MAX_IDLE
                            ? st->f[SG_F_MAX_ACTIVE].i
                            : DEFAULT_MAX_IDLE;
        if ((rc = use_default_int(ld, &st->f[SG_F_MAX_IDLE], def))) return rc;
    } else if (st->f[SG_F_MAX_IDLE].i > st->f[SG_F_MAX_ACTIVE].i) {
        if ((rc = warn(ld, "[%s] optimisation_max_idle %lld is above "
                           "optimisation_max_active %lld: at most %lld idle",
                       st->name, st->f[SG_F_MAX_IDLE].i, st->f[SG_F_MAX_ACTIVE].i,
                       st->f[SG_F_MAX_ACTIVE].i)))
            return rc;
    }
    st->timeout = st->f[SG_F_TIMEOUT].i;
    st->max_active = st->f[SG_F_MAX_ACTIVE].i;
    st->max_idle = st->f[SG_F_MAX_IDLE].i < st->max_active ? st->f[SG_F_MAX_IDLE].i
                                                           : st->max_active;
    st->database = st->mode == SG_MODE_CLUSTER ? 0 : st->f[SG_F_DATABASE].i;
    if ((rc = resolve_tls(ld, st))) return rc;

    if (st->key_shape == SG_SHAPE_PUMP) {
        const char *kp = st->f[SG_F_KEY_PREFIX].s, *rkp = st->f[SG_F_REDIS_KEY_PREFIX].s;
        st->key_prefix = kp && kp[0] ? kp : rkp && rkp[0] ? rkp : "analytics-";
    }
    return SG_OK;
}

/* ---- effective values as text ------------------------------------------------------ */

static char *field_text(const sg_storage *st, int fid) {
    const sg_field *f = &st->f[fid];
    sg_buf b = {0};
    size_t i;
    switch (fields[fid].kind) {
    case SG_KIND_STR:
        if (fid == SG_F_TYPE && (f->s == NULL || f->s[0] == '\0')) sg_buf_puts(&b, "redis");
        else if (fid == SG_F_TLS_MIN_VERSION)
            sg_buf_printf(&b, "1.%d", st->tls_min - 10);
        else if (fid == SG_F_TLS_MAX_VERSION)
            sg_buf_printf(&b, "1.%d", st->tls_max - 10);
        else if (fid == SG_F_KEY_PREFIX && st->key_prefix)
            sg_buf_puts(&b, st->key_prefix);
        else sg_buf_puts(&b, f->s ? f->s : "");
        break;
    case SG_KIND_INT: sg_buf_printf(&b, "%lld", f->i); break;
    case SG_KIND_BOOL: sg_buf_puts(&b, f->b ? "true" : "false"); break;
    case SG_KIND_LIST:
    case SG_KIND_MAP:
        for (i = 0; i < f->n; i++) {
            if (i) sg_buf_puts(&b, ",");
            sg_buf_puts(&b, f->items[i]);
            if (f->values) sg_buf_printf(&b, ":%s", f->values[i]);
        }
        break;
    }
    return sg_buf_take(&b);
}

static int finish_texts(loader *ld, sg_storage *st) {
    sg_buf b = {0};
    size_t i;
    int fid, rc;
    for (fid = 0; fid < SG_F_COUNT; fid++) {
        sg_field *f = &st->f[fid];
        if ((f->text = field_text(st, fid)) == NULL) return oom(ld);
        if (f->source == NULL && (rc = set_source(ld, f, "default"))) return rc;
    }
    for (i = 0; i < st->naddrs; i++) {
        if (i) sg_buf_puts(&b, ",");
        sg_buf_puts(&b, st->addrs[i]);
    }
    if ((st->addrs_text = sg_buf_take(&b)) == NULL) return oom(ld);
    return SG_OK;
}

/* ---- shapes ------------------------------------------------------------------------- */

static int known_env_of_shape(const char *const *env, int shape) {
    const upstream_def *uds;
    int nud, u, layer, fid;
    char name[ENV_NAME_MAX];
    if (shape == SG_SHAPE_GATEWAY) {
        uds = gateway_upstreams;
        nud = 3;
        if (sg_env_get(env, ENV_SEPARATE_CACHE) || sg_env_get(env, ENV_SEPARATE_ANALYTICS))
            return 1;
    } else {
        uds = shape == SG_SHAPE_DASHBOARD ? &dashboard_upstream : &pump_upstream;
        nud = 1;
    }
    for (u = 0; u < nud; u++)
        for (layer = 0; layer < 3 && uds[u].prefixes[layer]; layer++)
            for (fid = 0; fid < SG_F_COUNT; fid++) {
                const char *suffix = field_env(shape, fid);
                if (suffix == NULL) continue;
                snprintf(name, sizeof name, "%s%s", uds[u].prefixes[layer], suffix);
                if (sg_env_get(env, name)) return 1;
            }
    return 0;
}

/* Tells the shape from the file's keys (or, with no file, the variables). */
static int detect_shape(loader *ld, const sg_json *root) {
    size_t i;
    if (root == NULL) {
        if (known_env_of_shape(ld->env, SG_SHAPE_GATEWAY)) return SG_SHAPE_GATEWAY;
        if (known_env_of_shape(ld->env, SG_SHAPE_DASHBOARD)) return SG_SHAPE_DASHBOARD;
        if (known_env_of_shape(ld->env, SG_SHAPE_PUMP)) return SG_SHAPE_PUMP;
        return SG_SHAPE_GATEWAY;
    }
    if (sg_json_get(root, "storage") || sg_json_get(root, "cache_storage") ||
        sg_json_get(root, "analytics_storage"))
        return SG_SHAPE_GATEWAY;
    if (sg_json_get(root, "analytics_storage_config")) return SG_SHAPE_PUMP;
    for (i = 0; i < root->n; i++)
        if (strncasecmp(root->members[i].key, "redis_", 6) == 0) return SG_SHAPE_DASHBOARD;
    if (sg_json_get(root, "enable_cluster")) return SG_SHAPE_DASHBOARD;
    sg_seterr(&ld->cfg->err, SG_ECONFIG,
              "%s: cannot tell which Tyk file this is: expected a \"storage\" "
              "object (tyk.conf), an \"analytics_storage_config\" object "
              "(pump.conf) or top-level \"redis_*\" keys (tyk_analytics.conf); "
              "or give the shape explicitly",
              ld->path);
    return -1;
}

/* Reads a gateway switch (enable_separate_*) from the file and env. */
static int read_switch(loader *ld, sg_field *f, const sg_json *root,
                       const char *key, const char *envname) {
    const sg_json *v = sg_json_get(root, key);
    const char *e;
    if (v && v->type != SG_JSON_NULL) {
        if (v->type != SG_JSON_BOOL) {
            char found[100];
            sg_json_brief(v, found, sizeof found);
            return sg_seterr(&ld->cfg->err, SG_ECONFIG,
                             "%s:%d:%d: %s: expected true or false, found %s",
                             ld->path, v->line, v->col, key, found);
        }
        f->b = v->boolean;
        f->set = 1;
        if (set_source(ld, f, "file %s:%d:%d", ld->path, v->line, v->col)) return oom(ld);
    }
    if ((e = sg_env_get(ld->env, envname)) != NULL) {
        if (sg_go_parse_bool(e, &f->b))
            return env_error(ld, envname, e,
                             "a boolean: 1, t, T, TRUE, true, True, 0, f, F, "
                             "FALSE, false or False");
        f->set = 1;
        if (set_source(ld, f, "env %s", envname)) return oom(ld);
    }
    if (f->source == NULL && set_source(ld, f, "default")) return oom(ld);
    return SG_OK;
}

/* Adds an upstream read from section (NULL: none in the file), its keys
 * named as in key_shape's files. */
static int add_upstream_from(loader *ld, const upstream_def *ud, const sg_json *section,
                             int key_shape) {
    sg_config *cfg = ld->cfg;
    sg_storage *up = sg_realloc(cfg->up, (size_t)(cfg->nup + 1) * sizeof *up);
    sg_storage *st;
    int rc;
    if (up == NULL) return oom(ld);
    cfg->up = up;
    st = &cfg->up[cfg->nup++];
    memset(st, 0, sizeof *st);
    st->key_shape = key_shape;
    if ((st->name = sg_strdup(ud->name)) == NULL) return oom(ld);
    if (ud->section && (st->section = sg_strdup(ud->section)) == NULL) return oom(ld);
    if (section && section->type != SG_JSON_NULL) {
        if (section->type != SG_JSON_OBJECT) {
            char found[100];
            sg_json_brief(section, found, sizeof found);
            return sg_seterr(&cfg->err, SG_ECONFIG,
                             "%s:%d:%d: %s: expected an object, found %s", ld->path,
                             section->line, section->col, ud->section, found);
        }
        if ((rc = read_section(ld, st, section, ud->section != NULL))) return rc;
    }
    if ((rc = overlay_env(ld, st, ud))) return rc;
    if ((rc = resolve(ld, st))) return rc;
    return finish_texts(ld, st);
}

static int add_upstream(loader *ld, const upstream_def *ud, const sg_json *root) {
    const sg_json *section = root == NULL  ? NULL
                             : ud->section ? sg_json_get(root, ud->section)
                                           : root;
    return add_upstream_from(ld, ud, section, ld->cfg->shape);
}

/* ---- upstreams named in slotgate's own settings ----------------------------------------- */

#define NAME_MAX_LEN 32

/* Names: a lower-case letter, then letters, digits, '_' or '-'. */
static int valid_upstream_name(const char *n) {
    size_t i, len = strlen(n);
    if (len == 0 || len > NAME_MAX_LEN || n[0] < 'a' || n[0] > 'z') return 0;
    for (i = 1; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '_' ||
              n[i] == '-'))
            return 0;
    return 1;
}

static int add_named(loader *ld, const char *name, const sg_json *section, int line, int col,
                     const char *from) {
    char label[NAME_MAX_LEN + 32], prefix[NAME_MAX_LEN + 32];
    upstream_def ud = {name, label, NULL, {prefix}};
    size_t i;
    int u;
    if (!valid_upstream_name(name) || !strcmp(name, "default") || !strcmp(name, "cache") ||
        !strcmp(name, "analytics")) {
        const char *why = valid_upstream_name(name)
                              ? "is the name of a Tyk storage block; pick another"
                              : "is not a name (a lower-case letter, then letters, digits, '_' "
                                "or '-', at most 32)";
        if (line)
            return sg_seterr(&ld->cfg->err, SG_ECONFIG, "%s:%d:%d: slotgate.upstreams: \"%s\" %s",
                             ld->path, line, col, name, why);
        return sg_seterr(&ld->cfg->err, SG_ECONFIG, "%s: \"%s\" %s", from, name, why);
    }
    for (u = 0; u < ld->cfg->nup; u++)
        if (strcmp(ld->cfg->up[u].name, name) == 0) return SG_OK; /* file and env name it */
    snprintf(label, sizeof label, "slotgate.upstreams.%s", name);
    snprintf(prefix, sizeof prefix, ENV_NAMED_PREFIX "%s_", name);
    for (i = strlen(ENV_NAMED_PREFIX); prefix[i]; i++) {
        if (prefix[i] >= 'a' && prefix[i] <= 'z') prefix[i] = (char)(prefix[i] - 32);
        else if (prefix[i] == '-') prefix[i] = '_';
    }
    return add_upstream_from(ld, &ud, section, SG_SHAPE_GATEWAY);
}

/* "slotgate": {"upstreams": {"sessions": {...storage keys...}}} in any file,
 * and SLOTGATE_UPSTREAMS=sessions,rates with SLOTGATE_UPSTREAM_<NAME>_<FIELD>. */
static int add_named_upstreams(loader *ld, const sg_json *root) {
    const sg_json *sgs = root ? sg_json_get(root, "slotgate") : NULL;
    const sg_json *ups = sgs && sgs->type == SG_JSON_OBJECT ? sg_json_get(sgs, SG_CONFIG_NAMED_KEY) : NULL;
    const char *list = sg_env_get(ld->env, ENV_NAMED_LIST);
    size_t i;
    int rc;
    if (ups && ups->type != SG_JSON_NULL) {
        if (ups->type != SG_JSON_OBJECT)
            return sg_seterr(&ld->cfg->err, SG_ECONFIG,
                             "%s:%d:%d: slotgate.upstreams: expected an object of name: "
                             "{storage settings}, found %s",
                             ld->path, ups->line, ups->col, sg_json_type_name(ups->type));
        for (i = 0; i < ups->n; i++) {
            const sg_json_member *m = &ups->members[i];
            if (m->value->type != SG_JSON_OBJECT)
                return sg_seterr(&ld->cfg->err, SG_ECONFIG,
                                 "%s:%d:%d: slotgate.upstreams.%s: expected an object of storage "
                                 "settings, found %s",
                                 ld->path, m->value->line, m->value->col, m->key,
                                 sg_json_type_name(m->value->type));
            if ((rc = add_named(ld, m->key, m->value, m->line, m->col, NULL))) return rc;
        }
    }
    if (list && !sg_is_blank(list)) {
        const char *p = list;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char name[NAME_MAX_LEN + 2], from[200];
            while (len && (*p == ' ' || *p == '\t')) p++, len--;
            while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
            snprintf(from, sizeof from, ENV_NAMED_LIST "=\"%.150s\"", list);
            if (len == 0 || len > NAME_MAX_LEN)
                return sg_seterr(&ld->cfg->err, SG_EENV,
                                 "%s: expected upstream names separated by ','", from);
            memcpy(name, p, len);
            name[len] = '\0';
            if ((rc = add_named(ld, name, NULL, 0, 0, from))) return rc;
            if (comma == NULL) break;
            p = comma + 1;
        }
    }
    return SG_OK;
}


int sg_config_load(sg_config *cfg, const char *path, int shape,
                   const char *const *env) {
    loader ld = {cfg, env, path};
    sg_json *root = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = SG_OK, u;

    if (cfg == NULL) return SG_EINVAL;
    config_reset(cfg);
    sg_clearerr(&cfg->err);
    if (shape < SG_SHAPE_AUTO || shape > SG_SHAPE_PUMP)
        return sg_seterr(&cfg->err, SG_EINVAL, "unknown settings shape %d", shape);
    if (path) {
        char err[400];
        int nomem;
        if ((cfg->path = sg_strdup(path)) == NULL) return oom(&ld);
        if ((rc = sg_read_file(path, &text, &len, &cfg->err))) goto done;
        root = sg_json_parse(text, len, err, sizeof err, &nomem);
        if (root == NULL) {
            rc = nomem ? oom(&ld) : sg_seterr(&cfg->err, SG_EJSON, "%s:%s", path, err);
            goto done;
        }
        if (root->type != SG_JSON_OBJECT) {
            rc = sg_seterr(&cfg->err, SG_EJSON,
                           "%s:%d:%d: expected a JSON object ({ ... }) at the top "
                           "level, found %s",
                           path, root->line, root->col, sg_json_type_name(root->type));
            goto done;
        }
    }
    if (shape == SG_SHAPE_AUTO && (shape = detect_shape(&ld, root)) < 0) {
        rc = cfg->err.code;
        goto done;
    }
    cfg->shape = shape;

    if (shape == SG_SHAPE_GATEWAY) {
        if ((rc = read_switch(&ld, &cfg->separate_cache, root,
                              "enable_separate_cache_store", ENV_SEPARATE_CACHE)) ||
            (rc = read_switch(&ld, &cfg->separate_analytics, root,
                              "enable_separate_analytics_store", ENV_SEPARATE_ANALYTICS)))
            goto done;
        for (u = 0; u < 3; u++) {
            const upstream_def *ud = &gateway_upstreams[u];
            if (u == 1 && !cfg->separate_cache.b) continue;
            if (u == 2 && !cfg->separate_analytics.b) continue;
            if ((rc = add_upstream(&ld, ud, root))) goto done;
        }
    } else {
        rc = add_upstream(&ld, shape == SG_SHAPE_DASHBOARD ? &dashboard_upstream
                                                           : &pump_upstream,
                          root);
    }
    if (rc == SG_OK) rc = add_named_upstreams(&ld, root);
done:
    sg_json_free(root);
    sg_free(text);
    if (rc != SG_OK) {
        char msg[SG_ERRMSG_MAX];
        int code = cfg->err.code ? cfg->err.code : rc;
        /* keep the message; drop the half-read upstreams */
        memcpy(msg, cfg->err.msg, sizeof msg);
        config_reset(cfg);
        cfg->err.code = code;
        memcpy(cfg->err.msg, msg, sizeof msg);
        return code;
    }
    return SG_OK;
}

/* ---- accessors ---------------------------------------------------------------------- */

void sg_config_env_each(int shape, sg_config_env_fn fn, void *ud) {
    const upstream_def *uds = shape == SG_SHAPE_DASHBOARD ? &dashboard_upstream
                              : shape == SG_SHAPE_PUMP    ? &pump_upstream
                                                          : gateway_upstreams;
    int nud = shape == SG_SHAPE_DASHBOARD || shape == SG_SHAPE_PUMP ? 1 : 3;
    int u, layer, fid;
    for (u = 0; u < nud; u++)
        for (layer = 0; layer < 3 && uds[u].prefixes[layer]; layer++)
            for (fid = 0; fid < SG_F_COUNT; fid++)
                if (field_env(shape, fid))
                    fn(ud, uds[u].name, uds[u].prefixes[layer], field_env(shape, fid));
    if (shape != SG_SHAPE_DASHBOARD && shape != SG_SHAPE_PUMP) {
        fn(ud, "switch", "", ENV_SEPARATE_CACHE);
        fn(ud, "switch", "", ENV_SEPARATE_ANALYTICS);
    }
}

void sg_config_named_env_each(sg_config_env_fn fn, void *ud) {
    int fid;
    fn(ud, "names", "", ENV_NAMED_LIST);
    for (fid = 0; fid < SG_F_COUNT; fid++)
        if (field_env(SG_SHAPE_GATEWAY, fid))
            fn(ud, "<name>", ENV_NAMED_PREFIX "<NAME>_", field_env(SG_SHAPE_GATEWAY, fid));
}

int sg_config_shape_of(const sg_config *cfg) { return cfg->shape; }

const char *sg_config_shape_name(int shape) {
    switch (shape) {
    case SG_SHAPE_GATEWAY: return "gateway";
    case SG_SHAPE_DASHBOARD: return "dashboard";
    case SG_SHAPE_PUMP: return "pump";
    default: return "auto";
    }
}

const char *sg_mode_name(int mode) {
    switch (mode) {
    case SG_MODE_CLUSTER: return "cluster";
    case SG_MODE_SENTINEL: return "sentinel";
    default: return "single";
    }
}

int sg_config_upstream_count(const sg_config *cfg) { return cfg->nup; }

const char *sg_config_upstream_name(const sg_config *cfg, int i) {
    return i >= 0 && i < cfg->nup ? cfg->up[i].name : NULL;
}

const sg_storage *sg_config_upstream(const sg_config *cfg, const char *name) {
    int i;
    for (i = 0; i < cfg->nup; i++)
        if (strcmp(cfg->up[i].name, name) == 0) return &cfg->up[i];
    return NULL;
}

const char *sg_config_field_key(int shape, const char *field) {
    int fid;
    for (fid = 0; fid < SG_F_COUNT; fid++)
        if (strcmp(field, field_canonical(fid)) == 0) return field_key(shape, fid);
    return NULL;
}

static const char *masked(const sg_field *f) {
    return f->text && f->text[0] ? "********" : "";
}

int sg_config_get(sg_config *cfg, const char *upstream, const char *field,
                  int unmasked, const char **value, const char **source) {
    const sg_storage *st = sg_config_upstream(cfg, upstream ? upstream : "default");
    const char *v = NULL, *src = NULL;
    int fid;
    if (st == NULL)
        return sg_seterr(&cfg->err, SG_EINVAL, "no upstream \"%s\"",
                         upstream ? upstream : "default");
    if (strcmp(field, "mode") == 0) {
        v = sg_mode_name(st->mode);
        src = "resolved";
    } else if (strcmp(field, "addresses") == 0) {
        v = st->addrs_text;
        src = st->addrs_source;
    } else {
        for (fid = 0; fid < SG_F_COUNT; fid++) {
            if (strcmp(field, field_canonical(fid)) != 0) continue;
            v = fields[fid].secret && !unmasked ? masked(&st->f[fid]) : st->f[fid].text;
            src = st->f[fid].source;
            break;
        }
        if (v == NULL)
            return sg_seterr(&cfg->err, SG_EINVAL, "no setting \"%s\"", field);
    }
    if (value) *value = v;
    if (source) *source = src;
    sg_clearerr(&cfg->err);
    return SG_OK;
}

int sg_config_warning_count(const sg_config *cfg) { return cfg->nwarnings; }

const char *sg_config_warning(const sg_config *cfg, int i) {
    return i >= 0 && i < cfg->nwarnings ? cfg->warnings[i] : NULL;
}

/* Does the field apply to this shape's upstream (for the dump)? */
static int shown(int shape, int fid) { return field_key(shape, fid) != NULL; }

const char *sg_config_dump(sg_config *cfg) {
    sg_buf b = {0};
    int u, fid, i;
    if (cfg->dump) return cfg->dump;
    sg_buf_printf(&b, "# slotgate storage settings: %s shape, from %s\n",
                  sg_config_shape_name(cfg->shape),
                  cfg->path ? cfg->path : "the environment only");
    sg_buf_puts(&b, "# every value is followed by where it came from; secrets are masked\n");
    if (cfg->shape == SG_SHAPE_GATEWAY) {
        sg_buf_printf(&b, "enable_separate_cache_store = %s    # %s\n",
                      cfg->separate_cache.b ? "true" : "false",
                      cfg->separate_cache.source ? cfg->separate_cache.source : "default");
        sg_buf_printf(&b, "enable_separate_analytics_store = %s    # %s\n",
                      cfg->separate_analytics.b ? "true" : "false",
                      cfg->separate_analytics.source ? cfg->separate_analytics.source
                                                     : "default");
    }
    for (u = 0; u < cfg->nup; u++) {
        const sg_storage *st = &cfg->up[u];
        sg_buf_printf(&b, "\n[%s]    # %s\n", st->name,
                      st->section ? st->section : "top-level redis_* keys");
        sg_buf_printf(&b, "mode = %s    # resolved\n", sg_mode_name(st->mode));
        sg_buf_printf(&b, "addresses = %s    # %s\n", st->addrs_text, st->addrs_source);
        for (fid = 0; fid < SG_F_COUNT; fid++) {
            const sg_field *f = &st->f[fid];
            if (!shown(st->key_shape, fid)) continue;
            sg_buf_printf(&b, "%s = %s    # %s\n", field_key(st->key_shape, fid),
                          fields[fid].secret ? masked(f) : f->text, f->source);
        }
    }
    if (cfg->nwarnings) {
        sg_buf_puts(&b, "\n# warnings\n");
        for (i = 0; i < cfg->nwarnings; i++)
            sg_buf_printf(&b, "# - %s\n", cfg->warnings[i]);
    }
    if ((cfg->dump = sg_buf_take(&b)) == NULL)
        sg_seterr(&cfg->err, SG_ENOMEM, "out of memory while dumping settings");
    return cfg->dump;
}

/* ---- TLS contexts (tls.c makes them) ------------------------------------------ */

int sg_config_load_tls(sg_config *cfg) {
    int i;
    for (i = 0; i < cfg->nup; i++) {
        sg_storage *st = &cfg->up[i];
        sg_error why = {0};
        struct ssl_ctx_st *ctx;
        if (!st->use_ssl) continue;
        if ((ctx = sg_tls_context(st, st->tls_digest, &why)) == NULL)
            return sg_seterr(&cfg->err, why.code, "upstream %s: %s", st->name, why.msg);
        SSL_CTX_free(st->tls_ctx);
        st->tls_ctx = ctx;
    }
    sg_clearerr(&cfg->err);
    return SG_OK;
}

int sg_config_tls_changed(const sg_config *before, const sg_config *now, const char *upstream) {
    const sg_storage *a = sg_config_upstream(before, upstream),
                     *b = sg_config_upstream(now, upstream);
    return a && b && a->tls_ctx && b->tls_ctx &&
           memcmp(a->tls_digest, b->tls_digest, sizeof a->tls_digest) != 0;
}
