/*
 * ct_harness.c — checks that tests/harness/servers.sh delivered what it
 * promises (servers.env, documented at the top of servers.sh): a ready 6-node
 * cluster (3 masters, 3 replicas, replication working), a standalone server,
 * an ACL server with its users, and the TLS cluster and TLS standalone server.
 *
 * hiredis 0.14 has no TLS, so the TLS servers are checked through
 * `redis-cli --tls` (REDIS_CLI overrides the program).
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#define MAX_NODES 16

/* ---- helpers ------------------------------------------------------------- */

/* Splits a comma-separated list of addresses into out[] (static storage). */
static int split_list(const char *list, char out[][64], int max) {
    int n = 0;
    while (*list && n < max) {
        size_t len = strcspn(list, ",");
        if (len > 0 && len < 64) {
            memcpy(out[n], list, len);
            out[n][len] = '\0';
            n++;
        }
        list += len;
        if (*list == ',') list++;
    }
    return n;
}

static int in_list(const char *addr, char list[][64], int n) {
    int i;
    for (i = 0; i < n; i++)
        if (strcmp(addr, list[i]) == 0) return 1;
    return 0;
}

/* Connects to "host:port"; NULL (and a failed check) when it cannot. */
static redisContext *connect_addr(const char *addr) {
    struct timeval tv = {5, 0};
    char host[256];
    int port;
    redisContext *c;

    test_split_addr(addr, host, sizeof host, &port);
    c = redisConnectWithTimeout(host, port, tv);
    CHECK(c != NULL);
    if (c == NULL) return NULL;
    if (c->err) {
        fprintf(stderr, "connecting to %s:\n", addr);
        CHECK_STR(c->errstr, "");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* Runs a command; the reply's text in buf: a status or string as is, an
 * error as is, an integer in decimal, nil as "(nil)", an array as "(array N)",
 * a lost connection as "(no reply: why)". Returns buf. */
static const char *cmd(redisContext *c, char *buf, size_t len, const char *fmt,
                       ...) {
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        snprintf(buf, len, "(no reply: %s)", c->errstr);
        return buf;
    }
    switch (r->type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_ERROR:
        snprintf(buf, len, "%.*s", (int)r->len, r->str);
        break;
    case REDIS_REPLY_INTEGER: snprintf(buf, len, "%lld", r->integer); break;
    case REDIS_REPLY_NIL: snprintf(buf, len, "(nil)"); break;
    case REDIS_REPLY_ARRAY:
        snprintf(buf, len, "(array %zu)", r->elements);
        break;
    default: snprintf(buf, len, "(reply type %d)", r->type);
    }
    freeReplyObject(r);
    return buf;
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* s begins with prefix (printing s when not). */
#define CHECK_PREFIX(s, prefix)                                                \
    do {                                                                       \
        const char *p_ = (s);                                                  \
        test_checks++;                                                         \
        if (!starts_with(p_, prefix))                                          \
            TEST_FAIL_("%s starts with \"%s\": got \"%s\"", #s, prefix, p_);   \
    } while (0)

/* Counts the nodes CLUSTER NODES text calls master and replica (slave),
 * and those with a flag a ready cluster has not (fail, fail?, handshake,
 * noaddr). */
static void count_roles(const char *nodes, int *masters, int *replicas,
                        int *bad) {
    const char *line = nodes;
    *masters = *replicas = *bad = 0;
    while (line && *line) {
        char id[64], address[128], flags[128];
        if (sscanf(line, "%63s %127s %127s", id, address, flags) == 3) {
            char f[130];
            snprintf(f, sizeof f, ",%s,", flags);
            if (strstr(f, ",master,")) (*masters)++;
            if (strstr(f, ",slave,")) (*replicas)++;
            if (strstr(f, ",fail,") || strstr(f, ",fail?,") ||
                strstr(f, ",handshake,") || strstr(f, ",noaddr,"))
                (*bad)++;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
}

/* Quotes s for sh: 'like this', with ' as '\''. */
static void shell_quote(char *out, size_t len, const char *s) {
    size_t o = 0;
    if (len < 3) return;
    out[o++] = '\'';
    for (; *s && o + 6 < len; s++) {
        if (*s == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *s;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
}

/* Runs `redis-cli --tls --cacert CA [opts] -h host -p port ARGS` and returns
 * its output (stdout and stderr, \r removed) in buf; *status gets the exit
 * status. */
static const char *tls_cli(char *buf, size_t len, int *status, const char *addr,
                           const char *opts, const char *args) {
    const char *prog = getenv("REDIS_CLI") ? getenv("REDIS_CLI") : "redis-cli";
    char qca[1100], command[4096], host[256];
    size_t n = 0;
    int port, rc;
    FILE *p;

    test_split_addr(addr, host, sizeof host, &port);
    shell_quote(qca, sizeof qca, test_server_var("SG_TEST_TLS_CA"));
    snprintf(command, sizeof command,
             "%s --tls --cacert %s %s --no-auth-warning -h %s -p %d %s "
             "</dev/null 2>&1",
             prog, qca, opts, host, port, args);
    buf[0] = '\0';
    p = popen(command, "r");
    CHECK(p != NULL);
    if (p == NULL) return buf;
    while (n + 1 < len) {
        size_t got = fread(buf + n, 1, len - 1 - n, p);
        if (got == 0) break;
        n += got;
    }
    buf[n] = '\0';
    rc = pclose(p);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    {
        char *r, *w;
        for (r = w = buf; *r; r++)
            if (*r != '\r') *w++ = *r;
        *w = '\0';
    }
    return buf;
}

/* ---- the plain cluster --------------------------------------------------- */

static void test_cluster_nodes(void) {
    char nodes[MAX_NODES][64], buf[8192];
    int n = split_list(test_server_var("SG_TEST_CLUSTER"), nodes, MAX_NODES);
    int i;

    CHECK_INT(n, 6);
    for (i = 0; i < n; i++) {
        redisContext *c = connect_addr(nodes[i]);
        int masters, replicas, bad;
        if (c == NULL) continue;
        CHECK_STR(cmd(c, buf, sizeof buf, "PING"), "PONG");
        cmd(c, buf, sizeof buf, "CLUSTER INFO");
        CHECK_CONTAINS(buf, "cluster_state:ok");
        CHECK_CONTAINS(buf, "cluster_slots_assigned:16384");
        CHECK_CONTAINS(buf, "cluster_slots_ok:16384");
        CHECK_CONTAINS(buf, "cluster_known_nodes:6");
        cmd(c, buf, sizeof buf, "CLUSTER NODES");
        count_roles(buf, &masters, &replicas, &bad);
        CHECK_INT(masters, 3);
        CHECK_INT(replicas, 3);
        CHECK_INT(bad, 0);
        redisFree(c);
    }
}

/* SG_TEST_CLUSTER_MASTERS are masters, SG_TEST_CLUSTER_REPLICAS replicas
 * (the i-th of the i-th master), and together they are SG_TEST_CLUSTER. */
static void test_cluster_roles(void) {
    char all[MAX_NODES][64], masters[MAX_NODES][64], replicas[MAX_NODES][64];
    char buf[8192];
    int na = split_list(test_server_var("SG_TEST_CLUSTER"), all, MAX_NODES);
    int nm = split_list(test_server_var("SG_TEST_CLUSTER_MASTERS"), masters,
                        MAX_NODES);
    int nr = split_list(test_server_var("SG_TEST_CLUSTER_REPLICAS"), replicas,
                        MAX_NODES);
    int i;

    CHECK_INT(nm, 3);
    CHECK_INT(nr, 3);
    for (i = 0; i < nm; i++) {
        redisContext *c;
        CHECK(in_list(masters[i], all, na));
        CHECK(!in_list(masters[i], replicas, nr));
        c = connect_addr(masters[i]);
        if (c == NULL) continue;
        cmd(c, buf, sizeof buf, "INFO replication");
        CHECK_CONTAINS(buf, "role:master");
        CHECK_CONTAINS(buf, "connected_slaves:1");
        redisFree(c);
    }
    for (i = 0; i < nr; i++) {
        redisContext *c;
        char host[256], want[300];
        int port;
        CHECK(in_list(replicas[i], all, na));
        c = connect_addr(replicas[i]);
        if (c == NULL) continue;
        cmd(c, buf, sizeof buf, "INFO replication");
        CHECK_CONTAINS(buf, "role:slave");
        CHECK_CONTAINS(buf, "master_link_status:up");
        if (i < nm) {
            test_split_addr(masters[i], host, sizeof host, &port);
            snprintf(want, sizeof want, "master_port:%d", port);
            CHECK_CONTAINS(buf, want);
        }
        redisFree(c);
    }
}

/* A write lands on the key's master (following one MOVED), the replica acks
 * it (WAIT) and serves it after READONLY. */
static void test_cluster_replication(void) {
    char masters[MAX_NODES][64], replicas[MAX_NODES][64], buf[1024];
    char owner[128];
    int nm = split_list(test_server_var("SG_TEST_CLUSTER_MASTERS"), masters,
                        MAX_NODES);
    int nr = split_list(test_server_var("SG_TEST_CLUSTER_REPLICAS"), replicas,
                        MAX_NODES);
    redisContext *c;
    int i, which = -1;

    if (nm < 1 || nr != nm) return; /* test_cluster_roles has failed */
    c = connect_addr(masters[0]);
    if (c == NULL) return;
    cmd(c, buf, sizeof buf, "SET %s %s", "ct_harness:key", "value-1");
    if (starts_with(buf, "MOVED ")) {
        /* "MOVED slot host:port" */
        const char *sp = strrchr(buf, ' ');
        snprintf(owner, sizeof owner, "%s", sp + 1);
        redisFree(c);
        c = connect_addr(owner);
        if (c == NULL) return;
        CHECK_STR(
            cmd(c, buf, sizeof buf, "SET %s %s", "ct_harness:key", "value-1"),
            "OK");
    } else {
        CHECK_STR(buf, "OK");
        snprintf(owner, sizeof owner, "%s", masters[0]);
    }
    CHECK_STR(cmd(c, buf, sizeof buf, "WAIT 1 5000"), "1");
    redisFree(c);

    for (i = 0; i < nm; i++)
        if (strcmp(masters[i], owner) == 0) which = i;
    CHECK(which >= 0);
    if (which < 0) return;
    c = connect_addr(replicas[which]);
    if (c == NULL) return;
    /* Without READONLY a replica redirects to its master. */
    CHECK_PREFIX(cmd(c, buf, sizeof buf, "GET %s", "ct_harness:key"), "MOVED ");
    CHECK_STR(cmd(c, buf, sizeof buf, "READONLY"), "OK");
    CHECK_STR(cmd(c, buf, sizeof buf, "GET %s", "ct_harness:key"), "value-1");
    redisFree(c);
}

/* ---- standalone and ACL -------------------------------------------------- */

static void test_standalone(void) {
    char buf[4096];
    redisContext *c = connect_addr(test_server_var("SG_TEST_STANDALONE"));
    if (c == NULL) return;
    CHECK_STR(cmd(c, buf, sizeof buf, "PING"), "PONG");
    CHECK_STR(cmd(c, buf, sizeof buf, "SET %s %s", "ct_harness:s", "v"), "OK");
    CHECK_STR(cmd(c, buf, sizeof buf, "GET %s", "ct_harness:s"), "v");
    CHECK_STR(cmd(c, buf, sizeof buf, "SELECT 3"), "OK");
    cmd(c, buf, sizeof buf, "INFO server");
    CHECK_CONTAINS(buf, test_server_var("SG_TEST_REDIS_VERSION"));
    CHECK_CONTAINS(buf, "redis_mode:standalone");
    redisFree(c);
}

static void test_acl(void) {
    const char *addr = test_server_var("SG_TEST_ACL");
    const char *user = test_server_var("SG_TEST_ACL_USER");
    const char *pass = test_server_var("SG_TEST_ACL_PASS");
    const char *ro_user = test_server_var("SG_TEST_ACL_RO_USER");
    const char *ro_pass = test_server_var("SG_TEST_ACL_RO_PASS");
    const char *def_pass = test_server_var("SG_TEST_ACL_DEFAULT_PASS");
    char buf[4096];
    redisContext *c;

    /* No AUTH: refused. A wrong password: refused. */
    c = connect_addr(addr);
    if (c == NULL) return;
    CHECK_PREFIX(cmd(c, buf, sizeof buf, "PING"), "NOAUTH");
    CHECK_PREFIX(cmd(c, buf, sizeof buf, "AUTH %s %s", user, "wrong"),
                 "WRONGPASS");
    CHECK_PREFIX(cmd(c, buf, sizeof buf, "GET %s", "k"), "NOAUTH");
    /* The full user. */
    CHECK_STR(cmd(c, buf, sizeof buf, "AUTH %s %s", user, pass), "OK");
    CHECK_STR(cmd(c, buf, sizeof buf, "PING"), "PONG");
    CHECK_STR(cmd(c, buf, sizeof buf, "SET %s %s", "ct_harness:acl", "v"),
              "OK");
    CHECK_STR(cmd(c, buf, sizeof buf, "ACL WHOAMI"), user);
    redisFree(c);

    /* The default user's password (one-argument AUTH). */
    c = connect_addr(addr);
    if (c == NULL) return;
    CHECK_STR(cmd(c, buf, sizeof buf, "AUTH %s", def_pass), "OK");
    CHECK_STR(cmd(c, buf, sizeof buf, "ACL WHOAMI"), "default");
    redisFree(c);

    /* The read-only user: reads yes, writes NOPERM. */
    c = connect_addr(addr);
    if (c == NULL) return;
    CHECK_STR(cmd(c, buf, sizeof buf, "AUTH %s %s", ro_user, ro_pass), "OK");
    CHECK_STR(cmd(c, buf, sizeof buf, "GET %s", "ct_harness:acl"), "v");
    CHECK_PREFIX(cmd(c, buf, sizeof buf, "SET %s %s", "ct_harness:acl", "w"),
                 "NOPERM");
    CHECK_CONTAINS(buf, "'set'");
    CHECK_PREFIX(cmd(c, buf, sizeof buf, "DEL %s", "ct_harness:acl"), "NOPERM");
    redisFree(c);
}

/* ---- TLS ----------------------------------------------------------------- */

/* A plain connection to a TLS-only port gets no reply. */
static void test_tls_refuses_plain(void) {
    char buf[1024];
    redisContext *c = connect_addr(test_server_var("SG_TEST_TLS_STANDALONE"));
    if (c == NULL) return;
    CHECK_PREFIX(cmd(c, buf, sizeof buf, "PING"), "(no reply");
    redisFree(c);
}

static void test_tls_files(void) {
    CHECK(access(test_server_var("SG_TEST_TLS_CA"), R_OK) == 0);
    CHECK(access(test_server_var("SG_TEST_TLS_CERT"), R_OK) == 0);
    CHECK(access(test_server_var("SG_TEST_TLS_KEY"), R_OK) == 0);
}

static void test_tls_cluster(void) {
    char nodes[MAX_NODES][64], masters[MAX_NODES][64], buf[8192];
    char cert_opts[2300], qcert[1100], qkey[1100];
    int n =
        split_list(test_server_var("SG_TEST_TLS_CLUSTER"), nodes, MAX_NODES);
    int nm = split_list(test_server_var("SG_TEST_TLS_CLUSTER_MASTERS"), masters,
                        MAX_NODES);
    int i, st;

    CHECK_INT(n, 6);
    CHECK_INT(nm, 3);
    for (i = 0; i < n; i++) {
        int m, r, bad;
        CHECK_STR(tls_cli(buf, sizeof buf, &st, nodes[i], "", "PING"),
                  "PONG\n");
        CHECK_INT(st, 0);
        tls_cli(buf, sizeof buf, &st, nodes[i], "", "CLUSTER INFO");
        CHECK_CONTAINS(buf, "cluster_state:ok");
        CHECK_CONTAINS(buf, "cluster_slots_assigned:16384");
        CHECK_CONTAINS(buf, "cluster_known_nodes:6");
        tls_cli(buf, sizeof buf, &st, nodes[i], "", "CLUSTER NODES");
        count_roles(buf, &m, &r, &bad);
        CHECK_INT(m, 3);
        CHECK_INT(r, 3);
        CHECK_INT(bad, 0);
    }
    for (i = 0; i < nm; i++) {
        tls_cli(buf, sizeof buf, &st, masters[i], "", "ROLE");
        CHECK_PREFIX(buf, "master\n");
    }
    /* With the client certificate too (tls-auth-clients optional). */
    shell_quote(qcert, sizeof qcert, test_server_var("SG_TEST_TLS_CERT"));
    shell_quote(qkey, sizeof qkey, test_server_var("SG_TEST_TLS_KEY"));
    snprintf(cert_opts, sizeof cert_opts, "--cert %s --key %s", qcert, qkey);
    if (n > 0)
        CHECK_STR(tls_cli(buf, sizeof buf, &st, nodes[0], cert_opts, "PING"),
                  "PONG\n");
    /* The cluster serves over TLS: -c follows MOVED. */
    if (n > 0) {
        CHECK_STR(tls_cli(buf, sizeof buf, &st, nodes[0], "-c",
                          "SET ct_harness:tls v"),
                  "OK\n");
        CHECK_STR(
            tls_cli(buf, sizeof buf, &st, nodes[0], "-c", "GET ct_harness:tls"),
            "v\n");
    }
}

static void test_tls_standalone(void) {
    const char *addr = test_server_var("SG_TEST_TLS_STANDALONE");
    char buf[4096], auth[1300], both[3000], qcert[1100], qkey[1100];
    char quser[300], qpass[300], qro[300], qropass[300];
    int st;

    shell_quote(quser, sizeof quser, test_server_var("SG_TEST_ACL_USER"));
    shell_quote(qpass, sizeof qpass, test_server_var("SG_TEST_ACL_PASS"));
    shell_quote(qro, sizeof qro, test_server_var("SG_TEST_ACL_RO_USER"));
    shell_quote(qropass, sizeof qropass,
                test_server_var("SG_TEST_ACL_RO_PASS"));
    shell_quote(qcert, sizeof qcert, test_server_var("SG_TEST_TLS_CERT"));
    shell_quote(qkey, sizeof qkey, test_server_var("SG_TEST_TLS_KEY"));

    /* No AUTH: refused, with or without a client certificate. */
    tls_cli(buf, sizeof buf, &st, addr, "", "PING");
    CHECK_CONTAINS(buf, "NOAUTH");
    snprintf(both, sizeof both, "--cert %s --key %s", qcert, qkey);
    tls_cli(buf, sizeof buf, &st, addr, both, "PING");
    CHECK_CONTAINS(buf, "NOAUTH");

    snprintf(auth, sizeof auth, "--user %s --pass %s", quser, qpass);
    CHECK_STR(tls_cli(buf, sizeof buf, &st, addr, auth, "PING"), "PONG\n");
    CHECK_STR(tls_cli(buf, sizeof buf, &st, addr, auth, "SET ct_harness:t v"),
              "OK\n");
    snprintf(both, sizeof both, "--user %s --pass %s --cert %s --key %s", quser,
             qpass, qcert, qkey);
    CHECK_STR(tls_cli(buf, sizeof buf, &st, addr, both, "GET ct_harness:t"),
              "v\n");

    snprintf(auth, sizeof auth, "--user %s --pass %s", qro, qropass);
    tls_cli(buf, sizeof buf, &st, addr, auth, "SET ct_harness:t w");
    CHECK_CONTAINS(buf, "NOPERM");
}

int main(void) {
    RUN(test_cluster_nodes);
    RUN(test_cluster_roles);
    RUN(test_cluster_replication);
    RUN(test_standalone);
    RUN(test_acl);
    RUN(test_tls_files);
    RUN(test_tls_refuses_plain);
    RUN(test_tls_cluster);
    RUN(test_tls_standalone);
    return test_report();
}
