"""The residents' portal at ``/portal``: their household's energy by day, week, month and year, now,
its devices, a CSV download. Residents only; the household is always the session user's
(``User.household_id``), never anything in the request: no path, query or form parameter names a
household. Operators and technicians get 403 (they have the household drill-down in Grafana).

Every query parameter is checked strictly (view from a fixed list, dates as YYYY-MM-DD within bounds,
CSV ranges bounded); anything else is a 400 page saying what is wrong. Tables always; charts with uPlot
(``portal.js``, served from node_modules like /ops) when JavaScript runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ingest.api.cookies import set_language
from ingest.api.deps import SessionDep
from ingest.api.pages.i18n import LANGUAGES, negotiate, translator
from ingest.api.pages.localize import zone
from ingest.api.pages.ops_page import UPLOT_DIR, UPLOT_URL
from ingest.api.pages.web import LoginRequired, PageForbidden, render, session_user
from ingest.config import InfluxSettings
from ingest.portal import csv_export, view
from ingest.portal.data import Household, PortalData, QuarterFigures, ledger_rows
from ingest.portal.devices import home_devices, household_of
from ingest.portal.periods import BadInput, Period, View, parse_date, parse_view
from ingest.portal.quarter import QuarterPending
from ingest.portal.reader import InfluxUnavailable, Reader
from ingest.registry.models import Role, User

log = logging.getLogger(__name__)
PORTAL_PREFIX = "/portal"
VIEWS = ("now", "day", "week", "month", "year")
MAX_PARAM = 32  # longer than any valid value: refused before it is parsed
MAX_WAIT_DAYS = (
    8  # a request computes at most this many of the quarter's days (a week: ~1.5 s); more: "being computed"
)

router = APIRouter(prefix=PORTAL_PREFIX, include_in_schema=False)


def resident_page_user(request: Request, user: Annotated[User | None, Depends(session_user)]) -> User:
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    if user.role is not Role.resident:
        raise PageForbidden(user, need="resident")
    return user


ResidentPage = Annotated[User, Depends(resident_page_user)]
Param = Annotated[str | None, Query()]


def _data(request: Request) -> PortalData:
    data: PortalData = request.app.state.portal
    return data


def _household(session: SessionDep, user: User) -> Household:
    found = household_of(session, user)
    if found is None:  # a resident always has one (a CHECK constraint); a deleted household: nothing to show
        raise PageForbidden(user, need="resident")
    return found


def _text(value: str | None, what: str) -> str | None:
    if value is not None and len(value) > MAX_PARAM:
        raise BadInput("too_long_param", f"{what}: at most {MAX_PARAM} characters", what=what)
    return value


def _refused(request: Request, user: User, household: Household | None, exc: BadInput) -> HTMLResponse:
    t = translator(negotiate(request))
    values = dict(exc.values)
    if "what" in values:  # the parameter as the form labels it
        values["what"] = t(f"portal_field_{values['what']}")
    if exc.key == "view":  # the tabs' names, not the internal keys
        values["allowed"] = ", ".join(t(f"portal_view_{name}") for name in VIEWS)
    return render(
        request,
        "portal_message.html",
        user=user,
        household=household,
        status_code=status.HTTP_400_BAD_REQUEST,
        message=t(f"portal_err_{exc.key}", **values),
    )


def _unavailable(request: Request, user: User, household: Household, exc: InfluxUnavailable) -> HTMLResponse:
    # the cause's text holds the query URL, which names the household: its kind only (review 14, L14)
    log.warning("portal: InfluxDB did not answer (%s)", type(exc.__cause__ or exc).__name__)
    t = translator(negotiate(request))
    return render(
        request,
        "portal_message.html",
        user=user,
        household=household,
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        message=t("portal_unavailable"),
    )


def _link(view_name: str, day: dt.date | None = None) -> str:
    return f"{PORTAL_PREFIX}?view={view_name}" + (f"&date={day.isoformat()}" if day else "")


@router.get("")
def portal(
    request: Request,
    user: ResidentPage,
    session: SessionDep,
    view_param: Annotated[str | None, Query(alias="view")] = None,
    date: Param = None,
) -> HTMLResponse:
    household = _household(session, user)
    data = _data(request)
    today = dt.datetime.now(data.tz).date()
    try:
        chosen_view = parse_view(_text(view_param, "view") or "now", allowed=VIEWS)
        text = _text(date, "date")
        day = parse_date(text, what="date", today=today) if text else today
    except BadInput as exc:
        return _refused(request, user, household, exc)
    lang = negotiate(request)
    t = translator(lang)
    context: dict[str, Any] = {
        "household": household,
        "view_name": chosen_view,
        "views": VIEWS,
        "link": _link,
        "day": day,
        "today": today,
        "uplot": UPLOT_URL if (UPLOT_DIR / "uPlot.iife.min.js").is_file() else None,
        "kwh": lambda value: view.kwh(lang, value),
        "csv_first": (today - dt.timedelta(days=6)).isoformat(),
        "csv_last": today.isoformat(),
        "csv_max": csv_export.MAX_DAYS,
    }
    try:
        if chosen_view == "now":
            context |= _now(data, household, lang, t)
        else:
            period = Period.containing(cast(View, chosen_view), day, data.tz)  # parse_view checked it
            context |= _period(data, household, period, today, lang, t)
    except InfluxUnavailable as exc:
        return _unavailable(request, user, household, exc)
    return render(request, "portal.html", user=user, **context)


def _now(data: PortalData, household: Household, lang: str, t: Any) -> dict[str, Any]:
    today = Period("day", dt.datetime.now(data.tz).date(), data.tz, fine=True)
    bars = data.bars(household, today)
    for kind in ("heat", "ev", "pv", "pv_building"):  # the quarter hours of the day: electricity in and out
        bars.kinds.pop(kind, None)
    power = data.power(household)
    return {
        "title": t("portal_now"),
        "power": power,
        "power_text": None if power is None else view.watts(lang, power.watts),
        "power_when": None if power is None else power.at,
        "bars": bars,
        "table": view.table(lang, today, bars),
        "charts": view.charts(lang, today, bars, t),
        "totals": bars.totals,
        "table_open": False,
    }


def _same_part(period: Period, previous: Period, now: dt.datetime) -> dt.datetime:
    """Where to cut the previous period to compare it with the unfinished ``period``: the same day of it
    (same date for a month and a year, same weekday for a week) and the same clock time, rounded up to
    the quarter hour; the previous period's end when it is shorter."""
    local = now.astimezone(period.tz)
    clock = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
    if clock != local:
        clock += dt.timedelta(minutes=15)
    day = clock.date()
    try:
        if period.view == "month":
            same = day.replace(year=previous.start.year, month=previous.start.month)
        elif period.view == "year":
            same = day.replace(year=previous.start.year)
        else:
            same = previous.start + (day - period.start)
    except ValueError:  # the 31st, 29 February: the previous period has no such day
        return previous.moment(previous.end)
    return min(dt.datetime.combine(same, clock.time(), period.tz), previous.moment(previous.end))


