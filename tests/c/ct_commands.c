/*
 * ct_commands.c — the command table (commands.c, commands_table.h) against a
 * live Redis: the standalone server of the harness (SG_TEST_STANDALONE).
 *
 * First, what needs no server: lookup, resolution of subcommands, the arity
 * check, the key-count contract, split and route hints.
 *
 * Then (a) the table against the server's COMMAND: the same commands and
 * subcommands, each with the same arity, first/last/step, flags, tips and key
 * specs; and (b) a corpus of requests whose keys, by sg_command_keys(), must
 * agree with the server's COMMAND GETKEYS (and their flags with COMMAND
 * GETKEYSANDFLAGS). The agreement rule, for each request:
 *
 *   ours                        GETKEYS must give
 *   --------------------------  ---------------------------------------------
 *   resolve() finds no command  "ERR Invalid command specified"
 *   SG_CMD_EARITY               "ERR Invalid number of arguments ..."
 *   n >= 1 keys                 the same n keys, in order (and the same flags
 *                               per key from GETKEYSANDFLAGS)
 *   0 keys                      an empty array, or "ERR The command has no
 *                               key arguments"
 *   SG_CMD_EKEYS                "ERR Invalid arguments specified for command",
 *                               or, for a command flagged no_mandatory_keys
 *                               (EVAL, FCALL, ...: GETKEYS cannot tell "no
 *                               keys" from "bad numkeys" for them), an empty
 *                               array
 *
 * A request of the command name alone (PING, GET) cannot be asked: COMMAND
 * GETKEYS wants the command and one argument at least. For those, ours must
 * be 0 keys or SG_CMD_EARITY (the arity itself is checked in (a)).
 *
 * One exception, marked "~" in the corpus: Redis's fallback parser reads
 * numkeys with atoi(), so GETKEYS names keys for numkeys like "1abc", "01",
 * "+1" or 4294967297 (cast to int: 1) that the command itself rejects. There
 * sg_command_keys() says SG_CMD_EKEYS; the test checks GETKEYS does name keys
 * (so the row stays meaningful) and that running the request fails. A
 * disagreement on any other row, or an exception on an unmarked row, fails.
 */
#include <hiredis/hiredis.h>
#include <stdint.h>

#include "commands.h"
#include "test.h"

#define LIT(s) (s), (sizeof(s) - 1)

/* ---- requests: a corpus line split into arguments -------------------------- */

#define MAX_ARGS 64

typedef struct request {
    int argc;
    const char *argv[MAX_ARGS];
    size_t len[MAX_ARGS];
    char buf[4096];
} request;

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Arguments are separated by spaces; '...' groups (and may be empty); \xHH
 * anywhere is that byte. 0, or -1 when the line is malformed or too long. */
static int parse_line(const char *line, request *r) {
    const char *p = line;
    size_t used = 0;
    r->argc = 0;
    for (;;) {
        int quoted = 0;
        while (*p == ' ') p++;
        if (*p == '\0') return 0;
        if (r->argc == MAX_ARGS) return -1;
        r->argv[r->argc] = r->buf + used;
        r->len[r->argc] = 0;
        while (*p != '\0' && (quoted || *p != ' ')) {
            char c = *p++;
            if (c == '\'') {
                quoted = !quoted;
                continue;
            }
            if (c == '\\' && p[0] == 'x' && hexval(p[1]) >= 0 &&
                hexval(p[2]) >= 0) {
                c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                p += 3;
            }
            if (used + 1 >= sizeof r->buf) return -1;
            r->buf[used++] = c;
            r->len[r->argc]++;
        }
        if (quoted) return -1;
        r->buf[used++] = '\0';
        r->argc++;
    }
}

/* Prints an argument readably into out. */
static void show_arg(const char *s, size_t len, char *out, size_t cap) {
    size_t i, o = 0;
    for (i = 0; i < len && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x21 && c < 0x7f && c != '\'') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, cap - o, "\\x%02x", c);
            o += 4;
        }
    }
    if (len == 0 && cap > 2) {
        out[o++] = '\'';
        out[o++] = '\'';
    }
    out[o] = '\0';
}

/* ---- without a server ---------------------------------------------------------- */

static const sg_command *resolve_line(const char *line, request *r) {
    if (parse_line(line, r) != 0) return NULL;
    return sg_command_resolve(r->argc, r->argv, r->len);
}

static void test_table_shape(void) {
    size_t n, i;
    const sg_command *t = sg_command_table(&n);
    CHECK(n > 300);
    CHECK_STR(sg_commands_redis_version(), "7.0.15");
    for (i = 0; i < n; i++) {
        const sg_command *c = &t[i];
        CHECK_INT(strlen(c->name), c->namelen);
        if (i > 0 && strcmp(t[i - 1].name, c->name) >= 0)
            TEST_FAIL_("table not sorted at %s", c->name);
        if (c->parent) {
            CHECK(strncmp(c->name, c->parent->name, c->parent->namelen) == 0);
            CHECK(c >= c->parent->subs &&
                  c < c->parent->subs + c->parent->nsubs);
        }
        CHECK(sg_command_lookup(c->name, c->namelen) == c);
    }
}

static void test_lookup(void) {
    const sg_command *get = sg_command_lookup(LIT("get"));
    CHECK(get != NULL);
    CHECK_STR(get->name, "get");
    CHECK(sg_command_lookup(LIT("GET")) == get);
    CHECK(sg_command_lookup(LIT("gEt")) == get);
    CHECK(sg_command_lookup(LIT("get\0")) == NULL); /* binary-safe */
    CHECK(sg_command_lookup(LIT("ge")) == NULL);
    CHECK(sg_command_lookup(LIT("gets")) == NULL);
    CHECK(sg_command_lookup("", 0) == NULL);
    CHECK(sg_command_lookup(LIT("\xff\xfe")) == NULL);
    CHECK(sg_command_lookup(LIT("acl")) != NULL);    /* the first entry */
    CHECK(sg_command_lookup(LIT("zunionstore")) != NULL); /* the last */
    CHECK(sg_command_lookup(LIT("CONFIG|GET")) != NULL);
    CHECK_STR(sg_command_lookup(LIT("restore-asking"))->name,
              "restore-asking");
    CHECK_STR(sg_command_lookup(LIT("CLIENT|NO-EVICT"))->name,
              "client|no-evict");
}

