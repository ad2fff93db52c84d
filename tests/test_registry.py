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
    assert seen == [{"a", "b"}, {"a", "b"}] and registry.generation == 2


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
