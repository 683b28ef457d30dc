"""The three energy datasets of one local day from the ledger's quarter hours, after disclosure control.

Input: every household's (and building-level device's) kWh per ledger kind and 15-minute bucket, summed
over its devices (:class:`DayEnergy`). Output: rows of ``quarter-energy-15min``, ``quarter-energy-daily``
and ``building-energy-daily`` as JSON-ready dicts (:mod:`ingest.opendata.datasets` columns, plus the
row's ``suppressed`` list).

Definitions: those of docs/portal.md, "For the quarter" (the residents' portal, the letters and the public
quarter page say the same), per row, i.e. per quarter hour or per day, over the row's quarter or building:

- ``grid_import_kwh`` ``I``/``grid_export_kwh`` ``E``: the households' main meters (ledger kinds ``import``,
  ``export`` with a household: a meter left without household after a deletion counts on neither side);
  ``pv_kwh`` ``P``: every PV meter, households' and buildings'; ``heat_kwh``; ``ev_charging_kwh`` (EV
  sub-meters, their energy is also part of the import).
- ``self_consumption_kwh`` = max(0, P − E): PV energy not fed into the grid.
- ``self_sufficiency_percent`` = (1 − Σt max(0, I(t) − E(t)) / (I + P − E)) · 100, t the row's quarter
  hours (one for a 15-minute row): the part of the electricity used that was not drawn from outside, a
  neighbour's solar power fed in within the same quarter hour counting as the quarter's (or building's)
  own; clamped to 0…100, empty when nothing was used. Without PV or export meters P or E is 0.

A day's figures are its quarter hours summed per contributor, so ``quarter-energy-daily`` is exactly the
sum of ``quarter-energy-15min`` (the ledger's ``energy_1d`` is that sum too); self-consumption is clipped at
zero per row. Derived figures are withheld whenever an input is (:func:`ingest.opendata.disclosure.derived`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ingest.opendata.disclosure import Cell, Contributor, Rule, Status, assess, derived, protect_group

KIND_COLUMNS = {
    "import": "grid_import_kwh",
    "export": "grid_export_kwh",
    "pv": "pv_kwh",
    "heat": "heat_kwh",
    "ev_charging": "ev_charging_kwh",
}
LEDGER_KINDS = {"import": "import", "export": "export", "pv": "pv", "heat": "heat", "ev": "ev_charging"}
SELF_CONSUMPTION = "self_consumption_kwh"
SELF_SUFFICIENCY = "self_sufficiency_percent"
HOUSEHOLDS = "households"
KWH_DIGITS = 3  # Wh
PERCENT_DIGITS = 1
Row = dict[str, object]
Contributions = dict[Contributor, float]


@dataclass
class DayEnergy:
    """One local day of the ledger: kWh per 15-minute bucket (aware start), kind and contributor."""

    slots: list[dt.datetime]  # every bucket start of the local day, in order (92, 96 or 100)
    energy: dict[dt.datetime, dict[str, Contributions]] = field(default_factory=dict)

    def add(self, start: dt.datetime, kind: str, contributor: Contributor, kwh: float) -> None:
        """One ledger value (several devices of a contributor add up); other kinds, and import and export
        of meters without household, are left out."""
        name = LEDGER_KINDS.get(kind)
        if name is None or (name in ("import", "export") and not contributor[0]):
            return
        per_kind = self.energy.setdefault(start, {}).setdefault(name, {})
        per_kind[contributor] = per_kind.get(contributor, 0.0) + kwh

    def day_total(self) -> dict[str, Contributions]:
        """Per kind, each contributor's kWh over the day."""
        out: dict[str, Contributions] = defaultdict(dict)
        for kinds in self.energy.values():
            for kind, contributions in kinds.items():
                total = out[kind]
                for who, kwh in contributions.items():
                    total[who] = total.get(who, 0.0) + kwh
        return out

    def external(self) -> dict[str | None, float]:
        """Σ over the quarter hours of max(0, import − export): per building, and the quarter's (None)."""
        out: dict[str | None, float] = defaultdict(float)
        for kinds in self.energy.values():
            net: dict[str | None, float] = defaultdict(float)
            for kind, sign in (("import", 1.0), ("export", -1.0)):
                for who, kwh in kinds.get(kind, {}).items():
                    net[who[1]] += sign * kwh
                    net[None] += sign * kwh
            for building, value in net.items():
                out[building] += max(0.0, value)
        return out


