"""The in-process map name → LoadedPipeline.

Its only mutation is ``reconcile``: given a store snapshot it loads what is new or changed, drops
what is gone, and keeps a pipeline whose new version fails to load serving its previous version.
Startup loading, runtime deploys and workers catching up on each other's deploys all use it.

Each pipeline loads in a thread of its own, and no lock is held while it loads: a slow or hung
``setup()`` delays only that pipeline, while every other one is served as soon as it is ready and
other reconciles, deploys and ``/status`` go on. Readers never lock: the map is replaced, not
mutated, so a lookup sees either the old or the new set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Optional

from hayhooks.errors import PipelineNotFound
from hayhooks.logger import log
from hayhooks.pipelines.models import LoadedPipeline, LoadFailure, PipelineSource

Loader = Callable[[PipelineSource], LoadedPipeline]
Listener = Callable[[set[str]], None]


class Registry:
    def __init__(self, loader: Loader, unload: Callable[[LoadedPipeline], None] | None = None) -> None:
        self._loader = loader
        self._unload = unload
        self._pipelines: dict[str, LoadedPipeline] = {}
        self._failures: dict[str, LoadFailure] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # guards the maps for a moment, never across a load
        self._wanted: dict[str, str] = {}  # name -> fingerprint the latest snapshot asks for
        self._inflight: dict[str, str] = {}  # name -> fingerprint being loaded right now
        self._settled = threading.Condition(self._lock)
        self.version = 0  # bumps on every change of the serving set in this process
        self.seen = -1  # newest store generation whose snapshot was applied
        self.generation = -1  # newest store generation whose every entry is settled

    # -- reading -------------------------------------------------------------------------------
    def get(self, name: str) -> LoadedPipeline | None:
        return self._pipelines.get(name)

    def require(self, name: str) -> LoadedPipeline:
        pipeline = self._pipelines.get(name)
        if pipeline is None:
            raise PipelineNotFound(f"Pipeline '{name}' not found")
        return pipeline

    def all(self) -> list[LoadedPipeline]:
        return [self._pipelines[n] for n in sorted(self._pipelines)]

    def names(self) -> list[str]:
        return sorted(self._pipelines)

    def failures(self) -> list[LoadFailure]:
        return [self._failures[n] for n in sorted(self._failures)]

    def loading(self) -> list[str]:
        return sorted(self._inflight)

    def served(self) -> dict[str, str]:
        """Name -> fingerprint of what this process serves (for heartbeats)."""
        return {name: p.source.fingerprint for name, p in self._pipelines.items()}

    def wanted(self) -> dict[str, str]:
        """Name -> fingerprint the last applied snapshot asked for (loaded, failed or loading)."""
        return dict(self._wanted)

    def failed(self) -> dict[str, list[str]]:
        return {name: [f.source.fingerprint, f.error] for name, f in self._failures.items()}

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- the one mutation ----------------------------------------------------------------------
    def reconcile(self, snapshot: Iterable[PipelineSource], generation: int, wait: bool = True) -> set[str]:
        """Converge on ``snapshot``; return the names whose serving state changed.

        Removals apply at once; loads run in threads of their own. With ``wait=False`` the call
        returns as soon as they are started (each pipeline is served the moment it is loaded).
        """
        with self._lock:
            wanted = {src.name: src for src in snapshot}
            self._wanted = {name: src.fingerprint for name, src in wanted.items()}
            self.seen = max(self.seen, generation)
            current = dict(self._pipelines)
            failures = dict(self._failures)
            changed: set[str] = set()
            retired: list[LoadedPipeline] = []
            for name in list(current) + list(failures):
                if name not in wanted:
                    old = current.pop(name, None)
                    if old is not None:
                        changed.add(name)
                        retired.append(old)
                        log.info("Pipeline '%s' removed", name)
                    failures.pop(name, None)
            jobs: list[PipelineSource] = []
            for name, src in wanted.items():
                have = current.get(name)
                failed = failures.get(name)
                if have is not None and have.source.fingerprint == src.fingerprint:
                    failures.pop(name, None)
                    continue
                if failed is not None and failed.source.fingerprint == src.fingerprint:
                    continue
                if self._inflight.get(name) == src.fingerprint:
                    continue
                self._inflight[name] = src.fingerprint
                jobs.append(src)
            self._pipelines = current
            self._failures = failures
            if changed:
                self.version += 1
            self._update_settled()
        self._publish(set(changed), retired)
        threads = [
            threading.Thread(
                target=self._load, args=(src, changed), name=f"hayhooks-reconcile-{src.name}", daemon=True
            )
            for src in jobs
        ]
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join()
        return changed

    def _load(self, src: PipelineSource, changed: set[str]) -> None:
        loaded: Optional[LoadedPipeline] = None
        error: Optional[Exception] = None
        try:
            loaded = self._loader(src)
        except Exception as exc:
            error = exc
        retired: list[LoadedPipeline] = []
        did_change = False
        with self._lock:
            if self._inflight.get(src.name) == src.fingerprint:
                del self._inflight[src.name]
            if self._wanted.get(src.name) != src.fingerprint:
                if loaded is not None:  # superseded while it loaded: never served
                    retired.append(loaded)
            elif loaded is not None:
                current = dict(self._pipelines)
                have = current.get(src.name)
                current[src.name] = loaded
                self._pipelines = current
                self._failures = {n: f for n, f in self._failures.items() if n != src.name}
                if have is not None:
                    retired.append(have)
                self.version += 1
                did_change = True
                log.info("Pipeline '%s' %s", src.name, "reloaded" if have else "loaded")
            else:
                self._failures = {**self._failures, src.name: LoadFailure(src.name, src, str(error))}
                if src.name in self._pipelines:
                    log.error(
                        "Pipeline '%s' failed to reload, keeps serving its previous version: %s",
                        src.name,
                        error,
                    )
                else:
                    log.error("Pipeline '%s' failed to load: %s", src.name, error)
            self._update_settled()
        if did_change:
            changed.add(src.name)
        self._publish({src.name} if did_change else set(), retired)

    def _update_settled(self) -> None:
        if not self._inflight:
            self.generation = max(self.generation, self.seen)
            self._settled.notify_all()

    def wait_settled(self, timeout: Optional[float] = None) -> bool:
        """Block until no load is in flight (tests and shutdown)."""
        with self._lock:
            return self._settled.wait_for(lambda: not self._inflight, timeout)

    def adopt(self, loaded: LoadedPipeline) -> None:
        """Serve a pipeline that is already loaded and set up (a deploy validated it this way).

        Its ``source`` must be the committed store entry, so the next reconcile sees nothing to do.
        """
        with self._lock:
            current = dict(self._pipelines)
            old = current.get(loaded.name)
            current[loaded.name] = loaded
            self._wanted = {**self._wanted, loaded.name: loaded.source.fingerprint}
            self._failures = {n: f for n, f in self._failures.items() if n != loaded.name}
            self._pipelines = current
            self.version += 1
        self._publish({loaded.name}, [old] if old is not None else [])

    def _publish(self, changed: set[str], retired: list[LoadedPipeline]) -> None:
        for old in retired:
            if self._unload is not None:
                self._unload(old)
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(changed)
                except Exception:
                    log.exception("Registry listener failed")
