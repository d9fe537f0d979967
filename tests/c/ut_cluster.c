/*
 * ut_cluster.c — what cluster.c promises about timing and node choice, against
 * scripted fake nodes (fakenode.h), where a real cluster could not make it
 * happen on cue: the slot-map refresh is single-flight and spaced under a
 * burst of MOVEDs, the map is re-read periodically with no MOVED at all, a
 * connect to a node that never accepts times out naming the node and the
 * wait, and the "any" read policy spreads reads over a master and its
 * replica, falling back to the master when the replica cannot be reached.
 */
#include <event2/event.h>
#include <signal.h>
#include <unistd.h>

#include "fakenode.h"
#include "test.h"

/* cluster.c's constants, as the tests see them from outside */
#define REFRESH_MIN_MS 100     /* SG_REFRESH_MIN_MS: after a MOVED, twice that */
#define REFRESH_PERIOD_MS 10000 /* SG_REFRESH_PERIOD_MS, checked each 1 s tick */
#define SLOTS_DELAY_MS 300      /* how long the fake nodes hold a CLUSTER SLOTS reply */

/* ---- helpers ------------------------------------------------------------------------------ */

static int slot_of(const char *key) { return (int)sg_keyslot(key, strlen(key)); }

static int reply_is_str(const sg_reply *r, int type, const char *s) {
    return r && r->type == type && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

typedef struct outcome {
    int calls, status;
    sg_reply *reply;
} outcome;

static void on_outcome(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    outcome *o = ud;
    (void)c;
    (void)errmsg;
    if (o->calls++ > 0) {
        sg_reply_free(reply);
        return;
    }
    o->status = status;
    o->reply = reply;
}

/* Runs base until each of o[0..n) has its callback, at most timeout_ms. */
static int run_until_called(struct event_base *base, outcome *o, int n, int timeout_ms) {
    uint64_t end = fn_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int i, all = 1;
        for (i = 0; i < n; i++)
            if (o[i].calls == 0) all = 0;
        if (all) return 1;
        if (fn_now_ms() > end) return 0;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

/* Runs base for ms milliseconds. */
static void run_for(struct event_base *base, int ms) {
    uint64_t end = fn_now_ms() + (uint64_t)ms;
    while (fn_now_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

/* The times (monotonic ms) at which nodes[] received a CLUSTER command, merged in
 * order; returns how many (at most max). */
static int cluster_queries(fn_node *const *nodes, int nnodes, uint64_t *at, int max) {
    int n = 0, i, k, j;
    for (k = 0; k < nnodes; k++) {
        pthread_mutex_lock(&nodes[k]->mu);
        for (i = 0; i < nodes[k]->nlog && n < max; i++) {
            const fn_request *r = &nodes[k]->log[i];
            if (strcasecmp(r->argv[0], "CLUSTER") != 0) continue;
            for (j = n; j > 0 && at[j - 1] > r->at_ms; j--) at[j] = at[j - 1];
            at[j] = r->at_ms;
            n++;
        }
        pthread_mutex_unlock(&nodes[k]->mu);
    }
    return n;
}

/* A copy of the CLUSTER SLOTS reply node n gives (fn_cluster set it). */
static char *slots_reply_of(fn_node *n) {
    char *s;
    pthread_mutex_lock(&n->mu);
    s = fn_xdup_(n->slots_reply, n->slots_len);
    pthread_mutex_unlock(&n->mu);
    return s;
}

/* The stats of the node at addr (zeros when the client has no such node). */
static sg_node_stats stats_of(sg_client *c, const char *addr) {
    sg_node_stats st;
    int i;
    for (i = 0; i < sg_client_node_count(c); i++)
        if (sg_client_node_stats(c, i, &st) == SG_OK && strcmp(st.addr, addr) == 0) return st;
    memset(&st, 0, sizeof st);
    return st;
}

/* Every slot to master, with one replica, told by both. */
static void map_with_replica(fn_node *master, fn_node *replica) {
    fn_node *both[2] = {master, replica};
    char buf[512];
    int len = snprintf(buf, sizeof buf,
                       "*1\r\n*4\r\n:0\r\n:%d\r\n"
                       "*3\r\n$9\r\n127.0.0.1\r\n:%d\r\n$40\r\n%040d\r\n"
                       "*3\r\n$9\r\n127.0.0.1\r\n:%d\r\n$40\r\n%040d\r\n",
                       SG_SLOTS - 1, master->port, master->port, replica->port, replica->port);
    int i;
    for (i = 0; i < 2; i++) {
        pthread_mutex_lock(&both[i]->mu);
        free(both[i]->slots_reply);
        both[i]->slots_reply = fn_xdup_(buf, (size_t)len);
        both[i]->slots_len = (size_t)len;
        pthread_mutex_unlock(&both[i]->mu);
    }
}

/* ---- the refresh under a burst of MOVEDs ---------------------------------------------------- */

/* A and B both say every slot is A's; A answers each key of the burst MOVED to B.
 * So every key's first GET is a MOVED, each asking for a refresh, for 1.5 s, while
 * each CLUSTER SLOTS is held 300 ms. The refreshes must never overlap (one in
 * flight: each query after the previous reply) and must be spaced: after one
 * ends, the next (asked for by a MOVED) waits at least 2 x SG_REFRESH_MIN_MS. */
static void test_refresh_single_flight_and_spacing(void) {
    enum { KEYS = 150, EVERY_MS = 10 };
    struct event_base *base = event_base_new();
    fn_node *a = fn_start(), *b = fn_start(), *both[2];
    fn_range all;
    sg_client *c;
    outcome first, o[KEYS];
    char key[32], moved[64], *slots;
    uint64_t at[64], t0;
    int i, n, before, overlaps = 0, close = 0;
    both[0] = a;
    both[1] = b;
    all = (fn_range){.lo = 0, .hi = SG_SLOTS - 1, .master = a};
    fn_cluster(both, 2, &all, 1);
    memset(&first, 0, sizeof first);
    memset(o, 0, sizeof o);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    CHECK_INT(sg_client_send(c, on_outcome, &first, "GET warmup"), SG_OK);
    CHECK(run_until_called(base, &first, 1, 5000));
    CHECK_INT(first.status, SG_OK);
    sg_reply_free(first.reply);
    for (i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "burst:%d", i);
        snprintf(moved, sizeof moved, "-MOVED %d %s\r\n", slot_of(key), b->addr);
        fn_rule_add(a, (fn_spec){.cmd = "GET", .key = key, .reply = moved});
    }
    slots = slots_reply_of(a);
    fn_rule_add(a, (fn_spec){.cmd = "CLUSTER", .action = FN_DELAY, .delay_ms = SLOTS_DELAY_MS,
                             .reply = slots});
    fn_rule_add(b, (fn_spec){.cmd = "CLUSTER", .action = FN_DELAY, .delay_ms = SLOTS_DELAY_MS,
                             .reply = slots});
    free(slots);
    before = cluster_queries(both, 2, at, 64);
    t0 = fn_now_ms();
    for (i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "burst:%d", i);
        CHECK_INT(sg_client_send(c, on_outcome, &o[i], "GET %s", key), SG_OK);
        run_for(base, EVERY_MS);
    }
    CHECK(run_until_called(base, o, KEYS, 5000));
    for (i = 0; i < KEYS; i++) {
        CHECK_INT(o[i].status, SG_OK); /* each one answered by B, a nil */
        CHECK(o[i].reply && o[i].reply->type == SG_REPLY_NIL);
        sg_reply_free(o[i].reply);
    }
    n = cluster_queries(both, 2, at, 64);
    printf("  %d MOVEDs in %llu ms, %d slot-map queries\n", fn_count(a, "GET", NULL) - 1,
           (unsigned long long)(fn_now_ms() - t0), n - before);
    CHECK(fn_count(a, "GET", NULL) - 1 >= KEYS / 2);
    /* the burst did ask for refreshes, and not one per MOVED */
    CHECK(n - before >= 2);
    CHECK(n - before <= 1 + (int)(fn_now_ms() - t0) / (SLOTS_DELAY_MS + 2 * REFRESH_MIN_MS));
    for (i = before > 0 ? before : 1; i < n; i++) {
        /* the query before the burst's first (discovery's) was answered at once */
        uint64_t gap = at[i] - at[i - 1], held = i == before ? 0 : SLOTS_DELAY_MS;
        if (gap < held) overlaps++;
        else if (gap < held + 2 * REFRESH_MIN_MS - 10) close++;
        if (gap < held + 2 * REFRESH_MIN_MS - 10)
            printf("  queries %d and %d only %llu ms apart\n", i - 1, i,
                   (unsigned long long)gap);
    }
    CHECK_INT(overlaps, 0); /* single flight: never asked while one was in flight */
    CHECK_INT(close, 0);    /* spacing: never sooner than the minimum after one ended */
    CHECK(sg_client_refresh_count(c) >= 2);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
    fn_free(b);
}

/* ---- the periodic refresh ------------------------------------------------------------------ */

/* With no MOVED and no lost connection, the map is read again every
 * SG_REFRESH_PERIOD_MS (checked on a 1 s tick): not sooner, not much later. */
static void test_periodic_refresh(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    fn_range all = {.lo = 0, .hi = SG_SLOTS - 1, .master = a};
    sg_client *c;
    outcome first;
    uint64_t at[8], t0;
    int n;
    fn_cluster(&a, 1, &all, 1);
    memset(&first, 0, sizeof first);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    CHECK_INT(sg_client_send(c, on_outcome, &first, "GET k"), SG_OK);
    CHECK(run_until_called(base, &first, 1, 5000));
    sg_reply_free(first.reply);
    n = cluster_queries(&a, 1, at, 8);
    CHECK_INT(n, 1); /* discovery */
    t0 = at[0];
    /* idle, the loop running: wait for the next query, at most period + 3 s */
    while (cluster_queries(&a, 1, at, 8) < 2 && fn_now_ms() < t0 + REFRESH_PERIOD_MS + 3000)
        run_for(base, 50);
    n = cluster_queries(&a, 1, at, 8);
    CHECK_INT(n, 2);
    if (n >= 2) {
        printf("  re-read %llu ms after discovery\n", (unsigned long long)(at[1] - t0));
        CHECK(at[1] - t0 >= REFRESH_PERIOD_MS - 50);
        CHECK(at[1] - t0 <= REFRESH_PERIOD_MS + 2500);
    }
    CHECK_INT(fn_count(a, "GET", NULL), 1);
    /* its reply read and applied */
    t0 = fn_now_ms();
    while (sg_client_refresh_count(c) < 2 && fn_now_ms() < t0 + 2000) run_for(base, 10);
    CHECK_INT(sg_client_refresh_count(c), 2);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* ---- a connect that is never answered ------------------------------------------------------- */

/* A listening socket with a backlog of 0 that never accepts: once the connects below
 * fill its queue, Linux drops the SYNs of the next ones, which then never complete. */
static int full_listener(int *port, int *fillers, int max, int *nfillers) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), i;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 0) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    *port = ntohs(sa.sin_port);
    *nfillers = 0;
    for (i = 0; i < max; i++) {
        struct pollfd p;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) break;
        fillers[(*nfillers)++] = fd;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) continue;
        p.fd = fd;
        p.events = POLLOUT;
        p.revents = 0;
        if (poll(&p, 1, 200) == 0) break; /* this one hangs: the queue is full */
    }
    return lfd;
}

