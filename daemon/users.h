/*
 * users.h — who a client is and which policies its commands go through
 * (users.c): authentication, the users' policy sets per worker, and the
 * request context the policies see.
 */
#ifndef SG_USERS_H
#define SG_USERS_H

#include "session.h"

/* Whether clients must authenticate (requirepass or users set). */
int users_required(const sg_serve_opts *o);
/* AUTH [user] password: authenticates s (1, +OK written to out) or writes
 * the error to out (0). */
int users_auth(session *s, const sg_resp_req *r, sg_resp_out *out);
/* The user s authenticated as, for the policies (NULL: no authentication). */
const char *session_user(const session *s);
/* The policy set for s's commands (NULL: none). */
sg_policy *session_policy(const session *s);
/* The context policies see for the session's commands (its user, name and
 * address), and the session's policy set put in force on the worker's
 * gateway: call it before every sg_gateway_prepare, _denies or _forward. */
void session_ctx(const session *s, sg_request_ctx *ctx);
/* Loads the common set and each user's set of w; 0, or -1 with why in err. */
int policies_load(worker *w, char *err, size_t errlen);
/* SIGHUP: loads every set o names and puts them in place of the worker's (o:
 * the worker's own options, or the reloaded ones it is moving to). 0, or -1
 * when a script fails: the old sets stay, and why is logged. */
int policies_reload(worker *w, const sg_serve_opts *o);
/* After a reload: each session's user found again by name in w->o (one
 * whose user is gone is closed, as Redis closes a deleted user's clients);
 * old: the options the sessions were authenticated under. */
void users_moved(worker *w, const sg_serve_opts *old);
/* The figures of every set of w, those replaced by reloads included. */
void policies_stats(const worker *w, sg_policy_stats *out);
/* Frees every set of w. */
void policies_free(worker *w);

#endif
