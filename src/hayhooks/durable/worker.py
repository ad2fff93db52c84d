"""``DurableRuntime``: one per worker process, beside the executor.

It claims due executions (and ones whose owner stopped renewing its lease) from the shared store,
runs them through the same executor as ``/run``, renews their leases, applies retries with
backoff, and on graceful shutdown hands unfinished ones back so another worker resumes them at
once. Every worker of every instance runs one; the store's leases and fencing tokens decide who
owns what.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from hayhooks.durable.context import DurableContext, bind, unbind
from hayhooks.durable.errors import (
    ExecutionCancelled,
    ExecutionSuspended,
    LeaseLost,
    RetryExecution,
)
from hayhooks.durable.models import Execution
from hayhooks.durable.spec import DurableSpec, durable_spec
from hayhooks.durable.sqlite_store import SQLiteExecutionStore
from hayhooks.durable.store import ExecutionStore, Limits
from hayhooks.errors import HayhooksError, PipelineLoadError
from hayhooks.pipelines.models import LoadedPipeline, PipelineSource
from hayhooks.pipelines.signature import jsonable
from hayhooks.settings import HayhooksSettings

log = logging.getLogger("hayhooks.durable")


def make_store(settings: HayhooksSettings, state_dir: Path) -> ExecutionStore:
    limits = Limits(
        max_payload_bytes=settings.durable_max_payload_bytes,
        max_progress_events=settings.durable_max_progress_events,
        max_progress_event_bytes=settings.durable_max_progress_event_bytes,
        max_stream_chunks=settings.durable_max_stream_chunks,
        max_stream_chunk_bytes=settings.durable_max_stream_chunk_bytes,
        max_nonterminal_executions=settings.durable_max_nonterminal_executions,
        terminal_ttl_seconds=settings.durable_terminal_ttl_seconds,
        lease_commit_safety_ms=settings.durable_lease_commit_safety_ms,
    )
    if settings.durable_store == "redis":
        from hayhooks.durable.redis_store import RedisExecutionStore

        return RedisExecutionStore(settings.durable_redis_url, settings.durable_redis_key_prefix, limits)
    return SQLiteExecutionStore(settings.durable_sqlite_path or state_dir / "durable.sqlite3", limits)


def backoff(retry: int, base: float, cap: float) -> float:
    """Delay before application retry number ``retry`` (1-based): base, 2*base, 4*base, ... <= cap."""
    return float(min(cap, base * (2 ** max(0, retry - 1))))


class DurableRuntime:
    def __init__(self, service: Any, settings: HayhooksSettings) -> None:
        self.service = service
        self.settings = settings
        self.worker_id = f"{service.cluster.id}-{uuid.uuid4().hex[:6]}"
        self.revisions_dir = service.store.meta / "durable" / "revisions"
        self._store: Optional[ExecutionStore] = None
        self.lease_seconds = settings.durable_lease_duration_ms / 1000.0
        # Counters other modules (metrics) read: claimed, takeovers, completed, failed, canceled,
        # suspended, retried, released, lease_lost.
        self.metrics: Counter[str] = Counter()
        self._running: dict[str, tuple[DurableContext, asyncio.Task[None]]] = {}
        self._kept: set[tuple[str, str]] = set()
        self._old_revisions: dict[tuple[str, str], LoadedPipeline] = {}
        self._wake: Optional[asyncio.Event] = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_claim_error = -1e9

    @property
    def store(self) -> ExecutionStore:
        if self._store is None:
            self._store = make_store(self.settings, self.service.store.meta)
        return self._store

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        # On the loop, before the service's first sync starts its loading thread: building the
        # store imports modules, and imports racing a wrapper import's walk over sys.modules
        # break the load ("dictionary changed size during iteration").
        _ = self.store
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="hayhooks-durable-claim"),
            asyncio.create_task(self._lease_loop(), name="hayhooks-durable-leases"),
            asyncio.create_task(self._maintenance_loop(), name="hayhooks-durable-maintenance"),
        ]

    async def stop(self) -> None:
        """Stop claiming, give running executions the grace period, then release the rest."""
        self._stopping = True
        self.wake()
        if self._tasks:
            # Let a claim in flight finish (it is released below if it got one), rather than
            # cancelling it after the store granted it and leaving it leased to nobody.
            await asyncio.wait(self._tasks[:1], timeout=10)
        if self._running:
            pending = [task for _, task in self._running.values()]
            await asyncio.wait(pending, timeout=self.settings.durable_shutdown_grace_seconds)
        for execution_id, (context, task) in list(self._running.items()):
            context.lease_lost = True  # its next write or step boundary stops it
            if self.settings.durable_release_running_on_shutdown:
                try:
                    await asyncio.to_thread(self.store.release, execution_id, context.fence)
                    self.metrics["released"] += 1
                    log.info("Released durable execution %s for another worker", execution_id)
                except LeaseLost:
                    pass
                except Exception:
                    log.exception("Could not release durable execution %s", execution_id)
            task.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._store is not None:
            self._store.close()

    def wake(self) -> None:
        """Look for work now (after a submit or resume in this process)."""
        if self._wake is not None:
            self._wake.set()

    # -- submissions (routes) -----------------------------------------------------------------------
    async def submit(
        self, pipeline: LoadedPipeline, spec: DurableSpec, request: Any, idempotency_key: Optional[str]
    ) -> tuple[Execution, bool]:
        await asyncio.to_thread(self._keep_revision, pipeline, spec.revision)
        record, created = await asyncio.to_thread(
            self.store.submit, pipeline.name, spec.revision, request, idempotency_key
        )
        if created:
            self.wake()
        return record, created

    def _revision_folder(self, name: str, revision: str) -> Path:
        digest = hashlib.sha256(revision.encode()).hexdigest()[:16]
        return self.revisions_dir / name / digest / name

    def _keep_revision(self, pipeline: LoadedPipeline, revision: str) -> None:
        """Copy the code an execution starts on, so it can finish on it after a redeploy."""
        if (pipeline.name, revision) in self._kept or pipeline.kind != "wrapper":
            return
        target = self._revision_folder(pipeline.name, revision)
        if not target.is_dir():
            tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
            shutil.copytree(pipeline.source.path, tmp, ignore=shutil.ignore_patterns("__pycache__"))
            try:
                os.replace(tmp, target)
            except OSError:  # another worker kept it first
                shutil.rmtree(tmp, ignore_errors=True)
        self._kept.add((pipeline.name, revision))

    # -- claiming -----------------------------------------------------------------------------------
    def _durable_names(self) -> list[str]:
        return [p.name for p in self.service.registry.all() if "durable" in p.capabilities]

    async def _claim_loop(self) -> None:
        assert self._wake is not None
        limit = self.settings.durable_worker_concurrency
        while not self._stopping:
            claimed = None
            if len(self._running) < limit:
                try:
                    claimed = await asyncio.to_thread(
                        self.store.claim,
                        self.worker_id,
                        self._durable_names(),
                        self.lease_seconds,
                        self.settings.durable_max_run_attempts,
                        frozenset(self._running),
                    )
                except Exception as exc:
                    now = time.monotonic()
                    if now - self._last_claim_error >= 30:  # a store outage logs twice a minute, not per poll
                        self._last_claim_error = now
                        log.warning("Could not claim durable executions: %s: %s", type(exc).__name__, exc)
            if claimed is not None and self._stopping:
                await asyncio.to_thread(self._release_quietly, claimed)
                return
            if claimed is not None:
                self.metrics["claimed"] += 1
                if claimed.claimed_by_takeover:
                    self.metrics["takeovers"] += 1
                task = asyncio.create_task(
                    self._execute(claimed), name=f"hayhooks-durable-{claimed.execution_id}"
                )
                context = DurableContext(self.store, claimed)
                self._running[claimed.execution_id] = (context, task)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.durable_poll_interval_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def _release_quietly(self, record: Execution) -> None:
        try:
            self.store.release(record.execution_id, record.fence)
        except Exception:
            log.exception("Could not release durable execution %s", record.execution_id)

    async def _lease_loop(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            for execution_id, (context, _) in list(self._running.items()):
                if context.lease_lost:
                    continue
                try:
                    record = await asyncio.to_thread(
                        self.store.heartbeat, execution_id, context.fence, self.lease_seconds
                    )
                    context.cancel_requested = context.cancel_requested or record.cancel_requested
                except LeaseLost:
                    context.lease_lost = True
                    self.metrics["lease_lost"] += 1
                    log.warning("Lost the lease of durable execution %s to another worker", execution_id)
                except Exception:
                    log.exception("Could not renew the lease of durable execution %s", execution_id)

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.store.purge)
            except Exception:
                log.exception("Durable store maintenance failed")
            await asyncio.sleep(self.settings.durable_maintenance_interval_seconds)

    # -- running one execution ------------------------------------------------------------------------
    async def _resolve(self, record: Execution) -> LoadedPipeline:
        """The loaded code of the execution's revision: the served one, or the kept copy."""
        loaded = self.service.registry.get(record.pipeline)
        if (
            loaded is not None
            and "durable" in loaded.capabilities
            and durable_spec(loaded).revision == record.revision
        ):
            return loaded
        key = (record.pipeline, record.revision)
        if key in self._old_revisions:
            return self._old_revisions[key]
        folder = self._revision_folder(record.pipeline, record.revision)
        current = (
            durable_spec(loaded).revision if loaded is not None and "durable" in loaded.capabilities else None
        )
        if not folder.is_dir():
            raise PipelineLoadError(
                f"Revision '{record.revision}' of pipeline '{record.pipeline}' is not available here "
                f"(serving revision {current!r}); its code was not kept in {folder.parent}"
            )
        digest = hashlib.sha256(record.revision.encode()).hexdigest()[:16]
        source = PipelineSource(record.pipeline, "wrapper", str(folder), f"durable-{digest}")
        old = await asyncio.to_thread(self.service.loader.load, source)
        if durable_spec(old).revision != record.revision:
            raise PipelineLoadError(
                f"The kept code of pipeline '{record.pipeline}' declares revision "
                f"{durable_spec(old).revision!r}, not {record.revision!r}"
            )
        self._old_revisions[key] = old
        return old

    async def _execute(self, record: Execution) -> None:
        execution_id, fence = record.execution_id, record.fence
        context: Optional[DurableContext] = None
        try:
            if record.cancel_requested:
                await asyncio.to_thread(self.store.cancelled, execution_id, fence)
                self.metrics["canceled"] += 1
                return
            try:
                pipeline = await self._resolve(record)
                spec = durable_spec(pipeline)
                request = spec.request_model.model_validate(record.request)
            except (HayhooksError, ValueError) as exc:
                await asyncio.to_thread(self.store.fail, execution_id, fence, _error(exc))
                self.metrics["failed"] += 1
                return
            context = DurableContext(self.store, record, pipeline.wrapper, spec.resume_model)
            self._running[execution_id] = (context, self._running[execution_id][1])
            method = getattr(pipeline.wrapper, spec.method_name)
            ctx: DurableContext = context
            if spec.is_async:
                token = bind(ctx)
                try:
                    result = await method(ctx, request)
                finally:
                    unbind(token)
            else:

                def call() -> Any:
                    token = bind(ctx)
                    try:
                        return method(ctx, request)
                    finally:
                        unbind(token)

                result = await self.service.executor.run_sync(call)
            if context.lease_lost:
                raise LeaseLost(f"Execution '{execution_id}' finished after losing its lease")
            await asyncio.to_thread(self.store.complete, execution_id, fence, jsonable(result))
            self.metrics["completed"] += 1
        except ExecutionSuspended:
            self.metrics["suspended"] += 1
        except ExecutionCancelled:
            await self._settle(self.store.cancelled, execution_id, fence)
            self.metrics["canceled"] += 1
        except LeaseLost as exc:
            self.metrics["lease_lost"] += 1
            log.info("%s", exc)
        except RetryExecution as exc:
            retries = record.application_retries + 1
            if retries > self.settings.durable_max_application_retries:
                await self._settle(self.store.fail, execution_id, fence, _error(exc, retries_exhausted=True))
                self.metrics["failed"] += 1
            else:
                delay = exc.delay
                if delay is None:
                    delay = backoff(
                        retries,
                        self.settings.durable_retry_base_delay_seconds,
                        self.settings.durable_retry_max_delay_seconds,
                    )
                await self._settle(self.store.retry, execution_id, fence, _error(exc), delay)
                self.metrics["retried"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Durable execution %s failed: %s: %s", execution_id, type(exc).__name__, exc)
            await self._settle(self.store.fail, execution_id, fence, _error(exc))
            self.metrics["failed"] += 1
        finally:
            self._running.pop(execution_id, None)
            self.wake()

    async def _settle(self, write: Any, *args: Any) -> None:
        try:
            await asyncio.to_thread(write, *args)
        except LeaseLost:
            self.metrics["lease_lost"] += 1

    # -- status ---------------------------------------------------------------------------------------
    def pending_reason(self, record: Execution, now: Optional[float] = None) -> Optional[str]:
        """Why an unfinished execution is not running right now, when it is not for lack of a free
        worker: its pipeline is not served here (undeployed, or no durable method any more), so no
        worker claims it until a pipeline of that name is deployed again."""
        now = time.time() if now is None else now
        abandoned = record.status == "running" and record.lease_expires_at < now
        if record.status != "queued" and not abandoned:
            return None
        if record.pipeline not in self._durable_names():
            what = "is queued" if not abandoned else "lost its worker"
            return (
                f"The execution {what} and pipeline '{record.pipeline}' is not deployed with a durable "
                "method on this server: it waits, and runs (from its last checkpoint, on the code of its "
                "revision) once a pipeline of that name is deployed again; it can be canceled meanwhile"
            )
        return None

    def status(self) -> dict[str, Any]:
        try:
            counts: dict[str, int] | None = self.store.counts()
            served = set(self._durable_names())
            orphaned = {n: c for n, c in self.store.queued_counts().items() if n not in served}
        except Exception:
            counts, orphaned = None, {}
        return {
            "store": self.store.backend,
            "executions": counts,
            # Queued executions of pipelines not deployed here: they wait for a redeploy.
            "waiting_for_deploy": orphaned,
            "worker": {
                "id": self.worker_id,
                "running": sorted(self._running),
                "concurrency": self.settings.durable_worker_concurrency,
                "counters": dict(self.metrics),
            },
            "at": time.time(),
        }


def _error(exc: BaseException, retries_exhausted: bool = False) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    component = getattr(exc, "component_name", None)
    if component:
        error["component"] = component
    if retries_exhausted:
        error["message"] += " (durable_max_application_retries reached)"
    return error
