"""shelly-gen2 decoder: components, Wh -> kWh, phases a/b/c, NotifyStatus deltas over the known status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.decode import MessageDecoder
from ingest.decoders import DecodeFn, DecodeInput, shelly_gen2
from ingest.decoders.shelly_gen2 import SPEC
from ingest.profiles import load_profiles
from ingest.profiles.schema import Profile
from ingest.readings import DecodeRejected, Reading
from tests.unit.decoder_contract import decoded_or_rejected, dump, values

RECEIVED = 1_764_320_401_000_000_000
TS = 1_764_320_400.25
TS_NS = 1_764_320_400_250_000_000


def _decoder(**options: Any) -> DecodeFn:
    return SPEC.build(SPEC.options.model_validate(options), "Europe/Berlin")


def _status(decode: DecodeFn, component: str, status: Any, device: str = "pro3em") -> list[Reading]:
    payload = status if isinstance(status, bytes) else json.dumps(status).encode()
    bindings = {"gateway": "gw", "device": device, "component": component}
    return decode(DecodeInput(f"lab/gw/{device}/status/{component}", payload, bindings, RECEIVED))


def _rpc(decode: DecodeFn, method: str, params: dict[str, Any], device: str = "pro3em") -> list[Reading]:
    payload = json.dumps({"src": device, "dst": f"{device}/events", "method": method, "params": params})
    bindings = {"gateway": "gw", "device": device}
    return decode(DecodeInput(f"lab/gw/{device}/events/rpc", payload.encode(), bindings, RECEIVED))


def _fields(readings: list[Reading]) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    return [(r.measurement, r.tags, r.fields) for r in readings]


@pytest.mark.parametrize(
    ("component", "status", "expected"),
    [
        (
            "em:0",
            {
                "id": 0,
                "a_act_power": "100,5",
                "b_act_power": -50,
                "c_act_power": None,
                "a_voltage": 230,
                "a_freq": None,
                "b_freq": 50,
                "total_act_power": 50.5,
            },
            (
                "electricity",
                {},
                {
                    "power_w": 50.5,
                    "power_l1_w": 100.5,
                    "power_l2_w": -50.0,
                    "voltage_l1_v": 230.0,
                    "frequency_hz": 50.0,
                },
            ),
        ),
        (
            "emdata:0",
            {"id": 0, "total_act": 5547893.44, "total_act_ret": "1234,5"},
            ("electricity", {}, {"energy_import_kwh": 5547.89344, "energy_export_kwh": 1.2345}),
        ),
        (
            "em1:1",
            {"id": 1, "act_power": 10, "voltage": 230, "current": 0.1, "pf": 0.9, "freq": 50},
            (
                "electricity",
                {"channel": "1"},
                {
                    "power_w": 10.0,
                    "voltage_l1_v": 230.0,
                    "current_l1_a": 0.1,
                    "power_factor": 0.9,
                    "frequency_hz": 50.0,
                },
            ),
        ),
        (
            "em1data:0",
            {"id": 0, "total_act_energy": 1000, "total_act_ret_energy": 0},
            ("electricity", {"channel": "0"}, {"energy_import_kwh": 1.0, "energy_export_kwh": 0.0}),
        ),
        (
            "switch:2",
            {"id": 2, "output": True, "apower": 5, "aenergy": {"total": 2500, "by_minute": [1, 2, 3]}},
            ("electricity", {"channel": "2"}, {"power_w": 5.0, "energy_import_kwh": 2.5}),
        ),
        (
            "pm1:0",
            {"id": 0, "apower": 7, "ret_aenergy": {"total": 500}},
            ("electricity", {"channel": "0"}, {"power_w": 7.0, "energy_export_kwh": 0.5}),
        ),
        (
            "wifi",
            {"sta_ip": "10.0.0.2", "status": "got ip", "rssi": -61},
            ("device_health", {}, {"rssi_dbm": -61.0}),
        ),
        ("sys", {"mac": "X", "uptime": 42, "unixtime": None}, ("device_health", {}, {"uptime_s": 42.0})),
        (
            "temperature:100",
            {"id": 100, "tC": 19.8, "tF": 67.6},
            ("environment", {"sensor": "100"}, {"temperature_c": 19.8}),
        ),
        ("humidity:0", {"id": 0, "rh": "42,2"}, ("environment", {"sensor": "0"}, {"humidity_pct": 42.2})),
        (
            "devicepower:0",
            {"id": 0, "battery": {"V": 5.4, "percent": 87}},
            ("device_health", {}, {"battery_v": 5.4, "battery_pct": 87.0}),
        ),
    ],
)
def test_status_components(
    component: str, status: dict[str, Any], expected: tuple[str, dict[str, str], dict[str, Any]]
) -> None:
    [reading] = _status(_decoder(), component, status)
    measurement, tags, fields = expected
    assert (reading.measurement, reading.tags) == (measurement, tags)
    assert reading.fields == pytest.approx(fields)
    assert all(type(v) is float for v in reading.fields.values())
    assert (reading.time_ns, reading.time_source) == (RECEIVED, "received")


def test_notify_status_deltas_overlay_the_known_status() -> None:
    decode = _decoder()
    full = {"ts": TS, "em:0": {"id": 0, "a_act_power": 100, "a_voltage": 230, "total_act_power": 100}}
    assert _fields(_rpc(decode, "NotifyFullStatus", full)) == [
        ("electricity", {}, {"power_w": 100.0, "power_l1_w": 100.0, "voltage_l1_v": 230.0})
    ]
    delta = {"ts": TS + 10, "em:0": {"id": 0, "a_act_power": -5, "total_act_power": -5}}
    [reading] = _rpc(decode, "NotifyStatus", delta)
    assert reading.fields == {"power_w": -5.0, "power_l1_w": -5.0, "voltage_l1_v": 230.0}
    assert (reading.time_ns, reading.time_source) == (TS_NS + 10_000_000_000, "device")
    # a nested delta merges into the nested status
    _status(decode, "switch:0", {"id": 0, "apower": 1, "aenergy": {"total": 1000, "minute_ts": 1}})
    [reading] = _rpc(decode, "NotifyStatus", {"ts": TS, "switch:0": {"aenergy": {"total": 2000}}})
    assert reading.fields == {"power_w": 1.0, "energy_import_kwh": 2.0}


def test_deltas_are_per_device_and_bounded() -> None:
    decode = _decoder(max_devices=1)
    _status(decode, "em:0", {"a_voltage": 230}, device="one")
    [reading] = _rpc(decode, "NotifyStatus", {"ts": TS, "em:0": {"a_act_power": 1}}, device="two")
    assert reading.fields == {"power_l1_w": 1.0}  # nothing of device one leaks into device two
    [reading] = _rpc(decode, "NotifyStatus", {"ts": TS, "em:0": {"a_act_power": 2}}, device="one")
    assert reading.fields == {"power_l1_w": 2.0}  # device one was evicted


def test_delta_without_measured_change_is_not_reported() -> None:
    decode = _decoder()
    _status(decode, "switch:0", {"id": 0, "output": True, "apower": 50})
    with pytest.raises(DecodeRejected) as caught:
        _rpc(decode, "NotifyStatus", {"ts": TS, "switch:0": {"output": False, "source": "button"}})
    assert caught.value.reason == "no_readings"


def test_a_rejected_status_does_not_become_the_known_one() -> None:
    decode = _decoder()
    _status(decode, "em:0", {"a_voltage": 230})
    with pytest.raises(DecodeRejected):
        _rpc(decode, "NotifyStatus", {"ts": TS, "em:0": {"a_voltage": "kaputt"}})
    [reading] = _rpc(decode, "NotifyStatus", {"ts": TS, "em:0": {"a_act_power": 3}})
    assert reading.fields == {"power_l1_w": 3.0, "voltage_l1_v": 230.0}


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (TS, (TS_NS, "device")),
        (1764320400250, (TS_NS, "device")),  # epoch ms
        (3.5, (RECEIVED, "received")),  # seconds since boot
        (None, (RECEIVED, "received")),
        ("2025-11-28T10:00:00.25", (TS_NS, "device")),  # local time without zone
    ],
)
def test_time_of_notifications(ts: Any, expected: tuple[int, str]) -> None:
    [reading] = _rpc(_decoder(), "NotifyFullStatus", {"ts": ts, "wifi": {"rssi": -50}})
    assert (reading.time_ns, reading.time_source) == expected


@pytest.mark.parametrize(
    ("component", "payload", "reason"),
    [
        ("cloud", b'{"connected":true}', "no_readings"),
        ("em:0", b'{"id":0}', "no_readings"),  # no values
        ("em:0", b'{"a_voltage":"x"}', "invalid_value"),
        ("em:0", b'{"a_voltage":230', "invalid_json"),
        ("em:0", b'{"a_voltage":230}\xfe', "invalid_utf8"),
        ("em:0", b"230", "invalid_payload"),
        (
            None,
            b'{"method":"NotifyEvent","params":{"ts":1,"events":[{"component":"input:0","event":"single_push"}]}}',
            "no_readings",
        ),
        (None, b'{"method":"NotifyStatus"}', "invalid_payload"),
        (None, b'{"method":"NotifyStatus","params":{"ts":1,"input:0":{"state":true}}}', "no_readings"),
    ],
)
def test_rejections(component: str | None, payload: bytes, reason: str) -> None:
    kind = f"status/{component}" if component else "events/rpc"
    bindings = {"gateway": "gw", "device": "d"} | ({"component": component} if component else {})
    message = DecodeInput(f"lab/gw/d/{kind}", payload, bindings, RECEIVED)
    with pytest.raises(DecodeRejected) as caught:
        _decoder()(message)
    assert caught.value.reason == reason


component_names = st.sampled_from(
    [
        "em:0",
        "emdata:0",
        "em1:1",
        "switch:0",
        "pm1:0",
        "wifi",
        "sys",
        "humidity:0",
        "devicepower:0",
        "em",
        "x:y:z",
        "",
    ]
)
status_keys = st.sampled_from(
    [
        "a_act_power",
        "a_voltage",
        "total_act_power",
        "total_act",
        "apower",
        "aenergy",
        "rssi",
        "uptime",
        "rh",
        "battery",
        "act_power",
    ]
)
statuses = st.dictionaries(status_keys, values, max_size=5) | values


@settings(max_examples=300)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["NotifyStatus", "NotifyFullStatus", "NotifyEvent", "status", 5]),
            st.dictionaries(component_names, statuses, max_size=3),
            values,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_only_decode_rejected_escapes(steps: list[tuple[Any, dict[str, Any], Any]]) -> None:
    decode = _decoder()
    for method, params, ts in steps:
        if method == "status":
            for component, status in params.items():
                decoded_or_rejected(_status, decode, component, dump(status))
        else:
            payload = dump({"method": method, "params": {"ts": ts, **params}})
            message = DecodeInput("lab/gw/d/events/rpc", payload, {"device": "d"}, RECEIVED)
            decoded_or_rejected(decode, message)


@pytest.mark.parametrize(
    ("key", "parsed"),
    [("switch:0", ("switch", "0")), ("em", ("em", "0")), ("switch:0\n", ("", "")), ("Switch:0", ("", ""))],
)
def test_component_keys_match_whole(key: str, parsed: tuple[str, str]) -> None:
    assert shelly_gen2._parse(key) == parsed


# --- topic prefixes of several levels (topic_prefix "home/floor1/pm"), through the shipped profile -----

PROFILES_DIR = Path(__file__).resolve().parents[2] / "device_profiles"
PROFILES = load_profiles(PROFILES_DIR)


def _through_profile(decoder: MessageDecoder, topic: str, payload: dict[str, Any]) -> list[Reading]:
    return decoder.decode(topic, json.dumps(payload).encode(), RECEIVED)


def test_the_device_is_the_whole_prefix_and_each_keeps_its_own_known_status() -> None:
    """Two Pro EMs whose prefixes end alike ("pm"): the device tag is the whole prefix, and a delta of
    one is overlaid on its own last status, not on the other's. Before: no profile matched these topics."""
    decoder = MessageDecoder(PROFILES)
    full = {"id": 0, "act_power": 100.0, "voltage": 230.0, "current": 0.5}
    for floor, power in (("floor1", 100.0), ("floor2", 200.0)):
        (reading,) = _through_profile(
            decoder, f"lab/gw/home/{floor}/pm/status/em1:0", full | {"act_power": power}
        )
        assert (reading.tags["device"], reading.fields["power_w"]) == (f"home/{floor}/pm", power)
    delta = {"method": "NotifyStatus", "params": {"ts": TS, "em1:0": {"id": 0, "current": 0.7}}}
    (reading,) = _through_profile(decoder, "lab/gw/home/floor2/pm/events/rpc", delta)
    assert reading.tags["device"] == "home/floor2/pm"
    assert reading.fields["power_w"] == 200.0  # floor2's own last status
    assert reading.fields["current_l1_a"] == 0.7


