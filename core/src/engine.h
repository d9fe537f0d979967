/*
 * engine.h — the cluster engine's internal types, shared by conn.c (one
 * server connection), cluster.c (nodes, pools and the slot map), router.c
 * (a command's life: route, redirect, retry, split and merge), reply.c and
 * client.c (the public API). Everything runs on one event_base per client.
 */
#ifndef SG_ENGINE_H
#define SG_ENGINE_H

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "commands.h"
#include "config.h"
#include "sg_internal.h"

typedef struct sg_node sg_node;
typedef struct sg_ttl_req {
    char *key;
    size_t len;
    long long seconds;
} sg_ttl_req;
typedef struct sg_conn sg_conn;
typedef struct sg_req sg_req;

/* The scan of a reply across an evbuffer's chunks, kept between reads. */
typedef struct sg_scan {
    int active;
    size_t off;    /* bytes of the input passed */
    long long due; /* elements still due */
} sg_scan;
/* More elements than any reply holds: a count past it is not RESP we take. */
#define SG_SCAN_MAX_ELEMENTS (1LL << 40)

/* ---- replies (reply.c) ---------------------------------------------------- */

sg_reply *sg_reply_new(int type);
sg_reply *sg_reply_new_str(int type, const char *s, size_t len);
sg_reply *sg_reply_new_int(long long v);
sg_reply *sg_reply_new_array(size_t n);
/* The length of the whole RESP2 reply at s[0..n): 0 when it does not end
 * within n bytes, -1 when s is not RESP. */
long long sg_reply_scan(const char *s, size_t n);
/* As sg_reply_scan, for the reply at the head of in however it is cut in
 * chunks; st (zeroed at first) keeps the place between calls, so each byte
 * is scanned once. */
long long sg_reply_scan_buffer(sg_scan *st, struct evbuffer *in);
/* The tree of one whole RESP2 reply s[0..len) (as conn.c's scan found it).
 * NULL with *status SG_ENOMEM, SG_EPROTO (not RESP), or SG_EINVAL (arrays
 * nested deeper than 1000 levels). */
sg_reply *sg_reply_parse(const char *s, size_t len, int *status);
/* Whether an error reply starts with word ("MOVED", "ASK", ...). */
int sg_reply_error_is(const sg_reply *r, const char *word);

/* ---- requests (router.c) --------------------------------------------------- */

/* What a pending entry on a connection is. */
enum {
    SG_PEND_USER = 0, /* a request's command: its reply goes to the request */
    SG_PEND_ASKING,   /* the ASKING before an asked request: reply dropped */
    SG_PEND_HANDSHAKE, /* AUTH, SELECT, READONLY: an error fails the conn */
    SG_PEND_DROP       /* an internal command whose reply is dropped */
};

/* A split or fanned-out request's state (its parts point at the request). */
typedef struct sg_split {
    int nparts, remaining;
    int *part_keys;     /* SPLIT_ARRAY: the reply slots each part fills */
    int *part_nkeys;
    sg_reply **parts;   /* each part's reply (NULL: it came as bytes, below) */
    /* SPLIT_ARRAY and SPLIT_PAIRS for a raw_fn (SG_REQ_RAW_MERGE): the parts'
     * replies as bytes, merged without trees (MGET's elements, MSET's +OK) */
    sg_buf raw;         /* the elements as they came, in no order */
    size_t *raw_at;     /* SPLIT_ARRAY: per key, its element's offset and length */
    int raw_parts;      /* parts that came as bytes */
    int raw_bad;        /* one of them had not the expected shape */
} sg_split;

/* A SCAN's place in the cluster: the client's cursor names a master (router.c). */
typedef struct sg_scan_place {
    uint64_t cursor;        /* the client's cursor */
    int ord, last;          /* the master's place in the sorted masters; whether last */
    unsigned tag, next_tag; /* its id's tag; the next master's */
} sg_scan_place;

/* One command in flight. Split MGETs make thousands of these at once, so the
 * fields are ordered by size and the rare ones (a SCAN's place) live apart. */
