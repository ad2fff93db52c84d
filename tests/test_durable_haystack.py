"""Checkpointed Haystack runs: the Haystack API ``haystack_steps`` relies on, pinned, and
``DurableContext.run_pipeline`` / ``run_agent`` resuming without re-running completed work."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from haystack import Pipeline, component
from haystack.components.agents import Agent
from haystack.core.errors import BreakpointException, PipelineRuntimeError
from haystack.dataclasses import ChatMessage
from haystack.dataclasses.breakpoints import Breakpoint, PipelineSnapshot
from tests.conftest import wait_until

from hayhooks.durable.context import DurableContext
from hayhooks.durable.haystack_steps import component_order, run_stepwise
from hayhooks.durable.sqlite_store import SQLiteExecutionStore


@component
class Add:
    """Adds ``n``; records each run; fails on the first ``fail_times`` runs."""

    def __init__(self, n: int, runs: list[str], fail_times: int = 0) -> None:
        self.n = n
        self.runs = runs
        self.fail_times = fail_times

    @component.output_types(value=int)
    def run(self, value: int) -> dict[str, int]:
        self.runs.append(f"add{self.n}")
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("transient")
        return {"value": value + self.n}


def chain(runs: list[str], fail_c: int = 0) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component("a", Add(1, runs))
    pipe.add_component("b", Add(10, runs))
    pipe.add_component("c", Add(100, runs, fail_c))
    pipe.connect("a.value", "b.value")
    pipe.connect("b.value", "c.value")
    return pipe


def test_the_haystack_api_we_rely_on() -> None:
    """Pins the public names and parameters ``haystack_steps`` uses (fails on a Haystack change)."""
    params = inspect.signature(Pipeline.run).parameters
    assert {"break_point", "pipeline_snapshot", "snapshot_callback", "include_outputs_from"} <= set(params)
    assert {"component_name", "visit_count"} <= set(inspect.signature(Breakpoint).parameters)
    assert callable(PipelineSnapshot.from_dict) and callable(PipelineSnapshot.to_dict)
    assert "pipeline_snapshot" in inspect.signature(BreakpointException).parameters
    assert "pipeline_snapshot" in inspect.signature(PipelineRuntimeError).parameters
    from haystack.components.agents.state.state import State
    from haystack.hooks import AFTER_TOOL, BEFORE_RUN, VALID_HOOK_POINTS, hook

    assert {AFTER_TOOL, BEFORE_RUN} <= set(VALID_HOOK_POINTS) and callable(hook)
    assert "hooks" in inspect.signature(Agent.__init__).parameters
    assert isinstance(State(schema={}).data, dict)


def test_stepwise_saves_json_snapshots_and_resumes_after_the_last_one() -> None:
    runs: list[str] = []
    saved: list[dict[str, Any]] = []
    out = run_stepwise(
        chain(runs), {"a": {"value": 1}}, None, lambda s: saved.append(json.loads(json.dumps(s)))
    )
    assert out == {"c": {"value": 112}} and runs == ["add1", "add10", "add100"]
    assert [s["break_point"]["component_name"] for s in saved] == ["b", "c"]
    runs.clear()
    assert run_stepwise(chain(runs), {"a": {"value": 1}}, saved[-1], lambda s: None) == {"c": {"value": 112}}
    assert runs == ["add100"]


def test_a_failing_component_resumes_from_its_failure_snapshot() -> None:
    runs: list[str] = []
    saved: list[dict[str, Any]] = []
    pipe = chain(runs, fail_c=1)
    with pytest.raises(PipelineRuntimeError):
        run_stepwise(pipe, {"a": {"value": 1}}, None, saved.append)
    assert saved[-1]["break_point"]["component_name"] == "c"
    runs.clear()
    assert run_stepwise(pipe, {"a": {"value": 1}}, saved[-1], saved.append) == {"c": {"value": 112}}
    assert runs == ["add100"]


def test_pipelines_with_loops_still_run() -> None:
    @component
    class Counter:
        @component.output_types(again=int, done=int)
        def run(self, value: int) -> dict[str, int]:
            return {"again": value + 1} if value < 3 else {"done": value}

    @component
    class Start:
        @component.output_types(value=int)
        def run(self, start: int, again: int | None = None) -> dict[str, int]:
            return {"value": again if again is not None else start}

    pipe = Pipeline(max_runs_per_component=10)
    pipe.add_component("start", Start())
    pipe.add_component("count", Counter())
    pipe.connect("start.value", "count.value")
    pipe.connect("count.again", "start.again")
    assert component_order(pipe) is None
    assert run_stepwise(pipe, {"start": {"start": 0}}, None, lambda s: None)["count"] == {"done": 3}


def _claimed(tmp_path: Path) -> tuple[SQLiteExecutionStore, Any]:
    store = SQLiteExecutionStore(tmp_path / "d.sqlite3")
    store.submit("p", "r1", {})
    record = store.claim("w1", ["p"], 30, 3)
    assert record is not None
    return store, record


def test_context_run_pipeline_survives_a_lost_worker(tmp_path: Path) -> None:
    """Attempt 1 dies inside ``c``; attempt 2 (another worker, after the lease) runs only ``c``."""
    store = SQLiteExecutionStore(tmp_path / "d.sqlite3")
    store.submit("p", "r1", {})
    first = store.claim("w1", ["p"], 0.05, 3)
    assert first is not None
    runs: list[str] = []

    @component
    class Dies:
        @component.output_types(value=int)
        def run(self, value: int) -> dict[str, int]:
            runs.append("dies")
            raise KeyboardInterrupt  # stands for the process being killed mid-component

    pipe = chain(runs)
    pipe.remove_component("c")
    pipe.add_component("c", Dies())
    pipe.connect("b.value", "c.value")
    with pytest.raises(KeyboardInterrupt):
        DurableContext(store, first).run_pipeline({"a": {"value": 1}}, pipe)
    assert runs == ["add1", "add10", "dies"]
    second = wait_until(lambda: store.claim("w2", ["p"], 30, 3), timeout=10)
    runs.clear()
    out = DurableContext(store, second).run_pipeline({"a": {"value": 1}}, chain(runs))
    assert out == {"c": {"value": 112}} and runs == ["add100"]
    # a third call (after a crash past the pipeline) returns the checkpointed result
    runs.clear()
    assert DurableContext(store, store.get(second.execution_id)).run_pipeline({}, chain(runs)) == out
    assert runs == []


def test_context_run_agent_checkpoints_its_result(tmp_path: Path) -> None:
    @component
    class EchoChat:
        def __init__(self) -> None:
            self.calls = 0

        @component.output_types(replies=list[ChatMessage])
        def run(self, messages: list[ChatMessage], tools: Any = None, **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            return {"replies": [ChatMessage.from_assistant(f"echo: {messages[-1].text}")]}

    store, record = _claimed(tmp_path)
    chat = EchoChat()
    agent = Agent(chat_generator=chat)
    result = DurableContext(store, record).run_agent(agent, [ChatMessage.from_user("hi")])
    assert result["last_message"].text == "echo: hi" and chat.calls == 1
    again = DurableContext(store, store.get(record.execution_id)).run_agent(
        agent, [ChatMessage.from_user("hi")]
    )
    assert chat.calls == 1 and isinstance(again["last_message"], ChatMessage)
    assert again["last_message"].text == "echo: hi"


def test_agent_hooks_resume_after_the_last_completed_tool_step(tmp_path: Path) -> None:
    """Attempt 1 dies on the LLM call after a tool step; attempt 2 does not call the tool again."""
    from haystack.dataclasses import ToolCall
    from haystack.tools import Tool

    from hayhooks import durable_agent_hooks
    from hayhooks.durable.context import bind, unbind

    tool_calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        tool_calls.append((a, b))
        return a + b

    @component
    class ToolChat:
        def __init__(self) -> None:
            self.calls = 0
            self.die_on = 2

        @component.output_types(replies=list[ChatMessage])
        def run(self, messages: list[ChatMessage], tools: Any = None, **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls == self.die_on:
                raise KeyboardInterrupt  # the worker is killed here
            if not any(m.tool_call_result for m in messages):
                call = ToolCall(tool_name="add", arguments={"a": 1, "b": 2})
                return {"replies": [ChatMessage.from_assistant(tool_calls=[call])]}
            return {"replies": [ChatMessage.from_assistant(f"sum is {messages[-1].tool_call_result.result}")]}

    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    chat = ToolChat()
    agent = Agent(
        chat_generator=chat,
        tools=[Tool(name="add", description="add", parameters=schema, function=add)],
        hooks=durable_agent_hooks(),
    )
    store = SQLiteExecutionStore(tmp_path / "d.sqlite3")
    store.submit("p", "r1", {})
    first = store.claim("w1", ["p"], 0.05, 3)
    assert first is not None
    context = DurableContext(store, first)
    token = bind(context)
    try:
        with pytest.raises(KeyboardInterrupt):
            context.run_agent(agent, [ChatMessage.from_user("add 1 and 2")])
    finally:
        unbind(token)
    assert tool_calls == [(1, 2)]
    second = wait_until(lambda: store.claim("w2", ["p"], 30, 3), timeout=10)
    chat.die_on = 0
    context = DurableContext(store, second)
    token = bind(context)
    try:
        result = context.run_agent(agent, [ChatMessage.from_user("add 1 and 2")])
    finally:
        unbind(token)
    assert result["last_message"].text == "sum is 3"
    assert tool_calls == [(1, 2)]  # not called again
    assert result["step_count"] == 2
    # outside an execution the hooks do nothing
    chat.calls, chat.die_on = 0, 0
    assert agent.run(messages=[ChatMessage.from_user("again")])["last_message"].text == "sum is 3"
