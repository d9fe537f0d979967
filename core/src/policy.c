/*
 * policy.c — the LuaJIT host for operators' policy scripts. It owns the
 * lua_State, the sandbox each script runs in, loading (all scripts or none),
 * the declarative parts (checked at load, applied without a Lua call), the
 * hooks (called through stored references with lua_pcall, only where a script
 * defines them, bounded in instructions and time), and the decision for each
 * command: deny, rewrite keys, default TTLs, upstream and read policy.
 *
 * A script returns a table:
 *   name, version                         strings
 *   prefix = "tenant:{user}:"             every key gets it; {user} {client}
 *                                         {addr} {command} come from the request
 *   deny_commands = {"FLUSHALL", "CONFIG SET"}
 *   deny_keys = {"secret:*"}              Redis glob patterns
 *   deny_message = "..."                  the error text (default names policy
 *                                         and what was refused)
 *   default_ttl = {["cache-*"] = 3600}    seconds, for writes that set none
 *   route = {["analytics-*"] = "analytics"}   upstream by the first key
 *   read = {["apikey-*"] = "replica"}     read policy for read-only commands
 *   durable = {["apikey-*"] = 1}          writes acknowledged once that many
 *                                         replicas confirm them (WAIT)
 *   durable_timeout_ms = 200              how long WAIT may take (default: the
 *                                         upstream's timeout)
 *   cache = {["apikey-*"] = 30}           reads answered from the gateway's near
 *                                         cache, an entry living at most that long
 *   dry_run = true                        report, change nothing
 *   rewrite_key = function(key, ctx) return key end
 *   on_command = function(ctx) return {deny=..., upstream=..., read=...} end
 */
#include <lauxlib.h>
#include <lua-cjson.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "commands.h"
#include "pattern.h"
#include "policy.h"

#define DEFAULT_INSTR_LIMIT 1000000L /* per hook call */
#define DEFAULT_TIME_LIMIT_MS 50     /* per hook call */
#define HOOK_EVERY 1000              /* instructions between checks */
/* Lua memory of one policy state while scripts run (loading, hooks): one
 * line such as `s = s .. s` in a loop would otherwise take gigabytes before
 * the instruction count is next checked. */
#define MEM_LIMIT ((size_t)64 << 20)
#define HASH_HEX_MAX 65              /* sha256 in hex, and its NUL */
#define BIG_ALLOC (64u << 10)        /* allocations that also check the time */

typedef struct pat_str {
    char *pattern;
    char *value;
} pat_str;

typedef struct pat_int {
    char *pattern;
    long long value;
} pat_int;

typedef struct script {
    char *name, *version, *file;
    char *prefix;          /* template */
    int prefix_dynamic;    /* has {...} placeholders */
    char **deny_commands;  /* upper case, "CONFIG" or "CONFIG|SET" */
    int ndeny_commands;
    char **deny_keys;
    int ndeny_keys;
    char *deny_message;
    pat_int *ttls;
    int nttls;
    pat_str *routes;
    int nroutes;
    pat_int *reads;
    int nreads;
    pat_int *durables;
    int ndurables;
    long long durable_ms; /* 0: the upstream's timeout */
    pat_int *caches;
    int ncaches;
    int dry_run;
    int ref_rewrite_key, ref_on_command; /* LUA_NOREF when absent */
    char label_on_command[160], label_rewrite_key[160]; /* "policy NAME: HOOK" */
} script;

struct sg_policy {
    sg_error err; /* first: sg_errcode()/sg_errmsg() read it */
    lua_State *L;
    script *scripts;
    int n;
    long instr_limit;
    int time_limit_ms;
    /* the hook in progress */
    long instr_used;
    uint64_t deadline_ms;
    int timed_out;
    const char *running; /* "policy NAME: HOOK" */
    size_t mem;          /* bytes the state holds (its allocator counts) */
    int mem_refused;     /* an allocation over MEM_LIMIT failed */
    const void *cur;     /* the command hooks are deciding on (ctx_src) */
    uint64_t serial;     /* new for each set of scripts loaded (sg_policy_serial) */
    unsigned gen;        /* ctx tables' generation */
    /* string.find, match, gmatch and gsub ask it whether to go on */
    sg_pattern_budget patterns;
    sg_policy_stats st;
};

static int ctx_index(lua_State *L);

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- glob ------------------------------------------------------------------------ */

int sg_glob_match(const char *p, size_t plen, const char *s, size_t slen) {
    while (plen > 0) {
        switch (*p) {
        case '*':
            while (plen > 1 && p[1] == '*') p++, plen--; /* ** is * */
            if (plen == 1) return 1;
            for (;;) {
                if (sg_glob_match(p + 1, plen - 1, s, slen)) return 1;
                if (slen == 0) return 0;
                s++, slen--;
            }
        case '?':
            if (slen == 0) return 0;
            s++, slen--;
            break;
        case '[': {
            int not = 0, match = 0;
            p++, plen--;
            if (plen > 0 && *p == '^') not = 1, p++, plen--;
            while (plen > 0 && *p != ']') {
                if (*p == '\\' && plen >= 2) {
                    p++, plen--;
                    if (slen && *p == *s) match = 1;
                } else if (plen >= 3 && p[1] == '-') {
                    char lo = p[0], hi = p[2];
                    if (lo > hi) lo = p[2], hi = p[0];
                    if (slen && *s >= lo && *s <= hi) match = 1;
                    p += 2, plen -= 2;
                } else if (slen && *p == *s) {
                    match = 1;
                }
                p++, plen--;
            }
            if (not) match = !match;
            if (!match || slen == 0) return 0;
            s++, slen--;
            if (plen == 0) return slen == 0; /* unclosed [ */
            break;
        }
        case '\\':
            if (plen >= 2) p++, plen--;
            /* fall through */
        default:
            if (slen == 0 || *p != *s) return 0;
            s++, slen--;
            break;
        }
        p++, plen--;
    }
    return slen == 0;
}

static int glob(const char *pat, const char *s, size_t slen) {
    return sg_glob_match(pat, strlen(pat), s, slen);
}

/* ---- life ---------------------------------------------------------------------- */

static void script_free(lua_State *L, script *s) {
    int i;
    sg_free(s->name);
    sg_free(s->version);
    sg_free(s->file);
    sg_free(s->prefix);
    for (i = 0; i < s->ndeny_commands; i++) sg_free(s->deny_commands[i]);
    sg_free(s->deny_commands);
    for (i = 0; i < s->ndeny_keys; i++) sg_free(s->deny_keys[i]);
    sg_free(s->deny_keys);
    sg_free(s->deny_message);
    for (i = 0; i < s->nttls; i++) sg_free(s->ttls[i].pattern);
    sg_free(s->ttls);
    for (i = 0; i < s->nroutes; i++) {
        sg_free(s->routes[i].pattern);
        sg_free(s->routes[i].value);
    }
    sg_free(s->routes);
    for (i = 0; i < s->nreads; i++) sg_free(s->reads[i].pattern);
    sg_free(s->reads);
    for (i = 0; i < s->ndurables; i++) sg_free(s->durables[i].pattern);
    sg_free(s->durables);
    for (i = 0; i < s->ncaches; i++) sg_free(s->caches[i].pattern);
    sg_free(s->caches);
    if (L) {
        luaL_unref(L, LUA_REGISTRYINDEX, s->ref_rewrite_key);
        luaL_unref(L, LUA_REGISTRYINDEX, s->ref_on_command);
    }
    memset(s, 0, sizeof *s);
}