struct sg_req {
    sg_client *client;
    sg_req *next;       /* in a wait list (client's, node's or retry's) */
    char *cmd;          /* the command in RESP */
    const sg_command *info; /* NULL for internal requests sent raw */
    sg_node *target;    /* forced node (refresh, fan-out part), else NULL */
    sg_node *asking;    /* ASK target for the next try, else NULL */
    sg_node *last_node; /* where it was last sent (for messages) */
    struct event *timer; /* retry backoff / pool wait deadline */
    /* completion */
    sg_reply_fn fn;
    sg_raw_reply_fn raw_fn; /* a plain reply as bytes (sg_gateway_forward) */
    void *ud;
    /* split parts: parent and the part's index; the parent's state */
    sg_req *parent;
    sg_split *sp;       /* a split or fanned-out request's parts (NULL: none) */
    sg_ttl_req *ttls;   /* default TTLs to set after a successful write */
    char *failed_msg;
    sg_reply *early;    /* an outcome known at submit (CROSSSLOT), delivered from the loop */
    sg_scan_place *scan; /* a SCAN over a cluster, once placed (scan_state) */
    size_t cmdlen;
    size_t cmdcap;      /* room for the command made with the request (req_new);
                           0: cmd is an allocation of its own */
    long long block_ms; /* blocking commands: how long they may block (-1: forever) */
    uint64_t wait_deadline; /* ms: when waiting for a connection ends */
    uint64_t started;   /* ms, when first dispatched */
    uint64_t seq;       /* the client's count of requests when first dispatched:
                         * a slot's requests go out in this order */
    int slot;           /* -1: no key */
    int redirects;      /* MOVED/ASK followed */
    int retries;        /* TRYAGAIN/CLUSTERDOWN/LOADING/connection retries */
    int part;
    int part_first;     /* SPLIT_ARRAY: where its keys start in the parent's part_keys */
    int nttls;
    int failed_status;  /* first failure among parts */
    int8_t split;       /* SG_SPLIT_* or, for fan-outs, -1 - merge policy */
    int8_t read_policy; /* SG_READ_*, or -1: the client's */
    uint8_t readonly;   /* may go to a replica, may be retried after loss */
    uint8_t exclusive;  /* needs a connection of its own (blocking cmds) */
    uint8_t waiting;    /* in a node's wait list */
    uint8_t in_retry;   /* in the client's retry list: an SG_RETRY_* */
    uint8_t live_retry; /* a retried request in flight: in client->retried */
    uint8_t fanout;     /* 1: every master, 2: every node (parts made at dispatch) */
    uint8_t scan_state; /* SCAN over a cluster: 0 not one; 1 cursor in scan, not yet
                           placed; 2 placed */
};

/* Options of a submitted command (the gateway's policies decide them). */
typedef struct sg_submit_opts {
    int read_policy;     /* SG_READ_*, or -1: the client's */
    const char *const *ttl_keys; /* keys to EXPIRE ... NX after a successful write */
    const size_t *ttl_lens;
    const long long *ttl_secs;
    int nttls;
    sg_raw_reply_fn raw_fn;     /* plain replies as bytes: see sg_gateway_forward */
    const char *resp;           /* the command as RESP, if the caller has it (NULL: */
    size_t resplen;             /* made from argv) */
    const sg_command *info;     /* argv's command, if the caller resolved it (NULL:
                                   looked up here) */
} sg_submit_opts;

int sg_router_submit(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                     sg_reply_fn fn, void *ud, const sg_submit_opts *opts);
/* The command to that node, whatever the map says; no redirection followed.
 * argvlen must not be NULL. */
int sg_router_submit_node(sg_client *c, sg_node *node, int argc, const char *const *argv,
                          const size_t *argvlen, sg_reply_fn fn, void *ud);

/* Whether a request's reply may go to its raw_fn as bytes: a whole request
 * with no follow-up, or a part of one whose parts merge as bytes. */
