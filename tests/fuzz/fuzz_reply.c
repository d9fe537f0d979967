/*
 * fuzz_reply.c — libFuzzer target for the engine's reply path: the bytes a
 * Redis node sends back, read by hiredis's reader into sg_reply trees through
 * the core's callbacks (core/src/reply.c), then each reply taken the ways the
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
#include <hiredis/read.h>
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
    if (r == NULL || depth > 16) abort();
    mix(d, &r->type, sizeof r->type);
    switch (r->type) {
    case SG_REPLY_STRING:
    case SG_REPLY_STATUS:
    case SG_REPLY_ERROR:
        if (r->str == NULL || r->str[r->len] != '\0' || r->elements || r->element) abort();
        mix(d, &r->len, sizeof r->len);
        mix(d, r->str, r->len);
        break;
    case SG_REPLY_INTEGER:
        if (r->str || r->element) abort();
        mix(d, &r->integer, sizeof r->integer);
        break;
    case SG_REPLY_NIL:
        if (r->str || r->element || r->elements) abort();
        break;
    case SG_REPLY_ARRAY:
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
            if (c->slots[s] == NULL) continue;
            n++;
            if (c->slots[s] == seen) continue;
            seen = c->slots[s];
            if (!is_node(c, seen) || seen->role != SG_ROLE_MASTER || !seen->in_map) abort();
        }
        if (n != covered || c->covered != covered) abort();
    }
    if (c->nnodes > SG_MAX_NODES) abort();
}

/* Reads every reply of in[0..n) cut by seed (0: whole), taking each. */
static int read_all(const char *in, size_t n, unsigned seed, digest *d, int fail_at) {
    redisReader *rd = redisReaderCreateWithFunctions(&sg_reply_functions);
    sg_client *c = client_new();
    sg_node *asked, **slots = slots_store;
    size_t at = 0;
    int rc = REDIS_OK;

    if (rd == NULL || (asked = sg_node_get(c, "127.0.0.1", 7000)) == NULL)
        abort();
    if (fail_at) sg_alloc_fail_at((unsigned long)fail_at);
    while (rc == REDIS_OK) {
        void *obj = NULL;
        if (at < n) {
            size_t len = n - at;
            if (seed) {
                seed = seed * 1103515245u + 12345u;
                len = 1 + (seed >> 8) % (seed & 0x100 ? 4 : 64);
                if (len > n - at) len = n - at;
            }
            if (redisReaderFeed(rd, in + at, len) != REDIS_OK) abort();
            at += len;
        }
        while ((rc = redisReaderGetReply(rd, &obj)) == REDIS_OK && obj != NULL) {
            walk(obj, d, 0);
            d->replies++;
            take(c, asked, obj, slots);
            sg_reply_free(obj);
        }
        if (at == n) break;
    }
    if (rc != REDIS_OK) {
        if (rd->err == 0) abort();
        mix(d, &rd->err, sizeof rd->err);
        if (rd->err != REDIS_ERR_OOM) mix(d, rd->errstr, strlen(rd->errstr));
    }
    sg_alloc_fail_at(0);
    redisReaderFree(rd);
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
