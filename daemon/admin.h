/*
 * admin.h — the commands slotgated answers for the whole cluster, or refuses
 * by name (admin.c): INFO (the gateway's figures and the cluster's
 * keyspace), ROLE, CLUSTER KEYSLOT and a view of the cluster with slotgated
 * as its only node, and the table of commands a gateway that shares its
 * connections and hides the nodes cannot carry. The handlers are the
 * dispatch table's (dispatch.c), for authenticated sessions; each answers
 * into the reply slot seq, now or (INFO's keyspace: counted in
 * s->inflight) when the masters have answered.
 */
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include <stdint.h>

#include "session.h"

void admin_info(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
void admin_role(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* CLUSTER KEYSLOT, MYID, INFO, SLOTS, SHARDS, NODES. */
void admin_cluster(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* Why slotgated refuses cmd (an entry of the command table), or NULL. By
 * name: for building the dispatch table, not per request. */
const char *admin_refusal(const sg_command *cmd);
/* "ERR slotgate does not support 'CLUSTER ADDSLOTS' (why)" */
void admin_put_refusal(sg_resp_out *o, const sg_command *cmd, const char *why);

#endif
