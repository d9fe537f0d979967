/*
 * fakenode.h — a scripted fake Redis node, in process, for tests that need
 * MOVED, ASK, stalls, dropped connections and garbage to happen exactly when
 * they say, which a real cluster cannot promise.
 *
 * Each node is a thread with a listening socket on 127.0.0.1, port chosen by
 * the kernel. It reads RESP multibulk requests, records every one (connection
 * number, index on the connection, arguments, time), and answers from rules
 * the test sets, in the order added, the first match winning:
 *
 *     fn_rule_add(a, (fn_spec){.cmd = "GET", .key = "k", .times = 1,
 *                              .reply = "-MOVED 1234 127.0.0.1:7001\r\n"});
 *
 * A rule matches on the command name (case-insensitive), the first argument
 * (.key) or its slot (.slot, with .has_slot), and the connection number
 * (.conn, 1 = the first one accepted); .times limits how often it applies
 * (0: forever). Its action: FN_REPLY writes .reply (raw RESP) at once,
 * FN_DELAY writes it after .delay_ms, FN_STALL answers nothing more on that
 * connection (what it reads is still recorded), FN_CLOSE closes the
 * connection (replies already due are written first, then .reply if given,
 * which may be a partial one, and nothing after).
 * Replies on a connection keep their order: a delayed reply holds back the
 * ones after it, as on a real server.
 *
 * Without a matching rule the node behaves like a tiny Redis: PING, ECHO,
 * AUTH/SELECT/ASKING/READONLY/READWRITE (+OK), CLIENT ID (the connection's
 * number, as fn_log_line names it), GET/SET/MGET/MSET/DEL/EXISTS
 * on its own key-value store (fn_set() seeds it), and CLUSTER SLOTS from the
 * map fn_cluster() gave it; anything else gets "-ERR unknown command".
 *
 * Everything here is test code: it aborts when out of memory, and uses
 * malloc directly so that sg_alloc_fail_at() counts only the library's
 * allocations. All fn_* calls may be made while the node runs; they lock.
 */
#ifndef SG_FAKENODE_H
#define SG_FAKENODE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "slotgate.h"

#define FN_API static __attribute__((unused))
#define FN_MAX_CONNS 256

enum { FN_REPLY = 0, FN_DELAY, FN_STALL, FN_CLOSE };

/* What a rule matches and does; zero fields mean "any" / defaults. */
typedef struct fn_spec {
    const char *cmd;   /* command name, NULL: any */
    const char *key;   /* first argument, NULL: any */
    int has_slot, slot; /* the first argument's slot */
    int conn;          /* connection number, 0: any */
    int action;        /* FN_REPLY (default), FN_DELAY, FN_STALL, FN_CLOSE */
    const char *reply; /* raw RESP for FN_REPLY/FN_DELAY (FN_CLOSE: last words) */
    int delay_ms;      /* FN_DELAY */
    int times;         /* applications left, 0: forever */
} fn_spec;

typedef struct fn_rule {
    char *cmd, *key;
    int has_slot, slot, conn, action, delay_ms;
    int times; /* -1: forever */
    char *reply;
    size_t replylen;
    int hits;
} fn_rule;

/* One request as the node received it. */
typedef struct fn_request {
    int conn;   /* connection number, 1-based, in accept order */
    int index;  /* the command's position on its connection, 0-based */
    int argc;
    char **argv; /* NUL-terminated copies */
    size_t *argvlen;
    uint64_t at_ms; /* monotonic ms when read */
} fn_request;

typedef struct fn_out {
    struct fn_out *next;
    uint64_t due;
    size_t len;
    char data[];
} fn_out;

typedef struct fn_conn {
    int fd, id, ncmds;
    char *in;
    size_t inlen, incap;
    fn_out *q, *qtail; /* replies, in order, each with its due time */
    uint64_t last_due;
    char *w; /* bytes being written */
    size_t wlen, woff;
    int stalled, closing;
} fn_conn;

typedef struct fn_kv {
    char *k, *v;
    size_t kl, vl;
} fn_kv;

