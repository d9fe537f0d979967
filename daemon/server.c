/*
 * server.c — slotgated's serving side, the top of the daemon's modules. It
 * owns the worker threads (each an event loop with its own gateway and
 * policy set), the listeners (TCP with SO_REUSEPORT in every worker, Unix
 * sockets in the first), the clients' sockets (reading requests into the
 * RESP reader and handing each to dispatch.c; writing each session's output
 * at the end of the loop turn), the closes the modules below ask for
 * (session_close() marks, carried out here), SIGHUP reloads and the
 * graceful stop; and the figures INFO takes from the sockets (connections,
 * bytes, reads and writes) and the 100 ms sampling timer of each worker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef EVUTIL_ERR_RW_RETRIABLE
/* libevent keeps it internal: a read or write that may be tried again */
#define EVUTIL_ERR_RW_RETRIABLE(e) ((e) == EINTR || (e) == EAGAIN || (e) == EWOULDBLOCK)
#endif

#include "dispatch.h"
#include "info.h"
#include "log.h"
#include "metrics.h"
#include "pubsub.h"
#include "resp.h"
#include "server.h"
#include "session.h"
#include "tracking.h"
#include "txn.h"
#include "users.h"
#include "tls_server.h"

/* ---- closing and writing ---------------------------------------------------------------- */

/* The connection ends now (the loop's own closes, and the marks the
 * modules below leave, session_close()): its transaction and subscriptions
 * go with it, no reply comes for a gone client. */
static void close_now(session *s) {
    if (s->gone) return;
    s->close_asap = 1; /* nothing more is written while its features go */
    txn_free(s);
    pubsub_free(s);
    tracking_free(s);
    session_end(s);
}

/* Writes what s has ready; the write event takes over when the socket is
 * full. 0, or -1 when the session was closed. */
static int write_out(session *s) {
    size_t left;
    if (s->out.buf.oom) { /* a reply could not be queued: the order is lost */
        sg_log_fields at = session_log_fields(s);
        sg_log_at(SG_LOG_WARN, &at, "client %s (id %llu) closed: out of memory for its replies",
                  s->addr, (unsigned long long)s->id);
        close_now(s);
        return -1;
    }
    if (s->bev) { /* TLS: the bufferevent encrypts and writes */
        left = s->out.buf.len - s->outoff;
        if (left > 0 && bufferevent_write(s->bev, s->out.buf.data + s->outoff, left) != 0) {
            close_now(s);
            return -1;
        }
        if (left > 0) {
            figs_add(&s->w->figs.writes, 1);
            figs_add(&s->w->figs.net_out, left);
        }
        s->out.buf.len = s->outoff = 0;
        if (s->out.buf.cap > 65536) sg_buf_free(&s->out.buf);
        if (s->closing && s->count == 0 &&
            evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
            close_now(s);
            return -1;
        }
        return 0;
    }
    while ((left = s->out.buf.len - s->outoff) > 0) {
        ssize_t n = send(s->fd, s->out.buf.data + s->outoff, left, MSG_NOSIGNAL);
        figs_add(&s->w->figs.writes, 1);
        if (n > 0) {
            figs_add(&s->w->figs.net_out, (uint64_t)n);
            s->outoff += (size_t)n;
            continue;
        }
        if (n < 0 && EVUTIL_ERR_RW_RETRIABLE(EVUTIL_SOCKET_ERROR())) break;
        close_now(s); /* the peer is gone */
        return -1;
    }
    if (left == 0) {
        /* all out: the buffer is reused, unless a burst made it large */
        s->out.buf.len = s->outoff = 0;
        if (s->out.buf.cap > 65536) sg_buf_free(&s->out.buf);
    } else if (s->outoff > s->out.buf.len / 2) {
        memmove(s->out.buf.data, s->out.buf.data + s->outoff, left);
        s->out.buf.len = left;
        s->outoff = 0;
    }
    if (left > 0) {
        if (!event_pending(s->wev, EV_WRITE, NULL)) event_add(s->wev, NULL);
    } else {
        if (event_pending(s->wev, EV_WRITE, NULL)) event_del(s->wev);
        if (s->closing && s->count == 0) {
            close_now(s);
            return -1;
        }
    }
    return 0;
}

