/*
 * dispatch.h — what slotgated does with each request (dispatch.c): one
 * table, indexed by the command table's index, gives each command its
 * handler and flags; a command without a handler goes to the cluster
 * through the gateway.
 */
#ifndef SG_DISPATCH_H
#define SG_DISPATCH_H

#include "session.h"

/* Builds the table (the refusals are read by name from admin.c): once, at
 * start, before any worker runs. */
void dispatch_init(void);
/* Handles one request of s: its reply slot is taken now, in request order,
 * and filled now or when the cluster answers. */
void dispatch(session *s, const sg_resp_req *r);
/* The forwarding records w keeps for reuse, freed (server.c, worker_free). */
void dispatch_free_pool(worker *w);

#endif
