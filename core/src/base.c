/*
 * base.c — version, error codes and messages, allocation wrappers with the
 * failure hook, logging, the small byte buffer, and the monotonic clock.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sg_internal.h"

#define SG_STR_(x) #x
#define SG_STR(x) SG_STR_(x)

const char *sg_version(void) {
    return SG_STR(SG_VERSION_MAJOR) "." SG_STR(SG_VERSION_MINOR) "." SG_STR(
        SG_VERSION_PATCH);
}

unsigned sg_version_hex(void) { return SG_VERSION_HEX; }

const char *sg_strerror(int code) {
    switch (code) {
#define SG_ERR_TEXT_(name, c, text)                                            \
    case c: return text;
        SG_ERR_MAP(SG_ERR_TEXT_)
#undef SG_ERR_TEXT_
    }
    return "unknown error";
}

const char *sg_errname(int code) {
    switch (code) {
#define SG_ERR_NAME_(name, c, text)                                            \
    case c: return #name;
        SG_ERR_MAP(SG_ERR_NAME_)
#undef SG_ERR_NAME_
    }
    return "UNKNOWN";
}

int sg_errcode(const void *handle) {
    if (handle == NULL) return SG_ENOMEM;
    return ((const sg_error *)handle)->code;
}

const char *sg_errmsg(const void *handle) {
    if (handle == NULL) return "out of memory";
    return ((const sg_error *)handle)->msg;
}

int sg_seterr(sg_error *e, int code, const char *fmt, ...) {
    va_list ap;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void sg_clearerr(sg_error *e) {
    e->code = SG_OK;
    e->msg[0] = '\0';
}

/* ---- allocation ---------------------------------------------------------- */

static unsigned long alloc_count; /* allocations since the last hook call */
static unsigned long alloc_fail_nth; /* 0: never fail */
static int alloc_hooked;             /* the hook was called: count (tests only) */

unsigned long sg_alloc_fail_at(unsigned long nth) {
    unsigned long made = alloc_count;
    alloc_count = 0;
    alloc_fail_nth = nth;
    __atomic_store_n(&alloc_hooked, 1, __ATOMIC_RELAXED);
    return made;
}

/* Counts an allocation; says whether this one must fail. Until a test calls
 * the hook nothing is counted: the daemon's threads would race on the
 * counter (and share its cache line). */
static int alloc_should_fail(void) {
    if (!__atomic_load_n(&alloc_hooked, __ATOMIC_RELAXED)) return 0;
    alloc_count++;
    return alloc_fail_nth != 0 && alloc_count == alloc_fail_nth;
}

void *sg_malloc(size_t n) {
    if (alloc_should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *sg_calloc(size_t count, size_t size) {
    if (alloc_should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *sg_realloc(void *p, size_t n) {
    if (alloc_should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

char *sg_strndup(const char *s, size_t n) {
    char *d = sg_malloc(n + 1);
    if (d == NULL) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sg_strdup(const char *s) { return sg_strndup(s, strlen(s)); }

void sg_free(void *p) { free(p); }

extern char **environ;

const char *sg_env_get(const char *const *env, const char *name) {
    size_t n = strlen(name);
    const char *const *e = env ? env : (const char *const *)environ;
    for (; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

int sg_is_blank(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == '\0';
}

int sg_read_file(const char *path, char **out, size_t *outlen, sg_error *err) {
    FILE *f = fopen(path, "rb");
    sg_buf b = {0};
    char chunk[8192];
    size_t n;
    if (f == NULL) return sg_seterr(err, SG_EIO, "%s: cannot open: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sg_buf_append(&b, chunk, n);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        sg_buf_free(&b);
        return sg_seterr(err, SG_EIO, "%s: cannot read: %s", path, strerror(e));
    }
    fclose(f);
    *outlen = b.len;
    if ((*out = sg_buf_take(&b)) == NULL)
        return sg_seterr(err, SG_ENOMEM, "out of memory reading %s", path);
    return SG_OK;
}

int sg_read_policy_parse(const char *name) {
    if (strcmp(name, "master") == 0) return SG_READ_MASTER;
    if (strcmp(name, "prefer-replica") == 0 || strcmp(name, "prefer_replica") == 0)
        return SG_READ_PREFER_REPLICA;
    if (strcmp(name, "replica") == 0) return SG_READ_REPLICA;
    if (strcmp(name, "any") == 0) return SG_READ_ANY;
    return -1;
}

const char *sg_read_policy_label(int policy) {
    static const char *const names[] = {"master", "prefer-replica", "replica", "any"};
    return policy >= SG_READ_MASTER && policy <= SG_READ_ANY ? names[policy] : "master";
}

int sg_grow(void **arr, int *cap, int n, size_t elem, int first) {
    int ncap;
    void *p;
    if (n < *cap) return SG_OK;
    ncap = *cap ? *cap * 2 : first;
    if ((p = sg_realloc(*arr, (size_t)ncap * elem)) == NULL) return SG_ENOMEM;
    *arr = p;
    *cap = ncap;
    return SG_OK;
}

/* ---- logging ------------------------------------------------------------- */

int sg_log_threshold = SG_LOG_NONE;
static sg_log_fn log_fn;
static sg_log_fields_fn log_fields_fn; /* set instead of log_fn: takes the fields */
static void *log_ud;

void sg_set_log(sg_log_fn fn, int level, void *ud) {
    log_fn = fn;
    log_fields_fn = NULL;
    log_ud = ud;
    sg_log_threshold = fn ? level : SG_LOG_NONE;
}

void sg_set_log_fields(sg_log_fields_fn fn, int level, void *ud) {
    log_fn = NULL;
    log_fields_fn = fn;
    log_ud = ud;
    sg_log_threshold = fn ? level : SG_LOG_NONE;
}

const char *sg_log_level_name(int level) {
    static const char *const names[] = {"debug", "info", "warn", "error",
                                        "none"};
    if (level < SG_LOG_DEBUG || level > SG_LOG_NONE) return "none";
    return names[level];
}

static void log_vemit(int level, const sg_log_fields *fields, const char *fmt, va_list ap) {
    static const sg_log_fields none = {NULL, NULL, NULL};
    char msg[1024];
    if (log_fn == NULL && log_fields_fn == NULL) return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (log_fields_fn) log_fields_fn(level, msg, fields ? fields : &none, log_ud);
    else log_fn(level, msg, log_ud);
}

void sg_log_emit(int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vemit(level, NULL, fmt, ap);
    va_end(ap);
}

void sg_log_emit_at(int level, const sg_log_fields *fields, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vemit(level, fields, fmt, ap);
    va_end(ap);
}

/* ---- byte buffer --------------------------------------------------------- */

void sg_buf_append(sg_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1) cap *= 2;
        p = sg_realloc(b->data, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sg_buf_puts(sg_buf *b, const char *s) { sg_buf_append(b, s, strlen(s)); }

void sg_buf_printf(sg_buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        sg_buf_append(b, small, (size_t)n);
        return;
    }
    {
        char *big = sg_malloc((size_t)n + 1);
        if (big == NULL) {
            b->oom = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        sg_buf_append(b, big, (size_t)n);
        sg_free(big);
    }
}

char *sg_buf_take(sg_buf *b) {
    char *d;
    if (b->oom) {
        sg_buf_free(b);
        return NULL;
    }
    if (b->data == NULL) sg_buf_append(b, "", 0);
    if (b->oom) {
        sg_buf_free(b);
        return NULL;
    }
    d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void sg_buf_free(sg_buf *b) {
    sg_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

uint64_t sg_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
