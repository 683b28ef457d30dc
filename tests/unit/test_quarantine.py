"""The quarantine against a real SQLite file: exact bytes, filters, stats, replay marks, threads, CLI text."""

from __future__ import annotations

import argparse
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.quarantine import (
    QUARANTINE_FILE,
    Quarantine,
    QuarantineEntry,
    QuarantineError,
    QuarantineRecord,
    QuarantineStats,
)
from ingest.quarantine_cli import add_parser, format_list, format_show, format_stats, preview

T0 = 1_764_320_400_000_000_000
NASTY = [
    b"",
    b"\xff\xfe\x00\x80",  # invalid UTF-8
    b"\xed\xa0\x80",  # an encoded surrogate: invalid UTF-8
    b'{"a": NaN}\x00trailing',
    "Zählerstand 1,5 kWh".encode("latin-1"),
    bytes(range(256)) * 40,
]


def entry(
    i: int, *, reason: str = "invalid_json", topic: str | None = None, payload: bytes = b"{"
) -> QuarantineEntry:
    return QuarantineEntry(
        topic=topic or f"tele/meter{i}/SENSOR",
        payload=payload,
        received_ns=T0 + i,
        reason=reason,
        detail=f"detail {i}",
        profile=None if i % 2 else "tasmota",
    )


@pytest.fixture
def quarantine(tmp_path: Path) -> Iterator[Quarantine]:
    q = Quarantine(tmp_path / QUARANTINE_FILE)
    yield q
    q.close()


def test_exact_bytes_round_trip(quarantine: Quarantine) -> None:
    ids = [s.id for s in quarantine.add_many(entry(i, payload=p) for i, p in enumerate(NASTY))]
    assert ids == list(range(1, len(NASTY) + 1))
    for id_, payload in zip(ids, NASTY, strict=True):
        record = quarantine.get(id_)
        assert record is not None
        assert type(record.payload) is bytes
        assert record.payload == payload
    assert quarantine.get(999) is None


@settings(max_examples=50, deadline=None)
@given(payload=st.binary(max_size=2000), topic=st.text(min_size=1, max_size=40))
def test_any_bytes_and_topic_round_trip(
    tmp_path_factory: pytest.TempPathFactory, payload: bytes, topic: str
) -> None:
    with Quarantine(tmp_path_factory.mktemp("q") / "q.sqlite3") as q:
        ((id_, _),) = q.add_many([QuarantineEntry(topic, payload, T0, "invalid_payload")])
        record = q.get(id_)
        assert record is not None
        assert record.payload == payload
        assert record.topic == topic.encode("utf-8", "backslashreplace").decode()


def test_fields_are_kept(quarantine: Quarantine) -> None:
    id_, _ = quarantine.add(
        QuarantineEntry("a/b", b"x", T0, "influx_rejected", detail="field type conflict", profile="shelly")
    )
    record = quarantine.get(id_)
    assert record is not None
    assert (record.topic, record.received_ns, record.reason, record.detail, record.profile) == (
        "a/b",
        T0,
        "influx_rejected",
        "field type conflict",
        "shelly",
    )
    assert record.status == "pending"
    assert record.replayed_ns is None
    assert record.quarantined_ns > T0


def test_add_many_is_one_transaction_and_checks_reason(quarantine: Quarantine) -> None:
    assert quarantine.add_many([]) == []
    with pytest.raises(ValueError, match="reason"):
        quarantine.add_many([entry(1), entry(2, reason="")])
    assert quarantine.count() == 0


