/*
 * tracking.c — CLIENT TRACKING answered by slotgated for its own sessions.
 *
 * The nodes know nothing of slotgated's clients: the gateway's invalidation
 * connections (one per master, CLIENT TRACKING ... BCAST, the near cache's)
 * name every key changed on any node, and this module decides who is told:
 *  - default mode: a table per worker, key -> ids of the sessions that read
 *    it since its last invalidation (the keys of every read-only command a
 *    tracking session forwards, OPTIN/OPTOUT honoured); an invalidation tells
 *    them and forgets the key, as Redis does;
 *  - BCAST: every session whose prefixes match (none: all keys).
 * When an invalidation connection is lost, or a read was made while one was
 * not ready (a change then could go untold), the sessions get a flush (a
 * null invalidation), which is what Redis sends when it cannot tell.
 * Sessions are found by id (ids are never reused), so the table needs no
 * cleanup when a session goes: a stale id is skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub.h"
#include "tracking.h"

typedef struct trk {
    session *s;
    struct trk *next; /* in the worker's list */
    int on, bcast, optin, optout, noloop;
    int caching_next; /* CLIENT CACHING came: for the next command */
    int caching;      /* ... this command's */
    int owes_flush;   /* read while an invalidation connection was not ready */
    long long redir;  /* 0: none */
    char **prefix;
    size_t *prefixlen;
    int nprefix;
} trk;

typedef struct kent {
    struct kent *next;
    uint64_t *ids;
    int n, cap;
    size_t len;
    char key[];
} kent;

typedef struct trk_worker {
    trk *list;
    kent **buckets;
    size_t nb, nkeys;
    int started; /* sg_gateway_track called */
} trk_worker;

static trk_worker *tw_of(worker *w) {
    if (w->trk == NULL) w->trk = sg_calloc(1, sizeof(trk_worker));
    return w->trk;
}

