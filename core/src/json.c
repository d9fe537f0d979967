/*
 * json.c — the strict JSON reader behind the settings files. It owns the
 * parse tree (sg_json) and the error text for malformed input: the line and
 * column where the input stopped making sense and what was expected there,
 * with a hint for the mistakes operators make most (a missing quote, a
 * trailing comma, a comment).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "sg_internal.h"

#define JSON_MAX_DEPTH 64

typedef struct parser {
    const char *p, *end;
    int line, col;
    int depth;
    int oom;
    char *err;
    size_t errlen;
    int failed;
} parser;

const sg_json *sg_json_get(const sg_json *obj, const char *key) {
    const sg_json *folded = NULL;
    size_t i;
    if (obj == NULL || obj->type != SG_JSON_OBJECT) return NULL;
    for (i = obj->n; i-- > 0;) {
        if (strcmp(obj->members[i].key, key) == 0) return obj->members[i].value;
        if (folded == NULL && strcasecmp(obj->members[i].key, key) == 0)
            folded = obj->members[i].value;
    }
    return folded;
}

const char *sg_json_type_name(sg_json_type t) {
    static const char *const names[] = {"null",   "boolean", "number",
                                        "string", "array",   "object"};
    return names[t];
}

void sg_json_brief(const sg_json *v, char *out, size_t outlen) {
    if (v->type == SG_JSON_STRING) snprintf(out, outlen, "string \"%.60s\"", v->str);
    else if (v->type == SG_JSON_NUMBER) snprintf(out, outlen, "number %.60s", v->str);
    else if (v->type == SG_JSON_BOOL) snprintf(out, outlen, "%s", v->boolean ? "true" : "false");
    else snprintf(out, outlen, "%s", sg_json_type_name(v->type));
}

int sg_json_int(const sg_json *v, long long *out) {
    char *end;
    if (strpbrk(v->str, ".eE")) return -1;
    errno = 0;
    *out = strtoll(v->str, &end, 10);
    if (errno == ERANGE) return -2;
    return *end ? -1 : 0;
}

/* Moves one byte on, keeping line and column (columns count characters:
 * UTF-8 continuation bytes do not start one). */
static void advance(parser *ps) {
    unsigned char c = (unsigned char)*ps->p++;
    if (c == '\n') {
        ps->line++;
        ps->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        ps->col++;
    }
}

/* What stands at the current position, for "found ..." in messages. */
static void describe_here(const parser *ps, char *out, size_t outlen) {
    unsigned char c;
    if (ps->p >= ps->end) {
        snprintf(out, outlen, "end of file");
        return;
    }
    c = (unsigned char)*ps->p;
    if (c == '\n') snprintf(out, outlen, "end of line");
    else if (c < 0x20 || c >= 0x7f) snprintf(out, outlen, "byte 0x%02x", c);
    else snprintf(out, outlen, "'%c'", c);
}

/* Records the first error only: "LINE:COL: expected X, found Y[; hint]". */
static void fail_at(parser *ps, int line, int col, const char *expected,
                    const char *hint) {
    char found[32];
    if (ps->failed) return;
    ps->failed = 1;
    describe_here(ps, found, sizeof found);
    snprintf(ps->err, ps->errlen, "%d:%d: expected %s, found %s%s%s", line,
             col, expected, found, hint ? "; " : "", hint ? hint : "");
}

static void fail(parser *ps, const char *expected, const char *hint) {
    fail_at(ps, ps->line, ps->col, expected, hint);
}

static void fail_oom(parser *ps) {
    if (ps->failed) return;
    ps->failed = 1;
    ps->oom = 1;
    snprintf(ps->err, ps->errlen, "out of memory");
}

/* Skips whitespace; a comment gets a clear error (JSON has none). */
static void skip_ws(parser *ps) {
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') advance(ps);
        else break;
    }
}

