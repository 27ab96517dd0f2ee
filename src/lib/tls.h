/* TLS server contexts (OpenSSL 3): TLS 1.2 and 1.3 only, OpenSSL's secure
 * defaults, no renegotiation. */
#ifndef KEEL_LIB_TLS_H
#define KEEL_LIB_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* A server context from a PEM certificate chain (leaf first) and a PEM
 * private key held in memory.  error_r names what is wrong (a static or
 * OpenSSL string). */
SSL_CTX *tls_server_ctx_new(const char *cert_pem, size_t cert_len, const char *key_pem,
			    size_t key_len, const char **error_r);

/* Writes a new self-signed certificate for hostname (EC P-256, SHA-256,
 * subjectAltName DNS:hostname) to cert_path and its key to key_path (mode
 * 0600). */
int tls_selfsigned_create(const char *hostname, const char *cert_path, const char *key_path,
			  const char **error_r);

/* The "TLSv1.3"-style version and the cipher of an established session, for
 * Received headers and logs. */
const char *tls_session_version(SSL *ssl);
const char *tls_session_cipher(SSL *ssl);

#endif
