"""SMTP against hostile or broken clients: message smuggling with bare CR
and LF, STARTTLS command injection, the classic open-relay tricks, and the
limits (sizes, recipients, line lengths, errors, connections per IP, hop
count), each a live setting."""

import time

import pytest

from conftest import wait_for

from smtp_helpers import (D, Raw, data_block, mailbox_count, message,
                          queue_rows, send_message, set_conf, setup_domain, sql, stored,
                          tls_context)


@pytest.fixture
def mx(keel):
    setup_domain(keel, users=("alice", "bob", "victim"))
    return keel


# ---- DATA: only <CRLF>.<CRLF> ends it ---------------------------------------

SMUGGLE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n", b"\r.\r\n"]
SMUGGLED = (f"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@{D}>\r\nDATA\r\n"
            "smuggled\r\n").encode()


def smuggle(port, end):
    """Sends one message to bob that hides a second one to victim behind
    end; returns the reply to the message and the codes of every reply
    after it, up to the one to QUIT."""
    with Raw(port) as c:
        c.ehlo()
        c.ok("MAIL FROM:<sender@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("DATA", 354)
        c.send(b"Subject: smuggle\r\n\r\nline1" + end + SMUGGLED + b".\r\n")
        verdict = c.reply()
        # Had end ended the message, MAIL, RCPT, DATA and the smuggled
        # message would each have been answered before QUIT.
        c.send("QUIT\r\n")
        after = []
        while not after or after[-1] != 221:
            after.append(c.reply()[0])
        return verdict, after


def test_smuggling_control_real_terminator_does_end(mx):
    """The check below can fail: with a real <CRLF>.<CRLF> the same bytes
    are two messages."""
    verdict, after = smuggle(mx.ports["smtp"], b"\r\n.\r\n")
    assert verdict[0] == 250
    assert after == [250, 250, 354, 250, 221]
    assert mailbox_count(mx, f"victim@{D}") == 1
    assert stored(mx, f"victim@{D}")[0].endswith(b"\r\nsmuggled\r\n")


@pytest.mark.parametrize("mode", ["reject", "normalize"])
def test_bare_cr_lf_never_end_data(mx, mode):
    if mode == "normalize":
        set_conf(mx, "smtp.bare_newline", "normalize")
    for end in SMUGGLE_ENDS:
        verdict, after = smuggle(mx.ports["smtp"], end)
        if mode == "reject":
            assert verdict[0] == 550 and verdict[1].startswith("5.5.2"), (end, verdict)
        else:
            assert verdict[0] == 250, (end, verdict)
        assert after == [221], (end, after)
    assert mailbox_count(mx, f"victim@{D}") == 0
    assert queue_rows(mx) == []
    msgs = stored(mx, f"bob@{D}")
    assert len(msgs) == (0 if mode == "reject" else len(SMUGGLE_ENDS))
    for m in msgs:
        # One message each, holding the would-be second one as text, with
        # every line end a CRLF.
        body = m.split(b"\r\n\r\n", 1)[1]
        assert body.startswith(b"line1\r\n") and b"smuggled" in body
        assert b"\r\nMAIL FROM:<evil@x.test>\r\n" in body
        assert m.count(b"\r") == m.count(b"\n") == m.count(b"\r\n")
    assert not sql(mx, f"SELECT 1 FROM trace WHERE rcpt = 'victim@{D}'")


@pytest.mark.parametrize("body,normalized", [
    (b"Subject: a\r\n\r\nbare\rcr\r\n", b"Subject: a\r\n\r\nbare\r\ncr\r\n"),
    (b"Subject: b\r\n\r\nbare\nlf\r\n", b"Subject: b\r\n\r\nbare\r\nlf\r\n"),
    (b"Subject: c\nX-Bare: header\r\n\r\nbody\r\n",
     b"Subject: c\r\nX-Bare: header\r\n\r\nbody\r\n"),
], ids=["bare-cr", "bare-lf", "bare-lf-in-header"])
def test_bare_newline_reject_or_normalize(mx, body, normalized):
    final = send_message(mx.ports["smtp"], "a@remote.test", [f"bob@{D}"], body + b".\r\n")
    assert final[0] == 550 and final[1].startswith("5.5.2"), final
    assert mailbox_count(mx, f"bob@{D}") == 0
    set_conf(mx, "smtp.bare_newline", "normalize")
    final = send_message(mx.ports["smtp"], "a@remote.test", [f"bob@{D}"], body + b".\r\n")
    assert final[0] == 250, final
    assert stored(mx, f"bob@{D}")[0].endswith(b"\r\n" + normalized)


def test_dot_stuffing_undone(mx):
    final = send_message(mx.ports["smtp"], "a@remote.test", [f"bob@{D}"],
                         b"Subject: dots\r\n\r\n..leading\r\n. not end\r\n.\r\n")
    assert final[0] == 250
    assert stored(mx, f"bob@{D}")[0].endswith(b"\r\n\r\n.leading\r\n not end\r\n")


# ---- STARTTLS injection -----------------------------------------------------

@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_starttls_command_injection(mx, service):
    with Raw(mx.ports[service]) as c:
        c.ehlo()
        c.last_cmd = "STARTTLS+RSET"
        c.send("STARTTLS\r\nRSET\r\n")
        assert c.reply()[0] == 220
        assert c.buf == b"", "a reply to the pipelined RSET came before TLS"
        c.sock = tls_context().wrap_socket(c.sock, server_hostname="mail.keel.test")
        assert c.silent(1.0), f"the server answered plaintext input inside TLS: {c.buf!r}"
        # The session started over: no EHLO yet.
        code, text = c.cmd("MAIL FROM:<bob@local.test>")
        assert code == 503 and text.startswith("5.5.1"), (code, text)
        ext = c.ehlo()
        assert "AUTH PLAIN LOGIN" in ext and "STARTTLS" not in ext
        c.ok("NOOP")


# ---- no open relay ----------------------------------------------------------

RELAY_FORMS = [
    # (RCPT TO path, acceptable reply codes)
    ("<u@remote.test>", {554}),
    (f"<@{D}:u@remote.test>", {554}),  # source route: the mailbox is remote
    (f"<@{D},@other.test:u@remote.test>", {554}),
    (f"<u%remote.test@{D}>", {550}),
    (f"<remote.test!u@{D}>", {550}),
    (f'<"u@remote.test"@{D}>', {550, 553}),
    (f'<"u%remote.test"@{D}>', {550, 553}),
    (f"<u@remote.test@{D}>", {501, 553}),
    ("<u@remote.test.>", {501, 553, 554}),
    (f"<u@{D}.remote.test>", {554}),
    ("<u@[127.0.0.1]>", {550, 553, 554}),
    ("<u@[192.0.2.1]>", {550, 553, 554}),
    (f"<bob%remote.test@{D}>", {550}),
    ("<u%remote.test>", {501, 553}),
]


def test_no_open_relay(mx):
    set_conf(mx, "smtp.max_errors", "100")
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        c.ok("MAIL FROM:<spammer@remote.test>")
        got = {}
        for path, codes in RELAY_FORMS:
            code, text = c.cmd(f"RCPT TO:{path}")
            got[path] = code
            assert code in codes, (path, code, text)
            if code == 554:
                assert text.startswith("5.7.1"), (path, text)
            c.ok("RSET")
            c.ok("MAIL FROM:<spammer@remote.test>")
        assert c.cmd("DATA")[0] == 503, "no recipient may have been accepted"
    assert queue_rows(mx) == []
    # The sessions' events are committed with the next write or within a
    # second (store_trace_defer).
    wait_for(lambda: sql(mx, "SELECT count(*) AS n FROM trace WHERE event = 'rcpt' "
                             "AND detail LIKE 'rejected 554 5.7.1%'")[0]["n"] >= 4,
             what="the relay refusals in the trace")
    assert not sql(mx, "SELECT 1 FROM trace WHERE event = 'rcpt' AND detail LIKE 'accepted%'")


# ---- limits -----------------------------------------------------------------

def test_message_size_limit(mx):
    with Raw(mx.ports["smtp"]) as c:
        assert "SIZE 52428800" in c.ehlo()
    set_conf(mx, "smtp.max_message_size", "10K")
    with Raw(mx.ports["smtp"]) as c:
        ext = c.ehlo()
        assert "SIZE 10240" in ext and "SIZE 52428800" not in ext
        code, text = c.cmd("MAIL FROM:<a@remote.test> SIZE=10241")
        assert (code, text[:5]) == (552, "5.3.4")
        c.ok("MAIL FROM:<a@remote.test> SIZE=9000")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker="BIG1", size=12000)))
        code, text = c.reply()
        assert (code, text[:5]) == (552, "5.3.4")
        # Still in step; a message under the limit goes through.
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok("DATA", 354)
        c.send(data_block(message(marker="SMALL1", size=8000)))
        assert c.reply()[0] == 250
        # BDAT past the limit: the chunks are read, nothing is kept.
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        big = message(marker="BIG2", size=6000)
        c.send(b"BDAT %d\r\n" % len(big) + big)
        assert c.reply()[0] == 250
        c.send(b"BDAT %d LAST\r\n" % len(big) + big)
        code, text = c.reply()
        assert (code, text[:5]) == (552, "5.3.4")
        c.ok("NOOP")
    msgs = stored(mx, f"bob@{D}")
    assert len(msgs) == 1 and b"SMALL1" in msgs[0]
    assert sql(mx, "SELECT count(*) AS n FROM blobs")[0]["n"] == 1


