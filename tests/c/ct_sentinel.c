/*
 * ct_sentinel.c — Sentinel mode against the harness's Sentinel group: a
 * master and its replica (both with a password), three Sentinels (with a
 * password of their own) that monitor the master as
 * SG_TEST_SENTINEL_MASTER_NAME.
 *
 * The client is made the way Tyk makes its storage: from TYK_GW_STORAGE_*
 * variables (ADDRS = the Sentinels, MASTERNAME, SENTINELPASSWORD, PASSWORD,
 * DATABASE), a blocking client on them.
 *
 *  - connect, SET and GET through the client; the data is on the master the
 *    Sentinels name (read directly), and the client sent nothing to the
 *    replica;
 *  - DATABASE=2: the writes land in database 2, not 0;
 *  - a first Sentinel that cannot be reached: the client asks the next;
 *  - a wrong Sentinel password, no Sentinel password, an unknown master
 *    name: sg_client_connect fails, and so does a command, with a message
 *    that names every Sentinel and the cause (WRONGPASS, NOAUTH, the name);
 *    a wrong data password: SG_EAUTH naming the master;
 *  - failover: SENTINEL FAILOVER, on a Sentinel other than the one the client
 *    is connected to, while the client writes without pause (each write a
 *    key of its own). The client must write to the promoted replica within
 *    10 s of the last write the old master took, and never go back to the
 *    old master; the gap is printed, and how the client learnt of the new
 *    master (+switch-master on its subscription, or a look-up: the engine
 *    logs which). Every error the caller saw is printed and must name the
 *    node or say what happened. Then every write is read back from the new
 *    master (below), and from the old one once it is its replica.
 *
 * Durability. SENTINEL FAILOVER promotes the replica (REPLICAOF NO ONE)
 * without stopping the old master: that one goes on taking writes until the
 * Sentinels turn it into a replica, some 10 s later, and then drops them in a
 * full resync. Clients learn of the promotion from a Sentinel a second or so
 * after it (the Sentinel that runs the failover sees it in INFO, every
 * second; the others from its hello messages, every 2 s). Without more, what
 * the old master acknowledges meanwhile is lost whatever the client does
 * (measured: some 8000 writes in a second). Redis's answer is
 * min-replicas-to-write: a master that has lost its replica refuses writes
 * (NOREPLICAS). The test sets it to 1 on the master before the failover (on
 * the master only: the promoted replica has no replica of its own until the
 * old master joins it) and clears it afterwards. That still leaves a window
 * of a few milliseconds: writes the old master acknowledged and streamed
 * while the replica, busy being promoted, no longer read them. So, as
 * ct_failover does for a killed master, the test confirms replication with a
 * probe from a thread of its own: SET sf:probe then WAIT 1 on a direct
 * connection to the old master, again and again. The replication stream is
 * in order, so a WAIT that succeeds covers every write the old master had
 * acknowledged before the probe. The judgement, per write:
 *   - acknowledged by the new master: must be there;
 *   - acknowledged by the old master, before a confirmed probe: must be there;
 *   - acknowledged by the old master after the last confirmed probe: may be
 *     lost (the window above); counted and printed;
 *   - failed: must not be there; outcome unknown: either.
 *
 * After the failover the test waits until the group is consistent again: the
 * old master is a replica of the new one with its link up, holding the same
 * writes, and every Sentinel names the new master and knows its replica. The
 * roles stay swapped (SG_TEST_SENTINEL_DATA keeps the roles as started; the
 * test asks the Sentinels who is master, so it can run again on the same
 * servers). Every wait polls a condition against a deadline.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "cluster_ops.h"
#include "slotgate.h"
#include "test.h"

#define MAXW (1u << 20) /* failover writes, at most */
#define MAX_SHOWN 40

static const char *sentinels, *master_name, *sentinel_pass, *data_pass;

/* ---- the engine's log ---------------------------------------------------------- */

/* What the engine said about the master: +switch-master on the
 * subscription, or a look-up that found a new address. */
static atomic_int saw_switch_message, saw_lookup_change;
static atomic_int log_verbose;

static void on_log(int level, const char *msg, void *ud) {
    (void)ud;
    if (strstr(msg, "+switch-master")) atomic_store(&saw_switch_message, 1);
    if (strstr(msg, "\" is now ")) atomic_store(&saw_lookup_change, 1);
    if (atomic_load(&log_verbose) || level >= SG_LOG_WARN)
        printf("    log %s: %s\n", sg_log_level_name(level), msg);
}

/* ---- direct connections (hiredis) ------------------------------------------------ */

/* A direct connection to a data node (password data_pass) or a Sentinel
 * (sentinel_pass), with 2 s bounds. */
static void direct_init(ops_node *d, const char *addr, const char *pass) {
    ops_node_init(d, addr);
    d->pass = pass;
    d->timeout_ms = 2000;
}

/* A command on a direct connection, connected and authenticated on first
 * use. A connection that had worked and fails (a Sentinel closes the clients
 * of a server it reconfigures) is made again, once. NULL with d->err on I/O
 * failure; an error reply is a reply. */
static redisReply *dcmd(ops_node *d, const char *fmt, ...) {
    redisReply *r = NULL;
    int attempt, was_up = d->ctx != NULL;
    va_list ap;
    for (attempt = 0; attempt < 2 && r == NULL; attempt++) {
        va_start(ap, fmt);
        r = ops_vcmd(d, fmt, ap);
        va_end(ap);
        if (r == NULL && !was_up) break;
    }
    return r;
}

