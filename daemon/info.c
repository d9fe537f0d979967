/*
 * info.c — INFO as Redis 7.0 gives it, for a cluster behind one gateway. It
 * owns:
 *  - the sections and their selection: Redis 7.0's (server, clients,
 *    memory, persistence, stats, replication, cpu, modules, commandstats,
 *    errorstats, latencystats, cluster, keyspace), `default`, `all` and
 *    `everything`, several in one call, names in any case; slotgated's own
 *    (upstream, policy) are to it what a module's sections are to Redis: in
 *    `everything` and by name only;
 *  - the gateway's figures, the whole process's: every worker's block
 *    (session.h, worker_figs) summed, read without stopping any worker;
 *    the process's memory and CPU;
 *  - the nodes' figures (persistence, the nodes' half of stats, keyspace):
 *    INFO asked of every master of the default upstream and merged (a sum,
 *    the largest, the oldest save, the first bad status).
 * docs/INFO.md says where each field comes from.
 */
#include <ctype.h>
#include <event2/event.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "info.h"
#include "users.h"

/* ---- sections ------------------------------------------------------------------------------ */

enum {
    S_SERVER = 1 << 0,
    S_CLIENTS = 1 << 1,
    S_MEMORY = 1 << 2,
    S_PERSISTENCE = 1 << 3,
    S_STATS = 1 << 4,
    S_REPLICATION = 1 << 5,
    S_CPU = 1 << 6,
    S_MODULES = 1 << 7,
    S_COMMANDSTATS = 1 << 8,
    S_ERRORSTATS = 1 << 9,
    S_LATENCYSTATS = 1 << 10,
    S_CLUSTER = 1 << 11,
    S_KEYSPACE = 1 << 12,
    S_UPSTREAM = 1 << 13, /* slotgated's own, as a module's sections */
    S_POLICY = 1 << 14,
    S_CACHE = 1 << 15,
    /* Redis 7.0's sets: default leaves out commandstats and latencystats,
     * all the modules' sections too */
    S_DEFAULT = S_SERVER | S_CLIENTS | S_MEMORY | S_PERSISTENCE | S_STATS | S_REPLICATION |
                S_CPU | S_MODULES | S_ERRORSTATS | S_CLUSTER | S_KEYSPACE,
    S_ALL = S_DEFAULT | S_COMMANDSTATS | S_LATENCYSTATS,
    S_EVERYTHING = S_ALL | S_UPSTREAM | S_POLICY | S_CACHE,
    S_NODES = S_PERSISTENCE | S_STATS | S_KEYSPACE, /* asked of the masters */
};

static const struct {
    const char *name;
    unsigned bits;
} section_names[] = {
    {"server", S_SERVER},         {"clients", S_CLIENTS},
    {"memory", S_MEMORY},         {"persistence", S_PERSISTENCE},
    {"stats", S_STATS},           {"replication", S_REPLICATION},
    {"cpu", S_CPU},               {"modules", S_MODULES},
    {"commandstats", S_COMMANDSTATS}, {"errorstats", S_ERRORSTATS},
    {"latencystats", S_LATENCYSTATS}, {"cluster", S_CLUSTER},
    {"keyspace", S_KEYSPACE},     {"upstream", S_UPSTREAM},
    {"upstreams", S_UPSTREAM},    {"policy", S_POLICY},
    {"cache", S_CACHE},
    {"default", S_DEFAULT},       {"all", S_ALL},
    {"everything", S_EVERYTHING}, {NULL, 0}};

static unsigned info_sections(int argc, const char *const *argv, const size_t *argvlen) {
    unsigned want = 0;
    int i, k;
    if (argc <= 1) return S_DEFAULT;
    for (i = 1; i < argc; i++)
        for (k = 0; section_names[k].name; k++)
            if (strlen(section_names[k].name) == argvlen[i] &&
                strncasecmp(section_names[k].name, argv[i], argvlen[i]) == 0)
                want |= section_names[k].bits;
    return want; /* none known: an empty reply, as Redis */
}

/* ---- the nodes' figures, merged -------------------------------------------------------------- */

#define MAX_DBS 16
#define MAX_FIELDS 160

typedef struct node_field {
    char name[48];
    unsigned section; /* S_PERSISTENCE or S_STATS */
    char text[64];    /* the merged value as printed */
    int isnum, isint, printed;
    double num;
} node_field;

/* counters: summed over the masters; other numbers: the largest, but for
 * rdb_last_save_time (the oldest save); text: "ok" unless a master says
 * otherwise */
static const char sum_fields[] =
    ",rdb_changes_since_last_save,rdb_saves,aof_rewrites,rdb_last_load_keys_expired,"
    "rdb_last_load_keys_loaded,current_save_keys_processed,current_save_keys_total,"
    "current_cow_size,expired_keys,expired_time_cap_reached_count,expire_cycle_cpu_milliseconds,"
    "evicted_keys,evicted_clients,total_eviction_exceeded_time,keyspace_hits,keyspace_misses,"
    "pubsub_channels,pubsub_patterns,pubsubshard_channels,total_forks,migrate_cached_sockets,"
    "slave_expires_tracked_keys,active_defrag_hits,active_defrag_misses,active_defrag_key_hits,"
    "active_defrag_key_misses,total_active_defrag_time,dump_payload_sanitizations,";

