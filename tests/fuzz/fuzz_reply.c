/*
 * fuzz_reply.c — libFuzzer target for the engine's reply path: the bytes a
 * Redis node sends back, cut into replies as conn.c cuts them (sg_reply_scan
 * on the first chunk, sg_reply_scan_buffer across chunks), each made a tree
 * (sg_reply_parse, core/src/reply.c), then taken the ways the
 * engine takes it: as a possible -MOVED/-ASK redirect (sg_redirect_target and
 * sg_cluster_moved, core/src/router.c and cluster.c) and as a CLUSTER SLOTS
 * answer (sg_cluster_parse_slots, then sg_cluster_apply_slots when it parses).
 *
 * The client is a bare sg_client in cluster mode with a refresh marked in
 * flight: nothing here opens a socket or arms a timer.
 *
 * Input: byte 0 chooses how the rest is cut into reads and whether one
 * allocation fails (bit 7; which one: byte 1); the rest is what the node
 * sends. The replies are read whole, then in pieces; both must give the same
 * trees (and the same error). Every tree must be well formed; after a map is
 * applied, every slot's master must be a node of the client, with
 * c->covered the number of slots that have one. Anything else aborts, as do
 * crashes, leaks and undefined behaviour the sanitizers see.
 *
 * Build and run: tests/fuzz/run.sh 60 reply. Replayed by ctest
 * (fuzz_reply_corpus) through replay_main.c.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

typedef struct digest {
    uint64_t h;
    size_t replies;
} digest;

static void mix(digest *d, const void *p, size_t n) {
    const unsigned char *s = p;
    size_t i;
    for (i = 0; i < n; i++) d->h = (d->h ^ s[i]) * 1099511628211ULL;
}

/* Checks the tree's shape and folds it into d. */
static void walk(const sg_reply *r, digest *d, int depth) {
    size_t i;
    if (r == NULL || depth > 1000) abort();
    mix(d, &r->type, sizeof r->type);
    if (r->attribute) { /* an ATTR map, itself undecorated */
        if (r->attribute->type != SG_REPLY_ATTR || r->attribute->attribute) abort();
        walk(r->attribute, d, depth + 1);
    }
    switch (r->type) {
    case SG_REPLY_STRING:
    case SG_REPLY_STATUS:
    case SG_REPLY_ERROR:
    case SG_REPLY_DOUBLE:
    case SG_REPLY_BIGNUM:
    case SG_REPLY_VERB:
        if (r->str == NULL || r->str[r->len] != '\0' || r->elements || r->element) abort();
        if (r->type == SG_REPLY_VERB && (strlen(r->vtype) != 3 || memchr(r->vtype, ':', 3)))
            abort();
        mix(d, &r->len, sizeof r->len);
        mix(d, r->str, r->len);
        break;
    case SG_REPLY_INTEGER:
    case SG_REPLY_BOOL:
        if (r->str || r->element) abort();
        if (r->type == SG_REPLY_BOOL && r->integer != 0 && r->integer != 1) abort();
        mix(d, &r->integer, sizeof r->integer);
        break;
    case SG_REPLY_NIL:
        if (r->str || r->element || r->elements) abort();
        break;
    case SG_REPLY_MAP:
    case SG_REPLY_ATTR:
        if (r->elements % 2) abort(); /* pairs */
        /* fall through */
    case SG_REPLY_ARRAY:
    case SG_REPLY_SET:
    case SG_REPLY_PUSH:
        if (r->str || (r->elements && r->element == NULL)) abort();
        mix(d, &r->elements, sizeof r->elements);
        for (i = 0; i < r->elements; i++) walk(r->element[i], d, depth + 1);
        break;
    default:
        abort();
    }
}

/* One client's storage, cleared for each read: it holds the 16384-slot map,
 * too big to allocate afresh every time at a good speed. */
static sg_client client_store;
static sg_node *slots_store[SG_SLOTS];

static sg_client *client_new(void) {
    sg_client *c = &client_store;
    memset(c, 0, sizeof *c);
    c->mode = SG_MODE_CLUSTER;
    c->refreshing = 1; /* sg_cluster_refresh returns at once */
    return c;
}

static void client_free(sg_client *c) {
    sg_cluster_free(c);
    sg_buf_free(&c->refresh_errors);
}

static int is_node(const sg_client *c, const sg_node *n) {
    int i;
    for (i = 0; i < c->nnodes; i++)
        if (c->nodes[i] == n) return 1;
    return 0;
}

