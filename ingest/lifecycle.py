"""Data lifecycle in InfluxDB: raw retention, 15-minute and daily rollups (statements only, no I/O).

InfluxDB 1.x (what ``reallabor influx init`` sets up, :mod:`ingest.lifecycle_cli` sends these):

- raw readings stay in the database's default retention policy, ``raw`` (``influx.raw_retention``, 90d);
- rollups go to the retention policy ``rollups`` (kept for good), measurement ``<measurement>_15m`` and
  ``<measurement>_1d``, with the raw series' tags (``GROUP BY time(…), *``) and the raw field names:
  a counter (``energy_import_kwh`` …) keeps ``last()`` under its own name and ``max()`` as ``<field>_max``;
  a gauge (power, environment, device health) keeps ``mean()`` under its own name and ``max()`` as
  ``<field>_max``. The daily rollup is made from the 15-minute rollup (last of last, max of max, mean of
  the quarter-hour means), so it costs 96 points per series and day, never a scan of a day of raw data;
- a measurement with a ``counted`` field also keeps the number of its readings, ``<field>_count``
  (``count()`` per quarter hour, ``sum()`` of those per day): the fleet's readings per gateway over
  weeks without counting millions of raw points;
- continuous queries keep them current; :func:`backfill_statements` computes them for the past.

The rollup day is ``[23:00 UTC, 23:00 UTC)``: ``GROUP BY time(1d, -1h)``, local midnight in Europe/Berlin
in winter (CET), 01:00 to 01:00 in summer (CEST). A continuous query cannot follow the zone: InfluxDB 1.x
computes its time range from UTC boundaries plus the GROUP BY offset, whatever ``tz()`` says, so a CQ
with ``tz('Europe/Berlin')`` would overwrite every day with a part of it (docs/lifecycle.md).

Counters become consumption with the reset rule of :mod:`ingest.consumption`, over each period's
``(previous last, max, last)``: :func:`period_energy`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ingest import influxql
from ingest.consumption import increment

RAW_RP = "raw"
ROLLUP_RP = "rollups"
MAX_SUFFIX = "_max"
COUNT_SUFFIX = "_count"
DAY_OFFSET_H = -1  # the rollup day starts at 00:00 UTC+1: local midnight in winter, 01:00 in summer
DEFAULT_BUCKET = "reallabor"
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([hdw])$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}
# the daily rollup re-reads two days of quarter hours, their CQ an hour of raw data: a week leaves room
MIN_RAW_RETENTION = dt.timedelta(days=7)
MAX_RAW_RETENTION = dt.timedelta(weeks=520)


def parse_duration(text: str) -> dt.timedelta:
    """``influx.raw_retention``: whole hours, days or weeks (``90d``), between 7 days and 520 weeks."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError("a whole number of hours, days or weeks, e.g. 90d, 26w or 2160h")
    duration = dt.timedelta(hours=int(match[1]) * _UNIT_HOURS[match[2]])
    if duration < MIN_RAW_RETENTION:
        raise ValueError("at least 7d: the daily rollup reads the last two days of raw data")
    if duration > MAX_RAW_RETENTION:
        raise ValueError("at most 520w (10 years); the rollups keep the long history")
    return duration


@dataclass(frozen=True)
class Fields:
    counters: tuple[str, ...] = ()  # cumulative: last() and max()
    gauges: tuple[str, ...] = ()  # momentary: mean() and max()
    counted: str | None = None  # a field every reading has: count() as "<field>_count"

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.counters, *self.gauges)


_PHASES = ("l1", "l2", "l3")