/* The end of a loop turn: every session that got replies writes them, one
 * system call each, however many replies the turn produced. A session that
 * still waits for replies to requests it sent with these (a pipeline whose
 * commands went to several nodes) is held back one turn: the rest of its
 * replies are often read in the next one, and the client then gets one send
 * and one wake-up instead of two. The next turn writes whatever it has
 * (late_ev, a timer due at once: it runs after that turn's reads), so a
 * reply waits at most one turn, never for a slow command behind it (the
 * figures: bench/README.md). A close asked from below (session_close) is
 * carried out here. */
static void on_write_turn(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    session *held = NULL, **tail = &held;
    (void)fd;
    (void)what;
    while (w->dirty) {
        session *s = w->dirty;
        w->dirty = s->dirty_next;
        if (s->close_asap) { /* a close asked from below (session_close) */
            s->dirty = 0;
            close_now(s);
            continue;
        }
        if (s->inflight > 0 && !s->closing && !s->held) {
            s->held = 1;
            *tail = s; /* stays dirty */
            tail = &s->dirty_next;
            continue;
        }
        s->dirty = 0;
        s->held = 0;
        write_out(s);
    }
    if (held) {
        static const struct timeval now = {0, 0};
        *tail = NULL;
        w->dirty = held;
        if (!evtimer_pending(w->late_ev, NULL)) evtimer_add(w->late_ev, &now);
    }
}

/* ---- reading requests -------------------------------------------------------------------- */

/* Reads what the client sent straight into the request parser's buffer and
 * handles every complete request. */
static void process(session *s, int eof);

/* Idle: no request for client_idle_timeout; one waiting for its replies (a
 * blocking pop, say) or subscribed is not idle. */
static void on_idle(session *s) {
    sg_log_fields at = session_log_fields(s);
    if (s->count > 0 || s->inflight > 0 || pubsub_active(s)) return;
    sg_log_at(SG_LOG_INFO, &at, "client %s (id %llu) closed: idle for %lld s", s->addr,
              (unsigned long long)s->id, s->w->o->idle_timeout);
    close_now(s);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
    session *s = arg;
    int eof = 0, reads = 0;
    if (what & EV_TIMEOUT) {
        on_idle(s);
        return;
    }
    for (;;) {
        size_t avail = 0;
        char *dst = sg_resp_space(s->rp, 16384, &avail);
        ssize_t n;
        if (dst == NULL) { /* out of memory, or over the request limit */
            s->closing = 1;
            break;
        }
        n = recv(fd, dst, avail, 0);
        figs_add(&s->w->figs.reads, 1);
        if (n > 0) {
            figs_add(&s->w->figs.net_in, (uint64_t)n);
            sg_resp_commit(s->rp, (size_t)n);
            /* a full buffer may mean more is waiting; bounded, so one
             * client cannot hold the loop */
            if ((size_t)n == avail && ++reads < 4) continue;
            break;
        }
        if (n < 0 && EVUTIL_ERR_RW_RETRIABLE(EVUTIL_SOCKET_ERROR())) break;
        eof = 1; /* closed, or reset: answer nothing more */
        break;
    }
    process(s, eof);
}

/* Handles every complete request read; then the session's replies go out. */
static void process(session *s, int eof) {
    sg_resp_req r;
    int rc = 0;
    s->w->read_us = session_now_us(); /* commandstats' start of each request */
    while (!s->closing && session_open(s) && (rc = sg_resp_next(s->rp, &r)) == 1) dispatch(s, &r);
    if (!session_open(s)) return; /* the end of the turn closes it */
    if (!s->closing && rc < 0 && rc != SG_ENOMEM) {
        uint64_t seq;
        reply_slot *rs = reply_slot_new(s, &seq);
        if (rs) {
            sg_resp_put_error(&rs->out, sg_errmsg(s->rp));
            reply_slot_done(rs);
        }
        s->closing = 1; /* as redis: the error, then close */
    }
    if (eof) {
        close_now(s);
        return;
    }
    if (s->closing) {
        if (s->bev) bufferevent_disable(s->bev, EV_READ);
        else event_del(s->rev);
    }
    session_flush(s);
}

