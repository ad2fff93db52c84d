"""Unit tests of the CLI's local input handling: --param parsing and file collection."""

from __future__ import annotations

from pathlib import Path

import pytest

from hayhooks.cli.client import form_fields
from hayhooks.cli.inputs import (
    InputError,
    collect_pipeline_files,
    collect_upload_files,
    parse_params,
    parse_value,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('["a", "b"]', ["a", "b"]),
        ('{"k": 1}', {"k": 1}),
        ('"3"', "3"),
        ("hello world", "hello world"),
        ("", ""),
        ("[unclosed", "[unclosed"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("True", "True"),  # Python spelling is not JSON
    ],
)
def test_parse_value(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_params_splits_on_first_equals_and_last_repeat_wins():
    params = parse_params(["top_k=3", "query=a=b", 'urls=["a"]', "top_k=5", " spaced =x"])
    assert params == {"top_k": 5, "query": "a=b", "urls": ["a"], "spaced": "x"}


@pytest.mark.parametrize("item", ["novalue", "=3"])
def test_parse_params_rejects_malformed(item):
    with pytest.raises(InputError, match="Invalid --param"):
        parse_params([item])


def test_form_fields_json_encodes_non_strings():
    assert form_fields({"q": "hi", "n": 3, "flags": [True], "none": None, "s": "3"}) == {
        "q": "hi",
        "n": "3",
        "flags": "[true]",
        "none": "null",
        "s": "3",
    }


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def test_collect_pipeline_files_reads_recursively_and_skips_noise(tmp_path):
    _write(tmp_path / "pipeline_wrapper.py", "print('wrapper')\n")
    _write(tmp_path / "sub" / "deeper" / "helper.py", "X = 'é'\n")
    _write(tmp_path / "sub" / "config.yml", "a: 1\n")
    _write(tmp_path / "__pycache__" / "pipeline_wrapper.cpython-312.pyc", b"\x00\x01binary")
    _write(tmp_path / "sub" / "__pycache__" / "helper.pyc", b"\x00")
    _write(tmp_path / "stale.pyc", b"\x00")
    _write(tmp_path / ".hidden", "secret")
    _write(tmp_path / ".git" / "config", "[core]")
    _write(tmp_path / "sub" / ".DS_Store", b"\x00\x00")

    files = collect_pipeline_files(tmp_path)

    assert files == {
        "pipeline_wrapper.py": "print('wrapper')\n",
        "sub/config.yml": "a: 1\n",
        "sub/deeper/helper.py": "X = 'é'\n",
    }


def test_collect_pipeline_files_missing_folder(tmp_path):
    with pytest.raises(InputError, match="Pipeline folder not found"):
        collect_pipeline_files(tmp_path / "nope")


def test_collect_pipeline_files_not_a_folder(tmp_path):
    _write(tmp_path / "file.py", "x")
    with pytest.raises(InputError, match="Not a folder"):
        collect_pipeline_files(tmp_path / "file.py")


def test_collect_pipeline_files_requires_wrapper(tmp_path):
    _write(tmp_path / "sub" / "pipeline_wrapper.py", "x")  # only at the top level counts
    with pytest.raises(InputError, match="No pipeline_wrapper.py"):
        collect_pipeline_files(tmp_path)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00", b"caf\xe9 latin-1"])
def test_collect_pipeline_files_rejects_binary(tmp_path, content):
    _write(tmp_path / "pipeline_wrapper.py", "x")
    _write(tmp_path / "assets" / "logo.png", content)
    with pytest.raises(InputError, match=r"logo\.png .*text files only"):
        collect_pipeline_files(tmp_path)


def test_collect_upload_files(tmp_path):
    _write(tmp_path / "one.txt", "1")
    _write(tmp_path / "docs" / "a.md", "a")
    _write(tmp_path / "docs" / "nested" / "b.pdf", b"%PDF\x00")
    _write(tmp_path / "docs" / ".hidden", "h")

    uploads = collect_upload_files([tmp_path / "one.txt"], [tmp_path / "docs"])

    assert [(u.name, u.path) for u in uploads] == [
        ("one.txt", tmp_path / "one.txt"),
        ("a.md", tmp_path / "docs" / "a.md"),
        ("nested/b.pdf", tmp_path / "docs" / "nested" / "b.pdf"),
    ]


def test_collect_upload_files_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "f.txt", "x")
    with pytest.raises(InputError, match="File not found"):
        collect_upload_files([tmp_path / "missing.txt"])
    with pytest.raises(InputError, match="Not a file"):
        collect_upload_files([tmp_path / "empty"])
    with pytest.raises(InputError, match="Folder not found"):
        collect_upload_files(dirs=[tmp_path / "missing"])
    with pytest.raises(InputError, match="Not a folder"):
        collect_upload_files(dirs=[tmp_path / "f.txt"])
    with pytest.raises(InputError, match="No files in"):
        collect_upload_files(dirs=[tmp_path / "empty"])
