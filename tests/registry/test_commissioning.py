"""The commissioning check through the API (and the CLI), against the real dynsec broker.

A simulated device publishes as its gateway (its own broker account); the check listens as the ingester.
SQLite only: the database part is the same as elsewhere, the broker part is what is tested here.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.config import Settings
from ingest.dynsec import DynsecAdmin, DynsecBootstrap
from ingest.localservices import Mosquitto
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry
from ingest.registry.assignments import create_assignment
from ingest.registry.cli import add_subcommands
from ingest.registry.fleet import create_device, create_gateway, gateway_client_id
from ingest.registry.models import Device, Gateway, Role
from tests.helpers import wait_for
from tests.registry import factories as f
from tests.registry.publisher import Publisher

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
V1 = "/api/v1"


@dataclass
class Field:
    api: TestClient
    session: Session
    headers: dict[str, str]
    gateway: Gateway
    password: str
    device: Device
    port: int

    @property
    def topic(self) -> str:
        return f"lab/{self.gateway.name}/{self.device.native_id}/state"

    def publisher(self, payload: Callable[[], bytes]) -> Publisher:
        return Publisher(
            self.port,
            username=self.gateway.broker_username,
            password=self.password,
            client_id=gateway_client_id(self.gateway.name),
            topic=self.topic,
            payload=payload,
        )

    def start(self, timeout_s: float = 20) -> str:
        response = self.api.post(
            f"{V1}/devices/{self.device.id}/commissioning",
            json={"timeout_s": timeout_s},
            headers=self.headers,
        )
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    def finished(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            state: dict[str, Any] = self.api.get(f"{V1}/commissioning/{run_id}", headers=self.headers).json()
            return state if state["finished"] else None

        result: dict[str, Any] = wait_for(done, timeout=timeout, what="the check to finish")
        return result


def meter_payload(**fields: float) -> Callable[[], bytes]:
    def make() -> bytes:
        return json.dumps({"ts": int(time.time() * 1000), **fields}).encode()

    return make


@pytest.fixture
def field(
    api: TestClient, session: Session, broker_admin: DynsecAdmin, dynsec_broker: Mosquitto, unique: str
) -> Field:
    technician = f.user(session, Role.technician)
    signer = api.app.state.signer  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {signer.issue(technician)}"}
    gateway, password = create_gateway(session, broker_admin, name=f"c{unique}")
    device = create_device(session, gateway_id=gateway.id, native_id="meter-1", profile_id="generic-json")
    household = f.household(session)
    create_assignment(session, device_id=device.id, household_id=household.id, valid_from=f.t(0))
    return Field(api, session, headers, gateway, password, device, dynsec_broker.port)


def test_check_passes_and_is_stored(field: Field) -> None:
    with field.publisher(meter_payload(power_w=523.5, voltage_l1_v=230.1, rssi_dbm=-67)):
        state = field.finished(field.start())
    report = state["report"]
    assert state["phase"] == "passed", report
    assert report["passed"] is True
    assert report["outcome"] == "passed"
    assert report["reasons"] == []
    assert [e["phase"] for e in state["events"]][:3] == ["connecting", "listening", "received"]
    assert report["message"]["topic"] == field.topic
    fields = {row["field"]: row for row in report["plausibility"]}
    assert fields["voltage_l1_v"] == {
        "measurement": "electricity",
        "field": "voltage_l1_v",
        "value": 230.1,
        "min": 150.0,
        "max": 280.0,
        "ok": True,
    }
    assert report["clock"]["time_source"] == "device"
    assert abs(report["clock"]["offset_s"]) < 5
    assert report["signal"] == {"rssi_dbm": -67.0}
    assert report["battery"] is None
    history = field.api.get(f"{V1}/devices/{field.device.id}/commissioning", headers=field.headers).json()
    assert history["total"] == 1
    assert history["items"][0]["run_id"] == state["run_id"]
    assert history["items"][0]["passed"] is True
    device = field.api.get(f"{V1}/devices/{field.device.id}", headers=field.headers).json()
    assert device["commissioning_passed"] is True
    assert device["status"] == "active"


def test_implausible_value_fails(field: Field) -> None:
    with field.publisher(meter_payload(voltage_l1_v=2301)):
        state = field.finished(field.start())
    report = state["report"]
    assert state["phase"] == "failed"
    assert [r["code"] for r in report["reasons"]] == ["implausible_value"]
    bad = [row for row in report["plausibility"] if not row["ok"]]
    assert [(row["field"], row["value"], row["max"]) for row in bad] == [("voltage_l1_v", 2301.0, 280.0)]
    device = field.api.get(f"{V1}/devices/{field.device.id}", headers=field.headers).json()
    assert device["commissioning_passed"] is False
    assert device["status"] == "registered"


def test_no_message_times_out(field: Field) -> None:
    started = time.monotonic()
    state = field.finished(field.start(timeout_s=5))
    assert 5 <= time.monotonic() - started < 15
    report = state["report"]
    assert report["outcome"] == "no_message"
    assert report["reasons"][0]["code"] == "no_message"
    assert field.topic in report["reasons"][0]["message"]
    history = field.api.get(f"{V1}/devices/{field.device.id}/commissioning", headers=field.headers).json()
    assert history["items"][0]["outcome"] == "no_message"


def test_quarantine_reasons_are_shown(field: Field, api_settings: Settings) -> None:
    earlier = time.time_ns() - 3600 * 10**9
    with Quarantine(api_settings.ingest.state_dir / QUARANTINE_FILE) as quarantine:
        quarantine.add_many(
            [
                QuarantineEntry(field.topic, b"ERROR 42", earlier, "invalid_json", "expecting value", None),
                QuarantineEntry(f"lab/{field.gateway.name}/other/state", b"x", earlier, "invalid_json", "x"),
            ]
        )
    with field.publisher(meter_payload(power_w=10)):
        state = field.finished(field.start())
    report = state["report"]
    assert report["passed"], report
    assert [(q["topic"], q["reason"], q["during_check"]) for q in report["quarantine"]] == [
        (field.topic, "invalid_json", False)
    ]
    assert [w["code"] for w in report["warnings"]] == ["quarantine_pending"]


def test_events_stream_until_the_verdict(field: Field) -> None:
    with field.publisher(meter_payload(power_w=10)):
        run_id = field.start()
        with field.api.stream(
            "GET", f"{V1}/commissioning/{run_id}/events", headers=field.headers
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line.startswith("event: ")]
    assert lines[-1] == "event: passed"
    assert "event: listening" in lines


def test_refusals(field: Field, session: Session) -> None:
    unknown = create_device(session, gateway_id=field.gateway.id, native_id="x1", profile_id="no-such")
    response = field.api.post(f"{V1}/devices/{unknown.id}/commissioning", headers=field.headers)
    assert response.status_code == 409
    too_short = {"timeout_s": 1}
    response = field.api.post(
        f"{V1}/devices/{field.device.id}/commissioning", json=too_short, headers=field.headers
    )
    assert response.status_code == 422
    assert field.api.get(f"{V1}/commissioning/{'0' * 32}", headers=field.headers).status_code == 404


def test_run_limit(field: Field) -> None:
    runs = field.api.app.state.runs  # type: ignore[attr-defined]
    runs.max_active = 1
    field.start(timeout_s=5)
    response = field.api.post(f"{V1}/devices/{field.device.id}/commissioning", headers=field.headers)
    assert response.status_code == 429


def test_cli_commission(
    field: Field,
    db_url: str,
    bootstrap: DynsecBootstrap,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bootstrap.ingester_password is not None
    for key, value in {
        "REGISTRY__URL": db_url,
        "MQTT__PORT": str(field.port),
        "MQTT__USERNAME": "ingester",
        "MQTT__PASSWORD": bootstrap.ingester_password,
        "BROKER_ADMIN__PASSWORD": bootstrap.admin_password,  # the check listens as the admin
        "INGEST__PROFILES_DIR": str(Path(__file__).resolve().parents[2] / "device_profiles"),
        "INGEST__STATE_DIR": str(tmp_path / "cli-state"),
        "API__SECRET_KEY": secrets.token_urlsafe(16),
    }.items():
        monkeypatch.setenv(f"REALLABOR_{key}", value)
    root = argparse.ArgumentParser(prog="reallabor")
    add_subcommands(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(
        ["devices", "commission", "--gateway", field.gateway.name, "--native-id", "meter-1", "--json"]
    )
    with field.publisher(meter_payload(power_w=10, voltage_l1_v=231)):
        assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    history = field.api.get(f"{V1}/devices/{field.device.id}/commissioning", headers=field.headers).json()
    assert history["items"][0]["started_by"].startswith("cli:")


def test_a_poison_message_does_not_hold_up_the_api(field: Field) -> None:
    """The security review's payload (12,000 duplicate keys) once froze the API for 28 s in a check."""
    plug = create_device(field.session, gateway_id=field.gateway.id, native_id="plug-1", profile_id="tasmota")
    poison = b'{"ENERGY":{' + b",".join([b'"Power":1'] * 12_000) + b"}}"
    device = Publisher(
        field.port,
        username=field.gateway.broker_username,
        password=field.password,
        client_id=gateway_client_id(field.gateway.name),
        topic=f"lab/{field.gateway.name}/tele/plug-1/SENSOR",
        payload=lambda: poison,
    )
    slowest = 0.0
    with device:
        response = field.api.post(
            f"{V1}/devices/{plug.id}/commissioning", json={"timeout_s": 20}, headers=field.headers
        )
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            started = time.monotonic()
            reply = field.api.get(f"{V1}/commissioning/{response.json()['run_id']}", headers=field.headers)
            slowest = max(slowest, time.monotonic() - started)
            state = reply.json()
            if state["finished"]:
                break
            time.sleep(0.05)
    assert state["finished"], state
    assert slowest < 1.0
    assert [r["code"] for r in state["report"]["reasons"]] == ["too_complex"], state["report"]
