/*
 * engine.h — the cluster engine's internal types, by layer, each calling only
 * the ones below it: conn.h (one server connection, replies), cluster.c
 * (nodes, pools and the slot map), router.c (a command's life: route,
 * redirect, retry; split.c and scan.c below it), client.c (the public API),
 * and gateway.c and link.c on top. A lower layer reports to a higher one only
 * through tables of callbacks the higher one installs (sg_conn_ops,
 * sg_cluster_events). Everything runs on one event_base per client.
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
#include "conn.h"
#include "sg_internal.h"
#include "tls.h" /* sg_tls_context */

typedef struct sg_node sg_node;
typedef struct sg_ttl_req {
    char *key;
    size_t len;
    long long seconds;
} sg_ttl_req;
typedef struct sg_req sg_req;


/* ---- requests (router.c) --------------------------------------------------- */

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
    const void *order;  /* whose commands it keeps its order among: a proxy's session
                           (the gateway passes its ctx->addr, unique while the session
                           lives); NULL: its client's callers alike */
    struct sg_durable *wait; /* durable: the WAIT that will confirm it (router.c) */
    sg_reply *durable_reply; /* durable: its reply, held until that WAIT answers */
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
    int durable_ms;     /* durable: how long its WAIT may take (0: the timeout) */
    uint32_t unknown_mark; /* a read lost once sent: client->unknown_total then */
    int wait_idx;          /* its place in wait->reqs */
    int8_t split;       /* SG_SPLIT_* or, for fan-outs, -1 - merge policy */
    int8_t read_policy; /* SG_READ_*, or -1: the client's */
    uint8_t readonly;   /* may go to a replica, may be retried after loss */
    uint8_t exclusive;  /* needs a connection of its own (blocking cmds) */
    uint8_t waiting;    /* in a node's wait list */
    uint8_t in_retry;   /* in the client's retry list: an SG_RETRY_* */
    uint8_t live_retry; /* a retried request in flight: in client->retried */
    uint8_t fanout;     /* 1: every master, 2: every node (parts made at dispatch) */
    uint8_t unblock;    /* sg_client_unblock before it was sent: 1 timeout, 2 error;
                           it ends so instead of going to its node */
    uint8_t no_retry;   /* never retried (a refresh's query: the next node is asked) */
    uint8_t send_flags; /* SG_SEND_* for the connection, set at dispatch */
    uint8_t finished;   /* completed (a request finishes once) */
    uint8_t scan_state; /* SCAN over a cluster: 0 not one; 1 cursor in scan, not yet
                           placed; 2 placed */
    uint8_t resent;     /* a read whose connection was lost after it was sent */
    uint8_t durable;    /* replicas that must confirm it (WAIT) before it is
                           acknowledged; 0: it is acknowledged as the node does */
    uint8_t redirected; /* a split's part followed a MOVED or ASK */
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
    int durable;                /* replicas that must confirm it (sg_call_opts) */
    int durable_ms;
    const void *order;          /* sg_req.order */
} sg_submit_opts;

int sg_router_submit(sg_client *c, int argc, const char *const *argv, const size_t *argvlen,
                     sg_reply_fn fn, void *ud, const sg_submit_opts *opts);
/* The command to that node, whatever the map says; no redirection followed.
 * argvlen must not be NULL. */
int sg_router_submit_node(sg_client *c, sg_node *node, int argc, const char *const *argv,
                          const size_t *argvlen, sg_reply_fn fn, void *ud);

/* Whether a request's reply may go to its raw_fn as bytes: a whole request
 * with no follow-up, or a part of one whose parts merge as bytes. */
#define SG_REQ_RAW_OK(req)                                                                         \
    ((req)->parent ? SG_REQ_RAW_MERGE((req)->parent)                                               \
                   : (req)->raw_fn != NULL && (req)->nttls == 0 && (req)->scan_state == 0 &&       \
                         (req)->durable == 0)
/* Whether the parts of a split request may come as bytes: its reply is
 * theirs put together (MGET's elements in key order, MSET's one +OK). */
#define SG_REQ_RAW_MERGE(p)                                                                        \
    ((p)->raw_fn != NULL && (p)->nttls == 0 && (p)->durable == 0 &&                                \
     ((p)->split == SG_SPLIT_ARRAY || (p)->split == SG_SPLIT_PAIRS))
/* Completes a request: delivers reply (ownership passes) or the failure. */
void sg_req_finish(sg_req *req, sg_reply *reply, int status, const char *msg);
/* Sends a request where it belongs now (map, read policy, ASK, target). */
void sg_req_dispatch(sg_req *req);
void sg_req_free(sg_req *req);
/* Hands the request a connection of the node (now, or when one frees up:
 * it waits in node->waiters, at most the timeout). */
