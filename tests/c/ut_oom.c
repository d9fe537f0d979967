/*
 * ut_oom.c — out of memory along a whole request path. Two fake nodes form a
 * cluster (slots split in halves); a path runs client new, connect, SET,
 * GET, a GET answered by ASK and one by MOVED, MGET across both nodes, a
 * small pipeline, and free. It runs once to
 * count the library's allocations, then once for every n from 1 to that
 * count with the nth allocation failing (sg_alloc_fail_at). Each run must
 * end: every step either succeeds with exactly the right reply, or fails
 * with an error code and a message; nothing crashes, hangs or leaks (run it
 * in the sanitizer build: each run is leak-checked on its own there).
 *
 * The same is done for the async API on a caller's event_base, where a
 * failure must still keep the promises: the callback runs exactly once,
 * never inside sg_client_send, or the send returns an error and it never
 * runs. hiredis's and libevent's own buffers use malloc directly, so only
 * the library's allocations fail.
 */
#include <event2/event.h>
#include <signal.h>
#include <unistd.h>

#include "fakenode.h"
#include "sg_internal.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#else
#define HAVE_LSAN 0
#endif

static fn_node *A, *B;
static char KA[32], KB[32], KA2[32], KB2[32]; /* keys on A and on B */
static char KASK[32], KMOVED[32]; /* A's slots, answered by B after ASK / MOVED */
static unsigned long current_n;

/* ---- what each run saw --------------------------------------------------------------------- */

#define MAX_KINDS 64

/* Distinct failures (step, code, message start), with how often and the
 * first n that gave each. */
static struct kind {
    char step[24];
    int code;
    char msg[120];
    char full[300]; /* the first one's whole message */
    int count;
    unsigned long first_n;
} kinds[MAX_KINDS];
static int nkinds;

static void saw_failure(const char *step, int code, const char *msg) {
    char head[120];
    int i;
    /* the message up to the first port number or count, so that runs group */
    snprintf(head, sizeof head, "%s", msg ? msg : "");
    head[strcspn(head, "0123456789")] = '\0';
    for (i = 0; i < nkinds; i++)
        if (kinds[i].code == code && strcmp(kinds[i].step, step) == 0 &&
            strcmp(kinds[i].msg, head) == 0) {
            kinds[i].count++;
            return;
        }
    if (nkinds == MAX_KINDS) return;
    snprintf(kinds[nkinds].step, sizeof kinds[nkinds].step, "%s", step);
    kinds[nkinds].code = code;
    snprintf(kinds[nkinds].msg, sizeof kinds[nkinds].msg, "%s", head);
    snprintf(kinds[nkinds].full, sizeof kinds[nkinds].full, "%s", msg ? msg : "");
    kinds[nkinds].count = 1;
    kinds[nkinds].first_n = current_n;
    nkinds++;
}

static void print_kinds(const char *title) {
    int i;
    printf("%s: %d kinds of failure\n", title, nkinds);
    for (i = 0; i < nkinds; i++)
        printf("  %-9s %-9s x%-3d first n=%-4lu %s\n", kinds[i].step,
               sg_errname(kinds[i].code), kinds[i].count, kinds[i].first_n, kinds[i].full);
    nkinds = 0;
}

/* A failure must carry a code and say something. */
static void check_failure(const char *step, int code, const char *msg) {
    test_checks++;
    if (code >= 0 || msg == NULL || msg[0] == '\0')
        TEST_FAIL_("n=%lu %s: failed without a code or message (code %d, \"%s\")", current_n,
                   step, code, msg ? msg : "(null)");
    saw_failure(step, code, msg);
}

