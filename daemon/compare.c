/*
 * compare.c — `--check` with several files: which upstreams of the Tyk
 * products must be the same Redis (a gateway's storage and the dashboard's,
 * the pump's and the gateway's analytics store ...), and where their
 * effective settings differ: mode, seeds (as sets), credentials (masked),
 * database, TLS, timeout and pools. Each difference names both files, the
 * field in each file's own shape and where its value came from, so the
 * operator knows which line or variable to change.
 */
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "core_private.h"

/* ---- which upstreams must agree ---------------------------------------------------- */

/* The role an upstream plays: its name, except the pump's only upstream,
 * which is the analytics store. */
static const char *role_of(const sg_config *cfg, const char *upstream) {
    if (sg_config_shape_of(cfg) == SG_SHAPE_PUMP && strcmp(upstream, "default") == 0)
        return "analytics";
    return upstream;
}

/* The upstream of cfg that plays role, given the other file: NULL when
 * cfg's product has no such storage. */
static const char *counterpart(const sg_config *cfg, const char *role, const sg_config *other) {
    int shape = sg_config_shape_of(cfg);
    int builtin = strcmp(role, "default") == 0 || strcmp(role, "cache") == 0 ||
                  strcmp(role, "analytics") == 0;
    if (!builtin) return sg_config_upstream(cfg, role) ? role : NULL; /* slotgate.upstreams */
    if (shape == SG_SHAPE_PUMP) return strcmp(role, "analytics") == 0 ? "default" : NULL;
    if (shape == SG_SHAPE_DASHBOARD) {
        if (strcmp(role, "default") == 0) return "default";
        /* the dashboard's Redis holds analytics only when no gateway keeps
         * them apart: against a separate analytics store it has nothing */
        if (strcmp(role, "analytics") == 0 && sg_config_upstream(other, "analytics") == NULL)
            return "default";
        return NULL;
    }
    /* gateway: without its enable_separate_* switch, cache and analytics
     * live in its storage */
    return sg_config_upstream(cfg, role) ? role : "default";
}

long compare_pairs(const check_file *files, size_t n, check_pair **pairs) {
    size_t i, j, cap = 8, np = 0;
    check_pair *out = malloc(cap * sizeof *out);
    if (out == NULL) return -1;
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            const check_file *fa = &files[i], *fb = &files[j];
            int side, u;
            if (fa->cfg == NULL || fb->cfg == NULL) continue;
            /* every role either file has, each pair once */
            for (side = 0; side < 2; side++) {
                const sg_config *own = side ? fb->cfg : fa->cfg;
                for (u = 0; u < sg_config_upstream_count(own); u++) {
                    const char *role = role_of(own, sg_config_upstream_name(own, u));
                    const char *ua = counterpart(fa->cfg, role, fb->cfg);
                    const char *ub = counterpart(fb->cfg, role, fa->cfg);
                    size_t k;
                    if (ua == NULL || ub == NULL) continue;
                    for (k = 0; k < np; k++)
                        if (out[k].a == i && out[k].b == j && strcmp(out[k].ua, ua) == 0 &&
                            strcmp(out[k].ub, ub) == 0)
                            break;
                    if (k < np) continue;
                    if (np == cap) {
                        check_pair *more = realloc(out, 2 * cap * sizeof *out);
                        if (more == NULL) {
                            free(out);
                            return -1;
                        }
                        out = more;
                        cap *= 2;
                    }
                    /* the names as the files' own cfg hold them, which outlive this */
                    out[np].a = i;
                    out[np].b = j;
                    out[np].ua = sg_config_upstream(fa->cfg, ua)->name;
                    out[np].ub = sg_config_upstream(fb->cfg, ub)->name;
                    np++;
                }
            }
        }
    }
    *pairs = out;
    return (long)np;
}

/* ---- what must agree ----------------------------------------------------------------- */

typedef enum item_kind {
    ITEM_PLAIN,    /* the effective text */
    ITEM_SECRET,   /* equal or not; never shown */
    ITEM_MODE,     /* shown with enable_cluster and master_name */
    ITEM_SEEDS,    /* compared as sets */
    ITEM_DATABASE, /* the database used: 0 in a cluster */
    ITEM_IDLE      /* max idle as used: at most max active */
} item_kind;

typedef struct item {
    const char *field; /* sg_config_get()'s name */
    item_kind kind;
    int tls;      /* compared only when both use TLS */
    int sentinel; /* compared only when both are Sentinel mode */
} item;