void sg_node_submit(sg_node *node, sg_req *req);
/* Fails every request waiting for a connection of node (client closing). */
void sg_node_fail_waiters(sg_node *node, int code, const char *msg);
/* Fails every request of a list (linked by next). */
void sg_req_fail_list(sg_req *list, int code, const char *msg);
/* Installs the router on a new client: its pool connections' ops (the
 * requests' half: reply, raw, lost) and the cluster's events. */
void sg_router_attach(sg_client *c);
/* sg_client_free's: durable writes still waiting for their WAIT end with
 * "client closed" (after the connections are gone). */
void sg_router_free_durable(sg_client *c);
/* ---- split and fan-out requests (split.c, below router.c) -------------------- */

/* Arguments counted on the stack rather than allocated. */
#define SMALL_ARGC 16

/* Makes a part of a split request (the router's, with the command argv). */
typedef sg_req *(*sg_part_fn)(sg_req *parent, int idx, int argc, const char *const *argv,
                              const size_t *argvlen);
/* The split state of p, its arrays in one allocation: nparts replies, and
 * for a split by key the keys of each part (nkeys in all). */
int sg_split_new(sg_req *p, int nparts, int nkeys);
void sg_split_free(sg_split *sp);
/* Splits a multi-key request by slot (keyidx/keyslot: its keys): the parts,
 * made by make, in *parts_out (caller frees the array; on SG_ENOMEM, the
 * parts made so far, NULL where none, for the caller to free). */
int sg_split_by_slot(sg_req *p, int argc, const char *const *argv, const size_t *argvlen,
                     const int *keyidx, const int *keyslot, int nkeys, sg_part_fn make,
                     sg_req ***parts_out, int *nparts_out);
/* A copy of p for every master (or every node): parts as above; none (and
 * SG_OK) when no master is known. */
int sg_split_fan_out(sg_req *p, int all_nodes, sg_req ***parts_out, int *nparts_out);
/* A part's outcome (reply owned), or its reply as bytes (SG_REQ_RAW_MERGE),
 * kept in its parent: 1 when it was the last part (then sg_split_merge). */
int sg_split_take(sg_req *part, sg_reply *reply, int status, const char *msg);
int sg_split_take_raw(sg_req *part, const char *resp, size_t len);
/* Every part is in: the parent's outcome. A status (failure: *msg says why),
 * with the reply in *tree, or, when *tree is NULL and the status SG_OK, the
 * reply as bytes in *bytes (caller frees). */
int sg_split_merge(sg_req *p, sg_reply **tree, sg_buf *bytes, const char **msg);

/* ---- SCAN over a cluster (scan.c, below router.c) --------------------------- */

/* Redis's cursor syntax: decimal digits, within 64 bits. 1 when valid. */
int sg_scan_parse_cursor(const char *s, size_t len, uint64_t *out);
/* The map is known: points the SCAN at the master its cursor names, with
 * that master's cursor. 0 when it cannot go: it ends with *status and *msg,
 * or, when *status is SG_OK, with *msg as an error reply. */
int sg_scan_locate(sg_req *req, int *status, const char **msg);
/* The node's [cursor, keys] reply, its cursor turned into one that names the
 * node (or the next one); NULL when out of memory. */
sg_reply *sg_scan_reply(sg_req *req, sg_reply *r);

/* RESP: "<c><n>\r\n" written at p (returns the byte after), and its length. */
static inline char *sg_resp_header(char *p, char c, size_t n) {
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

static inline size_t sg_resp_header_len(size_t n) {
    size_t len = 3; /* type byte, \r\n */
    do {
        len++;
        n /= 10;
    } while (n);
    return len;
}

/* The node and slot of a -MOVED or -ASK error reply ("MOVED 3999
 * 127.0.0.1:6381"): the node (added to the client's when new), *slot as
 * given (may be out of range); NULL when r names no node. Internal; the
 * router's, exposed for tests and the fuzzers. */
sg_node *sg_redirect_target(sg_client *c, const sg_reply *r, int *slot);

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
    int seed;        /* one of the client's seeds now (a reload may change them):
                        discovery asks seeds and map nodes, never a node left
                        behind by both (it may belong to another cluster) */
    int index;       /* in client->nodes: slot_master[] holds index + 1 */
    sg_conn **conns;
    int nconns, cap_conns;
    sg_req *waiters, *waiters_tail; /* waiting for a connection (the router's) */
    int nwaiters;
    uint64_t retry_at;   /* ms: no connect attempt before */
    int backoff_ms;      /* next connect backoff */
    int connect_errors;  /* consecutive */
    char last_error[200]; /* why the last connect failed */
    sg_node_stats st;
};

