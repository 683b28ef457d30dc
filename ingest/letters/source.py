"""The figures of a month's letters: the energy ledger's daily totals (InfluxDB ``rollups.energy_1d``)
summed per calendar month, and the households with their building's address from the registry.

Twelve small queries (one per month of the chart, every household at once), then pure Python:
:func:`letter_figures` builds each household's :class:`LetterFigures` from the monthly totals.
The ledger tags each day's total with ``building`` and ``household`` (registry names; no ``household``
on building-level devices such as a shared PV system: they count for the quarter, not for a letter).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ingest import influxql
from ingest.letters.figures import MIN_HOUSEHOLDS_FOR_MEDIAN, Community, LetterFigures, Month
from ingest.lifecycle import ROLLUP_RP
from ingest.lifecycle_cli import InfluxV1

MEASUREMENT_1D = "energy_1d"  # the ledger's contract (ingest/energy/store.py)
FIELD = "kwh"
Key = tuple[str, str]  # (building, household); household "" for building-level devices
Totals = dict[Key, dict[str, float]]  # kWh by kind, per household, in one month


@dataclass(frozen=True)
class Recipient:
    """A household the letter goes to: the registry's names and its building's address."""

    building: str
    household: str
    address: str

    @property
    def key(self) -> Key:
        return (self.building, self.household)


def month_totals(client: InfluxV1, database: str, month: Month) -> Totals:
    """Every household's kWh by kind in ``month`` (sum of the ledger's local days in it)."""
    query = influxql.statement(
        "SELECT sum({field}) FROM {measurement} WHERE time >= {start} AND time < {end} "
        "GROUP BY {building}, {household}, {kind}",
        field=influxql.Ident(FIELD),
        measurement=influxql.Ident(ROLLUP_RP, MEASUREMENT_1D),
        start=month.start(),
        end=month.end(),
        building=influxql.Ident("building"),
        household=influxql.Ident("household"),
        kind=influxql.Ident("kind"),
    )
    totals: Totals = {}
    for series in client.query(query, database=database):
        tags = series.get("tags") or {}
        value = series["values"][0][1]
        if value is None:
            continue
        key = (tags.get("building", ""), tags.get("household", ""))
        totals.setdefault(key, {})[tags.get("kind", "")] = float(value)
    return totals


def community(totals: Totals) -> Community:
    """The quarter in one month: every series (building-level ones too) summed by kind.

    Self-sufficiency: the part of the quarter's use (import + PV - export) that its PV covered;
    PV share: the part of the PV generated that was used in the quarter instead of exported.
    """
    by_kind: dict[str, float] = {}
    for kinds in totals.values():
        for kind, value in kinds.items():
            by_kind[kind] = by_kind.get(kind, 0.0) + value
    grid, pv, export = (by_kind.get(k, 0.0) for k in ("import", "pv", "export"))
    used_pv = max(pv - export, 0.0)
    use = grid + used_pv
    households = sum(1 for (_, household), kinds in totals.items() if household and "import" in kinds)
    return Community(
        households=households,
        import_kwh=grid,
        pv_kwh=pv,
        self_sufficiency=used_pv / use if pv > 0 and use > 0 else None,
        pv_share=used_pv / pv if pv > 0 else None,
    )


def median_import(totals: Totals) -> float | None:
    """The median household's grid import; None with fewer than five households measured."""
    imports = [kinds["import"] for (_, household), kinds in totals.items() if household and "import" in kinds]
    if len(imports) < MIN_HOUSEHOLDS_FOR_MEDIAN:
        return None
    return statistics.median(imports)


def letter_figures(
    recipients: Sequence[Recipient], month: Month, by_month: Mapping[Month, Totals]
) -> list[LetterFigures]:
    """Each recipient's figures; ``by_month`` holds :func:`month_totals` of the twelve months to ``month``."""
    current = by_month.get(month, {})
    previous = by_month.get(month.shift(-1), {})
    quarter = community(current) if current else None
    median = median_import(current)
    out = []
    for recipient in recipients:
        history = [
            (shown, by_month.get(shown, {}).get(recipient.key, {}).get("import"))
            for shown in month.last_twelve()
        ]
        out.append(
            LetterFigures(
                household=recipient.household,
                address=recipient.address,
                month=month,
                kwh=dict(current.get(recipient.key, {})),
                history=history,
                previous_import=previous.get(recipient.key, {}).get("import"),
                median_import=median,
                community=quarter,
            )
        )
    return out


def read_totals(client: InfluxV1, database: str, month: Month) -> dict[Month, Totals]:
    """:func:`month_totals` of the twelve months ending with ``month``."""
    return {shown: month_totals(client, database, shown) for shown in month.last_twelve()}
