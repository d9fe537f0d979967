/*
 * server.c — slotgated's serving side. It owns the worker threads (each an
 * event loop with its own gateway and policy set), the listeners (TCP with
 * SO_REUSEPORT in every worker, Unix sockets in the first), the client
 * sessions (RESP requests in, replies out in each client's own order), the
 * commands the gateway answers itself, client authentication, SIGHUP reloads
 * and the graceful stop.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "metrics.h"
#include "resp.h"
#include "server.h"
#include "session.h"
#include "sg_internal.h"

/* ---- replies ----------------------------------------------------------------------- */

void put_reply(sg_buf *b, const sg_reply *r) {
    size_t i;
    switch (r->type) {
    case SG_REPLY_STATUS:
    case SG_REPLY_ERROR:
        sg_buf_append(b, r->type == SG_REPLY_STATUS ? "+" : "-", 1);
        sg_buf_append(b, r->str, r->len);
        sg_buf_append(b, "\r\n", 2);
        break;
    case SG_REPLY_INTEGER: sg_buf_printf(b, ":%lld\r\n", r->integer); break;
    case SG_REPLY_NIL: sg_buf_append(b, "$-1\r\n", 5); break;
    case SG_REPLY_STRING:
        sg_buf_printf(b, "$%zu\r\n", r->len);
        sg_buf_append(b, r->str, r->len);
        sg_buf_append(b, "\r\n", 2);
        break;
    case SG_REPLY_ARRAY:
        sg_buf_printf(b, "*%zu\r\n", r->elements);
        for (i = 0; i < r->elements; i++) put_reply(b, r->element[i]);
        break;
    }
}

void put_bulk(sg_buf *b, const char *s, size_t n) {
    sg_buf_printf(b, "$%zu\r\n", n);
    sg_buf_append(b, s, n);
    sg_buf_append(b, "\r\n", 2);
}

/* An error reply: msg must start with an error code word ("ERR ..."). */
void put_error(sg_buf *b, const char *msg) {
    const char *p;
    sg_buf_append(b, "-", 1);
    for (p = msg; *p; p++) /* an error line cannot hold CR or LF */
        sg_buf_append(b, (*p == '\r' || *p == '\n') ? " " : p, 1);
    sg_buf_append(b, "\r\n", 2);
}

/* ---- sessions ------------------------------------------------------------------------ */

static void session_free(session *s) {
    size_t i;
    for (i = 0; i < s->count; i++) sg_buf_free(&s->slots[(s->head + i) % s->cap].out);
    sg_free(s->slots);
    sg_resp_free(s->rp);
    sg_free(s->name);
    sg_free(s);
}

/* The connection ends; the session lives until the gateway has answered
 * everything in flight. */
void session_close(session *s) {
    worker *w = s->w;
    if (s->gone) return;
    s->gone = 1;
    if (s->bev) bufferevent_free(s->bev);
    s->bev = NULL;
    if (s->prev) s->prev->next = s->next;
    else w->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    __atomic_sub_fetch(&w->srv->clients, 1, __ATOMIC_RELAXED);
    if (s->inflight == 0) session_free(s);
}

/* A new slot at the tail, for the next request's reply. */
slot *slot_new(session *s, uint64_t *seq) {
    slot *sl;
    if (s->count == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16, i;
        slot *ns = sg_calloc(ncap, sizeof *ns);
        if (ns == NULL) return NULL;
        for (i = 0; i < s->count; i++) ns[i] = s->slots[(s->head + i) % s->cap];
        sg_free(s->slots);
        s->slots = ns;
        s->cap = ncap;
        s->head = 0;
    }
    sl = &s->slots[(s->head + s->count) % s->cap];
    memset(sl, 0, sizeof *sl);
    *seq = s->head_seq + s->count;
    s->count++;
    return sl;
}

