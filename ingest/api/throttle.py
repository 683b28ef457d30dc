"""Login throttling: attempts counted per account and per client address, in the API's memory; and a gate
that bounds the argon2 verifications running at once in the process.

An attempt counts from the moment it is let through, before its password is hashed: :meth:`LoginThrottle.
reserve` holds it *in flight*; a wrong password turns it into a failure, a right one releases it and clears
the account, an attempt that never reached a verdict (the gate was busy, the database failed) releases it
uncounted. So no more than ``account_failures`` guesses for one username (``address_failures`` from one
address, across usernames) are ever hashed within ``window_s``, however many arrive at once: the review
sent 40 concurrent guesses, which all passed a check made before the first failure was counted.

Once an account or address has its limit of failures, it is locked: every login for it, the right password
too, is refused with 429 and Retry-After before any hash. When the lock ends, one attempt at a time may
try; its failure locks again for twice as long, up to ``max_lock_s``. A record is forgotten when
``window_s`` passes without a failure. A successful login clears its account, not its address (one valid
account must not unlock an address that guesses at others). At most ``max_keys`` records are kept, the
least recently failed go first (never one with attempts in flight).

:class:`VerifyGate`: argon2 costs 64 MiB and ~0.15 s per verification, so a flood across many accounts
and addresses would still grow the process by 64 MiB per concurrent login (the review: 112 → 973 MB).
At most ``slots`` verify at once, ``queue`` more wait up to ``wait_s``; the rest get 503 with
Retry-After at once, without holding a worker thread.

:func:`attempt_login` is the one login of the JSON API and the pages: throttle, gate, authenticate, audit.
Counts live in one process; several API processes each count on their own.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

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
BUSY_RETRY_S = 1  # Retry-After while the attempts in flight use up a key's limit, or the gate is full
VERIFY_SLOTS = 2  # argon2 verifications at once: 2 x 64 MiB
VERIFY_QUEUE = 8  # logins that may wait for a slot
VERIFY_WAIT_S = 2.0  # how long one waits (a verification takes ~0.15 s)

_Key = tuple[str, str]


class LoginThrottled(Exception):
    """Too many failed logins for this account or address: try again in ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class LoginBusy(Exception):
    """Too many logins being verified in this process right now: try again in ``retry_after_s``."""

    def __init__(self, retry_after_s: int = BUSY_RETRY_S) -> None:
        super().__init__(f"too many logins at once: the server is busy, try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class _Record:
    failures: deque[float]  # the newest failures, at most the limit
    locked_until: float = 0.0
    locks: int = 0  # locks so far: the next one lasts LOCK_S * 2**locks
    last: float = 0.0  # the newest failure
    in_flight: int = 0  # attempts let through and not settled yet

    def forget_failures(self) -> None:
        self.failures.clear()
        self.locked_until, self.locks, self.last = 0.0, 0, 0.0

    @property
    def empty(self) -> bool:
        return not self.failures and not self.in_flight and not self.locks


class Attempt:
    """One login let through by :meth:`LoginThrottle.reserve`; settle it with :meth:`failed` or
    :meth:`succeeded`. Used as a context manager, an attempt left unsettled is released uncounted."""

    def __init__(self, throttle: LoginThrottle, keys: list[_Key]) -> None:
        self._throttle = throttle
        self._keys = keys
        self._open = True

    def failed(self) -> None:
        self._settle(self._throttle._failed)

    def succeeded(self) -> None:
        self._settle(self._throttle._succeeded)

    def release(self) -> None:
        """No verdict (not verified, or an error): the attempt counts neither way."""
        self._settle(self._throttle._release)

    def _settle(self, how: Callable[[list[_Key]], None]) -> None:
        if self._open:
            self._open = False
            how(self._keys)

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.release()


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
        self._records: OrderedDict[_Key, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    @staticmethod
    def _keys(username: str, address: str | None) -> list[_Key]:
        return [("account", username.casefold()), ("address", address or "unknown")]

    def retry_after(self, *, username: str, address: str | None) -> int:
        """Seconds until the lock of ``username`` or ``address`` ends (0: not locked)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, address):
                record = self._records.get(key)
                if record is not None:
                    wait = max(wait, record.locked_until - now)
        return math.ceil(wait) if wait > 0 else 0

    def reserve(self, *, username: str, address: str | None) -> Attempt:
        """Let one attempt through, counted as in flight; :class:`LoginThrottled` when the account or the
        address is locked, or its attempts in flight and failures already reach its limit."""
        keys = self._keys(username, address)
        now = self._clock()
        with self._lock:
            wait = max(self._wait(key, now) for key in keys)
            if wait > 0:
                raise LoginThrottled(math.ceil(wait))
            for key in keys:
                record = self._records.pop(key, None) or self._new(key)
                record.in_flight += 1
                self._records[key] = record  # to the end: the least recently used go first
            self._evict()
        return Attempt(self, keys)

    def _new(self, key: _Key) -> _Record:
        return _Record(failures=deque(maxlen=self._limits[key[0]]))

    def _expired(self, record: _Record, now: float) -> bool:
        return now - record.last > self.window_s and now >= record.locked_until

    def _wait(self, key: _Key, now: float) -> float:
        record = self._records.get(key)
        if record is None:
            return 0.0
        if now < record.locked_until:
            return record.locked_until - now
        if self._expired(record, now):
            record.forget_failures()
        while record.failures and now - record.failures[0] > self.window_s:
            record.failures.popleft()  # only the window's failures count
        # after a lock, one attempt at a time; before, the failures and the attempts in flight together
        room = 1 if record.locks else self._limits[key[0]] - len(record.failures)
        return float(BUSY_RETRY_S) if record.in_flight >= room else 0.0

    def _failed(self, keys: list[_Key]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                record = self._records.pop(key, None) or self._new(key)
                record.in_flight = max(0, record.in_flight - 1)
                self._fail(key, record, now)
                self._records[key] = record
            self._evict()

    def _fail(self, key: _Key, record: _Record, now: float) -> None:
        if self._expired(record, now):
            record.forget_failures()
        record.failures.append(now)
        record.last = now
        # once locked, every failure after the lock locks again (the record lives while failures come)
        full = len(record.failures) == self._limits[key[0]] and now - record.failures[0] <= self.window_s
        if (full or record.locks) and now >= record.locked_until:
            record.locked_until = now + min(self.lock_s * 2**record.locks, self.max_lock_s)
            record.locks += 1

    def _succeeded(self, keys: list[_Key]) -> None:
        with self._lock:
            for key in keys:
                record = self._records.get(key)
                if record is None:
                    continue
                record.in_flight = max(0, record.in_flight - 1)
                if key[0] == "account":
                    record.forget_failures()
                if record.empty:
                    del self._records[key]

    def _release(self, keys: list[_Key]) -> None:
        with self._lock:
            for key in keys:
                record = self._records.get(key)
                if record is None:
                    continue
                record.in_flight = max(0, record.in_flight - 1)
                if record.empty:
                    del self._records[key]

    def _evict(self) -> None:
        excess = len(self._records) - self.max_keys
        if excess <= 0:
            return
        idle = (key for key, record in self._records.items() if not record.in_flight)
        for key in list(itertools.islice(idle, excess)):
            del self._records[key]


class VerifyGate:
    """At most ``slots`` password verifications at once; ``queue`` more wait up to ``wait_s`` each, any
    further one is refused at once (:class:`LoginBusy`), so a flood holds neither memory nor threads."""

    def __init__(
        self, *, slots: int = VERIFY_SLOTS, queue: int = VERIFY_QUEUE, wait_s: float = VERIFY_WAIT_S
    ) -> None:
        self.slots, self.queue, self.wait_s = slots, queue, wait_s
        self._running = 0
        self._waiting = 0
        self._changed = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._changed:
            if self._running >= self.slots:
                if self._waiting >= self.queue:
                    raise LoginBusy()
                self._waiting += 1
                try:
                    free = self._changed.wait_for(lambda: self._running < self.slots, timeout=self.wait_s)
                finally:
                    self._waiting -= 1
                if not free:
                    raise LoginBusy()
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify()


_CREATE = threading.Lock()


def login_throttle(app: FastAPI) -> LoginThrottle:
    """The app's throttle (made on first use; tests may set ``app.state.login_throttle``)."""
    with _CREATE:
        throttle: LoginThrottle | None = getattr(app.state, "login_throttle", None)
        if throttle is None:
            throttle = app.state.login_throttle = LoginThrottle()
        return throttle


def verify_gate(app: FastAPI) -> VerifyGate:
    """The app's gate: one app per API process, so this bounds the process."""
    with _CREATE:
        gate: VerifyGate | None = getattr(app.state, "verify_gate", None)
        if gate is None:
            gate = app.state.verify_gate = VerifyGate()
        return gate


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def attempt_login(
    request: Request, session: Session, *, username: str, password: str, via: str
) -> User | None:
    """The user for these credentials (None: wrong), behind the throttle and the gate; audited.

    Raises :class:`LoginThrottled` while the account or the address is locked or has its limit of
    attempts under way, :class:`LoginBusy` when no verification slot came free in time; neither hashes.
    """
    address = client_address(request)
    try:
        attempt = login_throttle(request.app).reserve(username=username, address=address)
    except LoginThrottled as exc:
        audit("login.throttled", user=username, client=address, via=via, retry_after_s=exc.retry_after_s)
        raise
    with attempt:  # released uncounted if no verdict comes
        try:
            with verify_gate(request.app).slot():
                user = authenticate(session, username=username, password=password)
        except LoginBusy:
            audit("login.busy", user=username, client=address, via=via)
            raise
        if user is None:
            attempt.failed()
            audit("login.refused", user=username, client=address, via=via)
            return None
        attempt.succeeded()
    audit("login.ok", user=user.username, role=user.role.value, client=address, via=via)
    return user
