/*
 * resp.c — reads client requests: owns each connection's input buffer, the
 * state machine that cuts it into RESP2 requests as redis-server does
 * (processMultibulkBuffer and processInlineBuffer in redis's networking.c),
 * the inline splitter with redis's quoting (sdssplitargs), and the limits a
 * client may not pass.
 *
 * The buffer holds [start, len): bytes not yet returned as requests. Every
 * position inside the request being read is kept relative to start, so
 * moving the live bytes to the front of the buffer (compaction) or growing it
 * changes nothing but start. Parsing stops where the bytes stop and resumes
 * there: a bulk's data is skipped by its length, a header line is at most a
 * few bytes, and an inline line is searched for its '\n' from where the last
 * search ended.
 *
 * Where redis is lax this parser is strict, since a request it accepts goes on
 * to other servers: a header line must end in "\r\n" (redis takes any byte
 * after the '\r'), a bulk must be followed by "\r\n" (redis skips two bytes
 * unseen), and a NUL byte in an inline request is an error (redis would wait
 * for a '\n' that its strchr() cannot see).
 */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "resp.h"
#include "core_private.h"

#define MIN_BUF 256            /* the smallest buffer allocated */
#define KEEP_BUF (64 * 1024)   /* an empty buffer up to this size is kept */
#define SHRINK_BUF (256 * 1024) /* a bigger one is shrunk between requests */
#define FIRST_ARGS 8           /* argument arrays start at this many */
#define KEEP_ARGS 64           /* and are freed between requests above it */
#define KEEP_SCRATCH 4096      /* likewise the inline scratch, in bytes */
#define UNAUTH_MAX_ARGS 10     /* redis's limits before AUTH */
#define UNAUTH_MAX_BULK 16384

/* Returned by a state's step when it moved to another state. */
#define STEP_ON 2

enum state {
    ST_START,     /* at the first byte of a request */
    ST_COUNT,     /* reading "*N\r\n" */
    ST_BULK_HDR,  /* reading "$len\r\n" */
    ST_BULK_DATA, /* waiting for a bulk's bytes and its "\r\n" */
    ST_INLINE,    /* looking for the '\n' of an inline request */
    ST_ERROR      /* a protocol error: final */
};

struct sg_resp {
    sg_error err; /* first: sg_errcode() and sg_errmsg() read it */
    sg_resp_limits lim;
    size_t max_line; /* inline limit in force: max_inline within max_request */
    int auth_required;

    char *buf;
    size_t cap, len, start; /* [start, len): not yet returned */

    int state;
    size_t pos;         /* the next byte to read, from start */
    long long left;     /* multibulk: arguments still to read */
    long long bulklen;  /* ST_BULK_DATA: the bulk's length */

    int argc, argcap;   /* arguments read; room in the three arrays */
    const char **argv;  /* filled when the request is complete */
    size_t *argvlen;
    size_t *argoff;     /* multibulk: where each argument starts, from start */

    char *scratch;      /* inline: quoted words, decoded */
    size_t scratchcap;
};

/* ---- small pure helpers ------------------------------------------------- */

enum { LINE_BAD = -1, LINE_MORE = 0, LINE_OK = 1 };

/* Reads "<integer>\r\n" from s (n bytes there) as redis's string2ll() reads
 * the integer: an optional '-', then "0" alone or a digit 1-9 and more
 * digits; no '+', no spaces, no leading zeros, no "-0"; within long long.
 * LINE_OK with the value and the bytes used (CRLF included); LINE_MORE while
 * s could still become such a line; LINE_BAD at the first byte that makes
 * that impossible, so a line is judged the same however its bytes arrive. It
 * looks at no more than 22 bytes. */
