"""Publish each simulated message through its own gateway's broker account, as the real gateways do.

One :class:`Publisher` per gateway, connected with the gateway's username, password and bound client id,
so the broker's ACLs apply (a gateway may publish under ``lab/<gateway>/#`` only). A gateway whose
account the broker refuses (revoked, its password changed elsewhere) stays silent, as a real one would:
its name and the broker's reason are in :attr:`GatewaySink.refused`, the other gateways publish on.
A gateway whose messages go through the real gateway service (:mod:`simulators.gateway_hosts`) is
released: its account's bound client id is the service's from then on.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType

from simulators.engine import Message
from simulators.publisher import ConnectionRefused, Publisher


@dataclass(frozen=True)
class GatewayAccount:
    username: str
    password: str
    client_id: str


class GatewaySink:
    def __init__(
        self, host: str, port: int, accounts: dict[str, GatewayAccount], *, window: int = 500
    ) -> None:
        self._host, self._port, self._window = host, port, window
        self._accounts = accounts
        self._publishers: dict[str, Publisher] = {}
        self._stack = ExitStack()
        self.refused: dict[str, str] = {}  # gateway -> the broker's reason
        self.silenced = 0  # messages of refused or unknown gateways, not sent

    def __enter__(self) -> GatewaySink:
        for gateway in self._accounts:
            self.reconnect(gateway)
        return self

    def reconnect(self, gateway: str) -> None:
        """Publish ``gateway``'s messages through its account (again, after :meth:`release`)."""
        account = self._accounts[gateway]
        publisher = Publisher(
            self._host,
            self._port,
            client_id=account.client_id,
            username=account.username,
            password=account.password,
            window=self._window,
        )
        try:
            self._publishers[gateway] = self._stack.enter_context(publisher)
        except ConnectionRefused as exc:
            self.refused[gateway] = str(exc)

    def release(self, gateway: str, timeout: float = 30.0) -> None:
        """Send what is in flight and let go of ``gateway``'s account (its client id), so the gateway
        service can connect with it; its messages are silenced here from now on."""
        publisher = self._publishers.pop(gateway, None)
        if publisher is not None:
            try:
                publisher.flush(timeout)
            finally:
                publisher.close()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.__exit__(kind, exc, tb)

    def __call__(self, message: Message) -> None:
        publisher = self._publishers.get(message.gateway)
        if publisher is None:
            self.silenced += 1
            return
        publisher.publish(message.topic, message.payload)

    def flush(self, timeout: float = 30.0) -> None:
        for publisher in self._publishers.values():
            publisher.flush(timeout)