/* Writes every finished reply at the head, in order. */
void session_flush(session *s) {
    struct evbuffer *out;
    if (s->gone) return;
    out = bufferevent_get_output(s->bev);
    while (s->count > 0 && s->slots[s->head].done) {
        slot *sl = &s->slots[s->head];
        if (sl->out.oom) evbuffer_add(out, "-ERR slotgate: out of memory\r\n", 30);
        else if (sl->out.len) evbuffer_add(out, sl->out.data, sl->out.len);
        sg_buf_free(&sl->out);
        s->head = (s->head + 1) % s->cap;
        s->count--;
        s->head_seq++;
    }
    if (s->w->srv->o->output_limit > 0 &&
        evbuffer_get_length(out) > (size_t)s->w->srv->o->output_limit) {
        /* it does not read its replies: it alone pays, as redis's
         * client-output-buffer-limit */
        sg_log(SG_LOG_WARN, "client %s (id %llu) closed: %zu bytes of replies unread, over the "
               "client_output_limit of %lld", s->addr, (unsigned long long)s->id,
               evbuffer_get_length(out), s->w->srv->o->output_limit);
        session_close(s);
        return;
    }
    if (s->closing && s->count == 0 && evbuffer_get_length(out) == 0) session_close(s);
}

/* ---- forwarding through the gateway ------------------------------------------------------ */

typedef struct owed {
    session *s;
    uint64_t seq;
} owed;

slot *slot_at(session *s, uint64_t seq) {
    return &s->slots[(s->head + (seq - s->head_seq)) % s->cap];
}

int session_owed_done(session *s) {
    s->inflight--;
    if (!s->gone) return 1;
    if (s->inflight == 0) session_free(s);
    return 0;
}

void session_reply(session *s, uint64_t seq, const sg_reply *reply, int status,
                   const char *errmsg) {
    slot *sl = slot_at(s, seq);
    if (reply) {
        put_reply(&sl->out, reply);
        if (reply->type == SG_REPLY_ERROR) s->w->errors++;
    } else {
        char msg[SG_ERRMSG_MAX + 32];
        snprintf(msg, sizeof msg, "ERR slotgate: %s", errmsg ? errmsg : sg_strerror(status));
        put_error(&sl->out, msg);
        s->w->errors++;
    }
    sl->done = 1;
    session_flush(s);
}

static void on_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    owed *o = ud;
    session *s = o->s;
    (void)c;
    if (session_owed_done(s)) session_reply(s, o->seq, reply, status, errmsg);
    sg_reply_free(reply);
    sg_free(o);
}

/* ---- commands the gateway answers itself ------------------------------------------------ */

int is(const sg_resp_req *r, int i, const char *word) {
    size_t n = strlen(word);
    return i < r->argc && r->argvlen[i] == n && strncasecmp(r->argv[i], word, n) == 0;
}

