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
import math
import operator
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Optional, Protocol

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
    """The metric objects of this process (created once; every app in the process shares them),
    and the queues of finished work waiting to be counted.

    Serving code does not update metric values. It hands the objects it already has to its
    pipeline's ``RunSeries`` (one per pipeline and surface): the run when it starts and when it has
    finished, the request when it has been answered. Each hand-over is one ``list.append`` (atomic,
    so any thread does it without a lock; no Python frame, nothing built): the request path runs no
    counting code at all. ``flush`` takes each list's contents and counts them with built-ins
    (``map`` and ``attrgetter`` to read the fields, a sort and a few bisections per histogram,
    ``Counter`` for codes and outcomes), then writes each total's growth to the shared files: per
    flush, not per request.

    Why: a value write to prometheus_client's mmap files costs microseconds (a lock, a pid check, a
    struct pack) and a request touches eight values. Counting in memory per update still took ~10%
    of an async echo request's instructions in-process (callgrind, run 13); one queue of objects
    counted in a Python loop at flush time, ~4% of the event loop's (run 13); values appended by
    small methods to per-series lists counted by built-ins, 2.6% (run 14); the objects themselves
    appended by the lists' own ``append``, less again (section l of ``bench/RESULTS.md``).

    ``flush_every`` drains on the app's event loop every ``FLUSH_INTERVAL`` (no timer thread, so a
    busy worker never hands the GIL to one); a scrape flushes first and waits one interval more,
    so every worker's counts up to the moment of the scrape are in; the last flush runs at shutdown
    and at exit. A worker killed with SIGKILL loses at most its last interval.
    """

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
        # Read without the lock by the request path (a dict lookup); added to under it.
        self.all_series: dict[tuple[str, str], RunSeries] = {}
        # One flush at a time (the loop's, a scrape's, exit's); also held to add a series, which a
        # flush iterates.
        self._flush_lock = threading.Lock()
        self._followed: list[FollowedCounts] = []
        atexit.register(self.flush)

    def series(self, pipeline: str, surface: str) -> RunSeries:
        """The label children and queues of one (pipeline, surface), created on first use (the
        request path looks in ``all_series`` first: labels() is not free, a call is not either)."""
        key = (pipeline, surface)
        found = self.all_series.get(key)
        if found is None:
            with self._flush_lock:  # a flush iterates the series
                found = self.all_series.get(key)
                if found is None:
                    found = self.all_series[key] = RunSeries(self, pipeline, surface)
        return found

    def follow(self, counts: Mapping[str, float], family: Any) -> None:
        """Write the growth of ``counts`` (a mapping of label value to running total, kept by
        someone else on one thread) to the counter ``family`` at every flush."""
        followed = FollowedCounts(counts, family)
        with self._flush_lock:
            self._followed.append(followed)

    def flush(self) -> None:
        """Count what was queued, then write every total that grew to the files."""
        with self._flush_lock:
            for series in list(self.all_series.values()):
                if series.count():
                    series.write()
            for followed in self._followed:
                followed.write()

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

    def render(self, service: Any, durable: Any = None) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.flush()
        time.sleep(SCRAPE_WAIT)  # the other workers write theirs within one interval
        mark_dead_workers(self.directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))
        registry.register(ClusterCollector(service))
        if durable is not None:
            registry.register(DurableCollector(durable))
        return generate_latest(registry)


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
    ``totals`` is copied first (atomic for a dict): its writer may add keys meanwhile."""
    for key, total in dict(totals).items():
        delta = total - written.get(key, 0.0)
        if delta:
            inc(key, delta)
            written[key] = total


def _take(queue: list[Any]) -> list[Any]:
    """What ``queue`` holds now, removed from it. Appends from other threads meanwhile go to its
    end and stay for the next flush: only a flush (under the flush lock) removes items."""
    count = len(queue)
    taken = queue[:count]
    del queue[:count]
    return taken


class HistogramTally:
    """Bucket counts and the sum of one histogram child (``counts[i]`` for ``bounds[i]``, the way
    ``Histogram.observe`` picks it), added to by flushes only."""

    __slots__ = ("bounds", "child", "counts", "sum", "written_counts", "written_sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = _prometheus_compat.upper_bounds(child)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.written_counts = [0] * len(self.bounds)
        self.written_sum = 0.0

    def add(self, amounts: list[float]) -> None:
        """Count a non-empty batch of observations (an amount goes to the first bucket whose bound
        is >= it, as in ``Histogram.observe``). When the smallest and the largest fall in the same
        bucket (the common case: similar requests), so does the whole batch; otherwise it is
        sorted once, then bisected once per bucket."""
        bounds, counts = self.bounds, self.counts
        lowest = bisect.bisect_left(bounds, min(amounts))
        if lowest == bisect.bisect_left(bounds, max(amounts)):
            counts[lowest] += len(amounts)
        else:
            amounts.sort()
            below = 0
            for index, bound in enumerate(bounds):
                upto = bisect.bisect_right(amounts, bound)
                counts[index] += upto - below
                below = upto
        self.sum += math.fsum(amounts)

    def write(self) -> None:
        written = self.written_counts
        for index, count in enumerate(self.counts):
            if count != written[index]:
                _prometheus_compat.add_to_bucket(self.child, index, count - written[index])
                written[index] = count
        if self.sum != self.written_sum:
            _prometheus_compat.add_to_sum(self.child, self.sum - self.written_sum)
            self.written_sum = self.sum


class FinishedRun(Protocol):
    """A finished run as the metrics read it (``hayhooks.observability.runs.Run``)."""

    outcome: str
    elapsed: float
    chunks: int
    status_code: int


class AnsweredRequest(Protocol):
    """An answered request as the metrics read it (``hayhooks.observability.context.RequestInfo``)."""

    status: Optional[int]
    elapsed: float


_OUTCOME = operator.attrgetter("outcome")
_ELAPSED = operator.attrgetter("elapsed")
_CHUNKS = operator.attrgetter("chunks")
_RUN_STATUS = operator.attrgetter("status_code")
_STATUS = operator.attrgetter("status")


class RunSeries:
    """The label children, queues and running totals of one (pipeline, surface).

    Serving code, from any thread, hands over the objects it already has: the run when it starts
    (``run_started``) and when it has finished (``run_finished``), the request when it has been
    answered (``answered``). The three are the queues' own ``list.append``: no Python frame, no
    lock, nothing built per request. Only flushes (under the flush lock) take from the queues,
    reading the objects' fields with ``map`` and ``attrgetter`` (C loops) into the totals;
    ``write`` hands the totals' growth since the previous flush to the metric children.
    """

    __slots__ = (
        "answered",
        "answers",
        "children",
        "chunk_total",
        "code_counts",
        "ends",
        "finished",
        "metrics",
        "outcome_counts",
        "pipeline",
        "request_durations",
        "run_durations",
        "run_finished",
        "run_started",
        "runs_are_requests",
        "started",
        "starts",
        "surface",
        "written",
    )

    def __init__(self, metrics: Metrics, pipeline: str, surface: str) -> None:
        self.metrics, self.pipeline, self.surface = metrics, pipeline, surface
        # An MCP HTTP request may carry several tool calls, or none: each run counts as a request.
        self.runs_are_requests = surface == "mcp"
        # Queues, filled on the request path through their appends.
        self.starts: list[object] = []
        self.ends: list[FinishedRun] = []
        self.answers: list[AnsweredRequest] = []
        self.run_started: Callable[[object], None] = self.starts.append
        self.run_finished: Callable[[FinishedRun], None] = self.ends.append
        self.answered: Callable[[AnsweredRequest], None] = self.answers.append
        # Totals, kept by flushes.
        self.started = self.finished = self.chunk_total = 0
        self.outcome_counts: Counter[str] = Counter()
        self.code_counts: Counter[int] = Counter()
        self.run_durations = HistogramTally(metrics.run_duration.labels(pipeline, surface))
        self.request_durations = HistogramTally(metrics.request_duration.labels(pipeline, surface))
        # Created now, so each series shows (at 0) from the series' first run on.
        self.children: dict[Any, Any] = {
            "in_flight": metrics.in_flight.labels(pipeline, surface),
            "chunks": metrics.chunks.labels(pipeline, surface),
            "rejected": metrics.rejections.labels(pipeline, surface),
            "timeout": metrics.timeouts.labels(pipeline, surface),
        }
        self.written: dict[Any, float] = {}  # by key below: what the files already have

    def count(self) -> bool:
        """Add what the queues hold to the totals; False when they were empty. Finished runs are
        taken before started ones: every run taken as finished is then also taken as started, so
        in-flight never dips below 0."""
        if not (self.ends or self.starts or self.answers):
            return False
        if self.ends:
            runs = _take(self.ends)
            self.finished += len(runs)
            self.outcome_counts.update(map(_OUTCOME, runs))
            times = list(map(_ELAPSED, runs))
            self.run_durations.add(times)
            self.chunk_total += sum(map(_CHUNKS, runs))
            if self.runs_are_requests:
                self.code_counts.update(map(_RUN_STATUS, runs))
                self.request_durations.add(times)
        if self.starts:
            self.started += len(_take(self.starts))
        if self.answers:
            answers = _take(self.answers)
            self.code_counts.update(map(_STATUS, answers))
            self.request_durations.add(list(map(_ELAPSED, answers)))
        return True

    def write(self) -> None:
        outcomes = self.outcome_counts
        totals: dict[Any, float] = {
            "in_flight": self.started - self.finished,
            "chunks": self.chunk_total,
            "rejected": outcomes["rejected"],  # admission rejections (503)
            "timeout": outcomes["timeout"],  # run timeouts (504)
        }
        for outcome, count in outcomes.items():
            totals["runs", outcome] = count
        for code, count in self.code_counts.items():
            totals["requests", str(code)] = count
        _write_growth(totals, self.written, lambda key, delta: self._child(key).inc(delta))
        self.run_durations.write()
        self.request_durations.write()

    def _child(self, key: Any) -> Any:
        found = self.children.get(key)
        if found is None:  # ("runs", outcome) or ("requests", code)
            family = self.metrics.runs if key[0] == "runs" else self.metrics.requests
            found = self.children[key] = family.labels(self.pipeline, self.surface, key[1])
        return found


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
