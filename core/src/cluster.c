/*
 * cluster.c — what the client knows of the servers: the nodes (each with its
 * pool of connections, its connect backoff and its figures), the slot map and
 * its refreshes from CLUSTER SLOTS, the master a set of Sentinels names (and
 * the +switch-master subscription), the choice of a node for a slot under the
 * read policy, and the flush of corked connections. It sits above conn.c and
 * below the router, and never handles a request: the router hands requests
 * their connections (and keeps those that wait for one); what the cluster
 * tells it goes through c->events and c->pool_ops, which the router installed.
 *
 * Refreshes: at most one in flight; asked for on MOVED, on a lost or failed
 * connection, and every SG_REFRESH_PERIOD_MS; never closer together than
 * SG_REFRESH_MIN_MS plus jitter. A map that covers fewer slots than the one in
 * force is applied only when a second refresh confirms it.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define SG_REFRESH_MIN_MS 100
#define SG_REFRESH_JITTER_MS 50
#define SG_REFRESH_PERIOD_MS 10000
#define SG_TICK_MS 1000

/* ---- nodes ---------------------------------------------------------------------- */

static void format_addr(char *out, size_t outlen, const char *host, int port) {
    int v6 = strchr(host, ':') != NULL;
    snprintf(out, outlen, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

sg_node *sg_node_get(sg_client *c, const char *host, int port) {
    char addr[300];
    sg_node *node, **nodes;
    int i;
    format_addr(addr, sizeof addr, host, port);
    for (i = 0; i < c->nnodes; i++)
        if (strcmp(c->nodes[i]->addr, addr) == 0) return c->nodes[i];
    if (c->nnodes >= SG_MAX_NODES) return NULL;
    if ((node = sg_calloc(1, sizeof *node)) == NULL) return NULL;
    if ((node->host = sg_strdup(host)) == NULL) {
        sg_free(node);
        return NULL;
    }
    if ((nodes = sg_realloc(c->nodes, (size_t)(c->nnodes + 1) * sizeof *nodes)) == NULL) {
        sg_free(node->host);
        sg_free(node);
        return NULL;
    }
    c->nodes = nodes;
    node->client = c;
    node->port = port;
    memcpy(node->addr, addr, sizeof addr);
    node->st.addr = node->addr;
    node->st.id = node->id;
    node->index = c->nnodes;
    c->nodes[c->nnodes++] = node;
    return node;
}

/* "host:port", "[v6]:port" → node. */
sg_node *sg_node_by_addr(sg_client *c, const char *addr) {
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hl;
    if (colon == NULL) return NULL;
    hl = (size_t)(colon - addr);
    if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl >= sizeof host) return NULL;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    return sg_node_get(c, host, atoi(colon + 1));
}

static void node_free(sg_node *node) {
    while (node->nconns > 0) sg_conn_fail(node->conns[0], SG_ECLOSED, "client closed");
    sg_free(node->conns);
    sg_free(node->replicas);
    sg_free(node->host);
    sg_free(node);
}

/* ---- pools ------------------------------------------------------------------------ */

void sg_client_flush(sg_client *c) {
    int i, k;
    for (i = 0; i < c->nnodes; i++) {
        sg_node *node = c->nodes[i];
        for (k = 0; k < node->nconns; k++) sg_conn_flush(node->conns[k]);
    }
}

/* A connection to node, reporting to owner through ops. */
static sg_conn *node_open(sg_node *node, const sg_conn_ops *ops, void *owner, int role) {
    sg_client *c = node->client;
    sg_conn_peer peer;
    peer.host = node->host;
    peer.port = node->port;
    peer.addr = node->addr;
    peer.sentinel = node->sentinel;
    peer.readonly = !node->sentinel && c->mode == SG_MODE_CLUSTER && node->role == SG_ROLE_REPLICA;
    peer.database = !node->sentinel && c->mode != SG_MODE_CLUSTER ? c->database : 0;
    peer.st = &node->st;
    return sg_conn_open(&c->net, &peer, ops, owner, role);
}

sg_conn *sg_node_open_conn(sg_node *node, const sg_conn_ops *ops, void *owner, int role) {
    return node_open(node, ops, owner, role);
}

/* The connect backoff: a node that refused us is not tried again before
 * retry_at (doubling from 50 ms to 2 s). */
void sg_pool_connect_result(void *owner, sg_conn *conn, int ok, const char *why) {
    sg_node *node = owner;
    (void)conn;
    if (ok) {
        node->connect_errors = 0;
        node->backoff_ms = 0;
        return;
    }
    node->connect_errors++;
    node->backoff_ms = node->backoff_ms ? node->backoff_ms * 2 : 50;
    if (node->backoff_ms > 2000) node->backoff_ms = 2000;
    node->retry_at = sg_now_ms() + (uint64_t)node->backoff_ms;
    snprintf(node->last_error, sizeof node->last_error, "%.150s", why);
}

static int add_conn(sg_node *node, sg_conn *conn) {
    if (sg_grow((void **)&node->conns, &node->cap_conns, node->nconns, sizeof *node->conns, 4))
        return SG_ENOMEM;
    node->conns[node->nconns++] = conn;
    return SG_OK;
}

void sg_pool_closed(void *owner, sg_conn *conn, int code, const char *msg) {
    sg_node *node = owner;
    int i;
    (void)code;
    (void)msg;
    for (i = 0; i < node->nconns; i++) {
        if (node->conns[i] != conn) continue;
        node->conns[i] = node->conns[--node->nconns];
        break;
    }
    /* the pool has room again: a waiter need not wait out its timeout */
    if (node->waiters && !node->client->net.freeing) node->client->events->node_room(node);
}

sg_conn *sg_pool_open(sg_node *node) {
    sg_conn *conn = node_open(node, node->client->pool_ops, node, SG_CONN_POOLED);
    if (conn && add_conn(node, conn) != SG_OK) {
        sg_conn_close(conn);
        return NULL;
    }
    return conn;
}

/* Keeps at most max_idle idle connections, and no idle one beyond
 * max_active (a reload may have made the pool smaller). */
static void trim_pool(sg_node *node) {
    sg_client *c = node->client;
    int idle = 0, i;
    for (i = 0; i < node->nconns; i++)
        if (node->conns[i]->pcount == 0 && !node->conns[i]->exclusive) idle++;
    for (i = node->nconns - 1; i >= 0 && (idle > c->max_idle || node->nconns > c->max_active);
         i--) {
        sg_conn *k = node->conns[i];
        if (k->pcount == 0 && !k->exclusive && k->role == SG_CONN_POOLED) {
            sg_conn_close(k);
            idle--;
        }
    }
}

void sg_pool_idle(void *owner, sg_conn *conn) {
    sg_node *node = owner;
    sg_client *c = node->client;
    if (conn->role == SG_CONN_POOLED) conn->exclusive = 0; /* a subscriber stays apart */
    if (node->waiters) c->events->node_room(node); /* waiters first, in order */
    trim_pool(node);
}

void sg_cluster_trim_pools(sg_client *c) {
    int i;
    for (i = 0; i < c->nnodes; i++) trim_pool(c->nodes[i]);
}

/* Closes connections idle for 240 × timeout, as Tyk's pool does. */
static void expire_idle(sg_client *c) {
    uint64_t now = sg_now_ms(), limit = 240ull * (uint64_t)c->net.timeout_ms;
    int n, i;
    for (n = 0; n < c->nnodes; n++) {
        sg_node *node = c->nodes[n];
        for (i = node->nconns - 1; i >= 0; i--) {
            sg_conn *k = node->conns[i];
            if (k->pcount == 0 && !k->exclusive && now - k->last_used > limit)
                sg_conn_close(k);
        }
    }
}

/* ---- routing -------------------------------------------------------------------------- */

static int usable(const sg_node *n) {
    return n->connect_errors == 0 || n->nconns > 0 || sg_now_ms() >= n->retry_at;
}

sg_node *sg_route_slot(sg_client *c, int slot, int readonly, int policy) {
    sg_node *master = sg_slot_master(c, slot), *pick = NULL;
    int i, n;
    if (policy < 0) policy = c->read_policy;
    if (master == NULL || !readonly || policy == SG_READ_MASTER || master->nreplicas == 0)
        return master;
    n = master->nreplicas + (policy == SG_READ_ANY ? 1 : 0);
    for (i = 0; i < n && pick == NULL; i++) {
        int k = (master->rr++) % n;
        sg_node *cand = k < master->nreplicas ? master->replicas[k] : master;
        if (usable(cand)) pick = cand;
    }
    if (pick) return pick;
    /* none can be reached now: prefer-replica and any fall back to the
     * master; replica means replicas only (the attempt reports why) */
    if (policy == SG_READ_REPLICA) return master->replicas[(master->rr++) % master->nreplicas];
    return master;
}

sg_node *sg_any_master(sg_client *c) {
    int i;
    if (c->mode != SG_MODE_CLUSTER) return c->single;
    for (i = 0; i < c->nnodes; i++) {
        sg_node *n = c->nodes[(c->any_rr + (unsigned)i) % (unsigned)c->nnodes];
        if (n->in_map && n->role == SG_ROLE_MASTER && usable(n)) {
            c->any_rr += (unsigned)i + 1;
            return n;
        }
    }
    for (i = 0; i < SG_SLOTS; i++)
        if (c->slot_master[i]) return sg_slot_master(c, i);
    return NULL;
}

int sg_masters(sg_client *c, sg_node ***out) {
    int i, n = 0;
    sg_node **list;
    *out = NULL;
    if (c->mode != SG_MODE_CLUSTER) {
        if (c->single == NULL) return 0;
        if ((list = sg_malloc(sizeof *list)) == NULL) return -1;
        list[0] = c->single;
        *out = list;
        return 1;
    }
    if ((list = sg_malloc((size_t)(c->nnodes ? c->nnodes : 1) * sizeof *list)) == NULL)
        return -1;
    for (i = 0; i < c->nnodes; i++)
        if (c->nodes[i]->in_map && c->nodes[i]->role == SG_ROLE_MASTER) list[n++] = c->nodes[i];
    *out = list;
    return n;
}

/* ---- the slot map ----------------------------------------------------------------------- */

static int add_replica(sg_node *master, sg_node *r) {
    int i;
    for (i = 0; i < master->nreplicas; i++)
        if (master->replicas[i] == r) return SG_OK;
    if (sg_grow((void **)&master->replicas, &master->cap_replicas, master->nreplicas,
                sizeof *master->replicas, 2))
        return SG_ENOMEM;
    master->replicas[master->nreplicas++] = r;
    return SG_OK;
}

/* A field of a node entry's metadata ([key, value, ...], Redis 7). */
static const char *metadata(const sg_reply *e, const char *key) {
    const sg_reply *m;
    size_t i;
    if (e->elements < 4 || (m = e->element[3])->type != SG_REPLY_ARRAY) return NULL;
    for (i = 0; i + 1 < m->elements; i += 2)
        if (m->element[i]->type == SG_REPLY_STRING && strcmp(m->element[i]->str, key) == 0 &&
            m->element[i + 1]->type == SG_REPLY_STRING && m->element[i + 1]->len > 0)
            return m->element[i + 1]->str;
    return NULL;
}

/* One node entry of CLUSTER SLOTS: [endpoint, port, id, metadata]. The
 * endpoint is what the cluster prefers clients to use (an IP, or an announced
 * hostname); empty means the node that answered; "?" means it has none, and
 * the metadata may still give an ip or hostname. */
static sg_node *entry_node(sg_client *c, const sg_reply *e, const sg_node *asked) {
    const char *host;
    sg_node *n;
    if (e->type != SG_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != SG_REPLY_STRING ||
        e->element[1]->type != SG_REPLY_INTEGER)
        return NULL;
    host = e->element[0]->len ? e->element[0]->str : asked->host;
    if (strcmp(host, "?") == 0 && (host = metadata(e, "ip")) == NULL &&
        (host = metadata(e, "hostname")) == NULL)
        return NULL;
    if ((n = sg_node_get(c, host, (int)e->element[1]->integer)) == NULL) {
        c->map_oom = 1; /* not a malformed entry: memory (or the node limit) ran out */
        return NULL;
    }
    if (e->elements >= 3 && e->element[2]->type == SG_REPLY_STRING)
        snprintf(n->id, sizeof n->id, "%s", e->element[2]->str);
    return n;
}

/* Parses CLUSTER SLOTS into slots[]; roles and replicas are set on the
 * nodes only when the map is applied. Returns covered slots, or -1 with why. */
int sg_cluster_parse_slots(sg_client *c, const sg_reply *r, const sg_node *asked,
                           sg_node **slots, char *why, size_t whylen) {
    size_t i, j;
    int covered = 0;
    if (r->type != SG_REPLY_ARRAY) {
        snprintf(why, whylen, "CLUSTER SLOTS gave %s",
                 r->type == SG_REPLY_ERROR ? r->str : "no array");
        return -1;
    }
    memset(slots, 0, SG_SLOTS * sizeof *slots);
    for (i = 0; i < r->elements; i++) {
        const sg_reply *e = r->element[i];
        long long lo, hi, s;
        sg_node *master;
        if (e->type != SG_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != SG_REPLY_INTEGER || e->element[1]->type != SG_REPLY_INTEGER) {
            snprintf(why, whylen, "CLUSTER SLOTS entry %zu is malformed", i + 1);
            return -1;
        }
        lo = e->element[0]->integer;
        hi = e->element[1]->integer;
        if (lo < 0 || hi >= SG_SLOTS || lo > hi) {
            snprintf(why, whylen, "CLUSTER SLOTS entry %zu has slots %lld-%lld", i + 1, lo, hi);
            return -1;
        }
        if ((master = entry_node(c, e->element[2], asked)) == NULL) {
            snprintf(why, whylen, "CLUSTER SLOTS entry %zu names no usable master", i + 1);
            return -1;
        }
        for (s = lo; s <= hi; s++) {
            if (slots[s] == NULL) covered++;
            slots[s] = master;
        }
        for (j = 3; j < e->elements; j++)
            if (entry_node(c, e->element[j], asked) == NULL) {
                snprintf(why, whylen, "CLUSTER SLOTS entry %zu names a malformed replica", i + 1);
                return -1;
            }
    }
    return covered;
}

/* Applies a parsed map: roles, replicas, who is in the map. */
int sg_cluster_apply_slots(sg_client *c, const sg_reply *r, const sg_node *asked,
                           sg_node **slots) {
    size_t i, j;
    int n, s;
    for (n = 0; n < c->nnodes; n++) {
        c->nodes[n]->in_map = 0;
        c->nodes[n]->nreplicas = 0;
    }
    /* masters first: a node that serves slots is a master, even where a
     * stale entry also lists it as a replica (else fan-outs to every master
     * would skip it, and it would get READONLY) */
    for (i = 0; i < r->elements; i++) {
        sg_node *master = entry_node(c, r->element[i]->element[2], asked);
        master->in_map = 1;
        master->role = SG_ROLE_MASTER;
    }
    for (i = 0; i < r->elements; i++) {
        const sg_reply *e = r->element[i];
        sg_node *master = entry_node(c, e->element[2], asked);
        for (j = 3; j < e->elements; j++) {
            sg_node *rep = entry_node(c, e->element[j], asked);
            if (rep->in_map && rep->role == SG_ROLE_MASTER) continue; /* a master here */
            if (rep->role != SG_ROLE_REPLICA) {
                /* a node that changed role: its connections lack READONLY
                 * (or have it); start afresh */
                int k;
                for (k = rep->nconns - 1; k >= 0; k--)
                    if (rep->conns[k]->pcount == 0) sg_conn_close(rep->conns[k]);
            }
            rep->role = SG_ROLE_REPLICA;
            rep->in_map = 1;
            if (add_replica(master, rep) != SG_OK) return SG_ENOMEM;
        }
    }
    c->covered = 0;
    for (s = 0; s < SG_SLOTS; s++) {
        sg_slot_set(c, s, slots[s]);
        if (slots[s]) c->covered++;
    }
    /* nodes that left: close what is idle */
    for (n = 0; n < c->nnodes; n++) {
        sg_node *node = c->nodes[n];
        int k;
        if (node->in_map) continue;
        for (k = node->nconns - 1; k >= 0; k--)
            if (node->conns[k]->pcount == 0) sg_conn_close(node->conns[k]);
    }
    return SG_OK;
}

/* ---- refreshes ---------------------------------------------------------------------------- */

static void start_refresh(sg_client *c);

/* Whether a refresh may ask node: a seed, or (unless the refresh asks the
 * seeds only, after a reload changed them) a node of the map. A node that
 * is neither is not asked: it left the cluster, or belongs to the cluster
 * the old seeds named. */
static int askable(const sg_client *c, const sg_node *n) {
    return n->seed || (!c->from_seeds && n->in_map);
}

/* The node to ask next: the seeds and map nodes, rotating. */
static sg_node *next_candidate(sg_client *c, int attempt) {
    int total = c->nnodes, i;
    for (i = 0; i < total; i++) {
        sg_node *n = c->nodes[(c->refresh_seed + attempt + i) % total];
        if (n->sentinel || !askable(c, n)) continue;
        if (usable(n)) {
            c->refresh_seed = (c->refresh_seed + attempt + i + 1) % total;
            return n;
        }
    }
    return NULL;
}

static void refresh_done(sg_client *c, int ok) {
    c->refreshing = 0;
    c->from_seeds = 0;
    c->last_refresh = sg_now_ms();
    c->refreshes++;
    /* the seeds changed while it ran: ask them now */
    if (c->reseeded && !c->net.freeing) sg_cluster_refresh(c, 1);
    if (ok) {
        sg_buf_free(&c->refresh_errors);
        if (!c->ready) {
            c->ready = 1;
            c->events->map_ready(c);
        }
    }
}

static void on_refresh_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg,
                             void *ud);