static uint64_t hash_key(const char *k, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

static kent **slot_of(trk_worker *tw, const char *k, size_t n) {
    kent **pp = &tw->buckets[hash_key(k, n) & (tw->nb - 1)];
    while (*pp && !((*pp)->len == n && memcmp((*pp)->key, k, n) == 0)) pp = &(*pp)->next;
    return pp;
}

static void kent_free(kent *e) {
    sg_free(e->ids);
    sg_free(e);
}

static int grow(trk_worker *tw) {
    size_t nb = tw->nb ? tw->nb * 2 : 64, i;
    kent **nbk = sg_calloc(nb, sizeof *nbk);
    if (nbk == NULL) return -1;
    for (i = 0; i < tw->nb; i++)
        while (tw->buckets[i]) {
            kent *e = tw->buckets[i];
            size_t b = hash_key(e->key, e->len) & (nb - 1);
            tw->buckets[i] = e->next;
            e->next = nbk[b];
            nbk[b] = e;
        }
    sg_free(tw->buckets);
    tw->buckets = nbk;
    tw->nb = nb;
    return 0;
}

/* s read key: it is told of the key's next change. */
static void remember(trk_worker *tw, const session *s, const char *k, size_t n) {
    kent **pp, *e;
    int i;
    if ((tw->nkeys + 1 > tw->nb || tw->nb == 0) && grow(tw) != 0) return;
    pp = slot_of(tw, k, n);
    if ((e = *pp) == NULL) {
        if ((e = sg_calloc(1, sizeof *e + n)) == NULL) return;
        memcpy(e->key, k, n);
        e->len = n;
        *pp = e;
        tw->nkeys++;
    }
    for (i = 0; i < e->n; i++)
        if (e->ids[i] == s->id) return;
    if (sg_grow((void **)&e->ids, &e->cap, e->n, sizeof *e->ids, 1) != SG_OK) return;
    e->ids[e->n++] = s->id;
}

static void forget_all(trk_worker *tw) {
    size_t i;
    for (i = 0; i < tw->nb; i++)
        while (tw->buckets[i]) {
            kent *e = tw->buckets[i];
            tw->buckets[i] = e->next;
            kent_free(e);
        }
    tw->nkeys = 0;
}

static session *session_by_id(worker *w, uint64_t id) {
    session *s;
    for (s = w->sessions; s; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

/* One invalidation (key, or NULL: everything) as Redis sends it to target:
 * RESP3, a push; RESP2 (a redirect's target in subscribed mode), a message
 * on __redis__:invalidate; else nothing, as Redis. */
static void send_to(trk *t, const char *key, size_t n) {
    session *s = t->redir ? session_by_id(t->s->w, (uint64_t)t->redir) : t->s;
    sg_resp_out *o;
    reply_slot *rs = NULL;
    uint64_t seq;
    if (s == NULL || !session_open(s)) return;
    if (s->out.proto != SG_RESP_PROTO_3 && !(t->redir && pubsub_active(s))) return;
    /* after the replies it is still owed, so it follows the read it is about */
    if (s->count > 0) {
        if ((rs = reply_slot_new(s, &seq)) == NULL) return;
        o = &rs->out;
    } else {
        o = &s->out;
    }
    if (s->out.proto == SG_RESP_PROTO_3) {
        sg_resp_put_push(o, 2);
        sg_resp_put_bulk(o, "invalidate", 10);
    } else {
        sg_resp_put_array(o, 3);
        sg_resp_put_bulk(o, "message", 7);
        sg_resp_put_bulk(o, "__redis__:invalidate", 20);
    }
    if (key) {
        sg_resp_put_array(o, 1);
        sg_resp_put_bulk(o, key, n);
    } else {
        sg_resp_put_null(o);
    }
    if (rs) reply_slot_done(rs);
    session_flush(s);
}

static int prefix_match(const trk *t, const char *key, size_t n) {
    int i;
    if (t->nprefix == 0) return 1;
    for (i = 0; i < t->nprefix; i++)
        if (t->prefixlen[i] <= n && memcmp(key, t->prefix[i], t->prefixlen[i]) == 0) return 1;
    return 0;
}

/* What the gateway's invalidation connections say (sg_track_fn). */
static void on_track(void *ud, int event, const char *key, size_t n) {
    worker *w = ud;
    trk_worker *tw = w->trk;
    trk *t;
    if (tw == NULL) return;
    if (event == SG_TRACK_READY) {
        if (!sg_gateway_tracking_ready(w->gw)) return;
        for (t = tw->list; t; t = t->next)
            if (t->on && t->owes_flush) {
                t->owes_flush = 0;
                send_to(t, NULL, 0);
            }
        return;
    }
    if (event == SG_TRACK_FLUSH) {
        forget_all(tw);
        for (t = tw->list; t; t = t->next)
            if (t->on) {
                t->owes_flush = 0;
                send_to(t, NULL, 0);
            }
        return;
    }
    for (t = tw->list; t; t = t->next)
        if (t->on && t->bcast && prefix_match(t, key, n)) send_to(t, key, n);
    if (tw->nb) {
        kent **pp = slot_of(tw, key, n), *e = *pp;
        int i;
        if (e == NULL) return;
        *pp = e->next; /* told once: a new read tracks it again */
        tw->nkeys--;
        for (i = 0; i < e->n; i++)
            for (t = tw->list; t; t = t->next)
                if (t->s->id == e->ids[i] && t->on && !t->bcast) send_to(t, key, n);
        kent_free(e);
    }
}

static trk *trk_of(session *s) {
    trk_worker *tw = tw_of(s->w);
    trk *t;
    if (s->trk) return s->trk;
    if (tw == NULL || (t = sg_calloc(1, sizeof *t)) == NULL) return NULL;
    t->s = s;
    t->next = tw->list;
    tw->list = t;
    s->trk = t;
    return t;
}

static void prefixes_free(trk *t) {
    int i;
    for (i = 0; i < t->nprefix; i++) sg_free(t->prefix[i]);
    sg_free(t->prefix);
    sg_free(t->prefixlen);
    t->prefix = NULL;
    t->prefixlen = NULL;
    t->nprefix = 0;
}

/* Redis's own check: no prefix of a client's may start another (the pair
 * named in the order given). */
static int prefixes_collide(const sg_resp_req *r, const int *at, int n, sg_resp_out *o) {
    int i, j;
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++) {
            size_t a = r->argvlen[at[i]], b = r->argvlen[at[j]];
            char msg[600];
            if (memcmp(r->argv[at[i]], r->argv[at[j]], a < b ? a : b) != 0) continue;
            snprintf(msg, sizeof msg,
                     "ERR Prefix '%.*s' overlaps with another provided prefix '%.*s'. Prefixes "
                     "for a single client must not overlap.",
                     (int)(a > 200 ? 200 : a), r->argv[at[i]], (int)(b > 200 ? 200 : b),
                     r->argv[at[j]]);
            sg_resp_put_error(o, msg);
            return 1;
        }
    return 0;
}

static void tracking_onoff(session *s, const sg_resp_req *r, sg_resp_out *o) {
    long long redir = 0;
    int bcast = 0, optin = 0, optout = 0, noloop = 0, np = 0, i, *at;
    trk *t = s->trk;
    char *end;
    if ((at = sg_calloc((size_t)r->argc, sizeof *at)) == NULL) {
        sg_resp_put_error(o, "ERR slotgate: out of memory");
        return;
    }
    for (i = 3; i < r->argc; i++) {
        int more = r->argc - 1 - i;
        if (sg_resp_arg_is(r, i, "REDIRECT") && more) {
            char num[32];
            i++;
            if (redir != 0) {
                sg_resp_put_error(o, "ERR A client can only redirect to a single other client");
                goto out;
            }
            snprintf(num, sizeof num, "%.*s", (int)(r->argvlen[i] > 31 ? 31 : r->argvlen[i]),
                     r->argv[i]);
            redir = strtoll(num, &end, 10);
            if (r->argvlen[i] == 0 || r->argvlen[i] > 20 || *end != '\0') {
                sg_resp_put_error(o, "ERR value is not an integer or out of range");
                goto out;
            }
            if (session_by_id(s->w, (uint64_t)redir) == NULL) {
                /* slotgated's workers each serve their own sessions */
                sg_resp_put_error(o, "ERR The client ID you want redirect to does not exist "
                                     "(slotgate: or it is served by another worker thread; "
                                     "REDIRECT needs both clients on one, e.g. threads 1)");
                goto out;
            }
        } else if (sg_resp_arg_is(r, i, "BCAST")) {
            bcast = 1;
        } else if (sg_resp_arg_is(r, i, "OPTIN")) {
            optin = 1;
        } else if (sg_resp_arg_is(r, i, "OPTOUT")) {
            optout = 1;
        } else if (sg_resp_arg_is(r, i, "NOLOOP")) {
            noloop = 1;
        } else if (sg_resp_arg_is(r, i, "PREFIX") && more) {
            at[np++] = ++i;
        } else {
            sg_resp_put_error(o, "ERR syntax error");
            goto out;
        }
    }
    if (sg_resp_arg_is(r, 2, "OFF")) {
        if (t) {
            t->on = t->bcast = t->optin = t->optout = t->noloop = 0;
            t->caching_next = t->caching = t->owes_flush = 0;
            t->redir = 0;
            prefixes_free(t);
        }
        sg_resp_put_status(o, "OK");
        goto out;
    }
    if (!sg_resp_arg_is(r, 2, "ON")) {
        sg_resp_put_error(o, "ERR syntax error");
        goto out;
    }
    if (!bcast && np) {
        sg_resp_put_error(o, "ERR PREFIX option requires BCAST mode to be enabled");
        goto out;
    }
    if (t && t->on && t->bcast != bcast) {
        sg_resp_put_error(o, "ERR You can't switch BCAST mode on/off before disabling tracking "
                             "for this client, and then re-enabling it with a different mode.");
        goto out;
    }
    if (bcast && (optin || optout)) {
        sg_resp_put_error(o, "ERR OPTIN and OPTOUT are not compatible with BCAST");
        goto out;
    }
    if (optin && optout) {
        sg_resp_put_error(o, "ERR You can't use both OPTIN and OPTOUT");
        goto out;
    }
    if (t && t->on && ((optin && t->optout) || (optout && t->optin))) {
        sg_resp_put_error(o, "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking "
                             "for this client, and then re-enabling it with a different mode.");
        goto out;
    }
    if (bcast && prefixes_collide(r, at, np, o)) goto out;
    if ((t = trk_of(s)) == NULL) {
        sg_resp_put_error(o, "ERR slotgate: out of memory");
        goto out;
    }
    /* Redis adds the new prefixes to those it had; they must not overlap */
    for (i = 0; i < np; i++) {
        char *p = sg_malloc(r->argvlen[at[i]] + 1), **pv;
        size_t *nl;
        if (p == NULL) break;
        pv = sg_realloc(t->prefix, (size_t)(t->nprefix + 1) * sizeof *pv);
        if (pv) t->prefix = pv;
        nl = sg_realloc(t->prefixlen, (size_t)(t->nprefix + 1) * sizeof *nl);
        if (nl) t->prefixlen = nl;
        if (pv == NULL || nl == NULL) {
            sg_free(p);
            break;
        }
        memcpy(p, r->argv[at[i]], r->argvlen[at[i]]);
        p[r->argvlen[at[i]]] = '\0';
        t->prefix[t->nprefix] = p;
        t->prefixlen[t->nprefix++] = r->argvlen[at[i]];
    }
    t->on = 1;
    t->bcast = bcast;
    t->optin = optin;
    t->optout = optout;
    t->noloop = noloop;
    t->redir = redir;
    {
        trk_worker *tw = s->w->trk;
        if (!tw->started) {
            if (sg_gateway_track(s->w->gw, on_track, s->w) != SG_OK) {
                t->on = 0;
                sg_resp_put_error(o, "ERR slotgate: out of memory");
                goto out;
            }
            tw->started = 1;
        }
        /* BCAST tells of changes from now: one made before every node's
         * connection is ready may go untold, so a flush follows */
        if (bcast && !sg_gateway_tracking_ready(s->w->gw)) t->owes_flush = 1;
    }
    sg_resp_put_status(o, "OK");
out:
    sg_free(at);
}

void tracking_command(session *s, size_t ci, const sg_resp_req *r, sg_resp_out *o) {
    trk *t = s->trk && s->trk->on ? s->trk : NULL;
    int i;
    switch (ci) {
    case SG_CI_CLIENT_TRACKING:
        tracking_onoff(s, r, o);
        return;
    case SG_CI_CLIENT_GETREDIR:
        sg_resp_put_int(o, t ? t->redir : -1);
        return;
    case SG_CI_CLIENT_CACHING:
        if (t == NULL) {
            sg_resp_put_error(o, "ERR CLIENT CACHING can be called only when the client is in "
                                 "tracking mode with OPTIN or OPTOUT mode enabled");
        } else if (sg_resp_arg_is(r, 2, "YES")) {
            if (t->optin) {
                t->caching_next = 1;
                sg_resp_put_status(o, "OK");
            } else {
                sg_resp_put_error(o, "ERR CLIENT CACHING YES is only valid when tracking is "
                                     "enabled in OPTIN mode.");
            }
        } else if (sg_resp_arg_is(r, 2, "NO")) {
            if (t->optout) {
                t->caching_next = 1;
                sg_resp_put_status(o, "OK");
            } else {
                sg_resp_put_error(o, "ERR CLIENT CACHING NO is only valid when tracking is "
                                     "enabled in OPTOUT mode.");
            }
        } else {
            sg_resp_put_error(o, "ERR syntax error");
        }
        return;
    default: { /* TRACKINGINFO: Redis 7.0's map */
        int nf = 0;
        const char *flags[6];
        if (t == NULL) {
            flags[nf++] = "off";
        } else {
            flags[nf++] = "on";
            if (t->bcast) flags[nf++] = "bcast";
            if (t->optin) flags[nf++] = "optin";
            if (t->optout) flags[nf++] = "optout";
            if (t->caching_next) flags[nf++] = t->optin ? "caching-yes" : "caching-no";
            if (t->noloop) flags[nf++] = "noloop";
            if (t->redir && session_by_id(s->w, (uint64_t)t->redir) == NULL)
                flags[nf++] = "broken_redirect";
        }
        sg_resp_put_map(o, 3);
        sg_resp_put_bulk(o, "flags", 5);
        sg_resp_put_set(o, (size_t)nf);
        for (i = 0; i < nf; i++) sg_resp_put_bulk(o, flags[i], strlen(flags[i]));
        sg_resp_put_bulk(o, "redirect", 8);
        sg_resp_put_int(o, t ? t->redir : -1);
        sg_resp_put_bulk(o, "prefixes", 8);
        sg_resp_put_array(o, t ? (size_t)t->nprefix : 0);
        for (i = 0; t && i < t->nprefix; i++) sg_resp_put_bulk(o, t->prefix[i], t->prefixlen[i]);
        return;
    }
    }
}

void tracking_next(session *s, const sg_command *cmd) {
    trk *t = s->trk;
    /* as Redis: CLIENT's subcommands (TRACKINGINFO ...) leave it for the next */
    if (cmd && (sg_command_index(cmd) == SG_CI_CLIENT ||
                (cmd->parent && sg_command_index(cmd->parent) == SG_CI_CLIENT)))
        return;
    t->caching = t->caching_next;
    t->caching_next = 0;
}

void tracking_forward(session *s, const sg_command *cmd, const sg_resp_req *r) {
    trk *t = s->trk;
    trk_worker *tw = s->w->trk;
    int small[16], *idx = small, n, i;
    if (!t->on || cmd == NULL) return;
    if (t->bcast) {
        /* changes told from now on; while a connection is not ready one may
         * go untold: a flush follows once they all are */
        if (!sg_gateway_tracking_ready(s->w->gw)) t->owes_flush = 1;
        return;
    }
    if (cmd->flags & SG_CMD_READONLY) {
        if (t->optin && !t->caching) return;
        if (t->optout && t->caching) return;
    } else if (!t->noloop || tw->nb == 0) {
        return; /* the node's message tells of the write, the writer too */
    }
    if (r->argc > 16 && (idx = sg_malloc((size_t)r->argc * sizeof *idx)) == NULL) return;
    n = sg_command_keys(cmd, r->argc, (const char *const *)r->argv, r->argvlen, idx, r->argc);
    if (n > 0 && (cmd->flags & SG_CMD_READONLY) && !sg_gateway_tracking_ready(s->w->gw))
        t->owes_flush = 1;
    for (i = 0; i < n; i++) {
        const char *k = r->argv[idx[i]];
        size_t len = r->argvlen[idx[i]];
        if (cmd->flags & SG_CMD_READONLY) {
            remember(tw, s, k, len);
        } else {
            /* NOLOOP: the writer is not told of its own write */
            kent *e = *slot_of(tw, k, len);
            int j;
            for (j = 0; e && j < e->n; j++)
                if (e->ids[j] == s->id) e->ids[j--] = e->ids[--e->n];
        }
    }
    if (idx != small) sg_free(idx);
}

void tracking_free(session *s) {
    trk_worker *tw = s->w->trk;
    trk **pp;
    if (s->trk == NULL) return;
    for (pp = &tw->list; *pp; pp = &(*pp)->next)
        if (*pp == s->trk) {
            *pp = s->trk->next;
            break;
        }
    prefixes_free(s->trk);
    sg_free(s->trk);
    s->trk = NULL;
}

void tracking_worker_free(worker *w) {
    trk_worker *tw = w->trk;
    if (tw == NULL) return;
    forget_all(tw);
    sg_free(tw->buckets);
    sg_free(tw);
    w->trk = NULL;
}
