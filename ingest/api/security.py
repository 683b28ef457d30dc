"""Session tokens: signed (itsdangerous, HMAC with ``api.secret_key``), time-limited, revocable.

A token carries the user id, the user's random ``session_key`` and ``session_version``. The key names
the user unambiguously: ids can be handed out again (SQLite reuses the highest id after a delete), keys
are never shared, so a token dies with its user. Logout, a password or role change bump the version, so
every token issued before stops working. The same token travels as a Bearer header (API clients) or as
an HttpOnly, SameSite=Strict cookie (browser pages). Tokens are never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "reallabor_session"
DEFAULT_MAX_AGE_S = 12 * 3600


class SessionOwner(Protocol):
    """What a token is issued for and checked against (a registry ``User``)."""

    @property
    def id(self) -> int: ...

    @property
    def session_key(self) -> str: ...

    @property
    def session_version(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_key: str
    session_version: int

    def match(self, owner: SessionOwner) -> bool:
        """True when this token was issued to ``owner`` and its sessions were not ended since."""
        return (
            bool(owner.session_key)  # an empty key (never issued) matches nothing
            and owner.id == self.user_id
            and hmac.compare_digest(owner.session_key.encode(), self.session_key.encode())
            and owner.session_version == self.session_version
        )


class TokenSigner:
    def __init__(self, secret_key: str, *, max_age_s: int = DEFAULT_MAX_AGE_S) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="reallabor-session")
        self.max_age_s = max_age_s

    def __repr__(self) -> str:
        return f"TokenSigner(max_age_s={self.max_age_s})"

    def issue(self, owner: SessionOwner) -> str:
        if not owner.session_key:
            raise ValueError("the user has no session key")
        return self._serializer.dumps({"u": owner.id, "k": owner.session_key, "v": owner.session_version})

    def read(self, token: str) -> TokenClaims | None:
        """The claims of a genuine, unexpired token; None for anything else."""
        try:
            data = self._serializer.loads(token, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is a BadSignature
            return None
        if not isinstance(data, dict):
            return None
        user_id, key, version = data.get("u"), data.get("k"), data.get("v")
        if (
            not isinstance(user_id, int)
            or not isinstance(key, str)
            or not key
            or not isinstance(version, int)
        ):
            return None
        return TokenClaims(user_id=user_id, session_key=key, session_version=version)