static int read_int_line(const char *s, size_t n, long long *value, size_t *used) {
    unsigned long long mag = 0, max = LLONG_MAX;
    size_t i = 0, first, end;
    int neg = 0;

    if (n > 0 && s[0] == '-') {
        neg = 1;
        max = (unsigned long long)LLONG_MAX + 1;
        i = 1;
    }
    first = i;
    /* 19 digits cannot overflow an unsigned long long: the range is checked
     * once, after them (this runs for every argument of every request) */
    end = n - first > 19 ? first + 19 : n;
    for (; i < end && (unsigned)(s[i] - '0') <= 9; i++) mag = mag * 10 + (unsigned)(s[i] - '0');
    /* "0" must stand alone, and "-0" is not a number */
    if (i > first && s[first] == '0' && (neg || i > first + 1)) return LINE_BAD;
    if (mag > max || (i == end && i < n && (unsigned)(s[i] - '0') <= 9))
        return LINE_BAD; /* out of range */
    if (i == n) return LINE_MORE;
    if (s[i] != '\r' || i == first) return LINE_BAD; /* not a digit, or none */
    if (i + 1 == n) return LINE_MORE;
    if (s[i + 1] != '\n') return LINE_BAD;
    if (!neg) *value = (long long)mag;
    else if (mag > (unsigned long long)LLONG_MAX) *value = LLONG_MIN;
    else *value = -(long long)mag;
    *used = i + 2;
    return LINE_OK;
}

/* isspace() in the C locale: what sdssplitargs skips between words. */
static int is_space(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* What ends an unquoted word in sdssplitargs: fewer bytes than is_space
 * (a '\v' or '\f' inside a word is part of it). */
static int ends_word(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The byte a backslash escape in double quotes stands for. */
static char unescape(char c) {
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c; /* \" \\ and any other: the byte itself */
    }
}

/* A double-quoted part: s[*ip] is the opening quote. Decodes into out at *op
 * up to the closing quote, which must be followed by a space or the end.
 * 0, or -1 when unbalanced. */
static int read_dquoted(const char *s, size_t n, size_t *ip, char *out, size_t *op) {
    size_t i = *ip + 1, o = *op;
    for (;;) {
        if (i == n) return -1; /* no closing quote */
        if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' &&
            hex_value(s[i + 2]) >= 0 && hex_value(s[i + 3]) >= 0) {
            out[o++] = (char)(hex_value(s[i + 2]) * 16 + hex_value(s[i + 3]));
            i += 4;
        } else if (s[i] == '\\' && i + 1 < n) {
            out[o++] = unescape(s[i + 1]);
            i += 2;
        } else if (s[i] == '"') {
            if (i + 1 < n && !is_space(s[i + 1])) return -1; /* "a"b */
            *ip = i + 1;
            *op = o;
            return 0;
        } else {
            out[o++] = s[i++];
        }
    }
}

/* A single-quoted part: only \' is an escape. As read_dquoted. */
static int read_squoted(const char *s, size_t n, size_t *ip, char *out, size_t *op) {
    size_t i = *ip + 1, o = *op;
    for (;;) {
        if (i == n) return -1;
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\'') {
            out[o++] = '\'';
            i += 2;
        } else if (s[i] == '\'') {
            if (i + 1 < n && !is_space(s[i + 1])) return -1;
            *ip = i + 1;
            *op = o;
            return 0;
        } else {
            out[o++] = s[i++];
        }
    }
}

/* The next word of an inline line s[*ip, n), by sdssplitargs's rules: blanks
 * skipped; a word ends at a space, tab, CR or LF; a quote may open anywhere
 * in a word and its closing quote ends the word. A word without quotes is
 * returned where it lies in s; one with quotes is decoded into out (which
 * has room for what is left of the line; NULL when the line has no quote).
 * 1 with *word and *wlen, 0 at the end of the line, -1 when unbalanced. */
