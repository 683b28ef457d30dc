"""Quarantine schema 3: an entry's identity makes a redelivered message a no-op that says so, while the
same bad payload sent again (a new message, its packet id reused) is still a new entry; old files upgrade."""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.quarantine import (
    QUARANTINE_FILE,
    SCHEMA_VERSION,
    Quarantine,
    QuarantineEntry,
    Stored,
    mqtt_identity,
    spool_line_identity,
)
from ingest.quarantine_cli import add_parser
from tests.unit.test_quarantine_keys import V1_SCHEMA

T0 = 1_764_320_400_000_000_000
SESSION = "ingest-1@127.0.0.1:1883"
TOPIC = "lab/gw-01/tele/plug-1/SENSOR"


def rejected(
    payload: bytes = b"{bad", *, packet_id: int = 7, dup: bool = False, received_ns: int = T0
) -> QuarantineEntry:
    """A decode reject as the ingester builds it from an MQTT message."""
    return QuarantineEntry(
        TOPIC,
        payload,
        received_ns,
        "invalid_json",
        "expecting value",
        identity=mqtt_identity(SESSION, TOPIC, payload, packet_id),
        redelivered=dup,
    )


@pytest.fixture
def quarantine(tmp_path: Path) -> Iterator[Quarantine]:
    with Quarantine(tmp_path / QUARANTINE_FILE) as q:
        yield q


def test_a_redelivery_after_the_commit_is_not_stored_again(quarantine: Quarantine) -> None:
    """The crash window: committed, not acknowledged; the broker sends it again with DUP set (and the
    ingester stamps it with a new receive time)."""
    assert quarantine.add(rejected()) == Stored(1, True)
    assert quarantine.add(rejected(dup=True, received_ns=T0 + 5)) == Stored(1, False)
    assert quarantine.add(rejected(dup=True, received_ns=T0 + 9)) == Stored(1, False)  # a second crash
    assert quarantine.count() == 1
    assert quarantine.stats() == {"by_reason": {"invalid_json": 1}, "pending": 1, "replayed": 0, "total": 1}
    record = quarantine.get(1)
    assert record is not None
    assert record.received_ns == T0


def test_a_redelivery_in_the_same_batch_is_collapsed_too(quarantine: Quarantine) -> None:
    """The connection dropped before the batch was committed: the message is in it twice."""
    stored = quarantine.add_many([rejected(), rejected(b"other"), rejected(dup=True)])
    assert stored == [Stored(1, True), Stored(2, True), Stored(1, False)]
    assert quarantine.count() == 2


def test_the_same_bad_payload_sent_again_is_a_new_entry(quarantine: Quarantine) -> None:
    """Packet ids are reused once acknowledged: without DUP it is another message, quarantined again, and a
    later redelivery belongs to the newest of them."""
    assert quarantine.add(rejected()) == Stored(1, True)
    assert quarantine.add(rejected()) == Stored(2, True)
    assert quarantine.add_many([rejected(), rejected(dup=True)]) == [Stored(3, True), Stored(3, False)]
    assert quarantine.stats()["by_reason"] == {"invalid_json": 3}
    assert [r.id for r in quarantine.list()] == [1, 2, 3]


def test_a_redelivery_whose_first_delivery_was_never_stored_is_added(quarantine: Quarantine) -> None:
    """Crash before the commit: the DUP copy is the only one."""
    assert quarantine.add(rejected(dup=True)) == Stored(1, True)
    assert quarantine.add(rejected(dup=True)) == Stored(1, False)


def test_entries_without_identity_are_always_added(quarantine: Quarantine) -> None:
    """QoS 0 messages have no packet id and are never sent again."""
    assert mqtt_identity(SESSION, TOPIC, b"{bad", 0) is None
    plain = QuarantineEntry(TOPIC, b"{bad", T0, "invalid_json", redelivered=True)
    assert quarantine.add_many([plain, plain]) == [Stored(1, True), Stored(2, True)]


def test_a_replayed_entry_still_absorbs_its_redelivery(quarantine: Quarantine) -> None:
    quarantine.add(rejected())
    assert quarantine.mark_replayed([1]) == 1
    assert quarantine.add(rejected(dup=True)) == Stored(1, False)
    assert quarantine.stats() == {"by_reason": {}, "pending": 0, "replayed": 1, "total": 1}


