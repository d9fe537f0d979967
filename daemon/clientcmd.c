/*
 * clientcmd.c — the CLIENT family, as a Redis 7.0 node answers it (its
 * replies, its error texts, its arity errors). It owns:
 *  - the line CLIENT INFO and CLIENT LIST give for a session, with every
 *    field of Redis 7.0 and slotgated's values (subscriptions from pubsub.c,
 *    MULTI's queue from txn.c, the last command and its time from
 *    dispatch.c);
 *  - the session's own settings: SETNAME, REPLY ON|OFF|SKIP (dispatch.c
 *    makes a reply slot quiet; session.c drops it), NO-EVICT; TRACKING,
 *    TRACKINGINFO, GETREDIR and CACHING go to tracking.c;
 *  - the process-wide subcommands LIST, KILL and UNBLOCK. A session belongs
 *    to its worker's thread, and no other thread reads it: the asking worker
 *    posts a part of the job to every worker's loop (event_base_once), each
 *    lists, closes (a session_close mark) or unblocks its own sessions, and
 *    the last to finish posts the job back to the asking worker, which fills
 *    the reply slot. The asking session counts the job in its inflight, so a
 *    session that goes meanwhile is freed only once the job is back
 *    (session_owed_done);
 *  - the refusal of PAUSE (it would pause the whole gateway).
 * CLIENT SETINFO is answered as Redis 7.0 does, unknown (README.md).
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "clientcmd.h"
#include "pubsub.h"
#include "tracking.h"
#include "txn.h"
#include "users.h"

/* ---- names ---------------------------------------------------------------------------------- */

int clientcmd_valid_name(const char *name, size_t len) {
    size_t i;
    for (i = 0; i < len; i++)
        if (name[i] < '!' || name[i] > '~') return 0;
    return 1;
}

void clientcmd_set_name(session *s, const char *name, size_t len) {
    sg_free(s->name);
    s->name = len ? sg_strndup(name, len) : NULL;
}

/* ---- one session's line ---------------------------------------------------------------------- */

/* Redis's client types (getClientTypeByName); slotgated's clients are never
 * masters or replicas. */
enum { T_ANY = -1, T_NORMAL, T_REPLICA, T_PUBSUB, T_MASTER };

static int type_by_name(const char *name, size_t len) {
    static const struct {
        const char *name;
        int type;
    } types[] = {{"normal", T_NORMAL}, {"slave", T_REPLICA}, {"replica", T_REPLICA},
                 {"pubsub", T_PUBSUB}, {"master", T_MASTER}};
    size_t i;
    for (i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i].name) == len && strncasecmp(types[i].name, name, len) == 0)
            return types[i].type;
    return -2;
}

static int type_of(const session *t) { return pubsub_active(t) ? T_PUBSUB : T_NORMAL; }

/* The line Redis 7.0's CLIENT LIST gives, for t (read in t's own thread). */
static void put_line(sg_buf *b, const session *t) {
    char flags[16], *f = flags;
    long sub, psub, ssub, multi;
    size_t multi_mem, omem = t->out.buf.len - t->outoff;
    int dirty;
    const char *user = session_user(t);
    pubsub_counts(t, &sub, &psub, &ssub);
    txn_state(t, &multi, &multi_mem, &dirty);
    /* in Redis's order (getClientInfoString) */
    if (pubsub_active(t)) *f++ = 'P';
    if (multi >= 0) *f++ = 'x';
    if (t->blocked) *f++ = 'b';
    tracking_list_flags(t, &f);
    if (dirty) *f++ = 'd';
    if (t->closing) *f++ = 'c';
    if (t->close_asap) *f++ = 'A';
    if (t->is_unix) *f++ = 'U';
    if (t->no_evict) *f++ = 'e';
    if (f == flags) *f++ = 'N';
    *f = '\0';
    sg_buf_printf(b,
                  "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=0 "
                  "sub=%ld psub=%ld ssub=%ld multi=%ld qbuf=%zu qbuf-free=0 argv-mem=0 "
                  "multi-mem=%zu rbs=%zu rbp=0 obl=0 oll=0 omem=%zu tot-mem=%zu events=%s "
                  "cmd=%s user=%s redir=%lld resp=%d\n",
                  (unsigned long long)t->id, t->addr, t->laddr, (int)t->fd,
                  t->name ? t->name : "", (long long)(time(NULL) - t->created),
                  (long long)((session_now_us() - t->last_us) / 1000000u), flags, sub, psub,
                  ssub, multi,
                  sg_resp_buffered(t->rp), multi_mem, sg_resp_memory(t->rp), omem,
                  sg_resp_memory(t->rp) + t->out.buf.cap + multi_mem +
                      t->cap * sizeof(reply_slot),
                  t->wev && event_pending(t->wev, EV_WRITE, NULL) ? "rw" : "r",
                  t->lastcmd ? t->lastcmd->name : "NULL", user ? user : "default",
                  tracking_list_redir(t), t->out.proto == SG_RESP_PROTO_3 ? 3 : 2);
}