def _period(
    data: PortalData, household: Household, period: Period, today: dt.date, lang: str, t: Any
) -> dict[str, Any]:
    bars = data.bars(household, period)
    previous = period.previous()
    now = data.now()
    unfinished = period.range[0] <= now < period.range[1]
    cut: dt.datetime | None = None
    if unfinished:  # the same elapsed part of the previous period, not all of it (M4 of issue 14's review)
        cut = _same_part(period, previous, now)
        before = data.totals_between(household, previous.range[0], cut)
    else:
        before = data.totals(household, previous)
    data.quarter.warm()  # the quarter's days of this and last year, in the background (once)
    quarter: QuarterFigures | None = None
    try:
        figures = data.community(household, period, bars.totals, max_missing=MAX_WAIT_DAYS)
        quarter = figures.quarter
        community: dict[str, str] | None = view.community(lang, figures) if quarter.enough else None
    except QuarterPending:
        community = None
    return {
        "title": view.period_title(lang, period),
        "period": period,
        "previous_link": _link(period.view, previous.start),
        "next_link": _link(period.view, period.end) if period.end <= today else None,
        "bars": bars,
        "table": view.table(lang, period, bars),
        "charts": view.charts(lang, period, bars, t),
        "comparison": view.comparison(lang, bars.totals, before, quarter.typical if quarter else {}),
        "quarter": quarter,
        "until": None if cut is None else view.until(lang, period.view, cut),
        "community": community,
        "table_open": True,
    }


@router.get("/devices")
def devices(request: Request, user: ResidentPage, session: SessionDep) -> HTMLResponse:
    household = _household(session, user)
    now = dt.datetime.now(dt.UTC)
    rows = home_devices(session, household, now=now)
    ages = {
        row.native_id: None if row.last_seen is None else (now - row.last_seen).total_seconds()
        for row in rows
    }
    return render(request, "portal_devices.html", user=user, household=household, devices=rows, ages=ages)


@router.get("/csv")
def csv_download(
    request: Request,
    user: ResidentPage,
    session: SessionDep,
    first: Annotated[str | None, Query(alias="from")] = None,
    last: Annotated[str | None, Query(alias="to")] = None,
    resolution: Param = None,
) -> Response:
    household = _household(session, user)
    data = _data(request)
    today = dt.datetime.now(data.tz).date()
    try:
        chosen = csv_export.parse_range(
            _text(first, "from") or "",
            _text(last, "to") or "",
            _text(resolution, "resolution") or "1d",
            today=today,
        )
    except BadInput as exc:
        return _refused(request, user, household, exc)
    try:
        rows = ledger_rows(data.reader, household, *chosen.bounds(data.tz), daily=chosen.daily)
    except InfluxUnavailable as exc:
        return _unavailable(request, user, household, exc)
    return Response(
        csv_export.csv_text(rows, data.tz),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{chosen.filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/lang/{code}")
def switch_language(code: str, next: str | None = None) -> Response:
    """The language switch of the portal's pages: back to a portal page only."""
    target = next if next and next.startswith(PORTAL_PREFIX) and not next.startswith("//") else PORTAL_PREFIX
    if "\\" in target or "\n" in target or "\r" in target:
        target = PORTAL_PREFIX
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    if code in LANGUAGES:
        set_language(response, code)
    return response


def install(app: FastAPI, influx: InfluxSettings, *, timezone: str | None) -> None:
    """The portal's routes and its InfluxDB reader (uPlot is served by /ops' mount)."""
    app.state.portal = PortalData(Reader(influx), zone(timezone))
    app.include_router(router)