static int is_sum(const char *name) {
    char key[52];
    snprintf(key, sizeof key, ",%.48s,", name);
    return strstr(sum_fields, key) != NULL;
}

/* The stats fields that are the nodes' (the rest are the gateway's). */
static const char *const node_stats[] = {
    "expired_keys", "expired_stale_perc", "expired_time_cap_reached_count",
    "expire_cycle_cpu_milliseconds", "evicted_keys", "evicted_clients",
    "total_eviction_exceeded_time", "current_eviction_exceeded_time", "keyspace_hits",
    "keyspace_misses", "pubsub_channels", "pubsub_patterns", "pubsubshard_channels",
    "latest_fork_usec", "total_forks", "migrate_cached_sockets", "slave_expires_tracked_keys",
    "active_defrag_hits", "active_defrag_misses", "active_defrag_key_hits",
    "active_defrag_key_misses", "total_active_defrag_time", "current_active_defrag_time", NULL};

/* Whether a master's stats field is one the gateway takes from the nodes. */
static int node_stat(const char *name) {
    int i;
    for (i = 0; node_stats[i]; i++)
        if (strcmp(node_stats[i], name) == 0) return 1;
    return strcmp(name, "dump_payload_sanitizations") == 0;
}

static const char *const persistence_fields[] = {
    "loading", "async_loading", "current_cow_peak", "current_cow_size", "current_cow_size_age",
    "current_fork_perc", "current_save_keys_processed", "current_save_keys_total",
    "rdb_changes_since_last_save", "rdb_bgsave_in_progress", "rdb_last_save_time",
    "rdb_last_bgsave_status", "rdb_last_bgsave_time_sec", "rdb_current_bgsave_time_sec",
    "rdb_saves", "rdb_last_cow_size", "rdb_last_load_keys_expired", "rdb_last_load_keys_loaded",
    "aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled", "aof_last_rewrite_time_sec",
    "aof_current_rewrite_time_sec", "aof_last_bgrewrite_status", "aof_rewrites",
    "aof_rewrites_consecutive_failures", "aof_last_write_status", "aof_last_cow_size",
    "module_fork_in_progress", "module_fork_last_cow_size", NULL};

typedef struct info_nodes {
    int asked;    /* the masters were asked */
    int answered; /* masters that answered */
    long long keys[MAX_DBS], expires[MAX_DBS];
    double ttl_sum[MAX_DBS]; /* avg_ttl weighted by expires */
    node_field f[MAX_FIELDS];
    int nf;
    char err[300]; /* the first failure */
} info_nodes;

static void merge_field(info_nodes *n, unsigned section, const char *name, const char *value) {
    node_field *f = NULL;
    char *end;
    double v = strtod(value, &end);
    int isnum = end != value && *end == '\0', i;
    for (i = 0; i < n->nf; i++)
        if (n->f[i].section == section && strcmp(n->f[i].name, name) == 0) f = &n->f[i];
    if (f == NULL) { /* the first master's: as it is */
        if (n->nf == MAX_FIELDS || strlen(name) >= sizeof f->name) return;
        f = &n->f[n->nf++];
        snprintf(f->name, sizeof f->name, "%s", name);
        snprintf(f->text, sizeof f->text, "%s", value);
        f->section = section;
        f->isnum = isnum;
        f->isint = isnum && strpbrk(value, ".eE") == NULL;
        f->num = v;
        return;
    }
    if (!f->isnum || !isnum) { /* a status: the first that is not ok */
        if (strcmp(f->text, "ok") == 0 && strcmp(value, "ok") != 0)
            snprintf(f->text, sizeof f->text, "%s", value);
        return;
    }
    if (is_sum(name)) f->num += v;
    else if (strcmp(name, "rdb_last_save_time") == 0) f->num = v < f->num ? v : f->num;
    else f->num = v > f->num ? v : f->num;
    if (f->isint) snprintf(f->text, sizeof f->text, "%.0f", f->num);
    else snprintf(f->text, sizeof f->text, "%.2f", f->num);
}

/* One master's INFO: its persistence and stats fields merged, its
 * "db0:keys=1,expires=0,avg_ttl=0" lines summed. */
