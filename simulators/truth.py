"""Ground truth: per household and local day, the energy as the simulator sent it.

``import_wh``/``export_wh`` come from the meter counters in the messages that left the simulator well
formed, with the device's timestamp, by :mod:`ingest.consumption` (the same math the checks apply to
InfluxDB); ``load_wh``, ``pv_wh``, ``ev_wh``, ``heat_wh`` are the flows behind them, by the interval's end.

This records one run. Across runs (the demo restarted, a backfill then real time) the counters need no
recording: they are functions of time, :func:`simulators.engine.meter_counters` gives them for any moment.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import orjson

from ingest.consumption import CounterDays, local_day
from simulators.engine import Flows, Message
from simulators.quarter import Quarter

COLUMNS = (
    "household", "gateway", "meter_device", "meter_family", "day",
    "import_wh", "export_wh", "load_wh", "pv_wh", "ev_wh", "heat_wh",
)  # fmt: skip
FLOWS = ("load", "pv", "ev", "heat")


class GroundTruth:
    def __init__(self, quarter: Quarter) -> None:
        self.quarter = quarter
        self.imports = {h.number: CounterDays() for h in quarter.households}
        self.exports = {h.number: CounterDays() for h in quarter.households}
        self.flows: dict[dt.date, np.ndarray] = {}  # day -> (4, households) Wh

    def record_flows(self, flows: Flows) -> None:
        day = local_day(flows.time_s * 1_000_000_000)
        row = self.flows.get(day)
        if row is None:
            row = self.flows[day] = np.zeros((len(FLOWS), len(self.quarter.households)))
        row += np.stack([flows.load, flows.pv, flows.ev, flows.heat])

    def record_sent(self, message: Message) -> None:
        """A message as it leaves the simulator (before the gateway's buffering and duplicates)."""
        if message.counters is None or message.malformed:
            return
        time_ns = message.time_s * 1_000_000_000
        self.imports[message.household].add(time_ns, message.counters[0] * 1000)
        self.exports[message.household].add(time_ns, message.counters[1] * 1000)

    def rows(self) -> list[dict[str, object]]:
        days = sorted(set(self.flows) | {d for c in self.imports.values() for d in c.days})
        out: list[dict[str, object]] = []
        for index, h in enumerate(self.quarter.households):
            for day in days:
                flows = self.flows.get(day)
                values = [0.0] * len(FLOWS) if flows is None else [float(v) for v in flows[:, index]]
                out.append(
                    {
                        "household": h.name,
                        "gateway": h.gateway,
                        "meter_device": h.meter_device,
                        "meter_family": h.meter_family,
                        "day": day.isoformat(),
                        "import_wh": round(self.imports[h.number].days.get(day, 0.0), 3),
                        "export_wh": round(self.exports[h.number].days.get(day, 0.0), 3),
                        **{f"{name}_wh": round(v, 3) for name, v in zip(FLOWS, values, strict=True)},
                    }
                )
        return out

    def summary(self) -> dict[str, object]:
        households = []
        for index, h in enumerate(self.quarter.households):
            totals = {
                name: sum(float(f[i, index]) for f in self.flows.values()) for i, name in enumerate(FLOWS)
            }
            households.append(
                {
                    "household": h.name,
                    "gateway": h.gateway,
                    "meter_device": h.meter_device,
                    "meter_family": h.meter_family,
                    "annual_kwh": h.annual_kwh,
                    "pv_kwp": h.pv_kwp,
                    "ev_kw": h.ev_kw,
                    "import_wh": round(sum(self.imports[h.number].days.values()), 3),
                    "export_wh": round(sum(self.exports[h.number].days.values()), 3),
                    "meter_swaps": self.imports[h.number].resets,
                    **{f"{name}_wh": round(value, 3) for name, value in totals.items()},
                }
            )
        return {"seed": self.quarter.seed, "households": households}

    def write(self, path: Path) -> None:
        """``path`` (.csv: one row per household and day) and ``path`` with .json (per household totals)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows())
        path.with_suffix(".json").write_bytes(orjson.dumps(self.summary(), option=orjson.OPT_INDENT_2))


def read_days(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """The CSV back: (meter_device, day) -> {import_wh, export_wh, …}."""
    with path.open(newline="") as handle:
        return {
            (row["meter_device"], row["day"]): {k: float(v) for k, v in row.items() if k.endswith("_wh")}
            for row in csv.DictReader(handle)
        }
