/*
 * cluster_ops.c — the cluster operations of cluster_ops.h, shared by the
 * topology tests (ct_*.c) and bench/chaos.c: connections to the nodes, the
 * cluster's state, the waits, slot migration, a server's process.
 */
#include "cluster_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t ops_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ops_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *ops_wall(char *buf, size_t n) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    snprintf(buf, n, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
    return buf;
}

/* ---- one node ---------------------------------------------------------------- */

void ops_node_init(ops_node *n, const char *addr) {
    memset(n, 0, sizeof *n);
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    test_split_addr(addr, n->host, sizeof n->host, &n->port);
}

void ops_node_close(ops_node *n) {
    if (n->ctx) redisFree(n->ctx);
    n->ctx = NULL;
}

redisReply *ops_vcmd(ops_node *n, const char *fmt, va_list ap) {
    redisReply *r;
    if (n->ctx == NULL) {
        int ms = n->timeout_ms > 0 ? n->timeout_ms : 1000;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        n->ctx = redisConnectWithTimeout(n->host, n->port, tv);
        if (n->ctx == NULL || n->ctx->err) {
            snprintf(n->err, sizeof n->err, "connect to %s: %s", n->addr,
                     n->ctx ? n->ctx->errstr : "out of memory");
            ops_node_close(n);
            return NULL;
        }
        redisSetTimeout(n->ctx, tv);
        if (n->pass) {
            r = redisCommand(n->ctx, "AUTH %s", n->pass);
            if (r == NULL || r->type == REDIS_REPLY_ERROR) {
                snprintf(n->err, sizeof n->err, "%s: AUTH: %.150s", n->addr,
                         r ? r->str : n->ctx->errstr);
                if (r) freeReplyObject(r);
                ops_node_close(n);
                return NULL;
            }
            freeReplyObject(r);
        }
    }
    r = redisvCommand(n->ctx, fmt, ap);
    if (r == NULL) {
        snprintf(n->err, sizeof n->err, "%s: %s", n->addr, n->ctx->errstr);
        ops_node_close(n);
    }
    return r;
}

redisReply *ops_cmd(ops_node *n, const char *fmt, ...) {
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = ops_vcmd(n, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *ops_cmd_argv(ops_node *n, int argc, const char **argv, const size_t *argvlen) {
    redisReply *r;
    if (n->ctx == NULL) {
        redisReply *ping = ops_cmd(n, "PING"); /* connects */
        if (ping == NULL) return NULL;
        freeReplyObject(ping);
    }
    r = redisCommandArgv(n->ctx, argc, argv, argvlen);
    if (r == NULL) {
        snprintf(n->err, sizeof n->err, "%s: %s", n->addr, n->ctx->errstr);
        ops_node_close(n);
    }
    return r;
}

int ops_cmd_expect(ops_node *n, const char *want, const char *fmt, ...) {
    va_list ap;
    redisReply *r;
    int rc = -1;
    va_start(ap, fmt);
    r = ops_vcmd(n, fmt, ap);
    va_end(ap);
    if (r == NULL) return -1;
    if ((r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
        strcmp(r->str, want) == 0)
        rc = 0;
    else
        snprintf(n->err, sizeof n->err, "%s: %.*s%s", n->addr,
                 r->str ? 200 : 0, r->str ? r->str : "",
                 r->str ? "" : "unexpected reply type");
    freeReplyObject(r);
    return rc;
}

void ops_info_field(const char *text, const char *field, char *out, size_t outlen) {
    size_t fl = strlen(field);
    const char *p = text;
    out[0] = '\0';
    while (p && *p) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            size_t n = strcspn(p + fl + 1, "\r\n");
            if (n >= outlen) n = outlen - 1;
            memcpy(out, p + fl + 1, n);
            out[n] = '\0';
            return;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
}

int ops_info(ops_node *n, const char *section, const char *field, char *out, size_t outlen) {
    redisReply *r = ops_cmd(n, "INFO %s", section);
    out[0] = '\0';
    if (r == NULL) return -1;
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(n->err, sizeof n->err, "%s: INFO %s: %s", n->addr, section,
                 r->str ? r->str : "no text");
        freeReplyObject(r);
        return -1;
    }
    ops_info_field(r->str, field, out, outlen);
    freeReplyObject(r);
    return 0;
}

int ops_config_get(ops_node *n, const char *name, char *out, size_t outlen) {
    redisReply *r = ops_cmd(n, "CONFIG GET %s", name);
    int rc = -1;
    out[0] = '\0';
    if (r == NULL) return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        snprintf(out, outlen, "%s", r->element[1]->str);
        rc = 0;
    } else {
        snprintf(n->err, sizeof n->err, "%s: CONFIG GET %s: %s", n->addr, name,
                 r->str ? r->str : "no value");
    }
    freeReplyObject(r);
    return rc;
}

int ops_node_id(ops_node *n) {
    redisReply *r = ops_cmd(n, "CLUSTER MYID");
    if (r == NULL) return -1;
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(n->err, sizeof n->err, "%s: CLUSTER MYID: %s", n->addr,
                 r->str ? r->str : "no id");
        freeReplyObject(r);
        return -1;
    }
    snprintf(n->id, sizeof n->id, "%s", r->str);
    freeReplyObject(r);
    return 0;
}