#: Every numeric field of docs/canonical-schema.md and the shipped profiles' additions, by measurement.
#: Booleans (``charging``, ``online``, ``implausible``) have no mean and are not rolled up. Neither is
#: ``ingest_stats``: the ingester's own counters, per process and starting at zero with every start; the
#: operators read them over days (raw keeps 90), and what they count is in the readings' rollups.
MEASUREMENTS: dict[str, Fields] = {
    "electricity": Fields(
        counters=("energy_import_kwh", "energy_export_kwh"),
        gauges=(
            "power_w",
            *(f"power_{p}_w" for p in _PHASES),
            "power_import_w",
            "power_export_w",
            *(f"power_{p}_{d}_w" for p in _PHASES for d in ("import", "export")),
            *(f"voltage_{p}_v" for p in _PHASES),
            *(f"current_{p}_a" for p in _PHASES),
            "frequency_hz",
            "power_factor",
        ),
        counted="power_w",  # the fleet dashboard's readings per gateway
    ),
    "heat": Fields(
        counters=("energy_kwh", "volume_m3"),
        gauges=("power_kw", "flow_temp_c", "return_temp_c", "flow_m3h"),
    ),
    "gas": Fields(counters=("volume_m3",)),
    "water": Fields(counters=("volume_m3",)),
    "pv": Fields(counters=("energy_kwh",), gauges=("power_w",)),
    "ev_charger": Fields(counters=("energy_kwh",), gauges=("power_w",)),
    "environment": Fields(
        gauges=(
            "temperature_c",
            "humidity_pct",
            "pressure_hpa",
            "co2_ppm",
            "voc_index",
            "voc_ppb",
            "pm25_ugm3",
            "pm10_ugm3",
            "illuminance_lx",
            "noise_dba",
            "formaldehyde_mgm3",
        )
    ),
    "device_health": Fields(
        counters=("uptime_s",),
        gauges=("rssi_dbm", "link_quality", "battery_pct", "battery_v", "snr_db"),
    ),
}


@dataclass(frozen=True)
class Rollup:
    """One rollup level. ``source``: None reads raw data, else the suffix of the rollup it is made from."""

    suffix: str
    interval: str
    offset_h: int
    resample_every: str
    resample_for: str
    source: str | None
    seconds: int

    @property
    def group_by_time(self) -> str:
        return f"time({self.interval}, {self.offset_h}h)" if self.offset_h else f"time({self.interval})"


#: 15 minutes from raw, recomputed for an hour (late data up to an hour old is included); the day from
#: the quarter hours, recomputed every hour for two days (so today's row grows through the day).
ROLLUPS = (
    Rollup("15m", "15m", 0, "15m", "1h", None, 900),
    Rollup("1d", "1d", DAY_OFFSET_H, "1h", "2d", "15m", 86400),
)


def quote(identifier: str) -> str:
    """An InfluxQL identifier in double quotes (:func:`ingest.influxql.ident`)."""
    return influxql.ident(identifier)


def quote_string(text: str) -> str:
    """An InfluxQL string literal (:func:`ingest.influxql.string_literal`)."""
    return influxql.string_literal(text)


def rollup_measurement(measurement: str, rollup: Rollup) -> str:
    return f"{measurement}_{rollup.suffix}"


def select_list(fields: Fields, rollup: Rollup) -> str:
    """``last("f") AS "f", max("f") AS "f_max", mean("g") AS "g", …`` for one rollup level."""
    from_rollup = rollup.source is not None
    parts = []
    for kind, names in (("last", fields.counters), ("mean", fields.gauges)):
        for name in names:
            peak = name + MAX_SUFFIX if from_rollup else name
            parts.append(f"{kind}({quote(name)}) AS {quote(name)}")
            parts.append(f"max({quote(peak)}) AS {quote(name + MAX_SUFFIX)}")
    if fields.counted is not None:
        count = fields.counted + COUNT_SUFFIX
        parts.append(
            f"sum({quote(count)}) AS {quote(count)}"
            if from_rollup
            else f"count({quote(fields.counted)}) AS {quote(count)}"
        )
    return ", ".join(parts)


def _source(database: str, measurement: str, rollup: Rollup, raw_rp: str) -> str:
    if rollup.source is None:
        return f"{quote(database)}.{quote(raw_rp)}.{quote(measurement)}"
    return f"{quote(database)}.{quote(ROLLUP_RP)}.{quote(f'{measurement}_{rollup.source}')}"


def select_into(
    database: str, measurement: str, rollup: Rollup, *, raw_rp: str = RAW_RP, where: str = ""
) -> str:
    """The rollup's ``SELECT … INTO … GROUP BY time(…), *`` (``where``: a time range, for a backfill)."""
    target = f"{quote(database)}.{quote(ROLLUP_RP)}.{quote(rollup_measurement(measurement, rollup))}"
    clause = f" WHERE {where}" if where else ""
    return (
        f"SELECT {select_list(MEASUREMENTS[measurement], rollup)} INTO {target} "
        f"FROM {_source(database, measurement, rollup, raw_rp)}{clause} GROUP BY {rollup.group_by_time}, *"
    )


def cq_name(measurement: str, rollup: Rollup) -> str:
    return f"rollup_{measurement}_{rollup.suffix}"


def create_cq(database: str, measurement: str, rollup: Rollup, *, raw_rp: str = RAW_RP) -> str:
    return (
        f"CREATE CONTINUOUS QUERY {quote(cq_name(measurement, rollup))} ON {quote(database)} "
        f"RESAMPLE EVERY {rollup.resample_every} FOR {rollup.resample_for} "
        f"BEGIN {select_into(database, measurement, rollup, raw_rp=raw_rp)} END"
    )


