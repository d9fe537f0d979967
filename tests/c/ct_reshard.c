/*
 * ct_reshard.c — resharding under load, against the harness's 6-node
 * cluster (SG_TEST_CLUSTER).
 *
 * A blocking client writes and reads without pause: SET then GET of single
 * keys, MSET/MGET/EXISTS across slots (split by the client, with two keys of
 * one slot in the same part), INCR of counters, and a pipeline of mixed
 * commands, every round. Meanwhile a second thread of the test moves 16 slots
 * that hold those keys from the master of slot 0 to the master of slot 16383
 * (as the cluster is when the test starts) by hand, as an operator
 * (or redis-cli --cluster reshard) does: CLUSTER SETSLOT IMPORTING on the
 * target, MIGRATING on the source, MIGRATE of the slot's keys in small
 * batches, then SETSLOT NODE on the target, the source and the other master.
 * Each step waits for the client to finish a round (or 300 ms), so the client
 * meets every state: a slot half moved (ASK for the keys already gone,
 * TRYAGAIN for a multi-key part that straddles the two nodes), a slot fully
 * moved but still migrating (ASK for all), and a slot given away (MOVED).
 * Then the same slots move back, still under load.
 *
 * Asserts: no command fails and no reply is other than expected (every value
 * read is the last one written, every counter counts every INCR); ASK and
 * MOVED were both received (sg_client_node_stats, summed over nodes); at the
 * end every key is on its original master and no key of the moved slots is
 * left on another master, and the cluster is as it was: every node reports
 * the same CLUSTER SLOTS as before (ids, addresses, replicas),
 * cluster_state:ok, nothing migrating. When a step fails, the slots are put
 * back whatever state they were left in (restore_slot), so the cluster stays
 * usable for the other tests. Bounded: the load phase stops after 45 s
 * whatever happens, the final wait after 20 s.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cluster_ops.h"
#include "slotgate.h"
#include "test.h"

#define NPLAIN 1000    /* k:0 .. k:999, all over the slots */
#define NGROUPS 4      /* hash-tagged groups, each in one migrated slot */
#define GROUP_KEYS 24  /* keys per group, plus one counter */
#define NMIG_PLAIN 12  /* migrated slots that hold one of the plain keys */
#define WINDOW 40      /* more plain keys per round, a window moving over all */
#define BATCH 4        /* keys per MIGRATE */
#define LOAD_LIMIT_MS 45000
#define MAX_SHOWN 30

/* ---- what the cluster should hold ---------------------------------------------- */

static char group_tag[NGROUPS][16];
static int group_slot[NGROUPS];
static unsigned long long want_plain[NPLAIN];
static unsigned long long want_group[NGROUPS][GROUP_KEYS];
static long long want_cnt[NGROUPS];
static int mig_plain[NMIG_PLAIN]; /* indexes of plain keys in migrated slots */
static unsigned long long next_value = 1;

static int bad; /* wrong outcomes seen */
static int rounds;
static atomic_int client_rounds;
static atomic_int stop_load;

#define BAD(...)                                                               \
    do {                                                                       \
        if (++bad <= MAX_SHOWN) OPS_SHOW(__VA_ARGS__);                          \
    } while (0)

static void plain_key(int i, char *out, size_t n) { snprintf(out, n, "k:%d", i); }
static void group_key(int g, int j, char *out, size_t n) {
    snprintf(out, n, "{%.40s}:%d", group_tag[g], j);
}
static void cnt_key(int g, char *out, size_t n) { snprintf(out, n, "{%.40s}:cnt", group_tag[g]); }
static void value_of(unsigned long long v, char *out, size_t n) { snprintf(out, n, "v%llu", v); }

/* ---- checking replies --------------------------------------------------------- */

static const char *reply_text(const sg_reply *r) {
    static char buf[256];
    if (r == NULL) return "(no reply)";
    switch (r->type) {
    case SG_REPLY_STRING: snprintf(buf, sizeof buf, "\"%.200s\"", r->str); break;
    case SG_REPLY_STATUS: snprintf(buf, sizeof buf, "+%.200s", r->str); break;
    case SG_REPLY_ERROR: snprintf(buf, sizeof buf, "-%.200s", r->str); break;
    case SG_REPLY_INTEGER: snprintf(buf, sizeof buf, ":%lld", r->integer); break;
    case SG_REPLY_NIL: snprintf(buf, sizeof buf, "(nil)"); break;
    case SG_REPLY_ARRAY: snprintf(buf, sizeof buf, "array of %zu", r->elements); break;
    default: snprintf(buf, sizeof buf, "type %d", r->type);
    }
    return buf;
}

