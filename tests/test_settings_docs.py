"""Every live setting is documented with its true default in docs/settings.md."""

import os
import re

from conftest import TOP


def test_every_setting_documented_with_its_default(keel):
    r = keel.ctl("config", "list", json_out=True)
    assert r.returncode == 0, r.stderr
    doc = open(os.path.join(TOP, "docs", "settings.md")).read()
    rows = {m.group(1): m.group(2) for m in
            re.finditer(r"^\| `([a-z0-9_.]+)` \|[^|]*\| `([^`]*)` \|", doc, re.M)}
    keys = {s["key"] for s in r.json}
    assert keys == set(rows), (keys ^ set(rows))
    for s in r.json:
        assert canonical(rows[s["key"]], s["type"]) == s["default"], s["key"]


def canonical(text, kind):
    """The form keelctl prints for a value written as in the docs."""
    units = {"duration": {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800},
             "size": {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}}.get(kind)
    if units and text and text[-1] in units:
        return str(int(text[:-1]) * units[text[-1]])
    return text
