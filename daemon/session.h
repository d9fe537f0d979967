/*
 * session.h — a client's session and what it runs in: the server, its
 * workers (the types; server.c runs them), and session.c's API. session.c
 * owns a session's memory and life, its reply slots (one per request, in
 * request order) and the flush of finished replies to its output; server.c
 * owns the sockets and the loop that reads, writes and carries out closes.
 * The feature modules (users, txn, pubsub, admin, metrics) read and extend
 * a session through this and write replies with resp.h, never through the
 * server.
 */
#ifndef SG_SESSION_H
#define SG_SESSION_H

#include <assert.h>
#include <event2/bufferevent.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "core_private.h"
#include "resp.h"
#include "server.h"

typedef struct server server;
typedef struct session session;

/* ---- a worker's figures (INFO sums every worker's: info.c) ----
 * Only the worker's thread writes its block; any thread reads it. Each
 * figure is a single-writer relaxed atomic: figs_add is a load and a store
 * (no lock prefix, no read-modify-write: on x86-64 and arm64 the code of a
 * plain counter), a reader gets each figure whole, and ThreadSanitizer sees
 * no race. */
#define FIGS_ERRCODES 128 /* distinct error codes counted, as Redis */
#define FIGS_SAMPLES 16   /* instantaneous_*: Redis's ring of samples */

typedef struct cmd_figs {
    uint64_t calls, usec, rejected, failed;
} cmd_figs;

typedef struct err_figs {
    char code[32]; /* written once, before nerr counts it */
    uint64_t count;
} err_figs;

typedef struct worker_figs {
    uint64_t commands;         /* requests read (total_commands_processed) */
    uint64_t errors;           /* error replies (total_error_replies) */
    uint64_t conns, rejected_conns, net_in, net_out, reads, writes;
    uint64_t blocked;          /* sessions waiting on a blocking command */
    /* CLIENT TRACKING (tracking.c): sessions with it on, keys and (key,
     * session) pairs in the table, BCAST prefixes */
    uint64_t trk_clients, trk_keys, trk_items, trk_prefixes;
    uint64_t ops_sec, in_bps, out_bps; /* averages of the ring, per second */
    int nerr;                  /* err[0..nerr) are in use: release/acquire */
    err_figs err[FIGS_ERRCODES];
    cmd_figs cmd[SG_COMMAND_COUNT];
    /* the sampler's own (the worker's thread only) */
    struct { uint64_t ops, in, out; } ring[FIGS_SAMPLES];
    int ring_i;
    uint64_t last_us, last_ops, last_in, last_out;
} worker_figs;

