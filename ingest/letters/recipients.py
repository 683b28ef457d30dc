"""The households a month's letters go to, from the registry: names and their building's address."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ingest.registry.db import make_engine, session_factory
from ingest.registry.models import Building, Household


@dataclass(frozen=True)
class Recipient:
    """A household the letter goes to: the registry's id and names, its building's address. The energy
    ledger tags by household *and* building name (a household's name is unique only in its building)."""

    id: int
    building: str
    household: str
    address: str


def recipients(registry_url: str, *, household: str | None = None) -> list[Recipient]:
    """Every household (or those named ``household``), by building and name."""
    engine = make_engine(registry_url)
    try:
        with session_factory(engine)() as session:
            query = (
                select(Household.id, Building.name, Household.name, Building.address)
                .join(Building, Building.id == Household.building_id)
                .order_by(Building.name, Household.name)
            )
            if household is not None:
                query = query.where(Household.name == household)
            return [Recipient(i, b, h, address) for i, b, h, address in session.execute(query)]
    finally:
        engine.dispose()
