/*
 * chaos.c — the load and the faults of bench/chaos.sh: writes through
 * slotgated while the cluster behind it is hurt, then checks that no
 * acknowledged write is gone.
 *
 *   chaos --gateway H:P [--cluster H:P,...] [--duration S] [--conns N]
 *         [--seq-conns N] [--pipeline N] [--sg-pid PID] [--seed N] [--durable 0|1]
 *
 * --cluster defaults to SG_TEST_CLUSTER (the harness's servers.env through
 * SG_TEST_STATE, which also lets a restarted server be recorded for
 * `servers.sh stop`).
 *
 * Load: --conns threads (default 4), each with its own blocking connection to
 * the gateway, write without pause SET chaos:<run>:<thread>:<n> <value>, a new
 * key each time, so every acknowledged write has exactly one value to find at
 * the end. Each write's send time, ack time and outcome are kept. With
 * --pipeline N (default 1), each connection sends N writes at a time, each
 * SET followed by GET and ECHO of its key in the same pipeline: a reply that
 * cannot be the answer to its command (another key's value, a SET answered
 * with a string) is counted as wrong, and fails the run.
 *
 * Order: --seq-conns threads (default 2) append rising numbers to keys of
 * their own, each APPEND followed by a GET of its key (see "ordered writers"
 * below): a key's history must rise, a GET must neither show a later append
 * nor miss an acknowledged earlier one that survived. Any such is counted as
 * reordered and fails the run.
 *
 * Durability: Redis replicates asynchronously, so a write a master
 * acknowledged and died with may be lost; what Redis promises is that a write
 * counted by WAIT reached a replica. WAIT through the gateway would run on a
 * shared connection that did not carry the writes, so the driver confirms
 * replication itself, in rounds: on a direct connection to every master, SET
 * of a probe key of that master's slots, then WAIT 1 500. The replication
 * stream is in order, so a round that succeeds on every master covers every
 * write those masters acknowledged before it. A write counts as "replicated"
 * when it was sent after round i-1 began and acknowledged before round i
 * began, both rounds succeeded on every master, the set of masters was the
 * same at the start of i-1 and at the end of i, and no fault that can change
 * the masters (a kill, a long stall) happened in between: whichever master
 * acknowledged it was probed by round i after it did. Those must all be
 * readable at the end; other acknowledged writes are counted when lost (they
 * may be, by Redis's own rules), not failed on.
 *
 * Faults, in turns until --duration is up, each followed by a wait until the
 * cluster is settled again (cluster_state:ok everywhere, every node known and
 * connected, no slot migrating, replicas' links up) and a calm second of
 * rounds:
 *   kill     SIGKILL a master, wait for its replica to take over, start the
 *            old one again from its redis.conf (it rejoins as a replica)
 *   migrate  move 3 slots from one master to another under load, as
 *            redis-cli --cluster reshard does (SETSLOT IMPORTING/MIGRATING,
 *            MIGRATE of the keys in batches, SETSLOT NODE everywhere)
 *   clients  kill the gateway's upstream connections on every node: CLIENT
 *            KILL TYPE normal, or one by one with CLIENT KILL ADDR
 *   stall    SIGSTOP a node, then SIGCONT: a master for 1.5 s (under
 *            cluster-node-timeout), a replica for 3 s, or a master for 5 s
 *            (its replica takes over; the old one resumes as a replica)
 *
 * At the end: every acknowledged key is read back through the gateway and
 * directly from its master; prints writes acknowledged, lost (replicated and
 * not), errors by kind, the longest time without service, and the gateway's
 * RSS and open files before and after (--sg-pid). Exit status 1 when a
 * replicated write is lost, a reply was wrong or the check could not be
 * done, a write or read was reordered, or (--durable 1: slotgated makes
 * every write durable, acknowledged once a replica confirmed it) any
 * acknowledged write is lost; 0 otherwise.
 */
#include <dirent.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cluster_ops.h"
#include "slotgate.h"

#define MAX_CONNS 64
#define MAX_KINDS 64
#define MAX_IVALS 4096
#define MAX_FAULTS 512

/* ---- time and logging ---------------------------------------------------------------- */

static uint64_t T0; /* ops_now_ms() at the start; records keep ms since then */

static uint32_t rel_ms(void) { return (uint32_t)(ops_now_ms() - T0); }

#define say(...)                                                                           \
    do {                                                                                   \
        char wb_[32];                                                                      \
        printf("[%s +%6.1fs] ", ops_wall(wb_, sizeof wb_), rel_ms() / 1000.0);                 \
        printf(__VA_ARGS__);                                                               \
        putchar('\n');                                                                     \
    } while (0)

/* ---- options --------------------------------------------------------------------------- */

static char gw_host[64];
static int gw_port;
static const char *cluster_addrs;
static int duration_s = 180, nconns = 4, pipeline = 1, nseq = 2, durable;
static long sg_pid;
static unsigned seed;
static char run_id[16];

/* ---- the load ----------------------------------------------------------------------- */

enum { W_NONE = 0, W_ACK, W_FAIL, W_UNKNOWN };

typedef struct rec {
    uint32_t sent, done; /* ms since T0 */
    uint8_t outcome;
} rec;

typedef struct writer {
    pthread_t tid;
    int id;
    rec *r;
    size_t cap, n;        /* records, used */
    uint32_t max_gap;     /* longest time between two acks on this connection */
    uint32_t max_call;    /* longest single write */
    uint64_t acks, fails, unknown, reconnects;
    uint64_t wrong; /* replies that cannot be the answer to their command */
    /* ordered writers (--seq-conns): appends of rising numbers */
    int appends;
    uint64_t reads, reordered, stale_reads;
    uint32_t *cand; /* appends acknowledged before a GET of their key that lacked them */
    size_t ncand, capcand;
    uint32_t *last_read_max; /* per key: the newest number its last read showed (+1) */
} writer;

static writer W[MAX_CONNS];
static writer Q[MAX_CONNS]; /* the ordered writers */
static atomic_int stop_load;

/* Errors by kind: the text with numbers and addresses made generic. */
static pthread_mutex_t kinds_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char kind[160];
    char example[200];
    uint64_t count;
    uint32_t first, last;
} kinds[MAX_KINDS];
static int nkinds;

static void shape_of(const char *where, const char *msg, char *out, size_t n) {
    size_t o = 0, i;
    o = (size_t)snprintf(out, n, "%s: ", where);
    for (i = 0; msg[i] && o + 2 < n; i++) {
        if (msg[i] >= '0' && msg[i] <= '9') {
            if (o == 0 || out[o - 1] != 'N') out[o++] = 'N';
            while (msg[i + 1] >= '0' && msg[i + 1] <= '9') i++;
        } else if (msg[i] == '.' && o > 0 && out[o - 1] == 'N' && msg[i + 1] >= '0' &&
                   msg[i + 1] <= '9') {
            /* 127.0.0.1 reads as N, not N.N.N.N */
        } else {
            out[o++] = msg[i];
        }
    }
    out[o] = '\0';
}

static void count_error(const char *where, const char *msg) {
    char shape[160];
    int k;
    uint32_t now = rel_ms();
    shape_of(where, msg, shape, sizeof shape);
    pthread_mutex_lock(&kinds_mu);
    for (k = 0; k < nkinds; k++)
        if (strcmp(kinds[k].kind, shape) == 0) break;
    if (k == nkinds && nkinds < MAX_KINDS) {
        snprintf(kinds[k].kind, sizeof kinds[k].kind, "%s", shape);
        snprintf(kinds[k].example, sizeof kinds[k].example, "%s", msg);
        kinds[k].first = now;
        nkinds++;
    } else if (k == nkinds) {
        k = MAX_KINDS - 1; /* the table is full: the last kind takes the rest */
    }
    kinds[k].count++;
    kinds[k].last = now;
    pthread_mutex_unlock(&kinds_mu);
}

