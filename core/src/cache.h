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

/* Whether some cache of the process keeps an entry, or did: from then on a
 * gateway with no cache yet makes one for its writes, whose write stamps
 * tell the others' entries to stop answering (see cache.c). */
int sg_cache_in_use(void);

/* Whether info (a resolved command) is a read the cache can answer. */
int sg_cache_cacheable(const sg_command *info, int argc);

/* A cacheable read of c (a RESP2 client: the entries are its), its keys as
 * the node names them, each allowed to live secs. via: NULL, or the RESP3
 * client of c's upstream that will carry it (a RESP3 session's). 1: answered
 * from the cache, *out and *outlen the reply's bytes (RESP3 ones, as a Redis
 * 7.0 node answers after HELLO 3, when via is set), valid until the next call
 * into the cache. 0: to be sent (on via when set, else on c); when its answer
 * may fill the cache, the callbacks (fn, raw_fn, ud) are replaced by the
 * cache's, and *call is set (else NULL). SG_ENOMEM is never returned: without
 * memory the read is sent as it is. */
int sg_cache_read(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                  const char *const *argv, const size_t *argvlen, long long secs, sg_client *via,
                  const char **out, size_t *outlen, sg_reply_fn *fn, sg_raw_reply_fn *raw_fn,
                  void **ud, sg_cache_call **call);
/* A command of c that may change its keys (anything not read-only, FLUSHALL
 * and FLUSHDB included): its keys' entries are dropped now, and none is
 * filled until its reply came; the callbacks are replaced as above. */
void sg_cache_write(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                    const char *const *argv, const size_t *argvlen, sg_reply_fn *fn,
                    sg_raw_reply_fn *raw_fn, void **ud, sg_cache_call **call);
/* sg_cache_write for a command that will run elsewhere (a transaction's, on
 * a link) and whose reply the cache does not see: its keys' entries are
 * dropped now, and none is filled until the call returned is ended with
 * sg_cache_call_abort (NULL: nothing to hold). */
sg_cache_call *sg_cache_hold(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                             const char *const *argv, const size_t *argvlen);
/* The keys of a command that will run elsewhere: dropped now, with nothing
 * held back. */
void sg_cache_drop_keys(sg_cache *ca, sg_client *c, const sg_command *info, int argc,
                        const char *const *argv, const size_t *argvlen);
/* The call was wrapped but never sent (the submit failed): its callbacks will
 * not run. Ends a hold (sg_cache_hold) too. NULL does nothing. */
void sg_cache_call_abort(sg_cache_call *call);

/* The keys the trackers must hear of: those starting with one of n prefixes
 * (list: each with its NUL), or every key when n < 0. The set only widens:
 * a prefix another one covers adds nothing. When it widens, open trackers
 * close (their entries go) and open again with it, outside any call of the
 * cache. Until the first call, nothing is filled. */
void sg_cache_cover(sg_cache *ca, const char *list, int n);

/* Tells fn (as sg_track_fn, see slotgate.h, with the client whose tracker
 * spoke) of every invalidation, flush, loss and tracker made ready, besides
 * what the cache does with them. The trackers then hear of every key
 * (sg_cache_cover(ca, NULL, -1)). */
typedef void (*sg_cache_listen_fn)(void *ud, sg_client *c, int event, const char *key, size_t len);
void sg_cache_listen(sg_cache *ca, sg_cache_listen_fn fn, void *ud);
/* Opens a tracker for every master of c that has none; 1 when all are ready. */
int sg_cache_watch(sg_cache *ca, sg_client *c);

#endif