/* ---- jobs over every worker's sessions ------------------------------------------------------- */

enum { JOB_LIST, JOB_KILL, JOB_UNBLOCK };

struct job;

/* What one worker found, written by that worker's thread only. */
typedef struct job_part {
    struct job *j;
    worker *w;
    sg_buf text;  /* LIST: its sessions' lines */
    long long n;  /* the sessions it listed, closed or unblocked */
} job_part;

typedef struct job {
    int kind;      /* JOB_* */
    int old_form;  /* CLIENT KILL addr:port */
    int error;     /* UNBLOCK ... ERROR */
    /* the filter: a session matches every one given */
    uint64_t *ids; /* NULL: any id */
    int nids;
    int type;      /* T_*, T_ANY */
    char *addr, *laddr, *user; /* NULL: any */
    int skipme;    /* not the asking session */
    /* the asker: its slot, answered in its worker's thread */
    struct event_base *home; /* its worker's loop */
    session *s;
    uint64_t asker_id;
    uint64_t seq;
    int self_kill; /* the asker is among those killed (its worker's part sets it) */
    int left;      /* atomic: workers whose part has not run yet */
    int nparts;
    job_part parts[];
} job;

static void job_free(job *j) {
    int i;
    for (i = 0; i < j->nparts; i++) sg_buf_free(&j->parts[i].text);
    sg_free(j->ids);
    sg_free(j->addr);
    sg_free(j->laddr);
    sg_free(j->user);
    sg_free(j);
}

static int matches(const job *j, const session *t) {
    int i;
    const char *user;
    if (!session_open(t)) return 0;
    if (j->skipme && t->id == j->asker_id) return 0;
    if (j->nids > 0) {
        for (i = 0; i < j->nids && j->ids[i] != t->id; i++) {
        }
        if (i == j->nids) return 0;
    }
    if (j->type != T_ANY && j->type != type_of(t)) return 0;
    if (j->addr && strcmp(j->addr, t->addr) != 0) return 0;
    if (j->laddr && strcmp(j->laddr, t->laddr) != 0) return 0;
    user = session_user(t);
    if (j->user && strcmp(j->user, user ? user : "default") != 0) return 0;
    return 1;
}

/* CLIENT UNBLOCK of t, blocked: its oldest blocking command is ended on its
 * node, as the node's CLIENT UNBLOCK ends a client's there (sg_gateway_unblock):
 * the node's answer (the timeout's null, or the UNBLOCKED error, or a value
 * it popped just before) reaches t the usual way, so nothing popped is lost.
 * Where the node could not be asked, t is answered here as Redis answers it,
 * and the node's reply, if any comes, is dropped (dispatch.c: the record's
 * session is NULL). */
static void unblock(session *t, int error) {
    owed *o = t->blocked;
    reply_slot *rs;
    if (sg_gateway_unblock(t->w->gw, o, error) == SG_OK) return;
    t->blocked = o->next_blocked;
    o->s = NULL;
    session_blocking(t, 0);
    session_owed_done(t); /* t is open: 1 */
    rs = reply_slot_at(t, o->seq);
    if (error) sg_resp_put_error(&rs->out, "UNBLOCKED client unblocked via CLIENT UNBLOCK");
    else sg_resp_put_null_array(&rs->out); /* the timeout's reply */
    reply_slot_done(rs);
    session_flush(t);
}

static void on_job_done(evutil_socket_t fd, short what, void *arg);

