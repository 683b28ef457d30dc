"""The technicians' list of devices that report but are not registered, per gateway.

Read from the ingester's quarantine (read-only, as the commissioning check does): pending entries with
the reason ``unknown_device`` (a profile decodes them, the registry does not know the device: grouped by
the device's key, with the decoded values of its newest message), ``announcement`` (the devices an
announcement names, :mod:`ingest.discovery.announcements`) and ``no_profile`` (no profile decodes the topic:
listed per topic, not registrable until a profile exists). Devices the registry knows are left out, so a
device disappears from the list as soon as it is registered (its entries are replayed by the ingester at
its next registry refresh). Decoding uses the ingester's decoder without enrichment; the work is bounded
(``limit`` devices and topics, one message decoded per device).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.decode import MessageDecoder
from ingest.discovery.announcements import gateway_and_rest, parse
from ingest.quarantine import DeviceKey, Quarantine, QuarantineRecord
from ingest.readings import DecodeRejected
from ingest.registry.models import Building, Device, Gateway, Household

LIMIT = 500
EXCERPT = 160  # characters of a payload shown for a topic no profile decodes
# a reading's device time may be this much before the first receive time and still count as first contact
CLOCK_SLACK = dt.timedelta(days=1)


def _time(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)


@dataclass
class DiscoveredDevice:
    gateway: str
    native_id: str
    profile: str | None  # the profile that decodes its messages (or the announcement's guess)
    first_seen: dt.datetime
    last_seen: dt.datetime
    messages: int  # pending quarantine entries (data messages and announcements)
    topic: str = ""  # of the newest data message, without the topic prefix
    values: list[dict[str, Any]] = field(default_factory=list)  # its readings: measurement, time, fields
    problem: str | None = None  # why the newest message does not decode (when it does not)
    announced: dict[str, str] = field(default_factory=dict)  # model, firmware, address, mac, name
    sources: list[str] = field(default_factory=list)  # unknown_device, announcement


@dataclass
class UnknownTopic:
    topic: str  # without the topic prefix
    messages: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    excerpt: str  # the newest payload's beginning, as text
    detail: str  # why no profile took it


@dataclass
class HouseholdChoice:
    id: int
    name: str
    building: str


@dataclass
class GatewayDiscovery:
    gateway: str
    gateway_id: int | None  # None: the gateway itself is not registered
    gateway_active: bool
    building: str | None
    building_id: int | None
    households: list[HouseholdChoice] = field(default_factory=list)  # of its building, else all
    devices: list[DiscoveredDevice] = field(default_factory=list)
    unknown_topics: list[UnknownTopic] = field(default_factory=list)


def _values(
    decoder: MessageDecoder, record: QuarantineRecord
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(readings as dicts, profile, problem) of one quarantined message, decoded without enrichment."""
    try:
        readings = decoder.decode(record.topic, record.payload, record.received_ns)
    except DecodeRejected as exc:
        return [], exc.profile or record.profile, f"{exc.reason}: {exc.detail}"
    values = [
        {
            "measurement": r.measurement,
            "time": _time(r.time_ns),
            "fields": dict(r.fields),
            "tags": {k: v for k, v in r.tags.items() if k not in ("gateway", "device", "profile")},
        }
        for r in readings
    ]
    profile = readings[0].tags.get("profile") if readings else record.profile
    return values, profile, None


def _local(topic: str, prefix: str) -> str:
    return topic[len(prefix) :] if topic.startswith(prefix) else topic


def _text_excerpt(payload: bytes) -> str:
    text = payload[: EXCERPT * 4].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "·" for c in text)
    return text[:EXCERPT] + ("…" if len(text) > EXCERPT or len(payload) > EXCERPT * 4 else "")


def _from_quarantine(
    quarantine: Quarantine, decoder: MessageDecoder, limit: int
) -> tuple[dict[DeviceKey, DiscoveredDevice], dict[str, list[UnknownTopic]]]:
    prefix = decoder.topic_prefix
    devices: dict[DeviceKey, DiscoveredDevice] = {}
    for summary in quarantine.pending_by_device(["unknown_device"], limit=limit):
        newest = quarantine.get(summary.newest_id)
        if newest is None:
            continue
        values, profile, problem = _values(decoder, newest)
        devices[(summary.gateway, summary.device)] = DiscoveredDevice(
            gateway=summary.gateway,
            native_id=summary.device,
            profile=profile,
            first_seen=_time(summary.first_ns),
            last_seen=_time(summary.last_ns),
            messages=summary.messages,
            topic=_local(newest.topic, prefix),
            values=values,
            problem=problem,
            sources=["unknown_device"],
        )
    for topic in quarantine.pending_by_topic("announcement", limit=limit):
        place = gateway_and_rest(topic.topic, prefix)
        newest = quarantine.get(topic.newest_id)
        if place is None or newest is None:
            continue
        try:
            announced = parse(place[1], newest.payload)
        except DecodeRejected:
            continue
        for item in announced:
            key = (place[0], item.native_id)
            found = devices.get(key)
            if found is None:
                if len(devices) >= limit:
                    break
                found = devices[key] = DiscoveredDevice(
                    gateway=place[0],
                    native_id=item.native_id,
                    profile=item.profile,
                    first_seen=_time(topic.first_ns),
                    last_seen=_time(topic.last_ns),
                    messages=0,
                )
            else:
                found.first_seen = min(found.first_seen, _time(topic.first_ns))
                found.last_seen = max(found.last_seen, _time(topic.last_ns))
                found.profile = found.profile or item.profile
            found.messages += topic.messages
            found.announced = item.details()
            if "announcement" not in found.sources:
                found.sources.append("announcement")
    unknown: dict[str, list[UnknownTopic]] = {}
    for topic in quarantine.pending_by_topic("no_profile", limit=limit):
        place = gateway_and_rest(topic.topic, prefix)
        newest = quarantine.get(topic.newest_id)
        if place is None or newest is None:
            continue
        unknown.setdefault(place[0], []).append(
            UnknownTopic(
                topic=_local(topic.topic, prefix),
                messages=topic.messages,
                first_seen=_time(topic.first_ns),
                last_seen=_time(topic.last_ns),
                excerpt=_text_excerpt(newest.payload),
                detail=newest.detail[:300],
            )
        )
    return devices, unknown


