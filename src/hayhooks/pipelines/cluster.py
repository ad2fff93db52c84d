"""Which processes serve this pipelines directory, and which generation each of them serves.

Every worker (of any instance sharing the directory) writes a small heartbeat file after each
reconcile and every ``heartbeat_interval``. A deploy commits to the store, then waits until every
live heartbeat reports the new generation.

A worker on this host is live while its pid exists (a killed worker stops counting at once) and its
heartbeat is fresh. A worker on another host is live while its heartbeat keeps *changing*, timed on
our own monotonic clock, so clock skew between hosts never makes a healthy worker look dead or a
dead one look alive.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class WorkerState:
    id: str
    host: str
    pid: int
    generation: int
    version: int
    pipelines: int
    started_at: float
    updated_at: float


class Cluster:
    def __init__(self, workers_dir: Path, heartbeat_interval: float) -> None:
        self.dir = workers_dir
        self.interval = heartbeat_interval
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}-{self.pid}"
        self.started_at = time.time()
        # Remote worker id -> (its last updated_at, our monotonic time when that value appeared).
        self._seen: dict[str, tuple[float, float]] = {}

    @property
    def stale_after(self) -> float:
        return max(3 * self.interval, 2.0)

    def beat(self, generation: int, version: int, pipelines: int) -> None:
        state = WorkerState(
            self.id, self.host, self.pid, generation, version, pipelines, self.started_at, time.time()
        )
        tmp = self.dir / f".{self.id}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.dir / f"{self.id}.json")

    def leave(self) -> None:
        (self.dir / f"{self.id}.json").unlink(missing_ok=True)

    @property
    def abandoned_after(self) -> float:
        """Wall-clock age past which a heartbeat is dead even on first sight (far beyond any skew)."""
        return max(30.0, 10 * self.stale_after)

    def workers(self) -> list[WorkerState]:
        """Live workers; dead ones are pruned from the directory."""
        live = []
        for path in self.dir.glob("*.json"):
            try:
                state = WorkerState(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            if self._alive(state):
                live.append(state)
            else:
                path.unlink(missing_ok=True)
                self._seen.pop(state.id, None)
        return sorted(live, key=lambda w: w.id)

    def _alive(self, state: WorkerState) -> bool:
        if state.id == self.id:
            return True
        if state.host == self.host:  # same clock and process table
            return _pid_alive(state.pid) and time.time() - state.updated_at <= self.stale_after
        now = time.monotonic()
        seen = self._seen.get(state.id)
        if seen is None or seen[0] != state.updated_at:
            if seen is None and abs(time.time() - state.updated_at) > self.abandoned_after:
                return False
            self._seen[state.id] = (state.updated_at, now)
            return True
        return now - seen[1] <= self.stale_after

    async def wait_for(self, generation: int, timeout: float) -> list[WorkerState]:
        """Wait until every live worker serves ``generation``; return those that did not in time."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = [w for w in await asyncio.to_thread(self.workers) if w.generation < generation]
            if not lagging or time.monotonic() >= deadline:
                return lagging
            await asyncio.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) still has a pid but serves nothing.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
