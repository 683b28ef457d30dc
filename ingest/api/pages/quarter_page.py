"""The public quarter page at ``/quarter`` and the open-data files at ``/opendata/``: for everyone, no login.

``/quarter`` shows the quarter's electricity of the newest settled quarter hour and of today by quarter hour,
today's and this month's self-sufficiency, the street climate and links to the open datasets, in German
or English (the switch at ``/quarter/lang/<code>``, the pages' cookie). Tables always; charts with uPlot
(``quarter.js``, the copy /ops serves from node_modules) when JavaScript runs. ``/quarter/data`` answers
the same figures as JSON for other programs (the page itself changes only when it is loaded again). The
language: ``?lang=de|en``, else the switch's cookie, else Accept-Language.

It cannot load the database: every figure comes from ONE cache (:class:`ingest.opendata.public.FiguresCache`)
refreshed at most every ``opendata.cache_s`` seconds by one request to InfluxDB, whatever the number of
visitors. It cannot tie up the server either: the routes are async and hold no worker thread; the refresh
runs in the cache's one thread of its own with a hard timeout (5 s); a visitor waits at most a second for it
and then gets the previous figures, labelled with their time; before the first figures it waits for the
first refresh, at most its timeout, then gets 503 with Retry-After. Each visitor's address has a request
budget (:class:`ingest.api.rate_limit.ClientRateLimit`); beyond it: 429 with Retry-After. The page's JSON
is built once per refresh and language. Figures respect disclosure control (docs/opendata.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from ingest.api.cookies import set_language
from ingest.api.pages.i18n import LANGUAGES, negotiate, translator
from ingest.api.pages.localize import zone
from ingest.api.pages.ops_page import UPLOT_DIR, UPLOT_URL
from ingest.api.pages.web import SECURITY_HEADERS, language_context, templates
from ingest.api.rate_limit import ClientRateLimit, RateLimited
from ingest.api.throttle import client_address
from ingest.config import EnergySettings, InfluxSettings
from ingest.energy.settings import parse_window
from ingest.months import MONTHS
from ingest.opendata.disclosure import Rule
from ingest.opendata.public import (
    KINDS,
    REFRESH_TIMEOUT_S,
    BatchReader,
    FiguresCache,
    PublicFigures,
    QuarterSource,
    Unavailable,
)
from ingest.opendata.serve import Published, published, resolve
from ingest.opendata.settings import OpenDataSettings
from ingest.opendata.sources import Identities, load_identities
from ingest.portal import view as numbers

log = logging.getLogger(__name__)
QUARTER_PREFIX = "/quarter"
OPENDATA_PREFIX = "/opendata"
COLORS = {"import": "#0b5cad", "export": "#15803d", "pv": "#a16207", "temperature_c": "#c2410c"}
STREET_SHOWN = ("temperature_c", "humidity_pct", "pm25_ugm3", "pm10_ugm3", "noise_dba", "co2_ppm")
STREET_UNITS = {
    "temperature_c": "°C",
    "humidity_pct": "%",
    "pm25_ugm3": "µg/m³",
    "pm10_ugm3": "µg/m³",
    "noise_dba": "dB(A)",
    "co2_ppm": "ppm",
}
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Access-Control-Allow-Origin": "*",  # open data: any web page may fetch it
}

router = APIRouter(prefix=QUARTER_PREFIX, include_in_schema=False)
files_router = APIRouter(prefix=OPENDATA_PREFIX, include_in_schema=False)


@dataclass
class QuarterState:
    """The page's shared state (``app.state.quarter``): the figures' cache, the file listing's cache (same
    period), and the views built from the current figures per language."""

    figures: FiguresCache[PublicFigures]
    listing: FiguresCache[tuple[tuple[Published, ...], bool]]
    out_dir: Path
    cache_s: int
    tz: ZoneInfo
    _views: dict[str, tuple[tuple[int, bool], dict[str, Any], bytes]] = field(default_factory=dict)

    async def view(self, lang: str) -> tuple[dict[str, Any], bytes]:
        """The figures as the page shows them in ``lang``, and as JSON; built once per refresh (and once
        more when they turn stale). Raises :class:`Unavailable` before the first figures."""
        served = await self.figures.get()
        key = (served.value.version, served.stale)
        kept = self._views.get(lang)  # the event loop's thread only: no lock
        if kept is not None and kept[0] == key:
            return kept[1], kept[2]
        built = build_view(served.value, lang, self.tz, cache_s=self.cache_s, stale=served.stale)
        encoded = json.dumps(built, ensure_ascii=False, separators=(",", ":")).encode()
        self._views[lang] = (key, built, encoded)
        return built, encoded


def _state(request: Request) -> QuarterState:
    state: QuarterState = request.app.state.quarter
    return state


async def rate_limit(request: Request) -> None:
    """Every public request counts against its client's budget (429 with Retry-After beyond it). Async:
    FastAPI would run a plain function in the server's thread pool."""
    limit: ClientRateLimit = request.app.state.public_rate_limit
    limit.take(client_address(request))


