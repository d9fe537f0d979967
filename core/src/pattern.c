/*
 * pattern.c — Lua 5.1 patterns with a step budget: string.find, match, gmatch
 * and gsub giving what LuaJIT 2.1 gives (results and error texts), written
 * from the Lua 5.1 reference manual (§5.4.1) and checked against LuaJIT by
 * tests/c/ut_pattern.c. The matcher backtracks as LuaJIT's does, so a
 * pattern such as ("a*"):rep(40) .. "b" takes as many steps here as there;
 * the difference is that these steps are counted and the owner may stop
 * them (sg_pattern_budget).
 *
 * What LuaJIT does that the manual leaves open, kept on purpose:
 *   - a pattern ends at its first NUL byte (%z stands for NUL);
 *   - string.find of a pattern with none of ^$*+?.([%- , or with `plain`,
 *     looks for the whole pattern as bytes;
 *   - an init past the end of the subject starts at its end;
 *   - %g is a class (printable, not space); the subject's end reads as a NUL
 *     byte for %f; a back-reference to a position capture never matches;
 *   - gmatch takes ^ as a plain character;
 *   - a `%` that ends a gsub replacement string adds a NUL byte.
 * The one difference: matching nested more than MAX_DEPTH deep (a pattern of
 * more than about a thousand items) fails with "pattern too complex", where
 * LuaJIT would overflow the C stack and take the process down.
 */
#include <lauxlib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pattern.h"

#define MAX_CAPTURES 32 /* LuaJIT's LUA_MAXCAPTURES */
#define MAX_DEPTH 1000  /* nested calls of do_match: about one per pattern item */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

typedef struct capture {
    const char *init;
    ptrdiff_t len; /* or CAP_UNFINISHED, CAP_POSITION */
} capture;

typedef struct mstate {
    const char *src, *src_end; /* the subject */
    lua_State *L;
    const sg_pattern_budget *budget;
    const char *fname; /* "string.find": for the budget's error */
    long steps_left;   /* until the next check */
    int depth;
    int level; /* captures open or closed */
    capture cap[MAX_CAPTURES];
} mstate;

static void ms_init(mstate *ms, lua_State *L, const char *s, size_t len, const char *fname) {
    ms->src = s;
    ms->src_end = s + len;
    ms->L = L;
    ms->budget = lua_touserdata(L, lua_upvalueindex(1));
    ms->fname = fname;
    ms->steps_left = SG_PATTERN_CHECK_EVERY;
    ms->depth = 0;
    ms->level = 0;
}

/* Another SG_PATTERN_CHECK_EVERY steps are done: the owner may stop us. */
static void spend(mstate *ms) {
    ms->steps_left = SG_PATTERN_CHECK_EVERY;
    if (ms->budget) ms->budget->check(ms->L, ms->budget->ud, ms->fname, SG_PATTERN_CHECK_EVERY);
}

#define STEP(ms)                                                                                   \
    do {                                                                                           \
        if (--(ms)->steps_left <= 0) spend(ms);                                                    \
    } while (0)

/* ---- classes: ASCII, whatever the locale (as LuaJIT's lj_char) ----------------- */

static int is_lower(int c) {
    return c >= 'a' && c <= 'z';
}
static int is_upper(int c) {
    return c >= 'A' && c <= 'Z';
}
static int is_alpha(int c) {
    return is_lower(c) || is_upper(c);
}
static int is_digit(int c) {
    return c >= '0' && c <= '9';
}
static int is_alnum(int c) {
    return is_alpha(c) || is_digit(c);
}
static int is_graph(int c) {
    return c > ' ' && c < 127;
}

/* Does byte c belong to class cl (the letter after a %)? An upper-case class
 * letter is the complement; any other character stands for itself. */
static int class_has(int c, int cl) {
    int in;
    switch (is_upper(cl) ? cl + ('a' - 'A') : cl) {
    case 'a': in = is_alpha(c); break;
    case 'c': in = c < ' ' || c == 127; break;
    case 'd': in = is_digit(c); break;
    case 'g': in = is_graph(c); break;
    case 'l': in = is_lower(c); break;
    case 'p': in = is_graph(c) && !is_alnum(c); break;
    case 's': in = c == ' ' || (c >= '\t' && c <= '\r'); break;
    case 'u': in = is_upper(c); break;
    case 'w': in = is_alnum(c); break;
    case 'x': in = is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); break;
    case 'z': in = c == 0; break;
    default: return cl == c;
    }
    return is_upper(cl) ? !in : in;
}

