/*
 * sg_internal.h — what every core file shares and the public header does not
 * show: the error block each handle starts with, allocation wrappers that a
 * test can make fail, and logging.
 */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "slotgate.h"

#define SG_ERRMSG_MAX 512

/* Every public handle begins with this, so sg_errcode()/sg_errmsg() can read
 * any of them. */
typedef struct sg_error {
    int code;
    char msg[SG_ERRMSG_MAX];
} sg_error;

/* Records code and a printf-style message on e; returns code. */
int sg_seterr(sg_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sg_clearerr(sg_error *e);

/* Allocation: every allocation in the core goes through these, so a test can
 * make the Nth one fail (sg_alloc_fail_at) and prove that failure is handled. */
void *sg_malloc(size_t n);
void *sg_calloc(size_t count, size_t size);
void *sg_realloc(void *p, size_t n);
char *sg_strdup(const char *s);
char *sg_strndup(const char *s, size_t n);
void sg_free(void *p);

/* Makes room for one more element in a growable array (*arr holding *cap
 * elements of size elem, n in use): doubles from first. SG_OK or SG_ENOMEM. */
int sg_grow(void **arr, int *cap, int n, size_t elem, int first);

/* The value of NAME in a "NAME=value" array (NULL: the process's
 * environment), or NULL when it is not set. */
const char *sg_env_get(const char *const *env, const char *name);
/* Whether s holds only white space (Go's strings.TrimSpace gives ""). */
int sg_is_blank(const char *s);
/* Reads a whole file into *out (NUL-terminated, *outlen bytes, caller frees
 * with sg_free); SG_EIO naming the file and why, or SG_ENOMEM, set on err. */
int sg_read_file(const char *path, char **out, size_t *outlen, sg_error *err);

/* Read policies by name: "master", "prefer-replica" (or "prefer_replica"),
 * "replica", "any"; -1 when unknown. And back ("prefer-replica"). */
int sg_read_policy_parse(const char *name);
const char *sg_read_policy_label(int policy);

/* Test hook: the nth allocation from now (1 = the next) fails, and every one
 * after it succeeds again; 0 turns failures off. Returns how many allocations
 * have been made since the last call. Not thread-safe; for tests only. */
unsigned long sg_alloc_fail_at(unsigned long nth);

/* Milliseconds on a monotonic clock. */
uint64_t sg_now_ms(void);

/* Logging through the host's callback; formatted only when enabled. */
extern int sg_log_threshold;
void sg_log_emit(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define sg_log(level, ...)                                                     \
    do {                                                                       \
        if ((level) >= sg_log_threshold) sg_log_emit((level), __VA_ARGS__);   \
    } while (0)
/* The same with what the message concerns (sg_log_fields: the node, the
 * client, the user), for hosts that write structured lines. */
void sg_log_emit_at(int level, const sg_log_fields *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define sg_log_at(level, fields, ...)                                          \
    do {                                                                       \
        if ((level) >= sg_log_threshold)                                       \
            sg_log_emit_at((level), (fields), __VA_ARGS__);                    \
    } while (0)

/* A growable byte buffer (for dumps and messages). On allocation failure it
 * sets oom and ignores further appends. */
typedef struct sg_buf {
    char *data;
    size_t len, cap;
    int oom;
} sg_buf;

void sg_buf_append(sg_buf *b, const char *s, size_t n);
void sg_buf_puts(sg_buf *b, const char *s);
void sg_buf_printf(sg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Takes the NUL-terminated contents (NULL on oom) and resets b. */
char *sg_buf_take(sg_buf *b);
void sg_buf_free(sg_buf *b);

/* sg_gateway_forward for a caller that has resolved argv's command already
 * (cmd: what sg_command_resolve() gives for argv; NULL: looked up here), as
 * the slotgated daemon does for its own decisions: the look-up is not done
 * twice. Without a policy the command goes on as cmd; a policy looks again
 * at what it may have rewritten. */
struct sg_command;
/* The policies' verdict on a command the host answers itself (the daemon's
 * PING, ECHO, CLIENT, INFO ...), which a policy may refuse as it refuses a
 * forwarded one: 1 with the refusal in err (an error reply's text) when they
 * deny it, 0 when they let it through or there are none. */
int sg_gateway_denies(sg_gateway *g, const sg_request_ctx *ctx, int argc, const char *const *argv,
                      const size_t *argvlen, char *err, size_t errlen);
int sg_gateway_forward_cmd(sg_gateway *g, const struct sg_command *cmd, const sg_request_ctx *ctx,
                           int argc, const char *const *argv, const size_t *argvlen,
                           const char *resp, size_t resplen, sg_reply_fn fn,
                           sg_raw_reply_fn raw_fn, void *ud);

/* sg_gateway_prepare for a host that sends the command later on a link, past
 * the near cache (slotgated's transactions, at EXEC). A command that may
 * write its keys drops their entries now, and *hold (NULL when there is
 * nothing to hold: a read, no key, no cache) keeps them from being filled
 * until sg_gateway_release(*hold): once the reply of what carried it came (the
 * EXEC's), or when it will not be sent (DISCARD, EXECABORT). So a read that
 * meets the old value while the command waits cannot leave it behind for
 * the writer to read after the reply. The hold is the gateway's: release it
 * before sg_gateway_free. */
struct sg_cache_call;
int sg_gateway_prepare_held(sg_gateway *g, const sg_request_ctx *ctx, int argc,
                            const char *const *argv, const size_t *argvlen, sg_prepared *out,
                            struct sg_cache_call **hold);
/* Ends a hold of sg_gateway_prepare_held; NULL does nothing. */
void sg_gateway_release(struct sg_cache_call *hold);

#endif
