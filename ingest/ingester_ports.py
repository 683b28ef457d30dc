"""What the ingester needs of the outside world: a source of broker messages and a writer of line protocol.

:class:`ingest.mqtt.MqttSource` and :class:`ingest.influx.InfluxClient` implement them (mypy proves it at
the bottom of this module); :class:`ingest.ingester.Ingester` takes others in their place, as it takes a
``decoder``, so that tests drive ack-after-commit, the bisection of refused writes and backpressure with
in-memory fakes at the network boundary (``tests/unit/test_ingester_inprocess.py``), the spool and the
quarantine staying real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from ingest.influx import InfluxRejected, InfluxUnavailable
from ingest.mqtt import Message

__all__ = ["InfluxRejected", "InfluxUnavailable", "LineWriter", "Message", "MessageSource", "SourceFactory"]


class MessageSource(Protocol):
    """Puts the messages of every read, as one list, into the queue it was made with (:class:`SourceFactory`).

    What it delivered and was not acknowledged, the broker delivers again (after a reconnect or a restart):
    acknowledging is the ingester's promise that the message is safe.
    """

    @property
    def connected(self) -> asyncio.Event:
        """Set while connected and subscribed: the ingester is ready."""
        ...

    @property
    def implausible_read_times(self) -> int:
        """Messages whose sender's read time was implausible (the arrival time was used)."""
        ...

    async def run(self) -> None:
        """Deliver messages until cancelled (reconnecting as needed)."""
        ...

    def taken(self, count: int) -> None:
        """The ingester took ``count`` messages out of the queue (the source may read on)."""
        ...

    def ack(self, messages: Iterable[Message]) -> int:
        """Acknowledge: the broker may forget these messages. How many acks went out."""
        ...

    async def disconnect(self) -> None:
        """End gracefully: the pending acks go out, the broker keeps the session; ``run`` then returns."""
        ...


class SourceFactory(Protocol):
    """Makes the ingester's source, bound to the ingester's queue and its broker-drop callback."""

    def __call__(
        self,
        *,
        topics: list[str],
        queue: asyncio.Queue[list[Message]],
        on_broker_drops: Callable[[int], None],
    ) -> MessageSource: ...


class LineWriter(Protocol):
    """Writes line protocol to the database.

    :meth:`write` and :meth:`ping` raise :class:`InfluxUnavailable` to say "try again later" (``status``
    None: no answer at all, so the ingester probes :meth:`ping` to resume early; ``retry_after``
    honoured); :meth:`write` raises :class:`InfluxRejected` when the database refused (part of) the body
    for good (HTTP 400: the ingester bisects the body to find and quarantine the refused lines).
    """

    async def write(self, body: bytes) -> None: ...

    async def ping(self) -> None: ...

    async def ensure_database(self) -> None:
        """Create the database if that is the writer's job; idempotent. May raise InfluxUnavailable."""
        ...

    async def close(self) -> None: ...


if TYPE_CHECKING:  # the real adapters implement the ports (checked by mypy, never run)
    from ingest.influx import InfluxClient
    from ingest.mqtt import MqttSource

    def _mqtt_is_a_source(source: MqttSource) -> MessageSource:
        return source

    def _influx_is_a_writer(client: InfluxClient) -> LineWriter:
        return client