/* Where the single-character item at p ends (a quantifier may follow). */
static const char *item_end(mstate *ms, const char *p) {
    switch (*p++) {
    case '%':
        if (*p == '\0') luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (*p == '^') p++;
        /* the first member may be ']' itself: look for the end after it */
        do {
            if (*p == '\0') luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*p++ == '%' && *p != '\0') p++;
        } while (*p != ']');
        return p + 1;
    default: return p;
    }
}

/* Is c in the set [...] from p (its '[') to last (its ']')? */
static int set_has(int c, const char *p, const char *last) {
    int yes = 1;
    p++;
    if (*p == '^') {
        yes = 0;
        p++;
    }
    for (; p < last; p++) {
        if (*p == '%') {
            p++;
            if (class_has(c, (unsigned char)*p)) return yes;
        } else if (p[1] == '-' && p + 2 < last) { /* a range; '-' first or last is itself */
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return yes;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return yes;
        }
    }
    return !yes;
}

/* Does the subject's byte at s match the item from p to ep? s < src_end. */
static int item_has(const char *s, const char *p, const char *ep) {
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_has(c, (unsigned char)p[1]);
    case '[': return set_has(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *do_match(mstate *ms, const char *s, const char *p);

/* %bxy at s (p after "%b"): x, then the shortest run where x and y balance. */
static const char *match_balance(mstate *ms, const char *s, const char *p) {
    int depth = 1;
    if (p[0] == '\0' || p[1] == '\0') luaL_error(ms->L, "unbalanced pattern");
    if (s >= ms->src_end || *s != p[0]) return NULL;
    while (++s < ms->src_end) {
        STEP(ms);
        if (*s == p[1]) { /* the closer first: %b"" closes at the next quote */
            if (--depth == 0) return s + 1;
        } else if (*s == p[0]) {
            depth++;
        }
    }
    return NULL;
}

/* item* (and item+ past its first): as many as match, then fewer until the
 * rest of the pattern matches. */
static const char *max_expand(mstate *ms, const char *s, const char *p, const char *ep) {
    ptrdiff_t n = 0;
    while (s + n < ms->src_end && item_has(s + n, p, ep)) {
        STEP(ms);
        n++;
    }
    for (; n >= 0; n--) {
        const char *e = do_match(ms, s + n, ep + 1);
        if (e) return e;
    }
    return NULL;
}

/* item-: as few as let the rest of the pattern match. */
static const char *min_expand(mstate *ms, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *e = do_match(ms, s, ep + 1);
        if (e) return e;
        if (s < ms->src_end && item_has(s, p, ep)) s++;
        else return NULL;
    }
}

static const char *open_capture(mstate *ms, const char *s, const char *p, ptrdiff_t what) {
    const char *e;
    if (ms->level >= MAX_CAPTURES) luaL_error(ms->L, "too many captures");
    ms->cap[ms->level].init = s;
    ms->cap[ms->level].len = what;
    ms->level++;
    if ((e = do_match(ms, s, p)) == NULL) ms->level--; /* undo */
    return e;
}

static const char *close_capture(mstate *ms, const char *s, const char *p) {
    int l;
    const char *e;
    /* the innermost capture still open */
    for (l = ms->level - 1; l >= 0 && ms->cap[l].len != CAP_UNFINISHED; l--) continue;
    if (l < 0) luaL_error(ms->L, "invalid pattern capture");
    ms->cap[l].len = s - ms->cap[l].init;
    if ((e = do_match(ms, s, p)) == NULL) ms->cap[l].len = CAP_UNFINISHED; /* undo */
    return e;
}

/* %1..%9: the text capture n matched, again. */
static const char *match_backref(mstate *ms, const char *s, int digit) {
    int l = digit - '1';
    size_t len;
    if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_UNFINISHED)
        luaL_error(ms->L, "invalid capture index");
    if (ms->cap[l].len == CAP_POSITION) return NULL;
    len = (size_t)ms->cap[l].len;
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->cap[l].init, s, len) == 0) return s + len;
    return NULL;
}

/* Matches the pattern from p (NUL-terminated) at s: the end of the match, or
 * NULL. Single characters loop here; what may backtrack recurses. */
