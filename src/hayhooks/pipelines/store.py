"""The pipelines directory: the single source of truth every worker and instance loads.

Layout::

    <pipelines_dir>/<name>/pipeline_wrapper.py   a wrapper pipeline (plus any sibling files)
    <pipelines_dir>/<name>.yml | <name>.yaml      a YAML pipeline
    <pipelines_dir>/.hayhooks/                    our bookkeeping, never loaded as a pipeline:
        lock, generation                          cross-process lock, change counter
        ephemeral/                                deploys made with save_files=false
        staging/                                  deploys being validated, and the files of the
                                                  version the deploying process serves
        archive/                                  undeployed and overwritten versions (nothing is deleted)
        workers/                                  heartbeats of the processes serving this directory

Writers stage a complete folder, then rename a copy of it into place while holding an exclusive
``flock``, and bump the generation; readers take the snapshot under a shared lock, so nobody ever
sees a half-written or half-swapped pipeline.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Optional

from hayhooks.errors import PipelineExists, PipelineNotFound
from hayhooks.pipelines.ignore import IgnoreRules
from hayhooks.pipelines.models import PipelineSource

YAML_SUFFIXES = (".yml", ".yaml")
META_DIR = ".hayhooks"
WRAPPER_FILE = "pipeline_wrapper.py"
_SKIP_DIRS = {"__pycache__"}


class PipelineStore:
    def __init__(self, root: Path, ignore: Optional[IgnoreRules] = None) -> None:
        self.root = Path(root).resolve()
        # HAYHOOKS_FILES_TO_IGNORE_PATTERNS: never copied into place, never a reason to reload.
        self.ignore = ignore or IgnoreRules()
        self.meta = self.root / META_DIR
        self.ephemeral = self.meta / "ephemeral"
        self.staging = self.meta / "staging"
        self.archive = self.meta / "archive"
        self.workers = self.meta / "workers"
        self._lock_path = self.meta / "lock"
        self._generation_path = self.meta / "generation"

    def prepare(self) -> None:
        """Create the directory and our bookkeeping folders (at startup, never at import)."""
        for folder in (self.root, self.ephemeral, self.staging, self.archive, self.workers):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock_path.touch(exist_ok=True)

    # -- locking and generation ----------------------------------------------------------------
    @contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        with open(self._lock_path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def generation(self) -> int:
        try:
            return int(self._generation_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _bump_generation(self) -> int:
        new = self.generation() + 1
        tmp = self.meta / f"generation.{uuid.uuid4().hex}"
        tmp.write_text(str(new))
        os.replace(tmp, self._generation_path)
        return new

    # -- reading ---------------------------------------------------------------------------------
    def snapshot(self) -> tuple[int, list[PipelineSource]]:
        """The generation and every pipeline entry, taken consistently under the shared lock.

        Ephemeral entries shadow saved ones of the same name: they are the most recent intent.
        """
        with self.locked(exclusive=False):
            generation = self.generation()
            saved = _scan(self.root, "saved", self.ignore)
            ephemeral = _scan(self.ephemeral, "ephemeral", self.ignore)
        entries = {src.name: src for src in saved}
        entries.update({src.name: src for src in ephemeral})
        return generation, [entries[name] for name in sorted(entries)]

    def locate(self, name: str) -> list[Path]:
        """Every path holding a pipeline called ``name`` (saved and ephemeral)."""
        found = []
        for base in (self.root, self.ephemeral):
            if (base / name / WRAPPER_FILE).is_file():
                found.append(base / name)
            found.extend(
                base / f"{name}{suffix}" for suffix in YAML_SUFFIXES if (base / f"{name}{suffix}").is_file()
            )
        return found

    # -- writing ---------------------------------------------------------------------------------
    def stage_folder(self, name: str, files: dict[PurePosixPath, str]) -> Path:
        """Write a wrapper folder into staging; nothing is visible to loading yet."""
        target = self.staging / uuid.uuid4().hex / name
        target.mkdir(parents=True)
        for rel, text in files.items():
            path = target.joinpath(*rel.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return target

    def stage_yaml(self, name: str, source_code: str) -> Path:
        target = self.staging / uuid.uuid4().hex / f"{name}.yml"
        target.parent.mkdir(parents=True)
        target.write_text(source_code, encoding="utf-8")
        return target

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged.parent, ignore_errors=True)

    def commit(
        self, name: str, staged: Path, *, ephemeral: bool, overwrite: bool
    ) -> tuple[int, PipelineSource]:
        """Put a copy of a staged pipeline in place, archiving what it replaces.

        The staged files stay where they are: the deploying process serves the version it loaded
        (and set up) from there, so ``setup()`` runs once. Returns the new generation and the
        committed entry.
        """
        base = self.ephemeral if ephemeral else self.root
        ready = self.staging / uuid.uuid4().hex / staged.name
        ready.parent.mkdir(parents=True)
        try:
            if staged.is_dir():
                shutil.copytree(staged, ready, ignore=shutil.ignore_patterns(*self.ignore.patterns))
            else:
                shutil.copy2(staged, ready)
            with self.locked(exclusive=True):
                existing = self.locate(name)
                if existing and not overwrite:
                    self.discard(staged)
                    raise PipelineExists(f"Pipeline '{name}' already exists; use overwrite to replace it")
                for path in existing:
                    # A saved version stays put under an ephemeral overwrite: it returns after a restart.
                    if ephemeral and path.parent == self.root:
                        continue
                    self._archive(name, path)
                final = base / staged.name
                os.replace(ready, final)
                generation = self._bump_generation()
                kind = "wrapper" if final.is_dir() else "yaml"
                origin = "ephemeral" if ephemeral else "saved"
                fingerprint = _fingerprint(final, self.ignore)
                return generation, PipelineSource(name, kind, str(final), fingerprint, origin)  # type: ignore[arg-type]
        finally:
            shutil.rmtree(ready.parent, ignore_errors=True)

    def remove(self, name: str) -> int:
        """Undeploy: move every version of ``name`` into the archive."""
        with self.locked(exclusive=True):
            existing = self.locate(name)
            if not existing:
                raise PipelineNotFound(f"Pipeline '{name}' not found")
            for path in existing:
                self._archive(name, path)
            return self._bump_generation()

    def clear_ephemeral(self) -> None:
        """Forget save_files=false deploys and half-written stages of a previous run."""
        with self.locked(exclusive=True):
            for leftover in self.staging.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
            if any(self.ephemeral.iterdir()):
                shutil.rmtree(self.ephemeral, ignore_errors=True)
                self.ephemeral.mkdir(parents=True, exist_ok=True)
                self._bump_generation()

    def _archive(self, name: str, path: Path) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:6]}"
        folder = self.archive / f"{name}-{stamp}"
        folder.mkdir(parents=True)
        os.replace(path, folder / path.name)


def _scan(base: Path, origin: str, ignore: Optional[IgnoreRules] = None) -> list[PipelineSource]:
    entries: list[PipelineSource] = []
    try:
        children = sorted(base.iterdir())
    except FileNotFoundError:
        return entries
    for child in children:
        if child.name.startswith((".", "_")):
            continue
        if child.is_dir() and (child / WRAPPER_FILE).is_file():
            entries.append(
                PipelineSource(child.name, "wrapper", str(child), _fingerprint(child, ignore), origin)  # type: ignore[arg-type]
            )
        elif child.is_file() and child.suffix in YAML_SUFFIXES:
            entries.append(PipelineSource(child.stem, "yaml", str(child), _fingerprint(child), origin))  # type: ignore[arg-type]
    return entries


def _fingerprint(path: Path, ignore: Optional[IgnoreRules] = None) -> str:
    """Cheap change detector: names, sizes, mtimes and inodes of every file (no content reads)."""
    digest = hashlib.blake2b(digest_size=12)
    files = [path] if path.is_file() else _walk(path, ignore)
    for file in files:
        try:
            st = file.stat()
        except FileNotFoundError:
            continue
        digest.update(f"{file.relative_to(path.parent)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}\n".encode())
    return digest.hexdigest()


def _walk(folder: Path, ignore: Optional[IgnoreRules] = None) -> list[Path]:
    rules = ignore or IgnoreRules()
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".") and not rules.matches_name(d)
        )
        out.extend(
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.endswith((".pyc", ".pyo")) and not rules.matches_name(f)
        )
    return out
