/*
 * client.c — the public client API over the engine: creating a client from
 * an upstream's settings, connecting, async commands on the caller's
 * event_base, blocking commands and pipelines on a private one (the same
 * engine, so TLS, redirects and pools have one code path), and statistics.
 */
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define SG_DEFAULT_MAX_REDIRECTS 3
#define SG_DEFAULT_MAX_RETRIES 8

/* ---- life ------------------------------------------------------------------------ */

static int copy_settings(sg_client *c, const sg_storage *st) {
    size_t i;
    c->mode = st->mode;
    c->net.timeout_ms = (int)(st->timeout * 1000);
    c->max_active = (int)st->max_active;
    c->max_idle = (int)st->max_idle;
    c->database = st->database;
    c->net.tls_skip_verify = st->skip_verify;
#define DUP(dst, src)                                                          \
    if ((src) && ((dst) = sg_strdup(src)) == NULL) return SG_ENOMEM;
    DUP(c->name, st->name);
    DUP(c->net.username, st->f[SG_F_USERNAME].s);
    DUP(c->net.password, st->f[SG_F_PASSWORD].s);
    DUP(c->net.sentinel_password, st->f[SG_F_SENTINEL_PASSWORD].s);
    DUP(c->master_name, st->f[SG_F_MASTER_NAME].s);
#undef DUP
    if ((c->seeds = sg_calloc(st->naddrs ? st->naddrs : 1, sizeof *c->seeds)) == NULL)
        return SG_ENOMEM;
    for (i = 0; i < st->naddrs; i++) {
        if ((c->seeds[i] = sg_strdup(st->addrs[i])) == NULL) return SG_ENOMEM;
        c->nseeds++;
    }
    return SG_OK;
}

/* New credentials for the connections opened from now on (the gateway's
 * reload). Either all three change or none. */
int sg_client_take_credentials(sg_client *c, const sg_storage *st) {
    const char *src[3] = {st->f[SG_F_USERNAME].s, st->f[SG_F_PASSWORD].s,
                          st->f[SG_F_SENTINEL_PASSWORD].s};
    char **dst[3] = {&c->net.username, &c->net.password, &c->net.sentinel_password}, *cp[3] = {0};
    int i;
    for (i = 0; i < 3; i++) {
        if (src[i] && (cp[i] = sg_strdup(src[i])) == NULL) {
            while (i-- > 0) sg_free(cp[i]);
            return SG_ENOMEM;
        }
    }
    for (i = 0; i < 3; i++) {
        sg_free(*dst[i]);
        *dst[i] = cp[i];
    }
    return SG_OK;
}

/* Whether st's seeds (or Sentinel master name) are not the client's. */
static int seeds_changed(const sg_client *c, const sg_storage *st) {
    const char *mn = st->f[SG_F_MASTER_NAME].s;
    size_t i;
    if ((size_t)c->nseeds != st->naddrs) return 1;
    for (i = 0; i < st->naddrs; i++)
        if (strcmp(c->seeds[i], st->addrs[i]) != 0) return 1;
    return strcmp(c->master_name ? c->master_name : "", mn ? mn : "") != 0;
}

static void free_strings(char **v, int n) {
    while (n-- > 0) sg_free(v[n]);
    sg_free(v);
}

/* A reload. What cannot change under connections already open is refused:
 * the mode, TLS or not (a TLS cluster announces other ports to TLS clients),
 * and the database outside a cluster (connections would write to two).
 * The rest is taken for what starts from now on: the seeds (the map is asked
 * of them at once; the map in force serves meanwhile), the pool sizes, the
 * timeout, the credentials and the TLS context, made again only when the
 * files' contents or the TLS settings changed (their digest). */