static int read_word(const char *s, size_t n, size_t *ip, char *out,
                     const char **word, size_t *wlen) {
    size_t i = *ip, start, o;
    int rc;

    while (i < n && is_space(s[i])) i++;
    if (i == n) {
        *ip = i;
        return 0;
    }
    for (start = i; i < n && !ends_word(s[i]); i++) {
        if (s[i] != '"' && s[i] != '\'') continue;
        /* A quote: what came before it is the word's start. */
        o = i - start;
        memcpy(out, s + start, o);
        rc = s[i] == '"' ? read_dquoted(s, n, &i, out, &o)
                         : read_squoted(s, n, &i, out, &o);
        if (rc < 0) return -1;
        *ip = i;
        *word = out;
        *wlen = o;
        return 1;
    }
    *ip = i;
    *word = s + start;
    *wlen = i - start;
    return 1;
}

/* A byte as redis shows it in "expected '$', got '%c'": CR and LF become
 * spaces (redis keeps error replies on one line); so does NUL, which would
 * end the message. */
static char shown_byte(char c) {
    return c == '\r' || c == '\n' || c == '\0' ? ' ' : c;
}

/* ---- errors, memory ------------------------------------------------------ */

static int proto_error(sg_resp *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int proto_error(sg_resp *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err.msg, sizeof p->err.msg, fmt, ap);
    va_end(ap);
    p->err.code = SG_EPROTO;
    p->state = ST_ERROR;
    return SG_EPROTO;
}

static void free_args(sg_resp *p) {
    sg_free((void *)p->argv);
    sg_free(p->argvlen);
    sg_free(p->argoff);
    p->argv = NULL;
    p->argvlen = p->argoff = NULL;
    p->argcap = 0;
}

/* Room for argument argc (one more) in the three arrays, growing them by
 * doubling but never past total, the arguments the request declares. The
 * arrays grow with the arguments that arrive, not with the declared count. */
static int reserve_arg(sg_resp *p, long long total) {
    long long want;
    int ncap;
    void *a, *b, *c;

    if (p->argc < p->argcap) return SG_OK;
    want = p->argcap ? (long long)p->argcap * 2 : FIRST_ARGS;
    if (want > total) want = total;
    if (want <= p->argc) want = (long long)p->argc + 1;
    if (want > INT_MAX) want = INT_MAX;
    ncap = (int)want;
    /* Each array is grown on its own; if one fails, those grown already are
     * simply bigger than argcap says, and the next try grows them again. */
    a = sg_realloc((void *)p->argv, (size_t)ncap * sizeof *p->argv);
    if (a == NULL) goto oom;
    p->argv = a;
    b = sg_realloc(p->argvlen, (size_t)ncap * sizeof *p->argvlen);
    if (b == NULL) goto oom;
    p->argvlen = b;
    c = sg_realloc(p->argoff, (size_t)ncap * sizeof *p->argoff);
    if (c == NULL) goto oom;
    p->argoff = c;
    p->argcap = ncap;
    return SG_OK;
oom:
    return sg_seterr(&p->err, SG_ENOMEM,
                     "out of memory for argument %d of a request", p->argc + 1);
}

/* Room for need more bytes at the end of the buffer: first by moving the live
 * bytes to the front, then by growing (doubling). Positions are relative to
 * start, so only start changes. */
static int make_room(sg_resp *p, size_t need) {
    size_t live, want, ncap;
    char *nb;

    if (p->start == p->len) p->start = p->len = 0;
    if (p->cap - p->len >= need) return SG_OK;
    live = p->len - p->start;
    if (need > SIZE_MAX - live) goto oom;
    want = live + need;
    if (want <= p->cap) {
        memmove(p->buf, p->buf + p->start, live);
        p->start = 0;
        p->len = live;
        return SG_OK;
    }
    ncap = p->cap > MIN_BUF ? p->cap : MIN_BUF;
    while (ncap < want) ncap = ncap > SIZE_MAX / 2 ? want : ncap * 2;
    if (p->start == 0) {
        if ((nb = sg_realloc(p->buf, ncap)) == NULL) goto oom;
    } else {
        /* copy only the live bytes */
        if ((nb = sg_malloc(ncap)) == NULL) goto oom;
        memcpy(nb, p->buf + p->start, live);
        sg_free(p->buf);
        p->start = 0;
        p->len = live;
    }
    p->buf = nb;
    p->cap = ncap;
    return SG_OK;
oom:
    return sg_seterr(&p->err, SG_ENOMEM,
                     "out of memory buffering %zu more bytes of requests "
                     "(%zu buffered)",
                     need, p->len - p->start);
}