/* ---- TLS sessions: the same, through bufferevent_openssl ---------------------------------- */

static void on_tls_read(struct bufferevent *bev, void *arg) {
    session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    figs_add(&s->w->figs.reads, 1);
    while (evbuffer_get_length(in) > 0) {
        size_t want = evbuffer_get_length(in), avail = 0;
        char *dst = sg_resp_space(s->rp, want, &avail);
        int n;
        if (dst == NULL) {
            s->closing = 1;
            break;
        }
        n = evbuffer_remove(in, dst, want < avail ? want : avail);
        if (n <= 0) break;
        figs_add(&s->w->figs.net_in, (uint64_t)n);
        sg_resp_commit(s->rp, (size_t)n);
    }
    process(s, 0);
}

static void on_tls_write(struct bufferevent *bev, void *arg) {
    session *s = arg;
    (void)bev;
    if (s->closing && s->count == 0 && s->out.buf.len == s->outoff) close_now(s);
}

static void on_tls_event(struct bufferevent *bev, short what, void *arg) {
    session *s = arg;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        bufferevent_enable(bev, EV_READ);
        on_idle(s);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        char why[256];
        sg_log_fields at = session_log_fields(s);
        if (sg_tls_server_error(bev, why, sizeof why))
            sg_log_at(SG_LOG_INFO, &at, "client %s (id %llu) closed: TLS: %s", s->addr,
                      (unsigned long long)s->id, why);
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) close_now(s);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
    session *s = arg;
    (void)fd;
    (void)what;
    if (session_open(s)) write_out(s); /* else the end of the turn closes it */
}

/* A TCP address as Redis shows it in CLIENT LIST: "ip:port", "[v6]:port". */
static void format_addr(const struct sockaddr *sa, char *out, size_t outlen) {
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, outlen, "[%s]:%d", ip, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, outlen, "%s:%d", ip, ntohs(in->sin_port));
    }
}

