import threading
import time

import pytest

from hayhooks.errors import PipelineLoadError, PipelineNotFound
from hayhooks.pipelines.models import LoadedPipeline, PipelineSource
from hayhooks.pipelines.registry import Registry
from hayhooks.pipelines.wrapper import BasePipelineWrapper


class W(BasePipelineWrapper):
    def setup(self) -> None:
        pass

    def run_api(self) -> str:
        return "x"


def loader(src: PipelineSource) -> LoadedPipeline:
    if src.fingerprint.startswith("bad"):
        raise PipelineLoadError(f"cannot load {src.name}")
    return LoadedPipeline(src.name, "wrapper", W(), src, frozenset({"run"}), None, src.fingerprint)


def src(name: str, fp: str) -> PipelineSource:
    return PipelineSource(name, "wrapper", f"/p/{name}", fp)


def test_reconcile_loads_reloads_drops_and_notifies():
    registry = Registry(loader)
    seen: list[set[str]] = []
    registry.add_listener(seen.append)
    assert registry.reconcile([src("a", "1"), src("b", "1")], 1) == {"a", "b"}
    assert registry.reconcile([src("a", "1"), src("b", "1")], 1) == set()  # nothing changed, nothing loaded
    assert registry.reconcile([src("a", "2")], 2) == {"a", "b"}
    assert registry.names() == ["a"] and registry.require("a").description == "2"
    with pytest.raises(PipelineNotFound):
        registry.require("b")
    # Each pipeline is announced when it is served (loads run side by side), removals at once.
    assert sorted(map(sorted, seen)) == [["a"], ["a"], ["b"], ["b"]] and registry.generation == 2


def test_failed_reload_keeps_previous_version_and_reports():
    registry = Registry(loader)
    registry.reconcile([src("a", "1")], 1)
    assert registry.reconcile([src("a", "bad")], 2) == set()
    assert registry.require("a").description == "1"
    (failure,) = registry.failures()
    assert failure.name == "a" and "cannot load" in failure.error
    registry.reconcile([src("a", "3")], 3)
    assert registry.failures() == [] and registry.require("a").description == "3"


def test_listener_errors_do_not_break_reconcile():
    registry = Registry(loader)
    registry.add_listener(lambda changed: 1 / 0)
    assert registry.reconcile([src("a", "1")], 1) == {"a"}


def test_a_slow_load_blocks_neither_other_pipelines_nor_other_reconciles():
    release = threading.Event()

    def slow_loader(src: PipelineSource) -> LoadedPipeline:
        if src.name == "slow":
            release.wait(30)
        return loader(src)

    registry = Registry(slow_loader)
    registry.reconcile([src("slow", "1"), src("fast", "1")], 1, wait=False)
    deadline = time.monotonic() + 10
    while registry.get("fast") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.names() == ["fast"] and registry.loading() == ["slow"]
    assert registry.seen == 1 and registry.generation == -1, "generation 1 is not settled yet"
    # Another change goes through while 'slow' still loads (no lock is held across a load).
    assert registry.reconcile([src("slow", "1"), src("fast", "2")], 2) == {"fast"}
    assert registry.require("fast").description == "2"
    release.set()
    assert registry.wait_settled(10)
    assert registry.names() == ["fast", "slow"] and registry.generation == 2


def test_a_load_superseded_while_it_ran_is_never_served():
    release = threading.Event()
    unloaded: list[str] = []

    def slow_loader(src: PipelineSource) -> LoadedPipeline:
        if src.fingerprint == "old":
            release.wait(30)
        return loader(src)

    registry = Registry(slow_loader, unload=lambda p: unloaded.append(p.description))
    registry.reconcile([src("a", "old")], 1, wait=False)
    registry.reconcile([], 2)  # undeployed while its load still runs
    release.set()
    assert registry.wait_settled(10)
    assert registry.names() == [] and unloaded == ["old"]
