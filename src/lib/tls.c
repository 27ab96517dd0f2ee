#include "lib/tls.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *tls_last_error(const char *fallback)
{
	static __thread char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return fallback;
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static int tls_ctx_use_chain(SSL_CTX *ctx, const char *pem, size_t len, const char **error_r)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	int ret = 0;

	if (cert == NULL || SSL_CTX_use_certificate(ctx, cert) != 1) {
		*error_r = tls_last_error("no certificate in the PEM data");
		ret = -1;
	}
	X509_free(cert);
	while (ret == 0) {
		X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (ca == NULL)
			break;
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			*error_r = tls_last_error("bad chain certificate");
			ret = -1;
		}
	}
	ERR_clear_error(); /* the end of the chain reads as an error */
	BIO_free(bio);
	return ret;
}

SSL_CTX *tls_server_ctx_new(const char *cert_pem, size_t cert_len, const char *key_pem,
			    size_t key_len, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	BIO *bio;
	EVP_PKEY *key;

	if (ctx == NULL) {
		*error_r = tls_last_error("SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (tls_ctx_use_chain(ctx, cert_pem, cert_len, error_r) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	bio = BIO_new_mem_buf(key_pem, (int)key_len);
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (key == NULL || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = tls_last_error("the private key does not load or match the "
					  "certificate");
		EVP_PKEY_free(key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	EVP_PKEY_free(key);
	return ctx;
}

static X509 *tls_selfsigned_build(const char *hostname, EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	unsigned char serial[16];
	BIGNUM *bn;
	char san[300];

	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 825L * 24 * 3600);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)hostname,
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	snprintf(san, sizeof(san), "DNS:%s", hostname);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (ext != NULL) {
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:FALSE");
	if (ext != NULL) {
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (X509_sign(x, key, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int tls_write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
			 : PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

int tls_selfsigned_create(const char *hostname, const char *cert_path, const char *key_path,
			  const char **error_r)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert;
	int ret = -1;

	if (key == NULL) {
		*error_r = tls_last_error("key generation failed");
		return -1;
	}
	cert = tls_selfsigned_build(hostname, key);
	if (cert == NULL)
		*error_r = tls_last_error("certificate signing failed");
	else if (tls_write_pem(key_path, 0600, key, NULL) < 0 ||
		 tls_write_pem(cert_path, 0644, NULL, cert) < 0)
		*error_r = "cannot write the certificate or key file";
	else
		ret = 0;
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}

const char *tls_session_version(SSL *ssl)
{
	return SSL_get_version(ssl);
}

const char *tls_session_cipher(SSL *ssl)
{
	return SSL_get_cipher_name(ssl);
}
