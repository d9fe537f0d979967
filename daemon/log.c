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

static void log_line(int level, const char *msg, void *ud) {
    (void)ud;
    if (to_syslog) syslog(priority(level), "%s: %s", sg_log_level_name(level), msg);
    else fprintf(stderr, "slotgated: %s: %s\n", sg_log_level_name(level), msg);
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
