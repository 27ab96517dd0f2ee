"""Anti-abuse end to end (docs/abuse.md): DNS blacklists answered by a
private dnsmasq, the sender domain check, the limits per client IP and the
outbreak brake, against a real keeld.  Clients bind their sockets to
127.0.0.x source addresses: 127.0.0.2 is listed by bl.test, 127.0.0.3 is
not (but is by the mark zone mk.test); the per-IP limits each use an
address of their own, so the tests share one server."""

import json
import os
import shutil
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import Keel, wait_for
from smtp_helpers import (D, PW, Raw, add_user, ctl_ok, data_block, free_udp_port, message,
                          queue_rows, set_conf, sql, stored, tls_context)

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
HELD = 2


def dns_answers(port, proc):
    """Whether the server on port answers an A query for 2.0.0.127.bl.test."""
    assert proc.poll() is None, proc.stderr.read()
    name = b"".join(bytes([len(p)]) + p for p in b"2.0.0.127.bl.test".split(b".")) + b"\0"
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(query, ("127.0.0.1", port))
        return s.recv(512)[:2] == b"\x12\x34"
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="module")
def dns():
    if not os.path.exists(DNSMASQ):
        pytest.fail("dnsmasq is missing (scripts/deps.sh test)")
    port = free_udp_port()
    records = [
        "--host-record=2.0.0.127.bl.test,127.0.0.2",
        "--host-record=3.0.0.127.mk.test,127.0.0.2",
        "--host-record=2.0.0.127.mk.test,127.0.0.4",
        "--mx-host=good.test,mx.good.test,10", "--host-record=mx.good.test,127.0.0.9",
        "--host-record=aonly.test,127.0.0.9",
        "--mx-host=nullmx.test,.,0",
    ]
    proc = subprocess.Popen(
        [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", f"--port={port}",
         "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
         "--user=nobody", "--local=/test/", "--local-ttl=300"] + records,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: dns_answers(port, proc), what="dnsmasq to answer")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def k(dns):
    keel = Keel()
    keel.start()
    try:
        set_conf(keel, "delivery.max_connections", "0")
        ctl_ok(keel, "domain", "add", D)
        for u in ("bob", "alice", "postmaster", "carol", "dave", "erin"):
            add_user(keel, u)
        set_conf(keel, "dns.resolver", f"127.0.0.1:{dns}")
        yield keel
    finally:
        keel.cleanup()


