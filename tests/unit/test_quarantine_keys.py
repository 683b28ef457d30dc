"""Quarantine schema 2: device keys per entry, the upgrade of a version 1 file, the per-device queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ingest.quarantine import SCHEMA_VERSION, Quarantine, QuarantineEntry, QuarantineError

V1_SCHEMA = """
CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    topic          TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    received_ns    INTEGER NOT NULL,
    profile        TEXT,
    reason         TEXT    NOT NULL,
    detail         TEXT    NOT NULL,
    quarantined_ns INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'replayed')),
    replayed_ns    INTEGER
);
CREATE INDEX quarantine_status_reason ON quarantine (status, reason);
CREATE INDEX quarantine_received ON quarantine (received_ns);
PRAGMA user_version=1;
"""


def _v1_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    rows = [
        (
            "lab/gw-1/tele/plug-1/SENSOR",
            "unknown_device",
            "device 'plug-1' behind gateway 'gw-1' is not registered",
        ),
        (
            "lab/gw-1/tele/o'k/SENSOR",
            "unknown_device",
            "device \"o'k\" behind gateway 'gw-1' is not registered",
        ),
        ("lab/gw-1/odd/topic", "no_profile", "no device profile matches the topic"),
        ("lab/gw-2/x/state", "unknown_device", "some other text"),
    ]
    for n, (topic, reason, detail) in enumerate(rows):
        conn.execute(
            "INSERT INTO quarantine (topic, payload, received_ns, reason, detail, quarantined_ns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (topic, b"{}", 1000 + n, reason, detail, 2000 + n),
        )
    conn.commit()
    conn.close()


def test_version_1_file_is_upgraded_and_its_unknown_devices_keyed(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    _v1_file(path)
    with Quarantine(path, read_only=True) as old:  # read as it is, before any upgrade
        assert not old.has_device_keys
        assert [r.gateway for r in old.list()] == [None] * 4
        assert old.pending_device_keys("unknown_device") == set()
    with Quarantine(path) as q:
        assert q.has_device_keys
        assert q._query("PRAGMA user_version", ())[0][0] == SCHEMA_VERSION
        keys = [(r.gateway, r.device) for r in q.list()]
        assert keys == [("gw-1", "plug-1"), ("gw-1", "o'k"), (None, None), (None, None)]
        assert q.pending_device_keys("unknown_device") == {("gw-1", "plug-1"), ("gw-1", "o'k")}
        new_id = q.add(QuarantineEntry("t", b"", 5, "unknown_device", "d", None, "gw-1", "plug-1")).id
        assert [r.id for r in q.pending_of_device(("gw-1", "plug-1"), reasons=["unknown_device"])] == [
            1,
            new_id,
        ]
    with Quarantine(path) as again:  # a second open changes nothing
        assert len(again.list()) == 5


def test_per_device_queries(tmp_path: Path) -> None:
    with Quarantine(tmp_path / "q.sqlite3") as q:
        entries = [
            QuarantineEntry("a", b"1", 10, "unknown_device", "", "tasmota", "gw", "a"),
            QuarantineEntry("a", b"2", 30, "unknown_device", "", "tasmota", "gw", "a"),
            QuarantineEntry("b", b"3", 20, "unknown_device", "", "tasmota", "gw", "b"),
            QuarantineEntry("lab/gw/zz", b"4", 40, "no_profile", ""),
            QuarantineEntry("lab/gw/zz", b"5", 50, "no_profile", ""),
        ]
        ids = [s.id for s in q.add_many(entries)]
        q.mark_replayed([ids[2]])
        summary = q.pending_by_device(["unknown_device"])
        assert [(s.gateway, s.device, s.messages, s.first_ns, s.last_ns) for s in summary] == [
            ("gw", "a", 2, 10, 30)
        ]
        assert summary[0].newest_id == ids[1]
        assert summary[0].oldest_id == ids[0]
        topics = q.pending_by_topic("no_profile")
        assert [(t.topic, t.messages, t.first_ns, t.last_ns, t.newest_id) for t in topics] == [
            ("lab/gw/zz", 2, 40, 50, ids[4])
        ]
        assert q.pending_of_device(("gw", "a"), reasons=["unknown_device"], after_id=ids[0]) == [
            q.get(ids[1])
        ]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    Quarantine(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(QuarantineError, match="schema version"):
        Quarantine(path)
