/*
 * commands.h — the Redis command table (internal): every command and
 * subcommand of the Redis version the table was generated from, with its
 * arity, flags, key specs and tips, and the functions that read it: lookup by
 * name, resolution of container commands (CONFIG GET, OBJECT ENCODING, ...),
 * the arity check, which arguments of a request are keys (exactly as Redis's
 * COMMAND GETKEYS finds them), and how the router splits, fans out and merges.
 *
 * The data is generated (commands_table.h, by tools/gen_commands.py from a
 * live server's COMMAND output); the routing hints Redis does not give are
 * hand-maintained in commands.c. Everything here is static, const and
 * thread-safe; nothing allocates but sg_command_marks().
 */
#ifndef SG_COMMANDS_H
#define SG_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

/* ---- Command flags, as COMMAND reports them ------------------------------
 * XX(SYMBOL, "name", bit). One list yields the SG_CMD_* bits and the names
 * (sg_command_flag_name); the generator reads this list too, so a flag the
 * server reports and this list lacks stops the generator. */
#define SG_CMD_FLAG_MAP(XX)                                                    \
    XX(WRITE, "write", 0)                                                      \
    XX(READONLY, "readonly", 1)                                                \
    XX(DENYOOM, "denyoom", 2)                                                  \
    XX(MODULE, "module", 3)                                                    \
    XX(ADMIN, "admin", 4)                                                      \
    XX(PUBSUB, "pubsub", 5)                                                    \
    XX(NOSCRIPT, "noscript", 6)                                                \
    XX(BLOCKING, "blocking", 7)                                                \
    XX(LOADING, "loading", 8)                                                  \
    XX(STALE, "stale", 9)                                                      \
    XX(SKIP_MONITOR, "skip_monitor", 10)                                       \
    XX(SKIP_SLOWLOG, "skip_slowlog", 11)                                       \
    XX(ASKING, "asking", 12)                                                   \
    XX(FAST, "fast", 13)                                                       \
    XX(NO_AUTH, "no_auth", 14)                                                 \
    XX(MAY_REPLICATE, "may_replicate", 15)                                     \
    XX(NO_MANDATORY_KEYS, "no_mandatory_keys", 16)                             \
    XX(NO_ASYNC_LOADING, "no_async_loading", 17)                               \
    XX(NO_MULTI, "no_multi", 18)                                               \
    XX(MOVABLEKEYS, "movablekeys", 19)                                         \
    XX(ALLOW_BUSY, "allow_busy", 20)

enum {
#define SG_CMD_FLAG_ENUM_(sym, name, bit) SG_CMD_##sym = 1u << (bit),
    SG_CMD_FLAG_MAP(SG_CMD_FLAG_ENUM_)
#undef SG_CMD_FLAG_ENUM_
};

/* ---- Key-spec flags ------------------------------------------------------
 * How a command uses a key (Redis 7 "key specs"): RO read-only, RW
 * read-write, OW overwrite, RM remove; access/update/insert/delete refine
 * it; not_key marks an argument that is not a key but routes like one
 * (shard channels); incomplete means the spec cannot find every key;
 * variable_flags means the flags depend on other arguments. */
#define SG_KS_FLAG_MAP(XX)                                                     \
    XX(RO, "RO", 0)                                                            \
    XX(RW, "RW", 1)                                                            \
    XX(OW, "OW", 2)                                                            \
    XX(RM, "RM", 3)                                                            \
    XX(ACCESS, "access", 4)                                                    \
    XX(UPDATE, "update", 5)                                                    \
    XX(INSERT, "insert", 6)                                                    \
    XX(DELETE, "delete", 7)                                                    \
    XX(NOT_KEY, "not_key", 8)                                                  \
    XX(INCOMPLETE, "incomplete", 9)                                            \
    XX(VARIABLE_FLAGS, "variable_flags", 10)

enum {
#define SG_KS_FLAG_ENUM_(sym, name, bit) SG_KS_##sym = 1u << (bit),
    SG_KS_FLAG_MAP(SG_KS_FLAG_ENUM_)
#undef SG_KS_FLAG_ENUM_
};

