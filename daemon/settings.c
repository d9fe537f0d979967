/*
 * settings.c — reads slotgated's own settings (see settings.h): the defaults
 * of the table, then the "slotgate" object of the settings file, then the
 * SLOTGATE_* variables, each replacing the one before setting by setting;
 * then checks every value and the few rules between them. It owns
 * sg_daemon_settings and every message about a bad daemon setting.
 *
 * Each kind of setting (an address list, an octal mode, an integer...) is a
 * row of the kinds table: how a JSON value and a variable's text are read,
 * how the result is checked, shown and freed. A setting is a row of
 * SG_DAEMON_SETTINGS; nothing below names a setting except the rules that
 * tie two together (resolve_between).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core_private.h"
#include "settings.h"

extern char **environ;

/* ---- the settings table ------------------------------------------------------ */

typedef enum kind {
    K_LISTEN,
    K_MODE,
    K_INT,
    K_SIZE,
    K_SECONDS,
    K_FILES,
    K_SECRET,
    K_USERS,
    K_ADDR,
    K_LEVEL,
    K_LOGFORMAT,
    K_BOOL,
    K_USER,
    K_PATH,
    K_STRING,
    K_VERIFY,
    K_PROTOCOLS,
    K_VERSION,
    K_COUNT
} kind;

/* Where a kind keeps its item count (the n<key> member); 0: it has none. */
#define NOFF_LISTEN(k) offsetof(sg_daemon_settings, n##k)
#define NOFF_FILES(k) offsetof(sg_daemon_settings, n##k)
#define NOFF_USERS(k) offsetof(sg_daemon_settings, n##k)
#define NOFF_MODE(k) 0
#define NOFF_INT(k) 0
#define NOFF_SIZE(k) 0
#define NOFF_SECONDS(k) 0
#define NOFF_SECRET(k) 0
#define NOFF_ADDR(k) 0
#define NOFF_LEVEL(k) 0
#define NOFF_LOGFORMAT(k) 0
#define NOFF_BOOL(k) 0
#define NOFF_USER(k) 0
#define NOFF_PATH(k) 0
#define NOFF_STRING(k) 0
#define NOFF_VERSION(k) 0
#define NOFF_VERIFY(k) 0
#define NOFF_PROTOCOLS(k) 0

typedef struct setting_def {
    const char *key;
    kind kind;
    const char *env;
    const char *def;
    long long min, max;
    size_t off, noff; /* the member, and its count */
} setting_def;

