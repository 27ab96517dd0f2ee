"""Interception and trace export end to end (docs/trace.md, "Interception"
and "Export"): `keelctl intercept add/list/del` with --to and --dir, the
copies of what the account receives (SMTP) and sends (submission), the log
of its access events (IMAP fetch/move/expunge, POP3 RETR/DELE), nothing
the user can see, the audit log; `keelctl trace export` to mbox and jsonl."""

import base64
import email
import glob
import imaplib
import json
import mailbox
import os
import poplib
import re
import smtplib
import ssl
import time

from conftest import wait_for

PW = "correct horse battery"
D = "icpt.test"
ALICE = f"alice@{D}"   # under interception
BOB = f"bob@{D}"       # writes to alice, gets mail from her
LEA = f"lea@{D}"       # the investigator's mailbox (--to)


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ok(keel, *args, input=None):
    r = keel.ctl(*args, input=input)
    assert r.returncode == 0, f"keelctl {' '.join(args)} -> {r.returncode}: {r.stderr}"
    return r


def setup_users(keel, users=("alice", "bob", "lea")):
    ok(keel, "config", "set", "delivery.max_connections", "0")
    ok(keel, "domain", "add", D)
    for u in users:
        ok(keel, "user", "add", f"{u}@{D}", "--password-stdin", input=PW + "\n")


def writable_dir(keel, name):
    """A directory the worker may write (it runs as `keel` under root)."""
    path = os.path.join(keel.dir, name)
    os.makedirs(path)
    os.chmod(path, 0o777)
    return path


def msg(sender, rcpt, subject, msgid, body):
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
            f"Message-ID: {msgid}\r\n\r\n{body}\r\n").encode()


def smtp_in(keel, sender, rcpt, subject, msgid, body):
    with smtplib.SMTP("127.0.0.1", keel.ports["smtp"], timeout=10) as s:
        assert s.sendmail(sender, [rcpt], msg(sender, rcpt, subject, msgid, body)) == {}


def submit(keel, user, rcpts, subject, msgid, body):
    with smtplib.SMTP_SSL("127.0.0.1", keel.ports["submissions"], context=tls_context(),
                          timeout=10) as s:
        s.login(user, PW)
        assert s.sendmail(user, rcpts, msg(user, rcpts[0], subject, msgid, body)) == {}


def imap(keel, user):
    im = imaplib.IMAP4_SSL("127.0.0.1", keel.ports["imaps"], ssl_context=tls_context(),
                           timeout=10)
    im.login(user, PW)
    return im


def all_messages(keel, user):
    """{mailbox: [raw message, ...]} of every mailbox, as the user sees it."""
    im = imap(keel, user)
    out = {}
    typ, boxes = im.list()
    assert typ == "OK"
    for line in boxes:
        name = line.decode().rsplit(' "/" ', 1)[-1].strip('"')
        typ, data = im.select(f'"{name}"', readonly=True)
        assert typ == "OK", (name, data)
        out[name] = []
        if int(data[0]) > 0:
            typ, data = im.uid("FETCH", "1:*", "(BODY.PEEK[])")
            out[name] = [d[1] for d in data if isinstance(d, tuple)]
    im.logout()
    return out


def inbox(keel, user):
    return all_messages(keel, user).get("INBOX", [])


def intercept_header(raw):
    return email.message_from_bytes(raw).get("X-Keel-Intercept", "")


def copies(keel, user, direction):
    return [m for m in inbox(keel, user) if f"direction={direction}" in intercept_header(m)]


def events_in_mail(raw):
    """The JSON event lines of an event-log message (base64 text part)."""
    part = email.message_from_bytes(raw)
    text = part.get_payload(decode=True).decode()
    return [json.loads(line) for line in text.splitlines() if line]


def dir_files(path):
    return sorted(glob.glob(os.path.join(path, "*.eml")))


