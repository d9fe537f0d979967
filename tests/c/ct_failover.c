/*
 * ct_failover.c — failover under load, against the harness's 6-node cluster
 * (SG_TEST_CLUSTER; cluster-node-timeout 2000 ms).
 *
 * A blocking client writes without pause: SET f:<k> <n>, k = n mod NK, n one
 * more each write, over keys on all three masters. Every write's outcome is
 * kept (acknowledged, unknown, failed), so the values read back at the end
 * can be judged: a key must hold a value that was written to it, whose write
 * was acknowledged or had an unknown outcome (never one that failed for sure),
 * and no older than its floor: the last write that must have survived.
 *
 * (a) graceful: CLUSTER FAILOVER on the replica of the master of slot 0, under
 *     load. The replica must be promoted (its ROLE says master and a third
 *     master names it for slot 0) and a write to that master's keys must
 *     succeed within 3 s of the promotion; no acknowledged write may be lost
 *     (the floor is every acknowledged write). Then CLUSTER FAILOVER on the
 *     old master fails back, with the same demands, and the cluster must be
 *     as it was.
 *
 * (b) hard: SIGKILL the same master (its pid from INFO server) under load.
 *     The client must write to its keys again within 10 s of the kill and
 *     5 s of the replica's promotion. Durability: Redis replicates
 *     asynchronously, so a write the master acknowledged but had not yet
 *     sent to its replica may be lost when it dies; what Redis guarantees is
 *     that a write confirmed by WAIT 1 was received by a replica. WAIT counts
 *     the writes of the connection that sends it; sent through the client it
 *     runs on whichever connection of each master is free (the engine sends
 *     it to every master), not necessarily the one that carried the writes.
 *     So the test confirms replication with a probe on a direct connection
 *     to the master: SET of a probe key there, then WAIT 1 500. The
 *     replication stream is in order, so a WAIT that succeeds covers every
 *     write the master had acknowledged before the probe. Those writes form
 *     the floor of the master's keys: each must be readable after the kill
 *     (acknowledged writes after the last probe may be lost, and are
 *     counted). Writes that succeed after the kill went to the promoted
 *     replica, which does not fail: they are in the floor too. The killed
 *     server is then started again from its own redis.conf (it rejoins as a
 *     replica of the promoted one) and failed back with CLUSTER FAILOVER, and
 *     the cluster must be as it was. The harness's pid record is updated for
 *     the new process.
 *
 * A node that won an election cannot start another for 4 × cluster-node-
 * timeout (Redis's auth retry time): before each failover the test waits,
 * under load, until the node to be promoted is past that, so that the
 * measured times are the cluster's usual ones. Elections before the test
 * began are not known; a manual failover that stalls on one is sent again.
 *
 * In both, errors the caller sees while the master is away are printed and
 * counted by kind; each must carry one of the expected codes (SG_ECONNECT,
 * SG_EUNKNOWN, SG_ECLUSTERDOWN, SG_ETIMEOUT, SG_ECLOSED, SG_EIO) and a message
 * naming the node; an error reply from Redis must be a transient cluster
 * error (CLUSTERDOWN, TRYAGAIN, MASTERDOWN, LOADING). Every wait polls a
 * condition against a deadline, the load running meanwhile.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "cluster_ops.h"
#include "slotgate.h"
#include "test.h"

#define NK 300             /* keys f:0 .. f:299 */
#define MAXW (8u << 20)    /* writes, at most */
#define MAX_SHOWN 40

enum { W_NONE = 0, W_ACK, W_UNKNOWN, W_FAIL };

/* Wall-clock time "HH:MM:SS.mmm", to match the servers' logs. */
static const char *wall(void) {
    static char buf[16];
    return ops_wall(buf, sizeof buf);
}

/* ---- the load ------------------------------------------------------------------ */

typedef struct phase_stats {
    uint64_t writes, acks;
    uint64_t by_code[32]; /* failures by -code */
    uint64_t unknown;
    uint64_t error_replies;
    uint64_t victim_fail_first, victim_ok_last; /* ms */
    uint64_t victim_max_gap;                      /* between acknowledged victim writes */
    uint64_t max_call_ms;
} phase_stats;