void ops_role(ops_node *n, char *out, size_t outlen) {
    redisReply *r = ops_cmd(n, "ROLE");
    out[0] = '\0';
    if (r == NULL) return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(out, outlen, "%s", r->element[0]->str);
    freeReplyObject(r);
}

/* ---- the whole cluster -------------------------------------------------------- */

void ops_cluster_init(ops_cluster *cl, const char *csv) {
    const char *p = csv;
    cl->n = 0;
    while (*p && cl->n < OPS_MAX_NODES) {
        char addr[64];
        size_t len = strcspn(p, ",");
        if (len >= sizeof addr) len = sizeof addr - 1;
        memcpy(addr, p, len);
        addr[len] = '\0';
        ops_node_init(&cl->node[cl->n++], addr);
        p += strcspn(p, ",");
        if (*p == ',') p++;
    }
}

void ops_cluster_close(ops_cluster *cl) {
    int i;
    for (i = 0; i < cl->n; i++) ops_node_close(&cl->node[i]);
}

ops_node *ops_by_addr(ops_cluster *cl, const char *addr) {
    int i;
    for (i = 0; i < cl->n; i++)
        if (strcmp(cl->node[i].addr, addr) == 0) return &cl->node[i];
    return NULL;
}

static int ops_cmp_str_(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int ops_signature(ops_cluster *cl, ops_node *n, char *sig, size_t siglen, int *owner) {
    redisReply *r = ops_cmd(n, "CLUSTER SLOTS");
    size_t i, j, used = 0;
    if (owner)
        for (i = 0; i < 16384; i++) owner[i] = -1;
    sig[0] = '\0';
    if (r == NULL) return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(n->err, sizeof n->err, "%s: CLUSTER SLOTS: %s", n->addr,
                 r->str ? r->str : "not an array");
        freeReplyObject(r);
        return -1;
    }
    {
        /* order the ranges by their first slot */
        size_t *order = malloc((r->elements ? r->elements : 1) * sizeof *order);
        for (i = 0; i < r->elements; i++) order[i] = i;
        for (i = 1; i < r->elements; i++)
            for (j = i; j > 0 && r->element[order[j]]->element[0]->integer <
                                     r->element[order[j - 1]]->element[0]->integer;
                 j--) {
                size_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        for (i = 0; i < r->elements; i++) {
            redisReply *e = r->element[order[i]];
            const char *reps[8];
            char repbuf[8][128];
            size_t nrep = 0, k;
            long long lo = e->element[0]->integer, hi = e->element[1]->integer, s;
            redisReply *m = e->element[2];
            for (k = 3; k < e->elements && nrep < 8; k++) {
                redisReply *x = e->element[k];
                snprintf(repbuf[nrep], sizeof repbuf[nrep], "%s@%s:%lld",
                         x->elements > 2 ? x->element[2]->str : "?", x->element[0]->str,
                         x->element[1]->integer);
                reps[nrep] = repbuf[nrep];
                nrep++;
            }
            qsort(reps, nrep, sizeof *reps, ops_cmp_str_);
            used += (size_t)snprintf(sig + used, used < siglen ? siglen - used : 0,
                                     "%lld-%lld %s@%s:%lld", lo, hi,
                                     m->elements > 2 ? m->element[2]->str : "?",
                                     m->element[0]->str, m->element[1]->integer);
            for (k = 0; k < nrep; k++)
                used += (size_t)snprintf(sig + used, used < siglen ? siglen - used : 0,
                                         " r:%s", reps[k]);
            used += (size_t)snprintf(sig + used, used < siglen ? siglen - used : 0, "; ");
            if (owner) {
                char addr[64];
                int who = -1, c;
                snprintf(addr, sizeof addr, "%s:%lld", m->element[0]->str,
                         m->element[1]->integer);
                for (c = 0; c < cl->n; c++)
                    if (strcmp(cl->node[c].addr, addr) == 0) who = c;
                for (s = lo; s <= hi && s < 16384; s++) owner[s] = who;
            }
        }
        free(order);
    }
    freeReplyObject(r);
    if (used >= siglen) {
        snprintf(n->err, sizeof n->err, "%s: CLUSTER SLOTS too long for the signature",
                 n->addr);
        return -1;
    }
    return 0;
}

/* What keeps node n from being settled, in problem (empty: settled):
 * cluster_state, slots assigned and ok, want_nodes known nodes, every node in CLUSTER
 * NODES without fail/pfail/handshake/noaddr and connected, no slot migrating
 * or importing on this node, and for a replica a master link that is up. */
static void ops_node_problem(ops_node *n, int want_nodes, char *problem, size_t plen) {
    redisReply *r = ops_cmd(n, "CLUSTER INFO");
    char v[64];
    problem[0] = '\0';
    if (r == NULL) {
        snprintf(problem, plen, "%s", n->err);
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(problem, plen, "%s: CLUSTER INFO: %s", n->addr, r->str ? r->str : "?");
        freeReplyObject(r);
        return;
    }
    ops_info_field(r->str, "cluster_state", v, sizeof v);
    if (strcmp(v, "ok") != 0) snprintf(problem, plen, "%s: cluster_state:%s", n->addr, v);
    ops_info_field(r->str, "cluster_slots_ok", v, sizeof v);
    if (!problem[0] && strcmp(v, "16384") != 0)
        snprintf(problem, plen, "%s: cluster_slots_ok:%s", n->addr, v);
    ops_info_field(r->str, "cluster_known_nodes", v, sizeof v);
    if (!problem[0] && atoi(v) != want_nodes)
        snprintf(problem, plen, "%s: cluster_known_nodes:%s", n->addr, v);
    freeReplyObject(r);
    if (problem[0]) return;

    r = ops_cmd(n, "CLUSTER NODES");
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        snprintf(problem, plen, "%s: CLUSTER NODES: %s", n->addr,
                 r ? (r->str ? r->str : "?") : n->err);
        if (r) freeReplyObject(r);
        return;
    }
    {
        const char *line;
        int myself_replica = 0;
        for (line = r->str; line && *line && !problem[0];
             line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
            char id[64], addr[128], flags[128], master[64], rest[1024];
            long long ping, pong;
            int epoch;
            char link[32];
            rest[0] = '\0';
            if (sscanf(line, "%63s %127s %127s %63s %lld %lld %d %31s %1023[^\n]", id, addr,
                       flags, master, &ping, &pong, &epoch, link, rest) < 8)
                continue;
            if (strstr(flags, "fail") || strstr(flags, "handshake") || strstr(flags, "noaddr"))
                snprintf(problem, plen, "%s sees %s as %s", n->addr, addr, flags);
            else if (strcmp(link, "connected") != 0)
                snprintf(problem, plen, "%s: link to %s %s", n->addr, addr, link);
            else if (strstr(flags, "myself") && strchr(rest, '['))
                snprintf(problem, plen, "%s: a slot is still migrating or importing: %s",
                         n->addr, rest);
            if (strstr(flags, "myself") && strstr(flags, "slave")) myself_replica = 1;
        }
        freeReplyObject(r);
        if (problem[0] || !myself_replica) return;
    }
    if (ops_info(n, "replication", "master_link_status", v, sizeof v) != 0)
        snprintf(problem, plen, "%s", n->err);
    else if (strcmp(v, "up") != 0)
        snprintf(problem, plen, "%s: replica with master_link_status:%s", n->addr, v);
}

