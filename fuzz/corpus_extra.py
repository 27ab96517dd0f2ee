#!/usr/bin/env python3
"""Writes the extra seed inputs of fuzz/corpus/NAME/ (real client input, one
file each, named seed_NN); re-running rewrites the same files.  The
hand-written seeds beside them stay as they are."""
import json
import os

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def req(cmd, **args):
    return json.dumps({"cmd": cmd, "args": args} if args else {"cmd": cmd})


ADMIN = [
    req("status"), req("reload"), req("domain.add", name="example.test"),
    req("domain.del", name="example.test"), req("domain.list"),
    req("domain.set", name="example.test", source_ip="192.0.2.1", ehlo_name="mx.example.test"),
    req("domain.check", name="example.test"),
    req("user.add", address="ann@example.test", name="Ann Example", password="correct horse"),
    req("user.add", address="bob@example.test", quota="50M"),
    req("user.add", address="carl@example.test", quota=1048576),
    req("user.list", domain="example.test"), req("user.show", address="ann@example.test"),
    req("user.passwd", address="ann@example.test", password="battery staple"),
    req("user.rename", old="ann@example.test", new="anna@example.test", alias=False),
    req("user.enable", address="ann@example.test"), req("user.disable", address="ann@example.test"),
    req("user.set", address="ann@example.test", quota="2G"),
    req("user.del", address="ann@example.test"),
    req("alias.add", address="info@example.test", targets=["ann@example.test", "x@remote.test"]),
    req("alias.del", address="info@example.test"), req("alias.list"),
    req("group.add", address="staff@example.test"), req("group.del", address="staff@example.test"),
    req("group.list"),
    req("group.member.add", group="staff@example.test", member="ann@example.test"),
    req("group.member.del", group="staff@example.test", member="ann@example.test"),
    req("config.list"), req("config.get", key="smtp.max_recipients"),
    req("config.set", key="smtp.max_message_size", value="10M"),
    req("config.unset", key="smtp.max_message_size"),
    req("queue.list", domain="remote.test", state="deferred"), req("queue.show", id="Q1a2b3c"),
    req("queue.hold", ids=["Q1", "Q2"]), req("queue.release", ids=["Q1"]),
    req("queue.retry", all=True), req("queue.delete", ids=["Q1"]), req("queue.bounce", ids=["Q9"]),
    req("queue.stats"), req("jobs"),
    req("trace.query", sender="a@b.test", since="2026-01-01T00:00:00Z", limit=100),
    req("audit.list", since="1d"), req("audit.verify"),
    req("auth.blocks"), req("auth.unblock", key="127.0.0.2"),
    req("auth.unblock", key="ann@example.test"),
    # Broken ones: each error path.
    '{"cmd": "user.add", "args": {"address": "a@b.test", "address": "c@d.test"}}',
    '{"cmd": "user.add", "args": [1, 2]}', '{"cmd": 7}', '[]', '{"cmd": "nope"}',
    '{"cmd": "user.add", "args": {"address": "a\\u0000b@example.test"}}',
    '{"cmd": "user.add", "args": {"address": "\\"quoted\\"@example.test"}}',
    '{"cmd": "user.add", "args": {"address": "a@[192.0.2.1]", "quota": -5}}',
    '{"cmd": "user.add", "args": {"address": "x@y", "quota": "12Q"}}',
    '{"cmd": "alias.add", "args": {"address": "a@b.test", "targets": []}}',
    '{"cmd": "status", "args": null}', '{"cmd": "status"', '\xef\xbb\xbf{"cmd":"status"}',
]

SMTP = [
    "EHLO client.example.test\r\nMAIL FROM:<a@remote.test> SIZE=1000 BODY=8BITMIME\r\n",
    "MAIL FROM:<a@remote.test> SIZE=99999999999999999999\r\n",
    "MAIL FROM:<a@remote.test> SIZE=10 SIZE=20\r\n",
    "MAIL FROM:<a@remote.test> FOO=BAR\r\n", "MAIL FROM:<a@remote.test> AUTH=<>\r\n",
    "MAIL FROM:<`rm -rf /`@remote.test>\r\n", "MAIL FROM:<$(id)|x;y&z@remote.test>\r\n",
    "MAIL FROM:<\"a b\"@remote.test> RET=HDRS ENVID=QQ+2Bx\r\n",
    "RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.test\r\n",
    "RCPT TO:<postmaster>\r\n", "RCPT TO:<@relay.test:b@example.test>\r\n",
    "MAIL FROM:<ü@exämple.test> SMTPUTF8\r\n", "BDAT 100 LAST\r\n", "BDAT 0\r\n",
    "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "AUTH LOGIN\r\n", "STARTTLS\r\n", "HELO x\r\n",
    "VRFY bob\r\n", "EXPN staff\r\n", "NOOP hello\r\n", "HELP\r\n", "RSET\r\n", "QUIT\r\n",
    "MAIL FROM:<>\r\n", "MAIL  FROM:<a@b>\r\n", "mail from:<A@B.TEST>\r\n", "RCPT TO:<b@[127.0.0.1]>\r\n",
    "RCPT TO:<b@[IPv6:::1]>\r\n", "DATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\n",
    "EHLO " + "a" * 600 + "\r\n",
]

