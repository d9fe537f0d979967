/*
 * ut_fakenode.c — the engine's redirect, retry, timeout and failure paths,
 * made deterministic by scripted fake nodes (fakenode.h): MOVED in the middle
 * of a pipeline, ASK, redirect loops, TRYAGAIN/CLUSTERDOWN/LOADING, a node
 * that stalls, a connection dropped with reads and writes in flight, a node
 * that is gone, a refused password, garbage replies, and the async API's
 * promises (callbacks from the loop only; exactly once, SG_ECLOSED on free).
 *
 * The client's timeout is 1 s (TYK_GW_STORAGE_TIMEOUT=1). No test sleeps: each
 * waits for an event (a reply, a callback, the fake node's log) with a bound.
 */
#include <event2/event.h>
#include <signal.h>
#include <unistd.h>

#include "fakenode.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* A key whose slot lies in [lo, hi], with the given prefix. */
static const char *key_in(const char *prefix, int lo, int hi, char *buf, size_t buflen) {
    int i;
    for (i = 0; i < 1000000; i++) {
        unsigned s;
        snprintf(buf, buflen, "%s%d", prefix, i);
        s = sg_keyslot(buf, strlen(buf));
        if ((int)s >= lo && (int)s <= hi) return buf;
    }
    abort();
}

static int slot_of(const char *key) { return (int)sg_keyslot(key, strlen(key)); }

/* Every slot to one node, told by every node of nodes[]. */
static void map_all_to(fn_node *master, fn_node *const *nodes, int n) {
    fn_range r = {0, SG_SLOTS - 1, master};
    fn_cluster(nodes, n, &r, 1);
}

/* One slot to other, the rest to master. */
static void map_slot_to(fn_node *master, int slot, fn_node *other, fn_node *const *nodes,
                        int n) {
    fn_range r[3];
    int k = 0;
    if (slot > 0) r[k++] = (fn_range){0, slot - 1, master};
    r[k++] = (fn_range){slot, slot, other};
    if (slot < SG_SLOTS - 1) r[k++] = (fn_range){slot + 1, SG_SLOTS - 1, master};
    fn_cluster(nodes, n, r, k);
}

/* The redirection tests' start: A serves every slot and B none, as both
 * say, and a cluster client has read that map from A. both gets {a, b}, for
 * the maps a test sets later. */
static sg_client *client_a_serves_all(fn_node *a, fn_node *b, fn_node *both[2]) {
    sg_client *c;
    both[0] = a;
    both[1] = b;
    map_all_to(a, both, 2);
    c = fn_client(a, 1, NULL, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    return c;
}

static int reply_is_str(const sg_reply *r, int type, const char *s) {
    return r && r->type == type && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

#define CHECK_REPLY(r, t, s)                                                                   \
    do {                                                                                       \
        const sg_reply *r_ = (r);                                                              \
        test_checks++;                                                                         \
        if (!reply_is_str(r_, (t), (s)))                                                       \
            TEST_FAIL_("%s: expected type %d \"%s\", got %s type %d \"%s\"", #r, (t), (s),    \
                       r_ ? "reply" : "NULL", r_ ? r_->type : -1,                              \
                       r_ && r_->str ? r_->str : "");                                          \
    } while (0)

/* The stats of the node at addr. */
static sg_node_stats stats_of(sg_client *c, const char *addr) {
    sg_node_stats st;
    int i;
    memset(&st, 0, sizeof st);
    for (i = 0; i < sg_client_node_count(c); i++)
        if (sg_client_node_stats(c, i, &st) == SG_OK && strcmp(st.addr, addr) == 0) return st;
    memset(&st, 0, sizeof st);
    return st;
}

/* ---- async outcomes -------------------------------------------------------------------------- */

static int in_send; /* set while inside sg_client_send* */
static int freed;   /* set once sg_client_free returned */

typedef struct outcome {
    int calls;
    int status;
    sg_reply *reply;
    char msg[512];
    uint64_t at;
    int during_send;
    int after_free;
} outcome;

static void on_outcome(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    outcome *o = ud;
    (void)c;
    o->calls++;
    if (in_send) o->during_send++;
    if (freed) o->after_free++;
    if (o->calls > 1) {
        sg_reply_free(reply); /* the check on calls reports it */
        return;
    }
    o->status = status;
    o->reply = reply;
    o->at = fn_now_ms();
    snprintf(o->msg, sizeof o->msg, "%s", errmsg ? errmsg : "");
}

static int send_async(sg_client *c, outcome *o, const char *fmt, const char *a1, const char *a2) {
    int rc;
    in_send = 1;
    rc = sg_client_send(c, on_outcome, o, fmt, a1, a2);
    in_send = 0;
    return rc;
}

/* Runs base until each of o[0..n) has its callback, at most timeout_ms
 * (the client's tick wakes the loop every second, so the bound holds). */
static int run_until_called(struct event_base *base, outcome *o, int n, int timeout_ms) {
    uint64_t end = fn_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int i, all = 1;
        for (i = 0; i < n; i++)
            if (o[i].calls == 0) all = 0;
        if (all) return 1;
        if (fn_now_ms() > end) return 0;
        event_base_loop(base, EVLOOP_ONCE);
    }
}

static void outcomes_free(outcome *o, int n) {
    int i;
    for (i = 0; i < n; i++) {
        sg_reply_free(o[i].reply);
        o[i].reply = NULL;
    }
}

/* ---- the fake node itself -------------------------------------------------------------------- */

static void test_fakenode_basics(void) {
    fn_node *a = fn_start();
    sg_client *c = fn_client(a, 0, NULL, NULL);
    sg_reply *r;
    char line[256];
    int rule;
    CHECK_INT(sg_errcode(c), SG_OK);
    fn_set(a, "seeded", "value");
    rule = fn_rule_add(a, (fn_spec){.cmd = "get", .key = "scripted", .times = 1,
                                    .reply = "$8\r\nscripted\r\n"});
    r = sg_client_call(c, "GET seeded");
    CHECK_REPLY(r, SG_REPLY_STRING, "value");
    sg_reply_free(r);
    r = sg_client_call(c, "GET scripted");
    CHECK_REPLY(r, SG_REPLY_STRING, "scripted");
    sg_reply_free(r);
    r = sg_client_call(c, "GET scripted"); /* the rule is used up */
    CHECK(r && r->type == SG_REPLY_NIL);
    sg_reply_free(r);
    r = sg_client_call(c, "SET %s %s", "k", "v");
    CHECK_REPLY(r, SG_REPLY_STATUS, "OK");
    sg_reply_free(r);
    r = sg_client_call(c, "GET k");
    CHECK_REPLY(r, SG_REPLY_STRING, "v");
    sg_reply_free(r);
    CHECK_INT(fn_rule_hits(a, rule), 1);
    CHECK_INT(fn_count(a, "GET", "scripted"), 2);
    CHECK_INT(fn_count(a, "GET", NULL), 4);
    CHECK_INT(fn_count(a, "SET", "k"), 1);
    CHECK_INT(fn_accepted(a), 1);
    fn_log_line(a, fn_log_find(a, 0, 0, "SET", NULL), line, sizeof line);
    CHECK_STR(line, "1:4 SET k v"); /* after the handshake's CLIENT ID */
    sg_client_free(c);
    CHECK_INT(fn_wait_count(a, 0, "GET", NULL, 4, 100), 4);
    fn_free(a);
}

/* ---- MOVED --------------------------------------------------------------------------------- */

/* 100 commands to A; those of one slot are answered MOVED to B. Every reply
 * comes back right and in order, the moved commands reach B once each, and
 * the map learns: the next command for the slot goes straight to B. */
static void test_moved_mid_pipeline(void) {
    fn_node *a = fn_start(), *b = fn_start(), *both[2];
    sg_client *c;
    sg_pipeline *p;
    char moved[64], key[64], val[64];
    int slot = slot_of("{moved}"), i, a_before, b_before;
    sg_node_stats st;
    c = client_a_serves_all(a, b, both);
    /* the slot moves to B; A now answers MOVED for it */
    map_slot_to(a, slot, b, both, 2);
    snprintf(moved, sizeof moved, "-MOVED %d %s\r\n", slot, b->addr);
    fn_rule_add(a, (fn_spec){.has_slot = 1, .slot = slot, .reply = moved});
    p = sg_pipeline_new(c);
    for (i = 0; i < 100; i++) {
        if (i % 10 == 3) { /* GET in the moved slot */
            snprintf(key, sizeof key, "{moved}:%d", i);
            snprintf(val, sizeof val, "B%d", i);
            fn_set(b, key, val);
            CHECK_INT(sg_pipeline_append(p, "GET %s", key), SG_OK);
        } else if (i % 10 == 7) { /* SET in the moved slot */
            snprintf(key, sizeof key, "{moved}:set:%d", i);
            CHECK_INT(sg_pipeline_append(p, "SET %s %d", key, i), SG_OK);
        } else {
            snprintf(key, sizeof key, "k:%d", i);
            snprintf(val, sizeof val, "A%d", i);
            fn_set(a, key, val);
            CHECK_INT(sg_pipeline_append(p, "GET %s", key), SG_OK);
        }
    }
    CHECK_INT(sg_pipeline_exec(p), SG_OK);
    CHECK_INT(sg_pipeline_count(p), 100);
    for (i = 0; i < 100; i++) {
        int status = -999;
        const char *msg = NULL;
        const sg_reply *r = sg_pipeline_reply(p, (size_t)i, &status, &msg);
        CHECK_INT(status, SG_OK);
        if (i % 10 == 3) snprintf(val, sizeof val, "B%d", i);
        else if (i % 10 == 7) snprintf(val, sizeof val, "OK");
        else snprintf(val, sizeof val, "A%d", i);
        CHECK_REPLY(r, i % 10 == 7 ? SG_REPLY_STATUS : SG_REPLY_STRING, val);
        if (i % 10 == 3 || i % 10 == 7) {
            if (i % 10 == 3) snprintf(key, sizeof key, "{moved}:%d", i);
            else snprintf(key, sizeof key, "{moved}:set:%d", i);
            CHECK_INT(fn_count(a, NULL, key), 1);
            CHECK_INT(fn_count(b, NULL, key), 1);
        } else {
            snprintf(key, sizeof key, "k:%d", i);
            CHECK_INT(fn_count(a, "GET", key), 1);
            CHECK_INT(fn_count(b, "GET", key), 0);
        }
    }
    /* the SETs landed on B, in B's store */
    {
        sg_reply *r = sg_client_call(c, "GET {moved}:set:17");
        CHECK_REPLY(r, SG_REPLY_STRING, "17");
        sg_reply_free(r);
    }
    st = stats_of(c, a->addr);
    CHECK_INT(st.moved, 20);
    /* the map was updated: straight to B, A not asked */
    a_before = fn_count(a, "GET", NULL);
    b_before = fn_count(b, "GET", "{moved}:3");
    {
        sg_reply *r = sg_client_call(c, "GET {moved}:3");
        CHECK_REPLY(r, SG_REPLY_STRING, "B3");
        sg_reply_free(r);
    }
    CHECK_INT(fn_count(b, "GET", "{moved}:3"), b_before + 1);
    CHECK_INT(fn_count(a, "GET", "{moved}:3"), 1);
    CHECK_INT(fn_count(a, "GET", NULL), a_before); /* A not asked */
    sg_pipeline_free(p);
    sg_client_free(c);
    fn_free(a);
    fn_free(b);
}

/* The MOVED itself updates the map: with every refresh refused after the
 * first, the second command for the slot still goes straight to B. And a
 * MOVED for one part of a split MGET: the parts merge in key order. */
static void test_moved_updates_map(void) {
    fn_node *a = fn_start(), *b = fn_start(), *both[2];
    sg_client *c;
    sg_reply *r;
    char moved[64];
    int slot = slot_of("x"), mget_a, mget_b;
    c = client_a_serves_all(a, b, both);
    fn_rule_add(a, (fn_spec){.cmd = "CLUSTER", .reply = "-ERR no map for you\r\n"});
    fn_rule_add(b, (fn_spec){.cmd = "CLUSTER", .reply = "-ERR no map for you\r\n"});
    snprintf(moved, sizeof moved, "-MOVED %d %s\r\n", slot, b->addr);
    fn_rule_add(a, (fn_spec){.has_slot = 1, .slot = slot, .reply = moved});
    fn_set(a, "y", "on-A");
    fn_set(b, "x", "on-B");
    r = sg_client_call(c, "GET x");
    CHECK_REPLY(r, SG_REPLY_STRING, "on-B");
    sg_reply_free(r);
    r = sg_client_call(c, "GET x");
    CHECK_REPLY(r, SG_REPLY_STRING, "on-B");
    sg_reply_free(r);
    CHECK_INT(fn_count(a, "GET", "x"), 1);
    CHECK_INT(fn_count(b, "GET", "x"), 2);
    /* MGET y x: split by slot, the part for x straight to B; then a fresh
     * client, whose MGET part for x is answered MOVED */
    r = sg_client_call(c, "MGET y x");
    CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 2);
    if (r && r->elements == 2) {
        CHECK_REPLY(r->element[0], SG_REPLY_STRING, "on-A");
        CHECK_REPLY(r->element[1], SG_REPLY_STRING, "on-B");
    }
    sg_reply_free(r);
    sg_client_free(c);
    fn_rules_clear(a);
    fn_rules_clear(b);
    fn_rule_add(a, (fn_spec){.has_slot = 1, .slot = slot, .reply = moved});
    c = fn_client(a, 1, NULL, NULL);
    mget_a = fn_count(a, "MGET", "x");
    mget_b = fn_count(b, "MGET", "x");
    r = sg_client_call(c, "MGET y x y");
    CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 3);
    if (r && r->elements == 3) {
        CHECK_REPLY(r->element[0], SG_REPLY_STRING, "on-A");
        CHECK_REPLY(r->element[1], SG_REPLY_STRING, "on-B");
        CHECK_REPLY(r->element[2], SG_REPLY_STRING, "on-A");
    }
    sg_reply_free(r);
    CHECK_INT(fn_count(a, "MGET", "x") - mget_a, 1);
    CHECK_INT(fn_count(b, "MGET", "x") - mget_b, 1);
    sg_client_free(c);
    fn_free(a);
    fn_free(b);
}

