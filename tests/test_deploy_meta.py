"""The metadata a deploy saves with a pipeline's files, and a YAML's description/skip_mcp entries."""

from __future__ import annotations

from pathlib import Path

import yaml

from hayhooks.pipelines import deploy_meta
from hayhooks.pipelines.deploy_meta import DeployMeta
from hayhooks.pipelines.yaml_pipeline import with_entry


def test_nothing_is_written_when_the_deploy_says_nothing() -> None:
    assert DeployMeta().as_files() == {}
    assert DeployMeta(description="d").as_files() != {}


def test_round_trip_and_bad_files(tmp_path: Path) -> None:
    for rel, text in DeployMeta("Greets", True).as_files().items():
        (tmp_path / str(rel)).write_text(text)
    assert deploy_meta.read(tmp_path) == DeployMeta("Greets", True)
    (tmp_path / deploy_meta.FILE_NAME).write_text("not json")
    assert deploy_meta.read(tmp_path) == DeployMeta()
    (tmp_path / deploy_meta.FILE_NAME).write_text('{"description": "  ", "skip_mcp": "yes"}')
    assert deploy_meta.read(tmp_path) == DeployMeta()
    assert deploy_meta.read(tmp_path / "missing") == DeployMeta()


def test_with_entry_replaces_a_top_level_value_and_keeps_the_rest() -> None:
    text = (
        "# keep me\ncomponents:\n  a:\n    type: x.Y\n"
        "description: |\n  old\n  text\ninputs:\n  q: a.q\noutputs:\n  r: a.r\n"
    )
    edited = with_entry(text, "description", "new: with colon")
    assert "# keep me" in edited and "old" not in edited
    data = yaml.safe_load(edited)
    assert data["description"] == "new: with colon"
    assert {k: v for k, v in data.items() if k != "description"} == {
        k: v for k, v in yaml.safe_load(text).items() if k != "description"
    }
    added = yaml.safe_load(with_entry(text, "skip_mcp", True))
    assert added["skip_mcp"] is True and added["description"] == "old\ntext\n"


def test_with_entry_falls_back_to_serialising_a_layout_it_cannot_edit() -> None:
    text = '{"components": {}, "inputs": {"q": "a.q"}, "outputs": {"r": "a.r"}, "description": "old"}'
    data = yaml.safe_load(with_entry(text, "description", "new"))
    assert data == {"components": {}, "inputs": {"q": "a.q"}, "outputs": {"r": "a.r"}, "description": "new"}
