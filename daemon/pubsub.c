/*
 * pubsub.c — SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs for
 * slotgated's clients, each subscribed client on server connections of its
 * own (sg_link), and subscribed mode.
 *
 * Classic channels and patterns: one connection to any master (Redis Cluster
 * broadcasts PUBLISH to every node). Shard channels: one connection per
 * master the client's shard channels hash to; one SSUBSCRIBE's channels must
 * share a slot, as in Redis Cluster. Each subscribe-family command is
 * followed on its connection by a PING: everything but messages up to the
 * PING's answer is the command's confirmations, which makes UNSUBSCRIBE
 * without arguments (one confirmation per channel held) need no bookkeeping.
 * Messages go to the client as they come, after any reply it is still owed.
 *
 * A RESP3 session's subscriptions are on RESP3 connections (its gateway
 * client's): confirmations and messages come, and go to it, as pushes, and
 * it may send any command while subscribed, as Redis allows in RESP3; a
 * RESP2 session is in subscribed mode (only the family, PING, QUIT, RESET).
 *
 * RESET is the dispatcher's (dispatch.c); it calls pubsub_reset.
 *
 * Bounds: a subscriber that leaves more than pubsub_output_limit bytes
 * unread is closed and logged; nobody else waits for it. A subscription
 * connection that fails (its node down, say) closes the subscriber: its
 * client sees the close, as it would a Redis node's, and subscribes again.
 */
#include <assert.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pubsub.h"
#include "users.h"

/* A reply owed to the client, made of confirmations from one or more
 * connections. */
typedef struct owed_reply {
    uint64_t seq;
    int links; /* connections still to confirm */
} owed_reply;

typedef struct owe {
    struct owe *next;
    owed_reply *o;
} owe;

typedef struct plink {
    struct psub *ps;
    struct plink *next; /* in ps->shards */
    sg_link *l;
    int shard;
    long count;         /* subscriptions on it, as its node last said */
    long nsub, npsub;   /* of them, channels and patterns (a classic link) */
    owe *head, *tail;
} plink;

typedef struct psub {
    session *s;
    int mode;           /* subscribed: only the subscribe family, PING, QUIT, RESET */
    plink *classic;
    plink *shards;
    size_t held;        /* bytes of messages waiting behind replies still owed */
} psub;

static const char ping_resp[] = "*1\r\n$4\r\nPING\r\n";

int pubsub_active(const session *s) { return s->psub && s->psub->mode; }

