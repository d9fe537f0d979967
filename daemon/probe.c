/*
 * probe.c — `--check --connect`: reaches an upstream's seeds with its
 * effective settings, as the engine would (the upstream's own OpenSSL
 * context from the core, SNI and the host check as conn.c sets them, AUTH
 * as the handshake sends it, SELECT), but blocking and one step at a time,
 * so that each failure names its step: resolve, connect, TLS, AUTH, PING,
 * INFO, CLUSTER INFO and NODES. A cluster's nodes are those the first seed
 * that answers lists; a Sentinel group's master is the one the sentinels
 * name. A seed's name with several addresses (an ElastiCache configuration
 * endpoint) is listed, and each address tried: the seed fails only when
 * none answers, as a client that tries them in turn would.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core_private.h"
#include "probe.h"

#define NODE_ID_MAX 64

/* One blocking connection to one address. */
typedef struct pconn {
    int fd;
    SSL *ssl;
    int timeout_ms;
    sg_buf in; /* bytes read and not yet parsed */
    char err[400];
} pconn;

/* An upstream being probed. */
typedef struct probe {
    FILE *out;
    const char *label;
    const sg_storage *st;
    SSL_CTX *ssl;
    int failures;
} probe;

/* What one node said. */
typedef struct node_info {
    char version[32], role[16], run_id[48], myid[NODE_ID_MAX];
    char state[16];
    long long slots_ok, known;
    char *nodes; /* CLUSTER NODES, when asked for (malloc'd) */
} node_info;

static double ms_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void fail(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(probe *p, const char *fmt, ...) {
    va_list ap;
    fprintf(p->out, "error: %s: ", p->label);
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    p->failures++;
}

/* ---- one connection ---------------------------------------------------------------- */

static void pconn_close(pconn *c) {
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) close(c->fd);
    sg_buf_free(&c->in);
    c->ssl = NULL;
    c->fd = -1;
}

/* TCP, within the timeout; then blocking with the timeout on each read and
 * write. 0, or -1 with why in c->err. */
static int tcp_connect(pconn *c, const struct addrinfo *ai) {
    struct pollfd pfd;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    int soerr = 0, flags, rc;
    socklen_t len = sizeof soerr;
    if ((c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(c->err, sizeof c->err, "cannot make a socket: %s", strerror(errno));
        return -1;
    }
    flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        snprintf(c->err, sizeof c->err, "cannot connect: %s", strerror(errno));
        return -1;
    }
    pfd.fd = c->fd;
    pfd.events = POLLOUT;
    while ((rc = poll(&pfd, 1, c->timeout_ms)) < 0 && errno == EINTR) continue;
    if (rc == 0) {
        snprintf(c->err, sizeof c->err, "cannot connect: no answer within the timeout (%d s)",
                 c->timeout_ms / 1000);
        return -1;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
    if (soerr != 0) {
        snprintf(c->err, sizeof c->err, "cannot connect: %s", strerror(soerr));
        return -1;
    }
    fcntl(c->fd, F_SETFL, flags);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return 0;
}

static int is_ip(const char *host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* OpenSSL's reason for the last failure, and the certificate check's. */
static void tls_reason(pconn *c, const char *what) {
    unsigned long e = ERR_get_error();
    long v = SSL_get_verify_result(c->ssl);
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    if (v != X509_V_OK)
        snprintf(c->err, sizeof c->err, "%s: the certificate is refused: %s%s", what,
                 X509_verify_cert_error_string(v),
                 v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH
                     ? " (the name or address dialled is not in it)"
                     : " (ca_file names the CA that signed it)");
    else if (buf[0]) snprintf(c->err, sizeof c->err, "%s: %s", what, buf);
    else
        snprintf(c->err, sizeof c->err, "%s: %s", what,
                 errno ? strerror(errno) : "the server closed the connection");
}

/* The handshake as conn.c does it (SNI unless an address; the name or
 * address checked unless ssl_insecure_skip_verify); what the server showed
 * goes to line. 0, or -1 with why in c->err. */
static int tls_handshake(pconn *c, const probe *p, const char *host, sg_buf *line) {
    X509 *cert;
    BIO *bio;
    char *subject = NULL;
    struct tm tm;
    int days = 0, secs = 0;
    if ((c->ssl = SSL_new(p->ssl)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        snprintf(c->err, sizeof c->err, "TLS: cannot make a session");
        return -1;
    }
    if (!is_ip(host)) SSL_set_tlsext_host_name(c->ssl, host);
    if (!p->st->skip_verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
        if (is_ip(host)) X509_VERIFY_PARAM_set1_ip_asc(param, host);
        else X509_VERIFY_PARAM_set1_host(param, host, 0);
    }
    errno = 0;
    if (SSL_connect(c->ssl) != 1) {
        tls_reason(c, "TLS handshake failed");
        return -1;
    }
    sg_buf_printf(line, "; %s", SSL_get_version(c->ssl));
    if ((cert = SSL_get1_peer_certificate(c->ssl)) == NULL) {
        sg_buf_puts(line, ", no certificate");
        return 0;
    }
    if ((bio = BIO_new(BIO_s_mem())) != NULL) {
        long n;
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        n = BIO_get_mem_data(bio, &subject);
        sg_buf_printf(line, ", subject %.*s", (int)n, subject);
        BIO_free(bio);
    }
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
        char when[40];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert));
        if (days < 0 || (days == 0 && secs < 0)) {
            snprintf(c->err, sizeof c->err, "TLS: the certificate expired on %s", when);
            X509_free(cert);
            return -1;
        }
        sg_buf_printf(line, ", expires %s (in %d days)", when, days);
    }
    if (p->st->skip_verify) sg_buf_puts(line, ", not verified (ssl_insecure_skip_verify)");
    X509_free(cert);
    return 0;
}