static void scripts_free(lua_State *L, script *list, int n) {
    int i;
    for (i = 0; i < n; i++) script_free(L, &list[i]);
    sg_free(list);
}

/* ---- limits: instructions and time ----------------------------------------- */

static sg_policy *policy_of(lua_State *L) {
    sg_policy *p;
    lua_getfield(L, LUA_REGISTRYINDEX, "sg.policy");
    p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
}

/* The state's allocator: it counts, and while a script runs refuses to grow
 * past MEM_LIMIT, and a big allocation past the deadline: one string.rep or
 * `s .. s` is a single instruction the count hook cannot stop, yet could
 * take gigabytes and seconds. The script gets a memory error inside its
 * pcall; C code outside scripts is never refused, so LuaJIT never panics on
 * it. Plain realloc, as LuaJIT's own allocator: not sg_malloc, whose test
 * failures would land outside any pcall. */
static void *policy_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sg_policy *p = ud;
    void *n;
    if (nsize == 0) {
        free(ptr);
        p->mem -= osize;
        return NULL;
    }
    if (p->running && nsize > osize) {
        if (p->mem - osize + nsize > MEM_LIMIT) {
            p->mem_refused = 1;
            return NULL;
        }
        if (nsize - osize >= BIG_ALLOC && now_ms() > p->deadline_ms) {
            p->timed_out = 1;
            return NULL;
        }
    }
    if ((n = realloc(ptr, nsize)) == NULL) return NULL;
    p->mem = p->mem - osize + nsize;
    return n;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
    sg_policy *p = policy_of(L);
    char limits[64];
    p->instr_used += HOOK_EVERY;
    if (p->timed_out || p->instr_used > p->instr_limit || now_ms() > p->deadline_ms) {
        p->timed_out = 1;
        snprintf(limits, sizeof limits, "%ld instructions, %d ms", p->instr_limit,
                 p->time_limit_ms);
        /* where it was stopped: the script's file and line */
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
            luaL_error(L, "%s:%d: %s ran too long (limits: %s): an endless loop?", ar->short_src,
                       ar->currentline, p->running ? p->running : "policy", limits);
        luaL_error(L, "%s ran too long (limits: %s): an endless loop?",
                   p->running ? p->running : "policy", limits);
    }
}

/* The budget of string.find, match, gmatch and gsub (pattern.c), which the
 * count hook cannot reach: LuaJIT would run each as one instruction, however
 * long it backtracks. Each step of the matcher counts as an instruction (it
 * takes a few times as long as one), and it is stopped as the hook stops Lua
 * code, naming the script's line that called it. */
static void pattern_check(lua_State *L, void *ud, const char *fname, long steps) {
    sg_policy *p = ud;
    char limits[64];
    lua_Debug ar;
    int level;
    p->instr_used += steps;
    if (!p->running) return; /* only scripts run patterns: never, in fact */
    if (!p->timed_out && p->instr_used <= p->instr_limit && now_ms() <= p->deadline_ms) return;
    p->timed_out = 1;
    snprintf(limits, sizeof limits, "%ld instructions, %d ms", p->instr_limit, p->time_limit_ms);
    /* the script's line that called fname: the nearest Lua caller (fname may
     * have been called through pcall); none after a tail call */
    lua_pushliteral(L, "");
    for (level = 1; lua_getstack(L, level, &ar); level++)
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pop(L, 1);
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            break;
        }
    lua_pushfstring(L, "%s ran too long (limits: %s): %s on a pattern that backtracks?",
                    p->running, limits, fname);
    lua_concat(L, 2);
    lua_error(L);
}

/* Calls the function below nargs arguments with the limits on. */
static int limited_pcall(sg_policy *p, const char *what, int nargs, int nresults) {
    lua_State *L = p->L;
    int rc;
    p->instr_used = 0;
    p->timed_out = 0;
    p->deadline_ms = now_ms() + (uint64_t)p->time_limit_ms;
    p->running = what;
    p->mem_refused = 0;
    rc = lua_pcall(L, nargs, nresults, 0); /* the count hook is always on */
    p->running = NULL;
    if (rc == LUA_ERRMEM && p->mem_refused) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s used more than %d MB of memory", what, (int)(MEM_LIMIT >> 20));
    } else if (rc == LUA_ERRMEM && p->timed_out) { /* a big allocation past the deadline */
        lua_pop(L, 1);
        lua_pushfstring(L, "%s ran too long (limits: %d instructions, %d ms): still allocating",
                        what, (int)p->instr_limit, p->time_limit_ms);
    }
    if (rc != 0 && p->mem > MEM_LIMIT / 2) lua_gc(L, LUA_GCCOLLECT, 0); /* its garbage, now */
    return rc;
}

/* The sandbox's pcall: a script may catch its own errors, not the limits. */
static int sandbox_pcall(lua_State *L) {
    sg_policy *p = policy_of(L);
    int top;
    luaL_checkany(L, 1);
    top = lua_gettop(L);
    if (lua_pcall(L, top - 1, LUA_MULTRET, 0) != 0) {
        if (p->timed_out) return lua_error(L);
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/* getmetatable for tables only: shared values' metatables stay out of reach. */
static int sandbox_getmetatable(lua_State *L) {
    if (!lua_istable(L, 1) || !lua_getmetatable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    lua_getfield(L, -1, "__metatable");
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    return 1;
}

/* slotgate.hash(algo, data) → lowercase hex, as Tyk's hash_keys. */
static int sandbox_hash(lua_State *L) {
    size_t len;
    const char *algo = luaL_checkstring(L, 1), *data = luaL_checklstring(L, 2, &len);
    char out[HASH_HEX_MAX];
    int a = sg_hash_algo_from_name(algo);
    if (a < 0) return luaL_error(L, "slotgate.hash: unknown algorithm \"%s\"", algo);
    if (sg_hash_hex(a, data, len, out, sizeof out) < 0)
        return luaL_error(L, "slotgate.hash: cannot hash");
    lua_pushstring(L, out);
    return 1;
}

/* slotgate.tyk_hash(token) → the hash Tyk stores the token under. */
static int sandbox_tyk_hash(lua_State *L) {
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    char out[HASH_HEX_MAX];
    if (sg_hash_hex(sg_tyk_token_hash_algo(token, len), token, len, out, sizeof out) < 0)
        return luaL_error(L, "slotgate.tyk_hash: cannot hash");
    lua_pushstring(L, out);
    return 1;
}

/* Copies the table at the top into a new one (a library the script may not
 * change for others), leaving out `omit`. Leaves the copy on top. */
static void copy_table(lua_State *L, const char *omit) {
    int src = lua_gettop(L);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, src)) {
        if (omit && lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), omit) == 0) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, src + 1);
    }
    lua_remove(L, src);
}

/* Pushes a fresh environment for one script: what a policy needs, and nothing
 * that reaches the file system or the process. */
