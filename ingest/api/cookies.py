"""Every cookie the app sets and reads, with its attributes in one place, for the API and the pages alike.

- the session (API login, the pages' login, an invitation redeemed): the token, HttpOnly, SameSite=Strict,
  Path=/, no Domain, Max-Age the token's lifetime;
- the login form's CSRF token before any session (:mod:`ingest.api.pages.web`): HttpOnly, SameSite=Strict,
  Path=/, a session cookie of the browser;
- the page language (the switches of /tech and /portal): SameSite=Lax, Path=/, a year.

Over HTTPS (production) the session and CSRF cookies are Secure and named with the ``__Host-`` prefix
(:func:`ingest.api.security.cookie_name`); a cleared one carries the attributes it was set with, since a
browser keeps a ``__Host-`` cookie cleared without Secure. Only the app's own name is read, so a tossed
unprefixed cookie is ignored in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from ingest.api.security import TokenSigner, cookie_name

CSRF_COOKIE = "reallabor_csrf"  # before login only; "__Host-reallabor_csrf" in production
LANG_COOKIE = "reallabor_lang"
LANG_MAX_AGE_S = 365 * 86400


def _signer(request: HTTPConnection) -> TokenSigner:
    signer: TokenSigner = request.app.state.signer
    return signer


def _strict(request: HTTPConnection) -> dict[str, Any]:
    """HttpOnly, SameSite=Strict, Path=/ and no Domain (what the ``__Host-`` prefix requires)."""
    return {"httponly": True, "samesite": "strict", "secure": request.app.state.secure_cookies, "path": "/"}


def session_token_in(cookies: Mapping[str, str], signer: TokenSigner) -> str | None:
    """The session token among ``cookies`` (None: none sent)."""
    return cookies.get(signer.cookie_name) or None


def session_token(request: HTTPConnection) -> str | None:
    """The session token of the request's cookie (None: none sent)."""
    return session_token_in(request.cookies, _signer(request))


def set_session(request: HTTPConnection, response: Response, token: str) -> None:
    signer = _signer(request)
    response.set_cookie(signer.cookie_name, token, max_age=signer.max_age_s, **_strict(request))


def clear_session(request: HTTPConnection, response: Response) -> None:
    response.delete_cookie(_signer(request).cookie_name, **_strict(request))


def csrf_cookie_name(request: HTTPConnection) -> str:
    return cookie_name(CSRF_COOKIE, secure=request.app.state.secure_cookies)


def login_csrf(request: HTTPConnection) -> str:
    """The login form's CSRF token as the browser sent it ("" when none)."""
    return request.cookies.get(csrf_cookie_name(request), "")


def set_login_csrf(request: HTTPConnection, response: Response, token: str) -> None:
    response.set_cookie(csrf_cookie_name(request), token, **_strict(request))


def set_language(response: Response, code: str) -> None:
    response.set_cookie(LANG_COOKIE, code, max_age=LANG_MAX_AGE_S, samesite="lax", path="/")


def language(request: HTTPConnection) -> str | None:
    return request.cookies.get(LANG_COOKIE)
