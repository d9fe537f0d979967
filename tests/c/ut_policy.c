/*
 * ut_policy.c — the policy engine without a server: what a script decides
 * for a command (sg_policy_explain), load errors with file and line, hooks
 * that raise or never end, the sandbox, reloads that keep the old set.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "slotgate.h"
#include "test.h"

typedef struct pcase {
    const char *name;
    const char *script;
    const char *user;
    const char *command; /* space-separated */
    const char *expect;  /* '|'-separated parts of the explanation */
} pcase;

static const pcase cases[] = {
    {"prefix", "return {prefix = 't:'}", NULL, "SET a 1", "command: SET t:a 1"},
    {"prefix on every key", "return {prefix = 't:'}", NULL, "MSET a 1 b 2",
     "command: MSET t:a 1 t:b 2"},
    {"prefix spares non-keys", "return {prefix = 't:'}", NULL, "EVAL s 1 k arg",
     "command: EVAL s 1 t:k arg"},
    {"prefix keyless", "return {prefix = 't:'}", NULL, "PING", "command: PING"},
    {"user template", "return {prefix = 'tenant:{user}:'}", "alice", "GET k",
     "command: GET tenant:alice:k"},
    {"default user", "return {prefix = '{user}/'}", NULL, "GET k", "command: GET default/k"},
    {"command template", "return {prefix = '{command}.'}", NULL, "GET k", "command: GET GET.k"},
    {"deny command", "return {name = 'safe', deny_commands = {'FLUSHALL', 'keys'}}", NULL, "keys *",
     "deny: NOPERM policy safe refuses KEYS"},
    {"deny container", "return {deny_commands = {'CONFIG'}}", NULL, "CONFIG SET maxmemory 1",
     "deny: NOPERM|CONFIG|SET"},
    {"deny subcommand only", "return {deny_commands = {'CONFIG SET'}}", NULL,
     "CONFIG GET maxmemory", "command: CONFIG GET maxmemory"},
    {"deny subcommand", "return {deny_commands = {'config set'}}", NULL, "CONFIG SET a b",
     "deny: NOPERM"},
    {"deny message", "return {deny_commands = {'DEBUG'}, deny_message = 'no debugging here'}", NULL,
     "DEBUG SLEEP 0", "deny: NOPERM no debugging here"},
    {"deny keys", "return {name = 'p', deny_keys = {'secret:*'}}", NULL, "GET secret:x",
     "deny: NOPERM policy p refuses key 'secret:x' (secret:*)"},
    {"deny keys spares others", "return {deny_keys = {'secret:*'}}", NULL, "GET public:x",
     "command: GET public:x"},
    {"deny a later key", "return {deny_keys = {'s?c*'}}", NULL, "MGET a sec b", "deny:"},
    {"default ttl", "return {default_ttl = {['cache-*'] = 3600}}", NULL, "SET cache-a v",
     "command: SET cache-a v|ttl: cache-a 3600"},
    {"ttl only writes", "return {default_ttl = {['cache-*'] = 3600}}", NULL, "GET cache-a",
     "command: GET cache-a"},
    {"ttl per key", "return {default_ttl = {['c*'] = 60}}", NULL, "MSET c1 v x v c2 v",
     "ttl: c1 60|ttl: c2 60"},
    {"ttl after prefix", "return {prefix = 'p:', default_ttl = {['cache-*'] = 5}}", NULL,
     "SET cache-a v", "command: SET p:cache-a v|ttl: p:cache-a 5"},
    {"route", "return {route = {['analytics-*'] = 'analytics'}}", NULL, "RPUSH analytics-x v",
     "upstream: analytics"},
    {"route no match", "return {route = {['analytics-*'] = 'analytics'}}", NULL, "GET x",
     "command: GET x"},
    {"read from replicas", "return {read = {['apikey-*'] = 'replica'}}", NULL, "GET apikey-1",
     "read: replica"},
    {"read only for reads", "return {read = {['apikey-*'] = 'replica'}}", NULL, "SET apikey-1 v",
     "command: SET apikey-1 v"},
    {"rewrite hook", "return {rewrite_key = function(k, ctx) return k:upper() end}", NULL,
     "GET abc", "command: GET ABC"},
    {"rewrite hook sees ctx",
     "return {rewrite_key = function(k, ctx) return ctx.user .. '|' .. ctx.command .. '|' .. k "
     "end}",
     "bob", "GET k", "command: GET bob|GET|k"},
    {"prefix then hook", "return {prefix = 'a:', rewrite_key = function(k) return k .. ':z' end}",
     NULL, "GET k", "command: GET a:k:z"},
    {"on_command deny",
     "return {on_command = function(ctx) if ctx.command == 'DEL' then return {deny = 'no "
     "deleting'} end end}",
     NULL, "DEL a", "deny: NOPERM no deleting"},
    {"on_command pass",
     "return {on_command = function(ctx) if ctx.command == 'DEL' then return {deny = true} end "
     "end}",
     NULL, "GET a", "command: GET a"},
    {"on_command route",
     "return {on_command = function(ctx) return {upstream = 'cache', read = 'replica'} end}", NULL,
     "GET a", "upstream: cache|read: replica"},
    {"on_command keys and args",
     "return {on_command = function(ctx) return {deny = ctx.keys[1] .. ',' .. ctx.args[2]} end}",
     NULL, "SET k v", "deny: NOPERM k,v"},
    {"hash in sandbox",
     "return {rewrite_key = function(k) return 'apikey-' .. slotgate.hash('murmur32', 'hello') "
     "end}",
     NULL, "GET apikey-x", "command: GET apikey-248bfa47"},
    {"cjson in sandbox", "return {rewrite_key = function(k) return cjson.encode({k}) end}", NULL,
     "GET a", "command: GET [\"a\"]"},
    {"dry run changes nothing", "return {dry_run = true, prefix = 'x:', deny_commands = {'GET'}}",
     NULL, "GET a", "command: GET a"},
    {"two scripts chain", NULL, NULL, NULL, NULL}, /* placeholder: see test_chain */
    /* errors at run time: the command fails, naming the policy */
    {"hook raises", "return {name = 'boom', on_command = function() error('kaput') end}", NULL,
     "GET a", "deny: ERR policy boom: on_command failed: |kaput"},
    {"hook returns nonsense", "return {on_command = function() return 42 end}", NULL, "GET a",
     "deny: ERR policy|on_command returned a number"},
    {"rewrite returns nil", "return {rewrite_key = function() end}", NULL, "GET a",
     "deny: ERR policy|rewrite_key returned a nil"},
    /* the sandbox */
    {"no os", "return {on_command = function() os.exit(1) end}", NULL, "GET a", "deny: ERR|os"},
    {"no io", "return {on_command = function() io.open('/etc/passwd') end}", NULL, "GET a",
     "deny: ERR|io"},
    {"no require", "return {on_command = function() require('ffi') end}", NULL, "GET a",
     "deny: ERR|require"},
    {"no load", "return {on_command = function() load('return 1') end}", NULL, "GET a",
     "deny: ERR|load"},
    {"no loadstring", "return {on_command = function() loadstring('return 1') end}", NULL, "GET a",
     "deny: ERR|loadstring"},
    {"no setfenv", "return {on_command = function() setfenv(1, {}) end}", NULL, "GET a",
     "deny: ERR|setfenv"},
    {"no debug", "return {on_command = function() debug.getinfo(1) end}", NULL, "GET a",
     "deny: ERR|debug"},
    {"no string.dump", "return {on_command = function() string.dump(print) end}", NULL, "GET a",
     "deny: ERR|dump"},
    {"no dump via metatable",
     "return {on_command = function() return {deny = tostring(('').dump)} end}", NULL, "GET a",
     "deny: NOPERM nil"},
    {"string metatable locked",
     "return {on_command = function() return {deny = type(getmetatable(''))} end}", NULL, "GET a",
     "deny: NOPERM nil"},
    {"no package", "return {on_command = function() package.loadlib('x', 'y') end}", NULL, "GET a",
     "deny: ERR|package"},
    {"no jit", "return {on_command = function() jit.off() end}", NULL, "GET a", "deny: ERR|jit"},
    {"libraries are copies", "string.upper = nil; return {}", NULL, "GET a", "command: GET a"},
    {"no getfenv", "return {on_command = function() getfenv(0).x = 1 end}", NULL, "GET a",
     "deny: ERR|getfenv"},
    {"no ffi", "return {on_command = function() ffi.cdef('int x;') end}", NULL, "GET a",
     "deny: ERR|ffi"},
    {"no collectgarbage", "return {on_command = function() collectgarbage('stop') end}", NULL,
     "GET a", "deny: ERR|collectgarbage"},
    {"no coroutine", "return {on_command = function() coroutine.wrap(print)() end}", NULL, "GET a",
     "deny: ERR|coroutine"},
    {"no xpcall, dofile, loadfile, print, newproxy, module, gcinfo",
     "return {on_command = function() return {deny = tostring(xpcall or dofile or loadfile or "
     "print or newproxy or module or gcinfo or _G.os or _G.package)} end}",
     NULL, "GET a", "deny: NOPERM nil"},
    {"ctx metatable hidden",
     "return {on_command = function(ctx) return {deny = tostring(getmetatable(ctx))} end}", NULL,
     "GET a", "deny: NOPERM false"},
    {"ctx metatable locked", "return {on_command = function(ctx) setmetatable(ctx, {}) end}", NULL,
     "GET a", "deny: ERR|protected metatable"},
    {"cjson's shared settings out of reach",
     "return {on_command = function() return {deny = tostring(cjson.decode_max_depth or "
     "cjson.encode_keep_buffer or cjson.encode_number_precision or cjson.new)} end}",
     NULL, "GET a", "deny: NOPERM nil"},
    {"string methods are the real ones",
     "string.upper = function() return 'evil' end; "
     "return {rewrite_key = function(k) return k:upper() end}",
     NULL, "GET a", "command: GET A"},
    {"memory bomb stopped",
     "return {on_command = function() local s = string.rep('x', 2^20) while true do s = s .. s end "
     "end}",
     NULL, "GET a", "deny: ERR policy|used more than 64 MB of memory"},
    {"string.rep bomb stopped",
     "return {on_command = function() return {deny = string.rep('x', 2^30)} end}", NULL, "GET a",
     "deny: ERR policy|used more than 64 MB of memory"},
};

