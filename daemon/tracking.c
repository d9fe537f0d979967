/*
 * tracking.c — CLIENT TRACKING answered by slotgated for its own sessions.
 *
 * The nodes know nothing of slotgated's clients: the gateway's invalidation
 * connections (one per master of every upstream, CLIENT TRACKING ... BCAST,
 * the near cache's) name every key changed on any node, as the node stores
 * it, and this module decides who is told, and by which name:
 *  - default mode: a table per worker, (upstream, node's key) -> the sessions
 *    that read it since its last invalidation, each with the name it used
 *    (the gateway says where each command of a tracking session went and its
 *    keys after the policies' rewrites: sg_request_ctx.routed); OPTIN/OPTOUT
 *    honoured; an invalidation tells them by their names and forgets the
 *    key, as Redis does;
 *  - BCAST: every session whose prefixes match the key as the session names
 *    it (the policies' prefix taken off: sg_policy_key_prefix; a session
 *    whose policies rename keys past undoing may not turn BCAST on).
 * A REDIRECT target may be any worker's session: a process-wide registry
 * (id -> worker, under a mutex) finds its worker, and an invalidation is
 * posted to that worker's loop (event_base_once, run in order). A target
 * that went gives the reader Redis 7.0's tracking-redir-broken.
 * A write through slotgated does not wait for the node's message: its keys
 * (sg_request_ctx.routed, for any session's write while some session of
 * the process tracks) are told before it leaves, as a node tells during the
 * write — at once to this worker's sessions, and by a post to each other
 * worker with a tracking session, whose telling the write's reply waits for
 * (a gate on its forwarding record), so no client has the reply before the
 * pushes. A BCAST NOLOOP writer's keys are kept until just after its reply:
 * the node's message for them meanwhile is its own write's. Reads queued in
 * MULTI are remembered when EXEC leaves (sg_gateway_prepare's routed call).
 * When an invalidation connection is lost, or a read was made while its
 * upstream's were not ready (a change then could go untold), the sessions
 * get a flush (a null invalidation), which is what Redis sends when it
 * cannot tell. Sessions are found by id (ids are never reused), so the table
 * needs no cleanup when a session goes: a stale id is skipped.
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub.h"
#include "tracking.h"
#include "txn.h"
#include "users.h"

typedef struct trk {
    session *s;
    struct trk *next;   /* in the worker's list */
    struct trk *idnext; /* in the worker's table by session id */
    int on, bcast, optin, optout, noloop;
    int caching_next; /* CLIENT CACHING came: for the next command */
    int caching;      /* ... this command's */
    uint64_t owes;    /* upstreams (bit i; bit 63: those past 62) read while their
                         invalidation connections were not all ready */
    int broken;       /* the REDIRECT target went (TRACKINGINFO's broken_redirect) */
    long long redir;  /* 0: none */
    char **prefix;
    size_t *prefixlen;
    int nprefix;
    /* BCAST NOLOOP: the keys of its writes in flight, whose node messages
     * are not told back to it (till the write's reply: own_forget) */
    struct own_write *own;
    int nown, capown;
    uint64_t wseq; /* its writes that made own entries */
    /* MULTI: the queued reads' keys, tracked when EXEC leaves */
    struct txn_read *txr;
    int ntxr, captxr;
    int txn_caching; /* CLIENT CACHING's answer before MULTI: for EXEC's reads */
} trk;

/* A read queued in MULTI: its upstream, the node's name and the session's. */
typedef struct txn_read {
    int up;
    char *nk, *sk;
    size_t nkl, skl;
} txn_read;

/* A key a BCAST NOLOOP session is writing: the node's message for it is
 * its own write's (the node sends it before the write's reply). */
typedef struct own_write {
    uint64_t tag; /* the write's (trk.wseq) */
    int up;
    size_t len;
    char *key;
} own_write;

/* One session that read a key: the name it used, when not the node's. */
typedef struct reader {
    uint64_t id;
    char *name; /* NULL: the node's */
    size_t namelen;
} reader;

/* A key read by tracking sessions: the upstream's index (one byte first)
 * and the node's name. */
typedef struct kent {
    struct kent *next;
    reader *r;
    int n, cap;
    size_t len;
    char key[];
} kent;

typedef struct trk_worker {
    trk *list;
    trk **byid; /* the same sessions by id: an invalidation finds its readers */
    size_t nbyid, nlist;
    kent **buckets;
    size_t nb, nkeys, nitems;
    int started; /* sg_gateway_track called */
    /* the command being forwarded, for the gateway's routed call (made
     * within sg_gateway_forward_cmd, before the next command) */
    session *cur_s;
    const sg_command *cur_cmd;
    const sg_resp_req *cur_r;
    owed *cur_hold;
    int cur_queued; /* the command is queued in MULTI, not sent */
} trk_worker;

/* Which worker serves which session id, for REDIRECT to any worker's: every
 * session is in it from its start to its close (server.c). */
typedef struct reg_ent {
    struct reg_ent *next;
    uint64_t id;
    int worker;
} reg_ent;

struct trk_reg {
    pthread_mutex_t mu;
    reg_ent **b;
    size_t nb, n;
};

/* ---- figures (INFO, /metrics): the worker's thread writes them ---------------------- */

static void fig(uint64_t *c, long long d) { figs_add(c, (uint64_t)d); }

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

