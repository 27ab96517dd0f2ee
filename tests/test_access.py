"""Access control end to end (docs/access.md): IP address groups, services
limited to a group or disabled, and relay rules, against a real keeld.
Clients bind their sockets to 127.0.0.x source addresses, so that one
server sees clients inside and outside a group.  The tests share one server
and run in order; each leaves the services as it found them."""

import json
import re
import smtplib
import socket
import ssl

import pytest

from conftest import Keel, wait_for
from smtp_helpers import D, PW, Raw, add_user, ctl_ok, set_conf, sql, tls_context

INSIDE = "127.0.0.2"     # in lan by 127.0.0.0/29
EXCLUDED = "127.0.0.5"   # in 127.0.0.0/29 but excluded
NESTED = "127.0.0.9"     # in lan through group:inner
OUTSIDE = "127.0.0.20"   # in no group
RELAYER = "127.0.0.30"   # in relays


@pytest.fixture(scope="module")
def k():
    keel = Keel()
    keel.start()
    try:
        set_conf(keel, "delivery.max_connections", "0")
        ctl_ok(keel, "domain", "add", D)
        add_user(keel, "bob")
        yield keel
    finally:
        keel.cleanup()


def fail(keel, *args):
    """keelctl args must fail with exit 1: its stderr."""
    r = keel.ctl(*args)
    assert r.returncode == 1, f"keelctl {' '.join(args)} -> {r.returncode}: {r.stdout}{r.stderr}"
    return r.stderr


def traced(keel, event, like):
    """Trace events of that kind whose detail is LIKE like, waiting for them
    (access events are committed with the next batch)."""
    return wait_for(lambda: sql(keel, f"SELECT detail FROM trace WHERE event = '{event}'"
                                      f" AND detail LIKE '{like}'"),
                    timeout=15, what=f"a trace event {event}: {like}")


