"""Registry enrichment in the running ingester: household/building tags by the assignment valid at the
reading's time (meter swap and move mid-day), unknown devices quarantined, registry changes picked up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
from sqlalchemy.orm import Session

from ingest.localservices import Mosquitto
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from ingest.registry.assignments import create_assignment, swap_meter
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import make_engine, session_factory
from ingest.registry.fleet import create_device
from ingest.registry.migrate import upgrade
from ingest.registry.models import Device, Gateway, GatewayStatus
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

T0 = dt.datetime(2025, 11, 28, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _registry(path: Path) -> tuple[str, Session, dict[str, int]]:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    session = session_factory(engine)()
    building = create_building(session, name="Haus A")
    h1 = create_household(session, building_id=building.id, name="A-01")
    h2 = create_household(session, building_id=building.id, name="A-02")
    gateway = Gateway(
        name="gw-9", building_id=building.id, status=GatewayStatus.active, broker_username="gw-gw-9"
    )
    session.add(gateway)
    session.commit()
    old = create_device(session, gateway_id=gateway.id, native_id="meter-old", profile_id="generic-json")
    new = create_device(session, gateway_id=gateway.id, native_id="meter-new", profile_id="generic-json")
    mover = create_device(session, gateway_id=gateway.id, native_id="mover", profile_id="generic-json")
    create_assignment(session, device_id=old.id, valid_from=T0, household_id=h1.id)
    swap_meter(session, old_device_id=old.id, new_device_id=new.id, at=T0 + 12 * HOUR)
    create_assignment(session, device_id=mover.id, valid_from=T0, valid_to=T0 + 6 * HOUR, household_id=h2.id)
    create_assignment(session, device_id=mover.id, valid_from=T0 + 6 * HOUR, building_id=building.id)
    return url, session, {"gw-9": gateway.id, "A-02": h2.id}


def test_meter_swap_move_and_unknown_device(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    url, session, ids = _registry(tmp_path / "registry.db")
    ingester.start(registry={"enrich": True, "url": url, "refresh_s": 0.5})
    messages = [("meter-old", T0 + h * HOUR) for h in range(1, 12)]
    messages += [("meter-new", T0 + h * HOUR) for h in range(13, 24)]
    messages += [("mover", T0 + HOUR), ("mover", T0 + 7 * HOUR), ("ghost", T0 + HOUR)]

    def publish(batch: list[tuple[str, dt.datetime]]) -> None:
        with Publisher("127.0.0.1", mosquitto.port) as publisher:
            for device, at in batch:
                payload = orjson.dumps({"ts": _ms(at), "power_w": 100.0})
                publisher.publish(f"{target.topic_prefix}lab/gw-9/{device}/state", payload)
            publisher.flush()

    publish(messages)
    wait_for(lambda: influx.count("electricity", "power_w") == len(messages) - 1, timeout=30, what="points")
    rows = influx.rows("SELECT power_w, household, building FROM electricity GROUP BY device")
    by_device: dict[str, set[tuple[str | None, str | None]]] = {}
    for row in rows:
        by_device.setdefault(row["device"], set()).add((row["household"], row["building"]))
    assert by_device["meter-old"] == {("A-01", "Haus A")}
    assert by_device["meter-new"] == {("A-01", "Haus A")}  # the swap keeps the household
    mover = {row["time"]: row["household"] for row in rows if row["device"] == "mover"}
    assert mover == {_ms(T0 + HOUR) * 1_000_000: "A-02", _ms(T0 + 7 * HOUR) * 1_000_000: None}
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as q:
        entries = q.list()
    assert [(e.reason, e.topic) for e in entries] == [
        ("unknown_device", f"{target.topic_prefix}lab/gw-9/ghost/state")
    ]

    # register the ghost: the ingester picks the change up without a restart
    ghost = create_device(session, gateway_id=ids["gw-9"], native_id="ghost", profile_id="generic-json")
    create_assignment(session, device_id=ghost.id, valid_from=T0, household_id=ids["A-02"])

    def ghost_rows() -> list[dict[str, object]]:
        return influx.rows("SELECT power_w, household FROM electricity WHERE device = 'ghost'")

    # the quarantined message is replayed once a registry refresh has seen the registration
    wait_for(lambda: len(ghost_rows()) == 1, timeout=30, what="the ghost's quarantined message replayed")
    publish([("ghost", T0 + 2 * HOUR)])  # after that refresh, so it is enriched live
    rows = wait_for(lambda: len(ghost_rows()) == 2 and ghost_rows(), timeout=30, what="the live message")
    assert [row["household"] for row in rows] == ["A-02", "A-02"]

    # the ingester records when it last heard from each device (receive time), in the registry
    def last_seen(native_id: str) -> dt.datetime | None:
        session.expire_all()
        device = session.query(Device).filter_by(native_id=native_id).one()
        return device.last_seen

    heard = wait_for(lambda: last_seen("ghost"), timeout=10, what="ghost's last_seen")
    assert abs((dt.datetime.now(dt.UTC) - heard).total_seconds()) < 60
    assert last_seen("meter-old") is not None
    gateway = session.query(Gateway).filter_by(name="gw-9").one()
    assert gateway.last_seen is not None
