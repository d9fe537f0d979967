/*
 * gateway.c — every upstream of a settings handle behind one policy set: the
 * policies decide (deny, rewrite, TTL, upstream, read policy) and the
 * upstream's client carries the command; a reply that names rewritten keys
 * gets the client's names back (keymaps). Each upstream has two clients, one
 * per protocol spoken to the nodes: a request's context says which (a RESP3
 * session's replies must come from RESP3 connections: a map is a map). A
 * client opens connections on first use, so the RESP3 pools exist only once
 * a RESP3 request needs them.
 */
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "engine.h"
#include "policy.h"

struct sg_gateway {
    sg_error err; /* first: sg_errcode()/sg_errmsg() read it */
    struct event_base *base; /* every upstream's client runs on it */
    int own_base;            /* a blocking gateway's private base */
    sg_policy *policy;
    char **names;            /* upstream names, from the settings */
    sg_client **clients;  /* by upstream: RESP2 to the nodes */
    sg_client **clients3; /* by upstream: RESP3 to the nodes */
    int n;
    int def;              /* the index of "default" (-1: none), looked up once */
    sg_cache *cache;      /* the near cache, made when a policy first asks for it */
    size_t cache_max;     /* its bound (0: off) */
    sg_cache_stats cstats; /* its figures: read from any thread (sg_gateway_cache_stats) */
    uint64_t *covered;    /* the serials of the policies whose cache patterns it covers */
    int ncovered, capcovered;
    uint64_t cover_serial; /* the last one covered */
    sg_track_fn track;     /* the host's CLIENT TRACKING (sg_gateway_track); NULL: none */
    void *track_ud;
};

void sg_free_string(char *s) { sg_free(s); }

sg_gateway *sg_gateway_new(const sg_config *cfg, struct event_base *base) {
    sg_gateway *g = sg_calloc(1, sizeof *g);
    int i, n;
    if (g == NULL) return NULL;
    if (base == NULL) {
        if ((base = event_base_new()) == NULL) {
            sg_seterr(&g->err, SG_ENOMEM, "cannot create an event base");
            return g;
        }
        g->own_base = 1;
    }
    g->base = base;
    g->def = -1;
    g->cache_max = SG_CACHE_DEFAULT_BYTES;
    g->cstats.max_bytes = g->cache_max;
    if (cfg == NULL) {
        sg_seterr(&g->err, SG_EINVAL, "no settings given");
        return g;
    }
    n = sg_config_upstream_count(cfg);
    if ((g->names = sg_calloc((size_t)(n ? n : 1), sizeof *g->names)) == NULL ||
        (g->clients = sg_calloc((size_t)(n ? n : 1), sizeof *g->clients)) == NULL ||
        (g->clients3 = sg_calloc((size_t)(n ? n : 1), sizeof *g->clients3)) == NULL) {
        sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        return g;
    }
    /* Clients need the settings: make them all now; they connect on first use. */
    for (i = 0; i < n; i++) {
        const char *name = sg_config_upstream_name(cfg, i);
        if ((g->names[i] = sg_strdup(name)) == NULL) {
            sg_seterr(&g->err, SG_ENOMEM, "out of memory");
            return g;
        }
        g->n++;
        if (strcmp(name, "default") == 0) g->def = i;
        g->clients[i] = sg_client_new(cfg, name, base);
        g->clients3[i] = sg_client_new(cfg, name, base);
        if (g->clients[i] == NULL || g->clients3[i] == NULL) {
            sg_seterr(&g->err, SG_ENOMEM, "out of memory");
            return g;
        }
        if (sg_errcode(g->clients[i]) != SG_OK) {
            sg_seterr(&g->err, sg_errcode(g->clients[i]), "upstream %s: %s", name,
                      sg_errmsg(g->clients[i]));
            return g;
        }
        if (sg_errcode(g->clients3[i]) != SG_OK ||
            sg_client_set_protocol(g->clients3[i], 3) != SG_OK) {
            sg_seterr(&g->err, sg_errcode(g->clients3[i]), "upstream %s: %s", name,
                      sg_errmsg(g->clients3[i]));
            return g;
        }
        /* A blocking gateway's clients are blocking clients (sg_gateway_client
         * hands them out: calls and pipelines on them run the gateway's
         * private base). The gateway frees that base: see sg_gateway_free. */
        if (g->own_base) g->clients[i]->own_base = g->clients3[i]->own_base = 1;
    }
    return g;
}

void sg_gateway_free(sg_gateway *g) {
    int i;
    if (g == NULL) return;
    /* the trackers use the clients' settings; what the clients still owe
     * completes through the cache, which goes last */
    sg_cache_close_trackers(g->cache);
    for (i = 0; i < g->n; i++) {
        if (g->clients[i]) g->clients[i]->own_base = 0; /* the base is the gateway's */
        if (g->clients3 && g->clients3[i]) g->clients3[i]->own_base = 0;
        sg_client_free(g->clients[i]);
        if (g->clients3) sg_client_free(g->clients3[i]);
        sg_free(g->names[i]);
    }
    sg_free(g->clients);
    sg_free(g->clients3);
    sg_free(g->names);
    sg_free(g->covered);
    sg_cache_free(g->cache);
    if (g->own_base && g->base) event_base_free(g->base);
    sg_free(g);
}

