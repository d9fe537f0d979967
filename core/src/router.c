/*
 * router.c — a command's life in the engine: from argv to RESP, keys to slot,
 * slot to node; MOVED (update the map, try again), ASK (ASKING, then once on
 * the target), TRYAGAIN/CLUSTERDOWN/LOADING and lost connections (bounded
 * retries with backoff; a write whose bytes had left is never sent twice);
 * the parts of split and fan-out commands (made and merged by split.c) and
 * SCAN over a cluster (scan.c) dispatched and completed; and the one place a
 * request completes. It installs the pool's connection ops and the cluster's
 * events on each client (sg_router_attach): the layers below call it only
 * through those.
 */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands_index.h"
#include "engine.h"

/* Finished requests a client (one per worker) keeps for reuse: what two
 * workers have in flight for 50 clients pipelining 16 deep; ~150 kB at most. */
#define KEEP_REQS 512
/* The least room for a request's command: a GET or SET of a short key and
 * value, or a split MGET's part, fits; so one kept request serves the next.
 * (Room is memory per request in flight: an MGET of 10 slots at pipeline
 * 16 from 50 clients has 8 000 parts out.) */
#define REQ_ROOM 64

#define SG_RETRY_MAX_DELAY_MS 1000

/* ---- requests --------------------------------------------------------------------- */

static void live_retry_drop(sg_req *req, int ended);
static void durable_leave(sg_req *req);

void sg_req_free(sg_req *req) {
    int i;
    if (req == NULL) return;
    if (req->live_retry) live_retry_drop(req, 1);
    if (req->wait) durable_leave(req);
    sg_reply_free(req->durable_reply);
    for (i = 0; i < req->nttls; i++) sg_free(req->ttls[i].key);
    sg_free(req->ttls);
    if (req->timer) event_free(req->timer);
    if (req->sp) sg_split_free(req->sp);
    sg_free(req->failed_msg);
    sg_free(req->scan);
    sg_reply_free(req->early);
    if (req->cmdcap == 0) { /* a command of its own (not made by req_new) */
        sg_free(req->cmd);
    } else if (!req->client->net.freeing && req->client->nfree_reqs < KEEP_REQS &&
               req->cmdcap <= 1024) {
        /* kept: the next request reuses it (a malloc and a free less each) */
        req->next = req->client->free_reqs;
        req->client->free_reqs = req;
        req->client->nfree_reqs++;
        return;
    }
    sg_free(req);
}

/* The length of an argv in RESP. */
static size_t argv_resp_len(int argc, const size_t *argvlen) {
    size_t total = sg_resp_header_len((size_t)argc);
    int i;
    for (i = 0; i < argc; i++) total += sg_resp_header_len(argvlen[i]) + argvlen[i] + 2;
    return total;
}

/* Writes an argv in RESP at buf (argv_resp_len bytes). */
static void put_argv(char *buf, int argc, const char *const *argv, const size_t *argvlen) {
    char *p = sg_resp_header(buf, '*', (size_t)argc);
    int i;
    for (i = 0; i < argc; i++) {
        p = sg_resp_header(p, '$', argvlen[i]);
        memcpy(p, argv[i], argvlen[i]);
        p += argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
}

/* A request and its command in RESP, in one allocation (a kept one when
 * its room is enough): resp as it is, else made from argv. */
static sg_req *req_new(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                       const char *resp, size_t resplen) {
    size_t total = resp ? resplen : argv_resp_len(argc, argvlen), cap;
    sg_req *req = c->free_reqs;
    if (req && req->cmdcap >= total) {
        c->free_reqs = req->next;
        c->nfree_reqs--;
        cap = req->cmdcap;
        memset(req, 0, sizeof *req);
    } else {
        cap = total < REQ_ROOM ? REQ_ROOM : total; /* room to be reused */
        if ((req = sg_calloc(1, sizeof *req + cap)) == NULL) return NULL;
    }
    req->cmdcap = cap;
    req->client = c;
    req->slot = -1;
    req->read_policy = -1;
    req->cmd = (char *)(req + 1);
    req->cmdlen = total;
    if (resp) memcpy(req->cmd, resp, resplen);
    else put_argv(req->cmd, argc, argv, argvlen);
    return req;
}

/* ---- completion --------------------------------------------------------------------- */

static void finish_parent_part(sg_req *part, sg_reply *reply, int status, const char *msg);

static void drop_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    (void)c;
    (void)ud;
    if (reply && reply->type == SG_REPLY_ERROR)
        sg_log(SG_LOG_WARN, "default TTL not set: %s", reply->str);
    else if (status != SG_OK)
        sg_log(SG_LOG_WARN, "default TTL not set: %s", errmsg);
    sg_reply_free(reply);
}

/* After a successful write: EXPIRE key seconds NX for the policy's keys. */
static void set_default_ttls(sg_req *req) {
    int i;
    for (i = 0; i < req->nttls; i++) {
        char secs[32];
        const char *argv[4] = {"EXPIRE", req->ttls[i].key, secs, "NX"};
        size_t lens[4] = {6, req->ttls[i].len, 0, 2};
        lens[2] = (size_t)snprintf(secs, sizeof secs, "%lld", req->ttls[i].seconds);
        if (sg_router_submit(req->client, 4, argv, lens, drop_reply, NULL, NULL) != SG_OK)
            sg_log(SG_LOG_WARN, "default TTL not set: %s", req->client->err.msg);
    }
}

static int finish_deferred(sg_req *req, sg_reply *reply, int status, const char *msg);

void sg_req_finish(sg_req *req, sg_reply *reply, int status, const char *msg) {
    if (req->parent) {
        finish_parent_part(req, reply, status, msg);
        return;
    }
    /* a request that ends inside a send (out of memory, mostly): its
     * callback, and any other, runs from the loop, never inside the send */
    if (req->client->submitting && !req->client->net.freeing &&
        finish_deferred(req, reply, status, msg))
        return;
    assert(!req->finished && "a request finished twice");
    req->finished = 1;
    if (req->nttls && status == SG_OK && reply && reply->type != SG_REPLY_ERROR &&
        !req->client->net.freeing)
        set_default_ttls(req);
    if (req->fn) req->fn(req->client, reply, status, status == SG_OK ? NULL : msg, req->ud);
    else sg_reply_free(reply);
    sg_req_free(req);
}

static void finish_parent_part_raw(sg_req *part, const char *resp, size_t len);

/* The pool connections' ops->raw (owner: the node): a reply as bytes, for a
 * request sent with SG_SEND_RAW. */
static void req_raw(void *owner, void *tag, const char *resp, size_t len) {
    sg_req *req = tag;
    (void)owner;
    /* from a connection's read, never inside a send: no deferral needed */
    if (req->parent) {
        finish_parent_part_raw(req, resp, len);
        return;
    }
    assert(!req->finished && "a request finished twice");
    req->finished = 1;
    req->client->reply_redirected = req->redirects > 0;
    req->raw_fn(req->client, resp, len, req->ud);
    sg_req_free(req);
}

/* ---- the parts of a split or fan-out (split.c makes and merges them) ------------------ */

/* Every part is in: the parent completes with what the merge gives. */
static void merge_and_finish(sg_req *p) {
    sg_reply *tree;
    sg_buf bytes = {0};
    const char *msg = NULL;
    int status = sg_split_merge(p, &tree, &bytes, &msg);
    if (status != SG_OK || tree != NULL) {
        sg_req_finish(p, tree, status, msg);
        return;
    }
    assert(!p->finished && "a request finished twice");
    p->finished = 1;
    p->client->reply_redirected = p->redirected;
    p->raw_fn(p->client, bytes.data, bytes.len, p->ud);
    sg_buf_free(&bytes);
    sg_req_free(p);
}

static void finish_parent_part(sg_req *part, sg_reply *reply, int status, const char *msg) {
    sg_req *p = part->parent;
    int last;
    if (part->redirects) p->redirected = 1;
    last = sg_split_take(part, reply, status, msg);
    sg_req_free(part);
    if (last) merge_and_finish(p);
}

static void finish_parent_part_raw(sg_req *part, const char *resp, size_t len) {
    sg_req *p = part->parent;
    int last;
    if (part->redirects) p->redirected = 1;
    last = sg_split_take_raw(part, resp, len);
    sg_req_free(part);
    if (last) merge_and_finish(p);
}

/* ---- retries ------------------------------------------------------------------------- */

