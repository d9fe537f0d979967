/*
 * log.c — slotgated's log: one line a message, on stderr as text
 * ("slotgated: LEVEL: text") or as one JSON object (log_format json: time,
 * level, worker, message, and node, client, user where the code that logs
 * knows them), or syslog with the level as its priority (debug, info,
 * warning, err) when the syslog setting asks. The level is checked by the
 * core before a message is formatted (sg_set_log_fields), so what is below
 * log_level costs nothing. A line is one write(2) to stderr and syslog(3) is
 * thread-safe, so every worker thread logs without a lock of ours.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "slotgate.h"

static int to_syslog, as_json;

/* The worker index of the thread that logs: set by each worker thread at
 * its start, -1 elsewhere (the main thread, the metrics thread). */
static __thread int log_worker = -1;

void log_set_worker(int id) {
    log_worker = id;
}

static int priority(int level) {
    switch (level) {
    case SG_LOG_DEBUG: return LOG_DEBUG;
    case SG_LOG_INFO: return LOG_INFO;
    case SG_LOG_WARN: return LOG_WARNING;
    default: return LOG_ERR;
    }
}

/* A whole line at once: stderr may be a pipe several threads share, and
 * one write(2) of a line keeps lines whole (up to PIPE_BUF at least). */
static void write_line(const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return; /* nowhere to say so */
        s += w;
        n -= (size_t)w;
    }
}

/* The length of the valid UTF-8 sequence at s (at most left bytes), 0 when
 * it is not one: overlong forms, surrogates and code points past U+10FFFF
 * are not. */
static size_t utf8_len(const unsigned char *s, size_t left) {
    size_t n, i;
    unsigned cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) n = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) n = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) n = 4, cp = s[0] & 0x07u;
    else return 0;
    if (left < n) return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* s as a JSON string into line (from *n, never past cap - 2: room for the
 * closing quote and what follows). Quotes, backslashes and control bytes are
 * escaped as JSON says; a byte that is not part of valid UTF-8 (what clients
 * send is binary) becomes the text \xNN, as in text lines, so the line is
 * always valid JSON and the byte still readable. */
static void put_json_string(char *line, size_t *n, size_t cap, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    line[(*n)++] = '"';
    while (left > 0 && *n + 12 < cap) {
        size_t k = utf8_len(p, left);
        if (*p == '"' || *p == '\\') {
            line[(*n)++] = '\\';
            line[(*n)++] = (char)*p;
        } else if (*p == '\n') {
            line[(*n)++] = '\\', line[(*n)++] = 'n';
        } else if (*p == '\t') {
            line[(*n)++] = '\\', line[(*n)++] = 't';
        } else if (*p < 0x20 || *p == 0x7f) {
            *n += (size_t)snprintf(line + *n, cap - *n, "\\u%04x", *p);
        } else if (k == 0) {
            *n += (size_t)snprintf(line + *n, cap - *n, "\\\\x%02x", *p);
            k = 1;
        } else {
            memcpy(line + *n, p, k);
            *n += k;
        }
        p += k;
        left -= k;
    }
    if (left > 0) { /* cut: say so inside the string */
        memcpy(line + *n, "...", 3);
        *n += 3;
    }
    line[(*n)++] = '"';
}

static void put_raw(char *line, size_t *n, size_t cap, const char *s) {
    size_t k = strlen(s);
    if (*n + k >= cap) k = cap - *n - 1;
    memcpy(line + *n, s, k);
    *n += k;
}

static void put_field(char *line, size_t *n, size_t cap, const char *key, const char *value) {
    if (value == NULL) return;
    put_raw(line, n, cap, ",\"");
    put_raw(line, n, cap, key);
    put_raw(line, n, cap, "\":");
    put_json_string(line, n, cap, value);
}

/* {"time":"2024-05-01T10:00:00.123Z","level":"warn","worker":0,
 *  "message":"...","node":"10.0.0.1:7000"} */
static void json_line(int level, const char *msg, const sg_log_fields *f) {
    char line[4096], stamp[40];
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    const size_t cap = sizeof line - 2; /* the '}' and the newline */
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    n = (size_t)snprintf(line, cap, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\"", stamp,
                         ts.tv_nsec / 1000000L, sg_log_level_name(level));
    if (log_worker >= 0) n += (size_t)snprintf(line + n, cap - n, ",\"worker\":%d", log_worker);
    /* the fields first: a message cut at the end of the line leaves them whole */
    put_field(line, &n, cap / 2, "node", f->node);
    put_field(line, &n, cap / 2, "client", f->client);
    put_field(line, &n, cap / 2, "user", f->user);
    put_raw(line, &n, cap, ",\"message\":");
    put_json_string(line, &n, cap, msg);
    line[n++] = '}';
    line[n++] = '\n';
    write_line(line, n);
}

/* One line per message: what clients sent (keys, names, script errors
 * quoting them) may hold newlines, which must not forge lines of their own;
 * in text lines control bytes are written \xNN. */
static void log_line(int level, const char *msg, const sg_log_fields *f, void *ud) {
    char line[4096];
    size_t n = 0;
    (void)ud;
    if (as_json && !to_syslog) {
        json_line(level, msg, f);
        return;
    }
    for (; *msg && n < sizeof line - 5; msg++) {
        unsigned char c = (unsigned char)*msg;
        if (c < 0x20 || c == 0x7f) n += (size_t)snprintf(line + n, 5, "\\x%02x", c);
        else line[n++] = (char)c;
    }
    line[n] = '\0';
    const char *cut = *msg ? "..." : "";
    if (to_syslog) syslog(priority(level), "%s: %s%s", sg_log_level_name(level), line, cut);
    else fprintf(stderr, "slotgated: %s: %s%s\n", sg_log_level_name(level), line, cut);
}

void log_setup(int level, int use_syslog, int json) {
    if (use_syslog && !to_syslog) openlog("slotgated", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    if (!use_syslog && to_syslog) closelog();
    to_syslog = use_syslog;
    as_json = json;
    sg_set_log_fields(log_line, level, NULL);
}

void log_fatal(const char *fmt, ...) {
    static const sg_log_fields none = {NULL, NULL, NULL};
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (as_json) json_line(SG_LOG_ERROR, msg, &none);
    else fprintf(stderr, "slotgated: %s\n", msg);
    if (to_syslog) syslog(LOG_ERR, "%s", msg);
}