/* MOVED with the slot map left stale everywhere: the command still gets its
 * reply (from B), even though a refresh puts the slot back on A. */
static void test_moved_stale_map(void) {
    fn_node *a = fn_start(), *b = fn_start(), *both[2];
    sg_client *c;
    sg_reply *r;
    char moved[64];
    int slot = slot_of("x");
    c = client_a_serves_all(a, b, both);
    snprintf(moved, sizeof moved, "-MOVED %d %s\r\n", slot, b->addr);
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "x", .reply = moved});
    fn_set(b, "x", "on-B");
    r = sg_client_call(c, "GET x");
    CHECK_REPLY(r, SG_REPLY_STRING, "on-B");
    sg_reply_free(r);
    CHECK_INT(fn_count(b, "GET", "x"), 1);
    /* a MOVED without an address is not followed: the caller sees it */
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "noaddr", .reply = "-MOVED 42\r\n"});
    r = sg_client_call(c, "GET noaddr");
    CHECK_REPLY(r, SG_REPLY_ERROR, "MOVED 42");
    sg_reply_free(r);
    sg_client_free(c);
    fn_free(a);
    fn_free(b);
}

/* ---- ASK ------------------------------------------------------------------------------------- */

/* A answers ASK: the client sends ASKING then the command to B, on one
 * connection, once; the map is not updated (the next command goes to A). */
static void test_ask(void) {
    fn_node *a = fn_start(), *b = fn_start(), *both[2];
    sg_client *c;
    sg_reply *r;
    char ask[64], line[128];
    int slot = slot_of("k"), ia, ig, refreshes;
    c = client_a_serves_all(a, b, both);
    snprintf(ask, sizeof ask, "-ASK %d %s\r\n", slot, b->addr);
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "k", .times = 1, .reply = ask});
    fn_set(a, "k", "from-A");
    fn_set(b, "k", "from-B");
    refreshes = (int)sg_client_refresh_count(c);
    r = sg_client_call(c, "GET k");
    CHECK_REPLY(r, SG_REPLY_STRING, "from-B");
    sg_reply_free(r);
    CHECK_INT(fn_count(a, "GET", "k"), 1);
    CHECK_INT(fn_count(b, "GET", "k"), 1);
    CHECK_INT(fn_count(b, "ASKING", NULL), 1);
    /* ASKING right before the GET, on the same connection */
    ia = fn_log_find(b, 0, 0, "ASKING", NULL);
    ig = fn_log_find(b, 0, 0, "GET", "k");
    CHECK(ia >= 0 && ig >= 0);
    CHECK_INT(fn_log_conn(b, ig), fn_log_conn(b, ia));
    CHECK_INT(fn_log_index(b, ig), fn_log_index(b, ia) + 1);
    fn_log_line(b, ig, line, sizeof line);
    CHECK_CONTAINS(line, "GET k");
    CHECK_INT(stats_of(c, a->addr).ask, 1);
    /* the map still says A */
    r = sg_client_call(c, "GET k");
    CHECK_REPLY(r, SG_REPLY_STRING, "from-A");
    sg_reply_free(r);
    CHECK_INT(fn_count(a, "GET", "k"), 2);
    CHECK_INT(fn_count(b, "GET", "k"), 1);
    CHECK_INT(fn_count(b, "ASKING", NULL), 1);
    CHECK_INT(sg_client_refresh_count(c), refreshes); /* ASK asks for no refresh */
    sg_client_free(c);
    fn_free(a);
    fn_free(b);
}

