/*
 * commands.c — reads the Redis command table: lookup by name, resolution of
 * subcommands, arity, which arguments are keys, and the router's split,
 * route and merge hints.
 *
 * The table itself is generated (commands_table.h, from a live server's
 * COMMAND output, by tools/gen_commands.py). Two small tables below are kept
 * by hand: the getkeys procedures Redis 7.0 uses where key specs cannot find
 * the keys, and the routing hints Redis's tips do not give.
 *
 * sg_command_keys() is Redis's getKeysFromCommandWithSpecs() (src/db.c):
 * the key specs are the one mechanism; a command falls back to its getkeys
 * procedure only where Redis does (a spec marked incomplete or with variable
 * flags, or a spec that fails on the request).
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sg_internal.h"

#include "commands_table.h"

const char *sg_commands_redis_version(void) {
    return SG_COMMANDS_REDIS_VERSION;
}

const sg_command *sg_command_table(size_t *count) {
    if (count) *count = SG_COMMAND_COUNT;
    return command_table;
}

static int named(const char *const *names, const char *name) {
    int i;
    for (i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0) return 1;
    return 0;
}

unsigned char *sg_command_marks(const char *const *names, int families) {
    unsigned char *marks = calloc(SG_COMMAND_COUNT, 1);
    size_t i;
    if (marks == NULL) return NULL;
    for (i = 0; i < SG_COMMAND_COUNT; i++) {
        const sg_command *c = &command_table[i];
        marks[i] = (unsigned char)(named(names, c->name) ||
                                   (families && c->parent && named(names, c->parent->name)));
    }
    return marks;
}

size_t sg_command_index(const sg_command *cmd) { return (size_t)(cmd - command_table); }

/* ---- lookup ---------------------------------------------------------------- */

static unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Compares name[0..len) in any case with the lower-case, NUL-free table
 * name t, byte by byte: < 0, 0, > 0 as name sorts before, equal to or after
 * t. A NUL in name is an ordinary byte. */
static int name_cmp(const char *name, size_t len, const char *t) {
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char a = lower((unsigned char)name[i]);
        unsigned char b = (unsigned char)t[i];
        if (b == '\0') return 1; /* t is a proper prefix of name */
        if (a != b) return a < b ? -1 : 1;
    }
    return t[len] == '\0' ? 0 : -1;
}

/* Binary search of n entries sorted by name, comparing after the first skip
 * bytes of each name (a container's "parent|" prefix). */
static const sg_command *search(const sg_command *base, size_t n, size_t skip,
                                const char *name, size_t len) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(name, len, base[mid].name + skip);
        if (c == 0) return &base[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Top-level names hashed (lower case) into an open-addressing table, made
 * once: every request looks its command up, and a binary search with
 * case-folding compares costs several times more. */
#define NAME_HASH_SIZE 1024 /* a power of two, well over SG_COMMAND_COUNT */
static short name_hash[NAME_HASH_SIZE]; /* index + 1 into command_table; 0: empty */
static pthread_once_t name_hash_once = PTHREAD_ONCE_INIT;

/* FNV-1a over the lower-cased bytes into *h; 0 when name holds a '|' (a
 * subcommand's full name, which only the sorted table has). */
static int hash_name(const char *name, size_t len, unsigned *h) {
    unsigned v = 2166136261u;
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = lower((unsigned char)name[i]);
        if (c == '|') return 0;
        v = (v ^ c) * 16777619u;
    }
    *h = v;
    return 1;
}

static void name_hash_init(void) {
    size_t i;
    for (i = 0; i < SG_COMMAND_COUNT; i++) {
        const sg_command *c = &command_table[i];
        unsigned h = 0;
        if (c->parent != NULL) continue;
        hash_name(c->name, strlen(c->name), &h);
        h &= NAME_HASH_SIZE - 1;
        while (name_hash[h]) h = (h + 1) & (NAME_HASH_SIZE - 1);
        name_hash[h] = (short)(i + 1);
    }
}

/* Whether name[0..len) in any case is the lower-case table name t of
 * length len. */
