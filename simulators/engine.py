"""The simulation: every tick, the quarter's energy flows advance and each device reports in its format.

Vectorised over households (numpy); only the encoding runs per device. The meter sees the household's
net flow (load + EV − PV): its counters grow by exactly the power it reports times the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators import formats
from simulators.faults import FaultState
from simulators.quarter import STREET_APPLICATION, Household, Quarter
from simulators.shapes import Shapes


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
        rng = np.random.default_rng([quarter.seed, start_s, 0x51])
        self.rng = rng
        self.import_wh = rng.uniform(2e6, 4e7, n).round(-2)
        self.export_wh = np.where([h.pv_kwp > 0 for h in self.households], rng.uniform(1e5, 2e7, n), 0.0)
        self.tariffs = np.stack(
            [self.import_wh * 0.4, self.import_wh * 0.6, self.export_wh * 0.5, self.export_wh * 0.5]
        )
        self.pv_wh = rng.uniform(1e5, 3e7, n).round()
        self.ev_wh = rng.uniform(1e5, 1e7, n).round()
        self.heat_wh = rng.uniform(1e6, 8e7, n).round()
        self.phases = rng.dirichlet((6.0, 6.0, 6.0), n)
        self.co2 = np.full(n, 600.0)
        self.serials = [f"0a01454d4800{h.number:04x}{quarter.seed % 65536:04x}" for h in self.households]
        self.uplinks = 0

    def _flows(self) -> Flows:
        start, end = self.time_s, self.time_s + self.interval_s
        noise = np.clip(1.0 + 0.25 * self.rng.standard_normal(len(self.households)), 0.0, None)
        energy = self.shapes.energy_between
        return Flows(
            time_s=end,
            dt_s=float(self.interval_s),
            load=energy("load_cum_wh", start, end) * noise,
            pv=energy("pv_cum_wh", start, end),
            ev=energy("ev_cum_wh", start, end),
            heat=energy("heat_cum_wh", start, end),
        )

    def step(self) -> tuple[Flows, list[Message]]:
        """Advance one interval; the flows of the interval and the messages the devices send at its end."""
        flows = self._flows()
        self.time_s, self.ticks = flows.time_s, self.ticks + 1
        net = flows.load + flows.ev - flows.pv
        imported, exported = np.clip(net, 0.0, None), np.clip(-net, 0.0, None)
        local_hour = ((flows.time_s + 3600) // 3600) % 24
        low = 0 if (local_hour >= 22 or local_hour < 6) else 1  # tariff register in use
        for index in range(len(self.households)):
            if self.faults.swap_now(flows.dt_s):  # a new meter from zero, counting this interval
                self.import_wh[index] = self.export_wh[index] = 0.0
                self.tariffs[:, index] = 0.0
        self.tariffs[low] += imported
        self.tariffs[2 + low] += exported
        self.import_wh += imported
        self.export_wh += exported
        self.pv_wh += flows.pv
        self.ev_wh += flows.ev
        self.heat_wh += flows.heat
        power = net * 3600.0 / flows.dt_s
        year = self.shapes.year_of(flows.time_s)
        slot, _ = year.slot_at(flows.time_s)
        outdoor = float(year.outdoor_c[slot])
        occupancy = year.occupancy[:, slot]
        decay = 1.0 - math.exp(-flows.dt_s / 3600.0)
        self.co2 += (420.0 + 380.0 * occupancy - self.co2) * decay
        voltage = round(float(self.rng.normal(230.5, 1.2)), 1)
        messages: list[Message] = []
        for index, household in enumerate(self.households):
            self._meter(messages, index, household, float(power[index]), voltage)
            if household.pv_kwp:
                self._pv(messages, index, household, float(flows.pv[index]) * 3600.0 / flows.dt_s)
            if household.ev_kw:
                self._ev(messages, index, household, float(flows.ev[index]) * 3600.0 / flows.dt_s, voltage)
            if self.heat_enabled and self.ticks % self._every["heat"] == 0:
                self._heat(
                    messages, index, household, float(flows.heat[index]) * 3600.0 / flows.dt_s, outdoor
                )
            if self.ticks % self._every["climate"] == 0:
                self._climate(messages, index, household, float(occupancy[index]), outdoor)
        if self.ticks % self._every["street"] == 0:
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
        self, out: list[Message], index: int, household: Household, power: float, voltage: float
    ) -> None:
        device, family = household.meter_device, household.meter_family
        state = formats.MeterState(
            time_s=self.time_s + self.faults.skew_s(device),
            import_wh=float(self.import_wh[index]),
            export_wh=float(self.export_wh[index]),
            power_w=power,
            phases=(float(self.phases[index, 0]), float(self.phases[index, 1]), float(self.phases[index, 2])),
            voltage=voltage,
            serial=self.serials[index],
        )
        prefix = f"lab/{household.gateway}/"
        if family == "tasmota-sml":
            topic = f"{prefix}tele/{device}/SENSOR"
            payload, imported, exported = formats.tasmota_sml(state)
        elif family == "shelly-gen2":
            topic = f"{prefix}{device}/events/rpc"
            payload, imported, exported = formats.shelly_pro3em(device, state)
        elif family == "sml":
            topic = f"{prefix}sml/{device}"
            payload, imported, exported = formats.sml_frame(state)
        else:
            topic = f"{prefix}dsmr/{device}"
            t = self.tariffs[:, index]
            registers = (float(t[0]), float(t[1]), float(t[2]), float(t[3]))
            payload, imported, exported = formats.dsmr_telegram(state, registers)
        message = Message(topic, payload, family, "meter", household.gateway, household.number, state.time_s)
        message.counters = (imported, exported)
        self._emit(out, message, device)

    def _pv(self, out: list[Message], index: int, household: Household, power: float) -> None:
        device = household.pv_device
        stamp = self.time_s + self.faults.skew_s(device)
        payload = formats.pv_json(stamp, power, float(self.pv_wh[index]))
        topic = f"lab/{household.gateway}/{device}/state"
        self._emit(
            out,
            Message(topic, payload, "generic-json", "pv", household.gateway, household.number, stamp),
            device,
        )

    def _ev(self, out: list[Message], index: int, household: Household, power: float, voltage: float) -> None:
        device = household.ev_device
        stamp = self.time_s + self.faults.skew_s(device)
        payload = formats.shelly_proem(device, stamp, power, float(self.ev_wh[index]), voltage)
        topic = f"lab/{household.gateway}/{device}/events/rpc"
        self._emit(
            out,
            Message(topic, payload, "shelly-gen2", "ev", household.gateway, household.number, stamp),
            device,
        )

    def _heat(
        self, out: list[Message], index: int, household: Household, power: float, outdoor: float
    ) -> None:
        device = household.heat_device
        stamp = self.time_s + self.faults.skew_s(device)
        flow = 30.0 + max(0.0, 15.0 - outdoor) * 1.1
        payload = formats.heat_json(
            stamp, float(self.heat_wh[index]), power, flow, flow - 3.0 - power / 1500.0
        )
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
