"""``reallabor up`` as a new user meets it: the banner's logins work for every role, readings carry their
household and building, gw-01 runs the real gateway service (its meters through ptys, its Wi-Fi and Zigbee
devices through its local broker), the public quarter page and the open data of the history are there
for anyone, a second ``up`` on the same state refuses without touching the running one, a taken port is
named, and a restart continues every meter where it stopped, leaving no process behind."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import httpx
import pytest

from ingest.api.security import SESSION_COOKIE
from ingest.config import load_settings
from ingest.demo.stack import BUILDING_SIZE
from ingest.localservices import LOOPBACK
from ingest.opendata.cli import final_through
from ingest.opendata.settings import OpenDataSettings
from simulators.engine import meter_counters
from simulators.quarter import make_quarter
from simulators.shapes import Shapes
from tests.demo_process import REPO, Demo, free_ports
from tests.helpers import InfluxQuery, wait_for
from tests.registry.mqtt_client import TestMqttClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
HOUSEHOLDS = 10
ZONE = ZoneInfo("Europe/Berlin")  # the demo's households live here (ingest.timezone)


QUARTER = make_quarter(HOUSEHOLDS, building_size=BUILDING_SIZE)  # what the demo simulates
METERS = {h.meter_device: h.name for h in QUARTER.households}  # (an EV charger's Shelly is metered too)


def _counters(influx: InfluxQuery, since_ns: int = 0) -> dict[str, list[tuple[int, float]]]:
    """household -> [(time, energy_import_kwh)] of its grid meter, oldest first."""
    rows = influx.rows(
        f"SELECT energy_import_kwh, household, device FROM electricity WHERE time >= {since_ns} "
        "AND household != ''"
    )
    out: dict[str, list[tuple[int, float]]] = {}
    for row in sorted(rows, key=lambda r: r["time"]):
        if METERS.get(row["device"]) == row["household"]:
            out.setdefault(row["household"], []).append((row["time"], row["energy_import_kwh"]))
    return out


def test_logins_tags_second_instance_and_restart(tmp_path: Path) -> None:
    demo = Demo(tmp_path / "demo", free_ports(), households=HOUSEHOLDS, interval_s=1)
    demo.start()
    try:
        assert set(demo.logins) == {"operator", "technician", "resident"}, demo.output()
        with demo.login("operator") as operator:
            households = operator.get("/api/v1/households", params={"limit": 100}).json()
            assert households["total"] == HOUSEHOLDS
            # the operator's charts read InfluxDB as the demo's reader: data within seconds of the start
            energy = wait_for(
                lambda: _ops_series(operator, "energy"), timeout=60, what="today's energy on /ops"
            )
            assert energy, "no energy series on /ops"
        with demo.login("technician") as technician:
            gateways = technician.get("/api/v1/gateways", params={"limit": 100}).json()["items"]
            assert {g["name"] for g in gateways} == {"gw-01", "gw-street"}
            assert all(g["status"] == "active" for g in gateways)
        with demo.login("resident") as resident:
            assert resident.get("/api/v1/me/household").json()["name"] == "hh-001"
            assert resident.get("/api/v1/households").status_code == 403
            _the_portal_says_what_the_meter_counted(demo, resident)
        _the_quarter_page_and_its_open_data(demo)

        # a second `up` on the same state: refused at once, the running one untouched
        second = Demo(demo.state_dir, free_ports(), households=HOUSEHOLDS)
        started = time.monotonic()
        refused = second.run(timeout=30)
        assert refused.returncode == 2, refused
        assert f"{demo.state_dir} is in use by a running reallabor up" in refused.stderr
        assert time.monotonic() - started < 10
        assert demo.process is not None
        assert demo.process.poll() is None, "the running demo was touched"

        influx = demo.influx()
        anonymous = httpx.get(f"{demo.influx_url}/query", params={"q": "SHOW DATABASES"}, trust_env=False)
        assert anonymous.status_code == 401, "the demo's InfluxDB answers without a user"
        wait_for(
            lambda: len(_counters(influx)) == HOUSEHOLDS,
            timeout=60,
            what="every household's meter in InfluxDB",
        )
        untagged = influx.rows("SELECT count(power_w) FROM electricity, pv, ev_charger WHERE household = ''")
        assert untagged == [], "readings without a household tag"
        buildings = influx.rows("SHOW TAG VALUES FROM electricity WITH KEY = building")
        assert {row["value"] for row in buildings} == {"Haus 1"}
        _gw01_runs_the_real_gateway_service(demo, influx)
        _an_unknown_topic_shows_up(demo)
        with demo.login("operator") as operator:  # changed on the pages or the API, not by the demo
            gateways = {g["name"]: g["id"] for g in operator.get("/api/v1/gateways").json()["items"]}
            assert operator.post(f"/api/v1/gateways/{gateways['gw-01']}/rotate").status_code == 200
            assert operator.post(f"/api/v1/gateways/{gateways['gw-street']}/revoke").status_code == 200
        before = _counters(influx)
        assert demo.stop() == 0
        assert "stopped cleanly." in demo.output()
        assert _processes_of(demo.state_dir) == [], "processes of the demo outlived it"

        time.sleep(3)  # the demo is off for a while: the meters count on, as real ones do
        demo.start()
        restart_ns = time.time_ns()
        output = demo.output()
        assert "gw-01's broker password was changed outside the demo: its simulation got a new one" in output
        assert "gw-street is revoked: its simulated devices stay silent" in output
        wait_for(
            lambda: len(_counters(influx, restart_ns)) == HOUSEHOLDS,
            timeout=60,
            what="readings after restart",
        )
        after = _counters(influx)
        # ground truth: what each meter shows at any time, whenever the simulation that sent it started
        shapes = Shapes(QUARTER)
        for household, series in after.items():
            index = int(household.removeprefix("hh-")) - 1
            for time_ns, value in series:
                truth = meter_counters(QUARTER, time_ns // 1_000_000_000, shapes)[0][index]
                assert value == pytest.approx(truth, abs=1e-6), (household, time_ns)
            first_after = next(point for point in series if point[0] > before[household][-1][0])
            jump = first_after[1] - before[household][-1][1]
            assert 0 <= jump < 1.0, f"{household}: {jump} kWh between the last reading and the first after"
    finally:
        demo.stop()


def _gw01_runs_the_real_gateway_service(demo: Demo, influx: InfluxQuery) -> None:
    """Live, gw-01's devices reach the central broker only through its gateway service: the SML meter of
    hh-001 through a pty (the service's health counts the frames of that port), the Wi-Fi and Zigbee
    devices through its local Mosquitto (counted as forwarded). Their readings are checked against the
    simulator's meter with every other reading (the restart part below)."""
    assert "gw-01 runs the real gateway service" in demo.output(), demo.output()
    home = demo.state_dir / "gateways" / "gw-01"
    assert (home / "gateway.yaml").stat().st_mode & 0o077 == 0, "gateway.yaml with its password is open"

    def through_the_gateway() -> bool:
        frames = influx.rows(
            "SELECT max(frames) FROM gateway_health WHERE gateway = 'gw-01' AND port = 'hh-001-ehz'"
        )
        forwarded = influx.rows("SELECT max(local_forwarded) FROM gateway_health WHERE gateway = 'gw-01'")
        return bool(frames and frames[0]["max"] > 0 and forwarded and forwarded[0]["max"] > 0)

    wait_for(through_the_gateway, timeout=60, what="gw-01's health: frames read from hh-001's pty, forwarded")
    assert (home / "gateway.log").exists()


def _processes_of(state_dir: Path) -> list[str]:
    """Command lines of running processes that name the demo's state directory (its services, the
    gateway hosts' brokers, socat pairs and gateway services)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        if str(state_dir) in command:
            found.append(command)
    return found


def _the_portal_says_what_the_meter_counted(demo: Demo, resident: httpx.Client) -> None:
    """End to end: the simulated quarter published yesterday (the demo's history) through the gateways'
    accounts, the broker, the ingester, InfluxDB and the energy ledger; the resident's CSV of the day
    (/portal/csv, the portal's own download) holds the grid energy the simulator's meter counted between
    the day's first and last reading, to the Wh."""
    household = QUARTER.households[0]
    yesterday = dt.datetime.now(ZONE).date() - dt.timedelta(days=1)
    start = dt.datetime.combine(yesterday, dt.time(), ZONE)
    end = start + dt.timedelta(days=1)
    token = resident.headers["Authorization"].removeprefix("Bearer ")
    portal = httpx.Client(base_url=demo.api_url, cookies={SESSION_COOKIE: token}, timeout=30, trust_env=False)

    own = {household.meter_device, household.pv_device, household.ev_device, household.heat_device}

    def imported() -> float | None:
        day = yesterday.isoformat()
        response = portal.get("/portal/csv", params={"from": day, "to": day, "resolution": "15m"})
        assert response.status_code == 200, response.text
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert {row["device"] for row in rows} <= own, "another household's device in the resident's CSV"
        grid = [row for row in rows if row["device"] == household.meter_device and row["kind"] == "import"]
        # the ledger takes in the history once it is in InfluxDB: the day is there with its last quarter
        if not grid or dt.datetime.fromisoformat(grid[-1]["time_local"]) < end - dt.timedelta(minutes=15):
            return None
        return sum(float(row["kwh"]) for row in grid)

    with portal:
        total = wait_for(imported, timeout=90, what="yesterday's energy in the resident's portal")
    meter = f"SELECT energy_import_kwh FROM electricity WHERE device = '{household.meter_device}'"
    start_ns, end_ns = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
    readings = demo.influx().rows(f"{meter} AND time >= {start_ns} AND time < {end_ns}")
    times = [row["time"] // 1_000_000_000 for row in readings]
    # the ledger counts the day from the meter's last reading before it, if any (else from its first)
    before = demo.influx().rows(f"{meter} AND time < {start_ns} ORDER BY time DESC LIMIT 1")
    since = before[0]["time"] // 1_000_000_000 if before else min(times)
    shapes = Shapes(QUARTER)
    counted = meter_counters(QUARTER, max(times), shapes)[0][0] - meter_counters(QUARTER, since, shapes)[0][0]
    assert total == pytest.approx(counted, abs=0.0005), "the portal's day differs from the meter's count"
    assert total > 0.5, f"an implausibly small day for a household: {total} kWh"


def _the_quarter_page_and_its_open_data(demo: Demo) -> None:
    """Anyone, without login: ``/quarter`` answers with the quarter's figures, and the open data that the
    demo exported of its history once the ledger had it (yesterday, final from 01:15 with the demo's
    ledger window) are in ``/opendata/catalog.jsonld``, every distribution's file served and listed on the
    page. The demo's households are at least ``opendata.min_households``, so the quarter's grid import is
    published; its EV households are fewer, so EV charging is withheld."""
    rule = OpenDataSettings()  # the demo keeps the rule's defaults
    ev_households = sum(1 for h in QUARTER.households if h.ev_kw)
    assert HOUSEHOLDS >= rule.min_households > ev_households, "the expectations below need another quarter"
    now = dt.datetime.now(ZONE)
    yesterday = now.date() - dt.timedelta(days=1)
    exported = re.compile(r"^(  open data: \{|reallabor up: .*open.data)", re.M)  # its report or error
    try:
        wait_for(lambda: exported.search(demo.output()), timeout=60, what="the export of the demo's history")
    except AssertionError as exc:  # what the demo said instead
        raise AssertionError(f"{exc}\n{demo.output()}") from None
    catalogue_url = f"{demo.api_url}/opendata/catalog.jsonld"
    with httpx.Client(base_url=demo.api_url, timeout=30, trust_env=False) as anyone:
        figures = anyone.get("/quarter/data", params={"lang": "en"})
        assert figures.status_code == 200, figures.text
        view = figures.json()
        if now.time() >= dt.time(0, 30):  # else today may have no full quarter hour yet
            assert view["today"]["rows"], "no quarter hour of today on /quarter"
            flows = {flow["key"]: flow for flow in view["last"]["flows"]}
            assert flows["import"]["kwh"] > 0, flows  # the quarter's import now: published

        if final_through(load_settings(demo.state_dir / "ingest.yaml")) < yesterday:  # 00:00 to 01:15
            assert re.search(r'^  open data: \{.*"days_published": 0', demo.output(), re.M), demo.output()
            return
        assert re.search(r'^  open data: \{.*"files": [1-9]', demo.output(), re.M), demo.output()
        response = anyone.get("/opendata/catalog.jsonld")
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("application/ld+json")
        files = sorted(
            urljoin(catalogue_url, node["dcat:downloadURL"]["@id"])
            for node in response.json()["@graph"]
            if "dcat:Distribution" in _types(node)
        )
        for url in files:
            response = anyone.get(url)
            assert response.status_code == 200, (url, response.status_code)
            assert response.content, url
        daily = f"quarter-energy-daily_{yesterday:%Y-%m}.csv"
        [daily_url] = [url for url in files if url.endswith("/" + daily)]
        rows = csv.DictReader(io.StringIO(anyone.get(daily_url).text))
        [day] = [row for row in rows if row["start"].startswith(yesterday.isoformat())]
        assert int(day["households"]) == HOUSEHOLDS
        assert float(day["grid_import_kwh"]) > 0, day  # enough households: published
        assert day["ev_charging_kwh"] == ".", day  # fewer EV households than the rule's minimum: withheld

        page = anyone.get("/quarter", headers={"Accept-Language": "en"})
        assert page.status_code == 200, page.text
        assert daily_url.removeprefix(demo.api_url) in page.text, "the page does not list the daily file"


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("@type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _ops_series(client: httpx.Client, panel: str) -> list[Any]:
    """The /ops panel's series that have at least one value (the API caches a panel 10 s)."""
    response = client.get(f"/ops/data/{panel}")
    assert response.status_code == 200, response.text
    return [s for s in response.json()["series"] if any(v is not None for v in s["values"])]


def _an_unknown_topic_shows_up(demo: Demo) -> None:
    """A gateway made through the API publishes on a topic no profile knows: quarantined as no_profile,
    counted by `reallabor quarantine stats` and announced on the fleet page."""
    with demo.login("technician") as technician:
        made = technician.post("/api/v1/gateways", json={"name": "gw-keller"})
        assert made.status_code == 201, made.text
        credentials = made.json()
        device = TestMqttClient(
            demo.ports.mqtt,
            username=credentials["username"],
            password=credentials["password"],
            client_id=credentials["client_id"],
        )
        assert device.connect() == "Success"
        try:
            assert device.publish("lab/gw-keller/heizung/kessel/vorlauf", b"47.5") == "Success"
        finally:
            device.close()

        def stats() -> dict[str, Any]:
            result = subprocess.run(
                [sys.executable, "-m", "ingest.cli", "quarantine", "stats", "--json",
                 "--config", str(demo.state_dir / "ingest.yaml")],
                cwd=REPO, capture_output=True, text=True, check=True,
            )  # fmt: skip
            found: dict[str, Any] = json.loads(result.stdout)
            return found

        wait_for(
            lambda: "no_profile" in json.dumps(stats()), timeout=30, what="no_profile in quarantine stats"
        )
        fleet = technician.get("/tech/fleet")
        assert fleet.status_code == 200
        assert "1 unbekanntes Topic" in fleet.text, fleet.text


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    ports = free_ports()
    with socket.socket() as taken:
        taken.bind((LOOPBACK, ports.api))
        taken.listen()
        result = Demo(tmp_path / "demo", ports).run(timeout=30)
    assert result.returncode == 2
    assert f"port {ports.api} (api) is taken" in result.stderr
    assert "--api-port" in result.stderr
    assert not (tmp_path / "demo" / "mosquitto").exists(), "nothing was started"
