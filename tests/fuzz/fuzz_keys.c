/*
 * fuzz_keys.c — libFuzzer target for command-key extraction (core/src/
 * commands.c): which arguments of a request are keys, per the command table
 * (key specs, keyword searches, numkeys, the hand-written SORT, MIGRATE, SET,
 * BITFIELD finders), and the routing facts the router reads with them.
 *
 * Input: the request's arguments, one a line ("ZUNIONSTORE\nd\n2\na\nb").
 *
 * Checks: the command resolves to what its name looks up, or one of its
 * subcommands; sg_command_keys and sg_command_keys_ex agree; every key index
 * is an argument after the command's name; the count never exceeds argc;
 * asking for fewer keys (maxkeys) writes a prefix of the same list and
 * returns the same count; with the not_key arguments there are as many keys
 * or more (or none can be found: SG_CMD_EKEYS); an arity failure is
 * SG_CMD_EARITY exactly when the arity check fails; the
 * names of the route, split and merge policies exist. Crashes, reads past an
 * argument and undefined behaviour abort through the sanitizers: every
 * argument is a separate allocation of exactly its length (no NUL after it).
 *
 * Build and run: tests/fuzz/run.sh 60 keys. Replayed by ctest
 * (fuzz_keys_corpus) through replay_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "slotgate.h"

#define MAX_ARGS 256

static void check(const sg_command *cmd, int argc, const char *const *argv, const size_t *argvlen) {
    int idx[MAX_ARGS], idx2[MAX_ARGS], few[4];
    uint16_t flags[MAX_ARGS];
    int n, n2, nf, i, arity_ok;

    arity_ok = sg_command_check_arity(cmd, argc);
    n = sg_command_keys(cmd, argc, argv, argvlen, idx, argc);
    if (n == SG_CMD_EARITY) {
        if (arity_ok) abort();
        return;
    }
    if (!arity_ok) abort();
    n2 = sg_command_keys_ex(cmd, argc, argv, argvlen, 0, idx2, flags, argc);
    if (n2 != n) abort();
    if (n == SG_CMD_EKEYS) return;
    if (n < 0 || n > argc) abort();
    for (i = 0; i < n; i++) {
        if (idx[i] != idx2[i] || idx[i] < 1 || idx[i] >= argc) abort();
        (void)sg_keyslot(argv[idx[i]], argvlen[idx[i]]);
    }
    /* fewer out-slots: the same count, a prefix of the same keys */
    nf = sg_command_keys(cmd, argc, argv, argvlen, few, 2);
    if (nf != n) abort();
    for (i = 0; i < n && i < 2; i++)
        if (few[i] != idx[i]) abort();
    if (sg_command_keys(cmd, argc, argv, argvlen, NULL, 0) != n) abort();
    /* with the not_key arguments (shard channels) too: never fewer, or
     * SG_CMD_EKEYS when those are out of range (SUNSUBSCRIBE with no
     * channel, as Redis's getKeysUsingKeySpecs says too) */
    n2 = sg_command_keys_ex(cmd, argc, argv, argvlen, SG_KEYS_INCLUDE_NOT_KEYS, idx2, flags, argc);
    if (n2 == SG_CMD_EKEYS) return;
    if (n2 < n || n2 > argc) abort();
    for (i = 0; i < n2; i++)
        if (idx2[i] < 1 || idx2[i] >= argc) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS], at = 0;
    const sg_command *cmd, *top;
    int argc = 0, i;

    while (at <= size && argc < MAX_ARGS) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
        /* exactly len bytes: a read past the argument is a sanitizer error */
        if ((argv[argc] = malloc(len ? len : 1)) == NULL) abort();
        memcpy(argv[argc], data + at, len);
        argvlen[argc++] = len;
        at += len + 1;
    }
    cmd = sg_command_resolve(argc, (const char *const *)argv, argvlen);
    top = sg_command_lookup(argv[0], argvlen[0]);
    if (cmd) {
        /* the command argv[0] names, or one of its subcommands */
        if (top == NULL || (cmd != top && cmd->parent != top)) abort();
        check(cmd, argc, (const char *const *)argv, argvlen);
        if (sg_route_name(sg_command_route(cmd)) == NULL ||
            sg_split_name(sg_command_split(cmd)) == NULL ||
            sg_response_policy_name(sg_command_merge(cmd)) == NULL)
            abort();
    }
    for (i = 0; i < argc; i++) free(argv[i]);
    return 0;
}