def test_max_recipients(mx):
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        c.ok("MAIL FROM:<a@remote.test>")
        c.send("".join(f"RCPT TO:<bob@{D}>\r\n" for _ in range(101)))
        codes = [c.reply() for _ in range(101)]
        assert [x[0] for x in codes[:100]] == [250] * 100
        assert codes[100][0] == 452 and codes[100][1].startswith("4.5.3")
        c.ok("DATA", 354)
        c.send(data_block(message()))
        assert c.reply()[0] == 250
    set_conf(mx, "smtp.max_recipients", "2")
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        c.ok(f"RCPT TO:<alice@{D}>")
        code, text = c.cmd(f"RCPT TO:<victim@{D}>")
        assert (code, text[:5]) == (452, "4.5.3")
        c.ok("DATA", 354)
        c.send(data_block(message()))
        assert c.reply()[0] == 250
    assert mailbox_count(mx, f"victim@{D}") == 0
    assert mailbox_count(mx, f"alice@{D}") == 1


def test_command_line_length(mx):
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        # 512 octets with the CRLF is the limit (RFC 5321 4.5.3.1.4).
        c.ok("NOOP " + "x" * (512 - 2 - 5))
        code, text = c.cmd("NOOP " + "x" * (512 - 2 - 5 + 1))
        assert code == 500, (code, text)
        code, text = c.cmd("NOOP " + "x" * 20000)
        assert code == 500, (code, text)
        c.ok("NOOP")
        # MAIL and RCPT get room for their DSN parameters (RFC 3461 4.1):
        # 612 and 1012 octets; trailing spaces are allowed padding.
        mail = "MAIL FROM:<a@remote.test>"
        c.ok(mail.ljust(612 - 2))
        c.ok("RSET")
        assert c.cmd(mail.ljust(612 - 2 + 1))[0] == 500
        c.ok(mail)
        rcpt = f"RCPT TO:<bob@{D}>"
        c.ok(rcpt.ljust(1012 - 2))
        assert c.cmd(rcpt.ljust(1012 - 2 + 1))[0] == 500
        c.ok("QUIT", 221)


