"""PipelineService: the one facade every front end (HTTP routes, OpenAI, MCP) uses.

It owns the flow store → loader → registry, the executor, and the worker's place in the cluster.
``sync()`` is the single reconcile path: startup loading, runtime deploys and catching up with
changes made by other workers or by hand all call it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from hayhooks.errors import InvalidInput, PipelineExists, PipelineLoadError, SyncTimeout
from hayhooks.observability.runs import counts_deploys
from hayhooks.pipelines import yaml_pipeline
from hayhooks.pipelines.cluster import Cluster
from hayhooks.pipelines.deploy_meta import DeployMeta
from hayhooks.pipelines.executor import Executor
from hayhooks.pipelines.ignore import IgnoreRules
from hayhooks.pipelines.loader import Loader, forget_module
from hayhooks.pipelines.models import LoadedPipeline, PipelineSource
from hayhooks.pipelines.names import validate_files, validate_name
from hayhooks.pipelines.registry import Registry
from hayhooks.pipelines.runs import Runner
from hayhooks.pipelines.store import PipelineStore
from hayhooks.settings import HayhooksSettings

log = logging.getLogger("hayhooks")

_GENERATION_CHECK_INTERVAL = 0.1


@dataclass
class DeployResult:
    name: str
    action: str
    generation: int
    workers: int
    lagging: list[str] = field(default_factory=list)
    saved: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"success": True, **asdict(self)}


def settle_heap() -> None:
    """Keep long-lived objects out of the cyclic garbage collector's way.

    Haystack, the server and the loaded pipelines are ~150k tracked objects that live as long as
    the process; a full collection that walks them all shows up as a 100 ms stall in request
    tails. Freezing them after each load makes collections see only per-request garbage. Unfreezing
    first lets the collection free what a reload or undeploy retired, so nothing leaks. The cost is
    one collection per change of the pipeline set, never per request.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class PipelineService:
    def __init__(self, settings: HayhooksSettings) -> None:
        self.settings = settings
        self.ignore_rules = IgnoreRules(settings.files_to_ignore_patterns)
        self.store = PipelineStore(settings.pipelines_dir, ignore=self.ignore_rules)
        allowed = [m.strip() for m in settings.yaml_allowed_modules.split(",") if m.strip()]
        self.loader = Loader(settings.show_tracebacks, allowed, settings.setup_timeout)
        self.registry = Registry(self.loader, unload=self._retire)
        self.executor = Executor(settings.resolved_thread_pool_size, settings.max_queued_runs)
        self.cluster = Cluster(self.store.workers, settings.heartbeat_interval)
        self.ready = False
        self.runner = Runner(self)
        # Set on SIGTERM: /ready answers 503 while in-flight runs finish (hayhooks.server.drain).
        self.draining = False
        self._sync_lock = threading.Lock()
        self._deploy_lock: Optional[asyncio.Lock] = None
        self._task: Optional[asyncio.Task[None]] = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.store.prepare)
        for extra in filter(None, (self.settings.additional_python_path or "").split(os.pathsep)):
            if extra not in sys.path:
                sys.path.append(str(Path(extra).resolve()))  # noqa: ASYNC240 - once, at startup
        if not await asyncio.to_thread(self.cluster.workers):
            # First process to serve this directory: deploys made with save_files=false by a
            # previous run are gone, as documented.
            await asyncio.to_thread(self.store.clear_ephemeral)
        self.cluster.beat(-1, self.registry.version, 0)
        self._deploy_lock = asyncio.Lock()
        self._task = asyncio.create_task(self._follow(), name="hayhooks-follow-store")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self.cluster.leave()
        self.executor.shutdown()

    async def wait_ready(self, timeout: float = 300.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.ready

    def sync(self) -> set[str]:
        """Reconcile the registry with the store and report this worker's state. Blocking."""
        with self._sync_lock:
            generation, snapshot = self.store.snapshot()
            changed = self.registry.reconcile(snapshot, generation)
            if changed or not self.ready:
                settle_heap()
            self.cluster.beat(self.registry.generation, self.registry.version, len(self.registry.names()))
        return changed

    async def _follow(self) -> None:
        """Keep this worker on the store's latest state: fast on deploys, slower on hand edits."""
        await asyncio.to_thread(self.sync)
        self.ready = True
        log.info("Serving %d pipeline(s) from %s", len(self.registry.names()), self.store.root)
        last_full = last_beat = time.monotonic()
        while True:
            await asyncio.sleep(_GENERATION_CHECK_INTERVAL)
            now = time.monotonic()
            try:
                if (
                    self.store.generation() != self.registry.generation
                    or now - last_full >= self.settings.poll_interval
                ):
                    await asyncio.to_thread(self.sync)
                    last_full = last_beat = now
                elif now - last_beat >= self.settings.heartbeat_interval:
                    await asyncio.to_thread(
                        self.cluster.beat,
                        self.registry.generation,
                        self.registry.version,
                        len(self.registry.names()),
                    )
                    last_beat = now
            except Exception:
                log.exception("Could not sync with the pipelines directory")

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
        validate_name(name)
        checked = {
            rel: text for rel, text in validate_files(files).items() if not self.ignore_rules.ignores(rel)
        }
        checked.update(DeployMeta(description or None, skip_mcp).as_files())
        return await self._deploy(
            name, "wrapper", lambda: self.store.stage_folder(name, checked), overwrite, save_files
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
        validate_name(name)
        if not isinstance(source_code, str) or not source_code.strip():
            raise InvalidInput("'source_code' must be a non-empty YAML text")
        try:
            data = yaml_pipeline.parse_yaml(name, source_code)
        except PipelineLoadError as exc:
            raise InvalidInput(exc.message) from exc
        if description and data.get("description") != description:
            source_code = yaml_pipeline.with_entry(source_code, "description", description)
        if skip_mcp and data.get("skip_mcp") is not True:
            source_code = yaml_pipeline.with_entry(source_code, "skip_mcp", True)
        return await self._deploy(
            name, "yaml", lambda: self.store.stage_yaml(name, source_code), overwrite, save_file
        )

    @counts_deploys("deploy")
    async def _deploy(self, name: str, kind: str, stage: Any, overwrite: bool, save: bool) -> DeployResult:
        assert self._deploy_lock is not None, "service not started"
        async with self._deploy_lock:
            existed = bool(await asyncio.to_thread(self.store.locate, name))
            if existed and not overwrite:
                raise PipelineExists(f"Pipeline '{name}' already exists; use overwrite to replace it")
            staged = await asyncio.to_thread(stage)
            # Load (and setup()) the new version before anything serves it: a failing version
            # never replaces a working one, in memory or on disk.
            try:
                candidate = await asyncio.to_thread(
                    self.loader.load,
                    PipelineSource(name, kind, str(staged), "staging"),  # type: ignore[arg-type]
                )
            except PipelineLoadError:
                await asyncio.to_thread(self.store.discard, staged)
                raise
            candidate.extra["staging_dir"] = str(staged.parent)
            try:
                generation = await asyncio.to_thread(
                    self._commit_and_adopt, candidate, staged, save, overwrite
                )
            except BaseException:
                self._retire(candidate)
                raise
            return await self._propagate(name, "redeployed" if existed else "deployed", generation, save)

    def _commit_and_adopt(self, candidate: LoadedPipeline, staged: Path, save: bool, overwrite: bool) -> int:
        """Commit to the store and serve the already set-up candidate here, so this process runs
        its ``setup()`` once. Holding the sync lock keeps the follow loop from loading it again."""
        with self._sync_lock:
            generation, source = self.store.commit(
                candidate.name, staged, ephemeral=not save, overwrite=overwrite
            )
            self.registry.adopt(dataclasses.replace(candidate, source=source))
            settle_heap()
        return generation

    def _retire(self, loaded: LoadedPipeline) -> None:
        """Forget a pipeline version's modules, and the staged files a deploy served it from."""
        forget_module(loaded)
        staging_dir = loaded.extra.get("staging_dir")
        if staging_dir:
            shutil.rmtree(staging_dir, ignore_errors=True)

    @counts_deploys("undeploy")
    async def undeploy(self, name: str) -> DeployResult:
        validate_name(name)
        assert self._deploy_lock is not None, "service not started"
        async with self._deploy_lock:
            generation = await asyncio.to_thread(self.store.remove, name)
            return await self._propagate(name, "undeployed", generation, True)

    async def _propagate(self, name: str, action: str, generation: int, saved: bool) -> DeployResult:
        await asyncio.to_thread(self.sync)
        failure = next((f for f in self.registry.failures() if f.name == name), None)
        if action != "undeployed" and failure is not None:
            raise PipelineLoadError(failure.error)
        lagging = await self.cluster.wait_for(generation, self.settings.deploy_sync_timeout)
        workers = len(await asyncio.to_thread(self.cluster.workers))
        result = DeployResult(name, action, generation, workers, [w.id for w in lagging], saved)
        if lagging:
            raise SyncTimeout(
                f"Pipeline '{name}' {action} (generation {generation}), but {len(lagging)} of {workers} workers "
                f"did not confirm within {self.settings.deploy_sync_timeout:g}s: {', '.join(result.lagging)}",
                result=result.to_dict(),
            )
        return result

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
            "worker": self.cluster.id,
            # This worker's runs: sync threads detached by a timeout still count until they end.
            **self.executor.stats(),
            "workers": [
                {
                    "id": w.id,
                    "generation": w.generation,
                    "pipelines": w.pipelines,
                    "in_sync": w.generation >= latest,
                }
                for w in workers
            ],
        }

    def pipeline_status(self, name: str) -> dict[str, Any]:
        return {"status": "Up!", "pipeline": name, **self.registry.require(name).info()}
