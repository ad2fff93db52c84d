"""One contract suite for both pipelines store backends: the directory and Redis (a real redis-server).

Every test builds stores with ``make(i)``: store ``i`` is another instance over the same data (for
the directory: the same folder; for Redis: its own local copy and the same Redis key prefix).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest
from tests.redis_support import redis_server

from hayhooks.errors import PipelineExists, PipelineNotFound
from hayhooks.pipelines.store import PipelineStore

MakeStore = Callable[..., PipelineStore]

WRAPPER = """from haystack import Pipeline
from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        self.pipeline = Pipeline()

    def run_api(self, text: str) -> str:
        return "{reply}"
"""


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(params=["directory", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    made: list[PipelineStore] = []
    prefix = f"test:{uuid.uuid4().hex}"

    def build(instance: int = 0, archive_keep: int = 10) -> PipelineStore:
        if request.param == "directory":
            store = PipelineStore(tmp_path / "pipelines", archive_keep)
        else:
            from hayhooks.pipelines.store_redis import RedisPipelineStore

            url = request.getfixturevalue("redis_url")
            store = RedisPipelineStore(tmp_path / f"local-{instance}", url, prefix, archive_keep)
        store.prepare()
        made.append(store)
        return store

    yield build
    for store in made:
        client = getattr(store, "client", None)
        if client is not None:
            client.close()


def deploy(
    store: PipelineStore, name: str, reply: str = "v1", *, overwrite: bool = False, ephemeral: bool = False
) -> tuple[int, str]:
    staged = store.stage_folder(
        name, {PurePosixPath("pipeline_wrapper.py"): WRAPPER.format(reply=reply)}, "w1"
    )
    try:
        generation, source = store.commit(name, staged, ephemeral=ephemeral, overwrite=overwrite)
    finally:
        store.discard(staged)
    return generation, source.fingerprint


def deploy_yaml(store: PipelineStore, name: str, text: str, *, overwrite: bool = False) -> int:
    staged = store.stage_yaml(name, text, "w1")
    try:
        return store.commit(name, staged, ephemeral=False, overwrite=overwrite)[0]
    finally:
        store.discard(staged)


def served_text(store: PipelineStore, name: str) -> str:
    _, entries = store.snapshot()
    entry = next(e for e in entries if e.name == name)
    path = Path(entry.path)
    return (path / "pipeline_wrapper.py").read_text() if path.is_dir() else path.read_text()


def test_commit_is_visible_to_every_instance_with_the_same_fingerprint(make: MakeStore) -> None:
    a, b = make(0), make(1)
    g0 = a.snapshot()[0]
    generation, fingerprint = deploy(a, "chat", "hello")
    assert generation > g0
    for store in (a, b):
        seen, entries = store.snapshot()
        assert seen == generation
        assert [(e.name, e.kind, e.origin) for e in entries] == [("chat", "wrapper", "saved")]
        assert entries[0].fingerprint == fingerprint
        assert '"hello"' in served_text(store, "chat")
        assert store.locate("chat")


def test_deploying_an_existing_name_needs_overwrite_and_archives_the_old_version(make: MakeStore) -> None:
    a, b = make(0), make(1)
    deploy(a, "chat", "one")
    with pytest.raises(PipelineExists):
        deploy(b, "chat", "two")
    generation, fingerprint = deploy(b, "chat", "two", overwrite=True)
    assert '"two"' in served_text(a, "chat")
    assert a.snapshot()[1][0].fingerprint == fingerprint
    history = a.history("chat")
    assert [v["current"] for v in history] == [True, False]
    assert history[1]["action"] == "overwritten" and history[1]["generation"] == generation


def test_yaml_entries_and_a_kind_change(make: MakeStore) -> None:
    a, b = make(0), make(1)
    deploy_yaml(a, "flow", "components: {}\nconnections: []\n")
    assert [(e.name, e.kind) for e in b.snapshot()[1]] == [("flow", "yaml")]
    deploy(a, "flow", "now a wrapper", overwrite=True)
    entries = b.snapshot()[1]
    assert [(e.name, e.kind) for e in entries] == [("flow", "wrapper")]
    assert len(b.locate("flow")) == 1


def test_remove_and_restore(make: MakeStore) -> None:
    a, b = make(0), make(1)
    with pytest.raises(PipelineNotFound):
        a.remove("ghost")
    deploy(a, "chat", "one")
    deploy(a, "chat", "two", overwrite=True)
    generation = b.remove("chat")
    assert a.snapshot() == (generation, [])
    assert not a.locate("chat")
    assert [v["action"] for v in a.history("chat")] == ["undeployed", "overwritten"]
    restored_gen, source, version = a.restore("chat")
    assert restored_gen > generation
    assert version == b.history("chat")[1]["version"]
    assert '"two"' in served_text(b, "chat")
    older = [v for v in a.history("chat") if v.get("action") == "overwritten"][-1]["version"]
    a.restore("chat", older)
    assert '"one"' in served_text(b, "chat")
    with pytest.raises(PipelineNotFound):
        a.restore("chat", "no-such-version")


def test_generation_never_goes_backwards(make: MakeStore) -> None:
    a, b = make(0), make(1)
    seen = [a.snapshot()[0]]
    for i in range(3):
        seen.append(deploy(a if i % 2 else b, f"p{i}")[0])
    seen.append(a.remove("p0"))
    seen.append(b.snapshot()[0])
    assert seen == sorted(seen) and len(set(seen[:-1])) == len(seen) - 1
    assert b.generation() == seen[-1]


def test_ephemeral_deploys_shadow_saved_ones(make: MakeStore) -> None:
    a, b = make(0), make(1)
    deploy(a, "chat", "saved")
    deploy(a, "chat", "unsaved", overwrite=True, ephemeral=True)
    entries = b.snapshot()[1]
    assert [(e.name, e.origin) for e in entries] == [("chat", "ephemeral")]
    assert '"unsaved"' in served_text(b, "chat")
    assert b.history("chat")[0]["origin"] == "ephemeral"
    b.remove_ephemeral("chat")
    assert '"saved"' in served_text(a, "chat")
    with pytest.raises(PipelineNotFound):
        a.remove_ephemeral("chat")


def test_archive_keeps_the_last_versions_only(make: MakeStore) -> None:
    a = make(0, archive_keep=2)
    deploy(a, "chat", "v0")
    for i in range(1, 5):
        deploy(a, "chat", f"v{i}", overwrite=True)
    history = a.history("chat")
    assert [v["current"] for v in history] == [True, False, False]


def test_snapshot_holds_every_committed_pipeline(make: MakeStore) -> None:
    a, b = make(0), make(1)
    names = [f"p{i}" for i in range(5)]
    last = 0
    for name in names:
        last = deploy(a, name, name)[0]
    generation, entries = b.snapshot()
    assert generation == last
    assert [e.name for e in entries] == names
    for name in names:
        assert f'"{name}"' in served_text(b, name)


def test_concurrent_first_deploys_of_one_name_from_two_instances_let_one_win(make: MakeStore) -> None:
    import threading

    stores = [make(0), make(1)]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def attempt(store: PipelineStore, reply: str) -> None:
        barrier.wait()
        try:
            deploy(store, "race", reply)
            outcomes.append("ok")
        except PipelineExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=attempt, args=(s, f"r{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["exists", "ok"]
    assert len({served_text(s, "race") for s in stores}) == 1
