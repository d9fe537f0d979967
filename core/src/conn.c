/*
 * conn.c — one connection to one Redis node: a bufferevent (TLS through
 * bufferevent_openssl when the upstream uses it), the handshake (HELLO 3 or AUTH,
 * SELECT, READONLY) pipelined ahead of the first command, the replies (as
 * bytes for a proxy, or as trees) and the FIFO of pending replies, each an
 * opaque tag of its owner's. It owns the connection's failures: each pending
 * tag learns whether its bytes had left. Everything goes to the owner through
 * the sg_conn_ops given at sg_conn_open; nothing here calls a layer above, nor
 * knows what a request, a node or a client is.
 */
#include <assert.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"

/* ---- where a command's bytes go ------------------------------------------------ */

/* While a pipeline is being queued, or a batching client's loop turn runs,
 * commands wait in conn->cork: each node's share then leaves in one write
 * (sg_conn_flush). Returns 1 when conn is corked. */
static int cork(sg_conn *conn) {
    sg_conn_cfg *c = conn->cfg;
    if (conn->corked) return 1;
    if (!(c->corked || c->batching) || conn->handshaking) return 0;
    conn->corked = 1;
    if (c->batching && !c->flush_pending && c->flush_ev) {
        /* at the end of the active queue: after every callback of this turn */
        event_active(c->flush_ev, EV_TIMEOUT, 1);
        c->flush_pending = 1;
    }
    return 1;
}

/* The buffer a command goes to now: held while the handshake runs (a failed
 * SELECT must not let commands run on database 0), the cork while corked,
 * else the connection's output. */
static struct evbuffer *conn_out(sg_conn *conn) {
    if (conn->handshaking) return conn->held;
    if (cork(conn)) return conn->cork;
    return bufferevent_get_output(conn->bev);
}

void sg_conn_flush(sg_conn *conn) {
    struct evbuffer *out;
    if (!conn->corked) return;
    conn->corked = 0;
    if (evbuffer_get_length(conn->cork) == 0 || conn->state == SG_CONN_CLOSED) return;
    out = bufferevent_get_output(conn->bev);
    /* straight to the socket when nothing is queued before it: no loop turn
     * for writability, no poll registration */
    if (conn->state == SG_CONN_READY && !conn->cfg->ssl && evbuffer_get_length(out) == 0)
        evbuffer_write(conn->cork, bufferevent_getfd(conn->bev));
    if (evbuffer_get_length(conn->cork) > 0) bufferevent_write_buffer(conn->bev, conn->cork);
}

/* ---- RESP formatting of internal commands ---------------------------------- */

/* Appends a command given as NUL-terminated words to the output: the
 * handshake's straight to the connection's (never corked: a corked
 * connection is written by the flush of its client's pools, and a link's is
 * not one of them), any other where conn_out says. */
static void write_words(sg_conn *conn, const char *const *words, int n, int handshake) {
    char head[32];
    int i, len = snprintf(head, sizeof head, "*%d\r\n", n);
    struct evbuffer *out = handshake ? bufferevent_get_output(conn->bev) : conn_out(conn);
    evbuffer_add(out, head, (size_t)len);
    conn->queued += (size_t)len;
    for (i = 0; i < n; i++) {
        size_t wl = strlen(words[i]);
        len = snprintf(head, sizeof head, "$%zu\r\n", wl);
        evbuffer_add(out, head, (size_t)len);
        evbuffer_add(out, words[i], wl);
        evbuffer_add(out, "\r\n", 2);
        conn->queued += (size_t)len + wl + 2;
    }
}

/* ---- the pending FIFO --------------------------------------------------------- */

