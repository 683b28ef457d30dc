"""Payloads exactly as the devices send them, one encoder per device family (see device_profiles/).

Meter encoders return the payload and the counters as the profile decodes them (kWh after the device's
rounding), so the ground truth holds what InfluxDB will hold.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import orjson

from ingest.checksums import crc16_arc
from simulators import smlframe as sml

BERLIN = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True, slots=True)
class MeterState:
    time_s: int  # the device's clock (UTC epoch seconds), skew included
    import_wh: float
    export_wh: float
    power_w: float  # signed: + import, - export
    phases: tuple[float, float, float]  # share of the power per phase, summing to 1
    voltage: float
    serial: str


def _local(time_s: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_s, BERLIN)


def _phase_values(state: MeterState) -> tuple[list[float], list[float]]:
    powers = [round(state.power_w * share, 1) for share in state.phases]
    currents = [round(abs(p) / state.voltage, 3) for p in powers]
    return powers, currents


def tasmota_sml(state: MeterState) -> tuple[bytes, float, float]:
    """tele/<dev>/SENSOR of a Tasmota SML read head (local time without zone, kWh with 4 decimals)."""
    imported, exported = round(state.import_wh / 1000, 4), round(state.export_wh / 1000, 4)
    document = {
        "Time": _local(state.time_s).strftime("%Y-%m-%dT%H:%M:%S"),
        "SML": {
            "Total_in": imported,
            "Total_out": exported,
            "Power_curr": round(state.power_w),
            "Meter_Id": state.serial,
        },
    }
    return orjson.dumps(document), imported, exported


def shelly_pro3em(device: str, state: MeterState) -> tuple[bytes, float, float]:
    """NotifyStatus over events/rpc with em:0 (per phase) and emdata:0 (totals in Wh)."""
    powers, currents = _phase_values(state)
    em: dict[str, object] = {"id": 0}
    data: dict[str, object] = {"id": 0}
    for letter, power, current in zip("abc", powers, currents, strict=True):
        em.update(
            {
                f"{letter}_current": current,
                f"{letter}_voltage": state.voltage,
                f"{letter}_act_power": power,
                f"{letter}_aprt_power": round(abs(power) * 1.02, 1),
                f"{letter}_pf": 0.98,
                f"{letter}_freq": 50.0,
            }
        )
    total_act, total_ret = round(state.import_wh, 2), round(state.export_wh, 2)
    em.update({"n_current": None, "total_current": round(sum(currents), 3)})
    em.update({"total_act_power": round(sum(powers), 1), "user_calibrated_phase": []})
    data.update({"total_act": total_act, "total_act_ret": total_ret})
    document = {
        "src": device,
        "dst": f"{device}/events",
        "method": "NotifyStatus",
        "params": {"ts": float(state.time_s), "em:0": em, "emdata:0": data},
    }
    return orjson.dumps(document), total_act * 0.001, total_ret * 0.001


def sml_frame(state: MeterState) -> tuple[bytes, float, float]:
    """A binary SML transport frame of an eHZ: 1.8.0/2.8.0 in 0.1 Wh, signed 16.7.0, SML timestamp."""
    imported, exported = round(state.import_wh * 10), round(state.export_wh * 10)
    entries = [
        sml.Entry("0100000009ff", sml.octets(bytes.fromhex(state.serial))),
        sml.Entry("0100010800ff", sml.unsigned(imported, 5), unit=30, scaler=-1),
        sml.Entry("0100020800ff", sml.unsigned(exported, 5), unit=30, scaler=-1),
        sml.Entry("0100100700ff", sml.signed(round(state.power_w), 4), unit=27, scaler=0),
        sml.Entry("0100200700ff", sml.unsigned(round(state.voltage * 10), 2), unit=35, scaler=-1),
    ]
    body = sml.sml_file(bytes.fromhex(state.serial), entries, sensor_time=sml.timestamp(state.time_s))
    return sml.transport(body), imported / 10 * 0.001, exported / 10 * 0.001


def dsmr_telegram(
    state: MeterState, tariffs: tuple[float, float, float, float]
) -> tuple[bytes, float, float]:
    """A DSMR 5 P1 telegram: two tariff registers each way (Wh resolution), CRC16 after the '!'."""
    local = _local(state.time_s)
    season = "S" if local.dst() else "W"
    imp1, imp2, exp1, exp2 = (round(wh / 1000, 3) for wh in tariffs)
    powers, currents = _phase_values(state)
    lines = [
        "/ISK5\\2M550T-1012",
        "",
        "1-3:0.2.8(50)",
        f"0-0:1.0.0({local:%y%m%d%H%M%S}{season})",
        f"0-0:96.1.1({state.serial.upper()})",
        f"1-0:1.8.1({imp1:010.3f}*kWh)",
        f"1-0:1.8.2({imp2:010.3f}*kWh)",
        f"1-0:2.8.1({exp1:010.3f}*kWh)",
        f"1-0:2.8.2({exp2:010.3f}*kWh)",
        "0-0:96.14.0(0001)",
        f"1-0:1.7.0({max(state.power_w, 0) / 1000:06.3f}*kW)",
        f"1-0:2.7.0({max(-state.power_w, 0) / 1000:06.3f}*kW)",
        f"1-0:32.7.0({state.voltage:05.1f}*V)",
        *(f"1-0:{c}.7.0({a:03.0f}*A)" for c, a in zip((31, 51, 71), currents, strict=True)),
        *(f"1-0:{c}.7.0({max(p, 0) / 1000:06.3f}*kW)" for c, p in zip((21, 41, 61), powers, strict=True)),
        *(f"1-0:{c}.7.0({max(-p, 0) / 1000:06.3f}*kW)" for c, p in zip((22, 42, 62), powers, strict=True)),
    ]
    body = ("\r\n".join(lines) + "\r\n!").encode("ascii")
    payload = body + f"{crc16_arc(body):04X}\r\n".encode("ascii")
    return payload, imp1 + imp2, exp1 + exp2


def pv_json(time_s: int, power_w: float, energy_wh: float) -> bytes:
    """An inverter's gateway script, generic-json: epoch ms, pv_power_w, pv_energy_wh."""
    return orjson.dumps(
        {"ts": time_s * 1000, "pv_power_w": round(power_w, 1), "pv_energy_wh": round(energy_wh, 1)}
    )


