/*
 * cluster_ops.h — what the topology tests (ct_reshard.c, ct_failover.c) and
 * bench/chaos.c do to the harness's cluster behind the client's back: plain
 * hiredis connections to each node, the cluster's state read the way an
 * operator would (CLUSTER SLOTS, CLUSTER NODES, CLUSTER INFO, INFO
 * replication), waits that poll a condition until a deadline, slot
 * migration as redis-cli --cluster reshard does it, and a server's process
 * killed and started again from its redis.conf. One copy, cluster_ops.c,
 * compiled into each ct_* test (tests/CMakeLists.txt) and into bench/chaos
 * (bench/chaos.sh).
 *
 * A test that changes the topology must put it back: ops_signature() gives
 * one string for "who serves which slots, with which replicas" (node ids and
 * addresses), and ops_wait_settled() waits until every node reports the same
 * signature as before the test, cluster_state:ok, no node flagged or
 * disconnected, no slot migrating or importing and every replica's link up.
 *
 * Errors: a function that fails on a node says why in that node's err.
 */
#ifndef SG_CLUSTER_OPS_H
#define SG_CLUSTER_OPS_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slotgate.h"
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
uint64_t ops_now_ms(void);
void ops_sleep_ms(int ms);
/* Wall-clock time "HH:MM:SS.mmm" into buf (to match the servers' logs); buf. */
const char *ops_wall(char *buf, size_t n);

/* ---- one node ---------------------------------------------------------------- */

typedef struct ops_node {
    char addr[64]; /* "127.0.0.1:port" */
    char host[64];
    int port;
    char id[48]; /* CLUSTER MYID, once known */
    const char *pass; /* AUTH with it on connecting, when not NULL */
    int timeout_ms;   /* bound on connect and on each reply; 0: 1000 */
    redisContext *ctx;
    char err[256]; /* why the last call on the node failed */
} ops_node;

void ops_node_init(ops_node *n, const char *addr);
void ops_node_close(ops_node *n);

/* Runs a command on the node, (re)connecting (and authenticating) first when
 * needed. Returns the reply (caller frees it with freeReplyObject), or NULL
 * with n->err saying why; the connection is dropped then, and the next call
 * connects again. */
redisReply *ops_vcmd(ops_node *n, const char *fmt, va_list ap);
redisReply *ops_cmd(ops_node *n, const char *fmt, ...);
/* The same with an argv (binary-safe); NULL with n->err on failure. */
redisReply *ops_cmd_argv(ops_node *n, int argc, const char **argv, const size_t *argvlen);
/* A command that must answer with a status or string equal to want (e.g.
 * "OK"); 0 when it did, else -1 with n->err set. */
int ops_cmd_expect(ops_node *n, const char *want, const char *fmt, ...);

/* The value of "field:" in an INFO-style text ("" when absent). */
void ops_info_field(const char *text, const char *field, char *out, size_t outlen);
/* A field of INFO section on the node; 0, or -1 with n->err. */
int ops_info(ops_node *n, const char *section, const char *field, char *out, size_t outlen);
/* The value of CONFIG GET name on the node; 0, or -1 with n->err. */
int ops_config_get(ops_node *n, const char *name, char *out, size_t outlen);
/* Fills n->id from CLUSTER MYID; 0 or -1. */
int ops_node_id(ops_node *n);
/* "master" or "slave" (first element of ROLE), or "" when unreachable. */
void ops_role(ops_node *n, char *out, size_t outlen);

/* ---- the whole cluster -------------------------------------------------------- */

typedef struct ops_cluster {
    ops_node node[OPS_MAX_NODES];
    int n;
} ops_cluster;

/* Nodes from a comma-separated list of addresses (SG_TEST_CLUSTER). */
void ops_cluster_init(ops_cluster *cl, const char *csv);
void ops_cluster_close(ops_cluster *cl);
ops_node *ops_by_addr(ops_cluster *cl, const char *addr);

/* The node's CLUSTER SLOTS as one string: "lo-hi master(id@addr) replicas
 * (sorted)" per range, ranges in slot order. 0, or -1 with n->err. When
 * owner is not NULL, owner[slot] receives the index in cl of the slot's
 * master (-1: none or not one of cl's nodes). */
int ops_signature(ops_cluster *cl, ops_node *n, char *sig, size_t siglen, int *owner);
/* owner[slot] (as ops_signature) from the first node that answers; 0, or -1
 * when none did (the last node's err says why). */
int ops_slot_owners(ops_cluster *cl, int *owner);
/* The replica of master m in cl, as m's CLUSTER NODES says (m->id is read
 * first when unknown); NULL when it has none in cl. */
ops_node *ops_replica(ops_cluster *cl, ops_node *m);

/* Called between polls of a wait: the test's load keeps running. NULL:
 * sleeps. */
typedef void (*ops_idle_fn)(void *ud, int ms);

/* Waits until every node is settled and reports the same signature, equal to
 * want when want is not NULL. 0, or -1 after timeout_ms with problem saying
 * what was still wrong. */
int ops_wait_settled(ops_cluster *cl, const char *want, int timeout_ms, ops_idle_fn idle,
                     void *ud, char *problem, size_t plen);

/* ---- slot migration ------------------------------------------------------------ */

#define OPS_MIGRATE_BATCH_MAX 64
enum {
    OPS_MIGRATE_REPLACE = 1, /* MIGRATE ... REPLACE: the moved copy wins */
    OPS_MIGRATE_ASKING = 2   /* f imports the slot, not owns it: ASKING first */
};

/* MIGRATEs every key of slot from node f to node t, batch keys at a time (at
 * most OPS_MIGRATE_BATCH_MAX), adding the keys moved to *moved and calling
 * after_batch(ud) (when not NULL) after each batch. 0, or -1 with f->err
 * saying which step failed. */
int ops_migrate_keys(ops_node *f, ops_node *t, int slot, int batch, int flags,
                     void (*after_batch)(void *ud), void *ud, int *moved);

/* ---- a server's process ---------------------------------------------------------- */

/* The pid, config file and pidfile of node n (INFO server, CONFIG GET
 * pidfile); 0, or -1 with n->err. */
int ops_server_process(ops_node *n, long *pid, char *conf, size_t conflen, char *pidfile,
                       size_t pflen);
/* Alive and not a zombie. */
int ops_pid_alive(long pid);
/* Starts redis-server ($REDIS_SERVER) with its config file (it daemonizes;
 * its output goes to stdout.log next to the file). Returns its new pid from
 * its pidfile (one other than old_pid, alive), or 0 with err saying why. */
long ops_start_server(const char *conf, const char *pidfile, long old_pid, char *err,
                      size_t errlen);
/* Replaces the pid the harness recorded for a server (pid old) with pid
 * new_pid, so that `servers.sh stop` stops the restarted server. 1 when
 * replaced, 0 when the record could not be found or rewritten, -1 when
 * SG_TEST_STATE is unset (nothing to update). */
int ops_update_harness_pid(long old, long new_pid);

/* ---- a client of the cluster ----------------------------------------------------- */

/* A blocking client of SG_TEST_CLUSTER made from TYK_GW_STORAGE_* settings,
 * as Tyk makes its storage, and connected; a failure is a test failure and
 * ends the test binary. */
sg_client *ops_client(void);

#endif