int sg_gateway_set_cache(sg_gateway *g, size_t max_bytes) {
    g->cache_max = max_bytes;
    __atomic_store_n(&g->cstats.max_bytes, (uint64_t)max_bytes, __ATOMIC_RELAXED);
    if (g->cache) sg_cache_set_max(g->cache, max_bytes);
    return SG_OK;
}

/* The index of the upstream c serves (either protocol's client); -1: none. */
static int upstream_of(const sg_gateway *g, const sg_client *c) {
    int i;
    for (i = 0; i < g->n; i++)
        if (g->clients[i] == c || g->clients3[i] == c) return i;
    return -1;
}

/* The cache's notices, for the host: which upstream's node spoke. */
static void on_track(void *ud, sg_client *c, int event, const char *key, size_t len) {
    sg_gateway *g = ud;
    int up = upstream_of(g, c);
    if (g->track && up >= 0) g->track(g->track_ud, up, event, key, len);
}

int sg_gateway_track(sg_gateway *g, sg_track_fn fn, void *ud) {
    int i;
    /* the trackers are the near cache's: it exists from now on (bounded as
     * set; with 0 it keeps nothing, the trackers serve the host alone) */
    if (g->cache == NULL && (g->cache = sg_cache_new(&g->cstats, g->cache_max)) == NULL)
        return SG_ENOMEM;
    g->track = fn;
    g->track_ud = ud;
    sg_cache_listen(g->cache, fn ? on_track : NULL, g);
    /* every upstream: a policy may send a session's reads to any of them */
    for (i = 0; fn && i < g->n; i++) sg_cache_watch(g->cache, g->clients[i]);
    return SG_OK;
}

int sg_gateway_tracking_ready(sg_gateway *g, int upstream) {
    int i, ok = 1;
    if (g->cache == NULL || g->n == 0 || upstream >= g->n) return 0;
    if (upstream >= 0) return sg_cache_watch(g->cache, g->clients[upstream]);
    for (i = 0; i < g->n; i++) /* each asked: the missing ones are opened */
        if (!sg_cache_watch(g->cache, g->clients[i])) ok = 0;
    return ok;
}

void sg_gateway_cache_stats(const sg_gateway *g, sg_cache_stats *out) {
    const uint64_t *in = (const uint64_t *)&g->cstats;
    uint64_t *o = (uint64_t *)out;
    size_t i;
    for (i = 0; i < sizeof *out / sizeof(uint64_t); i++) o[i] = __atomic_load_n(&in[i], __ATOMIC_RELAXED);
}

/* The cache's trackers hear of the keys p's cache patterns name (once per
 * set of scripts: the daemon sets each session's own policy). */
static void cover(sg_gateway *g, const sg_policy *p) {
    uint64_t serial = sg_policy_serial(p);
    sg_buf b = {0};
    int i, n;
    g->cover_serial = serial;
    for (i = 0; i < g->ncovered; i++)
        if (g->covered[i] == serial) return;
    n = sg_policy_cache_prefixes(p, &b);
    if (n != 0) sg_cache_cover(g->cache, b.oom ? NULL : b.data, b.oom ? -1 : n);
    sg_buf_free(&b);
    if (sg_grow((void **)&g->covered, &g->capcovered, g->ncovered, sizeof *g->covered, 4) ==
        SG_OK)
        g->covered[g->ncovered++] = serial;
}

void sg_gateway_set_policy(sg_gateway *g, sg_policy *p) { g->policy = p; }

int sg_gateway_set_batching(sg_gateway *g, int on) {
    int i, rc = SG_OK;
    for (i = 0; i < g->n; i++) {
        if (g->clients[i] && sg_client_set_batching(g->clients[i], on) != SG_OK)
            rc = sg_seterr(&g->err, sg_errcode(g->clients[i]), "%s", sg_errmsg(g->clients[i]));
        if (g->clients3[i] && sg_client_set_batching(g->clients3[i], on) != SG_OK)
            rc = sg_seterr(&g->err, sg_errcode(g->clients3[i]), "%s", sg_errmsg(g->clients3[i]));
    }
    return rc;
}

int sg_gateway_unblock(sg_gateway *g, void *ud, int error) {
    int i, rc;
    for (i = 0; i < g->n; i++) {
        if (g->clients[i] && (rc = sg_client_unblock(g->clients[i], ud, error)) != SG_EINVAL)
            return rc;
        if (g->clients3[i] && (rc = sg_client_unblock(g->clients3[i], ud, error)) != SG_EINVAL)
            return rc;
    }
    return sg_seterr(&g->err, SG_EINVAL, "no blocking command of that caller is in flight");
}

int sg_gateway_set_credentials(sg_gateway *g, const sg_config *cfg) {
    const sg_storage **st = sg_calloc((size_t)(g->n ? g->n : 1), sizeof *st);
    int i, rc = SG_OK;
    if (st == NULL) return sg_seterr(&g->err, SG_ENOMEM, "out of memory");
    for (i = 0; i < g->n && rc == SG_OK; i++) /* all or nothing */
        if ((st[i] = sg_config_upstream(cfg, g->names[i])) == NULL)
            rc = sg_seterr(&g->err, SG_EINVAL, "the new settings have no upstream \"%s\"",
                           g->names[i]);
    for (i = 0; i < g->n && rc == SG_OK; i++)
        if ((g->clients[i] && sg_client_take_credentials(g->clients[i], st[i]) != SG_OK) ||
            (g->clients3[i] && sg_client_take_credentials(g->clients3[i], st[i]) != SG_OK))
            rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
    sg_free(st);
    return rc;
}

