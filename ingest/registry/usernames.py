"""The rule for new usernames (residents by invitation, staff by the API and the command line).

A username is typed at every login and shown in the audit log and on the operators' pages, so two names
that look alike must not belong to two people. The review (issue 14, L6) registered "оperator" with a
Cyrillic о and a full-width "ｏperator" next to "operator", and on SQLite both "Ärger" and "ärger"
(SQLite's ``lower()`` folds ASCII only). Hence, for new accounts:

- ASCII letters and digits, inside also ``. _ - @`` (residents 3 to 64 characters, accounts made by
  an operator 1 to 64): no look-alikes from other
  scripts, no full-width forms, no combining marks; umlauts are written out (``mueller``). One rule
  that ``lower()`` applies identically on SQLite and PostgreSQL.
- Unique in any case: compared by :func:`username_key` (NFKC, then casefold) against every existing
  username, in Python, so an older name made under the former rule ("Ärger", "ｅｒｉｋａ") still blocks
  its look-alike ("aerger" does not, "ärger" is refused by the form). The registry holds a few hundred
  users; reading their names costs well under a millisecond.

Existing users keep their names and log in as before (exactly as stored). The database's unique
constraint stays exact: two concurrent sign-ups with names differing only in case could both pass the
check (a window of milliseconds; the invitation's own claim is what is raced for, and it holds).
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.models import User
from ingest.registry.text import text_problem

USERNAME_MIN, USERNAME_MAX = 3, 64
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
RULE = "ASCII letters and digits, inside also . _ - @ (write umlauts out: ae, oe, ue, ss); no spaces"


def username_key(username: str) -> str:
    """What two names are compared by: NFKC (full-width and compatibility forms to plain), casefolded."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_problem(username: str, *, min_length: int = USERNAME_MIN) -> str | None:
    """Why a new account may not be called ``username`` (its form; whether it is taken: below). Staff
    accounts, made by an operator, may be shorter (``min_length``)."""
    if not min_length <= len(username) <= USERNAME_MAX:
        return f"between {min_length} and {USERNAME_MAX} characters"
    problem = text_problem(username)
    if problem is not None:
        return problem
    if not _USERNAME.fullmatch(username):
        return RULE
    return None


def username_taken(session: Session, username: str) -> bool:
    """Taken in any case and form: ``Erika``, ``erika`` and ``ｅｒｉｋａ`` are one name."""
    key = username_key(username)
    return any(username_key(name) == key for name in session.scalars(select(User.username)))
