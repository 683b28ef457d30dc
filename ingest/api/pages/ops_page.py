"""The operators' overview at ``/ops``: a handful of the panel catalogue's panels for machines without
Grafana, drawn in the browser with uPlot (``ops.js``), and as small tables of the latest values without
JavaScript. Operators only (technicians and residents get 403).

The server runs each panel's InfluxQL, expanded as Grafana would (:mod:`ingest.panels.macros`), against
InfluxDB with ``influx.read_username``/``read_password`` (else ``username``/``password``: the demo's
ingester may only write), and answers ``/ops/data/{panel}`` as JSON. Answers are cached for
:data:`CACHE_S` seconds, so that reloading the page cannot load the database.

uPlot comes from npm (``package-lock.json``, ``make`` runs ``npm ci``) and is served from
``node_modules/uplot/dist`` at ``/ops/static/uplot``; without it the page says charts need ``make``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ingest.api.assets import uplot_dist
from ingest.api.pages.i18n import negotiate, translator
from ingest.api.pages.localize import zone
from ingest.api.pages.web import OPS_PREFIX, OperatorPage, localizer, render
from ingest.config import InfluxSettings
from ingest.panels import macros
from ingest.panels.catalogue import Panel, dashboards

log = logging.getLogger(__name__)
UPLOT_DIR = uplot_dist()
UPLOT_URL = f"{OPS_PREFIX}/static/uplot"
CACHE_S = 10.0
MAX_POINTS = 400  # a phone's chart: Grafana's max data points is the panel's width in pixels
LIVE_MS = 3_600_000  # the pipeline panels: the last hour, as the pipeline dashboard
_TAG = re.compile(r"\$tag_(\w+)")

router = APIRouter(prefix=OPS_PREFIX, include_in_schema=False)


@dataclass(frozen=True)
class OpsPanel:
    """A catalogue panel as /ops shows it: ``live`` panels show the last hour, the others the day."""

    key: str
    dashboard: str
    panel: str
    unit: str
    kind: str = "lines"  # lines, bars, categories (one bar per tag value, e.g. building)
    aliases: tuple[str, ...] = ()  # only these targets (empty: all)
    live: bool = False


PANELS = (
    OpsPanel("energy", "reallabor-energy", "today-15m", "kWh", "bars", ("Import", "Export", "PV yield")),
    OpsPanel("buildings", "reallabor-energy", "per-building", "kWh", "categories"),
    OpsPanel("street", "reallabor-environment", "street-temperature", ""),
    OpsPanel("messages", "reallabor-pipeline", "rates", "/s", live=True),
    OpsPanel("quarantine", "reallabor-pipeline", "quarantined", "", "bars", live=True),
)
BY_KEY = {panel.key: panel for panel in PANELS}


class InfluxUnavailable(Exception):
    """InfluxDB did not answer a panel's query (down, refused the reader, or an error in the query)."""


def _catalogue_panel(spec: OpsPanel) -> Panel:
    for board in dashboards():
        if board.uid == spec.dashboard:
            for panel in board.panels:
                if panel.key == spec.panel:
                    return panel
    raise LookupError(f"{spec.dashboard}/{spec.panel} is not in the catalogue")


def _label(alias: str, tags: dict[str, str], column: str) -> str:
    if not alias:
        return column
    return _TAG.sub(lambda match: tags.get(match.group(1), ""), alias).strip()


class OpsData:
    """Runs the panels' queries against InfluxDB (v1 ``/query``, InfluxQL) and caches the answers."""

    def __init__(self, influx: InfluxSettings, *, timezone: str | None) -> None:
        self.influx = influx
        self.tz = zone(timezone)
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._queries = {spec.key: _catalogue_panel(spec) for spec in PANELS}

    def today(self) -> dt.date:
        return dt.datetime.now(self.tz).date()

    def day_range(self, day: dt.date) -> tuple[int, int]:
        start = dt.datetime.combine(day, dt.time(), self.tz)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self.tz)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1

    def panel(self, key: str, day: dt.date) -> dict[str, Any]:
        """The panel's data for the day (live panels: the last hour), at most :data:`CACHE_S` old."""
        spec = BY_KEY[key]
        cache_key = (key, "live" if spec.live else day.isoformat())
        with self._lock:  # one query per panel at a time: concurrent reloads wait for the first answer
            cached = self._cache.get(cache_key)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            data = self._load(spec, day)
            self._cache[cache_key] = (time.monotonic() + CACHE_S, data)
            return data

    def _load(self, spec: OpsPanel, day: dt.date) -> dict[str, Any]:
        panel = self._queries[spec.key]
        if spec.live:
            to_ms = int(time.time() * 1000)
            from_ms = to_ms - LIVE_MS
        else:
            from_ms, to_ms = self.day_range(day)
        series: list[tuple[str, list[tuple[int, float | None]]]] = []
        for target in panel.targets:
            if spec.aliases and target.alias not in spec.aliases:
                continue
            # every building, as Grafana's "All" with the custom all value .*
            query = target.query.replace("$building", ".*")
            query = macros.expand(
                query,
                from_ms=from_ms,
                to_ms=to_ms,
                max_data_points=MAX_POINTS,
                min_interval=panel.interval,
            )
            for found in self._query(query):
                column = found["columns"][1]
                rows = [(int(row[0]), row[1]) for row in found.get("values", [])]
                series.append((_label(target.alias, found.get("tags") or {}, column), rows))
        return _shape(spec, series, from_ms=from_ms, to_ms=to_ms)

    def _query(self, query: str) -> list[dict[str, Any]]:
        influx = self.influx
        params = {"q": query, "db": influx.database, "epoch": "ms"}
        headers = {}
        auth: tuple[str, str] | None = None
        if influx.read_username is not None:
            secret = influx.read_password.get_secret_value() if influx.read_password else ""
            auth = (influx.read_username, secret)
        elif influx.api == "v2" and influx.token is not None:
            headers["Authorization"] = f"Token {influx.token.get_secret_value()}"
        elif influx.username is not None:
            auth = (influx.username, influx.password.get_secret_value() if influx.password else "")
        try:
            response = httpx.get(
                f"{influx.url}/query", params=params, headers=headers, auth=auth, timeout=15, trust_env=False
            )
            response.raise_for_status()
            result = response.json()["results"][0]
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            raise InfluxUnavailable(str(exc)) from exc
        if "error" in result:
            raise InfluxUnavailable(result["error"])
        found: list[dict[str, Any]] = result.get("series", [])
        return found