/* The client of upstream (NULL: "default") that speaks the protocol of the
 * request's context to the nodes. */
static sg_client *client_of(sg_gateway *g, const char *upstream, const sg_request_ctx *ctx) {
    int i;
    if (upstream == NULL && g->def >= 0) /* every command without a policy's choice */
        return ctx && ctx->proto == 3 ? g->clients3[g->def] : g->clients[g->def];
    if (upstream == NULL) upstream = "default";
    for (i = 0; i < g->n; i++)
        if (strcmp(g->names[i], upstream) == 0)
            return ctx && ctx->proto == 3 ? g->clients3[i] : g->clients[i];
    sg_seterr(&g->err, SG_EINVAL, "no upstream \"%s\" in the settings", upstream);
    return NULL;
}

int sg_gateway_reload(sg_gateway *g, const sg_config *cfg) {
    const sg_storage **st = sg_calloc((size_t)(g->n ? g->n : 1), sizeof *st);
    int i, k, rc = SG_OK;
    if (st == NULL) return sg_seterr(&g->err, SG_ENOMEM, "out of memory");
    if (sg_config_upstream_count(cfg) != g->n)
        rc = sg_seterr(&g->err, SG_EINVAL, "the upstreams cannot change while serving (%d -> %d)",
                       g->n, sg_config_upstream_count(cfg));
    /* every check before any change: all upstreams take the settings or none */
    for (i = 0; i < g->n && rc == SG_OK; i++) {
        if ((st[i] = sg_config_upstream(cfg, g->names[i])) == NULL) {
            rc = sg_seterr(&g->err, SG_EINVAL, "the new settings have no upstream \"%s\"",
                           g->names[i]);
            break;
        }
        for (k = 0; k < 2 && rc == SG_OK; k++) {
            sg_client *c = k ? g->clients3[i] : g->clients[i];
            if (c && sg_client_take_settings(c, st[i], 1) != SG_OK)
                rc = sg_seterr(&g->err, sg_errcode(c), "%s", sg_errmsg(c));
        }
    }
    for (i = 0; i < g->n && rc == SG_OK; i++)
        for (k = 0; k < 2 && rc == SG_OK; k++) {
            sg_client *c = k ? g->clients3[i] : g->clients[i];
            if (c && sg_client_take_settings(c, st[i], 0) != SG_OK)
                rc = sg_seterr(&g->err, sg_errcode(c), "%s", sg_errmsg(c));
        }
    sg_free(st);
    return rc;
}

sg_client *sg_gateway_client(sg_gateway *g, const char *upstream) {
    return client_of(g, upstream, NULL);
}

/* A denied command's reply: the policy's error, delivered from the loop. */
typedef struct denial {
    sg_client *c;
    sg_reply *reply;
    sg_reply_fn fn;
    void *ud;
} denial;

static void deliver_denial(evutil_socket_t fd, short what, void *arg) {
    denial *d = arg;
    (void)fd;
    (void)what;
    d->fn(d->c, d->reply, SG_OK, NULL, d->ud);
    sg_free(d);
}

/* ---- key names back ------------------------------------------------------------------ */

/* A key of the request a policy rewrote: what the node calls it, and what
 * the client called it. */
typedef struct keypair {
    const char *stored, *sent;
    size_t storedlen, sentlen;
} keypair;

struct sg_keymap {
    int shape;      /* SG_REPLY_KEYS_* of the command */
    int n;          /* pairs */
    sg_reply_fn fn; /* sg_gateway_forward's: the caller's callback and data */
    void *ud;
    keypair pair[]; /* then the names' bytes, in the same block */
};

/* The keymap of a request whose keys the decision rewrote, when its reply
 * names keys; *out stays NULL when there is nothing to name back (no such
 * reply, or no key changed). argv is the request as the client sent it; the
 * decision holds the same arguments with the keys replaced. Only commands
 * whose keys were rewritten get here, so plain commands pay nothing.
 * SG_OK or SG_ENOMEM. */