static const char *const NAME = "case.lua";

static int split(const char *command, const char **argv, char *buf, size_t buflen) {
    int argc = 0;
    char *save = NULL, *t;
    snprintf(buf, buflen, "%s", command);
    for (t = strtok_r(buf, " ", &save); t && argc < 16; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    return argc;
}

static void expect_explain(sg_policy *p, const char *user, const char *command, const char *expect,
                           const char *name) {
    sg_request_ctx ctx = {.user = user, .client = "cli", .addr = "127.0.0.1:5555", .proto = 0};
    const char *argv[16];
    char buf[512], *parts, *part, *save = NULL;
    int argc = split(command, argv, buf, sizeof buf);
    char *out = sg_policy_explain(p, &ctx, argc, argv, NULL);
    test_checks++;
    if (out == NULL) {
        TEST_FAIL_("%s: explain failed", name);
        return;
    }
    parts = strdup(expect);
    for (part = strtok_r(parts, "|", &save); part; part = strtok_r(NULL, "|", &save)) {
        test_checks++;
        if (strstr(out, part) == NULL) TEST_FAIL_("%s: \"%s\" lacks \"%s\"", name, out, part);
    }
    free(parts);
    sg_free_string(out);
}

static void test_cases(void) {
    size_t i;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        sg_policy *p;
        if (cases[i].script == NULL) continue;
        p = sg_policy_new();
        /* a slow machine must not turn the memory cases into time limits */
        sg_policy_set_limits(p, 1000000, 10000);
        test_checks++;
        if (sg_policy_load_string(p, NAME, cases[i].script) != SG_OK) {
            TEST_FAIL_("%s: load failed: %s", cases[i].name, sg_errmsg(p));
        } else {
            expect_explain(p, cases[i].user, cases[i].command, cases[i].expect, cases[i].name);
            /* and the set still decides the same way next time */
            expect_explain(p, cases[i].user, cases[i].command, cases[i].expect, cases[i].name);
        }
        sg_policy_free(p);
    }
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Load errors name the file and line; the old set stays. */
static void test_load_errors(void) {
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"return {\n  prefix = 't:',\n  deny_commands = {'A'\n}\n", ":5: '}' expected"},
        {"local x = \n\n  error('at load')\nreturn {}", ":3: at load"},
        {"return 42", "must return a table of policy fields, not a number"},
        {"return {prefx = 'a'}", "unknown field \"prefx\""},
        {"return {prefix = 5}", "prefix must be a string, not a number"},
        {"return {deny_commands = 'FLUSHALL'}", "deny_commands must be a list of strings"},
        {"return {deny_keys = {1}}", "deny_keys[1] must be a string"},
        {"return {default_ttl = {['a*'] = 'soon'}}", "default_ttl[\"a*\"] must be a whole number"},
        {"return {default_ttl = {['a*'] = 1.5}}", "must be a whole number of seconds"},
        {"return {read = {['a*'] = 'slave'}}", "read[\"a*\"] must be \"master\""},
        {"return {route = {['a*'] = 1}}", "route[\"a*\"] must be a string"},
        {"return {on_command = 'f'}", "on_command must be a function, not a string"},
        {"while true do end", "ran too long"},
        {"os.execute('true') return {}", "os"},
    };
    char dir[] = "/tmp/sg-ut-policy-XXXXXX", good[300], path[300];
    const char *paths[2];
    sg_policy *p = sg_policy_new();
    size_t i;
    if (mkdtemp(dir) == NULL) return;
    snprintf(good, sizeof good, "%s/good.lua", dir);
    write_file(good, "return {name = 'good', prefix = 'g:'}\n");
    paths[0] = good;
    CHECK_INT(sg_policy_load(p, paths, 1), SG_OK);
    CHECK_INT(sg_policy_count(p), 1);
    CHECK_STR(sg_policy_name(p, 0), "good");
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        clock_t t0 = clock();
        snprintf(path, sizeof path, "%s/bad%zu.lua", dir, i);
        write_file(path, bad[i].text);
        paths[0] = good;
        paths[1] = path;
        CHECK_INT(sg_policy_load(p, paths, 2), SG_ESCRIPT);
        CHECK_CONTAINS(sg_errmsg(p), bad[i].expect);
        CHECK_CONTAINS(sg_errmsg(p), "bad");
        CHECK((clock() - t0) < CLOCKS_PER_SEC); /* bounded */
        /* the old set is still in force */
        CHECK_INT(sg_policy_count(p), 1);
        expect_explain(p, NULL, "GET k", "command: GET g:k", "old set after a bad reload");
    }
    paths[0] = "/nonexistent/policy.lua";
    CHECK_INT(sg_policy_load(p, paths, 1), SG_ESCRIPT);
    CHECK_CONTAINS(sg_errmsg(p), "/nonexistent/policy.lua");
    /* the file name is the default name */
    paths[0] = path;
    write_file(path, "return {}");
    CHECK_INT(sg_policy_load(p, paths, 1), SG_OK);
    CHECK(strncmp(sg_policy_name(p, 0), "bad", 3) == 0);
    sg_policy_free(p);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* A hook that never ends is stopped within the limits; the next command works. */