static void ask_node(sg_client *c, sg_node *node);
static sg_node *next_sentinel(sg_client *c);

/* One node could not give the map (code: why, as the request saw it); asks
 * the next. When none can, a client still without a map fails its waiting
 * commands: with SG_EAUTH or SG_ENOMEM when every node failed so, as that is
 * what the caller must fix, else SG_ECONNECT. */
static void refresh_failed_once(sg_client *c, sg_node *node, int code, const char *why) {
    int limit = c->nnodes < 16 ? c->nnodes : 16, i;
    sg_node *next;
    if (c->mode == SG_MODE_SENTINEL) /* each sentinel once */
        for (limit = 0, i = 0; i < c->nnodes; i++)
            limit += c->nodes[i]->sentinel && c->nodes[i]->seed;
    if (c->refresh_errors.len < 2000)
        sg_buf_printf(&c->refresh_errors, "%s%s: %s", c->refresh_errors.len ? "; " : "", node->addr,
                      why);
    if (c->refresh_attempts == 0) c->refresh_code = code;
    else if (c->refresh_code != code) c->refresh_code = SG_ECONNECT;
    c->refresh_attempts++;
    if (c->refresh_attempts < limit &&
        (next = c->mode == SG_MODE_SENTINEL ? next_sentinel(c) : next_candidate(c, 0)) != NULL &&
        next != node) {
        ask_node(c, next);
        return;
    }
    /* every candidate failed */
    {
        char msg[SG_ERRMSG_MAX];
        if (c->mode == SG_MODE_SENTINEL)
            snprintf(msg, sizeof msg, "no sentinel gives the address of master \"%s\": %s",
                     c->master_name,
                     c->refresh_errors.data ? c->refresh_errors.data : "none to ask");
        else
            snprintf(msg, sizeof msg, "cannot read the slot map from any node: %s",
                     c->refresh_errors.data ? c->refresh_errors.data : "no node to ask");
        sg_buf_free(&c->refresh_errors);
        refresh_done(c, 0);
        if (!c->ready)
            c->events->map_failed(c,
                                  c->refresh_code == SG_EAUTH || c->refresh_code == SG_ENOMEM
                                      ? c->refresh_code
                                      : SG_ECONNECT,
                                  msg);
        else sg_log(SG_LOG_WARN, "%s", msg);
    }
}

