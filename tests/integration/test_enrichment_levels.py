"""A Shelly Gen2 whose topic prefix has several levels (``home/floor1/pm``), end to end with the real
registry, Mosquitto and InfluxDB: unknown, so quarantined; registered by the CSV import with a household;
its quarantined reading is replayed and its live ones are enriched. Before, the registry refused the id
(``NativeId`` took no ``/``): the device stayed ``unknown_device`` for good."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson

from ingest.localservices import Mosquitto
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import make_engine, session_factory
from ingest.registry.device_import import import_devices
from ingest.registry.migrate import upgrade
from ingest.registry.models import Gateway, GatewayStatus
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

T0 = dt.datetime(2025, 11, 28, tzinfo=dt.UTC)
DEVICE = "home/floor1/pm"


def _notify(at: dt.datetime, power_w: float) -> bytes:
    """A Pro EM's NotifyStatus delta, as Shelly documents it (its device time in ``ts``)."""
    params = {"ts": at.timestamp(), "em1:0": {"id": 0, "act_power": power_w}}
    return orjson.dumps({"src": "shellyproem50-08f9e0e67204", "method": "NotifyStatus", "params": params})


def test_a_multi_level_shelly_is_registered_and_enriched(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = make_engine(url)
    upgrade(engine)
    session = session_factory(engine)()
    building = create_building(session, name="Haus L")
    household = create_household(session, building_id=building.id, name="L-01")
    session.add(
        Gateway(name="gw-9", building_id=building.id, status=GatewayStatus.active, broker_username="gw-9")
    )
    session.commit()
    ingester.start(registry={"enrich": True, "url": url, "refresh_s": 0.5})
    topic = f"{target.topic_prefix}lab/gw-9/{DEVICE}/events/rpc"

    def publish(at: dt.datetime, power_w: float) -> None:
        with Publisher("127.0.0.1", mosquitto.port) as publisher:
            publisher.publish(topic, _notify(at, power_w))
            publisher.flush()

    def quarantined() -> list[tuple[str, str]]:
        with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as q:
            return [(e.reason, e.topic) for e in q.list()]

    publish(T0 + dt.timedelta(hours=1), -412.7)
    assert wait_for(quarantined, timeout=30, what="the unknown device quarantined") == [
        ("unknown_device", topic)
    ]

    report = import_devices(
        session, f"gateway,native_id,profile\ngw-9,{DEVICE},shelly-gen2\n".encode(), profiles={"shelly-gen2"}
    )
    assert report.written, report.as_json()
    device_id = report.rows[0].device_id
    assert device_id is not None
    create_assignment(session, device_id=device_id, valid_from=T0, household_id=household.id)

    def rows() -> list[dict[str, object]]:
        return influx.rows(f"SELECT power_w, household, channel FROM electricity WHERE device = '{DEVICE}'")

    wait_for(lambda: len(rows()) == 1, timeout=30, what="the quarantined reading replayed")
    publish(T0 + dt.timedelta(hours=2), -300.0)  # after that refresh: enriched live
    found = wait_for(lambda: len(rows()) == 2 and rows(), timeout=30, what="the live reading")
    assert [(r["power_w"], r["household"], r["channel"]) for r in found] == [
        (-412.7, "L-01", "0"),
        (-300.0, "L-01", "0"),
    ]