static void kent_free(worker *w, kent *e) {
    trk_worker *tw = w->trk;
    int i;
    for (i = 0; i < e->n; i++) sg_free(e->r[i].name);
    tw->nitems -= (size_t)e->n;
    tw->nkeys--;
    fig(&w->figs.trk_items, -(long long)e->n);
    fig(&w->figs.trk_keys, -1);
    sg_free(e->r);
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

/* The table's key of node key k of upstream up: up's byte, then k. */
static char *tkey(int up, const char *k, size_t n, char *small, size_t smalln, size_t *len) {
    char *b = n + 1 <= smalln ? small : sg_malloc(n + 1);
    if (b == NULL) return NULL;
    b[0] = (char)(unsigned char)up;
    memcpy(b + 1, k, n);
    *len = n + 1;
    return b;
}

/* s read node key k of upstream up, naming it sk: it is told of the key's
 * next change, by the name it used. */
static void remember(worker *w, const session *s, int up, const char *k, size_t n, const char *sk,
                     size_t sn) {
    trk_worker *tw = w->trk;
    char small[256], *key;
    size_t len;
    kent **pp, *e;
    reader *r;
    int i, same = sn == n && memcmp(sk, k, n) == 0;
    if ((tw->nkeys + 1 > tw->nb || tw->nb == 0) && grow(tw) != 0) return;
    if ((key = tkey(up, k, n, small, sizeof small, &len)) == NULL) return;
    pp = slot_of(tw, key, len);
    if ((e = *pp) == NULL) {
        if ((e = sg_calloc(1, sizeof *e + len)) == NULL) goto out;
        memcpy(e->key, key, len);
        e->len = len;
        *pp = e;
        tw->nkeys++;
        fig(&w->figs.trk_keys, 1);
    }
    for (i = 0; i < e->n; i++) {
        r = &e->r[i];
        if (r->id != s->id) continue;
        if (same ? r->name == NULL
                 : r->name && r->namelen == sn && memcmp(r->name, sk, sn) == 0)
            goto out;
    }
    if (sg_grow((void **)&e->r, &e->cap, e->n, sizeof *e->r, 1) != SG_OK) goto out;
    r = &e->r[e->n];
    r->id = s->id;
    r->name = NULL;
    r->namelen = 0;
    if (!same) {
        if ((r->name = sg_malloc(sn ? sn : 1)) == NULL) goto out;
        memcpy(r->name, sk, sn);
        r->namelen = sn;
    }
    e->n++;
    tw->nitems++;
    fig(&w->figs.trk_items, 1);
out:
    if (key != small) sg_free(key);
}

static void forget_all(worker *w) {
    trk_worker *tw = w->trk;
    size_t i;
    for (i = 0; i < tw->nb; i++)
        while (tw->buckets[i]) {
            kent *e = tw->buckets[i];
            tw->buckets[i] = e->next;
            kent_free(w, e);
        }
}

static session *session_by_id(worker *w, uint64_t id) {
    session *s;
    for (s = w->sessions; s; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

static trk **byid_slot(trk_worker *tw, uint64_t id) {
    trk **pp = &tw->byid[(id * 0x9E3779B97F4A7C15ULL >> 32) & (tw->nbyid - 1)];
    while (*pp && (*pp)->s->id != id) pp = &(*pp)->idnext;
    return pp;
}

/* The worker's tracking state of session id; NULL: none (it went). */
static trk *trk_by_id(trk_worker *tw, uint64_t id) {
    return tw->nbyid ? *byid_slot(tw, id) : NULL;
}

/* ---- the registry of session ids ---------------------------------------------------- */

static reg_ent **reg_slot(struct trk_reg *g, uint64_t id) {
    reg_ent **pp = &g->b[(id * 0x9E3779B97F4A7C15ULL >> 32) & (g->nb - 1)];
    while (*pp && (*pp)->id != id) pp = &(*pp)->next;
    return pp;
}

/* The worker that serves session id; -1: none (it went, or never was). */
static int reg_find(server *srv, uint64_t id) {
    struct trk_reg *g = srv->trk_reg;
    reg_ent *e;
    int k = -1;
    if (g == NULL) return -1;
    pthread_mutex_lock(&g->mu);
    if (g->nb && (e = *reg_slot(g, id)) != NULL) k = e->worker;
    pthread_mutex_unlock(&g->mu);
    return k;
}

void tracking_server_init(server *srv) {
    struct trk_reg *g = sg_calloc(1, sizeof *g);
    if (g == NULL) return; /* REDIRECT then finds only the worker's own sessions */
    pthread_mutex_init(&g->mu, NULL);
    srv->trk_reg = g;
}

void tracking_server_free(server *srv) {
    struct trk_reg *g = srv->trk_reg;
    size_t i;
    if (g == NULL) return;
    for (i = 0; i < g->nb; i++)
        while (g->b[i]) {
            reg_ent *e = g->b[i];
            g->b[i] = e->next;
            sg_free(e);
        }
    sg_free(g->b);
    pthread_mutex_destroy(&g->mu);
    sg_free(g);
    srv->trk_reg = NULL;
}

void tracking_session_new(session *s) {
    struct trk_reg *g = s->w->srv->trk_reg;
    reg_ent *e;
    if (g == NULL || (e = sg_malloc(sizeof *e)) == NULL) return;
    e->id = s->id;
    e->worker = s->w->id;
    pthread_mutex_lock(&g->mu);
    if (g->n + 1 > g->nb) { /* a table twice as large, the entries moved over */
        size_t nb = g->nb ? g->nb * 2 : 256, i;
        reg_ent **ob = g->b, **nbk = sg_calloc(nb, sizeof *nbk);
        size_t onb = g->nb;
        if (nbk) {
            g->b = nbk;
            g->nb = nb;
            for (i = 0; i < onb; i++)
                while (ob[i]) {
                    reg_ent *x = ob[i], **pp;
                    ob[i] = x->next;
                    pp = reg_slot(g, x->id);
                    x->next = *pp;
                    *pp = x;
                }
            sg_free(ob);
        }
    }
    if (g->nb) {
        reg_ent **pp = reg_slot(g, e->id);
        e->next = *pp;
        *pp = e;
        g->n++;
        e = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    sg_free(e); /* no table: not found, as a gone session */
}

static void reg_remove(session *s) {
    struct trk_reg *g = s->w->srv->trk_reg;
    reg_ent **pp, *e = NULL;
    if (g == NULL) return;
    pthread_mutex_lock(&g->mu);
    if (g->nb && *(pp = reg_slot(g, s->id)) != NULL) {
        e = *pp;
        *pp = e->next;
        g->n--;
    }
    pthread_mutex_unlock(&g->mu);
    sg_free(e);
}

/* ---- telling -------------------------------------------------------------------------- */

/* One invalidation (key, or NULL: everything) into target s as Redis sends
 * it: RESP3, a push; RESP2 (a redirect's target in subscribed mode), a
 * message on __redis__:invalidate; else nothing, as Redis. */
static void put_invalidation(session *s, int redirected, const char *key, size_t n) {
    sg_resp_out *o;
    reply_slot *rs = NULL;
    uint64_t seq;
    if (!session_open(s)) return;
    if (s->out.proto != SG_RESP_PROTO_3 && !(redirected && pubsub_active(s))) return;
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

/* An invalidation for a REDIRECT target served by another worker: posted to
 * that worker's loop, which runs them in the order posted. */
typedef struct remote_msg {
    worker *w; /* the target's */
    uint64_t target;
    int flush;
    size_t len;
    char key[];
} remote_msg;

static void on_remote(evutil_socket_t fd, short what, void *arg) {
    remote_msg *m = arg;
    session *s = session_by_id(m->w, m->target);
    (void)fd;
    (void)what;
    /* gone meanwhile: dropped, as a node drops the output of a client that
     * closes; the reader learns of it at its next invalidation */
    if (s) put_invalidation(s, 1, m->flush ? NULL : m->key, m->len);
    sg_free(m);
}

/* Redis 7.0 when the target is gone: the reader, when RESP3, gets
 * ["tracking-redir-broken", id] instead of each invalidation. */
static void redir_broken(trk *t) {
    session *s = t->s;
    sg_resp_out *o;
    reply_slot *rs = NULL;
    uint64_t seq;
    t->broken = 1;
    if (!session_open(s) || s->out.proto != SG_RESP_PROTO_3) return;
    if (s->count > 0) {
        if ((rs = reply_slot_new(s, &seq)) == NULL) return;
        o = &rs->out;
    } else {
        o = &s->out;
    }
    sg_resp_put_push(o, 2);
    sg_resp_put_bulk(o, "tracking-redir-broken", 21);
    sg_resp_put_int(o, t->redir);
    if (rs) reply_slot_done(rs);
    session_flush(s);
}

/* One invalidation for t's session, to it or to its REDIRECT target,
 * whichever worker serves that. */
static void send_to(trk *t, const char *key, size_t n) {
    worker *w = t->s->w;
    session *s;
    remote_msg *m;
    int k;
    struct timeval zero = {0, 0};
    if (t->redir == 0) {
        put_invalidation(t->s, 0, key, n);
        return;
    }
    if ((s = session_by_id(w, (uint64_t)t->redir)) != NULL) {
        put_invalidation(s, 1, key, n);
        return;
    }
    if ((k = reg_find(w->srv, (uint64_t)t->redir)) < 0 || k == w->id) {
        redir_broken(t);
        return;
    }
    if ((m = sg_malloc(sizeof *m + (key ? n : 0) + 1)) == NULL) {
        sg_log(SG_LOG_ERROR, "CLIENT TRACKING: out of memory telling client %lld of a change",
               t->redir);
        return;
    }
    m->w = &w->srv->w[k];
    m->target = (uint64_t)t->redir;
    m->flush = key == NULL;
    m->len = key ? n : 0;
    if (key) memcpy(m->key, key, n);
    if (event_base_once(m->w->base, -1, EV_TIMEOUT, on_remote, m, &zero) != 0) {
        sg_log(SG_LOG_ERROR, "CLIENT TRACKING: cannot reach worker %d to tell client %lld", k,
               t->redir);
        sg_free(m);
    }
}

static int prefix_match(const trk *t, const char *key, size_t n) {
    int i;
    if (t->nprefix == 0) return 1;
    for (i = 0; i < t->nprefix; i++)
        if (t->prefixlen[i] <= n && memcmp(key, t->prefix[i], t->prefixlen[i]) == 0) return 1;
    return 0;
}

/* The policies' prefix for s's keys (see sg_policy_key_prefix): SG_OK with
 * *pfx (NULL: none; the caller frees it), or SG_EINVAL with why in err. */
static int key_prefix(session *s, char **pfx, size_t *len, char *err, size_t errlen) {
    sg_policy *p = session_policy(s);
    sg_request_ctx ctx = {0};
    int rc;
    *pfx = NULL;
    *len = 0;
    if (p == NULL || sg_policy_count(p) == 0) return SG_OK;
    ctx.user = session_user(s);
    ctx.client = s->name;
    ctx.addr = s->addr;
    if ((rc = sg_policy_key_prefix(p, &ctx, pfx, len)) != SG_OK)
        snprintf(err, errlen, "%s", sg_errmsg(p));
    return rc;
}

/* A BCAST session and a key a node of any upstream named: it is told, by
 * its own name for the key, when that is under one of its prefixes. The
 * policies' prefix is found again each time: the user (AUTH), the name
 * (SETNAME) or the scripts (a reload) may have changed since. */
static void tell_bcast(trk *t, const char *key, size_t n) {
    char *pfx, err[SG_ERRMSG_MAX];
    size_t plen;
    if (key_prefix(t->s, &pfx, &plen, err, sizeof err) != SG_OK) {
        /* the session's names cannot be found any more (it became a user
         * whose policy hashes keys): a flush is what Redis sends when it
         * cannot say which */
        send_to(t, NULL, 0);
        return;
    }
    if (plen <= n && (plen == 0 || memcmp(key, pfx, plen) == 0) &&
        prefix_match(t, key + plen, n - plen))
        send_to(t, key + plen, n - plen);
    sg_free(pfx);
}

static uint64_t up_bit(int up) { return up >= 63 ? 1ULL << 63 : 1ULL << up; }

/* What is still owed of mask: the upstreams whose invalidation connections
 * are not all ready (bit 63 stands for every upstream past 62). */
static uint64_t still_owed(sg_gateway *g, uint64_t mask) {
    int i;
    for (i = 0; i < 64; i++)
        if ((mask >> i & 1) && sg_gateway_tracking_ready(g, i < 63 ? i : -1))
            mask &= ~(1ULL << i);
    return mask;
}

/* The upstreams of w's gateway whose invalidation connections are not all
 * ready now (a mask as trk.owes). */
static uint64_t not_ready(worker *w) {
    int i, n = sg_config_upstream_count(w->srv->cfg);
    uint64_t mask = 0;
    for (i = 0; i < n; i++)
        if (!sg_gateway_tracking_ready(w->gw, i)) mask |= up_bit(i);
    return mask;
}

/* Whether node key k of upstream up is one t is writing: the node's
 * message of its own write, taken off its list. */
static int own_consume(trk *t, int up, const char *k, size_t n) {
    int i;
    for (i = 0; i < t->nown; i++) {
        own_write *o = &t->own[i];
        if (o->up != up || o->len != n || memcmp(o->key, k, n) != 0) continue;
        sg_free(o->key);
        memmove(o, o + 1, (size_t)(t->nown - i - 1) * sizeof *o);
        t->nown--;
        return 1;
    }
    return 0;
}

/* The write tagged tag has its reply: a message for its keys from now on
 * is someone else's change (or a later one), told again. */
static void own_forget(trk *t, uint64_t tag) {
    int i, j = 0;
    for (i = 0; i < t->nown; i++) {
        if (t->own[i].tag == tag) sg_free(t->own[i].key);
        else t->own[j++] = t->own[i];
    }
    t->nown = j;
}

static void own_free(trk *t) {
    int i;
    for (i = 0; i < t->nown; i++) sg_free(t->own[i].key);
    sg_free(t->own);
    t->own = NULL;
    t->nown = t->capown = 0;
}

/* Node key k of upstream up changed, or is about to (writer: the session
 * whose write it is, NULL: a node's message): this worker's BCAST sessions
 * whose prefixes match are told, and the sessions that read it (default
 * mode), each by its own name, once: the key is forgotten, as Redis does. A
 * NOLOOP writer is not told of its own write. */
static void tell_key(worker *w, const session *writer, int up, const char *k, size_t n) {
    trk_worker *tw = w->trk;
    trk *t;
    char small[256], *tk;
    size_t len;
    kent **pp, *e;
    int i;
    for (t = tw->list; t; t = t->next) {
        if (!t->on || !t->bcast || (t->noloop && t->s == writer)) continue;
        if (writer == NULL && t->nown && own_consume(t, up, k, n)) continue;
        tell_bcast(t, k, n);
    }
    if (tw->nb == 0) return;
    if ((tk = tkey(up, k, n, small, sizeof small, &len)) == NULL) return;
    e = *(pp = slot_of(tw, tk, len));
    if (tk != small) sg_free(tk);
    if (e == NULL) return;
    *pp = e->next; /* told once: a new read tracks it again */
    for (i = 0; i < e->n; i++) {
        if ((t = trk_by_id(tw, e->r[i].id)) == NULL || !t->on || t->bcast) continue;
        if (t->noloop && t->s == writer) continue;
        if (e->r[i].name) send_to(t, e->r[i].name, e->r[i].namelen);
        else send_to(t, k, n);
    }
    kent_free(w, e);
}

/* A write's keys for another worker's sessions, posted to its loop: each
 * key as a length (size_t) and its bytes, one after the other. */
typedef struct remote_write {
    worker *w; /* the target worker */
    struct trk_gate *gate; /* NULL: the writer's reply does not wait */
    int up;
    size_t len;
    char keys[];
} remote_write;

/* A write's reply held until the other workers told their sessions. */
struct trk_gate {
    session *s;   /* the writer: s->inflight held by the gate */
    worker *home; /* s's */
    uint64_t seq; /* the write's reply slot */
    int left;     /* atomic: the workers still telling, the reply, the poster */
    int held;     /* the reply is in its slot, not done */
    uint64_t own; /* not 0: the writer's own_write tag, forgotten at the reply */
};

/* A NOLOOP writer's keys, forgotten 1 ms after its write's reply: the node
 * writes its message with the reply (before it, as a rule), but the other
 * connection's bytes may be read a turn or two later; a message later than
 * that is told (a duplicate, never a loss). Within that time, a change by
 * another client of a key whose own write changed nothing (a DEL of no
 * key, a SET NX that did not set) is taken for its own and not told. */
typedef struct own_later {
    worker *w;
    uint64_t id, tag;
} own_later;

static void on_own_later(evutil_socket_t fd, short what, void *arg) {
    own_later *l = arg;
    trk *t = l->w->trk ? trk_by_id(l->w->trk, l->id) : NULL;
    (void)fd;
    (void)what;
    if (t) own_forget(t, l->tag);
    sg_free(l);
}

static void own_forget_later(session *s, uint64_t tag) {
    static const struct timeval soon = {0, 1000};
    own_later *l = sg_malloc(sizeof *l);
    if (l) {
        l->w = s->w;
        l->id = s->id;
        l->tag = tag;
        if (event_base_once(s->w->base, -1, EV_TIMEOUT, on_own_later, l, &soon) == 0) return;
        sg_free(l);
    }
    own_forget(s->trk, tag); /* now: a message after it is told */
}

/* The gate opens (s's worker): the reply goes out, after every push. */
static void gate_open(evutil_socket_t fd, short what, void *arg) {
    struct trk_gate *g = arg;
    session *s = g->s;
    (void)fd;
    (void)what;
    if (g->own && s->trk) own_forget_later(s, g->own);
    if (g->held && !s->gone) {
        reply_slot_done(reply_slot_at(s, g->seq));
        session_flush(s);
    }
    session_owed_done(s); /* the gate's hold: s is freed here when it went */
    sg_free(g);
}

/* One of the gate's holds ends (on any worker's thread). */
static void gate_drop(struct trk_gate *g, worker *on) {
    struct timeval zero = {0, 0};
    if (__atomic_sub_fetch(&g->left, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (on == g->home) {
        gate_open(-1, 0, g);
        return;
    }
    if (event_base_once(g->home->base, -1, EV_TIMEOUT, gate_open, g, &zero) != 0) {
        /* the writer's loop cannot be reached: its reply waits for ever,
         * said once in the log; the session leaks with it */
        sg_log(SG_LOG_ERROR, "CLIENT TRACKING: cannot reach worker %d to let a write's reply "
               "go", g->home->id);
    }
}

void tracking_gate_pass(struct trk_gate *g, int held) {
    g->held = held;
    gate_drop(g, g->home);
}

/* The target worker's sessions were told, and the turn's writes carried
 * their pushes out: the gate's hold goes (a timer: after the turn's writes). */
static void on_remote_told(evutil_socket_t fd, short what, void *arg) {
    remote_write *m = arg;
    (void)fd;
    (void)what;
    gate_drop(m->gate, m->w);
    sg_free(m);
}

static void on_remote_write(evutil_socket_t fd, short what, void *arg) {
    remote_write *m = arg;
    size_t at = 0, n;
    struct timeval zero = {0, 0};
    (void)fd;
    (void)what;
    while (m->w->trk && at + sizeof n <= m->len) {
        memcpy(&n, m->keys + at, sizeof n);
        at += sizeof n;
        tell_key(m->w, NULL, m->up, m->keys + at, n);
        at += n;
    }
    if (m->gate == NULL) {
        sg_free(m);
        return;
    }
    /* the pushes are written at the end of this turn (server.c): the
     * writer's reply goes after that, from the next one */
    if (event_base_once(m->w->base, -1, EV_TIMEOUT, on_remote_told, m, &zero) != 0)
        on_remote_told(-1, 0, m);
}

/* Session s writes keys (their argument indexes idx, the node's names in
 * nargv) on upstream up: told before the write leaves, as a node tells
 * during the write, so that no one is served an old copy once the writer
 * has its reply. This worker's sessions at once (the writer's own push
 * follows its reply: put_invalidation); the other workers' with a tracking
 * session are posted the keys, and their loops tell them while the write
 * is on its way to the node. */
static struct trk_gate *gate_new(worker *w, session *s, owed *hold) {
    struct trk_gate *g = sg_calloc(1, sizeof *g);
    if (g == NULL) return NULL;
    g->s = s;
    g->home = w;
    g->seq = hold->seq;
    g->left = 2; /* the reply, and tell_write's until it posted all */
    s->inflight++;
    hold->gate = g;
    return g;
}

static void tell_write(worker *w, session *s, owed *hold, int up, const int *idx, int n,
                       int argc, const char *const *nargv, const size_t *nargvlen) {
    server *srv = w->srv;
    struct trk_gate *g = NULL;
    trk *t = s->trk && s->trk->on ? s->trk : NULL;
    size_t len = 0;
    int i, k;
    struct timeval zero = {0, 0};
    if (hold && t && t->bcast && t->noloop && (g = gate_new(w, s, hold)) != NULL) {
        /* NOLOOP: the node's messages for these keys until the reply are
         * this write's (Redis sends them before the reply) */
        g->own = ++t->wseq;
        for (i = 0; i < n; i++) {
            own_write *o;
            if (idx[i] >= argc ||
                sg_grow((void **)&t->own, &t->capown, t->nown, sizeof *t->own, 1) != SG_OK)
                continue;
            o = &t->own[t->nown];
            if ((o->key = sg_malloc(nargvlen[idx[i]] + 1)) == NULL) continue;
            memcpy(o->key, nargv[idx[i]], nargvlen[idx[i]]);
            o->len = nargvlen[idx[i]];
            o->up = up;
            o->tag = g->own;
            t->nown++;
        }
    }
    if (__atomic_load_n(&w->figs.trk_clients, __ATOMIC_RELAXED) != 0)
        for (i = 0; i < n; i++)
            if (idx[i] < argc) tell_key(w, s, up, nargv[idx[i]], nargvlen[idx[i]]);
    for (i = 0; i < n; i++)
        if (idx[i] < argc) len += sizeof(size_t) + nargvlen[idx[i]];
    for (k = 0; k < srv->nw && len; k++) {
        remote_write *m;
        size_t at = 0;
        if (k == w->id || __atomic_load_n(&srv->w[k].figs.trk_clients, __ATOMIC_RELAXED) == 0)
            continue;
        if ((m = sg_malloc(sizeof *m + len)) == NULL) {
            sg_log(SG_LOG_ERROR, "CLIENT TRACKING: out of memory telling worker %d of a write "
                   "(its sessions hear of it from the node)", k);
            continue;
        }
        if (hold && g == NULL) g = gate_new(w, s, hold);
        m->w = &srv->w[k];
        m->gate = g;
        m->up = up;
        m->len = len;
        for (i = 0; i < n; i++) {
            size_t kn;
            if (idx[i] >= argc) continue;
            kn = nargvlen[idx[i]];
            memcpy(m->keys + at, &kn, sizeof kn);
            memcpy(m->keys + at + sizeof kn, nargv[idx[i]], kn);
            at += sizeof kn + kn;
        }
        if (g) __atomic_add_fetch(&g->left, 1, __ATOMIC_ACQ_REL);
        if (event_base_once(m->w->base, -1, EV_TIMEOUT, on_remote_write, m, &zero) != 0) {
            sg_log(SG_LOG_ERROR, "CLIENT TRACKING: cannot reach worker %d to tell it of a write "
                   "(its sessions hear of it from the node)", k);
            if (g) gate_drop(g, w);
            sg_free(m);
        }
    }
    if (g) gate_drop(g, w); /* the reply's hold remains: never opens here */
}

/* What the gateway's invalidation connections say (sg_track_fn). */
static void on_track(void *ud, int up, int event, const char *key, size_t n) {
    worker *w = ud;
    trk_worker *tw = w->trk;
    trk *t;
    if (tw == NULL) return;
    if (event == SG_TRACK_READY) {
        /* each upstream's flush as soon as its connections are: one that is
         * down does not hold back the others' */
        for (t = tw->list; t; t = t->next) {
            uint64_t left;
            if (!t->on || t->owes == 0 || (left = still_owed(w->gw, t->owes)) == t->owes)
                continue;
            t->owes = left;
            send_to(t, NULL, 0);
        }
        return;
    }
    if (event == SG_TRACK_FLUSH) {
        forget_all(w);
        for (t = tw->list; t; t = t->next)
            if (t->on) {
                t->owes = 0;
                send_to(t, NULL, 0);
            }
        return;
    }
    tell_key(w, NULL, up, key, n);
}

static trk *trk_of(session *s) {
    trk_worker *tw = tw_of(s->w);
    trk *t, **pp;
    if (s->trk) return s->trk;
    if (tw == NULL) return NULL;
    if (tw->nlist + 1 > tw->nbyid) { /* twice as many buckets, the sessions moved over */
        size_t nb = tw->nbyid ? tw->nbyid * 2 : 64, i;
        trk **old = tw->byid, **nt = sg_calloc(nb, sizeof *nt);
        size_t onb = tw->nbyid;
        if (nt == NULL && tw->nbyid == 0) return NULL;
        if (nt) {
            tw->byid = nt;
            tw->nbyid = nb;
            for (i = 0; i < onb; i++)
                while (old[i]) {
                    trk *x = old[i];
                    old[i] = x->idnext;
                    pp = byid_slot(tw, x->s->id);
                    x->idnext = *pp;
                    *pp = x;
                }
            sg_free(old);
        } /* else: longer chains, still found */
    }
    if ((t = sg_calloc(1, sizeof *t)) == NULL) return NULL;
    t->s = s;
    t->next = tw->list;
    tw->list = t;
    pp = byid_slot(tw, s->id);
    t->idnext = *pp;
    *pp = t;
    tw->nlist++;
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

/* What t counts in the figures (sign -1: taken off, before a change): a
 * session with tracking on, and a BCAST one's prefixes (none: the empty
 * prefix, as Redis counts it). */
static void figs_of(trk *t, int sign) {
    worker *w = t->s->w;
    if (!t->on) return;
    fig(&w->figs.trk_clients, sign);
    __atomic_add_fetch(&w->srv->trk_on, sign, __ATOMIC_RELAXED);
    if (t->bcast) fig(&w->figs.trk_prefixes, sign * (long long)(t->nprefix ? t->nprefix : 1));
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
            if (session_by_id(s->w, (uint64_t)redir) == NULL &&
                reg_find(s->w->srv, (uint64_t)redir) < 0) {
                sg_resp_put_error(o, "ERR The client ID you want redirect to does not exist");
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
            figs_of(t, -1);
            t->on = t->bcast = t->optin = t->optout = t->noloop = 0;
            t->caching_next = t->caching = t->broken = 0;
            t->owes = 0;
            t->redir = 0;
            prefixes_free(t);
            own_free(t);
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
    if (bcast) {
        /* a BCAST session is told of the keys under its prefixes by the
         * node's names: its own must be found again from those */
        char *pfx, why[SG_ERRMSG_MAX], msg[SG_ERRMSG_MAX + 200];
        size_t plen;
        int rc = key_prefix(s, &pfx, &plen, why, sizeof why);
        sg_free(pfx);
        if (rc == SG_EINVAL) {
            snprintf(msg, sizeof msg,
                     "ERR slotgate: CLIENT TRACKING BCAST cannot tell this client of its keys: "
                     "%s. Track without BCAST: each key is told by the name it was read as",
                     why);
            sg_resp_put_error(o, msg);
            goto out;
        }
        if (rc != SG_OK) {
            sg_resp_put_error(o, "ERR slotgate: out of memory");
            goto out;
        }
    }
    if ((t = trk_of(s)) == NULL) {
        sg_resp_put_error(o, "ERR slotgate: out of memory");
        goto out;
    }
    figs_of(t, -1);
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
    t->broken = 0; /* as Redis: ON starts afresh */
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
        /* BCAST tells of changes from now, on every upstream: one made before
         * every node's connection is ready may go untold, so a flush follows */
        if (bcast) t->owes = not_ready(s->w);
    }
    figs_of(t, 1);
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
            /* as Redis: known once an invalidation found the target gone */
            if (t->broken) flags[nf++] = "broken_redirect";
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

static void tracking_exec(session *s);
static void tracking_txn_drop(session *s);

void tracking_next(session *s, const sg_command *cmd) {
    trk *t = s->trk;
    /* as Redis: CLIENT's subcommands (TRACKINGINFO ...) leave it for the next */
    if (cmd && (sg_command_index(cmd) == SG_CI_CLIENT ||
                (cmd->parent && sg_command_index(cmd->parent) == SG_CI_CLIENT)))
        return;
    t->caching = t->caching_next;
    t->caching_next = 0;
    if (cmd == NULL) return;
    if (sg_command_index(cmd) == SG_CI_MULTI && !txn_queuing(s)) {
        /* as Redis: the answer given before MULTI holds for the reads EXEC
         * runs; a discarded transaction's reads are forgotten */
        t->txn_caching = t->caching;
        tracking_txn_drop(s);
    } else if (sg_command_index(cmd) == SG_CI_EXEC && t->ntxr && txn_exec_runs(s)) {
        tracking_exec(s);
    }
}

/* A read t queued in MULTI: its keys kept (the node's names and t's) for
 * tracking_exec; OPTIN/OPTOUT by CLIENT CACHING's answer before MULTI, which
 * lasts through the transaction in Redis. */
static void queue_read(trk *t, int up, const sg_command *cmd, const sg_resp_req *r, int argc,
                       const char *const *nargv, const size_t *nargvlen) {
    int small[16], *idx = small, n, i;
    if (t->optin && !t->txn_caching) return;
    if (t->optout && t->txn_caching) return;
    if (r->argc > 16 && (idx = sg_malloc((size_t)r->argc * sizeof *idx)) == NULL) return;
    n = sg_command_keys(cmd, r->argc, (const char *const *)r->argv, r->argvlen, idx, r->argc);
    for (i = 0; i < n; i++) {
        txn_read *x;
        int ai = idx[i];
        if (ai >= argc ||
            sg_grow((void **)&t->txr, &t->captxr, t->ntxr, sizeof *t->txr, 4) != SG_OK)
            continue;
        x = &t->txr[t->ntxr];
        x->up = up;
        x->nkl = nargvlen[ai];
        x->skl = r->argvlen[ai];
        x->nk = sg_malloc(x->nkl + 1);
        x->sk = sg_malloc(x->skl + 1);
        if (x->nk == NULL || x->sk == NULL) {
            sg_free(x->nk);
            sg_free(x->sk);
            continue;
        }
        memcpy(x->nk, nargv[ai], x->nkl);
        memcpy(x->sk, r->argv[ai], x->skl);
        t->ntxr++;
    }
    if (idx != small) sg_free(idx);
}

/* The gateway's routed call for a command tracking_forward saw: where it
 * goes and its keys as the node names them (the policies' rewrites made). */
static void on_routed(void *ud, int up, int argc, const char *const *nargv,
                      const size_t *nargvlen) {
    worker *w = ud;
    trk_worker *tw = w->trk;
    session *s = tw->cur_s;
    const sg_command *cmd = tw->cur_cmd;
    const sg_resp_req *r = tw->cur_r;
    owed *hold = tw->cur_hold;
    int queued = tw->cur_queued;
    trk *t;
    int small[16], *idx = small, n, i, ro;
    tw->cur_hold = NULL;
    tw->cur_queued = 0;
    tw->cur_s = NULL;
    tw->cur_cmd = NULL;
    tw->cur_r = NULL;
    if (s == NULL || cmd == NULL || r == NULL || up < 0) return;
    t = s->trk && s->trk->on ? s->trk : NULL;
    ro = (cmd->flags & SG_CMD_READONLY) != 0;
    if (queued) {
        if (t && ro && !t->bcast) queue_read(t, up, cmd, r, argc, nargv, nargvlen);
        return;
    }
    if (t && t->bcast) {
        /* changes told from now on; while a connection of the upstream it
         * uses is not ready one may go untold: a flush follows once they
         * are (only that upstream is asked: one that is down is not asked
         * for a new map at every command) */
        if (!sg_gateway_tracking_ready(w->gw, up)) t->owes |= up_bit(up);
        if (ro) return;
    }
    if (ro) {
        if (t == NULL) return;
        if (t->optin && !t->caching) return;
        if (t->optout && t->caching) return;
    }
    if (r->argc > 16 && (idx = sg_malloc((size_t)r->argc * sizeof *idx)) == NULL) return;
    n = sg_command_keys(cmd, r->argc, (const char *const *)r->argv, r->argvlen, idx, r->argc);
    if (n > 0 && ro && !sg_gateway_tracking_ready(w->gw, up)) t->owes |= up_bit(up);
    if (ro) {
        for (i = 0; i < n; i++) /* a rewrite keeps every argument: idx[i] < argc */
            if (idx[i] < argc)
                remember(w, s, up, nargv[idx[i]], nargvlen[idx[i]], r->argv[idx[i]],
                         r->argvlen[idx[i]]);
    } else if (n > 0) {
        tell_write(w, s, hold, up, idx, n, argc, nargv, nargvlen);
    }
    if (idx != small) sg_free(idx);
}

void tracking_queue(session *s, const sg_command *cmd, const sg_resp_req *r,
                    sg_request_ctx *ctx) {
    trk_worker *tw;
    if (cmd == NULL || !s->trk->on || s->trk->bcast || !(cmd->flags & SG_CMD_READONLY)) return;
    if ((tw = tw_of(s->w)) == NULL) return;
    tw->cur_s = s;
    tw->cur_cmd = cmd;
    tw->cur_r = r;
    tw->cur_hold = NULL;
    tw->cur_queued = 1;
    ctx->routed = on_routed;
    ctx->routed_ud = s->w;
}

/* An EXEC that runs is about to leave: the queued reads are tracked. */
static void tracking_exec(session *s) {
    trk *t = s->trk;
    int i;
    for (i = 0; t->on && !t->bcast && i < t->ntxr; i++) {
        txn_read *x = &t->txr[i];
        if (!sg_gateway_tracking_ready(s->w->gw, x->up)) t->owes |= up_bit(x->up);
        remember(s->w, s, x->up, x->nk, x->nkl, x->sk, x->skl);
    }
    tracking_txn_drop(s);
}

static void tracking_txn_drop(session *s) {
    trk *t = s->trk;
    int i;
    for (i = 0; i < t->ntxr; i++) {
        sg_free(t->txr[i].nk);
        sg_free(t->txr[i].sk);
    }
    sg_free(t->txr);
    t->txr = NULL;
    t->ntxr = t->captxr = 0;
}

void tracking_forward(session *s, const sg_command *cmd, const sg_resp_req *r,
                      sg_request_ctx *ctx, owed *hold) {
    trk_worker *tw;
    int on = s->trk && s->trk->on;
    if (cmd == NULL || (!on && (cmd->flags & SG_CMD_READONLY))) return;
    if ((tw = tw_of(s->w)) == NULL) return; /* out of memory: the node's message tells */
    /* the keys are known once the policies decided: the gateway says */
    tw->cur_s = s;
    tw->cur_cmd = cmd;
    tw->cur_r = r;
    tw->cur_hold = hold;
    ctx->routed = on_routed;
    ctx->routed_ud = s->w;
}

void tracking_list_flags(const session *s, char **f) {
    const trk *t = s->trk;
    if (t == NULL || !t->on) return;
    *(*f)++ = 't';
    if (t->broken) *(*f)++ = 'R';
    if (t->bcast) *(*f)++ = 'B';
}

long long tracking_list_redir(const session *s) {
    return s->trk && s->trk->on ? s->trk->redir : -1;
}

void tracking_free(session *s) {
    reg_remove(s);
    tracking_reset(s);
}

void tracking_reset(session *s) {
    trk_worker *tw = s->w->trk;
    trk **pp;
    if (s->trk == NULL) return;
    figs_of(s->trk, -1);
    for (pp = &tw->list; *pp; pp = &(*pp)->next)
        if (*pp == s->trk) {
            *pp = s->trk->next;
            break;
        }
    pp = byid_slot(tw, s->id);
    assert(*pp == s->trk); /* every state is in both */
    *pp = s->trk->idnext;
    tw->nlist--;
    prefixes_free(s->trk);
    own_free(s->trk);
    tracking_txn_drop(s);
    sg_free(s->trk);
    s->trk = NULL;
}

void tracking_worker_free(worker *w) {
    trk_worker *tw = w->trk;
    if (tw == NULL) return;
    forget_all(w);
    sg_free(tw->buckets);
    sg_free(tw->byid);
    sg_free(tw);
    w->trk = NULL;
}