typedef struct load {
    sg_client *c;
    unsigned char *outcome;      /* per write number */
    unsigned long long n;        /* next write number */
    long long acked[NK], floor_[NK];
    int victim_key[NK];          /* served by the victim master at the start */
    int hold_floor;              /* victim acks do not raise the floor (b) */
    uint64_t last_ok_victim;     /* ms, completion of the last acked victim write */
    phase_stats ph;
    /* the durability probe (b) */
    ops_node *probe_node;
    char probe_key[32];
    uint64_t probe_every_ms, next_probe;
    uint64_t probes_ok, probes_failed;
    /* errors shown, distinct */
    char shown[MAX_SHOWN][200];
    int nshown;
    int bad;                     /* unexpected outcomes */
} load;

static load L;

static int expected_code(int code) {
    return code == SG_ECONNECT || code == SG_EUNKNOWN || code == SG_ECLUSTERDOWN ||
           code == SG_ETIMEOUT || code == SG_ECLOSED || code == SG_EIO;
}

static int transient_reply(const char *s) {
    return strncmp(s, "CLUSTERDOWN", 11) == 0 || strncmp(s, "TRYAGAIN", 8) == 0 ||
           strncmp(s, "MASTERDOWN", 10) == 0 || strncmp(s, "LOADING", 7) == 0;
}

/* Prints an error the first time its text (numbers aside) is seen. */
static void show_error(load *ld, const char *kind, const char *msg) {
    char shape[200];
    size_t i, o = 0;
    int k;
    for (i = 0; msg[i] && o + 1 < sizeof shape; i++)
        if (msg[i] < '0' || msg[i] > '9') shape[o++] = msg[i];
    shape[o] = '\0';
    for (k = 0; k < ld->nshown; k++)
        if (strcmp(ld->shown[k], shape) == 0) return;
    if (ld->nshown < MAX_SHOWN) snprintf(ld->shown[ld->nshown++], sizeof shape, "%s", shape);
    printf("    [%s] error: %s: %s\n", wall(), kind, msg);
}

static void key_of(int k, char *out, size_t n) { snprintf(out, n, "f:%d", k); }

static void write_one(load *ld) {
    int k = (int)(ld->n % NK);
    char key[32], val[32];
    uint64_t t0, t1;
    sg_reply *r;
    unsigned char out;
    if (ld->n >= MAXW) return;
    key_of(k, key, sizeof key);
    snprintf(val, sizeof val, "%llu", ld->n);
    t0 = ops_now_ms();
    r = sg_client_call(ld->c, "SET %s %s", key, val);
    t1 = ops_now_ms();
    ld->ph.writes++;
    if (t1 - t0 > ld->ph.max_call_ms) ld->ph.max_call_ms = t1 - t0;
    if (r != NULL && r->type == SG_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
        out = W_ACK;
        ld->ph.acks++;
        ld->acked[k] = (long long)ld->n;
        if (!(ld->victim_key[k] && ld->hold_floor)) ld->floor_[k] = (long long)ld->n;
        if (ld->victim_key[k]) {
            if (ld->last_ok_victim && t1 - ld->last_ok_victim > ld->ph.victim_max_gap)
                ld->ph.victim_max_gap = t1 - ld->last_ok_victim;
            ld->last_ok_victim = t1;
            ld->ph.victim_ok_last = t1;
        }
    } else if (r != NULL && r->type == SG_REPLY_ERROR) {
        out = W_FAIL;
        ld->ph.error_replies++;
        show_error(ld, "error reply", r->str);
        if (!transient_reply(r->str) && ++ld->bad <= MAX_SHOWN) {
            OPS_SHOW("SET %s: unexpected error reply: %s", key, r->str);
        }
    } else if (r != NULL) {
        out = W_FAIL;
        if (++ld->bad <= MAX_SHOWN) OPS_SHOW("SET %s: unexpected reply of type %d", key, r->type);
    } else {
        int code = sg_errcode(ld->c);
        const char *msg = sg_errmsg(ld->c);
        char kind[64];
        out = code == SG_EUNKNOWN ? W_UNKNOWN : W_FAIL;
        if (code == SG_EUNKNOWN) ld->ph.unknown++;
        if (code < 0 && -code < 32) ld->ph.by_code[-code]++;
        snprintf(kind, sizeof kind, "SG_%s", sg_errname(code));
        show_error(ld, kind, msg);
        if ((!expected_code(code) || strstr(msg, "node") == NULL) && ++ld->bad <= MAX_SHOWN) {
            OPS_SHOW("SET %s failed with an unexpected code or an unclear message: %s: %s",
                       key, kind, msg);
        }
    }
    if (out != W_ACK && ld->victim_key[k] && ld->ph.victim_fail_first == 0)
        ld->ph.victim_fail_first = t1;
    ld->outcome[ld->n++] = out;
    sg_reply_free(r);
}