/* Room for n more entries. */
static int pend_reserve(sg_conn *conn, size_t n) {
    if (conn->pcount + n > conn->pcap) {
        size_t ncap = conn->pcap ? conn->pcap * 2 : 16, i;
        sg_pending *np;
        while (ncap < conn->pcount + n) ncap *= 2;
        if ((np = sg_malloc(ncap * sizeof *np)) == NULL) return SG_ENOMEM;
        for (i = 0; i < conn->pcount; i++)
            np[i] = conn->pend[(conn->phead + i) % conn->pcap];
        sg_free(conn->pend);
        conn->pend = np;
        conn->pcap = ncap;
        conn->phead = 0;
    }
    return SG_OK;
}

static int pend_push(sg_conn *conn, void *tag, int kind, int raw) {
    sg_pending *p;
    if (pend_reserve(conn, 1) != SG_OK) return SG_ENOMEM;
    p = &conn->pend[(conn->phead + conn->pcount) % conn->pcap];
    p->tag = tag;
    p->kind = (uint8_t)kind;
    p->raw = (uint8_t)raw;
    p->end = conn->queued;
    p->sent = sg_now_ms();
    conn->pcount++;
    return SG_OK;
}

static sg_pending pend_pop(sg_conn *conn) {
    sg_pending p;
    assert(conn->pcount > 0 && "popping an empty pending FIFO");
    p = conn->pend[conn->phead];
    conn->phead = (conn->phead + 1) % conn->pcap;
    conn->pcount--;
    return p;
}

/* ---- timeouts ---------------------------------------------------------------- */

/* The read timeout covers a connection with replies due: no byte for that
 * long means the node stalled. None while idle. */
static void set_read_timeout(sg_conn *conn, long long ms) {
    struct timeval rd, wr;
    const sg_conn_cfg *c = conn->cfg;
    if (ms == conn->read_timeout_ms) return;
    conn->read_timeout_ms = ms;
    wr.tv_sec = c->timeout_ms / 1000;
    wr.tv_usec = (c->timeout_ms % 1000) * 1000;
    rd.tv_sec = ms / 1000;
    rd.tv_usec = (ms % 1000) * 1000;
    bufferevent_set_timeouts(conn->bev, ms >= 0 ? &rd : NULL, &wr);
}

/* ---- failure and close ---------------------------------------------------- */

static void conn_destroy(sg_conn *conn) {
    if (conn->in_read) {
        /* a reply's callback closed the connection on_read is reading
         * (a refresh that demoted its node, say): on_read frees it last */
        conn->state = SG_CONN_CLOSED;
        conn->doomed = 1;
        return;
    }
    if (conn->bev) bufferevent_free(conn->bev);
    if (conn->held) evbuffer_free(conn->held);
    if (conn->cork) evbuffer_free(conn->cork);
    sg_free(conn->pend);
    sg_free(conn);
}

void sg_conn_close(sg_conn *conn) {
    assert(conn->state != SG_CONN_CLOSED && "closing a connection twice");
    conn->state = SG_CONN_CLOSED;
    if (conn->ops->closed) conn->ops->closed(conn->owner, conn, SG_OK, NULL);
    conn_destroy(conn);
}

void sg_conn_fail(sg_conn *conn, int code, const char *fmt, ...) {
    char msg[SG_ERRMSG_MAX];
    const sg_conn_ops *ops = conn->ops;
    void *owner = conn->owner;
    size_t sent, n, i;
    sg_pending *pend;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (conn->state == SG_CONN_CLOSED) return;
    conn->state = SG_CONN_CLOSED;
    sent = conn->queued - evbuffer_get_length(bufferevent_get_output(conn->bev)) -
           evbuffer_get_length(conn->held) - evbuffer_get_length(conn->cork);
    if (!conn->cfg->freeing) {
        sg_log_fields at = {.node = conn->addr};
        sg_log_at(SG_LOG_WARN, &at, "%s", msg);
    }
    /* Take the pending list first: the requests may be sent again, to other
     * connections, while we go through it. */
    n = conn->pcount;
    pend = sg_malloc((n ? n : 1) * sizeof *pend);
    for (i = 0; i < n; i++) {
        sg_pending p = pend_pop(conn);
        if (pend) pend[i] = p;
        else if (p.kind == SG_PEND_USER) /* no memory even for the list */
            ops->lost(owner, p.tag, p.end <= sent, code, msg);
    }
    if (ops->closed) ops->closed(owner, conn, code, msg);
    conn_destroy(conn);
    if (pend) {
        for (i = 0; i < n; i++)
            if (pend[i].kind == SG_PEND_USER)
                ops->lost(owner, pend[i].tag, pend[i].end <= sent, code, msg);
        sg_free(pend);
    }
}