static int keymap_new(const sg_command *info, int argc, const char *const *argv,
                      const size_t *argvlen, const sg_decision *d, sg_keymap **out) {
    int small[16], *keyidx = small, nkeys, i, n = 0, shape;
    size_t bytes = 0;
    sg_keymap *m;
    char *at;
    *out = NULL;
    if (!d->rewritten || info == NULL ||
        (shape = sg_command_reply_keys(info)) == SG_REPLY_KEYS_NONE)
        return SG_OK;
    if (argc > 16 && (keyidx = sg_malloc((size_t)argc * sizeof *keyidx)) == NULL) return SG_ENOMEM;
    nkeys = sg_command_keys(info, argc, argv, argvlen, keyidx, argc);
    for (i = 0; i < nkeys; i++) {
        int ai = keyidx[i];
        if (ai >= d->argc ||
            (d->argvlen[ai] == argvlen[ai] && memcmp(d->argv[ai], argv[ai], argvlen[ai]) == 0)) {
            keyidx[i] = -1; /* as sent: nothing to name back */
            continue;
        }
        n++;
        bytes += argvlen[ai] + d->argvlen[ai];
    }
    if (n == 0) goto done;
    if ((m = sg_malloc(sizeof *m + (size_t)n * sizeof(keypair) + bytes)) == NULL) {
        if (keyidx != small) sg_free(keyidx);
        return SG_ENOMEM;
    }
    m->shape = shape;
    m->n = 0;
    m->fn = NULL;
    m->ud = NULL;
    at = (char *)(m->pair + n);
    for (i = 0; i < nkeys; i++) {
        int ai = keyidx[i];
        keypair *k = &m->pair[m->n];
        if (ai < 0) continue;
        k->stored = at;
        k->storedlen = d->argvlen[ai];
        memcpy(at, d->argv[ai], k->storedlen);
        at += k->storedlen;
        k->sent = at;
        k->sentlen = argvlen[ai];
        memcpy(at, argv[ai], k->sentlen);
        at += k->sentlen;
        m->n++;
    }
    *out = m;
done:
    if (keyidx != small) sg_free(keyidx);
    return SG_OK;
}

/* A string that is exactly a stored name becomes the name the client sent. */
static int name_back(const sg_keymap *m, sg_reply *r) {
    int i;
    if (r == NULL || r->type != SG_REPLY_STRING) return SG_OK;
    for (i = 0; i < m->n; i++) {
        const keypair *k = &m->pair[i];
        if (r->len != k->storedlen || memcmp(r->str, k->stored, r->len) != 0) continue;
        if (k->sentlen > r->len) { /* str holds len + 1 bytes: too few */
            char *s = sg_malloc(k->sentlen + 1);
            if (s == NULL) return SG_ENOMEM;
            if (r->str != (char *)(r + 1)) sg_free(r->str); /* else in r's own block */
            r->str = s;
        }
        memcpy(r->str, k->sent, k->sentlen);
        r->str[k->sentlen] = '\0';
        r->len = k->sentlen;
        break;
    }
    return SG_OK;
}

int sg_keymap_apply(const sg_keymap *m, sg_reply *reply) {
    size_t i;
    int rc = SG_OK;
    if (m == NULL || reply == NULL || reply->type != SG_REPLY_ARRAY || reply->elements == 0)
        return SG_OK; /* nil (a timeout), an error, ... */
    switch (m->shape) {
    case SG_REPLY_KEYS_FIRST: /* [key, element] and the like */
        return name_back(m, reply->element[0]);
    case SG_REPLY_KEYS_STREAMS: /* [[key, entries], ...] */
        for (i = 0; i < reply->elements && rc == SG_OK; i++) {
            sg_reply *e = reply->element[i];
            if (e && e->type == SG_REPLY_ARRAY && e->elements > 0) rc = name_back(m, e->element[0]);
        }
        return rc;
    default:
        return SG_OK;
    }
}

void sg_keymap_free(sg_keymap *m) { sg_free(m); }

/* sg_gateway_forward's callback for a command whose reply names rewritten
 * keys: the caller's callback gets the client's names. */
static void reply_named_back(sg_client *c, sg_reply *reply, int status, const char *errmsg,
                             void *ud) {
    sg_keymap *m = ud;
    if (reply && sg_keymap_apply(m, reply) != SG_OK) {
        sg_reply_free(reply);
        m->fn(c, NULL, SG_ENOMEM,
              "out of memory naming the reply's keys as the client sent them (the command ran)",
              m->ud);
    } else {
        m->fn(c, reply, status, errmsg, m->ud);
    }
    sg_free(m);
}

/* ---- the near cache ------------------------------------------------------------------ */

/* The RESP2 client of c's upstream: the cache's entries are its (a RESP3
 * session's write drops them as well). */
static sg_client *resp2_twin(const sg_gateway *g, sg_client *c) {
    int i;
    for (i = 0; i < g->n; i++)
        if (g->clients3[i] == c) return g->clients[i];
    return c;
}

/* A cached answer for a host that takes it from the loop. */
typedef struct hit {
    sg_client *c;
    sg_reply_fn fn;
    sg_raw_reply_fn raw_fn;
    void *ud;
    size_t len;
    char bytes[];
} hit;

static void deliver_hit(evutil_socket_t fd, short what, void *arg) {
    hit *h = arg;
    (void)fd;
    (void)what;
    if (h->raw_fn) {
        h->raw_fn(h->c, h->bytes, h->len, h->ud);
    } else {
        int status;
        sg_reply *r = sg_reply_parse(h->bytes, h->len, &status);
        h->fn(h->c, r, r ? SG_OK : status, r ? NULL : "out of memory reading a cached reply",
              h->ud);
    }
    sg_free(h);
}

/* A read answered from the cache: the daemon (cmd resolved, bytes taken)
 * gets it at once, inside its call; any other host from the loop, as every
 * reply comes. */