static void test_endless_hook(void) {
    sg_policy *p = sg_policy_new();
    struct timespec a, b;
    sg_policy_stats st;
    double ms;
    CHECK_INT(
        sg_policy_load_string(p, "loop.lua",
                              "return {on_command = function(ctx)\n"
                              "  if ctx.command == 'GET' then while true do end end\n"
                              "  if ctx.command == 'DEL' then\n"
                              "    while true do pcall(function() while true do end end) end\n"
                              "  end\n"
                              "end}"),
        SG_OK);
    clock_gettime(CLOCK_MONOTONIC, &a);
    expect_explain(p, NULL, "GET a",
                   "deny: ERR policy loop: on_command failed: |loop.lua:2:|ran too long",
                   "endless loop");
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    CHECK(ms < 1000);
    /* pcall cannot swallow the limit */
    expect_explain(p, NULL, "DEL a", "ran too long", "endless loop under pcall");
    expect_explain(p, NULL, "SET a b", "command: SET a b", "after the loops");
    sg_policy_stats_get(p, &st);
    CHECK_INT(st.hook_timeouts, 2);
    CHECK(sg_policy_set_limits(p, 10, 1) == SG_EINVAL);
    CHECK_INT(sg_policy_set_limits(p, 5000, 5), SG_OK);
    sg_policy_free(p);
}

