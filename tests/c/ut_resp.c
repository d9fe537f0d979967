/*
 * ut_resp.c — the daemon's request parser (daemon/resp.c), no server needed.
 *
 * A table of good and bad requests, each fed whole, one byte at a time, split
 * in two at every position and in three at every pair of positions (through
 * sg_resp_feed and through sg_resp_space/commit): every way must give the
 * same requests, the same error and the same bytes left buffered. What a run
 * gave is written as a short text: "[a|b]" a multibulk request, "<a|b>" an
 * inline one, "!msg" an error, "~N" N bytes still buffered; bytes outside
 * 0x20-0x7e and '|' and '\' are written \xHH.
 *
 * The inline quoting cases were checked against redis-server 7.0.15 (each
 * line sent as "RPUSH q <words>" and read back with LRANGE): the expected
 * words are what it stored; the errors are what it replied. Where this parser
 * is stricter than redis, the case says so.
 *
 * Then: limits, the pre-AUTH limits, 10 000 pipelined commands, a bulk length
 * of 2^40, a client that declares a huge bulk or count and sends nothing,
 * resuming without re-reading, compaction on a long-lived connection, and
 * every allocation failing in turn.
 *
 * The parser is compiled into this test (the unit tests link the core only).
 */
#include "../../daemon/resp.c"

#include <time.h>

#include "test.h"

/* ---- running the parser and writing down what it gave ------------------- */

#define DUMP_MAX 8192

typedef struct dump {
    char s[DUMP_MAX];
    size_t n;
} dump;

static void dump_raw(dump *d, const char *s, size_t n) {
    if (d->n + n >= DUMP_MAX) n = DUMP_MAX - 1 - d->n;
    memcpy(d->s + d->n, s, n);
    d->n += n;
    d->s[d->n] = '\0';
}

static void dump_str(dump *d, const char *s) { dump_raw(d, s, strlen(s)); }

static void dump_bytes(dump *d, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '|' || c == '\\') {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            dump_raw(d, e, 4);
        } else {
            dump_raw(d, (const char *)&c, 1);
        }
    }
}

static void dump_num(dump *d, size_t v) {
    char t[32];
    int n = snprintf(t, sizeof t, "%zu", v);
    dump_raw(d, t, (size_t)n);
}

/* The canonical multibulk encoding of a request's arguments. */
static size_t encode(const sg_resp_req *r, char *out, size_t cap) {
    size_t n = 0;
    int i;
    n += (size_t)snprintf(out + n, cap - n, "*%d\r\n", r->argc);
    for (i = 0; i < r->argc && n < cap; i++) {
        n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n", r->argvlen[i]);
        if (n + r->argvlen[i] + 2 > cap) return cap;
        memcpy(out + n, r->argv[i], r->argvlen[i]);
        n += r->argvlen[i];
        memcpy(out + n, "\r\n", 2);
        n += 2;
    }
    return n;
}

static void dump_req(dump *d, const sg_resp_req *r);

/* A request's raw bytes must be the request: a multibulk one is exactly its
 * canonical encoding (the parser accepts nothing else), an inline one is one
 * line that, parsed alone, gives the same arguments. */
static int raw_is_right(const sg_resp_req *r) {
    static char enc[DUMP_MAX];
    if (!r->is_inline) {
        size_t n = encode(r, enc, sizeof enc);
        return n < sizeof enc && n == r->rawlen && memcmp(enc, r->raw, n) == 0;
    } else {
        dump a = {.n = 0}, b = {.n = 0};
        sg_resp *q = sg_resp_new(NULL);
        sg_resp_req r2;
        int ok;
        if (q == NULL) return 0;
        if (r->rawlen == 0 || r->raw[r->rawlen - 1] != '\n' ||
            memchr(r->raw, '\n', r->rawlen - 1) != NULL) {
            sg_resp_free(q);
            return 0;
        }
        dump_req(&a, r);
        ok = sg_resp_feed(q, r->raw, r->rawlen) == SG_OK && sg_resp_next(q, &r2) == 1;
        if (ok) {
            dump_req(&b, &r2);
            ok = strcmp(a.s, b.s) == 0 && sg_resp_buffered(q) == 0;
        }
        sg_resp_free(q);
        return ok;
    }
}

static void dump_req(dump *d, const sg_resp_req *r) {
    int i;
    dump_str(d, r->is_inline ? "<" : "[");
    for (i = 0; i < r->argc; i++) {
        if (i > 0) dump_str(d, "|");
        dump_bytes(d, r->argv[i], r->argvlen[i]);
    }
    dump_str(d, r->is_inline ? ">" : "]");
}

/* Takes every request out of p; stops at "need more" or an error. */
static int drain(sg_resp *p, dump *d) {
    sg_resp_req r;
    int rc;
    while ((rc = sg_resp_next(p, &r)) == 1) {
        dump_req(d, &r);
        if (!raw_is_right(&r)) dump_str(d, "?RAW");
        if (r.argc < 1) dump_str(d, "?ARGC");
    }
    if (rc < 0) {
        dump_str(d, "!");
        dump_str(d, sg_errmsg(p));
        if (sg_errcode(p) != rc) dump_str(d, "?CODE");
    }
    return rc;
}

/* Feeds in[0, n) in pieces ending at cuts[0..ncuts) (then the rest), taking
 * requests out after each; through sg_resp_space/commit when use_space. */
static void run(const char *in, size_t n, const size_t *cuts, size_t ncuts,
                const sg_resp_limits *lim, int use_space, dump *d) {
    sg_resp *p = sg_resp_new(lim);
    size_t at = 0, k;
    int rc = 0;

    d->n = 0;
    d->s[0] = '\0';
    if (p == NULL) {
        dump_str(d, "?NEW");
        return;
    }
    for (k = 0; k <= ncuts && rc >= 0; k++) {
        size_t end = k < ncuts ? cuts[k] : n, len = end - at;
        if (use_space) {
            size_t avail;
            char *dst = sg_resp_space(p, len, &avail);
            if (dst == NULL || avail < len) {
                dump_str(d, "?SPACE");
                break;
            }
            memcpy(dst, in + at, len);
            sg_resp_commit(p, len);
        } else if (sg_resp_feed(p, in + at, len) != SG_OK) {
            dump_str(d, "?FEED");
            break;
        }
        at = end;
        rc = drain(p, d);
    }
    if (rc == 0 && sg_resp_buffered(p) > 0) {
        dump_str(d, "~");
        dump_num(d, sg_resp_buffered(p));
    }
    sg_resp_free(p);
}

