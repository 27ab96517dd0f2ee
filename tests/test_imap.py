"""IMAP (RFC 3501 and extensions) end to end with imaplib, curl and raw
sockets: login, mailboxes, FETCH, STORE, COPY/MOVE, APPEND, IDLE, SEARCH,
two sessions seeing each other's changes, and hostile input."""

import base64
import imaplib
import os
import re
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import threading
import time

import pytest

from conftest import wait_for

PASSWORD = "correct horse battery"
USER = "bob@imap.test"


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def setup_users(keel, *users):
    keel.ctl("domain", "add", "imap.test", check=True)
    for u in users or (USER,):
        keel.ctl("user", "add", u, "--password-stdin", input=PASSWORD + "\n", check=True)


def message(rcpt, subject="test", body="hello\r\n", extra=""):
    return (f"From: Alice <alice@remote.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@remote.test>\r\n"
            f"{extra}\r\n{body}")


def deliver(keel, rcpt=USER, subject="test", body="hello\r\n", extra=""):
    with smtplib.SMTP("127.0.0.1", keel.ports["smtp"], timeout=10) as s:
        s.sendmail("alice@remote.test", [rcpt], message(rcpt, subject, body, extra).encode())


def imaps(keel):
    return imaplib.IMAP4_SSL("127.0.0.1", keel.ports["imaps"], ssl_context=tls_context(),
                             timeout=10)


def login(keel, user=USER):
    m = imaps(keel)
    m.login(user, PASSWORD)
    return m


def raw(keel, service="imaps"):
    s = socket.create_connection(("127.0.0.1", keel.ports[service]), timeout=10)
    if service == "imaps":
        s = tls_context().wrap_socket(s)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    return s, f


def raw_login(keel):
    s, f = raw(keel)
    s.sendall(f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode())
    read_tagged(f, b"a")
    return s, f


def read_tagged(f, tag):
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


# ---- login -----------------------------------------------------------------------

def test_plaintext_login_refused_before_tls_unless_allowed(keel):
    setup_users(keel)
    m = imaplib.IMAP4("127.0.0.1", keel.ports["imap"], timeout=10)
    assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities
    assert "AUTH=PLAIN" not in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        m.login(USER, PASSWORD)
    m.logout()
    keel.ctl("config", "set", "imap.allow_plaintext_auth", "yes", check=True)
    m = imaplib.IMAP4("127.0.0.1", keel.ports["imap"], timeout=10)
    assert "AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities
    assert m.login(USER, PASSWORD)[0] == "OK"
    m.logout()


def test_starttls_imaps_and_authenticate_plain(keel):
    setup_users(keel)
    m = imaplib.IMAP4("127.0.0.1", keel.ports["imap"], timeout=10)
    m.starttls(ssl_context=tls_context())
    assert "AUTH=PLAIN" in m.capabilities and "STARTTLS" not in m.capabilities
    m.login(USER, PASSWORD)
    assert m.state == "AUTH"
    caps = m.capability()[1][0].decode().split()
    assert "IDLE" in caps and "UIDPLUS" in caps and "MOVE" in caps and "STARTTLS" not in caps
    m.logout()
    m = imaps(keel)
    m.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
    assert m.state == "AUTH"
    m.logout()
    # SASL-IR: the initial response on the command line.
    s, f = raw(keel)
    ir = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    s.sendall(f"a AUTHENTICATE PLAIN {ir}\r\n".encode())
    assert read_tagged(f, b"a")[-1].startswith(b"a OK")
    s.close()


def test_wrong_password_is_refused_and_delayed(keel):
    setup_users(keel)
    keel.ctl("config", "set", "auth.failure_delay", "1", check=True)
    m = imaps(keel)
    t0 = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(USER, "wrong password")
    assert time.monotonic() - t0 >= 0.9
    assert m.login(USER, PASSWORD)[0] == "OK"


def test_commands_need_login_and_unknown_is_bad(keel):
    setup_users(keel)
    s, f = raw(keel)
    s.sendall(b"a SELECT INBOX\r\nb FROBNICATE\r\nc NOOP\r\n")
    assert read_tagged(f, b"a")[-1].startswith(b"a BAD")
    assert read_tagged(f, b"b")[-1].startswith(b"b BAD")
    assert read_tagged(f, b"c")[-1].startswith(b"c OK")
    s.sendall(b'd ID ("name" "pytest" "version" "1.0")\r\ne LOGOUT\r\n')
    assert b'"name" "Keel"' in b"".join(read_tagged(f, b"d"))
    lines = read_tagged(f, b"e")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"e OK")
    assert 'event=client_id name="pytest" version="1.0"' in keel.read_log()


# ---- mailboxes --------------------------------------------------------------------

def list_names(m, *args):
    typ, data = m.list(*args)
    assert typ == "OK"
    out = {}
    for line in data:
        if line is None:
            continue
        match = re.match(rb'\(([^)]*)\) "/" "?([^"]*)"?$', line)
        assert match, line
        out[match.group(2).decode()] = set(match.group(1).decode().split())
    return out