static void do_hello(session *s, const sg_resp_req *r, sg_buf *b) {
    int i = 2;
    if (r->argc >= 2) {
        if (!is(r, 1, "2")) {
            if (is(r, 1, "3")) put_error(b, "NOPROTO sorry, this protocol version is not supported.");
            else put_error(b, "NOPROTO unsupported protocol version");
            return;
        }
    }
    for (; i < r->argc; i++) {
        if (is(r, i, "AUTH") && i + 2 < r->argc) {
            sg_buf tmp = {0};
            sg_resp_req a = *r;
            const char *argv[3] = {"AUTH", r->argv[i + 1], r->argv[i + 2]};
            size_t lens[3] = {4, r->argvlen[i + 1], r->argvlen[i + 2]};
            a.argc = 3;
            a.argv = argv;
            a.argvlen = lens;
            users_auth(s, &a, &tmp);
            if (tmp.data && tmp.data[0] == '-') {
                sg_buf_append(b, tmp.data, tmp.len);
                sg_buf_free(&tmp);
                return;
            }
            sg_buf_free(&tmp);
            i += 2;
        } else if (is(r, i, "SETNAME") && i + 1 < r->argc) {
            sg_free(s->name);
            s->name = sg_strndup(r->argv[i + 1], r->argvlen[i + 1]);
            i++;
        } else {
            put_error(b, "ERR Syntax error in HELLO option");
            return;
        }
    }
    if (!s->authed) {
        put_error(b, "NOAUTH HELLO must be called with the client already authenticated, otherwise "
                     "the HELLO AUTH <user> <pass> option can be used to authenticate the client and "
                     "select the RESP protocol version at the same time");
        return;
    }
    sg_buf_puts(b, "*14\r\n$6\r\nserver\r\n$8\r\nslotgate\r\n$7\r\nversion\r\n");
    put_bulk(b, sg_version(), strlen(sg_version()));
    sg_buf_printf(b, "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:%llu\r\n", (unsigned long long)s->id);
    sg_buf_puts(b, "$4\r\nmode\r\n$7\r\ncluster\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
}

static void do_client(session *s, const sg_resp_req *r, sg_buf *b) {
    if (is(r, 1, "SETNAME") && r->argc == 3) {
        sg_free(s->name);
        s->name = sg_strndup(r->argv[2], r->argvlen[2]);
        sg_buf_puts(b, "+OK\r\n");
    } else if (is(r, 1, "GETNAME") && r->argc == 2) {
        if (s->name) put_bulk(b, s->name, strlen(s->name));
        else sg_buf_puts(b, "$-1\r\n");
    } else if (is(r, 1, "ID") && r->argc == 2) {
        sg_buf_printf(b, ":%llu\r\n", (unsigned long long)s->id);
    } else if (is(r, 1, "INFO") && r->argc == 2) {
        char line[400];
        int n = snprintf(line, sizeof line, "id=%llu addr=%s name=%s\n", (unsigned long long)s->id,
                         s->addr, s->name ? s->name : "");
        put_bulk(b, line, (size_t)n);
    } else {
        put_error(b, "ERR slotgate answers CLIENT SETNAME, GETNAME, ID and INFO only");
    }
}

static void do_info(session *s, sg_buf *b) {
    worker *w = s->w;
    sg_buf t = {0};
    sg_client *c = sg_gateway_client(w->gw, "default");
    int i;
    sg_buf_printf(&t, "# Server\r\nslotgate_version:%s\r\nprocess_id:%ld\r\nworker_threads:%d\r\n\r\n",
                  sg_version(), (long)getpid(), w->srv->nw);
    sg_buf_printf(&t, "# Clients\r\nconnected_clients:%lld\r\n\r\n",
                  __atomic_load_n(&w->srv->clients, __ATOMIC_RELAXED));
    sg_buf_printf(&t, "# Stats (this worker)\r\ncommands:%llu\r\nerror_replies:%llu\r\n\r\n",
                  (unsigned long long)w->commands, (unsigned long long)w->errors);
    if (c) {
        sg_buf_puts(&t, "# Upstream default\r\n");
        for (i = 0; i < sg_client_node_count(c); i++) {
            sg_node_stats st;
            if (sg_client_node_stats(c, i, &st) != SG_OK) continue;
            sg_buf_printf(&t,
                          "node%d:addr=%s,role=%s,commands=%llu,errors=%llu,moved=%llu,ask=%llu,"
                          "timeouts=%llu,conns=%d,in_use=%d,idle=%d,pool_waits=%llu\r\n",
                          i, st.addr, st.is_master ? "master" : "replica",
                          (unsigned long long)st.commands, (unsigned long long)st.errors,
                          (unsigned long long)st.moved, (unsigned long long)st.ask,
                          (unsigned long long)st.timeouts, st.conns, st.in_use, st.idle,
                          (unsigned long long)st.pool_waits);
        }
        sg_buf_printf(&t, "map_refreshes:%llu\r\n", (unsigned long long)sg_client_refresh_count(c));
    }
    if (w->policy || w->user_policy) {
        sg_policy_stats ps;
        policies_stats(w, &ps);
        sg_buf_printf(&t,
                      "\r\n# Policy (this worker)\r\npolicy_scripts:%d\r\npolicy_denied:%llu\r\n"
                      "policy_rewritten:%llu\r\npolicy_hook_errors:%llu\r\npolicy_hook_timeouts:%llu\r\n",
                      w->policy ? sg_policy_count(w->policy) : 0, (unsigned long long)ps.denied,
                      (unsigned long long)ps.rewritten, (unsigned long long)ps.hook_errors,
                      (unsigned long long)ps.hook_timeouts);
    }
    put_bulk(b, t.data ? t.data : "", t.len);
    sg_buf_free(&t);
}

/* Commands a shared upstream connection cannot carry (yet): refused with
 * their name, never forwarded. */
static const char *const refused[] = {"MULTI",     "EXEC",       "DISCARD",      "WATCH",
                                      "UNWATCH",   "SUBSCRIBE",  "PSUBSCRIBE",   "SSUBSCRIBE",
                                      "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR",
                                      "SYNC",      "PSYNC",      "READONLY",     "READWRITE",
                                      "ASKING",    "RESET",      NULL};

/* Answers r if the gateway itself does; 1 when answered. */
static int local_command(session *s, const sg_resp_req *r, sg_buf *b) {
    int i;
    if (is(r, 0, "AUTH")) users_auth(s, r, b);
    else if (is(r, 0, "HELLO")) do_hello(s, r, b);
    else if (is(r, 0, "QUIT")) {
        sg_buf_puts(b, "+OK\r\n");
        s->closing = 1;
    } else if (!s->authed) {
        put_error(b, "NOAUTH Authentication required.");
    } else if (is(r, 0, "PING")) {
        if (r->argc == 1) sg_buf_puts(b, "+PONG\r\n");
        else if (r->argc == 2) put_bulk(b, r->argv[1], r->argvlen[1]);
        else put_error(b, "ERR wrong number of arguments for 'ping' command");
    } else if (is(r, 0, "ECHO")) {
        if (r->argc == 2) put_bulk(b, r->argv[1], r->argvlen[1]);
        else put_error(b, "ERR wrong number of arguments for 'echo' command");
    } else if (is(r, 0, "SELECT")) {
        if (r->argc == 2 && is(r, 1, "0")) sg_buf_puts(b, "+OK\r\n");
        else put_error(b, "ERR SELECT is not allowed in cluster mode");
    } else if (is(r, 0, "CLIENT")) {
        do_client(s, r, b);
    } else if (is(r, 0, "INFO")) {
        do_info(s, b);
    } else {
        for (i = 0; refused[i]; i++)
            if (is(r, 0, refused[i])) {
                char msg[200];
                snprintf(msg, sizeof msg,
                         "ERR slotgate does not support %s yet (it needs a connection of its own)",
                         refused[i]);
                put_error(b, msg);
                return 1;
            }
        return 0;
    }
    return 1;
}

/* ---- reading requests -------------------------------------------------------------------- */

static void handle(session *s, const sg_resp_req *r) {
    uint64_t seq;
    slot *sl = slot_new(s, &seq);
    owed *o;
    sg_request_ctx ctx;
    if (sl == NULL) {
        s->closing = 1;
        return;
    }
    s->w->commands++;
    if (local_command(s, r, &sl->out)) {
        sl->done = 1;
        return;
    }
    if ((o = sg_malloc(sizeof *o)) == NULL) {
        put_error(&sl->out, "ERR slotgate: out of memory");
        sl->done = 1;
        return;
    }
    o->s = s;
    o->seq = seq;
    ctx.user = session_user(s);
    sg_gateway_set_policy(s->w->gw, session_policy(s)); /* the user's own, if any */
    ctx.client = s->name;
    ctx.addr = s->addr;
    s->inflight++;
    if (sg_gateway_send_argv(s->w->gw, &ctx, r->argc, r->argv, r->argvlen, on_reply, o) != SG_OK) {
        char msg[SG_ERRMSG_MAX + 32];
        s->inflight--;
        sg_free(o);
        snprintf(msg, sizeof msg, "ERR slotgate: %s", sg_errmsg(s->w->gw));
        put_error(&sl->out, msg);
        sl->done = 1;
    }
}

static void on_read(struct bufferevent *bev, void *arg) {
    session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    sg_resp_req r;
    int rc;
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
        sg_resp_commit(s->rp, (size_t)n);
    }
    while (!s->closing && (rc = sg_resp_next(s->rp, &r)) == 1) handle(s, &r);
    if (!s->closing && rc < 0 && rc != SG_ENOMEM) {
        uint64_t seq;
        slot *sl = slot_new(s, &seq);
        if (sl) {
            put_error(&sl->out, sg_errmsg(s->rp));
            sl->done = 1;
        }
        s->closing = 1; /* as redis: the error, then close */
    }
    if (s->closing) bufferevent_disable(bev, EV_READ);
    session_flush(s);
}

