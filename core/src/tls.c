/*
 * tls.c — the OpenSSL context of an upstream that has use_ssl: CA bundle
 * (or the system's roots), client certificate when both cert and key are
 * given, verification unless ssl_insecure_skip_verify, and the TLS version
 * range. Each connection gets its own SSL with SNI and the host check
 * (conn.c).
 */
#include <openssl/err.h>
#include <stdio.h>

#include "tls.h"

static int tls_fail(sg_error *err, SSL_CTX *ctx, const char *what, const char *path) {
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    if (ctx) SSL_CTX_free(ctx);
    return sg_seterr(err, SG_ETLS, "TLS: %s%s%s%s: %s", what, path ? " \"" : "", path ? path : "",
                     path ? "\"" : "", e ? buf : "unknown error");
}

static int proto(int v) {
    switch (v) {
    case 10: return TLS1_VERSION;
    case 11: return TLS1_1_VERSION;
    case 12: return TLS1_2_VERSION;
    default: return TLS1_3_VERSION;
    }
}

SSL_CTX *sg_tls_context(const sg_storage *st, sg_error *err) {
    const char *ca = st->f[SG_F_CA_FILE].s, *cert = st->f[SG_F_CERT_FILE].s,
               *key = st->f[SG_F_KEY_FILE].s;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        tls_fail(err, NULL, "cannot create a context", NULL);
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, proto(st->tls_min)) ||
        !SSL_CTX_set_max_proto_version(ctx, proto(st->tls_max))) {
        tls_fail(err, ctx, "cannot set the TLS versions", NULL);
        return NULL;
    }
    if (ca && ca[0]) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            tls_fail(err, ctx, "cannot load the CA file", ca);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tls_fail(err, ctx, "cannot load the system's CA certificates", NULL);
        return NULL;
    }
    if (cert && cert[0] && key && key[0]) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            tls_fail(err, ctx, "cannot load the client certificate", cert);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            tls_fail(err, ctx, "cannot load the client key", key);
            return NULL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            tls_fail(err, ctx, "the client key does not match the certificate", key);
            return NULL;
        }
    }
    SSL_CTX_set_verify(ctx, st->skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    return ctx;
}