/* ---- reading ------------------------------------------------------------------ */

static void on_handshake_reply(sg_conn *conn, sg_reply *r, int *failed) {
    if (r->type == SG_REPLY_ERROR) {
        int code = sg_reply_error_is(r, "WRONGPASS") || sg_reply_error_is(r, "NOAUTH") ||
                           sg_reply_error_is(r, "NOPERM") ||
                           strstr(r->str, "AUTH") != NULL
                       ? SG_EAUTH
                       : SG_EPROTO;
        *failed = 1;
        if (sg_reply_error_is(r, "NOPROTO") || sg_reply_error_is(r, "ERR unknown command"))
            sg_conn_fail(conn, SG_EPROTO, "node %s does not speak RESP3 (HELLO 3: %s)",
                         conn->addr, r->str);
        else
            sg_conn_fail(conn, code, "%s %s refused the connection handshake: %s",
                         conn->sentinel ? "sentinel" : "node", conn->addr, r->str);
    }
}

static void read_replies(struct bufferevent *bev, sg_conn *conn);

/* The callbacks of the replies read may close or fail this connection; it
 * stays allocated (closed) until they are all done. */
static void on_read(struct bufferevent *bev, void *arg) {
    sg_conn *conn = arg;
    conn->in_read = 1;
    read_replies(bev, conn);
    conn->in_read = 0;
    if (conn->doomed) conn_destroy(conn);
}

/* One reply built as a tree: to its request, the handshake, or the
 * subscriber. Returns -1 when the connection was closed meanwhile. */
static int take_reply(sg_conn *conn, sg_reply *r) {
    sg_pending p;
    if (r->type == SG_REPLY_PUSH && conn->handshaking == 0) {
        /* RESP3's out-of-band data (a message, an invalidation): never the
         * reply to a command, wherever it comes; to an owner that takes
         * them, else dropped (a pooled connection subscribes to nothing) */
        if (conn->ops->push) {
            conn->ops->push(conn->owner, conn, r);
            return conn->state == SG_CONN_CLOSED ? -1 : 0;
        }
        {
            sg_log_fields at = {.node = conn->addr};
            sg_log_at(SG_LOG_DEBUG, &at, "node %s: a push nobody subscribed to, dropped",
                      conn->addr);
        }
        sg_reply_free(r);
        return 0;
    }
    if (conn->pcount == 0 && conn->ops->push) {
        conn->ops->push(conn->owner, conn, r);
        return conn->state == SG_CONN_CLOSED ? -1 : 0;
    }
    if (conn->pcount == 0) {
        sg_reply_free(r);
        sg_conn_fail(conn, SG_EPROTO, "node %s sent a reply nobody asked for", conn->addr);
        return -1;
    }
    p = pend_pop(conn);
    if (p.kind == SG_PEND_HANDSHAKE) {
        int failed = 0;
        on_handshake_reply(conn, r, &failed);
        sg_reply_free(r);
        if (failed) return -1;
        if (--conn->handshaking == 0 && evbuffer_get_length(conn->held) > 0)
            bufferevent_write_buffer(conn->bev, conn->held); /* now the commands */
    } else if (p.kind == SG_PEND_ID) {
        /* an error (a user without the right) leaves it unknown: no failure */
        if (r->type == SG_REPLY_INTEGER) conn->peer_id = r->integer;
        sg_reply_free(r);
        if (--conn->handshaking == 0 && evbuffer_get_length(conn->held) > 0)
            bufferevent_write_buffer(conn->bev, conn->held); /* now the commands */
    } else if (p.kind == SG_PEND_ASKING || p.kind == SG_PEND_DROP) {
        sg_reply_free(r); /* a failed ASKING shows in the next reply */
    } else {
        if (r->type == SG_REPLY_ERROR) conn->st->errors++;
        conn->ops->reply(conn->owner, p.tag, r);
        if (conn->state == SG_CONN_CLOSED) return -1; /* closed under us */
    }
    return 0;
}

