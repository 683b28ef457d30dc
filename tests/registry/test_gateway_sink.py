"""The demo's simulated gateways publish through their own broker accounts; one the broker refuses stays
silent (named, with the broker's reason) while the others publish on."""

from __future__ import annotations

import pytest

from ingest.dynsec import DynsecAdmin, DynsecBootstrap
from ingest.localservices import LOOPBACK, Mosquitto
from ingest.registry.fleet import broker_username, gateway_client_id
from simulators.engine import Message
from simulators.gateways import GatewayAccount, GatewaySink
from tests.helpers import wait_for
from tests.registry.mqtt_client import TestMqttClient

pytestmark = pytest.mark.integration


def _message(gateway: str) -> Message:
    return Message(f"lab/{gateway}/m-1/state", b'{"power_w": 1}', "generic-json", "meter", gateway, 1, 0)


def test_a_refused_gateway_stays_silent_and_the_others_publish(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, bootstrap: DynsecBootstrap, unique: str
) -> None:
    good, stale = f"ok{unique}", f"stale{unique}"
    for name in (good, stale):
        broker_admin.provision_gateway(
            gateway=name,
            username=broker_username(name),
            password=f"pw-{name}-1",
            client_id=gateway_client_id(name),
        )
    accounts = {
        good: GatewayAccount(broker_username(good), f"pw-{good}-1", gateway_client_id(good)),
        stale: GatewayAccount(broker_username(stale), "an old password", gateway_client_id(stale)),
    }
    admin = TestMqttClient(dynsec_broker.port, username="admin", password=bootstrap.admin_password)
    topics: list[str] = []
    admin.client.on_message = lambda _c, _u, message: topics.append(message.topic)
    assert admin.connect() == "Success"
    assert admin.subscribe(f"lab/{good}/#") == "Granted QoS 1"
    try:
        with GatewaySink(LOOPBACK, dynsec_broker.port, accounts) as sink:
            assert set(sink.refused) == {stale}
            assert (
                "Not authorized" in sink.refused[stale] or "Bad user name or password" in sink.refused[stale]
            )
            sink(_message(stale))
            sink(_message(good))
            sink.flush()
            assert sink.silenced == 1
        wait_for(lambda: topics, timeout=10, what="the good gateway's message")
        assert topics == [f"lab/{good}/m-1/state"]
    finally:
        admin.close()
