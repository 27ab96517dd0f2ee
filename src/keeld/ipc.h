/* The messages between master and worker: the only things that cross.
 *
 * One SOCK_SEQPACKET socketpair; each message is one packet: a fixed header,
 * an optional text payload and up to IPC_MAX_FDS file descriptors
 * (SCM_RIGHTS).
 *
 * master -> worker
 *   IPC_CONFIG        payload: the keel.conf text the master parsed (first
 *                     message a new worker reads; path in the header's text)
 *   IPC_LISTENER_ADD  id; payload "service address"; 1 fd (listening socket)
 *   IPC_LISTENER_DEL  id
 *   IPC_CERT          2 fds: certificate chain PEM, private key PEM
 *   IPC_SETTINGS      payload: the keel.conf text after a reload
 *   IPC_RELOAD_DONE   status 0 or -1; payload: the error text
 *   IPC_STOP          stop accepting, finish pending commits, exit 0
 * worker -> master
 *   IPC_READY         the worker serves (sent once, after start-up)
 *   IPC_RELOAD_REQUEST  `keelctl reload`: please re-read keel.conf
 */
#ifndef KEEL_KEELD_IPC_H
#define KEEL_KEELD_IPC_H

#include <stddef.h>
#include <stdint.h>

enum ipc_type {
	IPC_CONFIG = 1,
	IPC_LISTENER_ADD,
	IPC_LISTENER_DEL,
	IPC_CERT,
	IPC_SETTINGS,
	IPC_RELOAD_DONE,
	IPC_STOP,
	IPC_READY,
	IPC_RELOAD_REQUEST,
};

#define IPC_MAX_FDS 2
#define IPC_MAX_PAYLOAD (256 * 1024)

struct ipc_msg {
	enum ipc_type type;
	uint32_t id;
	int32_t status;
	size_t len;          /* payload bytes; payload is NUL-terminated */
	char *payload;       /* malloc'd, never NULL after ipc_recv */
	int fds[IPC_MAX_FDS];
	unsigned n_fds;
};

/* Makes the socketpair with buffers large enough for IPC_MAX_PAYLOAD. */
int ipc_socketpair(int fds_r[2]);
int ipc_send(int sock, enum ipc_type type, uint32_t id, int32_t status, const char *payload,
	     size_t len, const int *fds, unsigned n_fds);
/* Receives one message.  Returns 1 for a message, 0 for EOF (the peer is
 * gone), -1 on error (EAGAIN for a non-blocking socket with nothing to read
 * is -1 with errno EAGAIN).  Free with ipc_msg_free(), which closes fds the
 * caller has not taken (set to -1 to take one). */
int ipc_recv(int sock, struct ipc_msg *msg_r);
void ipc_msg_free(struct ipc_msg *msg);

#endif