def first_line(port, source, tls=False, refused=False):
    """The server's first line to a client from source, and (refused) whether
    it then closed the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(source, 0))
    if tls:
        s = tls_context().wrap_socket(s, server_hostname="mail.keel.test")
    buf = b""
    try:
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            assert chunk, f"closed before a line; got {buf!r}"
            buf += chunk
        line, rest = buf.split(b"\r\n", 1)
        closed = False
        if not refused:
            return line.decode(), closed
        s.settimeout(5)
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    closed = True
                    break
        except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
            closed = False
        except (ConnectionResetError, ssl.SSLError):
            closed = True
        return line.decode(), closed
    finally:
        s.close()


# ---- IP groups ---------------------------------------------------------------------

def test_groups_ranges_cidr_nesting_exclusions(k):
    ctl_ok(k, "ipgroup", "add", "inner")
    ctl_ok(k, "ipgroup", "entry", "add", "inner", "127.0.0.8-127.0.0.15")
    ctl_ok(k, "ipgroup", "add", "lan")
    r = ctl_ok(k, "ipgroup", "entry", "add", "lan", "127.0.0.3/29", "--comment", "test net")
    assert "127.0.0.0/29" in r.stdout  # host bits cleared: the normal form
    ctl_ok(k, "ipgroup", "entry", "add", "lan", "group:inner")
    ctl_ok(k, "ipgroup", "entry", "add", "lan", EXCLUDED, "--exclude", "--comment", "printer")
    ctl_ok(k, "ipgroup", "entry", "add", "lan", "2001:db8::/32")
    ctl_ok(k, "ipgroup", "entry", "add", "lan", "2001:db8:1::/48", "--exclude")

    def test(name, ip):
        r = k.ctl("ipgroup", "test", name, ip, json_out=True)
        assert r.returncode in (0, 1), r.stderr
        assert json.loads(r.stdout)["match"] == (r.returncode == 0)
        return r.returncode == 0, json.loads(r.stdout).get("entry")

    assert test("lan", INSIDE) == (True, "127.0.0.0/29")
    assert test("lan", "127.0.0.7") == (True, "127.0.0.0/29")
    assert test("lan", EXCLUDED) == (False, EXCLUDED)
    assert test("lan", NESTED) == (True, "group:inner > 127.0.0.8-127.0.0.15")
    assert test("lan", "127.0.0.16") == (False, None)
    assert test("lan", OUTSIDE) == (False, None)
    assert test("lan", "::ffff:127.0.0.2") == (True, "127.0.0.0/29")  # v4-mapped is v4
    assert test("lan", "2001:db8:ffff::1") == (True, "2001:db8::/32")
    assert test("lan", "2001:db8:1::1") == (False, "2001:db8:1::/48")
    assert test("lan", "2001:db9::1") == (False, None)
    r = k.ctl("ipgroup", "test", "lan", INSIDE)
    assert r.stdout.strip() == f"{INSIDE} is in IP group lan by entry 127.0.0.0/29"
    r = k.ctl("ipgroup", "test", "lan", EXCLUDED)
    assert "excluded by entry 127.0.0.5" in r.stdout

    # The listing, both ways.
    groups = {g["name"]: g for g in json.loads(ctl_ok(k, "ipgroup", "list", "--json").stdout)}
    assert {(e["entry"], e["exclude"], e["comment"]) for e in groups["lan"]["entries"]} == {
        ("127.0.0.0/29", False, "test net"), ("group:inner", False, ""),
        (EXCLUDED, True, "printer"), ("2001:db8::/32", False, ""),
        ("2001:db8:1::/48", True, "")}
    table = ctl_ok(k, "ipgroup", "list").stdout
    assert re.search(r"lan\s+!127\.0\.0\.5\s+printer", table), table

    # Changes are live: the next lookup sees them.
    ctl_ok(k, "ipgroup", "entry", "del", "inner", "127.0.0.8-127.0.0.15")
    assert test("lan", NESTED) == (False, None)
    ctl_ok(k, "ipgroup", "entry", "add", "inner", "127.0.0.8/29")
    assert test("lan", NESTED) == (True, "group:inner > 127.0.0.8/29")


def test_group_input_refused(k):
    assert "not an IP address" in fail(k, "ipgroup", "entry", "add", "lan", "127.0.0.300")
    assert "FROM <= TO" in fail(k, "ipgroup", "entry", "add", "lan", "127.0.0.9-127.0.0.1")
    assert "FROM <= TO" in fail(k, "ipgroup", "entry", "add", "lan", "127.0.0.1-::1")
    assert "prefix length" in fail(k, "ipgroup", "entry", "add", "lan", "10.0.0.0/33")
    assert "invalid IP group name" in fail(k, "ipgroup", "add", "bad name")
    assert "IP group LAN exists" in fail(k, "ipgroup", "add", "LAN")  # names ignore ASCII case
    assert "nosuch" in fail(k, "ipgroup", "entry", "add", "lan", "group:nosuch")
    assert "invalid IP address" in fail(k, "ipgroup", "test", "lan", "not-an-ip")
    assert "no IP group" in fail(k, "ipgroup", "test", "nosuch", INSIDE)
    assert "no entry" in fail(k, "ipgroup", "entry", "del", "lan", "10.9.9.9")


def test_group_loops_refused(k):
    err = fail(k, "ipgroup", "entry", "add", "inner", "group:lan")
    assert "loop" in err, err
    assert "loop" in fail(k, "ipgroup", "entry", "add", "lan", "group:lan")
    ctl_ok(k, "ipgroup", "add", "outer")
    ctl_ok(k, "ipgroup", "entry", "add", "outer", "group:lan")
    assert "loop" in fail(k, "ipgroup", "entry", "add", "inner", "group:outer")
    # Nothing changed: lookups still answer.
    assert k.ctl("ipgroup", "test", "outer", NESTED).returncode == 0
    ctl_ok(k, "ipgroup", "del", "outer")


def test_group_del_refused_while_used(k):
    err = fail(k, "ipgroup", "del", "inner")
    assert "used by IP group lan" in err, err
    ctl_ok(k, "service", "set", "pop3", "--allow-group", "lan")
    err = fail(k, "ipgroup", "del", "lan")
    assert "used by the rule service.pop3.allow_group" in err, err
    ctl_ok(k, "service", "set", "pop3", "--allow-all")
    set_conf(k, "relay.allow_group", "lan")
    assert "relay.allow_group" in fail(k, "ipgroup", "del", "lan")
    ctl_ok(k, "config", "unset", "relay.allow_group")
    ctl_ok(k, "ipgroup", "add", "spare")
    ctl_ok(k, "ipgroup", "del", "spare")
    assert "spare" not in ctl_ok(k, "ipgroup", "list").stdout


# ---- services ------------------------------------------------------------------------

REFUSAL = {
    "smtp": r"^554 5\.7\.1 .*Access denied \(service\.smtp\.allow_group\)",
    "submission": r"^554 5\.7\.1 .*Access denied \(service\.submission\.allow_group\)",
    "submissions": r"^554 5\.7\.1 .*Access denied \(service\.submissions\.allow_group\)",
    "imap": r"^\* BYE Access denied \(service\.imap\.allow_group\)",
    "imaps": r"^\* BYE Access denied \(service\.imaps\.allow_group\)",
    "pop3": r"^-ERR Access denied \(service\.pop3\.allow_group\)",
    "pop3s": r"^-ERR Access denied \(service\.pop3s\.allow_group\)",
}
GREETING = {"smtp": "220 ", "submission": "220 ", "submissions": "220 ", "imap": "* OK",
            "imaps": "* OK", "pop3": "+OK", "pop3s": "+OK"}
TLS = {"submissions", "imaps", "pop3s"}


@pytest.mark.parametrize("service", list(REFUSAL))
def test_service_limited_to_group(k, service):
    port = k.ports[service]
    ctl_ok(k, "service", "set", service, "--allow-group", "lan")
    try:
        rows = {s["service"]: s for s in json.loads(
            k.ctl("service", "list", json_out=True).stdout)}
        assert rows[service] == {"service": service, "enabled": True, "allow_group": "lan"}
        for source in (INSIDE, NESTED):
            line, _ = first_line(port, source, tls=service in TLS)
            assert line.startswith(GREETING[service]), (source, line)
        for source in (OUTSIDE, EXCLUDED):
            line, closed = first_line(port, source, tls=service in TLS, refused=True)
            assert re.match(REFUSAL[service], line), (source, line)
            assert closed, f"{service}: connection from {source} left open"
        wait_for(lambda: f"event=refused service={service} ip={OUTSIDE} "
                         f"rule=service.{service}.allow_group" in k.read_log(),
                 what="the refusal's log line")
        assert f"group lan excludes {EXCLUDED} by entry {EXCLUDED}" in k.read_log()
        traced(k, "refused", f"rule=service.{service}.allow_group: group lan does not contain"
                             f" {OUTSIDE}")
        traced(k, "access", f"allowed by service.{service}.allow_group: group lan contains "
                            f"{NESTED} by entry group:inner > %")
    finally:
        ctl_ok(k, "service", "set", service, "--allow-all")
    line, _ = first_line(port, OUTSIDE, tls=service in TLS)
    assert line.startswith(GREETING[service]), line


def test_service_disabled_and_reenabled_live(k):
    port = k.ports["imap"]
    r = ctl_ok(k, "service", "set", "imap", "--enabled", "no")
    assert r.stdout.strip() == "service imap: enabled no, allow group (all)"
    line, closed = first_line(port, INSIDE, refused=True)
    assert line == "* BYE Access denied (service.imap.enabled)" and closed
    wait_for(lambda: "rule=service.imap.enabled reason=\"service imap is disabled\""
             in k.read_log(), what="the refusal's log line")
    traced(k, "refused", "rule=service.imap.enabled: service imap is disabled")
    table = ctl_ok(k, "service", "list").stdout
    assert re.search(r"^imap\s+no\s+\(all\)$", table, re.M), table
    # Other services are untouched.
    assert first_line(k.ports["pop3"], INSIDE)[0].startswith("+OK")
    with Raw(k.ports["smtp"], source=INSIDE) as c:
        assert c.greeting[0] == 220
    ctl_ok(k, "service", "set", "imap", "--enabled", "yes")
    assert first_line(port, INSIDE)[0].startswith("* OK")
    # SMTP too: the listener stays bound while disabled.
    ctl_ok(k, "service", "set", "smtp", "--enabled", "no")
    try:
        line, closed = first_line(k.ports["smtp"], INSIDE, refused=True)
        assert line.startswith("554 5.7.1 ") and "service.smtp.enabled" in line and closed
    finally:
        ctl_ok(k, "service", "set", "smtp", "--enabled", "yes")
    with Raw(k.ports["smtp"], source=INSIDE) as c:
        assert c.greeting[0] == 220


def test_service_set_input_refused(k):
    assert "unknown service" in fail(k, "service", "set", "gopher", "--enabled", "no")
    assert "no IP group nosuch" in fail(k, "service", "set", "imap", "--allow-group", "nosuch")
    err = fail(k, "config", "set", "relay.allow_group", "nosuch")
    assert "relay.allow_group names no IP group nosuch" in err, err
    for args in (["--enabled", "maybe"], [], ["--allow-group", "lan", "--allow-all"]):
        r = k.ctl("service", "set", "imap", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert "usage:" in r.stderr
    rows = json.loads(k.ctl("service", "list", json_out=True).stdout)
    assert [s["service"] for s in rows] == ["smtp", "submission", "submissions", "imap",
                                            "imaps", "pop3", "pop3s"]
    assert all(s["enabled"] and s["allow_group"] == "" for s in rows), rows


# ---- relay -----------------------------------------------------------------------------

def rcpt_from(k, source, rcpt, auth=False, port=None):
    with Raw(port or k.ports["smtp"], source=source) as c:
        c.ehlo()
        if auth:
            c.starttls()
            c.ehlo()
            assert c.auth_plain(f"bob@{D}")[0] == 235
        c.ok(f"MAIL FROM:<bob@{D}>")
        return c.cmd(f"RCPT TO:<{rcpt}>")


def test_relay_rules(k):
    ctl_ok(k, "ipgroup", "add", "relays")
    ctl_ok(k, "ipgroup", "entry", "add", "relays", RELAYER)
    # Nobody relays without a rule, not even a client in some other group.
    code, text = rcpt_from(k, RELAYER, "far@remote.test")
    assert (code, text) == (554, "5.7.1 <far@remote.test>: Relay access denied")
    traced(k, "relay", "not allowed by relay.allow_group: relay.allow_group is empty")
    set_conf(k, "relay.allow_group", "relays")
    assert rcpt_from(k, RELAYER, "far@remote.test")[0] == 250
    traced(k, "relay", f"allowed by relay.allow_group: group relays contains {RELAYER} by "
                       f"entry {RELAYER}")
    assert rcpt_from(k, OUTSIDE, "far@remote.test")[0] == 554
    traced(k, "relay", f"not allowed by relay.allow_group: group relays does not contain "
                       f"{OUTSIDE}")
    # Local recipients need no relay right.
    assert rcpt_from(k, OUTSIDE, f"bob@{D}")[0] == 250
    # An authenticated session relays from anywhere.
    assert rcpt_from(k, OUTSIDE, "far@remote.test", auth=True,
                     port=k.ports["submission"])[0] == 250
    traced(k, "relay", f"allowed: authenticated as bob@{D}")
    # An exclusion beats the group, live.
    ctl_ok(k, "ipgroup", "entry", "add", "relays", RELAYER, "--exclude")
    assert rcpt_from(k, RELAYER, "far@remote.test")[0] == 554
    ctl_ok(k, "config", "unset", "relay.allow_group")
    ctl_ok(k, "ipgroup", "del", "relays")


def test_open_relay_warned_at_every_start(k):
    marker = "event=open_relay setting=relay.open"
    before = k.read_log().count(marker)
    set_conf(k, "relay.open", "yes")
    wait_for(lambda: k.read_log().count(marker) > before, what="the warning on set")
    assert rcpt_from(k, OUTSIDE, "far@remote.test")[0] == 250
    traced(k, "relay", "allowed by relay.open: relay.open is on")
    n = k.read_log().count(marker)
    k.stop()
    k.log.close()
    k.start()
    wait_for(lambda: k.read_log().count(marker) > n, what="the warning at start")
    # The groups survive the restart: compiled again at start.
    assert k.ctl("ipgroup", "test", "lan", NESTED).returncode == 0
    ctl_ok(k, "config", "unset", "relay.open")
    assert rcpt_from(k, OUTSIDE, "far@remote.test")[0] == 554
