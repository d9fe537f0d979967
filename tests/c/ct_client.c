/*
 * ct_client.c — the client API against the harness's real servers: keys land
 * on the node CLUSTER KEYSLOT names, multi-key commands split and merge,
 * fan-outs, read policies, single-node mode with SELECT, TLS, ACL users and
 * wrong passwords, pool bounds counted with CLIENT LIST, commands kept in
 * order when the pool holds several connections, the errors a caller sees
 * for what the API refuses, and a gateway naming rewritten keys back.
 */
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <unistd.h>

#include "slotgate.h"
#include "test.h"

#define NKEYS 10000

/* A client for env settings (NULL-terminated NAME=value list). */
static sg_client *client_for(const char *const *env, struct event_base *base) {
    sg_config *cfg = sg_config_new();
    sg_client *c;
    int rc = sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env);
    if (rc != SG_OK) {
        TEST_FAIL_("settings: %s", sg_errmsg(cfg));
        sg_config_free(cfg);
        return NULL;
    }
    c = sg_client_new(cfg, NULL, base);
    sg_config_free(cfg);
    return c;
}

static char env_addrs[2048];

static sg_client *cluster_client(void) {
    const char *env[] = {env_addrs, "TYK_GW_STORAGE_ENABLECLUSTER=true", NULL};
    snprintf(env_addrs, sizeof env_addrs, "TYK_GW_STORAGE_ADDRS=%s",
             test_server_var("SG_TEST_CLUSTER_MASTERS"));
    return client_for(env, NULL);
}

static redisContext *direct(const char *addr) {
    char host[256];
    int port;
    redisContext *rc;
    test_split_addr(addr, host, sizeof host, &port);
    rc = redisConnect(host, port);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "FAIL: cannot connect to %s\n", addr);
        exit(1);
    }
    return rc;
}

/* The master of each slot, from CLUSTER SLOTS of a node. */
static void slot_owners(char owners[][32]) {
    char first[64];
    redisContext *rc;
    snprintf(first, sizeof first, "%.*s",
             (int)strcspn(test_server_var("SG_TEST_CLUSTER_MASTERS"), ","),
             test_server_var("SG_TEST_CLUSTER_MASTERS"));
    rc = direct(first);
    redisReply *r = redisCommand(rc, "CLUSTER SLOTS");
    size_t i;
    for (i = 0; r && i < r->elements; i++) {
        redisReply *e = r->element[i];
        long long s;
        for (s = e->element[0]->integer; s <= e->element[1]->integer; s++)
            snprintf(owners[s], 32, "%s:%lld", e->element[2]->element[0]->str,
                     e->element[2]->element[1]->integer);
    }
    freeReplyObject(r);
    redisFree(rc);
}

/* 10 000 keys written and read through the client land where CLUSTER KEYSLOT says. */
static void test_keys_land_on_their_slot(void) {
    static char owners[SG_SLOTS][32];
    sg_client *c = cluster_client();
    sg_pipeline *p = sg_pipeline_new(c);
    redisContext *probe;
    char key[64], val[64];
    int i, wrong = 0, bad_slot = 0;
    CHECK_INT(sg_client_connect(c), SG_OK);
    for (i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof key, "land:%d", i);
        snprintf(val, sizeof val, "v%d", i * 7);
        sg_pipeline_append(p, "SET %s %s", key, val);
    }
    CHECK_INT(sg_pipeline_exec(p), SG_OK);
    for (i = 0; i < NKEYS; i++) {
        int status = 0;
        const sg_reply *r = sg_pipeline_reply(p, (size_t)i, &status, NULL);
        if (r == NULL || r->type != SG_REPLY_STATUS || strcmp(r->str, "OK") != 0) wrong++;
    }
    CHECK_INT(wrong, 0);
    /* read back, one blocking call each for the first 1000 */
    for (i = 0; i < 1000; i++) {
        sg_reply *r;
        snprintf(key, sizeof key, "land:%d", i);
        snprintf(val, sizeof val, "v%d", i * 7);
        r = sg_client_call(c, "GET %s", key);
        if (r == NULL || r->type != SG_REPLY_STRING || strcmp(r->str, val) != 0) wrong++;
        sg_reply_free(r);
    }
    CHECK_INT(wrong, 0);
    /* where each key is: the slot CLUSTER KEYSLOT names, its master holds it */
    slot_owners(owners);
    {
        redisContext *nodes[8] = {0};
        char naddr[8][32];
        int nn = 0, k;
        probe = direct(owners[0]);
        for (i = 0; i < NKEYS; i++) {
            snprintf(key, sizeof key, "land:%d", i);
            redisAppendCommand(probe, "CLUSTER KEYSLOT %s", key);
        }
        for (i = 0; i < NKEYS; i++) {
            redisReply *r = NULL, *e = NULL;
            long long slot;
            redisGetReply(probe, (void **)&r);
            if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
                bad_slot++;
                freeReplyObject(r);
                continue;
            }
            slot = r->integer;
            freeReplyObject(r);
            snprintf(key, sizeof key, "land:%d", i);
            if ((long long)sg_keyslot(key, strlen(key)) != slot) bad_slot++;
            for (k = 0; k < nn && strcmp(naddr[k], owners[slot]) != 0; k++) {
            }
            if (k == nn) {
                snprintf(naddr[nn], 32, "%s", owners[slot]);
                nodes[nn++] = direct(owners[slot]);
            }
            e = redisCommand(nodes[k], "EXISTS %s", key);
            if (e == NULL || e->integer != 1) wrong++;
            freeReplyObject(e);
        }
        CHECK_INT(bad_slot, 0);
        CHECK_INT(wrong, 0);
        CHECK_INT(nn, 3);
        for (k = 0; k < nn; k++) redisFree(nodes[k]);
    }
    redisFree(probe);
    /* every master took commands */
    {
        int masters_used = 0;
        for (i = 0; i < sg_client_node_count(c); i++) {
            sg_node_stats st;
            sg_client_node_stats(c, i, &st);
            if (st.is_master && st.commands > 1000) masters_used++;
        }
        CHECK_INT(masters_used, 3);
    }
    sg_pipeline_free(p);
    sg_client_free(c);
}

