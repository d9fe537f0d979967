/*
 * ct_resp3.c — the engine's reply reader (core/src/reply.c) against what a
 * live Redis node sends in RESP3: the harness's standalone server, on a
 * plain socket opened with HELLO 3. Every type Redis 7.0 has comes from
 * DEBUG PROTOCOL (the harness enables DEBUG) or from an ordinary command;
 * each reply must be cut where it ends and read as the type the node meant.
 * Then a client that speaks RESP3 to the 3+3 cluster (sg_client_set_protocol):
 * the slot map, redirects, split commands and every type through the engine,
 * and a password given in HELLO's AUTH.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "test.h"

typedef struct expect {
    const char *cmd; /* inline, space-separated */
    int type;        /* of the reply */
    int push_first;  /* a push comes ahead of it (DEBUG PROTOCOL push) */
} expect;

static const expect cases[] = {
    {"DEBUG PROTOCOL string", SG_REPLY_STRING, 0},
    {"DEBUG PROTOCOL integer", SG_REPLY_INTEGER, 0},
    {"DEBUG PROTOCOL double", SG_REPLY_DOUBLE, 0},
    {"DEBUG PROTOCOL bignum", SG_REPLY_BIGNUM, 0},
    {"DEBUG PROTOCOL null", SG_REPLY_NIL, 0},
    {"DEBUG PROTOCOL array", SG_REPLY_ARRAY, 0},
    {"DEBUG PROTOCOL set", SG_REPLY_SET, 0},
    {"DEBUG PROTOCOL map", SG_REPLY_MAP, 0},
    {"DEBUG PROTOCOL attrib", SG_REPLY_STRING, 0}, /* with an attribute */
    {"DEBUG PROTOCOL push", SG_REPLY_STRING, 1},
    {"DEBUG PROTOCOL verbatim", SG_REPLY_VERB, 0},
    {"DEBUG PROTOCOL true", SG_REPLY_BOOL, 0},
    {"DEBUG PROTOCOL false", SG_REPLY_BOOL, 0},
    {"DEL ct_resp3:h ct_resp3:s ct_resp3:z", SG_REPLY_INTEGER, 0},
    {"HSET ct_resp3:h f v g w", SG_REPLY_INTEGER, 0},
    {"HGETALL ct_resp3:h", SG_REPLY_MAP, 0},
    {"SADD ct_resp3:s a b", SG_REPLY_INTEGER, 0},
    {"SMEMBERS ct_resp3:s", SG_REPLY_SET, 0},
    {"ZADD ct_resp3:z 1.5 m", SG_REPLY_INTEGER, 0},
    {"ZSCORE ct_resp3:z m", SG_REPLY_DOUBLE, 0},
    {"GET ct_resp3:missing", SG_REPLY_NIL, 0},
    {"EVAL \"return redis.error_reply('boom')\" 0", SG_REPLY_ERROR, 0},
    {"CONFIG GET maxmemory", SG_REPLY_MAP, 0},
    {"DEL ct_resp3:h ct_resp3:s ct_resp3:z", SG_REPLY_INTEGER, 0},
    {"SUBSCRIBE ct_resp3:c", SG_REPLY_PUSH, 0},
};
#define NCASES (sizeof cases / sizeof *cases)

