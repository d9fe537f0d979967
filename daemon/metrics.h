/*
 * metrics.h — slotgated's HTTP endpoint (metrics.c): GET /metrics in the
 * Prometheus text format and GET /health, served by a thread of its own.
 */
#ifndef SG_METRICS_H
#define SG_METRICS_H

#include <stddef.h>

#include "session.h"

typedef struct metrics metrics;

/* Binds srv->o->metrics ("host:port", "[v6]:port") and starts serving from
 * a thread of its own; the workers must be running. NULL, with why in err,
 * when it cannot (the address is named). */
metrics *metrics_start(server *srv, char *err, size_t errlen);

/* Stops serving and joins the thread: call before the workers stop. */
void metrics_stop(metrics *m);

/* Frees what is left: call after the workers' loops are freed (a worker may
 * still hold a request for figures until then). NULL does nothing. */
void metrics_free(metrics *m);

#endif
