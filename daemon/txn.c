/*
 * txn.c — MULTI/EXEC/DISCARD/WATCH/UNWATCH for slotgated's clients, on one
 * slot and a server connection of the transaction's own (an sg_link).
 *
 * MULTI is answered here. The commands after it are checked (known command,
 * arity, the policies, which rewrite their keys: sg_gateway_prepare) and
 * queued here (+QUEUED); every key of the transaction must hash to one slot,
 * else that command gets CROSSSLOT and EXEC gets EXECABORT, as Redis treats
 * errors at queue time. EXEC sends MULTI, the commands and EXEC in one write
 * on a connection of its own to the slot's master (any master when no
 * command has a key) and answers with EXEC's reply, each command's reply
 * naming its keys as the client did (a policy may have rewritten them:
 * sg_prepared's keymap). WATCH opens that
 * connection at once, on the watched keys' slot, and the transaction then
 * runs there. A connection lost, a MOVED at queue time, or a WATCH
 * connection gone before EXEC: a clear error, never a part of the
 * transaction applied in silence. DISCARD, UNWATCH and the client's close
 * release the connection (closing it ends the WATCHes server-side).
 *
 * The near cache does not see the link's traffic: a queued write drops its
 * keys' entries and holds them unfilled from its queueing until EXEC's reply
 * came (or the transaction ended without running), so a read by another
 * session meanwhile cannot keep the old value for the writer to read after
 * EXEC.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "txn.h"
#include "users.h"

enum { W_WATCH = 1, W_EXEC };

/* The near cache's holds on the keys of queued writes (sg_gateway_prepare_held):
 * none of those keys is filled from MULTI's queueing until EXEC's reply came,
 * or the transaction went without running. */
typedef struct holds {
    struct sg_cache_call **at;
    int n, cap;
} holds;

static void holds_release(holds *h) {
    int i;
    for (i = 0; i < h->n; i++) sg_gateway_release(h->at[i]);
    sg_free(h->at);
    memset(h, 0, sizeof *h);
}

/* A reply (or, for EXEC, a run of replies) a connection owes the client. */
typedef struct txn_wait {
    struct txn_wait *next;
    int kind;             /* W_* */
    uint64_t seq;         /* the client's reply */
    int got, n;           /* EXEC: replies read, and due: MULTI, the queued, EXEC */
    unsigned char *extra; /* EXEC: per queued command, 1 for one a policy added */
    sg_keymap **maps;     /* EXEC: per queued command, its keymap or NULL */
    int nq;
    char *moved;          /* EXEC: the first MOVED/ASK a queued command got */
    holds held;           /* EXEC: its writes' keys, released with its reply */
} txn_wait;

/* One of the transaction's connections. */
typedef struct tlink {
    struct txn *t;
    struct tlink *next; /* in t->retired */
    sg_link *l;
    int slot;
    txn_wait *head, *tail;
    int retiring;       /* free it once nothing is owed */
} tlink;

typedef struct txn {
    session *s;
    int multi;          /* between MULTI and EXEC/DISCARD */
    int aborted;        /* an error at queue time: EXEC answers EXECABORT */
    int slot;           /* the slot bound (WATCH's, or the first key's), -1 none */
    sg_client *client;  /* the upstream bound, NULL none */
    tlink *cur;         /* the connection holding the WATCHes */
    tlink *retired;     /* connections still owing EXEC or WATCH replies */
    char watch_lost[SG_ERRMSG_MAX]; /* why the WATCHes were lost, "" if not */
    sg_buf q;           /* the queued commands, RESP */
    unsigned char *extra;
    sg_keymap **maps;   /* per queued command: NULL, or what names its reply's keys back */
    int nq, capq;
    holds held;         /* the queued writes' keys, until EXEC takes them */
} txn;

/* ---- connections ------------------------------------------------------------------------- */

