"""The login throttle on a clock of its own: locks after N failures in the window, longer each time,
per account and per address; a success clears the account; memory stays bounded. Attempts count from
the moment they are let through (in flight), so concurrent ones cannot outrun the limit. The verification
gate lets a few through at once, queues a few, refuses the rest."""

from __future__ import annotations

import threading
import time

import pytest

from ingest.api.throttle import LoginBusy, LoginThrottle, LoginThrottled, VerifyGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock, **options: int | float) -> LoginThrottle:
    defaults: dict[str, int | float] = {
        "account_failures": 3,
        "address_failures": 10,
        "window_s": 600.0,
        "lock_s": 30.0,
        "max_lock_s": 200.0,
    }
    return LoginThrottle(clock=clock, **{**defaults, **options})  # type: ignore[arg-type]


def _fail(throttle: LoginThrottle, username: str, address: str) -> None:
    throttle.reserve(username=username, address=address).failed()


def _refused(throttle: LoginThrottle, username: str, address: str) -> int:
    """The Retry-After of a refused attempt (fails the test if it is let through)."""
    with pytest.raises(LoginThrottled) as refused:
        throttle.reserve(username=username, address=address)
    return refused.value.retry_after_s


def test_locks_after_n_failures_and_longer_each_time() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(2):
        _fail(throttle, "anna", "10.0.0.1")
        assert throttle.retry_after(username="anna", address="10.0.0.1") == 0
    _fail(throttle, "anna", "10.0.0.1")
    assert throttle.retry_after(username="anna", address="10.0.0.1") == 30
    assert throttle.retry_after(username="ANNA", address="10.0.0.9") == 30  # the account, from anywhere
    assert throttle.retry_after(username="bert", address="10.0.0.1") == 0  # the address is not locked yet
    clock.now += 29.5
    assert throttle.retry_after(username="anna", address="10.0.0.1") == 1  # rounded up
    locks = []
    for _ in range(4):
        clock.now += 300  # the lock is over, still inside the window: one more failure locks again
        assert throttle.retry_after(username="anna", address="10.0.0.2") == 0
        _fail(throttle, "anna", "10.0.0.2")
        locks.append(throttle.retry_after(username="anna", address="10.0.0.2"))
    assert locks == [60, 120, 200, 200]  # doubling up to max_lock_s


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(2):
        _fail(throttle, "anna", "a")
    clock.now += 601
    _fail(throttle, "anna", "a")
    assert throttle.retry_after(username="anna", address="a") == 0


def test_success_clears_the_account_not_the_address() -> None:
    clock = Clock()
    throttle = _throttle(clock, address_failures=4)
    for _ in range(2):
        _fail(throttle, "anna", "a")
    throttle.reserve(username="anna", address="a").succeeded()
    for _ in range(2):
        _fail(throttle, "anna", "b")
    assert throttle.retry_after(username="anna", address="b") == 0  # 2 since the success, not 4
    _fail(throttle, "bert", "a")
    _fail(throttle, "carl", "a")  # the address's 4th failure
    assert throttle.retry_after(username="dora", address="a") == 30


def test_address_locks_across_usernames() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for number in range(10):
        _fail(throttle, f"guess{number}", "10.0.0.1")
    assert throttle.retry_after(username="anna", address="10.0.0.1") == 30
    assert throttle.retry_after(username="anna", address="10.0.0.2") == 0


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_keys=1000)
    for number in range(20_000):
        _fail(throttle, f"u{number}", f"10.{number // 65536}.{number // 256 % 256}.{number % 256}")
    assert len(throttle) <= 1000


def test_attempts_in_flight_count_before_they_fail() -> None:
    """The review's race: limit 3, ten attempts at once: three are let through, the rest refused."""
    clock = Clock()
    throttle = _throttle(clock)
    attempts = [throttle.reserve(username="anna", address=f"10.0.0.{n}") for n in range(3)]
    for number in range(7):
        assert _refused(throttle, "anna", f"10.0.1.{number}") == 1  # busy, not locked
    assert throttle.retry_after(username="anna", address="10.0.0.1") == 0
    attempts[0].failed()
    assert _refused(throttle, "anna", "10.0.0.1") == 1  # 1 failure + 2 in flight
    attempts[1].failed()
    attempts[2].failed()
    assert _refused(throttle, "anna", "10.0.0.9") == 30  # now locked