static int connect_to(const char *addr) {
    char host[256];
    int port, fd;
    struct sockaddr_in sa;
    test_split_addr(addr, host, sizeof host, &port);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return -1;
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until want replies are whole in buf (or 5 s pass); their count. */
static int read_replies(int fd, char *buf, size_t cap, size_t *len, int want) {
    int got = 0;
    for (;;) {
        size_t at = 0;
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        got = 0;
        for (;;) {
            long long end = sg_reply_scan(buf + at, *len - at);
            if (end <= 0) break;
            at += (size_t)end;
            got++;
        }
        if (got >= want || poll(&p, 1, 5000) <= 0) return got;
        if ((n = recv(fd, buf + *len, cap - *len, 0)) <= 0) return got;
        *len += (size_t)n;
    }
}

static void test_every_type_from_a_node(void) {
    static char buf[1 << 16];
    char out[4096];
    size_t olen = 0, len = 0, at = 0, i;
    int fd = connect_to(test_server_var("SG_TEST_STANDALONE")), want = 1, got;
    CHECK(fd >= 0);
    if (fd < 0) return;
    olen += (size_t)snprintf(out + olen, sizeof out - olen, "HELLO 3\r\n");
    for (i = 0; i < NCASES; i++) {
        olen += (size_t)snprintf(out + olen, sizeof out - olen, "%s\r\n", cases[i].cmd);
        want += 1 + cases[i].push_first;
    }
    CHECK_INT(send(fd, out, olen, 0), (long long)olen);
    got = read_replies(fd, buf, sizeof buf, &len, want);
    CHECK_INT(got, want);
    if (got < want) {
        close(fd);
        return;
    }
    {
        int err;
        long long n = sg_reply_scan(buf, len);
        sg_reply *hello = sg_reply_parse(buf, (size_t)n, &err);
        CHECK(hello != NULL && hello->type == SG_REPLY_MAP);
        sg_reply_free(hello);
        at = (size_t)n;
    }
    for (i = 0; i < NCASES; i++) {
        int k;
        for (k = 0; k <= cases[i].push_first; k++) {
            long long n = sg_reply_scan(buf + at, len - at);
            int err;
            sg_reply *r = n > 0 ? sg_reply_parse(buf + at, (size_t)n, &err) : NULL;
            int type = k < cases[i].push_first ? SG_REPLY_PUSH : cases[i].type;
            if (r == NULL || r->type != type) {
                TEST_FAIL_("%s: reply %d is type %d, expected %d", cases[i].cmd, k,
                           r ? r->type : -1, type);
            } else if (strcmp(cases[i].cmd, "DEBUG PROTOCOL attrib") == 0) {
                CHECK(r->attribute != NULL && r->attribute->type == SG_REPLY_ATTR &&
                      r->attribute->elements == 2);
            } else if (strcmp(cases[i].cmd, "ZSCORE ct_resp3:z m") == 0) {
                CHECK(r->dval == 1.5);
            } else if (strcmp(cases[i].cmd, "HGETALL ct_resp3:h") == 0) {
                CHECK_INT(r->elements, 4);
            } else if (strcmp(cases[i].cmd, "DEBUG PROTOCOL true") == 0) {
                CHECK_INT(r->integer, 1);
            }
            test_checks++;
            sg_reply_free(r);
            if (n > 0) at += (size_t)n;
        }
    }
    CHECK_INT(at, len);
    close(fd);
}

/* A client of the cluster (its masters as seeds) speaking proto to the
 * nodes; with a password when pass is not NULL (the ACL server, single). */
static sg_client *client_of(const char *addrs, int cluster, const char *user, const char *pass,
                            int proto) {
    char a[2048], u[128], p[128];
    const char *env[5] = {a, cluster ? "TYK_GW_STORAGE_ENABLECLUSTER=true" : NULL, NULL, NULL,
                          NULL};
    sg_config *cfg = sg_config_new();
    sg_client *c;
    int n = cluster ? 2 : 1;
    snprintf(a, sizeof a, "TYK_GW_STORAGE_ADDRS=%s", addrs);
    if (user) {
        snprintf(u, sizeof u, "TYK_GW_STORAGE_USERNAME=%s", user);
        env[n++] = u;
    }
    if (pass) {
        snprintf(p, sizeof p, "TYK_GW_STORAGE_PASSWORD=%s", pass);
        env[n++] = p;
    }
    if (sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env) != SG_OK) {
        TEST_FAIL_("settings: %s", sg_errmsg(cfg));
        sg_config_free(cfg);
        return NULL;
    }
    c = sg_client_new(cfg, NULL, NULL);
    sg_config_free(cfg);
    if (c && proto) CHECK_INT(sg_client_set_protocol(c, proto), SG_OK);
    return c;
}

