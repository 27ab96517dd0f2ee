"""Crash consistency (docs/reliability.md): `keelctl check`, an injected
flush failure answered with 4xx, and SIGKILL under load with nothing
acknowledged lost.

The soak test's size comes from the environment; `make soak` sets the long
form:
    KEEL_SOAK_ROUNDS    kills per round (worker round, whole-keeld round); 10
    KEEL_SOAK_MESSAGES  messages to have acknowledged, spread over the kills; 300
    KEEL_SOAK_SENDERS   concurrent SMTP connections; 4
It prints one line of figures (rounds, sent, acknowledged, found, lost,
duplicates, time)."""

import email
import imaplib
import json
import os
import random
import signal
import smtplib
import socket
import threading
import time
import uuid

import pytest

from conftest import wait_for
from smtp_helpers import D, PW, Raw, add_user, ctl_ok, data_block, message, setup_domain, \
    stored, tls_context

ROUNDS = int(os.environ.get("KEEL_SOAK_ROUNDS", "10"))
MESSAGES = int(os.environ.get("KEEL_SOAK_MESSAGES", "300"))
SENDERS = int(os.environ.get("KEEL_SOAK_SENDERS", "4"))
USERS = ("u1", "u2", "u3", "u4")


def admin_call(keel, cmd, args=None):
    """One request on the admin socket, as JSON: for commands keelctl does
    not offer (the test hook)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(keel.socket)
    s.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def check_clean(keel, data_dir=False):
    """keelctl check (through keeld, or --data-dir on a stopped one) must
    exit 0 with its ok line."""
    args = ("check", "--data-dir", keel.data_dir) if data_dir else ("check",)
    r = keel.ctl(*args)
    assert r.returncode == 0 and "\nok: " in "\n" + r.stdout, \
        f"keelctl {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


# ---- keelctl check -------------------------------------------------------------

def test_check_clean_then_names_damage(keel):
    setup_domain(keel, users=("alice", "bob"))
    s = smtplib.SMTP("127.0.0.1", keel.ports["smtp"], timeout=10)
    for i in range(3):
        s.sendmail("x@remote.test", [f"alice@{D}", f"bob@{D}"],
                   f"Subject: {i}\r\nMessage-ID: <c{i}@t>\r\n\r\nbody {i}\r\n")
    s.quit()
    out = check_clean(keel)
    assert "ok: 6 messages, 3 blobs, 1 segments checked" in out
    r = keel.ctl("check", json_out=True)
    assert r.returncode == 0
    assert r.json["clean"] is True and r.json["problems"] == [] and r.json["records"] == 3

    # One byte of the second record's data, behind the server's back.
    seg = os.path.join(keel.data_dir, "blobs", "seg-00000001")
    with open(seg, "rb") as f:
        data = f.read()
    second = data.index(b"KEELBLB1", 8)
    with open(seg, "r+b") as f:
        f.seek(second + 48 + 2)
        f.write(b"#")
    r = keel.ctl("check")
    assert r.returncode == 1
    assert "problem: blob 2: no whole record at segment 1" in r.stdout
    assert r.stdout.rstrip().endswith("damaged: 6 messages, 3 blobs, 1 segments checked")
    assert "keelctl: check: 2 problems found" in r.stderr
    r = keel.ctl("check", json_out=True)
    assert r.returncode == 1
    assert json.loads(r.stdout)["clean"] is False

    # The same on the stopped data dir, read directly.
    assert keel.stop() == 0
    r = keel.ctl("check", "--data-dir", keel.data_dir)
    assert r.returncode == 1 and "blob 2: no whole record" in r.stdout


def test_check_data_dir_errors(keel_factory, tmp_path):
    k = keel_factory()
    r = k.ctl("check", "--data-dir", str(tmp_path / "none"))
    assert r.returncode == 1
    assert r.stderr.startswith("keelctl: check: ") and "keel.db" in r.stderr
    r = k.ctl("check", "--data-dir")
    assert r.returncode == 2


# ---- the flush-failure hook -------------------------------------------------------

def test_fail_flush_hook_is_off_without_the_environment(keel_factory, monkeypatch):
    monkeypatch.delenv("KEEL_TEST_HOOKS", raising=False)
    keel = keel_factory().start()
    r = admin_call(keel, "test.fail_flush", {"fail": True})
    assert r["ok"] is False and r["code"] == "invalid"
    assert "KEEL_TEST_HOOKS=1" in r["error"]


def send_raw(port, marker):
    """(code, text) of the DATA reply for one message to bob."""
    with Raw(port) as c:
        c.ehlo()
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker=marker, size=2000)))
        return c.reply()


def test_failed_flush_answers_4xx_and_keeps_nothing(keel_factory, monkeypatch):
    monkeypatch.setenv("KEEL_TEST_HOOKS", "1")
    keel = keel_factory().start()
    setup_domain(keel, users=("bob",))
    port = keel.ports["smtp"]
    assert send_raw(port, "BEFORE")[0] == 250

    r = admin_call(keel, "test.fail_flush", {"fail": True})
    assert r == {"ok": True, "result": {"fail": True, "count": 4294967295}}
    for i in range(3):
        code, text = send_raw(port, f"FAILED{i}")
        assert 400 <= code < 500, (code, text)
    # IMAP APPEND: NO, never OK.
    imap = imaplib.IMAP4_SSL("127.0.0.1", keel.ports["imaps"], ssl_context=tls_context(),
                             timeout=30)
    imap.login(f"bob@{D}", PW)
    typ, data = imap.append("INBOX", None, None, b"Subject: APPENDFAILED\r\n\r\nx\r\n")
    assert typ == "NO", (typ, data)
    msgs = stored(keel, f"bob@{D}")
    assert len(msgs) == 1 and b"BEFORE" in msgs[0]
    assert not any(b"FAILED" in m for m in msgs)
    check_clean(keel)

    assert admin_call(keel, "test.fail_flush", {"fail": False})["ok"] is True
    assert send_raw(port, "AFTER")[0] == 250
    typ, _ = imap.append("INBOX", None, None, b"Subject: APPENDED\r\n\r\nx\r\n")
    assert typ == "OK"
    imap.logout()
    msgs = stored(keel, f"bob@{D}")
    assert len(msgs) == 3 and b"AFTER" in msgs[1] and b"APPENDED" in msgs[2]
    check_clean(keel)
    assert "event=batch_failed" in keel.read_log()


def test_fail_flush_count_and_usage(keel_factory, monkeypatch):
    monkeypatch.setenv("KEEL_TEST_HOOKS", "1")
    keel = keel_factory().start()
    setup_domain(keel, users=("bob",))
    assert admin_call(keel, "test.fail_flush", {})["code"] == "usage"
    assert admin_call(keel, "test.fail_flush", {"fail": True, "count": 0})["code"] == "usage"
    # One failing flush: the blob flush of the next delivery; then all is well.
    assert admin_call(keel, "test.fail_flush", {"fail": True, "count": 1})["ok"] is True
    assert 400 <= send_raw(keel.ports["smtp"], "ONE")[0] < 500
    assert send_raw(keel.ports["smtp"], "TWO")[0] == 250
    check_clean(keel)


# ---- SIGKILL under load ------------------------------------------------------------

class Client:
    """SENDERS threads, each with its own SMTP connection, sending messages
    with unique Message-IDs to one or two of USERS and logging every 250.
    A connection that breaks (the server was killed) is opened again.  They
    pause while `budget` messages are acknowledged: the test raises it
    before each kill, so that the MESSAGES are spread over all the kills
    (and the store, which `keelctl check` reads whole after each kill, does
    not grow without bound on a fast machine)."""

    def __init__(self, keel):
        self.keel = keel
        self.lock = threading.Lock()
        self.acked = []  # (message_id, [rcpt local parts])
        self.sent = 0
        self.refused = 0
        self.budget = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(SENDERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a sender thread hung"

    def one(self, s, rng, n):
        rcpts = rng.sample(USERS, rng.choice((1, 1, 2)))
        mid = f"<{uuid.uuid4().hex}.{n}@crash.test>"
        body = (f"From: <s@remote.test>\r\nTo: <{rcpts[0]}@{D}>\r\nSubject: crash {n}\r\n"
                f"Message-ID: {mid}\r\n\r\n" + (f"line {n} of the body\r\n") * rng.randint(1, 200))
        with self.lock:
            self.sent += 1
        s.sendmail("s@remote.test", [f"{u}@{D}" for u in rcpts], body)
        # sendmail returned: every recipient was accepted and DATA got 250.
        with self.lock:
            self.acked.append((mid, rcpts))

    def run(self, i):
        rng = random.Random(i * 7919 + int(time.time()))
        n = 0
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP("127.0.0.1", self.keel.ports["smtp"], timeout=15)
                s.ehlo("crash.test")
                while not self.stop.is_set():
                    if len(self.acked) >= self.budget:
                        time.sleep(0.005)
                        continue
                    n += 1
                    self.one(s, rng, f"{i}.{n}")
                s.quit()
            except (OSError, smtplib.SMTPException, EOFError):
                with self.lock:
                    self.refused += 1
                time.sleep(0.02)


def message_ids(keel, user):
    """Every Message-ID in the user's INBOX, with repeats, read over IMAP."""
    m = imaplib.IMAP4_SSL("127.0.0.1", keel.ports["imaps"], ssl_context=tls_context(),
                          timeout=60)
    m.login(f"{user}@{D}", PW)
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK"
    ids = []
    if int(data[0]) > 0:
        typ, items = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK"
        for it in items:
            if isinstance(it, tuple):
                ids.append(email.message_from_bytes(it[1])["Message-ID"])
    m.logout()
    return ids


