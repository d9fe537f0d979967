/*
 * admin.h — the commands slotgated answers for the whole cluster, or refuses
 * by name (admin.c): ROLE, CLUSTER KEYSLOT and a view of the cluster with
 * slotgated as its only node, and the table of commands a gateway that
 * shares its connections and hides the nodes cannot carry. The handlers are
 * the dispatch table's (dispatch.c), for authenticated sessions; each
 * answers into the reply slot seq at once. (INFO is info.c's.)
 */
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include <stdint.h>

#include "session.h"

/* ROLE: "master" while every slot is served, else a replica whose master
 * link is down (admin_health). */
void admin_role(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* Whether the worker of s serves every slot of every upstream, as /health
 * judges it (an upstream not yet discovered is asked to start); *covered:
 * the default upstream's slots served. */
int admin_health(session *s, int *covered);
/* CLUSTER KEYSLOT, MYID, INFO, SLOTS, SHARDS, NODES. */
void admin_cluster(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* The node id slotgated shows as a cluster's only node (40 hex digits, one
 * per process). */
const char *admin_node_id(void);
/* The address the client of s reached slotgated at: 1, or 0 over a Unix
 * socket (ip and port left alone). */
int admin_local_addr(session *s, char *ip, size_t iplen, int *port);
/* Why slotgated refuses cmd (an entry of the command table), or NULL. By
 * name: for building the dispatch table, not per request. */
const char *admin_refusal(const sg_command *cmd);
/* "ERR slotgate does not support 'CLUSTER ADDSLOTS' (why)" */
void admin_put_refusal(sg_resp_out *o, const sg_command *cmd, const char *why);

#endif