int sg_client_take_settings(sg_client *c, const sg_storage *st, int check_only) {
    unsigned char digest[SG_TLS_DIGEST_LEN];
    SSL_CTX *ssl = NULL;
    char **seeds = NULL, *master = NULL;
    const char *mn = st->f[SG_F_MASTER_NAME].s;
    int n = 0, reseed, rc;
    if (st->mode != c->mode)
        return sg_seterr(&c->err, SG_EINVAL, "upstream %s: mode %s -> %s cannot change while "
                         "serving", c->name, sg_mode_name(c->mode), sg_mode_name(st->mode));
    if (!st->use_ssl != !c->net.ssl)
        return sg_seterr(&c->err, SG_EINVAL, "upstream %s: use_ssl %s -> %s cannot change "
                         "while serving (the nodes' ports differ for TLS)", c->name,
                         c->net.ssl ? "true" : "false", st->use_ssl ? "true" : "false");
    if (c->mode != SG_MODE_CLUSTER && st->database != c->database)
        return sg_seterr(&c->err, SG_EINVAL, "upstream %s: database %lld -> %lld cannot change "
                         "while serving (open connections have selected %lld)", c->name,
                         c->database, st->database, c->database);
    if (check_only) return SG_OK;
    if (st->use_ssl) { /* a new context only when what it is made of changed */
        if (st->tls_ctx) memcpy(digest, st->tls_digest, sizeof digest);
        else if (sg_tls_digest(st, digest, &c->err) != SG_OK) return c->err.code;
        if (memcmp(digest, c->tls_digest, sizeof digest) != 0) {
            if (st->tls_ctx && SSL_CTX_up_ref(st->tls_ctx)) ssl = st->tls_ctx;
            else if (st->tls_ctx) return sg_seterr(&c->err, SG_ENOMEM, "out of memory");
            else if ((ssl = sg_tls_context(st, digest, &c->err)) == NULL) return c->err.code;
        }
    }
    if ((reseed = seeds_changed(c, st)) != 0) {
        size_t i;
        if ((seeds = sg_calloc(st->naddrs ? st->naddrs : 1, sizeof *seeds)) == NULL ||
            (mn && (master = sg_strdup(mn)) == NULL))
            goto oom;
        for (i = 0; i < st->naddrs; i++, n++)
            if ((seeds[i] = sg_strdup(st->addrs[i])) == NULL) goto oom;
    }
    if (sg_client_take_credentials(c, st) != SG_OK) goto oom;
    /* nothing fails from here on but the new seeds' nodes */
    c->net.timeout_ms = (int)(st->timeout * 1000);
    c->max_active = (int)st->max_active;
    c->max_idle = (int)st->max_idle;
    if (ssl) {
        SSL_CTX_free(c->net.ssl); /* the connections open hold their own references */
        c->net.ssl = ssl;
        c->net.tls_skip_verify = st->skip_verify;
        memcpy(c->tls_digest, digest, sizeof digest);
    }
    sg_cluster_trim_pools(c);
    if (!reseed) return SG_OK;
    free_strings(c->seeds, c->nseeds);
    sg_free(c->master_name);
    c->seeds = seeds;
    c->nseeds = n;
    c->master_name = master;
    if ((rc = sg_cluster_reseed(c)) != SG_OK)
        return sg_seterr(&c->err, rc, "upstream %s: out of memory adding the seeds", c->name);
    return SG_OK;
oom:
    free_strings(seeds, n);
    sg_free(master);
    SSL_CTX_free(ssl);
    return sg_seterr(&c->err, SG_ENOMEM, "upstream %s: out of memory", c->name);
}

int sg_client_reload(sg_client *c, const sg_config *cfg) {
    const sg_storage *st = cfg ? sg_config_upstream(cfg, c->name ? c->name : "default") : NULL;
    if (st == NULL)
        return sg_seterr(&c->err, SG_EINVAL, "the new settings have no upstream \"%s\"",
                         c->name ? c->name : "default");
    if (sg_client_take_settings(c, st, 1) != SG_OK) return c->err.code;
    if (sg_client_take_settings(c, st, 0) != SG_OK) return c->err.code;
    sg_clearerr(&c->err);
    return SG_OK;
}

void sg_client_limits(sg_client *c, int *max_active, int *max_idle, int *timeout_ms) {
    if (max_active) *max_active = c->max_active;
    if (max_idle) *max_idle = c->max_idle;
    if (timeout_ms) *timeout_ms = c->net.timeout_ms;
}

