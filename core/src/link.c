/*
 * link.c — a connection of its own to the master that serves a slot, for
 * what is tied to its connection (MULTI/EXEC and WATCH, SUBSCRIBE): the
 * pooled connections' handshake (AUTH, TLS), then only the bytes its owner
 * writes, and every reply read handed to the owner in order, asked for or
 * not (pub/sub messages). It is not one of the pool's connections: it is
 * never lent to a command and does not count against max_active.
 *
 * It reports to its connection through its own sg_conn_ops (link_ops).
 *
 * Its life: waiting for the slot map (a PING through the client, which
 * starts discovery), connecting, open; failed (once, told to the owner) or
 * freed by the owner.
 */
#include <assert.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

typedef struct map_wait {
    sg_link *l; /* NULL once the link is freed */
} map_wait;

struct sg_link {
    sg_error err; /* first: sg_errcode()/sg_errmsg() read it */
    sg_client *c;
    int slot;               /* -1: any master */
    sg_node *node;          /* where it connects (NULL until the map says) */
    sg_conn *conn;          /* NULL before connecting and after a failure */
    struct evbuffer *early; /* bytes written before the connection exists */
    sg_link_fn fn;
    void *ud;
    map_wait *wait;         /* the PING that waits for the slot map */
    struct event *timer;    /* the reply deadline; deferred failures */
    long due;               /* replies the owner said are owed */
    uint64_t progress;      /* ms: the last write or reply while some were due */
    int failed;             /* the failure is known (and told, or about to be) */
    int told;               /* the owner has been told */
};

/* ---- failure ------------------------------------------------------------------ */

static void tell_failure(sg_link *l) {
    if (l->told) return;
    l->told = 1;
    l->fn(l, NULL, l->err.code, l->err.msg, l->ud); /* may free l: last */
}

/* Records a failure and tells the owner from the loop (never inside a call
 * of the owner's). */
