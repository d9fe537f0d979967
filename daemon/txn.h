/*
 * txn.h — transactions (txn.c): MULTI, EXEC, DISCARD, WATCH, UNWATCH and
 * the commands MULTI queues, on a server connection of the transaction's
 * own (sg_link). The state lives on the session (s->txn).
 */
#ifndef SG_TXN_H
#define SG_TXN_H

#include <stdint.h>

#include "session.h"

/* MULTI, EXEC, DISCARD, WATCH or UNWATCH (cmd): answered into the slot seq,
 * now or when the server answers. */
void txn_command(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq);
/* Whether s is between MULTI and EXEC: its commands are queued. */
int txn_queuing(const session *s);
/* For CLIENT LIST: the commands queued (-1 outside MULTI), their bytes, and
 * whether a WATCHed key was touched (flag d). */
void txn_state(const session *s, long *multi, size_t *multi_mem, int *dirty);
/* A command inside MULTI (cmd NULL: unknown): checked and queued, or
 * refused, which aborts the transaction. how: TXN_OWN_CONN, the command
 * needs a connection of its own (SUBSCRIBE, MONITOR ...), which a
 * transaction on one connection cannot carry; TXN_LOCAL, slotgated answers
 * it itself (CLIENT LIST, KILL ...), and the node must never run it. */
enum { TXN_OWN_CONN = 1, TXN_LOCAL = 2 };
/* A command refused inside MULTI by someone else (dispatch.c's refusals):
 * EXEC aborts, as Redis aborts on an error at queue time. */
void txn_abort(session *s);
/* hook: when not NULL, its routed and routed_ud go into the request context
 * the policies prepare the command with (CLIENT TRACKING learns the keys as
 * the node names them: tracking_queue). */
void txn_queue(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq, int how,
               const sg_request_ctx *hook);
/* Whether an EXEC now would send the transaction (in MULTI, nothing refused
 * at queue time, the WATCH connection not lost). */
int txn_exec_runs(const session *s);
/* RESET: the queue and the WATCHes dropped; the connections still owing
 * replies finish. */
void txn_reset(session *s);
/* The client is gone: the transaction and its connections freed. */
void txn_free(session *s);

#endif
