"""IMAP4rev2 (RFC 9051, after ENABLE IMAP4rev2), MULTIAPPEND (RFC 3502) and
BINARY (RFC 3516) end to end, over TLS with raw sockets (imaplib knows
neither literal8 nor MULTIAPPEND) and imaplib where it can."""

import base64
import re

from test_imap import PASSWORD, USER, deliver, login, setup_users, tls_context

import socket


class Raw:
    """A line-and-literal IMAP client: send() a command, get every response
    line of it back with literals ({n} and ~{n}) inlined."""

    def __init__(self, keel):
        s = socket.create_connection(("127.0.0.1", keel.ports["imaps"]), timeout=10)
        self.s = tls_context().wrap_socket(s)
        self.f = self.s.makefile("rb")
        self.greeting = self.f.readline()
        assert self.greeting.startswith(b"* OK")
        self.n = 0

    def response(self):
        """One response: a line with its literals, CRLF kept at the end."""
        out = b""
        while True:
            line = self.f.readline()
            assert line, "connection closed"
            out += line
            m = re.search(rb"~?\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.f.read(int(m.group(1)))

    def cmd(self, text, literals=()):
        """Sends text (bytes or str); each literal waits for "+" (a
        synchronising literal) unless its marker ends with "+}".  Returns
        (tagged line, untagged responses)."""
        self.n += 1
        tag = b"t%d" % self.n
        text = text.encode() if isinstance(text, str) else text
        parts = text.split(b"\x00LIT\x00")
        untagged = []
        self.s.sendall(tag + b" " + parts[0])
        for i, lit in enumerate(literals):
            if not parts[i].rstrip(b"\r\n").endswith(b"+}"):
                while True:
                    r = self.response()
                    if r.startswith(b"+"):
                        break
                    if r.startswith(tag + b" "):
                        return r, untagged
                    untagged.append(r)
            self.s.sendall(lit + parts[i + 1])
        self.s.sendall(b"\r\n")
        while True:
            r = self.response()
            if r.startswith(tag + b" "):
                return r, untagged
            untagged.append(r)

    def ok(self, text, literals=()):
        tagged, untagged = self.cmd(text, literals)
        assert tagged.split()[1] == b"OK", (tagged, untagged)
        return tagged, untagged

    def close(self):
        self.s.close()


LIT = "\x00LIT\x00"


def session(keel, rev2=True):
    r = Raw(keel)
    r.ok(f'LOGIN {USER} "{PASSWORD}"')
    if rev2:
        _, untagged = r.ok("ENABLE IMAP4rev2")
        assert untagged == [b"* ENABLED IMAP4rev2\r\n"]
    return r


def msg(subject, body="hello\r\n", extra=""):
    return (f"From: a@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\n{extra}\r\n{body}").encode()


# ---- IMAP4rev2 --------------------------------------------------------------------

def test_capability_and_enable(keel):
    setup_users(keel)
    r = Raw(keel)
    assert b"IMAP4rev2" in r.greeting.split()
    r.ok(f'LOGIN {USER} "{PASSWORD}"')
    _, untagged = r.ok("CAPABILITY")
    caps = untagged[0].split()
    for c in (b"IMAP4rev1", b"IMAP4rev2", b"MULTIAPPEND", b"BINARY", b"ENABLE"):
        assert c in caps
    _, untagged = r.ok("ENABLE IMAP4rev2")
    assert untagged == [b"* ENABLED IMAP4rev2\r\n"]
    # Enabling it again announces nothing new (RFC 5161 3.1).
    _, untagged = r.ok("ENABLE IMAP4rev2")
    assert untagged == [b"* ENABLED\r\n"]


def test_rev2_search_answers_esearch(keel):
    setup_users(keel)
    for i in range(3):
        deliver(keel, subject=f"m{i}")
    r1 = session(keel, rev2=False)
    r1.ok("SELECT INBOX")
    _, untagged = r1.ok("SEARCH ALL")
    assert untagged == [b"* SEARCH 1 2 3\r\n"]
    r2 = session(keel)
    r2.ok("SELECT INBOX")
    tagged, untagged = r2.ok("SEARCH ALL")
    tag = tagged.split()[0]
    assert untagged == [b'* ESEARCH (TAG "%s") ALL 1:3\r\n' % tag]
    tagged, untagged = r2.ok("UID SEARCH SUBJECT m1")
    assert re.match(rb'\* ESEARCH \(TAG "t\d+"\) UID ALL \d+\r\n$', untagged[0])
    # No match: ESEARCH with no ALL (RFC 9051 7.3.4).
    tagged, untagged = r2.ok("SEARCH SUBJECT nothing-like-this")
    assert untagged == [b'* ESEARCH (TAG "%s")\r\n' % tagged.split()[0]]
    _, untagged = r2.ok("SEARCH RETURN (COUNT) ALL")
    assert untagged[0].endswith(b" COUNT 3\r\n")


def test_rev2_has_no_recent(keel):
    setup_users(keel)
    deliver(keel, subject="new")
    r2 = session(keel)
    _, untagged = r2.ok("SELECT INBOX")
    text = b"".join(untagged)
    assert b"RECENT" not in text and b"UNSEEN" not in text
    assert b"* 1 EXISTS" in text
    # The server's spelling of the name, as a LIST response (RFC 9051 6.3.2).
    assert b'* LIST () "/" "INBOX"\r\n' in untagged
    _, untagged = r2.ok("FETCH 1 FLAGS")
    assert untagged == [b"* 1 FETCH (FLAGS ())\r\n"]
    tagged, _ = r2.cmd("STATUS INBOX (RECENT)")
    assert tagged.split()[1] == b"BAD"
    # New mail while selected: EXISTS, no RECENT.
    deliver(keel, subject="newer")
    _, untagged = r2.ok("NOOP")
    assert b"* 2 EXISTS\r\n" in untagged and not any(b"RECENT" in u for u in untagged)
    # The rev2 session claimed no \Recent: a rev1 session still gets both.
    r1 = session(keel, rev2=False)
    _, untagged = r1.ok("SELECT INBOX")
    assert b"* 2 RECENT\r\n" in untagged
    _, untagged = r1.ok("FETCH 1 FLAGS")
    assert b"\\Recent" in untagged[0]


def test_status_size_and_deleted(keel):
    setup_users(keel)
    deliver(keel, subject="a")
    deliver(keel, subject="b", body="x" * 500 + "\r\n")
    r = session(keel)
    r.ok("SELECT INBOX")
    _, untagged = r.ok("FETCH 1:2 RFC822.SIZE")
    sizes = [int(re.search(rb"RFC822.SIZE (\d+)", u).group(1)) for u in untagged]
    r.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    _, untagged = r.ok("STATUS INBOX (MESSAGES SIZE DELETED UNSEEN)")
    assert untagged == [b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 2 SIZE %d DELETED 1)\r\n'
                        % sum(sizes)]
    r.ok("EXPUNGE")
    _, untagged = r.ok("STATUS INBOX (DELETED SIZE)")
    assert untagged == [b'* STATUS "INBOX" (SIZE %d DELETED 0)\r\n' % sizes[0]]


