"""keelctl against a real keeld: every command, its exit codes (0 success,
1 a problem named in one stderr line, 2 wrong usage), --json shapes, the
live settings, passwords, renames and aliases, and the admin socket's wire
format spoken directly."""

import json
import os
import re
import socket
import stat
import subprocess

import pytest

from conftest import KEELCTL, TOP

D = "example.test"


def ok(keel, *args, input=None):
    r = keel.ctl(*args, input=input)
    assert r.returncode == 0, f"keelctl {' '.join(args)} -> {r.returncode}: {r.stderr}"
    assert r.stderr == ""
    return r


def fails(keel, *args, input=None, code=1):
    """Runs a command that must fail; returns its one stderr line."""
    r = keel.ctl(*args, input=input)
    assert r.returncode == code, (
        f"keelctl {' '.join(args)} -> {r.returncode}, expected {code}:\n"
        f"{r.stdout}{r.stderr}")
    if code == 1:
        assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr.rstrip("\n")


def js(keel, *args, input=None):
    return json.loads(ok(keel, *args, "--json", input=input).stdout)


def users(keel, *args):
    return {u["address"]: u for u in js(keel, "user", "list", *args)}


def aliases(keel):
    return {a["address"]: a["targets"] for a in js(keel, "alias", "list")}


def add_user(keel, address, password="correct horse battery", *extra):
    return ok(keel, "user", "add", address, "--password-stdin", *extra, input=password + "\n")


@pytest.fixture
def dom(keel):
    ok(keel, "domain", "add", D)
    return keel


# ---- general ---------------------------------------------------------------

def test_help_and_version(keel):
    for args in (["--help"], ["help"], ["-h"]):
        r = ok(keel, *args)
        assert r.stdout.startswith("usage: keelctl")
        for cmd in ("domain alias", "user rename", "group member add", "config unset",
                    "reload", "status"):
            assert cmd in r.stdout
    with open(os.path.join(TOP, "VERSION")) as f:
        version = f.read().strip()
    assert ok(keel, "--version").stdout == f"keelctl {version}\n"


