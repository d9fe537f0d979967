/*
 * resp.h — slotgated's RESP module, both halves of the protocol with its
 * clients: the reader of requests (sg_resp: RESP2 as redis-server accepts
 * it, multibulk ("*N\r\n$len\r\n...\r\n") and inline (words on a line, with
 * redis's quoting), fed incrementally, pipelined, with limits) and the
 * writer of replies (sg_resp_out and sg_resp_put_*, at the end).
 *
 * One sg_resp per client connection. The daemon puts the bytes it reads into
 * the parser (sg_resp_feed, or sg_resp_space + sg_resp_commit to read straight
 * into its buffer) and takes complete requests out with sg_resp_next until it
 * says it needs more. A request cut off anywhere is "need more", never an
 * error; parsing resumes where it stopped, it never re-reads a request from
 * its start. Memory grows with the bytes that actually arrive, never with the
 * sizes a client declares.
 *
 * Errors follow the core: functions return SG_OK (0) or a negative SG_E*
 * code, and the parser is a handle, so sg_errcode(p) / sg_errmsg(p) give the
 * last one. A protocol error (SG_EPROTO) is final: its message is the error
 * reply redis-server sends in the same case, without the leading '-' and the
 * CRLF ("ERR Protocol error: invalid bulk length"); the daemon sends it and
 * closes the client, as redis does. SG_ENOMEM is not final: nothing was lost,
 * and the same call may be tried again.
 *
 * Not thread-safe; each connection's parser belongs to one thread.
 */
#ifndef SG_RESP_H
#define SG_RESP_H

#include <stddef.h>
#include <strings.h>

#include "core_private.h"

typedef struct sg_resp sg_resp;

/* Limits on what one client may send. A request over a limit is a protocol
 * error (SG_EPROTO) with redis's text where redis has one. 0 in any field
 * means its default. */
typedef struct sg_resp_limits {
    size_t max_args;    /* arguments in one request (the multibulk count):
                           default 1024*1024, "invalid multibulk length";
                           at most INT_MAX */
    size_t max_bulk;    /* bytes in one bulk argument: default 512 MB
                           (redis's proto-max-bulk-len), "invalid bulk length" */
    size_t max_inline;  /* bytes of an inline request before its '\n':
                           default 64 KB, "too big inline request" */
    size_t max_request; /* bytes of one whole request, headers and CRLFs
                           included: default 1 GB (redis's
                           client-query-buffer-limit) */
} sg_resp_limits;

#define SG_RESP_DEFAULT_MAX_ARGS ((size_t)1024 * 1024)
#define SG_RESP_DEFAULT_MAX_BULK ((size_t)512 * 1024 * 1024)
#define SG_RESP_DEFAULT_MAX_INLINE ((size_t)64 * 1024)
#define SG_RESP_DEFAULT_MAX_REQUEST ((size_t)1024 * 1024 * 1024)

/* One complete request. Every pointer points into memory the parser owns and
 * stays valid until the next call on the parser (sg_resp_next, _feed, _space,
 * _commit, _shrink, _set_*, _free): copy what must outlive it. */
typedef struct sg_resp_req {
    int argc;                /* 1 or more: empty requests are skipped */
    const char *const *argv; /* argc arguments, binary-safe, NOT
                                NUL-terminated: use argvlen */
    const size_t *argvlen;   /* their lengths in bytes */
    const char *raw;         /* the request's bytes exactly as received, */
    size_t rawlen;           /*   its final CRLF (or LF) included */
    int is_inline;           /* 1: the inline form. Its raw bytes are a line
                                with redis's quoting, not RESP: to forward it,
                                encode argv as a multibulk instead */
} sg_resp_req;

/* Whether argument i of r is word (case-insensitive): for a request's
 * options ("AUTH", a section name), not its command, which the command table
 * resolves. Inline: with a literal word the length is a constant and most
 * mismatches cost one comparison. */
static inline int sg_resp_arg_is(const sg_resp_req *r, int i, const char *word) {
    size_t n = __builtin_strlen(word);
    return i < r->argc && r->argvlen[i] == n && strncasecmp(r->argv[i], word, n) == 0;
}

/* Fills l with the defaults above. */
void sg_resp_limits_default(sg_resp_limits *l);

/* A new parser with the given limits (NULL: the defaults); it holds no buffer
 * until bytes arrive. NULL when out of memory. Free with sg_resp_free. */
sg_resp *sg_resp_new(const sg_resp_limits *limits);
/* Frees the parser and everything it holds. NULL does nothing. */
void sg_resp_free(sg_resp *p);

/* Changes the limits (NULL: the defaults). They apply to what is parsed from
 * now on, the current request included. */
void sg_resp_set_limits(sg_resp *p, const sg_resp_limits *limits);

/* Redis's limits before AUTH (on: 1): a count above 10 is "ERR Protocol
 * error: unauthenticated multibulk length", a bulk above 16384 bytes
 * "ERR Protocol error: unauthenticated bulk length". Off (0, the default)
 * once the client has authenticated or when no password is configured. */