def test_rev2_utf8_names_and_nonexistent(keel):
    setup_users(keel)
    r1 = session(keel, rev2=False)
    # rev1: modified UTF-7 on the wire (RFC 3501 5.1.3), UTF-8 in the store.
    r1.ok("CREATE Entw&APw-rfe/Sp&AOQ-t")
    _, untagged = r1.ok('LIST "" "Entw*"')
    assert b'* LIST (\\HasChildren) "/" "Entw&APw-rfe"\r\n' in untagged
    assert b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe/Sp&AOQ-t"\r\n' in untagged
    r1.ok("DELETE Entw&APw-rfe")  # children stay: the parent is \Noselect
    r2 = session(keel)
    _, untagged = r2.ok('LIST "" "Entw*"')
    names = b"".join(untagged).decode()
    assert '"Entwürfe/Spät"' in names
    parent = [u for u in untagged if b'"Entw\xc3\xbcrfe"\r\n' in u][0]
    assert b"\\NonExistent" in parent and b"\\Noselect" in parent
    # rev2 takes UTF-8 names as they are.
    r2.ok('CREATE "Ärger"'.encode())
    _, untagged = r1.ok('LIST "" "&AMQ-*"')
    assert untagged == [b'* LIST (\\HasNoChildren) "/" "&AMQ-rger"\r\n']
    _, untagged = r2.ok('STATUS "\xc3\x84rger" (MESSAGES)'.encode("latin-1"))
    assert untagged == ['* STATUS "Ärger" (MESSAGES 0)\r\n'.encode()]


# ---- MULTIAPPEND --------------------------------------------------------------------