static void push_sandbox(lua_State *L) {
    static const char *const safe[] = {"assert", "error",    "ipairs", "next",   "pairs",
                                       "rawequal", "rawget", "rawset", "select", "setmetatable",
                                       "tonumber", "tostring", "type",   "unpack", NULL};
    static const char *const libs[] = {"string", "table", "math", "bit", NULL};
    /* cjson's settings (encode_max_depth, decode_max_depth, ...) belong to
     * the one cjson every script shares: a script gets its functions only */
    static const char *const cjson_safe[] = {"encode", "decode", "null", "_NAME", "_VERSION", NULL};
    int i;
    lua_newtable(L);
    for (i = 0; safe[i]; i++) {
        lua_getfield(L, LUA_GLOBALSINDEX, safe[i]);
        lua_setfield(L, -2, safe[i]);
    }
    for (i = 0; libs[i]; i++) {
        lua_getfield(L, LUA_REGISTRYINDEX, "sg.lib");
        lua_getfield(L, -1, libs[i]);
        lua_remove(L, -2);
        copy_table(L, NULL);
        lua_setfield(L, -2, libs[i]);
    }
    lua_newtable(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "sg.lib");
    lua_getfield(L, -1, "cjson");
    for (i = 0; cjson_safe[i]; i++) {
        lua_getfield(L, -1, cjson_safe[i]);
        lua_setfield(L, -4, cjson_safe[i]);
    }
    lua_pop(L, 2);
    lua_setfield(L, -2, "cjson");
    lua_pushcfunction(L, sandbox_pcall);
    lua_setfield(L, -2, "pcall");
    lua_pushcfunction(L, sandbox_getmetatable);
    lua_setfield(L, -2, "getmetatable");
    lua_newtable(L); /* slotgate */
    lua_pushcfunction(L, sandbox_hash);
    lua_setfield(L, -2, "hash");
    lua_pushcfunction(L, sandbox_tyk_hash);
    lua_setfield(L, -2, "tyk_hash");
    lua_pushstring(L, sg_version());
    lua_setfield(L, -2, "version");
    lua_setfield(L, -2, "slotgate");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}

/* An error outside any pcall (a bug): say so before LuaJIT aborts. */
static int panic(lua_State *L) {
    sg_log(SG_LOG_ERROR, "policy: Lua error outside a protected call: %s",
           lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    return 0;
}

static lua_State *new_state(sg_policy *p) {
    /* LuaJIT without GC64 takes no allocator on x86-64: no memory bound there */
    lua_State *L = lua_newstate(policy_alloc, p);
    if (L == NULL) L = luaL_newstate();
    if (L == NULL) return NULL;
    lua_atpanic(L, panic);
    luaL_openlibs(L);
    /* The interpreter only: compiled loops would never reach the count hook.
     * After openlibs: opening the jit library turns the compiler on. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    /* Lua runs in this state only inside limited_pcall, which sets the
     * budget the hook checks: install it once */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushlightuserdata(L, p);
    lua_setfield(L, LUA_REGISTRYINDEX, "sg.policy");
    /* patterns that can be stopped, in the string table itself: the strings'
     * metatable indexes it, so ("x"):find(...) gets them too */
    p->patterns = (sg_pattern_budget){pattern_check, p};
    lua_getfield(L, LUA_GLOBALSINDEX, "string");
    sg_pattern_register(L, -1, &p->patterns);
    lua_pop(L, 1);
    /* the libraries scripts get copies of, kept where scripts cannot reach */
    lua_newtable(L);
    lua_getfield(L, LUA_GLOBALSINDEX, "string");
    copy_table(L, "dump");
    lua_setfield(L, -2, "string");
    lua_getfield(L, LUA_GLOBALSINDEX, "table");
    lua_setfield(L, -2, "table");
    lua_getfield(L, LUA_GLOBALSINDEX, "math");
    lua_setfield(L, -2, "math");
    lua_getfield(L, LUA_GLOBALSINDEX, "bit");
    lua_setfield(L, -2, "bit");
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_setfield(L, -2, "cjson");
    lua_setfield(L, LUA_REGISTRYINDEX, "sg.lib");
    lua_createtable(L, 0, 2); /* the metatable of every ctx */
    lua_pushcfunction(L, ctx_index);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setfield(L, LUA_REGISTRYINDEX, "sg.ctxmeta");
    /* strings share one metatable: lock it, and take string.dump away */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_getfield(L, -1, "__index");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 3);
    return L;
}

/* Serials name a set of scripts for as long as the process runs: a freed
 * policy's address can come back, its serial cannot. */
static uint64_t next_serial(void) {
    static uint64_t last;
    return __atomic_add_fetch(&last, 1, __ATOMIC_RELAXED);
}

sg_policy *sg_policy_new(void) {
    sg_policy *p = sg_calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->serial = next_serial();
    p->instr_limit = DEFAULT_INSTR_LIMIT;
    p->time_limit_ms = DEFAULT_TIME_LIMIT_MS;
    if ((p->L = new_state(p)) == NULL) {
        sg_free(p);
        return NULL;
    }
    return p;
}

void sg_policy_free(sg_policy *p) {
    if (p == NULL) return;
    scripts_free(p->L, p->scripts, p->n);
    lua_close(p->L);
    sg_free(p);
}

int sg_policy_set_limits(sg_policy *p, long instructions, int ms) {
    if (instructions < HOOK_EVERY || ms < 1)
        return sg_seterr(&p->err, SG_EINVAL,
                         "policy limits must be at least %d instructions and 1 ms", HOOK_EVERY);
    p->instr_limit = instructions;
    p->time_limit_ms = ms;
    return SG_OK;
}

int sg_policy_count(const sg_policy *p) { return p->n; }

const char *sg_policy_name(const sg_policy *p, int i) {
    return i >= 0 && i < p->n ? p->scripts[i].name : NULL;
}

void sg_policy_stats_get(const sg_policy *p, sg_policy_stats *out) { *out = p->st; }

uint64_t sg_policy_serial(const sg_policy *p) { return p->serial; }

int sg_policy_cache_prefixes(const sg_policy *p, sg_buf *out) {
    int i, j, k, n = 0;
    for (i = 0; i < p->n; i++) {
        const script *s = &p->scripts[i];
        for (j = 0; j < s->ncaches; j++) {
            const char *pat = s->caches[j].pattern;
            size_t lit = strcspn(pat, "*?[\\"), start = out->len;
            /* the scripts from this one on put their prefixes in front, the
             * last one's first; a computed rewrite can start a key anyhow */
            for (k = p->n - 1; k >= i; k--) {
                if (p->scripts[k].prefix_dynamic || p->scripts[k].ref_rewrite_key != LUA_NOREF)
                    return -1;
                if (p->scripts[k].prefix) sg_buf_puts(out, p->scripts[k].prefix);
            }
            sg_buf_append(out, pat, lit);
            if (out->len == start) return -1; /* "*...": any key */
            sg_buf_append(out, "", 1);
            n++;
        }
    }
    return n;
}

/* ---- loading ---------------------------------------------------------------- */

typedef struct loading {
    sg_policy *p;
    script *s;
    const char *file;
} loading;