/* The queue's keymaps, each NULL or its command's. */
static void free_maps(sg_keymap **maps, int n) {
    int i;
    for (i = 0; maps && i < n; i++) sg_keymap_free(maps[i]);
    sg_free(maps);
}

static void wait_free(txn_wait *w) {
    holds_release(&w->held); /* answered, failed, or never sent */
    free_maps(w->maps, w->nq);
    sg_free(w->extra);
    sg_free(w->moved);
    sg_free(w);
}

static void tlink_free(tlink *tl) {
    txn *t = tl->t;
    tlink **pp;
    txn_wait *w;
    if (t->cur == tl) t->cur = NULL;
    for (pp = &t->retired; *pp; pp = &(*pp)->next)
        if (*pp == tl) {
            *pp = tl->next;
            break;
        }
    while ((w = tl->head) != NULL) {
        tl->head = w->next;
        wait_free(w);
    }
    sg_link_free(tl->l);
    sg_free(tl);
}

/* Done with it: free now, or once it has answered what it owes. */
static void tlink_retire(tlink *tl) {
    txn *t = tl->t;
    if (t->cur == tl) t->cur = NULL;
    if (tl->head == NULL) {
        tlink_free(tl);
        return;
    }
    tl->retiring = 1;
    tl->next = t->retired;
    t->retired = tl;
}

static txn_wait *wait_new(int kind, uint64_t seq) {
    txn_wait *w = sg_calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    w->kind = kind;
    w->seq = seq;
    return w;
}

/* After the send: the replies it brings are w's. */
static void wait_push(tlink *tl, txn_wait *w) {
    if (tl->tail) tl->tail->next = w;
    else tl->head = w;
    tl->tail = w;
}

static txn_wait *wait_pop(tlink *tl) {
    txn_wait *w = tl->head;
    if (w && (tl->head = w->next) == NULL) tl->tail = NULL;
    return w;
}

/* EXEC's reply, without the replies of the commands the policies added,
 * and with the keys the replies name as the client named them. */
static void put_exec_reply(sg_resp_out *o, const txn_wait *w, sg_reply *r) {
    size_t i, n = 0;
    if (r->type != SG_REPLY_ARRAY || r->elements != (size_t)w->nq) {
        sg_resp_put_reply(o, r); /* nil (a WATCHed key changed), EXECABORT, ... */
        return;
    }
    for (i = 0; i < r->elements; i++) n += !w->extra[i];
    sg_resp_put_array(o, n);
    for (i = 0; i < r->elements; i++) {
        if (w->extra[i]) continue;
        if (w->maps && sg_keymap_apply(w->maps[i], r->element[i]) != SG_OK)
            sg_resp_put_error(o, "ERR slotgate: out of memory naming the reply's keys as the "
                                 "client sent them (the command ran)");
        else sg_resp_put_reply(o, r->element[i]);
    }
}

/* A reply of the connection: it belongs to the oldest wait. */
static void on_reply(tlink *tl, sg_reply *r) {
    session *s = tl->t->s;
    txn_wait *w = tl->head;
    reply_slot *rs;
    if (w == NULL) return; /* nothing asked: not ours to show */
    if (w->kind == W_EXEC && ++w->got < w->n) {
        /* MULTI's +OK and the +QUEUED: only a MOVED/ASK among them matters
         * (the node then aborts the EXEC; the client must learn why) */
        if (r->type == SG_REPLY_ERROR && w->moved == NULL &&
            (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0))
            w->moved = sg_strndup(r->str, r->len);
        return;
    }
    wait_pop(tl);
    rs = reply_slot_at(s, w->seq);
    if (w->kind == W_EXEC && w->moved) {
        char msg[SG_ERRMSG_MAX];
        snprintf(msg, sizeof msg,
                 "EXECABORT Transaction discarded: its slot moved (%.200s); slotgate refreshes "
                 "its map, retry the transaction",
                 w->moved);
        sg_resp_put_error(&rs->out, msg);
    } else if (w->kind == W_EXEC) {
        put_exec_reply(&rs->out, w, r);
    } else {
        sg_resp_put_reply(&rs->out, r);
    }
    reply_slot_done(rs);
    wait_free(w);
}

