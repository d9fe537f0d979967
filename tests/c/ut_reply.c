/*
 * ut_reply.c — reply trees as the engine reads them (core/src/reply.c: the
 * end of a reply found, then its tree): arrays of every size, nesting, an
 * announced count far above what arrives, nesting past the limit, replies
 * cut anywhere across chunks, allocation failures at every step; and a
 * CLUSTER SLOTS map applied. RESP3: every type, as a Redis 7.0 node sent it
 * (recorded below; ct_resp3 reads the same from a live node), and the
 * malformed forms of each refused.
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
    static const char text[] =
        "*3\r\n*2\r\n$1\r\na\r\n*0\r\n$-1\r\n*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n*-1\r\n";
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
    static const char text[] =
        "+OK\r\n$5\r\nhello\r\n*3\r\n:1\r\n$-1\r\n*2\r\n$2\r\nab\r\n-ERR x\r\n"
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
    static const char text[] =
        "*2\r\n"
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

/* What redis-server 7.0.15 sent on a connection opened with HELLO 3, for
 * DEBUG PROTOCOL string, integer, double, bignum, null, array, set, map,
 * attrib, push (a push, then the reply after it), verbatim, true, false;
 * then HGETALL h, SMEMBERS s, ZSCORE z m, GET of a missing key, a script's
 * error, and SUBSCRIBE's confirmation. */
static const char resp3_stream[] =
    "$11\r\nHello World\r\n"
    ":12345\r\n"
    ",3.141\r\n"
    "(1234567999999999999999999999999999999\r\n"
    "_\r\n"
    "*3\r\n:0\r\n:1\r\n:2\r\n"
    "~3\r\n:0\r\n:1\r\n:2\r\n"
    "%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n"
    "|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n"
    "$39\r\nSome real reply following the attribute\r\n"
    ">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n"
    "$40\r\nSome real reply following the push reply\r\n"
    "=29\r\ntxt:This is a verbatim\nstring\r\n"
    "#t\r\n"
    "#f\r\n"
    "%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n"
    "~1\r\n$1\r\na\r\n"
    ",1.5\r\n"
    "_\r\n"
    "-ERR boom\r\n"
    ">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";

/* Each reply of the stream: its type, and its text, integer or elements. */
static void test_resp3_types(void) {
    static const int types[] = {SG_REPLY_STRING, SG_REPLY_INTEGER, SG_REPLY_DOUBLE,
                                SG_REPLY_BIGNUM, SG_REPLY_NIL,     SG_REPLY_ARRAY,
                                SG_REPLY_SET,    SG_REPLY_MAP,     SG_REPLY_STRING,
                                SG_REPLY_PUSH,   SG_REPLY_STRING,  SG_REPLY_VERB,
                                SG_REPLY_BOOL,   SG_REPLY_BOOL,    SG_REPLY_MAP,
                                SG_REPLY_SET,    SG_REPLY_DOUBLE,  SG_REPLY_NIL,
                                SG_REPLY_ERROR,  SG_REPLY_PUSH};
    sg_reply *r[20];
    size_t at = 0, len = sizeof resp3_stream - 1;
    int i, err;
    for (i = 0; i < 20; i++) {
        long long n = sg_reply_scan(resp3_stream + at, len - at);
        CHECK(n > 0);
        if (n <= 0) return;
        r[i] = sg_reply_parse(resp3_stream + at, (size_t)n, &err);
        CHECK_INT(err, SG_OK);
        if (r[i] == NULL) return;
        CHECK_INT(r[i]->type, types[i]);
        at += (size_t)n;
    }
    CHECK_INT(at, len);
    CHECK_STR(r[0]->str, "Hello World");
    CHECK_INT(r[1]->integer, 12345);
    CHECK_STR(r[2]->str, "3.141");
    CHECK(r[2]->dval == 3.141);
    CHECK_STR(r[3]->str, "1234567999999999999999999999999999999");
    CHECK_INT(r[6]->elements, 3);
    CHECK_INT(r[7]->elements, 6); /* three pairs */
    CHECK_INT(r[7]->element[3]->type, SG_REPLY_BOOL);
    CHECK_INT(r[7]->element[3]->integer, 1);
    CHECK_INT(r[7]->element[5]->integer, 0);
    /* the attribute belongs to the reply after it */
    CHECK(r[8]->attribute != NULL);
    if (r[8]->attribute) {
        CHECK_INT(r[8]->attribute->type, SG_REPLY_ATTR);
        CHECK_INT(r[8]->attribute->elements, 2);
        CHECK_STR(r[8]->attribute->element[0]->str, "key-popularity");
        CHECK_INT(r[8]->attribute->element[1]->element[1]->integer, 90);
    }
    CHECK_STR(r[8]->str, "Some real reply following the attribute");
    CHECK_INT(r[9]->elements, 2);
    CHECK_STR(r[11]->vtype, "txt");
    CHECK_STR(r[11]->str, "This is a verbatim\nstring");
    CHECK_INT(r[11]->len, 25);
    CHECK_INT(r[12]->integer, 1);
    CHECK_INT(r[13]->integer, 0);
    CHECK_STR(r[14]->element[2]->str, "g");
    CHECK(r[16]->dval == 1.5);
    CHECK_STR(r[18]->str, "ERR boom");
    CHECK_STR(r[19]->element[0]->str, "subscribe");
    for (i = 0; i < 20; i++) sg_reply_free(r[i]);
}

