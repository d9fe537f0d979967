/*
 * metrics.c — slotgated's HTTP endpoint, on a thread and event loop of its
 * own (libevent's evhttp):
 *   GET /metrics  the figures in the Prometheus text format (0.0.4): clients,
 *                 commands, error replies, per command its calls, time,
 *                 rejections and failures (INFO commandstats), error
 *                 replies by code (INFO errorstats), per upstream and node the
 *                 commands, errors, redirections, timeouts and pool figures,
 *                 map refreshes, slots covered, policy figures;
 *   GET /health   200 "ok" when every worker's client of every upstream can
 *                 serve all 16384 slots (Cluster: a full slot map; one node
 *                 or Sentinel: connected), else 503 with why, a line each.
 * Each worker owns its gateway and counters and only its thread may read
 * them: a request posts an event to every worker's loop, each worker copies
 * its figures into its slot here under a mutex, and the request waits (at
 * most GATHER_MS) for them all, then sums. A worker that does not answer in
 * time (it is stopping) makes /health fail and is left out of /metrics.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "metrics.h"
#include "users.h"

#define GATHER_MS 2000

/* ---- the figures ------------------------------------------------------------------------ */

/* XX(field of sg_node_stats, type, name, help) */
#define NODE_FIGURES(XX)                                                                           \
    XX(commands, counter, "slotgate_node_commands_total", "Commands sent to the node.")            \
    XX(errors, counter, "slotgate_node_errors_total",                                              \
       "Error replies, timeouts and connection failures from the node.")                           \
    XX(moved, counter, "slotgate_node_moved_total", "MOVED redirections the node answered.")       \
    XX(ask, counter, "slotgate_node_ask_total", "ASK redirections the node answered.")             \
    XX(timeouts, counter, "slotgate_node_timeouts_total", "Commands to the node timed out.")       \
    XX(connects, counter, "slotgate_node_connects_total", "Connections opened to the node.")       \
    XX(conns, gauge, "slotgate_node_connections", "Connections open to the node.")                 \
    XX(in_use, gauge, "slotgate_node_connections_in_use",                                          \
       "Connections to the node with commands in flight.")                                         \
    XX(idle, gauge, "slotgate_node_connections_idle",                                              \
       "Connections to the node with nothing in flight.")                                          \
    XX(pool_waits, counter, "slotgate_node_pool_waits_total",                                      \
       "Commands that waited for a connection to the node.")                                       \
    XX(pool_timeouts, counter, "slotgate_node_pool_timeouts_total",                                \
       "Commands that gave up waiting for a connection to the node.")                              \
    XX(waits, counter, "slotgate_node_durable_waits_total",                                        \
       "WAITs sent to the node to confirm durable writes.")                                        \
    XX(unconfirmed, counter, "slotgate_node_durable_unconfirmed_total",                            \
       "Durable writes the node applied that replicas did not confirm in time.")

/* XX(field of sg_policy_stats, name, help) */
#define POLICY_FIGURES(XX)                                                                         \
    XX(commands, "slotgate_policy_commands_total", "Commands the policies decided on.")            \
    XX(denied, "slotgate_policy_denied_total", "Commands the policies refused.")                   \
    XX(rewritten, "slotgate_policy_rewritten_total", "Commands whose keys the policies rewrote.")  \
    XX(ttls, "slotgate_policy_ttls_total", "Writes the policies gave a default TTL.")              \
    XX(routed, "slotgate_policy_routed_total", "Commands the policies sent to another upstream.")  \
    XX(hook_calls, "slotgate_policy_hook_calls_total", "Policy hook calls.")                       \
    XX(hook_errors, "slotgate_policy_hook_errors_total", "Policy hooks that failed.")              \
    XX(hook_timeouts, "slotgate_policy_hook_timeouts_total",                                       \
       "Policy hooks stopped by their limits.")                                                    \
    XX(dry_run_events, "slotgate_policy_dry_run_events_total", "Changes dry-run policies reported.") \
    XX(durable, "slotgate_policy_durable_total", "Writes the policies made durable.")