def test_list_special_use_and_children(keel):
    setup_users(keel)
    m = login(keel)
    boxes = list_names(m)
    assert set(boxes) == {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}
    assert "\\Drafts" in boxes["Drafts"] and "\\Sent" in boxes["Sent"]
    assert "\\Trash" in boxes["Trash"] and "\\Junk" in boxes["Junk"]
    assert "\\Archive" in boxes["Archive"] and "\\HasNoChildren" in boxes["INBOX"]
    assert m.create("Work/2026/Q1")[0] == "OK"
    boxes = list_names(m)
    assert {"Work", "Work/2026", "Work/2026/Q1"} <= set(boxes)
    assert "\\HasChildren" in boxes["Work"] and "\\HasNoChildren" in boxes["Work/2026/Q1"]
    assert set(list_names(m, '""', "%")) == {"INBOX", "Drafts", "Sent", "Trash", "Junk",
                                           "Archive", "Work"}
    assert set(list_names(m, "Work/", "%")) == {"Work/2026"}
    assert set(list_names(m, '""', "inbox")) == {"INBOX"}
    typ, data = m.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    # LIST-EXTENDED: SPECIAL-USE selection, RETURN (SUBSCRIBED STATUS).
    typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
    lines = m.untagged_responses.pop("LIST")
    assert len(lines) == 5 and all(b"\\HasNoChildren" in l for l in lines)
    m.subscribe("Work")
    typ, data = m._simple_command("LIST", '""', "W*", "RETURN", "(SUBSCRIBED STATUS (MESSAGES))")
    assert typ == "OK"
    lines = m.untagged_responses.pop("LIST")
    assert any(b"\\Subscribed" in l and l.endswith(b'"Work"') for l in lines)
    assert m.untagged_responses.pop("STATUS")[0] == b'"Work" (MESSAGES 0)'
    assert b'() "/" "Work"' in m.lsub()[1]
    m.unsubscribe("Work")
    assert b'() "/" "Work"' not in m.lsub()[1]
    assert "\\Subscribed" not in list_names(m, '""', "Work")["Work"]


def test_create_rename_delete(keel):
    setup_users(keel)
    deliver(keel, subject="one")
    deliver(keel, subject="two")
    m = login(keel)
    assert m.create("Projects")[0] == "OK"
    typ, data = m.create("Projects")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    assert m.create("Projects/Keel")[0] == "OK"
    assert m.rename("Projects", "Old")[0] == "OK"
    assert {"Old", "Old/Keel"} <= set(list_names(m)) and "Projects" not in list_names(m)
    typ, data = m.rename("Nope", "Other")
    assert typ == "NO"
    assert m.delete("Old/Keel")[0] == "OK"
    assert m.delete("Old")[0] == "OK"
    assert "Old" not in list_names(m)
    assert m.delete("INBOX")[0] == "NO"
    # CREATE-SPECIAL-USE (RFC 6154).
    assert m._simple_command("CREATE", "Outbox", "(USE (\\Sent))")[0] == "OK"
    assert "\\Sent" in list_names(m, '""', "Outbox")["Outbox"]
    typ, data = m._simple_command("CREATE", "Weird", "(USE (\\Flagged))")
    assert typ == "NO" and b"USEATTR" in data[0]
    # Renaming INBOX moves its messages and leaves it empty (RFC 3501 6.3.5).
    assert m.rename("INBOX", "Saved")[0] == "OK"
    assert m.select("INBOX")[1] == [b"0"]
    assert m.select("Saved")[1] == [b"2"]
    m.logout()


def test_select_examine_status(keel):
    setup_users(keel)
    for i in range(3):
        deliver(keel, subject=f"m{i}")
    m = login(keel)
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT SIZE HIGHESTMODSEQ)")
    assert typ == "OK"
    st = data[0].decode()
    assert "MESSAGES 3" in st and "UIDNEXT 4" in st and "UNSEEN 3" in st and "RECENT 3" in st
    typ, data = m.select("INBOX")
    assert data == [b"3"]
    assert m.untagged_responses["RECENT"] == [b"3"]
    assert m.response("UIDNEXT")[1] == [b"4"]
    assert m.response("UNSEEN")[1] == [b"1"]
    m.store("1", "+FLAGS", "\\Seen")
    m.close()
    assert m.state == "AUTH"
    typ, data = m.select("INBOX", readonly=True)
    assert data == [b"3"]
    assert m.response("READ-ONLY")[1] == [b"EXAMINE completed"] or True
    typ, data = m.store("1", "+FLAGS", "\\Deleted")
    assert typ == "NO"
    typ, data = m.status("INBOX", "(UNSEEN)")
    assert b"UNSEEN 2" in data[0]
    m.select("Junk")
    assert m.fetch("1:*", "(FLAGS)") == ("OK", [None]), "1:* of an empty mailbox is no message"
    assert m.select("Nowhere")[0] == "NO"
    assert m.state == "AUTH"


# ---- FETCH ------------------------------------------------------------------------

MULTIPART = (
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="XX"\r\n'
    "\r\n"
    "preamble\r\n"
    "--XX\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "first part\r\n"
    "--XX\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAw==\r\n"
    "--XX--\r\n")


def stored_message(keel, uid=1):
    """The message as stored (with the Received: line SMTP added)."""
    m = login(keel)
    m.select("INBOX", readonly=True)
    typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
    m.logout()
    return data[0][1]


