/*
 * conn.h — the lowest layer of the engine above the utilities: one
 * connection to one Redis node (conn.c), and the replies it reads (reply.c).
 * A connection knows nothing of requests, nodes or clients: it carries
 * opaque tags in its FIFO of pending replies and reports everything that
 * happens to the owner that opened it, through the sg_conn_ops it was given.
 */
#ifndef SG_CONN_H
#define SG_CONN_H

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "sg_internal.h"

typedef struct sg_conn sg_conn;

/* The scan of a reply across an evbuffer's chunks, kept between reads. */
typedef struct sg_scan {
    int active;
    size_t off;    /* bytes of the input passed */
    long long due; /* elements still due */
} sg_scan;
/* More elements than any reply holds: a count past it is not RESP we take. */
#define SG_SCAN_MAX_ELEMENTS (1LL << 40)

/* ---- replies (reply.c) ---------------------------------------------------- */

sg_reply *sg_reply_new(int type);
sg_reply *sg_reply_new_str(int type, const char *s, size_t len);
sg_reply *sg_reply_new_int(long long v);
sg_reply *sg_reply_new_array(size_t n);
/* The length of the whole reply (RESP2 or RESP3) at s[0..n): 0 when it does
 * not end within n bytes, -1 when s is not RESP. */
long long sg_reply_scan(const char *s, size_t n);
/* As sg_reply_scan, for the reply at the head of in however it is cut in
 * chunks; st (zeroed at first) keeps the place between calls, so each byte
 * is scanned once. */
long long sg_reply_scan_buffer(sg_scan *st, struct evbuffer *in);
/* The tree of one whole reply s[0..len) (as conn.c's scan found it), RESP2
 * or RESP3 (an attribute goes to the reply it came with). NULL with *status
 * SG_ENOMEM, SG_EPROTO (not RESP), or SG_EINVAL (aggregates nested deeper
 * than 1000 levels). */
sg_reply *sg_reply_parse(const char *s, size_t len, int *status);
/* Whether an error reply starts with word ("MOVED", "ASK", ...). */
int sg_reply_error_is(const sg_reply *r, const char *word);

/* ---- connections (conn.c) -------------------------------------------------- */

/* What every connection of a client shares (the client's sg_client.net):
 * its loop, resolver, TLS, timeout, credentials and write batching. The
 * client sets it; connections read it. */
typedef struct sg_conn_cfg {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl;
    int timeout_ms;
    int tls_skip_verify;
    char *username, *password, *sentinel_password;
    int corked;             /* a pipeline is queueing: see sg_conn_flush */
    int batching;           /* sg_client_set_batching: writes wait for the turn's end */
    struct event *flush_ev; /* batching: writes the corked connections */
    int flush_pending;      /* flush_ev is active */
    int freeing;            /* the client is being freed: failures are not news */
    int proto;              /* 3: HELLO 3 in the handshake, replies in RESP3; else RESP2
                               (a Sentinel is always spoken to in RESP2) */
} sg_conn_cfg;

/* Whom a connection talks to, given when it is opened. The strings must
 * outlive the connection. */
typedef struct sg_conn_peer {
    const char *host;   /* to connect to (and the TLS name) */
    int port;
    const char *addr;   /* "host:port", for messages */
    int sentinel;       /* a Sentinel: its own password, no SELECT or READONLY */
    int readonly;       /* READONLY in the handshake (a cluster's replica) */
    long long database; /* SELECT it in the handshake (0: none) */
    sg_node_stats *st;  /* its figures: connects, timeouts, error replies */
} sg_conn_peer;

/* How a connection reports to its owner (the node pool, a link, the Sentinel
 * subscription). Set once, at sg_conn_open; owner is passed back as given.
 * Every callback may close or fail the connection; the connection copes.
 * A tag is what the owner gave sg_conn_send. */
typedef struct sg_conn_ops {
    /* the reply to tag (ownership passes) */
    void (*reply)(void *owner, void *tag, sg_reply *r);
    /* tag's reply as the node sent it (sent with SG_SEND_RAW; never an error) */
    void (*raw)(void *owner, void *tag, const char *resp, size_t len);
    /* the connection failed with tag's reply due; sent: its bytes had left */
    void (*lost)(void *owner, void *tag, int sent, int code, const char *msg);
    /* a reply nobody asked for (ownership passes); NULL: a protocol error */
    void (*push)(void *owner, sg_conn *conn, sg_reply *r);
    /* no reply is due any more (NULL: nothing to do) */
    void (*idle)(void *owner, sg_conn *conn);
    /* the connection goes: failed (code, msg), or closed by sg_conn_close
     * (SG_OK, NULL). Called before the tags due learn of it (lost). */
    void (*closed)(void *owner, sg_conn *conn, int code, const char *msg);
    /* the connect succeeded (ok), or failed saying why (before the failure) */
    void (*connect_result)(void *owner, sg_conn *conn, int ok, const char *why);
} sg_conn_ops;