/* Between two requests (the last one returned is no longer in use): gives
 * back what a big request needed and the next ones do not. */
static void between_requests(sg_resp *p) {
    size_t live = p->len - p->start;

    if (live == 0) {
        p->start = p->len = 0;
        if (p->cap > KEEP_BUF) {
            sg_free(p->buf);
            p->buf = NULL;
            p->cap = 0;
        }
    } else if (p->cap > SHRINK_BUF && live <= KEEP_BUF / 2) {
        char *nb = sg_malloc(KEEP_BUF);
        if (nb != NULL) { /* if not, keep the big one: nothing is lost */
            memcpy(nb, p->buf + p->start, live);
            sg_free(p->buf);
            p->buf = nb;
            p->cap = KEEP_BUF;
            p->start = 0;
            p->len = live;
        }
    }
    if (p->argcap > KEEP_ARGS) free_args(p);
    if (p->scratchcap > KEEP_SCRATCH) {
        sg_free(p->scratch);
        p->scratch = NULL;
        p->scratchcap = 0;
    }
}

/* ---- the states ---------------------------------------------------------- */

/* Consumes n bytes that make no request (an empty line, "*0\r\n"). */
static int skip(sg_resp *p, size_t n) {
    p->start += n;
    p->state = ST_START;
    p->pos = 0;
    p->argc = 0;
    return STEP_ON;
}

/* Hands out the request that ends rawlen bytes after start. */
static int complete(sg_resp *p, sg_resp_req *req, size_t rawlen, int is_inline) {
    req->argc = p->argc;
    req->argv = p->argv;
    req->argvlen = p->argvlen;
    req->raw = p->buf + p->start;
    req->rawlen = rawlen;
    req->is_inline = is_inline;
    p->start += rawlen;
    p->state = ST_START;
    p->pos = 0;
    p->argc = 0;
    return 1;
}

/* "*N\r\n": the count. Zero or negative: an empty request, skipped. */
static int step_count(sg_resp *p, const char *s, size_t avail) {
    long long n;
    size_t used;
    int rc = read_int_line(s + 1, avail - 1, &n, &used);

    if (rc == LINE_MORE) return 0;
    if (rc == LINE_BAD || (n > 0 && (unsigned long long)n > p->lim.max_args))
        return proto_error(p, "ERR Protocol error: invalid multibulk length");
    if (n > UNAUTH_MAX_ARGS && p->auth_required)
        return proto_error(p, "ERR Protocol error: unauthenticated multibulk length");
    if (n <= 0) return skip(p, 1 + used);
    p->left = n;
    p->argc = 0;
    p->pos = 1 + used;
    p->state = ST_BULK_HDR;
    return STEP_ON;
}

/* "$len\r\n": one bulk's length. */
static int step_bulk_header(sg_resp *p, const char *s, size_t avail) {
    size_t pos = p->pos, used, end;
    long long n;
    int rc;

    if (pos == avail) return 0;
    if (s[pos] != '$')
        return proto_error(p, "ERR Protocol error: expected '$', got '%c'",
                           shown_byte(s[pos]));
    rc = read_int_line(s + pos + 1, avail - pos - 1, &n, &used);
    if (rc == LINE_MORE) return 0;
    if (rc == LINE_BAD || n < 0 || (unsigned long long)n > p->lim.max_bulk)
        return proto_error(p, "ERR Protocol error: invalid bulk length");
    if (n > UNAUTH_MAX_BULK && p->auth_required)
        return proto_error(p, "ERR Protocol error: unauthenticated bulk length");
    end = pos + 1 + used;
    /* The request is at least this long: refuse it now, before its bytes. */
    if ((unsigned long long)end + (unsigned long long)n + 2 > p->lim.max_request)
        return proto_error(p, "ERR Protocol error: request bigger than %zu bytes",
                           p->lim.max_request);
    if (reserve_arg(p, (long long)p->argc + p->left) != SG_OK) return SG_ENOMEM;
    p->bulklen = n;
    p->pos = end;
    p->state = ST_BULK_DATA;
    return STEP_ON;
}