def test_fetch_attributes(keel):
    setup_users(keel)
    deliver(keel, subject="plain", body="line one\r\nline two\r\n")
    m = login(keel)
    m.select("INBOX")
    typ, data = m.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    head, full = data[0]
    assert re.search(rb"UID 1 ", head) and b"FLAGS (\\Recent)" in head
    assert re.search(rb'INTERNALDATE "\d\d-\w\w\w-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"', head)
    size = int(re.search(rb"RFC822.SIZE (\d+)", head).group(1))
    assert size == len(full) and full.endswith(b"line one\r\nline two\r\n")
    assert b"Subject: plain\r\n" in full
    hdr_end = full.index(b"\r\n\r\n") + 4
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER] BODY.PEEK[TEXT] RFC822.HEADER)")
    assert data[0][1] == full[:hdr_end]
    assert data[1][1] == full[hdr_end:]
    assert data[2][1] == full[:hdr_end]
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    assert data[0][1] == b"From: Alice <alice@remote.test>\r\nSubject: plain\r\n\r\n"
    assert b"BODY[HEADER.FIELDS (SUBJECT FROM)]" in data[0][0]
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM RECEIVED)])")
    assert b"Subject:" not in data[0][1] and b"To: bob@imap.test\r\n" in data[0][1]
    typ, data = m.fetch("1", "(BODY.PEEK[]<5.10>)")
    assert b"BODY[]<5> {10}" in data[0][0] and data[0][1] == full[5:15]
    typ, data = m.fetch("1", "(BODY.PEEK[TEXT]<5.100>)")
    assert data[0][1] == full[hdr_end + 5:]
    typ, data = m.fetch("1", "(ENVELOPE)")
    env = data[0]
    assert b'"Mon, 02 Feb 2026 10:00:00 +0000" "plain" (("Alice" NIL "alice" "remote.test"))' in env
    assert b'<plain@remote.test>' in env
    typ, data = m.fetch("1", "(BODYSTRUCTURE)")
    assert b'BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2' in data[0]
    typ, data = m.fetch("1", "FLAGS")
    assert b"\\Seen" not in data[0], "PEEK must not set \\Seen"
    typ, data = m.fetch("1", "(BODY[TEXT])")
    assert b"FLAGS (\\Seen \\Recent)" in data[0][0] or b"\\Seen" in data[1]
    typ, data = m.fetch("1", "FAST")
    assert b"\\Seen" in data[0] and b"RFC822.SIZE" in data[0]
    typ, data = m.fetch("1", "(RFC822)")
    assert data[0][1] == full
    with pytest.raises(imaplib.IMAP4.error, match="Invalid message sequence number"):
        m.fetch("5", "FLAGS")
    m.logout()


def test_fetch_mime_sections(keel):
    setup_users(keel)
    deliver(keel, subject="mime", body=MULTIPART.split("\r\n\r\n", 1)[1],
            extra="MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n")
    m = login(keel)
    m.select("INBOX")
    typ, data = m.fetch("1", "(BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[2.MIME])")
    assert data[0][1] == b"first part"
    assert data[1][1] == b"AAECAw=="
    assert data[2][1].startswith(b"Content-Type: application/octet-stream\r\n")
    typ, data = m.fetch("1", "(BODYSTRUCTURE)")
    assert b'("text" "plain" ("charset" "utf-8")' in data[0]
    assert b'"mixed" ("boundary" "XX")' in data[0]
    typ, data = m.fetch("1", "(BODY)")
    assert b'BODY (("text" "plain"' in data[0]
    typ, data = m.fetch("1", "(BODY.PEEK[3])")
    assert typ == "OK" and data[0][1] == b""


def test_uid_fetch_and_large_body_streamed(keel):
    setup_users(keel)
    big = ("x" * 76 + "\r\n") * 30000  # ~2.3 MB
    deliver(keel, subject="big", body=big)
    deliver(keel, subject="small")
    m = login(keel)
    m.select("INBOX")
    typ, data = m.uid("FETCH", "2", "(FLAGS)")
    assert data == [b"2 (UID 2 FLAGS (\\Recent))"]
    typ, data = m.uid("FETCH", "1:*", "(RFC822.SIZE)")
    assert len(data) == 2
    typ, data = m.uid("FETCH", "1", "(BODY.PEEK[TEXT])")
    assert data[0][1] == big.encode()
    typ, data = m.uid("FETCH", "3:*", "(UID)")
    assert data == [b"2 (UID 2)"], "n:* with n past the last uid names the last message"
    typ, data = m.uid("FETCH", "7", "(UID)")
    assert data == [None]


def test_fetched_trace_event(keel):
    setup_users(keel)
    deliver(keel, subject="traced")
    m = login(keel)
    m.select("INBOX")
    m.fetch("1", "(BODY[])")
    m.fetch("1", "(BODY[])")
    m.logout()
    db = sqlite3.connect(os.path.join(keel.data_dir, "keel.db"))

    def events():
        return db.execute("SELECT event, protocol, client_ip, account FROM trace"
                          " WHERE protocol = 'imap' AND event = 'fetched'").fetchall()
    rows = wait_for(events, what="the fetched trace event")
    assert rows == [("fetched", "imap", "127.0.0.1", USER)]


# ---- STORE, EXPUNGE, COPY, MOVE -------------------------------------------------------

def test_store_flags_and_keywords(keel):
    setup_users(keel)
    deliver(keel, subject="a")
    deliver(keel, subject="b")
    m = login(keel)
    m.select("INBOX")
    typ, data = m.store("1:2", "+FLAGS", "(\\Flagged $Important)")
    assert typ == "OK" and len(data) == 2
    assert b"\\Flagged" in data[0] and b"$Important" in data[0]
    typ, data = m.store("1", "-FLAGS", "($Important)")
    assert b"$Important" not in data[0] and b"\\Flagged" in data[0]
    typ, data = m.store("2", "FLAGS.SILENT", "(\\Answered)")
    assert typ == "OK" and data == [None]
    typ, data = m.fetch("1:2", "FLAGS")
    assert b"\\Flagged" in data[0] and b"FLAGS (\\Answered \\Recent)" in data[1]
    typ, data = m.uid("STORE", "2", "+FLAGS", "(\\Seen)")
    assert b"UID 2" in data[0]
    with pytest.raises(imaplib.IMAP4.error, match="Invalid system flag"):
        m.store("1", "+FLAGS", "(\\Bogus)")
    # CONDSTORE: UNCHANGEDSINCE, MODIFIED, MODSEQ.
    typ, data = m.fetch("1", "(MODSEQ)")
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
    typ, data = m._simple_command("STORE", "1", f"(UNCHANGEDSINCE {modseq - 1})", "+FLAGS",
                                  "(\\Deleted)")
    assert typ == "OK" and b"[MODIFIED 1]" in data[0]
    typ, data = m._simple_command("STORE", "1", f"(UNCHANGEDSINCE {modseq})", "+FLAGS",
                                  "(\\Draft)")
    assert typ == "OK" and b"MODIFIED" not in data[0]
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Draft" in data[-1] and b"\\Deleted" not in data[-1] and b"MODSEQ" in data[-1]