static int load_error(loading *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int load_error(loading *ld, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sg_seterr(&ld->p->err, SG_ESCRIPT, "%s: %s", ld->file, msg);
}

/* Reads a list of strings (t[field]); upper-cases when asked. */
static int read_string_list(loading *ld, int t, const char *field, char ***out, int *n, int upper) {
    lua_State *L = ld->p->L;
    size_t len, i;
    int rc = SG_OK;
    lua_getfield(L, t, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return SG_OK;
    }
    if (!lua_istable(L, -1)) {
        rc = load_error(ld, "%s must be a list of strings, not a %s", field, luaL_typename(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    len = lua_objlen(L, -1);
    if ((*out = sg_calloc(len ? len : 1, sizeof **out)) == NULL) {
        lua_pop(L, 1);
        return sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
    }
    for (i = 1; i <= len && rc == SG_OK; i++) {
        lua_rawgeti(L, -1, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING) {
            rc = load_error(ld, "%s[%zu] must be a string, not a %s", field, i,
                            luaL_typename(L, -1));
        } else if (((*out)[i - 1] = sg_strdup(lua_tostring(L, -1))) == NULL) {
            rc = sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
        } else {
            char *c;
            (*n)++;
            if (upper)
                for (c = (*out)[i - 1]; *c; c++) {
                    if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
                    if (*c == ' ') *c = '|'; /* "CONFIG SET" names CONFIG|SET */
                }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

static int read_pattern_map(loading *ld, int t, const char *field, int kind, void **out, int *n) {
    lua_State *L = ld->p->L;
    int rc = SG_OK, cap = 0;
    lua_getfield(L, t, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return SG_OK;
    }
    if (!lua_istable(L, -1)) {
        rc = load_error(ld, "%s must be a table of pattern = value, not a %s", field,
                        luaL_typename(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    lua_pushnil(L);
    while (rc == SG_OK && lua_next(L, -2)) {
        const char *pat;
        if (lua_type(L, -2) != LUA_TSTRING) {
            rc = load_error(ld, "%s: keys must be glob patterns (strings)", field);
            lua_pop(L, 1);
            break;
        }
        pat = lua_tostring(L, -2);
        if (*n == cap) {
            size_t sz = kind == 's' ? sizeof(pat_str) : sizeof(pat_int);
            void *nv = sg_realloc(*out, (size_t)(cap ? cap * 2 : 4) * sz);
            if (nv == NULL) {
                rc = sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
                lua_pop(L, 1);
                break;
            }
            *out = nv;
            cap = cap ? cap * 2 : 4;
        }
        if (kind == 's') {
            pat_str *e = &((pat_str *)*out)[*n];
            if (lua_type(L, -1) != LUA_TSTRING) {
                rc = load_error(ld, "%s[\"%s\"] must be a string", field, pat);
            } else {
                e->pattern = sg_strdup(pat);
                e->value = sg_strdup(lua_tostring(L, -1));
                (*n)++;
                if (!e->pattern || !e->value)
                    rc = sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
            }
        } else if (kind == 'r') {
            pat_int *e = &((pat_int *)*out)[*n];
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            int pol = sg_read_policy_parse(v);
            if (pol < 0) {
                rc = load_error(
                    ld, "%s[\"%s\"] must be \"master\", \"prefer-replica\", \"replica\" or \"any\"",
                    field, pat);
            } else {
                e->pattern = sg_strdup(pat);
                e->value = pol;
                (*n)++;
                if (!e->pattern) rc = sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
            }
        } else if (kind == 'd') {
            pat_int *e = &((pat_int *)*out)[*n];
            lua_Number v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
            if (v < 0 || v > 255 || v != (lua_Number)(int)v) {
                rc = load_error(ld, "%s[\"%s\"] must be a number of replicas (0 to 255)", field,
                                pat);
            } else {
                e->pattern = sg_strdup(pat);
                e->value = (long long)v;
                (*n)++;
                if (!e->pattern) rc = sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
            }
        } else {
            pat_int *e = &((pat_int *)*out)[*n];
            if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 1 ||
                lua_tonumber(L, -1) != (lua_Number)(long long)lua_tonumber(L, -1)) {
                rc = load_error(ld, "%s[\"%s\"] must be a whole number of seconds (1 or more)",
                                field, pat);
            } else {
                e->pattern = sg_strdup(pat);
                e->value = (long long)lua_tonumber(L, -1);
                (*n)++;
                if (!e->pattern) rc = sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
            }
        }
        lua_pop(L, 1);
    }
    if (rc != SG_OK) lua_pop(L, 1); /* the key left by lua_next */
    lua_pop(L, 1);
    return rc;
}

/* durable_timeout_ms: a whole number of milliseconds, 1 or more (WAIT's 0
 * would wait for ever). */
static int read_durable_ms(loading *ld, int t, long long *out) {
    lua_State *L = ld->p->L;
    int rc = SG_OK;
    lua_getfield(L, t, "durable_timeout_ms");
    if (!lua_isnil(L, -1)) {
        lua_Number v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (v < 1 || v > 86400000 || v != (lua_Number)(long long)v)
            rc = load_error(ld, "durable_timeout_ms must be a whole number of milliseconds "
                                "(1 to 86400000)");
        else *out = (long long)v;
    }
    lua_pop(L, 1);
    return rc;
}

static int read_optional_string(loading *ld, int t, const char *field, char **out) {
    lua_State *L = ld->p->L;
    int rc = SG_OK;
    lua_getfield(L, t, field);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            rc = load_error(ld, "%s must be a string, not a %s", field, luaL_typename(L, -1));
        else if ((*out = sg_strdup(lua_tostring(L, -1))) == NULL)
            rc = sg_seterr(&ld->p->err, SG_ENOMEM, "out of memory");
    }
    lua_pop(L, 1);
    return rc;
}

static int read_hook(loading *ld, int t, const char *field, int *ref) {
    lua_State *L = ld->p->L;
    lua_getfield(L, t, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *ref = LUA_NOREF;
        return SG_OK;
    }
    if (!lua_isfunction(L, -1)) {
        int rc = load_error(ld, "%s must be a function, not a %s", field, luaL_typename(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return SG_OK;
}

static const char *const known_fields[] = {
    "name",        "version",    "prefix", "deny_commands", "deny_keys",          "deny_message",
    "default_ttl", "route",      "read",   "durable",       "durable_timeout_ms", "dry_run",
    "rewrite_key", "on_command", "cache",  NULL};

/* The base name of a path without ".lua": the default policy name. */
static char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    size_t n;
    b = b ? b + 1 : path;
    n = strlen(b);
    if (n > 4 && strcmp(b + n - 4, ".lua") == 0) n -= 4;
    return sg_strndup(b, n);
}

/* Loads one script (chunk on the stack top is consumed) into s. */
static int load_script(sg_policy *p, script *s, const char *file) {
    lua_State *L = p->L;
    loading ld = {p, s, file};
    int t, rc, i;
    char what[300];
    s->ref_rewrite_key = s->ref_on_command = LUA_NOREF;
    push_sandbox(L);
    lua_setfenv(L, -2);
    snprintf(what, sizeof what, "policy %s: loading", file);
    if (limited_pcall(p, what, 0, 1) != 0) {
        rc = sg_seterr(&p->err, SG_ESCRIPT, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    if (!lua_istable(L, -1)) {
        rc = load_error(&ld, "the script must return a table of policy fields, not a %s",
                        luaL_typename(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    t = lua_gettop(L);
    /* every field must be known: a typo is an error, not a silent no-op */
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int known = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING)
            for (i = 0; known_fields[i]; i++)
                known |= strcmp(lua_tostring(L, -1), known_fields[i]) == 0;
        if (!known) {
            rc =
                load_error(&ld,
                           "unknown field \"%s\" (known: name, version, prefix, deny_commands, "
                           "deny_keys, deny_message, default_ttl, route, read, durable, "
                           "durable_timeout_ms, cache, dry_run, rewrite_key, on_command)",
                           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)");
            lua_settop(L, t - 1);
            return rc;
        }
    }
    if ((rc = read_optional_string(&ld, t, "name", &s->name)) ||
        (rc = read_optional_string(&ld, t, "version", &s->version)) ||
        (rc = read_optional_string(&ld, t, "prefix", &s->prefix)) ||
        (rc = read_optional_string(&ld, t, "deny_message", &s->deny_message)) ||
        (rc =
             read_string_list(&ld, t, "deny_commands", &s->deny_commands, &s->ndeny_commands, 1)) ||
        (rc = read_string_list(&ld, t, "deny_keys", &s->deny_keys, &s->ndeny_keys, 0)) ||
        (rc = read_pattern_map(&ld, t, "default_ttl", 'i', (void **)&s->ttls, &s->nttls)) ||
        (rc = read_pattern_map(&ld, t, "route", 's', (void **)&s->routes, &s->nroutes)) ||
        (rc = read_pattern_map(&ld, t, "read", 'r', (void **)&s->reads, &s->nreads)) ||
        (rc = read_pattern_map(&ld, t, "durable", 'd', (void **)&s->durables, &s->ndurables)) ||
        (rc = read_durable_ms(&ld, t, &s->durable_ms)) ||
        (rc = read_pattern_map(&ld, t, "cache", 'i', (void **)&s->caches, &s->ncaches)) ||
        (rc = read_hook(&ld, t, "rewrite_key", &s->ref_rewrite_key)) ||
        (rc = read_hook(&ld, t, "on_command", &s->ref_on_command))) {
        lua_settop(L, t - 1);
        return rc;
    }
    lua_getfield(L, t, "dry_run");
    s->dry_run = lua_toboolean(L, -1);
    lua_pop(L, 2);
    if (s->prefix) s->prefix_dynamic = strchr(s->prefix, '{') != NULL;
    if (s->name == NULL && (s->name = base_name(file)) == NULL)
        return sg_seterr(&p->err, SG_ENOMEM, "out of memory");
    snprintf(s->label_on_command, sizeof s->label_on_command, "policy %.120s: on_command", s->name);
    snprintf(s->label_rewrite_key, sizeof s->label_rewrite_key, "policy %.120s: rewrite_key",
             s->name);
    if ((s->file = sg_strdup(file)) == NULL) return sg_seterr(&p->err, SG_ENOMEM, "out of memory");
    return SG_OK;
}

/* Loads a set; it replaces the current one only when all of it loads. */
static int load_set(sg_policy *p, int n, const char *const *names, const char *const *codes) {
    script *list = sg_calloc((size_t)(n ? n : 1), sizeof *list);
    int i, rc = SG_OK, loaded = 0;
    if (list == NULL) return sg_seterr(&p->err, SG_ENOMEM, "out of memory loading policies");
    for (i = 0; i < n && rc == SG_OK; i++) {
        char chunkname[300];
        int lrc;
        if (codes) {
            snprintf(chunkname, sizeof chunkname, "=%s", names[i]);
            lrc = luaL_loadbufferx(p->L, codes[i], strlen(codes[i]), chunkname, "t");
        } else {
            /* source only: bytecode is not checked by LuaJIT, and crafted
             * bytecode reads and writes memory outside any sandbox */
            lrc = luaL_loadfilex(p->L, names[i], "t");
        }
        if (lrc != 0) {
            rc = sg_seterr(&p->err, SG_ESCRIPT, "%s", lua_tostring(p->L, -1));
            lua_pop(p->L, 1);
            break;
        }
        rc = load_script(p, &list[i], names[i]);
        loaded = i + 1;
    }
    if (rc != SG_OK) {
        scripts_free(p->L, list, loaded);
        sg_log(SG_LOG_ERROR, "policies not loaded, the previous set stays: %s", p->err.msg);
        return rc;
    }
    scripts_free(p->L, p->scripts, p->n);
    p->scripts = list;
    p->n = n;
    p->serial = next_serial();
    lua_gc(p->L, LUA_GCCOLLECT, 0);
    sg_clearerr(&p->err);
    return SG_OK;
}

int sg_policy_load(sg_policy *p, const char *const *paths, int n) {
    return load_set(p, n, paths, NULL);
}

int sg_policy_load_string(sg_policy *p, const char *name, const char *code) {
    return load_set(p, 1, &name, &code);
}

/* ---- deciding -------------------------------------------------------------------- */

/* Field by field: the error text's 512 bytes are written only by a denial
 * (a memset of them was a tenth of a cached read's cost). */
/* Every field but errmsg's bytes (512 of them, per command: only the first
 * is set). A field added to sg_decision must be set here. */
void sg_decision_init(sg_decision *d) {
    d->deny = 0;
    d->errmsg[0] = '\0';
    d->upstream = NULL;
    d->read_policy = -1;
    d->rewritten = 0;
    d->argc = 0;
    d->argv = NULL;
    d->argvlen = NULL;
    d->ttls = NULL;
    d->nttls = 0;
    d->cache_secs = 0;
    d->durable = 0;
    d->durable_ms = 0;
    d->info = NULL;
}

void sg_decision_clear(sg_decision *d) {
    int i;
    for (i = 0; i < d->argc && d->argv; i++) sg_free(d->argv[i]);
    sg_free(d->argv);
    sg_free(d->argvlen);
    sg_free(d->ttls);
    sg_decision_init(d);
}

/* The current argv: the decision's copy, or the caller's. */
typedef struct cmdview {
    int argc;
    const char *const *argv;
    const size_t *argvlen;
} cmdview;

static void view_of(const sg_decision *d, cmdview *v) {
    if (d->rewritten) {
        v->argc = d->argc;
        v->argv = (const char *const *)d->argv;
        v->argvlen = d->argvlen;
    }
}

/* Makes the decision own a copy of the argv it may rewrite. */
static int own_argv(sg_decision *d, const cmdview *v) {
    int i;
    if (d->rewritten) return SG_OK;
    if ((d->argv = sg_calloc((size_t)v->argc, sizeof *d->argv)) == NULL ||
        (d->argvlen = sg_malloc((size_t)v->argc * sizeof *d->argvlen)) == NULL)
        return SG_ENOMEM;
    d->argc = v->argc;
    for (i = 0; i < v->argc; i++) {
        if ((d->argv[i] = sg_strndup(v->argv[i], v->argvlen[i])) == NULL) return SG_ENOMEM;
        d->argvlen[i] = v->argvlen[i];
    }
    d->rewritten = 1;
    return SG_OK;
}

static int replace_arg(sg_decision *d, int i, const char *s, size_t len) {
    char *n = sg_strndup(s, len);
    if (n == NULL) return SG_ENOMEM;
    sg_free(d->argv[i]);
    d->argv[i] = n;
    d->argvlen[i] = len;
    return SG_OK;
}

/* Expands {user} {client} {addr} {command} in a prefix. */
static void expand(const char *tpl, const sg_request_ctx *ctx, const char *cmd, sg_buf *b) {
    const char *p = tpl;
    while (*p) {
        const char *close;
        if (*p == '{' && (close = strchr(p, '}')) != NULL) {
            size_t n = (size_t)(close - p - 1);
            const char *v = NULL;
            if (n == 4 && !strncmp(p + 1, "user", 4)) v = ctx && ctx->user ? ctx->user : "default";
            else if (n == 6 && !strncmp(p + 1, "client", 6))
                v = ctx && ctx->client ? ctx->client : "";
            else if (n == 4 && !strncmp(p + 1, "addr", 4)) v = ctx && ctx->addr ? ctx->addr : "";
            else if (n == 7 && !strncmp(p + 1, "command", 7)) v = cmd;
            if (v) {
                sg_buf_puts(b, v);
                p = close + 1;
                continue;
            }
        }
        sg_buf_append(b, p, 1);
        p++;
    }
}

/* ctx as a Lua table: user, client, addr, command, args, keys, each made on
 * first use (most hooks read one or two fields: args and keys cost a string
 * per argument). The fields come from p->cur, the command being decided; a
 * ctx kept past its command reads nil. */
typedef struct ctx_src {
    const sg_request_ctx *ctx;
    const char *cmd;
    cmdview v;
    const int *keyidx;
    int nkeys;
    unsigned gen;
} ctx_src;

static int ctx_index(lua_State *L) {
    sg_policy *p = policy_of(L);
    const ctx_src *src = p->cur;
    const char *k = lua_tostring(L, 2);
    int i;
    lua_rawgeti(L, 1, 0); /* the generation the table belongs to */
    if (src == NULL || k == NULL || (unsigned)lua_tointeger(L, -1) != src->gen) return 0;
    lua_pop(L, 1);
    if (!strcmp(k, "user"))
        lua_pushstring(L, src->ctx && src->ctx->user ? src->ctx->user : "default");
    else if (!strcmp(k, "client"))
        lua_pushstring(L, src->ctx && src->ctx->client ? src->ctx->client : "");
    else if (!strcmp(k, "addr"))
        lua_pushstring(L, src->ctx && src->ctx->addr ? src->ctx->addr : "");
    else if (!strcmp(k, "command")) lua_pushstring(L, src->cmd);
    else if (!strcmp(k, "args")) {
        lua_createtable(L, src->v.argc - 1, 0);
        for (i = 1; i < src->v.argc; i++) {
            lua_pushlstring(L, src->v.argv[i], src->v.argvlen[i]);
            lua_rawseti(L, -2, i);
        }
    } else if (!strcmp(k, "keys")) {
        lua_createtable(L, src->nkeys, 0);
        for (i = 0; i < src->nkeys; i++) {
            lua_pushlstring(L, src->v.argv[src->keyidx[i]], src->v.argvlen[src->keyidx[i]]);
            lua_rawseti(L, -2, i + 1);
        }
    } else {
        return 0;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1); /* made once */
    return 1;
}

static void push_ctx(sg_policy *p, ctx_src *src) {
    lua_State *L = p->L;
    src->gen = ++p->gen;
    p->cur = src;
    lua_createtable(L, 1, 6);
    lua_pushinteger(L, (lua_Integer)src->gen);
    lua_rawseti(L, -2, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "sg.ctxmeta");
    lua_setmetatable(L, -2);
}

/* A hook failed: the command gets an error naming the policy and where. */
static void hook_failed(sg_policy *p, sg_decision *d, const script *s, const char *hook) {
    const char *msg = lua_tostring(p->L, -1);
    if (p->timed_out) p->st.hook_timeouts++;
    else p->st.hook_errors++;
    d->deny = 1;
    snprintf(d->errmsg, sizeof d->errmsg, "ERR policy %s: %s failed: %s", s->name, hook,
             msg ? msg : "(error object is not a string)");
    sg_log(SG_LOG_ERROR, "%s", d->errmsg + 4);
    lua_pop(p->L, 1);
}

static void dry(sg_policy *p, const script *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void dry(sg_policy *p, const script *s, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->st.dry_run_events++;
    sg_log(SG_LOG_INFO, "policy %s (dry run): would %s", s->name, msg);
}

/* The command's display name: "GET", "CONFIG|SET". */
static void command_name(const sg_command *info, const cmdview *v, char *out, size_t outlen) {
    size_t i, n;
    const char *src = info ? info->name : v->argv[0];
    n = info ? info->namelen : v->argvlen[0];
    if (n > outlen - 1) n = outlen - 1;
    memcpy(out, src, n);
    out[n] = '\0';
    for (i = 0; out[i]; i++)
        if (out[i] >= 'a' && out[i] <= 'z') out[i] = (char)(out[i] - 32);
}

static int apply_script(sg_policy *p, script *s, const sg_request_ctx *ctx, cmdview *v,
                        const sg_command *info, sg_decision *d) {
    lua_State *L = p->L;
    int keyidx_small[16], *keyidx = keyidx_small, nkeys = 0, i, j, rc = SG_OK;
    int base = lua_gettop(L); /* what a failed step leaves on the stack goes at done */
    char cmd[64];
    ctx_src src;
    const char *top = NULL;
    d->info = info; /* the keys are rewritten, never the command's name */
    if (info && v->argc > 16 && (keyidx = sg_malloc((size_t)v->argc * sizeof *keyidx)) == NULL)
        return SG_ENOMEM;
    if (info) {
        nkeys = sg_command_keys(info, v->argc, v->argv, v->argvlen, keyidx,
                                v->argc > 16 ? v->argc : 16);
        if (nkeys < 0) nkeys = 0;
    }
    command_name(info, v, cmd, sizeof cmd);
    if (info && info->parent) {
        /* "CONFIG|SET" also matches a rule for "CONFIG" */
        top = info->parent->name;
    }

    /* 1. denied commands and keys */
    for (i = 0; i < s->ndeny_commands && !d->deny; i++) {
        int hit = strcasecmp(s->deny_commands[i], cmd) == 0 ||
                  (top && strcasecmp(s->deny_commands[i], top) == 0);
        if (!hit) continue;
        if (s->dry_run) {
            dry(p, s, "deny %s", cmd);
            continue;
        }
        d->deny = 1;
        snprintf(d->errmsg, sizeof d->errmsg, "NOPERM %s", s->deny_message ? s->deny_message : "");
        if (!s->deny_message)
            snprintf(d->errmsg, sizeof d->errmsg, "NOPERM policy %s refuses %s", s->name, cmd);
    }
    for (i = 0; i < s->ndeny_keys && !d->deny; i++)
        for (j = 0; j < nkeys && !d->deny; j++) {
            if (!glob(s->deny_keys[i], v->argv[keyidx[j]], v->argvlen[keyidx[j]])) continue;
            if (s->dry_run) {
                dry(p, s, "deny %s on key %.*s", cmd, (int)v->argvlen[keyidx[j]],
                    v->argv[keyidx[j]]);
                continue;
            }
            d->deny = 1;
            if (s->deny_message)
                snprintf(d->errmsg, sizeof d->errmsg, "NOPERM %s", s->deny_message);
            else
                snprintf(d->errmsg, sizeof d->errmsg, "NOPERM policy %s refuses key '%.*s' (%s)",
                         s->name, (int)(v->argvlen[keyidx[j]] > 200 ? 200 : v->argvlen[keyidx[j]]),
                         v->argv[keyidx[j]], s->deny_keys[i]);
        }
    if (d->deny) goto done;

    /* 2. the on_command hook */
    if (s->ref_on_command != LUA_NOREF) {
        p->st.hook_calls++;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_on_command);
        src = (ctx_src){ctx, cmd, *v, keyidx, nkeys, 0};
        push_ctx(p, &src);
        if (limited_pcall(p, s->label_on_command, 1, 1) != 0) {
            hook_failed(p, d, s, "on_command");
            goto done;
        }
        if (lua_istable(L, -1)) {
            int t = lua_gettop(L);
            lua_getfield(L, t, "deny");
            if (!lua_isnil(L, -1) && lua_toboolean(L, -1)) {
                const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
                if (s->dry_run) {
                    dry(p, s, "deny %s: %s", cmd, m ? m : "(on_command)");
                } else {
                    d->deny = 1;
                    if (m) snprintf(d->errmsg, sizeof d->errmsg, "NOPERM %s", m);
                    else
                        snprintf(d->errmsg, sizeof d->errmsg, "NOPERM policy %s refuses %s",
                                 s->name, cmd);
                }
            }
            lua_getfield(L, t, "upstream");
            if (lua_type(L, -1) == LUA_TSTRING && !s->dry_run) {
                /* anchored in the registry until the next command's decision */
                lua_pushvalue(L, -1);
                lua_setfield(L, LUA_REGISTRYINDEX, "sg.upstream");
                d->upstream = lua_tostring(L, -1);
            }
            lua_getfield(L, t, "read");
            if (!lua_isnil(L, -1)) {
                const char *r = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
                int pol = sg_read_policy_parse(r);
                if (pol < 0) {
                    /* as the declarative read's is at load: not silently "master" */
                    lua_pushfstring(L, "on_command returned read = %s; expected \"master\", "
                                    "\"prefer-replica\", \"replica\" or \"any\"",
                                    lua_type(L, -1) == LUA_TSTRING ? r : luaL_typename(L, -1));
                    hook_failed(p, d, s, "on_command");
                    goto done;
                }
                if (!s->dry_run) d->read_policy = pol;
            }
            lua_settop(L, t);
        } else if (!lua_isnil(L, -1)) {
            lua_pushfstring(L, "on_command returned a %s; expected nil or a table",
                            luaL_typename(L, -1));
            lua_remove(L, -2);
            hook_failed(p, d, s, "on_command");
            goto done;
        }
        lua_pop(L, 1);
        if (d->deny) goto done;
    }

    /* 3. TTLs and routes match the keys as this script sees them */
    if (info && (info->flags & SG_CMD_WRITE))
        for (j = 0; j < nkeys; j++)
            for (i = 0; i < s->nttls; i++) {
                sg_ttl_key *nt;
                if (!glob(s->ttls[i].pattern, v->argv[keyidx[j]], v->argvlen[keyidx[j]])) continue;
                if (s->dry_run) {
                    dry(p, s, "give key %.*s a TTL of %lld s", (int)v->argvlen[keyidx[j]],
                        v->argv[keyidx[j]], s->ttls[i].value);
                    break;
                }
                if ((nt = sg_realloc(d->ttls, (size_t)(d->nttls + 1) * sizeof *nt)) == NULL) {
                    rc = SG_ENOMEM;
                    goto done;
                }
                d->ttls = nt;
                d->ttls[d->nttls].argi = keyidx[j];
                d->ttls[d->nttls++].seconds = s->ttls[i].value;
                break;
            }
    /* durable: the most replicas any pattern asks for any of the keys */
    if (info && (info->flags & SG_CMD_WRITE))
        for (j = 0; j < nkeys; j++)
            for (i = 0; i < s->ndurables; i++) {
                if (s->durables[i].value <= d->durable ||
                    !glob(s->durables[i].pattern, v->argv[keyidx[j]], v->argvlen[keyidx[j]]))
                    continue;
                if (s->dry_run) {
                    dry(p, s, "confirm the write to key %.*s on %lld replica(s)",
                        (int)v->argvlen[keyidx[j]], v->argv[keyidx[j]], s->durables[i].value);
                    continue;
                }
                d->durable = (int)s->durables[i].value;
                if (s->durable_ms > d->durable_ms) d->durable_ms = (int)s->durable_ms;
            }
    if (nkeys > 0) {
        for (i = 0; i < s->nroutes; i++) {
            if (!glob(s->routes[i].pattern, v->argv[keyidx[0]], v->argvlen[keyidx[0]])) continue;
            if (s->dry_run) dry(p, s, "send %s to upstream %s", cmd, s->routes[i].value);
            else d->upstream = s->routes[i].value;
            break;
        }
        if (info && (info->flags & SG_CMD_READONLY))
            for (i = 0; i < s->nreads; i++) {
                if (!glob(s->reads[i].pattern, v->argv[keyidx[0]], v->argvlen[keyidx[0]])) continue;
                if (s->dry_run)
                    dry(p, s, "read %s from %s", cmd,
                        s->reads[i].value == SG_READ_MASTER ? "the master" : "replicas");
                else d->read_policy = (int)s->reads[i].value;
                break;
            }
        /* a read may be answered from the near cache when every key it names
         * matches a cache pattern: it lives as long as the shortest allows */
        if (info && (info->flags & SG_CMD_READONLY) && s->ncaches > 0) {
            long long secs = 0;
            for (j = 0; j < nkeys; j++) {
                long long k = 0;
                for (i = 0; i < s->ncaches && k == 0; i++)
                    if (glob(s->caches[i].pattern, v->argv[keyidx[j]], v->argvlen[keyidx[j]]))
                        k = s->caches[i].value;
                if (k == 0) {
                    secs = 0;
                    break;
                }
                if (secs == 0 || k < secs) secs = k;
            }
            if (secs > 0 && s->dry_run) dry(p, s, "answer %s from the cache (%lld s)", cmd, secs);
            else if (secs > 0) d->cache_secs = secs;
        }
    }

    /* 4. key rewrites: the prefix, then the hook. New keys are collected
     * first and put in place after, so every hook call sees the command as
     * this script got it. */
    if (nkeys > 0 && (s->prefix || s->ref_rewrite_key != LUA_NOREF)) {
        sg_buf b = {0};
        size_t small_off[16], *off = small_off;
        int ctxi = 0;
        if (nkeys > 16 && (off = sg_malloc((size_t)(nkeys + 1) * sizeof *off)) == NULL) {
            rc = SG_ENOMEM;
            goto done;
        }
        if (s->ref_rewrite_key != LUA_NOREF) {
            src = (ctx_src){ctx, cmd, *v, keyidx, nkeys, 0};
            push_ctx(p, &src);
            ctxi = lua_gettop(L);
        }
        for (j = 0; j < nkeys && rc == SG_OK && !d->deny; j++) {
            int ai = keyidx[j];
            size_t start = b.len;
            off[j] = start;
            if (s->prefix) {
                if (s->prefix_dynamic) expand(s->prefix, ctx, cmd, &b);
                else sg_buf_puts(&b, s->prefix);
            }
            sg_buf_append(&b, v->argv[ai], v->argvlen[ai]);
            if (b.oom) {
                rc = SG_ENOMEM;
                break;
            }
            if (s->ref_rewrite_key != LUA_NOREF) {
                size_t nl;
                const char *nk;
                p->st.hook_calls++;
                lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_rewrite_key);
                lua_pushlstring(L, b.data + start, b.len - start);
                lua_pushvalue(L, ctxi);
                if (limited_pcall(p, s->label_rewrite_key, 2, 1) != 0) {
                    hook_failed(p, d, s, "rewrite_key");
                    break;
                }
                if (lua_type(L, -1) != LUA_TSTRING) {
                    lua_pushfstring(L, "rewrite_key returned a %s; expected the key as a string",
                                    luaL_typename(L, -1));
                    lua_remove(L, -2);
                    hook_failed(p, d, s, "rewrite_key");
                    break;
                }
                nk = lua_tolstring(L, -1, &nl);
                b.len = start;
                sg_buf_append(&b, nk, nl);
                lua_pop(L, 1);
                if (b.oom) rc = SG_ENOMEM;
            }
        }
        off[nkeys] = b.len;
        if (rc == SG_OK && !d->deny) {
            if (!s->dry_run && (rc = own_argv(d, v)) == SG_OK) view_of(d, v);
            for (j = 0; j < nkeys && rc == SG_OK; j++) {
                int ai = keyidx[j];
                const char *nk = b.data + off[j];
                size_t nl = off[j + 1] - off[j];
                if (s->dry_run) {
                    if (nl != v->argvlen[ai] || memcmp(nk, v->argv[ai], nl) != 0)
                        dry(p, s, "rewrite key %.*s to %.*s", (int)v->argvlen[ai], v->argv[ai],
                            (int)nl, nk);
                } else {
                    rc = replace_arg(d, ai, nk, nl);
                }
            }
            if (rc == SG_OK && !s->dry_run) p->st.rewritten++;
        }
        if (off != small_off) sg_free(off);
        sg_buf_free(&b);
    }
done:
    p->cur = NULL; /* a ctx kept past its command reads nil */
    lua_settop(L, base);
    if (keyidx != keyidx_small) sg_free(keyidx);
    return rc;
}

int sg_policy_apply(sg_policy *p, const sg_request_ctx *ctx, int argc, const char *const *argv,
                    const size_t *argvlen, sg_decision *d) {
    return sg_policy_apply_cmd(p, sg_command_resolve(argc, argv, argvlen), ctx, argc, argv,
                               argvlen, d);
}

int sg_policy_apply_cmd(sg_policy *p, const sg_command *info, const sg_request_ctx *ctx, int argc,
                        const char *const *argv, const size_t *argvlen, sg_decision *d) {
    cmdview v = {argc, argv, argvlen};
    int i, rc;
    p->st.commands++;
    /* resolved once: scripts rewrite keys, never the command's name(s) */
    for (i = 0; i < p->n; i++) {
        view_of(d, &v);
        if ((rc = apply_script(p, &p->scripts[i], ctx, &v, info, d)) != SG_OK) return rc;
        if (d->deny) {
            p->st.denied++;
            return SG_OK;
        }
    }
    if (d->upstream) p->st.routed++;
    if (d->nttls) p->st.ttls++;
    if (d->durable) p->st.durable++;
    return SG_OK;
}

int sg_policy_key_prefix(sg_policy *p, const sg_request_ctx *ctx, char **prefix, size_t *len) {
    sg_buf b = {0};
    int i;
    *prefix = NULL;
    *len = 0;
    /* the last script's prefix goes before the earlier ones': it saw the key
     * as they left it */
    for (i = p->n - 1; i >= 0; i--) {
        const script *s = &p->scripts[i];
        if (s->dry_run) continue; /* it renames nothing */
        if (s->ref_rewrite_key != LUA_NOREF) {
            sg_buf_free(&b);
            return sg_seterr(&p->err, SG_EINVAL,
                             "policy %s rewrites keys with a rewrite_key hook, which cannot be "
                             "undone (a key on the node does not say the client's name)",
                             s->name);
        }
        if (s->prefix == NULL) continue;
        if (s->prefix_dynamic && strstr(s->prefix, "{command}")) {
            sg_buf_free(&b);
            return sg_seterr(&p->err, SG_EINVAL,
                             "policy %s prefixes keys with the command's name ({command}), which "
                             "a key on the node does not say",
                             s->name);
        }
        if (s->prefix_dynamic) expand(s->prefix, ctx, NULL, &b);
        else sg_buf_puts(&b, s->prefix);
    }
    if (b.oom) {
        sg_buf_free(&b);
        return sg_seterr(&p->err, SG_ENOMEM, "out of memory");
    }
    *len = b.len;
    *prefix = b.len ? sg_buf_take(&b) : NULL;
    sg_buf_free(&b);
    return SG_OK;
}

/* A description of the decision, for tests and operators. */
char *sg_policy_explain(sg_policy *p, const sg_request_ctx *ctx, int argc, const char *const *argv,
                        const size_t *argvlen) {
    sg_decision d;
    sg_buf b = {0};
    size_t *lens = NULL;
    int i;
    if (argvlen == NULL) {
        if ((lens = sg_malloc((size_t)(argc ? argc : 1) * sizeof *lens)) == NULL) return NULL;
        for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        argvlen = lens;
    }
    sg_decision_init(&d);
    if (sg_policy_apply(p, ctx, argc, argv, argvlen, &d) != SG_OK) {
        sg_free(lens);
        sg_decision_clear(&d);
        return NULL;
    }
    if (d.deny) {
        sg_buf_printf(&b, "deny: %s", d.errmsg);
    } else {
        sg_buf_puts(&b, "command:");
        for (i = 0; i < (d.rewritten ? d.argc : argc); i++) {
            sg_buf_puts(&b, " ");
            if (d.rewritten) sg_buf_append(&b, d.argv[i], d.argvlen[i]);
            else sg_buf_append(&b, argv[i], argvlen[i]);
        }
        if (d.upstream) sg_buf_printf(&b, "\nupstream: %s", d.upstream);
        if (d.read_policy >= 0)
            sg_buf_printf(&b, "\nread: %s", sg_read_policy_label(d.read_policy));
        if (d.cache_secs > 0) sg_buf_printf(&b, "\ncache: %lld", d.cache_secs);
        for (i = 0; i < d.nttls; i++) {
            int ai = d.ttls[i].argi;
            sg_buf_printf(&b, "\nttl: %.*s %lld", (int)(d.rewritten ? d.argvlen[ai] : argvlen[ai]),
                          d.rewritten ? d.argv[ai] : argv[ai], d.ttls[i].seconds);
        }
        if (d.durable)
            sg_buf_printf(&b, "\ndurable: %d replica%s, %d ms", d.durable,
                          d.durable == 1 ? "" : "s", d.durable_ms);
    }
    sg_decision_clear(&d);
    sg_free(lens);
    return sg_buf_take(&b);
}