static void test_connect_timeout(void) {
    int fillers[16], nfillers = 0, port = 0, lfd, i;
    fn_node never;
    sg_client *c;
    sg_reply *r;
    uint64_t t0, took;
    char want[96];
    lfd = full_listener(&port, fillers, 16, &nfillers);
    CHECK(lfd >= 0);
    CHECK(nfillers < 16); /* one connect hung: the queue is full */
    memset(&never, 0, sizeof never);
    never.port = port;
    snprintf(never.addr, sizeof never.addr, "127.0.0.1:%d", port);
    /* one node, timeout 1 s */
    c = fn_client(&never, 0, NULL, NULL);
    t0 = fn_now_ms();
    r = sg_client_call(c, "GET k");
    took = fn_now_ms() - t0;
    CHECK(r == NULL);
    sg_reply_free(r);
    printf("  single, GET: %s: %s (%llu ms)\n", sg_errname(sg_errcode(c)), sg_errmsg(c),
           (unsigned long long)took);
    CHECK_INT(sg_errcode(c), SG_ETIMEOUT);
    snprintf(want, sizeof want, "cannot connect to node %s: no answer within 1000 ms", never.addr);
    CHECK_CONTAINS(sg_errmsg(c), want);
    CHECK(took >= 900 && took < 5000);
    sg_client_free(c);
    /* a cluster seed that never answers: discovery fails the same way */
    c = fn_client(&never, 1, NULL, NULL);
    t0 = fn_now_ms();
    CHECK(sg_client_connect(c) != SG_OK);
    took = fn_now_ms() - t0;
    printf("  cluster, connect: %s (%llu ms)\n", sg_errmsg(c), (unsigned long long)took);
    CHECK_CONTAINS(sg_errmsg(c), never.addr);
    CHECK_CONTAINS(sg_errmsg(c), "no answer within 1000 ms");
    CHECK(took >= 900 && took < 10000);
    sg_client_free(c);
    for (i = 0; i < nfillers; i++) close(fillers[i]);
    close(lfd);
}

