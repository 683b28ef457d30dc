"""Login and logout. The token is returned in the body and set as an HttpOnly cookie.

Logins go through :func:`ingest.api.throttle.attempt_login`: throttled per account and address, a few
password verifications at once per process, audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from ingest.api.cookies import clear_session, set_session
from ingest.api.deps import CurrentUser, SessionDep, get_signer
from ingest.api.schemas import LoginRequest, LoginResponse, UserPublic
from ingest.api.security import TokenSigner
from ingest.api.throttle import LoginBusy, LoginThrottled, attempt_login, client_address
from ingest.registry.people import end_sessions
from ingest.security.audit import audit

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "too many failed logins for this account or address: see Retry-After"},
        503: {"description": "too many logins at once: see Retry-After"},
    },
)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    signer: Annotated[TokenSigner, Depends(get_signer)],
) -> LoginResponse:
    try:
        user = attempt_login(request, session, username=body.username, password=body.password, via="api")
    except LoginThrottled as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        ) from None
    except LoginBusy as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        ) from None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token = signer.issue(user)
    set_session(request, response, token)
    return LoginResponse(
        access_token=token, expires_in=signer.max_age_s, user=UserPublic.model_validate(user)
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUser, session: SessionDep, request: Request, response: Response) -> None:
    """End every session of the calling user (all devices) and clear the cookie."""
    end_sessions(session, user)
    audit("logout", user=user.username, client=client_address(request), via="api")
    clear_session(request, response)
