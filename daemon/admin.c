/*
 * admin.c — the commands slotgated answers for the whole cluster, or refuses
 * by name. It owns:
 *  - the refusal table: commands that would act on one node picked at random,
 *    change a shared connection's state, or administer the nodes behind the
 *    gateway's back, each with the reason the client is told;
 *  - INFO: the gateway's own sections (server, clients, stats, one per
 *    upstream with its nodes' errors, redirects and pools, policy) and the
 *    keyspace summed over the default upstream's masters; INFO SECTION ...
 *    gives only those sections;
 *  - ROLE, and CLUSTER as a cluster whose only node is slotgated itself
 *    (KEYSLOT, MYID, INFO, SLOTS, SHARDS, NODES), so cluster-aware clients
 *    send everything here; COUNTKEYSINSLOT and GETKEYSINSLOT go to the
 *    master of the slot they name (the router's SG_ROUTE_SLOT).
 * The fan-outs that need no more than a merge (KEYS, DBSIZE, FLUSHALL, SCRIPT,
 * FUNCTION, CONFIG, SCAN, RANDOMKEY, SLOWLOG, LATENCY) are the engine's: they
 * pass through here untouched, and through the policies like any command.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "users.h"

/* ---- refused commands ----------------------------------------------------------------------
 * By full name as the command table has it; "x|*" stands for every
 * subcommand of x (and x itself), so what a newer Redis adds there is refused
 * too rather than sent to a random node. Exact names win over "x|*". Read
 * once, into the dispatch table (dispatch.c), and only for the entries it
 * has no handler for: the commands the daemon answers (CLIENT SETNAME,
 * CLUSTER SLOTS ...) are never refused. */
static const struct refusal {
    const char *name;
    const char *why;
} refusals[] = {
    {"acl|*", "users and passwords are slotgate's own settings; the nodes' ACLs stay on the "
              "nodes"},
    {"bgrewriteaof", "persistence is each node's own: run it on the nodes"},
    {"bgsave", "persistence is each node's own: run it on the nodes"},
    {"save", "persistence is each node's own, and SAVE blocks a node: run it on the nodes"},
    {"lastsave", "each node saves on its own: ask the nodes"},
    {"client|*", "slotgated answers CLIENT SETNAME, GETNAME, ID and INFO; the rest concern one "
                 "connection to one node, and connections to the nodes are shared"},
    {"cluster|*", "slotgated routes by slot itself and shows itself as the only node: "
                  "administer the cluster on its nodes"},
    {"debug", "it would reach one node picked at random"},
    {"failover", "failovers are run on the nodes"},
    {"migrate", "moving keys between servers is done on the nodes"},
    {"module|load", "modules are loaded on each node"},
    {"module|loadex", "modules are loaded on each node"},
    {"module|unload", "modules are unloaded on each node"},
    {"replconf", "replication is between the nodes"},
    {"replicaof", "replication is set on the nodes"},
    {"slaveof", "replication is set on the nodes"},
    {"script|debug", "the Lua debugger needs a connection of its own"},
    {"shutdown", "stop slotgated with SIGTERM, and the nodes on the nodes"},
    {"wait", "it counts the replicas that acknowledged this connection's writes, and a "
             "client's writes share connections with other clients'"},
    {NULL, NULL}};

/* CLUSTER subcommands about one slot's keys: forwarded to its master. */
static int slot_command(const sg_command *cmd) { return sg_command_route(cmd) == SG_ROUTE_SLOT; }

const char *admin_refusal(const sg_command *cmd) {
    const sg_command *family = cmd->parent ? cmd->parent : cmd;
    char wild[64];
    int i;
    if (slot_command(cmd)) return NULL;
    snprintf(wild, sizeof wild, "%s|*", family->name);
    for (i = 0; refusals[i].name; i++)
        if (strcmp(refusals[i].name, cmd->name) == 0) return refusals[i].why;
    for (i = 0; refusals[i].name; i++)
        if (strcmp(refusals[i].name, wild) == 0) return refusals[i].why;
    return NULL;
}

