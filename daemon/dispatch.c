/*
 * dispatch.c — what slotgated does with each request. It owns:
 *  - the dispatch table: per entry of the command table (by
 *    sg_command_index), the daemon's handler, the handler in subscribed
 *    mode, and the flags that place it in the steps below; a command with no
 *    handler is the cluster's;
 *  - the order of the steps, which is Redis's: authentication, the policies
 *    on commands answered here, subscribed mode, MULTI's queue, the handler;
 *  - the commands about the connection itself (AUTH and HELLO through
 *    users.c, QUIT, PING, ECHO, SELECT, RESET; CLIENT through clientcmd.c)
 *    and the refusals;
 *  - what CLIENT REPLY and CLIENT LIST need of every command: its reply
 *    slot made quiet, its name and time, a blocking command's record;
 *  - forwarding through the gateway, each reply into its request's slot;
 *  - what INFO learns of a request here (session.h, worker_figs): its
 *    command, its refusal before it ran, a blocking command's wait.
 * Per request: one table load decides, and no command name is compared.
 */
#include <assert.h>
#include <event2/event.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clientcmd.h"
#include "dispatch.h"
#include "info.h"
#include "pubsub.h"
#include "tracking.h"
#include "txn.h"
#include "users.h"

/* A handler: answers r (cmd: its entry; NULL only for CLIENT's unknown
 * subcommands) into the reply slot seq, now or later. */
typedef void dispatch_fn(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);

enum {
    /* Answered before authentication too, and never put to the policies: a
     * client can always log in and out (AUTH, HELLO, QUIT). */
    D_BEFORE_AUTH = 1 << 0,
    /* The policies decide before the session's state does, so that a policy
     * may forbid transactions and RESET whatever the state (MULTI, RESET). */
    D_POLICY_FIRST = 1 << 1,
    /* Not put to the policies here: the handler asks them through
     * sg_gateway_prepare (WATCH, the subscribe family), or the command has
     * no argument for them (EXEC, DISCARD, UNWATCH). */
    D_NO_POLICY = 1 << 2,
    /* Runs at once inside MULTI instead of being queued, as in Redis. */
    D_IN_MULTI = 1 << 3,
    /* Needs a server connection of its own: refused when MULTI queues it. */
    D_OWN_CONN = 1 << 4,
    /* A container whose handler answers its unknown subcommands too. */
    D_UNKNOWN_SUBS = 1 << 5,
    /* Answered here and about slotgated's own clients: MULTI refuses to
     * queue it (the transaction's node would run it on its own clients). */
    D_LOCAL = 1 << 6,
};

typedef struct dispatch_entry {
    dispatch_fn *fn;         /* NULL: the cluster's (forwarded) */
    dispatch_fn *subscribed; /* in subscribed mode; NULL: refused there */
    const char *why;         /* fn == refuse: why slotgated refuses it */
    unsigned flags;          /* D_* */
} dispatch_entry;

/* ---- forwarding through the gateway ----------------------------------------------------- */

/* owed records are kept for reuse: one per command otherwise costs a
 * malloc and a free */
static owed *owed_new(worker *w) {
    owed *o = w->free_owed;
    if (o) {
        w->free_owed = o->next;
        w->nfree_owed--;
        return o;
    }
    return sg_malloc(sizeof *o);
}

static void owed_free(worker *w, owed *o) {
    if (w->nfree_owed >= 1024) {
        sg_free(o);
        return;
    }
    o->next = w->free_owed;
    w->free_owed = o;
    w->nfree_owed++;
}

void dispatch_free_pool(worker *w) {
    while (w->free_owed) {
        owed *o = w->free_owed;
        w->free_owed = o->next;
        sg_free(o);
    }
    w->nfree_owed = 0;
}

/* A blocking command's reply came: it is no longer blocked (flag b). */
static void unblocked(session *s, owed *o) {
    owed **pp;
    for (pp = &s->blocked; *pp; pp = &(*pp)->next_blocked)
        if (*pp == o) {
            *pp = o->next_blocked;
            session_blocking(s, 0);
            break;
        }
}

/* A write's reply held until every worker told its sessions of the write
 * (tracking.c's gate): into its slot, not done. Out of line: the common
 * path stays as it was. */