static void fail_later(sg_link *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_later(sg_link *l, int code, const char *fmt, ...) {
    struct timeval zero = {0, 0};
    va_list ap;
    if (l->failed) return;
    l->failed = 1;
    l->err.code = code;
    va_start(ap, fmt);
    vsnprintf(l->err.msg, sizeof l->err.msg, fmt, ap);
    va_end(ap);
    evtimer_add(l->timer, &zero);
}

/* The connection goes (its ops->closed): failed, or closed by sg_link_free
 * (which cleared its owner first). */
static void on_conn_closed(void *owner, sg_conn *conn, int code, const char *msg) {
    sg_link *l = owner;
    if (l == NULL) return; /* sg_link_free closing it */
    assert(l->conn == conn && code != SG_OK);
    conn->owner = NULL;
    l->conn = NULL; /* sg_conn_fail frees it */
    if (l->failed) return;
    l->failed = 1;
    sg_seterr(&l->err, code, "%s", msg);
    if (code != SG_EAUTH && code != SG_ENOMEM && !l->c->net.freeing)
        sg_cluster_refresh(l->c, 1); /* the node may be gone or failing over */
    tell_failure(l);
}

/* ---- replies -------------------------------------------------------------------- */

static void arm_deadline(sg_link *l) {
    struct timeval tv;
    if (l->failed || l->due <= 0) return;
    tv.tv_sec = l->c->net.timeout_ms / 1000;
    tv.tv_usec = (l->c->net.timeout_ms % 1000) * 1000;
    evtimer_add(l->timer, &tv);
}

/* Every reply the link reads (its ops->push). */
static void on_push(void *owner, sg_conn *conn, sg_reply *r) {
    sg_link *l = owner;
    (void)conn;
    if (l == NULL) { /* being closed */
        sg_reply_free(r);
        return;
    }
    if (r->type == SG_REPLY_ERROR &&
        (sg_reply_error_is(r, "MOVED") || sg_reply_error_is(r, "ASK"))) {
        /* the owner sees the error; the map is stale */
        l->node->st.moved++;
        sg_cluster_refresh(l->c, 1);
    }
    if (l->due > 0) {
        l->due--;
        l->progress = sg_now_ms();
        if (l->due == 0) evtimer_del(l->timer);
        else arm_deadline(l);
    }
    l->fn(l, r, SG_OK, NULL, l->ud); /* may free l */
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    sg_link *l = arg;
    (void)fd;
    (void)what;
    if (l->failed) {
        tell_failure(l);
        return;
    }
    if (l->due > 0 && l->conn) {
        uint64_t waited = sg_now_ms() - l->progress;
        if (waited < (uint64_t)l->c->net.timeout_ms) { /* progress since it was armed */
            struct timeval tv = {(long)((l->c->net.timeout_ms - waited) / 1000),
                                 (long)((l->c->net.timeout_ms - waited) % 1000) * 1000};
            evtimer_add(l->timer, &tv);
            return;
        }
        l->node->st.timeouts++;
        sg_conn_fail(
            l->conn, SG_ETIMEOUT,
            "node %s did not answer within %d ms on a dedicated connection (%ld repl%s due)",
            l->node->addr, l->c->net.timeout_ms, l->due, l->due == 1 ? "y" : "ies");
    }
}

/* ---- connecting -------------------------------------------------------------------- */

/* The node's connect backoff counts the link's attempts too. */
static void on_connect_result(void *owner, sg_conn *conn, int ok, const char *why) {
    sg_link *l = owner;
    if (l) sg_pool_connect_result(l->node, conn, ok, why);
}

static const sg_conn_ops link_ops = {
    NULL, NULL, NULL, on_push, NULL, on_conn_closed, on_connect_result,
};

static void link_connect(sg_link *l) {
    sg_client *c = l->c;
    sg_conn *conn;
    if (c->mode != SG_MODE_CLUSTER) l->node = c->single;
    else if (l->slot >= 0) l->node = sg_slot_master(c, l->slot);
    else l->node = sg_any_master(c);
    if (l->node == NULL) {
        sg_cluster_refresh(c, 1);
        if (l->slot >= 0)
            fail_later(l, SG_ECLUSTERDOWN,
                       "slot %d is not served by any node (the map covers %d of 16384 slots)",
                       l->slot, c->covered);
        else fail_later(l, SG_ECLUSTERDOWN, "no master is known to connect to");
        return;
    }
    if ((conn = sg_node_open_conn(l->node, &link_ops, l, SG_CONN_LINK)) == NULL) {
        fail_later(l, SG_ENOMEM, "out of memory connecting to node %s", l->node->addr);
        return;
    }
    conn->exclusive = 1; /* never lent to a command */
    l->conn = conn;
    if (evbuffer_get_length(l->early) > 0) {
        size_t n = evbuffer_get_length(l->early);
        const char *early = (const char *)evbuffer_pullup(l->early, -1);
        if (early == NULL || sg_conn_write(conn, early, n) != SG_OK) {
            conn->owner = NULL;
            sg_conn_close(conn);
            l->conn = NULL;
            fail_later(l, SG_ENOMEM, "out of memory queueing for node %s", l->node->addr);
            return;
        }
        evbuffer_drain(l->early, n);
    }
}

static void on_map(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    map_wait *w = ud;
    sg_link *l = w->l;
    sg_free(w);
    sg_reply_free(reply);
    if (l == NULL) return; /* freed meanwhile */
    l->wait = NULL;
    if (!c->ready) {
        fail_later(l, status != SG_OK ? status : SG_ECLUSTERDOWN, "no slot map: %s",
                   errmsg ? errmsg : "discovery failed");
        return;
    }
    link_connect(l);
}

/* ---- the API ------------------------------------------------------------------------- */

sg_link *sg_link_open(sg_client *c, int slot, sg_link_fn fn, void *ud) {
    sg_link *l;
    if (c == NULL || fn == NULL || slot >= SG_SLOTS) return NULL;
    if ((l = sg_calloc(1, sizeof *l)) == NULL) return NULL;
    l->c = c;
    l->slot = slot < 0 ? -1 : slot;
    l->fn = fn;
    l->ud = ud;
    if ((l->early = evbuffer_new()) == NULL ||
        (l->timer = evtimer_new(c->net.base, on_timer, l)) == NULL) {
        sg_link_free(l);
        return NULL;
    }
    if (c->err.code != SG_OK && c->nodes == NULL) {
        fail_later(l, c->err.code, "%s", c->err.msg); /* a client that failed to start */
    } else if (!c->ready) {
        /* any command waits for the map (and starts discovery): its reply
         * says the map is known, or why it is not */
        static const char *const ping[] = {"PING"};
        map_wait *w = sg_calloc(1, sizeof *w);
        if (w == NULL) {
            sg_link_free(l);
            return NULL;
        }
        w->l = l;
        if (sg_client_send_argv(c, 1, ping, NULL, on_map, w) != SG_OK) {
            sg_free(w);
            fail_later(l, sg_errcode(c), "%s", sg_errmsg(c));
        } else {
            l->wait = w;
        }
    } else {
        link_connect(l);
    }
    return l;
}

int sg_link_send(sg_link *l, const char *resp, size_t len, int nreplies) {
    if (l->failed) return l->err.code; /* the message stays */
    if (l->conn) {
        if (sg_conn_write(l->conn, resp, len) != SG_OK)
            return sg_seterr(&l->err, SG_ENOMEM, "out of memory queueing for node %s",
                             l->node->addr);
        l->node->st.commands += (uint64_t)(nreplies > 0 ? nreplies : 0);
    } else if (evbuffer_add(l->early, resp, len) != 0) {
        return sg_seterr(&l->err, SG_ENOMEM, "out of memory queueing a command");
    }
    if (nreplies > 0) {
        if (l->due == 0) l->progress = sg_now_ms();
        l->due += nreplies;
        if (!evtimer_pending(l->timer, NULL)) arm_deadline(l);
    }
    return SG_OK;
}

const char *sg_link_node(const sg_link *l) { return l->node ? l->node->addr : ""; }

int sg_link_serves(const sg_link *l, int slot) {
    const sg_client *c = l->c;
    if (l->node == NULL || l->failed) return 0;
    if (c->mode != SG_MODE_CLUSTER) return l->node == c->single;
    return slot >= 0 && slot < SG_SLOTS && sg_slot_master(c, slot) == l->node;
}

void sg_link_free(sg_link *l) {
    if (l == NULL) return;
    if (l->wait) l->wait->l = NULL;
    if (l->conn) {
        sg_conn *conn = l->conn;
        conn->owner = NULL; /* its ops see no link any more */
        sg_conn_close(conn); /* quietly; inside its own read, freed when that returns */
    }
    if (l->timer) event_free(l->timer);
    if (l->early) evbuffer_free(l->early);
    sg_free(l);
}