def test_filters(quarantine: Quarantine) -> None:
    quarantine.add_many(
        [
            entry(0, reason="invalid_json", topic="tele/a/SENSOR"),
            entry(1, reason="invalid_utf8", topic="tele/b/SENSOR"),
            entry(2, reason="invalid_json", topic="shellies/c/status"),
            entry(3, reason="no_profile", topic="tele/d/STATE"),
        ]
    )
    assert [r.id for r in quarantine.list()] == [1, 2, 3, 4]
    assert [r.id for r in quarantine.list(reason="invalid_json")] == [1, 3]
    assert [r.id for r in quarantine.list(topic_like="tele/%/SENSOR")] == [1, 2]
    assert [r.id for r in quarantine.list(topic_like="tele/%")] == [1, 2, 4]
    assert [r.id for r in quarantine.list(since_ns=T0 + 2)] == [3, 4]
    assert [r.id for r in quarantine.list(reason="invalid_json", since_ns=T0 + 1)] == [3]
    assert [r.id for r in quarantine.list(limit=2)] == [1, 2]
    assert [r.id for r in quarantine.list(limit=2, offset=3)] == [4]
    assert [r.id for r in quarantine.list(newest_first=True, limit=1)] == [4]
    assert quarantine.list(reason="crc_mismatch") == []


def test_stats_count_and_mark_replayed(quarantine: Quarantine) -> None:
    ids = [
        s.id
        for s in quarantine.add_many(
            [entry(i, reason=("invalid_json", "no_profile", "invalid_json")[i % 3]) for i in range(6)]
        )
    ]
    assert quarantine.stats() == {
        "by_reason": {"invalid_json": 4, "no_profile": 2},
        "pending": 6,
        "replayed": 0,
        "total": 6,
    }
    assert quarantine.mark_replayed([ids[0], ids[1], 999]) == 2
    assert quarantine.mark_replayed([ids[0]]) == 0  # already replayed
    assert quarantine.mark_replayed([]) == 0
    assert quarantine.stats() == {
        "by_reason": {"invalid_json": 3, "no_profile": 1},
        "pending": 4,
        "replayed": 2,
        "total": 6,
    }
    assert quarantine.count() == 6  # nothing disappears
    assert quarantine.count(status="pending") == 4
    assert quarantine.count(status="replayed") == 2
    replayed = quarantine.get(ids[0])
    assert replayed is not None
    assert replayed.status == "replayed"
    assert replayed.replayed_ns is not None
    assert [r.id for r in quarantine.list(status="pending")] == ids[2:]
    assert [r.id for r in quarantine.list(status="replayed")] == ids[:2]


def test_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / QUARANTINE_FILE
    with Quarantine(path) as q:
        ids = [s.id for s in q.add_many(entry(i, payload=p) for i, p in enumerate(NASTY))]
        q.mark_replayed(ids[:1])
    with Quarantine(path) as q:
        assert [r.payload for r in q.list()] == NASTY
        assert q.count(status="replayed") == 1
        assert q.add(entry(99)) == (len(NASTY) + 1, True)
    with Quarantine(path, read_only=True) as q:
        assert q.count() == len(NASTY) + 1
        with pytest.raises(QuarantineError):
            q.add(entry(100))


def test_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    with Quarantine(path) as q:
        q.add(entry(1))
        assert q._query("PRAGMA journal_mode", ())[0][0] == "wal"
        assert q._query("PRAGMA synchronous", ())[0][0] == 2  # FULL