static void expect_status(const sg_reply *r, const char *want, const char *what) {
    if (r == NULL || r->type != SG_REPLY_STATUS || strcmp(r->str, want) != 0)
        BAD("%s: got %s, expected +%s", what, reply_text(r), want);
}

static void expect_value(const sg_reply *r, unsigned long long v, const char *what) {
    char want[32];
    value_of(v, want, sizeof want);
    if (r == NULL || r->type != SG_REPLY_STRING || strcmp(r->str, want) != 0)
        BAD("%s: got %s, expected \"%s\"", what, reply_text(r), want);
}

static void expect_int(const sg_reply *r, long long v, const char *what) {
    if (r == NULL || r->type != SG_REPLY_INTEGER || r->integer != v)
        BAD("%s: got %s, expected :%lld", what, reply_text(r), v);
}

/* A blocking call that must not fail. */
static sg_reply *call(sg_client *c, const char *what, int argc, const char **argv) {
    sg_reply *r = sg_client_call_argv(c, argc, argv, NULL);
    if (r == NULL)
        BAD("%s: call failed: %s: %s", what, sg_errname(sg_errcode(c)), sg_errmsg(c));
    return r;
}

/* The outcome of pipeline command i, or NULL after reporting its failure. */
static const sg_reply *pipe_reply(sg_pipeline *p, size_t i, const char *what) {
    int status = SG_OK;
    const char *msg = NULL;
    const sg_reply *r = sg_pipeline_reply(p, i, &status, &msg);
    if (r == NULL)
        BAD("%s (pipeline #%zu): %s: %s", what, i, sg_errname(status), msg ? msg : "");
    return r;
}

/* ---- one round of load ------------------------------------------------------------ */

/* SET every key of every group, GET them back, INCR the counters: one
 * pipeline (each command routed on its own). */
static void round_groups(sg_client *c) {
    sg_pipeline *p = sg_pipeline_new(c);
    char key[64], val[32];
    unsigned long long v[NGROUPS][GROUP_KEYS];
    size_t i = 0;
    int g, j;
    for (g = 0; g < NGROUPS; g++)
        for (j = 0; j < GROUP_KEYS; j++) {
            group_key(g, j, key, sizeof key);
            v[g][j] = next_value++;
            value_of(v[g][j], val, sizeof val);
            sg_pipeline_append(p, "SET %s %s", key, val);
        }
    for (g = 0; g < NGROUPS; g++)
        for (j = 0; j < GROUP_KEYS; j++) {
            group_key(g, j, key, sizeof key);
            sg_pipeline_append(p, "GET %s", key);
        }
    for (g = 0; g < NGROUPS; g++) {
        cnt_key(g, key, sizeof key);
        sg_pipeline_append(p, "INCR %s", key);
    }
    if (sg_pipeline_exec(p) != SG_OK) {
        BAD("group pipeline: %s", sg_errmsg(c));
        sg_pipeline_free(p);
        return;
    }
    for (g = 0; g < NGROUPS; g++)
        for (j = 0; j < GROUP_KEYS; j++, i++) {
            const sg_reply *r = pipe_reply(p, i, "SET group key");
            if (r) expect_status(r, "OK", "SET group key");
            if (r && r->type == SG_REPLY_STATUS) want_group[g][j] = v[g][j];
        }
    for (g = 0; g < NGROUPS; g++)
        for (j = 0; j < GROUP_KEYS; j++, i++) {
            const sg_reply *r = pipe_reply(p, i, "GET group key");
            group_key(g, j, key, sizeof key);
            if (r) expect_value(r, want_group[g][j], key);
        }
    for (g = 0; g < NGROUPS; g++, i++) {
        const sg_reply *r = pipe_reply(p, i, "INCR counter");
        cnt_key(g, key, sizeof key);
        if (r && r->type == SG_REPLY_INTEGER) want_cnt[g]++;
        if (r) expect_int(r, want_cnt[g], key);
    }
    sg_pipeline_free(p);
}

