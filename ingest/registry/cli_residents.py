"""``reallabor residents invite|invitations|revoke``: invitation codes with which residents create their
accounts (:mod:`ingest.registry.invitations`).

``invite`` prints the code once, with its expiry and the address to open, plainly enough to go on a
letter (German and English); the registry keeps only the code's hash, so ``invitations`` lists the open
ones without codes, and ``revoke`` takes an invitation's id or the code from the letter. Exit codes as
the other registry commands: 0 ok, 1 refused (no such household or invitation), 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from ingest.config import Settings
from ingest.registry import cli
from ingest.registry.cli_people import actor, find_household
from ingest.registry.errors import NotFound
from ingest.registry.invitations import create, find_by_code, is_open, list_invitations, revoke
from ingest.registry.models import Invitation

WELCOME_PATH = "/portal/welcome"


def _base_url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give the portal's address, e.g. https://reallabor.example"
        )
    return text.rstrip("/")


def _days(text: str) -> int:
    days = int(text)
    if not 1 <= days <= 90:
        raise argparse.ArgumentTypeError("between 1 and 90 days")
    return days


def _local(when: dt.datetime, settings: Settings) -> str:
    return when.astimezone(ZoneInfo(settings.ingest.timezone)).strftime("%d.%m.%Y %H:%M")


def _state(invitation: Invitation) -> str:
    if invitation.redeemed_at is not None:
        return "redeemed"
    if invitation.revoked_at is not None:
        return "revoked"
    return "open" if is_open(invitation) else "expired"


def run_invite(session: Session, settings: Settings, args: argparse.Namespace) -> int:
    base = args.url or settings.api.public_url
    if base is None:
        if settings.mode == "production":  # api.host:port is where the API listens, not what residents open
            print(
                "api.public_url: required in mode 'production' to print an invitation (the address "
                "residents open, https://...), or give --url; no invitation made",
                file=sys.stderr,
            )
            return 2
        base = f"http://{settings.api.host}:{settings.api.port}"
    household = find_household(session, args.household)
    invitation, code = create(
        session, household_id=household.id, by=actor(), ttl=dt.timedelta(days=args.days)
    )
    expires = _local(invitation.expires_at, settings)
    print("Reallabor – Zugang zum Bewohnerportal / access to the resident portal")
    print(f"Haushalt / household:      {household.name} ({household.building.name})")
    print(f"Einladungscode / code:     {code}")
    print(f"Gültig bis / valid until:  {expires} ({settings.ingest.timezone})")
    print(f"Öffnen Sie / open:         {base}{WELCOME_PATH}")
    print(
        f"invitation {invitation.id}: the code is shown only now (the registry keeps its hash); "
        f"reallabor residents revoke {invitation.id} withdraws it",
        file=sys.stderr,
    )
    return 0


def run_list(session: Session, settings: Settings, args: argparse.Namespace) -> int:
    household_id = find_household(session, args.household).id if args.household is not None else None
    rows, total = list_invitations(
        session, limit=args.limit, offset=0, household_id=household_id, open_only=not args.all
    )
    items = [
        {
            "id": row.id,
            "household_id": row.household_id,
            "household": row.household.name,
            "building": row.household.building.name,
            "state": _state(row),
            "created_at": row.created_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            "created_by": row.created_by,
        }
        for row in rows
    ]
    if args.json:
        print(json.dumps({"total": total, "items": items}))
        return 0
    print(f"{'ID':>6}  {'BUILDING':<20} {'HOUSEHOLD':<20} {'STATE':<9} {'EXPIRES':<16}  BY")
    for row, item in zip(rows, items, strict=True):
        expires = _local(row.expires_at, settings)
        print(
            f"{item['id']:>6}  {item['building']:<20} {item['household']:<20} "
            f"{item['state']:<9} {expires:<16}  {item['created_by']}"
        )
    print(f"{len(items)} of {total} {'' if args.all else 'open '}invitations", file=sys.stderr)
    return 0


def run_revoke(session: Session, args: argparse.Namespace) -> int:
    ref: str = args.invitation
    invitation = session.get(Invitation, int(ref)) if ref.isdigit() else find_by_code(session, ref)
    if invitation is None:
        raise NotFound(f"no invitation with id or code {ref if ref.isdigit() else '(the code given)'}")
    revoke(session, invitation, by=actor())
    print(f"invitation {invitation.id} for household {invitation.household.name} is revoked")
    return 0


@cli._refusals
def cmd_invite(args: argparse.Namespace) -> int:
    settings = cli._settings(args)
    with cli._session(settings) as session:
        return run_invite(session, settings, args)


@cli._refusals
def cmd_invitations(args: argparse.Namespace) -> int:
    settings = cli._settings(args)
    with cli._session(settings) as session:
        return run_list(session, settings, args)


@cli._refusals
def cmd_revoke(args: argparse.Namespace) -> int:
    with cli._session(cli._settings(args)) as session:
        return run_revoke(session, args)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    residents = subparsers.add_parser(
        "residents", help="residents' access: invitation codes for the resident portal"
    ).add_subparsers(dest="action", required=True)
    invite = residents.add_parser(
        "invite", help="a one-time invitation code for a household (printed once, for a letter)"
    )
    cli._config(invite)
    invite.add_argument("household", metavar="HOUSEHOLD", help="the household, by id or name")
    invite.add_argument("--days", type=_days, default=14, help="valid for this many days (1-90, default 14)")
    invite.add_argument(
        "--url",
        type=_base_url,
        help="the portal's public address printed on the letter (default: api.public_url; in development "
        "http://api.host:api.port)",
    )
    invite.set_defaults(func=cmd_invite)

    listing = residents.add_parser("invitations", help="open invitations (never their codes)")
    cli._config(listing)
    listing.add_argument("--household", metavar="ID|NAME", help="only this household's")
    listing.add_argument("--all", action="store_true", help="redeemed, revoked and expired ones too")
    cli._limit(listing)
    listing.add_argument("--json", action="store_true", help="{total, items} as JSON")
    listing.set_defaults(func=cmd_invitations)

    withdraw = residents.add_parser("revoke", help="withdraw an open invitation")
    cli._config(withdraw)
    withdraw.add_argument("invitation", metavar="ID|CODE", help="the invitation's id, or the code itself")
    withdraw.set_defaults(func=cmd_revoke)
