"""Login and logout. The token is returned in the body and set as an HttpOnly cookie."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from ingest.api.deps import CurrentUser, SessionDep, get_signer
from ingest.api.schemas import LoginRequest, LoginResponse, UserPublic
from ingest.api.security import SESSION_COOKIE, TokenSigner
from ingest.registry.people import authenticate, end_sessions

log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", responses={401: {"description": "wrong username or password"}})
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    signer: Annotated[TokenSigner, Depends(get_signer)],
) -> LoginResponse:
    user = authenticate(session, username=body.username, password=body.password)
    if user is None:
        log.info("login refused: wrong username or password")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token = signer.issue(user)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=signer.max_age_s,
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    log.info("user %s (%s) logged in", user.username, user.role.value)
    return LoginResponse(
        access_token=token, expires_in=signer.max_age_s, user=UserPublic.model_validate(user)
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUser, session: SessionDep, response: Response) -> None:
    """End every session of the calling user (all devices) and clear the cookie."""
    end_sessions(session, user)
    response.delete_cookie(SESSION_COOKIE, path="/")
