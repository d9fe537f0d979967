/*
 * conns.h — the commands that bind a client to a server connection of its
 * own (sg_link): transactions (txn.c) and pub/sub (pubsub.c). server.c calls
 * these hooks; each module keeps its state on the session.
 */
#ifndef SG_CONNS_H
#define SG_CONNS_H

#include <stdint.h>

#include "session.h"

/* The context policies see for the session's commands (its user, name and
 * address), and the session's policy set put in force on the worker's
 * gateway: call it before every sg_gateway_prepare or _forward. */
void session_ctx(const session *s, sg_request_ctx *ctx);

/* MULTI, EXEC, DISCARD, WATCH, UNWATCH, and every command while a MULTI is
 * open (queued). 1 when r was taken: its reply (seq) is filled now or when
 * the server answers. */
int txn_command(session *s, const sg_resp_req *r, uint64_t seq);
/* Drops the transaction and its connections (client gone, RESET). */
void txn_release(session *s);

/* In subscribed mode, what Redis refuses there: 1 when r was answered with
 * the error. */
int pubsub_refuse(session *s, const sg_resp_req *r, uint64_t seq);
/* SUBSCRIBE and the rest of its family, PING while subscribed. 1 when taken. */
int pubsub_command(session *s, const sg_resp_req *r, uint64_t seq);
/* Whether the session has subscriptions (it is then never idle). */
int pubsub_active(const session *s);
/* Ends every subscription and frees the connections (client gone, RESET). */
void pubsub_release(session *s);

#endif