static int is_str(const sg_reply *r, int type, const char *s) {
    return r && r->type == type && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* A reply that came back must be exactly right. */
static void check_reply(const char *step, const sg_reply *r, int type, const char *s) {
    test_checks++;
    if (!is_str(r, type, s))
        TEST_FAIL_("n=%lu %s: wrong reply: type %d \"%s\" (expected %d \"%s\")", current_n, step,
                   r ? r->type : -1, r && r->str ? r->str : "", type, s);
}

/* ---- the blocking path ---------------------------------------------------------------------- */

/* Returns the number of steps that failed. */
static int blocking_path(const sg_config *cfg) {
    sg_client *c;
    sg_pipeline *p;
    sg_reply *r;
    int failed = 0, rc;
    size_t i;
    c = sg_client_new(cfg, NULL, NULL);
    if (c == NULL) {
        saw_failure("new", SG_ENOMEM, "NULL");
        return 1;
    }
    if (sg_errcode(c) != SG_OK) {
        check_failure("new", sg_errcode(c), sg_errmsg(c));
        sg_client_free(c);
        return 1;
    }
    if ((rc = sg_client_connect(c)) != SG_OK) {
        check_failure("connect", rc, sg_errmsg(c));
        test_checks++;
        if (rc != sg_errcode(c)) TEST_FAIL_("n=%lu connect: %d but errcode %d", current_n, rc,
                                            sg_errcode(c));
        failed++;
    }
#define CALL(step, type, expect, ...)                                                      \
    do {                                                                                   \
        r = sg_client_call(c, __VA_ARGS__);                                                \
        if (r == NULL) {                                                                   \
            check_failure(step, sg_errcode(c), sg_errmsg(c));                              \
            failed++;                                                                      \
        } else {                                                                           \
            check_reply(step, r, type, expect);                                            \
        }                                                                                  \
        sg_reply_free(r);                                                                  \
    } while (0)
    CALL("SET", SG_REPLY_STATUS, "OK", "SET %s %s", KA, "va");
    CALL("GET", SG_REPLY_STRING, "va", "GET %s", KA);
    CALL("GET B", SG_REPLY_STRING, "vb", "GET %s", KB);
    CALL("ASK", SG_REPLY_STRING, "asked", "GET %s", KASK);
    CALL("MOVED", SG_REPLY_STRING, "moved", "GET %s", KMOVED);
#undef CALL
    r = sg_client_call(c, "MGET %s %s %s %s", KA, KB, KA2, KB2);
    if (r == NULL) {
        check_failure("MGET", sg_errcode(c), sg_errmsg(c));
        failed++;
    } else {
        test_checks++;
        if (r->type != SG_REPLY_ARRAY || r->elements != 4)
            TEST_FAIL_("n=%lu MGET: type %d, %zu elements (%s)", current_n, r->type, r->elements,
                       r->str ? r->str : "");
        else {
            check_reply("MGET[0]", r->element[0], SG_REPLY_STRING, "va");
            check_reply("MGET[1]", r->element[1], SG_REPLY_STRING, "vb");
            check_reply("MGET[2]", r->element[2], SG_REPLY_STRING, "va2");
            check_reply("MGET[3]", r->element[3], SG_REPLY_STRING, "vb2");
        }
        sg_reply_free(r);
    }
    if ((p = sg_pipeline_new(c)) == NULL) {
        saw_failure("pipe new", SG_ENOMEM, "NULL");
        failed++;
    } else {
        static const char *const expect[] = {"OK", "vb", "va2", "OK", "vb2"};
        int appended = 0;
        appended += sg_pipeline_append(p, "SET %s %s", KA, "va") == SG_OK;
        appended += sg_pipeline_append(p, "GET %s", KB) == SG_OK;
        appended += sg_pipeline_append(p, "GET %s", KA2) == SG_OK;
        appended += sg_pipeline_append(p, "SET %s %s", KB, "vb") == SG_OK;
        appended += sg_pipeline_append(p, "GET %s", KB2) == SG_OK;
        if (appended < 5) {
            check_failure("append", sg_errcode(c), sg_errmsg(c));
            failed++;
        } else if ((rc = sg_pipeline_exec(p)) != SG_OK) {
            check_failure("exec", rc, sg_errmsg(c));
            failed++;
        } else {
            for (i = 0; i < sg_pipeline_count(p); i++) {
                int status = -999;
                const char *msg = NULL;
                const sg_reply *pr = sg_pipeline_reply(p, i, &status, &msg);
                if (pr == NULL) {
                    check_failure("pipe cmd", status, msg);
                    failed++;
                } else {
                    test_checks++;
                    if (status != SG_OK)
                        TEST_FAIL_("n=%lu pipeline %zu: a reply and status %d", current_n, i,
                                   status);
                    check_reply("pipe cmd", pr,
                                i == 0 || i == 3 ? SG_REPLY_STATUS : SG_REPLY_STRING, expect[i]);
                }
            }
        }
        sg_pipeline_free(p);
    }
    sg_client_free(c);
    return failed;
}

/* ---- the async path -------------------------------------------------------------------------- */

static int in_send;

typedef struct outcome {
    int calls, during_send, status;
    sg_reply *reply;
    char msg[SG_ERRMSG_MAX];
} outcome;

static void on_outcome(sg_client *c, sg_reply *reply, int status, const char *errmsg, void *ud) {
    outcome *o = ud;
    (void)c;
    o->calls++;
    if (in_send) o->during_send++;
    if (o->calls > 1) {
        sg_reply_free(reply);
        return;
    }
    o->status = status;
    o->reply = reply;
    snprintf(o->msg, sizeof o->msg, "%s", errmsg ? errmsg : "");
}

static int async_path(const sg_config *cfg, struct event_base *base) {
    static const char *const what[] = {"aSET", "aGET", "aMGET", "aCROSS", "aGET B"};
    outcome o[5];
    int sent[5], failed = 0, i;
    sg_client *c = sg_client_new(cfg, NULL, base);
    memset(o, 0, sizeof o);
    if (c == NULL) {
        saw_failure("anew", SG_ENOMEM, "NULL");
        return 1;
    }
    if (sg_errcode(c) != SG_OK) {
        check_failure("anew", sg_errcode(c), sg_errmsg(c));
        sg_client_free(c);
        return 1;
    }
    in_send = 1;
    sent[0] = sg_client_send(c, on_outcome, &o[0], "SET %s %s", KA, "va");
    sent[1] = sg_client_send(c, on_outcome, &o[1], "GET %s", KA);
    sent[2] = sg_client_send(c, on_outcome, &o[2], "MGET %s %s", KA, KB);
    sent[3] = sg_client_send(c, on_outcome, &o[3], "SUNION %s %s", KA, KB);
    sent[4] = sg_client_send(c, on_outcome, &o[4], "GET %s", KB);
    in_send = 0;
    for (i = 0; i < 5; i++) {
        test_checks++;
        if (o[i].during_send)
            TEST_FAIL_("n=%lu %s: callback ran inside sg_client_send (status %s: %s)", current_n,
                       what[i], sg_errname(o[i].status), o[i].msg);
        if (sent[i] != SG_OK) {
            check_failure(what[i], sent[i], sg_errmsg(c));
            failed++;
        }
    }
    /* run until every accepted command has its callback (bounded by the alarm) */
    for (;;) {
        int waiting = 0;
        for (i = 0; i < 5; i++)
            if (sent[i] == SG_OK && o[i].calls == 0) waiting++;
        if (!waiting) break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    sg_client_free(c);
    event_base_loop(base, EVLOOP_NONBLOCK); /* nothing may come after */
    for (i = 0; i < 5; i++) {
        test_checks++;
        if (sent[i] == SG_OK && o[i].calls != 1)
            TEST_FAIL_("n=%lu %s: %d callbacks", current_n, what[i], o[i].calls);
        if (sent[i] != SG_OK && o[i].calls != 0)
            TEST_FAIL_("n=%lu %s: refused (%d) but called back", current_n, what[i], sent[i]);
        if (sent[i] != SG_OK || o[i].calls == 0) continue;
        if (o[i].status != SG_OK) {
            check_failure(what[i], o[i].status, o[i].msg);
            failed++;
            continue;
        }
        switch (i) {
        case 0: check_reply(what[i], o[i].reply, SG_REPLY_STATUS, "OK"); break;
        case 1: check_reply(what[i], o[i].reply, SG_REPLY_STRING, "va"); break;
        case 2:
            test_checks++;
            if (o[i].reply == NULL || o[i].reply->type != SG_REPLY_ARRAY ||
                o[i].reply->elements != 2)
                TEST_FAIL_("n=%lu aMGET: not a 2-element array (type %d)", current_n,
                           o[i].reply ? o[i].reply->type : -1);
            else {
                check_reply("aMGET[0]", o[i].reply->element[0], SG_REPLY_STRING, "va");
                check_reply("aMGET[1]", o[i].reply->element[1], SG_REPLY_STRING, "vb");
            }
            break;
        case 3:
            check_reply(what[i], o[i].reply, SG_REPLY_ERROR,
                        "CROSSSLOT Keys in request don't hash to the same slot");
            break;
        case 4: check_reply(what[i], o[i].reply, SG_REPLY_STRING, "vb"); break;
        }
        sg_reply_free(o[i].reply);
    }
    return failed;
}

/* A key (into a 32-byte buffer) whose slot lies in [lo, hi]. */
static void key_in(const char *prefix, int lo, int hi, char *buf) {
    int i;
    for (i = 0;; i++) {
        unsigned slot;
        snprintf(buf, 32, "%s%d", prefix, i);
        slot = sg_keyslot(buf, strlen(buf));
        if ((int)slot >= lo && (int)slot <= hi) return;
    }
}

/* ---- the runs -------------------------------------------------------------------------------- */

static void on_alarm(int sig) {
    char msg[96];
    int len = snprintf(msg, sizeof msg, "FAIL: the run with allocation %lu failing hung\n",
                       current_n);
    (void)sig;
    if (write(2, msg, (size_t)len) < 0) {
    }
    _exit(1);
}

static int leak_check(void) {
#if HAVE_LSAN
    return __lsan_do_recoverable_leak_check();
#else
    return 0;
#endif
}

typedef int (*path_fn)(const sg_config *cfg, struct event_base *base);

static int run_blocking(const sg_config *cfg, struct event_base *base) {
    (void)base;
    return blocking_path(cfg);
}

static void every_failure(const char *name, path_fn path, const sg_config *cfg,
                          struct event_base *base) {
    unsigned long total, n, ran_clean = 0;
    int leaked = 0, failed;
    uint64_t t0 = fn_now_ms();
    /* OOM_N=n runs only that one (to debug it) */
    unsigned long only = getenv("OOM_N") ? strtoul(getenv("OOM_N"), NULL, 10) : 0;
    sg_alloc_fail_at(0);
    current_n = 0;
    alarm(30);
    failed = path(cfg, base);
    alarm(0);
    total = sg_alloc_fail_at(0);
    CHECK_INT(failed, 0); /* with memory, everything works */
    printf("%s: %lu allocations without failures\n", name, total);
    CHECK(total > 20);
    for (n = 1; n <= total + 5; n++) {
        unsigned long made;
        if (only && n != only) continue;
        current_n = n;
        alarm(30);
        sg_alloc_fail_at(n);
        failed = path(cfg, base);
        made = sg_alloc_fail_at(0);
        alarm(0);
        if (made < n) ran_clean++; /* the failure was never reached */
        if (!leaked && leak_check()) {
            leaked = 1;
            TEST_FAIL_("%s: leak with allocation %lu failing (report above)", name, n);
        }
        (void)failed;
    }
    CHECK(ran_clean >= 1); /* the loop went past the last allocation */
    print_kinds(name);
    printf("%s: %lu runs in %llu ms\n", name, total + 5, (unsigned long long)(fn_now_ms() - t0));
}

static void test_oom_blocking(void) {
    const char *env[8];
    char addrs[64];
    sg_config *cfg = sg_config_new();
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=%s", A->addr);
    env[0] = addrs;
    env[1] = "TYK_GW_STORAGE_ENABLECLUSTER=true";
    env[2] = "TYK_GW_STORAGE_TIMEOUT=1";
    env[3] = NULL;
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env), SG_OK);
    every_failure("blocking", run_blocking, cfg, NULL);
    sg_config_free(cfg);
}

