"""The commissioning check's errors::

CommissioningError
 ├── BrokerUnavailable   no connection to the broker, refused login or subscription
 ├── CheckNotPossible    the device cannot be checked (unknown profile, no topic for it)
 └── TooManyRuns         the limit of checks running at once is reached
"""

from __future__ import annotations


class CommissioningError(Exception):
    """Base of the commissioning check's errors."""


class BrokerUnavailable(CommissioningError):
    """No connection to the broker, or it refused our login or subscription."""


class CheckNotPossible(CommissioningError):
    """The device cannot be checked: its profile is unknown or names no topic for it."""


class TooManyRuns(CommissioningError):
    """As many checks as allowed are running; try again when one has finished."""
