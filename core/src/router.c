/*
 * router.c — a command's life in the engine: from argv to RESP, keys to slot,
 * slot to node; MOVED (update the map, try again), ASK (ASKING, then once on
 * the target), TRYAGAIN/CLUSTERDOWN/LOADING and lost connections (bounded
 * retries with backoff; a write whose bytes had left is never sent twice);
 * multi-key commands split by slot and fan-out commands sent to every master,
 * their replies merged in order; and the one place a request completes.
 */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"

/* Finished requests a client (one per worker) keeps for reuse: what two
 * workers have in flight for 50 clients pipelining 16 deep; ~150 kB at most. */
#define KEEP_REQS 512
/* The least room for a request's command: a GET or SET of a short key and
 * value, or a split MGET's part, fits; so one kept request serves the next.
 * (Room is memory per request in flight: an MGET of 10 slots at pipeline
 * 16 from 50 clients has 8 000 parts out.) */
#define REQ_ROOM 64

/* Arguments counted on the stack rather than allocated. */
#define SMALL_ARGC 16

#define SG_RETRY_MAX_DELAY_MS 1000

/* ---- requests --------------------------------------------------------------------- */

static void live_retry_drop(sg_req *req, int ended);

void sg_req_free(sg_req *req) {
    int i;
    if (req == NULL) return;
    if (req->live_retry) live_retry_drop(req, 1);
    for (i = 0; i < req->nttls; i++) sg_free(req->ttls[i].key);
    sg_free(req->ttls);
    if (req->timer) event_free(req->timer);
    if (req->sp) { /* its arrays are in the same allocation */
        for (i = 0; i < req->sp->nparts; i++) sg_reply_free(req->sp->parts[i]);
        sg_buf_free(&req->sp->raw);
        sg_free(req->sp->raw_at);
        sg_free(req->sp);
    }
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

/* Writes "<c><n>\r\n" at p; returns the byte after. */
static char *put_header(char *p, char c, size_t n) {
    char digits[24];
    int k = 0;
    *p++ = c;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (k) *p++ = digits[--k];
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static size_t header_len(size_t n) {
    size_t len = 3; /* type byte, \r\n */
    do {
        len++;
        n /= 10;
    } while (n);
    return len;
}

/* The length of an argv in RESP. */
static size_t argv_resp_len(int argc, const size_t *argvlen) {
    size_t total = header_len((size_t)argc);
    int i;
    for (i = 0; i < argc; i++) total += header_len(argvlen[i]) + argvlen[i] + 2;
    return total;
}

/* Writes an argv in RESP at buf (argv_resp_len bytes). */
static void put_argv(char *buf, int argc, const char *const *argv, const size_t *argvlen) {
    char *p = put_header(buf, '*', (size_t)argc);
    int i;
    for (i = 0; i < argc; i++) {
        p = put_header(p, '$', argvlen[i]);
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
static void merge_and_finish(sg_req *p);

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
    req->raw_fn(req->client, resp, len, req->ud);
    sg_req_free(req);
}

/* A split request's reply from its parts' bytes (SG_REQ_RAW_MERGE): MGET's
 * elements in key order under one header, or MSET's +OK. */
static void finish_raw_merge(sg_req *p) {
    sg_buf out = {0};
    const sg_buf *b = &p->sp->raw;
    int total = 0, i;
    if (p->sp->raw_bad) {
        sg_req_finish(p, NULL, SG_EPROTO, "the nodes' replies could not be merged");
        return;
    }
    if (p->split == SG_SPLIT_ARRAY) {
        char head[32];
        for (i = 0; i < p->sp->nparts; i++) total += p->sp->part_nkeys[i];
        sg_buf_append(&out, head, (size_t)snprintf(head, sizeof head, "*%d\r\n", total));
        for (i = 0; i < total && p->sp->raw_at; i++)
            sg_buf_append(&out, p->sp->raw.data + p->sp->raw_at[2 * i], p->sp->raw_at[2 * i + 1]);
        b = &out;
    }
    if (b->oom || p->sp->raw.oom || (p->split == SG_SPLIT_ARRAY && p->sp->raw_at == NULL)) {
        sg_buf_free(&out);
        sg_req_finish(p, NULL, SG_ENOMEM, "out of memory merging the nodes' replies");
        return;
    }
    p->raw_fn(p->client, b->data, b->len, p->ud);
    sg_buf_free(&out);
    sg_req_free(p);
}

/* A part's reply as bytes: kept in the parent until every part is in. An
 * MGET part's is an array of its keys' elements: each is cut out (its end
 * found as the reader finds a reply's) and placed at its key. */
static void add_raw_elements(sg_req *p, const sg_req *part, const char *resp, size_t len) {
    size_t pos = 1;
    long long n = 0;
    int idx = part->part, k;
    if (p->sp->raw_at == NULL) return; /* out of memory at the split: reported at the merge */
    if (len < 4 || resp[0] != '*') goto bad;
    while (pos < len && resp[pos] >= '0' && resp[pos] <= '9' && n <= INT_MAX)
        n = n * 10 + (resp[pos++] - '0');
    if (n != p->sp->part_nkeys[idx] || pos + 2 > len || resp[pos] != '\r') goto bad;
    pos += 2;
    for (k = 0; k < n; k++) {
        long long l = sg_reply_scan(resp + pos, len - pos);
        int key = p->sp->part_keys[part->part_first + k];
        if (l <= 0) goto bad;
        p->sp->raw_at[2 * key] = p->sp->raw.len;
        p->sp->raw_at[2 * key + 1] = (size_t)l;
        sg_buf_append(&p->sp->raw, resp + pos, (size_t)l);
        pos += (size_t)l;
    }
    if (pos == len) return;
bad:
    p->sp->raw_bad = 1;
}

static void finish_parent_part_raw(sg_req *part, const char *resp, size_t len) {
    sg_req *p = part->parent;
    if (p->split == SG_SPLIT_ARRAY) add_raw_elements(p, part, resp, len);
    else if (p->sp->raw_parts == 0) sg_buf_append(&p->sp->raw, resp, len); /* every part said +OK */
    p->sp->raw_parts++;
    sg_req_free(part);
    if (--p->sp->remaining == 0) merge_and_finish(p);
}

/* ---- merging the parts of a split or fan-out ------------------------------------------ */

static sg_reply *merge_ints(sg_reply **parts, int n, int policy) {
    long long acc = 0;
    int i;
    for (i = 0; i < n; i++) {
        long long v = parts[i]->integer;
        if (i == 0) acc = v;
        else if (policy == SG_RESP_AGG_SUM || policy < 0) acc += v;
        else if (policy == SG_RESP_AGG_MIN) acc = v < acc ? v : acc;
        else if (policy == SG_RESP_AGG_MAX) acc = v > acc ? v : acc;
        else if (policy == SG_RESP_AGG_LOGICAL_AND) acc = acc && v;
        else if (policy == SG_RESP_AGG_LOGICAL_OR) acc = acc || v;
    }
    return sg_reply_new_int(acc);
}

/* Moves reply trees out of parts[] into a new array reply. */
static sg_reply *concat_arrays(sg_reply **parts, int n) {
    size_t total = 0, k = 0, j;
    sg_reply *out;
    int i;
    for (i = 0; i < n; i++) total += parts[i]->elements;
    if ((out = sg_reply_new_array(total)) == NULL) return NULL;
    for (i = 0; i < n; i++) {
        for (j = 0; j < parts[i]->elements; j++) {
            out->element[k++] = parts[i]->element[j];
            parts[i]->element[j] = NULL;
        }
    }
    return out;
}

/* Element-wise aggregation of equal-length integer arrays (SCRIPT EXISTS). */
static sg_reply *merge_int_arrays(sg_reply **parts, int n, int policy) {
    size_t len = parts[0]->elements, j;
    sg_reply *out, **col;
    int i;
    for (i = 1; i < n; i++)
        if (parts[i]->elements != len) return NULL;
    if ((out = sg_reply_new_array(len)) == NULL) return NULL;
    if ((col = sg_malloc((size_t)n * sizeof *col)) == NULL) {
        sg_reply_free(out);
        return NULL;
    }
    for (j = 0; j < len; j++) {
        for (i = 0; i < n; i++) {
            col[i] = parts[i]->element[j];
            if (col[i]->type != SG_REPLY_INTEGER) {
                sg_free(col);
                sg_reply_free(out);
                return NULL;
            }
        }
        if ((out->element[j] = merge_ints(col, n, policy)) == NULL) {
            sg_free(col);
            sg_reply_free(out);
            return NULL;
        }
    }
    sg_free(col);
    return out;
}

static sg_reply *take_part(sg_req *p, int i) {
    sg_reply *r = p->sp->parts[i];
    p->sp->parts[i] = NULL;
    return r;
}

/* A part whose reply is not nil, picked at random (RANDOMKEY: a master that
 * has keys), or 0 when every one is nil. */
static int any_not_nil(const sg_req *p) {
    int i, n = 0, pick = 0;
    for (i = 0; i < p->sp->nparts; i++)
        if (p->sp->parts[i]->type != SG_REPLY_NIL && random() % ++n == 0) pick = i;
    return pick;
}

/* All parts are in: builds the parent's reply. */
static void merge_and_finish(sg_req *p) {
    sg_reply *out = NULL;
    int i, all_int = 1, all_array = 1, bad_shape = 0; /* out NULL: bad shape, or no memory */
    if (p->failed_status != SG_OK) {
        sg_req_finish(p, NULL, p->failed_status, p->failed_msg ? p->failed_msg : "a part failed");
        return;
    }
    /* one error reply among the parts is the reply, except where one success is enough */
    for (i = 0; i < p->sp->nparts; i++) {
        sg_reply *r = p->sp->parts[i];
        if (r == NULL) continue; /* it came as bytes */
        if (r->type == SG_REPLY_ERROR && p->split != -1 - SG_RESP_ONE_SUCCEEDED) {
            sg_req_finish(p, take_part(p, i), SG_OK, NULL);
            return;
        }
        if (r->type != SG_REPLY_INTEGER) all_int = 0;
        if (r->type != SG_REPLY_ARRAY) all_array = 0;
        if (p->sp->raw_parts > 0) p->sp->raw_bad = 1; /* only errors come as trees then */
    }
    if (p->sp->raw_parts > 0) {
        finish_raw_merge(p);
        return;
    }
    if (p->split == SG_SPLIT_ARRAY) {
        int total = 0, k;
        for (i = 0; i < p->sp->nparts; i++) total += p->sp->part_nkeys[i];
        if ((out = sg_reply_new_array((size_t)total)) != NULL) {
            int *pos = p->sp->part_keys;
            for (i = 0; i < p->sp->nparts; i++) {
                sg_reply *r = p->sp->parts[i];
                if (r->type != SG_REPLY_ARRAY || (int)r->elements != p->sp->part_nkeys[i]) {
                    sg_reply_free(out);
                    out = NULL;
                    bad_shape = 1;
                    break;
                }
                for (k = 0; k < p->sp->part_nkeys[i]; k++) {
                    out->element[pos[k]] = r->element[k];
                    r->element[k] = NULL;
                }
                pos += p->sp->part_nkeys[i];
            }
        }
    } else if (p->split == SG_SPLIT_PAIRS) {
        out = take_part(p, 0); /* every part said OK */
    } else if (p->split == SG_SPLIT_SUM) {
        if (all_int) out = merge_ints(p->sp->parts, p->sp->nparts, SG_RESP_AGG_SUM);
        else bad_shape = 1;
    } else {
        int policy = -1 - p->split;
        switch (policy) {
        case SG_RESP_ONE_SUCCEEDED:
            for (i = 0; i < p->sp->nparts && out == NULL; i++)
                if (p->sp->parts[i]->type != SG_REPLY_ERROR) out = take_part(p, i);
            if (out == NULL) out = take_part(p, 0);
            break;
        case SG_RESP_ALL_SUCCEEDED: out = take_part(p, 0); break;
        case SG_RESP_AGG_SUM:
        case SG_RESP_AGG_MIN:
        case SG_RESP_AGG_MAX:
        case SG_RESP_AGG_LOGICAL_AND:
        case SG_RESP_AGG_LOGICAL_OR:
            if (all_int) out = merge_ints(p->sp->parts, p->sp->nparts, policy);
            else if (all_array) out = merge_int_arrays(p->sp->parts, p->sp->nparts, policy);
            bad_shape = !all_int; /* merge_int_arrays also checks the shapes */
            break;
        default:
            if (all_array) out = concat_arrays(p->sp->parts, p->sp->nparts);
            else out = take_part(p, any_not_nil(p));
            break;
        }
    }
    if (out == NULL) {
        if (bad_shape) sg_req_finish(p, NULL, SG_EPROTO, "the nodes' replies could not be merged");
        else sg_req_finish(p, NULL, SG_ENOMEM, "out of memory merging the nodes' replies");
        return;
    }
    sg_req_finish(p, out, SG_OK, NULL);
}

/* A fan-out Redis marks "special" (MEMORY STATS, LATENCY HISTOGRAM,
 * FUNCTION STATS ...): no rule merges its replies, so each comes labelled
 * with its node, [address, reply], and the parts are put end to end:
 * address, reply, address, reply ... The node's own shape stays intact. */
static sg_reply *label_part(sg_req *part, sg_reply *reply) {
    sg_reply *pair;
    const char *addr = part->target ? part->target->addr : "?";
    if ((pair = sg_reply_new_array(2)) == NULL) return NULL;
    if ((pair->element[0] = sg_reply_new_str(SG_REPLY_STRING, addr, strlen(addr))) == NULL) {
        sg_reply_free(pair);
        return NULL;
    }
    pair->element[1] = reply;
    return pair;
}

static void finish_parent_part(sg_req *part, sg_reply *reply, int status, const char *msg) {
    sg_req *p = part->parent;
    if (status == SG_OK && reply && reply->type != SG_REPLY_ERROR && p->fanout &&
        p->split == -1 - SG_RESP_SPECIAL) {
        sg_reply *pair = label_part(part, reply);
        if (pair == NULL) {
            sg_reply_free(reply);
            reply = NULL;
            status = SG_ENOMEM;
            msg = "out of memory merging the nodes' replies";
        }
        reply = pair;
    }
    if (status != SG_OK && p->failed_status == SG_OK) {
        p->failed_status = status;
        p->failed_msg = sg_strdup(msg ? msg : sg_strerror(status));
    }
    p->sp->parts[part->part] = reply;
    sg_req_free(part);
    if (--p->sp->remaining == 0) merge_and_finish(p);
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
    for (i = 0; i < c->nretried; i++)
        if (c->retried[i] != req && c->retried[i]->slot == req->slot && c->retried[i]->seq < req->seq)
            return 1;
    return 0;
}

/* req is retried and sent: it holds its slot until it ends (no memory for
 * the list: it holds nothing, as before there was one). A blocking command
 * holds nothing: it has a connection of its own, and may block for good. */
static void live_retry_add(sg_req *req) {
    sg_client *c = req->client;
    if (req->live_retry || req->slot < 0 || req->exclusive) return;
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

static void retry_cb(evutil_socket_t fd, short what, void *arg) {
    sg_req *req = arg;
    (void)fd;
    (void)what;
    retry_unlink(req);
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

/* ---- SCAN over a cluster ------------------------------------------------------------------
 * The cursor a client sees names the master and that master's own cursor:
 * the low SCAN_ORD_BITS bits are the master's place among the current masters
 * sorted by node id (address when the id is unknown), the next SCAN_TAG_BITS
 * a hash of its id, the rest the node's cursor. 0 starts at the first master;
 * when a node's cursor comes back 0 the next one names the next master, and 0
 * after the last master ends the scan. The tag makes a cursor from before a
 * change of masters (failover, a node added or removed) an error instead of
 * a scan of the wrong node. Redis's cursors index a hash table, so they stay
 * below its size: 46 bits are plenty. */
#define SCAN_ORD_BITS 10 /* SG_MAX_NODES */
#define SCAN_TAG_BITS 8
#define SCAN_NODE_SHIFT (SCAN_ORD_BITS + SCAN_TAG_BITS)

/* Redis's cursor syntax: decimal digits, within 64 bits. 1 when valid. */
static int parse_cursor(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    size_t i;
    if (len == 0 || len > 20) return 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 1;
}

static const char *node_key(const sg_node *n) { return n->id[0] ? n->id : n->addr; }

static int by_node_key(const void *a, const void *b) {
    return strcmp(node_key(*(sg_node *const *)a), node_key(*(sg_node *const *)b));
}

static unsigned node_tag(const sg_node *n) {
    const unsigned char *p = (const unsigned char *)node_key(n);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *p; p++) h = (h ^ *p) * 16777619u;
    return (unsigned)(h & ((1u << SCAN_TAG_BITS) - 1));
}

/* Replaces argument 1 of the request's RESP command with s. SG_OK or SG_ENOMEM. */
static int replace_arg1(sg_req *req, const char *s, size_t n) {
    char *p = req->cmd, *end = req->cmd + req->cmdlen, *arg1, *after, *buf, *q;
    size_t len0, len1;
    p = memchr(p, '\n', (size_t)(end - p)) + 1;     /* *N\r\n */
    len0 = (size_t)strtoul(p + 1, NULL, 10);        /* $len\r\n arg0 \r\n */
    p = memchr(p, '\n', (size_t)(end - p)) + 1 + len0 + 2;
    arg1 = p;
    len1 = (size_t)strtoul(p + 1, NULL, 10);
    after = memchr(p, '\n', (size_t)(end - p)) + 1 + len1 + 2;
    if ((buf = sg_malloc((size_t)(arg1 - req->cmd) + header_len(n) + n + 2 +
                         (size_t)(end - after))) == NULL)
        return SG_ENOMEM;
    memcpy(buf, req->cmd, (size_t)(arg1 - req->cmd));
    q = put_header(buf + (arg1 - req->cmd), '$', n);
    memcpy(q, s, n);
    q += n;
    *q++ = '\r';
    *q++ = '\n';
    memcpy(q, after, (size_t)(end - after));
    q += end - after;
    if (req->cmdcap == 0) sg_free(req->cmd); /* else it lives in req's block */
    req->cmdcap = 0;                         /* cmd is now an allocation of its own */
    req->cmd = buf;
    req->cmdlen = (size_t)(q - buf);
    return SG_OK;
}

static void finish_with_error(sg_req *req, const char *err) {
    sg_reply *r = sg_reply_new_str(SG_REPLY_ERROR, err, strlen(err));
    if (r) sg_req_finish(req, r, SG_OK, NULL);
    else sg_req_finish(req, NULL, SG_ENOMEM, "out of memory");
}

/* The map is known: sends the SCAN to the master its cursor names, with that
 * master's cursor. 0 when the request was finished instead. */
static int scan_place(sg_req *req) {
    sg_client *c = req->client;
    sg_node **m = NULL;
    uint64_t cur = req->scan->cursor;
    int n = sg_masters(c, &m), ord = (int)(cur & ((1u << SCAN_ORD_BITS) - 1));
    unsigned tag = (unsigned)(cur >> SCAN_ORD_BITS) & ((1u << SCAN_TAG_BITS) - 1);
    char digits[24];
    if (n < 0) {
        sg_req_finish(req, NULL, SG_ENOMEM, "out of memory listing the masters");
        return 0;
    }
    if (n == 0) {
        sg_free(m);
        sg_req_finish(req, NULL, SG_ECLUSTERDOWN, "no master is known to send the command to");
        return 0;
    }
    qsort(m, (size_t)n, sizeof *m, by_node_key);
    if (cur != 0 && (ord >= n || tag != node_tag(m[ord]))) {
        sg_free(m);
        /* malformed, or a master that is no longer one: as Redis says it */
        finish_with_error(req, "ERR invalid cursor");
        return 0;
    }
    req->target = m[ord];
    req->scan->ord = ord;
    req->scan->last = ord == n - 1;
    req->scan->tag = node_tag(m[ord]);
    req->scan->next_tag = ord + 1 < n ? node_tag(m[ord + 1]) : 0;
    req->scan_state = 2;
    sg_free(m);
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)(cur >> SCAN_NODE_SHIFT));
    if (replace_arg1(req, digits, strlen(digits)) != SG_OK) {
        sg_req_finish(req, NULL, SG_ENOMEM, "out of memory sending a command");
        return 0;
    }
    return 1;
}

/* The node's [cursor, keys] reply, its cursor turned into one that names the
 * node (or the next one). Anything else (an error reply) passes unchanged. */
static sg_reply *scan_reply(sg_req *req, sg_reply *r) {
    uint64_t node_cur, out;
    sg_reply *s;
    char digits[24];
    if (r->type != SG_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != SG_REPLY_STRING)
        return r;
    if (!parse_cursor(r->element[0]->str, r->element[0]->len, &node_cur) ||
        node_cur >> (64 - SCAN_NODE_SHIFT) != 0) {
        static const char err[] = "ERR slotgate: a node's SCAN cursor does not fit in a "
                                  "cluster cursor";
        sg_reply_free(r);
        return sg_reply_new_str(SG_REPLY_ERROR, err, sizeof err - 1);
    }
    if (node_cur != 0)
        out = node_cur << SCAN_NODE_SHIFT | (uint64_t)req->scan->tag << SCAN_ORD_BITS |
              (uint64_t)req->scan->ord;
    else if (!req->scan->last)
        out = (uint64_t)req->scan->next_tag << SCAN_ORD_BITS | (uint64_t)(req->scan->ord + 1);
    else
        out = 0; /* the last master is done */
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)out);
    if ((s = sg_reply_new_str(SG_REPLY_STRING, digits, strlen(digits))) == NULL) {
        sg_reply_free(r);
        return NULL;
    }
    sg_reply_free(r->element[0]);
    r->element[0] = s;
    return r;
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
    if (req->scan_state == 1 && !scan_place(req)) return;
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
    reverse_retrying(c);
    for (r = c->retrying; r; r = r->next)
        if (r->timer && evtimer_pending(r->timer, NULL)) event_active(r->timer, EV_TIMEOUT, 1);
    reverse_retrying(c);
}

