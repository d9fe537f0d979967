/*
 * admin.h — the commands slotgated answers for the whole cluster, or refuses
 * by name: INFO (the gateway's figures and the cluster's keyspace), ROLE,
 * CLUSTER KEYSLOT and a view of the cluster with slotgated as its only node,
 * and the table of commands a gateway that shares its connections and hides
 * the nodes cannot carry. Everything else goes to the cluster as it is.
 */
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include <stdint.h>

#include "commands.h"
#include "session.h"

/* Answers or refuses r when it is one of admin's commands: 1 when taken (the
 * reply is in sl, done; or owed, counted in s->inflight, and written to the
 * slot seq when it comes), 0 when the request is someone else's. For an
 * authenticated session only. */
int admin_command(session *s, const sg_command *cmd, const sg_resp_req *r, slot *sl, uint64_t seq);
/* Why slotgated refuses cmd (an entry of the command table), or NULL. */
const char *admin_refusal(const sg_command *cmd);
/* Whether admin_command() takes cmd: answered or refused here. */
int admin_takes(const sg_command *cmd);

#endif
