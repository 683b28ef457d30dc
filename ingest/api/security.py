"""Session tokens: signed (itsdangerous, HMAC with ``api.secret_key``), time-limited, revocable.

A token carries the user id and the user's ``session_version``; logout, a password or role change bump
the version, so every token issued before stops working. The same token travels as a Bearer header
(API clients) or as an HttpOnly, SameSite=Strict cookie (browser pages). Tokens are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "reallabor_session"
DEFAULT_MAX_AGE_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_version: int


class TokenSigner:
    def __init__(self, secret_key: str, *, max_age_s: int = DEFAULT_MAX_AGE_S) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="reallabor-session")
        self.max_age_s = max_age_s

    def __repr__(self) -> str:
        return f"TokenSigner(max_age_s={self.max_age_s})"

    def issue(self, *, user_id: int, session_version: int) -> str:
        return self._serializer.dumps({"u": user_id, "v": session_version})

    def read(self, token: str) -> TokenClaims | None:
        """The claims of a genuine, unexpired token; None for anything else."""
        try:
            data = self._serializer.loads(token, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is a BadSignature
            return None
        if not isinstance(data, dict):
            return None
        user_id, version = data.get("u"), data.get("v")
        if not isinstance(user_id, int) or not isinstance(version, int):
            return None
        return TokenClaims(user_id=user_id, session_version=version)