def test_usage_errors_exit_2(keel):
    r = subprocess.run([KEELCTL], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr

    err = fails(keel, "frobnicate", code=2)
    assert "unknown command" in err and "frobnicate" in err

    err = fails(keel, "user", "add", code=2)
    assert err.startswith("keelctl: user add: missing argument\nusage: keelctl")
    assert "user add ADDRESS" in err

    err = fails(keel, "user", "add", "a@" + D, "b@" + D, code=2)
    assert err.startswith("keelctl: user add: unexpected argument 'b@example.test'")

    err = fails(keel, "user", "add", "a@" + D, "--bogus", code=2)
    assert err.startswith("keelctl: user add: unknown option --bogus")

    err = fails(keel, "user", "add", "a@" + D, "--quota", code=2)
    assert err.startswith("keelctl: user add: --quota needs a value")

    err = fails(keel, "user", code=2)
    assert "user add" in err and "user rename" in err  # the family's usage

    err = fails(keel, "config", "set", "auth.password_min_length", code=2)
    assert "usage: keelctl" in err

    r = subprocess.run([KEELCTL, "-x", "status"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_no_server_exit_1(keel, tmp_path):
    r = subprocess.run([KEELCTL, "-s", str(tmp_path / "nothing.sock"), "status"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("keelctl: status: cannot connect to ")
    assert r.stderr.count("\n") == 1


def test_socket_from_conf_and_environment(keel, tmp_path):
    # -c: keel.conf's data_dir (relative to the file) gives DATA_DIR/keel.sock.
    r = subprocess.run([KEELCTL, "-c", keel.conf_path, "status"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    # admin.socket, tolerantly parsed (blanks, quotes, comments, unknown keys).
    conf = tmp_path / "other.conf"
    conf.write_text("# a comment\n  mystery.key = whatever\n"
                    f'admin.socket =  "{keel.socket}"  \n')
    r = subprocess.run([KEELCTL, "-c", str(conf), "domain", "list"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    # KEEL_SOCKET when neither -s nor -c is given.
    env = dict(os.environ, KEEL_SOCKET=keel.socket)
    r = subprocess.run([KEELCTL, "status"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    # -c wins over KEEL_SOCKET; a missing file is an error naming it.
    r = subprocess.run([KEELCTL, "-c", str(tmp_path / "none.conf"), "status"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "none.conf" in r.stderr


def test_admin_socket_is_private(keel):
    st = os.stat(keel.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_json_flag_anywhere(dom):
    add_user(dom, "ann@" + D)
    for argv in (["--json", "user", "list"], ["user", "--json", "list"],
                 ["user", "list", "--json"], ["user", "list", D, "--json"]):
        r = ok(dom, *argv)
        assert [u["address"] for u in json.loads(r.stdout)] == ["ann@" + D]


def test_status(dom):
    st = js(dom, "status")
    for key in ("version", "uptime", "listeners", "domains", "users", "messages",
                "flushes", "commits"):
        assert key in st, key
    assert st["domains"] == 1 and st["users"] == 0 and st["messages"] == 0
    assert isinstance(st["listeners"], list)
    services = {l["service"] for l in st["listeners"]}
    assert "smtp" in services and "imap" in services
    add_user(dom, "ann@" + D)
    st2 = js(dom, "status")
    assert st2["users"] == 1
    # A write is acknowledged only once committed: the counters moved.
    assert st2["commits"] > st["commits"] and st2["flushes"] > st["flushes"]
    text = ok(dom, "status").stdout
    assert re.search(r"^version\s+\S+", text, re.M)
    assert re.search(r"^users\s+1$", text, re.M)
    assert re.search(r"^domains\s+1$", text, re.M)
    assert "uptime" in text


# ---- domains ---------------------------------------------------------------

def test_domain_add_list_del(keel):
    r = ok(keel, "domain", "add", "Example.TEST")
    assert r.stdout == "added domain example.test\n"
    ok(keel, "domain", "add", "other.test")
    doms = {d["name"]: d for d in js(keel, "domain", "list")}
    assert set(doms) == {"example.test", "other.test"}
    assert doms[D]["alias_of"] is None and isinstance(doms[D]["id"], int)
    text = ok(keel, "domain", "list").stdout.splitlines()
    assert text[0].split()[0] == "NAME"
    assert any(line.split()[0] == D for line in text[1:])

    assert fails(keel, "domain", "add", D) == \
        "keelctl: domain add: domain example.test already exists"
    err = fails(keel, "domain", "add", "bad_domain!")
    assert err.startswith("keelctl: domain add: invalid domain name 'bad_domain!'")
    assert fails(keel, "domain", "add", "x-.test").startswith(
        "keelctl: domain add: invalid domain name")

    ok(keel, "domain", "del", "other.test")
    assert [d["name"] for d in js(keel, "domain", "list")] == [D]
    assert fails(keel, "domain", "del", "other.test") == \
        "keelctl: domain del: domain other.test does not exist"


def test_domain_alias(dom):
    ok(dom, "domain", "alias", "alias.test", D)
    doms = {d["name"]: d for d in js(dom, "domain", "list")}
    assert doms["alias.test"]["alias_of"] == D
    assert re.search(r"^alias\.test\s+example\.test\s", ok(dom, "domain", "list").stdout,
                     re.M)
    assert fails(dom, "domain", "alias", "x.test", "nowhere.test") == \
        "keelctl: domain alias: domain nowhere.test does not exist"
    err = fails(dom, "domain", "alias", "y.test", "alias.test")
    assert "alias.test is itself an alias" in err
    # Users belong to the primary domain.
    err = fails(dom, "user", "add", "ann@alias.test")
    assert err.startswith("keelctl: user add: domain alias.test is an alias of example.test")
    # The primary domain cannot go while its alias domain exists.
    assert fails(dom, "domain", "del", D).startswith("keelctl: domain del: ")
    ok(dom, "domain", "del", "alias.test")
    ok(dom, "domain", "del", D)


def test_domain_del_refused_with_users(dom):
    add_user(dom, "ann@" + D)
    assert fails(dom, "domain", "del", D) == \
        "keelctl: domain del: domain example.test still has 1 user"
    assert D in [d["name"] for d in js(dom, "domain", "list")]
    ok(dom, "user", "del", "ann@" + D)
    ok(dom, "domain", "del", D)
    assert js(dom, "domain", "list") == []


# ---- users -----------------------------------------------------------------

def test_user_add_generated_password(dom):
    r = ok(dom, "user", "add", "ann@" + D, "--name", "Ann Example")
    lines = r.stdout.splitlines()
    pw_lines = [line for line in lines if line.startswith("password: ")]
    assert len(pw_lines) == 1
    password = pw_lines[0][len("password: "):]
    assert len(password) >= 16 and password.isalnum()
    assert r.stdout.count(password) == 1
    # Never shown again, and no hash leaves the server.
    for args in (["user", "show", "ann@" + D], ["user", "list"]):
        for out in (ok(dom, *args).stdout, ok(dom, *args, "--json").stdout):
            assert password not in out
            assert "argon2" not in out and "password" not in out
    assert password not in dom.read_log()
    u = users(dom)["ann@" + D]
    assert u["name"] == "Ann Example" and u["enabled"] is True

    # --json carries the generated password too, once.
    res = js(dom, "user", "add", "bob@" + D)
    assert res["address"] == "bob@" + D and isinstance(res["id"], int)
    assert len(res["password"]) >= 16


def test_user_add_password_stdin_and_policy(dom):
    r = ok(dom, "user", "add", "ann@" + D, "--password-stdin", input="a good long password\n")
    assert "password:" not in r.stdout
    res = js(dom, "user", "add", "bob@" + D, "--password-stdin", input="0123456789\n")
    assert "password" not in res

    err = fails(dom, "user", "add", "cy@" + D, "--password-stdin", input="short\n")
    assert err.startswith("keelctl: user add: ") and "at least 10" in err
    err = fails(dom, "user", "add", "cy@" + D, "--password-stdin", input="\n")
    assert err == "keelctl: user add: empty password on standard input"
    err = fails(dom, "user", "add", "cy@" + D, "--password-stdin", input="")
    assert err.startswith("keelctl: user add: ")
    assert "cy@" + D not in users(dom)

    # The minimum length is the live setting auth.password_min_length.
    ok(dom, "config", "set", "auth.password_min_length", "20")
    err = fails(dom, "user", "add", "cy@" + D, "--password-stdin",
                input="nineteen characters\n")
    assert "at least 20" in err
    add_user(dom, "cy@" + D, "twenty characters ok")
    # A generated password always passes, even a strict policy.
    r = ok(dom, "user", "add", "dee@" + D)
    password = re.search(r"^password: (\S+)$", r.stdout, re.M).group(1)
    assert len(password) >= 20
    ok(dom, "config", "unset", "auth.password_min_length")
    add_user(dom, "eve@" + D, "ten chars!")


def test_user_add_errors(dom):
    err = fails(dom, "user", "add", "not-an-address")
    assert err.startswith("keelctl: user add: invalid address 'not-an-address'")
    assert fails(dom, "user", "add", "a@example.org") == \
        "keelctl: user add: domain example.org does not exist"
    err = fails(dom, "user", "add", "a..b@" + D)
    assert err.startswith("keelctl: user add: invalid address")
    add_user(dom, "ann@" + D)
    assert fails(dom, "user", "add", "ANN@" + D) == \
        "keelctl: user add: ANN@example.test is already a user"
    err = fails(dom, "user", "add", "bob@" + D, "--quota", "10X")
    assert err.startswith("keelctl: user add: invalid quota '10X'")
    assert "bob@" + D not in users(dom)


def test_user_quota_and_default_quota(dom):
    add_user(dom, "ann@" + D, "correct horse battery", "--quota", "50M")
    add_user(dom, "bob@" + D, "correct horse battery", "--quota", "123")
    add_user(dom, "cy@" + D)
    u = users(dom)
    assert u["ann@" + D]["quota"] == 50 * 1024 * 1024
    assert u["bob@" + D]["quota"] == 123
    assert u["cy@" + D]["quota"] == 0
    assert re.search(r"^\d+\s+ann@example\.test\s.*\s50M\s", ok(dom, "user", "list").stdout,
                     re.M)

    # user.default_quota applies when --quota is absent.
    ok(dom, "config", "set", "user.default_quota", "2G")
    add_user(dom, "dee@" + D)
    add_user(dom, "eve@" + D, "correct horse battery", "--quota", "10K")
    u = users(dom)
    assert u["dee@" + D]["quota"] == 2 * 1024 ** 3
    assert u["eve@" + D]["quota"] == 10 * 1024
    ok(dom, "config", "unset", "user.default_quota")
    add_user(dom, "fay@" + D)
    assert users(dom)["fay@" + D]["quota"] == 0

    # user set changes it later.
    ok(dom, "user", "set", "fay@" + D, "--quota", "1G", "--name", "Fay")
    u = users(dom)["fay@" + D]
    assert u["quota"] == 1024 ** 3 and u["name"] == "Fay"
    err = fails(dom, "user", "set", "fay@" + D, "--quota", "lots")
    assert err.startswith("keelctl: user set: invalid quota 'lots'")


def test_user_list_json_shape_and_filter(dom):
    ok(dom, "domain", "add", "other.test")
    add_user(dom, "ann@" + D, "correct horse battery", "--name", "Ann")
    add_user(dom, "zed@other.test")
    listed = js(dom, "user", "list")
    assert isinstance(listed, list) and len(listed) == 2
    for u in listed:
        assert {"id", "address", "name", "quota", "used", "enabled"} <= set(u)
        assert isinstance(u["id"], int) and isinstance(u["quota"], int)
        assert isinstance(u["used"], int) and isinstance(u["enabled"], bool)
    assert [u["address"] for u in js(dom, "user", "list", "other.test")] == ["zed@other.test"]
    assert [u["address"] for u in js(dom, "user", "list", D)] == ["ann@" + D]
    assert fails(dom, "user", "list", "nowhere.test") == \
        "keelctl: user list: domain nowhere.test does not exist"
    lines = ok(dom, "user", "list").stdout.splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "NAME", "QUOTA", "USED", "ENABLED"]
    assert len(lines) == 3
    # Columns are aligned: every row has ADDRESS where the header has it.
    col = lines[0].index("ADDRESS")
    assert all(line[col:].split()[0].endswith((".test")) for line in lines[1:])


def test_user_show(dom):
    add_user(dom, "ann@" + D, "correct horse battery", "--name", "Ann Example",
             "--quota", "1G")
    u = js(dom, "user", "show", "ann@" + D)
    assert u["address"] == "ann@" + D and u["name"] == "Ann Example"
    assert u["quota"] == 1024 ** 3 and u["used"] == 0 and u["enabled"] is True
    assert isinstance(u["created"], int) and u["created"] > 0
    boxes = {m["name"]: m for m in u["mailboxes"]}
    assert {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"} <= set(boxes)
    assert boxes["Sent"]["special_use"] == "\\Sent"
    assert all(m["messages"] == 0 for m in u["mailboxes"])
    text = ok(dom, "user", "show", "ann@" + D).stdout
    assert re.search(r"^address\s+ann@example\.test$", text, re.M)
    assert re.search(r"^quota\s+1G$", text, re.M)
    assert re.search(r"^Sent\s+\\Sent\s+0\s", text, re.M)
    assert fails(dom, "user", "show", "nobody@" + D) == \
        "keelctl: user show: user nobody@example.test does not exist"


def test_user_disable_enable(dom):
    add_user(dom, "ann@" + D)
    ok(dom, "user", "disable", "ann@" + D)
    assert users(dom)["ann@" + D]["enabled"] is False
    assert re.search(r"ann@example\.test\s.*\sno$", ok(dom, "user", "list").stdout, re.M)
    ok(dom, "user", "enable", "ann@" + D)
    assert users(dom)["ann@" + D]["enabled"] is True
    assert fails(dom, "user", "disable", "bob@" + D) == \
        "keelctl: user disable: user bob@example.test does not exist"


def test_user_passwd(dom):
    add_user(dom, "ann@" + D)
    r = ok(dom, "user", "passwd", "ann@" + D)
    assert len(re.findall(r"^password: \S{16,}$", r.stdout, re.M)) == 1
    r = ok(dom, "user", "passwd", "ann@" + D, "--password-stdin", input="another good one\n")
    assert "password:" not in r.stdout
    err = fails(dom, "user", "passwd", "ann@" + D, "--password-stdin", input="tiny\n")
    assert err.startswith("keelctl: user passwd: ") and "at least 10" in err
    assert fails(dom, "user", "passwd", "nobody@" + D) == \
        "keelctl: user passwd: user nobody@example.test does not exist"


def test_user_rename_keeps_id_and_alias(dom):
    add_user(dom, "ann@" + D, "correct horse battery", "--name", "Ann")
    old_id = users(dom)["ann@" + D]["id"]
    r = ok(dom, "user", "rename", "ann@" + D, "anna@" + D)
    assert "anna@example.test" in r.stdout
    u = users(dom)
    assert "ann@" + D not in u
    assert u["anna@" + D]["id"] == old_id and u["anna@" + D]["name"] == "Ann"
    # The old address now resolves as an alias to the user.
    assert aliases(dom)["ann@" + D] == ["anna@" + D]
    assert "ann@" + D in js(dom, "user", "show", "anna@" + D)["aliases"]
    assert fails(dom, "user", "show", "ann@" + D) == \
        "keelctl: user show: user ann@example.test does not exist"
    # The alias follows the user through a second rename.
    res = js(dom, "user", "rename", "anna@" + D, "annie@" + D, "--no-alias")
    assert res["id"] == old_id and res["alias"] is False
    a = aliases(dom)
    assert "anna@" + D not in a
    assert a["ann@" + D] == ["annie@" + D]


def test_user_rename_no_alias_and_errors(dom):
    add_user(dom, "ann@" + D)
    add_user(dom, "bob@" + D)
    ok(dom, "user", "rename", "ann@" + D, "ann2@" + D, "--no-alias")
    assert aliases(dom) == {}
    assert fails(dom, "user", "rename", "ann2@" + D, "bob@" + D) == \
        "keelctl: user rename: bob@example.test is already a user"
    assert fails(dom, "user", "rename", "ann2@" + D, "ann@nowhere.test") == \
        "keelctl: user rename: domain nowhere.test does not exist"
    assert fails(dom, "user", "rename", "nobody@" + D, "x@" + D) == \
        "keelctl: user rename: user nobody@example.test does not exist"
    fails(dom, "user", "rename", "ann2@" + D, code=2)


def test_user_del(dom):
    add_user(dom, "ann@" + D)
    add_user(dom, "bob@" + D)
    ok(dom, "user", "del", "ann@" + D)
    assert list(users(dom)) == ["bob@" + D]
    assert fails(dom, "user", "del", "ann@" + D) == \
        "keelctl: user del: user ann@example.test does not exist"


# ---- aliases and groups ----------------------------------------------------

def test_alias(dom):
    add_user(dom, "ann@" + D)
    r = ok(dom, "alias", "add", "info@" + D, "ann@" + D, "someone@remote.example")
    assert "info@example.test" in r.stdout
    listed = js(dom, "alias", "list")
    assert len(listed) == 1 and isinstance(listed[0]["id"], int)
    assert listed[0]["address"] == "info@" + D
    assert sorted(listed[0]["targets"]) == ["ann@" + D, "someone@remote.example"]
    text = ok(dom, "alias", "list").stdout.splitlines()
    assert text[0].split() == ["ADDRESS", "TARGETS"]
    assert text[1].startswith("info@example.test") and "someone@remote.example" in text[1]
    assert "info@" + D in js(dom, "user", "show", "ann@" + D)["aliases"]

    assert fails(dom, "alias", "add", "info@" + D, "ann@" + D) == \
        "keelctl: alias add: info@example.test is already an alias"
    assert fails(dom, "alias", "add", "ann@" + D, "x@remote.example") == \
        "keelctl: alias add: ann@example.test is already a user"
    err = fails(dom, "alias", "add", "x@" + D, "not an address")
    assert err.startswith("keelctl: alias add: invalid target 'not an address'")
    assert fails(dom, "alias", "add", "x@nowhere.test", "ann@" + D) == \
        "keelctl: alias add: domain nowhere.test does not exist"
    fails(dom, "alias", "add", "x@" + D, code=2)

    ok(dom, "alias", "del", "info@" + D)
    assert js(dom, "alias", "list") == []
    assert fails(dom, "alias", "del", "info@" + D) == \
        "keelctl: alias del: alias info@example.test does not exist"


def test_group(dom):
    add_user(dom, "ann@" + D)
    add_user(dom, "bob@" + D)
    ok(dom, "group", "add", "team@" + D)
    ok(dom, "group", "member", "add", "team@" + D, "ann@" + D)
    ok(dom, "group", "member", "add", "team@" + D, "bob@" + D)
    groups = js(dom, "group", "list")
    assert len(groups) == 1 and groups[0]["address"] == "team@" + D
    assert sorted(groups[0]["members"]) == ["ann@" + D, "bob@" + D]
    text = ok(dom, "group", "list").stdout.splitlines()
    assert text[0].split() == ["ADDRESS", "MEMBERS"]
    assert text[1].startswith("team@example.test") and "bob@example.test" in text[1]
    assert js(dom, "user", "show", "ann@" + D)["groups"] == ["team@" + D]

    assert fails(dom, "group", "add", "team@" + D) == \
        "keelctl: group add: team@example.test is already a group"
    assert fails(dom, "group", "member", "add", "team@" + D, "ann@" + D) == \
        "keelctl: group member add: ann@example.test is already a member of team@example.test"
    assert fails(dom, "group", "member", "add", "team@" + D, "cy@" + D) == \
        "keelctl: group member add: user cy@example.test does not exist"
    assert fails(dom, "group", "member", "add", "crew@" + D, "ann@" + D) == \
        "keelctl: group member add: group crew@example.test does not exist"

    ok(dom, "group", "member", "del", "team@" + D, "ann@" + D)
    assert js(dom, "group", "list")[0]["members"] == ["bob@" + D]
    assert fails(dom, "group", "member", "del", "team@" + D, "ann@" + D) == \
        "keelctl: group member del: ann@example.test is not a member of team@example.test"
    # Deleting a user takes it out of its groups.
    ok(dom, "user", "del", "bob@" + D)
    assert js(dom, "group", "list")[0]["members"] == []
    ok(dom, "group", "del", "team@" + D)
    assert js(dom, "group", "list") == []
    assert fails(dom, "group", "del", "team@" + D) == \
        "keelctl: group del: group team@example.test does not exist"


# ---- settings --------------------------------------------------------------

def test_config_list_get_set_unset(keel):
    listed = {s["key"]: s for s in js(keel, "config", "list")}
    assert {"auth.password_min_length", "user.default_quota"} <= set(listed)
    for s in listed.values():
        assert {"key", "value", "default", "set", "doc"} <= set(s)
        assert s["set"] is False and s["value"] == s["default"]
    assert listed["auth.password_min_length"]["default"] == "10"
    assert listed["user.default_quota"]["default"] == "0"
    lines = ok(keel, "config", "list").stdout.splitlines()
    assert lines[0].split() == ["KEY", "VALUE", "DEFAULT", "SET"]
    assert any(line.split() == ["auth.password_min_length", "10", "10", "no"]
               for line in lines)

    assert ok(keel, "config", "get", "auth.password_min_length").stdout == "10\n"
    r = ok(keel, "config", "set", "auth.password_min_length", "12")
    assert r.stdout == "auth.password_min_length = 12\n"
    assert ok(keel, "config", "get", "auth.password_min_length").stdout == "12\n"
    got = js(keel, "config", "get", "auth.password_min_length")
    assert got["value"] == "12" and got["set"] is True and got["default"] == "10"

    # Sizes are stored in canonical bytes.
    ok(keel, "config", "set", "user.default_quota", "50M")
    assert ok(keel, "config", "get", "user.default_quota").stdout == "52428800\n"

    r = ok(keel, "config", "unset", "auth.password_min_length")
    assert r.stdout == "auth.password_min_length = 10 (default)\n"
    got = js(keel, "config", "get", "auth.password_min_length")
    assert got["value"] == "10" and got["set"] is False
    ok(keel, "config", "unset", "auth.password_min_length")  # unsetting twice is fine


def test_config_errors(keel):
    for args in (["get", "no.such_key"], ["set", "no.such_key", "1"],
                 ["unset", "no.such_key"]):
        err = fails(keel, "config", *args)
        assert err == f"keelctl: config {args[0]}: unknown setting no.such_key"
    err = fails(keel, "config", "set", "auth.password_min_length", "abc")
    assert err.startswith("keelctl: config set: ")
    assert "auth.password_min_length" in err and "abc" in err
    err = fails(keel, "config", "set", "auth.password_min_length", "0")
    assert "auth.password_min_length" in err and "between 1 and" in err
    err = fails(keel, "config", "set", "user.default_quota", "lots")
    assert "user.default_quota" in err and "size" in err
    # Nothing was changed by the refused values.
    assert ok(keel, "config", "get", "auth.password_min_length").stdout == "10\n"
    assert ok(keel, "config", "get", "user.default_quota").stdout == "0\n"


def test_config_survives_restart(keel):
    ok(keel, "config", "set", "auth.password_min_length", "14")
    keel.stop()
    keel.start()
    assert ok(keel, "config", "get", "auth.password_min_length").stdout == "14\n"
    ok(keel, "domain", "add", D)
    err = fails(keel, "user", "add", "ann@" + D, "--password-stdin", input="thirteen char\n")
    assert "at least 14" in err


def test_reload(keel):
    assert ok(keel, "reload").stdout == "reloaded\n"


# ---- the wire format -------------------------------------------------------

def raw_exchange(path, data, n_replies):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(data)
        buf = b""
        while buf.count(b"\n") < n_replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return [json.loads(line) for line in buf.decode().splitlines()]


def test_wire_format(keel):
    reqs = [
        b'{"cmd": "domain.add", "args": {"name": "wire.test"}}\n',
        b'this is not json\n',
        b'{"cmd": "no.such.command"}\n',
        b'{"cmd": "domain.list"}\n',
        b'{"cmd": "user.add", "args": {"address": 7}}\n',
    ]
    replies = raw_exchange(keel.socket, b"".join(reqs), len(reqs))
    assert len(replies) == 5
    assert replies[0]["ok"] is True and replies[0]["result"]["name"] == "wire.test"
    assert replies[1]["ok"] is False and replies[1]["code"] == "usage"
    assert "JSON" in replies[1]["error"]
    assert replies[2] == {"ok": False, "code": "usage",
                          "error": "unknown command no.such.command"}
    assert [d["name"] for d in replies[3]["result"]] == ["wire.test"]
    assert replies[4]["ok"] is False and replies[4]["code"] == "usage"


def test_wire_long_line_refused(keel):
    data = b"x" * (2 * 1024 * 1024) + b"\n" + b'{"cmd": "domain.list"}\n'
    replies = raw_exchange(keel.socket, data, 2)
    assert len(replies) == 2
    assert replies[0] == {"ok": False, "code": "usage", "error": "request line too long"}
    # The connection goes on with the next line.
    assert replies[1] == {"ok": True, "result": []}
    ok(keel, "status")
