"""What only the Redis store does: seeding, recovery from a Redis that lost its data, hand edits of
the local copy, serving the local copy while Redis is unreachable, heartbeats across instances.
A real redis-server (no persistence) on a free loopback port."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest
from tests.conftest import free_port
from tests.redis_support import redis_server
from tests.test_store_contract import WRAPPER, deploy, served_text

from hayhooks.errors import StoreUnavailable
from hayhooks.pipelines.backends import open_store
from hayhooks.pipelines.cluster_redis import RedisCluster
from hayhooks.pipelines.store import PipelineStore
from hayhooks.pipelines.store_redis import RedisPipelineStore
from hayhooks.settings import HayhooksSettings


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def make(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., RedisPipelineStore]]:
    prefix = f"test:{uuid.uuid4().hex}"
    made: list[RedisPipelineStore] = []

    def build(instance: int = 0, url: str = redis_url) -> RedisPipelineStore:
        store = RedisPipelineStore(tmp_path / f"local-{instance}", url, prefix)
        store.prepare()
        made.append(store)
        return store

    yield build
    for store in made:
        store.client.close()


def write_wrapper(folder: Path, reply: str) -> None:
    folder.mkdir(parents=True)
    (folder / "pipeline_wrapper.py").write_text(WRAPPER.format(reply=reply))


def test_an_empty_redis_is_seeded_once_from_a_local_copy(make: Callable[..., RedisPipelineStore]) -> None:
    a = make(0)
    write_wrapper(a.root / "bundled", "bundled")
    (a.root / "flow.yml").write_text("components: {}\nconnections: []\n")
    write_wrapper(a.ephemeral / "leftover", "unsaved by a previous run")
    generation, entries = a.snapshot()
    assert generation >= 1
    assert [e.name for e in entries] == ["bundled", "flow"]  # a first seed takes saved pipelines only
    assert not (a.ephemeral / "leftover").exists()
    # Another instance with other local pipelines converges on the store: it does not re-seed.
    b = make(1)
    write_wrapper(b.root / "mine", "local only")
    assert b.snapshot()[0] == generation
    assert [e.name for e in b.snapshot()[1]] == ["bundled", "flow"]
    assert not (b.root / "mine").exists()
    assert [e.fingerprint for e in b.snapshot()[1]] == [e.fingerprint for e in entries]


def test_redis_losing_its_data_loses_no_committed_deploy(make: Callable[..., RedisPipelineStore]) -> None:
    a, b = make(0), make(1)
    generation, _ = deploy(a, "chat", "committed")
    assert b.snapshot()[0] == generation
    a.client.delete(*a.client.keys(f"{a.prefix}:*"))  # a Redis restarted without persistence
    assert a.generation() == -1  # workers notice, and their next sync seeds Redis again
    regenerated, entries = b.snapshot()
    assert regenerated > generation
    assert [e.name for e in entries] == ["chat"]
    assert a.snapshot()[0] == regenerated
    assert '"committed"' in served_text(a, "chat")


def test_a_newer_copy_replaces_an_older_seed(make: Callable[..., RedisPipelineStore]) -> None:
    a, b = make(0), make(1)
    deploy(a, "one", "1")
    b.snapshot()
    deploy(a, "two", "2")  # b has not synced since: its copy lags behind a's
    a.client.delete(*a.client.keys(f"{a.prefix}:*"))
    b.snapshot()  # b seeds first, with its older copy
    assert [e.name for e in a.snapshot()[1]] == ["one", "two"]  # a's newer copy wins
    assert [e.name for e in b.snapshot()[1]] == ["one", "two"]


def test_hand_edits_of_the_local_copy_are_overwritten(
    make: Callable[..., RedisPipelineStore], caplog: pytest.LogCaptureFixture
) -> None:
    a = make(0)
    deploy(a, "chat", "stored")
    wrapper = a.root / "chat" / "pipeline_wrapper.py"
    wrapper.write_text(WRAPPER.format(reply="by hand"))
    write_wrapper(a.root / "extra", "by hand")
    with caplog.at_level(logging.WARNING, logger="hayhooks"):
        _, entries = a.snapshot()
    assert [e.name for e in entries] == ["chat"]
    assert '"stored"' in wrapper.read_text()
    assert not (a.root / "extra").exists()
    assert "hand edits" in caplog.text


def test_an_unreachable_redis_serves_the_local_copy_and_refuses_changes(
    make: Callable[..., RedisPipelineStore], tmp_path: Path
) -> None:
    a = make(0)
    generation, fingerprint = deploy(a, "chat", "stored")
    down = RedisPipelineStore(a.root, f"redis://127.0.0.1:{free_port()}/0", a.prefix)
    down.prepare()
    assert down.snapshot()[0] == generation
    assert [(e.name, e.fingerprint) for e in down.snapshot()[1]] == [("chat", fingerprint)]
    assert down.generation() == generation
    staged = down.stage_folder("late", {PurePosixPath("pipeline_wrapper.py"): WRAPPER.format(reply="x")}, "w")
    with pytest.raises(StoreUnavailable, match="Redis"):
        down.commit("late", staged, ephemeral=False, overwrite=False)
    with pytest.raises(StoreUnavailable):
        down.remove("chat")
    with pytest.raises(StoreUnavailable):
        down.history("chat")
    assert [e.name for e in a.snapshot()[1]] == ["chat"]


def test_heartbeats_are_shared_by_instances(make: Callable[..., RedisPipelineStore]) -> None:
    a, b = make(0), make(1)
    ca, cb = a.make_cluster(1.0, None), b.make_cluster(1.0, None)
    assert isinstance(ca, RedisCluster)
    ca.id, cb.id = "host-a-1", "host-b-1"  # two processes in real life: two ids
    ca.beat(3, 1, 1, served={"chat": "f"})
    cb.beat(3, 1, 1)
    assert {w.id for w in cb.workers()} == {"host-a-1", "host-b-1"}
    assert {w.id for w in ca.workers()} == {"host-a-1", "host-b-1"}
    ca.leave()
    assert {w.id for w in cb.workers()} == {"host-b-1"}


def test_settings_pick_the_backend(tmp_path: Path) -> None:
    plain = HayhooksSettings(pipelines_dir=tmp_path)
    assert type(open_store(plain, PipelineStore(tmp_path).ignore)) is PipelineStore
    settings = HayhooksSettings(pipelines_dir=tmp_path, store_url="redis://127.0.0.1:1/0")
    store = open_store(settings, PipelineStore(tmp_path).ignore)
    assert isinstance(store, RedisPipelineStore) and store.prefix == "hayhooks:store"
    with pytest.raises(ValueError, match="unsupported store URL scheme"):
        HayhooksSettings(pipelines_dir=tmp_path, store_url="memcached://127.0.0.1:1")


def test_invalid_entries_in_redis_are_never_written(
    make: Callable[..., RedisPipelineStore], caplog: pytest.LogCaptureFixture
) -> None:
    a = make(0)
    deploy(a, "good", "fine")
    entries = f"{a.prefix}:entries"
    a.client.hset(
        entries,
        "saved/evil",
        json.dumps({"entry": "evil", "files": {"../../escape": "eA=="}, "fingerprint": "x"}),
    )
    a.client.hset(entries, "other/name", json.dumps({"entry": "name", "files": {}, "fingerprint": "x"}))
    a.client.hset(entries, "saved/broken", "not json")
    a.client.incr(f"{a.prefix}:generation")
    b = make(1)
    with caplog.at_level(logging.WARNING, logger="hayhooks"):
        assert [e.name for e in b.snapshot()[1]] == ["good"]
    assert not (b.root.parent / "escape").exists() and not (b.root / "evil").exists()
    assert "invalid entry" in caplog.text


def test_a_missing_redis_client_is_named_with_its_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r'pip install "hayhooks\[redis\]"'):
        HayhooksSettings(pipelines_dir=tmp_path, store_url="redis://127.0.0.1:1/0")


def test_a_copy_that_served_a_higher_generation_raises_redis_counter(
    make: Callable[..., RedisPipelineStore],
) -> None:
    a = make(0)
    generation, _ = deploy(a, "chat", "one")
    b = make(1)
    write_wrapper(b.root / "old", "from a directory-store past")
    b._write_generation(generation + 40)  # its workers served generation+40 before Redis was reachable
    seen, entries = b.snapshot()
    assert seen > generation + 40
    assert [e.name for e in entries] == ["chat"]
    assert a.generation() == seen
