/*
 * clientcmd.h — the CLIENT family (clientcmd.c), as a Redis 7.0 node
 * answers it: the session's own subcommands (SETNAME, GETNAME, ID, INFO,
 * REPLY, NO-EVICT, TRACKING OFF ...) and those about every session of the
 * process (LIST, KILL, UNBLOCK), which each worker answers for its own
 * sessions in its own thread.
 */
#ifndef SG_CLIENTCMD_H
#define SG_CLIENTCMD_H

#include <stdint.h>

#include "session.h"

/* A CLIENT request (cmd: its subcommand's entry; NULL for an unknown
 * subcommand): answered into the slot seq now, or, for LIST, KILL and
 * UNBLOCK, once every worker has answered. */
void clientcmd(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);

/* A client name as Redis takes it: printable, no blanks (it goes into
 * CLIENT LIST's lines, policies' {client} and logs). 1 when valid. */
int clientcmd_valid_name(const char *name, size_t len);
/* Names s (an empty name removes it, as in Redis). */
void clientcmd_set_name(session *s, const char *name, size_t len);
#define CLIENTCMD_BAD_NAME "ERR Client names cannot contain spaces, newlines or special characters."

#endif
