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

import asyncio
import atexit
import bisect
import fcntl
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
    "hayhooks_durable_executions",
    "hayhooks_durable_events_total",
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
        self.durable_events = Counter(
            "hayhooks_durable_events",
            "Durable execution events of the instance's workers: claimed, takeovers (a lease taken "
            "over from a lost worker), completed, failed, canceled, suspended, retried, released, "
            "lease_lost.",
            ["event"],
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

    def render(self, service: Any, durable: Any = None) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.pending.flush()
        time.sleep(SCRAPE_WAIT)  # the other workers write theirs within one interval
        mark_dead_workers(self.directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))
        registry.register(ClusterCollector(service))
        if durable is not None:
            registry.register(DurableCollector(durable))
        return generate_latest(registry)


class Pending:
    """Metric updates tallied in memory and written to the shared files every ``FLUSH_INTERVAL``.

    A write to prometheus_client's mmap files costs a few microseconds (a lock, a pid check, a
    struct pack) and a request touches eight values. Serving code instead adds to a tally of its
    own thread (``Tally``: plain dicts and lists, no lock, no allocation per update): each thread
    writes only its own tally and its totals only grow, so a flush, from any thread, reads them
    without stopping anyone and writes each value's growth since the previous flush, once.

    The flush runs on the app's event loop (``flush_every``, started by the lifespan), so a busy
    worker never hands the GIL to a timer thread; a scrape flushes first and waits one interval
    more, so every worker's counts up to the moment of the scrape are in; the last flush runs at
    shutdown and at exit. A worker killed with SIGKILL loses at most its last interval.
    """

    def __init__(self) -> None:
        self._flush_lock = threading.Lock()  # one flush at a time: the loop's, a scrape's, exit's
        self._local = threading.local()
        self._tallies: list[Tally] = []
        self._followed: list[FollowedCounts] = []
        self._exit_hook = False

    def _tally(self) -> Tally:
        tally = Tally()
        self._local.tally = tally
        with self._flush_lock:
            self._tallies.append(tally)
            if not self._exit_hook:
                self._exit_hook = True
                atexit.register(self.flush)
        return tally

    def add(self, value: Any, amount: float = 1.0) -> None:
        try:
            counts = self._local.tally.counts
        except AttributeError:
            counts = self._tally().counts
        counts[value] = counts.get(value, 0.0) + amount

    def observe(self, histogram: Any, amount: float) -> None:
        try:
            tally = self._local.tally
        except AttributeError:
            tally = self._tally()
        found = tally.histograms.get(histogram)
        if found is None:
            found = tally.histograms[histogram] = HistogramTally(histogram)
        found.counts[bisect.bisect_left(found.bounds, amount)] += 1
        found.sum += amount

    def follow(self, counts: Mapping[str, float], family: Any) -> FollowedCounts:
        """Write the growth of ``counts`` (a mapping of label value to running total, kept by
        someone else on one thread) to the counter ``family`` at every flush."""
        followed = FollowedCounts(counts, family)
        with self._flush_lock:
            self._followed.append(followed)
        return followed

    def flush(self) -> None:
        with self._flush_lock:
            for followed in self._followed:
                followed.write()
            gone = []
            for tally in self._tallies:
                alive = tally.thread.is_alive()  # asked first: a thread may end during write()
                tally.write()
                if not alive:  # nothing can be added any more: written for the last time
                    gone.append(tally)
            for tally in gone:
                self._tallies.remove(tally)

    async def flush_every(self, interval: float = FLUSH_INTERVAL) -> None:
        """Flush on the running loop every ``interval`` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    self.flush()
                except Exception:  # pragma: no cover - never let metrics take a worker down
                    log.exception("Could not write metrics")
        finally:
            self.flush()


class Tally:
    """One thread's running totals: counter and gauge values, and histogram buckets.

    Only its thread writes it and totals only grow (a gauge's ups and downs are one running sum),
    so a flush in another thread can copy and compare them: ``written`` is what the files already
    have.
    """

    __slots__ = ("counts", "histograms", "thread", "written")

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.counts: dict[Any, float] = {}
        self.written: dict[Any, float] = {}
        self.histograms: dict[Any, HistogramTally] = {}

    def write(self) -> None:
        _write_growth(self.counts, self.written, lambda value, delta: value.inc(delta))
        for histogram in list(self.histograms.values()):
            histogram.write()


class FollowedCounts:
    """Running totals kept elsewhere (the durable runtime's event counts), written as they grow."""

    __slots__ = ("counts", "family", "written")

    def __init__(self, counts: Mapping[str, float], family: Any) -> None:
        self.counts, self.family = counts, family
        self.written: dict[str, float] = {}

    def write(self) -> None:
        _write_growth(self.counts, self.written, lambda key, delta: self.family.labels(key).inc(delta))


def _write_growth(
    totals: Mapping[Any, float], written: dict[Any, float], inc: Callable[[Any, float], None]
) -> None:
    """``inc(key, growth)`` for every running total that grew since ``written`` (then updated).
    ``totals`` is copied first (atomic for a dict): its one writer may add keys meanwhile."""
    for key, total in dict(totals).items():
        delta = total - written.get(key, 0.0)
        if delta:
            inc(key, delta)
            written[key] = total


class HistogramTally:
    """Bucket counts and the sum of one histogram child, in one thread (see ``Tally``)."""

    __slots__ = ("bounds", "child", "counts", "sum", "written_counts", "written_sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = _prometheus_compat.upper_bounds(child)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.written_counts = [0] * len(self.bounds)
        self.written_sum = 0.0

    def write(self) -> None:
        counts, total = list(self.counts), self.sum
        written = self.written_counts
        for index, count in enumerate(counts):
            if count != written[index]:
                _prometheus_compat.add_to_bucket(self.child, index, count - written[index])
                written[index] = count
        if total != self.written_sum:
            _prometheus_compat.add_to_sum(self.child, total - self.written_sum)
            self.written_sum = total


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


class DurableCollector:
    """Durable executions by status, read from the durable store at scrape time: the store is
    shared by every worker and instance, so this is the same answer whichever worker is asked."""

    def __init__(self, durable: Any) -> None:
        self.durable = durable

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            counts = self.durable.store.counts()
        except Exception as exc:  # the store being down must not take /metrics down with it
            log.warning("Could not count durable executions for /metrics: %s", exc)
            return
        family = GaugeMetricFamily(
            "hayhooks_durable_executions",
            "Durable executions in the store by status (queued, running, waiting, completed, failed, canceled).",
            labels=["status"],
        )
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family


_metrics: Optional[Metrics] = None


def process_metrics(pipelines_meta: Path) -> Metrics:
    """This process' metrics, set up on first use (the directory must be chosen before any value)."""
    global _metrics
    if _metrics is None:
        directory = prepare_directory(pipelines_meta)
        _prometheus_compat.enable_multiprocess(directory)
        _metrics = Metrics(directory)
    return _metrics
