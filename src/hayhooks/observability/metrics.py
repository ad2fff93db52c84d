"""Prometheus metrics that add up over every worker process of an instance.

prometheus_client's multiprocess mode keeps each process' values in small mmap files in one
directory (``PROMETHEUS_MULTIPROC_DIR``); a scrape, answered by any worker, sums the files of all
of them. ``hayhooks run`` creates a fresh directory per instance and exports it to its workers
before they start; a server started another way (``uvicorn ... --workers N``) uses
``<pipelines_dir>/.hayhooks/metrics/<host>-<process group>``.

Counters of a worker that died stay in its files, so a replaced worker loses none of the counts and,
having a new pid, never adds to them twice; its live gauges (in-flight runs) are removed as soon as
it is seen dead. The generation each worker serves comes from the worker heartbeats at scrape time,
so it is right for every worker, not only the one answering.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from hayhooks.observability import _prometheus_compat
from hayhooks.pipelines.cluster import _pid_alive

log = logging.getLogger("hayhooks")

FLUSH_INTERVAL = 0.05
SCRAPE_WAIT = 2 * FLUSH_INTERVAL
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_DB_FILE = re.compile(r"^(?P<kind>.+)_(?P<pid>\d+)\.db$")

# Every metric name the server exports (the Grafana dashboard test checks its queries against it).
EXPORTED = (
    "hayhooks_requests_total",
    "hayhooks_request_duration_seconds",
    "hayhooks_pipeline_runs_total",
    "hayhooks_pipeline_run_duration_seconds",
    "hayhooks_runs_in_flight",
    "hayhooks_admission_rejections_total",
    "hayhooks_run_timeouts_total",
    "hayhooks_stream_chunks_total",
    "hayhooks_deploys_total",
    "hayhooks_deploy_failures_total",
    "hayhooks_worker_generation",
    "hayhooks_worker_in_sync",
    "hayhooks_workers",
    "hayhooks_store_generation",
)


def _pids(directory: Path) -> set[int]:
    found = set()
    for path in directory.glob("*.db"):
        match = _DB_FILE.match(path.name)
        if match:
            found.add(int(match["pid"]))
    return found


def mark_dead_workers(directory: Path, wipe_if_alone: bool = False) -> None:
    """Drop the live gauges of processes that are gone. With ``wipe_if_alone`` (a directory we
    reuse across server starts), a directory where no other process lives starts from zero."""
    from prometheus_client import multiprocess

    me = os.getpid()
    pids = _pids(directory)
    dead = {pid for pid in pids if pid != me and not _pid_alive(pid)}
    if wipe_if_alone and not (pids - dead - {me}):
        for path in directory.glob("*.db"):
            match = _DB_FILE.match(path.name)
            if match and int(match["pid"]) in dead:
                path.unlink(missing_ok=True)
        return
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))


def prepare_directory(pipelines_meta: Path) -> Path:
    """Choose, create and tidy this instance's metrics directory; export it for child processes."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        directory, reused = Path(given), False
    else:
        directory = pipelines_meta / "metrics" / f"{socket.gethostname()}-pg{os.getpgid(0)}"
        reused = True
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            from prometheus_client import multiprocess

            # A recycled pid must not inherit a dead process' gauges.
            multiprocess.mark_process_dead(os.getpid(), str(directory))
            mark_dead_workers(directory, wipe_if_alone=reused)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return directory


class Metrics:
    """The metric objects of this process (created once; every app in the process shares them)."""

    def __init__(self, directory: Path) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.directory = directory
        by_run = ["pipeline", "surface"]
        self.requests = Counter(
            "hayhooks_requests",
            "Requests that reached a pipeline, by surface (run, openai, mcp) and status code.",
            [*by_run, "code"],
            registry=None,
        )
        self.request_duration = Histogram(
            "hayhooks_request_duration_seconds",
            "Time from request to the end of the response (streams included).",
            by_run,
            buckets=RUN_BUCKETS,
            registry=None,
        )
        self.runs = Counter(
            "hayhooks_pipeline_runs",
            "Pipeline runs by outcome (ok, error, rejected, timeout, cancelled).",
            [*by_run, "outcome"],
            registry=None,
        )
        self.run_duration = Histogram(
            "hayhooks_pipeline_run_duration_seconds",
            "Duration of pipeline runs, streams until their last chunk.",
            by_run,
            buckets=RUN_BUCKETS,
            registry=None,
        )
        self.in_flight = Gauge(
            "hayhooks_runs_in_flight",
            "Runs in progress, summed over live workers.",
            by_run,
            multiprocess_mode="livesum",
            registry=None,
        )
        self.rejections = Counter(
            "hayhooks_admission_rejections",
            "Runs refused because the worker was full (HTTP 503).",
            by_run,
            registry=None,
        )
        self.timeouts = Counter(
            "hayhooks_run_timeouts", "Runs that exceeded their time limit (HTTP 504).", by_run, registry=None
        )
        self.chunks = Counter(
            "hayhooks_stream_chunks", "Chunks sent by streaming runs.", by_run, registry=None
        )
        self.deploys = Counter(
            "hayhooks_deploys", "Successful deploys, redeploys and undeploys.", ["action"], registry=None
        )
        self.deploy_failures = Counter(
            "hayhooks_deploy_failures",
            "Deploys and undeploys that failed, by the HTTP status they answered.",
            ["operation", "code"],
            registry=None,
        )
        self._children: dict[tuple[str, str], RunSeries] = {}
        self.pending = Pending()

    def series(self, pipeline: str, surface: str) -> RunSeries:
        """The label children of one (pipeline, surface), cached: labels() is not free."""
        key = (pipeline, surface)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = RunSeries(self, pipeline, surface)
        return found

    def render(self, service: Any) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.pending.flush()
        time.sleep(SCRAPE_WAIT)  # the other workers write theirs within one interval
        mark_dead_workers(self.directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))
        registry.register(ClusterCollector(service))
        return generate_latest(registry)


