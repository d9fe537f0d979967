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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
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
            "usage: slotgated [-c FILE] [--shape SHAPE] [--check]\n"
            "       slotgated --version | --help\n"
            "\n"
            "Serves Redis clients in front of the storage the settings name, until\n"
            "SIGTERM or SIGINT (in-flight commands finish first); SIGHUP reads the\n"
            "settings again: users, passwords, policy scripts, limits and the TLS\n"
            "certificate change without dropping clients (all of it or none). With\n"
            "the metrics setting, http://ADDR/metrics (Prometheus) and /health (200\n"
            "once every upstream's slot map is full) are served.\n"
            "\n"
            "  -c, --config FILE  a Tyk settings file: tyk.conf, tyk_analytics.conf\n"
            "                     or pump.conf (without it: the environment alone)\n"
            "  --shape SHAPE      gateway, dashboard or pump (default: told from\n"
            "                     the file's keys, or from the TYK_* variables set)\n"
            "  --check            print the effective settings and where each came\n"
            "                     from, or the error; exit 0 when they are valid\n"
            "  -v, --version      print the version\n"
            "  -h, --help         this text\n"
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
        fprintf(stderr, "slotgated: user %s could become root again\n", ds->user);
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
 * back &o (the first member). */
typedef struct built {
    sg_serve_opts o;
    sg_daemon_settings *ds; /* owned by a reload's options; the first are main's */
    sg_config *storage;     /* a reload's storage settings (o.storage), owned */
    const char **listen;
    sg_serve_user *users;
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
    o->metrics = ds->metrics ? ds->metrics->text : NULL;
    o->shutdown_timeout = (int)ds->shutdown_timeout;
    return 0;
}

/* What a reload needs: the file the settings came from, and the settings
 * serving started with. */
typedef struct served {
    const char *path;
    sg_daemon_settings *first;
    sg_config *cfg; /* the storage settings serving started with */
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
                                       "log_level", "syslog", "user", NULL};
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

/* Storage settings the workers cannot take while serving: a reload that
 * changes one says so. The credentials (username, password,
 * sentinel_password) are taken. 0 when the upstreams are the same ones. */
static int storage_restart_only(sg_config *first, sg_config *now) {
    static const char *const keys[] = {
        "mode", "addresses", "master_name", "database", "optimisation_max_idle",
        "optimisation_max_active", "timeout", "use_ssl", "ssl_insecure_skip_verify", "ca_file",
        "cert_file", "key_file", "tls_min_version", "tls_max_version", NULL};
    int u, i, n = sg_config_upstream_count(first);
    if (sg_config_upstream_count(now) != n) {
        sg_log(SG_LOG_WARN, "SIGHUP: the storage upstreams changed (%d -> %d): it takes a "
               "restart; the running ones and their credentials stay", n,
               sg_config_upstream_count(now));
        return -1;
    }
    for (u = 0; u < n; u++) {
        const char *name = sg_config_upstream_name(first, u), *a, *b;
        if (sg_config_get(now, name, "mode", 0, &a, NULL) != SG_OK) {
            sg_log(SG_LOG_WARN, "SIGHUP: the storage upstream \"%s\" is gone: it takes a "
                   "restart; the running ones and their credentials stay", name);
            return -1;
        }
        for (i = 0; keys[i]; i++) {
            if (sg_config_get(first, name, keys[i], 0, &a, NULL) != SG_OK ||
                sg_config_get(now, name, keys[i], 0, &b, NULL) != SG_OK)
                continue;
            if (strcmp(a ? a : "", b ? b : "") != 0)
                sg_log(SG_LOG_WARN, "SIGHUP: storage %s%s%s changed (%s -> %s): it takes a "
                       "restart; the running value stays", strcmp(name, "default") ? name : "",
                       strcmp(name, "default") ? " " : "", keys[i], a ? a : "", b ? b : "");
        }
    }
    return 0;
}

/* The storage settings read again for a reload: NULL (logged) when they
 * cannot be, or the upstreams are not the same ones. */
