/*
 * policy.h — the policy engine inside the core: what a loaded set of policy
 * scripts decides for one command (deny it, rewrite its keys, give its keys a
 * default TTL, route it to an upstream or to replicas), and the glob matcher
 * the declarative parts use.
 */
#ifndef SG_POLICY_H
#define SG_POLICY_H

#include "sg_internal.h"

/* A key that gets a default TTL after a successful write. */
typedef struct sg_ttl_key {
    int argi;         /* its index in the (rewritten) argv */
    long long seconds;
} sg_ttl_key;

/* What the policies decided for one command. */
typedef struct sg_decision {
    int deny;             /* refuse it: errmsg is the error reply's text */
    char errmsg[512];
    const char *upstream; /* NULL: unchanged ("default") */
    int read_policy;      /* SG_READ_*, or -1: unchanged */
    /* rewritten argv (when rewritten): owned by the decision */
    int rewritten;
    int argc;
    char **argv;
    size_t *argvlen;
    sg_ttl_key *ttls;     /* default TTLs to apply after the write */
    int nttls;
    int durable;          /* a write: replicas that must confirm it (WAIT); 0: none */
    int durable_ms;       /* how long they may take (0: the upstream's timeout) */
    long long cache_secs; /* a read every key of which matches a cache pattern: how
                             long its answer may live in the near cache (0: not) */
    const struct sg_command *info; /* the command's entry (NULL: unknown), as the
                                      policies looked it up */
} sg_decision;

void sg_decision_init(sg_decision *d);
void sg_decision_clear(sg_decision *d);

/* Runs every script of p on the command, in load order, into d (which must
 * have been initialised). Returns SG_OK (d says what to do) or SG_ENOMEM. */
int sg_policy_apply(sg_policy *p, const sg_request_ctx *ctx, int argc,
                    const char *const *argv, const size_t *argvlen, sg_decision *d);
/* The same for a caller that resolved the command already: info is what
 * sg_command_resolve() gives for argv (NULL: an unknown command). */
struct sg_command;
int sg_policy_apply_cmd(sg_policy *p, const struct sg_command *info, const sg_request_ctx *ctx,
                        int argc, const char *const *argv, const size_t *argvlen,
                        sg_decision *d);

/* What the near cache may be asked to keep, as the nodes name the keys: the
 * literal start of every cache pattern (up to its first wildcard), behind
 * the prefixes its script and the later ones add. Each is appended to out
 * with its NUL; returns how many, or -1 when a cached key may start with
 * anything (a pattern starting with a wildcard, a computed rewrite). */
int sg_policy_cache_prefixes(const sg_policy *p, sg_buf *out);
/* Changes whenever p's scripts do (and differs between policies). */
uint64_t sg_policy_serial(const sg_policy *p);

/* Redis-style glob: * ? [abc] [^a-z] and \ escapes. 1 on a match. */
int sg_glob_match(const char *pat, size_t plen, const char *s, size_t slen);

#endif