/* ---- redirect loops -------------------------------------------------------------------------- */

static void check_redirect_loop(sg_client *c, fn_node *a, fn_node *b, const char *key,
                                int expected_sends) {
    int before = fn_count(a, "GET", key) + fn_count(b, "GET", key);
    char slotword[32];
    sg_reply *r = sg_client_call(c, "GET %s", key);
    const char *msg = sg_errmsg(c);
    CHECK(r == NULL);
    sg_reply_free(r);
    CHECK_INT(sg_errcode(c), SG_EREDIRECT);
    snprintf(slotword, sizeof slotword, "slot %d", slot_of(key));
    CHECK_CONTAINS(msg, slotword);
    CHECK(strstr(msg, a->addr) != NULL || strstr(msg, b->addr) != NULL);
    if (strstr(msg, a->addr) == NULL && strstr(msg, b->addr) == NULL)
        fprintf(stderr, "  message: %s\n", msg);
    CHECK_INT(fn_count(a, "GET", key) + fn_count(b, "GET", key) - before, expected_sends);
}

/* A and B send each other the slot forever: SG_EREDIRECT naming the slot and
 * the node, after max_redirects + 1 sends (3 by default; then 1 and 0). */
static void test_too_many_redirects(void) {
    fn_node *a = fn_start(), *b = fn_start(), *both[2];
    sg_client *c;
    char to_a[64], to_b[64];
    int slot = slot_of("loop"), aslot = slot_of("askloop");
    c = client_a_serves_all(a, b, both);
    snprintf(to_b, sizeof to_b, "-MOVED %d %s\r\n", slot, b->addr);
    snprintf(to_a, sizeof to_a, "-MOVED %d %s\r\n", slot, a->addr);
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "loop", .reply = to_b});
    fn_rule_add(b, (fn_spec){.cmd = "GET", .key = "loop", .reply = to_a});
    check_redirect_loop(c, a, b, "loop", 4);
    CHECK_INT(sg_client_set_max_redirects(c, 1), 3);
    check_redirect_loop(c, a, b, "loop", 2);
    CHECK_INT(sg_client_set_max_redirects(c, 0), 1);
    check_redirect_loop(c, a, b, "loop", 1);
    CHECK_INT(sg_client_set_max_redirects(c, -1), 0); /* refused: stays 0 */
    CHECK_INT(sg_client_set_max_redirects(c, 3), 0);
    /* ASK ping-pong is bounded the same way */
    snprintf(to_b, sizeof to_b, "-ASK %d %s\r\n", aslot, b->addr);
    snprintf(to_a, sizeof to_a, "-ASK %d %s\r\n", aslot, a->addr);
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "askloop", .reply = to_b});
    fn_rule_add(b, (fn_spec){.cmd = "GET", .key = "askloop", .reply = to_a});
    check_redirect_loop(c, a, b, "askloop", 4);
    /* and the client still works */
    {
        sg_reply *r = sg_client_call(c, "PING");
        CHECK_REPLY(r, SG_REPLY_STATUS, "PONG");
        sg_reply_free(r);
    }
    sg_client_free(c);
    fn_free(a);
    fn_free(b);
}

/* ---- TRYAGAIN, CLUSTERDOWN, LOADING ---------------------------------------------------------- */

static const char *const transient[] = {
    "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
    "-CLUSTERDOWN The cluster is down\r\n",
    "-LOADING Redis is loading the dataset in memory\r\n", NULL};

/* Also retried: a failover in progress, a master that became a replica. */
static const char *const transient_more[] = {
    "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
    "-READONLY You can't write against a read only replica.\r\n", NULL};

/* Answered twice, then OK: the caller sees only the OK. */
static void test_transient_then_ok(void) {
    fn_node *a = fn_start();
    sg_client *c;
    int i;
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, NULL, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    for (i = 0; transient[i]; i++) {
        char key[32], skey[32];
        sg_reply *r;
        snprintf(key, sizeof key, "t%d", i);
        snprintf(skey, sizeof skey, "s%d", i);
        fn_set(a, key, "fine");
        fn_rule_add(a, (fn_spec){.cmd = "GET", .key = key, .times = 2, .reply = transient[i]});
        fn_rule_add(a, (fn_spec){.cmd = "SET", .key = skey, .times = 2, .reply = transient[i]});
        r = sg_client_call(c, "GET %s", key);
        CHECK_REPLY(r, SG_REPLY_STRING, "fine");
        sg_reply_free(r);
        CHECK_INT(fn_count(a, "GET", key), 3);
        /* the node refused the write: sending it again is safe */
        r = sg_client_call(c, "SET %s v", skey);
        CHECK_REPLY(r, SG_REPLY_STATUS, "OK");
        sg_reply_free(r);
        CHECK_INT(fn_count(a, "SET", skey), 3);
    }
    for (i = 0; transient_more[i]; i++) {
        char skey[32];
        sg_reply *r;
        snprintf(skey, sizeof skey, "m%d", i);
        fn_rule_add(a,
                    (fn_spec){.cmd = "SET", .key = skey, .times = 2, .reply = transient_more[i]});
        r = sg_client_call(c, "SET %s v", skey);
        CHECK_REPLY(r, SG_REPLY_STATUS, "OK");
        sg_reply_free(r);
        CHECK_INT(fn_count(a, "SET", skey), 3);
    }
    /* one part of a split MGET: retried alone, merged in key order */
    {
        char k1[32], k2[32];
        sg_reply *r;
        key_in("p", 0, 99, k1, sizeof k1);
        key_in("q", 10000, 10099, k2, sizeof k2);
        fn_set(a, k1, "one");
        fn_set(a, k2, "two");
        fn_rule_add(a, (fn_spec){.cmd = "MGET", .key = k2, .times = 2, .reply = transient[0]});
        r = sg_client_call(c, "MGET %s %s", k1, k2);
        CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 2);
        if (r && r->type == SG_REPLY_ARRAY && r->elements == 2) {
            CHECK_REPLY(r->element[0], SG_REPLY_STRING, "one");
            CHECK_REPLY(r->element[1], SG_REPLY_STRING, "two");
        } else if (r) {
            fprintf(stderr, "  MGET: type %d %s\n", r->type, r->str ? r->str : "");
        }
        sg_reply_free(r);
        CHECK_INT(fn_count(a, "MGET", k1), 1);
        CHECK_INT(fn_count(a, "MGET", k2), 3);
    }
    sg_client_free(c);
    fn_free(a);
}

/* A pipeline answered CLUSTERDOWN (a failover under way), then served: the
 * retried commands reach the node in the order they were sent, so each GET
 * reads the SET just before it. (Backoff timers that end together used to
 * fire in any order, and a new map sent the retries newest first.) */
