"""Keep long-lived objects out of the cyclic garbage collector's way, off every critical path.

Haystack, the server and the loaded pipelines are ~150k tracked objects that live as long as the
process; a full collection that walks them all shows up as a 100 ms stall in request tails.
Freezing them after each change of the pipeline set makes collections see only per-request garbage.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Optional


def tune_collector(threshold: int) -> None:
    """Run a young-generation collection after ``threshold`` net allocations instead of 700.

    Under concurrent load, a worker holds thousands of container objects per moment (the frames,
    scopes, futures and dicts of the requests in flight) that reference counting frees when each
    request ends. With Python's default the young generation fills with them every few requests:
    measured on an echo pipeline at 64 connections, 1,500 collections in 6 s took 10% of the
    worker's CPU, and every collection found almost nothing to free. At 50,000 the collector runs
    only when objects really pile up (cycles), a few times a minute; the memory it lets wait is a
    few megabytes. ``0`` keeps the interpreter's setting.
    """
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


def settle_heap() -> None:
    """Unfreeze (so what a reload or undeploy retired can be freed: nothing leaks), collect, freeze
    what is left. One collection per change of the pipeline set, never per request."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class HeapSettler:
    """Settles the heap once the pipeline set has been quiet for ``delay`` seconds (at the latest
    ``max_delay`` after the first change), on a thread of its own.

    The collection holds the GIL for 100-150 ms. Run inside the change, it delayed every deploy's
    answer by that much (the deploying worker adopts the new version on the deploy's path); run
    shortly after, it landed in the next call of a script deploying several pipelines. Debounced, a
    burst of changes (startup, a CI job's deploys) costs one collection once things are quiet; retired
    versions are freed then.
    """

    def __init__(self, delay: float = 5.0, max_delay: float = 60.0) -> None:
        self.delay = delay
        self.max_delay = max_delay
        self.settled = 0  # collections run so far (for tests and diagnostics)
        self._cond = threading.Condition()
        self._due: Optional[float] = None
        self._first: Optional[float] = None  # the first change since the last collection
        self._stopped = False
        self._thread: Optional[threading.Thread] = None

    def poke(self) -> None:
        with self._cond:
            if self._stopped:
                return
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._due = min(now + self.delay, self._first + self.max_delay)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hayhooks-heap", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._due is None:
                        self._cond.wait()
                        continue
                    remaining = self._due - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopped:
                    return
                self._due = self._first = None
            settle_heap()
            self.settled += 1
