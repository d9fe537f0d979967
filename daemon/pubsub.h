/*
 * pubsub.h — subscriptions (pubsub.c): SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and
 * their UNSUBSCRIBEs on server connections of the subscriber's own, and
 * subscribed mode. The state lives on the session (s->psub).
 */
#ifndef SG_PUBSUB_H
#define SG_PUBSUB_H

#include <stdint.h>

#include "session.h"

/* Whether the session has subscriptions: it is in subscribed mode (and
 * never idle). */
int pubsub_active(const session *s);
/* For CLIENT LIST: the channels, patterns and shard channels s holds. */
void pubsub_counts(const session *s, long *nsub, long *npsub, long *nssub);
/* One of the subscribe family (cmd): confirmed into the slot seq when the
 * servers answer. */
void pubsub_command(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* PING in subscribed mode: Redis's ["pong", message] reply. */
void pubsub_ping(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* A command subscribed mode does not allow: Redis's error. */
void pubsub_refuse(session *s, const sg_resp_req *r, uint64_t seq);
/* RESET: every subscription ended; replies owed complete with what came. */
void pubsub_reset(session *s);
/* The client is gone: subscriptions and connections freed. */
void pubsub_free(session *s);

#endif