static inline void figs_add(uint64_t *c, uint64_t n) {
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline uint64_t figs_get(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

/* Options the workers share: the last worker to move off a reloaded set
 * frees it (server.c). */
typedef struct opts_ref {
    sg_serve_opts *o;
    int refs; /* atomic: the workers on it, or about to be */
    int owned; /* made by a reload: freed with o->free_opts */
} opts_ref;

typedef struct worker {
    server *srv;
    const sg_serve_opts *o; /* the current options: o_ref->o */
    opts_ref *o_ref;
    opts_ref *next_ref;     /* atomic: a reload's, for the next loop turn */
    int id;
    pthread_t tid;
    struct event_base *base;
    sg_gateway *gw;
    sg_policy *policy;       /* the common scripts; NULL: none */
    sg_policy **user_policy; /* users.c: per o->users[i]; NULL: policy */
    sg_policy_stats policy_retired; /* what sets replaced by reloads counted */
    struct evconnlistener **ls;
    int nls;
    struct event *reload_ev, *stop_ev, *stop_timer;
    int stopping;
    session *sessions; /* every open session, for the stop */
    session *dirty;    /* sessions with replies to write, or a close to carry
                          out, at the turn's end (server.c) */
    struct event *write_ev; /* writes them: active at the end of the turn */
    struct event *late_ev;  /* writes those held back one turn (server.c) */
    struct owed *free_owed; /* forwarding records for reuse (dispatch.c) */
    int nfree_owed;
    void *free_bufs; /* reply slots' buffers for reuse (session.c) */
    int nfree_bufs;
    struct event *sample_ev; /* every 100 ms: figs_sample (session.c) */
    struct trk_worker *trk; /* CLIENT TRACKING's table (tracking.c), NULL: never used */
    uint64_t read_us; /* when the requests being handled were read (server.c):
                         one clock reading per read, not one per request */
    worker_figs figs;
} worker;

struct server {
    const sg_serve_opts *o; /* as started: the listeners, threads, reload */
    opts_ref first;         /* the workers' options until a reload */
    const sg_config *cfg;
    worker *w;
    int nw;
    long long clients; /* atomic */
    time_t started;    /* INFO's uptime */
    int stop;          /* SIGTERM or SIGINT came (main thread only) */
    uint64_t next_id;  /* atomic */
    struct trk_reg *trk_reg; /* which worker serves which session id (tracking.c) */
    long long trk_on; /* atomic: sessions with CLIENT TRACKING on, every worker's:
                         while 0, a write tells no one before it leaves (tracking.c) */
};

/* The place of one reply a client is owed, in request order. */
typedef struct reply_slot {
    struct worker *w;
    int done;        /* the reply is complete in out */
    int rejected;    /* refused before it ran: rejected_calls, not calls */
    int failed;      /* an error went straight to the output */
    const sg_command *cmd; /* for commandstats; NULL: none (unknown) */
    uint64_t t0;     /* when it was read (w->read_us) */
    int quiet;       /* CLIENT REPLY OFF or SKIP: the reply is dropped, never written */
    sg_resp_out out; /* the reply, while those before it are still owed */
} reply_slot;

/* A command forwarded to the cluster, owed a reply (dispatch.c makes and
 * keeps them); a blocking one (BLPOP ...) is also in its session's blocked
 * list, where CLIENT UNBLOCK (clientcmd.c) may answer it first: s is then
 * NULL and the reply, when the node sends it, is dropped. */
typedef struct owed {
    session *s;             /* NULL: answered by CLIENT UNBLOCK */
    struct worker *w;
    uint64_t seq;
    struct owed *next;      /* in the worker's free list */
    struct owed *next_blocked; /* in s->blocked, oldest first */
    struct trk_gate *gate;  /* not NULL: the reply waits for it (tracking.c) */
} owed;

struct session {
    worker *w;
    session *prev, *next;
    evutil_socket_t fd;
    struct bufferevent *bev; /* TLS sessions only (they read and write through
                                it; plain ones use fd and the events) */
    struct event *rev;   /* readable (and the idle timeout) */
    struct event *wev;   /* writable: added only while replies wait for room */
    sg_resp_out out;     /* replies ready to write, in order, from outoff */
    size_t outoff;
    session *dirty_next; /* in the worker's dirty list */
    int held;            /* its replies were held back a turn (server.c) */
    int dirty;
    sg_resp *rp;
    reply_slot *slots; /* ring: head is the oldest reply owed */
    size_t cap, head, count;
    uint64_t head_seq; /* the sequence number of slots[head] */
    int inflight;      /* requests the gateway still owes a reply */
    int gone;          /* the connection is closed: wait for inflight */
    int closing;       /* close once every reply is written (QUIT) */
    int blocking;      /* blocking commands forwarded, not yet answered */
    int close_asap;    /* session_close() asked: the server loop closes it at
                          the end of the turn, replies unwritten or not */
    int authed;
    int user; /* index in w->o->users; -1: the default user */
    uint64_t id;
    time_t created; /* for CLIENT INFO's age */
    uint64_t last_us; /* when its last command was read (session_now_us's clock):
                         CLIENT INFO's idle */
    const sg_command *lastcmd; /* the last command known to the table: cmd= */
    char *name;
    char addr[128];  /* the peer, "ip:port", "[v6]:port" or "/path:0" as Redis */
    char laddr[128]; /* where it reached slotgated, the same way */
    int is_unix;
    int reply_off;   /* CLIENT REPLY OFF: every reply is dropped */
    int reply_skip;  /* CLIENT REPLY SKIP: the next command's reply is dropped */
    int no_evict;    /* CLIENT NO-EVICT ON (shown as flag e; nothing is evicted) */
    owed *blocked;   /* blocking commands in flight, oldest first (flag b) */
    struct txn *txn;   /* MULTI/WATCH state (txn.c), NULL when none */
    struct psub *psub; /* subscriptions (pubsub.c), NULL when none */
    struct trk *trk;   /* CLIENT TRACKING (tracking.c), NULL when never turned on */
};

/* What a log line about s concerns (sg_log_at): its address, and the user
 * it authenticated as (none for the default user). */
static inline sg_log_fields session_log_fields(const session *s) {
    sg_log_fields f = {.client = s->addr,
                       .user = s->user >= 0 ? s->w->o->users[s->user].name : NULL};
    return f;
}

/* ---- reply slots ---- */
/* A new slot at the tail of s's replies, for the next request's reply; its
 * sequence number in *seq. NULL when out of memory. The pointer is valid
 * until the next reply_slot_new on s. */
reply_slot *reply_slot_new(session *s, uint64_t *seq);
/* The slot of the reply with sequence number seq (still owed). Inline: every
 * forwarded reply finds its slot so. */
static inline reply_slot *reply_slot_at(session *s, uint64_t seq) {
    assert(seq - s->head_seq < s->count); /* still owed: not answered, not in the future */
    return &s->slots[(s->head + (seq - s->head_seq)) & (s->cap - 1)];
}
/* The reply in rs is complete (once per slot); session_flush writes it.
 * Counted in the worker's figures: its command's calls, time and failure,
 * and an error reply by its code. */
void reply_slot_done(reply_slot *rs);
/* A reply written whole at once into the slot seq, done: resp is in the
 * session's protocol already ("+OK\r\n"). */
void session_answer(session *s, uint64_t seq, const char *resp);
/* An error reply into the slot seq, done. */
void session_answer_error(session *s, uint64_t seq, const char *msg);
/* Fills the slot seq with reply (or, when NULL, an error from status and
 * errmsg), marks it done and writes what is ready. */
void session_reply(session *s, uint64_t seq, const sg_reply *reply, int status,
                   const char *errmsg);
/* As session_reply, but the slot is not marked done: its reply waits (a
 * write whose other workers' tracking sessions are being told: tracking.c). */
void session_reply_held(session *s, uint64_t seq, const sg_reply *reply, int status,
                        const char *errmsg);
/* Moves every finished reply at the head to the output, in order (and
 * enforces the output limit); they are written at the end of the turn. */
void session_flush(session *s);

/* ---- life ---- */
/* An asynchronous answer came for s (which counted it in inflight): 1 when
 * the session still has its client (write the reply), 0 when the client is
 * gone (the session may have been freed: do not touch it). Inline, with the
 * rare case (gone) out of line in session.c. */
int session_owed_gone(session *s);
static inline int session_owed_done(session *s) {
    assert(s->inflight > 0);
    s->inflight--;
    return s->gone ? session_owed_gone(s) : 1;
}
/* Asks for s to be closed: a mark (close_asap), carried out by the server
 * loop at the end of the turn, so callers below it never see s freed under
 * them. Its replies are not written any more. */
void session_close(session *s);
/* Whether s still serves its client: not gone, no close asked. */
static inline int session_open(const session *s) { return !s->gone && !s->close_asap; }
/* server.c only, from the loop, with the session's features released: the
 * connection ends now; the session lives until the gateway has answered
 * everything in flight. */
void session_end(session *s);
/* The reply buffers w keeps for reuse, freed (server.c, worker_free). */
void session_free_pool(worker *w);

/* ---- figures ---- */
/* The monotonic clock in microseconds. */
uint64_t session_now_us(void);
/* s waits (on = 1) or no longer waits (on = 0) on one more blocking command
 * forwarded: blocked_clients counts the sessions with one or more. */
void session_blocking(session *s, int on);
/* One sample of w's rates for instantaneous_* (every 100 ms, server.c). */
void figs_sample(worker *w);

#endif