/* Keys on all three masters: MSET, MGET, EXISTS, DEL merge in order. */
static void test_multi_key(void) {
    sg_client *c = cluster_client();
    sg_reply *r;
    /* {a} {b} {c} {d}... spread over the masters */
    const char *keys[] = {"mk:{a}", "mk:{b}", "mk:{c}", "mk:{d}", "mk:{e}", "mk:{f}"};
    unsigned slots[6];
    int i, distinct = 0;
    for (i = 0; i < 6; i++) slots[i] = sg_keyslot(keys[i], strlen(keys[i]));
    for (i = 1; i < 6; i++) distinct += slots[i] != slots[0];
    CHECK(distinct >= 4);
    r = sg_client_call(c, "DEL mk:{a} mk:{b} mk:{c} mk:{d} mk:{e} mk:{f}");
    CHECK(r && r->type == SG_REPLY_INTEGER);
    sg_reply_free(r);
    r = sg_client_call(c, "MSET mk:{a} 1 mk:{b} 2 mk:{c} 3 mk:{d} 4 mk:{e} 5");
    CHECK(r && r->type == SG_REPLY_STATUS && strcmp(r->str, "OK") == 0);
    sg_reply_free(r);
    r = sg_client_call(c, "MGET mk:{e} mk:{a} mk:{f} mk:{c} mk:{b} mk:{d} mk:{a}");
    CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 7);
    if (r && r->elements == 7) {
        CHECK_STR(r->element[0]->str, "5");
        CHECK_STR(r->element[1]->str, "1");
        CHECK_INT(r->element[2]->type, SG_REPLY_NIL);
        CHECK_STR(r->element[3]->str, "3");
        CHECK_STR(r->element[4]->str, "2");
        CHECK_STR(r->element[5]->str, "4");
        CHECK_STR(r->element[6]->str, "1");
    }
    sg_reply_free(r);
    r = sg_client_call(c, "EXISTS mk:{a} mk:{f} mk:{b} mk:{a}");
    CHECK(r && r->type == SG_REPLY_INTEGER && r->integer == 3);
    sg_reply_free(r);
    r = sg_client_call(c, "TOUCH mk:{a} mk:{b} mk:{f}");
    CHECK(r && r->integer == 2);
    sg_reply_free(r);
    r = sg_client_call(c, "UNLINK mk:{c} mk:{d}");
    CHECK(r && r->integer == 2);
    sg_reply_free(r);
    r = sg_client_call(c, "DEL mk:{a} mk:{b} mk:{c} mk:{e}");
    CHECK(r && r->integer == 3);
    sg_reply_free(r);
    /* same slot: passed through; across slots and not splittable: CROSSSLOT */
    r = sg_client_call(c, "MSETNX mk:{x}1 a mk:{x}2 b");
    CHECK(r && r->type == SG_REPLY_INTEGER && r->integer == 1);
    sg_reply_free(r);
    r = sg_client_call(c, "SUNIONSTORE mk:{a} mk:{b} mk:{c}");
    CHECK(r && r->type == SG_REPLY_ERROR);
    if (r) CHECK_CONTAINS(r->str, "CROSSSLOT");
    sg_reply_free(r);
    r = sg_client_call(c, "DEL mk:{x}1 mk:{x}2");
    CHECK(r && r->integer == 2);
    sg_reply_free(r);
    /* an odd MSET is not split: the node refuses it, as Redis Cluster does */
    r = sg_client_call(c, "MSET mk:{a} 1 mk:{b}");
    CHECK(r && r->type == SG_REPLY_ERROR);
    if (r) CHECK_CONTAINS(r->str, "CROSSSLOT");
    sg_reply_free(r);
    sg_client_free(c);
}

/* Commands for every master: replies merged by the command's policy. */
static void test_fan_out(void) {
    sg_client *c = cluster_client();
    long long sum = 0;
    sg_reply *r;
    const char *m;
    char *masters = strdup(test_server_var("SG_TEST_CLUSTER_MASTERS")), *save = NULL;
    for (m = strtok_r(masters, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        redisContext *rc = direct(m);
        redisReply *d = redisCommand(rc, "DBSIZE");
        sum += d->integer;
        freeReplyObject(d);
        redisFree(rc);
    }
    free(masters);
    r = sg_client_call(c, "DBSIZE");
    CHECK(r && r->type == SG_REPLY_INTEGER);
    if (r) CHECK_INT(r->integer, sum);
    sg_reply_free(r);
    r = sg_client_call(c, "PING");
    CHECK(r && r->type == SG_REPLY_STATUS);
    if (r) CHECK_STR(r->str, "PONG");
    sg_reply_free(r);
    r = sg_client_call(c, "SET fan:{a} 1");
    sg_reply_free(r);
    r = sg_client_call(c, "SET fan:{b} 1");
    sg_reply_free(r);
    r = sg_client_call(c, "SET fan:{c} 1");
    sg_reply_free(r);
    r = sg_client_call(c, "KEYS fan:*");
    CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 3);
    sg_reply_free(r);
    r = sg_client_call(c, "SCRIPT LOAD %s", "return 1");
    CHECK(r && r->type == SG_REPLY_STRING && r->len == 40);
    if (r && r->len == 40) {
        sg_reply *e =
            sg_client_call(c, "SCRIPT EXISTS %s 0000000000000000000000000000000000000000", r->str);
        CHECK(e && e->type == SG_REPLY_ARRAY && e->elements == 2);
        if (e && e->elements == 2) {
            CHECK_INT(e->element[0]->integer, 1);
            CHECK_INT(e->element[1]->integer, 0);
        }
        sg_reply_free(e);
        e = sg_client_call(c, "EVALSHA %s 1 fan:{b}", r->str);
        CHECK(e && e->type == SG_REPLY_INTEGER && e->integer == 1);
        sg_reply_free(e);
    }
    sg_reply_free(r);
    r = sg_client_call(c, "DEL fan:{a} fan:{b} fan:{c}");
    CHECK(r && r->integer == 3);
    sg_reply_free(r);
    sg_client_free(c);
}

