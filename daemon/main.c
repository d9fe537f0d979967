/*
 * main.c — slotgated's command line: reads the storage settings (the core's)
 * and the daemon's own (settings.c); with --check prints the effective
 * settings of both (secrets masked, each with its source) or the errors and
 * exits; otherwise serves (server.c) until SIGTERM or SIGINT, logging
 * (log.c) to stderr or syslog.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compare.h"
#include "log.h"
#include "probe.h"
#include "settings.h"
#include "server.h"
#include "slotgate.h"
#include "tls_server.h"

/* The help's list of variables: full names, wrapped at HELP_COLS, under a
 * heading for each upstream and prefix as the core reports them. */
#define HELP_COLS 100

typedef struct help_list {
    FILE *out;
    const char *shape;
    char last[160]; /* the heading printed last */
    int col;
} help_list;

static void help_env(void *ud, const char *upstream, const char *prefix, const char *suffix) {
    help_list *h = ud;
    char heading[160], name[160];
    int len;
    if (strcmp(upstream, "switch") == 0)
        snprintf(heading, sizeof heading, "  %s, the separate-store switches:", h->shape);
    else if (prefix[0] == '\0' || strchr(prefix, '<'))
        snprintf(heading, sizeof heading, "  %s, upstreams named in slotgate.%s (<NAME>: the "
                 "name upper-cased, '-' as '_'):", h->shape, SG_CONFIG_NAMED_KEY);
    else
        snprintf(heading, sizeof heading, "  %s, upstream %s, %s*:", h->shape, upstream, prefix);
    if (strcmp(heading, h->last) != 0) {
        fprintf(h->out, "%s%s\n", h->col ? "\n" : "", heading);
        snprintf(h->last, sizeof h->last, "%s", heading);
        h->col = 0;
    }
    len = snprintf(name, sizeof name, "%s%s", prefix, suffix);
    if (h->col && h->col + 1 + len > HELP_COLS) {
        fputc('\n', h->out);
        h->col = 0;
    }
    h->col += fprintf(h->out, "%s%s", h->col ? " " : "    ", name);
}

static void usage(FILE *out) {
    static const struct {
        int shape;
        const char *name;
    } shapes[] = {{SG_SHAPE_GATEWAY, "gateway (tyk.conf)"},
                  {SG_SHAPE_DASHBOARD, "dashboard (tyk_analytics.conf)"},
                  {SG_SHAPE_PUMP, "pump (pump.conf)"}};
    help_list h;
    size_t i;
    fprintf(out,
            "usage: slotgated [-c FILE] [--shape SHAPE]\n"
            "       slotgated --check [-c FILE]... [--shape SHAPE] [--strict] [--connect]\n"
            "       slotgated --version | --help\n"
            "\n"
            "Serves Redis clients in front of the storage the settings name, until\n"
            "SIGTERM or SIGINT (in-flight commands finish first); SIGHUP reads the\n"
            "settings again: users, passwords, policy scripts, limits, the TLS\n"
            "certificate and the upstreams' seeds, pool sizes, timeout, credentials\n"
            "and TLS files change without dropping clients (all of it or none). With\n"
            "the metrics setting, http://ADDR/metrics (Prometheus) and /health (200\n"
            "once every upstream's slot map is full) are served.\n"
            "\n"
            "  -c, --config FILE  a Tyk settings file: tyk.conf, tyk_analytics.conf\n"
            "                     or pump.conf (without it: the environment alone);\n"
            "                     with --check, once per file to compare several\n"
            "  --shape SHAPE      gateway, dashboard or pump (default: told from\n"
            "                     the file's keys, or from the TYK_* variables set)\n"
            "  --check            print the effective settings and where each came\n"
            "                     from, or the error; with several files, then where\n"
            "                     the storage they must share differs\n"
            "  --strict           (--check) a difference between the files is an\n"
            "                     error (exit 1), not a warning (exit 3)\n"
            "  --connect          (--check) reach every seed and node with the\n"
            "                     settings and report each step (TLS, AUTH, cluster\n"
            "                     state, slots, nodes, version, round-trip time)\n"
            "  -v, --version      print the version\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status of --check: 0 valid (and, with --connect, every seed and node\n"
            "answered); 1 a setting is invalid, or with --strict the files differ;\n"
            "3 the files differ; 4 --connect found a failure. 2: a bad option.\n"
            "\n"
            "slotgated's own settings: a key of the file's \"slotgate\" object, then its\n"
            "variable on top (default in brackets):\n");
#define SG_HELP_ROW_(id, key, kind, env, def, min, max)                                      \
    fprintf(out, "  %-22s %-28s [%s]\n", #key, env,                                          \
            def == NULL ? "computed" : ((const char *)def)[0] ? (const char *)def : "unset");
    SG_DAEMON_SETTINGS(SG_HELP_ROW_)
#undef SG_HELP_ROW_
    fprintf(out,
            "  %-22s %-28s [unset]\n"
            "\n"
            "Storage settings, read as Tyk reads them: the file's fields, then these\n"
            "variables field by field (the later prefix of an upstream wins):\n",
            SG_CONFIG_NAMED_KEY, "(named upstreams: below)");
    memset(&h, 0, sizeof h);
    h.out = out;
    for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        h.shape = shapes[i].name;
        sg_config_env_each(shapes[i].shape, help_env, &h);
    }
    h.shape = "any file";
    sg_config_named_env_each(help_env, &h);
    fprintf(out,
            "%s\n"
            "See slotgated(8), slotgate-policy(5) and libslotgate(3).\n",
            h.col ? "\n" : "");
}

