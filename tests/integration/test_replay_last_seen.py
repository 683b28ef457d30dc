"""A device registered through discovery is "last seen" when its newest replayed message was received,
not "never heard": the replay records last_seen as the live path does (never moving it backwards)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from sqlalchemy import select

from ingest.localservices import Mosquitto
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from ingest.registry.models import Device
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for
from tests.integration.test_replay_registered import HOUR, T0, _pending, _publish, _register, _registry


def test_replayed_messages_record_last_seen(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    url, session, ids = _registry(tmp_path / "registry.db")
    ingester.start(registry={"enrich": True, "url": url, "refresh_s": 0.5})
    _publish(mosquitto.port, target, [("newbie", T0 + h * HOUR) for h in range(1, 4)])
    wait_for(lambda: _pending(target)["pending"] == 3, timeout=30, what="3 quarantined")
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as q:
        newest_ns = max(r.received_ns for r in q.list(reason="unknown_device"))
    time.sleep(1.5)  # registered some refreshes later: what the live path heard was flushed meanwhile

    _register(session, ids, "newbie")
    wait_for(lambda: influx.count("electricity", "power_w") == 3, timeout=30, what="replayed points")

    def last_seen() -> dt.datetime | None:
        session.expire_all()
        return session.scalar(select(Device.last_seen).where(Device.native_id == "newbie"))

    seen = wait_for(last_seen, timeout=10, what="newbie's last_seen recorded")
    assert seen.replace(tzinfo=dt.UTC) == dt.datetime.fromtimestamp(newest_ns / 1e9, dt.UTC)
