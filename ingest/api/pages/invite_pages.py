"""Residents' access by invitation: the operators' page that makes codes (``/tech/invitations``) and the
residents' welcome (``/portal/welcome``: code, then username and password, then logged in).

Welcome, from an attacker's side: every closed code gets the same answer (``welcome_invalid``) and the
code is checked before anything else is said (the household's name, whether a username is taken);
wrong codes count per client address in a throttle of their own (:data:`REDEEM_FAILURES` per
:data:`~ingest.api.throttle.WINDOW_S`, then locked, doubling), so 80-bit codes cannot be guessed.
Taken usernames, asked for with a right code, count in another throttle (:func:`taken_throttle`): per
invitation and per address, :data:`TAKEN_PER_CODE` and :data:`TAKEN_PER_ADDRESS` in the window, then
locked, doubling up to 15 minutes; so a code holder still cannot list the accounts to guess passwords
at (at most ~100 names a day per code, and a code is good for one account), while a newcomer who tried
"mueller" twice is not locked out with a wrong code's doubled lock, nor is anyone behind the same
address (review 14, L7: one taken name after an earlier lock had locked the address for 480 s). The
form always suggests a free name, so there is little reason to try many. The forms carry
the pre-session CSRF token (a page elsewhere cannot log a visitor into an account it made); the session
is issued new after the account is made (no fixation), and leads only to ``/portal``. The code travels
in POST bodies only, never in a URL (history, logs, Referer).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.api.cookies import set_session
from ingest.api.deps import SessionDep, get_signer
from ingest.api.pages.web import PORTAL_PREFIX, CsrfChecked, StaffPage, render
from ingest.api.throttle import (
    LoginBusy,
    LoginThrottle,
    LoginThrottled,
    client_address,
    verify_gate,
)
from ingest.registry.errors import Conflict, InvalidField
from ingest.registry.invitations import (
    InvitationInvalid,
    create,
    grouped,
    list_invitations,
    normalize_code,
    open_invitation,
    redeem,
    revoke,
    suggest_username,
)
from ingest.registry.models import Household, Invitation, Role, User
from ingest.security.audit import audit

log = logging.getLogger(__name__)
router = APIRouter()  # included by the pages' router: /tech/invitations
welcome_router = APIRouter(prefix=PORTAL_PREFIX, include_in_schema=False)  # included by the app
WELCOME = f"{PORTAL_PREFIX}/welcome"
REDEEM_FAILURES = 10  # wrong codes per address and window before the lock
TAKEN_PER_CODE = 8  # taken usernames per invitation and window before its lock
TAKEN_PER_ADDRESS = 20  # taken usernames per address (all codes) and window before its lock
MAX_CODE = 100  # form field lengths: generous, the registry's rules say what is wrong
MAX_USERNAME = 200
MAX_PASSWORD = 1000


def redeem_throttle(app: FastAPI) -> LoginThrottle:
    """Wrong invitation codes, counted per client address (tests may set ``app.state.redeem_throttle``)."""
    throttle: LoginThrottle | None = getattr(app.state, "redeem_throttle", None)
    if throttle is None:
        limit = REDEEM_FAILURES
        throttle = app.state.redeem_throttle = LoginThrottle(account_failures=limit, address_failures=limit)
    return throttle


def taken_throttle(app: FastAPI) -> LoginThrottle:
    """Taken usernames after a right code, per invitation ("account") and address; its locks are its own,
    so an earlier wrong-code lock does not make one taken name lock the address for minutes."""
    throttle: LoginThrottle | None = getattr(app.state, "taken_throttle", None)
    if throttle is None:
        throttle = app.state.taken_throttle = LoginThrottle(
            account_failures=TAKEN_PER_CODE, address_failures=TAKEN_PER_ADDRESS
        )
    return throttle


# ---------------------------------------------------------------- operators: /tech/invitations


def _operator_only(request: Request, user: User) -> HTMLResponse | None:
    """A technician is told that only operators invite (with the menu); None for an operator."""
    if user.role is Role.operator:
        return None
    return render(request, "message.html", user=user, status_code=403, text_key="invite_operators_only")


def _households(session: Session) -> tuple[dict[str, list[Household]], dict[int, int]]:
    """Households by building name (for the choice), and how many residents each has."""
    by_building: dict[str, list[Household]] = defaultdict(list)
    for household in session.scalars(select(Household).order_by(Household.building_id, Household.name)):
        by_building[household.building.name].append(household)
    counts = session.execute(
        select(User.household_id, func.count())
        .where(User.household_id.is_not(None), User.is_active.is_(True))
        .group_by(User.household_id)
    )
    return dict(by_building), {household_id: n for household_id, n in counts if household_id is not None}


def _list_page(
    request: Request, session: Session, user: User, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    buildings, residents = _households(session)
    invitations, total = list_invitations(session, limit=200, offset=0)
    return render(
        request,
        "invitation_list.html",
        user=user,
        status_code=status_code,
        buildings=buildings,
        residents=residents,
        invitations=invitations,
        total=total,
        **context,
    )


@router.get("/invitations")
def invitations_page(
    request: Request, user: StaffPage, session: SessionDep, household: str = ""
) -> HTMLResponse:
    """``?household=ID`` (the households page's "Einladen") chooses that household in the form."""
    chosen = int(household) if household.isdigit() and len(household) <= 12 else None
    return _operator_only(request, user) or _list_page(request, session, user, chosen=chosen)


def url_parts(url: str) -> list[str]:
    """``url`` in the pieces a printed line may break between: after each ``/`` and, in a host too long
    for a phone's line, before each ``.`` ("https://energie", ".quartier.de/", "portal/", "welcome");
    never inside a word nor at a ``-`` (review 14, L10: "welcom|e")."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    labels = [host] if host.replace(".", "").replace(":", "").isdigit() else host.split(".")  # an IP: whole
    parts = [f"{scheme}{sep}{labels[0]}", *(f".{label}" for label in labels[1:])]
    parts[-1] += slash
    pieces = path.split("/")
    parts += [f"{piece}/" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    return [part for part in parts if part]


def _welcome_url(request: Request) -> str:
    """The welcome page's address: under ``api.public_url``, else as this request reached the app (https
    in production)."""
    public: str | None = getattr(request.app.state, "public_url", None)
    if public:
        return f"{public}{WELCOME}"
    scheme = "https" if request.app.state.secure_cookies else request.url.scheme
    return f"{scheme}://{request.url.netloc}{WELCOME}"


@router.post("/invitations", dependencies=[CsrfChecked])
def invitation_create(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    household_id: Annotated[str, Form(max_length=12)] = "",
    days: Annotated[str, Form(max_length=4)] = "14",
) -> HTMLResponse:
    refused = _operator_only(request, user)
    if refused is not None:
        return refused
    household = session.get(Household, int(household_id)) if household_id.isdigit() else None
    if household is None:
        return _list_page(request, session, user, status_code=422, error="invite_choose_household")
    if not days.isdigit() or not 1 <= int(days) <= 90:
        return _list_page(request, session, user, status_code=422, error="invite_bad_days", days=days)
    invitation, code = create(
        session,
        household_id=household.id,
        created_by=user,
        by=user.username,
        ttl=dt.timedelta(days=int(days)),
    )
    return render(
        request,
        "invitation_created.html",
        user=user,
        status_code=status.HTTP_201_CREATED,
        invitation=invitation,
        household=household,
        code=code,
        welcome_url=_welcome_url(request),
        welcome_parts=url_parts(_welcome_url(request)),
    )


@router.post("/invitations/{invitation_id}/revoke", dependencies=[CsrfChecked])
def invitation_revoke(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    invitation_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> Response:
    refused = _operator_only(request, user)
    if refused is not None:
        return refused
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND)  # the pages' "not found" page
    try:
        revoke(session, invitation, by=user.username)
    except Conflict:
        return _list_page(request, session, user, status_code=409, error="invite_already_redeemed")
    return _list_page(request, session, user, revoked=invitation.id)


# ---------------------------------------------------------------- residents: /portal/welcome


def _welcome(request: Request, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    # here: the language switch returns to the bare page (no query string echoed into a link)
    return render(
        request,
        "welcome.html",
        status_code=status_code,
        welcome=WELCOME,
        portal=PORTAL_PREFIX,
        here=WELCOME,
        **context,
    )


@welcome_router.get("/welcome")
def welcome_page(request: Request) -> HTMLResponse:
    return _welcome(request, step="code")


def _password_error(password: str) -> str:
    return "welcome_password_short" if len(password) < 10 else "welcome_password_bad"


@welcome_router.post("/welcome", dependencies=[CsrfChecked])
def welcome_submit(
    request: Request,
    session: SessionDep,
    code: Annotated[str, Form(max_length=MAX_CODE)] = "",
    username: Annotated[str | None, Form(max_length=MAX_USERNAME)] = None,
    password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    password_again: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
) -> Response:
    """Step 1 sends the code alone, step 2 the code again with username and password."""
    address = client_address(request)
    try:
        attempt = redeem_throttle(request.app).reserve(username=f"redeem@{address}", address=address)
    except LoginThrottled as exc:
        audit("invitation.throttled", client=address, retry_after_s=exc.retry_after_s)
        refused = _welcome(request, status_code=429, step="code", error="welcome_throttled")
        refused.headers["Retry-After"] = str(exc.retry_after_s)
        return refused
    with attempt:  # released uncounted unless the code was wrong or the username taken
        try:
            invitation = open_invitation(session, code)
        except InvitationInvalid:
            attempt.failed()
            audit("invitation.refused", client=address)
            return _welcome(request, status_code=400, step="code", error="welcome_invalid", code=code)
        household = invitation.household
        shown = grouped(normalize_code(code) or "")
        account: dict[str, Any] = {"step": "account", "code": shown, "household": household}
        if username is None:
            return _welcome(request, **account, username=suggest_username(session, household))
        if password != password_again:
            return _welcome(
                request,
                status_code=422,
                **account,
                username=username,
                errors={"password_again": "welcome_password_differs"},
            )
        try:
            taken = taken_throttle(request.app).reserve(
                username=f"invitation:{invitation.id}", address=address
            )
        except LoginThrottled as exc:
            audit("invitation.username_throttled", client=address, retry_after_s=exc.retry_after_s)
            refused = _welcome(
                request, status_code=429, **account, username=username, error="welcome_taken_throttled"
            )
            refused.headers["Retry-After"] = str(exc.retry_after_s)
            return refused
        with taken:  # released uncounted unless the username was taken
            try:
                with verify_gate(request.app).slot():  # argon2: as many at once as logins
                    user = redeem(session, code, username=username, password=password, client=address)
            except LoginBusy as exc:
                busy = _welcome(request, status_code=503, **account, username=username, error="login_busy")
                busy.headers["Retry-After"] = str(exc.retry_after_s)
                return busy
            except InvalidField as exc:
                key = "welcome_username_bad" if exc.field == "username" else _password_error(password)
                return _welcome(
                    request, status_code=422, **account, username=username, errors={exc.field: key}
                )
            except Conflict:
                taken.failed()  # a code holder probing for usernames is throttled, not as a wrong code
                errors = {"username": "welcome_username_taken"}
                return _welcome(request, status_code=409, **account, username=username, errors=errors)
            except InvitationInvalid:  # used or revoked between the check and the claim
                return _welcome(request, status_code=400, step="code", error="welcome_invalid")
            taken.succeeded()
    audit("login.ok", user=user.username, role=user.role.value, client=address, via="invitation")
    response = RedirectResponse(PORTAL_PREFIX, status_code=status.HTTP_303_SEE_OTHER)
    set_session(request, response, get_signer(request).issue(user))
    return response