static void key_of(int t, size_t n, char *out, size_t len) {
    snprintf(out, len, "chaos:%s:%d:%zu", run_id, t, n);
}

static void value_of(int t, size_t n, char *out, size_t len) {
    snprintf(out, len, "v:%s:%d:%zu:0123456789abcdef", run_id, t, n);
}

static redisContext *connect_gw(writer *w) {
    struct timeval ct = {1, 0}, rt = {10, 0};
    for (;;) {
        redisContext *c = redisConnectWithTimeout(gw_host, gw_port, ct);
        if (c && !c->err) {
            redisSetTimeout(c, rt); /* over the gateway's own 5 s upstream timeout */
            return c;
        }
        count_error("connect", c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        if (atomic_load(&stop_load)) return NULL;
        w->reconnects++;
        ops_sleep_ms(20);
    }
}

/* The outcome of write r from its SET's reply (NULL: the connection failed). */
static void judge(writer *w, rec *r, redisReply *rep, redisContext *c, uint32_t *last_ack) {
    r->done = rel_ms();
    if (r->done - r->sent > w->max_call) w->max_call = r->done - r->sent;
    if (rep && ((rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0) ||
                (w->appends && rep->type == REDIS_REPLY_INTEGER))) {
        r->outcome = W_ACK;
        w->acks++;
        if (r->done - *last_ack > w->max_gap) w->max_gap = r->done - *last_ack;
        *last_ack = r->done;
    } else if (rep && rep->type == REDIS_REPLY_ERROR) {
        /* the gateway's own errors (a timeout, a closed connection) leave
         * the outcome unknown, and so does NOTCONFIRMED (applied on the
         * master, not confirmed by a replica); Redis's (CLUSTERDOWN,
         * TRYAGAIN) do not */
        int gw_err = strncmp(rep->str, "ERR slotgate", 12) == 0 ||
                     strncmp(rep->str, "NOTCONFIRMED", 12) == 0;
        r->outcome = gw_err ? W_UNKNOWN : W_FAIL;
        if (gw_err) w->unknown++;
        else w->fails++;
        count_error("reply", rep->str);
    } else if (rep) {
        r->outcome = W_UNKNOWN;
        w->unknown++;
        w->wrong++;
        count_error(w->appends ? "WRONG REPLY to APPEND" : "WRONG REPLY to SET",
                    rep->type == REDIS_REPLY_STRING ? rep->str : "not a status");
    } else {
        r->outcome = W_UNKNOWN;
        w->unknown++;
        count_error("connection", c->errstr);
    }
}

/* One write at a time (--pipeline 1), or batches of --pipeline writes, each
 * SET k v followed by GET k and ECHO k in the same pipeline: the replies must
 * come in order (GET answers v or, when the SET failed, an error or nil;
 * ECHO, answered by the gateway itself, answers k). */
static void *writer_main(void *arg) {
    writer *w = arg;
    redisContext *c = connect_gw(w);
    uint32_t last_ack = rel_ms();
    char key[96], val[128];
    while (c && !atomic_load(&stop_load) && w->n + (size_t)pipeline <= w->cap) {
        size_t first = w->n, i;
        int broken = 0;
        if (pipeline == 1) {
            rec *r = &w->r[w->n];
            redisReply *rep;
            key_of(w->id, w->n, key, sizeof key);
            value_of(w->id, w->n, val, sizeof val);
            r->sent = rel_ms();
            rep = redisCommand(c, "SET %s %s", key, val);
            judge(w, r, rep, c, &last_ack);
            broken = rep == NULL;
            if (rep) freeReplyObject(rep);
            w->n++;
        } else {
            for (i = 0; i < (size_t)pipeline; i++) {
                key_of(w->id, first + i, key, sizeof key);
                value_of(w->id, first + i, val, sizeof val);
                w->r[first + i].sent = rel_ms();
                redisAppendCommand(c, "SET %s %s", key, val);
                redisAppendCommand(c, "GET %s", key);
                redisAppendCommand(c, "ECHO %s", key);
            }
            for (i = 0; i < (size_t)pipeline; i++) {
                rec *r = &w->r[first + i];
                redisReply *rep = NULL, *get = NULL, *echo = NULL;
                if (!broken && redisGetReply(c, (void **)&rep) != REDIS_OK) rep = NULL;
                judge(w, r, broken ? NULL : rep, c, &last_ack);
                if (rep == NULL) broken = 1;
                if (!broken && redisGetReply(c, (void **)&get) != REDIS_OK) broken = 1;
                if (!broken && redisGetReply(c, (void **)&echo) != REDIS_OK) broken = 1;
                if (!broken) {
                    key_of(w->id, first + i, key, sizeof key);
                    value_of(w->id, first + i, val, sizeof val);
                    if (get->type == REDIS_REPLY_STRING && strcmp(get->str, val) != 0) {
                        w->wrong++;
                        count_error("WRONG REPLY to GET", get->str);
                    } else if (get->type == REDIS_REPLY_STATUS ||
                               get->type == REDIS_REPLY_INTEGER ||
                               get->type == REDIS_REPLY_ARRAY) {
                        w->wrong++;
                        count_error("WRONG REPLY to GET", get->str ? get->str : "not a string");
                    } else if (get->type == REDIS_REPLY_NIL && r->outcome == W_ACK) {
                        static atomic_int shown;
                        count_error("GET", "nil right after an acknowledged SET");
                        if (atomic_fetch_add(&shown, 1) < 40)
                            say("  GET %s: nil right after its SET was acknowledged (slot %u)",
                                key, sg_keyslot(key, strlen(key)));
                    } else if (get->type == REDIS_REPLY_ERROR) {
                        count_error("GET reply", get->str);
                    }
                    if (echo->type != REDIS_REPLY_STRING || strcmp(echo->str, key) != 0) {
                        w->wrong++;
                        count_error("WRONG REPLY to ECHO", echo->str ? echo->str : "not a string");
                    }
                }
                if (rep) freeReplyObject(rep);
                if (get) freeReplyObject(get);
                if (echo) freeReplyObject(echo);
            }
            w->n = first + (size_t)pipeline;
        }
        if (broken) {
            redisFree(c);
            c = connect_gw(w);
            w->reconnects++;
        }
    }
    if (w->n + (size_t)pipeline > w->cap)
        say("writer %d: record table full (%zu writes): it stops", w->id, w->n);
    if (c) redisFree(c);
    return NULL;
}

/* ---- ordered writers ----------------------------------------------------------------
 * Each of --seq-conns threads appends rising numbers to keys of its own,
 * "APPEND chaos:<run>:q<t>:<key> <i>,", each append followed in the same
 * pipeline by GET of its key. A key's value is then the history of the
 * appends applied to it, in the order they were applied: it must rise. A
 * GET must show no number sent after it, and must show an append whose
 * acknowledgement came before it on the same connection unless that append
 * was lost (then the final value lacks it too). Appends i go to key
 * (i / SEQ_GROUP) * SEQ_KEYS + i % SEQ_KEYS: SEQ_KEYS keys (slots) in turn,
 * SEQ_GROUP / SEQ_KEYS appends each, then the next keys. */
#define SEQ_KEYS 4
#define SEQ_GROUP 256 /* appends per group of keys: 64 per key (a bit each) */

static size_t seq_key_no(size_t i) {
    return i / SEQ_GROUP * SEQ_KEYS + i % SEQ_KEYS;
}

static void seq_key(int t, size_t keyno, char *out, size_t len) {
    snprintf(out, len, "chaos:%s:q%d:%zu", run_id, t, keyno);
}

static void reordered(writer *w, const char *what, const char *key, const char *detail) {
    static atomic_int shown;
    w->reordered++;
    count_error("REORDERED", what);
    if (atomic_fetch_add(&shown, 1) < 20) say("  REORDERED %s: %s (%s)", key, what, detail);
}

/* Which of key keyno's appends a value holds: bit j for append
 * group * SEQ_GROUP + key % SEQ_KEYS + j * SEQ_KEYS. Sets *rising to 0 when
 * the numbers do not rise, *future when one is above limit, *max to the
 * greatest plus one (0: none). -1 for a value that is not such a list. */
static int seq_parse(const char *v, size_t len, size_t keyno, size_t limit, uint64_t *bits,
                     int *rising, int *future, size_t *max) {
    size_t base = keyno / SEQ_KEYS * SEQ_GROUP + keyno % SEQ_KEYS, prev = 0, k = 0;
    int any = 0;
    *bits = 0;
    *rising = 1;
    *future = 0;
    *max = 0;
    while (k < len) {
        size_t num = 0, start = k;
        while (k < len && v[k] >= '0' && v[k] <= '9') num = num * 10 + (size_t)(v[k++] - '0');
        if (k == start || k >= len || v[k] != ',') return -1;
        k++;
        if (num < base || (num - base) % SEQ_KEYS || (num - base) / SEQ_KEYS >= 64) return -1;
        if (any && num <= prev) *rising = 0;
        if (num > limit) *future = 1;
        *bits |= 1ull << ((num - base) / SEQ_KEYS);
        if (num + 1 > *max) *max = num + 1;
        prev = num;
        any = 1;
    }
    return 0;
}

static void seq_read(writer *w, size_t i, redisReply *get) {
    char key[96];
    uint64_t bits;
    int rising, future;
    size_t max, keyno = seq_key_no(i);
    seq_key(w->id, keyno, key, sizeof key);
    w->reads++;
    if (get->type == REDIS_REPLY_NIL) {
        bits = 0, rising = 1, future = 0, max = 0;
    } else if (get->type != REDIS_REPLY_STRING ||
               seq_parse(get->str, get->len, keyno, i, &bits, &rising, &future, &max) != 0) {
        if (get->type == REDIS_REPLY_ERROR) {
            count_error("GET reply", get->str);
        } else {
            w->wrong++;
            count_error("WRONG REPLY to GET", get->type == REDIS_REPLY_STRING ? get->str : "?");
        }
        return;
    }
    if (!rising) reordered(w, "a key's appends applied out of order", key, get->str);
    if (future) reordered(w, "a GET shows an append sent after it", key, get->str);
    if (w->r[i].outcome == W_ACK && !(bits >> ((i % SEQ_GROUP) / SEQ_KEYS) & 1)) {
        /* acknowledged before this GET, yet not there: overtaken, or lost */
        if (w->ncand == w->capcand) {
            w->capcand = w->capcand ? w->capcand * 2 : 64;
            w->cand = realloc(w->cand, w->capcand * sizeof *w->cand);
        }
        if (w->cand) w->cand[w->ncand++] = (uint32_t)i;
    }
    if (max < w->last_read_max[keyno]) w->stale_reads++; /* older than the last read */
    w->last_read_max[keyno] = (uint32_t)max;
}

static void *seq_main(void *arg) {
    writer *w = arg;
    redisContext *c = connect_gw(w);
    uint32_t last_ack = rel_ms();
    char key[96], val[32];
    while (c && !atomic_load(&stop_load) && w->n + (size_t)pipeline <= w->cap) {
        size_t first = w->n, i;
        int broken = 0;
        for (i = first; i < first + (size_t)pipeline; i++) {
            seq_key(w->id, seq_key_no(i), key, sizeof key);
            snprintf(val, sizeof val, "%zu,", i);
            w->r[i].sent = rel_ms();
            redisAppendCommand(c, "APPEND %s %s", key, val);
            redisAppendCommand(c, "GET %s", key);
        }
        for (i = first; i < first + (size_t)pipeline; i++) {
            redisReply *rep = NULL, *get = NULL;
            if (!broken && redisGetReply(c, (void **)&rep) != REDIS_OK) rep = NULL;
            judge(w, &w->r[i], broken ? NULL : rep, c, &last_ack);
            if (rep == NULL) broken = 1;
            if (!broken && redisGetReply(c, (void **)&get) != REDIS_OK) broken = 1;
            if (!broken) seq_read(w, i, get);
            if (rep) freeReplyObject(rep);
            if (get) freeReplyObject(get);
        }
        w->n = first + (size_t)pipeline;
        if (broken) {
            redisFree(c);
            c = connect_gw(w);
            w->reconnects++;
            /* what the old session left in flight may still be applied: new keys,
             * so it cannot land between this session's appends */
            w->n = (w->n + SEQ_GROUP - 1) / SEQ_GROUP * SEQ_GROUP;
        }
    }
    if (c) redisFree(c);
    return NULL;
}

/* ---- the cluster ---------------------------------------------------------------------- */

static ops_cluster cl;
static long long node_timeout_ms = 2000;
static uint64_t promoted_at[OPS_MAX_NODES]; /* when each node last won an election */
static int owner[16384];

/* Masters with slots as some live node sees them: their indexes in cl (in
 * mi, up to 8), and a key for the set (sorted ids). Returns how many, -1
 * when no node answered or one is unknown. */
static int masters(int *mi, char *setkey, size_t setlen, int *from) {
    int i;
    for (i = 0; i < cl.n; i++) {
        redisReply *r = ops_cmd(&cl.node[i], "CLUSTER NODES");
        const char *line;
        char ids[OPS_MAX_NODES][48];
        int n = 0, j, k, bad = 0;
        if (r == NULL) continue;
        if (r->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            continue;
        }
        for (line = r->str; line && *line;
             line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
            char id[64], addr[128], flags[128], master[64], link[32], slot0[32];
            long long ping, pong;
            int epoch;
            ops_node *o;
            if (sscanf(line, "%63s %127s %127s %63s %lld %lld %d %31s %31s", id, addr, flags,
                       master, &ping, &pong, &epoch, link, slot0) < 9)
                continue; /* no slots */
            if (!strstr(flags, "master") || strstr(flags, "fail")) continue;
            addr[strcspn(addr, "@")] = '\0';
            if ((o = ops_by_addr(&cl, addr)) == NULL || n == OPS_MAX_NODES) {
                bad = 1;
                continue;
            }
            snprintf(o->id, sizeof o->id, "%.47s", id);
            mi[n] = (int)(o - cl.node);
            snprintf(ids[n++], sizeof ids[0], "%.47s", id);
        }
        freeReplyObject(r);
        if (bad) return -1;
        /* sort the ids (few): the key of the set */
        for (j = 1; j < n; j++)
            for (k = j; k > 0 && strcmp(ids[k], ids[k - 1]) < 0; k--) {
                char t[48];
                int ti = mi[k];
                memcpy(t, ids[k], sizeof t);
                memcpy(ids[k], ids[k - 1], sizeof t);
                memcpy(ids[k - 1], t, sizeof t);
                mi[k] = mi[k - 1];
                mi[k - 1] = ti;
            }
        setkey[0] = '\0';
        for (j = 0; j < n; j++)
            snprintf(setkey + strlen(setkey), setlen - strlen(setkey), "%.8s ", ids[j]);
        if (from) *from = i;
        return n;
    }
    return -1;
}

static int settle(const char *what, int timeout_ms) {
    char problem[4096];
    uint64_t t = ops_now_ms();
    if (ops_wait_settled(&cl, NULL, timeout_ms, NULL, NULL, problem, sizeof problem) != 0) {
        say("%s: not settled after %d ms: %s", what, timeout_ms, problem);
        return -1;
    }
    say("%s: settled in %llu ms", what, (unsigned long long)(ops_now_ms() - t));
    return 0;
}

/* ---- replication rounds ---------------------------------------------------------------- */

typedef struct ival {
    uint32_t lo, hi; /* sent after lo, acked before hi: replicated */
} ival;

static ival ivals[MAX_IVALS];
static int nivals;
static struct {
    int valid;
    uint32_t start;
    char set[OPS_MAX_NODES * 10];
} prev_round;
static int fault_since_round; /* a fault that can change the masters happened */
static uint64_t rounds_ok, rounds_bad;

/* One round: SET a probe key of its own slots on every master, then WAIT 1. */
static void round_(void) {
    int mi[OPS_MAX_NODES], mi2[OPS_MAX_NODES], n, n2, i, ok = 1;
    char set[sizeof prev_round.set], set2[sizeof prev_round.set];
    uint32_t start = rel_ms();
    int unsafe = fault_since_round;
    fault_since_round = 0;
    n = masters(mi, set, sizeof set, NULL);
    if (n <= 0 || ops_slot_owners(&cl, owner) != 0) ok = 0;
    for (i = 0; ok && i < n; i++) {
        ops_node *m = &cl.node[mi[i]];
        char probe[48];
        int k;
        redisReply *r;
        for (k = 0; k < 1000000; k++) {
            snprintf(probe, sizeof probe, "chaos-probe:%d", k);
            if (owner[sg_keyslot(probe, strlen(probe))] == mi[i]) break;
        }
        if (ops_cmd_expect(m, "OK", "SET %s %u", probe, start) != 0) {
            ok = 0;
            break;
        }
        r = ops_cmd(m, "WAIT 1 500");
        if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer < 1) ok = 0;
        if (r) freeReplyObject(r);
    }
    n2 = masters(mi2, set2, sizeof set2, NULL);
    if (n2 != n || strcmp(set, set2) != 0) ok = 0;
    if (ok) rounds_ok++;
    else rounds_bad++;
    if (ok && !unsafe && prev_round.valid && strcmp(prev_round.set, set) == 0 &&
        nivals < MAX_IVALS) {
        if (nivals > 0 && ivals[nivals - 1].hi == prev_round.start)
            ivals[nivals - 1].hi = start; /* extends the last one */
        else
            ivals[nivals++] = (ival){prev_round.start, start};
    }
    prev_round.valid = ok;
    prev_round.start = start;
    snprintf(prev_round.set, sizeof prev_round.set, "%s", set);
}

