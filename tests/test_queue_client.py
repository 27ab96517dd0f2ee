"""The outbound SMTP client against a receiver that shows how it was spoken
to (docs/queue.md, "The SMTP client"): PIPELINING (RFC 2920) really
pipelines, DSN parameters (RFC 3461) are passed on, several messages to
one destination share a connection, and a receiver without DSN gets none.

aiosmtpd offers neither PIPELINING nor DSN, so the receiver here is a small
hand-written one on 127.0.0.5: it answers MAIL late on purpose and notes,
for every command, whether the previous reply had been sent when it came."""

import queue
import smtplib
import socket
import threading
import time

import pytest

from conftest import wait_for
from smtp_helpers import D, PW, ctl_ok, queue_rows, setup_domain, stored, tls_context

HOST = "127.0.0.5"


class Receiver:
    """One thread per connection; records (command, replies_sent_before)
    per connection and every message's envelope and data."""

    def __init__(self, extensions, mail_delay=0.3, data_delay=0.0, ehlo=True,
                 rcpt_reply="250 2.1.5 Ok"):
        self.extensions = extensions
        self.mail_delay = mail_delay
        self.data_delay = data_delay
        self.ehlo = ehlo
        self.rcpt_reply = rcpt_reply
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.connections = []   # per connection: list of (line, replies sent so far)
        self.messages = []      # dicts: mail, rcpts, data, conn
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.stopping = False
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.sock.close()

    def accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        with self.lock:
            log = []
            self.connections.append(log)
            index = len(self.connections) - 1
            self.active += 1
            self.peak = max(self.peak, self.active)
        conn.settimeout(10)
        f = conn.makefile("rb")
        lines = queue.Queue()
        state = {"replies": 0}

        def read():
            # Notes each line as it arrives, with the replies sent by then,
            # while the other thread may still be sleeping over MAIL.
            try:
                for line in f:
                    with self.lock:
                        log.append((line.rstrip(b"\r\n").decode(errors="replace"),
                                    state["replies"]))
                    lines.put(line)
            except OSError:
                pass
            lines.put(b"")
        threading.Thread(target=read, daemon=True).start()

        def reply(text):
            # Counted before it is sent: the client may answer it at once.
            with self.lock:
                state["replies"] += 1
            conn.sendall(text.encode() + b"\r\n")

        reply("220 receiver.test ESMTP")
        mail, rcpts = None, []
        try:
            while True:
                line = lines.get(timeout=10)
                if not line:
                    return
                cmd = line.rstrip(b"\r\n").decode()
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO" and not self.ehlo:
                    reply("502 5.5.1 EHLO not here")
                elif verb == "HELO":
                    reply("250 receiver.test")
                elif verb == "EHLO":
                    ext = ["receiver.test"] + self.extensions
                    reply("\r\n".join(f"250{'-' if i < len(ext) - 1 else ' '}{e}"
                                       for i, e in enumerate(ext)))
                elif verb == "MAIL":
                    time.sleep(self.mail_delay)
                    mail, rcpts = cmd, []
                    reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    if self.rcpt_reply.startswith("2"):
                        rcpts.append(cmd)
                    reply(self.rcpt_reply)
                elif verb == "DATA":
                    reply("354 go ahead")
                    data = b""
                    while True:
                        chunk = lines.get(timeout=10)
                        if chunk in (b".\r\n", b""):
                            break
                        data += chunk[1:] if chunk.startswith(b".") else chunk
                    time.sleep(self.data_delay)
                    with self.lock:
                        self.messages.append({"mail": mail, "rcpts": rcpts, "data": data,
                                              "conn": index})
                    reply(f"250 2.0.0 Ok: queued as R{len(self.messages)}")
                elif verb == "RSET":
                    reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    reply("221 2.0.0 Bye")
                    return
                else:
                    reply("502 5.5.2 not here")
        except (OSError, queue.Empty):
            return
        finally:
            with self.lock:
                self.active -= 1
            conn.close()

    def commands(self, index):
        """The commands of connection index, without the message data."""
        out, in_data = [], False
        for cmd, sent in self.connections[index]:
            if in_data:
                in_data = cmd != "."
                continue
            out.append((cmd, sent))
            in_data = cmd.upper() == "DATA"
        return out


