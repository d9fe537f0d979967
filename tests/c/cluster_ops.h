/*
 * cluster_ops.h — what the topology tests (ct_reshard.c, ct_failover.c) do to
 * the harness's cluster behind the client's back: plain hiredis connections
 * to each node, the cluster's state read the way an operator would (CLUSTER
 * SLOTS, CLUSTER NODES, CLUSTER INFO, INFO replication), and waits that poll a
 * condition until a deadline. Header-only (static inline), so each test
 * binary stays one ct_*.c file plus test.c.
 *
 * A test that changes the topology must put it back: ops_signature() gives
 * one string for "who serves which slots, with which replicas" (node ids and
 * addresses), and ops_wait_settled() waits until every node reports the same
 * signature as before the test, cluster_state:ok, no node flagged or
 * disconnected, no slot migrating or importing and every replica's link up.
 */
#ifndef SG_CLUSTER_OPS_H
#define SG_CLUSTER_OPS_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "test.h"

/* Prints a failure as TEST_FAIL_ does, without counting it: for tests that
 * count wrong outcomes themselves and check the count once. */
#define OPS_SHOW(...)                                                          \
    do {                                                                       \
        fprintf(stderr, "%s:%d: [%s] ", __FILE__, __LINE__,                    \
                test_current ? test_current : "-");                            \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
    } while (0)

#define OPS_MAX_NODES 8
#define OPS_SIG_MAX 65536

/* Milliseconds on a monotonic clock. */
static inline uint64_t ops_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void ops_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- one node ---------------------------------------------------------------- */

typedef struct ops_node {
    char addr[64]; /* "127.0.0.1:port" */
    char host[64];
    int port;
    char id[48]; /* CLUSTER MYID, once known */
    redisContext *ctx;
    char err[256]; /* why the last ops_cmd() gave NULL */
} ops_node;

static inline void ops_node_init(ops_node *n, const char *addr) {
    memset(n, 0, sizeof *n);
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    test_split_addr(addr, n->host, sizeof n->host, &n->port);
}

static inline void ops_node_close(ops_node *n) {
    if (n->ctx) redisFree(n->ctx);
    n->ctx = NULL;
}

/* Runs a command on the node, (re)connecting first when needed; 1 s bounds
 * on connect and on each reply. Returns the reply (caller frees it with
 * freeReplyObject), or NULL with n->err saying why; the connection is dropped
 * then, and the next call connects again. */
static inline redisReply *ops_vcmd(ops_node *n, const char *fmt, va_list ap) {
    redisReply *r;
    if (n->ctx == NULL) {
        struct timeval tv = {1, 0};
        n->ctx = redisConnectWithTimeout(n->host, n->port, tv);
        if (n->ctx == NULL || n->ctx->err) {
            snprintf(n->err, sizeof n->err, "connect to %s: %s", n->addr,
                     n->ctx ? n->ctx->errstr : "out of memory");
            ops_node_close(n);
            return NULL;
        }
        redisSetTimeout(n->ctx, tv);
    }
    r = redisvCommand(n->ctx, fmt, ap);
    if (r == NULL) {
        snprintf(n->err, sizeof n->err, "%s: %s", n->addr, n->ctx->errstr);
        ops_node_close(n);
    }
    return r;
}

static inline redisReply *ops_cmd(ops_node *n, const char *fmt, ...) {
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = ops_vcmd(n, fmt, ap);
    va_end(ap);
    return r;
}

/* The same with an argv (binary-safe); NULL with n->err on failure. */
static inline redisReply *ops_cmd_argv(ops_node *n, int argc, const char **argv,
                                       const size_t *argvlen) {
    redisReply *r;
    if (n->ctx == NULL) {
        redisReply *ping = ops_cmd(n, "PING"); /* connects */
        if (ping == NULL) return NULL;
        freeReplyObject(ping);
    }
    r = redisCommandArgv(n->ctx, argc, argv, argvlen);
    if (r == NULL) {
        snprintf(n->err, sizeof n->err, "%s: %s", n->addr, n->ctx->errstr);
        ops_node_close(n);
    }
    return r;
}

/* A command that must answer with a status or string equal to want (e.g.
 * "OK"); 0 when it did, else -1 with n->err set. */
