/*
 * pattern.h — Lua 5.1 patterns (string.find, match, gmatch, gsub, as LuaJIT
 * 2.1 has them) whose matcher can be stopped: it counts its steps and asks
 * its owner every SG_PATTERN_CHECK_EVERY steps whether to go on. LuaJIT's
 * own matcher runs a whole find as one VM instruction, so a backtracking
 * pattern escapes any count hook; the policy host installs these in its
 * states instead.
 */
#ifndef SG_PATTERN_H
#define SG_PATTERN_H

#include <lua.h>

/* Steps between two calls of the budget's check. A step is one pattern item
 * tried at one place of the subject (a few nanoseconds). */
#define SG_PATTERN_CHECK_EVERY 1024

/* What bounds the matcher. check(L, ud, fname, steps) is called from inside
 * the Lua call of fname ("string.find") after every `steps` steps; it
 * returns to let the matcher go on, or raises a Lua error (lua_error, which
 * unwinds the matcher: it holds nothing that needs freeing) to stop it. */
typedef struct sg_pattern_budget {
    void (*check)(lua_State *L, void *ud, const char *fname, long steps);
    void *ud;
} sg_pattern_budget;

/* Sets "find", "match", "gmatch" and "gsub" in the table at index idx to the
 * bounded functions. budget may be NULL (no bound: the matcher only counts);
 * else it must stay valid for as long as L may call them. */
void sg_pattern_register(lua_State *L, int idx, const sg_pattern_budget *budget);

#endif