/* Runs one input every way; each must give want. */
static void check_every_way(const char *name, const char *in, size_t n,
                            const sg_resp_limits *lim, const char *want) {
    static size_t cuts[1 << 16];
    dump d;
    size_t i, j;
    int bad;

    run(in, n, NULL, 0, lim, 0, &d);
    if (strcmp(d.s, want) != 0)
        TEST_FAIL_("%s, whole: got \"%s\", expected \"%s\"", name, d.s, want);
    test_checks++;

    if (n < sizeof cuts / sizeof cuts[0]) {
        for (i = 0; i < n; i++) cuts[i] = i + 1;
        run(in, n, cuts, n, lim, 0, &d);
        if (strcmp(d.s, want) != 0)
            TEST_FAIL_("%s, byte by byte: got \"%s\", expected \"%s\"", name, d.s, want);
        test_checks++;
    }

    for (bad = 0, i = 1; i < n && !bad; i++) {
        cuts[0] = i;
        run(in, n, cuts, 1, lim, 1, &d);
        if (strcmp(d.s, want) != 0) {
            TEST_FAIL_("%s, split at %zu: got \"%s\", expected \"%s\"", name, i, d.s, want);
            bad = 1;
        }
    }
    test_checks++;

    for (bad = 0, i = 1; n <= 80 && i < n && !bad; i++)
        for (j = i + 1; j < n && !bad; j++) {
            cuts[0] = i;
            cuts[1] = j;
            run(in, n, cuts, 2, lim, (int)(i & 1), &d);
            if (strcmp(d.s, want) != 0) {
                TEST_FAIL_("%s, split at %zu and %zu: got \"%s\", expected \"%s\"",
                           name, i, j, d.s, want);
                bad = 1;
            }
        }
    test_checks++;
}

/* ---- the table ------------------------------------------------------------ */

struct rcase {
    const char *name;
    const char *in;
    size_t len;
    const char *want;
};

#define CASE(name, in, want) {name, in, sizeof(in) - 1, want}
#define E_MBULK "!ERR Protocol error: invalid multibulk length"
#define E_BULK "!ERR Protocol error: invalid bulk length"
#define E_QUOTES "!ERR Protocol error: unbalanced quotes in request"
#define E_CRLF "!ERR Protocol error: bulk argument not followed by CRLF"
#define PING_MB "*1\r\n$4\r\nPING\r\n"