static inline int ops_cmd_expect(ops_node *n, const char *want, const char *fmt, ...) {
    va_list ap;
    redisReply *r;
    int rc = -1;
    va_start(ap, fmt);
    r = ops_vcmd(n, fmt, ap);
    va_end(ap);
    if (r == NULL) return -1;
    if ((r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
        strcmp(r->str, want) == 0)
        rc = 0;
    else
        snprintf(n->err, sizeof n->err, "%s: %.*s%s", n->addr,
                 r->str ? 200 : 0, r->str ? r->str : "",
                 r->str ? "" : "unexpected reply type");
    freeReplyObject(r);
    return rc;
}

/* The value of "field:" in an INFO-style text ("" when absent). */
static inline void ops_info_field(const char *text, const char *field, char *out,
                                  size_t outlen) {
    size_t fl = strlen(field);
    const char *p = text;
    out[0] = '\0';
    while (p && *p) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            size_t n = strcspn(p + fl + 1, "\r\n");
            if (n >= outlen) n = outlen - 1;
            memcpy(out, p + fl + 1, n);
            out[n] = '\0';
            return;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
}

/* A field of INFO section on the node; 0, or -1 with n->err. */
static inline int ops_info(ops_node *n, const char *section, const char *field, char *out,
                           size_t outlen) {
    redisReply *r = ops_cmd(n, "INFO %s", section);
    out[0] = '\0';
    if (r == NULL) return -1;
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(n->err, sizeof n->err, "%s: INFO %s: %s", n->addr, section,
                 r->str ? r->str : "no text");
        freeReplyObject(r);
        return -1;
    }
    ops_info_field(r->str, field, out, outlen);
    freeReplyObject(r);
    return 0;
}

/* Fills n->id from CLUSTER MYID; 0 or -1. */
static inline int ops_node_id(ops_node *n) {
    redisReply *r = ops_cmd(n, "CLUSTER MYID");
    if (r == NULL) return -1;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return -1;
    }
    snprintf(n->id, sizeof n->id, "%s", r->str);
    freeReplyObject(r);
    return 0;
}

/* "master" or "slave" (first element of ROLE), or "" when unreachable. */
static inline void ops_role(ops_node *n, char *out, size_t outlen) {
    redisReply *r = ops_cmd(n, "ROLE");
    out[0] = '\0';
    if (r == NULL) return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(out, outlen, "%s", r->element[0]->str);
    freeReplyObject(r);
}

/* ---- the whole cluster -------------------------------------------------------- */

typedef struct ops_cluster {
    ops_node node[OPS_MAX_NODES];
    int n;
} ops_cluster;

/* Nodes from a comma-separated list of addresses (SG_TEST_CLUSTER). */
static inline void ops_cluster_init(ops_cluster *cl, const char *csv) {
    const char *p = csv;
    cl->n = 0;
    while (*p && cl->n < OPS_MAX_NODES) {
        char addr[64];
        size_t len = strcspn(p, ",");
        if (len >= sizeof addr) len = sizeof addr - 1;
        memcpy(addr, p, len);
        addr[len] = '\0';
        ops_node_init(&cl->node[cl->n++], addr);
        p += strcspn(p, ",");
        if (*p == ',') p++;
    }
}

static inline void ops_cluster_close(ops_cluster *cl) {
    int i;
    for (i = 0; i < cl->n; i++) ops_node_close(&cl->node[i]);
}

static inline ops_node *ops_by_addr(ops_cluster *cl, const char *addr) {
    int i;
    for (i = 0; i < cl->n; i++)
        if (strcmp(cl->node[i].addr, addr) == 0) return &cl->node[i];
    return NULL;
}

static inline ops_node *ops_by_id(ops_cluster *cl, const char *id) {
    int i;
    for (i = 0; i < cl->n; i++)
        if (cl->node[i].id[0] == '\0') ops_node_id(&cl->node[i]);
    for (i = 0; i < cl->n; i++)
        if (strcmp(cl->node[i].id, id) == 0) return &cl->node[i];
    return NULL;
}

