/*
 * ut_slots.c — the key → slot rule: CRC16-XMODEM vectors, the hash-tag
 * branches of keyHashSlot, binary keys, and a table of key → slot pairs
 * checked against a live Redis 7.0.15 (`CLUSTER KEYSLOT` on a
 * cluster-enabled node) when this table was written.
 */
#include "slotgate.h"
#include "test.h"

#define LIT(s) (s), (sizeof(s) - 1) /* a string literal and its length */

static void test_crc16_vectors(void) {
    /* The standard check value of CRC16-XMODEM. */
    CHECK_INT(sg_crc16(LIT("123456789")), 0x31C3);
    CHECK_INT(sg_crc16("", 0), 0);
    CHECK_INT(sg_crc16(NULL, 0), 0);
    /* One zero byte keeps the CRC at zero (no initial value, no final xor). */
    CHECK_INT(sg_crc16(LIT("\0")), 0);
    /* The slot is the CRC masked to 14 bits. */
    CHECK_INT(sg_keyslot(LIT("123456789")), 0x31C3 & 16383);
}

static void test_hash_tags(void) {
    unsigned bar = sg_keyslot(LIT("bar"));

    /* Keys with the same tag share a slot, the tag's own slot. */
    CHECK_INT(sg_keyslot(LIT("{user1000}.following")),
              sg_keyslot(LIT("{user1000}.followers")));
    CHECK_INT(sg_keyslot(LIT("{user1000}.following")),
              sg_keyslot(LIT("user1000")));
    /* "{}" is an empty tag: the whole key is hashed; later braces don't
     * count, only the first '{'. */
    CHECK_INT(sg_keyslot(LIT("foo{}{bar}")),
              sg_crc16(LIT("foo{}{bar}")) & 16383);
    CHECK(sg_keyslot(LIT("foo{}{bar}")) != bar);
    /* The tag runs from the first '{' to the next '}': "{bar". */
    CHECK_INT(sg_keyslot(LIT("foo{{bar}}zap")), sg_keyslot(LIT("{bar")));
    CHECK_INT(sg_keyslot(LIT("foo{{bar}}zap")),
              sg_crc16(LIT("{bar")) & 16383);
    /* Only the first tag counts. */
    CHECK_INT(sg_keyslot(LIT("foo{bar}{zap}")), bar);
    /* No '}' after the '{': whole key. */
    CHECK_INT(sg_keyslot(LIT("a{b")), sg_crc16(LIT("a{b")) & 16383);
    /* A '}' before the '{' does not close it. */
    CHECK_INT(sg_keyslot(LIT("a}b{c}")), sg_keyslot(LIT("c")));
}

static void test_empty_and_binary(void) {
    CHECK_INT(sg_keyslot("", 0), 0);
    CHECK_INT(sg_keyslot(NULL, 0), 0);
    /* NUL bytes are ordinary bytes: the length, not a terminator, ends the
     * key. */
    CHECK(sg_keyslot(LIT("a\0b")) != sg_keyslot(LIT("a")));
    CHECK_INT(sg_keyslot(LIT("{a\0b}x")), sg_keyslot(LIT("a\0b")));
    CHECK_INT(sg_keyslot(LIT("x{\0}")), 0); /* tag is one NUL byte */
}

/* Key → slot pairs answered by redis-server 7.0.15 `CLUSTER KEYSLOT`. */
static const struct {
    const char *key;
    size_t len;
    unsigned slot;
} known[] = {
    {"", 0, 0},
    {"a", 1, 15495},
    {"foo", 3, 12182},
    {"bar", 3, 5061},
    {"hello", 5, 866},
    {"123456789", 9, 12739},
    {"key:1", 5, 6657},
    {"user:1000", 9, 1649},
    {"{user1000}.following", 20, 3443},
    {"{user1000}.followers", 20, 3443},
    {"user1000", 8, 3443},
    {"foo{}{bar}", 10, 8363},
    {"foo{{bar}}zap", 13, 4015},
    {"{bar", 4, 4015},
    {"foo{bar}{zap}", 13, 5061},
    {"{}", 2, 15257},
    {"{", 1, 4092},
    {"}", 1, 12090},
    {"}{", 2, 12793},
    {"{a}", 3, 15495},
    {"x{a}y", 5, 15495},
    {"{a}{b}", 6, 15495},
    {"a{b", 3, 13340},
    {"a}b{c}", 6, 7365},
    {"\x00", 1, 0},
    {"a\x00" "b", 3, 8383},
    {"{\x00}x", 4, 0},
    {"\xff\xfe\x80", 3, 11813},
    {"tyk-apikey-abc123", 17, 10302},
    {"session:{42}:data", 17, 8000},
    {"{42}", 4, 8000},
    {"42", 2, 8000},
    {"\x00\x00\x00\x00\x00", 5, 0},
};

static void test_known_slots(void) {
    char as[100];
    size_t i;
    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        unsigned got = sg_keyslot(known[i].key, known[i].len);
        test_checks++;
        if (got != known[i].slot)
            TEST_FAIL_("sg_keyslot(known[%zu], %zu bytes): got %u, "
                       "expected %u (CLUSTER KEYSLOT)",
                       i, known[i].len, got, known[i].slot);
    }
    /* 100 × 'A', also from CLUSTER KEYSLOT. */
    memset(as, 'A', sizeof as);
    CHECK_INT(sg_keyslot(as, sizeof as), 14188);
}

static void test_range(void) {
    /* Every slot is below 16384, whatever the CRC. */
    unsigned char k[2];
    unsigned i, max = 0;
    for (i = 0; i < 65536; i++) {
        unsigned s;
        k[0] = (unsigned char)(i >> 8);
        k[1] = (unsigned char)i;
        s = sg_keyslot((const char *)k, 2);
        if (s > max) max = s;
    }
    CHECK(max < SG_SLOTS);
    CHECK_INT(max, SG_SLOTS - 1);
}

int main(void) {
    RUN(test_crc16_vectors);
    RUN(test_hash_tags);
    RUN(test_empty_and_binary);
    RUN(test_known_slots);
    RUN(test_range);
    return test_report();
}
