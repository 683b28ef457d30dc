"""Durable quarantine of messages that could not be decoded or that InfluxDB refused.

One SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL``: every call that writes is one committed,
fsynced transaction). Each entry keeps the raw payload exactly (BLOB, also empty and invalid UTF-8), the
topic, receive time, profile id, reason code and detail, and the device it came from where the decode stage
knew it (``gateway``, ``device``: the registry's key, so that a device's ``unknown_device`` entries are
found when it gets registered). Replayed entries are kept and marked; entries are deleted only to erase a
household's data (:meth:`Quarantine.erase`, :mod:`ingest.privacy.quarantine`).

Exactly once: an entry may carry an ``identity``, the digest of what makes a second add the same message
(:func:`mqtt_identity`, :func:`spool_line_identity`), held by at most one entry (a UNIQUE index). The
ingester commits a batch's rejects before it acknowledges their MQTT messages, so a crash in between makes
the broker send them again, and the sink quarantines a line InfluxDB refused before it checkpoints the
spool record, so a crash in between reads the record again. An add marked ``redelivered`` whose identity
is held already is that same message: nothing is stored and :meth:`Quarantine.add_many` reports it as not
added, so the caller does not count it again (and replay and ``stats`` see it once). Only a redelivery is
collapsed: MQTT packet ids are reused once acknowledged, so a device that sends the same bad payload twice
gives two messages with the same (session, topic, payload, packet id); the second arrives without the DUP
flag, is stored as a new entry and takes the identity over (the first was acknowledged: the broker will
never send it again).

An identity is held only while its message may still come again: until its ack went out (MQTT) or its
spool record was checkpointed (a refused line); then :meth:`Quarantine.release_identities` lets it go
(:class:`IdentityHolds` says when). Held for ever it would swallow a new message: after 65,535
deliveries the broker gives the same packet id to a new message, and if that one has the same topic and
payload (a timestamp-less reading of an unregistered device) and comes with DUP (it was in flight when the
connection dropped), it would be taken for the old one and acknowledged unstored.

Schema versions (``PRAGMA user_version``): 1 without ``gateway``/``device``; 2 adds them with an index, and
fills them for the ``unknown_device`` entries of a version 1 file from their detail text; 3 adds
``identity`` with its UNIQUE index (entries stored before have none). Opening a file for writing upgrades
it (one transaction); read-only, a version 1 or 2 file is read as it is (no device keys, no identities).

Thread safety: one connection opened with ``check_same_thread=False`` and guarded by a lock. The ingester
calls it from ``asyncio.to_thread`` workers; a single connection keeps the pragmas and prepared statements
and serializes writes the way SQLite does anyway, and a per-call connection would pay an open per message
batch. Other processes (the ``reallabor quarantine`` CLI) open their own connection: WAL lets them read
while the ingester writes, and ``busy_timeout`` covers a concurrent writer.

Exceptions::

    QuarantineError     the database cannot be opened or written (sqlite3 errors are translated into it)
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypedDict

from ingest.security.files import private_file

if TYPE_CHECKING:
    from ingest.mqtt import Message

Status = Literal["pending", "replayed"]
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
QUARANTINE_FILE = "quarantine.sqlite3"  # under ingest.state_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    topic          TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    received_ns    INTEGER NOT NULL,
    profile        TEXT,
    reason         TEXT    NOT NULL,
    detail         TEXT    NOT NULL,
    quarantined_ns INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'replayed')),
    replayed_ns    INTEGER,
    gateway        TEXT,
    device         TEXT,
    identity       BLOB
);
CREATE INDEX IF NOT EXISTS quarantine_status_reason ON quarantine (status, reason);
CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received_ns);
"""
_DEVICE_INDEX = "CREATE INDEX IF NOT EXISTS quarantine_device ON quarantine (status, reason, gateway, device)"
# at most one entry holds an identity; entries without one (NULL) are all distinct to a UNIQUE index
_IDENTITY_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS quarantine_identity ON quarantine (identity)"
# covering indexes of the discovery list's per-gateway summaries (count, first and last receive time, ids):
# made by every open for writing (the ingester), so a file of any version gets them at the next start
_LISTING_INDEXES = (
    "CREATE INDEX IF NOT EXISTS quarantine_device_time"
    " ON quarantine (status, reason, gateway, device, received_ns)",
    "CREATE INDEX IF NOT EXISTS quarantine_topic_time ON quarantine (status, reason, topic, received_ns)",
)
_INSERT = (
    "INSERT INTO quarantine (topic, payload, received_ns, profile, reason, detail, quarantined_ns,"
    " gateway, device, identity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_COLUMNS = "id, topic, payload, received_ns, profile, reason, detail, quarantined_ns, status, replayed_ns"
_KEY_COLUMNS = ", gateway, device"
# the detail the enrich stage writes for an unregistered device (ingest.enrich), for the upgrade from 1
_UNKNOWN_DETAIL = re.compile(
    r"device (?P<device>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") behind gateway "
    r"(?P<gateway>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") is not registered\Z"
)
DeviceKey = tuple[str, str]  # (gateway, native device id)