static int io_write(pconn *c, const char *s, size_t len) {
    while (len > 0) {
        long n = c->ssl ? SSL_write(c->ssl, s, (int)len) : send(c->fd, s, len, MSG_NOSIGNAL);
        if (n <= 0) {
            if (!c->ssl && n < 0 && errno == EINTR) continue;
            snprintf(c->err, sizeof c->err, "cannot send: %s",
                     errno == EAGAIN ? "timed out"
                     : errno         ? strerror(errno)
                                     : "closed");
            return -1;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One command, its reply (NULL with why in c->err). */
static sg_reply *command(pconn *c, int argc, const char **argv) {
    char *cmd = NULL, chunk[16384];
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL), status;
    long long whole;
    sg_reply *r;
    if (len < 0 || io_write(c, cmd, (size_t)len) != 0) {
        if (len < 0) snprintf(c->err, sizeof c->err, "out of memory");
        free(cmd); /* hiredis allocated it */
        return NULL;
    }
    free(cmd);
    while ((whole = sg_reply_scan(c->in.data ? c->in.data : "", c->in.len)) == 0) {
        long n;
        errno = 0;
        n = c->ssl ? SSL_read(c->ssl, chunk, sizeof chunk) : recv(c->fd, chunk, sizeof chunk, 0);
        if (n < 0 && !c->ssl && errno == EINTR) continue;
        if (n <= 0) {
            snprintf(c->err, sizeof c->err, "no reply to %s: %s", argv[0],
                     errno == EAGAIN ? "timed out"
                     : errno         ? strerror(errno)
                                     : "the server closed the connection");
            return NULL;
        }
        sg_buf_append(&c->in, chunk, (size_t)n);
        if (c->in.oom) {
            snprintf(c->err, sizeof c->err, "out of memory");
            return NULL;
        }
    }
    if (whole < 0 || (r = sg_reply_parse(c->in.data, (size_t)whole, &status)) == NULL) {
        snprintf(c->err, sizeof c->err, "the reply to %s is not RESP", argv[0]);
        return NULL;
    }
    memmove(c->in.data, c->in.data + whole, c->in.len - (size_t)whole);
    c->in.len -= (size_t)whole;
    return r;
}

/* A command whose reply must not be an error: the reply, or NULL with why
 * in c->err. */
static sg_reply *ask(pconn *c, int argc, const char **argv) {
    sg_reply *r = command(c, argc, argv);
    if (r && r->type == SG_REPLY_ERROR) {
        snprintf(c->err, sizeof c->err, "%s%s%s refused: %s", argv[0], argc > 1 ? " " : "",
                 argc > 1 ? argv[1] : "", r->str);
        sg_reply_free(r);
        return NULL;
    }
    return r;
}

/* "name:value" of an INFO text into out ("" when absent). */
static void info_field(const char *info, const char *name, char *out, size_t outlen) {
    size_t n = strlen(name);
    const char *p = info;
    out[0] = '\0';
    while (p && *p) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            size_t len = strcspn(p + n + 1, "\r\n");
            snprintf(out, outlen, "%.*s", (int)len, p + n + 1);
            return;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
}

/* ---- one node ---------------------------------------------------------------------- */

typedef enum node_kind { NODE_DATA, NODE_SENTINEL } node_kind;

/* Connects to one address and asks what the mode needs; prints "what
 * host:port (address): ..." on success, or returns -1 with why in err.
 * cluster: ask CLUSTER INFO and MYID; nodes: also CLUSTER NODES. */
static int probe_addr(probe *p, const char *what, const char *tag, const char *host,
                      const struct addrinfo *ai, node_kind kind, int cluster, int nodes,
                      node_info *ni, char *err, size_t errlen) {
    const sg_storage *st = p->st;
    pconn c = {.fd = -1, .timeout_ms = (int)st->timeout * 1000};
    sg_buf line = {0};
    char addr[INET6_ADDRSTRLEN + 8] = "?", port[8] = "";
    struct timespec t0;
    sg_reply *r = NULL;
    int rc = -1;
    const char *pass =
        kind == NODE_SENTINEL ? st->f[SG_F_SENTINEL_PASSWORD].s : st->f[SG_F_PASSWORD].s;
    const char *user = kind == NODE_SENTINEL ? NULL : st->f[SG_F_USERNAME].s;
    memset(ni, 0, sizeof *ni);
    getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
    sg_buf_printf(&line, "%s %s:%s", what, host, port);
    if (strcmp(host, addr) != 0) sg_buf_printf(&line, " (%s)", addr);
    if (tag) sg_buf_printf(&line, " [%s]", tag);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (tcp_connect(&c, ai) != 0) goto out;
    sg_buf_printf(&line, ": reachable in %.1f ms", ms_since(&t0));
    if (p->ssl && tls_handshake(&c, p, host, &line) != 0) goto out;

    if (pass && pass[0]) {
        const char *argv[] = {"AUTH", user && user[0] ? user : pass, pass};
        int argc = user && user[0] ? 3 : 2;
        if (argc == 2) argv[1] = pass;
        if ((r = command(&c, argc, argv)) == NULL) goto out;
        if (r->type == SG_REPLY_ERROR) {
            snprintf(c.err, sizeof c.err, "AUTH as user %s refused: %s (check %s)",
                     user && user[0] ? user : "default", r->str,
                     kind == NODE_SENTINEL ? "sentinel_password"
                     : user && user[0]     ? "username and password"
                                           : "password");
            goto out;
        }
        sg_reply_free(r);
        r = NULL;
        sg_buf_printf(&line, "; AUTH ok as %s", user && user[0] ? user : "default");
    } else {
        sg_buf_puts(&line, "; no AUTH");
    }
    if (kind == NODE_DATA && !cluster && st->database != 0) {
        char db[24];
        const char *argv[] = {"SELECT", db};
        snprintf(db, sizeof db, "%lld", st->database);
        if ((r = ask(&c, 2, argv)) == NULL) goto out;
        sg_reply_free(r);
        sg_buf_printf(&line, "; SELECT %s ok", db);
    }
    {
        const char *argv[] = {"PING"};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if ((r = command(&c, 1, argv)) == NULL) goto out;
        if (r->type == SG_REPLY_ERROR) {
            snprintf(c.err, sizeof c.err, "PING refused: %s%s", r->str,
                     sg_reply_error_is(r, "NOAUTH")
                         ? kind == NODE_SENTINEL ? " (set sentinel_password)" : " (set password)"
                         : "");
            goto out;
        }
        sg_buf_printf(&line, "; rtt %.2f ms", ms_since(&t0));
        sg_reply_free(r);
    }
    {
        const char *argv[] = {"INFO", "server"};
        const char *argv2[] = {"INFO", "replication"};
        if ((r = ask(&c, 2, argv)) == NULL) goto out;
        info_field(r->str, "redis_version", ni->version, sizeof ni->version);
        info_field(r->str, "run_id", ni->run_id, sizeof ni->run_id);
        sg_reply_free(r);
        if ((r = ask(&c, 2, argv2)) == NULL) goto out;
        info_field(r->str, "role", ni->role, sizeof ni->role);
        sg_reply_free(r);
        r = NULL;
        sg_buf_printf(&line, "; redis %s%s%s", ni->version[0] ? ni->version : "?",
                      kind == NODE_SENTINEL ? ", sentinel"
                      : ni->role[0]         ? ", "
                                            : "",
                      kind == NODE_SENTINEL ? "" : ni->role);
    }
    if (cluster) {
        const char *argv[] = {"CLUSTER", "INFO"};
        const char *argv2[] = {"CLUSTER", "MYID"};
        char v[32];
        if ((r = ask(&c, 2, argv)) == NULL) goto out;
        info_field(r->str, "cluster_state", ni->state, sizeof ni->state);
        info_field(r->str, "cluster_slots_ok", v, sizeof v);
        ni->slots_ok = atoll(v);
        info_field(r->str, "cluster_known_nodes", v, sizeof v);
        ni->known = atoll(v);
        sg_reply_free(r);
        if ((r = ask(&c, 2, argv2)) == NULL) goto out;
        snprintf(ni->myid, sizeof ni->myid, "%s", r->str ? r->str : "");
        sg_reply_free(r);
        r = NULL;
        sg_buf_printf(&line, "; id %.8s, cluster_state %s, %lld slots ok, %lld nodes known",
                      ni->myid, ni->state, ni->slots_ok, ni->known);
        if (nodes) {
            const char *argv3[] = {"CLUSTER", "NODES"};
            if ((r = ask(&c, 2, argv3)) == NULL) goto out;
            ni->nodes = strdup(r->str ? r->str : "");
        }
    }
    rc = 0;
out:
    if (rc != 0 && !p->ssl && strncmp(c.err, "no reply to", 11) == 0)
        snprintf(c.err + strlen(c.err), sizeof c.err - strlen(c.err),
                 " (a TLS port? use_ssl is off)");
    if (rc != 0 && strstr(c.err, "cluster support disabled"))
        snprintf(c.err + strlen(c.err), sizeof c.err - strlen(c.err),
                 " (a single node: enable_cluster is on)");
    sg_reply_free(r);
    if (rc == 0) {
        char *text = sg_buf_take(&line);
        fprintf(p->out, "%s\n", text ? text : what);
        sg_free(text);
    } else {
        char *text = sg_buf_take(&line);
        /* what got through, then why it stopped */
        snprintf(err, errlen, "%s: %s", text ? text : what, c.err);
        sg_free(text);
    }
    pconn_close(&c);
    return rc;
}

/* ---- seeds and their addresses -------------------------------------------------------- */

/* host and port of "host:port" or "[v6]:port". */
static int split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen) {
    const char *colon = strrchr(addr, ':');
    size_t n;
    if (colon == NULL) return -1;
    n = (size_t)(colon - addr);
    if (addr[0] == '[' && n >= 2 && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    snprintf(host, hostlen, "%.*s", (int)n, addr);
    snprintf(port, portlen, "%s", colon + 1);
    return 0;
}

/* Every address of a seed, tried in turn; the node_info of the first that
 * answered in ni. 0 when one did; -1 when none did (a failure, said). */
static int probe_seed(probe *p, const char *what, const char *tag, const char *seed, node_kind kind,
                      int cluster, int nodes, node_info *ni) {
    struct addrinfo hints, *res = NULL, *ai;
    char host[256], port[16], err[SG_ERRMSG_MAX];
    int gai, n = 0, ok = 0, tried = 0;
    if (split_addr(seed, host, sizeof host, port, sizeof port) != 0) {
        fail(p, "%s %s: not HOST:PORT", what, seed);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
        fail(p, "%s %s: cannot resolve \"%s\": %s", what, seed, host, gai_strerror(gai));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) n++;
    if (n > 1) {
        fprintf(p->out, "%s %s: \"%s\" resolves to %d addresses:", what, seed, host, n);
        for (ai = res; ai; ai = ai->ai_next) {
            char a[INET6_ADDRSTRLEN];
            getnameinfo(ai->ai_addr, ai->ai_addrlen, a, sizeof a, NULL, 0, NI_NUMERICHOST);
            fprintf(p->out, " %s", a);
        }
        fputc('\n', p->out);
    }
    for (ai = res; ai; ai = ai->ai_next) {
        node_info got;
        tried++;
        if (probe_addr(p, what, tag, host, ai, kind, cluster, nodes && !ok, &got, err,
                       sizeof err) == 0) {
            if (!ok) *ni = got;
            else free(got.nodes);
            ok = 1;
            continue;
        }
        /* another address of the name may answer: only all failing fails */
        if (n > 1) fprintf(p->out, "warning: %s: %s\n", p->label, err);
        else fail(p, "%s", err);
    }
    if (!ok && n > 1) fail(p, "%s %s: none of its %d addresses answered", what, seed, tried);
    freeaddrinfo(res);
    return ok ? 0 : -1;
}

/* ---- a cluster ----------------------------------------------------------------------- */

/* One line of CLUSTER NODES: id, address, flags, slots. */
typedef struct cnode {
    char id[NODE_ID_MAX], addr[300], flags[200];
    long long slots;
    char ranges[200];
} cnode;

static int parse_node(const char *line, size_t len, cnode *n) {
    const char *p = line, *end = line + len;
    int field = 0;
    memset(n, 0, sizeof *n);
    for (; p < end; field++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        int tlen = (int)((sp ? sp : end) - p);
        if (field == 0) snprintf(n->id, sizeof n->id, "%.*s", tlen, p);
        else if (field == 1) /* "ip:port@cport[,hostname]" */
            snprintf(n->addr, sizeof n->addr, "%.*s", (int)strcspn(p, "@ "), p);
        else if (field == 2) snprintf(n->flags, sizeof n->flags, "%.*s", tlen, p);
        else if (field >= 8 && p[0] != '[') {
            /* "a-b" or "a"; "[slot->-id]" marks a migration, not coverage */
            long long a = atoll(p), b = a;
            const char *dash = memchr(p, '-', (size_t)tlen);
            size_t used = strlen(n->ranges);
            if (dash) b = atoll(dash + 1);
            n->slots += b - a + 1;
            if (used + (size_t)tlen + 2 < sizeof n->ranges)
                snprintf(n->ranges + used, sizeof n->ranges - used, "%s%.*s", used ? "," : "", tlen,
                         p);
        }
        p = sp ? sp + 1 : end;
    }
    return field >= 8 ? 0 : -1;
}

static int has_flag(const char *flags, const char *flag) {
    size_t n = strlen(flag);
    const char *p = flags;
    while ((p = strstr(p, flag)) != NULL) {
        if ((p == flags || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
        p += n;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void ident_add(probe_ident *id, const char *s) {
    char **more = realloc(id->ids, (id->nids + 1) * sizeof *more);
    if (more == NULL) return;
    id->ids = more;
    if ((id->ids[id->nids] = strdup(s)) != NULL) id->nids++;
}

static void probe_cluster(probe *p, probe_ident *ident) {
    const sg_storage *st = p->st;
    node_info first = {0}, ni;
    char what[400];
    size_t i;
    int have = 0, masters = 0, replicas = 0, total = 0;
    long long covered = 0;
    const char *line, *end;
    for (i = 0; i < st->naddrs; i++) {
        if (probe_seed(p, "seed", NULL, st->addrs[i], NODE_DATA, 1, !have, &ni) != 0) continue;
        if (strcmp(ni.state, "ok") != 0)
            fail(p, "seed %s: cluster_state is %s (the cluster does not serve every slot)",
                 st->addrs[i], ni.state[0] ? ni.state : "unknown");
        if (!have) {
            first = ni;
            have = 1;
        } else {
            /* each seed must be a node of the cluster the first one lists */
            if (first.nodes && ni.myid[0] && strstr(first.nodes, ni.myid) == NULL)
                fail(p,
                     "seed %s (id %.8s) is not a node of the cluster seed %s lists: the "
                     "seeds name different clusters",
                     st->addrs[i], ni.myid, st->addrs[0]);
            free(ni.nodes);
        }
    }
    if (!have) {
        fail(p, "no seed could be used: the cluster cannot be reached");
        return;
    }
    if (first.nodes == NULL) return;
    for (line = first.nodes; *line; line = *end ? end + 1 : end) {
        cnode n;
        char host[256], port[16], seed[320];
        end = line + strcspn(line, "\n");
        if (end == line || parse_node(line, (size_t)(end - line), &n) != 0) continue;
        total++;
        ident_add(ident, n.id);
        if (has_flag(n.flags, "master")) {
            masters++;
            if (!has_flag(n.flags, "fail")) covered += n.slots;
        } else if (has_flag(n.flags, "slave")) {
            replicas++;
        }
        if (has_flag(n.flags, "fail") || has_flag(n.flags, "noaddr") ||
            has_flag(n.flags, "handshake")) {
            fail(p, "node %s (id %.8s) is flagged %s in CLUSTER NODES", n.addr, n.id, n.flags);
            continue;
        }
        /* a node that announces no address is where the seed reached it */
        if (split_addr(n.addr, host, sizeof host, port, sizeof port) != 0) continue;
        if (host[0] == '\0' && split_addr(st->addrs[0], host, sizeof host, seed, sizeof seed))
            continue;
        snprintf(seed, sizeof seed, "%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", port);
        snprintf(what, sizeof what, "%s, id %.8s%s%s",
                 has_flag(n.flags, "master") ? "master" : "replica", n.id,
                 n.ranges[0] ? ", slots " : "", n.ranges);
        if (probe_seed(p, "node", what, seed, NODE_DATA, 1, 0, &ni) == 0 && ni.myid[0] &&
            strcmp(ni.myid, n.id) != 0)
            fail(p, "node %s: it says its id is %.8s, CLUSTER NODES says %.8s", seed, ni.myid,
                 n.id);
    }
    fprintf(p->out, "cluster %s: %lld of 16384 slots covered, %d nodes: %d masters, %d replicas\n",
            p->label, covered, total, masters, replicas);
    if (covered < 16384)
        fail(p, "only %lld of the 16384 slots are served by a master that is up", covered);
    free(first.nodes);
    qsort(ident->ids, ident->nids, sizeof *ident->ids, cmp_str);
    ident->cluster = 1;
}

/* ---- Sentinel and one node ------------------------------------------------------------ */

static void probe_sentinel(probe *p, probe_ident *ident) {
    const sg_storage *st = p->st;
    const char *name = st->f[SG_F_MASTER_NAME].s;
    char master[320] = "";
    node_info ni;
    size_t i;
    for (i = 0; i < st->naddrs; i++) {
        struct addrinfo hints, *res = NULL;
        char host[256], port[16], err[SG_ERRMSG_MAX];
        if (probe_seed(p, "sentinel", NULL, st->addrs[i], NODE_SENTINEL, 0, 0, &ni) != 0) continue;
        /* ask again for the master's address: probe_seed's connection is gone */
        if (split_addr(st->addrs[i], host, sizeof host, port, sizeof port) != 0) continue;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, port, &hints, &res) == 0) {
            pconn c = {.fd = -1, .timeout_ms = (int)st->timeout * 1000};
            const char *pass = st->f[SG_F_SENTINEL_PASSWORD].s;
            const char *argv[] = {"AUTH", pass};
            const char *ask_master[] = {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", name};
            sg_reply *r = NULL;
            int ok = tcp_connect(&c, res) == 0;
            sg_buf ignored = {0};
            if (ok && p->ssl) ok = tls_handshake(&c, p, host, &ignored) == 0;
            sg_buf_free(&ignored);
            if (ok && pass && pass[0]) {
                sg_reply_free(r = ask(&c, 2, argv));
                ok = r != NULL;
            }
            r = ok ? ask(&c, 3, ask_master) : NULL;
            if (r && r->type == SG_REPLY_ARRAY && r->elements == 2) {
                char where[320];
                snprintf(where, sizeof where, "%s%s%s:%s",
                         strchr(r->element[0]->str, ':') ? "[" : "", r->element[0]->str,
                         strchr(r->element[0]->str, ':') ? "]" : "", r->element[1]->str);
                fprintf(p->out, "sentinel %s names master \"%s\" at %s\n", st->addrs[i], name,
                        where);
                if (master[0] && strcmp(master, where) != 0)
                    fail(p, "sentinel %s names master %s, another named %s", st->addrs[i], where,
                         master);
                snprintf(master, sizeof master, "%s", where);
            } else {
                snprintf(err, sizeof err, "%s", r ? "it does not know the name" : c.err);
                fail(p, "sentinel %s: no master \"%s\": %s", st->addrs[i], name, err);
            }
            sg_reply_free(r);
            pconn_close(&c);
            freeaddrinfo(res);
        }
    }
    if (master[0] == '\0') {
        fail(p, "no sentinel named the master \"%s\"", name);
        return;
    }
    if (probe_seed(p, "master", NULL, master, NODE_DATA, 0, 0, &ni) != 0) return;
    if (strcmp(ni.role, "master") != 0)
        fail(p, "master %s says its role is %s", master, ni.role[0] ? ni.role : "unknown");
    if (ni.run_id[0]) ident_add(ident, ni.run_id);
}

static void probe_single(probe *p, probe_ident *ident) {
    node_info ni;
    if (probe_seed(p, "node", NULL, p->st->addrs[0], NODE_DATA, 0, 0, &ni) != 0) return;
    if (ni.run_id[0]) ident_add(ident, ni.run_id);
}

int probe_upstream(FILE *out, sg_config *cfg, const char *upstream, const char *label,
                   probe_ident *ident) {
    probe p = {out, label, sg_config_upstream(cfg, upstream), NULL, 0};
    memset(ident, 0, sizeof *ident);
    if (p.st == NULL) {
        fail(&p, "no upstream \"%s\"", upstream);
        return p.failures;
    }
    fprintf(out, "\n# connect: %s, %s mode, %zu %s%s\n", label, sg_mode_name(p.st->mode),
            p.st->naddrs,
            p.st->mode == SG_MODE_SENTINEL  ? "sentinel"
            : p.st->mode == SG_MODE_CLUSTER ? "seed"
                                            : "node",
            p.st->naddrs == 1 ? "" : "s");
    if (p.st->use_ssl) {
        sg_error err = {0};
        unsigned char digest[SG_TLS_DIGEST_LEN];
        if ((p.ssl = sg_tls_context(p.st, digest, &err)) == NULL) {
            fail(&p, "%s", err.msg);
            return p.failures;
        }
    }
    if (p.st->mode == SG_MODE_CLUSTER) probe_cluster(&p, ident);
    else if (p.st->mode == SG_MODE_SENTINEL) probe_sentinel(&p, ident);
    else probe_single(&p, ident);
    if (p.ssl) SSL_CTX_free(p.ssl);
    return p.failures;
}

void probe_ident_clear(probe_ident *ident) {
    size_t i;
    for (i = 0; i < ident->nids; i++) free(ident->ids[i]);
    free(ident->ids);
    memset(ident, 0, sizeof *ident);
}

int probe_ident_cmp(const probe_ident *a, const probe_ident *b) {
    size_t i, j, common = 0;
    if (a->nids == 0 || b->nids == 0) return -2;
    for (i = 0; i < a->nids; i++)
        for (j = 0; j < b->nids; j++)
            if (strcmp(a->ids[i], b->ids[j]) == 0) common++;
    if (common == a->nids && common == b->nids && a->cluster == b->cluster) return 1;
    return common ? -1 : 0;
}
