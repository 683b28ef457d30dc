"""Nothing assumes per-device order (issue 17, item 2): one simulated day of a small quarter, with meter
swaps (the counters restart at zero), delivered to the real ingester through the real Mosquitto three
ways, each into its own InfluxDB database: (a) in order, (b) shuffled across devices and within each
device, (c) in order with ~10 % of the messages sent twice (half right after, half far apart). The three
databases hold the same points (series, time, fields), and the energy ledger (``ingest.energy``, as
``reallabor energy rollup`` computes it) gives the same consumption per household in all three, equal to
the simulator's ground truth.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session

from ingest.consumption import daily_energy
from ingest.decode import MessageDecoder
from ingest.localservices import InfluxDB, Mosquitto, free_port
from ingest.profiles import load_profiles
from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import make_engine, session_factory
from ingest.registry.fleet import create_device
from ingest.registry.migrate import upgrade
from ingest.registry.models import Gateway, GatewayStatus
from simulators.drive import drive
from simulators.engine import Message, Periods, Simulation
from simulators.faults import FaultSpec, FaultState
from simulators.publisher import Publisher
from simulators.quarter import Quarter, make_quarter
from simulators.truth import GroundTruth
from tests.filled_day import fill_ledger
from tests.helpers import InfluxQuery, IngesterProcess, Target, assert_accounting, settled, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DAY = int(dt.datetime(2025, 6, 17, 22, tzinfo=dt.UTC).timestamp())  # 18 June 2025 00:00 CEST
DAY_DATE = dt.date(2025, 6, 18)
SEED = 20251130
DUPLICATE_SHARE = 0.1

Point = tuple[str, frozenset[tuple[str, str]], int, frozenset[tuple[str, Any]]]


def _day(*, deltas: bool = False) -> tuple[Quarter, list[Message], GroundTruth, int]:
    """The day's messages in the order the simulator sends them, its ground truth, the meter swaps.

    ``deltas``: the Shelly Pro 3EMs' totals (``emdata:0``) as a real device sends them in NotifyStatus,
    only the attributes that changed since its previous message (the simulator sends all of them)."""
    quarter = make_quarter(8, seed=4, street_sensors=0)  # all four meter families
    faults = FaultState(FaultSpec(swap=0.5), seed=3)  # about one meter in two swapped during the day
    sim = Simulation(
        quarter,
        start_s=DAY - 900,  # the first readings at midnight: the day's baselines
        interval_s=900,
        faults=faults,
        periods=Periods(heat=900, climate=3600),
    )
    truth = GroundTruth(quarter)
    messages: list[Message] = []
    drive(sim, messages.append, until_s=DAY + 86400, truth=truth)
    if deltas:
        _as_deltas(messages)
    return quarter, messages, truth, faults.swaps


def _as_deltas(messages: list[Message]) -> None:
    known: dict[str, dict[str, Any]] = {}
    for message in messages:
        if "/shellypro3em-" not in message.topic:
            continue
        document = orjson.loads(message.payload)
        params = document["params"]
        totals = params["emdata:0"]
        before, known[message.topic] = known.get(message.topic), dict(totals)
        if before is not None:
            changed = {k: v for k, v in totals.items() if before.get(k) != v}
            if changed:
                params["emdata:0"] = changed
            else:
                del params["emdata:0"]
            message.payload = orjson.dumps(document)


def _shuffled(messages: list[Message]) -> list[Message]:
    out = list(messages)
    random.Random(SEED).shuffle(out)
    return out


def _duplicated(messages: list[Message]) -> tuple[list[Message], list[int]]:
    """Every tenth message or so twice: half of them right after the first copy, half at a random later
    place (up to the end of the day). Returns the delivery and each duplicate's distance."""
    rng = random.Random(SEED + 1)
    chosen = sorted(rng.sample(range(len(messages)), round(DUPLICATE_SHARE * len(messages))))
    later: dict[int, list[Message]] = {}
    distances = []
    for n, index in enumerate(chosen):
        where = index + 1 if n % 2 == 0 else rng.randrange(index + 1, len(messages) + 1)
        later.setdefault(where, []).append(messages[index])
        distances.append(where - index)
    out: list[Message] = []
    for index, message in enumerate(messages):
        out += later.get(index, [])
        out.append(message)
    out += later.get(len(messages), [])
    return out, distances


