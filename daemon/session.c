/*
 * session.c — a client session's memory and life, and its replies in
 * request order. It owns:
 *  - the reply slots: one per request, a ring in request order; a reply
 *    that comes before those owed ahead of it waits in its slot (their
 *    buffers are kept per worker for reuse);
 *  - the flush: finished replies at the head move to the session's output
 *    (those CLIENT REPLY OFF or SKIP made quiet are dropped there), the
 *    output limit is enforced, and the session joins the worker's list
 *    of those to write at the end of the turn (server.c writes them);
 *  - the close: session_close() from anywhere is a mark that the server
 *    loop carries out (session_end(), from server.c only), and the free
 *    once the gateway has answered everything in flight;
 *  - the worker's figures that replies make (session.h, worker_figs): each
 *    command's calls, time, rejections and failures when its reply is done,
 *    error replies by code, the sessions blocked, and the samples behind
 *    instantaneous_ops_per_sec and the kbps figures.
 * It knows nothing of sockets beyond closing them, nor of the commands.
 */
#include <assert.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "session.h"

/* ---- reply slots ------------------------------------------------------------ */

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

void session_free_pool(worker *w) {
    while (w->free_bufs) {
        void *p = w->free_bufs;
        memcpy(&w->free_bufs, p, sizeof(void *));
        sg_free(p);
    }
    w->nfree_bufs = 0;
}

reply_slot *reply_slot_new(session *s, uint64_t *seq) {
    reply_slot *rs;
    if (s->count == s->cap) {
        /* a power of two: a slot's place is an AND, not a division */
        size_t ncap = s->cap ? s->cap * 2 : 16, i;
        reply_slot *ns = sg_calloc(ncap, sizeof *ns);
        if (ns == NULL) return NULL;
        for (i = 0; i < s->count; i++) ns[i] = s->slots[(s->head + i) % s->cap];
        sg_free(s->slots);
        s->slots = ns;
        s->cap = ncap;
        s->head = 0;
    }
    rs = &s->slots[(s->head + s->count) & (s->cap - 1)];
    memset(rs, 0, sizeof *rs);
    rs->w = s->w;
    rs->out.proto = s->out.proto; /* the session's protocol */
    slot_buf_take(s->w, &rs->out.buf);
    *seq = s->head_seq + s->count;
    s->count++;
    return rs;
}

/* ---- figures ------------------------------------------------------------------ */

uint64_t session_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* An error reply (msg without its '-'), counted by its code as Redis does:
 * the word before a space within its first 32 bytes, else ERR. */
static void count_error(worker *w, const char *msg, size_t len) {
    worker_figs *f = &w->figs;
    const char *sp = memchr(msg, ' ', len < 32 ? len : 32);
    const char *code = sp ? msg : "ERR";
    size_t n = sp ? (size_t)(sp - msg) : 3;
    int i, nerr = __atomic_load_n(&f->nerr, __ATOMIC_RELAXED);
    figs_add(&f->errors, 1);
    for (i = 0; i < nerr; i++)
        if (strncmp(f->err[i].code, code, n) == 0 && f->err[i].code[n] == '\0') {
            figs_add(&f->err[i].count, 1);
            return;
        }
    if (nerr == FIGS_ERRCODES) return; /* as Redis: no more codes are tracked */
    memcpy(f->err[nerr].code, code, n);
    f->err[nerr].code[n] = '\0';
    figs_add(&f->err[nerr].count, 1);
    __atomic_store_n(&f->nerr, nerr + 1, __ATOMIC_RELEASE); /* the code is whole */
}

void reply_slot_done(reply_slot *rs) {
    const sg_buf *b = &rs->out.buf;
    assert(!rs->done); /* a slot is answered once */
    rs->done = 1;
    if (b->len > 1 && b->data[0] == '-') {
        const char *cr = memchr(b->data, '\r', b->len);
        count_error(rs->w, b->data + 1, (cr ? (size_t)(cr - b->data) : b->len) - 1);
        rs->failed = 1;
    }
    if (rs->cmd) {
        cmd_figs *c = &rs->w->figs.cmd[sg_command_index(rs->cmd)];
        if (rs->rejected) {
            figs_add(&c->rejected, 1);
            return;
        }
        figs_add(&c->calls, 1);
        figs_add(&c->usec, session_now_us() - rs->t0);
        if (rs->failed) figs_add(&c->failed, 1);
    }
}

void session_blocking(session *s, int on) {
    if (on) {
        if (s->blocking++ == 0) figs_add(&s->w->figs.blocked, 1);
    } else if (s->blocking > 0 && --s->blocking == 0) {
        figs_add(&s->w->figs.blocked, (uint64_t)-1);
    }
}

void figs_sample(worker *w) {
    worker_figs *f = &w->figs;
    uint64_t now = session_now_us(), ops = figs_get(&f->commands), in = figs_get(&f->net_in),
             out = figs_get(&f->net_out), so = 0, si = 0, sw = 0, dt = now - f->last_us;
    int i;
    if (f->last_us && dt > 0) { /* as Redis's trackInstantaneousMetric */
        f->ring[f->ring_i].ops = (ops - f->last_ops) * 1000000u / dt;
        f->ring[f->ring_i].in = (in - f->last_in) * 1000000u / dt;
        f->ring[f->ring_i].out = (out - f->last_out) * 1000000u / dt;
        f->ring_i = (f->ring_i + 1) % FIGS_SAMPLES;
        for (i = 0; i < FIGS_SAMPLES; i++) {
            so += f->ring[i].ops;
            si += f->ring[i].in;
            sw += f->ring[i].out;
        }
        __atomic_store_n(&f->ops_sec, so / FIGS_SAMPLES, __ATOMIC_RELAXED);
        __atomic_store_n(&f->in_bps, si / FIGS_SAMPLES, __ATOMIC_RELAXED);
        __atomic_store_n(&f->out_bps, sw / FIGS_SAMPLES, __ATOMIC_RELAXED);
    }
    f->last_us = now;
    f->last_ops = ops;
    f->last_in = in;
    f->last_out = out;
}

