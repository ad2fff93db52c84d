"""The run instrumentation wraps streams without changing how the surfaces consume them."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from hayhooks.observability.runs import Observer, Run, classify
from hayhooks.streaming.background import BackgroundStream


def _run() -> Run:
    return Run(Observer(SimpleNamespace(cluster=SimpleNamespace(id="w")), None, None, None), "p", "run")


async def _agen():
    yield "a"
    yield "b"


def _gen():
    yield "x"


class _Iterator:
    def __aiter__(self):
        return self

    async def __anext__(self):
        raise StopAsyncIteration


async def test_streams_keep_their_kind_and_the_run_ends_with_the_stream():
    run = _run()
    wrapped = run.wrap(BackgroundStream(_agen()))
    # streaming_generator's result stays async: the server drives it on its own loop
    assert inspect.isasyncgen(wrapped) and not run.finished
    assert [item async for item in wrapped] == ["a", "b"] and run.finished and run.chunks == 2
    run = _run()
    sync = run.wrap(_gen())
    assert inspect.isgenerator(sync) and list(sync) == ["x"] and run.finished
    run = _run()
    plain = _Iterator()
    assert run.wrap(plain) is plain and run.finished  # not a stream for any surface: a value


async def test_a_stream_left_early_counts_as_cancelled():
    run = _run()
    wrapped = run.wrap(_agen())
    assert await wrapped.__anext__() == "a"
    await wrapped.aclose()
    assert run.finished and run.chunks == 1


def test_outcomes_by_status():
    from hayhooks.errors import Overloaded, PipelineRunError, SyncTimeout

    assert classify(None) == ("ok", 200)
    assert classify(Overloaded("busy")) == ("rejected", 503)
    assert classify(SyncTimeout("late")) == ("timeout", 504)
    assert classify(TimeoutError()) == ("timeout", 504)
    assert classify(PipelineRunError("boom")) == ("error", 500)
    assert classify(ValueError("x")) == ("error", 500)
