"""uvicorn's HTTP protocols with a header-read timeout (slow clients cannot hold connections).

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for the
headers of a request that has begun (or of the first request of a new connection): a client that
sends half a request line holds a connection, a file descriptor and memory for as long as it
likes. These subclasses close a connection whose request headers are not complete within
``HAYHOOKS_HEADER_READ_TIMEOUT`` seconds. Bodies are not covered: a run reads them itself.

This is the one module that touches uvicorn's protocol classes (``connection_made``,
``connection_lost``, ``data_received``, ``on_message_begin`` / ``on_headers_complete`` of the
httptools protocol, ``conn.their_state`` of the h11 one, ``loop`` and ``transport``);
``tests/test_protocols.py`` pins them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("hayhooks")

# Set by ``run_server`` in this process; worker processes read the exported environment variable.
header_read_timeout: Optional[float] = None


def _timeout() -> float:
    if header_read_timeout is not None:
        return header_read_timeout
    try:
        return float(os.environ.get("HAYHOOKS_HEADER_READ_TIMEOUT", "10"))
    except ValueError:
        return 10.0


class _HeaderTimeout:
    """Mixin: arm a timer when a request starts, disarm it when its headers are complete."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_timer: Optional[asyncio.TimerHandle] = None

    def _arm_header_timer(self) -> None:
        timeout = _timeout()
        if timeout > 0 and self._header_timer is None:
            self._header_timer = self.loop.call_later(timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            peer = self.transport.get_extra_info("peername")
            log.info("Closed a connection from %s: request headers not received within %gs", peer, _timeout())
            self.transport.close()


def _httptools_class() -> Optional[type]:
    """uvicorn's httptools protocol plus the timeout (httptools is an optional dependency)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools not installed
        return None

    class Guarded(_HeaderTimeout, Base):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Optional[Exception]) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            self._arm_header_timer()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()

    Guarded.__name__ = Guarded.__qualname__ = "GuardedHttpToolsProtocol"
    Guarded.__module__ = __name__
    return Guarded


class GuardedH11Protocol(_HeaderTimeout, H11Protocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still waiting for (the rest of) a request's headers: h11 reports the client IDLE.
        if self.conn.their_state is h11.IDLE and data:
            self._arm_header_timer()
        else:
            self._disarm_header_timer()


GuardedHttpToolsProtocol = _httptools_class()


def protocol_name() -> str:
    """The import string for uvicorn's ``http`` option (httptools when installed, like ``auto``)."""
    name = "GuardedHttpToolsProtocol" if GuardedHttpToolsProtocol is not None else "GuardedH11Protocol"
    return f"{__name__}:{name}"
