"""Accountability end to end (docs/trace.md): `keelctl trace` answers what
happened to a message across SMTP, IMAP and POP3 and client addresses;
the admin audit log and its hash chain; trace.level."""

import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import wait_for

PASSWORD = "correct horse battery"
USER = "carol@trace.test"
MSGID = "<order-4711@customer.example>"


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class IMAPFrom(imaplib.IMAP4_SSL):
    """IMAP over TLS from a chosen local address (imaplib cannot bind one)."""

    def __init__(self, source, port):
        self._source = source
        super().__init__("127.0.0.1", port, ssl_context=tls_context(), timeout=10)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


class POP3From(poplib.POP3_SSL):
    def __init__(self, source, port):
        self._source = source
        super().__init__("127.0.0.1", port, context=tls_context(), timeout=10)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))
        return self.context.wrap_socket(sock, server_hostname=self.host)


def setup_user(keel):
    keel.ctl("domain", "add", "trace.test", check=True)
    keel.ctl("user", "add", USER, "--password-stdin", input=PASSWORD + "\n", check=True)


def send(keel, msgid=MSGID, rcpts=(USER,), sender="customer@remote.test"):
    msg = (f"From: {sender}\r\nTo: {USER}\r\nSubject: order\r\n"
           f"Message-ID: {msgid}\r\n\r\nplease deliver on Tuesday\r\n")
    with smtplib.SMTP("127.0.0.1", keel.ports["smtp"], timeout=10) as s:
        return s.sendmail(sender, list(rcpts), msg.encode())


def trace(keel, *args):
    r = keel.ctl("trace", *args, json_out=True)
    assert r.returncode == 0, r.stderr
    return r.json


def events(result):
    return [e for m in result["messages"] for e in m["events"]]


def wait_events(keel, args, predicate, what):
    """Access events are committed lazily (store_trace_defer, about 1 s)."""
    found = {}

    def check():
        found["r"] = trace(keel, *args)
        return predicate(events(found["r"]))
    wait_for(check, timeout=10, what=what)
    return found["r"]


def imap_move_and_read(keel):
    im = IMAPFrom("127.0.0.2", keel.ports["imaps"])
    im.login(USER, PASSWORD)
    im.create("Orders")
    im.select("INBOX")
    typ, _ = im.uid("MOVE", "1", "Orders")
    assert typ == "OK"
    im.select("Orders")
    typ, data = im.uid("FETCH", "1", "(BODY[])")
    assert typ == "OK" and b"please deliver on Tuesday" in data[0][1]
    im.logout()


def test_customer_scenario_trace_by_message_id(keel):
    setup_user(keel)
    send(keel)
    imap_move_and_read(keel)
    # Later: a POP3 client fetches and deletes it.  POP3 sees INBOX only, so
    # the message is moved back first over IMAP.
    im = IMAPFrom("127.0.0.2", keel.ports["imaps"])
    im.login(USER, PASSWORD)
    im.select("Orders")
    assert im.uid("MOVE", "1", "INBOX")[0] == "OK"
    im.logout()
    p = POP3From("127.0.0.3", keel.ports["pop3s"])
    p.user(USER)
    p.pass_(PASSWORD)
    assert b"please deliver on Tuesday" in b"\n".join(p.retr(1)[1])
    p.dele(1)
    p.quit()

    def complete(evs):
        have = {(e["protocol"], e["event"], e["client_ip"]) for e in evs}
        return {("smtp", "accepted", "127.0.0.1"), ("imap", "moved", "127.0.0.2"),
                ("imap", "fetched", "127.0.0.2"), ("pop3", "fetched", "127.0.0.3"),
                ("pop3", "deleted", "127.0.0.3")} <= have
    r = wait_events(keel, ["--message-id", MSGID], complete, "every step in the trace")
    evs = events(r)
    assert len(r["messages"]) == 1, "one message, one group"
    assert [e["time"] for e in evs] == sorted(e["time"] for e in evs)
    assert any(e["event"] == "delivered" and e["account"].lower() == USER for e in evs)
    moved = [e for e in evs if e["event"] == "moved"]
    assert "to=Orders" in moved[0]["detail"] and moved[0]["account"] == USER
    # The human timeline shows the same steps with time, protocol and IP.
    out = keel.ctl("trace", "--message-id", MSGID, check=True).stdout
    assert MSGID in out
    for proto, ip in (("smtp", "127.0.0.1"), ("imap", "127.0.0.2"), ("pop3", "127.0.0.3")):
        assert any(proto in line and ip in line for line in out.splitlines()), (proto, out)
    assert time.strftime("%Y-%m-%d") in out
    # --ip narrows to what came from one address.
    only = events(trace(keel, "--message-id", MSGID, "--ip", "127.0.0.3"))
    assert only and {e["protocol"] for e in only} == {"pop3"}


