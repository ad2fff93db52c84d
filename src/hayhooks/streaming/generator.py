"""Run a Haystack Pipeline or Agent and yield its ``StreamingChunk``s as they are produced.

One engine serves both entry points:

* ``async_streaming_generator`` runs the pipeline on the caller's event loop (``run_async`` when the
  pipeline or agent has it, otherwise its sync ``run`` on a worker thread) and forwards every chunk
  that the selected components hand to their ``streaming_callback``.
* ``streaming_generator`` is a plain generator that drives the very same async generator on one
  process-wide background event loop (thread ``hayhooks-streaming``). It never starts a thread per
  request, and it can be iterated from any thread (the server pulls it from its thread pool).

Stopping early (the client disconnected: the generator is closed, cancelled or garbage collected)
cancels the pipeline task. A sync component that is still running on a worker thread is stopped at
its next chunk: its streaming callback raises ``StreamCancelled``, so the thread is released rather
than left running the rest of the generation for nobody.

Which components stream: by default the last streaming-capable component of the pipeline (the last
in execution order that accepts a ``streaming_callback``); ``HAYHOOKS_STREAMING_COMPONENTS``
(``all`` or a comma list of names) overrides that, and the ``streaming_components`` argument
overrides the environment.

The selection rule lives in ``hayhooks.streaming.components`` and the shared background loop in
``hayhooks.streaming.background``; this module keeps the engine, the hooks and the public generators.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Optional, Union

from haystack.dataclasses import StreamingChunk

from hayhooks.logger import log
from hayhooks.streaming.background import BackgroundStream
from hayhooks.streaming.components import (
    StreamingComponents,
    _has_runtime_callback,
    _is_pipeline,
    select_streaming_components,
)

HookResult = Any  # str | PipelineEvent | StreamingChunk | list of those | None
ToolCallStartHook = Callable[[str, dict, Optional[str]], HookResult]
ToolCallEndHook = Callable[[str, dict, Any, bool], HookResult]
PipelineEndHook = Callable[[dict], HookResult]
ReasoningHook = Callable[[str, Optional[dict]], HookResult]


class StreamCancelled(Exception):
    """Raised inside a streaming callback once the consumer of the stream has gone away."""


# --------------------------------------------------------------------------------------------
# The engine: an async generator of chunks, then one _Done with the pipeline result
# --------------------------------------------------------------------------------------------
@dataclass
class _Done:
    result: dict[str, Any]


_END = object()


def _supports_async(instance: Any) -> bool:
    return callable(getattr(instance, "run_async", None))


class _Channel:
    """Where streaming callbacks put chunks; callbacks raise once the consumer is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()

    def callback(self, is_async: bool, user_callback: Any = None) -> Callable[..., Any]:
        user_is_async = user_callback is not None and inspect.iscoroutinefunction(user_callback)

        if is_async:

            async def forward(chunk: StreamingChunk) -> None:
                if self.cancelled.is_set():
                    raise StreamCancelled("the stream consumer has gone away")
                self.queue.put_nowait(chunk)
                if user_callback is not None:
                    outcome = user_callback(chunk)
                    if user_is_async or inspect.isawaitable(outcome):
                        await outcome

            return forward

        def forward_sync(chunk: StreamingChunk) -> None:
            if self.cancelled.is_set():
                raise StreamCancelled("the stream consumer has gone away")
            self.loop.call_soon_threadsafe(self.queue.put_nowait, chunk)
            if user_callback is not None:
                if user_is_async:
                    asyncio.run_coroutine_threadsafe(user_callback(chunk), self.loop)
                else:
                    user_callback(chunk)

        return forward_sync


async def _run_pipeline(
    channel: _Channel,
    pipeline: Any,
    run_args: dict[str, Any],
    streaming_components: StreamingComponents,
    include_outputs_from: Optional[set[str]],
) -> dict[str, Any]:
    names = select_streaming_components(pipeline, streaming_components)
    use_async = _supports_async(pipeline)
    prepare = getattr(pipeline, "_prepare_component_input_data", None)
    data = prepare(dict(run_args)) if prepare is not None else dict(run_args)
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    restore: list[tuple[Any, Any]] = []
    for name in names:
        instance = pipeline.get_component(name)
        is_async = use_async and _supports_async(instance)
        if _has_runtime_callback(instance):
            inputs = data.setdefault(name, {})
            user_cb = inputs.get("streaming_callback") or getattr(instance, "streaming_callback", None)
            inputs["streaming_callback"] = channel.callback(is_async, user_cb)
        else:
            # Old-style component with only an init-time callback: swap the attribute for this run.
            # Not safe for concurrent runs of the same instance; components should take it at runtime.
            restore.append((instance, getattr(instance, "streaming_callback", None)))
            instance.streaming_callback = channel.callback(is_async, restore[-1][1])
    kwargs: dict[str, Any] = {}
    if include_outputs_from is not None:
        kwargs["include_outputs_from"] = set(include_outputs_from)
    try:
        if use_async:
            return await pipeline.run_async(data, **kwargs)
        return await asyncio.to_thread(pipeline.run, data, **kwargs)
    finally:
        for instance, previous in restore:
            instance.streaming_callback = previous