/* The first element of ROLE: "master", "slave", or "" when unreadable. */
static void role_of(ops_node *d, char *out, size_t n) {
    redisReply *r = dcmd(d, "ROLE");
    out[0] = '\0';
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(out, n, "%s", r->element[0]->str);
    if (r) freeReplyObject(r);
}

/* ---- the Sentinel group ------------------------------------------------------------ */

#define NSENT 3
static ops_node sent[NSENT];
static int nsent;

static void sentinels_init(void) {
    const char *p = sentinels;
    while (*p && nsent < NSENT) {
        char one[64];
        size_t l = strcspn(p, ",");
        snprintf(one, sizeof one, "%.*s", (int)l, p);
        direct_init(&sent[nsent++], one, sentinel_pass);
        p += l + (p[l] == ',');
    }
    if (nsent != NSENT || *p) {
        TEST_FAIL_("SG_TEST_SENTINELS=%s: expected %d addresses", sentinels, NSENT);
        exit(test_report());
    }
}

/* The master Sentinel s names, "host:port" into out; -1 (why in out) if none. */
static int sentinel_master(ops_node *s, char *out, size_t n) {
    redisReply *r = dcmd(s, "SENTINEL get-master-addr-by-name %s", master_name);
    int rc = -1;
    if (r == NULL)
        snprintf(out, n, "%.200s", s->err);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        snprintf(out, n, "%s:%s", r->element[0]->str, r->element[1]->str);
        rc = 0;
    } else {
        snprintf(out, n, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "no address");
    }
    if (r) freeReplyObject(r);
    return rc;
}

/* A field of a flat [field, value, ...] reply, or "". */
static const char *field_of(const redisReply *r, const char *name) {
    size_t i;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) return "";
    for (i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            return r->element[i + 1]->str;
    return "";
}

/* What keeps the group from being consistent with master m and replica rep
 * ("" when nothing): every Sentinel names m, sees it as plain master, knows
 * 2 other Sentinels and 1 replica, rep, up; rep is a replica of m, its link
 * up. (What a Sentinel says of the replica's link comes from an INFO it
 * sends every 10 s: rep's own INFO is the fresh word.) */
static void group_problem(const char *m, const char *rep, char *why, size_t n) {
    ops_node dr;
    redisReply *r;
    char got[300], f[64];
    int i;
    why[0] = '\0';
    for (i = 0; i < nsent; i++) {
        redisReply *rs;
        if (sentinel_master(&sent[i], got, sizeof got) != 0 || strcmp(got, m) != 0) {
            snprintf(why, n, "Sentinel %.60s names %.100s, not %.60s", sent[i].addr, got, m);
            return;
        }
        r = dcmd(&sent[i], "SENTINEL master %s", master_name);
        if (strcmp(field_of(r, "flags"), "master") != 0 ||
            strcmp(field_of(r, "num-other-sentinels"), "2") != 0 ||
            strcmp(field_of(r, "num-slaves"), "1") != 0) {
            snprintf(why, n,
                     "Sentinel %.60s sees the master with flags \"%.60s\", %.20s other Sentinels, "
                     "%.20s replicas",
                     sent[i].addr, field_of(r, "flags"), field_of(r, "num-other-sentinels"),
                     field_of(r, "num-slaves"));
            if (r) freeReplyObject(r);
            return;
        }
        if (r) freeReplyObject(r);
        rs = dcmd(&sent[i], "SENTINEL replicas %s", master_name);
        if (rs == NULL || rs->type != REDIS_REPLY_ARRAY || rs->elements != 1 ||
            strcmp(field_of(rs->element[0], "name"), rep) != 0 ||
            strcmp(field_of(rs->element[0], "flags"), "slave") != 0) {
            snprintf(why, n, "Sentinel %.60s does not see %.60s as its only replica, up",
                     sent[i].addr, rep);
            if (rs) freeReplyObject(rs);
            return;
        }
        freeReplyObject(rs);
    }
    direct_init(&dr, rep, data_pass);
    r = dcmd(&dr, "INFO replication");
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        snprintf(why, n, "%.60s: INFO: %.200s", rep, r ? r->str : dr.err);
    } else {
        char host[64], port[16];
        ops_info_field(r->str, "role", f, sizeof f);
        ops_info_field(r->str, "master_host", host, sizeof host);
        ops_info_field(r->str, "master_port", port, sizeof port);
        snprintf(got, sizeof got, "%s:%s", host, port);
        if (strcmp(f, "slave") != 0)
            snprintf(why, n, "%s is still a %s, not a replica of %s", rep, f, m);
        else if (strcmp(got, m) != 0)
            snprintf(why, n, "%s is a replica of %s, not of %s", rep, got, m);
        else {
            ops_info_field(r->str, "master_link_status", f, sizeof f);
            if (strcmp(f, "up") != 0) snprintf(why, n, "%s: master_link_status:%s", rep, f);
        }
    }
    if (r) freeReplyObject(r);
    ops_node_close(&dr);
}

/* Who is master and who is replica now, from the Sentinels (they must
 * agree, and the group must be consistent). */
