/*
 * log.h — where slotgated's messages go (log.c).
 */
#ifndef SG_DAEMON_LOG_H
#define SG_DAEMON_LOG_H

/* Sends the core's messages and the daemon's own (sg_log) at level and above
 * (SG_LOG_DEBUG..SG_LOG_ERROR) to stderr, or to syslog (ident "slotgated",
 * facility daemon, with the process id) when use_syslog. Call before any
 * thread starts; again to change. */
void log_setup(int level, int use_syslog);

/* A start-up error: to stderr always (whoever started slotgated sees it),
 * and to syslog too when it is in use. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
