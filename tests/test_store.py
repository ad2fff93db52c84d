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
    staged = store.stage_folder("p", WRAPPER, "w1")
    assert store.snapshot()[1] == []  # staged is invisible
    generation, committed = store.commit("p", staged, ephemeral=False, overwrite=False)
    assert generation == 1 and committed.path == str(store.root / "p") and committed.kind == "wrapper"
    assert staged.is_dir(), "the staged copy stays: the deploying process serves what it loaded from there"
    first = store.snapshot()[1][0]
    assert first == committed
    store.discard(staged)
    with pytest.raises(PipelineExists):
        store.commit("p", store.stage_folder("p", WRAPPER, "w1"), ephemeral=False, overwrite=False)
    assert list(store.staging.iterdir()) == []  # nothing half-committed left behind
    store.commit(
        "p",
        store.stage_folder("p", {PurePosixPath("pipeline_wrapper.py"): "x = 2\n"}, "w1"),
        ephemeral=False,
        overwrite=True,
    )
    gen, (second,) = store.snapshot()
    assert gen == 2 and second.fingerprint != first.fingerprint
    (current, archived) = store.history("p")
    assert current["current"] and archived["action"] == "overwritten" and archived["generation"] == 2


def test_ephemeral_shadows_saved_and_is_cleared(store):
    store.commit("p", store.stage_folder("p", WRAPPER, "w1"), ephemeral=False, overwrite=False)
    store.commit("p", store.stage_folder("p", WRAPPER, "w1"), ephemeral=True, overwrite=True)
    (entry,) = store.snapshot()[1]
    assert entry.origin == "ephemeral"
    assert (store.root / "p" / "pipeline_wrapper.py").exists(), "saved version stays for after a restart"
    store.clear_ephemeral()
    (entry,) = store.snapshot()[1]
    assert entry.origin == "saved"


def test_remove_archives_everything(store):
    store.commit("y", store.stage_yaml("y", "a: 1", "w1"), ephemeral=False, overwrite=False)
    store.remove("y")
    assert store.snapshot()[1] == []
    assert [p.name for p in store.archive.glob("y/*/*") if p.name != "meta.json"] == ["y.yml"]
    with pytest.raises(PipelineNotFound):
        store.remove("y")


def test_clearing_also_drops_leftover_stages(store):
    store.stage_folder("half", WRAPPER, "w1")  # a deploy interrupted before its commit
    store.clear_ephemeral()
    assert list(store.staging.iterdir()) == [] and list(store.work.iterdir()) == []


def _write(store, name, text, overwrite=True):
    files = {PurePosixPath("pipeline_wrapper.py"): text}
    return store.commit(name, store.stage_folder(name, files, "w1"), ephemeral=False, overwrite=overwrite)


def test_generation_never_goes_backwards_when_its_files_are_deleted_or_corrupted(store, caplog):
    for i in range(3):
        _write(store, "p", f"x = {i}\n")
    assert store.generation() == 3
    (store.meta / "generation").unlink()
    assert store.generation() == 3, "the mirror still holds it"
    (store.meta / "generation.mirror").write_text("garbage")
    assert store.snapshot()[0] == 3, "the archive still records generation 3"
    assert "repaired" in caplog.text
    assert (store.meta / "generation").read_text() == "3" == (store.meta / "generation.mirror").read_text()
    for path in (store.meta / "generation", store.meta / "generation.mirror"):
        path.write_text("0")
    # A worker that served generation 3 says so: the next change is still a new number.
    assert store.snapshot(floor=3)[0] == 3
    generation, _ = _write(store, "p", "x = 9\n")
    assert generation == 4


def test_archive_is_bounded_history_lists_versions_and_restore_brings_one_back(tmp_path):
    store = PipelineStore(tmp_path / "p", archive_keep=3)
    store.prepare()
    for i in range(6):
        _write(store, "p", f"x = {i}\n")
    history = store.history("p")
    assert [v["current"] for v in history] == [True, False, False, False]
    assert len(list((store.archive / "p").iterdir())) == 3
    oldest = history[-1]["version"]  # holds x = 2
    generation, source, restored = store.restore("p", oldest)
    assert restored == oldest and (store.root / "p" / "pipeline_wrapper.py").read_text() == "x = 2\n"
    assert generation == 7 and source.origin == "saved"
    # Without a version: the newest archived one (what the rollback replaced: x = 5).
    store.restore("p")
    assert (store.root / "p" / "pipeline_wrapper.py").read_text() == "x = 5\n"
    with pytest.raises(PipelineNotFound):
        store.restore("p", "no-such-version")
    assert list(store.staging.iterdir()) == []


def test_materialised_copies_are_private_and_released(store):
    _write(store, "p", "x = 1\n", overwrite=False)
    (entry,) = store.snapshot()[1]
    copy = store.materialise(entry, "w1")
    assert copy.parent.parent == store.work / "w1" and (copy / "pipeline_wrapper.py").read_text() == "x = 1\n"
    _write(store, "p", "x = 2\n")  # the store moves on; the copy does not
    assert (copy / "pipeline_wrapper.py").read_text() == "x = 1\n"
    store.release(copy)
    assert not copy.exists()
    store.materialise(store.snapshot()[1][0], "gone")
    store.forget_worker("gone")
    assert not (store.work / "gone").exists()