/* A write to a connection the server reset raises SIGPIPE, which kills a
 * process by default: ignore it, unless the host set a handler of its own. */
static void ignore_sigpipe(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

/* Batching: the turn of the loop is over; what it queued leaves. */
static void on_flush(evutil_socket_t fd, short what, void *arg) {
    sg_client *c = arg;
    (void)fd;
    (void)what;
    c->net.flush_pending = 0;
    sg_client_flush(c);
}

sg_client *sg_client_new(const sg_config *cfg, const char *upstream, struct event_base *base) {
    sg_client *c = sg_calloc(1, sizeof *c);
    const sg_storage *st;
    if (c == NULL) return NULL;
    ignore_sigpipe();
    sg_router_attach(c);
    c->max_redirects = SG_DEFAULT_MAX_REDIRECTS;
    c->max_retries = SG_DEFAULT_MAX_RETRIES;
    c->read_policy = SG_READ_MASTER;
    if (cfg == NULL) {
        sg_seterr(&c->err, SG_EINVAL, "no settings given");
        return c;
    }
    if ((st = sg_config_upstream(cfg, upstream ? upstream : "default")) == NULL) {
        sg_seterr(&c->err, SG_EINVAL, "no upstream \"%s\" in the settings",
                  upstream ? upstream : "default");
        return c;
    }
    if (copy_settings(c, st) != SG_OK) {
        sg_seterr(&c->err, SG_ENOMEM, "out of memory copying the settings");
        return c;
    }
    if (base == NULL) {
        if ((c->net.base = event_base_new()) == NULL) {
            sg_seterr(&c->err, SG_ENOMEM, "cannot create an event base");
            return c;
        }
        c->own_base = 1;
    } else {
        c->net.base = base;
    }
    c->net.dns = evdns_base_new(c->net.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (c->net.dns == NULL)
        c->net.dns = evdns_base_new(c->net.base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (c->net.dns == NULL) {
        sg_seterr(&c->err, SG_ENOMEM, "cannot create a DNS resolver");
        return c;
    }
    if (st->use_ssl && st->tls_ctx) { /* made once for every client (sg_config_load_tls) */
        SSL_CTX_up_ref(st->tls_ctx);
        c->net.ssl = st->tls_ctx;
        memcpy(c->tls_digest, st->tls_digest, sizeof c->tls_digest);
    } else if (st->use_ssl && (c->net.ssl = sg_tls_context(st, c->tls_digest, &c->err)) == NULL) {
        return c;
    }
    if (!c->own_base && (c->net.flush_ev = event_new(c->net.base, -1, 0, on_flush, c)) == NULL) {
        sg_seterr(&c->err, SG_ENOMEM, "out of memory creating an event");
        return c;
    }
    if (sg_cluster_start(c) != SG_OK) return c;
    return c;
}

int sg_client_set_batching(sg_client *c, int on) {
    if (c == NULL || c->net.flush_ev == NULL)
        return c ? sg_seterr(&c->err, SG_EINVAL, "batching needs an asynchronous client")
                 : SG_EINVAL;
    if (!on && c->net.batching) sg_client_flush(c);
    c->net.batching = on != 0;
    return SG_OK;
}

void sg_client_free(sg_client *c) {
    int i;
    if (c == NULL) return;
    c->net.freeing = 1;
    if (c->nodes) {
        sg_req *pending = c->pending, *retrying = c->retrying, *r;
        c->pending = c->pending_tail = c->retrying = NULL;
        for (i = 0; i < c->nnodes; i++)
            sg_node_fail_waiters(c->nodes[i], SG_ECLOSED, "client closed");
        sg_req_fail_list(pending, SG_ECLOSED, "client closed");
        for (r = retrying; r; r = r->next) {
            if (r->timer) evtimer_del(r->timer); /* a held request has none */
            r->in_retry = 0;
        }
        sg_req_fail_list(retrying, SG_ECLOSED, "client closed");
    }
    sg_cluster_free(c); /* fails what is in flight on connections */
    while (c->free_reqs) {
        sg_req *r = c->free_reqs;
        c->free_reqs = r->next;
        sg_free(r);
    }
    if (c->net.flush_ev) event_free(c->net.flush_ev);
    if (c->release_ev) event_free(c->release_ev);
    sg_router_free_durable(c);
    sg_free(c->retried);
    sg_buf_free(&c->refresh_errors);
    if (c->net.dns) evdns_base_free(c->net.dns, 0);
    if (c->net.ssl) SSL_CTX_free(c->net.ssl);
    if (c->own_base && c->net.base) event_base_free(c->net.base);
    for (i = 0; i < c->nseeds; i++) sg_free(c->seeds[i]);
    sg_free(c->seeds);
    sg_free(c->name);
    sg_free(c->net.username);
    sg_free(c->net.password);
    sg_free(c->net.sentinel_password);
    sg_free(c->master_name);
    sg_free(c);
}

/* Refuses calls on a client whose creation failed. */
static int usable_client(sg_client *c) { return c->net.base != NULL && c->nseeds > 0 && c->tick; }

int sg_client_set_protocol(sg_client *c, int proto) {
    int i;
    if (proto != 2 && proto != 3)
        return sg_seterr(&c->err, SG_EINVAL, "protocol %d: 2 or 3 expected", proto);
    for (i = 0; i < c->nnodes; i++)
        if (c->nodes[i]->nconns > 0)
            return sg_seterr(&c->err, SG_EINVAL,
                             "set the protocol before the client's first connection");
    if (c->sub)
        return sg_seterr(&c->err, SG_EINVAL,
                         "set the protocol before the client's first connection");
    c->net.proto = proto == 3 ? 3 : 0;
    return SG_OK;
}

int sg_client_set_read_policy(sg_client *c, int policy) {
    int old = c->read_policy;
    if (policy >= SG_READ_MASTER && policy <= SG_READ_ANY) c->read_policy = policy;
    return old;
}

int sg_client_set_max_redirects(sg_client *c, int n) {
    int old = c->max_redirects;
    if (n >= 0) c->max_redirects = n;
    return old;
}

/* ---- blocking calls ---------------------------------------------------------------- */

void sg_waiter_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    sg_waiter *w = ud;
    (void)c;
    w->done = 1;
    w->reply = reply;
    w->status = status;
    if (status != SG_OK) snprintf(w->msg, sizeof w->msg, "%s", errmsg ? errmsg : "");
}

/* Runs the private loop until *done. */
static void run_until(sg_client *c, const int *done) {
    while (!*done) event_base_loop(c->net.base, EVLOOP_ONCE);
}

int sg_client_connect(sg_client *c) {
    sg_waiter w = {0};
    if (c->err.code != SG_OK && !usable_client(c)) return c->err.code;
    sg_clearerr(&c->err);
    if (!c->own_base) {
        c->submitting++; /* a discovery that fails at once calls back from the loop */
        if (c->mode != SG_MODE_SINGLE) sg_cluster_discover(c);
        c->submitting--;
        return SG_OK;
    }
    /* PING through the normal path: discovery, handshake, and the node. */
    if (sg_router_submit(c, 1, (const char *const[]){"PING"}, NULL, sg_waiter_reply, &w, NULL) !=
        SG_OK)
        return c->err.code;
    run_until(c, &w.done);
    if (w.status != SG_OK) return sg_seterr(&c->err, w.status, "%s", w.msg);
    if (w.reply->type == SG_REPLY_ERROR) {
        int code = strstr(w.reply->str, "NOAUTH") || strstr(w.reply->str, "NOPERM") ? SG_EAUTH
                                                                                    : SG_EREPLY;
        sg_seterr(&c->err, code, "PING refused: %s", w.reply->str);
        sg_reply_free(w.reply);
        return code;
    }
    sg_reply_free(w.reply);
    return SG_OK;
}

/* A call's options as the router takes them; SG_EINVAL (set on c) when out of range. */
static int call_opts(sg_client *c, const sg_call_opts *o, sg_submit_opts *so) {
    memset(so, 0, sizeof *so);
    so->read_policy = -1;
    if (o == NULL) return SG_OK;
    if (o->durable < 0 || o->durable > 255 || o->durable_timeout_ms < 0)
        return sg_seterr(&c->err, SG_EINVAL,
                         "durable must be 0..255 replicas and durable_timeout_ms >= 0 (got %d, %d)",
                         o->durable, o->durable_timeout_ms);
    so->durable = o->durable;
    so->durable_ms = o->durable_timeout_ms;
    return SG_OK;
}

sg_reply *sg_client_call_argv(sg_client *c, int argc, const char *const *argv,
                              const size_t *argvlen) {
    return sg_client_call_opts(c, NULL, argc, argv, argvlen);
}

sg_reply *sg_client_call_opts(sg_client *c, const sg_call_opts *o, int argc,
                              const char *const *argv, const size_t *argvlen) {
    sg_submit_opts so;
    sg_waiter w = {0};
    if (!usable_client(c)) {
        if (c->err.code == SG_OK) sg_seterr(&c->err, SG_EINVAL, "client not usable");
        return NULL;
    }
    if (!c->own_base) {
        sg_seterr(&c->err, SG_EINVAL,
                  "blocking calls need a blocking client (sg_client_new with no event base)");
        return NULL;
    }
    /* a Sentinel's +switch-master may have come in while nobody ran the loop */
    if (c->sub) event_base_loop(c->net.base, EVLOOP_NONBLOCK);
    if (call_opts(c, o, &so) != SG_OK ||
        sg_router_submit(c, argc, argv, argvlen, sg_waiter_reply, &w, o ? &so : NULL) != SG_OK)
        return NULL;
    run_until(c, &w.done);
    if (w.status != SG_OK) {
        sg_seterr(&c->err, w.status, "%s", w.msg);
        return NULL;
    }
    sg_clearerr(&c->err);
    return w.reply;
}

/* Parses the RESP multibulk hiredis's formatter made into argv, pointing into
 * cmd. Returns argc, -1 when malformed, or -2 when out of memory. */
static int resp_to_argv(char *cmd, int len, const char ***argv, size_t **argvlen) {
    char *p = cmd, *end = cmd + len;
    int argc, i;
    if (len < 4 || *p != '*') return -1;
    argc = atoi(p + 1);
    if (argc < 1 || (p = memchr(p, '\n', (size_t)(end - p))) == NULL) return -1;
    p++;
    *argv = sg_malloc((size_t)argc * sizeof **argv);
    *argvlen = sg_malloc((size_t)argc * sizeof **argvlen);
    if (*argv == NULL || *argvlen == NULL) {
        sg_free(*argv);
        sg_free(*argvlen);
        return -2; /* out of memory */
    }
    for (i = 0; i < argc; i++) {
        long n;
        if (p >= end || *p != '$') goto bad;
        n = atol(p + 1);
        if ((p = memchr(p, '\n', (size_t)(end - p))) == NULL) goto bad;
        p++;
        if (n < 0 || p + n + 2 > end) goto bad;
        (*argv)[i] = p;
        (*argvlen)[i] = (size_t)n;
        p += n + 2;
    }
    return argc;
bad:
    sg_free(*argv);
    sg_free(*argvlen);
    return -1;
}

/* Formats fmt like hiredis and hands the argv to fn. */
typedef int (*argv_fn)(void *ctx, int argc, const char *const *argv, const size_t *argvlen);

static int with_format(sg_client *c, const char *fmt, va_list ap, argv_fn fn, void *ctx) {
    char *cmd = NULL;
    const char **argv = NULL;
    size_t *argvlen = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap), argc, rc;
    if (len < 0) return sg_seterr(&c->err, SG_EINVAL, "cannot format the command \"%.80s\"", fmt);
    argc = resp_to_argv(cmd, len, &argv, &argvlen);
    if (argc < 0) {
        free(cmd);
        if (argc == -2)
            return sg_seterr(&c->err, SG_ENOMEM, "out of memory formatting the command \"%.80s\"",
                             fmt);
        return sg_seterr(&c->err, SG_EINVAL, "the command \"%.80s\" is empty", fmt);
    }
    rc = fn(ctx, argc, argv, argvlen);
    sg_free(argv);
    sg_free(argvlen);
    free(cmd); /* hiredis allocated it */
    return rc;
}

typedef struct call_ctx {
    sg_client *c;
    sg_reply *reply;
    sg_reply_fn fn;
    void *ud;
} call_ctx;

static int call_fn(void *ctx, int argc, const char *const *argv, const size_t *argvlen) {
    call_ctx *cc = ctx;
    cc->reply = sg_client_call_argv(cc->c, argc, argv, argvlen);
    return cc->reply ? SG_OK : cc->c->err.code;
}

sg_reply *sg_client_call(sg_client *c, const char *fmt, ...) {
    call_ctx cc = {c, NULL, NULL, NULL};
    va_list ap;
    va_start(ap, fmt);
    with_format(c, fmt, ap, call_fn, &cc);
    va_end(ap);
    return cc.reply;
}

/* ---- async calls -------------------------------------------------------------------- */

int sg_client_send_argv(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                        sg_reply_fn fn, void *ud) {
    return sg_client_send_opts(c, NULL, argc, argv, argvlen, fn, ud);
}

int sg_client_send_opts(sg_client *c, const sg_call_opts *o, int argc, const char *const *argv,
                        const size_t *argvlen, sg_reply_fn fn, void *ud) {
    sg_submit_opts so;
    int rc;
    if (!usable_client(c)) {
        if (c->err.code == SG_OK) sg_seterr(&c->err, SG_EINVAL, "client not usable");
        return c->err.code;
    }
    if (fn == NULL) return sg_seterr(&c->err, SG_EINVAL, "no callback given");
    if ((rc = call_opts(c, o, &so)) != SG_OK) return rc;
    return sg_router_submit(c, argc, argv, argvlen, fn, ud, o ? &so : NULL);
}

int sg_client_send_node(sg_client *c, int i, int argc, const char *const *argv,
                        const size_t *argvlen, sg_reply_fn fn, void *ud) {
    size_t small[16], *lens = small;
    int rc, k;
    if (!usable_client(c)) {
        if (c->err.code == SG_OK) sg_seterr(&c->err, SG_EINVAL, "client not usable");
        return c->err.code;
    }
    if (fn == NULL) return sg_seterr(&c->err, SG_EINVAL, "no callback given");
    if (i < 0 || i >= c->nnodes)
        return sg_seterr(&c->err, SG_EINVAL, "no node %d (the client knows %d)", i, c->nnodes);
    if (argc < 1 || argv == NULL)
        return sg_seterr(&c->err, SG_EINVAL, "a command needs at least its name");
    if (argvlen == NULL) {
        if (argc > 16 && (lens = sg_malloc((size_t)argc * sizeof *lens)) == NULL)
            return sg_seterr(&c->err, SG_ENOMEM, "out of memory sending a command");
        for (k = 0; k < argc; k++) lens[k] = strlen(argv[k]);
        argvlen = lens;
    }
    rc = sg_router_submit_node(c, c->nodes[i], argc, argv, argvlen, fn, ud);
    if (lens != small) sg_free(lens);
    return rc;
}

static int send_fn(void *ctx, int argc, const char *const *argv, const size_t *argvlen) {
    call_ctx *cc = ctx;
    return sg_client_send_argv(cc->c, argc, argv, argvlen, cc->fn, cc->ud);
}

int sg_client_send(sg_client *c, sg_reply_fn fn, void *ud, const char *fmt, ...) {
    call_ctx cc = {c, NULL, fn, ud};
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = with_format(c, fmt, ap, send_fn, &cc);
    va_end(ap);
    return rc;
}

/* ---- pipelines ------------------------------------------------------------------------ */

typedef struct pipe_cmd {
    int argc;
    char *buf;          /* the arguments, back to back */
    size_t *argvlen;
    sg_reply *reply;
    int status;
    char *errmsg;
    int done;
} pipe_cmd;

struct sg_pipeline {
    sg_error err; /* first: sg_errcode()/sg_errmsg() read it (a copy of the client's) */
    sg_client *c;
    pipe_cmd *cmds;
    size_t n, cap;
    size_t remaining;
};

sg_pipeline *sg_pipeline_new(sg_client *c) {
    sg_pipeline *p = sg_calloc(1, sizeof *p);
    if (p) p->c = c;
    return p;
}

static void clear_outcome(pipe_cmd *pc) {
    sg_reply_free(pc->reply);
    sg_free(pc->errmsg);
    pc->reply = NULL;
    pc->errmsg = NULL;
    pc->status = SG_OK;
    pc->done = 0;
}

void sg_pipeline_reset(sg_pipeline *p) {
    size_t i;
    for (i = 0; i < p->n; i++) {
        clear_outcome(&p->cmds[i]);
        sg_free(p->cmds[i].buf);
        sg_free(p->cmds[i].argvlen);
    }
    p->n = 0;
}

void sg_pipeline_free(sg_pipeline *p) {
    if (p == NULL) return;
    sg_pipeline_reset(p);
    sg_free(p->cmds);
    sg_free(p);
}

static int pipe_rc(sg_pipeline *p, int rc);

static int append_argv(sg_pipeline *p, int argc, const char *const *argv, const size_t *argvlen) {
    pipe_cmd *pc;
    size_t total = 0, off = 0;
    int i;
    if (argc < 1) return sg_seterr(&p->c->err, SG_EINVAL, "a command needs at least its name");
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 16;
        pipe_cmd *nc = sg_realloc(p->cmds, ncap * sizeof *nc);
        if (nc == NULL) return sg_seterr(&p->c->err, SG_ENOMEM, "out of memory appending");
        p->cmds = nc;
        p->cap = ncap;
    }
    pc = &p->cmds[p->n];
    memset(pc, 0, sizeof *pc);
    if ((pc->argvlen = sg_malloc((size_t)argc * sizeof *pc->argvlen)) == NULL)
        return sg_seterr(&p->c->err, SG_ENOMEM, "out of memory appending");
    for (i = 0; i < argc; i++) total += pc->argvlen[i] = argvlen ? argvlen[i] : strlen(argv[i]);
    if ((pc->buf = sg_malloc(total ? total : 1)) == NULL) {
        sg_free(pc->argvlen);
        return sg_seterr(&p->c->err, SG_ENOMEM, "out of memory appending");
    }
    for (i = 0; i < argc; i++) {
        memcpy(pc->buf + off, argv[i], pc->argvlen[i]);
        off += pc->argvlen[i];
    }
    pc->argc = argc;
    p->n++;
    return SG_OK;
}