void admin_put_refusal(sg_resp_out *o, const sg_command *cmd, const char *why) {
    char name[80], msg[400];
    size_t i;
    for (i = 0; cmd->name[i] && i + 1 < sizeof name; i++)
        name[i] = cmd->name[i] == '|' ? ' ' : (char)toupper((unsigned char)cmd->name[i]);
    name[i] = '\0';
    snprintf(msg, sizeof msg, "ERR slotgate does not support '%s' (%s)", name, why);
    sg_resp_put_error(o, msg);
}

/* ---- INFO ---------------------------------------------------------------------------------- */

#define MAX_DBS 16

/* An INFO whose keyspace is being asked of the masters. */
typedef struct info_job {
    session *s;
    uint64_t seq;
    sg_buf text;    /* the sections before the keyspace */
    int pending;    /* answers still due (plus one while sending) */
    int pinged;     /* the map was asked for once */
    long long keys[MAX_DBS], expires[MAX_DBS];
    double ttl_sum[MAX_DBS]; /* avg_ttl weighted by expires */
    char err[300];  /* the first failure */
} info_job;

/* Which sections INFO's arguments ask for: none means the default set. */
typedef struct info_want {
    int all;
    const sg_resp_req *r;
} info_want;

static int want(const info_want *w, const char *section) {
    int i;
    if (w->all) return 1;
    for (i = 1; i < w->r->argc; i++)
        if (sg_resp_arg_is(w->r, i, section)) return 1;
    return 0;
}

static void upstream_section(sg_buf *t, sg_client *c, const char *name) {
    uint64_t errors = 0, moved = 0, ask = 0, timeouts = 0, waits = 0, pool_timeouts = 0;
    int i, conns = 0, in_use = 0, idle = 0, masters = 0;
    sg_buf_printf(t, "# Upstream %s\r\n", name);
    for (i = 0; i < sg_client_node_count(c); i++) {
        sg_node_stats st;
        if (sg_client_node_stats(c, i, &st) != SG_OK) continue;
        sg_buf_printf(t,
                      "node%d:addr=%s,role=%s,commands=%llu,errors=%llu,moved=%llu,ask=%llu,"
                      "timeouts=%llu,connects=%llu,conns=%d,in_use=%d,idle=%d,pool_waits=%llu,"
                      "pool_timeouts=%llu\r\n",
                      i, st.addr, st.is_master ? "master" : "replica",
                      (unsigned long long)st.commands, (unsigned long long)st.errors,
                      (unsigned long long)st.moved, (unsigned long long)st.ask,
                      (unsigned long long)st.timeouts, (unsigned long long)st.connects, st.conns,
                      st.in_use, st.idle, (unsigned long long)st.pool_waits,
                      (unsigned long long)st.pool_timeouts);
        errors += st.errors;
        moved += st.moved;
        ask += st.ask;
        timeouts += st.timeouts;
        waits += st.pool_waits;
        pool_timeouts += st.pool_timeouts;
        conns += st.conns;
        in_use += st.in_use;
        idle += st.idle;
        masters += st.is_master;
    }
    sg_buf_printf(t,
                  "masters:%d\r\nerrors:%llu\r\nredirects:%llu\r\nmoved:%llu\r\nask:%llu\r\n"
                  "timeouts:%llu\r\npool_conns:%d\r\npool_in_use:%d\r\npool_idle:%d\r\n"
                  "pool_waits:%llu\r\npool_timeouts:%llu\r\nmap_refreshes:%llu\r\n\r\n",
                  masters, (unsigned long long)errors, (unsigned long long)(moved + ask),
                  (unsigned long long)moved, (unsigned long long)ask,
                  (unsigned long long)timeouts, conns, in_use, idle, (unsigned long long)waits,
                  (unsigned long long)pool_timeouts,
                  (unsigned long long)sg_client_refresh_count(c));
}

