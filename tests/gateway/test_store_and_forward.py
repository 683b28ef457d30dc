"""Store-and-forward with the gateway and the central broker on hosts of their own (issue 15).

Three meters on serial lines (two SML eHZ at 4 frames/s, a DSMR P1 at 2/s) and a Wi-Fi device (Tasmota, QoS
1 to the gateway's local broker, once a second) feed the real ``reallabor gateway run`` in namespace GW; the
central Mosquitto runs in namespace CENTRAL; InfluxDB and the real ingester run here. Mid-stream the central
broker restarts (SIGTERM, then started on its persistence; a SIGKILLed Mosquitto loses what it acknowledged
since its last autosave, docs/broker.md); then the uplink dies for ``OUTAGE_S`` (two
minutes; a half-open connection: the central end of the link goes down), during which the gateway host loses
its power (every process in GW SIGKILLed at once: gateway service, local broker, the read heads' lines) and
boots again, still cut off. Then the uplink returns.

Afterwards, by the unique counter in every frame: no reading is in InfluxDB twice; every frame the gateway
read is there; every message of the device that the local broker acknowledged is there, except in the
loss window around the power cut, which is measured and printed with the drain after the reconnect.
``STORE_FORWARD_OUTAGE_S`` shortens the outage for a quick run while working on this test.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ingest.localservices import InfluxDB, free_port
from tests.gateway.feeds import MeterSpec, WifiDevice, seq_of
from tests.gateway.netns import Hosts
from tests.gateway.sites import CentralBroker, GatewayHost
from tests.helpers import InfluxQuery, IngesterProcess, Target, settled, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = float(os.environ.get("STORE_FORWARD_OUTAGE_S", "120"))
STREAM_BEFORE_RESTART_S = 8.0  # meters and device streaming before the central broker restarts
CENTRAL_DOWN_S = 2.0
STREAM_BEFORE_CUT_S = 6.0
POWER_CUT_INTO_OUTAGE_S = 20.0  # the gateway host loses power this long after the uplink died
POWER_OFF_S = 3.0
STREAM_AFTER_RESTORE_S = 8.0  # fresh readings while the backlog drains
DRAIN_WAIT_S = 90.0
#: a frame completed this close to the power cut may still have been in the reader's hands: neither
#: required nor forbidden (the outbox writes each frame at once; its fsync per interval matters for a
#: kernel's crash, not for SIGKILL)
READ_MARGIN_NS = 1_000_000_000
#: a point's time is its frame's read time: within this of when the meter wrote the frame (the backlog
#: arrives a minute and more later)
STAMP_SLACK_S = 5.0
DEVICE = "sf-plug"
DEVICE_BASE = 7_000_000
METERS = [
    MeterSpec("sf-ehz-a", "sml", 4.0, base=123_450_000, serial="0a01454d480000b8ef27"),
    MeterSpec("sf-ehz-b", "sml", 4.0, base=98_760_000, serial="0a01454d480000b8ef28"),
    MeterSpec("sf-p1", "dsmr", 2.0, base=5_000_000, serial="4B384547303034303436333935353037"),
]


@dataclass
class Marks:
    """When each step happened (ns, this host's clock: the gateway's and the feeds' too)."""

    at: dict[str, int] = field(default_factory=dict)

    points: dict[str, int] = field(default_factory=dict)  # points in InfluxDB at some of the marks

    def mark(self, name: str, *, influx: InfluxQuery | None = None, gateway: str = "") -> int:
        self.at[name] = time.time_ns()
        if influx is not None:
            self.points[name] = count_points(influx, gateway)
        return self.at[name]

    def seconds(self, start: str, end: str) -> float | None:
        if start not in self.at or end not in self.at:
            return None  # a wait ran out
        return round((self.at[end] - self.at[start]) / 1e9, 2)


def poll(condition: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Whether ``condition()`` came true within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


Point = tuple[float, int]  # energy_import_kwh, time (ns)


def readings_by_device(influx: InfluxQuery, gateway: str) -> dict[str, list[Point]]:
    rows = influx.rows(
        f'SELECT "energy_import_kwh" FROM "electricity" WHERE "gateway" = \'{gateway}\' GROUP BY "device"'
    )
    found: dict[str, list[Point]] = {}
    for row in rows:
        found.setdefault(row["device"], []).append((row["energy_import_kwh"], row["time"]))
    return found


def count_points(influx: InfluxQuery, gateway: str) -> int:
    return sum(len(points) for points in readings_by_device(influx, gateway).values())


def meter_verdict(
    spec: MeterSpec, sent: list[tuple[int, int, str]], points: list[Point], *, window: tuple[int, int]
) -> dict[str, Any]:
    """What the meter wrote against what InfluxDB holds; ``window``: (power cut - margin, ports held
    again + margin), where a frame may or may not have been read. ``stamp_lag_s``: each point's time less
    when its frame was written (min, max): the read time, not when the backlog arrived."""
    present = Counter(seq_of(v, kind=spec.protocol, base=spec.base) for v, _ in points)
    written = {seq: t for seq, t, outcome in sent if outcome == "written"}
    lags = [
        t - written[seq]
        for seq, t in ((seq_of(v, kind=spec.protocol, base=spec.base), t) for v, t in points)
        if seq in written
    ]
    touched = {seq for seq, _, outcome in sent if outcome != "unsent"}
    required = {seq for seq, t in written.items() if not window[0] <= t <= window[1]}
    return {
        "written": len(written),
        "unsent": sum(1 for _, _, outcome in sent if outcome == "unsent"),
        "in_influxdb": len(present),
        "duplicates": sorted(seq for seq, n in present.items() if n > 1),
        "missing": sorted(required - present.keys()),
        "phantoms": sorted(present.keys() - touched),
        # written around the power cut, never read: seconds after the cut
        "not_read_around_power_cut_s": [
            round((written[seq] - window[0] - READ_MARGIN_NS) / 1e9, 2)
            for seq in sorted(set(written) - required - present.keys())
        ],
        "stamp_lag_s": [round(min(lags) / 1e9, 3), round(max(lags) / 1e9, 3)] if lags else [],
    }


def device_verdict(
    messages: dict[int, dict[str, int]], points: list[Point], *, marks: Marks
) -> dict[str, Any]:
    """The device's messages against InfluxDB. Required: those the local broker acknowledged before the
    power cut (less the margin) and those sent once the local broker was back."""
    present = Counter(seq_of(v, kind="tasmota", base=DEVICE_BASE) for v, _ in points)
    cut, back = marks.at["power_cut"], marks.at["local_broker_back"]
    acked = {seq: m for seq, m in messages.items() if "acked" in m}
    required = {seq for seq, m in acked.items() if m["acked"] < cut - READ_MARGIN_NS or m["sent"] >= back}
    in_window = [
        seq for seq, m in messages.items() if cut - READ_MARGIN_NS <= m.get("sent", m.get("unsent", 0)) < back
    ]
    lost = [seq for seq in in_window if seq not in present]
    lost_times = [messages[seq].get("sent", messages[seq].get("unsent", 0)) for seq in lost]
    return {
        "messages": len(messages),
        "acked_by_local_broker": len(acked),
        "unsent_broker_away": sum(1 for m in messages.values() if "unsent" in m),
        "sent_not_acked": sum(1 for m in messages.values() if "sent" in m and "acked" not in m),
        "in_influxdb": len(present),
        "duplicates": sorted(seq for seq, n in present.items() if n > 1),
        "missing": sorted(required - present.keys()),
        "phantoms": sorted(present.keys() - {seq for seq, m in messages.items() if "sent" in m}),
        "loss_window": {
            "messages_in_window": len(in_window),
            "lost": len(lost),
            "lost_acked_by_local_broker": sum(1 for seq in lost if seq in acked),
            "lost_span_s": round((max(lost_times) - min(lost_times)) / 1e9, 2) if lost_times else 0.0,
            "lost_after_power_cut_s": [round((t - cut) / 1e9, 2) for t in sorted(lost_times)],
        },
    }


@pytest.mark.timeout(300)
def test_store_and_forward_through_outage_power_cut_and_broker_restart(
    hosts: Hosts, influxdb: InfluxDB, tmp_path: Path
) -> None:
    token = hosts.core_name.removeprefix("rlsf")
    gateway = f"gw-sf-{token}"
    marks = Marks()
    central = CentralBroker(tmp_path / "central", namespace=hosts.central)
    target = Target(
        mqtt_port=central.port,
        influx_url=influxdb.url,
        database=f"db_sf_{token}",
        topic_prefix="",
        client_id=f"ingest-sf-{token}",
        state_dir=tmp_path / "ingest-state",
        profiles_dir=REPO / "device_profiles",
    )
    influx = InfluxQuery(influxdb.url, target.database)
    ingester = IngesterProcess(target, tmp_path, env={**os.environ})
    site = GatewayHost(
        tmp_path / "gw",
        namespace=hosts.gw,
        gateway=gateway,
        central=(hosts.central_wan, central.port),
        meters=METERS,
    )
    device = WifiDevice(
        tmp_path / "device",
        device=DEVICE,
        host=hosts.gw_lan,
        port=site.broker.port,
        base=DEVICE_BASE,
        namespace=hosts.dev,
    )
    metrics_port = 0
    try:
        central.start()
        metrics_port = free_port()
        ingester.start(mqtt={"host": hosts.central_core}, ingest={"metrics_port": metrics_port})
        # the ingester's session in the broker's persistence file, as a long-running broker's autosave has it
        central.save()
        site.boot()
        device.start()
        site.start_meters()
        marks.mark("streaming")

        time.sleep(STREAM_BEFORE_RESTART_S)
        marks.mark("central_restart", influx=influx, gateway=gateway)
        central.restart(down_s=CENTRAL_DOWN_S)
        marks.mark("central_back")
        time.sleep(STREAM_BEFORE_CUT_S)

        marks.mark("uplink_cut", influx=influx, gateway=gateway)
        hosts.cut_uplink()
        time.sleep(POWER_CUT_INTO_OUTAGE_S)
        marks.mark("power_cut", influx=influx, gateway=gateway)
        site.power_cut()
        time.sleep(POWER_OFF_S)
        marks.mark("power_on")
        site.boot()
        marks.mark("gateway_back")
        marks.at["local_broker_back"] = site.broker_ready_ns
        time.sleep(max(0.0, OUTAGE_S - (time.time_ns() - marks.at["uplink_cut"]) / 1e9))

        marks.mark("before_restore", influx=influx, gateway=gateway)
        hosts.restore_uplink()
        restored = marks.mark("uplink_restored")
        window = (marks.at["power_cut"] - READ_MARGIN_NS, marks.at["gateway_back"] + READ_MARGIN_NS)

        def missing(*, sent_before: int) -> int:
            """Required readings sent before ``sent_before`` that are not in InfluxDB yet."""
            found = readings_by_device(influx, gateway)
            count = 0
            for spec in METERS:
                sent = [e for e in site.writers[spec.device].log.snapshot() if e[1] < sent_before]
                verdict = meter_verdict(spec, sent, found.get(spec.device, []), window=window)
                count += len(verdict["missing"])
            messages = {seq: m for seq, m in device.messages().items() if min(m.values()) < sent_before}
            return count + len(device_verdict(messages, found.get(DEVICE, []), marks=marks)["missing"])

        # the backlog: what was read before the uplink returned; meters and device go on meanwhile. A wait
        # that runs out is no error here: the verdicts below name what is missing
        if poll(lambda: count_points(influx, gateway) > marks.points["before_restore"], timeout=DRAIN_WAIT_S):
            marks.mark("first_after_restore")
        if poll(lambda: missing(sent_before=restored) == 0, timeout=DRAIN_WAIT_S):
            marks.mark("drained", influx=influx, gateway=gateway)
        time.sleep(max(0.0, STREAM_AFTER_RESTORE_S - (time.time_ns() - restored) / 1e9))
        site.stop_meters()
        device.stop()
        feeds_stopped = marks.mark("feeds_stopped")
        poll(lambda: missing(sent_before=feeds_stopped) == 0, timeout=30)
        wait_for(lambda: settled(metrics_port), timeout=30, what="the ingester settled")
        found = readings_by_device(influx, gateway)
        meters = {
            spec.device: meter_verdict(
                spec, site.writers[spec.device].log.snapshot(), found.get(spec.device, []), window=window
            )
            for spec in METERS
        }
        wifi = device_verdict(device.messages(), found.get(DEVICE, []), marks=marks)
        total = sum(len(v) for v in found.values())
        report = {
            "outage_s": marks.seconds("uplink_cut", "uplink_restored"),
            "power_off_s": marks.seconds("power_cut", "power_on"),
            "boot_to_gateway_ready_s": marks.seconds("power_on", "gateway_back"),
            "central_down_s": marks.seconds("central_restart", "central_back"),
            "drain": {
                "first_reading_after_restore_s": marks.seconds("uplink_restored", "first_after_restore"),
                "backlog_in_influxdb_after_restore_s": marks.seconds("uplink_restored", "drained"),
                "messages_by_then": marks.points.get("drained", -1) - marks.points["before_restore"],
            },
            "points_in_influxdb_at": marks.points,
            "points": total,
            "meters": meters,
            "wifi_device": wifi,
        }
        print("store-and-forward", json.dumps(report, indent=1))
        (tmp_path / "report.json").write_text(json.dumps(report, indent=1))
        for name, verdict in [*meters.items(), (DEVICE, wifi)]:
            assert not verdict["duplicates"], f"{name}: in InfluxDB twice: {verdict['duplicates'][:20]}"
            assert not verdict["missing"], f"{name}: read but not in InfluxDB: {verdict['missing'][:20]}"
            assert not verdict["phantoms"], f"{name}: in InfluxDB but never sent: {verdict['phantoms'][:20]}"
        for name, verdict in meters.items():  # stamped when read, not when the backlog arrived minutes later
            low, high = verdict["stamp_lag_s"]
            assert low >= -STAMP_SLACK_S, f"{name}: a point {low} s before its frame was written"
            assert high <= STAMP_SLACK_S, f"{name}: a point {high} s after its frame was written"
    finally:
        site.stop()
        device.stop()
        ingester.stop()
        central.stop()
        influx.drop()