def test_text_line_length(mx):
    ok_line = b"a" * 998
    long_line = b"b" * 999
    final = send_message(mx.ports["smtp"], "a@remote.test", [f"bob@{D}"],
                         data_block(b"Subject: long\r\n\r\n" + long_line + b"\r\nLONG1\r\n"))
    assert final[0] == 500 and final[1].startswith("5.5.6"), final
    assert mailbox_count(mx, f"bob@{D}") == 0
    final = send_message(mx.ports["smtp"], "a@remote.test", [f"bob@{D}"],
                         data_block(b"Subject: ok\r\n\r\n" + ok_line + b"\r\n"))
    assert final[0] == 250
    assert stored(mx, f"bob@{D}")[0].endswith(b"\r\n\r\n" + ok_line + b"\r\n")
    assert sql(mx, "SELECT count(*) AS n FROM blobs")[0]["n"] == 1


def test_max_errors(mx):
    set_conf(mx, "smtp.max_errors", "3")
    with Raw(mx.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("FROB")[0] == 500
        assert c.cmd(f"RCPT TO:<bob@{D}>")[0] == 503
        c.ok("NOOP")
        assert c.cmd("FROB")[0] == 500
        code, text = c.reply()
        assert code == 421 and text.startswith("4.7.0"), (code, text)
        assert c.closed()


def test_max_connections_per_ip(mx):
    set_conf(mx, "smtp.max_connections_per_ip", "2")
    port = mx.ports["smtp"]
    a, b = Raw(port), Raw(port)
    try:
        assert a.greeting[0] == b.greeting[0] == 220
        with Raw(port) as c:
            assert c.greeting[0] == 421 and c.greeting[1].startswith("4.7.0"), c.greeting
            assert c.closed()
        # Another address is counted apart.
        with Raw(port, source="127.0.0.2") as c:
            assert c.greeting[0] == 220
        a.ok("QUIT", 221)
        assert a.closed()
        time.sleep(0.2)  # the server notices the close
        with Raw(port) as c:
            assert c.greeting[0] == 220
            c.ehlo()
    finally:
        a.close()
        b.close()


def hops(n):
    return "".join(f"Received: from h{i}.test by h{i + 1}.test; Mon, 1 Jan 2024 00:00:00 +0000"
                   "\r\n" for i in range(n))


def test_hop_count(mx):
    port = mx.ports["smtp"]
    final = send_message(port, "a@remote.test", [f"bob@{D}"],
                         data_block(message(marker="HOP51", headers=hops(51))))
    assert final[0] == 554 and final[1].startswith("5.4.6"), final
    final = send_message(port, "a@remote.test", [f"bob@{D}"],
                         data_block(message(marker="HOP50", headers=hops(50))))
    assert final[0] == 250
    set_conf(mx, "smtp.max_hops", "5")
    final = send_message(port, "a@remote.test", [f"bob@{D}"],
                         data_block(message(marker="HOP6", headers=hops(6))))
    assert final[0] == 554 and final[1].startswith("5.4.6"), final
    final = send_message(port, "a@remote.test", [f"bob@{D}"],
                         data_block(message(marker="HOP5", headers=hops(5))))
    assert final[0] == 250
    # BDAT is counted too.
    with Raw(port) as c:
        c.ehlo()
        c.ok("MAIL FROM:<a@remote.test>")
        c.ok(f"RCPT TO:<bob@{D}>")
        m = message(marker="HOPB", headers=hops(6))
        c.send(b"BDAT %d LAST\r\n" % len(m) + m)
        code, text = c.reply()
        assert code == 554 and text.startswith("5.4.6"), (code, text)
    msgs = stored(mx, f"bob@{D}")
    assert [next(k for k in (b"HOP50", b"HOP5") if k in m) for m in msgs] == [b"HOP50", b"HOP5"]
