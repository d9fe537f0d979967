/*
 * cache.c — the gateway's near cache: the answers of reads (GET, HGET,
 * HGETALL, EXISTS, MGET per key ...) kept as the node's RESP2 bytes, by key
 * and by the read's form (the command and its arguments after the key), in
 * an LRU bounded in bytes; each entry lives at most its pattern's seconds.
 *
 * It stays exact through the nodes' own word: one connection per master of
 * the map (every one: see all_tracked) runs CLIENT TRACKING ON REDIRECT
 * <itself> BCAST and SUBSCRIBE __redis__:invalidate, so the node names every
 * key changed on it (by anyone), and a flush as a null. BCAST takes a PREFIX
 * per literal start of the policies' cache patterns (sg_cache_cover), so that
 * writes of keys never cached cost neither the node nor the gateway
 * anything; a key outside them is never filled. The race between a read's
 * reply (on a data connection) and an invalidation (on the tracker) is
 * settled by a placeholder: it is put before the read leaves; an
 * invalidation, a write through the gateway, the tracker's loss or a slot's
 * move kill it; the reply fills only a live one. A write executed on the
 * node after the read was sends its invalidation after the placeholder was
 * put, so either it kills the placeholder or it drops the entry the reply
 * made.
 *
 * Writes through the gateway drop their keys at once and hold back fills of
 * them until their reply came (so a client reads its own writes). Other
 * gateways of the process (slotgated's other workers) learn of such a write
 * before its reply is delivered, through the write stamps: a counter per key
 * hash, shared by every cache of the process, that a write bumps when it
 * leaves and again when its reply came. An entry remembers the stamp of its
 * key when its read left, and answers only while it is unchanged, so a
 * client whose write was acknowledged on one connection never reads the old
 * value on another, whichever worker serves it (the node's invalidation
 * would come, but after the reply: Redis sends BCAST messages last). A lost
 * tracker drops its node's entries; a new map drops those of slots that moved;
 * an entry whose node no longer serves its slot is a miss.
 *
 * A RESP3 session's reads use the same entries: the read goes on the RESP3
 * connections, as every command of the session does (one connection per node
 * keeps a session's pipeline in order), the node's answer reaches the session
 * as it came and is kept as its RESP2 form (to_resp2), and a hit is turned
 * back into what a Redis 7.0 node says after HELLO 3 (to_resp3).
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "commands_index.h"

/* Why an entry went: the counters of sg_cache_stats. */
enum { DROP_INVALIDATED, DROP_WRITTEN, DROP_FLUSHED, DROP_LOST, DROP_MOVED, DROP_EXPIRED,
       DROP_EVICTED };

enum { T_NONE = 0, T_OPENING, T_SUBSCRIBING, T_READY };

#define RETRY_MS 1000       /* a tracker that failed is not opened again before */
#define PING_MS 1000        /* a tracker in use is asked for a sign of life this often */
#define FRESH_MS 3000       /* ... and trusted only while it gave one this recently */
#define REFUSED_MS 30000    /* ... one the node refused (no CLIENT TRACKING) */
#define FORM_INLINE 64      /* forms this long are made on the stack */

typedef struct ckey ckey;
typedef struct cform cform;
typedef struct cclient cclient;
typedef struct tracker tracker;

/* One answer of a key: its form (the command's index and the arguments after
 * the key) and the node's bytes. */
struct cform {
    ckey *k;
    cform *next;          /* the key's other forms */
    cform *lprev, *lnext; /* the LRU (ready forms only), most recent first */
    sg_cache_call *call;  /* filling: the read in flight; NULL once ready */
    int callidx;          /* its place in call->at */
    uint64_t expires;     /* ms */
    uint64_t stamp;       /* the key's write stamp when its read left */
    uint64_t fstamp;      /* the flush stamp then */
    char *val;
    size_t vallen, formlen;
    char form[];
};

struct ckey {
    ckey *hnext;
    cclient *cc;
    sg_node *node; /* the master that served it (tracks it) */
    uint64_t hash;
    int slot;
    int wbusy;     /* writes through the gateway in flight: no fill */
    cform *forms;
    size_t keylen;
    char key[];
};

/* The invalidation connection to one node of a client. */
struct tracker {
    sg_cache *ca;
    cclient *cc;
    sg_node *node;
    sg_conn *conn;
    int state;         /* T_* */
    uint64_t retry_at; /* ms: not opened again before */
    uint64_t heard;    /* ms: the node last said something on it */
    uint64_t pinged;   /* ms: the last PING sent */
};

/* What the cache keeps per client (upstream). */
struct cclient {
    sg_client *c;
    tracker **trk; /* by node->index */
    int ntrk;
    int flushing;  /* FLUSHALL or FLUSHDB through the gateway in flight */
    int watch_ok;  /* sg_cache_watch found every master's tracker ready since the
                      last loss or map change */
    uint64_t watch_at; /* ms: when a read last asked sg_cache_watch (it walks the map) */
    sg_node *snap_single;
    uint16_t snap[SG_SLOTS]; /* the map as the cache last saw it */
};

struct sg_cache {
    sg_cache_stats *st;
    size_t max, bytes;
    uint64_t entries;
    ckey **buckets;
    size_t nbuckets, nkeys;
    cform *lru_head, *lru_tail;
    cclient **ccs;
    int ncc, capcc;
    int freeing;
    sg_buf scratch;  /* MGET's answer */
    sg_buf scratch3; /* a hit's answer in RESP3 */
    sg_cache_listen_fn listen; /* the host's CLIENT TRACKING (sg_gateway_track) */
    void *listen_ud;
    int all;            /* the trackers hear of every key */
    sg_buf prefixes;    /* else of the keys starting with one of these (each with its NUL) */
    int nprefixes;
};

struct sg_cache_call {
    sg_cache *ca;
    cclient *cc;
    sg_reply_fn fn;
    sg_raw_reply_fn raw_fn;
    void *ud;
    long long secs;
    int write;      /* 0: a read (at: forms); 1: a write (at: keys); 2: a flush */
    int mget;       /* MGET: at[i] fills from the reply's element i (MGET k too) */
    int shape3;     /* a read carried by a RESP3 client: its R3_* (its answer is
                       kept as RESP2); else -1 */
    sg_client *via; /* ... that client (else NULL: the cache's own) */
    int n;
    void *at[];
};

/* ---- figures: single writer (the gateway's thread), read from any ------------------ */

#define ST_ADD(ca, f, n) __atomic_store_n(&(ca)->st->f, (ca)->st->f + (n), __ATOMIC_RELAXED)
#define ST_SET(ca, f, v) __atomic_store_n(&(ca)->st->f, (v), __ATOMIC_RELAXED)

/* ---- write stamps: shared by every cache of the process ------------------------------ */

#define NSTAMPS (1u << 16) /* keys share a stamp by hash: a write costs the others a miss */
static uint64_t stamps[NSTAMPS];
static uint64_t flush_stamp; /* FLUSHALL, FLUSHDB */
static int stamps_used;      /* some cache of the process filled an entry */

static uint64_t *stamp_of(uint64_t hash) { return &stamps[(hash >> 40) & (NSTAMPS - 1)]; }
static uint64_t stamp_get(uint64_t *s) { return __atomic_load_n(s, __ATOMIC_ACQUIRE); }
static void stamp_bump(uint64_t *s) { __atomic_add_fetch(s, 1, __ATOMIC_ACQ_REL); }

