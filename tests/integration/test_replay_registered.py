"""Automatic replay: the quarantined messages of a device that gets registered are written, with the
household and building of its assignment, once, and counted (received + replayed = written + in spool +
quarantined). While the ingester runs (next registry refresh) and at its start (registered meanwhile)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from ingest.localservices import Mosquitto, free_port
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import make_engine, session_factory
from ingest.registry.fleet import create_device
from ingest.registry.migrate import upgrade
from ingest.registry.models import Gateway, GatewayStatus
from simulators.publisher import Publisher
from tests.helpers import (
    InfluxQuery,
    IngesterProcess,
    Target,
    assert_accounting,
    settled,
    wait_for,
)

T0 = dt.datetime(2025, 11, 28, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _registry(path: Path) -> tuple[str, Session, dict[str, int]]:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    session = session_factory(engine)()
    building = create_building(session, name="Haus B")
    household = create_household(session, building_id=building.id, name="B-07")
    gateway = Gateway(
        name="gw-7", building_id=building.id, status=GatewayStatus.active, broker_username="gw-gw-7"
    )
    session.add(gateway)
    session.commit()
    known = create_device(session, gateway_id=gateway.id, native_id="known", profile_id="generic-json")
    create_assignment(session, device_id=known.id, valid_from=T0, household_id=household.id)
    return url, session, {"gateway": gateway.id, "household": household.id}


def _publish(port: int, target: Target, messages: list[tuple[str, dt.datetime]]) -> None:
    with Publisher("127.0.0.1", port) as publisher:
        for device, at in messages:
            payload = orjson.dumps({"ts": int(at.timestamp() * 1000), "power_w": 50.0})
            publisher.publish(f"{target.topic_prefix}lab/gw-7/{device}/state", payload)
        publisher.flush()


def _pending(target: Target) -> dict[str, int]:
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as q:
        stats = q.stats()
    return {"pending": stats["pending"], "replayed": stats["replayed"]}


def _register(session: Session, ids: dict[str, int], native_id: str) -> None:
    device = create_device(session, gateway_id=ids["gateway"], native_id=native_id, profile_id="generic-json")
    create_assignment(session, device_id=device.id, valid_from=T0, household_id=ids["household"])


def test_messages_of_a_device_registered_while_running_are_replayed_once(
    mosquitto: Mosquitto,
    target: Target,
    ingester: IngesterProcess,
    influx: InfluxQuery,
    tmp_path: Path,
) -> None:
    url, session, ids = _registry(tmp_path / "registry.db")
    metrics_port = free_port()
    ingester.start(
        registry={"enrich": True, "url": url, "refresh_s": 0.5},
        ingest={"metrics_port": metrics_port},
    )
    newbie = [("newbie", T0 + h * HOUR) for h in range(1, 6)]
    _publish(mosquitto.port, target, [("known", T0 + HOUR), *newbie])
    wait_for(lambda: _pending(target)["pending"] == 5, timeout=30, what="5 quarantined")
    assert influx.count("electricity", "power_w") == 1

    registered = time.monotonic()
    _register(session, ids, "newbie")
    wait_for(lambda: influx.count("electricity", "power_w") == 6, timeout=30, what="replayed points")
    took = time.monotonic() - registered
    print(f"registration to readings in InfluxDB: {took:.2f} s (refresh_s 0.5)")
    rows = influx.rows("SELECT power_w, household, building FROM electricity WHERE device = 'newbie'")
    assert sorted(row["time"] for row in rows) == [
        int((T0 + h * HOUR).timestamp()) * 10**9 for h in range(1, 6)
    ]
    assert {(row["household"], row["building"]) for row in rows} == {("B-07", "Haus B")}
    assert _pending(target) == {"pending": 0, "replayed": 5}
    metrics = wait_for(lambda: settled(metrics_port), timeout=10, what="settled")
    assert metrics["replayed_total"] == 5
    assert metrics["received_total"] == 6
    assert_accounting(metrics)

    # idempotent: later refreshes and new messages replay nothing again
    _publish(mosquitto.port, target, [("newbie", T0 + 6 * HOUR)])
    wait_for(lambda: influx.count("electricity", "power_w") == 7, timeout=30, what="live point")
    time.sleep(1.5)
    metrics = wait_for(lambda: settled(metrics_port), timeout=10, what="settled")
    assert metrics["replayed_total"] == 5
    assert_accounting(metrics)
    assert "quarantined messages replayed" in ingester.output()


def test_a_device_registered_while_the_ingester_was_down_is_replayed_at_start(
    mosquitto: Mosquitto,
    target: Target,
    ingester: IngesterProcess,
    influx: InfluxQuery,
    tmp_path: Path,
) -> None:
    url, session, ids = _registry(tmp_path / "registry.db")
    metrics_port = free_port()
    sections: dict[str, dict[str, Any]] = {
        "registry": {"enrich": True, "url": url, "refresh_s": 0.5},
        "ingest": {"metrics_port": metrics_port},
    }
    ingester.start(**sections)
    _publish(mosquitto.port, target, [("late", T0 + h * HOUR) for h in range(1, 4)])
    wait_for(lambda: _pending(target)["pending"] == 3, timeout=30, what="3 quarantined")
    assert ingester.stop() == 0

    _register(session, ids, "late")
    ingester.start(**sections)
    wait_for(lambda: influx.count("electricity", "power_w") == 3, timeout=30, what="replayed at start")
    assert _pending(target) == {"pending": 0, "replayed": 3}
    metrics = wait_for(lambda: settled(metrics_port), timeout=10, what="settled")
    assert metrics["received_total"] == 0
    assert metrics["replayed_total"] == 3
    assert_accounting(metrics)
    rows = influx.rows("SELECT power_w, household FROM electricity")
    assert {row["household"] for row in rows} == {"B-07"}
