"""Which raw counters the ledger reads, and which energy kind each is (the panel catalogue's Counters).

Main electricity meters are ``electricity`` series without a ``channel`` tag; sub-meters (the quarter's EV
circuits, Shelly Pro EM channels) carry one. PV and heat meters are any series of ``pv`` / ``heat``.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("import", "export", "pv", "heat", "ev")


@dataclass(frozen=True)
class Source:
    """A raw measurement and its counter fields; :meth:`kind` names the energy of one series' field."""

    measurement: str
    fields: tuple[str, ...]

    def kind(self, field: str, channel: str) -> str | None:
        """The kind of ``field`` on a series with this ``channel`` tag ("" when absent); None: not energy
        the ledger keeps (a sub-meter's export)."""
        if self.measurement == "electricity":
            if field == "energy_import_kwh":
                return "ev" if channel else "import"
            return None if channel else "export"
        return self.measurement  # pv, heat


SOURCES = (
    Source("electricity", ("energy_import_kwh", "energy_export_kwh")),
    Source("pv", ("energy_kwh",)),
    Source("heat", ("energy_kwh",)),
)
