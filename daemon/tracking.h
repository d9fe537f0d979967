/*
 * tracking.h — CLIENT TRACKING for slotgated's sessions (tracking.c): the
 * session is told when a key it read changes, whoever changed it, on
 * whichever upstream, by the name it read it as, as a node would tell it
 * (RESP3 invalidate pushes, or RESP2 messages on __redis__:invalidate to
 * the REDIRECT target, which any worker may serve). The changes come from
 * the gateway's invalidation connections (sg_gateway_track); each worker
 * keeps which of its sessions read which key. See docs/CACHE.md.
 */
#ifndef SG_TRACKING_H
#define SG_TRACKING_H

#include "session.h"

/* CLIENT TRACKING, TRACKINGINFO, GETREDIR, CACHING: answered into o. */
void tracking_command(session *s, size_t ci, const sg_resp_req *r, sg_resp_out *o);
/* Every request of a session with tracking state, before it runs: a
 * CLIENT CACHING answer applies to the next command only; MULTI and EXEC
 * start and end what a transaction's reads track (tracking_queue). */
void tracking_next(session *s, const sg_command *cmd);
/* Whether any session of the process has tracking on: else no write needs
 * tracking_forward (one load on the request path). */
static inline int tracking_any(const server *srv) {
    return __atomic_load_n(&srv->trk_on, __ATOMIC_RELAXED) != 0;
}
/* A command of s about to be forwarded with ctx (s tracks, or
 * tracking_any): asks the gateway where it goes (ctx->routed), and then its
 * keys, as the node names them, are recorded with the names s used when it
 * reads (default mode); a write's keys are told, before it leaves, to the
 * sessions that read them and the BCAST sessions whose prefixes match, on
 * every worker (the others by their loops), as a node tells them during
 * the write (a NOLOOP writer excepted). */
void tracking_forward(session *s, const sg_command *cmd, const sg_resp_req *r,
                      sg_request_ctx *ctx, owed *hold);
/* hold (when not NULL) is the write's forwarding record: when other workers
 * are posted its keys, hold->gate is set, and the write's reply waits until
 * they told their sessions: the caller puts the reply in its slot without
 * marking it done and calls tracking_gate_pass (held 1), or, when there is
 * no reply to wait for (the session went, the forward failed), with held 0.
 * The gate holds s->inflight until it opens. */
void tracking_gate_pass(struct trk_gate *g, int held);
/* A command of s about to be queued in MULTI: sets hook's routed call,
 * which txn_queue hands the policies, so that a read's keys, as the node
 * names them, are kept; tracking_next remembers them when an EXEC that
 * runs comes (as Redis tracks the reads EXEC runs: default mode; OPTIN
 * when CLIENT CACHING yes came before MULTI, OPTOUT unless CLIENT CACHING
 * no did), and drops them at the next MULTI. */
void tracking_queue(session *s, const sg_command *cmd, const sg_resp_req *r,
                    sg_request_ctx *hook);
/* CLIENT LIST's view of s, as Redis 7.0 gives it: its flags (t: tracking on,
 * R: its REDIRECT target is gone, B: BCAST) appended at *f, and the redir
 * field (the target's id, 0 without one, -1 when tracking is off). */
void tracking_list_flags(const session *s, char **f);
long long tracking_list_redir(const session *s);
/* RESET: tracking is off, its state goes. */
void tracking_reset(session *s);
/* The session ends: its state goes, and REDIRECT finds it no more. */
void tracking_free(session *s);
/* A session starts (server.c): REDIRECT from any worker finds it by id. */
void tracking_session_new(session *s);
/* The process-wide registry of session ids: before the workers start and
 * after they stopped (server.c). */
void tracking_server_init(server *srv);
void tracking_server_free(server *srv);
/* The worker ends (after its gateway): its table goes. */
void tracking_worker_free(worker *w);

#endif