/* A bulk's bytes and the "\r\n" after them. The last one completes the
 * request. */
static int step_bulk_data(sg_resp *p, const char *s, size_t avail, sg_resp_req *req) {
    size_t pos = p->pos, n = (size_t)p->bulklen, have = avail - pos;
    int i;

    if ((have > n && s[pos + n] != '\r') || (have > n + 1 && s[pos + n + 1] != '\n'))
        return proto_error(p, "ERR Protocol error: bulk argument not followed by CRLF");
    if (have < n + 2) return 0;
    p->argoff[p->argc] = pos;
    p->argvlen[p->argc] = n;
    p->argc++;
    p->pos = pos + n + 2;
    if (--p->left > 0) {
        p->state = ST_BULK_HDR;
        return STEP_ON;
    }
    for (i = 0; i < p->argc; i++) p->argv[i] = s + p->argoff[i];
    return complete(p, req, p->pos, 0);
}

/* Splits a whole inline line (its LF and the CR before it left out) into
 * p's arguments. SG_OK (argc may be 0: a blank line), SG_EPROTO, SG_ENOMEM. */
static int split_inline(sg_resp *p, const char *line, size_t n) {
    const char *word;
    size_t i = 0, o = 0, wlen;
    char *out = NULL;
    int rc;

    if (memchr(line, '\0', n) != NULL)
        return proto_error(p, "ERR Protocol error: NUL byte in inline request");
    if (memchr(line, '"', n) != NULL || memchr(line, '\'', n) != NULL) {
        /* Decoding never makes a line longer: room for n bytes is enough. */
        if (p->scratchcap < n) {
            size_t ncap = n > 256 ? n : 256;
            char *ns = sg_realloc(p->scratch, ncap);
            if (ns == NULL)
                return sg_seterr(&p->err, SG_ENOMEM,
                                 "out of memory decoding a %zu-byte inline request", n);
            p->scratch = ns;
            p->scratchcap = ncap;
        }
        out = p->scratch;
    }
    p->argc = 0;
    while ((rc = read_word(line, n, &i, out ? out + o : NULL, &word, &wlen)) > 0) {
        if ((size_t)p->argc >= p->lim.max_args)
            return proto_error(p, "ERR Protocol error: too many arguments in inline request");
        if (reserve_arg(p, INT_MAX) != SG_OK) return SG_ENOMEM;
        p->argv[p->argc] = word;
        p->argvlen[p->argc] = wlen;
        p->argc++;
        if (out && word == out + o) o += wlen;
    }
    if (rc < 0) return proto_error(p, "ERR Protocol error: unbalanced quotes in request");
    return SG_OK;
}

/* An inline request: everything up to the next '\n'. */
static int step_inline(sg_resp *p, const char *s, size_t avail, sg_resp_req *req) {
    const char *nl = memchr(s + p->pos, '\n', avail - p->pos);
    size_t linelen, end;
    int rc;

    if (nl == NULL) {
        p->pos = avail; /* searched: the next search starts here */
        if (avail > p->max_line)
            return proto_error(p, "ERR Protocol error: too big inline request");
        return 0;
    }
    linelen = (size_t)(nl - s);
    if (linelen > p->max_line)
        return proto_error(p, "ERR Protocol error: too big inline request");
    p->pos = linelen; /* after an ENOMEM, the '\n' is found at once */
    end = linelen > 0 && s[linelen - 1] == '\r' ? linelen - 1 : linelen;
    if ((rc = split_inline(p, s, end)) != SG_OK) return rc;
    if (p->argc == 0) return skip(p, linelen + 1);
    return complete(p, req, linelen + 1, 1);
}