static int same_name(const char *name, const char *t, size_t len) {
    size_t i;
    for (i = 0; i < len; i++)
        if (lower((unsigned char)name[i]) != (unsigned char)t[i]) return 0;
    return 1;
}

const sg_command *sg_command_lookup(const char *name, size_t len) {
    unsigned h;
    if (name == NULL) return NULL;
    if (!hash_name(name, len, &h)) return search(command_table, SG_COMMAND_COUNT, 0, name, len);
    pthread_once(&name_hash_once, name_hash_init);
    for (h &= NAME_HASH_SIZE - 1; name_hash[h]; h = (h + 1) & (NAME_HASH_SIZE - 1)) {
        const sg_command *c = &command_table[name_hash[h] - 1];
        if (c->namelen == len && same_name(name, c->name, len)) return c;
    }
    return NULL;
}

/* As Redis's lookupCommandLogic(): argv[0] is a top-level command; a
 * container with a second argument resolves to that subcommand. */
const sg_command *sg_command_resolve(int argc, const char *const *argv,
                                     const size_t *argvlen) {
    const sg_command *base;
    if (argc < 1) return NULL;
    base = sg_command_lookup(argv[0], argvlen[0]);
    if (base == NULL || base->parent != NULL) return NULL; /* "config|get" */
    if (argc == 1 || base->nsubs == 0) return base;
    return search(base->subs, base->nsubs, (size_t)base->namelen + 1, argv[1],
                  argvlen[1]);
}

int sg_command_check_arity(const sg_command *cmd, int argc) {
    if (cmd->arity >= 0) return argc == cmd->arity;
    return argc >= -cmd->arity;
}

/* ---- arguments, as Redis reads them ----------------------------------------- */

/* Whether an argument is `word` (upper case) ignoring case, as Redis's
 * strcasecmp() on the NUL-terminated argument sees it: an argument with a NUL
 * byte compares as its part before the NUL ("STREAMS\0x" is STREAMS). */
static int arg_is(const char *arg, size_t len, const char *word) {
    size_t n = strlen(word), i;
    const char *nul = memchr(arg, '\0', len);
    if (nul) len = (size_t)(nul - arg);
    if (len != n) return 0;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)arg[i]) != lower((unsigned char)word[i]))
            return 0;
    return 1;
}

/* Redis's string2ll(): an optional '-', then digits without leading zeros
 * ("0" itself aside), no spaces or '+', within long long. 1 on success. */
