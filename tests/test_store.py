from pathlib import PurePosixPath

import pytest

from hayhooks.errors import PipelineExists, PipelineNotFound
from hayhooks.pipelines.store import PipelineStore

WRAPPER = {PurePosixPath("pipeline_wrapper.py"): "x = 1\n"}


@pytest.fixture
def store(tmp_path):
    s = PipelineStore(tmp_path / "p")
    s.prepare()
    return s


def test_snapshot_lists_wrappers_and_yaml_and_ignores_bookkeeping(store):
    (store.root / "a").mkdir()
    (store.root / "a" / "pipeline_wrapper.py").write_text("")
    (store.root / "b.yml").write_text("")
    (store.root / "c.yaml").write_text("")
    (store.root / "no_wrapper").mkdir()
    (store.root / "_private").mkdir()
    (store.root / "_private" / "pipeline_wrapper.py").write_text("")
    (store.root / "notes.txt").write_text("")
    generation, entries = store.snapshot()
    assert generation == 0
    assert [(e.name, e.kind) for e in entries] == [("a", "wrapper"), ("b", "yaml"), ("c", "yaml")]


def test_commit_is_atomic_bumps_generation_and_archives(store):
    staged = store.stage_folder("p", WRAPPER)
    assert store.snapshot()[1] == []  # staged is invisible
    generation, committed = store.commit("p", staged, ephemeral=False, overwrite=False)
    assert generation == 1 and committed.path == str(store.root / "p") and committed.kind == "wrapper"
    assert staged.is_dir(), "the staged copy stays: the deploying process serves what it loaded from there"
    first = store.snapshot()[1][0]
    assert first == committed
    store.discard(staged)
    with pytest.raises(PipelineExists):
        store.commit("p", store.stage_folder("p", WRAPPER), ephemeral=False, overwrite=False)
    assert list(store.staging.iterdir()) == []  # refused stage cleaned up
    store.commit(
        "p",
        store.stage_folder("p", {PurePosixPath("pipeline_wrapper.py"): "x = 2\n"}),
        ephemeral=False,
        overwrite=True,
    )
    gen, (second,) = store.snapshot()
    assert gen == 2 and second.fingerprint != first.fingerprint
    assert len(list(store.archive.iterdir())) == 1


def test_ephemeral_shadows_saved_and_is_cleared(store):
    store.commit("p", store.stage_folder("p", WRAPPER), ephemeral=False, overwrite=False)
    store.commit("p", store.stage_folder("p", WRAPPER), ephemeral=True, overwrite=True)
    (entry,) = store.snapshot()[1]
    assert entry.origin == "ephemeral"
    assert (store.root / "p" / "pipeline_wrapper.py").exists(), "saved version stays for after a restart"
    store.clear_ephemeral()
    (entry,) = store.snapshot()[1]
    assert entry.origin == "saved"


def test_remove_archives_everything(store):
    store.commit("y", store.stage_yaml("y", "a: 1"), ephemeral=False, overwrite=False)
    store.remove("y")
    assert store.snapshot()[1] == []
    assert [p.name for p in store.archive.glob("*/*")] == ["y.yml"]
    with pytest.raises(PipelineNotFound):
        store.remove("y")


def test_clearing_also_drops_leftover_stages(store):
    store.stage_folder("half", WRAPPER)  # a deploy interrupted before its commit
    store.clear_ephemeral()
    assert list(store.staging.iterdir()) == []
