"""Topic templates: ``lab/{gateway}/{device}/state`` binds topic levels to names.

A level is a literal, ``{name}`` (binds exactly one level), ``{name:path}`` (binds one or more levels,
``/`` included: a device's topic prefix the user may set to ``home/floor1/pm``, Shelly Gen2),
``+`` (any one level, unbound) or a final ``#`` (any rest). A profile may give a ``{name}`` a shape
(``topic_levels``; :data:`SHAPES`): ``component``, a Shelly Gen2 component key, ``type:id`` such as
``switch:0`` or one of the components without id (``sys``, ``wifi`` …, :data:`COMPONENTS`). That keeps a
path template from claiming other firmwares' topics that merely have a ``status`` level (ESPHome
``node/binary_sensor/status/state``, a zigbee2mqtt name ``living/status/lamp``): those stay ``no_profile``
and are listed as unknown topics.
A template binds at most one path; it cannot also end in ``#`` (which levels would be whose?). The MQTT
subscription filter replaces every binding with ``+``; a path, which no MQTT filter can stand for in the
middle of a topic, ends the filter with ``#``.

Matching is a compiled regular expression, once per topic (the decode stage caches a topic's routes):
a path is greedy, so the levels after it are the topic's last ones; it spans at most MAX_PATH_LEVELS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"\{([a-z_][a-z0-9_]*)(:path)?\}\Z")  # \Z: "$" would pass a trailing newline
MAX_PATH_LEVELS = 16  # a Shelly topic_prefix has at most 300 characters; no one nests 16 levels deep
# Possessive (++): a level is never given back character by character, which a topic cannot need (a level
# ends at "/" or the end) and which made a 64 KB topic cost milliseconds per template. With the path's
# levels bounded too, a topic no template fits is refused in microseconds whatever its length (the decode
# stage routes topics over 512 characters afresh for every message).
_ONE_LEVEL = "[^/]++"
_LEVELS = f"[^/]++(?:/[^/]++){{0,{MAX_PATH_LEVELS - 1}}}"  # one to MAX_PATH_LEVELS non-empty levels
# Shelly Gen2's components without an id (their key is the type alone; "Component Concept" and each
# component's page of the Gen2 API docs: "It uses the key sys when enumerated …"); every other component
# is keyed type:id (switch:0, em1data:1, temperature:100).
COMPONENTS = (
    "sys", "wifi", "eth", "ble", "cloud", "mqtt", "ws", "ui", "bthome", "knx", "matter", "modbus", "zigbee",
    "plugs_ui", "ht_ui", "wd",
)  # fmt: skip
_COMPONENT = f"(?:[a-z][a-z0-9_]*+:[0-9]{{1,5}}+|{'|'.join(COMPONENTS)})(?![^/])"
SHAPES = {"component": _COMPONENT}  # what topic_levels may name


class TopicTemplate:
    __slots__ = ("_regex", "filter", "names", "path", "template")

    def __init__(self, template: str, shapes: Mapping[str, str] | None = None) -> None:
        """``shapes``: bound name -> a :data:`SHAPES` key its one level must have (KeyError if unknown)."""
        if not template or (template.startswith("/") and len(template) == 1):
            raise ValueError("a topic template must not be empty")
        levels = template.split("/")
        pattern: list[str] = []
        filter_levels: list[str] = []
        names: list[str] = []
        path: str | None = None
        for index, level in enumerate(levels):
            bound = _NAME.match(level)
            if bound:
                name = bound.group(1)
                if name in names:
                    raise ValueError(f"{template!r}: {{{name}}} is bound twice")
                names.append(name)
                if bound.group(2):
                    if path is not None:
                        raise ValueError(f"{template!r}: one {{name:path}} per template")
                    path = name
                    level_pattern = _LEVELS
                else:
                    level_pattern = SHAPES[shapes[name]] if shapes and name in shapes else _ONE_LEVEL
                pattern.append(f"(?P<{name}>{level_pattern})")
                filter_levels.append("#" if bound.group(2) else "+")
            elif level == "+":
                pattern.append(_ONE_LEVEL)
                filter_levels.append("+")
            elif level == "#":
                if index != len(levels) - 1:
                    raise ValueError(f"{template!r}: '#' may only be the last level")
                if path is not None:
                    raise ValueError(f"{template!r}: '#' after {{{path}:path}} is ambiguous")
                pattern.append(".*")
                filter_levels.append("#")
            elif any(c in level for c in "{}+#"):
                raise ValueError(
                    f"{template!r}: level {level!r} must be a literal, {{name}}, {{name:path}}, '+' or '#' "
                    "(names: lower case letters, digits, _)"
                )
            else:
                pattern.append(re.escape(level))
                filter_levels.append(level)
        self.template = template
        self.names = tuple(names)
        self.path = path  # the name that may span levels, if any
        self.filter = "/".join(filter_levels[: filter_levels.index("#") + 1] if path else filter_levels)
        self._regex = re.compile("/".join(pattern) + r"\Z")

    def match(self, topic: str) -> dict[str, str] | None:
        """The bound names of ``topic``, or None when it does not fit the template."""
        found = self._regex.match(topic)
        return found.groupdict() if found else None

    def __repr__(self) -> str:
        return f"TopicTemplate({self.template!r})"