#define SG_REQ_RAW_OK(req)                                                                   \
    ((req)->parent ? SG_REQ_RAW_MERGE((req)->parent)                                         \
                   : (req)->raw_fn != NULL && (req)->nttls == 0 && (req)->scan_state == 0)
/* Whether the parts of a split request may come as bytes: its reply is
 * theirs put together (MGET's elements in key order, MSET's one +OK). */
#define SG_REQ_RAW_MERGE(p)                                                                  \
    ((p)->raw_fn != NULL && (p)->nttls == 0 &&                                               \
     ((p)->split == SG_SPLIT_ARRAY || (p)->split == SG_SPLIT_PAIRS))
/* Completes such a request with the reply's bytes. */
void sg_req_finish_raw(sg_req *req, const char *resp, size_t len);
/* Completes a request: delivers reply (ownership passes) or the failure. */
void sg_req_finish(sg_req *req, sg_reply *reply, int status, const char *msg);
/* Sends a request where it belongs now (map, read policy, ASK, target). */
void sg_req_dispatch(sg_req *req);
/* A reply for a request came in on node. */
void sg_req_on_reply(sg_req *req, sg_node *node, sg_reply *reply);
/* The connection carrying the request failed; sent says whether the
 * request's bytes had left this host. */
void sg_req_on_conn_failure(sg_req *req, sg_node *node, int sent, int code,
                            const char *msg);
void sg_req_free(sg_req *req);
/* The node and slot of a -MOVED or -ASK error reply ("MOVED 3999
 * 127.0.0.1:6381"): the node (added to the client's when new), *slot as
 * given (may be out of range); NULL when r names no node. Internal; the
 * router's, exposed for tests and the fuzzers. */
sg_node *sg_redirect_target(sg_client *c, const sg_reply *r, int *slot);

/* ---- connections (conn.c) -------------------------------------------------- */

typedef struct sg_pending {
    sg_req *req; /* SG_PEND_USER */
    int kind;
    size_t end;  /* the byte count written to the connection once this
                    entry's command is out */
    uint64_t sent; /* ms, when it was queued */
} sg_pending;

enum { SG_CONN_CONNECTING = 0, SG_CONN_READY, SG_CONN_CLOSED };

struct sg_conn {
    sg_node *node;
    struct bufferevent *bev;
    sg_scan scan;   /* where a reply that runs past the first chunk ends */
    int state;
    int exclusive;   /* held by one request (blocking commands) */
    sg_pending *pend; /* ring buffer of pending replies */
    size_t pcap, phead, pcount;
    size_t queued;   /* bytes ever queued for writing (held ones too) */
    struct evbuffer *held; /* commands queued while the handshake runs */
    int handshaking; /* handshake replies still due */
    uint64_t last_used; /* ms, for idle expiry */
    long long read_timeout_ms; /* current read timeout, -1: none */
    int corked;                /* writes held in cork for sg_conn_flush */
    struct evbuffer *cork;     /* commands of a batch, written at its end */
    int timer_short;           /* the read timer was armed for less than the timeout */
    /* a subscriber (Sentinel's +switch-master): replies nobody asked for
     * go here; owns them */
    void (*on_push)(sg_conn *conn, sg_reply *r);
    /* a link's connection (link.c): told of the failure before the
     * connection goes; owner is the link */
    void (*on_fail)(sg_conn *conn, int code, const char *msg);
    void *owner;
    int in_read;     /* on_read is running: a close only marks the conn */
    int doomed;      /* closed meanwhile: on_read frees it when it returns */
};