/* The address of a replica of the node with id master_id, as node n's
 * CLUSTER NODES says ("" when none). */
static void ops_replica_of(ops_node *n, const char *master_id, char *out, size_t outlen) {
    redisReply *r = ops_cmd(n, "CLUSTER NODES");
    const char *line;
    out[0] = '\0';
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r) freeReplyObject(r);
        return;
    }
    for (line = r->str; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        char id[64], addr[128], flags[128], master[64];
        if (sscanf(line, "%63s %127s %127s %63s", id, addr, flags, master) != 4) continue;
        if (strstr(flags, "slave") && strcmp(master, master_id) == 0) {
            addr[strcspn(addr, "@")] = '\0';
            snprintf(out, outlen, "%.60s", addr);
            break;
        }
    }
    freeReplyObject(r);
}

static void ops_idle(ops_idle_fn fn, void *ud, int ms) {
    if (fn) fn(ud, ms);
    else ops_sleep_ms(ms);
}

int ops_wait_settled(ops_cluster *cl, const char *want, int timeout_ms, ops_idle_fn idle, void *ud,
                     char *problem, size_t plen) {
    uint64_t deadline = ops_now_ms() + (uint64_t)timeout_ms;
    static char sig0[OPS_SIG_MAX], sig[OPS_SIG_MAX];
    for (;;) {
        int i;
        problem[0] = '\0';
        for (i = 0; i < cl->n && !problem[0]; i++) {
            ops_node_problem(&cl->node[i], cl->n, problem, plen);
            if (problem[0]) break;
            if (ops_signature(cl, &cl->node[i], i == 0 ? sig0 : sig, OPS_SIG_MAX, NULL) != 0)
                snprintf(problem, plen, "%s", cl->node[i].err);
            else if (i > 0 && strcmp(sig, sig0) != 0)
                snprintf(problem, plen, "%s and %s disagree on the slots:\n  %.1500s\n  %.1500s",
                         cl->node[0].addr, cl->node[i].addr, sig0, sig);
        }
        if (!problem[0] && want && strcmp(sig0, want) != 0)
            snprintf(problem, plen, "slots not as expected:\n  now  %.1500s\n  want %.1500s", sig0,
                     want);
        if (!problem[0]) return 0;
        if (ops_now_ms() >= deadline) return -1;
        ops_idle(idle, ud, 20);
    }
}


