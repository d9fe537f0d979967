/*
 * bench_policy.c — what a policy costs a command: sg_gateway_call_argv() on a
 * blocking gateway in front of a real Redis Cluster, with no policy, with a
 * declarative prefix, with a Lua rewrite_key hook that adds the same
 * prefix, and with one that also runs Lua patterns on the key (what
 * string.find/match cost a policy), side by side in one process.
 *
 * The three variants send exactly the same commands to exactly the same keys
 * on the same connections (one gateway; the policy is switched between
 * rounds with sg_gateway_set_policy):
 *
 *   none    no policy; the program sends "p:KEY" itself.
 *   prefix  the script  return {prefix = "p:"}                 sends KEY
 *   hook    the script  return {rewrite_key = function(k)
 *                                  return "p:" .. k end}        sends KEY
 *   pattern the script  return {rewrite_key = function(k)
 *                                  -- string.match, a find with a pattern and
 *                                  -- a plain find on every key
 *                                  ...  return "p:" .. k end}  sends KEY
 *   client  (reference) sg_client_call_argv() on the gateway's own client of
 *           "default" (sg_gateway_client), sending "p:KEY": what the gateway
 *           layer itself costs, policies aside.
 *
 * The work is a 50/50 random mix of SET (values of 16..100 bytes) and GET
 * over N keys spread over all 16384 slots; every reply is checked (SET: +OK,
 * GET: a string). Rounds run every variant on the same slice of operations,
 * the order rotated each round (none prefix hook client, prefix hook client
 * none, ...), so a slow spell of this shared machine falls on all of them.
 * Each round prints each variant's ops/sec and the client's CPU time per
 * operation (the process CPU clock). At the end, lines starting with
 * "RESULT" that bench/policy.sh collects across runs: per variant the median
 * ops/sec and CPU µs/op, the overhead against "none" (median none ops/sec
 * over median variant ops/sec, minus 1: extra time per command), the median
 * of the per-round overheads, and the extra CPU µs per command.
 *
 *   bench_policy [--addrs H:P,...] [--keys N] [--rounds R] [--ops N]
 *                [--seed S] [--only none|prefix|hook|pattern|client]
 *
 * --addrs defaults to $SG_TEST_CLUSTER (the harness's servers.env). --only
 * runs one variant alone (no ratios): for perf or callgrind (the runner is
 * run_ops; the policy code is sg_policy_apply).
 * Exit status: 0, 1 on a failed check or error, 2 on bad usage.
 */
#include <getopt.h>

#define BENCH_NAME "bench_policy"
#include "bench.h"

#define MAX_ROUNDS 200
#define NVARIANTS 5
#define PREFIX "p:"

enum { V_NONE, V_PREFIX, V_HOOK, V_PATTERN, V_CLIENT };
static const char *const variant_name[NVARIANTS] = {"none", "prefix", "hook", "pattern", "client"};

static const char *const prefix_script = "return {name = 'prefix', prefix = '" PREFIX "'}";
static const char *const hook_script =
    "return {name = 'hook', rewrite_key = function(k) return '" PREFIX "' .. k end}";
/* the kind of checks a policy makes of a key: a namespace, a number at the
 * end, a word it must not contain; every key passes them */
static const char *const pattern_script =
    "return {name = 'pattern', rewrite_key = function(k)"
    " local ns = k:match('^(%w+):') local at = k:find('%d+$')"
    " if not ns or not at or k:find('secret', 1, true) then error('bad key ' .. k) end"
    " return '" PREFIX "' .. k end}";

typedef struct bench {
    const char *addrs;
    int keys, rounds, only;
    long nops_round;
    unsigned long long seed;
    keyset key;           /* KEY */
    keyset pkey;          /* p:KEY, key i in slot i*16384/N */
    op *ops;
    long nops;
    char *pool;
    sg_gateway *gw;
    sg_client *client;    /* the gateway's "default" client */
    sg_policy *policy[NVARIANTS];
} bench;

/* N keys, the prefixed key of key i in slot i*16384/N: every variant's
 * commands spread over all the masters the same way. */
static void make_keys(bench *b) {
    size_t skip = strlen(PREFIX);
    int i;
    keyset_spread(&b->pkey, b->keys, PREFIX "sgpol:");
    keyset_alloc(&b->key, b->keys);
    for (i = 0; i < b->keys; i++) {
        memcpy(b->key.name[i], b->pkey.name[i] + skip, b->pkey.len[i] - skip + 1);
        b->key.len[i] = b->pkey.len[i] - skip;
    }
}

static void make_ops(bench *b) {
    b->nops = b->nops_round * (b->rounds + 1);
    b->ops = random_ops(b->nops, b->keys, &b->pool);
}

