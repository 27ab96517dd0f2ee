"""Hostile clients beyond tests/test_smtp_hostile.py and the hostile-input
tests of tests/test_imap.py and tests/test_pop3.py: STARTTLS injection on
IMAP, ESMTP parameter abuse, shell metacharacters, 10,000 RCPTs, invalid
UTF-8; failed-login blocks per IP and per account (SMTP AUTH, IMAP LOGIN,
POP3 USER/PASS) seen in the log and in keelctl; and a flood of slow
connections from one address that leaves another address served."""

import base64
import imaplib
import json
import poplib
import socket
import time

import pytest

from conftest import wait_for

from smtp_helpers import (D, PW, Raw, mailbox_count, set_conf, setup_domain, stored,
                          tls_context)


@pytest.fixture
def mx(keel):
    setup_domain(keel, users=("alice", "bob"))
    return keel


def raw_line(port, source=None, timeout=10):
    """A plain socket and its reader, the greeting line read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    f = s.makefile("rb")
    return s, f, f.readline()


# ---- STARTTLS injection (IMAP; SMTP and POP3 are covered elsewhere) ----------

def test_imap_starttls_injection_is_discarded(mx):
    s, f, greeting = raw_line(mx.ports["imap"])
    assert greeting.startswith(b"* OK")
    s.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert f.readline().startswith(b"a OK")
    tls = tls_context().wrap_socket(s, server_hostname="mail.keel.test")
    # The injected CAPABILITY must not be answered inside TLS.
    tls.settimeout(1.0)
    with pytest.raises((socket.timeout, TimeoutError)):
        got = tls.recv(4096)
        raise AssertionError(f"answered plaintext input inside TLS: {got!r}")
    tls.settimeout(10)
    tls.sendall(b"c NOOP\r\n")
    assert tls.makefile("rb").readline().startswith(b"c OK")
    tls.close()


# ---- SMTP parameters and metacharacters --------------------------------------

ESMTP_ABUSE = [
    ("MAIL FROM:<a@remote.test> SIZE=99999999999999999999", {501, 552, 555}),
    ("MAIL FROM:<a@remote.test> SIZE=10 SIZE=10", {501, 555}),
    ("MAIL FROM:<a@remote.test> FROBNICATE=1", {555}),
    ("MAIL FROM:<a@remote.test> AUTH=<>", {250}),  # RFC 4954: accepted, not trusted
    ("MAIL FROM:<a@remote.test> BODY=9BIT", {501, 555}),
    ("MAIL FROM:<a@remote.test> " + "X=1 " * 500, {500, 501, 555}),
]


def test_esmtp_parameter_abuse(mx):
    set_conf(mx, "smtp.max_errors", "100")
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        for line, codes in ESMTP_ABUSE:
            code, text = c.cmd(line)
            assert code in codes, (line[:80], code, text)
            c.ok("RSET")  # the session goes on


SHELL_SENDERS = ["`id`@remote.test", "$(reboot)@remote.test", "a;rm -rf /@remote.test",
                 "|cat /etc/passwd@remote.test"]


def test_mail_from_shell_metacharacters(mx):
    """Taken as text or refused as a bad address, never run: each accepted
    one is stored with its Return-Path as sent."""
    taken = 0
    for sender in SHELL_SENDERS:
        with Raw(mx.ports["smtp"]) as c:
            c.ehlo()
            code, text = c.cmd(f"MAIL FROM:<{sender}>")
            if code != 250:
                assert code in (501, 553), (sender, code, text)
                continue
            c.ok(f"RCPT TO:<bob@{D}>")
            c.ok("DATA", 354)
            c.send(b"Subject: meta\r\n\r\nbody\r\n.\r\n")
            assert c.reply()[0] == 250
            taken += 1
    wait_for(lambda: mailbox_count(mx, f"bob@{D}") == taken, timeout=10, what="delivery")
    for msg in stored(mx, f"bob@{D}"):
        assert any(f"<{s}>".encode() in msg for s in SHELL_SENDERS), msg[:200]


def test_ten_thousand_rcpts(mx):
    """10,000 RCPTs pipelined: the first smtp.max_recipients are taken, the
    next get 452 4.5.3 until smtp.max_errors closes the session with 421;
    with the limits raised all 10,000 are answered and the message is
    delivered once."""
    def flood(n):
        with Raw(mx.ports["smtp"]) as c:
            c.ehlo()
            c.ok("MAIL FROM:<a@remote.test>")
            c.send("".join(f"RCPT TO:<bob@{D}>\r\n" for _ in range(n)))
            codes = []
            try:
                while len(codes) < n:
                    codes.append(c.reply()[0])
                    if codes[-1] == 421:
                        break
            except (EOFError, ConnectionResetError):
                pass
            if codes[-1] != 421:
                c.ok("DATA", 354)
                c.send(b"Subject: many\r\n\r\nbody\r\n.\r\n")
                assert c.reply()[0] == 250
            return codes
    codes = flood(10000)
    assert codes[:100] == [250] * 100
    assert codes[-1] == 421 and set(codes[100:-1]) == {452}, codes[95:]
    set_conf(mx, "smtp.max_recipients", "10000")
    codes = flood(10000)
    assert codes == [250] * 10000
    wait_for(lambda: mailbox_count(mx, f"bob@{D}") == 1, timeout=30, what="delivery")


def test_imap_invalid_utf8_mailbox_name(mx):
    s, f, greeting = raw_line(mx.ports["imap"])
    s.close()
    m = imaplib.IMAP4_SSL("127.0.0.1", mx.ports["imaps"], ssl_context=tls_context(), timeout=10)
    m.login(f"bob@{D}", PW)
    sock = m.socket()
    sock.sendall(b'x1 CREATE "bad\xff\xfename"\r\n')
    line = m.readline()
    assert line.startswith(b"x1 BAD") or line.startswith(b"x1 NO"), line
    assert m.noop()[0] == "OK"
    m.logout()


# ---- AUTH brute force --------------------------------------------------------

def blocks(keel):
    r = keel.ctl("auth", "blocks", json_out=True)
    assert r.returncode == 0, r.stderr
    return {(b["kind"], b["key"]) for b in r.json}


def smtp_auth(keel, user, password, source=None):
    with Raw(keel.ports["submissions"], tls=True, source=source) as c:
        c.ehlo()
        return c.auth_plain(user, password)


def greeted_tls(keel, service, source=None):
    """A TLS connection to service from source, past its greeting: (socket, reader)."""
    s = socket.create_connection(("127.0.0.1", keel.ports[service]), timeout=20,
                                 source_address=(source, 0) if source else None)
    s = tls_context().wrap_socket(s)
    f = s.makefile("rb")
    f.readline()
    return s, f


def imap_login(keel, user, password, source=None):
    s, f = greeted_tls(keel, "imaps", source)
    s.sendall(f'a LOGIN {user} "{password}"\r\n'.encode())
    line = f.readline()
    s.close()
    return line


def pop3_login(keel, user, password, source=None):
    s, f = greeted_tls(keel, "pop3s", source)
    s.sendall(f"USER {user}\r\n".encode())
    f.readline()
    s.sendall(f"PASS {password}\r\n".encode())
    line = f.readline()
    s.close()
    return line


@pytest.fixture
def brute(mx):
    set_conf(mx, "auth.failure_delay", "0")
    set_conf(mx, "auth.block_after", "3")
    return mx


def test_smtp_auth_blocks_ip(brute):
    for _ in range(3):
        assert smtp_auth(brute, f"alice@{D}", "wrong")[0] == 535
    assert ("ip", "127.0.0.1") in blocks(brute)
    # Blocked: even the right password is refused, without being checked.
    code, text = smtp_auth(brute, f"bob@{D}", PW)
    assert code == 454 and text.startswith("4.7.0"), (code, text)
    # Another address is not blocked (the account alice is: 3 failures).
    assert smtp_auth(brute, f"bob@{D}", PW, source="127.0.0.3")[0] == 235
    log = brute.read_log()
    assert "event=auth_blocked ip=127.0.0.1" in log
    assert "event=auth_refused_blocked" in log
    r = brute.ctl("auth", "blocks")
    assert "127.0.0.1" in r.stdout and f"alice@{D}" in r.stdout, r.stdout
    # Lifted by keelctl: logins work again.
    assert brute.ctl("auth", "unblock", "127.0.0.1").returncode == 0
    assert smtp_auth(brute, f"bob@{D}", PW)[0] == 235
    r = brute.ctl("auth", "unblock", "127.0.0.1")
    assert r.returncode != 0 and "not blocked" in r.stderr


def test_imap_login_blocks_account_from_any_ip(brute):
    for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert b"NO" in imap_login(brute, f"ALICE@{D}", "wrong", source=src)
    assert ("account", f"alice@{D}") in blocks(brute)
    # The account is blocked from a fresh address, with the right password.
    line = imap_login(brute, f"alice@{D}", PW, source="127.0.0.5")
    assert line.startswith(b"a NO [UNAVAILABLE]"), line
    # Other accounts from that address log in.
    assert imap_login(brute, f"bob@{D}", PW, source="127.0.0.5").startswith(b"a OK")
    assert brute.ctl("auth", "unblock", f"alice@{D}").returncode == 0
    assert imap_login(brute, f"alice@{D}", PW, source="127.0.0.5").startswith(b"a OK")


def test_pop3_login_blocks_and_setting_is_live(brute):
    for _ in range(3):
        assert pop3_login(brute, f"alice@{D}", "wrong", source="127.0.0.6").startswith(b"-ERR")
    line = pop3_login(brute, f"bob@{D}", PW, source="127.0.0.6")
    assert line.startswith(b"-ERR [SYS/TEMP]"), line
    assert ("ip", "127.0.0.6") in blocks(brute)
    # 0 turns blocking off for new failures.
    brute.ctl("auth", "unblock", "127.0.0.6", check=True)
    brute.ctl("auth", "unblock", f"alice@{D}", check=True)
    set_conf(brute, "auth.block_after", "0")
    for _ in range(4):
        assert pop3_login(brute, f"alice@{D}", "wrong", source="127.0.0.6").startswith(b"-ERR")
    assert pop3_login(brute, f"alice@{D}", PW, source="127.0.0.6").startswith(b"+OK")
    assert blocks(brute) == set()


# ---- floods ------------------------------------------------------------------

def greeting_time(port, source="127.0.0.3"):
    t0 = time.monotonic()
    s, f, line = raw_line(port, source=source, timeout=5)
    s.close()
    return time.monotonic() - t0, line


def test_slow_flood_leaves_other_address_served(mx):
    """Twice the per-IP cap of slow connections from 127.0.0.2 on SMTP,
    IMAP and POP3 (some idle before the greeting is read, some trickling a
    byte at a time, some stalled mid-DATA): 127.0.0.3 gets its greeting
    within a second on each."""
    cap = 5
    for key in ("smtp.max_connections_per_ip", "imap.max_connections_per_ip",
                "pop3.max_connections_per_ip"):
        set_conf(mx, key, cap)
    socks = []
    try:
        for svc in ("smtp", "imap", "pop3"):
            for i in range(2 * cap):
                s = socket.create_connection(("127.0.0.1", mx.ports[svc]), timeout=10,
                                             source_address=("127.0.0.2", 0))
                socks.append((svc, i, s))
        # Half of the SMTP ones go into DATA and stall there.
        for svc, i, s in socks:
            if svc == "smtp" and i % 2 == 1:
                try:
                    s.sendall(f"EHLO x\r\nMAIL FROM:<a@r.test>\r\nRCPT TO:<bob@{D}>\r\n"
                              "DATA\r\nSubject: slow\r\n".encode())
                except OSError:
                    pass
        for _ in range(3):
            for svc, i, s in socks:
                try:
                    s.sendall(b"N")  # one byte at a time, never a line
                except OSError:
                    pass
            for svc in ("smtp", "imap", "pop3"):
                took, line = greeting_time(mx.ports[svc])
                assert took < 1.0, f"{svc}: greeting after {took:.2f}s"
                assert line[:3] in (b"220", b"* O", b"+OK"), (svc, line)
            time.sleep(1)
        # The extra connections from 127.0.0.2 were refused by the cap.
        log = mx.read_log()
        assert "reason=max_connections_per_ip" in log or "Too many connections" in log
    finally:
        for _, _, s in socks:
            s.close()


def test_login_deadline_however_busy(mx):
    """imap.timeout_login and pop3.timeout_login (here their 10 s minimum)
    end a client that keeps the line busy without logging in: IMAP with
    * BYE, POP3 with -ERR, including a POP3 client whose deadline passes
    while its password is being checked and delayed."""
    set_conf(mx, "imap.timeout_login", "10s")
    set_conf(mx, "pop3.timeout_login", "10s")
    t0 = time.monotonic()
    imap, fi, _ = raw_line(mx.ports["imap"], timeout=20)
    pop, fp, _ = raw_line(mx.ports["pop3"], timeout=20)
    slow, fs, _ = raw_line(mx.ports["pop3"], timeout=20)
    ends = {}
    try:
        while len(ends) < 3 and time.monotonic() - t0 < 16:
            for name, s, f, cmd in (("imap", imap, fi, b"n NOOP\r\n"),
                                    ("pop3", pop, fp, b"CAPA\r\n")):
                if name in ends:
                    continue
                s.sendall(cmd)
                while True:
                    line = f.readline()
                    if line.startswith((b"* BYE", b"-ERR")):
                        ends[name] = (time.monotonic() - t0, line)
                        break
                    if line.startswith((b"n OK", b".")) or not line:
                        break
            if "slow" not in ends and time.monotonic() - t0 > 8:
                # Wrong passwords: each failure is delayed, longer each time,
                # so the deadline falls inside a check or its delay.
                slow.sendall(f"USER alice@{D}\r\nPASS wrong\r\n".encode())
                for _ in range(2):
                    line = fs.readline()
                    if line.startswith(b"-ERR [SYS/TEMP]") or not line:
                        ends["slow"] = (time.monotonic() - t0, line)
                        break
            time.sleep(1)
    finally:
        for s in (imap, pop, slow):
            s.close()
    assert set(ends) == {"imap", "pop3", "slow"}, ends
    assert ends["imap"][1].startswith(b"* BYE Login timed out"), ends
    assert ends["pop3"][1].startswith(b"-ERR [SYS/TEMP] Login timed out"), ends
    assert ends["slow"][1].startswith(b"-ERR [SYS/TEMP] Login timed out"), ends
    for name, (took, _) in ends.items():
        assert 9.5 < took < 15, (name, took)


def test_line_trickled_byte_by_byte_times_out(mx):
    """A command line sent one byte a second never completes: the idle
    timeout alone would restart at every byte and hold the connection for
    ever; a line must be whole within smtp.timeout_command (here its 10 s
    minimum), like Postfix's smtpd_per_record_deadline."""
    set_conf(mx, "smtp.timeout_command", "10s")
    try:
        s, f, greeting = raw_line(mx.ports["smtp"], timeout=20)
        assert greeting.startswith(b"220")
        s.sendall(b"EHLO trickle.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        t0 = time.monotonic()
        closed = None
        for c in b"NOOP NOOP NOOP NOOP NOOP":
            try:
                s.sendall(bytes([c]))
            except OSError:
                closed = time.monotonic() - t0
                break
            s.settimeout(1)
            try:
                if s.recv(4096) == b"":
                    closed = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = time.monotonic() - t0
                break
        s.close()
        assert closed is not None, "the trickled line held the connection"
        assert 9.5 < closed < 15, closed
    finally:
        set_conf(mx, "smtp.timeout_command", "5m")


# ---- huge structures ---------------------------------------------------------

def big_messages():
    to = "".join(f"To: r{i}@remote.test\r\n" for i in range(100000))
    many_to = (f"From: a@remote.test\r\n{to}Subject: many to\r\n\r\nbody\r\n").encode()
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(10000))
    many_parts = ("From: a@remote.test\r\nSubject: many parts\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                  f"{parts}--b--\r\n").encode()
    return many_to, many_parts


def test_hundred_thousand_to_and_ten_thousand_parts(mx):
    """Both are delivered, FETCH ENVELOPE and BODYSTRUCTURE answer, and the
    structure stops at MIME_MAX_PARTS (10,000 parts, the root included).
    The times are printed for docs/reliability.md, not judged here."""
    import smtplib
    many_to, many_parts = big_messages()
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=120) as s:
        s.sendmail("a@remote.test", [f"bob@{D}"], many_to)
        s.sendmail("a@remote.test", [f"bob@{D}"], many_parts)
    t_deliver = time.monotonic() - t0
    wait_for(lambda: mailbox_count(mx, f"bob@{D}") == 2, timeout=30, what="delivery")
    m = imaplib.IMAP4_SSL("127.0.0.1", mx.ports["imaps"], ssl_context=tls_context(), timeout=120)
    m.login(f"bob@{D}", PW)
    m.select("INBOX")
    t0 = time.monotonic()
    typ, data = m.fetch("1", "(ENVELOPE)")
    t_env = time.monotonic() - t0
    assert typ == "OK"
    env = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b"r0" in env and b"many to" in env
    t0 = time.monotonic()
    typ, data = m.fetch("2", "(BODYSTRUCTURE)")
    t_bs = time.monotonic() - t0
    assert typ == "OK"
    bs = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    # Every part but the root is a text/plain leaf: 9,999 fit the limit.
    leaves = bs.count(b'("text" "plain"') + bs.count(b'("TEXT" "PLAIN"')
    assert 9000 <= leaves <= 9999, leaves
    assert m.noop()[0] == "OK"
    m.logout()
    print(f"\nhuge: delivery of both {t_deliver:.2f}s, ENVELOPE of 100,000 To {t_env:.2f}s, "
          f"BODYSTRUCTURE of 10,000 parts {t_bs:.2f}s ({leaves} leaves)")
