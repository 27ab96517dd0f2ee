#include "keeld/ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/xalloc.h"

struct ipc_header {
	uint32_t type;
	uint32_t id;
	int32_t status;
	uint32_t len;
};

int ipc_socketpair(int fds_r[2])
{
	int size = IPC_MAX_PAYLOAD + 4096;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds_r) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		setsockopt(fds_r[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(fds_r[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	return 0;
}

int ipc_send(int sock, enum ipc_type type, uint32_t id, int32_t status, const char *payload,
	     size_t len, const int *fds, unsigned n_fds)
{
	struct ipc_header h = { .type = type, .id = id, .status = status, .len = (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	char cbuf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1 };
	ssize_t n;

	if (len > IPC_MAX_PAYLOAD || n_fds > IPC_MAX_FDS) {
		errno = EMSGSIZE;
		return -1;
	}
	if (n_fds > 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

static void ipc_take_fds(struct msghdr *mh, struct ipc_msg *msg)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;
		int fds[16];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > 16)
			n = 16;
		memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
		for (size_t i = 0; i < n; i++) {
			if (msg->n_fds < IPC_MAX_FDS)
				msg->fds[msg->n_fds++] = fds[i];
			else
				close(fds[i]);
		}
	}
}

int ipc_recv(int sock, struct ipc_msg *msg_r)
{
	struct ipc_header h;
	char *buf = xmalloc(IPC_MAX_PAYLOAD + 1);
	char cbuf[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov[2] = { { &h, sizeof(h) }, { buf, IPC_MAX_PAYLOAD } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n;

	memset(msg_r, 0, sizeof(*msg_r));
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		free(buf);
		return n == 0 ? 0 : -1;
	}
	ipc_take_fds(&mh, msg_r);
	if ((size_t)n < sizeof(h) || h.len != (size_t)n - sizeof(h) ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		ipc_msg_free(msg_r);
		free(buf);
		errno = EPROTO;
		return -1;
	}
	buf[h.len] = '\0';
	msg_r->type = (enum ipc_type)h.type;
	msg_r->id = h.id;
	msg_r->status = h.status;
	msg_r->len = h.len;
	msg_r->payload = xrealloc(buf, h.len + 1);
	return 1;
}

void ipc_msg_free(struct ipc_msg *msg)
{
	for (unsigned i = 0; i < msg->n_fds; i++)
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
	msg->n_fds = 0;
	free(msg->payload);
	msg->payload = NULL;
}
