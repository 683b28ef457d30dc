"""Build a :class:`Commissioner` from the settings (API and CLI share it).

Broker login, in this order: the dynsec admin (``REALLABOR_BROKER_ADMIN__*``), the ingester's account
(``mqtt.username``), anonymous. Each check is a connection of its own with a fresh client id, which only
an account without a bound client id may use: under dynamic security every account but the admin is
bound (:mod:`ingest.dynsec`), and the ingester's account may connect only as the ingester, which would
take over its session. So the admin listens there (it holds every right already, and the API process
holds its password to provision gateways anyway); the ingester's account serves brokers without
bindings (a password file), anonymous a local broker. The check's own knobs live in
``REALLABOR_COMMISSIONING__*`` (:class:`CommissioningSettings`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from ingest.commissioning.errors import CheckNotPossible
from ingest.commissioning.listener import BrokerAccess, access_for
from ingest.commissioning.report import Limits
from ingest.commissioning.runner import (
    CheckConfig,
    Commissioner,
)
from ingest.config import Settings
from ingest.decode import MessageDecoder
from ingest.profiles.loader import ProfileError, ProfileSet, load_profiles
from ingest.quarantine import QUARANTINE_FILE

BOUND_HINT = (
    "an account bound to a client id, as the ingester's is under dynamic security, cannot listen with "
    "another: set REALLABOR_BROKER_ADMIN__PASSWORD so the check listens as the broker admin"
)


def broker_access(settings: Settings) -> BrokerAccess:
    mqtt = settings.mqtt
    admin = settings.broker_admin
    if admin.password is not None:
        return access_for(mqtt, admin.username, admin.password.get_secret_value())
    if mqtt.username is not None:
        password = mqtt.password.get_secret_value() if mqtt.password is not None else None
        return access_for(mqtt, mqtt.username, password, refused_hint=BOUND_HINT)
    return access_for(mqtt)


def decoder_source(settings: Settings, profiles: ProfileSet | None = None) -> Callable[[], MessageDecoder]:
    """The ingester's decoder, built on first use (profiles loaded once); CheckNotPossible if they fail."""
    lock = threading.Lock()
    built: list[MessageDecoder] = []

    def get() -> MessageDecoder:
        with lock:
            if not built:
                try:
                    loaded = profiles or load_profiles(
                        settings.ingest.profiles_dir, tz=settings.ingest.timezone
                    )
                except ProfileError as exc:
                    raise CheckNotPossible(f"device profiles cannot be loaded: {exc}") from exc
                built.append(
                    MessageDecoder(
                        loaded,
                        topic_prefix=settings.mqtt.topic_prefix,
                        max_payload_bytes=settings.ingest.max_payload_bytes,
                    )
                )
            return built[0]

    return get


def make_commissioner(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    profiles: ProfileSet | None = None,
    access: BrokerAccess | None = None,
) -> Commissioner:
    options = settings.commissioning
    config = CheckConfig(
        broker=access or broker_access(settings),
        quarantine_path=settings.ingest.state_dir / QUARANTINE_FILE,
        limits=Limits(max_clock_offset_s=options.max_clock_offset_s),
    )
    return Commissioner(sessions=sessions, decoder=decoder_source(settings, profiles), config=config)