def test_identities_tell_every_part_apart() -> None:
    base = mqtt_identity(SESSION, TOPIC, b"{bad", 7)
    assert base is not None
    assert len(base) == 16
    assert base == mqtt_identity(SESSION, TOPIC, b"{bad", 7)
    others = {
        mqtt_identity("ingest-2@127.0.0.1:1883", TOPIC, b"{bad", 7),  # another session
        mqtt_identity(SESSION, TOPIC + "x", b"{bad", 7),
        mqtt_identity(SESSION, TOPIC, b"{bad ", 7),
        mqtt_identity(SESSION, TOPIC, b"{bad", 8),
        mqtt_identity(SESSION, "a", b"b", 7),
        mqtt_identity(SESSION, "ab", b"", 7),  # parts are length-prefixed: no shift between them
        mqtt_identity(SESSION, "lab/\udcff/x", b"{bad", 7),  # a topic that was not UTF-8
    }
    assert base not in others
    assert len(others) == 7
    line = b"m,device=a v=1i 1764320400000000000"
    spool = {spool_line_identity(3, 0, line), spool_line_identity(4, 0, line)}
    spool |= {spool_line_identity(3, 40, line), spool_line_identity(3, 0, line + b"0")}
    assert len(spool) == 4
    assert base not in spool
    assert spool_line_identity(3, 0, line) == spool_line_identity(3, 0, line)


def test_a_line_refused_again_after_a_restart_is_quarantined_once(quarantine: Quarantine) -> None:
    """The sink quarantined a line of spool record 12, then crashed before the checkpoint: the record is
    read and refused again, quarantined at a new time."""
    line = b"power,device=p1 w=i 1764320400000000000"

    def refused(seq: int, offset: int, at: int) -> QuarantineEntry:
        """As the sink builds it: every add may repeat one before the crash."""
        identity = spool_line_identity(seq, offset, line)
        return QuarantineEntry(
            "influx:power", line, at, "influx_rejected", "bad field", identity=identity, redelivered=True
        )

    assert quarantine.add(refused(12, 80, T0)) == Stored(1, True)
    assert quarantine.add(refused(12, 80, T0 + 10**9)) == Stored(1, False)
    assert quarantine.add(refused(13, 80, T0)) == Stored(2, True)  # the same line in a later record
    assert quarantine.count() == 2


def test_two_writers_store_a_redelivery_once(tmp_path: Path) -> None:
    """Two connections (the ingester and another process) adding the same redelivery at once."""
    path = tmp_path / QUARANTINE_FILE
    results: list[list[Stored]] = []
    start = threading.Barrier(4)

    def writer() -> None:
        with Quarantine(path) as q:
            start.wait()
            results.append(q.add_many([rejected(dup=True)] * 50))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    added = [s for batch in results for s in batch if s.added]
    assert len(results) == 4
    assert len(added) == 1
    with Quarantine(path, read_only=True) as q:
        assert q.count() == 1


# a version 2 file as the upgrade from version 1 left it (tests/unit/test_quarantine_keys.py has version 1)
V2_SCHEMA = (
    V1_SCHEMA.replace("PRAGMA user_version=1;", "")
    + """
ALTER TABLE quarantine ADD COLUMN gateway TEXT;
ALTER TABLE quarantine ADD COLUMN device TEXT;
CREATE INDEX quarantine_device ON quarantine (status, reason, gateway, device);
PRAGMA user_version=2;
"""
)


def _v2_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V2_SCHEMA)
    for n in range(3):  # the same message twice over, as the crash window stored it before
        conn.execute(
            "INSERT INTO quarantine (topic, payload, received_ns, reason, detail, quarantined_ns, gateway,"
            " device) VALUES (?, ?, ?, 'unknown_device', 'd', ?, 'gw-01', 'plug-1')",
            (TOPIC, b"{bad", T0 + n, T0 + n),
        )
    conn.commit()
    conn.close()


def test_a_version_2_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / QUARANTINE_FILE
    _v2_file(path)
    with Quarantine(path, read_only=True) as old:  # read as it is, before any upgrade
        assert old.count() == 3
        assert old.has_device_keys
    with Quarantine(path) as q:
        assert q._query("PRAGMA user_version", ())[0][0] == SCHEMA_VERSION == 3
        indexes = {row[1]: row[2] for row in q._query("PRAGMA index_list(quarantine)", ())}
        assert indexes["quarantine_identity"] == 1  # unique
        assert [row[0] for row in q._query("SELECT identity FROM quarantine", ())] == [None] * 3
        assert [(r.id, r.gateway, r.device) for r in q.list()] == [(n, "gw-01", "plug-1") for n in (1, 2, 3)]
        assert q.add(rejected()) == Stored(4, True)
        assert q.add(rejected(dup=True)) == Stored(4, False)
    with Quarantine(path) as again:  # opening an upgraded file changes nothing
        assert again.count() == 4
    with Quarantine(path, read_only=True) as reader:
        assert reader.count() == 4


def test_quarantine_stats_counts_a_redelivered_message_once(
    quarantine: Quarantine, capsys: pytest.CaptureFixture[str]
) -> None:
    quarantine.add_many([rejected(), rejected(b"[1,")])
    quarantine.add_many([rejected(dup=True), rejected(b"[1,", dup=True)])
    root = argparse.ArgumentParser(prog="reallabor")
    add_parser(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(["quarantine", "stats", "--db", str(quarantine.path), "--json"])
    assert args.func(args) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["total"], stats["by_reason"]) == (2, {"invalid_json": 2})