static sg_config *reload_storage(served *sv, char *err, size_t errlen) {
    sg_config *cfg = sg_config_new();
    int i;
    if (cfg == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (sg_config_load(cfg, sv->path, sg_config_shape_of(sv->cfg), NULL) != SG_OK) {
        snprintf(err, errlen, "%s", sg_errmsg(cfg));
        sg_config_free(cfg);
        return NULL;
    }
    for (i = 0; i < sg_config_warning_count(cfg); i++)
        sg_log(SG_LOG_WARN, "SIGHUP: %s", sg_config_warning(cfg, i));
    if (storage_restart_only(sv->cfg, cfg) != 0) {
        sg_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* SIGHUP (the main thread): the daemon's settings read again from the same
 * file and environment. */
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
    for (i = 0; i < sg_daemon_settings_warning_count(ds); i++)
        sg_log(SG_LOG_WARN, "SIGHUP: %s", sg_daemon_settings_warning(ds, i));
    /* a storage file that no longer reads fails the reload as a bad
     * daemon setting does; other upstreams only keep their credentials */
    err[0] = '\0';
    if ((storage = reload_storage(sv, err, errlen)) == NULL && err[0]) {
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
    b->storage = storage;
    b->o.storage = storage;
    warn_restart_only(sv->first, ds);
    return &b->o;
}

static void free_reloaded(void *ud, sg_serve_opts *o) {
    built *b = (built *)o;
    (void)ud;
    built_clear(b);
    sg_config_free(b->storage);
    sg_daemon_settings_free(b->ds);
    free(b);
}

/* Serves with the settings read; the exit status. */
static int serve(sg_config *cfg, sg_daemon_settings *ds, const char *path) {
    built b;
    served sv = {path, ds, cfg};
    char err[SG_ERRMSG_MAX];
    int rc;
    log_setup(ds->log_level, ds->syslog);
    if (build(&b, ds, has_tls(ds), err, sizeof err) != 0) {
        fprintf(stderr, "slotgated: %s\n", err);
        return 1;
    }
    b.o.ready = on_ready;
    b.o.ready_ud = ds;
    b.o.reload = reload_settings;
    b.o.free_opts = free_reloaded;
    b.o.reload_ud = &sv;
    rc = sg_serve(cfg, &b.o, err, sizeof err);
    if (rc != 0) log_fatal("%s", err);
    built_clear(&b);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"shape", required_argument, NULL, 's'},
        {"check", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int shape = SG_SHAPE_AUTO, check = 0, c, rc, dsrc = SG_EINVAL;
    sg_config *cfg;
    sg_daemon_settings *ds;

    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 's':
            if (strcmp(optarg, "gateway") == 0) shape = SG_SHAPE_GATEWAY;
            else if (strcmp(optarg, "dashboard") == 0) shape = SG_SHAPE_DASHBOARD;
            else if (strcmp(optarg, "pump") == 0) shape = SG_SHAPE_PUMP;
            else {
                fprintf(stderr,
                        "slotgated: --shape \"%s\": expected gateway, dashboard "
                        "or pump\n",
                        optarg);
                return 2;
            }
            break;
        case 'k': check = 1; break;
        case 'v': printf("slotgated %s\n", sg_version()); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slotgated: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    /* Warnings are part of the dumps: with --check, log only errors. */
    log_setup(SG_LOG_ERROR, 0);
    cfg = sg_config_new();
    ds = sg_daemon_settings_new();
    if (cfg == NULL || ds == NULL) {
        fprintf(stderr, "slotgated: out of memory\n");
        sg_config_free(cfg);
        sg_daemon_settings_free(ds);
        return 1;
    }
    /* Both are read, so one run names the first bad setting of each; a file
     * that cannot be read or parsed is said once. */
    rc = sg_config_load(cfg, path, shape, NULL);
    if (rc != SG_OK) fprintf(stderr, "slotgated: %s\n", sg_errmsg(cfg));
    if (rc != SG_EIO && rc != SG_EJSON && rc != SG_ENOMEM) {
        dsrc = sg_daemon_settings_load(ds, path, NULL);
        if (dsrc != SG_OK) fprintf(stderr, "slotgated: %s\n", sg_errmsg(ds));
    }
    if (rc == SG_OK && dsrc == SG_OK && !check) {
        rc = serve(cfg, ds, path);
        sg_config_free(cfg);
        sg_daemon_settings_free(ds);
        return rc;
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
    sg_config_free(cfg);
    sg_daemon_settings_free(ds);
    return rc == SG_OK && dsrc == SG_OK ? 0 : 1;
}