/* SET then GET, one blocking call each, of one plain key. */
static void set_get_plain(sg_client *c, int k) {
    char key[32], val[32];
    unsigned long long v = next_value++;
    const char *argv[3];
    sg_reply *r;
    plain_key(k, key, sizeof key);
    value_of(v, val, sizeof val);
    argv[0] = "SET", argv[1] = key, argv[2] = val;
    if ((r = call(c, key, 3, argv)) != NULL) {
        expect_status(r, "OK", key);
        if (r->type == SG_REPLY_STATUS) want_plain[k] = v;
        sg_reply_free(r);
    }
    argv[0] = "GET";
    if ((r = call(c, key, 2, argv)) != NULL) {
        expect_value(r, want_plain[k], key);
        sg_reply_free(r);
    }
}

/* MSET, MGET and EXISTS across slots: two keys of one group (one part with two
 * keys in one slot), a key of another group, two plain keys in migrated slots,
 * one plain key elsewhere. */
static void round_multi(sg_client *c, int r0) {
    enum { N = 6 };
    char keys[N][64], vals[N][32];
    unsigned long long *slot_of[N], v[N];
    const char *argv[1 + 2 * N];
    int g = r0 % NGROUPS, g2 = (r0 + 1) % NGROUPS, j = r0 % (GROUP_KEYS - 1), i;
    int a = mig_plain[r0 % NMIG_PLAIN], b = mig_plain[(r0 + 5) % NMIG_PLAIN];
    int w = (r0 * 7919) % NPLAIN;
    sg_reply *r;
    group_key(g, j, keys[0], sizeof keys[0]);
    slot_of[0] = &want_group[g][j];
    group_key(g, j + 1, keys[1], sizeof keys[1]);
    slot_of[1] = &want_group[g][j + 1];
    group_key(g2, j, keys[2], sizeof keys[2]);
    slot_of[2] = &want_group[g2][j];
    plain_key(a, keys[3], sizeof keys[3]);
    slot_of[3] = &want_plain[a];
    plain_key(b, keys[4], sizeof keys[4]);
    slot_of[4] = &want_plain[b];
    if (w == a || w == b) w = (w + 1) % NPLAIN;
    plain_key(w, keys[5], sizeof keys[5]);
    slot_of[5] = &want_plain[w];
    if (a == b) return; /* NMIG_PLAIN > 5: never */

    argv[0] = "MSET";
    for (i = 0; i < N; i++) {
        v[i] = next_value++;
        value_of(v[i], vals[i], sizeof vals[i]);
        argv[1 + 2 * i] = keys[i];
        argv[2 + 2 * i] = vals[i];
    }
    if ((r = call(c, "MSET across slots", 1 + 2 * N, argv)) != NULL) {
        expect_status(r, "OK", "MSET across slots");
        if (r->type == SG_REPLY_STATUS)
            for (i = 0; i < N; i++) *slot_of[i] = v[i];
        sg_reply_free(r);
    }
    argv[0] = "MGET";
    for (i = 0; i < N; i++) argv[1 + i] = keys[i];
    if ((r = call(c, "MGET across slots", 1 + N, argv)) != NULL) {
        if (r->type != SG_REPLY_ARRAY || r->elements != N)
            BAD("MGET across slots: got %s, expected %d values", reply_text(r), N);
        else
            for (i = 0; i < N; i++) expect_value(r->element[i], *slot_of[i], keys[i]);
        sg_reply_free(r);
    }
    argv[0] = "EXISTS";
    if ((r = call(c, "EXISTS across slots", 1 + N, argv)) != NULL) {
        expect_int(r, N, "EXISTS across slots");
        sg_reply_free(r);
    }
}