class Pending:
    """Metric updates queued in memory and written to the shared files every ``FLUSH_INTERVAL``.

    A write to prometheus_client's mmap files costs a few microseconds (a lock, a pid check, a
    struct pack) and a request touches eight values. Serving code only appends to a deque (atomic
    in CPython, no lock, a tenth of a microsecond); the flush thread adds the queued updates up and
    writes each value once per interval. A scrape flushes first and waits one interval more, so every
    worker's counts up to the moment of the scrape are in. A worker killed with SIGKILL loses at
    most its last interval.
    """

    def __init__(self) -> None:
        self._flush_lock = threading.Lock()  # one flush at a time: the thread's, or a scrape's
        self._adds: deque[tuple[Any, float]] = deque()
        self._observations: deque[tuple[Any, float]] = deque()
        self._thread: Optional[threading.Thread] = None

    def add(self, value: Any, amount: float = 1.0) -> None:
        self._adds.append((value, amount))
        if self._thread is None:
            self._start()

    def observe(self, histogram: Any, amount: float) -> None:
        self._observations.append((histogram, amount))
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._flush_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="hayhooks-metrics", daemon=True)
            self._thread.start()
        atexit.register(self.flush)

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            try:
                self.flush()
            except Exception:  # pragma: no cover - never let metrics take a worker down
                log.exception("Could not write metrics")

    def flush(self) -> None:
        with self._flush_lock:
            adds: dict[Any, float] = {}
            queue = self._adds
            for _ in range(len(queue)):  # what is queued now; later updates wait for the next flush
                value, amount = queue.popleft()
                adds[value] = adds.get(value, 0.0) + amount
            observations: dict[Any, list[float]] = {}
            pending = self._observations
            for _ in range(len(pending)):
                histogram, amount = pending.popleft()
                found = observations.get(histogram)
                if found is None:
                    observations[histogram] = [amount]
                else:
                    found.append(amount)
            for value, total in adds.items():
                if total:
                    value.inc(total)
            for histogram, amounts in observations.items():
                _prometheus_compat.observe_many(histogram, amounts)


class RunSeries:
    """The label children of one (pipeline, surface); every update goes through ``Pending``."""

    __slots__ = (
        "_outcomes",
        "chunks",
        "codes",
        "duration",
        "in_flight",
        "metrics",
        "pending",
        "pipeline",
        "rejections",
        "request_duration",
        "surface",
        "timeouts",
    )

    def __init__(self, metrics: Metrics, pipeline: str, surface: str) -> None:
        self.metrics, self.pipeline, self.surface = metrics, pipeline, surface
        self.pending = metrics.pending
        self.in_flight = metrics.in_flight.labels(pipeline, surface)
        self.duration = metrics.run_duration.labels(pipeline, surface)
        self.request_duration = metrics.request_duration.labels(pipeline, surface)
        self.rejections = metrics.rejections.labels(pipeline, surface)
        self.timeouts = metrics.timeouts.labels(pipeline, surface)
        self.chunks = metrics.chunks.labels(pipeline, surface)
        self.codes: dict[int, Any] = {}
        self._outcomes: dict[str, Any] = {}

    def started(self) -> None:
        self.pending.add(self.in_flight, 1.0)

    def finished(self, elapsed: float, outcome: str, chunks: int) -> None:
        pending = self.pending
        pending.add(self.in_flight, -1.0)
        pending.observe(self.duration, elapsed)
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self.metrics.runs.labels(self.pipeline, self.surface, outcome)
        pending.add(child)
        if outcome == "rejected":
            pending.add(self.rejections)
        elif outcome == "timeout":
            pending.add(self.timeouts)
        if chunks:
            pending.add(self.chunks, chunks)

    def request(self, code: int) -> None:
        child = self.codes.get(code)
        if child is None:
            child = self.codes[code] = self.metrics.requests.labels(self.pipeline, self.surface, str(code))
        self.pending.add(child)

    def request_done(self, elapsed: float) -> None:
        self.pending.observe(self.request_duration, elapsed)


class ClusterCollector:
    """Worker generations and sync state, read from the heartbeats at scrape time."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        workers = self.service.cluster.workers()
        latest = self.service.store.generation()
        generation = GaugeMetricFamily(
            "hayhooks_worker_generation",
            "Generation of the pipelines directory each live worker serves.",
            labels=["worker"],
        )
        in_sync = GaugeMetricFamily(
            "hayhooks_worker_in_sync",
            "1 when the worker serves the directory's latest generation.",
            labels=["worker"],
        )
        for worker in workers:
            generation.add_metric([worker.id], worker.generation)
            in_sync.add_metric([worker.id], 1.0 if worker.generation >= latest else 0.0)
        yield generation
        yield in_sync
        yield GaugeMetricFamily(
            "hayhooks_workers", "Live worker processes serving the pipelines directory.", value=len(workers)
        )
        yield GaugeMetricFamily(
            "hayhooks_store_generation", "Latest generation of the pipelines directory.", value=latest
        )


_metrics: Optional[Metrics] = None


def process_metrics(pipelines_meta: Path) -> Metrics:
    """This process' metrics, set up on first use (the directory must be chosen before any value)."""
    global _metrics
    if _metrics is None:
        directory = prepare_directory(pipelines_meta)
        _prometheus_compat.enable_multiprocess(directory)
        _metrics = Metrics(directory)
    return _metrics