int ops_slot_owners(ops_cluster *cl, int *owner) {
    char *sig = malloc(OPS_SIG_MAX);
    int i, rc = -1;
    for (i = 0; sig && i < cl->n && rc != 0; i++)
        rc = ops_signature(cl, &cl->node[i], sig, OPS_SIG_MAX, owner);
    free(sig);
    return rc;
}

ops_node *ops_replica(ops_cluster *cl, ops_node *m) {
    char raddr[64];
    ops_node *r;
    if (m->id[0] == '\0' && ops_node_id(m) != 0) return NULL;
    ops_replica_of(m, m->id, raddr, sizeof raddr);
    if ((r = ops_by_addr(cl, raddr)) == NULL)
        snprintf(m->err, sizeof m->err, "%s: no replica among the cluster's nodes (\"%s\")",
                 m->addr, raddr);
    return r;
}

/* ---- slot migration ------------------------------------------------------------ */

/* n->err becomes "step: " and what it said, or what reply r (not NULL) said. */
static void step_failed(ops_node *n, const char *step, const redisReply *r) {
    char was[sizeof n->err];
    snprintf(was, sizeof was, "%s", n->err);
    if (r)
        snprintf(n->err, sizeof n->err, "%s on %s: %.150s", step, n->addr,
                 r->str ? r->str : "unexpected reply");
    else
        snprintf(n->err, sizeof n->err, "%s: %.200s", step, was);
}

int ops_migrate_keys(ops_node *f, ops_node *t, int slot, int batch, int flags,
                     void (*after_batch)(void *ud), void *ud, int *moved) {
    if (batch > OPS_MIGRATE_BATCH_MAX) batch = OPS_MIGRATE_BATCH_MAX;
    for (;;) {
        const char *argv[8 + OPS_MIGRATE_BATCH_MAX];
        size_t len[8 + OPS_MIGRATE_BATCH_MAX];
        char port[16];
        redisReply *keys = ops_cmd(f, "CLUSTER GETKEYSINSLOT %d %d", slot, batch), *r;
        int argc = 0, i;
        size_t k;
        if (keys == NULL || keys->type != REDIS_REPLY_ARRAY) {
            step_failed(f, "CLUSTER GETKEYSINSLOT", keys);
            if (keys) freeReplyObject(keys);
            return -1;
        }
        if (keys->elements == 0) {
            freeReplyObject(keys);
            return 0;
        }
        snprintf(port, sizeof port, "%d", t->port);
        argv[argc++] = "MIGRATE";
        argv[argc++] = t->host;
        argv[argc++] = port;
        argv[argc++] = "";
        argv[argc++] = "0";
        argv[argc++] = "5000";
        if (flags & OPS_MIGRATE_REPLACE) argv[argc++] = "REPLACE";
        argv[argc++] = "KEYS";
        for (k = 0; k < keys->elements; k++) argv[argc++] = keys->element[k]->str;
        for (i = 0; i < argc; i++) len[i] = strlen(argv[i]);
        if ((flags & OPS_MIGRATE_ASKING) && ops_cmd_expect(f, "OK", "ASKING") != 0) {
            step_failed(f, "ASKING", NULL);
            freeReplyObject(keys);
            return -1;
        }
        r = ops_cmd_argv(f, argc, argv, len);
        if (r == NULL || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0) {
            step_failed(f, "MIGRATE", r);
            if (r) freeReplyObject(r);
            freeReplyObject(keys);
            return -1;
        }
        *moved += (int)keys->elements;
        freeReplyObject(r);
        freeReplyObject(keys);
        if (after_batch) after_batch(ud);
    }
}