/* A client on a plain listener, or (tls) on a "tls:" one. */
static void accept_client(worker *w, evutil_socket_t fd, struct sockaddr *sa, int tls) {
    server *srv = w->srv;
    session *s;
    if (__atomic_add_fetch(&srv->clients, 1, __ATOMIC_RELAXED) > w->o->max_clients) {
        static const char full[] = "-ERR max number of clients reached\r\n";
        __atomic_sub_fetch(&srv->clients, 1, __ATOMIC_RELAXED);
        figs_add(&w->figs.rejected_conns, 1);
        /* a TLS client would read the plain text as a broken handshake:
         * it is closed without a word, as Redis does */
        if (!tls && write(fd, full, sizeof full - 1) < 0) { /* best effort */
        }
        evutil_closesocket(fd);
        return;
    }
    sg_resp_limits lim;
    sg_resp_limits_default(&lim);
    if (w->o->max_request_bytes > 0) {
        lim.max_request = (size_t)w->o->max_request_bytes;
        if (lim.max_bulk > lim.max_request) lim.max_bulk = lim.max_request;
    }
    if ((s = sg_calloc(1, sizeof *s)) == NULL || (s->rp = sg_resp_new(&lim)) == NULL ||
        (tls ? (s->bev = sg_tls_server_bev(w->o->tls_ctx, w->base, fd)) == NULL
             : ((s->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_readable, s)) == NULL ||
                (s->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, on_writable, s)) ==
                    NULL))) {
        if (s) {
            sg_resp_free(s->rp);
            if (s->rev) event_free(s->rev);
            sg_free(s);
        }
        evutil_closesocket(fd);
        __atomic_sub_fetch(&srv->clients, 1, __ATOMIC_RELAXED);
        return;
    }
    figs_add(&w->figs.conns, 1);
    s->w = w;
    s->id = __atomic_add_fetch(&srv->next_id, 1, __ATOMIC_RELAXED);
    tracking_session_new(s);
    s->created = time(NULL);
    s->authed = !users_required(w->o);
    s->user = -1;
    if (!s->authed) sg_resp_set_auth_required(s->rp, 1);
    s->last_us = session_now_us();
    if (sa->sa_family == AF_UNIX) {
        /* as Redis shows a Unix socket's clients: the socket's path, port 0 */
        struct sockaddr_un un;
        socklen_t len = sizeof un;
        memset(&un, 0, sizeof un);
        if (getsockname(fd, (struct sockaddr *)&un, &len) != 0 || un.sun_path[0] == '\0')
            snprintf(un.sun_path, sizeof un.sun_path, "/unixsocket");
        snprintf(s->laddr, sizeof s->laddr, "%.*s:0", (int)sizeof un.sun_path, un.sun_path);
        memcpy(s->addr, s->laddr, sizeof s->addr);
        s->is_unix = 1;
    } else {
        struct sockaddr_storage local;
        socklen_t len = sizeof local;
        format_addr(sa, s->addr, sizeof s->addr);
        if (getsockname(fd, (struct sockaddr *)&local, &len) == 0)
            format_addr((struct sockaddr *)&local, s->laddr, sizeof s->laddr);
        else snprintf(s->laddr, sizeof s->laddr, "?:0");
    }
    s->next = w->sessions;
    if (w->sessions) w->sessions->prev = s;
    w->sessions = s;
    s->fd = fd;
    evutil_make_socket_nonblocking(fd);
    if (sa->sa_family != AF_UNIX) {
        int one = 1; /* replies leave now, not after Nagle's wait */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (s->bev) {
        bufferevent_setcb(s->bev, on_tls_read, on_tls_write, on_tls_event, s);
        if (w->o->idle_timeout > 0) {
            struct timeval idle = {(time_t)w->o->idle_timeout, 0};
            bufferevent_set_timeouts(s->bev, &idle, NULL);
        }
        bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    } else if (w->o->idle_timeout > 0) {
        struct timeval idle = {(time_t)w->o->idle_timeout, 0};
        event_add(s->rev, &idle); /* persistent: rearmed by every read */
    } else {
        event_add(s->rev, NULL);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
    (void)l;
    (void)salen;
    accept_client(arg, fd, sa, 0);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg) {
    (void)l;
    (void)salen;
    accept_client(arg, fd, sa, 1);
}

/* ---- listeners ---------------------------------------------------------------------------- */

static struct evconnlistener *listen_on(worker *w, const char *spec, char *err, size_t errlen) {
    const sg_serve_opts *o = w->o;
    struct evconnlistener *l;
    int tls = strncmp(spec, "tls:", 4) == 0;
    if (tls && o->tls_ctx == NULL) {
        snprintf(err, errlen, "listen %s: no TLS certificate (tls_cert_file, tls_key_file)", spec);
        return NULL;
    }
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un un;
        struct stat st;
        const char *path = spec + 5;
        mode_t old;
        memset(&un, 0, sizeof un);
        un.sun_family = AF_UNIX;
        if (strlen(path) >= sizeof un.sun_path) {
            snprintf(err, errlen, "listen %s: the path is too long", spec);
            return NULL;
        }
        memcpy(un.sun_path, path, strlen(path));
        /* a socket left by an earlier run; anything else there stays (and
         * bind says so): a mistyped path must not delete a file */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
        /* bind creates the socket with the mode asked, never wider, not even
         * until the chmod below (no other thread runs yet: umask is the
         * process's) */
        old = umask((mode_t)(~o->unix_mode & 0777));
        l = evconnlistener_new_bind(w->base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, 511,
                                    (struct sockaddr *)&un, sizeof un);
        umask(old);
        if (l && chmod(path, (mode_t)o->unix_mode) != 0) {
            snprintf(err, errlen, "listen %s: chmod %o: %s", spec, o->unix_mode, strerror(errno));
            evconnlistener_free(l);
            return NULL;
        }
    } else {
        struct sockaddr_storage ss;
        int sslen = sizeof ss;
        if (evutil_parse_sockaddr_port(spec + (tls ? 4 : 0), (struct sockaddr *)&ss, &sslen) != 0) {
            snprintf(err, errlen, "listen %s: not host:port", spec);
            return NULL;
        }
        l = evconnlistener_new_bind(w->base, tls ? on_accept_tls : on_accept, w,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                        LEV_OPT_REUSEABLE_PORT,
                                    511, (struct sockaddr *)&ss, sslen);
    }
    if (l == NULL) snprintf(err, errlen, "listen %s: %s", spec, strerror(errno));
    return l;
}