async def _run_component(channel: _Channel, component: Any, run_args: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(run_args)
    user_cb = kwargs.pop("streaming_callback", None) or getattr(component, "streaming_callback", None)
    if _supports_async(component):
        return await component.run_async(streaming_callback=channel.callback(True, user_cb), **kwargs)
    return await asyncio.to_thread(
        component.run, streaming_callback=channel.callback(False, user_cb), **kwargs
    )


def _consume_task_outcome(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, StreamCancelled):
        log.debug("Abandoned streaming run ended with %r", exc)


async def _chunk_stream(
    target: Any,
    run_args: Optional[dict[str, Any]],
    streaming_components: StreamingComponents,
    include_outputs_from: Optional[set[str]],
) -> AsyncGenerator[Union[StreamingChunk, _Done], None]:
    loop = asyncio.get_running_loop()
    channel = _Channel(loop)
    run_args = dict(run_args or {})

    async def runner() -> dict[str, Any]:
        try:
            if _is_pipeline(target):
                return await _run_pipeline(
                    channel, target, run_args, streaming_components, include_outputs_from
                )
            return await _run_component(channel, target, run_args)
        finally:
            channel.queue.put_nowait(_END)

    task = loop.create_task(runner(), name="hayhooks-stream")
    finished = False
    try:
        while True:
            item = await channel.queue.get()
            if item is _END:
                break
            yield item
        result = await task  # re-raises the pipeline's error
        finished = True
        yield _Done(result if isinstance(result, dict) else {"result": result})
    finally:
        channel.cancelled.set()
        if not finished and not task.done():
            task.cancel()
        task.add_done_callback(_consume_task_outcome)


# --------------------------------------------------------------------------------------------
# Hooks (tool calls, reasoning, pipeline end)
# --------------------------------------------------------------------------------------------
def _parse_args(raw: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"input": raw}
    return value if isinstance(value, dict) else {"input": value}


class _Hooks:
    def __init__(
        self,
        on_tool_call_start: Optional[ToolCallStartHook],
        on_tool_call_end: Optional[ToolCallEndHook],
        on_pipeline_end: Optional[PipelineEndHook],
        on_reasoning: Optional[ReasoningHook],
    ) -> None:
        self.on_start = on_tool_call_start
        self.on_end = on_tool_call_end
        self.on_pipeline_end = on_pipeline_end
        self.on_reasoning = on_reasoning
        self._pending: dict[int, dict[str, Any]] = {}  # index -> {"name", "args", "id"}

    @staticmethod
    async def _call(hook: Callable[..., Any], *args: Any) -> list[Any]:
        out = hook(*args)
        if inspect.isawaitable(out):
            out = await out
        if out is None:
            return []
        return list(out) if isinstance(out, (list, tuple)) else [out]

    async def _flush_starts(self) -> list[Any]:
        out: list[Any] = []
        pending, self._pending = self._pending, {}
        if self.on_start is None:
            return out
        for call in pending.values():
            out.extend(
                await self._call(self.on_start, call["name"] or "", _parse_args(call["args"]), call["id"])
            )
        return out

    async def chunk(self, chunk: StreamingChunk) -> list[Any]:
        if chunk.tool_calls and self.on_start is not None:
            out: list[Any] = []
            for delta in chunk.tool_calls:
                current = self._pending.get(delta.index)
                if current is None or (delta.id and current["id"] and delta.id != current["id"]):
                    if current is not None:  # same index reused by a new call: the old one is complete
                        out.extend(
                            await self._call(
                                self.on_start,
                                current["name"] or "",
                                _parse_args(current["args"]),
                                current["id"],
                            )
                        )
                    current = self._pending[delta.index] = {"name": None, "args": "", "id": None}
                current["name"] = current["name"] or delta.tool_name
                current["id"] = current["id"] or delta.id
                current["args"] += delta.arguments or ""
            if chunk.finish_reason:
                out.extend(await self._flush_starts())
            return out
        if chunk.tool_call_result is not None and self.on_end is not None:
            out = await self._flush_starts()
            res = chunk.tool_call_result
            origin = res.origin
            out.extend(
                await self._call(
                    self.on_end, origin.tool_name, dict(origin.arguments or {}), res.result, bool(res.error)
                )
            )
            return out
        if chunk.reasoning is not None and self.on_reasoning is not None:
            return await self._call(
                self.on_reasoning, chunk.reasoning.reasoning_text, chunk.reasoning.extra or None
            )
        out = await self._flush_starts() if (self._pending and chunk.finish_reason) else []
        out.append(chunk)
        return out

    async def end(self, result: dict[str, Any]) -> list[Any]:
        out = await self._flush_starts()
        if self.on_pipeline_end is not None:
            out.extend(await self._call(self.on_pipeline_end, result))
        return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
async def async_streaming_generator(
    pipeline: Any,
    *,
    pipeline_run_args: Optional[dict[str, Any]] = None,
    streaming_components: StreamingComponents = None,
    on_tool_call_start: Optional[ToolCallStartHook] = None,
    on_tool_call_end: Optional[ToolCallEndHook] = None,
    on_pipeline_end: Optional[PipelineEndHook] = None,
    on_reasoning: Optional[ReasoningHook] = None,
    include_outputs_from: Optional[set[str]] = None,
) -> AsyncGenerator[Any, None]:
    """Run ``pipeline`` (a Haystack ``Pipeline``/``AsyncPipeline`` or ``Agent``) and yield its chunks.

    :param pipeline_run_args: the pipeline's ``data`` (nested or flat), or the agent's run kwargs.
    :param streaming_components: ``"all"``, a list / comma list of component names, or None for the
        default (``HAYHOOKS_STREAMING_COMPONENTS``, else the last streaming-capable component).
    :param on_tool_call_start: ``(tool_name, arguments, tool_id)`` once a tool call is complete; when
        given, tool-call chunks are replaced by what it returns (str, PipelineEvent, list or None).
    :param on_tool_call_end: ``(tool_name, arguments, result, error)`` for each tool result chunk;
        when given, tool-result chunks are replaced by what it returns.
    :param on_reasoning: ``(text, extra)`` for each reasoning chunk; replaces the chunk by its output.
    :param on_pipeline_end: ``(result)`` after the run; what it returns is yielded last.
    :param include_outputs_from: component names whose outputs go in the result given to
        ``on_pipeline_end`` (pipelines only).
    """
    stream = _chunk_stream(pipeline, pipeline_run_args, streaming_components, include_outputs_from)
    if (
        on_tool_call_start is None
        and on_tool_call_end is None
        and on_pipeline_end is None
        and on_reasoning is None
    ):
        # No hooks: every chunk passes through unchanged (the per-chunk hot path of a plain stream).
        try:
            async for item in stream:
                if not isinstance(item, _Done):
                    yield item
        finally:
            await stream.aclose()
        return
    hooks = _Hooks(on_tool_call_start, on_tool_call_end, on_pipeline_end, on_reasoning)
    try:
        async for item in stream:
            outputs = await (hooks.end(item.result) if isinstance(item, _Done) else hooks.chunk(item))
            for out in outputs:
                yield out
    finally:
        await stream.aclose()


def streaming_generator(
    pipeline: Any,
    *,
    pipeline_run_args: Optional[dict[str, Any]] = None,
    streaming_components: StreamingComponents = None,
    on_tool_call_start: Optional[ToolCallStartHook] = None,
    on_tool_call_end: Optional[ToolCallEndHook] = None,
    on_pipeline_end: Optional[PipelineEndHook] = None,
    on_reasoning: Optional[ReasoningHook] = None,
    include_outputs_from: Optional[set[str]] = None,
) -> Generator[Any, None, None]:
    """Sync twin of :func:`async_streaming_generator` (same arguments, same items).

    Returns a generator; the pipeline starts on the first ``next()`` and runs on the shared
    background loop. Closing the generator early cancels the run.
    """
    return BackgroundStream(
        async_streaming_generator(
            pipeline,
            pipeline_run_args=pipeline_run_args,
            streaming_components=streaming_components,
            on_tool_call_start=on_tool_call_start,
            on_tool_call_end=on_tool_call_end,
            on_pipeline_end=on_pipeline_end,
            on_reasoning=on_reasoning,
            include_outputs_from=include_outputs_from,
        )
    )
