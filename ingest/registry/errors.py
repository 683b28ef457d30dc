"""Registry errors. Database errors are translated here, at the door, into this small tree::

RegistryError
 ├── Conflict          the change contradicts existing data (duplicate, overlap, still referenced)
 ├── NotFound          a row looked up by name (CLI) does not exist
 └── InvalidField      a field's value cannot be used: no such row, wrong building, bad interval
      └── InvalidFields  several at once (registering a device: every problem, answered as one 422)
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry raises."""


class Conflict(RegistryError):
    """The change contradicts existing data: a duplicate, an overlapping assignment, a row still in use."""


class NotFound(RegistryError):
    """A row looked up by name (CLI) does not exist."""


class InvalidField(RegistryError):
    """A field's value cannot be used: it names no row, a row that does not fit, or a bad interval."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidFields(InvalidField):
    """Several field errors at once, as (field, reason); the first is also ``field`` and ``message``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems[0][0], problems[0][1])
        self.problems = problems