static void test_transient_keeps_order(void) {
    enum { N = 40 };
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c;
    outcome o[2 * N];
    char key[N][32], val[N][32];
    int i, bad = 0;
    memset(o, 0, sizeof o);
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    for (i = 0; i < N; i++) {
        snprintf(key[i], sizeof key[i], "ord%d", i);
        snprintf(val[i], sizeof val[i], "v%d", i);
        fn_rule_add(a, (fn_spec){.cmd = "SET", .key = key[i], .times = 1, .reply = transient[1]});
        fn_rule_add(a, (fn_spec){.cmd = "GET", .key = key[i], .times = 1, .reply = transient[1]});
    }
    for (i = 0; i < N; i++) {
        CHECK_INT(send_async(c, &o[2 * i], "SET %s %s", key[i], val[i]), SG_OK);
        CHECK_INT(send_async(c, &o[2 * i + 1], "GET %s", key[i], NULL), SG_OK);
    }
    CHECK(run_until_called(base, o, 2 * N, 10000));
    for (i = 0; i < N; i++) {
        CHECK_REPLY(o[2 * i].reply, SG_REPLY_STATUS, "OK");
        if (!reply_is_str(o[2 * i + 1].reply, SG_REPLY_STRING, val[i]) && bad++ < 3)
            fprintf(stderr, "  GET %s right after its SET: %s\n", key[i],
                    o[2 * i + 1].reply == NULL ? o[2 * i + 1].msg
                    : o[2 * i + 1].reply->type == SG_REPLY_NIL ? "nil" : "another reply");
    }
    CHECK_INT(bad, 0);
    outcomes_free(o, 2 * N);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* Error replies node 0 of c has sent so far. */
static uint64_t node_errors(sg_client *c) {
    sg_node_stats st;
    memset(&st, 0, sizeof st);
    sg_client_node_stats(c, 0, &st);
    return st.errors;
}

/* Retried commands of one slot with different backoffs keep their order: a
 * SET refused twice (its next try after 100 ms) is not overtaken by a later
 * SET of the same key refused once (50 ms), nor by a GET sent while the
 * first waits. Both used to reach the node before the first SET, and the key
 * ended with the older value. */
static void test_transient_mixed_backoffs_keep_order(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c;
    outcome o[4];
    uint64_t end;
    memset(o, 0, sizeof o);
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    fn_rule_add(a, (fn_spec){.cmd = "SET", .key = "mix", .times = 3, .reply = transient[0]});
    CHECK_INT(send_async(c, &o[0], "SET mix %s", "old", NULL), SG_OK);
    /* until the client has read the second refusal: the SET is in its
     * 100 ms backoff */
    end = fn_now_ms() + 5000;
    while (node_errors(c) < 2 && fn_now_ms() < end) event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(node_errors(c), 2);
    CHECK_INT(o[0].calls, 0);
    CHECK_INT(send_async(c, &o[1], "SET mix %s", "new", NULL), SG_OK); /* refused once: 50 ms */
    CHECK_INT(send_async(c, &o[2], "GET mix", NULL, NULL), SG_OK);
    CHECK(run_until_called(base, o, 3, 10000));
    CHECK_REPLY(o[0].reply, SG_REPLY_STATUS, "OK");
    CHECK_REPLY(o[1].reply, SG_REPLY_STATUS, "OK");
    CHECK_REPLY(o[2].reply, SG_REPLY_STRING, "new");
    CHECK_INT(fn_count(a, "SET", "mix"), 5);
    CHECK_INT(send_async(c, &o[3], "GET mix", NULL, NULL), SG_OK);
    CHECK(run_until_called(base, o + 3, 1, 10000));
    CHECK_REPLY(o[3].reply, SG_REPLY_STRING, "new");
    if (!reply_is_str(o[3].reply, SG_REPLY_STRING, "new")) { /* what the node saw */
        int i;
        for (i = 0; i < fn_nlog(a); i++) {
            char line[200];
            fn_log_line(a, i, line, sizeof line);
            fprintf(stderr, "  %d conn %d: %s\n", i, fn_log_conn(a, i), line);
        }
    }
    outcomes_free(o, 4);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* Answered forever: each caller gets the error reply after a bounded number
 * of tries, in bounded time (the three run at once on an async client). */
static void test_transient_forever(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c;
    outcome o[3];
    uint64_t t0;
    int i;
    memset(o, 0, sizeof o);
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, base, NULL);
    for (i = 0; transient[i]; i++) {
        char key[32];
        snprintf(key, sizeof key, "f%d", i);
        fn_rule_add(a, (fn_spec){.cmd = "GET", .key = key, .reply = transient[i]});
    }
    t0 = fn_now_ms();
    for (i = 0; transient[i]; i++) {
        char key[32];
        snprintf(key, sizeof key, "f%d", i);
        CHECK_INT(send_async(c, &o[i], "GET %s", key, NULL), SG_OK);
    }
    CHECK(run_until_called(base, o, 3, 30000));
    for (i = 0; transient[i]; i++) {
        char key[32], word[32];
        int sends;
        snprintf(key, sizeof key, "f%d", i);
        snprintf(word, sizeof word, "%.*s", (int)strcspn(transient[i] + 1, " "), transient[i] + 1);
        CHECK_INT(o[i].calls, 1);
        CHECK_INT(o[i].status, SG_OK);
        CHECK(o[i].reply && o[i].reply->type == SG_REPLY_ERROR);
        if (o[i].reply && o[i].reply->str) CHECK_CONTAINS(o[i].reply->str, word);
        sends = fn_count(a, "GET", key);
        CHECK(sends >= 2 && sends <= 16);
        printf("  %s forever: %d sends, gave up after %llu ms\n", word, sends,
               (unsigned long long)(o[i].at - t0));
        CHECK(o[i].at - t0 < 10000);
    }
    outcomes_free(o, 3);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* ---- a node that stalls ---------------------------------------------------------------------- */

/* A stops answering: the command fails with SG_ETIMEOUT after about the
 * timeout, naming A; B answers meanwhile, and both work right after. */
static void test_stall(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start(), *b = fn_start(), *both[2];
    fn_range halves[2];
    sg_client *c;
    outcome o[4];
    char ka[32], kb[32], ka2[32];
    uint64_t t0;
    both[0] = a;
    both[1] = b;
    halves[0] = (fn_range){0, 8191, a};
    halves[1] = (fn_range){8192, SG_SLOTS - 1, b};
    fn_cluster(both, 2, halves, 2);
    key_in("a", 0, 8191, ka, sizeof ka);
    key_in("a2-", 0, 8191, ka2, sizeof ka2);
    key_in("b", 8192, SG_SLOTS - 1, kb, sizeof kb);
    fn_set(a, ka, "va");
    fn_set(a, ka2, "va2");
    fn_set(b, kb, "vb");
    memset(o, 0, sizeof o);
    c = fn_client(a, 1, base, NULL);
    /* learn the map first */
    CHECK_INT(send_async(c, &o[0], "GET %s", kb, NULL), SG_OK);
    CHECK(run_until_called(base, o, 1, 5000));
    CHECK_REPLY(o[0].reply, SG_REPLY_STRING, "vb");
    outcomes_free(o, 1);
    memset(o, 0, sizeof o);
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = ka, .action = FN_STALL, .times = 1});
    t0 = fn_now_ms();
    CHECK_INT(send_async(c, &o[0], "GET %s", ka, NULL), SG_OK);
    /* (the bytes may leave inside send: a blocking call writes at once) */
    CHECK_INT(send_async(c, &o[1], "GET %s", kb, NULL), SG_OK);
    CHECK(run_until_called(base, &o[1], 1, 5000));
    CHECK_REPLY(o[1].reply, SG_REPLY_STRING, "vb");
    CHECK(o[1].at - t0 < 500);
    CHECK_INT(o[0].calls, 0); /* A still silent */
    CHECK(run_until_called(base, o, 1, 5000));
    CHECK_INT(o[0].status, SG_ETIMEOUT);
    CHECK(o[0].reply == NULL);
    CHECK_CONTAINS(o[0].msg, a->addr);
    printf("  stalled: %s after %llu ms\n", o[0].msg, (unsigned long long)(o[0].at - t0));
    CHECK(o[0].at - t0 >= 900 && o[0].at - t0 < 3000);
    CHECK_INT(fn_count(a, "GET", ka), 1); /* a read, but a timeout is not retried */
    CHECK_INT(stats_of(c, a->addr).timeouts, 1);
    /* right after: both nodes answer (A on a new connection) */
    CHECK_INT(send_async(c, &o[2], "GET %s", ka2, NULL), SG_OK);
    CHECK_INT(send_async(c, &o[3], "GET %s", kb, NULL), SG_OK);
    CHECK(run_until_called(base, &o[2], 2, 5000));
    CHECK_REPLY(o[2].reply, SG_REPLY_STRING, "va2");
    CHECK_REPLY(o[3].reply, SG_REPLY_STRING, "vb");
    CHECK(o[3].at - t0 < 3000);
    /* a slow answer within the timeout is fine */
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = ka2, .action = FN_DELAY, .delay_ms = 300,
                             .reply = "$4\r\nslow\r\n", .times = 1});
    {
        outcome s;
        memset(&s, 0, sizeof s);
        t0 = fn_now_ms();
        CHECK_INT(send_async(c, &s, "GET %s", ka2, NULL), SG_OK);
        CHECK(run_until_called(base, &s, 1, 5000));
        CHECK_REPLY(s.reply, SG_REPLY_STRING, "slow");
        CHECK(s.at - t0 >= 250);
        outcomes_free(&s, 1);
    }
    outcomes_free(o, 4);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
    fn_free(b);
}

