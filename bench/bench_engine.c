/*
 * bench_engine.c — libslotgate's blocking calls and pipelines against the
 * same commands sent directly with hiredis (sync API) to the node that serves
 * each key, on a real Redis Cluster, side by side in one process.
 *
 * Two workloads, each a 50/50 random mix of SET (values of 16..100 bytes) and
 * GET over N keys spread over all 16384 slots:
 *
 *   blocking  one command at a time.
 *             slotgate: sg_client_call_argv() on a blocking client.
 *             direct:   redisCommandArgv() on a per-master redisContext,
 *                       chosen from the slot map (CLUSTER SLOTS).
 *   pipeline  batches of --batch commands (default 100).
 *             slotgate: sg_pipeline_append_argv() × batch, sg_pipeline_exec().
 *             direct:   redisAppendCommandArgv() on each key's node, then every
 *                       node's buffer written out (all nodes get their share
 *                       before any reply is read), then redisGetReply() for
 *                       each command in order.
 *
 * Both sides run exactly the same sequence of operations (same keys, same
 * values, same order), and every reply is checked (SET: +OK, GET: a string).
 * Rounds alternate the sides, the order flipped each round (A B, B A, A B,
 * ...), so a slow spell of this shared machine falls on both. Each round
 * prints its ops/sec and the client's CPU time per operation (the process's
 * CPU clock: what the library costs, less disturbed by other load than wall
 * time). At the end, per workload: the median ops/sec of each side and the
 * ratio slotgate/direct, as lines starting with "RESULT" that bench/engine.sh
 * collects across runs.
 *
 * The key → slot of each key is asked of the server (CLUSTER KEYSLOT) and
 * compared with sg_keyslot(); the slot → node map comes from CLUSTER SLOTS.
 * After the rounds, sg_client_node_stats() shows how slotgate spread the
 * commands over the nodes; the run fails when a master got none or a replica
 * got any.
 *
 *   bench_engine [--addrs H:P,...] [--keys N] [--rounds R]
 *                [--blocking-ops N] [--batches N] [--batch N]
 *                [--only blocking|pipeline] [--seed S] [--side slotgate|direct]
 *
 * --addrs defaults to $SG_TEST_CLUSTER (the harness's servers.env). --side
 * runs the rounds of one side only (no ratio): for perf or callgrind.
 * Exit status: 0, 1 on a failed check or error, 2 on bad usage.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdint.h>

#define BENCH_NAME "bench_engine"
#include "bench.h"

#define MAX_NODES 16
#define MAX_ROUNDS 100

/* ---- settings ---------------------------------------------------------------- */

typedef struct options {
    const char *addrs;
    int keys;
    int rounds;
    long blocking_ops;
    long batches;
    int batch;
    int do_blocking, do_pipeline;
    int side;         /* 0: both; 1: slotgate only, 2: direct only (profiling) */
    unsigned long long seed;
} options;

typedef struct bench {
    options o;
    keyset keys;        /* key i in slot i*16384/N */
    int *key_node;      /* direct side: index into ctx */
    /* operations, the same for both sides */
    op *ops;
    long nops;
    char *pool;         /* random printable bytes values point into */
    /* direct side: one connection per master */
    redisContext *ctx[MAX_NODES];
    char node_addr[MAX_NODES][64];
    int nnodes;
    int slot_node[16384];
    /* slotgate side */
    sg_client *client;
    sg_pipeline *pipe;
    uint64_t sg_before[MAX_NODES * 4];
} bench;

/* ---- the direct side: slot map and connections ----------------------------- */