static int ops_cmp_str_(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The node's CLUSTER SLOTS as one string: "lo-hi master(id@addr) replicas
 * (sorted)" per range, ranges in slot order. 0, or -1 with n->err. When
 * owner is not NULL, owner[slot] receives the index in cl of the slot's
 * master (-1: none or not one of cl's nodes). */
static inline int ops_signature(ops_cluster *cl, ops_node *n, char *sig, size_t siglen,
                                int *owner) {
    redisReply *r = ops_cmd(n, "CLUSTER SLOTS");
    size_t i, j, used = 0;
    if (owner)
        for (i = 0; i < 16384; i++) owner[i] = -1;
    sig[0] = '\0';
    if (r == NULL) return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(n->err, sizeof n->err, "%s: CLUSTER SLOTS: %s", n->addr,
                 r->str ? r->str : "not an array");
        freeReplyObject(r);
        return -1;
    }
    {
        /* order the ranges by their first slot */
        size_t *order = malloc((r->elements ? r->elements : 1) * sizeof *order);
        for (i = 0; i < r->elements; i++) order[i] = i;
        for (i = 1; i < r->elements; i++)
            for (j = i; j > 0 && r->element[order[j]]->element[0]->integer <
                                     r->element[order[j - 1]]->element[0]->integer;
                 j--) {
                size_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        for (i = 0; i < r->elements; i++) {
            redisReply *e = r->element[order[i]];
            const char *reps[8];
            char repbuf[8][128];
            size_t nrep = 0, k;
            long long lo = e->element[0]->integer, hi = e->element[1]->integer, s;
            redisReply *m = e->element[2];
            for (k = 3; k < e->elements && nrep < 8; k++) {
                redisReply *x = e->element[k];
                snprintf(repbuf[nrep], sizeof repbuf[nrep], "%s@%s:%lld",
                         x->elements > 2 ? x->element[2]->str : "?", x->element[0]->str,
                         x->element[1]->integer);
                reps[nrep] = repbuf[nrep];
                nrep++;
            }
            qsort(reps, nrep, sizeof *reps, ops_cmp_str_);
            used += (size_t)snprintf(sig + used, used < siglen ? siglen - used : 0,
                                     "%lld-%lld %s@%s:%lld", lo, hi,
                                     m->elements > 2 ? m->element[2]->str : "?",
                                     m->element[0]->str, m->element[1]->integer);
            for (k = 0; k < nrep; k++)
                used += (size_t)snprintf(sig + used, used < siglen ? siglen - used : 0,
                                         " r:%s", reps[k]);
            used += (size_t)snprintf(sig + used, used < siglen ? siglen - used : 0, "; ");
            if (owner) {
                char addr[64];
                int who = -1, c;
                snprintf(addr, sizeof addr, "%s:%lld", m->element[0]->str,
                         m->element[1]->integer);
                for (c = 0; c < cl->n; c++)
                    if (strcmp(cl->node[c].addr, addr) == 0) who = c;
                for (s = lo; s <= hi && s < 16384; s++) owner[s] = who;
            }
        }
        free(order);
    }
    freeReplyObject(r);
    if (used >= siglen) {
        snprintf(n->err, sizeof n->err, "%s: CLUSTER SLOTS too long for the signature",
                 n->addr);
        return -1;
    }
    return 0;
}

/* What keeps node n from being settled, in problem (empty: settled):
 * cluster_state, slots assigned and ok, 6 known nodes, every node in CLUSTER
 * NODES without fail/pfail/handshake/noaddr and connected, no slot migrating
 * or importing on this node, and for a replica a master link that is up. */
static inline void ops_node_problem(ops_node *n, int want_nodes, char *problem,
                                    size_t plen) {
    redisReply *r = ops_cmd(n, "CLUSTER INFO");
    char v[64];
    problem[0] = '\0';
    if (r == NULL) {
        snprintf(problem, plen, "%s", n->err);
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(problem, plen, "%s: CLUSTER INFO: %s", n->addr, r->str ? r->str : "?");
        freeReplyObject(r);
        return;
    }
    ops_info_field(r->str, "cluster_state", v, sizeof v);
    if (strcmp(v, "ok") != 0) snprintf(problem, plen, "%s: cluster_state:%s", n->addr, v);
    ops_info_field(r->str, "cluster_slots_ok", v, sizeof v);
    if (!problem[0] && strcmp(v, "16384") != 0)
        snprintf(problem, plen, "%s: cluster_slots_ok:%s", n->addr, v);
    ops_info_field(r->str, "cluster_known_nodes", v, sizeof v);
    if (!problem[0] && atoi(v) != want_nodes)
        snprintf(problem, plen, "%s: cluster_known_nodes:%s", n->addr, v);
    freeReplyObject(r);
    if (problem[0]) return;

    r = ops_cmd(n, "CLUSTER NODES");
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        snprintf(problem, plen, "%s: CLUSTER NODES: %s", n->addr,
                 r ? (r->str ? r->str : "?") : n->err);
        if (r) freeReplyObject(r);
        return;
    }
    {
        const char *line;
        int myself_replica = 0;
        for (line = r->str; line && *line && !problem[0];
             line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
            char id[64], addr[128], flags[128], master[64], rest[1024];
            long long ping, pong;
            int epoch;
            char link[32];
            rest[0] = '\0';
            if (sscanf(line, "%63s %127s %127s %63s %lld %lld %d %31s %1023[^\n]", id, addr,
                       flags, master, &ping, &pong, &epoch, link, rest) < 8)
                continue;
            if (strstr(flags, "fail") || strstr(flags, "handshake") || strstr(flags, "noaddr"))
                snprintf(problem, plen, "%s sees %s as %s", n->addr, addr, flags);
            else if (strcmp(link, "connected") != 0)
                snprintf(problem, plen, "%s: link to %s %s", n->addr, addr, link);
            else if (strstr(flags, "myself") && strchr(rest, '['))
                snprintf(problem, plen, "%s: a slot is still migrating or importing: %s",
                         n->addr, rest);
            if (strstr(flags, "myself") && strstr(flags, "slave")) myself_replica = 1;
        }
        freeReplyObject(r);
        if (problem[0] || !myself_replica) return;
    }
    if (ops_info(n, "replication", "master_link_status", v, sizeof v) != 0)
        snprintf(problem, plen, "%s", n->err);
    else if (strcmp(v, "up") != 0)
        snprintf(problem, plen, "%s: replica with master_link_status:%s", n->addr, v);
}

/* The address of a replica of the node with id master_id, as node n's
 * CLUSTER NODES says ("" when none). */
static inline void ops_replica_of(ops_node *n, const char *master_id, char *out, size_t outlen) {
    redisReply *r = ops_cmd(n, "CLUSTER NODES");
    const char *line;
    out[0] = '\0';
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r) freeReplyObject(r);
        return;
    }
    for (line = r->str; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        char id[64], addr[128], flags[128], master[64];
        if (sscanf(line, "%63s %127s %127s %63s", id, addr, flags, master) != 4) continue;
        if (strstr(flags, "slave") && strcmp(master, master_id) == 0) {
            addr[strcspn(addr, "@")] = '\0';
            snprintf(out, outlen, "%.60s", addr);
            break;
        }
    }
    freeReplyObject(r);
}