static void info_merge_node(info_nodes *n, const char *text, size_t len) {
    const char *p = text, *end = text + len;
    unsigned section = 0;
    n->answered++;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[300], *colon;
        int db;
        long long keys, expires, ttl;
        if (l < sizeof line) {
            memcpy(line, p, l);
            line[l] = '\0';
            if (l && line[l - 1] == '\r') line[l - 1] = '\0';
            colon = strchr(line, ':');
            if (line[0] == '#') {
                section = strcasecmp(line, "# Persistence") == 0 ? S_PERSISTENCE
                          : strcasecmp(line, "# Stats") == 0     ? S_STATS
                          : strcasecmp(line, "# Keyspace") == 0  ? S_KEYSPACE
                                                                 : 0;
            } else if (section == S_KEYSPACE &&
                       sscanf(line, "db%d:keys=%lld,expires=%lld,avg_ttl=%lld", &db, &keys,
                              &expires, &ttl) == 4 &&
                       db >= 0 && db < MAX_DBS) {
                n->keys[db] += keys;
                n->expires[db] += expires;
                n->ttl_sum[db] += (double)ttl * (double)expires;
            } else if (colon && (section == S_PERSISTENCE || section == S_STATS)) {
                *colon = '\0';
                if (section == S_PERSISTENCE || node_stat(line))
                    merge_field(n, section, line, colon + 1);
            }
        }
        p += l + 1;
    }
}

/* The merged value of a node field, or dflt when no master gave it. */
static const char *nv(info_nodes *n, unsigned section, const char *name, const char *dflt) {
    int i;
    for (i = 0; i < n->nf; i++)
        if (n->f[i].section == section && strcmp(n->f[i].name, name) == 0) {
            n->f[i].printed = 1;
            return n->f[i].text;
        }
    return dflt;
}

/* The persistence fields the masters gave that the list lacks (loading_*,
 * aof_* when it is on, a newer Redis's), after the others. */
static void rest_of(sg_buf *t, info_nodes *n, unsigned section) {
    int i;
    for (i = 0; i < n->nf; i++)
        if (n->f[i].section == section && !n->f[i].printed)
            sg_buf_printf(t, "%s:%s\r\n", n->f[i].name, n->f[i].text);
}

/* What a field Redis gives but no master did is, when not 0. */
static const char *dflt_of(const char *name) {
    if (strstr(name, "_status")) return "ok";
    if (strstr(name, "_time_sec")) return "-1";
    if (strstr(name, "_perc")) return "0.00";
    return "0";
}

/* ---- the gateway's figures --------------------------------------------------------------------- */

typedef struct figs_sum {
    uint64_t commands, errors, conns, rejected_conns, net_in, net_out, reads, writes, blocked;
    uint64_t ops_sec, in_bps, out_bps;
    uint64_t trk_clients, trk_keys, trk_items, trk_prefixes; /* CLIENT TRACKING's (tracking.c) */
} figs_sum;

static void sum_figs(const server *srv, figs_sum *t) {
    int i;
    memset(t, 0, sizeof *t);
    for (i = 0; i < srv->nw; i++) {
        const worker_figs *f = &srv->w[i].figs;
        t->commands += figs_get(&f->commands);
        t->errors += figs_get(&f->errors);
        t->conns += figs_get(&f->conns);
        t->rejected_conns += figs_get(&f->rejected_conns);
        t->net_in += figs_get(&f->net_in);
        t->net_out += figs_get(&f->net_out);
        t->reads += figs_get(&f->reads);
        t->writes += figs_get(&f->writes);
        t->blocked += figs_get(&f->blocked);
        t->ops_sec += figs_get(&f->ops_sec);
        t->in_bps += figs_get(&f->in_bps);
        t->out_bps += figs_get(&f->out_bps);
        t->trk_clients += figs_get(&f->trk_clients);
        t->trk_keys += figs_get(&f->trk_keys);
        t->trk_items += figs_get(&f->trk_items);
        t->trk_prefixes += figs_get(&f->trk_prefixes);
    }
}

/* Redis's bytesToHuman. */
static const char *human(char *buf, size_t len, uint64_t n) {
    double d = (double)n;
    if (n < 1024) snprintf(buf, len, "%lluB", (unsigned long long)n);
    else if (d < 1024.0 * 1024) snprintf(buf, len, "%.2fK", d / 1024);
    else if (d < 1024.0 * 1024 * 1024) snprintf(buf, len, "%.2fM", d / (1024.0 * 1024));
    else if (d < 1024.0 * 1024 * 1024 * 1024)
        snprintf(buf, len, "%.2fG", d / (1024.0 * 1024 * 1024));
    else snprintf(buf, len, "%.2fT", d / (1024.0 * 1024 * 1024 * 1024));
    return buf;
}

/* The process's memory: what malloc has handed out and holds (mallinfo2),
 * and the resident set (/proc/self/statm). */
typedef struct mem_figs {
    uint64_t used, active, rss;
} mem_figs;

static uint64_t mem_peak, mem_startup; /* atomic */