static void on_write(struct bufferevent *bev, void *arg) {
    session *s = arg;
    (void)bev;
    if (s->closing && s->count == 0) session_close(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
    session *s = arg;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        /* idle: no request for client_idle_timeout; one waiting for its
         * replies (a blocking pop, say) is not idle */
        if (s->count > 0 || s->inflight > 0) {
            bufferevent_enable(bev, EV_READ);
            return;
        }
        sg_log(SG_LOG_INFO, "client %s (id %llu) closed: idle for %lld s", s->addr,
               (unsigned long long)s->id, s->w->srv->o->idle_timeout);
        session_close(s);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) session_close(s);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
    worker *w = arg;
    server *srv = w->srv;
    session *s;
    (void)l;
    (void)salen;
    if (__atomic_add_fetch(&srv->clients, 1, __ATOMIC_RELAXED) > srv->o->max_clients) {
        static const char full[] = "-ERR max number of clients reached\r\n";
        __atomic_sub_fetch(&srv->clients, 1, __ATOMIC_RELAXED);
        if (write(fd, full, sizeof full - 1) < 0) { /* best effort */
        }
        evutil_closesocket(fd);
        return;
    }
    sg_resp_limits lim;
    sg_resp_limits_default(&lim);
    if (srv->o->max_request_bytes > 0) {
        lim.max_request = (size_t)srv->o->max_request_bytes;
        if (lim.max_bulk > lim.max_request) lim.max_bulk = lim.max_request;
    }
    if ((s = sg_calloc(1, sizeof *s)) == NULL || (s->rp = sg_resp_new(&lim)) == NULL ||
        (s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
        if (s) {
            sg_resp_free(s->rp);
            sg_free(s);
        }
        evutil_closesocket(fd);
        __atomic_sub_fetch(&srv->clients, 1, __ATOMIC_RELAXED);
        return;
    }
    s->w = w;
    s->id = __atomic_add_fetch(&srv->next_id, 1, __ATOMIC_RELAXED);
    s->authed = !users_required(srv->o);
    s->user = -1;
    if (!s->authed) sg_resp_set_auth_required(s->rp, 1);
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(s->addr, sizeof s->addr, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(s->addr, sizeof s->addr, "[%s]:%d", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(s->addr, sizeof s->addr, "unix");
    }
    s->next = w->sessions;
    if (w->sessions) w->sessions->prev = s;
    w->sessions = s;
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    if (srv->o->idle_timeout > 0) {
        struct timeval idle = {(time_t)srv->o->idle_timeout, 0};
        bufferevent_set_timeouts(s->bev, &idle, NULL);
    }
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* ---- listeners ---------------------------------------------------------------------------- */

static struct evconnlistener *listen_on(worker *w, const char *spec, char *err, size_t errlen) {
    const sg_serve_opts *o = w->srv->o;
    struct evconnlistener *l;
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un un;
        const char *path = spec + 5;
        memset(&un, 0, sizeof un);
        un.sun_family = AF_UNIX;
        if (strlen(path) >= sizeof un.sun_path) {
            snprintf(err, errlen, "listen %s: the path is too long", spec);
            return NULL;
        }
        memcpy(un.sun_path, path, strlen(path));
        unlink(path); /* a socket left by an earlier run */
        l = evconnlistener_new_bind(w->base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, 511,
                                    (struct sockaddr *)&un, sizeof un);
        if (l && chmod(path, (mode_t)o->unix_mode) != 0) {
            snprintf(err, errlen, "listen %s: chmod %o: %s", spec, o->unix_mode, strerror(errno));
            evconnlistener_free(l);
            return NULL;
        }
    } else {
        struct sockaddr_storage ss;
        int sslen = sizeof ss;
        if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) != 0) {
            snprintf(err, errlen, "listen %s: not host:port", spec);
            return NULL;
        }
        l = evconnlistener_new_bind(w->base, on_accept, w,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                        LEV_OPT_REUSEABLE_PORT,
                                    511, (struct sockaddr *)&ss, sslen);
    }
    if (l == NULL) snprintf(err, errlen, "listen %s: %s", spec, strerror(errno));
    return l;
}

