"""Runs wrapper calls without ever blocking the event loop.

Async methods run on the loop; sync methods and sync generators run on one bounded thread pool
per worker process. CPU-bound pipelines scale across cores with worker processes
(``--workers``), not here: threads only keep the loop responsive.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from hayhooks.errors import Overloaded
from hayhooks.pipelines.models import LoadedPipeline

_DONE = object()


class Executor:
    def __init__(self, max_threads: int, max_queued: int = -1) -> None:
        self.max_threads = max_threads
        # Sync runs admitted at once: every thread busy plus ``max_queued`` waiting (-1: no bound).
        self._admit = max_threads + max_queued if max_queued >= 0 else None
        self._in_flight = 0  # touched on the event loop only
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="hayhooks-run")

    async def call(self, pipeline: LoadedPipeline, method_name: str, is_async: bool, /, **kwargs: Any) -> Any:
        method = getattr(pipeline.wrapper, method_name)
        if is_async:
            result = method(**kwargs)
            return await result if inspect.isawaitable(result) else result
        if self._admit is not None and self._in_flight >= self._admit:
            raise Overloaded(
                f"Worker busy: {self.max_threads} runs in progress and {self._admit - self.max_threads} waiting; retry"
            )
        self._in_flight += 1
        try:
            return await self.run_sync(functools.partial(method, **kwargs))
        finally:
            self._in_flight -= 1

    async def run_sync(self, fn: Any) -> Any:
        # The caller's contextvars (request id, the run's span) follow the call into the thread.
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._pool, ctx.run, fn)

    async def aiter(self, iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
        """Iterate any (a)sync iterable from async code; sync items are pulled on the pool.

        When the consumer stops early (client gone), a sync generator is closed on the pool so
        its ``finally`` blocks run (that is how streaming helpers cancel their pipeline run).
        """
        if isinstance(iterable, AsyncIterable):
            source = aiter(iterable)
            try:
                async for item in source:
                    yield item
            finally:
                # Close now rather than whenever the garbage collector gets to it: that is what
                # cancels a streaming pipeline run when the client goes away.
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        iterator = iter(iterable)
        pending: Future[Any] | None = None
        ctx = contextvars.copy_context()
        try:
            while True:
                pending = self._pool.submit(ctx.run, functools.partial(next, iterator, _DONE))
                item = await asyncio.wrap_future(pending)
                if item is _DONE:
                    return
                yield item
        finally:
            if hasattr(iterator, "close"):
                if pending is not None and not pending.done():
                    # The consumer left while a next() still runs on a thread: close the
                    # generator as soon as that step returns, so it cannot run on unobserved.
                    pending.add_done_callback(lambda _: self._submit_quietly(_close_quietly, iterator))
                else:
                    await asyncio.shield(self.run_sync(functools.partial(_close_quietly, iterator)))

    def _submit_quietly(self, fn: Any, *args: Any) -> None:
        try:
            self._pool.submit(fn, *args)
        except RuntimeError:  # pool shut down: the process is exiting anyway
            pass

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _close_quietly(iterator: Any) -> None:
    try:
        iterator.close()
    except Exception:
        pass
