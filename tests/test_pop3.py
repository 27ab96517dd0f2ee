"""POP3 (RFC 1939, 2449, 2595, 5034) end to end with poplib, curl, fetchmail
and raw sockets, and POP-before-SMTP."""

import base64
import os
import poplib
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import time

import pytest

from conftest import wait_for

PASSWORD = "correct horse battery"


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def setup_users(keel, *users):
    keel.ctl("domain", "add", "pop.test", check=True)
    for u in users:
        keel.ctl("user", "add", u, "--password-stdin", input=PASSWORD + "\n", check=True)


def deliver(keel, rcpt, body, subject="test"):
    msg = f"From: a@remote.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n{body}"
    with smtplib.SMTP("127.0.0.1", keel.ports["smtp"], timeout=10) as s:
        s.sendmail("a@remote.test", [rcpt], msg.encode())


def db(keel):
    return sqlite3.connect(os.path.join(keel.data_dir, "keel.db"))


def pop3s(keel):
    return poplib.POP3_SSL("127.0.0.1", keel.ports["pop3s"], context=tls_context(), timeout=10)


def login(keel):
    p = pop3s(keel)
    p.user("bob@pop.test")
    p.pass_(PASSWORD)
    return p


def test_plaintext_login_refused_before_tls_unless_allowed(keel):
    setup_users(keel, "bob@pop.test")
    p = poplib.POP3("127.0.0.1", keel.ports["pop3"], timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    capa = p.capa()
    assert "STLS" in capa and "USER" not in capa and "RESP-CODES" in capa
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\].*STLS"):
        p.user("bob@pop.test")
    p.quit()
    keel.ctl("config", "set", "pop3.allow_plaintext_auth", "yes", check=True)
    p = poplib.POP3("127.0.0.1", keel.ports["pop3"], timeout=10)
    assert "USER" in p.capa()
    p.user("bob@pop.test")
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


def test_stls_pop3s_and_auth_plain(keel):
    setup_users(keel, "bob@pop.test")
    deliver(keel, "bob@pop.test", "one\r\n")
    p = poplib.POP3("127.0.0.1", keel.ports["pop3"], timeout=10)
    p.stls(context=tls_context())
    capa = p.capa()
    assert "USER" in capa and capa.get("SASL") == ["PLAIN"] and "STLS" not in capa
    p.user("bob@pop.test")
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    p.quit()
    p = pop3s(keel)
    ir = base64.b64encode(b"\0bob@pop.test\0" + PASSWORD.encode()).decode()
    assert p._shortcmd("AUTH PLAIN " + ir).startswith(b"+OK")
    assert p.stat()[0] == 1
    p.quit()
    # Without an initial response: a "+ " continuation, then the response.
    with socket.create_connection(("127.0.0.1", keel.ports["pop3s"])) as raw:
        with tls_context().wrap_socket(raw) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"AUTH PLAIN\r\n")
            assert f.readline() == b"+ \r\n"
            s.sendall(ir.encode() + b"\r\n")
            assert f.readline().startswith(b"+OK")


def test_wrong_password_is_refused_and_delayed(keel):
    setup_users(keel, "bob@pop.test")
    keel.ctl("config", "set", "auth.failure_delay", "1", check=True)
    p = pop3s(keel)
    p.user("bob@pop.test")
    t0 = time.monotonic()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.pass_("wrong")
    assert time.monotonic() - t0 >= 0.9
    p.user("bob@pop.test")
    t0 = time.monotonic()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.pass_("wrong again")
    assert time.monotonic() - t0 >= 1.9, "the second failure waits longer"