sg_conn *sg_conn_open(sg_node *node);
/* Queues a request's command (after ASKING when asked). */
int sg_conn_send(sg_conn *conn, sg_req *req, int asking);
/* Closes the connection; every pending request gets the failure. */
void sg_conn_fail(sg_conn *conn, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes what a corked connection holds (pipelines: one write per node). */
void sg_conn_flush(sg_conn *conn);
/* Writes what every corked connection of the client holds. */
void sg_client_flush(sg_client *c);
/* The upstream's credentials for connections opened from now on. */
int sg_client_take_credentials(sg_client *c, const sg_storage *st);
/* Closes an idle connection quietly. */
void sg_conn_close(sg_conn *conn);
/* Queues an internal command (NUL-terminated words) whose reply is dropped. */
int sg_conn_send_words(sg_conn *conn, const char *const *words, int n);

/* ---- nodes and pools (cluster.c) ------------------------------------------- */

enum { SG_ROLE_MASTER = 0, SG_ROLE_REPLICA };

struct sg_node {
    sg_client *client;
    char *host;
    int port;
    char addr[300];  /* "host:port" (IPv6 in brackets) */
    char id[48];     /* cluster node id */
    int role;
    int sentinel;    /* a Sentinel, not a data node */
    sg_node **replicas; /* a master's replicas in the current map */
    int nreplicas, cap_replicas;
    int rr;          /* round-robin cursor over replicas */
    int in_map;      /* listed by the current slot map (or a seed/master) */
    int index;       /* in client->nodes: slot_master[] holds index + 1 */
    sg_conn **conns;
    int nconns, cap_conns;
    sg_req *waiters, *waiters_tail; /* waiting for a connection */
    int nwaiters;
    uint64_t retry_at;   /* ms: no connect attempt before */
    int backoff_ms;      /* next connect backoff */
    int connect_errors;  /* consecutive */
    char last_error[200]; /* why the last connect failed */
    sg_node_stats st;
};

/* Why a request is on its client's retry list (sg_req.in_retry). */
enum {
    SG_RETRY_NONE = 0,
    SG_RETRY_DEFERRED, /* its outcome, for the next loop turn */
    SG_RETRY_BACKOFF,  /* waiting out a backoff before it goes again */
    SG_RETRY_HELD      /* ready, behind an older request of its slot that
                        * is being retried (router.c: older_retried) */
};

#define SG_MAX_NODES 1024 /* fits slot_master's uint16_t */

struct sg_client {
    sg_error err; /* first: sg_errcode()/sg_errmsg() read it */
    struct event_base *base;
    int own_base;
    struct evdns_base *dns;
    SSL_CTX *ssl;
    /* settings copied from the upstream */
    int mode;
    char *name;
    char **seeds;
    int nseeds;
    char *username, *password, *sentinel_password, *master_name;
    long long database;
    int timeout_ms;
    int max_active, max_idle;
    int read_policy;
    int max_redirects;
    int max_retries;
    int tls_skip_verify;
    /* nodes and the map */
    sg_node **nodes;
    int nnodes;
    /* the master of each slot, as its index in nodes + 1 (0: uncovered):
     * 32 KB, where pointers took 128 KB of each worker's cache */
    uint16_t slot_master[SG_SLOTS];
    int covered;              /* slots with a master */
    sg_node *single;          /* single/sentinel: the node */
    int ready;                /* a map (or the node) is known */
    int connecting;           /* the first discovery is running */
    sg_req *pending, *pending_tail; /* commands waiting for the map */
    sg_req *retrying;         /* commands waiting to be tried again */
    uint64_t next_seq;        /* sg_req.seq of the next request dispatched */
    sg_req **retried;         /* retried requests in flight (live_retry) */
    int nretried, cap_retried;
    struct event *release_ev; /* sends what they held back, once they end */
    /* refresh */
    int refreshing;
    uint64_t last_refresh;
    uint64_t refreshes;
    int refresh_seed;         /* rotates the node asked */
    unsigned any_rr;          /* sg_any_master's turn: the client's own, as each
                                 worker's client is its thread's */
    int refresh_attempts;     /* nodes asked in this refresh */
    sg_buf refresh_errors;    /* what each of them said */
    int refresh_code;         /* their failures' common code (SG_ECONNECT when mixed) */
    int suspect;              /* a smaller map was seen once */
    int map_oom;              /* parsing the map ran out of memory */
    struct event *refresh_timer;
    struct event *tick;       /* periodic: refresh, idle expiry */
    sg_conn *sub;             /* Sentinel: subscribed to +switch-master */
    sg_node *switched_to;     /* the master the last +switch-master named */
    uint64_t switched_at;     /* ms, when */
    char discovery_err[SG_ERRMSG_MAX];
    char coverage_why[SG_ERRMSG_MAX]; /* sg_client_coverage's answer */
    int discovery_failed;
    /* blocking calls in flight (blocking clients) */
    int inflight;
    int freeing;
    int corked;               /* a pipeline is queueing: see sg_conn_flush */
    int batching;             /* sg_client_set_batching: writes wait for the turn's end */
    struct event *flush_ev;   /* batching: writes the corked connections */
    int flush_pending;        /* flush_ev is active */
    int submitting;           /* inside a send or connect: completions wait for the loop */
    sg_req *free_reqs;        /* finished requests kept for reuse */
    int nfree_reqs;
};

/* The master serving slot, or NULL. */
static inline sg_node *sg_slot_master(const sg_client *c, int slot) {
    unsigned k = c->slot_master[slot];
    return k ? c->nodes[k - 1] : NULL;
}

static inline void sg_slot_set(sg_client *c, int slot, const sg_node *node) {
    c->slot_master[slot] = node ? (uint16_t)(node->index + 1) : 0;
}

/* A blocking call's outcome: sg_waiter_reply is the callback that fills it. */
typedef struct sg_waiter {
    int done;
    sg_reply *reply;
    int status;
    char msg[SG_ERRMSG_MAX];
} sg_waiter;
void sg_waiter_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud);