static void test_resolve(void) {
    request r;
    const sg_command *c;
    c = resolve_line("config get maxmemory", &r);
    CHECK(c != NULL && strcmp(c->name, "config|get") == 0);
    c = resolve_line("OBJECT Encoding k", &r);
    CHECK(c != NULL && strcmp(c->name, "object|encoding") == 0);
    CHECK(c->parent == sg_command_lookup(LIT("object")));
    c = resolve_line("CONFIG", &r); /* the container: its arity fails */
    CHECK(c != NULL && strcmp(c->name, "config") == 0);
    CHECK(!sg_command_check_arity(c, r.argc));
    CHECK(resolve_line("config nosuch x", &r) == NULL);
    CHECK(resolve_line("config|get maxmemory", &r) == NULL);
    CHECK(resolve_line("nosuch", &r) == NULL);
    c = resolve_line("get k extra", &r); /* not a container */
    CHECK(c != NULL && strcmp(c->name, "get") == 0);
    CHECK(!sg_command_check_arity(c, r.argc));
    CHECK(sg_command_resolve(0, NULL, NULL) == NULL);
}

static void test_keys_contract(void) {
    request r;
    int idx[4], n;
    uint16_t fl[4];
    const sg_command *c = resolve_line("MGET a b c d e f", &r);
    /* More keys than room: the count, and the first maxkeys of them. */
    n = sg_command_keys(c, r.argc, r.argv, r.len, idx, 2);
    CHECK_INT(n, 6);
    CHECK_INT(idx[0], 1);
    CHECK_INT(idx[1], 2);
    n = sg_command_keys(c, r.argc, r.argv, r.len, idx, 0);
    CHECK_INT(n, 6);
    c = resolve_line("GET", &r);
    CHECK_INT(sg_command_keys(c, r.argc, r.argv, r.len, idx, 4),
              SG_CMD_EARITY);
    c = resolve_line("SET k v GET", &r);
    n = sg_command_keys_ex(c, r.argc, r.argv, r.len, 0, idx, fl, 4);
    CHECK_INT(n, 1);
    CHECK_INT(fl[0], SG_KS_RW | SG_KS_ACCESS | SG_KS_UPDATE);
    /* Shard channels are keys only when asked for. */
    c = resolve_line("SPUBLISH chan msg", &r);
    CHECK_INT(sg_command_keys(c, r.argc, r.argv, r.len, idx, 4), 0);
    n = sg_command_keys_ex(c, r.argc, r.argv, r.len,
                           SG_KEYS_INCLUDE_NOT_KEYS, idx, fl, 4);
    CHECK_INT(n, 1);
    CHECK_INT(idx[0], 1);
    CHECK_INT(fl[0], SG_KS_NOT_KEY);
    c = resolve_line("EVAL s 0", &r);
    CHECK_INT(sg_command_keys(c, r.argc, r.argv, r.len, idx, 4), 0);
    c = resolve_line("EVAL s 2 k", &r);
    CHECK_INT(sg_command_keys(c, r.argc, r.argv, r.len, idx, 4),
              SG_CMD_EKEYS);
}