void sg_resp_set_auth_required(sg_resp *p, int on);

/* Appends len bytes the client sent (copied). SG_OK; SG_ENOMEM (the bytes
 * were not taken: try again or drop the client); SG_EPROTO after a protocol
 * error (the bytes are ignored). */
int sg_resp_feed(sg_resp *p, const void *data, size_t len);

/* To read straight into the parser's buffer: returns where to write at least
 * want bytes and sets *avail to how many may be written there (>= want), or
 * NULL (out of memory, or after a protocol error; sg_errcode says which). The
 * pointer is valid until the next call; then sg_resp_commit(p, n) with the n
 * bytes written (n <= *avail; 0 is fine). */
char *sg_resp_space(sg_resp *p, size_t want, size_t *avail);
void sg_resp_commit(sg_resp *p, size_t n);

/* The next complete request: 1 and *req filled; 0 when more bytes are needed
 * (a partial request stays buffered and parsing resumes where it stopped);
 * SG_EPROTO (final: sg_errmsg(p) is the reply to send before closing) or
 * SG_ENOMEM (nothing consumed; try again). Empty lines, "*0\r\n" and negative
 * counts are skipped, as redis does. */
int sg_resp_next(sg_resp *p, sg_resp_req *req);

/* Bytes received and not yet returned as requests (a partial request
 * included): what the daemon's per-client input limit is about. */
size_t sg_resp_buffered(const sg_resp *p);

/* Bytes of memory the parser holds (its buffer, argument arrays, scratch, and
 * itself). */
size_t sg_resp_memory(const sg_resp *p);

/* Gives back memory the parser does not need: the whole buffer when nothing
 * is buffered (for idle clients), and the argument arrays. */
void sg_resp_shrink(sg_resp *p);

/* ---- The writer ------------------------------------------------------------
 * Every reply slotgated writes goes through these, into an sg_resp_out: a
 * session's output, or the reply slot of a request whose reply must wait
 * for those owed before it. The protocol is the writer's (the session's,
 * which HELLO sets), and these functions are the one place that knows the
 * difference: each type RESP3 has is written in RESP3, or as Redis writes it
 * to a RESP2 client (a map as its pairs in an array, a double as a bulk
 * string, a boolean as 1 or 0, a null as the null bulk or the null array).
 * Out of memory sets buf.oom and drops what follows (sg_buf). */
enum {
    SG_RESP_PROTO_2 = 0, /* the zero value: a zeroed writer writes RESP2 */
    SG_RESP_PROTO_3
};

typedef struct sg_resp_out {
    sg_buf buf; /* the bytes written */
    int proto;  /* SG_RESP_PROTO_* */
} sg_resp_out;

/* A reply of a node (or of the core), as the client's protocol writes it. */
void sg_resp_put_reply(sg_resp_out *o, const sg_reply *r);
/* A bulk string: n bytes of s. */
void sg_resp_put_bulk(sg_resp_out *o, const char *s, size_t n);
/* A simple string ("OK" gives +OK); s holds no CR or LF. */
void sg_resp_put_status(sg_resp_out *o, const char *s);
/* An error reply: msg must start with an error code word ("ERR ..."); a CR
 * or LF in it is written as a space. */
void sg_resp_put_error(sg_resp_out *o, const char *msg);
void sg_resp_put_int(sg_resp_out *o, long long v);
/* The header of an array of n elements (the elements are put next). */
void sg_resp_put_array(sg_resp_out *o, size_t n);
/* The null reply (RESP2: the null bulk string). */
void sg_resp_put_null(sg_resp_out *o);
/* The null where Redis gives a null array in RESP2 (BLPOP's timeout, EXEC
 * aborted by WATCH): "*-1" in RESP2, "_" in RESP3. */
void sg_resp_put_null_array(sg_resp_out *o);
/* The header of a map of n pairs (then key, value, key, value ...): RESP2
 * an array of 2n. */
void sg_resp_put_map(sg_resp_out *o, size_t n);
/* The header of a set of n elements: RESP2 an array. */
void sg_resp_put_set(sg_resp_out *o, size_t n);
/* The header of a push of n elements (pub/sub messages, invalidations):
 * RESP2 an array. */
void sg_resp_put_push(sg_resp_out *o, size_t n);
/* A double as Redis writes one (RESP3 ",1.5", "inf", "-inf"; RESP2 a bulk
 * string of the same text). */
void sg_resp_put_double(sg_resp_out *o, double v);
/* A boolean: RESP3 "#t"/"#f", RESP2 the integer 1 or 0. */
void sg_resp_put_bool(sg_resp_out *o, int v);
/* Text for a person (INFO, CLIENT LIST, CLUSTER INFO ...): RESP3 a verbatim
 * string of format "txt", RESP2 a bulk string. */
void sg_resp_put_verbatim(sg_resp_out *o, const char *s, size_t n);
/* Bytes already in the writer's protocol: a node's reply passed through as
 * it came, or replies written earlier into another sg_resp_out. */
void sg_resp_put_raw(sg_resp_out *o, const char *resp, size_t n);

#endif
