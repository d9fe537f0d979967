/*
 * cache.h — the gateway's near cache (cache.c): answers of reads kept by key,
 * exact because every node that serves a cached key tells the cache of each
 * change to it (CLIENT TRACKING ... BCAST on a connection of the cache's own
 * per node, subscribed to __redis__:invalidate), and because writes through
 * the gateway drop their keys at once. See docs/CACHE.md.
 */
#ifndef SG_CACHE_H
#define SG_CACHE_H

#include "engine.h"

typedef struct sg_cache sg_cache;
/* What a read or a write sent through the cache needs when its reply comes:
 * the caller's callbacks, replaced by the cache's own (sg_cache_read and
 * sg_cache_write). */
typedef struct sg_cache_call sg_cache_call;

/* A cache of at most max_bytes, counting into st (the gateway's: read from
 * any thread with relaxed loads). NULL when out of memory. */
sg_cache *sg_cache_new(sg_cache_stats *st, size_t max_bytes);
/* A new bound: entries are evicted down to it (0 drops them all). */
void sg_cache_set_max(sg_cache *ca, size_t max_bytes);
/* Closes the invalidation connections: before the clients they use go. */
void sg_cache_close_trackers(sg_cache *ca);
/* Frees the cache, once no read or write it wrapped is in flight. */
void sg_cache_free(sg_cache *ca);
/* Whether the cache holds anything a write must drop (an entry, a read being
 * filled, a write in flight): else writes go by untouched. */
int sg_cache_live(const sg_cache *ca);

/* Whether info (a resolved command) is a read the cache can answer. */
int sg_cache_cacheable(const sg_command *info, int argc);

/* A cacheable read of c (a RESP2 client), its keys as the node names them,
 * each allowed to live secs. 1: answered from the cache, *out and *outlen the
 * reply as RESP2 bytes, valid until the next call into the cache. 0: to be
 * sent; when its answer may fill the cache, the callbacks (fn, raw_fn, ud) are replaced
 * by the cache's, and *call is set (else NULL). SG_ENOMEM is never returned:
 * without memory the read is sent as it is. */
int sg_cache_read(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                  const char *const *argv, const size_t *argvlen, long long secs,
                  const char **out, size_t *outlen, sg_reply_fn *fn, sg_raw_reply_fn *raw_fn,
                  void **ud, sg_cache_call **call);
/* A command of c that may change its keys (anything not read-only, FLUSHALL
 * and FLUSHDB included): its keys' entries are dropped now, and none is
 * filled until its reply came; the callbacks are replaced as above. */
void sg_cache_write(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                    const char *const *argv, const size_t *argvlen, sg_reply_fn *fn,
                    sg_raw_reply_fn *raw_fn, void **ud, sg_cache_call **call);
/* The keys of a command that will run elsewhere (a transaction's): dropped
 * now, with nothing held back. */
void sg_cache_drop_keys(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                        const char *const *argv, const size_t *argvlen);
/* The call was wrapped but never sent (the submit failed): its callbacks will
 * not run. */
void sg_cache_call_abort(sg_cache_call *call);

/* Tells fn (as sg_track_fn, see slotgate.h, with the client whose tracker
 * spoke) of every invalidation, flush, loss and tracker made ready, besides
 * what the cache does with them. */
typedef void (*sg_cache_listen_fn)(void *ud, sg_client *c, int event, const char *key, size_t len);
void sg_cache_listen(sg_cache *ca, sg_cache_listen_fn fn, void *ud);
/* Opens a tracker for every master of c that has none; 1 when all are ready. */
int sg_cache_watch(sg_cache *ca, sg_client *c);

#endif