/* ---- workers -------------------------------------------------------------------------------- */

/* A worker lets go of a set of options: the last one frees a reloaded set
 * (any worker's thread; free_opts is called from it). */
static void ref_drop(server *srv, opts_ref *ref) {
    if (__atomic_sub_fetch(&ref->refs, 1, __ATOMIC_ACQ_REL) != 0 || !ref->owned) return;
    srv->o->free_opts(srv->o->reload_ud, ref->o);
    sg_free(ref);
}

/* SIGHUP, in each worker: the scripts loaded again, and the options read
 * again, when there are new ones, taken in their place. */
static void on_reload(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    opts_ref *ref = __atomic_exchange_n(&w->next_ref, NULL, __ATOMIC_ACQ_REL), *old;
    (void)fd;
    (void)what;
    if (ref == NULL) {
        policies_reload(w, w->o);
        return;
    }
    if (policies_reload(w, ref->o) != 0) { /* logged: the worker stays as it was */
        ref_drop(w->srv, ref);
        return;
    }
    old = w->o_ref;
    w->o_ref = ref;
    w->o = ref->o;
    sg_gateway_set_cache(w->gw, (size_t)(ref->o->cache_max_bytes / w->srv->nw));
    /* seeds, pools, timeouts, credentials, TLS: main checked they can change */
    if (ref->o->storage && sg_gateway_reload(w->gw, ref->o->storage) != SG_OK)
        sg_log(SG_LOG_WARN, "SIGHUP: worker %d: the storage settings are not all taken: %s",
               w->id, sg_errmsg(w->gw));
    users_moved(w, old->o);
    ref_drop(w->srv, old);
}

/* Stopping: exits the loop once every reply owed is written out. */
static void on_drain_poll(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    session *s;
    (void)fd;
    (void)what;
    for (s = w->sessions; s; s = s->next)
        if (s->inflight > 0 || s->count > 0 ||
            s->out.buf.len > s->outoff ||
            (s->bev && evbuffer_get_length(bufferevent_get_output(s->bev)) > 0))
            return;
    event_base_loopexit(w->base, NULL);
}

/* Stopping: the bound on draining. */
static void on_drain_bound(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    (void)fd;
    (void)what;
    sg_log(SG_LOG_WARN, "worker %d: commands still in flight after %d s; exiting anyway", w->id,
           w->o->shutdown_timeout);
    event_base_loopexit(w->base, NULL);
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    struct timeval poll = {0, 50000};
    int i;
    (void)fd;
    (void)what;
    if (w->stopping) return;
    w->stopping = 1;
    for (i = 0; i < w->nls; i++) evconnlistener_disable(w->ls[i]);
    /* stop reading new requests; finish what is in flight */
    {
        session *s;
        for (s = w->sessions; s; s = s->next)
            if (s->bev) bufferevent_disable(s->bev, EV_READ);
            else if (s->rev) event_del(s->rev);
    }
    w->stop_timer = event_new(w->base, -1, EV_PERSIST, on_drain_poll, w);
    if (w->stop_timer) evtimer_add(w->stop_timer, &poll);
    {
        struct timeval bound = {w->o->shutdown_timeout, 0};
        event_base_once(w->base, -1, EV_TIMEOUT, on_drain_bound, w, &bound);
    }
}

/* Every 100 ms: a sample of the worker's rates (INFO's instantaneous_*). */
static void on_sample(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    (void)fd;
    (void)what;
    figs_sample(w);
    if (w->id == 0) info_sample_memory(); /* the process's: one worker does it */
}

static void *worker_main(void *arg) {
    worker *w = arg;
    log_set_worker(w->id);
    event_base_dispatch(w->base);
    return NULL;
}