static void current_roles(char *m, char *rep, size_t n) {
    const char *data = test_server_var("SG_TEST_SENTINEL_DATA");
    char why[400];
    const char *comma = strchr(data, ',');
    uint64_t deadline = ops_now_ms() + 30000;
    if (comma == NULL || sentinel_master(&sent[0], m, n) != 0) {
        TEST_FAIL_("no master from Sentinel %s (%s) or bad SG_TEST_SENTINEL_DATA=%s", sent[0].addr,
                   m, data);
        exit(test_report());
    }
    if (strncmp(data, m, (size_t)(comma - data)) == 0 && m[comma - data] == '\0')
        snprintf(rep, n, "%s", comma + 1);
    else
        snprintf(rep, n, "%.*s", (int)(comma - data), data);
    /* a previous run may have left the group mid-change: wait for it */
    for (;;) {
        group_problem(m, rep, why, sizeof why);
        if (why[0] == '\0') return;
        if (ops_now_ms() > deadline) {
            TEST_FAIL_("the Sentinel group is not consistent: %s", why);
            exit(test_report());
        }
        ops_sleep_ms(50);
    }
}

/* ---- clients ---------------------------------------------------------------------- */

/* A blocking client on the group; extra: more "NAME=value" settings,
 * NULL-terminated. They go first: the first of a name wins, as in environ. */
static sg_client *new_client(const char *const *extra) {
    static char addrs[600], name[300], spass[300], pass[300];
    const char *env[16];
    int n = 0, i;
    sg_config *cfg = sg_config_new();
    sg_client *c;
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=%s", sentinels);
    snprintf(name, sizeof name, "TYK_GW_STORAGE_MASTERNAME=%s", master_name);
    snprintf(spass, sizeof spass, "TYK_GW_STORAGE_SENTINELPASSWORD=%s", sentinel_pass);
    snprintf(pass, sizeof pass, "TYK_GW_STORAGE_PASSWORD=%s", data_pass);
    for (i = 0; extra && extra[i] && i < 10; i++) env[n++] = extra[i];
    env[n++] = addrs;
    env[n++] = name;
    env[n++] = spass;
    env[n++] = pass;
    env[n] = NULL;
    if (cfg == NULL || sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env) != SG_OK) {
        TEST_FAIL_("settings: %s", cfg ? sg_errmsg(cfg) : "out of memory");
        exit(test_report());
    }
    {
        const char *mode = NULL;
        sg_config_get(cfg, NULL, "mode", 0, &mode, NULL);
        CHECK_STR(mode, "sentinel");
    }
    c = sg_client_new(cfg, NULL, NULL);
    sg_config_free(cfg);
    if (c == NULL || sg_errcode(c) != SG_OK) {
        TEST_FAIL_("client: %s", c ? sg_errmsg(c) : "out of memory");
        exit(test_report());
    }
    return c;
}

/* The client's figures for node addr (NULL if it does not know it). */
static int node_stats(sg_client *c, const char *addr, sg_node_stats *st) {
    int i, n = sg_client_node_count(c);
    for (i = 0; i < n; i++)
        if (sg_client_node_stats(c, i, st) == SG_OK && strcmp(st->addr, addr) == 0) return 0;
    return -1;
}

static int is_ok(const sg_reply *r) {
    return r && r->type == SG_REPLY_STATUS && strcmp(r->str, "OK") == 0;
}

/* ---- connect, read, write ---------------------------------------------------------- */

static void test_connect_and_data(void) {
    char m[300], rep[300], val[64];
    sg_client *c = new_client(NULL);
    sg_reply *r;
    redisReply *d;
    ops_node dm;
    sg_node_stats st;
    int rc = sg_client_connect(c);
    CHECK_INT(rc, SG_OK);
    if (rc != SG_OK) {
        printf("  connect: %s\n", sg_errmsg(c));
        sg_client_free(c);
        return;
    }
    current_roles(m, rep, sizeof m);
    printf("  master %s, replica %s; the client asked the Sentinels %llu time(s)\n", m, rep,
           (unsigned long long)sg_client_refresh_count(c));
    CHECK(sg_client_refresh_count(c) >= 1);
    snprintf(val, sizeof val, "v-%llu", (unsigned long long)ops_now_ms());
    r = sg_client_call(c, "SET s:hello %s", val);
    CHECK(is_ok(r));
    sg_reply_free(r);
    r = sg_client_call(c, "GET s:hello");
    CHECK(r != NULL && r->type == SG_REPLY_STRING);
    if (r && r->type == SG_REPLY_STRING) CHECK_STR(r->str, val);
    sg_reply_free(r);
    /* the data really is on the master the Sentinels name */
    direct_init(&dm, m, data_pass);
    d = dcmd(&dm, "GET s:hello");
    CHECK(d != NULL && d->type == REDIS_REPLY_STRING);
    if (d && d->type == REDIS_REPLY_STRING) CHECK_STR(d->str, val);
    if (d) freeReplyObject(d);
    d = dcmd(&dm, "ROLE");
    CHECK(d != NULL && d->type == REDIS_REPLY_ARRAY && d->elements > 0);
    if (d && d->type == REDIS_REPLY_ARRAY && d->elements > 0)
        CHECK_STR(d->element[0]->str, "master");
    if (d) freeReplyObject(d);
    d = dcmd(&dm, "DEL s:hello");
    if (d) freeReplyObject(d);
    ops_node_close(&dm);
    /* and the client sent its commands there, not to the replica */
    CHECK_INT(node_stats(c, m, &st), 0);
    CHECK(st.commands >= 2);
    CHECK(st.is_master);
    if (node_stats(c, rep, &st) == 0) CHECK_INT(st.commands, 0);
    sg_client_free(c);
}