def by_building(per_kind: Mapping[str, Contributions]) -> dict[str, dict[str, Contributions]]:
    """Contributions per building (the contributor's building tag), then per kind."""
    out: dict[str, dict[str, Contributions]] = defaultdict(lambda: defaultdict(dict))
    for kind, contributions in per_kind.items():
        for who, kwh in contributions.items():
            out[who[1]][kind][who] = kwh
    return out


@dataclass
class _Figures:
    cells: dict[str, Cell]  # by kind column
    households: int
    external: float  # Σt max(0, I(t) − E(t))


def quarter_hour_cells(per_kind: Mapping[str, Contributions], rule: Rule) -> dict[str, Cell]:
    """One interval's cells by kind column, each decided by the primary (n, k) rule alone
    (:func:`ingest.opendata.disclosure.assess`). A quarter hour is published or withheld by exactly this,
    in the 15-minute file and on the public page alike: no quarter hour is withheld as a partner."""
    return {column: assess(per_kind.get(kind, {}), rule) for kind, column in KIND_COLUMNS.items()}


def _households(per_kind: Mapping[str, Contributions]) -> int:
    return len({who for contributions in per_kind.values() for who in contributions if who[0]})


def _figures(per_kind: Mapping[str, Contributions], rule: Rule, external: float) -> _Figures:
    return _Figures(quarter_hour_cells(per_kind, rule), _households(per_kind), external)


def self_sufficiency_percent(imported: float, exported: float, pv: float, external: float) -> float | None:
    """(1 − external / (I + P − E)) · 100, clamped to 0…100; None when nothing was used. ``external``:
    Σt max(0, I(t) − E(t)) over the period's quarter hours (docs/portal.md, "For the quarter")."""
    consumption = imported + pv - exported
    if consumption <= 0:
        return None
    return min(100.0, max(0.0, (1.0 - external / consumption) * 100))


def _row(start: dt.datetime, figures: _Figures, label: Mapping[str, str] | None = None) -> Row:
    cells = dict(figures.cells)
    pv, export, imported = cells["pv_kwh"], cells["grid_export_kwh"], cells["grid_import_kwh"]
    used = None if pv.total is None or export.total is None else max(0.0, pv.total - export.total)
    cells[SELF_CONSUMPTION] = derived(pv, export, total=used)
    share = None
    if imported.total is not None:
        share = self_sufficiency_percent(
            imported.total, export.total or 0.0, pv.total or 0.0, figures.external
        )
    measured = [cell for cell in (export, pv) if cell.status is not Status.missing]
    cells[SELF_SUFFICIENCY] = derived(imported, *measured, total=share)
    row: Row = {
        "start": start.isoformat(timespec="seconds"),
        **(label or {}),
        HOUSEHOLDS: figures.households,
    }
    suppressed = []
    measured = [cell for cell in cells.values() if cell.status is not Status.missing]
    if measured and all(cell.withheld for cell in measured):
        # the count would say why the figures are withheld (1 household, 4) and who takes part
        row[HOUSEHOLDS] = None
        suppressed.append(HOUSEHOLDS)
    for column, cell in cells.items():
        digits = PERCENT_DIGITS if column == SELF_SUFFICIENCY else KWH_DIGITS
        row[column] = None if cell.value is None else round(cell.value, digits) + 0.0  # no -0.0
        if cell.withheld:
            suppressed.append(column)
    row["suppressed"] = suppressed
    return row


@dataclass
class DayTables:
    quarter_15min: list[Row]
    quarter_daily: Row
    buildings_daily: list[Row]


