"""Security events through one logger, ``reallabor.audit``: one line each, ``event key=value ...``.

Events: ``login.ok``, ``login.refused``, ``login.throttled``, ``logout``, ``user.created``,
``user.changed``, ``user.deleted``, ``gateway.provisioned``, ``gateway.rotated``, ``gateway.revoked``,
``devices.imported``, ``commissioning.started``, ``invitation.created``, ``invitation.revoked``,
``invitation.redeemed``, ``invitation.refused`` (a wrong code: the client, never the code),
``invitation.throttled``. Values are written with ``repr`` (a newline in a
submitted username cannot forge a line); the fields also travel on the record as ``record.audit``.
Never pass a password, token or key: callers name who and what, never with which secret.
"""

from __future__ import annotations

import logging
import sys

AUDIT_LOGGER = "reallabor.audit"
_audit = logging.getLogger(AUDIT_LOGGER)


def audit(event: str, /, **fields: object) -> None:
    """Log the security event ``event`` with ``fields`` (lazily formatted)."""
    if not _audit.isEnabledFor(logging.INFO):
        return
    template = event + "".join(f" {name}=%r" for name in fields)
    _audit.info(template, *fields.values(), extra={"audit": {"event": event, **fields}})


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level``; security events are kept even when ``level`` is above INFO."""
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    if _audit.getEffectiveLevel() > logging.INFO:
        _audit.setLevel(logging.INFO)
