"""``DurableContext`` on a real SQLite store: the same methods from sync and async code."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from haystack.dataclasses import StreamingChunk
from pydantic import BaseModel

from hayhooks import DurableContext, current_durable_context, durable_streaming_callback
from hayhooks.durable.context import bind, unbind
from hayhooks.durable.errors import ExecutionCancelled, ExecutionSuspended, LeaseLost
from hayhooks.durable.sqlite_store import SQLiteExecutionStore
from hayhooks.durable.worker import backoff


class Approval(BaseModel):
    approved: bool


@pytest.fixture
def claimed(tmp_path: Path) -> tuple[SQLiteExecutionStore, Any]:
    store = SQLiteExecutionStore(tmp_path / "d.sqlite3")
    store.submit("p", "r1", {"q": 1})
    record = store.claim("w1", ["p"], 30, 3)
    assert record is not None
    return store, record


def test_sync_checkpoint_step_progress_and_stream(claimed: Any) -> None:
    store, record = claimed
    context = DurableContext(store, record)
    calls: list[int] = []
    assert context.step("s", lambda: calls.append(1) or 41) == 41
    context.checkpoint("k", {"v": 1})
    context.report_progress("half way", percent=50)
    token = bind(context)
    try:
        assert current_durable_context() is context
        durable_streaming_callback(StreamingChunk(content="tok"))
    finally:
        unbind(token)
    assert current_durable_context() is None
    durable_streaming_callback(StreamingChunk(content="ignored outside an execution"))
    again = DurableContext(store, store.get(record.execution_id))
    assert again.step("s", lambda: calls.append(2) or 0) == 41 and calls == [1]
    assert again.checkpoints == {"s": 41, "k": {"v": 1}}
    view = store.get(record.execution_id).view()
    assert view["progress"] == {"message": "half way", "percent": 50}
    kinds = [(e.kind, e.data) for e in store.events(record.execution_id)]
    assert ("chunk", "tok") in kinds and ("progress", {"message": "half way", "percent": 50}) in kinds


async def test_async_callers_get_awaitables(claimed: Any) -> None:
    store, record = claimed
    context = DurableContext(store, record)
    await context.checkpoint("a", 1)
    assert await context.step("b", lambda: 2) == 2
    await context.report_progress("x")
    await context.check_cancelled()
    store.request_cancel(record.execution_id)
    with pytest.raises(ExecutionCancelled):
        await context.check_cancelled()


def test_suspend_then_resume_returns_the_validated_input(claimed: Any) -> None:
    store, record = claimed
    context = DurableContext(store, record, resume_model=Approval)
    with pytest.raises(ExecutionSuspended) as raised:
        context.suspend("approve?", {"draft": "d"})
    assert raised.value.key == "suspend-1"
    store.resume(record.execution_id, {"approved": True})
    resumed = store.claim("w1", ["p"], 30, 3)
    assert resumed is not None
    answer = DurableContext(store, resumed, resume_model=Approval).suspend("approve?", {"draft": "d"})
    assert answer == Approval(approved=True)


def test_a_context_that_lost_its_lease_cannot_write(claimed: Any) -> None:
    store, record = claimed
    context = DurableContext(store, record)
    context.lease_lost = True
    with pytest.raises(LeaseLost):
        context.checkpoint("k", 1)
    stale = DurableContext(store, record)
    store.release(record.execution_id, record.fence)
    with pytest.raises(LeaseLost):
        stale.report_progress("too late")


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n, 1.0, 5.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_dual_methods_do_not_block_the_loop(claimed: Any) -> None:
    store, record = claimed
    context = DurableContext(store, record)

    async def main() -> Any:
        pending = context.report_progress("from the loop")
        assert asyncio.iscoroutine(pending)
        return await pending

    assert asyncio.run(main()) is None


def test_only_haystack_dataclasses_are_revived_from_checkpoints() -> None:
    from haystack.dataclasses import ChatMessage

    from hayhooks.durable.context import _revive, _serialise

    message = ChatMessage.from_user("hi")
    assert _revive(_serialise({"m": [message]})) == {"m": [message]}
    hostile = {"__haystack__": "haystack.core.pipeline.pipeline.Pipeline", "data": {"components": {}}}
    assert _revive(hostile) == hostile  # left as data, never imported


def test_a_refused_write_ends_the_attempt_even_if_user_code_swallows_it(tmp_path: Path) -> None:
    """The lease ran short and another worker took the execution over: the first write is refused,
    and every later step stops at once, even after an ``except Exception`` in the wrapper."""
    import time

    from hayhooks.durable.store import Limits

    store = SQLiteExecutionStore(tmp_path / "d.sqlite3", Limits(lease_commit_safety_ms=1000))
    store.submit("p", "r1", {})
    record = store.claim("w1", ["p"], 0.3, 3)
    assert record is not None
    context = DurableContext(store, record)
    time.sleep(0.45)
    assert SQLiteExecutionStore(tmp_path / "d.sqlite3").claim("w2", ["p"], 30, 3) is not None
    try:
        context.report_progress("late")
    except Exception as exc:  # what a careless wrapper does
        assert isinstance(exc, LeaseLost) and "durable_lease_commit_safety_ms" in str(exc)
    assert context.lease_lost
    ran: list[int] = []
    with pytest.raises(LeaseLost):
        context.step("next", lambda: ran.append(1) or 1)
    assert ran == []  # a lost attempt starts no further step
    with pytest.raises(LeaseLost):
        context.checkpoint("k", 1)