def day_tables(
    day: DayEnergy, *, midnight: dt.datetime, buildings: Mapping[str, str], rule: Rule
) -> DayTables:
    """The day's rows. ``buildings``: ledger building name -> public label, in the order to write; energy of
    buildings not in it is a hidden part of the buildings' sum (:mod:`ingest.opendata.disclosure`)."""
    slots = {}
    for start in day.slots:
        kinds = day.energy.get(start, {})
        flows = [sum(kinds.get(kind, {}).values()) for kind in ("import", "export")]
        slots[start] = _figures(kinds, rule, max(0.0, flows[0] - flows[1]))
    totals, external = day.day_total(), day.external()
    quarter = _figures(totals, rule, external[None])
    split = by_building(totals)
    per_building = {name: _figures(split.get(name, {}), rule, external[name]) for name in buildings}
    hidden_totals: dict[str, Contributions] = defaultdict(dict)
    for building, kinds in split.items():
        if building not in buildings:
            for kind, contributions in kinds.items():
                hidden_totals[kind].update(contributions)
    hidden = _figures(hidden_totals, rule, 0.0)
    for kind, column in KIND_COLUMNS.items():
        # the quarter hours keep their primary decision; any of them withheld withholds the day's total
        # (the day minus the published quarter hours would be their sum), derived figures with it
        withheld_slots: Contributions = {}
        for start, figures in slots.items():
            if figures.cells[column].withheld:
                for who, kwh in day.energy.get(start, {}).get(kind, {}).items():
                    withheld_slots[who] = withheld_slots.get(who, 0.0) + kwh
        if withheld_slots and quarter.cells[column].published:
            quarter.cells[column] = replace(quarter.cells[column], status=Status.secondary)
        parts: dict[str | None, Cell] = {
            name: figures.cells[column] for name, figures in per_building.items()
        }
        shares: dict[str | None, Contributions] = {
            name: split.get(name, {}).get(kind, {}) for name in per_building
        }
        if hidden.cells[column].status is not Status.missing:
            # never written, so unknown to the public like a withheld part, whatever the rule says
            parts[None] = replace(hidden.cells[column], status=Status.secondary)
            shares[None] = hidden_totals[kind]
        # with the day's total withheld the buildings still add up to it: linked to the quarter hours
        parts, quarter.cells[column] = protect_group(
            parts, quarter.cells[column], contributions=shares, rule=rule, linked=withheld_slots
        )
        for part, cell in parts.items():
            if part is not None:
                per_building[part].cells[column] = cell
    quarter_daily = _row(midnight, quarter)
    buildings_daily = [
        _row(midnight, per_building[name], {"building": label}) for name, label in buildings.items()
    ]
    _protect_counts(buildings_daily, quarter_daily, hidden_households=_households(hidden_totals), rule=rule)
    return DayTables(
        quarter_15min=[_row(start.astimezone(midnight.tzinfo), slots[start]) for start in day.slots],
        quarter_daily=quarter_daily,
        buildings_daily=buildings_daily,
    )


def _withheld(row: Row, column: str) -> bool:
    suppressed = row["suppressed"]
    return isinstance(suppressed, list) and column in suppressed


def _mark(row: Row, column: str) -> None:
    row[column] = None
    suppressed = row["suppressed"]
    if isinstance(suppressed, list) and column not in suppressed:
        suppressed.insert(0, column)


def _protect_counts(buildings: list[Row], quarter: Row, *, hidden_households: int, rule: Rule) -> None:
    """The buildings' household counts and the households outside every labelled building (never
    written: always a withheld part) add up to the quarter's count, so the withheld counts' sum is the
    quarter's count minus the published ones. As for the figures (the union rule of
    :func:`ingest.opendata.disclosure.protect_group`), that sum must cover at least two parts and at least
    ``rule.min_households`` households; until it does, the smallest published count is withheld as well
    (marked), and with none left the quarter's."""
    total = quarter[HOUSEHOLDS]
    if _withheld(quarter, HOUSEHOLDS) or not isinstance(total, int):
        return
    parts = sum(1 for row in buildings if _withheld(row, HOUSEHOLDS)) + (1 if hidden_households else 0)
    if not parts:
        return  # every count published: nothing withheld to give back
    published = sum(
        count
        for row in buildings
        for count in (row[HOUSEHOLDS],)
        if isinstance(count, int) and not _withheld(row, HOUSEHOLDS)
    )
    households = total - published  # the withheld parts' households, as anybody computes it
    while parts < 2 or households < rule.min_households:
        counts = {
            index: count
            for index, row in enumerate(buildings)
            for count in (row[HOUSEHOLDS],)
            if isinstance(count, int) and count > 0 and not _withheld(row, HOUSEHOLDS)
        }
        if not counts:
            _mark(quarter, HOUSEHOLDS)
            return
        index = min(counts, key=lambda index: (counts[index], index))
        _mark(buildings[index], HOUSEHOLDS)
        parts += 1
        households += counts[index]