/* XX(field of sg_cache_stats, type, name, help) */
#define CACHE_FIGURES(XX)                                                                          \
    XX(hits, counter, "slotgate_cache_hits_total", "Reads answered from the near cache.")          \
    XX(misses, counter, "slotgate_cache_misses_total", "Cacheable reads sent to the nodes.")       \
    XX(fills, counter, "slotgate_cache_fills_total", "Answers kept in the near cache.")            \
    XX(fills_lost, counter, "slotgate_cache_fills_lost_total",                                     \
       "Answers not kept: the key changed while the read was out.")                                \
    XX(invalidations, counter, "slotgate_cache_invalidations_total",                               \
       "Keys the nodes' invalidation messages named.")                                             \
    XX(flushes, counter, "slotgate_cache_flushes_total", "Flush messages from the nodes.")         \
    XX(dropped_invalidated, counter, "slotgate_cache_dropped_invalidated_total",                   \
       "Entries dropped: a node said the key changed.")                                            \
    XX(dropped_written, counter, "slotgate_cache_dropped_written_total",                           \
       "Entries dropped: a write through slotgated.")                                              \
    XX(dropped_flushed, counter, "slotgate_cache_dropped_flushed_total",                           \
       "Entries dropped: a flush.")                                                                \
    XX(dropped_lost, counter, "slotgate_cache_dropped_lost_total",                                 \
       "Entries dropped: their node's invalidation connection was lost.")                          \
    XX(dropped_moved, counter, "slotgate_cache_dropped_moved_total",                               \
       "Entries dropped: their slot moved to another node.")                                       \
    XX(dropped_expired, counter, "slotgate_cache_dropped_expired_total",                           \
       "Entries dropped: older than their pattern allows.")                                        \
    XX(evictions, counter, "slotgate_cache_evictions_total",                                       \
       "Entries evicted (least recently used) to stay within cache_max_bytes.")                    \
    XX(bytes, gauge, "slotgate_cache_bytes", "Bytes the near cache holds.")                        \
    XX(entries, gauge, "slotgate_cache_entries", "Entries in the near cache.")                     \
    XX(max_bytes, gauge, "slotgate_cache_max_bytes", "The near cache's bound (cache_max_bytes).")  \
    XX(trackers, gauge, "slotgate_cache_trackers",                                                 \
       "Invalidation connections to the nodes, subscribed.")

/* XX(field of worker_figs, name, help): CLIENT TRACKING's gauges (tracking.c) */
#define TRACKING_FIGURES(XX)                                                                       \
    XX(trk_clients, "slotgate_tracking_clients", "Clients with CLIENT TRACKING on.")               \
    XX(trk_keys, "slotgate_tracking_keys", "Keys tracked for clients (default mode).")             \
    XX(trk_items, "slotgate_tracking_items",                                                       \
       "Clients tracked per key, summed over the keys (default mode).")                            \
    XX(trk_prefixes, "slotgate_tracking_prefixes", "Prefixes of BCAST clients (none counts one).")

typedef struct node_figs {
    char addr[300];
    int is_master;
#define FIELD_(f, type, name, help) uint64_t f;
    NODE_FIGURES(FIELD_)
#undef FIELD_
} node_figs;

/* One worker's client of one upstream. */
typedef struct upstream_figs {
    int known; /* the gateway has a client for it */
    node_figs *nodes;
    int nnodes;
    uint64_t refreshes;
    int coverage; /* sg_client_coverage */
    char why[SG_ERRMSG_MAX + 40];
} upstream_figs;

/* One worker's figures. */
typedef struct scrape_figs {
    uint64_t commands, errors;
    cmd_figs *cmd; /* SG_COMMAND_COUNT of them, by sg_command_index */
    err_figs *err; /* nerr of them */
    int nerr;
    int scripts, has_policy;
    sg_policy_stats policy;
    upstream_figs *ups; /* one per upstream of the settings */
} scrape_figs;

/* A worker's place in a gathering: want is set by the endpoint and cleared
 * by the worker that fills figs (both under metrics.mu). */
typedef struct wslot {
    metrics *m;
    int i;
    int want, done;
    scrape_figs figs;
} wslot;

