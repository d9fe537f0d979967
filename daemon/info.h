/*
 * info.h — INFO as Redis 7.0 gives it (info.c): Redis's sections with the
 * whole process's figures (every worker's summed), the nodes' persistence,
 * stats and keyspace merged over the masters, and slotgated's own sections
 * (upstreams, policy). docs/INFO.md says where each field comes from.
 */
#ifndef SG_INFO_H
#define SG_INFO_H

#include <stdint.h>

#include "session.h"

/* INFO [section ...]: the dispatch table's handler (dispatch.c). Answers
 * into the reply slot seq now, or (counted in s->inflight) once the masters
 * have answered when a section of theirs is asked. */
void info_command(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* A sample of the process's memory for used_memory_peak (server.c: every
 * 100 ms, in one worker). */
void info_sample_memory(void);

#endif