static redisContext *connect_addr(const char *addr) {
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct timeval tv = {5, 0};
    redisContext *ctx;
    size_t hl;
    if (colon == NULL || (hl = (size_t)(colon - addr)) >= sizeof host)
        die("bad address \"%s\"", addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    ctx = redisConnectWithTimeout(host, atoi(colon + 1), tv);
    if (ctx == NULL || ctx->err)
        die("cannot connect to %s: %s", addr, ctx ? ctx->errstr : "out of memory");
    redisSetTimeout(ctx, tv);
    return ctx;
}

static int node_index(bench *b, const char *addr) {
    int i;
    for (i = 0; i < b->nnodes; i++)
        if (strcmp(b->node_addr[i], addr) == 0) return i;
    if (b->nnodes == MAX_NODES) die("more than %d masters", MAX_NODES);
    snprintf(b->node_addr[b->nnodes], sizeof b->node_addr[0], "%s", addr);
    b->ctx[b->nnodes] = connect_addr(addr);
    return b->nnodes++;
}

/* CLUSTER SLOTS from the first seed → slot_node[], and a connection per master. */
static void load_slot_map(bench *b) {
    char seed[64];
    const char *comma = strchr(b->o.addrs, ',');
    size_t n = comma ? (size_t)(comma - b->o.addrs) : strlen(b->o.addrs), i;
    redisContext *ctx;
    redisReply *r;
    int s, covered = 0;
    if (n >= sizeof seed) die("bad address list \"%s\"", b->o.addrs);
    memcpy(seed, b->o.addrs, n);
    seed[n] = '\0';
    ctx = connect_addr(seed);
    r = redisCommand(ctx, "CLUSTER SLOTS");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) die("CLUSTER SLOTS on %s failed", seed);
    for (s = 0; s < 16384; s++) b->slot_node[s] = -1;
    for (i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i], *m;
        char addr[64];
        int lo, hi, idx;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) die("odd CLUSTER SLOTS entry");
        m = e->element[2];
        lo = (int)e->element[0]->integer;
        hi = (int)e->element[1]->integer;
        snprintf(addr, sizeof addr, "%s:%lld", m->element[0]->str, m->element[1]->integer);
        idx = node_index(b, addr);
        for (s = lo; s <= hi && s < 16384; s++) b->slot_node[s] = idx, covered++;
    }
    freeReplyObject(r);
    redisFree(ctx);
    if (covered != 16384) die("the slot map covers %d of 16384 slots", covered);
}

/* ---- keys, values, operations ------------------------------------------------- */

/* N keys, key i in slot i*16384/N (keyset_spread); each key's slot asked of
 * the server and checked against sg_keyslot(). */
static void make_keys(bench *b) {
    int n = b->o.keys, i, bad = 0;
    redisContext *ctx = b->ctx[0];
    const keyset *ks = &b->keys;
    keyset_spread(&b->keys, n, "sgbench:");
    if ((b->key_node = calloc((size_t)n, sizeof *b->key_node)) == NULL) die("out of memory");
    /* the server's word for each key's slot, pipelined */
    for (i = 0; i < n; i++) {
        const char *argv[] = {"CLUSTER", "KEYSLOT", ks->name[i]};
        size_t lens[] = {7, 7, ks->len[i]};
        redisAppendCommandArgv(ctx, 3, argv, lens);
    }
    for (i = 0; i < n; i++) {
        redisReply *r;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK || r->type != REDIS_REPLY_INTEGER)
            die("CLUSTER KEYSLOT failed: %s", ctx->errstr);
        if ((unsigned)r->integer != sg_keyslot(ks->name[i], ks->len[i])) bad++;
        b->key_node[i] = b->slot_node[r->integer];
        freeReplyObject(r);
    }
    if (bad) die("sg_keyslot() disagrees with CLUSTER KEYSLOT for %d keys", bad);
}

static void make_ops(bench *b) {
    long need = 0;
    if (b->o.do_blocking) need = b->o.blocking_ops;
    if (b->o.do_pipeline && b->o.batches * b->o.batch > need) need = b->o.batches * b->o.batch;
    if (need < b->o.keys) need = b->o.keys; /* the populating pass uses one per key */
    b->nops = need;
    b->ops = random_ops(need, b->o.keys, &b->pool);
}

/* ---- checks on replies -------------------------------------------------------- */

/* Checks hiredis's reply r to o (as check_sg_reply does slotgate's) and frees it. */
static void check_direct(const op *o, redisReply *r, const redisContext *ctx) {
    if (r == NULL) die("hiredis: %s", ctx->errstr);
    if (o->set ? r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0
               : r->type != REDIS_REPLY_STRING)
        bad_reply("direct ", o, r->type, r->str);
    freeReplyObject(r);
}

static void check_sg(const op *o, const sg_reply *r, int status, const char *msg) {
    if (r == NULL) die("slotgate: %s: %s", sg_errname(status), msg ? msg : "");
    check_sg_reply("slotgate ", o, r);
}

/* ---- the four runners: ops [from, from+n) ------------------------------------- */

static void blocking_direct(bench *b, long from, long n) {
    const char *argv[3];
    size_t lens[3];
    long i;
    for (i = from; i < from + n; i++) {
        const op *o = &b->ops[i % b->nops];
        redisContext *ctx = b->ctx[b->key_node[o->key]];
        int argc = op_argv(o, &b->keys, argv, lens);
        check_direct(o, redisCommandArgv(ctx, argc, argv, lens), ctx);
    }
}