@pytest.mark.parametrize(
    "topic",
    ["lab/gw/shellies/plus1pm/status/switch:0", "lab/gw/a/b/c/status/switch:0", "lab/gw/x/status/switch:0"],
)
def test_status_topics_under_any_prefix_depth_decode(topic: str) -> None:
    status = {"id": 0, "apower": 12.5, "aenergy": {"total": 1000.0}}
    (reading,) = _through_profile(MessageDecoder(PROFILES), topic, status)
    assert reading.tags["device"] == topic.removeprefix("lab/gw/").removesuffix("/status/switch:0")
    assert reading.fields == {"power_w": 12.5, "energy_import_kwh": 1.0}


# --- only Shelly component keys: other firmwares' "status" levels stay no_profile ----------------------

FOREIGN = [
    ("lab/gw/esp-node/binary_sensor/status/state", b"ON"),  # ESPHome's "status" binary sensor
    ("lab/gw/zigbee2mqtt/living/status/lamp", b'{"temperature": 21}'),  # a z2m friendly name with "/"
    ("lab/gw/node/status/wsx", b'{"uptime": 5}'),  # a known name's prefix is no key
    ("lab/gw/node/status/switch:", b'{"apower": 5}'),
    ("lab/gw/node/status/switch:0x", b'{"apower": 5}'),
    ("lab/gw/node/status/Switch:0", b'{"apower": 5}'),
]