/* ---- the API ------------------------------------------------------------- */

void sg_resp_limits_default(sg_resp_limits *l) {
    l->max_args = SG_RESP_DEFAULT_MAX_ARGS;
    l->max_bulk = SG_RESP_DEFAULT_MAX_BULK;
    l->max_inline = SG_RESP_DEFAULT_MAX_INLINE;
    l->max_request = SG_RESP_DEFAULT_MAX_REQUEST;
}

void sg_resp_set_limits(sg_resp *p, const sg_resp_limits *limits) {
    sg_resp_limits d;
    sg_resp_limits_default(&d);
    if (limits != NULL) {
        if (limits->max_args) d.max_args = limits->max_args;
        if (limits->max_bulk) d.max_bulk = limits->max_bulk;
        if (limits->max_inline) d.max_inline = limits->max_inline;
        if (limits->max_request) d.max_request = limits->max_request;
    }
    if (d.max_args > INT_MAX) d.max_args = INT_MAX; /* argc is an int */
    p->lim = d;
    /* an inline request is its line and at least a '\n' */
    p->max_line = d.max_inline < d.max_request ? d.max_inline : d.max_request - 1;
}

void sg_resp_set_auth_required(sg_resp *p, int on) { p->auth_required = on != 0; }

sg_resp *sg_resp_new(const sg_resp_limits *limits) {
    sg_resp *p = sg_calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    sg_resp_set_limits(p, limits);
    p->state = ST_START;
    return p;
}

void sg_resp_free(sg_resp *p) {
    if (p == NULL) return;
    sg_free(p->buf);
    free_args(p);
    sg_free(p->scratch);
    sg_free(p);
}

int sg_resp_feed(sg_resp *p, const void *data, size_t len) {
    if (p->state == ST_ERROR) return p->err.code;
    sg_clearerr(&p->err);
    if (len == 0) return SG_OK;
    if (make_room(p, len) != SG_OK) return SG_ENOMEM;
    memcpy(p->buf + p->len, data, len);
    p->len += len;
    return SG_OK;
}

char *sg_resp_space(sg_resp *p, size_t want, size_t *avail) {
    *avail = 0;
    if (p->state == ST_ERROR) return NULL;
    sg_clearerr(&p->err);
    if (make_room(p, want ? want : 1) != SG_OK) return NULL;
    *avail = p->cap - p->len;
    return p->buf + p->len;
}

void sg_resp_commit(sg_resp *p, size_t n) {
    if (p->state == ST_ERROR) return;
    if (n > p->cap - p->len) n = p->cap - p->len;
    p->len += n;
}

int sg_resp_next(sg_resp *p, sg_resp_req *req) {
    if (p->state == ST_ERROR) return p->err.code;
    sg_clearerr(&p->err);
    if (p->state == ST_START) between_requests(p);
    for (;;) {
        size_t avail = p->len - p->start;
        const char *s;
        int rc;

        /* nothing buffered: maybe no buffer at all (NULL + 0 is undefined) */
        if (avail == 0 && p->state == ST_START) return 0;
        s = p->buf + p->start;
        switch (p->state) {
        case ST_START:
            /* as redis: '*' starts a multibulk, anything else a line */
            p->state = s[0] == '*' ? ST_COUNT : ST_INLINE;
            p->pos = 0;
            rc = STEP_ON;
            break;
        case ST_COUNT: rc = step_count(p, s, avail); break;
        case ST_BULK_HDR: rc = step_bulk_header(p, s, avail); break;
        case ST_BULK_DATA: rc = step_bulk_data(p, s, avail, req); break;
        case ST_INLINE: rc = step_inline(p, s, avail, req); break;
        default: return p->err.code;
        }
        if (rc != STEP_ON) return rc;
    }
}

size_t sg_resp_buffered(const sg_resp *p) { return p->len - p->start; }