RateLimit = Depends(rate_limit)


# ---------------------------------------------------------------------------------------------- the view


def build_view(
    figures: PublicFigures, lang: str, tz: ZoneInfo, *, cache_s: int, stale: bool = False
) -> dict[str, Any]:
    """What the page and its JSON show, localized: only plain values (numbers, texts, lists). ``stale``:
    the previous figures (the refresh due now failed or is late), said with their time."""
    t = translator(lang)
    withheld = t("quarter_withheld")
    incomplete = t("quarter_incomplete")
    midnight = dt.datetime.combine(figures.day, dt.time(), tz)
    next_midnight = dt.datetime.combine(figures.day + dt.timedelta(days=1), dt.time(), tz)
    # a day the clocks change: 02:00-02:45 happen twice in autumn, so every time says its zone
    shifting = midnight.utcoffset() != next_midnight.utcoffset()

    def clock(moment: dt.datetime) -> str:
        local = moment.astimezone(tz)
        return f"{local:%H:%M}\u00a0{zone_name(lang, local)}" if shifting else f"{local:%H:%M}"

    def energy(value: float | None) -> str:
        return withheld if value is None else numbers.kwh(lang, value)

    last = None
    if figures.last is not None:
        flows = []
        for kind in KINDS:
            value = figures.last.kwh.get(kind)
            power = None if value is None else numbers.watts(lang, value * 4000)  # kWh per 15 min -> W
            flows.append(
                {
                    "key": kind,
                    "label": t(f"quarter_flow_{kind}"),
                    "kwh": value,
                    "text": energy(value),
                    "power": None if power is None else t("quarter_mean_power", power=power),
                }
            )
        last = {"start": clock(figures.last.start), "end": clock(figures.last.end), "flows": flows}

    labels = [clock(quarter.start) for quarter in figures.today]
    series = []
    for kind in KINDS:
        values = [quarter.kwh.get(kind) for quarter in figures.today]
        if kind == "export":  # drawn below the axis
            values = [None if value is None else -value for value in values]
        series.append(
            {
                "key": kind,
                "label": t(f"quarter_series_{kind}"),
                "color": COLORS[kind],
                "line": kind == "pv",
                "values": values,
            }
        )
    rows = [  # an incomplete quarter hour: its time and one text across the columns
        [clock(quarter.start), *(energy(quarter.kwh.get(kind)) for kind in KINDS)]
        if quarter.complete
        else [clock(quarter.start), incomplete]
        for quarter in figures.today
    ]

    street = figures.street
    latest_times = [moment for moment, _ in street.latest.values()]
    street_latest = [
        {
            "key": name,
            "label": t(f"quarter_street_{name}"),
            "value": street.latest[name][1],
            "text": f"{numbers.number(lang, street.latest[name][1], 1)}\u00a0{STREET_UNITS[name]}",
        }
        for name in STREET_SHOWN
        if name in street.latest
    ]
    temperatures = list(street.values.get("temperature_c", ()))
    street_labels = [clock(moment) for moment in street.times]

    def share(value: float | None) -> str:
        return withheld if value is None else numbers.percent(lang, value)

    through = figures.month_through
    month_label = (
        t("quarter_own_month_none")
        if through is None
        else t("quarter_own_month", day=f"{through.day}.\u00a0{MONTHS[lang][through.month - 1]}")
        if lang == "de"
        else t("quarter_own_month", day=f"{through.day}\u00a0{MONTHS[lang][through.month - 1]}")
    )

    when = localizer_when(lang, tz, figures.at)
    return {
        "lang": lang,
        "at": figures.at.isoformat(),
        "as_of": t("quarter_as_of", when=when, seconds=cache_s),
        "stale": stale,
        "stale_text": t("quarter_stale", when=when) if stale else None,
        "day": figures.day.isoformat(),
        "last": last,
        "self_sufficiency": {
            "today": figures.self_sufficiency_today,
            "month": figures.self_sufficiency_month,
            "today_text": share(figures.self_sufficiency_today),
            "month_text": "–" if through is None else share(figures.self_sufficiency_month),
            "month_label": month_label,
            "month_through": None if through is None else through.isoformat(),
        },
        "incomplete": any(not quarter.complete for quarter in figures.today),
        "withheld": any(
            value is None for quarter in figures.today if quarter.complete for value in quarter.kwh.values()
        )
        or figures.self_sufficiency_today is None
        or (through is not None and figures.self_sufficiency_month is None),
        "today": {"columns": [t(f"quarter_col_{kind}") for kind in KINDS], "rows": rows},
        "street": {
            "when": clock(max(latest_times)) if latest_times else None,
            "latest": street_latest,
            "rows": [
                [label, "–" if value is None else numbers.number(lang, value, 1)]
                for label, value in zip(street_labels, temperatures, strict=True)
            ],
        },
        "charts": [
            {
                "key": "power",
                "title": t("quarter_today_chart"),
                "unit": "kWh",
                "labels": labels,
                "x": list(range(len(labels))),
                "series": series,
            },
            {
                "key": "street",
                "title": t("quarter_street_chart"),
                "unit": "°C",
                "labels": street_labels,
                "x": list(range(len(street_labels))),
                "series": [
                    {
                        "key": "temperature_c",
                        "label": t("quarter_street_temperature_c"),
                        "color": COLORS["temperature_c"],
                        "line": True,
                        "values": temperatures,
                    }
                ],
            },
        ],
    }


