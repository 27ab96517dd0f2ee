"""The SMTP services end to end: smtp (MX), submission and submissions;
EHLO and the extensions offered, every command, AUTH over TLS only with a
growing failure delay, DSN parameters, policy at RCPT, delivery (Received,
Return-Path, one blob for many recipients, aliases and groups, the queue,
DSNs for failures after DATA), the trace, durability after a 250, and real
clients: smtplib, swaks, curl.

Hostile input (smuggling, STARTTLS injection, relay tricks, limits) is in
test_smtp_hostile.py."""

import email
import os
import re
import signal
import smtplib
import subprocess
import time

import pytest

from conftest import wait_for
from smtp_helpers import (D, ENHANCED_RE, PW, Raw, add_user, ctl_ok, data_block, mailbox_count,
                          message, queue_rows, queued_data, send_message, set_conf,
                          setup_domain, sql, stored, tls_context, wait_count)

EXTENSIONS = ("PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
              "DSN", "CHUNKING")


@pytest.fixture
def mx(keel):
    """A server with local.test and users alice, bob, carol."""
    return setup_domain(keel)


# ---- services and extensions -----------------------------------------------

def test_mx_offers_starttls_and_auth_only_after_tls(mx):
    with Raw(mx.ports["smtp"]) as c:
        assert c.greeting[0] == 220 and c.greeting[1].startswith("mail.keel.test ESMTP")
        ext = c.ehlo()
        for e in EXTENSIONS + ("STARTTLS",):
            assert e in ext, (e, ext)
        assert not any(e.startswith("AUTH") for e in ext), "AUTH offered before TLS"
        c.starttls()
        ext = c.ehlo()
        for e in EXTENSIONS:
            assert e in ext, (e, ext)
        assert "STARTTLS" not in ext
        assert "AUTH PLAIN LOGIN" in ext
        # AUTH works on the MX port once under TLS.
        assert c.auth_plain(f"bob@{D}") == (235, "2.7.0 Authentication successful")


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_ehlo_sent_with_tls_finished_sees_tls(mx, service):
    """curl and other eager clients send EHLO in the same packet as their
    TLS Finished; the answer must be the one for a TLS session."""
    with Raw(mx.ports[service]) as c:
        c.ehlo()
        code, text = c.starttls_coalesced("EHLO client.test")
        assert code == 250
        ext = text.split("\n")[1:]
        assert "AUTH PLAIN LOGIN" in ext and "STARTTLS" not in ext, ext
        assert c.auth_plain(f"bob@{D}")[0] == 235


def test_mx_accepts_local_mail_without_auth(mx):
    s = smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10)
    refused = s.sendmail("someone@remote.test", [f"bob@{D}"], message(marker="NOAUTH1"))
    s.quit()
    assert refused == {}
    msgs = stored(mx, f"bob@{D}")
    assert len(msgs) == 1 and b"NOAUTH1" in msgs[0]


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_auth_refused_before_tls(mx, service):
    with Raw(mx.ports[service]) as c:
        ext = c.ehlo()
        assert not any(e.startswith("AUTH") for e in ext)
        code, text = c.auth_plain(f"bob@{D}")
        assert (code, text[:6]) == (538, "5.7.11")
        assert c.cmd("AUTH LOGIN")[0] == 538
        # A correct password sent in clear did not log anyone in.
        if service == "submission":
            assert c.cmd(f"MAIL FROM:<bob@{D}>")[0] == 530


def test_submission_starttls_then_auth_required(mx):
    port = mx.ports["submission"]
    with Raw(port) as c:
        ext = c.ehlo()
        assert "STARTTLS" in ext
        assert c.cmd(f"MAIL FROM:<bob@{D}>") == (530, "5.7.0 Authentication required")
        c.starttls()
        ext = c.ehlo()
        assert "AUTH PLAIN LOGIN" in ext and "STARTTLS" not in ext
        assert c.cmd(f"MAIL FROM:<bob@{D}>") == (530, "5.7.0 Authentication required")
        assert c.auth_plain(f"bob@{D}")[0] == 235
        c.ok(f"MAIL FROM:<bob@{D}>")
    # smtplib: starttls() and login() (PLAIN), then a message.
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.starttls(context=tls_context())
    s.login(f"bob@{D}", PW)
    s.sendmail(f"bob@{D}", [f"carol@{D}"], message(marker="SUBMIT587"))
    s.quit()
    assert b"SUBMIT587" in stored(mx, f"carol@{D}")[0]