/* A pattern that backtracks for minutes is one instruction to LuaJIT: the
 * policy's own matcher counts its steps as instructions, so with a time limit
 * of a minute the instruction limit alone stops it, at once, naming the line;
 * the loading of a script too. */
static void test_backtracking_pattern(void) {
    sg_policy *p = sg_policy_new();
    sg_policy_stats st;
    CHECK_INT(sg_policy_set_limits(p, 200000, 60000), SG_OK);
    CHECK_INT(sg_policy_load_string(
                  p, "bt.lua",
                  "local s, pat = ('a'):rep(40), ('a*'):rep(40) .. 'b'\n"
                  "return {on_command = function(ctx)\n"
                  "  if ctx.command == 'GET' then local at = s:find(pat) return at end\n"
                  "  if ctx.command == 'DEL' then pcall(string.gsub, s, pat, '') end\n"
                  "end}"),
              SG_OK);
    expect_explain(p, NULL, "GET a",
                   "deny: ERR policy bt: on_command failed: bt.lua:3: policy bt: on_command ran "
                   "too long (limits: 200000 instructions, 60000 ms): string.find on a pattern "
                   "that backtracks?",
                   "backtracking find");
    expect_explain(p, NULL, "DEL a", "deny: ERR|bt.lua:4: |ran too long|string.gsub on a pattern",
                   "backtracking gsub under pcall");
    expect_explain(p, NULL, "SET a b", "command: SET a b", "after the patterns");
    sg_policy_stats_get(p, &st);
    CHECK_INT(st.hook_timeouts, 2);
    CHECK_INT(sg_policy_load_string(p, "btload.lua",
                                    "string.match(('a'):rep(40), ('a*'):rep(40) .. 'b')\n"
                                    "return {}"),
              SG_ESCRIPT);
    CHECK_CONTAINS(sg_errmsg(p), "btload.lua:1: policy btload.lua: loading ran too long");
    sg_policy_free(p);
}

/* One instruction can ask for gigabytes (string.rep, s .. s): memory is
 * capped while scripts run, so such a hook (or load) fails at once, within
 * the limits, and the next command works. Found probing fuzz_policy (a timeout there). */
static void test_memory_bomb(void) {
    sg_policy *p = sg_policy_new();
    struct timespec a, b;
    double ms;
    CHECK_INT(sg_policy_set_limits(p, 1000000, 10000), SG_OK); /* the memory cap, not the clock */
    CHECK_INT(sg_policy_load_string(p, "big.lua", "local s = string.rep('x', 2^30)\nreturn {}"),
              SG_ESCRIPT);
    CHECK(strstr(sg_errmsg(p), "more than 64 MB of memory") != NULL);
    CHECK_INT(
        sg_policy_load_string(p, "bomb.lua",
                              "return {on_command = function(ctx)\n"
                              "  if ctx.command == 'GET' then local s = string.rep('x', 2^30) end\n"
                              "  if ctx.command == 'DEL' then\n"
                              "    local s = 'x' for i = 1, 40 do s = s .. s end\n"
                              "  end\n"
                              "end}"),
        SG_OK);
    clock_gettime(CLOCK_MONOTONIC, &a);
    expect_explain(p, NULL, "GET a",
                   "deny: ERR policy bomb: on_command failed|more than 64 MB of memory",
                   "string.rep");
    expect_explain(p, NULL, "DEL a", "more than 64 MB of memory", "doubling");
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    CHECK(ms < 5000);
    expect_explain(p, NULL, "SET a b", "command: SET a b", "after the bombs");
    sg_policy_free(p);

    /* past its deadline a script may not take a big allocation: stopped for time, said so */
    p = sg_policy_new();
    CHECK_INT(sg_policy_set_limits(p, 1000000000, 1), SG_OK);
    CHECK_INT(sg_policy_load_string(p, "late.lua",
                                    "return {on_command = function()\n"
                                    "  local x = string.rep('x', 65536)\n"
                                    "  for i = 1, 1e9 do local s = x .. i end\n"
                                    "end}"),
              SG_OK);
    /* refused by the allocator or stopped by the count hook, whichever sees
     * the clock first: either way named as time, never "not enough memory" */
    expect_explain(p, NULL, "GET a", "on_command|ran too long", "big allocation past the deadline");
    sg_policy_free(p);
}

