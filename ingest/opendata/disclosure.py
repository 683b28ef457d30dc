"""Disclosure control of the open energy data: (n, k)-dominance with secondary suppression, as official
statistics do it (Hundepool et al., *Statistical Disclosure Control*, ch. 4; the German statistical offices'
"Geheimhaltung").

**Primary suppression.** A cell (a sum of energy over households: one kind, one interval, the quarter or a
building) is published only if

- at least ``min_households`` households (default 5) contribute, a contribution being a non-zero amount
  (:func:`assess`), and
- no single contributor makes up more than ``dominance_percent`` (default 85 %) of the cell's total.

A device without household (a building's common-area meter or roof PV) is a contributor of its own for the
dominance rule (one owner stands behind it) but does not count as a household. A cell whose total is zero
(PV at night, no car charging) says only that nobody used anything: it is published when at least
``min_households`` households *report* that kind in the interval, otherwise suppressed as well. A cell that
no meter reports at all is not suppressed but missing (nothing was measured).

**Secondary suppression.** A suppressed cell must not be recomputable as a published total minus the
published parts: the quarter's day is the sum of its 96 quarter hours and of its buildings' days. In each
such group (:func:`protect_group`), if exactly one part is suppressed while the total is published, a
second part is suppressed with it: the smallest published non-zero part at least as large as the primary
one (so the pair's known sum does not pin the primary cell down), else the largest. Where no part is left
to pair with, the total is suppressed instead. Energy outside every building (a device registered to no
building) is a hidden part of the buildings' group: never written, it counts as suppressed when it fails
the rule. Derived figures (self-consumption from PV and export, self-sufficiency from those and import)
are suppressed whenever one of their inputs is, since a derived figure and the other inputs give the
suppressed one back.

**Marking.** Every suppressed cell stays in the file, marked: the CSV cell holds a dot (``.``, the sign of
German official statistics for "geheim zu halten"), the JSON value is ``null`` and the row's
``suppressed`` list names the column (:mod:`ingest.opendata.datasets`). Primary and secondary suppression
are marked alike, as the statistical offices do, so the mark does not say which cell is the sensitive one.
A cell that was not measured is empty in CSV and ``null`` in JSON without a mark.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

__all__ = ["Cell", "Contributor", "Rule", "Status", "assess", "derived", "protect_group", "publishable"]

K = TypeVar("K", bound=Hashable)

Contributor = tuple[str, str]
"""(household, building) as the energy ledger tags it; household "" for a building-level device."""


class Status(enum.StrEnum):
    published = "published"
    suppressed = "suppressed"  # primary: too few households, or one dominates
    secondary = "secondary"  # published by the rule, withheld so a suppressed cell stays hidden
    missing = "missing"  # nothing measured


@dataclass(frozen=True)
class Rule:
    """The (n, k) rule: at least ``min_households`` households, none above ``dominance_percent``."""

    min_households: int = 5
    dominance_percent: float = 85.0

    def __post_init__(self) -> None:
        if self.min_households < 2:
            raise ValueError(f"min_households {self.min_households} must be at least 2")
        if not 50 <= self.dominance_percent < 100:
            raise ValueError(f"dominance_percent {self.dominance_percent} must be in [50, 100)")


@dataclass(frozen=True)
class Cell:
    """One figure after disclosure control: ``total`` always holds the computed sum (None: nothing
    measured); only :attr:`value` is what may be published."""

    total: float | None
    households: int  # households with a non-zero contribution
    status: Status

    @property
    def published(self) -> bool:
        return self.status is Status.published

    @property
    def withheld(self) -> bool:
        return self.status in (Status.suppressed, Status.secondary)

    @property
    def value(self) -> float | None:
        return self.total if self.published else None


def assess(contributions: Mapping[Contributor, float], rule: Rule) -> Cell:
    """The cell summing ``contributions`` (every contributor that reports the kind in the interval, with
    its kWh, zero included), published or suppressed by ``rule``."""
    if not contributions:
        return Cell(None, 0, Status.missing)
    total = sum(contributions.values())
    reporting = sum(1 for household, _ in contributions if household)
    nonzero = {who: abs(kwh) for who, kwh in contributions.items() if kwh != 0}
    households = sum(1 for household, _ in nonzero if household)
    if not nonzero:  # everybody reported zero: publishable when enough households reported it
        status = Status.published if reporting >= rule.min_households else Status.suppressed
        return Cell(total, 0, status)
    if households < rule.min_households:
        return Cell(total, households, Status.suppressed)
    if max(nonzero.values()) * 100 > rule.dominance_percent * sum(nonzero.values()):
        return Cell(total, households, Status.suppressed)
    return Cell(total, households, Status.published)


def publishable(
    contributions: Mapping[Contributor, float], *, min_households: int, dominance_percent: float
) -> bool:
    """Whether the sum of ``contributions`` may be published (:func:`assess` by the (n, k) rule)."""
    return assess(contributions, Rule(min_households, dominance_percent)).published


def protect_group(parts: Mapping[K, Cell], total: Cell) -> tuple[dict[K, Cell], Cell]:
    """Secondary suppression for parts that add up to ``total``: returns the parts and the total, with a
    second part (or the total) withheld where exactly one part is withheld and the total is published."""
    out = dict(parts)
    if not total.published:
        return out, total
    withheld = [key for key, cell in out.items() if cell.withheld]
    if len(withheld) != 1:
        return out, total
    primary = abs(out[withheld[0]].total or 0.0)
    candidates = sorted(
        (abs(cell.total or 0.0), index, key)
        for index, (key, cell) in enumerate(out.items())
        if cell.published and cell.total
    )
    if not candidates:
        return out, replace(total, status=Status.secondary)
    covering = [candidate for candidate in candidates if candidate[0] >= primary]
    chosen = covering[0] if covering else candidates[-1]
    out[chosen[2]] = replace(out[chosen[2]], status=Status.secondary)
    return out, total


def derived(*inputs: Cell, total: float | None) -> Cell:
    """A figure computed from other cells: withheld when one of them is, missing when one is missing."""
    if any(cell.withheld for cell in inputs):
        return Cell(total, 0, Status.secondary)
    if total is None or any(cell.status is Status.missing for cell in inputs):
        return Cell(None, 0, Status.missing)
    return Cell(total, min(cell.households for cell in inputs), Status.published)