def _households(session: Session, building_id: int | None) -> list[HouseholdChoice]:
    statement = select(Household.id, Household.name, Building.name).join(
        Building, Building.id == Household.building_id
    )
    if building_id is not None:
        statement = statement.where(Household.building_id == building_id)
    rows = session.execute(statement.order_by(Building.name, Household.name).limit(2000))
    return [HouseholdChoice(id=id_, name=name, building=building) for id_, name, building in rows]


def discover(
    quarantine_path: Path | None, session: Session, decoder: MessageDecoder, *, limit: int = LIMIT
) -> list[GatewayDiscovery]:
    """Unregistered devices and unknown topics per gateway, gateways by name, devices newest first.

    Raises :class:`ingest.quarantine.QuarantineError` when the quarantine exists but cannot be read.
    """
    if quarantine_path is None or not quarantine_path.exists():
        return []
    with Quarantine(quarantine_path, read_only=True) as quarantine:
        devices, unknown = _from_quarantine(quarantine, decoder, limit)
    registered = {
        (name, native)
        for name, native in session.execute(select(Gateway.name, Device.native_id).join(Device.gateway))
    }
    names = {key[0] for key in devices if key not in registered} | set(unknown)
    gateways = {g.name: g for g in session.scalars(select(Gateway).where(Gateway.name.in_(names)))}
    buildings = {
        b.id: b.name
        for b in session.scalars(
            select(Building).where(
                Building.id.in_({g.building_id for g in gateways.values() if g.building_id})
            )
        )
    }
    result: dict[str, GatewayDiscovery] = {}
    households: dict[int | None, list[HouseholdChoice]] = {}

    def entry(name: str) -> GatewayDiscovery:
        found = result.get(name)
        if found is None:
            gateway = gateways.get(name)
            building_id = gateway.building_id if gateway is not None else None
            if gateway is not None and building_id not in households:
                households[building_id] = _households(session, building_id)
            found = result[name] = GatewayDiscovery(
                gateway=name,
                gateway_id=gateway.id if gateway is not None else None,
                gateway_active=gateway is not None and gateway.status.value == "active",
                building=buildings.get(building_id) if building_id is not None else None,
                building_id=building_id,
                households=households.get(building_id, []) if gateway is not None else [],
            )
        return found

    for key, device in sorted(devices.items(), key=lambda item: item[1].last_seen, reverse=True):
        if key not in registered:
            entry(key[0]).devices.append(device)
    for name, topics in unknown.items():
        entry(name).unknown_topics.extend(topics)
    return [result[name] for name in sorted(result)]


def first_contact(
    quarantine_path: Path | None, key: DeviceKey, decoder: MessageDecoder
) -> dt.datetime | None:
    """When the device was first heard: the earliest receive time of its pending entries, or the time of
    the readings of its oldest message when its clock puts them a little earlier (up to CLOCK_SLACK),
    so that an assignment from then covers every replayed reading. None when the quarantine has none."""
    if quarantine_path is None or not quarantine_path.exists():
        return None
    with Quarantine(quarantine_path, read_only=True) as quarantine:
        summaries = quarantine.pending_by_device(["unknown_device", "announcement"], key=key)
        if not summaries:
            return None
        first_ns = summaries[0].first_ns
        oldest = quarantine.pending_of_device(key, reasons=["unknown_device"], limit=1)
    if oldest:
        try:
            readings = decoder.decode(oldest[0].topic, oldest[0].payload, oldest[0].received_ns)
        except DecodeRejected:
            readings = []
        earliest = min((r.time_ns for r in readings), default=first_ns)
        if first_ns - CLOCK_SLACK // dt.timedelta(microseconds=1) * 1000 <= earliest < first_ns:
            first_ns = earliest
    return _time(first_ns)