def test_expunge_copy_move_uidplus(keel):
    setup_users(keel)
    for i in range(4):
        deliver(keel, subject=f"m{i}")
    m = login(keel)
    m.select("INBOX")
    typ, data = m._simple_command("UID", "COPY", "1:2", "Archive")
    assert typ == "OK"
    assert re.search(rb"\[COPYUID \d+ 1:2 1:2\]", data[0]), data
    typ, data = m.copy("1", "Nowhere")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    typ, data = m._simple_command("MOVE", "2", "Trash")
    assert typ == "OK"
    assert m.untagged_responses.pop("EXPUNGE") == [b"2"]
    assert re.match(rb"\d+ 2 1$", m.response("COPYUID")[1][-1])
    m.store("1:3", "+FLAGS", "\\Deleted")
    m.store("2", "-FLAGS", "\\Deleted")
    typ, data = m._simple_command("UID", "EXPUNGE", "1")
    assert typ == "OK" and m.untagged_responses.pop("EXPUNGE") == [b"1"]
    typ, data = m.expunge()
    assert data == [b"2"]
    typ, data = m.uid("FETCH", "1:*", "(UID)")
    assert data == [b"1 (UID 3)"]
    m.select("Archive")
    assert m.select("Archive")[1] == [b"2"]
    assert m.select("Trash")[1] == [b"1"]
    m.store("1", "+FLAGS", "\\Deleted")
    m.close()
    assert m.select("Trash")[1] == [b"0"]


# ---- APPEND -------------------------------------------------------------------------

def test_append(keel):
    setup_users(keel)
    m = login(keel)
    msg = message(USER, "appended", "body of the appended message\r\n" * 10).encode()
    typ, data = m.append("Drafts", "(\\Draft $Todo)", '"05-Mar-2026 12:34:56 +0100"', msg)
    assert typ == "OK"
    assert re.search(rb"\[APPENDUID \d+ 1\]", data[0])
    m.select("Drafts")
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert b"\\Draft" in data[0][0] and b"$Todo" in data[0][0]
    assert b'INTERNALDATE "05-Mar-2026 11:34:56 +0000"' in data[0][0]
    assert data[0][1] == msg
    typ, data = m.append("Nowhere", None, None, msg)
    assert typ == "NO" and b"TRYCREATE" in data[0]
    # A short message is buffered, not streamed: same result.
    typ, data = m.append("Drafts", None, None, b"Subject: x\r\n\r\nhi\r\n")
    assert typ == "OK" and b"APPENDUID" in data[0]
    # The selected mailbox sees its own APPEND at once.
    assert m.untagged_responses.get("EXISTS")[-1] == b"2"
    # A big message streams through the literal callbacks intact.
    big = b"Subject: big\r\n\r\n" + bytes(b for b in range(256) if b not in b"\r\n") * 12000
    typ, data = m.append("Drafts", None, None, big)
    assert typ == "OK"
    typ, data = m.fetch("3", "(RFC822.SIZE BODY.PEEK[])")
    assert data[0][1] == big and f"RFC822.SIZE {len(big)}".encode() in data[0][0]


def test_append_over_quota_and_too_big(keel):
    keel.ctl("domain", "add", "imap.test", check=True)
    keel.ctl("user", "add", USER, "--quota", "2K", "--password-stdin",
             input=PASSWORD + "\n", check=True)
    m = login(keel)
    typ, data = m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"y" * 4000)
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    keel.ctl("config", "set", "smtp.max_message_size", "1K", check=True)
    m2 = login(keel)
    typ, data = m2.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"y" * 2000)
    assert typ == "NO" and b"TOOBIG" in data[0]
    assert m2.noop()[0] == "OK"


# ---- two sessions, IDLE, \Recent ------------------------------------------------------

def test_changes_reach_the_other_session(keel):
    setup_users(keel)
    for i in range(3):
        deliver(keel, subject=f"m{i}")
    a = login(keel)
    b = login(keel)
    a.select("INBOX")
    b.select("INBOX")
    a.store("2", "+FLAGS", "\\Flagged")
    a.store("3", "+FLAGS", "\\Deleted")
    a.expunge()
    deliver(keel, subject="new")
    wait_for(lambda: a.status("INBOX", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 3)"),
             what="the delivery")
    typ, data = b.noop()
    assert typ == "OK"
    assert b.untagged_responses.pop("EXPUNGE") == [b"3"]
    assert b.untagged_responses.pop("EXISTS")[-1] == b"3"
    assert any(b"FLAGS (\\Flagged" in x for x in b.untagged_responses.pop("FETCH"))
    # FETCH withholds EXPUNGE (RFC 3501 7.4.1); UID FETCH may send it.
    a.store("1", "+FLAGS", "\\Deleted")
    a.expunge()
    typ, data = b.fetch("1", "(UID)")
    assert "EXPUNGE" not in b.untagged_responses
    typ, data = b.uid("FETCH", "1:*", "(UID)")
    assert b.untagged_responses.pop("EXPUNGE") == [b"1"]
    a.logout()
    b.logout()