/* Drops to the configured user once every socket is bound. */
static void on_ready(void *ud) {
    const sg_daemon_settings *ds = ud;
    if (ds->user[0] == '\0') return;
    /* the groups first: root's supplementary groups must not stay */
    if (initgroups(ds->user, ds->gid) != 0 || setgid(ds->gid) != 0 || setuid(ds->uid) != 0) {
        log_fatal("cannot become user %s: %s", ds->user, strerror(errno));
        exit(1);
    }
    if (ds->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        log_fatal("user %s could become root again", ds->user);
        exit(1);
    }
    sg_log(SG_LOG_INFO, "running as user %s (uid %ld, gid %ld)", ds->user, (long)ds->uid,
           (long)ds->gid);
}

/* The TLS context when some listen address is "tls:"; NULL with err filled
 * when it cannot be made, NULL with err empty when there is none to make. */
static struct ssl_ctx_st *tls_context(const sg_daemon_settings *ds, char *err, size_t errlen) {
    size_t i;
    err[0] = '\0';
    for (i = 0; i < ds->nlisten; i++)
        if (ds->listen[i].tls) return sg_tls_server_new(ds, err, errlen);
    return NULL;
}

/* Options made from settings, with what they point into: free_opts gets
 * back &o (the first member). A reload's are shared by the workers on them
 * and by main, which compares the next reload's storage settings with the
 * last ones taken: the last to let go frees them. */
typedef struct built {
    sg_serve_opts o;
    sg_daemon_settings *ds; /* owned by a reload's options; the first are main's */
    sg_config *storage;     /* a reload's storage settings (o.storage), owned */
    const char **listen;
    sg_serve_user *users;
    int refs;               /* a reload's: atomic, the workers' one and main's one */
} built;

static void built_clear(built *b) {
    sg_tls_server_free(b->o.tls_ctx);
    free(b->listen);
    free(b->users);
    b->o.tls_ctx = NULL;
    b->listen = NULL;
    b->users = NULL;
}

/* Fills b from ds; tls: make the TLS context (some listener of the running
 * daemon is "tls:"). 0, or -1 with why in err. */