/* The same stream cut into chunks of every size: the chunk scanner finds
 * every RESP3 reply's end where the whole-buffer scanner does. */
static void test_resp3_across_chunks(void) {
    size_t len = sizeof resp3_stream - 1, cut;
    for (cut = 1; cut <= 24; cut++) {
        struct evbuffer *in = evbuffer_new();
        sg_scan st = {0};
        size_t fed = 0, at = 0;
        int ok = 1;
        while (at < len) {
            long long n = sg_reply_scan_buffer(&st, in);
            if (n < 0) {
                ok = 0;
                break;
            }
            if (n == 0) {
                size_t step = cut < len - fed ? cut : len - fed;
                struct evbuffer *piece;
                if (step == 0) {
                    ok = 0;
                    break;
                }
                piece = evbuffer_new();
                evbuffer_add(piece, resp3_stream + fed, step);
                evbuffer_add_buffer(in, piece);
                evbuffer_free(piece);
                fed += step;
                continue;
            }
            ok &= n == sg_reply_scan(resp3_stream + at, len - at);
            at += (size_t)n;
            evbuffer_drain(in, (size_t)n);
        }
        CHECK(ok);
        evbuffer_free(in);
    }
}

/* RESP3 forms a node never sends are refused (SG_EPROTO), not guessed at. */
static void test_resp3_malformed(void) {
    static const char *const bad[] = {
        "#x\r\n",
        "#tt\r\n",
        ",\r\n",
        ",abc\r\n",
        ", 1\r\n",
        ",1.5x\r\n",
        "(\r\n",
        "(12a\r\n",
        "(-\r\n",
        "_x\r\n",
        "=3\r\nabc\r\n",
        "=5\r\ntxt_x\r\n",
        "=5\r\nt:t:x\r\n",
        "%-1\r\n",
        "~-1\r\n",
        ">-1\r\n",
        "!-1\r\n",
        "$3\r\nabcd\r\n",
        "|1\r\n:1\r\n:2\r\n|1\r\n:3\r\n:4\r\n:5\r\n",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        int err = 0;
        long long n = sg_reply_scan(bad[i], strlen(bad[i]));
        sg_reply *r = n > 0 ? sg_reply_parse(bad[i], (size_t)n, &err) : NULL;
        if (r != NULL || (n > 0 && err != SG_EPROTO))
            TEST_FAIL_("\"%s\" was taken (scan %lld, status %d)", bad[i], n, err);
        test_checks++;
        sg_reply_free(r);
    }
    /* an attribute is not whole without the reply it decorates */
    CHECK_INT(sg_reply_scan("|1\r\n:1\r\n:2\r\n", 12), 0);
    /* a blob error, a null map value, an empty verbatim text */
    {
        static const char ok[] = "%2\r\n!5\r\nERR x\r\n_\r\n=4\r\ntxt:\r\n,-inf\r\n";
        int err;
        sg_reply *r = read_one(ok, sizeof ok - 1, &err);
        CHECK(r != NULL);
        if (r) {
            CHECK_INT(r->element[0]->type, SG_REPLY_ERROR);
            CHECK_STR(r->element[0]->str, "ERR x");
            CHECK_INT(r->element[1]->type, SG_REPLY_NIL);
            CHECK_INT(r->element[2]->type, SG_REPLY_VERB);
            CHECK_INT(r->element[2]->len, 0);
            CHECK(r->element[3]->dval < -1e308);
        }
        sg_reply_free(r);
    }
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
    RUN(test_resp3_types);
    RUN(test_resp3_across_chunks);
    RUN(test_resp3_malformed);
    return test_report();
}