static void on_refresh_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg,
                             void *ud) {
    sg_node *asked = ud;
    sg_node **slots;
    char why[SG_ERRMSG_MAX];
    int covered;
    if (c->net.freeing) {
        sg_reply_free(reply);
        return;
    }
    if (reply == NULL) {
        refresh_failed_once(c, asked, status, errmsg);
        return;
    }
    if ((slots = sg_malloc(SG_SLOTS * sizeof *slots)) == NULL) {
        sg_reply_free(reply);
        refresh_failed_once(c, asked, SG_ENOMEM, "out of memory");
        return;
    }
    c->map_oom = 0;
    covered = sg_cluster_parse_slots(c, reply, asked, slots, why, sizeof why);
    if (covered == 0) snprintf(why, sizeof why, "its map covers no slot");
    if (covered <= 0) {
        int code = c->map_oom ? SG_ENOMEM : SG_EPROTO;
        if (c->map_oom) snprintf(why, sizeof why, "out of memory reading its map");
        sg_free(slots);
        sg_reply_free(reply);
        refresh_failed_once(c, asked, code, why);
        return;
    }
    if (covered < c->covered && !c->suspect) {
        /* fewer slots than before: believe it when another node agrees */
        sg_log_fields at = {.node = asked->addr};
        sg_log_at(SG_LOG_WARN, &at,
                  "node %s reports %d covered slots, %d before: asking another node", asked->addr,
                  covered, c->covered);
        c->suspect = 1;
        sg_free(slots);
        sg_reply_free(reply);
        refresh_done(c, 1);
        sg_cluster_refresh(c, 1);
        return;
    }
    c->suspect = 0;
    if (sg_cluster_apply_slots(c, reply, asked, slots) == SG_OK) c->events->map_changed(c);
    else {
        sg_free(slots);
        sg_reply_free(reply);
        refresh_failed_once(c, asked, SG_ENOMEM, "out of memory");
        return;
    }
    sg_free(slots);
    sg_reply_free(reply);
    refresh_done(c, 1);
}