def test_stat_list_uidl_retr_top_and_dot_stuffing(keel):
    setup_users(keel, "bob@pop.test")
    body = "line one\r\n.starts with a dot\r\n..two dots\r\nlast\r\n"
    deliver(keel, "bob@pop.test", body, subject="first")
    deliver(keel, "bob@pop.test", "second body\r\n", subject="second")
    p = login(keel)
    count, size = p.stat()
    assert count == 2
    listing = p.list()[1]
    sizes = [int(l.split()[1]) for l in listing]
    assert sum(sizes) == size
    uidls = [l.split()[1] for l in p.uidl()[1]]
    assert len(set(uidls)) == 2
    lines = p.retr(1)[1]
    text = b"\r\n".join(lines).decode()
    assert text.startswith("Return-Path: <a@remote.test>")
    assert "Received: from" in text
    assert b".starts with a dot" in lines and b"..two dots" in lines
    assert lines[-1] == b"last"
    top = p.top(2, 0)[1]
    assert b"Subject: second" in top and b"second body" not in top
    assert top[-1] == b""
    top1 = p.top(1, 2)[1]
    assert top1[-2:] == [b"line one", b".starts with a dot"]
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.retr(3)
    p.quit()


def test_uidl_stable_across_sessions_and_other_changes(keel):
    setup_users(keel, "bob@pop.test")
    for i in range(3):
        deliver(keel, "bob@pop.test", f"m{i}\r\n")
    p = login(keel)
    before = dict(l.decode().split() for l in p.uidl()[1])
    p.dele(1)
    p.quit()
    deliver(keel, "bob@pop.test", "new\r\n")
    p = login(keel)
    after = [l.decode().split()[1] for l in p.uidl()[1]]
    p.quit()
    assert after[:2] == [before["2"], before["3"]]
    assert len(after) == 3 and after[2] not in before.values()


def test_dele_quit_expunges_and_dropped_connection_deletes_nothing(keel):
    setup_users(keel, "bob@pop.test")
    for i in range(3):
        deliver(keel, "bob@pop.test", f"m{i}\r\n")
    p = login(keel)
    p.dele(1)
    p.dele(2)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.dele(1)
    assert p.stat()[0] == 1
    p.sock.shutdown(socket.SHUT_RDWR)  # dropped: no QUIT
    p.sock.close()
    time.sleep(0.3)
    p = login(keel)
    assert p.stat()[0] == 3, "a dropped connection must delete nothing"
    p.dele(1)
    p.rset()
    assert p.stat()[0] == 3
    p.dele(1)
    p.dele(3)
    assert b"2 messages deleted" in p.quit()
    p = login(keel)
    assert p.stat()[0] == 1
    assert b"m1" in b"\r\n".join(p.retr(1)[1])
    p.quit()
    with db(keel) as c:
        n, used = c.execute("SELECT m.messages, u.used FROM mailboxes m JOIN users u"
                            " ON u.id = m.user_id WHERE m.name = 'INBOX'").fetchone()
        assert n == 1
        size = c.execute("SELECT size FROM messages").fetchone()[0]
        assert used == size


def test_one_session_per_maildrop(keel):
    setup_users(keel, "bob@pop.test")
    p1 = login(keel)
    p2 = pop3s(keel)
    p2.user("bob@pop.test")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        p2.pass_(PASSWORD)
    p1.quit()
    p2.user("bob@pop.test")
    assert p2.pass_(PASSWORD).startswith(b"+OK")
    p2.quit()


def test_retr_marks_seen_and_trace(keel):
    setup_users(keel, "bob@pop.test")
    deliver(keel, "bob@pop.test", "hello\r\n")
    deliver(keel, "bob@pop.test", "world\r\n")
    p = login(keel)
    p.top(1, 1)
    p.retr(2)
    p.dele(1)
    p.quit()
    with db(keel) as c:
        flags = c.execute("SELECT uid, flags FROM messages ORDER BY uid").fetchall()
        assert flags == [(2, 1)], "RETR set \\Seen on message 2; message 1 was deleted"
        events = c.execute("SELECT event, detail, client_ip, account FROM trace"
                           " WHERE protocol = 'pop3' ORDER BY id").fetchall()
    names = [e[0] for e in events]
    assert "login" in names and "deleted" in names
    fetched = [e for e in events if e[0] == "fetched"]
    assert any(d.startswith("RETR 2") for _, d, _, _ in fetched)
    assert any(d.startswith("TOP 1") for _, d, _, _ in fetched)
    assert all(ip == "127.0.0.1" and acct == "bob@pop.test" for _, _, ip, acct in fetched)


