"""CSRF, one rule for the whole app (API and pages), applied to every route as an app-wide dependency.

    A state-changing request (not GET, HEAD, OPTIONS) that the session cookie authenticates must also
    send ``Content-Type: application/json``, or the CSRF token of that session: the ``X-CSRF-Token``
    header or the pages' ``csrf_token`` form field, an HMAC of the session token under the API's key
    (:meth:`ingest.api.security.TokenSigner.csrf_token`; the pages put it in their forms).

Why that suffices: a cross-site page can make the browser send the cookie with a form post or a simple
``fetch``, but neither can send a JSON content type or a custom header without a CORS preflight, which
this app never grants; nor can it read the session cookie (HttpOnly) or make its token without the key.
SameSite=Strict on the session cookie stays, but alone it is not enough: a sibling subdomain is the same
site. It can also set cookies for this host, so a token that only had to equal a cookie (the double
submit this replaced) was forgeable: the review tossed its own CSRF cookie and started a commissioning
run. In production the cookies carry the ``__Host-`` prefix, which no other host can set.

The cookie authenticates unless the request carries a Bearer token (the API then ignores the cookie; the
pages never read Authorization): Bearer clients hold no ambient credential and need nothing more. The
pages' forms also check their token per route (:data:`ingest.api.pages.web.CsrfChecked`), which covers
the login form, where no session exists yet (a pre-session double submit there: see ``web.py``).
"""

from __future__ import annotations

import logging

from fastapi import HTTPException, Request, status

from ingest.api.cookies import session_token
from ingest.api.pages.web import CSRF_FIELD, OPS_PREFIX, PAGES_PREFIX, PORTAL_PREFIX, CsrfRefused, csrf_valid

log = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGE_PREFIXES = (PAGES_PREFIX, OPS_PREFIX, PORTAL_PREFIX)  # HTML forms: a refusal is a page, not JSON


def _is_page(path: str) -> bool:
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in PAGE_PREFIXES)


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _cookie_authenticates(request: Request) -> bool:
    if session_token(request) is None:
        return False
    if request.url.path.startswith(PAGES_PREFIX):
        return True  # the pages know only the cookie
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return not (scheme.lower() == "bearer" and credentials.strip())


async def csrf_protect(request: Request) -> None:
    """The rule above; 403 (the pages: their 'reload and send again' page) when it is not met."""
    if request.method in SAFE_METHODS or not _cookie_authenticates(request):
        return
    media_type = _media_type(request)
    if _is_json(media_type):
        return
    if csrf_valid(request, request.headers.get(CSRF_HEADER)):
        return  # with a session cookie, csrf_valid wants the session's own token
    if media_type in _FORMS and csrf_valid(request, (await request.form()).get(CSRF_FIELD)):
        return  # the form is bounded by ingest.api.limits and parsed once (FastAPI reuses it)
    log.info(
        "refused %s %s by session cookie: no JSON body and no CSRF token of this session",
        request.method,
        request.url.path,
    )
    if _is_page(request.url.path):
        raise CsrfRefused()  # "the form has expired, reload" (router.py), also on /ops and /portal
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        f"CSRF check failed: a request authenticated by the session cookie must send "
        f"Content-Type: application/json or the {CSRF_HEADER} header of its session (or use a Bearer token)",
    )