/* The probe of (b): every write the victim acknowledged so far is on its
 * replica once WAIT 1 says so. */
static void probe(load *ld) {
    long long snap[NK];
    redisReply *r;
    int k;
    memcpy(snap, ld->acked, sizeof snap);
    r = ops_cmd(ld->probe_node, "SET %s x", ld->probe_key);
    if (r == NULL || r->type != REDIS_REPLY_STATUS) {
        ld->probes_failed++;
        if (r) freeReplyObject(r);
        return;
    }
    freeReplyObject(r);
    r = ops_cmd(ld->probe_node, "WAIT 1 500");
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1) {
        ld->probes_ok++;
        for (k = 0; k < NK; k++)
            if (ld->victim_key[k] && snap[k] > ld->floor_[k]) ld->floor_[k] = snap[k];
    } else {
        ld->probes_failed++;
    }
    if (r) freeReplyObject(r);
}

/* Writes for ms milliseconds (one write at least); the idle function of the
 * waits. */
static void run_load(void *ud, int ms) {
    load *ld = ud;
    uint64_t until = ops_now_ms() + (uint64_t)ms;
    do {
        write_one(ld);
        if (ld->probe_every_ms && ops_now_ms() >= ld->next_probe) {
            probe(ld);
            ld->next_probe = ops_now_ms() + ld->probe_every_ms;
        }
    } while (ops_now_ms() < until);
}

static void print_phase(const char *name, load *ld) {
    phase_stats *p = &ld->ph;
    int i;
    printf("  %s: %llu writes, %llu acknowledged, %llu error replies, %llu unknown outcome, "
           "longest call %llu ms, longest gap between acknowledged writes to the master's "
           "keys %llu ms\n",
           name, (unsigned long long)p->writes, (unsigned long long)p->acks,
           (unsigned long long)p->error_replies, (unsigned long long)p->unknown,
           (unsigned long long)p->max_call_ms, (unsigned long long)p->victim_max_gap);
    for (i = 1; i < 32; i++)
        if (p->by_code[i])
            printf("    failures SG_%s: %llu\n", sg_errname(-i), (unsigned long long)p->by_code[i]);
}

static void reset_phase(load *ld) { memset(&ld->ph, 0, sizeof ld->ph); }

/* Reads every key back, through the client and directly from the master that
 * serves it, and judges it against the outcomes and floors. */
