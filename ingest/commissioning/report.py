"""The commissioning verdict: one observed message (or none) → a JSON report with pass/fail and reasons.

Pure: no I/O. The verdict comes from the same :class:`MessageDecoder` the ingester uses, so a device that
passes here is decoded the same way in production. For the per-field table the registered profile also
decodes the payload without the plausibility stage, so an implausible message still shows every value.

The report (a JSON object, stored on the device and in its history)::

    passed       bool
    outcome      "passed" | "failed" | "no_message" | "error"
    reasons      [{code, message}]     why it failed (empty when passed)
    warnings     [{code, message}]     worth a look, not a failure
    message      {topic, received, payload} | null
    profile      the profile that decoded it (null: none)
    readings     [{measurement, time, time_source, tags, fields}]
    plausibility [{measurement, field, value, min, max, ok}]
    clock        {time_source, offset_s, limit_s, ok} | null
    signal       {rssi_dbm?, link_quality?} | null
    battery      {battery_pct?, battery_v?} | null
    quarantine   [{id, topic, reason, detail, received, during_check}]
    topics       the topic filters listened on (a check that heard nothing: outcome "no_message")
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ingest.decode import MessageDecoder
from ingest.decoders import DecodeInput
from ingest.readings import REASONS, DecodeRejected, NotThisProfile, Reading

SIGNAL_FIELDS = ("rssi_dbm", "link_quality")
BATTERY_FIELDS = ("battery_pct", "battery_v")
PAYLOAD_PREVIEW = 400


@dataclass(frozen=True, slots=True)
class Target:
    """The device under check, as its messages name it."""

    device_id: int
    gateway: str
    native_id: str
    profile_id: str


@dataclass(frozen=True, slots=True)
class Observed:
    topic: str
    payload: bytes
    received_ns: int


@dataclass(frozen=True, slots=True)
class QuarantineHit:
    id: int
    topic: str
    reason: str
    detail: str
    received_ns: int


@dataclass(frozen=True, slots=True)
class Limits:
    max_clock_offset_s: float = 300.0


@dataclass
class _Verdict:
    reasons: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def fail(self, code: str, message: str) -> None:
        self.reasons.append({"code": code, "message": message})

    def warn(self, code: str, message: str) -> None:
        self.warnings.append({"code": code, "message": message})


def iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


def _preview(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + payload[: PAYLOAD_PREVIEW // 2].hex()
    return text if len(text) <= PAYLOAD_PREVIEW else text[:PAYLOAD_PREVIEW] + "…"


def _reading_json(reading: Reading) -> dict[str, Any]:
    return {
        "measurement": reading.measurement,
        "time": iso(reading.time_ns),
        "time_source": reading.time_source,
        "tags": dict(reading.tags),
        "fields": dict(reading.fields),
    }


def _raw_readings(decoder: MessageDecoder, target: Target, topic: str, message: Observed) -> list[Reading]:
    """The registered profile's readings before the plausibility stage ([] when it cannot decode)."""
    profile = decoder.profiles.by_id.get(target.profile_id)
    if profile is None:
        return []
    for template in profile.templates:
        bindings = template.match(topic)
        if bindings is None:
            continue
        try:
            return profile.decode(DecodeInput(topic, message.payload, bindings, message.received_ns))
        except DecodeRejected:
            return []
    return []


def _plausibility(decoder: MessageDecoder, profile_id: str, readings: list[Reading]) -> list[dict[str, Any]]:
    profile = decoder.profiles.by_id.get(profile_id)
    ranges = profile.profile.plausibility if profile is not None else {}
    rows = []
    for reading in readings:
        for name, value in reading.fields.items():
            if name == "implausible" or isinstance(value, bool | str):
                continue
            bounds = ranges.get(f"{reading.measurement}.{name}")
            low = bounds.min if bounds is not None else None
            high = bounds.max if bounds is not None else None
            ok = (low is None or value >= low) and (high is None or value <= high)
            rows.append(
                {"measurement": reading.measurement, "field": name, "value": value, "min": low, "max": high}
                | {"ok": ok}
            )
    return rows


def _clock(readings: list[Reading], received_ns: int, limits: Limits, verdict: _Verdict) -> dict[str, Any]:
    device_times = [r.time_ns for r in readings if r.time_source == "device"]
    if not device_times:
        verdict.warn(
            "no_device_time",
            "the device sent no usable time (none, or a clock not set): the receive time is used",
        )
        return {"time_source": "received", "offset_s": None, "limit_s": limits.max_clock_offset_s, "ok": True}
    offset_s = max((t - received_ns for t in device_times), key=abs) / 1e9
    ok = abs(offset_s) <= limits.max_clock_offset_s
    if not ok:
        verdict.fail(
            "clock_offset",
            f"the device clock is {offset_s:+.0f} s off (limit ±{limits.max_clock_offset_s:.0f} s)",
        )
    return {
        "time_source": "device",
        "offset_s": round(offset_s, 3),
        "limit_s": limits.max_clock_offset_s,
        "ok": ok,
    }


