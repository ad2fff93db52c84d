"""The pipelines directory: the single source of truth every worker and instance loads.

Layout::

    <pipelines_dir>/<name>/pipeline_wrapper.py   a wrapper pipeline (plus any sibling files)
    <pipelines_dir>/<name>.yml | <name>.yaml      a YAML pipeline
    <pipelines_dir>/.hayhooks/                    our bookkeeping, never loaded as a pipeline:
        lock                                      cross-process lock
        generation, generation.mirror             change counter, written twice (see ``generation``)
        ephemeral/                                deploys made with save_files=false
        staging/                                  copies being renamed into place (one commit long)
        work/<worker>/<version>/                  immutable folders each worker loads and runs from
        archive/<name>/<version>/                 replaced and undeployed versions, the last
                                                  ``archive_keep`` per pipeline, with meta.json
        workers/                                  heartbeats of the processes serving this directory

The operations a backend provides are few and explicit: ``stage_*`` (write a candidate where this
worker can load it), ``commit`` / ``remove`` / ``restore`` (change what is deployed, bump the
generation), ``generation`` and ``snapshot`` (read), ``history``, ``materialise`` (a private
immutable copy of one entry for this worker to load) and the heartbeats (``Cluster``). Everything
directory-specific (``flock``, renames, the layout above) stays behind them.

Writers stage a complete folder, then rename a copy of it into place while holding an exclusive
``flock``, and bump the generation; readers take the snapshot under a shared lock, so nobody ever
sees a half-written or half-swapped pipeline.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from hayhooks.errors import PipelineExists, PipelineNotFound
from hayhooks.pipelines.cluster import Cluster
from hayhooks.pipelines.ignore import IgnoreRules
from hayhooks.pipelines.models import PipelineSource

log = logging.getLogger("hayhooks")

YAML_SUFFIXES = (".yml", ".yaml")
META_DIR = ".hayhooks"
WRAPPER_FILE = "pipeline_wrapper.py"
ARCHIVE_META = "meta.json"
_SKIP_DIRS = {"__pycache__"}
# A copy in staging older than this belongs to a commit that was killed half-way.
_STAGING_LEFTOVER_AGE = 600.0


def choose_archived(name: str, archived: list[dict[str, Any]], version: Optional[str]) -> dict[str, Any]:
    """The archived version a rollback restores: ``version``, or the newest (``archived`` is newest
    first). Shared by both store backends."""
    chosen = next((v for v in archived if v["version"] == version), None) if version else None
    if version is None and archived:
        chosen = archived[0]
    if chosen is None:
        what = f"version '{version}'" if version else "archived version"
        raise PipelineNotFound(f"Pipeline '{name}' has no {what}")
    return chosen


class PipelineStore:
    backend = "directory"

    def __init__(self, root: Path, archive_keep: int = 10, ignore: Optional[IgnoreRules] = None) -> None:
        self.root = Path(root).resolve()
        # HAYHOOKS_FILES_TO_IGNORE_PATTERNS: never copied into place, never a reason to reload.
        self.ignore = ignore or IgnoreRules()
        self.archive_keep = max(1, archive_keep)
        self.read_only = False
        self._use_meta(self.root / META_DIR)

    def _use_meta(self, meta: Path) -> None:
        self.meta = meta
        self.ephemeral = self.meta / "ephemeral"
        self.staging = self.meta / "staging"
        self.work = self.meta / "work"
        self.archive = self.meta / "archive"
        self.workers = self.meta / "workers"
        self._lock_path = self.meta / "lock"
        self._generation_path = self.meta / "generation"
        self._mirror_path = self.meta / "generation.mirror"

    def make_cluster(self, heartbeat_interval: float, on_dead: Optional[Callable[[str], None]]) -> Cluster:
        """Where this store's workers announce themselves: heartbeat files next to the pipelines."""
        return Cluster(self.workers, heartbeat_interval, on_dead=on_dead)

    def prepare(self) -> None:
        """Create the directory and our bookkeeping folders (at startup, never at import).

        A pipelines directory that exists but cannot be written (a read-only volume, a
        ConfigMap) is still served: the bookkeeping moves to a folder of this host's temporary
        directory, shared by the workers of this host, and deploys answer 503.
        """
        try:
            self._create_meta()
        except OSError as exc:
            if not self.root.is_dir():
                raise
            digest = hashlib.blake2b(str(self.root).encode(), digest_size=8).hexdigest()
            self.read_only = True
            self._use_meta(Path(tempfile.gettempdir()) / f"hayhooks-{digest}")
            log.warning(
                "Pipelines directory %s is not writable (%s): serving it read-only, deploys are refused",
                self.root,
                exc.strerror or exc,
            )
            self._create_meta()

    def _create_meta(self) -> None:
        for folder in (self.root, self.ephemeral, self.staging, self.work, self.archive, self.workers):
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
        """The latest change, read without any lock (the cheap check every worker polls).

        Two files hold it; the larger valid one wins, so deleting or corrupting one never moves it
        backwards. ``snapshot`` and every commit repair a missing or lagging copy.
        """
        return max(_read_int(self._generation_path) or 0, _read_int(self._mirror_path) or 0)

    def _checked_generation(self, floor: int = 0) -> int:
        """The generation, validated against every other record of it and repaired if needed.

        Heartbeats (what workers serve) and the archive (when each version was replaced) also
        carry generations: a counter below any of them was reset or tampered with.
        """
        primary, mirror = _read_int(self._generation_path), _read_int(self._mirror_path)
        value = max(primary or 0, mirror or 0)
        if primary is not None and primary == mirror and value >= floor:
            return value
        repaired = max(value, floor, self._recorded_floor())
        if primary is None and mirror is None and repaired == 0:  # a new directory
            self._write_generation(0)
            return 0
        log.warning(
            "Generation files of %s were missing, corrupt or behind (generation=%s, mirror=%s); "
            "repaired to %d",
            self.meta.name,
            primary,
            mirror,
            repaired,
        )
        self._write_generation(repaired)
        return repaired

    def _recorded_floor(self) -> int:
        floor = 0
        for path in self.workers.glob("*.json"):
            try:
                data = json.loads(path.read_text())
                floor = max(floor, int(data.get("generation", 0)), int(data.get("seen", 0)))
            except (OSError, ValueError, TypeError, AttributeError):
                continue
        for meta in self.archive.glob(f"*/*/{ARCHIVE_META}"):
            try:
                floor = max(floor, int(json.loads(meta.read_text()).get("generation", 0)))
            except (OSError, ValueError, TypeError, AttributeError):
                continue
        return floor

    def _write_generation(self, value: int) -> None:
        for path in (self._generation_path, self._mirror_path):
            tmp = self.meta / f".{path.name}.{uuid.uuid4().hex}"
            tmp.write_text(str(value))
            os.replace(tmp, path)

    def _bump_generation(self) -> int:
        """Under the exclusive lock: one more than anything any record has seen."""
        new = max(self._checked_generation(), self._recorded_floor()) + 1
        self._write_generation(new)
        return new

    # -- reading ---------------------------------------------------------------------------------
    def snapshot(self, floor: int = 0) -> tuple[int, list[PipelineSource]]:
        """The generation and every pipeline entry, taken consistently under the shared lock.

        Ephemeral entries shadow saved ones of the same name: they are the most recent intent.
        ``floor`` is the generation the caller already served: the store never reports less.
        """
        with self.locked(exclusive=False):
            generation = self._checked_generation(floor)
            saved = scan_entries(self.root, "saved", self.ignore)
            ephemeral = scan_entries(self.ephemeral, "ephemeral", self.ignore)
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

    def materialise(self, source: PipelineSource, worker: str) -> Path:
        """A private, immutable copy of one entry for ``worker`` to load and run from.

        Running requests keep using their version's files while the store moves on; the copy is
        deleted when the version is retired (``release``) or its worker is gone (``forget_worker``).
        """
        target = self.work / worker / uuid.uuid4().hex / Path(source.path).name
        target.parent.mkdir(parents=True)
        try:
            with self.locked(exclusive=False):
                _copy(Path(source.path), target, self.ignore)
        except BaseException:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
        return target

    def release(self, version_path: Path) -> None:
        """Delete a version folder made by ``materialise`` or ``stage_*`` (its last user is gone)."""
        if version_path.parent.parent.parent == self.work:
            shutil.rmtree(version_path.parent, ignore_errors=True)

    # -- writing ---------------------------------------------------------------------------------
    def stage_folder(self, name: str, files: dict[PurePosixPath, str], worker: str) -> Path:
        """Write a wrapper folder where ``worker`` can load it; nothing is deployed yet."""
        target = self.work / worker / uuid.uuid4().hex / name
        try:
            target.mkdir(parents=True)
            for rel, text in files.items():
                path = target.joinpath(*rel.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        except BaseException:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
        return target

    def stage_yaml(self, name: str, source_code: str, worker: str) -> Path:
        target = self.work / worker / uuid.uuid4().hex / f"{name}.yml"
        try:
            target.parent.mkdir(parents=True)
            target.write_text(source_code, encoding="utf-8")
        except BaseException:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
        return target

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged.parent, ignore_errors=True)

    def commit(
        self, name: str, staged: Path, *, ephemeral: bool, overwrite: bool, action: str = "deploy"
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
            _copy(staged, ready, self.ignore)
            with self.locked(exclusive=True):
                existing = self.locate(name)
                if existing and not overwrite:
                    raise PipelineExists(f"Pipeline '{name}' already exists; use overwrite to replace it")
                generation = self._bump_generation()
                for path in existing:
                    # A saved version stays put under an ephemeral overwrite: it returns after a restart.
                    if ephemeral and path.parent == self.root:
                        continue
                    self._archive(name, path, generation, "overwritten" if action == "deploy" else action)
                final = base / staged.name
                os.replace(ready, final)
                kind = "wrapper" if final.is_dir() else "yaml"
                origin = "ephemeral" if ephemeral else "saved"
                source = PipelineSource(name, kind, str(final), entry_fingerprint(final, self.ignore), origin)  # type: ignore[arg-type]
                return generation, source
        finally:
            shutil.rmtree(ready.parent, ignore_errors=True)

    def remove(self, name: str, action: str = "undeployed") -> int:
        """Undeploy: move every version of ``name`` into the archive."""
        with self.locked(exclusive=True):
            existing = self.locate(name)
            if not existing:
                raise PipelineNotFound(f"Pipeline '{name}' not found")
            generation = self._bump_generation()
            for path in existing:
                self._archive(name, path, generation, action)
            return generation

    def remove_ephemeral(self, name: str) -> int:
        """Drop a save_files=false version that shadows a saved one (the saved one serves again)."""
        with self.locked(exclusive=True):
            existing = [p for p in self.locate(name) if p.parent == self.ephemeral]
            if not existing:
                raise PipelineNotFound(f"Pipeline '{name}' has no unsaved version")
            generation = self._bump_generation()
            for path in existing:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            return generation

    def restore(self, name: str, version: Optional[str] = None) -> tuple[int, PipelineSource, str]:
        """Deploy an archived version again (a rollback): the newest one, or ``version``.

        It is committed like any deploy (the current version is archived in turn), so a rollback
        can itself be rolled back. Returns the new generation, the entry and the version restored.
        """
        versions = self.history(name)
        chosen = choose_archived(name, [v for v in versions if not v["current"]], version)
        folder = self.archive / name / chosen["version"]
        entry = next(p for p in folder.iterdir() if p.name != ARCHIVE_META)
        scratch = self.staging / uuid.uuid4().hex / entry.name
        scratch.parent.mkdir(parents=True)
        try:
            _copy(entry, scratch, self.ignore)
            generation, source = self.commit(
                name, scratch, ephemeral=chosen["origin"] == "ephemeral", overwrite=True, action="rolled back"
            )
        finally:
            shutil.rmtree(scratch.parent, ignore_errors=True)
        return generation, source, chosen["version"]

    def history(self, name: str) -> list[dict[str, Any]]:
        """The deployed version (if any) then the archived ones, newest first."""
        out: list[dict[str, Any]] = []
        for path in self.locate(name)[-1:]:
            st = path.stat()
            origin = "ephemeral" if path.parent == self.ephemeral else "saved"
            out.append({"version": "current", "current": True, "origin": origin, "at": st.st_mtime})
        for meta in self._archived(name):
            out.append({**meta, "current": False})
        return out

    def _archived(self, name: str) -> list[dict[str, Any]]:
        metas = []
        folder = self.archive / name
        try:
            children = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        for child in children:
            try:
                meta = json.loads((child / ARCHIVE_META).read_text())
                metas.append(
                    {
                        "version": child.name,
                        "generation": int(meta["generation"]),
                        "action": str(meta["action"]),
                        "origin": str(meta.get("origin", "saved")),
                        "at": float(meta["at"]),
                    }
                )
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a half-written or foreign entry: never offered for a rollback
        return sorted(metas, key=lambda m: (m["at"], m["version"]), reverse=True)

    def join(self, worker: str, alone: Callable[[], bool]) -> bool:
        """A worker starts serving this directory. If ``alone()`` (no other live worker), it is
        the first of a new run: deploys made with save_files=false by the previous run and its
        scratch folders are dropped. One exclusive lock around both, so two workers starting
        together never both count themselves first, nor clear what the other just wrote."""
        with self.locked(exclusive=True):
            first = alone()
            if first:
                self._clear(keep_worker=worker)
            return first

    def clear_ephemeral(self, keep_worker: str = "") -> None:
        """Forget save_files=false deploys and scratch folders of a previous run."""
        with self.locked(exclusive=True):
            self._clear(keep_worker)

    def _clear(self, keep_worker: str) -> None:
        for leftover in self.staging.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        for folder in self.work.iterdir():
            if folder.name != keep_worker:
                shutil.rmtree(folder, ignore_errors=True)
        if any(self.ephemeral.iterdir()):
            shutil.rmtree(self.ephemeral, ignore_errors=True)
            self.ephemeral.mkdir(parents=True, exist_ok=True)
            self._bump_generation()

    def forget_worker(self, worker: str) -> None:
        """A worker is gone: its version folders serve nobody any more."""
        if worker and "/" not in worker and not worker.startswith("."):
            shutil.rmtree(self.work / worker, ignore_errors=True)

    def sweep_staging(self) -> None:
        """Copies left in staging by a commit that was killed half-way."""
        now = time.time()
        for leftover in self.staging.iterdir():
            try:
                if now - leftover.stat().st_mtime > _STAGING_LEFTOVER_AGE:
                    log.warning("Removing a staging leftover of an interrupted commit: %s", leftover.name)
                    shutil.rmtree(leftover, ignore_errors=True)
            except FileNotFoundError:
                continue

    def _archive(self, name: str, path: Path, generation: int, action: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:6]}"
        folder = self.archive / name / stamp
        folder.mkdir(parents=True)
        origin = "ephemeral" if path.parent == self.ephemeral else "saved"
        meta = {"generation": generation, "action": action, "origin": origin, "at": time.time()}
        (folder / ARCHIVE_META).write_text(json.dumps(meta))
        os.replace(path, folder / path.name)
        for old in self._archived(name)[self.archive_keep :]:
            shutil.rmtree(self.archive / name / old["version"], ignore_errors=True)