def kill_worker(keel):
    old = keel.worker_pid()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (p := keel.worker_pid()) and p != old, timeout=10, interval=0.01,
             what="the master to start a new worker")
    wait_for(lambda: keel.ctl("status").returncode == 0, timeout=20, what="the admin socket")


def dead(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def kill_keeld(keel):
    """SIGKILL to the master, then to its worker: nothing stops cleanly.
    The stopped data dir must check clean before keeld starts on it again."""
    worker = keel.worker_pid()
    os.kill(keel.proc.pid, signal.SIGKILL)
    if worker:
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass
    keel.proc.wait(timeout=10)
    if worker:
        wait_for(lambda: dead(worker), timeout=10, what="the killed worker to go")
    check_clean(keel, data_dir=True)
    keel.log.close()
    keel.start()


def test_sigkill_under_load_loses_nothing_acknowledged(keel_factory, capsys):
    keel = keel_factory().start()
    setup_domain(keel, users=USERS)
    started = time.monotonic()
    client = Client(keel)
    client.start()
    rng = random.Random()
    kills = {"worker": 0, "keeld": 0}
    try:
        for kind, kill in (("worker", kill_worker), ("keeld", kill_keeld)):
            for _ in range(ROUNDS):
                done = kills["worker"] + kills["keeld"]
                client.budget = max(MESSAGES * (done + 1) // (2 * ROUNDS), done + 1)
                time.sleep(rng.uniform(0.05, 0.6))
                kill(keel)
                kills[kind] += 1
                check_clean(keel)
            # Let the round's share of the messages go through.
            wait_for(lambda: len(client.acked) >= MESSAGES * (1 + (kind == "keeld")) // 2,
                     timeout=60 + MESSAGES / 5, what="enough acknowledged messages")
    finally:
        client.join()
    check_clean(keel)

    acked = {}
    for mid, rcpts in client.acked:
        for u in rcpts:
            acked.setdefault(u, []).append(mid)
    lost, duplicates, found = [], 0, 0
    for u in USERS:
        have = message_ids(keel, u)
        counts = {}
        for mid in have:
            counts[mid] = counts.get(mid, 0) + 1
        duplicates += sum(c - 1 for c in counts.values())
        for mid in acked.get(u, []):
            if mid in counts:
                found += 1
            else:
                lost.append((u, mid))
    elapsed = time.monotonic() - started
    figures = (f"crash soak: rounds={kills['worker']}+{kills['keeld']} (worker+keeld kills) "
               f"senders={SENDERS} sent={client.sent} acknowledged={len(client.acked)} "
               f"deliveries_acknowledged={sum(len(v) for v in acked.values())} found={found} "
               f"lost={len(lost)} duplicates={duplicates} broken_connections={client.refused} "
               f"time={elapsed:.1f}s")
    with capsys.disabled():
        print("\n" + figures)
    assert kills == {"worker": ROUNDS, "keeld": ROUNDS}
    assert len(client.acked) >= MESSAGES
    assert not lost, f"{len(lost)} acknowledged deliveries lost, e.g. {lost[:5]}; {figures}"