/* The same stall through the blocking API. */
static void test_stall_blocking(void) {
    fn_node *a = fn_start();
    sg_client *c = fn_client(a, 0, NULL, NULL);
    uint64_t t0;
    sg_reply *r;
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "slow", .action = FN_STALL, .times = 1});
    t0 = fn_now_ms();
    r = sg_client_call(c, "GET slow");
    CHECK(r == NULL);
    sg_reply_free(r);
    CHECK_INT(sg_errcode(c), SG_ETIMEOUT);
    CHECK_CONTAINS(sg_errmsg(c), a->addr);
    CHECK(fn_now_ms() - t0 >= 900 && fn_now_ms() - t0 < 3000);
    r = sg_client_call(c, "PING");
    CHECK_REPLY(r, SG_REPLY_STATUS, "PONG");
    sg_reply_free(r);
    sg_client_free(c);
    fn_free(a);
}

/* ---- a connection dropped with commands in flight -------------------------------------------- */

/* Twenty commands go out; A answers ten, then goes silent, reads the rest,
 * and closes the connection. The reads are sent again and succeed; the
 * writes fail with SG_EUNKNOWN and are never sent twice. */
static void test_drop_mid_pipeline(void) {
    fn_node *a = fn_start();
    sg_client *c;
    sg_pipeline *p;
    char key[32], val[32];
    int i;
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, NULL, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    p = sg_pipeline_new(c);
    for (i = 0; i < 20; i++) {
        if (i % 2 == 0) {
            snprintf(key, sizeof key, "g:%d", i);
            snprintf(val, sizeof val, "v%d", i);
            fn_set(a, key, val);
            sg_pipeline_append(p, "GET %s", key);
        } else {
            snprintf(key, sizeof key, "s:%d", i);
            sg_pipeline_append(p, "SET %s x", key);
        }
    }
    sg_pipeline_append(p, "GET last");
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "g:10", .action = FN_STALL, .times = 1});
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "last", .action = FN_CLOSE, .times = 1});
    CHECK_INT(sg_pipeline_exec(p), SG_OK);
    for (i = 0; i < 20; i++) {
        int status = -999;
        const char *msg = NULL;
        const sg_reply *r = sg_pipeline_reply(p, (size_t)i, &status, &msg);
        if (i % 2 == 0) {
            snprintf(key, sizeof key, "g:%d", i);
            snprintf(val, sizeof val, "v%d", i);
            CHECK_INT(status, SG_OK);
            CHECK_REPLY(r, SG_REPLY_STRING, val);
            CHECK_INT(fn_count(a, "GET", key), i < 10 ? 1 : 2);
        } else {
            snprintf(key, sizeof key, "s:%d", i);
            CHECK_INT(fn_count(a, "SET", key), 1); /* never twice */
            if (i < 10) {
                CHECK_INT(status, SG_OK);
                CHECK_REPLY(r, SG_REPLY_STATUS, "OK");
            } else {
                CHECK(r == NULL);
                CHECK_INT(status, SG_EUNKNOWN);
                CHECK_CONTAINS(msg, "unknown");
                CHECK_CONTAINS(msg, a->addr);
                if (i == 11) printf("  lost write: %s\n", msg ? msg : "(null)");
            }
        }
    }
    {
        int status = -999;
        const sg_reply *r = sg_pipeline_reply(p, 20, &status, NULL);
        CHECK_INT(status, SG_OK);
        CHECK(r && r->type == SG_REPLY_NIL);
    }
    CHECK(fn_accepted(a) >= 2);
    sg_pipeline_free(p);
    sg_client_free(c);
    fn_free(a);
}

/* The node dies in the middle of a reply: a read is sent again and gets its
 * whole reply; a write is not, and its outcome is unknown. */
static void test_drop_mid_reply(void) {
    fn_node *a = fn_start();
    sg_client *c = fn_client(a, 0, NULL, NULL);
    sg_reply *r;
    fn_set(a, "big", "0123456789");
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "big", .action = FN_CLOSE, .times = 1,
                             .reply = "$10\r\n01234"});
    fn_rule_add(a, (fn_spec){.cmd = "SET", .key = "w", .action = FN_CLOSE, .times = 1,
                             .reply = "+O"});
    r = sg_client_call(c, "GET big");
    CHECK_REPLY(r, SG_REPLY_STRING, "0123456789");
    sg_reply_free(r);
    CHECK_INT(fn_count(a, "GET", "big"), 2);
    r = sg_client_call(c, "SET w 1");
    CHECK(r == NULL);
    sg_reply_free(r);
    CHECK_INT(sg_errcode(c), SG_EUNKNOWN);
    CHECK_CONTAINS(sg_errmsg(c), a->addr);
    CHECK_INT(fn_count(a, "SET", "w"), 1);
    sg_client_free(c);
    fn_free(a);
}

/* One connection per node, held by a blocking command: the next command
 * waits for it at most the timeout, then fails with SG_EPOOL naming the node. */
static void test_pool_wait(void) {
    static const char *const one_conn[] = {"TYK_GW_STORAGE_MAXACTIVE=1", NULL};
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c = fn_client(a, 0, base, one_conn);
    outcome o[2];
    uint64_t t0;
    memset(o, 0, sizeof o);
    fn_rule_add(a, (fn_spec){.cmd = "BLPOP", .action = FN_STALL});
    t0 = fn_now_ms();
    CHECK_INT(send_async(c, &o[0], "BLPOP %s %s", "list", "0"), SG_OK);
    CHECK_INT(send_async(c, &o[1], "GET %s", "k", NULL), SG_OK);
    CHECK(run_until_called(base, &o[1], 1, 5000));
    CHECK_INT(o[1].status, SG_EPOOL);
    CHECK_CONTAINS(o[1].msg, a->addr);
    CHECK(o[1].at - t0 >= 900 && o[1].at - t0 < 3000);
    CHECK_INT(o[0].calls, 0); /* BLPOP 0 blocks for ever: no read timeout */
    CHECK_INT(fn_accepted(a), 1);
    CHECK_INT(fn_count(a, "GET", NULL), 0);
    CHECK_INT(stats_of(c, a->addr).pool_timeouts, 1);
    sg_client_free(c);
    CHECK_INT(o[0].calls, 1);
    CHECK_INT(o[0].status, SG_ECLOSED);
    outcomes_free(o, 2);
    event_base_free(base);
    fn_free(a);
}

/* The one connection a command waits for is lost: the waiter gets a new
 * connection at once, and does not wait out the timeout for a pool slot that
 * is already free. */
