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

    A value must be one non-empty topic level (no ``/``, ``+`` or ``#``), or for the template's
    ``{name:path}`` non-empty levels joined by ``/``: ValueError otherwise. An unbound path ends the
    filter with ``#`` (MQTT has no wildcard for "some levels" in the middle of a topic).
    """
    for name, value in values.items():
        levels_of_value = value.split("/") if name == template.path else [value]
        if any(not level or any(c in _WILDCARDS for c in level) for level in levels_of_value):
            kind = "topic levels" if name == template.path else "a single topic level"
            raise ValueError(f"{name}={value!r} is not {kind}")
    levels = []
    for level in template.template.split("/"):
        bound = level.startswith("{") and level.endswith("}")
        name = level[1:-1].removesuffix(":path")
        if bound and name == template.path and name not in values:
            levels.append("#")
            break
        levels.append(values.get(name, "+") if bound else level)
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
