/*
 * probe.h — `slotgated --check --connect` (probe.c): each upstream's seeds
 * and nodes reached with the effective settings, one step at a time.
 */
#ifndef SG_DAEMON_PROBE_H
#define SG_DAEMON_PROBE_H

#include <stddef.h>
#include <stdio.h>

#include "slotgate.h"

/* What names the storage an upstream reached, for telling whether two
 * files' seeds name the same one: a cluster's node ids (sorted), or the
 * run_id of a single node or of the master a Sentinel names. */
typedef struct probe_ident {
    int cluster; /* ids are node ids; else one run_id */
    char **ids;
    size_t nids;
} probe_ident;

/* Connects to the seeds of cfg's upstream (and, for a cluster, to every
 * node the first seed that answers lists; for Sentinel, to the master the
 * sentinels name) and prints to out what each step found, a line per seed
 * or node, with a line "error: ..." naming the seed or node and the reason
 * for each failure. label names the upstream in the lines ("tyk.conf
 * [default]"). Fills *ident (empty when nothing answered). Returns the
 * number of failures. */
int probe_upstream(FILE *out, sg_config *cfg, const char *upstream, const char *label,
                   probe_ident *ident);
void probe_ident_clear(probe_ident *ident);

/* How two identities compare: 1 the same storage, 0 another one, -1 some
 * node ids in common (a cluster seen split or moving), -2 unknown (one
 * side reached nothing). */
int probe_ident_cmp(const probe_ident *a, const probe_ident *b);

#endif