/* ---- a server's process ---------------------------------------------------------- */

int ops_server_process(ops_node *n, long *pid, char *conf, size_t conflen, char *pidfile,
                       size_t pflen) {
    char buf[64];
    *pid = 0;
    conf[0] = pidfile[0] = '\0';
    if (ops_info(n, "server", "process_id", buf, sizeof buf) != 0 ||
        ops_info(n, "server", "config_file", conf, conflen) != 0 ||
        ops_config_get(n, "pidfile", pidfile, pflen) != 0)
        return -1;
    *pid = atol(buf);
    if (*pid > 0 && conf[0] && pidfile[0]) return 0;
    snprintf(n->err, sizeof n->err,
             "%s: no pid, config file or pidfile in INFO server and CONFIG GET pidfile", n->addr);
    return -1;
}

static long read_pidfile(const char *path) {
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f == NULL) return 0;
    if (fscanf(f, "%ld", &pid) != 1) pid = 0;
    fclose(f);
    return pid;
}

int ops_pid_alive(long pid) {
    char path[64], buf[512], *p;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL) return kill((pid_t)pid, 0) == 0;
    p = fgets(buf, sizeof buf, f);
    fclose(f);
    if (p == NULL || (p = strrchr(buf, ')')) == NULL) return 0;
    return p[2] != 'Z' && p[2] != 'X';
}

long ops_start_server(const char *conf, const char *pidfile, long old_pid, char *err,
                      size_t errlen) {
    const char *prog = getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";
    char dir[1024];
    uint64_t deadline;
    int status;
    pid_t child;
    snprintf(dir, sizeof dir, "%s", conf);
    if (strrchr(dir, '/')) *strrchr(dir, '/') = '\0';
    if ((child = fork()) < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return 0;
    }
    if (child == 0) {
        char log[1100];
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) dup2(fd, 0);
        snprintf(log, sizeof log, "%s/stdout.log", dir);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp(prog, prog, conf, (char *)NULL);
        _exit(127);
    }
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "%s %s did not start (see %s/stdout.log)", prog, conf, dir);
        return 0;
    }
    deadline = ops_now_ms() + 10000;
    while (ops_now_ms() < deadline) {
        long pid = read_pidfile(pidfile);
        if (pid > 0 && pid != old_pid && ops_pid_alive(pid)) return pid;
        ops_sleep_ms(10);
    }
    snprintf(err, errlen, "no new pid in %s", pidfile);
    return 0;
}

int ops_update_harness_pid(long old, long new_pid) {
    const char *state = getenv("SG_TEST_STATE");
    char path[4096], tmp[4200], line[512];
    FILE *in, *out;
    int replaced = 0;
    if (state == NULL || !*state) return -1;
    snprintf(path, sizeof path, "%s/pids", state);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((in = fopen(path, "r")) == NULL) return 0;
    if ((out = fopen(tmp, "w")) == NULL) {
        fclose(in);
        return 0;
    }
    while (fgets(line, sizeof line, in)) {
        char name[256];
        long pid;
        if (sscanf(line, "%255s %ld", name, &pid) == 2 && pid == old) {
            fprintf(out, "%s %ld\n", name, new_pid);
            replaced = 1;
        } else {
            fputs(line, out);
        }
    }
    fclose(in);
    fclose(out);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return 0;
    }
    return replaced;
}

/* ---- a client of the cluster ----------------------------------------------------- */

sg_client *ops_client(void) {
    static char addrs[2048];
    const char *env[] = {addrs, "TYK_GW_STORAGE_ENABLECLUSTER=true", NULL};
    sg_config *cfg = sg_config_new();
    sg_client *c;
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=%s", test_server_var("SG_TEST_CLUSTER"));
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env), SG_OK);
    c = sg_client_new(cfg, NULL, NULL);
    sg_config_free(cfg);
    if (c == NULL || sg_errcode(c) != SG_OK || sg_client_connect(c) != SG_OK) {
        TEST_FAIL_("a client of %s: %s", addrs, c ? sg_errmsg(c) : "out of memory");
        exit(test_report());
    }
    return c;
}
