/*
 * compare.h — several Tyk files' storage settings side by side (compare.c),
 * for `slotgated --check -c A -c B ...`.
 */
#ifndef SG_DAEMON_COMPARE_H
#define SG_DAEMON_COMPARE_H

#include <stddef.h>
#include <stdio.h>

#include "slotgate.h"

/* One file given to --check, as read (cfg NULL: it did not load). */
typedef struct check_file {
    const char *path;
    sg_config *cfg;
} check_file;

/* Two upstreams, of two files, that must name the same storage. */
typedef struct check_pair {
    size_t a, b;         /* indexes in the files */
    const char *ua, *ub; /* upstream names, owned by the files' cfg */
} check_pair;

/* The pairs of upstreams of the loaded files that must name the same
 * storage, in *pairs (malloc'd, the caller frees it); their number, or -1
 * when out of memory. The gateway's storage with the dashboard's and other
 * gateways'; the pump's with the gateway's analytics_storage (its storage
 * when enable_separate_analytics_store is off); cache_storage with other
 * gateways' (their storage when theirs is off); slotgate.upstreams by name. */
long compare_pairs(const check_file *files, size_t n, check_pair **pairs);

/* Prints each difference of one pair to out, one line each, "warning: "
 * (or "error: " when strict) then what differs, naming both files, their
 * upstreams, the fields in each file's own shape and where each value came
 * from; secrets are never shown (only whether they are equal). Returns the
 * number of differences. */
int compare_pair(FILE *out, const check_file *files, const check_pair *p, int strict);

#endif