int sg_cache_in_use(void) { return __atomic_load_n(&stamps_used, __ATOMIC_RELAXED); }

static void count_drop(sg_cache *ca, int cause) {
    switch (cause) {
    case DROP_INVALIDATED: ST_ADD(ca, dropped_invalidated, 1); break;
    case DROP_WRITTEN: ST_ADD(ca, dropped_written, 1); break;
    case DROP_FLUSHED: ST_ADD(ca, dropped_flushed, 1); break;
    case DROP_LOST: ST_ADD(ca, dropped_lost, 1); break;
    case DROP_MOVED: ST_ADD(ca, dropped_moved, 1); break;
    case DROP_EXPIRED: ST_ADD(ca, dropped_expired, 1); break;
    default: ST_ADD(ca, evictions, 1); break;
    }
}

static void charge(sg_cache *ca, size_t add, size_t sub) {
    ca->bytes = ca->bytes + add - sub;
    ST_SET(ca, bytes, ca->bytes);
}

/* ---- keys and forms ----------------------------------------------------------------- */

/* Eight bytes a step (a byte at a time was a tenth of a cached GET's
 * instructions), then a final mix, as the table's index is the low bits and
 * the write stamp's the high ones. The same for every client (upstream): the
 * stamps are the process's. */
static uint64_t hash_of(const char *key, size_t len) {
    const uint64_t m = 0xff51afd7ed558ccdull;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
    for (; len >= 8; key += 8, len -= 8) {
        memcpy(&w, key, 8);
        h = (h ^ w) * m;
        h ^= h >> 32;
    }
    if (len > 0) {
        w = 0;
        memcpy(&w, key, len);
        h = (h ^ w) * m;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static ckey *key_find(sg_cache *ca, cclient *cc, const char *key, size_t len, uint64_t h) {
    ckey *k;
    if (ca->nbuckets == 0) return NULL;
    for (k = ca->buckets[h & (ca->nbuckets - 1)]; k; k = k->hnext)
        if (k->hash == h && k->cc == cc && k->keylen == len && memcmp(k->key, key, len) == 0)
            return k;
    return NULL;
}

/* Room for one more key: the table doubles once it holds as many keys as
 * buckets. Without memory it stays as it is (longer chains). */
static void grow_table(sg_cache *ca) {
    size_t n = ca->nbuckets ? ca->nbuckets * 2 : 1024, i;
    ckey **nb;
    if (ca->nkeys < ca->nbuckets) return;
    if ((nb = sg_calloc(n, sizeof *nb)) == NULL) return;
    for (i = 0; i < ca->nbuckets; i++) {
        ckey *k = ca->buckets[i], *next;
        for (; k; k = next) {
            next = k->hnext;
            k->hnext = nb[k->hash & (n - 1)];
            nb[k->hash & (n - 1)] = k;
        }
    }
    sg_free(ca->buckets);
    charge(ca, n * sizeof *nb, ca->nbuckets * sizeof *nb);
    ca->buckets = nb;
    ca->nbuckets = n;
}

static ckey *key_new(sg_cache *ca, cclient *cc, const char *key, size_t len, uint64_t h,
                     sg_node *node, int slot) {
    ckey *k;
    grow_table(ca);
    if (ca->nbuckets == 0 || (k = sg_malloc(sizeof *k + len)) == NULL) return NULL;
    memset(k, 0, sizeof *k);
    k->cc = cc;
    k->node = node;
    k->hash = h;
    k->slot = slot;
    k->keylen = len;
    memcpy(k->key, key, len);
    k->hnext = ca->buckets[h & (ca->nbuckets - 1)];
    ca->buckets[h & (ca->nbuckets - 1)] = k;
    ca->nkeys++;
    charge(ca, sizeof *k + len, 0);
    return k;
}

static void key_free(sg_cache *ca, ckey *k) {
    ckey **pp = &ca->buckets[k->hash & (ca->nbuckets - 1)];
    assert(k->forms == NULL && k->wbusy == 0);
    while (*pp != k) pp = &(*pp)->hnext;
    *pp = k->hnext;
    ca->nkeys--;
    charge(ca, 0, sizeof *k + k->keylen);
    sg_free(k);
}

static void lru_unlink(sg_cache *ca, cform *f) {
    if (f->lprev) f->lprev->lnext = f->lnext;
    else ca->lru_head = f->lnext;
    if (f->lnext) f->lnext->lprev = f->lprev;
    else ca->lru_tail = f->lprev;
    f->lprev = f->lnext = NULL;
}

static void lru_push(sg_cache *ca, cform *f) {
    f->lprev = NULL;
    f->lnext = ca->lru_head;
    if (ca->lru_head) ca->lru_head->lprev = f;
    else ca->lru_tail = f;
    ca->lru_head = f;
}

static cform *form_find(const ckey *k, const char *form, size_t len) {
    cform *f;
    for (f = k->forms; f; f = f->next)
        if (f->formlen == len && memcmp(f->form, form, len) == 0) return f;
    return NULL;
}

/* Takes f off its key and frees it: a ready entry counts as dropped for
 * cause; a placeholder dies (its read's answer will not be kept). */
static void form_drop(sg_cache *ca, cform *f, int cause) {
    cform **pp = &f->k->forms;
    while (*pp != f) pp = &(*pp)->next;
    *pp = f->next;
    if (f->call) {
        f->call->at[f->callidx] = NULL;
        ST_ADD(ca, fills_lost, 1);
    } else {
        lru_unlink(ca, f);
        ca->entries--;
        ST_SET(ca, entries, ca->entries);
        count_drop(ca, cause);
    }
    charge(ca, 0, sizeof *f + f->formlen + f->vallen);
    sg_free(f->val);
    sg_free(f);
}

/* Drops every form of k; k itself goes unless a write holds it. */
static void key_drop(sg_cache *ca, ckey *k, int cause) {
    while (k->forms) form_drop(ca, k->forms, cause);
    if (k->wbusy == 0) key_free(ca, k);
}

/* Drops the keys of cc that match (node NULL: all of them). */
static void drop_where(sg_cache *ca, cclient *cc, const sg_node *node, int moved, int cause) {
    size_t i;
    for (i = 0; i < ca->nbuckets; i++) {
        ckey *k = ca->buckets[i], *next;
        for (; k; k = next) {
            next = k->hnext;
            if (k->cc != cc) continue;
            if (moved) {
                const sg_client *c = cc->c;
                sg_node *now = c->mode == SG_MODE_CLUSTER ? sg_slot_master(c, k->slot) : c->single;
                if (now == k->node) continue;
            } else if (node && k->node != node) {
                continue;
            }
            key_drop(ca, k, cause);
        }
    }
}

static void evict(sg_cache *ca) {
    while (ca->bytes > ca->max && ca->lru_tail) {
        ckey *k = ca->lru_tail->k;
        form_drop(ca, ca->lru_tail, DROP_EVICTED);
        if (k->forms == NULL && k->wbusy == 0) key_free(ca, k);
    }
}

/* Whether the trackers hear of key. */
static int covered(const sg_cache *ca, const char *key, size_t klen) {
    size_t at, n;
    if (ca->all) return 1;
    for (at = 0; at < ca->prefixes.len; at += n + 1) {
        n = strlen(ca->prefixes.data + at);
        if (n <= klen && memcmp(ca->prefixes.data + at, key, n) == 0) return 1;
    }
    return 0;
}

/* ---- the invalidation connections ----------------------------------------------------- */

static tracker *tracker_of(cclient *cc, const sg_node *node, int make) {
    tracker *t;
    if (node->index < cc->ntrk && cc->trk[node->index]) return cc->trk[node->index];
    if (!make) return NULL;
    if (node->index >= cc->ntrk) {
        int n = cc->ntrk ? cc->ntrk : 8;
        tracker **nt;
        while (n <= node->index) n *= 2;
        if ((nt = sg_realloc(cc->trk, (size_t)n * sizeof *nt)) == NULL) return NULL;
        memset(nt + cc->ntrk, 0, (size_t)(n - cc->ntrk) * sizeof *nt);
        cc->trk = nt;
        cc->ntrk = n;
    }
    if ((t = sg_calloc(1, sizeof *t)) == NULL) return NULL;
    t->cc = cc;
    t->node = (sg_node *)node;
    cc->trk[node->index] = t;
    return t;
}

static void trk_fail(tracker *t, uint64_t retry_ms, const char *why) {
    sg_log(SG_LOG_WARN, "cache: invalidations from node %s: %s; its entries are dropped",
           t->node->addr, why);
    t->retry_at = sg_now_ms() + retry_ms;
    sg_conn_fail(t->conn, SG_EPROTO, "cache: node %s: %s", t->node->addr, why);
}

/* The handshake is done (the connection's CLIENT ID is known): tracking, to
 * itself, of the keys the cache may hold, then the channel the node tells it
 * on. */
static void trk_idle(void *owner, sg_conn *conn) {
    tracker *t = owner;
    sg_cache *ca = t->ca;
    sg_buf b = {0};
    char id[24];
    size_t at;
    int rc;
    if (t->state != T_OPENING) return;
    if (conn->peer_id <= 0) {
        trk_fail(t, REFUSED_MS, "CLIENT ID refused, so tracking cannot be redirected");
        return;
    }
    snprintf(id, sizeof id, "%lld", conn->peer_id);
    sg_buf_printf(&b,
                  "*%d\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\nON\r\n$8\r\nREDIRECT\r\n"
                  "$%zu\r\n%s\r\n$5\r\nBCAST\r\n",
                  6 + (ca->all ? 0 : 2 * ca->nprefixes), strlen(id), id);
    for (at = 0; !ca->all && at < ca->prefixes.len; at += strlen(ca->prefixes.data + at) + 1) {
        const char *pre = ca->prefixes.data + at;
        sg_buf_printf(&b, "$6\r\nPREFIX\r\n$%zu\r\n%s\r\n", strlen(pre), pre);
    }
    sg_buf_puts(&b, "*2\r\n$9\r\nSUBSCRIBE\r\n$20\r\n__redis__:invalidate\r\n");
    t->state = T_SUBSCRIBING;
    rc = b.oom ? SG_ENOMEM : sg_conn_write(conn, b.data, b.len);
    sg_buf_free(&b);
    if (rc != SG_OK) trk_fail(t, RETRY_MS, "out of memory");
}

static int str_is(const sg_reply *r, const char *s) {
    return r && (r->type == SG_REPLY_STRING || r->type == SG_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* What the node says on the tracker: the replies to TRACKING and SUBSCRIBE,
 * then the invalidations: ["message", "__redis__:invalidate", [keys] or nil]. */
static void trk_push(void *owner, sg_conn *conn, sg_reply *r) {
    tracker *t = owner;
    sg_cache *ca = t->ca;
    (void)conn;
    t->heard = sg_now_ms(); /* an invalidation, a reply, PING's pong: it lives */
    if (r->type == SG_REPLY_ERROR) {
        char why[300];
        snprintf(why, sizeof why, "the node refused tracking: %.200s", r->str);
        sg_reply_free(r);
        trk_fail(t, REFUSED_MS, why);
        return;
    }
    if ((r->type == SG_REPLY_ARRAY || r->type == SG_REPLY_PUSH) && r->elements == 3) {
        const sg_reply *p = r->element[2];
        if (str_is(r->element[0], "subscribe") && t->state == T_SUBSCRIBING) {
            t->state = T_READY;
            t->pinged = t->heard;
            ST_ADD(ca, trackers, 1);
            if (ca->listen) ca->listen(ca->listen_ud, t->cc->c, SG_TRACK_READY, NULL, 0);
        } else if (str_is(r->element[0], "message") && t->state == T_READY) {
            if (p->type == SG_REPLY_NIL) {
                /* FLUSHALL, FLUSHDB: everything the node served is gone */
                ST_ADD(ca, flushes, 1);
                drop_where(ca, t->cc, t->node, 0, DROP_FLUSHED);
                if (ca->listen) ca->listen(ca->listen_ud, t->cc->c, SG_TRACK_FLUSH, NULL, 0);
            } else if (p->type == SG_REPLY_ARRAY) {
                size_t i;
                for (i = 0; i < p->elements; i++) {
                    const sg_reply *e = p->element[i];
                    ckey *k;
                    if (e->type != SG_REPLY_STRING) continue;
                    ST_ADD(ca, invalidations, 1);
                    k = key_find(ca, t->cc, e->str, e->len, hash_of(e->str, e->len));
                    if (k) key_drop(ca, k, DROP_INVALIDATED);
                    if (ca->listen)
                        ca->listen(ca->listen_ud, t->cc->c, SG_TRACK_KEY, e->str, e->len);
                }
            }
        }
    }
    sg_reply_free(r);
}

static void trk_closed(void *owner, sg_conn *conn, int code, const char *msg) {
    tracker *t = owner;
    sg_cache *ca = t->ca;
    int was_ready = t->state == T_READY;
    (void)conn;
    (void)msg;
    if (was_ready) ST_ADD(ca, trackers, (uint64_t)-1);
    t->conn = NULL;
    t->state = T_NONE;
    if (code != SG_OK && t->retry_at < sg_now_ms() + RETRY_MS)
        t->retry_at = sg_now_ms() + RETRY_MS;
    /* what the node changed from now on goes untold: its entries go */
    if (!ca->freeing) drop_where(ca, t->cc, t->node, 0, DROP_LOST);
    t->cc->watch_ok = 0;
    /* the host's clients may have missed a change too: Redis tells them with
     * a flush when their invalidations cannot be delivered. Not for one that
     * never was ready: it told of nothing, the host knows reads made without
     * it (sg_gateway_tracking_ready), and a node that stays down would flush
     * every client at each retry */
    if (was_ready && !ca->freeing && ca->listen)
        ca->listen(ca->listen_ud, t->cc->c, SG_TRACK_FLUSH, NULL, 0);
}

static const sg_conn_ops trk_ops = {NULL, NULL, NULL, trk_push, trk_idle, trk_closed, NULL};

/* Whether a ready tracker still hears from its node: a connection can stay up
 * while nothing comes (a hung node, a silent network), and then changes go
 * untold. It is asked for a pong every PING_MS while in use, and trusted only
 * FRESH_MS after the node last said anything. */
static int fresh(tracker *t, uint64_t now) {
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    if (t == NULL || t->state != T_READY) return 0;
    if (now - t->pinged >= PING_MS) {
        t->pinged = now;
        if (sg_conn_write(t->conn, ping, sizeof ping - 1) != SG_OK) return 0;
    }
    return now - t->heard < FRESH_MS;
}

/* Whether node's tracker tells of every change now; opens it when asked to
 * and none is open (a read that meets none goes by uncached). */
static int tracked(sg_cache *ca, cclient *cc, sg_node *node) {
    tracker *t = tracker_of(cc, node, 1);
    if (t == NULL) return 0;
    if (t->state == T_READY) return fresh(t, sg_now_ms());
    if (t->conn == NULL && sg_now_ms() >= t->retry_at && !ca->freeing) {
        t->ca = ca;
        if ((t->conn = sg_node_open_conn(node, &trk_ops, t, SG_CONN_SUBSCRIBER)) != NULL)
            t->state = T_OPENING;
        else
            t->retry_at = sg_now_ms() + RETRY_MS;
    }
    return 0;
}

/* ---- clients ---------------------------------------------------------------------------- */

static sg_node *owner_of(const sg_client *c, int slot) {
    return c->mode == SG_MODE_CLUSTER ? sg_slot_master(c, slot) : c->single;
}

/* A new map: the entries of slots whose master changed go (the hook the
 * router calls; see sg_client.map_hook). */
static void on_map(void *ud, sg_client *c) {
    sg_cache *ca = ud;
    int i, changed;
    cclient *cc = NULL;
    for (i = 0; i < ca->ncc; i++)
        if (ca->ccs[i]->c == c) cc = ca->ccs[i];
    if (cc == NULL) return;
    if (c->mode == SG_MODE_CLUSTER)
        changed = memcmp(cc->snap, c->slot_master, sizeof cc->snap) != 0;
    else
        changed = cc->snap_single != c->single;
    if (!changed) return;
    drop_where(ca, cc, NULL, 1, DROP_MOVED);
    if (cc->watch_ok) { /* a new master may have no tracker yet */
        cc->watch_ok = 0;
        if (ca->listen) ca->listen(ca->listen_ud, c, SG_TRACK_FLUSH, NULL, 0);
    }
    memcpy(cc->snap, c->slot_master, sizeof cc->snap);
    cc->snap_single = c->single;
    /* the host's CLIENT TRACKING wants every master told of at once */
    if (ca->listen && !cc->watch_ok) sg_cache_watch(ca, c);
}

static cclient *cc_of(sg_cache *ca, sg_client *c) {
    cclient *cc;
    int i;
    for (i = 0; i < ca->ncc; i++)
        if (ca->ccs[i]->c == c) return ca->ccs[i];
    if (sg_grow((void **)&ca->ccs, &ca->capcc, ca->ncc, sizeof *ca->ccs, 2) != SG_OK ||
        (cc = sg_calloc(1, sizeof *cc)) == NULL)
        return NULL;
    cc->c = c;
    memcpy(cc->snap, c->slot_master, sizeof cc->snap);
    cc->snap_single = c->single;
    ca->ccs[ca->ncc++] = cc;
    c->map_hook = on_map;
    c->map_hook_ud = ca;
    return cc;
}

/* ---- the cache -------------------------------------------------------------------------- */

sg_cache *sg_cache_new(sg_cache_stats *st, size_t max_bytes) {
    sg_cache *ca = sg_calloc(1, sizeof *ca);
    if (ca == NULL) return NULL;
    ca->st = st;
    ca->max = max_bytes;
    ST_SET(ca, max_bytes, max_bytes);
    return ca;
}

void sg_cache_set_max(sg_cache *ca, size_t max_bytes) {
    ca->max = max_bytes;
    ST_SET(ca, max_bytes, max_bytes);
    evict(ca);
}

void sg_cache_close_trackers(sg_cache *ca) {
    int i, k;
    if (ca == NULL) return;
    ca->freeing = 1;
    for (i = 0; i < ca->ncc; i++)
        for (k = 0; k < ca->ccs[i]->ntrk; k++) {
            tracker *t = ca->ccs[i]->trk[k];
            if (t && t->conn) sg_conn_close(t->conn);
        }
}

void sg_cache_free(sg_cache *ca) {
    size_t i;
    int c, k;
    if (ca == NULL) return;
    sg_cache_close_trackers(ca);
    for (i = 0; i < ca->nbuckets; i++)
        while (ca->buckets[i]) {
            ckey *key = ca->buckets[i];
            key->wbusy = 0; /* no write is in flight any more: the clients are gone */
            key_drop(ca, key, DROP_EVICTED);
        }
    for (c = 0; c < ca->ncc; c++) {
        cclient *cc = ca->ccs[c];
        for (k = 0; k < cc->ntrk; k++) sg_free(cc->trk[k]);
        sg_free(cc->trk);
        sg_free(cc);
    }
    sg_free(ca->ccs);
    sg_free(ca->buckets);
    sg_buf_free(&ca->scratch);
    sg_buf_free(&ca->scratch3);
    sg_buf_free(&ca->prefixes);
    sg_free(ca);
}

/* The trackers open again, hearing of what ca->all and ca->prefixes say
 * now: what they held goes with them (their closing drops it). */
static void trk_restart(sg_cache *ca) {
    int i, k;
    for (i = 0; i < ca->ncc; i++)
        for (k = 0; k < ca->ccs[i]->ntrk; k++) {
            tracker *t = ca->ccs[i]->trk[k];
            if (t && t->conn) sg_conn_close(t->conn);
        }
}

void sg_cache_cover(sg_cache *ca, const char *list, int n) {
    sg_buf b = {0};
    size_t at, pn;
    int i, widened = 0, kept = 0;
    if (ca->all) return;
    if (n < 0) {
        ca->all = 1;
        sg_buf_free(&ca->prefixes);
        ca->nprefixes = 0;
        trk_restart(ca);
        return;
    }
    for (i = 0; i < n; i++, list += strlen(list) + 1) {
        if (covered(ca, list, strlen(list))) continue;
        /* a new prefix: those it covers go, as Redis refuses overlapping ones */
        sg_buf_free(&b);
        kept = 0;
        for (at = 0; at < ca->prefixes.len; at += pn + 1) {
            const char *q = ca->prefixes.data + at;
            pn = strlen(q);
            if (pn >= strlen(list) && memcmp(q, list, strlen(list)) == 0) continue;
            sg_buf_append(&b, q, pn + 1);
            kept++;
        }
        sg_buf_append(&b, list, strlen(list) + 1);
        if (b.oom) { /* no memory for the list: every key, which needs none */
            sg_buf_free(&b);
            sg_cache_cover(ca, NULL, -1);
            return;
        }
        sg_buf_free(&ca->prefixes);
        ca->prefixes = b;
        b = (sg_buf){0};
        ca->nprefixes = kept + 1;
        widened = 1;
    }
    if (widened) trk_restart(ca);
}

void sg_cache_listen(sg_cache *ca, sg_cache_listen_fn fn, void *ud) {
    /* the host's clients may read any key (trackers that close for it now
     * are no news to a host that was not listening) */
    if (fn) sg_cache_cover(ca, NULL, -1);
    ca->listen = fn;
    ca->listen_ud = ud;
}

int sg_cache_watch(sg_cache *ca, sg_client *c) {
    cclient *cc = cc_of(ca, c);
    unsigned char seen[SG_MAX_NODES + 1];
    int slot, ok = 1;
    if (cc == NULL) return 0;
    if (cc->watch_ok) return 1;
    if (c->mode != SG_MODE_CLUSTER) {
        ok = c->single != NULL && tracked(ca, cc, c->single);
        /* Sentinel mode: a client that never served a request (a RESP3
         * host's go by its twin) has asked no Sentinel for the master yet;
         * on_map comes back when one names it (switch_master) */
        if (c->single == NULL && c->mode == SG_MODE_SENTINEL) sg_cluster_discover(c);
    } else {
        /* each master once; a slot nobody serves yet has no one to ask */
        memset(seen, 0, sizeof seen);
        for (slot = 0; slot < SG_SLOTS; slot++) {
            unsigned k = c->slot_master[slot];
            if (k == 0 || seen[k]) continue;
            seen[k] = 1;
            if (!tracked(ca, cc, c->nodes[k - 1])) ok = 0;
        }
        if (!c->ready) {
            /* this client never served a request yet (a RESP3 host's go by
             * its twin): it needs a map to know the masters; on_map comes back */
            ok = 0;
            sg_cluster_discover(c);
        }
    }
    cc->watch_ok = ok;
    return ok;
}

int sg_cache_live(const sg_cache *ca) { return ca->nkeys > 0; }

int sg_cache_cacheable(const sg_command *info, int argc) {
    switch (sg_command_index(info)) {
    case SG_CI_MGET:
        return argc >= 2;
    case SG_CI_EXISTS: /* one key: EXISTS k1 k2 sums */
        return argc == 2;
    case SG_CI_GET: case SG_CI_HGET: case SG_CI_HMGET: case SG_CI_HGETALL: case SG_CI_STRLEN:
    case SG_CI_HEXISTS: case SG_CI_HLEN: case SG_CI_HSTRLEN: case SG_CI_SISMEMBER:
    case SG_CI_SMISMEMBER: case SG_CI_SMEMBERS: case SG_CI_SCARD: case SG_CI_LLEN:
    case SG_CI_LRANGE: case SG_CI_LINDEX: case SG_CI_ZSCORE: case SG_CI_ZMSCORE:
    case SG_CI_ZCARD: case SG_CI_ZRANGE: case SG_CI_TYPE: case SG_CI_GETRANGE:
        return argc >= 2;
    default:
        return 0;
    }
}

/* ---- RESP3 sessions' answers -------------------------------------------------------------- */

/* How a cacheable read's answer differs between RESP2 (as kept) and RESP3
 * (as a Redis 7.0 node answers after HELLO 3). In every shape RESP2's null
 * bulk or null array, at the top or as an element, is RESP3's null. */
enum {
    R3_PLAIN,   /* nothing else: GET, MGET, HMGET, LRANGE, the integers ... */
    R3_MAP,     /* HGETALL: field, value, ... as a map */
    R3_SET,     /* SMEMBERS */
    R3_DOUBLE,  /* ZSCORE: the score's bulk as a double */
    R3_DOUBLES, /* ZMSCORE: each element */
    R3_PAIRS    /* ZRANGE ... WITHSCORES: member, score, ... as [member, double] pairs */
};

static int resp3_shape(const sg_command *info, int argc, const char *const *argv,
                       const size_t *argvlen) {
    int i;
    switch (sg_command_index(info)) {
    case SG_CI_HGETALL: return R3_MAP;
    case SG_CI_SMEMBERS: return R3_SET;
    case SG_CI_ZSCORE: return R3_DOUBLE;
    case SG_CI_ZMSCORE: return R3_DOUBLES;
    case SG_CI_ZRANGE: /* key start stop [BYSCORE|BYLEX] [REV] [LIMIT o c] [WITHSCORES] */
        for (i = 4; i < argc; i++)
            if (argvlen[i] == 10 && strncasecmp(argv[i], "WITHSCORES", 10) == 0) return R3_PAIRS;
        return R3_PLAIN;
    default: return R3_PLAIN;
    }
}

static int is_null2(const char *e, size_t len) {
    return len == 5 && (memcmp(e, "$-1\r\n", 5) == 0 || memcmp(e, "*-1\r\n", 5) == 0);
}

/* A bulk string holding a score ("$3\r\n1.5\r\n") as a RESP3 double: Redis 7.0
 * writes both with the same %.17g (and "inf", "-inf"), so the text is kept. */
static int put_double(sg_buf *out, const char *e, size_t len) {
    size_t at = 1, n = 0;
    if (len < 4 || e[0] != '$') return -1;
    while (at < len && e[at] >= '0' && e[at] <= '9') n = n * 10 + (size_t)(e[at++] - '0');
    if (at + 2 + n + 2 != len) return -1;
    sg_buf_append(out, ",", 1);
    sg_buf_append(out, e + at + 2, n + 2); /* the text and its CRLF */
    return 0;
}

/* Appends the RESP3 form of one whole RESP2 reply (in) of the shape to out.
 * -1 when the bytes are not of the shape (out then holds a part). Errors,
 * statuses and integers are the same in both. */
static int to_resp3(int shape, const char *in, size_t len, sg_buf *out) {
    long long n = 0, i, el;
    size_t at = 1;
    if (is_null2(in, len)) {
        sg_buf_append(out, "_\r\n", 3);
        return 0;
    }
    if (len > 0 && in[0] == '$' && shape == R3_DOUBLE) return put_double(out, in, len);
    if (len == 0 || in[0] != '*' || shape == R3_DOUBLE) {
        sg_buf_append(out, in, len);
        return 0;
    }
    while (at < len && in[at] >= '0' && in[at] <= '9') n = n * 10 + (in[at++] - '0');
    at += 2;
    if (at > len || ((shape == R3_MAP || shape == R3_PAIRS) && n % 2)) return -1;
    if (shape == R3_MAP) sg_buf_printf(out, "%%%lld\r\n", n / 2);
    else if (shape == R3_SET) sg_buf_printf(out, "~%lld\r\n", n);
    else sg_buf_printf(out, "*%lld\r\n", shape == R3_PAIRS ? n / 2 : n);
    for (i = 0; i < n; i++) {
        const char *e = in + at;
        if ((el = sg_reply_scan(e, len - at)) <= 0) return -1;
        if (is_null2(e, (size_t)el)) {
            sg_buf_append(out, "_\r\n", 3);
        } else if (shape == R3_DOUBLES || (shape == R3_PAIRS && i % 2)) {
            if (put_double(out, e, (size_t)el) != 0) return -1;
        } else {
            if (shape == R3_PAIRS) sg_buf_append(out, "*2\r\n", 4);
            sg_buf_append(out, e, (size_t)el);
        }
        at += (size_t)el;
    }
    return at == len ? 0 : -1;
}

/* A RESP3 double (",1.5") as RESP2's bulk string of the same text. */
static void put_bulk_of_double(sg_buf *out, const char *e, size_t len) {
    sg_buf_printf(out, "$%zu\r\n", len - 3);
    sg_buf_append(out, e + 1, len - 1); /* the text and its CRLF */
}

/* The reverse of to_resp3: one whole RESP3 answer (in) of the shape, as RESP2
 * appended to out, to be kept. -1 when the bytes hold anything the RESP2 form
 * could not say as the node would (then nothing is kept). */
static int to_resp2(int shape, const char *in, size_t len, sg_buf *out) {
    long long n = 0, i, el, per;
    size_t at = 1;
    if (len == 0) return -1;
    switch (in[0]) {
    case '_': sg_buf_append(out, "$-1\r\n", 5); return 0; /* no cacheable read has a null array */
    case ',': put_bulk_of_double(out, in, len); return 0;
    case '$': case ':': case '+': case '-': /* the same in both */
        sg_buf_append(out, in, len);
        return 0;
    case '*': case '%': case '~':
        break;
    default: return -1;
    }
    while (at < len && in[at] >= '0' && in[at] <= '9') n = n * 10 + (in[at++] - '0');
    at += 2;
    if (at > len) return -1;
    per = in[0] == '%' ? 2 : 1; /* a map's n is its pairs */
    sg_buf_printf(out, "*%lld\r\n", n * per * (shape == R3_PAIRS ? 2 : 1));
    for (i = 0; i < n * per; i++) {
        const char *e = in + at;
        if ((el = sg_reply_scan(e, len - at)) <= 0) return -1;
        if (shape == R3_PAIRS) { /* [member, double] */
            long long m;
            if (el < 4 || memcmp(e, "*2\r\n", 4) != 0 ||
                (m = sg_reply_scan(e + 4, (size_t)el - 4)) <= 0 || 4 + m >= el || e[4 + m] != ',')
                return -1;
            sg_buf_append(out, e + 4, (size_t)m);
            put_bulk_of_double(out, e + 4 + m, (size_t)(el - 4 - m));
        } else if (e[0] == '_') {
            sg_buf_append(out, "$-1\r\n", 5);
        } else if (e[0] == ',') {
            put_bulk_of_double(out, e, (size_t)el);
        } else if (e[0] == '$' || e[0] == ':') {
            sg_buf_append(out, e, (size_t)el);
        } else {
            return -1;
        }
        at += (size_t)el;
    }
    return at == len ? 0 : -1;
}

/* A read's form: its command's index, then each argument after the key as
 * four bytes of length and the bytes. Written to buf (cap bytes), or to a
 * new allocation when longer; NULL when out of memory. */
static char *form_of(size_t ci, int argc, const char *const *argv, const size_t *argvlen,
                     char *buf, size_t cap, size_t *len) {
    size_t n = 2;
    int i;
    char *p, *out;
    for (i = 2; i < argc; i++) n += 4 + argvlen[i];
    if ((out = n <= cap ? buf : sg_malloc(n)) == NULL) return NULL;
    out[0] = (char)(ci & 0xff);
    out[1] = (char)(ci >> 8);
    for (p = out + 2, i = 2; i < argc; i++) {
        uint32_t l = (uint32_t)argvlen[i];
        memcpy(p, &l, 4);
        memcpy(p + 4, argv[i], argvlen[i]);
        p += 4 + argvlen[i];
    }
    *len = n;
    return out;
}

static sg_cache_call *call_new(sg_cache *ca, cclient *cc, int write, int n) {
    sg_cache_call *call = sg_calloc(1, sizeof *call + (size_t)(n ? n : 1) * sizeof(void *));
    if (call == NULL) return NULL;
    call->ca = ca;
    call->cc = cc;
    call->write = write;
    call->shape3 = -1;
    call->n = n;
    return call;
}

/* The entry of a key's form, when it may answer now (else it is dropped, or
 * a read of it is being filled). *k is the key (NULL: none), *busy set when a
 * read or a write of it is in flight. */
static cform *lookup(sg_cache *ca, cclient *cc, const char *key, size_t klen, const char *form,
                     size_t flen, uint64_t now, ckey **kout, int *busy) {
    const sg_client *c = cc->c;
    uint64_t h = hash_of(key, klen);
    ckey *k = key_find(ca, cc, key, klen, h);
    cform *f;
    *kout = k;
    *busy = 0;
    if (k == NULL) return NULL;
    if (k->node != owner_of(c, k->slot)) {
        /* its slot moved (a MOVED, a failover): what it holds is the old node's */
        while (k->forms) form_drop(ca, k->forms, DROP_MOVED);
        k->node = owner_of(c, k->slot);
        if (k->wbusy == 0) {
            key_free(ca, k);
            *kout = NULL;
            return NULL;
        }
    }
    *busy = k->wbusy > 0;
    if ((f = form_find(k, form, flen)) == NULL) return NULL;
    if (f->call) {
        *busy = 1;
        return NULL;
    }
    if (k->node == NULL || !fresh(tracker_of(cc, k->node, 0), now)) {
        *busy = 1; /* not from memory, nor filled: sent as it is */
        return NULL;
    }
    if (now >= f->expires || stamp_get(stamp_of(k->hash)) != f->stamp ||
        stamp_get(&flush_stamp) != f->fstamp) {
        /* its life ran out, or a write (a flush) through another gateway of
         * the process left since its read did: the node's word may not be in */
        form_drop(ca, f, now >= f->expires ? DROP_EXPIRED : DROP_WRITTEN);
        if (k->forms == NULL && k->wbusy == 0) {
            key_free(ca, k);
            *kout = NULL;
        }
        return NULL;
    }
    if (f != ca->lru_head) {
        lru_unlink(ca, f);
        lru_push(ca, f);
    }
    return f;
}

/* Whether every master of the map has a ready tracker (opening those that
 * have none). The key's own master is not enough: a slot can move (a
 * migration's ASKING writes, or one finished that the map does not show yet)
 * and its keys be written on the new owner while its old master, which no
 * read goes to when all are answered from memory, has nothing to say — a key
 * cached as a null there never existed on it to be migrated. Only the new
 * owner's tracker names such a key, so fills wait until every master has
 * one. The walk over the map runs at most once a millisecond while some
 * tracker is missing. */
static int all_tracked(sg_cache *ca, cclient *cc) {
    uint64_t now;
    if (cc->watch_ok) return 1;
    now = sg_now_ms();
    if (cc->watch_at == now) return 0;
    cc->watch_at = now;
    return sg_cache_watch(ca, cc->c);
}

/* A placeholder for a key's form, filled by the read about to leave; NULL
 * when the read may not fill (the key's master is not known, or it or some
 * other master is not tracked yet, or a write of the key, or a flush, is in
 * flight). */
static cform *placeholder(sg_cache *ca, cclient *cc, sg_client *via, ckey *k, const char *key,
                          size_t klen, const char *form, size_t flen) {
    sg_client *c = cc->c;
    int slot = c->mode == SG_MODE_CLUSTER ? (int)sg_keyslot(key, klen) : 0;
    sg_node *node = owner_of(c, slot), *vn;
    cform *f;
    /* a RESP3 client carries the read: its map must send it where the
     * cache's does (checked again when the answer comes) */
    if (via && node && ((vn = owner_of(via, slot)) == NULL || strcmp(vn->addr, node->addr) != 0))
        return NULL;
    if (node == NULL && c->mode == SG_MODE_CLUSTER && !c->ready) {
        /* the cache's client of a RESP3 session's reads (the RESP2 twin) may
         * have served nothing yet: it needs a map (the next read may fill) */
        sg_cluster_discover(c);
        return NULL;
    }
    if (cc->flushing || node == NULL || !covered(ca, key, klen) || !tracked(ca, cc, node) ||
        !all_tracked(ca, cc))
        return NULL;
    if (k == NULL &&
        (k = key_new(ca, cc, key, klen, hash_of(key, klen), node, slot)) == NULL)
        return NULL;
    if ((f = sg_malloc(sizeof *f + flen)) == NULL) {
        if (k->forms == NULL && k->wbusy == 0) key_free(ca, k);
        return NULL;
    }
    memset(f, 0, sizeof *f);
    f->k = k;
    f->stamp = stamp_get(stamp_of(k->hash));
    f->fstamp = stamp_get(&flush_stamp);
    f->formlen = flen;
    memcpy(f->form, form, flen);
    f->next = k->forms;
    k->forms = f;
    charge(ca, sizeof *f + flen, 0);
    return f;
}

/* The reply to a placeholder's read: kept when the placeholder lives, the
 * key's master is still the one tracked, and it is a plain RESP2 answer (the
 * placeholder is f, still in its call). */
static void fill(sg_cache *ca, cform *f, const char *resp, size_t len, long long secs) {
    ckey *k = f->k;
    cclient *cc = k->cc;
    tracker *t = tracker_of(cc, k->node, 0);
    char *val = NULL;
    if (k->node != owner_of(cc->c, k->slot) || t == NULL || !fresh(t, sg_now_ms()) || len == 0 ||
        !strchr("$*:+", resp[0]) || sizeof *f + len > ca->max / 4 ||
        stamp_get(stamp_of(k->hash)) != f->stamp || stamp_get(&flush_stamp) != f->fstamp ||
        (val = sg_malloc(len)) == NULL) {
        form_drop(ca, f, DROP_EVICTED); /* a placeholder: counts as a lost fill */
        if (k->forms == NULL && k->wbusy == 0) key_free(ca, k);
        return;
    }
    f->call->at[f->callidx] = NULL;
    f->call = NULL;
    if (!stamps_used) __atomic_store_n(&stamps_used, 1, __ATOMIC_RELAXED);
    memcpy(val, resp, len);
    f->val = val;
    f->vallen = len;
    f->expires = sg_now_ms() + (uint64_t)secs * 1000;
    lru_push(ca, f);
    ca->entries++;
    ST_SET(ca, entries, ca->entries);
    ST_ADD(ca, fills, 1);
    charge(ca, len, 0);
    evict(ca);
}

/* A read's placeholders that did not fill: the read failed, or came as a tree. */
static void call_kill(sg_cache_call *call) {
    sg_cache *ca = call->ca;
    int i;
    for (i = 0; i < call->n; i++) {
        cform *f = call->at[i];
        ckey *k;
        if (f == NULL) continue;
        k = f->k;
        form_drop(ca, f, DROP_EVICTED); /* a placeholder: counts as a lost fill */
        if (k->forms == NULL && k->wbusy == 0) key_free(ca, k);
    }
}

/* The end of a write: its keys may be filled again. */
static void call_release(sg_cache_call *call) {
    sg_cache *ca = call->ca;
    int i;
    for (i = 0; i < call->n; i++) {
        ckey *k = call->at[i];
        stamp_bump(stamp_of(k->hash)); /* before the reply is delivered */
        k->wbusy--;
        if (k->forms == NULL && k->wbusy == 0) key_free(ca, k);
    }
    if (call->write == 2) {
        stamp_bump(&flush_stamp);
        call->cc->flushing--;
    }
}

static void on_tree(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    sg_cache_call *call = ud;
    if (call->write) call_release(call);
    else call_kill(call);
    call->fn(c, reply, status, errmsg, call->ud);
    sg_free(call);
}

/* The caller's raw_fn gets the bytes; a caller without one, their tree. */
static void deliver_raw(sg_client *c, sg_reply_fn fn, sg_raw_reply_fn raw_fn, void *ud,
                        const char *resp, size_t len) {
    int status;
    sg_reply *r;
    if (raw_fn) {
        raw_fn(c, resp, len, ud);
        return;
    }
    r = sg_reply_parse(resp, len, &status);
    fn(c, r, r ? SG_OK : status, r ? NULL : "out of memory reading a reply", ud);
}

/* A read's RESP2 answer fills its placeholders. */
static void fill_call(sg_cache *ca, sg_cache_call *call, const char *resp, size_t len) {
    long long n = 0;
    size_t at = 1;
    int i;
    if (!call->mget) {
        if (call->at[0]) fill(ca, call->at[0], resp, len, call->secs);
        return;
    }
    /* MGET: one element per key, each as GET answers it */
    while (at < len && resp[at] >= '0' && resp[at] <= '9') n = n * 10 + (resp[at++] - '0');
    at += 2;
    if (len == 0 || resp[0] != '*' || n != call->n || at > len) {
        call_kill(call);
        return;
    }
    for (i = 0; i < call->n; i++) {
        long long el = sg_reply_scan(resp + at, len - at);
        if (el <= 0) {
            call_kill(call);
            return;
        }
        if (call->at[i]) fill(ca, call->at[i], resp + at, (size_t)el, call->secs);
        at += (size_t)el;
    }
}

/* Whether the RESP3 client that carried a read sends its slots where the
 * cache's client does (each has a map of its own): else the answer may come
 * from a node whose changes the trackers do not hear. */
static int via_agrees(const sg_cache_call *call) {
    int i;
    for (i = 0; i < call->n; i++) {
        const cform *f = call->at[i];
        const sg_node *v;
        if (f == NULL) continue;
        v = owner_of(call->via, f->k->slot);
        if (v == NULL || f->k->node == NULL || strcmp(v->addr, f->k->node->addr) != 0) return 0;
    }
    return 1;
}

static void on_raw(sg_client *c, const char *resp, size_t len, void *ud) {
    sg_cache_call *call = ud;
    sg_cache *ca = call->ca;
    if (call->write) {
        call_release(call);
    } else if (c->reply_redirected) {
        /* after an ASK the answer came from a node the map does not give the
         * slot (a migration's target), whose tracker may not be open: the
         * changes made there would go untold. After a MOVED the map changed */
        call_kill(call);
    } else if (call->shape3 >= 0) {
        /* a RESP3 client's: kept as RESP2, the session gets the node's bytes */
        sg_buf b = {0};
        if (via_agrees(call) && to_resp2(call->shape3, resp, len, &b) == 0 && !b.oom)
            fill_call(ca, call, b.data, b.len);
        else call_kill(call);
        sg_buf_free(&b);
    } else {
        fill_call(ca, call, resp, len);
    }
    deliver_raw(c, call->fn, call->raw_fn, call->ud, resp, len);
    sg_free(call);
}

static void wrap(sg_cache_call *call, sg_reply_fn *fn, sg_raw_reply_fn *raw_fn, void **ud) {
    call->fn = *fn;
    call->raw_fn = *raw_fn;
    call->ud = *ud;
    *fn = on_tree;
    *raw_fn = on_raw;
    *ud = call;
}

void sg_cache_call_abort(sg_cache_call *call) {
    if (call == NULL) return;
    if (call->write) call_release(call);
    else call_kill(call);
    sg_free(call);
}

/* A hit's bytes for the caller, in its protocol (shape3 -1: RESP2, as kept);
 * 0 when they cannot be turned (no memory). */
static int answer(sg_cache *ca, int shape3, const char *val, size_t len, const char **out,
                  size_t *outlen) {
    if (shape3 >= 0) {
        ca->scratch3.len = 0;
        if (to_resp3(shape3, val, len, &ca->scratch3) != 0 || ca->scratch3.oom) return 0;
        val = ca->scratch3.data;
        len = ca->scratch3.len;
    }
    *out = val;
    *outlen = len;
    return 1;
}

int sg_cache_read(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                  const char *const *argv, const size_t *argvlen, long long secs, sg_client *via,
                  const char **out, size_t *outlen, sg_reply_fn *fn, sg_raw_reply_fn *raw_fn,
                  void **ud, sg_cache_call **callp) {
    size_t ci = sg_command_index(info), flen;
    char small[FORM_INLINE], *form;
    uint64_t now = sg_now_ms();
    cclient *cc;
    sg_cache_call *call;
    ckey *k;
    cform *f;
    int busy, i, n, missing = 0, placed = 0;
    int shape3 = via ? resp3_shape(info, argc, argv, argvlen) : -1;
    *callp = NULL;
    if (ca->max == 0 || (cc = cc_of(ca, c)) == NULL) return 0;
    if (ci != SG_CI_MGET) {
        if ((form = form_of(ci, argc, argv, argvlen, small, sizeof small, &flen)) == NULL) return 0;
        f = lookup(ca, cc, argv[1], argvlen[1], form, flen, now, &k, &busy);
        if (f && !answer(ca, shape3, f->val, f->vallen, out, outlen)) {
            f = NULL; /* sent as it is */
        } else if (f) {
            ST_ADD(ca, hits, 1);
        } else {
            ST_ADD(ca, misses, 1);
            if (!busy && (call = call_new(ca, cc, 0, 1)) != NULL) {
                if ((f = placeholder(ca, cc, via, k, argv[1], argvlen[1], form, flen)) == NULL) {
                    sg_free(call);
                } else {
                    f->call = call;
                    f->callidx = 0;
                    call->at[0] = f;
                    call->secs = secs;
                    call->shape3 = shape3;
                    call->via = via;
                    wrap(call, fn, raw_fn, ud);
                    *callp = call;
                }
            }
        }
        if (form != small) sg_free(form);
        return f != NULL && *callp == NULL;
    }
    /* MGET: answered here when every key is; else sent as it is, its
     * elements filling the keys that missed */
    n = argc - 1;
    form = form_of(SG_CI_GET, 2, argv, argvlen, small, sizeof small, &flen);
    ca->scratch.len = 0;
    sg_buf_printf(&ca->scratch, "*%d\r\n", n);
    for (i = 1; i < argc; i++) {
        f = lookup(ca, cc, argv[i], argvlen[i], form, flen, now, &k, &busy);
        if (f == NULL) missing++;
        else if (missing == 0) sg_buf_append(&ca->scratch, f->val, f->vallen);
    }
    if (missing == 0 && !ca->scratch.oom &&
        answer(ca, shape3, ca->scratch.data, ca->scratch.len, out, outlen)) {
        ST_ADD(ca, hits, (uint64_t)n);
        return 1;
    }
    ST_ADD(ca, misses, (uint64_t)missing);
    if ((call = call_new(ca, cc, 0, n)) == NULL) return 0;
    for (i = 1; i < argc; i++) {
        f = lookup(ca, cc, argv[i], argvlen[i], form, flen, now, &k, &busy);
        if (f || busy) continue;
        if ((f = placeholder(ca, cc, via, k, argv[i], argvlen[i], form, flen)) == NULL) continue;
        f->call = call;
        f->callidx = i - 1;
        call->at[i - 1] = f;
        placed++;
    }
    if (placed == 0) {
        sg_free(call);
        return 0;
    }
    call->secs = secs;
    call->shape3 = shape3;
    call->via = via;
    call->mget = 1;
    wrap(call, fn, raw_fn, ud);
    *callp = call;
    return 0;
}

/* The keys of a command (its key specs' arguments), in a small array or a
 * new one (*keyidx; caller frees when not small). */
static int keys_of(const sg_command *info, int argc, const char *const *argv,
                   const size_t *argvlen, int *small, int nsmall, int **keyidx) {
    *keyidx = small;
    if (argc > nsmall && (*keyidx = sg_malloc((size_t)argc * sizeof **keyidx)) == NULL) return -1;
    return sg_command_keys(info, argc, argv, argvlen, *keyidx, argc);
}

void sg_cache_drop_keys(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                        const char *const *argv, const size_t *argvlen) {
    int small[16], *keyidx, n, i;
    size_t ci = sg_command_index(info);
    cclient *cc = cc_of(ca, c);
    if (cc == NULL) return;
    if (ci == SG_CI_FLUSHALL || ci == SG_CI_FLUSHDB) {
        stamp_bump(&flush_stamp);
        drop_where(ca, cc, NULL, 0, DROP_FLUSHED);
        return;
    }
    n = keys_of(info, argc, argv, argvlen, small, 16, &keyidx);
    for (i = 0; i < n; i++) {
        const char *key = argv[keyidx[i]];
        size_t len = argvlen[keyidx[i]];
        uint64_t h = hash_of(key, len);
        ckey *k = key_find(ca, cc, key, len, h);
        stamp_bump(stamp_of(h));
        if (k) key_drop(ca, k, DROP_WRITTEN);
    }
    if (keyidx != small) sg_free(keyidx);
}

sg_cache_call *sg_cache_hold(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                             const char *const *argv, const size_t *argvlen) {
    sg_reply_fn fn = NULL;
    sg_raw_reply_fn raw_fn = NULL;
    void *ud = NULL;
    sg_cache_call *call;
    /* a write whose callbacks never run: the hold's end is its reply */
    sg_cache_write(ca, c, info, argc, argv, argvlen, &fn, &raw_fn, &ud, &call);
    return call;
}

void sg_cache_write(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                    const char *const *argv, const size_t *argvlen, sg_reply_fn *fn,
                    sg_raw_reply_fn *raw_fn, void **ud, sg_cache_call **callp) {
    int small[16], *keyidx, n, i;
    size_t ci = sg_command_index(info);
    cclient *cc = cc_of(ca, c);
    sg_cache_call *call;
    *callp = NULL;
    if (cc == NULL) return;
    if (ci == SG_CI_FLUSHALL || ci == SG_CI_FLUSHDB) {
        stamp_bump(&flush_stamp);
        drop_where(ca, cc, NULL, 0, DROP_FLUSHED);
        if ((call = call_new(ca, cc, 2, 0)) == NULL) return;
        cc->flushing++;
        wrap(call, fn, raw_fn, ud);
        *callp = call;
        return;
    }
    n = keys_of(info, argc, argv, argvlen, small, 16, &keyidx);
    if (n <= 0 || (call = call_new(ca, cc, 1, n)) == NULL) {
        if (n > 0) sg_cache_drop_keys(ca, c, info, argc, argv, argvlen);
        if (keyidx != small) sg_free(keyidx);
        return;
    }
    call->n = 0;
    for (i = 0; i < n; i++) {
        const char *key = argv[keyidx[i]];
        size_t len = argvlen[keyidx[i]];
        uint64_t h = hash_of(key, len);
        ckey *k = key_find(ca, cc, key, len, h);
        stamp_bump(stamp_of(h)); /* the other gateways' entries of it stop answering */
        if (k) {
            while (k->forms) form_drop(ca, k->forms, DROP_WRITTEN);
        } else {
            int slot = c->mode == SG_MODE_CLUSTER ? (int)sg_keyslot(key, len) : 0;
            if ((k = key_new(ca, cc, key, len, h, owner_of(c, slot), slot)) == NULL) continue;
        }
        k->wbusy++;
        call->at[call->n++] = k;
    }
    if (keyidx != small) sg_free(keyidx);
    wrap(call, fn, raw_fn, ud);
    *callp = call;
}