static void verify(load *ld, ops_cluster *cl, const char *when) {
    static int owner[16384];
    int k, lost = 0, unknown_applied = 0, wrong = 0;
    if (ops_slot_owners(cl, owner) != 0) {
        TEST_FAIL_("%s: no node gives the slot map: %s", when, cl->node[cl->n - 1].err);
        return;
    }
    for (k = 0; k < NK; k++) {
        char key[32];
        sg_reply *r;
        redisReply *d;
        unsigned long long v;
        char *end;
        int s;
        key_of(k, key, sizeof key);
        r = sg_client_call(ld->c, "GET %s", key);
        if (r == NULL || r->type != SG_REPLY_STRING) {
            if (++wrong <= 10)
                OPS_SHOW("%s: GET %s: %s", when, key,
                           r ? (r->type == SG_REPLY_NIL ? "(nil)" : r->str) : sg_errmsg(ld->c));
            sg_reply_free(r);
            continue;
        }
        v = strtoull(r->str, &end, 10);
        s = (int)sg_keyslot(key, strlen(key));
        d = owner[s] >= 0 ? ops_cmd(&cl->node[owner[s]], "GET %s", key) : NULL;
        if (d == NULL || d->type != REDIS_REPLY_STRING || strcmp(d->str, r->str) != 0) {
            if (++wrong <= 10)
                OPS_SHOW("%s: %s is \"%s\" through the client, %s%s%s on its master", when,
                           key, r->str, d && d->str ? "\"" : "",
                           d ? (d->str ? d->str : "(nil)") : "unreadable",
                           d && d->str ? "\"" : "");
        } else if (*end || v >= ld->n || v % NK != (unsigned long long)k) {
            if (++wrong <= 10)
                OPS_SHOW("%s: %s holds \"%s\", never written to it", when, key, r->str);
        } else if (ld->outcome[v] == W_FAIL) {
            if (++wrong <= 10)
                OPS_SHOW("%s: %s holds write %llu, which the client reported as not done",
                           when, key, v);
        } else if ((long long)v < ld->floor_[k]) {
            if (++wrong <= 10)
                OPS_SHOW("%s: %s holds write %llu; write %lld was acknowledged%s and is lost",
                           when, key, v, ld->floor_[k],
                           ld->victim_key[k] && ld->hold_floor ? " and replicated" : "");
        } else {
            if ((long long)v < ld->acked[k]) lost++;
            if (ld->outcome[v] == W_UNKNOWN) unknown_applied++;
        }
        if (d) freeReplyObject(d);
        sg_reply_free(r);
    }
    printf("  %s: %d keys read back; %d lost an acknowledged write that was not confirmed "
           "replicated; %d hold a write whose outcome was unknown; %d wrong\n",
           when, NK, lost, unknown_applied, wrong);
    CHECK_INT(wrong, 0);
}

/* ---- helpers ----------------------------------------------------------------------- */

/* The moment a node becomes master in the cluster's eyes: its ROLE says
 * master and a third master (the observer, in neither role) names it as
 * the master of the victim's first slot. ROLE alone is not enough: a
 * replica can call itself master with votes left from an earlier election
 * and no new epoch (Redis 7.0 logs "Failover election won" without
 * "Starting a failover election"), and the cluster then keeps the old
 * master. Polled every 5 ms from a thread of its own: the client's calls
 * block the main thread, and the moment should be exact. */
typedef struct watch {
    char addr[64];
    atomic_ullong seen; /* ms when first seen */
    atomic_int stop;
    pthread_t th;
} watch;

static char observer_addr[64];
static int victim_slot;

static void *watch_main(void *arg) {
    watch *w = arg;
    ops_node n, obs;
    char role[32];
    ops_node_init(&n, w->addr);
    ops_node_init(&obs, observer_addr);
    while (!atomic_load(&w->stop)) {
        ops_role(&n, role, sizeof role);
        if (strcmp(role, "master") == 0) {
            redisReply *r = ops_cmd(&obs, "CLUSTER SLOTS");
            size_t i;
            int owns = 0;
            for (i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                redisReply *e = r->element[i], *m = e->element[2];
                char a[64];
                if (victim_slot < e->element[0]->integer || victim_slot > e->element[1]->integer)
                    continue;
                snprintf(a, sizeof a, "%s:%lld", m->element[0]->str, m->element[1]->integer);
                owns = strcmp(a, w->addr) == 0;
            }
            if (r) freeReplyObject(r);
            if (owns) {
                atomic_store(&w->seen, ops_now_ms());
                printf("  [%s] %s is master, and %s agrees\n", wall(), w->addr, observer_addr);
                break;
            }
        }
        ops_sleep_ms(5);
    }
    ops_node_close(&n);
    ops_node_close(&obs);
    return NULL;
}

static void watch_start(watch *w, const char *addr) {
    memset(w, 0, sizeof *w);
    snprintf(w->addr, sizeof w->addr, "%s", addr);
    if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
        TEST_FAIL_("cannot start a thread");
        exit(test_report());
    }
}

static void watch_stop(watch *w) {
    atomic_store(&w->stop, 1);
    pthread_join(w->th, NULL);
}

