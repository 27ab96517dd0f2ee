"""keeld as a daemon: start-up, keel.conf errors, listeners, TLS, the
master restarting a killed worker, live reload, clean stop."""

import hashlib
import os
import pwd
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import KEELD, children, free_port, wait_for


def run_keeld(*args):
    return subprocess.run([KEELD, *args], capture_output=True, text=True, timeout=30)


def banner(port, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        return s.recv(512).decode()


def tls_peer(port, min_version=None, max_version=None):
    """(DER certificate fingerprint, TLS version, first line) of a TLS port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="mail.keel.test") as s:
            der = s.getpeercert(binary_form=True)
            line = s.recv(512).decode()
            return hashlib.sha256(der).hexdigest(), s.version(), line


def make_cert(dir, name, cn="mail.keel.test"):
    cert = os.path.join(dir, name + ".crt")
    key = os.path.join(dir, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + cn,
                    "-days", "2", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    with open(cert, "rb") as f:
        pem = f.read()
    der = ssl.PEM_cert_to_DER_cert(pem.decode())
    return cert, key, hashlib.sha256(der).hexdigest()


def test_version_and_help():
    r = run_keeld("--version")
    assert r.returncode == 0 and r.stdout.startswith("keeld ")
    r = run_keeld("--help")
    assert r.returncode == 0 and "-c, --config FILE" in r.stdout
    r = run_keeld("--no-such-option")
    assert r.returncode == 2


@pytest.mark.parametrize("line,key,problem", [
    ("colour = blue", "colour", "unknown key"),
    ("smtp.listen = 127.0.0.1", "smtp.listen", "ADDR:PORT"),
    ("imap.listen = 127.0.0.1:99999", "imap.listen", "ADDR:PORT"),
    ("workers = 0", "workers", "1 to 256"),
    ("log_level = chatty", "log_level", "error, warn, info, debug"),
    ("store = postgresql://db/keel", "store", "not part of this build"),
    ("this is not a setting", "this is not a setting", "key = value"),
])
def test_bad_config_names_file_line_and_key(tmp_path, line, key, problem):
    conf = tmp_path / "keel.conf"
    conf.write_text("# comment\ndata_dir = data\n" + line + "\n")
    r = run_keeld("-t", "-c", str(conf))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"{conf}:3: key '{key}'" in lines[0]
    assert problem in lines[0]


def test_duplicate_key_and_good_config(tmp_path):
    conf = tmp_path / "keel.conf"
    conf.write_text("data_dir = a\ndata_dir = b\n")
    r = run_keeld("-t", "-c", str(conf))
    assert r.returncode == 1 and "given more than once" in r.stderr
    conf.write_text("data_dir = a\nsmtp.listen = 127.0.0.1:2525, [::1]:2525\n")
    r = run_keeld("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert "2 listeners" in r.stdout
    r = run_keeld("-t", "-c", str(tmp_path / "missing.conf"))
    assert r.returncode == 1 and "No such file" in r.stderr


def test_every_service_listens(keel):
    for service in ("smtp", "submission"):
        assert banner(keel.ports[service]).startswith("220 mail.keel.test ESMTP")
    assert banner(keel.ports["imap"]).startswith("* OK [CAPABILITY IMAP4rev1")
    assert banner(keel.ports["pop3"]).startswith("+OK mail.keel.test Keel POP3")
    for service in ("submissions", "imaps", "pop3s"):
        fp, version, line = tls_peer(keel.ports[service])
        assert version in ("TLSv1.2", "TLSv1.3")
        assert line
    status = keel.ctl("status", json_out=True)
    assert status.returncode == 0
    listed = {(l["service"], l["address"]) for l in status.json["listeners"]}
    for service, port in keel.ports.items():
        assert (service, f"127.0.0.1:{port}") in listed


def test_tls_versions_and_selfsigned_reused(keel_factory):
    k = keel_factory(services=("imaps",))
    k.start()
    port = k.ports["imaps"]
    fp1, _, _ = tls_peer(port, max_version=ssl.TLSVersion.TLSv1_2)
    _, v13, _ = tls_peer(port, min_version=ssl.TLSVersion.TLSv1_3)
    assert v13 == "TLSv1.3"
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        tls_peer(port, max_version=ssl.TLSVersion.TLSv1_1)
    assert os.path.exists(os.path.join(k.data_dir, "tls", "selfsigned.crt"))
    assert k.stop() == 0
    k.start()
    fp2, _, _ = tls_peer(port)
    assert fp1 == fp2, "the self-signed certificate must be reused after a restart"


def test_sigkill_worker_restarts_within_a_second_on_same_sockets(keel):
    old = keel.worker_pid()
    assert old
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    new = wait_for(lambda: (p := keel.worker_pid()) and p != old and p, timeout=5,
                   interval=0.01, what="a new worker")
    started = time.monotonic() - t0
    # The listening sockets stay open in the master: a connection made
    # while the new worker starts waits in the backlog and is served.
    assert banner(keel.ports["smtp"]).startswith("220 ")
    wait_for(lambda: keel.ctl("status").returncode == 0, timeout=5, what="admin socket")
    assert started < 1.0, f"the new worker started after {started:.2f}s"
    assert new != old
    assert "event=worker_died" in keel.read_log()


def test_sigterm_stops_cleanly(keel):
    worker = keel.worker_pid()
    assert keel.stop() == 0
    assert not os.path.exists(f"/proc/{worker}")
    assert "event=stopped" in keel.read_log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", keel.ports["smtp"]), timeout=1)


def reload_with(keel, ports, via="keelctl", extra=None):
    keel.write_conf(keel.conf_text(ports=ports, extra=extra))
    if via == "keelctl":
        return keel.ctl("reload")
    os.kill(keel.proc.pid, signal.SIGHUP)
    return None


@pytest.mark.parametrize("via", ["keelctl", "sighup"])
def test_reload_adds_and_removes_listeners(keel_factory, via):
    k = keel_factory(services=("smtp", "imap"))
    k.start()
    pop3 = free_port()
    ports = {"smtp": k.ports["smtp"], "pop3": pop3}
    worker = k.worker_pid()
    r = reload_with(k, ports, via=via)
    if r is not None:
        assert r.returncode == 0, r.stderr
    wait_for(lambda: _connects(pop3), what="the new pop3 listener")
    assert banner(pop3).startswith("+OK")
    wait_for(lambda: not _connects(k.ports["imap"]), what="the imap listener to close")
    assert banner(k.ports["smtp"]).startswith("220 ")
    assert k.worker_pid() == worker, "a listener change must not restart the worker"


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_reload_keeps_admin_session(keel):
    """An open session lives through a reload."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(keel.socket)
    f = s.makefile("rw")
    f.write('{"cmd": "status", "args": {}}\n')
    f.flush()
    assert '"ok": true' in f.readline().replace('":true', '": true')
    assert keel.ctl("reload").returncode == 0
    f.write('{"cmd": "status", "args": {}}\n')
    f.flush()
    assert '"ok": true' in f.readline().replace('":true', '": true')
    s.close()


def test_reload_swaps_certificate(keel_factory):
    k = keel_factory(services=("imaps",))
    cert, key, fp_a = make_cert(k.dir, "a")
    os.chmod(k.dir, 0o755)
    extra = f"tls.cert = {cert}\ntls.key = {key}"
    k.extra_conf = extra
    k.write_conf()
    k.start()
    port = k.ports["imaps"]
    assert tls_peer(port)[0] == fp_a
    cert_b, key_b, fp_b = make_cert(k.dir, "b")
    os.replace(cert_b, cert)
    os.replace(key_b, key)
    assert tls_peer(port)[0] == fp_a, "no change before the reload"
    r = k.ctl("reload")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: tls_peer(port)[0] == fp_b, what="the new certificate")


