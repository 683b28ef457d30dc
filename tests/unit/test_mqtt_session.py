"""The memory of the persistent session (ingest/mqtt_session.py): its file, stale filters, the warnings."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from ingest.config import Settings
from ingest.mqtt_session import (
    SESSION_FILE,
    SessionMemory,
    SessionRecord,
    duration,
    session_lost_message,
    stale_filters,
)

HOUR = 3600.0
MEMORY = SessionMemory(
    client_id="reallabor-ingest-1",
    broker="127.0.0.1:1883",
    filters=("$share/a/lab/+/x/#", "$share/a/lab/+/y/#"),
    since=1_764_000_000.0,
    last_connected=1_764_003_600.0,  # 2025-11-24 17:00:00 UTC
)


def test_a_memory_is_written_owner_only_and_read_back(tmp_path: Path) -> None:
    record = SessionRecord(tmp_path / "state" / SESSION_FILE)
    record.save(MEMORY, durable=True)
    assert stat.S_IMODE(record.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.path.parent.stat().st_mode) == 0o700
    assert record.load(MEMORY.client_id) == MEMORY
    assert [p.name for p in record.path.parent.iterdir()] == [SESSION_FILE]  # no temporary file left
    record.forget()
    assert not record.path.exists()
    record.forget()  # forgetting twice is no error


def test_no_file_is_a_first_start_and_says_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert SessionRecord(tmp_path / SESSION_FILE).load("anyone") is None
    assert caplog.records == []


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "Expecting property name"),
        ("[]", "not a JSON object but list"),
        ('{"client_id": "", "broker": "b", "filters": [], "since": 0, "last_connected": 0}', "client_id: ''"),
        (
            '{"client_id": "c", "broker": "b", "filters": "x/#", "since": 0, "last_connected": 0}',
            "filters: 'x/#'",
        ),
        (
            '{"client_id": "c", "broker": "b", "filters": [], "since": 0, "last_connected": "now"}',
            "last_connected",
        ),
    ],
)
def test_a_damaged_file_is_a_warning_naming_what_is_wrong(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str, named: str
) -> None:
    path = tmp_path / SESSION_FILE
    path.write_text(content)
    assert SessionRecord(path).load("c") is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert str(path) in record.getMessage()
    assert named in record.getMessage()


def test_another_client_ids_memory_is_not_ours_and_its_session_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = SessionRecord(tmp_path / SESSION_FILE)
    record.save(MEMORY)
    assert record.load("reallabor-ingest-renamed") is None
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    text = warning.getMessage()
    assert "session of client id reallabor-ingest-1, now reallabor-ingest-renamed" in text
    assert "$share/a/lab/+/x/#" in text


def test_a_failed_write_is_one_warning_until_a_write_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    record = SessionRecord(blocked / SESSION_FILE)
    record.save(MEMORY)
    record.save(MEMORY)
    assert len(caplog.records) == 1
    assert f"cannot write {record.path}" in caplog.text


def test_stale_filters_are_the_remembered_ones_no_longer_wanted() -> None:
    assert stale_filters(None, ["x/#"]) == []
    assert stale_filters(MEMORY, MEMORY.filters) == []
    wanted = ["$share/b/lab/+/x/#", "$share/a/lab/+/y/#"]
    assert stale_filters(MEMORY, wanted) == ["$share/a/lab/+/x/#"]


def test_the_warning_of_an_expired_session() -> None:
    now = MEMORY.last_connected + 8 * 24 * HOUR + 2 * HOUR
    text = session_lost_message(MEMORY, broker="127.0.0.1:1883", session_expiry_s=7 * 24 * 3600, now=now)
    assert text.startswith(
        "mqtt: the broker 127.0.0.1:1883 holds no session for client id reallabor-ingest-1 "
    )
    assert "last connected 2025-11-24 17:00:00 UTC, away 8 d 2 h" in text
    assert "mqtt.session_expiry_s 604800 s (7 d): it expired." in text
    assert text.endswith(
        "Messages the broker queued for this instance while it was away are lost; "
        "see README Several ingesters"
    )


def test_the_warning_of_a_session_the_broker_lost_names_the_other_node() -> None:
    now = MEMORY.last_connected + 90
    text = session_lost_message(MEMORY, broker="127.0.0.2:1883", session_expiry_s=3600, now=now)
    assert "last connected 2025-11-24 17:00:00 UTC to 127.0.0.1:1883, away 1 min 30 s" in text
    assert "it had not expired: the broker lost it" in text


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "0 s"),
        (59.4, "59 s"),
        (60, "1 min"),
        (725, "12 min 5 s"),
        (3 * 3600 + 1200, "3 h 20 min"),
        (2 * 86400 + 4 * 3600 + 5, "2 d 4 h"),
    ],
)
def test_durations_are_said_in_two_units_at_most(seconds: float, said: str) -> None:
    assert duration(seconds) == said


def test_an_instances_record_is_in_its_own_state_dir(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"ingest": {"state_dir": str(tmp_path), "instance": 1, "instances": 3}}
    )
    assert SessionRecord.of(settings.as_instance()).path == tmp_path / "instance-1" / SESSION_FILE
    assert SessionRecord.of(Settings.model_validate({"ingest": {"state_dir": str(tmp_path)}})).path == (
        tmp_path / SESSION_FILE
    )


def test_the_file_says_what_it_holds(tmp_path: Path) -> None:
    record = SessionRecord(tmp_path / SESSION_FILE)
    record.save(MEMORY)
    assert json.loads(record.path.read_text()) == {
        "version": 1,
        "client_id": "reallabor-ingest-1",
        "broker": "127.0.0.1:1883",
        "filters": ["$share/a/lab/+/x/#", "$share/a/lab/+/y/#"],
        "since": 1_764_000_000.0,
        "last_connected": 1_764_003_600.0,
    }
