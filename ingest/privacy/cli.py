"""``reallabor households delete|export|deletions``: a household's data on the operator's command line.

``delete HOUSEHOLD --reason TEXT`` prints what would be deleted and stops; with ``--yes`` it deletes
(:func:`ingest.privacy.delete.delete_household`) and prints the record. ``export HOUSEHOLD --out FILE``
writes the ZIP. ``deletions`` lists the records. HOUSEHOLD is an id, or a name found in one building only.
Exit codes: 0 done, 1 refused or failed (run ``delete`` again after a failure), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from ingest.privacy.delete import (
    MAX_REASON,
    DeletionFailed,
    delete_household,
    plan_deletion,
    record_dict,
    settle_seconds,
)
from ingest.privacy.export import export_household
from ingest.privacy.influx import InfluxFailed, household_data
from ingest.quarantine import QUARANTINE_FILE
from ingest.registry.models import DeletionRecord

EXIT_FAILED, EXIT_USAGE = 1, 2
CLI_ROLE = "cli"


def cmd_delete(args: argparse.Namespace) -> int:
    from ingest.registry.cli import _session, _settings
    from ingest.registry.cli_people import actor, find_household

    settings = _settings(args)
    reason = args.reason.strip()
    if not reason:
        print(
            "reallabor: --reason: say why (e.g. 'move-out, request of 2026-11-30'), no names", file=sys.stderr
        )
        return EXIT_USAGE
    with _session(settings) as session, household_data(settings.influx) as data:
        household = find_household(session, args.household)
        name = f"{household.name!r} in {household.building.name!r}"
        quarantine = settings.ingest.state_dir / QUARANTINE_FILE  # and every instance's beside it
        plan = plan_deletion(session, data, household, quarantine=quarantine)
        print(f"will delete {name}, " + "\n".join(plan.lines()))
        if not args.yes:
            print("nothing deleted: run again with --yes to delete", file=sys.stderr)
            return EXIT_USAGE
        settle = args.settle if args.settle is not None else settle_seconds(settings.registry)
        if settle:
            print(
                f"deleting; {settle:g} s for the ingester's next registry snapshot (--settle)",
                file=sys.stderr,
            )
        try:
            record = delete_household(
                session,
                data,
                household,
                actor=actor(),
                actor_role=CLI_ROLE,
                reason=reason,
                settle_s=settle,
                quarantine=quarantine,
            )
        except DeletionFailed as exc:
            cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
            print(f"reallabor: deletion {exc.record.reference} failed: {exc}{cause}", file=sys.stderr)
            print("the household is still registered: run the same command again", file=sys.stderr)
            return EXIT_FAILED
    print(f"deleted: record {record.reference}")
    print(json.dumps(record_dict(record), indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ingest.registry.cli import _session, _settings
    from ingest.registry.cli_people import find_household

    settings = _settings(args)
    out: Path = args.out
    with _session(settings) as session, household_data(settings.influx) as data:
        household = find_household(session, args.household)
        quarantine = settings.ingest.state_dir / QUARANTINE_FILE  # and every instance's beside it
        export = export_household(session, household, quarantine=quarantine)
        session.close()
        # a temporary file beside the target, renamed when complete: no half export under its name
        handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                size = 0
                for chunk in export.chunks(data):
                    file.write(chunk)
                    size += len(chunk)
            os.chmod(temporary, 0o600)  # personal data: the operator's eyes only
            os.replace(temporary, out)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    print(f"{out}: {size} bytes")
    return 0


def cmd_deletions(args: argparse.Namespace) -> int:
    from ingest.registry.cli import _session, _settings

    with _session(_settings(args)) as session:
        records = session.scalars(select(DeletionRecord).order_by(DeletionRecord.id.desc()).limit(args.limit))
        rows = [record_dict(record) for record in records]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(
            f"{row['reference']}  {row['started_at'][:19]}  household #{row['household_id']}  "
            f"{row['status']:<7} {row['actor']} ({row['actor_role']})  {row['error']}"
        )
    return 0


def _failures(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from ingest.registry.errors import RegistryError

        try:
            return command(args)
        except (RegistryError, InfluxFailed) as exc:
            cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
            print(f"reallabor: {exc}{cause}", file=sys.stderr)
            return EXIT_FAILED

    run.__name__ = command.__name__
    return run


def _reason(text: str) -> str:
    """The registry's rule for a line of text (ingest.registry.text), as the API checks it."""
    from ingest.registry.text import check_text

    if len(text) > MAX_REASON:
        raise argparse.ArgumentTypeError(f"at most {MAX_REASON} characters")
    try:
        return check_text(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(
    households: argparse._SubParsersAction[argparse.ArgumentParser],
    config: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``delete``, ``export`` and ``deletions`` under ``reallabor households``."""
    delete = households.add_parser(
        "delete",
        help="delete everything stored about a household (move-out): InfluxDB and registry, with a record",
    )
    config(delete)
    delete.add_argument("household", metavar="HOUSEHOLD", help="id, or a name found in one building")
    delete.add_argument(
        "--reason", required=True, type=_reason, help="why (kept in the record: no names, please)"
    )
    delete.add_argument(
        "--yes", action="store_true", help="really delete (without: only print what would go)"
    )
    delete.add_argument(
        "--settle",
        type=float,
        metavar="SECONDS",
        help="after dropping, wait this long and drop what a running ingester wrote meanwhile "
        "(default: registry.refresh_s + 5 when registry.enrich is on, else 0)",
    )
    delete.set_defaults(func=_failures(cmd_delete))
    export = households.add_parser("export", help="everything stored about a household as a ZIP (JSON + CSV)")
    config(export)
    export.add_argument("household", metavar="HOUSEHOLD", help="id, or a name found in one building")
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the ZIP to write")
    export.set_defaults(func=_failures(cmd_export))
    deletions = households.add_parser("deletions", help="the deletion records, newest first")
    config(deletions)
    deletions.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    deletions.add_argument("--json", action="store_true", help="as JSON")
    deletions.set_defaults(func=_failures(cmd_deletions))