static int answer_hit(sg_gateway *g, sg_client *c, int now, const char *bytes, size_t len,
                      sg_reply_fn fn, sg_raw_reply_fn raw_fn, void *ud) {
    struct timeval zero = {0, 0};
    hit *h;
    if (now && raw_fn) {
        raw_fn(c, bytes, len, ud);
        return SG_OK;
    }
    if ((h = sg_malloc(sizeof *h + len)) == NULL)
        return sg_seterr(&g->err, SG_ENOMEM, "out of memory");
    h->c = c;
    h->fn = fn;
    h->raw_fn = raw_fn;
    h->ud = ud;
    h->len = len;
    memcpy(h->bytes, bytes, len);
    if (event_base_once(g->base, -1, EV_TIMEOUT, deliver_hit, h, &zero) != 0) {
        sg_free(h);
        return sg_seterr(&g->err, SG_ENOMEM, "out of memory");
    }
    return SG_OK;
}

/* The gateway's cache, made when first needed: for a read a policy caches
 * (secs > 0), or for a write once some cache of the process holds entries
 * (its write stamps must tell the others). NULL: none, or no memory. */
static sg_cache *cache_for(sg_gateway *g, const sg_command *info, long long secs) {
    if (g->cache == NULL && g->cache_max > 0 &&
        (secs > 0 || (!(info->flags & SG_CMD_READONLY) && sg_cache_in_use())))
        g->cache = sg_cache_new(&g->cstats, g->cache_max);
    return g->cache;
}

/* What the cache makes of a command about to go (argv as the node will get
 * it): 1 when it answered it; else 0, with the callbacks replaced when the
 * reply concerns it (*call set), and *read_policy the master's for a read
 * that fills. secs: the policies' cache life for the read (0: none). A RESP3
 * session's reads use the RESP2 twin's entries, and go on c as its every
 * command does (one connection per node keeps its pipeline in order). */
static int through_cache(sg_gateway *g, sg_client *c, const sg_command *info,
                         const sg_request_ctx *ctx, long long secs, int argc,
                         const char *const *argv, const size_t *argvlen, int now,
                         sg_reply_fn *fn, sg_raw_reply_fn *raw_fn, void **ud, int *read_policy,
                         sg_cache_call **call, int *rc) {
    *call = NULL;
    *rc = SG_OK;
    if (info == NULL) return 0;
    if (cache_for(g, info, secs) == NULL) return 0; /* none, or no memory: sent as it is */
    if (!(info->flags & SG_CMD_READONLY) && (info->flags & SG_CMD_BLOCKING)) {
        /* BLPOP and the like: sg_gateway_unblock finds them by the caller's
         * ud, which must stay theirs. Their keys go now; what they change
         * when they unblock, the node's invalidation tells */
        sg_cache_drop_keys(g->cache, resp2_twin(g, c), info, argc, argv, argvlen);
        return 0;
    }
    if (!(info->flags & SG_CMD_READONLY)) {
        sg_raw_reply_fn had = *raw_fn;
        sg_cache_write(g->cache, resp2_twin(g, c), info, argc, argv, argvlen, fn, raw_fn, ud,
                       call);
        if (had == NULL) *raw_fn = NULL; /* a tree, as the caller asked */
        return 0;
    }
    if (secs > 0 && sg_cache_cacheable(info, argc)) {
        const char *bytes;
        size_t len;
        sg_client *c2 = resp2_twin(g, c);
        if (g->policy && sg_policy_serial(g->policy) != g->cover_serial) cover(g, g->policy);
        /* a blocking gateway's loop runs only inside its calls: the
         * invalidations that came meanwhile are read before the cache answers */
        if (g->own_base) event_base_loop(g->base, EVLOOP_NONBLOCK);
        if (sg_cache_read(g->cache, c2, info, argc, argv, argvlen, secs, c2 != c ? c : NULL,
                          &bytes, &len, fn, raw_fn, ud, call)) {
            *rc = answer_hit(g, c, now, bytes, len, *fn, *raw_fn, *ud);
            return 1;
        }
        if (*call) *read_policy = SG_READ_MASTER; /* the node tracked is the master */
    }
    return 0;
}

int sg_gateway_send_argv(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                         const char *const *argv, const size_t *argvlen, sg_reply_fn fn,
                         void *ud) {
    return sg_gateway_forward(g, ctx, argc, argv, argvlen, NULL, 0, fn, NULL, ud);
}

int sg_gateway_forward(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                       const char *const *argv, const size_t *argvlen, const char *resp,
                       size_t resplen, sg_reply_fn fn, sg_raw_reply_fn raw_fn, void *ud) {
    return sg_gateway_forward_cmd(g, NULL, ctx, argc, argv, argvlen, resp, resplen, fn, raw_fn,
                                  ud);
}