/* Milliseconds on a monotonic clock. */
uint64_t sg_now_ms(void);

sg_node *sg_node_get(sg_client *c, const char *host, int port);
sg_node *sg_node_by_addr(sg_client *c, const char *addr);
/* Hands the request a connection of the node (now, or when one frees up). */
void sg_node_submit(sg_node *node, sg_req *req);
/* A connection became idle or closed: serve waiters, trim idle ones. */
void sg_node_conn_released(sg_node *node, sg_conn *conn);
void sg_node_conn_closed(sg_node *node, sg_conn *conn);
void sg_node_fail_waiters(sg_node *node, int code, const char *msg);
/* The node a request goes to under the map and read policy (NULL: none). */
sg_node *sg_route_slot(sg_client *c, int slot, int readonly, int policy);
sg_node *sg_any_master(sg_client *c);
/* Every master now in the map (array owned by caller, NULL when none). */
int sg_masters(sg_client *c, sg_node ***out);
/* Asks for a slot map refresh (rate-limited; one in flight). */
void sg_cluster_refresh(sg_client *c, int urgent);
/* A MOVED: the slot is now served by node. */
void sg_cluster_moved(sg_client *c, int slot, sg_node *node);
/* A CLUSTER SLOTS reply r from node asked: parsed into slots[SG_SLOTS]
 * (nodes it names are added to c), returning the slots covered, or -1 with
 * why it is malformed (c->map_oom set when memory ran out); then applied to
 * c (roles, replicas, the map): SG_OK or SG_ENOMEM. Apply only a reply that
 * parsed. Internal to the refresh, exposed for tests and the fuzzers. */
int sg_cluster_parse_slots(sg_client *c, const sg_reply *r, const sg_node *asked,
                           sg_node **slots, char *why, size_t whylen);
int sg_cluster_apply_slots(sg_client *c, const sg_reply *r, const sg_node *asked,
                           sg_node **slots);
/* Called when the map becomes known, or discovery failed. */
void sg_client_map_ready(sg_client *c);
void sg_client_map_failed(sg_client *c, int code, const char *msg);
int sg_cluster_start(sg_client *c);
/* Starts discovery when there is no map yet (and none running). */
void sg_cluster_discover(sg_client *c);
void sg_cluster_free(sg_client *c);

/* TLS (tls.c): a context from the upstream's settings, or NULL with err set. */
SSL_CTX *sg_tls_context(const sg_storage *st, sg_error *err);

#endif