GERMAN_ZONE_NAMES = {"CET": "MEZ", "CEST": "MESZ"}


def zone_name(lang: str, local: dt.datetime) -> str:
    """The zone's abbreviation as the language writes it (MESZ / CEST), else the UTC offset."""
    name = local.tzname() or local.strftime("%z")
    return GERMAN_ZONE_NAMES.get(name, name) if lang == "de" else name


def localizer_when(lang: str, tz: ZoneInfo, moment: dt.datetime) -> str:
    """The time of day in the quarter's zone (de: 14:05, en: 14:05 CET)."""
    local = moment.astimezone(tz)
    return local.strftime("%H:%M") if lang == "de" else f"{local:%H:%M} {local.tzname()}"


def month_name(lang: str, month: str) -> str:
    """2026-11 -> November 2026."""
    year, number = month.split("-")
    return f"{MONTHS[lang][int(number) - 1]} {year}"


# ---------------------------------------------------------------------------------------------- the routes


def _fresh_for(state: QuarterState) -> int:
    return max(0, math.floor(state.figures.fresh_for()))


def _headers(state: QuarterState, lang: str) -> dict[str, str]:
    """Shared caches may keep the page until the figures are refreshed; per language (cookie or header)."""
    return {
        **SECURITY_HEADERS,
        "Cache-Control": f"public, max-age={_fresh_for(state)}",
        "Vary": "Accept-Language, Cookie",
        "Content-Language": lang,
    }


def _page(
    request: Request, name: str, *, lang: str | None = None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page without session and forms: no CSRF cookie is set, so shared caches may keep it."""
    state = _state(request)
    lang = lang or negotiate(request)
    values = {
        **language_context(request, lang),
        "user": None,
        "here": QUARTER_PREFIX,
        "month_name": lambda month: month_name(lang, month),
        **context,
    }
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    response.headers.update(_headers(state, lang))
    return response


Lang = Annotated[str | None, Query(pattern=r"^(de|en)$")]


def _unavailable(headers: dict[str, str], exc: Unavailable) -> dict[str, str]:
    return {**headers, "Cache-Control": "no-store", "Retry-After": str(exc.retry_after_s)}


@router.api_route("", methods=["GET", "HEAD"], dependencies=[RateLimit])
async def quarter(request: Request, lang: Lang = None) -> Response:
    """The page (HEAD: its status and headers, for uptime monitors and link checkers)."""
    state = _state(request)
    chosen = lang or negotiate(request)
    failure: Unavailable | None = None
    try:
        shown: dict[str, Any] | None = (await state.view(chosen))[0]
    except Unavailable as exc:  # logged by the cache, once per refresh
        shown, failure = None, exc
    try:
        datasets, catalog = (await state.listing.get()).value
    except Unavailable:  # the directory's first listing is late: the page without its files
        datasets, catalog = (), False
    response = _page(
        request,
        "quarter.html",
        lang=chosen,
        status_code=status.HTTP_200_OK if failure is None else status.HTTP_503_SERVICE_UNAVAILABLE,
        view=shown,
        datasets=datasets,
        catalog=catalog,
        uplot=UPLOT_URL if (UPLOT_DIR / "uPlot.iife.min.js").is_file() else None,
        cache_s=state.cache_s,
    )
    if failure is not None:
        response.headers.update(_unavailable({}, failure))
    return response


@router.get("/data", dependencies=[RateLimit])
async def quarter_data(request: Request, lang: Lang = None) -> Response:
    """The page's figures as JSON (the page's language unless ``lang`` is given)."""
    state = _state(request)
    chosen = lang or negotiate(request)
    try:
        encoded = (await state.view(chosen))[1]
    except Unavailable as exc:  # logged by the cache, once per refresh
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the quarter's figures are unavailable",
            headers=_unavailable({}, exc),
        ) from exc
    headers = _headers(state, chosen)
    return Response(encoded, media_type="application/json", headers=headers)


@router.get("/lang/{code}")
def switch_language(code: str) -> Response:
    """The page's language switch: back to /quarter only."""
    response = RedirectResponse(QUARTER_PREFIX, status_code=status.HTTP_303_SEE_OTHER)
    if code in LANGUAGES:
        set_language(response, code)
    return response