static void test_database(void) {
    const char *extra[] = {"TYK_GW_STORAGE_DATABASE=2", NULL};
    char m[300], rep[300];
    sg_client *c = new_client(extra);
    sg_reply *r;
    redisReply *d;
    ops_node dm;
    CHECK_INT(sg_client_connect(c), SG_OK);
    current_roles(m, rep, sizeof m);
    direct_init(&dm, m, data_pass);
    d = dcmd(&dm, "DEL s:db");
    if (d) freeReplyObject(d);
    r = sg_client_call(c, "SET s:db in-db-2");
    CHECK(is_ok(r));
    sg_reply_free(r);
    r = sg_client_call(c, "GET s:db");
    CHECK(r != NULL && r->type == SG_REPLY_STRING && strcmp(r->str, "in-db-2") == 0);
    sg_reply_free(r);
    /* database 0 does not have it; database 2 does */
    d = dcmd(&dm, "EXISTS s:db");
    CHECK(d != NULL && d->type == REDIS_REPLY_INTEGER);
    if (d && d->type == REDIS_REPLY_INTEGER) CHECK_INT(d->integer, 0);
    if (d) freeReplyObject(d);
    d = dcmd(&dm, "SELECT 2");
    if (d) freeReplyObject(d);
    d = dcmd(&dm, "GET s:db");
    CHECK(d != NULL && d->type == REDIS_REPLY_STRING);
    if (d && d->type == REDIS_REPLY_STRING) CHECK_STR(d->str, "in-db-2");
    if (d) freeReplyObject(d);
    d = dcmd(&dm, "DEL s:db");
    if (d) freeReplyObject(d);
    ops_node_close(&dm);
    sg_client_free(c);
}

/* A Sentinel that cannot be reached (first in the list: port 1, where
 * nothing listens) does not keep the client from the others. */
static void test_first_sentinel_unreachable(void) {
    static char addrs[700];
    const char *extra[] = {addrs, NULL};
    char m[300], rep[300];
    sg_client *c;
    sg_reply *r;
    sg_node_stats st;
    int rc;
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=127.0.0.1:1,%s", sentinels);
    c = new_client(extra);
    rc = sg_client_connect(c);
    CHECK_INT(rc, SG_OK);
    if (rc != SG_OK) printf("  connect with 127.0.0.1:1 first: %s\n", sg_errmsg(c));
    r = sg_client_call(c, "SET s:reach yes");
    CHECK(is_ok(r));
    sg_reply_free(r);
    current_roles(m, rep, sizeof m);
    CHECK_INT(node_stats(c, m, &st), 0);
    CHECK(st.commands >= 1);
    CHECK_INT(node_stats(c, "127.0.0.1:1", &st), 0);
    CHECK(st.errors >= 1);
    r = sg_client_call(c, "DEL s:reach");
    sg_reply_free(r);
    sg_client_free(c);
}

/* ---- refusals ------------------------------------------------------------------------ */

/* Connects with settings extra; the connect must fail with one of the codes
 * and a message holding every string of must (NULL-terminated); prints it. */
static void expect_refusal(const char *what, const char *const *extra, int code1, int code2,
                           const char *const *must) {
    sg_client *c = new_client(extra);
    uint64_t t0 = ops_now_ms();
    int rc = sg_client_connect(c), i;
    const char *msg = sg_errmsg(c);
    printf("  %s: SG_%s after %llu ms: %s\n", what, sg_errname(rc),
           (unsigned long long)(ops_now_ms() - t0), msg);
    if (rc != code1 && rc != code2)
        TEST_FAIL_("%s: sg_client_connect gave SG_%s, expected SG_%s or SG_%s", what,
                   sg_errname(rc), sg_errname(code1), sg_errname(code2));
    CHECK_INT(sg_errcode(c), rc);
    for (i = 0; must[i]; i++) CHECK_CONTAINS(msg, must[i]);
    /* a command fails the same way, and clearly */
    {
        sg_reply *r = sg_client_call(c, "GET s:x");
        CHECK(r == NULL);
        if (r == NULL) {
            CHECK(sg_errcode(c) != SG_OK);
            for (i = 0; must[i]; i++) CHECK_CONTAINS(sg_errmsg(c), must[i]);
        }
        sg_reply_free(r);
    }
    sg_client_free(c);
}

static void test_wrong_sentinel_password(void) {
    const char *extra[] = {"TYK_GW_STORAGE_SENTINELPASSWORD=not-the-password", NULL};
    const char *must[] = {sent[0].addr, sent[1].addr, sent[2].addr, "WRONGPASS", "sentinel", NULL};
    expect_refusal("wrong sentinel_password", extra, SG_EAUTH, SG_ECONNECT, must);
}

static void test_no_sentinel_password(void) {
    const char *extra[] = {"TYK_GW_STORAGE_SENTINELPASSWORD=", NULL};
    const char *must[] = {sent[0].addr, sent[1].addr, sent[2].addr, "NOAUTH", "sentinel", NULL};
    expect_refusal("no sentinel_password", extra, SG_EAUTH, SG_ECONNECT, must);
}

static void test_unknown_master(void) {
    const char *extra[] = {"TYK_GW_STORAGE_MASTERNAME=no-such-master", NULL};
    const char *must[] = {sent[0].addr, sent[1].addr, sent[2].addr, "\"no-such-master\"", NULL};
    expect_refusal("unknown master name", extra, SG_ECONNECT, SG_ECONFIG, must);
}

static void test_wrong_data_password(void) {
    const char *extra[] = {"TYK_GW_STORAGE_PASSWORD=not-the-password", NULL};
    char m[300], rep[300];
    const char *must[] = {m, "WRONGPASS", NULL};
    current_roles(m, rep, sizeof m);
    expect_refusal("wrong password (data nodes)", extra, SG_EAUTH, SG_EAUTH, must);
}

/* ---- failover ------------------------------------------------------------------------- */