static void blocking_sg(bench *b, long from, long n) {
    const char *argv[3];
    size_t lens[3];
    long i;
    for (i = from; i < from + n; i++) {
        const op *o = &b->ops[i % b->nops];
        int argc = op_argv(o, &b->keys, argv, lens);
        sg_reply *r = sg_client_call_argv(b->client, argc, argv, lens);
        check_sg(o, r, sg_errcode(b->client), sg_errmsg(b->client));
        sg_reply_free(r);
    }
}

static void pipeline_direct(bench *b, long from, long nbatches) {
    const char *argv[3];
    size_t lens[3];
    long k;
    int i, batch = b->o.batch;
    for (k = 0; k < nbatches; k++) {
        long first = from + k * batch;
        int used[MAX_NODES] = {0};
        for (i = 0; i < batch; i++) {
            const op *o = &b->ops[(first + i) % b->nops];
            int node = b->key_node[o->key];
            int argc = op_argv(o, &b->keys, argv, lens);
            if (redisAppendCommandArgv(b->ctx[node], argc, argv, lens) != REDIS_OK)
                die("hiredis append: %s", b->ctx[node]->errstr);
            used[node] = 1;
        }
        /* every node's share out before any reply is awaited */
        for (i = 0; i < b->nnodes; i++) {
            int done = 0;
            if (!used[i]) continue;
            while (!done)
                if (redisBufferWrite(b->ctx[i], &done) != REDIS_OK)
                    die("hiredis write to %s: %s", b->node_addr[i], b->ctx[i]->errstr);
        }
        for (i = 0; i < batch; i++) {
            const op *o = &b->ops[(first + i) % b->nops];
            redisContext *ctx = b->ctx[b->key_node[o->key]];
            redisReply *r = NULL;
            if (redisGetReply(ctx, (void **)&r) != REDIS_OK) r = NULL;
            check_direct(o, r, ctx);
        }
    }
}

static void pipeline_sg(bench *b, long from, long nbatches) {
    const char *argv[3];
    size_t lens[3];
    long k;
    int i, batch = b->o.batch, rc;
    for (k = 0; k < nbatches; k++) {
        long first = from + k * batch;
        for (i = 0; i < batch; i++) {
            const op *o = &b->ops[(first + i) % b->nops];
            int argc = op_argv(o, &b->keys, argv, lens);
            if (sg_pipeline_append_argv(b->pipe, argc, argv, lens) != SG_OK)
                die("sg_pipeline_append_argv: %s", sg_errmsg(b->client));
        }
        if ((rc = sg_pipeline_exec(b->pipe)) != SG_OK)
            die("sg_pipeline_exec: %s: %s", sg_errname(rc), sg_errmsg(b->client));
        for (i = 0; i < batch; i++) {
            int status;
            const char *msg;
            const sg_reply *r = sg_pipeline_reply(b->pipe, (size_t)i, &status, &msg);
            check_sg(&b->ops[(first + i) % b->nops], r, status, msg);
        }
        sg_pipeline_reset(b->pipe);
    }
}

/* ---- rounds -------------------------------------------------------------------- */

typedef void (*runner)(bench *b, long from, long n);

static sample timed(bench *b, runner fn, long from, long n, long ops) {
    stopwatch sw = stopwatch_start();
    fn(b, from, n);
    return stopwatch_sample(&sw, ops);
}

/* Rounds of one workload; n is per side per round (ops, or batches), ops
 * the operations that makes. */