/* A pipeline of mixed commands: SET, GET, INCR, MGET across slots, EXISTS. */
static void round_pipe(sg_client *c, int r0) {
    sg_pipeline *p = sg_pipeline_new(c);
    int k = mig_plain[(r0 + 3) % NMIG_PLAIN], g = (r0 + 2) % NGROUPS, j = r0 % GROUP_KEYS;
    int w = (r0 * 31 + 17) % NPLAIN;
    char key[32], gkey[64], ckey[64], wkey[32], val[32];
    unsigned long long v = next_value++;
    const sg_reply *r;
    plain_key(k, key, sizeof key);
    group_key(g, j, gkey, sizeof gkey);
    cnt_key(g, ckey, sizeof ckey);
    plain_key(w, wkey, sizeof wkey);
    value_of(v, val, sizeof val);
    sg_pipeline_append(p, "SET %s %s", key, val);
    sg_pipeline_append(p, "GET %s", key);
    sg_pipeline_append(p, "INCR %s", ckey);
    sg_pipeline_append(p, "MGET %s %s %s", wkey, gkey, key);
    sg_pipeline_append(p, "EXISTS %s %s %s %s", key, gkey, ckey, wkey);
    sg_pipeline_append(p, "GET %s", gkey);
    if (sg_pipeline_exec(p) != SG_OK) {
        BAD("mixed pipeline: %s", sg_errmsg(c));
        sg_pipeline_free(p);
        return;
    }
    if ((r = pipe_reply(p, 0, "pipeline SET")) != NULL) {
        expect_status(r, "OK", "pipeline SET");
        if (r->type == SG_REPLY_STATUS) want_plain[k] = v;
    }
    if ((r = pipe_reply(p, 1, "pipeline GET")) != NULL) expect_value(r, want_plain[k], key);
    if ((r = pipe_reply(p, 2, "pipeline INCR")) != NULL) {
        if (r->type == SG_REPLY_INTEGER) want_cnt[g]++;
        expect_int(r, want_cnt[g], ckey);
    }
    if ((r = pipe_reply(p, 3, "pipeline MGET")) != NULL) {
        if (r->type != SG_REPLY_ARRAY || r->elements != 3) {
            BAD("pipeline MGET: got %s", reply_text(r));
        } else {
            expect_value(r->element[0], want_plain[w], wkey);
            expect_value(r->element[1], want_group[g][j], gkey);
            expect_value(r->element[2], want_plain[k], key);
        }
    }
    if ((r = pipe_reply(p, 4, "pipeline EXISTS")) != NULL) expect_int(r, 4, "pipeline EXISTS");
    if ((r = pipe_reply(p, 5, "pipeline GET group")) != NULL)
        expect_value(r, want_group[g][j], gkey);
    sg_pipeline_free(p);
}

static void load_round(sg_client *c) {
    int i, start = (rounds * WINDOW) % NPLAIN;
    round_groups(c);
    for (i = 0; i < NMIG_PLAIN; i++) set_get_plain(c, mig_plain[i]);
    for (i = 0; i < WINDOW; i++) set_get_plain(c, (start + i) % NPLAIN);
    round_multi(c, rounds);
    round_pipe(c, rounds);
    rounds++;
    atomic_fetch_add(&client_rounds, 1);
}

/* ---- the operator: moving slots ----------------------------------------------------- */

typedef struct migrator {
    ops_cluster cl;  /* its own connections */
    int master[3];   /* indexes in cl of the masters */
    int src, dst;    /* indexes in cl */
    int slots[NGROUPS + NMIG_PLAIN], nslots;
    int pace;        /* wait for a client round after each step */
    int replace;     /* MIGRATE ... REPLACE (restoring) */
    char err[600];   /* the first failure */
    int steps, batches, keys_moved;
} migrator;

static int mig_fail(migrator *m, ops_node *n, const char *what, int slot) {
    if (!m->err[0])
        snprintf(m->err, sizeof m->err, "slot %d: %s: %s", slot, what, n->err);
    return -1;
}

/* Lets the client run one round (or 300 ms when it is stuck in a retry). */
static void pace(migrator *m) {
    int seen = atomic_load(&client_rounds);
    uint64_t until = ops_now_ms() + 300;
    m->steps++;
    if (!m->pace) return;
    while (atomic_load(&client_rounds) == seen && ops_now_ms() < until &&
           !atomic_load(&stop_load))
        ops_sleep_ms(1);
}