def api(keel, cmd, **args):
    """One admin API request on the admin socket (docs/admin-api.md)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(keel.socket)
    s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        assert chunk, "admin socket closed"
        buf += chunk
    s.close()
    reply = json.loads(buf)
    assert reply["ok"], reply
    return reply["result"]


def traced(keel, event, like):
    """The trace events of that kind whose detail is LIKE like, waiting for
    them (the access events are committed with the next batch)."""
    return wait_for(lambda: sql(keel, f"SELECT * FROM trace WHERE event = '{event}'"
                                      f" AND detail LIKE '{like}'"),
                    timeout=10, what=f"a trace event {event}: {like}")


def one_message(port, source, rcpt=f"bob@{D}", sender="someone@good.test", marker="M"):
    with Raw(port, source=source) as c:
        assert c.greeting[0] == 220, c.greeting
        c.ehlo()
        c.ok(f"MAIL FROM:<{sender}>")
        c.ok(f"RCPT TO:<{rcpt}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker=marker)))
        return c.reply()


# ---- DNS blacklists ------------------------------------------------------------

def test_dnsbl_reject_mark_exempt_cache(k):
    port = k.ports["smtp"]
    set_conf(k, "dnsbl.zones", "bl.test, mk.test=mark")
    try:
        with Raw(port, source="127.0.0.2") as c:
            code, text = c.greeting
            assert code == 554 and text.startswith("5.7.1 "), c.greeting
            assert "bl.test" in text and "127.0.0.2" in text, text
            assert c.closed()
        assert traced(k, "refused", "554 5.7.1 client [127.0.0.2] listed by bl.test%")
        # The answer is cached for its TTL: a second client from the same
        # address is refused without asking again.
        with Raw(port, source="127.0.0.2") as c:
            assert c.greeting[0] == 554
        asked = k.read_log().count("event=dnsbl name=2.0.0.127.bl.test listed=yes")
        assert asked == 1, asked

        # 127.0.0.3: not in bl.test, listed by the mark zone: accepted and marked.
        assert one_message(port, "127.0.0.3", marker="DNSBLMARK")[0] == 250
        msg = wait_for(lambda: [m for m in stored(k, f"bob@{D}") if b"DNSBLMARK" in m],
                       what="the marked message")[0]
        assert b"X-Keel-DNSBL: mk.test\r\n" in msg, msg[:600]
        assert traced(k, "dnsbl", "marked: client [127.0.0.3] listed by mk.test")

        # An exempt group lets the listed client in, live.
        api(k, "ipgroup.add", name="dnsbl-ok")
        api(k, "ipgroup.entry.add", name="dnsbl-ok", entry="127.0.0.2")
        set_conf(k, "dnsbl.exempt_group", "dnsbl-ok")
        with Raw(port, source="127.0.0.2") as c:
            assert c.greeting[0] == 220, c.greeting
        assert traced(k, "dnsbl", "skipped: client in dnsbl.exempt_group")
        set_conf(k, "dnsbl.exempt_group", "")

        # Submission is not checked: a listed user can still send.
        with Raw(k.ports["submission"], source="127.0.0.2") as c:
            assert c.greeting[0] == 220
    finally:
        set_conf(k, "dnsbl.zones", "")


def test_dnsbl_timeout_counts_as_not_listed(k, dns):
    # A resolver that never answers: the greeting waits dnsbl.timeout, no more.
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    set_conf(k, "dns.resolver", f"127.0.0.1:{mute.getsockname()[1]}")
    set_conf(k, "dnsbl.timeout", "1s")
    set_conf(k, "dnsbl.zones", "slow.test")
    try:
        t0 = time.monotonic()
        with Raw(k.ports["smtp"], source="127.0.0.5", timeout=20) as c:
            assert c.greeting[0] == 220, c.greeting
        took = time.monotonic() - t0
        assert 0.8 <= took < 8, took
        assert "event=dnsbl_unanswered ip=127.0.0.5 zone=slow.test" in k.read_log()
        # Clients that leave while their check is under way cancel it cleanly.
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", k.ports["smtp"]),
                                         source_address=("127.0.0.5", 0))
            s.close()
        set_conf(k, "dnsbl.zones", "")
        with Raw(k.ports["smtp"], source="127.0.0.5") as c:
            assert c.greeting[0] == 220
        assert k.proc.poll() is None
    finally:
        set_conf(k, "dnsbl.zones", "")
        set_conf(k, "dns.resolver", f"127.0.0.1:{dns}")
        set_conf(k, "dnsbl.timeout", "5s")
        mute.close()


def test_sender_domain_without_mx_a_aaaa(k):
    port = k.ports["smtp"]
    try:
        for mode, want in (("reject", (550, "5.1.8")), ("defer", (450, "4.1.8"))):
            set_conf(k, "smtp.reject_unresolvable_sender", mode)
            with Raw(port, source="127.0.0.6") as c:
                c.ehlo()
                for sender in ("x@nomx.test", "x@nullmx.test"):
                    code, text = c.cmd(f"MAIL FROM:<{sender}>")
                    assert (code, text[:5]) == want, (sender, code, text)
                    assert "no MX, A or AAAA" in text
                c.ok("MAIL FROM:<x@good.test>")
                c.ok("RSET")
                c.ok("MAIL FROM:<x@aonly.test>")
                c.ok("RSET")
                c.ok("MAIL FROM:<>")
        assert traced(k, "mail", "rejected 550 5.1.8: sender domain nomx.test%")
        set_conf(k, "smtp.reject_unresolvable_sender", "no")
        with Raw(port, source="127.0.0.6") as c:
            c.ehlo()
            c.ok("MAIL FROM:<x@nomx.test>")
    finally:
        set_conf(k, "smtp.reject_unresolvable_sender", "no")


def test_sender_domain_lookup_failure_defers_or_accepts(k, dns):
    """A resolver that never answers: the sender check gives up after
    dnsbl.timeout and defers (451 4.4.3, the default) or accepts."""
    port = k.ports["smtp"]
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    try:
        set_conf(k, "smtp.reject_unresolvable_sender", "reject")
        set_conf(k, "dnsbl.timeout", "1s")
        set_conf(k, "dns.resolver", f"127.0.0.1:{mute.getsockname()[1]}")
        with Raw(port, source="127.0.0.6", timeout=20) as c:
            c.ehlo()
            code, text = c.cmd("MAIL FROM:<x@unreachable-dns.test>")
            assert (code, text[:5]) == (451, "4.4.3"), (code, text)
            assert "cannot look up domain unreachable-dns.test" in text
        assert traced(k, "mail", "rejected 451 4.4.3: sender domain unreachable-dns.test%")
        set_conf(k, "smtp.sender_check_tempfail", "accept")
        with Raw(port, source="127.0.0.6", timeout=20) as c:
            c.ehlo()
            c.ok("MAIL FROM:<x@unreachable-dns.test>")
        assert "event=sender_check_failed from=<x@unreachable-dns.test> action=accept" in \
            k.read_log()
    finally:
        set_conf(k, "smtp.sender_check_tempfail", "defer")
        set_conf(k, "smtp.reject_unresolvable_sender", "no")
        set_conf(k, "dns.resolver", f"127.0.0.1:{dns}")
        set_conf(k, "dnsbl.timeout", "5s")
        mute.close()


# ---- limits per client IP ------------------------------------------------------

def test_messages_per_hour_per_ip(k):
    port = k.ports["smtp"]
    set_conf(k, "limits.messages_per_hour", "3")
    try:
        for i in range(3):
            assert one_message(port, "127.0.0.11", marker=f"PERHOUR{i}")[0] == 250
        with Raw(port, source="127.0.0.11") as c:
            c.ehlo()
            code, text = c.cmd("MAIL FROM:<someone@good.test>")
            assert code == 452 and "limits.messages_per_hour=3" in text, (code, text)
        assert "limit=limits.messages_per_hour max=3" in k.read_log()
        assert traced(k, "refused", "452 4.7.1 limits.messages_per_hour=3 reached")
        # Another address is not counted with it.
        assert one_message(port, "127.0.0.12")[0] == 250
        # The exempt group lifts the limit, live.
        api(k, "ipgroup.add", name="limits-ok")
        api(k, "ipgroup.entry.add", name="limits-ok", entry="127.0.0.8/29")
        set_conf(k, "limits.exempt_group", "limits-ok")
        assert one_message(port, "127.0.0.11")[0] == 250
        set_conf(k, "limits.exempt_group", "")
        # And raising the limit is live too.
        set_conf(k, "limits.messages_per_hour", "5")
        assert one_message(port, "127.0.0.11")[0] == 250
    finally:
        set_conf(k, "limits.exempt_group", "")
        set_conf(k, "limits.messages_per_hour", "1000")


def test_connections_per_ip(k):
    port = k.ports["smtp"]
    set_conf(k, "smtp.max_connections_per_ip", "2")
    try:
        a, b = Raw(port, source="127.0.0.13"), Raw(port, source="127.0.0.13")
        assert a.greeting[0] == b.greeting[0] == 220
        with Raw(port, source="127.0.0.13") as c:
            assert c.greeting[0] == 421 and "smtp.max_connections_per_ip=2" in c.greeting[1]
        with Raw(port, source="127.0.0.14") as c:
            assert c.greeting[0] == 220
        api(k, "ipgroup.add", name="conn-ok")
        api(k, "ipgroup.entry.add", name="conn-ok", entry="127.0.0.13")
        set_conf(k, "limits.exempt_group", "conn-ok")
        with Raw(port, source="127.0.0.13") as c:
            assert c.greeting[0] == 220
        a.close()
        b.close()
    finally:
        set_conf(k, "limits.exempt_group", "")
        set_conf(k, "smtp.max_connections_per_ip", "20")
    assert "reason=max_connections_per_ip" in k.read_log()


def test_unknown_recipients_then_block(k):
    port = k.ports["smtp"]
    set_conf(k, "limits.unknown_recipients", "3")
    set_conf(k, "limits.block_time", "2s")
    try:
        with Raw(port, source="127.0.0.15") as c:
            c.ehlo()
            c.ok("MAIL FROM:<someone@good.test>")
            assert c.cmd(f"RCPT TO:<nobody1@{D}>")[0] == 550
            assert c.cmd(f"RCPT TO:<nobody2@{D}>")[0] == 550
            code, text = c.cmd(f"RCPT TO:<nobody3@{D}>")
            assert code == 421 and "limits.unknown_recipients=3" in text, (code, text)
            assert c.closed()
        with Raw(port, source="127.0.0.15") as c:
            assert c.greeting[0] == 421 and "limits.unknown_recipients" in c.greeting[1]
        # Others are not blocked; the block ends after limits.block_time.
        assert one_message(port, "127.0.0.16")[0] == 250
        assert "event=blocked ip=127.0.0.15 limit=limits.unknown_recipients max=3" in \
            k.read_log()

        def greeted():
            with Raw(port, source="127.0.0.15") as c:
                return c.greeting[0] == 220
        wait_for(greeted, timeout=10, interval=0.3, what="the block to end")
    finally:
        set_conf(k, "limits.unknown_recipients", "50")
        set_conf(k, "limits.block_time", "30m")


def test_session_and_message_limits_name_themselves(k):
    port = k.ports["smtp"]
    set_conf(k, "smtp.max_errors", "3")
    set_conf(k, "smtp.max_recipients", "2")
    set_conf(k, "smtp.max_hops", "3")
    set_conf(k, "smtp.max_message_size", "5000")
    try:
        with Raw(port, source="127.0.0.17") as c:
            c.ehlo()
            for _ in range(3):
                assert c.cmd("BOGUS")[0] == 500
            code, text = c.reply()
            assert code == 421 and "smtp.max_errors=3" in text, (code, text)
        with Raw(port, source="127.0.0.17") as c:
            c.ehlo()
            code, text = c.cmd("MAIL FROM:<someone@good.test> SIZE=6000")
            assert code == 552 and "smtp.max_message_size=5000" in text, (code, text)
            c.ok("MAIL FROM:<someone@good.test>")
            c.ok(f"RCPT TO:<bob@{D}>")
            c.ok(f"RCPT TO:<alice@{D}>")
            code, text = c.cmd(f"RCPT TO:<carol@{D}>")
            assert code == 452 and "smtp.max_recipients=2" in text, (code, text)
            c.ok("DATA", 354)
            hops = "".join(f"Received: from h{i}.test by h{i + 1}.test; "
                           f"Sun, 6 Dec 2026 10:00:00 +0000\r\n" for i in range(4))
            c.send(data_block(message(headers=hops)))
            code, text = c.reply()
            assert code == 554 and "smtp.max_hops=3" in text, (code, text)
        # A message bigger than announced is refused at its end.
        with Raw(port, source="127.0.0.17") as c:
            c.ehlo()
            c.ok("MAIL FROM:<someone@good.test>")
            c.ok(f"RCPT TO:<bob@{D}>")
            c.ok("DATA", 354)
            c.send(data_block(message(size=8000)))
            code, text = c.reply()
            assert code == 552 and "smtp.max_message_size=5000" in text, (code, text)
        log = k.read_log()
        for line in ("event=too_many_errors ip=127.0.0.17 errors=3 limit=smtp.max_errors",
                     "ip=127.0.0.17 limit=smtp.max_recipients max=2",
                     "ip=127.0.0.17 limit=smtp.max_hops max=3",
                     "ip=127.0.0.17 limit=smtp.max_message_size max=5000"):
            assert line in log, line
        assert traced(k, "rcpt", "rejected 452 4.5.3: smtp.max_recipients=2")
    finally:
        for key, v in (("smtp.max_errors", None), ("smtp.max_recipients", None),
                       ("smtp.max_hops", None), ("smtp.max_message_size", None)):
            ctl_ok(k, "config", "unset", key)


# ---- the outbreak brake ----------------------------------------------------------

def submit_many(keel, account, n, sessions):
    """n messages from account over several parallel submissions sessions;
    returns (accepted, [refusal (code, text)])."""
    accepted, refused, lock = [0], [], threading.Lock()

    def worker(count, w):
        s = smtplib.SMTP_SSL("127.0.0.1", keel.ports["submissions"], context=tls_context(),
                             timeout=60)
        s.login(account, PW)
        for i in range(count):
            rcpt = f"friend{i % 5}@remote.test"
            msg = (f"From: <{account}>\r\nTo: <{rcpt}>\r\nSubject: spam {w}.{i}\r\n\r\n"
                   f"Buy now.\r\n").encode()
            try:
                s.sendmail(account, [rcpt], msg)
                with lock:
                    accepted[0] += 1
            except smtplib.SMTPSenderRefused as e:
                with lock:
                    refused.append((e.smtp_code, e.smtp_error.decode()))
            except smtplib.SMTPRecipientsRefused as e:
                with lock:
                    refused.extend((c, t.decode()) for c, t in e.recipients.values())
        s.quit()

    per = n // sessions
    threads = [threading.Thread(target=worker, args=(per, w)) for w in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return accepted[0], refused


def user_show(keel, address):
    return json.loads(ctl_ok(keel, "user", "show", address, "--json").stdout)


def test_outbreak_brake(k):
    account = f"alice@{D}"
    set_conf(k, "abuse.account_messages_per_hour", "100")
    try:
        t0 = time.monotonic()
        sessions = 6
        accepted, refused = submit_many(k, account, 300, sessions)
        took = time.monotonic() - t0
        # The limit, passed at most by the sessions in flight at once.
        assert 100 <= accepted <= 100 + sessions, accepted
        assert accepted + len(refused) == 300
        codes = {c for c, _ in refused}
        assert codes <= {451, 550}, codes
        assert any(c == 451 and t.startswith("4.7.1") and
                   "abuse.account_messages_per_hour=100" in t for c, t in refused), refused[:3]
        assert any(c == 550 and t.startswith("5.7.1") and "suspended" in t.lower()
                   for c, t in refused), refused[-3:]

        # Every queued message of the account is held (none left to go out).
        rows = wait_for(lambda: (lambda r: r if all(x["state"] == HELD for x in r) else None)(
            [x for x in queue_rows(k) if x["auth_user"] == account]),
            timeout=15, what="the account's queue held")
        assert len(rows) == accepted, (len(rows), accepted)

        # The account is suspended, and keelctl user show says so.
        info = user_show(k, account)
        assert info["send_suspended"] is True
        assert "abuse.account_messages_per_hour=100" in info["suspended_reason"]
        text = ctl_ok(k, "user", "show", account).stdout
        assert "suspended since" in text, text
        # The user and postmaster have their notices.
        for who in (account, f"postmaster@{D}"):
            notes = wait_for(lambda: [m for m in stored(k, who) if b"Sending suspended" in m],
                             what=f"the notice to {who}")
            assert len(notes) == 1, len(notes)
            assert b"keelctl user unsuspend " + account.encode() in notes[0].replace(
                b"\r\n", b" ")
        # Every decision is a trace event.
        assert traced(k, "abuse", "brake: crossed abuse.account_messages_per_hour=100%")
        assert traced(k, "abuse", "held % queued outbound messages of the account")
        assert traced(k, "abuse", "refused 550 5.7.1%")

        # Another account is not affected.
        assert submit_many(k, f"carol@{D}", 2, 1) == (2, [])

        # unsuspend restores sending, the counters restarting.
        out = ctl_ok(k, "user", "unsuspend", account).stdout
        assert "may send again" in out, out
        assert user_show(k, account)["send_suspended"] is False
        assert "sending" in ctl_ok(k, "user", "show", account).stdout
        assert submit_many(k, account, 3, 1) == (3, [])
        assert traced(k, "abuse", "unsuspended by %")
        print(f"outbreak: 300 submissions in {took:.1f}s, {accepted} accepted")
    finally:
        set_conf(k, "abuse.account_messages_per_hour", "500")


def test_unsuspend_unknown_user(k):
    r = k.ctl("user", "unsuspend", f"nobody@{D}")
    assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr


def test_recipients_per_hour(k):
    account = f"bob@{D}"
    set_conf(k, "abuse.account_recipients_per_hour", "4")
    set_conf(k, "abuse.auto_suspend", "no")
    try:
        s = smtplib.SMTP_SSL("127.0.0.1", k.ports["submissions"], context=tls_context(),
                             timeout=30)
        s.login(account, PW)
        s.sendmail(account, [f"r{i}@remote.test" for i in range(3)], b"Subject: a\r\n\r\nx\r\n")
        refused = s.sendmail(account, ["r3@remote.test", "r4@remote.test"],
                             b"Subject: b\r\n\r\nx\r\n")
        s.quit()
        assert list(refused) == ["r4@remote.test"], refused
        code, text = refused["r4@remote.test"]
        assert code == 451 and "abuse.account_recipients_per_hour=4" in text.decode(), refused
        # Not suspended (abuse.auto_suspend = no), but held and noticed.
        assert user_show(k, account)["send_suspended"] is False
        wait_for(lambda: [m for m in stored(k, account) if b"Sending stopped" in m],
                 what="the notice to bob")
    finally:
        set_conf(k, "abuse.account_recipients_per_hour", "1000")
        set_conf(k, "abuse.auto_suspend", "yes")
        ctl_ok(k, "user", "unsuspend", account)


def test_messages_per_day(k):
    account = f"dave@{D}"
    set_conf(k, "abuse.account_messages_per_day", "3")
    try:
        accepted, refused = submit_many(k, account, 5, 1)
        assert accepted == 3, (accepted, refused)
        assert refused[0][0] == 451 and "abuse.account_messages_per_day=3" in refused[0][1]
        assert {c for c, _ in refused} <= {451, 550}, refused
        info = wait_for(lambda: (lambda u: u if u["send_suspended"] else None)(
            user_show(k, account)), what="dave suspended")
        assert "abuse.account_messages_per_day=3" in info["suspended_reason"], info
        accepted, refused = submit_many(k, account, 1, 1)
        assert accepted == 0 and refused[0][0] == 550, refused
        assert refused[0][1].startswith("5.7.1 Sending suspended for dave@"), refused
        # Raising the limit does not lift a suspension; unsuspend does.
        set_conf(k, "abuse.account_messages_per_day", "2000")
        assert submit_many(k, account, 1, 1)[0] == 0
        ctl_ok(k, "user", "unsuspend", account)
        assert submit_many(k, account, 1, 1) == (1, [])
    finally:
        set_conf(k, "abuse.account_messages_per_day", "2000")


def test_brake_counts_without_trace(k):
    """trace.level = off keeps no event: the brake counts in memory."""
    account = f"erin@{D}"
    set_conf(k, "trace.level", "off")
    set_conf(k, "abuse.account_messages_per_hour", "2")
    try:
        accepted, refused = submit_many(k, account, 4, 1)
        assert accepted == 2, (accepted, refused)
        assert refused[0][0] == 451 and \
            "abuse.account_messages_per_hour=2" in refused[0][1], refused
        wait_for(lambda: user_show(k, account)["send_suspended"], what="erin suspended")
        ctl_ok(k, "user", "unsuspend", account)
        assert submit_many(k, account, 2, 1) == (2, [])
    finally:
        set_conf(k, "abuse.account_messages_per_hour", "500")
        set_conf(k, "trace.level", "full")