def test_submissions_implicit_tls_auth_required(mx):
    port = mx.ports["submissions"]
    with Raw(port, tls=True) as c:
        assert c.greeting[0] == 220
        ext = c.ehlo()
        assert "AUTH PLAIN LOGIN" in ext and "STARTTLS" not in ext
        assert c.cmd(f"MAIL FROM:<bob@{D}>") == (530, "5.7.0 Authentication required")
        assert c.cmd("STARTTLS")[0] == 503
    s = smtplib.SMTP_SSL("127.0.0.1", port, context=tls_context(), timeout=10)
    s.ehlo()
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        s.sendmail(f"bob@{D}", [f"carol@{D}"], message())
    assert e.value.smtp_code == 530
    s.login(f"bob@{D}", PW)
    s.sendmail(f"bob@{D}", [f"carol@{D}"], message(marker="SUBMIT465"))
    s.quit()
    assert b"SUBMIT465" in stored(mx, f"carol@{D}")[0]


def test_auth_plain_and_login_and_failure(mx):
    set_conf(mx, "auth.failure_delay", "0")
    for mech in ("PLAIN", "LOGIN"):
        s = smtplib.SMTP_SSL("127.0.0.1", mx.ports["submissions"], context=tls_context(),
                             timeout=10)
        s.ehlo()
        s.user, s.password = f"bob@{D}", PW
        code, text = s.auth(mech, getattr(s, "auth_" + mech.lower()))
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        s.quit()
        s = smtplib.SMTP_SSL("127.0.0.1", mx.ports["submissions"], context=tls_context(),
                             timeout=10)
        s.ehlo()
        s.user, s.password = f"bob@{D}", "wrong password!"
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth(mech, getattr(s, "auth_" + mech.lower()))
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")
        s.close()
    # An unknown user gets the same answer as a wrong password.
    with Raw(mx.ports["submissions"], tls=True) as c:
        c.ehlo()
        assert c.auth_plain(f"nobody@{D}") == c.auth_plain(f"bob@{D}", "wrong password!")


def test_auth_failure_delay_grows(mx):
    set_conf(mx, "auth.failure_delay", "1s")
    set_conf(mx, "auth.failure_delay_max", "4s")
    took = []
    with Raw(mx.ports["submissions"], tls=True, timeout=30) as c:
        c.ehlo()
        for _ in range(3):
            t0 = time.monotonic()
            assert c.auth_plain(f"bob@{D}", "wrong password!")[0] == 535
            took.append(time.monotonic() - t0)
        # The right password still works and is not delayed like a failure.
        t0 = time.monotonic()
        assert c.auth_plain(f"bob@{D}")[0] == 235
        ok_took = time.monotonic() - t0
    assert took[0] >= 0.9, took
    assert took[1] > took[0] and took[1] >= 1.8, took
    assert took[2] > took[1] and took[2] >= 3.5, took
    assert ok_took < took[2], (ok_took, took)
    # Per IP: another account from the same address waits as long (the
    # success cleared bob's count, not the address's).
    with Raw(mx.ports["submissions"], tls=True, timeout=30) as c:
        c.ehlo()
        t0 = time.monotonic()
        assert c.auth_plain(f"carol@{D}", "wrong password!")[0] == 535
        assert time.monotonic() - t0 >= 3.5
    # Per account: carol's second failure, from a fresh address, waits
    # twice the base delay.
    with Raw(mx.ports["submissions"], tls=True, timeout=30, source="127.0.0.2") as c:
        c.ehlo()
        t0 = time.monotonic()
        assert c.auth_plain(f"carol@{D}", "wrong password!")[0] == 535
        assert time.monotonic() - t0 >= 1.8


# ---- commands ---------------------------------------------------------------