def _health(readings: list[Reading], names: tuple[str, ...]) -> dict[str, Any] | None:
    found = {
        name: reading.fields[name]
        for reading in readings
        if reading.measurement == "device_health"
        for name in names
        if name in reading.fields
    }
    return found or None


def _quarantine(hits: list[QuarantineHit], started_ns: int, verdict: _Verdict) -> list[dict[str, Any]]:
    rows = []
    for hit in hits:
        rows.append(
            {
                "id": hit.id,
                "topic": hit.topic,
                "reason": hit.reason,
                "detail": hit.detail,
                "received": iso(hit.received_ns),
                "during_check": hit.received_ns >= started_ns,
            }
        )
    during = [hit for hit in hits if hit.received_ns >= started_ns]
    earlier = len(hits) - len(during)
    if during:
        reasons = ", ".join(sorted({hit.reason for hit in during}))
        verdict.fail("quarantined", f"{len(during)} message(s) of this device quarantined now: {reasons}")
    if earlier:
        verdict.warn("quarantine_pending", f"{earlier} earlier message(s) of this device wait in quarantine")
    return rows


def _result(verdict: _Verdict, outcome: str, **parts: Any) -> dict[str, Any]:
    passed = outcome == "passed" and not verdict.reasons
    report: dict[str, Any] = {
        "passed": passed,
        "outcome": "passed" if passed else ("failed" if outcome == "passed" else outcome),
        "reasons": verdict.reasons,
        "warnings": verdict.warnings,
        "message": None,
        "profile": None,
        "readings": [],
        "plausibility": [],
        "clock": None,
        "signal": None,
        "battery": None,
        "quarantine": [],
    }
    report.update(parts)
    return report


def no_message(
    timeout_s: float, *, hits: list[QuarantineHit], started_ns: int, topics: list[str]
) -> dict[str, Any]:
    """The report of a check that heard nothing from the device in time."""
    verdict = _Verdict()
    verdict.fail("no_message", f"no message on {', '.join(topics)} within {timeout_s:.0f} s")
    quarantine = _quarantine(hits, started_ns, verdict)
    return _result(verdict, "no_message", quarantine=quarantine, topics=list(topics))


def error(code: str, message: str) -> dict[str, Any]:
    """The report of a check that could not run (broker unreachable, profile missing, ...)."""
    verdict = _Verdict()
    verdict.fail(code, message)
    return _result(verdict, "error")


def evaluate(
    decoder: MessageDecoder,
    target: Target,
    message: Observed,
    *,
    hits: list[QuarantineHit],
    started_ns: int,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Decode ``message`` as the ingester would and judge it (see the module docstring for the shape)."""
    limits = limits or Limits()
    verdict = _Verdict()
    topic = message.topic.removeprefix(decoder.topic_prefix)
    raw = _raw_readings(decoder, target, topic, message)
    profile: str | None = None
    readings: list[Reading] = []
    try:
        readings = decoder.decode(message.topic, message.payload, message.received_ns)
    except NotThisProfile as exc:
        verdict.fail("no_profile", exc.detail)
    except DecodeRejected as exc:
        profile = exc.profile
        verdict.fail(exc.reason, f"{REASONS.get(exc.reason, exc.reason)}: {exc.detail}")
    if readings:
        profile = readings[0].tags.get("profile")
        if profile != target.profile_id:
            verdict.fail(
                "profile_mismatch",
                f"decoded by profile {profile}, but the device is registered as {target.profile_id}",
            )
    shown = readings or raw
    plausibility = _plausibility(decoder, target.profile_id, shown)
    flagged = [row for row in plausibility if not row["ok"]]
    if flagged and not any(r["code"] == "implausible_value" for r in verdict.reasons):
        names = ", ".join(f"{row['measurement']}.{row['field']}={row['value']}" for row in flagged)
        verdict.fail("implausible_value", f"outside the profile's range: {names}")
    parts: dict[str, Any] = {
        "message": {
            "topic": message.topic,
            "received": iso(message.received_ns),
            "payload": _preview(message.payload),
        },
        "profile": profile,
        "readings": [_reading_json(r) for r in shown],
        "plausibility": plausibility,
        "clock": _clock(shown, message.received_ns, limits, verdict) if shown else None,
        "signal": _health(shown, SIGNAL_FIELDS),
        "battery": _health(shown, BATTERY_FIELDS),
    }
    parts["quarantine"] = _quarantine(hits, started_ns, verdict)
    return _result(verdict, "passed", **parts)