struct metrics {
    server *srv;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *ls;
    struct event *stop_ev;
    pthread_t tid;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wslot *ws;
    int nups;
};

static void figs_clear(scrape_figs *f, int nups) {
    int u;
    if (f->ups)
        for (u = 0; u < nups; u++) sg_free(f->ups[u].nodes);
    sg_free(f->ups);
    sg_free(f->cmd);
    sg_free(f->err);
    memset(f, 0, sizeof *f);
}

static void ignore_reply(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    (void)c, (void)status, (void)errmsg, (void)ud;
    sg_reply_free(reply);
}

/* Per command and per error code (INFO commandstats and errorstats): the
 * worker's own counters, copied whole so the sums below read no worker's
 * memory. Out of memory leaves them out of this scrape. */
static void read_commands(const worker_figs *wf, scrape_figs *f) {
    int i, nerr = __atomic_load_n(&wf->nerr, __ATOMIC_ACQUIRE); /* their codes are whole */
    if ((f->cmd = sg_calloc(SG_COMMAND_COUNT, sizeof *f->cmd)) != NULL)
        for (i = 0; i < SG_COMMAND_COUNT; i++) {
            f->cmd[i].calls = figs_get(&wf->cmd[i].calls);
            f->cmd[i].usec = figs_get(&wf->cmd[i].usec);
            f->cmd[i].rejected = figs_get(&wf->cmd[i].rejected);
            f->cmd[i].failed = figs_get(&wf->cmd[i].failed);
        }
    if (nerr > 0 && (f->err = sg_calloc((size_t)nerr, sizeof *f->err)) != NULL) {
        for (i = 0; i < nerr; i++) {
            memcpy(f->err[i].code, wf->err[i].code, sizeof f->err[i].code);
            f->err[i].count = figs_get(&wf->err[i].count);
        }
        f->nerr = nerr;
    }
}

/* On the worker's thread: copies its figures. An upstream it cannot serve
 * yet gets a PING, which starts discovery (Cluster, Sentinel) or a
 * connection (one node), so a quiet gateway becomes healthy. */
static void read_worker(worker *w, scrape_figs *f, int nups) {
    const sg_config *cfg = w->srv->cfg;
    int u, i;
    f->commands = figs_get(&w->figs.commands);
    f->errors = figs_get(&w->figs.errors);
    f->has_policy = w->policy != NULL || w->user_policy != NULL;
    f->scripts = w->policy ? sg_policy_count(w->policy) : 0;
    policies_stats(w, &f->policy);
    read_commands(&w->figs, f);
    if ((f->ups = sg_calloc((size_t)(nups ? nups : 1), sizeof *f->ups)) == NULL) return;
    for (u = 0; u < nups; u++) {
        upstream_figs *uf = &f->ups[u];
        sg_client *c = sg_gateway_client(w->gw, sg_config_upstream_name(cfg, u));
        const char *why = NULL;
        int n;
        if (c == NULL) continue;
        uf->known = 1;
        uf->refreshes = sg_client_refresh_count(c);
        uf->coverage = sg_client_coverage(c, &why);
        snprintf(uf->why, sizeof uf->why, "%s", why ? why : "");
        if (uf->coverage != SG_SLOTS) {
            static const char *const ping[] = {"PING"};
            sg_client_send_argv(c, 1, ping, NULL, ignore_reply, NULL);
        }
        n = sg_client_node_count(c);
        if (n <= 0 || (uf->nodes = sg_calloc((size_t)n, sizeof *uf->nodes)) == NULL) continue;
        for (i = 0; i < n; i++) {
            sg_node_stats st;
            node_figs *nf = &uf->nodes[uf->nnodes];
            if (sg_client_node_stats(c, i, &st) != SG_OK) continue;
            snprintf(nf->addr, sizeof nf->addr, "%s", st.addr ? st.addr : "");
            nf->is_master = st.is_master;
#define COPY_(f, type, name, help) nf->f = (uint64_t)st.f;
            NODE_FIGURES(COPY_)
#undef COPY_
            uf->nnodes++;
        }
    }
}