static const struct rcase good[] = {
    /* multibulk */
    CASE("mb ping", PING_MB, "[PING]"),
    CASE("mb set", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", "[SET|k|value]"),
    CASE("mb empty argument", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", "[ECHO|]"),
    CASE("mb binary: NUL, CR, LF inside", "*2\r\n$4\r\nECHO\r\n$6\r\na\0\r\nb\n\r\n",
         "[ECHO|a\\x00\\x0d\\x0ab\\x0a]"),
    CASE("mb argument that looks like RESP", "*2\r\n$4\r\nECHO\r\n$8\r\n*1\r\n$4\r\n\r\n",
         "[ECHO|*1\\x0d\\x0a$4\\x0d\\x0a]"),
    CASE("mb two pipelined", PING_MB "*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", "[PING][ECHO|hi]"),
    CASE("mb ten-byte bulk", "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n", "[GET|0123456789]"),
    CASE("mb *0 skipped", "*0\r\n" PING_MB, "[PING]"),
    CASE("mb negative counts skipped", "*-1\r\n*-10\r\n" PING_MB, "[PING]"),
    CASE("mb count LLONG_MIN skipped", "*-9223372036854775808\r\n" PING_MB, "[PING]"),
    CASE("mb empty lines between", PING_MB "\r\n\r\n\n" PING_MB, "[PING][PING]"),
    CASE("mb then inline", PING_MB "PING\r\n", "[PING]<PING>"),
    CASE("mb cut in data", "*2\r\n$3\r\nGET\r\n$10\r\n01234", "~23"),
    CASE("mb cut in a header", "*1\r\n$4\r", "~7"),
    CASE("mb cut before the final LF", "*1\r\n$4\r\nPING\r", "~13"),
    CASE("mb cut after one of 1000", "*1000\r\n$1\r\na\r\n", "~14"),
    CASE("mb only a star", "*", "~1"),
    CASE("mb the biggest bulk, declared", "*1\r\n$536870912\r\n", "~16"),
    CASE("mb done, then a partial one", PING_MB "*2\r\n$3\r\nGET", "[PING]~11"),
    /* inline */
    CASE("inl PING CRLF", "PING\r\n", "<PING>"),
    CASE("inl PING LF", "PING\n", "<PING>"),
    CASE("inl words", "SET a b\r\n", "<SET|a|b>"),
    CASE("inl blanks and tabs", "  SET\t a   b  \r\n", "<SET|a|b>"),
    CASE("inl double quotes", "SET \"a b\" c\r\n", "<SET|a b|c>"),
    CASE("inl single quotes", "SET 'a b' c\r\n", "<SET|a b|c>"),
    CASE("inl \\n in double quotes", "ECHO \"a\\nb\"\r\n", "<ECHO|a\\x0ab>"),
    CASE("inl \\xHH", "ECHO \"\\x41\\x4a\"\r\n", "<ECHO|AJ>"),
    CASE("inl \\x with one digit", "ECHO \"\\x4\"\r\n", "<ECHO|x4>"),
    CASE("inl \\x not hex", "ECHO \"\\xZZ\"\r\n", "<ECHO|xZZ>"),
    CASE("inl \\x4g", "ECHO \"\\x4g\"\r\n", "<ECHO|x4g>"),
    CASE("inl \\X is not \\x", "ECHO \"\\X41\"\r\n", "<ECHO|X41>"),
    CASE("inl unknown escape", "ECHO \"\\q\"\r\n", "<ECHO|q>"),
    CASE("inl escaped double quote", "ECHO \"a\\\"b\"\r\n", "<ECHO|a\"b>"),
    CASE("inl escaped backslash", "ECHO \"a\\\\b\"\r\n", "<ECHO|a\\x5cb>"),
    CASE("inl \\t \\b \\a \\r", "ECHO \"\\t\\b\\a\\r\"\r\n", "<ECHO|\\x09\\x08\\x07\\x0d>"),
    CASE("inl \\xHH in upper case", "ECHO \"\\x4A\\x6b\"\r\n", "<ECHO|Jk>"),
    CASE("inl single: lone backslash", "ECHO 'a\\b'\r\n", "<ECHO|a\\x5cb>"),
    CASE("inl tab in single quotes", "ECHO 'a\tb'\r\n", "<ECHO|a\\x09b>"),
    CASE("inl \\xff \\x00", "ECHO \"\\xff\\x00\"\r\n", "<ECHO|\\xff\\x00>"),
    CASE("inl single: \\' only", "ECHO 'a\\'b'\r\n", "<ECHO|a'b>"),
    CASE("inl single: \\n literal", "ECHO 'a\\nb'\r\n", "<ECHO|a\\x5cnb>"),
    CASE("inl single: \\\" literal", "ECHO 'a\\\"b'\r\n", "<ECHO|a\\x5c\"b>"),
    CASE("inl quote inside a word", "ECHO a\"b c\" d\r\n", "<ECHO|ab c|d>"),
    CASE("inl empty double quotes", "ECHO \"\"\r\n", "<ECHO|>"),
    CASE("inl empty single quotes", "ECHO ''\r\n", "<ECHO|>"),
    CASE("inl empty word between", "ECHO x \"\" y\r\n", "<ECHO|x||y>"),
    CASE("inl two quoted words", "ECHO \"a\" \"b\"\r\n", "<ECHO|a|b>"),
    CASE("inl \\v inside a word", "ECHO a\vb\r\n", "<ECHO|a\\x0bb>"),
    CASE("inl \\v before a word", "ECHO a \vb\r\n", "<ECHO|a|b>"),
    CASE("inl \\v ending a word", "ECHO a\v\r\n", "<ECHO|a\\x0b>"),
    CASE("inl \\v after a quote", "ECHO \"a\"\vb\r\n", "<ECHO|a|b>"),
    CASE("inl \\f inside a word", "ECHO a\fb\r\n", "<ECHO|a\\x0cb>"),
    CASE("inl tab in quotes", "ECHO \"a\tb\"\r\n", "<ECHO|a\\x09b>"),
    CASE("inl CR splits words", "ECHO a\rb\r\n", "<ECHO|a|b>"),
    CASE("inl CR in quotes", "ECHO \"a\rb\"\r\n", "<ECHO|a\\x0db>"),
    CASE("inl backslash outside quotes", "ECHO a\\b\r\n", "<ECHO|a\\x5cb>"),
    CASE("inl bytes above 0x7f", "ECHO \xc3\xa9 \xff\r\n", "<ECHO|\\xc3\\xa9|\\xff>"),
    CASE("inl garbage bytes are a command", "\xff\xfe\x01\r\n", "<\\xff\\xfe\\x01>"),
    CASE("inl PING CR CR LF", "PING\r\r\n", "<PING>"),
    CASE("inl blank lines skipped", "   \r\n\t\n\r\n\nPING\r\n", "<PING>"),
    CASE("inl \\v \\f line skipped", "\v\f\r\nPING\r\n", "<PING>"),
    CASE("inl a star after a blank", " *1\r\n", "<*1>"),
    CASE("inl no LF yet", "SET a", "~5"),
    CASE("inl mixed pipeline", "PING\r\n" PING_MB "ECHO 'x y'\n", "<PING>[PING]<ECHO|x y>"),
};

static const struct rcase bads[] = {
    /* counts: redis's string2ll rules, then the limit */
    CASE("count leading zero", "*01\r\n", E_MBULK),
    CASE("count +1", "*+1\r\n", E_MBULK),
    CASE("count empty", "*\r\n", E_MBULK),
    CASE("count -0", "*-0\r\n", E_MBULK),
    CASE("count minus alone", "*-\r\n", E_MBULK),
    CASE("count then space", "*1 \r\n", E_MBULK),
    CASE("count 1-", "*1-\r\n", E_MBULK),
    CASE("count not a number", "*x\r\n", E_MBULK),
    /* redis 7 allows up to INT_MAX; the default here is 1024*1024 (redis 6) */
    CASE("count 2000000 (over 1024*1024)", "*2000000\r\n", E_MBULK),
    CASE("count 3000000000", "*3000000000\r\n", E_MBULK),
    CASE("count beyond long long", "*99999999999999999999\r\n", E_MBULK),
    /* redis takes any byte after the CR; this parser wants LF */
    CASE("count CR without LF", "*1\rX", E_MBULK),
    /* bulk lengths */
    CASE("bulk -1", "*1\r\n$-1\r\n", E_BULK),
    CASE("bulk leading zero", "*1\r\n$04\r\nPING\r\n", E_BULK),
    CASE("bulk +4", "*1\r\n$+4\r\n", E_BULK),
    CASE("bulk empty", "*1\r\n$\r\n", E_BULK),
    CASE("bulk control byte", "*1\r\n$\x01\r\n", E_BULK),
    CASE("bulk over 512 MB", "*1\r\n$536870913\r\n", E_BULK),
    CASE("bulk 2^40", "*1\r\n$1099511627776\r\n", E_BULK),
    CASE("bulk beyond long long", "*1\r\n$99999999999999999999\r\n", E_BULK),
    CASE("bulk CR without LF", "*1\r\n$4\rX", E_BULK),
    CASE("expected $, got f", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
         "!ERR Protocol error: expected '$', got 'f'"),
    CASE("expected $, got CR", "*1\r\n\r\n", "!ERR Protocol error: expected '$', got ' '"),
    CASE("expected $, got NUL", "*1\r\n\0", "!ERR Protocol error: expected '$', got ' '"),
    CASE("expected $, got X", "*1\r\nX", "!ERR Protocol error: expected '$', got 'X'"),
    /* redis skips the two bytes after a bulk unseen; this parser wants CRLF */
    CASE("bulk then xx", "*1\r\n$4\r\nPINGxx", E_CRLF),
    CASE("bulk then CR x", "*1\r\n$4\r\nPING\rx", E_CRLF),
    CASE("bulk then LF LF", "*1\r\n$4\r\nPING\n\n", E_CRLF),
    CASE("bulk shorter than said", PING_MB "*1\r\n$2\r\nPING\r\n", "[PING]" E_CRLF),
    /* inline quoting, as redis-server replies */
    CASE("unclosed double quote", "ECHO \"abc\r\n", E_QUOTES),
    CASE("unclosed single quote", "ECHO 'abc\r\n", E_QUOTES),
    CASE("double quote then a byte", "ECHO \"a\"b\r\n", E_QUOTES),
    CASE("single quote then a byte", "ECHO 'a'b\r\n", E_QUOTES),
    CASE("quote inside a word, then a byte", "ECHO a\"b c\"d\r\n", E_QUOTES),
    CASE("backslash before the end", "ECHO \"a\\\r\n", E_QUOTES),
    CASE("a lone double quote", "ECHO \"\r\n", E_QUOTES),
    CASE("single: \\\\' still escapes the quote", "ECHO 'a\\\\'\r\n", E_QUOTES),
    CASE("a lone single quote", "ECHO '\r\n", E_QUOTES),
    /* redis waits forever for a LF its strchr() cannot see */
    CASE("NUL in an inline request", "PING\0\r\n",
         "!ERR Protocol error: NUL byte in inline request"),
    CASE("good, then garbage count", "PING\r\n*x\r\n", "<PING>" E_MBULK),
};

static void test_table(void) {
    size_t i, ngood = sizeof good / sizeof good[0], nbad = sizeof bads / sizeof bads[0];
    for (i = 0; i < ngood; i++)
        check_every_way(good[i].name, good[i].in, good[i].len, NULL, good[i].want);
    for (i = 0; i < nbad; i++)
        check_every_way(bads[i].name, bads[i].in, bads[i].len, NULL, bads[i].want);
    printf("table: %zu good cases, %zu bad, each fed every way\n", ngood, nbad);
    CHECK(ngood + nbad >= 60);
    CHECK(nbad * 3 >= ngood + nbad);
}

/* ---- limits ----------------------------------------------------------------- */

struct lcase {
    const char *name;
    sg_resp_limits lim;
    const char *in;
    size_t len;
    const char *want;
};

#define LCASE(name, args, bulk, inl, req, in, want)                            \
    {name, {args, bulk, inl, req}, in, sizeof(in) - 1, want}

static const struct lcase limit_cases[] = {
    LCASE("3 args allowed", 3, 0, 0, 0, "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", "[a|b|c]"),
    LCASE("4 args refused", 3, 0, 0, 0, "*4\r\n", E_MBULK),
    LCASE("3 inline words allowed", 3, 0, 0, 0, "a b c\r\n", "<a|b|c>"),
    LCASE("4 inline words refused", 3, 0, 0, 0, "a b c d\r\n",
          "!ERR Protocol error: too many arguments in inline request"),
    LCASE("5-byte bulk allowed", 0, 5, 0, 0, "*1\r\n$5\r\nabcde\r\n", "[abcde]"),
    LCASE("6-byte bulk refused", 0, 5, 0, 0, "*1\r\n$6\r\n", E_BULK),
    LCASE("8-byte line allowed", 0, 0, 8, 0, "12345678\n", "<12345678>"),
    LCASE("7 bytes and CR allowed", 0, 0, 8, 0, "1234567\r\n", "<1234567>"),
    LCASE("9-byte line refused", 0, 0, 8, 0, "123456789\n",
          "!ERR Protocol error: too big inline request"),
    LCASE("9 bytes, no LF yet, refused", 0, 0, 8, 0, "123456789",
          "!ERR Protocol error: too big inline request"),
    LCASE("8 bytes, no LF yet, waiting", 0, 0, 8, 0, "12345678", "~8"),
    LCASE("30-byte request allowed", 0, 0, 0, 30,
          "*2\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n", "[SET|0123456789]"),
    LCASE("32-byte request refused at its header", 0, 0, 0, 30,
          "*2\r\n$3\r\nSET\r\n$12\r\n",
          "!ERR Protocol error: request bigger than 30 bytes"),
    LCASE("10-byte inline request allowed", 0, 0, 0, 10, "123456789\n", "<123456789>"),
    LCASE("11-byte inline request refused", 0, 0, 0, 10, "1234567890\n",
          "!ERR Protocol error: too big inline request"),
};

static void test_limits(void) {
    size_t i;
    sg_resp_limits d;
    for (i = 0; i < sizeof limit_cases / sizeof limit_cases[0]; i++) {
        const struct lcase *c = &limit_cases[i];
        check_every_way(c->name, c->in, c->len, &c->lim, c->want);
    }
    sg_resp_limits_default(&d);
    CHECK_INT(d.max_args, 1024 * 1024);
    CHECK_INT(d.max_bulk, 512 * 1024 * 1024);
    CHECK_INT(d.max_inline, 64 * 1024);
    CHECK_INT(d.max_request, 1024 * 1024 * 1024);
}

/* The 64 KB inline limit, as redis counts it: bytes before the LF. */
static void test_inline_64k(void) {
    size_t n = 64 * 1024;
    char *line = malloc(n + 3);
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;

    memset(line, 'a', n + 3);
    line[n] = '\n';
    CHECK_INT(sg_resp_feed(p, line, n + 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argc, 1);
    CHECK_INT(r.argvlen[0], n);
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    line[n - 1] = '\r';
    line[n] = '\n';
    CHECK_INT(sg_resp_feed(p, line, n + 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argvlen[0], n - 1);
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    line[n] = '\r';
    line[n + 1] = '\n';
    CHECK_INT(sg_resp_feed(p, line, n + 2), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_STR(sg_errmsg(p), "ERR Protocol error: too big inline request");
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    memset(line, 'a', n + 1);
    CHECK_INT(sg_resp_feed(p, line, n), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK_INT(sg_resp_feed(p, line, 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_STR(sg_errmsg(p), "ERR Protocol error: too big inline request");
    sg_resp_free(p);
    free(line);
}

/* Redis's limits before AUTH, and after. */
static void test_auth_limits(void) {
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;
    static const char ten[] = "*10\r\n";
    char big[64];
    int n;

    sg_resp_set_auth_required(p, 1);
    CHECK_INT(sg_resp_feed(p, ten, sizeof ten - 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    sg_resp_set_auth_required(p, 1);
    CHECK_INT(sg_resp_feed(p, "*11\r\n", 5), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_STR(sg_errmsg(p), "ERR Protocol error: unauthenticated multibulk length");
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    sg_resp_set_auth_required(p, 1);
    n = snprintf(big, sizeof big, "*1\r\n$16384\r\n");
    CHECK_INT(sg_resp_feed(p, big, (size_t)n), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    sg_resp_set_auth_required(p, 1);
    n = snprintf(big, sizeof big, "*2\r\n$4\r\nAUTH\r\n$16385\r\n");
    CHECK_INT(sg_resp_feed(p, big, (size_t)n), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_STR(sg_errmsg(p), "ERR Protocol error: unauthenticated bulk length");
    sg_resp_free(p);

    /* AUTH, then the client may send more */
    p = sg_resp_new(NULL);
    sg_resp_set_auth_required(p, 1);
    CHECK_INT(sg_resp_feed(p, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*11\r\n", 27), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argc, 2);
    sg_resp_set_auth_required(p, 0);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK_INT(sg_resp_buffered(p), 5);
    sg_resp_free(p);
}

/* ---- pipelines, big claims, resuming, memory ------------------------------ */

#define NPIPE 10000

/* 10 000 commands in one buffer (every tenth inline), fed in one piece and
 * then in 4 KB reads; each comes out, in order, with its raw bytes. */
static void test_pipeline_10000(void) {
    size_t cap = NPIPE * 64, n = 0, k;
    char *in = malloc(cap);
    int mode;

    for (k = 0; k < NPIPE; k++) {
        char key[32], val[32];
        int kl = snprintf(key, sizeof key, "key:%zu", k);
        int vl = snprintf(val, sizeof val, "val:%zu", k * 7);
        if (k % 10 == 9)
            n += (size_t)snprintf(in + n, cap - n, "SET %s \"%s\"\r\n", key, val);
        else
            n += (size_t)snprintf(in + n, cap - n, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
                                  kl, key, vl, val);
    }
    for (mode = 0; mode < 2; mode++) {
        sg_resp *p = sg_resp_new(NULL);
        sg_resp_req r;
        size_t got = 0, at = 0, rawsum = 0, maxmem = 0;
        int rc, bad = 0;

        if (mode == 0) CHECK_INT(sg_resp_feed(p, in, n), SG_OK);
        for (;;) {
            if (mode == 1 && at < n) {
                size_t avail, len = n - at < 4096 ? n - at : 4096;
                char *dst = sg_resp_space(p, 4096, &avail);
                memcpy(dst, in + at, len);
                sg_resp_commit(p, len);
                at += len;
            }
            while ((rc = sg_resp_next(p, &r)) == 1) {
                char key[32], val[32];
                int kl = snprintf(key, sizeof key, "key:%zu", got);
                int vl = snprintf(val, sizeof val, "val:%zu", got * 7);
                if (r.argc != 3 || r.argvlen[1] != (size_t)kl ||
                    memcmp(r.argv[1], key, (size_t)kl) != 0 || r.argvlen[2] != (size_t)vl ||
                    memcmp(r.argv[2], val, (size_t)vl) != 0 ||
                    r.is_inline != (got % 10 == 9) || !raw_is_right(&r))
                    bad++;
                rawsum += r.rawlen;
                got++;
            }
            if (sg_resp_memory(p) > maxmem) maxmem = sg_resp_memory(p);
            if (rc != 0 || mode == 0 || at == n) break;
        }
        CHECK_INT(rc, 0);
        CHECK_INT(got, NPIPE);
        CHECK_INT(bad, 0);
        CHECK_INT(rawsum, n); /* the raw bytes cover the input exactly */
        CHECK_INT(sg_resp_buffered(p), 0);
        if (mode == 1) CHECK(maxmem < 16 * 1024);
        sg_resp_free(p);
    }
    free(in);
}

/* A bulk length of 2^40: refused by the bulk limit; with that limit lifted,
 * by the request limit; with both lifted, it waits, holding almost nothing. */
static void test_bulk_2_40(void) {
    static const char in[] = "*1\r\n$1099511627776\r\n";
    sg_resp_limits lim = {0};
    sg_resp *p;
    sg_resp_req r;

    p = sg_resp_new(NULL);
    CHECK_INT(sg_resp_feed(p, in, sizeof in - 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_INT(sg_errcode(p), SG_EPROTO);
    CHECK_STR(sg_errmsg(p), "ERR Protocol error: invalid bulk length");
    sg_resp_free(p);

    lim.max_bulk = SIZE_MAX;
    p = sg_resp_new(&lim);
    CHECK_INT(sg_resp_feed(p, in, sizeof in - 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_STR(sg_errmsg(p), "ERR Protocol error: request bigger than 1073741824 bytes");
    sg_resp_free(p);

    lim.max_request = SIZE_MAX;
    p = sg_resp_new(&lim);
    sg_alloc_fail_at(0);
    CHECK_INT(sg_resp_feed(p, in, sizeof in - 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK(sg_alloc_fail_at(0) <= 4);
    CHECK(sg_resp_memory(p) < 2048);
    sg_resp_free(p);
}

/* A client declares a 512 MB bulk (or a million arguments) and sends nothing
 * more, or sends slowly: memory follows what arrives. */
static void test_huge_claims(void) {
    static const char set[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n";
    static const char count[] = "*1048576\r\n$1\r\na\r\n";
    static char chunk[16 * 1024];
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;
    unsigned long allocs;
    int i;

    sg_alloc_fail_at(0);
    CHECK_INT(sg_resp_feed(p, set, sizeof set - 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    allocs = sg_alloc_fail_at(0);
    CHECK(allocs <= 4);
    CHECK_INT(sg_resp_buffered(p), sizeof set - 1);
    CHECK(sg_resp_memory(p) < 2048);
    CHECK_INT(sg_resp_next(p, &r), 0); /* asking again changes nothing */
    CHECK(sg_resp_memory(p) < 2048);

    /* 1 MB of it arrives in 16 KB reads: the buffer follows */
    memset(chunk, 'x', sizeof chunk);
    for (i = 0; i < 64; i++) {
        size_t avail;
        char *dst = sg_resp_space(p, sizeof chunk, &avail);
        memcpy(dst, chunk, sizeof chunk);
        sg_resp_commit(p, sizeof chunk);
        CHECK_INT(sg_resp_next(p, &r), 0);
    }
    CHECK_INT(sg_resp_buffered(p), sizeof set - 1 + 64 * sizeof chunk);
    CHECK(sg_resp_memory(p) <= 2 * 1024 * 1024 + 4096);
    CHECK(sg_resp_memory(p) >= 1024 * 1024);
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    CHECK_INT(sg_resp_feed(p, count, sizeof count - 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK(sg_resp_memory(p) < 2048);
    CHECK(p->argcap <= FIRST_ARGS);
    sg_resp_free(p);
}

/* Resuming: a parse that stopped keeps its place. White-box: the state says
 * where the next call starts; and a 2 MB bulk fed one byte at a time takes
 * time in proportion to its size. */
static void test_resume(void) {
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;
    size_t n = 2 * 1024 * 1024, i;
    char hdr[64];
    int hl;
    clock_t t0;
    char *line;

    CHECK_INT(sg_resp_feed(p, "SET aaaa bbbb", 13), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK_INT(p->state, ST_INLINE);
    CHECK_INT(p->pos, 13); /* the LF is looked for from here on */
    CHECK_INT(sg_resp_feed(p, "\r\n", 2), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argc, 3);
    sg_resp_free(p);

    p = sg_resp_new(NULL);
    hl = snprintf(hdr, sizeof hdr, "*2\r\n$3\r\nSET\r\n$%zu\r\n", n);
    CHECK_INT(sg_resp_feed(p, hdr, (size_t)hl), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK_INT(p->state, ST_BULK_DATA);
    CHECK_INT(p->pos, hl);
    CHECK_INT(p->argc, 1);
    t0 = clock();
    for (i = 0; i < n; i++) {
        char c = (char)('a' + i % 26);
        if (sg_resp_feed(p, &c, 1) != SG_OK || sg_resp_next(p, &r) != 0) break;
    }
    CHECK_INT(i, n);
    CHECK_INT(p->pos, hl); /* still waiting at the bulk's start */
    CHECK_INT(sg_resp_feed(p, "\r", 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK_INT(sg_resp_feed(p, "\n", 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argc, 2);
    CHECK_INT(r.argvlen[1], n);
    CHECK(r.argv[1][0] == 'a' && r.argv[1][n - 1] == (char)('a' + (n - 1) % 26));
    CHECK_INT(r.rawlen, (size_t)hl + n + 2);
    CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 10.0);
    sg_resp_free(p);

    /* a 60 KB inline line, one byte at a time */
    p = sg_resp_new(NULL);
    line = malloc(60 * 1024);
    memset(line, 'w', 60 * 1024);
    for (i = 0; i < 60 * 1024; i++) {
        if (sg_resp_feed(p, line + i, 1) != SG_OK || sg_resp_next(p, &r) != 0) break;
        if (p->pos != i + 1) break;
    }
    CHECK_INT(i, 60 * 1024);
    CHECK_INT(sg_resp_feed(p, "\n", 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argvlen[0], 60 * 1024);
    free(line);
    sg_resp_free(p);
}

/* A long-lived connection: 200 000 requests in reads of random sizes; the
 * parser's memory stays small. After one big request it shrinks back. */
static void test_compaction(void) {
    static const char cmd[] = "*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n";
    size_t clen = sizeof cmd - 1, total = 200000, sent = 0, got = 0, maxmem = 0;
    size_t at = 0; /* offset in the endless stream of cmd */
    unsigned seed = 12345;
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;
    char *big;
    size_t bign = 1024 * 1024;
    int rc, hl;

    while (got < total) {
        size_t len = 1 + (seed = seed * 1103515245u + 12345u) % 5000, avail, i;
        char *dst = sg_resp_space(p, 4096, &avail);
        if (len > avail) len = avail;
        if (sent + len > total * clen) len = total * clen - sent;
        for (i = 0; i < len; i++) {
            dst[i] = cmd[at];
            at = (at + 1) % clen;
        }
        sg_resp_commit(p, len);
        sent += len;
        while ((rc = sg_resp_next(p, &r)) == 1) got++;
        if (rc != 0) break;
        if (sg_resp_memory(p) > maxmem) maxmem = sg_resp_memory(p);
    }
    CHECK_INT(got, total);
    CHECK_INT(sg_resp_buffered(p), 0);
    CHECK(maxmem < 32 * 1024);

    /* one 1 MB request, then small ones: the buffer goes back down */
    big = malloc(bign + 64);
    hl = snprintf(big, 64, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", bign);
    memset(big + hl, 'z', bign);
    memcpy(big + hl + bign, "\r\n", 2);
    CHECK_INT(sg_resp_feed(p, big, (size_t)hl + bign + 2), SG_OK);
    CHECK_INT(sg_resp_feed(p, cmd, clen), SG_OK);
    CHECK_INT(sg_resp_feed(p, cmd, 10), SG_OK); /* and part of one more */
    CHECK(sg_resp_memory(p) > bign);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argvlen[1], bign);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK(sg_resp_memory(p) < 80 * 1024);
    CHECK_INT(sg_resp_buffered(p), 10);
    CHECK_INT(sg_resp_feed(p, cmd + 10, clen - 10), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argc, 3);
    CHECK_INT(sg_resp_next(p, &r), 0);
    sg_resp_shrink(p); /* idle: nothing held but the parser */
    CHECK_INT(sg_resp_memory(p), sizeof *p);
    CHECK_INT(sg_resp_feed(p, cmd, clen), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);

    /* a big request and nothing after it: its buffer goes at the next call */
    CHECK_INT(sg_resp_feed(p, big, (size_t)hl + bign + 2), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK(sg_resp_memory(p) > bign);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK(sg_resp_memory(p) < 2048);

    /* a 10 KB quoted inline request: its scratch goes likewise */
    memset(big, 'q', 10 * 1024);
    big[0] = '"';
    big[10 * 1024 - 1] = '"';
    big[10 * 1024] = '\n';
    CHECK_INT(sg_resp_feed(p, big, 10 * 1024 + 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argvlen[0], 10 * 1024 - 2);
    CHECK(r.argv[0] == p->scratch);
    CHECK(p->scratchcap >= 10 * 1024);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK_INT(p->scratchcap, 0);
    CHECK(p->cap <= KEEP_BUF); /* a buffer this small is kept */
    free(big);
    sg_resp_free(p);
}

/* Every byte value, and CR LF pairs, inside arguments. */
static void test_binary(void) {
    char in[600], arg[300];
    size_t n = 0, i;
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;

    for (i = 0; i < 256; i++) arg[i] = (char)i;
    memcpy(arg + 256, "\r\n\r\n$3\r\n*1\r\n", 12);
    n = (size_t)snprintf(in, sizeof in, "*3\r\n$3\r\nSET\r\n$2\r\n\r\n\r\n$%d\r\n", 268);
    memcpy(in + n, arg, 268);
    n += 268;
    memcpy(in + n, "\r\n", 2);
    n += 2;
    CHECK_INT(sg_resp_feed(p, in, n), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK_INT(r.argc, 3);
    CHECK_INT(r.argvlen[1], 2);
    CHECK(memcmp(r.argv[1], "\r\n", 2) == 0);
    CHECK_INT(r.argvlen[2], 268);
    CHECK(memcmp(r.argv[2], arg, 268) == 0);
    CHECK(r.raw == r.argv[0] - 8 && r.rawlen == n);
    sg_resp_free(p);

    /* the same, every way */
    {
        dump want = {.n = 0};
        dump_str(&want, "[SET|\\x0d\\x0a|");
        dump_bytes(&want, arg, 268);
        dump_str(&want, "]");
        check_every_way("binary argument", in, n, NULL, want.s);
    }
}

/* Zero-copy: arguments point into the buffer; quoted inline words into the
 * scratch, unquoted ones into the buffer. */
static void test_zero_copy(void) {
    static const char in[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET \"a b\" c\r\n";
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;

    CHECK_INT(sg_resp_feed(p, in, sizeof in - 1), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK(r.argv[0] == p->buf + 8 && r.argv[1] == p->buf + 17);
    CHECK(r.raw == p->buf && r.rawlen == 20);
    CHECK_INT(sg_resp_next(p, &r), 1);
    CHECK(r.raw == p->buf + 20 && r.rawlen == 13);
    CHECK(r.argv[0] == p->buf + 20);
    CHECK(r.argv[1] == p->scratch);
    CHECK(r.argv[2] == p->buf + 30);
    sg_resp_free(p);
}

/* A protocol error is final and says so everywhere; SG_ENOMEM is not. */
static void test_errors(void) {
    sg_resp *p = sg_resp_new(NULL);
    sg_resp_req r;
    size_t avail = 99;

    CHECK_INT(sg_errcode(p), SG_OK);
    CHECK_STR(sg_errmsg(p), "");
    CHECK_INT(sg_resp_next(p, &r), 0); /* nothing yet, not even a buffer */
    CHECK_INT(sg_resp_feed(p, NULL, 0), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 0);
    CHECK_INT(sg_resp_feed(p, "*1\r\n$x\r\n", 8), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_STR(sg_errmsg(p), "ERR Protocol error: invalid bulk length");
    CHECK_INT(sg_resp_feed(p, PING_MB, 14), SG_EPROTO);
    CHECK(sg_resp_space(p, 10, &avail) == NULL);
    CHECK_INT(avail, 0);
    sg_resp_commit(p, 5);
    CHECK_INT(sg_resp_next(p, &r), SG_EPROTO);
    CHECK_INT(sg_errcode(p), SG_EPROTO);
    sg_resp_shrink(p);
    sg_resp_free(p);
    sg_resp_free(NULL);

    /* an out-of-memory feed takes nothing and can be tried again */
    p = sg_resp_new(NULL);
    sg_alloc_fail_at(1);
    CHECK_INT(sg_resp_feed(p, PING_MB, 14), SG_ENOMEM);
    CHECK_INT(sg_errcode(p), SG_ENOMEM);
    CHECK_CONTAINS(sg_errmsg(p), "out of memory");
    CHECK_INT(sg_resp_buffered(p), 0);
    CHECK_INT(sg_resp_feed(p, PING_MB, 14), SG_OK);
    CHECK_INT(sg_errcode(p), SG_OK);
    CHECK_INT(sg_resp_next(p, &r), 1);
    sg_alloc_fail_at(0);
    sg_resp_free(p);

    /* limits may change mid-stream; NULL restores the defaults */
    p = sg_resp_new(NULL);
    {
        sg_resp_limits lim = {0};
        lim.max_args = 1;
        sg_resp_set_limits(p, &lim);
        CHECK_INT(sg_resp_feed(p, PING_MB "*2\r\n", 18), SG_OK);
        CHECK_INT(sg_resp_next(p, &r), 1);
        sg_resp_set_limits(p, NULL);
        CHECK_INT(sg_resp_next(p, &r), 0);
    }
    sg_resp_free(p);
}

/* ---- every allocation failing in turn ------------------------------------ */

/* Requests that make the parser allocate: a buffer that grows over three
 * reads, a multibulk of 100 arguments (the arrays grow 8 → 128), a quoted
 * inline (the scratch), and plain ones. */
static char oom_in[4096];
static size_t oom_len;
static const size_t oom_cuts[] = {10, 500, 815};

static void oom_input(void) {
    int i;
    oom_len = 0;
    oom_len += (size_t)snprintf(oom_in + oom_len, sizeof oom_in - oom_len, "*100\r\n");
    for (i = 0; i < 100; i++)
        oom_len += (size_t)snprintf(oom_in + oom_len, sizeof oom_in - oom_len,
                                    "$2\r\n%02d\r\n", i);
    oom_len +=
        (size_t)snprintf(oom_in + oom_len, sizeof oom_in - oom_len,
                         "SET \"a\\x41 b\" 'c d'\r\nPING\r\n" PING_MB "*2\r\n$3\r\nGET\r\n$");
}

/* One run: with retry, every call that fails with SG_ENOMEM is made again
 * (failures are one-shot); without, the first failure ends the run. */
static void oom_run(int retry, dump *d, int *failures) {
    sg_resp *p = sg_resp_new(NULL);
    size_t at = 0, k, ncuts = sizeof oom_cuts / sizeof oom_cuts[0];
    sg_resp_req r;
    int rc;

    d->n = 0;
    d->s[0] = '\0';
    *failures = 0;
    if (p == NULL) {
        dump_str(d, "?NEW");
        (*failures)++;
        return;
    }
    for (k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? oom_cuts[k] : oom_len;
        if (k == 1) { /* through space/commit */
            size_t avail;
            char *dst;
            while ((dst = sg_resp_space(p, end - at, &avail)) == NULL) {
                (*failures)++;
                if (sg_errcode(p) != SG_ENOMEM || !retry) goto out;
            }
            memcpy(dst, oom_in + at, end - at);
            sg_resp_commit(p, end - at);
        } else {
            while ((rc = sg_resp_feed(p, oom_in + at, end - at)) != SG_OK) {
                (*failures)++;
                if (rc != SG_ENOMEM || !retry) goto out;
            }
        }
        at = end;
        for (;;) {
            rc = sg_resp_next(p, &r);
            if (rc == 1) {
                dump_req(d, &r);
                continue;
            }
            if (rc == SG_ENOMEM) {
                (*failures)++;
                if (sg_errcode(p) != SG_ENOMEM) dump_str(d, "?CODE");
                if (retry) continue;
                goto out;
            }
            if (rc < 0) dump_str(d, "?EPROTO");
            break;
        }
    }
    dump_str(d, "~");
    dump_num(d, sg_resp_buffered(p));
out:
    sg_resp_free(p);
}

static void test_alloc_failures(void) {
    dump want, d;
    unsigned long n, total;
    int failures, retry, mismatches = 0, none = 0;

    oom_input();
    sg_alloc_fail_at(0);
    oom_run(1, &want, &failures);
    total = sg_alloc_fail_at(0);
    CHECK_INT(failures, 0);
    CHECK(total >= 6); /* new, buffer x2+, arrays (x3, several times), scratch */
    CHECK_CONTAINS(want.s, "[00|01|02|");
    CHECK_CONTAINS(want.s, "99]<SET|aA b|c d><PING>[PING]~14");

    for (retry = 0; retry < 2; retry++) {
        for (n = 1; n <= total + 1; n++) {
            sg_alloc_fail_at(n);
            oom_run(retry, &d, &failures);
            if (sg_alloc_fail_at(0) < n) { /* the nth never came */
                none++;
                break;
            }
            /* with retries every run ends as the clean one (or without a
             * parser at all); without, it ends early and leaks nothing */
            if (retry && strcmp(d.s, want.s) != 0 && strcmp(d.s, "?NEW") != 0) {
                if (mismatches++ < 3)
                    TEST_FAIL_("allocation %lu failing: got \"%s\"", n, d.s);
            }
            if (failures != 1) TEST_FAIL_("allocation %lu failing: %d failures", n, failures);
            test_checks++;
        }
    }
    CHECK_INT(mismatches, 0);
    CHECK_INT(none, 2);
    sg_alloc_fail_at(0);
    printf("allocation failures: each of %lu allocations failed in turn, with and "
           "without retries\n", total);
}

/* The writer: a node's RESP3 reply, read by the engine, goes to a RESP2
 * client as Redis writes those types to one (HELLO 2): a map's pairs in an
 * array, a set and a push as arrays, a double, big number and verbatim text
 * as bulk strings, a boolean as 1 or 0, an attribute left out. */
sg_reply *sg_reply_parse(const char *s, size_t len, int *status);
static void test_writer_resp3_to_resp2(void) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n", "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n"},
        {"~2\r\n+x\r\n#t\r\n", "*2\r\n+x\r\n:1\r\n"},
        {">2\r\n$7\r\nmessage\r\n#f\r\n", "*2\r\n$7\r\nmessage\r\n:0\r\n"},
        {",1.5\r\n", "$3\r\n1.5\r\n"},
        {",-inf\r\n", "$4\r\n-inf\r\n"},
        {"(12345678901234567890\r\n", "$20\r\n12345678901234567890\r\n"},
        {"=8\r\ntxt:abcd\r\n", "$4\r\nabcd\r\n"},
        {"|1\r\n+k\r\n+v\r\n:7\r\n", ":7\r\n"},
        {"!5\r\nERR x\r\n", "-ERR x\r\n"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status;
        sg_reply *r = sg_reply_parse(cases[i].in, strlen(cases[i].in), &status);
        sg_resp_out o;
        memset(&o, 0, sizeof o);
        CHECK(r != NULL);
        if (r == NULL) continue;
        sg_resp_put_reply(&o, r);
        sg_buf_append(&o.buf, "", 1);
        CHECK_STR(o.buf.data, cases[i].out);
        sg_buf_free(&o.buf);
        sg_reply_free(r);
    }
}

/* The same trees to a RESP3 client: as the node sent them, byte for byte;
 * and the writer's own RESP3 forms against RESP2's. */
static void test_writer_resp3(void) {
    static const char *const same[] = {
        "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n",
        "~2\r\n+x\r\n#t\r\n",
        ">2\r\n$7\r\nmessage\r\n#f\r\n",
        ",1.5\r\n",
        ",-inf\r\n",
        "(12345678901234567890\r\n",
        "=8\r\ntxt:abcd\r\n",
        "|1\r\n+k\r\n+v\r\n:7\r\n",
        "*2\r\n$0\r\n\r\n-ERR x\r\n",
    };
    size_t i;
    sg_resp_out o2, o3;
    for (i = 0; i < sizeof same / sizeof *same; i++) {
        int status;
        sg_reply *r = sg_reply_parse(same[i], strlen(same[i]), &status);
        sg_resp_out o;
        memset(&o, 0, sizeof o);
        o.proto = SG_RESP_PROTO_3;
        CHECK(r != NULL);
        if (r == NULL) continue;
        sg_resp_put_reply(&o, r);
        sg_buf_append(&o.buf, "", 1);
        CHECK_STR(o.buf.data, same[i]);
        sg_buf_free(&o.buf);
        sg_reply_free(r);
    }
    memset(&o2, 0, sizeof o2);
    memset(&o3, 0, sizeof o3);
    o3.proto = SG_RESP_PROTO_3;
    for (i = 0; i < 2; i++) {
        sg_resp_out *o = i ? &o3 : &o2;
        sg_resp_put_map(o, 1);
        sg_resp_put_bulk(o, "k", 1);
        sg_resp_put_null(o);
        sg_resp_put_null_array(o);
        sg_resp_put_set(o, 0);
        sg_resp_put_push(o, 0);
        sg_resp_put_double(o, 0.1);
        sg_resp_put_double(o, -1.0 / 0.0);
        sg_resp_put_bool(o, 1);
        sg_resp_put_verbatim(o, "a\nb", 3);
        sg_buf_append(&o->buf, "", 1);
    }
    CHECK_STR(o2.buf.data, "*2\r\n$1\r\nk\r\n$-1\r\n*-1\r\n*0\r\n*0\r\n"
                           "$19\r\n0.10000000000000001\r\n$4\r\n-inf\r\n:1\r\n$3\r\na\nb\r\n");
    CHECK_STR(o3.buf.data, "%1\r\n$1\r\nk\r\n_\r\n_\r\n~0\r\n>0\r\n"
                           ",0.10000000000000001\r\n,-inf\r\n#t\r\n=7\r\ntxt:a\nb\r\n");
    sg_buf_free(&o2.buf);
    sg_buf_free(&o3.buf);
}

int main(void) {
    RUN(test_table);
    RUN(test_limits);
    RUN(test_inline_64k);
    RUN(test_auth_limits);
    RUN(test_pipeline_10000);
    RUN(test_bulk_2_40);
    RUN(test_huge_claims);
    RUN(test_resume);
    RUN(test_compaction);
    RUN(test_binary);
    RUN(test_zero_copy);
    RUN(test_errors);
    RUN(test_alloc_failures);
    RUN(test_writer_resp3_to_resp2);
    RUN(test_writer_resp3);
    return test_report();
}
