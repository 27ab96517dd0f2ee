"""End-to-end fixtures: a real keeld on free loopback ports in a temporary
data dir, driven with keelctl and real clients.

    def test_x(keel):            # a started server
        r = keel.ctl("domain", "add", "a.test")
        assert r.returncode == 0

    def test_y(keel_factory):    # start one with other settings
        k = keel_factory(extra_conf="workers = 1")
        k.start()

Each server's stderr (the log) is kept in DATA_DIR/../keeld.log; at teardown
the fixture fails the test if it holds a sanitizer report.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KEEL_BUILD", os.path.join(TOP, "build", "asan"))
KEELD = os.path.join(BUILD, "keeld")
KEELCTL = os.path.join(BUILD, "keelctl")

SERVICES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]


def free_ports(n, host="127.0.0.1"):
    """n distinct free ports: all are held open at once while they are
    chosen, so the kernel cannot hand out the same one twice."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def children(pid):
    """PIDs of pid's child processes."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


class Keel:
    def __init__(self, services=SERVICES, extra_conf=""):
        # Not pytest's tmp_path: that is mode 0700 under root, and the worker
        # runs as the `keel` user when the tests run as root.
        self.dir = tempfile.mkdtemp(prefix="keel-e2e-")
        os.chmod(self.dir, 0o755)
        self.data_dir = os.path.join(self.dir, "data")
        self.conf_path = os.path.join(self.dir, "keel.conf")
        self.log_path = os.path.join(self.dir, "keeld.log")
        self.socket = os.path.join(self.data_dir, "keel.sock")
        self.ports = dict(zip(services, free_ports(len(services))))
        self.extra_conf = extra_conf
        self.proc = None
        self.log = None
        self.write_conf()

    def conf_text(self, ports=None, extra=None):
        ports = self.ports if ports is None else ports
        lines = [
            "# written by tests/conftest.py",
            "hostname = mail.keel.test",
            "data_dir = data",
            "log = stderr",
            "log_level = debug",
            "workers = 2",
        ]
        if os.geteuid() == 0:
            lines.append("user = keel")
        for service, port in ports.items():
            lines.append(f"{service}.listen = 127.0.0.1:{port}")
        lines.append(self.extra_conf if extra is None else extra)
        return "\n".join(lines) + "\n"

    def write_conf(self, text=None):
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text() if text is None else text)

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [KEELD, "-f", "-c", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"keeld exited with {self.proc.returncode}:\n{self.read_log()}")
            return self.ctl("status").returncode == 0
        wait_for(ready, timeout=timeout, what="keeld to answer on its admin socket")

    def ctl(self, *args, input=None, check=False, json_out=False):
        argv = [KEELCTL, "-s", self.socket] + list(args)
        if json_out:
            argv.append("--json")
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"keelctl {' '.join(args)} -> {r.returncode}: {r.stderr}")
        if json_out and r.returncode == 0:
            r.json = json.loads(r.stdout)
        return r

    def worker_pid(self):
        kids = children(self.proc.pid)
        return kids[0] if kids else None

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("keeld did not stop within %ss of SIGTERM" % timeout)

    def sanitizer_reports(self):
        log = self.read_log()
        return [line for line in log.splitlines() if any(m in line for m in SANITIZER_MARKS)]

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.log:
                self.log.close()
            reports = self.sanitizer_reports()
            log = self.read_log()
            shutil.rmtree(self.dir, ignore_errors=True)
            if reports:
                raise AssertionError("sanitizer report in keeld's log:\n" + log[-20000:])


@pytest.fixture
def keel_factory():
    made = []

    def make(**kwargs):
        k = Keel(**kwargs)
        made.append(k)
        return k

    yield make
    errors = []
    for k in made:
        try:
            k.cleanup()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def keel(keel_factory):
    return keel_factory().start()
