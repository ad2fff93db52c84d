"""The process-wide background event loop that drives sync streaming generators.

Split out of ``hayhooks.streaming.generator``: it knows nothing of pipelines, it only iterates any
async iterator from sync code on one shared loop (thread ``hayhooks-streaming``) instead of starting
a thread per request.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Generator
from collections.abc import Generator as GeneratorABC
from typing import Any, Optional

# The background loop that runs the pipelines of sync generators: one per process.
_loop_lock = threading.Lock()
_loop: Optional[asyncio.AbstractEventLoop] = None
_loop_thread: Optional[threading.Thread] = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None or _loop_thread is None or not _loop_thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="hayhooks-streaming", daemon=True)
            thread.start()
            ready.wait()
            _loop, _loop_thread = loop, thread
        return _loop


class _Stop:
    def __init__(self, error: Optional[BaseException] = None) -> None:
        self.error = error


def iterate_in_background(agen: AsyncIterator[Any]) -> Generator[Any, None, None]:
    """Iterate an async iterator from sync code, driving it on the shared background loop.

    A pump task on the loop moves items into a thread-safe queue, so each item costs one queue
    hand-off rather than one cross-thread coroutine call. Closing this generator cancels the pump,
    which closes ``agen`` (and so cancels the pipeline run).
    """
    loop = _background_loop()
    if threading.current_thread() is _loop_thread:
        raise RuntimeError("a sync streaming generator cannot be iterated on the hayhooks streaming loop")
    items: queue.SimpleQueue[Any] = queue.SimpleQueue()

    async def pump() -> None:
        try:
            async for item in agen:  # type: ignore[union-attr]
                items.put(item)
        except asyncio.CancelledError:
            items.put(_Stop())
            raise
        except BaseException as exc:
            items.put(_Stop(exc))
        else:
            items.put(_Stop())
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                await aclose()

    task = asyncio.run_coroutine_threadsafe(pump(), loop)
    try:
        while True:
            item = items.get()
            if isinstance(item, _Stop):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        if not task.done():
            task.cancel()  # thread-safe on a concurrent.futures.Future: cancels the task on the loop


class BackgroundStream(GeneratorABC):
    """What ``streaming_generator`` returns: a sync generator for sync callers, and directly the
    underlying async generator for async ones.

    Sync code (``for chunk in streaming_generator(...)``) drives the pipeline on the background loop
    as ``iterate_in_background`` does. The server, which consumes streams from async code, finds
    ``__aiter__`` and iterates the async generator on its own loop instead: no thread hand-off per
    chunk, no background loop. Either way the stream can be consumed once.
    """

    def __init__(self, agen: AsyncIterator[Any]) -> None:
        self._agen = agen
        self._sync: Optional[Generator[Any, None, None]] = None
        self._claimed = False

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._sync is not None or self._claimed:
            raise RuntimeError("this stream is already being consumed")
        self._claimed = True
        return self._agen

    def send(self, value: Any) -> Any:
        if self._sync is None:
            if self._claimed:
                raise RuntimeError("this stream is already being consumed asynchronously")
            self._sync = iterate_in_background(self._agen)
        return self._sync.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        if self._sync is None:
            raise typ if val is None else val
        return self._sync.throw(typ, val, tb)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