/* Takes a request whose timer fired off the client's retry list. */
static void retry_unlink(sg_req *req) {
    sg_req **pp;
    for (pp = &req->client->retrying; *pp && *pp != req; pp = &(*pp)->next) {
    }
    if (*pp) *pp = req->next;
    req->next = NULL;
    req->in_retry = SG_RETRY_NONE;
}

/* Puts req on its client's retry list, for why (an SG_RETRY_*). */
static void retry_push(sg_req *req, int why) {
    sg_client *c = req->client;
    req->in_retry = (uint8_t)why;
    req->next = c->retrying;
    c->retrying = req;
}

/* ---- a slot's order through retries ---------------------------------------------------
 * A request being retried (waiting out a backoff, or sent again and not yet
 * answered) holds back the later requests of its slot: they wait on the retry
 * list (SG_RETRY_HELD) until it has ended, then go in the order they were
 * first dispatched. Otherwise a pipelined SET k 1 refused twice (TRYAGAIN,
 * CLUSTERDOWN: its next try after 100 ms) is overtaken by SET k 2 refused
 * once (50 ms), or by any later command, and k ends as 1. Requests already
 * sent when the first refusal comes cannot be held back. Retries are rare:
 * nothing here runs while the retry list and client->retried are empty. */

/* Whether an older request of req's slot is being retried, or held. */
static int older_retried(const sg_req *req) {
    const sg_client *c = req->client;
    const sg_req *r;
    int i;
    for (r = c->retrying; r; r = r->next)
        if (r != req && r->slot == req->slot && r->seq < req->seq && !r->exclusive &&
            (r->in_retry == SG_RETRY_BACKOFF || r->in_retry == SG_RETRY_HELD))
            return 1;
    for (i = 0; i < c->nretried; i++) {
        const sg_req *o = c->retried[i];
        /* a script holds back its own session's commands only: another
         * session's get the node's BUSY, as from Redis directly */
        if (o != req && o->slot == req->slot && o->seq < req->seq &&
            (!o->exclusive || o->order == req->order))
            return 1;
    }
    return 0;
}

/* req is in flight and holds its slot's later requests back until it ends
 * (in client->retried; no memory for the list: it holds nothing, as before
 * there was one). */
static void retried_push(sg_req *req) {
    sg_client *c = req->client;
    if (req->live_retry) return;
    if (c->nretried == c->cap_retried) {
        int ncap = c->cap_retried ? c->cap_retried * 2 : 8;
        sg_req **n = sg_realloc(c->retried, (size_t)ncap * sizeof *n);
        if (n == NULL) return;
        c->retried = n;
        c->cap_retried = ncap;
    }
    c->retried[c->nretried++] = req;
    req->live_retry = 1;
}

/* req is retried and sent: it holds its slot until it ends. A blocking
 * command holds nothing: it has a connection of its own, and may block for
 * good. */
static void live_retry_add(sg_req *req) {
    if (req->slot < 0 || req->exclusive) return;
    retried_push(req);
}

/* An exclusive command that is not blocking (a script: EVAL, FCALL) goes on a
 * connection of its own, so the node may run a later command of its slot,
 * sent on the shared one, first: the slot's later requests of the same
 * caller (req->order) wait for its end, as for a retried one. (A blocking
 * command holds nothing: BLPOP k then LPUSH k from another caller must not
 * wait for each other.) */
static void ordered_add(sg_req *req) {
    retried_push(req);
}

static void release_cb(evutil_socket_t fd, short what, void *arg);

/* req is no longer in flight: waiting again, or ended. When it ended, what it
 * held back goes from the loop (never inside a callback or a send). */
static void live_retry_drop(sg_req *req, int ended) {
    sg_client *c = req->client;
    int i;
    for (i = 0; i < c->nretried; i++)
        if (c->retried[i] == req) {
            c->retried[i] = c->retried[--c->nretried];
            break;
        }
    req->live_retry = 0;
    if (!ended || c->net.freeing) return;
    if (c->release_ev == NULL &&
        (c->release_ev = event_new(c->net.base, -1, 0, release_cb, c)) == NULL)
        return; /* then the next retry's end releases them */
    event_active(c->release_ev, EV_TIMEOUT, 1);
}

static void hold(sg_req *req) {
    if (req->live_retry) live_retry_drop(req, 0);
    retry_push(req, SG_RETRY_HELD);
}