static void workload(bench *b, const char *name, runner sg_fn, runner direct_fn, long n,
                     long ops) {
    double sg_ops[MAX_ROUNDS], d_ops[MAX_ROUNDS], sg_cpu[MAX_ROUNDS], d_cpu[MAX_ROUNDS],
        ratio[MAX_ROUNDS];
    long unit = ops / n; /* ops per unit of n */
    int r;
    /* warm-up, untimed: connections, caches, allocator */
    sg_fn(b, 0, n / 10 + 1);
    direct_fn(b, 0, n / 10 + 1);
    if (b->o.side) {
        /* one side alone, for a profiler: no ratio */
        for (r = 0; r < b->o.rounds; r++) {
            sample s = timed(b, b->o.side == 1 ? sg_fn : direct_fn, (long)r * n * unit, n, ops);
            printf("round %-2d %-8s %-8s %9.0f ops/s %6.2f cpu-us/op\n", r + 1, name,
                   b->o.side == 1 ? "slotgate" : "direct", s.ops_s, s.cpu_us);
        }
        return;
    }
    for (r = 0; r < b->o.rounds; r++) {
        long from = (long)r * n * unit; /* each round its own slice of the ops */
        sample s, d;
        if (r % 2 == 0) {
            s = timed(b, sg_fn, from, n, ops);
            d = timed(b, direct_fn, from, n, ops);
        } else {
            d = timed(b, direct_fn, from, n, ops);
            s = timed(b, sg_fn, from, n, ops);
        }
        sg_ops[r] = s.ops_s, sg_cpu[r] = s.cpu_us;
        d_ops[r] = d.ops_s, d_cpu[r] = d.cpu_us;
        ratio[r] = s.ops_s / d.ops_s;
        printf("round %-2d %-8s %-6s slotgate %9.0f ops/s %6.2f cpu-us/op | direct %9.0f ops/s "
               "%6.2f cpu-us/op | ratio %.3f\n",
               r + 1, name, r % 2 ? "(D,S)" : "(S,D)", s.ops_s, s.cpu_us, d.ops_s, d.cpu_us,
               ratio[r]);
        fflush(stdout);
    }
    {
        double ms = median(sg_ops, b->o.rounds), md = median(d_ops, b->o.rounds);
        double cs = median(sg_cpu, b->o.rounds), cd = median(d_cpu, b->o.rounds);
        printf("RESULT %s slotgate=%.0f direct=%.0f ratio=%.4f paired_ratio=%.4f "
               "slotgate_cpu_us=%.3f direct_cpu_us=%.3f cpu_ratio=%.4f rounds=%d ops=%ld\n",
               name, ms, md, ms / md, median(ratio, b->o.rounds), cs, cd, cs / cd,
               b->o.rounds, ops);
        fflush(stdout);
    }
}

/* ---- slotgate's own view: commands per node ----------------------------------- */

static void snapshot_sg(bench *b) {
    int i, n = sg_client_node_count(b->client);
    for (i = 0; i < n && i < MAX_NODES * 4; i++) {
        sg_node_stats st;
        if (sg_client_node_stats(b->client, i, &st) == SG_OK) b->sg_before[i] = st.commands;
    }
}

/* Prints commands per node since the snapshot; 0 when the masters shared
 * them and no replica got any. */