int sg_gateway_forward_cmd(sg_gateway *g, const sg_command *cmd, const sg_request_ctx *ctx,
                           int argc, const char *const *argv, const size_t *argvlen,
                           const char *resp, size_t resplen, sg_reply_fn fn,
                           sg_raw_reply_fn raw_fn, void *ud) {
    sg_decision d;
    sg_submit_opts opts = {-1, NULL, NULL, NULL, 0, raw_fn, resp, resplen, NULL, 0, 0,
                           ctx ? ctx->addr : NULL};
    const char **tkeys = NULL;
    size_t *tlens = NULL, *lens = NULL;
    long long *tsecs = NULL;
    sg_client *c;
    int rc = SG_OK, i;
    if (g->err.code != SG_OK && g->n == 0) return g->err.code;
    if (argc < 1) return sg_seterr(&g->err, SG_EINVAL, "a command needs at least its name");
    if (argvlen == NULL) {
        if ((lens = sg_malloc((size_t)argc * sizeof *lens)) == NULL)
            return sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        argvlen = lens;
    }
    if ((g->policy == NULL || sg_policy_count(g->policy) == 0) &&
        (c = client_of(g, NULL, ctx)) != NULL) {
        /* no policy: nothing to decide (this runs for every command) */
        sg_cache_call *call = NULL;
        opts.info = cmd;
        if (ctx && ctx->routed) ctx->routed(ctx->routed_ud, upstream_of(g, c), argc, argv, argvlen);
        if (g->cache || sg_cache_in_use()) {
            /* no read of this caller is cached, but its writes drop entries
             * (the other gateways' too: see sg_cache_in_use) */
            const sg_command *info = cmd ? cmd : sg_command_resolve(argc, argv, argvlen);
            int crc;
            through_cache(g, c, info, ctx, 0, argc, argv, argvlen, 0, &fn, &opts.raw_fn, &ud,
                          &opts.read_policy, &call, &crc);
        }
        rc = sg_router_submit(c, argc, argv, argvlen, fn, ud,
                              opts.raw_fn || resp || cmd || opts.order ? &opts : NULL);
        if (rc != SG_OK) {
            sg_cache_call_abort(call);
            sg_seterr(&g->err, rc, "%s", c->err.msg);
        }
        sg_free(lens);
        return rc;
    }
    sg_decision_init(&d);
    rc = cmd ? sg_policy_apply_cmd(g->policy, cmd, ctx, argc, argv, argvlen, &d)
             : sg_policy_apply(g->policy, ctx, argc, argv, argvlen, &d);
    if (rc != SG_OK) {
        sg_seterr(&g->err, rc, "out of memory applying the policies");
        goto done;
    }
    if ((c = client_of(g, d.upstream, ctx)) == NULL) {
        /* a policy named an upstream the settings lack: the command's error */
        snprintf(d.errmsg, sizeof d.errmsg, "ERR policy routes to upstream \"%s\", which the "
                 "settings do not define", d.upstream);
        d.deny = 1;
        c = g->clients[0];
    }
    if (d.deny) {
        denial *dn = sg_calloc(1, sizeof *dn);
        struct timeval zero = {0, 0};
        char *nl;
        /* an error reply is one line: a deny or a script's error may quote
         * a key, and a key may hold CR or LF (else the client reads a reply
         * of the client's own making) */
        while ((nl = strpbrk(d.errmsg, "\r\n")) != NULL) *nl = ' ';
        if (dn == NULL ||
            (dn->reply = sg_reply_new_str(SG_REPLY_ERROR, d.errmsg, strlen(d.errmsg))) == NULL) {
            sg_free(dn);
            rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
            goto done;
        }
        dn->c = c;
        dn->fn = fn;
        dn->ud = ud;
        if (event_base_once(c->net.base, -1, EV_TIMEOUT, deliver_denial, dn, &zero) != 0) {
            sg_reply_free(dn->reply);
            sg_free(dn);
            rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        }
        goto done;
    }
    if (ctx && ctx->routed) {
        if (d.rewritten)
            ctx->routed(ctx->routed_ud, upstream_of(g, c), d.argc, (const char *const *)d.argv,
                        d.argvlen);
        else
            ctx->routed(ctx->routed_ud, upstream_of(g, c), argc, argv, argvlen);
    }
    opts.read_policy = d.read_policy;
    opts.durable = d.durable;
    opts.durable_ms = d.durable_ms;
    if (d.nttls) {
        tkeys = sg_malloc((size_t)d.nttls * sizeof *tkeys);
        tlens = sg_malloc((size_t)d.nttls * sizeof *tlens);
        tsecs = sg_malloc((size_t)d.nttls * sizeof *tsecs);
        if (!tkeys || !tlens || !tsecs) {
            rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
            goto done;
        }
        for (i = 0; i < d.nttls; i++) {
            int ai = d.ttls[i].argi;
            tkeys[i] = d.rewritten ? d.argv[ai] : argv[ai];
            tlens[i] = d.rewritten ? d.argvlen[ai] : argvlen[ai];
            tsecs[i] = d.ttls[i].seconds;
        }
        opts.ttl_keys = tkeys;
        opts.ttl_lens = tlens;
        opts.ttl_secs = tsecs;
        opts.nttls = d.nttls;
    }
    if (d.rewritten) {
        sg_keymap *m;
        sg_cache_call *call;
        if ((rc = keymap_new(d.info, argc, argv, argvlen, &d, &m)) != SG_OK) {
            sg_seterr(&g->err, rc, "out of memory");
            goto done;
        }
        if (m) { /* its reply names keys: as a tree, to be named back */
            m->fn = fn;
            m->ud = ud;
            fn = reply_named_back;
            ud = m;
            opts.raw_fn = NULL;
        }
        opts.resp = NULL; /* not what is sent any more */
        if (through_cache(g, c, d.info, ctx, d.cache_secs, d.argc, (const char *const *)d.argv,
                          d.argvlen, cmd != NULL, &fn, &opts.raw_fn, &ud, &opts.read_policy,
                          &call, &rc)) {
            if (rc != SG_OK) sg_free(m);
            goto done; /* answered from the cache */
        }
        rc = sg_router_submit(c, d.argc, (const char *const *)d.argv, d.argvlen, fn, ud, &opts);
        if (rc != SG_OK) { /* the callbacks never run */
            sg_cache_call_abort(call);
            sg_free(m);
        }
    } else {
        sg_cache_call *call;
        if (through_cache(g, c, d.info, ctx, d.cache_secs, argc, argv, argvlen, cmd != NULL, &fn,
                          &opts.raw_fn, &ud, &opts.read_policy, &call, &rc))
            goto done; /* answered from the cache */
        rc = sg_router_submit(c, argc, argv, argvlen, fn, ud, &opts);
        if (rc != SG_OK) sg_cache_call_abort(call);
    }
    if (rc != SG_OK) sg_seterr(&g->err, rc, "%s", c->err.msg);
done:
    sg_free(tkeys);
    sg_free(tlens);
    sg_free(tsecs);
    sg_free(lens);
    sg_decision_clear(&d);
    return rc;
}

