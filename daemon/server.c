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

#include "conns.h"
#include "admin.h"
#include "metrics.h"
#include "resp.h"
#include "server.h"
#include "session.h"
#include "sg_internal.h"
#include "tls_server.h"

/* ---- replies ----------------------------------------------------------------------- */

/* Appends a RESP header: the type byte, the number, CRLF (no printf: this
 * runs for every reply). */
static void put_head(sg_buf *b, char type, long long v) {
    char tmp[24], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    *--p = '\n';
    *--p = '\r';
    do *--p = (char)('0' + u % 10); while ((u /= 10) != 0);
    if (v < 0) *--p = '-';
    *--p = type;
    sg_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

void put_reply(sg_buf *b, const sg_reply *r) {
    size_t i;
    switch (r->type) {
    case SG_REPLY_STATUS:
    case SG_REPLY_ERROR:
        sg_buf_append(b, r->type == SG_REPLY_STATUS ? "+" : "-", 1);
        sg_buf_append(b, r->str, r->len);
        sg_buf_append(b, "\r\n", 2);
        break;
    case SG_REPLY_INTEGER: put_head(b, ':', r->integer); break;
    case SG_REPLY_NIL: sg_buf_append(b, "$-1\r\n", 5); break;
    case SG_REPLY_STRING:
        put_head(b, '$', (long long)r->len);
        sg_buf_append(b, r->str, r->len);
        sg_buf_append(b, "\r\n", 2);
        break;
    case SG_REPLY_ARRAY:
        put_head(b, '*', (long long)r->elements);
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
    txn_release(s); /* their connections go now: no reply comes for a gone client */
    pubsub_release(s);
    if (s->rev) event_free(s->rev);
    if (s->wev) event_free(s->wev);
    sg_buf_free(&s->out);
    s->outoff = 0;
    s->rev = s->wev = NULL;
    if (s->bev) bufferevent_free(s->bev); /* closes fd */
    else if (s->fd >= 0) evutil_closesocket(s->fd);
    s->bev = NULL;
    s->fd = -1;
    if (s->dirty) { /* out of the dirty list */
        session **pp = &w->dirty;
        while (*pp != s) pp = &(*pp)->dirty_next;
        *pp = s->dirty_next;
        s->dirty = 0;
    }
    if (s->prev) s->prev->next = s->next;
    else w->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    __atomic_sub_fetch(&w->srv->clients, 1, __ATOMIC_RELAXED);
    if (s->inflight == 0) session_free(s);
}

/* A slot's reply buffer: a reply that comes before those owed ahead of it
 * waits in it. Buffers of the first size are kept by the worker for the next
 * slots (one malloc and free less per reply that comes out of order). */
#define SLOT_BUF 256
#define KEEP_BUFS 256

static void slot_buf_take(worker *w, sg_buf *b) {
    void *p = w->free_bufs;
    if (p == NULL) return; /* sg_buf_append allocates when needed */
    memcpy(&w->free_bufs, p, sizeof(void *));
    w->nfree_bufs--;
    b->data = p;
    b->cap = SLOT_BUF;
}

static void slot_buf_give(worker *w, sg_buf *b) {
    if (b->data && b->cap == SLOT_BUF && w->nfree_bufs < KEEP_BUFS) {
        memcpy(b->data, &w->free_bufs, sizeof(void *));
        w->free_bufs = b->data;
        w->nfree_bufs++;
        memset(b, 0, sizeof *b);
        return;
    }
    sg_buf_free(b);
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
    slot_buf_take(s->w, &sl->out);
    *seq = s->head_seq + s->count;
    s->count++;
    return sl;
}

/* Writes what s has ready; the write event takes over when the socket is
 * full. 0, or -1 when the session was closed. */
static int write_out(session *s) {
    size_t left;
    if (s->out.oom) { /* a reply could not be queued: the order is lost */
        sg_log(SG_LOG_WARN, "client %s (id %llu) closed: out of memory for its replies", s->addr,
               (unsigned long long)s->id);
        session_close(s);
        return -1;
    }
    if (s->bev) { /* TLS: the bufferevent encrypts and writes */
        left = s->out.len - s->outoff;
        if (left > 0 && bufferevent_write(s->bev, s->out.data + s->outoff, left) != 0) {
            session_close(s);
            return -1;
        }
        s->out.len = s->outoff = 0;
        if (s->out.cap > 65536) sg_buf_free(&s->out);
        if (s->closing && s->count == 0 &&
            evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
            session_close(s);
            return -1;
        }
        return 0;
    }
    while ((left = s->out.len - s->outoff) > 0) {
        ssize_t n = send(s->fd, s->out.data + s->outoff, left, MSG_NOSIGNAL);
        if (n > 0) {
            s->outoff += (size_t)n;
            continue;
        }
        if (n < 0 && EVUTIL_ERR_RW_RETRIABLE(EVUTIL_SOCKET_ERROR())) break;
        session_close(s); /* the peer is gone */
        return -1;
    }
    if (left == 0) {
        /* all out: the buffer is reused, unless a burst made it large */
        s->out.len = s->outoff = 0;
        if (s->out.cap > 65536) sg_buf_free(&s->out);
    } else if (s->outoff > s->out.len / 2) {
        memmove(s->out.data, s->out.data + s->outoff, left);
        s->out.len = left;
        s->outoff = 0;
    }
    if (left > 0) {
        if (!event_pending(s->wev, EV_WRITE, NULL)) event_add(s->wev, NULL);
    } else {
        if (event_pending(s->wev, EV_WRITE, NULL)) event_del(s->wev);
        if (s->closing && s->count == 0) {
            session_close(s);
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
 * reply waits at most one turn, never for a slow command behind it.
 * (GET at pipeline 16, 50 clients, 2 workers: sends 93 800 -> 85 800 per
 * million requests, runs 3-15 % shorter; pipeline 1 and MGET unchanged.
 * Holding up to 3 or 8 turns sent less but spun the loop: slower.) */
static void on_write_turn(evutil_socket_t fd, short what, void *arg) {
    worker *w = arg;
    session *held = NULL, **tail = &held;
    (void)fd;
    (void)what;
    while (w->dirty) {
        session *s = w->dirty;
        w->dirty = s->dirty_next;
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

static void mark_dirty(session *s) {
    worker *w = s->w;
    if (s->dirty) return;
    s->dirty = 1;
    s->dirty_next = w->dirty;
    w->dirty = s;
    if (!event_pending(w->write_ev, EV_TIMEOUT, NULL)) event_active(w->write_ev, EV_TIMEOUT, 1);
}

/* Moves every finished reply at the head to the output, in order. */
void session_flush(session *s) {
    size_t len;
    if (s->gone) return;
    while (s->count > 0 && s->slots[s->head].done) {
        slot *sl = &s->slots[s->head];
        if (sl->out.oom) sg_buf_append(&s->out, "-ERR slotgate: out of memory\r\n", 30);
        else if (sl->out.len) sg_buf_append(&s->out, sl->out.data, sl->out.len);
        slot_buf_give(s->w, &sl->out);
        s->head = (s->head + 1) % s->cap;
        s->count--;
        s->head_seq++;
    }
    len = s->out.len - s->outoff + (s->bev ? evbuffer_get_length(bufferevent_get_output(s->bev)) : 0);
    if (s->w->o->output_limit > 0 && len > (size_t)s->w->o->output_limit) {
        /* it does not read its replies: it alone pays, as redis's
         * client-output-buffer-limit */
        sg_log(SG_LOG_WARN, "client %s (id %llu) closed: %zu bytes of replies unread, over the "
               "client_output_limit of %lld", s->addr, (unsigned long long)s->id, len,
               s->w->o->output_limit);
        session_close(s);
        return;
    }
    if (len > 0 || s->closing) mark_dirty(s);
}

/* ---- forwarding through the gateway ------------------------------------------------------ */

typedef struct owed {
    session *s;
    uint64_t seq;
    struct owed *next; /* in the worker's free list */
} owed;

/* owed records are kept for reuse: one per command otherwise costs a
 * malloc and a free */
static owed *owed_new(worker *w) {
    owed *o = w->free_owed;
    if (o) {
        w->free_owed = o->next;
        w->nfree_owed--;
        return o;
    }
    return sg_malloc(sizeof *o);
}

static void owed_free(worker *w, owed *o) {
    if (w->nfree_owed >= 1024) {
        sg_free(o);
        return;
    }
    o->next = w->free_owed;
    w->free_owed = o;
    w->nfree_owed++;
}

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
    if (reply && seq == s->head_seq && sl->out.len == 0) {
        /* the oldest reply owed (the usual case): straight to the output */
        put_reply(&s->out, reply);
        if (reply->type == SG_REPLY_ERROR) s->w->errors++;
        sl->done = 1;
        session_flush(s);
        return;
    }
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
    worker *w = s->w;
    (void)c;
    if (session_owed_done(s)) session_reply(s, o->seq, reply, status, errmsg);
    sg_reply_free(reply);
    owed_free(w, o);
}

/* A plain reply, as the node sent it: copied to the client as it is. */
static void on_raw_reply(sg_client *c, const char *resp, size_t len, void *ud) {
    owed *o = ud;
    session *s = o->s;
    worker *w = s->w;
    (void)c;
    if (session_owed_done(s)) {
        slot *sl = slot_at(s, o->seq);
        sg_buf_append(o->seq == s->head_seq && sl->out.len == 0 ? &s->out : &sl->out, resp, len);
        sl->done = 1;
        session_flush(s);
    }
    owed_free(w, o);
}

/* ---- commands the gateway answers itself ------------------------------------------------ */

/* A client name as redis takes it: printable, no blanks (it goes into
 * CLIENT INFO's lines, policies' {client} and logs). */
static int valid_client_name(const char *name, size_t len) {
    size_t i;
    for (i = 0; i < len; i++)
        if (name[i] < '!' || name[i] > '~') return 0;
    return 1;
}

#define BAD_CLIENT_NAME "ERR Client names cannot contain spaces, newlines or special characters."

/* Names s (an empty name removes it, as in redis). */
static void set_client_name(session *s, const char *name, size_t len) {
    sg_free(s->name);
    s->name = len ? sg_strndup(name, len) : NULL;
}

static void do_hello(session *s, const sg_resp_req *r, sg_buf *b) {
    int i = 2, setname = -1;
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
            if (!valid_client_name(r->argv[i + 1], r->argvlen[i + 1])) {
                put_error(b, BAD_CLIENT_NAME);
                return;
            }
            setname = ++i; /* named only once authenticated */
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
    if (setname > 0) set_client_name(s, r->argv[setname], r->argvlen[setname]);
    sg_buf_puts(b, "*14\r\n$6\r\nserver\r\n$8\r\nslotgate\r\n$7\r\nversion\r\n");
    put_bulk(b, sg_version(), strlen(sg_version()));
    sg_buf_printf(b, "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:%llu\r\n", (unsigned long long)s->id);
    sg_buf_puts(b, "$4\r\nmode\r\n$7\r\ncluster\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
}

static void do_client(session *s, const sg_resp_req *r, sg_buf *b) {
    if (is(r, 1, "SETNAME") && r->argc == 3) {
        if (!valid_client_name(r->argv[2], r->argvlen[2])) {
            put_error(b, BAD_CLIENT_NAME);
            return;
        }
        set_client_name(s, r->argv[2], r->argvlen[2]);
        sg_buf_puts(b, "+OK\r\n");
    } else if (is(r, 1, "GETNAME") && r->argc == 2) {
        if (s->name) put_bulk(b, s->name, strlen(s->name));
        else sg_buf_puts(b, "$-1\r\n");
    } else if (is(r, 1, "ID") && r->argc == 2) {
        sg_buf_printf(b, ":%llu\r\n", (unsigned long long)s->id);
    } else if (is(r, 1, "INFO") && r->argc == 2) {
        /* Every field of Redis 7.0's line, as clients parse them all (redis-py's
         * client_info() reads id, age, idle, db, sub, psub, multi, qbuf,
         * qbuf-free, obl, argv-mem, oll, omem and tot-mem as integers). A
         * subscribed or queuing client cannot ask, so sub, psub, ssub are 0 and
         * multi -1; memory slotgated does not count per client is 0; omem is
         * the replies not yet written. The name has no length bound: no fixed
         * buffer. */
        sg_buf line = {0};
        const char *user = session_user(s);
        sg_buf_printf(&line,
                      "id=%llu addr=%s fd=%d name=%s age=%lld idle=0 flags=N db=0 sub=0 psub=0 "
                      "ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
                      "obl=0 oll=0 omem=%zu tot-mem=0 events=r cmd=client|info user=%s redir=-1 "
                      "resp=2\n",
                      (unsigned long long)s->id, s->addr, (int)s->fd, s->name ? s->name : "",
                      (long long)(time(NULL) - s->created), s->out.len - s->outoff,
                      user ? user : "default");
        if (line.oom) put_error(b, "ERR slotgate: out of memory");
        else put_bulk(b, line.data, line.len);
        sg_buf_free(&line);
    } else {
        put_error(b, "ERR slotgate answers CLIENT SETNAME, GETNAME, ID and INFO only");
    }
}

/* Commands a shared upstream connection cannot carry (yet): refused with
 * their name, never forwarded. */
static const char *const refused[] = {"MONITOR", "SYNC",     "PSYNC", "READONLY",
                                      "READWRITE", "ASKING", NULL};

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
    } else {
        for (i = 0; refused[i]; i++)
            if (r->argvlen[0] >= 4 && r->argvlen[0] <= 12 && /* the names' lengths */
                is(r, 0, refused[i])) {
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

/* Commands (or containers: CLIENT) the session itself, txn.c or pubsub.c
 * take, by name as the command table spells them. A name the daemon answers
 * must be here or in admin_takes(): the rest goes straight to the cluster. */
static const char *const taken_here[] = {
    "auth",      "hello",      "quit",         "ping",         "echo",     "select",
    "client",    "reset",      "multi",        "exec",         "discard",  "watch",
    "unwatch",   "subscribe",  "psubscribe",   "ssubscribe",   "unsubscribe",
    "punsubscribe", "sunsubscribe", "monitor", "sync",         "psync",    "readonly",
    "readwrite", "asking",     NULL};

static unsigned char *taken; /* per table entry: 1 when the daemon takes it */
static pthread_once_t taken_once = PTHREAD_ONCE_INIT;

static void make_taken(void) {
    size_t n, i;
    const sg_command *table = sg_command_table(&n);
    if ((taken = sg_command_marks(taken_here, 1)) == NULL) abort(); /* at start, under 1 kB */
    for (i = 0; i < n; i++) taken[i] |= (unsigned char)admin_takes(&table[i]);
}

/* Whether r can go straight to the gateway: a known command the daemon
 * does not take, from an authenticated session outside MULTI and pub/sub
 * (a session that never used them: its state is NULL). The one table
 * look-up a plain command costs. */
static int plain_command(const session *s, const sg_command *cmd) {
    pthread_once(&taken_once, make_taken);
    return cmd != NULL && s->authed && s->txn == NULL && s->psub == NULL && !taken[sg_command_index(cmd)];
}

/* A command the daemon answers itself (PING, ECHO, CLIENT, INFO, CLUSTER,
 * MULTI ...) goes through the policies first, as a forwarded one does: a
 * policy that denies INFO keeps the upstreams' addresses to itself. AUTH,
 * HELLO and QUIT are never refused. 1 when denied (the error is in b). */
static int local_denied(session *s, const sg_command *cmd, const sg_resp_req *r, sg_buf *b) {
    static const char *const never[] = {"auth", "hello", "quit", NULL};
    sg_request_ctx ctx;
    char err[600];
    int i;
    for (i = 0; never[i]; i++)
        if (strcmp(cmd->name, never[i]) == 0) return 0;
    session_ctx(s, &ctx);
    if (!sg_gateway_denies(s->w->gw, &ctx, r->argc, r->argv, r->argvlen, err, sizeof err)) return 0;
    put_error(b, err);
    return 1;
}

static void handle(session *s, const sg_resp_req *r) {
    uint64_t seq;
    slot *sl = slot_new(s, &seq);
    const sg_command *cmd;
    owed *o;
    sg_request_ctx ctx;
    if (sl == NULL) {
        s->closing = 1;
        return;
    }
    s->w->commands++;
    cmd = sg_command_resolve(r->argc, r->argv, r->argvlen);
    if (plain_command(s, cmd)) goto forward;
    /* MULTI and RESET are decided on here (a policy may forbid transactions);
     * WATCH, what MULTI queues and the subscribe family in txn.c and
     * pubsub.c */
    if (s->authed && cmd && (strcmp(cmd->name, "multi") == 0 || strcmp(cmd->name, "reset") == 0) &&
        local_denied(s, cmd, r, &sl->out)) {
        sl->done = 1;
        return;
    }
    /* connection-bound commands (conns.h): subscribed mode, MULTI and what
     * it queues, the subscribe family */
    if (s->authed && (pubsub_refuse(s, r, seq) || txn_command(s, r, seq) ||
                      pubsub_command(s, r, seq)))
        return;
    if (s->authed && cmd && taken[sg_command_index(cmd)] && local_denied(s, cmd, r, &sl->out)) {
        sl->done = 1;
        return;
    }
    if (s->authed && cmd && admin_command(s, cmd, r, sl, seq)) return; /* admin.c: INFO, refusals */
    if (local_command(s, r, &sl->out)) {
        sl->done = 1;
        return;
    }
forward:
    if ((o = owed_new(s->w)) == NULL) {
        put_error(&sl->out, "ERR slotgate: out of memory");
        sl->done = 1;
        return;
    }
    o->s = s;
    o->seq = seq;
    session_ctx(s, &ctx);
    s->inflight++;
    if (sg_gateway_forward_cmd(s->w->gw, cmd, &ctx, r->argc, r->argv, r->argvlen,
                               r->is_inline ? NULL : r->raw, r->rawlen, on_reply, on_raw_reply,
                               o) != SG_OK) {
        char msg[SG_ERRMSG_MAX + 32];
        s->inflight--;
        owed_free(s->w, o);
        snprintf(msg, sizeof msg, "ERR slotgate: %s", sg_errmsg(s->w->gw));
        put_error(&sl->out, msg);
        sl->done = 1;
    }
}

/* Reads what the client sent straight into the request parser's buffer and
 * handles every complete request. */
static void process(session *s, int eof);

/* Idle: no request for client_idle_timeout; one waiting for its replies (a
 * blocking pop, say) or subscribed is not idle. */
static void on_idle(session *s) {
    if (s->count > 0 || s->inflight > 0 || pubsub_active(s)) return;
    sg_log(SG_LOG_INFO, "client %s (id %llu) closed: idle for %lld s", s->addr,
           (unsigned long long)s->id, s->w->o->idle_timeout);
    session_close(s);
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
        if (n > 0) {
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
    while (!s->closing && (rc = sg_resp_next(s->rp, &r)) == 1) handle(s, &r);
    if (s->gone) return;
    if (!s->closing && rc < 0 && rc != SG_ENOMEM) {
        uint64_t seq;
        slot *sl = slot_new(s, &seq);
        if (sl) {
            put_error(&sl->out, sg_errmsg(s->rp));
            sl->done = 1;
        }
        s->closing = 1; /* as redis: the error, then close */
    }
    if (eof) {
        session_close(s);
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
    process(s, 0);
}

static void on_tls_write(struct bufferevent *bev, void *arg) {
    session *s = arg;
    (void)bev;
    if (s->closing && s->count == 0 && s->out.len == s->outoff) session_close(s);
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
        if (sg_tls_server_error(bev, why, sizeof why))
            sg_log(SG_LOG_INFO, "client %s (id %llu) closed: TLS: %s", s->addr,
                   (unsigned long long)s->id, why);
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) session_close(s);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    write_out(arg);
}

/* A client on a plain listener, or (tls) on a "tls:" one. */
static void accept_client(worker *w, evutil_socket_t fd, struct sockaddr *sa, int tls) {
    server *srv = w->srv;
    session *s;
    if (__atomic_add_fetch(&srv->clients, 1, __ATOMIC_RELAXED) > w->o->max_clients) {
        static const char full[] = "-ERR max number of clients reached\r\n";
        __atomic_sub_fetch(&srv->clients, 1, __ATOMIC_RELAXED);
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
                (s->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, on_writable, s)) == NULL))) {
        if (s) {
            sg_resp_free(s->rp);
            if (s->rev) event_free(s->rev);
            sg_free(s);
        }
        evutil_closesocket(fd);
        __atomic_sub_fetch(&srv->clients, 1, __ATOMIC_RELAXED);
        return;
    }
    s->w = w;
    s->id = __atomic_add_fetch(&srv->next_id, 1, __ATOMIC_RELAXED);
    s->created = time(NULL);
    s->authed = !users_required(w->o);
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
    if (ref->o->storage && sg_gateway_set_credentials(w->gw, ref->o->storage) != SG_OK)
        sg_log(SG_LOG_WARN, "SIGHUP: the upstreams' credentials stay: %s", sg_errmsg(w->gw));
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
            s->out.len > s->outoff ||
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

static void *worker_main(void *arg) {
    worker *w = arg;
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
    while ((s = w->sessions) != NULL) session_close(s);
    sg_gateway_free(w->gw);
    policies_free(w);
    if (w->reload_ev) event_free(w->reload_ev);
    if (w->write_ev) event_free(w->write_ev);
    if (w->late_ev) event_free(w->late_ev);
    while (w->free_owed) {
        owed *o = w->free_owed;
        w->free_owed = o->next;
        sg_free(o);
    }
    while (w->free_bufs) {
        void *p = w->free_bufs;
        memcpy(&w->free_bufs, p, sizeof(void *));
        sg_free(p);
    }
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
    if (w->reload_ev == NULL || w->stop_ev == NULL || w->write_ev == NULL || w->late_ev == NULL) {
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
        opts_ref *ref = NULL;
        if (srv->o->reload) {
            char why[SG_ERRMSG_MAX + 100];
            sg_serve_opts *no = srv->o->reload(srv->o->reload_ud, why, sizeof why);
            if (no == NULL) {
                sg_log(SG_LOG_ERROR, "SIGHUP: the settings cannot be read again, nothing changes: %s",
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
                   "certificate and the policy scripts");
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
    srv.nw = o->threads > 0 ? o->threads : 1;
    srv.first.o = (sg_serve_opts *)o; /* not owned: never freed here */
    srv.first.refs = srv.nw;
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
    return rc;
}