void session_answer(session *s, uint64_t seq, const char *resp) {
    reply_slot *rs = reply_slot_at(s, seq);
    sg_resp_put_raw(&rs->out, resp, strlen(resp));
    reply_slot_done(rs);
}

void session_answer_error(session *s, uint64_t seq, const char *msg) {
    reply_slot *rs = reply_slot_at(s, seq);
    sg_resp_put_error(&rs->out, msg);
    reply_slot_done(rs);
}

/* ---- the flush ---------------------------------------------------------------- */

/* s has something for the end of the turn: replies to write, or a close. */
static void mark_dirty(session *s) {
    worker *w = s->w;
    if (!s->dirty) {
        s->dirty = 1;
        s->dirty_next = w->dirty;
        w->dirty = s;
    }
    if (!event_pending(w->write_ev, EV_TIMEOUT, NULL)) event_active(w->write_ev, EV_TIMEOUT, 1);
}

void session_flush(session *s) {
    size_t len;
    if (!session_open(s)) return;
    while (s->count > 0 && s->slots[s->head].done) {
        reply_slot *rs = &s->slots[s->head];
        /* a quiet one (CLIENT REPLY OFF or SKIP) is answered, never written */
        if (!rs->quiet && rs->out.buf.oom)
            sg_resp_put_error(&s->out, "ERR slotgate: out of memory");
        else if (!rs->quiet && rs->out.buf.len)
            sg_resp_put_raw(&s->out, rs->out.buf.data, rs->out.buf.len);
        slot_buf_give(s->w, &rs->out.buf);
        s->head = (s->head + 1) & (s->cap - 1);
        s->count--;
        s->head_seq++;
    }
    len = s->out.buf.len - s->outoff +
          (s->bev ? evbuffer_get_length(bufferevent_get_output(s->bev)) : 0);
    if (s->w->o->output_limit > 0 && len > (size_t)s->w->o->output_limit) {
        /* it does not read its replies: it alone pays, as redis's
         * client-output-buffer-limit */
        sg_log_fields at = session_log_fields(s);
        sg_log_at(SG_LOG_WARN, &at,
                  "client %s (id %llu) closed: %zu bytes of replies unread, over the "
                  "client_output_limit of %lld",
                  s->addr, (unsigned long long)s->id, len, s->w->o->output_limit);
        session_close(s);
        return;
    }
    if ((len > 0 || s->closing) && !s->dirty) mark_dirty(s);
}

void session_reply(session *s, uint64_t seq, const sg_reply *reply, int status,
                   const char *errmsg) {
    reply_slot *rs = reply_slot_at(s, seq);
    if (reply && seq == s->head_seq && rs->out.buf.len == 0 && !rs->quiet) {
        /* the oldest reply owed (the usual case): straight to the output */
        sg_resp_put_reply(&s->out, reply);
        if (reply->type == SG_REPLY_ERROR) {
            count_error(s->w, reply->str ? reply->str : "", reply->len);
            rs->failed = 1;
        }
        reply_slot_done(rs);
        session_flush(s);
        return;
    }
    session_reply_held(s, seq, reply, status, errmsg);
    reply_slot_done(rs);
    session_flush(s);
}

void session_reply_held(session *s, uint64_t seq, const sg_reply *reply, int status,
                        const char *errmsg) {
    reply_slot *rs = reply_slot_at(s, seq);
    if (reply) {
        sg_resp_put_reply(&rs->out, reply);
    } else {
        char msg[SG_ERRMSG_MAX + 32];
        snprintf(msg, sizeof msg, "ERR slotgate: %s", errmsg ? errmsg : sg_strerror(status));
        sg_resp_put_error(&rs->out, msg);
    }
}

/* ---- life ---------------------------------------------------------------------- */

static void session_free(session *s) {
    size_t i;
    assert(s->gone && s->inflight == 0);
    for (i = 0; i < s->count; i++) sg_buf_free(&s->slots[(s->head + i) % s->cap].out.buf);
    sg_free(s->slots);
    sg_resp_free(s->rp);
    sg_free(s->name);
    sg_free(s);
}

int session_owed_gone(session *s) {
    if (s->inflight == 0) session_free(s);
    return 0;
}

void session_close(session *s) {
    if (!session_open(s)) return;
    s->close_asap = 1;
    mark_dirty(s); /* the end of the turn carries it out */
}

void session_end(session *s) {
    worker *w = s->w;
    assert(!s->gone && s->txn == NULL && s->psub == NULL);
    s->gone = 1;
    if (s->blocking) { /* it waits no more: the reply will find no one */
        s->blocking = 1;
        session_blocking(s, 0);
    }
    if (s->rev) event_free(s->rev);
    if (s->wev) event_free(s->wev);
    sg_buf_free(&s->out.buf);
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
