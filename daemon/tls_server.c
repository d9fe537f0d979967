/*
 * tls_server.c — client-facing TLS (see tls_server.h): it owns the server
 * SSL_CTX built from the tls_* settings and the TLS bufferevents of clients
 * accepted on "tls:" addresses. The upstream (client) side is core/src/tls.c.
 */
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "tls_server.h"

/* err: what failed (naming the setting and its file) and OpenSSL's first
 * reason; the error queue is emptied. NULL, for the caller to return. */
static SSL_CTX *fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *path) {
    char reason[256];
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    snprintf(err, errlen, "TLS: %s%s%s%s: %s", what, path ? " \"" : "", path ? path : "",
             path ? "\"" : "", e ? reason : "unknown error");
    return NULL;
}

/* The key's passphrase, from tls_key_file_pass; without one the load fails
 * rather than OpenSSL asking on the terminal. */
static int key_pass(char *buf, int size, int rwflag, void *ud) {
    const char *pass = ud;
    size_t n;
    (void)rwflag;
    if (pass == NULL || pass[0] == '\0' || (n = strlen(pass)) > (size_t)size) return 0;
    memcpy(buf, pass, n);
    return (int)n;
}

static int version_of(int bit) {
    switch (bit) {
    case SG_DS_TLS1: return TLS1_VERSION;
    case SG_DS_TLS1_1: return TLS1_1_VERSION;
    case SG_DS_TLS1_2: return TLS1_2_VERSION;
    default: return TLS1_3_VERSION;
    }
}

/* The versions of tls_protocols: the range from the lowest named to the
 * highest, and those in between that are not named switched off. */
static int set_protocols(SSL_CTX *ctx, int bits) {
    static const struct {
        int bit;
        unsigned long op;
    } gaps[] = {{SG_DS_TLS1_1, SSL_OP_NO_TLSv1_1}, {SG_DS_TLS1_2, SSL_OP_NO_TLSv1_2}};
    int lo = bits & -bits, hi = lo;
    size_t i;
    while (bits >= hi * 2) hi *= 2;
    if (!SSL_CTX_set_min_proto_version(ctx, version_of(lo)) ||
        !SSL_CTX_set_max_proto_version(ctx, version_of(hi)))
        return -1;
    for (i = 0; i < sizeof gaps / sizeof *gaps; i++)
        if (gaps[i].bit > lo && gaps[i].bit < hi && !(bits & gaps[i].bit))
            SSL_CTX_set_options(ctx, gaps[i].op);
    return 0;
}

SSL_CTX *sg_tls_server_new(const sg_daemon_settings *ds, char *err, size_t errlen) {
    static const unsigned char sid_ctx[] = "slotgated";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc, mode;
    if (ctx == NULL) return fail(NULL, err, errlen, "cannot create a context", NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* OpenSSL 3 calls a close without close_notify an error; clients
     * (redis-cli among them) close so: an end of file, as with 1.1 */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle clients hold no buffers */
    if (set_protocols(ctx, ds->tls_protocols) != 0)
        return fail(ctx, err, errlen, "cannot set the versions of tls_protocols", NULL);
    if (ds->tls_ciphers[0] && SSL_CTX_set_cipher_list(ctx, ds->tls_ciphers) != 1)
        return fail(ctx, err, errlen, "tls_ciphers", ds->tls_ciphers);
    if (ds->tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, ds->tls_ciphersuites) != 1)
        return fail(ctx, err, errlen, "tls_ciphersuites", ds->tls_ciphersuites);
    if (SSL_CTX_use_certificate_chain_file(ctx, ds->tls_cert_file) != 1)
        return fail(ctx, err, errlen, "cannot load tls_cert_file", ds->tls_cert_file);
    SSL_CTX_set_default_passwd_cb(ctx, key_pass);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)ds->tls_key_file_pass);
    rc = SSL_CTX_use_PrivateKey_file(ctx, ds->tls_key_file, SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL); /* no pointer to the secret kept */
    if (rc != 1)
        return fail(ctx, err, errlen,
                    ds->tls_key_file_pass[0]
                        ? "cannot load tls_key_file (with tls_key_file_pass)"
                        : "cannot load tls_key_file (if it is encrypted, set tls_key_file_pass)",
                    ds->tls_key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail(ctx, err, errlen, "tls_key_file does not match tls_cert_file",
                    ds->tls_key_file);
    if (ds->tls_ca_file[0]) {
        STACK_OF(X509_NAME) *names;
        if (SSL_CTX_load_verify_locations(ctx, ds->tls_ca_file, NULL) != 1)
            return fail(ctx, err, errlen, "cannot load tls_ca_file", ds->tls_ca_file);
        /* the CAs named to clients, so that they pick the right certificate */
        if ((names = SSL_load_client_CA_file(ds->tls_ca_file)) == NULL)
            return fail(ctx, err, errlen, "no CA certificate in tls_ca_file", ds->tls_ca_file);
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    switch (ds->tls_verify_clients) {
    case SG_DS_VERIFY_YES: mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT; break;
    case SG_DS_VERIFY_OPTIONAL: mode = SSL_VERIFY_PEER; break;
    default: mode = SSL_VERIFY_NONE; break;
    }
    SSL_CTX_set_verify(ctx, mode, NULL);
    /* resumed sessions must come from this server (OpenSSL requires it with
     * client verification) */
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1) != 1)
        return fail(ctx, err, errlen, "cannot set the session id context", NULL);
    return ctx;
}

void sg_tls_server_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

struct bufferevent *sg_tls_server_bev(SSL_CTX *ctx, struct event_base *base, evutil_socket_t fd) {
    SSL *ssl = SSL_new(ctx);
    struct bufferevent *bev;
    if (ssl == NULL) {
        ERR_clear_error();
        return NULL;
    }
    /* When this fails, libevent 2.1 has freed ssl itself unless its first
     * allocation failed: ssl is not freed here (a leak when out of memory
     * rather than a double free). */
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) return NULL;
    /* clients (redis-cli among them) close without close_notify: an end of
     * file, not an error */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int sg_tls_server_error(struct bufferevent *bev, char *buf, size_t len) {
    unsigned long e, reason = 0, code = 0;
    if (bufferevent_openssl_get_ssl(bev) == NULL) return 0;
    /* libevent keeps SSL_get_error()'s code (a small number) and then
     * OpenSSL's queue; they come back newest first */
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (e > SSL_ERROR_WANT_CLIENT_HELLO_CB) reason = reason ? reason : e;
        else code = e;
    }
    if (reason) ERR_error_string_n(reason, buf, len);
    else if (code == SSL_ERROR_SYSCALL) snprintf(buf, len, "the connection broke");
    else if (code) snprintf(buf, len, "SSL_get_error %lu", code);
    else return 0;
    return 1;
}