IMAP = [
    "a LOGIN alice secret\r\nb SELECT INBOX\r\nc LOGOUT\r\n",
    "a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n", "a APPEND INBOX (\\Seen) {4294967296}\r\n",
    "a APPEND INBOX {18446744073709551615}\r\n", "a LOGIN \"al\x00ice\" x\r\n",
    "a SEARCH " + "(" * 1000 + "ALL" + ")" * 1000 + "\r\n",
    "a CREATE \"\xff\xfe\"\r\n", "a SEARCH CHARSET UTF-8 SUBJECT \"\xc3\x28\"\r\n",
    "a SEARCH CHARSET KOI8-R ALL\r\n", "a STATUS INBOX (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ)\r\n",
    "a LIST \"\" \"*\" RETURN (SPECIAL-USE CHILDREN)\r\n", "a LSUB \"\" %\r\n",
    "a UID STORE 1:* +FLAGS.SILENT (\\Deleted) (UNCHANGEDSINCE 5)\r\n",
    "a UID MOVE 1,3:5 Trash\r\n", "a UID EXPUNGE 1:2\r\n", "a ENABLE QRESYNC CONDSTORE\r\n",
    "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
    "a SORT (REVERSE DATE) UTF-8 ALL\r\n", "a GETQUOTAROOT INBOX\r\n", "a NAMESPACE\r\n",
    "a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n", "a IDLE\r\nDONE\r\n",
    "a RENAME \"a b\" \"c&AOk-d\"\r\n", "a FETCH 1 (BODY[1.2.HEADER] BODY[TEXT]<0.10>)\r\n",
    "a SEARCH OR FROM a SUBJECT {3}\r\nabc NOT SEEN\r\n", "a CAPABILITY\r\n", "a NOOP\r\n",
    "a EXAMINE \"Sent Items\"\r\n", "* BAD\r\n", "a\r\n", "a LOGIN " + "x" * 9000 + " y\r\n",
]

POP3 = [
    "USER alice@example.test\r\nPASS " + "p" * 5000 + "\r\n", "APOP alice 0123456789abcdef0123456789abcdef\r\n",
    "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "AUTH PLAIN\r\n*\r\n", "CAPA\r\n", "STLS\r\n",
    "TOP 1 0\r\n", "TOP 1 99999999999999999999\r\n", "LIST 4294967296\r\n", "RETR -1\r\n",
    "UIDL 1 2\r\n", "USER " + "u" * 3000 + "\r\n", "NOOP\r\n", "user bob\r\n", "QUIT extra\r\n",
    "PASS\r\n", "DELE 0\r\n", "LIST\r\n.\r\n", "\x00\r\n", "RETR 1\x00\r\n", "USER a b c d\r\n",
    "XTND XMIT\r\n", "LAST\r\n", "AUTH\r\n", "AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n",
]

ADDRESS = [
    "a@b.test", "<a@b.test>", "\"a b\"@b.test", "a+tag@sub.b.test", "user@[IPv6:2001:db8::1]",
    "x@[192.0.2.1]", "@r1.test,@r2.test:a@b.test", "Postmaster", "ü@bücher.test",
    "a.b.c@d", "a..b@c.test", ".a@b.test", "a@-b.test", "a@b_c.test", "a@" + "x" * 300,
    "x" * 70 + "@b.test", "\"\\\"\"@b.test", "a@b.test.", "<>", "a@@b", "`id`@b.test",
    "$(reboot)@b.test", "a;b|c&d@b.test", "a@xn--bcher-kva.test", "\"\"@b.test",
]

SMTP_REPLY = [
    "220 mx.remote.test ESMTP ready\r\n", "250-mx.remote.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
    "250-STARTTLS\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n",
    "421 4.3.2 shutting down\r\n", "451 4.7.1 greylisted\r\n", "452 4.5.3 too many recipients\r\n",
    "550 5.7.1 <a@b>: Relay access denied\r\n", "354 go ahead\r\n", "250 2.0.0 Ok: queued as ABC\r\n",
    "250-SIZE 99999999999999999999\r\n250 AUTH PLAIN LOGIN\r\n", "2500 bad\r\n", "25\r\n",
    "250-\r\n", "999 x\r\n", "250 " + "x" * 2000 + "\r\n", "220-a\r\n221 b\r\n", "220\r\n",
    "554 5.7.0 \x00nul\r\n", "250-a\n250 b\n", "250 \xff\xfe\r\n", "530 5.7.0 Must issue STARTTLS first\r\n",
]