/* ---- Command tips (Redis 7 "tips") ---------------------------------------
 * request_policy: where a keyless or multi-key request goes in a cluster;
 * response_policy: how the replies of a fanned-out request are merged. The
 * generator maps "request_policy:all_shards" to SG_REQ_ALL_SHARDS, and so on.
 * DEFAULT (0) is what Redis means when a command has no such tip: keyless
 * commands go to any one shard, and replies of keyless fan-outs are
 * concatenated; multi-key replies come back in key order. */
#define SG_REQ_POLICY_MAP(XX)                                                  \
    XX(DEFAULT, "default", 0)                                                  \
    XX(ALL_NODES, "all_nodes", 1)                                              \
    XX(ALL_SHARDS, "all_shards", 2)                                            \
    XX(MULTI_SHARD, "multi_shard", 3)                                          \
    XX(SPECIAL, "special", 4)

#define SG_RESP_POLICY_MAP(XX)                                                 \
    XX(DEFAULT, "default", 0)                                                  \
    XX(ONE_SUCCEEDED, "one_succeeded", 1)                                      \
    XX(ALL_SUCCEEDED, "all_succeeded", 2)                                      \
    XX(AGG_LOGICAL_AND, "agg_logical_and", 3)                                  \
    XX(AGG_LOGICAL_OR, "agg_logical_or", 4)                                    \
    XX(AGG_MIN, "agg_min", 5)                                                  \
    XX(AGG_MAX, "agg_max", 6)                                                  \
    XX(AGG_SUM, "agg_sum", 7)                                                  \
    XX(SPECIAL, "special", 8)

/* The other tips, as bits: the reply may differ between calls, or only
 * its order may. */
#define SG_TIP_MAP(XX)                                                         \
    XX(NONDETERMINISTIC_OUTPUT, "nondeterministic_output", 0)                  \
    XX(NONDETERMINISTIC_OUTPUT_ORDER, "nondeterministic_output_order", 1)

enum {
#define SG_REQ_ENUM_(sym, name, val) SG_REQ_##sym = (val),
    SG_REQ_POLICY_MAP(SG_REQ_ENUM_)
#undef SG_REQ_ENUM_
};
enum {
#define SG_RESP_ENUM_(sym, name, val) SG_RESP_##sym = (val),
    SG_RESP_POLICY_MAP(SG_RESP_ENUM_)
#undef SG_RESP_ENUM_
};
enum {
#define SG_TIP_ENUM_(sym, name, bit) SG_TIP_##sym = 1u << (bit),
    SG_TIP_MAP(SG_TIP_ENUM_)
#undef SG_TIP_ENUM_
};

/* ---- Key specs -------------------------------------------------------------
 * Where to start looking (begin_search) and how to find the keys from there
 * (find_keys), exactly as COMMAND INFO gives them. */
enum { SG_BS_UNKNOWN = 0, SG_BS_INDEX, SG_BS_KEYWORD };
enum { SG_FK_UNKNOWN = 0, SG_FK_RANGE, SG_FK_KEYNUM };

typedef struct sg_keyspec {
    uint16_t flags; /* SG_KS_* */
    uint8_t begin;  /* SG_BS_*: how the first key is found */
    uint8_t find;   /* SG_FK_*: how the following keys are found */
    /* SG_BS_INDEX: the first key is argv[index]. */
    int16_t index;
    /* SG_BS_KEYWORD: the first key follows `keyword` (upper case), searched
     * from argv[startfrom] forwards, or from argv[argc + startfrom]
     * backwards when startfrom is negative. */
    int16_t startfrom;
    const char *keyword;
    union {
        /* SG_FK_RANGE: keys from the first to first + lastkey, every
         * keystep; lastkey < 0 counts from the end of argv; limit > 1 means
         * the keys are 1/limit of what remains (XREAD: keys then ids). */
        struct {
            int16_t lastkey, keystep, limit;
        } range;
        /* SG_FK_KEYNUM: argv[first + keynumidx] holds the number of keys,
         * which begin at first + firstkey, every keystep. */
        struct {
            int16_t keynumidx, firstkey, keystep;
        } keynum;
    };
} sg_keyspec;

