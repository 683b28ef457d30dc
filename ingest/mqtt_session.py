"""What the broker's persistent session of this instance holds, remembered in its state directory.

The broker keeps our session (its subscriptions, and the messages queued for them while we are away) for
``mqtt.session_expiry_s`` after we leave. The broker itself tells us little about it, so without a memory
of our own two things go unnoticed:

- the session is gone when we come back (it expired, or the broker lost it: restarted without
  persistence, a cluster node lost) and with it every message queued for us; CONNACK's "session present"
  flag is 0, and that is all;
- the filters changed (``mqtt.shared_group``, ``mqtt.topic_prefix``, the profiles' topics): the session
  keeps the old ones besides the new, so the broker goes on queueing messages for the old subscription and
  delivers them twice (once per filter) until the session expires. (Another instance count keeps every
  instance's filters; going from one instance to several changes the client id instead: the old id's
  session is retired with ``--drain``, README "Several ingesters".)

So :class:`ingest.mqtt.MqttSource` writes :data:`SESSION_FILE` (client id, broker, the filters subscribed,
when) once subscribed and refreshes its time while connected; at the next connect it warns when the broker
holds no session though the file says it had one, and unsubscribes the remembered filters no longer wanted.
A drain that ended the session removes the file: no session, nothing to miss.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest.config import Settings
from ingest.security.files import PRIVATE_FILE, private_dir

log = logging.getLogger(__name__)

SESSION_FILE = "mqtt-session.json"  # under ingest.state_dir (an instance's own: <state_dir>/instance-K)
REFRESH_S = 60.0  # while connected, the file's last_connected is brought up to date this often
_VERSION = 1
_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


@dataclass(frozen=True)
class SessionMemory:
    """What we know of our session at the broker (times as Unix seconds)."""

    client_id: str
    broker: str  # host:port it was made on
    filters: tuple[str, ...]  # what it is subscribed to
    since: float  # when it got its first subscription
    last_connected: float  # when this client was last seen connected to it

    def as_json(self) -> dict[str, Any]:
        return {"version": _VERSION, **asdict(self), "filters": list(self.filters)}

    @classmethod
    def from_json(cls, data: Any) -> SessionMemory:
        """The memory ``data`` (:meth:`as_json`) describes; ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object but {type(data).__name__}")
        client_id, broker, filters = data.get("client_id"), data.get("broker"), data.get("filters")
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"client_id: {client_id!r} is not a client id")
        if not isinstance(broker, str):
            raise ValueError(f"broker: {broker!r} is not host:port")
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            raise ValueError(f"filters: {filters!r} is not a list of topic filters")
        times = {}
        for key in ("since", "last_connected"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key}: {value!r} is not a Unix time")
            times[key] = float(value)
        return cls(client_id, broker, tuple(filters), times["since"], times["last_connected"])


class SessionRecord:
    """:class:`SessionMemory` in a file: read once at start, written atomically, owner-readable only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._save_failed = False

    @classmethod
    def of(cls, settings: Settings) -> SessionRecord:
        """The record of the instance ``settings`` describe (:meth:`Settings.as_instance` already)."""
        return cls(settings.ingest.state_dir / SESSION_FILE)

    def load(self, client_id: str) -> SessionMemory | None:
        """The memory of ``client_id``'s session. None at the first start (no file), when the file is
        unreadable (a warning: a lost session would go unnoticed once) and when it is another client id's
        (a warning: that session stays at the broker, see :func:`other_client_message`)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning(
                "mqtt: cannot read %s (%s): a session the broker lost meanwhile goes unnoticed",
                self.path,
                exc,
            )
            return None
        try:
            memory = SessionMemory.from_json(json.loads(text))
        except ValueError as exc:  # json.JSONDecodeError is one
            log.warning(
                "mqtt: %s is damaged (%s): a session the broker lost meanwhile goes unnoticed; it is "
                "written anew once subscribed",
                self.path,
                exc,
            )
            return None
        if memory.client_id != client_id:
            log.warning(other_client_message(memory, client_id))
            return None
        return memory

    def save(self, memory: SessionMemory, *, durable: bool = False) -> None:
        """Replace the file with ``memory`` (``durable``: fsynced, for a new subscription). A failure is
        logged (once until a save succeeds again) and otherwise ignored: the memory serves warnings only."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            private_dir(self.path.parent)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            descriptor = os.open(temporary, flags, PRIVATE_FILE)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(json.dumps(memory.as_json(), indent=1) + "\n")
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._save_failed:
                log.warning("mqtt: cannot write %s (%s): a lost session may go unnoticed", self.path, exc)
            self._save_failed = True
            return
        self._save_failed = False

    def forget(self) -> None:
        """The session is gone (ended by us, or lost and reported): no memory of it."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("mqtt: cannot remove %s (%s)", self.path, exc)


def stale_filters(memory: SessionMemory | None, wanted: Iterable[str]) -> list[str]:
    """The filters the session holds from an earlier configuration: remembered and no longer wanted."""
    if memory is None:
        return []
    keep = set(wanted)
    return [f for f in memory.filters if f not in keep]


def session_lost_message(memory: SessionMemory, *, broker: str, session_expiry_s: int, now: float) -> str:
    """The warning when the broker holds no session for us although ``memory`` says it had one."""
    away_s = max(0.0, now - memory.last_connected)
    if away_s > session_expiry_s:
        cause = "it expired"
    else:
        cause = (
            "it had not expired: the broker lost it (restarted without persistence, or another node of a "
            "cluster that does not share sessions)"
        )
    elsewhere = "" if memory.broker == broker else f" to {memory.broker}"  # another node of a cluster
    return (
        f"mqtt: the broker {broker} holds no session for client id {memory.client_id} (CONNACK session "
        f"present 0), though it had one: last connected {_utc(memory.last_connected)}{elsewhere}, away "
        f"{duration(away_s)}, mqtt.session_expiry_s {session_expiry_s} s ({duration(session_expiry_s)}): "
        f"{cause}. Messages the broker queued for this instance while it was away are lost; see README "
        f"Several ingesters"
    )


def other_client_message(memory: SessionMemory, client_id: str) -> str:
    """The warning when the state directory remembers another client id's session than ours."""
    return (
        f"mqtt: the state directory remembers the session of client id {memory.client_id}, now "
        f"{client_id} (mqtt.client_id or the instance changed): the broker keeps the old session, "
        f"subscribed to {', '.join(memory.filters) or 'nothing'}, until mqtt.session_expiry_s after "
        f"{_utc(memory.last_connected)}, and what it queues meanwhile no ingester takes (a shared "
        f"subscription deals it its share); see README Several ingesters"
    )


def duration(seconds: float) -> str:
    """``seconds`` for people: 45 s, 12 min 5 s, 3 h 20 min, 2 d 4 h."""
    whole = max(0, round(seconds))
    for (unit, size), (smaller, small) in itertools.pairwise(_UNITS):
        if whole >= size:
            rest = whole % size // small
            return f"{whole // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{whole} s"


def _utc(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_s))