static int parse_ll(const char *s, size_t len, long long *out) {
    unsigned long long v = 0, limit = (unsigned long long)LLONG_MAX;
    size_t i = 0;
    int neg = 0;
    if (len == 0) return 0;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    if (s[0] == '-') {
        neg = 1;
        limit += 1; /* |LLONG_MIN| */
        i = 1;
    }
    if (i == len || s[i] < '1' || s[i] > '9') return 0;
    for (; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9') return 0;
        d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = neg ? (v == limit ? LLONG_MIN : -(long long)v) : (long long)v;
    return 1;
}

/* ---- key finding ------------------------------------------------------------- */

/* Where keys are collected: the caller's arrays and how many they hold. */
typedef struct keys_out {
    int *idx;
    uint16_t *flags; /* may be NULL */
    int max;
    int n; /* keys found, possibly more than max */
} keys_out;

static void add_key(keys_out *out, int pos, unsigned flags) {
    if (out->n < out->max) {
        out->idx[out->n] = pos;
        if (out->flags) out->flags[out->n] = (uint16_t)flags;
    }
    out->n++;
}

#define KEYS_INVALID (-1) /* a spec failed on this request */

/* Where one spec's keys begin: the argv index of its first key, 0 when its
 * keyword is absent (the spec then has no keys), KEYS_INVALID when the spec
 * cannot say. As getKeysUsingKeySpecs(), quirks included: a forward
 * keyword search never looks at the last argument (GEORADIUS k 1 2 3 m
 * STORE has no STORE key), a backward one never at argv[1] (only MIGRATE
 * searches backwards, and its procedure decides whenever KEYS is found). */
static int spec_begin(const sg_keyspec *ks, int argc, const char *const *argv,
                      const size_t *argvlen) {
    int start, end, i;
    switch (ks->begin) {
    case SG_BS_INDEX:
        return ks->index;
    case SG_BS_KEYWORD:
        start = ks->startfrom > 0 ? ks->startfrom : argc + ks->startfrom;
        end = ks->startfrom > 0 ? argc - 1 : 1;
        for (i = start; i != end; i = start <= end ? i + 1 : i - 1) {
            if (i >= argc || i < 1) break;
            if (arg_is(argv[i], argvlen[i], ks->keyword)) return i + 1;
        }
        return 0;
    default:
        return KEYS_INVALID; /* "unknown": only a getkeys proc can tell */
    }
}

/* Adds one spec's keys, from argv[first]. SG_OK or KEYS_INVALID. */
static int spec_keys(const sg_keyspec *ks, int first, int argc,
                     const char *const *argv, const size_t *argvlen,
                     keys_out *out) {
    int last, step, i;
    long long numkeys;

    if (ks->find == SG_FK_RANGE) {
        step = ks->range.keystep;
        if (ks->range.lastkey >= 0)
            last = first + ks->range.lastkey; /* a fixed number of keys */
        else if (ks->range.limit == 0)
            last = argc + ks->range.lastkey; /* up to the end, less some */
        else /* 1/limit of what remains (XREAD: the keys, then the ids) */
            last = first + ((argc - first) / ks->range.limit +
                            ks->range.lastkey);
    } else if (ks->find == SG_FK_KEYNUM) {
        int at = first + ks->keynum.keynumidx;
        step = ks->keynum.keystep;
        /* numkeys must be a canonical, non-negative integer. Redis casts it
         * to int and lets 4294967297 pass as 1; we refuse a count larger
         * than the request, as the command itself does. */
        if (at >= argc || !parse_ll(argv[at], argvlen[at], &numkeys) ||
            numkeys < 0 || numkeys > argc)
            return KEYS_INVALID;
        first += ks->keynum.firstkey;
        last = first + (int)numkeys - 1;
    } else {
        return KEYS_INVALID;
    }

    /* Out of bounds, or no keys at all (numkeys 0): a syntax error. */
    if (last >= argc || last < first || first >= argc || step < 1)
        return KEYS_INVALID;
    for (i = first; i <= last; i += step) add_key(out, i, ks->flags);

    /* The keys found are not all the keys. */
    if (ks->flags & SG_KS_INCOMPLETE) return KEYS_INVALID;
    return SG_OK;
}

/* Whether a spec takes part in this search. */
static int spec_counts(const sg_keyspec *ks, int search_flags) {
    return !(ks->flags & SG_KS_NOT_KEY) ||
           (search_flags & SG_KEYS_INCLUDE_NOT_KEYS);
}

/* All specs, in order: SG_OK or KEYS_INVALID (Redis's getKeysUsingKeySpecs
 * without GET_KEYSPEC_RETURN_PARTIAL). */
static int specs_keys(const sg_command *cmd, int search_flags, int argc,
                      const char *const *argv, const size_t *argvlen,
                      keys_out *out) {
    int j, first;
    for (j = 0; j < cmd->nspecs; j++) {
        const sg_keyspec *ks = &cmd->specs[j];
        if (!spec_counts(ks, search_flags)) continue;
        first = spec_begin(ks, argc, argv, argvlen);
        if (first == KEYS_INVALID) return KEYS_INVALID;
        if (first == 0) continue; /* keyword absent: no keys here */
        if (spec_keys(ks, first, argc, argv, argvlen, out) != SG_OK)
            return KEYS_INVALID;
    }
    return SG_OK;
}

/* ---- getkeys procedures --------------------------------------------------------
 * Redis 7.0 calls these where specs don't serve: SORT and MIGRATE declare
 * incomplete specs, SET and BITFIELD variable flags. Each follows its Redis
 * counterpart in src/db.c. SG_OK, or SG_CMD_EKEYS. */

typedef int (*keys_proc)(int argc, const char *const *argv,
                         const size_t *argvlen, keys_out *out);

/* SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dst]:
 * the BY/GET patterns name keys only at run time (its specs say "unknown"),
 * so Redis parses just enough to find STORE. The last STORE wins; a STORE
 * without an argument is ignored; the arguments of LIMIT, GET and BY are
 * skipped, so `GET store` is a pattern, not the option. */
static int sort_keys(int argc, const char *const *argv, const size_t *argvlen,
                     keys_out *out) {
    int i, store = 0;
    for (i = 2; i < argc; i++) {
        if (arg_is(argv[i], argvlen[i], "LIMIT"))
            i += 2;
        else if (arg_is(argv[i], argvlen[i], "STORE") && i + 1 < argc)
            store = i + 1;
        else if (arg_is(argv[i], argvlen[i], "GET") ||
                 arg_is(argv[i], argvlen[i], "BY"))
            i += 1;
    }
    add_key(out, 1, SG_KS_RO | SG_KS_ACCESS);
    if (store) add_key(out, store, SG_KS_OW | SG_KS_UPDATE);
    return SG_OK;
}

/* SORT_RO key ...: the sort key only (BY/GET as for SORT; no STORE). */
static int sort_ro_keys(int argc, const char *const *argv,
                        const size_t *argvlen, keys_out *out) {
    add_key(out, 1, SG_KS_RO | SG_KS_ACCESS);
    return SG_OK;
}

/* MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
 * [AUTH2 user pw] [KEYS key ...]: the KEYS keyword can only be told from a
 * password named "keys" by parsing the options (its spec is incomplete).
 * KEYS with a non-empty key argument is a syntax error: no keys. */
static int migrate_keys(int argc, const char *const *argv,
                        const size_t *argvlen, keys_out *out) {
    int i, first = 3, num = 1;
    for (i = 6; i < argc; i++) {
        if (arg_is(argv[i], argvlen[i], "KEYS")) {
            if (argvlen[3] > 0) {
                num = 0;
            } else {
                first = i + 1;
                num = argc - first;
            }
            break;
        }
        if (arg_is(argv[i], argvlen[i], "AUTH"))
            i += 1;
        else if (arg_is(argv[i], argvlen[i], "AUTH2"))
            i += 2;
        /* COPY and REPLACE take no argument; anything else is skipped */
    }
    for (i = 0; i < num; i++)
        add_key(out, first + i, SG_KS_RW | SG_KS_ACCESS | SG_KS_DELETE);
    return SG_OK;
}

/* SET key value [...] [GET]: the key is read too when GET is given. Redis
 * looks at the first three bytes and a NUL, so "get\0x" is GET as well. */
static int set_keys(int argc, const char *const *argv, const size_t *argvlen,
                    keys_out *out) {
    int i;
    for (i = 3; i < argc; i++) {
        if (arg_is(argv[i], argvlen[i], "GET")) {
            add_key(out, 1, SG_KS_RW | SG_KS_ACCESS | SG_KS_UPDATE);
            return SG_OK;
        }
    }
    add_key(out, 1, SG_KS_OW | SG_KS_UPDATE);
    return SG_OK;
}

/* BITFIELD key [GET t o] [SET t o v] [INCRBY t o i] [OVERFLOW w]: read-only
 * while only GET (and OVERFLOW) appear; SET, INCRBY or anything malformed
 * makes it a write. */
static int bitfield_keys(int argc, const char *const *argv,
                         const size_t *argvlen, keys_out *out) {
    int i, readonly = 1;
    for (i = 2; i < argc; i++) {
        int rem = argc - i - 1; /* arguments after this one */
        if (arg_is(argv[i], argvlen[i], "GET") && rem >= 2) {
            i += 2;
        } else if ((arg_is(argv[i], argvlen[i], "SET") ||
                    arg_is(argv[i], argvlen[i], "INCRBY")) &&
                   rem >= 3) {
            readonly = 0;
            break;
        } else if (arg_is(argv[i], argvlen[i], "OVERFLOW") && rem >= 1) {
            i += 1;
        } else {
            readonly = 0; /* syntax error: assume a write, as Redis does */
            break;
        }
    }
    add_key(out, 1,
            readonly ? SG_KS_RO | SG_KS_ACCESS
                     : SG_KS_RW | SG_KS_ACCESS | SG_KS_UPDATE);
    return SG_OK;
}

/* The numkeys commands (EVAL*, FCALL*, ZUNION*, ZINTER*, ZDIFF*, ZINTERCARD,
 * SINTERCARD, LMPOP, BLMPOP, ZMPOP, BZMPOP: every command with a keynum
 * spec) fall back in Redis to genericGetKeys(), which reads numkeys with
 * atoi() and gives no keys when it is below 1 or too large. A keynum spec
 * fails only on a numkeys that is 0, out of range or not a canonical
 * integer: for "0" that means no keys (EVAL s 0 is valid; ZUNION 0 is not,
 * which the caller's no-mandatory-keys rule decides); for the others the
 * command itself rejects the request, even where atoi() would read "1abc"
 * as 1 and GETKEYS name keys: SG_CMD_EKEYS. */
static int keynum_fallback(const sg_command *cmd, int argc,
                           const char *const *argv, const size_t *argvlen) {
    int j;
    for (j = 0; j < cmd->nspecs; j++) {
        const sg_keyspec *ks = &cmd->specs[j];
        int at;
        if (ks->find != SG_FK_KEYNUM || ks->begin != SG_BS_INDEX) continue;
        at = ks->index + ks->keynum.keynumidx;
        if (at < argc && argvlen[at] == 1 && argv[at][0] == '0') return SG_OK;
    }
    return SG_CMD_EKEYS;
}

static int has_keynum_spec(const sg_command *cmd) {
    int j;
    for (j = 0; j < cmd->nspecs; j++)
        if (cmd->specs[j].find == SG_FK_KEYNUM) return 1;
    return 0;
}

/* Redis 7.0's getkeys procedures that can change the outcome, by table
 * index. Not listed because they cannot: GEORADIUS[BYMEMBER] (its specs never
 * fail: a keyword search stops before the last argument), XREAD/XREADGROUP
 * (their spec fails only when STREAMS is followed by one argument, where
 * xreadGetKeys finds an odd count and no keys either), and the keynum
 * commands (keynum_fallback). */
static const keys_proc procs[SG_COMMAND_COUNT] = {
    [SG_CI_SORT] = sort_keys,         [SG_CI_SORT_RO] = sort_ro_keys,
    [SG_CI_MIGRATE] = migrate_keys,   [SG_CI_SET] = set_keys,
    [SG_CI_BITFIELD] = bitfield_keys,
};

int sg_command_keys_ex(const sg_command *cmd, int argc,
                       const char *const *argv, const size_t *argvlen,
                       int search_flags, int *keyidx, uint16_t *keyflags,
                       int maxkeys) {
    keys_out out = {keyidx, keyflags, maxkeys < 0 ? 0 : maxkeys, 0};
    keys_proc proc = procs[cmd - command_table];
    int j, has_keys = 0, varflags = 0, rc = KEYS_INVALID;

    if (!sg_command_check_arity(cmd, argc)) return SG_CMD_EARITY;
    for (j = 0; j < cmd->nspecs; j++) {
        if (spec_counts(&cmd->specs[j], search_flags)) has_keys = 1;
        if (cmd->specs[j].flags & SG_KS_VARIABLE_FLAGS) varflags = 1;
    }
    if (!has_keys && proc == NULL) return 0; /* a command without keys */

    /* The specs, unless their flags depend on the arguments. */
    if (has_keys && !varflags)
        rc = specs_keys(cmd, search_flags, argc, argv, argvlen, &out);
    /* Where they fail, the command's own procedure, as Redis does. */
    if (rc == KEYS_INVALID) {
        out.n = 0;
        if (proc)
            rc = proc(argc, argv, argvlen, &out);
        else if (has_keynum_spec(cmd))
            rc = keynum_fallback(cmd, argc, argv, argvlen);
        else
            rc = SG_OK; /* no keys found, and none to find otherwise */
        if (rc != SG_OK) return rc;
    }
    /* A command with keys that found none has malformed arguments (GETKEYS:
     * "Invalid arguments"), unless keys are optional for it (EVAL s 0). */
    if (out.n == 0 && !(cmd->flags & SG_CMD_NO_MANDATORY_KEYS))
        return SG_CMD_EKEYS;
    return out.n;
}

int sg_command_keys(const sg_command *cmd, int argc, const char *const *argv,
                    const size_t *argvlen, int *keyidx, int maxkeys) {
    return sg_command_keys_ex(cmd, argc, argv, argvlen, 0, keyidx, NULL,
                              maxkeys);
}

/* ---- routing ------------------------------------------------------------------ */

/* What Redis's tips don't say, by table index (the SG_CI_ symbols are
 * generated, so a command missing from a regenerated table stops the build
 * here). route 0: derive it (sg_command_route); merge 0: the tips'
 * response_policy; reply_keys: where the reply names keys (SG_REPLY_KEYS_*,
 * which COMMAND does not report at all). */
static const struct {
    uint8_t route, merge, reply_keys;
} hints[SG_COMMAND_COUNT] = {
    /* Connection state and introspection the gateway answers itself. */
    [SG_CI_AUTH] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_HELLO] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_SELECT] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_QUIT] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_RESET] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_ECHO] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_READONLY] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_READWRITE] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_ASKING] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_CLIENT_SETNAME] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_CLIENT_GETNAME] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_CLIENT_ID] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_CLIENT_INFO] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_CLIENT_REPLY] = {SG_ROUTE_GATEWAY, 0},
    /* INFO is answered by the gateway (its own figures and the cluster's:
     * README, "Operating slotgated"), though Redis's tip fans it out. */
    [SG_CI_INFO] = {SG_ROUTE_GATEWAY, 0},
    /* COMMAND is answered from this table. */
    [SG_CI_COMMAND] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_COMMAND_COUNT] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_COMMAND_INFO] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_COMMAND_LIST] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_COMMAND_GETKEYS] = {SG_ROUTE_GATEWAY, 0},
    [SG_CI_COMMAND_GETKEYSANDFLAGS] = {SG_ROUTE_GATEWAY, 0},
    /* Fan-outs Redis marks "special" or not at all. SCAN: each master in
     * turn, the cursor naming the node. */
    [SG_CI_SCAN] = {SG_ROUTE_ALL_MASTERS, SG_RESP_SPECIAL},
    /* CONFIG: read from one node; changes go to every node, replicas too. */
    [SG_CI_CONFIG_GET] = {SG_ROUTE_ANY, 0},
    [SG_CI_CONFIG_RESETSTAT] = {SG_ROUTE_ALL_NODES, SG_RESP_ALL_SUCCEEDED},
    [SG_CI_CONFIG_REWRITE] = {SG_ROUTE_ALL_NODES, SG_RESP_ALL_SUCCEEDED},
    /* Shard channels: their not_key spec names the channel to route by. */
    [SG_CI_SPUBLISH] = {SG_ROUTE_CHANNEL, 0},
    /* PUBLISH by its channel's slot too (any node would do: the cluster
     * broadcasts it), so one publisher's messages on a channel all leave
     * from one node and keep their order on the cluster bus */
    [SG_CI_PUBLISH] = {SG_ROUTE_CHANNEL, 0},
    [SG_CI_SSUBSCRIBE] = {SG_ROUTE_CHANNEL, 0},
    [SG_CI_SUNSUBSCRIBE] = {SG_ROUTE_CHANNEL, 0},
    /* A slot's keys: asked of the master that has them. */
    [SG_CI_CLUSTER_COUNTKEYSINSLOT] = {SG_ROUTE_SLOT, 0},
    [SG_CI_CLUSTER_GETKEYSINSLOT] = {SG_ROUTE_SLOT, 0},
    /* Replies that say which of the request's keys they come from. (KEYS,
     * SCAN, RANDOMKEY and CLUSTER GETKEYSINSLOT name keys too, but keys no
     * request named: a rewrite cannot be undone for them; see README.) */
    [SG_CI_BLPOP] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_BRPOP] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_BZPOPMIN] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_BZPOPMAX] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_LMPOP] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_BLMPOP] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_ZMPOP] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_BZMPOP] = {0, 0, SG_REPLY_KEYS_FIRST},
    [SG_CI_XREAD] = {0, 0, SG_REPLY_KEYS_STREAMS},
    [SG_CI_XREADGROUP] = {0, 0, SG_REPLY_KEYS_STREAMS},
};

