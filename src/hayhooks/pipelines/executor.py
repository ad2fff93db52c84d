"""Runs wrapper calls without ever blocking the event loop.

Async methods run on the loop; sync methods and the steps of sync generators run on one bounded
thread pool per worker process. The pool is sized for I/O waits (a sync run blocked on an LLM API
holds a thread, not a core); CPU-bound pipelines scale across cores with worker processes
(``--workers``), not here.

Admission: a run that uses the pool takes a ``Slot`` before it starts and keeps it until the run
is over, stream included; with ``HAYHOOKS_MAX_QUEUED_RUNS`` set, a worker that already holds
``threads + max_queued`` slots answers 503 at once instead of queueing without bound.

Deadlines: an async call past its deadline is cancelled; a sync call cannot be interrupted, so
the caller stops waiting and the thread is *detached*: counted in ``detached`` (and in its slot)
until the call returns on its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Optional

from hayhooks.errors import Overloaded
from hayhooks.pipelines.threadpool import ThreadPool

_DONE = object()


class DeadlineExceeded(Exception):
    """Raised by the executor when a run passed its deadline (the service turns it into a 504)."""


def uncancel(task: Optional[asyncio.Task[Any]]) -> int:
    """``task.uncancel()`` where it exists (3.11+); 0 on 3.10, which keeps no cancel count."""
    undo = getattr(task, "uncancel", None)
    return int(undo()) if undo is not None else 0


class Deadline:
    """Cancel the current task at ``deadline`` (loop time) while inside ``with``, and raise
    ``DeadlineExceeded`` instead of the ``CancelledError``. Like ``asyncio.timeout_at`` (3.11+),
    for 3.10 too: one timer handle, no extra task."""

    __slots__ = ("_deadline", "_task", "_handle", "_fired")

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._fired = False

    def __enter__(self) -> Deadline:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if self._deadline <= loop.time():
            raise DeadlineExceeded()
        self._handle = loop.call_at(self._deadline, self._fire)
        return self

    def _fire(self) -> None:
        self._fired = True
        if self._task is not None:
            self._task.cancel()

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> None:
        self._handle.cancel()
        if self._fired and typ is asyncio.CancelledError and uncancel(self._task) == 0:
            raise DeadlineExceeded() from None


class Slot:
    """One admitted run. Reference counted: the run holds one reference until it is over, and each
    job on the pool holds one while it runs, so a detached thread keeps counting as in flight."""

    __slots__ = ("_executor", "_refs")

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._refs = 1

    def hold(self) -> None:
        with self._executor._lock:
            self._refs += 1

    def release(self) -> None:
        executor = self._executor
        with executor._lock:
            if self._refs <= 0:
                return
            self._refs -= 1
            if self._refs == 0:
                executor._in_flight -= 1


class Executor:
    def __init__(self, max_threads: int, max_queued: int = -1) -> None:
        self.max_threads = max_threads
        # Runs admitted at once: every thread busy plus ``max_queued`` waiting (-1: no bound).
        self._admit = max_threads + max_queued if max_queued >= 0 else None
        self._lock = threading.RLock()  # re-entrant: a slot may be released from __del__
        self._in_flight = 0
        self._detached = 0
        self._pool = ThreadPool(max_threads, "hayhooks-run")

    # -- counters (any thread) ----------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Admitted runs not over yet (streams and detached threads included)."""
        return self._in_flight

    @property
    def detached(self) -> int:
        """Sync calls (or stream steps) nobody waits for any more that still occupy a thread."""
        return self._detached

    @property
    def threads(self) -> int:
        return self._pool.threads

    def stats(self) -> dict[str, int]:
        return {
            "in_flight_runs": self._in_flight,
            "detached_runs": self._detached,
            "threads": self._pool.threads,
            "max_threads": self.max_threads,
        }

    # -- admission ----------------------------------------------------------------------------------
    def admit(self) -> Slot:
        with self._lock:
            if self._admit is not None and self._in_flight >= self._admit:
                raise Overloaded(
                    f"Worker busy: {self.max_threads} threads and {self._admit - self.max_threads} "
                    "waiting runs in use; retry"
                )
            self._in_flight += 1
        return Slot(self)

    def enter(self) -> Slot:
        """A slot outside admission, for work that bounds its own concurrency (durable runs): it
        counts as in flight like any run, but is never refused."""
        with self._lock:
            self._in_flight += 1
        return Slot(self)

    # -- calls --------------------------------------------------------------------------------------
    async def call(self, pipeline: Any, method_name: str, is_async: bool, /, **kwargs: Any) -> Any:
        """One wrapper call, admitted, without deadline. Surfaces use ``PipelineService.run``
        instead (timeouts, streams holding their slot, one error path); this stays for callers
        that only need a method called off the loop."""
        method = getattr(pipeline.wrapper, method_name)
        if is_async:
            return await self.call_async(method, kwargs, None)
        slot = self.admit()
        try:
            return await self.call_sync(slot, functools.partial(method, **kwargs))
        finally:
            slot.release()

    async def run_sync(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on the pool for callers outside the run path that bound their own concurrency
        (durable runs): counted as in flight, never refused by admission, no deadline."""
        slot = self.enter()
        try:
            return await self.call_sync(slot, fn)
        finally:
            slot.release()

    async def call_async(
        self, method: Callable[..., Any], kwargs: dict[str, Any], deadline: Optional[float]
    ) -> Any:
        """Run an async method on this loop; past ``deadline`` (loop time) it is cancelled."""
        if deadline is None:
            result = method(**kwargs)
            return await result if inspect.isawaitable(result) else result
        with Deadline(deadline):
            result = method(**kwargs)
            return await result if inspect.isawaitable(result) else result

    async def call_sync(
        self, slot: Slot, fn: Callable[..., Any], args: tuple[Any, ...] = (), deadline: Optional[float] = None
    ) -> Any:
        """Run ``fn(*args)`` on the pool. If the caller stops waiting (deadline, cancellation) while
        it runs, the job is detached: it keeps its slot reference and is counted until it returns."""
        slot.hold()
        try:
            # The caller's contextvars (request id, the run's span) follow the call into the thread.
            job = self._pool.submit(contextvars.copy_context().run, fn, *args)
        except BaseException:
            slot.release()
            raise
        job.add_done_callback(lambda _: slot.release())
        waiter = asyncio.wrap_future(job)
        try:
            if deadline is None:
                return await waiter
            with Deadline(deadline):
                return await waiter
        except BaseException:
            if not job.done():
                self._detach(job)
            raise

    def _detach(self, job: Future[Any], then: Optional[Callable[[], None]] = None) -> None:
        with self._lock:
            self._detached += 1

        def ended(_: Any) -> None:
            with self._lock:
                self._detached -= 1
            if then is not None:
                then()

        job.add_done_callback(ended)

    # -- iterating results --------------------------------------------------------------------------
    async def aiter(self, iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
        """Iterate any (a)sync iterable from async code; sync items are pulled on the pool.

        For callers outside a run (no slot, no deadline); runs go through ``RunStream``.
        """
        if isinstance(iterable, AsyncIterable):
            source = aiter(iterable)
            try:
                async for item in source:
                    yield item
            finally:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        slot = self.enter()
        steps = SyncSteps(self, slot, iter(iterable))
        try:
            while True:
                item = await steps.next(None)
                if item is _DONE:
                    return
                yield item
        finally:
            await steps.close()
            slot.release()

    def shutdown(self) -> None:
        self._pool.shutdown()


class SyncSteps:
    """Pulls a sync iterator one ``next()`` per pool job, each bounded by the run's deadline.

    When the consumer leaves while a step still runs (client gone, deadline), the iterator is
    closed as soon as that step returns, so a streaming helper's ``finally`` cancels its pipeline.
    """

    __slots__ = ("_executor", "_slot", "_iterator", "_pending")

    def __init__(self, executor: Executor, slot: Slot, iterator: Iterator[Any]) -> None:
        self._executor = executor
        self._slot = slot
        self._iterator = iterator
        self._pending: Optional[Future[Any]] = None

    async def next(self, deadline: Optional[float]) -> Any:
        executor = self._executor
        slot = self._slot
        slot.hold()
        try:
            job = executor._pool.submit(contextvars.copy_context().run, next, self._iterator, _DONE)
        except BaseException:
            slot.release()
            raise
        job.add_done_callback(lambda _: slot.release())
        self._pending = job
        waiter = asyncio.wrap_future(job)
        if deadline is None:
            item = await waiter
        else:
            with Deadline(deadline):
                item = await waiter
        self._pending = None
        return item

    async def close(self) -> None:
        iterator = self._iterator
        if not hasattr(iterator, "close"):
            return
        pending = self._pending
        executor = self._executor
        if pending is not None and not pending.done():
            # A step still runs on a thread: close the generator right after it, on the pool.
            slot = self._slot
            slot.hold()

            def close_later() -> None:
                try:
                    executor._pool.submit(_close_quietly, iterator).add_done_callback(
                        lambda _: slot.release()
                    )
                except RuntimeError:  # pool shut down: the process is exiting anyway
                    slot.release()

            executor._detach(pending, close_later)
            return
        self._slot.hold()
        try:
            job = executor._pool.submit(_close_quietly, iterator)
        except RuntimeError:
            self._slot.release()
            return
        job.add_done_callback(lambda _: self._slot.release())
        await asyncio.shield(asyncio.wrap_future(job))


def _close_quietly(iterator: Any) -> None:
    try:
        iterator.close()
    except Exception:
        pass