class QuarantineError(Exception):
    """The quarantine database cannot be opened, read or written."""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A message to quarantine.

    ``identity``: what makes another add the same message (:func:`mqtt_identity`,
    :func:`spool_line_identity`); None: every add is a new entry. ``redelivered``: this add may repeat one
    stored before (the MQTT DUP flag; a spool record read again), so an entry holding the identity is this
    message and nothing is added. Without it, the entry holding the identity is an earlier message whose
    packet id the broker has reused, and the new entry takes the identity over.
    """

    topic: str
    payload: bytes
    received_ns: int
    reason: str  # a code from ingest.readings.REASONS, or e.g. "influx_rejected"
    detail: str = ""
    profile: str | None = None
    gateway: str | None = None  # the device's key where the decode stage knew it
    device: str | None = None
    identity: bytes | None = None
    redelivered: bool = False
    connection: int = 0  # not stored: the MQTT connection that delivered it (where its ack can go out)


class Stored(NamedTuple):
    """What :meth:`Quarantine.add_many` did with an entry: its id, and whether it is new (False: the same
    message was stored already, under this id; count it no more)."""

    id: int
    added: bool


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A quarantined message as stored."""

    id: int
    topic: str
    payload: bytes
    received_ns: int
    profile: str | None
    reason: str
    detail: str
    quarantined_ns: int
    status: Status
    replayed_ns: int | None
    gateway: str | None = None
    device: str | None = None


class DeviceSummary(NamedTuple):
    gateway: str
    device: str
    messages: int
    first_ns: int
    last_ns: int
    newest_id: int
    oldest_id: int


class TopicSummary(NamedTuple):
    topic: str
    messages: int
    first_ns: int
    last_ns: int
    newest_id: int


class GatewayPage(NamedTuple):
    """Per gateway: its newest devices (or topics), at most as many as asked for, and how many there are."""

    items: builtins.list[Any]  # DeviceSummary or TopicSummary, the most recently heard first
    total: int


class QuarantineStats(TypedDict):
    by_reason: dict[str, int]  # pending entries per reason
    pending: int
    replayed: int
    total: int