static void on_gather(evutil_socket_t fd, short what, void *arg) {
    wslot *ws = arg;
    metrics *m = ws->m;
    scrape_figs f;
    int want;
    (void)fd, (void)what;
    pthread_mutex_lock(&m->mu);
    want = ws->want;
    pthread_mutex_unlock(&m->mu);
    if (!want) return; /* a gathering that gave up on this worker */
    memset(&f, 0, sizeof f);
    read_worker(&m->srv->w[ws->i], &f, m->nups);
    pthread_mutex_lock(&m->mu);
    if (ws->want) {
        figs_clear(&ws->figs, m->nups);
        ws->figs = f;
        ws->want = 0;
        ws->done = 1;
        pthread_cond_broadcast(&m->cv);
    } else {
        figs_clear(&f, m->nups);
    }
    pthread_mutex_unlock(&m->mu);
}

/* Asks every worker for its figures and waits for them (at most GATHER_MS);
 * returns with m->mu held: the slots that are done hold figures. */
static void gather(metrics *m) {
    struct timeval zero = {0, 0};
    struct timespec until;
    int i, pending;
    pthread_mutex_lock(&m->mu);
    for (i = 0; i < m->srv->nw; i++) {
        m->ws[i].want = 1;
        m->ws[i].done = 0;
    }
    pthread_mutex_unlock(&m->mu);
    for (i = 0; i < m->srv->nw; i++)
        if (event_base_once(m->srv->w[i].base, -1, EV_TIMEOUT, on_gather, &m->ws[i], &zero) != 0) {
            pthread_mutex_lock(&m->mu);
            m->ws[i].want = 0;
            pthread_mutex_unlock(&m->mu);
        }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += GATHER_MS / 1000;
    until.tv_nsec += (long)(GATHER_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    for (;;) {
        for (pending = 0, i = 0; i < m->srv->nw; i++) pending += m->ws[i].want;
        if (pending == 0 || pthread_cond_timedwait(&m->cv, &m->mu, &until) == ETIMEDOUT) break;
    }
    for (i = 0; i < m->srv->nw; i++) m->ws[i].want = 0; /* late answers are dropped */
}

/* ---- /metrics --------------------------------------------------------------------------- */

/* A label value: backslash, quote and newline escaped. */
static void put_label(sg_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') sg_buf_append(b, "\\\\", 2);
        else if (*s == '"') sg_buf_append(b, "\\\"", 2);
        else if (*s == '\n') sg_buf_append(b, "\\n", 2);
        else sg_buf_append(b, s, 1);
    }
}