static int has_key_specs(const sg_command *cmd) {
    int j;
    for (j = 0; j < cmd->nspecs; j++)
        if (!(cmd->specs[j].flags & SG_KS_NOT_KEY)) return 1;
    return 0;
}

int sg_command_route(const sg_command *cmd) {
    int hint = hints[cmd - command_table].route;
    if (hint) return hint;
    switch (cmd->request_policy) {
    case SG_REQ_ALL_SHARDS: return SG_ROUTE_ALL_MASTERS;
    case SG_REQ_ALL_NODES: return SG_ROUTE_ALL_NODES;
    default: break;
    }
    return has_key_specs(cmd) ? SG_ROUTE_KEYS : SG_ROUTE_ANY;
}

int sg_command_merge(const sg_command *cmd) {
    int hint = hints[cmd - command_table].merge;
    return hint ? hint : cmd->response_policy;
}

int sg_command_reply_keys(const sg_command *cmd) { return hints[cmd - command_table].reply_keys; }

/* A multi_shard command (its keys may be sent to their shards separately)
 * whose one key spec runs to the end of the arguments splits by its
 * response policy: none means the replies are put back in key order (MGET),
 * agg_sum adds them (DEL, UNLINK, EXISTS, TOUCH), all_succeeded over key
 * value pairs answers +OK (MSET). MSETNX (agg_min) is not split: a split
 * MSETNX could set one slot's keys and not another's, breaking its
 * all-or-nothing contract. */
