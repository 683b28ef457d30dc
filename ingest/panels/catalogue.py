"""The panel catalogue: every panel once (title, InfluxQL with Grafana's variables and macros, unit,
visualisation, thresholds), grouped into the five dashboards. Grafana JSON is built from it
(:mod:`ingest.panels.grafana`); the tests run every query against the real InfluxDB.

Conventions: raw data in the database's default retention policy; rollups in ``rollups``. Every energy
panel reads the energy ledger (``rollups.energy`` per 15 minutes, ``rollups.energy_1d`` per local day,
:mod:`ingest.energy`) and carries its ``raw`` twin: the non_negative_difference query on raw data, for the
tests and the benchmark to compare.
Main electricity meters are the ``electricity`` series without a ``channel`` tag; sub-meters (the
quarter's EV circuits, Shelly Pro EM) carry one. Street sensors are devices assigned to a building only
(no ``household`` tag).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest.lifecycle import COUNT_SUFFIX
from ingest.panels.influxql import ROLLUP_RP, Counter, energy, ledger, tz

DATASOURCE_UID = "reallabor-influx"


@dataclass(frozen=True)
class Target:
    """One query of a panel. ``raw``: the same query on raw data when ``query`` reads rollups."""

    query: str
    alias: str = ""
    raw: str | None = None
    table: bool = False


@dataclass(frozen=True)
class Step:
    """A threshold step: ``color`` from ``value`` up (None: the base)."""

    color: str
    value: float | None = None


@dataclass(frozen=True)
class Panel:
    key: str  # stable within the dashboard: the panel id derives from the order, the key names it
    title: str
    description: str
    kind: str  # timeseries, barchart, stat, table, bargauge
    targets: tuple[Target, ...]
    unit: str = "none"
    steps: tuple[Step, ...] = (Step("green"),)
    width: int = 12
    height: int = 8
    time_from: str | None = None  # the panel's own range, e.g. "30d" (Grafana's relative time)
    interval: str | None = None  # Grafana's min interval: $__interval never below it
    # Grafana's max data points: $__interval is at least the range / this (long ranges, coarser buckets)
    max_data_points: int = 1000
    bars: bool = False
    stack: bool = False
    decimals: int | None = None
    reduce: str = "lastNotNull"  # stat and bargauge: how a series becomes one value
    threshold_style: str = "off"  # timeseries: "off", "line", "area" (comfort bands)
    transformations: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # InfluxQL returning the options (SHOW TAG VALUES …)
    multi: bool = True  # multi-value and include-all; False: exactly one


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...] = ()
    time_from: str = "now-24h"
    time_to: str = "now"
    tags: tuple[str, ...] = field(default=("reallabor",))


# per series and panel over long ranges: InfluxDB 1.x pays per series and time bucket, and 110 devices
# × 1,440 half hours (30 days) took 1–3 s; 250 makes 30 days 3-hour buckets (docs/performance.md)
POINTS_PER_SERIES = 250
BARS = 150  # the quarter's energy: 5 flows × 110 devices' ledger summed per bar (6-hour bars over 30 days)
MAIN = '"channel" = \'\' AND "building" =~ /^$building$/'
SUB = '"channel" != \'\' AND "building" =~ /^$building$/'
IN_BUILDING = '"building" =~ /^$building$/'
IMPORT = Counter("electricity", "energy_import_kwh", MAIN)
EXPORT = Counter("electricity", "energy_export_kwh", MAIN)
PV = Counter("pv", "energy_kwh", IN_BUILDING)
HEAT = Counter("heat", "energy_kwh", IN_BUILDING)
EV = Counter("electricity", "energy_import_kwh", SUB)
ENERGY_FLOWS = (("import", IMPORT), ("export", EXPORT), ("pv", PV), ("heat", HEAT), ("ev", EV))
LEDGER_BUILDING = IN_BUILDING  # the ledger's kind tag says main meter or sub-meter
FLOW_TITLES = {"import": "Import", "export": "Export", "pv": "PV yield", "heat": "Heat", "ev": "EV charging"}
BUILDING = Variable("building", "Building", 'SHOW TAG VALUES FROM "electricity" WITH KEY = "building"')
HOUSEHOLD = Variable(
    "household", "Household", 'SHOW TAG VALUES FROM "electricity" WITH KEY = "household"', multi=False
)
MONTHS = (
    {"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "YYYY-MM", "useTimezone": True}},
    {
        "id": "groupBy",
        "options": {
            "fields": {
                "Time": {"aggregations": [], "operation": "groupby"},
                **{
                    title: {"aggregations": ["sum"], "operation": "aggregate"}
                    for title in FLOW_TITLES.values()
                },
            }
        },
    },
)


def _flows(*, period: str, bucket: str | None, daily: bool = False) -> tuple[Target, ...]:
    """One target per energy flow from the ledger, with its raw twin (``period``: the raw query's)."""
    return tuple(
        Target(
            ledger(name, where=LEDGER_BUILDING, bucket=bucket, daily=daily, alias=name),
            alias=FLOW_TITLES[name],
            raw=energy(counter, period=period, bucket=bucket, alias=name),
        )
        for name, counter in ENERGY_FLOWS
    )


def _binary(left: str, operator: str, right: str, alias: str) -> dict[str, Any]:
    return {
        "id": "calculateField",
        "options": {
            "mode": "binary",
            "binary": {"left": left, "operator": operator, "right": right},
            "alias": alias,
            "replaceFields": False,
        },
    }


# InfluxQL cannot combine measurements in one expression (a subquery's rows keep their measurement):
# the three totals come as three queries, Grafana computes the ratios (the tests compute them the same).
RATIO_TARGETS = tuple(
    Target(
        ledger(name, where=LEDGER_BUILDING, bucket=None, alias=name),
        alias=name,
        raw=energy(counter, period="15m", bucket=None, alias=name),
    )
    for name, counter in (("pv", PV), ("export", EXPORT), ("import", IMPORT))
)
RATIOS = (
    {"id": "merge", "options": {}},
    _binary("pv", "-", "export", "used"),
    _binary("used", "/", "pv", "Self-consumption"),
    _binary("used", "+", "import", "consumption"),
    _binary("used", "/", "consumption", "Self-sufficiency"),
    {
        "id": "organize",
        "options": {
            "excludeByName": {name: True for name in ("pv", "export", "import", "used", "consumption")}
        },
    },
)


def _energy() -> Dashboard:
    per_building = Counter("electricity", "energy_import_kwh", MAIN)
    return Dashboard(
        uid="reallabor-energy",
        title="Quarter energy",
        description="Import, export, PV yield, heat and EV charging of the quarter, from the counters.",
        variables=(BUILDING,),
        time_from="now/d",
        time_to="now/d",
        panels=(
            Panel(
                "today-15m",
                "Today by 15 minutes",
                "Energy per 15 minutes (kWh) from the energy ledger: exact across meter swaps and resets. "
                "Over longer ranges per interval (at most 150 bars: 7 days by the hour, 30 days by 6 hours).",
                "timeseries",
                _flows(period="15m", bucket="$__interval"),
                unit="kwatth",
                width=24,
                bars=True,
                interval="15m",
                max_data_points=BARS,
            ),
            Panel(
                "totals",
                "Energy in the range",
                "Totals of the dashboard's range (kWh).",
                "stat",
                _flows(period="15m", bucket=None),
                unit="kwatth",
                width=12,
                height=5,
                decimals=1,
            ),
            Panel(
                "ratios",
                "Self-consumption and self-sufficiency",
                "Self-consumption: the share of PV yield used in the quarter, (PV − export) / PV. "
                "Self-sufficiency: the share of consumption covered by PV, "
                "(PV − export) / (PV − export + import).",
                "stat",
                RATIO_TARGETS,
                unit="percentunit",
                width=12,
                height=5,
                transformations=RATIOS,
                steps=(Step("red"), Step("orange", 0.3), Step("green", 0.6)),
                decimals=1,
            ),
            Panel(
                "per-building",
                "Import per building",
                "Import energy of each building in the range (kWh).",
                "bargauge",
                (
                    Target(
                        ledger(
                            "import", where=LEDGER_BUILDING, bucket=None, by=("building",), alias="import"
                        ),
                        alias="$tag_building",
                        raw=energy(per_building, period="15m", bucket=None, by=("building",), alias="import"),
                    ),
                ),
                unit="kwatth",
                width=24,
                height=10,
            ),
            Panel(
                "days-30",
                "Last 30 days by day",
                "Energy per local day (kWh) from the energy ledger's days.",
                "timeseries",
                _flows(period="15m", bucket="1d", daily=True),
                unit="kwatth",
                width=24,
                time_from="30d",
                interval="1d",
                bars=True,
            ),
            Panel(
                "months-12",
                "Last 12 months by month",
                "Energy per month (kWh): the energy ledger's days, summed per month by Grafana.",
                "barchart",
                _flows(period="1d", bucket="1d", daily=True),
                unit="kwatth",
                width=24,
                time_from="1y",
                interval="1d",
                transformations=MONTHS,
            ),
        ),
    )


def _last_seen(measurement: str, field: str) -> str:
    return (
        f'SELECT last("{field}") AS "reading" FROM "{measurement}" WHERE $timeFilter '
        'GROUP BY "gateway", "device"'
    )


def _fleet() -> Dashboard:
    seen = tuple(
        Target(_last_seen(m, f), table=True)
        for m, f in (
            ("electricity", "power_w"),
            ("pv", "power_w"),
            ("heat", "energy_kwh"),
            ("environment", "temperature_c"),
        )
    )
    return Dashboard(
        uid="reallabor-fleet",
        title="Fleet health",
        description="Last seen per gateway and device (silent ones first), quarantine, battery and signal.",
        panels=(
            Panel(
                "last-seen",
                "Last seen per device (silent first)",
                "The time of each device's newest reading in the last 7 days (the panel's own range, "
                "whatever the dashboard's), oldest first. A device silent for longer does not appear.",
                "table",
                seen,
                width=24,
                height=10,
                time_from="7d",
                transformations=(
                    {"id": "merge", "options": {}},
                    {"id": "sortBy", "options": {"sort": [{"field": "Time", "desc": False}]}},
                ),
            ),
            Panel(
                "gateways",
                "Readings per gateway",
                "Electricity readings per gateway and interval, from the 15-minute rollup's count: a "
                "gateway that falls to zero is offline (the newest quarter hour appears when it is over).",
                "timeseries",
                (
                    Target(
                        f'SELECT sum("power_w{COUNT_SUFFIX}") FROM "{ROLLUP_RP}"."electricity_15m" '
                        'WHERE $timeFilter GROUP BY time($__interval), "gateway" fill(0)',
                        alias="$tag_gateway",
                        raw='SELECT count("power_w") FROM "electricity" WHERE $timeFilter '
                        'GROUP BY time($__interval), "gateway" fill(0)',
                    ),
                ),
                interval="15m",
                max_data_points=POINTS_PER_SERIES,
            ),
            Panel(
                "quarantine",
                "Quarantined messages",
                "Messages put into quarantine per interval, per ingester "
                "(by reason: reallabor quarantine stats).",
                "timeseries",
                (
                    Target(
                        'SELECT non_negative_difference(last("quarantined")) FROM "ingest_stats" '
                        'WHERE $timeFilter GROUP BY time($__interval), "client_id" fill(none)',
                        alias="$tag_client_id",
                    ),
                ),
                steps=(Step("green"), Step("orange", 1)),
                interval="10s",
            ),
            Panel(
                "battery",
                "Battery (lowest first)",
                "The newest battery level per device: % (Zigbee) and V (LoRaWAN).",
                "table",
                (
                    Target(
                        'SELECT last("battery_pct") AS "battery_pct" FROM "device_health" WHERE $timeFilter '
                        'GROUP BY "gateway", "device"',
                        table=True,
                    ),
                    Target(
                        'SELECT last("battery_v") AS "battery_v" FROM "device_health" WHERE $timeFilter '
                        'GROUP BY "gateway", "device"',
                        table=True,
                    ),
                ),
                steps=(Step("red"), Step("orange", 15), Step("green", 30)),
                transformations=(
                    {"id": "merge", "options": {}},
                    {"id": "sortBy", "options": {"sort": [{"field": "battery_pct", "desc": False}]}},
                ),
            ),
            Panel(
                "signal",
                "Radio signal",
                "Zigbee link quality and LoRaWAN RSSI per device (mean per interval, from the 15-minute "
                "rollup: the newest quarter hour appears when it is over).",
                "timeseries",
                (_signal("link_quality", "$tag_device"), _signal("rssi_dbm", "$tag_device dBm")),
                interval="15m",
                max_data_points=POINTS_PER_SERIES,
            ),
            Panel(
                "gateway-outbox",
                "Gateway outbox: readings waiting",
                "Readings a gateway service holds in its outbox, not yet taken by the central broker (the "
                "highest per interval, from its health message every minute). It rises while a building's "
                "uplink is down and falls to zero when the backlog has been sent.",
                "timeseries",
                (
                    Target(
                        'SELECT max("outbox_depth") FROM "gateway_health" WHERE $timeFilter '
                        'GROUP BY time($__interval), "gateway" fill(none)',
                        alias="$tag_gateway",
                    ),
                ),
                steps=(Step("green"), Step("orange", 600), Step("red", 36000)),
                interval="1m",
                max_data_points=POINTS_PER_SERIES,
            ),
            Panel(
                "gateway-clock",
                "Gateway clock offset",
                "How far each gateway's clock is from NTP time, in seconds, as its kernel reports it: "
                "readings without a meter time are stamped by this clock. Missing: not synchronised.",
                "timeseries",
                (
                    Target(
                        'SELECT last("clock_offset_s") FROM "gateway_health" WHERE $timeFilter '
                        'GROUP BY time($__interval), "gateway" fill(none)',
                        alias="$tag_gateway",
                    ),
                ),
                unit="s",
                interval="1m",
                max_data_points=POINTS_PER_SERIES,
            ),
            Panel(
                "serial-ports",
                "Meter read heads",
                "Per gateway and serial port: frames read, broken frames (line noise, a loose head) and "
                "reconnects (a head unplugged) since the gateway service started.",
                "table",
                (
                    Target(
                        'SELECT last("frames") AS "frames", last("broken") AS "broken", '
                        'last("reconnects") AS "reconnects" FROM "gateway_health" WHERE $timeFilter '
                        'AND "port" != \'\' GROUP BY "gateway", "port"',
                        table=True,
                    ),
                ),
                width=24,
                steps=(Step("green"), Step("orange", 1)),
                transformations=({"id": "merge", "options": {}},),
            ),
        ),
    )


def _climate(field_name: str, where: str, *, source: str = '"environment"') -> str:
    return (
        f'SELECT mean("{field_name}") FROM {source} WHERE $timeFilter AND {where} '
        f'GROUP BY time($__interval), "building", "device" fill(none)'
    )


def _rooms(field_name: str, where: str, alias: str) -> Target:
    """A room climate series per device from the 15-minute rollup (mean of the quarter hours' means:
    the readings' mean, every room sensor reporting every 5 minutes), raw data as its twin."""
    rollup = f'"{ROLLUP_RP}"."environment_15m"'
    return Target(_climate(field_name, where, source=rollup), alias=alias, raw=_climate(field_name, where))


def _signal(field_name: str, alias: str) -> Target:
    """Mean per device and interval from the 15-minute rollup of device_health, raw data as its twin."""

    def query(source: str) -> str:
        return (
            f'SELECT mean("{field_name}") FROM {source} WHERE $timeFilter '
            'GROUP BY time($__interval), "device" fill(none)'
        )

    return Target(query(f'"{ROLLUP_RP}"."device_health_15m"'), alias=alias, raw=query('"device_health"'))


ROOMS_NOTE = (
    "Mean per quarter hour or longer interval, from the 15-minute rollup: the newest quarter hour "
    "appears when it is over (one household's rooms by 5 minutes: the household drill-down)."
)


def _environment() -> Dashboard:
    rooms = '"building" =~ /^$building$/ AND "household" != \'\''
    street = "\"household\" = ''"
    band = "area"
    return Dashboard(
        uid="reallabor-environment",
        title="Environment",
        description="Temperature, humidity and CO₂ per building and room with comfort bands; street sensors.",
        variables=(
            Variable("building", "Building", 'SHOW TAG VALUES FROM "environment" WITH KEY = "building"'),
        ),
        panels=(
            Panel(
                "temperature",
                "Room temperature",
                "Comfort band 20–24 °C. " + ROOMS_NOTE,
                "timeseries",
                (_rooms("temperature_c", rooms, "$tag_device"),),
                unit="celsius",
                steps=(Step("blue"), Step("green", 20), Step("red", 24)),
                threshold_style=band,
                interval="15m",
                max_data_points=POINTS_PER_SERIES,
            ),
            Panel(
                "humidity",
                "Room humidity",
                "Comfort band 40–60 %. " + ROOMS_NOTE,
                "timeseries",
                (_rooms("humidity_pct", rooms, "$tag_device"),),
                unit="humidity",
                steps=(Step("orange"), Step("green", 40), Step("blue", 60)),
                threshold_style=band,
                interval="15m",
                max_data_points=POINTS_PER_SERIES,
            ),
            Panel(
                "co2",
                "Room CO₂",
                "Below 1,000 ppm good, above 1,400 ppm air the room. " + ROOMS_NOTE,
                "timeseries",
                (_rooms("co2_ppm", rooms, "$tag_device"),),
                unit="ppm",
                steps=(Step("green"), Step("orange", 1000), Step("red", 1400)),
                threshold_style=band,
                interval="15m",
                max_data_points=POINTS_PER_SERIES,
            ),
            Panel(
                "street-temperature",
                "Street temperature and humidity",
                "Street sensors (LoRaWAN).",
                "timeseries",
                (
                    Target(_climate("temperature_c", street), alias="$tag_device °C"),
                    Target(_climate("humidity_pct", street), alias="$tag_device %"),
                ),
                interval="10m",
            ),
            Panel(
                "street-air",
                "Street particulate matter and noise",
                "PM2.5, PM10 (µg/m³) and noise (dB(A)).",
                "timeseries",
                (
                    Target(_climate("pm25_ugm3", street), alias="$tag_device PM2.5"),
                    Target(_climate("pm10_ugm3", street), alias="$tag_device PM10"),
                    Target(_climate("noise_dba", street), alias="$tag_device dB(A)"),
                ),
                interval="10m",
            ),
        ),
    )


def _stats(expression: str, *, name: str, interval: str = "$__interval") -> str:
    return (
        f'SELECT {expression} AS "{name}" FROM "ingest_stats" WHERE $timeFilter '
        f'GROUP BY time({interval}), "client_id" fill(none)'
    )


# received + replayed - written - in spool - quarantined messages - already quarantined (ingest/stats.py):
# "quarantined" counts the lines InfluxDB refused too (points_quarantined), whose messages are written
GAP = (
    'last("received") + last("replayed") - last("written") '
    '- (last("spooled") - last("written")) - last("quarantined") + last("points_quarantined") '
    '- last("already_quarantined")'
)


def _pipeline() -> Dashboard:
    return Dashboard(
        uid="reallabor-pipeline",
        title="Ingest pipeline",
        description="Messages in and out, spool, retries, drops and the accounting invariant (ingest_stats).",
        time_from="now-1h",
        panels=(
            Panel(
                "rates",
                "Messages in and written",
                "Per second, per ingester.",
                "timeseries",
                (
                    Target(
                        _stats('non_negative_derivative(last("received"), 1s)', name="in"),
                        alias="$tag_client_id in",
                    ),
                    Target(
                        _stats('non_negative_derivative(last("written"), 1s)', name="written"),
                        alias="$tag_client_id written",
                    ),
                ),
                unit="reqps",
                interval="10s",
            ),
            Panel(
                "spool",
                "Spool depth",
                "Messages spooled but not yet confirmed by InfluxDB, and spool records.",
                "timeseries",
                (
                    Target(
                        _stats('last("spooled") - last("written")', name="messages"),
                        alias="$tag_client_id messages",
                    ),
                    Target(
                        _stats('last("in_spool_records")', name="records"), alias="$tag_client_id records"
                    ),
                ),
                steps=(Step("green"), Step("orange", 10000)),
                interval="10s",
            ),
            Panel(
                "retries",
                "Write retries",
                "InfluxDB write retries per interval.",
                "timeseries",
                (
                    Target(
                        _stats('non_negative_difference(last("retried"))', name="retries"),
                        alias="$tag_client_id",
                    ),
                ),
                steps=(Step("green"), Step("orange", 1)),
                interval="10s",
            ),
            Panel(
                "dropped",
                "Dropped messages",
                "Messages lost by the ingester: must stay 0.",
                "stat",
                (Target(_stats('last("dropped")', name="dropped"), alias="$tag_client_id"),),
                steps=(Step("green"), Step("red", 1)),
                width=6,
                height=6,
                interval="10s",
            ),
            Panel(
                "invariant",
                "Accounting gap",
                "received + replayed − written − in spool − quarantined − already quarantined, per ingester: "
                "the messages between "
                "receipt and commit. The smallest value of the range: 0 when the ingester was ever at rest; "
                "red when it never came back to 0.",
                "stat",
                (Target(_stats(GAP, name="gap"), alias="$tag_client_id"),),
                steps=(Step("green"), Step("red", 1)),
                width=6,
                height=6,
                interval="10s",
                reduce="min",
            ),
            Panel(
                "quarantined",
                "Quarantined per interval",
                "Messages put into quarantine.",
                "timeseries",
                (
                    Target(
                        _stats('non_negative_difference(last("quarantined"))', name="quarantined"),
                        alias="$tag_client_id",
                    ),
                ),
                interval="10s",
            ),
        ),
    )


def _household() -> Dashboard:
    mine = "\"household\" = '$household'"
    meter = Counter("electricity", "energy_import_kwh", f"\"channel\" = '' AND {mine}")
    export = Counter("electricity", "energy_export_kwh", f"\"channel\" = '' AND {mine}")

    def flow(kind: str, counter: Counter, alias: str) -> Target:
        return Target(
            ledger(kind, where=mine, bucket="15m", alias=kind),
            alias=alias,
            raw=energy(counter, period="15m", bucket="15m", alias=kind),
        )

    return Dashboard(
        uid="reallabor-household",
        title="Household drill-down",
        description="One household's meters (operators only: personal data).",
        variables=(HOUSEHOLD,),
        time_from="now/d",
        time_to="now/d",
        tags=("reallabor", "operators"),
        panels=(
            Panel(
                "energy",
                "Import and export by 15 minutes",
                "From the household's main meter (kWh), by the energy ledger.",
                "timeseries",
                (flow("import", meter, "Import"), flow("export", export, "Export")),
                unit="kwatth",
                width=24,
                bars=True,
            ),
            Panel(
                "power",
                "Power per device",
                "Mean power per interval (W): + import, − export.",
                "timeseries",
                (
                    Target(
                        f'SELECT mean("power_w") FROM "electricity", "pv" WHERE $timeFilter AND {mine} '
                        'GROUP BY time($__interval), "device" fill(none)',
                        alias="$tag_device",
                    ),
                ),
                unit="watt",
                interval="1m",
            ),
            Panel(
                "heat",
                "Heat power",
                "Mean heat power per interval (kW).",
                "timeseries",
                (
                    Target(
                        f'SELECT mean("power_kw") FROM "heat" WHERE $timeFilter AND {mine} '
                        "GROUP BY time($__interval) fill(none)",
                        alias="Heat",
                    ),
                ),
                unit="kwatt",
                interval="5m",
            ),
            Panel(
                "climate",
                "Rooms",
                "Temperature (°C) and CO₂ (ppm) per room.",
                "timeseries",
                (
                    Target(
                        f'SELECT mean("temperature_c") FROM "environment" WHERE $timeFilter AND {mine} '
                        'GROUP BY time($__interval), "device" fill(none)',
                        alias="$tag_device °C",
                    ),
                    Target(
                        f'SELECT mean("co2_ppm") FROM "environment" WHERE $timeFilter AND {mine} '
                        'GROUP BY time($__interval), "device" fill(none)',
                        alias="$tag_device ppm",
                    ),
                ),
                interval="5m",
            ),
        ),
    )


def dashboards() -> tuple[Dashboard, ...]:
    return (_energy(), _fleet(), _environment(), _pipeline(), _household())


__all__ = ["DATASOURCE_UID", "Dashboard", "Panel", "Step", "Target", "Variable", "dashboards", "tz"]
