"""The quarter: households in buildings, one gateway per building, and the devices of each household.

Deterministic for a seed. Which profile each device speaks:

| device | profile | topic under ``lab/{gateway}/`` |
|---|---|---|
| electricity meter, Tasmota SML read head | tasmota-sml | ``tele/hh-NNN-em/SENSOR`` |
| electricity meter, Shelly Pro 3EM | shelly-gen2 | ``shellypro3em-<mac>/events/rpc`` |
| electricity meter, eHZ with raw SML frames | sml | ``sml/hh-NNN-ehz`` |
| electricity meter, DSMR 5 P1 telegram | dsmr | ``dsmr/hh-NNN-p1`` |
| PV inverter (gateway script) | generic-json | ``hh-NNN-pv/state`` |
| EV charger circuit, Shelly Pro EM | shelly-gen2 | ``shellyproem50-<mac>/events/rpc`` |
| heat meter (M-Bus, read by the gateway's script) | generic-json | ``hh-NNN-heat/state`` |
| room climate (temperature, humidity, CO2) | zigbee2mqtt | ``zigbee2mqtt/hh-NNN Wohnzimmer`` |
| street environment sensor, LoRaWAN | ttn-v3 | ``v3/street-sensors@ttn/devices/env-street-NN/up`` |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METER_FAMILIES = ("tasmota-sml", "shelly-gen2", "sml", "dsmr")
BUILDING_SIZES = (1, 1, 1, 2, 2, 4, 6, 8, 10, 12)  # households per building, drawn in turn
STREET_GATEWAY = "gw-street"
STREET_APPLICATION = "street-sensors@ttn"


@dataclass(frozen=True)
class Household:
    number: int
    building: int
    gateway: str
    annual_kwh: float  # household electricity (without EV), the H0 profile is scaled to it
    meter_family: str
    meter_device: str
    pv_kwp: float  # 0: no PV
    pv_azimuth: float
    ev_kw: float  # 0: no EV charger
    heat_w_per_k: float  # heat loss coefficient of the flat
    persons: int
    shift_slots: int  # this household's rhythm against H0, in quarter hours

    @property
    def name(self) -> str:
        return f"hh-{self.number:03d}"

    @property
    def pv_device(self) -> str:
        return f"{self.name}-pv"

    @property
    def ev_device(self) -> str:
        return f"shellyproem50-{_mac(self.number, 0xE5)}"

    @property
    def heat_device(self) -> str:
        return f"hh-{self.number:03d}-heat"

    @property
    def climate_device(self) -> str:
        return f"{self.name} Wohnzimmer"


@dataclass(frozen=True)
class StreetSensor:
    device: str
    gateway: str
    dev_eui: str


@dataclass(frozen=True)
class Quarter:
    households: tuple[Household, ...]
    street: tuple[StreetSensor, ...]
    seed: int

    @property
    def gateways(self) -> list[str]:
        return sorted({h.gateway for h in self.households})

    def household(self, number: int) -> Household:
        return self.households[number - 1]


def _mac(number: int, kind: int) -> str:
    return f"c8f09e{kind:02x}{number:04x}"


def meter_device(family: str, number: int) -> str:
    if family == "tasmota-sml":
        return f"hh-{number:03d}-em"
    if family == "shelly-gen2":
        return f"shellypro3em-{_mac(number, 0x3E)}"
    if family == "sml":
        return f"hh-{number:03d}-ehz"
    if family == "dsmr":
        return f"hh-{number:03d}-p1"
    raise ValueError(f"unknown meter family {family!r}")


def make_quarter(
    households: int = 110, *, seed: int = 1, street_sensors: int = 4, building_size: int | None = None
) -> Quarter:
    """``households`` households in buildings of 1 to 12, annual consumption from a realistic spread.

    ``building_size``: every building has this many households instead (the demo's 11 houses of 10).
    """
    rng = np.random.default_rng([seed, 0x5157])
    out: list[Household] = []
    building = 0
    while len(out) < households:
        building += 1
        drawn = building_size if building_size is not None else int(rng.choice(BUILDING_SIZES))
        size = min(drawn, households - len(out))
        roof_pv = rng.random() < (0.55 if size <= 2 else 0.25)
        for _ in range(size):
            number = len(out) + 1
            persons = int(rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5)))
            # German households: ~1,500 kWh for one person up to ~5,000 kWh for five, spread +-25 %
            annual = (1000 + 800 * persons) * float(rng.lognormal(0.0, 0.22))
            family = METER_FAMILIES[int(rng.integers(len(METER_FAMILIES)))]
            has_pv = roof_pv and (size <= 2 or rng.random() < 0.5)
            out.append(
                Household(
                    number=number,
                    building=building,
                    gateway=f"gw-{building:02d}",
                    annual_kwh=round(min(max(annual, 900.0), 9000.0), 1),
                    meter_family=family,
                    meter_device=meter_device(family, number),
                    pv_kwp=round(float(rng.uniform(4.0, 10.0)) if size <= 2 else 1.5, 2) if has_pv else 0.0,
                    pv_azimuth=float(rng.choice((135.0, 180.0, 180.0, 225.0, 90.0, 270.0))),
                    ev_kw=float(rng.choice((3.7, 11.0, 11.0))) if rng.random() < 0.25 else 0.0,
                    heat_w_per_k=float(rng.uniform(60.0, 110.0)) * (1.3 if size <= 2 else 1.0),
                    persons=persons,
                    shift_slots=int(rng.integers(-3, 4)),
                )
            )
    street = tuple(
        StreetSensor(f"env-street-{n:02d}", STREET_GATEWAY, f"70B3D57ED005{n:04X}")
        for n in range(1, street_sensors + 1)
    )
    return Quarter(tuple(out), street, seed)