static void test_split_route(void) {
    size_t n, i;
    const sg_command *t = sg_command_table(&n);
    int splits = 0;
    for (i = 0; i < n; i++)
        if (sg_command_split(&t[i]) != SG_SPLIT_NONE) splits++;
    /* Exactly these split, from the tips. */
    CHECK_INT(splits, 6);
    CHECK_INT(sg_command_split(sg_command_lookup(LIT("mget"))),
              SG_SPLIT_ARRAY);
    CHECK_INT(sg_command_split(sg_command_lookup(LIT("mset"))),
              SG_SPLIT_PAIRS);
    CHECK_INT(sg_command_split(sg_command_lookup(LIT("del"))), SG_SPLIT_SUM);
    CHECK_INT(sg_command_split(sg_command_lookup(LIT("unlink"))),
              SG_SPLIT_SUM);
    CHECK_INT(sg_command_split(sg_command_lookup(LIT("exists"))),
              SG_SPLIT_SUM);
    CHECK_INT(sg_command_split(sg_command_lookup(LIT("touch"))),
              SG_SPLIT_SUM);
    CHECK_INT(sg_command_split(sg_command_lookup(LIT("msetnx"))),
              SG_SPLIT_NONE);
    CHECK_STR(sg_split_name(SG_SPLIT_PAIRS), "pairs");

#define ROUTE(name, r)                                                         \
    CHECK_STR(sg_route_name(sg_command_route(sg_command_lookup(LIT(name)))),  \
              sg_route_name(r))
    ROUTE("get", SG_ROUTE_KEYS);
    ROUTE("mget", SG_ROUTE_KEYS);
    ROUTE("eval", SG_ROUTE_KEYS);
    ROUTE("dbsize", SG_ROUTE_ALL_MASTERS);
    ROUTE("keys", SG_ROUTE_ALL_MASTERS);
    ROUTE("scan", SG_ROUTE_ALL_MASTERS);
    ROUTE("flushall", SG_ROUTE_ALL_MASTERS);
    ROUTE("flushdb", SG_ROUTE_ALL_MASTERS);
    ROUTE("ping", SG_ROUTE_ALL_MASTERS);
    ROUTE("randomkey", SG_ROUTE_ALL_MASTERS);
    ROUTE("script|load", SG_ROUTE_ALL_NODES);
    ROUTE("script|flush", SG_ROUTE_ALL_NODES);
    ROUTE("script|exists", SG_ROUTE_ALL_MASTERS);
    ROUTE("function|load", SG_ROUTE_ALL_MASTERS);
    ROUTE("function|delete", SG_ROUTE_ALL_MASTERS);
    ROUTE("function|flush", SG_ROUTE_ALL_MASTERS);
    ROUTE("function|restore", SG_ROUTE_ALL_MASTERS);
    ROUTE("config|set", SG_ROUTE_ALL_NODES);
    ROUTE("config|get", SG_ROUTE_ANY);
    ROUTE("config|rewrite", SG_ROUTE_ALL_NODES);
    ROUTE("config|resetstat", SG_ROUTE_ALL_NODES);
    ROUTE("echo", SG_ROUTE_GATEWAY);
    ROUTE("quit", SG_ROUTE_GATEWAY);
    ROUTE("select", SG_ROUTE_GATEWAY);
    ROUTE("auth", SG_ROUTE_GATEWAY);
    ROUTE("hello", SG_ROUTE_GATEWAY);
    ROUTE("client|setname", SG_ROUTE_GATEWAY);
    ROUTE("spublish", SG_ROUTE_CHANNEL);
    ROUTE("publish", SG_ROUTE_CHANNEL); /* for order: see commands.c */
    ROUTE("cluster|countkeysinslot", SG_ROUTE_SLOT);
    ROUTE("cluster|getkeysinslot", SG_ROUTE_SLOT);
    ROUTE("time", SG_ROUTE_ANY);
    ROUTE("config", SG_ROUTE_ANY);
#undef ROUTE
    CHECK_INT(sg_command_merge(sg_command_lookup(LIT("dbsize"))),
              SG_RESP_AGG_SUM);
    CHECK_INT(sg_command_merge(sg_command_lookup(LIT("script|exists"))),
              SG_RESP_AGG_LOGICAL_AND);
    CHECK_STR(sg_response_policy_name(SG_RESP_AGG_SUM), "agg_sum");
    CHECK_STR(sg_request_policy_name(SG_REQ_ALL_SHARDS), "all_shards");
    CHECK_STR(sg_command_flag_name(SG_CMD_MOVABLEKEYS), "movablekeys");
    CHECK_STR(sg_keyspec_flag_name(SG_KS_VARIABLE_FLAGS), "variable_flags");
    CHECK(sg_command_flag_name(3) == NULL);
}

/* ---- (a) the table against COMMAND --------------------------------------------- */

static redisContext *conn;

static redisReply *field(const redisReply *map, const char *name) {
    size_t i;
    if (map == NULL || map->type != REDIS_REPLY_ARRAY) return NULL;
    for (i = 0; i + 1 < map->elements; i += 2)
        if (strcmp(map->element[i]->str, name) == 0)
            return map->element[i + 1];
    return NULL;
}

static long long field_int(const redisReply *map, const char *name) {
    redisReply *r = field(map, name);
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -9999;
}

/* A list of names as bits, by the given name function; unknown names give
 * bit 31 (no map uses it), so they show as a difference. */
static uint32_t bits_of(const redisReply *list,
                        const char *(*name_of)(uint32_t)) {
    uint32_t bits = 0;
    size_t i;
    for (i = 0; list && i < list->elements; i++) {
        int b, found = 0;
        for (b = 0; b < 31 && !found; b++) {
            const char *n = name_of(1u << b);
            if (n && strcmp(n, list->element[i]->str) == 0) {
                bits |= 1u << b;
                found = 1;
            }
        }
        if (!found) bits |= 1u << 31;
    }
    return bits;
}

static void check_spec(const char *cmd, int j, const sg_keyspec *ks,
                       const redisReply *raw) {
    redisReply *bs = field(raw, "begin_search");
    redisReply *fk = field(raw, "find_keys");
    redisReply *bspec = field(bs, "spec"), *fspec = field(fk, "spec");
    const char *bt = field(bs, "type") ? field(bs, "type")->str : "?";
    const char *ft = field(fk, "type") ? field(fk, "type")->str : "?";
    int ok = 1;

    ok &= bits_of(field(raw, "flags"), sg_keyspec_flag_name) == ks->flags;
    if (strcmp(bt, "index") == 0) {
        ok &= ks->begin == SG_BS_INDEX &&
              ks->index == field_int(bspec, "index");
    } else if (strcmp(bt, "keyword") == 0) {
        redisReply *kw = field(bspec, "keyword");
        ok &= ks->begin == SG_BS_KEYWORD && kw && ks->keyword &&
              strcmp(kw->str, ks->keyword) == 0 &&
              ks->startfrom == field_int(bspec, "startfrom");
    } else {
        ok &= ks->begin == SG_BS_UNKNOWN && strcmp(bt, "unknown") == 0;
    }
    if (strcmp(ft, "range") == 0) {
        ok &= ks->find == SG_FK_RANGE &&
              ks->range.lastkey == field_int(fspec, "lastkey") &&
              ks->range.keystep == field_int(fspec, "keystep") &&
              ks->range.limit == field_int(fspec, "limit");
    } else if (strcmp(ft, "keynum") == 0) {
        ok &= ks->find == SG_FK_KEYNUM &&
              ks->keynum.keynumidx == field_int(fspec, "keynumidx") &&
              ks->keynum.firstkey == field_int(fspec, "firstkey") &&
              ks->keynum.keystep == field_int(fspec, "keystep");
    } else {
        ok &= ks->find == SG_FK_UNKNOWN && strcmp(ft, "unknown") == 0;
    }
    test_checks++;
    if (!ok) TEST_FAIL_("%s: key spec %d differs from COMMAND INFO", cmd, j);
}

/* Checks one COMMAND entry (and its subcommands); returns how many entries
 * it had. */