@pytest.fixture
def receivers():
    made = []

    def make(extensions, **kw):
        r = Receiver(extensions, **kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


def route_to(keel, domain, r):
    ctl_ok(keel, "config", "set", "delivery.routes", f"{domain}=relay:{HOST}:{r.port}")


def submit(keel, rcpts, subject, mail_options=(), rcpt_options=(), count=1):
    """count messages, each to all of rcpts, over one session."""
    s = smtplib.SMTP_SSL("127.0.0.1", keel.ports["submissions"], context=tls_context(),
                         timeout=30)
    s.login(f"alice@{D}", PW)
    for _ in range(count):
        msg = (f"From: <alice@{D}>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject.replace(' ', '-')}.{time.time_ns()}@client.test>\r\n"
               f"\r\nHello.\r\n")
        assert s.sendmail(f"alice@{D}", rcpts, msg.encode(), list(mail_options),
                          list(rcpt_options)) == {}
    s.quit()


def delivered(keel, n):
    rows = queue_rows(keel)
    return len(rows) >= n and all(r["state"] == 3 for r in rows) and rows


def test_pipelining_and_dsn_parameters_passed_on(keel, receivers):
    setup_domain(keel, users=("alice",))
    r = receivers(["PIPELINING", "SIZE 10000000", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"])
    route_to(keel, "pipe.test", r)
    # Both messages wait in the queue, then leave together.
    submit(keel, ["one@pipe.test", "two@pipe.test"], "first",
           mail_options=["RET=HDRS", "ENVID=case+2B42"],
           rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;one@pipe.test"])
    submit(keel, ["three@pipe.test"], "second")
    ctl_ok(keel, "config", "set", "delivery.max_connections", "10")
    wait_for(lambda: delivered(keel, 3), timeout=20, what="3 recipients delivered")
    assert len(r.messages) == 2, r.messages

    # Several messages to one destination: one connection.
    assert {m["conn"] for m in r.messages} == {0}, r.messages

    first = next(m for m in r.messages if b"Subject: first" in m["data"])
    second = next(m for m in r.messages if b"Subject: second" in m["data"])
    # DSN (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on each RCPT.
    assert "RET=HDRS" in first["mail"] and "ENVID=case+2B42" in first["mail"], first
    assert len(first["rcpts"]) == 2
    for rc in first["rcpts"]:
        # (smtplib gives every RCPT the same options.)
        assert "NOTIFY=SUCCESS,FAILURE" in rc and "ORCPT=rfc822;one@pipe.test" in rc, rc
    # A message sent without DSN parameters gets none invented.
    assert "RET=" not in second["mail"] and "ENVID=" not in second["mail"]
    assert all("NOTIFY=" not in rc for rc in second["rcpts"])

    # PIPELINING: the RCPTs were on the wire before the (late) MAIL reply.
    log = r.commands(0)
    for i, (cmd, sent) in enumerate(log):
        if cmd.upper().startswith("MAIL FROM"):
            rcpt_after = log[i + 1]
            assert rcpt_after[0].upper().startswith("RCPT TO"), log
            assert rcpt_after[1] == sent, f"RCPT waited for MAIL's reply: {log}"


def test_no_pipelining_no_dsn_receiver_is_spoken_to_plainly(keel, receivers):
    setup_domain(keel, users=("alice",))
    r = receivers(["SIZE 10000000", "8BITMIME"], mail_delay=0.1)
    route_to(keel, "plain.test", r)
    submit(keel, ["one@plain.test", "two@plain.test"], "plain",
           mail_options=["RET=FULL", "ENVID=xyz"],
           rcpt_options=["NOTIFY=DELAY", "ORCPT=rfc822;one@plain.test"])
    ctl_ok(keel, "config", "set", "delivery.max_connections", "10")
    wait_for(lambda: delivered(keel, 2), timeout=20, what="2 recipients delivered")
    m = r.messages[0]
    # No DSN extension: the parameters are not passed (RFC 3461 section 4).
    assert "RET=" not in m["mail"] and "ENVID=" not in m["mail"], m
    assert all("NOTIFY=" not in rc and "ORCPT=" not in rc for rc in m["rcpts"]), m
    # No PIPELINING: every command waited for the reply before it.
    log = r.commands(0)
    for i in range(1, len(log)):
        if log[i][0].upper().startswith(("RCPT", "DATA")):
            assert log[i][1] > log[i - 1][1], f"{log[i][0]} did not wait: {log}"


def test_helo_when_ehlo_is_refused(keel, receivers):
    setup_domain(keel, users=("alice",))
    r = receivers([], mail_delay=0, ehlo=False)
    route_to(keel, "old.test", r)
    submit(keel, ["one@old.test"], "helo", mail_options=["RET=HDRS"])
    t0 = time.monotonic()
    ctl_ok(keel, "config", "set", "delivery.max_connections", "10")
    wait_for(lambda: delivered(keel, 1), timeout=20, what="delivered over HELO")
    # Unpausing the queue wakes it: no wait for its 10 s poll.
    assert time.monotonic() - t0 < 5, "the queue waited for its poll after the change"
    cmds = [c for c, _ in r.commands(0)]
    assert cmds[0].startswith("EHLO ") and cmds[1].startswith("HELO "), cmds
    # A plain SMTP server gets no ESMTP parameters at all.
    assert r.messages[0]["mail"] == f"MAIL FROM:<alice@{D}>", r.messages


def test_concurrency_per_destination_and_overall(keel, receivers):
    """A backlog spreads over as many sessions as the limits allow, and no
    more: delivery.max_connections_per_domain per destination,
    delivery.max_connections in all."""
    setup_domain(keel, users=("alice",))
    r = receivers(["PIPELINING"], mail_delay=0, data_delay=0.02)
    ctl_ok(keel, "config", "set", "delivery.routes",
           ",".join(f"{d}=relay:{HOST}:{r.port}" for d in ("c1.test", "c2.test", "c3.test")))
    ctl_ok(keel, "config", "set", "delivery.max_connections_per_domain", "2")
    submit(keel, ["x@c1.test"], "c1", count=150)
    ctl_ok(keel, "config", "set", "delivery.max_connections", "10")
    wait_for(lambda: delivered(keel, 150), timeout=60, what="150 delivered")
    assert r.peak == 2, f"peak {r.peak} sessions to one domain with a limit of 2"

    ctl_ok(keel, "config", "set", "delivery.max_connections", "0")
    for d in ("c1.test", "c2.test", "c3.test"):
        submit(keel, [f"y@{d}"], d, count=100)
    r.peak = 0
    ctl_ok(keel, "config", "set", "delivery.max_connections", "3")
    wait_for(lambda: delivered(keel, 450), timeout=90, what="450 delivered")
    assert r.peak == 3, f"peak {r.peak} sessions with delivery.max_connections 3"


def test_no_bounce_for_the_null_sender(keel, receivers):
    """A message from <> (a bounce itself) that fails gets no DSN (RFC 5321
    section 4.5.5): nothing is queued back, nothing lands anywhere."""
    setup_domain(keel, users=("alice",))
    r = receivers([], mail_delay=0, rcpt_reply="550 5.1.1 no such user here")
    route_to(keel, "gone.test", r)
    ctl_ok(keel, "alias", "add", f"fwd@{D}", "someone@gone.test")
    s = smtplib.SMTP("127.0.0.1", keel.ports["smtp"], timeout=10)
    s.sendmail("", [f"fwd@{D}"], b"From: MAILER-DAEMON@else.test\r\nSubject: bounce\r\n"
               b"\r\nA bounce.\r\n")
    s.quit()
    ctl_ok(keel, "config", "set", "delivery.max_connections", "10")
    wait_for(lambda: any(row["state"] == 4 for row in queue_rows(keel)), timeout=20,
             what="the forwarded bounce failed")
    time.sleep(1.5)
    rows = queue_rows(keel)
    assert len(rows) == 1 and rows[0]["rcpt"] == "someone@gone.test", rows
    assert "550 5.1.1" in rows[0]["last_reply"], rows


def test_8bitmime_and_smtputf8_to_a_receiver_without_them(keel, receivers):
    """docs/queue.md: an 8-bit message goes to a server without 8BITMIME as
    it is, with no BODY= parameter; a message that needs SMTPUTF8 fails at
    once (553 5.6.7, no downgrade) and its sender gets the bounce."""
    setup_domain(keel, users=("alice",))
    r = receivers(["SIZE 10000000"], mail_delay=0)
    route_to(keel, "seven.test", r)
    s = smtplib.SMTP_SSL("127.0.0.1", keel.ports["submissions"], context=tls_context(),
                         timeout=30)
    s.login(f"alice@{D}", PW)
    eight = "From: <alice@{}>\r\nSubject: 8bit\r\n\r\nGrüße aus Köln.\r\n".format(D).encode()
    assert s.sendmail(f"alice@{D}", ["one@seven.test"], eight, ["BODY=8BITMIME"]) == {}
    intl = ("From: <alice@{}>\r\nTo: <jürgen@seven.test>\r\nSubject: intl\r\n\r\n"
            "Hallo.\r\n").format(D).encode()
    assert s.sendmail(f"alice@{D}", ["jürgen@seven.test"], intl, ["SMTPUTF8"]) == {}
    s.quit()
    ctl_ok(keel, "config", "set", "delivery.max_connections", "10")
    wait_for(lambda: len(queue_rows(keel)) == 2 and
             all(row["state"] in (3, 4) for row in queue_rows(keel)), timeout=20,
             what="both messages tried")
    rows = {row["rcpt"]: row for row in queue_rows(keel)}
    assert rows["one@seven.test"]["state"] == 3, rows
    assert len(r.messages) == 1, r.messages
    m = r.messages[0]
    assert "BODY=" not in m["mail"], m
    assert "Grüße aus Köln.".encode() in m["data"], m
    failed = rows["jürgen@seven.test"]
    assert failed["state"] == 4 and "553 5.6.7" in failed["last_reply"], failed
    wait_for(lambda: any(b"5.6.7" in x for x in stored(keel, f"alice@{D}")), timeout=20,
             what="the SMTPUTF8 bounce in alice's INBOX")