/* Each write sets a key of its own, sf:<n> = n, so that a lost write cannot
 * hide behind a later one to the same key. */
enum { W_NONE = 0, W_ACK_OLD, W_ACK_NEW, W_UNKNOWN, W_FAIL };

typedef struct load {
    sg_client *c;
    unsigned char *outcome; /* per write number */
    uint32_t *done_ms;      /* per write number: when it completed, ms from start */
    uint64_t start;
    unsigned long long n; /* next write number */
    atomic_ullong done;   /* writes completed: every one below has its outcome */
    atomic_ullong floor_; /* the old master's writes below are confirmed replicated */
    const char *old_addr, *new_addr;
    uint64_t last_ack_old;        /* ms: the last write acknowledged by the old master */
    uint64_t first_ack_new;       /* ms: the first acknowledged by the new master */
    unsigned long long first_new; /* its number */
    uint64_t first_fail;          /* ms: the first write not acknowledged */
    uint64_t acks, fails, unknown, error_replies, max_call_ms, back_to_old;
    uint64_t by_code[32];
    uint64_t refreshes_at_switch;
    char shown[MAX_SHOWN][200];
    int nshown;
} load;

static load L;

/* Prints an error the first time its text (numbers aside) is seen. */
static void show_error(const char *kind, const char *msg) {
    char shape[200];
    size_t i, o = 0;
    int k;
    for (i = 0; msg[i] && o + 1 < sizeof shape; i++)
        if (msg[i] < '0' || msg[i] > '9') shape[o++] = msg[i];
    shape[o] = '\0';
    for (k = 0; k < L.nshown; k++)
        if (strcmp(L.shown[k], shape) == 0) return;
    if (L.nshown < MAX_SHOWN) snprintf(L.shown[L.nshown++], sizeof shape, "%s", shape);
    printf("    error: %s: %s\n", kind, msg);
}

/* Redis's own words for a master that is changing: each says what happened
 * (NOREPLICAS: the old master lost its replica to the promotion). */
static int transient_reply(const char *s) {
    return strncmp(s, "NOREPLICAS ", 11) == 0 || strncmp(s, "READONLY ", 9) == 0 ||
           strncmp(s, "MASTERDOWN ", 11) == 0 || strncmp(s, "LOADING ", 8) == 0;
}

static int expected_code(int code) {
    return code == SG_ECONNECT || code == SG_EUNKNOWN || code == SG_ETIMEOUT ||
           code == SG_ECLOSED || code == SG_EIO || code == SG_ECLUSTERDOWN;
}

static uint64_t commands_to(const char *addr) {
    sg_node_stats st;
    return node_stats(L.c, addr, &st) == 0 ? st.commands : 0;
}

static void write_one(void) {
    char key[32], val[32];
    uint64_t t0, t1, before_new = commands_to(L.new_addr);
    sg_reply *r;
    unsigned char out = W_FAIL;
    if (L.n >= MAXW) return;
    snprintf(key, sizeof key, "sf:%llu", L.n);
    snprintf(val, sizeof val, "%llu", L.n);
    t0 = ops_now_ms();
    r = sg_client_call(L.c, "SET %s %s", key, val);
    t1 = ops_now_ms();
    if (t1 - t0 > L.max_call_ms) L.max_call_ms = t1 - t0;
    if (is_ok(r)) {
        L.acks++;
        if (commands_to(L.new_addr) > before_new) {
            out = W_ACK_NEW;
            if (L.first_ack_new == 0) {
                L.first_ack_new = t1;
                L.first_new = L.n;
                L.refreshes_at_switch = sg_client_refresh_count(L.c);
            }
        } else {
            out = W_ACK_OLD;
            L.last_ack_old = t1;
            if (L.first_ack_new && L.back_to_old++ < 5)
                TEST_FAIL_("write %llu went to the old master %s after the client had written to "
                           "the new one",
                           L.n, L.old_addr);
        }
    } else if (r != NULL && r->type == SG_REPLY_ERROR) {
        L.error_replies++;
        show_error("error reply", r->str);
        if (!transient_reply(r->str)) TEST_FAIL_("SET %s: unexpected error reply: %s", key, r->str);
    } else if (r != NULL) {
        TEST_FAIL_("SET %s: unexpected reply of type %d", key, r->type);
    } else {
        int code = sg_errcode(L.c);
        const char *msg = sg_errmsg(L.c);
        char kind[64];
        if (code == SG_EUNKNOWN) {
            out = W_UNKNOWN;
            L.unknown++;
        }
        if (code < 0 && -code < 32) L.by_code[-code]++;
        snprintf(kind, sizeof kind, "SG_%s", sg_errname(code));
        show_error(kind, msg);
        if (!expected_code(code) ||
            (strstr(msg, "node ") == NULL && strstr(msg, "sentinel") == NULL))
            TEST_FAIL_("SET %s failed with an unexpected code or an unclear message: %s: %s", key,
                       kind, msg);
    }
    if (out == W_FAIL || out == W_UNKNOWN) {
        L.fails++;
        if (L.first_fail == 0) L.first_fail = t1;
    }
    L.done_ms[L.n] = (uint32_t)(t1 - L.start);
    L.outcome[L.n++] = out;
    atomic_store(&L.done, L.n);
    sg_reply_free(r);
}

static void run_load(int ms) {
    uint64_t until = ops_now_ms() + (uint64_t)ms;
    do write_one();
    while (ops_now_ms() < until);
}