/* The gateway's own sections, all known at once. */
static void info_text(session *s, const info_want *w, sg_buf *t) {
    worker *wk = s->w;
    int i;
    if (want(w, "server"))
        sg_buf_printf(t,
                      "# Server\r\nslotgate_version:%s\r\nredis_version:%s\r\nprocess_id:%ld\r\n"
                      "worker_threads:%d\r\n\r\n",
                      sg_version(), sg_commands_redis_version(), (long)getpid(), wk->srv->nw);
    if (want(w, "clients"))
        sg_buf_printf(t, "# Clients\r\nconnected_clients:%lld\r\n\r\n",
                      __atomic_load_n(&wk->srv->clients, __ATOMIC_RELAXED));
    if (want(w, "stats"))
        sg_buf_printf(t, "# Stats (this worker)\r\ncommands:%llu\r\nerror_replies:%llu\r\n\r\n",
                      (unsigned long long)wk->commands, (unsigned long long)wk->errors);
    if (want(w, "upstreams") || want(w, "upstream"))
        for (i = 0; i < sg_config_upstream_count(wk->srv->cfg); i++) {
            const char *name = sg_config_upstream_name(wk->srv->cfg, i);
            sg_client *c = sg_gateway_client(wk->gw, name);
            if (c) upstream_section(t, c, name);
        }
    if ((wk->policy || wk->user_policy) && want(w, "policy")) {
        sg_policy_stats ps;
        policies_stats(wk, &ps); /* the shared set's and the users' own */
        sg_buf_printf(t,
                      "# Policy (this worker)\r\npolicy_scripts:%d\r\npolicy_commands:%llu\r\n"
                      "policy_denied:%llu\r\npolicy_rewritten:%llu\r\npolicy_ttls:%llu\r\n"
                      "policy_routed:%llu\r\npolicy_hook_errors:%llu\r\n"
                      "policy_hook_timeouts:%llu\r\n\r\n",
                      wk->policy ? sg_policy_count(wk->policy) : 0, (unsigned long long)ps.commands,
                      (unsigned long long)ps.denied, (unsigned long long)ps.rewritten,
                      (unsigned long long)ps.ttls, (unsigned long long)ps.routed,
                      (unsigned long long)ps.hook_errors, (unsigned long long)ps.hook_timeouts);
    }
}

/* Adds a node's "db0:keys=1,expires=0,avg_ttl=0" lines to the sums. */
static void add_keyspace(info_job *j, const char *text, size_t len) {
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[200];
        int db;
        long long keys, expires, ttl;
        if (n < sizeof line) {
            memcpy(line, p, n);
            line[n] = '\0';
            if (sscanf(line, "db%d:keys=%lld,expires=%lld,avg_ttl=%lld", &db, &keys, &expires,
                       &ttl) == 4 &&
                db >= 0 && db < MAX_DBS) {
                j->keys[db] += keys;
                j->expires[db] += expires;
                j->ttl_sum[db] += (double)ttl * (double)expires;
            }
        }
        p += n + 1;
    }
}

static void info_finish(info_job *j) {
    session *s = j->s;
    int db;
    if (session_owed_done(s)) {
        reply_slot *rs = reply_slot_at(s, j->seq);
        sg_buf_puts(&j->text, "# Keyspace\r\n");
        for (db = 0; db < MAX_DBS; db++) {
            if (j->keys[db] == 0) continue; /* as Redis: only databases with keys */
            sg_buf_printf(&j->text, "db%d:keys=%lld,expires=%lld,avg_ttl=%lld\r\n", db,
                          j->keys[db], j->expires[db],
                          j->expires[db] ? (long long)(j->ttl_sum[db] / (double)j->expires[db])
                                         : 0LL);
        }
        if (j->err[0]) sg_buf_printf(&j->text, "keyspace_error:%s\r\n", j->err);
        if (j->text.oom) sg_resp_put_error(&rs->out, "ERR slotgate: out of memory");
        else sg_resp_put_bulk(&rs->out, j->text.data, j->text.len);
        reply_slot_done(rs);
        session_flush(s);
    }
    sg_buf_free(&j->text);
    sg_free(j);
}