/* The connection failed: what it owed gets the error; held WATCHes are lost. */
static void on_failure(tlink *tl, int status, const char *errmsg) {
    txn *t = tl->t;
    session *s = t->s;
    txn_wait *w;
    while ((w = wait_pop(tl)) != NULL) {
        char msg[SG_ERRMSG_MAX + 128];
        int unsent = w->got == 0 && (status == SG_ECONNECT || status == SG_ETLS ||
                                     status == SG_EAUTH || status == SG_ECLUSTERDOWN);
        if (w->kind == W_EXEC)
            snprintf(msg, sizeof msg, "ERR slotgate: %s; %s", errmsg,
                     unsent ? "the transaction was not applied"
                            : "the transaction had been sent, so whether it was applied is "
                              "unknown");
        else snprintf(msg, sizeof msg, "ERR slotgate: %s", errmsg);
        session_answer_error(s, w->seq, msg);
        wait_free(w);
    }
    if (t->cur == tl) snprintf(t->watch_lost, sizeof t->watch_lost, "%s", errmsg);
    tlink_free(tl);
}

static void on_link(sg_link *l, sg_reply *r, int status, const char *errmsg, void *ud) {
    tlink *tl = ud;
    session *s = tl->t->s;
    (void)l;
    if (r == NULL) {
        on_failure(tl, status, errmsg); /* frees tl */
    } else {
        on_reply(tl, r);
        sg_reply_free(r);
        if (tl->retiring && tl->head == NULL) tlink_free(tl);
    }
    session_flush(s); /* last: it may close the session, and free all of this */
}

static tlink *tlink_new(txn *t, sg_client *c, int at) {
    tlink *tl = sg_calloc(1, sizeof *tl);
    if (tl == NULL) return NULL;
    tl->t = t;
    tl->slot = at;
    if ((tl->l = sg_link_open(c, at, on_link, tl)) == NULL) {
        sg_free(tl);
        return NULL;
    }
    return tl;
}

/* ---- the transaction ------------------------------------------------------------------------- */

static txn *get_txn(session *s) {
    if (s->txn == NULL && (s->txn = sg_calloc(1, sizeof(txn))) != NULL) {
        s->txn->s = s;
        s->txn->slot = -1;
    }
    return s->txn;
}

/* Empties the queue: after EXEC, DISCARD. */
static void clear_queue(txn *t) {
    sg_buf_free(&t->q);
    sg_free(t->extra);
    t->extra = NULL;
    free_maps(t->maps, t->nq);
    t->maps = NULL;
    t->nq = t->capq = 0;
    t->multi = t->aborted = 0;
    holds_release(&t->held); /* an EXEC took them; else nothing runs */
}

/* DISCARD, UNWATCH (outside MULTI), after EXEC: nothing bound any more. */
static void unbind(txn *t) {
    if (t->cur) tlink_retire(t->cur);
    t->watch_lost[0] = '\0';
    t->slot = -1;
    t->client = NULL;
}

static int bind_slot(txn *t, int ks, sg_client *c, char *err, size_t errlen) {
    if (ks == -2) {
        snprintf(err, errlen, "CROSSSLOT Keys in request don't hash to the same slot");
        return 0;
    }
    if (ks >= 0 && t->slot >= 0 && ks != t->slot) {
        snprintf(err, errlen,
                 "CROSSSLOT Keys in request don't hash to the same slot (slotgate runs a "
                 "transaction on one slot, and this one is bound to slot %d)",
                 t->slot);
        return 0;
    }
    if (t->client && c != t->client) {
        snprintf(err, errlen, "ERR slotgate: the policies send this command to another upstream "
                              "than the transaction's other commands");
        return 0;
    }
    if (ks >= 0) t->slot = ks;
    t->client = c;
    return 1;
}

