/*
 * bench.h — what bench_engine.c and bench_policy.c share: errors and usage
 * checks, the seeded random sequence, the clocks of a timed round, medians,
 * the keys (one per slot stride) and the random SET/GET operations both run,
 * the check on a reply, and the cluster's settings.
 *
 * Header only, every function static: each benchmark is one .c file built
 * with one cc command (bench/common.sh). Define BENCH_NAME, the program's
 * name for its messages, before including it.
 */
#ifndef SLOTGATE_BENCH_H
#define SLOTGATE_BENCH_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slotgate.h"

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench.h"
#endif

#define MEDIAN_MAX 256 /* the most values median() takes: at least any MAX_ROUNDS */

/* ---- errors and options -------------------------------------------------------- */

/* Prints "BENCH_NAME: message" on stderr and exits 1. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    fputs(BENCH_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* The integer s, for option what; exits 2 (bad usage) unless it is one in lo..hi. */
static long arg_long(const char *s, long lo, long hi, const char *what) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, BENCH_NAME ": %s: \"%s\" is not an integer in %ld..%ld\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

/* The cluster to use: given (--addrs), else $SG_TEST_CLUSTER (the harness's
 * servers.env); dies when that is empty. */
static const char *cluster_addrs(const char *given) {
    const char *addrs = given ? given : getenv("SG_TEST_CLUSTER");
    if (addrs == NULL || addrs[0] == '\0')
        die("no cluster: give --addrs or set SG_TEST_CLUSTER (from the harness's servers.env)");
    return addrs;
}

/* Settings for the cluster at addrs, from an env array as a Tyk gateway would
 * give them; the caller frees them with sg_config_free(). */
static sg_config *cluster_config(const char *addrs) {
    char addrs_env[1024];
    const char *env[] = {"TYK_GW_STORAGE_ENABLECLUSTER=true", addrs_env, NULL};
    sg_config *cfg;
    snprintf(addrs_env, sizeof addrs_env, "TYK_GW_STORAGE_ADDRS=%s", addrs);
    if ((cfg = sg_config_new()) == NULL) die("out of memory");
    if (sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env) != SG_OK)
        die("sg_config_load: %s", sg_errmsg(cfg));
    return cfg;
}

/* ---- random numbers ------------------------------------------------------------- */

/* xorshift64*: the same sequence for a seed on every machine. */
static unsigned long long rng_state;
static void rng_seed(unsigned long long seed) { rng_state = seed * 0x9E3779B97F4A7C15ULL + 1; }
static unsigned long long rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* ---- timing and medians ------------------------------------------------------------ */

typedef struct sample {
    double ops_s;  /* wall-clock ops/sec */
    double cpu_us; /* process CPU µs per op (user + kernel) */
} sample;

typedef struct stopwatch {
    double wall, cpu; /* the clocks at the start, in seconds */
} stopwatch;