/* Runs the load until cond() holds or timeout_ms pass; 0 or -1. */
static int load_until(int (*cond)(void *), void *arg, int timeout_ms) {
    uint64_t deadline = ops_now_ms() + (uint64_t)timeout_ms;
    while (!cond(arg)) {
        if (ops_now_ms() >= deadline) return -1;
        run_load(&L, 10);
    }
    return 0;
}

static int seen(void *arg) { return atomic_load(&((watch *)arg)->seen) != 0; }

static int victim_ok_after(void *arg) { return L.last_ok_victim > *(uint64_t *)arg; }

/* ---- the cluster ------------------------------------------------------------------- */

static ops_cluster cl;
static char initial[OPS_SIG_MAX];
static ops_node *victim, *replica;
static long long node_timeout_ms = 2000;  /* cluster-node-timeout */
static uint64_t elected[OPS_MAX_NODES];   /* when each node last won an election */

static int time_reached(void *arg) { return ops_now_ms() >= *(uint64_t *)arg; }

/* A replica that won an election less than 4 × cluster-node-timeout ago (its
 * auth retry time) cannot start another: Redis logs "Failover attempt
 * expired", a manual failover times out, and an automatic one waits. Waits,
 * under load, until node n may be elected again. */
static void wait_electable(ops_node *n) {
    uint64_t t = elected[n - cl.node];
    if (t == 0) return;
    t += (uint64_t)(4 * node_timeout_ms + 500);
    if (ops_now_ms() < t) {
        printf("  waiting %llu ms: %s won an election %llu ms ago\n",
               (unsigned long long)(t - ops_now_ms()), n->addr,
               (unsigned long long)(ops_now_ms() - elected[n - cl.node]));
        load_until(time_reached, &t, (int)(t - ops_now_ms()) + 1000);
    }
}

/* CLUSTER FAILOVER on replica n, under load, until n is master: the command
 * is sent again when n refuses it (its master link still coming up) or when
 * the manual failover times out on the server (5 s, CLUSTER_MF_TIMEOUT).
 * Returns when n was seen as master (ms), or 0 after timeout_ms. */
static uint64_t failover(ops_node *n, int timeout_ms) {
    uint64_t deadline = ops_now_ms() + (uint64_t)timeout_ms, t;
    watch w;
    int sent = 0;
    wait_electable(n);
    watch_start(&w, n->addr);
    while (!seen(&w) && ops_now_ms() < deadline) {
        printf("  [%s] CLUSTER FAILOVER to %s\n", wall(), n->addr);
        if (ops_cmd_expect(n, "OK", "CLUSTER FAILOVER") != 0) {
            printf("  CLUSTER FAILOVER refused: %s\n", n->err);
            run_load(&L, 100);
            continue;
        }
        if (sent++) printf("  CLUSTER FAILOVER sent to %s again\n", n->addr);
        t = ops_now_ms() + 6000;
        while (!seen(&w) && ops_now_ms() < t && ops_now_ms() < deadline) run_load(&L, 10);
    }
    watch_stop(&w);
    t = atomic_load(&w.seen);
    if (t) elected[n - cl.node] = t;
    if (t == 0)
        TEST_FAIL_("%s was not master within %d ms of CLUSTER FAILOVER", n->addr, timeout_ms);
    return t;
}

static int settled(const char *want, int timeout_ms, const char *what) {
    char problem[4096];
    uint64_t t0 = ops_now_ms();
    if (ops_wait_settled(&cl, want, timeout_ms, run_load, &L, problem, sizeof problem) != 0) {
        TEST_FAIL_("%s: not settled after %d ms: %s", what, timeout_ms, problem);
        return -1;
    }
    printf("  %s: settled in %llu ms\n", what, (unsigned long long)(ops_now_ms() - t0));
    return 0;
}

/* ---- the tests ------------------------------------------------------------------ */

