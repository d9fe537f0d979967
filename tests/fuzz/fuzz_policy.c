/*
 * fuzz_policy.c — libFuzzer target for the policy-script loader (core/src/
 * policy.c): the input is a policy script's Lua text, loaded with
 * sg_policy_load_string under low limits (20 000 instructions, 20 ms), then,
 * when it loads, applied to a fixed set of commands (keyed, multi-key,
 * keyless, with numkeys, a container's subcommand, binary keys) and
 * explained.
 *
 * Checks: a failed load says why on the handle and leaves no script; a
 * decision is well formed (a rewritten argv of argc arguments, every default
 * TTL on an argument of it with at least a second, a deny with a message);
 * the next command is decided normally after a hook that failed or ran too
 * long. Crashes, leaks, undefined behaviour (sanitizers) and hangs
 * (libFuzzer's -timeout) fail.
 *
 * Build and run: tests/fuzz/run.sh 60 policy. Replayed by ctest
 * (fuzz_policy_corpus) through replay_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define INSTR_LIMIT 20000L
#define TIME_LIMIT_MS 20

typedef struct cmd {
    int argc;
    const char *argv[8];
    size_t len[8];
} cmd;

static const cmd cmds[] = {
    {3, {"SET", "apikey-abc", "v"}, {3, 10, 1}},
    {2, {"GET", "cache-1"}, {3, 7}},
    {4, {"MGET", "a", "{t}b", "analytics-x"}, {4, 1, 4, 11}},
    {5, {"EVAL", "return 1", "2", "k1", "k2"}, {4, 8, 1, 2, 2}},
    {3, {"CONFIG", "SET", "x"}, {6, 3, 1}},
    {1, {"FLUSHALL"}, {8}},
    {2, {"DEL", "bin\0key"}, {3, 7}},
    {6, {"ZUNIONSTORE", "d", "2", "s1", "s2", "WEIGHTS"}, {11, 1, 1, 2, 2, 7}},
};

static void check_decision(const sg_decision *d, int argc) {
    int i;
    if (d->deny && d->errmsg[0] == '\0') abort();
    if (d->rewritten) {
        if (d->argc < 1 || d->argv == NULL || d->argvlen == NULL) abort();
        for (i = 0; i < d->argc; i++)
            if (d->argv[i] == NULL) abort();
    }
    for (i = 0; i < d->nttls; i++)
        if (d->ttls[i].argi < 1 || d->ttls[i].argi >= (d->rewritten ? d->argc : argc) ||
            d->ttls[i].seconds < 1)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const sg_request_ctx ctx = {.user = "alice", .client = "app-1",
                                       .addr = "127.0.0.1:5000"};
    sg_policy *p;
    char *code = malloc(size + 1);
    size_t i;

    if (code == NULL) abort();
    memcpy(code, data, size);
    code[size] = '\0';
    if ((p = sg_policy_new()) == NULL) abort();
    if (sg_policy_set_limits(p, INSTR_LIMIT, TIME_LIMIT_MS) != SG_OK) abort();
    if (sg_policy_load_string(p, "fuzz.lua", code) != SG_OK) {
        if (sg_errcode(p) != SG_ESCRIPT && sg_errcode(p) != SG_ENOMEM) abort();
        if (sg_errmsg(p)[0] == '\0' || sg_policy_count(p) != 0) abort();
    } else {
        if (sg_policy_count(p) != 1 || sg_policy_name(p, 0) == NULL) abort();
        for (i = 0; i < sizeof cmds / sizeof *cmds; i++) {
            const cmd *c = &cmds[i];
            sg_decision d;
            char *text;
            int rc;
            sg_decision_init(&d);
            rc = sg_policy_apply(p, i & 1 ? NULL : &ctx, c->argc, c->argv, c->len, &d);
            if (rc != SG_OK && rc != SG_ENOMEM) abort();
            if (rc == SG_OK) check_decision(&d, c->argc);
            sg_decision_clear(&d);
            text = sg_policy_explain(p, &ctx, c->argc, c->argv, c->len);
            if (text == NULL) abort();
            sg_free_string(text);
        }
    }
    sg_policy_free(p);
    free(code);
    return 0;
}