/* After each MIGRATE batch: counted, and a client round. */
static void batch_done(void *ud) {
    migrator *m = ud;
    m->batches++;
    pace(m);
}

/* MIGRATEs every key of slot from node f to node t, BATCH at a time, a
 * client round after each batch. asking: f does not own the slot but imports
 * it (orphan keys, in a restore), so each MIGRATE goes after an ASKING. */
static int migrate_keys(migrator *m, int slot, ops_node *f, ops_node *t, int asking) {
    int flags = (m->replace ? OPS_MIGRATE_REPLACE : 0) | (asking ? OPS_MIGRATE_ASKING : 0);
    if (ops_migrate_keys(f, t, slot, BATCH, flags, batch_done, m, &m->keys_moved) != 0)
        return mig_fail(m, f, "moving its keys", slot);
    return 0;
}

/* Moves the keys of slot from node `from` to node `to` (both masters), then
 * gives the slot to `to` on every master. */
static int migrate_slot(migrator *m, int slot, int from, int to) {
    ops_node *f = &m->cl.node[from], *t = &m->cl.node[to];
    int i;
    if (from != to) {
        if (ops_cmd_expect(t, "OK", "CLUSTER SETSLOT %d IMPORTING %s", slot, f->id))
            return mig_fail(m, t, "SETSLOT IMPORTING", slot);
        if (ops_cmd_expect(f, "OK", "CLUSTER SETSLOT %d MIGRATING %s", slot, t->id))
            return mig_fail(m, f, "SETSLOT MIGRATING", slot);
        pace(m);
        if (migrate_keys(m, slot, f, t, 0) != 0) return -1;
    }
    /* the target first, then the source, then the other masters */
    if (ops_cmd_expect(t, "OK", "CLUSTER SETSLOT %d NODE %s", slot, t->id))
        return mig_fail(m, t, "SETSLOT NODE on the target", slot);
    if (from != to && ops_cmd_expect(f, "OK", "CLUSTER SETSLOT %d NODE %s", slot, t->id))
        return mig_fail(m, f, "SETSLOT NODE on the source", slot);
    for (i = 0; i < 3; i++) {
        ops_node *o = &m->cl.node[m->master[i]];
        if (m->master[i] == from || m->master[i] == to) continue;
        if (ops_cmd_expect(o, "OK", "CLUSTER SETSLOT %d NODE %s", slot, t->id))
            return mig_fail(m, o, "SETSLOT NODE on another master", slot);
    }
    pace(m);
    return 0;
}

/* Puts slot back on m->src from wherever it and its keys are, whatever state
 * it is in (the safety net after a failure): every master's importing or
 * migrating state cleared; the slot's keys moved from its owner, if that is
 * not src, and the slot given back to src; keys left on a master that does
 * not own the slot (an interrupted move) moved to src as well. The holder's
 * copy replaces src's (MIGRATE REPLACE): it is the one the cluster served. */
static int restore_slot(migrator *m, int slot) {
    ops_node *src = &m->cl.node[m->src];
    static int owner_now[16384];
    char sig[OPS_SIG_MAX];
    int i, rc = 0;
    m->replace = 1;
    for (i = 0; i < 3; i++)
        ops_cmd_expect(&m->cl.node[m->master[i]], "OK", "CLUSTER SETSLOT %d STABLE", slot);
    if (ops_signature(&m->cl, src, sig, sizeof sig, owner_now) != 0)
        return mig_fail(m, src, "CLUSTER SLOTS", slot);
    if (owner_now[slot] >= 0 && owner_now[slot] != m->src)
        rc = migrate_slot(m, slot, owner_now[slot], m->src);
    for (i = 0; i < 3 && rc == 0; i++) {
        ops_node *h = &m->cl.node[m->master[i]];
        redisReply *r;
        long long n = 0;
        if (m->master[i] == m->src) continue;
        if ((r = ops_cmd(h, "CLUSTER COUNTKEYSINSLOT %d", slot)) != NULL) {
            if (r->type == REDIS_REPLY_INTEGER) n = r->integer;
            freeReplyObject(r);
        }
        if (n == 0) continue;
        if (ops_cmd_expect(h, "OK", "CLUSTER SETSLOT %d IMPORTING %s", slot, src->id))
            return mig_fail(m, h, "SETSLOT IMPORTING (orphan keys)", slot);
        rc = migrate_keys(m, slot, h, src, 1);
        ops_cmd_expect(h, "OK", "CLUSTER SETSLOT %d STABLE", slot);
    }
    return rc ? rc : migrate_slot(m, slot, m->src, m->src);
}

