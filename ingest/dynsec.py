"""Mosquitto dynamic-security adapter: per-gateway broker accounts, driven over MQTT.

An admin client publishes command batches to ``$CONTROL/dynamic-security/v1`` and reads the replies on
``$CONTROL/dynamic-security/v1/response``, matched by ``correlationData``. Each gateway gets a client and a
role of the same name (``gw-<gateway>``) whose only ACL allows publishing under ``lab/<gateway>/#``.
Passwords go to the broker (which stores a salted PBKDF2 hash) and are never logged.

Every account but the admin is bound to one client id: Mosquitto hands a persistent session to whoever
connects with its client id, so an unbound account could take over the ingester's session (and read,
and ack away, every household's readings). The plugin checks the binding before the password, and it
binds username -> client id only: an unbound account may still use any id, hence *every* account.

Errors, all raised from paho's or the plugin's own::

    DynsecError
     ├── BrokerUnavailable   no connection to the broker, or no reply in time
     └── CommandFailed       the plugin refused a command (``.command``, ``.error``)

:func:`write_initial_config` creates the plugin's first JSON file (what ``mosquitto_ctrl dynsec init``
writes, without a password on a command line) with an ``ingester`` role that may subscribe to ``lab/#``
and the ingester's account bound to its client id (several instances: an account each, see
:meth:`DynsecBootstrap.ingester_accounts`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import os
import secrets
import ssl
import threading
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ingest.config import BrokerAdminSettings, MqttSettings, instance_name
from ingest.tls import paho_context

log = logging.getLogger(__name__)

CONTROL_ROOT = "$CONTROL/dynamic-security"
CONTROL_TOPIC = f"{CONTROL_ROOT}/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",  # eclipse-mosquitto image
    "/usr/lib/mosquitto/mosquitto_dynamic_security.so",
)
_MISSING = ("Client not found", "Role not found")
DEFAULT_INGESTER_CLIENT_ID: str = MqttSettings.model_fields["client_id"].default
INGESTER_ROLE = "ingester"
# the ingester reads the broker's count of messages its queue limits dropped (ingest/mqtt.py)
DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class DynsecError(Exception):
    """The broker's dynamic-security plugin could not do what was asked."""


class BrokerUnavailable(DynsecError):
    """No connection to the broker, or no reply within the timeout."""


