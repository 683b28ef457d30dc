"""The simulation: every tick, the quarter's energy flows advance and each device reports in its format.

Vectorised over households (numpy); only the encoding runs per device. The meter sees the household's
net flow (load + EV − PV): its counters grow by exactly the power it reports times the interval.

Every counter (meter import/export and tariff registers, PV, EV, heat) is a function of the time and the
quarter alone (:meth:`simulators.shapes.Shapes.counters`): a simulation started later shows the counters a
simulation that never stopped would show. Only a meter swap (fault injection) changes a meter's reading:
the new meter counts from zero (an offset per household, held by the simulation, so not across a restart).
:func:`meter_counters` gives the readings at any time as the device profiles decode them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators import formats
from simulators.faults import FaultState
from simulators.quarter import STREET_APPLICATION, Household, Quarter
from simulators.shapes import EV, EXPORT, EXPORT_LOW, HEAT, IMPORT, IMPORT_LOW, PV, Shapes

METER = slice(IMPORT, EXPORT_LOW + 1)  # the meter's rows of the counters: a swap starts them from zero
assert (IMPORT, EXPORT, IMPORT_LOW, EXPORT_LOW) == (0, 1, 2, 3)


@dataclass(slots=True)
class Message:
    topic: str  # below the topic prefix: lab/{gateway}/...
    payload: bytes
    family: str  # the device profile id it is written for
    kind: str  # meter, pv, ev, heat, climate, street
    gateway: str
    household: int  # 0: not a household's device (street sensors)
    time_s: int  # the device's own timestamp
    counters: tuple[float, float] | None = None  # meter: import, export kWh as the profile decodes them
    malformed: bool = False


@dataclass(frozen=True)
class Periods:
    """Seconds between reports; each is rounded to a whole number of ticks."""

    heat: float = 300.0
    climate: float = 300.0
    street: float = 600.0


@dataclass(frozen=True)
class Flows:
    """Energy of one tick per household (Wh) and the tick's time."""

    time_s: int
    dt_s: float
    load: np.ndarray
    pv: np.ndarray
    ev: np.ndarray
    heat: np.ndarray