/* Rounds for ms milliseconds, one every 250 ms. */
static void calm(int ms) {
    uint64_t until = ops_now_ms() + (uint64_t)ms;
    do {
        round_();
        ops_sleep_ms(250);
    } while (ops_now_ms() < until);
}

static int replicated(const rec *r) {
    int lo = 0, hi = nivals - 1;
    while (lo <= hi) { /* the intervals are in order and disjoint */
        int mid = (lo + hi) / 2;
        if (r->done < ivals[mid].lo) hi = mid - 1;
        else if (r->done > ivals[mid].hi) lo = mid + 1;
        else return r->sent > ivals[mid].lo;
    }
    return 0;
}

/* ---- the faults --------------------------------------------------------------------- */

static struct {
    uint32_t at, took;
    char what[200];
} faults[MAX_FAULTS];
static int nfaults;
static int fault_counts[8];
static volatile sig_atomic_t stopped_pid; /* a node under SIGSTOP */

static void note_fault(uint32_t at, const char *fmt, ...) {
    va_list ap;
    if (nfaults == MAX_FAULTS) return;
    faults[nfaults].at = at;
    faults[nfaults].took = rel_ms() - at;
    va_start(ap, fmt);
    vsnprintf(faults[nfaults].what, sizeof faults[0].what, fmt, ap);
    va_end(ap);
    nfaults++;
}