def create_cqs(database: str, *, raw_rp: str = RAW_RP) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every CQ, every 15-minute one before the daily ones: InfluxDB runs
    them in this order, so a daily CQ sees the quarter hours written in the same pass."""
    return [
        (cq_name(measurement, rollup), create_cq(database, measurement, rollup, raw_rp=raw_rp))
        for rollup in ROLLUPS
        for measurement in MEASUREMENTS
    ]


def influx_duration(duration: dt.timedelta) -> str:
    hours = int(duration.total_seconds()) // 3600
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def retention_statements(database: str, raw_retention: dt.timedelta, existing: Iterable[str]) -> list[str]:
    """Create or alter ``raw`` (default, the configured duration) and ``rollups`` (forever)."""
    existing = set(existing)
    raw_verb = "ALTER" if RAW_RP in existing else "CREATE"
    replication = "" if raw_verb == "ALTER" else " REPLICATION 1"
    statements = [
        f"{raw_verb} RETENTION POLICY {quote(RAW_RP)} ON {quote(database)} "
        f"DURATION {influx_duration(raw_retention)}{replication} DEFAULT"
    ]
    if ROLLUP_RP in existing:
        statements.append(f"ALTER RETENTION POLICY {quote(ROLLUP_RP)} ON {quote(database)} DURATION INF")
    else:
        statements.append(
            f"CREATE RETENTION POLICY {quote(ROLLUP_RP)} ON {quote(database)} DURATION INF REPLICATION 1"
        )
    return statements


def day_start(day: dt.date) -> dt.datetime:
    """The start of the rollup day ``day`` (UTC): 23:00 the evening before."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(hours=DAY_OFFSET_H)


