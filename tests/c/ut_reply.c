/*
 * ut_reply.c — reply trees as the engine reads them (core/src/reply.c: the
 * end of a reply found, then its tree): arrays of every size, nesting, an
 * announced count far above what arrives, nesting past the limit, replies
 * cut anywhere across chunks, allocation failures at every step; and a
 * CLUSTER SLOTS map applied.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "test.h"

/* Reads one reply from text; NULL (and *err set: SG_EPROTO not RESP,
 * SG_EIO not whole, else sg_reply_parse's status) when there is none. */
static sg_reply *read_one(const char *text, size_t len, int *err) {
    long long n = sg_reply_scan(text, len);
    sg_reply *r;
    *err = 0;
    if (n <= 0) {
        *err = n < 0 ? SG_EPROTO : SG_EIO;
        return NULL;
    }
    r = sg_reply_parse(text, (size_t)n, err);
    return r;
}

/* "*n" of integers 0..n-1: every size across the block's doublings. */
static void test_array_sizes(void) {
    static const size_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100, 1000};
    size_t k, i;
    for (k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k], at = 0, cap = 16 + n * 16;
        char *text = malloc(cap);
        sg_reply *r;
        int err, ok = 1;
        at += (size_t)snprintf(text + at, cap - at, "*%zu\r\n", n);
        for (i = 0; i < n; i++) at += (size_t)snprintf(text + at, cap - at, ":%zu\r\n", i);
        r = read_one(text, at, &err);
        CHECK_INT(err, 0);
        if (r == NULL) {
            free(text);
            continue;
        }
        CHECK_INT(r->type, SG_REPLY_ARRAY);
        CHECK_INT(r->elements, n);
        for (i = 0; i < r->elements && i < n; i++)
            ok &= r->element[i]->type == SG_REPLY_INTEGER && r->element[i]->integer == (long long)i;
        CHECK(ok);
        sg_reply_free(r);
        free(text);
    }
}

static void test_nested(void) {
    static const char text[] = "*3\r\n*2\r\n$1\r\na\r\n*0\r\n$-1\r\n*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n*-1\r\n";
    int err;
    sg_reply *r = read_one(text, sizeof text - 1, &err);
    CHECK_INT(err, 0);
    if (r == NULL) return;
    CHECK_INT(r->elements, 3);
    CHECK_INT(r->element[0]->elements, 2);
    CHECK_STR(r->element[0]->element[0]->str, "a");
    CHECK_INT(r->element[0]->element[1]->type, SG_REPLY_ARRAY);
    CHECK_INT(r->element[0]->element[1]->elements, 0);
    CHECK_INT(r->element[1]->type, SG_REPLY_NIL);
    CHECK_INT(r->element[2]->elements, 5);
    CHECK_INT(r->element[2]->element[4]->type, SG_REPLY_NIL);
    sg_reply_free(r);
}

/* A node announces two billion elements, sends one, then garbage: the
 * scan refuses the garbage before any tree is made, allocating nothing
 * (fuzz_reply found an up-front allocation of the count as a timeout). An
 * honest count with too few elements is not whole; a count past any real
 * reply is not RESP we take. */
static void test_announced_count(void) {
    static const char garbage[] = "*2000000000\r\n:1\r\n!x\r\n";
    static const char shortof[] = "*2000000000\r\n:1\r\n:2\r\n";
    static const char huge[] = "*9999999999999999\r\n*9999999999999999\r\n";
    unsigned long allocs;
    int err;
    sg_alloc_fail_at(0);
    CHECK(read_one(garbage, sizeof garbage - 1, &err) == NULL);
    CHECK_INT(err, SG_EPROTO);
    allocs = sg_alloc_fail_at(0);
    CHECK_INT(allocs, 0);
    CHECK(read_one(shortof, sizeof shortof - 1, &err) == NULL);
    CHECK_INT(err, SG_EIO);
    CHECK(read_one(huge, sizeof huge - 1, &err) == NULL);
    CHECK_INT(err, SG_EPROTO);
}

/* Nesting: 1000 levels are a tree; deeper is SG_EINVAL (the request's
 * error), not a broken stream (hiredis's reader stopped at 7). */
static void test_deep_nesting(void) {
    size_t depth, i;
    for (depth = 999; depth <= 1001; depth++) {
        size_t len = depth * 4 + 4;
        char *text = malloc(len + 1), *p = text;
        sg_reply *r;
        int err;
        for (i = 0; i < depth; i++, p += 4) memcpy(p, "*1\r\n", 4);
        memcpy(p, ":7\r\n", 4);
        CHECK_INT(sg_reply_scan(text, len), (long long)len);
        r = sg_reply_parse(text, len, &err);
        if (depth <= 1000) {
            CHECK(r != NULL);
        } else {
            CHECK(r == NULL);
            CHECK_INT(err, SG_EINVAL);
        }
        sg_reply_free(r);
        free(text);
    }
}

/* A stream of replies cut into chunks of every size: the chunk scanner
 * finds the same ends as the whole-buffer scan, keeping its place. */