/* Two helper threads, so that the client's loop never waits for them:
 *  - watch: the replica's ROLE every 5 ms, for the moment of promotion;
 *  - probe: on the old master, SET sf:probe then WAIT 1 200, again and
 *    again. The replication stream is in order, so a WAIT that succeeds
 *    covers every write the old master had acknowledged before the probe:
 *    those are on the replica, and the promoted replica must have them. */
typedef struct helper {
    char addr[300];
    atomic_ullong seen; /* watch: ms when promoted */
    atomic_ullong probes_ok, probes_failed;
    atomic_int stop;
    pthread_t th;
} helper;

static void *watch_main(void *arg) {
    helper *w = arg;
    ops_node d;
    char role[32];
    direct_init(&d, w->addr, data_pass);
    while (!atomic_load(&w->stop)) {
        role_of(&d, role, sizeof role);
        if (strcmp(role, "master") == 0) {
            atomic_store(&w->seen, ops_now_ms());
            break;
        }
        ops_sleep_ms(5);
    }
    ops_node_close(&d);
    return NULL;
}

static void *probe_main(void *arg) {
    helper *p = arg;
    ops_node d;
    direct_init(&d, p->addr, data_pass);
    while (!atomic_load(&p->stop)) {
        unsigned long long snap = atomic_load(&L.done);
        redisReply *r = dcmd(&d, "SET sf:probe %llu", snap);
        int ok = 0;
        if (r != NULL && r->type == REDIS_REPLY_STATUS) {
            freeReplyObject(r);
            r = dcmd(&d, "WAIT 1 200");
            ok = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1;
        }
        if (r) freeReplyObject(r);
        if (ok) {
            if (snap > atomic_load(&L.floor_)) atomic_store(&L.floor_, snap);
            atomic_fetch_add(&p->probes_ok, 1);
        } else {
            atomic_fetch_add(&p->probes_failed, 1);
        }
        ops_sleep_ms(5);
    }
    ops_node_close(&d);
    return NULL;
}

static void helper_start(helper *h, const char *addr, void *(*fn)(void *)) {
    memset(h, 0, sizeof *h);
    snprintf(h->addr, sizeof h->addr, "%s", addr);
    if (pthread_create(&h->th, NULL, fn, h) != 0) {
        TEST_FAIL_("cannot start a thread");
        exit(test_report());
    }
}

static void helper_stop(helper *h) {
    atomic_store(&h->stop, 1);
    pthread_join(h->th, NULL);
}

#define BATCH 500

/* One command over the keys sf:<from> .. sf:<to - 1> on d ("MGET", "DEL"). */
static redisReply *keys_cmd(ops_node *d, const char *cmd, unsigned long long from,
                            unsigned long long to) {
    static char names[BATCH][32];
    const char *argv[BATCH + 1];
    unsigned long long i;
    int argc = 0;
    argv[argc++] = cmd;
    for (i = from; i < to && argc <= BATCH; i++) {
        snprintf(names[argc - 1], sizeof names[0], "sf:%llu", i);
        argv[argc] = names[argc - 1];
        argc++;
    }
    return ops_cmd_argv(d, argc, argv, NULL);
}

/* Reads every write's key back from node addr (directly) and judges it: a
 * write the new master acknowledged must be there, and one the old master
 * acknowledged below the confirmed floor; one that failed must not be. A
 * write the old master acknowledged after its last confirmed replication may
 * be lost (see the top): those are counted, and shown. */
static void verify(const char *addr, const char *when) {
    ops_node d;
    unsigned long long from, i, floor_ = atomic_load(&L.floor_);
    unsigned long long lost_unconfirmed = 0, lost = 0, failed_there = 0, unknown_there = 0, bad = 0;
    long long lost_first = -1, lost_last = -1;
    direct_init(&d, addr, data_pass);
    for (from = 0; from < L.n; from += BATCH) {
        unsigned long long to = from + BATCH < L.n ? from + BATCH : L.n;
        redisReply *r = keys_cmd(&d, "MGET", from, to);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != to - from) {
            TEST_FAIL_("%s: MGET on %s: %s", when, addr,
                       r ? (r->str ? r->str : "bad reply") : d.err);
            if (r) freeReplyObject(r);
            ops_node_close(&d);
            return;
        }
        for (i = from; i < to; i++) {
            const redisReply *e = r->element[i - from];
            int there = e->type == REDIS_REPLY_STRING;
            unsigned char o = L.outcome[i];
            if (there && strtoull(e->str, NULL, 10) != i) {
                if (++bad <= 5) TEST_FAIL_("%s: sf:%llu holds \"%s\" on %s", when, i, e->str, addr);
            } else if (!there && o == W_ACK_OLD && i >= floor_) {
                lost_unconfirmed++;
                if (lost_first < 0) lost_first = (long long)i;
                lost_last = (long long)i;
            } else if (!there && (o == W_ACK_OLD || o == W_ACK_NEW)) {
                if (++lost <= 5)
                    TEST_FAIL_("%s: write %llu (sf:%llu), acknowledged by the %s master%s, is not "
                               "on %s",
                               when, i, i, o == W_ACK_OLD ? "old" : "new",
                               o == W_ACK_OLD ? " and confirmed replicated" : "", addr);
            } else if (there && o == W_FAIL) {
                if (++failed_there <= 5)
                    TEST_FAIL_("%s: write %llu (sf:%llu) is on %s; the client reported it as not "
                               "done",
                               when, i, i, addr);
            } else if (there && o == W_UNKNOWN) {
                unknown_there++;
            }
        }
        freeReplyObject(r);
    }
    ops_node_close(&d);
    printf("  %s: %llu writes read back from %s: %llu acknowledged ones lost, %llu failed ones "
           "present, %llu with an unknown outcome present, %llu wrong\n",
           when, L.n, addr, lost, failed_there, unknown_there, bad);
    if (lost_unconfirmed)
        printf("    and %llu writes the old master acknowledged after its last confirmed "
               "replication (write %llu) are lost, as Redis allows: writes %lld..%lld, done "
               "%u..%u ms after the start of the load\n",
               lost_unconfirmed, floor_, lost_first, lost_last, L.done_ms[lost_first],
               L.done_ms[lost_last]);
    CHECK_INT(lost, 0);
    CHECK_INT(failed_there, 0);
    CHECK_INT(bad, 0);
}