static void req_reply(void *owner, void *tag, sg_reply *r);
static void req_lost(void *owner, void *tag, int sent, int code, const char *msg);

/* The pool's connections: requests' replies here, the rest to the pool. */
static const sg_conn_ops pool_ops = {
    req_reply, req_raw, req_lost, NULL, sg_pool_idle, sg_pool_closed, sg_pool_connect_result,
};

static const sg_cluster_events events = {map_ready, map_failed, map_changed, sg_req_finish};

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
    snprintf(msg, sizeof msg, "too many redirections (%d) for slot %d; the last, from node %.100s: %.100s",
             req->client->max_redirects, req->slot, from->addr, r->str);
    sg_req_finish(req, NULL, SG_EREDIRECT, msg);
    return 1;
}

/* The pool connections' ops->reply (owner: the node). */
static void req_reply(void *owner, void *tag, sg_reply *r) {
    sg_req *req = tag;
    sg_node *node = owner;
    sg_client *c = req->client;
    int slot;
    sg_node *to;
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
    if (req->scan_state == 2 && (r = scan_reply(req, r)) == NULL) {
        sg_req_finish(req, NULL, SG_ENOMEM, "out of memory reading a SCAN reply");
        return;
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
    node->st.errors++;
    if (c->net.freeing) {
        sg_req_finish(req, NULL, SG_ECLOSED, "client closed");
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

/* ---- from argv to dispatched requests ----------------------------------------------------------- */

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

/* How long a blocking command may block: ms, -1 forever, -2 not blocking. */
static long long block_ms(const sg_command *info, int argc, const char *const *argv,
                          const size_t *argvlen) {
    const char *n = info->name;
    const char *arg = NULL;
    double secs = 0;
    int i, millis = 0;
    if (!(info->flags & SG_CMD_BLOCKING)) return -2;
    if (!strcmp(n, "blpop") || !strcmp(n, "brpop") || !strcmp(n, "bzpopmin") ||
        !strcmp(n, "bzpopmax") || !strcmp(n, "blmove") || !strcmp(n, "brpoplpush")) {
        arg = argv[argc - 1];
    } else if (!strcmp(n, "blmpop") || !strcmp(n, "bzmpop")) {
        arg = argc > 1 ? argv[1] : NULL;
    } else if (!strcmp(n, "xread") || !strcmp(n, "xreadgroup")) {
        for (i = 1; i + 1 < argc; i++)
            if (argvlen[i] == 5 && strncasecmp(argv[i], "BLOCK", 5) == 0) arg = argv[i + 1];
        if (arg == NULL) return -2;
        millis = 1;
    } else if (!strcmp(n, "wait")) {
        arg = argc > 2 ? argv[2] : NULL;
        millis = 1;
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
    part->started = 0;
    return part;
}

/* The split state of p, its arrays in one allocation: nparts replies, and
 * for a split by key the keys of each part (nkeys in all). */
static int split_new(sg_req *p, int nparts, int nkeys) {
    sg_split *sp;
    size_t size = sizeof *sp + (size_t)nparts * sizeof *sp->parts +
                  (size_t)(nparts + nkeys) * sizeof(int);
    if ((sp = sg_calloc(1, size)) == NULL) return SG_ENOMEM;
    sp->parts = (sg_reply **)(sp + 1);
    sp->part_nkeys = (int *)(sp->parts + nparts);
    sp->part_keys = sp->part_nkeys + nparts;
    sp->nparts = sp->remaining = nparts;
    p->sp = sp;
    return SG_OK;
}

/* Splits a multi-key request by slot. keyidx/keyslot: the keys. */
static int split_by_slot(sg_req *p, int argc, const char *const *argv, const size_t *argvlen,
                         const int *keyidx, const int *keyslot, int nkeys) {
    int pairs = p->split == SG_SPLIT_PAIRS, i, j, nparts = 0, rc = SG_OK;
    /* on the stack for the usual few keys */
    int small_slot[SMALL_ARGC], small_part[SMALL_ARGC];
    const char *small_argv[SMALL_ARGC + 1];
    size_t small_len[SMALL_ARGC + 1];
    int small = argc <= SMALL_ARGC; /* nkeys < argc */
    int *slot_of_part = small ? small_slot : sg_malloc((size_t)nkeys * sizeof(int));
    int *part_of_key = small ? small_part : sg_malloc((size_t)nkeys * sizeof(int));
    const char **pargv = small ? small_argv : sg_malloc((size_t)(argc + 1) * sizeof(char *));
    size_t *plen = small ? small_len : sg_malloc((size_t)(argc + 1) * sizeof(size_t));
    sg_req **parts = NULL;
    if (!slot_of_part || !part_of_key || !pargv || !plen) {
        rc = SG_ENOMEM;
        goto done;
    }
    for (i = 0; i < nkeys; i++) {
        for (j = 0; j < nparts && slot_of_part[j] != keyslot[i]; j++) {
        }
        if (j == nparts) slot_of_part[nparts++] = keyslot[i];
        part_of_key[i] = j;
    }
    parts = sg_calloc((size_t)nparts, sizeof *parts);
    if (split_new(p, nparts, nkeys) != SG_OK || !parts) {
        rc = SG_ENOMEM;
        goto done;
    }
    if (SG_REQ_RAW_MERGE(p) && p->split == SG_SPLIT_ARRAY)
        p->sp->raw_at = sg_calloc((size_t)nkeys * 2, sizeof *p->sp->raw_at); /* NULL: the merge says so */
    {
        int k = 0;
        for (j = 0; j < nparts; j++) {
            int pargc = 0, first = k;
            pargv[pargc] = argv[0];
            plen[pargc++] = argvlen[0];
            for (i = 0; i < nkeys; i++) {
                if (part_of_key[i] != j) continue;
                p->sp->part_keys[k++] = i; /* reply position of this key */
                p->sp->part_nkeys[j]++;
                pargv[pargc] = argv[keyidx[i]];
                plen[pargc++] = argvlen[keyidx[i]];
                if (pairs && keyidx[i] + 1 < argc) {
                    pargv[pargc] = argv[keyidx[i] + 1];
                    plen[pargc++] = argvlen[keyidx[i] + 1];
                }
            }
            if ((parts[j] = new_part(p, j, pargc, pargv, plen)) == NULL) {
                rc = SG_ENOMEM;
                goto done;
            }
            parts[j]->slot = slot_of_part[j];
            parts[j]->part_first = first;
        }
    }
    for (j = 0; j < nparts; j++) sg_req_dispatch(parts[j]);
done:
    if (rc != SG_OK && parts)
        for (j = 0; j < nparts; j++) sg_req_free(parts[j]);
    sg_free(parts);
    if (!small) {
        sg_free(slot_of_part);
        sg_free(part_of_key);
        sg_free(pargv);
        sg_free(plen);
    }
    return rc;
}

/* Sends a copy of the request to every master (or every node). */
static int fan_out(sg_req *p, int all_nodes) {
    sg_client *c = p->client;
    sg_node **targets = NULL;
    sg_req **parts;
    int n = 0, i, rc = SG_OK;
    if (all_nodes && c->mode == SG_MODE_CLUSTER) {
        if ((targets = sg_malloc((size_t)(c->nnodes ? c->nnodes : 1) * sizeof *targets)) == NULL)
            return SG_ENOMEM;
        for (i = 0; i < c->nnodes; i++)
            if (c->nodes[i]->in_map && !c->nodes[i]->sentinel) targets[n++] = c->nodes[i];
    } else if ((n = sg_masters(c, &targets)) < 0) {
        return SG_ENOMEM;
    }
    if (n == 0) {
        sg_free(targets);
        sg_req_finish(p, NULL, SG_ECLUSTERDOWN, "no master is known to send the command to");
        return SG_OK;
    }
    parts = sg_calloc((size_t)n, sizeof *parts);
    if (split_new(p, n, 0) != SG_OK || !parts) rc = SG_ENOMEM;
    for (i = 0; i < n && rc == SG_OK; i++) {
        if ((parts[i] = sg_calloc(1, sizeof *parts[i])) == NULL ||
            (parts[i]->cmd = sg_malloc(p->cmdlen)) == NULL) {
            rc = SG_ENOMEM;
            break;
        }
        memcpy(parts[i]->cmd, p->cmd, p->cmdlen);
        parts[i]->cmdlen = p->cmdlen;
        parts[i]->client = c;
        parts[i]->slot = -1;
        parts[i]->parent = p;
        parts[i]->part = i;
        parts[i]->info = p->info;
        parts[i]->readonly = p->readonly;
        parts[i]->target = targets[i];
    }
    if (rc == SG_OK)
        for (i = 0; i < n; i++) sg_req_dispatch(parts[i]);
    else if (parts)
        for (i = 0; i < n; i++) sg_req_free(parts[i]);
    sg_free(parts);
    sg_free(targets);
    return rc;
}

static void fan_out_dispatch(sg_req *req) {
    if (fan_out(req, req->fanout == 2) != SG_OK) {
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
    if (o->nttls == 0) return SG_OK;
    if ((req->ttls = sg_calloc((size_t)o->nttls, sizeof *req->ttls)) == NULL) return SG_ENOMEM;
    for (i = 0; i < o->nttls; i++) {
        if ((req->ttls[i].key = sg_strndup(o->ttl_keys[i], o->ttl_lens[i])) == NULL) return SG_ENOMEM;
        req->ttls[i].len = o->ttl_lens[i];
        req->ttls[i].seconds = o->ttl_secs[i];
        req->nttls++;
    }
    return SG_OK;
}

static int submit(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                  sg_reply_fn fn, void *ud, const sg_submit_opts *opts);

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
        req->exclusive = req->block_ms != -2;
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
    if ((req = req_new(c, argc, argv, argvlen, opts ? opts->resp : NULL, opts ? opts->resplen : 0)) ==
        NULL)
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
        req->exclusive = b != -2;
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
        if (!parse_cursor(argv[1], argvlen[1], &cursor)) {
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