/* What the engine does with one reply from node asked. */
static void take(sg_client *c, sg_node *asked, const sg_reply *r, sg_node **slots) {
    char why[SG_ERRMSG_MAX];
    int slot = -1, covered, s, n;
    sg_node *to;

    if (sg_reply_error_is(r, "MOVED") || sg_reply_error_is(r, "ASK")) {
        if ((to = sg_redirect_target(c, r, &slot)) != NULL) {
            if (!is_node(c, to)) abort();
            if (sg_reply_error_is(r, "MOVED")) sg_cluster_moved(c, slot, to);
        }
    }
    c->map_oom = 0;
    why[0] = '\0';
    covered = sg_cluster_parse_slots(c, r, asked, slots, why, sizeof why);
    if (covered < 0 && why[0] == '\0') abort();
    if (covered > SG_SLOTS) abort();
    if (covered > 0 && sg_cluster_apply_slots(c, r, asked, slots) == SG_OK) {
        const sg_node *seen = NULL; /* slots come in runs: check each run once */
        for (s = 0, n = 0; s < SG_SLOTS; s++) {
            if (sg_slot_master(c, s) == NULL) continue;
            n++;
            if (sg_slot_master(c, s) == seen) continue;
            seen = sg_slot_master(c, s);
            if (!is_node(c, seen) || seen->role != SG_ROLE_MASTER || !seen->in_map) abort();
        }
        if (n != covered || c->covered != covered) abort();
    }
    if (c->nnodes > SG_MAX_NODES) abort();
}

/* Reads every reply of in[0..n) cut by seed (0: whole), taking each, as
 * conn.c's read_replies does. Returns 0, or the status that stopped it. */
static int read_all(const char *in, size_t n, unsigned seed, digest *d, int fail_at) {
    struct evbuffer *buf = evbuffer_new();
    sg_client *c = client_new();
    sg_node *asked, **slots = slots_store;
    sg_scan st = {0};
    size_t at = 0;
    int rc = 0;

    if (buf == NULL || (asked = sg_node_get(c, "127.0.0.1", 7000)) == NULL) abort();
    if (fail_at) sg_alloc_fail_at((unsigned long)fail_at);
    for (;;) {
        struct evbuffer_iovec vec;
        long long len = 0;
        const char *data;
        sg_reply *r;
        int status;
        if (!st.active && evbuffer_peek(buf, -1, NULL, &vec, 1) >= 1)
            len = sg_reply_scan(vec.iov_base, vec.iov_len);
        if (len == 0) len = sg_reply_scan_buffer(&st, buf);
        if (len < 0) {
            rc = SG_EPROTO;
            break;
        }
        if (len == 0) {
            size_t step = n - at;
            struct evbuffer *piece;
            if (at == n) break; /* what is left is not a whole reply */
            if (seed) {
                seed = seed * 1103515245u + 12345u;
                step = 1 + (seed >> 8) % (seed & 0x100 ? 4 : 64);
                if (step > n - at) step = n - at;
            }
            /* each read a chunk of its own, as the socket gives them */
            if ((piece = evbuffer_new()) == NULL || evbuffer_add(piece, in + at, step) != 0 ||
                evbuffer_add_buffer(buf, piece) != 0)
                abort();
            evbuffer_free(piece);
            at += step;
            continue;
        }
        if ((data = (const char *)evbuffer_pullup(buf, len)) == NULL) abort();
        r = sg_reply_parse(data, (size_t)len, &status);
        if (r == NULL && status == SG_EPROTO) {
            /* the scans find ends; the parse also checks what lies between
             * (an integer's digits): either way the stream is broken */
            rc = SG_EPROTO;
            break;
        }
        if (r == NULL) {
            if (status == SG_OK) abort();
            mix(d, &status, sizeof status);
        } else {
            walk(r, d, 0);
            d->replies++;
            take(c, asked, r, slots);
            sg_reply_free(r);
        }
        evbuffer_drain(buf, (size_t)len);
    }
    mix(d, &rc, sizeof rc);
    sg_alloc_fail_at(0);
    evbuffer_free(buf);
    client_free(c);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    digest whole = {14695981039346656037ULL, 0}, pieces = whole;
    const char *in;
    size_t n;
    int fail;

    if (size < 2) return 0;
    fail = data[0] & 0x80 ? 1 + data[1] % 32 : 0;
    in = (const char *)data + 2;
    n = size - 2;
    read_all(in, n, 0, &whole, 0);
    read_all(in, n, (unsigned)data[0] << 8 | data[1] | 1, &pieces, 0);
    if (whole.h != pieces.h || whole.replies != pieces.replies) abort();
    if (fail) {
        /* one allocation fails somewhere: no crash, no leak, no use after free */
        digest d = whole;
        read_all(in, n, data[1], &d, fail);
    }
    return 0;
}