static size_t check_entry(const redisReply *e) {
    const char *name;
    const sg_command *c;
    redisReply *specs, *subs, *tips;
    size_t i, seen = 1;
    int req = SG_REQ_DEFAULT, resp = SG_RESP_DEFAULT, tipbits = 0;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 10) {
        TEST_FAIL_("COMMAND entry is not in the 7.0 form");
        return 0;
    }
    name = e->element[0]->str;
    c = sg_command_lookup(name, strlen(name));
    if (c == NULL) {
        TEST_FAIL_("%s: the server has it, the table does not", name);
        return seen;
    }
    CHECK_STR(c->name, name);
    CHECK_INT(c->arity, e->element[1]->integer);
    test_checks++;
    if (bits_of(e->element[2], sg_command_flag_name) != c->flags)
        TEST_FAIL_("%s: flags differ from COMMAND INFO", name);
    CHECK_INT(c->first, e->element[3]->integer);
    CHECK_INT(c->last, e->element[4]->integer);
    CHECK_INT(c->step, e->element[5]->integer);

    tips = e->element[7];
    for (i = 0; i < tips->elements; i++) {
        const char *t = tips->element[i]->str;
        int p;
        for (p = 0; p < 16; p++) {
            const char *rq = sg_request_policy_name(p);
            const char *rs = sg_response_policy_name(p);
            if (rq && strncmp(t, "request_policy:", 15) == 0 &&
                strcmp(t + 15, rq) == 0)
                req = p;
            if (rs && strncmp(t, "response_policy:", 16) == 0 &&
                strcmp(t + 16, rs) == 0)
                resp = p;
        }
        if (strcmp(t, "nondeterministic_output") == 0)
            tipbits |= SG_TIP_NONDETERMINISTIC_OUTPUT;
        if (strcmp(t, "nondeterministic_output_order") == 0)
            tipbits |= SG_TIP_NONDETERMINISTIC_OUTPUT_ORDER;
    }
    CHECK_INT(c->request_policy, req);
    CHECK_INT(c->response_policy, resp);
    CHECK_INT(c->tips, tipbits);

    specs = e->element[8];
    CHECK_INT(c->nspecs, specs->elements);
    for (i = 0; i < specs->elements && i < c->nspecs; i++)
        check_spec(name, (int)i, &c->specs[i], specs->element[i]);

    subs = e->element[9];
    CHECK_INT(c->nsubs, subs->elements);
    for (i = 0; i < subs->elements; i++) {
        const char *sn = subs->element[i]->element[0]->str;
        const sg_command *sc = sg_command_lookup(sn, strlen(sn));
        CHECK(sc == NULL || sc->parent == c);
        seen += check_entry(subs->element[i]);
    }
    return seen;
}

static void test_table_matches_server(void) {
    redisReply *all = redisCommand(conn, "COMMAND");
    redisReply *count = redisCommand(conn, "COMMAND COUNT");
    size_t n, i, seen = 0, top = 0;
    const sg_command *t = sg_command_table(&n);

    CHECK(all && all->type == REDIS_REPLY_ARRAY);
    if (all == NULL || all->type != REDIS_REPLY_ARRAY) return;
    for (i = 0; i < all->elements; i++) seen += check_entry(all->element[i]);
    for (i = 0; i < n; i++)
        if (t[i].parent == NULL) top++;
    /* Same number of entries both ways, and each server entry is in the
     * table: the table has exactly the server's commands. */
    CHECK_INT(seen, n);
    CHECK_INT(all->elements, top);
    CHECK(count && count->type == REDIS_REPLY_INTEGER);
    if (count) CHECK_INT(count->integer, top);
    printf("table: %zu commands, %zu subcommands, as on the server\n", top,
           n - top);
    freeReplyObject(all);
    freeReplyObject(count);
}

/* ---- (b) the GETKEYS corpus ------------------------------------------------------ */