/* Deletes what a run that stopped half-way left (keys sf:*) on master d. */
static void delete_stale(ops_node *d) {
    char cursor[32] = "0";
    size_t i;
    do {
        redisReply *r = dcmd(d, "SCAN %s MATCH sf:* COUNT 1000", cursor);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            TEST_FAIL_("SCAN on %s: %s", d->addr, r ? (r->str ? r->str : "bad reply") : d->err);
            if (r) freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (i = 0; i < r->element[1]->elements; i++) {
            redisReply *x = dcmd(d, "DEL %s", r->element[1]->element[i]->str);
            if (x) freeReplyObject(x);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

/* Deletes every write's key (through node addr, a master). */
static void delete_keys(const char *addr) {
    ops_node d;
    unsigned long long from;
    redisReply *r;
    direct_init(&d, addr, data_pass);
    for (from = 0; from < L.n; from += BATCH) {
        r = keys_cmd(&d, "DEL", from, from + BATCH < L.n ? from + BATCH : L.n);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            TEST_FAIL_("DEL on %s: %s", addr, r ? (r->str ? r->str : "bad reply") : d.err);
            if (r) freeReplyObject(r);
            break;
        }
        freeReplyObject(r);
    }
    r = dcmd(&d, "DEL sf:probe sf:sync");
    if (r) freeReplyObject(r);
    ops_node_close(&d);
}

static int config_set(ops_node *d, const char *name, const char *value) {
    redisReply *r = dcmd(d, "CONFIG SET %s %s", name, value);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    if (!ok)
        TEST_FAIL_("CONFIG SET %s %s on %s: %s", name, value, d->addr,
                   r ? (r->str ? r->str : "bad reply") : d->err);
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

static void test_failover(void) {
    char m[300], rep[300], got[300], why[400];
    ops_node dm, dr;
    redisReply *r;
    helper watch, probe;
    uint64_t t_failover = 0, promoted, deadline, refreshes0;
    int i, via_switch, via_lookup, sub = -1, target;
    sg_node_stats st;

    current_roles(m, rep, sizeof m);
    memset(&L, 0, sizeof L);
    L.outcome = calloc(MAXW, 1);
    L.done_ms = calloc(MAXW, sizeof *L.done_ms);
    if (L.outcome == NULL || L.done_ms == NULL) {
        TEST_FAIL_("out of memory");
        exit(test_report());
    }
    L.old_addr = m;
    L.new_addr = rep;
    L.c = new_client(NULL);
    CHECK_INT(sg_client_connect(L.c), SG_OK);
    direct_init(&dm, m, data_pass);
    direct_init(&dr, rep, data_pass);
    /* the guard (see the top): on the master only */
    config_set(&dm, "min-replicas-to-write", "1");
    config_set(&dr, "min-replicas-to-write", "0");
    delete_stale(&dm);

    L.start = ops_now_ms();
    helper_start(&probe, m, probe_main);
    run_load(300); /* steady state */
    CHECK(L.acks > 0);
    CHECK_INT(L.fails, 0);
    for (i = 0; i < nsent; i++)
        if (node_stats(L.c, sent[i].addr, &st) == 0 && st.conns > 0) sub = i;
    printf("  master %s, replica %s; %llu writes in 300 ms; the client is connected to "
           "Sentinel %s\n",
           m, rep, L.n, sub >= 0 ? sent[sub].addr : "(none)");

    /* The failover, run by a Sentinel other than the one the client is
     * connected to: the client must hear of it through its own. A Sentinel
     * may refuse at first (its view of the replica not yet fresh): asked
     * again, under load. */
    target = sub == nsent - 1 ? 0 : nsent - 1;
    helper_start(&watch, rep, watch_main);
    refreshes0 = sg_client_refresh_count(L.c);
    atomic_store(&saw_switch_message, 0);
    atomic_store(&saw_lookup_change, 0);
    atomic_store(&log_verbose, 1);
    deadline = ops_now_ms() + 30000;
    while (t_failover == 0 && ops_now_ms() < deadline) {
        r = dcmd(&sent[target], "SENTINEL FAILOVER %s", master_name);
        printf("  SENTINEL FAILOVER %s on %s: %s\n", master_name, sent[target].addr,
               r ? r->str : sent[target].err);
        if (r != NULL && r->type == REDIS_REPLY_STATUS)
            t_failover = ops_now_ms();
        else
            run_load(200);
        if (r) freeReplyObject(r);
    }
    if (t_failover == 0) {
        TEST_FAIL_("no Sentinel failover began within 30 s");
        t_failover = ops_now_ms();
    }

    /* write until the client writes to the new master, and a while more */
    deadline = t_failover + 20000;
    while (L.first_ack_new == 0 && ops_now_ms() < deadline) run_load(10);
    if (L.first_ack_new) run_load(500);
    helper_stop(&watch);
    helper_stop(&probe);
    atomic_store(&log_verbose, 0);
    promoted = atomic_load(&watch.seen);
    via_switch = atomic_load(&saw_switch_message);
    via_lookup = atomic_load(&saw_lookup_change);

    printf("  %llu writes: %llu acknowledged, %llu not (%llu error replies, %llu with an unknown "
           "outcome); longest call %llu ms; replication confirmed %llu times up to write %llu\n",
           L.n, (unsigned long long)L.acks, (unsigned long long)L.fails,
           (unsigned long long)L.error_replies, (unsigned long long)L.unknown,
           (unsigned long long)L.max_call_ms, (unsigned long long)atomic_load(&probe.probes_ok),
           (unsigned long long)atomic_load(&L.floor_));
    for (i = 1; i < 32; i++)
        if (L.by_code[i])
            printf("    failures SG_%s: %llu\n", sg_errname(-i), (unsigned long long)L.by_code[i]);
    if (promoted == 0) TEST_FAIL_("%s was not promoted within 20 s", rep);
    CHECK(atomic_load(&probe.probes_ok) > 0);
    if (L.first_ack_new == 0) {
        TEST_FAIL_("the client did not write to the new master %s within 20 s of the failover",
                   rep);
    } else {
        uint64_t gap = L.first_ack_new - (L.last_ack_old ? L.last_ack_old : t_failover);
        printf("  timeline, ms after SENTINEL FAILOVER: replica promoted at %lld, first write "
               "refused at %lld, last write to the old master at %lld, first write to the new "
               "master at %lld\n",
               promoted ? (long long)(promoted - t_failover) : -1LL,
               L.first_fail ? (long long)(L.first_fail - t_failover) : -1LL,
               L.last_ack_old ? (long long)(L.last_ack_old - t_failover) : -1LL,
               (long long)(L.first_ack_new - t_failover));
        printf("  failover gap (no write acknowledged): %llu ms; from the promotion to the first "
               "write to the new master: %lld ms\n",
               (unsigned long long)gap,
               promoted ? (long long)L.first_ack_new - (long long)promoted : -1LL);
        printf("  the client learnt of the new master through %s (+switch-master seen: %s; a "
               "look-up found it: %s; Sentinel look-ups: %llu before the failover, %llu at the "
               "switch)\n",
               via_switch   ? "+switch-master"
               : via_lookup ? "a look-up"
                            : "nothing it logged",
               via_switch ? "yes" : "no", via_lookup ? "yes" : "no", (unsigned long long)refreshes0,
               (unsigned long long)L.refreshes_at_switch);
        if (gap > 10000)
            TEST_FAIL_("failover gap %llu ms, more than 10 s", (unsigned long long)gap);
        CHECK(via_switch || via_lookup);
    }
    CHECK_INT(L.back_to_old, 0);
    /* the client now sends to the new master, as master */
    CHECK_INT(node_stats(L.c, rep, &st), 0);
    CHECK(st.is_master);

    verify(rep, "after the failover, on the new master");

    /* the group settles: the old master becomes a replica of the new one */
    deadline = ops_now_ms() + 40000;
    why[0] = '\0';
    for (;;) {
        char last[400];
        snprintf(last, sizeof last, "%s", why);
        group_problem(rep, m, why, sizeof why);
        if (why[0] == '\0') break;
        if (strcmp(why, last) != 0)
            printf("    %llu ms: %s\n", (unsigned long long)(ops_now_ms() - t_failover), why);
        if (ops_now_ms() > deadline) {
            TEST_FAIL_("the group did not settle within 40 s of the failover: %s", why);
            break;
        }
        ops_sleep_ms(50);
    }
    if (why[0] == '\0')
        printf("  group consistent again %llu ms after the failover: master %s, replica %s\n",
               (unsigned long long)(ops_now_ms() - t_failover), rep, m);
    config_set(&dm, "min-replicas-to-write", "0");
    /* the old master holds what the new one holds, once it has caught up */
    r = dcmd(&dr, "SET sf:sync done");
    if (r) freeReplyObject(r);
    r = dcmd(&dr, "WAIT 1 5000");
    CHECK(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    if (r) freeReplyObject(r);
    verify(m, "then on the old master, now a replica");
    /* and the client goes on writing to the new master */
    {
        uint64_t before = commands_to(rep), fails = L.fails;
        run_load(100);
        CHECK_INT(L.fails, fails);
        CHECK(commands_to(rep) > before);
    }
    CHECK_INT(sentinel_master(&sent[0], got, sizeof got), 0);
    CHECK_STR(got, rep);
    delete_keys(rep);
    ops_node_close(&dm);
    ops_node_close(&dr);
    sg_client_free(L.c);
    free(L.outcome);
    free(L.done_ms);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    sentinels = test_server_var("SG_TEST_SENTINELS");
    master_name = test_server_var("SG_TEST_SENTINEL_MASTER_NAME");
    sentinel_pass = test_server_var("SG_TEST_SENTINEL_PASS");
    data_pass = test_server_var("SG_TEST_SENTINEL_DATA_PASS");
    sentinels_init();
    sg_set_log(on_log, SG_LOG_INFO, NULL);
    RUN(test_connect_and_data);
    RUN(test_database);
    RUN(test_first_sentinel_unreachable);
    RUN(test_wrong_sentinel_password);
    RUN(test_no_sentinel_password);
    RUN(test_unknown_master);
    RUN(test_wrong_data_password);
    RUN(test_failover);
    for (int i = 0; i < nsent; i++) ops_node_close(&sent[i]);
    return test_report();
}
