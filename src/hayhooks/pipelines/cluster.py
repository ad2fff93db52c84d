"""Which processes serve this pipelines directory, and what each of them serves.

Every worker (of any instance sharing the directory) keeps a small heartbeat file up to date from a
thread of its own (``Heartbeat``), so loading a slow pipeline or a long sync never makes a busy
worker look dead. A heartbeat says which store generation the worker has seen (``seen``), which one
it has fully settled (``generation``), and per pipeline the fingerprint it serves or failed to load.
A deploy commits to the store, then waits until every live worker has seen the new generation and
settled the changed pipeline (``wait_for``).

A worker on this host is live while its process exists: same pid *and* same process start time, so
a recycled pid or a forged file never counts (a busy or restarting worker always does). A worker on
another host is live while its heartbeat keeps *changing*, timed on our own monotonic clock, so
clock skew between hosts never makes a healthy worker look dead or a dead one look alive. Files
that do not parse, or that claim a time far in the future, are ignored and removed with a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("hayhooks")

_FUTURE_TOLERANCE = 300.0  # seconds a heartbeat of this host may claim to come from the future


@dataclass
class WorkerState:
    id: str
    host: str
    pid: int
    generation: int  # every entry of this store generation is settled (loaded or failed)
    version: int
    pipelines: int
    started_at: float
    updated_at: float
    seen: int = -1  # the newest store generation this worker has taken a snapshot of
    pid_start: Optional[int] = None  # /proc start time of the process: pids get recycled
    loading: bool = True  # still settling its first snapshot (a restarting worker)
    served: dict[str, str] = field(default_factory=dict)  # name -> fingerprint
    failed: dict[str, list[str]] = field(default_factory=dict)  # name -> [fingerprint, error]

    def info(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """What ``wait_for`` saw: who has not caught up, who failed to load the change, and who already
    serves a later change of the same pipeline (another deploy replaced this one meanwhile)."""

    lagging: list[WorkerState]
    failed: list[tuple[WorkerState, str]]
    workers: list[WorkerState]
    superseded: list[WorkerState] = field(default_factory=list)


StateFn = Callable[[], dict[str, Any]]


class Cluster:
    def __init__(
        self,
        workers_dir: Path,
        heartbeat_interval: float,
        on_dead: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.dir = workers_dir
        self.interval = heartbeat_interval
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.pid_start = _pid_start(self.pid)
        self.id = f"{self.host}-{self.pid}"
        self.started_at = time.time()
        self.on_dead = on_dead
        # Remote worker id -> (its last updated_at, our monotonic time when that value appeared).
        self._seen: dict[str, tuple[float, float]] = {}
        self._last: Optional[WorkerState] = None
        self._last_good: dict[str, WorkerState] = {}

    @property
    def stale_after(self) -> float:
        return max(3 * self.interval, 2.0)

    @property
    def abandoned_after(self) -> float:
        """Wall-clock age past which a heartbeat is dead even on first sight (far beyond any skew)."""
        return max(30.0, 10 * self.stale_after)

    def beat(
        self,
        generation: int,
        version: int,
        pipelines: int,
        *,
        seen: Optional[int] = None,
        loading: bool = False,
        served: Optional[dict[str, str]] = None,
        failed: Optional[dict[str, list[str]]] = None,
    ) -> None:
        state = WorkerState(
            self.id,
            self.host,
            self.pid,
            generation,
            version,
            pipelines,
            self.started_at,
            time.time(),
            generation if seen is None else seen,
            self.pid_start,
            loading,
            dict(served or {}),
            dict(failed or {}),
        )
        tmp = self.dir / f".{self.id}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.dir / f"{self.id}.json")
        self._last = state

    def leave(self) -> None:
        (self.dir / f"{self.id}.json").unlink(missing_ok=True)

    def workers(self) -> list[WorkerState]:
        """Live workers; dead ones and invalid files are pruned from the directory."""
        live = []
        for path in self.dir.glob("*.json"):
            state = _parse(path)
            if state is None:
                if _age(path) > self.stale_after:
                    log.warning("Ignoring and removing an invalid heartbeat file %s", path.name)
                    path.unlink(missing_ok=True)
                    self._last_good.pop(path.name, None)
                    continue
                # Caught mid-write (a filesystem without atomic renames): its last good state
                # stands in, so a worker never drops out of a deploy's wait for one bad read.
                state = self._last_good.get(path.name)
                if state is None:
                    continue
            else:
                self._last_good[path.name] = state
            verdict = self._alive(state)
            if verdict:
                live.append(state)
            elif verdict is False:
                path.unlink(missing_ok=True)
                self._seen.pop(state.id, None)
                self._last_good.pop(path.name, None)
                if self.on_dead is not None and state.id != self.id:
                    self.on_dead(state.id)
        return sorted(live, key=lambda w: w.id)

    def _alive(self, state: WorkerState) -> Optional[bool]:
        """True (live), False (dead: prune it) or None (not live now, but not ours to prune)."""
        if state.id == self.id:
            return True
        now_wall = time.time()
        if state.host == self.host:  # same clock and process table
            if state.updated_at - now_wall > _FUTURE_TOLERANCE:
                log.warning("Ignoring a heartbeat from the future: %s", state.id)
                return False
            return _pid_alive(state.pid) and (
                state.pid_start is None or state.pid_start == _pid_start(state.pid)
            )
        now = time.monotonic()
        seen = self._seen.get(state.id)
        if seen is None or seen[0] != state.updated_at:
            if seen is None and abs(now_wall - state.updated_at) > self.abandoned_after:
                return False
            self._seen[state.id] = (state.updated_at, now)
            return True
        if now - seen[1] > self.abandoned_after:
            return False
        return None if now - seen[1] > self.stale_after else True

    async def wait_for(
        self,
        generation: int,
        timeout: float,
        name: Optional[str] = None,
        fingerprint: Optional[str] = None,
    ) -> Outcome:
        """Wait until every live worker has seen ``generation`` and settled ``name``.

        With ``fingerprint`` the pipeline must be served (or have failed) at that fingerprint; with
        ``name`` and no fingerprint it must be gone. Without ``name``, the whole generation must be
        settled. Returns who still lags when the timeout is reached, and who failed.
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            workers = await asyncio.to_thread(self.workers)
            lagging: list[WorkerState] = []
            failed: list[tuple[WorkerState, str]] = []
            superseded: list[WorkerState] = []
            for w in workers:
                if name is None:
                    if w.generation < generation:
                        lagging.append(w)
                    continue
                if w.seen < generation:
                    lagging.append(w)
                elif fingerprint is None:
                    if name in w.served:
                        (superseded if w.generation > generation else lagging).append(w)
                elif w.served.get(name) == fingerprint:
                    continue
                elif _failed_at(w, name) == fingerprint:
                    failed.append((w, str(w.failed[name][1])))
                elif w.generation > generation:
                    # Settled a later generation and serves something else under this name: a
                    # concurrent deploy (perhaps through another instance) replaced this one.
                    superseded.append(w)
                else:
                    lagging.append(w)
            now = time.monotonic()
            if (not lagging) or now >= deadline:
                return Outcome(lagging, failed, workers, superseded)
            # Other workers usually answer within tens of milliseconds: look often at first (a
            # read of a few small files), then settle into a slower pace for a slow setup().
            await asyncio.sleep(0.01 if now - started < 1.0 else 0.05)