/* Keys of slot held by masters other than its owner (they are unreachable:
 * left by an interrupted move, or written where they should not be). */
static long long stray_keys(migrator *m, int slot, int owner_idx) {
    long long n = 0;
    int i;
    for (i = 0; i < 3; i++) {
        redisReply *r;
        if (m->master[i] == owner_idx) continue;
        r = ops_cmd(&m->cl.node[m->master[i]], "CLUSTER COUNTKEYSINSLOT %d", slot);
        if (r && r->type == REDIS_REPLY_INTEGER) n += r->integer;
        if (r) freeReplyObject(r);
    }
    return n;
}

static void *migrator_main(void *arg) {
    migrator *m = arg;
    int i;
    for (i = 0; i < m->nslots && !m->err[0]; i++) migrate_slot(m, m->slots[i], m->src, m->dst);
    for (i = 0; i < m->nslots && !m->err[0]; i++) migrate_slot(m, m->slots[i], m->dst, m->src);
    return NULL;
}

/* ---- the test ---------------------------------------------------------------------- */

static int owner[16384];

static void test_reshard_under_load(void) {
    static char initial[OPS_SIG_MAX];
    char problem[4096];
    ops_cluster cl;
    static migrator mig;
    ops_node *src, *dst;
    sg_client *c;
    pthread_t th;
    uint64_t t0 = ops_now_ms(), t_load, t_settled;
    uint64_t ask = 0, moved = 0;
    int i, j, g, n, nodes;

    ops_cluster_init(&cl, test_server_var("SG_TEST_CLUSTER"));
    if (ops_wait_settled(&cl, NULL, 20000, NULL, NULL, problem, sizeof problem) != 0) {
        TEST_FAIL_("the cluster is not settled before the test: %s", problem);
        return;
    }
    CHECK_INT(ops_signature(&cl, &cl.node[0], initial, sizeof initial, owner), 0);
    for (i = 0; i < cl.n; i++) CHECK_INT(ops_node_id(&cl.node[i]), 0);

    memset(&mig, 0, sizeof mig);
    ops_cluster_init(&mig.cl, test_server_var("SG_TEST_CLUSTER"));
    /* the masters as they are now (an earlier test may have swapped roles);
     * the master of slot 0 gives slots to the master of slot 16383 */
    for (i = 0, n = 0; i < 16384; i++) {
        for (j = 0; j < n && mig.master[j] != owner[i]; j++) {
        }
        if (j == n && owner[i] >= 0 && n < 3) mig.master[n++] = owner[i];
    }
    CHECK_INT(n, 3);
    if (n != 3 || owner[0] == owner[16383]) {
        TEST_FAIL_("expected 3 masters, the first and last slots on different ones");
        return;
    }
    for (i = 0; i < mig.cl.n; i++) CHECK_INT(ops_node_id(&mig.cl.node[i]), 0);
    mig.src = owner[0];
    mig.dst = owner[16383];
    src = &cl.node[mig.src];
    dst = &cl.node[mig.dst];

    /* slots of the source to move: NGROUPS tags, then plain keys */
    for (i = 0, g = 0; g < NGROUPS && i < 100000; i++) {
        char tag[16];
        int s;
        snprintf(tag, sizeof tag, "g%d", i);
        s = (int)sg_keyslot(tag, strlen(tag));
        if (owner[s] != mig.src) continue;
        for (j = 0; j < g && group_slot[j] != s; j++) {
        }
        if (j < g) continue;
        snprintf(group_tag[g], sizeof group_tag[g], "%s", tag);
        group_slot[g] = s;
        mig.slots[mig.nslots++] = s;
        g++;
    }
    for (i = 0, n = 0; i < NPLAIN && n < NMIG_PLAIN; i++) {
        char key[32];
        int s;
        plain_key(i, key, sizeof key);
        s = (int)sg_keyslot(key, strlen(key));
        if (owner[s] != mig.src) continue;
        for (j = 0; j < mig.nslots && mig.slots[j] != s; j++) {
        }
        if (j < mig.nslots) continue;
        mig_plain[n++] = i;
        mig.slots[mig.nslots++] = s;
    }
    CHECK_INT(mig.nslots, NGROUPS + NMIG_PLAIN);
    if (mig.nslots != NGROUPS + NMIG_PLAIN) return;
    printf("moving %d slots from %s to %s and back, under load\n", mig.nslots, src->addr,
           dst->addr);

    /* no key of those slots anywhere but on their master */
    for (i = 0; i < mig.nslots; i++) {
        if (stray_keys(&mig, mig.slots[i], mig.src) == 0) continue;
        TEST_FAIL_("slot %d has keys on a master that does not own it (an earlier run "
                   "interrupted?): moving them to %s",
                   mig.slots[i], src->addr);
        if (restore_slot(&mig, mig.slots[i]) != 0) TEST_FAIL_("%s", mig.err);
        mig.err[0] = '\0';
        mig.replace = 0;
    }

    c = ops_client();

    /* every key exists before the first move */
    {
        sg_pipeline *p = sg_pipeline_new(c);
        char key[64], val[32];
        size_t k = 0;
        for (i = 0; i < NPLAIN; i++) {
            plain_key(i, key, sizeof key);
            want_plain[i] = next_value++;
            value_of(want_plain[i], val, sizeof val);
            sg_pipeline_append(p, "SET %s %s", key, val);
        }
        for (g = 0; g < NGROUPS; g++) {
            for (j = 0; j < GROUP_KEYS; j++) {
                group_key(g, j, key, sizeof key);
                want_group[g][j] = next_value++;
                value_of(want_group[g][j], val, sizeof val);
                sg_pipeline_append(p, "SET %s %s", key, val);
            }
            cnt_key(g, key, sizeof key);
            sg_pipeline_append(p, "SET %s 0", key);
        }
        CHECK_INT(sg_pipeline_exec(p), SG_OK);
        for (k = 0; k < sg_pipeline_count(p); k++) {
            const sg_reply *r = pipe_reply(p, k, "initial SET");
            if (r) expect_status(r, "OK", "initial SET");
        }
        sg_pipeline_free(p);
    }

    /* the load, while the other thread moves the slots away and back */
    mig.pace = 1;
    atomic_store(&stop_load, 0);
    if (pthread_create(&th, NULL, migrator_main, &mig) != 0) {
        TEST_FAIL_("cannot start the migrating thread");
        sg_client_free(c);
        return;
    }
    {
        migrator *mp = &mig;
        uint64_t limit = ops_now_ms() + LOAD_LIMIT_MS;
        int done = 0;
        while (!done) {
            /* the thread ends by itself; its last step waits for a round */
            done = pthread_tryjoin_np(th, NULL) == 0;
            if (!done && ops_now_ms() > limit) {
                TEST_FAIL_("moving the slots took over %d ms (%d steps done)", LOAD_LIMIT_MS,
                           mp->steps);
                atomic_store(&stop_load, 1);
                pthread_join(th, NULL);
                done = 1;
            }
            load_round(c);
        }
    }
    t_load = ops_now_ms();
    if (mig.err[0]) TEST_FAIL_("moving the slots failed: %s", mig.err);

    /* every value is the last one written: through the client ... */
    {
        char key[64];
        const char *argv[1 + 100];
        static char keys[100][64];
        sg_reply *r;
        for (i = 0; i < NPLAIN; i += 100) {
            argv[0] = "MGET";
            for (j = 0; j < 100; j++) {
                plain_key(i + j, keys[j], sizeof keys[j]);
                argv[1 + j] = keys[j];
            }
            if ((r = call(c, "final MGET", 101, argv)) == NULL) continue;
            if (r->type != SG_REPLY_ARRAY || r->elements != 100)
                BAD("final MGET: got %s", reply_text(r));
            else
                for (j = 0; j < 100; j++) expect_value(r->element[j], want_plain[i + j], keys[j]);
            sg_reply_free(r);
        }
        for (g = 0; g < NGROUPS; g++) {
            for (j = 0; j < GROUP_KEYS; j++) {
                const char *a[2] = {"GET", key};
                group_key(g, j, key, sizeof key);
                if ((r = call(c, key, 2, a)) == NULL) continue;
                expect_value(r, want_group[g][j], key);
                sg_reply_free(r);
            }
        }
    }

    /* ... and on the master that owns the key, asked directly */
    for (i = 0; i < NPLAIN + NGROUPS * (GROUP_KEYS + 1); i++) {
        char key[64], want[32];
        redisReply *r;
        int s;
        if (i < NPLAIN) {
            plain_key(i, key, sizeof key);
            value_of(want_plain[i], want, sizeof want);
        } else {
            int x = i - NPLAIN;
            g = x / (GROUP_KEYS + 1), j = x % (GROUP_KEYS + 1);
            if (j < GROUP_KEYS) {
                group_key(g, j, key, sizeof key);
                value_of(want_group[g][j], want, sizeof want);
            } else {
                cnt_key(g, key, sizeof key);
                snprintf(want, sizeof want, "%lld", want_cnt[g]);
            }
        }
        s = (int)sg_keyslot(key, strlen(key));
        r = ops_cmd(&cl.node[owner[s]], "GET %s", key);
        if (r == NULL || r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0)
            BAD("%s on its master %s: got %s, expected \"%s\"", key, cl.node[owner[s]].addr,
                r ? (r->str ? r->str : "(nil)") : cl.node[owner[s]].err, want);
        if (r) freeReplyObject(r);
    }

    /* and nowhere else */
    for (i = 0; i < mig.nslots; i++) {
        long long stray = stray_keys(&mig, mig.slots[i], mig.src);
        if (stray)
            BAD("slot %d: %lld keys on masters other than %s", mig.slots[i], stray, src->addr);
    }

    /* the client was redirected both ways */
    nodes = sg_client_node_count(c);
    for (i = 0; i < nodes; i++) {
        sg_node_stats st;
        if (sg_client_node_stats(c, i, &st) != SG_OK) continue;
        ask += st.ask;
        moved += st.moved;
        printf("  node %-16s %-7s commands %-7llu errors %-4llu moved %-4llu ask %-4llu "
               "connects %llu\n",
               st.addr, st.is_master ? "master" : "replica", (unsigned long long)st.commands,
               (unsigned long long)st.errors, (unsigned long long)st.moved,
               (unsigned long long)st.ask, (unsigned long long)st.connects);
    }
    printf("%d rounds, %d steps, %d MIGRATE batches (%d keys), ask %llu, moved %llu, "
           "%llu map refreshes, %d wrong outcomes\n",
           rounds, mig.steps, mig.batches, mig.keys_moved, (unsigned long long)ask,
           (unsigned long long)moved, (unsigned long long)sg_client_refresh_count(c), bad);
    CHECK(ask > 0);
    CHECK(moved > 0);
    CHECK_INT(bad, 0);
    sg_client_free(c);

    /* the cluster as it was */
    if (mig.err[0] || ops_wait_settled(&cl, initial, 3000, NULL, NULL, problem,
                                       sizeof problem) != 0) {
        printf("putting the slots back (%s)\n", mig.err[0] ? mig.err : problem);
        mig.pace = 0;
        mig.err[0] = '\0';
        for (i = 0; i < mig.nslots; i++) restore_slot(&mig, mig.slots[i]);
        if (mig.err[0]) TEST_FAIL_("putting the slots back: %s", mig.err);
    }
    if (ops_wait_settled(&cl, initial, 20000, NULL, NULL, problem, sizeof problem) != 0)
        TEST_FAIL_("the cluster is not as it was: %s", problem);
    t_settled = ops_now_ms();
    printf("load with resharding %llu ms, settled after %llu ms more, total %llu ms\n",
           (unsigned long long)(t_load - t0), (unsigned long long)(t_settled - t_load),
           (unsigned long long)(t_settled - t0));
    CHECK(t_settled - t0 < 60000);
    ops_cluster_close(&mig.cl);
    ops_cluster_close(&cl);
}

int main(void) {
    RUN(test_reshard_under_load);
    return test_report();
}