/* Whether every node's CLUSTER SLOTS lists a replica for every range: Redis
 * 7.0 leaves out replicas that have not reported a replication offset yet. */
static int replicas_listed(void) {
    char *nodes = strdup(test_server_var("SG_TEST_CLUSTER")), *save = NULL, *n;
    int ok = 1;
    for (n = strtok_r(nodes, ",", &save); n && ok; n = strtok_r(NULL, ",", &save)) {
        redisContext *rc = direct(n);
        redisReply *r = redisCommand(rc, "CLUSTER SLOTS");
        size_t i;
        for (i = 0; r && i < r->elements && ok; i++) ok = r->element[i]->elements >= 4;
        if (r == NULL) ok = 0;
        freeReplyObject(r);
        redisFree(rc);
    }
    free(nodes);
    return ok;
}

/* Read policies: replicas serve reads when asked to. */
static void test_read_policy(void) {
    sg_client *c;
    int waited;
    for (waited = 0; waited < 200 && !replicas_listed(); waited++) usleep(50000);
    CHECK(replicas_listed());
    c = cluster_client();
    uint64_t replica_cmds = 0, master_reads;
    sg_reply *r;
    int i;
    r = sg_client_call(c, "SET rp:key hello");
    sg_reply_free(r);
    r = sg_client_call(c, "WAIT 1 2000");
    sg_reply_free(r);
    CHECK_INT(sg_client_set_read_policy(c, SG_READ_REPLICA), SG_READ_MASTER);
    for (i = 0; i < 20; i++) {
        r = sg_client_call(c, "GET rp:key");
        CHECK(r && r->type == SG_REPLY_STRING && strcmp(r->str, "hello") == 0);
        sg_reply_free(r);
    }
    for (i = 0; i < sg_client_node_count(c); i++) {
        sg_node_stats st;
        sg_client_node_stats(c, i, &st);
        if (!st.is_master) replica_cmds += st.commands;
    }
    CHECK(replica_cmds >= 20);
    if (replica_cmds < 20)
        for (i = 0; i < sg_client_node_count(c); i++) {
            sg_node_stats st;
            sg_client_node_stats(c, i, &st);
            fprintf(stderr, "  node %s master=%d commands=%llu errors=%llu moved=%llu conns=%d\n",
                    st.addr, st.is_master, (unsigned long long)st.commands,
                    (unsigned long long)st.errors, (unsigned long long)st.moved, st.conns);
        }
    /* writes still go to the master */
    r = sg_client_call(c, "SET rp:key again");
    CHECK(r && r->type == SG_REPLY_STATUS);
    sg_reply_free(r);
    sg_client_set_read_policy(c, SG_READ_MASTER);
    master_reads = replica_cmds;
    for (i = 0; i < 5; i++) sg_reply_free(sg_client_call(c, "GET rp:key"));
    replica_cmds = 0;
    for (i = 0; i < sg_client_node_count(c); i++) {
        sg_node_stats st;
        sg_client_node_stats(c, i, &st);
        if (!st.is_master) replica_cmds += st.commands;
    }
    CHECK_INT(replica_cmds, master_reads);
    sg_reply_free(sg_client_call(c, "DEL rp:key"));
    sg_client_free(c);
}

/* Single-node mode: the standalone server, SELECT from the settings. */
static void test_single_node_select(void) {
    char addr[300];
    const char *env[] = {addr, "TYK_GW_STORAGE_DATABASE=3", NULL};
    sg_client *c;
    sg_reply *r;
    redisContext *rc;
    redisReply *d;
    snprintf(addr, sizeof addr, "TYK_GW_STORAGE_ADDRS=%s", test_server_var("SG_TEST_STANDALONE"));
    c = client_for(env, NULL);
    CHECK_INT(sg_client_connect(c), SG_OK);
    r = sg_client_call(c, "SET single:db3 yes");
    CHECK(r && r->type == SG_REPLY_STATUS);
    sg_reply_free(r);
    /* different slots: no splitting needed on one node */
    r = sg_client_call(c, "SUNIONSTORE s:{a} s:{b} s:{c}");
    CHECK(r && r->type == SG_REPLY_INTEGER);
    sg_reply_free(r);
    rc = direct(test_server_var("SG_TEST_STANDALONE"));
    d = redisCommand(rc, "SELECT 3");
    freeReplyObject(d);
    d = redisCommand(rc, "GET single:db3");
    CHECK(d && d->type == REDIS_REPLY_STRING && strcmp(d->str, "yes") == 0);
    freeReplyObject(d);
    d = redisCommand(rc, "DEL single:db3");
    freeReplyObject(d);
    redisFree(rc);
    sg_client_free(c);
}