/* One request a line; "~ " marks the lenient-numkeys exception (see top). */
static const char *const corpus[] = {
    /* strings */
    "APPEND k v",
    "BITCOUNT k",
    "BITCOUNT k 0 -1 BIT",
    "BITFIELD k GET u8 0",
    "BITFIELD k GET u8 0 GET i4 8",
    "BITFIELD k SET u8 0 1",
    "BITFIELD k OVERFLOW WRAP INCRBY u8 0 1",
    "BITFIELD k OVERFLOW SAT GET u8 0",
    "BITFIELD k get u8",
    "BITFIELD k foo",
    "BITFIELD k",
    "BITFIELD_RO k GET u8 0",
    "BITOP AND dst a b c",
    "BITOP NOT dst a",
    "BITPOS k 1 0 -1",
    "DECR k",
    "DECRBY k 2",
    "GET k",
    "get '{tag}k'",
    "GET ''",
    "GET \\x00bin\\xff",
    "GETBIT k 7",
    "GETDEL k",
    "GETEX k",
    "GETEX k PX 100",
    "GETRANGE k 0 -1",
    "GETSET k v",
    "INCR k",
    "INCRBY k 5",
    "INCRBYFLOAT k 0.5",
    "LCS a b",
    "LCS a b LEN IDX",
    "MGET a",
    "MGET a b c",
    "MSET a 1",
    "MSET a 1 b 2 c 3",
    "MSET a 1 b",
    "MSETNX a 1 b 2",
    "PSETEX k 100 v",
    "SET k v",
    "SET k v GET",
    "SET k v EX 10 get",
    "SET k v NX",
    "SET k v GETX",
    "SET k v get\\x00x",
    "SETBIT k 7 1",
    "SETEX k 10 v",
    "SETNX k v",
    "SETRANGE k 0 v",
    "STRLEN k",
    "SUBSTR k 0 1",
    /* keys */
    "COPY src dst",
    "COPY src dst DB 1 REPLACE",
    "DEL a",
    "DEL a b c",
    "DUMP k",
    "EXISTS a b a",
    "EXPIRE k 10",
    "EXPIRE k 10 NX",
    "EXPIREAT k 1",
    "EXPIRETIME k",
    "MOVE k 1",
    "PERSIST k",
    "PEXPIRE k 100 GT",
    "PEXPIREAT k 1",
    "PEXPIRETIME k",
    "PTTL k",
    "RENAME a b",
    "RENAMENX a b",
    "RESTORE k 0 payload",
    "RESTORE k 0 payload REPLACE ABSTTL",
    "RESTORE-ASKING k 0 payload",
    "TOUCH a b",
    "TTL k",
    "TYPE k",
    "UNLINK a b c",
    "WATCH a b",
    "OBJECT ENCODING k",
    "object freq k",
    "OBJECT IDLETIME k",
    "OBJECT REFCOUNT k",
    "MEMORY USAGE k",
    "MEMORY USAGE k SAMPLES 5",
    /* SORT: keys from a proc (incomplete specs) */
    "SORT k",
    "SORT k STORE dst",
    "SORT k store",
    "SORT k STORE a STORE b",
    "SORT k BY w_* GET o_* STORE dst",
    "SORT k GET store STORE dst",
    "SORT k BY store",
    "SORT k LIMIT 0 10 ALPHA DESC STORE dst",
    "SORT k LIMIT store store STORE dst",
    "SORT k STORE\\x00x dst",
    "SORT_RO k",
    "SORT_RO k BY w_* GET o_* STORE dst",
    /* MIGRATE: KEYS is told from a password named "keys" by parsing */
    "MIGRATE host 6379 k 0 5000",
    "MIGRATE host 6379 k 0 5000 COPY REPLACE",
    "MIGRATE host 6379 '' 0 5000 KEYS a b c",
    "MIGRATE host 6379 '' 0 5000 COPY KEYS a",
    "MIGRATE host 6379 '' 0 5000 AUTH keys KEYS a b",
    "MIGRATE host 6379 '' 0 5000 AUTH2 keys keys KEYS a",
    "MIGRATE host 6379 k 0 5000 KEYS a b",
    "MIGRATE host 6379 '' 0 5000 KEYS",
    "MIGRATE host 6379 '' 0 5000",
    "MIGRATE keys 6379 k 0 5000",
    /* hashes */
    "HDEL k f",
    "HDEL k f g",
    "HEXISTS k f",
    "HGET k f",
    "HGETALL k",
    "HINCRBY k f 1",
    "HINCRBYFLOAT k f 1.5",
    "HKEYS k",
    "HLEN k",
    "HMGET k f g",
    "HMSET k f v",
    "HRANDFIELD k 2 WITHVALUES",
    "HSCAN k 0 MATCH x* COUNT 10",
    "HSET k f v g w",
    "HSETNX k f v",
    "HSTRLEN k f",
    "HVALS k",
    /* lists */
    "BLMOVE src dst LEFT RIGHT 0",
    "BLMPOP 0 1 a LEFT",
    "BLMPOP 0.5 2 a b RIGHT COUNT 3",
    "BLMPOP 0 0 a LEFT",
    "BLMPOP 0 3 a b LEFT",
    "BLPOP a 0",
    "BLPOP a b c 1.5",
    "BRPOP a b 0",
    "BRPOPLPUSH src dst 0",
    "LINDEX k 0",
    "LINSERT k BEFORE p v",
    "LLEN k",
    "LMOVE src dst LEFT LEFT",
    "LMPOP 1 a LEFT",
    "LMPOP 2 a b RIGHT COUNT 3",
    "LMPOP 3 a b LEFT",
    "LMPOP 0 a LEFT",
    "LMPOP 5 a b LEFT",
    "LMPOP -1 a LEFT",
    "LPOP k",
    "LPOP k 2",
    "LPOS k e RANK 1 MAXLEN 10",
    "LPUSH k a b",
    "LPUSHX k a",
    "LRANGE k 0 -1",
    "LREM k 0 v",
    "LSET k 0 v",
    "LTRIM k 0 1",
    "RPOP k",
    "RPOPLPUSH src dst",
    "RPUSH k a",
    "RPUSHX k a",
    /* sets */
    "SADD k m n",
    "SCARD k",
    "SDIFF a b c",
    "SDIFFSTORE dst a b",
    "SINTER a",
    "SINTERCARD 2 a b",
    "SINTERCARD 2 a b LIMIT 5",
    "SINTERCARD 0 a",
    "SINTERCARD 3 a b",
    "SINTERSTORE dst a b",
    "SISMEMBER k m",
    "SMEMBERS k",
    "SMISMEMBER k a b",
    "SMOVE src dst m",
    "SPOP k",
    "SPOP k 2",
    "SRANDMEMBER k -2",
    "SREM k m",
    "SSCAN k 0",
    "SUNION a b",
    "SUNIONSTORE dst a b",
    /* sorted sets */
    "BZMPOP 0 2 a b MIN",
    "BZMPOP 1 1 a MAX COUNT 2",
    "BZPOPMAX a b 0",
    "BZPOPMIN a 0",
    "ZADD k 1 m",
    "ZADD k NX CH 1 m 2 n",
    "ZCARD k",
    "ZCOUNT k 0 1",
    "ZDIFF 2 a b",
    "ZDIFF 1 a WITHSCORES",
    "ZDIFFSTORE dst 2 a b",
    "ZINCRBY k 1 m",
    "ZINTER 2 a b",
    "ZINTER 2 a b WEIGHTS 1 2 AGGREGATE MAX WITHSCORES",
    "ZINTERCARD 2 a b LIMIT 1",
    "ZINTERCARD 1 a",
    "ZINTERSTORE dst 2 a b AGGREGATE MIN",
    "ZLEXCOUNT k - +",
    "ZMPOP 1 a MIN",
    "ZMPOP 2 a b MAX COUNT 2",
    "ZMSCORE k a b",
    "ZPOPMAX k",
    "ZPOPMIN k 2",
    "ZRANDMEMBER k 2 WITHSCORES",
    "ZRANGE k 0 -1",
    "ZRANGE k (1 5 BYSCORE LIMIT 0 1",
    "ZRANGEBYLEX k - +",
    "ZRANGEBYSCORE k 0 1 WITHSCORES",
    "ZRANGESTORE dst src 0 -1",
    "ZRANK k m",
    "ZREM k m",
    "ZREMRANGEBYLEX k - +",
    "ZREMRANGEBYRANK k 0 1",
    "ZREMRANGEBYSCORE k 0 1",
    "ZREVRANGE k 0 1",
    "ZREVRANGEBYLEX k + -",
    "ZREVRANGEBYSCORE k 1 0",
    "ZREVRANK k m",
    "ZSCAN k 0",
    "ZSCORE k m",
    "ZUNION 2 a b",
    "ZUNION 1 a WITHSCORES",
    "ZUNIONSTORE dst 2 a b",
    "ZUNIONSTORE dst 1 a WEIGHTS 2",
    "ZUNIONSTORE dst 0 a",
    "ZUNIONSTORE dst 3 a b",
    "ZUNIONSTORE dst -1 a",
    "ZUNIONSTORE dst two a",
    "~ ZUNIONSTORE dst 1abc a",
    "~ ZUNIONSTORE dst 4294967297 a",
    "ZUNION 0 a",
    "~ ZINTER 01 a",
    /* hyperloglog */
    "PFADD k a b",
    "PFCOUNT a b",
    "PFDEBUG GETREG k",
    "PFMERGE dst a b",
    "PFMERGE dst",
    /* geo */
    "GEOADD k 13.36 38.11 m",
    "GEODIST k a b km",
    "GEOHASH k a b",
    "GEOPOS k a",
    "GEORADIUS k 15 37 200 km",
    "GEORADIUS k 15 37 200 km WITHDIST COUNT 2 ASC",
    "GEORADIUS k 15 37 200 km STORE dst",
    "GEORADIUS k 15 37 200 km STOREDIST dst",
    "GEORADIUS k 15 37 200 km STOREDIST b STORE a",
    "GEORADIUS k 15 37 200 km STORE a STORE b",
    "GEORADIUS k 15 37 200 km STORE",
    "GEORADIUS k 15 37 200 km STORE a STOREDIST",
    "GEORADIUS_RO k 15 37 200 km",
    "GEORADIUSBYMEMBER k m 100 km",
    "GEORADIUSBYMEMBER k m 100 km STORE dst",
    "GEORADIUSBYMEMBER k m 100 km STOREDIST dst",
    "GEORADIUSBYMEMBER_RO k m 100 km",
    "GEOSEARCH k FROMMEMBER m BYRADIUS 1 km",
    "GEOSEARCHSTORE dst src FROMMEMBER m BYBOX 1 1 km STOREDIST",
    /* streams */
    "XACK k g 1-0 2-0",
    "XADD k * f v",
    "XADD k MAXLEN ~ 10 * f v",
    "XAUTOCLAIM k g c 0 0-0 COUNT 5",
    "XCLAIM k g c 0 1-0",
    "XDEL k 1-0",
    "XGROUP CREATE k g $",
    "XGROUP CREATE k g $ MKSTREAM",
    "XGROUP CREATECONSUMER k g c",
    "XGROUP DELCONSUMER k g c",
    "XGROUP DESTROY k g",
    "XGROUP SETID k g $",
    "XINFO CONSUMERS k g",
    "XINFO GROUPS k",
    "XINFO STREAM k",
    "XINFO STREAM k FULL COUNT 1",
    "XLEN k",
    "XPENDING k g",
    "XPENDING k g IDLE 10 - + 10 c",
    "XRANGE k - +",
    "XREAD STREAMS a 0",
    "XREAD COUNT 1 BLOCK 0 STREAMS a b 0 0",
    "xread streams a b c 0 0 0",
    "XREAD STREAMS a b 0",
    "XREAD COUNT 1 STREAMS a",
    "XREAD COUNT 1 a b",
    "XREAD STREAMS STREAMS a 0",
    "XREAD STREAMS\\x00x a 0",
    "XREADGROUP GROUP g c STREAMS a 0",
    "XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a b > >",
    "XREADGROUP GROUP g streams STREAMS a >",
    "XREADGROUP GROUP g c NOACK STREAMS a",
    "XREVRANGE k + -",
    "XSETID k 1-0",
    "XTRIM k MAXLEN 10",
    "XTRIM k MINID = 1-0 LIMIT 5",
    /* scripting and functions */
    "EVAL 'return 1' 0",
    "EVAL 'return 1' 0 arg",
    "EVAL 'return 1' 1 k",
    "EVAL 'return 1' 2 a b arg",
    "EVAL 'return 1' 2 k",
    "EVAL 'return 1' -1 k",
    "EVAL 'return 1' abc k",
    "~ EVAL 'return 1' 1abc k",
    "~ EVAL 'return 1' 01 k",
    "~ EVAL 'return 1' +1 k",
    "~ EVAL 'return 1' ' 1' k",
    "~ EVAL 'return 1' 4294967297 k",
    "EVAL 'return 1' -0 k",
    "EVAL_RO 'return 1' 1 k",
    "EVALSHA 0123456789abcdef0123456789abcdef01234567 2 a b",
    "EVALSHA 0123456789abcdef0123456789abcdef01234567 0",
    "EVALSHA_RO 0123456789abcdef0123456789abcdef01234567 1 k",
    "FCALL f 0",
    "FCALL f 1 k arg",
    "FCALL f 3 a b",
    "FCALL_RO f 2 a b",
    /* more numkeys forms, lower-case subcommands, flags */
    "SINTERCARD 1 a LIMIT 0",
    "~ SINTERCARD 1abc a",
    "ZINTERCARD 0 a",
    "BZMPOP 0 0 a MIN",
    "ZMPOP 2 a MIN",
    "EVAL_RO 'return 1' 0",
    "FCALL_RO f 0",
    "~ FCALL f 01 k",
    "xgroup create k g $",
    "xinfo stream k",
    "memory usage k",
    "RENAME a a",
    "PFCOUNT a",
    "WATCH a",
    "SET k v PXAT 1 KEEPTTL GET",
    "BITFIELD k GET u8 0 SET u8 0 1",
    /* no keys */
    "OBJECT HELP",
    "XINFO HELP",
    "CLUSTER KEYSLOT k",
    "SUBSCRIBE a",
    "SUNSUBSCRIBE a",
    "COMMAND GETKEYS GET k",
    "PING",
    "DBSIZE",
    "KEYS *",
    "SCAN 0 MATCH x*",
    "CONFIG GET maxmemory",
    "CONFIG",
    "PUBLISH chan msg",
    "SPUBLISH chan msg",
    "SSUBSCRIBE a b",
    "CLIENT LIST",
    "FUNCTION LIST",
    "ECHO hi",
    /* wrong arity */
    "GET",
    "GET a b",
    "OBJECT ENCODING",
    "XINFO STREAM",
    "MSET a",
    "ZUNIONSTORE dst 1",
    "EVAL 'return 1'",
    "XREADGROUP GROUP g c STREAMS a",
    "MIGRATE host 6379 k 0",
    /* unknown commands */
    "NOSUCH k",
    "OBJECT NOSUCH k",
    "CONFIG|GET maxmemory",
};