static void do_watch(session *s, txn *t, const sg_resp_req *r, uint64_t seq) {
    sg_request_ctx ctx;
    sg_prepared p;
    char err[600];
    txn_wait *w;
    session_ctx(s, &ctx);
    if (sg_gateway_prepare(s->w->gw, &ctx, r->argc, r->argv, r->argvlen, &p) != SG_OK) {
        snprintf(err, sizeof err, "ERR slotgate: %s", sg_errmsg(s->w->gw));
        session_answer_error(s, seq, err);
        return;
    }
    if (p.error[0]) {
        session_answer_error(s, seq, p.error);
    } else if (!bind_slot(t, p.slot, p.client, err, sizeof err)) {
        session_answer_error(s, seq, err);
    } else if (t->cur == NULL && (t->cur = tlink_new(t, p.client, t->slot)) == NULL) {
        session_answer_error(s, seq, "ERR slotgate: out of memory");
    } else if ((w = wait_new(W_WATCH, seq)) == NULL) {
        session_answer_error(s, seq, "ERR slotgate: out of memory");
    } else if (sg_link_send(t->cur->l, p.resp, p.resplen, 1 + p.extra) != SG_OK) {
        snprintf(err, sizeof err, "ERR slotgate: %s", sg_errmsg(t->cur->l));
        session_answer_error(s, seq, err);
        wait_free(w);
    } else {
        wait_push(t->cur, w);
    }
    sg_prepared_clear(&p);
}

#define NOT_APPLIED_OOM "ERR slotgate: out of memory; the transaction was not applied"

static void do_exec(session *s, txn *t, uint64_t seq) {
    static const char multi[] = "*1\r\n$5\r\nMULTI\r\n", exec[] = "*1\r\n$4\r\nEXEC\r\n";
    char err[SG_ERRMSG_MAX + 128];
    tlink *tl;
    sg_buf b = {0};
    txn_wait *w;
    if (t->aborted) {
        session_answer_error(s, seq, "EXECABORT Transaction discarded because of previous errors.");
        goto done;
    }
    if (t->watch_lost[0]) {
        snprintf(err, sizeof err,
                 "EXECABORT Transaction discarded: slotgate lost the connection that held the "
                 "WATCHed keys (%s)",
                 t->watch_lost);
        session_answer_error(s, seq, err);
        goto done;
    }
    if (t->nq == 0 && t->cur == NULL) {
        session_answer(s, seq, "*0\r\n"); /* nothing to run, nothing watched */
        goto done;
    }
    if ((tl = t->cur) == NULL) {
        sg_client *c = t->client ? t->client : sg_gateway_client(s->w->gw, "default");
        if (c == NULL || (tl = t->cur = tlink_new(t, c, t->slot)) == NULL) {
            session_answer_error(s, seq, NOT_APPLIED_OOM);
            goto done;
        }
    }
    sg_buf_append(&b, multi, sizeof multi - 1);
    if (t->q.len) sg_buf_append(&b, t->q.data, t->q.len);
    sg_buf_append(&b, exec, sizeof exec - 1);
    if (b.oom || (w = wait_new(W_EXEC, seq)) == NULL) {
        session_answer_error(s, seq, NOT_APPLIED_OOM);
        goto done;
    }
    w->n = t->nq + 2;
    w->nq = t->nq;
    w->extra = t->extra;
    w->maps = t->maps;
    w->held = t->held; /* until the EXEC's reply */
    t->extra = NULL;
    t->maps = NULL;
    memset(&t->held, 0, sizeof t->held);
    if (sg_link_send(tl->l, b.data, b.len, w->n) != SG_OK) {
        /* not a byte of it left */
        snprintf(err, sizeof err, "ERR slotgate: %s; the transaction was not applied",
                 sg_errmsg(tl->l));
        session_answer_error(s, seq, err);
        wait_free(w);
    } else {
        wait_push(tl, w);
    }
done:
    sg_buf_free(&b);
    clear_queue(t);
    unbind(t); /* EXEC ends the WATCHes; the connection goes once it answered */
}

