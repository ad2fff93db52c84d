"""The in-process map name → LoadedPipeline.

Its only mutation is ``reconcile``: given a store snapshot it loads what is new or changed, drops
what is gone, and keeps a pipeline whose new version fails to load serving its previous version.
Startup loading, runtime deploys and workers catching up on each other's deploys all use it.
Readers never lock: the map is replaced, not mutated, so a lookup sees either the old or the new set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

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
        self._lock = threading.Lock()  # serialises reconciles, never readers
        self.version = 0  # bumps on every change of the serving set in this process
        self.generation = -1  # store generation of the last reconciled snapshot

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

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- the one mutation ----------------------------------------------------------------------
    def reconcile(
        self, snapshot: Iterable[PipelineSource], generation: int, only: set[str] | None = None
    ) -> set[str]:
        """Converge on ``snapshot``; return the names whose serving state changed.

        ``only`` restricts the work to those names (used when a deploy has just validated one).
        """
        with self._lock:
            wanted = {src.name: src for src in snapshot}
            current = dict(self._pipelines)
            failures = dict(self._failures)
            changed: set[str] = set()
            retired: list[LoadedPipeline] = []
            for name in list(current) + list(failures):
                if name not in wanted and (only is None or name in only):
                    old = current.pop(name, None)
                    if old is not None:
                        changed.add(name)
                        retired.append(old)
                    failures.pop(name, None)
            for name, src in wanted.items():
                if only is not None and name not in only:
                    continue
                have = current.get(name)
                failed = failures.get(name)
                if have is not None and have.source.fingerprint == src.fingerprint:
                    failures.pop(name, None)
                    continue
                if failed is not None and failed.source.fingerprint == src.fingerprint:
                    continue
                try:
                    current[name] = self._loader(src)
                    if have is not None:
                        retired.append(have)
                    failures.pop(name, None)
                    changed.add(name)
                    log.info("Pipeline '%s' %s from %s", name, "reloaded" if have else "loaded", src.path)
                except Exception as exc:
                    failures[name] = LoadFailure(name, src, str(exc))
                    if have is not None:
                        log.error(
                            "Pipeline '%s' failed to reload, keeps serving its previous version: %s",
                            name,
                            exc,
                        )
                    else:
                        log.error("Pipeline '%s' failed to load: %s", name, exc)
            self._pipelines = current
            self._failures = failures
            self.generation = max(self.generation, generation)
            if changed:
                self.version += 1
        self._publish(changed, retired)
        return changed

    def adopt(self, loaded: LoadedPipeline) -> None:
        """Serve a pipeline that is already loaded and set up (a deploy validated it this way).

        Its ``source`` must be the committed store entry, so the next reconcile sees nothing to do.
        """
        with self._lock:
            current = dict(self._pipelines)
            old = current.get(loaded.name)
            current[loaded.name] = loaded
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
