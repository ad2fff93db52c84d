"""Keep one worker on the store's latest state, from a thread of its own.

The event loop never waits on the pipelines directory: the generation check, the snapshots and the
file watching all happen here. Deploys (a new generation) are noticed within a tenth of a second;
hand edits through filesystem events (``watchfiles``, inotify on Linux) where available, and by a
full scan every ``poll_interval`` seconds as the fallback (network filesystems deliver no events).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hayhooks.pipelines.service import PipelineService

log = logging.getLogger("hayhooks")

GENERATION_CHECK_INTERVAL = 0.1
# Our own bookkeeping changes all the time (heartbeats, version folders): not a hand edit.
_IGNORED_PARTS = ("workers", "work", "staging", "archive", "__pycache__")


class Follower:
    def __init__(self, service: PipelineService) -> None:
        self.service = service
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._dirty = threading.Event()  # a filesystem event: rescan even if the generation is the same
        self._threads: list[threading.Thread] = []
        self.watching = False

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, name="hayhooks-follow", daemon=True),
            threading.Thread(target=self._watch, name="hayhooks-watch", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(5)

    def _run(self) -> None:
        service = self.service
        try:
            service.sync()
        except Exception:
            log.exception("Could not load the pipelines directory")
        last_full = time.monotonic()
        while not self._stop.is_set():
            if not service.ready and not service.registry.loading():
                service._mark_ready()
            self._wake.wait(GENERATION_CHECK_INTERVAL)
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            try:
                dirty = self._dirty.is_set()
                if (
                    dirty
                    or service.store.generation() != service.registry.seen
                    or now - last_full >= service.settings.poll_interval
                ):
                    self._dirty.clear()
                    service.sync()
                    last_full = now
            except Exception:
                log.exception("Could not sync with the pipelines directory")

    def _watch(self) -> None:
        """Turn filesystem events under the pipelines directory into rescans (polling stays on)."""
        try:
            import watchfiles
        except ImportError:  # pragma: no cover - installed with uvicorn[standard]
            log.info("watchfiles is not installed: hand edits are noticed by polling only")
            return
        root = self.service.store.root
        meta = self.service.store.meta

        def relevant(change: Any, path: str) -> bool:
            if path.startswith(str(meta)):
                rel = path[len(str(meta)) :].lstrip("/")
                return rel.split("/", 1)[0] not in _IGNORED_PARTS
            return "__pycache__" not in path

        while not self._stop.is_set():
            try:
                self.watching = True
                for _changes in watchfiles.watch(
                    root,
                    watch_filter=relevant,
                    stop_event=self._stop,
                    debounce=15,
                    step=10,
                    rust_timeout=1000,
                    yield_on_timeout=False,
                    raise_interrupt=False,
                    ignore_permission_denied=True,
                ):
                    self._dirty.set()
                    self._wake.set()
            except Exception as exc:
                self.watching = False
                log.info("Filesystem events unavailable (%s): hand edits are noticed by polling", exc)
                return
