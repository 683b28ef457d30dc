"""The pages' plumbing: who is logged in (cookie session), CSRF protection, rendering with the language.

CSRF: every form carries a token in a hidden field, and a POST without the right one is refused with 403.
With a session cookie, the right token is the session's own (:meth:`TokenSigner.csrf_token`, an HMAC of
the session token): a token merely equal to a cookie would not do, since a sibling subdomain can set
("toss") cookies for this host and send the same value (the review started a commissioning run so).

Before login there is no session to bind to, so the login form alone keeps the double submit: a random
token in an HttpOnly, SameSite=Strict cookie (``__Host-`` prefixed in production, so that no other host
can set it) and the same in the field. What it guards is login CSRF (a victim logged in to the attacker's
account). It never authorizes anything in a session: as soon as a session cookie is sent, only the
session's token counts. The app-wide rule for every state change by session cookie, API routes included
(JSON content type or the token), is in :mod:`ingest.api.csrf`.
"""

from __future__ import annotations

import hmac
import re
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ingest.api.cookies import login_csrf, session_token, set_login_csrf
from ingest.api.deps import SessionDep, get_signer, token_user
from ingest.api.pages.i18n import LANGUAGES, negotiate, translator
from ingest.api.pages.localize import Localizer, zone
from ingest.registry.models import Role, User

PAGES_PREFIX = "/tech"
OPS_PREFIX = "/ops"  # the operators' overview (ops_page.py)
PORTAL_PREFIX = "/portal"  # the residents' pages; a resident lands there after login
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
CSRF_FIELD = "csrf_token"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
STAFF = frozenset({Role.operator, Role.technician})

templates = Jinja2Templates(directory=TEMPLATES_DIR)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class LoginRequired(Exception):
    """No valid session: the page redirects to the login (and back afterwards)."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PageForbidden(Exception):
    """Logged in, but not allowed here: a resident on the technicians' pages (``need="staff"``), or a
    technician where only operators may act (``need="operator"``)."""

    def __init__(self, user: User, *, need: str = "staff") -> None:
        super().__init__(need)
        self.user = user
        self.need = need


class CsrfRefused(Exception):
    """A form POST without the matching CSRF token."""


def _in_portal(target: str) -> bool:
    return target == PORTAL_PREFIX or target.startswith((f"{PORTAL_PREFIX}/", f"{PORTAL_PREFIX}?"))


def safe_next(target: str | None) -> str:
    """Only our own pages as redirect targets (no open redirect)."""
    ours = target is not None and (target.startswith((PAGES_PREFIX, OPS_PREFIX)) or _in_portal(target))
    if target and ours and not target.startswith("//") and "\\" not in target:
        return target
    return PAGES_PREFIX


def landing(user: User, target: str) -> str:
    """Where a login leads (``target`` already :func:`safe_next`): a resident to the portal whatever
    was asked (a /tech or /ops link would only show 403), staff never into the portal."""
    if user.role is Role.resident:
        return target if _in_portal(target) else PORTAL_PREFIX
    return PAGES_PREFIX if _in_portal(target) else target


def session_user(request: Request, session: SessionDep) -> User | None:
    token = session_token(request)
    return token_user(session, get_signer(request), token) if token else None


def staff_page_user(request: Request, user: Annotated[User | None, Depends(session_user)]) -> User:
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    if user.role not in STAFF:
        raise PageForbidden(user)
    return user


StaffPage = Annotated[User, Depends(staff_page_user)]


def operator_page_user(user: StaffPage) -> User:
    if user.role is not Role.operator:
        raise PageForbidden(user, need="operator")
    return user


OperatorPage = Annotated[User, Depends(operator_page_user)]


def localizer(request: Request, lang: str | None = None) -> Localizer:
    """Times, numbers, badges and foreign messages in the page's language and the quarter's zone."""
    return Localizer(lang or negotiate(request), zone(getattr(request.app.state, "timezone", None)))


def csrf_token(request: Request) -> str:
    """The CSRF token for this browser's forms: its session's, or before login the pre-session one (a new
    one is set as cookie by :func:`render`)."""
    token = session_token(request)
    if token is not None:
        return get_signer(request).csrf_token(token)
    existing = login_csrf(request)
    if _TOKEN.fullmatch(existing):
        return existing
    if not getattr(request.state, "new_csrf", None):
        request.state.new_csrf = secrets.token_urlsafe(32)
    new: str = request.state.new_csrf
    return new


def csrf_valid(request: Request, sent: object) -> bool:
    """Whether ``sent`` is this browser's CSRF token: with a session cookie the session's own token,
    without one (the login form) equal to the pre-session cookie."""
    if not isinstance(sent, str) or not sent:
        return False
    token = session_token(request)
    if token is not None:
        expected = get_signer(request).csrf_token(token)
    else:
        expected = login_csrf(request)
        if not _TOKEN.fullmatch(expected):
            return False
    return hmac.compare_digest(sent.encode(errors="replace"), expected.encode())


async def check_csrf(request: Request) -> None:
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):
        raise CsrfRefused()


CsrfChecked = Depends(check_csrf)


def login_url(next_url: str) -> str:
    return f"{PAGES_PREFIX}/login?next={quote(next_url, safe='/')}"


def language_context(request: Request, lang: str) -> dict[str, Any]:
    """What every page's template needs besides its own values: the language with its texts and formats,
    the other languages (the switch), the shared stylesheet's place."""
    return {
        "request": request,
        "lang": lang,
        "other_langs": [code for code in LANGUAGES if code != lang],
        "t": translator(lang),
        "fmt": localizer(request, lang),
        "prefix": PAGES_PREFIX,
    }


def render(
    request: Request,
    name: str,
    *,
    user: User | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = negotiate(request)
    values = {
        **language_context(request, lang),
        "user": user,
        "csrf": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    }
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    new = getattr(request.state, "new_csrf", None)
    if new:
        set_login_csrf(request, response, new)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Language"] = lang
    return response
