"""``DurableContext``: what a wrapper's ``run_durable`` / ``run_durable_async`` gets to make its work
survive crashes: checkpoints, progress, cancellation, suspension for a human, stream chunks, and
checkpointed Haystack pipeline and agent runs.

Its methods work from both kinds of wrapper method: called from a sync ``run_durable`` (on a pool
thread) they block and return the value; called from ``run_durable_async`` (on the event loop) they
return an awaitable, so ``await context.report_progress(...)`` never blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from hayhooks.durable.errors import ExecutionCancelled, ExecutionSuspended, LeaseLost, RetryExecution
from hayhooks.durable.haystack_steps import run_stepwise
from hayhooks.durable.models import Execution

if TYPE_CHECKING:
    from hayhooks.durable.store import ExecutionStore

_CURRENT: contextvars.ContextVar[Optional[DurableContext]] = contextvars.ContextVar(
    "hayhooks_durable_context", default=None
)
_RESUME_PREFIX = "__resume__:"
_REVIVABLE = "haystack.dataclasses."


def current_durable_context() -> Optional[DurableContext]:
    """The context of the durable execution running in this thread or task, if any."""
    return _CURRENT.get()


def durable_streaming_callback(chunk: Any) -> None:
    """A Haystack streaming callback that appends each chunk to the current execution's stream
    (``GET .../stream``). Outside a durable execution it does nothing."""
    context = _CURRENT.get()
    if context is None:
        return
    content = getattr(chunk, "content", chunk)
    if content:
        context._stream_chunk(content)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _dual(method: Callable[..., Any]) -> Callable[..., Any]:
    """Blocking call from sync code; an awaitable (run on a thread) from async code."""

    @functools.wraps(method)
    def call(self: DurableContext, *args: Any, **kwargs: Any) -> Any:
        if _in_loop():
            ctx = contextvars.copy_context()
            return asyncio.to_thread(ctx.run, method, self, *args, **kwargs)
        return method(self, *args, **kwargs)

    return call


class DurableContext:
    def __init__(
        self,
        store: ExecutionStore,
        record: Execution,
        wrapper: Any = None,
        resume_model: Any = None,
    ) -> None:
        self._store = store
        self._record = record
        self._fence = record.fence
        self._wrapper = wrapper
        self._resume_model = resume_model
        self._checkpoints: dict[str, Any] = dict(record.checkpoints)
        self._suspensions = 0
        self._agent_key = "agent"
        self.cancel_requested = record.cancel_requested
        self.lease_lost = False

    # -- what the execution is -----------------------------------------------------------------
    @property
    def execution_id(self) -> str:
        return self._record.execution_id

    @property
    def pipeline_name(self) -> str:
        return self._record.pipeline

    @property
    def revision(self) -> str:
        return self._record.revision

    @property
    def attempt(self) -> int:
        return self._record.attempt

    @property
    def application_retries(self) -> int:
        """Retries requested so far with ``raise context.retry(...)``."""
        return self._record.application_retries

    @property
    def fence(self) -> int:
        return self._fence

    @property
    def checkpoints(self) -> dict[str, Any]:
        """Every value saved with ``checkpoint`` (by this attempt or an earlier one)."""
        return {k: v for k, v in self._checkpoints.items() if not k.startswith("__")}

    def get_checkpoint(self, key: str, default: Any = None) -> Any:
        return self._checkpoints.get(key, default)

    def _ensure_owned(self) -> None:
        if self.lease_lost:
            raise LeaseLost(f"Execution '{self.execution_id}' is no longer owned by this worker")

    # -- checkpoints and progress -----------------------------------------------------------------
    @_dual
    def checkpoint(self, key: str, value: Any) -> None:
        """Persist ``value`` (JSON-able) under ``key``; a resumed attempt reads it back."""
        self._save(key, value)

    def _save(self, key: str, value: Any) -> None:
        self._ensure_owned()
        self._owned(self._store.checkpoint, key, value)
        self._checkpoints[key] = value

    def _owned(self, write: Callable[..., Any], *args: Any) -> Any:
        """A write of the owner; once one is refused (``LeaseLost``: taken over, or the lease ran
        short and could not be renewed) the attempt is over: later writes and steps stop at once,
        even if user code swallowed the exception."""
        try:
            return write(self.execution_id, self._fence, *args)
        except LeaseLost:
            self.lease_lost = True
            raise

    @_dual
    def step(self, key: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once per execution: its result is checkpointed under ``key`` and returned
        from the checkpoint by every later attempt (``fn`` must be sync and return JSON-able data)."""
        if key in self._checkpoints:
            return self._checkpoints[key]
        self._ensure_owned()  # a lost attempt does not start the side effects of another step
        value = fn()
        self._save(key, value)
        return value

    @_dual
    def report_progress(self, message: Optional[str] = None, **data: Any) -> None:
        """Record progress (shown as ``progress`` and streamed as a ``progress`` event)."""
        payload = {"message": message, **data} if message is not None else dict(data)
        self._owned(self._store.report_progress, payload)

    @_dual
    def stream_chunk(self, content: Any) -> None:
        """Append a chunk to the execution's stream (text or JSON)."""
        self._stream_chunk(content)

    def _stream_chunk(self, content: Any) -> None:
        self._owned(self._store.stream_chunk, content)

    # -- cancellation, retries and suspension ------------------------------------------------------
    @_dual
    def check_cancelled(self) -> None:
        """Raise ``ExecutionCancelled`` once a cancel was requested (call it between steps)."""
        self._check_cancelled()

    def _check_cancelled(self) -> None:
        if not self.cancel_requested:
            self.cancel_requested = self._store.get(self.execution_id).cancel_requested
        if self.cancel_requested:
            raise ExecutionCancelled(f"Execution '{self.execution_id}' was cancelled")

    def retry(self, message: str = "retry requested", delay: Optional[float] = None) -> RetryExecution:
        """``raise context.retry("rate limited")``: try again later, with exponential backoff."""
        return RetryExecution(message, delay)

    @_dual
    def suspend(self, reason: str, data: Any = None, key: Optional[str] = None) -> Any:
        """Wait for a human: the execution becomes ``waiting`` until ``POST .../resume``.

        The first time, this ends the attempt (it raises ``ExecutionSuspended``). When the
        execution runs again after the resume, the same call returns the resume input (validated
        against the wrapper's ``durable_resume_model``). Checkpoint what came before, so the
        resumed attempt does not redo it.
        """
        self._suspensions += 1
        key = key or f"suspend-{self._suspensions}"
        resume_key = _RESUME_PREFIX + key
        if resume_key in self._checkpoints:
            value = self._checkpoints[resume_key]
            if self._resume_model is not None:
                return self._resume_model.model_validate(value)
            return value
        self._owned(self._store.suspend, key, reason, data)
        raise ExecutionSuspended(key, reason, data)

    # -- Haystack ---------------------------------------------------------------------------------
    def run_pipeline(
        self,
        data: dict[str, Any],
        pipeline: Any = None,
        *,
        key: str = "pipeline",
        include_outputs_from: Optional[set[str]] = None,
        checkpoint_before: Optional[list[str]] = None,
    ) -> dict[str, Any]:
        """Run a Haystack pipeline (default: the wrapper's ``self.pipeline``) with a snapshot at
        every component boundary; a resumed execution continues after the last completed one."""
        pipe = pipeline if pipeline is not None else getattr(self._wrapper, "pipeline", None)
        if pipe is None:
            raise ValueError(
                "run_pipeline needs a pipeline (none given and the wrapper has no self.pipeline)"
            )
        done_key, snap_key = f"{key}:result", f"{key}:snapshot"
        if done_key in self._checkpoints:
            return _revive(self._checkpoints[done_key])

        def before(component: str) -> None:
            self._ensure_owned()
            self._check_cancelled()
            self._owned(self._store.report_progress, {"message": f"{key}: before {component}"})

        result = run_stepwise(
            pipe,
            data,
            self._checkpoints.get(snap_key),
            lambda snap: self._save(snap_key, snap),
            include_outputs_from=include_outputs_from,
            checkpoint_before=checkpoint_before,
            before_step=before,
        )
        self._save(done_key, _serialise(result))
        return result

    async def run_pipeline_async(
        self, data: dict[str, Any], pipeline: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        """``run_pipeline`` off the event loop (Haystack's snapshots are on the sync ``run``)."""
        ctx = contextvars.copy_context()
        return await asyncio.to_thread(
            ctx.run, functools.partial(self.run_pipeline, data, pipeline, **kwargs)
        )

    @property
    def _agent_state_key(self) -> str:
        return f"{self._agent_key}:state"

    def run_agent(
        self, agent: Any, messages: list[Any], *, key: str = "agent", **kwargs: Any
    ) -> dict[str, Any]:
        """Run a Haystack ``Agent`` once per execution: its result is checkpointed, so a resumed
        execution (after a crash, or after ``suspend`` for an approval) does not call the LLM again.
        Built with ``hooks=durable_agent_hooks()``, the agent is also checkpointed after every tool
        step, and a run interrupted mid-way continues after its last completed step."""
        done_key = f"{key}:result"
        if done_key in self._checkpoints:
            return _revive(self._checkpoints[done_key])
        self._check_cancelled()
        self._agent_key = key
        result = agent.run(messages=messages, **kwargs)
        self._save(done_key, _serialise(result))
        return result

    async def run_agent_async(
        self, agent: Any, messages: list[Any], *, key: str = "agent", **kwargs: Any
    ) -> dict[str, Any]:
        """``run_agent`` with ``Agent.run_async`` (its hooks' store writes are short and blocking)."""
        done_key = f"{key}:result"
        if done_key in self._checkpoints:
            return _revive(self._checkpoints[done_key])
        self._agent_key = key
        result = await agent.run_async(messages=messages, **kwargs)
        await asyncio.to_thread(self._save, done_key, _serialise(result))
        return result


def _serialise(value: Any) -> Any:
    """Haystack dataclasses become ``{"__haystack__": "module.Class", "data": to_dict()}``."""
    if isinstance(value, dict):
        return {str(k): _serialise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_serialise(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and callable(getattr(type(value), "from_dict", None)):
        return {"__haystack__": f"{type(value).__module__}.{type(value).__qualname__}", "data": to_dict()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _revive(value: Any) -> Any:
    if isinstance(value, list):
        return [_revive(v) for v in value]
    if isinstance(value, dict):
        marker = value.get("__haystack__")
        if (
            isinstance(marker, str)
            # Only Haystack's data classes: a pipeline output can echo user input, and other
            # ``from_dict`` methods (pipelines, components) import classes named in their data.
            and marker.startswith(_REVIVABLE)
            and set(value) == {"__haystack__", "data"}
        ):
            import importlib

            module, _, name = marker.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            return cls.from_dict(value["data"])
        return {k: _revive(v) for k, v in value.items()}
    return value


def bind(context: DurableContext) -> contextvars.Token[Optional[DurableContext]]:
    return _CURRENT.set(context)


def unbind(token: contextvars.Token[Optional[DurableContext]]) -> None:
    _CURRENT.reset(token)