static void check(const op *o, const sg_reply *r, const void *handle) {
    if (r == NULL) die("%s: %s", sg_errname(sg_errcode(handle)), sg_errmsg(handle));
    check_sg_reply("", o, r);
}

/* Operations [from, from+n) as variant v: the runner a profiler looks at. */
static void run_ops(bench *b, int v, long from, long n) {
    const char *argv[3];
    size_t lens[3];
    long i;
    /* none and client: the program adds "p:" itself */
    const keyset *ks = v == V_NONE || v == V_CLIENT ? &b->pkey : &b->key;
    static const sg_request_ctx ctx = {.user = "bench", .client = "bench_policy",
                                       .addr = "127.0.0.1:0"};
    for (i = from; i < from + n; i++) {
        const op *o = &b->ops[i % b->nops];
        int argc = op_argv(o, ks, argv, lens);
        sg_reply *r;
        if (v == V_CLIENT) {
            r = sg_client_call_argv(b->client, argc, argv, lens);
            check(o, r, b->client);
        } else {
            r = sg_gateway_call_argv(b->gw, &ctx, argc, argv, lens);
            check(o, r, b->gw);
        }
        sg_reply_free(r);
    }
}

static sample timed(bench *b, int v, long from, long n) {
    stopwatch sw;
    sg_gateway_set_policy(b->gw, b->policy[v]);
    sw = stopwatch_start();
    run_ops(b, v, from, n);
    return stopwatch_sample(&sw, n);
}

static void rounds(bench *b) {
    static double ops[NVARIANTS][MAX_ROUNDS], cpu[NVARIANTS][MAX_ROUNDS],
        over[NVARIANTS][MAX_ROUNDS];
    long n = b->nops_round;
    int r, k, v;
    /* warm-up, untimed: connections, caches, the allocator, Lua's strings */
    for (v = 0; v < NVARIANTS; v++)
        if (b->only < 0 || b->only == v) timed(b, v, 0, n / 5 + 1);
    for (r = 0; r < b->rounds; r++) {
        long from = (long)(r + 1) * n; /* each round its own slice */
        sample s[NVARIANTS];
        if (b->only >= 0) {
            s[b->only] = timed(b, b->only, from, n);
            printf("round %-2d %-6s %9.0f ops/s %6.2f cpu-us/op\n", r + 1, variant_name[b->only],
                   s[b->only].ops_s, s[b->only].cpu_us);
            fflush(stdout);
            continue;
        }
        for (k = 0; k < NVARIANTS; k++) {
            v = (r + k) % NVARIANTS;
            s[v] = timed(b, v, from, n);
        }
        printf("round %-2d", r + 1);
        for (v = 0; v < NVARIANTS; v++) {
            ops[v][r] = s[v].ops_s;
            cpu[v][r] = s[v].cpu_us;
            over[v][r] = s[V_NONE].ops_s / s[v].ops_s - 1;
            printf(" | %s %7.0f ops/s %5.2f us", variant_name[v], s[v].ops_s, s[v].cpu_us);
            if (v != V_NONE) printf(" %+5.1f%%", 100 * over[v][r]);
        }
        printf("\n");
        fflush(stdout);
    }
    if (b->only >= 0) return;
    {
        double none_ops = median(ops[V_NONE], b->rounds), none_cpu = median(cpu[V_NONE], b->rounds);
        for (v = 0; v < NVARIANTS; v++) {
            double mo = median(ops[v], b->rounds), mc = median(cpu[v], b->rounds);
            printf("RESULT %s ops=%.0f cpu_us=%.3f overhead=%.4f paired_overhead=%.4f "
                   "extra_cpu_us=%.3f rounds=%d ops_per_round=%ld\n",
                   variant_name[v], mo, mc, none_ops / mo - 1, median(over[v], b->rounds),
                   mc - none_cpu, b->rounds, n);
        }
        fflush(stdout);
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_policy [--addrs H:P,...] [--keys N] [--rounds R] [--ops N]\n"
            "                    [--seed S] [--only none|prefix|hook|pattern|client]\n"
            "--addrs defaults to $SG_TEST_CLUSTER\n");
    exit(2);
}

