"""``reallabor dashboards build|push``: the Grafana dashboards as code (dashboards/<uid>.json).

``build`` writes them from the panel catalogue (``ingest.panels.grafana``); ``push`` uploads them into a
running Grafana (``ingest.grafana_push``). Exit codes: 0 ok, 1 Grafana failed or refused, 2 bad usage or
a bad dashboard file. Secrets come from the environment, never from the command line unless given there:
``GRAFANA_TOKEN`` (a service account token), and for a datasource to create ``INFLUX_GRAFANA_PASSWORD``
(a v1 user's password, InfluxDB 1.x or 2.x with DBRP) or ``INFLUX_READ_TOKEN`` (an InfluxDB 2 token).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_DIR = Path("dashboards")


def cmd_build(args: argparse.Namespace) -> int:
    try:
        from ingest.panels.grafana import write_dashboards
    except ImportError as exc:  # the panel catalogue is not part of this installation
        print(f"reallabor: the panel catalogue is missing ({exc})", file=sys.stderr)
        return EXIT_FAILED
    for path in write_dashboards(args.dir):
        print(path)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from ingest.grafana_push import DashboardFileError, DatasourceSpec, PushError, push

    token = args.token or os.environ.get("GRAFANA_TOKEN", "")
    if not token:
        print(
            "reallabor: give --token or set GRAFANA_TOKEN (a Grafana service account token)", file=sys.stderr
        )
        return EXIT_USAGE
    datasource = None
    if args.influx_url:
        datasource = DatasourceSpec(
            url=args.influx_url,
            database=args.influx_database,
            user=args.influx_user,
            password=os.environ.get("INFLUX_GRAFANA_PASSWORD") or None,
            token=os.environ.get("INFLUX_READ_TOKEN") or None,
        )
    try:
        report = push(
            url=args.url, token=token, directory=args.dir, datasource=datasource, timeout=args.timeout
        )
    except DashboardFileError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PushError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"grafana {report.url}: folder {report.folder}, datasource {report.datasource}")
    for uid, outcome in report.dashboards.items():
        print(f"  {uid}: {outcome}")
    for uid, problem in report.failures.items():
        print(f"  {uid}: FAILED, {problem}", file=sys.stderr)
    return 0 if report.ok else EXIT_FAILED


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("dashboards", help="Grafana dashboards as code: build, push")
    actions = group.add_subparsers(dest="action", required=True)

    build = actions.add_parser("build", help="write dashboards/<uid>.json from the panel catalogue")
    build.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="output directory (default: dashboards)")
    build.set_defaults(func=cmd_build)

    push = actions.add_parser(
        "push",
        help="upload every dashboard into Grafana (folder Reallabor, by uid); creates the folder and the "
        "datasource when missing; idempotent",
    )
    push.add_argument("--url", required=True, help="Grafana's address, e.g. https://grafana.example.org")
    push.add_argument(
        "--token", help="service account token (default: $GRAFANA_TOKEN, which keeps it out of ps)"
    )
    push.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the dashboards (default: dashboards)")
    push.add_argument(
        "--influx-url",
        help="create the datasource reallabor-influx with this InfluxDB address when Grafana has none "
        "(password from $INFLUX_GRAFANA_PASSWORD or token from $INFLUX_READ_TOKEN)",
    )
    push.add_argument(
        "--influx-user", default="grafana", help="the datasource's InfluxDB user (default grafana)"
    )
    push.add_argument("--influx-database", default="reallabor", help="InfluxQL database (default reallabor)")
    push.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    push.set_defaults(func=cmd_push)