def _digest(*parts: bytes) -> bytes:
    """16 bytes of BLAKE2b over length-prefixed parts (no two part lists give the same input)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def mqtt_identity(session: str, topic: str, payload: bytes, packet_id: int) -> bytes | None:
    """The identity of an MQTT delivery: ``session`` names the broker and our session at it (client id,
    host and port: packet ids count per session), then topic, payload and packet id; None for QoS 0
    (packet id 0), which is never sent again."""
    if not packet_id:
        return None
    text = topic.encode("utf-8", "surrogatepass")
    return _digest(b"mqtt", session.encode(), text, payload, packet_id.to_bytes(2, "big"))


def spool_line_identity(seq: int, offset: int, line: bytes) -> bytes:
    """The identity of a line InfluxDB refused: its spool record (sequence numbers are never reused), its
    byte offset in the record, and the line itself."""
    return _digest(b"spool", seq.to_bytes(8, "big"), offset.to_bytes(8, "big"), line)


def _text(value: str) -> str:
    """Text SQLite can store: lone surrogates (from undecodable topics) become escapes instead of errors."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _unknown_device_key(detail: str) -> DeviceKey | None:
    """(gateway, device) from an ``unknown_device`` detail text, or None when it does not read so."""
    found = _UNKNOWN_DETAIL.match(detail)
    if found is None:
        return None
    try:
        device, gateway = ast.literal_eval(found["device"]), ast.literal_eval(found["gateway"])
    except (ValueError, SyntaxError):
        return None
    return (gateway, device) if isinstance(gateway, str) and isinstance(device, str) else None


def _joined_keys(keys: Iterable[DeviceKey]) -> str:
    """Device keys as a JSON list of ``gateway/device`` for ``IN (SELECT value FROM json_each(?))``: one
    string per key, which SQLite looks up in a temporary index (a row value ``(gateway, device) IN`` is
    evaluated row by row: 280 ms instead of 11 ms for 1,000 keys against 9,500 devices). Unambiguous: a
    gateway name is one topic level, it holds no ``/``."""
    return json.dumps([f"{gateway}/{device}" for gateway, device in keys])


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a file to SCHEMA_VERSION in one transaction (another process may be doing the same)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(quarantine)")}
        if version < 2:
            for name in ("gateway", "device"):
                if name not in columns:
                    conn.execute(f"ALTER TABLE quarantine ADD COLUMN {name} TEXT")
            rows = conn.execute(
                "SELECT id, detail FROM quarantine WHERE reason = 'unknown_device' AND gateway IS NULL"
            ).fetchall()
            for id_, detail in rows:
                key = _unknown_device_key(detail)
                if key is not None:
                    conn.execute("UPDATE quarantine SET gateway = ?, device = ? WHERE id = ?", (*key, id_))
        if version < 3 and "identity" not in columns:
            conn.execute("ALTER TABLE quarantine ADD COLUMN identity BLOB")
        conn.execute(_DEVICE_INDEX)
        conn.execute(_IDENTITY_INDEX)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _record(row: tuple[Any, ...]) -> QuarantineRecord:
    id_, topic, payload, received, profile, reason, detail, quarantined, status, replayed = row[:10]
    gateway, device = row[10:12] if len(row) > 10 else (None, None)
    return QuarantineRecord(
        id=id_,
        topic=topic,
        payload=bytes(payload),
        received_ns=received,
        profile=profile,
        reason=reason,
        detail=detail,
        quarantined_ns=quarantined,
        status="replayed" if status == "replayed" else "pending",
        replayed_ns=replayed,
        gateway=gateway,
        device=device,
    )


