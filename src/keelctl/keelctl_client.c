/* The admin socket: one JSON request line out, one reply line back
 * (src/admin/admin.h).  Blocking I/O: keelctl does one thing at a time. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "keelctl/keelctl.h"
#include "lib/xalloc.h"

/* A reply larger than this is not from keeld. */
#define KEELCTL_REPLY_MAX (64 * 1024 * 1024)

static int keelctl_client_connect(struct keelctl *ctl)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(ctl->socket_path) >= sizeof(sun.sun_path))
		return keelctl_fail(ctl, "socket path %s is too long", ctl->socket_path), -1;
	memcpy(sun.sun_path, ctl->socket_path, strlen(ctl->socket_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return keelctl_fail(ctl, "socket: %s", strerror(errno)), -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = errno;
		close(fd);
		return keelctl_fail(
		           ctl, "cannot connect to %s: %s%s", ctl->socket_path, strerror(err),
		           err == ENOENT || err == ECONNREFUSED ? " (is keeld running?)" : ""),
		       -1;
	}
	/* A server that goes away mid-write is an error to report, not a
	 * signal to die of. */
	signal(SIGPIPE, SIG_IGN);
	ctl->fd = fd;
	return 0;
}

static int keelctl_client_write(struct keelctl *ctl, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(ctl->fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return keelctl_fail(ctl, "writing to %s: %s", ctl->socket_path,
			                    strerror(errno)),
			       -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one line (the reply); the connection stays open for the next. */
static char *keelctl_client_read_line(struct keelctl *ctl)
{
	size_t len = 0, cap = 4096;
	char *buf = xmalloc(cap);

	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			if (cap >= KEELCTL_REPLY_MAX) {
				keelctl_fail(ctl, "reply from keeld too long");
				break;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		/* One byte at a time would be slow for big lists; a reply is
		 * the only thing in flight, so reading past its newline cannot
		 * swallow another. */
		n = read(ctl->fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			keelctl_fail(ctl, "reading from %s: %s", ctl->socket_path, strerror(errno));
			break;
		}
		if (n == 0) {
			keelctl_fail(ctl, "keeld closed the connection without a reply");
			break;
		}
		len += (size_t)n;
		if (memchr(buf + len - (size_t)n, '\n', (size_t)n) != NULL) {
			buf[len] = '\0';
			return buf;
		}
	}
	free(buf);
	return NULL;
}

static int keelctl_client_reply(struct keelctl *ctl, const char *line, json_t **result_r)
{
	json_error_t jerr;
	json_t *reply = json_loads(line, JSON_DISABLE_EOF_CHECK, &jerr);
	json_t *ok, *error;

	if (!json_is_object(reply)) {
		json_decref(reply);
		return keelctl_fail(ctl, "bad reply from keeld: %s", jerr.text), -1;
	}
	ok = json_object_get(reply, "ok");
	error = json_object_get(reply, "error");
	if (!json_is_true(ok)) {
		keelctl_fail(ctl, "%s",
		             json_is_string(error) ? json_string_value(error) : "request failed");
		json_decref(reply);
		return -1;
	}
	*result_r = json_incref(json_object_get(reply, "result"));
	if (*result_r == NULL)
		*result_r = json_null();
	json_decref(reply);
	return 0;
}

int keelctl_client_call(struct keelctl *ctl, const char *cmd, json_t *args, json_t **result_r)
{
	json_t *req =
	    json_pack("{s:s, s:o}", "cmd", cmd, "args", args != NULL ? args : json_object());
	char *text, *line;
	int ret = -1;

	if (ctl->fd < 0 && keelctl_client_connect(ctl) < 0) {
		json_decref(req);
		return -1;
	}
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL)
		return keelctl_fail(ctl, "cannot encode the request"), -1;
	if (keelctl_client_write(ctl, text, strlen(text)) == 0 &&
	    keelctl_client_write(ctl, "\n", 1) == 0) {
		line = keelctl_client_read_line(ctl);
		if (line != NULL)
			ret = keelctl_client_reply(ctl, line, result_r);
		free(line);
	}
	/* The request may hold a password. */
	explicit_bzero(text, strlen(text));
	free(text);
	return ret;
}

void keelctl_client_close(struct keelctl *ctl)
{
	if (ctl->fd >= 0)
		close(ctl->fd);
	ctl->fd = -1;
}

int keelctl_client_change(struct keelctl *ctl, const char *cmd, json_t *args, const char *tmpl)
{
	json_t *result;

	if (keelctl_client_call(ctl, cmd, args, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(result);
	else
		keelctl_output_template(tmpl, result);
	json_decref(result);
	return KEELCTL_EXIT_OK;
}

int keelctl_client_list(struct keelctl *ctl, const char *cmd, json_t *args,
                        const char *const *headers, size_t n_cols, keelctl_row_fn *row)
{
	json_t *result, *rows, *item;
	size_t i;

	if (keelctl_client_call(ctl, cmd, args, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	if (!json_is_array(result)) {
		json_decref(result);
		return keelctl_fail(ctl, "bad reply from keeld: not a list");
	}
	if (ctl->json) {
		keelctl_output_json(result);
	} else {
		rows = json_array();
		for (i = 0;
		     i < json_array_size(result) && (item = json_array_get(result, i)) != NULL; i++)
			json_array_append_new(rows, row(item));
		keelctl_output_table(headers, n_cols, rows);
		json_decref(rows);
	}
	json_decref(result);
	return KEELCTL_EXIT_OK;
}
