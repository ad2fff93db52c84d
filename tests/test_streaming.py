"""streaming_generator / async_streaming_generator on real Haystack pipelines and agents."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until
from fixtures import fake_chat
from fixtures.fake_chat import FakeChatGenerator, SyncFakeChatGenerator, chat_pipeline
from haystack import Pipeline
from haystack.components.agents import Agent
from haystack.dataclasses import ChatMessage, StreamingChunk
from haystack.tools import Tool

from hayhooks import streaming
from hayhooks.open_webui import create_status_event
from hayhooks.streaming import (
    PipelineEvent,
    async_streaming_generator,
    select_streaming_components,
    streaming_generator,
)


def two_llm_pipeline(first: Any = None, second: Any = None) -> Pipeline:
    """prompt → llm1 → llm2: two streaming-capable components; llm2 is the last one."""
    pipeline = chat_pipeline(first or FakeChatGenerator(reply="first {user}"))
    pipeline.add_component("llm2", second or FakeChatGenerator(reply="second"))
    pipeline.connect("llm.replies", "llm2.messages")
    return pipeline


def texts(items: list[Any]) -> str:
    return "".join(
        i.content if isinstance(i, StreamingChunk) else i
        for i in items
        if isinstance(i, (str, StreamingChunk))
    )


async def collect_async(agen: Any) -> list[Any]:
    return [item async for item in agen]


def test_public_names_are_exported() -> None:
    for name in [
        "streaming_generator",
        "async_streaming_generator",
        "get_last_user_message",
        "is_user_message",
        "get_last_user_input_text",
        "chat_messages_from_openai_response",
        "PipelineEvent",
    ]:
        assert name in streaming.__all__
        assert getattr(__import__("hayhooks"), name) is getattr(streaming, name)


def test_default_streams_only_the_last_streaming_component(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAYHOOKS_STREAMING_COMPONENTS", raising=False)
    pipeline = two_llm_pipeline()
    assert select_streaming_components(pipeline) == ["llm2"]
    items = list(streaming_generator(pipeline, pipeline_run_args={"prompt": {"query": "x"}}))
    assert texts(items) == "second"
    assert {i.component_info.name for i in items} == {"llm2"}


def test_env_and_argument_choose_components(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = two_llm_pipeline()
    run_args = {"prompt": {"query": "x"}}
    monkeypatch.setenv("HAYHOOKS_STREAMING_COMPONENTS", "all")
    assert texts(streaming_generator(pipeline, pipeline_run_args=run_args)) == "first xsecond"
    monkeypatch.setenv("HAYHOOKS_STREAMING_COMPONENTS", " llm ")
    assert texts(streaming_generator(pipeline, pipeline_run_args=run_args)) == "first x"
    # the argument overrides the environment
    assert (
        texts(streaming_generator(pipeline, pipeline_run_args=run_args, streaming_components=["llm2"]))
        == "second"
    )
    assert texts(
        streaming_generator(pipeline, pipeline_run_args=run_args, streaming_components="llm,llm2")
    ) == ("first xsecond")
    with pytest.raises(ValueError, match="Unknown components"):
        list(streaming_generator(pipeline, pipeline_run_args=run_args, streaming_components=["ghost"]))
    with pytest.raises(ValueError, match="do not accept a streaming_callback"):
        list(streaming_generator(pipeline, pipeline_run_args=run_args, streaming_components=["prompt"]))


async def test_sync_and_async_generators_yield_the_same_items() -> None:
    pipeline = chat_pipeline(FakeChatGenerator(reply="a b c", reasoning="hmm", usage={"prompt_tokens": 1}))
    sync_items = list(streaming_generator(pipeline, pipeline_run_args={"query": "flat args"}))
    async_items = await collect_async(
        async_streaming_generator(pipeline, pipeline_run_args={"query": "flat args"})
    )
    assert [c.to_dict() for c in sync_items] == [c.to_dict() for c in async_items]
    assert texts(sync_items) == "a b c"
    assert sync_items[0].reasoning.reasoning_text == "hmm"
    assert sync_items[-1].finish_reason == "stop" and sync_items[-1].meta["usage"] == {"prompt_tokens": 1}


def test_user_streaming_callback_still_receives_chunks() -> None:
    seen: list[str] = []
    pipeline = chat_pipeline(
        FakeChatGenerator(reply="x y", streaming_callback=lambda c: seen.append(c.content))
    )
    pipeline_sync = chat_pipeline(SyncFakeChatGenerator(reply="x y"))
    assert texts(streaming_generator(pipeline, pipeline_run_args={"query": "q"})) == "x y"
    assert "".join(seen) == "x y"
    seen.clear()
    run_args = {"prompt": {"query": "q"}, "llm": {"streaming_callback": lambda c: seen.append(c.content)}}
    assert texts(streaming_generator(pipeline_sync, pipeline_run_args=run_args)) == "x y"
    assert "".join(seen) == "x y"


def test_pipelines_without_run_async_run_on_a_thread() -> None:
    class OldStylePipeline(Pipeline):  # like haystack 2.x Pipeline: no run_async
        run_async = None  # type: ignore[assignment]

    pipeline = OldStylePipeline()
    pipeline.add_component("llm", FakeChatGenerator(reply="old style"))
    items = list(
        streaming_generator(pipeline, pipeline_run_args={"llm": {"messages": [ChatMessage.from_user("q")]}})
    )
    assert texts(items) == "old style"


def weather_agent() -> Agent:
    tool = Tool(
        name="weather",
        description="Weather of a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        function=lambda city: f"sunny in {city}",
    )
    generator = FakeChatGenerator(
        reply="It is {tool}", tool_calls=[{"name": "weather", "arguments": {"city": "Rome"}, "id": "call_7"}]
    )
    return Agent(chat_generator=generator, tools=[tool])


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_agent_tool_call_hooks_and_pipeline_end(mode: str) -> None:
    calls: list[tuple[str, Any]] = []

    def start(name: str, args: dict, tool_id: str) -> PipelineEvent:
        calls.append(("start", (name, args, tool_id)))
        return create_status_event(f"calling {name}")

    def end(name: str, args: dict, result: Any, error: bool) -> list[Any]:
        calls.append(("end", (name, args, result, error)))
        return [create_status_event("done", done=True), f"[{result}]"]

    def finished(result: dict) -> str:
        calls.append(("end_pipeline", result["messages"][-1].text))
        return "<fin>"

    kwargs = dict(
        pipeline_run_args={"messages": [ChatMessage.from_user("weather?")]},
        on_tool_call_start=start,
        on_tool_call_end=end,
        on_pipeline_end=finished,
    )
    agent = weather_agent()
    if mode == "sync":
        items = list(streaming_generator(agent, **kwargs))
    else:
        items = await collect_async(async_streaming_generator(agent, **kwargs))
    assert calls == [
        ("start", ("weather", {"city": "Rome"}, "call_7")),
        ("end", ("weather", {"city": "Rome"}, "sunny in Rome", False)),
        ("end_pipeline", "It is sunny in Rome"),
    ]
    events = [i for i in items if isinstance(i, PipelineEvent)]
    assert [e.to_event_dict()["data"]["description"] for e in events] == ["calling weather", "done"]
    assert not any(isinstance(i, StreamingChunk) and (i.tool_calls or i.tool_call_result) for i in items)
    assert texts(items) == "[sunny in Rome]It is sunny in Rome<fin>"
    assert items[-1] == "<fin>"


def test_without_hooks_tool_chunks_pass_through() -> None:
    items = list(
        streaming_generator(weather_agent(), pipeline_run_args={"messages": [ChatMessage.from_user("w")]})
    )
    deltas = [d for i in items for d in (i.tool_calls or [])]
    assert deltas[0].tool_name == "weather" and deltas[0].id == "call_7"
    assert json.loads("".join(d.arguments or "" for d in deltas)) == {"city": "Rome"}
    results = [i.tool_call_result for i in items if i.tool_call_result]
    assert [r.result for r in results] == ["sunny in Rome"]


def test_on_reasoning_replaces_reasoning_chunks() -> None:
    pipeline = chat_pipeline(FakeChatGenerator(reply="ok", reasoning="deep thought"))
    items = list(
        streaming_generator(
            pipeline,
            pipeline_run_args={"query": "q"},
            on_reasoning=lambda text, extra: f"<think>{text}</think>",
        )
    )
    assert items[0] == "<think>deep thought</think>"
    assert not any(isinstance(i, StreamingChunk) and i.reasoning for i in items)


@pytest.mark.parametrize("generator", [FakeChatGenerator, SyncFakeChatGenerator])
async def test_errors_surface_after_the_chunks_produced_before(generator: type) -> None:
    pipeline = chat_pipeline(generator(reply="a b c d", fail_after=2))
    got: list[Any] = []
    with pytest.raises(Exception, match="fake generator exploded"):
        for item in streaming_generator(pipeline, pipeline_run_args={"query": "q"}):
            got.append(item)
    assert texts(got) == "a b "
    got.clear()
    with pytest.raises(Exception, match="fake generator exploded"):
        async for item in async_streaming_generator(pipeline, pipeline_run_args={"query": "q"}):
            got.append(item)
    assert texts(got) == "a b "


def _stopped() -> bool:
    return fake_chat.ACTIVE["runs"] == 0


@pytest.mark.parametrize("generator", [FakeChatGenerator, SyncFakeChatGenerator])
async def test_closing_the_async_generator_cancels_the_run(generator: type) -> None:
    pipeline = chat_pipeline(generator(forever=True))
    agen = async_streaming_generator(pipeline, pipeline_run_args={"query": "q"})
    assert (await agen.__anext__()).content == "tick0 "
    assert (await agen.__anext__()).content == "tick1 "
    assert fake_chat.ACTIVE["runs"] == 1
    await agen.aclose()
    for _ in range(2000):  # bounded: the run must notice and stop
        if _stopped():
            break
        await asyncio.sleep(0.01)
    assert _stopped()


@pytest.mark.parametrize("generator", [FakeChatGenerator, SyncFakeChatGenerator])
async def test_cancelling_the_consumer_task_cancels_the_run(generator: type) -> None:
    pipeline = chat_pipeline(generator(forever=True))
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in async_streaming_generator(pipeline, pipeline_run_args={"query": "q"}):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(2000):
        if _stopped():
            break
        await asyncio.sleep(0.01)
    assert _stopped()


@pytest.mark.parametrize("generator", [FakeChatGenerator, SyncFakeChatGenerator])
@pytest.mark.parametrize("how", ["close", "garbage"])
def test_abandoning_the_sync_generator_cancels_the_run(generator: type, how: str) -> None:
    pipeline = chat_pipeline(generator(forever=True))
    gen = streaming_generator(pipeline, pipeline_run_args={"query": "q"})
    assert [next(gen).content for _ in range(3)] == ["tick0 ", "tick1 ", "tick2 "]
    assert fake_chat.ACTIVE["runs"] == 1
    if how == "close":
        gen.close()
    else:
        del gen
        gc.collect()
    wait_until(_stopped, timeout=20)


# -- the same helpers behind POST /{name}/run (the lead's route) --------------------------------
RUN_WRAPPER = """
from fixtures.fake_chat import FakeChatGenerator, chat_pipeline
from hayhooks import BasePipelineWrapper, SSEStream, async_streaming_generator, streaming_generator
from hayhooks.open_webui import create_status_event


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        self.pipeline = chat_pipeline(FakeChatGenerator(reply="streamed to {user}"))

    {method}
