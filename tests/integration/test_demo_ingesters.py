"""``reallabor up --ingesters N``: N ingester instances share the simulated quarter's stream; a start
retires (drains) every ingester it does not run whose state is left, whatever the count before (the drain
itself: test_drain.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ingest.config import load_settings
from ingest.demo.ports import DemoPorts
from ingest.demo.stack import CONFIG_FILE, _retiring
from ingest.mqtt_session import SessionMemory, SessionRecord
from ingest.spool import Spool
from tests.demo_process import Demo, free_ports
from tests.helpers import read_metrics, wait_for
from tests.integration.test_drain import _connack


@dataclass
class SeveralIngesters(Demo):
    ingesters: int = 2

    def command(self) -> list[str]:
        return [*super().command(), "--ingesters", str(self.ingesters), "--through-gateways", "0"]


def _ports(ingesters: int = 2) -> DemoPorts:
    while (ports := free_ports()).taken(ingesters=ingesters):  # the other ingesters' metrics ports too
        pass
    return ports


def test_two_ingesters_share_the_stream_and_stop_together(tmp_path: Path) -> None:
    demo = SeveralIngesters(tmp_path / "demo", _ports(), households=10, interval_s=1)
    demo.start()
    try:
        output = demo.output()
        assert "ingesters   : 2 instances share the stream ($share/reallabor-ingest/…)" in output
        assert "reallabor-demo-ingest-0, reallabor-demo-ingest-1;" in output
        ports = (demo.ports.metrics, demo.ports.metrics + 1)  # ingester K's: the port + K
        wait_for(
            lambda: all(read_metrics(port)["received_total"] > 0 for port in ports),
            timeout=30,
            what="a share of the stream for each ingester",
        )
    finally:
        assert demo.stop() == 0  # Ctrl-C stops both
    assert "stopped cleanly." in demo.output()
    assert {p.name for p in (demo.state_dir / "ingest").iterdir()} >= {"instance-0", "instance-1"}


def _remember_session(state_dir: Path, client_id: str) -> None:
    """What an ingester that subscribed leaves in its state directory until a drain ends its session."""
    memory = SessionMemory(client_id, "127.0.0.1:1883", ("$share/reallabor-ingest/x/#",), 1.0, 2.0)
    SessionRecord(state_dir / "mqtt-session.json").save(memory)


@pytest.mark.parametrize(
    ("ran", "now", "retired"),
    [
        (2, 2, []),
        (1, 1, []),
        (3, 1, ["demo-0", "demo-1", "demo-2"]),  # back to one: its session has another client id
        (1, 2, ["demo"]),  # one before: the single session (`--instance 0 --of 1 --drain`)
        (4, 2, ["demo-2", "demo-3"]),
        (2, 3, []),
    ],
)
def test_a_start_retires_every_session_left_that_it_does_not_run(
    ran: int, now: int, retired: list[str], tmp_path: Path
) -> None:
    """Decided by the state directories, not by the count the settings file had (an interrupted start
    with ``now`` may have written it: the next start with ``now`` must still retire the others)."""
    settings = load_settings(
        None, ingest={"instances": now, "state_dir": tmp_path}, mqtt={"client_id": "demo"}
    )
    if ran == 1:
        _remember_session(tmp_path, "demo")
    for k in range(ran if ran > 1 else 0):
        _remember_session(tmp_path / f"instance-{k}", f"demo-{k}")
    assert [instance.mqtt.client_id for instance in _retiring(settings, now)] == retired


def test_a_start_retires_an_unwritten_spool_but_not_what_a_drain_finished(tmp_path: Path) -> None:
    settings = load_settings(None, ingest={"instances": 2, "state_dir": tmp_path}, mqtt={"client_id": "demo"})
    (tmp_path / "instance-2" / "quarantine").mkdir(parents=True)  # drained: its quarantine stays
    spool = Spool(tmp_path / "instance-3" / "spool", max_bytes=1 << 20)
    spool.append(b"electricity power_w=1 1")  # a batch InfluxDB never confirmed
    spool.close()
    assert [instance.mqtt.client_id for instance in _retiring(settings, 2)] == ["demo-3"]


def test_an_interrupted_start_with_fewer_ingesters_leaves_the_retirement_to_the_next(tmp_path: Path) -> None:
    """Three ingesters ran; a start with two was interrupted after it wrote its settings (so the old
    count is gone); the next start with two drains instance 2 before its ingesters and the stream start:
    its session is gone from the broker, nothing is dealt to it, and a start after has nothing to retire."""
    state_dir = tmp_path / "demo"
    ports = _ports(3)
    demo = SeveralIngesters(state_dir, ports, households=5, interval_s=1, ingesters=3)
    demo.start()
    try:
        wait_for(
            lambda: all(read_metrics(ports.metrics + k)["received_total"] > 0 for k in range(3)),
            timeout=30,
            what="a share of the stream for each of the three ingesters",
        )
    finally:
        assert demo.stop() == 0
    assert (state_dir / "ingest" / "instance-2" / "mqtt-session.json").exists()
    config = state_dir / CONFIG_FILE
    interrupted = yaml.safe_load(config.read_text())
    interrupted["ingest"]["instances"] = 2  # what the interrupted start left behind
    config.write_text(yaml.safe_dump(interrupted, sort_keys=False))

    demo.ingesters = 2
    demo.start()
    try:
        retired = [line for line in demo.lines if "retired ingester reallabor-demo-ingest-2:" in line]
        assert len(retired) == 1, demo.output()
        report = json.loads(retired[0].split(": ", 1)[1])
        assert report["session_found"] is True
        assert report["taken"] == report["written"] + report["quarantined"]  # what it held, written
        wait_for(
            lambda: all(read_metrics(ports.metrics + k)["received_total"] > 0 for k in range(2)),
            timeout=30,
            what="the stream for the two ingesters",
        )
        # while the stream runs: the broker holds no session for instance 2 (it would hoard a third)
        password = demo.secrets()["ingester"]
        assert _connack(ports.mqtt, "reallabor-demo-ingest-2", username="ingester-2", password=password) == (
            False,
            0,
        )
    finally:
        assert demo.stop() == 0
    assert not (state_dir / "ingest" / "instance-2" / "mqtt-session.json").exists()
    assert load_settings(config).ingest.instances == 2
    assert _retiring(load_settings(config), 2) == []  # the drain left nothing: later starts retire nothing