@pytest.mark.parametrize(("topic", "payload"), FOREIGN, ids=[t for t, _ in FOREIGN])
def test_a_status_level_that_is_no_component_key_is_no_profile(topic: str, payload: bytes) -> None:
    """Before: shelly-gen2 claimed them (invalid_json, no_readings), hiding them from the unknown topics."""
    assert PROFILES.candidates(topic) == []
    with pytest.raises(DecodeRejected) as caught:
        MessageDecoder(PROFILES).decode(topic, payload, RECEIVED)
    assert (caught.value.reason, caught.value.profile) == ("no_profile", None)


@pytest.mark.parametrize(
    ("component", "status", "fields"),
    [
        ("switch:0", {"id": 0, "apower": 5}, {"power_w": 5.0}),
        ("em1data:1", {"id": 1, "total_act_energy": 2000}, {"energy_import_kwh": 2.0}),
        ("temperature:100", {"id": 100, "tC": 21.5}, {"temperature_c": 21.5}),
        ("sys", {"uptime": 30}, {"uptime_s": 30.0}),
        ("wifi", {"rssi": -60}, {"rssi_dbm": -60.0}),
    ],
)
def test_component_keys_are_still_shellys(
    component: str, status: dict[str, Any], fields: dict[str, Any]
) -> None:
    for topic in (f"lab/gw/shelly1/status/{component}", f"lab/gw/home/floor1/pm/status/{component}"):
        (reading,) = _through_profile(MessageDecoder(PROFILES), topic, status)
        assert (reading.tags["profile"], reading.fields) == ("shelly-gen2", fields)


def test_a_component_without_measurements_is_still_claimed() -> None:
    """cloud is a Shelly component: its status is Shelly's (no_readings), not an unknown topic."""
    with pytest.raises(DecodeRejected) as caught:
        _through_profile(MessageDecoder(PROFILES), "lab/gw/shelly1/status/cloud", {"connected": True})
    assert (caught.value.reason, caught.value.profile) == ("no_readings", "shelly-gen2")


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({"nope": "component"}, "bound by none of the topics"),
        ({"device": "component"}, "spans levels"),
        ({"component": "anything"}, "Input should be 'component'"),
    ],
)
def test_topic_levels_name_a_bound_single_level_and_a_known_shape(
    levels: dict[str, str], message: str
) -> None:
    data = yaml.safe_load((PROFILES_DIR / "shelly-gen2.yaml").read_text(encoding="utf-8"))
    with pytest.raises(ValidationError, match=message):
        Profile.model_validate(data | {"topic_levels": levels})
