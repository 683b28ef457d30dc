"""The test hosts' machinery: namespaces made, reachable as designed, cut, and removed without a trace."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway import netns
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _netns_permitted() -> None:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)


def _connects(ns: netns.Namespace, host: str, port: int) -> bool:
    def attempt() -> bool:
        try:
            socket.create_connection((host, port), timeout=1.5).close()
        except OSError:
            return False
        return True

    return ns.call(attempt)


def test_hosts_reach_each_other_as_designed_and_leave_nothing_behind(tmp_path: Path) -> None:
    with netns.Hosts() as hosts:
        broker = netns.NamespacedMosquitto(tmp_path / "central", namespace=hosts.central).start()
        try:
            socket.create_connection((hosts.central_core, broker.port), timeout=2).close()
            assert _connects(hosts.gw, hosts.central_wan, broker.port)
            assert not _connects(hosts.dev, hosts.central_wan, broker.port)  # the LAN does not route
            hosts.cut_uplink()
            assert not _connects(hosts.gw, hosts.central_wan, broker.port)
            hosts.restore_uplink()
            assert _connects(hosts.gw, hosts.central_wan, broker.port)
        finally:
            broker.stop()
        names = {ns.name for ns in hosts.namespaces}
    assert not names & set(netns.ip("netns", "list").split())
    assert hosts.core_name not in netns.ip("-o", "link", "show")


def test_a_failed_run_leaves_nothing_and_a_killed_runs_leftovers_are_removed() -> None:
    with pytest.raises(RuntimeError), netns.Hosts() as hosts:
        raise RuntimeError("the test failed")
    assert not any(ns.exists() for ns in hosts.namespaces)

    # a run killed before its teardown: its namespace, with a process still in it
    leftover = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = netns.Namespace(f"{netns.PREFIX}{leftover.stdout.strip()}-dead00-gw").create()
    sleeper = stale.popen(["sleep", "60"])
    try:
        # `ip netns exec` enters the namespace, then execs: wait until the sleeper is inside
        wait_for(lambda: sleeper.pid in stale.pids(), timeout=10, interval=0.02, what="the sleeper inside")
        assert stale.name in netns.remove_stale()
        assert sleeper.wait(10) == -9
        assert not stale.exists()
    finally:
        sleeper.kill()
        stale.delete()