def test_reload_refuses_bad_config_and_keeps_serving(keel):
    good = keel.conf_text()
    keel.write_conf(good + "bogus = 1\n")
    r = keel.ctl("reload")
    assert r.returncode == 1
    assert "keelctl: reload:" in r.stderr and "bogus" in r.stderr and "unknown key" in r.stderr
    assert banner(keel.ports["smtp"]).startswith("220 ")
    # A certificate that does not match its key is refused too.
    cert, _, _ = make_cert(keel.dir, "x")
    _, key2, _ = make_cert(keel.dir, "y")
    keel.write_conf(good + f"tls.cert = {cert}\ntls.key = {key2}\n")
    r = keel.ctl("reload")
    assert r.returncode == 1 and "key" in r.stderr
    keel.write_conf(good)
    assert keel.ctl("reload").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_worker_never_runs_as_root(keel):
    worker = keel.worker_pid()
    with open(f"/proc/{worker}/status") as f:
        uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
    keel_uid = pwd.getpwnam("keel").pw_uid
    assert all(int(u) == keel_uid for u in uids), uids
    with open(f"/proc/{keel.proc.pid}/status") as f:
        master_uid = [l for l in f if l.startswith("Uid:")][0].split()[1]
    assert master_uid == "0"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_refuses_root_as_worker_user(keel_factory):
    k = keel_factory(services=("smtp",), extra_conf="")
    k.write_conf(k.conf_text().replace("user = keel", "user = root"))
    r = run_keeld("-f", "-c", k.conf_path)
    assert r.returncode == 1
    assert "never runs as root" in r.stderr


def test_daemon_mode(keel_factory):
    k = keel_factory(services=("smtp",))
    k.write_conf(k.conf_text().replace("log = stderr", f"log = {k.log_path}"))
    r = run_keeld("-c", k.conf_path)
    assert r.returncode == 0, r.stderr
    pidfile = os.path.join(k.data_dir, "keeld.pid")
    pid = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(),
                       what="pid file"))
    wait_for(lambda: k.ctl("status").returncode == 0, what="admin socket")
    assert banner(k.ports["smtp"]).startswith("220 ")
    assert len(children(pid)) == 1
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the daemon to exit")
    assert not os.path.exists(pidfile)
    # A start-up error is reported by the command itself.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        k.write_conf(k.conf_text(ports={"smtp": port}))
        r = run_keeld("-c", k.conf_path)
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port} for smtp" in r.stderr


def test_refuses_data_dir_from_newer_schema(keel_factory):
    k = keel_factory(services=("smtp",))
    k.start()
    assert k.stop() == 0
    db = os.path.join(k.data_dir, "keel.db")
    subprocess.run(["sqlite3", db, "INSERT INTO schema_migrations(version, applied) "
                    "VALUES (99, 0)"], check=True)
    r = subprocess.run([KEELD, "-f", "-c", k.conf_path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "schema version 99" in r.stderr and "use a newer keeld" in r.stderr
