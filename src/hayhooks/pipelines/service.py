"""PipelineService: the one facade every front end (HTTP routes, OpenAI, MCP) uses.

It owns the flow store → loader → registry, the executor, and the worker's place in the cluster.
``sync()`` is the single reconcile path: startup loading, runtime deploys and catching up with
changes made by other workers or by hand all call it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar

from hayhooks.errors import (
    ChangeSuperseded,
    HayhooksError,
    InvalidInput,
    PipelineExists,
    PipelineLoadError,
    PipelineNotFound,
    StoreUnavailable,
    SyncTimeout,
)
from hayhooks.observability.runs import counts_deploys
from hayhooks.pipelines import yaml_pipeline
from hayhooks.pipelines.backends import open_store
from hayhooks.pipelines.cluster import Heartbeat
from hayhooks.pipelines.deploy_meta import DeployMeta
from hayhooks.pipelines.executor import Executor
from hayhooks.pipelines.follow import Follower
from hayhooks.pipelines.heap import HeapSettler, tune_collector
from hayhooks.pipelines.ignore import IgnoreRules
from hayhooks.pipelines.loader import Loader, drop_module
from hayhooks.pipelines.models import LoadedPipeline, PipelineSource
from hayhooks.pipelines.names import validate_files, validate_name
from hayhooks.pipelines.registry import Registry
from hayhooks.pipelines.runs import Runner
from hayhooks.pipelines.store import PipelineStore
from hayhooks.settings import HayhooksSettings

log = logging.getLogger("hayhooks")
# One line per deploy, overwrite, rollback, undeploy, hand edit and failed attempt.
audit = logging.getLogger("hayhooks.audit")

T = TypeVar("T")


@dataclass
class DeployResult:
    name: str
    action: str
    generation: int
    workers: int
    lagging: list[str] = field(default_factory=list)
    saved: bool = True
    version: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        data = {"success": True, **asdict(self)}
        if self.version is None:
            data.pop("version")
        return data


def action_word(action: str) -> str:
    """The past tense the API has always answered with."""
    return {
        "deploy": "deployed",
        "overwrite": "redeployed",
        "undeploy": "undeployed",
        "rollback": "rolled back",
    }[action]


async def _store_io(fn: Callable[[], T]) -> T:
    """Run a store write off the loop; a directory we cannot write is a 503 that names no path."""
    try:
        return await asyncio.to_thread(fn)
    except HayhooksError:
        raise
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        log.error("Pipelines directory not writable: %s", exc)
        raise StoreUnavailable(f"The pipelines directory cannot be written right now ({reason})") from exc


def _release_version(store: PipelineStore, version_dir: Path, module: str) -> None:
    """The last reference to a retired version is gone: drop its modules and its folder."""
    drop_module(module)
    store.release(version_dir)


class PipelineService:
    def __init__(self, settings: HayhooksSettings) -> None:
        self.settings = settings
        self.ignore_rules = IgnoreRules(settings.files_to_ignore_patterns)
        self.store = open_store(settings, self.ignore_rules)
        allowed = [m.strip() for m in settings.yaml_allowed_modules.split(",") if m.strip()]
        self.loader = Loader(settings.show_tracebacks, allowed, settings.setup_timeout)
        self.registry = Registry(self._load_version, unload=self._retire)
        self.executor = Executor(settings.resolved_thread_pool_size, settings.max_queued_runs)
        self.cluster = self.store.make_cluster(settings.heartbeat_interval, on_dead=self.store.forget_worker)
        self.heartbeat = Heartbeat(self.cluster, self._heartbeat_state, on_tick=self._housekeeping)
        self.follower = Follower(self)
        self.ready = False
        self.runner = Runner(self)
        # Set on SIGTERM: /ready answers 503 while in-flight runs finish (hayhooks.server.drain).
        self.draining = False
        self._ready_event: Optional[asyncio.Event] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sync_lock = threading.Lock()  # held for a snapshot and a swap, never across a load
        self._name_locks: dict[str, asyncio.Lock] = {}
        self._last_sweep = 0.0
        self.heap = HeapSettler()
        self.registry.add_listener(self._on_change)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready_event = asyncio.Event()
        tune_collector(self.settings.gc_threshold)
        await asyncio.to_thread(self.store.prepare)
        self.cluster.dir = self.store.workers  # moved if the directory turned out read-only
        for extra in filter(None, (self.settings.additional_python_path or "").split(os.pathsep)):
            if extra not in sys.path:
                sys.path.append(str(Path(extra).resolve()))  # noqa: ASYNC240 - once, at startup
        await asyncio.to_thread(self._join)
        self.heartbeat.start()
        self.follower.start()

    def _join(self) -> None:
        """Announce this worker (a restarting worker counts as live from now on); the first one
        of the directory forgets the previous run's save_files=false deploys."""

        def alone() -> bool:
            others = [w for w in self.cluster.workers() if w.id != self.cluster.id]
            self.cluster.beat(-1, self.registry.version, 0, loading=True)
            return not others

        if self.store.join(self.cluster.id, alone):
            log.info("First worker on this pipelines directory: unsaved deploys of a previous run dropped")

    async def stop(self) -> None:
        await asyncio.to_thread(self.follower.stop)
        await asyncio.to_thread(self.heartbeat.stop)
        await asyncio.to_thread(self.cluster.leave)
        self.executor.shutdown()
        await asyncio.to_thread(self.heap.stop)
        await asyncio.to_thread(self.store.forget_worker, self.cluster.id)

    async def wait_ready(self, timeout: float = 300.0) -> bool:
        """Readiness is an event: set once every pipeline of the first snapshot has settled."""
        if self.ready or self._ready_event is None:
            return self.ready
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.ready

    def _mark_ready(self) -> None:
        if self.ready:
            return
        self.ready = True
        log.info("Serving %d pipeline(s) from %s", len(self.registry.names()), self.store.root)
        # The heartbeat first (on this follower thread): whoever sees this worker ready (/ready,
        # wait_ready) then finds it settled and in sync in /status, not its pre-load heartbeat.
        self.heartbeat.beat_now()
        if self._loop is not None and self._ready_event is not None:
            try:
                self._loop.call_soon_threadsafe(self._ready_event.set)
            except RuntimeError:  # the loop is closed: shutting down
                pass

    def sync(self, reason: str = "") -> set[str]:
        """Reconcile the registry with the store; loads start in the background. Blocking, short."""
        with self._sync_lock:
            generation, snapshot = self.store.snapshot(floor=max(self.registry.seen, 0))
            before = self.registry.wanted()
            hand_edit = generation == self.registry.seen and self.ready
            changed = self.registry.reconcile(snapshot, generation, wait=False)
        if hand_edit:  # the same generation, other files: someone edited the directory
            for src in snapshot:
                if before.get(src.name) != src.fingerprint:
                    self._audit(src.name, "hand-edit", generation, "loading")
            for name in set(before) - {src.name for src in snapshot}:
                self._audit(name, "hand-edit", generation, "removed")
        self.heartbeat.beat_now()  # a deploy waiting for this worker sees it without a poll round
        return changed

    def _heartbeat_state(self) -> dict[str, Any]:
        """What this worker serves; read by the heartbeat thread without any lock."""
        return {
            "generation": self.registry.generation,
            "version": self.registry.version,
            "pipelines": len(self.registry.names()),
            "seen": self.registry.seen,
            "loading": not self.ready,
            "served": self.registry.served(),
            "failed": self.registry.failed(),
        }

    def _housekeeping(self) -> None:
        """On the heartbeat thread: prune dead workers (their version folders go with them) and
        sweep leftovers of killed commits now and then."""
        self.cluster.workers()
        now = time.monotonic()
        if now - self._last_sweep > 60:
            self._last_sweep = now
            self.store.sweep_staging()

    def _on_change(self, changed: set[str]) -> None:
        # Tell the deploy that waits for this worker first; tidy the heap later, off its path.
        self.heartbeat.beat_now()
        self.heap.poke()

    # -- loading one version --------------------------------------------------------------------
    def _load_version(self, source: PipelineSource) -> LoadedPipeline:
        """Load a private immutable copy of a store entry: running requests keep their version's
        files however the store changes, and the copy goes when the version's last user does."""
        copy = self.store.materialise(source, self.cluster.id)
        try:
            loaded = self.loader.load(dataclasses.replace(source, path=str(copy)))
        except BaseException:
            self.store.release(copy)
            raise
        loaded = dataclasses.replace(loaded, source=source)
        self._own(loaded, copy)
        return loaded

    def _own(self, loaded: LoadedPipeline, version_dir: Path) -> None:
        loaded.extra["version_dir"] = str(version_dir)
        module = type(loaded.wrapper).__module__
        weakref.finalize(loaded.wrapper, _release_version, self.store, version_dir, module)

    def _retire(self, loaded: LoadedPipeline) -> None:
        """A version stops taking new requests. Its modules and folder stay until its last running
        request ends (the wrapper's finaliser releases them), so that request finishes intact."""
        loaded.extra["retired"] = True

    # -- deploys -----------------------------------------------------------------------------------
    async def deploy_files(
        self,
        name: str,
        files: dict[str, str],
        overwrite: bool = False,
        save_files: bool = True,
        description: Optional[str] = None,
        skip_mcp: bool = False,
    ) -> DeployResult:
        try:
            validate_name(name)
            checked = {
                rel: text for rel, text in validate_files(files).items() if not self.ignore_rules.ignores(rel)
            }
        except HayhooksError as exc:
            self._audit(name, "deploy", None, "refused", error=exc.message)
            raise
        checked.update(DeployMeta(description or None, skip_mcp).as_files())
        worker = self.cluster.id
        return await self._deploy(
            name, "wrapper", lambda: self.store.stage_folder(name, checked, worker), overwrite, save_files
        )

    async def deploy_yaml(
        self,
        name: str,
        source_code: str,
        overwrite: bool = False,
        description: Optional[str] = None,
        save_file: bool = True,
        skip_mcp: bool = False,
    ) -> DeployResult:
        try:
            validate_name(name)
            if not isinstance(source_code, str) or not source_code.strip():
                raise InvalidInput("'source_code' must be a non-empty YAML text")
            try:
                data = yaml_pipeline.parse_yaml(name, source_code)
            except PipelineLoadError as exc:
                raise InvalidInput(exc.message) from exc
        except HayhooksError as exc:
            self._audit(name, "deploy", None, "refused", error=exc.message)
            raise
        if description and data.get("description") != description:
            source_code = yaml_pipeline.with_entry(source_code, "description", description)
        if skip_mcp and data.get("skip_mcp") is not True:
            source_code = yaml_pipeline.with_entry(source_code, "skip_mcp", True)
        worker = self.cluster.id
        return await self._deploy(
            name, "yaml", lambda: self.store.stage_yaml(name, source_code, worker), overwrite, save_file
        )

    def _lock_for(self, name: str) -> asyncio.Lock:
        """Changes to one pipeline are serialised; different pipelines never wait for each other."""
        return self._name_locks.setdefault(name, asyncio.Lock())

    def _writable(self, name: str, action: str) -> None:
        if self.store.read_only:
            self._audit(name, action, None, "refused", error="pipelines directory is read-only")
            raise StoreUnavailable("The pipelines directory is read-only on this server: deploys are refused")

    @counts_deploys("deploy")
    async def _deploy(self, name: str, kind: str, stage: Any, overwrite: bool, save: bool) -> DeployResult:
        self._writable(name, "deploy")
        async with self._lock_for(name):
            existed = bool(await asyncio.to_thread(self.store.locate, name))
            action = "overwrite" if existed else "deploy"
            if existed and not overwrite:
                self._audit(name, action, None, "refused", error="already exists")
                raise PipelineExists(f"Pipeline '{name}' already exists; use overwrite to replace it")
            before = await asyncio.to_thread(self._newest_archived, name)  # the store may be down: 503
            staged = await _store_io(stage)
            # Load (and setup()) the new version before anything serves it: a failing version
            # never replaces a working one, in memory or on disk.
            try:
                candidate = await asyncio.to_thread(
                    self.loader.load,
                    PipelineSource(name, kind, str(staged), "staging"),  # type: ignore[arg-type]
                )
            except BaseException as exc:
                await asyncio.to_thread(self.store.discard, staged)
                self._audit(name, action, None, "failed", error=str(exc))
                raise
            try:
                generation, source = await _store_io(
                    lambda: self._commit_and_adopt(candidate, staged, save, overwrite)
                )
            except BaseException as exc:
                self._audit(name, action, None, "failed", error=str(exc))
                drop_module(type(candidate.wrapper).__module__)
                await asyncio.to_thread(self.store.discard, staged)
                raise
            await asyncio.to_thread(self.sync)
            return await self._confirm(
                name, action, generation, source.fingerprint, save, revert=(existed, before, not save)
            )

    def _commit_and_adopt(
        self, candidate: LoadedPipeline, staged: Path, save: bool, overwrite: bool
    ) -> tuple[int, PipelineSource]:
        """Commit to the store and serve the already set-up candidate here, so this process runs
        its ``setup()`` once. The sync lock (held for moments only) keeps a snapshot taken before
        the commit from being applied after it."""
        with self._sync_lock:
            generation, source = self.store.commit(
                candidate.name, staged, ephemeral=not save, overwrite=overwrite
            )
            loaded = dataclasses.replace(candidate, source=source)
            self._own(loaded, staged)
            self.registry.adopt(loaded)
        return generation, source

    def _newest_archived(self, name: str) -> Optional[str]:
        archived = [v for v in self.store.history(name) if not v["current"]]
        return archived[0]["version"] if archived else None

    @counts_deploys("undeploy")
    async def undeploy(self, name: str) -> DeployResult:
        validate_name(name)
        self._writable(name, "undeploy")
        async with self._lock_for(name):
            try:
                generation = await _store_io(lambda: self.store.remove(name))
            except HayhooksError as exc:
                self._audit(name, "undeploy", None, "failed", error=exc.message)
                raise
            await asyncio.to_thread(self.sync)
            return await self._confirm(name, "undeploy", generation, None, True, revert=None)

    @counts_deploys("rollback")
    async def rollback(self, name: str, version: Optional[str] = None) -> DeployResult:
        """Deploy an archived version again, with the same guarantee as a deploy."""
        validate_name(name)
        self._writable(name, "rollback")
        async with self._lock_for(name):
            existed = bool(await asyncio.to_thread(self.store.locate, name))
            before = await asyncio.to_thread(self._newest_archived, name)
            try:
                generation, source, restored = await _store_io(lambda: self.store.restore(name, version))
            except HayhooksError as exc:
                self._audit(name, "rollback", None, "failed", error=exc.message)
                raise
            await asyncio.to_thread(self.sync)
            result = await self._confirm(
                name,
                "rollback",
                generation,
                source.fingerprint,
                source.origin == "saved",
                revert=(existed, before, source.origin == "ephemeral"),
                detail=f"to={restored}",
            )
            result.version = restored
            return result

    def history(self, name: str) -> list[dict[str, Any]]:
        validate_name(name)
        versions = self.store.history(name)
        if not versions:
            raise PipelineNotFound(f"Pipeline '{name}' has no deployed or archived version")
        return versions

    async def _confirm(
        self,
        name: str,
        action: str,
        generation: int,
        fingerprint: Optional[str],
        saved: bool,
        revert: Optional[tuple[bool, Optional[str], bool]],
        detail: str = "",
    ) -> DeployResult:
        """Wait until every live worker serves the change. If one failed to load it, put the
        previous state back everywhere and answer 422; if one did not answer, 504."""
        timeout = self.settings.deploy_sync_timeout
        outcome = await self.cluster.wait_for(generation, timeout, name, fingerprint)
        ids = [w.id for w in outcome.workers]
        if outcome.superseded:  # never revert: that would undo the later change
            later = max(w.generation for w in outcome.superseded)
            self._audit(name, action, generation, "superseded", ids, f"by generation {later}")
            raise ChangeSuperseded(
                f"Pipeline '{name}' was changed again (generation {later}) before every worker served "
                f"this {action} (generation {generation}); the later change is served"
            )
        if outcome.failed:
            worker, error = outcome.failed[0]
            reverted = await self._revert(name, revert, timeout)
            self._audit(name, action, generation, "failed", ids, f"on {worker.id}: {error}; {reverted}")
            raise PipelineLoadError(
                f"Pipeline '{name}' failed to load on worker {worker.id}: {error} ({reverted})",
                workers=[w.id for w, _ in outcome.failed],
            )
        result = DeployResult(
            name,
            action_word(action),
            generation,
            len(outcome.workers),
            [w.id for w in outcome.lagging],
            saved,
        )
        if outcome.lagging:
            self._audit(name, action, generation, "timeout", ids, f"lagging: {', '.join(result.lagging)}")
            raise SyncTimeout(
                f"Pipeline '{name}' {result.action} (generation {generation}), but {len(outcome.lagging)} of "
                f"{len(outcome.workers)} workers did not confirm within {timeout:g}s: {', '.join(result.lagging)}",
                result=result.to_dict(),
            )
        self._audit(name, action, generation, "ok", ids, detail)
        return result

    async def _revert(
        self, name: str, revert: Optional[tuple[bool, Optional[str], bool]], timeout: float
    ) -> str:
        """Put back what a failed change replaced, and wait (bounded) for every worker to serve it."""
        if revert is None:
            return "nothing to revert"
        existed, newest_before, ephemeral = revert

        def undo() -> tuple[int, Optional[str]]:
            newest_now = self._newest_archived(name)
            if newest_now is not None and newest_now != newest_before:
                generation, source, _ = self.store.restore(name, newest_now)
                return generation, source.fingerprint
            if existed and ephemeral:  # an ephemeral overwrite of a saved version archived nothing
                return self.store.remove_ephemeral(name), "saved"
            return self.store.remove(name, action="reverted"), None

        try:
            generation, fingerprint = await asyncio.to_thread(undo)
        except Exception as exc:
            log.exception("Could not revert pipeline '%s'", name)
            return f"revert failed: {type(exc).__name__}"
        await asyncio.to_thread(self.sync)
        if fingerprint == "saved":
            return "previous version restored" if existed else "removed"
        outcome = await self.cluster.wait_for(generation, timeout, name, fingerprint)
        state = "previous version restored" if fingerprint else "removed again"
        return (
            state
            if not outcome.lagging
            else f"{state}, not yet confirmed by {len(outcome.lagging)} worker(s)"
        )

    def _audit(
        self,
        name: str,
        action: str,
        generation: Optional[int],
        outcome: str,
        workers: Optional[list[str]] = None,
        error: str = "",
    ) -> None:
        audit.info(
            "pipeline=%r action=%s generation=%s outcome=%s workers=%s%s",
            name,
            action,
            "-" if generation is None else generation,
            outcome,
            ",".join(workers or [self.cluster.id]),
            f" error={error!r}" if error else "",
        )

    # -- runs (runtime) ------------------------------------------------------------------------------
    async def run(
        self,
        name: str,
        capability: str = "run",
        *,
        surface: str,
        kwargs: Optional[dict[str, Any]] = None,
        disconnected: Optional[Callable[[], Awaitable[Any]]] = None,
    ) -> Any:
        """The only way a surface runs a pipeline (``surface``: "run", "openai", "mcp", ...).

        Owns lookup, capability check, admission, timeout and cancellation (``disconnected``: an
        awaitable factory that returns once the client is gone); raises only HayhooksErrors, logged
        once. Returns the value, or a ``RunStream`` (possibly inside an ``SSEStream``) to render.
        See ``hayhooks.pipelines.runs``.
        """
        return await self.runner.run(
            name, capability, surface=surface, kwargs=kwargs, disconnected=disconnected
        )

    # -- status -------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        workers = self.cluster.workers()
        generation = self.registry.generation
        latest = self.store.generation()  # in sync means serving the store's latest change
        return {
            "status": "Up!",
            "pipelines": self.registry.names(),
            "ready": self.ready,
            "generation": generation,
            "details": [p.info() for p in self.registry.all()],
            "failed": [f.info() for f in self.registry.failures()],
            "loading": self.registry.loading(),
            "worker": self.cluster.id,
            # This worker's runs: sync threads detached by a timeout still count until they end.
            **self.executor.stats(),
            "workers": [
                {
                    "id": w.id,
                    "generation": w.generation,
                    "pipelines": w.pipelines,
                    "in_sync": w.generation >= latest,
                    "ready": not w.loading,
                }
                for w in workers
            ],
        }

    def pipeline_status(self, name: str) -> dict[str, Any]:
        return {"status": "Up!", "pipeline": name, **self.registry.require(name).info()}