/* Replies go two ways. One for a request that takes bytes (a proxy's) and
 * that is not an error (which may be a redirect) goes as the node sent it:
 * no tree, no copy but the caller's. Any other becomes a tree. Either way
 * the reply's end is found first: at once when it is whole in the input's
 * first chunk (the usual case), else by sg_reply_scan_buffer, which keeps
 * its place between reads. */
static void read_replies(struct bufferevent *bev, sg_conn *conn) {
    struct evbuffer *in = bufferevent_get_input(bev);
    const char *addr = conn->addr;
    for (;;) {
        struct evbuffer_iovec vec;
        sg_pending *head;
        const char *data;
        long long len = 0;
        if (evbuffer_get_length(in) == 0) break;
        if (!conn->scan.active && evbuffer_peek(in, -1, NULL, &vec, 1) >= 1)
            len = sg_reply_scan(vec.iov_base, vec.iov_len);
        if (len == 0) len = sg_reply_scan_buffer(&conn->scan, in);
        if (len < 0) {
            sg_conn_fail(conn, SG_EPROTO, "node %s: cannot parse reply: not RESP", addr);
            return;
        }
        if (len == 0) break; /* more must come */
        if ((data = (const char *)evbuffer_pullup(in, len)) == NULL) {
            sg_conn_fail(conn, SG_ENOMEM, "node %s: out of memory reading a reply", addr);
            return;
        }
        head = conn->pcount ? &conn->pend[conn->phead] : NULL;
        /* as bytes: a reply that is neither an error (simple or blob: it may
         * be a redirect) nor a push (not this command's) nor decorated */
        if (head && head->raw && data[0] != '-' && data[0] != '!' && data[0] != '>' &&
            data[0] != '|') {
            sg_pending p = pend_pop(conn);
            conn->ops->raw(conn->owner, p.tag, data, (size_t)len);
            evbuffer_drain(in, (size_t)len);
            if (conn->state == SG_CONN_CLOSED) return; /* closed under us */
        } else {
            int status;
            sg_reply *r = sg_reply_parse(data, (size_t)len, &status);
            if (r == NULL && status == SG_EINVAL) {
                /* deeper than we follow: that request's error, not the
                 * connection's (its bytes are known, the stream is fine) */
                static const char deep[] =
                    "ERR slotgate: the reply is nested more than 1000 levels deep";
                r = sg_reply_new_str(SG_REPLY_ERROR, deep, sizeof deep - 1);
                status = r ? SG_OK : SG_ENOMEM;
            }
            if (r == NULL) {
                sg_conn_fail(conn, status, "node %s: %s", addr,
                             status == SG_ENOMEM ? "out of memory reading a reply"
                                                 : "malformed reply");
                return;
            }
            evbuffer_drain(in, (size_t)len);
            if (take_reply(conn, r) != 0) return;
        }
    }
    conn->last_used = sg_now_ms();
    if (conn->pcount == 0) {
        /* a connection back from a blocking command gets the usual timeout */
        if (conn->read_timeout_ms != conn->cfg->timeout_ms || conn->timer_short) {
            conn->timer_short = 0;
            conn->read_timeout_ms = -2; /* forces the set */
            set_read_timeout(conn, conn->cfg->timeout_ms);
        }
        if (conn->ops->idle) conn->ops->idle(conn->owner, conn); /* may close conn: last */
    }
}