static int by_seq(const void *a, const void *b) {
    uint64_t x = (*(sg_req *const *)a)->seq, y = (*(sg_req *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Sends the held requests nothing older holds back any more, oldest first:
 * one pass over them in order (a failover can hold thousands). */
static void release_cb(evutil_socket_t fd, short what, void *arg) {
    sg_client *c = arg;
    sg_req *r, **held;
    size_t n = 0, i;
    (void)fd;
    (void)what;
    for (r = c->retrying; r; r = r->next) n += r->in_retry == SG_RETRY_HELD;
    if (n == 0) return;
    if ((held = sg_malloc(n * sizeof *held)) == NULL) {
        event_active(c->release_ev, EV_TIMEOUT, 1); /* the next turn tries again */
        return;
    }
    n = 0;
    for (r = c->retrying; r; r = r->next)
        if (r->in_retry == SG_RETRY_HELD) held[n++] = r;
    qsort(held, n, sizeof *held, by_seq);
    /* outcomes meanwhile wait for the loop: a caller's callback run from
     * here could free the client under the array */
    c->submitting++;
    for (i = 0; i < n; i++) {
        r = held[i];
        if (older_retried(r)) continue; /* an older one still waits, or was sent again */
        retry_unlink(r);
        if (r->retries > 0) live_retry_add(r);
        sg_req_dispatch(r); /* may hold it again, or finish it (from the loop) */
    }
    c->submitting--;
    sg_free(held);
}

/* A read lost after it was sent is read again only when no later write of
 * its slot was lost after being sent too: that write may have been applied,
 * and the read, which came before it, would show it. 1: req may go again. */
static int read_again_ok(sg_req *req) {
    sg_client *c = req->client;
    uint32_t i;
    if (!req->resent) return 1;
    if (c->unknown_total - req->unknown_mark > SG_UNKNOWN_KEEP) return 0; /* forgotten: no */
    for (i = req->unknown_mark; i != c->unknown_total; i++) {
        const int k = (int)(i % SG_UNKNOWN_KEEP);
        if (c->unknown[k].slot == req->slot && c->unknown[k].seq > req->seq) return 0;
    }
    return 1;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg) {
    sg_req *req = arg;
    (void)fd;
    (void)what;
    retry_unlink(req);
    if (!read_again_ok(req)) {
        char msg[SG_ERRMSG_MAX];
        snprintf(msg, sizeof msg,
                 "connection to node %.100s lost after the read was sent; not read again, as a "
                 "later write of its slot, also lost, may have been applied",
                 req->last_node ? req->last_node->addr : "?");
        sg_req_finish(req, NULL, SG_ECONNECT, msg);
        return;
    }
    live_retry_add(req);
    sg_req_dispatch(req);
}

/* Tries again after a backoff; 0 when the retries are used up. */
static int schedule_retry(sg_req *req) {
    sg_client *c = req->client;
    struct timeval tv;
    const struct timeval *ctv;
    int delay;
    if (req->no_retry || req->retries >= c->max_retries || c->net.freeing) return 0;
    delay = 50 << (req->retries > 5 ? 5 : req->retries);
    if (delay > SG_RETRY_MAX_DELAY_MS) delay = SG_RETRY_MAX_DELAY_MS;
    /* all the retries of a command fit in its timeout */
    if (sg_now_ms() + (uint64_t)delay - req->started > (uint64_t)c->net.timeout_ms) return 0;
    req->retries++;
    if (req->timer == NULL && (req->timer = evtimer_new(c->net.base, retry_cb, req)) == NULL)
        return 0;
    evtimer_assign(req->timer, c->net.base, retry_cb, req);
    tv.tv_sec = delay / 1000;
    tv.tv_usec = (delay % 1000) * 1000;
    /* a common timeout: backoffs of one length fire in the order they began
     * (plain timers that end at the same time fire in any order, and a
     * pipelined GET k retried with its SET k could run first) */
    ctv = event_base_init_common_timeout(c->net.base, &tv);
    evtimer_add(req->timer, ctv ? ctv : &tv);
    if (req->live_retry) live_retry_drop(req, 0);
    retry_push(req, SG_RETRY_BACKOFF);
    return 1;
}

static void finish_with_error(sg_req *req, const char *err) {
    sg_reply *r = sg_reply_new_str(SG_REPLY_ERROR, err, strlen(err));
    if (r) sg_req_finish(req, r, SG_OK, NULL);
    else sg_req_finish(req, NULL, SG_ENOMEM, "out of memory");
}

/* ---- durable writes --------------------------------------------------------------------
 * A write its caller wants confirmed by replicas (req->durable: a policy's
 * `durable`, or sg_call_opts) is sent as any other. At the end of the loop
 * turn, each connection that carried such writes gets one WAIT numreplicas
 * timeout after them: a node runs a connection's commands in order, and WAIT
 * counts the replicas that have acknowledged everything the connection wrote
 * before it, so one WAIT covers every durable write sent on it since the
 * last. Their replies are held until it answers: enough replicas, and each
 * gets its reply; fewer (or the WAIT fails), and each gets NOTCONFIRMED. A
 * write redirected or retried leaves its batch and joins the one of the
 * connection it goes on next; an error reply is not held (nothing applied). */
typedef struct sg_durable {
    sg_node *node;
    sg_conn *conn; /* NULL once the WAIT is out, or the connection went */
    sg_req **reqs; /* the writes it covers; NULL: one that left */
    int n, cap;
    int replicas, timeout_ms;
    char why[200]; /* the connection went before the WAIT: why */
} sg_durable;

static void durable_free(sg_durable *b) {
    sg_free(b->reqs);
    sg_free(b);
}

/* req no longer counts on its batch (redirected, retried, failed, freed). */
static void durable_leave(sg_req *req) {
    req->wait->reqs[req->wait_idx] = NULL;
    req->wait = NULL;
}

static void durable_send_cb(evutil_socket_t fd, short what, void *arg);

/* req (durable) was just queued on conn: the next WAIT on conn covers it. */
static void durable_note(sg_node *node, sg_conn *conn, sg_req *req) {
    sg_client *c = node->client;
    sg_durable *b = conn->wait_batch;
    int timeout = req->durable_ms > 0 ? req->durable_ms : (int)c->net.timeout_ms;
    if (b == NULL) {
        if (c->nwait_open == c->cap_wait_open) {
            int ncap = c->cap_wait_open ? c->cap_wait_open * 2 : 4;
            sg_durable **n = sg_realloc(c->wait_open, (size_t)ncap * sizeof *n);
            if (n == NULL) return; /* req->wait stays NULL: its reply says so */
            c->wait_open = n;
            c->cap_wait_open = ncap;
        }
        if (c->durable_ev == NULL &&
            (c->durable_ev = event_new(c->net.base, -1, 0, durable_send_cb, c)) == NULL)
            return;
        if ((b = sg_calloc(1, sizeof *b)) == NULL) return;
        b->node = node;
        b->conn = conn;
        conn->wait_batch = b;
        c->wait_open[c->nwait_open++] = b;
        if (c->nwait_open == 1) event_active(c->durable_ev, EV_TIMEOUT, 1);
    }
    if (b->n == b->cap) {
        int ncap = b->cap ? b->cap * 2 : 8;
        sg_req **n = sg_realloc(b->reqs, (size_t)ncap * sizeof *n);
        if (n == NULL) return;
        b->reqs = n;
        b->cap = ncap;
    }
    if (req->durable > b->replicas) b->replicas = req->durable;
    if (timeout > b->timeout_ms) b->timeout_ms = timeout;
    req->wait = b;
    req->wait_idx = b->n;
    b->reqs[b->n++] = req;
}

/* A durable write's reply, NOTCONFIRMED: applied, not confirmed. */
static sg_reply *not_confirmed(const sg_req *req, const sg_node *node, const char *how) {
    char msg[SG_ERRMSG_MAX];
    int n = snprintf(msg, sizeof msg,
                     "NOTCONFIRMED the write was applied on the master %s but not confirmed by "
                     "%d replica%s: %s; it is lost if that master fails before it replicates",
                     node ? node->addr : "?", req->durable, req->durable == 1 ? "" : "s", how);
    return sg_reply_new_str(SG_REPLY_ERROR, msg,
                            (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1));
}

/* Ends every write of b: its own reply when WAIT counted got >= its replicas
 * (got -1: the WAIT failed), else NOTCONFIRMED saying how. Frees b. */
static void durable_end(sg_durable *b, long long got, const char *how) {
    int i;
    for (i = 0; i < b->n; i++) {
        sg_req *req = b->reqs[i];
        sg_reply *r;
        if (req == NULL) continue;
        req->wait = NULL;
        r = req->durable_reply;
        req->durable_reply = NULL;
        if (r == NULL) continue; /* not answered yet: cannot be (one FIFO); it ends alone */
        if (got < req->durable) {
            sg_reply_free(r);
            b->node->st.unconfirmed++;
            if ((r = not_confirmed(req, b->node, how)) == NULL) {
                sg_req_finish(req, NULL, SG_ENOMEM, "out of memory");
                continue;
            }
        }
        sg_req_finish(req, r, SG_OK, NULL);
    }
    durable_free(b);
}

static void wait_done(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    sg_durable *b = ud;
    char how[SG_ERRMSG_MAX];
    long long got = -1;
    (void)c;
    if (reply && reply->type == SG_REPLY_INTEGER) {
        got = reply->integer;
        snprintf(how, sizeof how, "WAIT counted %lld within %d ms", got, b->timeout_ms);
    } else if (reply) {
        snprintf(how, sizeof how, "WAIT answered: %.200s", reply->str ? reply->str : "?");
    } else {
        snprintf(how, sizeof how, "WAIT failed: %.300s", errmsg ? errmsg : sg_strerror(status));
    }
    sg_reply_free(reply);
    durable_end(b, got, how);
}

/* The loop turn's WAITs, one per connection that carried durable writes. The
 * list is taken first: a write ended here may make its caller send more,
 * whose WAITs are the next turn's. */
static void durable_send_cb(evutil_socket_t fd, short what, void *arg) {
    sg_client *c = arg;
    sg_durable **list = c->wait_open;
    int n = c->nwait_open, i, k;
    (void)fd;
    (void)what;
    c->wait_open = NULL;
    c->nwait_open = c->cap_wait_open = 0;
    for (i = 0; i < n; i++) {
        sg_durable *b = list[i];
        sg_conn *conn = b->conn;
        char reps[16], secs[24];
        const char *argv[3] = {"WAIT", reps, secs};
        size_t lens[3] = {4, 0, 0};
        sg_req *w;
        if (conn) conn->wait_batch = NULL;
        b->conn = NULL;
        for (k = 0; k < b->n && b->reqs[k] == NULL; k++) {
        }
        if (k == b->n) { /* every write left (redirected, failed): nothing to confirm */
            durable_free(b);
            continue;
        }
        if (conn == NULL) {
            durable_end(b, -1, b->why);
            continue;
        }
        lens[1] = (size_t)snprintf(reps, sizeof reps, "%d", b->replicas);
        lens[2] = (size_t)snprintf(secs, sizeof secs, "%d", b->timeout_ms);
        if ((w = req_new(c, 3, argv, lens, NULL, 0)) == NULL) {
            durable_end(b, -1, "out of memory sending WAIT");
            continue;
        }
        w->target = b->node;
        w->no_retry = 1;
        w->fn = wait_done;
        w->ud = b;
        w->started = sg_now_ms();
        w->last_node = b->node;
        /* WAIT holds the connection on the node for up to its timeout */
        if (sg_conn_send(conn, w->cmd, w->cmdlen, w, 0,
                         (long long)b->timeout_ms + (long long)c->net.timeout_ms) != SG_OK) {
            sg_req_free(w);
            sg_conn_fail(conn, SG_ENOMEM, "out of memory queueing WAIT for node %s", b->node->addr);
            durable_end(b, -1, "out of memory sending WAIT");
            continue;
        }
        b->node->st.commands++;
        b->node->st.waits++;
    }
    sg_free(list);
    if (c->net.batching) sg_client_flush(c);
}

/* The pool's ops->closed: a batch whose WAIT is not out fails with it. */
static void pool_closed(void *owner, sg_conn *conn, int code, const char *msg) {
    sg_durable *b = conn->wait_batch;
    if (b) {
        b->conn = NULL;
        conn->wait_batch = NULL;
        snprintf(b->why, sizeof b->why, "the connection went before WAIT: %.150s",
                 msg ? msg : "closed");
    }
    sg_pool_closed(owner, conn, code, msg);
}

void sg_router_free_durable(sg_client *c) {
    int i, k;
    for (i = 0; i < c->nwait_open; i++) {
        sg_durable *b = c->wait_open[i];
        for (k = 0; k < b->n; k++) {
            sg_req *req = b->reqs[k];
            if (req == NULL) continue;
            req->wait = NULL;
            sg_reply_free(req->durable_reply);
            req->durable_reply = NULL;
            sg_req_finish(req, NULL, SG_ECLOSED, "client closed");
        }
        if (b->conn) b->conn->wait_batch = NULL;
        durable_free(b);
    }
    c->nwait_open = c->cap_wait_open = 0;
    sg_free(c->wait_open);
    c->wait_open = NULL;
    if (c->durable_ev) event_free(c->durable_ev);
    c->durable_ev = NULL;
}

/* ---- a connection of the node for a request ------------------------------------------- */

static void req_lost(void *owner, void *tag, int sent, int code, const char *msg);

/* Opens a connection in node's pool, or fails the request saying why not. */
static sg_conn *open_conn(sg_node *node, sg_req *req) {
    sg_conn *conn = sg_pool_open(node);
    if (conn == NULL) req_lost(node, req, 0, SG_ENOMEM, "out of memory opening a connection");
    return conn;
}

static void unblocked_before_sent(sg_req *req);

static void send_on(sg_node *node, sg_conn *conn, sg_req *req) {
    long long rd = SG_CONN_TIMEOUT_KEEP;
    req->asking = NULL;
    if (req->unblock) { /* CLIENT UNBLOCK came first: it never blocks on the node */
        unblocked_before_sent(req);
        return;
    }
    if (req->exclusive) {
        conn->exclusive = 1;
        if (req->block_ms != -2) /* a blocking command: its own time, the usual on top */
            rd = req->block_ms < 0 ? -1 : req->block_ms + node->client->net.timeout_ms;
    }
    if (sg_conn_send(conn, req->cmd, req->cmdlen, req, req->send_flags, rd) != SG_OK) {
        /* part of the command may be queued: the connection is spoiled, and
         * req is not in its FIFO (the push is the last step), so it is
         * failed here, unsent */
        char msg[SG_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "out of memory queueing a command for node %s", node->addr);
        sg_conn_fail(conn, SG_ENOMEM, "%s", msg);
        req_lost(node, req, 0, SG_ENOMEM, msg);
        return;
    }
    node->st.commands++;
    req->last_node = node;
    if (req->durable) durable_note(node, conn, req);
    if (req->exclusive && req->block_ms == -2 && req->slot >= 0) ordered_add(req);
}

static void wait_expired(evutil_socket_t fd, short what, void *arg);

/* Tries to give req a connection now; 0 when it must wait.
 *
 * Every shared command to a node goes on the first connection that can
 * carry it, never the least busy: Redis runs one connection's commands in
 * the order they came, so a caller's commands to one node keep theirs (a
 * pipelined SET k v; GET k reads v, SET k 1; SET k 2 leaves 2). Spread over
 * two connections, the node may run the second first. Further connections
 * serve what needs one of its own (blocking commands) and, once those end,
 * wait idle until they are trimmed. */
static int try_submit(sg_node *node, sg_req *req) {
    sg_client *c = node->client;
    sg_conn *best = NULL, *conn;
    int i;
    for (i = 0; i < node->nconns && best == NULL; i++) {
        sg_conn *k = node->conns[i];
        if (k->exclusive || k->state == SG_CONN_CLOSED) continue;
        if (req->exclusive && k->pcount > 0) continue;
        best = k;
    }
    if (best) {
        send_on(node, best, req);
        return 1;
    }
    if (node->nconns < c->max_active) {
        if ((conn = open_conn(node, req)) != NULL) send_on(node, conn, req);
        return 1;
    }
    return 0;
}

void sg_node_submit(sg_node *node, sg_req *req) {
    sg_client *c = node->client;
    struct timeval tv;
    /* A node that refused us recently: fail fast while it backs off. */
    if (node->nconns == 0 && node->connect_errors > 0 && sg_now_ms() < node->retry_at) {
        char msg[SG_ERRMSG_MAX];
        snprintf(msg, sizeof msg,
                 "cannot connect to node %.100s: %.150s (%d failed attempt%s; next in %llu ms)",
                 node->addr, node->last_error[0] ? node->last_error : "connection failed",
                 node->connect_errors, node->connect_errors == 1 ? "" : "s",
                 (unsigned long long)(node->retry_at - sg_now_ms()));
        req_lost(node, req, 0, SG_ECONNECT, msg);
        return;
    }
    if (try_submit(node, req)) return;
    /* Every connection is held: wait, at most the timeout. */
    node->st.pool_waits++;
    if (req->timer == NULL && (req->timer = evtimer_new(c->net.base, wait_expired, req)) == NULL) {
        sg_req_finish(req, NULL, SG_ENOMEM, "out of memory waiting for a connection");
        return;
    }
    evtimer_assign(req->timer, c->net.base, wait_expired, req);
    tv.tv_sec = c->net.timeout_ms / 1000;
    tv.tv_usec = (c->net.timeout_ms % 1000) * 1000;
    evtimer_add(req->timer, &tv);
    req->wait_deadline = sg_now_ms() + (uint64_t)c->net.timeout_ms;
    req->waiting = 1;
    req->last_node = node;
    req->next = NULL;
    if (node->waiters_tail) node->waiters_tail->next = req;
    else node->waiters = req;
    node->waiters_tail = req;
    node->nwaiters++;
}

static void unlink_waiter(sg_node *node, sg_req *req) {
    sg_req **pp = &node->waiters, *prev = NULL;
    while (*pp && *pp != req) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL) return;
    *pp = req->next;
    if (node->waiters_tail == req) node->waiters_tail = prev;
    node->nwaiters--;
    req->next = NULL;
    req->waiting = 0;
}

/* Fails every request waiting for a connection of node (client closing). */
void sg_node_fail_waiters(sg_node *node, int code, const char *msg) {
    while (node->waiters) {
        sg_req *req = node->waiters;
        unlink_waiter(node, req);
        evtimer_del(req->timer);
        sg_req_finish(req, NULL, code, msg);
    }
}

static void wait_expired(evutil_socket_t fd, short what, void *arg) {
    sg_req *req = arg;
    sg_node *node = req->last_node;
    sg_client *c = node->client;
    char msg[SG_ERRMSG_MAX];
    (void)fd;
    (void)what;
    unlink_waiter(node, req);
    node->st.pool_timeouts++;
    snprintf(msg, sizeof msg,
             "node %s: all %d connections busy (optimisation_max_active %d); waited %d ms",
             node->addr, node->nconns, c->max_active, c->net.timeout_ms);
    sg_req_finish(req, NULL, SG_EPOOL, msg);
}

/* Gives waiting requests a connection, in order, while one can be had (the
 * cluster's events->node_room: the pool has room, or a connection is idle). */
static void serve_waiters(sg_node *node) {
    while (node->waiters) {
        sg_req *req = node->waiters;
        unlink_waiter(node, req);
        evtimer_del(req->timer);
        if (!try_submit(node, req)) {
            /* still nothing: back to the head of the line, same deadline */
            struct timeval tv;
            uint64_t now = sg_now_ms();
            uint64_t left = req->wait_deadline > now ? req->wait_deadline - now : 0;
            req->waiting = 1;
            req->next = node->waiters;
            node->waiters = req;
            if (node->waiters_tail == NULL) node->waiters_tail = req;
            node->nwaiters++;
            tv.tv_sec = (long)(left / 1000);
            tv.tv_usec = (long)(left % 1000) * 1000;
            evtimer_add(req->timer, &tv);
            break;
        }
    }
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void fan_out_dispatch(sg_req *req);

void sg_req_dispatch(sg_req *req) {
    sg_client *c = req->client;
    sg_node *node;
    char msg[SG_ERRMSG_MAX];
    if (req->started == 0) {
        req->started = sg_now_ms();
        req->seq = ++c->next_seq;
    }
    if (!c->ready) {
        /* wait for the map; start (or restart) discovery */
        req->next = NULL;
        if (c->pending_tail) c->pending_tail->next = req;
        else c->pending = req;
        c->pending_tail = req;
        sg_cluster_discover(c);
        return;
    }
    if (req->fanout && req->sp == NULL) {
        fan_out_dispatch(req); /* the map is known: one part per node */
        return;
    }
    if (req->scan_state == 1) {
        int status;
        const char *why;
        if (!sg_scan_locate(req, &status, &why)) {
            if (status == SG_OK) finish_with_error(req, why);
            else sg_req_finish(req, NULL, status, why);
            return;
        }
    }
    if ((c->retrying || c->nretried) && req->slot >= 0 && req->asking == NULL &&
        req->target == NULL && older_retried(req)) {
        hold(req); /* release_cb sends it when the older ones have ended */
        return;
    }
    if (req->asking) node = req->asking;
    else if (req->target) node = req->target;
    else if (c->mode != SG_MODE_CLUSTER) node = c->single;
    else if (req->slot >= 0) node = sg_route_slot(c, req->slot, req->readonly, req->read_policy);
    else node = sg_any_master(c);
    if (node == NULL) {
        sg_cluster_refresh(c, 1);
        if (schedule_retry(req)) return;
        if (req->slot >= 0)
            snprintf(msg, sizeof msg,
                     "slot %d is not served by any node (the map covers %d of 16384 slots)",
                     req->slot, c->covered);
        else snprintf(msg, sizeof msg, "no master is known to send the command to");
        sg_req_finish(req, NULL, SG_ECLUSTERDOWN, msg);
        return;
    }
    req->send_flags = (uint8_t)((req->asking ? SG_SEND_ASKING : 0) |
                                (SG_REQ_RAW_OK(req) ? SG_SEND_RAW : 0));
    sg_node_submit(node, req);
}

void sg_req_fail_list(sg_req *list, int code, const char *msg) {
    while (list) {
        sg_req *next = list->next;
        list->next = NULL;
        sg_req_finish(list, NULL, code, msg);
        list = next;
    }
}

/* The map is known: the commands that waited for it go. */
static void map_ready(sg_client *c) {
    sg_req *list = c->pending;
    c->pending = c->pending_tail = NULL;
    c->discovery_failed = 0;
    while (list) {
        sg_req *next = list->next;
        list->next = NULL;
        sg_req_dispatch(list);
        list = next;
    }
}

static void map_failed(sg_client *c, int code, const char *msg) {
    sg_req *list = c->pending;
    c->pending = c->pending_tail = NULL;
    c->discovery_failed = 1;
    snprintf(c->discovery_err, sizeof c->discovery_err, "%s", msg);
    sg_seterr(&c->err, code, "%s", msg);
    sg_req_fail_list(list, code, msg);
}

/* Reverses the client's retry list in place. */
static void reverse_retrying(sg_client *c) {
    sg_req *r = c->retrying, *prev = NULL;
    while (r) {
        sg_req *next = r->next;
        r->next = prev;
        prev = r;
        r = next;
    }
    c->retrying = prev;
}

/* A new map is in: commands waiting out a retry backoff (their node failed,
 * or said CLUSTERDOWN) go now, to where the map sends them, in the order
 * they went into the backoff (the loop runs active events in the order
 * activated). The list has the newest first: walked as it is, a pipelined
 * GET k went before its SET k, and read nil. */
static void map_changed(sg_client *c) {
    sg_req *r;
    if (c->map_hook) c->map_hook(c->map_hook_ud, c); /* before anything is sent again */
    reverse_retrying(c);
    for (r = c->retrying; r; r = r->next)
        if (r->timer && evtimer_pending(r->timer, NULL)) event_active(r->timer, EV_TIMEOUT, 1);
    reverse_retrying(c);
}

static void req_reply(void *owner, void *tag, sg_reply *r);

/* The pool's connections: requests' replies here, the rest to the pool. */
static const sg_conn_ops pool_ops = {
    req_reply, req_raw, req_lost, NULL, sg_pool_idle, pool_closed, sg_pool_connect_result,
};

/* The cluster's query (its events->query), to node whatever the map says. */
static int query(sg_client *c, sg_node *node, const char *cmd, size_t len, sg_reply_fn fn,
                 void *ud) {
    sg_req *req = req_new(c, 0, NULL, NULL, cmd, len);
    if (req == NULL) return SG_ENOMEM;
    req->target = node;
    req->no_retry = 1;
    req->fn = fn;
    req->ud = ud;
    sg_node_submit(node, req);
    return SG_OK;
}

static const sg_cluster_events events = {map_ready, map_failed, map_changed, serve_waiters,
                                          query};

void sg_router_attach(sg_client *c) {
    c->pool_ops = &pool_ops;
    c->events = &events;
}

/* "MOVED 3999 127.0.0.1:6381" → slot and node. */
sg_node *sg_redirect_target(sg_client *c, const sg_reply *r, int *slot) {
    const char *p = strchr(r->str, ' '), *q;
    if (p == NULL) return NULL;
    *slot = atoi(p + 1);
    if ((q = strchr(p + 1, ' ')) == NULL) return NULL;
    return sg_node_by_addr(c, q + 1);
}

static int too_many_redirects(sg_req *req, const sg_reply *r, sg_node *from) {
    char msg[SG_ERRMSG_MAX];
    if (++req->redirects <= req->client->max_redirects) return 0;
    snprintf(msg, sizeof msg,
             "too many redirections (%d) for slot %d; the last, from node %.100s: %.100s",
             req->client->max_redirects, req->slot, from->addr, r->str);
    sg_req_finish(req, NULL, SG_EREDIRECT, msg);
    return 1;
}

/* The pool connections' ops->reply (owner: the node). */
static void req_reply(void *owner, void *tag, sg_reply *r) {
    sg_req *req = tag;
    sg_node *node = owner;
    sg_client *c = req->client;
    sg_durable *wait = req->wait;
    int slot;
    sg_node *to;
    if (wait) durable_leave(req); /* a redirect or retry joins its next connection's */
    if (r->type == SG_REPLY_ERROR && c->mode == SG_MODE_CLUSTER && req->target == NULL) {
        if (sg_reply_error_is(r, "MOVED")) {
            node->st.moved++;
            if ((to = sg_redirect_target(c, r, &slot)) != NULL) {
                if (too_many_redirects(req, r, node)) {
                    sg_reply_free(r);
                    return;
                }
                sg_cluster_moved(c, slot, to);
                sg_reply_free(r);
                sg_req_dispatch(req);
                return;
            }
        } else if (sg_reply_error_is(r, "ASK")) {
            node->st.ask++;
            if ((to = sg_redirect_target(c, r, &slot)) != NULL) {
                if (too_many_redirects(req, r, node)) {
                    sg_reply_free(r);
                    return;
                }
                req->asking = to;
                sg_reply_free(r);
                sg_req_dispatch(req);
                return;
            }
        }
    }
    /* (the parts of a split or fan-out have no fn of their own: they are
     * retried like whole requests; internal requests never, by their retries) */
    if (r->type == SG_REPLY_ERROR && (req->fn != NULL || req->parent != NULL) &&
        !req->no_retry && req->retries < c->max_retries &&
        (sg_reply_error_is(r, "TRYAGAIN") || sg_reply_error_is(r, "CLUSTERDOWN") ||
         sg_reply_error_is(r, "LOADING") || sg_reply_error_is(r, "MASTERDOWN") ||
         sg_reply_error_is(r, "NOREPLICAS") ||
         (sg_reply_error_is(r, "READONLY") && req->target == NULL))) {
        /* transient: the slot is moving, a failover is on, the node loads,
         * or our map still names a master that became a replica */
        if (!sg_reply_error_is(r, "TRYAGAIN") && !sg_reply_error_is(r, "LOADING"))
            sg_cluster_refresh(c, 1);
        if (schedule_retry(req)) {
            sg_reply_free(r);
            return;
        }
    }
    if (req->scan_state == 2 && (r = sg_scan_reply(req, r)) == NULL) {
        sg_req_finish(req, NULL, SG_ENOMEM, "out of memory reading a SCAN reply");
        return;
    }
    if (req->durable && r->type != SG_REPLY_ERROR) {
        if (wait) { /* applied: held until the WAIT after it answers */
            req->wait = wait;
            wait->reqs[req->wait_idx] = req;
            req->durable_reply = r;
            return;
        }
        sg_reply_free(r);
        node->st.unconfirmed++;
        r = not_confirmed(req, node, "out of memory arranging its WAIT");
        if (r == NULL) {
            sg_req_finish(req, NULL, SG_ENOMEM, "out of memory");
            return;
        }
    }
    sg_req_finish(req, r, SG_OK, NULL);
}

/* The pool connections' ops->lost (owner: the node): the connection carrying
 * the request failed; sent says whether its bytes had left this host. The
 * pool calls it too, for a request it could not send. */
static void req_lost(void *owner, void *tag, int sent, int code, const char *msg) {
    sg_req *req = tag;
    sg_node *node = owner;
    sg_client *c = req->client;
    char buf[SG_ERRMSG_MAX];
    if (req->wait) durable_leave(req);
    node->st.errors++;
    if (sent && req->slot >= 0 && req->info != NULL) {
        if (!req->readonly) { /* may have been applied: reads sent before it stay unread */
            c->unknown[c->unknown_total % SG_UNKNOWN_KEEP].slot = req->slot;
            c->unknown[c->unknown_total % SG_UNKNOWN_KEEP].seq = req->seq;
            c->unknown_total++;
        } else if (!req->resent) {
            req->resent = 1;
            req->unknown_mark = c->unknown_total;
        }
    }
    if (c->net.freeing) {
        sg_req_finish(req, NULL, SG_ECLOSED, "client closed");
        return;
    }
    if (req->unblock) { /* CLIENT UNBLOCK closed its connection: ended, as asked */
        unblocked_before_sent(req);
        return;
    }
    if (code != SG_EAUTH && code != SG_ENOMEM) {
        /* the node may be gone or failing over: look again */
        sg_cluster_refresh(c, 1);
        /* a stalled node is not asked again (its timeout is the answer), nor
         * one that sends garbage */
        if (code != SG_ETIMEOUT && code != SG_EPROTO && (!sent || req->readonly) &&
            schedule_retry(req))
            return;
    }
    if (sent && !req->readonly && req->info != NULL) {
        snprintf(buf, sizeof buf,
                 "%s; the command had been sent, so whether it was applied is unknown", msg);
        sg_req_finish(req, NULL, SG_EUNKNOWN, buf);
        return;
    }
    if (req->retries > 0) {
        snprintf(buf, sizeof buf, "%s (gave up after %d tries over %llu ms)", msg, req->retries + 1,
                 (unsigned long long)(sg_now_ms() - req->started));
        sg_req_finish(req, NULL, code, buf);
        return;
    }
    sg_req_finish(req, NULL, code, msg);
}

/* ---- from argv to dispatched requests ------------------------------------------------- */

/* Commands that change a connection's state: connections are shared, so the
 * client API refuses them. */
static const char *const stateful[] = {
    "asking",  "auth",     "discard",  "exec",       "hello",      "monitor",
    "multi",   "psubscribe", "psync",  "punsubscribe", "quit",     "readonly",
    "readwrite", "replconf", "reset",  "select",     "ssubscribe", "subscribe",
    "sunsubscribe", "sync", "unsubscribe", "unwatch", "watch",     "client|reply",
    "client|tracking", "client|setname",
    /* WAIT counts the writes of the connection it runs on: with shared
     * connections it would answer for somebody else's writes */
    "wait", NULL};

static unsigned char *stateful_of; /* sg_command_marks(stateful) */
static pthread_once_t stateful_once = PTHREAD_ONCE_INIT;

static void find_stateful(void) {
    if ((stateful_of = sg_command_marks(stateful, 0)) == NULL) abort(); /* once, under 1 kB */
}

/* Asked for every request: one load. */
static int is_stateful(const sg_command *info) {
    pthread_once(&stateful_once, find_stateful);
    return stateful_of[sg_command_index(info)];
}

/* Whether a command goes on a connection of its own, never behind others nor
 * others behind it: a blocking one (below); a script (EVAL, FCALL ...), which
 * may run long, and then every other command on its connection would wait
 * for it where a node answers other clients BUSY; and what Redis lets through
 * while a script runs (its allow-busy flag: SCRIPT KILL, FUNCTION KILL), which
 * must not wait behind the script it is meant to stop. */
static int own_conn(const sg_command *info) {
    if (info->flags & SG_CMD_ALLOW_BUSY) return 1;
    switch (sg_command_index(info)) {
    case SG_CI_EVAL:
    case SG_CI_EVALSHA:
    case SG_CI_EVAL_RO:
    case SG_CI_EVALSHA_RO:
    case SG_CI_FCALL:
    case SG_CI_FCALL_RO: return 1;
    default: return 0;
    }
}

/* How long a blocking command may block: ms, -1 forever, -2 not blocking. */
static long long block_ms(const sg_command *info, int argc, const char *const *argv,
                          const size_t *argvlen) {
    const char *arg = NULL;
    double secs = 0;
    int i, millis = 0;
    if (!(info->flags & SG_CMD_BLOCKING)) return -2;
    switch (sg_command_index(info)) {
    case SG_CI_BLPOP:
    case SG_CI_BRPOP:
    case SG_CI_BZPOPMIN:
    case SG_CI_BZPOPMAX:
    case SG_CI_BLMOVE:
    case SG_CI_BRPOPLPUSH: arg = argv[argc - 1]; break;
    case SG_CI_BLMPOP:
    case SG_CI_BZMPOP: arg = argc > 1 ? argv[1] : NULL; break;
    case SG_CI_XREAD:
    case SG_CI_XREADGROUP:
        for (i = 1; i + 1 < argc; i++)
            if (argvlen[i] == 5 && strncasecmp(argv[i], "BLOCK", 5) == 0) arg = argv[i + 1];
        if (arg == NULL) return -2;
        millis = 1;
        break;
    case SG_CI_WAIT:
        arg = argc > 2 ? argv[2] : NULL;
        millis = 1;
        break;
    default: break;
    }
    if (arg == NULL) return -1;
    secs = atof(arg);
    if (secs <= 0) return -1;
    return millis ? (long long)secs : (long long)ceil(secs * 1000.0);
}

/* Defers a completion to the loop: callbacks never run inside send(). The
 * request waits on the client's retry list, so sg_client_free() finds it
 * (and completes it with SG_ECLOSED) if the loop never runs again. The
 * outcome: req->early (the reply), failed_status and failed_msg. */
static void deferred_cb(evutil_socket_t fd, short what, void *arg) {
    sg_req *req = arg;
    sg_reply *reply = req->early;
    (void)fd;
    (void)what;
    retry_unlink(req);
    req->early = NULL;
    sg_req_finish(req, reply, req->failed_status,
                  req->failed_msg ? req->failed_msg : sg_strerror(req->failed_status));
}

/* sg_req_finish() inside a send: the outcome waits on the retry list for the
 * loop. 0 when even that is impossible (the caller then finishes at once). */
static int finish_deferred(sg_req *req, sg_reply *reply, int status, const char *msg) {
    sg_client *c = req->client;
    struct timeval zero = {0, 0};
    if (req->timer == NULL && (req->timer = evtimer_new(c->net.base, deferred_cb, req)) == NULL)
        return 0;
    evtimer_assign(req->timer, c->net.base, deferred_cb, req);
    sg_free(req->failed_msg);
    /* no memory for the message: deferred_cb says sg_strerror(status) */
    req->failed_msg = status != SG_OK && msg ? sg_strdup(msg) : NULL;
    req->failed_status = status;
    req->early = reply;
    evtimer_add(req->timer, &zero);
    retry_push(req, SG_RETRY_DEFERRED);
    return 1;
}

static int finish_later(sg_req *req, const char *error_reply, int status, const char *msg) {
    sg_client *c = req->client;
    struct timeval zero = {0, 0};
    if (error_reply &&
        (req->early = sg_reply_new_str(SG_REPLY_ERROR, error_reply, strlen(error_reply))) == NULL)
        return SG_ENOMEM;
    if (msg && (req->failed_msg = sg_strdup(msg)) == NULL) return SG_ENOMEM;
    req->failed_status = status;
    if ((req->timer = evtimer_new(c->net.base, deferred_cb, req)) == NULL) return SG_ENOMEM;
    evtimer_add(req->timer, &zero);
    retry_push(req, SG_RETRY_DEFERRED);
    return SG_OK;
}

/* A part of a split or fan-out request. */
static sg_req *new_part(sg_req *parent, int idx, int argc, const char *const *argv,
                        const size_t *argvlen) {
    sg_req *part = req_new(parent->client, argc, argv, argvlen, NULL, 0);
    if (part == NULL) return NULL;
    part->parent = parent;
    part->part = idx;
    part->info = parent->info;
    part->readonly = parent->readonly;
    part->exclusive = parent->exclusive;
    part->block_ms = parent->block_ms;
    part->durable = parent->durable;
    part->durable_ms = parent->durable_ms;
    part->order = parent->order;
    part->started = 0;
    return part;
}

/* Sends the parts split.c made, or frees them when it failed. */
static void dispatch_parts(int rc, sg_req **parts, int n) {
    int i;
    for (i = 0; i < n; i++) {
        if (rc == SG_OK) sg_req_dispatch(parts[i]);
        else sg_req_free(parts[i]);
    }
    sg_free(parts);
}

/* Splits a multi-key request by slot. keyidx/keyslot: the keys. */
static int split_by_slot(sg_req *p, int argc, const char *const *argv, const size_t *argvlen,
                         const int *keyidx, const int *keyslot, int nkeys) {
    sg_req **parts;
    int n, rc = sg_split_by_slot(p, argc, argv, argvlen, keyidx, keyslot, nkeys, new_part,
                                 &parts, &n);
    dispatch_parts(rc, parts, n);
    return rc;
}

/* Sends a copy of the request to every master (or every node). */
static void fan_out_dispatch(sg_req *req) {
    sg_req **parts;
    int n, rc = sg_split_fan_out(req, req->fanout == 2, &parts, &n);
    if (rc == SG_OK && n == 0) {
        sg_req_finish(req, NULL, SG_ECLUSTERDOWN, "no master is known to send the command to");
        return;
    }
    dispatch_parts(rc, parts, n);
    if (rc != SG_OK) {
        sg_free(req->sp);
        req->sp = NULL;
        sg_req_finish(req, NULL, SG_ENOMEM, "out of memory sending a command to every master");
    }
}

/* Copies the options onto the request. */
static int take_opts(sg_req *req, const sg_submit_opts *o) {
    int i;
    if (o == NULL) return SG_OK;
    req->read_policy = o->read_policy;
    req->raw_fn = o->raw_fn;
    req->durable = (uint8_t)o->durable;
    req->durable_ms = o->durable_ms;
    req->order = o->order;
    if (o->nttls == 0) return SG_OK;
    if ((req->ttls = sg_calloc((size_t)o->nttls, sizeof *req->ttls)) == NULL) return SG_ENOMEM;
    for (i = 0; i < o->nttls; i++) {
        if ((req->ttls[i].key = sg_strndup(o->ttl_keys[i], o->ttl_lens[i])) == NULL)
            return SG_ENOMEM;
        req->ttls[i].len = o->ttl_lens[i];
        req->ttls[i].seconds = o->ttl_secs[i];
        req->nttls++;
    }
    return SG_OK;
}

static int submit(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                  sg_reply_fn fn, void *ud, const sg_submit_opts *opts);

/* ---- ending a blocking command early -------------------------------------------------- */

/* A request that CLIENT UNBLOCK reached before it left: ended as the node would
 * end it, a timeout's null (the null array's bytes, in the client's protocol)
 * or the UNBLOCKED error; from the loop, never inside the send that found it. */
static void end_unblocked(evutil_socket_t fd, short what, void *arg) {
    static const char err[] = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
    sg_req *req = arg;
    sg_client *c = req->client;
    sg_reply *r;
    (void)fd;
    (void)what;
    if (req->unblock == 1 && req->raw_fn && !req->parent) {
        const char *null = c->net.proto == 3 ? "_\r\n" : "*-1\r\n";
        assert(!req->finished && "a request finished twice");
        req->finished = 1;
        req->raw_fn(c, null, strlen(null), req->ud);
        sg_req_free(req);
        return;
    }
    r = req->unblock == 1 ? sg_reply_new(SG_REPLY_NIL)
                          : sg_reply_new_str(SG_REPLY_ERROR, err, sizeof err - 1);
    if (r == NULL) sg_req_finish(req, NULL, SG_ENOMEM, "out of memory ending a command");
    else sg_req_finish(req, r, SG_OK, NULL);
}

static void unblocked_before_sent(sg_req *req) {
    struct timeval now = {0, 0};
    if (event_base_once(req->client->net.base, -1, EV_TIMEOUT, end_unblocked, req, &now) != 0)
        sg_req_finish(req, NULL, SG_ENOMEM, "out of memory ending a command");
}

/* The blocking request of ud waiting on a connection of node, or NULL. */
static sg_req *blocked_on(sg_client *c, void *ud, sg_node **node_out, sg_conn **conn_out) {
    int i, k;
    for (i = 0; i < c->nnodes; i++) {
        sg_node *node = c->nodes[i];
        for (k = 0; k < node->nconns; k++) {
            sg_conn *conn = node->conns[k];
            sg_req *req;
            size_t j;
            if (!conn->exclusive || conn->state == SG_CONN_CLOSED) continue;
            for (j = 0; j < conn->pcount; j++)
                if ((req = sg_conn_pending_tag(conn, j)) != NULL && req->ud == ud &&
                    req->block_ms != -2) {
                    *node_out = node;
                    *conn_out = conn;
                    return req;
                }
        }
    }
    return NULL;
}

/* A CLIENT UNBLOCK sent for a caller's command; tried again while the node
 * says 0 (the command has not reached it yet: the two travel on different
 * connections, and the UNBLOCK may overtake it) and the command still waits. */
typedef struct unblocking {
    sg_client *c;
    void *ud;
    int error;
    int tries;
    struct event *timer;
} unblocking;

static int send_unblock(unblocking *u);

static void unblock_again(evutil_socket_t fd, short what, void *arg) {
    unblocking *u = arg;
    (void)fd;
    (void)what;
    if (send_unblock(u) != SG_OK) { /* the command ended meanwhile, or no memory */
        event_free(u->timer);
        sg_free(u);
    }
}

static void unblock_outcome(sg_client *c, sg_reply *reply, int status, const char *errmsg,
                            void *ud) {
    unblocking *u = ud;
    struct timeval ten_ms = {0, 10000};
    (void)c;
    (void)status;
    if (errmsg) sg_log(SG_LOG_WARN, "CLIENT UNBLOCK on the node failed: %s", errmsg);
    if (reply && reply->type == SG_REPLY_INTEGER && reply->integer == 0 && ++u->tries < 200 &&
        !u->c->net.freeing &&
        (u->timer || (u->timer = evtimer_new(u->c->net.base, unblock_again, u)) != NULL)) {
        evtimer_add(u->timer, &ten_ms); /* not blocked there yet: again in 10 ms */
        sg_reply_free(reply);
        return;
    }
    sg_reply_free(reply);
    if (u->timer) event_free(u->timer);
    sg_free(u);
}

/* Sends the node CLIENT UNBLOCK for u's command if it still waits there:
 * SG_OK when sent, else SG_EINVAL (it ended) or SG_ENOMEM. */
static int send_unblock(unblocking *u) {
    sg_node *node;
    sg_conn *conn;
    char id[24];
    const char *argv[4] = {"CLIENT", "UNBLOCK", id, u->error ? "ERROR" : "TIMEOUT"};
    size_t lens[4] = {6, 7, 0, 0};
    if (blocked_on(u->c, u->ud, &node, &conn) == NULL || conn->peer_id <= 0) return SG_EINVAL;
    lens[2] = (size_t)snprintf(id, sizeof id, "%lld", conn->peer_id);
    lens[3] = strlen(argv[3]);
    return sg_router_submit_node(u->c, node, 4, argv, lens, unblock_outcome, u);
}

/* The blocking request of ud not sent yet (waiting for the map, a connection
 * or a retry), or NULL. */
static sg_req *unsent(sg_client *c, void *ud) {
    sg_req *r;
    int i;
    for (r = c->pending; r; r = r->next)
        if (r->ud == ud && r->block_ms != -2) return r;
    for (r = c->retrying; r; r = r->next)
        if (r->ud == ud && r->block_ms != -2) return r;
    for (i = 0; i < c->nnodes; i++)
        for (r = c->nodes[i]->waiters; r; r = r->next)
            if (r->ud == ud && r->block_ms != -2) return r;
    return NULL;
}

int sg_client_unblock(sg_client *c, void *ud, int error) {
    sg_node *node;
    sg_conn *conn;
    sg_req *req;
    if ((req = blocked_on(c, ud, &node, &conn)) != NULL) {
        unblocking *u;
        req->unblock = error ? 2 : 1; /* should it be sent again (its node lost), it ends */
        if (conn->peer_id > 0 && (u = sg_calloc(1, sizeof *u)) != NULL) {
            /* the node ends it, as it would for a client of its own: its reply
             * (a timeout's null, or UNBLOCKED) comes the usual way, and so
             * does a value it popped just before */
            u->c = c;
            u->ud = ud;
            u->error = error;
            if (send_unblock(u) == SG_OK) return SG_OK;
            sg_free(u);
        }
            /* the node's name for it is not known (its handshake is still out,
         * so the command is held, unsent): the connection goes, and the
         * command ends as unblocked (req_lost), never sent elsewhere */
        sg_conn_fail(conn, SG_ECLOSED, "node %s: a blocking command ended early "
                     "(CLIENT UNBLOCK) on a connection the node could not name", node->addr);
        return SG_OK;
    }
    if ((req = unsent(c, ud)) != NULL) {
        req->unblock = error ? 2 : 1; /* it ends when its turn to be sent comes */
        return SG_OK;
    }
    return sg_seterr(&c->err, SG_EINVAL, "no blocking command of that caller is in flight");
}

int sg_router_submit_node(sg_client *c, sg_node *node, int argc, const char *const *argv,
                          const size_t *argvlen, sg_reply_fn fn, void *ud) {
    sg_req *req;
    if ((req = req_new(c, argc, argv, argvlen, NULL, 0)) == NULL)
        return sg_seterr(&c->err, SG_ENOMEM, "out of memory sending a command");
    req->fn = fn;
    req->ud = ud;
    req->target = node;
    req->info = sg_command_resolve(argc, argv, argvlen);
    if (req->info != NULL) {
        if (is_stateful(req->info)) {
            sg_req_free(req);
            return sg_seterr(&c->err, SG_ECOMMAND,
                             "%.*s is tied to its connection (its state, or its writes), and the "
                             "client shares connections between callers: not available through "
                             "this API",
                             (int)(argvlen[0] > 64 ? 64 : argvlen[0]), argv[0]);
        }
        req->readonly = (req->info->flags & SG_CMD_READONLY) != 0;
        req->block_ms = block_ms(req->info, argc, argv, argvlen);
        req->exclusive = req->block_ms != -2 || own_conn(req->info);
    }
    c->submitting++; /* completions meanwhile are deferred to the loop */
    sg_req_dispatch(req);
    c->submitting--;
    return SG_OK;
}


/* Frees what sg_router_submit allocated for large requests. */
static void free_big(void *p, const void *small) {
    if (p != small) sg_free(p);
}

int sg_router_submit(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                     sg_reply_fn fn, void *ud, const sg_submit_opts *opts) {
    int rc;
    c->submitting++; /* completions meanwhile are deferred to the loop */
    rc = submit(c, argc, argv, argvlen, fn, ud, opts);
    c->submitting--;
    return rc;
}

/* A slot number as CLUSTER COUNTKEYSINSLOT takes it: 0 to 16383 in decimal,
 * else -1 (any master then answers with Redis's own error). */
static int slot_arg(const char *s, size_t len) {
    int v = 0;
    size_t i;
    if (len == 0 || len > 5) return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < SG_SLOTS ? v : -1;
}

static int submit(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                  sg_reply_fn fn, void *ud, const sg_submit_opts *opts) {
    size_t *lens = NULL, small_lens[SMALL_ARGC];
    int small_idx[SMALL_ARGC], small_slot[SMALL_ARGC];
    int *keyidx = NULL, *keyslot = NULL, nkeys, i, rc = SG_OK, route;
    sg_req *req;
    if (argc < 1 || argv == NULL)
        return sg_seterr(&c->err, SG_EINVAL, "a command needs at least its name");
    if (argvlen == NULL) {
        if (argc <= SMALL_ARGC) lens = small_lens;
        else if ((lens = sg_malloc((size_t)argc * sizeof *lens)) == NULL) goto oom;
        for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        argvlen = lens;
    }
    if ((req = req_new(c, argc, argv, argvlen, opts ? opts->resp : NULL,
                       opts ? opts->resplen : 0)) == NULL)
        goto oom;
    req->fn = fn;
    req->ud = ud;
    if (take_opts(req, opts) != SG_OK) {
        sg_req_free(req);
        goto oom;
    }
    req->info = opts && opts->info ? opts->info : sg_command_resolve(argc, argv, argvlen);
    if (req->info != NULL) {
        long long b;
        if (is_stateful(req->info)) {
            free_big(lens, small_lens);
            sg_req_free(req);
            return sg_seterr(&c->err, SG_ECOMMAND,
                             "%.*s is tied to its connection (its state, or its writes), and the "
                             "client shares connections between callers: not available through "
                             "this API",
                             (int)(argvlen[0] > 64 ? 64 : argvlen[0]), argv[0]);
        }
        req->readonly = (req->info->flags & SG_CMD_READONLY) != 0;
        b = block_ms(req->info, argc, argv, argvlen);
        req->exclusive = b != -2 || own_conn(req->info);
        req->block_ms = b;
    }
    if (c->mode != SG_MODE_CLUSTER || req->info == NULL) {
        free_big(lens, small_lens);
        sg_req_dispatch(req);
        return SG_OK;
    }
    route = sg_command_route(req->info);
    if (argc <= SMALL_ARGC) {
        keyidx = small_idx;
        keyslot = small_slot;
    } else if ((keyidx = sg_malloc((size_t)argc * sizeof *keyidx)) == NULL ||
               (keyslot = sg_malloc((size_t)argc * sizeof *keyslot)) == NULL) {
        sg_req_free(req);
        goto oom;
    }
    nkeys = sg_command_keys_ex(req->info, argc, argv, argvlen, SG_KEYS_INCLUDE_NOT_KEYS, keyidx,
                               NULL, argc);
    if (nkeys > 0) {
        int same = 1;
        for (i = 0; i < nkeys; i++) {
            keyslot[i] = (int)sg_keyslot(argv[keyidx[i]], argvlen[keyidx[i]]);
            if (keyslot[i] != keyslot[0]) same = 0;
        }
        req->split = sg_command_split(req->info);
        if (same || (req->split == SG_SPLIT_PAIRS && argc % 2 == 0)) {
            /* one slot; or MSET with a key and no value, which the node
             * will refuse for its arity */
            req->slot = keyslot[0];
            req->split = SG_SPLIT_NONE;
            sg_req_dispatch(req);
        } else if (req->split == SG_SPLIT_NONE) {
            rc = finish_later(req, "CROSSSLOT Keys in request don't hash to the same slot", SG_OK,
                              NULL);
        } else {
            rc = split_by_slot(req, argc, argv, argvlen, keyidx, keyslot, nkeys);
        }
    } else if (nkeys == 0 && strcmp(req->info->name, "scan") == 0) {
        /* the master is picked when the map is known: at dispatch */
        uint64_t cursor;
        if (!sg_scan_parse_cursor(argv[1], argvlen[1], &cursor)) {
            rc = finish_later(req, "ERR invalid cursor", SG_OK, NULL);
        } else if ((req->scan = sg_calloc(1, sizeof *req->scan)) == NULL) {
            sg_req_free(req);
            goto oom;
        } else {
            req->scan->cursor = cursor;
            req->scan_state = 1;
            sg_req_dispatch(req);
        }
    } else if (nkeys == 0 && (route == SG_ROUTE_ALL_MASTERS || route == SG_ROUTE_ALL_NODES)) {
        /* parts are made when the map is known: at dispatch */
        req->split = -1 - sg_command_merge(req->info);
        req->fanout = route == SG_ROUTE_ALL_NODES ? 2 : 1;
        sg_req_dispatch(req);
    } else if (nkeys == 0 && route == SG_ROUTE_CHANNEL && argc >= 2) {
        /* PUBLISH: its channel names no key, but routes like one */
        req->slot = (int)sg_keyslot(argv[1], argvlen[1]);
        sg_req_dispatch(req);
    } else if (nkeys == 0 && route == SG_ROUTE_SLOT && argc >= 3 &&
               (req->slot = slot_arg(argv[2], argvlen[2])) >= 0) {
        sg_req_dispatch(req); /* MOVED and ASK followed as for a key */
    } else {
        sg_req_dispatch(req); /* keyless, or malformed: any master answers */
    }
    free_big(keyidx, small_idx);
    free_big(keyslot, small_slot);
    free_big(lens, small_lens);
    if (rc != SG_OK) {
        if (req == NULL) return rc; /* refused, message set */
        sg_req_free(req);
        return sg_seterr(&c->err, rc, "out of memory sending a command");
    }
    return SG_OK;
oom:
    free_big(keyidx, small_idx);
    free_big(keyslot, small_slot);
    free_big(lens, small_lens);
    return sg_seterr(&c->err, SG_ENOMEM, "out of memory sending a command");
}