typedef struct fn_node {
    int port, lfd, wake[2];
    char addr[32]; /* "127.0.0.1:port" */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    fn_conn *conns[FN_MAX_CONNS];
    int nconns, accepted, closed;
    fn_rule *rules;
    int nrules, caprules;
    fn_request *log;
    int nlog, caplog;
    fn_kv *kv;
    int nkv, capkv;
    char *slots_reply;
    size_t slots_len;
} fn_node;

/* ---- small helpers ---------------------------------------------------------------- */

static void *fn_xalloc_(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "fakenode: out of memory\n");
        abort();
    }
    return q;
}

static char *fn_xdup_(const char *s, size_t n) {
    char *d = fn_xalloc_(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

FN_API uint64_t fn_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fn_wake_(fn_node *n) {
    char b = 1;
    ssize_t r = write(n->wake[1], &b, 1);
    (void)r;
}

/* ---- replies ------------------------------------------------------------------------ */

static void fn_enqueue_(fn_conn *c, const char *data, size_t len, uint64_t due) {
    fn_out *o;
    if (c->stalled || c->closing) return;
    if (due < c->last_due) due = c->last_due; /* order is kept */
    c->last_due = due;
    o = fn_xalloc_(NULL, sizeof *o + len);
    o->next = NULL;
    o->due = due;
    o->len = len;
    memcpy(o->data, data, len);
    if (c->qtail) c->qtail->next = o;
    else c->q = o;
    c->qtail = o;
}

static void fn_enqueuef_(fn_conn *c, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    int len;
    va_start(ap, fmt);
    len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn_enqueue_(c, buf, (size_t)len, 0);
}

static void fn_enqueue_bulk_(fn_conn *c, const char *s, size_t len) {
    char head[32];
    char *buf;
    int hl;
    if (s == NULL) {
        fn_enqueue_(c, "$-1\r\n", 5, 0);
        return;
    }
    hl = snprintf(head, sizeof head, "$%zu\r\n", len);
    buf = fn_xalloc_(NULL, (size_t)hl + len + 2);
    memcpy(buf, head, (size_t)hl);
    memcpy(buf + hl, s, len);
    memcpy(buf + hl + len, "\r\n", 2);
    fn_enqueue_(c, buf, (size_t)hl + len + 2, 0);
    free(buf);
}

/* ---- the key-value store ---------------------------------------------------------- */

static fn_kv *fn_kv_find_(fn_node *n, const char *k, size_t kl) {
    int i;
    for (i = 0; i < n->nkv; i++)
        if (n->kv[i].kl == kl && memcmp(n->kv[i].k, k, kl) == 0) return &n->kv[i];
    return NULL;
}

static void fn_kv_set_(fn_node *n, const char *k, size_t kl, const char *v, size_t vl) {
    fn_kv *e = fn_kv_find_(n, k, kl);
    if (e == NULL) {
        if (n->nkv == n->capkv) {
            n->capkv = n->capkv ? n->capkv * 2 : 16;
            n->kv = fn_xalloc_(n->kv, (size_t)n->capkv * sizeof *n->kv);
        }
        e = &n->kv[n->nkv++];
        e->k = fn_xdup_(k, kl);
        e->kl = kl;
    } else {
        free(e->v);
    }
    e->v = fn_xdup_(v, vl);
    e->vl = vl;
}

static int fn_kv_del_(fn_node *n, const char *k, size_t kl) {
    fn_kv *e = fn_kv_find_(n, k, kl);
    if (e == NULL) return 0;
    free(e->k);
    free(e->v);
    *e = n->kv[--n->nkv];
    return 1;
}

/* ---- commands ---------------------------------------------------------------------- */

static int fn_is_(const fn_request *r, int i, const char *word) {
    return r->argc > i && strcasecmp(r->argv[i], word) == 0;
}

/* What the node does when no rule matches. */
static void fn_default_(fn_node *n, fn_conn *c, const fn_request *r) {
    int i;
    if (fn_is_(r, 0, "PING")) {
        fn_enqueuef_(c, "+PONG\r\n");
    } else if (fn_is_(r, 0, "ECHO") && r->argc == 2) {
        fn_enqueue_bulk_(c, r->argv[1], r->argvlen[1]);
    } else if (fn_is_(r, 0, "AUTH") || fn_is_(r, 0, "SELECT") || fn_is_(r, 0, "ASKING") ||
               fn_is_(r, 0, "READONLY") || fn_is_(r, 0, "READWRITE")) {
        fn_enqueuef_(c, "+OK\r\n");
    } else if (fn_is_(r, 0, "CLIENT") && fn_is_(r, 1, "ID") && r->argc == 2) {
        fn_enqueuef_(c, ":%d\r\n", c->id);
    } else if (fn_is_(r, 0, "CLUSTER") && fn_is_(r, 1, "SLOTS")) {
        if (n->slots_reply) fn_enqueue_(c, n->slots_reply, n->slots_len, 0);
        else fn_enqueuef_(c, "-ERR This instance has cluster support disabled\r\n");
    } else if (fn_is_(r, 0, "GET") && r->argc == 2) {
        fn_kv *e = fn_kv_find_(n, r->argv[1], r->argvlen[1]);
        fn_enqueue_bulk_(c, e ? e->v : NULL, e ? e->vl : 0);
    } else if (fn_is_(r, 0, "SET") && r->argc >= 3) {
        fn_kv_set_(n, r->argv[1], r->argvlen[1], r->argv[2], r->argvlen[2]);
        fn_enqueuef_(c, "+OK\r\n");
    } else if (fn_is_(r, 0, "MSET") && r->argc >= 3 && r->argc % 2 == 1) {
        for (i = 1; i + 1 < r->argc; i += 2)
            fn_kv_set_(n, r->argv[i], r->argvlen[i], r->argv[i + 1], r->argvlen[i + 1]);
        fn_enqueuef_(c, "+OK\r\n");
    } else if (fn_is_(r, 0, "MGET") && r->argc >= 2) {
        fn_enqueuef_(c, "*%d\r\n", r->argc - 1);
        for (i = 1; i < r->argc; i++) {
            fn_kv *e = fn_kv_find_(n, r->argv[i], r->argvlen[i]);
            fn_enqueue_bulk_(c, e ? e->v : NULL, e ? e->vl : 0);
        }
    } else if ((fn_is_(r, 0, "DEL") || fn_is_(r, 0, "EXISTS")) && r->argc >= 2) {
        int del = fn_is_(r, 0, "DEL"), count = 0;
        for (i = 1; i < r->argc; i++)
            count += del ? fn_kv_del_(n, r->argv[i], r->argvlen[i])
                         : fn_kv_find_(n, r->argv[i], r->argvlen[i]) != NULL;
        fn_enqueuef_(c, ":%d\r\n", count);
    } else {
        fn_enqueuef_(c, "-ERR unknown command '%.40s'\r\n", r->argc ? r->argv[0] : "");
    }
}

static int fn_rule_matches_(const fn_rule *ru, const fn_conn *c, const fn_request *r) {
    if (ru->times == 0) return 0;
    if (ru->conn && ru->conn != c->id) return 0;
    if (ru->cmd && strcasecmp(ru->cmd, r->argv[0]) != 0) return 0;
    if (ru->key && (r->argc < 2 || strcmp(ru->key, r->argv[1]) != 0)) return 0;
    if (ru->has_slot &&
        (r->argc < 2 || (int)sg_keyslot(r->argv[1], r->argvlen[1]) != ru->slot))
        return 0;
    return 1;
}

static void fn_execute_(fn_node *n, fn_conn *c, const fn_request *r) {
    int i;
    for (i = 0; i < n->nrules; i++) {
        fn_rule *ru = &n->rules[i];
        if (!fn_rule_matches_(ru, c, r)) continue;
        if (ru->times > 0) ru->times--;
        ru->hits++;
        switch (ru->action) {
        case FN_REPLY: fn_enqueue_(c, ru->reply, ru->replylen, 0); break;
        case FN_DELAY:
            fn_enqueue_(c, ru->reply, ru->replylen, fn_now_ms() + (uint64_t)ru->delay_ms);
            break;
        case FN_STALL: c->stalled = 1; break;
        case FN_CLOSE:
            if (ru->replylen) fn_enqueue_(c, ru->reply, ru->replylen, 0);
            c->closing = 1;
            break;
        }
        return;
    }
    fn_default_(n, c, r);
}

/* Parses one multibulk request at the start of c->in. 1: one taken into *r;
 * 0: incomplete; -1: malformed. */
static int fn_parse_(fn_conn *c, fn_request *r, size_t *used) {
    const char *p = c->in, *end = c->in + c->inlen, *nl;
    long argc, i;
    if (c->inlen == 0) return 0;
    if (*p != '*') return -1;
    if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) return 0;
    argc = strtol(p + 1, NULL, 10);
    if (argc < 1 || argc > 1024 * 1024) return -1;
    p = nl + 1;
    memset(r, 0, sizeof *r);
    r->argv = fn_xalloc_(NULL, (size_t)argc * sizeof *r->argv);
    r->argvlen = fn_xalloc_(NULL, (size_t)argc * sizeof *r->argvlen);
    for (i = 0; i < argc; i++) {
        long len;
        if (p >= end) goto incomplete;
        if (*p != '$') goto bad;
        if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) goto incomplete;
        len = strtol(p + 1, NULL, 10);
        if (len < 0) goto bad;
        p = nl + 1;
        if ((size_t)(end - p) < (size_t)len + 2) goto incomplete;
        r->argv[i] = fn_xdup_(p, (size_t)len);
        r->argvlen[i] = (size_t)len;
        r->argc = (int)i + 1;
        p += len + 2;
    }
    *used = (size_t)(p - c->in);
    return 1;
incomplete:
    for (i = 0; i < r->argc; i++) free(r->argv[i]);
    free(r->argv);
    free(r->argvlen);
    return 0;
bad:
    for (i = 0; i < r->argc; i++) free(r->argv[i]);
    free(r->argv);
    free(r->argvlen);
    return -1;
}