/* A client for env connects, and ACL WHOAMI names user. */
static void check_whoami(const char *const *env, const char *user) {
    sg_client *c = client_for(env, NULL);
    sg_reply *r;
    CHECK_INT(sg_client_connect(c), SG_OK);
    r = sg_client_call(c, "ACL WHOAMI");
    CHECK(r && r->type == SG_REPLY_STRING);
    if (r) CHECK_STR(r->str, user);
    sg_reply_free(r);
    sg_client_free(c);
}

/* ACL users: the right password works, a wrong one says so and where. */
static void test_acl(void) {
    char addr[300], user[300], pass[300];
    const char *env[] = {addr, user, pass, NULL};
    sg_client *c;
    sg_reply *r;
    snprintf(addr, sizeof addr, "TYK_GW_STORAGE_ADDRS=%s", test_server_var("SG_TEST_ACL"));
    snprintf(user, sizeof user, "TYK_GW_STORAGE_USERNAME=%s", test_server_var("SG_TEST_ACL_USER"));
    snprintf(pass, sizeof pass, "TYK_GW_STORAGE_PASSWORD=%s", test_server_var("SG_TEST_ACL_PASS"));
    check_whoami(env, test_server_var("SG_TEST_ACL_USER"));

    snprintf(pass, sizeof pass, "TYK_GW_STORAGE_PASSWORD=not-the-password");
    c = client_for(env, NULL);
    CHECK_INT(sg_client_connect(c), SG_EAUTH);
    CHECK_CONTAINS(sg_errmsg(c), test_server_var("SG_TEST_ACL"));
    CHECK_CONTAINS(sg_errmsg(c), "WRONGPASS");
    r = sg_client_call(c, "GET x");
    CHECK(r == NULL);
    CHECK_INT(sg_errcode(c), SG_EAUTH);
    sg_client_free(c);

    /* password only: the default user */
    env[1] = NULL;
    snprintf(pass, sizeof pass, "TYK_GW_STORAGE_PASSWORD=%s",
             test_server_var("SG_TEST_ACL_DEFAULT_PASS"));
    env[1] = pass;
    check_whoami(env, "default");

    /* no password at all */
    env[1] = NULL;
    c = client_for(env, NULL);
    CHECK_INT(sg_client_connect(c), SG_EAUTH);
    CHECK_CONTAINS(sg_errmsg(c), "NOAUTH");
    sg_client_free(c);
}

/* TLS: the cluster and the single node (which also wants a user). */
static void test_tls(void) {
    char addrs[1024], ca[1024], cert[1024], key[1024], user[300], pass[300];
    const char *env[] = {addrs, "TYK_GW_STORAGE_ENABLECLUSTER=true", "TYK_GW_STORAGE_USESSL=true",
                         ca, cert, key, NULL};
    sg_client *c;
    sg_reply *r;
    int i, ok = 0;
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=%s",
             test_server_var("SG_TEST_TLS_CLUSTER_MASTERS"));
    snprintf(ca, sizeof ca, "TYK_GW_STORAGE_CAFILE=%s", test_server_var("SG_TEST_TLS_CA"));
    snprintf(cert, sizeof cert, "TYK_GW_STORAGE_CERTFILE=%s", test_server_var("SG_TEST_TLS_CERT"));
    snprintf(key, sizeof key, "TYK_GW_STORAGE_KEYFILE=%s", test_server_var("SG_TEST_TLS_KEY"));
    c = client_for(env, NULL);
    CHECK_INT(sg_errcode(c), SG_OK);
    CHECK_INT(sg_client_connect(c), SG_OK);
    for (i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof k, "tls:%d", i);
        r = sg_client_call(c, "SET %s %d", k, i);
        if (r && r->type == SG_REPLY_STATUS) ok++;
        sg_reply_free(r);
    }
    CHECK_INT(ok, 200);
    r = sg_client_call(c, "MGET tls:1 tls:2 tls:3 tls:150");
    CHECK(r && r->elements == 4);
    if (r && r->elements == 4) CHECK_STR(r->element[3]->str, "150");
    sg_reply_free(r);
    sg_client_free(c);

    /* without the CA the servers' certificate cannot be verified */
    env[3] = NULL;
    c = client_for(env, NULL);
    CHECK_INT(sg_client_connect(c), SG_ECONNECT);
    CHECK_CONTAINS(sg_errmsg(c), "TLS");
    sg_client_free(c);

    /* TLS single node with an ACL user */
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=%s",
             test_server_var("SG_TEST_TLS_STANDALONE"));
    snprintf(user, sizeof user, "TYK_GW_STORAGE_USERNAME=%s", test_server_var("SG_TEST_ACL_USER"));
    snprintf(pass, sizeof pass, "TYK_GW_STORAGE_PASSWORD=%s", test_server_var("SG_TEST_ACL_PASS"));
    {
        const char *env2[] = {addrs, "TYK_GW_STORAGE_USESSL=true", ca, user, pass, NULL};
        check_whoami(env2, test_server_var("SG_TEST_ACL_USER"));
    }
}

/* ---- pool bounds, with an async client ---------------------------------------- */

typedef struct counter {
    int done, ok, pool_errors, other;
    char last_err[512];
} counter;

static void count_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    counter *n = ud;
    (void)c;
    n->done++;
    if (status == SG_OK) n->ok++;
    else if (status == SG_EPOOL) {
        n->pool_errors++;
        snprintf(n->last_err, sizeof n->last_err, "%s", errmsg);
    } else {
        n->other++;
        snprintf(n->last_err, sizeof n->last_err, "%s", errmsg);
    }
    sg_reply_free(reply);
}

