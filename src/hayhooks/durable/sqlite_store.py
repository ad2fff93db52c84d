"""The embedded default: one SQLite file in the pipelines directory's ``.hayhooks/`` folder.

WAL mode lets readers (routes, SSE) run while a worker writes; ``BEGIN IMMEDIATE`` serialises
writers across every process on the machine, which is what makes claim-and-fence atomic. SQLite
over a network filesystem is not safe: use the Redis store for instances on different hosts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from hayhooks.durable.errors import ExecutionNotFound, TooManyExecutions
from hayhooks.durable.models import TERMINAL, Event, Execution
from hayhooks.durable.store import ExecutionStore, Limits, Mutation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    idem TEXT,
    created_at REAL NOT NULL,
    not_before REAL NOT NULL,
    lease_expires_at REAL NOT NULL,
    finished_at REAL,
    fence INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS executions_idem ON executions(pipeline, idem) WHERE idem IS NOT NULL;
CREATE INDEX IF NOT EXISTS executions_due ON executions(status, not_before);
CREATE INDEX IF NOT EXISTS executions_by_pipeline ON executions(pipeline, created_at);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
"""


class SQLiteExecutionStore(ExecutionStore):
    backend = "sqlite"

    def __init__(self, path: Path, limits: Optional[Limits] = None) -> None:
        super().__init__(limits)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # Threads of one process queue on a lock rather than on SQLite's busy handler, whose
        # sleeps (up to 100 ms each) would dominate latency; processes still meet in SQLite.
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- primitives ------------------------------------------------------------------------------
    def _insert(self, record: Execution) -> tuple[Execution, bool]:
        with self._tx() as db:
            if record.idempotency_key is not None:
                row = db.execute(
                    "SELECT doc FROM executions WHERE pipeline=? AND idem=?",
                    (record.pipeline, record.idempotency_key),
                ).fetchone()
                if row:
                    return Execution.from_doc(row[0]), False
            cap = self.limits.max_nonterminal_executions
            if cap > 0:
                (active,) = db.execute(
                    "SELECT count(*) FROM executions WHERE status IN ('queued','running','waiting')"
                ).fetchone()
                if active >= cap:
                    raise TooManyExecutions(
                        f"{active} executions are queued, running or waiting; durable_max_nonterminal_executions is {cap}"
                    )
            db.execute(
                "INSERT INTO executions VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record.execution_id,
                    record.pipeline,
                    record.status,
                    record.idempotency_key,
                    record.created_at,
                    record.not_before,
                    record.lease_expires_at,
                    record.finished_at,
                    record.fence,
                    record.to_doc(),
                ),
            )
            self._append(db, record.execution_id, [("status", {"status": "queued", "attempt": 0})])
        return record, True

    def _load(self, execution_id: str) -> Optional[Execution]:
        row = self._conn().execute("SELECT doc FROM executions WHERE id=?", (execution_id,)).fetchone()
        return Execution.from_doc(row[0]) if row else None

    def _update(self, execution_id: str, mutate: Mutation) -> Execution:
        with self._tx() as db:
            row = db.execute("SELECT doc FROM executions WHERE id=?", (execution_id,)).fetchone()
            if row is None:
                raise ExecutionNotFound(f"Execution '{execution_id}' not found")
            record = Execution.from_doc(row[0])
            events = mutate(record)
            db.execute(
                "UPDATE executions SET status=?, not_before=?, lease_expires_at=?, finished_at=?, fence=?, doc=? "
                "WHERE id=?",
                (
                    record.status,
                    record.not_before,
                    record.lease_expires_at,
                    record.finished_at,
                    record.fence,
                    record.to_doc(),
                    execution_id,
                ),
            )
            if events:
                self._append(db, execution_id, events)
        return record

    def _append_fenced(self, execution_id: str, fence: int, events: list[tuple[str, Any]]) -> None:
        with self._tx() as db:
            row = db.execute("SELECT status, fence FROM executions WHERE id=?", (execution_id,)).fetchone()
            self._check_fence(execution_id, row[0] if row else None, row[1] if row else None, fence)
            self._append(db, execution_id, events)

    def _append(self, db: sqlite3.Connection, execution_id: str, events: list[tuple[str, Any]]) -> None:
        (last,) = db.execute(
            "SELECT coalesce(max(seq), 0) FROM events WHERE execution_id=?", (execution_id,)
        ).fetchone()
        now = time.time()
        for offset, (kind, data) in enumerate(events, start=1):
            db.execute(
                "INSERT INTO events VALUES (?,?,?,?,?)",
                (execution_id, last + offset, kind, now, json.dumps(data, default=str)),
            )
        newest = last + len(events)
        if newest > self.limits.max_events:
            db.execute(
                "DELETE FROM events WHERE execution_id=? AND seq<=?",
                (execution_id, newest - self.limits.max_events),
            )

    def _candidates(self, pipelines: Iterable[str], now: float, limit: int) -> list[str]:
        names = list(pipelines)
        marks = ",".join("?" * len(names))
        rows = (
            self._conn()
            .execute(
                f"SELECT id FROM executions WHERE pipeline IN ({marks}) AND "
                "((status='queued' AND not_before<=?) OR (status='running' AND lease_expires_at<?)) "
                "ORDER BY not_before LIMIT ?",
                (*names, now, now, limit),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def list_executions(
        self, pipeline: str, status: Optional[str] = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Execution], int]:
        where, args = "pipeline=?", [pipeline]
        if status:
            where += " AND status=?"
            args.append(status)
        db = self._conn()
        (total,) = db.execute(f"SELECT count(*) FROM executions WHERE {where}", args).fetchone()
        rows = db.execute(
            f"SELECT doc FROM executions WHERE {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [Execution.from_doc(r[0]) for r in rows], total

    def events(self, execution_id: str, after: int = 0, limit: int = 500) -> list[Event]:
        rows = (
            self._conn()
            .execute(
                "SELECT seq, kind, data, at FROM events WHERE execution_id=? AND seq>? ORDER BY seq LIMIT ?",
                (execution_id, after, limit),
            )
            .fetchall()
        )
        return [Event(seq, kind, json.loads(data), at) for seq, kind, data, at in rows]

    def counts(self) -> dict[str, int]:
        counts = self.empty_counts()
        for status, n in self._conn().execute("SELECT status, count(*) FROM executions GROUP BY status"):
            counts[status] = n
        return counts

    def queued_counts(self) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT pipeline, count(*) FROM executions WHERE status='queued' GROUP BY pipeline"
        )
        return {pipeline: n for pipeline, n in rows}

    def purge(self, now: Optional[float] = None) -> int:
        cutoff = (now or time.time()) - self.limits.terminal_ttl_seconds
        terminal = tuple(TERMINAL)
        with self._tx() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM executions WHERE status IN (?,?,?) AND finished_at<?", (*terminal, cutoff)
                )
            ]
            for execution_id in ids:
                db.execute("DELETE FROM events WHERE execution_id=?", (execution_id,))
                db.execute("DELETE FROM executions WHERE id=?", (execution_id,))
        return len(ids)