class Quarantine:
    """The quarantine database at ``path`` (created if missing, unless ``read_only``)."""

    def __init__(self, path: Path | str, *, read_only: bool = False, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if read_only:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                conn = sqlite3.connect(
                    uri, uri=True, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
                )
            else:
                private_file(self.path)  # before SQLite creates it: its -wal and -shm take its mode
                conn = sqlite3.connect(
                    self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
                )
            self._conn = conn
            if not read_only:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
                if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    _upgrade(conn)
                for index in _LISTING_INDEXES:
                    conn.execute(index)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            raise QuarantineError(f"cannot open quarantine {self.path}: {exc}") from exc
        if version not in READABLE_VERSIONS or (not read_only and version != SCHEMA_VERSION):
            conn.close()
            raise QuarantineError(
                f"quarantine {self.path}: schema version {version}, expected {SCHEMA_VERSION}"
            )
        self._columns = _COLUMNS + (_KEY_COLUMNS if version >= 2 else "")
        self.has_device_keys = version >= 2
        # identities to let go with the next write (see release_identities); its own lock, so that the
        # event loop never waits for a transaction
        self._release_lock = threading.Lock()
        self._release_ids: set[int] = set()
        self._release_up_to: dict[bool, int] = {}  # spool_lines -> the last entry id

    def add(self, entry: QuarantineEntry) -> Stored:
        return self.add_many([entry])[0]

    def add_many(self, entries: Iterable[QuarantineEntry]) -> builtins.list[Stored]:
        """Store entries in one durable transaction; per entry, in order, its id and whether it was added
        (a redelivery of an entry stored before, also earlier in ``entries``, is not)."""
        now = time.time_ns()
        entries = builtins.list(entries)
        rows = [
            (
                _text(e.topic),
                bytes(e.payload),
                e.received_ns,
                e.profile,
                _text(e.reason),
                _text(e.detail),
                now,
                None if e.gateway is None else _text(e.gateway),
                None if e.device is None else _text(e.device),
                e.identity,
            )
            for e in entries
        ]
        if any(not row[4] for row in rows):
            raise ValueError("a quarantine entry needs a reason code")
        if not rows:
            return []
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    released = self._write_releases()
                    stored = [
                        self._store(row, e.identity, redelivered=e.redelivered)
                        for row, e in zip(rows, entries, strict=True)
                    ]
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise QuarantineError(
                    f"quarantine {self.path}: cannot store {len(rows)} entries: {exc}"
                ) from exc
        self._forget_releases(released)
        return stored

    def _store(self, row: tuple[object, ...], identity: bytes | None, *, redelivered: bool) -> Stored:
        """One entry (``row``: its column values, ``identity`` last), inside add_many's transaction.

        A new delivery (not ``redelivered``) is inserted straight away: its identity is rarely held (only
        until the ack of the message that held it), and the UNIQUE index says so. Looking first cost a
        lookup per entry (~6 µs of ~45)."""
        conn = self._conn
        if identity is not None and redelivered:
            held = conn.execute("SELECT id FROM quarantine WHERE identity = ?", (identity,)).fetchone()
            if held is not None:
                return Stored(int(held[0]), False)
        try:
            return Stored(int(conn.execute(_INSERT, row).fetchone()[0]), True)
        except sqlite3.IntegrityError as exc:  # the statement is undone, the transaction goes on
            if identity is None or "quarantine.identity" not in str(exc):
                raise
        # the earlier message was acknowledged (its packet id is in use again): it keeps no identity
        conn.execute("UPDATE quarantine SET identity = NULL WHERE identity = ?", (identity,))
        return Stored(int(conn.execute(_INSERT, row).fetchone()[0]), True)

    def release_identities(
        self, ids: Iterable[int] = (), *, up_to: int = 0, spool_lines: bool = False
    ) -> None:
        """Let entries' identities go: their message will not come again (its ack went out, its spool record
        was checkpointed), and a later message with the same identity must be stored, not taken for it.

        ``ids``: these entries; ``up_to``: besides, every entry up to this id, of MQTT messages or (with
        ``spool_lines``) of refused lines (reason ``influx_rejected``). Written with the next
        :meth:`add_many`, in its transaction (the only place where a held identity matters; no fsync of
        its own), or at :meth:`close` / :meth:`write_releases`. A crash before that leaves them held, which
        is safe only until the broker has used their packet ids again: the ingester releases what an
        earlier process held once the broker's redeliveries are through (:class:`IdentityHolds`). A crash
        after the ack and before this only costs a count: a redelivery that comes after all (the ack was
        lost with the connection) is stored again."""
        with self._release_lock:
            self._release_ids.update(ids)
            if up_to > 0:
                self._release_up_to[spool_lines] = max(up_to, self._release_up_to.get(spool_lines, 0))

    def write_releases(self) -> None:
        """Write the releases :meth:`release_identities` holds now (one transaction)."""
        with self._transaction("cannot release identities"):
            written = self._write_releases()
        self._forget_releases(written)

    def _write_releases(self) -> tuple[set[int], dict[bool, int]]:
        """The queued releases, inside the caller's transaction; what was written, for
        :meth:`_forget_releases` once committed (rolled back, they stay queued)."""
        with self._release_lock:
            ids, up_to = set(self._release_ids), dict(self._release_up_to)
        if ids:
            self._conn.execute(
                "UPDATE quarantine SET identity = NULL WHERE identity IS NOT NULL"
                " AND id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(ids)),),
            )
        for spool_lines, last in up_to.items():
            self._conn.execute(
                "UPDATE quarantine INDEXED BY quarantine_identity SET identity = NULL"
                " WHERE identity IS NOT NULL AND id <= ? AND (reason = 'influx_rejected') = ?",
                (last, spool_lines),
            )
        return ids, up_to

    def _forget_releases(self, written: tuple[set[int], dict[bool, int]]) -> None:
        ids, up_to = written
        with self._release_lock:
            self._release_ids -= ids
            for spool_lines, last in up_to.items():
                if self._release_up_to.get(spool_lines, 0) <= last:
                    self._release_up_to.pop(spool_lines, None)

    def last_id(self) -> int:
        """The newest entry's id (0: none)."""
        return int(self._query("SELECT coalesce(max(id), 0) FROM quarantine", ())[0][0])

    def get(self, entry_id: int) -> QuarantineRecord | None:
        row = self._query(f"SELECT {self._columns} FROM quarantine WHERE id = ?", (entry_id,))
        return _record(row[0]) if row else None

    def mark_replayed(self, ids: Iterable[int]) -> int:
        """Mark pending entries as replayed (kept, not deleted); how many changed."""
        params = [(time.time_ns(), int(i)) for i in ids]
        if not params:
            return 0
        sql = "UPDATE quarantine SET status = 'replayed', replayed_ns = ? WHERE id = ? AND status = 'pending'"
        with self._transaction("cannot mark entries replayed"):
            return sum(self._conn.execute(sql, param).rowcount for param in params)

    def erase(self, ids: Iterable[int]) -> int:
        """Delete the entries ``ids`` for good (a household's data, GDPR erasure), overwriting their bytes
        (``secure_delete``), then checkpoint the WAL so that the old pages leave it too (a reader in the way
        leaves that to SQLite's next checkpoint); how many were deleted."""
        wanted = builtins.list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return 0
        deleted = 0
        with self._lock:
            self._conn.execute("PRAGMA secure_delete=ON")
        with self._transaction("cannot erase entries"):
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                deleted += self._conn.execute(f"DELETE FROM quarantine WHERE id IN ({marks})", chunk).rowcount
        self._query("PRAGMA wal_checkpoint(TRUNCATE)", ())
        return deleted

    def count(self, *, status: Status | None = None) -> int:
        if status is None:
            rows = self._query("SELECT count(*) FROM quarantine", ())
        else:
            rows = self._query("SELECT count(*) FROM quarantine WHERE status = ?", (status,))
        return int(rows[0][0])

    def stats(self) -> QuarantineStats:
        rows = self._query("SELECT status, reason, count(*) FROM quarantine GROUP BY status, reason", ())
        by_reason: dict[str, int] = {}
        totals = {"pending": 0, "replayed": 0}
        for status, reason, n in rows:
            totals[status] += n
            if status == "pending":
                by_reason[reason] = n
        return QuarantineStats(
            by_reason=dict(sorted(by_reason.items())),
            pending=totals["pending"],
            replayed=totals["replayed"],
            total=totals["pending"] + totals["replayed"],
        )

    def pending_device_keys(self, reason: str) -> set[DeviceKey]:
        """The (gateway, device) keys of pending entries with ``reason`` (from the index)."""
        if not self.has_device_keys:
            return set()
        rows = self._query(
            "SELECT DISTINCT gateway, device FROM quarantine"
            " WHERE status = 'pending' AND reason = ? AND gateway IS NOT NULL AND device IS NOT NULL",
            (reason,),
        )
        return {(gateway, device) for gateway, device in rows}

    def pending_of_device(
        self, key: DeviceKey, *, reasons: Iterable[str], after_id: int = 0, limit: int = 500
    ) -> builtins.list[QuarantineRecord]:
        """Pending entries of one device with one of ``reasons``, by id after ``after_id``."""
        wanted = builtins.list(reasons)
        if not self.has_device_keys or not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        rows = self._query(
            f"SELECT {self._columns} FROM quarantine WHERE status = 'pending' AND reason IN ({marks})"
            " AND gateway = ? AND device = ? AND id > ? ORDER BY id LIMIT ?",
            (*wanted, key[0], key[1], after_id, max(0, limit)),
        )
        return [_record(row) for row in rows]

    def pending_by_device(
        self, reasons: Iterable[str], *, key: DeviceKey | None = None, limit: int = 1000
    ) -> builtins.list[DeviceSummary]:
        """Per (gateway, device) of the pending entries with ``reasons`` (of one device: ``key``): how
        many, first and last receive time, the newest and oldest entry's id; the most recently heard
        first."""
        wanted = builtins.list(reasons)
        if not self.has_device_keys or not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        where = (
            "gateway = ? AND device = ?" if key is not None else "gateway IS NOT NULL AND device IS NOT NULL"
        )
        rows = self._query(
            "SELECT gateway, device, count(*), min(received_ns), max(received_ns), max(id), min(id)"
            f" FROM quarantine WHERE status = 'pending' AND reason IN ({marks}) AND {where}"
            " GROUP BY gateway, device ORDER BY max(received_ns) DESC LIMIT ?",
            (*wanted, *(key or ()), max(0, limit)),
        )
        return [DeviceSummary(*row) for row in rows]

    def pending_by_topic(self, reason: str, *, limit: int = 1000) -> builtins.list[TopicSummary]:
        """Per topic of the pending entries with ``reason``: as :meth:`pending_by_device`."""
        rows = self._query(
            "SELECT topic, count(*), min(received_ns), max(received_ns), max(id)"
            " FROM quarantine WHERE status = 'pending' AND reason = ?"
            " GROUP BY topic ORDER BY max(received_ns) DESC LIMIT ?",
            (reason, max(0, limit)),
        )
        return [TopicSummary(*row) for row in rows]

    def pending_devices_per_gateway(
        self,
        reason: str,
        *,
        per_gateway: int,
        gateway: str | None = None,
        exclude: Iterable[DeviceKey] = (),
    ) -> dict[str, GatewayPage]:
        """Per gateway (of one: ``gateway``) the ``per_gateway`` most recently heard devices with pending
        entries of ``reason``, as in :meth:`pending_by_device`, and how many such devices it has; devices
        in ``exclude`` (the registered ones) are neither listed nor counted. One query: a flood of device
        ids on one gateway does not push another gateway's devices out of the list."""
        if not self.has_device_keys:
            return {}
        where = "gateway = ?" if gateway is not None else "gateway IS NOT NULL"
        sql = f"""
            WITH per_device AS (
                SELECT gateway, device, count(*) AS n, min(received_ns) AS first_ns,
                       max(received_ns) AS last_ns, max(id) AS newest_id, min(id) AS oldest_id
                FROM quarantine
                WHERE status = 'pending' AND reason = ? AND {where} AND device IS NOT NULL
                GROUP BY gateway, device
            ), kept AS (
                SELECT * FROM per_device
                WHERE gateway || '/' || device NOT IN (SELECT value FROM json_each(?))
            ), ranked AS (
                SELECT *, row_number() OVER (PARTITION BY gateway ORDER BY last_ns DESC, newest_id DESC)
                       AS place, count(*) OVER (PARTITION BY gateway) AS total
                FROM kept
            )
            SELECT gateway, device, n, first_ns, last_ns, newest_id, oldest_id, total, place
            FROM ranked WHERE place <= ? ORDER BY gateway, place"""
        excluded = _joined_keys(exclude)
        params = (reason, *(() if gateway is None else (gateway,)), excluded, max(1, per_gateway))
        pages: dict[str, GatewayPage] = {}
        for *summary, total, place in self._query(sql, params):
            page = pages.setdefault(summary[0], GatewayPage([], total))
            if place <= per_gateway:
                page.items.append(DeviceSummary(*summary))
        return pages

    def pending_topics_per_gateway(
        self, reason: str, *, lead: str, per_gateway: int, gateway: str | None = None
    ) -> dict[str, GatewayPage]:
        """Per gateway (of one: ``gateway``) the ``per_gateway`` most recently heard topics with pending
        entries of ``reason``, as in :meth:`pending_by_topic`, and how many such topics it has. The gateway
        is a topic's level after ``lead`` (the topic prefix and ``lab/``); other topics are left out."""
        sql = """
            WITH per_topic AS (
                SELECT topic, count(*) AS n, min(received_ns) AS first_ns, max(received_ns) AS last_ns,
                       max(id) AS newest_id, substr(topic, length(:lead) + 1) AS rest
                FROM quarantine
                WHERE status = 'pending' AND reason = :reason AND substr(topic, 1, length(:lead)) = :lead
                GROUP BY topic
            ), placed AS (
                SELECT *, substr(rest, 1, instr(rest, '/') - 1) AS gateway FROM per_topic
                WHERE instr(rest, '/') > 1
            ), ranked AS (
                SELECT *, row_number() OVER (PARTITION BY gateway ORDER BY last_ns DESC, newest_id DESC)
                       AS place, count(*) OVER (PARTITION BY gateway) AS total
                FROM placed WHERE :gateway IS NULL OR gateway = :gateway
            )
            SELECT gateway, topic, n, first_ns, last_ns, newest_id, total, place
            FROM ranked WHERE place <= :keep ORDER BY gateway, place"""
        params = {"lead": lead, "reason": reason, "gateway": gateway, "keep": max(1, per_gateway)}
        pages: dict[str, GatewayPage] = {}
        for name, *summary, total, place in self._query(sql, params):
            page = pages.setdefault(name, GatewayPage([], total))
            if place <= per_gateway:
                page.items.append(TopicSummary(*summary))
        return pages

    def pending_keys_among(self, reason: str, keys: Iterable[DeviceKey]) -> set[DeviceKey]:
        """Which of ``keys`` have pending entries with ``reason`` (through the index)."""
        wanted = _joined_keys(keys)
        if not self.has_device_keys or wanted == "[]":
            return set()
        rows = self._query(
            "SELECT DISTINCT gateway, device FROM quarantine WHERE status = 'pending' AND reason = ?"
            " AND gateway IS NOT NULL AND gateway || '/' || device IN (SELECT value FROM json_each(?))",
            (reason, wanted),
        )
        return {(gateway, device) for gateway, device in rows}

    def close(self) -> None:
        """Write the queued releases (if that fails they stay held: see release_identities) and close."""
        with self._release_lock:
            queued = bool(self._release_ids or self._release_up_to)
        if queued:
            with contextlib.suppress(QuarantineError):
                self.write_releases()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """One durable write transaction under the lock; sqlite3 errors become QuarantineError."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise QuarantineError(f"quarantine {self.path}: {what}: {exc}") from exc

    def _query(self, sql: str, params: tuple[object, ...] | Mapping[str, object]) -> builtins.list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise QuarantineError(f"quarantine {self.path}: {exc}") from exc

    # Last, so that the name does not shadow the builtin in the annotations above.
    def list(
        self,
        *,
        reason: str | None = None,
        topic_like: str | None = None,
        since_ns: int | None = None,
        status: Status | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = False,
    ) -> builtins.list[QuarantineRecord]:
        """Entries by id. ``topic_like`` is a SQL LIKE pattern (``%`` any, ``_`` one character);
        ``since_ns`` filters on the receive time (inclusive)."""
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        for clause, value in (
            ("reason = ?", reason),
            ("topic LIKE ?", topic_like),
            ("received_ns >= ?", since_ns),
            ("status = ?", status),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {self._columns} FROM quarantine"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id {'DESC' if newest_first else 'ASC'} LIMIT ? OFFSET ?"
        params += [max(0, limit), max(0, offset)]
        return [_record(row) for row in self._query(sql, tuple(params))]


class IdentityHolds:
    """When the ingester lets identities go (:meth:`Quarantine.release_identities`).

    - MQTT: an entry's identity goes once its message's ack went out, on the connection that delivered
      it (:meth:`acknowledged`). The broker reuses that packet id only after reading the ack, so a new
      message with it reaches a later commit, and the release is written before that commit's entries.
      An ack lost with the connection after it went out brings the message again with DUP: stored a
      second time (a double count, never a loss).
    - An entry whose ack did not go out (its connection had dropped), and every entry an earlier
      process may have left held (a crash between the ack and the release): held until a new message (no
      DUP) comes on a later connection. The broker resends what was not acknowledged first, in order
      (MQTT 5 §4.4, §4.6), so their redeliveries came before it and found their entries. Until then, at
      most ``2 * receive_maximum`` packet ids can have been used since such an entry's message (those in
      flight with it, acknowledged by the redeliveries, and those in flight now): below 65,535 for a
      ``receive_maximum`` up to 32,767, so no new message can have its packet id yet. (Not covered: a
      crash in that window followed by ever more lost connections each of which only brought
      redeliveries.)
    - A refused line: once its spool record is checkpointed (:meth:`checkpointed`). Those of an earlier
      process once the records pending at start are checkpointed (at once when none were: also after
      the spool was removed, when sequence numbers start at 1 again).
    """

    def __init__(self, quarantine: Quarantine, *, spool_next_seq: int, spool_pending: int) -> None:
        self._quarantine = quarantine
        self._earlier = quarantine.last_id()  # entries of earlier processes: up to this id
        self._earlier_mqtt = self._earlier > 0
        self._unacked: dict[int, builtins.list[int]] = {}  # connection -> entries whose ack did not go out
        self._spool_from_earlier = spool_next_seq - 1  # the last record an earlier process wrote
        if self._earlier and not spool_pending:
            quarantine.release_identities(up_to=self._earlier, spool_lines=True)
            self._spool_from_earlier = 0

    def acknowledged(
        self,
        messages: Iterable[Message],
        entries: Iterable[QuarantineEntry],
        stored: Iterable[Stored],
        sent: int,
    ) -> None:
        """A commit's messages were acknowledged (``sent``: how many acks went out, all on the newest
        connection among them); ``entries`` and ``stored``: its quarantine entries and what became of them."""
        newest_acked = 0
        newest_new = 0  # the newest connection that brought a new message
        for message in messages:
            if message.qos:
                newest_acked = max(newest_acked, message.connection)
                if not message.dup:
                    newest_new = max(newest_new, message.connection)
        if not sent:
            newest_acked = -1
        released: builtins.list[int] = []
        for entry, kept in zip(entries, stored, strict=True):
            if entry.identity is None:
                continue
            if entry.connection == newest_acked:
                released.append(kept.id)
            else:
                self._unacked.setdefault(entry.connection, []).append(kept.id)
        if newest_new:
            for connection in [c for c in self._unacked if c < newest_new]:
                released += self._unacked.pop(connection)
            if self._earlier_mqtt:
                self._quarantine.release_identities(up_to=self._earlier)
                self._earlier_mqtt = False
        self._quarantine.release_identities(released)

    def checkpointed(self, last_seq: int, refused: Iterable[int]) -> None:
        """The spool records up to ``last_seq`` are checkpointed; ``refused``: the entries of their lines."""
        self._quarantine.release_identities(refused)
        if self._spool_from_earlier and last_seq >= self._spool_from_earlier:
            self._quarantine.release_identities(up_to=self._earlier, spool_lines=True)
            self._spool_from_earlier = 0
