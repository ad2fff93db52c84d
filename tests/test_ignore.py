"""HAYHOOKS_FILES_TO_IGNORE_PATTERNS: the rules, the CLI's folder reading and the store's view of a folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hayhooks.cli.inputs import collect_pipeline_files
from hayhooks.pipelines.ignore import DEFAULT_PATTERNS, IgnoreRules
from hayhooks.pipelines.store import PipelineStore
from hayhooks.settings import HayhooksSettings


def test_default_patterns_are_those_of_2x() -> None:
    assert HayhooksSettings().files_to_ignore_patterns == [
        "*.pyc",
        "*.pyo",
        "*.pyd",
        "__pycache__",
        "*.so",
        "*.egg",
        "*.egg-info",
    ]
    assert list(DEFAULT_PATTERNS) == HayhooksSettings().files_to_ignore_patterns


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('["*.log", "tmp"]', ["*.log", "tmp"]), ("*.log, tmp ,", ["*.log", "tmp"]), ("[]", [])],
)
def test_the_setting_takes_a_json_list_or_a_comma_list(monkeypatch, raw, expected) -> None:
    monkeypatch.setenv("HAYHOOKS_FILES_TO_IGNORE_PATTERNS", raw)
    assert HayhooksSettings().files_to_ignore_patterns == expected


def test_a_pattern_matches_any_path_component() -> None:
    rules = IgnoreRules()
    assert rules.ignores("__pycache__/x.cpython-311.pyc")
    assert rules.ignores("pkg.egg-info/PKG-INFO")
    assert rules.ignores("lib/native.so")
    assert not rules.ignores("pipeline_wrapper.py")
    assert not rules.ignores("prompts/system.txt")
    assert IgnoreRules(["*.md"]).ignores("docs/README.md")
    assert not IgnoreRules([]).ignores("x.pyc")


def test_collect_pipeline_files_skips_what_the_rules_match(tmp_path: Path) -> None:
    (tmp_path / "pipeline_wrapper.py").write_text("x = 1\n")
    (tmp_path / "notes.md").write_text("# notes\n")
    (tmp_path / "native.so").write_bytes(b"\x7fELF\x00")  # binary: an error if it were read
    assert set(collect_pipeline_files(tmp_path)) == {"pipeline_wrapper.py", "notes.md"}
    assert set(collect_pipeline_files(tmp_path, IgnoreRules(["*.md", "*.so"]))) == {"pipeline_wrapper.py"}


def test_ignored_files_are_no_change_of_a_served_folder(tmp_path: Path) -> None:
    """Compiled caches appearing next to a pipeline must not make every worker reload it."""
    folder = tmp_path / "pipelines" / "p"
    folder.mkdir(parents=True)
    (folder / "pipeline_wrapper.py").write_text("x = 1\n")
    store = PipelineStore(tmp_path / "pipelines", ignore=IgnoreRules(["*.so", "*.log", "__pycache__"]))
    store.prepare()
    before = store.snapshot()[1][0].fingerprint
    (folder / "native.so").write_bytes(b"\x00")
    (folder / "run.log").write_text("noise")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "m.pyc").write_bytes(b"\x00")
    assert store.snapshot()[1][0].fingerprint == before
    later = time.time() + 5
    (folder / "pipeline_wrapper.py").write_text("x = 2\n")
    os.utime(folder / "pipeline_wrapper.py", (later, later))
    assert store.snapshot()[1][0].fingerprint != before
