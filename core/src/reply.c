/*
 * reply.c — reply trees: finding where a reply ends in a node's bytes, the
 * tree of a whole reply (with sg_malloc, so allocation failures are
 * testable), the constructors the router uses to merge replies, and
 * sg_reply_free.
 *
 * Both protocols: RESP2, and every RESP3 type Redis sends on a connection
 * opened with HELLO 3 (null, boolean, double, big number, blob error,
 * verbatim string, map, set, push, and the attribute that may come ahead of
 * any reply). hiredis 0.14 reads RESP2 only, so this reader is the engine's
 * own. What a reply's first byte makes it, for finding its end:
 *   line      + - : _ # , (     one line
 *   bulk      $ ! =             a length line, then that many bytes and CRLF
 *   aggregate * ~ >             a count line, then that many replies
 *             %                 a count line, then twice that many (pairs)
 *             |                 twice that many, then the reply it decorates
 */
#include <event2/buffer.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

sg_reply *sg_reply_new(int type) {
    sg_reply *r = sg_calloc(1, sizeof *r);
    if (r) r->type = type;
    return r;
}

/* A string reply and its bytes in one block: str points just past it. */
sg_reply *sg_reply_new_str(int type, const char *s, size_t len) {
    sg_reply *r;
    if (len > SIZE_MAX - sizeof *r - 1 || (r = sg_malloc(sizeof *r + len + 1)) == NULL) return NULL;
    memset(r, 0, sizeof *r);
    r->type = type;
    r->str = (char *)(r + 1);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

sg_reply *sg_reply_new_int(long long v) {
    sg_reply *r = sg_reply_new(SG_REPLY_INTEGER);
    if (r) r->integer = v;
    return r;
}

sg_reply *sg_reply_new_array(size_t n) {
    sg_reply *r = sg_reply_new(SG_REPLY_ARRAY);
    if (r == NULL) return NULL;
    if (n && (r->element = sg_calloc(n, sizeof *r->element)) == NULL) {
        sg_free(r);
        return NULL;
    }
    r->elements = n;
    return r;
}

void sg_reply_free(sg_reply *r) {
    size_t i;
    if (r == NULL) return;
    sg_reply_free(r->attribute);
    if (r->element) {
        for (i = 0; i < r->elements; i++) sg_reply_free(r->element[i]);
        sg_free(r->element);
    }
    if (r->str != (char *)(r + 1)) sg_free(r->str);
    sg_free(r);
}

int sg_reply_error_is(const sg_reply *r, const char *word) {
    size_t n = strlen(word);
    return r && r->type == SG_REPLY_ERROR && r->len >= n &&
           memcmp(r->str, word, n) == 0 && (r->len == n || r->str[n] == ' ');
}

/* ---- where a reply ends ----------------------------------------------------------------- */

/* Where the first CRLF at or after s[from] is in s[0..n): a line ends there
 * (a lone CR inside it is part of it, as for hiredis and redis). NULL when
 * none has arrived. */
static const char *find_crlf(const char *s, size_t from, size_t n) {
    const char *p = s + from, *end = s + n;
    while (p < end && (p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
        if (p + 1 >= end) return NULL;
        if (p[1] == '\n') return p;
        p++;
    }
    return NULL;
}

/* How a reply's first byte is framed (the table at the top). */
enum { FRAME_BAD = 0, FRAME_LINE, FRAME_BULK, FRAME_AGG };

static int frame_of(char type) {
    switch (type) {
    case '+': case '-': case ':': case '_': case '#': case ',': case '(': return FRAME_LINE;
    case '$': case '!': case '=': return FRAME_BULK;
    case '*': case '~': case '>': case '%': case '|': return FRAME_AGG;
    default: return FRAME_BAD;
    }
}

/* The replies an aggregate's header of count v adds to those due: a map's
 * pairs count twice, an attribute's too, plus the reply it decorates. */
static long long agg_due(char type, long long v) {
    if (v < 0) v = 0; /* RESP2's null array; the parse refuses the others */
    if (type == '%') return 2 * v;
    if (type == '|') return 2 * v + 1;
    return v;
}

/* The length of the whole reply at s[0..n): 0 when it does not end
 * within n bytes, -1 when s is not RESP. Nested aggregates need no stack:
 * each header adds its elements to those still due. */
long long sg_reply_scan(const char *s, size_t n) {
    size_t pos = 0;
    long long due = 1;
    while (due > 0) {
        const char *cr;
        size_t eol;
        long long v = 0;
        int neg = 0, frame;
        char type;
        size_t i;
        if (pos >= n) return 0;
        if ((cr = find_crlf(s, pos, n)) == NULL) return n - pos > (1 << 20) ? -1 : 0;
        eol = (size_t)(cr - s);
        type = s[pos];
        if ((frame = frame_of(type)) == FRAME_BAD) return -1;
        if (frame == FRAME_LINE) {
            pos = eol + 2;
            due--;
            continue;
        }
        i = pos + 1;
        if (i < eol && s[i] == '-') {
            neg = 1;
            i++;
        }
        if (i == eol || eol - i > 18) return -1;
        for (; i < eol; i++) {
            if (s[i] < '0' || s[i] > '9') return -1;
            v = v * 10 + (s[i] - '0');
        }
        if (neg) v = -v;
        due--;
        pos = eol + 2;
        if (frame == FRAME_AGG) {
            if (v > 0) {
                if (v > SG_SCAN_MAX_ELEMENTS || due > SG_SCAN_MAX_ELEMENTS) return -1;
                due += agg_due(type, v);
            }
            continue;
        }
        if (v >= 0) {
            if ((unsigned long long)v + 2 > n - pos) return 0;
            pos += (size_t)v + 2;
        }
    }
    return (long long)pos;
}

/* Where the reply at the head of the input ends, when it runs past the
 * first chunk: the scan goes on over the chunks (evbuffer_search_eol) and
 * keeps its place between reads, so a large reply is scanned once. The
 * length when whole, 0 when more must come, -1 when the input is not RESP. */
long long sg_reply_scan_buffer(sg_scan *st, struct evbuffer *in) {
    size_t total = evbuffer_get_length(in);
    if (!st->active) {
        st->active = 1;
        st->off = 0;
        st->due = 1;
    }
    while (st->due > 0 && st->off < total) {
        struct evbuffer_ptr p, e;
        size_t eol_len = 0, linelen;
        char line[24], type;
        long long v = 0;
        int i = 1, neg = 0;
        evbuffer_ptr_set(in, &p, st->off, EVBUFFER_PTR_SET);
        e = evbuffer_search_eol(in, &p, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
        if (e.pos < 0) /* the line is not whole yet; a header line is short */
            return total - st->off > (1 << 20) ? -1 : 0;
        linelen = (size_t)e.pos - st->off;
        if (linelen == 0) return -1; /* a line with no type byte */
        evbuffer_copyout_from(in, &p, line, linelen < sizeof line ? linelen : sizeof line);
        type = line[0];
        if (frame_of(type) == FRAME_LINE) {
            st->off = (size_t)e.pos + 2;
            st->due--;
            continue;
        }
        if (frame_of(type) == FRAME_BAD || linelen < 2 || linelen > 20) return -1;
        if (line[1] == '-') {
            neg = 1;
            i = 2;
        }
        /* as sg_reply_scan: 1 to 18 digits */
        if ((size_t)i == linelen || linelen - (size_t)i > 18) return -1;
        for (; (size_t)i < linelen; i++) {
            if (line[i] < '0' || line[i] > '9') return -1;
            v = v * 10 + (line[i] - '0');
        }
        if (neg) v = -v;
        st->due--;
        st->off = (size_t)e.pos + 2;
        if (frame_of(type) == FRAME_AGG && v > 0) {
            if (v > SG_SCAN_MAX_ELEMENTS || st->due > SG_SCAN_MAX_ELEMENTS) return -1;
            st->due += agg_due(type, v);
        }
        if (frame_of(type) == FRAME_BULK && v >= 0)
            st->off += (size_t)v + 2; /* may be past the end */
    }
    if (st->due > 0 || st->off > total) return 0;
    st->active = 0;
    return (long long)st->off;
}

/* ---- a tree from a whole reply's bytes ---------------------------------------------------- */

#define SG_REPLY_MAX_DEPTH 1000

/* The number on a header line s[0..n) (after the type byte). */
static int parse_ll(const char *s, size_t n, long long *out) {
    long long v = 0;
    size_t i = 0;
    int neg = 0;
    if (n > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n || n - i > 18) return -1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

/* A double's text as RESP3 sends it: what strtod reads whole ("1.5",
 * "-2e10", "inf", "-inf", "nan"), at most 400 bytes. Redis writes a '.';
 * a host program may have set a locale whose decimal point is another. */
static int parse_double(const char *s, size_t n, double *out) {
    char buf[401], *end, *dot;
    const char *point = localeconv()->decimal_point;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL || buf[0] == ' ' || buf[0] == '+') return -1;
    if (point && point[0] && point[0] != '.' && point[1] == '\0' &&
        (dot = strchr(buf, '.')) != NULL)
        *dot = point[0];
    *out = strtod(buf, &end);
    return *end == '\0' ? 0 : -1;
}

/* A big number's digits: an optional '-', then at least one digit. */
static int is_bignum(const char *s, size_t n) {
    size_t i = n > 0 && s[0] == '-' ? 1 : 0;
    if (i == n) return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static sg_reply *parse_one(const char *s, size_t len, size_t *pos, int depth, int *why);

/* An aggregate's elements (n of them) into a new reply of type. */
static sg_reply *parse_elements(int type, size_t n, const char *s, size_t len, size_t *pos,
                                int depth, int *why) {
    size_t i;
    sg_reply *r;
    if (depth >= SG_REPLY_MAX_DEPTH) {
        *why = SG_EINVAL; /* deeper than we follow */
        return NULL;
    }
    if ((r = sg_reply_new_array(n)) == NULL) {
        *why = SG_ENOMEM;
        return NULL;
    }
    r->type = type;
    for (i = 0; i < n; i++) {
        if ((r->element[i] = parse_one(s, len, pos, depth + 1, why)) == NULL) {
            sg_reply_free(r);
            return NULL;
        }
    }
    return r;
}

static sg_reply *parse_one(const char *s, size_t len, size_t *pos, int depth, int *why) {
    const char *line = s + *pos + 1, *cr = find_crlf(s, *pos, len);
    size_t n, next;
    long long v;
    double d;
    sg_reply *r, *attr;
    char type;
    if (cr == NULL) {
        *why = SG_EPROTO;
        return NULL;
    }
    n = (size_t)(cr - line);
    next = (size_t)(cr - s) + 2;
    type = s[*pos];
    *why = SG_EPROTO; /* until a reply is made */
    switch (type) {
    case '+':
    case '-':
        r = sg_reply_new_str(type == '+' ? SG_REPLY_STATUS : SG_REPLY_ERROR, line, n);
        break;
    case ':':
        if (parse_ll(line, n, &v) != 0) return NULL;
        r = sg_reply_new_int(v);
        break;
    case '_':
        if (n != 0) return NULL;
        r = sg_reply_new(SG_REPLY_NIL);
        break;
    case '#':
        if (n != 1 || (line[0] != 't' && line[0] != 'f')) return NULL;
        if ((r = sg_reply_new(SG_REPLY_BOOL)) != NULL) r->integer = line[0] == 't';
        break;
    case ',':
        if (parse_double(line, n, &d) != 0) return NULL;
        if ((r = sg_reply_new_str(SG_REPLY_DOUBLE, line, n)) != NULL) r->dval = d;
        break;
    case '(':
        if (!is_bignum(line, n)) return NULL;
        r = sg_reply_new_str(SG_REPLY_BIGNUM, line, n);
        break;
    case '$':
    case '!':
    case '=':
        if (parse_ll(line, n, &v) != 0 || (v >= 0 && (unsigned long long)v + 2 > len - next) ||
            (v < 0 && type != '$') || (v >= 0 && (s[next + v] != '\r' || s[next + v + 1] != '\n')))
            return NULL;
        if (v < 0) {
            r = sg_reply_new(SG_REPLY_NIL); /* RESP2's null bulk */
        } else if (type == '=') {
            /* "txt:" then the text: the format is three bytes (no NUL, no
             * colon) and a colon */
            if (v < 4 || s[next + 3] != ':' || memchr(s + next, '\0', 3) ||
                memchr(s + next, ':', 3))
                return NULL;
            r = sg_reply_new_str(SG_REPLY_VERB, s + next + 4, (size_t)v - 4);
            if (r) memcpy(r->vtype, s + next, 3);
        } else {
            r = sg_reply_new_str(type == '$' ? SG_REPLY_STRING : SG_REPLY_ERROR, s + next,
                                 (size_t)v);
        }
        if (v >= 0) next += (size_t)v + 2;
        break;
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
        /* each element takes at least 3 bytes: a count past that is a lie */
        int pairs = type == '%' || type == '|';
        if (parse_ll(line, n, &v) != 0 || (v < 0 && type != '*') ||
            (v > 0 && (unsigned long long)v > (len - next) / (pairs ? 6 : 3)))
            return NULL;
        *pos = next;
        if (v < 0) {
            r = sg_reply_new(SG_REPLY_NIL); /* RESP2's null array */
            if (r == NULL) *why = SG_ENOMEM;
            return r;
        }
        r = parse_elements(type == '*'   ? SG_REPLY_ARRAY
                           : type == '~' ? SG_REPLY_SET
                           : type == '>' ? SG_REPLY_PUSH
                           : type == '%' ? SG_REPLY_MAP
                                         : SG_REPLY_ATTR,
                           (size_t)v * (pairs ? 2 : 1), s, len, pos, depth, why);
        if (r == NULL || type != '|') return r;
        /* an attribute comes ahead of the reply it belongs to */
        attr = r;
        if ((r = parse_one(s, len, pos, depth, why)) == NULL) {
            sg_reply_free(attr);
            return NULL;
        }
        if (r->attribute) { /* two attributes ahead of one reply: not RESP3 */
            sg_reply_free(attr);
            sg_reply_free(r);
            *why = SG_EPROTO;
            return NULL;
        }
        r->attribute = attr;
        return r;
    }
    default:
        return NULL;
    }
    if (r == NULL) {
        *why = SG_ENOMEM;
        return NULL;
    }
    *why = SG_OK;
    *pos = next;
    return r;
}

sg_reply *sg_reply_parse(const char *s, size_t len, int *status) {
    size_t pos = 0;
    sg_reply *r;
    r = parse_one(s, len, &pos, 0, status);
    if (r) *status = SG_OK;
    if (r && pos != len) {
        sg_reply_free(r);
        *status = SG_EPROTO;
        return NULL;
    }
    return r;
}