static void test_pool_waiter_after_loss(void) {
    static const char *const one_conn[] = {"TYK_GW_STORAGE_MAXACTIVE=1", NULL};
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c = fn_client(a, 0, base, one_conn);
    outcome o[2];
    uint64_t t0;
    memset(o, 0, sizeof o);
    fn_set(a, "k", "v");
    fn_rule_add(a, (fn_spec){.cmd = "BLPOP", .action = FN_CLOSE, .times = 1});
    t0 = fn_now_ms();
    CHECK_INT(send_async(c, &o[0], "BLPOP %s %s", "list", "0"), SG_OK);
    CHECK_INT(send_async(c, &o[1], "GET %s", "k", NULL), SG_OK);
    CHECK(run_until_called(base, o, 2, 5000));
    CHECK_INT(o[0].status, SG_EUNKNOWN); /* BLPOP pops: a write, sent */
    CHECK_INT(o[1].status, SG_OK);
    CHECK_REPLY(o[1].reply, SG_REPLY_STRING, "v");
    if (o[1].status != SG_OK) printf("  waiter: %s: %s\n", sg_errname(o[1].status), o[1].msg);
    CHECK(o[1].at - t0 < 500);
    CHECK_INT(fn_count(a, "BLPOP", NULL), 1);
    outcomes_free(o, 2);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* ---- a node that is gone --------------------------------------------------------------------- */

static void test_refused(void) {
    fn_node *a = fn_start();
    fn_node gone = *a; /* its address, for the client */
    sg_client *c;
    sg_reply *r;
    uint64_t t0;
    fn_free(a);
    /* cluster: discovery names the node */
    c = fn_client(&gone, 1, NULL, NULL);
    t0 = fn_now_ms();
    CHECK_INT(sg_client_connect(c), SG_ECONNECT);
    CHECK_CONTAINS(sg_errmsg(c), gone.addr);
    CHECK_CONTAINS(sg_errmsg(c), "refused");
    printf("  cluster, connect: %s (%llu ms)\n", sg_errmsg(c),
           (unsigned long long)(fn_now_ms() - t0));
    t0 = fn_now_ms();
    r = sg_client_call(c, "GET k");
    CHECK(r == NULL);
    sg_reply_free(r);
    CHECK_INT(sg_errcode(c), SG_ECONNECT);
    CHECK_CONTAINS(sg_errmsg(c), gone.addr);
    printf("  cluster, GET: %s (%llu ms)\n", sg_errmsg(c), (unsigned long long)(fn_now_ms() - t0));
    CHECK(fn_now_ms() - t0 < 10000);
    sg_client_free(c);
    /* single node */
    c = fn_client(&gone, 0, NULL, NULL);
    t0 = fn_now_ms();
    r = sg_client_call(c, "GET k");
    CHECK(r == NULL);
    sg_reply_free(r);
    CHECK_INT(sg_errcode(c), SG_ECONNECT);
    CHECK_CONTAINS(sg_errmsg(c), gone.addr);
    printf("  single, GET: %s (%llu ms)\n", sg_errmsg(c), (unsigned long long)(fn_now_ms() - t0));
    CHECK(fn_now_ms() - t0 < 10000);
    t0 = fn_now_ms();
    CHECK_INT(sg_client_connect(c), SG_ECONNECT);
    CHECK_CONTAINS(sg_errmsg(c), gone.addr);
    CHECK(fn_now_ms() - t0 < 10000);
    sg_client_free(c);
}

/* ---- a refused password ---------------------------------------------------------------------- */

static void test_wrongpass(void) {
    static const char *const pass[] = {"TYK_GW_STORAGE_PASSWORD=bad", NULL};
    static const char *const userpass[] = {"TYK_GW_STORAGE_USERNAME=u",
                                           "TYK_GW_STORAGE_PASSWORD=bad", NULL};
    fn_node *a = fn_start();
    sg_client *c;
    sg_reply *r;
    int mode;
    map_all_to(a, &a, 1);
    fn_rule_add(a, (fn_spec){.cmd = "AUTH",
                             .reply = "-WRONGPASS invalid username-password pair or user is "
                                      "disabled.\r\n"});
    for (mode = 0; mode < 2; mode++) {
        c = fn_client(a, mode, NULL, pass);
        CHECK_INT(sg_client_connect(c), SG_EAUTH);
        CHECK_CONTAINS(sg_errmsg(c), a->addr);
        CHECK_CONTAINS(sg_errmsg(c), "WRONGPASS");
        printf("  %s: %s\n", mode ? "cluster" : "single", sg_errmsg(c));
        r = sg_client_call(c, "GET k");
        CHECK(r == NULL);
        sg_reply_free(r);
        CHECK_INT(sg_errcode(c), SG_EAUTH);
        CHECK_CONTAINS(sg_errmsg(c), a->addr);
        sg_client_free(c);
    }
    CHECK(fn_count(a, "AUTH", "bad") >= 2);
    CHECK_INT(fn_count(a, "GET", NULL), 0); /* nothing after a failed AUTH */
    c = fn_client(a, 0, NULL, userpass);
    CHECK_INT(sg_client_connect(c), SG_EAUTH);
    CHECK(fn_count(a, "AUTH", "u") >= 1);
    sg_client_free(c);
    fn_free(a);
}

/* ---- the async API --------------------------------------------------------------------------- */

/* Callbacks run from the loop, never inside sg_client_send; a refused
 * command gets no callback. */
static void test_async_callbacks(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c;
    outcome o[12], refused;
    char key[32];
    int i;
    memset(o, 0, sizeof o);
    memset(&refused, 0, sizeof refused);
    map_all_to(a, &a, 1);
    fn_set(a, "k", "v");
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_errcode(c), SG_OK);
    CHECK_INT(sg_client_connect(c), SG_OK); /* async: starts discovery */
    for (i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_INT(send_async(c, &o[i], i % 2 ? "SET %s %s" : "GET %s", i % 2 ? key : "k",
                             "x"),
                  SG_OK);
    }
    /* answered without a node: CROSSSLOT, and a split MGET */
    CHECK_INT(send_async(c, &o[10], "SUNION %s %s", "a", "b"), SG_OK);
    CHECK_INT(send_async(c, &o[11], "MGET %s %s", "k", "other"), SG_OK);
    CHECK_INT(send_async(c, &refused, "MULTI", NULL, NULL), SG_ECOMMAND);
    for (i = 0; i < 12; i++) CHECK_INT(o[i].calls, 0);
    CHECK(run_until_called(base, o, 12, 5000));
    for (i = 0; i < 12; i++) {
        CHECK_INT(o[i].calls, 1);
        CHECK_INT(o[i].during_send, 0);
        CHECK_INT(o[i].status, SG_OK);
    }
    CHECK_REPLY(o[0].reply, SG_REPLY_STRING, "v");
    CHECK_REPLY(o[1].reply, SG_REPLY_STATUS, "OK");
    CHECK(o[10].reply && o[10].reply->type == SG_REPLY_ERROR);
    if (o[10].reply) CHECK_CONTAINS(o[10].reply->str, "CROSSSLOT");
    CHECK(o[11].reply && o[11].reply->type == SG_REPLY_ARRAY && o[11].reply->elements == 2);
    if (o[11].reply && o[11].reply->elements == 2) {
        CHECK_REPLY(o[11].reply->element[0], SG_REPLY_STRING, "v");
        CHECK(o[11].reply->element[1]->type == SG_REPLY_NIL);
    }
    /* a few more loop turns: nobody is called twice, the refused one never */
    event_base_loop(base, EVLOOP_NONBLOCK);
    for (i = 0; i < 12; i++) CHECK_INT(o[i].calls, 1);
    CHECK_INT(refused.calls, 0);
    outcomes_free(o, 12);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* sg_client_free with commands in every state: waiting for the map, written
 * and unanswered, in retry backoff, waiting for a pooled connection, split
 * in parts, and completed-but-not-yet-delivered: each callback exactly once,
 * SG_ECLOSED for the unanswered, before free returns, and none after. */
static void test_async_free_in_flight(void) {
    static const char *const one_conn[] = {"TYK_GW_STORAGE_MAXACTIVE=1", NULL};
    struct event_base *base = event_base_new();
    fn_node *a = fn_start(), *b = fn_start(), *z = fn_start(), *both[2], *three[3];
    fn_range halves[2], thirds[3];
    sg_client *c;
    outcome o[8], warm;
    char kb[32], kb2[32], ka[32], kc[32];
    int i;
    both[0] = three[0] = a;
    both[1] = three[1] = b;
    three[2] = z;
    halves[0] = (fn_range){0, 8191, a};
    halves[1] = (fn_range){8192, SG_SLOTS - 1, b};
    thirds[0] = (fn_range){0, 5460, a};
    thirds[1] = (fn_range){5461, 10922, b};
    thirds[2] = (fn_range){10923, SG_SLOTS - 1, z};
    fn_cluster(both, 2, halves, 2);
    key_in("a", 0, 5460, ka, sizeof ka);
    key_in("b", 8192, 10922, kb, sizeof kb);
    key_in("bb", 8192, 10922, kb2, sizeof kb2);
    key_in("c", 10923, SG_SLOTS - 1, kc, sizeof kc);

    /* 1. nothing ran yet: commands wait for the map */
    memset(o, 0, sizeof o);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(send_async(c, &o[0], "GET %s", ka, NULL), SG_OK);
    CHECK_INT(send_async(c, &o[1], "MGET %s %s", ka, kb), SG_OK);
    CHECK_INT(send_async(c, &o[2], "SUNION %s %s", ka, kb), SG_OK); /* CROSSSLOT, deferred */
    sg_client_free(c);
    freed = 1;
    for (i = 0; i < 3; i++) {
        CHECK_INT(o[i].calls, 1);
        CHECK_INT(o[i].during_send, 0);
    }
    CHECK_INT(o[0].status, SG_ECLOSED);
    CHECK_INT(o[1].status, SG_ECLOSED);
    event_base_loop(base, EVLOOP_NONBLOCK);
    for (i = 0; i < 3; i++) {
        CHECK_INT(o[i].calls, 1);
        CHECK_INT(o[i].after_free, 0);
    }
    outcomes_free(o, 3);

    /* 2. in flight, in retry, waiting for the pool (A: retries, B: one
     * connection, held; C: stalls) */
    freed = 0;
    memset(o, 0, sizeof o);
    memset(&warm, 0, sizeof warm);
    fn_cluster(three, 3, thirds, 3);
    c = fn_client(a, 1, base, one_conn);
    CHECK_INT(send_async(c, &warm, "GET %s", kb, NULL), SG_OK);
    CHECK(run_until_called(base, &warm, 1, 5000));
    outcomes_free(&warm, 1);
    fn_rule_add(b, (fn_spec){.cmd = "BLPOP", .action = FN_STALL});
    fn_rule_add(z, (fn_spec){.cmd = "GET", .key = kc, .action = FN_STALL});
    fn_rule_add(a, (fn_spec){.cmd = "SET", .key = ka, .reply = "-TRYAGAIN later\r\n"});
    CHECK_INT(send_async(c, &o[0], "GET %s", kc, NULL), SG_OK);        /* stalls on C */
    CHECK_INT(send_async(c, &o[1], "BLPOP %s %s", kb, "0"), SG_OK);    /* holds B's one conn */
    CHECK_INT(send_async(c, &o[2], "GET %s", kb2, NULL), SG_OK);       /* waits for B's conn */
    CHECK_INT(send_async(c, &o[3], "SET %s %s", ka, "v"), SG_OK);      /* TRYAGAIN: retries */
    CHECK_INT(send_async(c, &o[4], "MGET %s %s", ka, kc), SG_OK);      /* parts on A and C */
    CHECK_INT(send_async(c, &o[5], "SUNION %s %s", ka, kb), SG_OK);    /* CROSSSLOT, deferred */
    /* run until each is where it should be (bounded by the alarm): C saw
     * both GETs, B the BLPOP, and the client has A's TRYAGAIN and the MGET
     * part's reply */
    while (fn_count(z, "GET", kc) < 1 || fn_count(b, "BLPOP", NULL) < 1 ||
           stats_of(c, a->addr).errors < 1 || fn_count(a, "MGET", NULL) < 1)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(o[3].calls, 0);
    sg_client_free(c);
    freed = 1;
    for (i = 0; i < 6; i++) {
        CHECK_INT(o[i].calls, 1);
        CHECK_INT(o[i].during_send, 0);
        if (i != 5) CHECK_INT(o[i].status, SG_ECLOSED);
        if (o[i].calls != 1 || (i != 5 && o[i].status != SG_ECLOSED))
            fprintf(stderr, "  command %d: %d calls, status %s: %s\n", i, o[i].calls,
                    sg_errname(o[i].status), o[i].msg);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    for (i = 0; i < 6; i++) {
        CHECK_INT(o[i].calls, 1);
        CHECK_INT(o[i].after_free, 0);
    }
    freed = 0;
    outcomes_free(o, 6);
    event_base_free(base);
    fn_free(a);
    fn_free(b);
    fn_free(z);
}

/* ---- garbage --------------------------------------------------------------------------------- */

static void test_malformed(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start(), *z = fn_start();
    sg_client *c;
    sg_reply *r;
    outcome o[3];
    uint64_t t0;
    int i;
    memset(o, 0, sizeof o);
    map_all_to(a, &a, 1);
    fn_set(a, "ok", "fine");
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "bad", .reply = "?garbage\r\n"});
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "badlen", .reply = "$abc\r\nxx\r\n"});
    fn_rule_add(a, (fn_spec){.cmd = "SET", .key = "badset", .reply = "*1\r\n!\r\n"});
    /* async, so that the reads' retries run side by side */
    c = fn_client(a, 1, base, NULL);
    t0 = fn_now_ms();
    CHECK_INT(send_async(c, &o[0], "GET %s", "bad", NULL), SG_OK);
    CHECK_INT(send_async(c, &o[1], "GET %s", "badlen", NULL), SG_OK);
    CHECK(run_until_called(base, o, 2, 15000));
    for (i = 0; i < 2; i++) {
        CHECK_INT(o[i].status, SG_EPROTO);
        CHECK(o[i].reply == NULL);
        CHECK_CONTAINS(o[i].msg, a->addr);
        CHECK_CONTAINS(o[i].msg, "cannot parse reply");
    }
    printf("  garbage: %s (%d sends, %llu ms)\n", o[0].msg, fn_count(a, "GET", "bad"),
           (unsigned long long)(o[0].at - t0));
    CHECK(o[0].at - t0 < 10000);
    /* a write answered with garbage may have been applied: outcome unknown,
     * and the protocol error is named */
    CHECK_INT(send_async(c, &o[2], "SET %s %s", "badset", "1"), SG_OK);
    CHECK(run_until_called(base, &o[2], 1, 5000));
    CHECK_INT(o[2].status, SG_EUNKNOWN);
    CHECK_CONTAINS(o[2].msg, a->addr);
    CHECK_CONTAINS(o[2].msg, "cannot parse reply");
    CHECK_INT(fn_count(a, "SET", "badset"), 1);
    outcomes_free(o, 3);
    sg_client_free(c);
    event_base_free(base);
    /* and the node still serves good replies */
    c = fn_client(a, 1, NULL, NULL);
    r = sg_client_call(c, "GET ok");
    CHECK_REPLY(r, SG_REPLY_STRING, "fine");
    sg_reply_free(r);
    sg_client_free(c);

    /* a map that is RESP but not a map */
    fn_rule_add(z, (fn_spec){.cmd = "CLUSTER", .reply = "*1\r\n:5\r\n"});
    c = fn_client(z, 1, NULL, NULL);
    CHECK(sg_client_connect(c) != SG_OK);
    CHECK_CONTAINS(sg_errmsg(c), z->addr);
    CHECK_CONTAINS(sg_errmsg(c), "malformed");
    sg_client_free(c);
    fn_free(a);
    fn_free(z);
}

