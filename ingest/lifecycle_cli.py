"""``reallabor influx init|tasks``: the data lifecycle of :mod:`ingest.lifecycle` applied to InfluxDB 1.x.

``init`` creates (or alters) the retention policies and the continuous queries, idempotently: run twice it
leaves the same policies and queries; a query whose text changed (a newer release) is dropped and created
anew. ``--backfill-from DATE`` then computes the rollups of the past (rollup days from DATE until now);
running it again writes the same points. ``tasks`` prints (or writes) the InfluxDB 2.x Flux tasks.

Creating retention policies and continuous queries needs an InfluxDB admin: ``--username`` with the
password from ``$REALLABOR_INFLUX_ADMIN_PASSWORD`` or the terminal, else the settings' user.
Exit codes: 0 done, 1 InfluxDB refused or is away, 2 bad settings or usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import lifecycle

if TYPE_CHECKING:
    import httpx

    from ingest.config import InfluxSettings

ADMIN_PASSWORD_ENV = "REALLABOR_INFLUX_ADMIN_PASSWORD"
TASKS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "influx2" / "tasks"
EXIT_FAILED, EXIT_USAGE = 1, 2


class LifecycleError(Exception):
    """InfluxDB refused a statement or could not be reached."""


@dataclass
class InitReport:
    created: list[str] = field(default_factory=list)  # retention policies and CQs made or changed
    unchanged: list[str] = field(default_factory=list)
    backfill_statements: int = 0
    backfill_points: int = 0

    def lines(self) -> list[str]:
        out = [f"created or changed: {name}" for name in self.created]
        out.append(f"unchanged: {len(self.unchanged)}")
        if self.backfill_statements:
            out.append(
                f"backfill: {self.backfill_statements} statements, "
                f"{self.backfill_points} rollup points written"
            )
        return out


class InfluxV1:
    """InfluxQL over HTTP (``/query``, POST), one statement at a time; errors as :class:`LifecycleError`."""

    def __init__(self, url: str, *, auth: tuple[str, str] | None, timeout_s: float = 300.0) -> None:
        import httpx  # here: the command line's other commands start without it

        self._http: httpx.Client = httpx.Client(base_url=url, auth=auth, timeout=timeout_s, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def query(self, statement: str, *, database: str | None = None) -> list[dict[str, Any]]:
        """The series of the statement's result."""
        import httpx

        data = {"q": statement, "epoch": "ns"}
        if database is not None:
            data["db"] = database
        try:
            response = self._http.post("/query", data=data)
        except httpx.HTTPError as exc:
            raise LifecycleError(f"InfluxDB at {self._http.base_url}: {type(exc).__name__}: {exc}") from exc
        body: dict[str, Any] = response.json() if response.content else {}
        result = (body.get("results") or [{}])[0]
        error = body.get("error") or result.get("error")
        if error is None and response.status_code >= 300:
            error = f"HTTP {response.status_code}"
        if error is not None:
            raise LifecycleError(f"InfluxDB refused {_short(statement)}: {error}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series


def _short(statement: str) -> str:
    return repr(statement if len(statement) <= 120 else statement[:117] + "...")


def _retention_policies(client: InfluxV1, database: str) -> dict[str, tuple[str, bool]]:
    """name -> (duration, is default)."""
    series = client.query(f"SHOW RETENTION POLICIES ON {lifecycle.quote(database)}")
    if not series:
        return {}
    columns = series[0]["columns"]
    rows = [dict(zip(columns, values, strict=True)) for values in series[0].get("values", [])]
    return {row["name"]: (row["duration"], bool(row["default"])) for row in rows}


def continuous_queries(client: InfluxV1, database: str) -> dict[str, str]:
    """name -> query text of the database's continuous queries."""
    out: dict[str, str] = {}
    for series in client.query("SHOW CONTINUOUS QUERIES"):
        if series.get("name") == database:
            out.update({name: query for name, query in series.get("values", [])})
    return out


def _duration_hours(text: str) -> int:
    """InfluxDB's '2160h0m0s' as hours ('0s': infinite, as -1)."""
    if text in ("0s", "0"):
        return -1
    hours = text.split("h", 1)[0] if "h" in text else "0"
    return int(hours)


def init_lifecycle(
    client: InfluxV1,
    *,
    database: str,
    raw_retention: dt.timedelta,
    raw_rp: str | None = None,
    backfill_from: dt.date | None = None,
    now: dt.datetime | None = None,
) -> InitReport:
    """Database, retention policies, continuous queries; then the backfill if asked. Idempotent."""
    report = InitReport()
    client.query(f"CREATE DATABASE {lifecycle.quote(database)}")
    policies = _retention_policies(client, database)
    raw_hours = int(raw_retention.total_seconds()) // 3600
    raw = policies.get(lifecycle.RAW_RP)
    rollups = policies.get(lifecycle.ROLLUP_RP)
    statements = lifecycle.retention_statements(database, raw_retention, policies)
    raw_ok = raw is not None and _duration_hours(raw[0]) == raw_hours and raw[1]
    rollups_ok = rollups is not None and _duration_hours(rollups[0]) == -1
    wanted = ((lifecycle.RAW_RP, raw_ok, statements[0]), (lifecycle.ROLLUP_RP, rollups_ok, statements[1]))
    for name, up_to_date, statement in wanted:
        if up_to_date:
            report.unchanged.append(f"retention policy {name}")
        else:
            client.query(statement)
            report.created.append(f"retention policy {name}")
    source_rp = raw_rp or lifecycle.RAW_RP
    existing = continuous_queries(client, database)
    for name, statement in lifecycle.create_cqs(database, raw_rp=source_rp):
        if name in existing and _same_cq(existing[name], statement):
            report.unchanged.append(f"continuous query {name}")
            continue
        if name in existing:
            client.query(f"DROP CONTINUOUS QUERY {lifecycle.quote(name)} ON {lifecycle.quote(database)}")
        client.query(statement)
        report.created.append(f"continuous query {name}")
    if backfill_from is not None:
        until = now or dt.datetime.now(dt.UTC)
        for statement in lifecycle.backfill_statements(
            database, first_day=backfill_from, until=until, raw_rp=source_rp
        ):
            series = client.query(statement, database=database)
            report.backfill_statements += 1
            if series:
                report.backfill_points += int(series[0]["values"][0][1])
    return report


def _same_cq(stored: str, statement: str) -> bool:
    """InfluxDB stores a CQ as its parser prints it: compare without quotes and spacing."""

    def canonical(text: str) -> str:
        return "".join(text.replace('"', "").split()).lower()

    return canonical(stored) == canonical(statement)


# the command line -------------------------------------------------------------------------------------


def _admin(
    args: argparse.Namespace, settings_user: str | None, settings_password: str | None
) -> tuple[str, str] | None:
    if args.username is None:
        if settings_user is None:
            return None
        return (settings_user, settings_password or "")
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise LifecycleError(f"--username {args.username}: give the password in ${ADMIN_PASSWORD_ENV}")
        password = getpass.getpass(f"InfluxDB password of {args.username}: ")
    return (args.username, password)


def cmd_init(args: argparse.Namespace) -> int:
    from ingest.cli import find_settings
    from ingest.config import ConfigError

    try:
        settings = find_settings(args.config).influx
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings.api != "v1":
        print(
            "reallabor influx init: InfluxDB 2.x has buckets and tasks instead: `reallabor influx tasks` "
            "(docs/lifecycle.md)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        password = settings.password.get_secret_value() if settings.password else None
        auth = _admin(args, settings.username, password)
        report = init_with(
            settings, auth=auth, backfill_from=args.backfill_from, backfill_until=args.backfill_until
        )
    except LifecycleError as exc:
        print(f"reallabor influx init: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"InfluxDB {settings.url} database {settings.database!r}: raw kept {settings.raw_retention}, "
        "rollups (15m, 1d) kept for good"
    )
    for line in report.lines():
        print(f"  {line}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    tasks = lifecycle.flux_tasks(bucket=args.bucket, rollups_bucket=args.rollups_bucket)
    if args.write is not None:
        args.write.mkdir(parents=True, exist_ok=True)
        for name, text in tasks.items():
            (args.write / name).write_text(text, encoding="utf-8")
            print(args.write / name)
        return 0
    for name, text in tasks.items():
        print(f"// ---- {name}\n{text}")
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    influx = sub.add_parser("influx", help="InfluxDB data lifecycle: retention, rollups, 2.x tasks")
    actions = influx.add_subparsers(dest="action", required=True)
    init = actions.add_parser(
        "init",
        help="retention policies (raw: influx.raw_retention; rollups: forever) and the rollups' "
        "continuous queries, idempotently (InfluxDB 1.x)",
    )
    init.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    init.add_argument(
        "--username",
        help=f"an InfluxDB admin (password from ${ADMIN_PASSWORD_ENV} or the terminal); "
        "default: the settings' influx.username",
    )
    init.add_argument(
        "--backfill-from",
        type=_date,
        metavar="DATE",
        help="also compute the rollups from this day (YYYY-MM-DD) until now; again writes the same points",
    )
    init.add_argument(
        "--backfill-until",
        type=_date,
        metavar="DATE",
        help="end the backfill where this day (YYYY-MM-DD) begins (default: now)",
    )
    init.set_defaults(func=cmd_init)
    tasks = actions.add_parser("tasks", help="the InfluxDB 2.x Flux tasks of the rollups (docs/lifecycle.md)")
    tasks.add_argument("--bucket", default=lifecycle.DEFAULT_BUCKET, help="raw bucket (default reallabor)")
    tasks.add_argument("--rollups-bucket", help="where the rollups go (default: <bucket>_rollups)")
    tasks.add_argument("--write", type=Path, metavar="DIR", help=f"write the files (e.g. {TASKS_DIR})")
    tasks.set_defaults(func=cmd_tasks)


def init_with(
    settings: InfluxSettings,
    *,
    auth: tuple[str, str] | None,
    backfill_from: dt.date | None = None,
    backfill_until: dt.date | None = None,
) -> InitReport:
    """:func:`init_lifecycle` for these settings as ``auth`` (an admin): what ``reallabor up`` runs.
    ``backfill_until``: the backfill ends where this rollup day begins (default: now)."""
    client = InfluxV1(settings.url, auth=auth)
    try:
        return init_lifecycle(
            client,
            database=settings.database,
            raw_retention=lifecycle.parse_duration(settings.raw_retention),
            raw_rp=settings.retention_policy,
            backfill_from=backfill_from,
            now=lifecycle.day_start(backfill_until) if backfill_until is not None else None,
        )
    finally:
        client.close()