"""

METHODS = {
    "sync_text": "def run_api(self, query: str):\n"
    "        return streaming_generator(self.pipeline, pipeline_run_args={'query': query})",
    "async_text": "async def run_api_async(self, query: str):\n"
    "        return async_streaming_generator(self.pipeline, pipeline_run_args={'query': query})",
    "sse": "def run_api(self, query: str):\n"
    "        return SSEStream(streaming_generator(self.pipeline, pipeline_run_args={'query': query}))",
}


@pytest.mark.parametrize("kind", sorted(METHODS))
async def test_helpers_stream_through_the_run_route(app_client: Any, pipelines_dir: Path, kind: str) -> None:
    folder = pipelines_dir / "streamer"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(RUN_WRAPPER.replace("{method}", METHODS[kind]))
    client = await app_client(pipelines_dir)
    async with client.stream("POST", "/streamer/run", json={"query": "Ada"}) as r:
        assert r.status_code == 200, await r.aread()
        body = (await r.aread()).decode()
    if kind == "sse":
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
        assert "".join(data) == "streamed to Ada"
    else:
        assert r.headers["content-type"].startswith("text/plain")
        assert body == "streamed to Ada"


def test_server_iterates_sync_helper_streams_on_its_loop_without_threads():
    """The object streaming_generator returns is also an async iterable: async consumers (the
    server) skip the background loop and the per-chunk thread hand-off; sync ones still work."""
    import asyncio
    from collections.abc import AsyncIterable, Generator

    from fixtures.fake_chat import FakeChatGenerator, chat_pipeline

    from hayhooks import streaming_generator
    from hayhooks.pipelines.executor import Executor

    def make():
        pipeline = chat_pipeline(FakeChatGenerator(reply="a b c"))
        return streaming_generator(pipeline, pipeline_run_args={"query": "q"})

    sync_stream = make()
    assert isinstance(sync_stream, Generator) and isinstance(sync_stream, AsyncIterable)
    sync_text = "".join(c.content for c in sync_stream)

    executor = Executor(2)

    async def consume() -> str:
        text = ""
        async for chunk in executor.aiter(make()):
            text += chunk.content
        return text

    async_text = asyncio.run(consume())
    assert async_text == sync_text and "a" in async_text
    assert executor.threads == 0, "no chunk was pulled through the thread pool"
