/* IDLE (RFC 2177): "+ idling", then every change of the selected mailbox
 * is announced as the notifier reports it (imap_view's watch callback),
 * until the client sends DONE. */
#include "imap/imap_private.h"

#include <strings.h>

void imap_cmd_idle(struct imap_session *s, const struct imap_arg *args)
{
	imap_printf(s, "+ idling\r\n");
	s->input = IMAP_INPUT_IDLE;
	if (s->state == IMAP_STATE_SELECTED)
		imap_view_sync(s, true, NULL, 0);
}

void imap_idle_line(struct imap_session *s, const char *line, size_t len)
{
	s->input = IMAP_INPUT_COMMAND;
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		imap_ok(s, "IDLE terminated");
	else
		imap_bad(s, "Expected DONE");
}