static void keyspace_fail(info_job *j, const char *what) {
    size_t i;
    if (j->err[0]) return;
    snprintf(j->err, sizeof j->err, "%s", what);
    for (i = 0; j->err[i]; i++)
        if (j->err[i] == '\r' || j->err[i] == '\n') j->err[i] = ' ';
}

static void keyspace_send(info_job *j);

static void on_keyspace(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    info_job *j = ud;
    (void)c;
    if (reply && reply->type == SG_REPLY_STRING) add_keyspace(j, reply->str, reply->len);
    else if (reply && reply->type == SG_REPLY_ERROR) keyspace_fail(j, reply->str);
    else if (!reply) keyspace_fail(j, errmsg ? errmsg : sg_strerror(status));
    sg_reply_free(reply);
    if (--j->pending == 0) info_finish(j);
}

/* The map is known now (or will never be): ask the masters again. */
static void on_map(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    info_job *j = ud;
    (void)c;
    if (!reply) keyspace_fail(j, errmsg ? errmsg : sg_strerror(status));
    sg_reply_free(reply);
    j->pending--;
    keyspace_send(j);
}

/* INFO keyspace to every master of the default upstream. */
static void keyspace_send(info_job *j) {
    sg_client *c = sg_gateway_client(j->s->w->gw, "default");
    static const char *const argv[] = {"INFO", "keyspace"};
    int i, masters = 0;
    j->pending++; /* held while sending */
    for (i = 0; c && i < sg_client_node_count(c); i++) {
        sg_node_stats st;
        if (sg_client_node_stats(c, i, &st) != SG_OK || !st.is_master) continue;
        masters++;
        j->pending++;
        if (sg_client_send_node(c, i, 2, argv, NULL, on_keyspace, j) != SG_OK) {
            j->pending--;
            keyspace_fail(j, sg_errmsg(c));
        }
    }
    if (masters == 0 && c && !j->pinged && !j->err[0]) {
        /* no map yet: a command through the router waits for one */
        j->pinged = 1;
        j->pending++;
        if (sg_client_send_argv(c, 1, (const char *const[]){"PING"}, NULL, on_map, j) != SG_OK) {
            j->pending--;
            keyspace_fail(j, sg_errmsg(c));
        }
    } else if (masters == 0 && !j->err[0]) {
        keyspace_fail(j, "no master known");
    }
    if (--j->pending == 0) info_finish(j);
}

void admin_info(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    info_want w = {r->argc == 1, r};
    info_job *j;
    (void)cmd;
    if (want(&w, "all") || want(&w, "everything") || want(&w, "default")) w.all = 1;
    if (!want(&w, "keyspace")) {
        reply_slot *rs = reply_slot_at(s, seq);
        sg_buf t = {0};
        info_text(s, &w, &t);
        if (t.oom) sg_resp_put_error(&rs->out, "ERR slotgate: out of memory");
        else sg_resp_put_bulk(&rs->out, t.data ? t.data : "", t.len);
        sg_buf_free(&t);
        reply_slot_done(rs);
        return;
    }
    if ((j = sg_calloc(1, sizeof *j)) == NULL) {
        session_answer(s, seq, "-ERR slotgate: out of memory\r\n");
        return;
    }
    j->s = s;
    j->seq = seq;
    info_text(s, &w, &j->text);
    s->inflight++;
    keyspace_send(j);
}

/* ---- ROLE and the cluster view --------------------------------------------------------------- */

static char node_id[41];
static pthread_once_t node_id_once = PTHREAD_ONCE_INIT;

/* A node id for this process, as a cluster node has one: 40 hex digits. */
static void make_node_id(void) {
    unsigned char raw[20];
    int fd = open("/dev/urandom", O_RDONLY), i;
    ssize_t got = fd >= 0 ? read(fd, raw, sizeof raw) : -1;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)sizeof raw) {
        unsigned long long x = (unsigned long long)time(NULL) * 6364136223846793005ull ^
                               (unsigned long long)getpid();
        for (i = 0; i < 20; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            raw[i] = (unsigned char)(x >> 56);
        }
    }
    for (i = 0; i < 20; i++) snprintf(node_id + 2 * i, 3, "%02x", raw[i]);
}

