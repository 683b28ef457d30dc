"""Dependencies as ``Annotated`` aliases: every route states who may call it in its signature.

``SessionDep`` a database session; ``CurrentUser`` any logged-in user (else 401);
``OperatorUser``, ``StaffUser`` (operator or technician), ``ResidentUser``: the role (else 403);
``BrokerDep`` the broker's account administration (503 when not configured). The session cookie is
read and written by :mod:`ingest.api.cookies`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from ingest.api.cookies import session_token
from ingest.api.security import HOST_PREFIX, SESSION_COOKIE, TokenSigner
from ingest.registry.fleet import BrokerAccounts
from ingest.registry.models import Role, User

MAX_ID = 2**31 - 1


class _SessionCookie(APIKeyCookie):
    """The session cookie under the app's name for it (documented under the development name)."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        return session_token(request)


_bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/login")
_cookie = _SessionCookie(
    name=SESSION_COOKIE,
    scheme_name="APIKeyCookie",  # the OpenAPI document's name for it, as before
    auto_error=False,
    description=f"set by POST /api/v1/auth/login; {HOST_PREFIX}{SESSION_COOKIE} over HTTPS (production)",
)


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_signer(request: Request) -> TokenSigner:
    signer: TokenSigner = request.app.state.signer
    return signer


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def token_user(session: Session, signer: TokenSigner, token: str) -> User | None:
    """The active user ``token`` was issued to, while their sessions last; None for anything else.

    The one check of a session, for the API (Bearer or cookie) and the pages (cookie) alike.
    """
    claims = signer.read(token)
    if claims is None:
        return None
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active or not claims.match(user):
        return None
    return user


def current_user(
    session: SessionDep,
    signer: Annotated[TokenSigner, Depends(get_signer)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> User:
    token = bearer.credentials if bearer is not None else cookie
    if not token:
        raise _unauthorized("not logged in")
    user = token_user(session, signer, token)
    if user is None:
        raise _unauthorized("invalid or expired session")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets only ``roles`` through (403 for other logged-in users)."""
    allowed = frozenset(roles)

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed for your role")
        return user

    check.__name__ = "require_" + "_or_".join(role.value for role in roles)
    return check


OperatorUser = Annotated[User, Depends(require_role(Role.operator))]
StaffUser = Annotated[User, Depends(require_role(Role.operator, Role.technician))]
ResidentUser = Annotated[User, Depends(require_role(Role.resident))]


def get_broker(request: Request) -> BrokerAccounts:
    broker: BrokerAccounts | None = request.app.state.broker
    if broker is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "broker administration is not configured")
    return broker


BrokerDep = Annotated[BrokerAccounts, Depends(get_broker)]

ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10**9)]
FilterId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
