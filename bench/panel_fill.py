"""Fast backfill for the panel bench: the simulated quarter's readings as line protocol, generated per day
with numpy and written over HTTP by several processes at once.

What the panels read, with the series the ingester writes (measurement, the profile's tags, and the
registry's ``household``/``building`` tags as enrichment adds them, :mod:`ingest.demo.seed`'s names):

- main meters (``electricity``, no ``channel``): ``energy_import_kwh``, ``energy_export_kwh`` with each
  meter family's rounding (:mod:`simulators.formats`), ``power_w``; EV sub-meters (``channel=0``), PV
  (``pv``): every ``interval_s`` (default 60 s);
- heat (``heat``), room climate (``environment`` + ``device_health``): every 5 minutes; street sensors:
  every 10 minutes (the simulator's :class:`~simulators.engine.Periods`);
- ``ingest_stats`` of one ingester every 10 s (its default ``stats_interval_s``);
- ``gateway_health`` of every gateway every minute (the gateway service's default): an empty outbox, a
  synchronised clock a few ms off, and per meter port its frame counters.

Counters come from :meth:`simulators.shapes.Shapes.counters`, the simulator's own function of time, so
energy is what the simulator would have sent (without faults: no swaps, no silences). Gauges (climate,
street) follow the formulas of :class:`simulators.engine.Simulation` with their noise drawn per day.
Only the fields the panels read are written (a meter's phases and voltages are left out).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import ClassVar

import httpx
import numpy as np

from ingest.lineprotocol import escape_tag_value
from simulators.quarter import Household, Quarter, make_quarter
from simulators.shapes import EV, EXPORT, EXPORT_LOW, HEAT, IMPORT, IMPORT_LOW, PV, Shapes

STREET_BUILDING = "Quartiersplatz"  # ingest/demo/seed.py
INGESTER = "reallabor-demo-ingest"  # the demo ingester's client id (ingest/demo/stack.py)
SLOW_S = 300  # heat and room climate (Periods.heat, Periods.climate)
STREET_S = 600  # Periods.street
STATS_S = 10  # IngestSettings.stats_interval_s
HEALTH_S = 60  # the gateway service's health_interval_s
BATCH_LINES = 20_000


@dataclass(frozen=True)
class FillSpec:
    households: int
    start_s: int  # first reading (a multiple of interval_s)
    end_s: int  # readings up to and including this time
    interval_s: int = 60
    building_size: int = 10  # the demo's quarter: houses of 10 (make_quarter(building_size=10))
    seed: int = 1


@dataclass
class ChunkResult:
    lines: int
    values: int
    seconds: float


def quarter_of(spec: FillSpec) -> Quarter:
    return make_quarter(spec.households, seed=spec.seed, building_size=spec.building_size)


def _head(measurement: str, tags: dict[str, str]) -> str:
    return measurement + "".join(f",{k}={escape_tag_value(v)}" for k, v in sorted(tags.items()) if v)


def _household_tags(h: Household, device: str, profile: str) -> dict[str, str]:
    return {
        "building": f"Haus {h.building}",
        "household": h.name,
        "device": device,
        "gateway": h.gateway,
        "profile": profile,
    }


def _meter_kwh(family: str, wh: np.ndarray, low_wh: np.ndarray) -> np.ndarray:
    """kWh as each meter family's device profile decodes them (simulators.formats' rounding)."""
    if family == "tasmota-sml":
        kwh = np.round(wh / 1000, 4)
    elif family == "shelly-gen2":
        kwh = np.round(np.round(wh, 2) / 1000, 5)
    elif family == "sml":
        kwh = np.round(np.round(wh * 10) / 10_000, 4)
    else:  # DSMR: the sum of the two tariff registers, each in whole Wh
        kwh = np.round(np.round(low_wh / 1000, 3) + np.round((wh - low_wh) / 1000, 3), 3)
    return np.asarray(kwh, dtype=np.float64)


class _Shapes:
    """One Shapes per worker process (a year costs ~1 s to build)."""

    cache: ClassVar[dict[tuple[int, int, int], tuple[Quarter, Shapes]]] = {}

    @classmethod
    def get(cls, spec: FillSpec) -> tuple[Quarter, Shapes]:
        key = (spec.households, spec.building_size, spec.seed)
        if key not in cls.cache:
            quarter = quarter_of(spec)
            cls.cache[key] = (quarter, Shapes(quarter))
        return cls.cache[key]


def chunk_lines(spec: FillSpec, start_s: int, end_s: int) -> Iterator[str]:
    """Line protocol (precision s) of every reading in [start_s, end_s)."""
    quarter, shapes = _Shapes.get(spec)
    step = spec.interval_s
    times = np.arange(start_s, end_s, step, dtype=np.int64)
    if times.size == 0:
        return
    # counters at every reading and one interval before the first (power of the first interval)
    counters = np.stack([shapes.counters(float(t)) for t in range(start_s - step, end_s, step)])
    now, before = counters[1:], counters[:-1]
    per_hour = 3600.0 / step
    stamps = [str(t) for t in times.tolist()]
    rng = np.random.default_rng([quarter.seed, start_s, 0xBE])
    for index, h in enumerate(quarter.households):
        low = now[:, IMPORT_LOW, index]
        imp = _meter_kwh(h.meter_family, now[:, IMPORT, index], low).tolist()
        exp = _meter_kwh(h.meter_family, now[:, EXPORT, index], now[:, EXPORT_LOW, index]).tolist()
        net = (now[:, IMPORT, index] - before[:, IMPORT, index]) - (
            now[:, EXPORT, index] - before[:, EXPORT, index]
        )
        power = np.round(net * per_hour, 1).tolist()
        head = _head("electricity", _household_tags(h, h.meter_device, h.meter_family))
        for i, e, p, t in zip(imp, exp, power, stamps, strict=True):
            yield f"{head} energy_export_kwh={e},energy_import_kwh={i},power_w={p} {t}"
        if h.pv_kwp:
            energy = np.round(np.round(now[:, PV, index], 1) / 1000, 4).tolist()
            power = np.round((now[:, PV, index] - before[:, PV, index]) * per_hour, 1).tolist()
            head = _head("pv", _household_tags(h, h.pv_device, "generic-json"))
            for e, p, t in zip(energy, power, stamps, strict=True):
                yield f"{head} energy_kwh={e},power_w={p} {t}"
        if h.ev_kw:
            energy = np.round(np.round(now[:, EV, index], 2) / 1000, 5).tolist()
            power = np.round((now[:, EV, index] - before[:, EV, index]) * per_hour, 1).tolist()
            tags = {**_household_tags(h, h.ev_device, "shelly-gen2"), "channel": "0"}
            head = _head("electricity", tags)
            for e, p, t in zip(energy, power, stamps, strict=True):
                yield f"{head} energy_export_kwh=0.0,energy_import_kwh={e},power_w={p} {t}"
    yield from _slow_lines(quarter, shapes, counters, times, rng)
    yield from _stats_lines(spec, start_s, end_s)
    yield from _gateway_lines(quarter, spec, start_s, end_s)


def _slow_lines(
    quarter: Quarter,
    shapes: Shapes,
    counters: np.ndarray,
    times: np.ndarray,
    rng: np.random.Generator,
) -> Iterator[str]:
    """Heat and room climate every 5 minutes, street sensors every 10 (readings at multiples of it)."""
    slow = np.flatnonzero(times % SLOW_S == 0)
    if slow.size == 0:
        return
    slow_times = times[slow]
    slots = [shapes.year_of(float(t)).slot_at(float(t))[0] for t in slow_times.tolist()]
    years = [shapes.year_of(float(t)) for t in slow_times.tolist()]
    outdoor = np.array([y.outdoor_c[s] for y, s in zip(years, slots, strict=True)])
    occupancy = np.stack([y.occupancy[:, s] for y, s in zip(years, slots, strict=True)]).astype(float)
    # CO2 relaxes towards 420 + 380 ppm per person at home (engine.Simulation.step); 12 h lead-in
    decay = 1.0 - math.exp(-SLOW_S / 3600.0)
    co2 = np.full(len(quarter.households), 600.0)
    for _ in range(144):
        co2 += (420.0 + 380.0 * occupancy[0] - co2) * decay
    co2_rows = np.empty_like(occupancy)
    for k in range(occupancy.shape[0]):
        co2 += (420.0 + 380.0 * occupancy[k] - co2) * decay
        co2_rows[k] = co2
    heat_now = counters[1:][slow, HEAT]
    heat_before = np.stack([shapes.counters(float(t - SLOW_S))[HEAT] for t in slow_times.tolist()])
    stamps = [str(t) for t in slow_times.tolist()]
    n = slow.size
    for index, h in enumerate(quarter.households):
        energy = (np.round(heat_now[:, index]) / 1000).tolist()
        power = (np.round((heat_now[:, index] - heat_before[:, index]) * 3600.0 / SLOW_S) / 1000).tolist()
        head = _head("heat", _household_tags(h, h.heat_device, "generic-json"))
        for e, p, t in zip(energy, power, stamps, strict=True):
            yield f"{head} energy_kwh={e},power_kw={p} {t}"
        persons = occupancy[:, index]
        temperature = np.round(
            20.2 + 0.3 * persons + 0.25 * np.maximum(0.0, outdoor - 18.0) + rng.normal(0, 0.15, n), 2
        ).tolist()
        humidity = np.round(np.clip(36.0 + 4.0 * persons + 0.6 * outdoor + rng.normal(0, 1.0, n), 20, 80), 1)
        co2_ppm = np.round(co2_rows[:, index]).tolist()
        climate = _household_tags(h, h.climate_device, "zigbee2mqtt")
        head = _head("environment", climate)
        for c, u, te, t in zip(co2_ppm, humidity.tolist(), temperature, stamps, strict=True):
            yield f"{head} co2_ppm={c},humidity_pct={u},temperature_c={te} {t}"
        battery = float(max(5, 100 - index % 7 - (int(slow_times[0]) // 864_000) % 90))
        quality = rng.integers(90, 200, n).tolist()
        head = _head("device_health", climate)
        for q, t in zip(quality, stamps, strict=True):
            yield f"{head} battery_pct={battery},battery_v=3.2,link_quality={float(q)} {t}"
    street = np.flatnonzero(slow_times % STREET_S == 0)
    for sensor in quarter.street:
        tags = {
            "building": STREET_BUILDING,
            "device": sensor.device,
            "gateway": sensor.gateway,
            "profile": "ttn-v3",
        }
        env, health = _head("environment", tags), _head("device_health", tags)
        for k in street.tolist():
            local_hour = ((int(slow_times[k]) + 3600) // 3600) % 24
            busy = 1.0 if 7 <= local_hour < 20 else 0.0
            pm25: float = round(max(1.0, 9.0 + 6.0 * busy + float(rng.normal(0, 3))), 1)
            air_c: float = round(float(outdoor[k]) + float(rng.normal(0, 0.3)), 1)
            air_pct: float = round(
                min(99.0, max(30.0, 85.0 - 1.5 * float(outdoor[k]) + float(rng.normal(0, 3)))), 1
            )
            noise = round(44.0 + 14.0 * busy + float(rng.normal(0, 2)), 1)
            yield (
                f"{env} humidity_pct={air_pct},noise_dba={noise},pm10_ugm3={round(pm25 * 1.6, 1)},"
                f"pm25_ugm3={pm25},temperature_c={air_c} {stamps[k]}"
            )
            yield f"{health} battery_v=3.65,rssi_dbm=-95.0,snr_db=7.25 {stamps[k]}"


def messages_per_second(quarter: Quarter, interval_s: int) -> float:
    fast = sum(1 + bool(h.pv_kwp) + bool(h.ev_kw) for h in quarter.households) / interval_s
    return fast + 2 * len(quarter.households) / SLOW_S + len(quarter.street) / STREET_S


def _stats_lines(spec: FillSpec, start_s: int, end_s: int) -> Iterator[str]:
    """The ingester's counters since the fill's start (no restart): a message rate as the quarter's,
    one in 2,000 quarantined, a small spool lag; retries and drops 0."""
    rate = messages_per_second(quarter_of(spec), spec.interval_s)
    first = -(-start_s // STATS_S) * STATS_S
    head = f"ingest_stats,client_id={INGESTER}"
    for t in range(first, end_s, STATS_S):
        received = int((t - spec.start_s) * rate)
        quarantined = received // 2000
        written = max(0, received - quarantined - (t // STATS_S) % 7)
        spooled = received - quarantined
        yield (
            f"{head} broker_dropped=0i,decoded={received - quarantined}i,dropped=0i,"
            f"in_spool_records={spooled - written}i,points_quarantined=0i,quarantined={quarantined}i,"
            f"received={received}i,replayed=0i,retried=0i,spool_bytes={(spooled - written) * 180}i,"
            f"spool_max_bytes=1073741824i,spooled={spooled}i,written={written}i {t}"
        )


def _gateway_lines(quarter: Quarter, spec: FillSpec, start_s: int, end_s: int) -> Iterator[str]:
    """Each gateway's health every minute, as the central decoder writes it (gateway and port points)."""
    first = -(-start_s // HEALTH_S) * HEALTH_S
    meters = {g: [h.meter_device for h in quarter.households if h.gateway == g] for g in quarter.gateways}
    for t in range(first, end_s, HEALTH_S):
        uptime = t - spec.start_s
        for n, gateway in enumerate(quarter.gateways):
            offset = 0.001 * ((n + t // HEALTH_S) % 7 - 3)
            yield (
                f"gateway_health,device=gateway,gateway={gateway} clock_offset_s={offset},clock_synced=true,"
                f"outbox_depth=0,outbox_dropped_full=0,uplink_connected=true,uptime_s={uptime} {t}"
            )
            for device in meters[gateway]:
                yield (
                    f"gateway_health,device=gateway,gateway={gateway},port={device} "
                    f"broken={uptime // 86_400},connected=true,frames={uptime},reconnects=0 {t}"
                )


def _write_chunk(url: str, database: str, spec: FillSpec, start_s: int, end_s: int) -> ChunkResult:
    began = time.monotonic()
    lines = values = 0
    batch: list[str] = []
    with httpx.Client(base_url=url, timeout=300, trust_env=False) as http:

        def flush() -> None:
            response = http.post(
                "/write", params={"db": database, "precision": "s"}, content="\n".join(batch).encode()
            )
            if response.status_code != 204:
                raise RuntimeError(f"InfluxDB refused a batch: {response.status_code} {response.text[:500]}")
            batch.clear()

        for line in chunk_lines(spec, start_s, end_s):
            batch.append(line)
            lines += 1
            values += line.rsplit(" ", 2)[1].count("=")
            if len(batch) >= BATCH_LINES:
                flush()
        if batch:
            flush()
    return ChunkResult(lines, values, time.monotonic() - began)


def chunks(spec: FillSpec, size_s: int = 86_400) -> list[tuple[int, int]]:
    """[start, end) ranges of about a day, newest first (the panels' default ranges fill first)."""
    out = []
    end = spec.end_s + spec.interval_s
    while end > spec.start_s:
        start = max(spec.start_s, end - size_s)
        out.append((start, end))
        end = start
    return out


def backfill(url: str, database: str, spec: FillSpec, *, writers: int) -> dict[str, float]:
    """Every reading of ``spec`` into ``database``; ``writers`` processes generate and write days in
    parallel. Returns lines (points), field values, seconds and rates."""
    began = time.monotonic()
    lines = values = 0
    with ProcessPoolExecutor(max_workers=writers) as pool:
        futures = [pool.submit(_write_chunk, url, database, spec, a, b) for a, b in chunks(spec)]
        for future in as_completed(futures):
            result = future.result()
            lines += result.lines
            values += result.values
    seconds = time.monotonic() - began
    return {
        "points": lines,
        "field_values": values,
        "seconds": round(seconds, 1),
        "points_per_s": round(lines / seconds),
        "values_per_s": round(values / seconds),
        "writers": writers,
    }
