"""Hosts of their own for a test: Linux network namespaces joined by veth pairs (``ip netns``, as root).

The store-and-forward test (and ``bench/gateway.py``, if it wants) puts the gateway and the central broker on
hosts of their own, and a Wi-Fi device on the gateway's LAN::

    DEV (a Wi-Fi device) ─lan─ GW (gateway service, local Mosquitto, serial lines) ─wan─ CENTRAL (central
    Mosquitto) ─core─ this host (InfluxDB on 127.0.0.1, the ingester)

Only this host's end of ``core`` lives outside the namespaces, so only its name (``rlsf`` and a random
suffix, at most 15 characters) and its addresses must not collide with this host's; the addresses of all
three links come from one random ``10.x.y.0/24`` that no address or route of this host touches.

Namespace names carry the creating process's id: a run killed before its teardown leaves namespaces that
the next run recognises as stale (their creator is gone) and removes, their processes first (a namespace
with a process left in it outlives ``ip netns del``, and so would its veth and addresses).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import random
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from ingest.localservices import LOOPBACK, Mosquitto

PREFIX = "rlsf"
_NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


class NetnsError(Exception):
    """An ``ip`` command failed; the message holds its stderr."""


def ip(*args: str) -> str:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"ip {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why this process cannot make network namespaces (not root, no ``ip``, a sandbox), or None."""
    probe = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-probe"
    try:
        ip("netns", "add", probe)
    except NetnsError as exc:
        return f"cannot make a network namespace here ({exc})"
    ip("netns", "del", probe)
    return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class Namespace:
    """One network namespace, ``ip netns`` style (a name under /run/netns)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    def create(self) -> Self:
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this namespace (``ip netns exec`` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(argv), **kwargs)

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in ip("netns", "pids", self.name).split()]
        except NetnsError:
            return []

    def kill_all(self, sig: signal.Signals = signal.SIGKILL, *, timeout: float = 10.0) -> list[int]:
        """Send ``sig`` to every process in the namespace (SIGKILL: a power cut); wait until they are gone."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + timeout
            while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
                time.sleep(0.02)
        return pids

    def call(self, function: Callable[[], _T]) -> _T:
        """``function()`` on a thread that has entered this namespace: its sockets are the namespace's.

        setns(2) moves the calling thread only, so the thread is a fresh one and ends with the call.
        """
        outcome: list[_T] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(_NETNS_DIR / self.name, os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        error = ctypes.get_errno()
                        raise NetnsError(f"setns {self.name}: {os.strerror(error)}")
                finally:
                    os.close(fd)
                outcome.append(function())
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"netns-{self.name}")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return outcome[0]

    def port_open(self, host: str, port: int) -> bool:
        import socket

        def probe() -> bool:
            with socket.socket() as sock:
                sock.settimeout(0.2)
                return sock.connect_ex((host, port)) == 0

        return self.call(probe)

    def exists(self) -> bool:
        return (_NETNS_DIR / self.name).exists()

    def delete(self) -> None:
        """Its processes killed first, then the namespace (and with it its veth ends) removed."""
        if not self.exists():
            return
        self.kill_all(signal.SIGKILL)
        with contextlib.suppress(NetnsError):
            ip("netns", "del", self.name)