static const setting_def defs[SG_DS_COUNT] = {
#define SG_DS_DEF_(id, key, kind, env, def, min, max)                                        \
    {#key, K_##kind, env, def, min, max, offsetof(sg_daemon_settings, key), NOFF_##kind(key)},
    SG_DAEMON_SETTINGS(SG_DS_DEF_)
#undef SG_DS_DEF_
};

#define AT(s, id, type) ((type *)(void *)((char *)(s) + defs[id].off))
#define COUNT(s, id) ((size_t *)(void *)((char *)(s) + defs[id].noff))

#define MASK "********"
#define USER_NAME_MAX 64
#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* ---- the load context and its messages ---------------------------------------- */

typedef struct loader {
    sg_daemon_settings *s;
    const char *const *env;
    const char *path;
    /* what is being read, for messages: a file's value or a variable */
    const sg_json *json;
    const char *envname, *envval;
} loader;

static int secret(int id) { return defs[id].kind == K_SECRET || defs[id].kind == K_USERS; }

static int oom(loader *ld) {
    return sg_seterr(&ld->s->err, SG_ENOMEM, "out of memory while reading slotgated's settings");
}

static int warn(loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int warn(loader *ld, const char *fmt, ...) {
    sg_daemon_settings *s = ld->s;
    char msg[600], **w;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if ((w = sg_realloc(s->warnings, (size_t)(s->nwarnings + 1) * sizeof *w)) == NULL)
        return oom(ld);
    s->warnings = w;
    if ((w[s->nwarnings] = sg_strdup(msg)) == NULL) return oom(ld);
    s->nwarnings++;
    return SG_OK;
}

/* A value that cannot be read as its kind: in the file, "F:L:C: slotgate.KEY:
 * expected X, found Y" (at v, or at the value being read); from a variable,
 * NAME="value": expected X, as the storage settings say it. Secrets are not
 * repeated. */
static int read_error(loader *ld, int id, const sg_json *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int read_error(loader *ld, int id, const sg_json *v, const char *fmt, ...) {
    char what[400], found[100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (v == NULL) v = ld->json;
    if (v != NULL) {
        if (secret(id) && v->type == SG_JSON_STRING) snprintf(found, sizeof found, "a string");
        else sg_json_brief(v, found, sizeof found);
        return sg_seterr(&ld->s->err, SG_ECONFIG, "%s:%d:%d: slotgate.%s: expected %s, found %s",
                         ld->path, v->line, v->col, defs[id].key, what, found);
    }
    if (ld->envname == NULL) /* a default of the table: a bug */
        return sg_seterr(&ld->s->err, SG_ECONFIG, "slotgate.%s: default: expected %s",
                         defs[id].key, what);
    if (secret(id))
        return sg_seterr(&ld->s->err, SG_EENV, "%s (value not shown): expected %s", ld->envname,
                         what);
    return sg_seterr(&ld->s->err, SG_EENV, "%s=\"%s\": expected %s", ld->envname, ld->envval,
                     what);
}

/* A value read but not acceptable, named by where it came from: the file's
 * line and column (item's, when item >= 0 and known), or the variable. */
static int check_error(loader *ld, int id, int item, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int check_error(loader *ld, int id, int item, const char *fmt, ...) {
    const sg_ds_origin *o = &ld->s->origin[id];
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (o->env && secret(id))
        return sg_seterr(&ld->s->err, SG_ECONFIG, "%s (value not shown): slotgate.%s: %s", o->env,
                         defs[id].key, what);
    if (o->env)
        return sg_seterr(&ld->s->err, SG_ECONFIG, "%s=\"%s\": slotgate.%s: %s", o->env,
                         o->envval ? o->envval : "", defs[id].key, what);
    if (o->set && ld->path) {
        int line = item >= 0 && o->lines ? o->lines[item] : o->line;
        int col = item >= 0 && o->cols ? o->cols[item] : o->col;
        return sg_seterr(&ld->s->err, SG_ECONFIG, "%s:%d:%d: slotgate.%s: %s", ld->path, line,
                         col, defs[id].key, what);
    }
    return sg_seterr(&ld->s->err, SG_ECONFIG, "slotgate.%s: %s", defs[id].key, what);
}

/* ---- small pure helpers ------------------------------------------------------------ */

/* A Unix permission mode written in octal ("0660", "660", "0o660"), at most
 * 0777: 0 with *out set, -1 otherwise. */
static int parse_mode(const char *s, int *out) {
    int v = 0;
    size_t n;
    if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) s += 2;
    n = strlen(s);
    if (n == 0 || n > 4 || strspn(s, "01234567") != n) return -1;
    for (; *s; s++) v = v * 8 + (*s - '0');
    if (v > 0777) return -1;
    *out = v;
    return 0;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int parse_level(const char *s) {
    int i;
    for (i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return SG_LOG_DEBUG + i;
    return -1;
}

static const char *const log_format_names[] = {"text", "json"};

static int parse_log_format(const char *s) {
    int i;
    for (i = 0; i < 2; i++)
        if (strcmp(s, log_format_names[i]) == 0) return SG_DS_LOG_TEXT + i;
    return -1;
}

static const char *const verify_names[] = {"no", "yes", "optional"};

/* tls_verify_clients: yes, no or optional (or a boolean); "" is the default
 * (-1, resolved from tls_ca_file). -2 when it is none of these. */
static int parse_verify(const char *s) {
    int v;
    if (s[0] == '\0') return -1;
    for (v = 0; v < 3; v++)
        if (strcasecmp(s, verify_names[v]) == 0) return v;
    if (sg_go_parse_bool(s, &v) == 0) return v ? SG_DS_VERIFY_YES : SG_DS_VERIFY_NO;
    return -2;
}

static const struct {
    const char *name;
    int bit;
} protocol_names[] = {{"TLSv1", SG_DS_TLS1},
                      {"TLSv1.1", SG_DS_TLS1_1},
                      {"TLSv1.2", SG_DS_TLS1_2},
                      {"TLSv1.3", SG_DS_TLS1_3}};

/* tls_protocols: names (as redis's tls-protocols) separated by blanks or
 * commas, at least one. The bits, or -1 with why filled. */
static int parse_protocols(const char *s, char *why, size_t whylen) {
    int bits = 0;
    size_t i;
    while (*s) {
        size_t len = strcspn(s, " \t,");
        if (len == 0) {
            s++;
            continue;
        }
        for (i = 0; i < sizeof protocol_names / sizeof *protocol_names; i++)
            if (strlen(protocol_names[i].name) == len &&
                strncasecmp(s, protocol_names[i].name, len) == 0)
                break;
        if (i == sizeof protocol_names / sizeof *protocol_names) {
            snprintf(why, whylen, "\"%.*s\" is not TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3",
                     (int)(len > 40 ? 40 : len), s);
            return -1;
        }
        bits |= protocol_names[i].bit;
        s += len;
    }
    if (bits == 0) {
        snprintf(why, whylen, "no protocol named");
        return -1;
    }
    return bits;
}

/* A host for TCP: an IPv4 address, a name, or (bracketed by the caller) an
 * IPv6 address. Fills why on failure. */
static int check_host(const char *host, int v6, char *why, size_t whylen) {
    unsigned char addr[16];
    size_t i, n = strlen(host);
    if (v6) {
        if (inet_pton(AF_INET6, host, addr) != 1) {
            snprintf(why, whylen, "\"%s\" is not an IPv6 address", host);
            return -1;
        }
        return 0;
    }
    if (n == 0 || strcmp(host, "*") == 0) {
        snprintf(why, whylen, "no host (for every interface: 0.0.0.0, or [::] for IPv6 too)");
        return -1;
    }
    if (strspn(host, "0123456789.") == n) {
        if (inet_pton(AF_INET, host, addr) != 1) {
            snprintf(why, whylen, "\"%s\" is not an IPv4 address", host);
            return -1;
        }
        return 0;
    }
    for (i = 0; i < n; i++)
        if (!isalnum((unsigned char)host[i]) && host[i] != '-' && host[i] != '.' && host[i] != '_')
            break;
    if (i < n || n > 253 || host[0] == '-' || host[0] == '.') {
        snprintf(why, whylen, "\"%s\" is not a host name or an IP address", host);
        return -1;
    }
    return 0;
}

/* Parses a->text: "HOST:PORT", "[IPV6]:PORT", or with unix_ok
 * "unix:/ABSOLUTE/PATH". 0, SG_ENOMEM, or 1 with why filled. */
static int parse_addr(sg_listen_addr *a, int unix_ok, char *why, size_t whylen) {
    const char *t = a->text, *colon, *ps;
    char host[300];
    size_t hlen;
    long port;
    int v6;
    if (strncmp(t, "tls:", 4) == 0) {
        if (!unix_ok) { /* metrics: plain HTTP */
            snprintf(why, whylen, "\"%s\": expected HOST:PORT (plain HTTP, not TLS)", t);
            return 1;
        }
        if (strncmp(t + 4, "unix:", 5) == 0) {
            snprintf(why, whylen,
                     "\"%s\": TLS is for TCP addresses (a Unix socket is guarded by unix_mode)",
                     t);
            return 1;
        }
        a->tls = 1;
        t += 4;
    }
    if (strncmp(t, "unix:", 5) == 0) {
        const char *p = t + 5;
        if (!unix_ok) {
            snprintf(why, whylen, "\"%s\": expected HOST:PORT (HTTP over TCP, not a Unix socket)",
                     t);
            return 1;
        }
        if (p[0] != '/') {
            snprintf(why, whylen,
                     "\"%s\": the socket path must be absolute (unix:/run/slotgate.sock)", t);
            return 1;
        }
        if (strlen(p) > UNIX_PATH_MAX) {
            snprintf(why, whylen, "\"%s\": the socket path is longer than %zu bytes", t,
                     (size_t)UNIX_PATH_MAX);
            return 1;
        }
        if ((a->path = sg_strdup(p)) == NULL) return SG_ENOMEM;
        return 0;
    }
    if ((colon = strrchr(t, ':')) == NULL) {
        snprintf(why, whylen, "\"%s\" has no port (expected HOST:PORT%s)", a->text,
                 unix_ok ? ", [IPV6]:PORT, unix:/PATH or tls:HOST:PORT" : "");
        return 1;
    }
    v6 = t[0] == '[';
    if (v6 ? colon == t || colon[-1] != ']' : memchr(t, ':', (size_t)(colon - t)) != NULL) {
        snprintf(why, whylen,
                 "\"%s\" is not HOST:PORT (an IPv6 host goes in brackets: [::1]:6380)", a->text);
        return 1;
    }
    hlen = (size_t)(colon - t) - (v6 ? 2 : 0);
    if (hlen >= sizeof host) {
        snprintf(why, whylen, "\"%.60s...\": the host is too long", a->text);
        return 1;
    }
    memcpy(host, t + (v6 ? 1 : 0), hlen);
    host[hlen] = '\0';
    if (check_host(host, v6, why, whylen)) return 1;
    ps = colon + 1;
    if (ps[0] == '\0' || strspn(ps, "0123456789") != strlen(ps) || strlen(ps) > 5 ||
        (port = strtol(ps, NULL, 10)) < 1 || port > 65535) {
        snprintf(why, whylen, "\"%s\": the port must be a number from 1 to 65535", a->text);
        return 1;
    }
    if ((a->host = sg_strdup(host)) == NULL) return SG_ENOMEM;
    a->port = (int)port;
    return 0;
}

/* Loopback: what only this machine can reach. */
static int is_loopback(const sg_listen_addr *a) {
    if (a->path) return 1;
    return strcmp(a->host, "localhost") == 0 || strcmp(a->host, "::1") == 0 ||
           strncmp(a->host, "127.", 4) == 0;
}

static int same_addr(const sg_listen_addr *a, const sg_listen_addr *b) {
    if (a->path || b->path) return a->path && b->path && strcmp(a->path, b->path) == 0;
    return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* A file a policy names: it must exist, be readable, not be a directory. */
static int check_readable(const char *path, char *why, size_t whylen) {
    struct stat st;
    if (path[0] == '\0') {
        snprintf(why, whylen, "an empty path");
        return -1;
    }
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(why, whylen, "cannot read \"%s\": %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "\"%s\" is a directory, not a script", path);
        return -1;
    }
    return 0;
}

static int valid_user_name(const char *n) {
    size_t i, len = strlen(n);
    if (len == 0 || len > USER_NAME_MAX) return 0;
    for (i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && !strchr("_-.@", n[i])) return 0;
    return 1;
}

/* Splits a variable's list on ','. Items are trimmed of blanks when trim;
 * a blank variable is an empty list; an empty item is an error (*bad set to
 * its 1-based number). SG_OK, SG_ENOMEM, or 1 for an empty item. */
static int split_list(const char *text, int trim, char ***out, size_t *n, size_t *bad) {
    const char *p = text;
    char **items = NULL;
    size_t count = 0, i;
    *out = NULL;
    *n = 0;
    if (sg_is_blank(text)) return SG_OK;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char **grown;
        if (trim) {
            while (len && (*p == ' ' || *p == '\t')) p++, len--;
            while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        }
        if (len == 0) {
            *bad = count + 1;
            goto fail;
        }
        if ((grown = sg_realloc(items, (count + 1) * sizeof *items)) == NULL) goto nomem;
        items = grown;
        if ((items[count] = sg_strndup(p, len)) == NULL) goto nomem;
        count++;
        if (comma == NULL) break;
        p = comma + 1;
    }
    *out = items;
    *n = count;
    return SG_OK;
nomem:
    for (i = 0; i < count; i++) sg_free(items[i]);
    sg_free(items);
    return SG_ENOMEM;
fail:
    for (i = 0; i < count; i++) sg_free(items[i]);
    sg_free(items);
    return 1;
}

/* ---- kinds: freeing ------------------------------------------------------------------ */

static void addr_free(sg_listen_addr *a) {
    if (a == NULL) return;
    sg_free(a->text);
    sg_free(a->host);
    sg_free(a->path);
}

static void clear_listen(sg_daemon_settings *s, int id) {
    sg_listen_addr **v = AT(s, id, sg_listen_addr *);
    size_t i, *n = COUNT(s, id);
    for (i = 0; i < *n; i++) addr_free(&(*v)[i]);
    sg_free(*v);
    *v = NULL;
    *n = 0;
}

static void clear_files(sg_daemon_settings *s, int id) {
    char ***v = AT(s, id, char **);
    size_t i, *n = COUNT(s, id);
    for (i = 0; i < *n; i++) sg_free((*v)[i]);
    sg_free(*v);
    *v = NULL;
    *n = 0;
}

static void clear_users(sg_daemon_settings *s, int id) {
    sg_daemon_user **v = AT(s, id, sg_daemon_user *);
    size_t i, *n = COUNT(s, id);
    for (i = 0; i < *n; i++) {
        sg_free((*v)[i].name);
        sg_free((*v)[i].password);
        sg_free((*v)[i].policy);
    }
    sg_free(*v);
    *v = NULL;
    *n = 0;
}

static void clear_string(sg_daemon_settings *s, int id) {
    char **v = AT(s, id, char *);
    sg_free(*v);
    *v = NULL;
}

static void clear_addr(sg_daemon_settings *s, int id) {
    sg_listen_addr **v = AT(s, id, sg_listen_addr *);
    addr_free(*v);
    sg_free(*v);
    *v = NULL;
}

static void clear_scalar(sg_daemon_settings *s, int id) { (void)s, (void)id; }

/* ---- kinds: reading a file's value and a variable's text ------------------------------ */

/* Per-item positions of a list read from the file (freed when a variable
 * replaces the list). */
static int set_positions(loader *ld, int id, const sg_json *const *vals, size_t n) {
    sg_ds_origin *o = &ld->s->origin[id];
    size_t i;
    sg_free(o->lines);
    sg_free(o->cols);
    o->lines = o->cols = NULL;
    if (n == 0) return SG_OK;
    if ((o->lines = sg_calloc(n, sizeof *o->lines)) == NULL ||
        (o->cols = sg_calloc(n, sizeof *o->cols)) == NULL)
        return oom(ld);
    for (i = 0; i < n; i++) {
        o->lines[i] = vals[i]->line;
        o->cols[i] = vals[i]->col;
    }
    return SG_OK;
}

/* LISTEN and FILES from the file: an array of strings. */
static int json_strings(loader *ld, int id, const sg_json *v, const char *expected) {
    size_t i, *n = COUNT(ld->s, id);
    int rc;
    if (v->type != SG_JSON_ARRAY) return read_error(ld, id, v, "%s", expected);
    for (i = 0; i < v->n; i++)
        if (v->items[i]->type != SG_JSON_STRING)
            return read_error(ld, id, v->items[i], "a string");
    if (defs[id].kind == K_LISTEN) clear_listen(ld->s, id);
    else clear_files(ld->s, id);
    if ((rc = set_positions(ld, id, (const sg_json *const *)v->items, v->n))) return rc;
    if (v->n == 0) return SG_OK;
    if (defs[id].kind == K_LISTEN) {
        sg_listen_addr *a = sg_calloc(v->n, sizeof *a);
        if ((*AT(ld->s, id, sg_listen_addr *) = a) == NULL) return oom(ld);
        *n = v->n; /* zeroed: freeing a half-filled array is fine */
        for (i = 0; i < v->n; i++)
            if ((a[i].text = sg_strdup(v->items[i]->str)) == NULL) return oom(ld);
    } else {
        char **p = sg_calloc(v->n, sizeof *p);
        if ((*AT(ld->s, id, char **) = p) == NULL) return oom(ld);
        *n = v->n;
        for (i = 0; i < v->n; i++)
            if ((p[i] = sg_strdup(v->items[i]->str)) == NULL) return oom(ld);
    }
    return SG_OK;
}

static int json_listen(loader *ld, int id, const sg_json *v) {
    return json_strings(ld, id, v,
                        "an array of addresses ([\"127.0.0.1:6380\", "
                        "\"unix:/run/slotgate.sock\"])");
}

static int json_files(loader *ld, int id, const sg_json *v) {
    return json_strings(ld, id, v, "an array of script paths ([\"/etc/slotgate/policy.lua\"])");
}

/* LISTEN and FILES from a variable: comma-separated, items trimmed. */
static int parse_list(loader *ld, int id, const char *text) {
    char **items;
    size_t n, i, bad = 0;
    int rc = split_list(text, 1, &items, &n, &bad);
    if (rc == SG_ENOMEM) return oom(ld);
    if (rc) return read_error(ld, id, NULL, "a comma-separated list with no empty item (item %zu)",
                              bad);
    if (defs[id].kind == K_FILES) {
        clear_files(ld->s, id);
        *AT(ld->s, id, char **) = items;
        *COUNT(ld->s, id) = n;
        return SG_OK;
    }
    clear_listen(ld->s, id);
    if (n > 0) {
        sg_listen_addr *a = sg_calloc(n, sizeof *a);
        if (a == NULL) {
            for (i = 0; i < n; i++) sg_free(items[i]);
            sg_free(items);
            return oom(ld);
        }
        for (i = 0; i < n; i++) a[i].text = items[i];
        *AT(ld->s, id, sg_listen_addr *) = a;
        *COUNT(ld->s, id) = n;
    }
    sg_free(items);
    return SG_OK;
}

/* SECRET, USER: a string. */
static int json_string(loader *ld, int id, const sg_json *v) {
    char *copy;
    if (v->type != SG_JSON_STRING) return read_error(ld, id, v, "a string");
    if ((copy = sg_strdup(v->str)) == NULL) return oom(ld);
    clear_string(ld->s, id);
    *AT(ld->s, id, char *) = copy;
    return SG_OK;
}

static int parse_string(loader *ld, int id, const char *text) {
    char *copy = sg_strdup(text);
    if (copy == NULL) return oom(ld);
    clear_string(ld->s, id);
    *AT(ld->s, id, char *) = copy;
    return SG_OK;
}

/* ADDR: one string; empty is off (NULL). */
static int parse_addr_text(loader *ld, int id, const char *text) {
    sg_listen_addr *a = NULL;
    clear_addr(ld->s, id);
    if (text[0] == '\0') return SG_OK;
    if ((a = sg_calloc(1, sizeof *a)) == NULL) return oom(ld);
    if ((a->text = sg_strdup(text)) == NULL) {
        sg_free(a);
        return oom(ld);
    }
    *AT(ld->s, id, sg_listen_addr *) = a;
    return SG_OK;
}

static int json_addr(loader *ld, int id, const sg_json *v) {
    if (v->type != SG_JSON_STRING)
        return read_error(ld, id, v, "a \"HOST:PORT\" string (\"\": off)");
    return parse_addr_text(ld, id, v->str);
}

/* INT, SIZE, SECONDS. */
static const char *int_expected(int id) {
    switch (defs[id].kind) {
    case K_SIZE: return "a number of bytes";
    case K_SECONDS: return "a number of seconds";
    default: return "an integer";
    }
}

static int json_integer(loader *ld, int id, const sg_json *v) {
    long long n;
    int rc;
    if (v->type != SG_JSON_NUMBER) return read_error(ld, id, v, "%s", int_expected(id));
    if ((rc = sg_json_int(v, &n)) == -1)
        return read_error(ld, id, v, "%s (no fraction or exponent)", int_expected(id));
    if (rc == -2) return read_error(ld, id, v, "%s that fits in 64 bits", int_expected(id));
    *AT(ld->s, id, long long) = n;
    return SG_OK;
}

static int parse_integer(loader *ld, int id, const char *text) {
    long long n;
    int rc = sg_go_parse_int(text, &n);
    if (rc == -1)
        return read_error(ld, id, NULL,
                          "%s (decimal, 0x hex, 0o or leading-0 octal, 0b binary; '_' "
                          "between digits)",
                          int_expected(id));
    if (rc == -2) return read_error(ld, id, NULL, "%s that fits in 64 bits", int_expected(id));
    *AT(ld->s, id, long long) = n;
    return SG_OK;
}

/* MODE: octal, written as a string (a JSON number would be read in decimal). */
#define MODE_EXPECTED "an octal mode such as \"0660\" (digits 0-7, at most 0777)"

static int parse_mode_text(loader *ld, int id, const char *text) {
    if (parse_mode(text, AT(ld->s, id, int)))
        return read_error(ld, id, NULL, MODE_EXPECTED);
    return SG_OK;
}

static int json_mode(loader *ld, int id, const sg_json *v) {
    if (v->type != SG_JSON_STRING)
        return read_error(ld, id, v, "%s, as a string", MODE_EXPECTED);
    return parse_mode_text(ld, id, v->str);
}

/* LEVEL. */
static int parse_level_text(loader *ld, int id, const char *text) {
    int level = parse_level(text);
    if (level < 0) return read_error(ld, id, NULL, "debug, info, warn or error");
    *AT(ld->s, id, int) = level;
    return SG_OK;
}

static int json_level(loader *ld, int id, const sg_json *v) {
    if (v->type != SG_JSON_STRING) return read_error(ld, id, v, "debug, info, warn or error");
    return parse_level_text(ld, id, v->str);
}

/* LOGFORMAT. */
static int parse_log_format_text(loader *ld, int id, const char *text) {
    int f = parse_log_format(text);
    if (f < 0) return read_error(ld, id, NULL, "text or json");
    *AT(ld->s, id, int) = f;
    return SG_OK;
}

static int json_log_format(loader *ld, int id, const sg_json *v) {
    if (v->type != SG_JSON_STRING) return read_error(ld, id, v, "text or json");
    return parse_log_format_text(ld, id, v->str);
}

/* BOOL: JSON true/false; Go's ParseBool for variables. */
static int json_bool(loader *ld, int id, const sg_json *v) {
    if (v->type != SG_JSON_BOOL) return read_error(ld, id, v, "true or false");
    *AT(ld->s, id, int) = v->boolean;
    return SG_OK;
}

static int parse_bool(loader *ld, int id, const char *text) {
    if (sg_go_parse_bool(text, AT(ld->s, id, int)))
        return read_error(ld, id, NULL,
                          "a boolean: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False");
    return SG_OK;
}

/* VERIFY: yes, no or optional (a JSON boolean too). */
#define VERIFY_EXPECTED "yes, no or optional"

static int parse_verify_text(loader *ld, int id, const char *text) {
    int v = parse_verify(text);
    if (v == -2) return read_error(ld, id, NULL, VERIFY_EXPECTED);
    *AT(ld->s, id, int) = v;
    return SG_OK;
}

static int json_verify(loader *ld, int id, const sg_json *v) {
    if (v->type == SG_JSON_BOOL) {
        *AT(ld->s, id, int) = v->boolean ? SG_DS_VERIFY_YES : SG_DS_VERIFY_NO;
        return SG_OK;
    }
    if (v->type != SG_JSON_STRING || parse_verify(v->str) == -2)
        return read_error(ld, id, v, VERIFY_EXPECTED);
    return parse_verify_text(ld, id, v->str);
}

/* PROTOCOLS: "TLSv1.2 TLSv1.3" (blanks or commas between). */
static int parse_protocols_text(loader *ld, int id, const char *text) {
    char why[200];
    int bits = parse_protocols(text, why, sizeof why);
    if (bits < 0)
        return read_error(ld, id, NULL, "TLS versions such as \"TLSv1.2 TLSv1.3\" (%s)", why);
    *AT(ld->s, id, int) = bits;
    return SG_OK;
}

static int json_protocols(loader *ld, int id, const sg_json *v) {
    char why[200];
    if (v->type != SG_JSON_STRING || parse_protocols(v->str, why, sizeof why) < 0)
        return read_error(ld, id, v, "TLS versions such as \"TLSv1.2 TLSv1.3\"");
    return parse_protocols_text(ld, id, v->str);
}

/* USERS from the file: {"name": {"password": "...", "policy": "..."}}. */
static int json_users(loader *ld, int id, const sg_json *v) {
    sg_daemon_user **u = AT(ld->s, id, sg_daemon_user *);
    sg_ds_origin *o = &ld->s->origin[id];
    size_t *n = COUNT(ld->s, id), i, j;
    int rc;
    if (v->type != SG_JSON_OBJECT)
        return read_error(ld, id, v,
                          "an object of name: {\"password\": \"...\", \"policy\": \"...\"}");
    for (i = 0; i < v->n; i++) {
        const sg_json *e = v->members[i].value;
        if (e->type != SG_JSON_OBJECT)
            return read_error(ld, id, e,
                              "user \"%s\" as {\"password\": \"...\", \"policy\": \"...\"}",
                              v->members[i].key);
        for (j = 0; j < e->n; j++) {
            const sg_json_member *m = &e->members[j];
            int pw = strcasecmp(m->key, "password") == 0, pol = strcasecmp(m->key, "policy") == 0;
            if ((pw || pol) && m->value->type != SG_JSON_STRING && m->value->type != SG_JSON_NULL)
                return read_error(ld, id, m->value, "user \"%s\": %s as a string",
                                  v->members[i].key, pw ? "the password" : "the policy path");
        }
    }
    clear_users(ld->s, id);
    sg_free(o->lines);
    sg_free(o->cols);
    o->lines = o->cols = NULL;
    if (v->n == 0) return SG_OK;
    if ((*u = sg_calloc(v->n, sizeof **u)) == NULL ||
        (o->lines = sg_calloc(v->n, sizeof *o->lines)) == NULL ||
        (o->cols = sg_calloc(v->n, sizeof *o->cols)) == NULL)
        return oom(ld);
    for (i = 0; i < v->n; i++) {
        const sg_json_member *um = &v->members[i];
        sg_daemon_user *user = &(*u)[i];
        ++*n;
        o->lines[i] = um->line; /* a user is named by its key's position */
        o->cols[i] = um->col;
        if ((user->name = sg_strdup(um->key)) == NULL) return oom(ld);
        for (j = 0; j < um->value->n; j++) {
            const sg_json_member *m = &um->value->members[j];
            char **dst = NULL;
            if (strcasecmp(m->key, "password") == 0) dst = &user->password;
            else if (strcasecmp(m->key, "policy") == 0) dst = &user->policy;
            if (dst == NULL) {
                if ((rc = warn(ld, "%s:%d:%d: slotgate.users.%s: unknown key \"%s\" ignored",
                               ld->path, m->line, m->col, um->key, m->key)))
                    return rc;
                continue;
            }
            sg_free(*dst);
            *dst = NULL;
            if (m->value->type == SG_JSON_NULL) continue;
            if ((*dst = sg_strdup(m->value->str)) == NULL) return oom(ld);
        }
        if (user->policy && user->policy[0] == '\0') {
            sg_free(user->policy);
            user->policy = NULL;
        }
    }
    return SG_OK;
}

/* USERS from a variable: name:password,name2:password2 (split at the first
 * ':'; nothing trimmed: passwords are taken as they are). */
static int parse_users(loader *ld, int id, const char *text) {
    sg_daemon_user **u = AT(ld->s, id, sg_daemon_user *);
    size_t *n = COUNT(ld->s, id), count, i, bad = 0;
    char **items;
    int rc = split_list(text, 0, &items, &count, &bad);
    if (rc == SG_ENOMEM) return oom(ld);
    if (rc)
        return read_error(ld, id, NULL, "NAME:PASSWORD,NAME2:PASSWORD2 (item %zu is empty)", bad);
    for (i = 0; i < count; i++)
        if (strchr(items[i], ':') == NULL) break;
    if (i < count) {
        rc = read_error(ld, id, NULL, "NAME:PASSWORD,NAME2:PASSWORD2 (item %zu has no ':')", i + 1);
        goto done;
    }
    clear_users(ld->s, id);
    if (count && (*u = sg_calloc(count, sizeof **u)) == NULL) {
        rc = oom(ld);
        goto done;
    }
    for (i = 0; i < count; i++) {
        char *colon = strchr(items[i], ':');
        ++*n;
        if (((*u)[i].name = sg_strndup(items[i], (size_t)(colon - items[i]))) == NULL ||
            ((*u)[i].password = sg_strdup(colon + 1)) == NULL) {
            rc = oom(ld);
            break;
        }
    }
done:
    for (i = 0; i < count; i++) sg_free(items[i]);
    sg_free(items);
    return rc;
}

/* ---- kinds: checking the effective value ---------------------------------------------- */

static int check_listen(loader *ld, int id) {
    sg_listen_addr *a = *AT(ld->s, id, sg_listen_addr *);
    size_t i, j, n = *COUNT(ld->s, id);
    char why[400];
    int rc;
    if (n == 0) return check_error(ld, id, -1, "no address to listen on (expected at least one)");
    for (i = 0; i < n; i++) {
        if ((rc = parse_addr(&a[i], 1, why, sizeof why)) == SG_ENOMEM) return oom(ld);
        if (rc) return check_error(ld, id, (int)i, "item %zu: %s", i + 1, why);
        for (j = 0; j < i; j++)
            if (same_addr(&a[i], &a[j]))
                return check_error(ld, id, (int)i, "item %zu: \"%s\" is also item %zu", i + 1,
                                   a[i].text, j + 1);
    }
    return SG_OK;
}

static int check_addr(loader *ld, int id) {
    sg_listen_addr *a = *AT(ld->s, id, sg_listen_addr *);
    char why[400];
    int rc;
    if (a == NULL) return SG_OK;
    if ((rc = parse_addr(a, 0, why, sizeof why)) == SG_ENOMEM) return oom(ld);
    return rc ? check_error(ld, id, -1, "%s", why) : SG_OK;
}

static int check_range(loader *ld, int id) {
    long long v = *AT(ld->s, id, long long);
    if (v < defs[id].min || v > defs[id].max)
        return check_error(ld, id, -1, "%lld is out of range (expected %lld to %lld)", v,
                           defs[id].min, defs[id].max);
    return SG_OK;
}

static int check_files(loader *ld, int id) {
    char **p = *AT(ld->s, id, char **), why[400];
    size_t i, n = *COUNT(ld->s, id);
    for (i = 0; i < n; i++)
        if (check_readable(p[i], why, sizeof why))
            return check_error(ld, id, (int)i, "item %zu: %s", i + 1, why);
    return SG_OK;
}

static int check_users(loader *ld, int id) {
    sg_daemon_user *u = *AT(ld->s, id, sg_daemon_user *);
    size_t i, j, n = *COUNT(ld->s, id);
    char why[400];
    for (i = 0; i < n; i++) {
        if (!valid_user_name(u[i].name))
            return check_error(ld, id, (int)i,
                               "user %zu: \"%.80s\" is not a user name (letters, digits, '_', "
                               "'-', '.', '@'; at most %d)",
                               i + 1, u[i].name, USER_NAME_MAX);
        for (j = 0; j < i; j++)
            if (strcmp(u[i].name, u[j].name) == 0)
                return check_error(ld, id, (int)i, "user \"%s\" is given twice", u[i].name);
        if (u[i].password == NULL || u[i].password[0] == '\0')
            return check_error(ld, id, (int)i, "user \"%s\" has no password", u[i].name);
        if (u[i].policy && check_readable(u[i].policy, why, sizeof why))
            return check_error(ld, id, (int)i, "user \"%s\": policy: %s", u[i].name, why);
    }
    return SG_OK;
}

/* VERSION: what HELLO and INFO say the server is, as Redis writes it. */
static int check_version(loader *ld, int id) {
    const char *v = *AT(ld->s, id, char *), *p = v;
    int part;
    if (v[0] == '\0') return SG_OK;
    for (part = 0; part < 3; part++) {
        const char *start = p;
        while (*p >= '0' && *p <= '9' && p - start < 5) p++;
        if (p == start || (part < 2 && *p++ != '.')) break;
    }
    if (part < 3 || *p != '\0')
        return check_error(ld, id, -1, "\"%s\" is not a version as Redis writes it "
                                       "(MAJOR.MINOR.PATCH, say 7.4.0)", v);
    return SG_OK;
}

static int check_user(loader *ld, int id) {
    const char *name = *AT(ld->s, id, char *);
    struct passwd pw, *found = NULL;
    char buf[16384];
    int e;
    if (name[0] == '\0') return SG_OK;
    e = getpwnam_r(name, &pw, buf, sizeof buf, &found);
    if (found == NULL)
        return check_error(ld, id, -1, "no user \"%s\" on this system%s%s", name,
                           e ? ": " : "", e ? strerror(e) : "");
    ld->s->uid = pw.pw_uid;
    ld->s->gid = pw.pw_gid;
    return SG_OK;
}

/* PATH: a file that must be readable when given. */
static int check_path(loader *ld, int id) {
    const char *path = *AT(ld->s, id, char *);
    char why[400];
    if (path[0] == '\0') return SG_OK;
    if (check_readable(path, why, sizeof why)) return check_error(ld, id, -1, "%s", why);
    return SG_OK;
}

static int check_nothing(loader *ld, int id) {
    (void)ld, (void)id;
    return SG_OK;
}

/* ---- kinds: the value as text -------------------------------------------------------- */

static void text_listen(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    const sg_listen_addr *a = *AT(s, id, sg_listen_addr *);
    size_t i;
    (void)masked;
    for (i = 0; i < *COUNT(s, id); i++) sg_buf_printf(b, "%s%s", i ? "," : "", a[i].text);
}

static void text_files(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    char **p = *AT(s, id, char **);
    size_t i;
    (void)masked;
    for (i = 0; i < *COUNT(s, id); i++) sg_buf_printf(b, "%s%s", i ? "," : "", p[i]);
}

static void text_users(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    const sg_daemon_user *u = *AT(s, id, sg_daemon_user *);
    size_t i;
    for (i = 0; i < *COUNT(s, id); i++) {
        sg_buf_printf(b, "%s%s:%s", i ? ", " : "", u[i].name, masked ? MASK : u[i].password);
        if (u[i].policy) sg_buf_printf(b, " (policy %s)", u[i].policy);
    }
}

static void text_string(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    const char *v = *AT(s, id, char *);
    sg_buf_puts(b, masked && secret(id) && v[0] ? MASK : v);
}

static void text_addr(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    const sg_listen_addr *a = *AT(s, id, sg_listen_addr *);
    (void)masked;
    if (a) sg_buf_puts(b, a->text);
}

static void text_integer(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    (void)masked;
    sg_buf_printf(b, "%lld", *AT(s, id, long long));
}

static void text_mode(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    (void)masked;
    sg_buf_printf(b, "%04o", (unsigned)*AT(s, id, int));
}

static void text_level(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    int level = *AT(s, id, int);
    (void)masked;
    sg_buf_puts(b, level >= SG_LOG_DEBUG && level <= SG_LOG_ERROR ? level_names[level] : "?");
}

static void text_log_format(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    int f = *AT(s, id, int);
    (void)masked;
    sg_buf_puts(b, f == SG_DS_LOG_TEXT || f == SG_DS_LOG_JSON ? log_format_names[f] : "?");
}

static void text_verify(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    int v = *AT(s, id, int);
    (void)masked;
    if (v >= 0 && v <= 2) sg_buf_puts(b, verify_names[v]);
}

static void text_protocols(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    int bits = *AT(s, id, int), n = 0;
    size_t i;
    (void)masked;
    for (i = 0; i < sizeof protocol_names / sizeof *protocol_names; i++)
        if (bits & protocol_names[i].bit)
            sg_buf_printf(b, "%s%s", n++ ? " " : "", protocol_names[i].name);
}

static void text_bool(sg_buf *b, const sg_daemon_settings *s, int id, int masked) {
    (void)masked;
    sg_buf_puts(b, *AT(s, id, int) ? "true" : "false");
}

/* ---- the kinds table --------------------------------------------------------------------- */

typedef struct kind_ops {
    int (*json)(loader *ld, int id, const sg_json *v);    /* a file's value (not null) */
    int (*parse)(loader *ld, int id, const char *text);   /* a variable, or the default */
    int (*check)(loader *ld, int id);                     /* the effective value */
    void (*text)(sg_buf *b, const sg_daemon_settings *s, int id, int masked);
    void (*clear)(sg_daemon_settings *s, int id);
} kind_ops;

static const kind_ops kinds[K_COUNT] = {
    [K_LISTEN] = {json_listen, parse_list, check_listen, text_listen, clear_listen},
    [K_MODE] = {json_mode, parse_mode_text, check_nothing, text_mode, clear_scalar},
    [K_INT] = {json_integer, parse_integer, check_range, text_integer, clear_scalar},
    [K_SIZE] = {json_integer, parse_integer, check_range, text_integer, clear_scalar},
    [K_SECONDS] = {json_integer, parse_integer, check_range, text_integer, clear_scalar},
    [K_FILES] = {json_files, parse_list, check_files, text_files, clear_files},
    [K_SECRET] = {json_string, parse_string, check_nothing, text_string, clear_string},
    [K_USERS] = {json_users, parse_users, check_users, text_users, clear_users},
    [K_ADDR] = {json_addr, parse_addr_text, check_addr, text_addr, clear_addr},
    [K_LEVEL] = {json_level, parse_level_text, check_nothing, text_level, clear_scalar},
    [K_LOGFORMAT] = {json_log_format, parse_log_format_text, check_nothing, text_log_format,
                     clear_scalar},
    [K_BOOL] = {json_bool, parse_bool, check_nothing, text_bool, clear_scalar},
    [K_USER] = {json_string, parse_string, check_user, text_string, clear_string},
    [K_PATH] = {json_string, parse_string, check_path, text_string, clear_string},
    [K_STRING] = {json_string, parse_string, check_nothing, text_string, clear_string},
    [K_VERIFY] = {json_verify, parse_verify_text, check_nothing, text_verify, clear_scalar},
    [K_PROTOCOLS] = {json_protocols, parse_protocols_text, check_nothing, text_protocols,
                     clear_scalar},
    [K_VERSION] = {json_string, parse_string, check_version, text_string, clear_string},
};

/* ---- origins ---------------------------------------------------------------------------- */

static void origin_free(sg_ds_origin *o) {
    sg_free(o->source);
    sg_free(o->envval);
    sg_free(o->lines);
    sg_free(o->cols);
    sg_free(o->text);
    sg_free(o->shown);
    memset(o, 0, sizeof *o);
}

static int set_source(loader *ld, int id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_source(loader *ld, int id, const char *fmt, ...) {
    sg_ds_origin *o = &ld->s->origin[id];
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sg_free(o->source);
    if ((o->source = sg_strdup(buf)) == NULL) return oom(ld);
    return SG_OK;
}

/* ---- loading ------------------------------------------------------------------------------ */

static void settings_reset(sg_daemon_settings *s) {
    int id, i;
    for (id = 0; id < SG_DS_COUNT; id++) {
        kinds[defs[id].kind].clear(s, id);
        origin_free(&s->origin[id]);
    }
    for (i = 0; i < s->nwarnings; i++) sg_free(s->warnings[i]);
    sg_free(s->warnings);
    sg_free(s->path);
    sg_free(s->dump);
    {
        sg_error keep = s->err;
        memset(s, 0, sizeof *s);
        s->err = keep;
    }
}

sg_daemon_settings *sg_daemon_settings_new(void) {
    return sg_calloc(1, sizeof(sg_daemon_settings));
}

void sg_daemon_settings_free(sg_daemon_settings *s) {
    if (s == NULL) return;
    settings_reset(s);
    sg_free(s);
}

static int cores_online(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

/* The table's defaults, read as a variable would be. */
static int apply_defaults(loader *ld) {
    int id, rc;
    for (id = 0; id < SG_DS_COUNT; id++) {
        ld->json = NULL;
        ld->envname = ld->envval = NULL;
        if (defs[id].def) {
            if ((rc = kinds[defs[id].kind].parse(ld, id, defs[id].def))) return rc;
            if ((rc = set_source(ld, id, "default"))) return rc;
        } else {
            /* computed: the number of cores online, within the range */
            long long n = cores_online();
            if (n < defs[id].min) n = defs[id].min;
            if (n > defs[id].max) n = defs[id].max;
            *AT(ld->s, id, long long) = n;
            if ((rc = set_source(ld, id, "default (%d cores online)", cores_online()))) return rc;
        }
    }
    return SG_OK;
}

/* The members of the "slotgate" object, in file order (the last of a
 * repeated key wins, keys matched without regard to case, as in Go). */
static int apply_file(loader *ld, const sg_json *obj) {
    size_t i;
    int id, rc;
    for (i = 0; i < obj->n; i++) {
        const sg_json_member *m = &obj->members[i];
        sg_ds_origin *o;
        for (id = 0; id < SG_DS_COUNT; id++)
            if (strcasecmp(m->key, defs[id].key) == 0) break;
        if (id == SG_DS_COUNT) {
            if (strcasecmp(m->key, "upstreams") == 0) continue; /* the core reads them */
            if ((rc = warn(ld, "%s:%d:%d: slotgate: unknown key \"%s\" ignored", ld->path,
                           m->line, m->col, m->key)))
                return rc;
            continue;
        }
        if (m->value->type == SG_JSON_NULL) continue; /* Go leaves the field as is */
        ld->json = m->value;
        ld->envname = ld->envval = NULL;
        rc = kinds[defs[id].kind].json(ld, id, m->value);
        ld->json = NULL;
        if (rc) return rc;
        o = &ld->s->origin[id];
        if (defs[id].kind != K_LISTEN && defs[id].kind != K_FILES && defs[id].kind != K_USERS) {
            sg_free(o->lines);
            sg_free(o->cols);
            o->lines = o->cols = NULL;
        }
        o->set = 1;
        o->line = m->value->line;
        o->col = m->value->col;
        if ((rc = set_source(ld, id, "file %s:%d:%d", ld->path, o->line, o->col))) return rc;
    }
    return SG_OK;
}

/* SLOTGATE_* over everything before them; set but empty still counts. */
static int apply_env(loader *ld) {
    int id, rc;
    for (id = 0; id < SG_DS_COUNT; id++) {
        sg_ds_origin *o = &ld->s->origin[id];
        const char *value = sg_env_get(ld->env, defs[id].env);
        if (value == NULL) continue;
        ld->json = NULL;
        ld->envname = defs[id].env;
        ld->envval = value;
        rc = kinds[defs[id].kind].parse(ld, id, value);
        ld->envname = ld->envval = NULL;
        if (rc) return rc;
        sg_free(o->lines);
        sg_free(o->cols);
        o->lines = o->cols = NULL;
        sg_free(o->envval);
        o->envval = NULL;
        o->set = 1;
        o->env = defs[id].env;
        if (!secret(id) && (o->envval = sg_strdup(value)) == NULL) return oom(ld);
        if ((rc = set_source(ld, id, "env %s", defs[id].env))) return rc;
    }
    return SG_OK;
}

/* The TLS rules: a tls: address needs a certificate and its key; client
 * verification needs the CA that signs the clients' certificates, and is on
 * by default when that CA is given; TLS settings without a tls: address do
 * nothing. */
static int resolve_tls(loader *ld) {
    static const int ids[] = {SG_DS_TLS_CERT_FILE,      SG_DS_TLS_KEY_FILE, SG_DS_TLS_KEY_FILE_PASS,
                              SG_DS_TLS_CA_FILE,        SG_DS_TLS_VERIFY_CLIENTS,
                              SG_DS_TLS_PROTOCOLS,      SG_DS_TLS_CIPHERS,
                              SG_DS_TLS_CIPHERSUITES};
    sg_daemon_settings *s = ld->s;
    int first_tls = -1, rc;
    size_t i;
    for (i = 0; i < s->nlisten; i++)
        if (s->listen[i].tls) {
            first_tls = (int)i;
            break;
        }
    if (s->tls_cert_file[0] && s->tls_key_file[0] == '\0')
        return check_error(ld, SG_DS_TLS_CERT_FILE, -1,
                           "a certificate without its key (set tls_key_file too)");
    if (s->tls_key_file[0] && s->tls_cert_file[0] == '\0')
        return check_error(ld, SG_DS_TLS_KEY_FILE, -1,
                           "a key without its certificate (set tls_cert_file too)");
    if (first_tls >= 0 && s->tls_cert_file[0] == '\0')
        return check_error(ld, SG_DS_LISTEN, first_tls,
                           "item %d: \"%s\" needs tls_cert_file and tls_key_file", first_tls + 1,
                           s->listen[first_tls].text);
    if (s->tls_verify_clients > 0 && s->tls_ca_file[0] == '\0')
        return check_error(ld, SG_DS_TLS_VERIFY_CLIENTS, -1,
                           "%s needs tls_ca_file (the CA that signs the clients' certificates)",
                           verify_names[s->tls_verify_clients]);
    if (s->tls_verify_clients < 0) {
        s->tls_verify_clients = s->tls_ca_file[0] ? SG_DS_VERIFY_YES : SG_DS_VERIFY_NO;
        if ((rc = set_source(ld, SG_DS_TLS_VERIFY_CLIENTS, "default (%s)",
                             s->tls_ca_file[0] ? "yes: tls_ca_file is set" : "no tls_ca_file")))
            return rc;
    }
    if (first_tls >= 0) return SG_OK;
    for (i = 0; i < sizeof ids / sizeof *ids; i++)
        if (s->origin[ids[i]].set &&
            (rc = warn(ld, "slotgate.%s has no effect: no tls: address in listen",
                       defs[ids[i]].key)))
            return rc;
    return SG_OK;
}

/* The rules between settings. */
static int resolve_between(loader *ld) {
    sg_daemon_settings *s = ld->s;
    size_t i;
    int rc, unix_listener = 0, open_tcp = -1;
    if ((rc = resolve_tls(ld))) return rc;
    for (i = 0; i < s->nusers; i++)
        if (strcmp(s->users[i].name, "default") == 0 && s->requirepass[0])
            return check_error(ld, SG_DS_USERS, (int)i,
                               "user \"default\" and requirepass both set the password of "
                               "the default user: keep one");
    for (i = 0; i < s->nlisten; i++) {
        if (s->listen[i].path) unix_listener = 1;
        else if (open_tcp < 0 && !is_loopback(&s->listen[i]) &&
                 !(s->listen[i].tls && s->tls_verify_clients == SG_DS_VERIFY_YES))
            open_tcp = (int)i; /* a client certificate is a credential */
        if (s->metrics && same_addr(s->metrics, &s->listen[i]))
            return check_error(ld, SG_DS_METRICS, -1, "\"%s\" is also a listen address",
                               s->metrics->text);
    }
    if (s->origin[SG_DS_UNIX_MODE].set && !unix_listener &&
        (rc = warn(ld, "slotgate.unix_mode %04o has no effect: no unix: address in listen",
                   (unsigned)s->unix_mode)))
        return rc;
    if (open_tcp >= 0 && s->requirepass[0] == '\0' && s->nusers == 0 &&
        (rc = warn(ld, "clients reaching %s need no password (set requirepass or users)",
                   s->listen[open_tcp].text)))
        return rc;
    return SG_OK;
}

static int make_texts(loader *ld) {
    int id;
    for (id = 0; id < SG_DS_COUNT; id++) {
        sg_ds_origin *o = &ld->s->origin[id];
        sg_buf b = {0};
        kinds[defs[id].kind].text(&b, ld->s, id, 0);
        if ((o->text = sg_buf_take(&b)) == NULL) return oom(ld);
        kinds[defs[id].kind].text(&b, ld->s, id, 1);
        if ((o->shown = sg_buf_take(&b)) == NULL) return oom(ld);
    }
    return SG_OK;
}


/* The "slotgate" object of the file, or NULL when there is none. */
static int read_file_object(loader *ld, const char *path, sg_json **root, const sg_json **obj) {
    char *text = NULL, err[400];
    size_t len = 0;
    int nomem = 0, rc;
    if ((rc = sg_read_file(path, &text, &len, &ld->s->err))) return rc;
    *root = sg_json_parse(text, len, err, sizeof err, &nomem);
    sg_free(text);
    if (*root == NULL)
        return nomem ? oom(ld) : sg_seterr(&ld->s->err, SG_EJSON, "%s:%s", path, err);
    if ((*root)->type != SG_JSON_OBJECT)
        return sg_seterr(&ld->s->err, SG_EJSON,
                         "%s:%d:%d: expected a JSON object ({ ... }) at the top level, found %s",
                         path, (*root)->line, (*root)->col, sg_json_type_name((*root)->type));
    *obj = sg_json_get(*root, "slotgate");
    if (*obj && (*obj)->type == SG_JSON_NULL) *obj = NULL;
    if (*obj && (*obj)->type != SG_JSON_OBJECT) {
        char found[100];
        sg_json_brief(*obj, found, sizeof found);
        return sg_seterr(&ld->s->err, SG_ECONFIG,
                         "%s:%d:%d: slotgate: expected an object of slotgated's settings, "
                         "found %s",
                         path, (*obj)->line, (*obj)->col, found);
    }
    return SG_OK;
}

int sg_daemon_settings_load(sg_daemon_settings *s, const char *path, const char *const *env) {
    loader ld = {s, env, path, NULL, NULL, NULL};
    sg_json *root = NULL;
    const sg_json *obj = NULL;
    int rc, id;

    if (s == NULL) return SG_EINVAL;
    settings_reset(s);
    sg_clearerr(&s->err);
    if ((rc = apply_defaults(&ld))) goto done;
    if (path) {
        if ((s->path = sg_strdup(path)) == NULL) {
            rc = oom(&ld);
            goto done;
        }
        if ((rc = read_file_object(&ld, path, &root, &obj))) goto done;
        if (obj && (rc = apply_file(&ld, obj))) goto done;
    }
    if ((rc = apply_env(&ld))) goto done;
    for (id = 0; id < SG_DS_COUNT; id++)
        if ((rc = kinds[defs[id].kind].check(&ld, id))) goto done;
    if ((rc = resolve_between(&ld))) goto done;
    rc = make_texts(&ld);
done:
    sg_json_free(root);
    if (rc != SG_OK) {
        int code = s->err.code ? s->err.code : rc;
        settings_reset(s); /* keeps the message */
        s->err.code = code;
        return code;
    }
    return SG_OK;
}

/* ---- reading it back ------------------------------------------------------------------------ */

int sg_daemon_settings_get(sg_daemon_settings *s, const char *key, int unmasked,
                           const char **value, const char **source) {
    int id;
    for (id = 0; id < SG_DS_COUNT; id++) {
        if (strcmp(key, defs[id].key) != 0) continue;
        if (s->origin[id].text == NULL)
            return sg_seterr(&s->err, SG_EINVAL, "no settings loaded");
        if (value) *value = unmasked ? s->origin[id].text : s->origin[id].shown;
        if (source) *source = s->origin[id].source;
        sg_clearerr(&s->err);
        return SG_OK;
    }
    return sg_seterr(&s->err, SG_EINVAL, "no daemon setting \"%s\"", key);
}

int sg_daemon_settings_warning_count(const sg_daemon_settings *s) { return s->nwarnings; }

const char *sg_daemon_settings_warning(const sg_daemon_settings *s, int i) {
    return i >= 0 && i < s->nwarnings ? s->warnings[i] : NULL;
}

const char *sg_daemon_settings_dump(sg_daemon_settings *s) {
    sg_buf b = {0};
    int id, i;
    if (s->dump) return s->dump;
    if (s->origin[0].text == NULL) {
        sg_seterr(&s->err, SG_EINVAL, "no settings loaded");
        return NULL;
    }
    if (s->path)
        sg_buf_printf(&b,
                      "\n# slotgated's own settings: the \"slotgate\" object of %s, then "
                      "SLOTGATE_* variables\n",
                      s->path);
    else
        sg_buf_puts(&b, "\n# slotgated's own settings: from the environment only (SLOTGATE_*)\n");
    sg_buf_puts(&b, "[slotgated]\n");
    for (id = 0; id < SG_DS_COUNT; id++)
        sg_buf_printf(&b, "%s = %s    # %s\n", defs[id].key, s->origin[id].shown,
                      s->origin[id].source);
    if (s->nwarnings) {
        sg_buf_puts(&b, "\n# warnings\n");
        for (i = 0; i < s->nwarnings; i++) sg_buf_printf(&b, "# - %s\n", s->warnings[i]);
    }
    if ((s->dump = sg_buf_take(&b)) == NULL)
        sg_seterr(&s->err, SG_ENOMEM, "out of memory while dumping slotgated's settings");
    return s->dump;
}
