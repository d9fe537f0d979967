/*
 * gateway.c — every upstream of a settings handle behind one policy set: the
 * policies decide (deny, rewrite, TTL, upstream, read policy) and the
 * upstream's client carries the command. Clients are made on first use.
 */
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "policy.h"

struct sg_gateway {
    sg_error err; /* first: sg_errcode()/sg_errmsg() read it */
    struct event_base *base; /* every upstream's client runs on it */
    int own_base;            /* a blocking gateway's private base */
    sg_policy *policy;
    char **names;            /* upstream names, from the settings */
    sg_client **clients;
    int n;
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
    if (cfg == NULL) {
        sg_seterr(&g->err, SG_EINVAL, "no settings given");
        return g;
    }
    n = sg_config_upstream_count(cfg);
    if ((g->names = sg_calloc((size_t)(n ? n : 1), sizeof *g->names)) == NULL ||
        (g->clients = sg_calloc((size_t)(n ? n : 1), sizeof *g->clients)) == NULL) {
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
        g->clients[i] = sg_client_new(cfg, name, base);
        if (g->clients[i] == NULL) {
            sg_seterr(&g->err, SG_ENOMEM, "out of memory");
            return g;
        }
        if (sg_errcode(g->clients[i]) != SG_OK) {
            sg_seterr(&g->err, sg_errcode(g->clients[i]), "upstream %s: %s", name,
                      sg_errmsg(g->clients[i]));
            return g;
        }
        /* A blocking gateway's clients are blocking clients (sg_gateway_client
         * hands them out: calls and pipelines on them run the gateway's
         * private base). The gateway frees that base: see sg_gateway_free. */
        if (g->own_base) g->clients[i]->own_base = 1;
    }
    return g;
}

void sg_gateway_free(sg_gateway *g) {
    int i;
    if (g == NULL) return;
    for (i = 0; i < g->n; i++) {
        if (g->clients[i]) g->clients[i]->own_base = 0; /* the base is the gateway's */
        sg_client_free(g->clients[i]);
        sg_free(g->names[i]);
    }
    sg_free(g->clients);
    sg_free(g->names);
    if (g->own_base && g->base) event_base_free(g->base);
    sg_free(g);
}

void sg_gateway_set_policy(sg_gateway *g, sg_policy *p) { g->policy = p; }

sg_client *sg_gateway_client(sg_gateway *g, const char *upstream) {
    int i;
    if (upstream == NULL) upstream = "default";
    for (i = 0; i < g->n; i++)
        if (strcmp(g->names[i], upstream) == 0) return g->clients[i];
    sg_seterr(&g->err, SG_EINVAL, "no upstream \"%s\" in the settings", upstream);
    return NULL;
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

int sg_gateway_send_argv(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                         const char *const *argv, const size_t *argvlen, sg_reply_fn fn,
                         void *ud) {
    sg_decision d;
    sg_submit_opts opts = {-1, NULL, NULL, NULL, 0};
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
    sg_decision_init(&d);
    if (g->policy && (rc = sg_policy_apply(g->policy, ctx, argc, argv, argvlen, &d)) != SG_OK) {
        sg_seterr(&g->err, rc, "out of memory applying the policies");
        goto done;
    }
    if ((c = sg_gateway_client(g, d.upstream)) == NULL) {
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
        if (dn == NULL || (dn->reply = sg_reply_new_str(SG_REPLY_ERROR, d.errmsg, strlen(d.errmsg))) == NULL) {
            sg_free(dn);
            rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
            goto done;
        }
        dn->c = c;
        dn->fn = fn;
        dn->ud = ud;
        if (event_base_once(c->base, -1, EV_TIMEOUT, deliver_denial, dn, &zero) != 0) {
            sg_reply_free(dn->reply);
            sg_free(dn);
            rc = sg_seterr(&g->err, SG_ENOMEM, "out of memory");
        }
        goto done;
    }
    opts.read_policy = d.read_policy;
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
    if (d.rewritten)
        rc = sg_router_submit(c, d.argc, (const char *const *)d.argv, d.argvlen, fn, ud, &opts);
    else rc = sg_router_submit(c, argc, argv, argvlen, fn, ud, &opts);
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
    if (sg_gateway_send_argv(g, ctx, argc, argv, argvlen, sg_waiter_reply, &w) != SG_OK) return NULL;
    while (!w.done) event_base_loop(g->base, EVLOOP_ONCE);
    if (w.status != SG_OK) {
        sg_seterr(&g->err, w.status, "%s", w.msg);
        return NULL;
    }
    sg_clearerr(&g->err);
    return w.reply;
}