/* ---- Sentinel: the master's address -------------------------------------------------------- */

#define SWITCH_TRUST_MS 10000 /* how long a +switch-master outranks look-ups */

/* Serves master from now on; the old one's idle connections are closed. */
static void switch_master(sg_client *c, sg_node *master, const sg_node *sentinel, const char *how) {
    sg_node *old = c->single;
    if (old && old != master) {
        int k;
        sg_log(SG_LOG_INFO, "sentinel %s (%s): master \"%s\" is now %s (was %s)", sentinel->addr,
               how, c->master_name, master->addr, old->addr);
        old->in_map = 0;
        for (k = old->nconns - 1; k >= 0; k--)
            if (old->conns[k]->pcount == 0) sg_conn_close(old->conns[k]);
    }
    master->role = SG_ROLE_MASTER;
    master->in_map = 1;
    c->single = master;
    /* as a new slot map: the near cache drops what the old master served and
     * tracks the new one, and CLIENT TRACKING's sessions are flushed — those
     * answer from their own caches and would hear of nothing else (the first
     * master named too: sessions that read before it was known owe a flush) */
    if (old != master) c->events->map_changed(c);
}

/* A message on +switch-master: "name oldip oldport newip newport". */
static void on_switch_master(void *owner, sg_conn *conn, sg_reply *r) {
    sg_node *sentinel = owner;
    sg_client *c = sentinel->client;
    char name[256], oldip[256], newip[256];
    int oldport, newport;
    if (r->type == SG_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == SG_REPLY_STRING &&
        r->element[0]->type == SG_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0 &&
        sscanf(r->element[2]->str, "%255s %255s %d %255s %d", name, oldip, &oldport, newip,
               &newport) == 5 &&
        strcmp(name, c->master_name) == 0) {
        sg_node *master = sg_node_get(c, newip, newport);
        if (master) {
            switch_master(c, master, sentinel, "+switch-master");
            c->switched_to = master;
            c->switched_at = sg_now_ms();
            c->last_refresh = c->switched_at;
        }
    }
    (void)conn;
    sg_reply_free(r);
}