int sg_command_split(const sg_command *cmd) {
    const sg_keyspec *ks = cmd->specs;
    if (cmd->request_policy != SG_REQ_MULTI_SHARD || cmd->nspecs != 1 ||
        ks->begin != SG_BS_INDEX || ks->find != SG_FK_RANGE ||
        ks->range.lastkey != -1 || ks->range.limit != 0)
        return SG_SPLIT_NONE;
    switch (cmd->response_policy) {
    case SG_RESP_DEFAULT:
        return ks->range.keystep == 1 ? SG_SPLIT_ARRAY : SG_SPLIT_NONE;
    case SG_RESP_AGG_SUM:
        return ks->range.keystep == 1 ? SG_SPLIT_SUM : SG_SPLIT_NONE;
    case SG_RESP_ALL_SUCCEEDED:
        return ks->range.keystep == 2 ? SG_SPLIT_PAIRS : SG_SPLIT_NONE;
    default:
        return SG_SPLIT_NONE;
    }
}

/* ---- names ----------------------------------------------------------------------- */

/* The name of a value from its X-macro list (commands.h): the lists give a
 * bit for the flags, the value itself for the policies. */
#define SG_NAME_OF_BIT_(sym, name, bit) if (v == 1u << (bit)) return name;
#define SG_NAME_OF_VALUE_(sym, name, value) if (v == (value)) return name;

const char *sg_command_flag_name(uint32_t v) {
    SG_CMD_FLAG_MAP(SG_NAME_OF_BIT_)
    return NULL;
}

const char *sg_keyspec_flag_name(uint32_t v) {
    SG_KS_FLAG_MAP(SG_NAME_OF_BIT_)
    return NULL;
}

const char *sg_request_policy_name(int v) {
    SG_REQ_POLICY_MAP(SG_NAME_OF_VALUE_)
    return NULL;
}

const char *sg_response_policy_name(int v) {
    SG_RESP_POLICY_MAP(SG_NAME_OF_VALUE_)
    return NULL;
}

const char *sg_split_name(int split) {
    static const char *const names[] = {"none", "array", "pairs", "sum"};
    if (split < SG_SPLIT_NONE || split > SG_SPLIT_SUM) return NULL;
    return names[split];
}

const char *sg_route_name(int route) {
    static const char *const names[] = {
        NULL, "any", "keys", "all-masters", "all-nodes", "gateway", "channel", "slot"};
    if (route < SG_ROUTE_ANY || route > SG_ROUTE_SLOT) return NULL;
    return names[route];
}