def test_retr_marks_seen_setting_off(keel):
    setup_users(keel, "bob@pop.test")
    keel.ctl("config", "set", "pop3.retr_marks_seen", "no", check=True)
    deliver(keel, "bob@pop.test", "hello\r\n")
    p = login(keel)
    p.retr(1)
    p.quit()
    with db(keel) as c:
        assert c.execute("SELECT flags FROM messages").fetchone() == (0,)


def test_big_message_is_streamed_intact(keel):
    setup_users(keel, "bob@pop.test")
    line = "x" * 70
    body = "".join(f"{i:08d} {line}\r\n" if i % 7 else f".{i:08d}\r\n" for i in range(200000))
    deliver(keel, "bob@pop.test", body)
    p = login(keel)
    lines = p.retr(1)[1]
    p.quit()
    got = b"\r\n".join(lines).decode()
    assert got.endswith(body.rstrip("\r\n"))


def test_stls_injection_is_discarded(keel):
    setup_users(keel, "bob@pop.test")
    keel.ctl("config", "set", "pop3.allow_plaintext_auth", "yes", check=True)
    with socket.create_connection(("127.0.0.1", keel.ports["pop3"]), timeout=5) as raw:
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"STLS\r\nUSER bob@pop.test\r\n")
        assert f.readline().startswith(b"+OK")
        s = tls_context().wrap_socket(raw)
        s.settimeout(1)
        with pytest.raises((socket.timeout, TimeoutError)):
            s.recv(100)  # no answer to the plaintext USER inside TLS
        s.sendall(b"PASS " + PASSWORD.encode() + b"\r\n")
        s.settimeout(5)
        assert s.recv(200).startswith(b"-ERR"), "USER must have been forgotten"


