/*
 * admin.c — the commands slotgated answers for the whole cluster, or refuses
 * by name. It owns:
 *  - the refusal table: commands that would act on one node picked at random,
 *    change a shared connection's state, or administer the nodes behind the
 *    gateway's back, each with the reason the client is told;
 *  - ROLE, and CLUSTER as a cluster whose only node is slotgated itself
 *    (KEYSLOT, MYID, INFO, SLOTS, SHARDS, NODES), so cluster-aware clients
 *    send everything here; the node id and address it shows (INFO's run_id
 *    and tcp_port too: info.c); COUNTKEYSINSLOT and GETKEYSINSLOT go to the
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

/* ---- ROLE and the cluster view --------------------------------------------------------------- */

static char node_id[41];
static pthread_once_t node_id_once = PTHREAD_ONCE_INIT;

/* A node id for this process, as a cluster node has one: 40 hex digits. */
static void make_node_id(void);

const char *admin_node_id(void) {
    pthread_once(&node_id_once, make_node_id);
    return node_id;
}

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

int admin_local_addr(session *s, char *ip, size_t iplen, int *port) {
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

static void ignore_reply(sg_client *c, sg_reply *r, int status, const char *errmsg, void *ud) {
    (void)c;
    (void)status;
    (void)errmsg;
    (void)ud;
    sg_reply_free(r);
}

/* What this worker can serve, as /health judges it (metrics.c): ok only
 * when every upstream's client serves all the slots; covered counts the
 * default upstream's. A client that has not found its map yet is sent a
 * PING, which starts the discovery (nothing else would before a command
 * came), and counts as failed meanwhile. CLUSTER INFO, ROLE and INFO's
 * replication section all answer from it, so they agree. */
int admin_health(session *s, int *covered) {
    const sg_config *cfg = s->w->srv->cfg;
    int u, ok = 1;
    *covered = 0;
    for (u = 0; u < sg_config_upstream_count(cfg); u++) {
        const char *name = sg_config_upstream_name(cfg, u);
        sg_client *c = sg_gateway_client(s->w->gw, name);
        int n = c ? sg_client_coverage(c, NULL) : 0;
        if (n != SG_SLOTS) {
            static const char *const ping[] = {"PING"};
            ok = 0;
            if (c) sg_client_send_argv(c, 1, ping, NULL, ignore_reply, NULL);
        }
        if (strcmp(name, "default") == 0) *covered = n;
    }
    return ok;
}

/* ROLE: the master of a one-node cluster while the gateway serves every
 * slot; otherwise a replica whose link to its master is down, as a Redis
 * replica that lost its master answers (state "connect", offset -1), so a
 * client that checks the role before it writes (Sentinel-aware clients,
 * health checks) does not take the gateway for a writable master. The master
 * is named "?", port 0, as Redis names an endpoint it cannot give: slotgated
 * hides its nodes, and no client is sent around it (its policies).
 * docs/DIFFERENCES.md says why. */
void admin_role(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    int covered;
    (void)cmd;
    (void)r;
    if (admin_health(s, &covered)) {
        sg_resp_put_array(&rs->out, 3);
        sg_resp_put_bulk(&rs->out, "master", 6);
        sg_resp_put_int(&rs->out, 0);
        sg_resp_put_array(&rs->out, 0);
    } else {
        sg_resp_put_array(&rs->out, 5);
        sg_resp_put_bulk(&rs->out, "slave", 5);
        sg_resp_put_bulk(&rs->out, "?", 1);
        sg_resp_put_int(&rs->out, 0);
        sg_resp_put_bulk(&rs->out, "connect", 7);
        sg_resp_put_int(&rs->out, -1);
    }
    reply_slot_done(rs);
}

/* CLUSTER INFO tells the truth, as /health does: cluster_state:fail and the
 * slots it cannot serve while an upstream is down (admin_health). */
static int cluster_info(session *s, char *text, size_t len) {
    int covered, ok = admin_health(s, &covered);
    return snprintf(text, len,
                    "cluster_state:%s\r\ncluster_slots_assigned:%d\r\ncluster_slots_ok:%d\r\n"
                    "cluster_slots_pfail:0\r\ncluster_slots_fail:%d\r\ncluster_known_nodes:%d\r\n"
                    "cluster_size:%d\r\ncluster_current_epoch:1\r\ncluster_my_epoch:1\r\n",
                    ok ? "ok" : "fail", covered, covered, SG_SLOTS - covered, 1, covered ? 1 : 0);
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
        n = cluster_info(s, text, sizeof text);
        sg_resp_put_verbatim(o, text, (size_t)n);
        return;
    }
    if (!admin_local_addr(s, ip, sizeof ip, &port)) {
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
        sg_resp_put_map(o, 0); /* networking metadata: none */
        break;
    case SG_CI_CLUSTER_SHARDS:
        sg_resp_put_array(o, 1);
        sg_resp_put_map(o, 2);
        put_str(o, "slots");
        sg_resp_put_array(o, 2);
        sg_resp_put_int(o, 0);
        sg_resp_put_int(o, 16383);
        put_str(o, "nodes");
        sg_resp_put_array(o, 1);
        sg_resp_put_map(o, 7);
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
        sg_resp_put_verbatim(o, text, (size_t)n);
        break;
    default: assert(!"admin_cluster: not a CLUSTER subcommand slotgated answers");
    }
}

void admin_cluster(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    reply_slot *rs = reply_slot_at(s, seq);
    cluster_reply(s, cmd, r, &rs->out);
    reply_slot_done(rs);
}