static void setup(void) {
    static int owner[16384];
    char problem[4096], buf[32];
    int k;
    ops_cluster_init(&cl, test_server_var("SG_TEST_CLUSTER"));
    if (ops_wait_settled(&cl, NULL, 20000, NULL, NULL, problem, sizeof problem) != 0) {
        TEST_FAIL_("the cluster is not settled before the test: %s", problem);
        exit(test_report());
    }
    CHECK_INT(ops_signature(&cl, &cl.node[0], initial, sizeof initial, owner), 0);
    /* the masters as they are now (an earlier test may have swapped roles):
     * the victim serves slot 0, the observer slot 16383 */
    if (owner[0] < 0 || owner[16383] < 0 || owner[0] == owner[16383]) {
        TEST_FAIL_("slots 0 and 16383 should be on two masters of SG_TEST_CLUSTER");
        exit(test_report());
    }
    victim = &cl.node[owner[0]];
    if (ops_config_get(victim, "cluster-node-timeout", buf, sizeof buf) == 0)
        node_timeout_ms = atoll(buf);
    if ((replica = ops_replica(&cl, victim)) == NULL) {
        TEST_FAIL_("master %s has no replica in SG_TEST_CLUSTER: %s", victim->addr, victim->err);
        exit(test_report());
    }
    snprintf(observer_addr, sizeof observer_addr, "%s", cl.node[owner[16383]].addr);
    victim_slot = 0;
    printf("master %s, its replica %s; %s watches slot %d\n", victim->addr, replica->addr,
           observer_addr, victim_slot);

    memset(&L, 0, sizeof L);
    L.outcome = calloc(MAXW, 1);
    L.c = ops_client();
    for (k = 0; k < NK; k++) {
        char key[32];
        key_of(k, key, sizeof key);
        L.victim_key[k] = owner[sg_keyslot(key, strlen(key))] == (int)(victim - cl.node);
        L.acked[k] = L.floor_[k] = -1;
    }
    /* every key written once, and acknowledged */
    for (k = 0; k < NK; k++) write_one(&L);
    for (k = 0; k < NK; k++) CHECK(L.acked[k] >= 0);
    /* the probe key: one on the victim's slots */
    for (k = 0;; k++) {
        snprintf(L.probe_key, sizeof L.probe_key, "probe:%d", k);
        if (owner[sg_keyslot(L.probe_key, strlen(L.probe_key))] == (int)(victim - cl.node)) break;
    }
    L.probe_node = victim;
}

/* CLUSTER FAILOVER on node to, under load: it must be master within 20 s,
 * and a write to the master's keys must succeed within 3 s of that. */
static void graceful(ops_node *to, const char *name) {
    uint64_t t0, t_promoted, t_served;
    reset_phase(&L);
    t0 = ops_now_ms();
    if ((t_promoted = failover(to, 20000)) == 0) return;
    if (load_until(victim_ok_after, &t_promoted, 3000) != 0)
        TEST_FAIL_("%s: no write to the master's keys succeeded within 3 s of the promotion",
                   name);
    t_served = L.last_ok_victim;
    run_load(&L, 500);
    printf("%s: %s master %llu ms after the first CLUSTER FAILOVER; a write to its keys "
           "succeeded %lld ms after that\n",
           name, to->addr, (unsigned long long)(t_promoted - t0),
           t_served > t_promoted ? (long long)(t_served - t_promoted) : -1LL);
    print_phase(name, &L);
    CHECK(t_served > t_promoted && t_served - t_promoted <= 3000);
}

static void test_graceful_failover(void) {
    run_load(&L, 500);
    graceful(replica, "graceful failover");
    /* and back, once the old master is a replica in sync */
    settled(NULL, 20000, "the old master follows the new one");
    graceful(victim, "graceful fail-back");
    settled(initial, 20000, "the cluster as it was");
    verify(&L, &cl, "after the graceful failover and back");
}