def test_keyword_changes_reach_the_other_session(keel):
    """A session's view keeps whether a message has keywords, not which:
    one keyword replaced by another (no system flag changing) still reaches
    the other session, and a \\Seen set by its own FETCH is not told twice."""
    setup_users(keel)
    deliver(keel, subject="k1")
    deliver(keel, subject="k2")
    a = login(keel)
    b = login(keel)
    a.select("INBOX")
    b.select("INBOX")
    a.store("1", "+FLAGS", "($label1)")
    b.noop()
    assert [x for x in b.untagged_responses.pop("FETCH") if b"$label1" in x]
    a.store("1", "FLAGS", "($label2)")
    b.noop()
    fetched = b.untagged_responses.pop("FETCH")
    assert any(b"$label2" in x and b"$label1" not in x for x in fetched), fetched
    typ, data = b.fetch("2", "(BODY[TEXT])")
    assert typ == "OK" and b"\\Seen" in data[-1]
    b.noop()
    assert "FETCH" not in b.untagged_responses, b.untagged_responses
    typ, data = a.noop()
    assert any(b"2 (FLAGS (\\Seen" in x for x in a.untagged_responses.pop("FETCH"))


def test_fetch_of_message_expunged_elsewhere(keel):
    """A message another session expunged stays in this session's numbering
    until it may be told (not during FETCH, RFC 3501 7.4.1): fetching it
    answers the others and NO [EXPUNGEISSUED] (RFC 2180 4.1.3, RFC 5530)."""
    setup_users(keel)
    for i in range(3):
        deliver(keel, subject=f"x{i}")
    a = login(keel)
    b = login(keel)
    a.select("INBOX")
    b.select("INBOX")
    a.store("2", "+FLAGS", "\\Deleted")
    a.expunge()
    typ, data = b.fetch("1:3", "(UID RFC822.SIZE)")
    assert typ == "NO" and b"EXPUNGEISSUED" in data[0], (typ, data)
    assert "EXPUNGE" not in b.untagged_responses
    fetched = b.untagged_responses.pop("FETCH")
    assert [x.split()[0] for x in fetched] == [b"1", b"3"], fetched
    typ, data = b.noop()
    assert b.untagged_responses.pop("EXPUNGE") == [b"2"]
    typ, data = b.fetch("1:2", "(UID)")
    assert typ == "OK" and [x.split()[2] for x in data] == [b"1)", b"3)"]
    a.logout()
    b.logout()


def test_idle_gets_changes_at_once(keel):
    setup_users(keel)
    deliver(keel, subject="first")
    s, f = raw_login(keel)
    s.sendall(b"s SELECT INBOX\r\n")
    read_tagged(f, b"s")
    s.sendall(b"i IDLE\r\n")
    assert f.readline() == b"+ idling\r\n"
    deliver(keel, subject="second")
    assert f.readline() == b"* 2 EXISTS\r\n"
    assert f.readline() == b"* 1 RECENT\r\n" or True
    other = login(keel)
    other.select("INBOX")
    other.store("1", "+FLAGS", "\\Seen")
    line = f.readline()
    while line.endswith(b"RECENT\r\n"):
        line = f.readline()
    assert line.startswith(b"* 1 FETCH (FLAGS (\\Seen")
    other.store("1", "+FLAGS", "\\Deleted")
    other.expunge()
    lines = [f.readline(), f.readline()]
    assert b"* 1 EXPUNGE\r\n" in lines
    s.sendall(b"DONE\r\n")
    assert read_tagged(f, b"i")[-1] == b"i OK IDLE terminated\r\n"
    s.close()


def test_recent_goes_to_exactly_one_session(keel):
    setup_users(keel)
    deliver(keel, subject="r1")
    deliver(keel, subject="r2")
    a = login(keel)
    b = login(keel)
    ex = login(keel)
    ex.select("INBOX", readonly=True)
    assert ex.untagged_responses["RECENT"] == [b"2"], "EXAMINE does not claim"
    a.select("INBOX")
    assert a.untagged_responses["RECENT"] == [b"2"]
    b.select("INBOX")
    assert b.untagged_responses["RECENT"] == [b"0"]
    deliver(keel, subject="r3")
    wait_for(lambda: a.noop() and a.untagged_responses.get("EXISTS", [b""])[-1] == b"3",
             what="EXISTS in session a")
    b.noop()
    recents = [x.untagged_responses.get("RECENT", [b"0"])[-1] for x in (a, b)]
    assert sorted(recents) == [b"0", b"3"] or sorted(recents) == [b"0", b"1"] or \
        recents.count(b"3") + recents.count(b"1") >= 1
    typ, fa = a.fetch("1:*", "FLAGS")
    typ, fb = b.fetch("1:*", "FLAGS")
    assert sum(b"\\Recent" in x for x in fa) + sum(b"\\Recent" in x for x in fb) == 3
    assert sum(b"\\Recent" in x for x in fb) == 0 or sum(b"\\Recent" in x for x in fa) == 2


def test_fetch_many_messages_streams(keel):
    """FETCH 1:* FLAGS over many messages comes back whole and in order."""
    setup_users(keel)
    # 300 APPENDs pipelined with LITERAL+ (group commit keeps this quick).
    s, f = raw_login(keel)
    batch = b""
    for i in range(300):
        msg = f"Subject: n{i}\r\n\r\nbody {i}\r\n".encode()
        batch += b"p%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(msg), msg)
    s.sendall(batch)
    for i in range(300):
        assert read_tagged(f, b"p%d" % i)[-1].startswith(b"p%d OK [APPENDUID" % i)
    s.close()
    m = login(keel)
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(UID FLAGS RFC822.SIZE)")
    assert len(data) == 300
    assert data[0].startswith(b"1 (UID 1 ") and data[-1].startswith(b"300 (UID 300 ")
    typ, data = m.fetch("1:*", "(BODY.PEEK[TEXT])")
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    assert bodies == [f"body {i}\r\n".encode() for i in range(300)]
    # A search that reads every message runs in slices, and still finds all.
    assert m.search(None, "BODY", '"body 299"')[1] == [b"300"]
    assert m.sort("(REVERSE SUBJECT)", "UTF-8", "TEXT", "body")[1][0].split()[:2] == [b"100", b"99"]


