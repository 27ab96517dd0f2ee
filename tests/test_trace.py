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


def pop3_read_and_delete(keel, source="127.0.0.3"):
    p = POP3From(source, keel.ports["pop3s"])
    p.user(USER)
    p.pass_(PASSWORD)
    count = len(p.list()[1])
    for i in range(1, count + 1):
        p.retr(i)
        p.dele(i)
    p.quit()
    return count


def test_trace_level_delivery_leaves_out_access_events(keel):
    """delivery: SMTP, logins and connects stay; IMAP and POP3 access
    events (select, fetched, flags, moved, deleted...) go; live both ways."""
    setup_user(keel)
    keel.ctl("config", "set", "trace.level", "delivery", check=True)
    send(keel)
    imap_move_and_read(keel)
    im = IMAPFrom("127.0.0.2", keel.ports["imaps"])
    im.login(USER, PASSWORD)
    im.select("Orders")
    assert im.uid("MOVE", "1", "INBOX")[0] == "OK"
    im.logout()
    assert pop3_read_and_delete(keel) == 1
    keel.ctl("config", "set", "trace.level", "full", check=True)
    send(keel, msgid="<second@customer.example>")
    im = IMAPFrom("127.0.0.2", keel.ports["imaps"])
    im.login(USER, PASSWORD)
    im.select("INBOX")
    im.uid("FETCH", "1:*", "(BODY[])")
    im.logout()
    assert pop3_read_and_delete(keel, "127.0.0.4") == 1
    wait_events(keel, ["--message-id", "<second@customer.example>"],
                lambda evs: {("imap", "fetched"), ("pop3", "fetched"), ("pop3", "deleted")}
                <= {(e["protocol"], e["event"]) for e in evs},
                "access events at trace.level full")
    evs = events(trace(keel, "--message-id", MSGID))
    assert any(e["event"] == "delivered" for e in evs)
    assert not [e for e in evs if e["protocol"] in ("imap", "pop3")], evs
    # The sessions themselves are still there: logins over both protocols.
    for ip, proto in (("127.0.0.2", "imap"), ("127.0.0.3", "pop3")):
        evs = events(trace(keel, "--ip", ip, "--since", "1h"))
        kinds = {e["event"] for e in evs if e["protocol"] == proto}
        assert "login" in kinds, (proto, kinds)
        if ip == "127.0.0.3":
            assert not kinds & {"fetched", "deleted"}, kinds


def test_trace_level_off_records_nothing(keel):
    """off: no event from SMTP, the pipeline, IMAP or POP3; full again:
    the next message is traced from its first event."""
    setup_user(keel)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    closed = keel.read_log().count(" event=disconnect ")
    keel.ctl("config", "set", "trace.level", "off", check=True)
    send(keel)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(keel, msgid="<lost@remote.test>", rcpts=("nobody@trace.test",),
             sender="angry@remote.test")
    imap_move_and_read(keel)
    im = IMAPFrom("127.0.0.2", keel.ports["imaps"])
    im.login(USER, PASSWORD)
    im.select("Orders")
    im.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    assert im.uid("MOVE", "1", "INBOX")[0] == "OK"
    im.logout()
    assert pop3_read_and_delete(keel) == 1
    # Two SMTP, two IMAP and one POP3 session ended (their last event is made
    # as they close, at "off" too) before the level goes back to full.
    wait_for(lambda: keel.read_log().count(" event=disconnect ") >= closed + 5, timeout=10,
             what="the sessions at trace.level off to close")
    keel.ctl("config", "set", "trace.level", "full", check=True)
    send(keel, msgid="<after@customer.example>", sender="later@remote.test")
    r = wait_events(keel, ["--message-id", "<after@customer.example>"],
                    lambda evs: any(e["event"] == "delivered" for e in evs),
                    "the message sent at trace.level full")
    assert {"connect", "mail", "rcpt", "accepted"} <= {e["event"] for e in events(r)}
    # Everything since the test began is that last message's session.
    after = events(r)
    sessions = {e["session"] for e in after}
    everything = events(trace(keel, "--since", since))
    stray = [e for e in everything if e["session"] not in sessions]
    assert not stray, stray
    assert not events(trace(keel, "--message-id", MSGID))
    assert not events(trace(keel, "--sender", "angry@remote.test", "--since", since))
    assert keel.ctl("config", "set", "trace.level", "some").returncode == 1


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


# ---- retention ---------------------------------------------------------------


def insert_events(keel, rows):
    """Writes trace rows (time, queue id, sender) straight into keel.db
    while keeld runs: WAL lets a second writer in between the committer's
    transactions (each side waits for the other's lock)."""
    import sqlite3
    db = sqlite3.connect(os.path.join(keel.data_dir, "keel.db"), timeout=20)
    with db:
        db.executemany(
            "INSERT INTO trace(time, queue_id, message_id, event, protocol, client_ip,"
            " session, sender, rcpt, detail) VALUES(?, ?, NULL, 'accepted', 'smtp',"
            " '192.0.2.7', 'old', ?, 'x@trace.test', 'test row')", rows)
    db.close()


def test_retention_change_deletes_older_events_live(keel):
    """trace.retention is live: made shorter, the job deletes the events
    older than the new value within seconds (in chunks of 5000), with no
    restart; younger ones and today's stay."""
    setup_user(keel)
    send(keel)
    wait_events(keel, ["--message-id", MSGID],
                lambda evs: any(e["event"] == "delivered" for e in evs), "today's events")
    now = int(time.time())
    old = [(now - 3 * 3600 - i, f"QOLD{i}", "old@remote.test") for i in range(12001)]
    young = [(now - 1800 + i, f"QYOUNG{i}", "young@remote.test") for i in range(7)]
    insert_events(keel, old + young)
    # The default (90 days) keeps them all.
    r = trace(keel, "--sender", "old@remote.test", "--since", "1d")
    assert r["events"] == 12001, r["events"]
    keel.ctl("config", "set", "trace.retention", "1h", check=True)

    def old_gone():
        return trace(keel, "--sender", "old@remote.test", "--since", "1d")["events"] == 0
    wait_for(old_gone, timeout=30, what="the retention job to delete events older than 1h")
    wait_for(lambda: "event=retention_pass deleted=12001 " in keel.read_log(), timeout=10,
             what="the retention pass in the log")
    young_left = events(trace(keel, "--sender", "young@remote.test", "--since", "1d"))
    assert sorted(e["queue_id"] for e in young_left) == sorted(q for _, q, _ in young)
    today = events(trace(keel, "--message-id", MSGID))
    assert any(e["event"] == "delivered" for e in today)
    assert keel.read_log().count("event=retention_pass") == 1, "one pass, nothing else due"
    assert keel.ctl("config", "set", "trace.retention", "10m").returncode == 1, "below 1h"
