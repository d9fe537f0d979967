/*
 * session.h — what the daemon's modules share: the server, its workers and
 * the client sessions (requests in, replies out in each client's own order),
 * and the helpers that write RESP replies. server.c owns the life of these;
 * the command modules read and extend them.
 */
#ifndef SG_SESSION_H
#define SG_SESSION_H

#include <event2/bufferevent.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <strings.h>

#include "resp.h"
#include "server.h"
#include "sg_internal.h"

typedef struct server server;
typedef struct session session;

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
    session *dirty;    /* sessions with replies to write at the turn's end */
    struct event *write_ev; /* writes them: active at the end of the turn */
    struct event *late_ev;  /* writes those held back one turn (server.c) */
    struct owed *free_owed; /* owed records for reuse (server.c) */
    int nfree_owed;
    void *free_bufs; /* slots' reply buffers for reuse (server.c) */
    int nfree_bufs;
    uint64_t commands, errors;
} worker;

struct server {
    const sg_serve_opts *o; /* as started: the listeners, threads, reload */
    opts_ref first;         /* the workers' options until a reload */
    const sg_config *cfg;
    worker *w;
    int nw;
    long long clients; /* atomic */
    int stop;          /* SIGTERM or SIGINT came (main thread only) */
    uint64_t next_id;  /* atomic */
};

/* One reply owed to a client, in request order. */
typedef struct slot {
    int done;
    sg_buf out;
} slot;

struct session {
    worker *w;
    session *prev, *next;
    evutil_socket_t fd;
    struct bufferevent *bev; /* TLS sessions only (they read and write through
                                it; plain ones use fd and the events) */
    struct event *rev;   /* readable (and the idle timeout) */
    struct event *wev;   /* writable: added only while replies wait for room */
    sg_buf out;          /* replies ready to write, in order, from outoff */
    size_t outoff;
    session *dirty_next; /* in the worker's dirty list */
    int held;            /* its replies were held back a turn (server.c) */
    int dirty;
    sg_resp *rp;
    slot *slots; /* ring: head is the oldest reply owed */
    size_t cap, head, count;
    uint64_t head_seq; /* the sequence number of slots[head] */
    int inflight;      /* requests the gateway still owes a reply */
    int gone;          /* the connection is closed: wait for inflight */
    int closing;       /* close once every reply is written */
    int authed;
    int user; /* index in w->o->users; -1: the default user */
    uint64_t id;
    time_t created; /* for CLIENT INFO's age */
    char *name;
    char addr[80];
    struct txn *txn;   /* MULTI/WATCH state (txn.c), NULL when none */
    struct psub *psub; /* subscriptions (pubsub.c), NULL when none */
};

/* ---- replies (RESP2 into a buffer) ---- */
void put_reply(sg_buf *b, const sg_reply *r);
void put_bulk(sg_buf *b, const char *s, size_t n);
/* An error reply: msg must start with an error code word ("ERR ..."). */
void put_error(sg_buf *b, const char *msg);
/* Whether argument i of r is word (case-insensitive). Inline: with a
 * literal word the length is a constant and most mismatches cost one
 * comparison (this runs for every request). */
static inline int is(const sg_resp_req *r, int i, const char *word) {
    size_t n = __builtin_strlen(word);
    return i < r->argc && r->argvlen[i] == n && strncasecmp(r->argv[i], word, n) == 0;
}

/* ---- users and their policies (users.c) ---- */
/* Whether clients must authenticate (requirepass or users set). */
int users_required(const sg_serve_opts *o);
/* AUTH [user] password: authenticates s or writes the error to b. */
void users_auth(session *s, const sg_resp_req *r, sg_buf *b);
/* The user s authenticated as, for the policies (NULL: no authentication). */
const char *session_user(const session *s);
/* The policy set for s's commands (NULL: none). */
sg_policy *session_policy(const session *s);
/* Loads the common set and each user's set of w; 0, or -1 with why in err. */
int policies_load(worker *w, char *err, size_t errlen);
/* SIGHUP: loads every set o names and puts them in place of the worker's (o: the
 * worker's own options, or the reloaded ones it is moving to). 0, or -1
 * when a script fails: the old sets stay, and why is logged. */
int policies_reload(worker *w, const sg_serve_opts *o);
/* After a reload: each session's user found again by name in w->o (one
 * whose user is gone is closed, as Redis closes a deleted user's clients);
 * old: the options the sessions were authenticated under. */
void users_moved(worker *w, const sg_serve_opts *old);
/* The figures of every set of w, those replaced by reloads included. */
void policies_stats(const worker *w, sg_policy_stats *out);
/* Frees every set of w. */
void policies_free(worker *w);

/* ---- sessions ---- */
/* A new slot at the tail of s's replies, for the next request's reply; its
 * sequence number in *seq. NULL when out of memory. */
slot *slot_new(session *s, uint64_t *seq);
/* Moves every finished reply at the head to the output, in order (and
 * enforces the output limit); they are written at the end of the turn. */
void session_flush(session *s);
/* The slot of the reply with sequence number seq (still owed). */
slot *slot_at(session *s, uint64_t seq);
/* An asynchronous answer came for s (which counted it in inflight): 1 when
 * the session still has its client (write the reply), 0 when the client is
 * gone (the session may have been freed: do not touch it). */
int session_owed_done(session *s);
/* Fills the slot seq with reply (or, when NULL, an error from status and
 * errmsg), marks it done and writes what is ready. */
void session_reply(session *s, uint64_t seq, const sg_reply *reply, int status,
                   const char *errmsg);
/* The connection ends; the session lives until the gateway has answered
 * everything in flight. */
void session_close(session *s);

#endif