static const char *do_match(mstate *ms, const char *s, const char *p) {
    const char *ep;
    if (++ms->depth > MAX_DEPTH) luaL_error(ms->L, "pattern too complex");
again:
    STEP(ms);
    switch (*p) {
    case '\0': /* the pattern's end: a match */ goto out;
    case '(':
        if (p[1] == ')') s = open_capture(ms, s, p + 2, CAP_POSITION);
        else s = open_capture(ms, s, p + 1, CAP_UNFINISHED);
        goto out;
    case ')': s = close_capture(ms, s, p + 1); goto out;
    case '$':
        if (p[1] != '\0') goto single; /* only last is it an anchor */
        if (s != ms->src_end) s = NULL;
        goto out;
    case '%':
        if (p[1] == 'b') {
            if ((s = match_balance(ms, s, p + 2)) == NULL) goto out;
            p += 4;
            goto again;
        }
        if (p[1] == 'f') { /* frontier: the set does not match before s, and matches at s */
            int before, at;
            p += 2;
            if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
            ep = item_end(ms, p);
            before = s == ms->src ? '\0' : (unsigned char)s[-1];
            at = s < ms->src_end ? (unsigned char)*s : '\0';
            if (set_has(before, p, ep - 1) || !set_has(at, p, ep - 1)) {
                s = NULL;
                goto out;
            }
            p = ep;
            goto again;
        }
        if (is_digit((unsigned char)p[1])) {
            if ((s = match_backref(ms, s, p[1])) == NULL) goto out;
            p += 2;
            goto again;
        }
        goto single;
    default:
    single : {
        int m;
        const char *e;
        ep = item_end(ms, p);
        m = s < ms->src_end && item_has(s, p, ep);
        switch (*ep) {
        case '?':
            if (m && (e = do_match(ms, s + 1, ep + 1)) != NULL) {
                s = e;
                goto out;
            }
            p = ep + 1;
            goto again;
        case '*': s = max_expand(ms, s, p, ep); goto out;
        case '+': s = m ? max_expand(ms, s + 1, p, ep) : NULL; goto out;
        case '-': s = min_expand(ms, s, p, ep); goto out;
        default:
            if (!m) {
                s = NULL;
                goto out;
            }
            s++;
            p = ep;
            goto again;
        }
    }
    }
out:
    ms->depth--;
    return s;
}

/* ---- results --------------------------------------------------------------------- */

/* Pushes capture i; with no captures, capture 0 is the whole match s..e. */
static void push_capture(mstate *ms, int i, const char *s, const char *e) {
    lua_State *L = ms->L;
    if (i >= ms->level) {
        if (i != 0) luaL_error(L, "invalid capture index");
        lua_pushlstring(L, s, (size_t)(e - s));
    } else if (ms->cap[i].len == CAP_UNFINISHED) {
        luaL_error(L, "unfinished capture");
    } else if (ms->cap[i].len == CAP_POSITION) {
        lua_pushinteger(L, ms->cap[i].init - ms->src + 1);
    } else {
        lua_pushlstring(L, ms->cap[i].init, (size_t)ms->cap[i].len);
    }
}

/* Pushes every capture (or the whole match when there are none and s is not
 * NULL); returns how many. */
static int push_captures(mstate *ms, const char *s, const char *e) {
    int i, n = ms->level == 0 && s ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (i = 0; i < n; i++) push_capture(ms, i, s, e);
    return n;
}

/* string.find treats a pattern without these as plain text (LuaJIT's rule,
 * over all of its bytes). */
static int has_specials(const char *p, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) switch (p[i]) {
        case '^':
        case '$':
        case '*':
        case '+':
        case '?':
        case '.':
        case '(':
        case '[':
        case '%':
        case '-': return 1;
        default: break;
        }
    return 0;
}

