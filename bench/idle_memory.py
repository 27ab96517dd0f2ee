#!/usr/bin/python3
"""Memory per idle connection: the worker's RSS before and after N idle
connections (greeted, then silent) spread over 127.0.0.0/8 source
addresses so that no per-IP cap refuses them, for SMTP, IMAP and POP3.

    KEEL_BUILD=build/release bench/idle_memory.py [N]

Prints one line per service: N, RSS growth in KiB, KiB per connection."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from conftest import Keel  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    k = Keel().start()
    try:
        pid = k.worker_pid()
        for svc in ("smtp", "imap", "pop3"):
            socks = []
            # Warm up: the first connections allocate per-loop buffers.
            for i in range(20):
                socks.append(socket.create_connection(("127.0.0.1", k.ports[svc]),
                                                      source_address=(f"127.0.9.{i + 1}", 0)))
            time.sleep(1)
            before = rss_kib(pid)
            for i in range(n):
                src = f"127.1.{i // 250}.{i % 250 + 1}"
                s = socket.create_connection(("127.0.0.1", k.ports[svc]), timeout=10,
                                             source_address=(src, 0))
                s.recv(4096)  # the greeting
                socks.append(s)
            time.sleep(1)
            after = rss_kib(pid)
            print(f"{svc}: {n} idle connections, worker RSS +{after - before} KiB, "
                  f"{(after - before) / n:.1f} KiB per connection", flush=True)
            for s in socks:
                s.close()
            time.sleep(2)
    finally:
        k.stop()
        k.cleanup()


if __name__ == "__main__":
    main()