static void test_oom_async(void) {
    const char *env[8];
    char addrs[64];
    sg_config *cfg = sg_config_new();
    struct event_base *base = event_base_new();
    snprintf(addrs, sizeof addrs, "TYK_GW_STORAGE_ADDRS=%s", A->addr);
    env[0] = addrs;
    env[1] = "TYK_GW_STORAGE_ENABLECLUSTER=true";
    env[2] = "TYK_GW_STORAGE_TIMEOUT=1";
    env[3] = NULL;
    CHECK_INT(sg_config_load(cfg, NULL, SG_SHAPE_GATEWAY, env), SG_OK);
    every_failure("async", async_path, cfg, base);
    event_base_free(base);
    sg_config_free(cfg);
}

int main(void) {
    fn_node *both[2];
    fn_range halves[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_alarm);
    A = fn_start();
    B = fn_start();
    both[0] = A;
    both[1] = B;
    halves[0] = (fn_range){0, 8191, A};
    halves[1] = (fn_range){8192, SG_SLOTS - 1, B};
    fn_cluster(both, 2, halves, 2);
    key_in("a", 0, 8191, KA);
    key_in("a2-", 0, 8191, KA2);
    key_in("b", 8192, SG_SLOTS - 1, KB);
    key_in("b2-", 8192, SG_SLOTS - 1, KB2);
    key_in("ask", 0, 8191, KASK);
    key_in("moved", 0, 8191, KMOVED);
    {
        char redirect[64];
        snprintf(redirect, sizeof redirect, "-ASK %u %s\r\n", sg_keyslot(KASK, strlen(KASK)),
                 B->addr);
        fn_rule_add(A, (fn_spec){.cmd = "GET", .key = KASK, .reply = redirect});
        snprintf(redirect, sizeof redirect, "-MOVED %u %s\r\n",
                 sg_keyslot(KMOVED, strlen(KMOVED)), B->addr);
        fn_rule_add(A, (fn_spec){.cmd = "GET", .key = KMOVED, .reply = redirect});
        fn_set(B, KASK, "asked");
        fn_set(B, KMOVED, "moved");
    }
    fn_set(A, KA, "va");
    fn_set(A, KA2, "va2");
    fn_set(B, KB, "vb");
    fn_set(B, KB2, "vb2");
    RUN(test_oom_blocking);
    RUN(test_oom_async);
    fn_free(A);
    fn_free(B);
    return test_report();
}