@files_router.api_route("", methods=["GET", "HEAD"], dependencies=[RateLimit])
@files_router.api_route("/", methods=["GET", "HEAD"], dependencies=[RateLimit])
async def opendata_index() -> Response:
    """No directory listing: the page lists the files, the catalogue describes them."""
    return RedirectResponse(f"{QUARTER_PREFIX}#open-data", status_code=status.HTTP_303_SEE_OTHER)


@files_router.api_route("/{relative:path}", methods=["GET", "HEAD"], dependencies=[RateLimit])
async def opendata_file(request: Request, relative: str) -> Response:
    state = _state(request)
    found = resolve(state.out_dir, relative)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such open-data file")
    path, media = found
    headers = {**FILE_HEADERS, "Cache-Control": f"public, max-age={state.cache_s}"}
    return FileResponse(path, media_type=media, headers=headers)


def make_state(
    influx: InfluxSettings,
    opendata: OpenDataSettings,
    *,
    timezone: str | None,
    energy_window: str | None = None,
    sessions: Callable[[], Session] | None = None,
) -> QuarterState:
    """The shared figures of one app: one InfluxDB reader, one cache, one file listing. ``energy_window``:
    the ledger's ``energy.window`` (days older are final); ``sessions``: the registry, whose assignment
    history tells households apart as the export does (None: the ledger's name tags)."""
    tz = zone(timezone)

    def identities() -> Identities | None:
        if sessions is None:
            return None
        with sessions() as session:
            return load_identities(session)

    source = QuarterSource(
        BatchReader(influx, timeout_s=REFRESH_TIMEOUT_S),
        tz,
        rule=Rule(min_households=opendata.min_households, dominance_percent=opendata.dominance_percent),
        street_building=opendata.street_building,
        raw_rp=influx.retention_policy,
        window=parse_window(energy_window or EnergySettings().window),
        identities=identities,
    )
    out_dir = opendata.out_dir
    return QuarterState(
        figures=FiguresCache(source.load, ttl_s=opendata.cache_s),
        listing=FiguresCache(lambda: published(out_dir), ttl_s=opendata.cache_s, name="open-data files"),
        out_dir=out_dir,
        cache_s=opendata.cache_s,
        tz=tz,
    )


def install(
    app: FastAPI,
    influx: InfluxSettings,
    opendata: OpenDataSettings,
    *,
    timezone: str | None,
    energy_window: str | None = None,
) -> None:
    """The routes, the shared figures (``app.state.quarter``) and the per-client limit
    (``app.state.public_rate_limit``); tests may replace either. The registry: ``app.state.sessions``."""
    app.state.quarter = make_state(
        influx,
        opendata,
        timezone=timezone,
        energy_window=energy_window,
        sessions=getattr(app.state, "sessions", None),
    )
    app.state.public_rate_limit = ClientRateLimit()

    async def too_many(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimited)
        response: Response
        if request.url.path in (QUARTER_PREFIX, f"{QUARTER_PREFIX}/"):
            asked = request.query_params.get("lang")
            response = _page(
                request,
                "quarter_message.html",
                lang=asked if asked in LANGUAGES else None,
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                seconds=exc.retry_after_s,
            )
            response.headers["Cache-Control"] = "no-store"
        else:
            response = JSONResponse({"detail": str(exc)}, status_code=status.HTTP_429_TOO_MANY_REQUESTS)
        response.headers.update(exc.headers)
        return response

    app.add_exception_handler(RateLimited, too_many)
    app.include_router(router)
    app.include_router(files_router)