/* What went wrong on a bufferevent, in words. */
static void describe_error(sg_conn *conn, short what, char *out, size_t outlen) {
    int dns = bufferevent_socket_get_dns_error(conn->bev);
    unsigned long ssl_err = conn->cfg->ssl ? bufferevent_get_openssl_error(conn->bev) : 0;
    int err = EVUTIL_SOCKET_ERROR();
    if (dns) {
        snprintf(out, outlen, "cannot resolve \"%s\": %s", conn->host,
                 evutil_gai_strerror(dns));
    } else if (ssl_err) {
        char buf[256];
        ERR_error_string_n(ssl_err, buf, sizeof buf);
        snprintf(out, outlen, "TLS: %s", buf);
    } else if (what & BEV_EVENT_EOF) {
        snprintf(out, outlen, "connection closed by the server");
    } else if (err) {
        snprintf(out, outlen, "%s", evutil_socket_error_to_string(err));
    } else {
        snprintf(out, outlen, "connection error");
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
    sg_conn *conn = arg;
    const sg_conn_cfg *c = conn->cfg;
    const char *addr = conn->addr; /* the peer's: outlives conn */
    sg_node_stats *st = conn->st;  /* likewise */
    char why[300];
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        /* commands go out as soon as they are written: Nagle would hold a
         * pipelined batch until the reply to the one before acknowledged it
         * (TCP only; a Unix socket refuses the option, harmlessly) */
        setsockopt(bufferevent_getfd(conn->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn->state = SG_CONN_READY;
        if (conn->ops->connect_result) conn->ops->connect_result(conn->owner, conn, 1, NULL);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        /* The read timeout stays armed (re-arming it per command costs more
         * than it saves): it means a stall only when replies are due and the
         * oldest was sent more than the timeout ago. */
        if (conn->state == SG_CONN_READY && (what & BEV_EVENT_READING)) {
            uint64_t limit = (uint64_t)conn->read_timeout_ms, age;
            if (conn->pcount == 0) {
                bufferevent_enable(conn->bev, EV_READ);
                return;
            }
            age = sg_now_ms() - conn->pend[conn->phead].sent;
            if (age < limit) {
                /* the oldest reply is not late yet: look again when it is */
                struct timeval rd = {(long)((limit - age) / 1000),
                                     (long)((limit - age) % 1000) * 1000};
                struct timeval wr = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
                bufferevent_set_timeouts(conn->bev, &rd, &wr);
                conn->timer_short = 1; /* the full timeout comes back once idle */
                bufferevent_enable(conn->bev, EV_READ);
                return;
            }
        }
        if (conn->state == SG_CONN_CONNECTING)
            sg_conn_fail(conn, SG_ETIMEOUT, "cannot connect to node %s: no answer within %d ms",
                         addr, c->timeout_ms);
        else if (what & BEV_EVENT_READING)
            sg_conn_fail(conn, SG_ETIMEOUT,
                         "node %s did not answer within %lld ms (%zu command%s in flight)",
                         addr, conn->read_timeout_ms, conn->pcount,
                         conn->pcount == 1 ? "" : "s");
        else
            sg_conn_fail(conn, SG_ETIMEOUT, "node %s: write stalled for %d ms", addr,
                         c->timeout_ms);
        st->timeouts++; /* conn is gone */
        return;
    }
    describe_error(conn, what, why, sizeof why);
    if (conn->state == SG_CONN_CONNECTING) {
        int code = strncmp(why, "TLS", 3) == 0 ? SG_ETLS : SG_ECONNECT;
        if (conn->ops->connect_result) conn->ops->connect_result(conn->owner, conn, 0, why);
        sg_conn_fail(conn, code, "cannot connect to node %s: %s", addr, why);
    } else {
        sg_conn_fail(conn, what & BEV_EVENT_EOF ? SG_ECLOSED : SG_EIO,
                     "connection to node %s lost: %s", addr, why);
    }
}

/* ---- opening ------------------------------------------------------------------ */

static int is_ip(const char *host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static struct bufferevent *new_bev(sg_conn *conn) {
    const sg_conn_cfg *c = conn->cfg;
    const char *host = conn->host;
    SSL *ssl;
    if (c->ssl == NULL)
        return bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if ((ssl = SSL_new(c->ssl)) == NULL) return NULL;
    if (!is_ip(host)) SSL_set_tlsext_host_name(ssl, host); /* SNI */
    if (!c->tls_skip_verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        if (is_ip(host)) X509_VERIFY_PARAM_set1_ip_asc(param, host);
        else X509_VERIFY_PARAM_set1_host(param, host, 0);
    }
    return bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

/* The handshake, queued ahead of any command: AUTH, SELECT, READONLY. Its
 * commands go out at once: conn->handshaking, which holds back what is
 * queued after it, is set only once they all are. */
static int queue_handshake(sg_conn *conn, const sg_conn_peer *peer) {
    const sg_conn_cfg *c = conn->cfg;
    int rc = SG_OK, n = 0;
    if (peer->sentinel) {
        if (c->sentinel_password && c->sentinel_password[0]) {
            const char *w[] = {"AUTH", c->sentinel_password};
            write_words(conn, w, 2, 1);
            rc = pend_push(conn, NULL, SG_PEND_HANDSHAKE, 0);
            n++;
        }
        conn->handshaking = n;
        return rc;
    }
    if (c->proto == 3) {
        /* RESP3 from the first reply on, and AUTH in the same command (HELLO
         * needs a user name: "default" is the one AUTH password implies) */
        const char *user = c->username && c->username[0] ? c->username : "default";
        if (c->password && c->password[0]) {
            const char *w[] = {"HELLO", "3", "AUTH", user, c->password};
            write_words(conn, w, 5, 1);
        } else {
            const char *w[] = {"HELLO", "3"};
            write_words(conn, w, 2, 1);
        }
        if ((rc = pend_push(conn, NULL, SG_PEND_HANDSHAKE, 0))) return rc;
        n++;
    } else if (c->password && c->password[0]) {
        if (c->username && c->username[0]) {
            const char *w[] = {"AUTH", c->username, c->password};
            write_words(conn, w, 3, 1);
        } else {
            const char *w[] = {"AUTH", c->password};
            write_words(conn, w, 2, 1);
        }
        if ((rc = pend_push(conn, NULL, SG_PEND_HANDSHAKE, 0))) return rc;
        n++;
    }
    if (peer->database != 0) {
        char db[24];
        const char *w[] = {"SELECT", db};
        snprintf(db, sizeof db, "%lld", peer->database);
        write_words(conn, w, 2, 1);
        if ((rc = pend_push(conn, NULL, SG_PEND_HANDSHAKE, 0))) return rc;
        n++;
    }
    if (peer->readonly) {
        const char *w[] = {"READONLY"};
        write_words(conn, w, 1, 1);
        if ((rc = pend_push(conn, NULL, SG_PEND_HANDSHAKE, 0))) return rc;
        n++;
    }
    {
        /* the node's name for the connection (CLIENT UNBLOCK of a blocking
         * command waiting on it), known before any command goes */
        const char *w[] = {"CLIENT", "ID"};
        write_words(conn, w, 2, 1);
        rc = pend_push(conn, NULL, SG_PEND_ID, 0);
        n++;
    }
    conn->handshaking = n;
    return rc;
}

sg_conn *sg_conn_open(sg_conn_cfg *cfg, const sg_conn_peer *peer, const sg_conn_ops *ops,
                      void *owner, int role) {
    sg_conn *conn = sg_calloc(1, sizeof *conn);
    if (conn == NULL) return NULL;
    conn->cfg = cfg;
    conn->ops = ops;
    conn->owner = owner;
    conn->role = role;
    conn->host = peer->host;
    conn->port = peer->port;
    conn->addr = peer->addr;
    conn->sentinel = peer->sentinel;
    conn->st = peer->st;
    conn->read_timeout_ms = -2; /* forces the first set */
    conn->last_used = sg_now_ms();
    if ((conn->held = evbuffer_new()) == NULL || (conn->cork = evbuffer_new()) == NULL ||
        (conn->bev = new_bev(conn)) == NULL) {
        conn_destroy(conn);
        return NULL;
    }
    bufferevent_setcb(conn->bev, on_read, NULL, on_event, conn);
    set_read_timeout(conn, cfg->timeout_ms);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    if (queue_handshake(conn, peer) != SG_OK) {
        conn_destroy(conn);
        return NULL;
    }
    /* Failures (DNS, refused, TLS) come back through on_event; -1 here
     * means the call itself was refused, and no event follows. */
    if (bufferevent_socket_connect_hostname(conn->bev, cfg->dns, AF_UNSPEC, conn->host,
                                            conn->port) != 0) {
        conn_destroy(conn);
        return NULL;
    }
    conn->st->connects++;
    return conn;
}

void *sg_conn_pending_tag(const sg_conn *conn, size_t i) {
    const sg_pending *p;
    if (i >= conn->pcount) return NULL;
    p = &conn->pend[(conn->phead + i) % conn->pcap];
    return p->kind == SG_PEND_USER ? p->tag : NULL;
}

int sg_conn_send_words(sg_conn *conn, const char *const *words, int n) {
    write_words(conn, words, n, 0);
    return pend_push(conn, NULL, SG_PEND_DROP, 0);
}

int sg_conn_write(sg_conn *conn, const char *data, size_t len) {
    struct evbuffer *out = conn->handshaking ? conn->held : bufferevent_get_output(conn->bev);
    if (evbuffer_add(out, data, len) != 0) return SG_ENOMEM;
    conn->queued += len;
    return SG_OK;
}

/* Writes what it can of a command straight to the socket when nothing is
 * queued before it: a blocking call then costs one send and one read, not a
 * loop turn for the socket to become writable. Returns the bytes written. */
static size_t send_now(sg_conn *conn, const char *buf, size_t len) {
    ssize_t n;
    if (conn->state != SG_CONN_READY || conn->cfg->ssl || conn->handshaking || conn->corked ||
        evbuffer_get_length(bufferevent_get_output(conn->bev)) > 0)
        return 0;
    n = send(bufferevent_getfd(conn->bev), buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n > 0 ? (size_t)n : 0; /* errors show on the bufferevent's own write */
}

int sg_conn_send(sg_conn *conn, const char *cmd, size_t len, void *tag, int flags,
                 long long read_timeout_ms) {
    static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";
    struct evbuffer *out;
    size_t done = 0;
    int asking = (flags & SG_SEND_ASKING) != 0;
    assert(conn->state != SG_CONN_CLOSED && conn->ops->reply && conn->ops->lost);
    /* room in the FIFO first: no byte leaves for a command it cannot track */
    if (pend_reserve(conn, asking ? 2 : 1) != SG_OK) return SG_ENOMEM;
    out = conn_out(conn);
    if (asking) {
        if (evbuffer_add(out, asking_cmd, sizeof asking_cmd - 1) != 0) return SG_ENOMEM;
        conn->queued += sizeof asking_cmd - 1;
        if (pend_push(conn, NULL, SG_PEND_ASKING, 0) != SG_OK) return SG_ENOMEM;
    } else {
        done = send_now(conn, cmd, len);
    }
    if (done < len && evbuffer_add(out, cmd + done, len - done) != 0) return SG_ENOMEM;
    conn->queued += len;
    if (pend_push(conn, tag, SG_PEND_USER, (flags & SG_SEND_RAW) != 0) != SG_OK) return SG_ENOMEM;
    if (read_timeout_ms != SG_CONN_TIMEOUT_KEEP) set_read_timeout(conn, read_timeout_ms);
    return SG_OK;
}