static void test_hard_failover(void) {
    char conf[1024], pidfile[1024], err[1200];
    long pid, new_pid = 0;
    watch w;
    uint64_t t_kill, t_dead, t_promoted, t_served;

    if (ops_server_process(victim, &pid, conf, sizeof conf, pidfile, sizeof pidfile) != 0) {
        TEST_FAIL_("cannot tell %s's process: %s", victim->addr, victim->err);
        return;
    }
    {
        char role[32], sig[OPS_SIG_MAX];
        ops_role(victim, role, sizeof role);
        if (strcmp(role, "master") != 0 || ops_signature(&cl, victim, sig, sizeof sig, NULL) != 0 ||
            strcmp(sig, initial) != 0) {
            TEST_FAIL_("%s is not the master it was at the start (role \"%s\"): not killing it",
                       victim->addr, role);
            return;
        }
    }

    /* load, with the victim's writes confirmed replicated every 100 ms */
    wait_electable(replica);
    reset_phase(&L);
    L.hold_floor = 1;
    L.probe_every_ms = 100;
    run_load(&L, 1000);
    L.probe_every_ms = 0;
    run_load(&L, 30); /* acknowledged, perhaps not yet replicated */
    printf("hard failover: %llu probes confirmed replication (%llu did not); "
           "killing %s (pid %ld)\n",
           (unsigned long long)L.probes_ok, (unsigned long long)L.probes_failed, victim->addr,
           pid);
    CHECK(L.probes_ok > 0);
    watch_start(&w, replica->addr);
    t_kill = ops_now_ms();
    CHECK_INT(kill((pid_t)pid, SIGKILL), 0);
    while (ops_pid_alive(pid) && ops_now_ms() - t_kill < 5000) ops_sleep_ms(1);
    t_dead = ops_now_ms();
    CHECK(!ops_pid_alive(pid));
    ops_node_close(victim);
    /* from now on, a write to the victim's keys that succeeds was done by
     * the promoted replica */
    L.hold_floor = 0;

    if (load_until(seen, &w, 20000) != 0)
        TEST_FAIL_("%s was not promoted within 20 s of the kill", replica->addr);
    watch_stop(&w);
    t_promoted = atomic_load(&w.seen);
    if (t_promoted) elected[replica - cl.node] = t_promoted;
    if (t_promoted && load_until(victim_ok_after, &t_dead, 10000) != 0)
        TEST_FAIL_("no write to the killed master's keys succeeded within 10 s after %s was "
                   "promoted", replica->addr);
    t_served = L.last_ok_victim > t_dead ? L.last_ok_victim : 0;
    print_phase("until served again", &L);
    printf("hard failover: %s promoted %llu ms after the kill; the killed master's keys served "
           "again %llu ms after the kill, %lld ms after the promotion\n",
           replica->addr, (unsigned long long)(t_promoted ? t_promoted - t_kill : 0),
           (unsigned long long)(t_served ? t_served - t_kill : 0),
           t_served && t_promoted ? (long long)t_served - (long long)t_promoted : -1LL);
    CHECK(t_served != 0 && t_served - t_kill <= 10000);
    CHECK(t_served != 0 && t_promoted != 0 && t_served <= t_promoted + 5000);
    /* steady again: a second of load without a failure */
    reset_phase(&L);
    run_load(&L, 1000);
    print_phase("a second after", &L);
    CHECK_INT(L.ph.writes - L.ph.acks, 0);
    verify(&L, &cl, "after the kill");

    /* the killed server again, as a replica, then master again */
    new_pid = ops_start_server(conf, pidfile, pid, err, sizeof err);
    if (new_pid <= 0) TEST_FAIL_("%s", err);
    if (new_pid > 0) {
        int recorded = ops_update_harness_pid(pid, new_pid);
        if (recorded < 0)
            printf("  SG_TEST_STATE unset: the restarted server (pid %ld) is not recorded\n",
                   new_pid);
        else
            CHECK_INT(recorded, 1);
        printf("  restarted %s from %s: pid %ld\n", victim->addr, conf, new_pid);
        if (settled(NULL, 30000, "the restarted server rejoins") == 0) {
            char role[32];
            ops_role(victim, role, sizeof role);
            CHECK_STR(role, "slave");
            graceful(victim, "fail-back after the restart");
        }
    }
    settled(initial, 20000, "the cluster as it was");
    verify(&L, &cl, "at the end");
}

int main(void) {
    uint64_t t0 = ops_now_ms(), t1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    setup();
    RUN(test_graceful_failover);
    t1 = ops_now_ms();
    printf("graceful failover and back: %llu ms\n", (unsigned long long)(t1 - t0));
    RUN(test_hard_failover);
    printf("hard failover, restart and fail-back: %llu ms\n",
           (unsigned long long)(ops_now_ms() - t1));
    CHECK_INT(L.bad, 0);
    sg_client_free(L.c);
    free(L.outcome);
    ops_cluster_close(&cl);
    return test_report();
}
