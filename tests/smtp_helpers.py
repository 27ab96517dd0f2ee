"""Helpers shared by test_smtp.py and test_smtp_hostile.py: a raw SMTP
client that keeps every reply, keelctl shortcuts, and reading stored mail
back from the store (sqlite3 CLI for the metadata, the blob segment files
for the bytes, as docs/store.md describes them)."""

import hashlib
import json
import os
import re
import socket
import ssl
import struct
import subprocess

from conftest import wait_for

D = "local.test"
PW = "correct horse battery"

# A reply line: code, separator, and the rest.
REPLY_RE = re.compile(rb"^(\d{3})([ -])(.*)$")
# An RFC 3463 enhanced status code at the start of a reply's text.
ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3}) ")


def tls_context():
    """A client context that accepts the server's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---- keelctl ----------------------------------------------------------------

def free_udp_port():
    """A UDP port on 127.0.0.1 free a moment ago (for dnsmasq)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ctl_ok(keel, *args, input=None):
    r = keel.ctl(*args, input=input)
    assert r.returncode == 0, f"keelctl {' '.join(args)} -> {r.returncode}: {r.stderr}"
    return r


def set_conf(keel, key, value):
    ctl_ok(keel, "config", "set", key, str(value))


def add_user(keel, local, *extra, password=PW):
    ctl_ok(keel, "user", "add", f"{local}@{D}", "--password-stdin", *extra,
           input=password + "\n")
    return f"{local}@{D}"


def setup_domain(keel, users=("alice", "bob", "carol")):
    """local.test with the given users, all with password PW.  Outbound
    delivery is paused (delivery.max_connections = 0): these tests look at
    what is queued, and remote.test does not exist."""
    ctl_ok(keel, "config", "set", "delivery.max_connections", "0")
    ctl_ok(keel, "domain", "add", D)
    for u in users:
        add_user(keel, u)
    return keel


def mailbox_count(keel, address, mailbox="INBOX"):
    info = json.loads(ctl_ok(keel, "user", "show", address, "--json").stdout)
    return {m["name"]: m["messages"] for m in info["mailboxes"]}[mailbox]


# ---- the store ---------------------------------------------------------------