/* ---- the "any" read policy ------------------------------------------------------------------ */

/* Reads go to the master and its replica in turn; with the replica gone, every read
 * is still answered, by the master. Writes never go to the replica. */
static void test_read_any_and_fallback(void) {
    fn_node *m = fn_start(), *rep = fn_start();
    sg_client *c;
    sg_reply *r;
    sg_node_stats rep_before, rep_after;
    char rep_addr[32];
    uint64_t t0;
    int i, from_m = 0, from_r = 0, failed = 0, m_gets;
    map_with_replica(m, rep);
    fn_set(m, "k", "from-master");
    fn_set(rep, "k", "from-replica");
    c = fn_client(m, 1, NULL, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    CHECK_INT(sg_client_set_read_policy(c, SG_READ_ANY), SG_READ_MASTER);
    for (i = 0; i < 20; i++) {
        r = sg_client_call(c, "GET k");
        if (reply_is_str(r, SG_REPLY_STRING, "from-master")) from_m++;
        else if (reply_is_str(r, SG_REPLY_STRING, "from-replica")) from_r++;
        else failed++;
        sg_reply_free(r);
    }
    printf("  any: %d reads from the master, %d from the replica\n", from_m, from_r);
    CHECK_INT(failed, 0);
    CHECK(from_m >= 5 && from_r >= 5); /* in turn, both serve */
    CHECK(fn_count(rep, "READONLY", NULL) >= 1);
    r = sg_client_call(c, "SET w 1"); /* a write: the master's */
    CHECK(reply_is_str(r, SG_REPLY_STATUS, "OK"));
    sg_reply_free(r);
    CHECK_INT(fn_count(rep, "SET", NULL), 0);
    /* the replica goes away: its connections close, connects are refused */
    snprintf(rep_addr, sizeof rep_addr, "%s", rep->addr);
    fn_free(rep);
    m_gets = fn_count(m, "GET", "k");
    rep_before = stats_of(c, rep_addr);
    from_m = from_r = failed = 0;
    t0 = fn_now_ms();
    for (i = 0; i < 20; i++) {
        r = sg_client_call(c, "GET k");
        if (reply_is_str(r, SG_REPLY_STRING, "from-master")) from_m++;
        else {
            failed++;
            printf("  read %d: %s\n", i, r ? "a wrong reply" : sg_errmsg(c));
        }
        sg_reply_free(r);
    }
    rep_after = stats_of(c, rep_addr);
    printf("  replica gone: 20 reads in %llu ms; replica: %llu commands, %llu errors, "
           "%llu connects\n",
           (unsigned long long)(fn_now_ms() - t0),
           (unsigned long long)(rep_after.commands - rep_before.commands),
           (unsigned long long)(rep_after.errors - rep_before.errors),
           (unsigned long long)(rep_after.connects - rep_before.connects));
    CHECK_INT(failed, 0);
    CHECK_INT(from_m, 20);
    /* straight to the master: the replica, refusing, is in its connect backoff and
       not tried for each read (a read that tries it first waits for a retry) */
    CHECK(rep_after.errors - rep_before.errors <= 8);
    CHECK_INT(fn_count(m, "GET", "k") - m_gets, 20);
    sg_client_free(c);
    fn_free(m);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, fn_on_alarm);
    signal(SIGPIPE, SIG_IGN);
    FN_RUN_T(test_connect_timeout);
    FN_RUN_T(test_read_any_and_fallback);
    FN_RUN_T(test_refresh_single_flight_and_spacing);
    FN_RUN_T(test_periodic_refresh);
    return test_report();
}