def _read_int(path: Path) -> Optional[int]:
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value >= 0 else None


def _copy(source: Path, target: Path, ignore: Optional[IgnoreRules] = None) -> None:
    if source.is_dir():
        patterns = ["__pycache__", *(ignore.patterns if ignore is not None else ())]
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(*patterns))
    else:
        shutil.copy2(source, target)


def scan_entries(base: Path, origin: str, ignore: Optional[IgnoreRules] = None) -> list[PipelineSource]:
    """The pipelines stored directly in ``base``: each folder holding a ``pipeline_wrapper.py`` and
    each YAML file, with its fingerprint. Hidden (``.``) and private (``_``) names are not pipelines.
    Both store backends read their local directories with it, so they agree on what a pipeline is."""
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
                PipelineSource(child.name, "wrapper", str(child), entry_fingerprint(child, ignore), origin)  # type: ignore[arg-type]
            )
        elif child.is_file() and child.suffix in YAML_SUFFIXES:
            entries.append(PipelineSource(child.stem, "yaml", str(child), entry_fingerprint(child), origin))  # type: ignore[arg-type]
    return entries


def entry_fingerprint(path: Path, ignore: Optional[IgnoreRules] = None) -> str:
    """Cheap change detector of one entry (a folder or a YAML file): names, sizes, mtimes and inodes
    of every file (no content reads), so a poll of many pipelines costs only ``stat`` calls. It is
    per host (inodes): the Redis store compares contents across hosts with its own fingerprint."""
    digest = hashlib.blake2b(digest_size=12)
    files = [path] if path.is_file() else entry_files(path, ignore)
    for file in files:
        try:
            st = file.stat()
        except FileNotFoundError:
            continue
        digest.update(f"{file.relative_to(path.parent)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}\n".encode())
    return digest.hexdigest()


def entry_files(folder: Path, ignore: Optional[IgnoreRules] = None) -> list[Path]:
    """The files of a pipeline folder that belong to it, in a stable order: without caches
    (``__pycache__``, compiled files, hidden folders) and without what ``ignore`` (the
    ``HAYHOOKS_FILES_TO_IGNORE_PATTERNS`` rules) leaves out, so fingerprints and copies see the same set."""
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
