/*
 * log.c — slotgated's log: one line a message, "slotgated: LEVEL: text" on
 * stderr, or syslog with the level as its priority (debug, info, warning,
 * err) when the syslog setting asks. The level is checked by the core before
 * a message is formatted (sg_set_log), so what is below log_level costs
 * nothing. stderr and syslog(3) are safe to call from every worker thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"
#include "slotgate.h"

static int to_syslog;

static int priority(int level) {
    switch (level) {
    case SG_LOG_DEBUG: return LOG_DEBUG;
    case SG_LOG_INFO: return LOG_INFO;
    case SG_LOG_WARN: return LOG_WARNING;
    default: return LOG_ERR;
    }
}

/* One line per message: what clients sent (keys, names, script errors
 * quoting them) may hold newlines, which must not forge lines of their own;
 * control bytes are written \xNN. */
static void log_line(int level, const char *msg, void *ud) {
    char line[4096];
    size_t n = 0;
    (void)ud;
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

void log_setup(int level, int use_syslog) {
    if (use_syslog && !to_syslog) openlog("slotgated", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    if (!use_syslog && to_syslog) closelog();
    to_syslog = use_syslog;
    sg_set_log(log_line, level, NULL);
}

void log_fatal(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "slotgated: %s\n", msg);
    if (to_syslog) syslog(LOG_ERR, "%s", msg);
}