def test_multiappend_one_appenduid(keel):
    setup_users(keel)
    r = session(keel, rev2=False)
    msgs = [msg(f"multi {i}", "body %d\r\n" % i * 20) for i in range(3)]
    text = (f"APPEND Drafts (\\Seen) {{{len(msgs[0])}}}\r\n{LIT}"
            f' (\\Draft $Todo $todo) "05-Mar-2026 12:34:56 +0100" {{{len(msgs[1])}}}\r\n{LIT}'
            f" {{{len(msgs[2])}+}}\r\n{LIT}")
    tagged, _ = r.ok(text, msgs)
    m = re.search(rb"\[APPENDUID (\d+) 1:3\]", tagged)
    assert m, tagged
    r.ok("SELECT Drafts")
    _, untagged = r.ok("FETCH 1:3 (UID FLAGS INTERNALDATE BODY.PEEK[])")
    assert len(untagged) == 3
    for i, u in enumerate(untagged):
        assert u.endswith(msgs[i] + b")\r\n")
    assert b"\\Seen" in untagged[0] and b"$Todo" in untagged[1] and b"\\Draft" in untagged[1]
    assert b'INTERNALDATE "05-Mar-2026 11:34:56 +0000"' in untagged[1]
    assert b"$Todo" not in untagged[2] and b"\\Seen" not in untagged[2]
    assert untagged[1].count(b"$Todo") == 1 and b"$todo" not in untagged[1]
    # The keywords came with the message, in its transaction: no later flag
    # change gave the second message a newer modseq than the third.
    _, untagged = r.ok("FETCH 1:3 (MODSEQ)")
    modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", u).group(1)) for u in untagged]
    assert modseqs[1] <= modseqs[2], modseqs


def count(r, mailbox="INBOX"):
    _, untagged = r.ok(f"STATUS {mailbox} (MESSAGES)")
    return int(re.search(rb"MESSAGES (\d+)", untagged[0]).group(1))


def test_multiappend_all_or_nothing_quota(keel):
    keel.ctl("domain", "add", "imap.test", check=True)
    keel.ctl("user", "add", USER, "--quota", "3K", "--password-stdin",
             input=PASSWORD + "\n", check=True)
    r = session(keel, rev2=False)
    small = msg("small", "s" * 1000 + "\r\n")
    # Each fits alone; together they are over the 3K quota.
    tagged, _ = r.cmd(f"APPEND INBOX {{{len(small)}+}}\r\n{LIT} {{{len(small)}+}}\r\n{LIT}"
                      f" {{{len(small)}+}}\r\n{LIT}", [small] * 3)
    assert tagged.split()[1] == b"NO" and b"OVERQUOTA" in tagged
    assert count(r) == 0
    r.ok(f"APPEND INBOX {{{len(small)}+}}\r\n{LIT}", [small])
    assert count(r) == 1


def test_multiappend_all_or_nothing_too_big(keel):
    setup_users(keel)
    keel.ctl("config", "set", "smtp.max_message_size", "2K", check=True)
    r = session(keel, rev2=False)
    small = msg("small", "s" * 500 + "\r\n")
    big = msg("big", "b" * 3000 + "\r\n")
    # The second is over smtp.max_message_size: the first is not kept either.
    tagged, _ = r.cmd(f"APPEND INBOX {{{len(small)}+}}\r\n{LIT} {{{len(big)}+}}\r\n{LIT}",
                      [small, big])
    assert tagged.split()[1] == b"NO" and b"TOOBIG" in tagged
    assert count(r) == 0
    # Synchronising: refused before the big one is sent; the first is not kept.
    tagged, _ = r.cmd(f"APPEND INBOX {{{len(small)}+}}\r\n{LIT} {{{len(big)}}}\r\n{LIT}",
                      [small, big])
    assert tagged.split()[1] == b"NO" and b"TOOBIG" in tagged
    assert count(r) == 0
    # A bad message in the set (a flag list where a literal must be): BAD, none kept.
    tagged, _ = r.cmd(f"APPEND INBOX {{{len(small)}+}}\r\n{LIT} (\\Seen)", [small])
    assert tagged.split()[1] == b"BAD"
    assert count(r) == 0
    r.ok(f"APPEND INBOX {{{len(small)}+}}\r\n{LIT} {{{len(small)}+}}\r\n{LIT}",
         [small, small])
    assert count(r) == 2


# ---- BINARY -------------------------------------------------------------------------

BLOB = bytes(range(256)) * 8


