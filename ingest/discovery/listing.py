"""The technicians' list of devices that report but are not registered, per gateway.

Read from the ingester's quarantine (read-only, as the commissioning check does; with several ingester
instances from every instance's quarantine, merged per device and topic: :mod:`ingest.discovery.merged`;
``quarantine_path`` is always ``<state_dir>/quarantine.sqlite3``, the instances' files are found beside
it): pending entries with
the reason ``unknown_device`` (a profile decodes them, the registry does not know the device: grouped by
the device's key, with the decoded values of its newest message), ``announcement`` (the devices an
announcement names, :mod:`ingest.discovery.announcements`) and ``no_profile`` (no profile decodes the topic:
listed per topic, not registrable until a profile exists). Devices the registry knows are left out, so a
device disappears from the list as soon as it is registered (its entries are replayed by the ingester at
its next registry refresh). Decoding uses the ingester's decoder without enrichment.

Fair and bounded per gateway: each gateway lists its ``per_gateway`` most recently heard devices and topics
(one message decoded per device), and how many it has in all, counted by SQL over covering indexes. A
flood of device ids on one gateway cannot push another gateway's new device out of the list, and the
fleet page's counts (:func:`unregistered_counts`) are the true ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.decode import MessageDecoder
from ingest.discovery.announcements import Announced, gateway_and_rest, parse
from ingest.discovery.merged import QuarantineView, opened
from ingest.quarantine import DeviceKey, DeviceSummary, QuarantineRecord, TopicSummary
from ingest.readings import DecodeRejected
from ingest.registry.models import Building, Device, Gateway, Household

PER_GATEWAY = 10  # devices and topics per gateway listed by default (the page's overview)
MAX_PER_GATEWAY = 200  # the most a caller may ask for
ANNOUNCEMENT_TOPICS = 50  # announcement topics per gateway read for the devices they name
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
    devices: list[DiscoveredDevice] = field(default_factory=list)  # the newest per_gateway
    unknown_topics: list[UnknownTopic] = field(default_factory=list)  # the newest per_gateway
    devices_total: int = 0  # how many unregistered devices report through it (listed or not)
    topics_total: int = 0  # how many topics no profile decodes

    @property
    def devices_more(self) -> int:
        return max(0, self.devices_total - len(self.devices))

    @property
    def topics_more(self) -> int:
        return max(0, self.topics_total - len(self.unknown_topics))


class GatewayFinds(NamedTuple):
    devices: list[DiscoveredDevice]
    devices_total: int
    topics: list[UnknownTopic]
    topics_total: int


class UnregisteredCounts(NamedTuple):
    devices: int
    topics: int
    gateways: int


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


def _device(decoder: MessageDecoder, summary: DeviceSummary, newest: QuarantineRecord) -> DiscoveredDevice:
    values, profile, problem = _values(decoder, newest)
    return DiscoveredDevice(
        gateway=summary.gateway,
        native_id=summary.device,
        profile=profile,
        first_seen=_time(summary.first_ns),
        last_seen=_time(summary.last_ns),
        messages=summary.messages,
        topic=_local(newest.topic, decoder.topic_prefix),
        values=values,
        problem=problem,
        sources=["unknown_device"],
    )


def _announced(
    quarantine: QuarantineView, decoder: MessageDecoder, topics: list[TopicSummary], gateway: str
) -> dict[str, tuple[TopicSummary, Announced]]:
    """The devices the gateway's announcement topics name (the newest announcement of each topic)."""
    found: dict[str, tuple[TopicSummary, Announced]] = {}
    for topic in topics:
        place = gateway_and_rest(topic.topic, decoder.topic_prefix)
        newest = quarantine.get(topic.newest_id)
        if place is None or place[0] != gateway or newest is None:
            continue
        try:
            announced = parse(place[1], newest.payload)
        except DecodeRejected:
            continue
        for item in announced:
            found.setdefault(item.native_id, (topic, item))
    return found