/* The replica of master m (its index in cl), or -1. */
static int replica_of(int m) {
    ops_node *r = ops_replica(&cl, &cl.node[m]);
    return r ? (int)(r - cl.node) : -1;
}

/* A replica can win an election again 4 × cluster-node-timeout after its
 * last one (Redis's failover auth retry time); a second more to be safe. */
static int electable(int r) {
    return r >= 0 && (promoted_at[r] == 0 ||
                      ops_now_ms() - promoted_at[r] > (uint64_t)(4 * node_timeout_ms + 1000));
}

/* A master, taken in turns, whose replica could take over now; -1 if none. */
static int pick_master(int *replica) {
    static int turn;
    int mi[OPS_MAX_NODES], n, i;
    char set[128];
    if ((n = masters(mi, set, sizeof set, NULL)) <= 0) return -1;
    for (i = 0; i < n; i++) {
        int m = mi[(turn + i) % n], r = replica_of(m);
        if (electable(r)) {
            turn += i + 1;
            *replica = r;
            return m;
        }
    }
    return -1;
}

/* Waits until node r is a master and sees cluster_state:ok; 0 or -1. */
static int wait_promoted(int r, int timeout_ms) {
    uint64_t deadline = ops_now_ms() + (uint64_t)timeout_ms;
    while (ops_now_ms() < deadline) {
        char role[32], st[32];
        ops_role(&cl.node[r], role, sizeof role);
        if (strcmp(role, "master") == 0) {
            redisReply *x = ops_cmd(&cl.node[r], "CLUSTER INFO");
            int ok = 0;
            if (x && x->type == REDIS_REPLY_STRING) {
                ops_info_field(x->str, "cluster_state", st, sizeof st);
                ok = strcmp(st, "ok") == 0;
            }
            if (x) freeReplyObject(x);
            if (ok) return 0;
        }
        ops_sleep_ms(20);
    }
    return -1;
}

static void fault_kill(void) {
    int r, m = pick_master(&r);
    long pid, new_pid;
    char conf[1024], pidfile[1024], err[1200], dir[512], rdb[256], rdbpath[800];
    uint32_t t0;
    if (m < 0) {
        say("kill: no master whose replica can take over now; skipped");
        return;
    }
    if (ops_server_process(&cl.node[m], &pid, conf, sizeof conf, pidfile, sizeof pidfile) != 0) {
        say("kill: cannot tell %s's process: %s", cl.node[m].addr, cl.node[m].err);
        return;
    }
    /* The harness keeps no data on disk (save "", appendonly no), but a node
     * that was a replica holds the RDB of its last full sync, with that
     * sync's replication id and offset: restarted on it, the node would come
     * back with old data that a partial resync may build on. A killed server
     * restarts empty, as the harness means it to. */
    rdbpath[0] = '\0';
    if (ops_config_get(&cl.node[m], "dir", dir, sizeof dir) == 0 &&
        ops_config_get(&cl.node[m], "dbfilename", rdb, sizeof rdb) == 0)
        snprintf(rdbpath, sizeof rdbpath, "%s/%s", dir, rdb);
    round_();
    t0 = rel_ms();
    say("kill: SIGKILL master %s (pid %ld); its replica %s should take over", cl.node[m].addr,
        pid, cl.node[r].addr);
    fault_since_round = 1;
    kill((pid_t)pid, SIGKILL);
    while (ops_pid_alive(pid) && rel_ms() - t0 < 5000) ops_sleep_ms(1);
    ops_node_close(&cl.node[m]);
    if (wait_promoted(r, 30000) != 0) {
        say("kill: %s not master with cluster_state:ok 30 s after the kill", cl.node[r].addr);
    } else {
        promoted_at[r] = ops_now_ms();
        say("kill: %s took over %u ms after the kill", cl.node[r].addr, rel_ms() - t0);
    }
    if (rdbpath[0] && unlink(rdbpath) == 0)
        say("kill: removed %s's stale %s", cl.node[m].addr, rdbpath);
    new_pid = ops_start_server(conf, pidfile, pid, err, sizeof err);
    if (new_pid <= 0) {
        say("kill: %s", err);
    } else {
        if (ops_update_harness_pid(pid, new_pid) < 0)
            say("SG_TEST_STATE unset: the restarted server (pid %ld) is not recorded", new_pid);
        say("kill: restarted %s (pid %ld)", cl.node[m].addr, new_pid);
    }
    fault_since_round = 1;
    settle("kill: the old master rejoins as a replica", 60000);
    note_fault(t0, "kill master %s; %s took over", cl.node[m].addr, cl.node[r].addr);
    fault_counts[0]++;
}

