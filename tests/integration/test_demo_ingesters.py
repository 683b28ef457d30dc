"""``reallabor up --ingesters N``: N ingester instances share the simulated quarter's stream (which ones a
later start with fewer retires: tests/unit/test_instances.py; the drain itself: test_drain.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest.demo.ports import DemoPorts
from tests.demo_process import Demo, free_ports
from tests.helpers import read_metrics, wait_for


@dataclass
class SeveralIngesters(Demo):
    ingesters: int = 2

    def command(self) -> list[str]:
        return [*super().command(), "--ingesters", str(self.ingesters), "--through-gateways", "0"]


def _ports() -> DemoPorts:
    while (ports := free_ports()).taken(ingesters=2):  # the second ingester's metrics port too
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