def remove_stale() -> list[str]:
    """Remove the namespaces of earlier runs whose creating process is gone; their names are returned."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in _NETNS_DIR.iterdir():
            name = entry.name
            if not name.startswith(PREFIX):
                continue
            pid = name[len(PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                Namespace(name).delete()
                removed.append(name)
    return removed


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this host has an address in or a route to (the default route aside)."""
    taken = []
    for line in ip("-4", "-o", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            taken.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        words = line.split()
        if not words:
            continue
        destination = words[1] if words[0] in {"local", "broadcast", "unreachable", "blackhole"} else words[0]
        with contextlib.suppress(ValueError, IndexError):
            if destination != "default":
                taken.append(ipaddress.IPv4Network(destination, strict=False))
    return taken


def free_block() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that no address or route of this host overlaps."""
    taken = _taken_networks()
    for _ in range(200):
        block = ipaddress.IPv4Network(f"10.{random.randint(64, 254)}.{random.randint(0, 255)}.0/24")
        if not any(block.overlaps(net) for net in taken):
            return block
    raise NetnsError("no free 10.x.y.0/24 for the test's links")


def _mac(ns: Namespace | None, name: str) -> str:
    where = ["-n", ns.name] if ns is not None else []
    words = ip(*where, "-o", "link", "show", "dev", name).split()
    return words[words.index("link/ether") + 1]


@dataclass(frozen=True)
class Link:
    """A veth pair: ``left`` in a namespace, ``right`` in another one (or this host's, ``None``)."""

    left: Namespace
    left_name: str
    left_address: str
    right: Namespace | None
    right_name: str
    right_address: str
    prefix_len: int = 30

    def create(self) -> None:
        right_ns = ["netns", self.right.name] if self.right is not None else []
        ip(
            "link", "add", self.left_name, "netns", self.left.name,
            "type", "veth", "peer", "name", self.right_name, *right_ns,
        )  # fmt: skip
        for ns, name, address in (
            (self.left, self.left_name, self.left_address),
            (self.right, self.right_name, self.right_address),
        ):
            where = ["-n", ns.name] if ns is not None else []
            ip(*where, "addr", "add", f"{address}/{self.prefix_len}", "dev", name)
            ip(*where, "link", "set", name, "up")

    def pin_neighbours(self) -> None:
        """Each end's MAC address of the other end entered for good, as a router's stays in its
        neighbours' caches: with the link cut, packets then vanish on the wire instead of failing ARP
        with "no route to host" after 3 s."""
        ends = [
            (self.left, self.left_name, self.left_address),
            (self.right, self.right_name, self.right_address),
        ]
        macs = [_mac(ns, name) for ns, name, _ in ends]
        for (ns, name, _), (_, _, peer_address), peer_mac in zip(ends, ends[::-1], macs[::-1], strict=True):
            where = ["-n", ns.name] if ns is not None else []
            ip(*where, "neigh", "replace", peer_address, "lladdr", peer_mac, "nud", "permanent", "dev", name)

    def set_right(self, *, up: bool) -> None:
        where = ["-n", self.right.name] if self.right is not None else []
        ip(*where, "link", "set", self.right_name, "up" if up else "down")


class Hosts:
    """The three hosts and their links; a context manager that removes everything, even after a failure.

    Addresses: ``gw_lan`` (the gateway on its LAN, where the Wi-Fi device publishes), ``central_wan`` (the
    central broker as the gateway reaches it), ``central_core`` (the central broker as this host reaches
    it: the ingester's broker address).
    """

    def __init__(self) -> None:
        token = secrets.token_hex(3)
        base = f"{PREFIX}{os.getpid()}-{token}"
        self.dev = Namespace(f"{base}-dev")
        self.gw = Namespace(f"{base}-gw")
        self.central = Namespace(f"{base}-central")
        self.core_name = f"{PREFIX}{token}"  # this host's end: unique here, 10 characters
        block = free_block()
        hosts = [str(address) for address in block]
        self.lan = Link(self.dev, "lan", hosts[1], self.gw, "lan", hosts[2])
        self.wan = Link(self.gw, "wan", hosts[5], self.central, "wan", hosts[6])
        self.core = Link(self.central, "core", hosts[9], None, self.core_name, hosts[10])
        self.uplink_cut = False

    @property
    def gw_lan(self) -> str:
        return self.lan.right_address

    @property
    def central_wan(self) -> str:
        return self.wan.right_address

    @property
    def central_core(self) -> str:
        return self.core.left_address

    @property
    def namespaces(self) -> list[Namespace]:
        return [self.dev, self.gw, self.central]

    def __enter__(self) -> Self:
        remove_stale()
        try:
            for ns in self.namespaces:
                ns.create()
            for link in (self.lan, self.wan, self.core):
                link.create()
            self.wan.pin_neighbours()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for ns in self.namespaces:
            ns.delete()
        # the kernel dismantles a namespace (and this host's end of its veth) a moment after the last
        # reference went: wait, so the next run finds its name and addresses free
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                ip("-o", "link", "show", "dev", self.core_name)
            except NetnsError:
                return
            time.sleep(0.05)

    def cut_uplink(self) -> None:
        """The building's uplink dies far from the gateway: the central end of ``wan`` goes down.

        The gateway's own interface stays configured (it only loses the carrier) and knows its peer's MAC
        address (pinned): what it sends vanishes without an error, an open TCP connection is half-open
        until a keepalive notices, and a new connection's SYNs time out, as behind a router whose WAN is
        gone.
        """
        self.wan.set_right(up=False)
        self.uplink_cut = True

    def restore_uplink(self) -> None:
        self.wan.set_right(up=True)
        self.uplink_cut = False


class NamespacedMosquitto(Mosquitto):
    """:class:`Mosquitto` (the project's loss-free settings) inside ``namespace``, on all its addresses."""

    def __init__(self, directory: Path, *, namespace: Namespace, **kwargs: Any) -> None:
        super().__init__(directory, host="0.0.0.0", **kwargs)  # the namespace is the test's own
        self.namespace = namespace

    def command(self) -> list[str]:
        return self.namespace.command(super().command())

    def is_ready(self) -> bool:
        return self.namespace.port_open(LOOPBACK, self.port)
