/*
 * hash.c — Tyk's key hashes (hash_keys): MurmurHash3 x86_32 and x64_128
 * (seed 0), written from Austin Appleby's published algorithm, SHA-256
 * through OpenSSL's EVP, the lowercase-hex form Tyk stores, and Tyk's rule
 * for which algorithm a token uses (its TokenHashAlgo and hashFunction).
 */
#include <openssl/evp.h>
#include <string.h>

#include "json.h"
#include "sg_internal.h"

/* ---- MurmurHash3 ------------------------------------------------------------ */

static uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }
static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Little-endian loads byte by byte: any alignment, any host byte order. */
static uint32_t load32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t load64(const unsigned char *p) {
    return (uint64_t)load32(p) | (uint64_t)load32(p + 4) << 32;
}

/* The leftover n (< 8) bytes as the low bytes of a little-endian word. */
static uint64_t load_tail(const unsigned char *p, size_t n) {
    uint64_t k = 0;
    while (n-- > 0) k |= (uint64_t)p[n] << (8 * n);
    return k;
}

static uint32_t fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bU;
    h ^= h >> 13;
    h *= 0xc2b2ae35U;
    h ^= h >> 16;
    return h;
}

static uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

/* MurmurHash3_x86_32: 4-byte blocks mixed into h, then the 0..3 tail bytes,
 * then the length and the final avalanche. */
static uint32_t murmur3_32(const unsigned char *data, size_t len, uint32_t seed) {
    const uint32_t c1 = 0xcc9e2d51U, c2 = 0x1b873593U;
    size_t nblocks = len / 4, i;
    uint32_t h = seed, k;
    for (i = 0; i < nblocks; i++) {
        k = load32(data + 4 * i);
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64U;
    }
    if (len & 3) {
        k = (uint32_t)load_tail(data + 4 * nblocks, len & 3);
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)len;
    return fmix32(h);
}

/* MurmurHash3_x64_128: 16-byte blocks as two 64-bit lanes that feed each
 * other, then the 0..15 tail bytes (bytes 8.. into lane 2, 0..7 into lane 1),
 * then the length, the cross-adds and the final avalanche. */
static void murmur3_128(const unsigned char *data, size_t len, uint64_t seed,
                        uint64_t out[2]) {
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    size_t nblocks = len / 16, rest = len & 15, i;
    const unsigned char *tail = data + 16 * nblocks;
    uint64_t h1 = seed, h2 = seed, k1, k2;
    for (i = 0; i < nblocks; i++) {
        k1 = load64(data + 16 * i);
        k2 = load64(data + 16 * i + 8);
        k1 *= c1;
        k1 = rotl64(k1, 31);
        k1 *= c2;
        h1 ^= k1;
        h1 = rotl64(h1, 27);
        h1 += h2;
        h1 = h1 * 5 + 0x52dce729;
        k2 *= c2;
        k2 = rotl64(k2, 33);
        k2 *= c1;
        h2 ^= k2;
        h2 = rotl64(h2, 31);
        h2 += h1;
        h2 = h2 * 5 + 0x38495ab5;
    }
    if (rest > 8) {
        k2 = load_tail(tail + 8, rest - 8);
        k2 *= c2;
        k2 = rotl64(k2, 33);
        k2 *= c1;
        h2 ^= k2;
    }
    if (rest > 0) {
        k1 = rest >= 8 ? load64(tail) : load_tail(tail, rest);
        k1 *= c1;
        k1 = rotl64(k1, 31);
        k1 *= c2;
        h1 ^= k1;
    }
    h1 ^= (uint64_t)len;
    h2 ^= (uint64_t)len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    out[0] = h1;
    out[1] = h2;
}

/* ---- hex digests -------------------------------------------------------------- */

/* Digest sizes in bytes, by sg_hash_algo. */
static const size_t digest_size[] = {4, 8, 16, 32};