static sg_json *new_value(parser *ps, sg_json_type t, int line, int col) {
    sg_json *v = sg_calloc(1, sizeof *v);
    if (v == NULL) {
        fail_oom(ps);
        return NULL;
    }
    v->type = t;
    v->line = line;
    v->col = col;
    return v;
}

void sg_json_free(sg_json *v) {
    size_t i;
    if (v == NULL) return;
    if (v->type == SG_JSON_ARRAY) {
        for (i = 0; i < v->n; i++) sg_json_free(v->items[i]);
        sg_free(v->items);
    } else if (v->type == SG_JSON_OBJECT) {
        for (i = 0; i < v->n; i++) {
            sg_free(v->members[i].key);
            sg_json_free(v->members[i].value);
        }
        sg_free(v->members);
    }
    sg_free(v->str);
    sg_free(v);
}

static sg_json *parse_value(parser *ps, const char *expected);

/* Appends one UTF-8 encoded code point. */
static void put_utf8(sg_buf *b, unsigned long cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sg_buf_append(b, u, n);
}

/* Reads 4 hex digits of a \u escape; -1 on a bad digit (error recorded). */
static long read_hex4(parser *ps) {
    long v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = ps->p < ps->end ? *ps->p : '\0';
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else {
            fail(ps, "4 hex digits after \\u", NULL);
            return -1;
        }
        v = v * 16 + d;
        advance(ps);
    }
    return v;
}

/* Parses a string at the opening quote into *out and *outlen (NUL-terminated). */
static int parse_string(parser *ps, char **out, size_t *outlen) {
    sg_buf b = {0};
    int line = ps->line, col = ps->col;
    advance(ps); /* the opening quote */
    for (;;) {
        unsigned char c;
        if (ps->p >= ps->end) {
            fail_at(ps, line, col, "a closing '\"' for the string that starts here",
                    NULL);
            goto error;
        }
        c = (unsigned char)*ps->p;
        if (c == '"') {
            advance(ps);
            break;
        }
        if (c < 0x20) {
            fail(ps, "a closing '\"' before the end of the line",
                 c == '\n' ? "strings cannot span lines (is a quote missing?)"
                           : "control characters must be escaped");
            goto error;
        }
        if (c != '\\') {
            const char *start = ps->p;
            while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' &&
                   (unsigned char)*ps->p >= 0x20)
                advance(ps);
            sg_buf_append(&b, start, (size_t)(ps->p - start));
            continue;
        }
        advance(ps); /* the backslash */
        if (ps->p >= ps->end) {
            fail(ps, "an escape character after '\\'", NULL);
            goto error;
        }
        switch (*ps->p) {
        case '"': sg_buf_append(&b, "\"", 1); break;
        case '\\': sg_buf_append(&b, "\\", 1); break;
        case '/': sg_buf_append(&b, "/", 1); break;
        case 'b': sg_buf_append(&b, "\b", 1); break;
        case 'f': sg_buf_append(&b, "\f", 1); break;
        case 'n': sg_buf_append(&b, "\n", 1); break;
        case 'r': sg_buf_append(&b, "\r", 1); break;
        case 't': sg_buf_append(&b, "\t", 1); break;
        case 'u': {
            long cp, lo;
            advance(ps);
            if ((cp = read_hex4(ps)) < 0) goto error;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* a high surrogate: a low one must follow, else U+FFFD */
                if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                    advance(ps);
                    advance(ps);
                    if ((lo = read_hex4(ps)) < 0) goto error;
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        put_utf8(&b, 0xFFFD);
                        cp = lo;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD; /* a lone low surrogate, as Go decodes it */
            }
            put_utf8(&b, (unsigned long)cp);
            continue;
        }
        default:
            fail(ps, "one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX", NULL);
            goto error;
        }
        advance(ps);
    }
    if (b.data == NULL) sg_buf_append(&b, "", 0);
    *outlen = b.len;
    if ((*out = sg_buf_take(&b)) == NULL) {
        fail_oom(ps);
        return -1;
    }
    return 0;