def sql(keel, query):
    """Rows of a query on DATA_DIR/keel.db, as dicts (sqlite3 -json)."""
    r = subprocess.run(["sqlite3", "-json", os.path.join(keel.data_dir, "keel.db"), query],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else []


def read_blob(keel, segment, offset, size):
    """The data of the blob record at (segment, offset), its header checked."""
    path = os.path.join(keel.data_dir, "blobs", "seg-%08d" % segment)
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(48)
        data = f.read(size)
    assert head[:8] == b"KEELBLB1", head[:8]
    assert struct.unpack("<Q", head[8:16])[0] == size
    assert hashlib.sha256(data).digest() == head[16:48], "blob data does not match its hash"
    return data


def stored(keel, address, mailbox="INBOX"):
    """The bytes of every message in a user's mailbox, by uid."""
    local, domain = address.split("@")
    rows = sql(keel, f"""
        SELECT b.segment, b.offset, b.size FROM messages m
          JOIN mailboxes x ON x.id = m.mailbox_id
          JOIN users u ON u.id = x.user_id
          JOIN domains d ON d.id = u.domain_id
          JOIN blobs b ON b.id = m.blob_id
         WHERE u.localpart = '{local}' AND d.name = '{domain}' AND x.name = '{mailbox}'
         ORDER BY m.uid""")
    return [read_blob(keel, r["segment"], r["offset"], r["size"]) for r in rows]


def queue_rows(keel):
    return sql(keel, "SELECT * FROM queue ORDER BY id")


def queued_data(keel, row):
    b = sql(keel, f"SELECT segment, offset, size FROM blobs WHERE id = {row['blob_id']}")[0]
    return read_blob(keel, b["segment"], b["offset"], b["size"])


def wait_count(keel, address, n, mailbox="INBOX"):
    return wait_for(lambda: mailbox_count(keel, address, mailbox) == n, timeout=10,
                    what=f"{n} message(s) in {address}'s {mailbox}")


# ---- a raw SMTP client -----------------------------------------------------

class BioSocket:
    """A TLS connection driven through memory BIOs, so that the test
    decides which TLS records go out in one write."""

    def __init__(self, sock, obj, incoming, outgoing):
        self.raw, self.obj, self.incoming, self.outgoing = sock, obj, incoming, outgoing

    def sendall(self, data):
        self.obj.write(data)
        self.raw.sendall(self.outgoing.read())

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                data = self.raw.recv(65536)
                if not data:
                    return b""
                self.incoming.write(data)
            except ssl.SSLZeroReturnError:
                return b""

    def settimeout(self, t):
        self.raw.settimeout(t)

    def gettimeout(self):
        return self.raw.gettimeout()

    def close(self):
        self.raw.close()

    def version(self):
        return self.obj.version()


class Raw:
    """One SMTP connection spoken byte by byte.  Every reply read is kept in
    self.replies as (code, [text lines], command that caused it)."""

    def __init__(self, port, tls=False, timeout=10, source=None):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0) if source else None)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock, server_hostname="mail.keel.test")
        self.buf = b""
        self.replies = []
        self.last_cmd = "<greeting>"
        self.greeting = self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; unread: {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """(code, text) of the next reply; text joins the lines with \\n."""
        lines = []
        while True:
            m = REPLY_RE.match(self._line())
            assert m, f"not an SMTP reply line: {lines!r}"
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                code = int(m.group(1))
                self.replies.append((code, lines, self.last_cmd))
                return code, "\n".join(lines)

    def cmd(self, line):
        self.last_cmd = line
        self.send(line + "\r\n")
        return self.reply()

    def ok(self, line, code=250):
        got = self.cmd(line)
        assert got[0] == code, f"{line!r} -> {got}"
        return got

    def ehlo(self, name="client.test"):
        code, text = self.ok(f"EHLO {name}")
        return text.split("\n")[1:]

    def starttls(self):
        self.ok("STARTTLS", 220)
        assert self.buf == b"", "no plaintext may follow 220 to STARTTLS"
        self.sock = tls_context().wrap_socket(self.sock, server_hostname="mail.keel.test")

    def starttls_coalesced(self, line):
        """STARTTLS, then the handshake, with line sent in the same TCP
        write as the client's last handshake flight (its Finished), as
        clients that write eagerly do; returns the reply to line."""
        self.ok("STARTTLS", 220)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tls_context().wrap_bio(incoming, outgoing, server_hostname="mail.keel.test")
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    self.sock.sendall(outgoing.read())
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("closed during the TLS handshake")
                incoming.write(data)
        obj.write(line.encode() + b"\r\n")
        self.sock.sendall(outgoing.read())
        self.sock = BioSocket(self.sock, obj, incoming, outgoing)
        self.last_cmd = line
        return self.reply()

    def auth_plain(self, user, password=PW):
        import base64
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.last_cmd = "AUTH PLAIN ********"
        self.send(f"AUTH PLAIN {token}\r\n")
        return self.reply()

    def silent(self, timeout=0.5):
        """True when nothing arrives within timeout (and the connection is
        still open)."""
        if self.buf:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, TimeoutError):
            return True
        except ssl.SSLWantReadError:
            return True
        finally:
            self.sock.settimeout(old)
        self.buf += data
        return False

    def closed(self, timeout=5):
        """True when the server closes the connection within timeout (what
        it sent before is kept in self.buf)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return True
                self.buf += data
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            self.sock.settimeout(old)


def send_message(port, sender, rcpts, body, tls=False, starttls=False, auth=None):
    """One transaction over a raw connection; returns the final reply."""
    with Raw(port, tls=tls) as c:
        c.ehlo()
        if starttls:
            c.starttls()
            c.ehlo()
        if auth:
            assert c.auth_plain(auth)[0] == 235
        c.ok(f"MAIL FROM:<{sender}>")
        for r in rcpts:
            c.ok(f"RCPT TO:<{r}>")
        c.ok("DATA", 354)
        c.send(body)
        final = c.reply()
        c.cmd("QUIT")
        return final


def message(subject="test", marker="MARKER", size=0, headers=""):
    """A CRLF message; size pads the body to at least that many octets."""
    text = (f"From: <sender@remote.test>\r\nTo: <bob@{D}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{marker}@client.test>\r\n{headers}\r\n{marker}\r\n")
    while len(text) < size:
        text += "x" * 70 + "\r\n"
    return text.encode()


def data_block(msg):
    """msg dot-stuffed and terminated, as sent after 354."""
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines) + b".\r\n"