def rollup_day(time_ns: int) -> dt.date:
    """The rollup day a time belongs to."""
    moment = dt.datetime.fromtimestamp(time_ns // 1_000_000_000, dt.UTC) - dt.timedelta(hours=DAY_OFFSET_H)
    return moment.date()


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_range(start: dt.datetime, end: dt.datetime) -> str:
    return f"time >= {quote_string(_rfc3339(start))} AND time < {quote_string(_rfc3339(end))}"


def backfill_statements(
    database: str, *, first_day: dt.date, until: dt.datetime, raw_rp: str = RAW_RP
) -> Iterator[str]:
    """Every rollup from the rollup day ``first_day`` up to ``until``: the quarter hours one day at a time
    (a day of raw data per statement), then the days from them. Running them again writes the same points.
    """
    start = day_start(first_day)
    quarter, daily = ROLLUPS
    end = dt.datetime.fromtimestamp(
        -(-int(until.timestamp()) // quarter.seconds) * quarter.seconds, dt.UTC
    )  # the quarter hour in progress included: the CQ completes it
    chunk = start
    while chunk < end:
        chunk_end = min(chunk + dt.timedelta(days=1), end)
        for measurement in MEASUREMENTS:
            where = time_range(chunk, chunk_end)
            yield select_into(database, measurement, quarter, raw_rp=raw_rp, where=where)
        chunk = chunk_end
    for measurement in MEASUREMENTS:
        yield select_into(database, measurement, daily, raw_rp=raw_rp, where=time_range(start, end))


def period_energy(previous_last: float | None, maximum: float | None, last: float) -> float:
    """Energy of one rollup period of a counter from its ``max`` and ``last`` and the previous period's
    ``last``, by the reset rule of :func:`ingest.consumption.increment`: the readings are taken as
    previous last → max → last. A meter swapped inside the period shows as ``max > last`` (the old
    meter's last reading is the period's highest); swapped between two periods as ``last < previous``.
    Exact for at most one swap per period whose new meter, counting from zero, stays below the old one's
    reading within that period (a meter holding years of kWh against a quarter hour or a day)."""
    peak = last if maximum is None else max(maximum, last)
    if previous_last is None:
        return increment(peak, last) if peak > last else 0.0
    return increment(previous_last, peak) + increment(peak, last)


def period_energies(rows: Iterable[tuple[int, float | None, float | None]]) -> dict[int, float]:
    """One counter's rollup rows ``(time_ns, last, max)`` → energy per period (the first period has no
    baseline: 0, unless the meter was swapped inside it). Never negative."""
    out: dict[int, float] = {}
    previous: float | None = None
    for time_ns, last, maximum in sorted(rows, key=lambda row: row[0]):
        if last is None:
            continue
        out[time_ns] = period_energy(previous, maximum, last)
        previous = last
    return out


# InfluxDB 2.x: the same rollups as Flux tasks (files in deploy/influx2/tasks, docs/lifecycle.md) ---------

_FLUX_HEADER = """\
// generated by `reallabor influx tasks` (ingest/lifecycle.py): do not edit, regenerate.
// InfluxDB 2.x: the {suffix} rollups of the InfluxDB 1.x continuous queries; see docs/lifecycle.md.
// Raw bucket {bucket!r}, rollups into {rollups!r} (map it as database {bucket!r}, retention policy
// "rollups", so that InfluxQL panels find it). Untested here: this project runs InfluxDB 1.6.
"""


def _flux_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flux_set(names: Iterable[str]) -> str:
    return "[" + ", ".join(_flux_string(name) for name in names) + "]"


def flux_task(rollup: Rollup, *, bucket: str = DEFAULT_BUCKET, rollups_bucket: str | None = None) -> str:
    """The Flux task of one rollup level. The 2.x daily rollup follows Europe/Berlin exactly (Flux windows
    know zones), unlike the 1.x CQ's fixed UTC+1 day."""
    rollups_bucket = rollups_bucket or f"{bucket}_{ROLLUP_RP}"
    from_rollup = rollup.source is not None
    lines = [_FLUX_HEADER.format(suffix=rollup.suffix, bucket=bucket, rollups=rollups_bucket)]
    lines.append('import "date"')
    if from_rollup:
        lines += ['import "timezone"', "", 'option location = timezone.location(name: "Europe/Berlin")']
    every = rollup.resample_every
    lines += [
        "",
        f'option task = {{name: "reallabor-rollup-{rollup.suffix}", every: {every}, offset: 1m}}',
        "",
        f"start = date.truncate(t: -{rollup.resample_for}, unit: {rollup.interval})",
    ]
    if from_rollup:
        source = f"from(bucket: {_flux_string(rollups_bucket)}) |> range(start: start)"
    else:
        stop = f"date.truncate(t: now(), unit: {rollup.interval})"
        source = f"from(bucket: {_flux_string(bucket)}) |> range(start: start, stop: {stop})"
    lines += [
        f"data = {source}",
        "",
        "rollup = (tables=<-, measurement, into, fields, fn, suffix) =>",
        "    tables",
        "        |> filter(fn: (r) => r._measurement == measurement",
        "            and contains(value: r._field, set: fields))",
        f"        |> aggregateWindow(every: {rollup.interval}, fn: fn, createEmpty: false,",
        '            timeSrc: "_start")',
        "        |> map(fn: (r) => ({r with _measurement: into, _field: r._field + suffix}))",
        f"        |> to(bucket: {_flux_string(rollups_bucket)})",
        "",
    ]
    for measurement, fields in MEASUREMENTS.items():
        source_name = f"{measurement}_{rollup.source}" if from_rollup else measurement
        for kind, names in (("last", fields.counters), ("mean", fields.gauges)):
            if not names:
                continue
            names_max = [name + MAX_SUFFIX for name in names] if from_rollup else list(names)
            into = _flux_string(rollup_measurement(measurement, rollup))
            head = f"data |> rollup(measurement: {_flux_string(source_name)}, into: {into}, fields: "
            lines.append(f'{head}{_flux_set(names)}, fn: {kind}, suffix: "")')
            suffix = _flux_string("" if from_rollup else MAX_SUFFIX)
            lines.append(f"{head}{_flux_set(names_max)}, fn: max, suffix: {suffix})")
        if fields.counted is not None:
            into = _flux_string(rollup_measurement(measurement, rollup))
            head = f"data |> rollup(measurement: {_flux_string(source_name)}, into: {into}, fields: "
            if from_rollup:
                counted = _flux_set([fields.counted + COUNT_SUFFIX])
                lines.append(f'{head}{counted}, fn: sum, suffix: "")')
            else:
                lines.append(
                    f"{head}{_flux_set([fields.counted])}, fn: count, suffix: {_flux_string(COUNT_SUFFIX)})"
                )
    return "\n".join(lines) + "\n"


def flux_tasks(*, bucket: str = DEFAULT_BUCKET, rollups_bucket: str | None = None) -> dict[str, str]:
    """File name → Flux task, one per rollup level."""
    return {
        f"rollup_{rollup.suffix}.flux": flux_task(rollup, bucket=bucket, rollups_bucket=rollups_bucket)
        for rollup in ROLLUPS
    }