static int append_fn(void *ctx, int argc, const char *const *argv, const size_t *argvlen) {
    return sg_pipeline_append_argv(ctx, argc, argv, argvlen);
}

static int append_argv(sg_pipeline *p, int argc, const char *const *argv, const size_t *argvlen);

int sg_pipeline_append_argv(sg_pipeline *p, int argc, const char *const *argv,
                            const size_t *argvlen) {
    return pipe_rc(p, append_argv(p, argc, argv, argvlen));
}

int sg_pipeline_append(sg_pipeline *p, const char *fmt, ...) {
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = with_format(p->c, fmt, ap, append_fn, p);
    va_end(ap);
    return rc;
}

static void on_pipe_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg,
                          void *ud) {
    pipe_cmd *pc = ud;
    sg_pipeline *p = NULL;
    (void)c;
    pc->reply = reply;
    pc->status = status;
    if (status != SG_OK) pc->errmsg = sg_strdup(errmsg ? errmsg : sg_strerror(status));
    pc->done = 1;
    (void)p;
}

/* Mirrors the client's error on the pipeline handle. */
static int pipe_rc(sg_pipeline *p, int rc) {
    p->err = p->c->err;
    return rc;
}

int sg_pipeline_exec(sg_pipeline *p) {
    sg_client *c = p->c;
    size_t i, j;
    const char **argv = NULL;
    int maxargc = 0, rc = SG_OK;
    if (!usable_client(c) || !c->own_base)
        return pipe_rc(p, sg_seterr(&c->err, SG_EINVAL, "pipelines need a usable blocking client"));
    for (i = 0; i < p->n; i++) {
        clear_outcome(&p->cmds[i]);
        if (p->cmds[i].argc > maxargc) maxargc = p->cmds[i].argc;
    }
    if (p->n && (argv = sg_malloc((size_t)maxargc * sizeof *argv)) == NULL)
        return pipe_rc(p, sg_seterr(&c->err, SG_ENOMEM, "out of memory running a pipeline"));
    c->net.corked = 1; /* each node's share leaves in one write */
    for (i = 0; i < p->n; i++) {
        pipe_cmd *pc = &p->cmds[i];
        size_t off = 0;
        for (j = 0; j < (size_t)pc->argc; j++) {
            argv[j] = pc->buf + off;
            off += pc->argvlen[j];
        }
        if (sg_router_submit(c, pc->argc, argv, pc->argvlen, on_pipe_reply, pc, NULL) != SG_OK) {
            pc->done = 1;
            pc->status = c->err.code;
            pc->errmsg = sg_strdup(c->err.msg);
        }
    }
    sg_free(argv);
    c->net.corked = 0;
    sg_client_flush(c);
    /* every command completes: by reply, timeout, or failure */
    for (i = 0; i < p->n; i++) run_until(c, &p->cmds[i].done);
    sg_clearerr(&c->err);
    return pipe_rc(p, rc);
}