/* Writes of unknown outcome a client remembers (client->unknown). */
#define SG_UNKNOWN_KEEP 64

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
    sg_conn_cfg net;  /* loop, resolver, TLS, timeout, credentials, batching */
    int own_base;
    /* what the layer above installs (sg_router_attach): the cluster calls
     * up only through these */
    const sg_conn_ops *pool_ops;          /* the pool's connections' */
    const struct sg_cluster_events *events;
    /* a new map is in force: the near cache above drops the entries of slots
     * that moved (cache.c installs it; NULL: none) */
    void (*map_hook)(void *ud, sg_client *c);
    void *map_hook_ud;
    /* the reply a raw_fn is given now came after a MOVED or ASK (for one of a
     * split's parts, at least): from another node than the map named when it
     * left, which the near cache then does not keep */
    uint8_t reply_redirected;
    /* settings copied from the upstream */
    int mode;
    char *name;
    char **seeds;
    int nseeds;
    char *master_name;
    long long database;
    int max_active, max_idle;
    unsigned char tls_digest[SG_TLS_DIGEST_LEN]; /* what net.ssl was made from */
    int read_policy;
    int max_redirects;
    int max_retries;
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
    /* the last writes lost after they were sent (applied or not: unknown),
     * as slot and seq: a read sent before one of them is not read again */
    struct {
        int slot;
        uint64_t seq;
    } unknown[SG_UNKNOWN_KEEP];
    uint32_t unknown_total;
    struct sg_durable **wait_open; /* durable writes' WAITs still to send this turn */
    int nwait_open, cap_wait_open;
    struct event *durable_ev; /* sends them, at the end of the loop turn */
    /* refresh */
    int refreshing;
    uint64_t last_refresh;
    uint64_t refreshes;
    int refresh_seed;         /* rotates the node asked */
    int reseeded;             /* the seeds changed: the next refresh asks them */
    int from_seeds;           /* this refresh asks the seeds only (it began reseeded) */
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

sg_node *sg_node_get(sg_client *c, const char *host, int port);
sg_node *sg_node_by_addr(sg_client *c, const char *addr);
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
/* What the cluster tells the layer above, which installs it (c->events):
 * the cluster does not call the router by name. */
typedef struct sg_cluster_events {
    /* the first map (or master) is known: the commands waiting for it go */
    void (*map_ready)(sg_client *c);
    /* discovery failed: the commands waiting for a map fail */
    void (*map_failed)(sg_client *c, int code, const char *msg);
    /* a new map is in force: the commands waiting out a backoff go now */
    void (*map_changed)(sg_client *c);
    /* node's pool has room, or an idle connection, and requests wait for one */
    void (*node_room)(sg_node *node);
    /* the refresh's query: cmd[0..len) to node as it is, never retried (the
     * next node is asked instead); fn gets its outcome. SG_OK or SG_ENOMEM */
    int (*query)(sg_client *c, sg_node *node, const char *cmd, size_t len, sg_reply_fn fn,
                 void *ud);
} sg_cluster_events;

/* The pool's half of its connections' sg_conn_ops (owner: the node), which
 * the router completes with the requests' half. */
void sg_pool_idle(void *node, sg_conn *conn);
void sg_pool_closed(void *node, sg_conn *conn, int code, const char *msg);
void sg_pool_connect_result(void *node, sg_conn *conn, int ok, const char *why);
/* A new connection in node's pool (its ops: c->pool_ops); NULL when out of
 * memory. */
sg_conn *sg_pool_open(sg_node *node);
/* Opens a connection to node for an owner of its own (a link). */
sg_conn *sg_node_open_conn(sg_node *node, const sg_conn_ops *ops, void *owner, int role);
/* Writes what every corked connection of the client holds. */
void sg_client_flush(sg_client *c);
int sg_cluster_start(sg_client *c);
/* Starts discovery when there is no map yet (and none running). */
void sg_cluster_discover(sg_client *c);
/* c->seeds (or c->master_name) changed: marks the seed nodes, moves a
 * single-node client to its new node, drops a subscription to a Sentinel no
 * longer named, and asks the new seeds for the map (master) at once; the
 * map in force serves until one answers. SG_OK or SG_ENOMEM. */
int sg_cluster_reseed(sg_client *c);
/* The pools after a change of max_active or max_idle: idle connections
 * beyond them close now; busy ones close when they come back idle. */
void sg_cluster_trim_pools(sg_client *c);
void sg_cluster_free(sg_client *c);

/* ---- the client (client.c) ------------------------------------------------- */

/* The upstream's credentials for connections opened from now on. */
int sg_client_take_credentials(sg_client *c, const sg_storage *st);
/* The settings of st that a client takes while it serves (sg_client_reload);
 * check_only: only whether it can take them (SG_OK, or SG_EINVAL naming what
 * cannot change while serving), nothing changed. */
int sg_client_take_settings(sg_client *c, const sg_storage *st, int check_only);

/* A blocking call's outcome: sg_waiter_reply is the callback that fills it. */
typedef struct sg_waiter {
    int done;
    sg_reply *reply;
    int status;
    char msg[SG_ERRMSG_MAX];
} sg_waiter;
void sg_waiter_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud);

#endif