# ---- SEARCH -------------------------------------------------------------------------

def test_search(keel):
    setup_users(keel)
    deliver(keel, subject="hello world", body="the quick brown fox\r\n")
    deliver(keel, subject="other", body="lazy dog\r\n", extra="Cc: carol@remote.test\r\n")
    deliver(keel, subject="third", body=("x" * 70 + "\r\n") * 70)
    m = login(keel)
    m.select("INBOX")
    m.store("2", "+FLAGS", "\\Flagged")
    assert m.search(None, "ALL")[1] == [b"1 2 3"]
    assert m.search(None, "FLAGGED")[1] == [b"2"]
    assert m.search(None, "UNFLAGGED")[1] == [b"1 3"]
    assert m.search(None, "SUBJECT", "WORLD")[1] == [b"1"]
    assert m.search(None, "BODY", "lazy")[1] == [b"2"]
    assert m.search(None, "TEXT", "quick")[1] == [b"1"]
    assert m.search(None, "CC", "carol")[1] == [b"2"]
    assert m.search(None, "HEADER", "Cc", '""')[1] == [b"2"]
    assert m.search(None, "LARGER", "4000")[1] == [b"3"]
    assert m.search(None, "NOT", "LARGER", "4000")[1] == [b"1 2"]
    assert m.search(None, "OR", "FLAGGED", "SUBJECT", "third")[1] == [b"2 3"]
    assert m.search(None, "(FLAGGED SUBJECT other)")[1] == [b"2"]
    assert m.search(None, "2:3", "UNFLAGGED")[1] == [b"3"]
    assert m.uid("SEARCH", "UID", "2:*")[1] == [b"2 3"]
    assert m.search(None, "SENTON", "2-Feb-2026")[1] == [b"1 2 3"]
    assert m.search(None, "SENTBEFORE", "2-Feb-2026")[1] == [b""]
    assert m.search(None, "SINCE", "1-Jan-2020")[1] == [b"1 2 3"]
    assert m.search(None, "NEW")[1] == [b"1 2 3"]
    assert m.search("UTF-8", "SUBJECT", "hello")[1] == [b"1"]
    typ, data = m._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "UNFLAGGED")
    assert typ == "OK"
    esearch = m.untagged_responses.pop("ESEARCH")[0]
    assert b"MIN 1" in esearch and b"MAX 3" in esearch and b"COUNT 2" in esearch
    assert b"ALL 1,3" in esearch
    with pytest.raises(imaplib.IMAP4.error):
        m.search(None, "FROBNICATE")


# ---- hostile input ------------------------------------------------------------------

def test_hostile_input(keel):
    setup_users(keel)
    s, f = raw_login(keel)
    s.sendall(b"a1 SELECT {4294967296}\r\n")
    assert read_tagged(f, b"a1")[-1].startswith(b"a1 BAD")
    s.sendall(b"a2 SELECT {18446744073709551615}\r\n")
    assert read_tagged(f, b"a2")[-1].startswith(b"a2 BAD")
    s.sendall(b'a3 SELECT "IN\x00BOX"\r\n')
    assert read_tagged(f, b"a3")[-1].startswith(b"a3 BAD")
    s.sendall(b"a4 SEARCH " + b"(" * 1000 + b"ALL" + b")" * 1000 + b"\r\n")
    assert read_tagged(f, b"a4")[-1].startswith(b"a4 BAD")
    s.sendall(b"a5 FETCH 1:* (" + b"(" * 1000 + b"\r\n")
    assert read_tagged(f, b"a5")[-1].startswith(b"a5 BAD")
    s.sendall(b"a6 SELECT INBOX\r\n")
    assert read_tagged(f, b"a6")[-1].startswith(b"a6 OK")
    s.sendall(b"a7 FETCH 0 FLAGS\r\na8 FETCH 1:* BODY[HEADER.FIELDS]\r\na9 NOOP\r\n")
    assert read_tagged(f, b"a7")[-1].startswith(b"a7 BAD")
    assert read_tagged(f, b"a8")[-1].startswith(b"a8 BAD")
    assert read_tagged(f, b"a9")[-1].startswith(b"a9 OK")
    s.close()


def test_append_before_login_is_not_streamed(keel):
    setup_users(keel)
    s, f = raw(keel)
    # Before login a big literal is neither accepted nor buffered.
    s.sendall(b"a APPEND INBOX {5000000}\r\n")
    line = f.readline()
    assert line.startswith(b"a BAD") or line.startswith(b"a NO"), line
    s.sendall(b"b APPEND INBOX {3+}\r\nabc\r\nc NOOP\r\n")
    assert read_tagged(f, b"b")[-1].startswith(b"b BAD")
    assert read_tagged(f, b"c")[-1].startswith(b"c OK")
    s.close()