/* Scripts apply in order: each sees what the one before left. */
static void test_chain(void) {
    char dir[] = "/tmp/sg-ut-policy-XXXXXX", a[300], b[300], cmd[400];
    const char *paths[2];
    sg_policy *p = sg_policy_new();
    sg_policy_stats st;
    if (mkdtemp(dir) == NULL) return;
    snprintf(a, sizeof a, "%s/a.lua", dir);
    snprintf(b, sizeof b, "%s/b.lua", dir);
    write_file(a, "return {prefix = 'one:'}");
    /* b's deny sees the keys as a left them, before its own prefix */
    write_file(b, "return {prefix = 'two:', deny_keys = {'one:secret'}}");
    paths[0] = a;
    paths[1] = b;
    CHECK_INT(sg_policy_load(p, paths, 2), SG_OK);
    expect_explain(p, NULL, "GET k", "command: GET two:one:k", "chain");
    expect_explain(p, NULL, "GET secret", "deny: NOPERM", "chain deny");
    sg_policy_stats_get(p, &st);
    CHECK_INT(st.commands, 2);
    CHECK_INT(st.denied, 1);
    sg_policy_free(p);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* The prefix a set gives every key (the last script's first), for undoing
 * the rename; a hook or {command} cannot be undone. */
static void test_key_prefix(void) {
    char dir[] = "/tmp/sg-ut-policy-XXXXXX", a[300], b[300], c[300], cmd[400];
    const char *paths[3];
    sg_request_ctx ctx = {.user = "alice", .client = "cli"};
    sg_policy *p = sg_policy_new();
    char *pfx;
    size_t len;
    if (mkdtemp(dir) == NULL) return;
    snprintf(a, sizeof a, "%s/a.lua", dir);
    snprintf(b, sizeof b, "%s/b.lua", dir);
    snprintf(c, sizeof c, "%s/c.lua", dir);
    write_file(a, "return {prefix = 'one:{user}:'}");
    write_file(b, "return {name = 'dry', prefix = 'no:', dry_run = true}");
    write_file(c, "return {prefix = '{client}:'}");
    paths[0] = a;
    paths[1] = b;
    paths[2] = c;
    /* no script: keys keep their names */
    CHECK_INT(sg_policy_key_prefix(p, &ctx, &pfx, &len), SG_OK);
    CHECK(pfx == NULL);
    CHECK_INT(len, 0);
    CHECK_INT(sg_policy_load(p, paths, 3), SG_OK);
    expect_explain(p, "alice", "GET k", "command: GET cli:one:alice:k", "prefix chain");
    CHECK_INT(sg_policy_key_prefix(p, &ctx, &pfx, &len), SG_OK);
    CHECK_STR(pfx, "cli:one:alice:");
    CHECK_INT(len, 14);
    sg_free_string(pfx);
    CHECK_INT(sg_policy_load_string(
                  p, "hash.lua", "return {name = 'hash', rewrite_key = function(k) return k end}"),
              SG_OK);
    CHECK_INT(sg_policy_key_prefix(p, &ctx, &pfx, &len), SG_EINVAL);
    CHECK(pfx == NULL);
    CHECK_STR(sg_errmsg(p), "policy hash rewrites keys with a rewrite_key hook, which cannot be "
                            "undone (a key on the node does not say the client's name)");
    CHECK_INT(sg_policy_load_string(p, "cmd.lua", "return {name = 'bycmd', prefix = '{command}:'}"),
              SG_OK);
    CHECK_INT(sg_policy_key_prefix(p, &ctx, &pfx, &len), SG_EINVAL);
    CHECK_STR(sg_errmsg(p), "policy bycmd prefixes keys with the command's name ({command}), which "
                            "a key on the node does not say");
    sg_policy_free(p);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* A ctx read after its command is over gives nil, not the next command's. */
static void test_stale_ctx(void) {
    sg_policy *p = sg_policy_new();
    CHECK_INT(
        sg_policy_load_string(p, "stash.lua",
                              "local saved\n"
                              "return {on_command = function(ctx)\n"
                              "  if saved then return {deny = tostring(saved.user) .. ',' ..\n"
                              "    tostring(saved.keys) .. ',' .. ctx.keys[1]} end\n"
                              "  saved = ctx\n"
                              "end}"),
        SG_OK);
    expect_explain(p, "alice", "GET first", "command: GET first", "stash");
    expect_explain(p, "bob", "GET second", "deny: NOPERM nil,nil,second", "stale ctx");
    sg_policy_free(p);
}

/* One script's globals, libraries and changes to what it was given are its
 * own: the next script and the next command see none of them. */
static void test_isolation(void) {
    static const char *const names[] = {"a.lua", "b.lua"};
    static const char *const codes[] = {
        "shared = 'from a'\n"
        "rawset(_G, 'raw', 'from a')\n"
        "string.upper = nil; math.floor = nil; cjson.encode = nil; table.concat = nil\n"
        "slotgate.hash = nil\n"
        "return {name = 'a', on_command = function(ctx)\n"
        "  later = 'set by a at run time'\n"
        "  pcall(rawset, ctx, 'command', 'FORGED')\n"
        "end}",
        "return {name = 'b', on_command = function(ctx)\n"
        "  return {deny = table.concat({type(shared), type(raw), type(later), type(string.upper),\n"
        "    type(math.floor), type(cjson.encode), type(slotgate.hash), ctx.command}, ',')}\n"
        "end}"};
    sg_policy *p = sg_policy_new();
    char dir[] = "/tmp/sg-ut-policy-XXXXXX", path[300], cmd[400];
    const char *paths[2];
    int i;
    if (mkdtemp(dir) == NULL) return;
    for (i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_file(path, codes[i]);
    }
    snprintf(path, sizeof path, "%s/a.lua", dir);
    paths[0] = strdup(path);
    snprintf(path, sizeof path, "%s/b.lua", dir);
    paths[1] = strdup(path);
    CHECK_INT(sg_policy_load(p, paths, 2), SG_OK);
    expect_explain(p, NULL, "GET k",
                   "deny: NOPERM nil,nil,nil,function,function,function,function,GET", "isolation");
    /* and the next command too */
    expect_explain(p, NULL, "DEL k",
                   "deny: NOPERM nil,nil,nil,function,function,function,function,DEL",
                   "isolation, next command");
    sg_policy_free(p);
    free((void *)paths[0]);
    free((void *)paths[1]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Bytecode is refused: LuaJIT does not check it, and crafted bytecode
 * escapes any sandbox. */
static int dump_writer(lua_State *L, const void *b, size_t n, void *ud) {
    (void)L;
    fwrite(b, 1, n, ud);
    return 0;
}

static void test_bytecode_refused(void) {
    char path[] = "/tmp/sg-ut-policy-bc-XXXXXX";
    const char *paths[1] = {path};
    sg_policy *p = sg_policy_new();
    lua_State *L = luaL_newstate();
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "wb");
    CHECK_INT(luaL_loadstring(L, "return {name = 'compiled', prefix = 'bc:'}"), 0);
    lua_dump(L, dump_writer, f);
    fclose(f);
    lua_close(L);
    CHECK_INT(sg_policy_load(p, paths, 1), SG_ESCRIPT);
    CHECK_CONTAINS(sg_errmsg(p), "mode");
    CHECK_INT(sg_policy_count(p), 0);
    CHECK_INT(sg_policy_load_string(p, "inline.lua", "\033LJ\002junk"), SG_ESCRIPT);
    CHECK_CONTAINS(sg_errmsg(p), "mode");
    sg_policy_free(p);
    unlink(path);
}

static void test_glob(void);

/* ---- key names back (sg_gateway_prepare's keymap) ------------------------------------ */

/* Internal constructors, to build the replies a node would send. */
sg_reply *sg_reply_new_str(int type, const char *s, size_t len);
sg_reply *sg_reply_new_array(size_t n);
unsigned long sg_alloc_fail_at(unsigned long nth);

static sg_reply *str(const char *s) { return sg_reply_new_str(SG_REPLY_STRING, s, strlen(s)); }

/* An array of n replies (the arguments, in order). */
static sg_reply *arr(int n, ...) {
    sg_reply *r = sg_reply_new_array((size_t)n);
    va_list ap;
    int i;
    va_start(ap, n);
    for (i = 0; i < n; i++) r->element[i] = va_arg(ap, sg_reply *);
    va_end(ap);
    return r;
}

/* A gateway that never connects (nothing is sent: prepare only). */
static sg_gateway *offline_gateway(void) {
    const char *env[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:1", "TYK_GW_STORAGE_ENABLECLUSTER=true",
                         NULL};
    sg_config *cfg = sg_config_new();
    sg_gateway *g;
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env), SG_OK);
    g = sg_gateway_new(cfg, NULL);
    sg_config_free(cfg);
    CHECK_INT(sg_errcode(g), SG_OK);
    return g;
}

/* New credentials are taken for every upstream, or for none when the new
 * settings lack one of the gateway's upstreams. */
static void test_credentials(void) {
    const char *two[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:1", "TYK_GW_ENABLESEPERATECACHESTORE=true",
                         "TYK_GW_CACHESTORAGE_ADDRS=127.0.0.1:2", "TYK_GW_STORAGE_PASSWORD=old",
                         NULL};
    const char *one[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:1", "TYK_GW_STORAGE_PASSWORD=new", NULL};
    const char *both[] = {
        "TYK_GW_STORAGE_ADDRS=127.0.0.1:1",      "TYK_GW_ENABLESEPERATECACHESTORE=true",
        "TYK_GW_CACHESTORAGE_ADDRS=127.0.0.1:2", "TYK_GW_STORAGE_PASSWORD=new",
        "TYK_GW_CACHESTORAGE_USERNAME=cu",       NULL};
    sg_config *cfg = sg_config_new(), *next = sg_config_new();
    sg_gateway *g;
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, two), SG_OK);
    g = sg_gateway_new(cfg, NULL);
    CHECK_INT(sg_errcode(g), SG_OK);
    CHECK_INT(sg_config_load(next, NULL, SG_SHAPE_GATEWAY, one), SG_OK);
    CHECK_INT(sg_gateway_set_credentials(g, next), SG_EINVAL);
    CHECK(strstr(sg_errmsg(g), "no upstream \"cache\"") != NULL);
    CHECK_INT(sg_config_load(next, NULL, SG_SHAPE_GATEWAY, both), SG_OK);
    CHECK_INT(sg_gateway_set_credentials(g, next), SG_OK);
    sg_config_free(next); /* copied: the gateway keeps no pointer into it */
    sg_config_free(cfg);
    sg_gateway_free(g);
}

/* A reload: pool sizes and the timeout are taken by every upstream's
 * client; a mode change or a missing upstream is refused, nothing taken. */
static void test_reload(void) {
    const char *two[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:1", "TYK_GW_ENABLESEPERATECACHESTORE=true",
                         "TYK_GW_CACHESTORAGE_ADDRS=127.0.0.1:2", "TYK_GW_STORAGE_MAXACTIVE=10",
                         NULL};
    const char *pools[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:3", "TYK_GW_ENABLESEPERATECACHESTORE=true",
                           "TYK_GW_CACHESTORAGE_ADDRS=127.0.0.1:2", "TYK_GW_STORAGE_MAXACTIVE=4",
                           "TYK_GW_STORAGE_MAXIDLE=2", "TYK_GW_STORAGE_TIMEOUT=3", NULL};
    const char *mode[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:1", "TYK_GW_ENABLESEPERATECACHESTORE=true",
                          "TYK_GW_CACHESTORAGE_ADDRS=127.0.0.1:2", "TYK_GW_STORAGE_MAXACTIVE=7",
                          "TYK_GW_CACHESTORAGE_ENABLECLUSTER=true", NULL};
    const char *one[] = {"TYK_GW_STORAGE_ADDRS=127.0.0.1:1", "TYK_GW_STORAGE_MAXACTIVE=7", NULL};
    sg_config *cfg = sg_config_new(), *next = sg_config_new();
    sg_gateway *g;
    int active, idle, timeout;
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, two), SG_OK);
    g = sg_gateway_new(cfg, NULL);
    CHECK_INT(sg_errcode(g), SG_OK);
    CHECK_INT(sg_config_load(next, NULL, SG_SHAPE_GATEWAY, mode), SG_OK);
    CHECK_INT(sg_gateway_reload(g, next), SG_EINVAL);
    CHECK(strstr(sg_errmsg(g), "upstream cache: mode single -> cluster cannot change") != NULL);
    sg_client_limits(sg_gateway_client(g, "default"), &active, NULL, NULL);
    CHECK_INT(active, 10); /* the default upstream, checked first, took nothing either */
    CHECK_INT(sg_config_load(next, NULL, SG_SHAPE_GATEWAY, one), SG_OK);
    CHECK_INT(sg_gateway_reload(g, next), SG_EINVAL);
    CHECK_INT(sg_config_load(next, NULL, SG_SHAPE_GATEWAY, pools), SG_OK);
    CHECK_INT(sg_gateway_reload(g, next), SG_OK);
    sg_config_free(next); /* copied: the gateway keeps no pointer into it */
    sg_client_limits(sg_gateway_client(g, "default"), &active, &idle, &timeout);
    CHECK_INT(active, 4);
    CHECK_INT(idle, 2);
    CHECK_INT(timeout, 3000);
    sg_config_free(cfg);
    sg_gateway_free(g);
}

