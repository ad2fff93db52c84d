"""A real ``redis-server`` for the tests that need one: the durable and pipelines store contract
suites, and the e2e tests that kill Redis and bring it back.

No persistence (``--save ""``, no AOF), loopback only, in a directory of the test's own, on a port
chosen once: ``kill()`` loses the data, and ``start()`` again brings back an empty Redis at the same
URL, which is how a Redis outage looks to the servers under test. Without the program, the test is
skipped naming the Debian package (or fails under ``CI=true``): ``require_binary`` semantics.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Optional

from tests.conftest import free_port, require_binary


class RedisServer:
    """One redis-server process on a fixed loopback port; restartable after ``kill`` or ``stop``."""

    def __init__(self, workdir: Path, port: Optional[int] = None) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"redis-{self.port}.log"

    def start(self, timeout: float = 30) -> RedisServer:
        """Start it and wait until it answers PING (raw RESP: no client library needed)."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self._pings():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {self.log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        return self

    def _pings(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: an outage that loses every key (there is no persistence)."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s."""
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """A started ``RedisServer`` (its ``url``), stopped afterwards."""
    server = RedisServer(workdir).start()
    try:
        yield server
    finally:
        server.stop()
