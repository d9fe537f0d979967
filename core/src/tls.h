/*
 * tls.h — the OpenSSL context of an upstream (tls.c), apart from engine.h
 * so that a host that makes its own connections (slotgated's --check
 * --connect) does the handshake the engine would.
 */
#ifndef SG_TLS_H
#define SG_TLS_H

#include <openssl/ssl.h>

#include "config.h"

/* sg_tls_context and sg_tls_digest are declared in config.h (config.c
 * loads the contexts of a reload): a context from the upstream's settings
 * (CA, client certificate, versions, verification), or NULL with err set;
 * the caller frees it (SSL_CTX_free). */

#endif