size_t sg_resp_memory(const sg_resp *p) {
    return sizeof *p + p->cap + p->scratchcap +
           (size_t)p->argcap *
               (sizeof *p->argv + sizeof *p->argvlen + sizeof *p->argoff);
}

void sg_resp_shrink(sg_resp *p) {
    if (p->state != ST_START && p->state != ST_ERROR) return; /* mid-request */
    if (p->start == p->len) {
        sg_free(p->buf);
        p->buf = NULL;
        p->cap = p->len = p->start = 0;
    }
    free_args(p);
    sg_free(p->scratch);
    p->scratch = NULL;
    p->scratchcap = 0;
}

/* ---- The writer ------------------------------------------------------------------- */

/* Appends a RESP header: the type byte, the number, CRLF (no printf: this
 * runs for every reply). */
static void put_head(sg_resp_out *o, char type, long long v) {
    char tmp[24], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    *--p = '\n';
    *--p = '\r';
    do *--p = (char)('0' + u % 10); while ((u /= 10) != 0);
    if (v < 0) *--p = '-';
    *--p = type;
    sg_buf_append(&o->buf, p, (size_t)(tmp + sizeof tmp - p));
}

/* A string-like reply's bytes after its type byte: RESP3's own type, or a
 * bulk string for a RESP2 client. */
static void put_text(sg_resp_out *o, char type3, const char *s, size_t n) {
    if (o->proto == SG_RESP_PROTO_3) {
        sg_buf_append(&o->buf, &type3, 1);
        sg_buf_append(&o->buf, s, n);
        sg_buf_append(&o->buf, "\r\n", 2);
    } else {
        sg_resp_put_bulk(o, s, n);
    }
}

void sg_resp_put_reply(sg_resp_out *o, const sg_reply *r) {
    size_t i;
    /* an attribute is RESP3's alone: a RESP2 client is not told */
    if (r->attribute && o->proto == SG_RESP_PROTO_3) {
        put_head(o, '|', (long long)(r->attribute->elements / 2));
        for (i = 0; i < r->attribute->elements; i++)
            sg_resp_put_reply(o, r->attribute->element[i]);
    }
    switch (r->type) {
    case SG_REPLY_STATUS:
    case SG_REPLY_ERROR:
        sg_buf_append(&o->buf, r->type == SG_REPLY_STATUS ? "+" : "-", 1);
        sg_buf_append(&o->buf, r->str, r->len);
        sg_buf_append(&o->buf, "\r\n", 2);
        break;
    case SG_REPLY_INTEGER: put_head(o, ':', r->integer); break;
    case SG_REPLY_NIL: sg_resp_put_null(o); break;
    case SG_REPLY_STRING: sg_resp_put_bulk(o, r->str, r->len); break;
    case SG_REPLY_ARRAY:
    case SG_REPLY_SET:
    case SG_REPLY_PUSH:
    case SG_REPLY_MAP:
        if (r->type == SG_REPLY_MAP) sg_resp_put_map(o, r->elements / 2);
        else if (r->type == SG_REPLY_SET) sg_resp_put_set(o, r->elements);
        else if (r->type == SG_REPLY_PUSH) sg_resp_put_push(o, r->elements);
        else put_head(o, '*', (long long)r->elements);
        for (i = 0; i < r->elements; i++) sg_resp_put_reply(o, r->element[i]);
        break;
    case SG_REPLY_DOUBLE: put_text(o, ',', r->str, r->len); break; /* the node's own text */
    case SG_REPLY_BIGNUM: put_text(o, '(', r->str, r->len); break;
    case SG_REPLY_VERB:
        if (o->proto == SG_RESP_PROTO_3) {
            put_head(o, '=', (long long)r->len + 4);
            sg_buf_append(&o->buf, r->vtype, 3);
            sg_buf_append(&o->buf, ":", 1);
            sg_buf_append(&o->buf, r->str, r->len);
            sg_buf_append(&o->buf, "\r\n", 2);
        } else {
            sg_resp_put_bulk(o, r->str, r->len);
        }
        break;
    case SG_REPLY_BOOL: sg_resp_put_bool(o, r->integer != 0); break;
    default: /* an attribute is never a reply of its own */
        assert(!"a reply of no known type");
        sg_resp_put_error(o, "ERR slotgate: a reply of no known type");
        break;
    }
}