static __attribute__((noinline)) void gated_reply(owed *o, const sg_reply *reply, int status,
                                                  const char *errmsg, const char *resp,
                                                  size_t len) {
    session *s = o->s;
    int held = session_owed_done(s);
    if (held && resp) sg_resp_put_raw(&reply_slot_at(s, o->seq)->out, resp, len);
    else if (held) session_reply_held(s, o->seq, reply, status, errmsg);
    tracking_gate_pass(o->gate, held);
    owed_free(o->w, o);
}

static void on_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    owed *o = ud;
    session *s = o->s;
    (void)c;
    if (__builtin_expect(o->gate != NULL, 0)) {
        gated_reply(o, reply, status, errmsg, NULL, 0);
        sg_reply_free(reply);
        return;
    }
    /* s NULL: CLIENT UNBLOCK answered it; what the node says now is stale */
    if (s && s->blocked) unblocked(s, o);
    if (s && session_owed_done(s)) session_reply(s, o->seq, reply, status, errmsg);
    sg_reply_free(reply);
    owed_free(o->w, o);
}

/* A plain reply, as the node sent it: copied to the client as it is. */
static void on_raw_reply(sg_client *c, const char *resp, size_t len, void *ud) {
    owed *o = ud;
    session *s = o->s;
    (void)c;
    if (__builtin_expect(o->gate != NULL, 0)) {
        gated_reply(o, NULL, SG_OK, NULL, resp, len);
        return;
    }
    if (s && s->blocked) unblocked(s, o);
    if (s && session_owed_done(s)) {
        reply_slot *rs = reply_slot_at(s, o->seq);
        int now = o->seq == s->head_seq && rs->out.buf.len == 0 && !rs->quiet;
        sg_resp_put_raw(now ? &s->out : &rs->out, resp, len);
        reply_slot_done(rs);
        session_flush(s);
    }
    owed_free(o->w, o);
}

/* Whether the command blocks on its node until data comes (BLPOP, XREAD
 * BLOCK ...): CLIENT UNBLOCK may answer it. */
static int blocks(const sg_command *cmd, const sg_resp_req *r) {
    int i;
    if (cmd == NULL || !(cmd->flags & SG_CMD_BLOCKING)) return 0;
    if (sg_command_index(cmd) != SG_CI_XREAD && sg_command_index(cmd) != SG_CI_XREADGROUP)
        return 1;
    for (i = 1; i + 1 < r->argc; i++)
        if (sg_resp_arg_is(r, i, "BLOCK")) return 1;
    return 0;
}

static void forward(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    owed *o = owed_new(s->w);
    sg_request_ctx ctx;
    int blocking = blocks(cmd, r);
    if (o == NULL) {
        reply_slot *rs = reply_slot_at(s, seq);
        sg_resp_put_error(&rs->out, "ERR slotgate: out of memory");
        reply_slot_done(rs);
        return;
    }
    o->s = s;
    o->w = s->w;
    o->seq = seq;
    o->next_blocked = NULL;
    o->gate = NULL;
    session_ctx(s, &ctx);
    /* a tracking session's reads, and any session's writes while some
     * session tracks, before the reply can come; a blocking command's reply
     * is not held (CLIENT UNBLOCK answers it) */
    if (__builtin_expect(s->trk != NULL || tracking_any(s->w->srv), 0))
        tracking_forward(s, cmd, r, &ctx, blocking ? NULL : o);
    s->inflight++;
    if (sg_gateway_forward_cmd(s->w->gw, cmd, &ctx, r->argc, r->argv, r->argvlen,
                               r->is_inline ? NULL : r->raw, r->rawlen, on_reply, on_raw_reply,
                               o) != SG_OK) {
        char msg[SG_ERRMSG_MAX + 32];
        reply_slot *rs = reply_slot_at(s, seq);
        s->inflight--;
        if (o->gate) tracking_gate_pass(o->gate, 0);
        owed_free(s->w, o);
        rs->rejected = 1;
        snprintf(msg, sizeof msg, "ERR slotgate: %s", sg_errmsg(s->w->gw));
        sg_resp_put_error(&rs->out, msg);
        reply_slot_done(rs);
        return;
    }
    if (blocking) { /* at the tail of s->blocked; INFO's blocked_clients */
        owed **pp = &s->blocked;
        while (*pp) pp = &(*pp)->next_blocked;
        *pp = o;
        session_blocking(s, 1);
    }
}