/* ---- Commands ------------------------------------------------------------- */

typedef struct sg_command sg_command;
struct sg_command {
    const char *name;      /* lower case, as COMMAND lists it: "get",
                              "config|get" for a subcommand */
    uint8_t namelen;       /* strlen(name) */
    int16_t arity;         /* argc including the name(s); negative: at
                              least -arity */
    uint32_t flags;        /* SG_CMD_* */
    int8_t first, last, step; /* legacy key positions (COMMAND INFO) */
    uint8_t tips;          /* SG_TIP_* */
    uint8_t request_policy;  /* SG_REQ_* */
    uint8_t response_policy; /* SG_RESP_* */
    const sg_keyspec *specs; /* nspecs key specs, NULL when none */
    uint8_t nspecs;
    const sg_command *parent; /* the container of a subcommand, else NULL */
    const sg_command *subs;   /* a container's nsubs subcommands, sorted by
                                 name, else NULL */
    uint8_t nsubs;
};

/* The Redis version the table was generated from ("7.0.15"). */
const char *sg_commands_redis_version(void);

/* Every entry, commands and subcommands, sorted by full name ("config" <
 * "config|get"): *count receives how many. For tests and the daemon's
 * COMMAND reply. */
const sg_command *sg_command_table(size_t *count);

/* A set of commands decided once and asked per request with one load:
 * marks[sg_command_index(cmd)] is 1 for an entry whose name is in names
 * (NULL-terminated, as the table spells them: "wait", "client|setname"),
 * or, with families, whose container's name is. Allocated; NULL when out
 * of memory. */
unsigned char *sg_command_marks(const char *const *names, int families);
/* cmd's place in the table (cmd an entry of it). */
size_t sg_command_index(const sg_command *cmd);

/* An entry by its full name, case-insensitive and binary-safe: "GET",
 * "config|get" (as COMMAND INFO names subcommands). NULL when unknown.
 * Binary search, no allocation. */
const sg_command *sg_command_lookup(const char *name, size_t len);

/* The entry a request runs, as Redis picks it: argv[0] names a top-level
 * command; for a container (CONFIG, OBJECT, ...) with argc >= 2, argv[1]
 * names the subcommand. A container without a subcommand argument resolves
 * to the container itself (whose arity then fails). NULL for an unknown
 * command or subcommand ("config|get" as argv[0] is unknown, as in Redis). */
const sg_command *sg_command_resolve(int argc, const char *const *argv,
                                     const size_t *argvlen);

/* 1 when argc (counting the command and subcommand names) fits the
 * command's arity, else 0. Here and below, cmd is an entry of the table (from
 * sg_command_lookup, sg_command_resolve or sg_command_table). */
int sg_command_check_arity(const sg_command *cmd, int argc);

/* Errors of sg_command_keys(). */
#define SG_CMD_EARITY (-1) /* wrong number of arguments */
#define SG_CMD_EKEYS (-2)  /* the key arguments are malformed: numkeys not a
                              number or out of range, no STREAMS, ... */