def _registry(path: Path, quarter: Quarter) -> None:
    """Every device of the quarter registered behind its gateway and assigned to its household."""
    from ingest.demo.seed import household_devices

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    session: Session = session_factory(engine)()
    buildings = {
        number: create_building(session, name=f"Haus {number}").id
        for number in sorted({h.building for h in quarter.households})
    }
    households = {
        h.name: create_household(session, building_id=buildings[h.building], name=h.name).id
        for h in quarter.households
    }
    gateways: dict[str, int] = {}
    for h in quarter.households:
        if h.gateway not in gateways:
            row = Gateway(
                name=h.gateway,
                building_id=buildings[h.building],
                status=GatewayStatus.active,
                broker_username=f"gw-{h.gateway}",
            )
            session.add(row)
            session.commit()
            gateways[h.gateway] = row.id
    since = dt.datetime.fromtimestamp(DAY - 86400, dt.UTC)
    for gateway, device in household_devices(quarter):
        registered = create_device(
            session, gateway_id=gateways[gateway], native_id=device.native_id, profile_id=device.profile_id
        )
        assert device.household is not None
        create_assignment(
            session, device_id=registered.id, valid_from=since, household_id=households[device.household]
        )
    session.close()
    engine.dispose()


class Run:
    """One delivery into its own database through its own ingester (own client id, state, registry)."""

    def __init__(
        self, name: str, mosquitto: Mosquitto, influxdb: InfluxDB, directory: Path, registry: Path
    ) -> None:
        tag = f"{name}{uuid.uuid4().hex[:6]}"
        directory.mkdir()
        self.registry = directory / "registry.db"
        shutil.copy(registry, self.registry)
        self.target = Target(
            mqtt_port=mosquitto.port,
            influx_url=influxdb.url,
            database=f"db_{tag}",
            topic_prefix=f"{tag}/",
            client_id=f"ingest-{tag}",
            state_dir=directory / "state",
            profiles_dir=REPO / "device_profiles",
        )
        self.influx = InfluxQuery(influxdb.url, self.target.database)
        self.ingester = IngesterProcess(self.target, directory, env={**os.environ})
        self.metrics_port = free_port()

    def start(self) -> None:
        self.ingester.start(
            ingest={"metrics_port": self.metrics_port},
            registry={"enrich": True, "url": f"sqlite:///{self.registry}", "refresh_s": 60},
        )

    def publish(self, mosquitto: Mosquitto, delivery: list[Message]) -> None:
        client = f"sim-{self.target.client_id}"
        with Publisher("127.0.0.1", mosquitto.port, client_id=client, window=500) as publisher:
            for message in delivery:
                publisher.publish(self.target.topic_prefix + message.topic, message.payload)
            publisher.flush()

    def wait_written(self, sent: int) -> dict[str, float]:
        metrics: dict[str, float] = wait_for(
            lambda: (m := settled(self.metrics_port)) and m["received_total"] >= sent and m,
            timeout=40,
            what=f"{sent} messages written",
        )
        assert_accounting(metrics)
        return metrics

    def points(self) -> set[Point]:
        """Every point of every measurement but the ingester's own statistics."""
        names = [row[0] for s in self.influx.query("SHOW MEASUREMENTS") for row in s["values"]]
        out: set[Point] = set()
        for measurement in names:
            if measurement == "ingest_stats":
                continue
            for series in self.influx.query(f'SELECT * FROM "{measurement}" GROUP BY *'):
                tags = frozenset((k, v) for k, v in series.get("tags", {}).items() if v != "")
                for values in series["values"]:
                    row = dict(zip(series["columns"], values, strict=True))
                    time_ns = row.pop("time")
                    fields = frozenset((k, v) for k, v in row.items() if v is not None)
                    out.add((measurement, tags, time_ns, fields))
        return out

    def consumption(self) -> dict[tuple[str, str, str], float]:
        """The ledger's daily energy of the day: (household, device, kind) -> kWh."""
        fill_ledger(self.influx, since=DAY_DATE, until=DAY_DATE + dt.timedelta(days=1))
        rows = self.influx.rows('SELECT "kwh" FROM "rollups"."energy_1d" GROUP BY *')
        assert {dt.datetime.fromtimestamp(r["time"] // 10**9, dt.UTC) for r in rows} == {
            dt.datetime.fromtimestamp(DAY, dt.UTC)
        }
        return {(r["household"], r["device"], r["kind"]): r["kwh"] for r in rows}


@pytest.fixture
def runs(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> Iterator[dict[str, Run]]:
    made: dict[str, Run] = {}
    try:
        yield made
    finally:
        for run in made.values():
            run.ingester.stop()
            run.influx.drop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "deltas",
    [pytest.param(False, id="full-status"), pytest.param(True, id="shelly-deltas")],
)
def test_reordered_and_duplicated_delivery_gives_the_same_points_and_consumption(
    mosquitto: Mosquitto, influxdb: InfluxDB, runs: dict[str, Run], tmp_path: Path, deltas: bool
) -> None:
    quarter, messages, truth, swaps = _day(deltas=deltas)
    assert swaps >= 2
    assert not any(m.malformed for m in messages)
    assert {h.meter_family for h in quarter.households} == {"tasmota-sml", "shelly-gen2", "sml", "dsmr"}
    duplicated, distances = _duplicated(messages)
    deliveries = {"ordered": messages, "shuffled": _shuffled(messages), "duplicated": duplicated}
    # the shuffle reorders each device's own messages too, not only the devices among each other
    by_topic: dict[str, list[int]] = {}
    for m in deliveries["shuffled"]:
        by_topic.setdefault(m.topic, []).append(m.time_s)
    assert sum(times != sorted(times) for times in by_topic.values()) == len(by_topic)
    assert max(distances) > len(messages) // 2
    assert min(distances) == 1
    registry = tmp_path / "registry.db"
    _registry(registry, quarter)

    for name in deliveries:
        runs[name] = Run(name, mosquitto, influxdb, tmp_path / name, registry)
        runs[name].start()
    for name, delivery in deliveries.items():
        runs[name].publish(mosquitto, delivery)
    for name, delivery in deliveries.items():
        metrics = runs[name].wait_written(len(delivery))
        assert metrics["received_total"] == len(delivery)
        assert sum(v for k, v in metrics.items() if k.startswith("quarantined_total")) == 0, name

    points = {name: run.points() for name, run in runs.items()}
    assert len(points["ordered"]) >= len(messages)  # one point or more per message (meters: several)
    assert points["shuffled"] == points["ordered"]
    assert points["duplicated"] == points["ordered"]

    consumption = {name: run.consumption() for name, run in runs.items()}
    assert consumption["shuffled"] == pytest.approx(consumption["ordered"], abs=1e-9)
    assert consumption["duplicated"] == pytest.approx(consumption["ordered"], abs=1e-9)
    # the main meters' import and export equal the ground truth of what the simulator sent (to the Wh)
    days = {(row["household"], row["day"]): row for row in truth.rows()}
    for h in quarter.households:
        expected = days[(h.name, DAY_DATE.isoformat())]
        got = consumption["ordered"]
        assert got[(h.name, h.meter_device, "import")] * 1000 == pytest.approx(expected["import_wh"], abs=0.5)
        assert got[(h.name, h.meter_device, "export")] * 1000 == pytest.approx(expected["export_wh"], abs=0.5)
    assert sum(truth.imports[h.number].resets for h in quarter.households) >= 2  # swaps within the day


def _shelly_points(order: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """A Shelly Pro 3EM's totals: a full status, then two NotifyStatus deltas (each carries only what
    changed, as the device sends them), decoded in ``order`` by one decoder; the points by time."""
    ts = DAY + 12 * 3600
    messages = {
        "full": (
            "NotifyFullStatus",
            {"ts": ts, "emdata:0": {"total_act": 1_000_000.0, "total_act_ret": 500_000.0}},
        ),
        "import": ("NotifyStatus", {"ts": ts + 60, "emdata:0": {"total_act": 1_000_500.0}}),
        "export": ("NotifyStatus", {"ts": ts + 120, "emdata:0": {"total_act_ret": 500_100.0}}),
    }
    decoder = MessageDecoder(load_profiles(REPO / "device_profiles"))
    points = []
    for name in order:
        method, params = messages[name]
        document = {
            "src": "shellypro3em-1",
            "dst": "shellypro3em-1/events",
            "method": method,
            "params": params,
        }
        topic = "lab/gw-1/shellypro3em-1/events/rpc"
        for reading in decoder.decode(topic, orjson.dumps(document), (ts + 300) * 10**9):
            points.append((reading.time_ns, reading.fields))
    return sorted(points, key=lambda point: point[0])


def _imported(points: list[tuple[int, dict[str, Any]]]) -> dict[dt.date, float]:
    return daily_energy([(t, f["energy_import_kwh"]) for t, f in points if "energy_import_kwh" in f])


def test_shelly_deltas_decoded_out_of_order_give_the_same_points() -> None:
    in_order = _shelly_points(["full", "import", "export"])
    reordered = _shelly_points(["full", "export", "import"])
    # in order: import 1000.0, 1000.5, 1000.5 kWh -> 0.5 kWh used; reordered the export delta (decoded
    # before the import delta) carries import 1000.0 at ts+120: a drop after 1000.5, i.e. 1000.5 kWh "used"
    assert _imported(reordered) == pytest.approx(_imported(in_order))
    assert reordered == in_order
