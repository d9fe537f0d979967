/*
 * log.h — where slotgated's messages go (log.c).
 */
#ifndef SG_DAEMON_LOG_H
#define SG_DAEMON_LOG_H

/* Sends the core's messages and the daemon's own (sg_log, sg_log_at) at
 * level and above (SG_LOG_DEBUG..SG_LOG_ERROR) to stderr, as text or, when
 * json, one JSON object a line (time, level, worker, message, node, client,
 * user); or to syslog (ident "slotgated", facility daemon, with the process
 * id, as text) when use_syslog. Call before any thread starts; again to
 * change. */
void log_setup(int level, int use_syslog, int json);

/* The calling thread is worker id: its lines say so ("worker" in JSON). */
void log_set_worker(int id);

/* A start-up error: to stderr always (whoever started slotgated sees it;
 * a JSON line when log_format is json), and to syslog too when it is in
 * use. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