static int build(built *b, sg_daemon_settings *ds, int tls, char *err, size_t errlen) {
    sg_serve_opts *o = &b->o;
    size_t i;
    memset(b, 0, sizeof *b);
    b->ds = ds;
    err[0] = '\0';
    if (tls && (o->tls_ctx = sg_tls_server_new(ds, err, errlen)) == NULL) return -1;
    if ((b->listen = calloc(ds->nlisten ? ds->nlisten : 1, sizeof *b->listen)) == NULL ||
        (ds->nusers > 0 && (b->users = calloc(ds->nusers, sizeof *b->users)) == NULL)) {
        snprintf(err, errlen, "out of memory");
        built_clear(b);
        return -1;
    }
    for (i = 0; i < ds->nlisten; i++) b->listen[i] = ds->listen[i].text;
    for (i = 0; i < ds->nusers; i++) {
        b->users[i].name = ds->users[i].name;
        b->users[i].password = ds->users[i].password;
        b->users[i].policy = ds->users[i].policy;
    }
    o->listen = b->listen;
    o->nlisten = (int)ds->nlisten;
    o->unix_mode = ds->unix_mode;
    o->threads = (int)ds->threads;
    o->policies = (const char *const *)ds->policy;
    o->npolicies = (int)ds->npolicy;
    o->requirepass = ds->requirepass;
    o->users = b->users;
    o->nusers = (int)ds->nusers;
    o->max_clients = ds->max_clients;
    o->max_request_bytes = ds->max_request_bytes;
    o->idle_timeout = ds->client_idle_timeout;
    o->output_limit = ds->client_output_limit;
    o->pubsub_output_limit = ds->pubsub_output_limit;
    o->cache_max_bytes = ds->cache_max_bytes;
    o->redis_version = ds->redis_version[0] ? ds->redis_version : sg_commands_redis_version();
    o->metrics = ds->metrics ? ds->metrics->text : NULL;
    o->shutdown_timeout = (int)ds->shutdown_timeout;
    return 0;
}