size_t sg_pipeline_count(const sg_pipeline *p) { return p->n; }

const sg_reply *sg_pipeline_reply(sg_pipeline *p, size_t i, int *status, const char **errmsg) {
    if (i >= p->n) {
        if (status) *status = SG_EINVAL;
        if (errmsg) *errmsg = "no such command in the pipeline";
        return NULL;
    }
    if (status) *status = p->cmds[i].done ? p->cmds[i].status : SG_EINVAL;
    if (errmsg) *errmsg = p->cmds[i].done ? p->cmds[i].errmsg : "not executed";
    return p->cmds[i].reply;
}

/* ---- statistics ----------------------------------------------------------------------------- */

int sg_client_node_count(sg_client *c) { return c->nnodes; }

int sg_client_node_stats(sg_client *c, int i, sg_node_stats *out) {
    sg_node *n;
    int k;
    if (i < 0 || i >= c->nnodes) return sg_seterr(&c->err, SG_EINVAL, "no node %d", i);
    n = c->nodes[i];
    *out = n->st;
    out->addr = n->addr;
    out->id = n->id;
    out->is_master = n->role == SG_ROLE_MASTER && n->in_map;
    out->conns = n->nconns;
    out->in_use = out->idle = 0;
    for (k = 0; k < n->nconns; k++) {
        if (n->conns[k]->pcount > 0 || n->conns[k]->exclusive) out->in_use++;
        else out->idle++;
    }
    return SG_OK;
}

