/*
 * fuzz_settings.c — libFuzzer target for the settings readers: the core's
 * storage settings (sg_config_load: core/src/config.c over core/src/json.c)
 * and slotgated's own (sg_daemon_settings_load: daemon/settings.c), both
 * given the same file and environment, as slotgated gives them.
 *
 * Input: two header bytes, then the file's text, then (after a line
 * "@@env") the environment, one NAME=value a line. A name that starts with
 * neither TYK_ nor SLOTGATE_ gets TYK_GW_ in front, so "STORAGE_HOST=x" is
 * TYK_GW_STORAGE_HOST. Byte 0: bits 0-1 the shape (auto, gateway,
 * dashboard, pump); bit 2: no file (the environment alone); bit 3: one
 * allocation fails, the (1 + (byte 1 | bits 4-7 << 8) % 1024)th of the
 * first load.
 *
 * Checks: a failed load leaves its code and a message on the handle and no
 * upstreams (no settings); a successful one answers every field of every
 * upstream (every setting) with a value and a source, and a dump; loading the
 * same input again gives the same dump. Crashes, leaks and undefined
 * behaviour abort through the sanitizers.
 *
 * Build and run: tests/fuzz/run.sh 60 settings. Replayed by ctest
 * (fuzz_settings_corpus) through replay_main.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../daemon/settings.h"
#include "config.h"

#define MAX_ENV 64
#define SEPARATOR "\n@@env\n"

static const char *const core_fields[] = {
#define SG_FIELD_KEY_(id, kind, secret, gw, env, pump, dash, dashenv) gw,
    SG_FIELDS(SG_FIELD_KEY_)
#undef SG_FIELD_KEY_
        "mode",
    "addresses"};

static const char *const daemon_keys[] = {
#define SG_DS_KEY_(id, key, kind, env, def, min, max) #key,
    SG_DAEMON_SETTINGS(SG_DS_KEY_)
#undef SG_DS_KEY_
};

/* The file lives in memory: a memfd, reached by its /proc path. */
static const char *file_path(const char *text, size_t len) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-settings", 0)) < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, text, len, 0) != (ssize_t)len)) abort();
    return path;
}

/* "NAME=value" lines into env (strings owned by *store, freed by caller). */
static void split_env(const char *s, size_t n, const char **env, char **store) {
    size_t cap = n * 2 + MAX_ENV * 8 + 1, at = 0;
    int k = 0;
    char *out = malloc(cap);
    if (out == NULL) abort();
    *store = out;
    while (n > 0 && k < MAX_ENV) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl ? (size_t)(nl - s) : n;
        env[k++] = out + at;
        if (strncmp(s, "TYK_", len < 4 ? len : 4) != 0 &&
            strncmp(s, "SLOTGATE_", len < 9 ? len : 9) != 0) {
            memcpy(out + at, "TYK_GW_", 7);
            at += 7;
        }
        memcpy(out + at, s, len); /* a NUL byte inside cuts the line short */
        at += len;
        out[at++] = '\0';
        s += len + (nl != NULL);
        n -= len + (nl != NULL);
    }
    env[k] = NULL;
}

static char *dup_or_null(const char *s) {
    char *d;
    if (s == NULL) return NULL;
    if ((d = strdup(s)) == NULL) abort();
    return d;
}

/* Loads the core's settings; returns the dump (caller frees) or NULL. */
static char *core(const char *path, int shape, const char *const *env, unsigned long fail) {
    sg_config *cfg = sg_config_new();
    char *dump = NULL;
    int rc, i, k, n;
    if (cfg == NULL) abort();
    if (fail) sg_alloc_fail_at(fail);
    rc = sg_config_load(cfg, path, shape, env);
    sg_alloc_fail_at(0);
    if (rc != SG_OK) {
        if (rc >= 0 || sg_errcode(cfg) != rc || sg_errmsg(cfg)[0] == '\0') abort();
        if (sg_config_upstream_count(cfg) != 0) abort();
    } else {
        n = sg_config_upstream_count(cfg);
        if (n < 1 || strcmp(sg_config_upstream_name(cfg, 0), "default") != 0) abort();
        for (i = 0; i < n; i++) {
            const char *up = sg_config_upstream_name(cfg, i);
            for (k = 0; k < (int)(sizeof core_fields / sizeof *core_fields); k++) {
                const char *v = NULL, *src = NULL;
                if (core_fields[k] == NULL) continue;
                if (sg_config_get(cfg, up, core_fields[k], 0, &v, &src) != SG_OK) continue;
                if (v == NULL || src == NULL) abort();
                if (sg_config_get(cfg, up, core_fields[k], 1, &v, &src) != SG_OK || v == NULL)
                    abort();
            }
        }
        for (i = 0; i < sg_config_warning_count(cfg); i++)
            if (sg_config_warning(cfg, i) == NULL) abort();
        dump = dup_or_null(sg_config_dump(cfg));
        if (dump == NULL && !fail) abort();
    }
    sg_config_free(cfg);
    return dump;
}

/* Loads slotgated's settings; returns the dump (caller frees) or NULL. */
static char *daemon_settings(const char *path, const char *const *env, unsigned long fail) {
    sg_daemon_settings *s = sg_daemon_settings_new();
    char *dump = NULL;
    int rc, k;
    if (s == NULL) abort();
    if (fail) sg_alloc_fail_at(fail);
    rc = sg_daemon_settings_load(s, path, env);
    sg_alloc_fail_at(0);
    if (rc != SG_OK) {
        if (rc >= 0 || sg_errcode(s) != rc || sg_errmsg(s)[0] == '\0') abort();
    } else {
        for (k = 0; k < (int)(sizeof daemon_keys / sizeof *daemon_keys); k++) {
            const char *v = NULL, *src = NULL;
            if (sg_daemon_settings_get(s, daemon_keys[k], 0, &v, &src) != SG_OK || !v || !src)
                abort();
            if (sg_daemon_settings_get(s, daemon_keys[k], 1, &v, &src) != SG_OK || !v) abort();
        }
        for (k = 0; k < sg_daemon_settings_warning_count(s); k++)
            if (sg_daemon_settings_warning(s, k) == NULL) abort();
        dump = dup_or_null(sg_daemon_settings_dump(s));
        if (dump == NULL && !fail) abort();
    }
    sg_daemon_settings_free(s);
    return dump;
}

static void same(char *a, char *b) {
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) abort();
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *env[MAX_ENV + 1], *path = NULL, *text, *sep;
    char *store;
    size_t n, tlen;
    unsigned long fail = 0;
    int shape;

    if (size < 2) return 0;
    shape = data[0] & 3;
    if (data[0] & 8) fail = 1 + (data[1] | (unsigned long)(data[0] >> 4) << 8) % 1024;
    text = (const char *)data + 2;
    n = size - 2;
    sep = memmem(text, n, SEPARATOR, sizeof SEPARATOR - 1);
    tlen = sep ? (size_t)(sep - text) : n;
    if (sep) split_env(sep + sizeof SEPARATOR - 1, n - tlen - (sizeof SEPARATOR - 1), env, &store);
    else split_env("", 0, env, &store);
    if (!(data[0] & 4)) path = file_path(text, tlen);

    if (fail) {
        /* one allocation fails: no crash, no leak; then all goes well */
        free(core(path, shape, env, fail));
        free(daemon_settings(path, env, fail));
    }
    same(core(path, shape, env, 0), core(path, shape, env, 0));
    same(daemon_settings(path, env, 0), daemon_settings(path, env, 0));
    free(store);
    return 0;
}
