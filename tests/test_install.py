"""`make install` puts everything where an admin expects it."""

import os
import subprocess

from conftest import BUILD, TOP


def test_make_install_destdir(tmp_path):
    mode = os.path.basename(BUILD)
    r = subprocess.run(["make", "-s", "install", f"MODE={mode}", f"B={BUILD}",
                        f"DESTDIR={tmp_path}", "PREFIX=/usr"],
                       cwd=TOP, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for path, mode_bits in [("usr/sbin/keeld", 0o755), ("usr/bin/keelctl", 0o755),
                            ("usr/share/man/man8/keeld.8", 0o644),
                            ("usr/share/man/man8/keelctl.8", 0o644),
                            ("usr/share/man/man5/keel.conf.5", 0o644),
                            ("usr/share/doc/keel/keel.conf.example", 0o644),
                            ("etc/keel/keel.conf", 0o644),
                            ("usr/lib/systemd/system/keel.service", 0o644)]:
        full = tmp_path / path
        assert full.is_file(), path
        assert full.stat().st_mode & 0o777 == mode_bits, path
    unit = (tmp_path / "usr/lib/systemd/system/keel.service").read_text()
    assert "ExecStart=/usr/sbin/keeld -f -c /etc/keel/keel.conf" in unit
    # The installed example configuration is valid as shipped.
    r = subprocess.run([str(tmp_path / "usr/sbin/keeld"), "-t", "-c",
                        str(tmp_path / "etc/keel/keel.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # A second install keeps an admin's edited keel.conf.
    conf = tmp_path / "etc/keel/keel.conf"
    conf.write_text("# edited\n")
    r = subprocess.run(["make", "-s", "install", f"MODE={mode}", f"B={BUILD}",
                        f"DESTDIR={tmp_path}", "PREFIX=/usr"], cwd=TOP, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == "# edited\n"