/* Search flags of sg_command_keys_ex(). */
#define SG_KEYS_INCLUDE_NOT_KEYS 1 /* also the arguments of not_key specs
                                      (SPUBLISH's shard channel) */

/* Which arguments of a request are keys: their argv indexes, in the order
 * Redis's COMMAND GETKEYS gives them, are written to keyidx[0..]. argv is the
 * whole request (argv[0] is the command name) with argvlen[i] the length of
 * argv[i]; cmd is what sg_command_resolve() gave for it (it must point into
 * the table). keyidx may be NULL when maxkeys is 0.
 *
 * Returns the number of keys n >= 0, writing min(n, maxkeys) of them (n never
 * exceeds argc, so maxkeys = argc is always enough); or SG_CMD_EARITY; or
 * SG_CMD_EKEYS for a request whose key arguments the command itself would
 * reject. For every well-formed request the keys are exactly those of
 * COMMAND GETKEYS on Redis 7.0; where Redis's lenient fallback parsers still
 * name keys of a request the command then rejects (EVAL s 1abc k), this
 * returns SG_CMD_EKEYS. 0 means the request has no keys (keyless commands,
 * EVAL s 0). */
int sg_command_keys(const sg_command *cmd, int argc, const char *const *argv,
                    const size_t *argvlen, int *keyidx, int maxkeys);

/* The same, with search flags (SG_KEYS_*) and, when keyflags is not NULL,
 * each key's SG_KS_* flags (as COMMAND GETKEYSANDFLAGS gives them). */
int sg_command_keys_ex(const sg_command *cmd, int argc,
                       const char *const *argv, const size_t *argvlen,
                       int search_flags, int *keyidx, uint16_t *keyflags,
                       int maxkeys);

/* How the router may split a multi-key request whose keys are in several
 * slots, and merge the replies. Derived from the tips (request_policy
 * multi_shard plus the response policy) and the key layout. */
enum {
    SG_SPLIT_NONE = 0, /* cannot be split: all keys must share a slot */
    SG_SPLIT_ARRAY,    /* MGET: one reply per key; reassemble in key order */
    SG_SPLIT_PAIRS,    /* MSET: key value pairs; every part replies +OK */
    SG_SPLIT_SUM       /* DEL UNLINK EXISTS TOUCH: sum the integer replies */
};
int sg_command_split(const sg_command *cmd);

/* Where a request goes. A hand-kept hint in commands.c where there is one
 * (what the gateway answers itself, INFO included; SCAN, whose tip says only
 * "special"; CONFIG GET/RESETSTAT; shard channels; the CLUSTER subcommands
 * that name a slot), else the tips'
 * request_policy (all_shards, all_nodes), else SG_ROUTE_KEYS for a command
 * with key specs and SG_ROUTE_ANY for one without. */
enum {
    SG_ROUTE_ANY = 1,     /* any one master (0 is no route) */
    SG_ROUTE_KEYS,        /* the master of its keys' slot (a request without
                             keys, e.g. EVAL s 0: any master) */
    SG_ROUTE_ALL_MASTERS, /* every master (request_policy:all_shards) */
    SG_ROUTE_ALL_NODES,   /* every node, replicas too (all_nodes) */
    SG_ROUTE_GATEWAY,     /* answered by the gateway itself (ECHO, AUTH, ...) */
    SG_ROUTE_CHANNEL,     /* the master of its shard channel's slot (the
                             not_key arguments: SPUBLISH, SSUBSCRIBE) */
    SG_ROUTE_SLOT         /* the master of the slot its third argument names
                             (CLUSTER COUNTKEYSINSLOT, GETKEYSINSLOT) */
};
int sg_command_route(const sg_command *cmd);

/* How the replies of a fanned-out request are merged: SG_RESP_*, the
 * command's response_policy unless a hint in commands.c sets one. */
int sg_command_merge(const sg_command *cmd);

/* Where a command's reply names keys, so that a gateway that rewrote the
 * keys can name them back as the client sent them. Redis's COMMAND has no
 * flag for it: a hand-kept hint in commands.c. Replies as RESP2 gives them. */
enum {
    SG_REPLY_KEYS_NONE = 0, /* names no key (or only stored names that no
                               request named: KEYS, SCAN, RANDOMKEY) */
    SG_REPLY_KEYS_FIRST,    /* an array whose first element is a key: BLPOP
                               BRPOP BZPOPMIN BZPOPMAX LMPOP BLMPOP ZMPOP
                               BZMPOP */
    SG_REPLY_KEYS_STREAMS   /* an array of [key, entries] arrays: XREAD
                               XREADGROUP */
};
int sg_command_reply_keys(const sg_command *cmd);

/* Names, static storage: "write" for SG_CMD_WRITE (a single bit), "RO" for
 * SG_KS_RO, "all_shards", "agg_sum", "array", "all-masters" ... NULL for
 * values not in the maps. */
const char *sg_command_flag_name(uint32_t bit);
const char *sg_keyspec_flag_name(uint32_t bit);
const char *sg_request_policy_name(int policy);
const char *sg_response_policy_name(int policy);
const char *sg_split_name(int split);
const char *sg_route_name(int route);

#endif
