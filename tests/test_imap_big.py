"""IMAP on a big folder (issue "Big folders"): SELECT of a 100,000-message
INBOX, and FETCH 1:* (FLAGS) streamed to a client that reads slowly, its
answer never built whole in keeld's memory.

The folder is made behind keeld's back (keeld stopped): one delivered
message's row copied 99,999 times in one SQL statement, as a real mailbox
would look after years of mail; delivering 100,000 messages one by one
would take this test many minutes under ASan."""

import socket
import sqlite3
import time

from test_imap import PASSWORD, USER, deliver, read_tagged, setup_users

N = 100000
# 40 keywords of 11 characters: about 470 bytes of FLAGS a message, so that
# the whole answer (47 MB) dwarfs what the kernel's socket buffers hold.
KEYWORDS = " ".join(f"$kw{i:08d}" for i in range(40))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def make_big_inbox(keel):
    keel.stop()
    db = sqlite3.connect(f"{keel.data_dir}/keel.db")
    (box,) = db.execute("SELECT m.id FROM mailboxes m JOIN users u ON u.id = m.user_id"
                        " WHERE m.name = 'INBOX'").fetchone()
    db.execute("UPDATE messages SET keywords = ?, flags = flags | 1 WHERE mailbox_id = ?",
               (KEYWORDS, box))
    db.execute(
        "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internaldate, size,"
        " blob_id, envelope, bodystructure, body, structure)"
        " WITH RECURSIVE k(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM k WHERE i < ?)"
        " SELECT mailbox_id, i, modseq + i, CASE WHEN i % 1000 = 0 THEN 0 ELSE flags END,"
        " keywords, internaldate, size, blob_id, envelope, bodystructure, body, structure"
        " FROM k, messages WHERE mailbox_id = ? AND uid = 1", (N, box))
    db.execute("UPDATE mailboxes SET uidnext = ?, messages = ?,"
               " highestmodseq = (SELECT MAX(modseq) FROM messages WHERE mailbox_id = ?)"
               " WHERE id = ?", (N + 1, N, box, box))
    db.commit()
    db.close()
    keel.start()


def test_big_folder_select_and_streamed_fetch(keel):
    setup_users(keel)
    keel.ctl("config", "set", "imap.allow_plaintext_auth", "yes", check=True)
    deliver(keel, subject="the one")
    make_big_inbox(keel)

    s = socket.socket()
    # A client that reads slowly: a small window, so keeld's output waits.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(60)
    s.connect(("127.0.0.1", keel.ports["imap"]))
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode())
    read_tagged(f, b"a")
    s.sendall(b"s SELECT INBOX\r\n")
    lines = read_tagged(f, b"s")
    assert b"* %d EXISTS\r\n" % N in lines
    assert b"* OK [UNSEEN 1000] First unseen\r\n" in lines
    assert any(line.startswith(b"* OK [UIDNEXT %d]" % (N + 1)) for line in lines)
    assert lines[-1].startswith(b"s OK [READ-WRITE]")

    pid = keel.worker_pid()
    before = rss_kib(pid)
    s.sendall(b"f FETCH 1:* (FLAGS)\r\n")
    time.sleep(2)
    stalled = rss_kib(pid)
    print(f"big folder: worker RSS +{stalled - before} KiB with FETCH 1:* (FLAGS) stalled")
    # Built whole, the answer alone would be 47 MB; streamed, keeld holds
    # its output buffer and one page of rows (plus what ASan keeps: about
    # 12 MB here, against 270 MB when the answer was built whole).
    assert stalled - before < 64 * 1024, f"RSS grew {stalled - before} KiB while stalled"

    count = 0
    first = last = None
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line.startswith(b"f "):
            assert line.startswith(b"f OK"), line
            break
        count += 1
        if first is None:
            first = line
        last = line
    assert count == N
    # \Recent (all are new to keeld since its start) is not what is tested.
    first, last = (x.replace(b"\\Recent ", b"").replace(b" \\Recent", b"") for x in (first, last))
    assert first == b"* 1 FETCH (FLAGS (\\Seen %s))\r\n" % KEYWORDS.encode()
    assert last == b"* %d FETCH (FLAGS (%s))\r\n" % (N, KEYWORDS.encode())
    s.sendall(b"l LOGOUT\r\n")
    read_tagged(f, b"l")
    s.close()