error:
    if (b.oom) fail_oom(ps);
    sg_buf_free(&b);
    return -1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Parses a number by the JSON grammar; keeps its literal text. */
static sg_json *parse_number(parser *ps) {
    int line = ps->line, col = ps->col;
    const char *start = ps->p;
    sg_json *v;
    if (ps->p < ps->end && *ps->p == '-') advance(ps);
    if (ps->p >= ps->end || !is_digit(*ps->p)) {
        fail(ps, "a digit", NULL);
        return NULL;
    }
    if (*ps->p == '0') {
        advance(ps);
        if (ps->p < ps->end && is_digit(*ps->p)) {
            fail(ps, "'.', 'e' or the end of the number",
                 "JSON numbers have no leading zeros");
            return NULL;
        }
    } else {
        while (ps->p < ps->end && is_digit(*ps->p)) advance(ps);
    }
    if (ps->p < ps->end && *ps->p == '.') {
        advance(ps);
        if (ps->p >= ps->end || !is_digit(*ps->p)) {
            fail(ps, "a digit after the decimal point", NULL);
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p)) advance(ps);
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        advance(ps);
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) advance(ps);
        if (ps->p >= ps->end || !is_digit(*ps->p)) {
            fail(ps, "a digit in the exponent", NULL);
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p)) advance(ps);
    }
    if ((v = new_value(ps, SG_JSON_NUMBER, line, col)) == NULL) return NULL;
    v->len = (size_t)(ps->p - start);
    if ((v->str = sg_strndup(start, v->len)) == NULL) {
        fail_oom(ps);
        sg_free(v);
        return NULL;
    }
    return v;
}

/* Matches a literal word (true, false, null). */
static int match_word(parser *ps, const char *word) {
    size_t n = strlen(word);
    size_t i;
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return 0;
    for (i = 0; i < n; i++) advance(ps);
    return 1;
}

static int grow(parser *ps, void **arr, size_t *cap, size_t n, size_t size) {
    void *p;
    size_t ncap;
    if (n < *cap) return 0;
    ncap = *cap ? *cap * 2 : 4;
    if ((p = sg_realloc(*arr, ncap * size)) == NULL) {
        fail_oom(ps);
        return -1;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

static sg_json *parse_array(parser *ps) {
    sg_json *v = new_value(ps, SG_JSON_ARRAY, ps->line, ps->col);
    size_t cap = 0;
    if (v == NULL) return NULL;
    advance(ps); /* [ */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        advance(ps);
        return v;
    }
    for (;;) {
        sg_json *item = parse_value(ps, "a value in the array");
        if (item == NULL) goto error;
        if (grow(ps, (void **)&v->items, &cap, v->n, sizeof *v->items)) {
            sg_json_free(item);
            goto error;
        }
        v->items[v->n++] = item;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            advance(ps);
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ']') {
                fail(ps, "a value after ','",
                     "JSON allows no comma after the last item");
                goto error;
            }
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            advance(ps);
            return v;
        }
        fail(ps, "',' or ']' after an array item", NULL);
        goto error;
    }
error:
    sg_json_free(v);
    return NULL;
}