/* One worker's part, in its thread. */
static void on_job_part(evutil_socket_t fd, short what, void *arg) {
    job_part *p = arg;
    job *j = p->j;
    session *t, *next;
    (void)fd;
    (void)what;
    for (t = p->w->sessions; t; t = next) {
        next = t->next;
        if (!matches(j, t)) continue;
        if (j->kind == JOB_LIST) {
            put_line(&p->text, t);
        } else if (j->kind == JOB_KILL) {
            if (t->id == j->asker_id) j->self_kill = 1; /* closed after its reply */
            else session_close(t);
        } else {
            if (t->blocked == NULL) continue;
            unblock(t, j->error);
        }
        p->n++;
    }
    if (__atomic_sub_fetch(&j->left, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (event_base_once(j->home, -1, EV_TIMEOUT, on_job_done, j, NULL) != 0)
        sg_log(SG_LOG_ERROR, "CLIENT %s: cannot hand the answer back to the asking worker",
               j->kind == JOB_LIST ? "LIST" : j->kind == JOB_KILL ? "KILL" : "UNBLOCK");
}

/* The lines sorted by id, as Redis lists its clients (oldest first). */
typedef struct line_ref {
    unsigned long long id;
    const char *p;
    size_t len;
} line_ref;

static int by_id(const void *a, const void *b) {
    const line_ref *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void put_list(sg_resp_out *o, job *j) {
    size_t n = 0, k = 0, total = 0, i;
    line_ref *refs;
    sg_buf all = {0};
    int pi;
    for (pi = 0; pi < j->nparts; pi++) {
        if (j->parts[pi].text.oom) {
            sg_resp_put_error(o, "ERR slotgate: out of memory");
            return;
        }
        n += (size_t)j->parts[pi].n;
    }
    if ((refs = sg_calloc(n ? n : 1, sizeof *refs)) == NULL) {
        sg_resp_put_error(o, "ERR slotgate: out of memory");
        return;
    }
    for (pi = 0; pi < j->nparts; pi++) {
        const sg_buf *t = &j->parts[pi].text;
        size_t at = 0;
        while (at < t->len && k < n) {
            const char *eol = memchr(t->data + at, '\n', t->len - at);
            size_t len = eol ? (size_t)(eol - (t->data + at)) + 1 : t->len - at;
            refs[k].id = strtoull(t->data + at + 3, NULL, 10); /* "id=" */
            refs[k].p = t->data + at;
            refs[k].len = len;
            total += len;
            k++;
            at += len;
        }
    }
    qsort(refs, k, sizeof *refs, by_id);
    for (i = 0; i < k; i++) sg_buf_append(&all, refs[i].p, refs[i].len);
    if (all.oom) sg_resp_put_error(o, "ERR slotgate: out of memory");
    else sg_resp_put_verbatim(o, total ? all.data : "", total);
    sg_buf_free(&all);
    sg_free(refs);
}

/* Every worker has run its part: the asker's reply, in its thread. */
static void on_job_done(evutil_socket_t fd, short what, void *arg) {
    job *j = arg;
    session *s = j->s;
    long long n = 0;
    int i;
    (void)fd;
    (void)what;
    for (i = 0; i < j->nparts; i++) n += j->parts[i].n;
    if (session_owed_done(s)) {
        reply_slot *rs = reply_slot_at(s, j->seq);
        if (j->kind == JOB_LIST) {
            put_list(&rs->out, j);
        } else if (j->kind == JOB_UNBLOCK) {
            sg_resp_put_int(&rs->out, n > 0);
        } else if (j->old_form) {
            if (n == 0) {
                sg_resp_put_error(&rs->out, "ERR No such client");
            } else {
                sg_resp_put_status(&rs->out, "OK");
            }
        } else {
            sg_resp_put_int(&rs->out, n);
        }
        reply_slot_done(rs);
        if (j->self_kill) s->closing = 1; /* as Redis: after the reply */
        session_flush(s);
    }
    job_free(j);
}

static job *job_new(session *s, int kind) {
    int nw = s->w->srv->nw;
    job *j = sg_calloc(1, sizeof *j + (size_t)nw * sizeof(job_part));
    if (j == NULL) return NULL;
    j->kind = kind;
    j->type = T_ANY;
    j->s = s;
    j->home = s->w->base;
    j->asker_id = s->id;
    j->nparts = nw;
    return j;
}

/* Posts j's parts to every worker; the slot seq is answered when the last
 * is done. */
static void job_start(job *j, uint64_t seq) {
    server *srv = j->s->w->srv;
    int i, failed = 0;
    j->seq = seq;
    j->s->inflight++;
    j->left = j->nparts;
    for (i = 0; i < j->nparts; i++) {
        j->parts[i].j = j;
        j->parts[i].w = &srv->w[i];
    }
    /* nothing of j is written by this thread from here on, but through the
     * parts that fail to be posted (counted as done, with nothing found) */
    for (i = 0; i < j->nparts; i++)
        if (event_base_once(srv->w[i].base, -1, EV_TIMEOUT, on_job_part, &j->parts[i], NULL) != 0)
            failed++;
    if (failed > 0) {
        sg_log(SG_LOG_ERROR, "CLIENT: %d worker(s) could not be asked", failed);
        if (__atomic_sub_fetch(&j->left, failed, __ATOMIC_ACQ_REL) == 0)
            on_job_done(-1, 0, j);
    }
}

/* ---- the subcommands ------------------------------------------------------------------------- */

static void put_error(session *s, sg_resp_out *o, const char *msg) {
    (void)s; /* counted by its reply slot (session.c) */
    sg_resp_put_error(o, msg);
}

/* An argument as a C string (NUL-terminated copy), NULL when out of memory. */
static char *arg_dup(const sg_resp_req *r, int i) { return sg_strndup(r->argv[i], r->argvlen[i]); }

/* A whole integer argument in [min, max]: 1 and *v, else 0. */
static int arg_ll(const sg_resp_req *r, int i, long long min, long long max, long long *v) {
    char buf[32], *end;
    long long x;
    if (r->argvlen[i] == 0 || r->argvlen[i] >= sizeof buf) return 0;
    memcpy(buf, r->argv[i], r->argvlen[i]);
    buf[r->argvlen[i]] = '\0';
    if (isspace((unsigned char)buf[0])) return 0;
    errno = 0;
    x = strtoll(buf, &end, 10);
    if (errno || *end || x < min || x > max) return 0;
    *v = x;
    return 1;
}

/* Redis's "Unknown client type 'x'" (the argument up to a NUL). */
static void put_bad_type(session *s, sg_resp_out *o, const sg_resp_req *r, int i) {
    char msg[200];
    snprintf(msg, sizeof msg, "ERR Unknown client type '%.*s'", (int)strnlen(r->argv[i],
             r->argvlen[i] > 128 ? 128 : r->argvlen[i]), r->argv[i]);
    put_error(s, o, msg);
}

/* Whether name is a user of slotgated's ("default" always is). */
static int user_exists(const session *s, const char *name) {
    int i;
    if (strcmp(name, "default") == 0) return 1;
    for (i = 0; i < s->w->o->nusers; i++)
        if (strcmp(s->w->o->users[i].name, name) == 0) return 1;
    return 0;
}

/* CLIENT LIST [TYPE type | ID id ...]: the job, or NULL with the error in o. */
static job *parse_list(session *s, const sg_resp_req *r, sg_resp_out *o) {
    job *j;
    int i, type = T_ANY;
    if (r->argc == 4 && sg_resp_arg_is(r, 2, "TYPE")) {
        if ((type = type_by_name(r->argv[3], r->argvlen[3])) == -2) {
            put_bad_type(s, o, r, 3);
            return NULL;
        }
    } else if (r->argc > 3 && sg_resp_arg_is(r, 2, "ID")) {
        for (i = 3; i < r->argc; i++) {
            long long id;
            if (!arg_ll(r, i, -0x7fffffffffffffffLL - 1, 0x7fffffffffffffffLL, &id)) {
                put_error(s, o, "ERR Invalid client ID");
                return NULL;
            }
        }
    } else if (r->argc != 2) {
        put_error(s, o, "ERR syntax error");
        return NULL;
    }
    if ((j = job_new(s, JOB_LIST)) == NULL) goto oom;
    j->type = type;
    if (r->argc > 3 && type == T_ANY) {
        if ((j->ids = sg_calloc((size_t)(r->argc - 3), sizeof *j->ids)) == NULL) goto oom;
        for (i = 3; i < r->argc; i++) {
            long long id = 0;
            arg_ll(r, i, -0x7fffffffffffffffLL - 1, 0x7fffffffffffffffLL, &id);
            j->ids[j->nids++] = (uint64_t)id;
        }
    }
    return j;
oom:
    if (j) job_free(j);
    put_error(s, o, "ERR slotgate: out of memory");
    return NULL;
}

/* CLIENT KILL addr:port | CLIENT KILL <filter> <value> ...: the job, or
 * NULL with the error in o (Redis 7.0's clientKillCommand). */
static job *parse_kill(session *s, const sg_resp_req *r, sg_resp_out *o) {
    job *j = job_new(s, JOB_KILL);
    int i;
    if (j == NULL) goto oom;
    if (r->argc == 3) { /* the old form: one address, self included */
        j->old_form = 1;
        if ((j->addr = arg_dup(r, 2)) == NULL) goto oom;
        return j;
    }
    j->skipme = 1;
    for (i = 2; i < r->argc; i += 2) {
        int more = r->argc > i + 1;
        if (more && sg_resp_arg_is(r, i, "ID")) {
            long long id;
            if (!arg_ll(r, i + 1, 1, 0x7fffffffffffffffLL, &id)) {
                put_error(s, o, "ERR client-id should be greater than 0");
                goto fail;
            }
            sg_free(j->ids);
            if ((j->ids = sg_malloc(sizeof *j->ids)) == NULL) goto oom;
            j->ids[0] = (uint64_t)id;
            j->nids = 1;
        } else if (more && sg_resp_arg_is(r, i, "TYPE")) {
            if ((j->type = type_by_name(r->argv[i + 1], r->argvlen[i + 1])) == -2) {
                put_bad_type(s, o, r, i + 1);
                goto fail;
            }
        } else if (more && sg_resp_arg_is(r, i, "ADDR")) {
            sg_free(j->addr);
            if ((j->addr = arg_dup(r, i + 1)) == NULL) goto oom;
        } else if (more && sg_resp_arg_is(r, i, "LADDR")) {
            sg_free(j->laddr);
            if ((j->laddr = arg_dup(r, i + 1)) == NULL) goto oom;
        } else if (more && sg_resp_arg_is(r, i, "USER")) {
            sg_free(j->user);
            if ((j->user = arg_dup(r, i + 1)) == NULL) goto oom;
            if (!user_exists(s, j->user)) {
                char msg[200];
                snprintf(msg, sizeof msg, "ERR No such user '%.128s'", j->user);
                put_error(s, o, msg);
                goto fail;
            }
        } else if (more && sg_resp_arg_is(r, i, "SKIPME")) {
            if (sg_resp_arg_is(r, i + 1, "YES")) j->skipme = 1;
            else if (sg_resp_arg_is(r, i + 1, "NO")) j->skipme = 0;
            else {
                put_error(s, o, "ERR syntax error");
                goto fail;
            }
        } else {
            put_error(s, o, "ERR syntax error");
            goto fail;
        }
    }
    return j;
oom:
    put_error(s, o, "ERR slotgate: out of memory");
fail:
    if (j) job_free(j);
    return NULL;
}

/* CLIENT UNBLOCK id [TIMEOUT|ERROR]: the job, or NULL with the reply in o. */
static job *parse_unblock(session *s, const sg_resp_req *r, sg_resp_out *o) {
    long long id;
    int error = 0;
    job *j;
    if (r->argc > 4) { /* Redis's words, the subcommand as the client wrote it */
        char msg[300];
        snprintf(msg, sizeof msg,
                 "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try CLIENT "
                 "HELP.",
                 (int)strnlen(r->argv[1], r->argvlen[1] > 128 ? 128 : r->argvlen[1]), r->argv[1]);
        put_error(s, o, msg);
        return NULL;
    }
    if (!arg_ll(r, 2, -0x7fffffffffffffffLL - 1, 0x7fffffffffffffffLL, &id)) {
        put_error(s, o, "ERR value is not an integer or out of range");
        return NULL;
    }
    if (r->argc == 4) {
        if (sg_resp_arg_is(r, 3, "ERROR")) error = 1;
        else if (!sg_resp_arg_is(r, 3, "TIMEOUT")) {
            put_error(s, o, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
            return NULL;
        }
    }
    if (id <= 0) { /* no session has it */
        sg_resp_put_int(o, 0);
        return NULL;
    }
    if ((j = job_new(s, JOB_UNBLOCK)) == NULL || (j->ids = sg_malloc(sizeof *j->ids)) == NULL) {
        if (j) job_free(j);
        put_error(s, o, "ERR slotgate: out of memory");
        return NULL;
    }
    j->ids[0] = (uint64_t)id;
    j->nids = 1;
    j->error = error;
    return j;
}

/* Redis 7.0's CLIENT HELP, as slotgated answers it. */
static const char *const help[] = {
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <id> [<id> ...]",
    "      Return clients of the specified ids.",
    "UNPAUSE",
    "    Nothing to do: slotgate never pauses its clients (CLIENT PAUSE is refused).",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction (slotgate evicts no client).",
    "HELP",
    "    Prints this help.",
};

/* The subcommands about s alone: answered into o now. */
static void own(session *s, const sg_command *cmd, size_t ci, const sg_resp_req *r,
                reply_slot *rs) {
    sg_resp_out *o = &rs->out;
    size_t i;
    switch (ci) {
    case SG_CI_CLIENT_SETNAME:
        if (!clientcmd_valid_name(r->argv[2], r->argvlen[2])) {
            put_error(s, o, CLIENTCMD_BAD_NAME);
            return;
        }
        clientcmd_set_name(s, r->argv[2], r->argvlen[2]);
        sg_resp_put_status(o, "OK");
        return;
    case SG_CI_CLIENT_GETNAME:
        if (s->name) sg_resp_put_bulk(o, s->name, strlen(s->name));
        else sg_resp_put_null(o);
        return;
    case SG_CI_CLIENT_ID:
        sg_resp_put_int(o, (long long)s->id);
        return;
    case SG_CI_CLIENT_INFO: {
        /* the name has no length bound: no fixed buffer */
        sg_buf line = {0};
        put_line(&line, s);
        if (line.oom) put_error(s, o, "ERR slotgate: out of memory");
        else sg_resp_put_verbatim(o, line.data, line.len);
        sg_buf_free(&line);
        return;
    }
    case SG_CI_CLIENT_REPLY:
        /* OFF and SKIP answer nothing, as in Redis; ON's OK is written even
         * when this command's reply was to be skipped */
        if (sg_resp_arg_is(r, 2, "ON")) {
            s->reply_off = s->reply_skip = 0;
            rs->quiet = 0;
            sg_resp_put_status(o, "OK");
        } else if (sg_resp_arg_is(r, 2, "OFF")) {
            s->reply_off = 1;
        } else if (sg_resp_arg_is(r, 2, "SKIP")) {
            if (!s->reply_off) s->reply_skip = 1; /* the next command's */
        } else {
            put_error(s, o, "ERR syntax error");
        }
        return;
    case SG_CI_CLIENT_NO_EVICT:
        if (sg_resp_arg_is(r, 2, "ON")) s->no_evict = 1;
        else if (sg_resp_arg_is(r, 2, "OFF")) s->no_evict = 0;
        else {
            put_error(s, o, "ERR syntax error");
            return;
        }
        sg_resp_put_status(o, "OK");
        return;
    case SG_CI_CLIENT_GETREDIR:
    case SG_CI_CLIENT_TRACKINGINFO:
    case SG_CI_CLIENT_TRACKING:
    case SG_CI_CLIENT_CACHING:
        tracking_command(s, ci, r, o);
        return;
    case SG_CI_CLIENT_PAUSE:
        admin_put_refusal(o, cmd, "it would hold every client of the gateway, not one node's; "
                                  "pause the nodes themselves");
        return;
    case SG_CI_CLIENT_UNPAUSE:
        sg_resp_put_status(o, "OK"); /* nothing is paused */
        return;
    case SG_CI_CLIENT_HELP:
        sg_resp_put_array(o, sizeof help / sizeof help[0]);
        for (i = 0; i < sizeof help / sizeof help[0]; i++) sg_resp_put_status(o, help[i]);
        return;
    default: {
        char msg[200];
        snprintf(msg, sizeof msg, "ERR slotgate cannot answer '%s'", cmd->name);
        put_error(s, o, msg);
        return;
    }
    }
}

void clientcmd(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    size_t ci;
    job *j = NULL;
    char msg[300];
    if (cmd == NULL) { /* CLIENT FOO: Redis's words, the name cut at 128 bytes */
        size_t n = r->argc > 1 ? r->argvlen[1] : 0;
        snprintf(msg, sizeof msg, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.",
                 (int)strnlen(r->argv[1], n > 128 ? 128 : n), r->argv[1]);
        put_error(s, &rs->out, msg);
        reply_slot_done(rs);
        return;
    }
    if (!sg_command_check_arity(cmd, r->argc)) {
        snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", cmd->name);
        put_error(s, &rs->out, msg);
        reply_slot_done(rs);
        return;
    }
    ci = sg_command_index(cmd);
    if (ci == SG_CI_CLIENT_LIST) j = parse_list(s, r, &rs->out);
    else if (ci == SG_CI_CLIENT_KILL) j = parse_kill(s, r, &rs->out);
    else if (ci == SG_CI_CLIENT_UNBLOCK) j = parse_unblock(s, r, &rs->out);
    else own(s, cmd, ci, r, rs);
    if (j) job_start(j, seq); /* answered when every worker has done its part */
    else reply_slot_done(rs);
}