class CommandFailed(DynsecError):
    """The plugin refused a command."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"{command}: {error}")
        self.command = command
        self.error = error


def plugin_path() -> Path:
    for candidate in PLUGIN_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    raise DynsecError("mosquitto_dynamic_security.so not found: install Debian's mosquitto (2.0 or newer)")


# ---------------------------------------------------------------- initial configuration


@dataclass(frozen=True)
class DynsecBootstrap:
    """Accounts of a fresh broker: the admin that provisions gateways, and the ingester."""

    admin_password: str
    ingester_password: str | None = None
    admin_username: str = "admin"
    ingester_username: str = "ingester"
    ingester_client_id: str = DEFAULT_INGESTER_CLIENT_ID  # the only id the ingester's account may use
    topic_root: str = "lab"
    ingester_instances: int = 1  # ingest.instances: above 1, one account per instance

    def __repr__(self) -> str:  # never show the passwords
        return (
            f"DynsecBootstrap(admin={self.admin_username!r}, ingester={self.ingester_username!r}, "
            f"ingester_client_id={self.ingester_client_id!r}, instances={self.ingester_instances})"
        )

    def ingester_accounts(self) -> dict[str, str]:
        """The ingester's accounts and the client id each is bound to: one, or ``<name>-K`` per instance.

        One account per instance, not one for all: the plugin binds an account to one client id or to
        none, and an account that may use any id could take over a gateway's session (or, were it another
        account's, the ingester's). The instances share the password (one secret, as one ingester has).
        """
        if self.ingester_instances == 1:
            return {self.ingester_username: self.ingester_client_id}
        return {
            instance_name(self.ingester_username, k): instance_name(self.ingester_client_id, k)
            for k in range(self.ingester_instances)
        }


def hashed_password(password: str, *, salt: bytes | None = None, iterations: int = 101) -> dict[str, Any]:
    """The plugin's stored form of a password (salted PBKDF2-SHA512, as ``mosquitto_ctrl`` writes it)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def initial_config(bootstrap: DynsecBootstrap) -> dict[str, Any]:
    """The plugin's JSON for a fresh broker: ``mosquitto_ctrl dynsec init``'s admin, plus the ingester."""
    admin_acls = [
        _acl("publishClientSend", f"{CONTROL_ROOT}/#"),
        _acl("publishClientReceive", f"{CONTROL_ROOT}/#"),
        _acl("subscribePattern", f"{CONTROL_ROOT}/#"),
        _acl("publishClientReceive", "$SYS/#"),
        _acl("subscribePattern", "$SYS/#"),
        _acl("publishClientReceive", "#"),
        _acl("subscribePattern", "#"),
        _acl("unsubscribePattern", "#"),
    ]
    root = bootstrap.topic_root
    ingester_acls = [
        _acl("subscribePattern", f"{root}/#"),
        _acl("subscribePattern", f"$share/+/{root}/#"),
        _acl("publishClientReceive", f"{root}/#"),
        _acl("subscribeLiteral", DROPPED_TOPIC),
    ]
    clients: list[dict[str, Any]] = [
        {
            "username": bootstrap.admin_username,
            "textName": "Dynsec admin user",
            **hashed_password(bootstrap.admin_password),
            "roles": [{"rolename": "admin"}],
        }
    ]
    if bootstrap.ingester_password is not None:
        clients += [
            {
                "username": username,
                "clientid": client_id,
                "textName": "reallabor ingester",
                **hashed_password(bootstrap.ingester_password),
                "roles": [{"rolename": INGESTER_ROLE}],
            }
            for username, client_id in bootstrap.ingester_accounts().items()
        ]
    return {
        "clients": clients,
        "roles": [
            {"rolename": "admin", "acls": admin_acls},
            {"rolename": INGESTER_ROLE, "textName": "reads every gateway's topics", "acls": ingester_acls},
        ],
        # as mosquitto_ctrl sets it: nothing may publish or subscribe unless a role allows it
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def _place(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` to ``path``: complete or absent, never replacing a file."""
    try:
        os.link(tmp, path)  # unlike rename, refuses an existing path (FileExistsError)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (some container bind mounts)
        if path.exists():
            raise FileExistsError(path) from None
        tmp.replace(path)


def write_initial_config(path: Path, bootstrap: DynsecBootstrap) -> None:
    """Write :func:`initial_config` to ``path``, readable by its owner only (it holds password hashes).

    Never replaces an existing file: it holds every gateway's account.
    """
    if path.exists():
        raise DynsecError(f"{path} exists: it holds the broker's accounts; remove it to start over")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(initial_config(bootstrap), file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        _place(tmp, path)
    except FileExistsError:
        raise DynsecError(f"{path} exists: it holds the broker's accounts; remove it to start over") from None
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- settings


def admin_from_settings(*, admin: BrokerAdminSettings, mqtt: MqttSettings) -> DynsecAdmin | None:
    """The admin on the ingester's broker: its addresses in turn, with its TLS."""
    if admin.password is None:
        return None
    addresses = mqtt.addresses()
    tls = None if mqtt.tls is None else paho_context(mqtt.tls, mqtt.tls.server_name)
    return DynsecAdmin(
        host=addresses[0][0],
        port=addresses[0][1],
        username=admin.username,
        password=admin.password.get_secret_value(),
        timeout=admin.timeout_s,
        gateway_topic=admin.gateway_topic,
        tls=tls,
        more=addresses[1:],
    )


# ---------------------------------------------------------------- the admin client


class DynsecAdmin:
    """Administers gateway accounts; one MQTT connection, opened on first use, safe across threads."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        timeout: float = 10.0,
        gateway_topic: str = "lab/{gateway}/#",
        tls: ssl.SSLContext | None = None,
        more: list[tuple[str, int]] | None = None,
    ) -> None:
        self.host = host  # the address connected to (or tried first)
        self.port = port
        self.addresses = [(host, port), *(more or [])]  # tried in turn
        self.tls = tls  # None: plain MQTT
        self.username = username
        self._password = password
        self.timeout = timeout
        self.gateway_topic = gateway_topic
        self._client: paho.Client | None = None
        self._ready = threading.Event()
        self._settled = threading.Event()  # CONNACK refused or SUBACK received: stop waiting
        self._refusal = ""
        self._connect_lock = threading.Lock()
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]

    def __repr__(self) -> str:
        return f"DynsecAdmin({self.username}@{self.host}:{self.port})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- BrokerAccounts

    def provision_gateway(self, *, gateway: str, username: str, password: str, client_id: str) -> None:
        """(Re)create role and client for ``gateway``, bound to ``client_id``; leftovers are replaced."""
        self._remove(username)
        self.execute(
            [
                {
                    "command": "createRole",
                    "rolename": username,
                    "textname": f"gateway {gateway}",
                    "acls": [
                        {
                            "acltype": "publishClientSend",
                            "topic": self.gateway_topic.format(gateway=gateway),
                            "priority": 0,
                            "allow": True,
                        }
                    ],
                },
                {
                    "command": "createClient",
                    "username": username,
                    "password": password,
                    "clientid": client_id,
                    "textname": f"gateway {gateway}",
                    "roles": [{"rolename": username}],
                },
            ]
        )

    def set_password(self, *, username: str, password: str) -> None:
        self.execute([{"command": "setClientPassword", "username": username, "password": password}])

    def rotate_gateway(self, *, gateway: str, username: str, password: str, client_id: str) -> None:
        """A new password, and the client id (re)bound; a missing account (restored backup, lost file)
        is recreated. The broker disconnects a connected gateway: it must log in with the new password."""
        try:
            self.execute(
                [
                    {"command": "setClientPassword", "username": username, "password": password},
                    {"command": "setClientId", "username": username, "clientid": client_id},
                ]
            )
        except CommandFailed as exc:
            if exc.error not in _MISSING:
                raise
            log.warning("gateway %s: broker account %s was missing, recreating it", gateway, username)
            self.provision_gateway(gateway=gateway, username=username, password=password, client_id=client_id)

    def provision_ingester(self, *, username: str, password: str, client_id: str) -> None:
        """(Re)create an ingester account bound to ``client_id`` with the ingester role (which
        :func:`initial_config` made); a running ingester with that account is disconnected."""
        try:
            self.execute([{"command": "deleteClient", "username": username}])
        except CommandFailed as exc:
            if exc.error not in _MISSING:
                raise
        self.execute(
            [
                {
                    "command": "createClient",
                    "username": username,
                    "password": password,
                    "clientid": client_id,
                    "textname": "reallabor ingester",
                    "roles": [{"rolename": INGESTER_ROLE}],
                }
            ]
        )

    def revoke_gateway(self, *, gateway: str, username: str) -> None:  # noqa: ARG002 (protocol)
        """Delete client and role; the broker disconnects a connected client. Idempotent."""
        self._remove(username)

    # -- client ids

    def client_ids(self) -> dict[str, str | None]:
        """Every account on the broker and the client id bound to it (None: any id may be used)."""
        reply = self.execute([{"command": "listClients", "verbose": True}])[0]
        clients = reply.get("data", {}).get("clients", [])
        return {str(client["username"]): client.get("clientid") for client in clients}

    def bind_client_id(self, *, username: str, client_id: str) -> None:
        """Bind ``username`` to ``client_id``; the broker disconnects its connected clients."""
        self.execute([{"command": "setClientId", "username": username, "clientid": client_id}])

    def _remove(self, username: str) -> None:
        for command in (
            {"command": "deleteClient", "username": username},
            {"command": "deleteRole", "rolename": username},
        ):
            try:
                self.execute([command])
            except CommandFailed as exc:
                if exc.error not in _MISSING:
                    raise

    # -- plumbing

    def execute(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one batch; return the replies in order, or raise for the first refused command."""
        client = self._connected()
        futures: list[tuple[str, Future[dict[str, Any]]]] = []
        batch = []
        for command in commands:
            correlation = f"{self._session}-{next(self._ids)}"
            future: Future[dict[str, Any]] = Future()
            self._pending[correlation] = future
            futures.append((command["command"], future))
            batch.append({**command, "correlationData": correlation})
        try:
            info = client.publish(CONTROL_TOPIC, json.dumps({"commands": batch}), qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise BrokerUnavailable(f"publish to {CONTROL_TOPIC} failed: {paho.error_string(info.rc)}")
            replies = []
            for name, future in futures:
                try:
                    reply = future.result(self.timeout)
                except FutureTimeout:
                    raise BrokerUnavailable(
                        f"no reply to {name} from {self.host}:{self.port} within {self.timeout:.0f} s"
                    ) from None
                if reply.get("error"):
                    raise CommandFailed(name, str(reply["error"]))
                replies.append(reply)
            return replies
        finally:
            for entry in batch:
                self._pending.pop(entry["correlationData"], None)

    def _connected(self) -> paho.Client:
        with self._connect_lock:
            if self._client is not None and self._ready.is_set():
                return self._client
            self.close()
            client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"reallabor-dynsec-{self._session}",
                protocol=paho.MQTTv5,
            )
            client.username_pw_set(self.username, self._password)
            client.on_connect = self._on_connect
            client.on_subscribe = self._on_subscribe
            client.on_message = self._on_message
            client.on_disconnect = self._on_disconnect
            if self.tls is not None:
                client.tls_set_context(self.tls)
                client.tls_insecure_set(False)
            self._connect(client)
            self._client = client
            self._settled.clear()
            client.loop_start()
            self._settled.wait(self.timeout)
            if not self._ready.is_set():
                self.close()
                reason = self._refusal or f"no answer within {self.timeout:.0f} s"
                raise BrokerUnavailable(f"broker {self.host}:{self.port}, admin {self.username!r}: {reason}")
            return client

    def _connect(self, client: paho.Client) -> None:
        """The first address that takes the connection (TCP and TLS) becomes host:port."""
        failures = []
        for host, port in self.addresses:
            try:
                client.connect(host, port, keepalive=30)
            except ssl.SSLCertVerificationError as exc:
                failures.append(f"{host}:{port}: TLS certificate not trusted ({exc.verify_message or exc})")
            except (OSError, ValueError) as exc:
                failures.append(f"{host}:{port}: {exc}")
            else:
                self.host, self.port = host, port
                return
            log.info("dynsec admin: cannot connect to %s", failures[-1])
        raise BrokerUnavailable(f"cannot connect to {'; '.join(failures)}")

    def close(self) -> None:
        client, self._client = self._client, None
        self._ready.clear()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refusal = f"connection refused: {reason}"
            self._settled.set()
            log.warning(
                "dynsec admin %s@%s:%s: connect refused: %s", self.username, self.host, self.port, reason
            )
            client.disconnect()
            return
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        if all(not code.is_failure for code in reasons):
            self._ready.set()
            self._settled.set()
        else:
            self._refusal = f"subscription to {RESPONSE_TOPIC} refused"
            self._settled.set()
            log.warning("dynsec admin %s: subscription to %s refused", self.username, RESPONSE_TOPIC)

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._ready.clear()
        log.debug("dynsec admin %s: disconnected (%s)", self.username, reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            replies = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("dynsec admin: unreadable reply on %s", message.topic)
            return
        for reply in replies:
            future = self._pending.get(str(reply.get("correlationData")))
            if future is not None and not future.done():
                future.set_result(reply)