/* The subscription is gone: the next look-up renews it. */
static void sub_closed(void *owner, sg_conn *conn, int code, const char *msg) {
    sg_node *sentinel = owner;
    sg_client *c = sentinel->client;
    assert(c->sub == conn || c->sub == NULL);
    if (c->sub == conn) {
        c->sub = NULL;
        if (!c->net.freeing) sg_cluster_refresh(c, 0);
    }
    sg_pool_closed(owner, conn, code, msg);
}

/* The subscription is one of the sentinel's pooled connections, never lent. */
static const sg_conn_ops sub_ops = {
    NULL, NULL, NULL, on_switch_master, sg_pool_idle, sub_closed, sg_pool_connect_result,
};

/* Subscribes to a sentinel's +switch-master, once. */
static void subscribe_switch(sg_client *c, sg_node *sentinel) {
    static const char *const words[] = {"SUBSCRIBE", "+switch-master"};
    sg_conn *conn;
    if (c->sub || c->net.freeing) return;
    if ((conn = node_open(sentinel, &sub_ops, sentinel, SG_CONN_SUBSCRIBER)) == NULL) return;
    if (add_conn(sentinel, conn) != SG_OK) {
        sg_conn_close(conn);
        return;
    }
    conn->exclusive = 1; /* never lent to a command */
    if (sg_conn_send_words(conn, words, 2) != SG_OK) {
        sg_conn_close(conn);
        return;
    }
    c->sub = conn;
}