/* ---- a slot's order, and reads that may not be sent again ---------------------------------- */

/* A script goes on a connection of its own; a later command of its slot on
 * the shared one would reach the node first if sent at once: it waits for
 * the script's reply. A command of another slot does not wait. */
static void test_script_holds_its_slot(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c;
    outcome o[3];
    const char *eval[] = {"EVAL", "return redis.call('SET', KEYS[1], '1')", "1", "{s}k"};
    int ie, is, io;
    memset(o, 0, sizeof o);
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    CHECK_INT(send_async(c, &o[0], "GET %s", "warm", NULL), SG_OK); /* the map first */
    CHECK(run_until_called(base, o, 1, 5000));
    outcomes_free(o, 1);
    memset(o, 0, sizeof o);
    fn_rule_add(a, (fn_spec){.cmd = "EVAL", .action = FN_DELAY, .delay_ms = 300,
                             .reply = "+OK\r\n", .times = 1});
    in_send = 1;
    CHECK_INT(sg_client_send_argv(c, 4, eval, NULL, on_outcome, &o[0]), SG_OK);
    in_send = 0;
    CHECK_INT(send_async(c, &o[1], "SET %s %s", "{s}k", "2"), SG_OK);
    CHECK_INT(send_async(c, &o[2], "SET %s %s", "{other}k", "3"), SG_OK);
    CHECK(run_until_called(base, o, 3, 5000));
    CHECK_REPLY(o[0].reply, SG_REPLY_STATUS, "OK");
    CHECK_REPLY(o[1].reply, SG_REPLY_STATUS, "OK");
    ie = fn_log_find(a, 0, 0, "EVAL", NULL);
    is = fn_log_find(a, 0, 0, "SET", "{s}k");
    io = fn_log_find(a, 0, 0, "SET", "{other}k");
    CHECK(ie >= 0 && is >= 0 && io >= 0);
    /* the SET left after EVAL's reply (300 ms after EVAL came); the other slot's at once */
    CHECK(fn_log_at(a, is) >= fn_log_at(a, ie) + 280);
    CHECK(fn_log_at(a, io) < fn_log_at(a, ie) + 200);
    outcomes_free(o, 3);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* The connection goes with GET k and a later SET of k's slot on it, both
 * sent: the SET may have been applied, so GET k is not read again (it would
 * show the SET it came before); a GET of another slot is read again. */
static void test_read_not_resent_past_unknown_write(void) {
    fn_node *a = fn_start();
    sg_client *c;
    sg_pipeline *p;
    int status;
    const char *msg = NULL;
    const sg_reply *r;
    map_all_to(a, &a, 1);
    fn_set(a, "{t}a", "old");
    fn_set(a, "{u}a", "u");
    c = fn_client(a, 1, NULL, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    p = sg_pipeline_new(c);
    sg_pipeline_append(p, "GET %s", "{t}a");
    sg_pipeline_append(p, "GET %s", "{u}a");
    sg_pipeline_append(p, "SET %s %s", "{t}b", "x");
    sg_pipeline_append(p, "GET %s", "last");
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "{t}a", .action = FN_STALL, .times = 1});
    fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "last", .action = FN_CLOSE, .times = 1});
    CHECK_INT(sg_pipeline_exec(p), SG_OK);
    r = sg_pipeline_reply(p, 0, &status, &msg);
    CHECK(r == NULL);
    CHECK_INT(status, SG_ECONNECT);
    CHECK_CONTAINS(msg, "not read again");
    CHECK_INT(fn_count(a, "GET", "{t}a"), 1);
    r = sg_pipeline_reply(p, 1, &status, &msg);
    CHECK_INT(status, SG_OK);
    CHECK_REPLY(r, SG_REPLY_STRING, "u");
    CHECK_INT(fn_count(a, "GET", "{u}a"), 2);
    r = sg_pipeline_reply(p, 2, &status, &msg);
    CHECK_INT(status, SG_EUNKNOWN);
    sg_pipeline_free(p);
    sg_client_free(c);
    fn_free(a);
}

