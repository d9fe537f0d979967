/*
 * tls_server.h — the server side of client-facing TLS: one OpenSSL context
 * made from slotgated's tls_* settings, shared by every worker, and a TLS
 * bufferevent for each client accepted on a "tls:" address.
 */
#ifndef SG_TLS_SERVER_H
#define SG_TLS_SERVER_H

#include <event2/util.h>
#include <stddef.h>

#include "settings.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct bufferevent;
struct event_base;

/* The context for ds's tls_* settings: certificate chain and key (the key
 * decrypted with tls_key_file_pass when set), the CA and the verification of
 * client certificates, the protocol versions and ciphers. NULL on failure,
 * with why in err: the setting, the file and OpenSSL's reason (never the
 * passphrase). The context keeps no pointer into ds. Free it with
 * sg_tls_server_free. */
struct ssl_ctx_st *sg_tls_server_new(const sg_daemon_settings *ds, char *err, size_t errlen);

/* NULL does nothing. */
void sg_tls_server_free(struct ssl_ctx_st *ctx);

/* A bufferevent that accepts a TLS session on fd (the handshake runs with
 * the loop) and closes fd when freed; NULL when out of memory (fd is then
 * still the caller's). */
struct bufferevent *sg_tls_server_bev(struct ssl_ctx_st *ctx, struct event_base *base,
                                      evutil_socket_t fd);

/* Why bev's TLS session failed, OpenSSL's reason, into buf; 0 when bev is
 * not a TLS one or holds no error. */
int sg_tls_server_error(struct bufferevent *bev, char *buf, size_t len);

#endif
