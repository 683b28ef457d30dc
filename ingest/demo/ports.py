"""The demo's fixed ports: saved queries, dashboards and data sources keep working across restarts.

None of them is a service's standard port, so the demo runs beside a system Mosquitto or InfluxDB.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, fields

from ingest.localservices import LOOPBACK


@dataclass(frozen=True)
class DemoPorts:
    mqtt: int = 11883
    influx: int = 18086
    api: int = 18000
    metrics: int = 19108

    @property
    def influx_rpc(self) -> int:
        """InfluxDB's backup/restore port, two above its HTTP port (as 8086/8088)."""
        return self.influx + 2

    def taken(self, *, ingesters: int = 1) -> list[str]:
        """One line per port something else listens on (or cannot be bound), naming the option.
        ``ingesters``: instance K's metrics listen on ``metrics`` + K."""
        wanted = [(f.name, getattr(self, f.name), f"--{f.name}-port") for f in fields(self)]
        wanted.append(("influx RPC", self.influx_rpc, "--influx-port (its RPC port is that + 2)"))
        wanted += [
            (f"metrics of ingester {k}", self.metrics + k, "--metrics-port (ingester K's is that + K)")
            for k in range(1, ingesters)
        ]
        problems, seen = [], set[int]()
        for role, port, option in wanted:
            if port in seen:
                problems.append(f"port {port} ({role}) is given twice: choose another with {option}")
                continue
            seen.add(port)
            if not _bindable(port):
                problems.append(
                    f"port {port} ({role}) is taken on {LOOPBACK}: "
                    f"stop what uses it or choose another with {option}"
                )
        return problems


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free to us
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True