static void test_client_speaks_resp3(void) {
    sg_client *c = client_of(test_server_var("SG_TEST_CLUSTER_MASTERS"), 1, NULL, NULL, 3);
    sg_reply *r;
    if (c == NULL) return;
    CHECK_INT(sg_client_connect(c), SG_OK);
    CHECK_INT(sg_client_set_protocol(c, 2), SG_EINVAL); /* too late: connected */
    r = sg_client_call(c, "DEL ct3:{h} ct3:{z} ct3:{s}");
    sg_reply_free(r);
    r = sg_client_call(c, "HSET ct3:{h} f v g w");
    CHECK(r && r->type == SG_REPLY_INTEGER && r->integer == 2);
    sg_reply_free(r);
    r = sg_client_call(c, "HGETALL ct3:{h}");
    CHECK(r && r->type == SG_REPLY_MAP && r->elements == 4);
    sg_reply_free(r);
    r = sg_client_call(c, "ZADD ct3:{z} 2.5 m");
    sg_reply_free(r);
    r = sg_client_call(c, "ZSCORE ct3:{z} m");
    CHECK(r && r->type == SG_REPLY_DOUBLE && r->dval == 2.5);
    sg_reply_free(r);
    r = sg_client_call(c, "GET ct3:none");
    CHECK(r && r->type == SG_REPLY_NIL);
    sg_reply_free(r);
    /* keys of every master: the map from CLUSTER SLOTS read in RESP3, MGET
     * split by slot and merged */
    r = sg_client_call(c, "MSET ct3:a 1 ct3:b 2 ct3:c 3 ct3:d 4");
    CHECK(r && r->type == SG_REPLY_STATUS);
    sg_reply_free(r);
    r = sg_client_call(c, "MGET ct3:a ct3:b ct3:none ct3:d");
    CHECK(r && r->type == SG_REPLY_ARRAY && r->elements == 4);
    if (r && r->elements == 4) {
        CHECK_STR(r->element[1]->str, "2");
        CHECK_INT(r->element[2]->type, SG_REPLY_NIL);
    }
    sg_reply_free(r);
    r = sg_client_call(c, "DEL ct3:a ct3:b ct3:c ct3:d ct3:{h} ct3:{z}");
    CHECK(r && r->type == SG_REPLY_INTEGER && r->integer == 6);
    sg_reply_free(r);
    CHECK_INT(sg_client_set_protocol(c, 4), SG_EINVAL);
    sg_client_free(c);
}

/* HELLO 3 AUTH in the handshake: the ACL server's user, and a wrong
 * password refused as AUTH would be. */
static void test_resp3_handshake_auth(void) {
    const char *acl = test_server_var("SG_TEST_ACL");
    sg_client *c = client_of(acl, 0, test_server_var("SG_TEST_ACL_USER"),
                             test_server_var("SG_TEST_ACL_PASS"), 3);
    sg_reply *r;
    if (c == NULL) return;
    r = sg_client_call(c, "HSET ct3:acl f v");
    sg_reply_free(r);
    r = sg_client_call(c, "HGETALL ct3:acl");
    CHECK(r && r->type == SG_REPLY_MAP);
    sg_reply_free(r);
    sg_reply_free(sg_client_call(c, "DEL ct3:acl"));
    sg_client_free(c);
    c = client_of(acl, 0, test_server_var("SG_TEST_ACL_USER"), "wrong", 3);
    if (c == NULL) return;
    r = sg_client_call(c, "PING");
    CHECK(r == NULL);
    CHECK_INT(sg_errcode(c), SG_EAUTH);
    sg_reply_free(r);
    sg_client_free(c);
}

int main(void) {
    RUN(test_every_type_from_a_node);
    RUN(test_client_speaks_resp3);
    RUN(test_resp3_handshake_auth);
    return test_report();
}