/* A command inside MULTI: checked, then queued (or refused, which aborts). */
static void queue(session *s, txn *t, const sg_command *cmd, const sg_resp_req *r, uint64_t seq,
                  int how, const sg_request_ctx *hook) {
    /* ECHO (answered by slotgated outside a transaction) and PING (sent to
     * every master outside one) run on the transaction's node */
    size_t ci = cmd ? sg_command_index(cmd) : SG_COMMAND_COUNT;
    sg_request_ctx ctx;
    sg_prepared p;
    struct sg_cache_call *hold;
    char err[600];
    int i, own_conn = (how & TXN_OWN_CONN) != 0;
    if (cmd && (cmd->flags & SG_CMD_NO_MULTI)) {
        /* Redis's rule, from its command table (SAVE, SHUTDOWN, SYNC ...):
         * refused at queue time, and the transaction with it */
        session_answer_error(s, seq, "ERR Command not allowed inside a transaction");
        t->aborted = 1;
        return;
    }
    session_ctx(s, &ctx);
    if (hook) { /* CLIENT TRACKING's (dispatch.c): the keys as the node names them */
        ctx.routed = hook->routed;
        ctx.routed_ud = hook->routed_ud;
    }
    if (sg_gateway_prepare_held(s->w->gw, &ctx, r->argc, r->argv, r->argvlen, &p, &hold) != SG_OK) {
        snprintf(err, sizeof err, "ERR slotgate: %s", sg_errmsg(s->w->gw));
        session_answer_error(s, seq, err);
        t->aborted = 1;
        return;
    }
    if (hold != NULL) {
        /* the transaction's until EXEC's reply, or its end (even when the
         * command is refused below: EXEC then aborts, and releases it) */
        holds *h = &t->held;
        if (sg_grow((void **)&h->at, &h->cap, h->n, sizeof *h->at, 8) != SG_OK) {
            sg_gateway_release(hold);
            session_answer_error(s, seq, "ERR slotgate: out of memory");
            goto abort;
        }
        h->at[h->n++] = hold;
    }
    if (p.error[0]) {
        session_answer_error(s, seq, p.error);
        goto abort;
    }
    if (own_conn || (how & TXN_LOCAL) || ((p.flags & SG_PREP_LOCAL) && ci != SG_CI_ECHO) ||
        ((p.flags & SG_PREP_FANOUT) && ci != SG_CI_PING)) {
        snprintf(err, sizeof err,
                 "ERR slotgate: '%.*s' cannot be queued in a transaction (%s)",
                 (int)(r->argvlen[0] > 64 ? 64 : r->argvlen[0]), r->argv[0],
                 (p.flags & SG_PREP_FANOUT) ? "it runs on every master; a transaction on one"
                 : own_conn                 ? "it needs a connection of its own"
                                            : "slotgate answers it itself");
        session_answer_error(s, seq, err);
        goto abort;
    }
    if (!bind_slot(t, p.slot, p.client, err, sizeof err)) {
        session_answer_error(s, seq, err);
        goto abort;
    }
    if (t->nq + 1 + p.extra > t->capq) {
        int ncap = t->capq ? t->capq * 2 : 8;
        unsigned char *ne;
        sg_keymap **nm;
        while (ncap < t->nq + 1 + p.extra) ncap *= 2;
        if ((ne = sg_realloc(t->extra, (size_t)ncap)) == NULL) {
            session_answer_error(s, seq, "ERR slotgate: out of memory");
            goto abort;
        }
        t->extra = ne;
        if ((nm = sg_realloc(t->maps, (size_t)ncap * sizeof *nm)) == NULL) {
            session_answer_error(s, seq, "ERR slotgate: out of memory");
            goto abort;
        }
        t->maps = nm;
        t->capq = ncap;
    }
    sg_buf_append(&t->q, p.resp, p.resplen);
    if (t->q.oom) {
        session_answer_error(s, seq, "ERR slotgate: out of memory");
        goto abort;
    }
    t->maps[t->nq] = p.keymap; /* the queue's now */
    p.keymap = NULL;
    t->extra[t->nq++] = 0;
    for (i = 0; i < p.extra; i++) {
        t->maps[t->nq] = NULL;
        t->extra[t->nq++] = 1;
    }
    session_answer(s, seq, "+QUEUED\r\n");
    sg_prepared_clear(&p);
    return;
abort:
    t->aborted = 1;
    sg_prepared_clear(&p);
}

