/*
 * ut_pattern.c — core/src/pattern.c without a server: the same results and
 * error texts as LuaJIT's own string.find/match/gmatch/gsub on thousands of
 * cases (ut_pattern.lua), and the budget: a backtracking pattern that would
 * run for minutes is stopped after the steps its owner allows.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "pattern.h"
#include "test.h"

/* The differential table: LuaJIT's string functions against ours. */
static void test_same_as_luajit(void) {
    lua_State *L = luaL_newstate();
    char path[4096];
    const char *src = getenv("SG_SOURCE_DIR");
    const char *here = __FILE__, *slash = strrchr(here, '/');
    if (src) snprintf(path, sizeof path, "%s/tests/c/ut_pattern.lua", src);
    else
        snprintf(path, sizeof path, "%.*s/ut_pattern.lua", slash ? (int)(slash - here) : 1,
                 slash ? here : ".");
    luaL_openlibs(L);
    if (luaL_loadfile(L, path) != 0) {
        TEST_FAIL_("%s", lua_tostring(L, -1));
        lua_close(L);
        return;
    }
    lua_newtable(L);
    sg_pattern_register(L, -1, NULL);
    if (lua_pcall(L, 1, 3, 0) != 0) {
        TEST_FAIL_("%s", lua_tostring(L, -1));
        lua_close(L);
        return;
    }
    printf("pattern: %d cases, %d differ\n", (int)lua_tointeger(L, -3), (int)lua_tointeger(L, -2));
    CHECK(lua_tointeger(L, -3) > 5000);
    CHECK_INT(lua_tointeger(L, -2), 0);
    if (lua_tointeger(L, -2) != 0) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
}

typedef struct counter {
    long steps;     /* steps reported */
    int calls;      /* checks */
    int stop_after; /* raise on this check (0: never) */
    char fname[32]; /* the function named in the last check */
} counter;

static void count_check(lua_State *L, void *ud, const char *fname, long steps) {
    counter *c = ud;
    c->steps += steps;
    c->calls++;
    snprintf(c->fname, sizeof c->fname, "%s", fname);
    if (c->stop_after && c->calls >= c->stop_after) luaL_error(L, "stopped by the budget");
}

/* Runs code in a state whose string functions are ours, under budget b;
 * returns the error (static) or NULL. */
static const char *run_bounded(const char *code, const sg_pattern_budget *b) {
    static char err[512];
    lua_State *L = luaL_newstate();
    const char *out = NULL;
    luaL_openlibs(L);
    lua_getglobal(L, "string");
    sg_pattern_register(L, -1, b); /* the strings' metatable finds them there too */
    lua_pop(L, 1);
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
        snprintf(err, sizeof err, "%s", lua_tostring(L, -1));
        out = err;
    }
    lua_close(L);
    return out;
}

/* Each function stops a pattern that backtracks for minutes within the
 * steps its budget allows, through the function and the method call. */
static void test_budget_stops(void) {
    static const char *const codes[] = {
        "string.find(('a'):rep(40), ('a*'):rep(40) .. 'b')",
        "string.match(('a'):rep(40), ('a*'):rep(40) .. 'b')",
        "for _ in string.gmatch(('a'):rep(40), ('a*'):rep(40) .. 'b') do end",
        "string.gsub(('a'):rep(40), ('a*'):rep(40) .. 'b', '')",
        "local s = ('a'):rep(40) return s:find(('a-'):rep(30) .. 'b')",
        "return (('x'):rep(60)):match(('.-x'):rep(30) .. 'y')",
        "return (('x'):rep(60)):gsub(('x-'):rep(25) .. 'y', '')",
    };
    static const char *const names[] = {"string.find", "string.match", "string.gmatch",
                                        "string.gsub", "string.find",  "string.match",
                                        "string.gsub"};
    size_t i;
    for (i = 0; i < sizeof codes / sizeof *codes; i++) {
        counter c = {0, 0, 50, ""};
        sg_pattern_budget b = {count_check, &c};
        const char *err = run_bounded(codes[i], &b);
        CHECK_CONTAINS(err, "stopped by the budget");
        CHECK_INT(c.calls, 50);
        CHECK_INT(c.steps, 50L * SG_PATTERN_CHECK_EVERY);
        CHECK_STR(c.fname, names[i]);
    }
}

/* An ordinary match takes few steps: no check at all. */
static void test_budget_counts(void) {
    counter c = {0, 0, 1, ""};
    sg_pattern_budget b = {count_check, &c};
    CHECK(run_bounded("assert(('key:42'):match('^(%w+):(%d+)$') == 'key')", &b) == NULL);
    CHECK_INT(c.calls, 0);
    /* a long subject does: one check per SG_PATTERN_CHECK_EVERY steps */
    c.stop_after = 0;
    CHECK(run_bounded("assert(select(2, string.gsub(('ab'):rep(5000), 'b', 'c')) == 5000)", &b) ==
          NULL);
    CHECK(c.calls >= 10000 / SG_PATTERN_CHECK_EVERY);
}

/* Nesting that would overflow the C stack is an error, not a crash. */
static void test_too_deep(void) {
    const char *err = run_bounded("string.find(('a'):rep(100000), ('a?'):rep(100000))", NULL);
    CHECK_CONTAINS(err, "pattern too complex");
    CHECK(run_bounded("assert(string.find(('a'):rep(500), ('a?'):rep(500) .. '$'))", NULL) == NULL);
}

int main(void) {
    RUN(test_same_as_luajit);
    RUN(test_budget_stops);
    RUN(test_budget_counts);
    RUN(test_too_deep);
    return test_report();
}
