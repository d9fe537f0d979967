/*
 * tls.h — the OpenSSL context of an upstream (tls.c), apart from engine.h
 * so that a host that makes its own connections (slotgated's --check
 * --connect) does the handshake the engine would.
 */
#ifndef SG_TLS_H
#define SG_TLS_H

#include <openssl/ssl.h>

#include "config.h"

/* A context from the upstream's settings (CA, client certificate, versions,
 * verification), or NULL with err set. The caller frees it (SSL_CTX_free). */
SSL_CTX *sg_tls_context(const sg_storage *st, sg_error *err);

#endif