/* What one side said: keys, a count of 0, or an error. */
typedef struct outcome {
    int rc;                 /* ours: n or SG_CMD_E*; redis: n or -1 */
    char text[1024];        /* printable */
    const char *keys[MAX_ARGS];
    size_t keylen[MAX_ARGS];
    uint16_t flags[MAX_ARGS];
    int nkeys;
    char err[256];
} outcome;

static void describe_keys(outcome *o) {
    size_t used = 0;
    int i;
    used += (size_t)snprintf(o->text, sizeof o->text, "[");
    for (i = 0; i < o->nkeys && used < sizeof o->text - 64; i++) {
        char a[200];
        show_arg(o->keys[i], o->keylen[i], a, sizeof a);
        used += (size_t)snprintf(o->text + used, sizeof o->text - used,
                                 "%s%s", i ? " " : "", a);
    }
    snprintf(o->text + used, sizeof o->text - used, "]");
}

static void ours_for(const sg_command *c, const request *r, outcome *o) {
    int idx[MAX_ARGS], i;
    memset(o, 0, sizeof *o);
    if (c == NULL) {
        o->rc = -100;
        snprintf(o->text, sizeof o->text, "unknown command");
        return;
    }
    o->rc = sg_command_keys_ex(c, r->argc, r->argv, r->len, 0, idx,
                               o->flags, MAX_ARGS);
    if (o->rc == SG_CMD_EARITY) {
        snprintf(o->text, sizeof o->text, "SG_CMD_EARITY");
    } else if (o->rc == SG_CMD_EKEYS) {
        snprintf(o->text, sizeof o->text, "SG_CMD_EKEYS");
    } else {
        for (i = 0; i < o->rc; i++) {
            o->keys[i] = r->argv[idx[i]];
            o->keylen[i] = r->len[idx[i]];
        }
        o->nkeys = o->rc;
        describe_keys(o);
    }
}