/* ---- durable writes ---------------------------------------------------------------------- */

static void send_durable(sg_client *c, outcome *o, int replicas, const char *key) {
    sg_call_opts opts = {replicas, 100};
    const char *argv[] = {"SET", key, "v"};
    in_send = 1;
    CHECK_INT(sg_client_send_opts(c, &opts, 3, argv, NULL, on_outcome, o), SG_OK);
    in_send = 0;
}

/* Writes sent in one loop turn to a node get one WAIT after them, on their
 * connection; each is acknowledged when WAIT counts enough replicas, and
 * NOTCONFIRMED when not; a plain write in between is not held. */
static void test_durable_one_wait_per_turn(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c;
    outcome o[12];
    char key[32];
    int i, iw, last_set;
    memset(o, 0, sizeof o);
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    CHECK_INT(send_async(c, &o[0], "GET %s", "warm", NULL), SG_OK);
    CHECK(run_until_called(base, o, 1, 5000));
    outcomes_free(o, 1);
    memset(o, 0, sizeof o);
    fn_rule_add(a, (fn_spec){.cmd = "WAIT", .reply = ":1\r\n", .times = 1});
    for (i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "d%d", i);
        if (i == 5) CHECK_INT(send_async(c, &o[i], "SET %s %s", key, "plain"), SG_OK);
        else send_durable(c, &o[i], i == 9 ? 2 : 1, key);
    }
    CHECK(run_until_called(base, o, 10, 5000));
    CHECK_INT(fn_count(a, "WAIT", NULL), 1);
    iw = fn_log_find(a, 0, 0, "WAIT", NULL);
    last_set = fn_log_find(a, 0, 0, "SET", "d9");
    CHECK(iw > last_set && fn_log_conn(a, iw) == fn_log_conn(a, last_set));
    {
        char line[128];
        fn_log_line(a, iw, line, sizeof line);
        CHECK_CONTAINS(line, "WAIT 2 100"); /* the most replicas asked, the longest timeout */
    }
    for (i = 0; i < 9; i++) {
        CHECK_INT(o[i].status, SG_OK);
        CHECK_REPLY(o[i].reply, SG_REPLY_STATUS, "OK");
    }
    CHECK(o[9].reply && o[9].reply->type == SG_REPLY_ERROR);
    if (o[9].reply) {
        CHECK_CONTAINS(o[9].reply->str, "NOTCONFIRMED the write was applied on the master");
        CHECK_CONTAINS(o[9].reply->str, a->addr);
        CHECK_CONTAINS(o[9].reply->str,
                       "not confirmed by 2 replicas: WAIT counted 1 within 100 ms");
    }
    CHECK_INT(stats_of(c, a->addr).waits, 1);
    CHECK_INT(stats_of(c, a->addr).unconfirmed, 1);
    /* the next turn's durable write gets a WAIT of its own */
    outcomes_free(o, 10);
    memset(o, 0, sizeof o);
    fn_rule_add(a, (fn_spec){.cmd = "WAIT", .reply = ":0\r\n", .times = 1});
    send_durable(c, &o[0], 1, "again");
    CHECK(run_until_called(base, o, 1, 5000));
    CHECK_INT(fn_count(a, "WAIT", NULL), 2);
    CHECK(o[0].reply && o[0].reply->type == SG_REPLY_ERROR);
    if (o[0].reply) CHECK_CONTAINS(o[0].reply->str, "WAIT counted 0 within 100 ms");
    outcomes_free(o, 1);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* An error reply is the write's answer (nothing was applied); a WAIT the
 * connection loses makes NOTCONFIRMED saying so; a bad option is refused. */
static void test_durable_errors(void) {
    struct event_base *base = event_base_new();
    fn_node *a = fn_start();
    sg_client *c;
    outcome o[2];
    sg_call_opts bad = {256, 0};
    const char *argv[] = {"SET", "k", "v"};
    memset(o, 0, sizeof o);
    map_all_to(a, &a, 1);
    c = fn_client(a, 1, base, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    CHECK_INT(sg_client_send_opts(c, &bad, 3, argv, NULL, on_outcome, &o[0]), SG_EINVAL);
    CHECK_CONTAINS(sg_errmsg(c), "durable must be 0..255");
    fn_rule_add(a, (fn_spec){.cmd = "SET", .key = "e", .reply = "-OOM no room\r\n", .times = 1});
    fn_rule_add(a, (fn_spec){.cmd = "WAIT", .action = FN_CLOSE, .times = 1});
    send_durable(c, &o[0], 1, "e");
    send_durable(c, &o[1], 1, "f");
    CHECK(run_until_called(base, o, 2, 5000));
    CHECK(o[0].reply && o[0].reply->type == SG_REPLY_ERROR);
    if (o[0].reply) CHECK_CONTAINS(o[0].reply->str, "OOM no room");
    CHECK(o[1].reply && o[1].reply->type == SG_REPLY_ERROR);
    if (o[1].reply) {
        CHECK_CONTAINS(o[1].reply->str, "NOTCONFIRMED");
        CHECK_CONTAINS(o[1].reply->str, "WAIT failed");
    }
    outcomes_free(o, 2);
    sg_client_free(c);
    event_base_free(base);
    fn_free(a);
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, fn_on_alarm);
    FN_RUN_T(test_fakenode_basics);
    FN_RUN_T(test_moved_mid_pipeline);
    FN_RUN_T(test_moved_updates_map);
    FN_RUN_T(test_moved_stale_map);
    FN_RUN_T(test_ask);
    FN_RUN_T(test_too_many_redirects);
    FN_RUN_T(test_transient_then_ok);
    FN_RUN_T(test_transient_keeps_order);
    FN_RUN_T(test_transient_mixed_backoffs_keep_order);
    FN_RUN_T(test_transient_forever);
    FN_RUN_T(test_stall);
    FN_RUN_T(test_stall_blocking);
    FN_RUN_T(test_drop_mid_pipeline);
    FN_RUN_T(test_script_holds_its_slot);
    FN_RUN_T(test_read_not_resent_past_unknown_write);
    FN_RUN_T(test_durable_one_wait_per_turn);
    FN_RUN_T(test_durable_errors);
    FN_RUN_T(test_drop_mid_reply);
    FN_RUN_T(test_pool_wait);
    FN_RUN_T(test_pool_waiter_after_loss);
    FN_RUN_T(test_refused);
    FN_RUN_T(test_wrongpass);
    FN_RUN_T(test_async_callbacks);
    FN_RUN_T(test_async_free_in_flight);
    FN_RUN_T(test_malformed);
    return test_report();
}
