"""The pure, local parts of the client commands: parameters and files read from the command line.

Nothing here talks to the server; every problem raises ``InputError`` with a one-line message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from hayhooks.cli.client import ClientError, UploadFile
from hayhooks.pipelines.ignore import IgnoreRules

WRAPPER_FILE = "pipeline_wrapper.py"
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")


class InputError(ClientError):
    """A problem with what was given on the command line (found before contacting the server)."""


# -- --param k=v --------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_value(text: str) -> Any:
    """JSON when ``text`` parses as JSON (``3`` → 3, ``true`` → True, ``["a"]`` → list), else the text.

    ``NaN`` / ``Infinity`` are not JSON and stay strings. To force a string that looks like JSON,
    quote it: ``--param 'zip="01234"'``.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["k=v", ...]`` → ``{k: parse_value(v)}``; split on the first ``=``; a repeated key wins last."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise InputError(f"Invalid --param {item!r}: expected KEY=VALUE (e.g. --param top_k=3).")
        if not key:
            raise InputError(f"Invalid --param {item!r}: the name before '=' is empty.")
        params[key] = parse_value(value)
    return params


# -- files ---------------------------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted, skipping hidden entries and Python caches."""
    found: list[Path] = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d) and d not in SKIPPED_DIRS)
        for name in sorted(files):
            if _is_hidden(name) or name.endswith(SKIPPED_SUFFIXES):
                continue
            path = Path(current) / name
            if path.is_file():
                found.append(path)
    return found


def collect_pipeline_files(folder: Path | str, ignore: Optional[IgnoreRules] = None) -> dict[str, str]:
    """Read a pipeline wrapper folder into ``{relative posix path: UTF-8 text}`` for ``deploy-files``.

    Skips hidden files and folders and whatever ``ignore`` (HAYHOOKS_FILES_TO_IGNORE_PATTERNS;
    compiled files, ``__pycache__``, native extensions by default) matches. The folder must exist
    and hold a ``pipeline_wrapper.py`` at its top level; every file must be UTF-8 text.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"Pipeline folder not found: {folder}")
    if not folder.is_dir():
        raise InputError(f"Not a folder: {folder} (deploy-files takes the folder holding {WRAPPER_FILE})")
    if not (folder / WRAPPER_FILE).is_file():
        raise InputError(f"No {WRAPPER_FILE} in {folder}: a pipeline wrapper folder needs one.")

    files: dict[str, str] = {}
    rules = ignore or IgnoreRules()
    for path in _walk_files(folder):
        relative = path.relative_to(folder).as_posix()
        if rules.ignores(relative):
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read {path}: {exc.strerror or exc}") from None
        if b"\x00" in raw:
            raise InputError(
                f"{path} is a binary file; deploy-files sends text files only (remove it or move it away)."
            )
        try:
            files[relative] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                f"{path} is not UTF-8 text; deploy-files sends text files only (remove it or re-encode it)."
            ) from None
    return files


def collect_upload_files(
    files: Iterable[Path | str] = (), dirs: Iterable[Path | str] = ()
) -> list[UploadFile]:
    """The files of a multipart ``run``: each ``--file`` as is, each ``--dir`` walked recursively.

    A ``--file`` is sent under its file name; a file found in a ``--dir`` under its path relative to
    that folder (``sub/a.txt``). Hidden files and folders are skipped inside ``--dir``.
    """
    uploads: list[UploadFile] = []
    for item in files:
        path = Path(item)
        if not path.exists():
            raise InputError(f"File not found: {path}")
        if not path.is_file():
            raise InputError(f"Not a file: {path} (use --dir for folders)")
        uploads.append(UploadFile(name=path.name, path=path))
    for item in dirs:
        folder = Path(item)
        if not folder.exists():
            raise InputError(f"Folder not found: {folder}")
        if not folder.is_dir():
            raise InputError(f"Not a folder: {folder} (use --file for single files)")
        found = _walk_files(folder)
        if not found:
            raise InputError(f"No files in {folder}")
        uploads.extend(UploadFile(name=p.relative_to(folder).as_posix(), path=p) for p in found)
    return uploads