/* Called between polls of a wait: the test's load keeps running. */
typedef void (*ops_idle_fn)(void *ud, int ms);

static inline void ops_idle(ops_idle_fn fn, void *ud, int ms) {
    if (fn) fn(ud, ms);
    else ops_sleep_ms(ms);
}

/* Waits until every node is settled and reports the same signature, equal to
 * want when want is not NULL. 0, or -1 after timeout_ms with problem saying
 * what was still wrong. */
static inline int ops_wait_settled(ops_cluster *cl, const char *want, int timeout_ms,
                                   ops_idle_fn idle, void *ud, char *problem, size_t plen) {
    uint64_t deadline = ops_now_ms() + (uint64_t)timeout_ms;
    static char sig0[OPS_SIG_MAX], sig[OPS_SIG_MAX];
    for (;;) {
        int i;
        problem[0] = '\0';
        for (i = 0; i < cl->n && !problem[0]; i++) {
            ops_node_problem(&cl->node[i], cl->n, problem, plen);
            if (problem[0]) break;
            if (ops_signature(cl, &cl->node[i], i == 0 ? sig0 : sig, OPS_SIG_MAX, NULL) != 0)
                snprintf(problem, plen, "%s", cl->node[i].err);
            else if (i > 0 && strcmp(sig, sig0) != 0)
                snprintf(problem, plen, "%s and %s disagree on the slots:\n  %.1500s\n  %.1500s",
                         cl->node[0].addr, cl->node[i].addr, sig0, sig);
        }
        if (!problem[0] && want && strcmp(sig0, want) != 0)
            snprintf(problem, plen, "slots not as expected:\n  now  %.1500s\n  want %.1500s", sig0,
                     want);
        if (!problem[0]) return 0;
        if (ops_now_ms() >= deadline) return -1;
        ops_idle(idle, ud, 20);
    }
}

#endif