/* What the owner does with a connection: a role, not a callback's absence. */
enum {
    SG_CONN_POOLED = 0, /* one of a node's pool: lent to commands */
    SG_CONN_SUBSCRIBER, /* the Sentinel's +switch-master subscription */
    SG_CONN_LINK        /* a link's (link.c): its owner's bytes only */
};

/* What a pending entry on a connection is. */
enum {
    SG_PEND_USER = 0,  /* an owner's command: its reply goes to ops->reply */
    SG_PEND_ASKING,    /* the ASKING before an asked command: reply dropped */
    SG_PEND_HANDSHAKE, /* AUTH, SELECT, READONLY: an error fails the conn */
    SG_PEND_DROP,      /* an internal command whose reply is dropped */
    SG_PEND_ID         /* CLIENT ID in the handshake: the reply is the connection's
                          peer_id (an error leaves it 0, and fails nothing) */
};

typedef struct sg_pending {
    void *tag;     /* SG_PEND_USER: the owner's */
    uint8_t kind;
    uint8_t raw;   /* the reply may go as bytes (ops->raw) */
    size_t end;    /* the byte count written to the connection once this
                      entry's command is out */
    uint64_t sent; /* ms, when it was queued */
} sg_pending;

enum { SG_CONN_CONNECTING = 0, SG_CONN_READY, SG_CONN_CLOSED };

struct sg_conn {
    sg_conn_cfg *cfg; /* the client's: a batch arms its flush_ev */
    const sg_conn_ops *ops;
    void *owner;
    int role;        /* SG_CONN_* */
    const char *host, *addr;
    int port;
    int sentinel;
    sg_node_stats *st;
    struct bufferevent *bev;
    sg_scan scan;   /* where a reply that runs past the first chunk ends */
    int state;
    int exclusive;   /* held by one owner's command (blocking commands) */
    sg_pending *pend; /* ring buffer of pending replies */
    size_t pcap, phead, pcount;
    size_t queued;   /* bytes ever queued for writing (held ones too) */
    struct evbuffer *held; /* commands queued while the handshake runs */
    int handshaking; /* handshake replies still due */
    uint64_t last_used; /* ms, for idle expiry */
    long long read_timeout_ms; /* current read timeout, -1: none */
    int corked;                /* writes held in cork for sg_conn_flush */
    struct evbuffer *cork;     /* commands of a batch, written at its end */
    int timer_short;           /* the read timer was armed for less than the timeout */
    long long peer_id; /* the node's CLIENT ID for this connection (0: not known) */
    int in_read;     /* on_read is running: a close only marks the conn */
    int doomed;      /* closed meanwhile: on_read frees it when it returns */
    void *wait_batch; /* the owner's (router.c: durable writes sent on it this turn
                         that await their WAIT); never read here */
};

/* Opens a connection to peer (the handshake queued first); NULL when out of
 * memory or refused at once. */
sg_conn *sg_conn_open(sg_conn_cfg *cfg, const sg_conn_peer *peer, const sg_conn_ops *ops,
                      void *owner, int role);

/* sg_conn_send's flags. */
#define SG_SEND_ASKING 1 /* ASKING first (its reply dropped) */
#define SG_SEND_RAW 2    /* a reply that is not an error may go to ops->raw */
/* sg_conn_send's read_timeout_ms: leave the read timeout as it is. */
#define SG_CONN_TIMEOUT_KEEP (-3)

/* Queues the command cmd[0..len) whose reply goes to tag. read_timeout_ms:
 * for a command that blocks, the read timeout while it runs (-1: none), else
 * SG_CONN_TIMEOUT_KEEP. SG_ENOMEM: the connection is spoiled (part of the
 * command may be queued) and tag is not in its FIFO. */
int sg_conn_send(sg_conn *conn, const char *cmd, size_t len, void *tag, int flags,
                 long long read_timeout_ms);
/* Queues bytes whose replies (any number) go to ops->push: a link's. */
int sg_conn_write(sg_conn *conn, const char *data, size_t len);
/* Queues an internal command (NUL-terminated words) whose reply is dropped. */
int sg_conn_send_words(sg_conn *conn, const char *const *words, int n);
/* The tag of the i-th command still owed a reply (0: the oldest), or NULL
 * when i is past them or that entry is not an owner's command. */
void *sg_conn_pending_tag(const sg_conn *conn, size_t i);
/* Closes the connection; every pending tag gets the failure (ops->lost). */
void sg_conn_fail(sg_conn *conn, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Closes an idle connection quietly. */
void sg_conn_close(sg_conn *conn);
/* Writes what a corked connection holds (pipelines: one write per node). */
void sg_conn_flush(sg_conn *conn);

#endif
