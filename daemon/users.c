/*
 * users.c — who a client is and which policies its commands go through.
 * Authentication (AUTH [user] password, and HELLO's AUTH option, which calls
 * it): the default user's password is requirepass, the other users come from
 * the users setting; passwords are compared in constant time. Each worker
 * holds its own policy sets (a policy set owns a lua_State, used from one
 * thread): the common one (the policy setting) and, for each user that names
 * a script, a set of the common scripts followed by the user's. They load at
 * start and again on SIGHUP, all of them or none. And the context the
 * policies see for a session's commands (session_ctx).
 */
#include <stdio.h>
#include <string.h>

#include "users.h"

int users_required(const sg_serve_opts *o) {
    return (o->requirepass != NULL && o->requirepass[0] != '\0') || o->nusers > 0;
}

/* Whether the secret pass equals the given a (alen bytes), in a time that
 * depends on pass's length only: no exit at the first difference. */
static int equal_ct(const char *a, size_t alen, const char *pass) {
    size_t plen = strlen(pass), i;
    volatile unsigned char diff = (unsigned char)(alen != plen);
    for (i = 0; i < plen; i++) diff |= (unsigned char)((i < alen ? a[i] : 0) ^ pass[i]);
    return diff == 0;
}

static const char wrongpass[] = "WRONGPASS invalid username-password pair or user is disabled.";

int users_auth(session *s, const sg_resp_req *r, sg_resp_out *out) {
    const sg_serve_opts *o = s->w->o;
    const char *pass = NULL; /* the password of the user named */
    int user = -1, i, ok;
    if (r->argc < 2 || r->argc > 3) {
        sg_resp_put_error(out, "ERR wrong number of arguments for 'auth' command");
        return 0;
    }
    if (!users_required(o)) {
        sg_resp_put_error(out, "ERR AUTH <password> called without any password configured for "
                               "the default user. Are you sure your configuration is correct?");
        return 0;
    }
    if (r->argc == 2 || sg_resp_arg_is(r, 1, "default")) {
        /* the default user: requirepass, or a user called "default" (the
         * settings refuse both) */
        if (o->requirepass && o->requirepass[0]) pass = o->requirepass;
    }
    if (pass == NULL) {
        const char *name = r->argc == 2 ? "default" : r->argv[1];
        size_t len = r->argc == 2 ? 7 : r->argvlen[1];
        for (i = 0; i < o->nusers; i++)
            if (strlen(o->users[i].name) == len && memcmp(o->users[i].name, name, len) == 0) {
                user = i;
                pass = o->users[i].password;
                break;
            }
    }
    /* an unknown user fails the same way (a password is never empty) */
    ok = equal_ct(r->argv[r->argc - 1], r->argvlen[r->argc - 1], pass ? pass : "") && pass;
    if (!ok) {
        /* an operator wants to see guessing; the name is the client's
         * bytes, cut and escaped by the log */
        char tried[65];
        size_t n = r->argc == 2 ? 7 : r->argvlen[1];
        sg_log_fields at = {.client = s->addr, .user = tried};
        if (n >= sizeof tried) n = sizeof tried - 1;
        memcpy(tried, r->argc == 2 ? "default" : r->argv[1], n);
        tried[n] = '\0';
        sg_log_at(SG_LOG_INFO, &at, "client %s (id %llu): AUTH refused for user %s", s->addr,
                  (unsigned long long)s->id, tried);
        sg_resp_put_error(out, wrongpass);
        return 0;
    }
    s->authed = 1;
    s->user = user;
    sg_resp_set_auth_required(s->rp, 0);
    sg_resp_put_status(out, "OK");
    return 1;
}

const char *session_user(const session *s) {
    const sg_serve_opts *o = s->w->o;
    if (s->user >= 0) return o->users[s->user].name;
    return users_required(o) ? "default" : NULL;
}

sg_policy *session_policy(const session *s) {
    const worker *w = s->w;
    if (s->user >= 0 && w->user_policy && w->user_policy[s->user]) return w->user_policy[s->user];
    return w->policy;
}

void session_ctx(const session *s, sg_request_ctx *ctx) {
    ctx->user = session_user(s);
    ctx->client = s->name;
    ctx->addr = s->addr;
    ctx->proto = s->out.proto == SG_RESP_PROTO_3 ? 3 : 2;
    ctx->routed = NULL; /* tracking.c asks for it, for its sessions */
    ctx->routed_ud = NULL;
    sg_gateway_set_policy(s->w->gw, session_policy(s)); /* the user's own, if any */
}

/* ---- policy sets ---------------------------------------------------------------------- */

typedef struct sets {
    sg_policy *common;
    sg_policy **user; /* o->nusers of them; NULL where the user names no script */
} sets;

static void sets_free(sets *t, int nusers) {
    int i;
    sg_policy_free(t->common);
    if (t->user)
        for (i = 0; i < nusers; i++) sg_policy_free(t->user[i]);
    sg_free(t->user);
    t->common = NULL;
    t->user = NULL;
}

