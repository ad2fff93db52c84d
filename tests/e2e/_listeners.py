"""Which processes listen on a non-loopback address (from /proc, Linux only).

The loopback guard sees what Python code connects to; Ray's core is C++, so the Ray test also
checks what its processes *listen* on: nothing may be reachable from outside the machine.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from conftest import parent_pids

LISTEN = "0A"


def _address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # IPv6 in /proc is four little-endian 32-bit words.
    return ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))


def _exposed_inodes() -> dict[int, str]:
    """Socket inode -> "address:port" of every listening TCP socket not bound to loopback."""
    found: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state != LISTEN:
                continue
            hex_addr, hex_port = local.split(":")
            addr = _address(hex_addr)
            mapped = getattr(addr, "ipv4_mapped", None)
            if (mapped or addr).is_loopback:
                continue
            found[inode] = f"{addr}:{int(hex_port, 16)}"
    return found


def exposed_listeners(pids: set[int]) -> list[str]:
    """Non-loopback listening sockets owned by any of ``pids``, as "pid cmd: address:port"."""
    inodes = _exposed_inodes()
    out = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80]
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes:
                    out.append(f"{pid} {cmd}: {inodes[inode]}")
    return sorted(out)


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (by parent pid)."""
    parents = parent_pids()
    tree = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return tree
