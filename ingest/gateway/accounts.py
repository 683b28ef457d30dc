"""A gateway's name and its central broker account: the rules the registry makes accounts by and the
gateway's ``check`` compares ``gateway.yaml`` against.

Standard library only: the gateway on a Pi imports this without the registry's database modules.
"""

from __future__ import annotations

import re

# what a gateway's name may be (it is a topic level and a name in gateway.yaml): new gateways only;
# the registry keeps the few older names with capitals, which get no bundle
GATEWAY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
GATEWAY_NAME_RULE = (
    "lower-case letters, digits, '-' and '_' (a-z, 0-9), at most 63, starting with a letter or digit"
)
GATEWAY_USER_PREFIX = "gw-"


def broker_username(gateway: str) -> str:
    """The central broker account the registry makes for the gateway named ``gateway``."""
    return f"{GATEWAY_USER_PREFIX}{gateway}"


def gateway_client_id(gateway: str) -> str:
    """The only MQTT client id the gateway's account may connect with: its broker username (unique)."""
    return broker_username(gateway)