uint64_t sg_client_refresh_count(sg_client *c) { return c->refreshes; }

int sg_client_coverage(sg_client *c, const char **why) {
    const sg_node *n = c->single;
    const char *w = NULL;
    int slots = 0;
    if (c->mode == SG_MODE_CLUSTER) {
        slots = c->ready ? c->covered : 0;
        if (slots == SG_SLOTS) w = NULL;
        else if (c->discovery_failed) w = c->discovery_err;
        else if (!c->ready) w = c->refreshing ? "discovering the slot map" : "no slot map yet";
        else w = "the slot map leaves slots without a master";
    } else if (c->mode == SG_MODE_SENTINEL && !c->ready) {
        w = c->discovery_failed ? c->discovery_err
            : c->refreshing     ? "asking the Sentinels for the master"
                                : "no master from the Sentinels yet";
    } else if (n == NULL) {
        w = "no node";
    } else if (n->connect_errors > 0) {
        snprintf(c->coverage_why, sizeof c->coverage_why, "%s: %s", n->addr,
                 n->last_error[0] ? n->last_error : "cannot connect");
        w = c->coverage_why;
    } else if (n->nconns == 0 && n->st.connects == 0) {
        snprintf(c->coverage_why, sizeof c->coverage_why, "%s: not connected yet", n->addr);
        w = c->coverage_why;
    } else {
        slots = SG_SLOTS;
    }
    if (why) *why = w;
    return slots;
}
