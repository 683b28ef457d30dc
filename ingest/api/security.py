"""Session tokens: signed (itsdangerous, HMAC with ``api.secret_key``), time-limited, revocable.

A token carries the user id, the user's random ``session_key`` and ``session_version``. The key names
the user unambiguously: ids can be handed out again (SQLite reuses the highest id after a delete), keys
are never shared, so a token dies with its user. Logout, a password or role change bump the version, so
every token issued before stops working. The same token travels as a Bearer header (API clients) or as
an HttpOnly, SameSite=Strict cookie (browser pages). Tokens are never logged.

Over HTTPS (production) the cookies are named with the ``__Host-`` prefix: a browser keeps such a
cookie only when it is Secure, has Path=/ and no Domain, so no other host (a sibling subdomain) can set
or replace it. Over plain HTTP (development) browsers refuse the prefix, so the plain names stay.

The CSRF token of a session (:meth:`TokenSigner.csrf_token`) is an HMAC of its session token under a
key derived from the secret key: only this app can make it, it is good for that session only, and it
changes with every login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "reallabor_session"
HOST_PREFIX = "__Host-"
DEFAULT_MAX_AGE_S = 12 * 3600


def cookie_name(name: str, *, secure: bool) -> str:
    """``name`` as the app sets and reads it: with the ``__Host-`` prefix when cookies are Secure."""
    return HOST_PREFIX + name if secure else name


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
    """Issues and reads session tokens; ``cookie_name`` is the session cookie's name in this app."""

    def __init__(
        self, secret_key: str, *, max_age_s: int = DEFAULT_MAX_AGE_S, cookie_name: str = SESSION_COOKIE
    ) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="reallabor-session")
        self._csrf_key = hmac.digest(secret_key.encode(), b"reallabor-csrf", hashlib.sha256)
        self.max_age_s = max_age_s
        self.cookie_name = cookie_name

    def __repr__(self) -> str:
        return f"TokenSigner(max_age_s={self.max_age_s}, cookie_name={self.cookie_name!r})"

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token that goes with ``session_token`` (43 URL-safe characters)."""
        digest = hmac.digest(self._csrf_key, session_token.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

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