static void fn_request_free_(fn_request *r) {
    int i;
    for (i = 0; i < r->argc; i++) free(r->argv[i]);
    free(r->argv);
    free(r->argvlen);
}

/* Takes every complete request from c->in: record, then execute. */
static void fn_process_(fn_node *n, fn_conn *c) {
    for (;;) {
        fn_request r;
        size_t used = 0;
        int rc;
        if (c->closing) return;
        rc = fn_parse_(c, &r, &used);
        if (rc == 0) return;
        if (rc < 0) {
            fn_enqueuef_(c, "-ERR Protocol error: fakenode reads multibulk only\r\n");
            c->closing = 1;
            return;
        }
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
        r.conn = c->id;
        r.index = c->ncmds++;
        r.at_ms = fn_now_ms();
        fn_execute_(n, c, &r);
        if (n->nlog == n->caplog) {
            n->caplog = n->caplog ? n->caplog * 2 : 64;
            n->log = fn_xalloc_(n->log, (size_t)n->caplog * sizeof *n->log);
        }
        n->log[n->nlog++] = r;
        pthread_cond_broadcast(&n->cv);
    }
}

/* ---- the thread ------------------------------------------------------------------------ */

static void fn_conn_free_(fn_conn *c) {
    fn_out *o = c->q;
    while (o) {
        fn_out *next = o->next;
        free(o);
        o = next;
    }
    if (c->fd >= 0) close(c->fd);
    free(c->in);
    free(c->w);
    free(c);
}

