"""OBIS codes (IEC 62056-61) shared by the meter decoders (sml, dsmr, obis-json).

A code ``A-B:C.D.E*F`` names a quantity: A the medium (1 electricity), B the channel, C.D.E what is
measured, F the billing period (255 or absent: the current value). The electricity quantities the
canonical schema stores are keyed here by ``C.D.E``; every decoder converts a value into the unit
:func:`target_unit` names and hands the collected values to :func:`electricity_fields`, which sums
tariff registers and nets import against export power.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, NamedTuple

from pydantic import AfterValidator

from ingest.canonical import conversion_factor
from ingest.readings import FieldValue

_CODE = re.compile(r"(?:(\d{1,3})-(\d{1,3}):)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[*.](\d{1,3}))?")

# C.D.E -> canonical field, for values the meter states directly
_DIRECT = {
    "16.7.0": "power_w",
    "36.7.0": "power_l1_w",
    "56.7.0": "power_l2_w",
    "76.7.0": "power_l3_w",
    "32.7.0": "voltage_l1_v",
    "52.7.0": "voltage_l2_v",
    "72.7.0": "voltage_l3_v",
    "31.7.0": "current_l1_a",
    "51.7.0": "current_l2_a",
    "71.7.0": "current_l3_a",
    "14.7.0": "frequency_hz",
    "13.7.0": "power_factor",
}
# net power from an import (+P) and an export (-P) register, where the meter gives no signed total
_NET_POWER = {
    "power_w": ("1.7.0", "2.7.0"),
    "power_l1_w": ("21.7.0", "22.7.0"),
    "power_l2_w": ("41.7.0", "42.7.0"),
    "power_l3_w": ("61.7.0", "62.7.0"),
}
# the same registers as separate fields, for sources that send one value at a time (no netting possible)
SPLIT_POWER = {
    code: f"power{phase}_{direction}_w"
    for (plus, minus), phase in zip(_NET_POWER.values(), ("", "_l1", "_l2", "_l3"), strict=True)
    for code, direction in ((plus, "import"), (minus, "export"))
}
_UNIT_OF_C = {"13": "1", "14": "Hz", "31": "A", "51": "A", "71": "A", "32": "V", "52": "V", "72": "V"}
_ENERGY = {"1": "energy_import_kwh", "2": "energy_export_kwh"}
_POWER_CODES = {code for pair in _NET_POWER.values() for code in pair} | {
    code for code, name in _DIRECT.items() if name.startswith("power_") and name != "power_factor"
}


class Obis(NamedTuple):
    medium: int
    channel: int
    cde: str  # "1.8.0"
    billing: int  # F: 255 is the current value, anything else a stored billing period

    @property
    def current(self) -> bool:
        return self.billing == 255


def parse_obis(text: str) -> Obis | None:
    """``1-0:1.8.0*255``, ``1-0:1.8.0``, ``1.8.0``, ``1-0:1.8.0.255`` -> Obis; None for anything else.

    A missing ``A-B:`` means electricity (1-0). ``C.7.255`` (EasyMeter's "current value" of a power
    register) is read as ``C.7.0``.
    """
    found = _CODE.fullmatch(text.strip())
    if found is None:
        return None
    a, b, c, d, e, f = found.groups()
    if d == "7" and e == "255":
        e = "0"
    return Obis(int(a or 1), int(b or 0), f"{int(c)}.{int(d)}.{int(e)}", int(f or 255))


def obis_from_hex(octets: str) -> Obis | None:
    """The six-byte object name of SML (``0100010800ff``) as an Obis."""
    if len(octets) != 12:
        return None
    try:
        a, b, c, d, e, f = bytes.fromhex(octets)
    except ValueError:
        return None
    if d == 7 and e == 255:
        e = 0
    return Obis(a, b, f"{c}.{d}.{e}", f)


def target_unit(cde: str) -> str | None:
    """The canonical unit an electricity code's value must be converted into; None: not stored."""
    c, d, e = cde.split(".")
    if d == "8" and c in _ENERGY and e.isdigit() and int(e) <= 9:
        return "kWh"
    if cde in _POWER_CODES:
        return "W"
    if cde in _DIRECT:
        return _UNIT_OF_C.get(c)
    return None


def base_unit(cde: str) -> str | None:
    """The unit a meter counts a code in when it names none: Wh for energy, else the canonical unit."""
    target = target_unit(cde)
    return "Wh" if target == "kWh" else target


def unit_factor(cde: str, unit: str) -> float:
    """Factor into the canonical unit of ``cde``; ValueError when ``unit`` measures something else."""
    target = target_unit(cde)
    if target is None:
        raise ValueError(f"{cde} is not a stored electricity code")
    return conversion_factor(unit, target)


def check_units(units: dict[str, str]) -> dict[str, str]:
    """The ``options.units`` of dsmr and obis-json (OBIS code -> unit assumed for a value sent without
    one) as given; ValueError for a code that is not a stored electricity quantity or a unit that does
    not convert into its canonical unit."""
    for code, unit in units.items():
        obis = parse_obis(code)
        if obis is None or target_unit(obis.cde) is None:
            raise ValueError(f"{code!r} is not an electricity OBIS code this decoder stores")
        unit_factor(obis.cde, unit)  # ValueError names the units
    return units


#: the ``units`` option of dsmr and obis-json, checked by :func:`check_units`
UnitsOption = Annotated[dict[str, str], AfterValidator(check_units)]


def units_by_cde(units: Mapping[str, str]) -> dict[str, str]:
    """Checked ``options.units`` keyed by ``C.D.E`` (``1-0:1.8.0*255`` and ``1.8.0`` are one code)."""
    return {obis.cde: unit for code, unit in units.items() if (obis := parse_obis(code))}


def electricity_fields(values: Mapping[str, float]) -> dict[str, FieldValue]:
    """Canonical electricity fields from ``C.D.E`` -> value (already in :func:`target_unit`).

    Totals (``1.8.0``) win over the sum of their tariff registers (``1.8.1`` + ``1.8.2`` …); a signed
    power (``16.7.0``, ``36.7.0`` …) wins over import minus export (``1.7.0`` − ``2.7.0`` …).
    """
    fields: dict[str, FieldValue] = {}
    for c, name in _ENERGY.items():
        total = values.get(f"{c}.8.0")
        if total is None:
            tariffs = [v for k, v in values.items() if k.startswith(f"{c}.8.") and k != f"{c}.8.0"]
            total = sum(tariffs) if tariffs else None
        if total is not None:
            fields[name] = float(total)
    for cde, name in _DIRECT.items():
        if cde in values:
            fields[name] = float(values[cde])
    for name, (plus, minus) in _NET_POWER.items():
        if name not in fields and (plus in values or minus in values):
            fields[name] = float(values.get(plus, 0.0) - values.get(minus, 0.0))
    return fields
