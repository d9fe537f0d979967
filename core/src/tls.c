/*
 * tls.c — the OpenSSL context of an upstream that has use_ssl: CA bundle
 * (or the system's roots), client certificate when both cert and key are
 * given, verification unless ssl_insecure_skip_verify, and the TLS version
 * range. Each connection gets its own SSL with SNI and the host check
 * (conn.c). The digest of what the context was made from (the settings and
 * the files' contents, not their paths) tells a reload whether a file was
 * renewed in place.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

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

/* Feeds the contents of the file at path (NULL or "": none) to md. */
static int digest_file(EVP_MD_CTX *md, const char *what, const char *path, sg_error *err) {
    unsigned char buf[16384];
    size_t n;
    FILE *f;
    if (path == NULL || path[0] == '\0') return EVP_DigestUpdate(md, "-", 1) ? SG_OK : SG_ETLS;
    if ((f = fopen(path, "rb")) == NULL)
        return sg_seterr(err, SG_ETLS, "TLS: cannot read the %s \"%s\": %s", what, path,
                         strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (!EVP_DigestUpdate(md, buf, n)) break;
    if (ferror(f) || n > 0) {
        fclose(f);
        return sg_seterr(err, SG_ETLS, "TLS: cannot read the %s \"%s\"", what, path);
    }
    fclose(f);
    /* a separator, so that bytes moved from one file to the next still differ */
    return EVP_DigestUpdate(md, "\0", 1) ? SG_OK : SG_ETLS;
}

int sg_tls_digest(const sg_storage *st, unsigned char out[SG_TLS_DIGEST_LEN], sg_error *err) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int v[3] = {st->skip_verify, st->tls_min, st->tls_max}, rc = SG_OK;
    if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(md, v, sizeof v))
        rc = sg_seterr(err, SG_ENOMEM, "TLS: out of memory reading the files");
    if (rc == SG_OK) rc = digest_file(md, "CA file", st->f[SG_F_CA_FILE].s, err);
    if (rc == SG_OK) rc = digest_file(md, "client certificate", st->f[SG_F_CERT_FILE].s, err);
    if (rc == SG_OK) rc = digest_file(md, "client key", st->f[SG_F_KEY_FILE].s, err);
    if (rc == SG_OK && !EVP_DigestFinal_ex(md, out, NULL))
        rc = sg_seterr(err, SG_ETLS, "TLS: cannot digest the files");
    EVP_MD_CTX_free(md);
    return rc;
}

SSL_CTX *sg_tls_context(const sg_storage *st, unsigned char digest[SG_TLS_DIGEST_LEN],
                        sg_error *err) {
    const char *ca = st->f[SG_F_CA_FILE].s, *cert = st->f[SG_F_CERT_FILE].s,
               *key = st->f[SG_F_KEY_FILE].s;
    SSL_CTX *ctx;
    /* the digest first: a file replaced while the context loads shows as a
     * change at the next reload (the context made again), never as none */
    if (sg_tls_digest(st, digest, err) != SG_OK) return NULL;
    ctx = SSL_CTX_new(TLS_client_method());
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