/* Runs COMMAND <sub> request; the reply (caller frees) or NULL. */
static redisReply *command_sub(const char *sub, const request *r) {
    const char *argv[MAX_ARGS + 2];
    size_t len[MAX_ARGS + 2];
    int i;
    argv[0] = "COMMAND";
    len[0] = 7;
    argv[1] = sub;
    len[1] = strlen(sub);
    for (i = 0; i < r->argc; i++) {
        argv[i + 2] = r->argv[i];
        len[i + 2] = r->len[i];
    }
    return redisCommandArgv(conn, r->argc + 2, argv, len);
}

static void redis_for(const request *r, redisReply *rep, outcome *o) {
    size_t i;
    memset(o, 0, sizeof *o);
    if (rep == NULL) {
        o->rc = -1;
        snprintf(o->err, sizeof o->err, "no reply: %s", conn->errstr);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        o->rc = -1;
        snprintf(o->err, sizeof o->err, "%s", rep->str);
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements <= MAX_ARGS) {
        for (i = 0; i < rep->elements; i++) {
            o->keys[i] = rep->element[i]->str;
            o->keylen[i] = rep->element[i]->len;
        }
        o->nkeys = o->rc = (int)rep->elements;
    } else {
        o->rc = -1;
        snprintf(o->err, sizeof o->err, "unexpected reply type %d",
                 rep->type);
    }
    if (o->rc < 0)
        snprintf(o->text, sizeof o->text, "error \"%s\"", o->err);
    else
        describe_keys(o);
}

static int same_keys(const outcome *a, const outcome *b) {
    int i;
    if (a->nkeys != b->nkeys) return 0;
    for (i = 0; i < a->nkeys; i++)
        if (a->keylen[i] != b->keylen[i] ||
            memcmp(a->keys[i], b->keys[i], a->keylen[i]) != 0)
            return 0;
    return 1;
}

static int err_is(const outcome *o, const char *prefix) {
    return o->rc < 0 && strncmp(o->err, prefix, strlen(prefix)) == 0;
}

/* The agreement rule at the top of this file; NULL when they agree, else
 * why not. */