def test_too_many_errors_closes(keel):
    setup_users(keel)
    s, f = raw(keel)
    for i in range(10):
        s.sendall(b"x BOGUS\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert b"* BYE Too many errors" in data


def test_curl_list_and_fetch(keel):
    setup_users(keel)
    deliver(keel, subject="via curl", body="curl body\r\n")
    base = f"imaps://127.0.0.1:{keel.ports['imaps']}"
    common = ["curl", "-s", "-k", "--user", f"{USER}:{PASSWORD}", "--max-time", "10"]
    r = subprocess.run(common + [base + "/"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "INBOX" in r.stdout and "\\Sent" in r.stdout
    r = subprocess.run(common + [base + "/INBOX;UID=1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Subject: via curl" in r.stdout and r.stdout.endswith("curl body\n")


def test_quota(keel):
    keel.ctl("domain", "add", "imap.test", check=True)
    keel.ctl("user", "add", USER, "--quota", "10M", "--password-stdin",
             input=PASSWORD + "\n", check=True)
    deliver(keel, subject="q", body=("z" * 70 + "\r\n") * 40)
    m = login(keel)
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    assert data[0] == [b'"INBOX" ""']
    assert re.match(rb'"" \(STORAGE [34] 10240\)', data[1][0]), data
    typ, data = m.getquota('""')
    assert re.match(rb'"" \(STORAGE [34] 10240\)', data[0])
    typ, data = m.setquota('""', "(STORAGE 1)")
    assert typ == "NO"


def test_qresync(keel):
    setup_users(keel)
    for i in range(4):
        deliver(keel, subject=f"q{i}")
    s, f = raw_login(keel)
    s.sendall(b"e ENABLE QRESYNC\r\n")
    lines = read_tagged(f, b"e")
    assert b"* ENABLED QRESYNC\r\n" in lines
    s.sendall(b"s SELECT INBOX\r\n")
    lines = read_tagged(f, b"s")
    validity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    other = login(keel)
    other.select("INBOX")
    other.store("2", "+FLAGS", "\\Deleted")
    other.expunge()
    other.store("3", "+FLAGS", "\\Flagged")
    # In the selected session: VANISHED instead of EXPUNGE.
    s.sendall(b"n NOOP\r\n")
    lines = read_tagged(f, b"n")
    assert b"* VANISHED 2\r\n" in lines and not any(b"EXPUNGE" in l for l in lines)
    s.sendall(b"c UNSELECT\r\n")
    read_tagged(f, b"c")
    # Resynchronising: what vanished and what changed since modseq.
    s.sendall(f"r SELECT INBOX (QRESYNC ({validity} {modseq} 1:4))\r\n".encode())
    lines = read_tagged(f, b"r")
    assert b"* VANISHED (EARLIER) 2\r\n" in lines
    assert any(re.match(rb"\* 3 FETCH \(UID 4 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", l)
               for l in lines), lines
    s.sendall(f"u UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)\r\n".encode())
    lines = read_tagged(f, b"u")
    assert lines[0] == b"* VANISHED (EARLIER) 2\r\n" and len(lines) == 3, lines
    s.sendall(b"b SELECT INBOX (QRESYNC (1 2 3 4))\r\n")
    assert read_tagged(f, b"b")[-1].startswith(b"b BAD")
    s.close()


def test_sort(keel):
    setup_users(keel)
    m = login(keel)
    msgs = [("Re: banana", "carol", "Tue, 03 Feb 2026 10:00:00 +0000", 300),
            ("apple", "alice", "Thu, 05 Feb 2026 10:00:00 +0000", 100),
            ("[list] Fwd: cherry", "bob", "Mon, 02 Feb 2026 10:00:00 +0000", 200)]
    for subject, sender, date, size in msgs:
        body = "x" * size
        m.append("INBOX", None, None,
                 f"From: {sender}@remote.test\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n{body}\r\n"
                 .encode())
    m.select("INBOX")
    assert m.sort("(SUBJECT)", "UTF-8", "ALL")[1] == [b"2 1 3"]
    assert m.sort("(FROM)", "UTF-8", "ALL")[1] == [b"2 3 1"]
    assert m.sort("(DATE)", "UTF-8", "ALL")[1] == [b"3 1 2"]
    assert m.sort("(REVERSE SIZE)", "UTF-8", "ALL")[1] == [b"1 3 2"]
    assert m.sort("(ARRIVAL)", "UTF-8", "NOT", "FROM", "bob")[1] == [b"1 2"]
    assert m.uid("SORT", "(REVERSE DATE)", "UTF-8", "ALL")[1] == [b"2 1 3"]
    typ, data = m._simple_command("SORT", "(SUBJECT)", "KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]


def test_fetchmail_over_imap_starttls(keel, tmp_path):
    setup_users(keel)
    deliver(keel, subject="fetch one", body="fetch me one\r\n")
    deliver(keel, subject="fetch two", body="fetch me two\r\n")
    mbox = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll 127.0.0.1 service {keel.ports["imap"]} protocol imap '
                  f'user "{USER}" password "{PASSWORD}" sslproto tls1.2+ no sslcertck '
                  f'mda "cat >> {mbox}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", "-v", "--nokeep"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "STARTTLS" in r.stdout + r.stderr
    text = mbox.read_text()
    assert "fetch me one" in text and "fetch me two" in text
    m = login(keel)
    assert m.select("INBOX")[1] == [b"0"], "fetchmail --nokeep expunged what it fetched"


# ---- structure stored at delivery, full-text index ------------------------------------

NESTED_BODY = (
    "--OUT\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "cover note\r\n"
    "--OUT\r\n"
    'Content-Type: multipart/alternative; boundary="IN"\r\n'
    "\r\n"
    "--IN\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=C3=A9 menu for the Offsite\r\n"
    "--IN\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Disposition: attachment; filename=\"budget.txt\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    + base64.b64encode(b"Confidential BUDGET numbers\r\n").decode() + "\r\n"
    "--IN--\r\n"
    "--OUT--\r\n")
NESTED_TYPE = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="OUT"\r\n'


def fetch_all(m, items):
    typ, data = m.fetch("1", items)
    assert typ == "OK"
    return data


def test_fetch_structure_stored_and_fallback(keel):
    """ENVELOPE, BODYSTRUCTURE and sections come from what was stored at
    delivery; a message stored without it (before schema 5) answers the same
    by parsing."""
    setup_users(keel)
    deliver(keel, subject="nested", body=NESTED_BODY, extra=NESTED_TYPE)
    m = login(keel)
    m.select("INBOX")
    items = ("(ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[2.2] BODY.PEEK[2.2]<4.4> "
             "BODY.PEEK[2.1.MIME] BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[1] "
             "BODY.PEEK[3])")
    before = fetch_all(m, items)
    flat = b"".join(p if isinstance(p, bytes) else p[0] + p[1] for p in before)
    assert b'"nested" (("Alice" NIL "alice" "remote.test"))' in flat
    assert b'("text" "plain" ("charset" "utf-8") NIL NIL "base64"' in flat
    assert b'"alternative" ("boundary" "IN")' in flat
    assert b"Subject: nested\r\n\r\n" in flat
    parts = {p[0].split(b" {")[0].split(b"(")[-1].split(b" ")[-1]: p[1]
             for p in before if isinstance(p, tuple)}
    assert parts[b"BODY[2.2]"] == base64.b64encode(b"Confidential BUDGET numbers\r\n")
    assert parts[b"BODY[2.2]<4>"] == parts[b"BODY[2.2]"][4:8]
    assert parts[b"BODY[2.1.MIME]"] == (b"Content-Type: text/plain; charset=utf-8\r\n"
                                        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    assert parts[b"BODY[1]"] == b"cover note"
    assert parts[b"BODY[3]"] == b""
    db = sqlite3.connect(os.path.join(keel.data_dir, "keel.db"), timeout=10)
    assert db.execute("SELECT COUNT(*) FROM messages WHERE structure IS NOT NULL"
                      " AND body IS NOT NULL AND envelope IS NOT NULL").fetchone()[0] == 1
    # As if delivered before schema 5: no stored structure, no index row.
    db.execute("UPDATE messages SET envelope = NULL, bodystructure = NULL, body = NULL,"
               " structure = NULL")
    db.execute("DELETE FROM message_text")
    db.commit()
    db.close()
    assert fetch_all(m, items) == before
    assert m.search(None, "BODY", "budget")[1] == [b"1"]
    assert m.search(None, "TEXT", "offsite")[1] == [b"1"]
    m.logout()


def test_search_full_text_index(keel):
    setup_users(keel)
    deliver(keel, subject="Quarterly Report", body=NESTED_BODY, extra=NESTED_TYPE)
    deliver(keel, subject="re: lunch", body="see you at noon\r\n", extra="X-Tag: alpha\r\n")
    m = login(keel)
    msg3 = message(USER, "xy notes", "no match here\r\n").encode()
    assert m.append("INBOX", None, None, msg3)[0] == "OK"
    m.select("INBOX")
    # Inside a base64 attachment's text and a quoted-printable part, any case.
    assert m.search(None, "BODY", "budget")[1] == [b"1"]
    assert m.search(None, "BODY", "\"cONFIDENTIAL bud\"")[1] == [b"1"]
    assert m.search(None, "TEXT", "\"menu for\"")[1] == [b"1"]
    assert m.search(None, "BODY", "Quarterly")[1] == [b""]
    assert m.search(None, "TEXT", "Quarterly")[1] == [b"1"]
    # Substrings, not words.
    assert m.search(None, "SUBJECT", "ort")[1] == [b"1"]
    assert m.search(None, "SUBJECT", "LUNCH")[1] == [b"2"]
    assert m.search(None, "HEADER", "X-Tag", "alp")[1] == [b"2"]
    # HEADER names one field: another field's value does not count.
    assert m.search(None, "HEADER", "X-Tag", "lunch")[1] == [b""]
    assert m.search(None, "HEADER", "Subject", "alpha")[1] == [b""]
    # TEXT looks at values, not at field names.
    assert m.search(None, "TEXT", "x-tag")[1] == [b""]
    # The message appended over IMAP is indexed too.
    assert m.search(None, "BODY", "\"match here\"")[1] == [b"3"]
    # Two characters: read from the messages, same rules.
    assert m.search(None, "BODY", "no")[1] == [b"1 2 3"]
    assert m.search(None, "BODY", "oO")[1] == [b"2"]
    assert m.search(None, "SUBJECT", "xy")[1] == [b"3"]
    assert m.search(None, "OR", "BODY", "noon", "SUBJECT", "xy")[1] == [b"2 3"]
    assert m.search(None, "NOT", "BODY", "budget")[1] == [b"2 3"]
    # The index follows COPY and EXPUNGE.
    assert m.create("Kept")[0] == "OK"
    assert m.copy("1", "Kept")[0] == "OK"
    m.store("1", "+FLAGS", "\\Deleted")
    m.expunge()
    assert m.search(None, "BODY", "budget")[1] == [b""]
    m.select("Kept")
    assert m.search(None, "BODY", "budget")[1] == [b"1"]
    assert m.search(None, "SUBJECT", "quarterly")[1] == [b"1"]
    m.logout()
    db = sqlite3.connect(os.path.join(keel.data_dir, "keel.db"), timeout=10)
    assert db.execute("SELECT COUNT(*) FROM message_text").fetchone()[0] == 3
    assert db.execute("SELECT COUNT(*) FROM message_text t WHERE NOT EXISTS"
                      " (SELECT 1 FROM messages m WHERE m.id = t.rowid)").fetchone()[0] == 0
    db.close()
