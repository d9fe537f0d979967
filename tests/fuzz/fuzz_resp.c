/*
 * fuzz_resp.c — libFuzzer target for slotgated's request parser
 * (daemon/resp.c).
 *
 * The first two bytes of an input choose the limits (small ones, so the fuzzer
 * reaches them) and how the rest is cut into reads; the rest is what a client
 * sends. The input is parsed fed whole, then fed in pieces (through
 * sg_resp_feed and sg_resp_space/commit in turn, with one allocation failing
 * and the failed call retried when the second byte says so). Both must give
 * the same requests, the same error and the same bytes left buffered; each
 * request must have at least one argument and raw bytes that are the request
 * (a multibulk one: exactly its canonical encoding; an inline one: one line).
 * Anything else aborts, as does any crash, leak or undefined behaviour the
 * sanitizers see.
 *
 * Build (from the top of the repository; Debian's clang-14 and
 * libclang-rt-14-dev):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     -Icore/include -Icore/src tests/fuzz/fuzz_resp.c daemon/resp.c \
 *     core/src/base.c -o build/fuzz_resp
 * Run for 60 s, new inputs going to a scratch directory, the corpus read too:
 *   mkdir -p /tmp/fuzz-resp && build/fuzz_resp -max_total_time=60 \
 *     -dict=tests/fuzz/resp.dict /tmp/fuzz-resp tests/fuzz/corpus/resp
 * Replay the corpus (what a regression test does): libFuzzer runs each file
 * named on its command line once,
 *   build/fuzz_resp tests/fuzz/corpus/resp/<each file>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/resp.h"
#include "sg_internal.h"

typedef struct log {
    unsigned char *s;
    size_t n, cap;
} log_t;

static void put(log_t *l, const void *p, size_t n) {
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->n + n) cap *= 2;
        l->s = realloc(l->s, cap);
        if (l->s == NULL) abort();
        l->cap = cap;
    }
    memcpy(l->s + l->n, p, n);
    l->n += n;
}

static void put_size(log_t *l, size_t v) { put(l, &v, sizeof v); }

/* The canonical encoding of r's arguments must be its raw bytes. */
static int multibulk_raw_ok(const sg_resp_req *r) {
    char num[32];
    size_t at = 0;
    int i, n;
    n = snprintf(num, sizeof num, "*%d\r\n", r->argc);
    if ((size_t)n > r->rawlen || memcmp(r->raw, num, (size_t)n) != 0) return 0;
    at = (size_t)n;
    for (i = 0; i < r->argc; i++) {
        n = snprintf(num, sizeof num, "$%zu\r\n", r->argvlen[i]);
        if (at + (size_t)n > r->rawlen || memcmp(r->raw + at, num, (size_t)n) != 0) return 0;
        at += (size_t)n;
        if (r->raw + at != r->argv[i]) return 0; /* zero-copy, in place */
        at += r->argvlen[i];
        if (at + 2 > r->rawlen || memcmp(r->raw + at, "\r\n", 2) != 0) return 0;
        at += 2;
    }
    return at == r->rawlen;
}

static void check_req(const sg_resp_req *r) {
    if (r->argc < 1) abort();
    if (r->is_inline) {
        if (r->rawlen == 0 || r->raw[r->rawlen - 1] != '\n') abort();
        if (memchr(r->raw, '\n', r->rawlen - 1) != NULL) abort();
    } else if (!multibulk_raw_ok(r)) {
        abort();
    }
}

/* Takes every request out; SG_ENOMEM is retried when retry. */
static int drain(sg_resp *p, log_t *l, int retry) {
    sg_resp_req r;
    int rc, i;
    for (;;) {
        rc = sg_resp_next(p, &r);
        if (rc == SG_ENOMEM && retry) continue;
        if (rc != 1) break;
        check_req(&r);
        put(l, "R", 1);
        put_size(l, (size_t)r.argc);
        put_size(l, (size_t)r.is_inline);
        put_size(l, r.rawlen);
        for (i = 0; i < r.argc; i++) {
            put_size(l, r.argvlen[i]);
            put(l, r.argv[i], r.argvlen[i]);
        }
    }
    if (rc < 0) {
        if (sg_errcode(p) != rc) abort();
        put(l, "E", 1);
        put(l, sg_errmsg(p), strlen(sg_errmsg(p)));
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t args[] = {0, 3, 10, 1}, bulks[] = {0, 5, 64, 1};
    sg_resp_limits lim;
    log_t whole = {0}, pieces = {0};
    sg_resp *p;
    const char *in;
    size_t n, at = 0;
    unsigned seed;
    int rc = 0, auth, fail, k = 0;

    if (size < 2) return 0;
    lim.max_args = args[data[0] & 3];
    lim.max_bulk = bulks[(data[0] >> 2) & 3];
    lim.max_inline = data[0] & 16 ? 16 : 0;
    lim.max_request = data[0] & 32 ? 40 : 0;
    auth = (data[0] & 64) != 0;
    fail = (data[0] & 128) != 0;
    seed = data[1];
    in = (const char *)data + 2;
    n = size - 2;

    /* whole */
    if ((p = sg_resp_new(&lim)) == NULL) abort();
    sg_resp_set_auth_required(p, auth);
    if (sg_resp_feed(p, in, n) != SG_OK) abort();
    rc = drain(p, &whole, 0);
    if (rc == 0) put_size(&whole, sg_resp_buffered(p));
    sg_resp_free(p);

    /* in pieces; maybe one allocation fails on the way */
    if (fail) sg_alloc_fail_at(1 + seed % 16);
    while ((p = sg_resp_new(&lim)) == NULL) {}
    sg_resp_set_auth_required(p, auth);
    rc = 0;
    while (at < n && rc >= 0) {
        size_t len;
        seed = seed * 1103515245u + 12345u;
        len = 1 + (seed >> 8) % (seed & 0x100 ? 3 : 64);
        if (len > n - at) len = n - at;
        if (k++ & 1) {
            size_t avail;
            char *dst;
            while ((dst = sg_resp_space(p, len, &avail)) == NULL)
                if (sg_errcode(p) != SG_ENOMEM) goto done;
            if (avail < len) abort();
            memcpy(dst, in + at, len);
            sg_resp_commit(p, len);
        } else {
            while ((rc = sg_resp_feed(p, in + at, len)) != SG_OK)
                if (rc != SG_ENOMEM) goto done;
        }
        at += len;
        rc = drain(p, &pieces, 1);
    }
    if (n == 0) rc = drain(p, &pieces, 1);
done:
    if (rc == 0) put_size(&pieces, sg_resp_buffered(p));
    sg_resp_free(p);
    sg_alloc_fail_at(0);

    if (whole.n != pieces.n || (whole.n && memcmp(whole.s, pieces.s, whole.n) != 0))
        abort();
    free(whole.s);
    free(pieces.s);
    return 0;
}