void pubsub_counts(const session *s, long *nsub, long *npsub, long *nssub) {
    const psub *ps = s->psub;
    const plink *pl;
    *nsub = *npsub = *nssub = 0;
    if (ps == NULL) return;
    if (ps->classic) {
        *nsub = ps->classic->nsub;
        *npsub = ps->classic->npsub;
    }
    for (pl = ps->shards; pl; pl = pl->next) *nssub += pl->count;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void owed_done(session *s, owed_reply *o) {
    if (--o->links > 0) return;
    reply_slot_done(reply_slot_at(s, o->seq));
    sg_free(o);
}

static void plink_free(plink *pl, int complete) {
    psub *ps = pl->ps;
    plink **pp;
    owe *e;
    if (ps->classic == pl) ps->classic = NULL;
    for (pp = &ps->shards; *pp; pp = &(*pp)->next)
        if (*pp == pl) {
            *pp = pl->next;
            break;
        }
    while ((e = pl->head) != NULL) {
        pl->head = e->next;
        if (complete) owed_done(ps->s, e->o); /* RESET: what came is the reply */
        else if (--e->o->links == 0) sg_free(e->o);
        sg_free(e);
    }
    sg_link_free(pl->l);
    sg_free(pl);
}

static long total(const psub *ps, int shard) {
    long n = 0;
    const plink *pl;
    if (!shard) return ps->classic ? ps->classic->count : 0;
    for (pl = ps->shards; pl; pl = pl->next) n += pl->count;
    return n;
}

/* Whether the session still holds (or is about to hold) subscriptions. */
static void update_mode(psub *ps) {
    const plink *pl;
    if (ps->classic && (ps->classic->count > 0 || ps->classic->head)) return;
    for (pl = ps->shards; pl; pl = pl->next)
        if (pl->count > 0 || pl->head) return;
    ps->mode = 0;
}

/* A message: to the client now when nothing is owed before it, else after
 * what is owed; over the bound, the subscriber goes. 0 when the session
 * is closing. */
static int deliver(psub *ps, const sg_reply *r) {
    session *s = ps->s;
    long long limit = s->w->o->pubsub_output_limit;
    uint64_t seq;
    reply_slot *rs;
    size_t unread;
    if (!session_open(s)) return 0; /* its close is asked: nothing more to it */
    if (s->count == 0) {
        ps->held = 0;
        sg_resp_put_reply(&s->out, r);
        if (s->out.buf.oom) {
            sg_log_fields at = session_log_fields(s);
            sg_log_at(SG_LOG_WARN, &at, "subscriber %s (id %llu) closed: out of memory", s->addr,
                      (unsigned long long)s->id);
            session_close(s);
            return 0;
        }
    } else if ((rs = reply_slot_new(s, &seq)) != NULL) {
        size_t before = rs->out.buf.len;
        sg_resp_put_reply(&rs->out, r);
        reply_slot_done(rs);
        ps->held += rs->out.buf.len - before;
    }
    unread = s->out.buf.len - s->outoff + ps->held;
    if (limit > 0 && unread > (size_t)limit) {
        sg_log_fields at = session_log_fields(s);
        sg_log_at(SG_LOG_WARN, &at,
                  "subscriber %s (id %llu) closed: %zu bytes of messages unread, over the "
                  "pubsub_output_limit of %lld",
                  s->addr, (unsigned long long)s->id, unread, limit);
        session_close(s);
        return 0;
    }
    return 1;
}

static int is_kind(const sg_reply *r, const char *kind) {
    return (r->type == SG_REPLY_ARRAY || r->type == SG_REPLY_PUSH) && r->elements >= 1 &&
           r->element[0]->type == SG_REPLY_STRING &&
           strcasecmp(r->element[0]->str, kind) == 0;
}

/* A confirmation for the oldest owed reply; shard counts are the session's
 * across its shard connections, as a client expects them. */
static void confirm(plink *pl, sg_reply *r) {
    psub *ps = pl->ps;
    session *s = ps->s;
    owe *e = pl->head;
    reply_slot *rs;
    if (e == NULL) return;
    rs = reply_slot_at(s, e->o->seq);
    if ((r->type == SG_REPLY_ARRAY || r->type == SG_REPLY_PUSH) && r->elements == 3 &&
        r->element[2]->type == SG_REPLY_INTEGER) {
        /* the node counts channels and patterns together: what changed is
         * the kind's that this confirmation names */
        long delta = (long)r->element[2]->integer - pl->count;
        if (is_kind(r, "psubscribe") || is_kind(r, "punsubscribe")) pl->npsub += delta;
        else pl->nsub += delta;
        pl->count = r->element[2]->integer;
        r->element[2]->integer = total(ps, pl->shard);
    }
    sg_resp_put_reply(&rs->out, r);
}

static void on_link(sg_link *l, sg_reply *r, int status, const char *errmsg, void *ud) {
    plink *pl = ud;
    psub *ps = pl->ps;
    session *s = ps->s;
    (void)l;
    if (r == NULL) {
        sg_log_fields at = session_log_fields(s);
        sg_log_at(SG_LOG_WARN, &at,
                  "subscriber %s (id %llu) closed: its subscription connection failed: %s", s->addr,
                  (unsigned long long)s->id, errmsg);
        (void)status;
        session_close(s); /* the server loop frees pl with it */
        return;
    }
    if (is_kind(r, "message") || is_kind(r, "pmessage") || is_kind(r, "smessage")) {
        int alive = deliver(ps, r);
        sg_reply_free(r);
        if (alive) session_flush(s);
        return;
    }
    if ((r->type == SG_REPLY_STATUS && strcmp(r->str, "PONG") == 0) || is_kind(r, "pong")) {
        /* the end of the oldest command's confirmations */
        owe *e = pl->head;
        sg_reply_free(r);
        if (e) {
            if ((pl->head = e->next) == NULL) pl->tail = NULL;
            owed_done(s, e->o);
            sg_free(e);
        }
        if (pl->count == 0 && pl->head == NULL) plink_free(pl, 0); /* nothing left on it */
        update_mode(ps);
        session_flush(s);
        return;
    }
    confirm(pl, r);
    sg_reply_free(r);
}

static plink *plink_new(psub *ps, sg_client *c, int at, int shard) {
    plink *pl = sg_calloc(1, sizeof *pl);
    if (pl == NULL) return NULL;
    pl->ps = ps;
    pl->shard = shard;
    if ((pl->l = sg_link_open(c, at, on_link, pl)) == NULL) {
        sg_free(pl);
        return NULL;
    }
    if (shard) {
        pl->next = ps->shards;
        ps->shards = pl;
    } else {
        ps->classic = pl;
    }
    return pl;
}

/* Sends the command and the PING that ends its confirmations. */
static int plink_send(plink *pl, const char *resp, size_t len, owed_reply *o) {
    owe *e = sg_calloc(1, sizeof *e);
    if (e == NULL) return SG_ENOMEM;
    if (sg_link_send(pl->l, resp, len, 0) != SG_OK ||
        sg_link_send(pl->l, ping_resp, sizeof ping_resp - 1, 1) != SG_OK) {
        sg_free(e);
        return SG_EIO;
    }
    e->o = o;
    o->links++;
    if (pl->tail) pl->tail->next = e;
    else pl->head = e;
    pl->tail = e;
    return SG_OK;
}

/* ---- commands -------------------------------------------------------------------------------- */

void pubsub_refuse(session *s, const sg_resp_req *r, uint64_t seq) {
    char msg[200];
    size_t i, n;
    char name[64];
    n = r->argvlen[0] < sizeof name - 1 ? r->argvlen[0] : sizeof name - 1;
    for (i = 0; i < n; i++) name[i] = (char)tolower((unsigned char)r->argv[0][i]);
    name[n] = '\0';
    snprintf(msg, sizeof msg,
             "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
             "are allowed in this context",
             name);
    session_answer_error(s, seq, msg);
}

/* UNSUBSCRIBE-family replies when there is no connection to ask. */
static void unsubscribed_locally(session *s, const sg_command *cmd, const sg_resp_req *r,
                                 uint64_t seq, long count) {
    reply_slot *rs = reply_slot_at(s, seq);
    int k;
    if (r->argc == 1) {
        sg_resp_put_push(&rs->out, 3);
        sg_resp_put_bulk(&rs->out, cmd->name, cmd->namelen);
        sg_resp_put_null(&rs->out);
        sg_resp_put_int(&rs->out, count);
    } else {
        for (k = 1; k < r->argc; k++) {
            sg_resp_put_push(&rs->out, 3);
            sg_resp_put_bulk(&rs->out, cmd->name, cmd->namelen);
            sg_resp_put_bulk(&rs->out, r->argv[k], r->argvlen[k]);
            sg_resp_put_int(&rs->out, count);
        }
    }
    reply_slot_done(rs);
}

void pubsub_ping(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs;
    (void)cmd;
    if (r->argc > 2) {
        session_answer_error(s, seq, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    rs = reply_slot_at(s, seq);
    sg_resp_put_array(&rs->out, 2);
    sg_resp_put_bulk(&rs->out, "pong", 4);
    if (r->argc == 2) sg_resp_put_bulk(&rs->out, r->argv[1], r->argvlen[1]);
    else sg_resp_put_bulk(&rs->out, "", 0);
    reply_slot_done(rs);
}

void pubsub_command(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    size_t ci = sg_command_index(cmd);
    psub *ps = s->psub;
    sg_request_ctx ctx;
    sg_prepared p;
    owed_reply *o;
    char err[600];
    int shard, sub, rc = SG_OK;
    shard = ci == SG_CI_SSUBSCRIBE || ci == SG_CI_SUNSUBSCRIBE;
    sub = ci == SG_CI_SUBSCRIBE || ci == SG_CI_PSUBSCRIBE || ci == SG_CI_SSUBSCRIBE;
    assert(sub || ci == SG_CI_UNSUBSCRIBE || ci == SG_CI_PUNSUBSCRIBE || ci == SG_CI_SUNSUBSCRIBE);
    session_ctx(s, &ctx);
    if (sg_gateway_prepare(s->w->gw, &ctx, r->argc, r->argv, r->argvlen, &p) != SG_OK) {
        snprintf(err, sizeof err, "ERR slotgate: %s", sg_errmsg(s->w->gw));
        session_answer_error(s, seq, err);
        return;
    }
    if (p.error[0]) {
        session_answer_error(s, seq, p.error);
        goto done;
    }
    if (shard && p.slot == -2) {
        session_answer_error(s, seq, "CROSSSLOT Keys in request don't hash to the same slot");
        goto done;
    }
    if (ps == NULL) {
        if ((ps = s->psub = sg_calloc(1, sizeof *ps)) == NULL) {
            session_answer_error(s, seq, "ERR slotgate: out of memory");
            goto done;
        }
        ps->s = s;
    }
    if ((o = sg_calloc(1, sizeof *o)) == NULL) {
        session_answer_error(s, seq, "ERR slotgate: out of memory");
        goto done;
    }
    o->seq = seq;
    if (!shard) {
        if (ps->classic == NULL && !sub) {
            unsubscribed_locally(s, cmd, r, seq, 0);
            sg_free(o);
            goto done;
        }
        if (ps->classic == NULL && plink_new(ps, p.client, -1, 0) == NULL) rc = SG_ENOMEM;
        else rc = plink_send(ps->classic, p.resp, p.resplen, o);
    } else if (r->argc == 1) { /* SUNSUBSCRIBE: from every shard connection */
        plink *pl;
        if (ps->shards == NULL) {
            unsubscribed_locally(s, cmd, r, seq, 0);
            sg_free(o);
            goto done;
        }
        for (pl = ps->shards; pl && rc == SG_OK; pl = pl->next)
            rc = plink_send(pl, p.resp, p.resplen, o);
    } else {
        plink *pl;
        for (pl = ps->shards; pl && !sg_link_serves(pl->l, p.slot); pl = pl->next) {
        }
        if (pl == NULL && !sub) {
            unsubscribed_locally(s, cmd, r, seq, total(ps, 1));
            sg_free(o);
            goto done;
        }
        if (pl == NULL && (pl = plink_new(ps, p.client, p.slot, 1)) == NULL) rc = SG_ENOMEM;
        else rc = plink_send(pl, p.resp, p.resplen, o);
    }
    if (o->links == 0) { /* nothing went out */
        sg_free(o);
        session_answer_error(s, seq, rc == SG_ENOMEM ? "ERR slotgate: out of memory"
                                             : "ERR slotgate: the subscription connection failed");
        goto done;
    }
    if (sub) ps->mode = 1;
    /* a partial SUNSUBSCRIBE (out of memory on a later connection) still
     * completes with what the others confirm */
done:
    sg_prepared_clear(&p);
}

/* Every subscription ended: complete (RESET), the replies owed get what
 * came; else (the client is gone) they are dropped. */
static void release(session *s, int complete) {
    psub *ps = s->psub;
    if (ps == NULL) return;
    while (ps->shards) plink_free(ps->shards, complete);
    if (ps->classic) plink_free(ps->classic, complete);
    sg_free(ps);
    s->psub = NULL;
}

void pubsub_reset(session *s) { release(s, 1); }

void pubsub_free(session *s) { release(s, 0); }