def test_address_in_flight_across_usernames() -> None:
    clock = Clock()
    throttle = _throttle(clock, address_failures=4)
    attempts = [throttle.reserve(username=f"guess{n}", address="10.0.0.1") for n in range(4)]
    assert _refused(throttle, "anna", "10.0.0.1") == 1
    assert throttle.reserve(username="anna", address="10.0.0.2") is not None  # another address
    for attempt in attempts:
        attempt.failed()
    assert _refused(throttle, "anna", "10.0.0.1") == 30


def test_a_success_clears_the_account_but_not_what_is_in_flight() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    _fail(throttle, "anna", "a")
    pending = throttle.reserve(username="anna", address="b")
    throttle.reserve(username="anna", address="c").succeeded()
    more = [throttle.reserve(username="anna", address="d") for _ in range(2)]
    assert _refused(throttle, "anna", "e") == 1  # the pending one still counts: 1 + 2 in flight
    for attempt in [pending, *more]:
        attempt.failed()
    assert _refused(throttle, "anna", "e") == 30


def test_an_attempt_without_a_verdict_counts_nothing() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(10):
        with throttle.reserve(username="anna", address="a"):
            pass  # e.g. the verification gate was busy: released on leaving the block
    assert len(throttle) == 0
    for _ in range(2):
        _fail(throttle, "anna", "a")
    assert throttle.retry_after(username="anna", address="a") == 0


def test_after_a_lock_one_attempt_at_a_time() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(3):
        _fail(throttle, "anna", "a")
    assert _refused(throttle, "anna", "b") == 30
    clock.now += 31
    probe = throttle.reserve(username="anna", address="b")
    assert _refused(throttle, "anna", "c") == 1
    probe.failed()
    assert _refused(throttle, "anna", "c") == 60
    clock.now += 61
    throttle.reserve(username="anna", address="c").succeeded()
    for _ in range(2):
        _fail(throttle, "anna", "d")
    assert throttle.retry_after(username="anna", address="d") == 0  # cleared by the success


def test_failures_leave_the_window_one_by_one() -> None:
    """Three failures spread over more than the window never lock, and never block either."""
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(6):
        _fail(throttle, "anna", "a")
        clock.now += 400  # two failures in any 600 s window
        throttle.reserve(username="anna", address="a").release()


def test_records_in_flight_are_not_evicted() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_keys=10)
    attempts = [throttle.reserve(username="anna", address="a") for _ in range(3)]
    for number in range(100):
        _fail(throttle, f"u{number}", f"10.0.0.{number}")
    assert _refused(throttle, "anna", "b") == 1
    for attempt in attempts:
        attempt.failed()
    assert _refused(throttle, "anna", "b") == 30


def test_the_gate_lets_a_few_verify_queues_a_few_and_refuses_the_rest() -> None:
    gate = VerifyGate(slots=2, queue=1, wait_s=0.3)
    release = threading.Event()
    entered = threading.Semaphore(0)

    def hold() -> None:
        with gate.slot():
            entered.release()
            release.wait(5)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for holder in holders:
        holder.start()
        assert entered.acquire(timeout=5)
    waited: list[str] = []

    def wait_for_a_slot() -> None:
        try:
            with gate.slot():
                waited.append("verified")
        except LoginBusy:
            waited.append("busy")

    waiter = threading.Thread(target=wait_for_a_slot)
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(LoginBusy), gate.slot():  # the queue is full: refused at once
        pass
    assert time.monotonic() - started < 0.1
    waiter.join(5)
    assert waited == ["busy"]  # waited 0.3 s, no slot came free
    waiter = threading.Thread(target=wait_for_a_slot)
    waiter.start()
    time.sleep(0.05)
    release.set()  # a slot comes free while it waits
    waiter.join(5)
    for holder in holders:
        holder.join(5)
    assert waited == ["busy", "verified"]