static const item items[] = {
    {"mode", ITEM_MODE, 0, 0},
    {"addresses", ITEM_SEEDS, 0, 0},
    {"master_name", ITEM_PLAIN, 0, 1},
    {"sentinel_password", ITEM_SECRET, 0, 1},
    {"username", ITEM_PLAIN, 0, 0},
    {"password", ITEM_SECRET, 0, 0},
    {"database", ITEM_DATABASE, 0, 0},
    {"use_ssl", ITEM_PLAIN, 0, 0},
    {"ssl_insecure_skip_verify", ITEM_PLAIN, 1, 0},
    {"ca_file", ITEM_PLAIN, 1, 0},
    {"cert_file", ITEM_PLAIN, 1, 0},
    {"key_file", ITEM_PLAIN, 1, 0},
    {"tls_min_version", ITEM_PLAIN, 1, 0},
    {"tls_max_version", ITEM_PLAIN, 1, 0},
    {"timeout", ITEM_PLAIN, 0, 0},
    {"optimisation_max_active", ITEM_PLAIN, 0, 0},
    {"optimisation_max_idle", ITEM_IDLE, 0, 0},
};

/* One side of a pair: the file, its upstream's settings. */
typedef struct side {
    const char *path;
    sg_config *cfg;
    const char *up;
    const sg_storage *st;
} side;

/* The field as the file names it: "storage.enable_cluster", "redis_addrs". */
static void key_name(const side *s, const char *field, char *out, size_t outlen) {
    const char *key = sg_config_field_key(s->st->key_shape, field);
    if (key == NULL)
        snprintf(out, outlen, "%s (no key in the %s shape)", field,
                 sg_config_shape_name(s->st->key_shape));
    else if (s->st->section) snprintf(out, outlen, "%s.%s", s->st->section, key);
    else snprintf(out, outlen, "%s", key);
}

/* "FILE [UPSTREAM] KEY = VALUE (SOURCE)" into b; value NULL: not shown. */
static void describe(sg_buf *b, const side *s, const char *field, const char *value) {
    const char *v, *src = NULL;
    char key[200];
    key_name(s, field, key, sizeof key);
    sg_config_get(s->cfg, s->up, field, 0, &v, &src);
    if (value) sg_buf_printf(b, "%s = %s (%s)", key, value, src ? src : "default");
    else sg_buf_printf(b, "%s (%s)", key, src ? src : "default");
}

static const char *text_of(const side *s, const char *field) {
    const char *v = NULL;
    if (sg_config_get(s->cfg, s->up, field, 1, &v, NULL) != SG_OK || v == NULL) return "";
    return v;
}

/* The seeds used, and where they came from in the file's own names: addrs,
 * else hosts, else host and port (resolve_addresses' order). */
static void describe_seeds(sg_buf *b, const side *s) {
    const sg_storage *st = s->st;
    char key[200], port[200];
    sg_buf_printf(b, "%s (", st->addrs_text);
    if (st->f[SG_F_ADDRS].n > 0) {
        key_name(s, "addrs", key, sizeof key);
        sg_buf_printf(b, "%s, ", key);
    } else if (st->f[SG_F_HOSTS].n > 0) {
        key_name(s, "hosts", key, sizeof key);
        sg_buf_printf(b, "%s, ", key);
    } else if (st->f[SG_F_PORT].i != 0) {
        key_name(s, "host", key, sizeof key);
        key_name(s, "port", port, sizeof port);
        sg_buf_printf(b, "%s and %s: ", key, port);
    }
    sg_buf_printf(b, "%s)", st->addrs_source);
}

static int has_addr(const sg_storage *st, const char *addr) {
    size_t i;
    for (i = 0; i < st->naddrs; i++)
        if (strcmp(st->addrs[i], addr) == 0) return 1;
    return 0;
}

/* The addresses of x missing from y, as "; only in FILE: a,b". */
static void only_in(sg_buf *b, const side *x, const side *y) {
    size_t i, n = 0;
    for (i = 0; i < x->st->naddrs; i++) {
        if (has_addr(y->st, x->st->addrs[i])) continue;
        if (n++ == 0) sg_buf_printf(b, "; only in %s: %s", x->path, x->st->addrs[i]);
        else sg_buf_printf(b, ",%s", x->st->addrs[i]);
    }
}