class Heartbeat:
    """Writes this worker's heartbeat every interval, and at once when told, from its own thread.

    Loading and syncing happen elsewhere; this thread only reads the state function (which must
    not take a lock a load could hold), so a worker is never judged dead for being busy.
    """

    def __init__(
        self, cluster: Cluster, state: StateFn, on_tick: Optional[Callable[[], None]] = None
    ) -> None:
        self.cluster = cluster
        self.state = state
        self.on_tick = on_tick
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write = threading.Lock()  # a beat reads the state and writes it in one go
        self._thread = threading.Thread(target=self._run, name="hayhooks-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def beat_now(self) -> None:
        """Write the heartbeat from the calling thread (never older state over newer)."""
        try:
            with self._write:
                self.cluster.beat(**self.state())
        except Exception:
            log.exception("Could not write this worker's heartbeat")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat_now()
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except Exception:
                    log.exception("Heartbeat housekeeping failed")
            self._wake.wait(self.cluster.interval)
            self._wake.clear()


def _failed_at(worker: WorkerState, name: str) -> Optional[str]:
    entry = worker.failed.get(name)
    return str(entry[0]) if isinstance(entry, list) and len(entry) == 2 else None


def _parse(path: Path) -> Optional[WorkerState]:
    try:
        data = json.loads(path.read_text())
        state = WorkerState(**data)
        valid = (
            isinstance(state.id, str)
            and isinstance(state.host, str)
            and isinstance(state.pid, int)
            and isinstance(state.generation, int)
            and isinstance(state.seen, int)
            and isinstance(state.updated_at, (int, float))
            and isinstance(state.served, dict)
            and isinstance(state.failed, dict)
            and path.name == f"{state.id}.json"
        )
        return state if valid else None
    except (OSError, ValueError, TypeError):
        return None


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _pid_start(pid: int) -> Optional[int]:
    """The process' start time in clock ticks since boot (Linux), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) still has a pid but serves nothing.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
