"""Topic templates: ``lab/{gateway}/{device}/state`` binds topic levels to names.

A level is a literal, ``{name}`` (binds exactly one level), ``+`` (any one level, unbound) or a final
``#`` (any rest). The MQTT subscription filter replaces every binding with ``+``.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"\{([a-z_][a-z0-9_]*)\}\Z")  # \Z: "$" would pass a trailing newline


class TopicTemplate:
    __slots__ = ("_regex", "filter", "names", "template")

    def __init__(self, template: str) -> None:
        if not template or (template.startswith("/") and len(template) == 1):
            raise ValueError("a topic template must not be empty")
        levels = template.split("/")
        pattern: list[str] = []
        filter_levels: list[str] = []
        names: list[str] = []
        for index, level in enumerate(levels):
            bound = _NAME.match(level)
            if bound:
                name = bound.group(1)
                if name in names:
                    raise ValueError(f"{template!r}: {{{name}}} is bound twice")
                names.append(name)
                pattern.append(f"(?P<{name}>[^/]+)")
                filter_levels.append("+")
            elif level == "+":
                pattern.append("[^/]+")
                filter_levels.append("+")
            elif level == "#":
                if index != len(levels) - 1:
                    raise ValueError(f"{template!r}: '#' may only be the last level")
                pattern.append(".*")
                filter_levels.append("#")
            elif any(c in level for c in "{}+#"):
                raise ValueError(
                    f"{template!r}: level {level!r} must be a literal, {{name}}, '+' or '#' "
                    "(names: lower case letters, digits, _)"
                )
            else:
                pattern.append(re.escape(level))
                filter_levels.append(level)
        self.template = template
        self.names = tuple(names)
        self.filter = "/".join(filter_levels)
        self._regex = re.compile("/".join(pattern) + r"\Z")

    def match(self, topic: str) -> dict[str, str] | None:
        """The bound names of ``topic``, or None when it does not fit the template."""
        found = self._regex.match(topic)
        return found.groupdict() if found else None

    def __repr__(self) -> str:
        return f"TopicTemplate({self.template!r})"