HEADER = [
    "From: a@b.test\r\nTo: " + ", ".join(f"u{i}@x.test" for i in range(200)) + "\r\n\r\nbody\r\n",
    "Subject: =?UTF-8?B?w6k=?=\r\n\r\n", "Received: from x\r\n\tby y; Mon, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
    "X: " + "y" * 5000 + "\r\n\r\n", ":\r\n\r\n", "A\r\n B\r\n\r\n", "Message-ID: <a@b>\r\nIn-Reply-To: <c@d>\r\n\r\n",
    "From: \"A, B\" <a@b.test>, (comment) c@d.test\r\n\r\n", "To: undisclosed-recipients:;\r\n\r\n",
    "Date: 31 Feb 2026 25:61:61 +9999\r\n\r\n", "Content-Type: text/plain; charset=\"utf-8\"\r\n\r\n",
    "\r\n", "From a@b Mon Jan 1\r\nFrom: a\r\n\r\n", "Sender: \x00\r\n\r\n", "K: v\nK2: v2\n\nbody",
]

CONFIG = [
    "hostname = mx.example.test\n", "data_dir = /tmp/keel\nworkers = 2\n", "log = stderr\nlog_level = debug\n",
    "smtp.listen = 127.0.0.1:25\n", "submission.listen = [::1]:587, 127.0.0.1:587\n",
    "imap.listen = 0.0.0.0:143\nimaps.listen = 0.0.0.0:993\n", "pop3.listen = 127.0.0.1:110\n",
    "tls.cert = /etc/keel/cert.pem\ntls.key = /etc/keel/key.pem\n", "admin.socket = /run/keel.sock\n",
    "store = sqlite\n", "user = keel\n", "workers = 0\n", "workers = 99999999999999999999\n",
    "unknown = x\n", "= x\n", "hostname\n", "hostname = a\nhostname = b\n", "# only a comment\n",
    "smtp.listen = 127.0.0.1:99999\n", "smtp.listen = [::1\n", "log_level = loud\n",
    "data_dir = relative\n", "hostname = " + "h" * 300 + "\n", "\xef\xbb\xbfhostname = x\n",
]


def mime(parts, boundary="b"):
    body = "".join(f"--{boundary}\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(parts))
    return (f"From: a@b.test\r\nTo: c@d.test\r\nSubject: {parts} parts\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n{body}--{boundary}--\r\n")


def nested(depth):
    head = ""
    tail = ""
    for i in range(depth):
        head += f"Content-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n--n{i}\r\n"
        tail = f"\r\n--n{i}--\r\n" + tail
    return "From: a@b.test\r\n" + head + "Content-Type: text/plain\r\n\r\nleaf" + tail


MIME = [
    mime(1), mime(3), mime(50), mime(200), nested(5), nested(40),
    "Content-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubject: inner\r\n\r\nbody\r\n",
    "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=E9\r\n",
    "Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename*=UTF-8''%C3%A9.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n",
    "Content-Type: multipart/alternative; boundary=\"\"\r\n\r\n--\r\n\r\n",
    "Content-Type: multipart/mixed\r\n\r\nno boundary\r\n", "Content-Type: ;;;\r\n\r\n",
    "To: " + ", ".join(f"u{i}@x.test" for i in range(500)) + "\r\nCc: a@b, <c@d>\r\n\r\n",
    "From: =?UTF-8?Q?=C3=A9?= <a@b.test>\r\nReply-To: g: a@b, c@d;\r\n\r\n",
    "Content-Language: en\r\nContent-Location: http://x\r\nContent-MD5: abc\r\n\r\n",
    mime(2, boundary="x" * 200), "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nFrom: q@r\r\n\r\nhi\r\n--d--\r\n",
]

SETS = {"admin": ADMIN, "smtp": SMTP, "imap": IMAP, "pop3": POP3, "address": ADDRESS,
        "smtp_reply": SMTP_REPLY, "header": HEADER, "config": CONFIG, "mime": MIME}

for name, seeds in SETS.items():
    d = os.path.join(TOP, name)
    os.makedirs(d, exist_ok=True)
    for i, s in enumerate(seeds):
        data = s.encode("latin-1") if not any(ord(c) > 255 for c in s) else s.encode()
        with open(os.path.join(d, f"seed_{i:02d}"), "wb") as f:
            f.write(data)