static sg_json *parse_object(parser *ps) {
    sg_json *v = new_value(ps, SG_JSON_OBJECT, ps->line, ps->col);
    size_t cap = 0;
    if (v == NULL) return NULL;
    advance(ps); /* { */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        advance(ps);
        return v;
    }
    for (;;) {
        sg_json_member m = {0};
        size_t keylen;
        char what[300];
        if (ps->p >= ps->end || *ps->p != '"') {
            fail(ps, "a key in double quotes",
                 v->n > 0 && ps->p < ps->end && *ps->p == '}'
                     ? "JSON allows no comma after the last member"
                     : NULL);
            goto error;
        }
        m.line = ps->line;
        m.col = ps->col;
        if (parse_string(ps, &m.key, &keylen) < 0) goto error;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            /* "server3: "6381" reads as the key "server3: " followed by
             * 6381: say that a quote is probably missing. */
            int colon_in_key = strchr(m.key, ':') != NULL;
            snprintf(what, sizeof what, "':' after the key \"%.200s\"", m.key);
            fail(ps, what,
                 colon_in_key ? "the key holds a ':' (is its closing quote "
                                "missing?)"
                              : NULL);
            sg_free(m.key);
            goto error;
        }
        advance(ps);
        snprintf(what, sizeof what, "a value for the key \"%.200s\"", m.key);
        m.value = parse_value(ps, what);
        if (m.value == NULL) {
            sg_free(m.key);
            goto error;
        }
        if (grow(ps, (void **)&v->members, &cap, v->n, sizeof *v->members)) {
            sg_free(m.key);
            sg_json_free(m.value);
            goto error;
        }
        v->members[v->n++] = m;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            advance(ps);
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            advance(ps);
            return v;
        }
        fail(ps, "',' or '}' after an object member",
             ps->p < ps->end && *ps->p == '"' ? "is a comma missing?" : NULL);
        goto error;
    }
error:
    sg_json_free(v);
    return NULL;
}

static sg_json *parse_value(parser *ps, const char *expected) {
    int line, col;
    sg_json *v;
    skip_ws(ps);
    line = ps->line;
    col = ps->col;
    if (ps->p >= ps->end) {
        fail(ps, expected, NULL);
        return NULL;
    }
    switch (*ps->p) {
    case '{':
    case '[':
        if (ps->depth >= JSON_MAX_DEPTH) {
            fail(ps, expected, "nested more than 64 levels deep");
            return NULL;
        }
        ps->depth++;
        v = *ps->p == '{' ? parse_object(ps) : parse_array(ps);
        ps->depth--;
        return v;
    case '"':
        if ((v = new_value(ps, SG_JSON_STRING, line, col)) == NULL) return NULL;
        if (parse_string(ps, &v->str, &v->len) < 0) {
            sg_free(v);
            return NULL;
        }
        return v;
    case 't':
    case 'f':
    {
        int truth = *ps->p == 't';
        if (match_word(ps, truth ? "true" : "false")) {
            if ((v = new_value(ps, SG_JSON_BOOL, line, col)) == NULL)
                return NULL;
            v->boolean = truth;
            return v;
        }
        break;
    }
    case 'n':
        if (match_word(ps, "null")) return new_value(ps, SG_JSON_NULL, line, col);
        break;
    case '/':
        fail(ps, expected, "JSON has no comments");
        return NULL;
    default:
        if (*ps->p == '-' || is_digit(*ps->p)) return parse_number(ps);
        break;
    }
    fail(ps, expected,
         *ps->p == '\'' ? "JSON strings use double quotes" : NULL);
    return NULL;
}

sg_json *sg_json_parse(const char *text, size_t len, char *err, size_t errlen,
                       int *oom) {
    parser ps = {0};
    sg_json *root;
    ps.p = text;
    ps.end = text + len;
    ps.line = ps.col = 1;
    ps.err = err;
    ps.errlen = errlen;
    if (oom) *oom = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        fail(&ps, "a JSON value",
             "the file starts with a UTF-8 byte-order mark, which Tyk "
             "rejects too; save it without one");
        return NULL;
    }
    root = parse_value(&ps, "a JSON value");
    if (root != NULL) {
        skip_ws(&ps);
        if (ps.p < ps.end) {
            fail(&ps, "the end of the file after the top-level value",
                 *ps.p == ',' || *ps.p == ':'
                     ? "is the file a fragment? wrap it in { }"
                     : NULL);
            sg_json_free(root);
            root = NULL;
        }
    }
    if (root == NULL && oom) *oom = ps.oom;
    return root;
}
