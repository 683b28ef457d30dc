"""``reallabor buildings add|list``, ``households add|list``, and the household of ``users add``.

Buildings and households are named on the command line by id or by name (a household's name is unique
only in its building: a name found in several buildings is refused with their ids). Exit codes as the
other registry commands: 0 ok, 1 refused (no such row, a duplicate), 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.registry.buildings import create_building, create_household, list_buildings, list_households
from ingest.registry.errors import NotFound
from ingest.registry.models import Building, Gateway, Household, Role, User
from ingest.security.audit import audit

EXIT_USAGE = 2
LIST_HOUSEHOLDS = "reallabor households list [--building B]"


def actor() -> str:
    """Who ran the command, for the audit trail: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in the environment or the password database
        return f"cli:uid {os.getuid()}"


def find_building(session: Session, ref: str) -> Building:
    """The building with id ``ref`` (digits), else the one named ``ref``."""
    building = session.get(Building, int(ref)) if ref.isdigit() else None
    building = building or session.scalar(select(Building).where(Building.name == ref))
    if building is None:
        raise NotFound(f"no building with id or name {ref!r} (reallabor buildings list shows them)")
    return building


def find_household(session: Session, ref: str) -> Household:
    """The household with id ``ref`` (digits), else the one named ``ref`` if only one building has it."""
    household = session.get(Household, int(ref)) if ref.isdigit() else None
    if household is not None:
        return household
    named = list(session.scalars(select(Household).where(Household.name == ref).order_by(Household.id)))
    if not named:
        raise NotFound(f"no household with id or name {ref!r} ({LIST_HOUSEHOLDS} shows them)")
    if len(named) > 1:
        where = ", ".join(f"id {h.id} in {h.building.name!r}" for h in named)
        raise NotFound(f"{len(named)} households are named {ref!r} ({where}): give the id")
    return named[0]


def check_household_option(role: Role, household: str | None) -> None:
    """``users add``: a resident needs ``--household``, nobody else may have one (else exit 2)."""
    if role is Role.resident and household is None:
        print(
            "reallabor: a resident belongs to a household: give --household ID|NAME "
            f"({LIST_HOUSEHOLDS} shows them; reallabor households add NAME --building B makes one)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE)
    if role is not Role.resident and household is not None:
        print(
            f"reallabor: only residents belong to a household, not a {role.value}: leave out --household",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE)


# ---------------------------------------------------------------- buildings


def run_buildings_add(session: Session, args: argparse.Namespace) -> int:
    building = create_building(session, name=args.name, address=args.address, notes=args.notes)
    audit("building.created", building=building.name, id=building.id, by=actor())
    print(f"building {building.name} created, id {building.id}")
    return 0


def _counts(session: Session, column: Any, ids: list[int]) -> dict[int, int]:
    rows = session.execute(select(column, func.count()).where(column.in_(ids)).group_by(column))
    return {key: count for key, count in rows}


def run_buildings_list(session: Session, args: argparse.Namespace) -> int:
    buildings, total = list_buildings(session, limit=args.limit, offset=0)
    ids = [b.id for b in buildings]
    households = _counts(session, Household.building_id, ids)
    gateways = _counts(session, Gateway.building_id, ids)
    rows = [
        {
            "id": b.id,
            "name": b.name,
            "address": b.address,
            "households": households.get(b.id, 0),
            "gateways": gateways.get(b.id, 0),
        }
        for b in buildings
    ]
    if args.json:
        print(json.dumps({"total": total, "items": rows}))
        return 0
    print(f"{'ID':>6}  {'NAME':<24} {'HOUSEHOLDS':>10} {'GATEWAYS':>8}  ADDRESS")
    for row in rows:
        counts = f"{row['households']:>10} {row['gateways']:>8}"
        print(f"{row['id']:>6}  {row['name']:<24} {counts}  {row['address']}")
    print(f"{len(rows)} of {total}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- households


def run_households_add(session: Session, args: argparse.Namespace) -> int:
    building = find_building(session, args.building)
    household = create_household(session, building_id=building.id, name=args.name, notes=args.notes)
    audit("household.created", household=household.name, id=household.id, building=building.name, by=actor())
    print(f"household {household.name} in {building.name} created, id {household.id}")
    return 0


def run_households_list(session: Session, args: argparse.Namespace) -> int:
    building_id = find_building(session, args.building).id if args.building is not None else None
    households, total = list_households(session, limit=args.limit, offset=0, building_id=building_id)
    residents = _counts(session, User.household_id, [h.id for h in households])
    rows = [
        {
            "id": h.id,
            "name": h.name,
            "building_id": h.building_id,
            "building": h.building.name,
            "residents": residents.get(h.id, 0),
        }
        for h in households
    ]
    if args.json:
        print(json.dumps({"total": total, "items": rows}))
        return 0
    print(f"{'ID':>6}  {'BUILDING':<24} {'NAME':<24} RESIDENTS")
    for row in rows:
        print(f"{row['id']:>6}  {row['building']:<24} {row['name']:<24} {row['residents']:>9}")
    print(f"{len(rows)} of {total}", file=sys.stderr)
    return 0