/* Loads every set the settings name into t: 0, or -1 with why in err. */
static int sets_load(const sg_serve_opts *o, sets *t, char *err, size_t errlen) {
    const char **paths = NULL;
    int i, rc = -1;
    memset(t, 0, sizeof *t);
    if (o->npolicies > 0) {
        if ((t->common = sg_policy_new()) == NULL) goto oom;
        if (sg_policy_load(t->common, o->policies, o->npolicies) != SG_OK) {
            snprintf(err, errlen, "%s", sg_errmsg(t->common));
            goto done;
        }
    }
    if (o->nusers == 0) return 0;
    if ((t->user = sg_calloc((size_t)o->nusers, sizeof *t->user)) == NULL ||
        (paths = sg_calloc((size_t)o->npolicies + 1, sizeof *paths)) == NULL)
        goto oom;
    for (i = 0; i < o->npolicies; i++) paths[i] = o->policies[i];
    for (i = 0; i < o->nusers; i++) {
        if (o->users[i].policy == NULL) continue;
        paths[o->npolicies] = o->users[i].policy;
        if ((t->user[i] = sg_policy_new()) == NULL) goto oom;
        if (sg_policy_load(t->user[i], paths, o->npolicies + 1) != SG_OK) {
            snprintf(err, errlen, "user \"%s\": %s", o->users[i].name, sg_errmsg(t->user[i]));
            goto done;
        }
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory loading the policies");
done:
    sg_free(paths);
    if (rc != 0) sets_free(t, o->nusers);
    return rc;
}

int policies_load(worker *w, char *err, size_t errlen) {
    sets t;
    if (sets_load(w->o, &t, err, errlen) != 0) return -1;
    w->policy = t.common;
    w->user_policy = t.user;
    sg_gateway_set_policy(w->gw, w->policy);
    return 0;
}

static void add_stats(sg_policy_stats *sum, const sg_policy *p) {
    sg_policy_stats st;
    if (p == NULL) return;
    sg_policy_stats_get(p, &st);
    sum->commands += st.commands;
    sum->denied += st.denied;
    sum->rewritten += st.rewritten;
    sum->ttls += st.ttls;
    sum->routed += st.routed;
    sum->hook_calls += st.hook_calls;
    sum->hook_errors += st.hook_errors;
    sum->hook_timeouts += st.hook_timeouts;
    sum->dry_run_events += st.dry_run_events;
    sum->durable += st.durable;
}

void policies_stats(const worker *w, sg_policy_stats *out) {
    int i;
    *out = w->policy_retired;
    add_stats(out, w->policy);
    if (w->user_policy)
        for (i = 0; i < w->o->nusers; i++) add_stats(out, w->user_policy[i]);
}

int policies_reload(worker *w, const sg_serve_opts *o) {
    char err[SG_ERRMSG_MAX + 80];
    sets old = {w->policy, w->user_policy}, t;
    if (sets_load(o, &t, err, sizeof err) != 0) {
        sg_log(SG_LOG_ERROR, "worker %d: reload failed, the previous policies stay: %s", w->id,
               err);
        return -1;
    }
    /* the sets are used only while a command is handed to the gateway: none
     * is in use now, and the old ones' figures carry over */
    policies_stats(w, &w->policy_retired);
    w->policy = t.common;
    w->user_policy = t.user;
    sg_gateway_set_policy(w->gw, w->policy);
    sets_free(&old, w->o->nusers);
    sg_log(SG_LOG_INFO, "worker %d: %d policy script(s) loaded%s", w->id,
           w->policy ? sg_policy_count(w->policy) : 0, o->nusers ? ", and the users' own" : "");
    return 0;
}

void users_moved(worker *w, const sg_serve_opts *old) {
    const sg_serve_opts *o = w->o;
    session *s, *next;
    for (s = w->sessions; s; s = next) {
        next = s->next;
        if (s->user >= 0) {
            const char *name = old->users[s->user].name;
            int i;
            for (i = 0; i < o->nusers && strcmp(o->users[i].name, name) != 0; i++) {
            }
            if (i == o->nusers) {
                sg_log_fields at = {.client = s->addr, .user = name};
                sg_log_at(SG_LOG_INFO, &at,
                          "client %s (id %llu) closed: its user %s is no longer in the settings",
                          s->addr, (unsigned long long)s->id, name);
                session_close(s);
                continue;
            }
            s->user = i;
        } else if (!s->authed && !users_required(o)) {
            /* no password any more: waiting for AUTH is over */
            s->authed = 1;
            sg_resp_set_auth_required(s->rp, 0);
        }
    }
}

void policies_free(worker *w) {
    sets t = {w->policy, w->user_policy};
    sets_free(&t, w->o->nusers);
    w->policy = NULL;
    w->user_policy = NULL;
}