#define BATCH 20 /* keys per MIGRATE */

static int migrate_slot(int slot, int from, int to, const int *mi, int n, int *moved) {
    ops_node *f = &cl.node[from], *t = &cl.node[to];
    int i;
    if (ops_cmd_expect(t, "OK", "CLUSTER SETSLOT %d IMPORTING %s", slot, f->id) != 0 ||
        ops_cmd_expect(f, "OK", "CLUSTER SETSLOT %d MIGRATING %s", slot, t->id) != 0) {
        say("migrate: slot %d: SETSLOT IMPORTING/MIGRATING: %s %s", slot, t->err, f->err);
        return -1;
    }
    ops_sleep_ms(100); /* let some writes meet the slot half-moved (ASK) */
    if (ops_migrate_keys(f, t, slot, BATCH, 0, NULL, NULL, moved) != 0) {
        say("migrate: slot %d: %s", slot, f->err);
        return -1;
    }
    /* the target first, then the source, then the other masters */
    if (ops_cmd_expect(t, "OK", "CLUSTER SETSLOT %d NODE %s", slot, t->id) != 0 ||
        ops_cmd_expect(f, "OK", "CLUSTER SETSLOT %d NODE %s", slot, t->id) != 0) {
        say("migrate: slot %d: SETSLOT NODE: %s %s", slot, t->err, f->err);
        return -1;
    }
    for (i = 0; i < n; i++)
        if (mi[i] != from && mi[i] != to)
            ops_cmd_expect(&cl.node[mi[i]], "OK", "CLUSTER SETSLOT %d NODE %s", slot, t->id);
    return 0;
}

static void fault_migrate(void) {
    static int turn;
    int mi[OPS_MAX_NODES], n, from, to, i, s, moved = 0, done = 0, tries;
    char set[128];
    uint32_t t0 = rel_ms();
    if ((n = masters(mi, set, sizeof set, NULL)) < 2 || ops_slot_owners(&cl, owner) != 0) {
        say("migrate: cannot read the masters or the slots; skipped");
        return;
    }
    from = mi[turn % n];
    to = mi[(turn + 1) % n];
    turn++;
    for (i = 0; i < 3; i++) {
        for (tries = 0, s = -1; tries < 100000; tries++) {
            int c = rand() % 16384;
            if (owner[c] == from) {
                s = c;
                break;
            }
        }
        if (s < 0) break;
        if (migrate_slot(s, from, to, mi, n, &moved) != 0) {
            /* put the slot back in a usable state: give it to the target,
             * where its keys have been going (never leave it half moved) */
            int j;
            for (j = 0; j < n; j++)
                ops_cmd_expect(&cl.node[mi[j]], "OK", "CLUSTER SETSLOT %d STABLE", s);
            break;
        }
        owner[s] = to;
        done++;
    }
    say("migrate: %d slot(s) from %s to %s, %d keys moved", done, cl.node[from].addr,
        cl.node[to].addr, moved);
    settle("migrate", 30000);
    note_fault(t0, "migrate %d slots %s -> %s (%d keys)", done, cl.node[from].addr,
               cl.node[to].addr, moved);
    fault_counts[1]++;
}

/* The gateway's connections on every node, killed. By type, or one by one
 * by address (the driver's own connections are spared). */
static void fault_clients(void) {
    static int turn;
    int i, killed = 0, by_addr = turn++ % 2;
    uint32_t t0 = rel_ms();
    for (i = 0; i < cl.n; i++) {
        ops_node *n = &cl.node[i];
        redisReply *r;
        if (!by_addr) {
            r = ops_cmd(n, "CLIENT KILL TYPE normal SKIPME yes");
            if (r && r->type == REDIS_REPLY_INTEGER) killed += (int)r->integer;
            if (r) freeReplyObject(r);
            continue;
        }
        {
            long long me = -1;
            const char *line;
            r = ops_cmd(n, "CLIENT ID");
            if (r && r->type == REDIS_REPLY_INTEGER) me = r->integer;
            if (r) freeReplyObject(r);
            r = ops_cmd(n, "CLIENT LIST TYPE normal");
            if (r == NULL || r->type != REDIS_REPLY_STRING) {
                if (r) freeReplyObject(r);
                continue;
            }
            for (line = r->str; line && *line;
                 line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                long long id;
                char addr[64];
                const char *a = strstr(line, " addr=");
                redisReply *k;
                if (sscanf(line, "id=%lld", &id) != 1 || id == me || a == NULL) continue;
                if (sscanf(a, " addr=%63s", addr) != 1) continue;
                k = ops_cmd(n, "CLIENT KILL ADDR %s", addr);
                if (k && k->type == REDIS_REPLY_INTEGER) killed += (int)k->integer;
                if (k) freeReplyObject(k);
            }
            freeReplyObject(r);
        }
    }
    say("clients: %d upstream connection(s) killed (%s)", killed,
        by_addr ? "CLIENT KILL ADDR, one by one" : "CLIENT KILL TYPE normal");
    note_fault(t0, "kill %d client connections %s", killed, by_addr ? "by addr" : "by type");
    fault_counts[2]++;
}

static void fault_stall(void) {
    static int turn;
    int kind = turn++ % 3, r = -1, target, mi[OPS_MAX_NODES], n;
    int ms = kind == 0 ? 1500 : kind == 1 ? 3000 : 5000;
    long pid;
    char conf[1024], pidfile[1024], set[128];
    uint32_t t0;
    if (kind == 1) {
        if ((n = masters(mi, set, sizeof set, NULL)) <= 0) return;
        target = replica_of(mi[rand() % n]);
    } else if (kind == 2) {
        target = pick_master(&r);
    } else {
        if ((n = masters(mi, set, sizeof set, NULL)) <= 0) return;
        target = mi[rand() % n];
    }
    if (target < 0) {
        say("stall: no node fit for a %d ms stall now; skipped", ms);
        return;
    }
    if (ops_server_process(&cl.node[target], &pid, conf, sizeof conf, pidfile, sizeof pidfile) !=
        0) {
        say("stall: cannot tell %s's process", cl.node[target].addr);
        return;
    }
    round_();
    t0 = rel_ms();
    say("stall: SIGSTOP %s %s (pid %ld) for %d ms", kind == 1 ? "replica" : "master",
        cl.node[target].addr, pid, ms);
    if (kind == 2) fault_since_round = 1;
    stopped_pid = (sig_atomic_t)pid;
    kill((pid_t)pid, SIGSTOP);
    ops_node_close(&cl.node[target]);
    ops_sleep_ms(ms);
    kill((pid_t)pid, SIGCONT);
    stopped_pid = 0;
    say("stall: SIGCONT %s", cl.node[target].addr);
    if (kind == 2) {
        if (wait_promoted(r, 30000) == 0) promoted_at[r] = ops_now_ms();
        fault_since_round = 1;
    }
    settle("stall", 60000);
    note_fault(t0, "stall %s %s %d ms", kind == 1 ? "replica" : "master", cl.node[target].addr,
               ms);
    fault_counts[3]++;
}

