/*
 * ut_hash.c — Tyk's key hashes: the digests against vectors from an
 * independent Python reference (tests/data/hash-vectors.h, made by
 * tools/hash_vectors.py: every tail length of both MurmurHash3 variants, NUL
 * and high bytes), Tyk's own "hello" vectors, the argument checks of
 * sg_hash_hex, algorithm names, and Tyk's rule for which algorithm a token
 * uses, with its allocation failures.
 */
#include "sg_internal.h"
#include "slotgate.h"
#include "test.h"

#include "../data/hash-vectors.h"

#define LIT(s) (s), (sizeof(s) - 1) /* a string literal and its length */

static const int algos[] = {SG_HASH_MURMUR32, SG_HASH_MURMUR64, SG_HASH_MURMUR128,
                            SG_HASH_SHA256};

static void test_tyk_hello(void) {
    char out[SG_HASH_HEX_MAX];
    CHECK_INT(sg_hash_hex(SG_HASH_MURMUR32, LIT("hello"), out, sizeof out), 8);
    CHECK_STR(out, "248bfa47");
    CHECK_INT(sg_hash_hex(SG_HASH_MURMUR64, LIT("hello"), out, sizeof out), 16);
    CHECK_STR(out, "cbd8a7b341bd9b02");
    CHECK_INT(sg_hash_hex(SG_HASH_MURMUR128, LIT("hello"), out, sizeof out), 32);
    CHECK_STR(out, "cbd8a7b341bd9b025b1e906a48ae1d19");
    CHECK_INT(sg_hash_hex(SG_HASH_SHA256, LIT("hello"), out, sizeof out), 64);
    CHECK_STR(out, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

static void test_vectors(void) {
    size_t i, a;
    char out[SG_HASH_HEX_MAX];
    for (i = 0; i < sizeof hash_vectors / sizeof hash_vectors[0]; i++) {
        for (a = 0; a < 4; a++) {
            int n = sg_hash_hex(algos[a], hash_vectors[i].input, hash_vectors[i].len, out,
                                sizeof out);
            CHECK_INT(n, (int)strlen(hash_vectors[i].hex[a]));
            if (strcmp(out, hash_vectors[i].hex[a]) != 0)
                fprintf(stderr, "  vector %s, algo %zu\n", hash_vectors[i].label, a);
            CHECK_STR(out, hash_vectors[i].hex[a]);
        }
    }
    CHECK(i > 40);
}

static void test_published(void) {
    /* Values published with MurmurHash3 implementations (seed 0). */
    char out[SG_HASH_HEX_MAX];
    sg_hash_hex(SG_HASH_MURMUR32, LIT("test"), out, sizeof out);
    CHECK_STR(out, "ba6bd213");
    sg_hash_hex(SG_HASH_MURMUR32, LIT("Hello, world!"), out, sizeof out);
    CHECK_STR(out, "c0363e43");
    sg_hash_hex(SG_HASH_MURMUR128, LIT("The quick brown fox jumps over the lazy dog"), out,
                sizeof out);
    CHECK_STR(out, "e34bbc7bbc071b6c7a433ca9c49a9347");
}

static void test_arguments(void) {
    char out[SG_HASH_HEX_MAX + 1]; /* one more, to see nothing is written past */
    static const size_t need[] = {9, 17, 33, 65};
    size_t a;
    /* Empty input: NULL is fine with no bytes. */
    CHECK_INT(sg_hash_hex(SG_HASH_MURMUR32, NULL, 0, out, sizeof out), 8);
    CHECK_STR(out, "00000000");
    CHECK_INT(sg_hash_hex(SG_HASH_SHA256, NULL, 0, out, sizeof out), 64);
    CHECK_STR(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_INT(sg_hash_hex(SG_HASH_MURMUR32, NULL, 3, out, sizeof out), SG_EINVAL);
    CHECK_INT(sg_hash_hex(SG_HASH_MURMUR32, LIT("x"), NULL, 9), SG_EINVAL);
    CHECK_INT(sg_hash_hex(-1, LIT("x"), out, sizeof out), SG_EINVAL);
    CHECK_INT(sg_hash_hex(4, LIT("x"), out, sizeof out), SG_EINVAL);
    /* The exact size fits; one less is refused without touching out. */
    for (a = 0; a < 4; a++) {
        memset(out, '#', sizeof out);
        CHECK_INT(sg_hash_hex(algos[a], LIT("hello"), out, need[a] - 1), SG_EINVAL);
        CHECK_INT(out[0], '#');
        CHECK_INT(sg_hash_hex(algos[a], LIT("hello"), out, need[a]), (int)need[a] - 1);
        CHECK_INT(out[need[a] - 1], '\0');
        CHECK_INT(out[need[a]], '#');
    }
    CHECK_INT(SG_HASH_HEX_MAX, 65);
}

static void test_names(void) {
    CHECK_INT(sg_hash_algo_from_name("murmur32"), SG_HASH_MURMUR32);
    CHECK_INT(sg_hash_algo_from_name("murmur64"), SG_HASH_MURMUR64);
    CHECK_INT(sg_hash_algo_from_name("murmur128"), SG_HASH_MURMUR128);
    CHECK_INT(sg_hash_algo_from_name("sha256"), SG_HASH_SHA256);
    CHECK_INT(sg_hash_algo_from_name("MURMUR64"), -1);
    CHECK_INT(sg_hash_algo_from_name("murmur"), -1);
    CHECK_INT(sg_hash_algo_from_name(""), -1);
    CHECK_INT(sg_hash_algo_from_name(NULL), -1);
}

/* Tokens as Tyk's GenerateToken makes them: base64.StdEncoding of
 * {"org":...,"id":...,"h":...}, and variations. */
static const struct {
    const char *what, *token;
    int algo;
} tokens[] = {
    {"legacy org+key", "5e9d9544a1dcd60001d0ed20a1b3c4d5", SG_HASH_MURMUR32},
    {"empty", "", SG_HASH_MURMUR32},
    {"just ey", "ey", SG_HASH_MURMUR32},
    {"h murmur64", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiJtdXJtdXI2NCJ9", SG_HASH_MURMUR64},
    {"h murmur128", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiJtdXJtdXIxMjgifQ==",
     SG_HASH_MURMUR128},
    {"h sha256", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiJzaGEyNTYifQ==", SG_HASH_SHA256},
    {"h murmur32", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiJtdXJtdXIzMiJ9", SG_HASH_MURMUR32},
    {"h empty", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiIifQ==", SG_HASH_MURMUR32},
    /* Tyk's hashFunction falls back to murmur64 for a name it lacks. */
    {"h md5", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiJtZDUifQ==", SG_HASH_MURMUR64},
    {"h MURMUR64", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiJNVVJNVVI2NCJ9", SG_HASH_MURMUR64},
    {"h with a NUL", "eyJoIjoic2hhMjU2XHUwMDAwIn0=", SG_HASH_MURMUR64},
    {"no h", "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSJ9", SG_HASH_MURMUR32},
    {"h a number", "eyJoIjoxfQ==", SG_HASH_MURMUR32},
    {"h null", "eyJoIjpudWxsfQ==", SG_HASH_MURMUR32},
    {"h only nested", "eyJ4Ijp7ImgiOiJzaGEyNTYifX0=", SG_HASH_MURMUR32},
    {"nested h, then top h", "eyJ4Ijp7ImgiOiJzaGEyNTYifSwiaCI6Im11cm11cjEyOCJ9",
     SG_HASH_MURMUR128},
    {"first h wins", "eyJoIjoic2hhMjU2IiwiaCI6Im11cm11cjY0In0=", SG_HASH_SHA256},
    {"escaped h value", "eyJoIjoic2hhXHUwMDMyNTYifQ==", SG_HASH_SHA256},
    {"space after brace", "eyAiaCI6InNoYTI1NiJ9", SG_HASH_SHA256},
    {"not JSON", "eyJoIiAic2hhMjU2In0=", SG_HASH_MURMUR32},
    /* Base64 as Go's StdEncoding reads it: '/' and '+' are digits ... */
    {"std with /", "eyJpZCI6Ij8/Pj4iLCJoIjoic2hhMjU2In0=", SG_HASH_SHA256},
    {"std with +", "eyJpZCI6In5+fiIsImgiOiJzaGEyNTYifQ==", SG_HASH_SHA256},
    /* ... the URL-safe '_' and '-' are not, and the padding is required. */
    {"URL-safe _", "eyJpZCI6Ij8_Pj4iLCJoIjoic2hhMjU2In0=", SG_HASH_MURMUR32},
    {"URL-safe -", "eyJpZCI6In5-fiIsImgiOiJzaGEyNTYifQ==", SG_HASH_MURMUR32},
    {"unpadded", "eyJoIjoic2hhMjU2In0", SG_HASH_MURMUR32},
    {"half padded", "eyJpZCI6In5+fiIsImgiOiJzaGEyNTYifQ=", SG_HASH_MURMUR32},
    {"over padded", "eyJoIjoic2hhMjU2In0==", SG_HASH_MURMUR32},
    {"data after padding", "eyJoIjoic2hhMjU2In0=eyJ9", SG_HASH_MURMUR32},
    {"three pads", "eyJoIjoic2hhMjU2In0geA===", SG_HASH_MURMUR32},
    {"bad character", "eyJoIjoic2hhMjU2In0.", SG_HASH_MURMUR32},
    /* Go skips line breaks anywhere in base64. */
    {"line breaks", "eyJoIjoic2hh\r\nMjU2In0=\n", SG_HASH_SHA256},
    {"line break in padding", "eyJpZCI6In5+fiIsImgiOiJzaGEyNTYifQ=\n=", SG_HASH_SHA256},
};

static void test_token_algo(void) {
    size_t i;
    for (i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        int got = sg_tyk_token_hash_algo(tokens[i].token, strlen(tokens[i].token));
        if (got != tokens[i].algo) fprintf(stderr, "  token: %s\n", tokens[i].what);
        CHECK_INT(got, tokens[i].algo);
    }
    CHECK_INT(sg_tyk_token_hash_algo(NULL, 0), SG_HASH_MURMUR32);
    /* The length, not a NUL, ends the token. */
    CHECK_INT(sg_tyk_token_hash_algo(LIT("eyJoIjoic2hhMjU2In0=\0")), SG_HASH_MURMUR32);
    CHECK_INT(sg_tyk_token_hash_algo("eyJoIjoic2hhMjU2In0=xyz", 20), SG_HASH_SHA256);
}

/* Every allocation the token rule makes may fail: it says so, never guesses. */
static void test_token_algo_oom(void) {
    static const char tok[] = "eyJvcmciOiI1ZTlkIiwiaWQiOiJrMSIsImgiOiJzaGEyNTYifQ==";
    unsigned long nth, total;
    int rc;
    sg_alloc_fail_at(0);
    CHECK_INT(sg_tyk_token_hash_algo(LIT(tok)), SG_HASH_SHA256);
    total = sg_alloc_fail_at(0);
    CHECK(total >= 2);
    for (nth = 1; nth <= total; nth++) {
        sg_alloc_fail_at(nth);
        rc = sg_tyk_token_hash_algo(LIT(tok));
        sg_alloc_fail_at(0);
        CHECK_INT(rc, SG_ENOMEM);
    }
    /* No allocation for a legacy token. */
    sg_alloc_fail_at(1);
    CHECK_INT(sg_tyk_token_hash_algo(LIT("5e9d9544a1dcd600")), SG_HASH_MURMUR32);
    sg_alloc_fail_at(0);
}

/* What Tyk stores for a key with hash_keys on: the token's algorithm applied
 * to the whole token. */
static void test_tyk_hash_of_token(void) {
    /* {"org":"5e9d9544a1dcd60001d0ed20","id":"a5c26f42e99444f28a7a87881b3cfb9b",
     *  "h":"murmur64"} */
    static const char tok[] = "eyJvcmciOiI1ZTlkOTU0NGExZGNkNjAwMDFkMGVkMjAiLCJpZCI6ImE1YzI2ZjQy"
                              "ZTk5NDQ0ZjI4YTdhODc4ODFiM2NmYjliIiwiaCI6Im11cm11cjY0In0=";
    char out[SG_HASH_HEX_MAX];
    size_t i;
    int algo = sg_tyk_token_hash_algo(LIT(tok));
    CHECK_INT(algo, SG_HASH_MURMUR64);
    CHECK_INT(sg_hash_hex(algo, LIT(tok), out, sizeof out), 16);
    for (i = 0; i < sizeof hash_vectors / sizeof hash_vectors[0]; i++)
        if (strcmp(hash_vectors[i].label, "b64-token") == 0) break;
    CHECK(i < sizeof hash_vectors / sizeof hash_vectors[0]);
    if (i < sizeof hash_vectors / sizeof hash_vectors[0]) {
        CHECK_INT(hash_vectors[i].len, sizeof tok - 1);
        CHECK(memcmp(hash_vectors[i].input, tok, sizeof tok - 1) == 0);
        CHECK_STR(out, hash_vectors[i].hex[1]);
    }
}

int main(void) {
    RUN(test_tyk_hello);
    RUN(test_vectors);
    RUN(test_published);
    RUN(test_arguments);
    RUN(test_names);
    RUN(test_token_algo);
    RUN(test_token_algo_oom);
    RUN(test_tyk_hash_of_token);
    return test_report();
}