sg_reply *sg_gateway_call_argv(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                               const char *const *argv, const size_t *argvlen) {
    sg_waiter w = {0};
    if (!g->own_base || g->n == 0) {
        if (g->err.code == SG_OK)
            sg_seterr(&g->err, SG_EINVAL, "blocking calls need a blocking gateway (no event base)");
        return NULL;
    }
    if (sg_gateway_send_argv(g, ctx, argc, argv, argvlen, sg_waiter_reply, &w) != SG_OK)
        return NULL;
    while (!w.done) event_base_loop(g->base, EVLOOP_ONCE);
    if (w.status != SG_OK) {
        sg_seterr(&g->err, w.status, "%s", w.msg);
        return NULL;
    }
    sg_clearerr(&g->err);
    return w.reply;
}

/* ---- preparing without sending ------------------------------------------------------- */

static void put_cmd(sg_buf *b, int argc, const char *const *argv, const size_t *argvlen) {
    int i;
    sg_buf_printf(b, "*%d\r\n", argc);
    for (i = 0; i < argc; i++) {
        sg_buf_printf(b, "$%zu\r\n", argvlen[i]);
        sg_buf_append(b, argv[i], argvlen[i]);
        sg_buf_append(b, "\r\n", 2);
    }
}

/* Redis's words for a command it does not know, or whose arity is wrong. */
static int check_command(const sg_command *info, int argc, const char *const *argv,
                         const size_t *argvlen, char *err, size_t errlen) {
    int n0 = (int)(argvlen[0] > 64 ? 64 : argvlen[0]);
    if (info == NULL) {
        if (argc >= 2 && sg_command_lookup(argv[0], argvlen[0]) != NULL)
            snprintf(err, errlen, "ERR unknown subcommand '%.*s'. Try %.*s HELP.",
                     (int)(argvlen[1] > 64 ? 64 : argvlen[1]), argv[1], n0, argv[0]);
        else {
            /* as Redis: the arguments quoted, while they take less than 128 bytes */
            size_t used = 0, at;
            int i;
            at = (size_t)snprintf(
                err, errlen, "ERR unknown command '%.*s', with args beginning with: ", n0, argv[0]);
            for (i = 1; i < argc && used < 128 && at < errlen; i++) {
                int w = (int)(argvlen[i] < 128 - used ? argvlen[i] : 128 - used);
                int n = snprintf(err + at, errlen - at, "'%.*s' ", w, argv[i]);
                if (n < 0) break;
                at += (size_t)n;
                used += (size_t)w + 3;
            }
        }
        return 0;
    }
    if (!sg_command_check_arity(info, argc)) {
        snprintf(err, errlen, "ERR wrong number of arguments for '%s' command", info->name);
        return 0;
    }
    return 1;
}

int sg_gateway_denies(sg_gateway *g, const sg_request_ctx *ctx, int argc, const char *const *argv,
                      const size_t *argvlen, char *err, size_t errlen) {
    sg_decision d;
    int denied;
    if (g->policy == NULL) return 0;
    sg_decision_init(&d);
    if (sg_policy_apply(g->policy, ctx, argc, argv, argvlen, &d) != SG_OK) {
        snprintf(err, errlen, "ERR slotgate: out of memory applying the policies");
        denied = 1; /* not let through unchecked */
    } else if ((denied = d.deny) != 0) {
        snprintf(err, errlen, "%s", d.errmsg);
    }
    sg_decision_clear(&d);
    return denied;
}

int sg_gateway_prepare(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                       const char *const *argv, const size_t *argvlen, sg_prepared *out) {
    return sg_gateway_prepare_held(g, ctx, argc, argv, argvlen, out, NULL);
}

void sg_gateway_release(sg_cache_call *hold) { sg_cache_call_abort(hold); }