def test_unusable_files(tmp_path: Path) -> None:
    with pytest.raises(QuarantineError):
        Quarantine(tmp_path / "missing.sqlite3", read_only=True)
    (tmp_path / "junk.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(QuarantineError):
        Quarantine(tmp_path / "junk.sqlite3")


def test_concurrent_use_from_threads(quarantine: Quarantine, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    reader = Quarantine(tmp_path / QUARANTINE_FILE)  # a second connection, like the CLI in another process

    def writer(k: int) -> None:
        try:
            for i in range(20):
                stored = quarantine.add_many([entry(k * 1000 + i, payload=bytes([k, i])) for _ in range(3)])
                ids = [s.id for s in stored]
                quarantine.mark_replayed(ids[:1])
                quarantine.stats()
                reader.count()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert quarantine.count() == 6 * 20 * 3
    assert reader.stats()["replayed"] == 6 * 20
    assert len({r.id for r in quarantine.list(limit=1000)}) == 360
    reader.close()


# -- CLI formatting and wiring -------------------------------------------------------------------------


def record(payload: bytes, **kw: object) -> QuarantineRecord:
    fields: dict[str, object] = {
        "id": 7,
        "topic": "tele/m/SENSOR",
        "payload": payload,
        "received_ns": T0,
        "profile": None,
        "reason": "invalid_json",
        "detail": "Expecting value: line 1 column 1",
        "quarantined_ns": T0 + 1_000_000,
        "status": "pending",
        "replayed_ns": None,
    }
    fields.update(kw)
    return QuarantineRecord(**fields)  # type: ignore[arg-type]


def test_preview_and_show() -> None:
    assert preview(b'{"a":\n1}') == '{"a":\\n1}'
    assert preview(b"\xff\x00") == "hex:ff00"
    assert len(preview(b"x" * 500)) == 48
    text = format_show(record(b'{"power": "1,5"}'))
    assert "payload (UTF-8):\n" + '{"power": "1,5"}' in text
    assert "2025-11-28T09:00:00.000Z" in text
    binary = format_show(record(b"\xff\xfeAB"))
    assert "00000000  ff fe 41 42" in binary
    assert "|..AB|" in binary
    data = json.loads(format_show(record(b"\xff\xfeAB"), as_json=True))
    assert base64.b64decode(data["payload_base64"]) == b"\xff\xfeAB"
    assert data["payload_text"] is None
    assert data["payload_bytes"] == 4


def test_format_list_and_stats() -> None:
    assert format_list([]) == "no quarantined messages"
    table = format_list([record(b"{"), record(b"", id=8, reason="no_profile")]).splitlines()
    assert table[0].split() == ["ID", "STATUS", "QUARANTINED", "REASON", "BYTES", "TOPIC", "PAYLOAD"]
    assert table[2].split()[:5] == ["8", "pending", "2025-11-28T09:00:00.001Z", "no_profile", "0"]
    assert json.loads(format_list([record(b"{")], as_json=True))[0]["id"] == 7
    stats = QuarantineStats(by_reason={"invalid_json": 3}, pending=3, replayed=1, total=4)
    assert format_stats(stats).splitlines() == [
        "REASON        PENDING",
        "invalid_json  3",
        "pending 3, replayed 1, total 4",
    ]
    assert json.loads(format_stats(stats, as_json=True)) == stats


def run_cli(argv: list[str]) -> int:
    root = argparse.ArgumentParser(prog="reallabor")
    add_parser(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / QUARANTINE_FILE
    with Quarantine(db) as q:
        ids = [s.id for s in q.add_many([entry(1, payload=b"\xff"), entry(2, reason="no_profile")])]
        q.mark_replayed(ids[1:])
    assert run_cli(["quarantine", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "hex:ff" in out
    assert "no_profile" not in out  # replayed entries only with --all
    assert run_cli(["quarantine", "list", "--db", str(db), "--all", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ids
    assert run_cli(["quarantine", "show", "--db", str(db), "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["payload_base64"] == "/w=="
    assert run_cli(["quarantine", "show", "--db", str(db), "42"]) == 1
    assert "no quarantined message with id 42" in capsys.readouterr().err
    assert run_cli(["quarantine", "stats", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["by_reason"] == {"invalid_json": 1}
    assert run_cli(["quarantine", "stats", "--db", str(tmp_path / "nope.sqlite3")]) == 1
    assert "no quarantine database" in capsys.readouterr().err


def test_cli_finds_the_database_through_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    with Quarantine(state / QUARANTINE_FILE) as q:
        q.add(entry(1))
    config = tmp_path / "settings.yaml"
    config.write_text(f"ingest:\n  state_dir: {state}\n", encoding="utf-8")
    assert run_cli(["quarantine", "stats", "--config", str(config)]) == 0
    assert "invalid_json  1" in capsys.readouterr().out
    config.write_text("ingest:\n  no_such_key: 1\n", encoding="utf-8")
    assert run_cli(["quarantine", "stats", "--config", str(config)]) == 2