def mime_message():
    b64 = base64.encodebytes(BLOB).replace(b"\n", b"\r\n")
    return (b"From: a@remote.test\r\nTo: " + USER.encode() + b"\r\nSubject: binary\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"caf=C3=A9 =3D soft=\r\nbreak\r\n"
            b"--XX\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 +
            b"--XX\r\nContent-Type: application/x-odd\r\n"
            b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n`\r\nend\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nplain part\r\n"
            b"--XX--\r\n")


def literal_of(untagged, item):
    """The literal after item in a FETCH response, and whether it was ~{n}."""
    m = re.search(re.escape(item) + rb" (~?)\{(\d+)\}\r\n", untagged)
    assert m, untagged
    n = int(m.group(2))
    return untagged[m.end():m.end() + n], m.group(1) == b"~"


def test_fetch_binary_decodes(keel):
    setup_users(keel)
    r = session(keel, rev2=False)
    data = mime_message()
    r.ok(f"APPEND INBOX {{{len(data)}+}}\r\n{LIT}", [data])
    r.ok("SELECT INBOX")
    _, untagged = r.ok("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1] FLAGS)")
    blob, tilde = literal_of(untagged[0], b"BINARY[2]")
    assert blob == BLOB and tilde  # NULs inside: a literal8
    assert b"BINARY.SIZE[2] %d" % len(BLOB) in untagged[0]
    text, tilde = literal_of(untagged[0], b"BINARY[1]")
    assert text == "café = softbreak".encode() and not tilde
    assert b"\\Seen" not in untagged[0]  # PEEK
    # A partial fetch counts decoded octets.
    _, untagged = r.ok("FETCH 1 BINARY.PEEK[2]<256.16>")
    part, _ = literal_of(untagged[0], b"BINARY[2]<256>")
    assert part == bytes(range(16))
    # An identity part: as stored; its size is the stored size.
    _, untagged = r.ok("FETCH 1 (BINARY.PEEK[4] BINARY.SIZE[4])")
    assert literal_of(untagged[0], b"BINARY[4]")[0] == b"plain part"
    assert b"BINARY.SIZE[4] 10" in untagged[0]
    # Without PEEK, \Seen is set.
    _, untagged = r.ok("FETCH 1 BINARY[1]")
    assert b"\\Seen" in b"".join(untagged)
    # imaplib parses the answer like any literal.
    m = login(keel)
    m.select("INBOX", readonly=True)
    typ, got = m.fetch("1", "(BINARY.PEEK[2])")
    assert typ == "OK" and got[0][1] == BLOB


def test_fetch_binary_unknown_cte(keel):
    setup_users(keel)
    r = session(keel)
    data = mime_message()
    r.ok(f"APPEND INBOX {{{len(data)}+}}\r\n{LIT}", [data])
    r.ok("SELECT INBOX")
    for item in ("BINARY[3]", "BINARY.PEEK[3]", "BINARY.SIZE[3]"):
        tagged, untagged = r.cmd(f"FETCH 1 {item}")
        assert tagged.split()[1] == b"NO" and b"[UNKNOWN-CTE]" in tagged, tagged
        assert not any(b"FETCH" in u for u in untagged)
    _, untagged = r.ok("FETCH 1 FLAGS")
    assert b"\\Seen" not in untagged[0]  # the failed BINARY[3] set nothing
    # BODY[3] is still the raw encoded part.
    _, untagged = r.ok("FETCH 1 BODY.PEEK[3]")
    assert b"begin 644 x" in untagged[0]
    tagged, _ = r.cmd("FETCH 1 BINARY[0]")
    assert tagged.split()[1] == b"BAD"


def test_append_literal8_round_trip(keel):
    setup_users(keel)
    r = session(keel)
    # 8-bit content with NULs, as an APPEND literal8 (RFC 3516 4.4).
    data = b"From: a@remote.test\r\nSubject: raw\r\n\r\n" + bytes(range(256)) * 4 + b"\r\n"
    tagged, _ = r.ok(f"APPEND INBOX ~{{{len(data)}}}\r\n{LIT}", [data])
    assert b"APPENDUID" in tagged
    # literal8 in a MULTIAPPEND, non-synchronising.
    tagged, _ = r.ok(f"APPEND INBOX ~{{{len(data)}+}}\r\n{LIT} ~{{{len(data)}+}}\r\n{LIT}",
                     [data, data])
    assert re.search(rb"\[APPENDUID \d+ 2:3\]", tagged)
    r.ok("SELECT INBOX")
    _, untagged = r.ok("FETCH 1:3 (BINARY.PEEK[] BINARY.SIZE[])")
    assert len(untagged) == 3
    for u in untagged:
        got, tilde = literal_of(u, b"BINARY[]")
        assert got == data and tilde
        assert b"BINARY.SIZE[] %d" % len(data) in u