static void test_scan_across_chunks(void) {
    static const char text[] = "+OK\r\n$5\r\nhello\r\n*3\r\n:1\r\n$-1\r\n*2\r\n$2\r\nab\r\n-ERR x\r\n"
                               "$0\r\n\r\n*0\r\n:-42\r\n";
    static const long long ends[] = {5, 16, 49, 55, 59, 65};
    size_t cut;
    for (cut = 1; cut <= sizeof text - 1; cut++) {
        struct evbuffer *in = evbuffer_new();
        sg_scan st = {0};
        size_t fed = 0;
        int k = 0, ok = 1;
        long long base = 0;
        while (k < 6) {
            long long n = sg_reply_scan_buffer(&st, in);
            if (n < 0) {
                ok = 0;
                break;
            }
            if (n == 0) {
                size_t step = cut < sizeof text - 1 - fed ? cut : sizeof text - 1 - fed;
                if (step == 0) {
                    ok = 0;
                    break;
                }
                /* a chunk of its own each time: the reply runs across them */
                {
                    struct evbuffer *piece = evbuffer_new();
                    evbuffer_add(piece, text + fed, step);
                    evbuffer_add_buffer(in, piece);
                    evbuffer_free(piece);
                }
                fed += step;
                continue;
            }
            ok &= base + n == ends[k];
            base += n;
            evbuffer_drain(in, (size_t)n);
            k++;
        }
        CHECK(ok);
        evbuffer_free(in);
    }
}

/* The two scanners judge a line alike (found by fuzz_reply: a reply read
 * whole and read in pieces came out differently): a header of 19 digits is
 * not RESP for either, nor is a line with no type byte. */
static void test_scanners_agree(void) {
    static const char *const texts[] = {"*1234567890123456789\r\n", "$1234567890123456789\r\n",
                                        "*123456789012345678\r\n", "\r\n+OK\r\n",
                                        "$-123456789012345678\r\n", ":00\r*0\n\r\n"};
    size_t i;
    for (i = 0; i < sizeof texts / sizeof *texts; i++) {
        struct evbuffer *in = evbuffer_new();
        sg_scan st = {0};
        long long whole = sg_reply_scan(texts[i], strlen(texts[i]));
        long long buffered;
        /* the first byte in a chunk of its own: the buffer scanner is used */
        evbuffer_add(in, texts[i], 1);
        {
            struct evbuffer *rest = evbuffer_new();
            evbuffer_add(rest, texts[i] + 1, strlen(texts[i]) - 1);
            evbuffer_add_buffer(in, rest);
            evbuffer_free(rest);
        }
        buffered = sg_reply_scan_buffer(&st, in);
        CHECK_INT(buffered, whole);
        evbuffer_free(in);
    }
    CHECK_INT(sg_reply_scan("*1234567890123456789\r\n", 22), -1);
    CHECK_INT(sg_reply_scan("\r\n+OK\r\n", 7), -1);
}

/* The Nth allocation fails, for every N of a nested read: an OOM error and
 * nothing leaked (the sanitizer build checks), never a half tree. */
static void test_out_of_memory(void) {
    static const char text[] = "*2\r\n*6\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n$3\r\nxyz\r\n+OK\r\n";
    unsigned long n;
    int err, failed = 0;
    for (n = 1; n < 64; n++) {
        sg_reply *r;
        sg_alloc_fail_at(n);
        r = read_one(text, sizeof text - 1, &err);
        sg_alloc_fail_at(0);
        if (r) {
            CHECK_INT(r->elements, 2);
            sg_reply_free(r);
            break;
        }
        failed++;
        CHECK_INT(err, SG_ENOMEM);
    }
    CHECK(failed >= 10); /* every allocation of the tree was tried */
}

/* A CLUSTER SLOTS map that lists a master also as another master's replica
 * (a stale view during a failover): the node stays a master, so fan-outs to
 * every master reach it; found by fuzz_reply. */
static void test_map_master_listed_as_replica(void) {
    static const char text[] = "*2\r\n"
                               "*4\r\n:0\r\n:8191\r\n*2\r\n$1\r\na\r\n:1\r\n*2\r\n$1\r\nb\r\n:2\r\n"
                               "*4\r\n:8192\r\n:16383\r\n*2\r\n$1\r\nb\r\n:2\r\n*2\r\n$1\r\na\r\n:1\r\n";
    static sg_client c; /* bare: no base, a refresh marked in flight */
    static sg_node *slots[SG_SLOTS];
    sg_node *asked, *a, *b, **masters = NULL;
    char why[SG_ERRMSG_MAX];
    int err;
    sg_reply *r = read_one(text, sizeof text - 1, &err);
    CHECK(r != NULL);
    if (r == NULL) return;
    c.mode = SG_MODE_CLUSTER;
    c.refreshing = 1;
    asked = sg_node_get(&c, "a", 1);
    CHECK_INT(sg_cluster_parse_slots(&c, r, asked, slots, why, sizeof why), SG_SLOTS);
    CHECK_INT(sg_cluster_apply_slots(&c, r, asked, slots), SG_OK);
    a = sg_node_by_addr(&c, "a:1");
    b = sg_node_by_addr(&c, "b:2");
    CHECK_INT(a->role, SG_ROLE_MASTER);
    CHECK_INT(b->role, SG_ROLE_MASTER);
    CHECK_INT(a->nreplicas, 0);
    CHECK_INT(b->nreplicas, 0);
    CHECK_INT(sg_masters(&c, &masters), 2);
    sg_free(masters);
    CHECK(sg_slot_master(&c, 0) == a && sg_slot_master(&c, 16383) == b);
    sg_reply_free(r);
    sg_cluster_free(&c);
}

int main(void) {
    RUN(test_array_sizes);
    RUN(test_nested);
    RUN(test_announced_count);
    RUN(test_deep_nesting);
    RUN(test_scan_across_chunks);
    RUN(test_scanners_agree);
    RUN(test_out_of_memory);
    RUN(test_map_master_listed_as_replica);
    return test_report();
}