/* Connections of the standalone server whose last command was cmd. */
static int count_conns(redisContext *rc, const char *cmd) {
    redisReply *r = redisCommand(rc, "CLIENT LIST");
    char needle[64];
    const char *p;
    int n = 0;
    snprintf(needle, sizeof needle, "cmd=%s ", cmd);
    for (p = r ? r->str : ""; (p = strstr(p, needle)) != NULL; p++) n++;
    freeReplyObject(r);
    return n;
}

static void test_pool_bounds(void) {
    char addr[300];
    const char *env[] = {addr, "TYK_GW_STORAGE_MAXACTIVE=3", "TYK_GW_STORAGE_MAXIDLE=1",
                         "TYK_GW_STORAGE_TIMEOUT=2", NULL};
    struct event_base *base = event_base_new();
    sg_client *c;
    counter n = {0};
    redisContext *rc = direct(test_server_var("SG_TEST_STANDALONE"));
    int i, most = 0;
    sg_node_stats st;
    snprintf(addr, sizeof addr, "TYK_GW_STORAGE_ADDRS=%s", test_server_var("SG_TEST_STANDALONE"));
    c = client_for(env, base);
    /* 6 blocking pops that each need a connection of their own, 1 s each */
    for (i = 0; i < 6; i++)
        CHECK_INT(sg_client_send(c, count_reply, &n, "BLPOP pool:empty:%d 1", i), SG_OK);
    while (n.done < 6) {
        int now;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        now = count_conns(rc, "blpop");
        if (now > most) most = now;
    }
    CHECK_INT(n.ok, 6); /* 3 ran, 3 waited (< 2 s) and ran */
    CHECK(most <= 3);
    CHECK(most >= 2);
    sg_client_node_stats(c, 0, &st);
    CHECK(st.pool_waits >= 3);
    CHECK(st.conns <= 3);
    CHECK(st.idle <= 1); /* trimmed to max_idle */
    sg_client_free(c);

    /* waiting longer than the timeout: an error naming the node */
    {
        const char *env2[] = {addr, "TYK_GW_STORAGE_MAXACTIVE=1", "TYK_GW_STORAGE_TIMEOUT=1", NULL};
        counter m = {0};
        c = client_for(env2, base);
        CHECK_INT(sg_client_send(c, count_reply, &m, "BLPOP pool:empty 3"), SG_OK);
        CHECK_INT(sg_client_send(c, count_reply, &m, "GET pool:x"), SG_OK);
        while (m.done < 2) event_base_loop(base, EVLOOP_ONCE);
        CHECK_INT(m.ok, 1);
        CHECK_INT(m.pool_errors, 1);
        CHECK_CONTAINS(m.last_err, test_server_var("SG_TEST_STANDALONE"));
        CHECK_CONTAINS(m.last_err, "busy");
        sg_client_free(c);
    }
    redisFree(rc);
    event_base_free(base);
}

/* ---- order, with several connections in the pool ------------------------------ */

typedef struct order_check {
    int done, wrong;
} order_check;

typedef struct order_get {
    order_check *oc;
    int i;
} order_get;

#define ORDER_PAIRS 400
#define ORDER_PAD 10000 /* a few SETs fill more than a node reads at once (16 kB) */

static order_get order_gets[ORDER_PAIRS];
static char order_value[ORDER_PAD + 32];

/* The value SET i writes: "v<i>:" and padding. */
static const char *order_value_of(int i) {
    int n = snprintf(order_value, sizeof order_value, "v%d:", i);
    memset(order_value + n, 'x', ORDER_PAD);
    order_value[n + ORDER_PAD] = '\0';
    return order_value;
}

static void order_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    order_get *g = ud;
    (void)c;
    (void)errmsg;
    g->oc->done++;
    if (g->i >= 0) { /* a GET: must read what the SET just before it wrote */
        const char *want = order_value_of(g->i);
        if (status != SG_OK || reply == NULL || reply->type != SG_REPLY_STRING ||
            reply->len != strlen(want) || memcmp(reply->str, want, reply->len) != 0) {
            if (g->oc->wrong++ < 3)
                fprintf(stderr, "  GET order:<run>:%d right after its SET: %s\n", g->i,
                        reply == NULL                 ? "no reply"
                        : reply->type == SG_REPLY_NIL ? "nil"
                                                      : "another value");
        }
    }
    sg_reply_free(reply);
}

/* Once blocking commands have made the pool hold several connections to a
 * node, commands sent one after the other still run in that order: a GET
 * sent right after a SET of its key reads the SET's value. (The pool used to
 * give each command the least busy connection: with SETs of 10 kB queued on
 * one and the GETs on another, the node read a GET before its SET was read
 * whole, and answered nil.) */