static void to_hex(const unsigned char *d, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Big-endian store: Go's murmur3 Sum() appends each word so, and Tyk hex-
 * encodes those bytes. */
static void store_be(unsigned char *p, uint64_t v, int bytes) {
    while (bytes-- > 0) {
        p[bytes] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

int sg_hash_hex(int algo, const char *data, size_t len, char *out, size_t outlen) {
    unsigned char d[32];
    uint64_t h[2];
    size_t n;
    if (algo < SG_HASH_MURMUR32 || algo > SG_HASH_SHA256 || out == NULL ||
        (data == NULL && len > 0))
        return SG_EINVAL;
    n = digest_size[algo];
    if (outlen < 2 * n + 1) return SG_EINVAL;
    if (data == NULL) data = "";
    switch (algo) {
    case SG_HASH_MURMUR32:
        store_be(d, murmur3_32((const unsigned char *)data, len, 0), 4);
        break;
    case SG_HASH_MURMUR64:
    case SG_HASH_MURMUR128:
        murmur3_128((const unsigned char *)data, len, 0, h);
        store_be(d, h[0], 8);
        store_be(d + 8, h[1], 8);
        break;
    default: { /* SG_HASH_SHA256 */
        unsigned int mdlen = 0;
        if (EVP_Digest(data, len, d, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
            return SG_ENOMEM; /* OpenSSL could not allocate its context */
        break;
    }
    }
    to_hex(d, n, out);
    return (int)(2 * n);
}

int sg_hash_algo_from_name(const char *name) {
    static const char *const names[] = {"murmur32", "murmur64", "murmur128", "sha256"};
    int i;
    if (name == NULL) return -1;
    for (i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* ---- which algorithm a token uses ----------------------------------------------- */

/* Value of a base64 digit (standard alphabet), or -1. */
static int b64_digit(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes padded standard base64 the way Go's base64.StdEncoding.DecodeString
 * does: '\r' and '\n' are skipped anywhere; the rest must come in groups of
 * four, '=' only as the last one or two characters of the last group. Writes
 * at most len * 3 / 4 bytes to out; returns how many, or -1 when the input is
 * not such base64. */
static long b64_decode(const char *in, size_t len, unsigned char *out) {
    unsigned v[4];
    size_t i, got = 0;
    long n = 0;
    int pad = 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        int dv;
        if (ch == '\r' || ch == '\n') continue;
        if (pad) {
            /* after the first '=', only more '=' in the same group */
            if (ch != '=' || got == 0) return -1;
            pad++;
            got++;
        } else if (ch == '=') {
            if (got < 2) return -1; /* "x===", "====" */
            pad = 1;
            got++;
        } else {
            if ((dv = b64_digit(ch)) < 0) return -1;
            v[got++] = (unsigned)dv;
        }
        if (got == 4) {
            out[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
            if (pad < 2) out[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
            if (pad < 1) out[n++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
            got = 0;
            if (pad) pad = 3; /* the group is closed: nothing may follow */
        }
        if (pad == 3 && got == 0 && i + 1 < len) {
            size_t j;
            for (j = i + 1; j < len; j++)
                if (in[j] != '\r' && in[j] != '\n') return -1;
            break;
        }
    }
    return got == 0 ? n : -1;
}

/* The algorithm an "h" value names, as Tyk's hashFunction reads it: "" and
 * "murmur32" are murmur32; an unknown name falls back to murmur64. */
static int algo_of_h(const char *s, size_t len) {
    int a;
    if (len == 0) return SG_HASH_MURMUR32;
    if (memchr(s, '\0', len) != NULL) return SG_HASH_MURMUR64; /* no name holds a NUL */
    a = sg_hash_algo_from_name(s);
    return a < 0 ? SG_HASH_MURMUR64 : a;
}

int sg_tyk_token_hash_algo(const char *token, size_t len) {
    unsigned char *json;
    sg_json *root;
    char err[160];
    int oom = 0, algo = SG_HASH_MURMUR32;
    long n;
    size_t i;
    /* Legacy tokens (org id + key id) never start with "ey", the base64 of
     * '{' followed by a quote or space. */
    if (token == NULL || len < 2 || token[0] != 'e' || token[1] != 'y') return SG_HASH_MURMUR32;
    if ((json = sg_malloc(len / 4 * 3 + 3)) == NULL) return SG_ENOMEM;
    if ((n = b64_decode(token, len, json)) < 0) {
        sg_free(json);
        return SG_HASH_MURMUR32;
    }
    root = sg_json_parse((const char *)json, (size_t)n, err, sizeof err, &oom);
    sg_free(json);
    if (root == NULL) return oom ? SG_ENOMEM : SG_HASH_MURMUR32;
    /* The first top-level "h", when it is a string (Tyk's
     * jsonparser.GetString); anything else leaves murmur32. */
    if (root->type == SG_JSON_OBJECT) {
        for (i = 0; i < root->n; i++) {
            const sg_json_member *m = &root->members[i];
            if (strcmp(m->key, "h") != 0) continue;
            if (m->value->type == SG_JSON_STRING) algo = algo_of_h(m->value->str, m->value->len);
            break;
        }
    }
    sg_json_free(root);
    return algo;
}