static const char *disagreement(const sg_command *c, const outcome *ours,
                                const outcome *redis) {
    /* COMMAND GETKEYS itself needs the command and one argument at least. */
    if (err_is(redis, "ERR wrong number of arguments for 'command|getkeys'"))
        return c == NULL || ours->rc == 0 || ours->rc == SG_CMD_EARITY
                   ? NULL
                   : "a one-argument request with keys";
    if (c == NULL)
        return err_is(redis, "ERR Invalid command specified")
                   ? NULL
                   : "we know no such command";
    if (ours->rc == SG_CMD_EARITY)
        return err_is(redis, "ERR Invalid number of arguments")
                   ? NULL
                   : "we say wrong arity";
    if (ours->rc > 0)
        return same_keys(ours, redis) ? NULL : "keys differ";
    if (ours->rc == 0)
        return (redis->rc == 0 ||
                err_is(redis, "ERR The command has no key arguments"))
                   ? NULL
                   : "we find no keys";
    /* SG_CMD_EKEYS */
    if (err_is(redis, "ERR Invalid arguments specified for command"))
        return NULL;
    if (redis->rc == 0 && (c->flags & SG_CMD_NO_MANDATORY_KEYS)) return NULL;
    return "we say malformed";
}

/* The flags of each key by GETKEYSANDFLAGS against ours; 1 when they agree. */
static int flags_agree(const request *r, const outcome *ours, char *why,
                       size_t cap) {
    redisReply *rep = command_sub("GETKEYSANDFLAGS", r);
    int i, ok = 1;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
        (int)rep->elements != ours->nkeys) {
        snprintf(why, cap, "GETKEYSANDFLAGS gave no matching list");
        freeReplyObject(rep);
        return 0;
    }
    for (i = 0; i < ours->nkeys; i++) {
        uint32_t theirs =
            bits_of(rep->element[i]->element[1], sg_keyspec_flag_name);
        if (theirs != ours->flags[i]) {
            snprintf(why, cap, "key %d: flags 0x%x, GETKEYSANDFLAGS 0x%x", i,
                     (unsigned)ours->flags[i], (unsigned)theirs);
            ok = 0;
        }
    }
    freeReplyObject(rep);
    return ok;
}

/* A lenient row: GETKEYS names keys (else the row tests nothing), we say
 * SG_CMD_EKEYS, and the request itself fails on the server. */
static const char *lenient_disagreement(const request *r,
                                        const outcome *ours,
                                        const outcome *redis) {
    redisReply *rep;
    int failed;
    if (ours->rc != SG_CMD_EKEYS) return "we do not say malformed";
    if (redis->rc <= 0) return "GETKEYS names no keys: not an exception";
    rep = redisCommandArgv(conn, r->argc, (const char **)r->argv, r->len);
    failed = rep != NULL && rep->type == REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    return failed ? NULL : "the request itself succeeded";
}

static void test_getkeys_corpus(void) {
    size_t n, i, ntable;
    const sg_command *t = sg_command_table(&ntable);
    char *covered = calloc(ntable, 1);
    int agree = 0, lenient = 0, missing = 0;

    n = sizeof corpus / sizeof corpus[0];
    for (i = 0; i < n; i++) {
        const char *line = corpus[i];
        int is_lenient = strncmp(line, "~ ", 2) == 0;
        request r;
        const sg_command *c;
        outcome ours, redis;
        redisReply *rep;
        const char *why;
        char fwhy[256];

        if (is_lenient) line += 2;
        test_checks++;
        if (parse_line(line, &r) != 0) {
            TEST_FAIL_("corpus %zu: cannot parse `%s`", i, line);
            continue;
        }
        c = sg_command_resolve(r.argc, r.argv, r.len);
        if (c) covered[c - t] = 1;
        ours_for(c, &r, &ours);
        rep = command_sub("GETKEYS", &r);
        redis_for(&r, rep, &redis);
        why = is_lenient ? lenient_disagreement(&r, &ours, &redis)
                         : disagreement(c, &ours, &redis);
        if (why == NULL && ours.rc > 0 &&
            !flags_agree(&r, &ours, fwhy, sizeof fwhy))
            why = fwhy;
        if (getenv("SG_TEST_VERBOSE"))
            printf("%-3zu %-56s ours %-24s GETKEYS %s\n", i, line, ours.text,
                   redis.text);
        if (why) {
            TEST_FAIL_("corpus %zu: `%s`: %s\n    ours:   %s\n    GETKEYS: %s",
                       i, line, why, ours.text, redis.text);
        } else {
            agree++;
            lenient += is_lenient;
        }
        freeReplyObject(rep);
    }

    /* Every command with keys appears in the corpus. */
    for (i = 0; i < ntable; i++) {
        int j, keyed = 0;
        for (j = 0; j < t[i].nspecs; j++)
            if (!(t[i].specs[j].flags & SG_KS_NOT_KEY)) keyed = 1;
        if (keyed && !covered[i]) {
            TEST_FAIL_("corpus lacks a request for %s", t[i].name);
            missing++;
        }
    }
    test_checks++;
    free(covered);
    printf("corpus: %zu requests, %d agree with GETKEYS (%d of them the "
           "lenient-numkeys exception), %d keyed commands not covered\n",
           n, agree, lenient, missing);
}

int main(void) {
    char host[256];
    int port;
    const char *addr;
    struct timeval tv = {5, 0};

    RUN(test_table_shape);
    RUN(test_lookup);
    RUN(test_resolve);
    RUN(test_keys_contract);
    RUN(test_split_route);

    addr = test_server_var("SG_TEST_STANDALONE");
    test_split_addr(addr, host, sizeof host, &port);
    conn = redisConnectWithTimeout(host, port, tv);
    if (conn == NULL || conn->err) {
        fprintf(stderr, "FAIL: cannot connect to %s: %s\n", addr,
                conn ? conn->errstr : "out of memory");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_table_matches_server);
    RUN(test_getkeys_corpus);
    redisFree(conn);
    return test_report();
}