/* The address the client reached slotgated at; 0 over a Unix socket. */
static int local_addr(session *s, char *ip, size_t iplen, int *port) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (s->fd < 0 || getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(in->sin_port);
        return 1;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(in6->sin6_port);
        return 1;
    }
    return 0;
}

static void put_str(sg_resp_out *o, const char *s) { sg_resp_put_bulk(o, s, strlen(s)); }

void admin_role(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    (void)cmd;
    (void)r;
    sg_resp_put_array(&rs->out, 3);
    sg_resp_put_bulk(&rs->out, "master", 6);
    sg_resp_put_int(&rs->out, 0);
    sg_resp_put_array(&rs->out, 0);
    reply_slot_done(rs);
}

/* CLUSTER KEYSLOT, MYID, INFO, and the view with slotgated as the only
 * node: SLOTS, SHARDS, NODES. */
static void cluster_reply(session *s, const sg_command *cmd, const sg_resp_req *r,
                          sg_resp_out *o) {
    size_t ci = sg_command_index(cmd);
    char ip[INET6_ADDRSTRLEN] = "", text[600];
    int port = 0, n;
    pthread_once(&node_id_once, make_node_id);
    if (!sg_command_check_arity(cmd, r->argc)) {
        snprintf(text, sizeof text, "ERR wrong number of arguments for '%s' command", cmd->name);
        sg_resp_put_error(o, text);
        return;
    }
    switch (ci) {
    case SG_CI_CLUSTER_KEYSLOT:
        sg_resp_put_int(o, sg_keyslot(r->argv[2], r->argvlen[2]));
        return;
    case SG_CI_CLUSTER_MYID: put_str(o, node_id); return;
    case SG_CI_CLUSTER_INFO:
        n = snprintf(text, sizeof text,
                     "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"
                     "cluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\n"
                     "cluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:1\r\n"
                     "cluster_current_epoch:1\r\ncluster_my_epoch:1\r\n");
        sg_resp_put_bulk(o, text, (size_t)n);
        return;
    }
    if (!local_addr(s, ip, sizeof ip, &port)) {
        admin_put_refusal(o, cmd, "over a Unix socket there is no TCP address to name");
        return;
    }
    switch (ci) {
    case SG_CI_CLUSTER_SLOTS:
        sg_resp_put_array(o, 1);
        sg_resp_put_array(o, 3);
        sg_resp_put_int(o, 0);
        sg_resp_put_int(o, 16383);
        sg_resp_put_array(o, 4);
        put_str(o, ip);
        sg_resp_put_int(o, port);
        put_str(o, node_id);
        sg_resp_put_array(o, 0);
        break;
    case SG_CI_CLUSTER_SHARDS:
        sg_resp_put_array(o, 1);
        sg_resp_put_array(o, 4);
        put_str(o, "slots");
        sg_resp_put_array(o, 2);
        sg_resp_put_int(o, 0);
        sg_resp_put_int(o, 16383);
        put_str(o, "nodes");
        sg_resp_put_array(o, 1);
        sg_resp_put_array(o, 14);
        put_str(o, "id");
        put_str(o, node_id);
        put_str(o, "port");
        sg_resp_put_int(o, port);
        put_str(o, "ip");
        put_str(o, ip);
        put_str(o, "endpoint");
        put_str(o, ip);
        put_str(o, "role");
        put_str(o, "master");
        put_str(o, "replication-offset");
        sg_resp_put_int(o, 0);
        put_str(o, "health");
        put_str(o, "online");
        break;
    case SG_CI_CLUSTER_NODES:
        n = snprintf(text, sizeof text, "%s %s:%d@0 myself,master - 0 0 1 connected 0-16383\n",
                     node_id, ip, port);
        sg_resp_put_bulk(o, text, (size_t)n);
        break;
    default: assert(!"admin_cluster: not a CLUSTER subcommand slotgated answers");
    }
}

void admin_cluster(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    cluster_reply(s, cmd, r, &rs->out);
    reply_slot_done(rs);
}