/* The keymap of command under g's policies (NULL when it gets none). */
static sg_keymap *keymap_of(sg_gateway *g, const char *command) {
    sg_request_ctx ctx = {.user = "alice"};
    const char *argv[16];
    char buf[512];
    sg_prepared p;
    sg_keymap *m;
    int argc = split(command, argv, buf, sizeof buf);
    CHECK_INT(sg_gateway_prepare(g, &ctx, argc, argv, NULL, &p), SG_OK);
    CHECK_STR(p.error, "");
    m = p.keymap;
    p.keymap = NULL; /* taken */
    sg_prepared_clear(&p);
    return m;
}

static void test_keymap(void) {
    sg_gateway *g = offline_gateway();
    sg_policy *p = sg_policy_new(), *shrink = sg_policy_new(), *same = sg_policy_new();
    sg_keymap *m;
    sg_reply *r;
    CHECK_INT(sg_policy_load_string(p, "p.lua", "return {prefix = 'u:'}"), SG_OK);
    CHECK_INT(sg_policy_load_string(shrink, "s.lua",
                                    "return {rewrite_key = function(k) return k == 'longname' and "
                                    "'x' or k end}"),
              SG_OK);
    CHECK_INT(
        sg_policy_load_string(same, "same.lua", "return {rewrite_key = function(k) return k end}"),
        SG_OK);

    /* no policy, or a command whose reply names no key: no keymap */
    CHECK(keymap_of(g, "BLPOP k 0") == NULL);
    sg_gateway_set_policy(g, p);
    CHECK(keymap_of(g, "GET k") == NULL);
    CHECK(keymap_of(g, "LPOP k") == NULL);
    CHECK(keymap_of(g, "KEYS *") == NULL);

    /* BLPOP: the first element, exact matches only */
    m = keymap_of(g, "BLPOP a u:a 0");
    CHECK(m != NULL);
    r = arr(2, str("u:a"), str("item"));
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->element[0]->str, "a");
    CHECK_INT(r->element[0]->len, 1);
    CHECK_STR(r->element[1]->str, "item");
    sg_reply_free(r);
    r = arr(2, str("u:u:a"), str("u:a")); /* the second key; a value is no key */
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->element[0]->str, "u:a");
    CHECK_STR(r->element[1]->str, "u:a");
    sg_reply_free(r);
    r = arr(2, str("u:ab"), str("item")); /* not a key of the request */
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->element[0]->str, "u:ab");
    sg_reply_free(r);
    r = sg_reply_new_str(SG_REPLY_ERROR, "ERR u:a", 7); /* errors, nil: as they are */
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->str, "ERR u:a");
    sg_reply_free(r);
    CHECK_INT(sg_keymap_apply(m, NULL), SG_OK);
    sg_keymap_free(m);

    /* the other pops, and their blocking forms */
    m = keymap_of(g, "LMPOP 2 l1 l2 LEFT");
    r = arr(2, str("u:l2"), arr(1, str("v")));
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->element[0]->str, "l2");
    sg_reply_free(r);
    sg_keymap_free(m);
    m = keymap_of(g, "BZPOPMIN z 0");
    r = arr(3, str("u:z"), str("m"), str("1"));
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->element[0]->str, "z");
    sg_reply_free(r);
    sg_keymap_free(m);

    /* XREAD: each stream's first element; the ids are no keys */
    m = keymap_of(g, "XREAD COUNT 1 STREAMS s1 s2 0 0");
    CHECK(m != NULL);
    r = arr(3, arr(2, str("u:s1"), arr(0)), arr(2, str("u:s2"), arr(0)), arr(1, str("u:s3")));
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->element[0]->element[0]->str, "s1");
    CHECK_STR(r->element[1]->element[0]->str, "s2");
    CHECK_STR(r->element[2]->element[0]->str, "u:s3");
    sg_reply_free(r);
    sg_keymap_free(m);

    /* a key not changed by its rewrite: nothing to name back */
    sg_gateway_set_policy(g, same);
    CHECK(keymap_of(g, "BLPOP k 0") == NULL);

    /* a stored name shorter than the client's: the name gets room of its own,
     * or, when that allocation fails, the reply stays whole and says so */
    sg_gateway_set_policy(g, shrink);
    m = keymap_of(g, "BRPOP longname 0");
    CHECK(m != NULL);
    r = arr(2, str("x"), str("item"));
    sg_alloc_fail_at(1);
    CHECK_INT(sg_keymap_apply(m, r), SG_ENOMEM);
    sg_alloc_fail_at(0);
    CHECK_STR(r->element[0]->str, "x");
    CHECK_INT(sg_keymap_apply(m, r), SG_OK);
    CHECK_STR(r->element[0]->str, "longname");
    CHECK_INT(r->element[0]->len, 8);
    sg_reply_free(r);
    sg_keymap_free(m);

    /* a failed prepare leaves nothing to free, keymap included */
    {
        sg_request_ctx ctx = {.user = "alice"};
        const char *argv[] = {"BRPOP", "longname", "0"};
        sg_prepared pr;
        unsigned long n, made;
        int rc;
        sg_alloc_fail_at(0);
        CHECK_INT(sg_gateway_prepare(g, &ctx, 3, argv, NULL, &pr), SG_OK);
        made = sg_alloc_fail_at(0);
        sg_prepared_clear(&pr);
        for (n = 1; n <= made; n++) {
            sg_alloc_fail_at(n);
            rc = sg_gateway_prepare(g, &ctx, 3, argv, NULL, &pr);
            sg_alloc_fail_at(0);
            if (rc == SG_OK && pr.error[0] == '\0') CHECK(pr.keymap != NULL);
            else if (rc != SG_OK) CHECK(pr.keymap == NULL && pr.resp == NULL);
            sg_prepared_clear(&pr);
        }
    }

    sg_gateway_set_policy(g, NULL);
    sg_gateway_free(g);
    sg_policy_free(p);
    sg_policy_free(shrink);
    sg_policy_free(same);
}

