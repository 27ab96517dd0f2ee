/* The header section of a raw RFC 5322 message held in memory.
 *
 * A message is given as bytes and a length: it need not be NUL-terminated,
 * may hold NULs, bare CRs or LFs and any other garbage, and nothing here
 * reads past len.  Nothing allocates or does I/O, so every function is safe
 * on any thread and is fuzzed alone (fuzz/fuzz_header.c).
 *
 * Lines end in LF, with an optional CR before it (CRLF is what SMTP
 * delivers; a bare LF is tolerated because stored mail is not always
 * clean).  The header section runs from the start of the message to the
 * first empty line; without one, the whole message is the header section.
 * A field starts on a line that holds a field name (printable ASCII other
 * than ':', optionally followed by spaces or tabs, as RFC 5322 §4.5.3's
 * obsolete syntax allows) and a ':'; lines that begin with a space or a tab
 * continue it.  Other lines (an mbox "From " line, stray text) belong to no
 * field and are skipped.
 *
 * Names given in are NUL-terminated and compared ignoring ASCII case. */
#ifndef KEEL_MAIL_HEADER_H
#define KEEL_MAIL_HEADER_H

#include <stddef.h>

/* Offset just past the empty line that ends the header section (where the
 * body starts), or len when there is no empty line.  Always <= len. */
size_t header_section_end(const char *msg, size_t len);

/* Copies the value of the first field named name into buf: unfolded (the
 * line end before each continuation line is removed, its leading space or
 * tab kept), with leading and trailing spaces and tabs removed.  CR, LF and
 * NUL never appear in the result (a stray CR or NUL becomes a space), so
 * the value is safe to log or to put on one line.  A value longer than
 * size - 1 octets is cut there, never inside a UTF-8 sequence, and buf is
 * always NUL-terminated (size 0: buf is not touched).  Returns 0 when the
 * field exists (even if cut or empty), -1 when it does not (buf = ""). */
int header_get(const char *msg, size_t len, const char *name, char *buf, size_t size);

/* How many fields named name the header section holds (e.g. Received, to
 * stop mail loops). */
unsigned header_count(const char *msg, size_t len, const char *name);

/* The msg-id of the first Message-ID field, angle brackets included
 * ("<id-left@id-right>"), after any comments and spaces before it.  The
 * part between the brackets must hold an '@' with something on each side
 * and only printable, non-space octets other than '<' and '>' (octets of
 * 0x80 and above are allowed, for RFC 6532).  Returns 0, or -1 with buf = ""
 * (size > 0) when the field is absent, its value is not such a msg-id, or
 * it does not fit in size - 1 octets: a cut message id would be a different
 * one. */
int header_message_id(const char *msg, size_t len, char *buf, size_t size);

#endif