def test_commands(mx):
    with Raw(mx.ports["smtp"]) as c:
        assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 503  # before EHLO
        assert c.cmd("HELO client.test") == (250, "2.0.0 mail.keel.test")
        assert c.cmd("NOOP") == (250, "2.0.0 Ok")
        code, text = c.cmd("HELP")
        assert code == 214 and "EHLO" in text and "BDAT" in text
        # VRFY never tells whether a user exists.
        known = c.cmd(f"VRFY bob@{D}")
        assert known[0] == 252
        assert c.cmd(f"VRFY nosuchuser@{D}") == known
        assert c.cmd("VRFY bob") == known
        assert c.cmd(f"RCPT TO:<bob@{D}>")[0] == 503  # before MAIL
        assert c.cmd("DATA")[0] == 503
        assert c.cmd("FROB")[0] == 500
        c.ok("MAIL FROM:<a@remote.test>")
        assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 503  # nested
        assert c.cmd("DATA")[0] == 503  # no recipient yet
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("RSET")
        assert c.cmd("DATA")[0] == 503, "RSET must end the transaction"
        c.ok("MAIL FROM:<>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker="CMDS1")))
        assert c.reply()[0] == 250
        assert c.cmd("QUIT") == (221, "2.0.0 Bye")
        assert c.closed()
    assert mailbox_count(mx, f"bob@{D}") == 1


def test_enhanced_status_code_on_every_reply(mx):
    """RFC 2034: every 2xx/4xx/5xx reply after the greeting but EHLO's
    carries an enhanced code of the same class."""
    set_conf(mx, "auth.failure_delay", "0")
    set_conf(mx, "smtp.max_errors", "30")
    sessions = []
    with Raw(mx.ports["smtp"]) as c:
        sessions.append(c)
        for line in ("NOOP", "MAIL FROM:<a@remote.test>", "EHLO client.test", "HELP",
                     "VRFY x", "EXPN list", "FROB", "MAIL FROM:<bad", "MAIL FROM:<a@b.test> X=Y",
                     "MAIL FROM:<a@remote.test> SIZE=99999999999", "AUTH PLAIN",
                     "RCPT TO:<bob@local.test>", "MAIL FROM:<a@remote.test>",
                     "RCPT TO:<nosuch@local.test>", "RCPT TO:<x@remote.test>",
                     "RCPT TO:<bob@local.test>", "RSET", "HELO client.test"):
            c.cmd(line)
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.cmd("DATA")
        c.send(data_block(message()))
        c.reply()
        c.starttls()
        c.cmd("EHLO client.test")
        c.auth_plain(f"bob@{D}", "wrong password!")
        c.auth_plain(f"bob@{D}")
        c.cmd("AUTH PLAIN")
        c.cmd("QUIT")
    with Raw(mx.ports["submission"]) as c:
        sessions.append(c)
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<bob@local.test>")
        c.auth_plain(f"bob@{D}")
        c.cmd("QUIT")
    set_conf(mx, "smtp.max_errors", "2")
    with Raw(mx.ports["smtp"]) as c:
        sessions.append(c)
        c.cmd("FROB")
        c.cmd("FROB")
        c.reply()  # 421
    checked = 0
    for c in sessions:
        for code, lines, cmd in c.replies[1:]:
            if cmd.startswith("EHLO") or code // 100 not in (2, 4, 5):
                continue
            for line in lines:
                m = ENHANCED_RE.match(line)
                assert m, f"{cmd!r} -> {code} {line!r}: no enhanced status code"
                assert int(m.group(1)) == code // 100, f"{cmd!r} -> {code} {line!r}"
                checked += 1
    assert checked >= 30
    codes = {code for c in sessions for code, _, _ in c.replies}
    # The sessions above did meet each kind of reply.
    assert {214, 220, 221, 235, 250, 252, 354, 421, 500, 502, 503, 530, 535, 538, 550, 552,
            553, 554, 555} <= codes, codes


# ---- DSN parameters and the queue -------------------------------------------

def test_dsn_parameters_kept_with_queued_mail(mx):
    with Raw(mx.ports["submission"]) as c:
        c.ehlo()
        c.starttls()
        assert "DSN" in c.ehlo()
        assert c.auth_plain(f"bob@{D}")[0] == 235
        c.ok(f"MAIL FROM:<bob@{D}> RET=HDRS ENVID=QQ+2Bid1")
        c.ok("RCPT TO:<far@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;far+2Bx@remote.test")
        c.ok("RCPT TO:<other@remote.test>")
        c.ok(f"RCPT TO:<carol@{D}> NOTIFY=NEVER")
        c.ok("DATA", 354)
        c.send(data_block(message(marker="RELAYED1")))
        code, text = c.reply()
        assert code == 250, text
    rows = {r["rcpt"]: r for r in queue_rows(mx)}
    assert set(rows) == {"far@remote.test", "other@remote.test"}
    far, other = rows["far@remote.test"], rows["other@remote.test"]
    assert far["state"] == 0 and other["state"] == 0
    assert far["notify"] == 2 | 4
    assert far["orcpt"] == "rfc822;far+x@remote.test"
    assert far["envid"] == "QQ+id1" and other["envid"] == "QQ+id1"
    assert far["ret"] == 2
    assert other["notify"] == 0 and not other["orcpt"]
    assert far["sender"] == f"bob@{D}" and far["auth_user"] == f"bob@{D}"
    assert far["rcpt_domain"] == "remote.test"
    assert far["message_id"] == "<RELAYED1@client.test>"
    # Nothing lost: the queued copy is the whole message, and the local
    # recipient has it too.
    data = queued_data(mx, far)
    assert data.startswith(b"Received: ") and b"RELAYED1" in data
    assert data.endswith(message(marker="RELAYED1"))
    assert far["size"] == len(data)
    assert [b"RELAYED1" in m for m in stored(mx, f"carol@{D}")] == [True]


# ---- policy at RCPT ---------------------------------------------------------

def test_rcpt_policy(mx):
    add_user(mx, "dave")
    ctl_ok(mx, "user", "disable", f"dave@{D}")
    add_user(mx, "eve")
    assert send_message(mx.ports["smtp"], "x@remote.test", [f"eve@{D}"],
                        data_block(message(size=3000)))[0] == 250
    ctl_ok(mx, "user", "set", f"eve@{D}", "--quota", "1K")
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        c.ok("MAIL FROM:<x@remote.test>")
        code, text = c.cmd(f"RCPT TO:<nosuch@{D}>")
        assert (code, text[:5]) == (550, "5.1.1")
        code, text = c.cmd(f"RCPT TO:<dave@{D}>")
        assert (code, text[:5]) == (550, "5.2.1")
        code, text = c.cmd(f"RCPT TO:<eve@{D}>")
        assert (code, text[:5]) == (452, "4.2.2")
        code, text = c.cmd("RCPT TO:<someone@remote.test>")
        assert (code, text[:5]) == (554, "5.7.1")
        c.ok(f"RCPT TO:<bob@{D}>")
    assert queue_rows(mx) == []


def test_sender_login_match(mx):
    ctl_ok(mx, "alias", "add", f"robert@{D}", f"bob@{D}")
    ctl_ok(mx, "alias", "add", f"staff@{D}", f"carol@{D}")
    with Raw(mx.ports["submissions"], tls=True) as c:
        c.ehlo()
        assert c.auth_plain(f"bob@{D}")[0] == 235
        for sender in (f"bob@{D}", f"BOB@{D}", f"robert@{D}", ""):
            c.ok(f"MAIL FROM:<{sender}>")
            c.ok("RSET")
        for sender in (f"carol@{D}", f"staff@{D}", "bob@remote.test"):
            code, text = c.cmd(f"MAIL FROM:<{sender}>")
            assert (code, text[:5]) == (553, "5.7.1"), (sender, code, text)
        set_conf(mx, "smtp.sender_login_match", "no")
        c.ok(f"MAIL FROM:<carol@{D}>")
        c.ok(f"RCPT TO:<alice@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker="ASCAROL")))
        assert c.reply()[0] == 250
    assert stored(mx, f"alice@{D}")[0].startswith(f"Return-Path: <carol@{D}>\r\n".encode())


# ---- delivery ---------------------------------------------------------------

def received_of(msg):
    """The first Received field of a stored message, unfolded."""
    m = re.search(rb"^Received: (.*?)\r\n(?![ \t])", msg, re.S | re.M)
    assert m, msg[:500]
    return re.sub(rb"\r\n[ \t]+", b" ", m.group(1)).decode()


def test_received_and_return_path(mx):
    # ESMTP: plain MX.
    send_message(mx.ports["smtp"], "a@remote.test", [f"bob@{D}"], data_block(message()))
    # ESMTPS: MX under STARTTLS, no AUTH; the client sees the TLS version and
    # cipher that the header must name.
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        c.starttls()
        version, cipher = c.sock.version(), c.sock.cipher()[0]
        c.ehlo()
        c.ok("MAIL FROM:<b@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message()))
        assert c.reply()[0] == 250
    # ESMTPSA: submission with AUTH.
    send_message(mx.ports["submissions"], f"alice@{D}", [f"bob@{D}"], data_block(message()),
                 tls=True, auth=f"alice@{D}")
    # SMTP: HELO.
    with Raw(mx.ports["smtp"]) as c:
        c.ok("HELO old.client.test")
        c.ok("MAIL FROM:<c@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message()))
        assert c.reply()[0] == 250
    msgs = stored(mx, f"bob@{D}")
    assert len(msgs) == 4
    senders = ["a@remote.test", "b@remote.test", f"alice@{D}", "c@remote.test"]
    withs = ["ESMTP", "ESMTPS", "ESMTPSA", "SMTP"]
    for msg, sender, proto in zip(msgs, senders, withs):
        assert msg.startswith(f"Return-Path: <{sender}>\r\nReceived: ".encode()), msg[:200]
        rcv = received_of(msg)
        assert f" with {proto} id " in rcv, rcv
        assert "[127.0.0.1]" in rcv and "by mail.keel.test" in rcv
        if proto.startswith("ESMTPS"):
            assert re.search(r"\(using TLSv1\.[23] with cipher \S+\)", rcv), rcv
        else:
            assert "using" not in rcv, rcv
        # The id in the header is the queue id of the 250 and of the trace.
        qid = re.search(r" id (\S+)", rcv).group(1)
        assert sql(mx, f"SELECT 1 FROM trace WHERE queue_id = '{qid}' AND event = 'accepted'")
    assert f"(using {version} with cipher {cipher})" in received_of(msgs[1])
    assert "from client.test" in received_of(msgs[0])
    assert "from old.client.test" in received_of(msgs[3])


def test_stored_once_for_several_recipients(mx):
    rcpts = [f"alice@{D}", f"bob@{D}", f"carol@{D}"]
    assert send_message(mx.ports["smtp"], "a@remote.test", rcpts,
                        data_block(message(marker="ONCE1", size=5000)))[0] == 250
    blobs = sql(mx, "SELECT id, refcount FROM blobs")
    assert len(blobs) == 1 and blobs[0]["refcount"] == 3, blobs
    rows = sql(mx, "SELECT blob_id FROM messages")
    assert [r["blob_id"] for r in rows] == [blobs[0]["id"]] * 3
    for r in rcpts:
        assert mailbox_count(mx, r) == 1
        assert b"ONCE1" in stored(mx, r)[0]


def test_alias_and_group_deliver_to_each_member(mx):
    ctl_ok(mx, "alias", "add", f"sales@{D}", f"alice@{D}", f"bob@{D}")
    ctl_ok(mx, "group", "add", f"team@{D}")
    for u in ("bob", "carol"):
        ctl_ok(mx, "group", "member", "add", f"team@{D}", f"{u}@{D}")
    assert send_message(mx.ports["smtp"], "a@remote.test", [f"sales@{D}"],
                        data_block(message(marker="ALIAS1")))[0] == 250
    assert send_message(mx.ports["smtp"], "a@remote.test", [f"team@{D}"],
                        data_block(message(marker="GROUP1")))[0] == 250
    # One message to both: bob, in both, gets it once per message.
    assert send_message(mx.ports["smtp"], "a@remote.test", [f"sales@{D}", f"team@{D}"],
                        data_block(message(marker="BOTH1")))[0] == 250
    got = {u: stored(mx, f"{u}@{D}") for u in ("alice", "bob", "carol")}
    marks = {u: sorted(k for k in ("ALIAS1", "GROUP1", "BOTH1")
                       if any(k.encode() in m for m in msgs)) for u, msgs in got.items()}
    assert marks == {"alice": ["ALIAS1", "BOTH1"], "bob": ["ALIAS1", "BOTH1", "GROUP1"],
                     "carol": ["BOTH1", "GROUP1"]}
    assert len(got["bob"]) == 3


def test_failure_after_data_sends_dsn(mx):
    ctl_ok(mx, "user", "set", f"carol@{D}", "--quota", "1K")
    ctl_ok(mx, "alias", "add", f"pair@{D}", f"bob@{D}", f"carol@{D}")
    final = send_message(mx.ports["submissions"], f"alice@{D}", [f"pair@{D}"],
                         data_block(message(marker="OVERQ1", size=3000)), tls=True,
                         auth=f"alice@{D}")
    assert final[0] == 250
    assert [b"OVERQ1" in m for m in stored(mx, f"bob@{D}")] == [True]
    assert mailbox_count(mx, f"carol@{D}") == 0
    wait_count(mx, f"alice@{D}", 1)
    dsn = stored(mx, f"alice@{D}")[0]
    assert dsn.startswith(b"Return-Path: <>\r\n"), dsn[:100]
    parsed = email.message_from_bytes(dsn)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    report = [p for p in parsed.walk() if p.get_content_type() == "message/delivery-status"]
    assert report, dsn.decode(errors="replace")
    text = report[0].as_string()
    assert f"carol@{D}" in text and "5.2.2" in text and "failed" in text.lower()
    assert f"bob@{D}" not in text
    assert b"OVERQ1" in dsn  # the original comes back
    # Outcome events need not be durable with the message: they come with
    # the next write, or within a second (store_trace_defer).
    failed = wait_for(lambda: sql(mx, "SELECT account, detail FROM trace"
                                      " WHERE event = 'failed'"), what="the failed event")
    assert failed == [{"account": f"carol@{D}", "detail": "552 5.2.2 mailbox full"}]


def test_authenticated_mail_to_remote_is_queued(mx):
    s = smtplib.SMTP_SSL("127.0.0.1", mx.ports["submissions"], context=tls_context(),
                         timeout=10)
    s.login(f"bob@{D}", PW)
    refused = s.sendmail(f"bob@{D}", ["x@remote.test", f"alice@{D}"],
                         message(marker="MIXED1"))
    s.quit()
    assert refused == {}
    rows = queue_rows(mx)
    assert [(r["rcpt"], r["state"]) for r in rows] == [("x@remote.test", 0)]
    assert b"MIXED1" in queued_data(mx, rows[0])
    assert b"MIXED1" in stored(mx, f"alice@{D}")[0]


# ---- trace ------------------------------------------------------------------

def test_trace_events_of_a_session(mx):
    set_conf(mx, "auth.failure_delay", "0")
    with Raw(mx.ports["submission"]) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert c.auth_plain(f"bob@{D}", "wrong password!")[0] == 535
        assert c.auth_plain(f"bob@{D}")[0] == 235
        c.ok(f"MAIL FROM:<bob@{D}>")
        assert c.cmd(f"RCPT TO:<nosuch@{D}>")[0] == 550
        c.ok(f"RCPT TO:<carol@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker="TRACE1", size=2000)))
        code, text = c.reply()
        assert code == 250
        qid = text.split()[-1]
        c.cmd("QUIT")

    def events():
        return sql(mx, "SELECT * FROM trace WHERE protocol = 'submission' ORDER BY id")
    rows = wait_for(lambda: (r := events()) and any(e["event"] == "delivered" for e in r) and r,
                    what="the delivered event")
    sessions = {r["session"] for r in rows}
    assert len(sessions) == 1 and None not in sessions
    by = {}
    for r in rows:
        by.setdefault(r["event"], []).append(r)
    for ev in ("connect", "tls", "auth", "mail", "rcpt", "accepted", "delivered"):
        assert ev in by, (ev, [r["event"] for r in rows])
    assert all(r["client_ip"] == "127.0.0.1" for r in rows)
    assert re.search(r"version=TLSv1\.[23] cipher=\S+", by["tls"][0]["detail"])
    auth = [r["detail"] for r in by["auth"]]
    assert len(auth) == 2 and auth[0].startswith("failed for bob@") and \
        auth[1].startswith("success mechanism=PLAIN"), auth
    assert by["mail"][0]["sender"] == f"bob@{D}"
    rcpt = {r["rcpt"]: r["detail"] for r in by["rcpt"]}
    assert rcpt[f"nosuch@{D}"].startswith("rejected 550 5.1.1")
    assert rcpt[f"carol@{D}"].startswith("accepted 250 2.1.5")
    acc = by["accepted"][0]
    assert acc["queue_id"] == qid and acc["message_id"] == "<TRACE1@client.test>"
    size = int(re.search(r"size=(\d+)", acc["detail"]).group(1))
    assert size == len(stored(mx, f"carol@{D}")[0]) - len(f"Return-Path: <bob@{D}>\r\n")
    assert "message-id=<TRACE1@client.test>" in acc["detail"]
    dlv = by["delivered"][0]
    assert dlv["account"] == f"carol@{D}" and dlv["queue_id"] == qid
    assert dlv["detail"] == "mailbox=INBOX uid=1"
    # The events before the message carry its queue id too.
    assert by["rcpt"][0]["queue_id"] == qid and by["connect"][0]["queue_id"] == qid


# ---- durability -------------------------------------------------------------

def test_message_survives_worker_sigkill_right_after_250(mx):
    old = mx.worker_pid()
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok(f"RCPT TO:<carol@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker="DURABLE1", size=20000)))
        code, _ = c.reply()
        os.kill(old, signal.SIGKILL)
        assert code == 250
    wait_for(lambda: (p := mx.worker_pid()) and p != old, what="a new worker")
    wait_for(lambda: mx.ctl("status").returncode == 0, what="the admin socket")
    for u in ("bob", "carol"):
        msgs = stored(mx, f"{u}@{D}")
        assert len(msgs) == 1 and msgs[0].endswith(message(marker="DURABLE1", size=20000))


def test_stop_with_open_sessions_is_clean(mx):
    """SIGTERM while SMTP sessions are open, mid-transaction: the worker
    closes them and exits cleanly (the fixture fails the test on any
    sanitizer report, as a use-after-free at shutdown once gave)."""
    conns = [Raw(mx.ports["smtp"]) for _ in range(20)]
    try:
        for c in conns:
            c.ehlo()
            c.ok("MAIL FROM:<a@remote.test>")
        assert mx.stop() == 0
        for c in conns:
            assert c.closed(timeout=5)
    finally:
        for c in conns:
            c.close()
    assert "event=stopped" in mx.read_log()
    assert not mx.sanitizer_reports()


# ---- BDAT -------------------------------------------------------------------

def test_bdat(mx):
    chunk1 = b"Subject: chunks\r\n\r\nline one\r\n.\r\n"  # no stuffing, no end
    chunk2 = b"MAIL FROM:<x@y.test>\r\nbinary \x00\xff\r\n"
    with Raw(mx.ports["smtp"]) as c:
        assert "CHUNKING" in c.ehlo()
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        assert c.reply() == (250, f"2.0.0 {len(chunk1)} octets received")
        c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        assert c.reply()[0] == 250
        # BDAT 0 LAST ends a message whose chunks came before; pipelined.
        c.send(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<carol@{D}>\r\nBDAT 7\r\n"
               "Hello\r\nBDAT 0 LAST\r\n")
        assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 250]
        # BDAT with no transaction: the chunk is eaten, then 503, and the
        # session is still in step (the QUIT inside the chunk is not a command).
        junk = b"QUIT\r\nRSET\r\n"
        c.send(b"BDAT %d\r\n" % len(junk) + junk)
        code, text = c.reply()
        assert code == 503 and text.startswith("5.5.1")
        assert c.cmd("NOOP") == (250, "2.0.0 Ok")
        c.send(b"BDAT %d LAST\r\n" % len(junk) + junk)
        assert c.reply()[0] == 503
        assert c.cmd("NOOP") == (250, "2.0.0 Ok")
        # BDAT then DATA in one transaction: 503.
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<alice@{D}>")
        c.send(b"BDAT 5\r\nhello")
        assert c.reply()[0] == 250
        code, text = c.cmd("DATA")
        assert code == 503 and text.startswith("5.5.1")
        c.ok("RSET")
        c.ok("QUIT", 221)
    bob = stored(mx, f"bob@{D}")
    assert len(bob) == 1 and bob[0].endswith(b"\r\n" + chunk1 + chunk2)
    assert stored(mx, f"carol@{D}")[0].endswith(b"\r\nHello\r\n")
    assert mailbox_count(mx, f"alice@{D}") == 0


# ---- real clients -----------------------------------------------------------

def test_smtplib_plain_starttls_ssl(mx):
    s = smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10)
    s.sendmail("a@remote.test", [f"bob@{D}"], message(marker="LIB1"))
    s.starttls(context=tls_context())
    s.sendmail("a@remote.test", [f"bob@{D}"], message(marker="LIB2"))
    s.login(f"alice@{D}", PW)
    s.sendmail(f"alice@{D}", [f"bob@{D}"], message(marker="LIB3"))
    s.quit()
    s = smtplib.SMTP_SSL("127.0.0.1", mx.ports["submissions"], context=tls_context(),
                         timeout=10)
    s.login(f"carol@{D}", PW)
    s.send_message(email.message_from_bytes(message(marker="LIB4")), f"carol@{D}",
                   [f"bob@{D}"])
    s.quit()
    msgs = stored(mx, f"bob@{D}")
    assert [re.search(rb"LIB\d", m).group(0) for m in msgs] == [b"LIB1", b"LIB2", b"LIB3",
                                                                b"LIB4"]
    assert [received_of(m).split(" with ")[1].split()[0] for m in msgs] == \
        ["ESMTP", "ESMTPS", "ESMTPSA", "ESMTPSA"]


def test_swaks_pipelining_tls_auth(mx):
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(mx.ports["submission"]),
         "--from", f"bob@{D}", "--to", f"carol@{D},alice@{D}", "--tls", "--auth", "LOGIN",
         "--auth-user", f"bob@{D}", "--auth-password", PW, "--pipeline",
         "--header", "Subject: swaks", "--body", "SWAKS1 body", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PIPELINING" in r.stdout and "235 2.7.0" in r.stdout
    assert re.search(r"<~\s+250 2\.0\.0 Ok: queued as", r.stdout), r.stdout
    for u in ("carol", "alice"):
        assert b"SWAKS1 body" in stored(mx, f"{u}@{D}")[0]
    # MX without TLS: swaks pipelines MAIL, RCPT (one refused) and DATA.
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(mx.ports["smtp"]),
         "--from", "a@remote.test", "--to", f"bob@{D}", "--pipeline", "--body", "SWAKS2"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"SWAKS2" in stored(mx, f"bob@{D}")[0]


def test_curl(mx, tmp_path):
    f = tmp_path / "mail.eml"
    f.write_bytes(message(marker="CURL1"))
    r = subprocess.run(
        ["curl", "-sS", f"smtp://127.0.0.1:{mx.ports['smtp']}", "--mail-from", "a@remote.test",
         "--mail-rcpt", f"bob@{D}", "--upload-file", str(f)],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    f.write_bytes(message(marker="CURL2"))
    r = subprocess.run(
        ["curl", "-sS", "-k", f"smtps://127.0.0.1:{mx.ports['submissions']}",
         "--user", f"alice@{D}:{PW}", "--mail-from", f"alice@{D}", "--mail-rcpt", f"bob@{D}",
         "--upload-file", str(f)],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    f.write_bytes(message(marker="CURL3"))
    r = subprocess.run(
        ["curl", "-sS", "-k", "--ssl-reqd", f"smtp://127.0.0.1:{mx.ports['submission']}",
         "--user", f"carol@{D}:{PW}", "--mail-from", f"carol@{D}", "--mail-rcpt", f"bob@{D}",
         "--upload-file", str(f)],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msgs = stored(mx, f"bob@{D}")
    assert [re.search(rb"CURL\d", m).group(0) for m in msgs] == [b"CURL1", b"CURL2", b"CURL3"]
    # An unauthenticated relay attempt through curl fails.
    r = subprocess.run(
        ["curl", "-sS", f"smtp://127.0.0.1:{mx.ports['smtp']}", "--mail-from", "a@remote.test",
         "--mail-rcpt", "b@remote.test", "--upload-file", str(f)],
        capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "554" in r.stderr, r.stderr
    assert queue_rows(mx) == []


# ---- idle timeout -----------------------------------------------------------

def test_idle_session_dropped_after_timeout_command(mx):
    set_conf(mx, "smtp.timeout_command", "10s")
    with Raw(mx.ports["smtp"], timeout=30) as c:
        c.ehlo()
        t0 = time.monotonic()
        assert c.closed(timeout=25), "an idle session must be dropped"
        took = time.monotonic() - t0
    assert 9 <= took < 20, took
    assert mx.ctl("config", "set", "smtp.timeout_command", "9").returncode == 1