/* A reload's options let go of (a worker's thread, or main's). */
static void built_drop(built *b) {
    if (b == NULL || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    built_clear(b);
    sg_config_free(b->storage);
    sg_daemon_settings_free(b->ds);
    free(b);
}

/* What a reload needs: the file the settings came from, the settings
 * serving started with, and the last storage settings a reload took. */
typedef struct served {
    const char *path;
    sg_daemon_settings *first;
    sg_config *cfg; /* the storage settings serving started with */
    built *last;    /* the last reload's (a reference), NULL before one */
} served;

static int has_tls(const sg_daemon_settings *ds) {
    size_t i;
    for (i = 0; i < ds->nlisten; i++)
        if (ds->listen[i].tls) return 1;
    return 0;
}

/* Settings read at start only: a reload that changes them says so. */
static void warn_restart_only(sg_daemon_settings *first, sg_daemon_settings *now) {
    static const char *const keys[] = {"listen", "unix_mode", "threads", "metrics",
                                       "log_level", "log_format", "syslog", "user", NULL};
    int i;
    for (i = 0; keys[i]; i++) {
        const char *a = NULL, *b = NULL, *src;
        char was[512];
        if (sg_daemon_settings_get(first, keys[i], 0, &a, &src) != SG_OK || a == NULL) continue;
        snprintf(was, sizeof was, "%s", a);
        if (sg_daemon_settings_get(now, keys[i], 0, &b, &src) != SG_OK || b == NULL) continue;
        if (strcmp(was, b) != 0)
            sg_log(SG_LOG_WARN, "SIGHUP: %s changed (%s -> %s): it takes a restart; the "
                   "running value stays", keys[i], was, b);
    }
}

/* An upstream's setting as text ("" when unset), copied: the next get on
 * the same handle may reuse the string. */
static void storage_value(sg_config *cfg, const char *up, const char *key, char *out, size_t len) {
    const char *v = NULL;
    if (sg_config_get(cfg, up, key, 0, &v, NULL) != SG_OK || v == NULL) v = "";
    snprintf(out, len, "%s", v);
}

/* "" for the default upstream, "NAME " for the others: the log's prefix. */
static const char *up_label(const char *name, char *buf, size_t len) {
    if (strcmp(name, "default") == 0) return "";
    snprintf(buf, len, "%s ", name);
    return buf;
}

/* Whether the workers can take the storage settings now while serving. The
 * same upstreams, each with the same mode, use_ssl and (outside a cluster)
 * database: else -1 with the first change that takes a restart in err, and
 * the reload is refused whole. Compared with the settings serving started
 * with: a reload never changes these. */
static int storage_refused(sg_config *first, sg_config *now, char *err, size_t errlen) {
    static const char *const fixed[] = {"mode", "use_ssl", "database", NULL};
    int u, i, n = sg_config_upstream_count(first);
    char a[512], b[512], label[160], mode[32];
    for (u = 0; u < sg_config_upstream_count(now); u++)
        if (sg_config_get(first, sg_config_upstream_name(now, u), "mode", 0, NULL, NULL) != SG_OK) {
            snprintf(err, errlen, "storage upstream \"%s\" is new: the upstreams are read at "
                     "start only, it takes a restart", sg_config_upstream_name(now, u));
            return -1;
        }
    for (u = 0; u < n; u++) {
        const char *name = sg_config_upstream_name(first, u);
        if (sg_config_get(now, name, "mode", 0, NULL, NULL) != SG_OK) {
            snprintf(err, errlen, "storage upstream \"%s\" is gone: the upstreams are read at "
                     "start only, it takes a restart", name);
            return -1;
        }
        storage_value(first, name, "mode", mode, sizeof mode);
        for (i = 0; fixed[i]; i++) {
            /* a cluster ignores the database (with a warning) */
            if (strcmp(fixed[i], "database") == 0 && strcmp(mode, "cluster") == 0) continue;
            storage_value(first, name, fixed[i], a, sizeof a);
            storage_value(now, name, fixed[i], b, sizeof b);
            if (strcmp(a, b) != 0) {
                snprintf(err, errlen, "storage %s%s changed (%s -> %s): it cannot change under "
                         "open connections, it takes a restart",
                         up_label(name, label, sizeof label), fixed[i], a, b);
                return -1;
            }
        }
    }
    return 0;
}

/* Says what a reload changes in the storage settings (before: the last
 * ones taken), as the workers take it. */
static void storage_changes(sg_config *before, sg_config *now) {
    static const struct {
        const char *key, *effect;
    } taken[] = {
        {"addresses", "the map (or master) is asked of them now"},
        {"master_name", "the sentinels are asked for it now"},
        {"optimisation_max_active", "surplus connections close when idle"},
        {"optimisation_max_idle", "surplus idle connections close"},
        {"timeout", "taken for new connections and commands"},
        {"username", "new connections authenticate with it"},
        {"ssl_insecure_skip_verify", "new connections use it"},
        {"ca_file", "new connections use it"},
        {"cert_file", "new connections use it"},
        {"key_file", "new connections use it"},
        {"tls_min_version", "new connections use it"},
        {"tls_max_version", "new connections use it"},
        {NULL, NULL}};
    int u, i;
    char a[512], b[512], label[160];
    for (u = 0; u < sg_config_upstream_count(now); u++) {
        const char *name = sg_config_upstream_name(now, u), *pa = NULL, *pb = NULL;
        for (i = 0; taken[i].key; i++) {
            storage_value(before, name, taken[i].key, a, sizeof a);
            storage_value(now, name, taken[i].key, b, sizeof b);
            if (strcmp(a, b) != 0)
                sg_log(SG_LOG_INFO, "SIGHUP: storage %s%s changed (%s -> %s): %s",
                       up_label(name, label, sizeof label), taken[i].key, a, b, taken[i].effect);
        }
        for (i = 0; i < 2; i++) { /* secrets: that they changed, never their values */
            const char *key = i ? "sentinel_password" : "password";
            if (sg_config_get(before, name, key, 1, &pa, NULL) == SG_OK &&
                sg_config_get(now, name, key, 1, &pb, NULL) == SG_OK &&
                strcmp(pa ? pa : "", pb ? pb : "") != 0)
                sg_log(SG_LOG_INFO, "SIGHUP: storage %s%s changed: new connections "
                       "authenticate with it", up_label(name, label, sizeof label), key);
        }
        if (sg_config_tls_changed(before, now, name))
            sg_log(SG_LOG_INFO, "SIGHUP: storage %sTLS files changed (their contents): new "
                   "connections use them", up_label(name, label, sizeof label));
    }
}
/* The storage settings read again for a reload, their TLS files loaded:
 * NULL with why in err when they do not read, a TLS file does not load, or
 * they change what takes a restart (the whole reload is refused then). */
static sg_config *reload_storage(served *sv, char *err, size_t errlen) {
    sg_config *cfg = sg_config_new();
    int i;
    if (cfg == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (sg_config_load(cfg, sv->path, sg_config_shape_of(sv->cfg), NULL) != SG_OK ||
        sg_config_load_tls(cfg) != SG_OK) {
        snprintf(err, errlen, "%s", sg_errmsg(cfg));
        sg_config_free(cfg);
        return NULL;
    }
    if (storage_refused(sv->cfg, cfg, err, errlen) != 0) {
        sg_config_free(cfg);
        return NULL;
    }
    for (i = 0; i < sg_config_warning_count(cfg); i++)
        sg_log(SG_LOG_WARN, "SIGHUP: %s", sg_config_warning(cfg, i));
    return cfg;
}

/* SIGHUP (the main thread): the daemon's and the storage settings read
 * again from the same file and environment; all of them are taken, or none. */
static sg_serve_opts *reload_settings(void *ud, char *err, size_t errlen) {
    served *sv = ud;
    sg_daemon_settings *ds = sg_daemon_settings_new();
    sg_config *storage;
    built *b;
    int i;
    if (ds == NULL || (b = malloc(sizeof *b)) == NULL) {
        sg_daemon_settings_free(ds);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (sg_daemon_settings_load(ds, sv->path, NULL) != SG_OK) {
        snprintf(err, errlen, "%s", sg_errmsg(ds));
        sg_daemon_settings_free(ds);
        free(b);
        return NULL;
    }
    if ((storage = reload_storage(sv, err, errlen)) == NULL) {
        sg_daemon_settings_free(ds);
        free(b);
        return NULL;
    }
    /* the listeners are the running ones: a certificate when they take TLS */
    if (build(b, ds, has_tls(sv->first), err, errlen) != 0) {
        sg_config_free(storage);
        sg_daemon_settings_free(ds);
        free(b);
        return NULL;
    }
    for (i = 0; i < sg_daemon_settings_warning_count(ds); i++)
        sg_log(SG_LOG_WARN, "SIGHUP: %s", sg_daemon_settings_warning(ds, i));
    b->storage = storage;
    b->o.storage = storage;
    b->refs = 2; /* the workers' (free_reloaded), and main's as the last taken */
    warn_restart_only(sv->first, ds);
    storage_changes(sv->last ? sv->last->storage : sv->cfg, storage);
    built_drop(sv->last);
    sv->last = b;
    return &b->o;
}

/* The workers are done with a reload's options (any worker's thread). */
static void free_reloaded(void *ud, sg_serve_opts *o) {
    (void)ud;
    built_drop((built *)o);
}

/* Serves with the settings read; the exit status. */
static int serve(sg_config *cfg, sg_daemon_settings *ds, const char *path) {
    built b;
    served sv = {path, ds, cfg, NULL};
    char err[SG_ERRMSG_MAX];
    int rc;
    log_setup(ds->log_level, ds->syslog, ds->log_format == SG_DS_LOG_JSON);
    /* one TLS context per upstream for every worker's clients, and what a
     * reload compares the files with */
    if (sg_config_load_tls(cfg) != SG_OK) {
        log_fatal("%s", sg_errmsg(cfg));
        return 1;
    }
    if (build(&b, ds, has_tls(ds), err, sizeof err) != 0) {
        log_fatal("%s", err);
        return 1;
    }
    b.o.ready = on_ready;
    b.o.ready_ud = ds;
    b.o.reload = reload_settings;
    b.o.free_opts = free_reloaded;
    b.o.reload_ud = &sv;
    rc = sg_serve(cfg, &b.o, err, sizeof err);
    if (rc != 0) log_fatal("%s", err);
    built_drop(sv.last); /* the workers let go of theirs before sg_serve returned */
    built_clear(&b);
    return rc == 0 ? 0 : 1;
}

/* Exit statuses of --check (documented in --help, slotgated(8) and the
 * README): the worst outcome wins, in this order. */
enum {
    EXIT_OK = 0,
    EXIT_INVALID = 1,   /* a setting is invalid; differences, with --strict */
    EXIT_USAGE = 2,     /* a bad option or argument */
    EXIT_DIFFER = 3,    /* several files differ (without --strict) */
    EXIT_UNREACHED = 4, /* --connect found a seed or node failing */
};

/* --check of one file (or of the environment, path NULL): prints its
 * settings, or each error. SG_OK with *cfgp the settings (the caller frees
 * them), or an error code with *cfgp NULL. */
static int check_one(const char *path, int shape, sg_config **cfgp) {
    sg_config *cfg = sg_config_new();
    sg_daemon_settings *ds = sg_daemon_settings_new();
    int rc, dsrc = SG_EINVAL;
    *cfgp = NULL;
    if (cfg == NULL || ds == NULL) {
        fprintf(stderr, "slotgated: out of memory\n");
        sg_config_free(cfg);
        sg_daemon_settings_free(ds);
        return SG_ENOMEM;
    }
    /* Both are read, so one run names the first bad setting of each; a file
     * that cannot be read or parsed is said once. */
    rc = sg_config_load(cfg, path, shape, NULL);
    if (rc != SG_OK) fprintf(stderr, "slotgated: %s\n", sg_errmsg(cfg));
    if (rc != SG_EIO && rc != SG_EJSON && rc != SG_ENOMEM) {
        dsrc = sg_daemon_settings_load(ds, path, NULL);
        if (dsrc != SG_OK) fprintf(stderr, "slotgated: %s\n", sg_errmsg(ds));
    }
    if (rc == SG_OK && dsrc == SG_OK) {
        /* the certificate and key are loaded as serving would */
        char err[SG_ERRMSG_MAX];
        struct ssl_ctx_st *tls = tls_context(ds, err, sizeof err);
        sg_tls_server_free(tls);
        if (tls == NULL && err[0]) {
            fprintf(stderr, "slotgated: %s\n", err);
            dsrc = SG_ETLS;
        }
    }
    if (rc == SG_OK && dsrc == SG_OK) {
        const char *dump = sg_config_dump(cfg), *dsdump = NULL;
        if (dump == NULL) fprintf(stderr, "slotgated: %s\n", sg_errmsg(cfg));
        else if ((dsdump = sg_daemon_settings_dump(ds)) == NULL)
            fprintf(stderr, "slotgated: %s\n", sg_errmsg(ds));
        else {
            fputs(dump, stdout);
            fputs(dsdump, stdout);
        }
        if (dsdump == NULL) rc = SG_ENOMEM;
    }
    sg_daemon_settings_free(ds);
    if (rc == SG_OK && dsrc == SG_OK) {
        *cfgp = cfg;
        return SG_OK;
    }
    sg_config_free(cfg);
    return rc != SG_OK ? rc : dsrc;
}

/* "FILE [UPSTREAM]" for the messages about one upstream. */
static void upstream_label(char *out, size_t outlen, const check_file *f, const char *up) {
    snprintf(out, outlen, "%s [%s]", f->path ? f->path : "(environment)", up);
}

/* --check --connect: every upstream of every file that loaded; then, for
 * the pairs that must name the same storage, whether they do. The number
 * of failures; *differ counts the pairs that reach different storage. */
static int connect_all(const check_file *files, size_t n, const check_pair *pairs, long npairs,
                       int strict, int *differ) {
    probe_ident **ids = calloc(n, sizeof *ids);
    size_t i;
    long k;
    int u, failures = 0, headed = 0;
    if (ids == NULL) {
        fprintf(stderr, "slotgated: out of memory\n");
        return 1;
    }
    for (i = 0; i < n; i++) {
        int nup;
        if (files[i].cfg == NULL) continue;
        nup = sg_config_upstream_count(files[i].cfg);
        if ((ids[i] = calloc((size_t)nup, sizeof *ids[i])) == NULL) {
            fprintf(stderr, "slotgated: out of memory\n");
            failures++;
            continue;
        }
        for (u = 0; u < nup; u++) {
            char label[600];
            const char *up = sg_config_upstream_name(files[i].cfg, u);
            upstream_label(label, sizeof label, &files[i], up);
            failures += probe_upstream(stdout, files[i].cfg, up, label, &ids[i][u]);
        }
    }
    for (k = 0; k < npairs; k++) {
        const check_pair *p = &pairs[k];
        const probe_ident *a = NULL, *b = NULL;
        char la[600], lb[600];
        int cmp;
        for (u = 0; u < sg_config_upstream_count(files[p->a].cfg); u++)
            if (strcmp(sg_config_upstream_name(files[p->a].cfg, u), p->ua) == 0)
                a = ids[p->a] ? &ids[p->a][u] : NULL;
        for (u = 0; u < sg_config_upstream_count(files[p->b].cfg); u++)
            if (strcmp(sg_config_upstream_name(files[p->b].cfg, u), p->ub) == 0)
                b = ids[p->b] ? &ids[p->b][u] : NULL;
        if (a == NULL || b == NULL) continue;
        upstream_label(la, sizeof la, &files[p->a], p->ua);
        upstream_label(lb, sizeof lb, &files[p->b], p->ub);
        if (!headed++) printf("\n# the same storage?\n");
        cmp = probe_ident_cmp(a, b);
        if (cmp == 1)
            printf("%s and %s reach the same %s (%s%zu)\n", la, lb,
                   a->cluster ? "cluster" : "server",
                   a->cluster ? "node ids, " : "run_id, ", a->nids);
        else if (cmp == -2)
            printf("%s and %s: not known (one of them reached nothing)\n", la, lb);
        else {
            printf("%s: %s reaches %s and %s %s: %s\n", strict ? "error" : "warning", la,
                   a->cluster ? "a cluster" : "a server", lb,
                   cmp == -1 ? "a cluster that shares only some of its node ids"
                             : "another one",
                   cmp == -1 ? "they see the cluster differently" : "the node ids differ");
            (*differ)++;
        }
    }
    for (i = 0; i < n; i++) {
        if (ids[i] == NULL) continue;
        for (u = 0; u < sg_config_upstream_count(files[i].cfg); u++)
            probe_ident_clear(&ids[i][u]);
        free(ids[i]);
    }
    free(ids);
    return failures;
}

/* --check: each file's settings (or the environment's), the differences
 * between the files, and with --connect what the storage answers. The exit
 * status. */
static int check(const char *const *paths, size_t npaths, int shape, int strict, int connect) {
    size_t n = npaths ? npaths : 1, i;
    check_file *files = calloc(n, sizeof *files);
    check_pair *pairs = NULL;
    long npairs = 0, k;
    int invalid = 0, differ = 0, failures = 0, status;
    if (files == NULL) {
        fprintf(stderr, "slotgated: out of memory\n");
        return EXIT_INVALID;
    }
    for (i = 0; i < n; i++) {
        files[i].path = npaths ? paths[i] : NULL;
        if (n > 1) printf("%s# ==== %s (file %zu of %zu) ====\n", i ? "\n" : "", paths[i],
                          i + 1, n);
        fflush(stdout); /* the file's errors go to stderr after its heading */
        if (check_one(files[i].path, shape, &files[i].cfg) != SG_OK) invalid = 1;
    }
    if (n > 1) {
        if ((npairs = compare_pairs(files, n, &pairs)) < 0) {
            fprintf(stderr, "slotgated: out of memory\n");
            npairs = 0;
            invalid = 1;
        }
        printf("\n# differences between the files\n");
        for (k = 0; k < npairs; k++) {
            int d = compare_pair(stdout, files, &pairs[k], strict);
            char la[600], lb[600];
            upstream_label(la, sizeof la, &files[pairs[k].a], pairs[k].ua);
            upstream_label(lb, sizeof lb, &files[pairs[k].b], pairs[k].ub);
            printf("# %s and %s: %d difference%s\n", la, lb, d, d == 1 ? "" : "s");
            differ += d;
        }
        if (npairs == 0) printf("# no two of them name the same storage\n");
    }
    if (connect) {
        /* a node that closes the connection is a failure to report, not a
         * signal to die of (SSL_write has no MSG_NOSIGNAL) */
        signal(SIGPIPE, SIG_IGN);
        failures = connect_all(files, n, pairs, npairs, strict, &differ);
    }
    fflush(stdout);
    if (differ)
        fprintf(stderr, "slotgated: %d difference%s between the files%s\n", differ,
                differ == 1 ? "" : "s", strict ? " (--strict: an error)" : "");
    if (failures)
        fprintf(stderr, "slotgated: --connect: %d failure%s (the lines \"error:\" above)\n",
                failures, failures == 1 ? "" : "s");
    status = invalid || (strict && differ) ? EXIT_INVALID
             : failures                    ? EXIT_UNREACHED
             : differ                      ? EXIT_DIFFER
                                           : EXIT_OK;
    for (i = 0; i < n; i++) sg_config_free(files[i].cfg);
    free(files);
    free(pairs);
    return status;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"shape", required_argument, NULL, 's'},
        {"check", no_argument, NULL, 'k'},
        {"strict", no_argument, NULL, 'S'},
        {"connect", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char **paths;
    size_t npaths = 0;
    int shape = SG_SHAPE_AUTO, check_only = 0, strict = 0, connect = 0, c, rc;
    sg_config *cfg;
    sg_daemon_settings *ds;

    if ((paths = calloc((size_t)argc + 1, sizeof *paths)) == NULL) {
        fprintf(stderr, "slotgated: out of memory\n");
        return 1;
    }
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': paths[npaths++] = optarg; break;
        case 's':
            if (strcmp(optarg, "gateway") == 0) shape = SG_SHAPE_GATEWAY;
            else if (strcmp(optarg, "dashboard") == 0) shape = SG_SHAPE_DASHBOARD;
            else if (strcmp(optarg, "pump") == 0) shape = SG_SHAPE_PUMP;
            else {
                fprintf(stderr,
                        "slotgated: --shape \"%s\": expected gateway, dashboard "
                        "or pump\n",
                        optarg);
                free(paths);
                return EXIT_USAGE;
            }
            break;
        case 'k': check_only = 1; break;
        case 'S': strict = 1; break;
        case 'C': connect = 1; break;
        case 'v': printf("slotgated %s\n", sg_version()); free(paths); return 0;
        case 'h': usage(stdout); free(paths); return 0;
        default: usage(stderr); free(paths); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slotgated: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        free(paths);
        return EXIT_USAGE;
    }
    if (!check_only && (strict || connect || npaths > 1)) {
        fprintf(stderr, "slotgated: %s goes with --check (slotgated serves one settings "
                "file)\n", strict ? "--strict" : connect ? "--connect" : "-c given twice");
        free(paths);
        return EXIT_USAGE;
    }
    /* Warnings are part of the dumps: with --check, log only errors. */
    log_setup(SG_LOG_ERROR, 0, 0);
    if (check_only) {
        rc = check(paths, npaths, shape, strict, connect);
        free(paths);
        return rc;
    }
    cfg = sg_config_new();
    ds = sg_daemon_settings_new();
    if (cfg == NULL || ds == NULL) {
        fprintf(stderr, "slotgated: out of memory\n");
        sg_config_free(cfg);
        sg_daemon_settings_free(ds);
        free(paths);
        return 1;
    }
    rc = sg_config_load(cfg, paths[0], shape, NULL);
    if (rc != SG_OK) fprintf(stderr, "slotgated: %s\n", sg_errmsg(cfg));
    if (rc != SG_EIO && rc != SG_EJSON && rc != SG_ENOMEM) {
        int dsrc = sg_daemon_settings_load(ds, paths[0], NULL);
        if (dsrc != SG_OK) fprintf(stderr, "slotgated: %s\n", sg_errmsg(ds));
        if (rc == SG_OK && dsrc == SG_OK) rc = serve(cfg, ds, paths[0]);
        else rc = 1;
    } else {
        rc = 1;
    }
    sg_config_free(cfg);
    sg_daemon_settings_free(ds);
    free(paths);
    return rc;
}
