"""Graceful drain on SIGTERM: stop taking new work at once, let in-flight requests finish.

uvicorn already stops accepting connections on SIGTERM, closes idle keep-alive connections and
waits up to ``timeout_graceful_shutdown`` (``HAYHOOKS_GRACEFUL_SHUTDOWN_TIMEOUT``) for busy ones.
What it cannot know: that ``/ready`` must answer 503 from that moment (so load balancers stop
routing here), and that some load balancers only learn from failed readiness probes, so the
instance must keep accepting for ``HAYHOOKS_SHUTDOWN_DELAY`` seconds first. This module chains a
handler in front of the server's own signal handler (installed by uvicorn before the app's
lifespan starts, in every worker process) that marks the service as draining and, for SIGTERM,
hands the signal on to uvicorn after the delay.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Optional

log = logging.getLogger("hayhooks")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    def __init__(self, service: Any, shutdown_delay: float) -> None:
        self.service = service
        self.shutdown_delay = shutdown_delay
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._previous: dict[int, Callable[[int, Optional[FrameType]], Any]] = {}
        self._delaying = False

    def install(self) -> bool:
        """Chain our handler in front of the server's; False where signals cannot be handled here
        (not the main thread, or no Python-level handler to hand the signal on to)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):
                self._previous[sig] = previous
                signal.signal(sig, self._on_signal)
        return bool(self._previous)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous.clear()

    def _on_signal(self, sig: int, frame: Optional[FrameType]) -> None:
        previous = self._previous.get(sig)
        if not self.service.draining:
            self.service.draining = True
            log.info(
                "Received %s: draining (/ready answers 503)%s",
                signal.Signals(sig).name,
                f", accepting for {self.shutdown_delay:g}s more" if self._delay_for(sig) else "",
            )
            if self._delay_for(sig) and self._loop is not None and previous is not None:
                self._delaying = True
                self._loop.call_soon_threadsafe(
                    self._loop.call_later, self.shutdown_delay, self._hand_on, previous, sig
                )
                return
        elif self._delaying and sig == signal.SIGTERM:
            return  # a repeated SIGTERM (e.g. to the whole process group) does not cut the delay short
        if previous is not None:
            previous(sig, frame)

    def _delay_for(self, sig: int) -> bool:
        return sig == signal.SIGTERM and self.shutdown_delay > 0

    def _hand_on(self, previous: Callable[[int, Optional[FrameType]], Any], sig: int) -> None:
        self._delaying = False
        previous(sig, None)