def shelly_proem(device: str, time_s: int, power_w: float, energy_wh: float, voltage: float) -> bytes:
    """The EV charger circuit on a Shelly Pro EM: NotifyStatus with em1:0 and em1data:0 (Wh)."""
    current = round(power_w / voltage, 3)
    em1: dict[str, object] = {"id": 0, "current": current, "voltage": voltage, "act_power": round(power_w, 1)}
    em1.update({"aprt_power": round(power_w * 1.01, 1), "pf": 0.99, "freq": 50.0, "calibration": "factory"})
    data = {"id": 0, "total_act_energy": round(energy_wh, 2), "total_act_ret_energy": 0}
    params = {"ts": float(time_s), "em1:0": em1, "em1data:0": data}
    return orjson.dumps(
        {"src": device, "dst": f"{device}/events", "method": "NotifyStatus", "params": params}
    )


def heat_json(time_s: int, energy_wh: float, power_w: float, flow_c: float, return_c: float) -> bytes:
    """A heat meter read over M-Bus by the gateway's script, generic-json: epoch ms, Wh, W, °C."""
    return orjson.dumps(
        {
            "ts": time_s * 1000,
            "heat_energy_wh": round(energy_wh),
            "heat_power_w": round(power_w),
            "heat_flow_temp_c": round(flow_c, 1),
            "heat_return_temp_c": round(return_c, 1),
        }
    )


def zigbee_climate(time_s: int, temperature: float, humidity: float, co2: float, battery: int) -> bytes:
    """zigbee2mqtt state of a temperature/humidity/CO2 sensor, last_seen ISO 8601 with offset."""
    document = {
        "battery": battery,
        "co2": round(co2),
        "humidity": round(humidity, 1),
        "linkquality": 120 + battery % 40,
        "temperature": round(temperature, 2),
        "voltage": 2900 + battery * 3,
        "last_seen": _local(time_s).isoformat(),
    }
    return orjson.dumps(document)


def ttn_uplink(
    device: str, dev_eui: str, time_s: int, counter: int, values: dict[str, float], rssi: int
) -> bytes:
    """A The Things Stack v3 uplink with the application's decoded payload."""
    received = dt.datetime.fromtimestamp(time_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    raw = base64.b64encode(int(values["temperature"] * 10 + 400).to_bytes(2, "big")).decode()
    uplink = {
        "session_key_id": "AYz=",
        "f_port": 2,
        "f_cnt": counter,
        "frm_payload": raw,
        "decoded_payload": values,
        "rx_metadata": [
            {"gateway_ids": {"gateway_id": "lorawan-gw-1"}, "rssi": rssi, "channel_rssi": rssi, "snr": 7.25}
        ],
        "received_at": received,
    }
    document = {
        "end_device_ids": {
            "device_id": device,
            "application_ids": {"application_id": "street-sensors"},
            "dev_eui": dev_eui,
        },
        "received_at": received,
        "uplink_message": uplink,
    }
    return orjson.dumps(document)


def malformed(payload: bytes, family: str, salt: int) -> bytes:
    """The same message broken the way transmissions break: a flipped bit in binary frames and telegrams
    (checksum mismatch), or cut-off JSON."""
    if family in ("sml", "dsmr"):
        data = bytearray(payload)
        index = 40 + salt % max(len(data) // 2, 1)
        data[index] ^= 0x04
        return bytes(data)
    return payload[: max(1, len(payload) // 2)]