static void read_memory(mem_figs *m) {
    struct mallinfo2 mi = mallinfo2();
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    uint64_t peak;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    m->used = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
    m->active = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
    m->rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    peak = __atomic_load_n(&mem_peak, __ATOMIC_RELAXED);
    while (m->used > peak &&
           !__atomic_compare_exchange_n(&mem_peak, &peak, m->used, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {}
    peak = 0;
    __atomic_compare_exchange_n(&mem_startup, &peak, m->used, 0, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
}

void info_sample_memory(void) {
    mem_figs m;
    read_memory(&m);
}

static double ratio(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

static void memory_section(sg_buf *t) {
    mem_figs m;
    uint64_t peak, startup, total = (uint64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
    char h1[32], h2[32], h3[32], h4[32];
    read_memory(&m);
    peak = __atomic_load_n(&mem_peak, __ATOMIC_RELAXED);
    startup = __atomic_load_n(&mem_startup, __ATOMIC_RELAXED);
    sg_buf_printf(t,
                  "# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\n"
                  "used_memory_rss:%llu\r\nused_memory_rss_human:%s\r\nused_memory_peak:%llu\r\n"
                  "used_memory_peak_human:%s\r\nused_memory_peak_perc:%.2f%%\r\n"
                  "used_memory_overhead:%llu\r\nused_memory_startup:%llu\r\n"
                  "used_memory_dataset:0\r\nused_memory_dataset_perc:0.00%%\r\n"
                  "allocator_allocated:%llu\r\nallocator_active:%llu\r\n"
                  "allocator_resident:%llu\r\ntotal_system_memory:%llu\r\n"
                  "total_system_memory_human:%s\r\n",
                  (unsigned long long)m.used, human(h1, sizeof h1, m.used),
                  (unsigned long long)m.rss, human(h2, sizeof h2, m.rss),
                  (unsigned long long)peak, human(h3, sizeof h3, peak),
                  100.0 * ratio(m.used, peak), (unsigned long long)m.used,
                  (unsigned long long)startup, (unsigned long long)m.used,
                  (unsigned long long)m.active, (unsigned long long)m.rss,
                  (unsigned long long)total, human(h4, sizeof h4, total));
    /* the nodes run the scripts and keep the data: none of it is here */
    sg_buf_puts(t, "used_memory_lua:0\r\nused_memory_vm_eval:0\r\nused_memory_lua_human:0B\r\n"
                   "used_memory_scripts_eval:0\r\nnumber_of_cached_scripts:0\r\n"
                   "number_of_functions:0\r\nnumber_of_libraries:0\r\n"
                   "used_memory_vm_functions:0\r\nused_memory_vm_total:0\r\n"
                   "used_memory_vm_total_human:0B\r\nused_memory_functions:0\r\n"
                   "used_memory_scripts:0\r\nused_memory_scripts_human:0B\r\nmaxmemory:0\r\n"
                   "maxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\n");
    sg_buf_printf(t,
                  "allocator_frag_ratio:%.2f\r\nallocator_frag_bytes:%lld\r\n"
                  "allocator_rss_ratio:%.2f\r\nallocator_rss_bytes:%lld\r\n"
                  "rss_overhead_ratio:1.00\r\nrss_overhead_bytes:0\r\n"
                  "mem_fragmentation_ratio:%.2f\r\nmem_fragmentation_bytes:%lld\r\n",
                  ratio(m.active, m.used), (long long)(m.active - m.used), ratio(m.rss, m.active),
                  (long long)(m.rss - m.active), ratio(m.rss, m.used),
                  (long long)(m.rss - m.used));
    sg_buf_puts(t, "mem_not_counted_for_evict:0\r\nmem_replication_backlog:0\r\n"
                   "mem_total_replication_buffers:0\r\nmem_clients_slaves:0\r\n"
                   "mem_clients_normal:0\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\n"
                   "mem_allocator:libc\r\nactive_defrag_running:0\r\n"
                   "lazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n");
}

static void server_section(sg_buf *t, session *s) {
    server *srv = s->w->srv;
    struct utsname un;
    struct timeval tv;
    char exe[1024] = "", ip[64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    long long up = (long long)(time(NULL) - srv->started);
    int port = 0;
    if (n > 0) exe[n] = '\0';
    if (uname(&un) != 0) memset(&un, 0, sizeof un);
    gettimeofday(&tv, NULL);
    admin_local_addr(s, ip, sizeof ip, &port);
    sg_buf_printf(t,
                  "# Server\r\nredis_version:%s\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\n"
                  "redis_build_id:0\r\nredis_mode:cluster\r\nos:%s %s %s\r\narch_bits:%d\r\n"
                  "monotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:%s\r\n"
                  "atomicvar_api:c11-builtin\r\ngcc_version:%d.%d.%d\r\nprocess_id:%ld\r\n"
                  "process_supervised:no\r\nrun_id:%s\r\ntcp_port:%d\r\n"
                  "server_time_usec:%lld\r\nuptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n"
                  "hz:10\r\nconfigured_hz:10\r\nlru_clock:%lld\r\nexecutable:%s\r\n"
                  "config_file:\r\nio_threads_active:0\r\nslotgate_version:%s\r\n"
                  "worker_threads:%d\r\n",
                  s->w->o->redis_version, un.sysname, un.release, un.machine,
                  (int)(sizeof(long) * 8), event_base_get_method(s->w->base),
#ifdef __GNUC__
                  __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__,
#else
                  0, 0, 0,
#endif
                  (long)getpid(), admin_node_id(), port,
                  (long long)tv.tv_sec * 1000000LL + tv.tv_usec, up, up / 86400,
                  (long long)(tv.tv_sec & ((1 << 24) - 1)), exe, sg_version(), srv->nw);
}

static void cpu_section(sg_buf *t) {
    struct rusage self, kids, thread;
    if (getrusage(RUSAGE_SELF, &self) != 0) memset(&self, 0, sizeof self);
    if (getrusage(RUSAGE_CHILDREN, &kids) != 0) memset(&kids, 0, sizeof kids);
    if (getrusage(RUSAGE_THREAD, &thread) != 0) memset(&thread, 0, sizeof thread);
#define TV_(x) (long)(x).tv_sec, (long)(x).tv_usec
    sg_buf_printf(t,
                  "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n"
                  "used_cpu_sys_children:%ld.%06ld\r\nused_cpu_user_children:%ld.%06ld\r\n"
                  "used_cpu_sys_main_thread:%ld.%06ld\r\nused_cpu_user_main_thread:%ld.%06ld\r\n",
                  TV_(self.ru_stime), TV_(self.ru_utime), TV_(kids.ru_stime), TV_(kids.ru_utime),
                  TV_(thread.ru_stime), TV_(thread.ru_utime));
#undef TV_
}

static void stats_section(sg_buf *t, const figs_sum *g, info_nodes *n) {
    int i;
    sg_buf_printf(t,
                  "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                  "instantaneous_ops_per_sec:%llu\r\ntotal_net_input_bytes:%llu\r\n"
                  "total_net_output_bytes:%llu\r\ntotal_net_repl_input_bytes:0\r\n"
                  "total_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:%.2f\r\n"
                  "instantaneous_output_kbps:%.2f\r\ninstantaneous_input_repl_kbps:0.00\r\n"
                  "instantaneous_output_repl_kbps:0.00\r\nrejected_connections:%llu\r\n"
                  "sync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\n",
                  (unsigned long long)g->conns, (unsigned long long)g->commands,
                  (unsigned long long)g->ops_sec, (unsigned long long)g->net_in,
                  (unsigned long long)g->net_out, (double)g->in_bps / 1024,
                  (double)g->out_bps / 1024, (unsigned long long)g->rejected_conns);
    for (i = 0; node_stats[i]; i++)
        sg_buf_printf(t, "%s:%s\r\n", node_stats[i],
                      nv(n, S_STATS, node_stats[i], dflt_of(node_stats[i])));
    /* slotgated's own sessions' tracking (the nodes track only its trackers) */
    sg_buf_printf(t, "tracking_total_keys:%llu\r\ntracking_total_items:%llu\r\n"
                     "tracking_total_prefixes:%llu\r\n",
                  (unsigned long long)g->trk_keys, (unsigned long long)g->trk_items,
                  (unsigned long long)g->trk_prefixes);
    sg_buf_printf(t,
                  "unexpected_error_replies:0\r\ntotal_error_replies:%llu\r\n"
                  "dump_payload_sanitizations:%s\r\ntotal_reads_processed:%llu\r\n"
                  "total_writes_processed:%llu\r\nio_threaded_reads_processed:0\r\n"
                  "io_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\n"
                  "reply_buffer_expands:0\r\n",
                  (unsigned long long)g->errors, nv(n, S_STATS, "dump_payload_sanitizations", "0"),
                  (unsigned long long)g->reads, (unsigned long long)g->writes);
}

static void commandstats_section(sg_buf *t, const server *srv) {
    size_t ncmd, ci;
    const sg_command *cmds = sg_command_table(&ncmd);
    sg_buf_puts(t, "# Commandstats\r\n");
    for (ci = 0; ci < ncmd && ci < SG_COMMAND_COUNT; ci++) {
        cmd_figs c = {0, 0, 0, 0};
        int i;
        for (i = 0; i < srv->nw; i++) {
            const cmd_figs *f = &srv->w[i].figs.cmd[ci];
            c.calls += figs_get(&f->calls);
            c.usec += figs_get(&f->usec);
            c.rejected += figs_get(&f->rejected);
            c.failed += figs_get(&f->failed);
        }
        if (c.calls == 0 && c.rejected == 0) continue;
        sg_buf_printf(t,
                      "cmdstat_%s:calls=%llu,usec=%llu,usec_per_call=%.2f,rejected_calls=%llu,"
                      "failed_calls=%llu\r\n",
                      cmds[ci].name, (unsigned long long)c.calls, (unsigned long long)c.usec,
                      c.calls ? (double)c.usec / (double)c.calls : 0.0,
                      (unsigned long long)c.rejected, (unsigned long long)c.failed);
    }
}

static void errorstats_section(sg_buf *t, const server *srv) {
    static const err_figs none = {"", 0};
    err_figs all[FIGS_ERRCODES];
    int n = 0, i, j, k;
    for (i = 0; i < srv->nw; i++) {
        const worker_figs *f = &srv->w[i].figs;
        int nerr = __atomic_load_n(&f->nerr, __ATOMIC_ACQUIRE); /* their codes are whole */
        for (j = 0; j < nerr; j++) {
            for (k = 0; k < n && strcmp(all[k].code, f->err[j].code) != 0; k++) {}
            if (k == n) {
                if (n == FIGS_ERRCODES) continue;
                all[n++] = none;
                memcpy(all[k].code, f->err[j].code, sizeof all[k].code);
            }
            all[k].count += figs_get(&f->err[j].count);
        }
    }
    sg_buf_puts(t, "# Errorstats\r\n");
    for (k = 0; k < n; k++)
        sg_buf_printf(t, "errorstat_%s:count=%llu\r\n", all[k].code,
                      (unsigned long long)all[k].count);
}

static void upstream_section(sg_buf *t, sg_client *c, const char *name) {
    uint64_t errors = 0, moved = 0, ask = 0, timeouts = 0, waits = 0, pool_timeouts = 0;
    uint64_t dwaits = 0, unconfirmed = 0;
    int i, conns = 0, in_use = 0, idle = 0, masters = 0, max_active, max_idle, timeout_ms;
    sg_buf_printf(t, "# Upstream %s\r\n", name);
    /* the settings in force, which a reload may have changed */
    sg_client_limits(c, &max_active, &max_idle, &timeout_ms);
    sg_buf_printf(t, "pool_max_active:%d\r\npool_max_idle:%d\r\ntimeout_ms:%d\r\n", max_active,
                  max_idle, timeout_ms);
    for (i = 0; i < sg_client_node_count(c); i++) {
        sg_node_stats st;
        if (sg_client_node_stats(c, i, &st) != SG_OK) continue;
        sg_buf_printf(t,
                      "node%d:addr=%s,role=%s,commands=%llu,errors=%llu,moved=%llu,ask=%llu,"
                      "timeouts=%llu,connects=%llu,conns=%d,in_use=%d,idle=%d,pool_waits=%llu,"
                      "pool_timeouts=%llu,durable_waits=%llu,durable_unconfirmed=%llu\r\n",
                      i, st.addr, st.is_master ? "master" : "replica",
                      (unsigned long long)st.commands, (unsigned long long)st.errors,
                      (unsigned long long)st.moved, (unsigned long long)st.ask,
                      (unsigned long long)st.timeouts, (unsigned long long)st.connects, st.conns,
                      st.in_use, st.idle, (unsigned long long)st.pool_waits,
                      (unsigned long long)st.pool_timeouts, (unsigned long long)st.waits,
                      (unsigned long long)st.unconfirmed);
        dwaits += st.waits;
        unconfirmed += st.unconfirmed;
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
                  "pool_waits:%llu\r\npool_timeouts:%llu\r\nmap_refreshes:%llu\r\n"
                  "durable_waits:%llu\r\ndurable_unconfirmed:%llu\r\n",
                  masters, (unsigned long long)errors, (unsigned long long)(moved + ask),
                  (unsigned long long)moved, (unsigned long long)ask,
                  (unsigned long long)timeouts, conns, in_use, idle, (unsigned long long)waits,
                  (unsigned long long)pool_timeouts,
                  (unsigned long long)sg_client_refresh_count(c), (unsigned long long)dwaits,
                  (unsigned long long)unconfirmed);
}

/* The near cache of every worker, summed: each worker's gateway keeps its own
 * (sg_gateway_cache_stats reads them from any thread). */
static void cache_section(sg_buf *t, const server *srv) {
    sg_cache_stats sum = {0}, one;
    uint64_t *a = (uint64_t *)&sum, *b = (uint64_t *)&one;
    size_t k;
    int i;
    for (i = 0; i < srv->nw; i++) {
        sg_gateway_cache_stats(srv->w[i].gw, &one);
        for (k = 0; k < sizeof sum / sizeof(uint64_t); k++) a[k] += b[k];
    }
    sg_buf_printf(t,
                  "# Cache\r\ncache_max_bytes:%llu\r\ncache_bytes:%llu\r\ncache_entries:%llu\r\n"
                  "cache_hits:%llu\r\ncache_misses:%llu\r\ncache_fills:%llu\r\n"
                  "cache_fills_lost:%llu\r\ncache_invalidations:%llu\r\ncache_flushes:%llu\r\n"
                  "cache_dropped_invalidated:%llu\r\ncache_dropped_written:%llu\r\n"
                  "cache_dropped_flushed:%llu\r\ncache_dropped_lost:%llu\r\n"
                  "cache_dropped_moved:%llu\r\ncache_dropped_expired:%llu\r\n"
                  "cache_evictions:%llu\r\ncache_trackers:%llu\r\n",
                  (unsigned long long)sum.max_bytes, (unsigned long long)sum.bytes,
                  (unsigned long long)sum.entries, (unsigned long long)sum.hits,
                  (unsigned long long)sum.misses, (unsigned long long)sum.fills,
                  (unsigned long long)sum.fills_lost, (unsigned long long)sum.invalidations,
                  (unsigned long long)sum.flushes, (unsigned long long)sum.dropped_invalidated,
                  (unsigned long long)sum.dropped_written, (unsigned long long)sum.dropped_flushed,
                  (unsigned long long)sum.dropped_lost, (unsigned long long)sum.dropped_moved,
                  (unsigned long long)sum.dropped_expired, (unsigned long long)sum.evictions,
                  (unsigned long long)sum.trackers);
}

/* Redis's header before each section but the first has a blank line. */
static void next_section(sg_buf *t) {
    if (t->len) sg_buf_puts(t, "\r\n");
}

/* The whole text, in Redis's order of sections, slotgated's own last (as
 * a module's). */
static void render(session *s, unsigned want, info_nodes *n, sg_buf *t) {
    worker *wk = s->w;
    server *srv = wk->srv;
    figs_sum g;
    int i, db;
    sum_figs(srv, &g);
    if (want & S_SERVER) next_section(t), server_section(t, s);
    if (want & S_CLIENTS) {
        next_section(t);
        sg_buf_printf(t,
                      "# Clients\r\nconnected_clients:%lld\r\ncluster_connections:0\r\n"
                      "maxclients:%lld\r\nclient_recent_max_input_buffer:0\r\n"
                      "client_recent_max_output_buffer:0\r\nblocked_clients:%llu\r\n"
                      "tracking_clients:%llu\r\nclients_in_timeout_table:0\r\n",
                      __atomic_load_n(&srv->clients, __ATOMIC_RELAXED), wk->o->max_clients,
                      (unsigned long long)g.blocked, (unsigned long long)g.trk_clients);
    }
    if (want & S_MEMORY) next_section(t), memory_section(t);
    if (want & S_PERSISTENCE) {
        next_section(t);
        sg_buf_puts(t, "# Persistence\r\n");
        for (i = 0; persistence_fields[i]; i++)
            sg_buf_printf(t, "%s:%s\r\n", persistence_fields[i],
                          nv(n, S_PERSISTENCE, persistence_fields[i],
                             dflt_of(persistence_fields[i])));
        rest_of(t, n, S_PERSISTENCE);
        if (n->err[0]) sg_buf_printf(t, "persistence_error:%s\r\n", n->err);
    }
    if (want & S_STATS) {
        next_section(t);
        stats_section(t, &g, n);
    }
    if (want & S_REPLICATION) { /* as ROLE: a master, or a replica whose link is down */
        int covered;
        next_section(t);
        if (admin_health(s, &covered))
            sg_buf_puts(t, "# Replication\r\nrole:master\r\n");
        else
            sg_buf_puts(t, "# Replication\r\nrole:slave\r\nmaster_host:?\r\nmaster_port:0\r\n"
                           "master_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\n"
                           "master_sync_in_progress:0\r\nslave_read_repl_offset:-1\r\n"
                           "slave_repl_offset:-1\r\nslave_priority:100\r\nslave_read_only:1\r\n"
                           "replica_announced:1\r\n");
        sg_buf_printf(t,
                      "connected_slaves:0\r\n"
                      "master_failover_state:no-failover\r\nmaster_replid:%s\r\n"
                      "master_replid2:0000000000000000000000000000000000000000\r\n"
                      "master_repl_offset:0\r\nsecond_repl_offset:-1\r\n"
                      "repl_backlog_active:0\r\nrepl_backlog_size:0\r\n"
                      "repl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
                      admin_node_id());
    }
    if (want & S_CPU) next_section(t), cpu_section(t);
    if (want & S_MODULES) next_section(t), sg_buf_puts(t, "# Modules\r\n");
    if (want & S_COMMANDSTATS) next_section(t), commandstats_section(t, srv);
    if (want & S_ERRORSTATS) next_section(t), errorstats_section(t, srv);
    if (want & S_LATENCYSTATS) next_section(t), sg_buf_puts(t, "# Latencystats\r\n");
    if (want & S_CLUSTER) next_section(t), sg_buf_puts(t, "# Cluster\r\ncluster_enabled:1\r\n");
    if (want & S_KEYSPACE) {
        next_section(t);
        sg_buf_puts(t, "# Keyspace\r\n");
        for (db = 0; db < MAX_DBS; db++) {
            if (n->keys[db] == 0) continue; /* as Redis: only databases with keys */
            sg_buf_printf(t, "db%d:keys=%lld,expires=%lld,avg_ttl=%lld\r\n", db, n->keys[db],
                          n->expires[db],
                          n->expires[db] ? (long long)(n->ttl_sum[db] / (double)n->expires[db])
                                         : 0LL);
        }
        if (n->err[0]) sg_buf_printf(t, "keyspace_error:%s\r\n", n->err);
    }
    if (want & S_UPSTREAM)
        for (i = 0; i < sg_config_upstream_count(srv->cfg); i++) {
            const char *name = sg_config_upstream_name(srv->cfg, i);
            sg_client *c = sg_gateway_client(wk->gw, name);
            if (c) next_section(t), upstream_section(t, c, name);
        }
    if (want & S_CACHE) next_section(t), cache_section(t, srv);
    if ((want & S_POLICY) && (wk->policy || wk->user_policy)) {
        sg_policy_stats ps;
        policies_stats(wk, &ps); /* the shared set's and the users' own */
        next_section(t);
        sg_buf_printf(t,
                      "# Policy (this worker)\r\npolicy_scripts:%d\r\npolicy_commands:%llu\r\n"
                      "policy_denied:%llu\r\npolicy_rewritten:%llu\r\npolicy_ttls:%llu\r\n"
                      "policy_routed:%llu\r\npolicy_hook_errors:%llu\r\n"
                      "policy_hook_timeouts:%llu\r\n",
                      wk->policy ? sg_policy_count(wk->policy) : 0, (unsigned long long)ps.commands,
                      (unsigned long long)ps.denied, (unsigned long long)ps.rewritten,
                      (unsigned long long)ps.ttls, (unsigned long long)ps.routed,
                      (unsigned long long)ps.hook_errors, (unsigned long long)ps.hook_timeouts);
    }
}

/* ---- INFO -------------------------------------------------------------------------------------- */

/* An INFO whose nodes' sections are being asked of the masters. */
typedef struct info_job {
    session *s;
    uint64_t seq;
    unsigned want;
    int pending; /* answers still due (plus one while sending) */
    int pinged;  /* the map was asked for once */
    info_nodes nodes;
} info_job;

static void answer(session *s, reply_slot *rs, unsigned want, info_nodes *n) {
    sg_buf t = {0};
    render(s, want, n, &t);
    if (t.oom) sg_resp_put_error(&rs->out, "ERR slotgate: out of memory");
    else sg_resp_put_verbatim(&rs->out, t.data ? t.data : "", t.len);
    sg_buf_free(&t);
    reply_slot_done(rs);
}

static void info_finish(info_job *j) {
    session *s = j->s;
    if (session_owed_done(s)) {
        answer(s, reply_slot_at(s, j->seq), j->want, &j->nodes);
        session_flush(s);
    }
    sg_free(j);
}

static void nodes_fail(info_job *j, const char *what) {
    size_t i;
    char *err = j->nodes.err;
    if (err[0]) return;
    snprintf(err, sizeof j->nodes.err, "%s", what);
    for (i = 0; err[i]; i++)
        if (err[i] == '\r' || err[i] == '\n') err[i] = ' ';
}

static void nodes_send(info_job *j);

static void on_node(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    info_job *j = ud;
    (void)c;
    if (reply && reply->type == SG_REPLY_STRING) info_merge_node(&j->nodes, reply->str, reply->len);
    else if (reply && reply->type == SG_REPLY_ERROR) nodes_fail(j, reply->str);
    else if (!reply) nodes_fail(j, errmsg ? errmsg : sg_strerror(status));
    sg_reply_free(reply);
    if (--j->pending == 0) info_finish(j);
}

/* The map is known now (or will never be): ask the masters again. */
static void on_map(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    info_job *j = ud;
    (void)c;
    if (!reply) nodes_fail(j, errmsg ? errmsg : sg_strerror(status));
    sg_reply_free(reply);
    j->pending--;
    nodes_send(j);
}

/* INFO with the nodes' sections asked to every master of the default
 * upstream. */
static void nodes_send(info_job *j) {
    sg_client *c = sg_gateway_client(j->s->w->gw, "default");
    const char *argv[4] = {"INFO"};
    int i, argc = 1, masters = 0;
    if (j->want & S_PERSISTENCE) argv[argc++] = "persistence";
    if (j->want & S_STATS) argv[argc++] = "stats";
    if (j->want & S_KEYSPACE) argv[argc++] = "keyspace";
    j->pending++; /* held while sending */
    for (i = 0; c && i < sg_client_node_count(c); i++) {
        sg_node_stats st;
        if (sg_client_node_stats(c, i, &st) != SG_OK || !st.is_master) continue;
        masters++;
        j->pending++;
        if (sg_client_send_node(c, i, argc, argv, NULL, on_node, j) != SG_OK) {
            j->pending--;
            nodes_fail(j, sg_errmsg(c));
        }
    }
    if (masters == 0 && c && !j->pinged && !j->nodes.err[0]) {
        /* no map yet: a command through the router waits for one */
        j->pinged = 1;
        j->pending++;
        if (sg_client_send_argv(c, 1, (const char *const[]){"PING"}, NULL, on_map, j) != SG_OK) {
            j->pending--;
            nodes_fail(j, sg_errmsg(c));
        }
    } else if (masters == 0 && !j->nodes.err[0]) {
        nodes_fail(j, "no master known");
    }
    if (--j->pending == 0) info_finish(j);
}

void info_command(session *s, const sg_command *cmd, const sg_resp_req *r, uint64_t seq) {
    unsigned want = info_sections(r->argc, r->argv, r->argvlen);
    info_job *j;
    (void)cmd;
    if (!(want & S_NODES)) {
        info_nodes none;
        memset(&none, 0, sizeof none);
        answer(s, reply_slot_at(s, seq), want, &none);
        return;
    }
    if ((j = sg_calloc(1, sizeof *j)) == NULL) {
        session_answer(s, seq, "-ERR slotgate: out of memory\r\n");
        return;
    }
    j->s = s;
    j->seq = seq;
    j->want = want;
    s->inflight++;
    nodes_send(j);
}
