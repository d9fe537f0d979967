/*
 * server.h — slotgated's serving side: worker threads, each with its own
 * event loop, gateway (clients, pools) and policy set, listening on TCP and
 * Unix sockets, reading RESP requests and answering each client in its own
 * order.
 */
#ifndef SG_SERVER_H
#define SG_SERVER_H

#include "slotgate.h"

/* One client user: AUTH name password. */
typedef struct sg_serve_user {
    const char *name;
    const char *password; /* never empty */
    const char *policy;   /* a script run after the common ones for this user's
                             commands; NULL: the common ones alone */
} sg_serve_user;

/* What the server needs from the settings. */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

typedef struct sg_serve_opts {
    const char *const *listen; /* "host:port", "[v6]:port", "unix:/path",
                                  "tls:host:port" (TLS with tls_ctx) */
    int nlisten;
    int unix_mode;             /* permissions of Unix sockets */
    int threads;               /* worker threads (>= 1) */
    const char *const *policies; /* script paths, in order */
    int npolicies;
    const char *requirepass;   /* NULL or "": the default user needs none */
    const sg_serve_user *users; /* more users (users.c); clients must
                                   authenticate when there are any */
    int nusers;
    const char *metrics;       /* "host:port" of the HTTP endpoint (metrics.c);
                                  NULL or "": none */
    long long max_clients;     /* per process */
    long long max_request_bytes; /* one request, all its arguments */
    long long idle_timeout;    /* seconds without a request before a client is
                                  closed (one with replies still owed is not);
                                  0: never */
    long long output_limit;    /* bytes of replies a client may leave unread
                                  before it is closed; 0: no limit */
    long long pubsub_output_limit; /* bytes of messages a subscriber may leave
                                  unread before it is closed; 0: no limit */
    long long cache_max_bytes; /* the near cache's bound for the process, shared
                                  evenly by the workers (each has its own cache);
                                  0: off */
    int shutdown_timeout;      /* seconds to finish in-flight commands */
    const char *redis_version; /* what HELLO and INFO say (by default the version of
                                  the Redis commands slotgated knows) */
    struct ssl_ctx_st *tls_ctx; /* for "tls:" addresses (tls_server.h); NULL:
                                  none may be given */
    void (*ready)(void *ud);   /* called once every listener is bound, before
                                  the workers start (the privilege drop) */
    void *ready_ud;
    /* SIGHUP: the settings read again, as new options (NULL with why in err
     * when they cannot be: the old ones stay). What can change while serving
     * takes effect in each worker at its next loop turn: the users and
     * passwords, the policy scripts, the limits, the TLS certificate, the
     * upstreams' settings that can change under open connections (storage:
     * sg_gateway_reload); the rest (listen, threads, metrics, unix_mode) is
     * read at start only.
     * free_opts gets them back once no worker uses them. reload NULL: SIGHUP
     * loads the same scripts again. */
    struct sg_serve_opts *(*reload)(void *ud, char *err, size_t errlen);
    /* A reload's storage settings, which every worker's gateway takes
     * (sg_gateway_reload: seeds, pools, timeout, credentials, TLS); NULL
     * keeps those in use. */
    const sg_config *storage;
    void (*free_opts)(void *ud, struct sg_serve_opts *o);
    void *reload_ud;
} sg_serve_opts;

/* Whether every address of o->listen is free: no one listens on a TCP one
 * (slotgated's own SO_REUSEPORT would let a second daemon share it) and no
 * one serves a Unix one. 0, or -1 with the address named in err
 * (portcheck.c). sg_serve checks first. */
int sg_listen_check(const sg_serve_opts *o, char *err, size_t errlen);

/* Serves until SIGTERM or SIGINT (then stops accepting, finishes what is in
 * flight within shutdown_timeout, and returns 0). SIGHUP reads the settings
 * again (o->reload) and reloads the policy scripts in every worker; settings
 * or a set that fail to load leave the old ones, and are logged. Returns
 * non-zero, with why in err, when it cannot start. */
int sg_serve(const sg_config *cfg, const sg_serve_opts *o, char *err, size_t errlen);

#endif
