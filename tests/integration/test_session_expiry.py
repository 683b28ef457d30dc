"""Issue 17: what happens to an instance's queued messages when it does not come back within the session
expiry (``mqtt.session_expiry_s``).

Mosquitto (2.0.11) goes on dealing a member of a shared subscription its round-robin share while the member
is away (its session persists) and queues it there. If the member does not return within the session
expiry, the broker drops the session and the queued share with it: messages the broker acknowledged to the
publisher, handed to no ingester, and counted by none (the ingesters' ``dropped`` stays 0; only sent -
written shows the gap). Operators must bring an instance back within the expiry, or retire it with
``--drain`` before it goes (README "Several ingesters").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.localservices import Mosquitto
from tests.helpers import InfluxQuery, Target, wait_for
from tests.scale_world import START_MS, Instance, came_in, publish_readings, went_out

pytestmark = pytest.mark.integration

EXPIRY_S = 2
AWAY = 200  # messages published while one of the two is away
MARKERS = 20  # published after it is back: its own arrive after anything still queued for it


def _indices(influx: InfluxQuery, indices: range) -> set[int]:
    """The message indices whose points are in InfluxDB (a message's timestamp is START_MS + index ms)."""
    rows = influx.rows(
        f'SELECT "power_w" FROM "electricity" WHERE time >= {START_MS + indices.start}ms '
        f"AND time < {START_MS + indices.stop}ms"
    )
    return {row["time"] // 1_000_000 - START_MS for row in rows}


def test_an_instance_away_past_its_session_expiry_loses_the_share_queued_for_it(
    mosquitto: Mosquitto, target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    present, absent = Instance.fleet(target, tmp_path, 2, session_expiry_s=EXPIRY_S)
    away, markers = range(AWAY), range(AWAY, AWAY + MARKERS)
    try:
        for instance in (present, absent):
            instance.start()
        assert absent.stop() == 0
        publish_readings(mosquitto.port, target.topic_prefix, away)
        expired = f"Expiring client {absent.client_id} due to timeout."
        wait_for(lambda: expired in mosquitto.log_path.read_text(), timeout=EXPIRY_S + 30, what=expired)

        absent.start()  # too late: a new session, subscribed again
        publish_readings(mosquitto.port, target.topic_prefix, markers)
        wait_for(lambda: _indices(influx, markers) == set(markers), timeout=30, what="every marker written")
        for instance in (present, absent):
            instance.wait_settled(timeout=30)
            assert instance.stop() == 0
    finally:
        for instance in (present, absent):
            instance.stop()

    # exactly the share dealt to the absent member is gone: every second message of those sent while it
    # was away (round-robin over two sessions); the other half is in InfluxDB
    lost = set(away) - _indices(influx, away)
    assert lost in ({*away[0::2]}, {*away[1::2]}), sorted(lost)
    (present_life,) = present.final_stats()
    absent_before, absent_after = absent.final_stats()
    assert absent_before["received"] == 0  # stopped before anything was published
    assert absent_after["received"] > 0  # a member again: a share of the markers, and nothing older
    assert present_life["received"] + absent_after["received"] == AWAY - len(lost) + MARKERS

    # the ingesters' accounting balances and shows no loss: the gap is only between sent and written
    lifetimes = [present_life, absent_before, absent_after]
    for stats in lifetimes:
        assert came_in(stats) == went_out(stats), stats
        assert stats["dropped"] == 0, stats
    written = sum(int(stats["written"]) for stats in lifetimes)
    assert AWAY + MARKERS - written == len(lost) == AWAY // 2


def test_an_instance_retired_with_drain_loses_nothing(
    mosquitto: Mosquitto, target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    """The same departure, done right: the instance is stopped and retired with ``--drain`` instead of
    left to expire. The drain takes its session back (within the expiry), writes the share queued while
    it was away and ends the session; from then on the broker deals everything to the instance that
    stays (had the session stayed, half of the later messages would be queued there, to expire)."""
    # an expiry the drain's start surely beats (a second or two), short enough to wait past
    present, retired = Instance.fleet(target, tmp_path, 2, session_expiry_s=10)
    both, away, after = range(100), range(100, 100 + AWAY), range(100 + AWAY, 100 + 2 * AWAY)
    try:
        for instance in (present, retired):
            instance.start()
        publish_readings(mosquitto.port, target.topic_prefix, both)
        present.wait_settled(timeout=30)
        assert retired.stop() == 0
        publish_readings(mosquitto.port, target.topic_prefix, away)  # its share queues in its session

        config = str(retired.process.config_path)
        which = ["--instance", str(retired.number), "--of", str(retired.of)]
        drain = subprocess.run(
            [
                sys.executable,
                "-m",
                "ingest.cli",
                "ingest",
                "--config",
                config,
                *which,
                "--drain",
                "--settle",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert drain.returncode == 0, drain.stderr
        report = json.loads(drain.stdout.splitlines()[-1])
        assert report["retired"], report

        publish_readings(mosquitto.port, target.topic_prefix, after)  # dealt to the one that stays, all of it
        wait_for(lambda: _indices(influx, after) == set(after), timeout=30, what="every later message")
        present.wait_settled(timeout=30)
        assert present.stop() == 0
    finally:
        for instance in (present, retired):
            instance.stop()

    everything = range(100 + 2 * AWAY)
    assert _indices(influx, everything) == set(everything)
    (present_life,) = present.final_stats()
    (retired_life,) = retired.final_stats()
    # the drain took exactly the share dealt to the retired instance while it was away
    assert report["taken"] == report["written"] == len(away) // 2, report
    assert retired_life["received"] + report["taken"] + present_life["received"] == len(everything)
    for stats in (present_life, retired_life):
        assert came_in(stats) == went_out(stats), stats