int sg_gateway_prepare_held(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                            const char *const *argv, const size_t *argvlen, sg_prepared *out,
                            sg_cache_call **hold) {
    sg_decision d;
    const sg_command *info;
    sg_buf b = {0};
    size_t *lens = NULL;
    int *keyidx = NULL, nkeys, i, rc = SG_OK, route;
    memset(out, 0, sizeof *out);
    if (hold) *hold = NULL;
    if (g->n == 0) return g->err.code ? g->err.code : sg_seterr(&g->err, SG_EINVAL, "no upstreams");
    if (argc < 1 || argv == NULL)
        return sg_seterr(&g->err, SG_EINVAL, "a command needs at least its name");
    if (argvlen == NULL) {
        if ((lens = sg_malloc((size_t)argc * sizeof *lens)) == NULL)
            return sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        argvlen = lens;
    }
    out->slot = -1;
    out->client = ctx && ctx->proto == 3 ? g->clients3[0] : g->clients[0];
    info = sg_command_resolve(argc, argv, argvlen);
    if (!check_command(info, argc, argv, argvlen, out->error, sizeof out->error)) goto done;
    sg_decision_init(&d);
    if (g->policy && sg_policy_apply(g->policy, ctx, argc, argv, argvlen, &d) != SG_OK) {
        sg_decision_clear(&d);
        rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory applying the policies");
        goto done;
    }
    if (d.deny) {
        snprintf(out->error, sizeof out->error, "%s", d.errmsg);
        sg_decision_clear(&d);
        goto done;
    }
    if ((out->client = client_of(g, d.upstream, ctx)) == NULL) {
        snprintf(out->error, sizeof out->error,
                 "ERR policy routes to upstream \"%s\", which the settings do not define",
                 d.upstream);
        sg_decision_clear(&d);
        goto done;
    }
    if (keymap_new(info, argc, argv, argvlen, &d, &out->keymap) != SG_OK) {
        sg_decision_clear(&d);
        rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        goto done;
    }
    if (d.rewritten) {
        argc = d.argc;
        argv = (const char *const *)d.argv;
        argvlen = d.argvlen;
    }
    if (ctx && ctx->routed) ctx->routed(ctx->routed_ud, upstream_of(g, out->client), argc, argv,
                                        argvlen);
    /* a transaction's write runs on a link, past the cache: its keys' entries
     * go now; held, none is filled until the host's release (after EXEC's
     * reply), so the writer reads its write. A host without a hold (the
     * public call) gets the drop alone: an entry a read fills before its
     * EXEC goes with the node's invalidation. As for a plain write, a
     * gateway whose cache was never needed makes it once another gateway of
     * the process caches: the hold's write stamps tell that one */
    if (cache_for(g, info, 0) && !(info->flags & SG_CMD_READONLY)) {
        sg_client *c2 = resp2_twin(g, out->client);
        if (hold) *hold = sg_cache_hold(g->cache, c2, info, argc, argv, argvlen);
        else sg_cache_drop_keys(g->cache, c2, info, argc, argv, argvlen);
    }
    route = sg_command_route(info);
    if (route == SG_ROUTE_ALL_MASTERS || route == SG_ROUTE_ALL_NODES) out->flags |= SG_PREP_FANOUT;
    if (route == SG_ROUTE_GATEWAY) out->flags |= SG_PREP_LOCAL;
    if (info->flags & SG_CMD_NO_MULTI) out->flags |= SG_PREP_NO_MULTI;
    if (info->flags & SG_CMD_READONLY) out->flags |= SG_PREP_READONLY;
    if ((keyidx = sg_malloc((size_t)argc * sizeof *keyidx)) == NULL) {
        sg_decision_clear(&d);
        rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        goto done;
    }
    /* malformed key arguments (SG_CMD_EKEYS): no slot; the node says what is wrong */
    nkeys = sg_command_keys_ex(info, argc, argv, argvlen, SG_KEYS_INCLUDE_NOT_KEYS, keyidx, NULL,
                               argc);
    for (i = 0; i < nkeys; i++) {
        int s = (int)sg_keyslot(argv[keyidx[i]], argvlen[keyidx[i]]);
        if (i == 0) out->slot = s;
        else if (s != out->slot) out->slot = -2;
        if (out->slot == -2) break;
    }
    if (nkeys > 0) out->flags &= ~SG_PREP_FANOUT; /* KEYS-less fan-outs only */
    put_cmd(&b, argc, argv, argvlen);
    for (i = 0; i < d.nttls; i++) { /* as the router does after a write: EXPIRE ... NX */
        char secs[24];
        const char *w[4] = {"EXPIRE", argv[d.ttls[i].argi], secs, "NX"};
        size_t wl[4] = {6, argvlen[d.ttls[i].argi], 0, 2};
        wl[2] = (size_t)snprintf(secs, sizeof secs, "%lld", d.ttls[i].seconds);
        put_cmd(&b, 4, w, wl);
        out->extra++;
    }
    sg_decision_clear(&d);
    if (b.oom) {
        sg_buf_free(&b);
        rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        goto done;
    }
    out->resplen = b.len;
    out->resp = sg_buf_take(&b);
done:
    sg_free(keyidx);
    sg_free(lens);
    if (rc != SG_OK) {
        sg_keymap_free(out->keymap);
        memset(out, 0, sizeof *out);
        if (hold) { /* nothing to send: nothing to hold */
            sg_cache_call_abort(*hold);
            *hold = NULL;
        }
    }
    return rc;
}

void sg_prepared_clear(sg_prepared *p) {
    if (p == NULL) return;
    sg_keymap_free(p->keymap);
    sg_free(p->resp);
    memset(p, 0, sizeof *p);
}