static int same_seeds(const sg_storage *a, const sg_storage *b) {
    size_t i;
    for (i = 0; i < a->naddrs; i++)
        if (!has_addr(b, a->addrs[i])) return 0;
    for (i = 0; i < b->naddrs; i++)
        if (!has_addr(a, b->addrs[i])) return 0;
    return 1;
}

/* The difference of one item as a line, in b; 0 when they agree. */
static int differ(sg_buf *b, const item *it, const side *x, const side *y) {
    const char *sides[2];
    char num[2][32];
    int i;
    const side *s[2] = {x, y};
    switch (it->kind) {
    case ITEM_MODE:
        if (x->st->mode == y->st->mode) return 0;
        sg_buf_puts(b, "mode differs: ");
        for (i = 0; i < 2; i++) {
            const sg_storage *st = s[i]->st;
            sg_buf_printf(b, "%s%s [%s] is %s: ", i ? "; " : "", s[i]->path, s[i]->up,
                          sg_mode_name(st->mode));
            if (st->mode == SG_MODE_SENTINEL)
                describe(b, s[i], "master_name", text_of(s[i], "master_name"));
            else describe(b, s[i], "enable_cluster", text_of(s[i], "enable_cluster"));
        }
        return 1;
    case ITEM_SEEDS:
        if (same_seeds(x->st, y->st)) return 0;
        sg_buf_puts(b, "seeds differ: ");
        for (i = 0; i < 2; i++) {
            sg_buf_printf(b, "%s%s [%s] ", i ? "; " : "", s[i]->path, s[i]->up);
            describe_seeds(b, s[i]);
        }
        only_in(b, x, y);
        only_in(b, y, x);
        return 1;
    case ITEM_SECRET: {
        const char *va = text_of(x, it->field), *vb = text_of(y, it->field);
        if (strcmp(va, vb) == 0) return 0;
        sg_buf_printf(b, "%s differs (not shown): ", it->field);
        for (i = 0; i < 2; i++) {
            sg_buf_printf(b, "%s%s [%s] ", i ? "; " : "", s[i]->path, s[i]->up);
            describe(b, s[i], it->field, NULL);
            sg_buf_puts(b, text_of(s[i], it->field)[0] ? " is set" : " is empty");
        }
        return 1;
    }
    case ITEM_DATABASE:
    case ITEM_IDLE:
        for (i = 0; i < 2; i++) {
            long long v = it->kind == ITEM_DATABASE ? s[i]->st->database : s[i]->st->max_idle;
            snprintf(num[i], sizeof num[i], "%lld", v);
            sides[i] = num[i];
        }
        break;
    default: sides[0] = text_of(x, it->field); sides[1] = text_of(y, it->field);
    }
    if (strcmp(sides[0], sides[1]) == 0) return 0;
    sg_buf_printf(b, "%s differs: ", it->field);
    for (i = 0; i < 2; i++) {
        sg_buf_printf(b, "%s%s [%s] ", i ? "; " : "", s[i]->path, s[i]->up);
        describe(b, s[i], it->field, sides[i]);
    }
    return 1;
}

int compare_pair(FILE *out, const check_file *files, const check_pair *p, int strict) {
    side x = {files[p->a].path, files[p->a].cfg, p->ua, NULL};
    side y = {files[p->b].path, files[p->b].cfg, p->ub, NULL};
    size_t i;
    int n = 0;
    x.st = sg_config_upstream(x.cfg, x.up);
    y.st = sg_config_upstream(y.cfg, y.up);
    for (i = 0; i < sizeof items / sizeof items[0]; i++) {
        const item *it = &items[i];
        sg_buf b = {0};
        char *line;
        if (it->tls && !(x.st->use_ssl && y.st->use_ssl)) continue;
        if (it->sentinel && !(x.st->mode == SG_MODE_SENTINEL && y.st->mode == SG_MODE_SENTINEL))
            continue;
        if (it->kind == ITEM_DATABASE && x.st->mode == SG_MODE_CLUSTER &&
            y.st->mode == SG_MODE_CLUSTER)
            continue;
        if (!differ(&b, it, &x, &y)) {
            sg_buf_free(&b);
            continue;
        }
        if ((line = sg_buf_take(&b)) == NULL) {
            fprintf(out, "%s: %s differs (out of memory to say how)\n",
                    strict ? "error" : "warning", it->field);
        } else {
            fprintf(out, "%s: %s\n", strict ? "error" : "warning", line);
            sg_free(line);
        }
        n++;
    }
    return n;
}