static double now_s(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads the wall clock, then the process's CPU clock. */
static stopwatch stopwatch_start(void) {
    stopwatch sw;
    sw.wall = now_s(CLOCK_MONOTONIC);
    sw.cpu = now_s(CLOCK_PROCESS_CPUTIME_ID);
    return sw;
}

/* What ops operations since sw made: reads the CPU clock, then the wall clock
 * (the CPU interval inside the wall one). */
static sample stopwatch_sample(const stopwatch *sw, long ops) {
    sample s;
    s.cpu_us = (now_s(CLOCK_PROCESS_CPUTIME_ID) - sw->cpu) * 1e6 / (double)ops;
    s.ops_s = (double)ops / (now_s(CLOCK_MONOTONIC) - sw->wall);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n), 1 <= n <= MEDIAN_MAX; v is left as it is. */
static double median(const double *v, int n) {
    double tmp[MEDIAN_MAX];
    if (n < 1 || n > MEDIAN_MAX) die("median of %d values", n);
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* ---- the work: keys and operations ------------------------------------------------ */

typedef struct keyset {
    int n;
    char (*name)[32]; /* NUL-terminated */
    size_t *len;
} keyset;

/* Room for n keys, all empty. */
static void keyset_alloc(keyset *k, int n) {
    k->n = n;
    k->name = calloc((size_t)n, sizeof *k->name);
    k->len = calloc((size_t)n, sizeof *k->len);
    if (!k->name || !k->len) die("out of memory");
}

/* n keys named STEM<number>, key i in slot i*16384/n (so every slot has one
 * when n is 16384): the commands on them spread over the masters as the
 * slots do. */
static void keyset_spread(keyset *k, int n, const char *stem) {
    int i, filled = 0;
    int *want = malloc(16384 * sizeof *want); /* slot -> the key that wants it, or -1 */
    unsigned long c;
    if (!want) die("out of memory");
    keyset_alloc(k, n);
    for (i = 0; i < 16384; i++) want[i] = -1;
    for (i = 0; i < n; i++) want[(int)((long long)i * 16384 / n)] = i;
    for (c = 0; filled < n && c < 100000000UL; c++) {
        char name[32];
        int len = snprintf(name, sizeof name, "%s%lu", stem, c);
        unsigned slot = sg_keyslot(name, (size_t)len);
        int at = want[slot];
        if (at < 0) continue;
        memcpy(k->name[at], name, (size_t)len + 1);
        k->len[at] = (size_t)len;
        want[slot] = -1;
        filled++;
    }
    if (filled != n) die("could not make %d keys", n);
    free(want);
}

static void keyset_free(keyset *k) {
    free(k->name);
    free(k->len);
}

typedef struct op {
    int set;         /* 1: SET key value, 0: GET key */
    int key;         /* index into the keys */
    const char *val; /* SET: points into the value pool */
    size_t vlen;
} op;

/* n operations from the random sequence: half SET (values of 16..100
 * printable bytes, pointing into *pool, which the caller frees) and half GET,
 * on keys 0..nkeys-1. */
static op *random_ops(long n, int nkeys, char **pool) {
    size_t poolsz = 1 << 16, k;
    op *ops = calloc((size_t)n, sizeof *ops);
    long i;
    *pool = malloc(poolsz + 128);
    if (!ops || !*pool) die("out of memory");
    for (k = 0; k < poolsz + 128; k++) (*pool)[k] = (char)('!' + rng() % 94);
    for (i = 0; i < n; i++) {
        op *o = &ops[i];
        o->set = (int)(rng() & 1);
        o->key = (int)(rng() % (unsigned long long)nkeys);
        o->vlen = 16 + (size_t)(rng() % 85); /* 16..100 */
        o->val = *pool + rng() % poolsz;
    }
    return ops;
}

/* The command of operation o on its key in ks (argv[2] only for a SET);
 * returns argc. */
static int op_argv(const op *o, const keyset *ks, const char **argv, size_t *lens) {
    argv[1] = ks->name[o->key];
    lens[1] = ks->len[o->key];
    if (o->set) {
        argv[0] = "SET", lens[0] = 3;
        argv[2] = o->val, lens[2] = o->vlen;
        return 3;
    }
    argv[0] = "GET", lens[0] = 3;
    return 2;
}

/* ---- checks on replies ------------------------------------------------------------ */

static long bad_replies;

/* Counts a reply that is not what its operation should get, and describes the
 * first five on stderr: "BENCH_NAME: SIDE SET: unexpected reply type ...". */
static void bad_reply(const char *side, const op *o, int type, const char *str) {
    if (bad_replies++ < 5)
        fprintf(stderr, BENCH_NAME ": %s%s: unexpected reply type %d %s\n", side,
                o->set ? "SET" : "GET", type, str ? str : "");
}

/* Checks slotgate's reply r (not NULL) to o: +OK for a SET, a string for a GET. */
static void check_sg_reply(const char *side, const op *o, const sg_reply *r) {
    if (o->set ? r->type != SG_REPLY_STATUS || strcmp(r->str, "OK") != 0
               : r->type != SG_REPLY_STRING)
        bad_reply(side, o, r->type, r->str);
}

#endif
