"""Recent runs with per-component timings, for ``GET /traces``, across every worker.

Each worker keeps its last N runs in memory and writes them, at most twice a second and off the
request path, to ``<pipelines_dir>/.hayhooks/runs/<worker id>.json``. ``GET /traces`` answered by any
worker reads the files of all of them, so it describes the instance, not the one worker that
answered. Component timings come from Haystack's tracing hook (``ComponentTimingTracer``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from hayhooks.observability import context

_FLUSH_INTERVAL = 0.5
_KEEP_DEAD_WORKER_FILES = 600.0  # seconds: a crashed worker's last runs stay visible this long
_MAX_COMPONENTS = 200


@dataclass
class ComponentTiming:
    name: str
    type: str
    start_ms: float
    duration_ms: float
    error: Optional[str] = None


class RunRecordSource(Protocol):
    """What the recent-runs list holds: a finished run that can describe itself
    (``hayhooks.observability.runs.Run``; kept as is, so the request path builds nothing)."""

    t0: float
    components: Optional[list[ComponentTiming]]

    def record(self) -> dict[str, Any]: ...


current_run: ContextVar[Optional[RunRecordSource]] = ContextVar("hayhooks_run", default=None)


class RecentRuns:
    def __init__(self, directory: Path, worker_id: str, size: int) -> None:
        self.directory = directory
        self.worker_id = worker_id
        self.runs: deque[RunRecordSource] = deque(maxlen=size)
        # Adding a finished run is one append (atomic, any thread): the writer notices new runs by
        # the newest one changing, so the request path sets no flag and wakes no thread.
        self.add: Callable[[RunRecordSource], None] = self.runs.append
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    @property
    def path(self) -> Path:
        return self.directory / f"{self.worker_id}.json"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="hayhooks-recent-runs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.flush()

    def _loop(self) -> None:
        written: Optional[RunRecordSource] = None
        while not self._stop.wait(_FLUSH_INTERVAL):
            runs = self.runs
            newest = runs[-1] if runs else None
            if newest is not written:
                self.flush()
                written = newest

    def flush(self) -> None:
        with self._lock:
            data = [r.record() for r in list(self.runs)]
            if not self.directory.exists():
                return
            tmp = self.directory / f".{self.worker_id}.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({"worker": self.worker_id, "pid": os.getpid(), "runs": data}))
            os.replace(tmp, self.path)

    def collect(self, live_workers: set[str], limit: int) -> list[dict[str, Any]]:
        """Recent runs of every worker, newest first; files of long-dead workers are pruned."""
        self.flush()
        runs: list[dict[str, Any]] = []
        now = time.time()
        for path in self.directory.glob("*.json"):
            worker = path.stem
            try:
                if worker not in live_workers and now - path.stat().st_mtime > _KEEP_DEAD_WORKER_FILES:
                    path.unlink(missing_ok=True)
                    continue
                runs.extend(json.loads(path.read_text()).get("runs", []))
            except (OSError, ValueError):
                continue
        runs.sort(key=lambda r: r.get("started_at", 0), reverse=True)
        return runs[:limit]


class ComponentTimingTracer:
    """A Haystack tracer that times ``haystack.component.run`` spans into the current run record,
    and hands every span to Haystack's OpenTelemetry tracer when traces are exported."""

    def __init__(self, delegate: Any = None) -> None:
        self.delegate = delegate

    @contextlib.contextmanager
    def trace(
        self, operation_name: str, tags: Optional[dict[str, Any]] = None, parent_span: Any = None
    ) -> Iterator[Any]:
        record = None
        if operation_name == "haystack.component.run":
            # A run outside an HTTP request (or a second one in it) is in ``current_run``; the
            # request's run is on its RequestInfo (no contextvar set per run).
            record = current_run.get()
            if record is None:
                info = context.current()
                record = info.run if info is not None else None
        if record is None:
            if self.delegate is None:
                yield _NullSpan()
            else:
                with self.delegate.trace(operation_name, tags=tags, parent_span=parent_span) as span:
                    yield span
            return
        start = time.perf_counter()
        error: Optional[str] = None
        try:
            if self.delegate is None:
                yield _NullSpan()
            else:
                with self.delegate.trace(operation_name, tags=tags, parent_span=parent_span) as span:
                    yield span
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if record.components is None:
                record.components = []
            if len(record.components) < _MAX_COMPONENTS:
                tags = tags or {}
                record.components.append(
                    ComponentTiming(
                        str(tags.get("haystack.component.name", "?")),
                        str(tags.get("haystack.component.type", "?")),
                        round((start - record.t0) * 1000, 3),
                        round((time.perf_counter() - start) * 1000, 3),
                        error,
                    )
                )

    def current_span(self) -> Any:
        return self.delegate.current_span() if self.delegate is not None else None


class _NullSpan:
    """What Haystack gets when nothing exports spans: tags are dropped."""

    def set_tag(self, key: str, value: Any) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def set_content_tag(self, key: str, value: Any) -> None:
        pass

    def raw_span(self) -> Any:
        return None

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        return {}


def enable_haystack_tracer(delegate: Any = None) -> None:
    """Install our tracer in Haystack (process-wide, as Haystack's tracing is)."""
    from haystack import tracing

    tracer: Any = ComponentTimingTracer(delegate)
    tracing.enable_tracing(tracer)