static void on_signal(int sig) {
    if (stopped_pid) kill((pid_t)stopped_pid, SIGCONT); /* never leave a node stopped */
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- the gateway's process ------------------------------------------------------------ */

static long proc_rss_kb(long pid) {
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    if ((f = fopen(path, "r")) == NULL) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    fclose(f);
    return kb;
}

static int proc_fds(long pid) {
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    if ((d = opendir(path)) == NULL) return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- the check ------------------------------------------------------------------------ */

typedef struct tally {
    uint64_t ok, missing, wrong, errors;
} tally;

typedef struct item {
    int t;
    size_t n;
} item;

/* GETs the items in one pipeline on c and tallies (and shows the first few
 * losses). 0, or -1 when the connection failed. */
static int check_batch(redisContext *c, const item *it, size_t cnt, tally *all, tally *repl,
                       const char *where, int *shown) {
    size_t i;
    char key[96], val[128];
    for (i = 0; i < cnt; i++) {
        key_of(it[i].t, it[i].n, key, sizeof key);
        redisAppendCommand(c, "GET %s", key);
    }
    for (i = 0; i < cnt; i++) {
        redisReply *r;
        const rec *rc = &W[it[i].t].r[it[i].n];
        int rep = replicated(rc), bad = 0;
        tally *tl[2] = {all, rep ? repl : NULL};
        int k;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            say("check (%s): %s", where, c->errstr);
            return -1;
        }
        value_of(it[i].t, it[i].n, val, sizeof val);
        for (k = 0; k < 2; k++) {
            if (!tl[k]) continue;
            if (r->type == REDIS_REPLY_STRING && strcmp(r->str, val) == 0) tl[k]->ok++;
            else if (r->type == REDIS_REPLY_NIL) tl[k]->missing++, bad = 1;
            else if (r->type == REDIS_REPLY_STRING) tl[k]->wrong++, bad = 1;
            else tl[k]->errors++, bad = 1;
        }
        if (bad && (*shown)++ < 15) {
            int f, last = -1;
            for (f = 0; f < nfaults; f++)
                if (faults[f].at <= rc->done) last = f;
            key_of(it[i].t, it[i].n, key, sizeof key);
            say("  %s: %s %s (%s; sent +%.3fs, acked +%.3fs; last fault before: %s)", where, key,
                r->type == REDIS_REPLY_NIL      ? "missing"
                : r->type == REDIS_REPLY_STRING ? "wrong value"
                : r->str                        ? r->str
                                                : "error",
                rep ? "REPLICATED" : "acked only", rc->sent / 1000.0, rc->done / 1000.0,
                last >= 0 ? faults[last].what : "none");
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Node b's connection, (re)made; NULL when it cannot be. */
static redisContext *node_ctx(int b) {
    redisReply *p = ops_cmd(&cl.node[b], "PING");
    if (p == NULL) return NULL;
    freeReplyObject(p);
    return cl.node[b].ctx;
}

/* Every acknowledged write read back through the gateway (gw) or directly
 * from the master of its slot. -1 when the check could not be done. */
static int check_all(int direct, tally *all, tally *repl) {
    static item *batch[OPS_MAX_NODES + 1];
    size_t fill[OPS_MAX_NODES + 1] = {0}, cap = 2000;
    redisContext *gw = NULL;
    int t, b, shown = 0;
    const char *where = direct ? "direct" : "gateway";
    memset(all, 0, sizeof *all);
    memset(repl, 0, sizeof *repl);
    if (direct && ops_slot_owners(&cl, owner) != 0) return -1;
    if (!direct) {
        struct timeval tv = {10, 0};
        gw = redisConnectWithTimeout(gw_host, gw_port, tv);
        if (gw == NULL || gw->err) {
            say("check: cannot connect to the gateway: %s", gw ? gw->errstr : "out of memory");
            if (gw) redisFree(gw);
            return -1;
        }
        redisSetTimeout(gw, tv);
    }
    for (b = 0; b <= OPS_MAX_NODES; b++)
        if (!batch[b]) batch[b] = malloc(cap * sizeof *batch[b]);
    for (t = 0; t < nconns; t++) {
        size_t n;
        for (n = 0; n < W[t].n; n++) {
            char key[96];
            if (W[t].r[n].outcome != W_ACK) continue;
            if (direct) {
                key_of(t, n, key, sizeof key);
                b = owner[sg_keyslot(key, strlen(key))];
                if (b < 0) {
                    all->errors++;
                    continue;
                }
            } else {
                b = OPS_MAX_NODES;
            }
            batch[b][fill[b]++] = (item){t, n};
            if (fill[b] == cap) {
                redisContext *c = direct ? node_ctx(b) : gw;
                if (c == NULL || check_batch(c, batch[b], fill[b], all, repl, where, &shown) != 0) {
                    if (gw) redisFree(gw);
                    return -1;
                }
                fill[b] = 0;
            }
        }
    }
    for (b = 0; b <= OPS_MAX_NODES; b++) {
        redisContext *c;
        if (fill[b] == 0) continue;
        c = direct ? node_ctx(b) : gw;
        if (c == NULL || check_batch(c, batch[b], fill[b], all, repl, where, &shown) != 0) {
            if (gw) redisFree(gw);
            return -1;
        }
    }
    if (gw) redisFree(gw);
    return 0;
}

/* When ordered writer w sent the first append to its key keyno (ms since T0). */
static uint32_t seq_when(const writer *w, size_t keyno) {
    size_t i = keyno / SEQ_KEYS * SEQ_GROUP + keyno % SEQ_KEYS;
    return i < w->n ? w->r[i].sent : 0;
}

/* What a key whose final value does not rise looks like around its master b,
 * for the first few: its length there and on b's replica (READONLY), and
 * once per node its replication state (the ids and offsets a partial
 * resynchronization goes by). */
static void seq_diagnose(int b, const char *key, size_t len) {
    static int shown, info_shown[OPS_MAX_NODES];
    ops_node *m = &cl.node[b], *rep;
    redisReply *x;
    char line[512] = "";
    int i;
    if (shown++ >= 6) return;
    rep = ops_replica(&cl, m);
    if (rep) {
        x = ops_cmd(rep, "READONLY");
        if (x) freeReplyObject(x);
        x = ops_cmd(rep, "STRLEN %s", key);
        snprintf(line, sizeof line, "; on its replica %s: %lld bytes", rep->addr,
                 x && x->type == REDIS_REPLY_INTEGER ? x->integer : -1);
        if (x) freeReplyObject(x);
    }
    say("  diagnose %s: master %s, %zu bytes%s", key, m->addr, len, line);
    for (i = 0; i < cl.n; i++) {
        static const char *f[] = {"role", "master_host", "master_port", "master_replid",
                                  "master_replid2", "master_repl_offset", "second_repl_offset",
                                  "repl_backlog_first_byte_offset", "repl_backlog_histlen"};
        size_t k, o = 0;
        if (info_shown[i]++) continue;
        x = ops_cmd(&cl.node[i], "INFO replication");
        if (x == NULL || x->type != REDIS_REPLY_STRING) {
            say("    %s: INFO replication: %s", cl.node[i].addr,
                x ? "not a string" : cl.node[i].err);
            if (x) freeReplyObject(x);
            continue;
        }
        for (k = 0; k < sizeof f / sizeof *f && o < sizeof line; k++) {
            char v[64];
            ops_info_field(x->str, f[k], v, sizeof v);
            if (*v) o += (size_t)snprintf(line + o, sizeof line - o, " %s=%s", f[k], v);
        }
        say("    %s:%s", cl.node[i].addr, line);
        freeReplyObject(x);
    }
}

/* The ordered writers' keys read directly from their masters: each must
 * rise, hold every acknowledged append (else lost), and an append a GET
 * missed after its acknowledgement found here was overtaken. Adds to *acked,
 * *lost_acked, *lost_repl and the writers' reordered. -1: the check failed. */
static int check_seq(uint64_t *acked, uint64_t *lost_acked, uint64_t *lost_repl) {
    int t, shown = 0;
    if (ops_slot_owners(&cl, owner) != 0) return -1;
    for (t = 0; t < nseq; t++) {
        writer *w = &Q[t];
        size_t nkeys = w->n ? seq_key_no(w->n - 1) + 1 : 0, k, i;
        uint64_t *bits = calloc(nkeys + 1, sizeof *bits);
        int nbad[OPS_MAX_NODES] = {0}, b;
        uint32_t bad_last[OPS_MAX_NODES] = {0}, good_first[OPS_MAX_NODES];
        if (bits == NULL) return -1;
        for (b = 0; b < OPS_MAX_NODES; b++) good_first[b] = UINT32_MAX;
        for (k = 0; k < nkeys; k++) {
            char key[96];
            int rising, future;
            size_t max;
            redisContext *c;
            redisReply *r;
            seq_key(t, k, key, sizeof key);
            b = owner[sg_keyslot(key, strlen(key))];
            if (b < 0 || (c = node_ctx(b)) == NULL) {
                free(bits);
                return -1;
            }
            if ((r = redisCommand(c, "GET %s", key)) == NULL) {
                say("check (ordered): %s", c->errstr);
                free(bits);
                return -1;
            }
            if (r->type == REDIS_REPLY_STRING &&
                (seq_parse(r->str, r->len, k, (size_t)-1, &bits[k], &rising, &future, &max) != 0 ||
                 !rising)) {
                reordered(w, "a key's final value does not rise", key, r->str);
                seq_diagnose(b, key, r->len);
                nbad[b]++;
                if (seq_when(w, k) > bad_last[b]) bad_last[b] = seq_when(w, k);
            } else if (r->type == REDIS_REPLY_STRING && seq_when(w, k) < good_first[b]) {
                good_first[b] = seq_when(w, k);
            }
            freeReplyObject(r);
        }
        for (b = 0; b < cl.n; b++)
            if (nbad[b])
                say("  ordered writer %d: %d keys on %s do not rise, the last written +%.3fs; "
                    "the first that rises there written +%.3fs",
                    t, nbad[b], cl.node[b].addr, bad_last[b] / 1000.0,
                    good_first[b] == UINT32_MAX ? -1.0 : good_first[b] / 1000.0);
        for (i = 0; i < w->n; i++) {
            size_t j = (i % SEQ_GROUP) / SEQ_KEYS;
            if (w->r[i].outcome != W_ACK) continue;
            (*acked)++;
            if (bits[seq_key_no(i)] >> j & 1) continue;
            (*lost_acked)++;
            if (replicated(&w->r[i])) (*lost_repl)++;
            if (shown++ < 15) {
                char key[96];
                seq_key(t, seq_key_no(i), key, sizeof key);
                say("  ordered: append %zu to %s lost (%s; sent +%.3fs, acked +%.3fs)", i, key,
                    replicated(&w->r[i]) ? "REPLICATED" : "acked only", w->r[i].sent / 1000.0,
                    w->r[i].done / 1000.0);
            }
        }
        for (i = 0; i < w->ncand; i++) {
            size_t a = w->cand[i];
            if (bits[seq_key_no(a)] >> ((a % SEQ_GROUP) / SEQ_KEYS) & 1) {
                char key[96], d[64];
                seq_key(t, seq_key_no(a), key, sizeof key);
                snprintf(d, sizeof d, "append %zu", a);
                reordered(w, "a GET after an acknowledged append ran before it", key, d);
            }
        }
        free(bits);
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void) {
    fprintf(stderr, "usage: chaos --gateway HOST:PORT [--cluster H:P,...] [--duration S] "
                    "[--conns N] [--seq-conns N] [--pipeline N] [--sg-pid PID] [--seed N] "
                    "[--durable 1]\n(see the top of "
                    "bench/chaos.c)\n");
    exit(2);
}

int main(int argc, char **argv) {
    int i, t, rc = 0;
    long rss0 = -1, rss1 = -1;
    int fds0 = -1, fds1 = -1;
    uint64_t deadline;
    char problem[4096];
    const char *gw = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) usage();
        if (strcmp(a, "--gateway") == 0) gw = v;
        else if (strcmp(a, "--cluster") == 0) cluster_addrs = v;
        else if (strcmp(a, "--duration") == 0) duration_s = atoi(v);
        else if (strcmp(a, "--conns") == 0) nconns = atoi(v);
        else if (strcmp(a, "--sg-pid") == 0) sg_pid = atol(v);
        else if (strcmp(a, "--seed") == 0) seed = (unsigned)atol(v);
        else if (strcmp(a, "--pipeline") == 0) pipeline = atoi(v);
        else if (strcmp(a, "--seq-conns") == 0) nseq = atoi(v);
        else if (strcmp(a, "--durable") == 0) durable = atoi(v);
        else usage();
        i++;
    }
    if (gw == NULL || duration_s < 1 || nconns < 1 || nconns > MAX_CONNS || pipeline < 1 ||
        pipeline > 1000 || nseq < 0 || nseq > MAX_CONNS)
        usage();
    test_split_addr(gw, gw_host, sizeof gw_host, &gw_port);
    if (cluster_addrs == NULL) cluster_addrs = test_server_var("SG_TEST_CLUSTER");
    if (seed == 0) seed = (unsigned)time(NULL);
    srand(seed);
    snprintf(run_id, sizeof run_id, "%08x", (unsigned)rand());
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    T0 = ops_now_ms();

    ops_cluster_init(&cl, cluster_addrs);
    if (ops_wait_settled(&cl, NULL, 30000, NULL, NULL, problem, sizeof problem) != 0) {
        say("the cluster is not settled before the run: %s", problem);
        return 1;
    }
    {
        char v[32];
        if (ops_config_get(&cl.node[0], "cluster-node-timeout", v, sizeof v) == 0)
            node_timeout_ms = atoll(v);
    }
    if (sg_pid > 0) {
        rss0 = proc_rss_kb(sg_pid);
        fds0 = proc_fds(sg_pid);
    }
    say("run %s (seed %u): %d connections to %s for %d s; cluster %s; cluster-node-timeout "
        "%lld ms; gateway pid %ld, RSS %ld kB, %d fds",
        run_id, seed, nconns, gw, duration_s, cluster_addrs, node_timeout_ms, sg_pid, rss0, fds0);

    for (t = 0; t < nconns; t++) {
        W[t].id = t;
        W[t].cap = (size_t)(24000000 / nconns);
        W[t].r = calloc(W[t].cap, sizeof *W[t].r);
        if (W[t].r == NULL) {
            say("out of memory");
            return 1;
        }
        pthread_create(&W[t].tid, NULL, writer_main, &W[t]);
    }
    for (t = 0; t < nseq; t++) {
        Q[t].id = t;
        Q[t].appends = 1;
        Q[t].cap = (size_t)(8000000 / (nseq ? nseq : 1));
        Q[t].r = calloc(Q[t].cap, sizeof *Q[t].r);
        Q[t].last_read_max =
            calloc(Q[t].cap / SEQ_GROUP * SEQ_KEYS + SEQ_KEYS * 2, sizeof(uint32_t));
        if (Q[t].r == NULL || Q[t].last_read_max == NULL) {
            say("out of memory");
            return 1;
        }
        pthread_create(&Q[t].tid, NULL, seq_main, &Q[t]);
    }

    deadline = T0 + (uint64_t)duration_s * 1000;
    calm(2000);
    for (i = 0; ops_now_ms() + 12000 < deadline; i++) { /* a fault takes up to ~10 s */
        switch (i % 4) {
        case 0: fault_kill(); break;
        case 1: fault_migrate(); break;
        case 2: fault_clients(); break;
        case 3: fault_stall(); break;
        }
        calm(1500);
    }
    while (ops_now_ms() < deadline) calm(500);
    round_();
    atomic_store(&stop_load, 1);
    for (t = 0; t < nconns; t++) pthread_join(W[t].tid, NULL);
    for (t = 0; t < nseq; t++) pthread_join(Q[t].tid, NULL);
    round_(); /* covers the last writes */
    say("load stopped; %d faults", nfaults);

    /* ---- figures ---- */
    {
        uint64_t writes = 0, acks = 0, fails = 0, unknown = 0, reconnects = 0, repl = 0, wrong = 0;
        uint32_t max_gap = 0, max_call = 0, end_ms = rel_ms(), run_gap = 0, g0 = 2000;
        unsigned char *served = calloc(end_ms + 1, 1);
        uint32_t ms;
        tally ga, gr, da, dr;
        int gw_ok, d_ok, q_ok;
        uint64_t q_acked = 0, q_lost = 0, q_lost_repl = 0, q_sent = 0, q_reads = 0, q_stale = 0;
        uint64_t reord = 0, lost_repl, lost_acked;
        for (t = 0; t < nconns; t++) {
            size_t n;
            writes += W[t].n;
            acks += W[t].acks;
            fails += W[t].fails;
            unknown += W[t].unknown;
            reconnects += W[t].reconnects;
            wrong += W[t].wrong;
            if (W[t].max_gap > max_gap) max_gap = W[t].max_gap;
            if (W[t].max_call > max_call) max_call = W[t].max_call;
            for (n = 0; n < W[t].n; n++)
                if (W[t].r[n].outcome == W_ACK) {
                    repl += replicated(&W[t].r[n]);
                    if (served && W[t].r[n].done <= end_ms) served[W[t].r[n].done] = 1;
                }
        }
        /* the longest time in which no connection had a write acknowledged
         * (after the first calm 2 s, until the load stopped) */
        for (ms = 2000; served && ms <= end_ms && ms < (uint32_t)duration_s * 1000; ms++) {
            if (served[ms]) {
                if (ms - g0 > run_gap) run_gap = ms - g0;
                g0 = ms;
            }
        }
        free(served);
        settle("before the check", 60000);
        if (sg_pid > 0) {
            rss1 = proc_rss_kb(sg_pid);
            fds1 = proc_fds(sg_pid);
        }
        say("checking %llu acknowledged writes through the gateway and directly",
            (unsigned long long)acks);
        gw_ok = check_all(0, &ga, &gr) == 0;
        d_ok = check_all(1, &da, &dr) == 0;
        q_ok = check_seq(&q_acked, &q_lost, &q_lost_repl) == 0;
        for (t = 0; t < nseq; t++) {
            q_sent += Q[t].n;
            q_reads += Q[t].reads;
            q_stale += Q[t].stale_reads;
            reord += Q[t].reordered;
            wrong += Q[t].wrong;
        }
        lost_repl = dr.missing + dr.wrong + dr.errors + q_lost_repl;
        lost_acked = da.missing + da.wrong + da.errors + q_lost;

        printf("\n==== chaos: %d s, %d connections, run %s\n", duration_s, nconns, run_id);
        printf("faults: %d kill+restart, %d migrations, %d client kills, %d stalls\n",
               fault_counts[0], fault_counts[1], fault_counts[2], fault_counts[3]);
        for (i = 0; i < nfaults; i++)
            printf("  +%7.1fs  %-70s (%u ms to settle)\n", faults[i].at / 1000.0, faults[i].what,
                   faults[i].took);
        printf("writes: %llu sent, %llu acknowledged (%llu of them confirmed replicated), "
               "%llu failed, %llu unknown outcome; %llu reconnects\n",
               (unsigned long long)writes, (unsigned long long)acks, (unsigned long long)repl,
               (unsigned long long)fails, (unsigned long long)unknown,
               (unsigned long long)reconnects);
        printf("replies that cannot answer their command (out of order, another key's): %llu\n",
               (unsigned long long)wrong);
        printf("replication rounds: %llu succeeded, %llu did not (a master without a replica "
               "or unreachable); %d confirmed interval(s)\n",
               (unsigned long long)rounds_ok, (unsigned long long)rounds_bad, nivals);
        if (d_ok)
            printf("lost (read directly): %llu of %llu replicated, %llu of %llu acknowledged "
                   "(missing %llu, wrong value %llu, errors %llu)\n",
                   (unsigned long long)(dr.missing + dr.wrong + dr.errors),
                   (unsigned long long)repl,
                   (unsigned long long)(da.missing + da.wrong + da.errors),
                   (unsigned long long)acks, (unsigned long long)da.missing,
                   (unsigned long long)da.wrong, (unsigned long long)da.errors);
        else
            printf("lost (read directly): THE CHECK FAILED\n");
        if (gw_ok)
            printf("read through the gateway: %llu found, %llu missing, %llu wrong, %llu errors\n",
                   (unsigned long long)ga.ok, (unsigned long long)ga.missing,
                   (unsigned long long)ga.wrong, (unsigned long long)ga.errors);
        else
            printf("read through the gateway: THE CHECK FAILED\n");
        if (q_ok)
            printf("ordered writers (%d): %llu appends sent, %llu acknowledged, %llu lost; %llu "
                   "reads, %llu REORDERED; %llu reads older than the one before (after a lost "
                   "write)\n",
                   nseq, (unsigned long long)q_sent, (unsigned long long)q_acked,
                   (unsigned long long)q_lost, (unsigned long long)q_reads,
                   (unsigned long long)reord, (unsigned long long)q_stale);
        else printf("ordered writers: THE CHECK FAILED\n");
        printf("errors seen by the clients, by kind (N: a number):\n");
        for (i = 0; i < nkinds; i++)
            printf("  %8llu  %-90s (+%.1fs..+%.1fs)\n", (unsigned long long)kinds[i].count,
                   kinds[i].kind, kinds[i].first / 1000.0, kinds[i].last / 1000.0);
        if (nkinds == 0) printf("  none\n");
        printf("longest time without service: %u ms with no write acknowledged on any "
               "connection; %u ms between two acks on one connection; %u ms the longest "
               "single write\n",
               run_gap, max_gap, max_call);
        if (sg_pid > 0)
            printf("slotgated (pid %ld): RSS %ld kB before, %ld kB after; open files %d before, "
                   "%d after\n",
                   sg_pid, rss0, rss1, fds0, fds1);
        printf("RESULT chaos writes=%llu acked=%llu replicated=%llu lost_replicated=%llu "
               "lost_acked=%llu gw_missing=%llu wrong_replies=%llu reordered=%llu appends=%llu "
               "durable=%d max_gap_ms=%u conn_gap_ms=%u rss0_kb=%ld rss1_kb=%ld fds0=%d fds1=%d "
               "check=%s\n",
               (unsigned long long)writes, (unsigned long long)acks, (unsigned long long)repl,
               (unsigned long long)lost_repl, (unsigned long long)lost_acked,
               (unsigned long long)(ga.missing + ga.wrong + ga.errors), (unsigned long long)wrong,
               (unsigned long long)reord, (unsigned long long)q_sent, durable, run_gap, max_gap,
               rss0, rss1, fds0, fds1, gw_ok && d_ok && q_ok ? "done" : "failed");
        if (!d_ok || !gw_ok || !q_ok || lost_repl > 0 || wrong > 0 || reord > 0 ||
            (durable && lost_acked > 0))
            rc = 1;
    }
    for (t = 0; t < nconns; t++) free(W[t].r);
    for (t = 0; t < nseq; t++) {
        free(Q[t].r);
        free(Q[t].cand);
        free(Q[t].last_read_max);
    }
    ops_cluster_close(&cl);
    return rc;
}
