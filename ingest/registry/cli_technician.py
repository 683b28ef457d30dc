"""The technicians' commands: ``reallabor devices import FILE`` and ``reallabor devices commission DEVICE``.

Exit codes as the other registry commands: 0 ok (import valid, check passed), 1 refused or failed,
2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.commissioning.runner import Commissioner
from ingest.registry.device_import import ImportReport, import_devices
from ingest.registry.errors import NotFound
from ingest.registry.models import Device, Gateway

EXIT_FAILED = 1
EXIT_CONFIG = 2


def print_import_report(report: ImportReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_json()))
        return
    for error in report.file_errors:
        print(f"file: {error}")
    for row in report.rows:
        if row.ok:
            made = f" -> device {row.device_id}" if row.device_id else ""
            print(f"row {row.row}: ok {row.native_id}{made}")
        for field, reason in row.errors:
            print(f"row {row.row}: error {field}: {reason}")
    if report.written:
        verdict = f"{len(report.rows)} devices created"
    elif report.ok:
        verdict = f"all {len(report.rows)} rows valid (dry run: nothing created)"
    else:
        verdict = "nothing created: fix the rows with errors and import the whole file again"
    print(verdict, file=sys.stderr)


def run_import(session: Session, data: bytes, *, profiles: set[str], dry_run: bool, as_json: bool) -> int:
    report = import_devices(session, data, profiles=profiles, dry_run=dry_run)
    print_import_report(report, as_json=as_json)
    return 0 if report.ok else EXIT_FAILED


def find_device(session: Session, args: argparse.Namespace) -> Device:
    """The device named by id, meter number or gateway + native id."""
    if args.device is not None:
        device = session.get(Device, args.device)
    elif args.meter_number is not None:
        device = session.scalar(select(Device).where(Device.meter_number == args.meter_number))
    else:
        device = session.scalar(
            select(Device)
            .join(Gateway, Device.gateway_id == Gateway.id)
            .where(Gateway.name == args.gateway, Device.native_id == args.native_id)
        )
    if device is None:
        raise NotFound("no such device")
    return device


def _emit(phase: str, text: str) -> None:
    print(f"{phase}: {text}", file=sys.stderr)


def print_check(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, default=str))
        return
    print("PASSED" if report["passed"] else f"FAILED ({report['outcome']})")
    for reason in report["reasons"]:
        print(f"  reason   {reason['code']}: {reason['message']}")
    for warning in report["warnings"]:
        print(f"  warning  {warning['code']}: {warning['message']}")
    for row in report["plausibility"]:
        mark = "ok" if row["ok"] else "IMPLAUSIBLE"
        name = f"{row['measurement']}.{row['field']}"
        print(f"  value    {name} = {row['value']}  [{row['min']}, {row['max']}] {mark}")
    clock = report.get("clock")
    if clock:
        print(f"  clock    {clock['time_source']}, offset {clock['offset_s']} s")
    for name in ("signal", "battery"):
        if report.get(name):
            print(f"  {name:<8} {report[name]}")
    for entry in report["quarantine"]:
        print(f"  quarantine #{entry['id']} {entry['reason']}: {entry['detail']} ({entry['received']})")


def run_commission(commissioner: Commissioner, device: Device, *, timeout_s: float, as_json: bool) -> int:
    """Run one check in this process (the same code the API runs) and print its report."""
    plan = commissioner.plan(device)
    report: dict[str, Any] = asyncio.run(
        commissioner.check(
            plan,
            run_id=uuid.uuid4().hex,
            started_by_id=None,
            started_by=f"cli:{getpass.getuser()}",
            timeout_s=timeout_s,
            emit=_emit,
        )
    )
    print_check(report, as_json=as_json)
    return 0 if report["passed"] else EXIT_FAILED