def test_curl_pop3(keel):
    setup_users(keel, "bob@pop.test")
    deliver(keel, "bob@pop.test", "for curl\r\n")
    url = f"pop3s://127.0.0.1:{keel.ports['pop3s']}/1"
    r = subprocess.run(["curl", "-sS", "-k", url, "--user", f"bob@pop.test:{PASSWORD}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "for curl" in r.stdout
    r = subprocess.run(["curl", "-sS", "-k", f"pop3s://127.0.0.1:{keel.ports['pop3s']}/",
                        "--user", f"bob@pop.test:{PASSWORD}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip().startswith("1 ")


def test_fetchmail_collects_into_mbox(keel, tmp_path):
    setup_users(keel, "bob@pop.test")
    deliver(keel, "bob@pop.test", "fetch me one\r\n")
    deliver(keel, "bob@pop.test", "fetch me two\r\n")
    mbox = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll 127.0.0.1 service {keel.ports["pop3s"]} protocol pop3 '
                  f'user "bob@pop.test" password "{PASSWORD}" ssl no sslcertck '
                  f'mda "cat >> {mbox}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", "-v", "--nokeep"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = mbox.read_text()
    assert "fetch me one" in text and "fetch me two" in text
    p = login(keel)
    assert p.stat()[0] == 0, "fetchmail --nokeep deleted what it fetched"
    p.quit()


def test_pop_before_smtp(keel_factory):
    k = keel_factory()
    k.start()
    setup_users(k, "bob@pop.test")

    def relay_from(ip):
        with smtplib.SMTP("127.0.0.1", k.ports["smtp"], timeout=10,
                          source_address=(ip, 0)) as s:
            s.ehlo("client.test")
            s.mail("bob@pop.test")
            code, _ = s.rcpt("someone@far.test")
            return code

    assert relay_from("127.0.0.2") == 554
    # Off by default: a login opens nothing.
    sock = socket.create_connection(("127.0.0.1", k.ports["pop3s"]),
                                    source_address=("127.0.0.2", 0))
    pop_login_on(sock)
    assert relay_from("127.0.0.2") == 554
    k.ctl("config", "set", "relay.pop_before_smtp_minutes", "10", check=True)
    sock = socket.create_connection(("127.0.0.1", k.ports["pop3s"]),
                                    source_address=("127.0.0.2", 0))
    pop_login_on(sock)
    assert relay_from("127.0.0.2") == 250
    assert relay_from("127.0.0.3") == 554, "only the IP that logged in"
    assert "reason=pop_before_smtp" in k.read_log()
    # Turning the setting off closes every window at once.
    k.ctl("config", "set", "relay.pop_before_smtp_minutes", "0", check=True)
    assert relay_from("127.0.0.2") == 554


def pop_login_on(sock):
    with tls_context().wrap_socket(sock) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"USER bob@pop.test\r\nPASS " + PASSWORD.encode() + b"\r\n")
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"+OK")


def test_bad_commands_and_limits(keel):
    setup_users(keel, "bob@pop.test")
    keel.ctl("config", "set", "pop3.max_errors", "3", check=True)
    with socket.create_connection(("127.0.0.1", keel.ports["pop3"]), timeout=5) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"STAT\r\n")
        assert f.readline().startswith(b"-ERR")
        s.sendall(b"USER " + b"a" * 5000 + b"\r\n")
        assert f.readline().startswith(b"-ERR")
        s.sendall(b"BOGUS\r\n")
        assert f.readline().startswith(b"-ERR")
        assert f.readline().startswith(b"-ERR [SYS/PERM] Too many errors")
        assert f.readline() == b""


def imap_login(keel):
    import imaplib
    m = imaplib.IMAP4_SSL("127.0.0.1", keel.ports["imaps"], ssl_context=tls_context())
    m.login("bob@pop.test", PASSWORD)
    return m


def test_imap_session_sees_pop3_expunges(keel):
    setup_users(keel, "bob@pop.test")
    for i in range(3):
        deliver(keel, "bob@pop.test", f"m{i}\r\n")
    m = imap_login(keel)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    p = login(keel)
    p.dele(1)
    p.dele(3)
    p.quit()
    typ, _ = m.noop()
    assert typ == "OK"
    expunged = m.untagged_responses.get("EXPUNGE", [])
    assert sorted(int(x) for x in expunged) == [1, 3], m.untagged_responses
    typ, data = m.fetch("1:*", "(BODY.PEEK[TEXT])")
    assert typ == "OK" and b"m1" in data[0][1] and len([d for d in data if isinstance(d, tuple)]) == 1
    m.logout()


def test_uidl_stable_after_imap_changes(keel):
    setup_users(keel, "bob@pop.test")
    for i in range(4):
        deliver(keel, "bob@pop.test", f"m{i}\r\n")
    p = login(keel)
    before = [l.decode().split()[1] for l in p.uidl()[1]]
    p.quit()
    m = imap_login(keel)
    m.select("INBOX")
    # Flag changes on every message and a move of message 2 elsewhere.
    assert m.store("1:*", "+FLAGS", "(\\Flagged $Work)")[0] == "OK"
    assert m.uid("MOVE", "2", "Archive")[0] == "OK"
    m.logout()
    p = login(keel)
    after = [l.decode().split()[1] for l in p.uidl()[1]]
    p.quit()
    assert after == [before[0], before[2], before[3]]


def test_idle_timeout_is_at_least_rfc_minimum(keel):
    """RFC 1939 3: an autologout timer of at least 10 minutes."""
    r = keel.ctl("config", "set", "pop3.timeout", "5m")
    assert r.returncode == 1 and "pop3.timeout" in r.stderr
    assert keel.ctl("config", "get", "pop3.timeout", check=True).stdout.split()[-1] in (
        "600", "(default)")
    assert keel.ctl("config", "set", "pop3.timeout", "15m").returncode == 0
