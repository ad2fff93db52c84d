"""The one run path: how every surface (HTTP ``/{name}/run``, OpenAI, MCP) runs a pipeline.

``Runner.run`` owns lookup, the capability check, admission, the timeout, cancellation when the
client goes away, and the error path: it raises only ``HayhooksError``s, wraps a wrapper's own
exception with ``PipelineRunError.wrap`` (which keeps the failing Haystack component), and logs
each failure exactly once. Surfaces only translate their request into keyword arguments and
render what comes back: a plain value, an ``SSEStream`` whose stream is a ``RunStream``, or a
``RunStream`` (a streaming result, which keeps the run's slot and deadline until it ends).

Observability hangs on ``observe()``: one call per run, ended once with the run's outcome,
whether the run was a plain call or a stream.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Optional, Protocol

from pydantic import BaseModel

from hayhooks.errors import (
    ClientDisconnected,
    HayhooksError,
    NotSupported,
    PipelineNotFound,
    PipelineRunError,
    RunTimeout,
    WrapperRefused,
)
from hayhooks.pipelines.executor import _DONE, DeadlineExceeded, Executor, Slot, SyncSteps, uncancel
from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.pipelines.sse import SSEStream
from hayhooks.pipelines.wrapper import implemented_method

log = logging.getLogger("hayhooks")

# Items an async stream may produce in a row before the event loop is given a turn.
_YIELD_EVERY = 64

# Seconds a run lasts before the client's connection is watched for a disconnect.
_WATCH_AFTER = 0.05

# What a capability is called in "does not support ..." messages.
CAPABILITY_NAMES = {
    "run": "run_api / run_api_async",
    "chat": "chat completions",
    "responses": "the Responses API",
    "files": "file uploads",
}


class Observation(Protocol):
    """A run's observability hook (metrics, the run span, the recent-runs record): created when the
    run starts, active while wrapper code runs (so Haystack's spans nest under the run), told of
    each streamed chunk, and ``end()``-ed exactly once with the run's outcome."""

    def activate(self) -> None: ...
    def deactivate(self) -> None: ...
    def chunk(self) -> None: ...
    def end(self, error: Optional[BaseException] = None) -> None: ...


class _Unobserved:
    """The hook when nothing observes this service (metrics off, tracing off, no recent runs)."""

    __slots__ = ()

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def chunk(self) -> None:
        pass

    def end(self, error: Optional[BaseException] = None) -> None:
        pass


_UNOBSERVED = _Unobserved()


def observe(service: Any, surface: str, pipeline: str) -> Observation:
    from hayhooks.observability.runs import start_run

    return start_run(service, pipeline, surface) or _UNOBSERVED


def stream_source(result: Any) -> Optional[Any]:
    """The iterable to stream when ``result`` is a streaming result, else None."""
    if isinstance(result, (str, bytes, bytearray, dict, list, tuple, BaseModel)):
        return None
    if isinstance(result, AsyncIterable) or isinstance(result, Iterator):
        return result
    return None


class Runner:
    def __init__(self, service: Any) -> None:
        self._service = service
        self._executor: Executor = service.executor

    # -- lookup ---------------------------------------------------------------------------------
    async def lookup(self, name: str) -> LoadedPipeline:
        service = self._service
        pipeline = service.registry.get(name)
        if pipeline is None and not service.ready and await service.wait_ready():
            pipeline = service.registry.get(name)
        if pipeline is None:
            raise PipelineNotFound(f"Pipeline '{name}' not found")
        return pipeline

    @staticmethod
    def method(pipeline: LoadedPipeline, capability: str) -> tuple[str, bool]:
        if capability == "run":
            spec = pipeline.run
            found = (spec.method_name, spec.is_async) if spec is not None else None
        else:
            found = implemented_method(pipeline.wrapper, capability)
        if found is None:
            raise NotSupported(
                f"Pipeline '{pipeline.name}' does not support {CAPABILITY_NAMES.get(capability, capability)}; "
                f"it serves {', '.join(sorted(pipeline.capabilities)) or 'nothing'}"
            )
        return found

    def timeout_for(self, pipeline: LoadedPipeline) -> Optional[float]:
        """The wrapper's ``request_timeout`` class attribute, else ``HAYHOOKS_REQUEST_TIMEOUT``; 0 = none."""
        value = getattr(type(pipeline.wrapper), "request_timeout", None)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            value = self._service.settings.request_timeout
        return float(value) if value and value > 0 else None

    # -- the run --------------------------------------------------------------------------------
    async def run(
        self,
        name: str,
        capability: str = "run",
        *,
        surface: str,
        kwargs: Optional[dict[str, Any]] = None,
        disconnected: Optional[Callable[[], Awaitable[Any]]] = None,
    ) -> Any:
        """Run ``name``'s method for ``capability`` with ``kwargs``; see the module docstring."""
        obs: Observation = _UNOBSERVED
        slot: Optional[Slot] = None
        timeout: Optional[float] = None
        try:
            pipeline = await self.lookup(name)
            # Observed from here: unknown names never become metric labels.
            obs = observe(self._service, surface, name)
            method_name, is_async = self.method(pipeline, capability)
            timeout = self.timeout_for(pipeline)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            method = getattr(pipeline.wrapper, method_name)
            if not is_async:
                slot = self._executor.admit()
            obs.activate()
            try:
                result = await self._call(method, is_async, kwargs or {}, slot, deadline, disconnected)
            finally:
                obs.deactivate()
            if isinstance(result, SSEStream) and isinstance(result.stream, (list, tuple)):
                result = SSEStream(iter(result.stream))  # a list of events streams too
            stream = stream_source(result.stream if isinstance(result, SSEStream) else result)
            if stream is None:
                if slot is not None:
                    slot.release()
                obs.end(None)
                return result
            if slot is None and not isinstance(stream, AsyncIterable):
                slot = self._admit_stream(stream)  # an async method returned a sync iterator
            wrapped = RunStream(self, stream, slot, deadline, name, surface, timeout, obs)
            slot = None  # the stream owns it now
            return SSEStream(wrapped) if isinstance(result, SSEStream) else wrapped
        except BaseException as exc:
            if slot is not None:
                slot.release()
            error = self.failure(exc, name, surface, timeout)
            if error is None:  # cancelled (server shutting down): not a run failure
                obs.end(None)
                raise
            obs.end(error)
            if error is exc:
                raise
            raise error from exc

    def _admit_stream(self, stream: Any) -> Slot:
        try:
            return self._executor.admit()
        except HayhooksError:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            raise

    async def _call(
        self,
        method: Callable[..., Any],
        is_async: bool,
        kwargs: dict[str, Any],
        slot: Optional[Slot],
        deadline: Optional[float],
        disconnected: Optional[Callable[[], Awaitable[Any]]],
    ) -> Any:
        executor = self._executor
        if disconnected is None:
            if is_async:
                return await executor.call_async(method, kwargs, deadline)
            assert slot is not None
            return await executor.call_sync(slot, functools.partial(method, **kwargs), (), deadline)
        # Watch the client while the call runs: if it goes away, cancel this task (an async run
        # is cancelled with it; a sync one is detached and finishes on its thread). Only runs that
        # last more than a moment get a watcher task: fast ones pay for one timer handle.
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        gone = False
        watcher: Optional[asyncio.Task[None]] = None

        async def watch() -> None:
            nonlocal gone
            try:
                await disconnected()
            except Exception:  # cannot tell: keep running
                return
            gone = True
            task.cancel()

        def start_watching() -> None:
            nonlocal watcher
            watcher = loop.create_task(watch())

        timer = loop.call_later(_WATCH_AFTER, start_watching)
        try:
            if is_async:
                return await executor.call_async(method, kwargs, deadline)
            assert slot is not None
            return await executor.call_sync(slot, functools.partial(method, **kwargs), (), deadline)
        except asyncio.CancelledError:
            if gone and uncancel(task) == 0:
                raise ClientDisconnected("The client disconnected before the run finished") from None
            raise
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()

    # -- the error path -------------------------------------------------------------------------
    def failure(
        self, exc: BaseException, name: str, surface: str, timeout: Optional[float]
    ) -> Optional[HayhooksError]:
        """The HayhooksError ``exc`` means for this run, logged once; None for a cancellation."""
        if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
            return None
        if isinstance(exc, HayhooksError):
            error = exc
        elif isinstance(exc, DeadlineExceeded):
            error = RunTimeout(
                f"Pipeline '{name}' did not finish within {timeout or 0:g}s",
                pipeline=name,
                timeout=timeout,
            )
        else:
            error = WrapperRefused.from_exception(exc) or PipelineRunError.wrap(name, exc)
        if not error.logged:
            error.logged = True
            if error.expected:
                log.log(
                    logging.WARNING if error.status_code >= 500 else logging.INFO,
                    "%s: pipeline '%s': %s (%d)",
                    surface,
                    name,
                    error.message,
                    error.status_code,
                )
            else:
                cause = error.__cause__ or exc
                log.error("%s: pipeline '%s': %s", surface, name, error.message, exc_info=cause)
        return error


class RunStream:
    """A streaming run's result, iterated once with ``async for``. It holds the run's admission slot
    and deadline until the stream ends, fails, or is closed (``aclose()``, which closes the
    wrapper's generator: that is what cancels a streaming pipeline when the client leaves). Errors
    come out as HayhooksErrors, logged once, exactly like a non-streaming run's."""

    def __init__(
        self,
        runner: Runner,
        source: Any,
        slot: Optional[Slot],
        deadline: Optional[float],
        name: str,
        surface: str,
        timeout: Optional[float],
        obs: Observation,
    ) -> None:
        self.name = name
        self._runner = runner
        self._slot = slot
        self._deadline = deadline
        self._surface = surface
        self._timeout = timeout
        self._obs = obs
        self._over = False
        self._async: Optional[AsyncIterator[Any]] = None
        self._unyielded = 0
        self._steps: Optional[SyncSteps] = None
        if isinstance(source, AsyncIterable):
            self._async = aiter(source)
        else:
            assert slot is not None
            self._steps = SyncSteps(runner._executor, slot, iter(source))
        # Async sources: one timer for the whole stream cancels the step in progress at the deadline.
        self._timer: Optional[asyncio.TimerHandle] = None
        self._expired = False
        self._stepping: Optional[asyncio.Task[Any]] = None
        if deadline is not None and self._async is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> Any:
        if self._over:
            raise StopAsyncIteration
        obs = self._obs
        obs.activate()
        try:
            if self._async is not None:
                if self._timer is None:
                    item = await self._async.__anext__()
                else:
                    item = await self._bounded_step()
                self._unyielded += 1
                if self._unyielded >= _YIELD_EVERY:
                    # An async generator that never awaits, written to a socket that never blocks,
                    # would hold the event loop: no disconnect, timeout or other request would be
                    # noticed. Let the loop run now and then.
                    self._unyielded = 0
                    await asyncio.sleep(0)
            else:
                assert self._steps is not None
                item = await self._steps.next(self._deadline)
                if item is _DONE:
                    raise StopAsyncIteration
            obs.chunk()
            return item
        except StopAsyncIteration:
            await self._finish(None)
            raise
        except BaseException as exc:
            error = self._runner.failure(exc, self.name, self._surface, self._timeout)
            await self._finish(error)
            if error is None or error is exc:
                raise
            raise error from exc
        finally:
            obs.deactivate()

    async def _bounded_step(self) -> Any:
        if self._expired:
            raise DeadlineExceeded()
        assert self._async is not None
        task = self._stepping = asyncio.current_task()
        try:
            return await self._async.__anext__()
        except asyncio.CancelledError:
            if self._expired and uncancel(task) == 0:
                raise DeadlineExceeded() from None
            raise
        finally:
            self._stepping = None

    def __del__(self) -> None:
        # Never iterated nor closed (the response was dropped before it started): free the slot.
        if not self._over:
            self._over = True
            if self._slot is not None:
                self._slot.release()
            self._obs.end(None)

    def _expire(self) -> None:
        self._expired = True
        if self._stepping is not None:
            self._stepping.cancel()

    async def aclose(self) -> None:
        """Stop early: close the wrapper's generator and release the run."""
        await self._finish(None)

    async def _finish(self, error: Optional[BaseException]) -> None:
        if self._over:
            return
        self._over = True
        if self._timer is not None:
            self._timer.cancel()
        try:
            if self._async is not None:
                aclose = getattr(self._async, "aclose", None)
                if aclose is not None:
                    try:
                        await aclose()
                    except Exception as exc:  # a generator failing while closing: nothing to tell
                        log.debug("Closing the stream of '%s' failed: %r", self.name, exc)
            elif self._steps is not None:
                await self._steps.close()
        finally:
            if self._slot is not None:
                self._slot.release()
            self._obs.end(error)
