/*
 * responder.c — the floor for an answer from memory: a server that does
 * nothing but read RESP requests and answer each with the same bulk string
 * ("xxx", the value redis-benchmark's SET writes), on THREADS event loops
 * sharing one port (SO_REUSEPORT), as slotgated's workers do. No keys, no
 * hash table, no parsing beyond the request's framing: whatever a gateway
 * answering from its cache does, it cannot do less per request. bench/cache.sh
 * runs redis-benchmark against it beside slotgated, so the ratio it prints
 * says how far this machine lets any server go past the cluster itself.
 *
 *   responder PORT [THREADS]    (default 1 thread; 127.0.0.1 only)
 *
 * Prints "ready" once it listens; runs until killed.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define MAXCONN 4096

static const char REPLY[] = "$3\r\nxxx\r\n";

typedef struct conn {
    int fd;
    size_t in; /* bytes held in buf: a request not complete yet */
    char buf[BUF];
} conn;

static int port;

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* The length of the first whole request in p[0..n) (a RESP array of bulk
 * strings, or an inline line), 0 when it is not all there, -1 when it is not
 * RESP. */
static long request_len(const char *p, size_t n) {
    const char *end = p + n, *q = p;
    long items, len;
    if (n == 0) return 0;
    if (*p != '*') {
        const char *nl = memchr(p, '\n', n);
        return nl ? nl - p + 1 : 0;
    }
    items = strtol(q + 1, NULL, 10);
    if ((q = memchr(q, '\n', (size_t)(end - q))) == NULL) return 0;
    q++;
    while (items-- > 0) {
        if (q >= end) return 0;
        if (*q != '$') return -1;
        len = strtol(q + 1, NULL, 10);
        if ((q = memchr(q, '\n', (size_t)(end - q))) == NULL) return 0;
        q += 1 + len + 2;
        if (q > end) return 0;
    }
    return q - p;
}

/* Reads what came and answers every whole request in one write; 0 when the
 * peer went. */
static int serve(conn *c) {
    static __thread char out[BUF / 4 * sizeof REPLY];
    size_t nout = 0, at = 0;
    ssize_t r = read(c->fd, c->buf + c->in, sizeof c->buf - c->in);
    if (r <= 0) return r < 0 && errno == EAGAIN;
    c->in += (size_t)r;
    for (;;) {
        long len = request_len(c->buf + at, c->in - at);
        if (len < 0) return 0;
        if (len == 0) break;
        at += (size_t)len;
        memcpy(out + nout, REPLY, sizeof REPLY - 1);
        nout += sizeof REPLY - 1;
    }
    memmove(c->buf, c->buf + at, c->in - at);
    c->in -= at;
    if (c->in == sizeof c->buf) return 0; /* one request larger than the buffer */
    /* loopback with small replies: the write takes it all */
    return nout == 0 || write(c->fd, out, nout) == (ssize_t)nout;
}

/* One listening socket of the port's group. */
static int listener(void) {
    struct sockaddr_in sa = {0};
    int one = 1, lfd;
    if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0) die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) die("SO_REUSEPORT");
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0) die("bind");
    if (listen(lfd, 512) != 0) die("listen");
    return lfd;
}

static void *loop(void *arg) {
    struct epoll_event ev, evs[256];
    int one = 1, ep, lfd = (int)(intptr_t)arg, i, n;
    if ((ep = epoll_create1(0)) < 0) die("epoll_create1");
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) die("epoll_ctl");
    for (;;) {
        if ((n = epoll_wait(ep, evs, 256, -1)) < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if ((c = calloc(1, sizeof *c)) == NULL) die("calloc");
                    c->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    ev.events = EPOLLIN;
                    ev.data.ptr = c;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
                }
            } else if (!serve(c)) {
                close(c->fd);
                free(c);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 2 ? atoi(argv[2]) : 1, i, lfd[64];
    pthread_t t;
    if (argc < 2 || (port = atoi(argv[1])) <= 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: responder PORT [THREADS]\n");
        return 2;
    }
    /* every socket of the group bound before the first connection comes */
    for (i = 0; i < threads; i++) lfd[i] = listener();
    for (i = 1; i < threads; i++)
        if (pthread_create(&t, NULL, loop, (void *)(intptr_t)lfd[i]) != 0) die("pthread_create");
    printf("ready\n");
    fflush(stdout);
    loop((void *)(intptr_t)lfd[0]);
    return 0;
}