static void on_sentinel_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg,
                              void *ud) {
    sg_node *asked = ud, *master;
    char why[SG_ERRMSG_MAX];
    if (c->net.freeing) {
        sg_reply_free(reply);
        return;
    }
    if (reply == NULL) {
        refresh_failed_once(c, asked, status, errmsg);
        return;
    }
    if (reply->type != SG_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != SG_REPLY_STRING || reply->element[1]->type != SG_REPLY_STRING) {
        int code = SG_EPROTO;
        if (reply->type == SG_REPLY_ERROR) {
            /* NOAUTH: a sentinel_password is needed (or a better one) */
            if (sg_reply_error_is(reply, "NOAUTH") || sg_reply_error_is(reply, "WRONGPASS") ||
                sg_reply_error_is(reply, "NOPERM"))
                code = SG_EAUTH;
            snprintf(why, sizeof why, "refused SENTINEL get-master-addr-by-name %s: %s",
                     c->master_name, reply->str);
        } else {
            snprintf(why, sizeof why, "does not know master \"%s\"", c->master_name);
        }
        sg_reply_free(reply);
        refresh_failed_once(c, asked, code, why);
        return;
    }
    master = sg_node_get(c, reply->element[0]->str, atoi(reply->element[1]->str));
    sg_reply_free(reply);
    if (master == NULL) {
        refresh_failed_once(c, asked, SG_ENOMEM, "out of memory");
        return;
    }
    if (c->single && c->single != master && c->switched_to == c->single &&
        sg_now_ms() - c->switched_at < SWITCH_TRUST_MS) {
        /* a sentinel that has not heard of the +switch-master yet (or a
         * look-up that crossed it): the switch is newer, keep it */
        sg_log(SG_LOG_INFO, "sentinel %s still names %s for \"%s\"; keeping %s from +switch-master",
               asked->addr, master->addr, c->master_name, c->single->addr);
        refresh_done(c, 1);
        return;
    }
    switch_master(c, master, asked, "look-up");
    subscribe_switch(c, asked);
    refresh_done(c, 1);
}