void sg_resp_put_bulk(sg_resp_out *o, const char *s, size_t n) {
    put_head(o, '$', (long long)n);
    sg_buf_append(&o->buf, s, n);
    sg_buf_append(&o->buf, "\r\n", 2);
}

void sg_resp_put_status(sg_resp_out *o, const char *s) {
    sg_buf_append(&o->buf, "+", 1);
    sg_buf_puts(&o->buf, s);
    sg_buf_append(&o->buf, "\r\n", 2);
}

void sg_resp_put_error(sg_resp_out *o, const char *msg) {
    const char *p;
    sg_buf_append(&o->buf, "-", 1);
    for (p = msg; *p; p++) /* an error line cannot hold CR or LF */
        sg_buf_append(&o->buf, (*p == '\r' || *p == '\n') ? " " : p, 1);
    sg_buf_append(&o->buf, "\r\n", 2);
}

void sg_resp_put_int(sg_resp_out *o, long long v) { put_head(o, ':', v); }

void sg_resp_put_array(sg_resp_out *o, size_t n) { put_head(o, '*', (long long)n); }

void sg_resp_put_null(sg_resp_out *o) {
    if (o->proto == SG_RESP_PROTO_3) sg_buf_append(&o->buf, "_\r\n", 3);
    else sg_buf_append(&o->buf, "$-1\r\n", 5);
}

void sg_resp_put_null_array(sg_resp_out *o) {
    if (o->proto == SG_RESP_PROTO_3) sg_buf_append(&o->buf, "_\r\n", 3);
    else sg_buf_append(&o->buf, "*-1\r\n", 5);
}

void sg_resp_put_map(sg_resp_out *o, size_t n) {
    if (o->proto == SG_RESP_PROTO_3) put_head(o, '%', (long long)n);
    else put_head(o, '*', (long long)(2 * n));
}

void sg_resp_put_set(sg_resp_out *o, size_t n) {
    put_head(o, o->proto == SG_RESP_PROTO_3 ? '~' : '*', (long long)n);
}

void sg_resp_put_push(sg_resp_out *o, size_t n) {
    put_head(o, o->proto == SG_RESP_PROTO_3 ? '>' : '*', (long long)n);
}

/* As Redis's addReplyDouble: "inf", "-inf", "nan", else the shortest of
 * %.17g that reads back the same. */
void sg_resp_put_double(sg_resp_out *o, double v) {
    char tmp[64];
    int n;
    if (isinf(v)) n = snprintf(tmp, sizeof tmp, "%s", v > 0 ? "inf" : "-inf");
    else if (isnan(v)) n = snprintf(tmp, sizeof tmp, "nan");
    else n = snprintf(tmp, sizeof tmp, "%.17g", v);
    put_text(o, ',', tmp, (size_t)n);
}

void sg_resp_put_bool(sg_resp_out *o, int v) {
    if (o->proto == SG_RESP_PROTO_3) sg_buf_append(&o->buf, v ? "#t\r\n" : "#f\r\n", 4);
    else put_head(o, ':', v ? 1 : 0);
}

void sg_resp_put_verbatim(sg_resp_out *o, const char *s, size_t n) {
    if (o->proto != SG_RESP_PROTO_3) {
        sg_resp_put_bulk(o, s, n);
        return;
    }
    put_head(o, '=', (long long)n + 4);
    sg_buf_append(&o->buf, "txt:", 4);
    sg_buf_append(&o->buf, s, n);
    sg_buf_append(&o->buf, "\r\n", 2);
}

void sg_resp_put_raw(sg_resp_out *o, const char *resp, size_t n) {
    sg_buf_append(&o->buf, resp, n);
}