static void test_pool_keeps_order(void) {
    char addr[300];
    const char *env[] = {addr, NULL};
    struct event_base *base = event_base_new();
    sg_client *c;
    counter n = {0};
    order_check oc = {0};
    order_get set_ud = {&oc, -1};
    sg_node_stats st;
    int i, sent = 0, run = (int)getpid();
    snprintf(addr, sizeof addr, "TYK_GW_STORAGE_ADDRS=%s", test_server_var("SG_TEST_STANDALONE"));
    c = client_for(env, base);
    /* 4 blocking pops, each on a connection of its own, then idle in the pool */
    for (i = 0; i < 4; i++)
        CHECK_INT(sg_client_send(c, count_reply, &n, "BLPOP order:empty:%d 0.2", i), SG_OK);
    while (n.done < 4) event_base_loop(base, EVLOOP_ONCE);
    sg_client_node_stats(c, 0, &st);
    CHECK(st.conns >= 2);
    for (i = 0; i < ORDER_PAIRS; i++) {
        order_gets[i].oc = &oc;
        order_gets[i].i = i;
        if (sg_client_send(c, order_reply, &set_ud, "SET order:%d:%d %s", run, i,
                           order_value_of(i)) == SG_OK)
            sent++;
        if (sg_client_send(c, order_reply, &order_gets[i], "GET order:%d:%d", run, i) == SG_OK)
            sent++;
        if (i % 10 == 9) /* a little in flight at a time, as a pipelining client */
            while (oc.done < sent - 10) event_base_loop(base, EVLOOP_ONCE);
    }
    while (oc.done < sent) event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(sent, 2 * ORDER_PAIRS);
    CHECK_INT(oc.wrong, 0);
    sg_client_free(c);
    event_base_free(base);
}

/* What the API refuses, and how it says so. */
static void test_refusals(void) {
    sg_client *c = cluster_client();
    sg_config *cfg = sg_config_new();
    sg_reply *r;
    r = sg_client_call(c, "MULTI");
    CHECK(r == NULL);
    CHECK_INT(sg_errcode(c), SG_ECOMMAND);
    CHECK_CONTAINS(sg_errmsg(c), "MULTI");
    r = sg_client_call(c, "NOSUCHCOMMAND a b");
    CHECK(r && r->type == SG_REPLY_ERROR);
    sg_reply_free(r);
    sg_client_free(c);
    /* an unknown upstream */
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, (const char *const[]){NULL}), SG_OK);
    c = sg_client_new(cfg, "cache", NULL);
    CHECK_INT(sg_errcode(c), SG_EINVAL);
    CHECK_CONTAINS(sg_errmsg(c), "cache");
    CHECK(sg_client_call(c, "PING") == NULL);
    sg_client_free(c);
    sg_config_free(cfg);
    /* nobody listening */
    {
        const char *env[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:1",
                             "TYK_GW_STORAGE_ENABLECLUSTER=true", NULL};
        c = client_for(env, NULL);
        CHECK_INT(sg_client_connect(c), SG_ECONNECT);
        CHECK_CONTAINS(sg_errmsg(c), "127.0.0.1:1");
        CHECK_CONTAINS(sg_errmsg(c), "refused");
        sg_client_free(c);
    }
}

/* SCAN over the cluster: the cursor names each master in turn; every key
 * comes back, MATCH and COUNT reach the nodes, a cursor the client made up
 * is refused. */
static void test_scan(void) {
    sg_client *c = cluster_client();
    sg_reply *r;
    char cursor[32] = "0", seen[200];
    int i, calls = 0, found = 0, bad = 0, masters_seen = 0, other = 0;
    long long most = 1000; /* calls: the walk must end */
    unsigned long long prev_low = 0;
    memset(seen, 0, sizeof seen);
    for (i = 0; i < 200; i++) {
        r = sg_client_call(c, "SET ctscan:{%d} %d", i, i);
        sg_reply_free(r);
    }
    /* other keys that MATCH leaves out */
    r = sg_client_call(c, "SET noctscan:x 1");
    sg_reply_free(r);
    /* a cluster that holds other keys (a benchmark's) takes more calls of 15 */
    r = sg_client_call(c, "DBSIZE");
    if (r && r->type == SG_REPLY_INTEGER) most += r->integer / 5;
    sg_reply_free(r);
    do {
        unsigned long long low;
        size_t j;
        r = sg_client_call(c, "SCAN %s MATCH ctscan:* COUNT 15", cursor);
        CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 2);
        if (!r || r->type != SG_REPLY_ARRAY || r->elements != 2) break;
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        low = strtoull(cursor, NULL, 10) & 1023; /* the master's place */
        if (low != prev_low) masters_seen++;
        prev_low = low;
        for (j = 0; j < r->element[1]->elements; j++) {
            int k = -1;
            if (sscanf(r->element[1]->element[j]->str, "ctscan:{%d}", &k) == 1 && k >= 0 &&
                k < 200) {
                if (!seen[k]) found++;
                seen[k] = 1;
            } else {
                other++;
            }
        }
        sg_reply_free(r);
        calls++;
    } while (strcmp(cursor, "0") != 0 && calls < most);
    CHECK_INT(found, 200);
    CHECK_INT(other, 0);
    CHECK(calls > 3);           /* COUNT was passed through */
    CHECK_INT(masters_seen, 3); /* 0 → 1 → 2 → 0 (the end) */
    /* made-up cursors */
    r = sg_client_call(c, "SCAN 1023");
    CHECK(r && r->type == SG_REPLY_ERROR);
    if (r) CHECK_STR(r->str, "ERR invalid cursor");
    sg_reply_free(r);
    r = sg_client_call(c, "SCAN x1");
    CHECK(r && r->type == SG_REPLY_ERROR);
    if (r) CHECK_STR(r->str, "ERR invalid cursor");
    sg_reply_free(r);
    /* the right master, the wrong tag: 1 + a tag no master has alongside */
    for (i = 0; i < 256 && !bad; i++) {
        char cur[32];
        snprintf(cur, sizeof cur, "%llu", (1ull << 18) | ((unsigned long long)i << 10) | 1ull);
        r = sg_client_call(c, "SCAN %s", cur);
        if (r && r->type == SG_REPLY_ERROR) bad = 1;
        sg_reply_free(r);
    }
    CHECK(bad);
    for (i = 0; i < 200; i++) {
        r = sg_client_call(c, "DEL ctscan:{%d}", i);
        sg_reply_free(r);
    }
    r = sg_client_call(c, "DEL noctscan:x");
    sg_reply_free(r);
    sg_client_free(c);
}