int main(void) {
    RUN(test_cases);
    RUN(test_load_errors);
    RUN(test_endless_hook);
    RUN(test_backtracking_pattern);
    RUN(test_memory_bomb);
    RUN(test_chain);
    RUN(test_key_prefix);
    RUN(test_stale_ctx);
    RUN(test_isolation);
    RUN(test_bytecode_refused);
    RUN(test_glob);
    RUN(test_keymap);
    RUN(test_credentials);
    RUN(test_reload);
    return test_report();
}

/* the matcher behind deny_keys, default_ttl, route and read */
int sg_glob_match(const char *pat, size_t plen, const char *s, size_t slen);
static void test_glob(void) {
    static const struct {
        const char *pat, *s;
        int match;
    } v[] = {
        {"*", "", 1},           {"*", "abc", 1},     {"a*", "abc", 1},  {"a*", "bac", 0},
        {"*c", "abc", 1},       {"a?c", "abc", 1},   {"a?c", "ac", 0},  {"[ab]x", "bx", 1},
        {"[^ab]x", "bx", 0},    {"[^ab]x", "cx", 1}, {"[a-c]", "b", 1}, {"[a-c]", "d", 0},
        {"a\\*", "a*", 1},      {"a\\*", "ab", 0},   {"**x", "yx", 1},  {"cache-*", "cache-", 1},
        {"cache-*", "cach", 0}, {"x", "xx", 0},      {"", "", 1},       {"[c-a]", "b", 1}};
    size_t i;
    for (i = 0; i < sizeof v / sizeof *v; i++) {
        test_checks++;
        if (sg_glob_match(v[i].pat, strlen(v[i].pat), v[i].s, strlen(v[i].s)) != v[i].match)
            TEST_FAIL_("glob(\"%s\", \"%s\") should be %d", v[i].pat, v[i].s, v[i].match);
    }
}
