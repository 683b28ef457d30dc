"""Fill a topic template with known names: the MQTT filter of one device's topics.

``lab/{gateway}/{device}/sensor/{sensor}/state`` with gateway ``gw-01`` and device ``boiler`` becomes
``lab/gw-01/boiler/sensor/+/state``: given names are written in, the rest stay wildcards.
"""

from __future__ import annotations

from ingest.profiles.loader import CompiledProfile
from ingest.profiles.topics import TopicTemplate

_WILDCARDS = frozenset("/+#")


def fill_template(template: TopicTemplate, values: dict[str, str]) -> str:
    """The topic filter of ``template`` with ``values`` written in; unbound names become ``+``.

    A value must be one non-empty topic level (no ``/``, ``+`` or ``#``): ValueError otherwise.
    """
    for name, value in values.items():
        if not value or any(c in _WILDCARDS for c in value):
            raise ValueError(f"{name}={value!r} is not a single topic level")
    levels = []
    for level in template.template.split("/"):
        bound = level.startswith("{") and level.endswith("}")
        levels.append(values.get(level[1:-1], "+") if bound else level)
    return "/".join(levels)


def device_topic_filters(
    profile: CompiledProfile, *, gateway: str, device: str, prefix: str = ""
) -> list[str]:
    """The filters of every template of ``profile`` that binds both ``gateway`` and ``device``.

    Templates without ``{device}`` (a bridge's own state topic) are not this device's and are left out.
    """
    values = {"gateway": gateway, "device": device}
    filters = [
        prefix + fill_template(template, values)
        for template in profile.templates
        if {"gateway", "device"} <= set(template.names)
    ]
    return list(dict.fromkeys(filters))


def filter_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, final ``#`` any rest, including none)."""
    wanted = topic_filter.split("/")
    levels = topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(levels) == len(wanted)