static void worker_free(worker *w) {
    int i;
    session *s;
    if (w->srv == NULL) return; /* never set up: start-up failed before it */
    for (i = 0; i < w->nls; i++)
        if (w->ls[i]) evconnlistener_free(w->ls[i]);
    sg_free(w->ls);
    /* the gateway answers what is still in flight (SG_ECLOSED) */
    while ((s = w->sessions) != NULL) close_now(s);
    sg_gateway_free(w->gw);
    tracking_worker_free(w);
    policies_free(w);
    if (w->reload_ev) event_free(w->reload_ev);
    if (w->write_ev) event_free(w->write_ev);
    if (w->late_ev) event_free(w->late_ev);
    if (w->sample_ev) event_free(w->sample_ev);
    dispatch_free_pool(w);
    session_free_pool(w);
    if (w->stop_ev) event_free(w->stop_ev);
    if (w->stop_timer) event_free(w->stop_timer);
    if (w->base) event_base_free(w->base);
    /* the options it used, and a reload it never took */
    if (w->next_ref) ref_drop(w->srv, w->next_ref);
    w->next_ref = NULL;
    if (w->o_ref) ref_drop(w->srv, w->o_ref);
    w->o_ref = NULL;
}

static int worker_init(worker *w, server *srv, int id, char *err, size_t errlen) {
    const sg_serve_opts *o = srv->o;
    int i;
    w->srv = srv;
    w->id = id;
    w->o_ref = &srv->first;
    w->o = srv->o;
    if ((w->base = event_base_new()) == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        return -1;
    }
    w->gw = sg_gateway_new(srv->cfg, w->base);
    if (w->gw == NULL || sg_errcode(w->gw) != SG_OK) {
        snprintf(err, errlen, "%s", w->gw ? sg_errmsg(w->gw) : "out of memory");
        return -1;
    }
    if (policies_load(w, err, errlen) != 0) return -1;
    /* the commands of every client read in one loop turn share a write per node */
    sg_gateway_set_batching(w->gw, 1);
    /* each worker its own cache (a gateway is its thread's): the bound is shared */
    sg_gateway_set_cache(w->gw, (size_t)(o->cache_max_bytes / srv->nw));
    if ((w->ls = sg_calloc((size_t)(o->nlisten ? o->nlisten : 1), sizeof *w->ls)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < o->nlisten; i++) {
        /* TCP in every worker (the kernel spreads connections); Unix in one */
        if (strncmp(o->listen[i], "unix:", 5) == 0 && id != 0) continue;
        if ((w->ls[w->nls] = listen_on(w, o->listen[i], err, errlen)) == NULL) return -1;
        w->nls++;
    }
    w->write_ev = event_new(w->base, -1, 0, on_write_turn, w);
    w->late_ev = evtimer_new(w->base, on_write_turn, w); /* those held now go */
    w->reload_ev = event_new(w->base, -1, 0, on_reload, w);
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->sample_ev = event_new(w->base, -1, EV_PERSIST, on_sample, w);
    if (w->reload_ev == NULL || w->stop_ev == NULL || w->write_ev == NULL || w->late_ev == NULL ||
        w->sample_ev == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    {
        static const struct timeval every = {0, 100000}; /* Redis's hz 10 */
        event_add(w->sample_ev, &every);
    }
    return 0;
}

/* ---- the process ----------------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    server *srv = arg;
    int i;
    (void)what;
    if (sig == SIGHUP) {
        opts_ref *ref = NULL;
        if (srv->o->reload) {
            char why[SG_ERRMSG_MAX + 100];
            sg_serve_opts *no = srv->o->reload(srv->o->reload_ud, why, sizeof why);
            if (no == NULL) {
                sg_log(SG_LOG_ERROR, "SIGHUP: the settings are not taken, nothing changes: %s",
                       why);
                return;
            }
            if ((ref = sg_calloc(1, sizeof *ref)) == NULL) {
                srv->o->free_opts(srv->o->reload_ud, no);
                sg_log(SG_LOG_ERROR, "SIGHUP: out of memory, nothing changes");
                return;
            }
            ref->o = no;
            ref->owned = 1;
            ref->refs = srv->nw;
            sg_log(SG_LOG_INFO, "SIGHUP: settings read again; reloading users, limits, the TLS "
                   "certificate, the policy scripts and the upstreams' settings");
        } else {
            sg_log(SG_LOG_INFO, "SIGHUP: reloading policy scripts");
        }
        for (i = 0; i < srv->nw; i++) {
            if (ref) { /* a reload the worker has not taken yet is replaced */
                opts_ref *prev = __atomic_exchange_n(&srv->w[i].next_ref, ref, __ATOMIC_ACQ_REL);
                if (prev) ref_drop(srv, prev);
            }
            event_active(srv->w[i].reload_ev, EV_TIMEOUT, 1);
        }
        return;
    }
    sg_log(SG_LOG_INFO, "%s: finishing in-flight commands, then exiting",
           sig == SIGTERM ? "SIGTERM" : "SIGINT");
    for (i = 0; i < srv->nw; i++) event_active(srv->w[i].stop_ev, EV_TIMEOUT, 1);
    srv->stop = 1;
}