/* RANDOMKEY finds the master that has keys; CONFIG GET asks one node, CONFIG
 * SET every node; sg_client_send_node reaches the node named. */
static void test_admin_fan_outs(void) {
    sg_client *c = cluster_client();
    struct event_base *base = event_base_new();
    sg_reply *r;
    int i, masters = 0, replicas = 0, tries;
    r = sg_client_call(c, "FLUSHALL");
    CHECK(r && r->type == SG_REPLY_STATUS);
    sg_reply_free(r);
    r = sg_client_call(c, "SET rk:only 1");
    sg_reply_free(r);
    /* one key on one of three masters: without the pick, 2 of 3 tries are nil */
    for (tries = 0; tries < 10; tries++) {
        r = sg_client_call(c, "RANDOMKEY");
        CHECK(r && r->type == SG_REPLY_STRING);
        if (r && r->type == SG_REPLY_STRING) CHECK_STR(r->str, "rk:only");
        sg_reply_free(r);
    }
    r = sg_client_call(c, "DEL rk:only");
    sg_reply_free(r);
    r = sg_client_call(c, "RANDOMKEY");
    CHECK(r && r->type == SG_REPLY_NIL);
    sg_reply_free(r);
    /* CONFIG SET reaches replicas too */
    r = sg_client_call(c, "CONFIG SET slowlog-max-len 129");
    CHECK(r && r->type == SG_REPLY_STATUS);
    sg_reply_free(r);
    r = sg_client_call(c, "CONFIG GET slowlog-max-len");
    CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 2);
    if (r && r->elements == 2) CHECK_STR(r->element[1]->str, "129");
    sg_reply_free(r);
    for (i = 0; i < sg_client_node_count(c); i++) {
        sg_node_stats st;
        sg_client_node_stats(c, i, &st);
        redisContext *rc = direct(st.addr);
        redisReply *dr = redisCommand(rc, "CONFIG GET slowlog-max-len");
        CHECK(dr && dr->elements == 2 && strcmp(dr->element[1]->str, "129") == 0);
        freeReplyObject(dr);
        dr = redisCommand(rc, "CONFIG SET slowlog-max-len 128");
        freeReplyObject(dr);
        redisFree(rc);
        if (st.is_master) masters++;
        else replicas++;
    }
    CHECK_INT(masters, 3);
    CHECK(replicas >= 1);
    sg_client_free(c);
    /* one node by its index: a replica, which no slot routes to */
    {
        const char *env[] = {env_addrs, "TYK_GW_STORAGE_ENABLECLUSTER=true", NULL};
        counter m = {0};
        uint64_t before[64];
        int n, replica = -1;
        c = client_for(env, base);
        CHECK_INT(sg_client_send_argv(c, 1, (const char *const[]){"DBSIZE"}, NULL, count_reply, &m),
                  SG_OK); /* the map */
        while (m.done < 1) event_base_loop(base, EVLOOP_ONCE);
        n = sg_client_node_count(c);
        for (i = 0; i < n && i < 64; i++) {
            sg_node_stats st;
            sg_client_node_stats(c, i, &st);
            before[i] = st.commands;
            if (!st.is_master && replica < 0) replica = i;
        }
        CHECK(replica >= 0);
        if (replica >= 0) {
            CHECK_INT(sg_client_send_node(c, replica, 2,
                                          (const char *const[]){"INFO", "replication"}, NULL,
                                          count_reply, &m),
                      SG_OK);
            while (m.done < 2) event_base_loop(base, EVLOOP_ONCE);
            CHECK_INT(m.ok, 2);
            for (i = 0; i < n && i < 64; i++) {
                sg_node_stats st;
                sg_client_node_stats(c, i, &st);
                CHECK_INT(st.commands - before[i], i == replica ? 1 : 0);
            }
        }
        CHECK_INT(sg_client_send_node(c, 99, 1, (const char *const[]){"PING"}, NULL, count_reply,
                                      &m),
                  SG_EINVAL);
        CHECK_CONTAINS(sg_errmsg(c), "99");
        sg_client_free(c);
    }
    event_base_free(base);
}

/* ---- a gateway whose policy rewrites keys ---------------------------------------------- */

/* What one forwarded command got: a tree (fn) or the node's bytes (raw_fn). */
typedef struct fwd {
    int done, raw, status;
    sg_reply *reply;
    char bytes[256];
} fwd;

static void fwd_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    fwd *f = ud;
    (void)c;
    (void)errmsg;
    f->done = 1;
    f->status = status;
    f->reply = reply;
}

static void fwd_raw(sg_client *c, const char *resp, size_t len, void *ud) {
    fwd *f = ud;
    (void)c;
    f->done = f->raw = 1;
    snprintf(f->bytes, sizeof f->bytes, "%.*s", (int)len, resp);
}

/* Forwards a space-separated command as a proxy does (raw_fn given) and
 * runs the loop until it is answered. */