/* ---- commands about the connection ---------------------------------------------------------- */

static void do_auth(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    (void)cmd;
    users_auth(s, r, &rs->out);
    reply_slot_done(rs);
}

static void put_str(sg_resp_out *o, const char *s) { sg_resp_put_bulk(o, s, strlen(s)); }

/* HELLO [protover [AUTH user pass] [SETNAME name]], as Redis 7.0 answers it:
 * the version first (2 or 3; none keeps the session's), then AUTH, then the
 * name; the reply, in the protocol chosen, is a map of what the client is
 * talking to. RESP3 makes the session's replies RESP3 from this one on: its
 * commands then go over node connections that speak RESP3 (a map is a map). */
static void hello(session *s, const sg_resp_req *r, sg_resp_out *o) {
    int i = 2, setname = -1, ver = 0;
    if (r->argc >= 2) {
        char num[24];
        char *end;
        long long v;
        size_t n = r->argvlen[1] < sizeof num - 1 ? r->argvlen[1] : sizeof num - 1;
        memcpy(num, r->argv[1], n);
        num[n] = '\0';
        v = strtoll(num, &end, 10);
        if (n == 0 || *end != '\0' || r->argvlen[1] >= sizeof num - 1 || num[0] == ' ') {
            sg_resp_put_error(o, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (v < 2 || v > 3) {
            sg_resp_put_error(o, "NOPROTO unsupported protocol version");
            return;
        }
        ver = (int)v;
    }
    for (; i < r->argc; i++) {
        int more = r->argc - 1 - i;
        if (sg_resp_arg_is(r, i, "AUTH") && more >= 2) {
            sg_resp_out err = {0};
            sg_resp_req a = *r;
            const char *argv[3] = {"AUTH", r->argv[i + 1], r->argv[i + 2]};
            size_t lens[3] = {4, r->argvlen[i + 1], r->argvlen[i + 2]};
            a.argc = 3;
            a.argv = argv;
            a.argvlen = lens;
            err.proto = o->proto;
            if (!users_auth(s, &a, &err)) {
                sg_resp_put_raw(o, err.buf.data, err.buf.len);
                sg_buf_free(&err.buf);
                return;
            }
            sg_buf_free(&err.buf);
            i += 2;
        } else if (sg_resp_arg_is(r, i, "SETNAME") && more >= 1) {
            setname = ++i; /* named only once authenticated */
        } else {
            char msg[128];
            snprintf(msg, sizeof msg, "ERR Syntax error in HELLO option '%.*s'",
                     (int)(r->argvlen[i] > 64 ? 64 : r->argvlen[i]), r->argv[i]);
            sg_resp_put_error(o, msg);
            return;
        }
    }
    if (!s->authed) {
        sg_resp_put_error(o, "NOAUTH HELLO must be called with the client already "
                             "authenticated, otherwise the HELLO AUTH <user> <pass> option can "
                             "be used to authenticate the client and select the RESP protocol "
                             "version at the same time");
        return;
    }
    if (setname > 0) {
        if (!clientcmd_valid_name(r->argv[setname], r->argvlen[setname])) {
            sg_resp_put_error(o, CLIENTCMD_BAD_NAME);
            return;
        }
        clientcmd_set_name(s, r->argv[setname], r->argvlen[setname]);
    }
    if (ver) s->out.proto = o->proto = ver == 3 ? SG_RESP_PROTO_3 : SG_RESP_PROTO_2;
    /* as INFO's redis_version: clients decide what to use by it (redis-py's
     * client-side cache wants "redis" 7.4 or later), and slotgated speaks
     * the commands of that Redis; slotgated's own version is in INFO */
    sg_resp_put_map(o, 7);
    put_str(o, "server");
    put_str(o, "redis");
    put_str(o, "version");
    put_str(o, s->w->o->redis_version);
    put_str(o, "proto");
    sg_resp_put_int(o, o->proto == SG_RESP_PROTO_3 ? 3 : 2);
    put_str(o, "id");
    sg_resp_put_int(o, (long long)s->id);
    put_str(o, "mode");
    put_str(o, "cluster");
    put_str(o, "role");
    put_str(o, "master");
    put_str(o, "modules");
    sg_resp_put_array(o, 0);
}

static void do_hello(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    (void)cmd;
    hello(s, r, &rs->out);
    reply_slot_done(rs);
}

static void do_quit(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    (void)cmd;
    (void)r;
    session_answer(s, seq, "+OK\r\n");
    s->closing = 1;
}

static void do_ping(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    (void)cmd;
    if (r->argc == 1) sg_resp_put_status(&rs->out, "PONG");
    else if (r->argc == 2) sg_resp_put_bulk(&rs->out, r->argv[1], r->argvlen[1]);
    else sg_resp_put_error(&rs->out, "ERR wrong number of arguments for 'ping' command");
    reply_slot_done(rs);
}

static void do_echo(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    (void)cmd;
    if (r->argc == 2) sg_resp_put_bulk(&rs->out, r->argv[1], r->argvlen[1]);
    else sg_resp_put_error(&rs->out, "ERR wrong number of arguments for 'echo' command");
    reply_slot_done(rs);
}

static void do_select(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    (void)cmd;
    if (r->argc == 2 && sg_resp_arg_is(r, 1, "0")) sg_resp_put_status(&rs->out, "OK");
    else sg_resp_put_error(&rs->out, "ERR SELECT is not allowed in cluster mode");
    reply_slot_done(rs);
}

/* RESET: out of MULTI and subscribed mode, unnamed, and back to the default
 * user (which needs the password when there is one). */
static void do_reset(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    const char *pass = s->w->o->requirepass;
    (void)cmd;
    (void)r;
    txn_reset(s);
    pubsub_reset(s);
    tracking_reset(s); /* RESET turns tracking off, as in Redis */
    sg_free(s->name);
    s->name = NULL;
    /* as Redis's RESET: replies on again (this one too), NO-EVICT off */
    s->reply_off = s->reply_skip = s->no_evict = 0;
    reply_slot_at(s, seq)->quiet = 0;
    if (pass && pass[0]) {
        s->authed = 0;
        sg_resp_set_auth_required(s->rp, 1);
    }
    session_answer(s, seq, "+RESET\r\n");
}

/* What a shared upstream connection cannot carry (yet): refused by name,
 * never forwarded. */
static void refuse_own_conn(session *s, const sg_command *cmd, const sg_resp_req *r,
                            uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    char name[32], msg[200];
    size_t i;
    (void)r;
    rs->rejected = 1;
    for (i = 0; cmd->name[i] && i + 1 < sizeof name; i++)
        name[i] = (char)toupper((unsigned char)cmd->name[i]);
    name[i] = '\0';
    snprintf(msg, sizeof msg,
             "ERR slotgate does not support %s yet (it needs a connection of its own)", name);
    sg_resp_put_error(&rs->out, msg);
    reply_slot_done(rs);
}

/* ---- the table ------------------------------------------------------------------------------ */

static void refuse(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);

#define TXN(flags) {txn_command, NULL, NULL, D_IN_MULTI | (flags)}
#define SUBSCRIBE {pubsub_command, pubsub_command, NULL, D_NO_POLICY | D_OWN_CONN}
#define HANDLER(fn) {fn, NULL, NULL, 0}
#define CLIENT_SUB {clientcmd, NULL, NULL, D_LOCAL}

/* The handlers by command; dispatch_init() adds admin.c's refusals to the
 * entries left without one. */
static dispatch_entry table[SG_COMMAND_COUNT] = {
    [SG_CI_AUTH] = {do_auth, NULL, NULL, D_BEFORE_AUTH},
    [SG_CI_HELLO] = {do_hello, NULL, NULL, D_BEFORE_AUTH},
    [SG_CI_QUIT] = {do_quit, do_quit, NULL, D_BEFORE_AUTH | D_IN_MULTI},
    [SG_CI_RESET] = {do_reset, do_reset, NULL, D_POLICY_FIRST | D_IN_MULTI},
    [SG_CI_PING] = {do_ping, pubsub_ping, NULL, 0},
    [SG_CI_ECHO] = HANDLER(do_echo),
    [SG_CI_SELECT] = HANDLER(do_select),
    [SG_CI_CLIENT] = {clientcmd, NULL, NULL, D_UNKNOWN_SUBS | D_LOCAL},
    [SG_CI_CLIENT_CACHING] = CLIENT_SUB,
    [SG_CI_CLIENT_GETNAME] = CLIENT_SUB,
    [SG_CI_CLIENT_GETREDIR] = CLIENT_SUB,
    [SG_CI_CLIENT_HELP] = CLIENT_SUB,
    [SG_CI_CLIENT_ID] = CLIENT_SUB,
    [SG_CI_CLIENT_INFO] = CLIENT_SUB,
    [SG_CI_CLIENT_KILL] = CLIENT_SUB,
    [SG_CI_CLIENT_LIST] = CLIENT_SUB,
    [SG_CI_CLIENT_NO_EVICT] = CLIENT_SUB,
    [SG_CI_CLIENT_PAUSE] = CLIENT_SUB,
    [SG_CI_CLIENT_REPLY] = CLIENT_SUB,
    [SG_CI_CLIENT_SETNAME] = CLIENT_SUB,
    [SG_CI_CLIENT_TRACKING] = CLIENT_SUB,
    [SG_CI_CLIENT_TRACKINGINFO] = CLIENT_SUB,
    [SG_CI_CLIENT_UNBLOCK] = CLIENT_SUB,
    [SG_CI_CLIENT_UNPAUSE] = CLIENT_SUB,
    [SG_CI_MONITOR] = {refuse_own_conn, NULL, NULL, D_OWN_CONN},
    [SG_CI_SYNC] = {refuse_own_conn, NULL, NULL, D_OWN_CONN},
    [SG_CI_PSYNC] = {refuse_own_conn, NULL, NULL, D_OWN_CONN},
    [SG_CI_READONLY] = HANDLER(refuse_own_conn),
    [SG_CI_READWRITE] = HANDLER(refuse_own_conn),
    [SG_CI_ASKING] = HANDLER(refuse_own_conn),
    [SG_CI_MULTI] = TXN(D_POLICY_FIRST),
    [SG_CI_EXEC] = TXN(D_NO_POLICY),
    [SG_CI_DISCARD] = TXN(D_NO_POLICY),
    [SG_CI_WATCH] = TXN(D_NO_POLICY),
    [SG_CI_UNWATCH] = TXN(D_NO_POLICY),
    [SG_CI_SUBSCRIBE] = SUBSCRIBE,
    [SG_CI_PSUBSCRIBE] = SUBSCRIBE,
    [SG_CI_SSUBSCRIBE] = SUBSCRIBE,
    [SG_CI_UNSUBSCRIBE] = SUBSCRIBE,
    [SG_CI_PUNSUBSCRIBE] = SUBSCRIBE,
    [SG_CI_SUNSUBSCRIBE] = SUBSCRIBE,
    [SG_CI_INFO] = HANDLER(info_command),
    [SG_CI_ROLE] = HANDLER(admin_role),
    [SG_CI_CLUSTER_KEYSLOT] = HANDLER(admin_cluster),
    [SG_CI_CLUSTER_MYID] = HANDLER(admin_cluster),
    [SG_CI_CLUSTER_INFO] = HANDLER(admin_cluster),
    [SG_CI_CLUSTER_SLOTS] = HANDLER(admin_cluster),
    [SG_CI_CLUSTER_SHARDS] = HANDLER(admin_cluster),
    [SG_CI_CLUSTER_NODES] = HANDLER(admin_cluster),
};

/* An unknown command: forwarded (the cluster names it unknown). */
static const dispatch_entry unknown = {NULL, NULL, NULL, 0};

void dispatch_init(void) {
    size_t n, i;
    const sg_command *cmds = sg_command_table(&n);
    assert(n == SG_COMMAND_COUNT);
    for (i = 0; i < n; i++) {
        const char *why;
        if (table[i].fn != NULL || (why = admin_refusal(&cmds[i])) == NULL) continue;
        table[i].fn = refuse;
        table[i].why = why;
    }
}

static void refuse(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    (void)r;
    rs->rejected = 1;
    admin_put_refusal(&rs->out, cmd, table[sg_command_index(cmd)].why);
    reply_slot_done(rs);
}

/* The entry of a request whose command the table does not know: a
 * container's, when it answers its unknown subcommands (CLIENT FOO), else
 * none. Off the common path: an unknown command is an error. */
static const dispatch_entry *entry_of_unknown(const sg_resp_req *r) {
    const sg_command *top = sg_command_lookup(r->argv[0], r->argvlen[0]);
    if (top && (table[sg_command_index(top)].flags & D_UNKNOWN_SUBS))
        return &table[sg_command_index(top)];
    return &unknown;
}

/* The policies' verdict on a command answered here: 1 when denied (the
 * refusal is the reply). */
static int denied(session *s, const sg_resp_req *r, uint64_t seq) {
    sg_request_ctx ctx;
    char err[600];
    reply_slot *rs;
    session_ctx(s, &ctx);
    if (!sg_gateway_denies(s->w->gw, &ctx, r->argc, r->argv, r->argvlen, err, sizeof err))
        return 0;
    rs = reply_slot_at(s, seq);
    rs->rejected = 1;
    sg_resp_put_error(&rs->out, err);
    reply_slot_done(rs);
    return 1;
}

void dispatch(session *s, const sg_resp_req *r) {
    uint64_t seq;
    const sg_command *cmd;
    const dispatch_entry *d;
    reply_slot *rs;
    if ((rs = reply_slot_new(s, &seq)) == NULL) {
        s->closing = 1;
        return;
    }
    /* CLIENT REPLY OFF, or SKIP for this one: its reply is dropped */
    rs->quiet = s->reply_off || s->reply_skip;
    s->reply_skip = 0;
    figs_add(&s->w->figs.commands, 1);
    cmd = sg_command_resolve(r->argc, r->argv, r->argvlen);
    rs->cmd = cmd; /* for INFO commandstats, when its reply is done */
    rs->t0 = s->w->read_us;
    /* CLIENT LIST's cmd and idle */
    if (cmd) s->lastcmd = cmd;
    s->last_us = s->w->read_us; /* the read's clock: no reading of its own */
    d = cmd ? &table[sg_command_index(cmd)] : entry_of_unknown(r);
    if (s->trk) tracking_next(s, cmd); /* CLIENT CACHING's answer is for this one */
    /* the common case: a command of the cluster's from a session that never
     * used MULTI or SUBSCRIBE (their state is NULL) */
    if (d->fn == NULL && cmd && s->authed && s->txn == NULL && s->psub == NULL) {
        forward(s, cmd, r, seq);
        return;
    }
    if (!s->authed) {
        if (d->flags & D_BEFORE_AUTH) {
            d->fn(s, cmd, r, seq);
        } else {
            rs->rejected = 1;
            session_answer(s, seq, "-NOAUTH Authentication required.\r\n");
        }
        return;
    }
    if ((d->flags & D_POLICY_FIRST) && denied(s, r, seq)) return;
    if (pubsub_active(s) && s->out.proto != SG_RESP_PROTO_3) { /* RESP2's subscribed mode */
        if (d->subscribed) d->subscribed(s, cmd, r, seq);
        else pubsub_refuse(s, r, seq);
        return;
    }
    if (txn_queuing(s) && d->fn == refuse && !(cmd->flags & SG_CMD_NO_MULTI)) {
        /* what slotgated refuses (ACL, DEBUG, CLUSTER's administration ...)
         * is refused in MULTI too, never queued for the node to run; what
         * Redis itself refuses in MULTI (SAVE, SHUTDOWN) gets Redis's words
         * from txn_queue */
        refuse(s, cmd, r, seq);
        txn_abort(s);
        return;
    }
    if (txn_queuing(s) && !(d->flags & D_IN_MULTI)) {
        sg_request_ctx hook = {0}; /* a tracking session's reads: their keys */
        if (s->trk) tracking_queue(s, cmd, r, &hook);
        txn_queue(s, cmd, r, seq,
                  ((d->flags & D_OWN_CONN) ? TXN_OWN_CONN : 0) |
                      ((d->flags & D_LOCAL) ? TXN_LOCAL : 0),
                  &hook);
        return;
    }
    if (d->fn == NULL) {
        forward(s, cmd, r, seq);
        return;
    }
    if (cmd && !(d->flags & (D_BEFORE_AUTH | D_POLICY_FIRST | D_NO_POLICY)) && denied(s, r, seq))
        return;
    d->fn(s, cmd, r, seq);
}