class Simulation:
    def __init__(
        self,
        quarter: Quarter,
        *,
        start_s: int,
        interval_s: int,
        faults: FaultState,
        periods: Periods | None = None,
        heat: bool = True,
        shapes: Shapes | None = None,
    ) -> None:
        self.quarter = quarter
        self.households = quarter.households
        self.interval_s = interval_s
        self.time_s = start_s
        self.faults = faults
        self.shapes = shapes or Shapes(quarter)
        periods = periods or Periods()
        self._every = {
            kind: max(1, round(getattr(periods, kind) / interval_s)) for kind in ("heat", "climate", "street")
        }
        self.heat_enabled = heat
        self.ticks = 0
        n = len(self.households)
        self.rng = np.random.default_rng([quarter.seed, start_s, 0x51])  # voltage, climate, street noise
        shares = np.random.default_rng([quarter.seed, 0x9A5E]).dirichlet((6.0, 6.0, 6.0), n).tolist()
        self.phases: list[tuple[float, float, float]] = [(a, b, c) for a, b, c in shares]
        self.co2 = np.full(n, 600.0)
        self.serials = [_serial(quarter, h) for h in self.households]
        self.uplinks = 0
        # the reading of a swapped meter's predecessor (subtracted: the new one counts from zero)
        self._offsets = np.zeros((4, n))
        self._counters: np.ndarray | None = None  # every counter at self.time_s, before offsets

    def _now(self) -> np.ndarray:
        if self._counters is None:
            self._counters = self.shapes.counters(self.time_s)
        return self._counters

    def _meter_wh(self) -> np.ndarray:
        """(4, households) the meters' import, export, low-tariff import, low-tariff export (Wh) now."""
        return np.asarray(self._now()[METER] - self._offsets, dtype=np.float64)

    @property
    def import_wh(self) -> np.ndarray:
        return np.asarray(self._meter_wh()[0], dtype=np.float64)

    @property
    def export_wh(self) -> np.ndarray:
        return np.asarray(self._meter_wh()[1], dtype=np.float64)

    @property
    def tariffs(self) -> np.ndarray:
        """(4, households) DSMR registers 1.8.1, 1.8.2, 2.8.1, 2.8.2 (Wh; 0 and the total without DSMR)."""
        meter = self._meter_wh()
        return np.stack([meter[2], meter[0] - meter[2], meter[3], meter[1] - meter[3]])

    @property
    def pv_wh(self) -> np.ndarray:
        return np.asarray(self._now()[PV], dtype=np.float64)

    @property
    def ev_wh(self) -> np.ndarray:
        return np.asarray(self._now()[EV], dtype=np.float64)

    @property
    def heat_wh(self) -> np.ndarray:
        return np.asarray(self._now()[HEAT], dtype=np.float64)

    def _flows(self, start: np.ndarray, end: np.ndarray) -> Flows:
        delta = end - start
        return Flows(
            time_s=self.time_s + self.interval_s,
            dt_s=float(self.interval_s),
            load=delta[IMPORT] - delta[EXPORT] - delta[EV] + delta[PV],
            pv=delta[PV],
            ev=delta[EV],
            heat=delta[HEAT],
        )

    def _due(self, kind: str) -> bool:
        """Whether devices of ``kind`` report in this tick: in the first one (a started quarter shows
        every device at once), then every period."""
        return bool((self.ticks - 1) % self._every[kind] == 0)

    def step(self) -> tuple[Flows, list[Message]]:
        """Advance one interval; the flows of the interval and the messages the devices send at its end."""
        start = self._now()
        end = self.shapes.counters(self.time_s + self.interval_s)
        flows = self._flows(start, end)
        for index in range(len(self.households)):
            if self.faults.swap_now(flows.dt_s):  # a new meter from zero, counting this interval
                self._offsets[:, index] = start[METER, index]
        self.time_s, self.ticks, self._counters = flows.time_s, self.ticks + 1, end
        local_hour = ((flows.time_s + 3600) // 3600) % 24
        net = (end[IMPORT] - start[IMPORT]) - (end[EXPORT] - start[EXPORT])
        per_hour = 3600.0 / flows.dt_s
        # per household as Python floats (cheaper to pick from than numpy scalars)
        meter = list(zip(*self._meter_wh().tolist(), strict=True))
        devices = list(zip(*end[PV : HEAT + 1].tolist(), strict=True))
        rates = (net, flows.pv, flows.ev, flows.heat)
        powers = list(zip(*(np.stack(rates) * per_hour).tolist(), strict=True))
        year = self.shapes.year_of(flows.time_s)
        slot, _ = year.slot_at(flows.time_s)
        outdoor = float(year.outdoor_c[slot])
        occupancy = year.occupancy[:, slot]
        decay = 1.0 - math.exp(-flows.dt_s / 3600.0)
        self.co2 += (420.0 + 380.0 * occupancy - self.co2) * decay
        voltage = round(float(self.rng.normal(230.5, 1.2)), 1)
        messages: list[Message] = []
        for index, household in enumerate(self.households):
            power, pv_w, ev_w, heat_w = powers[index]
            pv_wh, ev_wh, heat_wh = devices[index]
            self._meter(messages, index, household, meter[index], power, voltage)
            if household.pv_kwp:
                self._pv(messages, household, pv_w, pv_wh)
            if household.ev_kw:
                self._ev(messages, household, ev_w, ev_wh, voltage)
            if self.heat_enabled and self._due("heat"):
                self._heat(messages, household, heat_w, heat_wh, outdoor)
            if self._due("climate"):
                self._climate(messages, index, household, float(occupancy[index]), outdoor)
        if self._due("street"):
            self._street(messages, outdoor, local_hour)
        return flows, messages

    def _emit(self, out: list[Message], message: Message, device: str) -> None:
        if self.faults.is_silent(device, self.interval_s * 1.0):
            return
        if self.faults.break_it():
            message.payload = formats.malformed(message.payload, message.family, self.ticks)
            message.malformed, message.counters = True, None
        out.append(message)

    def _meter(
        self,
        out: list[Message],
        index: int,
        household: Household,
        meter: tuple[float, ...],
        power: float,
        voltage: float,
    ) -> None:
        """``meter``: import, export, low-tariff import, low-tariff export (Wh)."""
        device = household.meter_device
        imported, exported, low_in, low_out = meter
        state = formats.MeterState(
            time_s=self.time_s + self.faults.skew_s(device),
            import_wh=imported,
            export_wh=exported,
            power_w=power,
            phases=self.phases[index],
            voltage=voltage,
            serial=self.serials[index],
        )
        registers = (low_in, imported - low_in, low_out, exported - low_out)
        topic, payload, imported, exported = encode_meter(household, state, registers)
        message = Message(
            topic, payload, household.meter_family, "meter", household.gateway, household.number, state.time_s
        )
        message.counters = (imported, exported)
        self._emit(out, message, device)

    def _pv(self, out: list[Message], household: Household, power: float, energy_wh: float) -> None:
        device = household.pv_device
        stamp = self.time_s + self.faults.skew_s(device)
        payload = formats.pv_json(stamp, power, energy_wh)
        topic = f"lab/{household.gateway}/{device}/state"
        self._emit(
            out,
            Message(topic, payload, "generic-json", "pv", household.gateway, household.number, stamp),
            device,
        )

    def _ev(
        self, out: list[Message], household: Household, power: float, energy_wh: float, voltage: float
    ) -> None:
        device = household.ev_device
        stamp = self.time_s + self.faults.skew_s(device)
        payload = formats.shelly_proem(device, stamp, power, energy_wh, voltage)
        topic = f"lab/{household.gateway}/{device}/events/rpc"
        self._emit(
            out,
            Message(topic, payload, "shelly-gen2", "ev", household.gateway, household.number, stamp),
            device,
        )

    def _heat(
        self, out: list[Message], household: Household, power: float, energy_wh: float, outdoor: float
    ) -> None:
        device = household.heat_device
        stamp = self.time_s + self.faults.skew_s(device)
        flow = 30.0 + max(0.0, 15.0 - outdoor) * 1.1
        payload = formats.heat_json(stamp, energy_wh, power, flow, flow - 3.0 - power / 1500.0)
        topic = f"lab/{household.gateway}/{device}/state"
        self._emit(
            out,
            Message(topic, payload, "generic-json", "heat", household.gateway, household.number, stamp),
            device,
        )

    def _climate(
        self, out: list[Message], index: int, household: Household, persons: float, outdoor: float
    ) -> None:
        device = household.climate_device
        stamp = self.time_s + self.faults.skew_s(device)
        temperature = 20.2 + 0.3 * persons + 0.25 * max(0.0, outdoor - 18.0) + float(self.rng.normal(0, 0.15))
        humidity = 36.0 + 4.0 * persons + 0.6 * outdoor + float(self.rng.normal(0, 1.0))
        battery = max(5, 100 - (self.ticks // 2000) % 90 - index % 7)
        payload = formats.zigbee_climate(
            stamp, temperature, min(max(humidity, 20.0), 80.0), float(self.co2[index]), battery
        )
        topic = f"lab/{household.gateway}/zigbee2mqtt/{device}"
        self._emit(
            out,
            Message(topic, payload, "zigbee2mqtt", "climate", household.gateway, household.number, stamp),
            device,
        )

    def _street(self, out: list[Message], outdoor: float, local_hour: int) -> None:
        busy = 1.0 if 7 <= local_hour < 20 else 0.0
        for sensor in self.quarter.street:
            self.uplinks += 1
            pm25 = max(1.0, 9.0 + 6.0 * busy + float(self.rng.normal(0, 3)))
            values = {
                "temperature": round(outdoor + float(self.rng.normal(0, 0.3)), 1),
                "humidity": round(
                    min(99.0, max(30.0, 85.0 - 1.5 * outdoor + float(self.rng.normal(0, 3)))), 1
                ),
                "pm25": round(pm25, 1),
                "pm10": round(pm25 * 1.6, 1),
                "laeq": round(44.0 + 14.0 * busy + float(self.rng.normal(0, 2)), 1),
                "battery": round(3.65 - (self.uplinks % 50000) * 1e-6, 3),
            }
            payload = formats.ttn_uplink(
                sensor.device, sensor.dev_eui, self.time_s, self.uplinks, values, -95
            )
            topic = f"lab/{sensor.gateway}/v3/{STREET_APPLICATION}/devices/{sensor.device}/up"
            self._emit(
                out,
                Message(topic, payload, "ttn-v3", "street", sensor.gateway, 0, self.time_s),
                sensor.device,
            )


def _serial(quarter: Quarter, household: Household) -> str:
    return f"0a01454d4800{household.number:04x}{quarter.seed % 65536:04x}"


def encode_meter(
    household: Household, state: formats.MeterState, registers: tuple[float, float, float, float]
) -> tuple[str, bytes, float, float]:
    """Topic, payload and the import/export kWh the profile decodes, for the household's meter family;
    ``registers``: DSMR's 1.8.1, 1.8.2, 2.8.1, 2.8.2 in Wh (the other families ignore them)."""
    device, family = household.meter_device, household.meter_family
    prefix = f"lab/{household.gateway}/"
    if family == "tasmota-sml":
        return (f"{prefix}tele/{device}/SENSOR", *formats.tasmota_sml(state))
    if family == "shelly-gen2":
        return (f"{prefix}{device}/events/rpc", *formats.shelly_pro3em(device, state))
    if family == "sml":
        return (f"{prefix}sml/{device}", *formats.sml_frame(state))
    return (f"{prefix}dsmr/{device}", *formats.dsmr_telegram(state, registers))


def meter_counters(
    quarter: Quarter, time_s: int, shapes: Shapes | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Import and export kWh per household (in ``quarter.households`` order) that the meters show at
    ``time_s``, as their device profiles decode them (after each format's rounding).

    The ground truth for any run of the quarter without meter swaps, restarts included: the energy between
    two readings of a household's meter is ``meter_counters(t2) - meter_counters(t1)``, whenever the
    simulations that sent them were started. ``time_s`` is the simulation's time, which is the device's
    timestamp unless clock skew is injected. Pass the simulation's ``shapes`` to reuse its built years.
    """
    shapes = shapes or Shapes(quarter)
    counters = shapes.counters(time_s)
    imports, exports = np.zeros(len(quarter.households)), np.zeros(len(quarter.households))
    for index, household in enumerate(quarter.households):
        imported, exported = float(counters[IMPORT, index]), float(counters[EXPORT, index])
        low_in, low_out = float(counters[IMPORT_LOW, index]), float(counters[EXPORT_LOW, index])
        state = formats.MeterState(
            time_s, imported, exported, 0.0, (1.0, 0.0, 0.0), 230.0, _serial(quarter, household)
        )
        _, _, imports[index], exports[index] = encode_meter(
            household, state, (low_in, imported - low_in, low_out, exported - low_out)
        )
    return imports, exports