static sg_node *next_sentinel(sg_client *c) {
    int i;
    for (i = 0; i < c->nnodes; i++) {
        sg_node *n = c->nodes[(c->refresh_seed + i) % c->nnodes];
        if (n->sentinel && n->seed && usable(n)) { /* a Sentinel still named */
            c->refresh_seed = (c->refresh_seed + i + 1) % c->nnodes;
            return n;
        }
    }
    return NULL;
}

/* Sends the map (or master) query to one node. */
static void ask_node(sg_client *c, sg_node *node) {
    static const char slots_cmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    int rc;
    if (c->mode == SG_MODE_SENTINEL) {
        sg_buf b = {0};
        sg_buf_printf(&b,
                      "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$%zu\r\n%s\r\n",
                      strlen(c->master_name), c->master_name);
        rc = b.oom ? SG_ENOMEM : c->events->query(c, node, b.data, b.len, on_sentinel_reply, node);
        sg_buf_free(&b);
    } else {
        rc = c->events->query(c, node, slots_cmd, sizeof slots_cmd - 1, on_refresh_reply, node);
    }
    if (rc != SG_OK) refresh_failed_once(c, node, SG_ENOMEM, "out of memory");
}

static void start_refresh(sg_client *c) {
    sg_node *node;
    if (c->refreshing || c->net.freeing) return;
    if (c->mode == SG_MODE_SINGLE) return;
    c->refreshing = 1;
    c->from_seeds = c->reseeded;
    c->reseeded = 0;
    c->refresh_attempts = 0;
    sg_buf_free(&c->refresh_errors);
    node = c->mode == SG_MODE_SENTINEL ? next_sentinel(c) : next_candidate(c, 0);
    if (node == NULL) {
        /* everybody is backing off: ask one anyway */
        int i;
        for (i = 0; i < c->nnodes && node == NULL; i++)
            if (c->nodes[i]->sentinel == (c->mode == SG_MODE_SENTINEL) &&
                (c->mode == SG_MODE_SENTINEL ? c->nodes[i]->seed : askable(c, c->nodes[i])))
                node = c->nodes[i];
        if (node == NULL) {
            refresh_done(c, 0);
            c->events->map_failed(c, SG_ECONFIG, "no node to ask for the slot map");
            return;
        }
        node->retry_at = 0;
    }
    ask_node(c, node);
}

static void refresh_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    start_refresh(arg);
}

void sg_cluster_refresh(sg_client *c, int urgent) {
    uint64_t now = sg_now_ms(), next;
    struct timeval tv;
    if (c->mode == SG_MODE_SINGLE || c->refreshing || c->net.freeing) return;
    if (evtimer_pending(c->refresh_timer, NULL)) return;
    next = c->last_refresh + SG_REFRESH_MIN_MS + (uint64_t)(rand() % SG_REFRESH_JITTER_MS);
    if (!urgent) next += SG_REFRESH_MIN_MS;
    if (c->last_refresh == 0 || now >= next) {
        start_refresh(c);
        return;
    }
    tv.tv_sec = (long)((next - now) / 1000);
    tv.tv_usec = (long)((next - now) % 1000) * 1000;
    evtimer_add(c->refresh_timer, &tv);
}

void sg_cluster_moved(sg_client *c, int slot, sg_node *node) {
    if (slot < 0 || slot >= SG_SLOTS) return;
    if (c->slot_master[slot] == 0) c->covered++;
    sg_slot_set(c, slot, node);
    node->in_map = 1;
    node->role = SG_ROLE_MASTER;
    sg_cluster_refresh(c, 0);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    sg_client *c = arg;
    (void)fd;
    (void)what;
    expire_idle(c);
    if (c->mode != SG_MODE_SINGLE && c->ready &&
        sg_now_ms() - c->last_refresh >= SG_REFRESH_PERIOD_MS)
        sg_cluster_refresh(c, 0);
}

