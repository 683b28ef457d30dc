"""Login throttling: failed logins counted per account and per client address, in the API's memory.

After ``account_failures`` failures of one username (or ``address_failures`` from one address, across
usernames) within ``window_s``, that key is locked: every login for it, the right password too, is
refused with 429 and Retry-After before any password hash is computed (argon2 costs 64 MiB each). A
failure after a lock has ended locks again for twice as long, up to ``max_lock_s``; the record is
forgotten when ``window_s`` passes without a failure. A successful login clears its account, not its
address (one valid account must not unlock an address that guesses at others). At most ``max_keys``
records are kept, the least recently failed go first.

:func:`attempt_login` is the one login of the JSON API and the pages: throttle, authenticate, audit.
Counts live in one process; several API processes each count on their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session

from ingest.registry.models import User
from ingest.registry.people import authenticate
from ingest.security.audit import audit

ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20
WINDOW_S = 15 * 60.0
LOCK_S = 30.0
MAX_LOCK_S = 15 * 60.0
MAX_KEYS = 10_000


@dataclass(slots=True)
class _Record:
    failures: deque[float]  # the newest failures, at most the limit
    locked_until: float = 0.0
    locks: int = 0  # locks so far: the next one lasts LOCK_S * 2**locks
    last: float = 0.0


class LoginThrottle:
    def __init__(
        self,
        *,
        account_failures: int = ACCOUNT_FAILURES,
        address_failures: int = ADDRESS_FAILURES,
        window_s: float = WINDOW_S,
        lock_s: float = LOCK_S,
        max_lock_s: float = MAX_LOCK_S,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"account": account_failures, "address": address_failures}
        self.window_s = window_s
        self.lock_s = lock_s
        self.max_lock_s = max_lock_s
        self.max_keys = max_keys
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        return [("account", username.casefold()), ("address", address or "unknown")]

    def retry_after(self, *, username: str, address: str | None) -> int:
        """Seconds until a login for ``username`` from ``address`` may be tried (0: now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, address):
                record = self._records.get(key)
                if record is not None:
                    wait = max(wait, record.locked_until - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *, username: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(username, address):
                self._fail(key, now)
            while len(self._records) > self.max_keys:
                self._records.popitem(last=False)

    def _fail(self, key: tuple[str, str], now: float) -> None:
        limit = self._limits[key[0]]
        record = self._records.pop(key, None)
        if record is None or (now - record.last > self.window_s and now >= record.locked_until):
            record = _Record(failures=deque(maxlen=limit))
        record.failures.append(now)
        record.last = now
        # once locked, every failure after the lock locks again (the record lives while failures come)
        full = len(record.failures) == limit and now - record.failures[0] <= self.window_s
        if (full or record.locks) and now >= record.locked_until:
            record.locked_until = now + min(self.lock_s * 2**record.locks, self.max_lock_s)
            record.locks += 1
        self._records[key] = record  # to the end: the least recently failed go first

    def succeeded(self, *, username: str) -> None:
        with self._lock:
            self._records.pop(("account", username.casefold()), None)


class LoginThrottled(Exception):
    """Too many failed logins for this account or address: try again in ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


_CREATE = threading.Lock()


def login_throttle(app: FastAPI) -> LoginThrottle:
    """The app's throttle (made on first use; tests may set ``app.state.login_throttle``)."""
    with _CREATE:
        throttle: LoginThrottle | None = getattr(app.state, "login_throttle", None)
        if throttle is None:
            throttle = app.state.login_throttle = LoginThrottle()
        return throttle


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def attempt_login(
    request: Request, session: Session, *, username: str, password: str, via: str
) -> User | None:
    """The user for these credentials (None: wrong), behind the throttle; audited.

    Raises :class:`LoginThrottled` while the account or the address is locked, before any hash.
    """
    throttle = login_throttle(request.app)
    address = client_address(request)
    wait = throttle.retry_after(username=username, address=address)
    if wait:
        audit("login.throttled", user=username, client=address, via=via, retry_after_s=wait)
        raise LoginThrottled(wait)
    user = authenticate(session, username=username, password=password)
    if user is None:
        throttle.failed(username=username, address=address)
        audit("login.refused", user=username, client=address, via=via)
        return None
    throttle.succeeded(username=username)
    audit("login.ok", user=user.username, role=user.role.value, client=address, via=via)
    return user