static void forward(sg_gateway *g, struct event_base *base, const char *command, fwd *f) {
    const char *argv[16];
    char buf[512], *save = NULL, *t;
    int argc = 0;
    sg_request_ctx ctx = {.user = "alice"};
    memset(f, 0, sizeof *f);
    snprintf(buf, sizeof buf, "%s", command);
    for (t = strtok_r(buf, " ", &save); t && argc < 16; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    CHECK_INT(sg_gateway_forward(g, &ctx, argc, argv, NULL, NULL, 0, fwd_reply, fwd_raw, f), SG_OK);
    while (!f->done) event_base_loop(base, EVLOOP_ONCE);
    CHECK_INT(f->status, SG_OK);
}

/* BLPOP, BZPOPMIN, LMPOP and XREAD under a prefix policy name their keys as
 * the client did; replies that name no key still come as bytes. */
static void test_gateway_names_keys_back(void) {
    struct event_base *base = event_base_new();
    const char *env[] = {env_addrs, "TYK_GW_STORAGE_ENABLECLUSTER=true", NULL};
    sg_config *cfg = sg_config_new();
    sg_policy *p = sg_policy_new();
    sg_gateway *g;
    sg_client *direct_c;
    char prefix[64], cmd[256], stored[128];
    sg_reply *r;
    fwd f;
    snprintf(env_addrs, sizeof env_addrs, "TYK_GW_STORAGE_ADDRS=%s",
             test_server_var("SG_TEST_CLUSTER_MASTERS"));
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env), SG_OK);
    g = sg_gateway_new(cfg, base);
    sg_config_free(cfg);
    snprintf(prefix, sizeof prefix, "ctkn%d:{user}:", (int)getpid());
    snprintf(cmd, sizeof cmd, "return {prefix = '%s'}", prefix);
    CHECK_INT(sg_policy_load_string(p, "kn.lua", cmd), SG_OK);
    sg_gateway_set_policy(g, p);
    snprintf(prefix, sizeof prefix, "ctkn%d:alice:", (int)getpid());

    forward(g, base, "DEL {t}l z s", &f);
    sg_reply_free(f.reply);
    forward(g, base, "RPUSH {t}l a b c", &f);
    sg_reply_free(f.reply);
    forward(g, base, "BLPOP {t}n {t}l 1", &f); /* two keys, one slot */
    CHECK(!f.raw); /* a tree, named back */
    CHECK(f.reply && f.reply->type == SG_REPLY_ARRAY && f.reply->elements == 2);
    if (f.reply && f.reply->elements == 2) {
        CHECK_STR(f.reply->element[0]->str, "{t}l");
        CHECK_STR(f.reply->element[1]->str, "a");
    } else if (f.reply && f.reply->type == SG_REPLY_ERROR) {
        CHECK_STR(f.reply->str, "(no error)");
    }
    sg_reply_free(f.reply);
    forward(g, base, "LMPOP 1 {t}l RIGHT", &f);
    CHECK(!f.raw);
    CHECK(f.reply && f.reply->type == SG_REPLY_ARRAY && f.reply->elements == 2);
    if (f.reply && f.reply->elements == 2) CHECK_STR(f.reply->element[0]->str, "{t}l");
    sg_reply_free(f.reply);
    forward(g, base, "LPOP {t}l", &f); /* names no key: the fast path stays */
    CHECK(f.raw);
    CHECK_STR(f.bytes, "$1\r\nb\r\n");
    forward(g, base, "ZADD z 1 m", &f);
    sg_reply_free(f.reply);
    forward(g, base, "BZPOPMIN z 1", &f);
    CHECK(!f.raw);
    CHECK(f.reply && f.reply->type == SG_REPLY_ARRAY && f.reply->elements == 3);
    if (f.reply && f.reply->elements == 3) CHECK_STR(f.reply->element[0]->str, "z");
    sg_reply_free(f.reply);
    forward(g, base, "XADD s 1-1 f v", &f);
    sg_reply_free(f.reply);
    forward(g, base, "XREAD COUNT 5 STREAMS s 0", &f);
    CHECK(!f.raw);
    CHECK(f.reply && f.reply->type == SG_REPLY_ARRAY && f.reply->elements == 1);
    if (f.reply && f.reply->elements == 1) CHECK_STR(f.reply->element[0]->element[0]->str, "s");
    sg_reply_free(f.reply);
    forward(g, base, "BLPOP {t}l 0.1", &f); /* a timeout's nil: as it is */
    CHECK(!f.raw && f.reply && f.reply->type == SG_REPLY_NIL);
    sg_reply_free(f.reply);

    /* without a policy nothing is rewritten, nor named back: the node's bytes */
    sg_gateway_set_policy(g, NULL);
    snprintf(stored, sizeof stored, "RPUSH %sl x", prefix);
    forward(g, base, stored, &f);
    if (!f.raw) sg_reply_free(f.reply);
    snprintf(stored, sizeof stored, "BLPOP %sl 1", prefix);
    forward(g, base, stored, &f);
    CHECK(f.raw);
    CHECK_CONTAINS(f.bytes, prefix);

    /* the cluster holds the stored names */
    direct_c = cluster_client();
    snprintf(stored, sizeof stored, "%ss", prefix);
    r = sg_client_call(direct_c, "XLEN %s", stored);
    CHECK(r && r->type == SG_REPLY_INTEGER && r->integer == 1);
    sg_reply_free(r);
    r = sg_client_call(direct_c, "DEL %s", stored);
    sg_reply_free(r);
    sg_client_free(direct_c);

    sg_gateway_free(g);
    sg_policy_free(p);
    event_base_free(base);
}

int main(void) {
    RUN(test_keys_land_on_their_slot);
    RUN(test_multi_key);
    RUN(test_fan_out);
    RUN(test_read_policy);
    RUN(test_single_node_select);
    RUN(test_acl);
    RUN(test_tls);
    RUN(test_pool_bounds);
    RUN(test_pool_keeps_order);
    RUN(test_refusals);
    RUN(test_scan);
    RUN(test_admin_fan_outs);
    RUN(test_gateway_names_keys_back);
    return test_report();
}