/* A 1-based init (negative: from the end) as an offset into len bytes. */
static size_t start_offset(lua_Integer init, size_t len) {
    if (init < 0) init += (lua_Integer)len;
    else init--;
    if (init < 0) return 0;
    return (size_t)init > len ? len : (size_t)init;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls, lp, init;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (at == NULL) {
            lua_pushnil(L);
            return 1;
        }
        lua_pushinteger(L, at - s + 1);
        lua_pushinteger(L, (lua_Integer)(at - s + lp));
        return 2;
    }
    if (!find && !has_specials(p, lp) && !memchr(p, ')', lp) && !memchr(p, '\0', lp)) {
        /* the whole match is the pattern itself: a plain search will do */
        if (memmem(s + init, ls - init, p, lp) == NULL) lua_pushnil(L);
        else lua_pushvalue(L, 2);
        return 1;
    } else {
        mstate ms;
        const char *s1 = s + init;
        int anchor = *p == '^';
        if (anchor) p++;
        ms_init(&ms, L, s, ls, find ? "string.find" : "string.match");
        do {
            const char *e;
            ms.level = 0;
            if ((e = do_match(&ms, s1, p)) == NULL) continue;
            if (!find) return push_captures(&ms, s1, e);
            lua_pushinteger(L, s1 - s + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&ms, NULL, NULL) + 2;
        } while (s1++ < ms.src_end && !anchor);
    }
    lua_pushnil(L);
    return 1;
}

static int str_find(lua_State *L) {
    return find_or_match(L, 1);
}

static int str_match(lua_State *L) {
    return find_or_match(L, 0);
}

/* gmatch's iterator; upvalues: the budget, subject, pattern, next offset. */
static int gmatch_next(lua_State *L) {
    size_t ls;
    const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
    const char *p = lua_tostring(L, lua_upvalueindex(3));
    const char *at;
    mstate ms;
    ms_init(&ms, L, s, ls, "string.gmatch");
    for (at = s + lua_tointeger(L, lua_upvalueindex(4)); at <= ms.src_end; at++) {
        const char *e;
        ms.level = 0;
        if ((e = do_match(&ms, at, p)) == NULL) continue;
        /* after an empty match, the next one starts a byte further */
        lua_pushinteger(L, e - s + (e == at));
        lua_replace(L, lua_upvalueindex(4));
        return push_captures(&ms, at, e);
    }
    return 0;
}

static int str_gmatch(lua_State *L) {
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

/* gsub's replacement string: %0..%9 the match and captures, %x x. */
static void add_string(mstate *ms, luaL_Buffer *b, const char *s, const char *e) {
    size_t len, i;
    const char *r = lua_tolstring(ms->L, 3, &len);
    for (i = 0; i < len; i++) {
        if (r[i] != '%') {
            luaL_addchar(b, r[i]);
            continue;
        }
        i++; /* at the end, r[len] is the string's NUL: LuaJIT adds it */
        if (!is_digit((unsigned char)r[i])) {
            luaL_addchar(b, r[i]);
        } else if (r[i] == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else {
            push_capture(ms, r[i] - '1', s, e);
            luaL_addvalue(b);
        }
    }
}

/* Adds the replacement of the match s..e: a string, or what a function or a
 * table gives (false or nil: the match itself). */
static void add_value(mstate *ms, luaL_Buffer *b, const char *s, const char *e, int type) {
    lua_State *L = ms->L;
    if (type == LUA_TFUNCTION) {
        int n;
        lua_pushvalue(L, 3);
        n = push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else if (type == LUA_TTABLE) {
        push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_string(ms, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    luaL_addvalue(b);
}

static int str_gsub(lua_State *L) {
    size_t ls;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checkstring(L, 2);
    int type = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
    int anchor = *p == '^';
    luaL_Buffer b;
    mstate ms;
    luaL_argcheck(L,
                  type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION ||
                      type == LUA_TTABLE,
                  3, "string/function/table expected");
    if (anchor) p++;
    luaL_buffinit(L, &b);
    ms_init(&ms, L, src, ls, "string.gsub");
    while (n < max) {
        const char *e;
        ms.level = 0;
        if ((e = do_match(&ms, src, p)) != NULL) {
            n++;
            add_value(&ms, &b, src, e, type);
        }
        if (e && e > src) src = e;
        else if (src < ms.src_end) luaL_addchar(&b, *src++); /* no match, or an empty one */
        else break;
        if (anchor) break;
    }
    luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void sg_pattern_register(lua_State *L, int idx, const sg_pattern_budget *budget) {
    static const luaL_Reg fns[] = {{"find", str_find},
                                   {"match", str_match},
                                   {"gmatch", str_gmatch},
                                   {"gsub", str_gsub},
                                   {NULL, NULL}};
    const luaL_Reg *f;
    if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
    for (f = fns; f->name; f++) {
        /* the budget is read, never written, through the upvalue */
        lua_pushlightuserdata(L, (void *)(uintptr_t)budget);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, idx, f->name);
    }
}