static void put_head(sg_buf *b, const char *name, const char *type, const char *help) {
    sg_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_node_label(sg_buf *b, const char *name, const char *up, const char *addr) {
    sg_buf_printf(b, "%s{upstream=\"", name);
    put_label(b, up);
    sg_buf_puts(b, "\",node=\"");
    put_label(b, addr);
    sg_buf_puts(b, "\"} ");
}

/* The nodes of upstream u summed over the workers that answered (a node is
 * its address; every worker has a client of its own). */
static node_figs *sum_nodes(metrics *m, int u, int *count) {
    node_figs *all = NULL;
    int n = 0, cap = 0, i, j, k;
    for (i = 0; i < m->srv->nw; i++) {
        const upstream_figs *uf;
        if (!m->ws[i].done || m->ws[i].figs.ups == NULL) continue;
        uf = &m->ws[i].figs.ups[u];
        for (j = 0; j < uf->nnodes; j++) {
            const node_figs *nf = &uf->nodes[j];
            for (k = 0; k < n && strcmp(all[k].addr, nf->addr) != 0; k++) {}
            if (k == n) {
                if (n == cap) {
                    node_figs *na;
                    cap = cap ? cap * 2 : 8;
                    if ((na = sg_realloc(all, (size_t)cap * sizeof *na)) == NULL) {
                        *count = n;
                        return all;
                    }
                    all = na;
                }
                all[n++] = *nf;
                continue;
            }
            all[k].is_master |= nf->is_master;
#define ADD_(f, type, name, help) all[k].f += nf->f;
            NODE_FIGURES(ADD_)
#undef ADD_
        }
    }
    *count = n;
    return all;
}

/* XX(field of cmd_figs, name, help): per command, summed over the workers. */
#define COMMAND_FIGURES(XX)                                                                        \
    XX(calls, "slotgate_command_calls_total", "Commands run, by command (INFO commandstats).")     \
    XX(rejected, "slotgate_command_rejected_calls_total",                                          \
       "Commands slotgated refused before running them (before AUTH, not served), by command.")    \
    XX(failed, "slotgate_command_failed_calls_total", "Commands run that failed, by command.")

/* Per command: the calls, their time and failures (a command never called
 * nor rejected is left out, as INFO commandstats does); error replies by
 * code. The time is a total, not a histogram: rate(seconds) / rate(calls)
 * is the mean latency, and the request path adds nothing for it. */
static void render_commands(metrics *m, sg_buf *b) {
    size_t ncmd, ci;
    const sg_command *cmds = sg_command_table(&ncmd);
    cmd_figs *all = sg_calloc(SG_COMMAND_COUNT, sizeof *all);
    err_figs codes[FIGS_ERRCODES];
    int i, j, k, n = 0;
    if (all == NULL) {
        b->oom = 1; /* the reply says out of memory, not a partial scrape */
        return;
    }
    for (i = 0; i < m->srv->nw; i++) {
        const scrape_figs *f = &m->ws[i].figs;
        if (!m->ws[i].done) continue;
        for (ci = 0; f->cmd && ci < SG_COMMAND_COUNT; ci++) {
            all[ci].calls += f->cmd[ci].calls;
            all[ci].usec += f->cmd[ci].usec;
            all[ci].rejected += f->cmd[ci].rejected;
            all[ci].failed += f->cmd[ci].failed;
        }
        for (j = 0; j < f->nerr; j++) {
            for (k = 0; k < n && strcmp(codes[k].code, f->err[j].code) != 0; k++) {}
            if (k == n) {
                if (n == FIGS_ERRCODES) continue;
                memcpy(codes[n].code, f->err[j].code, sizeof codes[n].code);
                codes[n++].count = 0;
            }
            codes[k].count += f->err[j].count;
        }
    }
    if (ncmd > SG_COMMAND_COUNT) ncmd = SG_COMMAND_COUNT;
#define PUTC_(fld, fam, help)                                                                      \
    put_head(b, fam, "counter", help);                                                             \
    for (ci = 0; ci < ncmd; ci++) {                                                                \
        if (all[ci].calls == 0 && all[ci].rejected == 0) continue;                                 \
        sg_buf_puts(b, fam "{command=\"");                                                         \
        put_label(b, cmds[ci].name);                                                               \
        sg_buf_printf(b, "\"} %llu\n", (unsigned long long)all[ci].fld);                           \
    }
    COMMAND_FIGURES(PUTC_)
#undef PUTC_
    put_head(b, "slotgate_command_duration_seconds_total", "counter",
             "Time spent on commands, from read to reply, by command.");
    for (ci = 0; ci < ncmd; ci++) {
        if (all[ci].calls == 0 && all[ci].rejected == 0) continue;
        sg_buf_puts(b, "slotgate_command_duration_seconds_total{command=\"");
        put_label(b, cmds[ci].name);
        sg_buf_printf(b, "\"} %.6f\n", (double)all[ci].usec / 1e6);
    }
    put_head(b, "slotgate_error_replies_by_code_total", "counter",
             "Error replies sent to clients, by code (INFO errorstats).");
    for (k = 0; k < n; k++) {
        sg_buf_puts(b, "slotgate_error_replies_by_code_total{code=\"");
        put_label(b, codes[k].code);
        sg_buf_printf(b, "\"} %llu\n", (unsigned long long)codes[k].count);
    }
    sg_free(all);
}

static void render_metrics(metrics *m, sg_buf *b) {
    server *srv = m->srv;
    uint64_t commands = 0, errors = 0;
    sg_policy_stats pol;
    sg_cache_stats cache = {0}, one;
    int i, u, answered = 0, has_policy = 0, scripts = 0;
    memset(&pol, 0, sizeof pol);
    /* each worker's cache figures are atomics its gateway keeps: read here */
    for (i = 0; i < srv->nw; i++) {
        sg_gateway_cache_stats(srv->w[i].gw, &one);
#define ADDC_(fld, type, name, help) cache.fld += one.fld;
        CACHE_FIGURES(ADDC_)
#undef ADDC_
    }
    for (i = 0; i < srv->nw; i++) {
        const scrape_figs *f = &m->ws[i].figs;
        if (!m->ws[i].done) continue;
        answered++;
        commands += f->commands;
        errors += f->errors;
        has_policy |= f->has_policy;
        scripts = f->scripts;
#define ADDP_(fld, name, help) pol.fld += f->policy.fld;
        POLICY_FIGURES(ADDP_)
#undef ADDP_
    }
    put_head(b, "slotgate_info", "gauge", "The version of slotgated.");
    sg_buf_puts(b, "slotgate_info{version=\"");
    put_label(b, sg_version());
    sg_buf_puts(b, "\"} 1\n");
    put_head(b, "slotgate_worker_threads", "gauge", "Worker threads.");
    sg_buf_printf(b, "slotgate_worker_threads %d\n", srv->nw);
    put_head(b, "slotgate_workers_answered", "gauge",
             "Workers whose figures this scrape holds (fewer while stopping).");
    sg_buf_printf(b, "slotgate_workers_answered %d\n", answered);
    put_head(b, "slotgate_clients_connected", "gauge", "Clients connected.");
    sg_buf_printf(b, "slotgate_clients_connected %lld\n",
                  __atomic_load_n(&srv->clients, __ATOMIC_RELAXED));
    put_head(b, "slotgate_commands_total", "counter", "Commands clients sent.");
    sg_buf_printf(b, "slotgate_commands_total %llu\n", (unsigned long long)commands);
    put_head(b, "slotgate_error_replies_total", "counter", "Error replies sent to clients.");
    sg_buf_printf(b, "slotgate_error_replies_total %llu\n", (unsigned long long)errors);
    if (has_policy) {
        put_head(b, "slotgate_policy_scripts", "gauge", "Scripts in the common policy set.");
        sg_buf_printf(b, "slotgate_policy_scripts %d\n", scripts);
#define PUTP_(fld, name, help)                                                                     \
    put_head(b, name, "counter", help);                                                            \
    sg_buf_printf(b, name " %llu\n", (unsigned long long)pol.fld);
        POLICY_FIGURES(PUTP_)
#undef PUTP_
    }
    render_commands(m, b);
#define PUTC_(fld, type, name, help)                                                               \
    put_head(b, name, #type, help);                                                                \
    sg_buf_printf(b, name " %llu\n", (unsigned long long)cache.fld);
    CACHE_FIGURES(PUTC_)
#undef PUTC_
    /* single-writer atomics of each worker's: read here, as INFO does */
#define PUTT_(fld, name, help)                                                                     \
    {                                                                                              \
        uint64_t v = 0;                                                                            \
        for (i = 0; i < srv->nw; i++) v += figs_get(&srv->w[i].figs.fld);                          \
        put_head(b, name, "gauge", help);                                                          \
        sg_buf_printf(b, name " %llu\n", (unsigned long long)v);                                   \
    }
    TRACKING_FIGURES(PUTT_)
#undef PUTT_
    put_head(b, "slotgate_upstream_slots_covered", "gauge",
             "Slots the least ready worker can serve (16384: all).");
    for (u = 0; u < m->nups; u++) {
        int least = SG_SLOTS;
        for (i = 0; i < srv->nw; i++) {
            const upstream_figs *uf =
                m->ws[i].done && m->ws[i].figs.ups ? &m->ws[i].figs.ups[u] : NULL;
            int c = uf && uf->known ? uf->coverage : 0;
            if (c < least) least = c;
        }
        sg_buf_puts(b, "slotgate_upstream_slots_covered{upstream=\"");
        put_label(b, sg_config_upstream_name(srv->cfg, u));
        sg_buf_printf(b, "\"} %d\n", least);
    }
    put_head(b, "slotgate_upstream_map_refreshes_total", "counter",
             "Slot map refreshes (Sentinel: master look-ups), all workers.");
    for (u = 0; u < m->nups; u++) {
        uint64_t r = 0;
        for (i = 0; i < srv->nw; i++)
            if (m->ws[i].done && m->ws[i].figs.ups) r += m->ws[i].figs.ups[u].refreshes;
        sg_buf_puts(b, "slotgate_upstream_map_refreshes_total{upstream=\"");
        put_label(b, sg_config_upstream_name(srv->cfg, u));
        sg_buf_printf(b, "\"} %llu\n", (unsigned long long)r);
    }
    {
        node_figs **per = sg_calloc((size_t)(m->nups ? m->nups : 1), sizeof *per);
        int *count = sg_calloc((size_t)(m->nups ? m->nups : 1), sizeof *count), j;
        if (per == NULL || count == NULL) {
            sg_free(per);
            sg_free(count);
            return;
        }
        for (u = 0; u < m->nups; u++) per[u] = sum_nodes(m, u, &count[u]);
        put_head(b, "slotgate_node_master", "gauge", "1 when the node is a master.");
        for (u = 0; u < m->nups; u++)
            for (j = 0; j < count[u]; j++) {
                put_node_label(b, "slotgate_node_master", sg_config_upstream_name(srv->cfg, u),
                               per[u][j].addr);
                sg_buf_printf(b, "%d\n", per[u][j].is_master ? 1 : 0);
            }
#define PUTN_(f, type, name, help)                                                                 \
    put_head(b, name, #type, help);                                                                \
    for (u = 0; u < m->nups; u++)                                                                  \
        for (j = 0; j < count[u]; j++) {                                                           \
            put_node_label(b, name, sg_config_upstream_name(srv->cfg, u), per[u][j].addr);         \
            sg_buf_printf(b, "%llu\n", (unsigned long long)per[u][j].f);                           \
        }
        NODE_FIGURES(PUTN_)
#undef PUTN_
        for (u = 0; u < m->nups; u++) sg_free(per[u]);
        sg_free(per);
        sg_free(count);
    }
}

/* ---- /health ---------------------------------------------------------------------------- */

/* 1 when every worker answered and serves every slot of every upstream;
 * otherwise 0 and b says why, a line each. */
static int render_health(metrics *m, sg_buf *b) {
    server *srv = m->srv;
    int i, u, ok = 1;
    for (i = 0; i < srv->nw; i++) {
        const scrape_figs *f = &m->ws[i].figs;
        if (!m->ws[i].done || f->ups == NULL) {
            sg_buf_printf(b, "worker %d: did not answer within %d ms\n", i, GATHER_MS);
            ok = 0;
            continue;
        }
        for (u = 0; u < m->nups; u++) {
            const upstream_figs *uf = &f->ups[u];
            const char *name = sg_config_upstream_name(srv->cfg, u);
            if (!uf->known) {
                sg_buf_printf(b, "upstream %s: worker %d: no client\n", name, i);
                ok = 0;
            } else if (uf->coverage != SG_SLOTS) {
                sg_buf_printf(b, "upstream %s: worker %d: %d of %d slots served: %s\n", name, i,
                              uf->coverage, SG_SLOTS, uf->why);
                ok = 0;
            }
        }
    }
    if (ok) sg_buf_puts(b, "ok\n");
    return ok;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static void reply(struct evhttp_request *req, int code, const char *why, const char *type,
                  const sg_buf *body) {
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    if (out && body->oom) evbuffer_add_printf(out, "out of memory\n");
    else if (out && body->len) evbuffer_add(out, body->data, body->len);
    if (body->oom) code = 500, why = "Internal Server Error";
    evhttp_send_reply(req, code, why, out);
    if (out) evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg) {
    metrics *m = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    sg_buf b = {0};
    int i;
    if (path == NULL) path = "";
    if (strcmp(path, "/metrics") != 0 && strcmp(path, "/health") != 0) {
        sg_buf_puts(&b, "slotgated serves GET /metrics and GET /health\n");
        reply(req, 404, "Not Found", "text/plain; charset=utf-8", &b);
    } else if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        sg_buf_puts(&b, "GET only\n");
        reply(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", &b);
    } else {
        int ok = 1;
        gather(m); /* returns with m->mu held */
        if (path[1] == 'm') render_metrics(m, &b);
        else ok = render_health(m, &b);
        for (i = 0; i < m->srv->nw; i++) {
            figs_clear(&m->ws[i].figs, m->nups);
            m->ws[i].done = 0;
        }
        pthread_mutex_unlock(&m->mu);
        if (path[1] == 'm') reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &b);
        else if (ok) reply(req, 200, "OK", "text/plain; charset=utf-8", &b);
        else reply(req, 503, "Service Unavailable", "text/plain; charset=utf-8", &b);
    }
    sg_buf_free(&b);
}

/* ---- the thread ------------------------------------------------------------------------- */

static void on_stop(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    event_base_loopbreak(arg);
}

static void *metrics_main(void *arg) {
    metrics *m = arg;
    event_base_dispatch(m->base);
    return NULL;
}

metrics *metrics_start(server *srv, char *err, size_t errlen) {
    const char *addr = srv->o->metrics;
    struct sockaddr_storage ss;
    int sslen = sizeof ss, i;
    metrics *m = sg_calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "metrics %s: out of memory", addr);
        return NULL;
    }
    m->srv = srv;
    m->nups = sg_config_upstream_count(srv->cfg);
    pthread_mutex_init(&m->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&m->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if ((m->ws = sg_calloc((size_t)srv->nw, sizeof *m->ws)) == NULL ||
        (m->base = event_base_new()) == NULL || (m->http = evhttp_new(m->base)) == NULL ||
        (m->stop_ev = event_new(m->base, -1, 0, on_stop, m->base)) == NULL) {
        snprintf(err, errlen, "metrics %s: out of memory", addr);
        goto fail;
    }
    for (i = 0; i < srv->nw; i++) {
        m->ws[i].m = m;
        m->ws[i].i = i;
    }
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        snprintf(err, errlen, "metrics %s: not host:port", addr);
        goto fail;
    }
    m->ls = evconnlistener_new_bind(m->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                    128, (struct sockaddr *)&ss, sslen);
    if (m->ls == NULL) {
        snprintf(err, errlen, "metrics %s: %s", addr, strerror(errno));
        goto fail;
    }
    if (evhttp_bind_listener(m->http, m->ls) == NULL) {
        snprintf(err, errlen, "metrics %s: cannot serve HTTP on it", addr);
        goto fail;
    }
    m->ls = NULL; /* the evhttp owns it now */
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_timeout(m->http, 10);
    evhttp_set_gencb(m->http, on_request, m);
    if (pthread_create(&m->tid, NULL, metrics_main, m) != 0) {
        snprintf(err, errlen, "metrics %s: cannot start its thread", addr);
        goto fail;
    }
    m->started = 1;
    sg_log(SG_LOG_INFO, "metrics and health on http://%s/metrics and /health", addr);
    return m;
fail:
    metrics_free(m);
    return NULL;
}

void metrics_stop(metrics *m) {
    if (m == NULL || !m->started) return;
    event_active(m->stop_ev, EV_TIMEOUT, 1); /* breaks the loop even before it runs */
    pthread_join(m->tid, NULL);
    m->started = 0;
}

void metrics_free(metrics *m) {
    int i;
    if (m == NULL) return;
    metrics_stop(m);
    if (m->ws)
        for (i = 0; i < m->srv->nw; i++) figs_clear(&m->ws[i].figs, m->nups);
    sg_free(m->ws);
    if (m->ls) evconnlistener_free(m->ls);
    if (m->http) evhttp_free(m->http);
    if (m->stop_ev) event_free(m->stop_ev);
    if (m->base) event_base_free(m->base);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    sg_free(m);
}
