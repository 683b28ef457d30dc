"""Wait for one device's next message: a short-lived MQTT client of its own (paho, MQTT v5).

A fresh client id and a clean session each time, so it never takes over the ingester's session (the
account it logs in with must therefore have no bound client id: see ``setup.py``); retained messages are
not asked for (an old retained state is not the device's *next* message). paho's errors are translated
here into :class:`BrokerUnavailable`. Over TLS and through the broker list as the ingester connects
(``mqtt.tls``, ``mqtt.brokers``: :func:`access_for`): the addresses in turn, the first that connects.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.commissioning.errors import BrokerUnavailable
from ingest.commissioning.report import Observed
from ingest.config import MqttSettings
from ingest.tls import paho_context

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    refused_hint: str = ""  # added to "connection refused": what to configure instead
    tls: ssl.SSLContext | None = None  # None: plain MQTT
    more: tuple[tuple[str, int], ...] = ()  # further broker nodes, tried in turn after host:port

    def __repr__(self) -> str:  # never the password
        tls = ", TLS" if self.tls is not None else ""
        return f"BrokerAccess({self.username or 'anonymous'}@{self.host}:{self.port}{tls})"

    def addresses(self) -> list[tuple[str, int]]:
        return [(self.host, self.port), *self.more]


def access_for(
    mqtt: MqttSettings, username: str | None = None, password: str | None = None, *, refused_hint: str = ""
) -> BrokerAccess:
    """The ingester's broker (``mqtt.brokers`` or host:port, ``mqtt.tls``) with this login."""
    (host, port), *more = mqtt.addresses()
    tls = None if mqtt.tls is None else paho_context(mqtt.tls, mqtt.tls.server_name)
    return BrokerAccess(host, port, username, password, refused_hint, tls=tls, more=tuple(more))


class _Session:
    """Bridges paho's network thread to asyncio futures on ``loop``."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, filters: list[str], *, refused_hint: str = ""
    ) -> None:
        self.loop = loop
        self.filters = filters
        self.refused_hint = refused_hint
        self.ready: asyncio.Future[None] = loop.create_future()
        self.message: asyncio.Future[Observed] = loop.create_future()
        self.closed = False

    def close(self) -> None:
        """On the loop, when the listener is done: later callbacks are ignored, and the futures are
        settled quietly. Our own disconnect calls ``on_disconnect`` too; settling ``message`` with that
        "error" after the wait has ended left a future whose exception nobody retrieved, and asyncio
        logged it with a traceback at every check that heard nothing."""
        self.closed = True
        for future in (self.ready, self.message):
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: an error nobody waits for any more is not logged

    def _settle(self, future: asyncio.Future[Any], value: Any = None, error: Exception | None = None) -> None:
        def apply() -> None:
            if self.closed or future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        self.loop.call_soon_threadsafe(apply)

    def on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            hint = f" ({self.refused_hint})" if self.refused_hint else ""
            self._settle(self.ready, error=BrokerUnavailable(f"connection refused: {reason}{hint}"))
            return
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        client.subscribe([(topic, options) for topic in self.filters])

    def on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(code.is_failure for code in reasons):
            refused = ", ".join(str(code) for code in reasons)
            self._settle(self.ready, error=BrokerUnavailable(f"subscription refused: {refused}"))
        else:
            self._settle(self.ready)

    def on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        if message.retain:
            return
        observed = Observed(topic=message.topic, payload=bytes(message.payload), received_ns=time.time_ns())
        self._settle(self.message, observed)

    def on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        error = BrokerUnavailable(f"disconnected by the broker: {reason}")
        self._settle(self.ready, error=error)
        self._settle(self.message, error=error)


def _client(access: BrokerAccess, session: _Session) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"reallabor-commission-{uuid.uuid4().hex[:12]}",
        protocol=paho.MQTTv5,
    )
    if access.username is not None:
        client.username_pw_set(access.username, access.password)
    if access.tls is not None:
        client.tls_set_context(access.tls)
        client.tls_insecure_set(False)  # the name is checked (the context does it, paho must not skip it)
    client.on_connect = session.on_connect
    client.on_subscribe = session.on_subscribe
    client.on_message = session.on_message
    client.on_disconnect = session.on_disconnect
    return client


def _close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


async def _connect(client: paho.Client, access: BrokerAccess) -> None:
    """Connect to the first address that takes the connection (TCP and TLS); BrokerUnavailable naming
    each address's failure otherwise."""
    failures = []
    for host, port in access.addresses():
        try:
            await asyncio.to_thread(client.connect, host, port, 30)
            return
        except ssl.SSLCertVerificationError as exc:
            failures.append(f"{host}:{port}: TLS certificate not trusted ({exc.verify_message or exc})")
        except (OSError, ValueError) as exc:
            failures.append(f"{host}:{port}: {exc}")
        log.info("commissioning listener: cannot connect to %s", failures[-1])
    raise BrokerUnavailable(f"cannot connect to {'; '.join(failures)}")


async def next_message(
    access: BrokerAccess,
    filters: list[str],
    *,
    timeout_s: float,
    on_listening: Callable[[], None] | None = None,
) -> Observed | None:
    """The first message on ``filters`` after the subscription stands, or None after ``timeout_s``.

    ``on_listening`` is called once the broker confirmed the subscription. Raises BrokerUnavailable.
    """
    session = _Session(asyncio.get_running_loop(), filters, refused_hint=access.refused_hint)
    client = _client(access, session)
    await _connect(client, access)
    client.loop_start()
    try:
        try:
            await asyncio.wait_for(asyncio.shield(session.ready), CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise BrokerUnavailable(
                f"no answer from {client.host}:{client.port} within {CONNECT_TIMEOUT_S:.0f} s"
            ) from None
        log.debug("commissioning listener %r subscribed to %s", access, filters)
        if on_listening is not None:
            on_listening()
        try:
            return await asyncio.wait_for(asyncio.shield(session.message), timeout_s)
        except TimeoutError:
            return None
    finally:
        await asyncio.to_thread(_close, client)
        session.close()