int sg_serve(const sg_config *cfg, const sg_serve_opts *o, char *err, size_t errlen) {
    server srv;
    struct event_base *main_base = NULL;
    struct event *sigs[3] = {NULL, NULL, NULL};
    metrics *metrics_srv = NULL;
    static const int signos[3] = {SIGTERM, SIGINT, SIGHUP};
    int i, started = 0, rc = -1;
    memset(&srv, 0, sizeof srv);
    srv.o = o;
    srv.cfg = cfg;
    srv.started = time(NULL);
    srv.nw = o->threads > 0 ? o->threads : 1;
    srv.first.o = (sg_serve_opts *)o; /* not owned: never freed here */
    srv.first.refs = srv.nw;
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "libevent has no thread support");
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (sg_listen_check(o, err, errlen) != 0) return -1;
    dispatch_init();
    tracking_server_init(&srv);
    if ((srv.w = sg_calloc((size_t)srv.nw, sizeof *srv.w)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < srv.nw; i++)
        if (worker_init(&srv.w[i], &srv, i, err, errlen) != 0) goto done;
    if ((main_base = event_base_new()) == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        goto done;
    }
    for (i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(main_base, signos[i], on_signal, &srv);
        if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0) {
            snprintf(err, errlen, "cannot handle signals");
            goto done;
        }
    }
    /* every socket is bound: privileges go before any client is served */
    if (o->ready) o->ready(o->ready_ud);
    for (i = 0; i < srv.nw; i++) {
        if (pthread_create(&srv.w[i].tid, NULL, worker_main, &srv.w[i]) != 0) {
            snprintf(err, errlen, "cannot start worker %d", i);
            break;
        }
        started++;
    }
    if (started == srv.nw && o->metrics && o->metrics[0] &&
        (metrics_srv = metrics_start(&srv, err, errlen)) == NULL)
        started = -started; /* cannot serve the endpoint asked for: stop */
    if (started == srv.nw) {
        sg_log(SG_LOG_INFO, "serving with %d worker(s)", srv.nw);
        /* the main loop only waits for signals; it ends when the workers do */
        while (!srv.stop) event_base_loop(main_base, EVLOOP_ONCE);
        metrics_stop(metrics_srv);
        rc = 0;
    } else {
        if (started < 0) started = -started;
        for (i = 0; i < started; i++) event_active(srv.w[i].stop_ev, EV_TIMEOUT, 1);
    }
    for (i = 0; i < started; i++) pthread_join(srv.w[i].tid, NULL);
done:
    for (i = 0; i < 3; i++)
        if (sigs[i]) event_free(sigs[i]);
    if (main_base) event_base_free(main_base);
    for (i = 0; i < srv.nw; i++) worker_free(&srv.w[i]);
    metrics_free(metrics_srv); /* after the workers' loops, which may hold its events */
    sg_free(srv.w);
    tracking_server_free(&srv); /* after every session went */
    return rc;
}