int txn_queuing(const session *s) { return s->txn && s->txn->multi; }

void txn_abort(session *s) {
    if (txn_queuing(s)) s->txn->aborted = 1;
}

void txn_state(const session *s, long *multi, size_t *multi_mem, int *dirty) {
    const txn *t = s->txn;
    *multi = t && t->multi ? t->nq : -1;
    *multi_mem = t && t->multi ? t->q.len : 0;
    *dirty = t && t->watch_lost[0] != '\0';
}

void txn_queue(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq, int how,
               const sg_request_ctx *hook) {
    assert(txn_queuing(s));
    queue(s, s->txn, cmd, r, seq, how, hook);
}

int txn_exec_runs(const session *s) {
    const txn *t = s->txn;
    return t && t->multi && !t->aborted && !t->watch_lost[0];
}

void txn_command(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    size_t ci = sg_command_index(cmd);
    txn *t = s->txn;
    if (r->argc != 1 && ci != SG_CI_WATCH) {
        char msg[100];
        snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", cmd->name);
        session_answer_error(s, seq, msg);
        if (t && t->multi) t->aborted = 1;
        return;
    }
    if (ci == SG_CI_UNWATCH && t && t->multi) {
        queue(s, t, cmd, r, seq, 0, NULL); /* Redis queues it, and runs it in the EXEC */
        return;
    }
    if (t == NULL && (ci == SG_CI_MULTI || ci == SG_CI_WATCH) && (t = get_txn(s)) == NULL) {
        session_answer_error(s, seq, "ERR slotgate: out of memory");
        return;
    }
    switch (ci) {
    case SG_CI_MULTI:
        if (t->multi) {
            session_answer_error(s, seq, "ERR MULTI calls can not be nested");
        } else {
            t->multi = 1;
            session_answer(s, seq, "+OK\r\n");
        }
        break;
    case SG_CI_EXEC:
        if (t == NULL || !t->multi) session_answer_error(s, seq, "ERR EXEC without MULTI");
        else do_exec(s, t, seq);
        break;
    case SG_CI_DISCARD:
        if (t == NULL || !t->multi) {
            session_answer_error(s, seq, "ERR DISCARD without MULTI");
        } else {
            clear_queue(t);
            unbind(t);
            session_answer(s, seq, "+OK\r\n");
        }
        break;
    case SG_CI_WATCH:
        if (t->multi) session_answer_error(s, seq, "ERR WATCH inside MULTI is not allowed");
        else if (r->argc < 2)
            session_answer_error(s, seq, "ERR wrong number of arguments for 'watch' command");
        else do_watch(s, t, r, seq);
        break;
    case SG_CI_UNWATCH:
        if (t) unbind(t);
        session_answer(s, seq, "+OK\r\n");
        break;
    default:
        assert(!"txn_command: not a transaction command");
    }
}

void txn_reset(session *s) {
    txn *t = s->txn;
    if (t == NULL) return;
    /* the connections still owing replies finish; the rest goes */
    clear_queue(t);
    unbind(t);
}

void txn_free(session *s) {
    txn *t = s->txn;
    if (t == NULL) return;
    while (t->retired) tlink_free(t->retired);
    if (t->cur) tlink_free(t->cur);
    clear_queue(t);
    sg_free(t);
    s->txn = NULL;
}
