"""The login throttle on a clock of its own: locks after N failures in the window, longer each time,
per account and per address; a success clears the account; memory stays bounded."""

from __future__ import annotations

from ingest.api.throttle import LoginThrottle


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


def test_locks_after_n_failures_and_longer_each_time() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(2):
        throttle.failed(username="anna", address="10.0.0.1")
        assert throttle.retry_after(username="anna", address="10.0.0.1") == 0
    throttle.failed(username="anna", address="10.0.0.1")
    assert throttle.retry_after(username="anna", address="10.0.0.1") == 30
    assert throttle.retry_after(username="ANNA", address="10.0.0.9") == 30  # the account, from anywhere
    assert throttle.retry_after(username="bert", address="10.0.0.1") == 0  # the address is not locked yet
    clock.now += 29.5
    assert throttle.retry_after(username="anna", address="10.0.0.1") == 1  # rounded up
    locks = []
    for _ in range(4):
        clock.now += 300  # the lock is over, still inside the window: one more failure locks again
        assert throttle.retry_after(username="anna", address="10.0.0.2") == 0
        throttle.failed(username="anna", address="10.0.0.2")
        locks.append(throttle.retry_after(username="anna", address="10.0.0.2"))
    assert locks == [60, 120, 200, 200]  # doubling up to max_lock_s


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for _ in range(2):
        throttle.failed(username="anna", address="a")
    clock.now += 601
    throttle.failed(username="anna", address="a")
    assert throttle.retry_after(username="anna", address="a") == 0


def test_success_clears_the_account_not_the_address() -> None:
    clock = Clock()
    throttle = _throttle(clock, address_failures=4)
    for _ in range(2):
        throttle.failed(username="anna", address="a")
    throttle.succeeded(username="anna")
    for _ in range(2):
        throttle.failed(username="anna", address="b")
    assert throttle.retry_after(username="anna", address="b") == 0  # 2 since the success, not 4
    throttle.failed(username="bert", address="a")
    throttle.failed(username="carl", address="a")  # the address's 4th failure
    assert throttle.retry_after(username="dora", address="a") == 30


def test_address_locks_across_usernames() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for number in range(10):
        throttle.failed(username=f"guess{number}", address="10.0.0.1")
    assert throttle.retry_after(username="anna", address="10.0.0.1") == 30
    assert throttle.retry_after(username="anna", address="10.0.0.2") == 0


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_keys=1000)
    for number in range(20_000):
        throttle.failed(
            username=f"u{number}", address=f"10.{number // 65536}.{number // 256 % 256}.{number % 256}"
        )
    assert len(throttle) <= 1000