def _shape(
    spec: OpsPanel, series: list[tuple[str, list[tuple[int, float | None]]]], *, from_ms: int, to_ms: int
) -> dict[str, Any]:
    """uPlot's aligned columns: x (seconds, or the category's index) and one values list per series."""
    base: dict[str, Any] = {
        "key": spec.key,
        "unit": spec.unit,
        "kind": spec.kind,
        "live": spec.live,
        "from": from_ms // 1000,
        "to": to_ms // 1000,
    }
    if spec.kind == "categories":
        points = sorted(
            ((label, rows[-1][1]) for label, rows in series if rows), key=lambda item: _natural(item[0])
        )
        return {
            **base,
            "x": list(range(len(points))),
            "categories": [label for label, _ in points],
            "series": [{"label": spec.unit, "values": [value for _, value in points]}] if points else [],
            "latest": [{"label": label, "value": value, "time": None} for label, value in points],
        }
    times = sorted({t for _, rows in series for t, _ in rows})
    index = {t: i for i, t in enumerate(times)}
    columns = []
    latest = []
    for label, rows in series:
        values: list[float | None] = [None] * len(times)
        for t, value in rows:
            values[index[t]] = value
        columns.append({"label": label, "values": values})
        newest = next(((t, v) for t, v in reversed(rows) if v is not None), None)
        if newest is not None:
            latest.append({"label": label, "value": newest[1], "time": newest[0] // 1000})
    return {**base, "x": [t // 1000 for t in times], "series": columns, "latest": latest}


def _natural(text: str) -> tuple[Any, ...]:
    """Haus 2 before Haus 10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _series_label(lang: str, label: str) -> str:
    """The catalogue's English aliases in the page's language: whole (``PV yield``) or the last word
    (``ingest-1 written``)."""
    t = translator(lang)
    whole = t(f"series:{label}")
    if whole != f"series:{label}":
        return whole
    head, _, last = label.rpartition(" ")
    word = t(f"series:{last}")
    return f"{head} {word}" if head and word != f"series:{last}" else label


def _localized(data: dict[str, Any], lang: str) -> dict[str, Any]:
    return {
        **data,
        "title": translator(lang)(f"ops_{data['key']}"),
        "series": [{**one, "label": _series_label(lang, one["label"])} for one in data["series"]],
        "latest": [{**one, "label": _series_label(lang, one["label"])} for one in data["latest"]],
    }


def _ops(request: Request) -> OpsData:
    ops: OpsData = request.app.state.ops
    return ops


def _day(ops: OpsData, day: str | None) -> dt.date:
    if not day:
        return ops.today()
    try:
        return dt.date.fromisoformat(day)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "day: YYYY-MM-DD") from exc


Day = Annotated[str | None, Query(max_length=10, pattern=r"^\d{4}-\d{2}-\d{2}$")]


@router.get("")
def overview(request: Request, user: OperatorPage, day: Day = None) -> HTMLResponse:
    ops = _ops(request)
    chosen = _day(ops, day)
    lang = negotiate(request)
    panels = []
    for spec in PANELS:
        try:
            data: dict[str, Any] | None = _localized(ops.panel(spec.key, chosen), lang)
        except InfluxUnavailable as exc:
            log.warning("ops panel %s: InfluxDB did not answer: %s", spec.key, exc)
            data = None
        panels.append({"spec": spec, "data": data})

    noon = dt.datetime.combine(chosen, dt.time(12), ops.tz)

    def clock(seconds: int | None) -> str:
        if seconds is None:
            return ""
        return dt.datetime.fromtimestamp(seconds, ops.tz).strftime("%H:%M")

    return render(
        request,
        "ops.html",
        user=user,
        panels=panels,
        day=chosen.isoformat(),
        today=chosen == ops.today(),
        uplot=UPLOT_URL if (UPLOT_DIR / "uPlot.iife.min.js").is_file() else None,
        timezone=str(ops.tz),
        clock=clock,
        day_label=localizer(request, lang).when(noon).split(",")[0],
    )


@router.get("/data/{key}")
def panel_data(request: Request, _user: OperatorPage, key: str, day: Day = None) -> dict[str, Any]:
    ops = _ops(request)
    if key not in BY_KEY:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such panel")
    try:
        return _localized(ops.panel(key, _day(ops, day)), negotiate(request))
    except InfluxUnavailable as exc:
        log.warning("ops panel %s: InfluxDB did not answer: %s", key, exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "InfluxDB did not answer") from exc


def install(app: FastAPI, influx: InfluxSettings, *, timezone: str | None) -> None:
    """The /ops routes, its InfluxDB reader and uPlot's files (when ``make`` has installed them)."""
    app.state.ops = OpsData(influx, timezone=timezone)
    app.include_router(router)
    if UPLOT_DIR.is_dir():
        app.mount(UPLOT_URL, StaticFiles(directory=UPLOT_DIR), name="uplot")
    else:
        log.warning("uPlot is not installed (%s): /ops shows tables only; run make", UPLOT_DIR)
