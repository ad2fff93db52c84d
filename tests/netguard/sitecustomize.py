"""Loopback-only guard for the test suite and every Python process it starts.

Imported by the test session (``tests/conftest.py``) and, through ``PYTHONPATH``, by every Python
subprocess the tests start (servers, CLIs, workers): an audit hook refuses any connection or name
lookup outside 127.0.0.0/8 and ::1 before a packet leaves, and records it. In the test process the
record fails the running test; subprocesses append it to the file named by
``LOOPBACK_GUARD_LOG``, which the suite reads after each test. Why: tests and benchmarks must
never reach the network (no network here, and traffic elsewhere is flagged), and libraries (Ray,
telemetry, update checks) try to unless told not to.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading

ENV_LOG = "LOOPBACK_GUARD_LOG"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# Names a server may resolve to *bind* to: wildcard addresses are not traffic to anyone.
BIND_NAMES = {"", "0.0.0.0", "::", "*"}

violations: list[str] = []
_lock = threading.Lock()
installed = False


class NetworkGuardError(ConnectionRefusedError):
    """Raised where a connection or lookup outside loopback was attempted."""


def is_loopback_host(host: object) -> bool:
    """True for loopback addresses and names (str or bytes); False for anything else."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%", 1)[0].lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _record(what: str) -> None:
    message = f"pid {os.getpid()} ({' '.join(sys.argv[:2])}): {what}"
    with _lock:
        violations.append(message)
    path = os.environ.get(ENV_LOG)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(message + "\n")
        except OSError:
            pass
    raise NetworkGuardError(f"network guard: {what} is outside loopback")


def _hook(event: str, args: tuple) -> None:
    if event == "socket.connect" or event == "socket.sendto":
        sock, address = args[0], args[-1]
        family = getattr(sock, "family", None)
        if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not is_loopback_host(address[0]):
                _record(f"{event} to {address!r}")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if host is None or host in BIND_NAMES:
            return
        if not is_loopback_host(host):
            _record(f"name lookup of {host!r}")
    elif event in ("socket.gethostbyname", "socket.gethostbyaddr"):
        host = args[0]
        if not is_loopback_host(host) and host not in BIND_NAMES:
            _record(f"{event} of {host!r}")


def install() -> None:
    """Install the audit hook once per process (audit hooks cannot be removed)."""
    global installed
    if installed:
        return
    sys.addaudithook(_hook)
    installed = True


if os.environ.get(ENV_LOG) is not None or os.environ.get("LOOPBACK_GUARD") == "1":
    install()