def _from_quarantine(
    quarantine: QuarantineView,
    decoder: MessageDecoder,
    registered: set[DeviceKey],
    *,
    per_gateway: int,
    gateway: str | None,
    decode: bool = True,
) -> dict[str, GatewayFinds]:
    """Per gateway: its newest ``per_gateway`` unregistered devices and unknown topics, and how many there
    are of each (counted by SQL; announced devices that sent no data are added from the gateway's newest
    ANNOUNCEMENT_TOPICS announcement topics). ``decode`` False: only the counts are wanted."""
    lead = f"{decoder.topic_prefix}lab/"
    data = quarantine.pending_devices_per_gateway(
        "unknown_device", per_gateway=per_gateway, gateway=gateway, exclude=registered
    )
    announcements = quarantine.pending_topics_per_gateway(
        "announcement", lead=lead, per_gateway=max(per_gateway, ANNOUNCEMENT_TOPICS), gateway=gateway
    )
    unknown = quarantine.pending_topics_per_gateway(
        "no_profile", lead=lead, per_gateway=per_gateway, gateway=gateway
    )
    finds: dict[str, GatewayFinds] = {}
    for name in sorted(set(data) | set(announcements) | set(unknown)):
        page = data.get(name)
        devices: dict[str, DiscoveredDevice] = {}
        for summary in page.items if page is not None and decode else []:
            newest = quarantine.get(summary.newest_id)
            if newest is not None:
                devices[summary.device] = _device(decoder, summary, newest)
        total = page.total if page is not None else 0
        named = (
            _announced(quarantine, decoder, announcements[name].items, name) if name in announcements else {}
        )
        named = {native: v for native, v in named.items() if (name, native) not in registered}
        elsewhere = quarantine.pending_keys_among(
            "unknown_device", [(name, native) for native in named if native not in devices]
        )
        for native, (topic, item) in named.items():
            found = devices.get(native)
            if found is None:
                if (name, native) in elsewhere:  # has data messages, counted, just not among the newest
                    continue
                total += 1
                found = devices[native] = DiscoveredDevice(
                    gateway=name,
                    native_id=native,
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
        topics: list[UnknownTopic] = []
        for topic in unknown[name].items if name in unknown and decode else []:
            newest = quarantine.get(topic.newest_id)
            if newest is not None:
                topics.append(
                    UnknownTopic(
                        topic=_local(topic.topic, decoder.topic_prefix),
                        messages=topic.messages,
                        first_seen=_time(topic.first_ns),
                        last_seen=_time(topic.last_ns),
                        excerpt=_text_excerpt(newest.payload),
                        detail=newest.detail[:300],
                    )
                )
        shown = sorted(devices.values(), key=lambda d: d.last_seen, reverse=True)[:per_gateway]
        topics_total = unknown[name].total if name in unknown else 0
        if total or topics_total:
            finds[name] = GatewayFinds(shown if decode else [], total, topics, topics_total)
    return finds


def _households(session: Session, building_id: int | None) -> list[HouseholdChoice]:
    statement = select(Household.id, Household.name, Building.name).join(
        Building, Building.id == Household.building_id
    )
    if building_id is not None:
        statement = statement.where(Household.building_id == building_id)
    rows = session.execute(statement.order_by(Building.name, Household.name).limit(2000))
    return [HouseholdChoice(id=id_, name=name, building=building) for id_, name, building in rows]


def _registered(session: Session) -> set[DeviceKey]:
    return {
        (name, native)
        for name, native in session.execute(select(Gateway.name, Device.native_id).join(Device.gateway))
    }


def _finds(
    quarantine_path: Path | None,
    session: Session,
    decoder: MessageDecoder,
    *,
    per_gateway: int,
    gateway: str | None,
    decode: bool,
) -> dict[str, GatewayFinds]:
    with opened(quarantine_path) as quarantine:
        if quarantine is None:
            return {}
        registered = _registered(session)
        return _from_quarantine(
            quarantine, decoder, registered, per_gateway=per_gateway, gateway=gateway, decode=decode
        )


def unregistered_counts(
    quarantine_path: Path | None, session: Session, decoder: MessageDecoder
) -> UnregisteredCounts:
    """How many unregistered devices and unknown topics report, on how many gateways (for the fleet page:
    counted by SQL, not by the length of a list; nothing decoded).

    Raises :class:`ingest.quarantine.QuarantineError` when the quarantine exists but cannot be read.
    """
    finds = _finds(quarantine_path, session, decoder, per_gateway=0, gateway=None, decode=False)
    return UnregisteredCounts(
        devices=sum(f.devices_total for f in finds.values()),
        topics=sum(f.topics_total for f in finds.values()),
        gateways=len(finds),
    )


def discover(
    quarantine_path: Path | None,
    session: Session,
    decoder: MessageDecoder,
    *,
    per_gateway: int = PER_GATEWAY,
    gateway: str | None = None,
) -> list[GatewayDiscovery]:
    """Unregistered devices and unknown topics per gateway (of one: ``gateway``), gateways by name: on
    each, its ``per_gateway`` most recently heard devices and topics, and how many it has in all.

    Raises :class:`ingest.quarantine.QuarantineError` when the quarantine exists but cannot be read.
    """
    finds = _finds(quarantine_path, session, decoder, per_gateway=per_gateway, gateway=gateway, decode=True)
    gateways = {g.name: g for g in session.scalars(select(Gateway).where(Gateway.name.in_(set(finds))))}
    buildings = {
        b.id: b.name
        for b in session.scalars(
            select(Building).where(
                Building.id.in_({g.building_id for g in gateways.values() if g.building_id})
            )
        )
    }
    households: dict[int | None, list[HouseholdChoice]] = {}
    result: list[GatewayDiscovery] = []
    for name, found in finds.items():
        row = gateways.get(name)
        building_id = row.building_id if row is not None else None
        if row is not None and building_id not in households:
            households[building_id] = _households(session, building_id)
        result.append(
            GatewayDiscovery(
                gateway=name,
                gateway_id=row.id if row is not None else None,
                gateway_active=row is not None and row.status.value == "active",
                building=buildings.get(building_id) if building_id is not None else None,
                building_id=building_id,
                households=households.get(building_id, []) if row is not None else [],
                devices=found.devices,
                unknown_topics=found.topics,
                devices_total=found.devices_total,
                topics_total=found.topics_total,
            )
        )
    return result


def first_contact(
    quarantine_path: Path | None, key: DeviceKey, decoder: MessageDecoder
) -> dt.datetime | None:
    """When the device was first heard: the earliest receive time of its pending entries, or the time of
    the readings of its oldest message when its clock puts them a little earlier (up to CLOCK_SLACK),
    so that an assignment from then covers every replayed reading. None when the quarantine has none: the
    device was never heard on that gateway (or its messages were replayed already)."""
    with opened(quarantine_path) as quarantine:
        if quarantine is None:
            return None
        summaries = quarantine.pending_by_device(["unknown_device", "announcement"], key=key)
        if not summaries:  # named by an announcement of several devices (zigbee2mqtt's bridge/devices)?
            topics = quarantine.pending_topics_per_gateway(
                "announcement",
                lead=f"{decoder.topic_prefix}lab/",
                per_gateway=ANNOUNCEMENT_TOPICS,
                gateway=key[0],
            )
            page = topics.get(key[0])
            named = _announced(quarantine, decoder, page.items, key[0]) if page is not None else {}
            return _time(named[key[1]][0].first_ns) if key[1] in named else None
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