def dir_events(path):
    try:
        with open(os.path.join(path, "events.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def have_access_events(evs):
    got = {(e["protocol"], e["event"]) for e in evs}
    return {("imap", "fetched"), ("imap", "moved"), ("imap", "expunged"),
            ("pop3", "fetched"), ("pop3", "deleted")} <= got


def access_as_alice(keel):
    """IMAP: fetch, move to Work, expunge there; POP3: RETR and DELE."""
    im = imap(keel, ALICE)
    im.create("Work")
    im.select("INBOX")
    typ, data = im.uid("FETCH", "1", "(BODY[])")
    assert typ == "OK" and b"MARK-IN-1" in data[0][1]
    assert im.uid("MOVE", "1", "Work")[0] == "OK"
    im.select("Work")
    assert im.uid("STORE", "1", "+FLAGS", r"(\Deleted)")[0] == "OK"
    assert im.expunge()[0] == "OK"
    im.logout()
    p = poplib.POP3_SSL("127.0.0.1", keel.ports["pop3s"], context=tls_context(), timeout=10)
    p.user(ALICE)
    p.pass_(PW)
    assert b"MARK-IN-2" in b"\n".join(p.retr(1)[1])
    p.dele(1)
    p.quit()


def test_copies_and_access_events_reach_to_and_dir_unseen(keel):
    setup_users(keel)
    ok(keel, "config", "set", "intercept.event_interval", "1s")
    d = writable_dir(keel, "case-7")
    r = ok(keel, "intercept", "add", ALICE, "--to", LEA, "--case", "C-7/to")
    assert "added interception" in r.stdout
    ok(keel, "intercept", "add", ALICE, "--dir", d, "--case", "C-7/dir")

    # In over SMTP (twice: one for IMAP, one for POP3), out over submission.
    smtp_in(keel, BOB, ALICE, "hello", "<in-1@remote.test>", "MARK-IN-1")
    smtp_in(keel, BOB, ALICE, "again", "<in-2@remote.test>", "MARK-IN-2")
    submit(keel, ALICE, [BOB, "someone@remote.test"], "reply", "<out-1@icpt.test>",
           "MARK-OUT-1")

    ins = wait_for(lambda: len(copies(keel, LEA, "in")) == 2 and copies(keel, LEA, "in"),
                   timeout=15, what="two incoming copies at the --to address")
    outs = wait_for(lambda: copies(keel, LEA, "out"), timeout=15,
                    what="the outgoing copy at the --to address")
    assert len(outs) == 1 and b"MARK-OUT-1" in outs[0]
    assert b"MARK-IN-1" in b"".join(ins) and b"MARK-IN-2" in b"".join(ins)
    h = intercept_header(outs[0])
    assert "case=C-7/to" in h and f"account={ALICE}" in h
    # The copy is the message as it was sent, with its own Message-ID.
    assert email.message_from_bytes(outs[0])["Message-ID"] == "<out-1@icpt.test>"

    files = wait_for(lambda: len(dir_files(d)) == 3 and dir_files(d), timeout=15,
                     what="three message files in the --dir directory")
    texts = [open(f, "rb").read() for f in files]
    assert sum(f.endswith("-in.eml") for f in files) == 2
    assert sum(f.endswith("-out.eml") for f in files) == 1
    out_file = [t for t, f in zip(texts, files) if f.endswith("-out.eml")][0]
    assert b"MARK-OUT-1" in out_file and b"case=C-7/dir" in out_file

    # The user sees nothing extra: her own two messages, no copy, no header;
    # bob got alice's mail once and nothing else.
    mine = all_messages(keel, ALICE)
    assert sum(len(v) for v in mine.values()) == 2, mine
    assert all(b"X-Keel-Intercept" not in m for v in mine.values() for m in v)
    assert all(b"MARK-OUT-1" not in m for v in mine.values() for m in v)
    bobs = inbox(keel, BOB)
    assert len(bobs) == 1 and b"X-Keel-Intercept" not in bobs[0]

    access_as_alice(keel)
    evs = wait_for(lambda: have_access_events(dir_events(d)) and dir_events(d), timeout=20,
                   what="access events in events.jsonl")
    assert all(e["account"].lower() == ALICE and e["case"] == "C-7/dir" for e in evs)
    ids = [e["trace_id"] for e in evs]
    assert ids == sorted(set(ids)), "each event once, in order"
    moved = [e for e in evs if e["event"] == "moved"]
    assert "to=Work" in moved[0]["detail"]

    def mailed_events():
        got = []
        for m in copies(keel, LEA, "events"):
            got += events_in_mail(m)
        return have_access_events(got) and got
    mailed = wait_for(mailed_events, timeout=30, what="access events mailed to --to")
    assert all(e["case"] == "C-7/to" for e in mailed)
    # The event messages are not intercepted again, nor the copies copied.
    assert len(dir_files(d)) == 3
    # Nothing about it shows to alice: still no extra message anywhere.
    assert all(b"X-Keel-Intercept" not in m
               for v in all_messages(keel, ALICE).values() for m in v)


def test_list_del_audit_and_bad_input(keel):
    setup_users(keel)
    d = writable_dir(keel, "c1")
    ok(keel, "intercept", "add", ALICE, "--dir", d, "--case", "K1")
    ok(keel, "intercept", "add", ALICE, "--to", LEA)
    r = keel.ctl("intercept", "list", json_out=True)
    assert r.returncode == 0, r.stderr
    rows = r.json
    assert [(o["account"], o["dir"], o["to"], o["case"]) for o in rows] == [
        (ALICE, d, "", "K1"), (ALICE, "", LEA, "")]
    text = ok(keel, "intercept", "list").stdout
    assert d in text and LEA in text and "K1" in text

    # Deleting the --dir order stops its copies; the --to order goes on.
    r = ok(keel, "intercept", "del", str(rows[0]["id"]))
    assert "deleted interception" in r.stdout
    assert [o["id"] for o in keel.ctl("intercept", "list", json_out=True).json] == \
        [rows[1]["id"]]
    smtp_in(keel, BOB, ALICE, "after del", "<del-1@remote.test>", "MARK-DEL")
    wait_for(lambda: copies(keel, LEA, "in"), timeout=15, what="the --to copy")
    assert dir_files(d) == []

    audit = keel.ctl("audit", json_out=True)
    assert audit.returncode == 0, audit.stderr
    cmds = [a["command"] for a in (audit.json if isinstance(audit.json, list)
                                   else audit.json["records"])]
    assert cmds.count("intercept.add") == 2 and cmds.count("intercept.del") == 1
    assert "intercept.list" not in cmds
    assert "intercept.del" in ok(keel, "audit").stdout

    # Bad input: exit 1, a clear message, no order added.
    bad = [
        (("intercept", "add", f"nobody@{D}", "--to", LEA), "does not exist"),
        (("intercept", "add", ALICE, "--to", LEA, "--dir", d), "exactly one of"),
        (("intercept", "add", ALICE), "exactly one of"),
        (("intercept", "add", ALICE, "--to", "not an address"), "invalid address"),
        (("intercept", "add", ALICE, "--to", f"ghost@{D}"), "cannot receive mail"),
        (("intercept", "add", ALICE, "--to", ALICE.upper()), "who would see the copies"),
        (("intercept", "add", ALICE, "--dir", "relative/x"), "not an absolute path"),
        (("intercept", "del", "99"), "does not exist"),
        (("intercept", "del", "x"), "not an interception number"),
    ]
    locked = os.path.join(keel.dir, "locked")
    os.makedirs(locked)
    os.chmod(locked, 0o500)
    bad.append((("intercept", "add", ALICE, "--dir", locked), "cannot write"))
    afile = os.path.join(keel.dir, "afile")
    open(afile, "w").close()
    os.chmod(keel.dir, 0o777)  # so the worker could create under it
    bad.append((("intercept", "add", ALICE, "--dir", afile), "not a directory"))
    for args, text in bad:
        r = keel.ctl(*args)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        assert text in r.stderr, (args, r.stderr)
    assert len(keel.ctl("intercept", "list", json_out=True).json) == 1
    assert not os.listdir(locked)


def test_event_log_survives_restart_and_torn_tail(keel):
    """events_sent is kept in the store: after a restart the log goes on
    where it stopped, each event once; a torn last line is cut."""
    setup_users(keel, users=("alice",))
    d = writable_dir(keel, "c2")
    ok(keel, "intercept", "add", ALICE, "--dir", d)

    def login():
        im = imap(keel, ALICE)
        im.select("INBOX")
        im.logout()
    login()
    first = wait_for(lambda: [e for e in dir_events(d) if e["event"] == "select"],
                     timeout=15, what="the first select event")
    sent = keel.ctl("intercept", "list", json_out=True).json[0]["events_sent"]
    assert sent >= first[-1]["trace_id"] > 0
    keel.stop()
    with open(os.path.join(d, "events.jsonl"), "a") as f:
        f.write('{"trace_id": 999999, "ev')  # a crash mid-append
    keel.start()
    login()
    evs = wait_for(lambda: len([e for e in dir_events_tolerant(d) if e["event"] == "select"])
                   >= 2 and dir_events(d), timeout=15, what="the select after the restart")
    ids = [e["trace_id"] for e in evs]
    assert ids == sorted(set(ids)) and 999999 not in ids


def dir_events_tolerant(path):
    """The parsable lines (the torn one stays until the next append)."""
    out = []
    try:
        with open(os.path.join(path, "events.jsonl")) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return out


def mbox_messages(path):
    box = mailbox.mbox(path, create=False)
    try:
        return [(m["Message-ID"], m.get_payload(), m.get_from()) for m in box]
    finally:
        box.close()


def test_trace_export_mbox_and_jsonl(keel):
    setup_users(keel, users=("alice", "bob"))
    smtp_in(keel, "x@remote.test", ALICE, "one", "<exp-1@remote.test>",
            "From the top\r\n>From quoted\r\nbody one")
    smtp_in(keel, "y@remote.test", ALICE, "two", "<exp-2@remote.test>", "body two")
    smtp_in(keel, "y@remote.test", BOB, "bob", "<exp-3@remote.test>", "not alice's")
    im = imap(keel, ALICE)
    im.select("INBOX")
    assert im.uid("FETCH", "1", "(BODY[])")[0] == "OK"
    im.logout()
    out = os.path.join(keel.dir, "out")
    os.makedirs(out)

    # mbox by account: both of alice's messages, From_ lines, mboxrd quoting
    # (Python's reader keeps the quotes; undoing them gives the body back).
    path = os.path.join(out, "alice.mbox")
    r = ok(keel, "trace", "export", "--account", ALICE, "--format", "mbox", "--output", path)
    assert "wrote 2 messages" in r.stdout
    got = mbox_messages(path)
    assert [g[0] for g in got] == ["<exp-1@remote.test>", "<exp-2@remote.test>"]
    assert len(got[0][1].splitlines()) == 3, "a quoted From line starts no message"
    unquoted = re.sub(r"^>(>*From )", r"\1", got[0][1], flags=re.M)
    assert "From the top\n>From quoted\nbody one" in unquoted
    assert got[0][2].startswith("x@remote.test ")
    assert os.stat(path).st_mode & 0o777 == 0o600

    # mbox by Message-ID: that message only, wherever it lies.
    path = os.path.join(out, "one.mbox")
    ok(keel, "trace", "export", "--message-id", "<exp-3@remote.test>", "--format", "mbox",
       "--output", path)
    assert [g[0] for g in mbox_messages(path)] == ["<exp-3@remote.test>"]

    # --since in the future / --until in the past: nothing; around now: all.
    tomorrow = time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400))
    yesterday = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    for args, n in ((("--since", tomorrow), 0), (("--until", yesterday), 0),
                    (("--since", "1h"), 2), (("--since", yesterday, "--until", tomorrow), 2)):
        path = os.path.join(out, "w.mbox")
        ok(keel, "trace", "export", "--account", ALICE, *args, "--format", "mbox",
           "--output", path)
        assert len(mbox_messages(path)) == n, args

    # jsonl by account: every line one JSON event of alice, access included.
    def account_lines():
        path = os.path.join(out, "alice.jsonl")
        ok(keel, "trace", "export", "--account", ALICE, "--format", "jsonl", "--output", path)
        with open(path) as f:
            lines = [json.loads(line) for line in f]
        return any(e["event"] == "fetched" for e in lines) and lines
    lines = wait_for(account_lines, timeout=10, what="the fetch event in the export")
    assert all(e["account"].lower() == ALICE for e in lines)
    assert {"delivered", "fetched"} <= {e["event"] for e in lines}

    # jsonl by Message-ID: the SMTP session's events of that message.
    path = os.path.join(out, "one.jsonl")
    ok(keel, "trace", "export", "--message-id", "<exp-2@remote.test>", "--format", "jsonl",
       "--output", path)
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    assert lines and {"accepted", "delivered"} <= {e["event"] for e in lines}
    assert all(e["queue_id"] for e in lines)
    assert not any("exp-1" in e["message_id"] for e in lines)
    ok(keel, "trace", "export", "--message-id", "<exp-2@remote.test>", "--since", tomorrow,
       "--format", "jsonl", "--output", path)
    assert open(path).read() == ""

    # Bad input: exit 1 (2 for wrong usage), a clear message, no file left behind.
    path = os.path.join(out, "bad")
    for args, text in (
            (("--account", ALICE, "--message-id", "<x@y>", "--format", "mbox"), "exactly one"),
            (("--account", ALICE, "--format", "csv"), "--format must be"),
            (("--account", f"nobody@{D}", "--format", "mbox"), "does not exist")):
        r = keel.ctl("trace", "export", *args, "--output", path)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert text in r.stderr, (args, r.stderr)
    # A time keelctl cannot read is wrong usage (exit 2), as in `keelctl trace`.
    r = keel.ctl("trace", "export", "--account", ALICE, "--format", "mbox", "--since", "soon",
                 "--output", path)
    assert r.returncode == 2 and "bad --since 'soon'" in r.stderr, (r.returncode, r.stderr)
    r = keel.ctl("trace", "export", "--account", ALICE, "--format", "mbox")
    assert r.returncode == 1 and "--output" in r.stderr
    assert sorted(os.listdir(out)) == ["alice.jsonl", "alice.mbox", "one.jsonl", "one.mbox",
                                       "w.mbox"]
