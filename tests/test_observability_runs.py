"""A run's instrumentation: its outcome, its recent-runs record and its component timings."""

from __future__ import annotations

from types import SimpleNamespace

from hayhooks.observability.runs import Observer, Run, classify


def _observer(recent: object = None) -> Observer:
    return Observer(SimpleNamespace(cluster=SimpleNamespace(id="w")), None, None, recent)  # type: ignore[arg-type]


class _Recent:
    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.add = self.runs.append


def test_a_run_finishes_once_and_keeps_its_outcome():
    recent = _Recent()
    run = Run(_observer(recent), "p", "run")
    run.finish(ValueError("boom"))
    run.finish(None)  # a stream's late close: ignored
    assert (run.outcome, run.status_code, run.error) == ("error", 500, "ValueError: boom")
    assert run.elapsed > 0 and recent.runs == [run]
    record = run.record()
    assert record["outcome"] == "error" and record["pipeline"] == "p" and record["duration_ms"] >= 0


def test_component_timings_land_in_the_run_of_the_request_and_of_a_second_run():
    from hayhooks.observability import context
    from hayhooks.observability.recent import ComponentTimingTracer

    tracer = ComponentTimingTracer()
    tags = {"haystack.component.name": "c", "haystack.component.type": "T"}
    info, token = context.begin("req")
    try:
        first = Run(_observer(_Recent()), "p", "run")
        assert info.run is first  # the request's run: found without a contextvar
        with tracer.trace("haystack.component.run", tags=tags):
            pass
        second = Run(_observer(_Recent()), "q", "run")  # another run in the same request
        second.activate()
        with tracer.trace("haystack.component.run", tags=tags):
            pass
        second.deactivate()
    finally:
        context.end(token)
    assert [c.name for c in first.components or []] == ["c"]
    assert [c.name for c in second.components or []] == ["c"]
    with tracer.trace("haystack.component.run", tags=tags):  # outside any run: not recorded
        pass
    assert len(first.components or []) == 1


def test_outcomes_by_status():
    from hayhooks.errors import Overloaded, PipelineRunError, SyncTimeout

    assert classify(None) == ("ok", 200)
    assert classify(Overloaded("busy")) == ("rejected", 503)
    assert classify(SyncTimeout("late")) == ("timeout", 504)
    assert classify(TimeoutError()) == ("timeout", 504)
    assert classify(PipelineRunError("boom")) == ("error", 500)
    assert classify(ValueError("x")) == ("error", 500)


def test_a_finished_run_is_freed_by_reference_counting():
    """The request's info holds its run; the run must not hold the info back (a cycle would wait
    for the garbage collector, which a busy worker runs rarely)."""
    import gc
    import weakref

    from hayhooks.observability import context

    recent = _Recent()
    gc.disable()
    try:
        info, token = context.begin("req")
        run = Run(_observer(recent), "p", "run")
        assert info.run is run and run.request_id == "req"
        run.finish(None)
        context.end(token)
        freed = weakref.ref(run)
        del run, info
        recent.runs.clear()
        assert freed() is None
    finally:
        gc.enable()