static int report_spread(bench *b) {
    int i, n = sg_client_node_count(b->client), masters = 0, bad = 0;
    uint64_t total = 0, d[MAX_NODES * 4] = {0};
    for (i = 0; i < n && i < MAX_NODES * 4; i++) {
        sg_node_stats st;
        if (sg_client_node_stats(b->client, i, &st) != SG_OK) continue;
        d[i] = st.commands - b->sg_before[i];
        total += d[i];
    }
    printf("# slotgate commands per node during the rounds (sg_client_node_stats):\n");
    for (i = 0; i < n && i < MAX_NODES * 4; i++) {
        sg_node_stats st;
        if (sg_client_node_stats(b->client, i, &st) != SG_OK) continue;
        printf("#   %-21s %-7s %9llu commands (%4.1f%%), %llu errors, %llu connects, %d conns\n",
               st.addr, st.is_master ? "master" : "replica", (unsigned long long)d[i],
               total ? 100.0 * (double)d[i] / (double)total : 0.0,
               (unsigned long long)st.errors, (unsigned long long)st.connects, st.conns);
        if (st.is_master) {
            masters++;
            if (d[i] == 0) bad++;
        } else if (d[i] > 0) {
            bad++;
        }
        if (st.errors > 0 || st.moved > 0 || st.ask > 0) bad++;
    }
    printf("SPREAD masters=%d total=%llu %s\n", masters, (unsigned long long)total,
           bad || masters != b->nnodes ? "BAD" : "ok");
    return bad || masters != b->nnodes;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: bench_engine [--addrs H:P,...] [--keys N] [--rounds R]\n"
            "                    [--blocking-ops N] [--batches N] [--batch N]\n"
            "                    [--only blocking|pipeline] [--seed S]\n"
            "                    [--side slotgate|direct]  (one side only, for a profiler)\n"
            "--addrs defaults to $SG_TEST_CLUSTER\n");
    exit(2);
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {{"addrs", required_argument, NULL, 'a'},
                                             {"keys", required_argument, NULL, 'k'},
                                             {"rounds", required_argument, NULL, 'r'},
                                             {"blocking-ops", required_argument, NULL, 'n'},
                                             {"batches", required_argument, NULL, 'p'},
                                             {"batch", required_argument, NULL, 'b'},
                                             {"only", required_argument, NULL, 'o'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"side", required_argument, NULL, 'S'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bench *b = calloc(1, sizeof *b);
    sg_config *cfg;
    int ch, rc, i, fail;
    if (b == NULL) die("out of memory");
    b->o.keys = 16384;
    b->o.rounds = 7;
    b->o.blocking_ops = 4000;
    b->o.batches = 300;
    b->o.batch = 100;
    b->o.do_blocking = b->o.do_pipeline = 1;
    b->o.seed = 20240601;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'a': b->o.addrs = optarg; break;
        case 'k': b->o.keys = (int)arg_long(optarg, 1, 16384, "--keys"); break;
        case 'r': b->o.rounds = (int)arg_long(optarg, 1, MAX_ROUNDS, "--rounds"); break;
        case 'n': b->o.blocking_ops = arg_long(optarg, 1, 100000000, "--blocking-ops"); break;
        case 'p': b->o.batches = arg_long(optarg, 1, 10000000, "--batches"); break;
        case 'b': b->o.batch = (int)arg_long(optarg, 1, 100000, "--batch"); break;
        case 's': b->o.seed = (unsigned long long)arg_long(optarg, 1, 0x7fffffffL, "--seed"); break;
        case 'S':
            if (strcmp(optarg, "slotgate") == 0) b->o.side = 1;
            else if (strcmp(optarg, "direct") == 0) b->o.side = 2;
            else usage();
            break;
        case 'o':
            if (strcmp(optarg, "blocking") == 0) b->o.do_pipeline = 0;
            else if (strcmp(optarg, "pipeline") == 0) b->o.do_blocking = 0;
            else usage();
            break;
        default: usage();
        }
    }
    if (optind != argc) usage();
    b->o.addrs = cluster_addrs(b->o.addrs);
    rng_seed(b->o.seed);

    /* direct side */
    load_slot_map(b);
    make_keys(b);
    make_ops(b);

    /* slotgate side: settings from an env array, as a Tyk gateway would give them */
    cfg = cluster_config(b->o.addrs);
    b->client = sg_client_new(cfg, NULL, NULL);
    sg_config_free(cfg);
    if (b->client == NULL) die("sg_client_new: out of memory");
    if (sg_errcode(b->client) != SG_OK) die("sg_client_new: %s", sg_errmsg(b->client));
    if ((rc = sg_client_connect(b->client)) != SG_OK)
        die("sg_client_connect: %s", sg_errmsg(b->client));
    if ((b->pipe = sg_pipeline_new(b->client)) == NULL) die("out of memory");

    printf("# bench_engine: libslotgate %s vs hiredis %d.%d.%d (sync), %d masters (%s",
           sg_version(), HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, b->nnodes, b->node_addr[0]);
    for (i = 1; i < b->nnodes; i++) printf(", %s", b->node_addr[i]);
    printf(")\n# %d keys over %d slots, 50%% SET (16..100-byte values) / 50%% GET, seed %llu\n",
           b->o.keys, b->o.keys, b->o.seed);
    printf("# %d rounds per workload, sides alternating; blocking: %ld ops per side per round; "
           "pipeline: %ld batches of %d per side per round\n",
           b->o.rounds, b->o.blocking_ops, b->o.batches, b->o.batch);
    fflush(stdout);

    /* every key exists before the GETs: one SET per key, direct, pipelined */
    {
        const char *av[3];
        size_t lens[3];
        for (i = 0; i < b->o.keys; i++) {
            op o = b->ops[i];
            redisContext *ctx = b->ctx[b->key_node[i]];
            o.set = 1, o.key = i;
            op_argv(&o, &b->keys, av, lens);
            redisAppendCommandArgv(ctx, 3, av, lens);
        }
        for (i = 0; i < b->o.keys; i++) {
            redisReply *r;
            redisContext *ctx = b->ctx[b->key_node[i]];
            if (redisGetReply(ctx, (void **)&r) != REDIS_OK) die("populating: %s", ctx->errstr);
            freeReplyObject(r);
        }
    }

    snapshot_sg(b);
    if (b->o.do_blocking)
        workload(b, "blocking", blocking_sg, blocking_direct, b->o.blocking_ops, b->o.blocking_ops);
    if (b->o.do_pipeline)
        workload(b, "pipeline", pipeline_sg, pipeline_direct, b->o.batches,
                 b->o.batches * b->o.batch);
    fail = report_spread(b);
    if (bad_replies) {
        printf("# %ld unexpected replies\n", bad_replies);
        fail = 1;
    }

    sg_pipeline_free(b->pipe);
    sg_client_free(b->client);
    for (i = 0; i < b->nnodes; i++) redisFree(b->ctx[i]);
    keyset_free(&b->keys);
    free(b->key_node);
    free(b->ops);
    free(b->pool);
    free(b);
    return fail;
}
