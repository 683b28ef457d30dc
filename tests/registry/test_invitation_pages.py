"""Residents' access by invitation through the app: the operators' page and API, the welcome page (code,
account, logged in, logout), and an attacker's tries: CSRF, wrong and closed codes (one answer, throttled),
session fixation, redirects after login."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.api.pages import invite_pages as inv_pages
from ingest.api.security import SESSION_COOKIE
from ingest.api.throttle import LoginThrottle
from ingest.registry import invitations as inv
from ingest.registry.models import Household, Invitation, Role, User
from ingest.security.audit import AUDIT_LOGGER
from tests.registry import factories as f
from tests.registry.pages_client import form_token, login

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

WELCOME = "/portal/welcome"
PASSWORD = "Mein Balkon hat 3 Tomaten"
CODE = re.compile(r'id="invitation-code">([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})<')
ERROR = re.compile(r'<p class="notice bad" role="alert" id="welcome-error">([^<]*)</p>')


def _count(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Invitation)) or 0


def _welcome_token(api: TestClient) -> str:
    """A fresh anonymous browser on the welcome page: its pre-session CSRF token."""
    api.cookies.clear()
    api.cookies.set("reallabor_lang", "de")
    return form_token(api.get(WELCOME).text)


def _code_step(api: TestClient, code: str, token: str) -> tuple[int, str]:
    response = api.post(WELCOME, data={"code": code, "csrf_token": token})
    return response.status_code, response.text


def _error(text: str) -> str:
    found = ERROR.search(text)
    assert found, text[-800:]
    return found.group(1)


def test_operator_creates_and_withdraws_on_the_page(api: TestClient, session: Session) -> None:
    household = f.household(session)
    token = login(api, f.user(session, Role.operator))
    page = api.get("/tech/invitations")
    assert page.status_code == 200
    assert f'<option value="{household.id}">{household.name}</option>' in page.text
    assert 'href="/tech/invitations"' in page.text  # in the operators' menu

    before = _count(session)
    created = api.post(
        "/tech/invitations", data={"household_id": str(household.id), "days": "7", "csrf_token": token}
    )
    assert created.status_code == 201, created.text
    found = CODE.search(created.text)
    assert found
    code = found.group(1)
    # the print box may break the address after a '/' only (review 14, L10)
    pieces = "<span>http://testserver/</span><wbr><span>portal/</span><wbr><span>welcome</span>"
    assert f'<strong class="url" tabindex="0">{pieces}</strong>' in created.text
    assert household.name in created.text
    assert _count(session) == before + 1
    listing = api.get("/tech/invitations").text
    assert code not in listing  # shown once, never again
    invitation = session.scalars(select(Invitation).order_by(Invitation.id.desc())).first()
    assert invitation is not None
    assert f"/tech/invitations/{invitation.id}/revoke" in listing

    for bad in ({"household_id": "", "days": "7"}, {"household_id": str(household.id), "days": "0"}):
        refused = api.post("/tech/invitations", data={**bad, "csrf_token": token})
        assert refused.status_code == 422
    assert _count(session) == before + 1

    withdrawn = api.post(f"/tech/invitations/{invitation.id}/revoke", data={"csrf_token": token})
    assert withdrawn.status_code == 200
    assert f"Einladung {invitation.id} ist zurückgezogen." in withdrawn.text
    session.expire_all()  # the app changed it in its own session
    with pytest.raises(inv.InvitationInvalid):
        inv.open_invitation(session, code)
    assert api.post("/tech/invitations/999999/revoke", data={"csrf_token": token}).status_code == 404


def test_operator_forms_need_the_sessions_csrf_token(api: TestClient, session: Session) -> None:
    household = f.household(session)
    login(api, f.user(session, Role.operator))
    before = _count(session)
    for token in (None, "x" * 43, "c" * 43):
        data = {"household_id": str(household.id)} | ({"csrf_token": token} if token else {})
        refused = api.post("/tech/invitations", data=data)
        assert refused.status_code == 403
        assert CODE.search(refused.text) is None
    assert _count(session) == before


def test_technician_and_resident_cannot_invite(api: TestClient, session: Session) -> None:
    household = f.household(session)
    before = _count(session)
    token = login(api, f.user(session, Role.technician))
    assert "Nur der Betrieb (Rolle Operator) kann Einladungen erstellen." in api.get("/tech/invitations").text
    denied = api.post("/tech/invitations", data={"household_id": str(household.id), "csrf_token": token})
    assert denied.status_code == 403
    assert 'href="/tech/invitations"' not in api.get("/tech").text  # no menu entry for technicians
    # the resident of the household itself
    resident = f.user(session, Role.resident, household.id)
    api.cookies.clear()
    login_page = api.get("/tech/login")
    api.post(
        "/tech/login",
        data={
            "username": resident.username,
            "password": f.PASSWORD,
            "csrf_token": form_token(login_page.text),
        },
    )
    forbidden = api.get("/tech")
    assert forbidden.status_code == 403
    token = form_token(forbidden.text)
    assert (
        api.post(
            "/tech/invitations", data={"household_id": str(household.id), "csrf_token": token}
        ).status_code
        == 403
    )
    assert _count(session) == before


def test_api_create_list_revoke(api: TestClient, session: Session) -> None:
    household = f.household(session)
    operator = f.user(session, Role.operator)
    signer = api.app.state.signer  # type: ignore[attr-defined]
    bearer = {"Authorization": f"Bearer {signer.issue(operator)}"}
    created = api.post(f"/api/v1/households/{household.id}/invitations", json={"days": 2}, headers=bearer)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    code = body["code"]
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
    assert body["welcome_path"] == WELCOME
    assert body["invitation"]["state"] == "open"
    assert api.post("/api/v1/households/999999/invitations", json={}, headers=bearer).status_code == 404
    assert (
        api.post(
            f"/api/v1/households/{household.id}/invitations", json={"days": 91}, headers=bearer
        ).status_code
        == 422
    )

    listing = api.get("/api/v1/invitations", params={"household_id": household.id}, headers=bearer)
    assert listing.json()["total"] == 1
    assert code not in listing.text
    assert code.replace("-", "") not in listing.text
    invitation_id = body["invitation"]["id"]

    # a cookie-authenticated form post (what a cross-site page could send) is refused
    api.cookies.set(SESSION_COOKIE, signer.issue(operator))
    forged = api.post(f"/api/v1/households/{household.id}/invitations", data={"days": "3"})
    assert forged.status_code == 403
    api.cookies.clear()
    assert (
        api.get("/api/v1/invitations", params={"household_id": household.id}, headers=bearer).json()["total"]
        == 1
    )

    inv.redeem(session, code, username="api.resident", password=PASSWORD)
    again = api.post(f"/api/v1/invitations/{invitation_id}/revoke", headers=bearer)
    assert again.status_code == 409
    everything = api.get(
        "/api/v1/invitations", params={"household_id": household.id, "state": "all"}, headers=bearer
    )
    assert [item["state"] for item in everything.json()["items"]] == ["redeemed"]


def test_welcome_redeem_login_logout(
    api: TestClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="test")
    token = _welcome_token(api)
    status, page = _code_step(api, code.lower().replace("-", " "), token)
    assert status == 200, page
    assert f"Ihr Zugang für {household.name}" in page
    suggested = re.search(r'id="username" name="username"[^>]*value="([^"]*)"', page)
    assert suggested
    assert inv.username_problem(suggested.group(1)) is None

    data = {"code": code, "csrf_token": token, "username": "erika.m", "password": PASSWORD}
    differs = api.post(WELCOME, data=data | {"password_again": PASSWORD + "!"})
    assert differs.status_code == 422
    assert "Die beiden Passwörter sind verschieden." in differs.text
    short = api.post(WELCOME, data=data | {"password": "kurz", "password_again": "kurz"})
    assert short.status_code == 422
    assert "mindestens 10 Zeichen" in short.text
    f.user(session, Role.technician)  # someone else's name, in another case
    taken_name = session.scalars(select(User.username).where(User.role == Role.technician)).first()
    assert taken_name is not None
    taken = api.post(WELCOME, data=data | {"username": taken_name.upper(), "password_again": PASSWORD})
    assert taken.status_code == 409
    assert "Diesen Benutzernamen gibt es schon." in taken.text

    done = api.post(WELCOME, data=data | {"password_again": PASSWORD}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/portal"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    me = api.get("/api/v1/me").json()
    assert me["username"] == "erika.m"
    assert me["role"] == "resident"
    assert me["household_id"] == household.id

    # logout ends the session: the old token no longer works anywhere
    old = api.cookies.get(SESSION_COOKIE)
    assert old
    logout_token = form_token(api.get("/tech").text)  # a resident's /tech: the way out, with logout
    out = api.post("/tech/logout", data={"csrf_token": logout_token}, follow_redirects=False)
    assert out.status_code == 303
    api.cookies.clear()
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401

    # and the resident logs in again on the one login page, landing on the portal
    login_page = api.get("/tech/login?next=/tech/fleet")
    back = api.post(
        "/tech/login",
        data={
            "username": "erika.m",
            "password": PASSWORD,
            "next": "/tech/fleet",
            "csrf_token": form_token(login_page.text),
        },
        follow_redirects=False,
    )
    assert back.status_code == 303
    assert back.headers["location"] == "/portal"

    # the code is used up: the same neutral answer as any wrong code
    token = _welcome_token(api)
    status, page = _code_step(api, code, token)
    assert status == 400
    assert household.name not in page
    assert "invitation.redeemed" in caplog.text
    assert "invitation.refused" in caplog.text
    assert code not in caplog.text
    assert code.replace("-", "") not in caplog.text
    assert PASSWORD not in caplog.text


def test_closed_and_wrong_codes_get_one_answer(api: TestClient, session: Session) -> None:
    household = f.household(session)
    import datetime as dt

    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    _, expired = inv.create(session, household_id=household.id, by="t", now=past)
    revoked_row, revoked = inv.create(session, household_id=household.id, by="t")
    inv.revoke(session, revoked_row, by="t")
    _, used = inv.create(session, household_id=household.id, by="t")
    inv.redeem(session, used, username=f"used{f.tag()}", password=PASSWORD)
    token = _welcome_token(api)
    answers = set()
    for code in (expired, revoked, used, inv.grouped(inv.new_code()), "hallo"):
        # step 2's fields with a closed code: still only the neutral answer, no word on the username
        response = api.post(
            WELCOME,
            data={"code": code, "csrf_token": token, "username": "x", "password": "y", "password_again": "z"},
        )
        assert response.status_code == 400
        assert household.name not in response.text
        assert 'name="username"' not in response.text
        answers.add(_error(response.text))
    assert answers == {
        "Dieser Code gilt nicht. Bitte prüfen Sie ihn noch einmal. Ein Code gilt nur einmal und nur bis zum "
        "Datum im Brief. Wenn es nicht klappt, hilft Ihnen das Reallabor-Team."
    }
    assert session.scalar(select(User).where(User.username == "x")) is None


def test_wrong_codes_are_throttled_per_address(api: TestClient, session: Session) -> None:
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t")
    token = _welcome_token(api)
    for _ in range(10):
        status, _page = _code_step(api, inv.grouped(inv.new_code()), token)
        assert status == 400
    locked = api.post(WELCOME, data={"code": code, "csrf_token": token})  # even the right code now
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert "Zu viele falsche Versuche." in locked.text
    assert household.name not in locked.text
    # another address is not locked
    other = TestClient(api.app, client=("192.0.2.7", 50000))
    other.cookies.set("reallabor_lang", "de")
    other_token = form_token(other.get(WELCOME).text)
    assert other.post(WELCOME, data={"code": code, "csrf_token": other_token}).status_code == 200


def test_welcome_needs_the_csrf_token(api: TestClient, session: Session) -> None:
    _, code = inv.create(session, household_id=f.household(session).id, by="t")
    _welcome_token(api)
    data = {"code": code, "username": "mallory.x", "password": PASSWORD, "password_again": PASSWORD}
    assert api.post(WELCOME, data=data).status_code == 403
    assert api.post(WELCOME, data=data | {"csrf_token": "d" * 43}).status_code == 403
    assert session.scalar(select(User).where(User.username == "mallory.x")) is None
    assert inv.open_invitation(session, code)


def test_redeem_replaces_a_planted_session(api: TestClient, session: Session) -> None:
    """A browser that already carries someone's session (planted, or the last user's) gets a new one for
    the new resident: the old token is not reused, the new one names the new user."""
    planted_user = f.user(session, Role.resident, f.household(session).id)
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t")
    signer = api.app.state.signer  # type: ignore[attr-defined]
    planted = signer.issue(planted_user)
    api.cookies.clear()
    api.cookies.set(SESSION_COOKIE, planted)
    token = form_token(api.get(WELCOME).text)  # with a session, the session's own token
    data = {
        "code": code,
        "csrf_token": token,
        "username": "new.resident",
        "password": PASSWORD,
        "password_again": PASSWORD,
    }
    done = api.post(WELCOME, data=data, follow_redirects=False)
    assert done.status_code == 303
    new = done.cookies.get(SESSION_COOKIE)
    assert new
    assert new != planted
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {new}"}).json()
    assert me["username"] == "new.resident"
    assert me["household_id"] == household.id


@pytest.mark.parametrize(
    ("role", "next_url", "lands"),
    [
        (Role.resident, "/tech/fleet", "/portal"),
        (Role.resident, "/portal/devices", "/portal/devices"),
        (Role.resident, "https://evil.example/portal", "/portal"),
        (Role.resident, "//evil.example/portal", "/portal"),
        (Role.resident, "/portalevil", "/portal"),
        (Role.technician, "/portal", "/tech"),
        (Role.technician, "/tech/fleet", "/tech/fleet"),
        (Role.operator, "/ops", "/ops"),
        (Role.operator, "//evil.example", "/tech"),
    ],
)
def test_login_lands_by_role(
    api: TestClient, session: Session, role: Role, next_url: str, lands: str
) -> None:
    household_id = f.household(session).id if role is Role.resident else None
    user = f.user(session, role, household_id)
    page = api.get("/tech/login")
    response = api.post(
        "/tech/login",
        data={
            "username": user.username,
            "password": f.PASSWORD,
            "next": next_url,
            "csrf_token": form_token(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == lands


def test_english_and_no_code_in_urls(api: TestClient, session: Session) -> None:
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t")
    api.cookies.clear()
    api.cookies.set("reallabor_lang", "en")
    page = api.get(WELCOME)
    assert "Invitation code" in page.text
    assert 'href="/tech/lang/de?next=/portal/welcome"' in page.text
    switched = api.get("/tech/lang/de?next=/portal/welcome", follow_redirects=False)
    assert switched.headers["location"] == WELCOME
    assert "reallabor_lang=de" in switched.headers["set-cookie"]
    api.cookies.clear()
    api.cookies.set("reallabor_lang", "en")
    page = api.get(WELCOME)
    response = api.post(WELCOME, data={"code": code, "csrf_token": form_token(page.text)})
    assert f"Your access for {household.name}" in response.text
    assert code not in str(response.url)
    assert api.get(f"{WELCOME}?code={code}").text.count(code) == 0  # a code in a URL is never taken up
    assert session.get(Household, household.id) is not None


def test_probing_usernames_with_a_code_is_throttled(api: TestClient, session: Session) -> None:
    """A code holder cannot list every username (to guess passwords at): taken ones count per invitation
    (and address), so the ninth locks this code's account step; the code itself stays good."""
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t")
    taken = [f.user(session, Role.technician).username for _ in range(inv_pages.TAKEN_PER_CODE + 1)]
    token = _welcome_token(api)
    for username in taken[:-1]:
        data = {"code": code, "csrf_token": token, "username": username}
        probe = api.post(WELCOME, data=data | {"password": PASSWORD, "password_again": PASSWORD})
        assert probe.status_code == 409
    data = {"code": code, "csrf_token": token, "username": "free.name.now"}
    locked = api.post(WELCOME, data=data | {"password": PASSWORD, "password_again": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert "Benutzernamen ausprobiert, die es schon gibt" in locked.text
    assert 'name="username"' in locked.text  # still the account step: the code was right
    assert inv.open_invitation(session, code)  # the code itself is still good, after the lock
    status, _page = _code_step(api, code, token)  # and wrong codes were not counted
    assert status == 200


def test_a_taken_username_after_an_earlier_lock_does_not_lock_the_address(
    api: TestClient, session: Session
) -> None:
    """Review 14, L7: after a wrong-code lock had ended, one taken username locked the address for 480 s
    (a newcomer trying "mueller", and everyone behind the same NAT)."""
    now = [1000.0]
    api.app.state.redeem_throttle = LoginThrottle(  # type: ignore[attr-defined]
        account_failures=inv_pages.REDEEM_FAILURES,
        address_failures=inv_pages.REDEEM_FAILURES,
        clock=lambda: now[0],
    )
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t")
    mueller = f.user(session, Role.resident, household.id).username
    token = _welcome_token(api)
    for _ in range(inv_pages.REDEEM_FAILURES):
        assert _code_step(api, inv.grouped(inv.new_code()), token)[0] == 400
    assert _code_step(api, code, token)[0] == 429
    now[0] += 31  # the lock has ended
    for _ in range(2):  # the same taken name twice
        data = {"code": code, "csrf_token": token, "username": mueller}
        probe = api.post(WELCOME, data=data | {"password": PASSWORD, "password_again": PASSWORD})
        assert probe.status_code == 409, probe.headers.get("Retry-After")
        assert "Diesen Benutzernamen gibt es schon" in probe.text
    data = {"code": code, "csrf_token": token, "username": "mueller.zwei"}
    made = api.post(
        WELCOME, data=data | {"password": PASSWORD, "password_again": PASSWORD}, follow_redirects=False
    )
    assert made.status_code == 303


def test_the_print_box_uses_api_public_url(api: TestClient, session: Session) -> None:
    household = f.household(session)
    token = login(api, f.user(session, Role.operator))
    api.app.state.public_url = "https://quartier.example/energie"  # type: ignore[attr-defined]
    try:
        created = api.post(
            "/tech/invitations", data={"household_id": str(household.id), "days": "7", "csrf_token": token}
        )
    finally:
        api.app.state.public_url = None  # type: ignore[attr-defined]
    assert created.status_code == 201
    pieces = ["https://quartier", ".example/", "energie/", "portal/", "welcome"]
    box = (
        '<strong class="url" tabindex="0">' + "<wbr>".join(f"<span>{p}</span>" for p in pieces) + "</strong>"
    )
    assert box in created.text
    assert "".join(inv_pages.url_parts("http://127.0.0.1:8000/a/")) == "http://127.0.0.1:8000/a/"
    assert inv_pages.url_parts("http://testserver/portal/welcome") == [
        "http://testserver/",
        "portal/",
        "welcome",
    ]
    chosen = api.get(f"/tech/invitations?household={household.id}").text  # from /ops/households
    assert f'<option value="{household.id}" selected>' in chosen
    assert api.get("/tech/invitations?household=x'1").status_code == 200  # ignored, no error