/* Creates the seed (or sentinel, or single) nodes and the timers. */
int sg_cluster_start(sg_client *c) {
    struct timeval tick = {SG_TICK_MS / 1000, (SG_TICK_MS % 1000) * 1000};
    int i;
    for (i = 0; i < c->nseeds; i++) {
        sg_node *n = sg_node_by_addr(c, c->seeds[i]);
        if (n == NULL)
            return sg_seterr(&c->err, SG_ENOMEM, "out of memory adding seed %s", c->seeds[i]);
        n->sentinel = c->mode == SG_MODE_SENTINEL;
        n->seed = 1;
        if (c->mode == SG_MODE_SINGLE) {
            n->in_map = 1;
            c->single = n;
            break; /* the first address only */
        }
    }
    c->refresh_timer = evtimer_new(c->net.base, refresh_timer_cb, c);
    c->tick = event_new(c->net.base, -1, EV_PERSIST, tick_cb, c);
    if (c->refresh_timer == NULL || c->tick == NULL)
        return sg_seterr(&c->err, SG_ENOMEM, "out of memory creating timers");
    evtimer_add(c->tick, &tick);
    if (c->mode == SG_MODE_SINGLE) c->ready = 1;
    return SG_OK;
}

void sg_cluster_free(sg_client *c) {
    int i;
    if (c->refresh_timer) event_free(c->refresh_timer);
    if (c->tick) event_free(c->tick);
    for (i = 0; i < c->nnodes; i++) node_free(c->nodes[i]);
    sg_free(c->nodes);
    c->nodes = NULL;
    c->nnodes = 0;
    memset(c->slot_master, 0, sizeof c->slot_master);
    c->covered = 0;
}

/* Starts discovery for a client that has no map yet. */
void sg_cluster_discover(sg_client *c) {
    if (c->ready || c->refreshing) return;
    c->discovery_failed = 0;
    start_refresh(c);
}

/* Closes node's idle pooled connections (a node the client no longer uses). */
static void close_idle(sg_node *node) {
    int k;
    for (k = node->nconns - 1; k >= 0; k--)
        if (node->conns[k]->pcount == 0 && !node->conns[k]->exclusive)
            sg_conn_close(node->conns[k]);
}

int sg_cluster_reseed(sg_client *c) {
    int i, rc = SG_OK;
    sg_node *first = NULL;
    for (i = 0; i < c->nnodes; i++) c->nodes[i]->seed = 0;
    for (i = 0; i < c->nseeds; i++) {
        sg_node *n = sg_node_by_addr(c, c->seeds[i]);
        if (n == NULL) {
            rc = SG_ENOMEM;
            continue;
        }
        if (c->mode == SG_MODE_SENTINEL) n->sentinel = 1;
        n->seed = 1;
        n->retry_at = 0; /* a seed just named is tried now, whatever it did before */
        if (first == NULL) first = n;
    }
    if (c->mode == SG_MODE_SINGLE) {
        /* the first address is the node: commands go to it from now on;
         * those on the old one finish there */
        if (first && first != c->single) {
            if (c->single) {
                sg_log(SG_LOG_INFO, "upstream %s: the node is now %s (was %s)", c->name,
                       first->addr, c->single->addr);
                c->single->in_map = 0;
                close_idle(c->single);
            }
            first->in_map = 1;
            first->role = SG_ROLE_MASTER;
            c->single = first;
        }
        return rc;
    }
    for (i = 0; i < c->nnodes; i++) { /* nodes asked before and not now */
        sg_node *n = c->nodes[i];
        if (n->seed || (n->in_map && !n->sentinel)) continue;
        if (c->sub && n->sentinel) {
            int k;
            for (k = 0; k < n->nconns; k++)
                if (n->conns[k] == c->sub) { /* sub_closed asks the new ones */
                    sg_conn_fail(c->sub, SG_ECLOSED, "upstream %s: sentinel %s is no longer "
                                 "named", c->name, n->addr);
                    break;
                }
        }
        close_idle(n);
    }
    /* the next refresh asks the seeds only; the map (master) in force
     * serves until one answers */
    c->reseeded = 1;
    if (!c->ready) {
        c->discovery_failed = 0;
        if (!c->refreshing) start_refresh(c);
    } else {
        sg_cluster_refresh(c, 1);
    }
    return rc;
}