static void fn_conn_drop_(fn_node *n, int i) {
    fn_conn_free_(n->conns[i]);
    n->conns[i] = n->conns[--n->nconns];
    n->closed++;
    pthread_cond_broadcast(&n->cv);
}

/* Moves the replies now due into the write buffer. */
static void fn_take_due_(fn_conn *c, uint64_t now) {
    while (c->q && c->q->due <= now) {
        fn_out *o = c->q;
        c->q = o->next;
        if (c->q == NULL) c->qtail = NULL;
        if (c->woff == c->wlen) c->woff = c->wlen = 0;
        c->w = fn_xalloc_(c->w, c->wlen + o->len);
        memcpy(c->w + c->wlen, o->data, o->len);
        c->wlen += o->len;
        free(o);
    }
}

static void *fn_thread_(void *arg) {
    fn_node *n = arg;
    struct pollfd pfd[FN_MAX_CONNS + 2];
    pthread_mutex_lock(&n->mu);
    while (!n->stop) {
        uint64_t now = fn_now_ms(), next = UINT64_MAX;
        int i, np = 0, timeout;
        for (i = 0; i < n->nconns; i++) {
            fn_conn *c = n->conns[i];
            fn_take_due_(c, now);
            if (c->q && c->q->due < next) next = c->q->due;
            /* close once what was due before the close is out */
            if (c->closing && c->woff == c->wlen) {
                fn_conn_drop_(n, i--);
                continue;
            }
        }
        pfd[np].fd = n->wake[0];
        pfd[np++].events = POLLIN;
        pfd[np].fd = n->lfd;
        pfd[np++].events = n->nconns < FN_MAX_CONNS ? POLLIN : 0;
        for (i = 0; i < n->nconns; i++) {
            pfd[np].fd = n->conns[i]->fd;
            pfd[np].events = POLLIN | (n->conns[i]->woff < n->conns[i]->wlen ? POLLOUT : 0);
            pfd[np++].revents = 0;
        }
        timeout = next == UINT64_MAX ? -1 : (int)(next > now ? next - now : 0);
        pthread_mutex_unlock(&n->mu);
        if (poll(pfd, (nfds_t)np, timeout) < 0 && errno != EINTR) {
            perror("fakenode: poll");
            abort();
        }
        pthread_mutex_lock(&n->mu);
        if (pfd[0].revents & POLLIN) {
            char buf[64];
            ssize_t r = read(n->wake[0], buf, sizeof buf);
            (void)r;
        }
        if (pfd[1].revents & POLLIN) {
            int fd = accept(n->lfd, NULL, NULL);
            if (fd >= 0) {
                fn_conn *c = fn_xalloc_(NULL, sizeof *c);
                int one = 1;
                memset(c, 0, sizeof *c);
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c->fd = fd;
                c->id = ++n->accepted;
                n->conns[n->nconns++] = c;
                pthread_cond_broadcast(&n->cv);
            }
        }
        /* connections: the pollfd entries 2.. match conns[] as they were;
         * walk backwards so dropping one does not shift those not yet seen */
        for (i = np - 1; i >= 2; i--) {
            int k = i - 2, dead = 0;
            fn_conn *c;
            if (k >= n->nconns) continue;
            c = n->conns[k];
            if (pfd[i].fd != c->fd) continue;
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                char buf[16384];
                ssize_t r = read(c->fd, buf, sizeof buf);
                if (r > 0) {
                    if (!c->closing) {
                        if (c->inlen + (size_t)r > c->incap) {
                            c->incap = (c->inlen + (size_t)r) * 2;
                            c->in = fn_xalloc_(c->in, c->incap);
                        }
                        memcpy(c->in + c->inlen, buf, (size_t)r);
                        c->inlen += (size_t)r;
                        fn_process_(n, c);
                    }
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    dead = 1;
                }
            }
            if (!dead && (pfd[i].revents & POLLOUT) && c->woff < c->wlen) {
                ssize_t w = send(c->fd, c->w + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
                if (w > 0) c->woff += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR) dead = 1;
            }
            if (dead) fn_conn_drop_(n, k);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- life ------------------------------------------------------------------------------- */

/* A new node, listening and running. Aborts the test on failure. */
FN_API fn_node *fn_start(void) {
    fn_node *n = fn_xalloc_(NULL, sizeof *n);
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    memset(n, 0, sizeof *n);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if ((n->lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        bind(n->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(n->lfd, 128) != 0 ||
        getsockname(n->lfd, (struct sockaddr *)&sa, &salen) != 0 || pipe(n->wake) != 0) {
        perror("fakenode: listen");
        abort();
    }
    fcntl(n->lfd, F_SETFL, fcntl(n->lfd, F_GETFL) | O_NONBLOCK);
    fcntl(n->wake[0], F_SETFL, fcntl(n->wake[0], F_GETFL) | O_NONBLOCK);
    n->port = ntohs(sa.sin_port);
    snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", n->port);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if (pthread_create(&n->th, NULL, fn_thread_, n) != 0) {
        perror("fakenode: pthread_create");
        abort();
    }
    return n;
}

/* Stops the thread, closes every socket (the port then refuses), frees all. */
FN_API void fn_free(fn_node *n) {
    int i;
    if (n == NULL) return;
    pthread_mutex_lock(&n->mu);
    n->stop = 1;
    pthread_mutex_unlock(&n->mu);
    fn_wake_(n);
    pthread_join(n->th, NULL);
    for (i = 0; i < n->nconns; i++) fn_conn_free_(n->conns[i]);
    close(n->lfd);
    close(n->wake[0]);
    close(n->wake[1]);
    for (i = 0; i < n->nrules; i++) {
        free(n->rules[i].cmd);
        free(n->rules[i].key);
        free(n->rules[i].reply);
    }
    free(n->rules);
    for (i = 0; i < n->nlog; i++) fn_request_free_(&n->log[i]);
    free(n->log);
    for (i = 0; i < n->nkv; i++) {
        free(n->kv[i].k);
        free(n->kv[i].v);
    }
    free(n->kv);
    free(n->slots_reply);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

/* ---- scripting ----------------------------------------------------------------------------- */

/* Adds a rule (after the others); returns its index. */
FN_API int fn_rule_add(fn_node *n, fn_spec s) {
    fn_rule *ru;
    int idx;
    pthread_mutex_lock(&n->mu);
    if (n->nrules == n->caprules) {
        n->caprules = n->caprules ? n->caprules * 2 : 8;
        n->rules = fn_xalloc_(n->rules, (size_t)n->caprules * sizeof *n->rules);
    }
    idx = n->nrules++;
    ru = &n->rules[idx];
    memset(ru, 0, sizeof *ru);
    ru->cmd = s.cmd ? fn_xdup_(s.cmd, strlen(s.cmd)) : NULL;
    ru->key = s.key ? fn_xdup_(s.key, strlen(s.key)) : NULL;
    ru->has_slot = s.has_slot;
    ru->slot = s.slot;
    ru->conn = s.conn;
    ru->action = s.action;
    ru->delay_ms = s.delay_ms;
    ru->times = s.times > 0 ? s.times : -1;
    ru->replylen = s.reply ? strlen(s.reply) : 0;
    ru->reply = fn_xdup_(s.reply ? s.reply : "", ru->replylen);
    pthread_mutex_unlock(&n->mu);
    return idx;
}

/* How often rule idx applied. */
FN_API int fn_rule_hits(fn_node *n, int idx) {
    int h;
    pthread_mutex_lock(&n->mu);
    h = idx >= 0 && idx < n->nrules ? n->rules[idx].hits : -1;
    pthread_mutex_unlock(&n->mu);
    return h;
}

/* Drops every rule: the node answers by default again. */
FN_API void fn_rules_clear(fn_node *n) {
    int i;
    pthread_mutex_lock(&n->mu);
    for (i = 0; i < n->nrules; i++) {
        free(n->rules[i].cmd);
        free(n->rules[i].key);
        free(n->rules[i].reply);
    }
    n->nrules = 0;
    pthread_mutex_unlock(&n->mu);
}

/* Seeds the node's store. */
FN_API void fn_set(fn_node *n, const char *key, const char *value) {
    pthread_mutex_lock(&n->mu);
    fn_kv_set_(n, key, strlen(key), value, strlen(value));
    pthread_mutex_unlock(&n->mu);
}

/* A range of slots and its master, for fn_cluster(). */
typedef struct fn_range {
    int lo, hi;
    fn_node *master;
} fn_range;

/* Gives each of nodes[] the same CLUSTER SLOTS answer: ranges[]. */
FN_API void fn_cluster(fn_node *const *nodes, int nnodes, const fn_range *ranges, int nranges) {
    char *buf = NULL;
    size_t len = 0;
    int i;
    for (i = -1; i < nranges; i++) {
        char part[256];
        int pl;
        if (i < 0) pl = snprintf(part, sizeof part, "*%d\r\n", nranges);
        else
            pl = snprintf(part, sizeof part,
                          "*3\r\n:%d\r\n:%d\r\n*3\r\n$9\r\n127.0.0.1\r\n:%d\r\n$40\r\n"
                          "%040d\r\n",
                          ranges[i].lo, ranges[i].hi, ranges[i].master->port,
                          ranges[i].master->port);
        buf = fn_xalloc_(buf, len + (size_t)pl);
        memcpy(buf + len, part, (size_t)pl);
        len += (size_t)pl;
    }
    for (i = 0; i < nnodes; i++) {
        fn_node *n = nodes[i];
        pthread_mutex_lock(&n->mu);
        free(n->slots_reply);
        n->slots_reply = fn_xdup_(buf, len);
        n->slots_len = len;
        pthread_mutex_unlock(&n->mu);
    }
    free(buf);
}

/* ---- what the node saw -------------------------------------------------------------------- */

static int fn_req_is_(const fn_request *r, int conn, const char *cmd, const char *key) {
    if (conn && r->conn != conn) return 0;
    if (cmd && strcasecmp(r->argv[0], cmd) != 0) return 0;
    if (key && (r->argc < 2 || strcmp(r->argv[1], key) != 0)) return 0;
    return 1;
}

/* Requests received on connection conn (0: any) of command cmd (NULL: any)
 * whose first argument is key (NULL: any). */
FN_API int fn_count_conn(fn_node *n, int conn, const char *cmd, const char *key) {
    int i, count = 0;
    pthread_mutex_lock(&n->mu);
    for (i = 0; i < n->nlog; i++) count += fn_req_is_(&n->log[i], conn, cmd, key);
    pthread_mutex_unlock(&n->mu);
    return count;
}

FN_API int fn_count(fn_node *n, const char *cmd, const char *key) {
    return fn_count_conn(n, 0, cmd, key);
}

/* Requests received so far. */
FN_API int fn_nlog(fn_node *n) {
    int k;
    pthread_mutex_lock(&n->mu);
    k = n->nlog;
    pthread_mutex_unlock(&n->mu);
    return k;
}

/* A copy of request i's place and the text of its first words (for asserts):
 * out gets "CONN:INDEX ARG0 ARG1 ..." (arguments up to outlen). "" past the end. */
FN_API void fn_log_line(fn_node *n, int i, char *out, size_t outlen) {
    size_t o;
    int j;
    out[0] = '\0';
    pthread_mutex_lock(&n->mu);
    if (i >= 0 && i < n->nlog) {
        const fn_request *r = &n->log[i];
        o = (size_t)snprintf(out, outlen, "%d:%d", r->conn, r->index);
        for (j = 0; j < r->argc && o < outlen; j++)
            o += (size_t)snprintf(out + o, outlen - o, " %s", r->argv[j]);
    }
    pthread_mutex_unlock(&n->mu);
}

/* Index in the log of the first request from index from on that matches, or -1. */
FN_API int fn_log_find(fn_node *n, int from, int conn, const char *cmd, const char *key) {
    int i, found = -1;
    pthread_mutex_lock(&n->mu);
    for (i = from < 0 ? 0 : from; i < n->nlog && found < 0; i++)
        if (fn_req_is_(&n->log[i], conn, cmd, key)) found = i;
    pthread_mutex_unlock(&n->mu);
    return found;
}

/* The connection and per-connection index of log entry i (-1 when none). */
FN_API int fn_log_conn(fn_node *n, int i) {
    int k;
    pthread_mutex_lock(&n->mu);
    k = i >= 0 && i < n->nlog ? n->log[i].conn : -1;
    pthread_mutex_unlock(&n->mu);
    return k;
}

FN_API int fn_log_index(fn_node *n, int i) {
    int k;
    pthread_mutex_lock(&n->mu);
    k = i >= 0 && i < n->nlog ? n->log[i].index : -1;
    pthread_mutex_unlock(&n->mu);
    return k;
}

/* When log entry i was read (monotonic ms; 0 when none). */
FN_API uint64_t fn_log_at(fn_node *n, int i) {
    uint64_t t;
    pthread_mutex_lock(&n->mu);
    t = i >= 0 && i < n->nlog ? n->log[i].at_ms : 0;
    pthread_mutex_unlock(&n->mu);
    return t;
}

/* Connections accepted so far, and open now. */
FN_API int fn_accepted(fn_node *n) {
    int k;
    pthread_mutex_lock(&n->mu);
    k = n->accepted;
    pthread_mutex_unlock(&n->mu);
    return k;
}

FN_API int fn_open_conns(fn_node *n) {
    int k;
    pthread_mutex_lock(&n->mu);
    k = n->nconns;
    pthread_mutex_unlock(&n->mu);
    return k;
}

/* Waits until the node has seen at least count requests matching (conn, cmd,
 * key), at most timeout_ms; returns how many it saw. */
FN_API int fn_wait_count(fn_node *n, int conn, const char *cmd, const char *key, int count,
                         int timeout_ms) {
    struct timespec ts;
    int seen = 0, i;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&n->mu);
    for (;;) {
        seen = 0;
        for (i = 0; i < n->nlog; i++) seen += fn_req_is_(&n->log[i], conn, cmd, key);
        if (seen >= count) break;
        if (pthread_cond_timedwait(&n->cv, &n->mu, &ts) != 0) break;
    }
    pthread_mutex_unlock(&n->mu);
    return seen;
}

/* ---- clients for tests ----------------------------------------------------------------------- */

/* A client for a settings list (NULL-terminated "NAME=value"), on base
 * (NULL: blocking). NULL when the settings are refused (the test fails). */
FN_API sg_client *fn_client_env(const char *const *env, struct event_base *base) {
    sg_config *cfg = sg_config_new();
    sg_client *c;
    if (cfg == NULL) return NULL;
    if (sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env) != SG_OK) {
        fprintf(stderr, "fakenode: settings refused: %s\n", sg_errmsg(cfg));
        sg_config_free(cfg);
        return NULL;
    }
    c = sg_client_new(cfg, NULL, base);
    sg_config_free(cfg);
    return c;
}

/* A cluster (cluster != 0) or single-node client seeded with node's address,
 * timeout 1 s, plus extra settings (NULL-terminated, may be NULL). */
FN_API sg_client *fn_client(const fn_node *seed, int cluster, struct event_base *base,
                            const char *const *extra) {
    char addrs[64];
    const char *env[32];
    int n = 0;
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=%s", seed->addr);
    env[n++] = addrs;
    env[n++] = cluster ? "TYK_GW_STORAGE_ENABLECLUSTER=true" : "TYK_GW_STORAGE_ENABLECLUSTER=false";
    env[n++] = "TYK_GW_STORAGE_TIMEOUT=1";
    while (extra && *extra && n < 31) env[n++] = *extra++;
    env[n] = NULL;
    return fn_client_env(env, base);
}

/* ---- running the tests ---------------------------------------------------------------
 * FN_RUN_T(fn): the test under a 60 s alarm (fn_on_alarm, installed for
 * SIGALRM by main, fails the run when one hangs), with its time printed. RUN
 * comes from test.h. */
FN_API void fn_on_alarm(int sig) {
    static const char msg[] = "FAIL: a test hung (60 s)\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    _exit(1);
}

#define FN_RUN_T(fn)                                                                           \
    do {                                                                                       \
        uint64_t t_ = fn_now_ms();                                                             \
        alarm(60);                                                                             \
        printf("%s\n", #fn);                                                                   \
        fflush(stdout);                                                                        \
        RUN(fn);                                                                               \
        printf("  (%llu ms)\n", (unsigned long long)(fn_now_ms() - t_));                       \
        alarm(0);                                                                              \
    } while (0)

#endif
