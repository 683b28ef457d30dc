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

**Secondary suppression.** No withheld cell, and no sum of withheld cells that fails the rule, may be
recomputable from published figures. Two groups of parts add up to the quarter's day (per kind): its 96
quarter hours and its buildings.

- *Quarter hours.* A quarter hour is withheld by the primary rule alone, never as a partner, so the public
  page (which sees the day so far) and the files (the whole day) decide each quarter hour alike and never
  withhold different partners whose union would give a cell back (review18b HIGH-1). Instead, when any
  quarter hour of a kind is withheld, the day's total of that kind is (it minus the published quarter hours
  would be their sum), and every figure derived from it with it.
- *Buildings* (:func:`protect_group`: parts adding up to a published total). The withheld parts' *sum* is
  known (the total minus the published parts). The group is protected when that sum passes the rule
  itself: the union of the withheld parts' contributions (each contributor's amounts summed over them) is
  assessed with the same (n, k) rule. While it fails, the smallest published part (by value; a zero part
  only while the withheld ones sum to zero, since only then can it help) is withheld as well and the union
  assessed again; with nothing left to add, the total is withheld. A single withheld part thus always gets
  a partner (its union alone is the primary cell, which fails). Since all parts together are the total,
  which passed, the loop ends with the group protected. Energy outside every building (a device
  registered to no building) is a hidden part: never written, it always counts as withheld.
- *Both.* When the day's total is withheld for its quarter hours, the buildings still add up to it, so
  all of them published would give the total, and the withheld quarter hours' sum, back. The two groups
  are then linked (``protect_group(linked=...)``): the published parts give the withheld buildings' sum
  minus the withheld quarter hours' sum, and that difference, contributor by contributor, must pass the
  rule; while it fails the smallest published building is withheld as well. Otherwise a building needs
  only the primary rule.

Derived figures (self-consumption from PV and export, self-sufficiency from those and import) are withheld
whenever one of their inputs is, since a derived figure and the other inputs give the withheld one back.

**Households column.** A row's ``households`` count is withheld (marked like the figures) when every figure
of the row that was measured is withheld: a count of 1 or 4 beside withheld figures would say why they are
withheld and how few households a building takes part with. The buildings' counts and the households
outside every labelled building (never written: a withheld part) add up to the quarter's, so the withheld
counts' sum is known; as for the figures, it must cover at least two parts and ``min_households``
households, else the smallest published count is withheld as well
(:mod:`ingest.opendata.energy_tables`).

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


def protect_group(
    parts: Mapping[K, Cell],
    total: Cell,
    *,
    contributions: Mapping[K, Mapping[Contributor, float]],
    rule: Rule,
    linked: Mapping[Contributor, float] | None = None,
) -> tuple[dict[K, Cell], Cell]:
    """Secondary suppression for ``parts`` that add up to ``total``: returns the parts and the total, with
    published parts (or, with none left, the total) withheld until the union of the withheld parts'
    ``contributions`` passes ``rule`` (module docstring). ``contributions``: each part's contributors and
    their kWh, as :func:`assess` took them.

    ``linked``: with ``total`` withheld, the union of the withheld cells of another group adding up to
    the same total (a day's withheld quarter hours). Both groups' published parts then still give the
    difference of the two withheld sums; published parts are withheld until that difference, each
    contributor's withheld parts minus its ``linked`` amount, passes ``rule`` (with nothing withheld the
    parts would give the total, and so the linked cells, back)."""
    out = dict(parts)
    union: dict[Contributor, float] = {}
    if not total.published:
        if not linked:
            return out, total  # the total is not known: the withheld parts' sum is not either
        for who, kwh in linked.items():
            union[who] = -kwh
    withheld = [key for key, cell in out.items() if cell.withheld]
    if not withheld and not union:
        return out, total

    def take(key: K) -> None:
        for who, kwh in contributions.get(key, {}).items():
            union[who] = union.get(who, 0.0) + kwh

    for key in withheld:
        take(key)
    while not assess(union, rule).published:
        nonzero = any(kwh != 0 for kwh in union.values())
        candidates = sorted(
            (abs(cell.total or 0.0), index, key)
            for index, (key, cell) in enumerate(out.items())
            if cell.published and (cell.total or not nonzero)
        )
        if not candidates:
            if not total.published:
                return out, total  # every part withheld: their sum is the unknown total
            return out, replace(total, status=Status.secondary)
        key = candidates[0][2]
        out[key] = replace(out[key], status=Status.secondary)
        take(key)
    return out, total


def derived(*inputs: Cell, total: float | None) -> Cell:
    """A figure computed from other cells: withheld when one of them is, missing when one is missing."""
    if any(cell.withheld for cell in inputs):
        return Cell(total, 0, Status.secondary)
    if total is None or any(cell.status is Status.missing for cell in inputs):
        return Cell(None, 0, Status.missing)
    return Cell(total, min(cell.households for cell in inputs), Status.published)
