"""Outbound delivery end to end: a real keeld delivers queued mail to real
SMTP receivers (aiosmtpd) on 127.0.0.2 and 127.0.0.3, finding them through
a private dnsmasq with MX records (docs/queue.md).  Only loopback traffic.

Mail is submitted over submissions with AUTH, as a user would; outcomes are
checked where a user or an administrator would look: what the receiver got
(envelope, data, peer address, EHLO name), the sender's INBOX (bounces and
delay warnings), the queue and the trace."""

import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Keel, wait_for
from smtp_helpers import (D, PW, add_user, ctl_ok, free_udp_port, queue_rows, set_conf, sql,
                          stored, tls_context)

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult  # noqa: E402

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
RELAY_USER, RELAY_PASS = "keel-relay", "relay secret 42"


def port_free_on(port, *hosts):
    for h in hosts:
        s = socket.socket()
        try:
            s.bind((h, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def common_free_port(*hosts):
    for _ in range(50):
        s = socket.socket()
        s.bind((hosts[0], 0))
        port = s.getsockname()[1]
        s.close()
        if port_free_on(port, *hosts):
            return port
    raise AssertionError("no port free on " + ", ".join(hosts))


# ---- receivers ---------------------------------------------------------------

class Recorder:
    """An aiosmtpd handler that keeps every message it takes and answers
    RCPT as told: rules maps an address or a domain to a list of replies
    used one per RCPT (the last one stays); None accepts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []
        self.rules = {}
        self.rcpts_seen = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpts_seen.append(address)
            rule = self.rules.get(address.lower()) or self.rules.get(
                address.rsplit("@", 1)[-1].lower())
            reply = None
            if rule:
                reply = rule[0] if len(rule) == 1 else rule.pop(0)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            n = len(self.messages) + 1
            self.messages.append({
                "mail_from": envelope.mail_from,
                "mail_options": list(envelope.mail_options),
                "rcpts": list(envelope.rcpt_tos),
                "data": envelope.content,
                "peer": session.peer[0],
                "ehlo": session.host_name,
                "tls": session.ssl is not None,
                "auth": session.auth_data if session.authenticated else None,
            })
        return f"250 2.0.0 Ok: queued as REMOTE{n}"

    def for_rcpt(self, rcpt):
        with self.lock:
            return [m for m in self.messages if rcpt in m["rcpts"]]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (auth_data.login == RELAY_USER.encode() and
          auth_data.password == RELAY_PASS.encode())
    return AuthResult(success=ok, auth_data=auth_data)


@pytest.fixture(scope="module")
def peers():
    """dnsmasq with the test domains, and three receivers:
    mx (127.0.0.2:P), second (127.0.0.3:P, SIZE 4000) and relay
    (127.0.0.3:R, STARTTLS and AUTH required)."""
    if not os.path.exists(DNSMASQ):
        pytest.fail("dnsmasq is missing (scripts/deps.sh test)")
    tmp = tempfile.mkdtemp(prefix="keel-queue-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=relay.test"],
                   check=True, capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    port = common_free_port("127.0.0.2", "127.0.0.3", "127.0.0.4")
    relay_port = common_free_port("127.0.0.3")
    dns_port = free_udp_port()
    records = [
        "--mx-host=mx.test,mx1.mx.test,10", "--host-record=mx1.mx.test,127.0.0.2",
        # The better MX refuses connections (nothing listens on .4).
        "--mx-host=two.test,a.two.test,10", "--mx-host=two.test,b.two.test,20",
        "--host-record=a.two.test,127.0.0.4", "--host-record=b.two.test,127.0.0.2",
        "--mx-host=retry.test,mx1.mx.test,10",
        "--mx-host=bounce.test,mx1.mx.test,10",
        "--mx-host=slow.test,mx1.mx.test,10",
        "--mx-host=multi.test,mx1.mx.test,10",
        "--mx-host=nullmx.test,.,0",
    ]
    dns = subprocess.Popen(
        [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", f"--port={dns_port}",
         "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
         "--user=nobody", "--local=/test/"] + records,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mx, second, relay = Recorder(), Recorder(), Recorder()
    ctrls = [
        aiosmtpd_controller.Controller(mx, hostname="127.0.0.2", port=port),
        aiosmtpd_controller.Controller(second, hostname="127.0.0.3", port=port,
                                       data_size_limit=4000),
        aiosmtpd_controller.Controller(relay, hostname="127.0.0.3", port=relay_port,
                                       tls_context=tls, require_starttls=True,
                                       authenticator=authenticator, auth_required=True,
                                       auth_require_tls=True),
    ]
    for c in ctrls:
        c.start()
    try:
        yield {"dns_port": dns_port, "port": port, "relay_port": relay_port,
               "mx": mx, "second": second, "relay": relay}
    finally:
        for c in ctrls:
            c.stop()
        dns.terminate()
        dns.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def q(peers):
    """One keeld for the module, pointed at the private DNS and receivers,
    retrying every second.  Each test sends from its own user, so that
    each one's INBOX holds only its own DSNs."""
    k = Keel()
    k.start()
    try:
        ctl_ok(k, "domain", "add", D)
        for u in ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivy"):
            add_user(k, u)
        set_conf(k, "dns.resolver", f"127.0.0.1:{peers['dns_port']}")
        set_conf(k, "delivery.port", peers["port"])
        set_conf(k, "queue.retry_schedule", "1s")
        yield k
    finally:
        k.cleanup()


def submit(keel, sender, rcpts, body="Hello there.\r\n", subject="test", extra_headers=""):
    msg = (f"From: <{sender}>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}.{time.time_ns()}@client.test>\r\n"
           f"{extra_headers}\r\n{body}")
    s = smtplib.SMTP_SSL("127.0.0.1", keel.ports["submissions"], context=tls_context(),
                         timeout=10)
    s.login(sender, PW)
    refused = s.sendmail(sender, rcpts, msg.encode())
    s.quit()
    assert refused == {}


def row_for(keel, rcpt):
    rows = [r for r in queue_rows(keel) if r["rcpt"] == rcpt]
    return rows[-1] if rows else None


def wait_state(keel, rcpt, state, timeout=15):
    return wait_for(lambda: (row_for(keel, rcpt) or {}).get("state") == state and
                    row_for(keel, rcpt), timeout=timeout,
                    what=f"queue entry for {rcpt} in state {state}")


DELIVERED, FAILED = 3, 4


def unfold(data):
    return re.sub(rb"\r\n[ \t]+", b" ", data)


def inbox_dsns(keel, user, n, timeout=15):
    return wait_for(lambda: len(stored(keel, user)) >= n and stored(keel, user),
                    timeout=timeout, what=f"{n} message(s) in {user}'s INBOX")


# ---- tests ---------------------------------------------------------------------

def test_delivery_by_mx(q, peers):
    sender = f"alice@{D}"
    body = "first line\r\n.starts with a dot\r\n..two dots\r\nlast\r\n"
    submit(q, sender, ["someone@mx.test"], body=body, subject="by mx")
    row = wait_state(q, "someone@mx.test", DELIVERED)
    got = peers["mx"].for_rcpt("someone@mx.test")
    assert len(got) == 1
    m = got[0]
    assert m["mail_from"] == sender
    assert m["ehlo"] == "mail.keel.test"
    # Dot-stuffing undone by the receiver: the body arrives as written.
    assert m["data"].endswith(body.encode()), m["data"]
    assert b"Subject: by mx" in m["data"]
    # The remote reply, with the remote queue id, is kept.
    assert re.search(r"250 2\.0\.0 Ok: queued as REMOTE\d+", row["last_reply"]), row
    assert row["attempts"] == 1
    ev = sql(q, "SELECT event, detail FROM trace WHERE rcpt = 'someone@mx.test'"
                " AND protocol = 'smtp-out'")
    assert any(e["event"] == "delivered" and "ip=127.0.0.2" in e["detail"] and
               "host=mx1.mx.test" in e["detail"] for e in ev), ev


def test_second_mx_when_first_refuses(q, peers):
    submit(q, f"bob@{D}", ["x@two.test"], subject="second mx")
    wait_state(q, "x@two.test", DELIVERED)
    assert len(peers["mx"].for_rcpt("x@two.test")) == 1
    attempts = sql(q, "SELECT detail FROM trace WHERE rcpt = 'x@two.test'"
                      " AND event = 'attempt' ORDER BY id")
    assert len(attempts) == 2, attempts
    assert "ip=127.0.0.4" in attempts[0]["detail"] and "refused" in attempts[0]["detail"]
    assert "ip=127.0.0.2" in attempts[1]["detail"] and 'result="ok"' in attempts[1]["detail"]


def test_4xx_then_retry_then_delivered(q, peers):
    peers["mx"].rules["grey@retry.test"] = ["451 4.7.1 greylisted, come back later", None]
    submit(q, f"carol@{D}", ["grey@retry.test"], subject="retry")
    row = wait_state(q, "grey@retry.test", DELIVERED)
    assert row["attempts"] == 2, row
    assert peers["mx"].rcpts_seen.count("grey@retry.test") == 2
    assert len(peers["mx"].for_rcpt("grey@retry.test")) == 1
    events = [e["event"] for e in sql(q, "SELECT event FROM trace WHERE rcpt ="
                                         " 'grey@retry.test' AND protocol = 'smtp-out'"
                                         " ORDER BY id")]
    assert "deferred" in events and events[-1] == "delivered", events
    # No DSN for a delay this short.
    assert stored(q, f"carol@{D}") == []


def test_5xx_bounces_to_sender_inbox(q, peers):
    peers["mx"].rules["nobody@bounce.test"] = ["550 5.1.1 <nobody@bounce.test>: no such user"]
    sender = f"dave@{D}"
    submit(q, sender, ["nobody@bounce.test"], subject="will bounce")
    row = wait_state(q, "nobody@bounce.test", FAILED)
    assert row["attempts"] == 1
    assert "550 5.1.1" in row["last_reply"]
    dsn = unfold(inbox_dsns(q, sender, 1)[0])
    assert b"Return-Path: <>" in dsn
    assert b"Action: failed" in dsn and b"Status: 5.1.1" in dsn
    assert b"Final-Recipient: rfc822; nobody@bounce.test" in dsn
    assert b"Remote-MTA: dns; mx1.mx.test" in dsn
    assert b"Diagnostic-Code: smtp; 550 5.1.1 <nobody@bounce.test>: no such user" in dsn, dsn
    assert b"Subject: will bounce" in dsn  # the original comes back
    assert peers["mx"].for_rcpt("nobody@bounce.test") == []


def test_delay_warning_once_then_bounce_after_max_age(q, peers):
    peers["mx"].rules["slow.test"] = ["452 4.2.2 mailbox busy"]
    sender = f"erin@{D}"
    set_conf(q, "queue.warn_after", "2s")
    try:
        submit(q, sender, ["later@slow.test"], subject="slow one")
        warn = inbox_dsns(q, sender, 1)[0]
        assert b"Action: delayed" in warn and b"Status: 4.2.2" in warn
        assert b"452 4.2.2 mailbox busy" in warn
        # Further attempts fail too, but warn no more.
        first = row_for(q, "later@slow.test")["attempts"]
        wait_for(lambda: row_for(q, "later@slow.test")["attempts"] >= first + 2,
                 timeout=10, what="two more attempts")
        assert len(stored(q, sender)) == 1
        # Past queue.max_age the mail bounces with the last reason.
        set_conf(q, "queue.max_age", "6s")
        row = wait_state(q, "later@slow.test", FAILED)
        assert "452 4.2.2 mailbox busy" in row["last_reply"]
        msgs = inbox_dsns(q, sender, 2)
        assert len(msgs) == 2
        assert b"Action: failed" in msgs[1] and b"Status: 4.4.7" in msgs[1]
    finally:
        ctl_ok(q, "config", "unset", "queue.warn_after")
        ctl_ok(q, "config", "unset", "queue.max_age")


def test_null_mx_and_nxdomain_bounce_at_once(q, peers):
    sender = f"frank@{D}"
    submit(q, sender, ["a@nullmx.test"], subject="null mx")
    row = wait_state(q, "a@nullmx.test", FAILED)
    assert row["attempts"] == 1 and "5.1.10" in row["last_reply"], row
    submit(q, sender, ["b@nosuch.test"], subject="no such domain")
    row = wait_state(q, "b@nosuch.test", FAILED)
    assert row["attempts"] == 1 and "5.1.2" in row["last_reply"], row
    dsns = inbox_dsns(q, sender, 2)
    assert any(b"Final-Recipient: rfc822; a@nullmx.test" in d and b"Status: 5.1.10" in d
               for d in dsns)
    assert any(b"Final-Recipient: rfc822; b@nosuch.test" in d and b"Status: 5.1.2" in d
               for d in dsns)


def test_routes_reject_relay_and_size(q, peers):
    sender = f"gina@{D}"
    set_conf(q, "delivery.routes",
             f"refused.test=reject, routed.test=relay:[127.0.0.3]:{peers['port']}")
    try:
        submit(q, sender, ["r@refused.test"], subject="refused")
        row = wait_state(q, "r@refused.test", FAILED)
        assert "550 5.7.1" in row["last_reply"]
        submit(q, sender, ["small@routed.test"], subject="routed small")
        wait_state(q, "small@routed.test", DELIVERED)
        assert len(peers["second"].for_rcpt("small@routed.test")) == 1
        # Bigger than the receiver's SIZE: refused before sending.
        submit(q, sender, ["big@routed.test"], body=("y" * 76 + "\r\n") * 80,
               subject="routed big")
        row = wait_state(q, "big@routed.test", FAILED)
        assert "552 5.3.4" in row["last_reply"], row
        assert peers["second"].for_rcpt("big@routed.test") == []
        dsns = inbox_dsns(q, sender, 2)
        assert any(b"Status: 5.7.1" in d for d in dsns)
        assert any(b"Status: 5.3.4" in d for d in dsns)
    finally:
        ctl_ok(q, "config", "unset", "delivery.routes")


def test_relayhost_with_auth_over_starttls(q, peers):
    set_conf(q, "delivery.relayhost", f"[127.0.0.3]:{peers['relay_port']}")
    set_conf(q, "delivery.relayhost_username", RELAY_USER)
    set_conf(q, "delivery.relayhost_password", RELAY_PASS)
    set_conf(q, "delivery.relayhost_tls", "require")
    try:
        submit(q, f"hank@{D}", ["far@anywhere.example"], subject="via relay")
        row = wait_state(q, "far@anywhere.example", DELIVERED)
        got = peers["relay"].for_rcpt("far@anywhere.example")
        assert len(got) == 1
        assert got[0]["tls"] and got[0]["auth"].login == RELAY_USER.encode()
        ev = sql(q, "SELECT detail FROM trace WHERE rcpt = 'far@anywhere.example'"
                    " AND event = 'delivered'")
        assert "tls=TLSv1." in ev[0]["detail"], ev
        assert "REMOTE" in row["last_reply"]
        # The queue never logs the password.  (The admin's config.set log
        # line shows setting values: reported to its owner.)
        assert not [ln for ln in q.read_log().splitlines()
                    if " queue " in ln and RELAY_PASS in ln]
        assert any(" queue " in ln and "event=auth" in ln and RELAY_USER in ln
                   for ln in q.read_log().splitlines())
    finally:
        for key in ("delivery.relayhost", "delivery.relayhost_username",
                    "delivery.relayhost_password", "delivery.relayhost_tls"):
            ctl_ok(q, "config", "unset", key)


def test_multihoming_source_ip_and_ehlo(q, peers):
    ctl_ok(q, "domain", "set", D, "source_ip=127.0.0.3", "ehlo_name=out.local.test")
    try:
        submit(q, f"ivy@{D}", ["who@multi.test"], subject="multihomed")
        wait_state(q, "who@multi.test", DELIVERED)
        got = peers["mx"].for_rcpt("who@multi.test")
        assert len(got) == 1
        assert got[0]["peer"] == "127.0.0.3"
        assert got[0]["ehlo"] == "out.local.test"
    finally:
        ctl_ok(q, "domain", "set", D, "source_ip=", "ehlo_name=")


def test_queue_survives_sigkill_and_delivers_after_restart(q, peers):
    """Queued and deferred entries are in the store, not in memory: a keeld
    killed with SIGKILL delivers them after it starts again, each once.
    (Last in the module: it restarts the module's keeld.)"""
    add_user(q, "judy")
    sender = f"judy@{D}"
    peers["mx"].rules["late@retry.test"] = ["451 4.3.0 not now"] * 50
    submit(q, sender, ["late@retry.test"], subject="deferred over a crash")
    wait_state(q, "late@retry.test", 1)  # deferred, with its reply
    set_conf(q, "delivery.max_connections", "0")
    submit(q, sender, ["kept@mx.test"], subject="queued over a crash")
    assert row_for(q, "kept@mx.test")["state"] == 0
    q.proc.kill()
    q.proc.wait()
    peers["mx"].rules["late@retry.test"] = [None]
    q.start()
    assert row_for(q, "kept@mx.test")["state"] == 0
    ctl_ok(q, "config", "unset", "delivery.max_connections")
    wait_state(q, "kept@mx.test", DELIVERED)
    row = wait_state(q, "late@retry.test", DELIVERED)
    assert row["attempts"] >= 2 and "451 4.3.0" not in row["last_reply"], row
    assert len(peers["mx"].for_rcpt("kept@mx.test")) == 1
    assert len(peers["mx"].for_rcpt("late@retry.test")) == 1