/* ---- workers -------------------------------------------------------------------------------- */

static void on_reload(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    policies_reload(arg);
}

/* Stopping: exits the loop once every reply owed is written out. */
static void on_drain_poll(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    session *s;
    (void)fd;
    (void)what;
    for (s = w->sessions; s; s = s->next)
        if (s->inflight > 0 || s->count > 0 ||
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
           w->srv->o->shutdown_timeout);
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
    }
    w->stop_timer = event_new(w->base, -1, EV_PERSIST, on_drain_poll, w);
    if (w->stop_timer) evtimer_add(w->stop_timer, &poll);
    {
        struct timeval bound = {w->srv->o->shutdown_timeout, 0};
        event_base_once(w->base, -1, EV_TIMEOUT, on_drain_bound, w, &bound);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static void worker_free(worker *w) {
    int i;
    session *s;
    for (i = 0; i < w->nls; i++)
        if (w->ls[i]) evconnlistener_free(w->ls[i]);
    sg_free(w->ls);
    /* the gateway answers what is still in flight (SG_ECLOSED) */
    while ((s = w->sessions) != NULL) session_close(s);
    sg_gateway_free(w->gw);
    policies_free(w);
    if (w->reload_ev) event_free(w->reload_ev);
    if (w->stop_ev) event_free(w->stop_ev);
    if (w->stop_timer) event_free(w->stop_timer);
    if (w->base) event_base_free(w->base);
}

static int worker_init(worker *w, server *srv, int id, char *err, size_t errlen) {
    const sg_serve_opts *o = srv->o;
    int i;
    w->srv = srv;
    w->id = id;
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
    w->reload_ev = event_new(w->base, -1, 0, on_reload, w);
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    if (w->reload_ev == NULL || w->stop_ev == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- the process ------------------------------------------------------------------------------ */

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    server *srv = arg;
    int i;
    (void)what;
    if (sig == SIGHUP) {
        sg_log(SG_LOG_INFO, "SIGHUP: reloading policy scripts");
        for (i = 0; i < srv->nw; i++) event_active(srv->w[i].reload_ev, EV_TIMEOUT, 1);
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
    srv.nw = o->threads > 0 ? o->threads : 1;
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "libevent has no thread support");
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (sg_listen_check(o, err, errlen) != 0) return -1;
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
        if (o->ready) o->ready(o->ready_ud);
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
    return rc;
}