static sg_policy *policy_of(const char *name, const char *code) {
    sg_policy *p = sg_policy_new();
    if (p == NULL) die("out of memory");
    if (sg_policy_load_string(p, name, code) != SG_OK) die("policy %s: %s", name, sg_errmsg(p));
    return p;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"addrs", required_argument, NULL, 'a'}, {"keys", required_argument, NULL, 'k'},
        {"rounds", required_argument, NULL, 'r'}, {"ops", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},  {"only", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    bench *b = calloc(1, sizeof *b);
    sg_config *cfg;
    sg_policy_stats st;
    int ch, i, v, fail = 0;
    if (b == NULL) die("out of memory");
    b->keys = 16384;
    b->rounds = 25;
    b->nops_round = 1000;
    b->seed = 20240601;
    b->only = -1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'a': b->addrs = optarg; break;
        case 'k': b->keys = (int)arg_long(optarg, 1, 16384, "--keys"); break;
        case 'r': b->rounds = (int)arg_long(optarg, 1, MAX_ROUNDS, "--rounds"); break;
        case 'n': b->nops_round = arg_long(optarg, 1, 10000000, "--ops"); break;
        case 's': b->seed = (unsigned long long)arg_long(optarg, 1, 0x7fffffffL, "--seed"); break;
        case 'o':
            for (v = 0; v < NVARIANTS && strcmp(optarg, variant_name[v]) != 0; v++) continue;
            if (v == NVARIANTS) usage();
            b->only = v;
            break;
        default: usage();
        }
    }
    if (optind != argc) usage();
    b->addrs = cluster_addrs(b->addrs);
    rng_seed(b->seed);
    make_keys(b);
    make_ops(b);

    /* the gateway: settings from an env array, as a Tyk gateway would give them */
    cfg = cluster_config(b->addrs);
    b->gw = sg_gateway_new(cfg, NULL);
    sg_config_free(cfg);
    if (b->gw == NULL) die("out of memory");
    if (sg_errcode(b->gw) != SG_OK) die("sg_gateway_new: %s", sg_errmsg(b->gw));
    if ((b->client = sg_gateway_client(b->gw, "default")) == NULL)
        die("sg_gateway_client: %s", sg_errmsg(b->gw));
    if (sg_client_connect(b->client) != SG_OK) die("connect: %s", sg_errmsg(b->client));
    b->policy[V_NONE] = b->policy[V_CLIENT] = NULL;
    b->policy[V_PREFIX] = policy_of("prefix.lua", prefix_script);
    b->policy[V_HOOK] = policy_of("hook.lua", hook_script);
    b->policy[V_PATTERN] = policy_of("pattern.lua", pattern_script);

    printf("# bench_policy: libslotgate %s, blocking gateway (sg_gateway_call_argv) on %s\n",
           sg_version(), b->addrs);
    printf("# %d keys over %d slots, 50%% SET (16..100-byte values) / 50%% GET, seed %llu;"
           " %d rounds of %ld ops per variant\n",
           b->keys, b->keys, b->seed, b->rounds, b->nops_round);
    printf("# none: no policy | prefix: %s | hook: %s | pattern: %s"
           " | client: sg_client_call_argv\n",
           prefix_script, hook_script, pattern_script);
    fflush(stdout);

    /* every key exists before the GETs: one SET per key, pipelined */
    {
        sg_pipeline *p = sg_pipeline_new(b->client);
        if (p == NULL) die("out of memory");
        for (i = 0; i < b->keys; i++) {
            const char *av[3] = {"SET", b->pkey.name[i], "x"};
            size_t lens[3] = {3, b->pkey.len[i], 1};
            sg_pipeline_append_argv(p, 3, av, lens);
        }
        if (sg_pipeline_exec(p) != SG_OK) die("populating: %s", sg_errmsg(b->client));
        for (i = 0; i < b->keys; i++) {
            int status;
            const char *msg;
            if (sg_pipeline_reply(p, (size_t)i, &status, &msg) == NULL)
                die("populating: %s", msg ? msg : sg_errname(status));
        }
        sg_pipeline_free(p);
    }

    rounds(b);

    /* the policies did what they should: every command rewritten, no hook failed */
    for (v = V_PREFIX; v <= V_PATTERN; v++) {
        sg_policy_stats_get(b->policy[v], &st);
        printf("# policy %-7s: %llu commands, %llu rewritten, %llu hook calls, %llu hook errors\n",
               variant_name[v], (unsigned long long)st.commands, (unsigned long long)st.rewritten,
               (unsigned long long)st.hook_calls,
               (unsigned long long)(st.hook_errors + st.hook_timeouts));
        if (st.rewritten != st.commands || st.hook_errors || st.hook_timeouts ||
            (v >= V_HOOK && st.hook_calls != st.commands) || (b->only < 0 && st.commands == 0))
            fail = 1;
    }
    if (bad_replies) {
        printf("# %ld unexpected replies\n", bad_replies);
        fail = 1;
    }
    printf("CHECK %s\n", fail ? "BAD" : "ok");

    sg_gateway_free(b->gw);
    for (v = 0; v < NVARIANTS; v++) sg_policy_free(b->policy[v]);
    keyset_free(&b->key);
    keyset_free(&b->pkey);
    free(b->ops);
    free(b->pool);
    free(b);
    return fail;
}
