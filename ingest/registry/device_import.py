"""Bulk import of devices from CSV, with a report per row. All or nothing.

Columns (header row, any order, ``,`` or ``;`` separated, UTF-8 with or without BOM)::

    gateway, native_id, profile         required
    meter_number, location, notes       optional
    building, household                 optional: assign to this household (names) from now on;
                                        a building without household assigns to its common area

Every value follows the registry's one rule for free text (:mod:`ingest.registry.text`, as the JSON API):
no control characters (line breaks only in notes), no NUL, no leading ``= + - @`` (a formula once the
registry is exported; a plain number such as ``-1`` is fine); surrounding whitespace is trimmed.

Every row is checked first — fields, references, duplicates in the database *and* within the file — and
the report names each problem with its row number (the header is row 1, as in a spreadsheet) and field.
Only when every row is valid are all devices written, in one transaction; otherwise nothing is. A file
fixed after a failed import can simply be uploaded again: there are no half-imported rows to skip.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.assignments import create_assignment
from ingest.registry.db import commit
from ingest.registry.errors import RegistryError
from ingest.registry.fleet import create_device
from ingest.registry.models import Building, Device, Gateway, GatewayStatus, Household
from ingest.registry.text import check_text, native_id_problem

REQUIRED = ("gateway", "native_id", "profile")
OPTIONAL = ("meter_number", "location", "notes", "building", "household")
MAX_ROWS = 5000
MAX_BYTES = 2 * 1024 * 1024
_LIMITS = {"meter_number": 64, "location": 100, "notes": 4000, "gateway": 64, "profile": 64}


@dataclass
class RowResult:
    row: int
    native_id: str
    errors: list[tuple[str, str]] = field(default_factory=list)  # (field, reason)
    device_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class ImportReport:
    rows: list[RowResult]
    file_errors: list[str]
    written: bool
    dry_run: bool

    @property
    def ok(self) -> bool:
        return not self.file_errors and all(row.ok for row in self.rows)

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "written": self.written,
            "dry_run": self.dry_run,
            "file_errors": self.file_errors,
            "rows": [
                {
                    "row": r.row,
                    "native_id": r.native_id,
                    "ok": r.ok,
                    "device_id": r.device_id,
                    "errors": [{"field": f, "reason": reason} for f, reason in r.errors],
                }
                for r in self.rows
            ],
        }


def _read(data: bytes) -> tuple[list[dict[str, str]], list[str]]:
    """The rows as dicts (values as in the file: checked and trimmed per row), or file-level errors."""
    if len(data) > MAX_BYTES:
        return [], [f"the file is larger than {MAX_BYTES // 1024} KiB"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"not UTF-8 text (byte {exc.start}): save the CSV as UTF-8"]
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        table = [row for row in reader]
    except csv.Error as exc:
        return [], [f"not readable as CSV: {exc}"]
    if not table:
        return [], ["the file is empty"]
    header = [name.strip().lower() for name in table[0]]
    errors = [f"unknown column {name!r}" for name in header if name not in REQUIRED + OPTIONAL]
    errors += [f"missing column {name!r}" for name in REQUIRED if name not in header]
    if len(set(header)) != len(header):
        errors.append("a column appears twice")
    if len(table) - 1 > MAX_ROWS:
        errors.append(f"more than {MAX_ROWS} rows: split the file")
    if errors:
        return [], errors
    rows = []
    for number, values in enumerate(table[1:], start=2):
        if not any(v.strip() for v in values):
            continue  # blank line
        padded = values + [""] * (len(header) - len(values))
        row = {name: padded[i] for i, name in enumerate(header)}
        row["#row"] = str(number)
        row["#extra"] = "1" if len(values) > len(header) else ""
        rows.append(row)
    return rows, []


class _Checker:
    """Checks rows against the database and the rows before them."""

    def __init__(self, session: Session, profiles: Collection[str] | None) -> None:
        self.session = session
        self.profiles = profiles
        self.gateways: dict[str, Gateway | None] = {}
        self.meter_numbers: set[str] = set()
        self.native_ids: set[tuple[str, str]] = set()

    def gateway(self, name: str) -> Gateway | None:
        if name not in self.gateways:
            self.gateways[name] = self.session.scalar(select(Gateway).where(Gateway.name == name))
        return self.gateways[name]

    def place(self, building: str, household: str, result: RowResult) -> tuple[int | None, int | None]:
        if any(name in ("building", "household") for name, _ in result.errors):
            return None, None  # already refused as text
        if not building:
            if household:
                result.errors.append(("building", "a household needs its building's name"))
            return None, None
        found = self.session.scalar(select(Building).where(Building.name == building))
        if found is None:
            result.errors.append(("building", f"no building named {building!r}"))
            return None, None
        if not household:
            return None, found.id
        unit = self.session.scalar(
            select(Household).where(Household.building_id == found.id, Household.name == household)
        )
        if unit is None:
            result.errors.append(("household", f"building {building!r} has no household {household!r}"))
            return None, None
        return unit.id, found.id

    def check(self, row: dict[str, str], result: RowResult) -> Gateway | None:
        """Check ``row``, whose values it replaces by their trimmed form."""
        errors = result.errors
        refused: set[str] = set()
        for name in REQUIRED + OPTIONAL:
            raw = row.get(name, "")
            try:
                row[name] = check_text(raw, multiline=name == "notes")
            except ValueError as exc:
                errors.append((name, str(exc)))
                refused.add(name)
                row[name] = ""  # no further checks of a refused value
        if "native_id" not in refused:
            result.native_id = row["native_id"]
        if row["#extra"]:
            errors.append(("row", "more values than columns (a separator inside a value needs quotes)"))
        for name in REQUIRED:
            if not row.get(name) and name not in refused:
                errors.append((name, "required"))
        for name, limit in _LIMITS.items():
            if len(row.get(name, "")) > limit:
                errors.append((name, f"longer than {limit} characters"))
        native_id = row.get("native_id", "")
        problem = native_id and native_id_problem(native_id)  # (its text is checked above)
        if problem:
            errors.append(("native_id", problem))
        profile = row.get("profile", "")
        if profile and self.profiles is not None and profile not in self.profiles:
            errors.append(("profile", f"unknown profile {profile!r}"))
        gateway = self.gateway(row["gateway"]) if row.get("gateway") else None
        if row.get("gateway") and gateway is None:
            errors.append(("gateway", f"no gateway named {row['gateway']!r}"))
        elif gateway is not None and gateway.status is not GatewayStatus.active:
            errors.append(("gateway", f"gateway {gateway.name!r} is {gateway.status.value}"))
        if gateway is not None and native_id:
            key = (gateway.name, native_id)
            taken = self.session.scalar(
                select(Device.id).where(Device.gateway_id == gateway.id, Device.native_id == native_id)
            )
            if taken is not None or key in self.native_ids:
                where = "in the registry" if taken is not None else "in an earlier row"
                errors.append(("native_id", f"gateway {gateway.name!r} already has {native_id!r} {where}"))
            self.native_ids.add(key)
        meter = row.get("meter_number", "")
        if meter:
            taken = self.session.scalar(select(Device.id).where(Device.meter_number == meter))
            if taken is not None or meter in self.meter_numbers:
                where = "in the registry" if taken is not None else "in an earlier row"
                errors.append(("meter_number", f"meter number {meter!r} exists {where}"))
            self.meter_numbers.add(meter)
        return gateway


def import_devices(
    session: Session,
    data: bytes,
    *,
    profiles: Collection[str] | None = None,
    dry_run: bool = False,
    assigned_from: dt.datetime | None = None,
) -> ImportReport:
    """Check every row of the CSV ``data``; write all devices when all rows are valid (and not dry_run).

    ``profiles``: the known profile ids (None: not checked).
    """
    rows, file_errors = _read(data)
    if file_errors:
        return ImportReport(rows=[], file_errors=file_errors, written=False, dry_run=dry_run)
    if not rows:
        return ImportReport(rows=[], file_errors=["no device rows"], written=False, dry_run=dry_run)
    checker = _Checker(session, profiles)
    results: list[RowResult] = []
    planned: list[tuple[RowResult, dict[str, str], Gateway, int | None, int | None]] = []
    for row in rows:
        result = RowResult(row=int(row["#row"]), native_id=row.get("native_id", "").strip())
        gateway = checker.check(row, result)
        household_id, building_id = checker.place(row.get("building", ""), row.get("household", ""), result)
        results.append(result)
        if result.ok and gateway is not None:
            planned.append((result, row, gateway, household_id, building_id))
    report = ImportReport(rows=results, file_errors=[], written=False, dry_run=dry_run)
    if not report.ok or dry_run:
        return report
    _write(session, planned, assigned_from or dt.datetime.now(dt.UTC), report)
    return report


def _write(
    session: Session,
    planned: list[tuple[RowResult, dict[str, str], Gateway, int | None, int | None]],
    since: dt.datetime,
    report: ImportReport,
) -> None:
    try:
        for result, row, gateway, household_id, building_id in planned:
            device = create_device(
                session,
                gateway_id=gateway.id,
                native_id=row["native_id"],
                profile_id=row["profile"],
                meter_number=row.get("meter_number") or None,
                location=row.get("location", ""),
                notes=row.get("notes", ""),
                commit_now=False,
            )
            result.device_id = device.id
            if household_id is not None or building_id is not None:
                create_assignment(
                    session,
                    device_id=device.id,
                    household_id=household_id,
                    building_id=building_id if household_id is None else None,
                    valid_from=since,
                    commit_now=False,
                )
        commit(session)
    except RegistryError as exc:  # a change by someone else between check and write
        session.rollback()
        for result, *_ in planned:
            result.device_id = None
        report.file_errors.append(f"nothing written: {exc}")
        return
    report.written = True