def test_message_rejected_at_rcpt_shows_reply_and_reason(keel):
    setup_user(keel)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(keel, msgid="<lost@remote.test>", rcpts=("nobody@trace.test",),
             sender="angry@remote.test")
    for args in (["--rcpt", "nobody@trace.test"], ["--sender", "angry@remote.test"]):
        r = wait_events(keel, args, lambda evs: any(e["event"] == "rcpt" for e in evs),
                        "the rejected RCPT in the trace")
        rcpt = [e for e in events(r) if e["event"] == "rcpt"][0]
        assert rcpt["rcpt"] == "nobody@trace.test"
        assert rcpt["detail"].startswith("rejected 550"), rcpt["detail"]
        assert "(" in rcpt["detail"], "the reason is given"
    out = keel.ctl("trace", "--rcpt", "nobody@trace.test", check=True).stdout
    assert "rejected 550" in out


def test_trace_usage_and_times(keel):
    assert keel.ctl("trace").returncode == 2
    assert keel.ctl("trace", "--since", "yesterday").returncode == 2
    setup_user(keel)
    send(keel)
    assert events(trace(keel, "--since", "1h", "--sender", "customer@remote.test"))
    assert not events(trace(keel, "--until", "2001-01-01", "--sender", "customer@remote.test"))
    today = time.strftime("%Y-%m-%d")
    assert events(trace(keel, "--since", today, "--queue-id",
                        events(trace(keel, "--message-id", MSGID))[0]["queue_id"]))


def test_trace_level_delivery_leaves_out_access_events(keel):
    setup_user(keel)
    keel.ctl("config", "set", "trace.level", "delivery", check=True)
    send(keel)
    imap_move_and_read(keel)
    keel.ctl("config", "set", "trace.level", "full", check=True)
    send(keel, msgid="<second@customer.example>")
    im = IMAPFrom("127.0.0.2", keel.ports["imaps"])
    im.login(USER, PASSWORD)
    im.select("INBOX")
    im.uid("FETCH", "1:*", "(BODY[])")
    im.logout()
    wait_events(keel, ["--message-id", "<second@customer.example>"],
                lambda evs: any(e["event"] == "fetched" for e in evs),
                "access events at trace.level full")
    evs = events(trace(keel, "--message-id", MSGID))
    assert any(e["event"] == "delivered" for e in evs)
    assert not [e for e in evs if e["event"] in ("moved", "fetched")], evs


# ---- audit -------------------------------------------------------------------


def audit(keel):
    r = keel.ctl("audit", json_out=True)
    assert r.returncode == 0, r.stderr
    return r.json


def sql(keel, statement):
    subprocess.run(["sqlite3", os.path.join(keel.data_dir, "keel.db"), statement],
                   check=True, capture_output=True)


def test_audit_records_changes_with_before_and_after(keel):
    setup_user(keel)
    keel.ctl("config", "set", "smtp.max_errors", "7", check=True)
    keel.ctl("user", "set", USER, "--name", "Carol C", check=True)
    keel.ctl("user", "passwd", USER, "--password-stdin", input="another long secret\n",
             check=True)
    keel.ctl("alias", "add", "sales@trace.test", USER, check=True)
    keel.ctl("user", "list", check=True)  # a read: not audited
    recs = audit(keel)
    cmds = [a["command"] for a in recs]
    assert cmds == ["domain.add", "user.add", "config.set", "user.set", "user.passwd",
                    "alias.add"], cmds
    uid = f"uid={os.geteuid()}"
    assert all(a["actor"] == uid for a in recs)
    cfg = recs[2]
    assert cfg["before"]["value"] == "10" and cfg["after"]["value"] == "7"
    uset = recs[3]
    assert uset["before"]["name"] == "" and uset["after"]["name"] == "Carol C"
    for a in recs:
        text = str(a)
        assert PASSWORD not in text and "another long secret" not in text
        assert "argon2" not in text, "never the password hash"
    assert recs[1]["args"]["password"] == "********"
    assert keel.ctl("audit", "--since", "2001-01-01", json_out=True).json == recs
    assert keel.ctl("audit", "--since", "1h", check=True).stdout.count("\n") == 7
    r = keel.ctl("audit", "verify")
    assert r.returncode == 0 and "6 records" in r.stdout, r.stdout + r.stderr


def test_audit_verify_catches_tampered_and_removed_records(keel):
    setup_user(keel)
    for v in ("5", "6", "7"):
        keel.ctl("config", "set", "smtp.max_errors", v, check=True)
    assert keel.ctl("audit", "verify").returncode == 0
    sql(keel, "UPDATE audit SET actor = 'uid=1000' WHERE id = 3")
    r = keel.ctl("audit", "verify")
    assert r.returncode == 1 and "record 3" in r.stderr, r.stderr
    sql(keel, "UPDATE audit SET actor = 'uid=%d' WHERE id = 3" % os.geteuid())
    assert keel.ctl("audit", "verify").returncode == 0, "restored exactly, it matches again"
    sql(keel, "DELETE FROM audit WHERE id = 4")
    r = keel.ctl("audit", "verify")
    assert r.returncode == 1 and "record 5" in r.stderr, r.stderr
    # New records chain on; the break stays visible.
    keel.ctl("config", "set", "smtp.max_errors", "8", check=True)
    assert keel.ctl("audit", "verify").returncode == 1
